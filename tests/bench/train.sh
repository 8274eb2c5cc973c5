#!/bin/sh
# make bench: one ds-train training step against PyTorch + transformers
# (fp32, SDPA attention, torch.optim.AdamW) on the CPU, on a model of
# Qwen2.5-0.5B's shape with random weights and one sample of SEQ tokens
# (a conversation from ds-tokenize, its assistant part trained). Same
# tokens, same thread count (THREADS, default: every core). Each program
# takes STEPS steps; the first warms up; the median of the others is
# quoted, as tokens/s, with each process's peak resident memory.
#
# MEM=1 prints instead peak RSS against sequence length, recomputation on
# and off (SEQS). LOADED=1 measures instead what OpenMP's waiting costs on a busy machine
# (lib/ompenv.c): with HOGS (default 1) busy loops, ds-train runs STEPS
# steps of SEQ (default 128) tokens on the same layer shape cut to LAYERS
# (default 2) layers, REPS (default 3) times each with ds's default
# (passive), libgomp's own default (GOMP_SPINCOUNT=300000, what ds had
# before) and OMP_WAIT_POLICY=active, interleaved; medians of the wall time
# and of the tokens/s of the steps after the first. No PyTorch.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
PY=$top/tests/.venv/bin/python
LOADED=${LOADED:-0}
if [ "$LOADED" = 1 ]; then SEQ=${SEQ:-128}; else SEQ=${SEQ:-512}; fi
STEPS=${STEPS:-4}
THREADS=${THREADS:-$(nproc)}
[ "$LOADED" = 1 ] || "$PY" -c 'import torch, transformers' 2>/dev/null || {
	echo "bench: tests/.venv lacks torch or transformers: run tests/setup-venv.sh" >&2; exit 1; }
w=$(mktemp -d); hog=; trap '[ -z "$hog" ] || kill $hog; rm -rf "$w"' EXIT
cfg=$top/tests/data/train/qwen2.5-0.5b.json
if [ "$LOADED" = 1 ]; then
	jq --argjson n "${LAYERS:-2}" '.num_hidden_layers = $n' "$cfg" > "$w/cfg.json"
	cfg=$w/cfg.json
fi
ds-train --init-random "$cfg" --seed 1 --dtype bfloat16 -o "$w/model"
zstd -q -d -c "$top/tests/data/qwen/tokenizer.json.zst" > "$w/model/tokenizer.json"
# A conversation longer than SEQ tokens, cut to SEQ.
jq -nc --argjson n "$SEQ" '{id: "bench", conversations: [{from: "user", value: "Sum the numbers."},
	{from: "assistant", value: ([range(0; $n)] | map("\(.) plus \(. * 7) is \(. * 8).") | join(" "))}]}' > "$w/conv.jsonl"
ds-tokenize -q -t "$w/model/tokenizer.json" --cutoff-len "$SEQ" "$w/conv.jsonl" > "$w/s.shard"
ds-tokenize inspect --json "$w/s.shard" > "$w/s.json"
tokens=$(jq '.input_ids | length' "$w/s.json")

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# MEM=1: peak resident memory of one step with recomputation on and off,
# for each length in SEQS (default "2048 8192"), the full 0.5B shape.
if [ "${MEM:-0}" = 1 ]; then
	echo "ds-train peak RSS, one step, Qwen2.5-0.5B shape, fp32, $THREADS threads"
	printf '  %8s %14s %14s\n' tokens "recompute on" "recompute off"
	for n in ${SEQS:-2048 8192}; do
		jq -nc --argjson n "$n" '{id: "bench", conversations: [{from: "user", value: "Sum the numbers."},
			{from: "assistant", value: ([range(0; $n)] | map("\(.) plus \(. * 7) is \(. * 8).") | join(" "))}]}' > "$w/m.jsonl"
		ds-tokenize -q -t "$w/model/tokenizer.json" --cutoff-len "$n" "$w/m.jsonl" > "$w/m.shard"
		for r in false true; do
			rm -rf "$w/out"
			/usr/bin/time -f %M -o "$w/m.$r" ds-train model_name_or_path="$w/model" dataset="$w/m.shard" \
				cutoff_len="$n" output_dir="$w/out" max_steps=1 save_steps=100000 learning_rate=1e-5 \
				save_only_model=true threads="$THREADS" disable_gradient_checkpointing=$r 2> "$w/m.log" ||
				{ cat "$w/m.log" >&2; exit 1; }
		done
		printf '  %8s %11.2f GB %11.2f GB\n' "$n" "$(awk '{ print $1 / 1048576 }' "$w/m.false")" \
			"$(awk '{ print $1 / 1048576 }' "$w/m.true")"
	done
	exit 0
