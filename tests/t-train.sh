#!/bin/sh
# ds-train: the Qwen2 CPU engine against PyTorch + transformers (logits,
# loss, every gradient, AdamW steps with warmup, cosine and clipping), the
# Hugging Face model layout both ways, and the training run around it:
# YAML settings, shards, checkpoints, bit-exact resume, bad input.
. "$(dirname "$0")/lib.sh"

O=$TOP/tests/oracle
CFGS=$O/qwen2_configs.json
REF="$PY $O/qwen2_ref.py"
CMP="$PY $O/compare_st.py"

if [ ! -x "$PY" ]; then
	skip 'ds-train against PyTorch' 'tests/.venv is missing (make test makes it)'
	exit 0
fi

# ---- the model against PyTorch, on tiny random Qwen2 configs ----------------
# AdamW divides each gradient by its own running RMS, so an element whose
# true gradient is 0 (a hidden unit no target reaches; k_proj.bias, which
# softmax nearly cancels) moves by +-lr on fp32 rounding noise of 1e-9, in
# PyTorch as much as here. adam_epsilon 1e-6 (not 1e-8) keeps such elements
# still, so the comparison measures the engine, not the noise; gradients are
# compared before any update either way. k_proj.bias is the extreme case:
# softmax ignores what adds the same score to every key, so all of its
# gradient is what RoPE leaves of that symmetry, and after 5 steps it is
# held to 1e-3 (its gradient, to 1e-4 like every other).
KB=param.model.layers.0.self_attn.k_proj.bias,param.model.layers.1.self_attn.k_proj.bias
# Each covers a different corner: tied/untied, GQA 1 and 2, theta 1e4/1e6,
# eps 1e-6/1e-5, and each schedule; the batches pack several documents into
# a sample, mask part of them, and end with a step that has no targets.
same_step() { # CONFIG SEED 'options for both'
	$REF init --config "$CFGS:$1" --seed "$2" --dtype float32 -o m > /dev/null &&
	python3 "$O/qwen2_batch.py" --seed "$2" --steps 5 --empty-step -o b.json &&
	$REF train --model m --batch b.json $3 --adam-eps 1e-6 -o ref.st > /dev/null &&
	ds-train check-step -m m --batch b.json $3 --adam-eps 1e-6 -o ds.st &&
	$CMP ds.st ref.st --rtol 1e-4 --ignore $KB > cmp.out || { cat cmp.out; false; } &&
	$CMP ds.st ref.st --rtol 1e-3 --only $KB
}
ok 'tied, MHA: logits, loss, gradients, 5 AdamW steps (cosine, warmup, clipping) = PyTorch' \
	'same_step tied-mha 1 "--scheduler cosine --warmup-ratio 0.2 --max-grad-norm 1.0 --lr 1e-3 --weight-decay 0.1"'
ok 'untied, GQA 2: the same = PyTorch (linear schedule)' \
	'same_step untied-gqa2 2 "--scheduler linear --warmup-ratio 0.4 --max-grad-norm 0.5 --lr 2e-3 --weight-decay 0.01"'
ok 'tied, GQA 2: the same = PyTorch (constant, no clipping)' \
	'same_step tied-gqa2 3 "--scheduler constant --warmup-ratio 0 --max-grad-norm 0 --lr 1e-3 --weight-decay 0"'
ok 'untied, MHA, eps 1e-5: the same = PyTorch (constant with warmup)' \
	'same_step untied-mha 4 "--scheduler constant --warmup-ratio 0.2 --max-grad-norm 1.0 --lr 5e-4 --weight-decay 0.1"'

IDS=5,17,299,0,42,42,7,120,3
ok 'a bf16 model saved sharded by transformers loads with the same logits' '
	$REF init --config $CFGS:untied-gqa2 --seed 5 --dtype bfloat16 --max-shard-size 100KB -o m > /dev/null &&
	test -f m/model.safetensors.index.json &&
	$REF logits --model m --ids $IDS -o ref.st &&
	ds-train logits -m m --ids $IDS -o ds.st &&
	$CMP ds.st ref.st --rtol 1e-5'
