#!/bin/sh
# ds-judge --llm: grading by a chat model, against the local OpenAI-compatible
# server (tests/servers/openai.py). The server's reply to a prompt holding
# "grade=correct|incorrect|garbage|double" is a grader's reply ending in
# "VERDICT: CORRECT", "VERDICT: INCORRECT", no verdict, or two verdicts; the
# marker travels in the teacher's answer, which the grading prompt shows.
# Nothing here reaches the network.
. "$(dirname "$0")/lib.sh"
KEY=sk-test-GRADER-7f3a
api_start --api-key $KEY --model deepseek-chat || exit 1
A1=$API; P1=$API_PID
api_start --api-key $KEY --reasoning think || exit 1
A2=$API
export DS_API_KEY=$KEY
trap 'kill $P1 $API_PID 2>/dev/null; rm -rf "$WORK"' EXIT

# Twelve science records (even: graded correct, odd: incorrect); two math
# records and a code record without tests, whose markers say the opposite
# of their rules (or, for code, what the rule cannot say).
for i in $(seq 0 11); do
	g=correct; [ $((i % 2)) = 1 ] && g=incorrect
	jq -nc --arg i "$i" --arg g "$g" '{id: "s/\($i)", source: "sci", domain: "science",
		problem: "Why is the sky blue? (\($i))", answer: "Rayleigh scattering",
		teacher: {content: "Rayleigh scattering, I think. grade=\($g)", sample: 0}}'
done > "$WORK/sci.jsonl"
cat > "$WORK/rule.jsonl" <<'EOF'
{"id":"m/1","domain":"math","problem":"1+1? grade=incorrect","answer":"2","teacher":{"content":"\\boxed{2} grade=incorrect"}}
{"id":"m/2","domain":"math","problem":"2+2?","answer":"4","teacher":{"content":"\\boxed{5} grade=correct"}}
{"id":"c/1","domain":"code","problem":"Print 1.","solution":"print(1)","teacher":{"content":"```python\nprint(1)  # grade=correct\n```"}}
EOF
S=$WORK/sci.jsonl
R=$WORK/rule.jsonl

# stats: reset the server's counters; requests: completions since then.
stats_reset() { curl -s -X DELETE "${1:-${A1%/v1}}/_debug/requests" > /dev/null; }
requests() { curl -s "${1:-${A1%/v1}}/_debug/stats" | jq .requests; }

ok 'correct and incorrect verdicts; method llm; the reason is the justification' '
	stats_reset &&
	ds-judge -q --llm --llm-base-url "$A1" -r rej.jsonl "$S" > out &&
	test "$(wc -l < out)" = 6 && test "$(wc -l < rej.jsonl)" = 6 &&
	test "$(jq -r .judge.verdict out | sort -u)" = correct &&
	test "$(jq -r .judge.verdict rej.jsonl | sort -u)" = incorrect &&
	test "$(jq -r .judge.method out rej.jsonl | sort -u)" = llm &&
	test "$(jq -r .judge.reason out | sort -u)" = "The candidate'"'"'s final answer agrees with the reference answer." &&
	test "$(jq -r .judge.reason rej.jsonl | sort -u)" = "The candidate'"'"'s final answer differs from the reference answer." &&
	jq -c "del(.judge)" out rej.jsonl | sort > a && sort "$S" > b && diff a b &&
	test "$(requests)" = 12
'

ok 'the prompt is the template filled in; --llm-template replaces it' '
	stats_reset &&
	printf "P={problem}\nA={answer}\nS={solution}\nC={candidate} {other}\n" > t.txt &&
	head -1 "$S" | ds-judge -q --llm --llm-base-url "$A1" --llm-template t.txt > out &&
	want=$(printf "P=Why is the sky blue? (0)\nA=Rayleigh scattering\nS=(none given)\nC=Rayleigh scattering, I think. grade=correct {other}" | sha1sum | cut -d" " -f1) &&
	test "$(curl -s "${A1%/v1}/_debug/requests" | jq -r ".requests[-1].last_user_sha1")" = "$want" &&
	test "$(curl -s "${A1%/v1}/_debug/requests" | jq -r ".requests[-1] | [.model, .temperature] | @tsv")" = "$(printf "deepseek-chat\t0")" &&
	head -1 "$S" | ds-judge -q --llm --llm-base-url "$A1" > out &&
	test "$(curl -s "${A1%/v1}/_debug/requests" | jq -r ".requests[-1].last_user_sha1")" != "$want" &&
	test "$(jq -r .judge.verdict out)" = correct
'

ok '--llm leaves math and code to their rules: no request for them' '
	stats_reset &&
	cat "$R" "$S" | ds-judge -q --llm --llm-base-url "$A1" -r rej.jsonl > out &&
	test "$(requests)" = 12 &&
	test "$(jq -r "select(.id == \"m/1\") | .judge | [.verdict, .method] | @tsv" out)" = "$(printf "correct\tmath")" &&
	test "$(jq -r "select(.id == \"m/2\") | .judge | [.verdict, .method] | @tsv" rej.jsonl)" = "$(printf "incorrect\tmath")" &&
	test "$(jq -r "select(.id == \"c/1\") | .judge | [.verdict, .method] | @tsv" rej.jsonl)" = "$(printf "error\tcode")"
