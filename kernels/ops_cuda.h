/* ops_cuda.h — the CUDA backend of lib/ops.h (kernels/ops_cuda.cu).
 *
 * bf16 weights (a compute copy of the fp32 masters) and activations, fp32
 * master weights, gradients and AdamW moments; matrix products through
 * cuBLASLt (bf16 in, fp32 accumulate, the bias fused); the rest through
 * the hand-written kernels of kernels/. Built twice from one source: by
 * nvcc into build/libdscuda.a (the GPU), and by the host compiler against
 * the CPU runtime of kernels/simt.h into build/libsimt.a, where the same
 * code runs every kernel on the CPU and the products through OpenBLAS
 * with bf16 inputs and fp32 sums, as cuBLASLt computes them (make test).
 *
 * Generation (the cached attention, products with stored fp16 weights) is
 * not on this backend: ds-infer runs on the CPU one.
 */
#ifndef DS_OPS_CUDA_H
#define DS_OPS_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../lib/ops.h"

extern const ops ops_cuda;

/* CUDA devices this process can use (the CPU runtime counts itself as
 * one). */
int ops_cuda_devices(void);

/* A context on device `device`: its stream, cuBLASLt, working space.
 * Returns owned (ops_cuda_free), or NULL with the reason in err. */
void *ops_cuda_new(int device, char *err, size_t errlen);
void ops_cuda_free(void *ctx);

/* The most device memory the context has held at once, in bytes (its
 * tensors and working space; not the CUDA context itself), and the
 * device's name. */
size_t ops_cuda_peak_bytes(const void *ctx);
const char *ops_cuda_device_name(const void *ctx);

#ifdef __cplusplus
}
#endif

#endif
