#!/bin/sh
# make bench: math judging on the agreement corpus (tests/data/judge/
# corpus.jsonl, 3,156 pairs), one core, against Math-Verify's parse +
# verify in one Python process.
#
# Each pair becomes a record whose reply ends in a box, as in
# t-judge-corpus. ds-judge reads the corpus repeated COPIES times (ids made
# unique), through the whole program: JSON in, extraction, normalisation,
# comparison, JSON out. The library alone (mathans_extract + mathans_equal,
# no JSON) is timed too, to show where the time goes. Math-Verify gets the
# corpus once per run: parse(reply), parse(gold), verify(gold, pred), its
# default timeouts on, as a user would call it. Medians of RUNS runs.
#
# Then the reply corpus (tests/data/judge/replies.jsonl: whole replies, a
# chain of thought and prose ending in a box, a phrase, a LaTeX expression
# or a number): ds-judge's speed on it, and issue 19's three figures,
# agreement with Math-Verify (run now, when tests/.venv has it; else its
# stored verdicts), agreement with the human truth, false positives.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
RUNS=${RUNS:-5}
MV_RUNS=${MV_RUNS:-3}
COPIES=${COPIES:-100}
PY=$top/tests/.venv/bin/python
corpus=$top/tests/data/judge/corpus.jsonl
replies=$top/tests/data/judge/replies.jsonl
RCOPIES=${RCOPIES:-20}
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
one=""; command -v taskset > /dev/null && one="taskset -c 0"

jq -c '{id: "p\(input_line_number)", domain: "math", answer: .gold,
	teacher: {content: "So the final answer is $\\boxed{\(.pred)}$."}}' "$corpus" > "$w/one.jsonl"
n=$(wc -l < "$w/one.jsonl")
for c in $(seq "$COPIES"); do sed "s/^{\"id\":\"p/{\"id\":\"c$c-p/" "$w/one.jsonl"; done > "$w/recs.jsonl"
records=$((n * COPIES))
jq -r '[.gold, .pred] | @tsv' "$corpus" > "$w/pairs.tsv"

# the library alone: every pair COPIES times, extraction and comparison
cat > "$w/lib.c" <<'EOF'
#include "mathans.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv)
{
	int copies = atoi(argv[2]);
	FILE *f = fopen(argv[1], "r");
	char line[8192], *gold[20000], *reply[20000];
	int n = 0;
	while (n < 20000 && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		char *tab = strchr(line, '\t');
		if (!tab) continue;
		*tab = '\0';
		gold[n] = strdup(line);
		reply[n] = malloc(strlen(tab + 1) + 64);
		sprintf(reply[n], "So the final answer is $\\boxed{%s}$.", tab + 1);
		n++;
	}
	struct timespec a, b;
	long equal = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int c = 0; c < copies; c++)
		for (int i = 0; i < n; i++) {
			char *p = mathans_extract(reply[i]);
			if (p) equal += mathans_equal(gold[i], p) == MATHANS_EQUAL;
			free(p);
		}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.6f %ld\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, equal);
	return 0;
}
EOF
cc -O2 -I"$top/lib" -o "$w/lib" "$w/lib.c" "$top/build/libds.a" -lm

cat > "$w/mv.py" <<'EOF'
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from math_verify import parse, verify
pairs = [json.loads(l) for l in open(sys.argv[1])]
t = time.perf_counter()
equal = 0
for p in pairs:
    g = parse("\\boxed{" + p["gold"] + "}")
    c = parse("So the final answer is $\\boxed{" + p["pred"] + "}$.")
    equal += bool(verify(g, c))
print(time.perf_counter() - t, equal)
EOF

time_of() { # seconds, wall clock
	s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); awk "BEGIN { print $e - $s }"
}
: > "$w/t.ds"; : > "$w/t.lib"; : > "$w/t.mv"
for i in $(seq "$RUNS"); do
	time_of $one ds-judge -q -r /dev/null "$w/recs.jsonl" >> "$w/t.ds"
	$one "$w/lib" "$w/pairs.tsv" "$COPIES" | cut -d" " -f1 >> "$w/t.lib"
done
have_mv=0
if [ -x "$PY" ] && "$PY" -c "import math_verify" 2> /dev/null; then
	have_mv=1
	for i in $(seq "$MV_RUNS"); do $one "$PY" "$w/mv.py" "$corpus" 2> /dev/null | cut -d" " -f1 >> "$w/t.mv"; done