ok 'a transformers 4.x config (rope_theta, torch_dtype, fp16) loads the same' '
	$REF init --config $CFGS:tied-gqa2 --seed 6 --dtype float16 --legacy-config -o m > /dev/null &&
	grep -q torch_dtype m/config.json &&
	$REF logits --model m --ids $IDS -o ref.st &&
	ds-train logits -m m --ids $IDS -o ds.st &&
	$CMP ds.st ref.st --rtol 1e-5'
ok 'ds-train --init-random writes a model transformers loads, same logits' '
	ds-train --init-random $DATA/train/tiny-qwen.json --seed 7 -o m &&
	test -f m/model.safetensors && test -f m/config.json &&
	$REF logits --model m --ids 151644,872,198,9885,151645 -o ref.st &&
	ds-train logits -m m --ids 151644,872,198,9885,151645 -o ds.st &&
	$CMP ds.st ref.st --rtol 1e-5'

# ---- training runs on shards --------------------------------------------------
# A tiny model with Qwen's vocabulary (so the shards' ids fit), a base made
# by transformers with rich random weights, the Qwen tokenizer beside it,
# and packed shards of 24 short conversations.
SETUP=$WORK/setup
mkdir -p "$SETUP" && (
	cd "$SETUP" &&
	qwen_tokenizer tok &&
	$REF init --config "$DATA/train/tiny-qwen.json" --seed 11 --dtype float32 -o base > /dev/null &&
	cp tok/tokenizer.json tok/tokenizer_config.json base/ &&
	seq 1 24 | jq -c '{id: ("p\(.)"), conversations: [{from: "user", value: "What is \(.) plus \(.)?"},
		{from: "assistant", value: "<think>\nDouble it.\n</think>\n\n\(. * 2)"}]}' > conv.jsonl &&
	ds-tokenize -q -t tok/tokenizer.json --cutoff-len 256 --pack conv.jsonl > train.shard
) > "$WORK/setup.log" 2>&1 || { echo "t-train setup failed:"; cat "$WORK/setup.log"; }
S=$SETUP

# yaml OUT ['key: value' ...]: the seed's keys, small; the arguments
# replace the keys they name.
yaml() {
	out=$1; shift
	keys=$(for line in "$@"; do printf '%s\n' "${line%%:*}"; done)
	yaml_base "$out" | awk -v keys="$keys" 'BEGIN { n = split(keys, k, "\n"); for (i = 1; i <= n; i++) drop[k[i]] = 1 }
		{ split($0, f, ":"); if (!(f[1] in drop)) print }'
	for line in "$@"; do echo "$line"; done
}
yaml_base() {
	out=$1
	cat <<-EOF
	### model
	model_name_or_path: $S/base
	### method
	stage: sft
	do_train: true
	finetuning_type: full
	deepspeed: examples/deepspeed/ds_z3_config.json
	### dataset
	dataset: $S/train.shard
	template: qwen
	cutoff_len: 256
	### output
	output_dir: $out
	logging_steps: 1
	save_steps: 2
	plot_loss: true
	overwrite_output_dir: true
	### train
	per_device_train_batch_size: 1
	gradient_accumulation_steps: 2
	learning_rate: 1.0e-3
	num_train_epochs: 2.0
	lr_scheduler_type: cosine
	warmup_ratio: 0.1
	bf16: true
	seed: 3
	EOF
}

