#!/bin/sh
# make gpu-check: on a machine with an NVIDIA GPU, build the CUDA code and
# check it against the CPU, then print one table (also written to
# build/gpu-check.txt). Without a GPU it runs the CPU half and says so.
#   1. the card, driver, CUDA, cuDNN and NCCL versions;
#   2. every hand-written kernel on the CPU runtime (build/tests/test_simt)
#      and on the GPU (build/gpu/test_kernels: the same tests, the same
#      references, fresh random inputs, outputs poisoned first);
#   3. (not yet: the CUDA backend of lib/ops.h) a whole step of a tiny
#      model against the CPU engine, 50 steps' loss curve, the benchmark.
set -u
cd "$(dirname "$0")/../.." || exit 1
out=build/gpu-check.txt
mkdir -p build
: > "$out"
row() { printf '%-44s %s\n' "$1" "$2" | tee -a "$out"; }
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
if [ -n "$gpu" ]; then
	check "build the kernel tests for the GPU" make CUDA=1 build/gpu/test_kernels
	check "kernels on the GPU (test_kernels)" build/gpu/test_kernels
else
	row "kernels on the GPU" "not run: no GPU"
fi
row "whole step against the CPU engine" "not yet: the CUDA backend of lib/ops.h is not written"
row "benchmark (tokens/s, MFU, memory)" "not yet: needs the backend"
[ "$fails" = 0 ]
