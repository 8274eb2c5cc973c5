#!/bin/sh
# make bench: one ds-train training step against PyTorch + transformers
# (fp32, SDPA attention, torch.optim.AdamW) on the CPU, on a model of
# Qwen2.5-0.5B's shape with random weights and one sample of SEQ tokens
# (a conversation from ds-tokenize, its assistant part trained). Same
# tokens, same thread count (THREADS, default: every core). Each program
# takes STEPS steps; the first warms up; the median of the others is
# quoted, as tokens/s, with each process's peak resident memory.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
PY=$top/tests/.venv/bin/python
SEQ=${SEQ:-512}
STEPS=${STEPS:-4}
THREADS=${THREADS:-$(nproc)}
"$PY" -c 'import torch, transformers' 2>/dev/null || {
	echo "bench: tests/.venv lacks torch or transformers: run tests/setup-venv.sh" >&2; exit 1; }
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
ds-train --init-random "$top/tests/data/train/qwen2.5-0.5b.json" --seed 1 --dtype bfloat16 -o "$w/model"
zstd -q -d -c "$top/tests/data/qwen/tokenizer.json.zst" > "$w/model/tokenizer.json"
# A conversation longer than SEQ tokens, cut to SEQ.
jq -nc --argjson n "$SEQ" '{id: "bench", conversations: [{from: "user", value: "Sum the numbers."},
	{from: "assistant", value: ([range(0; $n)] | map("\(.) plus \(. * 7) is \(. * 8).") | join(" "))}]}' > "$w/conv.jsonl"
ds-tokenize -q -t "$w/model/tokenizer.json" --cutoff-len "$SEQ" "$w/conv.jsonl" > "$w/s.shard"
ds-tokenize inspect --json "$w/s.shard" > "$w/s.json"
tokens=$(jq '.input_ids | length' "$w/s.json")

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

/usr/bin/time -f %M -o "$w/ds.mem" ds-train model_name_or_path="$w/model" dataset="$w/s.shard" \
	cutoff_len="$SEQ" output_dir="$w/out" max_steps="$STEPS" logging_steps=1 save_steps=100000 \
	per_device_train_batch_size=1 gradient_accumulation_steps=1 learning_rate=1e-5 \
	save_only_model=true threads="$THREADS" 2> "$w/ds.log" || { cat "$w/ds.log" >&2; exit 1; }
ds_s=$(jq -r 'select(.current_steps > 1) | .throughput' "$w/out/trainer_log.jsonl" | median)
/usr/bin/time -f %M -o "$w/pt.mem" "$PY" "$top/tests/bench/train_torch.py" --model "$w/model" \
	--sample "$w/s.json" --steps "$STEPS" --threads "$THREADS" > "$w/pt.log" 2>&1 || { cat "$w/pt.log" >&2; exit 1; }
pt_s=$(awk -v t="$tokens" '/^step/ && $2 > 1 { print t / $3 }' "$w/pt.log" | median)
ds_mem=$(awk '{ printf "%.2f", $1 / 1048576 }' "$w/ds.mem")
pt_mem=$(awk '{ printf "%.2f", $1 / 1048576 }' "$w/pt.mem")
echo "train step, Qwen2.5-0.5B shape (random weights), $tokens tokens, fp32, $THREADS threads; median of $((STEPS - 1)) steps"
printf '  %-34s %10s %12s\n' "" "tokens/s" "peak RSS GB"
printf '  %-34s %10.1f %12s\n' "ds-train (OpenBLAS)" "$ds_s" "$ds_mem"
printf '  %-34s %10.1f %12s\n' "PyTorch $("$PY" -c 'import torch; print(torch.__version__)') + transformers" "$pt_s" "$pt_mem"
# The same first step, so the same loss: a check that both did the same work.
printf '  first-step loss: ds-train %s, PyTorch %s\n' "$(jq -r 'select(.current_steps == 1) | .loss' "$w/out/trainer_log.jsonl")" \
	"$(awk '/^step 1 / { print $5 }' "$w/pt.log")"
awk -v a="$ds_s" -v b="$pt_s" -v c="$ds_mem" -v d="$pt_mem" \
	'BEGIN { printf "  ds-train / PyTorch: %.2fx the speed, %.2fx the memory\n", a / b, c / d }'
