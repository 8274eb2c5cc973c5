#!/bin/sh
# ds-sharegpt: conversion, formats, rejections, bad input, restarts.
. "$(dirname "$0")/lib.sh"
IN=$DATA/sharegpt/judged.jsonl

ok 'sharegpt output matches the golden file (written with jq)' '
	ds-sharegpt -q "$IN" > out &&
	diff out "$DATA/sharegpt/expected-sharegpt.jsonl"
'

ok 'input from stdin and as "-" gives the same' '
	ds-sharegpt -q < "$IN" > a && ds-sharegpt -q - < "$IN" > b &&
	diff a "$DATA/sharegpt/expected-sharegpt.jsonl" && diff a b
'

ok 'zstd-compressed input is read transparently' '
	zstd -q -c "$IN" > in.zst && ds-sharegpt -q in.zst > out &&
	diff out "$DATA/sharegpt/expected-sharegpt.jsonl"
'

ok '--system goes into every record' '
	ds-sharegpt -q --system "Think hard." "$IN" > out &&
	test "$(jq -r .system out | sort -u)" = "Think hard."
'

ok '--system-file reads the prompt, dropping the final newline' '
	printf "Line one.\nLine two.\n" > sys.txt &&
	ds-sharegpt -q --system-file sys.txt "$IN" > out &&
	test "$(jq -c .system out | sort -u)" = "\"Line one.\\nLine two.\""
'

ok '--format messages: role/content, system as the first message' '
	ds-sharegpt -q -f messages -s S "$IN" > out &&
	jq -c "{id, sample, messages}" out > got &&
	jq -c --arg s S "{id, sample, messages: ([{role:\"system\",content:\$s}] + [.conversations[] | {role: .from, content: .value}])}" \
		"$DATA/sharegpt/expected-sharegpt.jsonl" > want &&
	diff got want
'

ok '--format messages without a system prompt has no system message' '
	ds-sharegpt -q -f messages "$IN" > out &&
	test "$(jq -r ".messages[0].role" out | sort -u)" = user
'

ok '--format alpaca: instruction/input/output' '
	ds-sharegpt -q -f alpaca "$IN" > out &&
	jq -c "{id, sample, system, instruction: .conversations[0].value, input: \"\", output: .conversations[1].value}" \
		"$DATA/sharegpt/expected-sharegpt.jsonl" > want &&
	diff out want
'

ok 'unusable records go to --rejected with their reason' '
	ds-sharegpt -r rej.jsonl "$IN" > out 2> err &&
	jq -r "[.id, .sharegpt.rejected] | join(\" | \")" rej.jsonl > got &&
	cat > want <<-EOT &&
	r/empty-reasoning | empty reasoning
	r/wrong | judge verdict is not "correct"
	r/cut | teacher output cut off (finish_reason "length")
	r/no-content | empty content
	r/think-tag | a <think> tag inside reasoning or content
	EOT
	diff got want &&
	grep -q "9 read, 4 written, 5 rejected" err &&
	test "$(jq -c "del(.sharegpt)" rej.jsonl | head -1)" = "$(sed -n 4p "$IN")"
'

ok 'without --rejected, each rejection is reported on stderr with its line' '
	ds-sharegpt "$IN" > out 2> err &&
	grep -qx "ds-sharegpt:$IN:4: r/empty-reasoning: rejected: empty reasoning" err &&
	test "$(grep -c rejected: err)" = 5
'

ok 'unknown fields do not disturb; a record without judge is accepted' '
	echo "{\"id\":\"x\",\"problem\":\"p\",\"extra\":[1],\"teacher\":{\"reasoning\":\"r\",\"content\":\"c\"}}" |
		ds-sharegpt -q > out &&
	test "$(jq -c .conversations[1].value out)" = "\"<think>\\nr\\n</think>\\n\\nc\"" &&
	test "$(jq .sample out)" = 0
'

