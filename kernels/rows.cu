/* rows.cu — moving rows and summing columns: what the CUDA backend
 * (kernels/ops_cuda.cu) needs around its matrix products.
 *
 *   gather:  the LM head's chunk of rows, out (R, C) = x rows (R) of x;
 *   scatter: its gradient back, dst rows (R) += src (R, C), src fp32,
 *            dst bf16 (each row named once: the engine's target rows are
 *            distinct), rounded once;
 *   colsum:  a bias's gradient, db (O) fp32 += the column sums of dy
 *            (T, O) bf16, one thread a column walking the rows in order,
 *            so the sum is the same every step (no atomics).
 *
 * Napkin math (T = 4096, O = 896): colsum reads 7.3 MB, a few
 * microseconds of bandwidth, but only O threads: latency-bound, some tens
 * of microseconds; three of them a layer (q, k, v biases).
 */
#include "simt.h"
#include "kernels.h"

enum { ROW_THREADS = 256 };

static __global__ void gather_rows_kernel(bf16 *out, const bf16 *x, const int *rows, int C)
{
	const bf16 *src = x + (size_t)rows[blockIdx.x] * C;
	bf16 *dst = out + (size_t)blockIdx.x * C;
	for (int i = threadIdx.x; i < C; i += ROW_THREADS) dst[i] = src[i];
}

static __global__ void scatter_add_rows_kernel(bf16 *dst, const float *src, const int *rows, int C)
{
	bf16 *d = dst + (size_t)rows[blockIdx.x] * C;
	const float *s = src + (size_t)blockIdx.x * C;
	for (int i = threadIdx.x; i < C; i += ROW_THREADS) d[i] = __float2bfloat16(__bfloat162float(d[i]) + s[i]);
}

static __global__ void colsum_kernel(float *db, const bf16 *dy, int T, int O)
{
	int j = (int)(blockIdx.x * ROW_THREADS + threadIdx.x);
	if (j >= O) return;
	float s = 0;
	for (int t = 0; t < T; t++) s += __bfloat162float(dy[(size_t)t * O + j]);
	db[j] += s;
}

extern "C" int kern_gather_rows(bf16 *out, const bf16 *x, const int *rows, int R, int C, cudaStream_t s)
{
	if (R <= 0) return 0;
	return SIMT_LAUNCH(gather_rows_kernel, dim3(R), dim3(ROW_THREADS), 0, s, out, x, rows, C);
}

extern "C" int kern_scatter_add_rows(bf16 *dst, const float *src, const int *rows, int R, int C, cudaStream_t s)
{
	if (R <= 0) return 0;
	return SIMT_LAUNCH(scatter_add_rows_kernel, dim3(R), dim3(ROW_THREADS), 0, s, dst, src, rows, C);
}

extern "C" int kern_colsum(float *db, const bf16 *dy, int T, int O, cudaStream_t s)
{
	if (T <= 0 || O <= 0) return 0;
	return SIMT_LAUNCH(colsum_kernel, dim3((O + ROW_THREADS - 1) / ROW_THREADS), dim3(ROW_THREADS), 0, s, db, dy, T,
			   O);
}
