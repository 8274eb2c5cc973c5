/* ops_cpu.c — the CPU backend (ops_cpu.h): the arithmetic of the Qwen2
 * engine in fp32, each op the loops and BLAS calls it has always been.
 *
 * Attention is computed per (head, document) in query blocks of QB rows,
 * keeping only the log-sum-exp of each row for the backward pass, which
 * recomputes the probabilities: no (T, T) matrix is ever stored, so long
 * packed samples cost O(T) memory per layer beyond the activations.
 */
#include "ops_cpu.h"
#include "kd.h"
#include "mvec.h"
#include "check.h"
#include "optim.h"
#include "wmat.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define QB 64      /* attention query block (rows) */
/* Loops over fewer elements than this run on one thread: waking the team
 * costs more than it saves, and tiny models are all such loops. */
#define PAR(n) ((n) >= (size_t)1 << 16)
#define HEAD_ROWS 128 /* LM-head chunk (tokens): 128 x 151936 floats = 78 MB */

/* ---- tensors ---------------------------------------------------------- */

size_t ops_dtype_size(ops_dtype dt)
{
	return dt == OPS_F32 ? 4 : 2;
}

tensor tensor_view(tensor t, size_t offset, int64_t rows, int64_t cols)
{
	tensor v = {(char *)t.data + offset * ops_dtype_size(t.dtype), t.dtype, rows, cols};
	return v;
}

tensor tensor_rows(tensor t, int64_t r0, int64_t n)
{
	return tensor_view(t, (size_t)r0 * (size_t)t.cols, n, t.cols);
}

#define F(t) ((float *)(t).data)
#define CF(t) ((const float *)(t).data)

/* ---- the context: working space --------------------------------------- */

typedef struct cpu_ctx {
	float *ws;  /* per-thread attention blocks, the LM head's rows and logits */
	size_t cap; /* floats in ws */
} cpu_ctx;

void *ops_cpu_new(void)
{
	return xcalloc(1, sizeof(cpu_ctx));
}

void ops_cpu_free(void *ctx)
{
	cpu_ctx *c = ctx;
	if (!c) return;
	free(c->ws);
	free(c);
}

/* At least n floats of working space; returns borrowed, valid until the
 * next call. Its contents are not kept. */
static float *workspace(void *ctx, size_t n)
{
	cpu_ctx *c = ctx;
	if (c->cap < n) {
		free(c->ws);
		c->ws = xmalloc(n * sizeof(float));
		c->cap = n;
	}
	return c->ws;
}

/* ---- memory ----------------------------------------------------------- */

static tensor cpu_alloc(void *ctx, ops_dtype dt, int64_t rows, int64_t cols)
{
	size_t n = (size_t)rows * (size_t)cols;
	return (tensor){xcalloc(n ? n : 1, ops_dtype_size(dt)), dt, rows, cols};
}

static void cpu_free(void *ctx, tensor t)
{
	free(t.data);
}

static tensor cpu_from_host(void *ctx, void *p, ops_dtype dt, int64_t rows, int64_t cols)
{
	return (tensor){p, dt, rows, cols};
}

static void cpu_forget(void *ctx, tensor t)
{
}

static void cpu_upload(void *ctx, tensor dst, const void *src)
{
	if (dst.data != src) memcpy(dst.data, src, tensor_numel(dst) * ops_dtype_size(dst.dtype));
}

static void cpu_download(void *ctx, void *dst, tensor src)
{
	if (dst != src.data) memcpy(dst, src.data, tensor_numel(src) * ops_dtype_size(src.dtype));
}

static void *cpu_map(void *ctx, tensor t)
{
	return t.data;
}

static void cpu_unmap(void *ctx, tensor t, void *host, int dirty)
{
}

static void cpu_copy(void *ctx, tensor dst, tensor src)
{
	memcpy(dst.data, src.data, tensor_numel(src) * ops_dtype_size(src.dtype));
}

