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

# Start the local hub / dataset viewer (tests/servers/hub.py) on a free
# loopback port over fixture directory $1, extra options after it; sets
# HUB (its base URL) and points ds at it. Stopped when the suite ends.
hub_start() {
	root=$1; shift
	rm -f "$WORK/hub.port"
	python3 "$TOP/tests/servers/hub.py" --root "$root" --port 0 --port-file "$WORK/hub.port" \
		--max-seconds 300 --quiet "$@" 2>> "$WORK/hub.log" &
	HUB_PID=$!
	trap 'kill $HUB_PID 2>/dev/null; rm -rf "$WORK"' EXIT
	i=0; while [ ! -s "$WORK/hub.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$WORK/hub.port" ] || { echo "hub did not start:"; cat "$WORK/hub.log"; return 1; }
	HUB=http://127.0.0.1:$(cat "$WORK/hub.port")
	export HF_ENDPOINT=$HUB DS_VIEWER_ENDPOINT=$HUB DS_RETRY_BASE_MS=50
}

# Replace the hub's fault rules: hub_faults 'regex:kind[:arg][@count],...'
hub_faults() {
	curl -s -f -X POST -H 'Content-Type: application/json' \
		-d "$(jq -n --arg s "$1" '{spec: $s}')" "$HUB/_faults" > /dev/null
}

# Start the local OpenAI-compatible server (tests/servers/openai.py) with
# the given options; sets API (its /v1 base URL) and API_PID.
api_start() {
	rm -f "$WORK/api.port"
	python3 "$TOP/tests/servers/openai.py" --port 0 --port-file "$WORK/api.port" \
		--max-seconds 300 --quiet "$@" 2>> "$WORK/api.log" &
	API_PID=$!
	i=0; while [ ! -s "$WORK/api.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$WORK/api.port" ] || { echo "api server did not start:"; cat "$WORK/api.log"; return 1; }
	API=http://127.0.0.1:$(cat "$WORK/api.port")/v1
	export DS_RETRY_BASE_MS=50
}

# api_faults URL SPEC: replace that server's fault rules.
api_faults() {
	curl -s -f -X POST -H 'Content-Type: application/json' \
		-d "$(jq -n --arg s "$2" '{spec: $s}')" "${1%/v1}/_faults" > /dev/null
}
