/* attn_cudnn.cu — causal GQA over packed documents by cuDNN's fused SDPA,
 * through cudnn-frontend's graph API: layouts, stats, buckets and the
 * versions it needs are in attn_cudnn.h.
 *
 * GPU only. The main Makefile compiles every .cu file of kernels/ for the CPU
 * runtime of simt.h as well; there this file is empty (the guard below), as
 * cuDNN has no CPU side. Compiled by mk/cudnn.mk with the frontend's
 * headers on the include path. All of it is host code: nvcc's device
 * passes (one per -gencode) see an empty file too, which saves a minute of
 * parsing the frontend each. Without the frontend's headers on the path
 * (the main Makefile's pattern rule, before it includes mk/cudnn.mk) it is
 * empty as well, and a program calling attn_cudnn_* fails to link.
 */
#if defined(__CUDACC__) && !defined(__CUDA_ARCH__) && __has_include(<cudnn_frontend.h>)

#include "attn_cudnn.h"

#include <cstring> /* before the frontend, which uses std::strlen without it */

#include <cudnn.h>
#include <cudnn_frontend.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace fe = cudnn_frontend;
typedef std::shared_ptr<fe::graph::Tensor_attributes> tensor_ptr;

/* ---- types ------------------------------------------------------------- */

/* The graphs' tensor ids (the variant pack's keys). */
enum : int64_t {
	UID_Q = 1,
	UID_K,
	UID_V,
	UID_O,
	UID_STATS,
	UID_DO,
	UID_DQ,
	UID_DK,
	UID_DV,
	UID_SEQ_Q,
	UID_SEQ_KV,
	UID_OFF_Q,
	UID_OFF_KV,
	UID_OFF_STATS,
};

/* A built graph and the workspace bytes it needs. */
struct attn_graph {
	std::shared_ptr<fe::graph::Graph> g;
	int64_t ws;
};

/* (backward?, T or 0, B, S, H, KV, D) */
typedef std::tuple<int, int, int, int, int, int, int> attn_key;

/* The device copy of the host-made sequence metadata, for B sequences:
 *   seq   (B) int32        each document's length (0 past n_docs)
 *   off_q (B + 1) int64    where sequence b starts in q, out, dq: elements
 *   off_kv (B + 1) int64   the same in k, v, dk, dv
 *   off_st (B + 1) int64   the same in packed stats
 * one buffer, in that order, seq padded to 8 bytes. */
struct attn_meta {
	int32_t *seq;
	int64_t *off_q, *off_kv, *off_st;
};

struct attn_cudnn {
	cudnnHandle_t h = nullptr;
	int sm = 0, packed = 0, deterministic = 0;
	size_t version = 0;
	std::map<attn_key, attn_graph> graphs;
	void *ws = nullptr; /* workspace, ws_bytes */
	size_t ws_bytes = 0;
	void *meta = nullptr; /* attn_meta's buffer, meta_cap bytes */
	size_t meta_cap = 0;
	std::vector<unsigned char> meta_host; /* what meta holds now */
};

/* ---- the pieces -------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int pow2_at_least(int n)
{
	int p = 1;
	while (p < n) p *= 2;
	return p;
}

/* The buckets of attn_cudnn.h: B sequences of at most S rows. */
static int bucket_b(int n_docs) { return pow2_at_least(n_docs < 1 ? 1 : n_docs); }
static int bucket_s(int max_len) { return pow2_at_least(max_len < 64 ? 64 : max_len); }

static size_t meta_seq_bytes(int B) { return ((size_t)B * 4 + 7) / 8 * 8; }

static attn_meta meta_view(void *base, int B)
{
	attn_meta m;
	m.seq = (int32_t *)base;
	m.off_q = (int64_t *)((unsigned char *)base + meta_seq_bytes(B));
	m.off_kv = m.off_q + (B + 1);
	m.off_st = m.off_kv + (B + 1);
	return m;
}

/* Checks the arguments; *B, *S the buckets. */
static int check_args(const uint32_t *doc_len, int n_docs, int T, int H, int KV, int D, int *B, int *S, char *err,
		      size_t errlen)
{
	if (T < 0 || n_docs < 1 || !doc_len) return fail(err, errlen, "T = %d tokens in %d documents", T, n_docs);
	if (KV < 1 || H < KV || H % KV) return fail(err, errlen, "H = %d is not a multiple of KV = %d", H, KV);
	if (D < 8 || D > 128 || D % 8)
		return fail(err, errlen, "head dim %d: cuDNN's SDPA takes a multiple of 8 up to 128 here", D);
	long sum = 0;
	uint32_t mx = 0;
	for (int i = 0; i < n_docs; i++) {
		sum += doc_len[i];
		if (doc_len[i] > mx) mx = doc_len[i];
	}
	if (sum != T) return fail(err, errlen, "document lengths sum to %ld, not T = %d", sum, T);
	*B = bucket_b(n_docs);
	*S = bucket_s((int)mx);
	return 0;
}

