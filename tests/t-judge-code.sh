#!/bin/sh
# ds-judge: code, by running it in the sandbox; hostile programs; options.
. "$(dirname "$0")/lib.sh"
C=$DATA/judge/code
# Small limits keep the hostile cases quick.
LIM='--timeout 1 --memory 256'

# "id | verdict | reason" of every record judged, in input order.
verdicts() {
	cat ok.jsonl rej.jsonl | jq -s -r 'sort_by(.n) | .[] | "\(.id) | \(.judge.verdict) | \(.judge.reason)"'
}
# Number the records, so verdicts() can put them back in order.
numbered() { jq -c '. + {n: input_line_number}' "$@"; }

# The sandbox's live processes (zombies aside): those of its uid when we are
# root (sandbox.h's SANDBOX_UID), else the candidate programs by name.
leftovers() {
	if [ "$(id -u)" = 0 ]; then ps -eo uid=,stat= | grep -c '^ *2147352576 *[^Z ]' || true
	else ps -eo stat=,args= | grep -c '^[^Z ]* .*-I [mc][ai][il][nl]\.py' || true; fi
}

# ---- ordinary programs ---------------------------------------------------------

ok 'verdicts and reasons: stdin and call-based, right, wrong, broken, no code, no tests' '
	numbered "$C/records.jsonl" > in.jsonl &&
	ds-judge -q -o ok.jsonl -r rej.jsonl in.jsonl &&
	verdicts > got &&
	cat > want <<-\EOT &&
	stdin/ok | correct | all 3 cases pass
	stdin/last-block | correct | all 3 cases pass
	stdin/other-language | correct | all 3 cases pass
	stdin/whitespace | correct | all 3 cases pass
	stdin/wrong | incorrect | case 1 of 3: wrong answer: line 1: expected "3", got "-1"
	stdin/wrong-later | incorrect | case 3 of 3: wrong answer: line 1: expected "0", got "1"
	stdin/syntax | incorrect | compile error: SyntaxError: '"'"'('"'"' was never closed (line 1)
	stdin/runtime | incorrect | case 1 of 3: runtime error: ZeroDivisionError: integer division or modulo by zero
	stdin/none | unparsable | no Python code block (```python ... ```) in the reply
	stdin/no-tests | error | no "tests" to run the code on
	stdin/bad-tests | error | "tests" has not as many outputs as inputs
	stdin/reasoning-only | correct | all 3 cases pass
	stdin/string-tests | correct | all 2 cases pass
	stdin/float | correct | the 1 case passes
	stdin/float-far | incorrect | case 1 of 1: wrong answer: line 1: expected "0.3333", got "0.3333333333333333"
	stdin/integer-exact | incorrect | case 1 of 1: wrong answer: line 1: expected "1000000", got "1000001"
	call/function | correct | all 2 cases pass
	call/solution | correct | all 2 cases pass
	call/prints | correct | all 2 cases pass
	call/wrong | incorrect | case 2 of 2: wrong answer: expected [7], got 12
	call/syntax | incorrect | compile error: SyntaxError: expected '"'"':'"'"' (line 1)
	call/missing | incorrect | case 1 of 1: runtime error: the code defines no function add
	call/raises | incorrect | case 1 of 1: runtime error: TypeError: '"'"'int'"'"' object is not subscriptable
	EOT
	diff want got &&
	test "$(jq -r "select(.id == \"stdin/ok\") | .judge.method" ok.jsonl)" = code &&
	test "$(jq -r "select(.id == \"stdin/ok\") | .judge.predicted" ok.jsonl)" = "$(printf "a, b = map(int, input().split())\nprint(a + b)")"
'

ok 'the tests as an object or as a string holding one (APPS input_output) give the same verdicts' '
	jq -c "select(.tests != null and (.tests | type) == \"object\") | .tests |= tojson" "$C/records.jsonl" > s.jsonl &&
	test "$(wc -l < s.jsonl)" -gt 10 &&
	jq -c "select(.tests != null and (.tests | type) == \"object\")" "$C/records.jsonl" > o.jsonl &&
	ds-judge -q -r r1 o.jsonl > a1 && ds-judge -q -r r2 s.jsonl > a2 &&
	cat a1 r1 | jq -r "[.id, .judge.verdict, .judge.reason] | join(\" | \")" > v1 &&
	cat a2 r2 | jq -r "[.id, .judge.verdict, .judge.reason] | join(\" | \")" > v2 &&
	diff v1 v2
