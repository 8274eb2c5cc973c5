/* wmat.h — a weight matrix in the dtype it is stored in (fp32, fp16,
 * bf16) and the products generation needs: y = W x for one token (decode)
 * and Y = X W^T for many (prefill), always computed in fp32.
 *
 * Decoding one token at batch 1 reads every weight once and does two
 * flops with each, so it is bound by memory bandwidth: a matrix read as
 * bf16 or fp16 costs half the bytes of one read as fp32. The kernels widen
 * the weights in registers (bf16: a 16-bit shift; fp16: F16C's vcvtph2ps)
 * and accumulate in fp32, several rows at a time so x is loaded once for
 * all of them. An AVX2+FMA+F16C variant is picked at run time
 * (__builtin_cpu_supports); a plain C one gives the same results within
 * fp32 rounding elsewhere. Neither needs the data aligned.
 *
 * Many tokens at once (prefill, a batch of sequences) are compute bound:
 * fp32 goes straight to sgemm; fp16 and bf16 are widened a tile of rows at
 * a time into a per-thread buffer that stays in cache, and each tile goes
 * to sgemm.
 */
#ifndef DS_WMAT_H
#define DS_WMAT_H

#include <stddef.h>

typedef enum { WMAT_F32, WMAT_F16, WMAT_BF16 } wmat_dtype;

typedef struct wmat {
	const void *data; /* (rows, cols) row-major in dtype; borrowed (a view
	                   * into an fp32 table or a mapped safetensors file) */
	wmat_dtype dtype;
	int rows, cols;
} wmat;

/* The bytes one element of dtype takes. */
size_t wmat_elsize(wmat_dtype dtype);

/* out (cols) fp32 = row r of w (an embedding lookup). */
void wmat_row(const wmat *w, int r, float *out);

/* y (rows) = W x (cols), or y += W x when accumulate. Rows are shared out
 * among the OpenMP threads when the matrix is large enough to pay for
 * waking them. */
void wmat_gemv(const wmat *w, const float *x, float *y, int accumulate);

/* n products of one x at once, ys[i] (ws[i]->rows) = ws[i] x (cols; every
 * ws[i] has the same cols): one pass of the threads over the rows of them
 * all (q, k and v; gate and up). */
void wmat_gemv_n(int n, const wmat *const *ws, const float *x, float *const *ys);

/* out (T, rows) = in (T, cols) W^T, or out += ... when accumulate. T == 1
 * is wmat_gemv. */
void wmat_matmul(const wmat *w, const float *in, int T, float *out, int accumulate);

/* Which y = W x kernel runs: "avx2" or "c". wmat_force_c(1) makes every
 * call use the plain C kernels (the unit test compares both). */
const char *wmat_kernel(void);
void wmat_force_c(int on);

#endif
