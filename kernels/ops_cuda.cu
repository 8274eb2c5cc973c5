/* ops_cuda.cu — the CUDA backend of lib/ops.h (kernels/ops_cuda.h).
 *
 * Dtypes: the engine (lib/forward.c) allocates activations in act = bf16
 * and the statistics, rotary tables and the residual's gradient in fp32;
 * the weights it computes with are the bf16 compute copy of the fp32
 * masters, refreshed after each update; gradients and moments are fp32.
 * Each op checks the dtypes it is given and casts where a product needs
 * bf16 operands (the residual's fp32 gradient, before the products of a
 * linear layer's backward pass), as autocast does in PyTorch.
 *
 * Matrix products: row-major C (M, N) = alpha op(A) op(B) + beta C with A
 * and B bf16, C bf16 or fp32, fp32 accumulation. On the GPU, cuBLASLt
 * (column-major: it computes C^T = op(B)^T op(A)^T, so the operands swap),
 * the bias fused as its epilogue, the plan of each shape cached. In the
 * CPU runtime build, OpenBLAS's sgemm on the bf16 values widened to fp32
 * (products of two bf16 are exact in fp32; the sums are fp32 as on the
 * tensor cores, in another order), the bias added before the one rounding.
 *
 * The LM head and cross-entropy go HEAD_ROWS target rows at a time: their
 * hidden rows gathered (bf16), the logits (R, V) fp32 from one product,
 * the cross-entropy kernel turning them into scale * (softmax - onehot)
 * in place, rounded to bf16 for the two products of the backward pass;
 * the hidden rows' gradient scattered back. 512 rows at V = 151,936 is
 * 311 MB of fp32 logits plus 156 MB in bf16, and each of the three
 * products is then 2 * 512 * 896 * 151,936 = 139 GFLOP, long enough to
 * run the tensor cores near their peak at the 0.5B shape (V / C = 170).
 *
 * Host arrays the ops are given (token ids, document lengths, target
 * rows) go to the device in working buffers on the context's stream.
 * Every call that returns data to the host synchronises the stream; the
 * others only enqueue. A CUDA, cuBLASLt or kernel launch error ends the
 * process with the call's name and CUDA's message (exit 1): there is no
 * state to recover a step from.
 *
 * In the CPU runtime build the working buffers are reallocated at their
 * exact size and filled with NaN on every use, so that ASan sees an
 * overrun and a result that reads what it did not write is NaN.
 */
#include "simt.h"
#include "kernels.h"
#include "ops_cuda.h"

extern "C" {
#include "../lib/kd.h"
#include "../lib/optim.h"
}

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifdef __CUDACC__
#ifdef DS_CUDNN
#include "attn_cudnn.h"
#endif
#include <cublasLt.h>
#else
#include <cblas.h>
#endif