'

# ---- hostile programs ------------------------------------------------------------

# Judge the hostile record $1 with the small limits; its reason on stdout.
hostile() {
	rm -f rej.jsonl &&
	jq -c --arg id "$1" 'select(.id == $id)' "$C/hostile.jsonl" > h.jsonl &&
	test -s h.jsonl &&
	ds-judge -q $LIM -r rej.jsonl h.jsonl > ok.jsonl &&
	cat ok.jsonl rej.jsonl | jq -r '"\(.judge.verdict): \(.judge.reason)"'
}

ok 'an infinite loop and a sleep are stopped at the wall-clock limit' '
	t0=$(date +%s) &&
	test "$(hostile evil/loop)" = "incorrect: case 1 of 1: timeout: ran past 1 s" &&
	test "$(hostile evil/sleep)" = "incorrect: case 1 of 1: timeout: ran past 1 s" &&
	test $(($(date +%s) - t0)) -lt 8
'

ok 'a fork bomb stops at the process limit, and nothing of it is left' '
	test "$(leftovers)" = 0 &&
	test "$(hostile evil/fork-bomb)" = "incorrect: case 1 of 1: timeout: ran past 1 s" &&
	test "$(leftovers)" = 0 &&
	# each of its processes dies of BlockingIOError, their tracebacks mixed
	hostile evil/fork-bomb-crash > r &&
	grep -q "^incorrect: case 1 of 1: runtime error: " r &&
	test "$(leftovers)" = 0 &&
	sh -c "exit 0"
'

ok 'children that leave the process group die with the run' '
	test "$(hostile evil/orphans)" = "correct: the 1 case passes" &&
	sleep 0.2 && test "$(leftovers)" = 0
'

ok 'a memory hog gets MemoryError at the memory limit' '
	test "$(hostile evil/memory)" = "incorrect: case 1 of 1: memory limit: MemoryError (limit 256 MiB)" &&
	test "$(hostile evil/memory-slow)" = "incorrect: case 1 of 1: memory limit: MemoryError (limit 256 MiB)"
'

ok 'a write outside the run directory fails; a file past the size limit fails' '
	rm -f /etc/ds-judge-escape &&
	test "$(hostile evil/write-etc)" = "incorrect: case 1 of 1: runtime error: OSError: [Errno 30] Read-only file system: '"'"'/etc/ds-judge-escape'"'"'" &&
	test ! -e /etc/ds-judge-escape &&
	test "$(hostile evil/disk)" = "incorrect: case 1 of 1: runtime error: OSError: [Errno 27] File too large"
'

