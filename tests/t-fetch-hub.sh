#!/bin/sh
# ds-fetch against a local hub and dataset viewer (tests/servers/hub.py):
# paging, retries, pages shrunk around rows too big to serve, auth, the
# repo's own files, restarts. Nothing here reaches the network.
. "$(dirname "$0")/lib.sh"
F=$DATA/fetch
R=$WORK/hubroot
N=$R/datasets/AI-MO/NuminaMath-CoT
mkdir -p "$N/_viewer/default" "$R/datasets/codeparrot/apps/_viewer/default" "$R/datasets/acme/gated/_viewer/default"
# 250 NuminaMath-shaped rows: pages of 100 have boundaries to cross.
awk 'BEGIN { for (i = 0; i < 250; i++)
	printf "{\"source\":\"%s\",\"problem\":\"What is %d + %d?\",\"solution\":\"It is $\\\\boxed{%d}$.\",\"messages\":[]}\n",
		(i % 3 ? "olympiads" : "cn_k12"), i, i, 2 * i }' > "$N/_viewer/default/train.jsonl"
head -7 "$N/_viewer/default/train.jsonl" > "$N/_viewer/default/test.jsonl"
echo '{"x":1}' > "$N/README.md"
cp "$F/apps.jsonl" "$R/datasets/codeparrot/apps/_viewer/default/train.jsonl"
cp "$F/apps.jsonl" "$R/datasets/codeparrot/apps/train.jsonl"
echo '{"problem":"secret"}' > "$R/datasets/acme/gated/_viewer/default/train.jsonl"
# A small model: two small files and one "LFS" file (over 1 MiB), and a
# gated copy of it. The tree lists two entries a page, to cross pages.
M=$R/models/Qwen/Tiny
mkdir -p "$M/sub"
echo '{"model_type":"qwen2","hidden_size":8}' > "$M/config.json"
echo 'hello' > "$M/sub/notes.txt"
awk 'BEGIN { srand(1); for (i = 0; i < 300000; i++) printf "%08x\n", int(rand() * 4294967295) }' > "$M/model.safetensors"
mkdir -p "$R/models/acme" && cp -r "$M" "$R/models/acme/Secret"
hub_start "$R" --token hf_TESTTOKEN123 --gated datasets/acme/gated --gated acme/Secret --tree-page-size 2 || exit 1
ROWS=$N/_viewer/default/train.jsonl

# What the records must be: the same preset over the same rows, read locally.
ds-fetch -q --preset AI-MO/NuminaMath-CoT "$ROWS" | jq -c 'del(.id, .source)' > "$WORK/want"

ok 'all 250 rows arrive across page boundaries, in order, with stable ids' '
	ds-fetch -q AI-MO/NuminaMath-CoT > out &&
	jq -c "del(.id, .source)" out | diff - "$WORK/want" &&
	test "$(jq -r .id out | sed -n "1p;101p;250p" | tr "\n" " ")" = "AI-MO/NuminaMath-CoT/train/0 AI-MO/NuminaMath-CoT/train/100 AI-MO/NuminaMath-CoT/train/249 " &&
	test "$(jq -r .source out | sort -u)" = AI-MO/NuminaMath-CoT
'

ok '--split, --offset and --limit over the viewer' '
	ds-fetch -q --split test AI-MO/NuminaMath-CoT | jq -r .id | tail -1 | grep -qx AI-MO/NuminaMath-CoT/test/6 &&
	ds-fetch -q --offset 95 --limit 10 AI-MO/NuminaMath-CoT | jq -c "del(.id, .source)" > got &&
	sed -n 96,105p "$WORK/want" | diff got -
'

ok 'a shuffled sample from the viewer equals the same sample from the file' '
	ds-fetch -q --shuffle --seed 5 --limit 30 AI-MO/NuminaMath-CoT | jq -r ".id | split(\"/\") | last" > a &&
	ds-fetch -q --shuffle --seed 5 --limit 30 "$ROWS" | jq -r ".id | split(\"/\") | last" > b &&
	diff a b && test "$(wc -l < a)" = 30
