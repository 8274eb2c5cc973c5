/* rmsnorm.cu — RMSNorm forward and backward, one block per row.
 *
 * Types: activations and weights bf16 as the CUDA engine keeps them; the
 * row statistics (rstd) and every sum fp32; gradients accumulated in fp32
 * as the CPU engine accumulates them (lib/qwen2.c rmsnorm_fwd/bwd are the
 * reference). The weight's gradient is summed without atomics: each
 * block writes one partial row, and a second kernel adds the partials in
 * block order, so a step is bit-reproducible.
 *
 * Napkin math (Qwen2.5-0.5B, T = 4096, C = 896): forward reads x and w
 * and writes out, 2 * 4096 * 896 * 2 B = 14.7 MB, about 5 us at 3 TB/s;
 * backward reads x, dy, w and rstd, and reads and writes dx (fp32),
 * 4096 * 896 * (2 + 2 + 8) B = 44 MB, about 15 us.
 */
#include "simt.h"
#include "kernels.h"

enum { RMS_THREADS = 256, RMS_WARPS = RMS_THREADS / 32 };

/* The sum of v over the block, given to every thread. */
static __device__ float block_sum(float v)
{
	SIMT_SHARED(float, part, RMS_WARPS);
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	if (lane == 0) part[warp] = v;
	__syncthreads();
	float s = 0;
	for (int i = 0; i < RMS_WARPS; i++) s += part[i];
	__syncthreads(); /* part is reused by the next call */
	return s;
}

/* out (T, C) bf16 = w * x * rstd; rstd (T) fp32 = 1 / sqrt(mean(x^2) + eps). */
static __global__ void rmsnorm_fwd_kernel(bf16 *out, float *rstd, const bf16 *x, const bf16 *w, int C, float eps)
{
	const bf16 *xr = x + (size_t)blockIdx.x * C;
	bf16 *o = out + (size_t)blockIdx.x * C;
	float ss = 0;
	for (int i = threadIdx.x; i < C; i += RMS_THREADS) {
		float v = __bfloat162float(xr[i]);
		ss += v * v;
	}
	float r = rsqrtf(block_sum(ss) / C + eps);
	if (threadIdx.x == 0) rstd[blockIdx.x] = r;
	for (int i = threadIdx.x; i < C; i += RMS_THREADS)
		o[i] = __float2bfloat16(__bfloat162float(w[i]) * (__bfloat162float(xr[i]) * r));
}

/* dx (T, C) fp32 += dRMSNorm/dx . dy; dw_part (blocks, C) fp32 = this
 * block's rows' sum of dy * x * rstd. Rows [b * rows, (b + 1) * rows). */
static __global__ void rmsnorm_bwd_kernel(float *dx, float *dw_part, const bf16 *dy, const bf16 *x, const float *rstd,
					  const bf16 *w, int T, int C, int rows)
{
	SIMT_DYN_SHARED(float, dw); /* (C) this block's dw */
	for (int i = threadIdx.x; i < C; i += RMS_THREADS) dw[i] = 0;
	__syncthreads();
	int t0 = blockIdx.x * rows, t1 = t0 + rows < T ? t0 + rows : T;
	for (int t = t0; t < t1; t++) {
		const bf16 *xr = x + (size_t)t * C, *g = dy + (size_t)t * C;
		float *d = dx + (size_t)t * C, r = rstd[t];
		float dot = 0;
		for (int i = threadIdx.x; i < C; i += RMS_THREADS)
			dot += __bfloat162float(g[i]) * __bfloat162float(w[i]) * __bfloat162float(xr[i]);
		float k = block_sum(dot) * r * r * r / C;
		for (int i = threadIdx.x; i < C; i += RMS_THREADS) {
			float gi = __bfloat162float(g[i]), xi = __bfloat162float(xr[i]);
			d[i] += gi * __bfloat162float(w[i]) * r - xi * k;
			dw[i] += gi * xi * r; /* column i is this thread's alone */
		}
	}
	__syncthreads();
	for (int i = threadIdx.x; i < C; i += RMS_THREADS) dw_part[(size_t)blockIdx.x * C + i] = dw[i];
}

/* dw (C) fp32 += the sum of the partials (nb, C), in block order. */
static __global__ void sum_rows_kernel(float *dw, const float *part, int nb, int C)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= C) return;
	float s = 0;
	for (int b = 0; b < nb; b++) s += part[(size_t)b * C + i];
	dw[i] += s;
}

extern "C" int kern_rmsnorm_fwd(bf16 *out, float *rstd, const bf16 *x, const bf16 *w, int T, int C, float eps,
				cudaStream_t s)
{
	if (T <= 0) return 0;
	return SIMT_LAUNCH(rmsnorm_fwd_kernel, dim3(T), dim3(RMS_THREADS), 0, s, out, rstd, x, w, C, eps);
}

extern "C" size_t kern_rmsnorm_bwd_scratch(int T, int C)
{
	return (size_t)((T + KERN_RMS_ROWS - 1) / KERN_RMS_ROWS) * C * sizeof(float);
}

extern "C" int kern_rmsnorm_bwd(float *dx, float *dw, float *scratch, const bf16 *dy, const bf16 *x, const float *rstd,
				const bf16 *w, int T, int C, cudaStream_t s)
{
	if (T <= 0) return 0;
	int nb = (T + KERN_RMS_ROWS - 1) / KERN_RMS_ROWS;
	int e = SIMT_LAUNCH(rmsnorm_bwd_kernel, dim3(nb), dim3(RMS_THREADS), (size_t)C * sizeof(float), s, dx, scratch,
			    dy, x, rstd, w, T, C, KERN_RMS_ROWS);
	if (e) return e;
	return SIMT_LAUNCH(sum_rows_kernel, dim3((C + 255) / 256), dim3(256), 0, s, dw, scratch, nb, C);
}