namespace {

enum { HEAD_ROWS = 512, GEMM_PLANS = 96 };
const size_t LT_WORKSPACE = (size_t)32 << 20;

/* The context's working buffers, one per use. */
enum slot {
	S_IDS, S_ROWS, S_TGT, S_DOCS, S_A16, S_B16, S_HROWS, S_GROWS, S_LOGITS, S_LOG16, S_LOSS, S_RMS, S_ATT,
	S_NORM, S_SROW, S_SID, S_SLP, S_CE, S_KD, S_N
};

#ifdef __CUDACC__
/* A cuBLASLt plan for one shape of product. */
struct plan {
	int M, N, K, ta, tb, ct, bias;
	cublasLtMatmulDesc_t op;
	cublasLtMatrixLayout_t la, lb, lc;
	cublasLtMatmulAlgo_t algo;
};
#endif

struct cuda_ctx {
	cudaStream_t s;
	void *buf[S_N];
	size_t cap[S_N];
	size_t held, peak; /* device bytes of tensors and buffers */
	char name[256];
#ifdef __CUDACC__
	cublasLtHandle_t lt;
	void *ws;
	plan plans[GEMM_PLANS];
	int n_plans;
#endif
#ifdef DS_CUDNN
	attn_cudnn *dnn; /* cuDNN's attention; NULL: the SIMT kernel's */
#endif
};

[[noreturn]] void die(const char *what, const char *why)
{
	fprintf(stderr, "ds: CUDA backend: %s: %s\n", what, why);
	exit(1);
}

void ck(cudaError_t e, const char *what)
{
	if (e != cudaSuccess) die(what, cudaGetErrorString(e));
}

void want(tensor t, ops_dtype dt, const char *op, const char *arg)
{
	static const char *const names[] = {"fp32", "fp16", "bf16"};
	if (t.dtype != dt) {
		char m[128];
		snprintf(m, sizeof m, "%s is %s, this backend wants %s", arg, names[t.dtype], names[dt]);
		die(op, m);
	}
}

size_t bytes_of(tensor t)
{
	return tensor_numel(t) * ops_dtype_size(t.dtype);
}

void *dev_alloc(cuda_ctx *c, size_t n)
{
	void *p = NULL;
	if (cudaMalloc(&p, n ? n : 1) != cudaSuccess) {
		char m[160];
		snprintf(m, sizeof m, "out of device memory: %.1f MiB more wanted, %.1f MiB held by ds", n / 1048576.0,
			 c->held / 1048576.0);
		die("cudaMalloc", m);
	}
	c->held += n;
	if (c->held > c->peak) c->peak = c->held;
	return p;
}

void dev_free(cuda_ctx *c, void *p, size_t n)
{
	if (!p) return;
	ck(cudaFree(p), "cudaFree");
	c->held -= n;
}

/* Working buffer `k` of at least n bytes; its contents are not kept. */
void *scratch(cuda_ctx *c, slot k, size_t n)
{
#ifdef __CUDACC__
	if (c->cap[k] < n) {
		dev_free(c, c->buf[k], c->cap[k]);
		c->buf[k] = dev_alloc(c, n);
		c->cap[k] = n;
	}
#else
	if (c->cap[k] != n) {
		dev_free(c, c->buf[k], c->cap[k]);
		c->buf[k] = dev_alloc(c, n);
		c->cap[k] = n;
	}
	memset(c->buf[k], 0xff, n);
#endif
	return c->buf[k];
}

/* Host data into working buffer k. */
template <class T> T *to_dev(cuda_ctx *c, slot k, const T *h, size_t n)
{
	T *d = static_cast<T *>(scratch(c, k, n * sizeof(T)));
	ck(cudaMemcpyAsync(d, h, n * sizeof(T), cudaMemcpyHostToDevice, c->s), "cudaMemcpyAsync (to the device)");
	ck(cudaStreamSynchronize(c->s), "cudaStreamSynchronize"); /* h is the caller's, pageable */
	return d;
}

void kk(int rc, const char *kernel)
{
	if (rc != 0) die(kernel, cudaGetErrorString((cudaError_t)rc));
}

bf16 *B16(tensor t) { return static_cast<bf16 *>(t.data); }
float *F32(tensor t) { return static_cast<float *>(t.data); }

/* t as bf16: itself, or rounded into working buffer k. */
tensor as16(cuda_ctx *c, tensor t, slot k)
{
	if (t.dtype == OPS_BF16) return t;
	want(t, OPS_F32, "a product's operand", "it");
	tensor r = {scratch(c, k, tensor_numel(t) * 2), OPS_BF16, t.rows, t.cols};
	kk(kern_to_bf16(B16(r), F32(t), tensor_numel(t), c->s), "kern_to_bf16");
	return r;
}

/* ---- matrix products ----------------------------------------------------- */

#ifdef __CUDACC__
void lt(cublasStatus_t st, const char *what)
{
	if (st != CUBLAS_STATUS_SUCCESS) die(what, cublasLtGetStatusString(st));
}

plan *plan_for(cuda_ctx *c, int M, int N, int K, int ta, int tb, ops_dtype ctype, int bias)
{
	for (int i = 0; i < c->n_plans; i++) {
		plan *p = &c->plans[i];
		if (p->M == M && p->N == N && p->K == K && p->ta == ta && p->tb == tb && p->ct == (int)ctype &&
		    p->bias == bias)
			return p;
	}
	if (c->n_plans == GEMM_PLANS) { /* shapes beyond the cache: start it again */
		for (int i = 0; i < c->n_plans; i++) {
			plan *p = &c->plans[i];
			cublasLtMatmulDescDestroy(p->op);
			cublasLtMatrixLayoutDestroy(p->la);
			cublasLtMatrixLayoutDestroy(p->lb);
			cublasLtMatrixLayoutDestroy(p->lc);
		}
		c->n_plans = 0;
	}
	plan *p = &c->plans[c->n_plans];
	*p = plan{M, N, K, ta, tb, (int)ctype, bias, NULL, NULL, NULL, NULL, {}};
	lt(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
	/* column-major: D^T (N, M) = op(B)^T (N, K) op(A)^T (K, M) */
	cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
	lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "TRANSA");
	lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "TRANSB");
	if (bias) {
		cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BIAS;
		lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e), "EPILOGUE");
	}
	int brows = tb ? N : K, bcols = tb ? K : N, arows = ta ? K : M, acols = ta ? M : K;
	lt(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, bcols, brows, bcols), "cublasLtMatrixLayoutCreate");
	lt(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, acols, arows, acols), "cublasLtMatrixLayoutCreate");
	lt(cublasLtMatrixLayoutCreate(&p->lc, ctype == OPS_BF16 ? CUDA_R_16BF : CUDA_R_32F, N, M, N),
	   "cublasLtMatrixLayoutCreate");
	cublasLtMatmulPreference_t pref;
	lt(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
	size_t wsb = LT_WORKSPACE;
	lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb),
	   "MAX_WORKSPACE_BYTES");
	cublasLtMatmulHeuristicResult_t res;
	int got = 0;
	lt(cublasLtMatmulAlgoGetHeuristic(c->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &got),
	   "cublasLtMatmulAlgoGetHeuristic");
	cublasLtMatmulPreferenceDestroy(pref);
	if (got < 1) die("cublasLtMatmulAlgoGetHeuristic", "no algorithm for this product");
	p->algo = res.algo;
	c->n_plans++;
	return p;
}
#endif

