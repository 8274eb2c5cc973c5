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
	grep -q "Qwen/Tiny@main = [0-9a-f]\{12\}: 3 files downloaded and verified (2.7 MB), 0 already there, 0 failed" err &&
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
	hub_faults "Tiny/resolve/[0-9a-f]*/config.json:corrupt@1" &&
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

ok 'the test hub itself answers urllib, curl and the real huggingface_hub client as the hub does' '
	python3 "$TOP/tests/servers/test_hub.py" > log 2>&1 || { grep -v "^ok" log | tail -30; false; } &&
	tail -1 log | grep -q " 0 failed"
'
