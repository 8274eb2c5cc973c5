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

/* x (T, C) = rows ids (T) of emb (V, C). */
int kern_embed_fwd(kern_bf16 *x, const kern_bf16 *emb, const uint32_t *ids, int T, int C, kern_stream s);
/* demb (V, C) fp32 += dx (T, C) fp32 scattered to rows ids, in token order. */
int kern_embed_bwd(float *demb, const float *dx, const uint32_t *ids, int T, int C, kern_stream s);

/* Rotate each of the nh heads of x (T, nh * D) in place by the tables
 * cos, sin (T, D/2) fp32; inverse rotates back (the backward pass). */
int kern_rope(kern_bf16 *x, const float *cos_, const float *sin_, int T, int nh, int D, int inverse, kern_stream s);

/* Cross-entropy over logits (R, V) fp32 in place: loss (R) = logsumexp -
 * logit of tgt (R); the logits become scale * (softmax - onehot(tgt)). */
int kern_ce(float *logits, float *loss, const int *tgt, int R, int V, float scale, kern_stream s);
/* kern_ce with soft labels (lib/kd.h): rows whose srow (R) is >= 0 take the
 * distillation loss over sid/slp's row srow (k wide); loss (R) the mixed
 * loss, ce and kd (R) its parts; grad 0: the loss alone. */
int kern_ce_kd(float *logits, float *loss, float *ce, float *kd, const int *tgt, const int *srow, const unsigned *sid,
	       const float *slp, int k, int R, int V, float scale, int grad, float alpha, float tau, int kind, float beta,
	       kern_stream s);

/* The sum of squares of g (n), in double, into *out (device); scratch of
 * kern_sumsq_scratch() bytes. */
size_t kern_sumsq_scratch(void);
int kern_sumsq(double *out, double *scratch, const float *g, size_t n, kern_stream s);
/* g (n) *= k. */
int kern_scale(float *g, size_t n, float k, kern_stream s);

/* AdamW's per-step scalars, worked out in double on the host. */
typedef struct kern_adamw {
	float keep, w1, b2, w2, step, bc2s, eps;
} kern_adamw;
kern_adamw kern_adamw_scalars(double lr, double beta1, double beta2, double eps, double weight_decay, long t, int decay);
/* One AdamW step on p, m, v (n) fp32 with g; p16 (n) bf16 = the new p
 * when not NULL. */
int kern_adamw_step(float *p, kern_bf16 *p16, const float *g, float *m, float *v, size_t n, kern_adamw sc, kern_stream s);

/* Causal attention inside each document: token t sees the tokens from
 * doc_start[t] (T, its document's first token) to itself. q, out
 * (T, H * D), k, v (T, KV * D), H a multiple of KV, D <= 128; lse (H, T)
 * fp32 the log-sum-exp of each score row, for the backward pass. */
int kern_attn_fwd(kern_bf16 *out, float *lse, const kern_bf16 *q, const kern_bf16 *k, const kern_bf16 *v,
		  const int *doc_start, int T, int H, int KV, int D, kern_stream s);
size_t kern_attn_bwd_scratch(int T, int H);
/* dq (T, H * D), dk, dv (T, KV * D) from dout (T, H * D); scratch of
 * kern_attn_bwd_scratch bytes. */
int kern_attn_bwd(kern_bf16 *dq, kern_bf16 *dk, kern_bf16 *dv, float *scratch, const kern_bf16 *q, const kern_bf16 *k,
		  const kern_bf16 *v, const kern_bf16 *out, const float *lse, const kern_bf16 *dout, const int *doc_start,
		  int T, int H, int KV, int D, kern_stream s);

/* Rows (rows.cu): out (R, C) = rows (R) of x; dst rows (R, distinct) +=
 * src (R, C) fp32; db (O) fp32 += the column sums of dy (T, O). */
int kern_gather_rows(kern_bf16 *out, const kern_bf16 *x, const int *rows, int R, int C, kern_stream s);
int kern_scatter_add_rows(kern_bf16 *dst, const float *src, const int *rows, int R, int C, kern_stream s);
int kern_colsum(float *db, const kern_bf16 *dy, int T, int O, kern_stream s);

/* Casts, n elements. */
int kern_to_bf16(kern_bf16 *out, const float *in, size_t n, kern_stream s);
int kern_to_f32(float *out, const kern_bf16 *in, size_t n, kern_stream s);

#ifdef __cplusplus
}
#endif

#endif
