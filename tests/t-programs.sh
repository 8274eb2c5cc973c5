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

# libgomp prints its settings with OMP_DISPLAY_ENV; OMP_WAIT_POLICY reads
# 'PASSIVE' for its own default too, so the spin count is the proof: 0 when
# passive, 300000 by default, 30000000000 when active.
ok 'programs that load OpenMP start with passive waiting (spin count 0)' '
	n=0
	for p in ds-fetch ds-teacher ds-judge ds-sharegpt ds-tokenize ds-train ds-infer; do
		OMP_DISPLAY_ENV=verbose $p --version > out 2> err &&
		test "$(cat out)" = "$p (ds) 0.1.0" || fail "$p --version"
		grep -q "OPENMP DISPLAY ENVIRONMENT BEGIN" err || continue
		grep -q "GOMP_SPINCOUNT = .0.$" err && grep -q "OMP_WAIT_POLICY = .PASSIVE." err ||
			{ cat err; fail "$p: not passive"; }
		test "$(grep -c "OPENMP DISPLAY ENVIRONMENT BEGIN" err)" = 1 || fail "$p: libgomp started twice"
		n=$((n + 1))
	done &&
	for p in ds-train ds-infer; do
		OMP_DISPLAY_ENV=verbose $p --version 2>&1 >/dev/null | grep -q "GOMP_SPINCOUNT = .0.$" ||
			fail "$p does not report libgomp settings"
	done && test $n -ge 2
'

ok 'the user'"'"'s OMP_WAIT_POLICY or GOMP_SPINCOUNT wins over the passive default' '
	for p in ds-train ds-infer; do
		OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=verbose $p --version 2> err > /dev/null &&
		grep -q "OMP_WAIT_POLICY = .ACTIVE." err && grep -q "GOMP_SPINCOUNT = .30000000000." err &&
		GOMP_SPINCOUNT=1234 OMP_DISPLAY_ENV=verbose $p --version 2> err > /dev/null &&
		grep -q "GOMP_SPINCOUNT = .1234." err || { cat err; fail "$p ignored the user setting"; }
	done
'

# The passive default re-executes the program before any library starts
# (lib/ompenv.c): the second image must be the same process, name, argv
# and environment, plus the variable. ds-train blocks opening a FIFO.
ok 'the re-executed program keeps its pid, name, arguments and environment' '
	mkfifo cfg.yaml &&
	DS_PROBE="a b" ds-train cfg.yaml "x= y" "" > out 2> err & pid=$!
	i=0; while ! tr "\0" "\n" < /proc/$pid/environ 2>/dev/null | grep -qx OMP_WAIT_POLICY=passive &&
		[ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	tr "\0" "\n" < /proc/$pid/environ > environ; tr "\0" "|" < /proc/$pid/cmdline > cmdline
	comm=$(cat /proc/$pid/comm)
	kill $pid; wait $pid || :
	grep -qx OMP_WAIT_POLICY=passive environ && grep -qx "DS_PROBE=a b" environ &&
	test "$(cat cmdline)" = "ds-train|cfg.yaml|x= y||" && test "$comm" = ds-train
'

# One writer per output file: a second run given the -o (or -r) file that a
# first run is writing stops at once, naming the first run's pid, and the
# first run's output is whole. The first run holds its file while it waits
# for input that comes 3 s later.
MAP='{domain: "math", problem: "What is \(.a) plus \(.b)?", answer: "\(.a + .b)", solution: "\\boxed{\(.a + .b)}"}'
ok 'every program with -o refuses a second run on the same file: "OUT is in use by pid N"; -o/-r to a pipe is written, not resumed' '
	seq 0 9 | jq -c "{a: ., b: 2}" > rows.jsonl &&
	ds-fetch -q --map "$MAP" -o problems.jsonl rows.jsonl &&
	ds-teacher -q --offline -o answers.jsonl problems.jsonl &&
	ds-judge -q -o judged.jsonl answers.jsonl &&
	ds-sharegpt -q -o sharegpt.jsonl judged.jsonl &&
	qwen_tokenizer tok && ds-train --init-random "$DATA/train/tiny-qwen.json" -o m 2> /dev/null && cp tok/* m/ &&
	# PROGRAM-AND-ARGS, its input, its -o file
	for c in "ds-fetch -q --map \"\$MAP\" -o OUT -|rows.jsonl" "ds-teacher -q --offline -o OUT -|problems.jsonl" \
	         "ds-judge -q -o OUT -|answers.jsonl" "ds-judge -q -o o2 -r OUT -|answers.jsonl" \
	         "ds-sharegpt -q -o OUT -|judged.jsonl" "ds-infer -m m --batch -q --max-tokens 2 -o OUT -|problems.jsonl" \
	         "ds-tokenize -q -t tok/tokenizer.json -o OUT -|sharegpt.jsonl"; do
		cmd=${c%|*} in=${c#*|} && rm -f OUT o2 o3 &&
		{ (sleep 3; cat "$in") | eval "exec $cmd" & } && first=$! &&
		sleep 1 && rc=0 && eval "$(echo "$cmd" | sed "s/ -o o2 / -o o3 /")" < "$in" 2> err || rc=$? &&
		test $rc = 1 || fail "$cmd: the second run exited $rc" &&
		grep -q "OUT is in use by pid $first" err || fail "$cmd: $(cat err)" &&
		wait $first && { test -s OUT || test -s o2; } || fail "$cmd: the first run failed" || return 1
	done &&
	# a pipe is no file to resume from: written, never read back
	ds-judge -q -r /dev/stdout -o judged2.jsonl answers.jsonl | cat > piped && test -s judged2.jsonl &&
	ds-judge -q -o /dev/stdout answers.jsonl | cat > piped2 && test "$(wc -l < piped2)" = "$(wc -l < judged2.jsonl)"
'
