/* wmat.c — weight matrices in their stored dtype: y = W x and Y = X W^T.
 * See wmat.h. Sections: element conversion, the plain C kernels, the AVX2
 * kernels, dispatch and threading, the many-token product.
 */
#include "wmat.h"
#include "check.h"
#include "safetensors.h"

#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define WMAT_X86 1
#endif

/* Products smaller than this (in weights) run on one thread: waking the
 * team costs more than it saves. */
#define PAR_MIN ((size_t)1 << 16)
/* Threads get shares of y = W x in multiples of R rows. */
#define R 16
/* The many-token product widens tiles of TILE_R rows by TILE_K columns
 * (1 MB of fp32) before each sgemm. Measured on the 24 layers of a
 * Qwen2.5-0.5B shape in fp16, 255 tokens, one core: 64 x 1024 tiles took
 * 2.07 s, 256 x 1024 1.97 s, sgemm on an fp32 copy 1.93 s; smaller tiles
 * pay more for sgemm's packing of the input. */
#define TILE_R 256
#define TILE_K 1024

size_t wmat_elsize(wmat_dtype dtype)
{
	return dtype == WMAT_F32 ? 4 : 2;
}

/* ---- element conversion --------------------------------------------- */

/* Element i of a row, widened. memcpy: the data need not be aligned. */
static inline float elem(const unsigned char *row, wmat_dtype dt, int i)
{
	if (dt == WMAT_F32) {
		float f;
		memcpy(&f, row + (size_t)i * 4, 4);
		return f;
	}
	uint16_t h;
	memcpy(&h, row + (size_t)i * 2, 2);
	if (dt == WMAT_BF16) {
		uint32_t u = (uint32_t)h << 16;
		float f;
		memcpy(&f, &u, 4);
		return f;
	}
	return safetensors_f16_to_f32(h);
}

static void row_to_f32(const unsigned char *row, wmat_dtype dt, int n, float *out)
{
	if (dt == WMAT_F32) {
		memcpy(out, row, (size_t)n * 4);
		return;
	}
	for (int i = 0; i < n; i++) out[i] = elem(row, dt, i);
}

void wmat_row(const wmat *w, int r, float *out)
{
	size_t ld = (size_t)w->cols * wmat_elsize(w->dtype);
	row_to_f32((const unsigned char *)w->data + (size_t)r * ld, w->dtype, w->cols, out);
}

/* ---- plain C: rows r0..r1 of y = W x ---------------------------------- */

static void gemv_c(const wmat *w, const float *x, float *y, int r0, int r1, int acc)
{
	size_t ld = (size_t)w->cols * wmat_elsize(w->dtype);
	const unsigned char *base = w->data;
	for (int r = r0; r < r1; r++) {
		const unsigned char *row = base + (size_t)r * ld;
		float s = 0;
		for (int k = 0; k < w->cols; k++) s += elem(row, w->dtype, k) * x[k];
		y[r] = acc ? y[r] + s : s;
	}
}

/* ---- AVX2 + FMA + F16C ---------------------------------------------- */

#ifdef WMAT_X86
#define TGT __attribute__((target("avx2,fma,f16c")))

TGT static inline __m256 ld_f32(const unsigned char *p)
{
	return _mm256_loadu_ps((const float *)(const void *)p);
}

TGT static inline __m256 ld_f16(const unsigned char *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}