static void cpu_zero(void *ctx, tensor t)
{
	memset(t.data, 0, tensor_numel(t) * ops_dtype_size(t.dtype));
}

/* ---- matrix products -------------------------------------------------- */

static void cpu_matmul(void *ctx, tensor c, tensor a, tensor b, int ta, int tb, float alpha, float beta)
{
	int M = (int)c.rows, N = (int)c.cols, K = (int)(ta ? a.rows : a.cols);
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha,
	            CF(a), (int)a.cols, CF(b), (int)b.cols, beta, F(c), N);
}

/* out (T, O) = beta * out + in (T, K) W^T, W (O, K): sgemm, or sgemv for a
 * single row (decoding one token), which this OpenBLAS does not pick by
 * itself for M = 1 and runs about twice as fast. */
static void matmul_wt(float *out, const float *in, const float *W, int T, int K, int O, float beta)
{
	if (T == 1)
		cblas_sgemv(CblasRowMajor, CblasNoTrans, O, K, 1.0f, W, K, in, 1, beta, out, 1);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, O, K, 1.0f, in, K, W, K, beta, out, O);
}

static void cpu_linear_fwd(void *ctx, tensor tout, tensor tin, tensor tW, tensor tb)
{
	float *out = F(tout);
	const float *b = CF(tb);
	int T = (int)tin.rows, K = (int)tin.cols, O = (int)tW.rows;
	matmul_wt(out, CF(tin), CF(tW), T, K, O, 0.0f);
	if (b) {
#pragma omp parallel for if (PAR((size_t)T * O))
		for (int t = 0; t < T; t++)
			for (int o = 0; o < O; o++) out[(size_t)t * O + o] += b[o];
	}
}

static void cpu_linear_bwd(void *ctx, tensor tdin, int accumulate, tensor tdW, tensor tdb, tensor tdout, tensor tin,
                           tensor tW)
{
	float *din = F(tdin), *dW = F(tdW), *db = F(tdb);
	const float *dout = CF(tdout), *in = CF(tin), *W = CF(tW);
	int T = (int)tdout.rows, K = (int)tW.cols, O = (int)tW.rows;
	if (din)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, K, O, 1.0f, dout, O, W, K,
		            accumulate ? 1.0f : 0.0f, din, K);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, K, T, 1.0f, dout, O, in, K, 1.0f, dW, K);
	if (db) {
#pragma omp parallel for if (PAR((size_t)T * O))
		for (int o = 0; o < O; o++) {
			float acc = 0;
			for (int t = 0; t < T; t++) acc += dout[(size_t)t * O + o];
			db[o] += acc;
		}
	}
}

static wmat wmat_of(tensor t)
{
	wmat_dtype dt = t.dtype == OPS_F32 ? WMAT_F32 : t.dtype == OPS_F16 ? WMAT_F16 : WMAT_BF16;
	return (wmat){.data = t.data, .dtype = dt, .rows = (int)t.rows, .cols = (int)t.cols};
}

static void cpu_matmul_w(void *ctx, tensor out, tensor in, tensor W, int accumulate)
{
	wmat w = wmat_of(W);
	wmat_matmul(&w, CF(in), (int)in.rows, F(out), accumulate);
}

/* One pass over the rows of all n for a single token, else one product each. */
static void cpu_matmul_w_n(void *ctx, int n, const tensor *ws, tensor in, const tensor *outs)
{
	wmat w[4];
	const wmat *wp[4];
	float *ys[4];
	for (int i = 0; i < n; i++) {
		w[i] = wmat_of(ws[i]);
		wp[i] = &w[i];
		ys[i] = F(outs[i]);
	}
	if (in.rows == 1) wmat_gemv_n(n, wp, CF(in), ys);
	else
		for (int i = 0; i < n; i++) wmat_matmul(wp[i], CF(in), (int)in.rows, ys[i], 0);
}