/* c = alpha op(a) op(b) + beta c (+ bias per column), a and b bf16. */
void gemm(cuda_ctx *cx, tensor c, tensor a, tensor b, int ta, int tb, float alpha, float beta, tensor bias)
{
	want(a, OPS_BF16, "matmul", "A");
	want(b, OPS_BF16, "matmul", "B");
	int M = (int)c.rows, N = (int)c.cols, K = (int)(ta ? a.rows : a.cols);
	if ((ta ? a.cols : a.rows) != M || (tb ? b.rows : b.cols) != N || (tb ? b.cols : b.rows) != K)
		die("matmul", "the shapes do not chain");
	if (bias.data && (bias.dtype != c.dtype || tensor_numel(bias) != (size_t)N))
		die("matmul", "the bias is not one value per output column of the output's dtype");
	if (M == 0 || N == 0) return;
#ifdef __CUDACC__
	plan *p = plan_for(cx, M, N, K, ta, tb, c.dtype, bias.data != NULL);
	if (bias.data)
		lt(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias.data,
						  sizeof bias.data),
		   "BIAS_POINTER");
	lt(cublasLtMatmul(cx->lt, p->op, &alpha, b.data, p->la, a.data, p->lb, &beta, c.data, p->lc, c.data, p->lc,
			  &p->algo, cx->ws, LT_WORKSPACE, cx->s),
	   "cublasLtMatmul");
#else
	size_t na = tensor_numel(a), nb = tensor_numel(b), nc = tensor_numel(c);
	float *fa = (float *)malloc(na * 4), *fb = (float *)malloc(nb * 4), *fc = (float *)malloc(nc * 4);
	if (!fa || !fb || !fc) die("matmul", "out of memory");
	for (size_t i = 0; i < na; i++) fa[i] = __bfloat162float(B16(a)[i]);
	for (size_t i = 0; i < nb; i++) fb[i] = __bfloat162float(B16(b)[i]);
	for (size_t i = 0; i < nc; i++)
		fc[i] = beta == 0 ? 0.0f : c.dtype == OPS_BF16 ? __bfloat162float(B16(c)[i]) : F32(c)[i];
	if (K > 0)
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha,
			    fa, (int)a.cols, fb, (int)b.cols, beta, fc, N);
	else
		for (size_t i = 0; i < nc; i++) fc[i] *= beta;
	if (bias.data)
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++)
				fc[(size_t)i * N + j] += bias.dtype == OPS_BF16 ? __bfloat162float(B16(bias)[j]) : F32(bias)[j];
	for (size_t i = 0; i < nc; i++)
		if (c.dtype == OPS_BF16) B16(c)[i] = __float2bfloat16(fc[i]);
		else F32(c)[i] = fc[i];
	free(fa), free(fb), free(fc);
#endif
}

cuda_ctx *CTX(void *ctx) { return static_cast<cuda_ctx *>(ctx); }

/* ---- memory -------------------------------------------------------------- */

tensor cu_alloc(void *ctx, ops_dtype dt, int64_t rows, int64_t cols)
{
	cuda_ctx *c = CTX(ctx);
	tensor t = {NULL, dt, rows, cols};
	t.data = dev_alloc(c, bytes_of(t));
	ck(cudaMemsetAsync(t.data, 0, bytes_of(t), c->s), "cudaMemsetAsync");
	return t;
}

void cu_free(void *ctx, tensor t)
{
	dev_free(CTX(ctx), t.data, bytes_of(t));
}

void cu_upload(void *ctx, tensor dst, const void *src)
{
	cuda_ctx *c = CTX(ctx);
	ck(cudaMemcpyAsync(dst.data, src, bytes_of(dst), cudaMemcpyHostToDevice, c->s), "cudaMemcpyAsync (upload)");
	ck(cudaStreamSynchronize(c->s), "cudaStreamSynchronize");
}