'

ok 'never asks /first-rows' '
	ds-fetch -q --limit 3 AI-MO/NuminaMath-CoT > /dev/null &&
	curl -s "$HUB/_debug/requests" > log.json && ! grep -q first-rows log.json
'

ok '500s and a 429 with Retry-After are retried; the run completes' '
	hub_faults "^/rows:500@2,^/rows:429:1@1" &&
	ds-fetch AI-MO/NuminaMath-CoT > out 2> err &&
	jq -c "del(.id, .source)" out | diff - "$WORK/want" &&
	test "$(grep -c "retrying in" err)" = 3 && grep -q "retrying in 1.0s (HTTP 429)" err
'

ok 'a connection cut mid-reply is retried' '
	hub_faults "^/rows:cut:200@1" &&
	ds-fetch AI-MO/NuminaMath-CoT > out 2> err &&
	jq -c "del(.id, .source)" out | diff - "$WORK/want" && grep -q "retrying in" err
'

ok 'a row too big to serve in a page: the page shrinks at once (no retries) and every row arrives' '
	hub_faults "^/rows:too-big:150:1" &&
	ds-fetch AI-MO/NuminaMath-CoT > out 2> err &&
	jq -c "del(.id, .source)" out | diff - "$WORK/want" && ! grep -q "retrying" err
'

ok 'a row that cannot be served even alone is named and stops the run, or is skipped' '
	hub_faults "^/rows:too-big:150" &&
	expect_exit 1 ds-fetch -q AI-MO/NuminaMath-CoT > out 2> err &&
	grep -q "^ds-fetch:AI-MO/NuminaMath-CoT:150: cannot be fetched whole" err &&
	test "$(wc -l < out)" = 150 &&
	ds-fetch --skip-bad AI-MO/NuminaMath-CoT > out 2> err &&
	test "$(wc -l < out)" = 249 && ! grep -q "/train/150\"" out && grep -q "1 bad row skipped" err
'

ok 'a truncated cell is never written: the page shrinks until the row comes whole' '
	hub_faults "^/rows:truncate-cell:10@2" &&
	ds-fetch -q AI-MO/NuminaMath-CoT > out &&
	jq -c "del(.id, .source)" out | diff - "$WORK/want"
'

ok 'a server that stops sending is given up on after --timeout and retried' '
	hub_faults "^/rows:slow:4@1" &&
	ds-fetch --timeout 1 --limit 5 AI-MO/NuminaMath-CoT > out 2> err &&
	test "$(wc -l < out)" = 5 && grep -q "retrying in .*(.*[Tt]ime.*)" err
'

hub_faults ""

ok 'an unknown dataset is a clear error naming it' '
	expect_exit 1 ds-fetch -q nobody/nothing 2> err &&
	grep -q "^ds-fetch: nobody/nothing: HTTP 404" err
'

ok 'a gated dataset: 401 without HF_TOKEN, records with it, and the token is never printed' '
	expect_exit 1 env -u HF_TOKEN ds-fetch -q acme/gated 2> err && grep -q "HTTP 401.*HF_TOKEN" err &&
	HF_TOKEN=hf_TESTTOKEN123 ds-fetch acme/gated > out 2> err2 &&
	test "$(jq -r .problem out)" = secret &&
	! grep -q hf_TESTTOKEN123 out err err2
'

ok '--from-files reads the repo'"'"'s own JSONL, same records as the viewer' '
	ds-fetch -q --from-files codeparrot/apps > a && ds-fetch -q codeparrot/apps > b &&
	diff a b && test "$(wc -l < a)" = 3 && test "$(jq -r .id a | head -1)" = codeparrot/apps/train/0
'

