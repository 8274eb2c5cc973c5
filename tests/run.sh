#!/bin/sh
# tests/run.sh — run every C unit test and shell test; the last line is
# "N passed, N failed" (", N skipped" when some could not run).
cd "$(dirname "$0")/.." || exit 1
export DS_TEST_RESULTS="${TMPDIR:-/tmp}/ds-results.$$"
: > "$DS_TEST_RESULTS"
trap 'rm -f "$DS_TEST_RESULTS"' EXIT
export ASAN_OPTIONS="exitcode=86:detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86"
for t in build/tests/test_*; do
	[ -x "$t" ] || continue
	"$t" || { echo "FAIL $t exited $?"; echo "fail $t" >> "$DS_TEST_RESULTS"; }
done
# Each fuzz target replays its corpus: inputs that once crashed stay fixed.
for t in build/tests/fuzz_*; do
	[ -x "$t" ] || continue
	n=$(basename "$t"); c=tests/fuzz/corpus/${n#fuzz_}
	if "$t" "$c"/* > /dev/null; then echo "ok   $n: corpus replays clean"; echo "pass $n" >> "$DS_TEST_RESULTS"
	else echo "FAIL $n: corpus replay exited $?"; echo "fail $n" >> "$DS_TEST_RESULTS"; fi
done
# each suite's wall time, for keeping CI inside its budget
for t in tests/t-*.sh; do
	s=$(date +%s)
	sh "$t" "$@"
	echo "time $(basename "$t" .sh): $(($(date +%s) - s)) s"
done
p=$(grep -c '^pass' "$DS_TEST_RESULTS")
f=$(grep -c '^fail' "$DS_TEST_RESULTS")
s=$(grep -c '^skip' "$DS_TEST_RESULTS")
if [ "$s" -gt 0 ]; then echo "$p passed, $f failed, $s skipped"; else echo "$p passed, $f failed"; fi
[ "$f" -eq 0 ]
