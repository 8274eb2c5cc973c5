/* test_cudnn_attn.cu — cuDNN's fused SDPA (kernels/attn_cudnn.cu) against
 * the SIMT flash kernel (kern_attn_fwd / kern_attn_bwd, kernels/attention.cu)
 * on the GPU: random bf16 q, k, v, dout on odd shapes, several documents a
 * sample (length-1 ones too), H/KV = 14/2, 2/2, 4/1, D = 64 and 128; out,
 * lse, dq, dk, dv compared; one "ok" or "FAIL" line a case and layout of
 * the stats, then "N passed, N failed"; exit 1 on any failure.
 *
 * Also checked: outputs are poisoned with NaN first; past the T rows of
 * every buffer lie 64 guard rows, NaN in the inputs (a kernel that used
 * rows past T would spread it) and a finite pattern in the outputs that
 * must survive (a kernel that wrote past T would change it); the second
 * call of a shape (the cached graph) gives the same out; with
 * ATTN_CUDNN_DETERMINISTIC two backward passes agree bit for bit.
 *
 * Tolerances, |cudnn - simt| <= atol + rtol |simt| element by element,
 * atol a fraction of the reference's RMS. Both sides read the same bf16
 * inputs and accumulate in fp32; they differ in that cuDNN feeds the
 * tensor cores bf16 operands where the SIMT kernel keeps fp32: the
 * probabilities P before P V (and dP's, dS = P (dP - delta), before dS K
 * and dS^T Q), each rounded to 8 bits of mantissa (relative 2^-9). A
 * convex average of rounded terms stays within 2^-9 of their spread, and
 * both outputs are rounded to bf16 once more (2^-9 each), so out is held
 * to rtol 2^-7 = 0.0078 and atol 1% of its RMS. The gradients sum up to T
 * rounded dS terms (and dk, dv over the H / KV heads of a group) whose
 * errors are independent, so the error grows like the sum's own spread:
 * rtol 2% and atol 3% of the RMS, the bound cudnn-frontend's own bf16 SDPA
 * tests use (atol = rtol = 2e-2 on unit-variance inputs). lse is fp32 on
 * both sides from the same scores (only the summation order and exp
 * differ, ~1e-6): 2e-3 absolute, so that a layout slip (errors of order
 * 1) cannot hide.
 */
#include "simt.h"
#include "kernels.h"
#include "attn_cudnn.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CK(x)                                                                                                  \
	do {                                                                                                   \
		cudaError_t e_ = (x);                                                                          \
		if (e_ != cudaSuccess) {                                                                       \
			fprintf(stderr, "test_cudnn_attn: %s:%d: %s: %s\n", __FILE__, __LINE__, #x,            \
				cudaGetErrorString(e_));                                                       \
			exit(1);                                                                               \
		}                                                                                              \
	} while (0)

enum { GUARD_ROWS = 64 };
static const uint16_t BF16_NAN = 0x7fc0, BF16_GUARD = 0x3e5a; /* 0.2129: finite, unlikely as a result */
static const uint32_t F32_GUARD = 0x3e5a5a5a;

/* ---- host helpers ------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform01(void)
{
	rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
	return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static double normal(void) { return sqrt(-2 * log(uniform01())) * cos(6.283185307179586 * uniform01()); }

static uint16_t f2bf(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
static float bf2f(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* A device buffer of rows * width bf16 plus GUARD_ROWS guard rows. */
struct dbuf {
	uint16_t *d;
	size_t n, guard; /* elements: the rows, then the guard */
};

static dbuf dbuf_new(size_t rows, size_t width)
{
	dbuf b;
	b.n = rows * width;
	b.guard = GUARD_ROWS * width;
	CK(cudaMalloc(&b.d, (b.n + b.guard) * 2));
	return b;
}
static void dbuf_put(dbuf b, const std::vector<uint16_t> &h, uint16_t guard)
{
	std::vector<uint16_t> all(h);
	all.resize(b.n, BF16_NAN);
	all.resize(b.n + b.guard, guard);
	CK(cudaMemcpy(b.d, all.data(), all.size() * 2, cudaMemcpyHostToDevice));
}
static std::vector<uint16_t> dbuf_get(dbuf b)
{
	std::vector<uint16_t> h(b.n + b.guard);
	CK(cudaMemcpy(h.data(), b.d, h.size() * 2, cudaMemcpyDeviceToHost));
	return h;
}
/* An output: NaN, then the finite guard. */
static void dbuf_poison(dbuf b) { dbuf_put(b, std::vector<uint16_t>(), BF16_GUARD); }
static int guard_ok(const std::vector<uint16_t> &h, size_t n)
{
	for (size_t i = n; i < h.size(); i++)
		if (h[i] != BF16_GUARD) return 0;
	return 1;
}