ok 'killed with -9 while fetching, a rerun ends with every row once' '
	hub_faults "^/rows:latency:100" &&
	{ ds-fetch -q -o out.jsonl AI-MO/NuminaMath-CoT & pid=$!; } &&
	sleep 0.5; kill -9 $pid 2>/dev/null || :; wait $pid 2>/dev/null || :;
	n=$(wc -l < out.jsonl) && hub_faults "" &&
	ds-fetch -o out.jsonl AI-MO/NuminaMath-CoT 2> err &&
	jq -c "del(.id, .source)" out.jsonl | diff - "$WORK/want" &&
	grep -q "$n already done" err && echo "killed after $n rows"
'

same_model() { # $1: downloaded folder; the fixture's three files, byte for byte
	cmp "$1/config.json" "$M/config.json" && cmp "$1/sub/notes.txt" "$M/sub/notes.txt" &&
	cmp "$1/model.safetensors" "$M/model.safetensors" && test ! -e "$1/.ds-fetch"
}

ok 'model: every file of the repo (tree listed across pages) arrives verified' '
	hub_faults "" &&
	ds-fetch model Qwen/Tiny -o m 2> err && same_model m &&
	grep -q "Qwen/Tiny@main = [0-9a-f]\{40\}: 3 files downloaded and verified (2.7 MB), 0 already there, 0 failed" err &&
	curl -s "$HUB/_debug/requests" | jq -r ".requests[].path" | grep "Qwen/Tiny/resolve/" > reqs &&
	test -s reqs && ! grep -q "resolve/main/" reqs
'

ok 'model: a rerun finds the files there and fetches nothing' '
	ds-fetch -q model Qwen/Tiny -o m && ds-fetch model Qwen/Tiny -o m 2> err &&
	grep -q "0 files downloaded and verified (0.0 MB), 3 already there" err
'

ok 'model: a connection cut mid-file is resumed with Range, not restarted' '
	hub_faults "^/cdn/:cut:1000000@1" &&
	ds-fetch model Qwen/Tiny -o m 2> err && same_model m &&
	grep -q "model.safetensors: .*resuming" err &&
	curl -s "$HUB/_debug/requests" | grep -q "bytes=1000000-"
'

ok 'model: a file corrupted on the way fails its sha256 and is fetched again' '
	hub_faults "^/cdn/:corrupt@1" &&
	ds-fetch model Qwen/Tiny -o m 2> err && same_model m &&
	grep -q "sha256 mismatch" err
'

ok 'model: a small file that arrives wrong fails its git sha1' '
	hub_faults "^/api/resolve-cache/models/Qwen/Tiny/[0-9a-f]*/config.json:corrupt@1" &&
	ds-fetch model Qwen/Tiny -o m 2> err && same_model m &&
	grep -q "config.json: sha1 mismatch" err
'

ok 'model: --include picks files by glob' '
	hub_faults "" &&
	ds-fetch -q model Qwen/Tiny --include "*.json" --include "sub/*" -o m &&
	test -f m/config.json && test -f m/sub/notes.txt && test ! -e m/model.safetensors
'