void cu_download(void *ctx, void *dst, tensor src)
{
	cuda_ctx *c = CTX(ctx);
	ck(cudaMemcpyAsync(dst, src.data, bytes_of(src), cudaMemcpyDeviceToHost, c->s), "cudaMemcpyAsync (download)");
	ck(cudaStreamSynchronize(c->s), "cudaStreamSynchronize");
}

tensor cu_from_host(void *ctx, void *p, ops_dtype dt, int64_t rows, int64_t cols)
{
	tensor t = cu_alloc(ctx, dt, rows, cols);
	cu_upload(ctx, t, p);
	return t;
}

void *cu_map(void *ctx, tensor t)
{
	void *h = malloc(bytes_of(t) ? bytes_of(t) : 1);
	if (!h) die("map", "out of host memory");
	cu_download(ctx, h, t);
	return h;
}

void cu_unmap(void *ctx, tensor t, void *host, int dirty)
{
	if (dirty) cu_upload(ctx, t, host);
	free(host);
}

void cu_copy(void *ctx, tensor dst, tensor src)
{
	cuda_ctx *c = CTX(ctx);
	size_t n = tensor_numel(src);
	if (tensor_numel(dst) != n) die("copy", "the tensors differ in size");
	if (dst.dtype == src.dtype)
		ck(cudaMemcpyAsync(dst.data, src.data, bytes_of(src), cudaMemcpyDeviceToDevice, c->s), "cudaMemcpyAsync");
	else if (dst.dtype == OPS_BF16 && src.dtype == OPS_F32)
		kk(kern_to_bf16(B16(dst), F32(src), n, c->s), "kern_to_bf16");
	else if (dst.dtype == OPS_F32 && src.dtype == OPS_BF16)
		kk(kern_to_f32(F32(dst), B16(src), n, c->s), "kern_to_f32");
	else
		die("copy", "only fp32 <-> bf16 casts");
}

void cu_zero(void *ctx, tensor t)
{
	ck(cudaMemsetAsync(t.data, 0, bytes_of(t), CTX(ctx)->s), "cudaMemsetAsync");
}

/* ---- products ------------------------------------------------------------ */

void cu_matmul(void *ctx, tensor c, tensor a, tensor b, int ta, int tb, float alpha, float beta)
{
	cuda_ctx *cx = CTX(ctx);
	gemm(cx, c, as16(cx, a, S_A16), as16(cx, b, S_B16), ta, tb, alpha, beta, tensor_none());
}

void cu_linear_fwd(void *ctx, tensor out, tensor in, tensor W, tensor b)
{
	cuda_ctx *cx = CTX(ctx);
	gemm(cx, out, as16(cx, in, S_A16), as16(cx, W, S_B16), 0, 1, 1.0f, 0.0f, b);
}

void cu_linear_bwd(void *ctx, tensor din, int accumulate, tensor dW, tensor db, tensor dout, tensor in, tensor W)
{
	cuda_ctx *cx = CTX(ctx);
	tensor d16 = as16(cx, dout, S_A16);
	if (din.data) gemm(cx, din, d16, as16(cx, W, S_B16), 0, 0, 1.0f, accumulate ? 1.0f : 0.0f, tensor_none());
	want(dW, OPS_F32, "linear_bwd", "dW");
	gemm(cx, dW, d16, as16(cx, in, S_B16), 1, 0, 1.0f, 1.0f, tensor_none());
	if (db.data) {
		want(db, OPS_F32, "linear_bwd", "db");
		kk(kern_colsum(F32(db), B16(d16), (int)d16.rows, (int)d16.cols, cx->s), "kern_colsum");
	}
}

[[noreturn]] void cu_no_generation(void)
{
	die("generation", "not on this backend: ds-infer generates on the CPU one");
}

void cu_matmul_w(void *, tensor, tensor, tensor, int) { cu_no_generation(); }
void cu_matmul_w_n(void *, int, const tensor *, tensor, const tensor *) { cu_no_generation(); }
void cu_add_bias(void *, tensor, tensor) { cu_no_generation(); }
void cu_attn_cached(void *, tensor, tensor, const ops_kvseq *, int, int, int) { cu_no_generation(); }

/* ---- the layers ---------------------------------------------------------- */

void cu_embed_fwd(void *ctx, tensor x, tensor emb, const uint32_t *ids)
{
	cuda_ctx *c = CTX(ctx);
	want(x, OPS_BF16, "embed_fwd", "x"), want(emb, OPS_BF16, "embed_fwd", "the table");
	int T = (int)x.rows;
	const uint32_t *d = to_dev(c, S_IDS, ids, (size_t)T);
	kk(kern_embed_fwd(B16(x), B16(emb), d, T, (int)x.cols, c->s), "kern_embed_fwd");
}

