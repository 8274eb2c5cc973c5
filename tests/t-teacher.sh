#!/bin/sh
# ds-teacher against a local OpenAI-compatible server (tests/servers/openai.py)
# that answers deterministically: reasoning "Reasoning about: <sha1[:8]> #<v>. "
# repeated to 120 characters, content "The answer is \boxed{N}." with N the
# first integer of the prompt. Nothing here reaches the network.
. "$(dirname "$0")/lib.sh"
api_start --api-key sk-test-SECRET-42 --model deepseek-reasoner-2025-05-28 || exit 1
A1=$API; P1=$API_PID
api_start --api-key sk-test-SECRET-42 --reasoning think || exit 1
A2=$API
export DS_API_KEY=sk-test-SECRET-42
trap 'kill $P1 $API_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for i in $(seq 0 19); do
	echo "{\"id\":\"p/$i\",\"domain\":\"math\",\"problem\":\"What is $i + $i? P-$i-END\",\"answer\":\"$((2 * i))\",\"meta\":{}}"
done > "$WORK/p.jsonl"
P=$WORK/p.jsonl
# The prompt the math template makes, and what the server will reason about.
prompt0=$(printf 'What is 0 + 0? P-0-END\nPlease reason step by step, and put your final answer within \\boxed{}.')
sha0=$(printf '%s' "$prompt0" | sha1sum | cut -c1-8)

ok 'every problem gets a teacher object, the input fields kept' '
	ds-teacher -q --base-url "$A1" "$P" > out &&
	test "$(wc -l < out)" = 20 &&
	jq -c "del(.teacher)" out | sort > a && sort "$P" > b && diff a b &&
	test "$(jq -r ".teacher | \"\\(.model) \\(.finish_reason) \\(.sample)\"" out | sort -u)" = "deepseek-reasoner-2025-05-28 stop 0" &&
	test "$(jq -r "select(.id == \"p/7\") | .teacher.content" out)" = "The answer is \\boxed{7}." &&
	test "$(jq -r "[.teacher.usage | .prompt_tokens, .completion_tokens, .reasoning_tokens, .cached_tokens] | all(type == \"number\")" out | sort -u)" = true
'

ok 'the prompt is the math template filled in (R1 usage: user turn only)' '
	ds-teacher -q --base-url "$A1" "$P" > out &&
	test "$(jq -r "select(.id == \"p/0\") | .teacher.reasoning" out | cut -c1-29)" = "Reasoning about: $sha0 #0."
'

ok 'reasoning_content, inline <think>, and only </think> give the same chain of thought' '
	ds-teacher -q --base-url "$A1" "$P" | jq -c "{id, r: .teacher.reasoning, c: .teacher.content}" | sort > field &&
	ds-teacher -q --base-url "$A2" "$P" | jq -c "{id, r: .teacher.reasoning, c: .teacher.content}" | sort > think &&
	diff field think &&
	test "$(jq -r .r field | cut -c1-16 | sort -u)" = "Reasoning about:"
'

ok '--stream: the same answers put back together from server-sent events' '
	ds-teacher -q --base-url "$A1" "$P" | jq -c "{id, t: (.teacher | del(.latency_ms))}" | sort > plain &&
	ds-teacher -q --stream --base-url "$A1" "$P" | jq -c "{id, t: (.teacher | del(.latency_ms))}" | sort > streamed &&
	diff plain streamed
'

ok '-n 3: three samples per problem, numbered 0..2' '
	ds-teacher -q -n 3 --base-url "$A1" "$P" > out &&
	test "$(wc -l < out)" = 60 &&
	test "$(jq -r "[.id, .teacher.sample] | @tsv" out | sort -u | wc -l)" = 60 &&
	test "$(jq -r .teacher.sample out | sort -u | tr "\n" " ")" = "0 1 2 "
'

ok '429 with Retry-After, 500, 503 and a cut body are retried; all answered' '
	api_faults "$A1" "chat:429:1@1,chat:500@2,chat:503@1,chat:cut:50@1" &&
	ds-teacher --base-url "$A1" "$P" > out 2> err &&
	test "$(wc -l < out)" = 20 &&
	grep -q "retrying in 1.0s" err &&
	grep -q "retries: 1 connection, 1 rate-limited, 3 server error, 0 bad reply" err &&
	api_faults "$A1" ""
'

