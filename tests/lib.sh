# tests/lib.sh — sourced by every tests/t-*.sh.
#
#   ok 'what it checks' 'commands'    one case; passes when the commands,
#                                      run under `set -e` in a fresh
#                                      directory, succeed
#   skip 'what' 'why'                 a case that cannot run here
#   fail MSG                          inside a case: stop it, failed
#   expect_exit N CMD...              inside a case: CMD must exit N
#
# Results go to $DS_TEST_RESULTS (one "pass|fail|skip NAME" line each);
# tests/run.sh counts them. Sanitizer reports (SAN=1) fail the case.
set -u
export LANG=C LC_ALL=C TZ=UTC DS_NO_PROGRESS=1
TOP=$(cd "$(dirname "$0")/.." && pwd)
PATH=$TOP/bin:$PATH
DATA=$TOP/tests/data
PY=$TOP/tests/.venv/bin/python
: "${DS_TEST_RESULTS:=/dev/null}"
SUITE=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ds-$SUITE.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export ASAN_OPTIONS="exitcode=86:detect_leaks=1:log_path=$WORK/sanitizer"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86:log_path=$WORK/sanitizer"
n_case=0

fail() { printf '%s\n' "$*" >&2; return 1; }

expect_exit() {
	want=$1; shift
	got=0; "$@" || got=$?
	[ "$got" = "$want" ] || fail "expected exit $want, got $got: $*"
}

ok() {
	n_case=$((n_case + 1))
	dir=$WORK/$n_case; mkdir -p "$dir"
	( cd "$dir" && set -e && eval "$2" ) > "$WORK/out" 2>&1
	rc=$?
	if ls "$WORK"/sanitizer.* >/dev/null 2>&1; then
		cat "$WORK"/sanitizer.* >> "$WORK/out"; rm -f "$WORK"/sanitizer.*; rc=1
	fi
	if [ $rc = 0 ]; then
		echo "ok   $SUITE: $1"; echo "pass $SUITE: $1" >> "$DS_TEST_RESULTS"
	else
		echo "FAIL $SUITE: $1"; sed 's/^/     | /' "$WORK/out" | tail -40
		echo "fail $SUITE: $1" >> "$DS_TEST_RESULTS"
	fi
	rm -rf "$dir"
}

skip() {
	if [ -n "${DS_REQUIRE_ALL:-}" ]; then
		echo "FAIL $SUITE: $1 (cannot run: $2)"; echo "fail $SUITE: $1" >> "$DS_TEST_RESULTS"
	else
		echo "skip $SUITE: $1 ($2)"; echo "skip $SUITE: $1" >> "$DS_TEST_RESULTS"
	fi
}

# The vendored Qwen tokenizer, unpacked into directory $1.
qwen_tokenizer() {
	mkdir -p "$1" &&
	zstd -q -d -f "$DATA/qwen/tokenizer.json.zst" -o "$1/tokenizer.json" &&
	cp "$DATA/qwen/tokenizer_config.json" "$1/"
}
