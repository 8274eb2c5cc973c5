/* ce.cu — cross-entropy over a chunk of logits, in place: the loss of
 * each row, and the logits overwritten by scale * (softmax - onehot), the
 * gradient the LM head's two products then take.
 *
 * The CPU engine's cpu_lmhead_ce (lib/ops_cpu.c) is the reference: the
 * logits of R rows (R, V) fp32 come from one product, never more than a
 * chunk of rows at once, so no (T, V) tensor exists. One block a row: the
 * maximum, then the sum of exp(z - max), then the gradient, each a pass
 * over V = 151,936 floats of the row.
 *
 * Napkin math (R = 128 rows, V = 151,936): three passes read 78 MB and one
 * writes 78 MB, about 0.1 ms at 3 TB/s a chunk, against 2 * 128 * 896 *
 * 151,936 * 3 = 105 GFLOP of its three products, about 0.15 ms: the
 * passes are not free, which is why a fused online-softmax pass is next.
 */
#include "simt.h"
#include "kernels.h"
#include "../lib/kd_math.h"

enum { CE_THREADS = 512, CE_WARPS = CE_THREADS / 32 };

static __device__ float block_reduce(float v, int is_max)
{
	SIMT_SHARED(float, part, CE_WARPS);
	for (int o = 16; o > 0; o >>= 1) {
		float w = __shfl_xor_sync(0xffffffffu, v, o);
		v = is_max ? fmaxf(v, w) : v + w;
	}
	if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
	__syncthreads();
	float r = part[0];
	for (int i = 1; i < CE_WARPS; i++) r = is_max ? fmaxf(r, (float)part[i]) : r + part[i];
	__syncthreads();
	return r;
}

/* One row's cross-entropy, its maximum mx and its target's logit zt
 * taken: *loss (thread 0) = lse - zt, and with grad the row in place
 * becomes scale * (softmax - onehot(t)). */
static __device__ void ce_row(float *row, int t, float zt, float mx, int V, float scale, int grad, float *loss)
{
	float sum = 0;
	for (int j = threadIdx.x; j < V; j += CE_THREADS) sum += expf(row[j] - mx);
	sum = block_reduce(sum, 0);
	if (threadIdx.x == 0) *loss = mx + logf(sum) - zt;
	if (!grad) return;
	float k = scale / sum;
	for (int j = threadIdx.x; j < V; j += CE_THREADS) row[j] = expf(row[j] - mx) * k - (j == t ? scale : 0.0f);
}

/* z (R, V) in place; loss (R) = lse - z[tgt]. */
static __global__ void ce_kernel(float *z, float *loss, const int *tgt, int V, float scale)
{
	float *row = z + (size_t)blockIdx.x * V;
	int t = tgt[blockIdx.x];
	float zt = row[t];
	float mx = -INFINITY;
	for (int j = threadIdx.x; j < V; j += CE_THREADS) mx = fmaxf(mx, row[j]);
	mx = block_reduce(mx, 1);
	ce_row(row, t, zt, mx, V, scale, 1, &loss[blockIdx.x]);
}

extern "C" int kern_ce(float *logits, float *loss, const int *tgt, int R, int V, float scale, cudaStream_t s)
{
	if (R <= 0) return 0;
	return SIMT_LAUNCH(ce_kernel, dim3(R), dim3(CE_THREADS), 0, s, logits, loss, tgt, V, scale);
}

/* The distillation loss (lib/kd.h) of the rows with soft labels, the
 * cross-entropy of the others, in place as ce_kernel: srow[r] is row r's
 * row of the k-wide id/lp tables, or -1. The passes are kd_row's (lib/kd.c)
 * with block reductions; the K + 1 outcomes' few numbers are kd_math.h's,
 * on one thread. loss (R) the mixed loss, ce, kd (R) its parts. */
