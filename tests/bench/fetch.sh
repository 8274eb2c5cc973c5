#!/bin/sh
# make bench (ds-fetch): against the local hub (tests/servers/hub.py) on
# loopback, the same runs RUNS times each, medians quoted.
#  1. a 256 MB "LFS" file: ds-fetch model vs curl alone on the same URL
#     (curl -L, as a user would), as a fraction of curl's throughput, as
#     fast as the local hub sends and throttled to a 1 Gbit/s link;
#  2. the same repo plus eight small files (today's hub: relative 307s
#     for them, a 302 to the CDN for the LFS file): ds-fetch model against
#     huggingface_hub.snapshot_download(local_dir=...) from tests/.venv,
#     wall time and CPU time (user + sys) each, as ratios;
#  3. 2,000 viewer rows with 200 ms per page: rows/s, and the fraction of
#     the one-page-at-a-time ideal (100 rows / 200 ms = 500 rows/s).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
RUNS=${RUNS:-5}
w=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$w"' EXIT
mkdir -p "$w/root/models/bench/big" "$w/root/datasets/bench/rows/_viewer/default"
head -c 268435456 /dev/urandom > "$w/root/models/bench/big/model.safetensors"
for f in config.json generation_config.json tokenizer_config.json vocab.json merges.txt README.md LICENSE .gitattributes; do
	head -c 20000 /dev/urandom | base64 > "$w/root/models/bench/big/$f"
done
awk 'BEGIN { for (i = 0; i < 2000; i++) printf "{\"problem\":\"Problem %d: a row of realistic size %s\"}\n", i, sprintf("%0500d", 0) }' \
	> "$w/root/datasets/bench/rows/_viewer/default/train.jsonl"