'

ok '--llm-all grades math and code too' '
	stats_reset &&
	ds-judge -q --llm-all --llm-base-url "$A1" -r rej.jsonl "$R" > out &&
	test "$(requests)" = 3 &&
	test "$(jq -r "[.id, .judge.verdict, .judge.method] | @tsv" out rej.jsonl | sort)" = "$(printf "c/1\tcorrect\tllm\nm/1\tincorrect\tllm\nm/2\tcorrect\tllm")"
'

ok 'without --llm other domains are not graded (error, no request)' '
	stats_reset &&
	ds-judge -q -r rej.jsonl "$S" > out &&
	test ! -s out && test "$(jq -r .judge.verdict rej.jsonl | sort -u)" = error &&
	test "$(requests)" = 0
'

ok 'a reply without a verdict is asked again, then judged error with the reply quoted' '
	stats_reset &&
	head -1 "$S" | sed "s/grade=correct/grade=garbage/" > g.jsonl &&
	ds-judge --llm --llm-base-url "$A1" -r rej.jsonl g.jsonl > out 2> err &&
	test ! -s out && test "$(requests)" = 3 &&
	test "$(jq -r .judge.verdict rej.jsonl)" = error &&
	test "$(jq -r .judge.method rej.jsonl)" = llm &&
	jq -r .judge.reason rej.jsonl | grep -q "^the grader.s reply has no verdict line (asked 3 times); its last reply: \"I cannot tell whether this answer is right.\"$" &&
	grep -q "asking again (3 of 3)" err &&
	stats_reset &&
	ds-judge -q --llm --llm-base-url "$A1" --llm-retries 1 g.jsonl > out && test "$(requests)" = 1
'

ok 'two verdicts are no verdict: never guessed' '
	head -1 "$S" | sed "s/grade=correct/grade=double/" > d.jsonl &&
	ds-judge -q --llm --llm-base-url "$A1" --llm-retries 2 -r rej.jsonl d.jsonl > out &&
	test ! -s out &&
	jq -r .judge.reason rej.jsonl | grep -q "^the grader.s reply has 2 verdict lines (asked 2 times)"
'

ok 'a grader that thinks inline (<think>...</think>): the verdict is read after it' '
	ds-judge -q --llm --llm-base-url "$A2" --explain -r rej.jsonl "$S" > out &&
	test "$(wc -l < out)" = 6 && test "$(wc -l < rej.jsonl)" = 6 &&
	test "$(jq -r .judge.explain.reply out | grep -c "<think>")" = 0
'

ok '5xx and 429 are retried (lib/http.c policy); every record judged' '
	stats_reset &&
	api_faults "$A1" "chat:500@2,chat:503@1,chat:502@1,chat:429:0@1" &&
	ds-judge --llm --llm-base-url "$A1" -c 4 -r rej.jsonl "$S" > out 2> err &&
	api_faults "$A1" "" &&
	test "$(cat out rej.jsonl | wc -l)" = 12 &&
	test "$(requests)" = 17 &&
	grep -q "retrying in .*(HTTP 500)" err && grep -q "(HTTP 502)" err &&
	grep -q "12 read, 6 correct, 6 rejected.*; 17 grading requests" err
'

ok 'a server error that outlasts the retries: not judged, not written, exit 1' '
	api_faults "$A1" "body=\\(3\\):500" &&
	expect_exit 1 env DS_RETRY_ATTEMPTS=2 ds-judge --llm --llm-base-url "$A1" -o ok.jsonl -r rej.jsonl "$S" 2> err &&
	api_faults "$A1" "" &&
	test "$(cat ok.jsonl rej.jsonl | wc -l)" = 11 &&
	grep -q "s/3: not judged: HTTP 500: Server Error (2 tries)" err &&
	grep -q "1 record not judged: rerun with the same -o and -r" err &&
	stats_reset &&
	ds-judge -q --llm --llm-base-url "$A1" -o ok.jsonl -r rej.jsonl "$S" &&
	test "$(requests)" = 1 &&
	test "$(jq -r .id ok.jsonl rej.jsonl | sort | uniq -d | wc -l)" = 0 &&
	test "$(cat ok.jsonl rej.jsonl | wc -l)" = 12
'

ok '401: stops at once with a clear message; the key is never printed' '
	stats_reset &&
	expect_exit 1 env DS_API_KEY=sk-WRONG-1234 ds-judge --llm --llm-base-url "$A1" -c 1 -o ok.jsonl -r rej.jsonl "$S" > out 2> err &&
	test "$(requests)" = 1 &&
	grep -q "HTTP 401: Authentication Fails, Your api key is invalid (check the API key); stopping" err &&
	grep -q "the rest of the input not read" err &&
	test ! -s ok.jsonl && test ! -s rej.jsonl &&
	! grep -rq "sk-WRONG-1234" err out ok.jsonl rej.jsonl