/* Uploads seq lens and offsets for these documents on stream s, unless the
 * device already holds them. */
static int upload_meta(attn_cudnn *a, const uint32_t *doc_len, int n_docs, int B, int H, int KV, int D, cudaStream_t s,
		       char *err, size_t errlen)
{
	size_t bytes = meta_seq_bytes(B) + 3 * (size_t)(B + 1) * 8;
	std::vector<unsigned char> host(bytes, 0);
	attn_meta m = meta_view(host.data(), B);
	int64_t t = 0;
	for (int b = 0; b <= B; b++) {
		m.off_q[b] = t * H * D;
		m.off_kv[b] = t * KV * D;
		m.off_st[b] = t * H;
		if (b == B) break;
		int len = b < n_docs ? (int)doc_len[b] : 0;
		m.seq[b] = len;
		t += len;
	}
	if (host == a->meta_host) return 0;
	if (bytes > a->meta_cap) {
		/* the old buffer may still be read by queued kernels */
		cudaError_t e = cudaDeviceSynchronize();
		if (e == cudaSuccess && a->meta) e = cudaFree(a->meta);
		a->meta = nullptr;
		a->meta_cap = 0;
		a->meta_host.clear();
		if (e == cudaSuccess) e = cudaMalloc(&a->meta, bytes);
		if (e != cudaSuccess) return fail(err, errlen, "sequence metadata, %zu bytes: %s", bytes, cudaGetErrorString(e));
		a->meta_cap = bytes;
	}
	/* from pageable memory: the copy is staged before the call returns,
	 * so host may go; stream order keeps earlier kernels' reads intact */
	cudaError_t e = cudaMemcpyAsync(a->meta, host.data(), bytes, cudaMemcpyHostToDevice, s);
	if (e != cudaSuccess) {
		a->meta_host.clear();
		return fail(err, errlen, "upload sequence metadata: %s", cudaGetErrorString(e));
	}
	a->meta_host.swap(host);
	return 0;
}

static int grow_workspace(attn_cudnn *a, int64_t need, char *err, size_t errlen)
{
	if (need <= 0 || (size_t)need <= a->ws_bytes) return 0;
	cudaError_t e = cudaDeviceSynchronize(); /* queued kernels may use the old one */
	if (e == cudaSuccess && a->ws) e = cudaFree(a->ws);
	a->ws = nullptr;
	a->ws_bytes = 0;
	if (e == cudaSuccess) e = cudaMalloc(&a->ws, (size_t)need);
	if (e != cudaSuccess) return fail(err, errlen, "cuDNN workspace, %lld bytes: %s", (long long)need, cudaGetErrorString(e));
	a->ws_bytes = (size_t)need;
	return 0;
}

static tensor_ptr int_tensor(fe::graph::Graph &g, const char *name, int64_t uid, int64_t n, fe::DataType_t type)
{
	return g.tensor(fe::graph::Tensor_attributes()
				.set_name(name)
				.set_uid(uid)
				.set_dim({n, 1, 1, 1})
				.set_stride({1, 1, 1, 1})
				.set_data_type(type));
}

/* A (B, heads, S, D) bf16 view of a token-major (T, heads * D) buffer,
 * sequence b starting at element off[b]. */
static fe::graph::Tensor_attributes &thd(fe::graph::Tensor_attributes &t, const char *name, int64_t uid, int64_t B,
					 int64_t heads, int64_t S, int64_t D, const tensor_ptr &off)
{
	return t.set_name(name)
		.set_uid(uid)
		.set_dim({B, heads, S, D})
		.set_stride({S * heads * D, D, heads * D, 1})
		.set_data_type(fe::DataType_t::BFLOAT16)
		.set_ragged_offset(off);
}

static tensor_ptr thd_in(fe::graph::Graph &g, const char *name, int64_t uid, int64_t B, int64_t heads, int64_t S,
			 int64_t D, const tensor_ptr &off)
{
	fe::graph::Tensor_attributes t;
	thd(t, name, uid, B, heads, S, D, off);
	return g.tensor(t);
}

