#!/bin/sh
# make gpu-check: on a machine with an NVIDIA GPU, build the CUDA code and
# check it against the CPU, then print one table (also written to
# build/gpu-check.txt). Without a GPU it runs the CPU half and says so.
#   1. the card, driver, CUDA, cuDNN and NCCL versions;
#   2. every hand-written kernel on the CPU runtime (build/tests/test_simt)
#      and on the GPU (build/gpu/test_kernels: the same tests, the same
#      references, fresh random inputs, outputs poisoned first);
#   3. the CUDA backend's whole training step (kernels/ops_cuda.cu) against
#      the CPU engine: on the CPU runtime (build/tests/test_step_cuda), on
#      the GPU with the SIMT attention and with cuDNN's (build/gpu/
#      test_step_cuda), and cuDNN's attention alone against the SIMT kernel
#      (build/gpu/test_cudnn_attn);
#   4. NCCL's collectives, one rank (build/gpu/nccl_comm);
#   5. ds-train --device cuda against --device cpu over 50 steps (the loss
#      curves, tests/gpu/loss-curve.sh);
#   6. the benchmark against PyTorch (tests/bench/train_gpu.sh: tokens/s,
#      MFU, peak memory), at 4096 tokens only unless BENCH_SEQS says more.
# About 5 minutes on an H100 or H200 after the build (the build: about 4
# on 16 cores, most of it cuDNN's frontend).
set -u
cd "$(dirname "$0")/../.." || exit 1
out=build/gpu-check.txt
mkdir -p build
: > "$out"
row() { printf '%-50s %s\n' "$1" "$2" | tee -a "$out"; }
fails=0
check() { # name, command...
	name=$1; shift
	if "$@" > build/gpu-check.log.$$ 2>&1; then row "$name" pass
	else row "$name" "FAIL (exit $?)"; sed 's/^/    | /' build/gpu-check.log.$$ | grep -v '^    | ok' | tail -20 | tee -a "$out"; fails=$((fails + 1)); fi
	rm -f build/gpu-check.log.$$
}
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
row "card, driver, memory" "${gpu:-no GPU found}"
row "CUDA" "$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
cudnn=$(for h in /usr/include/cudnn_version.h /usr/local/cuda/include/cudnn_version.h /usr/include/x86_64-linux-gnu/cudnn_version*.h; do
	[ -f "$h" ] && awk '/#define CUDNN_MAJOR/{a=$3} /#define CUDNN_MINOR/{b=$3} /#define CUDNN_PATCHLEVEL/{c=$3} END{if (a != "") print a "." b "." c}' "$h" && break; done)
row "cuDNN (headers)" "${cudnn:-not found}"
nccl=$(for h in /usr/include/nccl.h /usr/local/cuda/include/nccl.h; do
	[ -f "$h" ] && awk '/#define NCCL_MAJOR/{a=$3} /#define NCCL_MINOR/{b=$3} /#define NCCL_PATCH /{c=$3} END{if (a != "") print a "." b "." c}' "$h" && break; done)
row "NCCL (headers)" "${nccl:-not found}"
check "build (make CUDA=1)" make -j"$(nproc)" CUDA=1 all build/tests/test_simt
check "kernels on the CPU runtime (test_simt)" build/tests/test_simt
check "whole step on the CPU runtime (test_step_cuda)" build/tests/test_step_cuda
if [ -n "$gpu" ]; then
	check "build the GPU tests" make -j"$(nproc)" CUDA=1 build/gpu/test_kernels build/gpu/test_step_cuda \
		build/gpu/test_cudnn_attn build/gpu/nccl_comm
	check "kernels on the GPU (test_kernels)" build/gpu/test_kernels
	check "whole step on the GPU, SIMT attention" env DS_ATTN=simt build/gpu/test_step_cuda
	check "whole step on the GPU, cuDNN attention" env DS_ATTN=cudnn build/gpu/test_step_cuda
	check "cuDNN attention against the SIMT kernel" build/gpu/test_cudnn_attn
	check "NCCL collectives, 1 rank (nccl_comm)" build/gpu/nccl_comm
	check "ds-train cuda against cpu, 50 steps" sh -c 'tests/gpu/loss-curve.sh > build/gpu-loss.txt && cat build/gpu-loss.txt'
	[ -s build/gpu-loss.txt ] && row "  loss curves" "$(cat build/gpu-loss.txt)"
	check "benchmark against PyTorch (train_gpu.sh)" sh -c \
		'SEQS="${BENCH_SEQS:-4096}" tests/bench/train_gpu.sh > build/gpu-bench.txt 2>&1; rc=$?; cat build/gpu-bench.txt; exit $rc'
	[ -s build/gpu-bench.txt ] && sed 's/^/    /' build/gpu-bench.txt | tee -a "$out"
else
	for what in "kernels on the GPU" "whole step on the GPU" "cuDNN attention" "NCCL collectives" \
		"ds-train cuda against cpu, 50 steps" "benchmark against PyTorch"; do
		row "$what" "not run: no GPU"
	done
fi
[ "$fails" = 0 ]