fi
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
d=$(median "$w/t.ds"); l=$(median "$w/t.lib")
rd=$(awk "BEGIN { print $records / $d }"); rl=$(awk "BEGIN { print $records / $l }")
printf 'ds-judge bench: math judging, %s pairs x %s copies = %s records, one core%s\n' "$n" "$COPIES" "$records" "${one:+ ($one)}"
printf '  %-34s median %7.3f s  %10.0f records/s (%s runs)\n' "ds-judge (whole program)" "$d" "$rd" "$RUNS"
printf '  %-34s median %7.3f s  %10.0f records/s (%s runs)\n' "lib/mathans.c alone" "$l" "$rl" "$RUNS"
if [ $have_mv = 1 ]; then
	m=$(median "$w/t.mv"); rm_=$(awk "BEGIN { print $n / $m }")
	printf '  %-34s median %7.3f s  %10.0f records/s (%s runs, %s records)\n' \
		"math-verify $("$PY" -c 'import importlib.metadata as m; print(m.version("math-verify"))') parse+verify" "$m" "$rm_" "$MV_RUNS" "$n"
	printf '  ratio (ds-judge / math-verify): %.0fx\n' "$(awk "BEGIN { print $rd / $rm_ }")"
else
	echo "  math-verify: not in tests/.venv, no ratio"
fi

# ---- the reply corpus ----
jq -c '{id: "r\(input_line_number)", domain: "math", answer: .gold,
	teacher: {content: .content, reasoning: .reasoning}}' "$replies" > "$w/rone.jsonl"
rn=$(wc -l < "$w/rone.jsonl")
for c in $(seq "$RCOPIES"); do sed "s/^{\"id\":\"r/{\"id\":\"c$c-r/" "$w/rone.jsonl"; done > "$w/rrecs.jsonl"
rrecords=$((rn * RCOPIES))
: > "$w/t.rds"
for i in $(seq "$RUNS"); do time_of $one ds-judge -q -r /dev/null "$w/rrecs.jsonl" >> "$w/t.rds"; done
rdr=$(median "$w/t.rds"); rrd=$(awk "BEGIN { print $rrecords / $rdr }")
mb=$(awk "BEGIN { print $(wc -c < "$w/rrecs.jsonl") / 1e6 / $rdr }")
ds-judge -q -o "$w/rok" -r "$w/rrej" "$w/rone.jsonl"
cat "$w/rok" "$w/rrej" | jq -r '"\(.id[1:] | tonumber - 1) \(.judge.verdict)"' | sort -n | cut -d" " -f2 > "$w/rours"
mvsrc="stored verdicts, tests/data/judge/replies-mathverify.jsonl"
if [ $have_mv = 1 ]; then
	"$PY" "$top/tests/oracle/mathverify_replies.py" "$(nproc)" < "$replies" 2> /dev/null | jq -r .equal > "$w/rtheirs"
	mvsrc="run now"
else
	jq -r .equal "$top/tests/data/judge/replies-mathverify.jsonl" > "$w/rtheirs"
fi
jq -r .truth "$replies" > "$w/rtruth"
printf 'ds-judge bench: the reply corpus, %s replies x %s copies = %s records, one core\n' "$rn" "$RCOPIES" "$rrecords"
printf '  %-34s median %7.3f s  %10.0f records/s, %.0f MB/s (%s runs)\n' "ds-judge (whole program)" "$rdr" "$rrd" "$mb" "$RUNS"
paste -d" " "$w/rours" "$w/rtheirs" "$w/rtruth" | awk -v src="$mvsrc" '{
	e = ($1 == "correct"); m = ($2 == "true"); h = ($3 == "true"); n++
	am += (e == m); ah += (e == h); fp += (e && !h); mh += (m == h); mfp += (m && !h) }
	END {
	printf "  agreement with math-verify (%s): %d of %d (%.1f%%)\n", src, am, n, 100 * am / n
	printf "  agreement with the human truth: ds-judge %d (%.1f%%), math-verify %d (%.1f%%)\n", ah, 100 * ah / n, mh, 100 * mh / n
	printf "  false positives (accepted, truth wrong): ds-judge %d, math-verify %d\n", fp, mfp
	if (fp) exit 1 }' || { echo "ds-judge bench: false positives on the reply corpus" >&2; exit 1; }
awk "BEGIN { exit !($rd >= 50000 && $rrd >= 50000) }" || { echo "ds-judge bench: below 50,000 records/s" >&2; exit 1; }
