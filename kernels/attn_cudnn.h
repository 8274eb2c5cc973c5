/* attn_cudnn.h — causal grouped-query attention over packed documents by
 * cuDNN's fused SDPA (flash attention on tensor cores), forward and
 * backward; the GPU's default in place of kern_attn_fwd / kern_attn_bwd
 * (kernels/attention.cu), with the same semantics. Callable from C.
 *
 * A sample of T tokens holds n_docs documents end to end, doc_len[0..n_docs)
 * summing to T; token t attends to the tokens of its own document up to
 * itself; query head h reads key/value head h / (H / KV); scores are scaled
 * by 1 / sqrt(D). Layouts, token-major ("THD"), bf16 as 16-bit values:
 *   q, out, dout, dq  (T, H * D)  bf16
 *   k, v, dk, dv      (T, KV * D) bf16
 *   lse               attn_cudnn_lse_floats() fp32, see below
 * Pointers are device memory, doc_len is host memory. D a multiple of 8 up
 * to 128 (Qwen2.5: 64, 128), H a multiple of KV.
 *
 * How: the documents are a batch of B variable-length sequences in cuDNN's
 * ragged layout. Each of q, k, v, out, ... is described as the virtual
 * tensor (B, heads, S, D) with strides (-, D, heads * D, 1) and a ragged
 * offset tensor (B + 1) int64 giving, in elements, where sequence b starts
 * (prefix sums of doc_len times heads * D); seq_len_q = seq_len_kv =
 * doc_len under the padding mask; the causal mask is the top-left diagonal
 * band with right bound 0 (the same as bottom-right here: in every document
 * the query and key lengths are equal). GQA is K and V having KV heads.
 * B is n_docs rounded up to a power of two, the extra sequences of length 0;
 * S is the longest document rounded up to a power of two, at least 64: a
 * graph is built per (B, S, H, KV, D) (the backward's also per T) and
 * cached in the handle: heuristics and plans, tens of ms to seconds the
 * first time (cuDNN may compile the kernel at run time), so the few dozen
 * buckets a run meets are built once each. seq_len and the offsets are made
 * on the host from doc_len and uploaded to the handle's device buffer with
 * cudaMemcpyAsync on the call's stream, only when they change (the layers
 * of a step share one upload). The workspace lives in the handle and grows.
 *
 * The stats (lse) are cuDNN's "Stats": per query row and head, the natural
 * log-sum-exp of the scaled scores, the same numbers as the SIMT kernel's
 * lse, in another layout, one of two:
 *   packed  (T, H): lse[t * H + h], token-major, ragged like q (a stats
 *           ragged offset of prefix sums times H): T * H floats. sm_90 and
 *           later: cuDNN's THD backward refuses packed stats on sm_8x and
 *           sm_12x.
 *   padded  (B, H, S): lse[(b * H + h) * S + s] for row s of document b,
 *           B and S the buckets above: B * H * S floats, up to 4x the
 *           documents' padded B x H x max_len. sm_80.
 * (The SIMT kernel's is (H, T).) Forward and backward of this file agree;
 * attn_cudnn_lse_floats() says how many floats one layer's buffer needs.
 *
 * cuDNN needed (runtime, checked by attn_cudnn_new): >= 9.6.0 on sm_90
 * (int64 ragged offsets, and GQA with ragged offsets in the backward);
 * >= 9.18.1 on sm_80 (THD on Ampere). Built with cudnn-frontend 1.23.0
 * (mk/cudnn.mk) against the cuDNN headers of the build machine (9.19).
 *
 * Memory the backward asks for: on sm_90 its fp32 dq accumulator (and
 * GQA's full-head dk, dv) are sized by the tokens (max_total_seq_len =
 * T rounded up to 64): about 12 * T * H * D bytes, 44 MB at T = 4096,
 * H = 14, D = 64; on sm_8x cuDNN ignores that bound and sizes each
 * B * S * H * D * 4 bytes: with many short documents beside one long one,
 * gigabytes.
 *
 * Determinism: cuDNN's default backward adds dq with atomics, so two runs
 * differ in the last bits; ATTN_CUDNN_DETERMINISTIC asks for its
 * deterministic kernels (sm_90; refused on sm_8x for THD).
 *
 * Napkin math (T = 4096 in one document, H = 14, KV = 2, D = 64): forward
 * 4 * T^2 / 2 * D * H = 7.5 GFLOP, backward 2.5 times that; packed
 * documents take sum(len^2) / T^2 of it. At the ~400 TFLOP/s bf16 that
 * flash attention reaches on an H100 / H200 (990 peak): ~20 us forward,
 * ~50 us backward per layer; bytes moved, T * (2 H + 2 KV) * D * 2 =
 * 17 MB forward, about 5 us at 3.3 TB/s: compute bound.
 *
 * One handle serves one stream at a time (its device buffers are reused in
 * stream order); it is not thread-safe.
 */
#ifndef DS_ATTN_CUDNN_H
#define DS_ATTN_CUDNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#include <cuda_runtime.h>
typedef cudaStream_t attn_cudnn_stream;
extern "C" {
#else
typedef void *attn_cudnn_stream;
#endif

/* Flags of attn_cudnn_new. With neither LSE flag: packed on sm_90 and
 * later, padded before. */
#define ATTN_CUDNN_PACKED_LSE 1u    /* stats (T, H) */
#define ATTN_CUDNN_PADDED_LSE 2u    /* stats (B, H, S) */
#define ATTN_CUDNN_DETERMINISTIC 4u /* reproducible backward */

/* cuDNN handle, built graphs by shape, device buffers of seq lens and
 * offsets, workspace. */
typedef struct attn_cudnn attn_cudnn;

/* A handle for the current CUDA device. NULL with the reason in err when
 * cuDNN is missing or too old, the card or a flag unsupported. Returns
 * owned; free with attn_cudnn_free. */
attn_cudnn *attn_cudnn_new(unsigned flags, char *err, size_t errlen);
/* Waits for nothing: call it once the handle's work is done. NULL is fine. */
void attn_cudnn_free(attn_cudnn *a);

/* 1 when a's stats are packed (T, H), 0 when padded (B, H, S). */
int attn_cudnn_lse_packed(const attn_cudnn *a);
/* Floats of the stats buffer for a sample of T tokens in n_docs documents
 * of which the longest has max_len tokens, H query heads. */
size_t attn_cudnn_lse_floats(const attn_cudnn *a, int T, int n_docs, int max_len, int H);

/* out, lse from q, k, v. Returns 0, or -1 with the reason in err. */
int attn_cudnn_fwd(attn_cudnn *a, void *out, float *lse, const void *q, const void *k, const void *v,
		   const uint32_t *doc_len, int n_docs, int T, int H, int KV, int D, attn_cudnn_stream s, char *err,
		   size_t errlen);
/* dq, dk, dv (overwritten) from dout and the forward's q, k, v, out, lse
 * (the same doc_len). Returns 0, or -1 with the reason in err. */
int attn_cudnn_bwd(attn_cudnn *a, void *dq, void *dk, void *dv, const void *q, const void *k, const void *v,
		   const void *out, const float *lse, const void *dout, const uint32_t *doc_len, int n_docs, int T, int H,
		   int KV, int D, attn_cudnn_stream s, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
