/* attention.cu — causal grouped-query attention over packed documents,
 * flash style: tiled, online softmax, no (T, T) matrix, forward and
 * backward. The fallback for cuDNN's fused SDPA and the reference for it.
 *
 * A sample holds several documents; token t attends to the tokens of its
 * own document up to itself. doc_start (T) gives each token's first token
 * (the host makes it from the document lengths). Query head h reads
 * key/value head h / (H / KV). Scores are scaled by 1 / sqrt(D).
 *
 * Forward: one block per (64 query rows, head), one thread per query row
 * holding its q, its output accumulator and its running max and sum in
 * registers; key and value tiles of 64 rows go through shared memory.
 * lse (H, T) = the log-sum-exp of each score row, kept for the backward
 * pass, which recomputes the probabilities from it (as FlashAttention-2):
 *   delta (H, T) = dout . out per row;
 *   dq: a thread per query row walks its keys: p = exp(s - lse),
 *       ds = p (dout . v - delta), dq += ds k / sqrt(D);
 *   dk, dv: a thread per key row walks the query rows that see it, over
 *       the heads of its group, so the group's sum needs no atomics.
 * Every sum runs in a fixed order: a step is reproducible.
 *
 * Types: q, k, v, out, dout, dq, dk, dv bf16; lse, delta and all arithmetic
 * fp32. The CPU engine's attention (lib/ops_cpu.c) is the reference.
 *
 * Napkin math (T = 4096 in 1 document, H = 14, D = 64): forward
 * 4 * T^2 / 2 * D * H = 7.5 GFLOP; backward 2.5 times that. This SIMT
 * kernel does them on CUDA cores (67 TFLOP/s fp32 on an H100, far less in
 * practice): the reason cuDNN's tensor-core SDPA is the default.
 */
#include "simt.h"
#include "kernels.h"

enum { ATT_ROWS = 64, ATT_DMAX = 128 };

/* tile[off + r * D + d] = mul * src row (row0 + r), head `head` of
 * `heads`, for r < n: the block's threads load a tile of 64 rows together. */
template <class S>
static __device__ void load_tile(S tile, int off, const bf16 *src, int row0, int n, int heads, int head, int D, float mul)
{
	for (int i = threadIdx.x; i < n * D; i += ATT_ROWS) {
		int r = i / D, d = i % D;
		tile[off + i] = __bfloat162float(src[((size_t)(row0 + r) * heads + head) * D + d]) * mul;
	}
}

/* out, lse for query rows [blockIdx.x * 64, +64) of head blockIdx.y. */
static __global__ void attn_fwd_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
				       const int *doc_start, int T, int H, int KV, int D)
{
	SIMT_DYN_SHARED(float, tile); /* K (64, D) then V (64, D) */
	int h = blockIdx.y, g = h / (H / KV), t = (int)(blockIdx.x * ATT_ROWS + threadIdx.x);
	int row_ok = t < T;
	int t_last = (int)blockIdx.x * ATT_ROWS + ATT_ROWS - 1 < T ? (int)blockIdx.x * ATT_ROWS + ATT_ROWS - 1 : T - 1;
	int first = doc_start[blockIdx.x * ATT_ROWS]; /* doc starts only grow along the tile */
	float scale = 1.0f / sqrtf((float)D);
	float qr[ATT_DMAX], acc[ATT_DMAX];
	float m = -INFINITY, l = 0;
	int mine = row_ok ? doc_start[t] : 0;
	for (int d = 0; d < D; d++) {
		qr[d] = row_ok ? __bfloat162float(q[((size_t)t * H + h) * D + d]) * scale : 0;
		acc[d] = 0;
	}
	for (int j0 = first; j0 <= t_last; j0 += ATT_ROWS) {
		int n = t_last + 1 - j0 < ATT_ROWS ? t_last + 1 - j0 : ATT_ROWS;
		load_tile(tile, 0, k, j0, n, KV, g, D, 1.0f);
		load_tile(tile, ATT_ROWS * D, v, j0, n, KV, g, D, 1.0f);
		__syncthreads();
		if (row_ok)
			for (int r = 0; r < n; r++) {
				int j = j0 + r;
				if (j < mine || j > t) continue;
				float s = 0;
				for (int d = 0; d < D; d++) s += qr[d] * tile[r * D + d];
				float m2 = fmaxf(m, s), c = expf(m - m2), p = expf(s - m2);
				l = l * c + p;
				for (int d = 0; d < D; d++) acc[d] = acc[d] * c + p * tile[ATT_ROWS * D + r * D + d];
				m = m2;
			}
		__syncthreads();
	}
	if (!row_ok) return;
	for (int d = 0; d < D; d++) out[((size_t)t * H + h) * D + d] = __float2bfloat16(acc[d] / l);
	lse[(size_t)h * T + t] = m + logf(l);
}

