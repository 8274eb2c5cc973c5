/* embed.cu — the token embedding: rows of the table by id, and the
 * backward scatter-add.
 *
 * The backward is deterministic: one thread per column walks the tokens in
 * order, as the CPU engine's loop does (lib/ops_cpu.c cpu_embed_bwd, the
 * reference), so rows that repeat add up in the same order every step,
 * instead of in whatever order atomics land.
 *
 * Napkin math (T = 4096, C = 896): forward reads and writes
 * 2 * 4096 * 896 * 2 B = 14.7 MB, about 5 us; backward reads dx, 14.7 MB
 * (fp32: 29 MB) and touches as many rows of demb, about 20 us, but with
 * only C threads it is latency-bound (a few hundred us at most per step).
 */
#include "simt.h"
#include "kernels.h"

enum { EMB_THREADS = 256 };

/* x (T, C) = emb (V, C) rows ids (T). */
static __global__ void embed_fwd_kernel(bf16 *x, const bf16 *emb, const uint32_t *ids, int C)
{
	const bf16 *e = emb + (size_t)ids[blockIdx.x] * C;
	bf16 *o = x + (size_t)blockIdx.x * C;
	for (int i = threadIdx.x; i < C; i += EMB_THREADS) o[i] = e[i];
}

/* demb (V, C) += dx (T, C) to rows ids, one column a thread. */
static __global__ void embed_bwd_kernel(float *demb, const float *dx, const uint32_t *ids, int T, int C)
{
	int i = blockIdx.x * EMB_THREADS + threadIdx.x;
	if (i >= C) return;
	for (int t = 0; t < T; t++) demb[(size_t)ids[t] * C + i] += dx[(size_t)t * C + i];
}

extern "C" int kern_embed_fwd(bf16 *x, const bf16 *emb, const uint32_t *ids, int T, int C, cudaStream_t s)
{
	if (T <= 0) return 0;
	return SIMT_LAUNCH(embed_fwd_kernel, dim3(T), dim3(EMB_THREADS), 0, s, x, emb, ids, C);
}

extern "C" int kern_embed_bwd(float *demb, const float *dx, const uint32_t *ids, int T, int C, cudaStream_t s)
{
	if (T <= 0) return 0;
	return SIMT_LAUNCH(embed_bwd_kernel, dim3((C + EMB_THREADS - 1) / EMB_THREADS), dim3(EMB_THREADS), 0, s, demb, dx,
			   ids, T, C);
}
