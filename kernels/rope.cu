/* rope.cu — rotary position embedding, applied in place (rotate-half, as
 * transformers' Qwen2 does), and its inverse for the backward pass.
 *
 * The tables cos, sin (T, D/2) fp32 come from the host, where the CPU
 * engine's cpu_rope_tables computes them (fp32 angles as transformers,
 * cos/sin in double): a few hundred KB a step, and the same numbers on
 * both backends. Positions restart per document there, not here.
 *
 * Napkin math (T = 4096, q: 14 heads of 64): reads and writes
 * 2 * 4096 * 896 * 2 B = 14.7 MB, about 5 us (k: a seventh of that).
 */
#include "simt.h"
#include "kernels.h"

enum { ROPE_THREADS = 256 };

/* x (T, nh * D) bf16: each head's pairs (i, i + D/2) rotated by the
 * angle of its token; sign -1 rotates back. */
static __global__ void rope_kernel(bf16 *x, const float *cos_, const float *sin_, int T, int nh, int D, float sign)
{
	int half = D / 2;
	size_t n = (size_t)T * nh * half;
	size_t j = (size_t)blockIdx.x * ROPE_THREADS + threadIdx.x;
	if (j >= n) return;
	int i = (int)(j % half);
	size_t th = j / half; /* token * nh + head */
	int t = (int)(th / nh);
	bf16 *v = x + th * D;
	float c = cos_[(size_t)t * half + i], s = sign * sin_[(size_t)t * half + i];
	float a = __bfloat162float(v[i]), b = __bfloat162float(v[i + half]);
	v[i] = __float2bfloat16(a * c - b * s);
	v[i + half] = __float2bfloat16(b * c + a * s);
}

extern "C" int kern_rope(bf16 *x, const float *cos_, const float *sin_, int T, int nh, int D, int inverse,
			 cudaStream_t s)
{
	size_t n = (size_t)T * nh * (D / 2);
	if (n == 0) return 0;
	return SIMT_LAUNCH(rope_kernel, dim3((unsigned)((n + ROPE_THREADS - 1) / ROPE_THREADS)), dim3(ROPE_THREADS), 0, s,
			   x, cos_, sin_, T, nh, D, inverse ? -1.0f : 1.0f);
}