static void cpu_add_bias(void *ctx, tensor ty, tensor tb)
{
	float *y = F(ty);
	const float *b = CF(tb);
	int T = (int)ty.rows, O = (int)ty.cols;
	for (int t = 0; t < T; t++)
		for (int o = 0; o < O; o++) y[(size_t)t * O + o] += b[o];
}

/* ---- the layers ------------------------------------------------------- */

static void cpu_embed_fwd(void *ctx, tensor tx, tensor emb, const uint32_t *ids)
{
	float *x = F(tx);
	int T = (int)tx.rows, C = (int)tx.cols;
	if (emb.dtype == OPS_F32) {
		const float *e = CF(emb);
#pragma omp parallel for if (PAR((size_t)T * C))
		for (int t = 0; t < T; t++) memcpy(x + (size_t)t * C, e + (size_t)ids[t] * C, (size_t)C * sizeof(float));
	} else {
		wmat w = wmat_of(emb);
		for (int t = 0; t < T; t++) wmat_row(&w, (int)ids[t], x + (size_t)t * C);
	}
}

static void cpu_embed_bwd(void *ctx, tensor tdemb, tensor tdx, const uint32_t *ids)
{
	float *demb = F(tdemb);
	const float *dx = CF(tdx);
	int T = (int)tdx.rows, C = (int)tdx.cols;
	/* Rows of the embedding can repeat: accumulate per column so threads
	 * never write the same float. */
#pragma omp parallel for if (PAR((size_t)T * C))
	for (int i = 0; i < C; i++)
		for (int t = 0; t < T; t++) demb[(size_t)ids[t] * C + i] += dx[(size_t)t * C + i];
}

static void cpu_rmsnorm_fwd(void *ctx, tensor tout, tensor trstd, tensor tx, tensor tw, float eps)
{
	float *out = F(tout), *rstd = F(trstd);
	const float *x = CF(tx), *w = CF(tw);
	int T = (int)tx.rows, C = (int)tx.cols;
#pragma omp parallel for if (PAR((size_t)T * C))
	for (int t = 0; t < T; t++) {
		const float *xr = x + (size_t)t * C;
		float *o = out + (size_t)t * C;
		float ss = 0;
		for (int i = 0; i < C; i++) ss += xr[i] * xr[i];
		float r = 1.0f / sqrtf(ss / C + eps);
		rstd[t] = r;
		for (int i = 0; i < C; i++) o[i] = w[i] * (xr[i] * r);
	}
}

static void cpu_rmsnorm_bwd(void *ctx, tensor tdx, tensor tdw, tensor tdy, tensor tx, tensor trstd, tensor tw)
{
	float *dx = F(tdx), *dw = F(tdw);
	const float *dy = CF(tdy), *x = CF(tx), *rstd = CF(trstd), *w = CF(tw);
	int T = (int)tx.rows, C = (int)tx.cols;
#pragma omp parallel for if (PAR((size_t)T * C))
	for (int t = 0; t < T; t++) {
		const float *xr = x + (size_t)t * C, *g = dy + (size_t)t * C;
		float *d = dx + (size_t)t * C, r = rstd[t];
		float dot = 0;
		for (int i = 0; i < C; i++) dot += g[i] * w[i] * xr[i];
		float k = dot * r * r * r / C;
		for (int i = 0; i < C; i++) d[i] += g[i] * w[i] * r - xr[i] * k;
	}
#pragma omp parallel for if (PAR((size_t)T * C))
	for (int i = 0; i < C; i++) {
		float acc = 0;
		for (int t = 0; t < T; t++) acc += dy[(size_t)t * C + i] * x[(size_t)t * C + i] * rstd[t];
		dw[i] += acc;
	}
}

/* The rotary inverse frequencies, then the tables. transformers computes
 * them and the angles in fp32; so do we, so long positions round the same
 * way. */
