#!/bin/sh
# make bench (ds-teacher): against the local OpenAI-compatible server
# (tests/servers/openai.py) with 1 s of latency per request, N problems at
# -c 64 and -c 512: requests/s as a fraction of the ideal (concurrency /
# latency), peak memory (max RSS), and CPU time per 1,000 requests.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
RUNS=${RUNS:-3}
w=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$w"' EXIT
python3 "$top/tests/servers/openai.py" --port 0 --port-file "$w/port" --latency-ms 1000 --quiet \
	--max-seconds 900 2> "$w/api.log" &
pid=$!
i=0; while [ ! -s "$w/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
api=http://127.0.0.1:$(cat "$w/port")/v1
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "ds-teacher bench: local OpenAI-compatible server, 1 s per request, $RUNS runs each, medians"
for c in 64 512; do
	n=$((c * 4))
	awk -v n=$n 'BEGIN { for (i = 0; i < n; i++) printf "{\"id\":\"b/%d\",\"domain\":\"math\",\"problem\":\"What is %d + %d?\"}\n", i, i, i }' > "$w/p.jsonl"
	: > "$w/t"; : > "$w/rss"; : > "$w/cpu"
	for r in $(seq "$RUNS"); do
		/usr/bin/time -f "%e %M %U %S" -o "$w/time" ds-teacher -q -c $c --base-url "$api" "$w/p.jsonl" > "$w/out"
		test "$(wc -l < "$w/out")" = $n
		read -r e m u s < "$w/time"
		echo "$e" >> "$w/t"; echo "$m" >> "$w/rss"; awk "BEGIN { print ($u + $s) / $n * 1000 }" >> "$w/cpu"
	done
	t=$(median "$w/t"); rss=$(median "$w/rss"); cpu=$(median "$w/cpu")
	printf '  -c %-4d %5d requests: %6.2f s, %7.1f req/s = %.2f of the ideal %d req/s; max RSS %.1f MB; CPU %.2f s per 1000 requests\n' \
		$c $n "$t" "$(awk "BEGIN { print $n / $t }")" "$(awk "BEGIN { print $n / $t / $c }")" $c \
		"$(awk "BEGIN { print $rss / 1024 }")" "$cpu"
done
