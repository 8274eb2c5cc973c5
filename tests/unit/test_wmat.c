/* test_wmat.c — every wmat kernel (AVX2 and plain C; fp32, fp16, bf16;
 * one row and many rows; one thread and several) against a double
 * precision product of the same widened weights, on odd sizes that leave
 * tails everywhere, with the outputs poisoned first. */
#include "../../lib/check.h"
#include "../../lib/safetensors.h"
#include "../../lib/wmat.h"
#include "testhelp.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

static uint64_t seed = 42;
static float rnd(void) /* uniform in [-1, 1) */
{
	seed = seed * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((seed >> 40) / 8388608.0 - 1.0);
}

/* A rows x cols matrix of dtype: data (owned by the caller) and its exact
 * widened values ref (owned too). */
static wmat make(wmat_dtype dt, int rows, int cols, float **ref)
{
	size_t n = (size_t)rows * cols, es = wmat_elsize(dt);
	unsigned char *d = xmalloc(n * es + 1) + 1; /* deliberately misaligned */
	*ref = xmalloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		float f = rnd();
		if (dt == WMAT_F32) {
			memcpy(d + i * 4, &f, 4);
		} else {
			uint16_t h = dt == WMAT_BF16 ? safetensors_f32_to_bf16(f) : safetensors_f32_to_f16(f);
			memcpy(d + i * 2, &h, 2);
			f = dt == WMAT_BF16 ? safetensors_bf16_to_f32(h) : safetensors_f16_to_f32(h);
		}
		(*ref)[i] = f;
	}
	return (wmat){.data = d, .dtype = dt, .rows = rows, .cols = cols};
}

static void unmake(wmat *w, float *ref)
{
	free((unsigned char *)w->data - 1);
	free(ref);
}

/* max over outputs of |got - want| / (sum_k |w||x| + 1e-30): the error
 * relative to the size of the terms summed, which fp32 bounds by about
 * cols * 2^-24. */
static double err_rel(const float *got, const float *ref, const float *x, const float *y0, int T, int rows, int cols)
{
	double worst = 0;
	for (int t = 0; t < T; t++)
		for (int r = 0; r < rows; r++) {
			double s = y0 ? y0[(size_t)t * rows + r] : 0, mag = fabs(s);
			for (int k = 0; k < cols; k++) {
				double p = (double)ref[(size_t)r * cols + k] * x[(size_t)t * cols + k];
				s += p;
				mag += fabs(p);
			}
			double g = got[(size_t)t * rows + r];
			double e = isfinite(g) ? fabs(g - s) / (mag + 1e-30) : INFINITY;
			if (e > worst) worst = e;
		}
	return worst;
}

static const char *dname[] = {"f32", "f16", "bf16"};

int main(void)
{
	static const int shapes[][2] = {{1, 1}, {3, 7}, {5, 9}, {7, 16}, {13, 17}, {4, 33}, {37, 100}, {131, 1031},
	                                {300, 333}};
	for (int forced = 0; forced < 2; forced++) {
		wmat_force_c(forced);
		for (int dt = 0; dt < 3; dt++)
			for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
				int rows = shapes[si][0], cols = shapes[si][1], T = 5;
				float *ref;
				wmat w = make((wmat_dtype)dt, rows, cols, &ref);
				float *x = xmalloc((size_t)T * cols * sizeof *x), *y = xmalloc((size_t)T * rows * sizeof *y);
				float *y0 = xmalloc((size_t)T * rows * sizeof *y0);
				for (int i = 0; i < T * cols; i++) x[i] = rnd();
				for (int i = 0; i < T * rows; i++) y0[i] = rnd();
				/* a term left out or counted twice is ~1/cols of the magnitude */
				double tol = 2e-6 * sqrt(cols + 1.0), e;
				char what[160];
				for (int threads = 1; threads <= 3; threads += 2) {
					omp_set_num_threads(threads);
					for (int i = 0; i < rows; i++) y[i] = NAN;
					wmat_gemv(&w, x, y, 0);
					e = err_rel(y, ref, x, NULL, 1, rows, cols);
					snprintf(what, sizeof what, "%s gemv %s %dx%d, %d thread(s): rel err %.2g", wmat_kernel(),
					         dname[dt], rows, cols, threads, e);
					EXPECT(e <= tol, what);

					memcpy(y, y0, (size_t)rows * sizeof *y);
					wmat_gemv(&w, x, y, 1);
					e = err_rel(y, ref, x, y0, 1, rows, cols);
					snprintf(what, sizeof what, "%s gemv += %s %dx%d, %d thread(s): rel err %.2g", wmat_kernel(),
					         dname[dt], rows, cols, threads, e);
					EXPECT(e <= tol, what);

					for (int i = 0; i < T * rows; i++) y[i] = NAN;
					wmat_matmul(&w, x, T, y, 0);
					e = err_rel(y, ref, x, NULL, T, rows, cols);
					snprintf(what, sizeof what, "%s matmul %s T=%d %dx%d, %d thread(s): rel err %.2g",
					         wmat_kernel(), dname[dt], T, rows, cols, threads, e);
					EXPECT(e <= tol, what);

					memcpy(y, y0, (size_t)T * rows * sizeof *y);
					wmat_matmul(&w, x, T, y, 1);
					e = err_rel(y, ref, x, y0, T, rows, cols);
					snprintf(what, sizeof what, "%s matmul += %s T=%d %dx%d, %d thread(s): rel err %.2g",
					         wmat_kernel(), dname[dt], T, rows, cols, threads, e);
					EXPECT(e <= tol, what);
				}
				/* wmat_row: exactly the widened values */
				float *row = xmalloc((size_t)cols * sizeof *row);
				int r = rows / 2, same = 1;
				for (int k = 0; k < cols; k++) row[k] = NAN;
				wmat_row(&w, r, row);
				for (int k = 0; k < cols; k++) same &= row[k] == ref[(size_t)r * cols + k];
				snprintf(what, sizeof what, "wmat_row %s %dx%d row %d: exact", dname[dt], rows, cols, r);
				EXPECT(same, what);
				free(row);
				free(x);
				free(y);
				free(y0);
				unmake(&w, ref);
			}
	}

	/* wmat_gemv_n: three matrices of one x (q, k, v), each its own y, on
	 * one and on three threads (the shares cross matrix boundaries). */
	for (int threads = 1; threads <= 3; threads += 2) {
		wmat_force_c(0);
		omp_set_num_threads(threads);
		int cols = 291, rows[3] = {301, 45, 77};
		float *ref[3], *y[3], *x = xmalloc((size_t)cols * sizeof *x);
		wmat w[3];
		for (int k = 0; k < cols; k++) x[k] = rnd();
		for (int i = 0; i < 3; i++) {
			w[i] = make((wmat_dtype)i, rows[i], cols, &ref[i]);
			y[i] = xmalloc((size_t)rows[i] * sizeof *y[i]);
			for (int r = 0; r < rows[i]; r++) y[i][r] = NAN;
		}
		const wmat *ws[3] = {&w[0], &w[1], &w[2]};
		wmat_gemv_n(3, ws, x, y);
		double e = 0;
		for (int i = 0; i < 3; i++) {
			double ei = err_rel(y[i], ref[i], x, NULL, 1, rows[i], cols);
			if (ei > e) e = ei;
			free(y[i]);
			unmake(&w[i], ref[i]);
		}
		char what[120];
		snprintf(what, sizeof what, "gemv_n over f32, f16, bf16 matrices, %d thread(s): rel err %.2g", threads, e);
		EXPECT(e <= 2e-6 * sqrt(cols + 1.0), what);
		free(x);
	}
	TEST_END();
}