fi

if [ "$LOADED" = 1 ]; then
	REPS=${REPS:-3}
	HOGS=${HOGS:-1}
	for i in $(seq "$HOGS"); do sh -c 'while :; do :; done' & hog="$hog $!"; done
	for r in $(seq "$REPS"); do
		# env -u: the default run must not inherit a policy from the caller.
		for m in passive default active; do
			case $m in
			passive) set -- -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT ;;
			default) set -- -u OMP_WAIT_POLICY GOMP_SPINCOUNT=300000 ;;
			active) set -- -u GOMP_SPINCOUNT OMP_WAIT_POLICY=active ;;
			esac
			rm -rf "$w/out"
			/usr/bin/time -f %e -o "$w/t" env "$@" ds-train model_name_or_path="$w/model" \
				dataset="$w/s.shard" cutoff_len="$SEQ" output_dir="$w/out" max_steps="$STEPS" \
				logging_steps=1 save_steps=100000 per_device_train_batch_size=1 \
				gradient_accumulation_steps=1 learning_rate=1e-5 save_only_model=true \
				threads="$THREADS" 2> "$w/ds.log" || { cat "$w/ds.log" >&2; exit 1; }
			cat "$w/t" >> "$w/$m.wall"
			jq -r 'select(.current_steps > 1) | .throughput' "$w/out/trainer_log.jsonl" | median >> "$w/$m.tps"
		done
	done
	echo "ds-train beside $HOGS busy loop(s) on $(nproc) cores: 0.5B layer shape," \
		"${LAYERS:-2} layers, $tokens tokens, $STEPS steps, $THREADS threads; median of $REPS runs"
	printf '  %-42s %8s %10s\n' "" "wall s" "tokens/s"
	for m in passive default active; do
		case $m in
		passive) l="passive (ds's default)" ;;
		default) l="libgomp's default (GOMP_SPINCOUNT=300000)" ;;
		active) l="OMP_WAIT_POLICY=active" ;;
		esac
		printf '  %-42s %8.1f %10.1f\n' "$l" "$(median < "$w/$m.wall")" "$(median < "$w/$m.tps")"
	done
	awk -v p="$(median < "$w/passive.wall")" -v d="$(median < "$w/default.wall")" -v a="$(median < "$w/active.wall")" \
		'BEGIN { printf "  passive: %.2fx faster than active, %.2fx than libgomp\047s default (wall time)\n", a / p, d / p }'
	exit 0
fi

# Both sides wait passively (ds's default; libgomp's own default spins).
export OMP_WAIT_POLICY=passive
# ds_run NAME [KEY=VALUE...]: ds-train on the sample; tokens/s and peak RSS.
ds_run() {
	n=$1; shift
	rm -rf "$w/out"
	/usr/bin/time -f %M -o "$w/$n.mem" ds-train model_name_or_path="$w/model" dataset="$w/s.shard" \
		cutoff_len="$SEQ" output_dir="$w/out" max_steps="$STEPS" logging_steps=1 save_steps=100000 \
		per_device_train_batch_size=1 gradient_accumulation_steps=1 learning_rate=1e-5 \
		save_only_model=true threads="$THREADS" "$@" 2> "$w/$n.log" || { cat "$w/$n.log" >&2; exit 1; }
	jq -r 'select(.current_steps > 1) | .throughput' "$w/out/trainer_log.jsonl" | median > "$w/$n.tps"
	jq -r 'select(.current_steps == 1) | .loss' "$w/out/trainer_log.jsonl" > "$w/$n.loss"
}
pt_run() {
	n=$1; shift
	/usr/bin/time -f %M -o "$w/$n.mem" "$PY" "$top/tests/bench/train_torch.py" --model "$w/model" \
		--sample "$w/s.json" --steps "$STEPS" --threads "$THREADS" "$@" > "$w/$n.log" 2>&1 || { cat "$w/$n.log" >&2; exit 1; }
	awk -v t="$tokens" '/^step/ && $2 > 1 { print t / $3 }' "$w/$n.log" | median > "$w/$n.tps"
	awk '/^step 1 / { print $5 }' "$w/$n.log" > "$w/$n.loss"
}
gb() { awk '{ printf "%.2f", $1 / 1048576 }' "$w/$1.mem"; }
ds_run ds_off disable_gradient_checkpointing=true
ds_run ds_on
pt_run pt_off
pt_run pt_on --checkpointing
echo "train step, Qwen2.5-0.5B shape (random weights), $tokens tokens, fp32, $THREADS threads," \
	"OMP_WAIT_POLICY=passive; median of $((STEPS - 1)) steps"