static __global__ void ce_kd_kernel(float *z, float *loss, float *ce, float *kd, const int *tgt, const int *srow,
				    const unsigned *sid, const float *slp, int k, int V, float scale, int grad,
				    float alpha, float tau, int kind, float beta)
{
	SIMT_SHARED(float, zS, KD_MAX_K);
	SIMT_SHARED(float, coef, KD_MAX_K + 2); /* the top K's gradients, then h and g */
	float *row = z + (size_t)blockIdx.x * V;
	int t = tgt[blockIdx.x], sr = srow[blockIdx.x];
	const unsigned *id = sid + (size_t)(sr < 0 ? 0 : sr) * k;
	float zt = row[t], mx = -INFINITY;
	for (int j = threadIdx.x; j < V; j += CE_THREADS) mx = fmaxf(mx, row[j]);
	mx = block_reduce(mx, 1);
	if (sr < 0) { /* no soft labels: ce_kernel's arithmetic */
		ce_row(row, t, zt, mx, V, scale, grad, &loss[blockIdx.x]);
		if (threadIdx.x == 0) ce[blockIdx.x] = loss[blockIdx.x], kd[blockIdx.x] = 0;
		return;
	}
	/* the rest's sums without the top K's terms */
	if ((int)threadIdx.x < k) zS[threadIdx.x] = row[id[threadIdx.x]];
	__syncthreads();
	if ((int)threadIdx.x < k) row[id[threadIdx.x]] = -INFINITY;
	__syncthreads();
	const int tempered = tau != 1.0f;
	const float inv = 1.0f / tau;
	float r1 = 0, rt = 0;
	for (int j = threadIdx.x; j < V; j += CE_THREADS) {
		float d = row[j] - mx;
		r1 += expf(d);
		if (tempered) rt += expf(d * inv);
	}
	r1 = block_reduce(r1, 0);
	rt = tempered ? block_reduce(rt, 0) : r1;
	if (threadIdx.x == 0) {
		float lp[KD_MAX_K], zs[KD_MAX_K];
		for (int a = 0; a < k; a++) lp[a] = slp[(size_t)sr * k + a], zs[a] = zS[a];
		kd_parts o;
		kd_outcomes(kind, tau, beta, k, zs, mx, zt, r1, rt, lp, &o);
		loss[blockIdx.x] = (float)((1 - alpha) * o.ce + alpha * tau * tau * o.kd);
		ce[blockIdx.x] = (float)o.ce;
		kd[blockIdx.x] = (float)o.kd;
		for (int a = 0; a < k; a++)
			coef[a] = (float)(scale * ((1 - alpha) * exp((double)zs[a] - mx) / o.s1 + alpha * tau * o.w[a]));
		coef[k] = (float)(scale * (1 - alpha) / o.s1);
		coef[k + 1] = (float)(scale * alpha * tau * o.w[k] / o.rest);
	}
	__syncthreads();
	if (!grad) return;
	const float h = coef[k], g = coef[k + 1];
	for (int j = threadIdx.x; j < V; j += CE_THREADS) {
		float d = row[j] - mx; /* -inf at the top K: 0 below, set after */
		row[j] = tempered ? h * expf(d) + g * expf(d * inv) : (h + g) * expf(d);
	}
	__syncthreads();
	if ((int)threadIdx.x < k) row[id[threadIdx.x]] = coef[threadIdx.x];
	__syncthreads();
	if (threadIdx.x == 0) row[t] -= scale * (1 - alpha);
}

extern "C" int kern_ce_kd(float *logits, float *loss, float *ce, float *kd, const int *tgt, const int *srow,
			  const unsigned *sid, const float *slp, int k, int R, int V, float scale, int grad, float alpha,
			  float tau, int kind, float beta, cudaStream_t s)
{
	if (R <= 0) return 0;
	if (k < 1 || k > KD_MAX_K || k > CE_THREADS) return cudaErrorInvalidConfiguration;
	return SIMT_LAUNCH(ce_kd_kernel, dim3(R), dim3(CE_THREADS), 0, s, logits, loss, ce, kd, tgt, srow, sid, slp, k, V,
			   scale, grad, alpha, tau, kind, beta);
}
