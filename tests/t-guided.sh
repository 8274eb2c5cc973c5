#!/bin/sh
# ds-teacher --guided against the local OpenAI-compatible server, in the
# loop it is made for: ds-teacher → ds-judge → ds-teacher --guided →
# ds-judge. The server answers \boxed{N} with N the first integer of the
# prompt, or the N of "answer: N" when the prompt has one
# (tests/servers/README.md): "What is 3 + 3?" gets 3, a wrong answer, and
# keeps getting it under the shipped guidance template, while a template
# that says "Reference answer: {answer}" gets the right one.
. "$(dirname "$0")/lib.sh"
api_start || exit 1
A=$API
trap 'kill $API_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for i in 1 2 3 4 5 6 7 8; do
	echo "{\"id\":\"p/$i\",\"domain\":\"math\",\"problem\":\"What is $i + $i? P-$i-END\",\"answer\":\"$((2 * i))\",\"meta\":{}}"
done > "$WORK/p.jsonl"
# --ordered: the cases below pick records of $W by line number.
ds-teacher -q --ordered --base-url "$A" "$WORK/p.jsonl" > "$WORK/t.jsonl" &&
	ds-judge -q -r "$WORK/wrong.jsonl" "$WORK/t.jsonl" > "$WORK/ok.jsonl" || exit 1
W=$WORK/wrong.jsonl
GUIDED=$TOP/share/prompts/guided.txt
completions() { curl -s "${A%/v1}/_debug/stats" | jq .completions; }

# The first 8 hex digits of sha1 of the prompt that template $1 makes for
# problem $2 of $W: the server reasons "about" them.
prompt_sha() {
	jq -r --rawfile t "$1" --arg id "$2" 'select(.id == $id) | . as $r | $t
		| gsub("\\{problem\\}"; $r.problem) | gsub("\\{answer\\}"; $r.answer)' "$W" > prompt &&
	printf '%s' "$(cat prompt)" | sha1sum | cut -c1-8
}

ok 'the judge rejected every first answer (the setup the rest relies on)' '
	test "$(wc -l < "$W")" = 8 && test ! -s "$WORK/ok.jsonl" &&
	test "$(jq -r .judge.verdict "$W" | sort -u)" = incorrect
'

