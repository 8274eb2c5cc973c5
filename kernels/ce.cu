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

/* z (R, V) in place; loss (R) = lse - z[tgt]. */
static __global__ void ce_kernel(float *z, float *loss, const int *tgt, int V, float scale)
{
	float *row = z + (size_t)blockIdx.x * V;
	int t = tgt[blockIdx.x];
	float zt = row[t];
	float mx = -INFINITY;
	for (int j = threadIdx.x; j < V; j += CE_THREADS) mx = fmaxf(mx, row[j]);
	mx = block_reduce(mx, 1);
	float sum = 0;
	for (int j = threadIdx.x; j < V; j += CE_THREADS) sum += expf(row[j] - mx);
	sum = block_reduce(sum, 0);
	if (threadIdx.x == 0) loss[blockIdx.x] = mx + logf(sum) - zt;
	float k = scale / sum;
	for (int j = threadIdx.x; j < V; j += CE_THREADS) row[j] = expf(row[j] - mx) * k - (j == t ? scale : 0.0f);
}

extern "C" int kern_ce(float *logits, float *loss, const int *tgt, int R, int V, float scale, cudaStream_t s)
{
	if (R <= 0) return 0;
	return SIMT_LAUNCH(ce_kernel, dim3(R), dim3(CE_THREADS), 0, s, logits, loss, tgt, V, scale);
}