ok 'a reply that is not JSON is retried' '
	api_faults "$A1" "chat:malformed@2" &&
	ds-teacher --base-url "$A1" "$P" > out 2> err &&
	test "$(wc -l < out)" = 20 && grep -q "2 bad reply" err &&
	api_faults "$A1" ""
'

ok 'a stream cut before [DONE] is retried' '
	api_faults "$A1" "chat:cut:300@2" &&
	ds-teacher --stream --base-url "$A1" "$P" > out 2> err &&
	test "$(wc -l < out)" = 20 && grep -q "retrying" err &&
	api_faults "$A1" ""
'

ok 'DeepSeek queue keep-alives (blank lines, : keep-alive comments) are understood' '
	api_faults "$A1" "chat:queue:0.3@4" &&
	ds-teacher -q --base-url "$A1" "$P" > a && ds-teacher -q --stream --base-url "$A1" "$P" > b &&
	test "$(wc -l < a)" = 20 && test "$(wc -l < b)" = 20 &&
	api_faults "$A1" ""
'

ok 'a request that keeps failing goes to --failed with its error; exit 1; the rest are answered' '
	api_faults "$A1" "body=P-7-END:500" &&
	expect_exit 1 ds-teacher --retries 2 --base-url "$A1" --failed failed.jsonl "$P" > out 2> err &&
	test "$(wc -l < out)" = 19 &&
	test "$(jq -r "[.id, .teacher_error.error, .teacher_error.attempts] | @tsv" failed.jsonl)" = "$(printf "p/7\tHTTP 500: Server Error\t2")" &&
	grep -q "1 failed (see --failed)" err &&
	api_faults "$A1" ""
'

ok 'without --failed a failed request is named on stderr, never dropped silently' '
	api_faults "$A1" "body=P-7-END:500" &&
	expect_exit 1 ds-teacher --retries 1 --base-url "$A1" "$P" > out 2> err &&
	grep -q "^ds-teacher: p/7: sample 0 failed: HTTP 500" err &&
	api_faults "$A1" ""
'

ok '402 (balance exhausted) stops the run cleanly, keeping what is done' '
	api_faults "$A1" "body=P-1[0-9]-END:402" &&
	expect_exit 1 ds-teacher -c 1 --ordered --base-url "$A1" --failed f.jsonl "$P" > out 2> err &&
	grep -q "HTTP 402.*balance exhausted.*stopping" err &&
	test "$(wc -l < out)" = 10 && test "$(jq -r .id out | head -1)" = p/0 &&
	api_faults "$A1" ""
'

ok 'a wrong key: 401 stops the run; the key never appears anywhere' '
	expect_exit 1 env DS_API_KEY=sk-wrong ds-teacher --base-url "$A1" "$P" > out 2> err &&
	grep -q "HTTP 401" err &&
	echo sk-test-SECRET-42 > key && chmod 600 key &&
	env -u DS_API_KEY ds-teacher --api-key-file key --base-url "$A1" --stats st.json "$P" > out 2> err &&
	test "$(wc -l < out)" = 20 &&
	curl -s "${A1%/v1}/_debug/requests" > log.json &&
	! grep -q SECRET out err st.json log.json "$WORK/api.log"
'

ok 'a server that quotes the Authorization header in its 401: the key masked in every message and file' '
	api_start --api-key sk-the-right-one-000 --echo-auth && E=$API && EP=$API_PID &&
	expect_exit 1 ds-teacher --base-url "$E" --failed f.jsonl -o out "$P" 2> err &&
	{ kill $EP || true; } &&
	grep -q "HTTP 401: Authentication Fails, Your api key is invalid: got .Bearer \*\*\*." err &&
	! grep -q SECRET err f.jsonl out
'

ok 'killed with -9 mid-run, a rerun with the same -o ends with every (id, sample) once' '
	api_faults "$A1" "chat:latency:300" &&
	{ ds-teacher -q -c 4 -n 2 --base-url "$A1" -o out.jsonl "$P" & pid=$!; } &&
	sleep 1; kill -9 $pid 2>/dev/null || :; wait $pid 2>/dev/null || :;
	n=$(wc -l < out.jsonl) && api_faults "$A1" "" &&
	ds-teacher -c 8 -n 2 --base-url "$A1" -o out.jsonl "$P" 2> err &&
	test "$(wc -l < out.jsonl)" = 40 &&
	test "$(jq -r "[.id, .teacher.sample] | @tsv" out.jsonl | sort -u | wc -l)" = 40 &&
	grep -q "$n already done" err && echo "killed after $n of 40"