# ---- teacher.logprobs (ds-teacher --logprobs, issue #21) -------------------------
LP='{"k":2,"tokens":["Hel",[226],[136,154]],"logprob":[-0.01,-1.5,-9999],"top":[["Hel",-0.01,"He",-4.60517],[[226],-1.5,"x",-2],[[136,154],-9999,"y",-9999]]}'
export LP

ok 'teacher.logprobs goes into the assistant message as one JSON string, unchanged, only where present' '
	jq -c "if .teacher.sample == 1 or .id == \"codeparrot/apps/train/7\" or .id == \"r/wrong\"
		then .teacher.logprobs = (env.LP | fromjson) else . end" "$IN" > in.jsonl &&
	test "$(jq -r "select(.teacher.logprobs) | .id" in.jsonl | wc -l)" = 3 &&
	ds-sharegpt -q in.jsonl > out &&
	jq -c "del(.conversations[1].logprobs)" out | diff - "$DATA/sharegpt/expected-sharegpt.jsonl" &&
	test "$(jq -r "select(.conversations[1].logprobs) | \"\(.id) \(.sample)\"" out | tr "\n" ,)" = "AI-MO/NuminaMath-CoT/train/0 1,codeparrot/apps/train/7 0," &&
	test "$(jq -c "select(.conversations[1].logprobs) | .conversations[1].logprobs | fromjson" out | sort -u)" = "$LP" &&
	test "$(jq -c "select(.conversations[1].logprobs) | .conversations[1] | keys" out | sort -u)" = "[\"from\",\"logprobs\",\"value\"]" &&
	test "$(jq "[.conversations[0] | has(\"logprobs\")] | any" out | sort -u)" = false &&
	ds-sharegpt -q -f messages in.jsonl > m &&
	test "$(jq -c "select(.messages[1].logprobs) | .messages[1].logprobs | fromjson" m | sort -u)" = "$LP" &&
	ds-sharegpt -q -f alpaca in.jsonl > a &&
	test "$(jq -c "select(.logprobs) | .logprobs | fromjson" a | sort -u)" = "$LP"
'

ok 'logprobs survive ds-judge, then ds-sharegpt; a logprobs that is not an object is named' '
	printf "%s\n" "{\"id\":\"j\",\"domain\":\"math\",\"problem\":\"1+1?\",\"answer\":\"2\",\"teacher\":{\"reasoning\":\"r\",\"content\":\"So \\\\boxed{2}.\",\"finish_reason\":\"stop\",\"sample\":0,\"logprobs\":$LP}}" > t.jsonl &&
	ds-judge -q t.jsonl > judged.jsonl &&
	test "$(jq -r .judge.verdict judged.jsonl)" = correct &&
	test "$(jq -c .teacher.logprobs judged.jsonl)" = "$LP" &&
	ds-sharegpt -q judged.jsonl > out &&
	test "$(jq -c ".conversations[1].logprobs | fromjson" out)" = "$LP" &&
	jq -c ".teacher.logprobs = \"x\"" judged.jsonl > bad.jsonl &&
	expect_exit 1 ds-sharegpt bad.jsonl > out 2> err &&
	grep -q "^ds-sharegpt:bad.jsonl:1: .*teacher.logprobs is not an object" err &&
	jq -c ".teacher.logprobs = null" judged.jsonl | ds-sharegpt -q | jq -e ".conversations[1] | has(\"logprobs\") | not" > /dev/null
'

ok '--dataset-info prints the LLaMA-Factory entry for each format' '
	ds-sharegpt --dataset-info distill > a.json &&
	test "$(jq -c .distill a.json)" = "{\"file_name\":\"distill.jsonl\",\"formatting\":\"sharegpt\",\"columns\":{\"messages\":\"conversations\",\"system\":\"system\"},\"tags\":{\"role_tag\":\"from\",\"content_tag\":\"value\",\"user_tag\":\"user\",\"assistant_tag\":\"assistant\",\"system_tag\":\"system\",\"observation_tag\":\"observation\",\"function_tag\":\"function_call\"}}" &&
	ds-sharegpt --dataset-info d -f messages -o data/m.jsonl > b.json &&
	test "$(jq -r ".d.file_name, .d.columns.messages, .d.tags.system_tag" b.json | tr "\n" " ")" = "m.jsonl messages system " &&
	ds-sharegpt --dataset-info d -f alpaca --file-name x.json > c.json &&
	test "$(jq -r ".d.formatting, .d.file_name, .d.columns.response" c.json | tr "\n" " ")" = "alpaca x.json output "
'

# ---- bad input ----------------------------------------------------------

ok 'malformed JSON stops the run with NAME:LINE: reason, exit 1' '
	{ head -2 "$IN"; echo "{\"id\": "; sed -n 3p "$IN"; } > bad.jsonl &&
	expect_exit 1 ds-sharegpt -q bad.jsonl > out 2> err &&
	grep -q "^ds-sharegpt:bad.jsonl:3: malformed JSON" err &&
	test "$(wc -l < out)" = 2
'

ok 'on stdin the message is NAME:LINE: reason' '
	printf "{}\n" | { expect_exit 1 ds-sharegpt -q 2> err; } &&
	grep -qx "ds-sharegpt:1: no \"id\" string" err
'

ok '--skip-bad counts and skips malformed lines' '
	{ echo "not json"; head -1 "$IN"; printf "[1]\n{\"id\":\"q\"}\n"; } > bad.jsonl &&
	ds-sharegpt --skip-bad bad.jsonl > out 2> err &&
	test "$(wc -l < out)" = 1 &&
	grep -q "3 bad lines skipped" err
'

ok 'invalid UTF-8 is refused, naming the byte' '
	printf "{\"id\":\"a\\377b\"}\n" > bad.jsonl &&
	expect_exit 1 ds-sharegpt bad.jsonl 2> err &&
	grep -q "^ds-sharegpt:bad.jsonl:1: invalid UTF-8 at byte 9 of the line (0xff)" err
'

ok 'a missing field is named' '
	echo "{\"id\":\"a\",\"problem\":\"p\"}" > bad.jsonl &&
	expect_exit 1 ds-sharegpt bad.jsonl 2> err &&
	grep -q "no \"teacher\" object" err &&
	echo "{\"id\":\"a\",\"teacher\":{}}" > bad2.jsonl &&
	expect_exit 1 ds-sharegpt bad2.jsonl 2> err &&
	grep -q "no \"problem\" string" err &&
	echo "{\"id\":\"a\",\"problem\":\"p\",\"teacher\":{\"reasoning\":5}}" > bad3.jsonl &&
	expect_exit 1 ds-sharegpt bad3.jsonl 2> err &&
	grep -q "is not a string" err
'

ok 'an empty input is an error, not an empty success' '
	: > empty.jsonl &&
	expect_exit 1 ds-sharegpt empty.jsonl > out 2> err &&
	grep -q "no records in the input" err && test ! -s out
'

ok 'a missing input file is reported, exit 1' '
	expect_exit 1 ds-sharegpt nope.jsonl 2> err &&
	grep -q "^ds-sharegpt: nope.jsonl: No such file or directory" err
'

ok 'a cut-short zstd input is an error' '
	zstd -q -c "$IN" | head -c 300 > cut.zst &&
	expect_exit 1 ds-sharegpt cut.zst > out 2> err &&
	grep -q "truncated zstd stream\|corrupt zstd" err
'

ok 'a 200 MB line is converted whole' '
	head -c 200000000 /dev/zero | tr "\0" "y" > big &&
	{ printf "{\"id\":\"big\",\"problem\":\"p\",\"teacher\":{\"content\":\"c\",\"reasoning\":\""; cat big; printf "\"}}\n"; } > big.jsonl &&
	rm big &&
	ds-sharegpt -q big.jsonl > out &&
	test "$(jq ".conversations[1].value | length" out)" = $((200000000 + 20))
'

ok 'a full disk is an error (> /dev/full)' '
	expect_exit 1 ds-sharegpt -q "$IN" > /dev/full 2> err &&
	grep -q "write error.*No space left" err
'

ok 'a reader that goes away ends it quietly (| head -1)' '
	for i in $(seq 2000); do cat "$IN"; done | awk "{ sub(/\"id\":\"/, \"\\\"id\\\":\\\"\" NR); print }" > many.jsonl &&
	test "$(jq -r .id many.jsonl | sort -u | wc -l)" = 18000 &&
	{ ds-sharegpt -q many.jsonl 2> err; echo $? > rc; } | head -1 > /dev/null &&
	test ! -s err && { test "$(cat rc)" = 141 || test "$(cat rc)" = 0; }
'

# ---- restarts ---------------------------------------------------------------

ok 'a rerun with the same -o adds nothing and duplicates nothing' '
	ds-sharegpt -q -o out.jsonl -r rej.jsonl "$IN" &&
	ds-sharegpt -o out.jsonl -r rej.jsonl "$IN" 2> err &&
	diff out.jsonl "$DATA/sharegpt/expected-sharegpt.jsonl" &&
	test "$(wc -l < rej.jsonl)" = 5 &&
	grep -q "0 written, 0 rejected, 9 already done" err
'

ok 'a cut-short last line in -o is removed and redone' '
	head -2 "$DATA/sharegpt/expected-sharegpt.jsonl" > out.jsonl &&
	sed -n 3p "$DATA/sharegpt/expected-sharegpt.jsonl" | head -c 40 >> out.jsonl &&
	ds-sharegpt -q -o out.jsonl "$IN" &&
	diff out.jsonl "$DATA/sharegpt/expected-sharegpt.jsonl"
'

ok 'killed with -9 mid-run, a rerun finishes with nothing lost or doubled' '
	i=0; while [ $i -lt 20000 ]; do i=$((i+1)); echo "{\"id\":\"k/$i\",\"problem\":\"p$i\",\"teacher\":{\"reasoning\":\"r$i\",\"content\":\"c$i\"}}"; done > in.jsonl &&
	ds-sharegpt -q in.jsonl > want &&
	{ ds-sharegpt -q -o out.jsonl in.jsonl & pid=$!; } &&
	# kill once it has written something (a sanitizer build starts slowly)
	j=0; while [ ! -s out.jsonl ] && [ $j -lt 500 ]; do sleep 0.01; j=$((j + 1)); done
	kill -9 $pid 2>/dev/null || :; wait $pid 2>/dev/null || :; touch out.jsonl
	n=$(wc -l < out.jsonl) &&
	ds-sharegpt -q -o out.jsonl in.jsonl &&
	diff out.jsonl want &&
	echo "killed after $n of 20000 lines"
'

ok 'repeated (id, sample) pairs in the input are written once' '
	cat "$IN" "$IN" | ds-sharegpt -q -r rej.jsonl > out 2> err &&
	diff out "$DATA/sharegpt/expected-sharegpt.jsonl" && test "$(wc -l < rej.jsonl)" = 5
'

ok 'an output file holding a non-record is left alone' '
	echo "hello" > out.jsonl &&
	expect_exit 1 ds-sharegpt -q -o out.jsonl "$IN" 2> err &&
	grep -q "^ds-sharegpt: out.jsonl:1: output file holds a bad line (malformed JSON at byte 1" err &&
	test "$(cat out.jsonl)" = hello
'

# ---- usage ----------------------------------------------------------------

ok 'usage errors exit 2 with a short usage on stderr' '
	expect_exit 2 ds-sharegpt --bogus 2> err && grep -q "^usage: ds-sharegpt" err &&
	expect_exit 2 ds-sharegpt -f yaml 2> err && grep -q "unknown format" err &&
	expect_exit 2 ds-sharegpt -o a -r a 2> err && grep -q "same file" err &&
	expect_exit 2 ds-sharegpt --dataset-info x file.jsonl 2> err
'