void ops_rope_host(float *cs, float *sn, const int *pos, int T, int head_dim, double theta)
{
	int half = head_dim / 2;
	float *inv = xmalloc((size_t)half * sizeof *inv);
	for (int i = 0; i < half; i++) inv[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)head_dim);
	for (int t = 0; t < T; t++)
		for (int i = 0; i < half; i++) {
			float a = (float)pos[t] * inv[i];
			cs[(size_t)t * half + i] = (float)cos((double)a);
			sn[(size_t)t * half + i] = (float)sin((double)a);
		}
	free(inv);
}

static void cpu_rope_tables(void *ctx, tensor tcos, tensor tsin, const int *pos, int head_dim, double theta)
{
	ops_rope_host(F(tcos), F(tsin), pos, (int)tcos.rows, head_dim, theta);
}

/* The transpose of a rotation is the opposite rotation. */
static void cpu_rope(void *ctx, tensor tx, tensor tcos, tensor tsin, int nh, int inverse)
{
	float *x = F(tx);
	const float *cos_ = CF(tcos), *sin_ = CF(tsin);
	int T = (int)tx.rows, D = (int)tx.cols / nh, half = D / 2;
#pragma omp parallel for if (PAR((size_t)T * nh * D))
	for (int t = 0; t < T; t++)
		for (int h = 0; h < nh; h++) {
			float *v = x + ((size_t)t * nh + h) * D;
			const float *cs = cos_ + (size_t)t * half, *sn = sin_ + (size_t)t * half;
			for (int i = 0; i < half; i++) {
				float a = v[i], b2 = v[i + half], sgn = inverse ? -sn[i] : sn[i];
				v[i] = a * cs[i] - b2 * sgn;
				v[i + half] = b2 * cs[i] + a * sgn;
			}
		}
}