void cu_embed_bwd(void *ctx, tensor demb, tensor dx, const uint32_t *ids)
{
	cuda_ctx *c = CTX(ctx);
	want(demb, OPS_F32, "embed_bwd", "demb"), want(dx, OPS_F32, "embed_bwd", "dx");
	int T = (int)dx.rows;
	const uint32_t *d = to_dev(c, S_IDS, ids, (size_t)T);
	kk(kern_embed_bwd(F32(demb), F32(dx), d, T, (int)dx.cols, c->s), "kern_embed_bwd");
}

void cu_rmsnorm_fwd(void *ctx, tensor out, tensor rstd, tensor x, tensor w, float eps)
{
	want(out, OPS_BF16, "rmsnorm_fwd", "out"), want(x, OPS_BF16, "rmsnorm_fwd", "x");
	want(w, OPS_BF16, "rmsnorm_fwd", "w"), want(rstd, OPS_F32, "rmsnorm_fwd", "rstd");
	kk(kern_rmsnorm_fwd(B16(out), F32(rstd), B16(x), B16(w), (int)x.rows, (int)x.cols, eps, CTX(ctx)->s),
	   "kern_rmsnorm_fwd");
}

void cu_rmsnorm_bwd(void *ctx, tensor dx, tensor dw, tensor dy, tensor x, tensor rstd, tensor w)
{
	cuda_ctx *c = CTX(ctx);
	want(dx, OPS_F32, "rmsnorm_bwd", "dx"), want(dw, OPS_F32, "rmsnorm_bwd", "dw");
	want(dy, OPS_BF16, "rmsnorm_bwd", "dy"), want(x, OPS_BF16, "rmsnorm_bwd", "x");
	int T = (int)x.rows, C = (int)x.cols;
	float *s = static_cast<float *>(scratch(c, S_RMS, kern_rmsnorm_bwd_scratch(T, C)));
	kk(kern_rmsnorm_bwd(F32(dx), F32(dw), s, B16(dy), B16(x), F32(rstd), B16(w), T, C, c->s), "kern_rmsnorm_bwd");
}

void cu_rope_tables(void *ctx, tensor cs, tensor sn, const int *pos, int head_dim, double theta)
{
	want(cs, OPS_F32, "rope_tables", "cos"), want(sn, OPS_F32, "rope_tables", "sin");
	size_t n = tensor_numel(cs);
	float *h = static_cast<float *>(malloc(2 * n * sizeof(float) + 1));
	if (!h) die("rope_tables", "out of host memory");
	ops_rope_host(h, h + n, pos, (int)cs.rows, head_dim, theta);
	cu_upload(ctx, cs, h);
	cu_upload(ctx, sn, h + n);
	free(h);
}

void cu_rope(void *ctx, tensor x, tensor cs, tensor sn, int nh, int inverse)
{
	want(x, OPS_BF16, "rope", "x");
	kk(kern_rope(B16(x), F32(cs), F32(sn), (int)x.rows, nh, (int)x.cols / nh, inverse, CTX(ctx)->s), "kern_rope");
}

void cu_swiglu_fwd(void *ctx, tensor act, tensor gate, tensor up)
{
	want(act, OPS_BF16, "swiglu_fwd", "act");
	kk(kern_swiglu_fwd(B16(act), B16(gate), B16(up), tensor_numel(gate), CTX(ctx)->s), "kern_swiglu_fwd");
}

void cu_swiglu_bwd(void *ctx, tensor dgate, tensor dup, tensor dact, tensor gate, tensor up)
{
	want(dgate, OPS_BF16, "swiglu_bwd", "dgate"), want(dact, OPS_BF16, "swiglu_bwd", "dact");
	kk(kern_swiglu_bwd(B16(dgate), B16(dup), B16(dact), B16(gate), B16(up), tensor_numel(gate), CTX(ctx)->s),
	   "kern_swiglu_bwd");
}

/* Each token's document's first token, on the device. */
const int *doc_starts(cuda_ctx *c, const ops_docs *d)
{
	int *h = static_cast<int *>(malloc((size_t)d->n_tokens * sizeof(int) + 1));
	if (!h) die("attention", "out of host memory");
	for (int k = 0, t = 0; k < d->n_docs; k++)
		for (uint32_t i = 0, o = (uint32_t)t; i < d->doc_len[k]; i++) h[t++] = (int)o;
	const int *r = to_dev(c, S_DOCS, h, (size_t)d->n_tokens);
	free(h);
	return r;
}

