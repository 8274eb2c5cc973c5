/* simt: the CPU runtime that executes the kernels of kernels/ in make test, and the
 * kernels themselves.
 *
 * The runtime first: small kernels whose answers are known (a block
 * reduction through shared memory and warp shuffles, every shuffle and
 * vote against its definition in the CUDA C++ Programming Guide), and
 * kernels with a planted bug each (a shared-memory race, a barrier some
 * threads skip, a shuffle mask naming absent lanes, an index past a shared
 * array), which must be reported. Then each kernel against a reference
 * computed in double precision from the same bf16 inputs, on odd shapes,
 * the outputs poisoned with NaN first. bf16 tolerance: a bf16 output is
 * the fp32 value rounded once, so it is within half an ulp of it, 2^-9
 * relative; the kernels' fp32 sums differ from the double reference by
 * far less; so 2^-8 relative (plus 1e-6 absolute for values near 0). */
#include "../../kernels/simt.h"
#include "../../kernels/kernels.h"
extern "C" {
#include "../../lib/kd.h"
#include "../../lib/optim.h"
}
#include "testhelp.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

/* ---- kernels with known answers ------------------------------------------ */

static __global__ void block_sum_kernel(float *out, const float *in, int n)
{
	SIMT_SHARED(float, part, 32);
	float v = 0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) v += in[(size_t)blockIdx.x * n + i];
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
	__syncthreads();
	if (threadIdx.x == 0) {
		float s = 0;
		for (unsigned w = 0; w < blockDim.x / 32; w++) s += part[w];
		out[blockIdx.x] = s;
	}
}

/* out[lane] for each warp operation, one warp. */
static __global__ void warp_ops_kernel(int *out)
{
	int lane = (int)threadIdx.x;
	out[0 * 32 + lane] = __shfl_xor_sync(0xffffffffu, lane * 10, 5);
	out[1 * 32 + lane] = __shfl_down_sync(0xffffffffu, lane * 10, 3);
	out[2 * 32 + lane] = __shfl_up_sync(0xffffffffu, lane * 10, 2);
	out[3 * 32 + lane] = __shfl_sync(0xffffffffu, lane * 10, 7);
	out[4 * 32 + lane] = __shfl_sync(0xffffffffu, lane * 10, lane + 1, 8); /* segments of 8 */
	out[5 * 32 + lane] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
	out[6 * 32 + lane] = __any_sync(0xffffffffu, lane == 17);
	out[7 * 32 + lane] = __all_sync(0xffffffffu, lane < 31);
	if (lane < 16) out[8 * 32 + lane] = __shfl_xor_sync(0x0000ffffu, lane, 1); /* half a warp */
	else out[8 * 32 + lane] = -1;
}