ok 'trains from a LLaMA-Factory YAML: model, tokenizer, log, loss curve, checkpoints' '
	yaml out > sft.yaml &&
	ds-train sft.yaml 2> err &&
	grep -q "ignored (LLaMA-Factory keys ds-train has no use for):.*deepspeed" err &&
	for f in config.json model.safetensors tokenizer.json tokenizer_config.json trainer_log.jsonl \
		training_loss.svg ds_train_args.yaml trainer_state.json; do test -s out/$f || fail "no $f"; done &&
	test -d out/checkpoint-2 && test -f out/checkpoint-2/optimizer.safetensors &&
	test "$(wc -l < out/trainer_log.jsonl)" = 6 &&
	jq -e "select(.current_steps == 6) | .total_steps == 6 and .epoch == 2" out/trainer_log.jsonl > /dev/null &&
	first=$(jq -s ".[0].loss" out/trainer_log.jsonl) && last=$(jq -s ".[-1].loss" out/trainer_log.jsonl) &&
	jq -n "$last < $first" | grep -q true || fail "loss did not go down: $first -> $last" &&
	grep -q "\"dtype\": \"bfloat16\"" out/config.json &&
	python3 -c "import xml.etree.ElementTree as E; E.parse(\"out/training_loss.svg\")"'

ok 'the trained model (bf16) gives the same logits in transformers' '
	yaml out "max_steps: 2" > sft.yaml && ds-train sft.yaml 2> err &&
	$REF logits --model out --ids 151644,872,198,3838,374,220,18,5519,151645 -o ref.st &&
	ds-train logits -m out --ids 151644,872,198,3838,374,220,18,5519,151645 -o ds.st &&
	$CMP ds.st ref.st --rtol 1e-5'

# One optimizer step over every sample of the shard (accumulation 5 = the
# whole shard) is the oracle's step on the same tokens: the training loop
# feeds the engine what the shard holds, masks and documents included.
ok 'one training step from the shard = PyTorch on the same samples' '
	ds-tokenize inspect --json $S/train.shard |
		jq -s "{steps: [[.[] | {ids: .input_ids, mask: [.labels[] | if . == -100 then 0 else 1 end], doc_len: .docs}]]}" > b.json &&
	$REF train --model $S/base --batch b.json --lr 1e-3 --weight-decay 0.1 --max-grad-norm 1.0 \
		--scheduler cosine --warmup-ratio 0 -o ref.st > /dev/null &&
	yaml out "gradient_accumulation_steps: 5" "max_steps: 1" "warmup_ratio: 0" "weight_decay: 0.1" \
		"bf16: false" "plot_loss: false" > sft.yaml &&
	ds-train sft.yaml 2> err &&
	ds-train check-step -m out --batch b.json --lr 0 -o after.st &&
	$PY -c "
