#!/bin/sh
# ds-fetch on local files: presets, row selection, restarts, bad rows.
. "$(dirname "$0")/lib.sh"
F=$DATA/fetch

for p in "numina AI-MO/NuminaMath-CoT" "apps codeparrot/apps" "taco BAAI/TACO"; do
	set -- $p
	ok "preset $2 maps rows shaped like the real dataset's (golden file)" '
		ds-fetch -q --preset '$2' "$F/'$1'.jsonl" > out && diff out "$F/'$1'.expected.jsonl"
	'
done

ok 'preset RUC-AIBOX/long_form_thought_data_5k splits thought and solution; a row without them is named' '
	expect_exit 1 ds-fetch -q --preset RUC-AIBOX/long_form_thought_data_5k "$F/long_form.jsonl" > out 2> err &&
	grep -qx "ds-fetch:long_form.jsonl:2: preset failed: combined_text lacks the <|begin_of_thought|>/<|begin_of_solution|> sections" err &&
	test "$(wc -l < out)" = 2 &&
	ds-fetch -q --skip-bad --preset RUC-AIBOX/long_form_thought_data_5k "$F/long_form.jsonl" > out &&
	diff out "$F/long_form.expected.jsonl" &&
	test "$(jq -r .meta.thought out | head -1)" = "List them: 2, 3, 5, 7. That is four."
'

ok 'NuminaMath filters: sources, drop_figures, drop_multipart, require_boxed' '
	ds-fetch -q --preset AI-MO/NuminaMath-CoT -P sources=olympiads,amc_aime "$F/numina.jsonl" | jq -r .id > a &&
	printf "numina.jsonl/0\nnumina.jsonl/2\nnumina.jsonl/4\n" | diff a - &&
	ds-fetch -q --preset AI-MO/NuminaMath-CoT -P drop_figures=true "$F/numina.jsonl" | jq -r .id | grep -vx numina.jsonl/2 > b && test "$(wc -l < b)" = 4 &&
	ds-fetch -q --preset AI-MO/NuminaMath-CoT -P drop_multipart=true "$F/numina.jsonl" | jq -r .id > c && ! grep -qx numina.jsonl/1 c && test "$(wc -l < c)" = 4 &&
	ds-fetch -q --preset AI-MO/NuminaMath-CoT -P require_boxed=true "$F/numina.jsonl" | jq -r .id > d && ! grep -qx numina.jsonl/3 d && test "$(wc -l < d)" = 4
'

ok 'the summary counts rows, records and what the preset filtered' '
	ds-fetch --preset AI-MO/NuminaMath-CoT -P require_boxed=true "$F/numina.jsonl" > /dev/null 2> err &&
	grep -qx "ds-fetch: 5 rows read, 4 records written, 1 filtered out by the preset, 0 already done, 0 bad rows skipped" err
'

ok '--map takes a jq program as text or as a file; -P values are seen as $params' '
	ds-fetch -q --map "{problem: .question, domain: \$params.d, meta: {}}" -P d=code "$F/apps.jsonl" > out &&
	test "$(jq -r .domain out | sort -u)" = code &&
	echo "{problem: (.question + \" (\" + (\$row_idx|tostring) + \")\")}" > m.jq &&
	ds-fetch -q --map m.jq "$F/apps.jsonl" | jq -r .problem | tail -1 | grep -q "(2)$"
'

ok 'without a preset, local files go through generic.jq' '
	printf "{\"question\":\"q1\",\"answer\":42,\"x\":1}\n" > g.jsonl &&
	ds-fetch -q g.jsonl > out &&
	test "$(cat out)" = "{\"id\":\"g.jsonl/0\",\"source\":\"g.jsonl\",\"domain\":\"unknown\",\"problem\":\"q1\",\"answer\":\"42\",\"meta\":{\"x\":1}}"
'

ok 'a .json array, a .jsonl.zst and stdin give the same records' '
	jq -s . "$F/apps.jsonl" > apps.json && zstd -q -c "$F/apps.jsonl" > apps.jsonl.zst &&
	ds-fetch -q --preset codeparrot/apps apps.json | jq -c "del(.id, .source)" > a &&
	ds-fetch -q --preset codeparrot/apps apps.jsonl.zst | jq -c "del(.id, .source)" > b &&
	ds-fetch -q --preset codeparrot/apps - < "$F/apps.jsonl" > c && jq -c "del(.id, .source)" c > c2 &&
	diff a b && diff a c2 && test "$(jq -r .id c | head -1)" = stdin/0
'

