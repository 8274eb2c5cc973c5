/* ops.h — the operations a compute backend implements for the Qwen2
 * engine, and the tensor handles they take. lib/forward.c writes the model
 * once against this table; lib/ops_cpu.c is the CPU backend (fp32, BLAS,
 * OpenMP); a CUDA backend is a second table of the same shape.
 *
 * A backend owns its memory. A tensor is a handle to it: the engine
 * carves views out of handles (tensor_view, tensor_rows) and passes them to
 * the ops, but never reads or writes through tensor.data itself. Host
 * memory is reached only through alloc/from_host/upload/download/map.
 * What stays on the host are the small integer tables a step is described
 * by (token ids, document lengths, positions, target rows): the ops take
 * those as host arrays, borrowed for the call.
 *
 * Every tensor is row-major and dense (row stride = cols). Shapes in the
 * comments are (rows, cols); T tokens, C hidden, FF intermediate, H query
 * heads, KV key/value heads, D head dim, V vocabulary.
 */
#ifndef DS_OPS_H
#define DS_OPS_H

#include "optim.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { OPS_F32, OPS_F16, OPS_BF16 } ops_dtype;

typedef struct tensor {
	void *data;      /* the backend's memory (opaque outside the backend); NULL: no tensor */
	ops_dtype dtype;
	int64_t rows, cols;
} tensor;

/* The bytes one element of dtype takes. */
size_t ops_dtype_size(ops_dtype dt);

/* A view of t: its elements from `offset` on, read as (rows, cols). Borrows
 * t's memory. */
tensor tensor_view(tensor t, size_t offset, int64_t rows, int64_t cols);

/* Rows r0 .. r0+n-1 of t, (n, t.cols). Borrows t's memory. */
tensor tensor_rows(tensor t, int64_t r0, int64_t n);

static inline size_t tensor_numel(tensor t) { return (size_t)t.rows * (size_t)t.cols; }

/* The documents of a packed sample (host, borrowed): attention and
 * positions restart at each. */
typedef struct ops_docs {
	int n_tokens;            /* T */
	int n_docs;
	const uint32_t *doc_len; /* (n_docs) summing to T */
} ops_docs;

/* One sequence's part of a cached attention call (generation): n new
 * tokens at rows start.. of q and out, after len positions already cached. */
typedef struct ops_kvseq {
	tensor k, v;  /* (cap, KV*D) this layer's cache rows, k after rotary; the n new rows are in already */
	int len;      /* positions cached before this call */
	int n;        /* new tokens */
	int start;    /* their first row in q and out */
} ops_kvseq;

/* Soft labels for lmhead_ce (distillation, kd.h), host arrays borrowed
 * for the call: row[i] is target row i's row of the k-wide id/lp tables,
 * or -1 when it has none. The call adds the loss's two parts into ce and kd
 * (over all rows; over rows with soft labels). */
typedef struct ops_soft {
	const struct kd_config *kd;
	int k;
	const int32_t *row;  /* (n) */
	const uint32_t *id;  /* (rows, k) */
	const float *lp;     /* (rows, k) */
	double ce, kd_sum;
} ops_soft;

