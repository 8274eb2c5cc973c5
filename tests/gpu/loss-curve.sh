#!/bin/sh
# tests/gpu/loss-curve.sh: ds-train on the GPU against ds-train on the CPU,
# a whole run as a user starts it: a small Qwen2 (Qwen's vocabulary and
# tokenizer, head dimension 64 as Qwen2.5-0.5B's, random weights), packed
# shards of 200 short conversations, STEPS (default 50) steps of 2 x 2
# samples, lr 1e-3 cosine with warmup, clipping at 1.0, recomputation on.
# The GPU computes in bf16 and the CPU in fp32, so the curves differ by
# bf16's rounding: every step's loss must agree within TOL (default 0.03,
# relative), and both runs must learn (the last loss at most 0.7 of the
# first). Prints one line: the largest difference and the two ends.
# Run by make gpu-check; DEVICE=cpu runs both on the CPU (checks the script).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
STEPS=${STEPS:-50}
TOL=${TOL:-0.03}
DEVICE=${DEVICE:-cuda}
me=loss-curve.sh
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cd "$w"
cat > config.json <<'EOF'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 128,
 "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
 "max_position_embeddings": 1024, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
 "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151645}
EOF
ds-train --init-random config.json --seed 5 -o base 2> init.log || { cat init.log >&2; exit 1; }
zstd -q -d -f "$top/tests/data/qwen/tokenizer.json.zst" -o base/tokenizer.json
cp "$top/tests/data/qwen/tokenizer_config.json" base/
seq 1 200 | jq -c '{id: ("p\(.)"), conversations: [{from: "user", value: "What is \(.) plus \(. % 17)?"},
	{from: "assistant", value: "<think>\nAdd \(. % 17) to \(.).\n</think>\n\n\(. + (. % 17))"}]}' > conv.jsonl
ds-tokenize -q -t base/tokenizer.json --cutoff-len 512 --pack conv.jsonl > train.shard
run() { # device
	cat > "$1.yaml" <<-EOF
	model_name_or_path: base
	dataset: train.shard
	output_dir: out-$1
	overwrite_output_dir: true
	per_device_train_batch_size: 2
	gradient_accumulation_steps: 2
	learning_rate: 1.0e-3
	max_steps: $STEPS
	lr_scheduler_type: cosine
	warmup_ratio: 0.1
	max_grad_norm: 1.0
	logging_steps: 1
	save_steps: 1000
	bf16: true
	seed: 3
	EOF
	DS_NO_PROGRESS=1 ds-train "$1.yaml" device="$2" 2> "$1.log" || { cat "$1.log" >&2; echo "$me: ds-train on $2 failed" >&2; exit 1; }
	jq -r '.loss' "out-$1/trainer_log.jsonl" > "$1.loss"
}
run ref cpu
run dev "$DEVICE"
grep -h "training on" dev.log >&2 || true
paste ref.loss dev.loss | awk -v tol="$TOL" -v n="$STEPS" '
	{ d = $2 - $1; if (d < 0) d = -d; r = d / $1; if (r > worst) { worst = r; at = NR }
	  if (NR == 1) { a1 = $1; b1 = $2 } a = $1; b = $2 }
	END {
		printf "%d steps: largest loss difference %.2f%% (step %d); cpu %.4f -> %.4f, gpu %.4f -> %.4f\n",
		       NR, 100 * worst, at, a1, a, b1, b
		if (NR != n) { print "expected " n " logged steps" > "/dev/stderr"; exit 1 }
		if (worst > tol) { print "beyond the tolerance " tol > "/dev/stderr"; exit 1 }
		if (a > 0.7 * a1 || b > 0.7 * b1) { print "a run did not learn" > "/dev/stderr"; exit 1 }
	}'
