/* kernels.h — the hand-written CUDA kernels' launchers, callable from C.
 *
 * Each launcher checks its launch and returns 0 or the CUDA error. The
 * same sources build for the GPU (nvcc) and for the CPU runtime of
 * kernels/simt.h (make test), where every launch runs at once. Pointers
 * are device memory (the CPU runtime's cudaMalloc: plain memory). bf16 is
 * the GPU's __nv_bfloat16; a C caller sees its 16 bits.
 *
 * Shapes are (rows, cols), row-major: T tokens, C hidden, FF intermediate.
 */
#ifndef DS_KERNELS_H
#define DS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
typedef bf16 kern_bf16;
typedef cudaStream_t kern_stream;
extern "C" {
#else
typedef uint16_t kern_bf16;
typedef void *kern_stream;
#endif

/* Rows of one RMSNorm backward block: its partial weight gradient. */
#define KERN_RMS_ROWS 32

/* out (T, C) = w (C) * x * rstd, rstd (T) fp32 = 1 / sqrt(mean(x^2) + eps). */
int kern_rmsnorm_fwd(kern_bf16 *out, float *rstd, const kern_bf16 *x, const kern_bf16 *w, int T, int C, float eps,
		     kern_stream s);
/* Bytes of scratch kern_rmsnorm_bwd needs for T rows of C. */
size_t kern_rmsnorm_bwd_scratch(int T, int C);
/* dx (T, C) fp32 += d/dx given dy (T, C); dw (C) fp32 += sum_t dy x rstd;
 * scratch of kern_rmsnorm_bwd_scratch bytes. */
int kern_rmsnorm_bwd(float *dx, float *dw, float *scratch, const kern_bf16 *dy, const kern_bf16 *x, const float *rstd,
		     const kern_bf16 *w, int T, int C, kern_stream s);

/* act (n) = silu(gate) * up, n = T * FF elements. */
int kern_swiglu_fwd(kern_bf16 *act, const kern_bf16 *gate, const kern_bf16 *up, size_t n, kern_stream s);
/* From dact (n): dgate, dup (n). */
int kern_swiglu_bwd(kern_bf16 *dgate, kern_bf16 *dup, const kern_bf16 *dact, const kern_bf16 *gate, const kern_bf16 *up,
		    size_t n, kern_stream s);

#ifdef __cplusplus
}
#endif

#endif