typedef struct ops {
	const char *name;
	/* The dtype the backend computes in: the weights' compute copy and
	 * the activations (forward.c allocates them so). Norm statistics,
	 * log-sum-exps, rotary tables and the residual's gradient are fp32
	 * on every backend, as are the master weights, gradients and moments. */
	ops_dtype act;

	/* ---- memory --------------------------------------------------- */
	/* A zeroed tensor of the backend's memory. Returns owned (free). */
	tensor (*alloc)(void *ctx, ops_dtype dt, int64_t rows, int64_t cols);
	void (*free)(void *ctx, tensor t);
	/* The backend's tensor for host memory p (rows, cols) of dtype dt,
	 * which the caller keeps alive: the CPU backend uses p in place; a
	 * device backend mirrors it (upload/download to move the data). */
	tensor (*from_host)(void *ctx, void *p, ops_dtype dt, int64_t rows, int64_t cols);
	/* Let a from_host tensor go: nothing on the CPU; a device backend
	 * frees its mirror (the host memory stays the caller's). */
	void (*forget)(void *ctx, tensor t);
	void (*upload)(void *ctx, tensor dst, const void *src);   /* dst = src (host, numel elements) */
	void (*download)(void *ctx, void *dst, tensor src);       /* dst (host) = src */
	/* Host bytes of t to read and write until unmap (writes kept when
	 * dirty): the CPU backend's own memory; a device backend stages it. */
	void *(*map)(void *ctx, tensor t);
	void (*unmap)(void *ctx, tensor t, void *host, int dirty);
	/* dst = src, same numel: of one dtype, or fp32 to act (rounded to
	 * nearest even) and back. */
	void (*copy)(void *ctx, tensor dst, tensor src);
	void (*zero)(void *ctx, tensor t);

	/* ---- matrix products (fp32) ------------------------------------ */
	/* c = alpha op(a) op(b) + beta c, op transposes when ta / tb. */
	void (*matmul)(void *ctx, tensor c, tensor a, tensor b, int ta, int tb, float alpha, float beta);
	/* out (T, O) = in (T, K) W^T + b, W (O, K), b (O) or none. */
	void (*linear_fwd)(void *ctx, tensor out, tensor in, tensor W, tensor b);
	/* din (T, K) = (or += when accumulate) dout (T, O) W; dW (O, K) +=
	 * dout^T in; db (O) += column sums of dout (when db is a tensor).
	 * din may be none. */
	void (*linear_bwd)(void *ctx, tensor din, int accumulate, tensor dW, tensor db, tensor dout, tensor in,
	                   tensor W);
	/* Generation's products, W in any dtype (fp32, fp16, bf16, as stored):
	 * out (T, O) = in (T, K) W^T, or += when accumulate ... */
	void (*matmul_w)(void *ctx, tensor out, tensor in, tensor W, int accumulate);
	/* ... and n of them over one input, outs[i] = in ws[i]^T (q, k, v;
	 * gate, up): one pass over all their rows for a single token. */
	void (*matmul_w_n)(void *ctx, int n, const tensor *ws, tensor in, const tensor *outs);
	void (*add_bias)(void *ctx, tensor y, tensor b);          /* y (T, O) += b (O) per row */

	/* ---- the layers ------------------------------------------------ */
	/* x (T, C) fp32 = rows ids (T, host) of emb (V, C) in its dtype. */
	void (*embed_fwd)(void *ctx, tensor x, tensor emb, const uint32_t *ids);
	/* demb (V, C) += dx (T, C) scattered to rows ids (T, host). */
	void (*embed_bwd)(void *ctx, tensor demb, tensor dx, const uint32_t *ids);
	/* out (T, C) = x / rms(x) * w (C); rstd (T, 1) saved. */
	void (*rmsnorm_fwd)(void *ctx, tensor out, tensor rstd, tensor x, tensor w, float eps);
	/* dx (T, C) += d/dx given dy (T, C); dw (C) += sum_t dy x rstd. */
	void (*rmsnorm_bwd)(void *ctx, tensor dx, tensor dw, tensor dy, tensor x, tensor rstd, tensor w);
	/* Rotary tables cos, sin (T, D/2) for the positions pos (T, host). */
	void (*rope_tables)(void *ctx, tensor cos, tensor sin, const int *pos, int head_dim, double theta);
	/* Rotate each of the nh heads of x (T, nh*D) in place (rotate-half);
	 * inverse undoes it (the backward pass). */
	void (*rope)(void *ctx, tensor x, tensor cos, tensor sin, int nh, int inverse);
	/* act (T, FF) = silu(gate) * up; act may be gate. */
	void (*swiglu_fwd)(void *ctx, tensor act, tensor gate, tensor up);
	/* From dact (T, FF): dgate, dup (T, FF); dgate may be dact. */
	void (*swiglu_bwd)(void *ctx, tensor dgate, tensor dup, tensor dact, tensor gate, tensor up);
	/* Causal attention inside each document of d: q (T, H*D), k, v
	 * (T, KV*D) -> out (T, H*D), lse (H, T) the log-sum-exp of each score
	 * row, kept for the backward pass (which recomputes the
	 * probabilities: no (T, T) matrix is stored). */
	void (*attn_fwd)(void *ctx, tensor out, tensor lse, tensor q, tensor k, tensor v, const ops_docs *d, int H,
	                 int KV);
	/* Its backward: dq (T, H*D), dk, dv (T, KV*D) from dout (T, H*D). */
	void (*attn_bwd)(void *ctx, tensor dq, tensor dk, tensor dv, tensor q, tensor k, tensor v, tensor out,
	                 tensor lse, tensor dout, const ops_docs *d, int H, int KV);
	/* Generation's attention against a cache, nseg sequences (seqs, host):
	 * q (T, H*D) -> out (T, H*D). */
	void (*attn_cached)(void *ctx, tensor out, tensor q, const ops_kvseq *seqs, int nseg, int H, int KV);
	/* The LM head and the cross-entropy over the n rows rows (host) of h
	 * (T, C) with targets tgt (host), a chunk of rows at a time so only a
	 * (chunk, V) block of logits is ever live: dh (T, C) += and dW (V, C)
	 * += the gradients of scale * the summed loss, W (V, C). Returns the
	 * summed loss (not scaled). dh and dW none (tensor_none()): the loss
	 * alone, no gradient (a reference model's log-probabilities). With
	 * soft (not NULL) the rows that have soft labels take kd.h's loss
	 * instead of the cross-entropy, and the return is that mixed sum. */
	double (*lmhead_ce)(void *ctx, tensor dh, tensor dW, tensor h, tensor W, const int *rows, const int *tgt, int n,
	                    float scale, ops_soft *soft);

	/* ---- the update ------------------------------------------------ */
	/* The L2 norm of g (all of it, one reduction). */
	double (*grad_norm)(void *ctx, tensor g);
	/* clip_grad_norm_ over g: returns the norm before clipping. */
	double (*clip)(void *ctx, tensor g, double max_norm);
	/* g *= k (clipping a gradient held in pieces across ranks). */
	void (*scale)(void *ctx, tensor g, float k);
	/* One AdamW step (optim.h's adamw_update) on p with g, m, v. */
	void (*adamw)(void *ctx, tensor p, tensor g, tensor m, tensor v, long t, const adamw_hparams *h, int decay);
} ops;

/* No tensor (a missing bias). */
static inline tensor tensor_none(void)
{
	tensor t = {0, OPS_F32, 0, 0};
	return t;
}

/* The rotary tables cos, sin (T, head_dim/2) fp32 of positions pos (T),
 * in host memory, computed as transformers does (in fp32): every backend
 * makes its tables here, so that they agree to the bit. */
void ops_rope_host(float *cos_, float *sin_, const int *pos, int T, int head_dim, double theta);

#endif
