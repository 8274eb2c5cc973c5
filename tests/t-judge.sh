#!/bin/sh
# ds-judge: math by rule, against Math-Verify; records, restarts, bad input.
. "$(dirname "$0")/lib.sh"
J=$DATA/judge
IN=$J/records.jsonl

# Each pair of the corpus as a record whose reply ends in a box.
pair_records() {
	jq -c '{id: "p\(input_line_number)", domain: "math", answer: .gold,
		teacher: {content: "So the final answer is $\\boxed{\(.pred)}$."}}' "$J/pairs.jsonl"
}

# "i verdict" per pair, from ds-judge.
judge_pairs() {
	pair_records > recs.jsonl &&
	ds-judge -q -o ok.jsonl -r rej.jsonl recs.jsonl &&
	cat ok.jsonl rej.jsonl | jq -r '"\(.id[1:] | tonumber - 1) \(.judge.verdict)"' | sort -n
}

# ---- agreement with Math-Verify ------------------------------------------
# tests/data/judge/mathverify.jsonl is Math-Verify 0.9.0's verdict on every
# pair of pairs.jsonl (tests/oracle/mathverify.py; regenerated and compared
# below when tests/.venv has it). Known differences, each with its reason,
# are listed here as "index ours theirs # why". Both are Math-Verify's
# errors, accepted since issue 19 (tests/data/judge/corpus-notes.md, M6 and
# M11): "42." inside a box is 42, not the string "42."; "1\,000" is a
# thousand (a thin space between digit groups), not 1*000.
KNOWN='4 correct false # \boxed{42.} is 42
18 correct false # 1\,000 is 1000
'

ok 'ds-judge agrees with Math-Verify on every pair of the corpus' '
	judge_pairs > ours &&
	jq -r "\"\(.i) \(.equal)\"" "$J/mathverify.jsonl" > theirs &&
	test "$(wc -l < ours)" = "$(wc -l < theirs)" &&
	paste -d" " ours theirs | awk "{ e = (\$2 == \"correct\"); m = (\$4 == \"true\"); if (e != m) print \$1, \$2, \$4 }" > dis &&
	printf "%s" "$KNOWN" | sed "s/ *#.*//" > known &&
	n=$(wc -l < ours) && d=$(wc -l < dis) &&
	echo "agreement with Math-Verify: $((n - d)) of $n pairs" &&
	diff known dis
'

ok 'never "correct" where Math-Verify says not equal (the dangerous direction), but for its known errors' '
	judge_pairs > ours &&
	jq -r "\"\(.i) \(.equal)\"" "$J/mathverify.jsonl" > theirs &&
	paste -d" " ours theirs | awk "\$2 == \"correct\" && \$4 != \"true\" { print \$1, \$2, \$4 }" > bad &&
	printf "%s" "$KNOWN" | sed "s/ *#.*//" > known &&
	diff known bad &&
	grep -q " true$" theirs && grep -q " false$" theirs
'

ok 'answers that do not parse are "unparsable", never "correct"' '
	for a in "" "\\frac{1}{}" "(1,2" "???" "1+" "\\sqrt{}" "x^"; do
		jq -nc --arg a "$a" "{id: \"u\", domain: \"math\", answer: \"1\", teacher: {content: \"\\\\boxed{\(\$a)}\"}}"
	done > u.jsonl &&
	ds-judge -q -r rej.jsonl u.jsonl > out &&
	test ! -s out && test "$(jq -r .judge.verdict rej.jsonl | sort -u)" = unparsable
'

if [ -x "$PY" ] && "$PY" -c "import math_verify" 2> /dev/null; then
	ok 'the stored Math-Verify verdicts are what Math-Verify says now' '
		"$PY" "$TOP/tests/oracle/mathverify.py" < "$J/pairs.jsonl" 2> /dev/null > mv.jsonl &&
		diff mv.jsonl "$J/mathverify.jsonl"
	'
else
	skip 'the stored Math-Verify verdicts are what Math-Verify says now' 'no math_verify in tests/.venv'
fi

# ---- records ----------------------------------------------------------------

ok 'verdicts, predicted answers and routing on a golden set' '
	ds-judge -q -r rej.jsonl "$IN" > out &&
	cat out rej.jsonl | jq -r "[.id, (.teacher.sample | tostring), .judge.verdict, .judge.method, (.judge.predicted // \"-\")] | join(\" | \")" > got &&
	cat > want <<-\EOT &&
	m/1 | 0 | correct | math | 0.5
	m/2 | 0 | correct | math | \left\{2,1\right\}
	m/3 | 0 | correct | math | 30
	m/6 | 0 | correct | math | $(x-1)(x+1)$
	m/1 | 1 | incorrect | math | \frac{1}{3}
	m/4 | 0 | unparsable | math | -
	s/1 | 0 | error | math | -
	m/5 | 0 | error | math | -
	EOT
	diff got want &&
	test "$(jq -r "select(.id == \"s/1\") | .judge.reason" rej.jsonl)" = "no judge for domain science yet" &&
	test "$(jq -c "del(.judge)" out | head -1)" = "$(head -1 "$IN")"
'

ok '--summary prints accuracy and counts per verdict' '
	ds-judge -q --summary "$IN" > out 2> err &&
	grep -qx "ds-judge: accuracy 0.5000 (4/8)" err &&
	grep -qx "ds-judge: correct 4, incorrect 1, unparsable 1, error 2" err