/* delta (H, T) = sum_d dout * out, per row. */
static __global__ void attn_delta_kernel(float *delta, const bf16 *out, const bf16 *dout, int T, int H, int D)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; /* t * H + h */
	if (i >= (size_t)T * H) return;
	float s = 0;
	for (int d = 0; d < D; d++) s += __bfloat162float(dout[i * D + d]) * __bfloat162float(out[i * D + d]);
	delta[(i % H) * T + i / H] = s;
}

/* dq for query rows [blockIdx.x * 64, +64) of head blockIdx.y. */
static __global__ void attn_dq_kernel(bf16 *dq, const bf16 *q, const bf16 *k, const bf16 *v, const bf16 *dout,
				      const float *lse, const float *delta, const int *doc_start, int T, int H, int KV, int D)
{
	SIMT_DYN_SHARED(float, tile); /* K (64, D) then V (64, D) */
	int h = blockIdx.y, g = h / (H / KV), t = (int)(blockIdx.x * ATT_ROWS + threadIdx.x);
	int row_ok = t < T;
	int t_last = (int)blockIdx.x * ATT_ROWS + ATT_ROWS - 1 < T ? (int)blockIdx.x * ATT_ROWS + ATT_ROWS - 1 : T - 1;
	int first = doc_start[blockIdx.x * ATT_ROWS];
	float scale = 1.0f / sqrtf((float)D);
	float qr[ATT_DMAX], go[ATT_DMAX], acc[ATT_DMAX];
	int mine = row_ok ? doc_start[t] : 0;
	float L = row_ok ? lse[(size_t)h * T + t] : 0, dl = row_ok ? delta[(size_t)h * T + t] : 0;
	for (int d = 0; d < D; d++) {
		qr[d] = row_ok ? __bfloat162float(q[((size_t)t * H + h) * D + d]) * scale : 0;
		go[d] = row_ok ? __bfloat162float(dout[((size_t)t * H + h) * D + d]) : 0;
		acc[d] = 0;
	}
	for (int j0 = first; j0 <= t_last; j0 += ATT_ROWS) {
		int n = t_last + 1 - j0 < ATT_ROWS ? t_last + 1 - j0 : ATT_ROWS;
		load_tile(tile, 0, k, j0, n, KV, g, D, 1.0f);
		load_tile(tile, ATT_ROWS * D, v, j0, n, KV, g, D, 1.0f);
		__syncthreads();
		if (row_ok)
			for (int r = 0; r < n; r++) {
				int j = j0 + r;
				if (j < mine || j > t) continue;
				float s = 0, dp = 0;
				for (int d = 0; d < D; d++) s += qr[d] * tile[r * D + d], dp += go[d] * tile[ATT_ROWS * D + r * D + d];
				float ds = expf(s - L) * (dp - dl) * scale;
				for (int d = 0; d < D; d++) acc[d] += ds * tile[r * D + d];
			}
		__syncthreads();
	}
	if (!row_ok) return;
	for (int d = 0; d < D; d++) dq[((size_t)t * H + h) * D + d] = __float2bfloat16(acc[d]);
}

/* dk, dv for key rows [blockIdx.x * 64, +64) of key/value head blockIdx.y:
 * over the query heads of the group, the query rows of the same document
 * from the key on. */
