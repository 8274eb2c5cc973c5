#!/bin/sh
# tests/bench/train_gpu.sh: ds-train --device cuda against PyTorch +
# transformers on one NVIDIA GPU (H100/H200), on a model of Qwen2.5-0.5B's
# shape (494,032,768 parameters, random weights, saved in bf16), training
# samples of SEQ tokens for each SEQ in SEQS (default "4096 8192"), batch
# per_device 1 x gradient accumulation GA (default 1), STEPS steps (default
# 6); the first WARMUP (default 2) warm up, the median of the others is
# quoted. Both programs get the same tokens (one ds-tokenize shard; PyTorch
# reads `ds-tokenize inspect --json` of it) and lr 1e-5, no weight decay,
# clipping to 1.0.
#
#   ds-train  bf16=true --device cuda, recomputation on (the default) and
#             off (disable_gradient_checkpointing=true).
#   PyTorch   transformers' Qwen2ForCausalLM on cuda as HF Trainer and
#             LLaMA-Factory run `bf16: true` without DeepSpeed: fp32 master
#             weights, forward under torch.autocast(bfloat16),
#             torch.optim.AdamW(fused=True); attn_implementation sdpa, and
#             flash_attention_2 too when flash_attn imports; gradient
#             checkpointing (use_reentrant=False) on and off
#             (tests/bench/train_torch_gpu.py).
#
# Memory: each program's own peak (PyTorch: torch.cuda.max_memory_allocated;
# ds-train: its closing line "peak GPU memory: N MiB") and nvidia-smi's view,
# sampled every ~0.2 s during the run: the summed used_memory of the compute
# processes that were not there before the run, or, where nvidia-smi lists
# none (some containers), the GPU's memory.used less its value before the run
# (marked *). nvidia-smi includes the CUDA context and what an allocator
# caches, so it is the figure to compare the two programs by.
#
# FLOPs (MFU = tokens/s x F / peak, peak = PEAK_TFLOPS, default 989: H100/
# H200 SXM dense bf16). With C hidden, I intermediate, L layers, H query
# heads, Hkv key/value heads, D = C/H head dim, V vocabulary:
#   N_mm  = L*(2*C*H*D + 2*C*Hkv*D + 3*C*I) + C*V   (q,o + k,v + gate,up,down
#           per layer, + the LM head, counted once though tied to the
#           embedding; the embedding lookup, biases, norms, RoPE, SiLU,
#           softmax and the cross-entropy count 0)
#         = 493,961,216 for the 0.5B shape
#   K_avg = sum over documents d of d*(d+1)/2, over the tokens: the keys a
#           query sees on average under the causal mask within its
#           document (= (T+1)/2 for one document of T tokens)
#   attention forward per layer per token: QK^T 2*H*D*K_avg + PV 2*H*D*K_avg
#   F     = 6*N_mm + 12*L*H*D*K_avg   per trained-on token (forward 2x,
#           backward 4x: 3x the forward)
#         = 3.4924e9 at T = 4096, 4.0209e9 at T = 8192 (0.5B shape)
# The attention term counts only the causal half, as FlashAttention's
# benchmarks do (PaLM's 6N + 12*L*H*D*T counts the full square, which would
# give higher figures). MFU does not count recomputation; HFU adds, with it
# on, the second forward of the decoder layers: 2*(N_mm - C*V) + 4*L*H*D*K_avg
# a token. Neither counts the attention backward's own recomputation of
# the scores (flash attention, and ds-train's log-sum-exp attention).
#
# RECIPE=seed measures the seed recipe's run instead: SEQS=8192, GA=12
# (12 samples of 8192 tokens a step). DOCS=n (default 1) packs n documents
# of about (SEQ-1)/n tokens into each sample (ds-tokenize --pack, as
# LLaMA-Factory's neat_packing; attention restarts at each document).
# GPU=i picks the card (nvidia-smi's index or UUID, CUDA_DEVICE_ORDER=
# PCI_BUS_ID; default the first of CUDA_VISIBLE_DEVICES, else 0).
# RUN_TIMEOUT (default 300 s) bounds each program's run. DEVICE=cpu is a
# testing aid only: both programs on the CPU (THREADS threads), no memory
# columns, for checking the script with a small CONFIG (a model config.json,
# default tests/data/train/qwen2.5-0.5b.json).
#
# Budget at the defaults on an H100: 2 lengths x (2 ds-train runs + 2 or 4
# PyTorch runs) of 6 steps; each run is start-up (~5-20 s) plus a few
# seconds of steps, about 3-4 minutes in all.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
PY=$top/tests/.venv/bin/python
me=train_gpu.sh
DEVICE=${DEVICE:-cuda}
if [ "${RECIPE:-}" = seed ]; then SEQS=${SEQS:-8192}; GA=${GA:-12}; fi
SEQS=${SEQS:-4096 8192}
GA=${GA:-1}
STEPS=${STEPS:-6}
WARMUP=${WARMUP:-2}
DOCS=${DOCS:-1}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
GPU=${GPU:-${CUDA_VISIBLE_DEVICES:-0}}
GPU=${GPU%%,*}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
THREADS=${THREADS:-$(nproc)}
CONFIG=${CONFIG:-$top/tests/data/train/qwen2.5-0.5b.json}
die() { echo "$me: $*" >&2; exit 1; }
[ "$STEPS" -gt "$WARMUP" ] || die "STEPS ($STEPS) must exceed WARMUP ($WARMUP)"
[ "$DOCS" -ge 1 ] && [ "$GA" -ge 1 ] || die "DOCS and GA must be at least 1"
case $DEVICE in cuda|cpu) ;; *) die "DEVICE must be cuda (or cpu, for testing the script)" ;; esac