static void cpu_swiglu_fwd(void *ctx, tensor tact, tensor tgate, tensor tup)
{
	float *act = F(tact);
	const float *gate = CF(tgate), *up = CF(tup);
	size_t n = tensor_numel(tgate);
#pragma omp parallel for if (PAR(n))
	for (size_t i = 0; i < n; i++) {
		float g = gate[i];
		act[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

static void cpu_swiglu_bwd(void *ctx, tensor tdgate, tensor tdup, tensor tdact, tensor tgate, tensor tup)
{
	float *dgate = F(tdgate), *dup = F(tdup);
	const float *dact = CF(tdact), *gate = CF(tgate), *up = CF(tup);
	size_t n = tensor_numel(tgate);
#pragma omp parallel for if (PAR(n))
	for (size_t i = 0; i < n; i++) {
		float g = gate[i], sig = 1.0f / (1.0f + expf(-g)), da = dact[i];
		dup[i] = da * g * sig;
		dgate[i] = da * up[i] * sig * (1.0f + g * (1.0f - sig));
	}
}

/* Each document's first token. Returns owned. */
static int *doc_starts(const ops_docs *b)
{
	int *start = xmalloc((size_t)b->n_docs * sizeof *start);
	for (int d = 0, o = 0; d < b->n_docs; o += b->doc_len[d], d++) start[d] = o;
	return start;
}

static void cpu_attn_fwd(void *ctx, tensor tout, tensor tlse, tensor tq, tensor tk, tensor tv, const ops_docs *b, int H,
                         int KV)
{
	const float *q = CF(tq), *k = CF(tk), *v = CF(tv);
	float *out = F(tout), *lse = F(tlse);
	int T = b->n_tokens, D = (int)tq.cols / H, group = H / KV;
	int QS = H * D, KS = KV * D;
	float scale = 1.0f / sqrtf((float)D);
	size_t per_thread = (size_t)2 * QB * T;
	float *blk = workspace(ctx, (size_t)omp_get_max_threads() * per_thread);
	int *start = doc_starts(b);
	int items = H * b->n_docs;
#pragma omp parallel for schedule(dynamic)
	for (int it = 0; it < items; it++) {
		int h = it % H, d = it / H, g = h / group, s0 = start[d], len = (int)b->doc_len[d];
		float *S = blk + (size_t)omp_get_thread_num() * per_thread;
		const float *K = k + (size_t)s0 * KS + g * D, *Vv = v + (size_t)s0 * KS + g * D;
		for (int a = 0; a < len; a += QB) {
			int nb = len - a < QB ? len - a : QB, nk = a + nb;
			const float *Q = q + (size_t)(s0 + a) * QS + h * D;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, D, scale, Q, QS, K, KS, 0.0f, S, nk);
			for (int i = 0; i < nb; i++) {
				float *row = S + (size_t)i * nk;
				int last = a + i; /* keys 0..last are visible */
				float mx = -INFINITY;
				for (int j = 0; j <= last; j++) mx = row[j] > mx ? row[j] : mx;
				float sum = 0;
				for (int j = 0; j <= last; j++) sum += (row[j] = expf(row[j] - mx));
				float inv = 1.0f / sum;
				for (int j = 0; j <= last; j++) row[j] *= inv;
				for (int j = last + 1; j < nk; j++) row[j] = 0;
				lse[(size_t)h * T + s0 + a + i] = mx + logf(sum);
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, nk, 1.0f, S, nk, Vv, KS, 0.0f,
			            out + (size_t)(s0 + a) * QS + h * D, QS);
		}
	}
	free(start);
}

static void cpu_attn_bwd(void *ctx, tensor tdq, tensor tdk, tensor tdv, tensor tq, tensor tk, tensor tv, tensor tout,
                         tensor tlse, tensor tdout, const ops_docs *b, int H, int KV)
{
	const float *q = CF(tq), *k = CF(tk), *v = CF(tv), *out = CF(tout), *lse = CF(tlse), *dout = CF(tdout);
	float *dq = F(tdq), *dk = F(tdk), *dv = F(tdv);
	int T = b->n_tokens, D = (int)tq.cols / H, group = H / KV;
	int QS = H * D, KS = KV * D;
	float scale = 1.0f / sqrtf((float)D);
	/* per-head key/value gradients (H, T, D) twice, then the blocks */
	size_t heads = (size_t)H * T * D, per_thread = (size_t)2 * QB * T;
	float *dkh = workspace(ctx, 2 * heads + (size_t)omp_get_max_threads() * per_thread);
	float *dvh = dkh + heads, *blk = dvh + heads;
	int *start = doc_starts(b);
	memset(dkh, 0, heads * sizeof(float));
	memset(dvh, 0, heads * sizeof(float));
	int items = H * b->n_docs;
#pragma omp parallel for schedule(dynamic)
	for (int it = 0; it < items; it++) {
		int h = it % H, d = it / H, g = h / group, s0 = start[d], len = (int)b->doc_len[d];
		float *P = blk + (size_t)omp_get_thread_num() * per_thread;
		float *dP = P + (size_t)QB * T;
		const float *K = k + (size_t)s0 * KS + g * D, *Vv = v + (size_t)s0 * KS + g * D;
		float *dK = dkh + ((size_t)h * T + s0) * D, *dV = dvh + ((size_t)h * T + s0) * D;
		for (int a = 0; a < len; a += QB) {
			int nb = len - a < QB ? len - a : QB, nk = a + nb;
			size_t row0 = (size_t)(s0 + a);
			const float *Q = q + row0 * QS + h * D, *O = out + row0 * QS + h * D;
			const float *dO = dout + row0 * QS + h * D;
			const float *L = lse + (size_t)h * T + row0;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, D, scale, Q, QS, K, KS, 0.0f, P, nk);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, D, 1.0f, dO, QS, Vv, KS, 0.0f, dP, nk);
			for (int i = 0; i < nb; i++) {
				float *p = P + (size_t)i * nk, *dp = dP + (size_t)i * nk;
				int last = a + i;
				float di = 0;
				for (int e = 0; e < D; e++) di += dO[(size_t)i * QS + e] * O[(size_t)i * QS + e];
				for (int j = 0; j <= last; j++) {
					p[j] = expf(p[j] - L[i]);
					dp[j] = p[j] * (dp[j] - di);
				}
				for (int j = last + 1; j < nk; j++) p[j] = dp[j] = 0;
			}
			/* dQ = dS K * scale; dK += dS^T Q * scale; dV += P^T dO */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, nk, scale, dP, nk, K, KS, 0.0f,
			            dq + row0 * QS + h * D, QS);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nb, scale, dP, nk, Q, QS, 1.0f, dK, D);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nb, 1.0f, P, nk, dO, QS, 1.0f, dV, D);
		}
	}
	/* Sum the heads of each key/value group. */
