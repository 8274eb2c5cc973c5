/* adamw.cu — the update over all parameters at once: the gradient's
 * global norm, clipping, AdamW on the fp32 master weights with the bf16
 * copy written in the same pass; and the casts between fp32 and bf16.
 *
 * The engine keeps parameters, gradients and moments each in one
 * allocation, so one launch covers every tensor. The norm is summed in
 * double, as lib/optim.c optim_grad_norm does (the reference): each block
 * writes one partial, and a single block adds the partials in order, so it
 * does not depend on the launch's scheduling. AdamW is lib/optim.c
 * adamw_update's arithmetic, fp32 with the scalars prepared in double on
 * the host (kern_adamw_scalars).
 *
 * Napkin math (494 M parameters): the norm reads 2 GB of fp32 gradients,
 * about 0.7 ms at 3 TB/s; AdamW reads p, g, m, v and writes p, m, v and the
 * bf16 copy: 30 B a parameter, 15 GB, about 5 ms a step.
 */
#include "simt.h"
#include "kernels.h"

enum { UPD_THREADS = 256, NORM_BLOCKS = 1024 };

static __device__ double block_sum_d(double v)
{
	SIMT_SHARED(double, part, UPD_THREADS / 32);
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
	__syncthreads();
	double s = 0;
	for (int i = 0; i < UPD_THREADS / 32; i++) s += part[i];
	return s;
}

/* part (gridDim) = sums of g^2 over this block's stretch of g (n). */
static __global__ void sumsq_kernel(double *part, const float *g, size_t n)
{
	size_t per = (n + gridDim.x - 1) / gridDim.x, a = blockIdx.x * per, b = a + per < n ? a + per : n;
	double s = 0;
	for (size_t i = a + threadIdx.x; i < b; i += UPD_THREADS) s += (double)g[i] * g[i];
	s = block_sum_d(s);
	if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* out (1) = the sum of part (n), in order, by one thread. */
static __global__ void sum_parts_kernel(double *out, const double *part, int n)
{
	if (threadIdx.x != 0) return;
	double s = 0;
	for (int i = 0; i < n; i++) s += part[i];
	*out = s;
}

static __global__ void scale_kernel(float *g, size_t n, float k)
{
	size_t i = (size_t)blockIdx.x * UPD_THREADS + threadIdx.x;
	if (i < n) g[i] *= k;
}

static __global__ void adamw_kernel(float *p, bf16 *p16, const float *g, float *m, float *v, size_t n, kern_adamw s)
{
	size_t i = (size_t)blockIdx.x * UPD_THREADS + threadIdx.x;
	if (i >= n) return;
	float gi = g[i], pi = p[i], mi = m[i], vi = v[i];
	if (s.keep != 1.0f) pi *= s.keep;
	mi += s.w1 * (gi - mi);
	vi = vi * s.b2 + s.w2 * gi * gi;
	pi -= s.step * (mi / (sqrtf(vi) / s.bc2s + s.eps));
	p[i] = pi, m[i] = mi, v[i] = vi;
	if (p16) p16[i] = __float2bfloat16(pi);
}

static __global__ void to_bf16_kernel(bf16 *out, const float *in, size_t n)
{
	size_t i = (size_t)blockIdx.x * UPD_THREADS + threadIdx.x;
	if (i < n) out[i] = __float2bfloat16(in[i]);
}

static __global__ void to_f32_kernel(float *out, const bf16 *in, size_t n)
{
	size_t i = (size_t)blockIdx.x * UPD_THREADS + threadIdx.x;
	if (i < n) out[i] = __bfloat162float(in[i]);
}

static dim3 blocks(size_t n) { return dim3((unsigned)((n + UPD_THREADS - 1) / UPD_THREADS)); }

extern "C" size_t kern_sumsq_scratch(void) { return (NORM_BLOCKS + 1) * sizeof(double); }

extern "C" int kern_sumsq(double *out, double *scratch, const float *g, size_t n, cudaStream_t s)
{
	size_t nb = n / (64 * UPD_THREADS) + 1;
	if (nb > NORM_BLOCKS) nb = NORM_BLOCKS;
	int e = SIMT_LAUNCH(sumsq_kernel, dim3((unsigned)nb), dim3(UPD_THREADS), 0, s, scratch, g, n);
	if (e) return e;
	return SIMT_LAUNCH(sum_parts_kernel, dim3(1), dim3(32), 0, s, out, scratch, (int)nb);
}

extern "C" int kern_scale(float *g, size_t n, float k, cudaStream_t s)
{
	if (n == 0) return 0;
	return SIMT_LAUNCH(scale_kernel, blocks(n), dim3(UPD_THREADS), 0, s, g, n, k);
}

extern "C" kern_adamw kern_adamw_scalars(double lr, double beta1, double beta2, double eps, double weight_decay, long t,
					 int decay)
{
	/* As lib/optim.c: the scalars in double as Python does, used in fp32
	 * as torch does. */
	kern_adamw s;
	s.keep = (float)(1.0 - lr * (decay ? weight_decay : 0.0));
	s.w1 = (float)(1.0 - beta1);
	s.b2 = (float)beta2;
	s.w2 = (float)(1.0 - beta2);
	double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
	s.step = (float)(lr / bc1);
	s.bc2s = (float)sqrt(bc2);
	s.eps = (float)eps;
	return s;
}

extern "C" int kern_adamw_step(float *p, bf16 *p16, const float *g, float *m, float *v, size_t n, kern_adamw sc,
			       cudaStream_t s)
{
	if (n == 0) return 0;
	return SIMT_LAUNCH(adamw_kernel, blocks(n), dim3(UPD_THREADS), 0, s, p, p16, g, m, v, n, sc);
}

extern "C" int kern_to_bf16(bf16 *out, const float *in, size_t n, cudaStream_t s)
{
	if (n == 0) return 0;
	return SIMT_LAUNCH(to_bf16_kernel, blocks(n), dim3(UPD_THREADS), 0, s, out, in, n);
}

extern "C" int kern_to_f32(float *out, const bf16 *in, size_t n, cudaStream_t s)
{
	if (n == 0) return 0;
	return SIMT_LAUNCH(to_f32_kernel, blocks(n), dim3(UPD_THREADS), 0, s, out, in, n);
}