if [ "$DEVICE" = cuda ]; then
	command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1 || die "no NVIDIA GPU"
	export CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES="$GPU"
	gpu=$(nvidia-smi -i "$GPU" --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null) ||
		die "nvidia-smi knows no GPU $GPU"
fi
[ -x "$PY" ] && "$PY" -c 'import torch, transformers' 2> /dev/null ||
	die "tests/.venv lacks torch or transformers: run tests/setup-venv.sh"
if [ "$DEVICE" = cuda ]; then
	# torch's CUDA build needs a driver at least as new (cu130: driver 580+)
	why=$("$PY" -W always -c 'import sys, torch
ok = torch.cuda.is_available()
print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}", file=sys.stderr)
sys.exit(0 if ok else 1)' 2>&1) ||
		die "tests/.venv's torch cannot use the GPU (driver $(echo "$gpu" | awk -F', ' '{ print $3 }')): $(echo "$why" | grep -v '^ *warnings.warn' | tail -3)"
fi
command -v ds-train > /dev/null && command -v ds-tokenize > /dev/null || die "bin/ds-train is not built: make CUDA=1"
attns=sdpa
"$PY" -c 'import flash_attn' 2> /dev/null && attns="sdpa flash_attention_2"
ptv=$("$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
t_start=$(date +%s)
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

ds-train --init-random "$CONFIG" --seed 1 --dtype bfloat16 -o "$w/model" 2> "$w/init.log" || { cat "$w/init.log" >&2; exit 1; }
zstd -q -d -c "$top/tests/data/qwen/tokenizer.json.zst" > "$w/model/tokenizer.json"
nparams=$("$PY" -c 'import json, sys
from safetensors import safe_open
import math
with safe_open(sys.argv[1], "np") as f:
    print(sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()))' "$w/model/model.safetensors" 2> /dev/null || echo "?")

# conv K ID: a conversation whose answer has K phrases (about 8 tokens each).
conv() {
	jq -nc --argjson n "$1" --arg id "$2" '{id: $id, conversations: [{from: "user", value: "Sum the numbers."},
		{from: "assistant", value: ([range(0; $n)] | map("\(.) plus \(. * 7) is \(. * 8).") | join(" "))}]}'
}
# data SEQ: $w/s$SEQ.shard, GA samples of SEQ tokens (DOCS > 1: at most SEQ-1,
# DOCS documents each), and $w/s$SEQ.json, the same as JSON lines.
tok() { ds-tokenize "$@" 2>> "$w/data.log" || { cat "$w/data.log" >&2; die "ds-tokenize $1 failed"; }; }
data() {
	n=$1
	: > "$w/c.jsonl"
	if [ "$DOCS" = 1 ]; then
		# a conversation longer than SEQ tokens, cut to SEQ
		for j in $(seq "$GA"); do conv "$n" "s$j" >> "$w/c.jsonl"; done
		tok shards -q -t "$w/model/tokenizer.json" --cutoff-len "$n" "$w/c.jsonl" > "$w/s$n.shard"
	else
		# the most phrases whose conversation is at most (SEQ-1)/DOCS tokens
		per=$(((n - 1) / DOCS)) lo=1 hi=$(((n - 1) / DOCS))
		while [ "$lo" -lt "$hi" ]; do
			mid=$(((lo + hi + 1) / 2))
			t=$(conv "$mid" x | tok shards -q -t "$w/model/tokenizer.json" --cutoff-len 1000000 |
				tok inspect --json | jq '.input_ids | length')
			[ -n "$t" ] || die "could not measure a conversation of $mid phrases"
			if [ "$t" -le "$per" ]; then lo=$mid; else hi=$((mid - 1)); fi
		done
		for j in $(seq $((GA * DOCS))); do conv "$lo" "s$j" >> "$w/c.jsonl"; done
		tok shards -q -t "$w/model/tokenizer.json" --pack --cutoff-len "$n" "$w/c.jsonl" > "$w/s$n.shard"
	fi
	tok inspect --json "$w/s$n.shard" > "$w/s$n.json"
	[ "$(wc -l < "$w/s$n.json")" = "$GA" ] || die "expected $GA samples of $n tokens, got $(wc -l < "$w/s$n.json")"
}