/* bf16 is the top half of an fp32: widen to 32 bits and shift. */
TGT static inline __m256 ld_bf16(const unsigned char *p)
{
	__m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
	return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

TGT static inline float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* One kernel per dtype (LD its widening load, ES its size). The rows
 * r0..r1 are cut into four quarters, and a row of each quarter is done at
 * once: each x load feeds four rows, and memory is read as four streams
 * far apart. Measured on one core (AMD EPYC, a 896 x 4864 fp16 matrix,
 * not in cache): a row at a time reads x (19 KB there) from L2 for every
 * row and got 18 GB/s; four rows far apart got 25; four adjacent rows
 * 11, as their interleaved addresses defeat the hardware prefetcher. The
 * rows left over (fewer than four) go one at a time. cols % 8 in scalar. */
#define GEMV_AVX2(NAME, LD, ES, DT)                                                            \
	TGT static void NAME(const wmat *w, const float *x, float *y, int r0, int r1, int acc)     \
	{                                                                                          \
		int K = w->cols, K8 = K & ~7, q = (r1 - r0) / 4;                                   \
		size_t ld = (size_t)K * ES;                                                        \
		const unsigned char *base = (const unsigned char *)w->data;                        \
		for (int i = 0; i < q; i++) {                                                      \
			int r[4] = {r0 + i, r0 + q + i, r0 + 2 * q + i, r0 + 3 * q + i};           \
			const unsigned char *p0 = base + (size_t)r[0] * ld, *p1 = base + (size_t)r[1] * ld; \
			const unsigned char *p2 = base + (size_t)r[2] * ld, *p3 = base + (size_t)r[3] * ld; \
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                \
			for (int k = 0; k < K8; k += 8) {                                          \
				__m256 xv = _mm256_loadu_ps(x + k);                                \
				size_t o = (size_t)k * ES;                                         \
				a0 = _mm256_fmadd_ps(LD(p0 + o), xv, a0);                          \
				a1 = _mm256_fmadd_ps(LD(p1 + o), xv, a1);                          \
				a2 = _mm256_fmadd_ps(LD(p2 + o), xv, a2);                          \
				a3 = _mm256_fmadd_ps(LD(p3 + o), xv, a3);                          \
			}                                                                          \
			float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};                     \
			const unsigned char *p[4] = {p0, p1, p2, p3};                              \
			for (int j = 0; j < 4; j++) {                                              \
				for (int k = K8; k < K; k++) s[j] += elem(p[j], DT, k) * x[k];     \
				y[r[j]] = acc ? y[r[j]] + s[j] : s[j];                             \
			}                                                                          \
		}                                                                                  \
		for (int rr = r0 + 4 * q; rr < r1; rr++) {                                         \
			const unsigned char *p = base + (size_t)rr * ld;                           \
			__m256 a = _mm256_setzero_ps();                                            \
			int k = 0;                                                                 \
			for (; k < K8; k += 8) a = _mm256_fmadd_ps(LD(p + (size_t)k * ES), _mm256_loadu_ps(x + k), a); \
			float s = hsum(a);                                                         \
			for (; k < K; k++) s += elem(p, DT, k) * x[k];                             \
			y[rr] = acc ? y[rr] + s : s;                                               \
		}                                                                                  \
	}

GEMV_AVX2(gemv_avx2_f32, ld_f32, 4, WMAT_F32)
GEMV_AVX2(gemv_avx2_f16, ld_f16, 2, WMAT_F16)
GEMV_AVX2(gemv_avx2_bf16, ld_bf16, 2, WMAT_BF16)

/* out[0..n) = widened p[0..n) */
TGT static void widen_avx2(const unsigned char *p, wmat_dtype dt, int n, float *out)
{
	int k = 0;
	if (dt == WMAT_F16)
		for (; k + 8 <= n; k += 8) _mm256_storeu_ps(out + k, ld_f16(p + (size_t)k * 2));
	else if (dt == WMAT_BF16)
		for (; k + 8 <= n; k += 8) _mm256_storeu_ps(out + k, ld_bf16(p + (size_t)k * 2));
	for (; k < n; k++) out[k] = elem(p, dt, k);
}
#endif

/* ---- dispatch and threading ------------------------------------------ */

typedef void gemv_fn(const wmat *w, const float *x, float *y, int r0, int r1, int acc);

static int force_c;

static int have_avx2(void)
{
#ifdef WMAT_X86
	static int have = -1; /* a benign race: every thread computes the same */
	if (have < 0) {
		/* F16C from CPUID itself: clang's __builtin_cpu_supports does not
		 * know the name (make fuzz builds with clang). */
		unsigned a, b, c, d;
		int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
		have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
	}
	return have && !force_c;
#else
	return 0;
#endif
}

void wmat_force_c(int on)
{
	force_c = on;
}

const char *wmat_kernel(void)
{
	return have_avx2() ? "avx2" : "c";
}