#pragma omp parallel for if (PAR((size_t)T * KS * group))
	for (int t = 0; t < T; t++)
		for (int g = 0; g < KV; g++)
			for (int e = 0; e < D; e++) {
				float ak = 0, av = 0;
				for (int h = g * group; h < (g + 1) * group; h++) {
					ak += dkh[((size_t)h * T + t) * D + e];
					av += dvh[((size_t)h * T + t) * D + e];
				}
				dk[(size_t)t * KS + g * D + e] = ak;
				dv[(size_t)t * KS + g * D + e] = av;
			}
	free(start);
}

/* One new token's attention for the group of query heads sharing one key
 * and value head: q (group, D), K and V (n, D) at a stride of ld floats
 * (the cache's rows), out (group, D) at a stride of out_ld, S (group, n)
 * scratch. The group's queries see each cached key while it is in cache;
 * the weighted sum of values runs 16 columns at a time in registers
 * rather than through out. An AVX2 clone is picked at run time. */
__attribute__((target_clones("avx2", "default")))
static void attend_decode(const float *q, const float *K, const float *V, int ld, int n, int D, int group,
                          float scale, float *S, float *out, int out_ld)
{
	for (int j = 0; j < n; j++) {
		const float *kr = K + (size_t)j * ld;
		for (int h = 0; h < group; h++) {
			const float *qh = q + (size_t)h * D;
			float d = 0;
#pragma omp simd reduction(+ : d)
			for (int e = 0; e < D; e++) d += qh[e] * kr[e];
			S[(size_t)h * n + j] = d * scale;
		}
	}
	for (int h = 0; h < group; h++) {
		float *row = S + (size_t)h * n, mx = -INFINITY, sum = 0;
#pragma omp simd reduction(max : mx)
		for (int j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
#pragma omp simd reduction(+ : sum)
		for (int j = 0; j < n; j++) sum += (row[j] = expf(row[j] - mx));
		float inv = 1.0f / sum, *o = out + (size_t)h * out_ld;
		int e0 = 0;
		for (; e0 + 16 <= D; e0 += 16) {
			float acc[16] = {0};
			for (int j = 0; j < n; j++) {
				const float *vr = V + (size_t)j * ld + e0;
				float p = row[j];
#pragma omp simd
				for (int e = 0; e < 16; e++) acc[e] += p * vr[e];
			}
			for (int e = 0; e < 16; e++) o[e0 + e] = acc[e] * inv;
		}
		for (int e = e0; e < D; e++) {
			float a = 0;
			for (int j = 0; j < n; j++) a += row[j] * V[(size_t)j * ld + e];
			o[e] = a * inv;
		}
	}
}

static void cpu_attn_cached(void *ctx, tensor tout, tensor tq, const ops_kvseq *segs, int nseg, int H, int KV)
{
	const float *q = CF(tq);
	float *att = F(tout);
	int T = (int)tq.rows, D = (int)tq.cols / H, QD = H * D, KD = KV * D, group = H / KV, maxk = 0;
	for (int i = 0; i < nseg; i++)
		if (segs[i].len + segs[i].n > maxk) maxk = segs[i].len + segs[i].n;
	float scale = 1.0f / sqrtf((float)D);
	int threads = omp_get_max_threads(), rows_s = QB > group ? QB : group;
	float *S = workspace(ctx, (size_t)threads * rows_s * maxk);
	if (T == nseg) { /* decoding: every segment one token */
		/* one item a (sequence, key/value head): its group of queries */
		long work = 0;
		for (int i = 0; i < nseg; i++) work += (long)(segs[i].len + 1) * QD;
#pragma omp parallel for schedule(dynamic) if (PAR((size_t)work) && nseg * KV > 1)
		for (int it = 0; it < nseg * KV; it++) {
			int si = it / KV, kv = it % KV;
			const ops_kvseq *kc = &segs[si];
			size_t lo = (size_t)kv * D;
			attend_decode(q + (size_t)si * QD + (size_t)kv * group * D, CF(kc->k) + lo, CF(kc->v) + lo, KD,
			              kc->len + 1, D, group, scale, S + (size_t)omp_get_thread_num() * rows_s * maxk,
			              att + (size_t)si * QD + (size_t)kv * group * D, D);
		}
		return;
	}
#pragma omp parallel for schedule(dynamic)
	for (int it = 0; it < nseg * H; it++) {
		int si = it / H, hd = it % H, gi = hd / group, n = segs[si].n, p0 = segs[si].len;
		const float *K = CF(segs[si].k) + gi * D;
		const float *V = CF(segs[si].v) + gi * D;
		float *Sb = S + (size_t)omp_get_thread_num() * rows_s * maxk;
		for (int a = 0; a < n; a += QB) {
			int nb = n - a < QB ? n - a : QB, nk = p0 + a + nb;
			const float *Q = q + (size_t)(segs[si].start + a) * QD + hd * D;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, D, scale, Q, QD, K, KD, 0.0f, Sb, nk);
			for (int i = 0; i < nb; i++) {
				float *row = Sb + (size_t)i * nk;
				int last = p0 + a + i;
				float mxv = -INFINITY, sum = 0;
				for (int j = 0; j <= last; j++) mxv = row[j] > mxv ? row[j] : mxv;
				for (int j = 0; j <= last; j++) sum += (row[j] = expf(row[j] - mxv));
				for (int j = 0; j <= last; j++) row[j] /= sum;
				for (int j = last + 1; j < nk; j++) row[j] = 0;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, nk, 1.0f, Sb, nk, V, KD, 0.0f,
			            att + (size_t)(segs[si].start + a) * QD + hd * D, QD);
		}
	}
}