void cu_attn_fwd(void *ctx, tensor out, tensor lse, tensor q, tensor k, tensor v, const ops_docs *d, int H, int KV)
{
	cuda_ctx *c = CTX(ctx);
	want(q, OPS_BF16, "attn_fwd", "q"), want(out, OPS_BF16, "attn_fwd", "out");
	want(lse, OPS_F32, "attn_fwd", "lse");
	int T = (int)q.rows, D = (int)q.cols / H;
#ifdef DS_CUDNN
	/* cuDNN's stats are (T, H) where the SIMT kernel's are (H, T): the
	 * same floats, read back only by cu_attn_bwd of the same context */
	if (c->dnn) {
		char err[256];
		if (attn_cudnn_fwd(c->dnn, out.data, F32(lse), q.data, k.data, v.data, d->doc_len, d->n_docs, T, H, KV,
				   D, c->s, err, sizeof err) < 0)
			die("cuDNN attention forward", err);
		return;
	}
#endif
	kk(kern_attn_fwd(B16(out), F32(lse), B16(q), B16(k), B16(v), doc_starts(c, d), T, H, KV, D, c->s),
	   "kern_attn_fwd");
}

void cu_attn_bwd(void *ctx, tensor dq, tensor dk, tensor dv, tensor q, tensor k, tensor v, tensor out, tensor lse,
		 tensor dout, const ops_docs *d, int H, int KV)
{
	cuda_ctx *c = CTX(ctx);
	want(dq, OPS_BF16, "attn_bwd", "dq"), want(dout, OPS_BF16, "attn_bwd", "dout");
	int T = (int)q.rows, D = (int)q.cols / H;
#ifdef DS_CUDNN
	if (c->dnn) {
		char err[256];
		if (attn_cudnn_bwd(c->dnn, dq.data, dk.data, dv.data, q.data, k.data, v.data, out.data, F32(lse),
				   dout.data, d->doc_len, d->n_docs, T, H, KV, D, c->s, err, sizeof err) < 0)
			die("cuDNN attention backward", err);
		return;
	}
#endif
	const int *ds = doc_starts(c, d);
	float *s = static_cast<float *>(scratch(c, S_ATT, kern_attn_bwd_scratch(T, H)));
	kk(kern_attn_bwd(B16(dq), B16(dk), B16(dv), s, B16(q), B16(k), B16(v), B16(out), F32(lse), B16(dout), ds, T, H,
			 KV, D, c->s),
	   "kern_attn_bwd");
}

double cu_lmhead_ce(void *ctx, tensor dh, tensor dW, tensor h, tensor W, const int *rows, const int *tgt, int n,
		    float scale, ops_soft *soft)
{
	cuda_ctx *c = CTX(ctx);
	int grad = dh.data && dW.data; /* else the loss alone */
	want(h, OPS_BF16, "lmhead_ce", "h");
	if (grad) want(dh, OPS_BF16, "lmhead_ce", "dh"), want(dW, OPS_F32, "lmhead_ce", "dW");
	if (n <= 0) return 0;
	int C = (int)h.cols, V = (int)W.rows;
	tensor W16 = as16(c, W, S_B16);
	const int *drow = to_dev(c, S_ROWS, rows, (size_t)n), *dtgt = to_dev(c, S_TGT, tgt, (size_t)n);
	float *loss = static_cast<float *>(scratch(c, S_LOSS, (size_t)n * sizeof(float)));
	/* soft labels: each row's row of the tables, the tables (as many rows as the rows that have one) */
	const int *dsrow = NULL;
	const unsigned *dsid = NULL;
	const float *dslp = NULL;
	float *dce = NULL, *dkd = NULL;
	if (soft) {
		int m = 0;
		for (int i = 0; i < n; i++) m = soft->row[i] + 1 > m ? soft->row[i] + 1 : m;
		dsrow = to_dev(c, S_SROW, soft->row, (size_t)n);
		dsid = to_dev(c, S_SID, soft->id, (size_t)(m ? m : 1) * (size_t)soft->k);
		dslp = to_dev(c, S_SLP, soft->lp, (size_t)(m ? m : 1) * (size_t)soft->k);
		dce = static_cast<float *>(scratch(c, S_CE, (size_t)n * sizeof(float)));
		dkd = static_cast<float *>(scratch(c, S_KD, (size_t)n * sizeof(float)));
	}
	int R0 = n < HEAD_ROWS ? n : HEAD_ROWS;
	bf16 *hr = static_cast<bf16 *>(scratch(c, S_HROWS, (size_t)R0 * C * 2));
	float *gr = static_cast<float *>(scratch(c, S_GROWS, (size_t)R0 * C * 4));
	float *lg = static_cast<float *>(scratch(c, S_LOGITS, (size_t)R0 * V * 4));
	bf16 *l16 = static_cast<bf16 *>(scratch(c, S_LOG16, (size_t)R0 * V * 2));
	for (int r0 = 0; r0 < n; r0 += HEAD_ROWS) {
		int R = n - r0 < HEAD_ROWS ? n - r0 : HEAD_ROWS;
		tensor th = {hr, OPS_BF16, R, C}, tg = {gr, OPS_F32, R, C};
		tensor tl = {lg, OPS_F32, R, V}, t16 = {l16, OPS_BF16, R, V};
		kk(kern_gather_rows(hr, B16(h), drow + r0, R, C, c->s), "kern_gather_rows");
		gemm(c, tl, th, W16, 0, 1, 1.0f, 0.0f, tensor_none());
		if (soft) {
			const kd_config *kc = soft->kd;
			kk(kern_ce_kd(lg, loss + r0, dce + r0, dkd + r0, dtgt + r0, dsrow + r0, dsid, dslp, soft->k, R, V,
				      scale, grad, (float)kc->alpha, (float)kc->tau, kc->loss, (float)kc->beta, c->s),
			   "kern_ce_kd");
		} else {
			kk(kern_ce(lg, loss + r0, dtgt + r0, R, V, scale, c->s), "kern_ce");
		}
		if (!grad) continue;
		kk(kern_to_bf16(l16, lg, (size_t)R * V, c->s), "kern_to_bf16");
		gemm(c, tg, t16, W16, 0, 0, 1.0f, 0.0f, tensor_none());
		gemm(c, dW, t16, th, 1, 0, 1.0f, 1.0f, tensor_none());
		kk(kern_scatter_add_rows(B16(dh), gr, drow + r0, R, C, c->s), "kern_scatter_add_rows");
	}
	float *hl = static_cast<float *>(malloc(3 * (size_t)n * sizeof(float)));
	if (!hl) die("lmhead_ce", "out of host memory");
	ck(cudaMemcpyAsync(hl, loss, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost, c->s), "cudaMemcpyAsync");
	if (soft) {
		ck(cudaMemcpyAsync(hl + n, dce, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost, c->s), "cudaMemcpyAsync");
		ck(cudaMemcpyAsync(hl + 2 * n, dkd, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost, c->s), "cudaMemcpyAsync");
	}
	ck(cudaStreamSynchronize(c->s), "cudaStreamSynchronize");
	double sum = 0;
	for (int i = 0; i < n; i++) sum += hl[i];
	for (int i = 0; soft && i < n; i++) soft->ce += hl[n + i], soft->kd_sum += hl[2 * n + i];
	free(hl);
	return sum;
}

