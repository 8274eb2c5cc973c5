#!/bin/sh
# make demo-dpo: the RL stage after make demo's SFT, offline, on its sums.
#
#   the SFT student (make demo; run first when missing) answers each
#   training problem 8 times at temperature 1.2 (ds-infer --batch -n 8)
#   → ds-judge -r rejected.jsonl (its wrong answers kept apart)
#   → ds-teacher --guided on them, the teacher being the student itself
#     served by ds-infer serve (a local model, the reference answer in its
#     prompt: a weak teacher, but the loop is the one a real teacher runs)
#   → ds-judge → ds-sharegpt -f dpo (per problem, a correct answer chosen,
#     a wrong one rejected) → ds-tokenize (pair shards)
#   → ds-train stage: dpo from the student (the reference: the student)
#   → ds-infer --batch on the training and the held-out sums
#     → ds-judge --summary, after SFT and after DPO.
#
# What it prints is what happened: with a model this small the held-out
# accuracy may rise, stay or fall; the pairs' rewards/accuracies in the log
# show what DPO learnt on the training problems.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
PATH=$top/bin:$PATH
out=${DEMO_DIR:-$top/build/demo}
export DS_NO_PROGRESS=1 OMP_WAIT_POLICY=passive
[ -d "$out/student" ] && [ -s "$out/problems.jsonl" ] || DEMO_DIR=$out "$top/examples/demo.sh"
cd "$out"
rm -rf dpo && mkdir dpo
t0=$(date +%s)
step() { printf '\n== %s  (%ss)\n' "$1" $(($(date +%s) - t0)); }

step "the SFT student answers every training problem 8 times (temperature 1.2)"
ds-infer -m student --batch -n 8 --temperature 1.2 --seed 7 --max-tokens 40 -q -o dpo/samples.jsonl problems.jsonl
ds-judge -q -r dpo/wrong.jsonl -o dpo/right.jsonl dpo/samples.jsonl
echo "   $(wc -l < dpo/right.jsonl) correct, $(wc -l < dpo/wrong.jsonl) wrong of $(wc -l < dpo/samples.jsonl)"

step "ds-teacher --guided: the wrong ones asked again with the reference answer (the student, served)"
ds-infer serve -m student --port 0 --port-file dpo/port --temperature 1.2 --max-tokens 40 2> dpo/serve.log &
server=$!
trap 'kill $server 2> /dev/null || true' EXIT
i=0; while [ ! -s dpo/port ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
DS_API_KEY=none ds-teacher -q --guided --base-url "http://127.0.0.1:$(cat dpo/port)/v1" -o dpo/guided.jsonl dpo/wrong.jsonl
kill $server; wait $server 2> /dev/null || true
ds-judge -q -r dpo/guided-wrong.jsonl -o dpo/guided-right.jsonl dpo/guided.jsonl
echo "   guided: $(wc -l < dpo/guided-right.jsonl) correct, $(wc -l < dpo/guided-wrong.jsonl) wrong"

step "ds-sharegpt -f dpo and ds-tokenize: pairs, then pair shards"
cat dpo/right.jsonl dpo/guided-right.jsonl > dpo/accepted.jsonl
cat dpo/wrong.jsonl dpo/guided-wrong.jsonl > dpo/rejected.jsonl
# a wrong or unreadable answer is rejected; up to 2 pairs a problem
ds-sharegpt -f dpo --rejected-verdicts incorrect,unparsable --pairs 2 -o dpo/pairs.jsonl \
	dpo/accepted.jsonl dpo/rejected.jsonl 2> dpo/sharegpt.log
tail -1 dpo/sharegpt.log
ds-tokenize -q -t tok/tokenizer.json --cutoff-len 1024 -o dpo/pairs.shard dpo/pairs.jsonl
ds-tokenize inspect -s dpo/pairs.shard | grep -E "^(preference pairs|tokens)"

step "ds-train stage: dpo from the student"
cat > dpo/dpo.yaml <<EOF
stage: dpo
model_name_or_path: student
dataset: dpo/pairs.shard
cutoff_len: 1024
output_dir: dpo/student
per_device_train_batch_size: 4
gradient_accumulation_steps: 1
learning_rate: 5.0e-4
num_train_epochs: 3
lr_scheduler_type: cosine
warmup_ratio: 0.1
pref_beta: 0.1
pref_ftx: 1.0
logging_steps: 10
save_steps: 100000
plot_loss: true
overwrite_output_dir: true
save_only_model: true
EOF
ds-train dpo/dpo.yaml 2>&1 | grep -v "^ds-train: ignored"

evaluate() { # MODEL TAG PROBLEMS
	ds-infer -m "$1" --batch --greedy --max-tokens 40 -q -o "dpo/answers-$2.jsonl" "$3"
	ds-judge --summary -r "dpo/wrong-$2.jsonl" "dpo/answers-$2.jsonl" > "dpo/right-$2.jsonl" 2> "dpo/summary-$2.txt"
	echo "   $2: $(wc -l < "dpo/right-$2.jsonl")/$(wc -l < "$3") right (greedy)"
}

step "the sums, greedy, after SFT and after DPO"
evaluate student train-sft problems.jsonl
evaluate dpo/student train-dpo problems.jsonl
evaluate student heldout-sft heldout.jsonl
evaluate dpo/student heldout-dpo heldout.jsonl

step "where everything is ($out/dpo)"
cat <<EOF
   the student's samples, judged:     samples.jsonl right.jsonl wrong.jsonl
   guided answers, judged:            guided.jsonl guided-right.jsonl guided-wrong.jsonl
   pairs (LLaMA-Factory ranking):     pairs.jsonl, pair shards: pairs.shard
   the DPO model (Hugging Face):      student/   (log: student/trainer_log.jsonl)
   answers after SFT / DPO:           answers-{train,heldout}-{sft,dpo}.jsonl
EOF