ok '--offset and --limit pick a window of rows' '
	ds-fetch -q --offset 1 --limit 2 --preset AI-MO/NuminaMath-CoT "$F/numina.jsonl" | jq -r .id > got &&
	printf "numina.jsonl/1\nnumina.jsonl/2\n" | diff got -
'

ok '--shard i/n: the shards are disjoint and together are the whole' '
	for i in 0 1 2; do ds-fetch -q --shard $i/3 --preset AI-MO/NuminaMath-CoT "$F/numina.jsonl" | jq -r .id > s$i; done &&
	cat s0 s1 s2 | sort > all && ds-fetch -q --preset AI-MO/NuminaMath-CoT "$F/numina.jsonl" | jq -r .id | sort > want &&
	diff all want && test "$(sort -u all | wc -l)" = 5
'

ok '--shuffle --seed is deterministic, seeds differ, and nothing is lost' '
	for i in $(seq 0 199); do echo "{\"problem\":\"p$i\"}"; done > many.jsonl &&
	ds-fetch -q --shuffle --seed 7 many.jsonl | jq -r .id > a &&
	ds-fetch -q --shuffle --seed 7 many.jsonl | jq -r .id > b &&
	ds-fetch -q --shuffle --seed 8 many.jsonl | jq -r .id > c &&
	diff a b && ! diff -q a c > /dev/null &&
	sort a > sa && ds-fetch -q many.jsonl | jq -r .id | sort > sw && diff sa sw &&
	ds-fetch -q --shuffle --seed 7 --limit 10 many.jsonl | jq -r .id > d && head -10 a | diff d -
'

ok 'killed with -9, a rerun with the same -o ends with every id once' '
	for i in $(seq 0 2999); do echo "{\"problem\":\"p$i\"}"; done > many.jsonl &&
	ds-fetch -q many.jsonl > want &&
	{ ds-fetch -q -o out.jsonl many.jsonl & pid=$!; } &&
	sleep 0.1; kill -9 $pid 2>/dev/null || :; wait $pid 2>/dev/null || :;
	ds-fetch -o out.jsonl many.jsonl 2> err &&
	sort out.jsonl | diff - "$(sort want > sw; echo sw)" &&
	test "$(jq -r .id out.jsonl | sort | uniq -d | wc -l)" = 0 &&
	cat err
'

ok 'a malformed input line stops the run, naming it' '
	printf "{\"problem\":\"a\"}\n{oops\n" > bad.jsonl &&
	expect_exit 1 ds-fetch -q bad.jsonl > out 2> err &&
	grep -q "^ds-fetch:bad.jsonl:2: malformed JSON" err
'

ok 'a preset that does not compile is a usage error naming it' '
	expect_exit 2 ds-fetch -q --map "{problem: .q" "$F/apps.jsonl" 2> err && grep -q "^ds-fetch: preset {problem: .q: " err &&
	expect_exit 2 ds-fetch -q --preset no/such "$F/apps.jsonl" 2> err && grep -q "no preset named" err
'

ok 'a preset output without a problem string is a bad row' '
	expect_exit 1 ds-fetch -q --map "{x: 1}" "$F/apps.jsonl" 2> err &&
	grep -qx "ds-fetch:apps.jsonl:0: preset output is not an object with a \"problem\" string" err &&
	ds-fetch --skip-bad --map "{x: 1}" "$F/apps.jsonl" > out 2> err && test ! -s out &&
	grep -q "3 bad rows skipped" err
'

ok 'usage: unknown option, bad --shard, two sources, model without a repo' '
	expect_exit 2 ds-fetch --bogus x 2> err && grep -q "^usage: ds-fetch" err &&
	expect_exit 2 ds-fetch --shard 3/3 x 2> err && grep -q "0 <= I < N" err &&
	expect_exit 2 ds-fetch a.jsonl b.jsonl 2> err &&
	expect_exit 2 ds-fetch nosuchfile 2> err && grep -q "not a dataset id" err &&
	expect_exit 2 ds-fetch model 2> err && grep -q "one repo id" err
'

ok 'ds-fetch --help lists every option of the man page' '
	ds-fetch --help | grep -o -- "--[a-z][a-z-]*" | sort -u > help.opts &&
	sed -n "/^\.SH OPTIONS/,/^\.SH EXIT/p" "$TOP/man/man1/ds-fetch.1" |
		grep -o "\\\\-\\\\-[a-z][a-z\\\\-]*" | sed "s/\\\\//g" | sort -u > man.opts &&
	diff help.opts man.opts
'
