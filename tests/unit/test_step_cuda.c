/* test_step_cuda.c — the CUDA backend's whole training step, run on the
 * CPU: kernels/ops_cuda.cu built against the CPU runtime of kernels/simt.h
 * (every hand-written kernel executed thread by thread, the products
 * through the same wrapper as cuBLASLt's, with bf16 operands and fp32
 * sums), against the CPU engine in fp32 (lib/ops_cpu.c, itself checked
 * against PyTorch by tests/t-train.sh).
 *
 * Two tiny Qwen2 models of odd shapes (heads of 5 over 1 key/value head,
 * and 4 over 4 with tied embeddings; widths that are no multiple of a
 * warp), biases non-zero, three optimizer steps of two accumulated packed
 * samples with several documents each (one of a single token), cosine
 * schedule with warmup, clipping that bites.
 *
 * Bounds, and why: the CUDA path rounds every activation and the compute
 * copy of every weight to bf16 (half an ulp: 2^-9 = 0.2% relative); a
 * gradient is the product of some 10 to 40 such rounded factors along the
 * backward chain, whose errors add up roughly as a random walk (a few
 * times 0.2%, measured here about 0.5-1%). So: the loss within 1%
 * relative, the gradient norm within 3%, each parameter tensor's gradient
 * within 5% (norm of the difference over the norm). After three AdamW
 * steps a weight moves by about lr per step whatever the gradient's size,
 * so an element whose gradient is near 0 can move the other way: every
 * weight within 2 lr per step of the CPU's, and at most 2% of the elements
 * of any tensor beyond lr per step. A kernel with a wrong index, a
 * missing term, a race or a missed barrier is far outside these. */
#include "../../kernels/ops_cuda.h"
#include "../../lib/check.h"
#include "../../lib/ops_cpu.h"
#include "../../lib/trainstep.h"
#include "testhelp.h"

#include <math.h>
#include <string.h>

/* Built for a GPU too (make gpu-check: build/gpu/test_step_cuda), where no
 * CPU runtime watches the kernels. */
#ifdef DS_ON_GPU
static int simt_take_reports(char *buf, size_t n)
{
	(void)buf, (void)n;
	return 0;
}
#else
int simt_take_reports(char *buf, size_t n);
#endif

static const char *const cfgs[2] = {
	"{\"model_type\":\"qwen2\",\"vocab_size\":97,\"hidden_size\":40,\"intermediate_size\":56,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":5,\"num_key_value_heads\":1,"
	"\"max_position_embeddings\":256,\"rms_norm_eps\":1e-6,\"rope_theta\":10000,"
	"\"tie_word_embeddings\":false,\"initializer_range\":0.05}",
	"{\"model_type\":\"qwen2\",\"vocab_size\":131,\"hidden_size\":48,\"intermediate_size\":72,"
	"\"num_hidden_layers\":3,\"num_attention_heads\":4,\"num_key_value_heads\":4,"
	"\"max_position_embeddings\":256,\"rms_norm_eps\":1e-6,\"rope_theta\":1000000,"
	"\"tie_word_embeddings\":true,\"initializer_range\":0.05}",
};

enum { STEPS = 3, SAMPLES = 2 };
/* Under ASan the CPU runtime is many times slower (the shadow of a fiber's
 * stack is cleared at each switch): one step of the first model there,
 * which takes every code path the others take. */
#if defined(__SANITIZE_ADDRESS__)
static const int steps = 1, models = 1;
#else
static const int steps = STEPS, models = 2;
#endif

typedef struct run {
	double loss[STEPS], norm[STEPS];
	float *grad0; /* the first step's gradients, before clipping */
	float *w;     /* the weights after the steps */
} run;