/* The stats (B, H, S, 1) fp32 in a's layout. */
static fe::graph::Tensor_attributes &stats_desc(fe::graph::Tensor_attributes &t, const attn_cudnn *a, int64_t B,
						int64_t H, int64_t S, const tensor_ptr &off_st)
{
	t.set_name("stats").set_uid(UID_STATS).set_dim({B, H, S, 1}).set_data_type(fe::DataType_t::FLOAT);
	if (a->packed) t.set_stride({S * H, 1, H, 1}).set_ragged_offset(off_st);
	else t.set_stride({H * S, S, 1, 1});
	return t;
}

static std::shared_ptr<fe::graph::Graph> new_graph(void)
{
	auto g = std::make_shared<fe::graph::Graph>();
	g->set_io_data_type(fe::DataType_t::BFLOAT16)
		.set_intermediate_data_type(fe::DataType_t::FLOAT)
		.set_compute_data_type(fe::DataType_t::FLOAT);
	return g;
}

/* The forward graph: out, stats from q, k, v. */
static std::shared_ptr<fe::graph::Graph> fwd_graph(const attn_cudnn *a, int64_t B, int64_t S, int64_t H, int64_t KV,
						   int64_t D)
{
	auto g = new_graph();
	auto off_q = int_tensor(*g, "off_q", UID_OFF_Q, B + 1, fe::DataType_t::INT64);
	auto off_kv = int_tensor(*g, "off_kv", UID_OFF_KV, B + 1, fe::DataType_t::INT64);
	auto seq_q = int_tensor(*g, "seq_q", UID_SEQ_Q, B, fe::DataType_t::INT32);
	auto seq_kv = int_tensor(*g, "seq_kv", UID_SEQ_KV, B, fe::DataType_t::INT32);
	auto q = thd_in(*g, "q", UID_Q, B, H, S, D, off_q);
	auto k = thd_in(*g, "k", UID_K, B, KV, S, D, off_kv);
	auto v = thd_in(*g, "v", UID_V, B, KV, S, D, off_kv);
	auto opt = fe::graph::SDPA_attributes()
			   .set_name("attn_fwd")
			   .set_generate_stats(true)
			   .set_attn_scale(1.0f / sqrtf((float)D))
			   .set_padding_mask(true)
			   .set_seq_len_q(seq_q)
			   .set_seq_len_kv(seq_kv)
			   .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
			   .set_diagonal_band_right_bound(0)
			   /* the graph the frontend's ragged tests use; AUTO may
			    * pick the unified engine on newer cuDNN */
			   .set_implementation(fe::AttentionImplementation_t::COMPOSITE);
	auto [o, stats] = g->sdpa(q, k, v, opt);
	thd(o->set_output(true), "out", UID_O, B, H, S, D, off_q);
	stats->set_output(true);
	if (a->packed) {
		auto off_st = int_tensor(*g, "off_stats", UID_OFF_STATS, B + 1, fe::DataType_t::INT64);
		stats_desc(*stats, a, B, H, S, off_st);
	} else {
		stats_desc(*stats, a, B, H, S, nullptr);
	}
	return g;
}

/* The backward graph: dq, dk, dv from q, k, v, out, dout, stats. */
static std::shared_ptr<fe::graph::Graph> bwd_graph(const attn_cudnn *a, int64_t T, int64_t B, int64_t S, int64_t H,
						   int64_t KV, int64_t D)
{
	auto g = new_graph();
	auto off_q = int_tensor(*g, "off_q", UID_OFF_Q, B + 1, fe::DataType_t::INT64);
	auto off_kv = int_tensor(*g, "off_kv", UID_OFF_KV, B + 1, fe::DataType_t::INT64);
	auto seq_q = int_tensor(*g, "seq_q", UID_SEQ_Q, B, fe::DataType_t::INT32);
	auto seq_kv = int_tensor(*g, "seq_kv", UID_SEQ_KV, B, fe::DataType_t::INT32);
	auto q = thd_in(*g, "q", UID_Q, B, H, S, D, off_q);
	auto k = thd_in(*g, "k", UID_K, B, KV, S, D, off_kv);
	auto v = thd_in(*g, "v", UID_V, B, KV, S, D, off_kv);
	auto o = thd_in(*g, "out", UID_O, B, H, S, D, off_q);
	auto dout = thd_in(*g, "dout", UID_DO, B, H, S, D, off_q);
	fe::graph::Tensor_attributes st;
	if (a->packed) stats_desc(st, a, B, H, S, int_tensor(*g, "off_stats", UID_OFF_STATS, B + 1, fe::DataType_t::INT64));
	else stats_desc(st, a, B, H, S, nullptr);
	auto stats = g->tensor(st);
	/* sizes the fp32 accumulators in the workspace by tokens, not B * S
	 * (the frontend drops it where cuDNN cannot use it: sm_8x) */
	int64_t max_t = (T + 63) / 64 * 64;
	auto opt = fe::graph::SDPA_backward_attributes()
			   .set_name("attn_bwd")
			   .set_attn_scale(1.0f / sqrtf((float)D))
			   .set_padding_mask(true)
			   .set_seq_len_q(seq_q)
			   .set_seq_len_kv(seq_kv)
			   .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
			   .set_diagonal_band_right_bound(0)
			   .set_max_total_seq_len_q(max_t)
			   .set_max_total_seq_len_kv(max_t)
			   .set_deterministic_algorithm(a->deterministic != 0);
	auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, dout, stats, opt);
	thd(dq->set_output(true), "dq", UID_DQ, B, H, S, D, off_q);
	thd(dk->set_output(true), "dk", UID_DK, B, KV, S, D, off_kv);
	thd(dv->set_output(true), "dv", UID_DV, B, KV, S, D, off_kv);
	return g;
}