/* HEAD_ROWS rows at a time: the logits of a chunk become their own
 * gradient in place. */
static double cpu_lmhead_ce(void *ctx, tensor tdh, tensor tdW, tensor th, tensor tW, const int *row, const int *tgt,
                            int n, float scale, ops_soft *soft)
{
	float *dh = tdh.data ? F(tdh) : NULL, *dW = tdW.data ? F(tdW) : NULL;
	const float *hf = CF(th), *W = CF(tW);
	int C = (int)th.cols, V = (int)tW.rows, grad = dh && dW;
	float *head_h = workspace(ctx, (size_t)HEAD_ROWS * (2 * (size_t)C + V));
	float *head_g = head_h + (size_t)HEAD_ROWS * C, *logits = head_g + (size_t)HEAD_ROWS * C;
	double loss = 0;
	for (int r0 = 0; r0 < n; r0 += HEAD_ROWS) {
		int R = n - r0 < HEAD_ROWS ? n - r0 : HEAD_ROWS;
		for (int i = 0; i < R; i++)
			memcpy(head_h + (size_t)i * C, hf + (size_t)row[r0 + i] * C, (size_t)C * sizeof(float));
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, V, C, 1.0f, head_h, C, W, C, 0.0f, logits, V);
		double part = 0, ce = 0, kd = 0;
#pragma omp parallel for reduction(+ : part, ce, kd)
		for (int i = 0; i < R; i++) {
			float *z = logits + (size_t)i * V;
			int32_t sr = soft ? soft->row[r0 + i] : -1;
			if (sr >= 0) {
				double c1, k1;
				part += kd_row(soft->kd, z, V, tgt[r0 + i], soft->k, soft->id + (size_t)sr * soft->k,
					       soft->lp + (size_t)sr * soft->k, scale, grad, &c1, &k1);
				ce += c1;
				kd += k1;
				continue;
			}
			float mx = -INFINITY, zt = z[tgt[r0 + i]];
#pragma omp simd reduction(max : mx)
			for (int j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx;
			float sum = 0;
#pragma omp simd reduction(+ : sum)
			for (int j = 0; j < V; j++) sum += (z[j] = expf(z[j] - mx));
			double row_ce = mx + logf(sum) - zt;
			part += row_ce;
			ce += row_ce;
			if (!grad) continue;
			float k = scale / sum;
#pragma omp simd
			for (int j = 0; j < V; j++) z[j] *= k;
			z[tgt[r0 + i]] -= scale;
		}
		loss += part;
		if (soft) soft->ce += ce, soft->kd_sum += kd;
		if (!grad) continue;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, C, V, 1.0f, logits, V, W, C, 0.0f, head_g, C);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, R, 1.0f, logits, V, head_h, C, 1.0f, dW, C);
		for (int i = 0; i < R; i++) {
			float *d = dh + (size_t)row[r0 + i] * C;
			const float *g = head_g + (size_t)i * C;
			for (int e = 0; e < C; e++) d[e] += g[e];
		}
	}
	return loss;
}