'

ok '--ordered writes in input order; by default answers come as they complete' '
	api_faults "$A1" "body=P-0-END:slow:0.6" &&
	ds-teacher -q -c 8 --base-url "$A1" "$P" | jq -r .id > free &&
	ds-teacher -q -c 8 --ordered --base-url "$A1" "$P" | jq -r .id > ordered &&
	jq -r .id "$P" | diff ordered - && test "$(tail -1 free)" = p/0 &&
	api_faults "$A1" ""
'

ok '-c 16 keeps 16 requests in flight (one thread, libcurl multi)' '
	curl -s -X DELETE "${A1%/v1}/_debug/requests" > /dev/null;
	api_faults "$A1" "chat:latency:400" &&
	ds-teacher -q -c 16 --base-url "$A1" "$P" > out &&
	curl -s "${A1%/v1}/_debug/stats" > st.json &&
	test "$(jq .max_in_flight st.json)" -ge 16 &&
	api_faults "$A1" ""
'

ok 'several servers share the load; a dead one is set aside and nothing is lost' '
	ds-teacher --base-url "$A1" --base-url "$A2" --stats st.json "$P" > out 2> err &&
	test "$(wc -l < out)" = 20 &&
	test "$(jq "[.servers[] | .ok] | min" st.json)" -ge 3 &&
	ds-teacher --retries 6 --base-url "$A1" --base-url http://127.0.0.1:9/v1 "$P" > out 2> err &&
	test "$(wc -l < out)" = 20
'

ok '--shard i/n splits the problems: disjoint, and together all of them' '
	for i in 0 1 2; do ds-teacher -q --shard $i/3 --base-url "$A1" "$P" | jq -r .id > s$i; done &&
	cat s0 s1 s2 | sort > all && jq -r .id "$P" | sort > want && diff all want &&
	test -s s0 && test -s s1 && test -s s2
'

ok 'a code problem gets the code template with its starter code' '
	echo "{\"id\":\"c/1\",\"domain\":\"code\",\"problem\":\"Add two numbers.\",\"starter_code\":\"def add(a, b):\"}" > c.jsonl &&
	curl -s -X DELETE "${A1%/v1}/_debug/requests" > /dev/null;
	ds-teacher -q --base-url "$A1" c.jsonl > out &&
	sha=$(printf "Add two numbers.\nUse this starter code:\n\`\`\`python\ndef add(a, b):\n\`\`\`\nWrite a complete Python 3 solution. Unless starter code is given, read the input from standard input and print the answer to standard output. Put the final program in one \`\`\`python code block." | sha1sum | cut -c1-8) &&
	test "$(jq -r .teacher.reasoning out | cut -c18-25)" = "$sha"
'

ok 'bad input lines are named; --skip-bad counts them' '
	printf "{\"id\":\"x\"}\nnot json\n" > bad.jsonl &&
	expect_exit 1 ds-teacher -q --base-url "$A1" bad.jsonl 2> err &&
	grep -q "^ds-teacher:bad.jsonl:1: record without" err &&
	cat bad.jsonl "$P" > mixed.jsonl &&
	ds-teacher --skip-bad --base-url "$A1" mixed.jsonl > out 2> err &&
	test "$(wc -l < out)" = 20 && grep -q "2 bad lines skipped" err
'

ok 'the cost comes from the price table by model-name prefix, in the summary and --stats' '
	echo "{\"deepseek-reasoner\": {\"input_cache_hit\": 1, \"input_cache_miss\": 2, \"output\": 10}}" > prices.json &&
	ds-teacher --base-url "$A1" --price prices.json --stats st.json "$P" > out 2> err &&
	test "$(jq "(.tokens.cached * 1 + (.tokens.prompt - .tokens.cached) * 2 + .tokens.completion * 10) / 1e6 - .cost_usd | fabs < 1e-9" st.json)" = true &&
	grep -q "; cost \$0.00" err
'

ok '--deadline stops sending; what is unsent is failed, never lost; exit 1' '
	api_faults "$A1" "chat:latency:400" &&
	expect_exit 1 ds-teacher -c 2 --deadline 0.5 --base-url "$A1" --failed f.jsonl "$P" > out 2> err &&
	grep -q "deadline has passed" err &&
	test "$(($(wc -l < out) + $(wc -l < f.jsonl)))" -ge 2 && test "$(wc -l < out)" -lt 20 &&
	api_faults "$A1" ""