/* A fresh model of config text cfg (a model owns its config). */
static qwen2_model *model_of(const char *cfg)
{
	FILE *f = fopen("/tmp/test_step_cuda.json", "w");
	fputs(cfg, f);
	fclose(f);
	qwen2_config c;
	char *err = NULL;
	if (qwen2_config_load("/tmp/test_step_cuda.json", &c, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	remove("/tmp/test_step_cuda.json");
	qwen2_model *m = qwen2_init_random(&c, 5);
	for (size_t i = 0; i < m->n_params; i++)
		if (strstr(m->table[i].name, "bias"))
			for (size_t k = 0; k < m->table[i].numel; k++)
				m->w.base[m->table[i].offset + k] = (float)((int)(k * 29 % 13) - 6) * 0.03f;
	return m;
}

static void train(const char *c, const ops *o, void *ctx, const qwen2_batch *s, run *r)
{
	qwen2_model *m = model_of(c);
	trainstep_hparams h = {2e-3, 0.9, 0.999, 1e-8, 0.01, 1.0, SCHED_COSINE, STEPS, 1};
	trainstep *ts = trainstep_new(m, o, ctx, comm_single(), &h);
	size_t N = m->w.n;
	r->grad0 = xmalloc(N * sizeof(float));
	r->w = xmalloc(N * sizeof(float));
	for (int k = 0; k < steps; k++) {
		trainstep_stats st;
		trainstep_grad(ts, s + (k % 2) * SAMPLES, SAMPLES, &st);
		r->loss[k] = st.loss;
		if (k == 0) trainstep_grads_get(ts, r->grad0);
		r->norm[k] = trainstep_clip(ts);
		trainstep_update(ts, k);
	}
	trainstep_weights_to_host(ts);
	memcpy(r->w, m->w.base, N * sizeof(float));
	trainstep_free(ts);
	qwen2_free(m);
}

/* One step's gradient with the distillation loss (kd) over s's first
 * SAMPLES samples: loss, its parts, the gradients (N, owned in *g). */
static void kd_step(const char *c, const ops *o, void *ctx, const qwen2_batch *s, const kd_config *kd,
		    trainstep_stats *st, float **g)
{
	qwen2_model *m = model_of(c);
	trainstep_hparams h = {2e-3, 0.9, 0.999, 1e-8, 0.01, 1.0, SCHED_COSINE, STEPS, 1};
	trainstep *ts = trainstep_new(m, o, ctx, comm_single(), &h);
	forward_set_kd(trainstep_forward(ts), kd);
	trainstep_grad(ts, s, SAMPLES, st);
	*g = xmalloc(m->w.n * sizeof(float));
	trainstep_grads_get(ts, *g);
	trainstep_free(ts);
	qwen2_free(m);
}

static double rel(double a, double b)
{
	return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1e-30);
}

static void compare(int which, const char *c, const qwen2_batch *s)
{
	void *cpu = ops_cpu_new();
	char err[256];
	void *gpu = ops_cuda_new(0, err, sizeof err);
	EXPECT(gpu != NULL, "the CUDA backend starts");
	if (!gpu) {
		printf("     | %s\n", err);
		return;
	}
	run a, b;
	train(c, &ops_cpu, cpu, s, &a);
	train(c, &ops_cuda, gpu, s, &b);
	char rep[2048];
	int nrep = simt_take_reports(rep, sizeof rep);
	if (nrep) printf("%s\n", rep);
	char what[200];
	snprintf(what, sizeof what, "model %d: the CPU runtime reports no race, divergent barrier or bad index", which);
	EXPECT(nrep == 0, what);
	double lmax = 0, nmax = 0;
	for (int k = 0; k < steps; k++) {
		double lr = rel(b.loss[k], a.loss[k]), nr = rel(b.norm[k], a.norm[k]);
		lmax = lr > lmax ? lr : lmax;
		nmax = nr > nmax ? nr : nmax;
	}
	printf("     | model %d: loss %.6f (cpu %.6f), worst over %d steps: loss %.2e, grad norm %.2e relative\n", which,
	       b.loss[0], a.loss[0], steps, lmax, nmax);
	snprintf(what, sizeof what, "model %d: every step's loss within 1%% of the CPU engine's", which);
	EXPECT(lmax < 0.01 && a.loss[0] > 1, what);
	snprintf(what, sizeof what, "model %d: every step's gradient norm within 3%%", which);
	EXPECT(nmax < 0.03 && a.norm[0] > 1.0, what); /* > max_grad_norm: clipping bites */
	qwen2_model *m = model_of(c);
	double gworst = 0, wworst = 0, fworst = 0;
	const char *gname = "", *wname = "";
	double lr_step = 2e-3;
	for (size_t i = 0; i < m->n_params; i++) {
		const qwen2_param *p = &m->table[i];
		double d2 = 0, n2 = 0, b2 = 0;
		size_t far = 0;
		for (size_t k = p->offset; k < p->offset + p->numel; k++) {
			double d = (double)b.grad0[k] - a.grad0[k];
			d2 += d * d, n2 += (double)a.grad0[k] * a.grad0[k], b2 += (double)b.grad0[k] * b.grad0[k];
			double dw = fabs((double)b.w[k] - a.w[k]);
			if (!(dw <= 2 * lr_step * steps)) wworst = INFINITY, wname = p->name;
			else if (dw > wworst && wworst != INFINITY) wworst = dw, wname = p->name;
			far += dw > lr_step * steps;
		}
		double g = sqrt(d2 / (n2 > 0 ? n2 : 1e-30)), fr = (double)far / (double)p->numel;
		if (getenv("DS_TEST_VERBOSE")) printf("     | %-48s grad %.2e of %.3e (cuda %.3e)\n", p->name, g, sqrt(n2), sqrt(b2));
		if (!(g <= gworst)) gworst = g, gname = p->name;
		if (fr > fworst) fworst = fr;
	}
	printf("     | model %d: worst gradient %.2e relative (%s); worst weight %.2e absolute (%s); at most %.2f%% of a "
	       "tensor beyond lr per step\n",
	       which, gworst, gname, wworst, wname, 100 * fworst);
	snprintf(what, sizeof what, "model %d: each tensor's gradient within 5%% of the CPU engine's", which);
	EXPECT(gworst < 0.05, what);
	snprintf(what, sizeof what, "model %d: every weight after %d steps within 2 lr per step", which, steps);
	EXPECT(wworst <= 2 * lr_step * steps, what);
	snprintf(what, sizeof what, "model %d: at most 2%% of a tensor's weights beyond lr per step", which);
	EXPECT(fworst <= 0.02, what);
	qwen2_free(m);
	free(a.grad0), free(a.w), free(b.grad0), free(b.w);
	/* stage dpo's log-probabilities: the forward pass alone, the LM head
	 * without its gradient */
	qwen2_model *m1 = model_of(c), *m2 = model_of(c);
	forward *f1 = forward_new(m1, &ops_cpu, cpu), *f2 = forward_new(m2, &ops_cuda, gpu);
	double l1 = forward_loss(f1, &s[2]), l2 = forward_loss(f2, &s[2]);
	printf("     | model %d: loss-only pass %.6f (cpu %.6f)\n", which, l2, l1);
	snprintf(what, sizeof what, "model %d: the loss-only pass (DPO's log-probabilities) within 1%% of the CPU's", which);
	EXPECT(rel(l2, l1) < 0.01 && l1 > 1, what);
	forward_free(f1), forward_free(f2);
	qwen2_free(m1), qwen2_free(m2);
	/* distillation: the soft labels' loss inside the LM head's chunks (jsd
	 * at temperature 2; the first sample's soft labels hold the label at
	 * some positions and not at others) */
	kd_config kd = {0.6, 2.0, KD_JSD, 0.3};
	trainstep_stats sa, sb;
	float *ga, *gb;
	kd_step(c, &ops_cpu, cpu, s, &kd, &sa, &ga);
	kd_step(c, &ops_cuda, gpu, s, &kd, &sb, &gb);
	nrep = simt_take_reports(rep, sizeof rep);
	if (nrep) printf("%s\n", rep);
	double d2 = 0, n2 = 0;
	qwen2_model *m3 = model_of(c);
	for (size_t k = 0; k < m3->w.n; k++) d2 += ((double)gb[k] - ga[k]) * ((double)gb[k] - ga[k]), n2 += (double)ga[k] * ga[k];
	printf("     | model %d: kd step loss %.6f (cpu %.6f), ce %.6f (%.6f), kd %.6f (%.6f) over %ld positions, gradient "
	       "%.2e relative\n",
	       which, sb.loss, sa.loss, sb.ce, sa.ce, sb.kd, sa.kd, sa.soft, sqrt(d2 / n2));
	snprintf(what, sizeof what, "model %d: the distillation step's loss, its two parts and its gradient within 1%%, 1%% "
		 "and 5%% of the CPU engine's, no race or barrier reported", which);
	EXPECT(nrep == 0 && sa.soft > 20 && sa.kd > 0.01 && rel(sb.loss, sa.loss) < 0.01 && rel(sb.ce, sa.ce) < 0.01 &&
		       rel(sb.kd, sa.kd) < 0.01 && sqrt(d2 / n2) < 0.05 && sb.soft == sa.soft,
	       what);
	free(ga), free(gb);
	qwen2_free(m3);
	ops_cuda_free(gpu);
	ops_cpu_free(cpu);
}

int main(void)
{
	/* four packed samples: several documents, one of a single token, long
	 * enough for two attention tiles of 64 */
	static const uint32_t docs[4][4] = {{37, 1, 29, 0}, {150, 0, 0, 0}, {5, 5, 60, 41}, {1, 88, 0, 0}};
	static const int nd[4] = {3, 1, 4, 2};
	uint32_t ids[4][160];
	uint8_t mask[4][160];
	qwen2_batch s[4];
	for (int k = 0; k < 4; k++) {
		int T = 0;
		for (int d = 0; d < nd[k]; d++) T += (int)docs[k][d];
		for (int t = 0; t < T; t++) ids[k][t] = (uint32_t)(t * 37 + k * 11 + 5) % 97, mask[k][t] = (t + k) % 4 != 0;
		s[k] = (qwen2_batch){T, nd[k], ids[k], mask[k], docs[k], NULL};
	}
	/* soft labels for the first two samples: at each target (mask 1, not
	 * first of its document) K = 3 teacher tokens, the label among them
	 * at two positions in three, the mass left outside 5 to 40% */
	static uint32_t spos[2][160], sid[2][160 * 3];
	static float slp[2][160 * 3];
	static qwen2_soft soft[2];
	for (int k = 0; k < 2; k++) {
		int n = 0;
		for (int d = 0, o = 0; d < nd[k]; o += (int)docs[k][d], d++)
			for (int t = o + 1; t < o + (int)docs[k][d]; t++) {
				if (!mask[k][t]) continue;
				uint32_t lab = ids[k][t], x = (uint32_t)(t * 7 + k);
				sid[k][n * 3] = t % 3 ? lab : (lab + 1) % 97;
				sid[k][n * 3 + 1] = (lab + 2 + x % 40) % 97;
				sid[k][n * 3 + 2] = (lab + 50 + x % 30) % 97;
				double left = 0.05 + 0.35 * (double)(x % 17) / 16, p0 = (1 - left) * 0.7, p1 = (1 - left) * 0.2;
				slp[k][n * 3] = (float)log(p0), slp[k][n * 3 + 1] = (float)log(p1);
				slp[k][n * 3 + 2] = (float)log(1 - left - p0 - p1);
				spos[k][n++] = (uint32_t)t;
			}
		soft[k] = (qwen2_soft){3, n, spos[k], sid[k], slp[k]};
		s[k].soft = &soft[k];
	}
	for (int i = 0; i < models; i++) compare(i, cfgs[i], s);
	TEST_END();
}