# smi_snap: one sample of the GPU's compute processes ("app PID MIB") and
# its memory in use ("gpu MIB").
smi_snap() {
	nvidia-smi -i "$GPU" --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2> /dev/null |
		awk -F', *' 'NF >= 2 { print "app", $1, $2 + 0 }'
	nvidia-smi -i "$GPU" --query-gpu=memory.used --format=csv,noheader,nounits 2> /dev/null | awk '{ print "gpu", $1 + 0 }'
}
# watch NAME PID: sample nvidia-smi until PID ends, then leave its exit
# status in $rc and nvidia-smi's peak in $w/NAME.smi ("MIB" or "MIB*").
watch() {
	: > "$w/$1.smp"
	if [ "$DEVICE" = cuda ]; then
		while kill -0 "$2" 2> /dev/null; do
			{ echo tick; smi_snap; } >> "$w/$1.smp"
			# a ds-train without the CUDA engine says so and trains on the CPU
			if [ "${1#ds}" != "$1" ] && grep -q "training on the CPU" "$w/$1.log"; then
				kill "$2" 2> /dev/null || :
				wait "$2" || :
				die "ds-train --device cuda trains on the CPU (built without CUDA? make CUDA=1):
$(grep 'ds-train' "$w/$1.log" | head -5)"
			fi
			sleep 0.2
		done
	else
		while kill -0 "$2" 2> /dev/null; do sleep 0.2; done
	fi
	rc=0
	wait "$2" || rc=$?
	awk 'FNR == NR { if ($1 == "app") old[$2] = 1; else if ($1 == "gpu") base = $2; next }
		$1 == "tick" { flush(); next }
		$1 == "app" && !($2 in old) { app += $3; napp++ }
		$1 == "gpu" { gpu = $2; ngpu++ }
		function flush() { if (app > papp) papp = app; if (ngpu && gpu - base > pgpu) pgpu = gpu - base; app = 0 }
		END { flush(); if (papp > 0) print papp; else if (pgpu > 0) print pgpu "*"; else print "n/a" }' \
		"$w/base.smp" "$w/$1.smp" > "$w/$1.smi"
}
# result NAME SEQ PROGRAM VARIANT: after a run, its line in $w/results
# (seq program variant tokens/s loss1 own-peak nvidia-smi-peak status).
result() {
	if [ "$rc" = 0 ] && [ -s "$w/$1.tps" ]; then st=ok; else st="FAIL(exit $rc)"; fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$2" "$3" "$4" "$(cat "$w/$1.tps" 2> /dev/null || :)" \
		"$(cat "$w/$1.loss" 2> /dev/null || :)" "$(cat "$w/$1.own" 2> /dev/null || :)" "$(cat "$w/$1.smi")" "$st" >> "$w/results"
	if [ "$st" != ok ]; then
		echo "$me: $3 $4, $2 tokens failed (exit $rc); the end of its log:" >&2
		tail -15 "$w/$1.log" >&2
		fails=$((fails + 1))
	fi
}
# ds_run NAME SEQ VARIANT [KEY=VALUE...]
ds_run() {
	n=$1 s=$2 v=$3; shift 3
	rm -rf "$w/out"
	{ echo base; [ "$DEVICE" = cpu ] || smi_snap; } > "$w/base.smp"
	thr=; [ "$DEVICE" = cpu ] && thr="threads=$THREADS"
	DS_NO_PROGRESS=1 timeout "$RUN_TIMEOUT" ds-train model_name_or_path="$w/model" dataset="$w/s$s.shard" \
		cutoff_len="$s" output_dir="$w/out" max_steps="$STEPS" logging_steps=1 save_steps=100000 \
		per_device_train_batch_size=1 gradient_accumulation_steps="$GA" learning_rate=1e-5 \
		save_only_model=true bf16=true $thr "$@" --device "$DEVICE" 2> "$w/$n.log" &
	watch "$n" $!
	: > "$w/$n.tps"; : > "$w/$n.loss"
	if [ -f "$w/out/trainer_log.jsonl" ]; then
		jq -r --argjson k "$WARMUP" 'select(.current_steps > $k) | .throughput' "$w/out/trainer_log.jsonl" | median > "$w/$n.tps"
		jq -r 'select(.current_steps == 1) | .loss' "$w/out/trainer_log.jsonl" > "$w/$n.loss"
	fi
	sed -n 's/.*peak GPU memory: *\([0-9.]*\) *MiB.*/\1/p' "$w/$n.log" | tail -1 > "$w/$n.own"
	[ -s "$w/$n.own" ] || echo n/a > "$w/$n.own"
	result "$n" "$s" ds-train "$v"
	[ -s "$w/dsnotes" ] || grep -v 'ds-train: step [0-9]' "$w/$n.log" | head -8 > "$w/dsnotes" || :
}
# pt_run NAME SEQ VARIANT ATTN [--checkpointing]
pt_run() {
	n=$1 s=$2 v=$3 at=$4; shift 4
	{ echo base; [ "$DEVICE" = cpu ] || smi_snap; } > "$w/base.smp"
	timeout "$RUN_TIMEOUT" "$PY" "$top/tests/bench/train_torch_gpu.py" --model "$w/model" --samples "$w/s$s.json" \
		--steps "$STEPS" --ga "$GA" --attn "$at" --device "$DEVICE" --threads "$THREADS" "$@" > "$w/$n.log" 2>&1 &
	watch "$n" $!
	awk -v k="$WARMUP" '/^step / && $2 > k { print $7 / $3 }' "$w/$n.log" | median > "$w/$n.tps"
	awk '/^step 1 / { print $5 }' "$w/$n.log" > "$w/$n.loss"
	awk '/^peak_allocated_mib / { print $2 }' "$w/$n.log" > "$w/$n.own"
	[ -s "$w/$n.own" ] || echo n/a > "$w/$n.own"
	result "$n" "$s" PyTorch "$v"
}

