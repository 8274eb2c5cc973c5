#!/bin/sh
# make bench: one ds-train training step against PyTorch + transformers
# (fp32, SDPA attention, torch.optim.AdamW) on the CPU, on a model of
# Qwen2.5-0.5B's shape with random weights and one sample of SEQ tokens
# (a conversation from ds-tokenize, its assistant part trained). Same
# tokens, same thread count (THREADS, default: every core). Each program
# takes STEPS steps; the first warms up; the median of the others is
# quoted, as tokens/s, with each process's peak resident memory.
#
# LOADED=1 measures instead what OpenMP's waiting costs on a busy machine
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
