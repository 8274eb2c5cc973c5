#!/bin/sh
# Not part of make test. Prefill and decode speed at batch 1 on the CPU:
# ds-infer against Hugging Face transformers and llama.cpp, on a model of
# Qwen2.5-0.5B's shape with random weights (stored bf16, computed in fp32
# by all three), the same prompt ids (PROMPT tokens, the qwen template),
# DECODE greedy tokens, THREADS threads each (default: every core).
# Medians of REPS runs; model loading is not timed.
#
# llama.cpp runs through llama-cpp-python (LLAMA_PY: a python that imports
# llama_cpp; default tests/.venv's) on a GGUF F32 made by llama.cpp's own
# convert_hf_to_gguf.py (LLAMA_CPP_DIR: its source tree, e.g. the
# vendor/llama.cpp of llama-cpp-python's sdist). Without them that column
# says why it is missing.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
PY=$top/tests/.venv/bin/python
PROMPT=${PROMPT:-256}
DECODE=${DECODE:-64}
REPS=${REPS:-3}
THREADS=${THREADS:-$(nproc)}
LLAMA_PY=${LLAMA_PY:-$PY}
LLAMA_CPP_DIR=${LLAMA_CPP_DIR:-}
"$PY" -c 'import torch, transformers' 2>/dev/null || {
	echo "bench: tests/.venv lacks torch or transformers: run tests/setup-venv.sh" >&2; exit 1; }
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
cat > "$w/config.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
 "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
 "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
 "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
 "hidden_act": "silu", "attention_dropout": 0.0, "initializer_range": 0.02,
 "bos_token_id": 151643, "eos_token_id": 151645}
JSON
ds-train --init-random "$w/config.json" --seed 1 --dtype bfloat16 -o "$w/model" > /dev/null
zstd -q -d -c "$top/tests/data/qwen/tokenizer.json.zst" > "$w/model/tokenizer.json"
cp "$top/tests/data/qwen/tokenizer_config.json" "$w/model/"

# A problem whose prompt is about PROMPT tokens; its ids, as ds-infer makes them.
words=$(awk -v n="$PROMPT" 'BEGIN { for (i = 0; i < n - 30; i++) printf "%s ", (i % 2 ? "one" : "two") }')
echo "{\"id\":\"bench\",\"problem\":\"$words\"}" > "$w/p.jsonl"
ds-infer -m "$w/model" --max-tokens 1 --ids -q -t "$THREADS" < "$w/p.jsonl" | jq -c .teacher.prompt_ids > "$w/ids.json"
ntok=$(jq length "$w/ids.json")

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
: > "$w/ds.pre"; : > "$w/ds.dec"
for i in $(seq 1 "$REPS"); do
	ds-infer -m "$w/model" --max-tokens "$((DECODE + 1))" -b 1 -t "$THREADS" --ids < "$w/p.jsonl" > "$w/ds.out" 2> "$w/ds.log"
	sed -n 's/.*prefill \([0-9.]*\) tok\/s, decode \([0-9.]*\) tok\/s.*/\1 \2/p' "$w/ds.log" > "$w/ds.sp"
	cut -d' ' -f1 "$w/ds.sp" >> "$w/ds.pre"; cut -d' ' -f2 "$w/ds.sp" >> "$w/ds.dec"
done
ds_pre=$(median < "$w/ds.pre"); ds_dec=$(median < "$w/ds.dec")
ds_ids=$(jq -r '.teacher.completion_ids | map(tostring) | join(",")' "$w/ds.out")

"$PY" "$top/tests/bench/infer_peer.py" hf --model "$w/model" --ids "$w/ids.json" --decode "$DECODE" \
	--threads "$THREADS" --reps "$REPS" > "$w/hf.out" 2> "$w/hf.log" || { cat "$w/hf.log" >&2; exit 1; }
hf_pre=$(awk '/^prefill/ { print $2 }' "$w/hf.out"); hf_dec=$(awk '/^decode/ { print $2 }' "$w/hf.out")

ll_pre=- ll_dec=- ll_why=
if ! "$LLAMA_PY" -c 'import llama_cpp' 2> /dev/null; then
	ll_why="llama-cpp-python not importable by $LLAMA_PY (set LLAMA_PY)"
elif [ ! -f "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" ]; then
	ll_why="no convert_hf_to_gguf.py (set LLAMA_CPP_DIR to a llama.cpp source tree)"
elif ! PYTHONPATH="$LLAMA_CPP_DIR/gguf-py" "$PY" "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" "$w/model" \
		--outtype f32 --outfile "$w/model.gguf" > "$w/conv.log" 2>&1; then
	ll_why="the GGUF conversion failed: $(tail -1 "$w/conv.log")"
elif ! "$LLAMA_PY" "$top/tests/bench/infer_peer.py" llama --model "$w/model.gguf" --ids "$w/ids.json" \
		--decode "$DECODE" --threads "$THREADS" --reps "$REPS" > "$w/ll.out" 2> "$w/ll.log"; then
	ll_why="llama.cpp failed: $(tail -1 "$w/ll.log")"
else
	ll_pre=$(awk '/^prefill/ { print $2 }' "$w/ll.out"); ll_dec=$(awk '/^decode/ { print $2 }' "$w/ll.out")
fi

# greedy ids: how many leading tokens each peer shares with ds-infer
agree() { awk -v a="$ds_ids" -v b="$1" 'BEGIN { n = split(a, x, ","); m = split(b, y, ","); k = 0;
	while (k < n && k < m && x[k + 1] == y[k + 1]) k++; print k }'; }
hf_agree=$(agree "$(awk '/^ids/ { print $2 }' "$w/hf.out")")
ll_agree=-; [ "$ll_pre" = - ] || ll_agree=$(agree "$(awk '/^ids/ { print $2 }' "$w/ll.out")")

echo "inference at batch 1, Qwen2.5-0.5B shape (random weights), fp32 compute, $THREADS threads;"
echo "prompt $ntok tokens, $DECODE tokens decoded greedily; median of $REPS runs"
printf '  %-40s %12s %12s %14s\n' "" "prefill t/s" "decode t/s" "same greedy ids"
printf '  %-40s %12.1f %12.2f %14s\n' "ds-infer (OpenBLAS, fp32 weights)" "$ds_pre" "$ds_dec" "-"
printf '  %-40s %12.1f %12.2f %14s\n' "transformers $("$PY" -c 'import transformers; print(transformers.__version__)') (torch, SDPA)" \
	"$hf_pre" "$hf_dec" "$hf_agree/$DECODE"
if [ "$ll_pre" = - ]; then
	printf '  %-40s %s\n' "llama.cpp (GGUF F32)" "missing: $ll_why"
else
	printf '  %-40s %12.1f %12.2f %14s\n' "llama.cpp $("$LLAMA_PY" -c 'import llama_cpp; print(llama_cpp.__version__)') (GGUF F32)" \
		"$ll_pre" "$ll_dec" "$ll_agree/$DECODE"
fi
awk -v a="$ds_pre" -v b="$hf_pre" -v c="$ds_dec" -v d="$hf_dec" \
	'BEGIN { printf "  ds-infer / transformers: prefill %.2fx, decode %.2fx\n", a / b, c / d }'
[ "$ll_pre" = - ] || awk -v a="$ds_pre" -v b="$ll_pre" -v c="$ds_dec" -v d="$ll_dec" \
	'BEGIN { printf "  ds-infer / llama.cpp:    prefill %.2fx, decode %.2fx\n", a / b, c / d }'