static gemv_fn *gemv_pick(wmat_dtype dt)
{
#ifdef WMAT_X86
	if (have_avx2()) return dt == WMAT_F32 ? gemv_avx2_f32 : dt == WMAT_F16 ? gemv_avx2_f16 : gemv_avx2_bf16;
#endif
	(void)dt;
	return gemv_c;
}

static void widen(const unsigned char *p, wmat_dtype dt, int n, float *out)
{
#ifdef WMAT_X86
	if (have_avx2() && dt != WMAT_F32) {
		widen_avx2(p, dt, n, out);
		return;
	}
#endif
	row_to_f32(p, dt, n, out);
}

/* Rows [lo, hi) of the n matrices' rows laid end to end: the share of
 * one thread. */
static void gemv_span(int n, const wmat *const *ws, const float *x, float *const *ys, long lo, long hi, int acc)
{
	long at = 0;
	for (int i = 0; i < n && at < hi; at += ws[i]->rows, i++) {
		long a = lo > at ? lo - at : 0, b = hi - at < ws[i]->rows ? hi - at : ws[i]->rows;
		if (a < b) gemv_pick(ws[i]->dtype)(ws[i], x, ys[i], (int)a, (int)b, acc);
	}
}

static void gemv_many(int n, const wmat *const *ws, const float *x, float *const *ys, int acc)
{
	long rows = 0;
	size_t weights = 0;
	for (int i = 0; i < n; i++) {
		rows += ws[i]->rows;
		weights += (size_t)ws[i]->rows * (size_t)ws[i]->cols;
	}
	if (weights < PAR_MIN || omp_get_max_threads() == 1 || omp_in_parallel()) {
		gemv_span(n, ws, x, ys, 0, rows, acc);
		return;
	}
#pragma omp parallel
	{
		/* Contiguous shares in multiples of R rows: each thread streams
		 * its own part of memory. */
		long nt = omp_get_num_threads(), t = omp_get_thread_num();
		long blocks = (rows + R - 1) / R;
		long lo = blocks * t / nt * R, hi = blocks * (t + 1) / nt * R;
		if (hi > rows) hi = rows;
		gemv_span(n, ws, x, ys, lo, hi, acc);
	}
}

void wmat_gemv(const wmat *w, const float *x, float *y, int accumulate)
{
	gemv_many(1, &w, x, &y, accumulate);
}

void wmat_gemv_n(int n, const wmat *const *ws, const float *x, float *const *ys)
{
	gemv_many(n, ws, x, ys, 0);
}

/* ---- many tokens: widen a tile, sgemm it ----------------------------- */

void wmat_matmul(const wmat *w, const float *in, int T, float *out, int accumulate)
{
	int O = w->rows, K = w->cols;
	if (T == 1) {
		wmat_gemv(w, in, out, accumulate);
		return;
	}
	if (w->dtype == WMAT_F32) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, O, K, 1.0f, in, K, w->data, K,
		            accumulate ? 1.0f : 0.0f, out, O);
		return;
	}
	size_t ld = (size_t)K * 2;
	int tiles = (O + TILE_R - 1) / TILE_R;
	int team = omp_in_parallel() ? 1 : omp_get_max_threads();
	if (team > tiles) team = tiles;
	float *buf = xmalloc((size_t)team * TILE_R * TILE_K * sizeof(float));
	/* Each thread's sgemm runs on that thread alone (OpenBLAS's OpenMP
	 * build inside a parallel region). */
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
	for (int tl = 0; tl < tiles; tl++) {
		float *tb = buf + (size_t)omp_get_thread_num() * TILE_R * TILE_K;
		int r0 = tl * TILE_R, nr = O - r0 < TILE_R ? O - r0 : TILE_R;
		for (int k0 = 0; k0 < K; k0 += TILE_K) {
			int nk = K - k0 < TILE_K ? K - k0 : TILE_K;
			for (int i = 0; i < nr; i++)
				widen((const unsigned char *)w->data + (size_t)(r0 + i) * ld + (size_t)k0 * 2, w->dtype, nk,
				      tb + (size_t)i * nk);
			float beta = accumulate || k0 > 0 ? 1.0f : 0.0f;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, nr, nk, 1.0f, in + k0, K, tb, nk, beta,
			            out + r0, O);
		}
	}
	free(buf);
}