python3 "$top/tests/servers/hub.py" --root "$w/root" --port 0 --port-file "$w/port" --quiet --max-seconds 900 2> "$w/hub.log" &
pid=$!
i=0; while [ ! -s "$w/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
hub=http://127.0.0.1:$(cat "$w/port")
export HF_ENDPOINT=$hub DS_VIEWER_ENDPOINT=$hub

now() { date +%s.%N; }
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# One model download each way, RUNS times; prints the two medians' lines.
download_runs() { # $1: what the link is
	: > "$w/t.ds"; : > "$w/t.curl"
	for r in $(seq "$RUNS"); do
		rm -rf "$w/m"; s=$(now); ds-fetch -q model --include model.safetensors bench/big -o "$w/m"; e=$(now)
		awk "BEGIN { print $e - $s }" >> "$w/t.ds"
		cmp -s "$w/m/model.safetensors" "$w/root/models/bench/big/model.safetensors"
		rm -f "$w/c"; s=$(now); curl -s -f -L -o "$w/c" "$hub/bench/big/resolve/main/model.safetensors"; e=$(now)
		awk "BEGIN { print $e - $s }" >> "$w/t.curl"
	done
	d=$(median "$w/t.ds"); c=$(median "$w/t.curl")
	printf '  model download, 256 MB LFS file, %s:\n' "$1"
	printf '    %-32s %6.2f s  %7.1f MB/s (listing, HEAD, download, sha256)\n' "ds-fetch model" "$d" "$(awk "BEGIN { print 268.435456 / $d }")"
	printf '    %-32s %6.2f s  %7.1f MB/s\n' "curl -L (download only)" "$c" "$(awk "BEGIN { print 268.435456 / $c }")"
	printf '    ratio ds-fetch / curl throughput: %.2f (goal >= 0.9)\n' "$(awk "BEGIN { print $c / $d }")"
}
echo "ds-fetch bench: local hub on loopback, $RUNS runs each, medians"
# Unthrottled, the hub, ds-fetch (and its SHA-256: about 1.8 GB/s a core
# with SHA-NI) and curl share this machine's cores: CPU-bound, not a link.
download_runs "loopback, as fast as the hub sends"
# A 1 Gbit/s link (125 MB/s, the hub's throttle fault): a fast real one.
curl -s -X POST -d '{"spec":"^/cdn/:throttle:125000000"}' "$hub/_faults" > /dev/null
download_runs "throttled to 1 Gbit/s"

# Whole repo against huggingface_hub: wall and CPU seconds (GNU time's
# %e and %U + %S) of the whole command, the Python start included, as a
# user runs either.
py=$top/tests/.venv/bin/python
snapshot_runs() { # $1: what the link is
	: > "$w/t.ds2"; : > "$w/t.hf"
	for r in $(seq "$RUNS"); do
		rm -rf "$w/m"
		/usr/bin/time -f "%e %U %S" -o "$w/tm" ds-fetch -q model bench/big -o "$w/m"
		awk '{ print $1, $2 + $3 }' "$w/tm" >> "$w/t.ds2"
		rm -rf "$w/h" "$w/hfhome"
		HF_HOME=$w/hfhome HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
			/usr/bin/time -f "%e %U %S" -o "$w/tm" "$py" -c 'import sys; from huggingface_hub import snapshot_download; snapshot_download("bench/big", local_dir=sys.argv[1])' "$w/h"
		awk '{ print $1, $2 + $3 }' "$w/tm" >> "$w/t.hf"
		for f in $(cd "$w/m" && find . -type f ! -name .ds-fetch.json); do cmp -s "$w/m/$f" "$w/h/$f"; done
	done
	cut -d' ' -f1 "$w/t.ds2" > "$w/a"; dw=$(median "$w/a"); cut -d' ' -f2 "$w/t.ds2" > "$w/a"; dc=$(median "$w/a")
	cut -d' ' -f1 "$w/t.hf" > "$w/a"; hw=$(median "$w/a"); cut -d' ' -f2 "$w/t.hf" > "$w/a"; hc=$(median "$w/a")
	printf '  whole repo (256 MB LFS file + 8 small files), %s:\n' "$1"
	printf '    %-32s %6.2f s wall  %6.2f s CPU\n' "ds-fetch model" "$dw" "$dc"
	printf '    %-32s %6.2f s wall  %6.2f s CPU\n' "huggingface_hub $("$py" -c 'import huggingface_hub as h; print(h.__version__)')" "$hw" "$hc"
	printf '    ratio huggingface_hub / ds-fetch: wall %.2f, CPU %.2f (goal >= 1 both)\n' \
		"$(awk "BEGIN { print $hw / $dw }")" "$(awk "BEGIN { print $hc / $dc }")"
}
if [ -x "$py" ] && "$py" -c 'import huggingface_hub' 2> /dev/null; then
	curl -s -X POST -d '{"spec":""}' "$hub/_faults" > /dev/null
	snapshot_runs "loopback, as fast as the hub sends"
	curl -s -X POST -d '{"spec":"^/cdn/:throttle:125000000"}' "$hub/_faults" > /dev/null
	snapshot_runs "throttled to 1 Gbit/s"
else
	echo "  whole repo against huggingface_hub: skipped (no tests/.venv with huggingface_hub; make test builds it)"
fi

curl -s -X POST -d '{"spec":"^/rows:latency:200"}' "$hub/_faults" > /dev/null
: > "$w/t.rows"
for r in $(seq "$RUNS"); do
	s=$(now); ds-fetch -q bench/rows > "$w/rows.jsonl"; e=$(now)
	test "$(wc -l < "$w/rows.jsonl")" = 2000
	awk "BEGIN { print $e - $s }" >> "$w/t.rows"
done
t=$(median "$w/t.rows")
printf '  dataset rows, 2000 rows, 200 ms per /rows page:\n'
printf '    %-32s %6.2f s  %7.1f rows/s, %.2f of the sequential ideal (500 rows/s)\n' "ds-fetch" "$t" \
	"$(awk "BEGIN { print 2000 / $t }")" "$(awk "BEGIN { print 2000 / $t / 500 }")"