/* The cached graph for this shape, built on first use. */
static attn_graph *get_graph(attn_cudnn *a, int bwd, int T, int B, int S, int H, int KV, int D, char *err, size_t errlen)
{
	attn_key key(bwd, bwd ? T : 0, B, S, H, KV, D); /* only the backward's workspace bound sees T */
	auto it = a->graphs.find(key);
	if (it != a->graphs.end()) return &it->second;
	attn_graph ag;
	ag.g = bwd ? bwd_graph(a, T, B, S, H, KV, D) : fwd_graph(a, B, S, H, KV, D);
	fe::error_t e = ag.g->build(a->h, {fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK});
	fe::error_t e2 = e.is_good() ? ag.g->get_workspace_size(ag.ws) : e;
	if (e2.is_bad()) {
		fail(err, errlen, "cuDNN %s graph for B=%d S=%d H=%d KV=%d D=%d (cuDNN %zu, sm_%d): %s",
		     bwd ? "backward" : "forward", B, S, H, KV, D, a->version, a->sm, e2.get_message().c_str());
		return nullptr;
	}
	return &a->graphs.emplace(key, ag).first->second;
}

/* Runs graph ag with these buffers on stream s. */
static int run_graph(attn_cudnn *a, attn_graph *ag, std::unordered_map<int64_t, void *> &pack, int B, cudaStream_t s,
		     char *err, size_t errlen)
{
	attn_meta m = meta_view(a->meta, B);
	pack[UID_SEQ_Q] = m.seq;
	pack[UID_SEQ_KV] = m.seq;
	pack[UID_OFF_Q] = m.off_q;
	pack[UID_OFF_KV] = m.off_kv;
	if (a->packed) pack[UID_OFF_STATS] = m.off_st;
	if (grow_workspace(a, ag->ws, err, errlen)) return -1;
	cudnnStatus_t cs = cudnnSetStream(a->h, s);
	if (cs != CUDNN_STATUS_SUCCESS) return fail(err, errlen, "cudnnSetStream: %s", cudnnGetErrorString(cs));
	fe::error_t e = ag->g->execute(a->h, pack, a->ws);
	if (e.is_bad()) return fail(err, errlen, "cuDNN execute: %s", e.get_message().c_str());
	return 0;
}

/* ---- the whole --------------------------------------------------------- */

extern "C" attn_cudnn *attn_cudnn_new(unsigned flags, char *err, size_t errlen)
{
	int dev = 0, major = 0, minor = 0;
	cudaError_t ce = cudaGetDevice(&dev);
	if (ce == cudaSuccess) ce = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
	if (ce == cudaSuccess) ce = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
	if (ce != cudaSuccess) {
		fail(err, errlen, "no CUDA device: %s", cudaGetErrorString(ce));
		return nullptr;
	}
	int sm = major * 10 + minor;
	size_t ver = cudnnGetVersion(); /* the library loaded, not the headers */
	if ((flags & ATTN_CUDNN_PACKED_LSE) && (flags & ATTN_CUDNN_PADDED_LSE)) {
		fail(err, errlen, "both packed and padded stats asked for");
		return nullptr;
	}
	int packed = (flags & ATTN_CUDNN_PACKED_LSE) ? 1 : (flags & ATTN_CUDNN_PADDED_LSE) ? 0 : sm >= 90;
	int ampere_like = major == 8 || major == 12; /* cuDNN's "SM8X and SM12X" THD limits */
	if (major < 8) {
		fail(err, errlen, "sm_%d: cuDNN's bf16 SDPA needs sm_80 or later", sm);
		return nullptr;
	}
	if (ver < 90600 || (major == 8 && ver < 91801)) {
		fail(err, errlen, "cuDNN %zu: packed documents (THD) need 9.6.0 on sm_90, 9.18.1 on sm_8x; this is sm_%d",
		     ver, sm);
		return nullptr;
	}
	if (ampere_like && packed) {
		fail(err, errlen, "sm_%d: cuDNN's THD backward takes no packed stats here; use padded", sm);
		return nullptr;
	}
	if (ampere_like && (flags & ATTN_CUDNN_DETERMINISTIC)) {
		fail(err, errlen, "sm_%d: cuDNN has no deterministic THD backward here", sm);
		return nullptr;
	}
	attn_cudnn *a = nullptr;
	try {
		a = new attn_cudnn;
	} catch (const std::exception &e) {
		fail(err, errlen, "%s", e.what());
		return nullptr;
	}
	cudnnStatus_t cs = cudnnCreate(&a->h);
	if (cs != CUDNN_STATUS_SUCCESS) {
		fail(err, errlen, "cudnnCreate: %s", cudnnGetErrorString(cs));
		a->h = nullptr;
		attn_cudnn_free(a);
		return nullptr;
	}
	a->sm = sm;
	a->version = ver;
	a->packed = packed;
	a->deterministic = (flags & ATTN_CUDNN_DETERMINISTIC) != 0;
	return a;
}