'

ok '--rpm 600 spaces the requests 0.1 s apart (the server'"'"'s clock says so)' '
	curl -s -X DELETE "${A1%/v1}/_debug/requests" > /dev/null;
	ds-teacher -q -c 16 --rpm 600 --base-url "$A1" "$P" > out &&
	test "$(wc -l < out)" = 20 &&
	curl -s "${A1%/v1}/_debug/requests" > log.json &&
	test "$(jq "[.requests[].t] | (max - min) >= 1.8" log.json)" = true
'

# ---- --logprobs K: soft labels (issue #21) ---------------------------------------
# The prompt is the problem itself (--template {problem}), so that
# tests/oracle/lp_reference.py can ask the server the same question and build
# teacher.logprobs from its entries as the contract says, apart from ds-teacher.
printf "{problem}" > "$WORK/tpl"
printf "%s\n" "{\"id\":\"u/1\",\"problem\":\"What is 6 \\u221a 2? U-1-END\"}" \
	"{\"id\":\"u/2\",\"problem\":\"caf\\u00e9 au lait: 5 U-2-END\"}" \
	"{\"id\":\"u/3\",\"problem\":\"Plain 7 U-3-END\"}" > "$WORK/u.jsonl"
U=$WORK/u.jsonl
LPREF=$TOP/tests/oracle/lp_reference.py

ok '--logprobs 1, 5, 20: teacher.logprobs as the contract builds it, streaming or not' '
	for k in 1 5 20; do
		ds-teacher -q --template "$WORK/tpl" --logprobs $k --base-url "$A1" "$U" > plain$k &&
		python3 "$LPREF" "$A1" $k plain$k &&
		ds-teacher -q --stream --template "$WORK/tpl" --logprobs $k --base-url "$A1" "$U" > streamed$k &&
		python3 "$LPREF" "$A1" $k streamed$k &&
		jq -c "{id, r: .teacher.reasoning, c: .teacher.content, l: .teacher.logprobs}" plain$k | sort > a &&
		jq -c "{id, r: .teacher.reasoning, c: .teacher.content, l: .teacher.logprobs}" streamed$k | sort > b &&
		cmp a b && test "$(jq .teacher.logprobs.k plain$k | sort -u)" = $k || exit 1
	done &&
	jq -c "{id, t: .teacher | del(.logprobs, .latency_ms, .usage.cached_tokens)}" plain5 | sort > with &&
	ds-teacher -q --template "$WORK/tpl" --base-url "$A1" "$U" |
		jq -c "{id, t: .teacher | del(.latency_ms, .usage.cached_tokens)}" | sort > without &&
	diff with without
'

