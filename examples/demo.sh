#!/bin/sh
# make demo: the whole chain, offline, on a problem set it makes itself.
#
#   problems (single-digit sums, generated) → ds-fetch → ds-teacher --offline
#   → ds-judge → ds-sharegpt → ds-tokenize → ds-train (a tiny Qwen2 model
#   from random weights, on the CPU) → ds-infer on held-out problems
#   → ds-judge --summary, before and after training.
#
# The teacher is the dataset itself (--offline: each problem's worked
# solution is its chain of thought), and about one reference in seven is wrong on
# purpose, so the judge has something to reject. The held-out problems are
# the mirror images (b + a) of sums the model trains on (a + b): whether it
# answers them shows whether it learnt the sums or the strings. (A wider
# initialisation, 0.15, and weight decay are what let a model this small
# memorise all 79 sums in a few minutes and answer about half the mirrors;
# with transformers' 0.02 it memorises few in the same time.)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
PATH=$top/bin:$PATH
out=${DEMO_DIR:-$top/build/demo}
EPOCHS=${EPOCHS:-100}
export DS_NO_PROGRESS=1
rm -rf "$out" && mkdir -p "$out"
cd "$out"
t0=$(date +%s)
step() { printf '\n== %s  (%ss)\n' "$1" $(($(date +%s) - t0)); }

step "the problem set: 100 single-digit sums, 21 held out"
awk 'BEGIN { for (a = 0; a < 10; a++) for (b = 0; b < 10; b++) {
	held = (a > b && (a * 7 + b * 3) % 9 < 4)
	wrong = (!held && (a * 3 + b * 5) % 8 == 0)   # a reference solution with a slip
	printf "{\"a\":%d,\"b\":%d,\"held\":%d,\"wrong\":%d}\n", a, b, held, wrong } }' > sums.jsonl
MAP='{domain: "math", problem: "What is \(.a) plus \(.b)?", answer: "\(.a + .b)",
      meta: {thought: "I add the two numbers."},
      solution: "\\boxed{\(.a + .b + .wrong)}"}'
jq -c 'select(.held == 0)' sums.jsonl > train-rows.jsonl
jq -c 'select(.held == 1)' sums.jsonl > heldout-rows.jsonl
ds-fetch -q --map "$MAP" -o problems.jsonl train-rows.jsonl
ds-fetch -q --map "$MAP" -o heldout.jsonl heldout-rows.jsonl
echo "   $(wc -l < problems.jsonl) training problems, $(wc -l < heldout.jsonl) held out; one:"
head -1 problems.jsonl | jq -c '{id, problem, answer}'

step "ds-teacher --offline: the dataset's own chain of thought as the teacher's"
ds-teacher -q --offline -o answers.jsonl problems.jsonl
head -1 answers.jsonl | jq -c .teacher

step "ds-judge: keep what matches the reference"
ds-judge -r rejected.jsonl -o judged.jsonl answers.jsonl
jq -c '{id, problem, said: .judge.predicted, reason: .judge.reason}' rejected.jsonl | head -3

step "ds-sharegpt and ds-tokenize: LLaMA-Factory's sharegpt, then packed token shards"
mkdir -p tok data
zstd -q -d -f "$top/tests/data/qwen/tokenizer.json.zst" -o tok/tokenizer.json
cp "$top/tests/data/qwen/tokenizer_config.json" tok/
ds-sharegpt -q -o data/distill.jsonl judged.jsonl
ds-tokenize -q -t tok/tokenizer.json --cutoff-len 1024 --pack -o train.shard data/distill.jsonl
ds-tokenize inspect -s train.shard | sed -n 1,4p

step "the student: a tiny Qwen2 (2 layers, hidden 64) from random weights"
cat > student.json <<'EOF'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
 "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
 "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "tie_word_embeddings": true,
 "hidden_act": "silu", "attention_dropout": 0.0, "initializer_range": 0.15,
 "bos_token_id": 151643, "eos_token_id": 151645}
EOF
ds-train --init-random student.json --seed 1 -o base
cp tok/tokenizer.json tok/tokenizer_config.json base/

evaluate() { # MODEL TAG
	ds-infer -m "$1" --batch --greedy --max-tokens 40 -q -o "answers-$2.jsonl" heldout.jsonl
	ds-judge --summary -r "wrong-$2.jsonl" "answers-$2.jsonl" > "right-$2.jsonl" 2> "summary-$2.txt"
	echo "   held-out accuracy $2: $(wc -l < "right-$2.jsonl")/$(wc -l < heldout.jsonl)"
	jq -r '"   e.g. \(.problem) → \(.teacher.content | gsub("\n"; " "))"' "answers-$2.jsonl" | head -2
}

step "before training"
evaluate base before

step "ds-train: full SFT, $EPOCHS epochs, on the CPU"
cat > sft.yaml <<EOF
model_name_or_path: base
dataset: train.shard
cutoff_len: 1024
output_dir: student
per_device_train_batch_size: 1
gradient_accumulation_steps: 1
learning_rate: 5.0e-3
weight_decay: 0.1
num_train_epochs: $EPOCHS
lr_scheduler_type: cosine
warmup_ratio: 0.05
logging_steps: 25
save_steps: 100000
plot_loss: true
overwrite_output_dir: true
save_only_model: true
EOF
OMP_WAIT_POLICY=passive ds-train sft.yaml 2>&1 | grep -v "^ds-train: ignored"

step "after training"
evaluate student after

step "where everything is ($out)"
cat <<EOF
   problems, answers, judged, rejected: problems.jsonl answers.jsonl judged.jsonl rejected.jsonl
   training data (LLaMA-Factory sharegpt): data/distill.jsonl
   token shards:                           train.shard
   the trained model (Hugging Face):       student/
   loss curve:                             student/training_loss.svg
   training log:                           student/trainer_log.jsonl
   held-out answers before / after:        answers-before.jsonl answers-after.jsonl
   chat with it:                           ds-infer -m $out/student
EOF