ok 'a guided run asks again for every wrong answer, marked guided, the failed one under previous' '
	ds-teacher -q --guided --base-url "$A" -o g.jsonl "$W" &&
	test "$(wc -l < g.jsonl)" = 8 &&
	test "$(jq -r "[.teacher.guided, .teacher.sample, .teacher.finish_reason, has(\"judge\")] | @tsv" g.jsonl | sort -u)" = \
		"$(printf "true\t1000\tstop\tfalse")" &&
	jq -c "{id, p: .teacher.previous}" g.jsonl | sort > got &&
	jq -c "{id, p: (.teacher + {judge})}" "$W" | sort > want && diff got want &&
	jq -c "del(.teacher)" g.jsonl | sort > got &&
	jq -c "del(.teacher, .judge)" "$W" | sort > want && diff got want
'

ok 'the prompt is the guidance template with the problem and the reference answer' '
	ds-teacher -q --guided --base-url "$A" "$W" > g.jsonl &&
	sha=$(prompt_sha "$GUIDED" p/3) &&
	grep -q "^The correct final answer to this problem is 6\.$" prompt &&
	grep -q "do not say, anywhere, that the answer was given" prompt &&
	test "$(jq -r "select(.id == \"p/3\") | .teacher.reasoning" g.jsonl | cut -c18-25)" = "$sha"
'

ok 'a guided answer goes through ds-judge like any other: right ones accepted, into the SFT set' '
	printf "{problem}\nReference answer: {answer}\nDerive it step by step.\n" > tpl.txt &&
	ds-teacher -q --guided --template tpl.txt --base-url "$A" "$W" > g.jsonl &&
	test "$(jq -r "select(.id == \"p/3\") | .teacher.reasoning" g.jsonl | cut -c18-25)" = "$(prompt_sha tpl.txt p/3)" &&
	ds-judge -q -r wrong2.jsonl g.jsonl > ok2.jsonl &&
	test "$(wc -l < ok2.jsonl)" = 8 && test ! -s wrong2.jsonl &&
	ds-sharegpt -q ok2.jsonl > sft.jsonl && test "$(wc -l < sft.jsonl)" = 8 &&
	test "$(jq -r "select(.id == \"p/3\") | .conversations[1].value" sft.jsonl | tail -1)" = "The answer is \\boxed{6}."
'

ok 'a failed guided answer owes the next attempt (2000, 3000, ...), up to --max-attempts' '
	ds-teacher -q --guided --base-url "$A" -o g.jsonl "$W" &&
	ds-judge -q -r wrong2.jsonl g.jsonl > /dev/null && test "$(wc -l < wrong2.jsonl)" = 8 &&
	ds-teacher -q --guided --base-url "$A" -o g.jsonl wrong2.jsonl &&
	test "$(jq -r "select(.teacher.sample == 2000) | [.teacher.previous.sample, .teacher.previous.guided, .teacher.previous.previous.sample] | @tsv" g.jsonl | sort -u)" = \
		"$(printf "1000\ttrue\t0")" &&
	test "$(jq -r "select(.teacher.sample == 2000) | .id" g.jsonl | wc -l)" = 8 &&
	ds-judge -q -r wrong3.jsonl g.jsonl > /dev/null && test "$(wc -l < wrong3.jsonl)" = 16 &&
	before=$(completions) &&
	ds-teacher --guided --base-url "$A" -o g.jsonl wrong3.jsonl 2> err &&
	test "$(completions)" = "$before" && test "$(wc -l < g.jsonl)" = 16 &&
	grep -q "8 already done" err && grep -q "8 at the attempt limit (--max-attempts 2)" err &&
	ds-teacher -q --guided --max-attempts 3 --base-url "$A" -o g.jsonl wrong3.jsonl &&
	test "$(jq -r "select(.teacher.sample == 3000) | .id" g.jsonl | wc -l)" = 8
'

ok 'killed with -9 and restarted: one attempt each, and the limit still holds after' '
	api_faults "$A" "chat:latency:300" &&
	{ ds-teacher -q --guided --max-attempts 1 -c 2 --base-url "$A" -o g.jsonl "$W" & pid=$!; } &&
	sleep 0.8; kill -9 $pid 2>/dev/null || :; wait $pid 2>/dev/null || :;
	n=$(wc -l < g.jsonl) && api_faults "$A" "" && test "$n" -lt 8 &&
	sleep 0.5 && # the requests it left in flight are answered to no one; let them end

	ds-teacher --guided --max-attempts 1 --base-url "$A" -o g.jsonl "$W" 2> err &&
	grep -q "$n already done" err &&
	test "$(jq -r "[.id, .teacher.sample] | @tsv" g.jsonl | sort -u | wc -l)" = 8 && test "$(wc -l < g.jsonl)" = 8 &&
	ds-judge -q -r wrong2.jsonl g.jsonl > /dev/null &&
	before=$(completions) &&
	ds-teacher --guided --max-attempts 1 --base-url "$A" -o g.jsonl "$W" wrong2.jsonl 2> err &&
	test "$(completions)" = "$before" && test "$(wc -l < g.jsonl)" = 8 &&
	grep -q "8 at the attempt limit (--max-attempts 1)" err &&
	echo "killed after $n of 8"
'

ok 'several wrong samples of a problem make one request per attempt; the first read is previous' '
	ds-teacher -q -n 3 --base-url "$A" "$WORK/p.jsonl" | ds-judge -q -r w3.jsonl > /dev/null &&
	test "$(wc -l < w3.jsonl)" = 24 &&
	before=$(completions) &&
	ds-teacher -q --guided --base-url "$A" w3.jsonl > g.jsonl &&
	test "$(($(completions) - before))" = 8 && test "$(wc -l < g.jsonl)" = 8 &&
	test "$(jq -r "select(.id == \"p/2\") | .teacher.previous.sample" g.jsonl)" = \
		"$(jq -r "select(.id == \"p/2\") | .teacher.sample" w3.jsonl | head -1)"
'

ok '-n 2: two guided samples per attempt, 1000 and 1001' '
	ds-teacher -q --guided -n 2 --base-url "$A" "$W" > g.jsonl &&
	test "$(wc -l < g.jsonl)" = 16 &&
	test "$(jq -r .teacher.sample g.jsonl | sort -u | tr "\n" " ")" = "1000 1001 "
'

ok 'what is not a wrong answer, or has no reference, is passed over and counted' '
	{ jq -c ".judge.verdict = \"correct\"" "$W" | head -2
	  jq -c "del(.judge)" "$W" | sed -n 3p
	  jq -c ".judge.verdict = \"error\"" "$W" | sed -n 4p
	  jq -c "del(.answer)" "$W" | sed -n 5p
	  jq -c "del(.answer) | .solution = \"Since 6 + 6 = 12, we get \\\\boxed{12}.\"" "$W" | sed -n 6p
	  jq -c ".judge.verdict = \"unparsable\"" "$W" | sed -n 7p
	} > mixed.jsonl &&
	ds-teacher --guided --base-url "$A" mixed.jsonl > g.jsonl 2> err &&
	test "$(jq -r .id g.jsonl | sort | tr "\n" " ")" = "p/6 p/7 " &&
	grep -q "guided: 4 not judged wrong, 1 without a reference answer, 0 at the attempt limit" err &&
	jq -r --rawfile t "$GUIDED" "select(.id == \"p/6\") | . as \$r | \$t | gsub(\"\\\\{problem\\\\}\"; \$r.problem) | gsub(\"\\\\{answer\\\\}\"; \"12\")" mixed.jsonl > prompt &&
	test "$(jq -r "select(.id == \"p/6\") | .teacher.reasoning" g.jsonl | cut -c18-25)" = "$(printf "%s" "$(cat prompt)" | sha1sum | cut -c1-8)"
'

ok 'guided runs keep the rest: --failed with the guided sample number, then a rerun; --stream; --ordered' '
	api_faults "$A" "body=P-3-END:500" &&
	expect_exit 1 ds-teacher -q --guided --retries 1 --base-url "$A" --failed f.jsonl -o g.jsonl "$W" &&
	test "$(jq -r "[.id, .teacher_error.sample, .teacher_error.error] | @tsv" f.jsonl)" = "$(printf "p/3\t1000\tHTTP 500: Server Error")" &&
	test "$(wc -l < g.jsonl)" = 7 && api_faults "$A" "" &&
	ds-teacher -q --guided --base-url "$A" -o g.jsonl f.jsonl &&
	test "$(wc -l < g.jsonl)" = 8 &&
	ds-teacher -q --guided --base-url "$A" "$W" | jq -c "{id, t: (.teacher | del(.latency_ms, .previous.latency_ms))}" | sort > plain &&
	ds-teacher -q --guided --stream --base-url "$A" "$W" | jq -c "{id, t: (.teacher | del(.latency_ms, .previous.latency_ms))}" | sort > streamed &&
	diff plain streamed &&
	ds-teacher -q --guided --ordered -c 4 --base-url "$A" "$W" | jq -r .id > order &&
	jq -r .id "$W" | diff - order
'

ok 'usage errors exit 2' '
	expect_exit 2 ds-teacher --max-attempts 2 2> err && grep -q "goes with --guided" err &&
	expect_exit 2 ds-teacher --guided --max-attempts 0 2> err && grep -q "^usage: ds-teacher" err &&
	expect_exit 2 ds-teacher --guided -n 1001 2> err && grep -q "at most 1000" err
'