from safetensors.numpy import load_file, save_file
a = load_file(\"after.st\"); save_file({k.replace(\"param.\", \"\"): v for k, v in a.items() if k.startswith(\"param.\")}, \"ds.st\")
r = load_file(\"ref.st\"); save_file({k.replace(\"param.\", \"\"): v for k, v in r.items() if k.startswith(\"param.\")}, \"want.st\")
" && $CMP ds.st want.st --rtol 1e-4 &&
	want=$($PY -c "from safetensors.numpy import load_file; print(round(float(load_file(\"ref.st\")[\"loss\"][0]), 4))") &&
	jq -e ".loss == $want" out/trainer_log.jsonl > /dev/null || fail "loss $(jq .loss out/trainer_log.jsonl), want $want"'

ok 'N steps, then resume from checkpoint-N, equals the whole run bit for bit' '
	yaml a "max_steps: 6" "save_steps: 3" > a.yaml && ds-train a.yaml 2> err &&
	yaml b "max_steps: 6" "save_steps: 3" > b.yaml && ds-train b.yaml 2> err &&
	rm -r b/checkpoint-6 b/model.safetensors &&
	ds-train b.yaml resume_from_checkpoint=b/checkpoint-3 2> err2 &&
	grep -q "resuming from b/checkpoint-3 at step 3 of 6" err2 &&
	cmp a/checkpoint-6/optimizer.safetensors b/checkpoint-6/optimizer.safetensors &&
	cmp a/model.safetensors b/model.safetensors &&
	test "$(jq -s "[.[].current_steps]" b/trainer_log.jsonl | jq -c .)" = "[1,2,3,4,5,6]"'

# The same command run again after a kill -9 carries on (LLaMA-Factory's
# rule: an output_dir with checkpoints and no overwrite_output_dir resumes).
ok 'killed mid-run and run again, the same model as an unbroken run' '
	set -- "max_steps: 30" "save_steps: 4" "gradient_accumulation_steps: 1" "save_total_limit: 2" \
		"overwrite_output_dir: false" &&
	yaml a "$@" > a.yaml && ds-train a.yaml 2> /dev/null &&
	yaml b "$@" > b.yaml &&
	{ ds-train b.yaml 2> /dev/null & pid=$!; } &&
	i=0; while [ ! -d b/checkpoint-8 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done &&
	kill -9 $pid && { wait $pid 2> /dev/null || true; } && test ! -f b/checkpoint-28/optimizer.safetensors &&
	ds-train b.yaml 2> err &&
	grep -q "resuming from b/checkpoint-" err &&
	cmp a/model.safetensors b/model.safetensors &&
	test "$(ls -d b/checkpoint-* | wc -l)" = 2'
ok 'resume_from_checkpoint: true takes the newest checkpoint' '
	yaml b "max_steps: 4" "save_steps: 2" > b.yaml && ds-train b.yaml 2> /dev/null &&
	rm -r b/checkpoint-4 && ds-train b.yaml resume_from_checkpoint=true 2> err &&
	grep -q "resuming from b/checkpoint-2 at step 2 of 4" err'

# ---- bad input ------------------------------------------------------------------
ok 'shards made with another tokenizer are refused' '
	mkdir m && cp $S/base/config.json $S/base/model.safetensors m/ &&
	jq -c ".model.merges |= .[:-1]" $S/base/tokenizer.json > m/tokenizer.json &&
	expect_exit 1 ds-train output_dir=o model_name_or_path=m dataset=$S/train.shard cutoff_len=256 2> err &&
	grep -q "train.shard: made with another tokenizer than the model" err'
ok 'a truncated safetensors file is refused with its name, no crash' '
	mkdir m && cp $S/base/config.json m/ && head -c 100000 $S/base/model.safetensors > m/model.safetensors &&
	expect_exit 1 ds-train logits -m m --ids 1,2 -o x.st 2> err && grep -q "model.safetensors" err && cat err'
ok 'a config without hidden_size, or with another activation, is refused naming the field' '
	mkdir m && cp $S/base/model.safetensors m/ &&
	jq "del(.hidden_size)" $S/base/config.json > m/config.json &&
	expect_exit 1 ds-train logits -m m --ids 1 -o x.st 2> err && grep -q "hidden_size. is missing" err &&
	jq ".hidden_act = \"gelu\"" $S/base/config.json > m/config.json &&
	expect_exit 1 ds-train logits -m m --ids 1 -o x.st 2> err && grep -q "hidden_act .gelu. is not supported" err'
ok 'a tensor of the wrong shape is refused by name' '
	$REF init --config $CFGS:tied-mha --seed 1 --dtype float32 -o m > /dev/null &&
	jq ".intermediate_size = 96" m/config.json > c && mv c m/config.json &&
	expect_exit 1 ds-train logits -m m --ids 1 -o x.st 2> err && grep -q "mlp.gate_proj.weight has shape" err'
ok 'a NaN loss stops the run, naming the step and the last good checkpoint' '
	yaml out "max_steps: 8" "save_steps: 1" "gradient_accumulation_steps: 1" "learning_rate: 1.0e+30" "warmup_ratio: 0" > n.yaml &&
	expect_exit 1 ds-train n.yaml 2> err &&
	grep -E "step [0-9]+: the (loss|gradient norm) is (NaN|infinite); stopping before the update \(last good checkpoint: out/checkpoint-[0-9]+\)" err'
ok 'a non-empty output_dir is refused without overwrite_output_dir' '
	mkdir out && touch out/x && yaml out "overwrite_output_dir: false" > s.yaml &&
	expect_exit 1 ds-train s.yaml 2> err && grep -q "not empty" err'
ok 'LLaMA-Factory keys ds-train has no use for are listed as ignored; a bad value is a usage error' '
	yaml out "max_steps: 1" "lora_rank: 8" > s.yaml && ds-train s.yaml 2> err &&
	grep -q "ignored (LLaMA-Factory keys ds-train has no use for): .*lora_rank" err &&
	grep -q "training on the CPU: fp32 weights, .*; saved in bfloat16" err &&
	expect_exit 2 ds-train s.yaml learning_rate=abc 2> err && grep -q "learning_rate" err'
# Without a GPU (or a CUDA build) device: cuda says why and touches
# nothing; device: auto trains on the CPU. With one, cuda trains there.
ok 'device: cuda without a GPU is an error saying why; auto and cpu train on the CPU' '
	yaml out "max_steps: 1" > s.yaml &&
	if ds-train s.yaml device=cuda 2> err; then grep -q "training on .*: bf16 weights and activations" err
	else grep -q "device: cuda: " err && test ! -d out; fi &&
	rm -rf out && ds-train s.yaml --device cpu 2> err && grep -q "training on the CPU: fp32" err &&
	expect_exit 2 ds-train s.yaml device=tpu 2> err && grep -q "device" err'
# LLaMA-Factory (HfArgumentParser, allow_extra_keys false) refuses a key it
# does not know: a typo must not train with the default.
ok 'an unknown key is a usage error naming the key and the nearest known one' '
	yaml out "max_steps: 1" "learning_rat: 1e-5" > s.yaml && expect_exit 2 ds-train s.yaml 2> err &&
	grep -q "unknown key .learning_rat. (did you mean .learning_rate.?)" err && test ! -d out &&
	yaml out "max_steps: 1" > u.yaml && expect_exit 2 ds-train u.yaml gradient_acumulation_steps=2 2> err &&
	grep -q "did you mean .gradient_accumulation_steps." err &&
	yaml out "max_steps: 1" "zzzz_nothing_like_it: 1" > t.yaml && expect_exit 2 ds-train t.yaml 2> err &&
	grep -q "unknown key .zzzz_nothing_like_it.: neither ds-train nor LLaMA-Factory" err'
ok 'a hostile YAML: nested 100,000 deep refused at once (libyaml is quadratic in the depth), over 1 MiB refused' '
	python3 -c "print(\"x: \" + \"[\" * 100000 + \"]\" * 100000)" > deep.yaml &&
	s=$(date +%s) && expect_exit 2 ds-train deep.yaml 2> err && test $(($(date +%s) - s)) -lt 5 &&
	grep -q "deep.yaml:1: x: a value nested deeper than 64 levels" err &&
	head -c 2000000 /dev/zero | tr "\\0" "#" > big.yaml && expect_exit 2 ds-train big.yaml 2> err &&
	grep -q "big.yaml: 2000000 bytes: larger than a ds-train config can be" err'
ok 'resuming from a checkpoint saved with save_only_model is refused' '
	yaml out "max_steps: 2" "save_steps: 1" "save_only_model: true" > s.yaml && ds-train s.yaml 2> /dev/null &&
	expect_exit 1 ds-train s.yaml resume_from_checkpoint=out/checkpoint-1 2> err && grep -q "no optimizer state" err'
ok 'resuming from a LLaMA-Factory checkpoint (optimizer.pt): refused, saying to start from its weights' '
	yaml out "max_steps: 2" "save_steps: 1" "save_only_model: true" > s.yaml && ds-train s.yaml 2> /dev/null &&
	printf "\200\004pickle" > out/checkpoint-1/optimizer.pt &&
	expect_exit 1 ds-train s.yaml resume_from_checkpoint=out/checkpoint-1 2> err &&
	grep -q "a transformers (LLaMA-Factory) checkpoint: its optimizer state, optimizer.pt, is a Python pickle" err &&
	grep -q "model_name_or_path: out/checkpoint-1, resume_from_checkpoint: null" err'
