#!/bin/sh
# MPI (lib/comm_mpi.c): the collectives data-parallel training uses, under
# mpirun with 2 and 3 ranks on this machine, and a rank killed with -9
# ending the others within seconds instead of leaving them waiting.
. "$(dirname "$0")/lib.sh"
# As root, on 2 cores: OpenMPI's own switches for both.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# OpenMPI's libraries keep allocations to the end: not ours to report.
export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
B=$TOP/build/tests/mpi_comm

if ! command -v mpirun > /dev/null || [ ! -x "$B" ]; then
	skip 'collectives under mpirun' 'no OpenMPI here (apt-get install openmpi-bin libopenmpi-dev), or built with MPI=0'
	exit 0
fi

ok 'all-reduce (float, double, long), reduce-scatter, all-gather and broadcast are right on 2 and 3 ranks' '
	mpirun -np 2 "$B" > out 2> err && grep -qx "mpi_comm: 2 ranks: all-reduce, reduce-scatter, all-gather, broadcast right" out &&
	mpirun -np 3 "$B" > out 2> err && grep -qx "mpi_comm: 3 ranks: all-reduce, reduce-scatter, all-gather, broadcast right" out
'

ok 'a rank killed with -9 ends the others within seconds (no hang), non-zero' '
	s=$(date +%s) && rc=0 && { timeout 60 mpirun -np 2 "$B" die > out 2> err || rc=$?; } &&
	test "$rc" != 0 && test "$rc" != 124 && test $(($(date +%s) - s)) -lt 20 && grep -q "signal 9" err
'

# ---- ds-train across ranks -------------------------------------------------
# Data parallel with ZeRO-1 (lib/trainstep.c) must be the one-process run:
# N ranks with accumulation A against one process with N x A, the same
# global order. Only the order of the ranks' sums differs, so the bound is
# rounding: grad norms within 1e-6 relative (measured: about 5e-8), the
# logged losses equal, weights and optimizer state within 1e-6 (measured:
# 3.3e-7 and 4.6e-7 on the tiny model after 10 steps). adam_epsilon 1e-6,
# as in t-train, keeps elements whose true gradient is 0 from moving by lr
# on that rounding (AdamW divides by the gradient's own RMS).
if [ ! -x "$PY" ] || [ ! -x "$TOP/bin/ds-train" ]; then
	skip 'ds-train under mpirun' 'tests/.venv is missing (make test makes it)'
	exit 0
fi
CMP="$PY $TOP/tests/oracle/compare_st.py"
S=$WORK/setup
mkdir -p "$S" && (
	cd "$S" &&
	qwen_tokenizer tok &&
	ds-train --init-random "$DATA/train/tiny-qwen.json" --seed 11 -o base &&
	cp tok/tokenizer.json tok/tokenizer_config.json base/ &&
	seq 1 60 | jq -c '{id: ("p\(.)"), conversations: [{from: "user", value: "What is \(.) plus \(.)?"},
		{from: "assistant", value: "<think>\nDouble it.\n</think>\n\n\(. * 2)"}]}' > conv.jsonl &&
	ds-tokenize -q -t tok/tokenizer.json --cutoff-len 256 conv.jsonl > train.shard &&
	cat > base.yaml <<-E
	model_name_or_path: $S/base
	dataset: $S/train.shard
	cutoff_len: 256
	logging_steps: 1
	save_steps: 2
	overwrite_output_dir: true
	per_device_train_batch_size: 1
	learning_rate: 1.0e-3
	num_train_epochs: 2.0
	lr_scheduler_type: cosine
	warmup_ratio: 0.1
	max_grad_norm: 0.05
	adam_epsilon: 1.0e-6
	seed: 3
	threads: 1
	E
	# the reference: one process, accumulation 12
	ds-train base.yaml output_dir=one gradient_accumulation_steps=12 &&
	seq 1 8 | jq -c '{conversations: [{from: "user", value: "What is \(.) times 3?"}],
		chosen: {from: "assistant", value: "<think>\nTriple it.\n</think>\n\n\(. * 3)"},
		rejected: {from: "assistant", value: ("<think>\nAdd" + (" it" * .) + ".\n</think>\n\n\(. + 3)")}}' > pairs.jsonl &&
	ds-tokenize -q -t tok/tokenizer.json --cutoff-len 256 pairs.jsonl > pairs.shard
) > "$WORK/setup.log" 2>&1 || { echo "t-mpi setup failed:"; cat "$WORK/setup.log"; }

# same_run DIR: DIR's log and weights are the reference's, to the bound.
same_run() {
	jq -c '[.current_steps, .loss, .total_tokens]' "$S/one/trainer_log.jsonl" > want &&
	jq -c '[.current_steps, .loss, .total_tokens]' "$1/trainer_log.jsonl" > got &&
	cmp want got || { paste want got; fail "losses or token counts differ"; } &&
	paste "$S/one/trainer_log.jsonl" "$1/trainer_log.jsonl" | sed 's/}\t{/}\n{/' | jq -s -e '
		[range(0; length; 2) as $i | (.[$i].grad_norm - .[$i + 1].grad_norm) / .[$i].grad_norm | fabs]
		| max < 1e-6' > /dev/null || fail "grad norms differ by more than 1e-6" &&
	$CMP "$1/model.safetensors" "$S/one/model.safetensors" --rtol 1e-6
}

