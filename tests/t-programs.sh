#!/bin/sh
# What every program shares (DESIGN.md §4), man pages, and make install.
. "$(dirname "$0")/lib.sh"

ok 'ds-sharegpt --help and --version print to stdout, exit 0' '
	ds-sharegpt --help > out 2> err && test ! -s err &&
	grep -q "^usage: ds-sharegpt" out && grep -q -- "--dataset-info NAME" out &&
	ds-sharegpt -V > out && test "$(cat out)" = "ds-sharegpt (ds) 0.1.0"
'

ok '--help agrees with the man page SYNOPSIS: every option is in both' '
	ds-sharegpt --help | grep -o -- "--[a-z][a-z-]*" | sort -u > help.opts &&
	sed -n "/^\.SH OPTIONS/,/^\.SH EXIT/p" "$TOP/man/man1/ds-sharegpt.1" |
		grep -o "\\\\-\\\\-[a-z][a-z\\\\-]*" | sed "s/\\\\//g" | sort -u > man.opts &&
	diff help.opts man.opts
'

ok 'every man page renders without warnings (groff -ww)' '
	for f in "$TOP"/man/man[157]/*.[157]; do
		groff -ww -z -t -man "$f" 2> w && test ! -s w || { echo "$f:"; cat w; false; }
	done
'

ok 'every program has a man page, and ds(7) names them all' '
	for p in ds-fetch ds-teacher ds-judge ds-sharegpt ds-tokenize ds-train ds-infer; do
		test -f "$TOP/man/man1/$p.1" && grep -q "^.BR $(echo $p | sed "s/-/\\\\\\\\-/")" "$TOP/man/man7/ds.7"
	done
'

ok 'make install PREFIX=... installs programs, man pages and share/' '
	make -s -C "$TOP" install PREFIX="$PWD/inst" > log 2>&1 || { cat log; false; } &&
	for p in ds-fetch ds-teacher ds-judge ds-sharegpt ds-tokenize ds-train ds-infer; do
		test -x inst/bin/$p && test -f inst/share/man/man1/$p.1
	done &&
	test -f inst/share/man/man7/ds.7 && test -d inst/share/ds &&
	inst/bin/ds-sharegpt --version > /dev/null
'