printf '  %-48s %10s %12s %10s\n' "" "tokens/s" "peak RSS GB" "loss 1"
ptv=$("$PY" -c 'import torch, transformers; print(torch.__version__, transformers.__version__)')
for n in ds_off ds_on pt_off pt_on; do
	case $n in
	ds_off) l="ds-train, recomputation off" ;;
	ds_on) l="ds-train, recomputation on (the default)" ;;
	pt_off) l="PyTorch + transformers ($ptv)" ;;
	pt_on) l="PyTorch + transformers, gradient checkpointing" ;;
	esac
	printf '  %-48s %10.1f %12s %10s\n' "$l" "$(cat "$w/$n.tps")" "$(gb $n)" "$(cat "$w/$n.loss")"
done
awk -v a="$(cat "$w/ds_off.tps")" -v b="$(cat "$w/pt_off.tps")" -v c="$(gb ds_off)" -v d="$(gb pt_off)" \
	-v e="$(cat "$w/ds_on.tps")" -v f="$(cat "$w/pt_on.tps")" -v g="$(gb ds_on)" -v h="$(gb pt_on)" \
	'BEGIN { printf "  ds-train / PyTorch: off %.2fx the speed at %.2fx the memory; on %.2fx at %.2fx\n", a / b, c / d, e / f, g / h }'

# Data parallel on this machine: 2 ranks of 1 thread against 1 process of
# 2 threads, the same global batch of 2 samples a step (the sample twice).
if command -v mpirun > /dev/null && [ "${DP:-1}" = 1 ]; then
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
	cat "$w/conv.jsonl" "$w/conv.jsonl" | jq -c '.id += "\(input_line_number)"' > "$w/conv2.jsonl"
	ds-tokenize -q -t "$w/model/tokenizer.json" --cutoff-len "$SEQ" "$w/conv2.jsonl" > "$w/s.shard"
	ds_run np1 gradient_accumulation_steps=2 threads=2
	rm -rf "$w/out"
	mpirun -np 2 sh -c '/usr/bin/time -f %M -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$w/np2.mem" ds-train \
		model_name_or_path="$w/model" dataset="$w/s.shard" cutoff_len="$SEQ" output_dir="$w/out" \
		max_steps="$STEPS" logging_steps=1 save_steps=100000 per_device_train_batch_size=1 \
		gradient_accumulation_steps=1 learning_rate=1e-5 save_only_model=true threads=1 2> "$w/np2.log" ||
		{ cat "$w/np2.log" >&2; exit 1; }
	np2=$(jq -r 'select(.current_steps > 1) | .throughput' "$w/out/trainer_log.jsonl" | median)
	echo "data parallel, the same shape, 2 samples a step (global), recomputation on; median of $((STEPS - 1)) steps"
	printf '  %-48s %10s %12s\n' "" "tokens/s" "peak RSS GB"
	printf '  %-48s %10.1f %12s\n' "ds-train, 1 process x 2 threads" "$(cat "$w/np1.tps")" "$(gb np1)"
	printf '  %-48s %10.1f %12s\n' "mpirun -np 2 ds-train, 1 thread each (ZeRO-1)" "$np2" \
		"$(awk '{ printf "%.2f", $1 / 1048576 }' "$w/np2.mem.0") + $(awk '{ printf "%.2f", $1 / 1048576 }' "$w/np2.mem.1")"
fi
