#!/bin/sh
# make bench: ds-sharegpt against the Python peer (sharegpt_peer.py) on the
# same ~100 MB of judged records shaped like R1's output (long reasoning,
# mixed scripts). Both outputs must be identical; then each is timed RUNS
# times, one after the other, and the medians and their ratio printed.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
RUNS=${RUNS:-5}
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
python3 - "$w/in.jsonl" <<'PY'
import json, random, sys
random.seed(7)
words = ["Let", "x", "be", "the", "number", "so", "that", "$x^2+1=0$", "we",
         "get", "因此", "答案", "是", "\\frac{1}{2}", "wait,", "check:", "🙂", "é"]
with open(sys.argv[1], "w", encoding="utf-8") as f:
    size, i = 0, 0
    while size < 100_000_000:
        i += 1
        reasoning = " ".join(random.choice(words) for _ in range(random.randint(200, 3000)))
        rec = {"id": f"bench/{i}", "source": "bench", "domain": "math",
               "problem": f"Problem {i}: compute {i} * {i + 1}.", "answer": str(i * (i + 1)),
               "meta": {"level": i % 5},
               "teacher": {"model": "deepseek-reasoner", "reasoning": "\n" + reasoning + "\n",
                           "content": f"The answer is $\\boxed{{{i * (i + 1)}}}$.",
                           "finish_reason": "stop", "sample": 0,
                           "usage": {"prompt_tokens": 40, "completion_tokens": 900,
                                     "reasoning_tokens": 800, "cached_tokens": 0},
                           "latency_ms": 12000},
               "judge": {"verdict": "correct" if i % 7 else "incorrect", "method": "math",
                         "predicted": str(i), "reason": "r"}}
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        size += len(line.encode())
        f.write(line)
PY
mb=$(( $(wc -c < "$w/in.jsonl") / 1000000 ))
ds-sharegpt -q "$w/in.jsonl" > "$w/ds.jsonl"
python3 "$top/tests/bench/sharegpt_peer.py" < "$w/in.jsonl" > "$w/py.jsonl"
cmp -s "$w/ds.jsonl" "$w/py.jsonl" || { echo "bench: outputs differ" >&2; exit 1; }
time_of() { # seconds, wall clock
	s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); awk "BEGIN { print $e - $s }"
}
: > "$w/t.ds"; : > "$w/t.py"
for i in $(seq "$RUNS"); do
	time_of ds-sharegpt -q "$w/in.jsonl" >> "$w/t.ds"
	time_of sh -c "python3 '$top/tests/bench/sharegpt_peer.py' < '$w/in.jsonl'" >> "$w/t.py"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
d=$(median "$w/t.ds"); p=$(median "$w/t.py")
printf 'ds-sharegpt bench: %s MB of judged records, %s runs each, identical output\n' "$mb" "$RUNS"
printf '  %-28s median %6.2f s  %7.1f MB/s\n' "ds-sharegpt" "$d" "$(awk "BEGIN { print $mb / $d }")"
printf '  %-28s median %6.2f s  %7.1f MB/s\n' "python3 json ($(python3 -V 2>&1 | cut -d" " -f2))" "$p" "$(awk "BEGIN { print $mb / $p }")"
printf '  ratio (python / ds-sharegpt): %.2fx\n' "$(awk "BEGIN { print $p / $d }")"