static __global__ void attn_dkv_kernel(bf16 *dk, bf16 *dv, const bf16 *q, const bf16 *k, const bf16 *v,
				       const bf16 *dout, const float *lse, const float *delta, const int *doc_start,
				       int T, int H, int KV, int D)
{
	SIMT_DYN_SHARED(float, tile); /* Q (64, D) then dout (64, D) */
	int g = blockIdx.y, per = H / KV, j = (int)(blockIdx.x * ATT_ROWS + threadIdx.x);
	int row_ok = j < T;
	int j_first = (int)blockIdx.x * ATT_ROWS;
	int j_last = j_first + ATT_ROWS - 1 < T ? j_first + ATT_ROWS - 1 : T - 1;
	/* the last query row any key of the tile can reach: the end of the
	 * last key's document */
	int t_end = j_last;
	while (t_end + 1 < T && doc_start[t_end + 1] == doc_start[j_last]) t_end++;
	float scale = 1.0f / sqrtf((float)D);
	float kr[ATT_DMAX], vr[ATT_DMAX], ak[ATT_DMAX], av[ATT_DMAX];
	int doc = row_ok ? doc_start[j] : 0;
	for (int d = 0; d < D; d++) {
		kr[d] = row_ok ? __bfloat162float(k[((size_t)j * KV + g) * D + d]) : 0;
		vr[d] = row_ok ? __bfloat162float(v[((size_t)j * KV + g) * D + d]) : 0;
		ak[d] = av[d] = 0;
	}
	for (int hh = 0; hh < per; hh++) {
		int h = g * per + hh;
		for (int t0 = j_first; t0 <= t_end; t0 += ATT_ROWS) {
			int n = t_end + 1 - t0 < ATT_ROWS ? t_end + 1 - t0 : ATT_ROWS;
			load_tile(tile, 0, q, t0, n, H, h, D, scale);
			load_tile(tile, ATT_ROWS * D, dout, t0, n, H, h, D, 1.0f);
			__syncthreads();
			if (row_ok)
				for (int r = 0; r < n; r++) {
					int t = t0 + r;
					if (t < j || doc_start[t] != doc) continue;
					float s = 0, dp = 0;
					for (int d = 0; d < D; d++) s += tile[r * D + d] * kr[d], dp += tile[ATT_ROWS * D + r * D + d] * vr[d];
					float p = expf(s - lse[(size_t)h * T + t]);
					float ds = p * (dp - delta[(size_t)h * T + t]);
					for (int d = 0; d < D; d++) {
						av[d] += p * tile[ATT_ROWS * D + r * D + d];
						ak[d] += ds * tile[r * D + d]; /* q already carries the scale */
					}
				}
			__syncthreads();
		}
	}
	if (!row_ok) return;
	for (int d = 0; d < D; d++) {
		dk[((size_t)j * KV + g) * D + d] = __float2bfloat16(ak[d]);
		dv[((size_t)j * KV + g) * D + d] = __float2bfloat16(av[d]);
	}
}

static int attn_args_ok(int T, int H, int KV, int D) { return T > 0 && KV > 0 && H % KV == 0 && D > 0 && D <= ATT_DMAX; }

extern "C" int kern_attn_fwd(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *doc_start,
			     int T, int H, int KV, int D, cudaStream_t s)
{
	if (T == 0) return 0;
	if (!attn_args_ok(T, H, KV, D)) return cudaErrorInvalidConfiguration;
	return SIMT_LAUNCH(attn_fwd_kernel, dim3((T + ATT_ROWS - 1) / ATT_ROWS, H), dim3(ATT_ROWS),
			   2 * ATT_ROWS * D * sizeof(float), s, out, lse, q, k, v, doc_start, T, H, KV, D);
}

extern "C" size_t kern_attn_bwd_scratch(int T, int H) { return (size_t)T * H * sizeof(float); }

extern "C" int kern_attn_bwd(bf16 *dq, bf16 *dk, bf16 *dv, float *scratch, const bf16 *q, const bf16 *k, const bf16 *v,
			     const bf16 *out, const float *lse, const bf16 *dout, const int *doc_start, int T, int H,
			     int KV, int D, cudaStream_t s)
{
	if (T == 0) return 0;
	if (!attn_args_ok(T, H, KV, D)) return cudaErrorInvalidConfiguration;
	size_t rows = (size_t)T * H;
	int e = SIMT_LAUNCH(attn_delta_kernel, dim3((unsigned)((rows + 255) / 256)), dim3(256), 0, s, scratch, out, dout, T,
			    H, D);
	if (e) return e;
	size_t sh = 2 * ATT_ROWS * D * sizeof(float);
	e = SIMT_LAUNCH(attn_dq_kernel, dim3((T + ATT_ROWS - 1) / ATT_ROWS, H), dim3(ATT_ROWS), sh, s, dq, q, k, v, dout, lse,
			scratch, doc_start, T, H, KV, D);
	if (e) return e;
	return SIMT_LAUNCH(attn_dkv_kernel, dim3((T + ATT_ROWS - 1) / ATT_ROWS, KV), dim3(ATT_ROWS), sh, s, dk, dv, q, k, v,
			   dout, lse, scratch, doc_start, T, H, KV, D);
}
