#!/bin/sh
# Not part of make test. Prefill and decode speed at batch 1 on the CPU:
# ds-infer against llama.cpp at the same precision and Hugging Face
# transformers, on a model of Qwen2.5-0.5B's shape with random weights,
# the same prompt ids (PROMPT tokens, the qwen template), DECODE greedy
# tokens, at each thread count of THREADS (default: 1 and every core).
# Two precisions side by side:
#   F32  ds-infer on fp32 safetensors   llama.cpp on a GGUF F32
#   F16  ds-infer on fp16 safetensors   llama.cpp on a GGUF F16
# (the GGUFs made from the same files by llama.cpp's own
# convert_hf_to_gguf.py), and transformers on the fp32 files. The
# arithmetic is fp32 in all of them; F16 is the weights as stored.
# Medians of REPS runs; model loading is not timed. The greedy column: how
# many of the DECODE ids a peer shares with ds-infer at the same precision
# before the first difference.
#
# llama.cpp runs through llama-cpp-python (LLAMA_PY: a python that imports
# llama_cpp; default tests/.venv's) on GGUFs made by LLAMA_CPP_DIR's
# convert_hf_to_gguf.py (LLAMA_CPP_DIR: a llama.cpp source tree, e.g. the
# vendor/llama.cpp of llama-cpp-python's sdist). Without them those rows
# say why they are missing. OMP_WAIT_POLICY=passive unless set: on a
# shared machine spinning threads steal the cores of whoever runs beside.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
PY=$top/tests/.venv/bin/python
PROMPT=${PROMPT:-256}
DECODE=${DECODE:-64}
REPS=${REPS:-5}
THREADS=${THREADS:-"1 $(nproc)"}
LLAMA_PY=${LLAMA_PY:-$PY}
LLAMA_CPP_DIR=${LLAMA_CPP_DIR:-}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
"$PY" -c 'import torch, transformers' 2>/dev/null || {
	echo "bench: tests/.venv lacks torch or transformers: run tests/setup-venv.sh" >&2; exit 1; }
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
for p in f32:float32 f16:float16; do
	ds-train --init-random "$top/tests/data/train/qwen2.5-0.5b.json" --seed 1 --dtype "${p#*:}" -o "$w/${p%%:*}" > /dev/null
	zstd -q -d -c "$top/tests/data/qwen/tokenizer.json.zst" > "$w/${p%%:*}/tokenizer.json"
	cp "$top/tests/data/qwen/tokenizer_config.json" "$w/${p%%:*}/"
done

# A problem whose prompt is about PROMPT tokens; its ids, as ds-infer makes them.
words=$(awk -v n="$PROMPT" 'BEGIN { for (i = 0; i < n - 30; i++) printf "%s ", (i % 2 ? "one" : "two") }')
echo "{\"id\":\"bench\",\"problem\":\"$words\"}" > "$w/p.jsonl"
ds-infer -m "$w/f32" --max-tokens 1 --ids -q -t 1 < "$w/p.jsonl" | jq -c .teacher.prompt_ids > "$w/ids.json"
ntok=$(jq length "$w/ids.json")

# llama.cpp's GGUFs, once.
ll_why= why=
if ! "$LLAMA_PY" -c 'import llama_cpp' 2> /dev/null; then
	ll_why="llama-cpp-python not importable by $LLAMA_PY (set LLAMA_PY)"
elif [ ! -f "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" ]; then
	ll_why="no convert_hf_to_gguf.py (set LLAMA_CPP_DIR to a llama.cpp source tree)"
else
	for p in f32 f16; do
		PYTHONPATH="$LLAMA_CPP_DIR/gguf-py" "$PY" "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" "$w/$p" \
			--outtype $p --outfile "$w/$p.gguf" > "$w/conv.log" 2>&1 ||
			{ ll_why="the GGUF conversion failed: $(tail -1 "$w/conv.log")"; break; }
	done
fi
ll_ver=$([ -n "$ll_why" ] || "$LLAMA_PY" -c 'import llama_cpp; print(llama_cpp.__version__)')
hf_ver=$("$PY" -c 'import transformers; print(transformers.__version__)')

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# greedy ids: how many leading tokens two comma-separated lists share
agree() { awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, ","); m = split(b, y, ","); k = 0;
	while (k < n && k < m && x[k + 1] == y[k + 1]) k++; print k }'; }