static std::vector<uint16_t> random_bf16(size_t n)
{
	std::vector<uint16_t> h(n);
	for (auto &x : h) x = f2bf((float)normal());
	return h;
}

/* max over i of |a - b| / (atol + rtol |b|), atol = arms * rms(b): <= 1
 * passes; a NaN gives infinity. */
static double err_ratio(const std::vector<float> &a, const std::vector<float> &b, double arms, double rtol)
{
	double ss = 0;
	for (float x : b) ss += (double)x * x;
	double atol = arms * sqrt(ss / (b.size() ? b.size() : 1)) + 1e-30, worst = 0;
	for (size_t i = 0; i < a.size(); i++) {
		double r = fabs((double)a[i] - b[i]) / (atol + rtol * fabs((double)b[i]));
		if (!(r <= worst)) worst = r; /* NaN sticks */
		if (std::isnan(worst)) return INFINITY;
	}
	return worst;
}
static std::vector<float> to_f32(const std::vector<uint16_t> &h, size_t n)
{
	std::vector<float> f(n);
	for (size_t i = 0; i < n; i++) f[i] = bf2f(h[i]);
	return f;
}

static double now_ms(void)
{
	return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/* ---- one case ---------------------------------------------------------- */

struct attn_case {
	int T, H, KV, D;
	std::vector<uint32_t> docs;
};

/* The SIMT kernel's results for a case, and its inputs. */
struct reference {
	dbuf q, k, v, dout;
	std::vector<float> out, lse, dq, dk, dv; /* lse (H, T) */
};

static int passed, failed;

static reference make_reference(const attn_case &c)
{
	int T = c.T, H = c.H, KV = c.KV, D = c.D;
	reference r;
	r.q = dbuf_new(T, (size_t)H * D), r.dout = dbuf_new(T, (size_t)H * D);
	r.k = dbuf_new(T, (size_t)KV * D), r.v = dbuf_new(T, (size_t)KV * D);
	dbuf_put(r.q, random_bf16(r.q.n), BF16_NAN);
	dbuf_put(r.k, random_bf16(r.k.n), BF16_NAN);
	dbuf_put(r.v, random_bf16(r.v.n), BF16_NAN);
	dbuf_put(r.dout, random_bf16(r.dout.n), BF16_NAN);

	std::vector<int> start(T);
	for (int d = 0, t = 0; d < (int)c.docs.size(); t += c.docs[d], d++)
		for (uint32_t i = 0; i < c.docs[d]; i++) start[t + i] = t;
	int *dstart;
	float *lse, *scratch;
	CK(cudaMalloc(&dstart, T * sizeof(int)));
	CK(cudaMemcpy(dstart, start.data(), T * sizeof(int), cudaMemcpyHostToDevice));
	CK(cudaMalloc(&lse, (size_t)H * T * sizeof(float)));
	CK(cudaMalloc(&scratch, kern_attn_bwd_scratch(T, H)));
	dbuf out = dbuf_new(T, (size_t)H * D), dq = dbuf_new(T, (size_t)H * D);
	dbuf dk = dbuf_new(T, (size_t)KV * D), dv = dbuf_new(T, (size_t)KV * D);
	CK((cudaError_t)kern_attn_fwd((kern_bf16 *)out.d, lse, (kern_bf16 *)r.q.d, (kern_bf16 *)r.k.d, (kern_bf16 *)r.v.d,
				      dstart, T, H, KV, D, 0));
	CK((cudaError_t)kern_attn_bwd((kern_bf16 *)dq.d, (kern_bf16 *)dk.d, (kern_bf16 *)dv.d, scratch,
				      (kern_bf16 *)r.q.d, (kern_bf16 *)r.k.d, (kern_bf16 *)r.v.d, (kern_bf16 *)out.d, lse,
				      (kern_bf16 *)r.dout.d, dstart, T, H, KV, D, 0));
	CK(cudaDeviceSynchronize());
	r.out = to_f32(dbuf_get(out), out.n);
	r.dq = to_f32(dbuf_get(dq), dq.n);
	r.dk = to_f32(dbuf_get(dk), dk.n);
	r.dv = to_f32(dbuf_get(dv), dv.n);
	r.lse.resize((size_t)H * T);
	CK(cudaMemcpy(r.lse.data(), lse, r.lse.size() * sizeof(float), cudaMemcpyDeviceToHost));
	CK(cudaFree(out.d));
	CK(cudaFree(dq.d));
	CK(cudaFree(dk.d));
	CK(cudaFree(dv.d));
	CK(cudaFree(lse));
	CK(cudaFree(scratch));
	CK(cudaFree(dstart));
	return r;
}

static void free_reference(reference &r)
{
	CK(cudaFree(r.q.d));
	CK(cudaFree(r.k.d));
	CK(cudaFree(r.v.d));
	CK(cudaFree(r.dout.d));
}

static int pow2_at_least(int n)
{
	int p = 1;
	while (p < n) p *= 2;
	return p;
}

/* cuDNN's lse as (H, T), from the layout attn_cudnn.h documents. */
static std::vector<float> lse_as_ht(const std::vector<float> &l, const attn_case &c, int packed)
{
	int T = c.T, H = c.H, n = (int)c.docs.size(), mx = 0;
	for (uint32_t d : c.docs) mx = (int)d > mx ? (int)d : mx;
	int S = pow2_at_least(mx < 64 ? 64 : mx);
	std::vector<float> r((size_t)H * T);
	for (int b = 0, t0 = 0; b < n; t0 += c.docs[b], b++)
		for (int s = 0; s < (int)c.docs[b]; s++)
			for (int h = 0; h < H; h++)
				r[(size_t)h * T + t0 + s] =
					packed ? l[(size_t)(t0 + s) * H + h] : l[((size_t)b * H + h) * S + s];
	return r;
}

static void run_case(attn_cudnn *a, const char *mode, const attn_case &c, const reference &r)
{
	int T = c.T, H = c.H, KV = c.KV, D = c.D, n = (int)c.docs.size(), mx = 0;
	for (uint32_t d : c.docs) mx = (int)d > mx ? (int)d : mx;
	char err[512] = "", what[160];
	snprintf(what, sizeof what, "T=%d H=%d KV=%d D=%d docs=%d lse=%s", T, H, KV, D, n, mode);
	dbuf out = dbuf_new(T, (size_t)H * D), dq = dbuf_new(T, (size_t)H * D);
	dbuf dk = dbuf_new(T, (size_t)KV * D), dv = dbuf_new(T, (size_t)KV * D);
	dbuf_poison(out), dbuf_poison(dq), dbuf_poison(dk), dbuf_poison(dv);
	size_t nl = attn_cudnn_lse_floats(a, T, n, mx, H);
	std::vector<uint32_t> lse_h(nl + 1024, F32_GUARD);
	for (size_t i = 0; i < nl; i++) lse_h[i] = 0x7fc00000u;
	float *lse;
	CK(cudaMalloc(&lse, lse_h.size() * 4));
	CK(cudaMemcpy(lse, lse_h.data(), lse_h.size() * 4, cudaMemcpyHostToDevice));
	cudaStream_t s;
	CK(cudaStreamCreate(&s));
	int deterministic = strstr(mode, "determ") != nullptr;

	double t0 = now_ms(), t_fwd1, t_fwd2, t_bwd1, t_bwd2;
	int e = attn_cudnn_fwd(a, out.d, lse, r.q.d, r.k.d, r.v.d, c.docs.data(), n, T, H, KV, D, s, err, sizeof err);
	CK(cudaStreamSynchronize(s));
	t_fwd1 = now_ms() - t0;
	std::vector<uint16_t> out1 = dbuf_get(out);
	t0 = now_ms();
	if (!e) e = attn_cudnn_fwd(a, out.d, lse, r.q.d, r.k.d, r.v.d, c.docs.data(), n, T, H, KV, D, s, err, sizeof err);
	CK(cudaStreamSynchronize(s));
	t_fwd2 = now_ms() - t0;
	t0 = now_ms();
	if (!e)
		e = attn_cudnn_bwd(a, dq.d, dk.d, dv.d, r.q.d, r.k.d, r.v.d, out.d, lse, r.dout.d, c.docs.data(), n, T, H,
				   KV, D, s, err, sizeof err);
	CK(cudaStreamSynchronize(s));
	t_bwd1 = now_ms() - t0;
	std::vector<uint16_t> dq1 = dbuf_get(dq), dk1 = dbuf_get(dk), dv1 = dbuf_get(dv);
	t0 = now_ms();
	if (!e)
		e = attn_cudnn_bwd(a, dq.d, dk.d, dv.d, r.q.d, r.k.d, r.v.d, out.d, lse, r.dout.d, c.docs.data(), n, T, H,
				   KV, D, s, err, sizeof err);
	CK(cudaStreamSynchronize(s));
	t_bwd2 = now_ms() - t0;
	CK(cudaGetLastError());

	if (e) {
		printf("FAIL %s: %s\n", what, err);
		failed++;
	} else {
		std::vector<uint16_t> out2 = dbuf_get(out), dq2 = dbuf_get(dq), dk2 = dbuf_get(dk), dv2 = dbuf_get(dv);
		CK(cudaMemcpy(lse_h.data(), lse, lse_h.size() * 4, cudaMemcpyDeviceToHost));
		std::vector<float> lf(nl);
		memcpy(lf.data(), lse_h.data(), nl * 4);
		double ro = err_ratio(to_f32(out2, out.n), r.out, 0.01, 1.0 / 128);
		double rl = 0; /* lse: 2e-3 absolute */
		std::vector<float> lm = lse_as_ht(lf, c, attn_cudnn_lse_packed(a));
		for (size_t i = 0; i < lm.size(); i++) {
			double d = fabs((double)lm[i] - r.lse[i]) / 2e-3;
			if (!(d <= rl)) rl = std::isnan(d) ? INFINITY : d;
		}
		double rq = err_ratio(to_f32(dq2, dq.n), r.dq, 0.03, 0.02);
		double rk = err_ratio(to_f32(dk2, dk.n), r.dk, 0.03, 0.02);
		double rv = err_ratio(to_f32(dv2, dv.n), r.dv, 0.03, 0.02);
		const char *why = nullptr;
		if (!guard_ok(out2, out.n) || !guard_ok(dq2, dq.n) || !guard_ok(dk2, dk.n) || !guard_ok(dv2, dv.n))
			why = "a guard row past T was written";
		for (size_t i = nl; i < lse_h.size() && !why; i++)
			if (lse_h[i] != F32_GUARD) why = "written past attn_cudnn_lse_floats()";
		if (!why && memcmp(out1.data(), out2.data(), out1.size() * 2)) why = "the second forward differs";
		if (!why && deterministic &&
		    (memcmp(dq1.data(), dq2.data(), dq1.size() * 2) || memcmp(dk1.data(), dk2.data(), dk1.size() * 2) ||
		     memcmp(dv1.data(), dv2.data(), dv1.size() * 2)))
			why = "two deterministic backward passes differ";
		if (!why && !(ro <= 1 && rl <= 1 && rq <= 1 && rk <= 1 && rv <= 1)) why = "over tolerance";
		printf("%s %s: err/tol out %.3f lse %.3f dq %.3f dk %.3f dv %.3f; ms fwd %.1f then %.3f, bwd %.1f then %.3f%s%s\n",
		       why ? "FAIL" : "ok", what, ro, rl, rq, rk, rv, t_fwd1, t_fwd2, t_bwd1, t_bwd2, why ? ": " : "",
		       why ? why : "");
		why ? failed++ : passed++;
	}
	CK(cudaStreamDestroy(s));
	CK(cudaFree(lse));
	CK(cudaFree(out.d));
	CK(cudaFree(dq.d));
	CK(cudaFree(dk.d));
	CK(cudaFree(dv.d));
}

/* ---- the whole --------------------------------------------------------- */

struct stats_mode {
	const char *name;
	unsigned flags;
};

int main(void)
{
	std::vector<uint32_t> many(500, 1); /* 500 one-token documents and a long one: 501 -> B = 512 */
	many.push_back(500);
	const attn_case cases[] = {
		{77, 14, 2, 64, {77}},
		{77, 2, 2, 128, {1, 30, 1, 45}},
		{77, 4, 1, 64, {20, 1, 56}},
		{300, 14, 2, 128, {1, 120, 7, 1, 171}},
		{300, 4, 1, 128, {300}},
		{300, 2, 2, 64, {64, 64, 1, 63, 65, 43}},
		{1000, 14, 2, 64, {1000}},
		{1000, 4, 1, 128, {1, 150, 1, 1, 77, 200, 1, 96, 130, 1, 142, 100, 100}},
		{1000, 2, 2, 64, many},
		{1000, 14, 2, 128, {333, 1, 666}},
	};
	static const stats_mode modes[] = {
		{"packed", ATTN_CUDNN_PACKED_LSE},
		{"padded", ATTN_CUDNN_PADDED_LSE},
		{"packed,deterministic", ATTN_CUDNN_PACKED_LSE | ATTN_CUDNN_DETERMINISTIC},
	};
	const int NMODES = (int)(sizeof modes / sizeof modes[0]);
	std::vector<attn_cudnn *> handles(NMODES);
	char err[512];
	int any = 0;
	for (int m = 0; m < NMODES; m++) {
		handles[m] = attn_cudnn_new(modes[m].flags, err, sizeof err);
		if (handles[m]) any = 1;
		else printf("skip lse=%s: %s\n", modes[m].name, err);
	}
	if (!any) {
		printf("FAIL attn_cudnn_new: no layout of the stats is supported here\n0 passed, 1 failed\n");
		return 1;
	}
	for (const attn_case &c : cases) {
		reference r = make_reference(c);
		for (int m = 0; m < NMODES; m++)
			if (handles[m]) run_case(handles[m], modes[m].name, c, r);
		free_reference(r);
	}
	for (int m = 0; m < NMODES; m++) attn_cudnn_free(handles[m]);
	printf("%d passed, %d failed\n", passed, failed);
	if (fflush(stdout) || ferror(stdout)) return 1;
	return failed != 0;
}