'

ok 'without --rejected, each rejection is reported on stderr with its line' '
	ds-judge "$IN" > out 2> err &&
	grep -q "^ds-judge:$IN:2: m/1: incorrect: differs from the reference" err &&
	grep -q "8 read, 4 correct, 4 rejected" err &&
	test "$(wc -l < out)" = 4
'

ok 'extraction: last box, nested braces, fbox, "the answer is"' '
	for c in "\\boxed{1} is a first step. Going on from there we get \\boxed{\\frac{1}{2}}" "\\fbox{\\frac{1}{2}}" "The answer is \$\\frac12\$." "**Answer:** 0.5"; do
		jq -nc --arg c "$c" "{id: \$c, domain: \"math\", answer: \"1/2\", teacher: {content: \$c}}"
	done > x.jsonl &&
	ds-judge -q x.jsonl > out && test "$(wc -l < out)" = 4
'

# ---- bad input -----------------------------------------------------------

ok 'malformed JSON stops the run with NAME:LINE: reason, exit 1' '
	{ head -1 "$IN"; echo "{\"id\": "; } > bad.jsonl &&
	expect_exit 1 ds-judge -q bad.jsonl > out 2> err &&
	grep -q "^ds-judge:bad.jsonl:2: malformed JSON" err && test "$(wc -l < out)" = 1
'

ok 'a record without teacher is named; --skip-bad counts and skips' '
	printf "{\"id\":\"a\"}\n" | { expect_exit 1 ds-judge -q 2> err; } &&
	grep -qx "ds-judge:1: no \"teacher\" object (run ds-teacher or ds-infer first)" err &&
	{ echo "not json"; head -1 "$IN"; echo "{\"id\":\"b\",\"teacher\":{\"content\":5}}"; } > bad.jsonl &&
	ds-judge --skip-bad bad.jsonl > out 2> err &&
	test "$(wc -l < out)" = 1 && grep -q "2 bad lines skipped" err
'

ok 'an empty input is an error; a full disk is an error' '
	: > empty.jsonl && expect_exit 1 ds-judge empty.jsonl 2> err && grep -q "no records" err &&
	expect_exit 1 ds-judge -q "$IN" > /dev/full 2> err && grep -q "write error" err
'

# ---- restarts ---------------------------------------------------------------

ok 'a rerun with the same -o and --rejected adds nothing' '
	ds-judge -q -o ok.jsonl -r rej.jsonl "$IN" &&
	cp ok.jsonl ok1 && cp rej.jsonl rej1 &&
	ds-judge -o ok.jsonl -r rej.jsonl "$IN" 2> err &&
	diff ok.jsonl ok1 && diff rej.jsonl rej1 &&
	grep -q "0 correct, 0 rejected, 8 already done" err
'

ok 'a cut-short last line in -o is removed and redone' '
	ds-judge -q -o full.jsonl "$IN" &&
	head -1 full.jsonl > ok.jsonl && sed -n 2p full.jsonl | head -c 30 >> ok.jsonl &&
	ds-judge -q -o ok.jsonl "$IN" && diff ok.jsonl full.jsonl
'

ok 'repeated (id, sample) pairs are judged once' '
	cat "$IN" "$IN" | ds-judge -r rej.jsonl > out 2> err &&
	test "$(wc -l < out)" = 4 && test "$(wc -l < rej.jsonl)" = 4 && grep -q "8 duplicates" err
'

# ---- guided samples that give the game away ------------------------------------

ok 'a guided sample that says it was handed the answer is incorrect, whatever its answer' '
	jq -nc "{id: \"g/1\", domain: \"math\", problem: \"1+1?\", answer: \"2\",
		teacher: {guided: true, reasoning: \"The answer is 2, as given.\", content: \"\\\\boxed{2}\"}},
		{id: \"g/2\", domain: \"math\", problem: \"x+1 with x=1?\", answer: \"2\",
		teacher: {guided: true, reasoning: \"Given that x = 1, 1+1 = 2.\", content: \"\\\\boxed{2}\"}},
		{id: \"g/3\", domain: \"math\", problem: \"1+1?\", answer: \"2\",
		teacher: {reasoning: \"The answer is 2, as given.\", content: \"\\\\boxed{2}\"}}" > in.jsonl &&
	ds-judge -r rej.jsonl in.jsonl > out &&
	test "$(jq -r .id out | tr "\n" " ")" = "g/2 g/3 " &&
	test "$(jq -r "[.id, .judge.verdict, .judge.reason] | join(\"|\")" rej.jsonl)" = "g/1|incorrect|mentions the given answer: '"'"'as given'"'"'"
'

# ---- usage -----------------------------------------------------------------

ok 'usage errors exit 2; --help and the man page list the same options' '
	expect_exit 2 ds-judge --bogus 2> err && grep -q "^usage: ds-judge" err &&
	expect_exit 2 ds-judge -o a -r a 2> err && grep -q "same file" err &&
	ds-judge --help > h && grep -q "^usage: ds-judge" h &&
	ds-judge --help | grep -o -- "--[a-z][a-z-]*" | sort -u > help.opts &&
	sed -n "/^\.SH OPTIONS/,/^\.SH EXIT/p" "$TOP/man/man1/ds-judge.1" |
		grep -o "\\\\-\\\\-[a-z][a-z\\\\-]*" | sed "s/\\\\//g" | sort -u > man.opts &&
	diff help.opts man.opts
'
