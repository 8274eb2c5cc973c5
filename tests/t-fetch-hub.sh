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
hub_start "$R" --token hf_TESTTOKEN123 --gated datasets/acme/gated || exit 1
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

ok 'the test hub itself answers urllib, curl and the real huggingface_hub client as the hub does' '
	python3 "$TOP/tests/servers/test_hub.py" > log 2>&1 || { tail -30 log; false; } &&
	tail -1 log | grep -q " 0 failed"
'