/* ---- the update ---------------------------------------------------------- */

double cu_grad_norm(void *ctx, tensor g)
{
	cuda_ctx *c = CTX(ctx);
	want(g, OPS_F32, "grad_norm", "g");
	double *d = static_cast<double *>(scratch(c, S_NORM, sizeof(double) + kern_sumsq_scratch()));
	kk(kern_sumsq(d, d + 1, F32(g), tensor_numel(g), c->s), "kern_sumsq");
	double ss = 0;
	ck(cudaMemcpyAsync(&ss, d, sizeof ss, cudaMemcpyDeviceToHost, c->s), "cudaMemcpyAsync");
	ck(cudaStreamSynchronize(c->s), "cudaStreamSynchronize");
	return sqrt(ss);
}

void cu_scale(void *ctx, tensor g, float k)
{
	kk(kern_scale(F32(g), tensor_numel(g), k, CTX(ctx)->s), "kern_scale");
}

double cu_clip(void *ctx, tensor g, double max_norm)
{
	double norm = cu_grad_norm(ctx, g);
	float k = optim_clip_factor(norm, max_norm);
	if (k != 1.0f) cu_scale(ctx, g, k);
	return norm;
}

void cu_adamw(void *ctx, tensor p, tensor g, tensor m, tensor v, long t, const adamw_hparams *h, int decay)
{
	want(p, OPS_F32, "adamw", "p");
	kern_adamw sc = kern_adamw_scalars(h->lr, h->beta1, h->beta2, h->eps, h->weight_decay, t, decay);
	kk(kern_adamw_step(F32(p), NULL, F32(g), F32(m), F32(v), tensor_numel(p), sc, CTX(ctx)->s), "kern_adamw_step");
}

ops make_table(void)
{
	ops o;
	memset(&o, 0, sizeof o);
#ifdef __CUDACC__
	o.name = "cuda";
#else
	o.name = "cuda (CPU runtime)";
#endif
	o.act = OPS_BF16;
	o.alloc = cu_alloc, o.free = cu_free, o.from_host = cu_from_host, o.forget = cu_free;
	o.upload = cu_upload, o.download = cu_download, o.map = cu_map, o.unmap = cu_unmap;
	o.copy = cu_copy, o.zero = cu_zero;
	o.matmul = cu_matmul, o.linear_fwd = cu_linear_fwd, o.linear_bwd = cu_linear_bwd;
	o.matmul_w = cu_matmul_w, o.matmul_w_n = cu_matmul_w_n, o.add_bias = cu_add_bias;
	o.embed_fwd = cu_embed_fwd, o.embed_bwd = cu_embed_bwd;
	o.rmsnorm_fwd = cu_rmsnorm_fwd, o.rmsnorm_bwd = cu_rmsnorm_bwd;
	o.rope_tables = cu_rope_tables, o.rope = cu_rope;
	o.swiglu_fwd = cu_swiglu_fwd, o.swiglu_bwd = cu_swiglu_bwd;
	o.attn_fwd = cu_attn_fwd, o.attn_bwd = cu_attn_bwd, o.attn_cached = cu_attn_cached;
	o.lmhead_ce = cu_lmhead_ce;
	o.grad_norm = cu_grad_norm, o.clip = cu_clip, o.scale = cu_scale, o.adamw = cu_adamw;
	return o;
}

} // namespace