#ifndef __CUDACC__
/* Bugs, one each: the CPU runtime must report them. */
static __global__ void racy_kernel(float *out)
{
	SIMT_SHARED(float, s, 64);
	s[threadIdx.x] = (float)threadIdx.x;
	/* missing __syncthreads(): a neighbour's value is read */
	out[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}

static __global__ void raceless_kernel(float *out)
{
	SIMT_SHARED(float, s, 64);
	s[threadIdx.x] = (float)threadIdx.x;
	__syncthreads();
	out[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}

static __global__ void divergent_barrier_kernel(float *out)
{
	if (threadIdx.x < 40) {
		__syncthreads();
		out[threadIdx.x] = 1;
	}
}

static __global__ void bad_mask_kernel(int *out)
{
	/* a block of 48: the second warp has 16 lanes, the mask names 32 */
	out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}

static __global__ void shared_overrun_kernel(float *out)
{
	SIMT_SHARED(float, s, 32);
	s[threadIdx.x] = 1; /* 33 threads */
	__syncthreads();
	out[threadIdx.x] = 0;
}
#endif

#ifdef __CUDACC__
static int reports(const char *want, const char *what) { return want == NULL; } /* the GPU checks nothing */
#else
static int reports(const char *want, const char *what)
{
	char buf[4096];
	int n = simt_take_reports(buf, sizeof buf);
	int ok = want ? n > 0 && strstr(buf, want) != NULL : n == 0;
	if (!ok) printf("     | %s: %d reports:\n%s", what, n, buf);
	return ok;
}
#endif

/* ---- references for the kernels ------------------------------------------ */

/* The host keeps bf16 as its 16 bits; the device's buffers are mirrors
 * of host vectors, made for a scope and copied back when it ends. */
static float bf(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}
static uint16_t tobf(float f) /* round to nearest even, as the GPU's conversion */
{
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
static const uint16_t BF_NAN = 0x7fc0;

static int dev_failed;
template <class T> struct dev {
	std::vector<T> &h;
	T *p = nullptr;
	explicit dev(std::vector<T> &v) : h(v)
	{
		if (cudaMalloc((void **)&p, v.size() * sizeof(T) + (v.empty() ? 1 : 0)) != cudaSuccess ||
		    cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice) != cudaSuccess)
			dev_failed = 1;
	}
	~dev()
	{
		if (cudaDeviceSynchronize() != cudaSuccess ||
		    cudaMemcpy(h.data(), p, h.size() * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess)
			dev_failed = 1;
		cudaFree(p);
	}
	operator T *() const { return p; }
	kern_bf16 *b() const { return reinterpret_cast<kern_bf16 *>(p); }
};

static uint64_t rng = 88172645463325252ull;
static float urand(void) /* [-1, 1) */
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

static std::vector<uint16_t> rand_bf16(size_t n, float scale)
{
	std::vector<uint16_t> v(n);
	for (auto &x : v) x = tobf(urand() * scale);
	return v;
}

/* Worst |got - want| / (|want| + floor) over n, and where; floor < 0:
 * relative to the largest |want| instead (fp32 sums, whose rounding
 * depends on their order, against the norm of the result). */
static double worst(const float *got, const double *want, size_t n, double floor, size_t *at)
{
	double w = 0;
	*at = 0;
	if (floor < 0) {
		double m = 0;
		for (size_t i = 0; i < n; i++) m = std::fmax(m, std::fabs(want[i]));
		for (size_t i = 0; i < n; i++) {
			double e = std::isfinite(got[i]) ? std::fabs(got[i] - want[i]) / m : INFINITY;
			if (e > w) w = e, *at = i;
		}
		return w;
	}
	for (size_t i = 0; i < n; i++) {
		double e = std::isfinite(got[i]) ? std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + floor) : INFINITY;
		if (e > w) w = e, *at = i;
	}
	return w;
}

static const double BF16_TOL = 1.0 / 256;

static void test_rmsnorm(int T, int C)
{
	std::vector<uint16_t> x = rand_bf16((size_t)T * C, 3), w = rand_bf16(C, 1), dy = rand_bf16((size_t)T * C, 1);
	std::vector<uint16_t> out((size_t)T * C, BF_NAN);
	std::vector<float> rstd(T, NAN), dx((size_t)T * C), dw(C), scratch(kern_rmsnorm_bwd_scratch(T, C) / sizeof(float), NAN);
	for (size_t i = 0; i < dx.size(); i++) dx[i] = urand();
	for (auto &g : dw) g = urand();
	std::vector<float> dx0 = dx, dw0 = dw;
	int e;
	{
		dev<uint16_t> dout(out), dxx(x), dww(w), ddy(dy);
		dev<float> drstd(rstd), ddx(dx), ddw(dw), dsc(scratch);
		e = kern_rmsnorm_fwd(dout.b(), drstd, dxx.b(), dww.b(), T, C, 1e-6f, 0);
		e |= kern_rmsnorm_bwd(ddx, ddw, dsc, ddy.b(), dxx.b(), drstd, dww.b(), T, C, 0);
	}
	std::vector<double> want_out((size_t)T * C), want_rstd(T), want_dx((size_t)T * C), want_dw(C);
	for (int c = 0; c < C; c++) want_dw[c] = dw0[c];
	for (int t = 0; t < T; t++) {
		double ss = 0, dot = 0;
		for (int c = 0; c < C; c++) ss += (double)bf(x[t * C + c]) * bf(x[t * C + c]);
		double r = 1 / std::sqrt(ss / C + 1e-6);
		want_rstd[t] = r;
		for (int c = 0; c < C; c++) {
			want_out[t * C + c] = bf(w[c]) * bf(x[t * C + c]) * r;
			dot += (double)bf(dy[t * C + c]) * bf(w[c]) * bf(x[t * C + c]);
		}
		for (int c = 0; c < C; c++) {
			want_dx[t * C + c] = dx0[t * C + c] + bf(dy[t * C + c]) * bf(w[c]) * r - bf(x[t * C + c]) * dot * r * r * r / C;
			want_dw[c] += (double)bf(dy[t * C + c]) * bf(x[t * C + c]) * r;
		}
	}
	std::vector<float> outf(out.size());
	for (size_t i = 0; i < out.size(); i++) outf[i] = bf(out[i]);
	size_t a1, a2, a3, a4;
	double e_out = worst(outf.data(), want_out.data(), outf.size(), 1e-6, &a1);
	double e_rstd = worst(rstd.data(), want_rstd.data(), T, 0, &a2);
	double e_dx = worst(dx.data(), want_dx.data(), dx.size(), -1, &a3);
	double e_dw = worst(dw.data(), want_dw.data(), C, -1, &a4);
	char msg[200];
	snprintf(msg, sizeof msg, "rmsnorm T=%d C=%d: out within 2^-8 (%.2g), rstd within 1e-5, dx and dw within 1e-5 of their largest (%.2g %.2g %.2g)", T, C,
		 e_out, e_rstd, e_dx, e_dw);
	EXPECT(reports(NULL, "rmsnorm") & (e == 0 && e_out <= BF16_TOL && e_rstd < 1e-5 && e_dx < 1e-5 && e_dw < 1e-5), msg);
}

static void test_swiglu(size_t n)
{
	std::vector<uint16_t> g = rand_bf16(n, 6), u = rand_bf16(n, 2), da = rand_bf16(n, 1);
	std::vector<uint16_t> act(n, BF_NAN), dg(n, BF_NAN), du(n, BF_NAN);
	int e;
	{
		dev<uint16_t> dact(act), dgg(g), duu(u), dda(da), ddg(dg), ddu(du);
		e = kern_swiglu_fwd(dact.b(), dgg.b(), duu.b(), n, 0);
		e |= kern_swiglu_bwd(ddg.b(), ddu.b(), dda.b(), dgg.b(), duu.b(), n, 0);
	}
	std::vector<double> wa(n), wg(n), wu(n);
	std::vector<float> fa(n), fg(n), fu(n);
	for (size_t i = 0; i < n; i++) {
		double x = bf(g[i]), y = bf(u[i]), d = bf(da[i]), s = 1 / (1 + std::exp(-x));
		wa[i] = x * s * y;
		wu[i] = d * x * s;
		wg[i] = d * y * s * (1 + x * (1 - s));
		fa[i] = bf(act[i]), fg[i] = bf(dg[i]), fu[i] = bf(du[i]);
	}
	size_t a;
	double ea = worst(fa.data(), wa.data(), n, 1e-6, &a), eg = worst(fg.data(), wg.data(), n, 1e-6, &a),
	       eu = worst(fu.data(), wu.data(), n, 1e-6, &a);
	char msg[160];
	snprintf(msg, sizeof msg, "swiglu n=%zu: act, dgate, dup within 2^-8 (%.2g %.2g %.2g)", n, ea, eg, eu);
	EXPECT(reports(NULL, "swiglu") & (e == 0 && ea <= BF16_TOL && eg <= BF16_TOL && eu <= BF16_TOL), msg);
}

static void test_embed(int T, int C, int V)
{
	std::vector<uint16_t> emb = rand_bf16((size_t)V * C, 1), x((size_t)T * C, BF_NAN);
	std::vector<uint32_t> ids(T);
	for (int t = 0; t < T; t++) ids[t] = (uint32_t)((t * 7919 + 3) % V); /* rows repeat when T > V */
	std::vector<float> dx((size_t)T * C), demb((size_t)V * C);
	for (auto &d : dx) d = urand();
	for (auto &d : demb) d = urand();
	std::vector<float> want = demb;
	for (int i = 0; i < C; i++) /* the CPU engine's loop, column by column, tokens in order */
		for (int t = 0; t < T; t++) want[(size_t)ids[t] * C + i] += dx[(size_t)t * C + i];
	int e;
	{
		dev<uint16_t> dxx(x), demm(emb);
		dev<uint32_t> dids(ids);
		dev<float> ddemb(demb), ddx(dx);
		e = kern_embed_fwd(dxx.b(), demm.b(), dids, T, C, 0);
		e |= kern_embed_bwd(ddemb, ddx, dids, T, C, 0);
	}
	int same = !memcmp(demb.data(), want.data(), want.size() * sizeof(float));
	for (int t = 0; t < T && same; t++) same = !memcmp(&x[(size_t)t * C], &emb[(size_t)ids[t] * C], (size_t)C * 2);
	char msg[160];
	snprintf(msg, sizeof msg, "embedding T=%d C=%d V=%d: rows copied, backward bit-identical to the CPU engine's order", T, C, V);
	EXPECT(reports(NULL, "embed") & (e == 0 && same), msg);
}

static void test_rope(int T, int nh, int D)
{
	int half = D / 2;
	std::vector<uint16_t> x = rand_bf16((size_t)T * nh * D, 2), y = x;
	std::vector<float> cs((size_t)T * half), sn((size_t)T * half);
	for (int t = 0; t < T; t++)
		for (int i = 0; i < half; i++) {
			double a = (t % 5) * std::pow(1e6, -2.0 * i / D) * 3;
			cs[(size_t)t * half + i] = (float)std::cos(a), sn[(size_t)t * half + i] = (float)std::sin(a);
		}
	int e;
	{
		dev<uint16_t> dy(y);
		dev<float> dc(cs), dsn(sn);
		e = kern_rope(dy.b(), dc, dsn, T, nh, D, 0, 0);
	}
	std::vector<double> want(x.size());
	std::vector<float> got(x.size());
	for (int t = 0; t < T; t++)
		for (int h = 0; h < nh; h++)
			for (int i = 0; i < half; i++) {
				size_t b = ((size_t)t * nh + h) * D;
				double a = bf(x[b + i]), c = bf(x[b + i + half]), co = cs[(size_t)t * half + i], si = sn[(size_t)t * half + i];
				want[b + i] = a * co - c * si, want[b + i + half] = c * co + a * si;
			}
	for (size_t i = 0; i < x.size(); i++) got[i] = bf(y[i]);
	size_t at;
	double ef = worst(got.data(), want.data(), x.size(), 1e-2, &at);
	{
		dev<uint16_t> dy(y);
		dev<float> dc(cs), dsn(sn);
		e |= kern_rope(dy.b(), dc, dsn, T, nh, D, 1, 0); /* and back */
	}
	for (size_t i = 0; i < x.size(); i++) got[i] = bf(y[i]), want[i] = bf(x[i]);
	double eb = worst(got.data(), want.data(), x.size(), -1, &at); /* a rotation mixes the pair: against the largest */
	char msg[200];
	snprintf(msg, sizeof msg, "rotary T=%d heads=%d D=%d: within 2^-8 (%.2g); the inverse brings it back within two roundings of the largest (%.2g)",
		 T, nh, D, ef, eb);
	EXPECT(reports(NULL, "rope") & (e == 0 && ef <= BF16_TOL && eb <= 2 * BF16_TOL), msg);
}

static void test_ce(int R, int V)
{
	std::vector<float> z((size_t)R * V), loss(R, NAN);
	std::vector<int> tgt(R);
	for (auto &v : z) v = urand() * 8;
	for (int r = 0; r < R; r++) tgt[r] = (r * 131 + 7) % V;
	std::vector<float> z0 = z;
	float scale = 1.0f / 37;
	int e;
	{
		dev<float> dz(z), dl(loss);
		dev<int> dt(tgt);
		e = kern_ce(dz, dl, dt, R, V, scale, 0);
	}
	std::vector<double> wl(R), wz(z.size());
	for (int r = 0; r < R; r++) {
		double mx = -INFINITY, sum = 0;
		for (int j = 0; j < V; j++) mx = std::fmax(mx, z0[(size_t)r * V + j]);
		for (int j = 0; j < V; j++) sum += std::exp(z0[(size_t)r * V + j] - mx);
		wl[r] = mx + std::log(sum) - z0[(size_t)r * V + tgt[r]];
		for (int j = 0; j < V; j++)
			wz[(size_t)r * V + j] = scale * (std::exp(z0[(size_t)r * V + j] - mx) / sum - (j == tgt[r]));
	}
	size_t at;
	double el = worst(loss.data(), wl.data(), R, 0, &at), ez = worst(z.data(), wz.data(), z.size(), -1, &at);
	char msg[160];
	snprintf(msg, sizeof msg, "cross-entropy R=%d V=%d: loss within 1e-5 (%.2g), gradient within 1e-5 of its largest (%.2g)", R, V, el, ez);
	EXPECT(reports(NULL, "ce") & (e == 0 && el < 1e-5 && ez < 1e-5), msg);
}

/* The LM head's loss with soft labels against the CPU engine's kd_row
 * (lib/kd.c, itself held to PyTorch by tests/t-train-kd.sh): rows with
 * soft labels (the label among the teacher's k at some) and rows without. */
static void test_ce_kd(int R, int V, int k, int kind, float tau, float alpha, float beta)
{
	std::vector<float> z((size_t)R * V), loss(R, NAN), ce(R, NAN), kd(R, NAN), lp((size_t)R * k);
	std::vector<int> tgt(R), srow(R);
	std::vector<unsigned> sid((size_t)R * k);
	for (auto &v : z) v = urand() * 8;
	int m = 0;
	for (int r = 0; r < R; r++) {
		tgt[r] = (r * 131 + 7) % V;
		srow[r] = r % 3 == 2 ? -1 : m++;
	}
	for (int i = 0; i < m; i++) {
		double left = 0.05 + 0.3 * (i % 5) / 4.0, p = 1 - left;
		for (int a = 0; a < k; a++) {
			sid[(size_t)i * k + a] = (unsigned)((i % 2 ? tgt[i] : tgt[i] + 1) + a * 97) % (unsigned)V;
			double q = a + 1 < k ? p * 0.6 : p;
			lp[(size_t)i * k + a] = (float)std::log(q);
			p -= q;
		}
	}
	std::vector<float> z0 = z;
	float scale = 1.0f / 29;
	int e;
	{
		dev<float> dz(z), dl(loss), dc(ce), dk(kd), dlp(lp);
		dev<int> dt(tgt), ds(srow);
		dev<unsigned> di(sid);
		e = kern_ce_kd(dz, dl, dc, dk, dt, ds, di, dlp, k, R, V, scale, 1, alpha, tau, kind, beta, 0);
	}
	kd_config kc = {alpha, tau, kind, beta};
	std::vector<double> wl(R), wc(R), wk(R), wz(z.size());
	for (int r = 0; r < R; r++) {
		std::vector<float> row(z0.begin() + (size_t)r * V, z0.begin() + (size_t)(r + 1) * V);
		if (srow[r] >= 0) {
			wl[r] = kd_row(&kc, row.data(), V, tgt[r], k, (const uint32_t *)&sid[(size_t)srow[r] * k],
				       &lp[(size_t)srow[r] * k], scale, 1, &wc[r], &wk[r]);
			for (int j = 0; j < V; j++) wz[(size_t)r * V + j] = row[j];
			continue;
		}
		double mx = -INFINITY, sum = 0;
		for (int j = 0; j < V; j++) mx = std::fmax(mx, row[j]);
		for (int j = 0; j < V; j++) sum += std::exp(row[j] - mx);
		wl[r] = wc[r] = mx + std::log(sum) - row[tgt[r]], wk[r] = 0;
		for (int j = 0; j < V; j++) wz[(size_t)r * V + j] = scale * (std::exp(row[j] - mx) / sum - (j == tgt[r]));
	}
	size_t at;
	double el = worst(loss.data(), wl.data(), R, 0, &at), ec = worst(ce.data(), wc.data(), R, 0, &at);
	double ek = worst(kd.data(), wk.data(), R, 0, &at), ez = worst(z.data(), wz.data(), z.size(), -1, &at);
	char msg[220];
	snprintf(msg, sizeof msg, "cross-entropy with soft labels R=%d V=%d k=%d %s tau %g: loss, its parts within 1e-5 "
		 "(%.2g %.2g %.2g), gradient within 1e-5 of its largest (%.2g)", R, V, k, kd_loss_name(kind), tau, el, ec, ek, ez);
	EXPECT(reports(NULL, "ce_kd") & (e == 0 && el < 1e-5 && ec < 1e-5 && ek < 1e-5 && ez < 1e-5), msg);
}

static void test_update(size_t n)
{
	std::vector<float> g(n), p(n), m(n), v(n);
	for (size_t i = 0; i < n; i++) g[i] = urand() * 0.1f, p[i] = urand(), m[i] = urand() * 0.01f, v[i] = std::fabs(urand()) * 1e-4f;
	std::vector<double> sum(1, NAN), scratch(kern_sumsq_scratch() / sizeof(double), NAN);
	int e;
	{
		dev<double> ds(sum), dsc(scratch);
		dev<float> dg(g);
		e = kern_sumsq(ds, dsc, dg, n, 0);
	}
	double want = optim_grad_norm(g.data(), n), got = std::sqrt(sum[0]);
	char msg[200];
	snprintf(msg, sizeof msg, "global norm of %zu gradients: %.17g vs lib/optim.c's %.17g (1e-12 relative)", n, got, want);
	EXPECT(reports(NULL, "sumsq") & (e == 0 && std::fabs(got - want) <= 1e-12 * want), msg);
	adamw_hparams h = {};
	h.lr = 1e-5, h.beta1 = 0.9, h.beta2 = 0.999, h.eps = 1e-8, h.weight_decay = 0.01;
	std::vector<float> p2 = p, m2 = m, v2 = v;
	std::vector<uint16_t> p16(n, BF_NAN);
	{
		dev<float> dp(p), dg(g), dm(m), dv(v);
		dev<uint16_t> d16(p16);
		e = kern_adamw_step(dp, d16.b(), dg, dm, dv, n, kern_adamw_scalars(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, 3, 1), 0);
	}
	adamw_update(p2.data(), g.data(), m2.data(), v2.data(), n, 3, &h, 1);
	double worst_p = 0;
	int copy_ok = 1;
	for (size_t i = 0; i < n; i++) {
		worst_p = std::fmax(worst_p, std::fabs(p[i] - p2[i]) / (std::fabs(p2[i]) + 1e-3));
		worst_p = std::fmax(worst_p, std::fabs(m[i] - m2[i]) / (std::fabs(m2[i]) + 1e-6));
		worst_p = std::fmax(worst_p, std::fabs(v[i] - v2[i]) / (std::fabs(v2[i]) + 1e-9));
		copy_ok &= p16[i] == tobf(p[i]);
	}
	snprintf(msg, sizeof msg, "AdamW on %zu parameters = lib/optim.c adamw_update within 1e-6 (%.2g), the bf16 copy written", n, worst_p);
	EXPECT(reports(NULL, "adamw") & (e == 0 && worst_p < 1e-6 && copy_ok), msg);
}

/* Attention in double from the same bf16 inputs: out, lse, and the
 * gradients of sum(out * dout). */
static void attn_ref(const std::vector<int> &ds, int T, int H, int KV, int D, const uint16_t *q, const uint16_t *k,
		     const uint16_t *v, const uint16_t *dout, std::vector<double> &out, std::vector<double> &lse,
		     std::vector<double> &dq, std::vector<double> &dk, std::vector<double> &dv)
{
	out.assign((size_t)T * H * D, 0), lse.assign((size_t)H * T, 0);
	dq.assign((size_t)T * H * D, 0), dk.assign((size_t)T * KV * D, 0), dv.assign((size_t)T * KV * D, 0);
	double sc = 1 / std::sqrt((double)D);
	std::vector<double> p(T);
	for (int h = 0; h < H; h++) {
		int g = h / (H / KV);
		for (int t = 0; t < T; t++) {
			const uint16_t *qt = q + ((size_t)t * H + h) * D;
			double mx = -INFINITY, sum = 0;
			for (int j = ds[t]; j <= t; j++) {
				double s = 0;
				for (int d = 0; d < D; d++) s += bf(qt[d]) * (double)bf(k[((size_t)j * KV + g) * D + d]);
				p[j] = s * sc, mx = std::fmax(mx, p[j]);
			}
			for (int j = ds[t]; j <= t; j++) sum += (p[j] = std::exp(p[j] - mx));
			lse[(size_t)h * T + t] = mx + std::log(sum);
			double *o = &out[((size_t)t * H + h) * D];
			for (int j = ds[t]; j <= t; j++)
				for (int d = 0; d < D; d++) o[d] += p[j] / sum * bf(v[((size_t)j * KV + g) * D + d]);
			/* backward of sum(out . dout) through this row */
			const uint16_t *go = dout + ((size_t)t * H + h) * D;
			double delta = 0;
			for (int d = 0; d < D; d++) delta += o[d] * bf(go[d]);
			for (int j = ds[t]; j <= t; j++) {
				double pj = p[j] / sum, dp = 0;
				for (int d = 0; d < D; d++) dp += bf(go[d]) * (double)bf(v[((size_t)j * KV + g) * D + d]);
				double dsij = pj * (dp - delta) * sc;
				for (int d = 0; d < D; d++) {
					dq[((size_t)t * H + h) * D + d] += dsij * bf(k[((size_t)j * KV + g) * D + d]);
					dk[((size_t)j * KV + g) * D + d] += dsij * bf(qt[d]);
					dv[((size_t)j * KV + g) * D + d] += pj * bf(go[d]);
				}
			}
		}
	}
}

static double bf_err(const std::vector<uint16_t> &got, const std::vector<double> &want)
{
	std::vector<float> f(got.size());
	for (size_t i = 0; i < got.size(); i++) f[i] = bf(got[i]);
	size_t at;
	return worst(f.data(), want.data(), f.size(), -1, &at);
}

static void test_attention(const std::vector<int> &docs, int H, int KV, int D)
{
	int T = 0;
	std::vector<int> ds;
	for (int n : docs) {
		for (int i = 0; i < n; i++) ds.push_back(T);
		T += n;
	}
	std::vector<uint16_t> q = rand_bf16((size_t)T * H * D, 2), k = rand_bf16((size_t)T * KV * D, 2),
			       v = rand_bf16((size_t)T * KV * D, 1), dout = rand_bf16((size_t)T * H * D, 1);
	std::vector<uint16_t> out((size_t)T * H * D, BF_NAN), dq(out.size(), BF_NAN), dk(k.size(), BF_NAN), dv(v.size(), BF_NAN);
	std::vector<float> lse((size_t)H * T, NAN), scratch(kern_attn_bwd_scratch(T, H) / sizeof(float), NAN);
	int e;
	{
		dev<uint16_t> dq_(q), dk_(k), dv_(v), dout_(dout), dout2(out), ddq(dq), ddk(dk), ddv(dv);
		dev<float> dl(lse), dsc(scratch);
		dev<int> dds(ds);
		e = kern_attn_fwd(dout2.b(), dl, dq_.b(), dk_.b(), dv_.b(), dds, T, H, KV, D, 0);
		e |= kern_attn_bwd(ddq.b(), ddk.b(), ddv.b(), dsc, dq_.b(), dk_.b(), dv_.b(), dout2.b(), dl, dout_.b(), dds, T, H, KV, D, 0);
	}
	std::vector<double> wo, wl, wq, wk, wv;
	attn_ref(ds, T, H, KV, D, q.data(), k.data(), v.data(), dout.data(), wo, wl, wq, wk, wv);
	size_t at;
	double eo = bf_err(out, wo), el = worst(lse.data(), wl.data(), lse.size(), 1, &at); /* lse near 0: absolute */
	double eq = bf_err(dq, wq), ek = bf_err(dk, wk), ev = bf_err(dv, wv);
	char msg[240];
	snprintf(msg, sizeof msg, "attention T=%d in %zu documents, H=%d KV=%d D=%d: out %.2g, lse %.2g, dq %.2g, dk %.2g, dv %.2g "
		 "(of the largest; bf16 out/grads 2^-7 as the backward reads the rounded out, lse 1e-5 of |lse| + 1)", T, docs.size(), H, KV, D,
		 eo, el, eq, ek, ev);
	EXPECT(reports(NULL, "attention") & (e == 0 && eo <= BF16_TOL && el < 1e-5 && eq <= 2 * BF16_TOL && ek <= 2 * BF16_TOL && ev <= BF16_TOL), msg);
}

int main(void)
{
	{
		int n = 1000, B = 3;
		std::vector<float> in((size_t)n * B), out(B, NAN);
		double want[3] = {0, 0, 0};
		for (int b = 0; b < B; b++)
			for (int i = 0; i < n; i++) in[(size_t)b * n + i] = (float)((i * 7 + b) % 13), want[b] += in[(size_t)b * n + i];
		int e;
		{
			dev<float> dout(out), din(in);
			e = SIMT_LAUNCH(block_sum_kernel, dim3(B), dim3(96), 0, (cudaStream_t)0, (float *)dout, (const float *)din, n);
		}
		EXPECT(reports(NULL, "sum") & (e == 0 && out[0] == want[0] && out[1] == want[1] && out[2] == want[2]),
		       "a block reduction through warp shuffles and shared memory: exact sums, nothing reported");
	}
	{
		std::vector<int> out(9 * 32, -7);
		int e;
		{
			dev<int> dout(out);
			e = SIMT_LAUNCH(warp_ops_kernel, dim3(1), dim3(32), 0, (cudaStream_t)0, (int *)dout);
		}
		int all = e == 0;
		for (int l = 0; l < 32; l++) {
			all &= out[0 * 32 + l] == (l ^ 5) * 10;
			all &= out[1 * 32 + l] == (l + 3 < 32 ? l + 3 : l) * 10; /* past the warp: own value */
			all &= out[2 * 32 + l] == (l >= 2 ? l - 2 : l) * 10;
			all &= out[3 * 32 + l] == 70;
			all &= out[4 * 32 + l] == ((l & ~7) + ((l + 1) & 7)) * 10;
			all &= out[5 * 32 + l] == (int)0x49249249u;
			all &= out[6 * 32 + l] == 1 && out[7 * 32 + l] == 0;
			all &= out[8 * 32 + l] == (l < 16 ? (l ^ 1) : -1);
		}
		EXPECT(reports(NULL, "warp ops") & (all),
		       "shuffles (xor, down, up, indexed, segments of 8, half a warp) and votes as the CUDA guide defines them");
	}
#ifndef __CUDACC__ /* the runtime's own checks: on the CPU only */
	std::vector<float> f(64, 0);
	std::vector<int> ints(64, 0);
	SIMT_LAUNCH(racy_kernel, dim3(2), dim3(64), 0, (cudaStream_t)0, f.data());
	EXPECT(reports("racy_kernel: shared memory race (write after read) at byte 4 of a 256-byte array between thread (1,0,0) of block (0,0,0) and thread (0,0,0)", "race"),
	       "a shared-memory race (no barrier between a write and another thread's read) is reported");
	SIMT_LAUNCH(raceless_kernel, dim3(2), dim3(64), 0, (cudaStream_t)0, f.data());
	EXPECT(reports(NULL, "raceless") && f[0] == 1 && f[63] == 0, "the same with its barrier: nothing reported, the right values");
	SIMT_LAUNCH(divergent_barrier_kernel, dim3(1), dim3(64), 0, (cudaStream_t)0, f.data());
	EXPECT(reports("reached by 40 of 64 threads", "divergent"), "a barrier 24 of 64 threads skip is reported, not a hang");
	SIMT_LAUNCH(bad_mask_kernel, dim3(1), dim3(48), 0, (cudaStream_t)0, ints.data());
	EXPECT(reports("names lanes past the block's last thread", "mask"), "a shuffle mask naming absent lanes is reported");
	SIMT_LAUNCH(shared_overrun_kernel, dim3(1), dim3(33), 0, (cudaStream_t)0, f.data());
	EXPECT(reports("shared index 32 out of range (32 elements)", "overrun"), "an index past a shared array is reported");
	int bad = SIMT_LAUNCH(block_sum_kernel, dim3(1), dim3(2048), 0, (cudaStream_t)0, f.data(), f.data(), 1);
	EXPECT(bad == cudaErrorInvalidConfiguration && reports("invalid launch", "config"), "a block of 2048 threads is refused");
#endif

	test_rmsnorm(1, 896);
	test_rmsnorm(37, 67);   /* rows and columns that fit no block or warp */
	test_rmsnorm(70, 300);  /* several backward blocks, a partial last one */
	test_swiglu(1);
	test_swiglu(4864 * 3 + 5);
	test_embed(1, 64, 10);
	test_embed(300, 67, 50); /* ids repeat: the order of their sums matters */
	test_rope(7, 3, 64);
	test_rope(33, 2, 6);
	test_ce(3, 1000);
	test_ce(5, 151936 / 16 + 3);
	test_ce_kd(6, 1000, 5, KD_FORWARD_KL, 1.0f, 0.5f, 0.5f);
	test_ce_kd(5, 151936 / 16 + 3, 20, KD_JSD, 2.0f, 0.7f, 0.3f);
	test_ce_kd(4, 777, 1, KD_REVERSE_KL, 0.5f, 1.0f, 0.5f);
	test_update(1);
	test_update(1000003);
	test_attention({37}, 3, 1, 24);           /* one document, every head on one kv head */
	test_attention({70, 1, 79}, 4, 2, 64);     /* three documents, one of a single token, tiles across them */
	test_attention({5, 130}, 2, 2, 16);        /* groups of one, a document spanning three tiles */
	EXPECT(!dev_failed, "every device allocation, copy and synchronisation succeeded");
	TEST_END();
}