'

ok 'a server that quotes the Authorization header in its 401: the key masked' '
	api_start --api-key sk-the-right-one-000 --echo-auth && E=$API && EP=$API_PID &&
	expect_exit 1 ds-judge --llm --llm-base-url "$E" -c 1 -o ok.jsonl -r rej.jsonl "$S" > out 2> err &&
	{ kill $EP || true; } &&
	grep -q "HTTP 401: Authentication Fails, Your api key is invalid: got .Bearer \*\*\*." err &&
	! grep -rq "GRADER" err out ok.jsonl rej.jsonl
'

ok 'the key: from --api-key-file, never printed, logged or written' '
	printf "%s\n" "$KEY" > key.txt &&
	env -u DS_API_KEY ds-judge --llm --llm-base-url "$A1" --api-key-file key.txt --explain -r rej.jsonl "$S" > out 2> err &&
	test "$(wc -l < out)" = 6 &&
	expect_exit 1 env -u DS_API_KEY ds-judge --llm --llm-base-url "$A1" "$S" > out2 2> err2 &&
	grep -q "check the API key" err2 &&
	! grep -rq "$KEY" err out rej.jsonl err2 out2 "$WORK/api.log"
'

ok '-c N: N requests in flight, records written in input order' '
	stats_reset &&
	api_faults "$A1" "chat:latency:300" &&
	ds-judge -q --llm --llm-base-url "$A1" -c 6 --summary "$S" 2> err > out &&
	api_faults "$A1" "" &&
	test "$(curl -s "${A1%/v1}/_debug/stats" | jq .max_in_flight)" = 6 &&
	jq -r .id out > got && jq -r "select(.teacher.content | test(\"=correct\")) | .id" "$S" > want && diff got want &&
	stats_reset &&
	cat "$R" "$S" "$R" | ds-judge -q --llm --llm-base-url "$A1" -c 5 -r rej.jsonl > out &&
	jq -r .id "$R" "$S" > want && cat out rej.jsonl > /dev/null &&
	jq -r .id out > o && jq -r .id rej.jsonl > j &&
	grep -v -x -f o want > want.rej && diff want.rej j &&
	grep -x -f o want > want.ok && diff want.ok o
'

ok 'restartable: a rerun with the same -o and -r sends nothing' '
	ds-judge -q --llm --llm-base-url "$A1" -o ok.jsonl -r rej.jsonl "$R" "$S" &&
	stats_reset &&
	ds-judge --llm --llm-base-url "$A1" -o ok.jsonl -r rej.jsonl "$R" "$S" 2> err &&
	test "$(requests)" = 0 &&
	grep -q "15 read, 0 correct, 0 rejected, 15 already done.*; 0 grading requests" err &&
	test "$(cat ok.jsonl rej.jsonl | wc -l)" = 15
'

ok '--summary counts method llm' '
	cat "$R" "$S" | ds-judge -q --llm --llm-base-url "$A1" --summary > /dev/null 2> err &&
	grep -qx "ds-judge: method llm: accuracy 0.5000 (6/12); correct 6, incorrect 6, unparsable 0, error 0" err &&
	grep -qx "ds-judge: method math: accuracy 0.5000 (1/2); correct 1, incorrect 1, unparsable 0, error 0" err
'

ok 'records the grader cannot help with get no request' '
	stats_reset &&
	{ echo "{\"id\":\"e/1\",\"domain\":\"science\",\"problem\":\"q\",\"answer\":\"a\",\"teacher\":{\"content\":\"\",\"reasoning\":\"cut short\"}}";
	  echo "{\"id\":\"e/2\",\"domain\":\"science\",\"problem\":\"q\",\"teacher\":{\"content\":\"x grade=correct\"}}"; } > e.jsonl &&
	ds-judge -q --llm --llm-base-url "$A1" -r rej.jsonl e.jsonl > out &&
	test "$(requests)" = 0 &&
	test "$(jq -r "[.id, .judge.verdict] | @tsv" rej.jsonl)" = "$(printf "e/1\tunparsable\ne/2\terror")"
'

ok 'usage errors: grader options without --llm, both modes, a template without {candidate}' '
	expect_exit 2 ds-judge --llm-model x "$S" 2> err && grep -q "need --llm" err &&
	expect_exit 2 ds-judge -c 4 "$S" 2> err &&
	expect_exit 2 ds-judge --llm --llm-all "$S" 2> err &&
	expect_exit 2 ds-judge --llm -c 0 "$S" 2> err &&
	echo "{problem}" > t.txt &&
	expect_exit 2 ds-judge --llm --llm-template t.txt "$S" 2> err && grep -q "no {candidate}" err &&
	expect_exit 2 ds-judge --llm --llm-template nosuch.txt "$S" 2> err &&
	expect_exit 2 ds-judge --llm --api-key-file nosuch.key "$S" 2> err
'