extern "C" const ops ops_cuda = make_table();

extern "C" int ops_cuda_devices(void)
{
#ifdef __CUDACC__
	int n = 0;
	return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
#else
	return 1;
#endif
}

extern "C" void *ops_cuda_new(int device, char *err, size_t errlen)
{
	cuda_ctx *c = static_cast<cuda_ctx *>(calloc(1, sizeof(cuda_ctx)));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
#ifdef __CUDACC__
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess || n == 0) {
		snprintf(err, errlen, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
		free(c);
		return NULL;
	}
	if (device < 0 || device >= n) {
		snprintf(err, errlen, "CUDA device %d asked for, %d found", device, n);
		free(c);
		return NULL;
	}
	cudaDeviceProp pr;
	if ((e = cudaSetDevice(device)) != cudaSuccess || (e = cudaGetDeviceProperties(&pr, device)) != cudaSuccess ||
	    (e = cudaStreamCreateWithFlags(&c->s, cudaStreamNonBlocking)) != cudaSuccess) {
		snprintf(err, errlen, "CUDA device %d: %s", device, cudaGetErrorString(e));
		free(c);
		return NULL;
	}
	if (pr.major < 8) {
		snprintf(err, errlen, "%s (sm_%d%d) has no bf16 tensor cores: ds-train needs sm_80 or later", pr.name,
			 pr.major, pr.minor);
		free(c);
		return NULL;
	}
	snprintf(c->name, sizeof c->name, "%s", pr.name);
	if (cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) {
		snprintf(err, errlen, "cuBLASLt would not start");
		free(c);
		return NULL;
	}
	c->ws = dev_alloc(c, LT_WORKSPACE);
#ifdef DS_CUDNN
	/* Attention: cuDNN's fused SDPA where it keeps its stats packed (T, H)
	 * in the (H, T) floats the engine holds per layer (sm_90 and later);
	 * the SIMT flash kernel on sm_8x, or when DS_ATTN=simt. */
	const char *want_attn = getenv("DS_ATTN");
	if (!want_attn || strcmp(want_attn, "simt")) {
		char why[256];
		c->dnn = attn_cudnn_new(ATTN_CUDNN_PACKED_LSE, why, sizeof why);
		if (!c->dnn && want_attn && !strcmp(want_attn, "cudnn")) {
			snprintf(err, errlen, "DS_ATTN=cudnn: %s", why);
			ops_cuda_free(c);
			return NULL;
		}
		if (!c->dnn)
			fprintf(stderr, "ds: CUDA backend: cuDNN attention not used (%s): the SIMT kernel computes it\n",
				why);
	}
#endif
#else
	(void)device;
	(void)err;
	(void)errlen;
	snprintf(c->name, sizeof c->name, "the CPU runtime of kernels/simt.h");
#endif
	return c;
}

extern "C" void ops_cuda_free(void *ctx)
{
	cuda_ctx *c = CTX(ctx);
	if (!c) return;
	for (int k = 0; k < S_N; k++) dev_free(c, c->buf[k], c->cap[k]);
#ifdef __CUDACC__
	for (int i = 0; i < c->n_plans; i++) {
		cublasLtMatmulDescDestroy(c->plans[i].op);
		cublasLtMatrixLayoutDestroy(c->plans[i].la);
		cublasLtMatrixLayoutDestroy(c->plans[i].lb);
		cublasLtMatrixLayoutDestroy(c->plans[i].lc);
	}
	dev_free(c, c->ws, LT_WORKSPACE);
	cudaStreamSynchronize(c->s);
#ifdef DS_CUDNN
	attn_cudnn_free(c->dnn);
#endif
	cublasLtDestroy(c->lt);
	cudaStreamDestroy(c->s);
#endif
	free(c);
}

extern "C" size_t ops_cuda_peak_bytes(const void *ctx)
{
	return static_cast<const cuda_ctx *>(ctx)->peak;
}

extern "C" const char *ops_cuda_device_name(const void *ctx)
{
	return static_cast<const cuda_ctx *>(ctx)->name;
}