ok '--logprobs: a character cut across two tokens is two byte arrays; numbers have 6 digits' '
	ds-teacher -q --template "$WORK/tpl" --logprobs 5 --base-url "$A1" "$U" > out &&
	test "$(jq -c "select(.id == \"u/1\") | [.teacher.logprobs.tokens[] | arrays] | unique" out)" = "[[136,154],[226]]" &&
	test "$(jq -c "select(.id == \"u/2\") | [.teacher.logprobs.tokens[] | arrays] | unique" out)" = "[[169],[195]]" &&
	test "$(jq "select(.id == \"u/3\") | [.teacher.logprobs.tokens[] | arrays] | length" out)" = 0 &&
	test "$(jq "[.teacher.logprobs | .logprob[], .top[][] | numbers] | length > 300" out | sort -u)" = true &&
	test "$(jq "[.teacher.logprobs | .logprob[], .top[][] | numbers | tostring | sub(\"e.*\"; \"\") |
		gsub(\"[-.]\"; \"\") | sub(\"^0+\"; \"\") | length] | max" out | sort -u)" = 6
'

ok '--logprobs with inline <think> (no reasoning parser): the tokens spell the raw content' '
	ds-teacher -q --template "$WORK/tpl" --logprobs 3 --base-url "$A2" "$U" > out &&
	python3 "$LPREF" "$A2" 3 out &&
	ds-teacher -q --stream --template "$WORK/tpl" --logprobs 3 --base-url "$A2" "$U" > s &&
	python3 "$LPREF" "$A2" 3 s &&
	test "$(jq -r ".teacher.logprobs.tokens[0]" out | sort -u)" = "<think>"
'

ok '--logprobs: a server that ignores them stops the run, naming the model and the record; nothing written' '
	api_faults "$A1" "chat:nologprobs" &&
	expect_exit 1 ds-teacher -c 1 --logprobs 5 --base-url "$A1" -o out.jsonl --failed f.jsonl "$P" 2> err &&
	test ! -s out.jsonl &&
	grep -q "deepseek-reasoner-2025-05-28 sent no logprobs for p/0 (sample 0).*the server ignores them; stopping" err &&
	test "$(head -1 f.jsonl | jq -r .teacher_error.error)" = "deepseek-reasoner-2025-05-28 sent no logprobs for p/0 (sample 0) though asked (logprobs true, top_logprobs 5): the server ignores them" &&
	grep -q "stopped before the end of the input: rerun with the same -o" err &&
	expect_exit 1 ds-teacher -q --stream --logprobs 5 --base-url "$A1" "$P" > out 2> err &&
	test ! -s out && grep -q "sent no logprobs" err &&
	api_faults "$A1" ""
'

ok '--logprobs K above what the server gives (it caps top_logprobs) is an error; a K it gives works' '
	api_faults "$A1" "chat:toplogprobs:3" &&
	expect_exit 1 ds-teacher --logprobs 5 --base-url "$A1" "$P" > out 2> err &&
	test ! -s out &&
	grep -q "deepseek-reasoner-2025-05-28 sent 3 top_logprobs (at token 0) where 5 were asked, for p/[0-9]* (sample 0): the server caps" err &&
	ds-teacher -q --logprobs 3 --base-url "$A1" "$P" > out &&
	test "$(wc -l < out)" = 20 &&
	api_faults "$A1" ""
'

ok '--logprobs: records whose replies lack them fail, the rest are written in order; a rerun completes them once' '
	api_faults "$A1" "body=P-(3|7)-END:nologprobs" &&
	expect_exit 1 ds-teacher -c 1 --ordered --logprobs 2 --base-url "$A1" -o out.jsonl --failed f.jsonl "$P" 2> err &&
	test "$(wc -l < out.jsonl)" = 18 &&
	jq -r .id "$P" | grep -v -x -e p/3 -e p/7 > want && jq -r .id out.jsonl | diff - want &&
	test "$(jq -r .id f.jsonl | tr "\n" " ")" = "p/3 p/7 " &&
	jq -r .teacher_error.error f.jsonl | grep -q "^deepseek-reasoner-2025-05-28 sent no logprobs for p/7 (sample 0)" &&
	! grep -q "stopping" err &&
	api_faults "$A1" "" &&
	ds-teacher --logprobs 2 --base-url "$A1" -o out.jsonl "$P" 2> err &&
	grep -q "18 already done" err &&
	test "$(jq -r .id out.jsonl | sort | uniq -d | wc -l)" = 0 &&
	test "$(wc -l < out.jsonl)" = 20 &&
	test "$(jq .teacher.logprobs.k out.jsonl | sort -u)" = 2
'

ok '--logprobs: tokens that do not spell the text (vLLM-style bytes of U+FFFD) fail that record only' '
	api_faults "$A1" "chat:fffd" &&
	expect_exit 1 ds-teacher --template "$WORK/tpl" --logprobs 5 --base-url "$A1" --failed f.jsonl "$U" > out 2> err &&
	test "$(jq -r .id out | sort | tr "\n" " ")" = "u/3 " &&
	test "$(jq -r .id f.jsonl | sort | tr "\n" " ")" = "u/1 u/2 " &&
	jq -r .teacher_error.error f.jsonl | grep -q "whose tokens do not spell the reply.s text.*U+FFFD" &&
	api_faults "$A1" ""
'

ok '--logprobs: retried replies (500, a cut stream) still carry them' '
	api_faults "$A1" "chat:500@2,chat:cut:300@2" &&
	ds-teacher -q --stream --logprobs 5 --base-url "$A1" "$P" > out &&
	test "$(wc -l < out)" = 20 && test "$(jq .teacher.logprobs.k out | sort -u)" = 5 &&
	api_faults "$A1" ""
'

ok '--logprobs: killed with -9 mid-run, a rerun with the same -o ends with every (id, sample) once' '
	api_faults "$A1" "chat:latency:300" &&
	{ ds-teacher -q -c 4 -n 2 --stream --logprobs 5 --base-url "$A1" -o out.jsonl "$P" & pid=$!; } &&
	sleep 1; kill -9 $pid 2>/dev/null || :; wait $pid 2>/dev/null || :;
	n=$(wc -l < out.jsonl) && api_faults "$A1" "" &&
	ds-teacher -c 8 -n 2 --logprobs 5 --base-url "$A1" -o out.jsonl "$P" 2> err &&
	test "$(wc -l < out.jsonl)" = 40 &&
	test "$(jq -r "[.id, .teacher.sample] | @tsv" out.jsonl | sort -u | wc -l)" = 40 &&
	test "$(jq .teacher.logprobs.k out.jsonl | sort -u)" = 5 &&
	grep -q "$n already done" err && echo "killed after $n of 40"
'

ok '--logprobs wants 1..20; not with --offline' '
	for k in 0 21 -1 x ""; do
		expect_exit 2 ds-teacher --logprobs "$k" "$P" 2> err &&
		grep -q "^ds-teacher: --logprobs wants a count from 1 to 20" err || exit 1
	done &&
	expect_exit 2 ds-teacher --offline --logprobs 5 "$P" 2> err && grep -q "offline" err
'

ok 'usage errors exit 2; --help lists every option of the man page' '
	expect_exit 2 ds-teacher --bogus 2> err && grep -q "^usage: ds-teacher" err &&
	expect_exit 2 ds-teacher -c 0 2> err &&
	ds-teacher --help | grep -o -- "--[a-z][a-z-]*" | sort -u > help.opts &&
	sed -n "/^\.SH OPTIONS/,/^\.SH EXIT/p" "$TOP/man/man1/ds-teacher.1" |
		grep -o "\\\\-\\\\-[a-z][a-z\\\\-]*" | sed "s/\\\\//g" | sort -u > man.opts &&
	diff help.opts man.opts
'

ok 'the test server itself answers as the API does, proven with the official openai client' '
	python3 "$TOP/tests/servers/test_openai.py" > log 2>&1 || { grep -v "^ok" log | tail -30; false; } &&
	tail -1 log | grep -q " 0 failed"
'

# ---- --offline: the dataset's own chain of thought -------------------------------

ok '--offline takes the solution (or the thought) as the answer, sends nothing, and resumes' '
	printf "%s\n" "{\"id\":\"a\",\"problem\":\"1+1?\",\"domain\":\"math\",\"answer\":\"2\",\"solution\":\"Add.\\n\\nSo \\\\boxed{2}.\"}" \
		"{\"id\":\"b\",\"problem\":\"?\",\"solution\":\"Think.\\n\\nThe result is 5.\"}" \
		"{\"id\":\"c\",\"problem\":\"?\",\"meta\":{\"thought\":\"long thought\"},\"solution\":\"Short.\"}" \
		"{\"id\":\"d\",\"problem\":\"no solution\"}" > in.jsonl &&
	DS_API_KEY= ds-teacher --offline --base-url http://127.0.0.1:9/v1 -o out.jsonl --failed f.jsonl in.jsonl 2> err &&
	test "$(jq -c "[.id, .teacher.reasoning, .teacher.content, .teacher.model, .teacher.offline]" out.jsonl)" = \
"$(printf "%s\n" "[\"a\",\"Add.\\n\\nSo \\\\boxed{2}.\",\"The final answer is \$\\\\boxed{2}\$.\",\"offline\",true]" \
	"[\"b\",\"Think.\\n\\nThe result is 5.\",\"The result is 5.\",\"offline\",true]" \
	"[\"c\",\"long thought\",\"Short.\",\"offline\",true]")" &&
	test "$(jq -r ".id, .teacher_error.error" f.jsonl | tr "\n" "|")" = "d|--offline: the record has no \"solution\" to take as the answer|" &&
	ds-judge -r rej.jsonl out.jsonl > judged.jsonl && jq -r "select(.id == \"a\") | .judge.verdict" judged.jsonl | grep -qx correct &&
	ds-teacher --offline -o out.jsonl in.jsonl 2> err2 && test "$(wc -l < out.jsonl)" = 3 &&
	expect_exit 2 ds-teacher --offline -n 2 in.jsonl 2> /dev/null &&
	expect_exit 2 ds-teacher --offline --guided in.jsonl 2> /dev/null
'