ok 'a write to our own directory, $HOME or /var/tmp does not reach the host' '
	here=$(pwd) &&
	printf "import os\nfor p in [%s, %s, %s]:\n    try:\n        open(p, \"w\").write(\"x\")\n        print(\"wrote\", p)\n    except OSError:\n        pass\nprint(\"ok\")\n" \
		"\"$here/escape\"" "\"${HOME:-/root}/ds-judge-escape\"" "\"/var/tmp/ds-judge-escape\"" > code.py &&
	jq -nc --rawfile c code.py "{id: \"w\", domain: \"code\", tests: {inputs: [\"\"], outputs: [\"ok\"]},
		teacher: {content: (\"\`\`\`python\n\" + \$c + \"\`\`\`\")}}" > w.jsonl &&
	ds-judge -q $LIM w.jsonl > out &&
	test "$(jq -r .judge.verdict out)" = correct &&
	test ! -e escape && test ! -e "${HOME:-/root}/ds-judge-escape" && test ! -e /var/tmp/ds-judge-escape
'

ok 'endless output is cut at the output limit' '
	test "$(hostile evil/output)" = "incorrect: case 1 of 1: output limit: more than 1048580 bytes of output"
'

ok 'no network: neither the Internet nor a server on our loopback' '
	hostile evil/network > r &&
	grep -qx "incorrect: case 1 of 1: runtime error: OSError: \[Errno 101\] Network is unreachable" r &&
	python3 -c "
import socket, sys
s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(1)
open(\"port\", \"w\").write(str(s.getsockname()[1]))
s.settimeout(6)
try:
    s.accept(); open(\"reached\", \"w\").write(\"yes\")
except OSError:
    pass
" &
	i=0; while [ ! -s port ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done &&
	port=$(cat port) &&
	jq -nc --arg p "$port" "{id: \"n\", domain: \"code\", tests: {inputs: [\"\"], outputs: [\"ok\"]},
		teacher: {content: (\"\`\`\`python\nimport socket\nsocket.create_connection((\\\"127.0.0.1\\\", \" + \$p + \"), timeout=2)\nprint(\\\"ok\\\")\n\`\`\`\")}}" > n.jsonl &&
	ds-judge -q $LIM -r rej.jsonl n.jsonl &&
	grep -q "Network is unreachable" rej.jsonl &&
	python3 -c "import socket; socket.create_connection((\"127.0.0.1\", $port), timeout=2).close()" &&
	wait && test -s reached
'

# ---- options ---------------------------------------------------------------------

# A call-based record of four cases that each sleep 0.6 s; $1 the outputs.
sleepy() {
	jq -nc --argjson o "$1" '{id: "s", domain: "code",
		tests: {fn_name: "f", inputs: [[1], [2], [3], [4]], outputs: $o},
		teacher: {content: "```python\nimport time\ndef f(x):\n    time.sleep(0.6)\n    return x\n```"}}'
}

ok '-j N runs the cases of a program at once; the reason names the first failing case' '
	sleepy "[1, 2, 3, 4]" > s.jsonl &&
	t0=$(date +%s%N) && ds-judge -q -j 4 s.jsonl > out && t1=$(date +%s%N) &&
	test "$(jq -r .judge.verdict out)" = correct &&
	test $(((t1 - t0) / 1000000)) -lt 2000 &&
	t0=$(date +%s%N) && ds-judge -q -j 1 s.jsonl > out && t1=$(date +%s%N) &&
	test $(((t1 - t0) / 1000000)) -ge 2400 &&
	sleepy "[1, 0, 3, 0]" > w.jsonl &&
	ds-judge -q -j 4 -r rej.jsonl w.jsonl &&
	test "$(jq -r .judge.reason rej.jsonl)" = "case 2 of 4: wrong answer: expected 0, got 2"
'

ok '--explain: each case of a program; the answers before and after normalisation (math)' '
	sleepy "[1, 0, 3, 0]" > w.jsonl &&
	ds-judge -q --explain -j 4 -r rej.jsonl w.jsonl &&
	jq -r ".judge.explain.cases[] | \"\(.case) \(.result) \(.detail // \"-\")\"" rej.jsonl > got &&
	printf "1 pass -\n2 wrong answer expected 0, got 2\n3 pass -\n4 wrong answer expected 0, got 4\n" > want &&
	diff want got &&
	test "$(jq -r .judge.explain.call rej.jsonl)" = f &&
	ds-judge -q -r rej2.jsonl w.jsonl && test "$(jq -r ".judge.explain.cases[3].result" rej2.jsonl)" = null &&
	jq -nc "{id: \"m\", domain: \"math\", answer: \"\\\\dfrac{1}{2}\", teacher: {content: \"\\\\boxed{0.5}\"}}" |
		ds-judge -q --explain > m.jsonl &&
	test "$(jq -c ".judge.explain" m.jsonl)" = "{\"rule\":\"box\",\"predicted\":\"0.5\",\"predicted_normalised\":\"0.5\",\"reference\":\"\\\\dfrac{1}{2}\",\"reference_normalised\":\"\\\\frac{1}{2}\"}"
'

ok '--summary counts by verdict, by method and by source' '
	cat "$DATA/judge/records.jsonl" "$C/records.jsonl" > mixed.jsonl &&
	ds-judge -q --summary mixed.jsonl > out 2> err &&
	grep -qx "ds-judge: accuracy 0.4516 (14/31)" err &&
	grep -qx "ds-judge: correct 14, incorrect 11, unparsable 2, error 4" err &&
	grep -qx "ds-judge: method math: accuracy 0.5000 (4/8); correct 4, incorrect 1, unparsable 1, error 2" err &&
	grep -qx "ds-judge: method code: accuracy 0.4348 (10/23); correct 10, incorrect 10, unparsable 1, error 2" err &&
	grep -qx "ds-judge: source t: accuracy 0.5000 (4/8); correct 4, incorrect 1, unparsable 1, error 2" err &&
	grep -qx "ds-judge: source apps: accuracy 0.3810 (8/21); correct 8, incorrect 10, unparsable 1, error 2" err &&
	grep -qx "ds-judge: source taco: accuracy 1.0000 (2/2); correct 2, incorrect 0, unparsable 0, error 0" err
'

ok 'a rerun with the same -o and --rejected runs nothing again and adds nothing' '
	sleepy "[1, 2, 3, 4]" > s.jsonl && cat s.jsonl "$C/records.jsonl" > in.jsonl &&
	ds-judge -q -o ok.jsonl -r rej.jsonl in.jsonl &&
	cp ok.jsonl ok1 && cp rej.jsonl rej1 &&
	t0=$(date +%s%N) && ds-judge -o ok.jsonl -r rej.jsonl in.jsonl 2> err && t1=$(date +%s%N) &&
	diff ok.jsonl ok1 && diff rej.jsonl rej1 &&
	grep -q "0 correct, 0 rejected, 24 already done" err &&
	test $(((t1 - t0) / 1000000)) -lt 1500
'

ok 'a run cut short is finished by the rerun, nothing lost or repeated' '
	ds-judge -q -o full.jsonl -r fullrej.jsonl "$C/records.jsonl" &&
	head -3 full.jsonl > ok.jsonl && sed -n 4p full.jsonl | head -c 40 >> ok.jsonl &&
	head -2 fullrej.jsonl > rej.jsonl &&
	ds-judge -q -o ok.jsonl -r rej.jsonl "$C/records.jsonl" &&
	sort ok.jsonl > a && sort full.jsonl > b && diff a b &&
	sort rej.jsonl > a && sort fullrej.jsonl > b && diff a b
'

ok '--unsafe-no-sandbox runs the code with rlimits only' '
	jq -c "select(.id == \"stdin/ok\" or .id == \"stdin/wrong\")" "$C/records.jsonl" > in.jsonl &&
	ds-judge -q --unsafe-no-sandbox -r rej.jsonl in.jsonl > out &&
	test "$(jq -r .id out)" = stdin/ok && test "$(jq -r .id rej.jsonl)" = stdin/wrong &&
	ls -d "${TMPDIR:-/tmp}"/ds-sandbox.* 2> /dev/null | wc -l > n && test "$(cat n)" = 0
'

if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null && command -v prlimit > /dev/null &&
	su nobody -s /bin/sh -c "test -x '$TOP/bin/ds-judge' && test -r '$C/records.jsonl'" 2> /dev/null; then
	ok 'where no sandbox can be made, code is refused (exit 1) unless --unsafe-no-sandbox' '
		jq -c "select(.id == \"stdin/ok\")" "$C/records.jsonl" > in.jsonl && chmod 644 in.jsonl && chmod 755 . &&
		# one process allowed to the user nobody: every clone fails (and
		# LeakSanitizer, which needs a thread, cannot run)
		nobody() {
			ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
				setpriv --reuid=65534 --regid=65534 --clear-groups prlimit --nproc=1 "$@"
		} &&
		expect_exit 1 nobody "$TOP/bin/ds-judge" -q in.jsonl > out 2> err &&
		grep -q "cannot make a sandbox" err && grep -q "unsafe-no-sandbox" err && test ! -s out &&
		nobody "$TOP/bin/ds-judge" --unsafe-no-sandbox in.jsonl > out 2> err &&
		test ! -s out && grep -q "stdin/ok: error: case 1 of 3: sandbox error: clone: " err
	'
else
	skip 'where no sandbox can be made, code is refused (exit 1) unless --unsafe-no-sandbox' 'needs root, setpriv, prlimit and a tree the user nobody can read'
fi

ok 'bad options exit 2; a missing interpreter exits 1' '
	expect_exit 2 ds-judge -j 0 /dev/null 2> err && grep -q "^usage: ds-judge" err &&
	expect_exit 2 ds-judge --timeout soon /dev/null 2> err &&
	expect_exit 2 ds-judge --memory 1 /dev/null 2> err &&
	jq -c "select(.id == \"stdin/ok\")" "$C/records.jsonl" > in.jsonl &&
	expect_exit 1 ds-judge -q --python /nonexistent/python3 in.jsonl 2> err &&
	grep -q "/nonexistent/python3: not found" err
'