ok 'model: gated repo: 401 without HF_TOKEN; with it, the CDN never sees the token' '
	expect_exit 1 env -u HF_TOKEN ds-fetch model acme/Secret -o m 2> err && grep -q "HTTP 401" err &&
	curl -s -X DELETE "$HUB/_debug/requests" > /dev/null;
	HF_TOKEN=hf_TESTTOKEN123 ds-fetch model acme/Secret -o m > out 2> err && same_model m &&
	curl -s "$HUB/_debug/requests" > log.json &&
	test "$(jq "[.requests[] | select(.path | startswith(\"/cdn/\")) | select(.auth != \"none\")] | length" log.json)" = 0 &&
	test "$(jq "[.requests[] | select(.path | startswith(\"/cdn/\"))] | length" log.json)" -ge 1 &&
	! grep -q hf_TESTTOKEN123 out err log.json
'

ok 'model: an unknown revision or repo is a clear error' '
	expect_exit 1 ds-fetch model Qwen/Tiny --revision nope -o m 2> err && grep -q "Qwen/Tiny: HTTP 404" err &&
	expect_exit 1 ds-fetch model nobody/none -o m 2> err && grep -q "nobody/none: HTTP 404" err &&
	expect_exit 2 ds-fetch model Qwen/Tiny 2> err && grep -q "needs -o DIR" err
'

ok 'model: killed with -9 mid-download, a rerun resumes the part file and verifies' '
	hub_faults "^/cdn/:throttle:1000000" &&
	{ ds-fetch -q model Qwen/Tiny -o m & pid=$!; } &&
	sleep 1.5; kill -9 $pid 2>/dev/null || :; wait $pid 2>/dev/null || :;
	hub_faults "" && curl -s -f -X DELETE "$HUB/_debug/requests" > /dev/null &&
	ds-fetch model Qwen/Tiny -o m 2> err && same_model m && ! grep -q "mismatch" err &&
	curl -s "$HUB/_debug/requests" > log.json &&
	jq "[.requests[] | select(.path | startswith(\"/cdn/\")) | .range // \"\"] |
		any(test(\"^bytes=[1-9]\")) and all(test(\"^bytes=[1-9]\"))" log.json | grep -qx true
'

ok 'model: a part file that cannot grow (ulimit -f) is a clear error and nothing is renamed into place' '
	hub_faults "" && rm -rf m &&
	expect_exit 1 sh -c "trap \"\" XFSZ; ulimit -f 1000; exec ds-fetch model Qwen/Tiny -o m" 2> err &&
	grep -q "model.safetensors.part: File too large" err && grep -q "1 failed" err &&
	test ! -e m/model.safetensors &&
	ds-fetch -q model Qwen/Tiny -o m && same_model m
'

if unshare -m sh -c "mount -t tmpfs -o size=1m tmpfs \"$WORK\"" 2> /dev/null; then
ok 'model: a disk too small for a file is told before its download, not after' '
	mkdir small && curl -s -f -X DELETE "$HUB/_debug/requests" > /dev/null &&
	expect_exit 1 unshare -m sh -c "mount -t tmpfs -o size=1m tmpfs small && exec ds-fetch model Qwen/Tiny -o small/m" 2> err &&
	grep -q "model.safetensors.part: no room for 2700000 more bytes" err &&
	curl -s "$HUB/_debug/requests" > log.json &&
	test "$(jq "[.requests[] | select(.path | startswith(\"/cdn/\"))] | length" log.json)" = 0
'
else
	skip 'model: a disk too small for a file is told before its download, not after' 'unshare -m cannot mount a tmpfs here (needs root)'
fi

ok 'model --source modelscope: its file list and file API, every file checked by sha256' '
	hub_faults "^/cdn/:cut:500000@1" &&
	MODELSCOPE_ENDPOINT=$HUB HF_TOKEN=hf_TESTTOKEN123 ds-fetch model --source modelscope Qwen/Tiny -o m 2> err && same_model m &&
	grep -q "Qwen/Tiny@master: 3 files downloaded and verified" err && grep -q "resuming" err &&
	curl -s "$HUB/_debug/requests" > log.json &&
	test "$(jq "[.requests[] | select(.path | startswith(\"/api/v1/models/Qwen/Tiny/repo\"))] | length" log.json)" -ge 4 &&
	test "$(jq "[.requests[] | select(.path | startswith(\"/api/v1/\")) | select(.auth != \"none\")] | length" log.json)" = 0 &&
	expect_exit 1 env MODELSCOPE_ENDPOINT=$HUB ds-fetch model --source modelscope nobody/none -o m2 2> err &&
	grep -q "nobody/none: HTTP 404" err
'

# ---- today's hub: redirects, tokens, retries, revisions, hostile listings ----

# A second hub over the same fixture with other start-up switches, for one
# case: sets SIDE (its base URL); stopped when the case's shell exits.
side_hub() {
	rm -f side.port
	python3 "$TOP/tests/servers/hub.py" --root "$R" --port 0 --port-file side.port --max-seconds 120 --quiet "$@" 2>> side.log &
	SIDE_PID=$!
	trap 'kill $SIDE_PID 2>/dev/null || :' EXIT
	i=0; while [ ! -s side.port ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -s side.port ] || { cat side.log; return 1; }
	SIDE=http://127.0.0.1:$(cat side.port)
}
# The files of a downloaded folder, without either tool's bookkeeping.
files_of() { (cd "$1" && find . -path ./.cache -prune -o -path ./.ds-fetch.json -prune -o -type f -print | sort); }
same_tree() { # $1, $2: folders with the same files, byte for byte
	files_of "$1" > a.list && files_of "$2" > b.list && diff a.list b.list &&
	while read -r f; do cmp "$1/$f" "$2/$f" || return 1; done < a.list
}
# huggingface_hub.snapshot_download(REPO, local_dir=DIR) against the test hub,
# with allow/ignore patterns as JSON lists ("null" for none).
hf_snapshot() { # repo dir allow ignore
	HF_ENDPOINT=$HUB HF_HOME=$PWD/hfhome HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_TELEMETRY=1 "$PY" -c '
import json, sys
from huggingface_hub import snapshot_download
snapshot_download(sys.argv[1], local_dir=sys.argv[2], allow_patterns=json.loads(sys.argv[3]),
                  ignore_patterns=json.loads(sys.argv[4]))' "$@" 2> hf.err || { cat hf.err; return 1; }
}
reset_log() { curl -s -f -X DELETE "$HUB/_debug/requests" > /dev/null; }

if [ -x "$PY" ] && "$PY" -c 'import huggingface_hub' 2> /dev/null; then
ok 'model: the folder equals huggingface_hub.snapshot_download'"'"'s from the same hub, file by file' '
	hub_faults "" && ds-fetch -q model Qwen/Tiny -o ds && hf_snapshot Qwen/Tiny hf null null &&
	same_tree ds hf && test "$(files_of ds | wc -l)" = 3
'

ok 'model: --include/--exclude select what allow_patterns/ignore_patterns select' '
	for p in "[\"*.json\"] null" "[\"sub/\"] null" "null [\"*.safetensors\"]" "[\"*\"] [\"sub/*\",\"config.*\"]" \
		"[\"*t*\"] [\"*.txt\"]" "[\"sub/*.txt\",\"*.json\"] [\"config.json\"]"; do
		allow=${p% *} ignore=${p#* } && set -- && set -f &&
		for a in $(echo "$allow" | jq -r ".[]?"); do set -- "$@" --include "$a"; done &&
		for i in $(echo "$ignore" | jq -r ".[]?"); do set -- "$@" --exclude "$i"; done &&
		rm -rf ds hf && mkdir ds && { ds-fetch -q model "$@" Qwen/Tiny -o ds 2> err || grep -q "no file matches" err; } &&
		set +f && hf_snapshot Qwen/Tiny hf "$allow" "$ignore" && mkdir -p hf && same_tree ds hf || { echo "patterns: $p"; false; }
	done
'

ok 'model: a gated repo through the same-host redirects: the token reaches the hub, never the CDN; same files as huggingface_hub' '
	reset_log &&
	HF_TOKEN=hf_TESTTOKEN123 ds-fetch model acme/Secret -o ds > out 2> err && same_model ds &&
	curl -s "$HUB/_debug/requests" > log.json &&
	test "$(jq "[.requests[] | select(.path | startswith(\"/cdn/\")) | select(.auth != \"none\")] | length" log.json)" = 0 &&
	test "$(jq "[.requests[] | select(.path | startswith(\"/cdn/\"))] | length" log.json)" -ge 1 &&
	test "$(jq "[.requests[] | select(.path | startswith(\"/api/resolve-cache/\")) | select(.auth == \"token\")] | length" log.json)" -ge 2 &&
	test "$(jq "[.requests[] | select(.path | startswith(\"/api/resolve-cache/\")) | select(.auth != \"token\")] | length" log.json)" = 0 &&
	! grep -q hf_TESTTOKEN123 out err &&
	HF_TOKEN=hf_TESTTOKEN123 hf_snapshot acme/Secret hf null null && same_tree ds hf
'
else
	skip 'model: the folder equals huggingface_hub.snapshot_download'"'"'s from the same hub' 'no huggingface_hub in tests/.venv'
fi

ok 'model: the token from HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH, HF_HOME/token and ~/.cache/huggingface/token, never printed' '
	hub_faults "" && mkdir -p home/.cache/huggingface hfh && printf "hf_TESTTOKEN123\n" > home/.cache/huggingface/token &&
	printf "  hf_TESTTOKEN123\r\n" > hfh/token && printf "hf_TESTTOKEN123" > tok &&
	env -u HF_TOKEN HUGGING_FACE_HUB_TOKEN=hf_TESTTOKEN123 HOME=$PWD/empty ds-fetch -q model acme/Secret -o a 2> err && same_model a &&
	env -u HF_TOKEN HF_TOKEN_PATH=$PWD/tok HOME=$PWD/empty ds-fetch -q model acme/Secret -o b 2>> err && same_model b &&
	env -u HF_TOKEN HF_HOME=$PWD/hfh HOME=$PWD/empty ds-fetch -q model acme/Secret -o c 2>> err && same_model c &&
	env -u HF_TOKEN -u HF_HOME -u XDG_CACHE_HOME HOME=$PWD/home ds-fetch -q model acme/Secret -o d 2>> err && same_model d &&
	expect_exit 1 env -u HF_TOKEN HOME=$PWD/home HF_HUB_DISABLE_IMPLICIT_TOKEN=1 ds-fetch -q model acme/Secret -o e 2>> err &&
	grep -q "HTTP 401" err && ! grep -q hf_TESTTOKEN123 err
'

ok 'model: 429 with Retry-After (seconds, or an HTTP date) is honoured on the revision, the listing, the HEAD, the hub'"'"'s redirect and the CDN' '
	hub_faults "/api/models/Qwen/Tiny/revision/:429:1@1,/api/models/Qwen/Tiny/tree/:429date:1@1,^/Qwen/Tiny/resolve/[0-9a-f]*/config.json:429:1@1,^/api/resolve-cache/models/Qwen/Tiny/.*notes.txt:429:1@1,^/cdn/:429:1@1" &&
	reset_log && ds-fetch model Qwen/Tiny -o m 2> err && same_model m &&
	test "$(grep -c "retrying in [0-9.]*s (HTTP 429)" err)" = 4 && grep -q "model.safetensors: HTTP 429; resuming in 1.0s" err &&
	curl -s "$HUB/_debug/requests" > log.json &&
	test "$(jq "[.requests[] | select(.status == 429)] | length" log.json)" = 5
'

ok 'model: a 500 on each request kind (revision, listing, HEAD, the hub'"'"'s redirect, the CDN) is retried' '
	hub_faults "/api/models/Qwen/Tiny/revision/:500@1,/api/models/Qwen/Tiny/tree/:500@1,^/Qwen/Tiny/resolve/[0-9a-f]*/config.json:500@1,^/api/resolve-cache/models/Qwen/Tiny/.*notes.txt:500@1,^/cdn/:500@1" &&
	rm -rf m && ds-fetch model Qwen/Tiny -o m 2> err && same_model m &&
	test "$(grep -c "retrying in [0-9.]*s (HTTP 500)" err)" = 4 && grep -q "model.safetensors: HTTP 500; resuming in" err &&
	hub_faults ""
'

ok 'model: a Retry-After beyond the retry budget stops at once with a clear message' '
	hub_faults "/api/models/Qwen/Tiny/tree/:429:120" &&
	s=$(date +%s) && expect_exit 1 env DS_RETRY_BUDGET_S=5 ds-fetch model Qwen/Tiny -o m 2> err &&
	test $(($(date +%s) - s)) -lt 20 &&
	grep -q "giving up (HTTP 429): the server asks to wait 120s more, beyond the retry budget" err &&
	grep -q "Qwen/Tiny: HTTP 429" err && hub_faults ""
'

ok 'model: the branch moves: a file changed at the same size is replaced, the others are not fetched again; removed files are reported' '
	hub_faults "" && rm -rf "$R/models/Qwen/Moving" && cp -r "$M" "$R/models/Qwen/Moving" &&
	ds-fetch -q model Qwen/Moving -o m && c1=$(jq -r .commit m/.ds-fetch.json) &&
	echo "{\"model_type\":\"qwen2\",\"hidden_size\":9}" > "$R/models/Qwen/Moving/config.json" &&
	rm "$R/models/Qwen/Moving/sub/notes.txt" && reset_log &&
	ds-fetch model Qwen/Moving -o m 2> err && c2=$(jq -r .commit m/.ds-fetch.json) &&
	test "$c1" != "$c2" && cmp m/config.json "$R/models/Qwen/Moving/config.json" &&
	grep -q "1 files downloaded and verified (0.0 MB), 1 already there, 0 failed" err &&
	grep -q "sub/notes.txt is no longer in the repo" err &&
	test "$(jq -r ".files[\"config.json\"].commit" m/.ds-fetch.json)" = "$c2" &&
	test "$(jq -r ".files | keys | join(\",\")" m/.ds-fetch.json)" = "config.json,model.safetensors" &&
	curl -s "$HUB/_debug/requests" | jq -r ".requests[].path" > reqs &&
	! grep -q "model.safetensors\|/cdn/" reqs && grep -q "config.json" reqs &&
	curl -s "$HUB/api/models/Qwen/Moving/revision/main" | jq -r .sha | grep -qx "$c2"
'

ok 'model: nothing changed, nothing fetched (only the listing is asked)' '
	ds-fetch -q model Qwen/Tiny -o m && reset_log && ds-fetch model Qwen/Tiny -o m 2> err &&
	grep -q "0 files downloaded and verified (0.0 MB), 3 already there" err &&
	curl -s "$HUB/_debug/requests" | jq -r ".requests[].path" > reqs &&
	! grep -q "resolve\|/cdn/" reqs
'

ok 'model: a file there without a record is kept only when its hash matches (not its size)' '
	mkdir -p m && echo "{\"model_type\":\"qwen2\",\"hidden_size\":7}" > m/config.json && cp "$M/sub/notes.txt" x &&
	mkdir -p m/sub && cp x m/sub/notes.txt && ds-fetch model Qwen/Tiny -o m 2> err && same_model m &&
	grep -q "2 files downloaded and verified (2.7 MB), 1 already there" err
'

ok '--revision: a tag and a full commit; the commit is printed and recorded' '
	echo "{\"v1.0\": \"main\"}" > "$M/_refs" &&
	c=$(curl -s "$HUB/api/models/Qwen/Tiny/revision/main" | jq -r .sha) &&
	ds-fetch model Qwen/Tiny --revision v1.0 -o a 2> err && same_model a &&
	grep -q "Qwen/Tiny@v1.0 = $c: 3 files" err && test "$(jq -r .commit a/.ds-fetch.json)" = "$c" &&
	test "$(jq -r .revision a/.ds-fetch.json)" = v1.0 &&
	ds-fetch model Qwen/Tiny --revision "$c" -o b 2> err && same_model b && grep -q "Qwen/Tiny@$c: 3 files" err &&
	rm "$M/_refs"
'

ok 'model: listing entries that leave the folder are refused, naming the entry; nothing is written' '
	for p in "../../../escaped" "sub/../../escaped" "/tmp/escaped" "a\\\\b" "a//b" "./a" "sub/." ".ds-fetch.json" ".ds-fetch/x.part"; do
		side_hub --extra-entry "$p" && rm -rf out && mkdir out &&
		rc=0 && { HF_ENDPOINT=$SIDE ds-fetch model Qwen/Tiny -o out/m 2> err || rc=$?; } &&
		{ kill $SIDE_PID; wait $SIDE_PID 2>/dev/null || :; } &&
		test "$rc" = 1 && grep -q "the listing names the file .*: .*; refusing to write it" err &&
		test -z "$(find out -type f)" && test ! -e "$WORK/escaped" && test ! -e /tmp/escaped || { echo "entry: $p"; cat err; false; }
	done
'

ok 'model: a symlink inside the folder is never followed out of it' '
	mkdir -p outside m && ln -s "$PWD/outside" m/sub && ln -s "$PWD/outside/cfg" m/config.json &&
	expect_exit 1 ds-fetch model Qwen/Tiny -o m 2> err &&
	grep -q "sub/notes.txt: .*\(symbolic links\|Not a directory\)" err &&
	test -z "$(ls outside)" && test -f m/config.json && test ! -L m/config.json &&
	cmp m/config.json "$M/config.json"
'

ok 'model: a next page at another origin, or not over http(s), is not followed' '
	for link in "http://localhost:$(echo "$HUB" | sed "s/.*://")/api/models/Qwen/Tiny/tree/main?cursor=x" "file:///etc/passwd"; do
		side_hub --tree-page-size 1 --next-link "$link" &&
		rc=0 && { HF_ENDPOINT=$SIDE HF_TOKEN=hf_TESTTOKEN123 ds-fetch model Qwen/Tiny -o m 2> err || rc=$?; } &&
		{ kill $SIDE_PID; wait $SIDE_PID 2>/dev/null || :; } &&
		test "$rc" = 1 && grep -q "next page is at .*; not followed" err || { cat err; false; }
	done &&
	test "$(curl -s "$HUB/_debug/requests" | jq "[.requests[] | select(.path | test(\"cursor=x\"))] | length")" = 0
'

ok 'model: a size beyond 2^53 is read exactly' '
	side_hub --big-size model.safetensors=9007199254740993 &&
	expect_exit 1 env HF_ENDPOINT=$SIDE ds-fetch model Qwen/Tiny -o m 2> err &&
	grep -q "9007199254740993" err && ! grep -q "9007199254740992" err
'

ok 'viewer: requests are paced by the hub'"'"'s RateLimit headers, so no 429 is met; every row arrives' '
	side_hub --rate-limit 2/2 &&
	DS_VIEWER_ENDPOINT=$SIDE HF_ENDPOINT=$SIDE ds-fetch AI-MO/NuminaMath-CoT > out 2> err &&
	jq -c "del(.id, .source)" out | diff - "$WORK/want" &&
	grep -q "requests left for .* by the hub.s rate limit; next page in" err &&
	curl -s "$SIDE/_debug/requests" > log.json &&
	test "$(jq "[.requests[] | select(.status == 429)] | length" log.json)" = 0
'

ok 'datasets --from-files: a file name that leaves the folder is refused' '
	side_hub --extra-entry "../train.jsonl" &&
	expect_exit 1 env HF_ENDPOINT=$SIDE ds-fetch --from-files codeparrot/apps 2> err &&
	grep -q "refusing" err
'

ok 'the test hub itself answers urllib, curl and the real huggingface_hub client as the hub does' '
	python3 "$TOP/tests/servers/test_hub.py" > log 2>&1 || { grep -v "^ok" log | tail -30; false; } &&
	tail -1 log | grep -q " 0 failed"
'
