#!/bin/sh
# ds-train stage: dpo against LLaMA-Factory 0.9.5's own DPO trainer (its
# CustomDPOTrainer over TRL 0.24's DPOTrainer, run by its run_exp in the
# test venv, tests/oracle/lf_dpo_train.py): the same pairs (its own pairwise
# preprocessing of the same records; ds-tokenize's shards equal it, see
# t-llamafactory), beta, batch, accumulation and schedule, fp32 on the CPU.
# For each pref_loss: loss, rewards and log-probabilities of every step,
# and every weight after 3 steps.
. "$(dirname "$0")/lib.sh"

if ! [ -x "$PY" ] || ! "$PY" -c 'import llamafactory, trl' 2>/dev/null; then
	skip 'ds-train stage: dpo against LLaMA-Factory' 'no tests/.venv with llamafactory and trl: run tests/setup-venv.sh'
	exit 0
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME=$WORK/hf TRANSFORMERS_VERBOSITY=error
O=$TOP/tests/oracle
CMP="$PY $O/compare_st.py"
# AdamW turns a gradient element that is fp32 noise into a whole step (see
# t-train): adam_epsilon 1e-6 keeps most such elements still. The weights
# are held to 2e-4 of each tensor's largest: the worst measured, 1.1e-4,
# is the LM head row of <think>, a token both sides train on, so that the
# chosen side's gradient there nearly cancels the rejected side's; every
# other tensor is within 4.1e-5 (k_proj.bias 2.6e-5).
# Under the sanitizers (SAN=1) only the cases that take other C paths run:
# the loss kinds differ in lib/pref.c's arithmetic alone.
full=1; [ "${SAN:-0}" = 1 ] && full=0
S=$WORK/setup
mkdir -p "$S/data" && (
	cd "$S" &&
	qwen_tokenizer tok &&
	jq '.hidden_size = 40 | .intermediate_size = 72 | .num_attention_heads = 5 | .num_key_value_heads = 1
		| .tie_word_embeddings = false' "$DATA/train/tiny-qwen.json" > odd.json &&
	ds-train --init-random odd.json --seed 5 -o base && cp tok/* base/ &&
	ds-train --init-random odd.json --seed 9 -o other && cp tok/* other/ &&
	# 12 pairs of several lengths; the rejected chains ramble
	seq 1 12 | jq -c '{conversations: [{from: "user", value: "What is \(.) times \(. + 3)?"}],
		chosen: {from: "assistant", value: "<think>\nMultiply \(.) by \(. + 3).\n</think>\n\n\(. * (. + 3))"},
		rejected: {from: "assistant", value: ("<think>\nAdd them" + (" again" * (. % 5)) + ".\n</think>\n\n\(. + . + 3)")}}' \
		> data/pairs.jsonl &&
	ds-sharegpt --dataset-info pairs -f dpo -o pairs.jsonl | jq '.pairs.columns |= del(.system)' > data/dataset_info.json &&
	ds-tokenize -q -t tok/tokenizer.json --cutoff-len 1024 data/pairs.jsonl > pairs.shard &&
	cat > base.yaml <<-E &&
	stage: dpo
	model_name_or_path: $S/base
	dataset: $S/pairs.shard
	cutoff_len: 1024
	overwrite_output_dir: true
	per_device_train_batch_size: 1
	gradient_accumulation_steps: 2
	learning_rate: 1.0e-3
	max_steps: 3
	lr_scheduler_type: cosine
	warmup_steps: 0
	adam_epsilon: 1.0e-6
	max_grad_norm: 1.0
	logging_steps: 1
	disable_shuffling: true
	seed: 3
	threads: 2
	E
	# LF's runs, one process: each case's keys over lf_dpo_train.py's BASE
	jq -n --arg other "$S/other" --argjson full $full '{
		sigmoid: {}, orpo: {pref_loss: "orpo", pref_beta: 0.2},
		mixed: {pref_ftx: 0.5, dpo_label_smoothing: 0.1, pref_beta: 0.3, per_device_train_batch_size: 2,
		        gradient_accumulation_steps: 2, max_steps: 3, lr_scheduler_type: "linear", warmup_steps: 1}}
		+ if $full == 1 then {hinge: {pref_loss: "hinge"}, ipo: {pref_loss: "ipo"},
		simpo: {pref_loss: "simpo", pref_beta: 2.0, simpo_gamma: 0.8},
		refmodel: {ref_model: $other}, ipo_unmended: {pref_loss: "ipo", _unmended: true},
		b2: {per_device_train_batch_size: 2, gradient_accumulation_steps: 1}} else {} end' > cases.json &&
	"$PY" "$O/lf_dpo_train.py" "$S/base" "$S/data" pairs "$S/lf" cases.json
) > "$WORK/setup.log" 2>&1 || { echo "t-train-dpo setup failed:"; tail -30 "$WORK/setup.log"; }

# same_as_lf CASE 'ds-train keys': the run's log and weights are LF's.
same_as_lf() {
	ds-train "$S/base.yaml" output_dir=ds $2 2> err || { cat err; return 1; }
	"$PY" "$O/dpo_compare.py" ds/trainer_log.jsonl "$S/lf/$1/trainer_state.json" --rtol 1e-5 &&
	$CMP ds/model.safetensors "$S/lf/$1/model.safetensors" --rtol 2e-4 > cmp.out || { cat cmp.out; return 1; }
}

ok 'pref_loss sigmoid: loss, rewards, log-probabilities per step and the weights after 3 steps = LLaMA-Factory' '
	same_as_lf sigmoid "" && grep -q "reference log-probabilities precomputed" err &&
	test "$(jq -s "map(.current_steps)" -c ds/trainer_log.jsonl)" = "[1,2,3]"
'
[ $full = 1 ] && ok 'pref_loss hinge: the same' 'same_as_lf hinge pref_loss=hinge'
[ $full = 1 ] && ok 'pref_loss ipo (log-probabilities per token): the same' 'same_as_lf ipo pref_loss=ipo'
[ $full = 1 ] && ok 'pref_loss simpo (no reference), beta 2, gamma 0.8: the same' '
	same_as_lf simpo "pref_loss=simpo pref_beta=2.0 simpo_gamma=0.8" && grep -q "no reference model" err
'
ok 'pref_loss orpo (no reference; sft_loss and odds_ratio_loss logged): the same' '
	same_as_lf orpo "pref_loss=orpo pref_beta=0.2" && jq -e ".odds_ratio_loss and .sft_loss" ds/trainer_log.jsonl > /dev/null
'
ok 'pref_ftx, label smoothing, 2 pairs a micro-batch (LF pads them), linear warmup: the same' '
	same_as_lf mixed "pref_ftx=0.5 dpo_label_smoothing=0.1 pref_beta=0.3 per_device_train_batch_size=2 lr_scheduler_type=linear warmup_steps=1"
'
[ $full = 1 ] && ok 'ref_model: another model as the reference: the same' "same_as_lf refmodel ref_model=$S/other"

# LF 0.9.5 calls TRL's dpo_loss without loss_type: its ipo and hinge train
# with the sigmoid loss. ds-train computes the loss named; the oracle mends
# that one call, and unmended it shows the difference.
# The weights' bound is the reference's own: LF run with 2 pairs a
# micro-batch and no accumulation, the same sums as 1 pair and 2
# micro-batches, lands farther from itself than ds-train lands from it.
worst() { $CMP "$1" "$2" --rtol 1 | awk 'NR == 2 { print $2 }'; }
[ $full = 1 ] && ok 'LF against itself (2 pairs x 1 micro-batch vs 1 x 2, the same sums) differs more than ds-train from LF' '
	ds-train "$S/base.yaml" output_dir=ds 2> /dev/null &&
	ours=$(worst ds/model.safetensors "$S/lf/sigmoid/model.safetensors") &&
	theirs=$(worst "$S/lf/b2/model.safetensors" "$S/lf/sigmoid/model.safetensors") &&
	echo "ds-train vs LF $ours, LF vs LF $theirs" &&
	awk -v a="$ours" -v b="$theirs" "BEGIN { exit !(a < b && b > 1e-5) }"
'
[ $full = 1 ] && ok 'LF unmended trains pref_loss ipo with the sigmoid loss (a reference bug ds-train does not copy)' '
	test "$(jq ".log_history[0].loss" "$S/lf/ipo_unmended/trainer_state.json" | cut -c1-6)" = 0.6931 &&
	test "$(jq ".log_history[0].loss" "$S/lf/ipo/trainer_state.json")" = 25
'

ok 'precompute_ref_log_probs false (the reference beside the policy): the same run, bit for bit' '
	ds-train "$S/base.yaml" output_dir=a 2> /dev/null &&
	ds-train "$S/base.yaml" output_dir=b precompute_ref_log_probs=false 2> err &&
	grep -q "the reference model beside the policy" err &&
	cmp a/model.safetensors b/model.safetensors &&
	test "$(jq -c "del(.elapsed_time, .remaining_time, .throughput)" a/trainer_log.jsonl)" = \
	     "$(jq -c "del(.elapsed_time, .remaining_time, .throughput)" b/trainer_log.jsonl)"
'

ok 'resumed from checkpoint-2, the run is the unbroken one bit for bit, the reference read back or loaded again' '
	ds-train "$S/base.yaml" output_dir=one max_steps=4 save_steps=2 2> /dev/null && test -s one/ref_logps.json &&
	for d in two three; do mkdir $d && cp -r one/checkpoint-2 $d/ || return 1; done &&
	cp one/ref_logps.json three/ &&
	ds-train "$S/base.yaml" output_dir=two max_steps=4 save_steps=2 resume_from_checkpoint=two/checkpoint-2 2> err2 &&
	grep -q "resuming from two/checkpoint-2" err2 && grep -q "reference log-probabilities of 12 pairs ($S/base)" err2 &&
	ds-train "$S/base.yaml" output_dir=three max_steps=4 save_steps=2 resume_from_checkpoint=three/checkpoint-2 2> err3 &&
	! grep -q "reference log-probabilities of" err3 &&
	cmp one/model.safetensors two/model.safetensors && cmp one/model.safetensors three/model.safetensors &&
	test "$(jq -c "[.current_steps, .loss]" one/trainer_log.jsonl)" = "$(jq -c "[.current_steps, .loss]" three/trainer_log.jsonl)"
'

ok 'bad input: conversations to stage dpo, pairs to stage sft, a side with no trained token, sides with different prompts' '
	echo "{\"conversations\":[{\"from\":\"user\",\"value\":\"q\"},{\"from\":\"assistant\",\"value\":\"a\"}]}" > c.jsonl &&
	ds-tokenize -q -t "$S/tok/tokenizer.json" c.jsonl > c.shard &&
	expect_exit 1 ds-train "$S/base.yaml" output_dir=o dataset=c.shard 2> err &&
	grep -q "c.shard: holds conversations, not preference pairs" err &&
	expect_exit 1 ds-train "$S/base.yaml" output_dir=o stage=sft 2> err &&
	grep -q "pairs.shard: holds preference pairs .*: train them with stage: dpo" err &&
	ds-tokenize -q -t "$S/tok/tokenizer.json" --cutoff-len 2 "$S/data/pairs.jsonl" > tiny.shard &&
	expect_exit 1 ds-train "$S/base.yaml" output_dir=o dataset=tiny.shard cutoff_len=2 2> err &&
	grep -q "pair 1: the chosen side has no trained token" err &&
	zstd -q -d -c "$S/pairs.shard" > raw &&
	"$PY" -c "
import struct, sys, zlib
b = bytearray(open(\"raw\", \"rb\").read())
at = struct.unpack_from(\"<I\", b, 12)[0]  # the header size: the first sample follows
t, d = struct.unpack_from(\"<II\", b, at + 4)
at += 16 + 8 * d + 5 * t  # the chosen side of pair 1; the rejected side next
t, d = struct.unpack_from(\"<II\", b, at + 4)
ids = at + 16 + 8 * d
struct.pack_into(\"<I\", b, ids + 4 * 3, 11)  # a token of its prompt (the system text)
struct.pack_into(\"<I\", b, at + 12, zlib.crc32(bytes(b[at + 16:at + 16 + 8 * d + 5 * t])))
open(\"edited.shard\", \"wb\").write(b)
" && expect_exit 1 ds-train "$S/base.yaml" output_dir=o dataset=edited.shard 2> err &&
	grep -q "pair 1: the chosen and rejected sides share no prompt" err &&
	expect_exit 2 ds-train "$S/base.yaml" output_dir=o pref_loss=kto_pair 2> err && grep -q "pref_loss" err &&
	expect_exit 2 ds-train "$S/base.yaml" output_dir=o pref_bco_weight=0.5 2> err && grep -q "BCO is not supported" err
'
