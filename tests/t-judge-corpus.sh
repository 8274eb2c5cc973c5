#!/bin/sh
# ds-judge on the answer-forms corpus: against a careful human's verdict
# (the truth the corpus records) and against Math-Verify 0.9.0.
#
# tests/data/judge/corpus.jsonl is written by tests/oracle/mathcorpus.py:
# 3,156 (gold, predicted) pairs in the forms NuminaMath, MATH, AMC and
# olympiad sets use, each with "truth". corpus-mathverify.jsonl is
# Math-Verify's verdict on each (tests/oracle/mathverify.py). Every pair on
# which ds-judge and Math-Verify differ is listed in corpus-notes.md with
# the reason; the figures recorded there are floors.
. "$(dirname "$0")/lib.sh"
J=$DATA/judge
C=$J/corpus.jsonl
NOTES=$J/corpus-notes.md

# "i ours theirs truth" per pair (i from 0): ds-judge's verdict, Math-Verify's
# and the human's.
table() {
	jq -c '{id: "p\(input_line_number)", domain: "math", answer: .gold,
		teacher: {content: "So the final answer is $\\boxed{\(.pred)}$."}}' "$C" > recs.jsonl &&
	ds-judge -q -o ok.jsonl -r rej.jsonl recs.jsonl &&
	cat ok.jsonl rej.jsonl | jq -r '"\(.id[1:] | tonumber - 1) \(.judge.verdict)"' | sort -n > ours &&
	jq -r .equal "$J/corpus-mathverify.jsonl" > theirs &&
	jq -r .truth "$C" > truth &&
	test "$(wc -l < ours)" = "$(wc -l < theirs)" && test "$(wc -l < ours)" = "$(wc -l < truth)" &&
	paste -d" " ours theirs truth
}

# A figure recorded in the notes: the number on the line "- NAME: N of M".
recorded() {
	sed -n "s/^- $1: \([0-9][0-9]*\) of [0-9][0-9]*.*/\1/p" "$NOTES"
}

ok 'the corpus is what tests/oracle/mathcorpus.py writes' '
	python3 "$TOP/tests/oracle/mathcorpus.py" > c.jsonl &&
	cmp c.jsonl "$C" &&
	test "$(wc -l < "$C")" -ge 2000 &&
	test "$(jq -r .form "$C" | sort -u | wc -l)" -ge 20 &&
	grep -q "\"truth\": true" "$C" && grep -q "\"truth\": false" "$C"
'

ok 'never "correct" where the truth is "incorrect"' '
	table > t &&
	awk "\$2 == \"correct\" && \$4 == \"false\"" t > bad &&
	test ! -s bad
'

ok 'agreement with Math-Verify at least as recorded; every disagreement in the notes' '
	table > t &&
	awk "{ e = (\$2 == \"correct\"); m = (\$3 == \"true\"); if (e != m) print \$1, \$2, \$3 }" t > dis &&
	n=$(wc -l < t) && d=$(wc -l < dis) &&
	echo "agreement with Math-Verify: $((n - d)) of $n pairs" &&
	floor=$(recorded "agreement with Math-Verify") && test -n "$floor" &&
	test $((n - d)) -ge "$floor" &&
	sed -n "s/^| \([0-9][0-9]*\) | \([a-z]*\) | \([a-z]*\) |.*/\1 \2 \3/p" "$NOTES" > listed &&
	diff listed dis
'

ok 'agreement with the human truth at least as recorded' '
	table > t &&
	n=$(wc -l < t) &&
	same=$(awk "{ e = (\$2 == \"correct\"); if (e == (\$4 == \"true\")) k++ } END { print k + 0 }" t) &&
	mv=$(awk "{ if ((\$3 == \"true\") == (\$4 == \"true\")) k++ } END { print k + 0 }" t) &&
	echo "ds-judge matches the truth on $same of $n pairs, Math-Verify on $mv" &&
	floor=$(recorded "ds-judge agrees with the truth") && test -n "$floor" &&
	test "$same" -ge "$floor" && test "$same" -ge "$mv"
'

if [ -x "$PY" ] && "$PY" -c "import math_verify" 2> /dev/null; then
	ok 'the stored Math-Verify verdicts are what Math-Verify says now' '
		"$PY" "$TOP/tests/oracle/mathverify.py" < "$C" 2> /dev/null > mv.jsonl &&
		diff mv.jsonl "$J/corpus-mathverify.jsonl"
	'
else
	skip 'the stored Math-Verify verdicts are what Math-Verify says now' 'no math_verify in tests/.venv'
fi