# FLOPs a token for SEQ from the config and the samples' documents:
# "F_mfu F_recompute K_avg" (see the header).
flops() {
	jq -s '[.[] | .docs[] | . * (. + 1) / 2] | add' "$w/s$1.json" > "$w/ksum"
	jq -s '[.[] | .input_ids | length] | add' "$w/s$1.json" > "$w/ntok"
	jq -r '[.hidden_size, .intermediate_size, .num_hidden_layers, .num_attention_heads,
		(.num_key_value_heads // .num_attention_heads), .vocab_size,
		(.head_dim // (.hidden_size / .num_attention_heads))] | @tsv' "$CONFIG" |
	awk -v ks="$(cat "$w/ksum")" -v nt="$(cat "$w/ntok")" '{ C = $1; I = $2; L = $3; H = $4; Hkv = $5; V = $6; D = $7
		nmm = L * (2 * C * H * D + 2 * C * Hkv * D + 3 * C * I) + C * V
		k = ks / nt
		printf "%.6e %.6e %.6f %.0f %.0f\n", 6 * nmm + 12 * L * H * D * k, 2 * (nmm - C * V) + 4 * L * H * D * k, k, nmm, 12 * L * H * D }'
}

fails=0
: > "$w/results"
for s in $SEQS; do
	data "$s"
	flops "$s" > "$w/f$s"
	ds_run "ds_on_$s" "$s" "recompute on"
	ds_run "ds_off_$s" "$s" "recompute off" disable_gradient_checkpointing=true
	for at in $attns; do
		pt_run "pt_${at}_on_$s" "$s" "$at, checkpointing" "$at" --checkpointing
		pt_run "pt_${at}_off_$s" "$s" "$at" "$at"
	done
done

# The table.
echo "train step: ds-train --device $DEVICE against PyTorch + transformers ($ptv)"
[ "$DEVICE" = cuda ] && echo "  GPU $GPU: $gpu"
[ "$DEVICE" = cpu ] && echo "  DEVICE=cpu: a test of the script, $THREADS threads; MFU against $PEAK_TFLOPS TFLOP/s means nothing here"
echo "  model $(basename "$CONFIG") shape, $nparams parameters, random weights; bf16 (PyTorch: fp32 weights + autocast bf16)"
echo "  batch 1 x $GA accumulation, $DOCS document(s) a sample; $STEPS steps, median of the last $((STEPS - WARMUP)); lr 1e-5, clip 1.0"
set -- $(head -1 "$w/f$(echo $SEQS | awk '{ print $1 }')")
echo "  FLOPs a token: F = 6*N_mm + 12*L*H*D*K_avg, N_mm = $4 (matmul weights incl. the LM head; embedding lookup 0),"
echo "    12*L*H*D = $5, K_avg = sum_docs d(d+1)/2 / tokens (causal keys a query sees); MFU = tokens/s * F / ${PEAK_TFLOPS}e12;"
echo "    HFU adds the recomputed forward, 2*(N_mm - C*V) + 4*L*H*D*K_avg, for the recompute/checkpointing rows"
for s in $SEQS; do
	set -- $(cat "$w/f$s")
	printf '    SEQ %s: K_avg %.1f, F %.4g, recompute %.4g FLOPs a token\n' "$s" "$3" "$1" "$2"
done
printf '  %6s  %-8s %-30s %10s %6s %6s %10s %12s %8s\n' SEQ program variant tokens/s MFU HFU "own MiB" "nvidia-smi" "loss 1"
while IFS='	' read -r s prog var tps loss own smi st; do
	set -- $(cat "$w/f$s")
	case $var in *on|*checkpointing) rcf=$2 ;; *) rcf=0 ;; esac
	if [ "$st" = ok ]; then
		awk -v s="$s" -v p="$prog" -v v="$var" -v t="$tps" -v f="$1" -v r="$rcf" -v pk="$PEAK_TFLOPS" -v o="$own" -v m="$smi" -v l="$loss" \
			'BEGIN { printf "  %6s  %-8s %-30s %10.0f %5.1f%% %5.1f%% %10s %12s %8s\n", s, p, v, t, 100 * t * f / (pk * 1e12), 100 * t * (f + r) / (pk * 1e12), o, m, l }'
	else
		printf '  %6s  %-8s %-30s %10s\n' "$s" "$prog" "$var" "$st"
	fi