/* ---- the update ------------------------------------------------------- */

static double cpu_grad_norm(void *ctx, tensor g)
{
	return optim_grad_norm(CF(g), tensor_numel(g));
}

static double cpu_clip(void *ctx, tensor g, double max_norm)
{
	return optim_clip(F(g), tensor_numel(g), max_norm);
}

static void cpu_scale(void *ctx, tensor g, float k)
{
	optim_scale(F(g), tensor_numel(g), k);
}

static void cpu_adamw(void *ctx, tensor p, tensor g, tensor m, tensor v, long t, const adamw_hparams *h, int decay)
{
	adamw_update(F(p), CF(g), F(m), F(v), tensor_numel(p), t, h, decay);
}

/* ---- the table -------------------------------------------------------- */

const ops ops_cpu = {
	.name = "cpu",
	.act = OPS_F32,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.from_host = cpu_from_host,
	.forget = cpu_forget,
	.upload = cpu_upload,
	.download = cpu_download,
	.map = cpu_map,
	.unmap = cpu_unmap,
	.copy = cpu_copy,
	.zero = cpu_zero,
	.matmul = cpu_matmul,
	.linear_fwd = cpu_linear_fwd,
	.linear_bwd = cpu_linear_bwd,
	.matmul_w = cpu_matmul_w,
	.matmul_w_n = cpu_matmul_w_n,
	.add_bias = cpu_add_bias,
	.embed_fwd = cpu_embed_fwd,
	.embed_bwd = cpu_embed_bwd,
	.rmsnorm_fwd = cpu_rmsnorm_fwd,
	.rmsnorm_bwd = cpu_rmsnorm_bwd,
	.rope_tables = cpu_rope_tables,
	.rope = cpu_rope,
	.swiglu_fwd = cpu_swiglu_fwd,
	.swiglu_bwd = cpu_swiglu_bwd,
	.attn_fwd = cpu_attn_fwd,
	.attn_bwd = cpu_attn_bwd,
	.attn_cached = cpu_attn_cached,
	.lmhead_ce = cpu_lmhead_ce,
	.grad_norm = cpu_grad_norm,
	.clip = cpu_clip,
	.scale = cpu_scale,
	.adamw = cpu_adamw,
};