extern "C" void attn_cudnn_free(attn_cudnn *a)
{
	if (!a) return;
	a->graphs.clear();
	if (a->ws) cudaFree(a->ws);
	if (a->meta) cudaFree(a->meta);
	if (a->h) cudnnDestroy(a->h);
	delete a;
}

extern "C" int attn_cudnn_lse_packed(const attn_cudnn *a) { return a->packed; }

extern "C" size_t attn_cudnn_lse_floats(const attn_cudnn *a, int T, int n_docs, int max_len, int H)
{
	if (T <= 0 || H <= 0) return 0;
	if (a->packed) return (size_t)T * H;
	return (size_t)bucket_b(n_docs) * H * bucket_s(max_len);
}

extern "C" int attn_cudnn_fwd(attn_cudnn *a, void *out, float *lse, const void *q, const void *k, const void *v,
			      const uint32_t *doc_len, int n_docs, int T, int H, int KV, int D, cudaStream_t s, char *err,
			      size_t errlen)
{
	int B, S;
	if (T == 0) return 0;
	if (check_args(doc_len, n_docs, T, H, KV, D, &B, &S, err, errlen)) return -1;
	try {
		attn_graph *ag = get_graph(a, 0, T, B, S, H, KV, D, err, errlen);
		if (!ag) return -1;
		if (upload_meta(a, doc_len, n_docs, B, H, KV, D, s, err, errlen)) return -1;
		std::unordered_map<int64_t, void *> pack = {
			{UID_Q, const_cast<void *>(q)}, {UID_K, const_cast<void *>(k)}, {UID_V, const_cast<void *>(v)},
			{UID_O, out},			{UID_STATS, lse},
		};
		return run_graph(a, ag, pack, B, s, err, errlen);
	} catch (const std::exception &e) {
		return fail(err, errlen, "cuDNN forward: %s", e.what());
	}
}

extern "C" int attn_cudnn_bwd(attn_cudnn *a, void *dq, void *dk, void *dv, const void *q, const void *k, const void *v,
			      const void *out, const float *lse, const void *dout, const uint32_t *doc_len, int n_docs,
			      int T, int H, int KV, int D, cudaStream_t s, char *err, size_t errlen)
{
	int B, S;
	if (T == 0) return 0;
	if (check_args(doc_len, n_docs, T, H, KV, D, &B, &S, err, errlen)) return -1;
	try {
		attn_graph *ag = get_graph(a, 1, T, B, S, H, KV, D, err, errlen);
		if (!ag) return -1;
		if (upload_meta(a, doc_len, n_docs, B, H, KV, D, s, err, errlen)) return -1;
		std::unordered_map<int64_t, void *> pack = {
			{UID_Q, const_cast<void *>(q)},
			{UID_K, const_cast<void *>(k)},
			{UID_V, const_cast<void *>(v)},
			{UID_O, const_cast<void *>(out)},
			{UID_DO, const_cast<void *>(dout)},
			{UID_STATS, const_cast<float *>(lse)},
			{UID_DQ, dq},
			{UID_DK, dk},
			{UID_DV, dv},
		};
		return run_graph(a, ag, pack, B, s, err, errlen);
	} catch (const std::exception &e) {
		return fail(err, errlen, "cuDNN backward: %s", e.what());
	}
}

#endif /* __CUDACC__ && !__CUDA_ARCH__ && the frontend */