done < "$w/results"
grep -q '\*	[^	]*$' "$w/results" && echo "  * nvidia-smi lists no processes here: the GPU's memory.used less its value before the run"

# Ratios, per SEQ and PyTorch attention: ds-train / PyTorch, recompute on
# against checkpointing, off against off; memory by nvidia-smi's figures
# and by each program's own.
get() { awk -F'	' -v s="$1" -v p="$2" -v v="$3" -v c="$4" '$1 == s && $2 == p && $3 == v && $8 == "ok" { x = $c; sub(/\*$/, "", x); print x }' "$w/results"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else printf "n/a" }'; }
echo "  ds-train / PyTorch (medians):"
for s in $SEQS; do
	for at in $attns; do
		line="    $s tokens, $at:"
		for m in on off; do
			if [ $m = on ]; then pv="$at, checkpointing"; else pv=$at; fi
			line="$line recompute $m $(ratio "$(get "$s" ds-train "recompute $m" 4)" "$(get "$s" PyTorch "$pv" 4)") the speed,"
			line="$line $(ratio "$(get "$s" ds-train "recompute $m" 7)" "$(get "$s" PyTorch "$pv" 7)") the memory (nvidia-smi),"
			line="$line $(ratio "$(get "$s" ds-train "recompute $m" 6)" "$(get "$s" PyTorch "$pv" 6)") (own);"
		done
		echo "${line%;}"
	done
done
if [ -s "$w/dsnotes" ]; then echo "  ds-train said:"; sed 's/^/    /' "$w/dsnotes"; fi
echo "  $(($(date +%s) - t_start)) s in all"
[ "$fails" = 0 ] || die "$fails run(s) failed"