# ds P T: ds-infer on $w/P, T threads; sets pre, dec, ids.
ds() {
	: > "$w/ds.pre"; : > "$w/ds.dec"
	for i in $(seq 1 "$REPS"); do
		ds-infer -m "$w/$1" --max-tokens "$((DECODE + 1))" -b 1 -t "$2" --ids < "$w/p.jsonl" > "$w/ds.out" 2> "$w/ds.log"
		sed -n 's/.*prefill \([0-9.]*\) tok\/s, decode \([0-9.]*\) tok\/s.*/\1 \2/p' "$w/ds.log" > "$w/ds.sp"
		cut -d' ' -f1 "$w/ds.sp" >> "$w/ds.pre"; cut -d' ' -f2 "$w/ds.sp" >> "$w/ds.dec"
	done
	pre=$(median < "$w/ds.pre"); dec=$(median < "$w/ds.dec")
	ids=$(jq -r '.teacher.completion_ids[:-1] | map(tostring) | join(",")' "$w/ds.out")
}

# peer KIND MODEL T: a peer of infer_peer.py; sets pre, dec, ids (pre=- on failure, why in $why).
peer() {
	pyx=$PY why=; [ "$1" = hf ] || pyx=$LLAMA_PY
	if "$pyx" "$top/tests/bench/infer_peer.py" "$1" --model "$2" --ids "$w/ids.json" --decode "$DECODE" \
			--threads "$3" --reps "$REPS" > "$w/peer.out" 2> "$w/peer.log"; then
		pre=$(awk '/^prefill/ { print $2 }' "$w/peer.out"); dec=$(awk '/^decode/ { print $2 }' "$w/peer.out")
		ids=$(awk '/^ids/ { print $2 }' "$w/peer.out")
	else
		pre=- dec=- ids= why="$1 failed: $(tail -1 "$w/peer.log")"
	fi
}

row() { # LABEL PRE DEC SAME
	if [ "$2" = - ]; then printf '  %-44s %s\n' "$1" "missing: $4"
	else printf '  %-44s %12.1f %12.2f %10s\n' "$1" "$2" "$3" "$4"; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }'; }

# precision P T: the ds-infer and llama.cpp rows at P (f32 or f16), T
# threads; sets ds_P_pre, ds_P_dec, ll_P_pre, ll_P_dec, and dids (ds-infer's ids).
precision() {
	P=$(printf %s "$1" | tr f F)
	ds "$1" "$2"; eval "ds_$1_pre=$pre ds_$1_dec=$dec"; dids=$ids
	row "$P  ds-infer (fp${1#f} safetensors)" "$pre" "$dec" "-"
	eval "ll_$1_pre=- ll_$1_dec=-"
	if [ -n "$ll_why" ]; then row "$P  llama.cpp (GGUF $P)" - - "$ll_why"
	else
		peer llama "$w/$1.gguf" "$2"; eval "ll_$1_pre=$pre ll_$1_dec=$dec"
		row "$P  llama.cpp $ll_ver (GGUF $P)" "$pre" "$dec" "${why:-$(agree "$dids" "$ids")/$DECODE}"
	fi
}

echo "inference at batch 1, Qwen2.5-0.5B shape (random weights), fp32 arithmetic;"
echo "prompt $ntok tokens, $DECODE tokens decoded greedily; median of $REPS runs; OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
for t in $THREADS; do
	echo
	printf '  %-44s %12s %12s %10s\n' "$t thread(s)" "prefill t/s" "decode t/s" "same ids"
	precision f32 "$t"
	peer hf "$w/f32" "$t"; hf_pre=$pre hf_dec=$dec
	row "F32  transformers $hf_ver (torch, SDPA)" "$pre" "$dec" "${why:-$(agree "$dids" "$ids")/$DECODE}"
	precision f16 "$t"
	echo "  ds-infer / llama.cpp:     F32 prefill $(ratio "$ds_f32_pre" "$ll_f32_pre"), decode $(ratio "$ds_f32_dec" "$ll_f32_dec");" \
		"F16 prefill $(ratio "$ds_f16_pre" "$ll_f16_pre"), decode $(ratio "$ds_f16_dec" "$ll_f16_dec")"
	echo "  ds-infer / transformers:  F32 prefill $(ratio "$ds_f32_pre" "$hf_pre"), decode $(ratio "$ds_f32_dec" "$hf_dec");" \
		"F16 prefill $(ratio "$ds_f16_pre" "$hf_pre"), decode $(ratio "$ds_f16_dec" "$hf_dec")"
done