ok 'mpirun -np 2 with accumulation 6 is one process with 12: losses, grad norms, weights, optimizer state' '
	mpirun -np 2 ds-train $S/base.yaml output_dir=two gradient_accumulation_steps=6 2> err &&
	grep -q "2 ranks (ZeRO-1)" err && test "$(grep -c "samples (" err)" = 1 &&
	same_run two &&
	$CMP two/checkpoint-10/optimizer.safetensors $S/one/checkpoint-10/optimizer.safetensors --rtol 1e-6
'

ok 'mpirun -np 3 with accumulation 4 (moments sharded unevenly, a padded bucket) is the same run' '
	mpirun -np 3 ds-train $S/base.yaml output_dir=three gradient_accumulation_steps=4 2> err &&
	same_run three
'

ok 'a checkpoint written by 2 ranks resumes with 1, and one written by 1 resumes with 2' '
	mkdir a b && cp -r $S/one/checkpoint-4 a/ &&
	mpirun -np 2 ds-train $S/base.yaml output_dir=a gradient_accumulation_steps=6 resume_from_checkpoint=a/checkpoint-4 2> err &&
	grep -q "resuming from a/checkpoint-4 at step 4" err && same_run a &&
	mpirun -np 2 ds-train $S/base.yaml output_dir=two gradient_accumulation_steps=6 2> /dev/null &&
	cp -r two/checkpoint-6 b/ &&
	ds-train $S/base.yaml output_dir=b gradient_accumulation_steps=12 resume_from_checkpoint=b/checkpoint-6 2> err &&
	same_run b
'

ok 'a rank killed with -9 mid-run ends the other within seconds; the last checkpoint resumes' '
	{ mpirun -np 2 ds-train $S/base.yaml output_dir=k gradient_accumulation_steps=6 num_train_epochs=40 \
		> out 2> err & mp=$!; } &&
	i=0; while [ ! -d k/checkpoint-4 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done &&
	test -d k/checkpoint-4 || fail "no checkpoint-4 after 60 s"
	# the ranks are the children of mpirun
	victim=$(pgrep -P $mp -x ds-train | tail -1) && test -n "$victim" || fail "no rank found"
	s=$(date +%s) && kill -9 $victim && rc=0 && { wait $mp || rc=$?; } &&
	test "$rc" != 0 && test $(($(date +%s) - s)) -lt 20 || fail "mpirun exited $rc after $(($(date +%s) - s)) s"
	sleep 1; test -z "$(pgrep -x ds-train -P $mp)" || fail "a rank is left"
	last=$(ls -d k/checkpoint-* | sort -t- -k2 -n | tail -1) &&
	mpirun -np 2 ds-train $S/base.yaml output_dir=k gradient_accumulation_steps=6 num_train_epochs=40 \
		max_steps=$((${last##*-} + 2)) resume_from_checkpoint=$last 2> err2 || { cat err2; fail "resume failed"; }
	grep -q "resuming from $last" err2 && test -s k/model.safetensors
'

ok 'stage: dpo, mpirun -np 2 with accumulation 1 is one process with 2: tokens, accuracies; losses, grad norms, margins within 1e-5; weights 2e-5' '
	set -- stage=dpo dataset=$S/pairs.shard max_steps=4 num_train_epochs=1 adam_epsilon=1e-6 &&
	ds-train $S/base.yaml output_dir=one "$@" gradient_accumulation_steps=2 2> /dev/null &&
	mpirun -np 2 ds-train $S/base.yaml output_dir=two "$@" gradient_accumulation_steps=1 2> err &&
	grep -q "2 ranks (ZeRO-1)" err &&
	jq -c "[.current_steps, .total_tokens, .\"rewards/accuracies\"]" one/trainer_log.jsonl > want &&
	jq -c "[.current_steps, .total_tokens, .\"rewards/accuracies\"]" two/trainer_log.jsonl > got &&
	test "$(wc -l < want)" = 4 && cmp want got &&
	paste one/trainer_log.jsonl two/trainer_log.jsonl | sed "s/}\t{/}\n{/" | jq -s -e "
		[range(0; length; 2) as \$i | .[\$i] as \$a | .[\$i + 1] as \$b | \"loss\", \"grad_norm\", \"rewards/margins\"
		 | (\$a[.] - \$b[.]) / ([\$a[.] | fabs, 1e-3] | max) | fabs] | max < 1e-5" > /dev/null &&
	$CMP two/model.safetensors one/model.safetensors --rtol 2e-5
'
