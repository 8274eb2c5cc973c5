/* ds-train — full-parameter SFT of a Qwen2 model on token shards.
 *
 *   ds-train [CONFIG.yaml] [KEY=VALUE ...] [--KEY VALUE ...]   train
 *   ds-train --init-random CONFIG.json -o DIR                   a random model
 *   ds-train logits -m DIR --ids 1,2,3 -o OUT.safetensors       testing aids:
 *   ds-train check-step -m DIR --batch B.json -o OUT.safetensors  the numbers
 *                                                    the oracle tests compare
 *
 * The model (lib/qwen2.c), its computation (lib/forward.c, on the CPU
 * backend lib/ops_cpu.c or the CUDA one kernels/ops_cuda.cu) and the step (lib/trainstep.c: accumulation,
 * clipping, AdamW, the schedule, the optimizer checkpoint) live in lib/;
 * this file is the run around them: settings, data order, logging,
 * checkpoint directories and resuming.
 *
 * Started by mpirun or srun, it is one rank of a data-parallel run
 * (lib/comm_mpi.c): every rank reads the shards and walks the same global
 * order; each global batch (per_device_train_batch_size x
 * gradient_accumulation_steps x world samples) is dealt out micro-batch
 * by micro-batch, micro-batch j to rank j mod world, as transformers'
 * sharded data loader deals them; rank 0 alone writes files and reports.
 */
#include "../lib/check.h"
#include "../lib/cli.h"
#include "../lib/clock.h"
#include "../lib/comm.h"
#include "../lib/bootstrap.h"
#include "../lib/comm_mpi.h"
#include "../lib/comm_nccl.h"
#include "../lib/forward.h"
#include "../lib/json.h"
#include "../lib/ops_cpu.h"
#include "../lib/optim.h"
#include "../lib/pref.h"
#include "../lib/prefstep.h"
#include "../lib/progress.h"
#include "../lib/qwen2.h"
#include "../lib/rng.h"
#include "../lib/safetensors.h"
#include "../lib/shard.h"
#include "../lib/svgplot.h"
#include "../lib/trainconf.h"
#include "../lib/trainstep.h"
#ifdef DS_CUDA
#include "../kernels/ops_cuda.h"
#endif

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"usage: ds-train [CONFIG.yaml] [KEY=VALUE ...] [--KEY VALUE ...]\n"
	"       ds-train --init-random CONFIG.json -o DIR [--seed N] [--dtype float32|bfloat16|float16]\n"
	"       ds-train logits -m DIR --ids ID,ID,... -o OUT.safetensors\n"
	"       ds-train check-step -m DIR --batch BATCH.json -o OUT.safetensors [--lr X]\n"
	"                [--weight-decay X] [--max-grad-norm X] [--scheduler NAME]\n"
	"                [--warmup-ratio X] [--total-steps N] [--adam-eps X]\n"
	"                [--device cpu|cuda] [--kd-alpha A [--kd-temperature T] [--kd-loss L]\n"
	"                [--kd-jsd-beta B]]\n"
	"Full-parameter SFT of a Qwen2 model on ds-tokenize shards, on a CUDA GPU\n"
	"(bf16, make CUDA=1) or on the CPU (fp32).\n"
	"Settings are LLaMA-Factory's keys (see ds-train(1)).\n";

/* ---- the backend ------------------------------------------------------ */

/* What computes the step: the CPU backend (lib/ops_cpu.c) or the CUDA one
 * (kernels/ops_cuda.cu, in builds with CUDA=1). */
typedef struct backend {
	const ops *o;
	void *ctx;
	int cuda;
} backend;

/* torchrun's rendezvous, when torchrun started this process */
static bootstrap_info *boot;

#ifdef DS_CUDA
/* This rank's place among the ranks on its machine, by the launcher's
 * word (0 without one): the GPU it takes. */
static int local_rank(void)
{
	if (boot) return boot->local_rank;
	static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID",
	                                   "LOCAL_RANK"};
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
		const char *v = getenv(vars[i]);
		char *end;
		long n = v ? strtol(v, &end, 10) : -1;
		if (v && end != v && !*end && n >= 0 && n < 65536) return (int)n;
	}
	return 0;
}
#endif

/* device: cpu, cuda or auto (cuda when this build has it and a GPU is
 * there). Exits with a message when cuda is asked for and cannot be had. */
static backend backend_open(const char *device)
{
	backend b = {&ops_cpu, NULL, 0};
#ifdef DS_CUDA
	if (strcmp(device, "cpu")) {
		int n = ops_cuda_devices();
		if (n > 0) {
			char err[256];
			b.ctx = ops_cuda_new(local_rank() % n, err, sizeof err);
			if (b.ctx) {
				b.o = &ops_cuda;
				b.cuda = 1;
				return b;
			}
			if (!strcmp(device, "cuda")) cli_die(EXIT_RUNTIME, "device: cuda: %s", err);
			cli_warn("device: auto: %s; training on the CPU", err);
		} else if (!strcmp(device, "cuda")) {
			cli_die(EXIT_RUNTIME, "device: cuda: no CUDA device is visible to this process (driver, "
			        "CUDA_VISIBLE_DEVICES?); device: cpu trains on the CPU");
		}
	}
#else
	if (!strcmp(device, "cuda"))
		cli_die(EXIT_USAGE, "device: cuda: this ds-train was built without the CUDA backend (make CUDA=1, "
		        "with nvcc); device: cpu trains on the CPU");
#endif
	b.ctx = ops_cpu_new();
	return b;
}

static void backend_close(backend *b)
{
#ifdef DS_CUDA
	if (b->cuda) {
		ops_cuda_free(b->ctx);
		return;
	}
#endif
	ops_cpu_free(b->ctx);
}

/* The most GPU memory the run held (MiB), 0 on the CPU. */
static double backend_peak_mib(const backend *b)
{
#ifdef DS_CUDA
	if (b->cuda) return (double)ops_cuda_peak_bytes(b->ctx) / (1024.0 * 1024.0);
#endif
	return 0;
}

static const char *backend_name(const backend *b)
{
#ifdef DS_CUDA
	if (b->cuda) return ops_cuda_device_name(b->ctx);
#endif
	return "the CPU";
}

/* ---- testing aids ----------------------------------------------------- */

static qwen2_model *load_or_die(const char *dir)
{
	char *err = NULL;
	qwen2_model *m = qwen2_load(dir, &err);
	if (!m) cli_die(EXIT_RUNTIME, "%s", err);
	return m;
}

static jv read_json_or_die(const char *path)
{
	char *text = cli_read_file(path);
	if (!text) cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	size_t at;
	const char *why;
	jv v = json_parse(text, strlen(text), &at, &why);
	free(text);
	if (!jv_is_valid(v)) cli_die(EXIT_RUNTIME, "%s: byte %zu: %s", path, at, why);
	return v;
}

static void save_or_die(st_writer *w, const char *out)
{
	char *err = NULL;
	if (safetensors_writer_save_file(w, out, &err) < 0) cli_die(EXIT_RUNTIME, "%s", err);
	safetensors_writer_free(w);
}

/* A sample of BATCH.json: {"ids": [...], "mask": [...], "doc_len": [...]},
 * and soft labels as ds-tokenize inspect --json prints them:
 * "soft": [[position, [id, logprob, id, logprob, ...]], ...]. */
typedef struct jsample {
	qwen2_batch b;
	uint32_t *ids, *doc_len;
	uint8_t *mask;
	qwen2_soft soft;
	uint32_t *spos, *sid;
	float *slp;
} jsample;

static uint32_t *u32_array(jv a, const char *what, int *n, uint32_t limit)
{
	if (jv_get_kind(a) != JV_KIND_ARRAY) cli_die(EXIT_RUNTIME, "batch: %s is not an array", what);
	*n = jv_array_length(jv_copy(a));
	uint32_t *out = xmalloc((size_t)(*n ? *n : 1) * sizeof *out);
	for (int i = 0; i < *n; i++) {
		jv x = jv_array_get(jv_copy(a), i);
		double d = jv_get_kind(x) == JV_KIND_NUMBER ? jv_number_value(x) : -1;
		jv_free(x);
		if (d < 0 || d != (uint32_t)d || d >= limit)
			cli_die(EXIT_RUNTIME, "batch: %s[%d] is not an integer below %u", what, i, limit);
		out[i] = (uint32_t)d;
	}
	jv_free(a);
	return out;
}

static void jsample_read(jsample *s, jv o, uint32_t vocab)
{
	int n, nm, nd;
	s->ids = u32_array(jv_object_get(jv_copy(o), jv_string("ids")), "ids", &n, vocab);
	uint32_t *m = u32_array(jv_object_get(jv_copy(o), jv_string("mask")), "mask", &nm, 2);
	s->doc_len = u32_array(jv_object_get(jv_copy(o), jv_string("doc_len")), "doc_len", &nd, UINT32_MAX);
	long sum = 0;
	for (int i = 0; i < nd; i++) sum += s->doc_len[i];
	if (n < 1 || nm != n || nd < 1 || sum != n)
		cli_die(EXIT_RUNTIME, "batch: a sample's ids, mask and doc_len do not agree");
	s->mask = xmalloc((size_t)n);
	for (int i = 0; i < n; i++) s->mask[i] = (uint8_t)m[i];
	free(m);
	s->b = (qwen2_batch){n, nd, s->ids, s->mask, s->doc_len, NULL};
	jv soft = jv_object_get(jv_copy(o), jv_string("soft"));
	int ns = jv_get_kind(soft) == JV_KIND_ARRAY ? jv_array_length(jv_copy(soft)) : 0, k = 0;
	s->spos = xmalloc((size_t)(ns ? ns : 1) * sizeof *s->spos);
	for (int i = 0; i < ns; i++) {
		jv e = jv_array_get(jv_copy(soft), i);
		jv pos = jv_array_get(jv_copy(e), 0), alt = jv_array_get(jv_copy(e), 1);
		int na = jv_get_kind(alt) == JV_KIND_ARRAY ? jv_array_length(jv_copy(alt)) : 0;
		if (jv_get_kind(pos) != JV_KIND_NUMBER || na < 2 || na % 2 || (k && na / 2 != k))
			cli_die(EXIT_RUNTIME, "batch: soft[%d] is not [position, [id, logprob, ...]] of one width", i);
		if (!k) {
			k = na / 2;
			s->sid = xmalloc((size_t)ns * k * sizeof *s->sid);
			s->slp = xmalloc((size_t)ns * k * sizeof *s->slp);
		}
		s->spos[i] = (uint32_t)jv_number_value(pos);
		for (int a = 0; a < k; a++) {
			jv x = jv_array_get(jv_copy(alt), 2 * a), y = jv_array_get(jv_copy(alt), 2 * a + 1);
			s->sid[(size_t)i * k + a] = (uint32_t)jv_number_value(x);
			s->slp[(size_t)i * k + a] = (float)jv_number_value(y);
			jv_free(x), jv_free(y);
		}
		jv_free(pos), jv_free(alt), jv_free(e);
	}
	jv_free(soft);
	jv_free(o);
	if (ns) {
		s->soft = (qwen2_soft){k, ns, s->spos, s->sid, s->slp};
		s->b.soft = &s->soft;
	}
}

static uint32_t *parse_ids(const char *list, int *n)
{
	uint32_t *ids = xmalloc((strlen(list) / 2 + 2) * sizeof *ids);
	*n = 0;
	for (const char *p = list; *p;) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(p, &end, 10);
		if (end == p || errno || v > UINT32_MAX || (*end && *end != ','))
			cli_usage_error(usage, "--ids: '%s' is not a comma-separated list of token ids", list);
		ids[(*n)++] = (uint32_t)v;
		p = *end ? end + 1 : end;
	}
	if (!*n) cli_usage_error(usage, "--ids: no ids");
	return ids;
}

static int cmd_logits(int argc, char **argv)
{
	const char *model = NULL, *ids_arg = NULL, *out = NULL;
	static const struct option lo[] = {{"model", 1, 0, 'm'}, {"ids", 1, 0, 'i'}, {"output", 1, 0, 'o'}, {0}};
	for (int c; (c = getopt_long(argc, argv, "m:o:", lo, NULL)) != -1;) {
		if (c == 'm') model = optarg;
		else if (c == 'i') ids_arg = optarg;
		else if (c == 'o') out = optarg;
		else cli_usage_error(usage, "logits: unknown option");
	}
	if (!model || !ids_arg || !out) cli_usage_error(usage, "logits needs -m, --ids and -o");
	int n;
	uint32_t *ids = parse_ids(ids_arg, &n);
	qwen2_model *m = load_or_die(model);
	for (int i = 0; i < n; i++)
		if (ids[i] >= (uint32_t)m->cfg.vocab) cli_die(EXIT_USAGE, "--ids: %u is not below the vocabulary size %d", ids[i], m->cfg.vocab);
	uint8_t *mask = xcalloc((size_t)n, 1);
	uint32_t doc = (uint32_t)n;
	qwen2_batch b = {n, 1, ids, mask, &doc, NULL};
	float *logits = xmalloc((size_t)n * m->cfg.vocab * sizeof(float));
	qwen2_logits(m, &b, logits);
	st_writer *w = safetensors_writer_new();
	int64_t shape[2] = {n, m->cfg.vocab};
	safetensors_writer_add(w, "logits", ST_F32, 2, shape, logits);
	save_or_die(w, out);
	free(logits);
	free(mask);
	free(ids);
	qwen2_free(m);
	return 0;
}

static double num_arg(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (end == s || *end || errno) cli_usage_error(usage, "--%s: '%s' is not a number", opt, s);
	return d;
}

/* What the PyTorch oracle (tests/oracle/qwen2_ref.py train) computes, so
 * the two can be compared tensor by tensor: per step the loss, lr, grad
 * norm and target count; the first step's logits and gradients; the final
 * parameters. */
static int cmd_check_step(int argc, char **argv)
{
	const char *model = NULL, *batch = NULL, *out = NULL, *sched = "cosine", *device = "cpu";
	double lr = 1e-3, wd = 0.1, max_norm = 1.0, warmup_ratio = 0.1, eps = 1e-8;
	long total = 0;
	kd_config kc = {0, 1, KD_FORWARD_KL, 0.5};
	static const struct option lo[] = {
		{"model", 1, 0, 'm'}, {"batch", 1, 0, 'b'}, {"output", 1, 0, 'o'}, {"lr", 1, 0, 'l'},
		{"weight-decay", 1, 0, 'w'}, {"max-grad-norm", 1, 0, 'g'}, {"scheduler", 1, 0, 's'},
		{"warmup-ratio", 1, 0, 'r'}, {"total-steps", 1, 0, 't'}, {"adam-eps", 1, 0, 'e'}, {"device", 1, 0, 'd'},
		{"kd-alpha", 1, 0, 'A'}, {"kd-temperature", 1, 0, 'T'}, {"kd-loss", 1, 0, 'L'}, {"kd-jsd-beta", 1, 0, 'B'},
		{0}};
	for (int c; (c = getopt_long(argc, argv, "m:o:", lo, NULL)) != -1;) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'b': batch = optarg; break;
		case 'o': out = optarg; break;
		case 'l': lr = num_arg("lr", optarg); break;
		case 'w': wd = num_arg("weight-decay", optarg); break;
		case 'g': max_norm = num_arg("max-grad-norm", optarg); break;
		case 's': sched = optarg; break;
		case 'r': warmup_ratio = num_arg("warmup-ratio", optarg); break;
		case 't': total = (long)num_arg("total-steps", optarg); break;
		case 'e': eps = num_arg("adam-eps", optarg); break;
		case 'd': device = optarg; break;
		case 'A': kc.alpha = num_arg("kd-alpha", optarg); break;
		case 'T': kc.tau = num_arg("kd-temperature", optarg); break;
		case 'B': kc.beta = num_arg("kd-jsd-beta", optarg); break;
		case 'L':
			if ((kc.loss = kd_loss_parse(optarg)) < 0)
				cli_usage_error(usage, "--kd-loss: '%s' is not forward_kl, reverse_kl or jsd", optarg);
			break;
		default: cli_usage_error(usage, "check-step: unknown option");
		}
	}
	if (!model || !batch || !out) cli_usage_error(usage, "check-step needs -m, --batch and -o");
	if (strcmp(device, "cpu") && strcmp(device, "cuda") && strcmp(device, "auto"))
		cli_usage_error(usage, "--device: '%s' is not cpu, cuda or auto", device);
	int kind = sched_parse(sched);
	if (kind < 0) cli_usage_error(usage, "--scheduler: '%s' is not linear, cosine, constant or constant_with_warmup", sched);
	qwen2_model *m = load_or_die(model);
	jv steps = jv_object_get(read_json_or_die(batch), jv_string("steps"));
	if (jv_get_kind(steps) != JV_KIND_ARRAY || jv_array_length(jv_copy(steps)) < 1)
		cli_die(EXIT_RUNTIME, "%s: no \"steps\" array", batch);
	int S = jv_array_length(jv_copy(steps));
	if (total <= 0) total = S;
	long warmup = (long)ceil(warmup_ratio * (double)total);
	if (kind == SCHED_CONSTANT && warmup > 0) kind = SCHED_CONSTANT_WARMUP;
	backend be = backend_open(device);
	trainstep_hparams th = {lr, 0.9, 0.999, eps, wd, max_norm, kind, total, warmup};
	trainstep *ts = trainstep_new(m, be.o, be.ctx, comm_single(), &th);
	forward_set_kd(trainstep_forward(ts), &kc);
	size_t N = m->w.n;
	float *loss = xmalloc(S * sizeof(float)), *lrs = xmalloc(S * sizeof(float));
	float *norms = xmalloc(S * sizeof(float)), *ntok = xmalloc(S * sizeof(float));
	float *ce = xmalloc(S * sizeof(float)), *kdv = xmalloc(S * sizeof(float));
	float *grad0 = xmalloc(N * sizeof(float)), *logits0 = NULL;
	int64_t logits_shape[2] = {0, m->cfg.vocab};
	for (int k = 0; k < S; k++) {
		jv list = jv_array_get(jv_copy(steps), k);
		if (jv_get_kind(list) != JV_KIND_ARRAY) cli_die(EXIT_RUNTIME, "%s: steps[%d] is not an array", batch, k);
		int ns = jv_array_length(jv_copy(list));
		jsample *smp = xcalloc((size_t)(ns ? ns : 1), sizeof *smp);
		qwen2_batch *bs = xcalloc((size_t)(ns ? ns : 1), sizeof *bs);
		for (int i = 0; i < ns; i++) {
			jsample_read(&smp[i], jv_array_get(jv_copy(list), i), (uint32_t)m->cfg.vocab);
			bs[i] = smp[i].b;
		}
		jv_free(list);
		if (k == 0 && ns > 0) {
			logits_shape[0] = smp[0].b.n_tokens;
			logits0 = xmalloc((size_t)smp[0].b.n_tokens * m->cfg.vocab * sizeof(float));
			forward_logits(trainstep_forward(ts), &smp[0].b, logits0);
		}
		trainstep_stats st;
		trainstep_grad(ts, bs, ns, &st);
		loss[k] = (float)st.loss;
		ce[k] = (float)st.ce;
		kdv[k] = (float)st.kd;
		ntok[k] = (float)st.targets;
		if (k == 0) trainstep_grads_get(ts, grad0);
		norms[k] = (float)trainstep_clip(ts);
		lrs[k] = (float)trainstep_update(ts, k);
		for (int i = 0; i < ns; i++) {
			free(smp[i].ids);
			free(smp[i].mask);
			free(smp[i].doc_len);
			free(smp[i].spos), free(smp[i].sid), free(smp[i].slp);
		}
		free(smp);
		free(bs);
	}
	jv_free(steps);
	trainstep_weights_to_host(ts);
	st_writer *w = safetensors_writer_new();
	int64_t sshape[1] = {S};
	safetensors_writer_add(w, "loss", ST_F32, 1, sshape, loss);
	safetensors_writer_add(w, "lr", ST_F32, 1, sshape, lrs);
	safetensors_writer_add(w, "grad_norm", ST_F32, 1, sshape, norms);
	safetensors_writer_add(w, "ntok", ST_F32, 1, sshape, ntok);
	if (kc.alpha > 0) {
		safetensors_writer_add(w, "ce", ST_F32, 1, sshape, ce);
		safetensors_writer_add(w, "kd", ST_F32, 1, sshape, kdv);
	}
	if (logits0) safetensors_writer_add(w, "logits.0", ST_F32, 2, logits_shape, logits0);
	char **names = xmalloc(2 * m->n_params * sizeof *names);
	for (size_t i = 0; i < m->n_params; i++) {
		const qwen2_param *p = &m->table[i];
		names[2 * i] = xasprintf("grad.%s", p->name);
		names[2 * i + 1] = xasprintf("param.%s", p->name);
		safetensors_writer_add(w, names[2 * i], ST_F32, p->ndim, p->shape, grad0 + p->offset);
		safetensors_writer_add(w, names[2 * i + 1], ST_F32, p->ndim, p->shape, m->w.base + p->offset);
	}
	save_or_die(w, out);
	for (size_t i = 0; i < 2 * m->n_params; i++) free(names[i]);
	free(names);
	free(loss), free(lrs), free(norms), free(ntok), free(grad0), free(logits0), free(ce), free(kdv);
	trainstep_free(ts);
	backend_close(&be);
	qwen2_free(m);
	return 0;
}

static int cmd_init_random(const char *config, const char *out, uint64_t seed, const char *dtype)
{
	qwen2_config c;
	char *err = NULL;
	if (qwen2_config_load(config, &c, &err) < 0) cli_die(EXIT_RUNTIME, "%s", err);
	qwen2_model *m = qwen2_init_random(&c, seed);
	if (qwen2_save(m, out, dtype, &err) < 0) cli_die(EXIT_RUNTIME, "%s", err);
	qwen2_free(m);
	return 0;
}

/* ---- the data --------------------------------------------------------- */

/* Every sample of the shards, in memory: token shards are compact (4 bytes
 * a token; the seed's 5k samples at 8192 are 160 MB), and holding them lets
 * each epoch visit them in its own seeded order. */
typedef struct dataset {
	size_t n;                 /* samples */
	size_t *tok_off, *doc_off; /* (n + 1) offsets into ids/mask and doc_len */
	uint32_t *ids;            /* (total tokens) */
	uint8_t *mask;            /* (total tokens) */
	uint32_t *doc_len;        /* (total documents) */
	size_t cap_tok, cap_doc;
	long targets;             /* over all samples */
	uint64_t tokens;
	int max_len;
	/* the teacher's soft labels (ds-tokenize --soft-labels), soft_k a position */
	int soft_k;
	size_t *soft_off;         /* (n + 1) offsets into soft_pos, or NULL: none in the shards */
	uint32_t *soft_pos, *soft_id; /* (total), (total * soft_k) */
	float *soft_lp;           /* (total * soft_k) */
	size_t cap_soft;
	qwen2_soft *softv;        /* (n) each sample's, once loaded */
} dataset;

static qwen2_batch dataset_get(const dataset *d, size_t i)
{
	size_t t0 = d->tok_off[i], d0 = d->doc_off[i];
	return (qwen2_batch){(int)(d->tok_off[i + 1] - t0), (int)(d->doc_off[i + 1] - d0), d->ids + t0, d->mask + t0,
	                     d->doc_len + d0, d->softv && d->softv[i].n ? &d->softv[i] : NULL};
}

/* Pairs: both sides begin with one prompt, untrained, and each has a
 * trained token to compare. */
static void pairs_check(const dataset *d)
{
	for (size_t i = 0; i + 1 < d->n; i += 2) {
		qwen2_batch c = dataset_get(d, i), r = dataset_get(d, i + 1);
		int pc = 0, pr = 0;
		while (pc < c.n_tokens && !c.mask[pc]) pc++;
		while (pr < r.n_tokens && !r.mask[pr]) pr++;
		if (pc != pr || memcmp(c.ids, r.ids, (size_t)pc * sizeof *c.ids))
			cli_die(EXIT_RUNTIME, "pair %zu: the chosen and rejected sides share no prompt (their untrained "
			        "beginnings differ)", i / 2 + 1);
		long tc = qwen2_count_targets(&c), tr = qwen2_count_targets(&r);
		if (!tc || !tr)
			cli_die(EXIT_RUNTIME, "pair %zu: the %s side has no trained token (cut away by the cutoff? tokenize "
			        "with a larger --cutoff-len)", i / 2 + 1, tc ? "rejected" : "chosen");
	}
}

/* Read every shard, refusing one made with another tokenizer than the
 * model's (when the model directory has a tokenizer.json to compare). */
/* Sample s's soft labels after the samples before it (the next sample's
 * offset set either way). */
static void dataset_add_soft(dataset *d, const shard_sample *s, const char *path)
{
	size_t o = d->soft_off[d->n], k = s->soft_k;
	d->soft_off[d->n + 1] = o + s->soft_n;
	if (!s->soft_n) return;
	if (d->soft_k && (size_t)d->soft_k != k)
		cli_die(EXIT_RUNTIME, "%s: sample %zu has soft labels of %zu alternatives, the samples before %d: one "
		        "training set has one number (ds-teacher --logprobs K)", path, d->n + 1, k, d->soft_k);
	d->soft_k = (int)k;
	if (o + s->soft_n > d->cap_soft) {
		d->cap_soft = 2 * (o + s->soft_n);
		d->soft_pos = xrealloc(d->soft_pos, d->cap_soft * sizeof *d->soft_pos);
		d->soft_id = xrealloc(d->soft_id, d->cap_soft * k * sizeof *d->soft_id);
		d->soft_lp = xrealloc(d->soft_lp, d->cap_soft * k * sizeof *d->soft_lp);
	}
	memcpy(d->soft_pos + o, s->soft_pos, s->soft_n * sizeof *s->soft_pos);
	memcpy(d->soft_id + o * k, s->soft_id, s->soft_n * k * sizeof *s->soft_id);
	memcpy(d->soft_lp + o * k, s->soft_lp, s->soft_n * k * sizeof *s->soft_lp);
}

static void dataset_load(dataset *d, const train_config *tc, const qwen2_model *m, const char *tok_dir)
{
	memset(d, 0, sizeof *d);
	int dpo = !strcmp(tc->stage, "dpo");
	d->tok_off = xmalloc(sizeof(size_t));
	d->doc_off = xmalloc(sizeof(size_t));
	d->soft_off = xmalloc(sizeof(size_t));
	d->tok_off[0] = d->doc_off[0] = d->soft_off[0] = 0;
	uint8_t fp[32];
	int have_fp = 0;
	char *tok = tok_dir ? xasprintf("%s/tokenizer.json", tok_dir) : NULL;
	if (tok && access(tok, R_OK) == 0) {
		char *err = NULL;
		if (shard_fingerprint(tok, fp, &err) < 0) cli_die(EXIT_RUNTIME, "%s", err);
		have_fp = 1;
	} else {
		cli_warn("%s: no tokenizer.json beside the model; the shards' tokenizer is not checked",
		         tok_dir ? tok_dir : "init_random");
	}
	free(tok);
	size_t cap_n = 0;
	for (int f = 0; f < tc->n_shards; f++) {
		const char *path = tc->shards[f];
		char *err = NULL;
		shard_reader *r = shard_reader_open(path, &err);
		if (!r) cli_die(EXIT_RUNTIME, "%s", err);
		const shard_header *h = shard_reader_header(r);
		if (dpo && !(h->flags & SHARD_PAIRWISE))
			cli_die(EXIT_RUNTIME, "%s: holds conversations, not preference pairs: stage: dpo trains on pairs "
			        "(ds-tokenize makes them from records with chosen and rejected, as ds-sharegpt -f dpo writes)",
			        path);
		if (have_fp && memcmp(h->fingerprint, fp, 32)) {
			char a[65], b[65];
			shard_fingerprint_hex(h->fingerprint, a);
			shard_fingerprint_hex(fp, b);
			cli_die(EXIT_RUNTIME, "%s: made with another tokenizer than the model's (shard %.12s, model %.12s): "
			        "tokenize again with the model's tokenizer.json", path, a, b);
		}
		if (h->vocab_size > (uint32_t)m->cfg.vocab)
			cli_die(EXIT_RUNTIME, "%s: tokenizer vocabulary %u is larger than the model's %d", path, h->vocab_size,
			        m->cfg.vocab);
		if (h->cutoff_len > (uint32_t)tc->cutoff_len)
			cli_die(EXIT_RUNTIME, "%s: samples are up to %u tokens, over cutoff_len %d: set cutoff_len: %u, or "
			        "tokenize again with --cutoff %d", path, h->cutoff_len, tc->cutoff_len, h->cutoff_len,
			        tc->cutoff_len);
		shard_sample s;
		int rc;
		long kept = 0;
		while ((rc = shard_reader_next(r, &s)) == 1) {
			/* LF's max_samples counts examples: a pair is one */
			if (tc->max_samples > 0 && kept >= (dpo ? 2 : 1) * tc->max_samples) break;
			kept++;
			if (d->n + 2 > cap_n) {
				cap_n = 2 * cap_n + 64;
				d->tok_off = xrealloc(d->tok_off, cap_n * sizeof(size_t));
				d->doc_off = xrealloc(d->doc_off, cap_n * sizeof(size_t));
				d->soft_off = xrealloc(d->soft_off, cap_n * sizeof(size_t));
			}
			dataset_add_soft(d, &s, path);
			int rej = (s.doc_flags[0] & SHARD_DOC_REJECTED) != 0;
			if (!dpo && rej)
				cli_die(EXIT_RUNTIME, "%s: holds preference pairs (ds-tokenize made them from chosen/rejected "
				        "records): train them with stage: dpo", path);
			if (dpo && (rej != (int)(kept % 2 == 0) || s.n_docs != 1))
				cli_die(EXIT_RUNTIME, "%s: sample %ld is not the %s side of a pair: a stage: dpo dataset is pairs, "
				        "chosen then rejected, as ds-tokenize writes them", path, kept, kept % 2 ? "chosen" : "rejected");
			size_t t0 = d->tok_off[d->n], d0 = d->doc_off[d->n];
			if (t0 + s.n_tokens > d->cap_tok) {
				d->cap_tok = 2 * (t0 + s.n_tokens);
				d->ids = xrealloc(d->ids, d->cap_tok * sizeof *d->ids);
				d->mask = xrealloc(d->mask, d->cap_tok);
			}
			if (d0 + s.n_docs > d->cap_doc) {
				d->cap_doc = 2 * (d0 + s.n_docs);
				d->doc_len = xrealloc(d->doc_len, d->cap_doc * sizeof *d->doc_len);
			}
			for (uint32_t i = 0; i < s.n_tokens; i++)
				if (s.ids[i] >= (uint32_t)m->cfg.vocab)
					cli_die(EXIT_RUNTIME, "%s: sample %zu: token id %u is not below the model's vocabulary %d",
					        path, d->n + 1, s.ids[i], m->cfg.vocab);
			memcpy(d->ids + t0, s.ids, s.n_tokens * sizeof *s.ids);
			memcpy(d->mask + t0, s.mask, s.n_tokens);
			memcpy(d->doc_len + d0, s.doc_len, s.n_docs * sizeof *s.doc_len);
			d->tok_off[d->n + 1] = t0 + s.n_tokens;
			d->doc_off[d->n + 1] = d0 + s.n_docs;
			d->n++;
			qwen2_batch b = dataset_get(d, d->n - 1);
			d->targets += qwen2_count_targets(&b);
			d->tokens += s.n_tokens;
			if ((int)s.n_tokens > d->max_len) d->max_len = (int)s.n_tokens;
		}
		if (rc < 0) cli_die(EXIT_RUNTIME, "%s: %s", path, shard_reader_error(r));
		shard_reader_close(r);
		if (dpo && kept % 2)
			cli_die(EXIT_RUNTIME, "%s: ends with the chosen side of a pair and no rejected side", path);
	}
	if (dpo) pairs_check(d);
	if (d->n == 0) cli_die(EXIT_RUNTIME, "the shards hold no samples");
	if (d->soft_k) {
		d->softv = xcalloc(d->n, sizeof *d->softv);
		for (size_t i = 0; i < d->n; i++) {
			size_t o = d->soft_off[i];
			d->softv[i] = (qwen2_soft){d->soft_k, (int)(d->soft_off[i + 1] - o), d->soft_pos + o,
						   d->soft_id + o * (size_t)d->soft_k, d->soft_lp + o * (size_t)d->soft_k};
		}
	}
	if (d->targets == 0) cli_die(EXIT_RUNTIME, "the shards hold no trained tokens (every loss mask is 0)");
}

static void dataset_free(dataset *d)
{
	free(d->tok_off), free(d->doc_off), free(d->ids), free(d->mask), free(d->doc_len);
	free(d->soft_off), free(d->soft_pos), free(d->soft_id), free(d->soft_lp), free(d->softv);
}

/* The order of epoch e: a Fisher-Yates shuffle seeded by (seed, e), so a
 * resumed run sees the same order without saving it. */
static void epoch_order(size_t *order, size_t n, long seed, long epoch, int keep)
{
	if (keep) { /* disable_shuffling: the data's own order */
		for (size_t i = 0; i < n; i++) order[i] = i;
		return;
	}
	uint64_t s = (uint64_t)seed * 0x9e3779b97f4a7c15ull ^ (uint64_t)(epoch + 1) * 0xd1b54a32d192ed03ull;
	for (size_t i = 0; i < n; i++) order[i] = i;
	for (size_t i = n; i > 1; i--) {
		uint64_t z = splitmix64(&s);
		size_t j = (size_t)(z % i), t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

/* ---- files -------------------------------------------------------------- */

static int is_nonempty_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d) return 0;
	struct dirent *e;
	int any = 0;
	while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return any;
}

/* Copy src to dst through a temporary name (atomic). */
static int copy_file(const char *src, const char *dst)
{
	FILE *in = fopen(src, "rb");
	if (!in) return errno == ENOENT ? 0 : -1;
	char *tmp = xasprintf("%s.tmp", dst);
	FILE *out = fopen(tmp, "wb");
	int rc = -1;
	if (out) {
		char buf[1 << 16];
		size_t n;
		while ((n = fread(buf, 1, sizeof buf, in)) > 0)
			if (fwrite(buf, 1, n, out) != n) break;
		int bad = ferror(in) || ferror(out) || fflush(out) || fsync(fileno(out));
		bad |= fclose(out) != 0;
		if (!bad && rename(tmp, dst) == 0) rc = 0;
		else unlink(tmp);
	}
	fclose(in);
	free(tmp);
	return rc;
}

/* The files beside the weights that make a model directory usable. */
static const char *const tokenizer_files[] = {
	"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
	"added_tokens.json", "generation_config.json", "chat_template.jinja", NULL};

static void write_text_atomic(const char *path, const char *text)
{
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	int bad = !f;
	if (f) {
		bad = fputs(text, f) < 0 || fflush(f) || fsync(fileno(f));
		bad |= fclose(f) != 0;
	}
	if (bad || rename(tmp, path) < 0) cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	free(tmp);
}

/* ---- the run -------------------------------------------------------------- */

typedef struct run {
	train_config *tc;
	const comm *c;        /* borrowed: this rank among the run's */
	int root;             /* rank 0: writes the files, reports */
	qwen2_model *m;
	const char *tok_dir;  /* where the tokenizer files come from, or NULL */
	trainstep *ts;        /* owned: gradients, moments, the schedule */
	long step;            /* optimizer steps done */
	uint64_t tokens_done; /* input tokens seen, every rank's, over the whole run */
	long total, warmup, steps_per_epoch;
	int sched;
	jv log;               /* array of the log lines written so far */
	char *last_ckpt;      /* owned; NULL before the first */
} run;

static void save_model_dir(run *r, const char *dir)
{
	char *err = NULL;
	trainstep_weights_to_host(r->ts);
	if (qwen2_save(r->m, dir, r->tc->bf16 ? "bfloat16" : r->tc->fp16 ? "float16" : "float32", &err) < 0)
		cli_die(EXIT_RUNTIME, "%s", err);
	for (int i = 0; r->tok_dir && tokenizer_files[i]; i++) {
		char *src = xasprintf("%s/%s", r->tok_dir, tokenizer_files[i]);
		char *dst = xasprintf("%s/%s", dir, tokenizer_files[i]);
		if (strcmp(r->tok_dir, dir) && copy_file(src, dst) < 0) cli_die(EXIT_RUNTIME, "%s: %s", dst, strerror(errno));
		free(src);
		free(dst);
	}
}

static void write_state(run *r, const char *dir)
{
	jv st = jv_object();
	st = jv_object_set(st, jv_string("global_step"), jv_number((double)r->step));
	st = jv_object_set(st, jv_string("max_steps"), jv_number((double)r->total));
	st = jv_object_set(st, jv_string("epoch"), jv_number((double)r->step / (double)r->steps_per_epoch));
	st = jv_object_set(st, jv_string("seed"), jv_number((double)r->tc->seed));
	/* transformers' name: a resumed run counts on from it */
	st = jv_object_set(st, jv_string("num_input_tokens_seen"), jv_number((double)r->tokens_done));
	st = jv_object_set(st, jv_string("log_history"), jv_copy(r->log));
	jv s = jv_dump_string(st, JV_PRINT_PRETTY | JV_PRINT_SPACE1);
	char *path = xasprintf("%s/trainer_state.json", dir);
	write_text_atomic(path, jv_string_value(s));
	jv_free(s);
	free(path);
}

/* The master weights and the moments, fp32, so that a resumed run is the
 * same run bit for bit. */
static void write_optimizer(run *r, const char *dir)
{
	char *path = xasprintf("%s/optimizer.safetensors", dir), *err = NULL;
	if (trainstep_save(r->ts, path, r->step, &err) < 0) cli_die(EXIT_RUNTIME, "%s", err);
	free(path);
}

static long ckpt_step(const char *name)
{
	if (strncmp(name, "checkpoint-", 11)) return -1;
	char *end;
	long v = strtol(name + 11, &end, 10);
	return *end || end == name + 11 ? -1 : v;
}

/* Remove a checkpoint directory and the files in it. Returns rmdir's. */
static int remove_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
		char *f = xasprintf("%s/%s", path, e->d_name);
		unlink(f);
		free(f);
	}
	if (d) closedir(d);
	return rmdir(path);
}

/* Remove the oldest checkpoints beyond save_total_limit. */
static void prune_checkpoints(run *r)
{
	if (r->tc->save_total_limit <= 0) return;
	for (;;) {
		DIR *d = opendir(r->tc->output_dir);
		if (!d) return;
		struct dirent *e;
		long oldest = -1;
		int count = 0;
		while ((e = readdir(d))) {
			long s = ckpt_step(e->d_name);
			if (s < 0) continue;
			count++;
			if (oldest < 0 || s < oldest) oldest = s;
		}
		closedir(d);
		if (count <= r->tc->save_total_limit) return;
		char *old = xasprintf("%s/checkpoint-%ld", r->tc->output_dir, oldest);
		int rc = remove_dir(old);
		if (rc < 0) cli_warn("%s: %s", old, strerror(errno));
		free(old);
		if (rc < 0) return;
	}
}

/* checkpoint-STEP: written under a temporary name, then renamed, so a run
 * killed while saving leaves the previous checkpoint as the latest. */
static void save_checkpoint(run *r)
{
	char *dir = xasprintf("%s/checkpoint-%ld", r->tc->output_dir, r->step);
	char *tmp = xasprintf("%s/.checkpoint-%ld.tmp", r->tc->output_dir, r->step);
	if (r->root) {
		if (mkdir(tmp, 0777) < 0 && errno != EEXIST) cli_die(EXIT_RUNTIME, "%s: %s", tmp, strerror(errno));
		save_model_dir(r, tmp);
		write_state(r, tmp);
	}
	/* every rank: the optimizer state is gathered to rank 0 */
	if (!r->tc->save_only_model) write_optimizer(r, tmp);
	if (!r->root) {
		free(tmp);
		free(dir);
		return;
	}
	if (is_nonempty_dir(dir)) remove_dir(dir); /* the same step saved before (a rerun): replace it */
	if (rename(tmp, dir) < 0) cli_die(EXIT_RUNTIME, "%s: %s", dir, strerror(errno));
	free(tmp);
	free(r->last_ckpt);
	r->last_ckpt = dir;
	prune_checkpoints(r);
}

static char *latest_checkpoint(const char *out)
{
	DIR *d = opendir(out);
	if (!d) return NULL;
	struct dirent *e;
	long best = -1;
	while ((e = readdir(d))) {
		long s = ckpt_step(e->d_name);
		if (s > best) best = s;
	}
	closedir(d);
	return best < 0 ? NULL : xasprintf("%s/checkpoint-%ld", out, best);
}

/* Continue from dir: weights, moments and step from optimizer.safetensors;
 * the log from trainer_state.json. */
static void resume(run *r, const char *dir)
{
	char *path = xasprintf("%s/optimizer.safetensors", dir), *err = NULL, *pt = xasprintf("%s/optimizer.pt", dir);
	if (access(path, R_OK) < 0 && access(pt, R_OK) == 0)
		cli_die(EXIT_RUNTIME, "%s: a transformers (LLaMA-Factory) checkpoint: its optimizer state, optimizer.pt, is a "
		        "Python pickle ds-train cannot read, so the run cannot resume from it; start from its weights instead "
		        "(model_name_or_path: %s, resume_from_checkpoint: null): the moments and the schedule start afresh",
		        dir, dir);
	free(pt);
	if (access(path, R_OK) < 0)
		cli_die(EXIT_RUNTIME, "%s: no optimizer state (saved with save_only_model?): cannot resume from it", dir);
	if (trainstep_load(r->ts, path, &r->step, &err) < 0) cli_die(EXIT_RUNTIME, "%s", err);
	free(path);
	path = xasprintf("%s/trainer_state.json", dir);
	jv state = read_json_or_die(path);
	jv seen = jv_object_get(jv_copy(state), jv_string("num_input_tokens_seen"));
	long long ns = json_count(seen);
	r->tokens_done = ns > 0 ? (uint64_t)ns : 0;
	jv_free(seen);
	jv hist = jv_object_get(state, jv_string("log_history"));
	if (jv_get_kind(hist) == JV_KIND_ARRAY) {
		jv_free(r->log);
		r->log = hist;
	} else {
		jv_free(hist);
	}
	free(path);
	if (r->step > r->total)
		cli_die(EXIT_RUNTIME, "%s: step %ld is past this run's %ld steps", dir, r->step, r->total);
	if (r->root) cli_warn("resuming from %s at step %ld of %ld", dir, r->step, r->total);
}

static void fmt_hms(char *buf, size_t n, double s)
{
	long t = s > 0 ? (long)(s + 0.5) : 0;
	snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* trainer_log.jsonl: LLaMA-Factory's per-log line, rewritten whole from
 * r->log so a resumed run's file holds each step once. */
static void write_log(run *r)
{
	jbuf b = {0};
	int n = jv_array_length(jv_copy(r->log));
	for (int i = 0; i < n; i++) {
		jv e = jv_array_get(jv_copy(r->log), i);
		json_dump(&b, e);
		jv_free(e);
		jbuf_put(&b, "\n", 1);
	}
	jbuf_put(&b, "", 0); /* allocated and NUL-terminated, even when empty */
	char *path = xasprintf("%s/trainer_log.jsonl", r->tc->output_dir);
	write_text_atomic(path, b.p);
	free(path);
	jbuf_free(&b);
}

static void write_plot(run *r)
{
	int n = jv_array_length(jv_copy(r->log));
	double *x = xmalloc((size_t)(n ? n : 1) * sizeof *x), *y = xmalloc((size_t)(n ? n : 1) * sizeof *y);
	for (int i = 0; i < n; i++) {
		jv e = jv_array_get(jv_copy(r->log), i);
		jv s = jv_object_get(jv_copy(e), jv_string("current_steps")), l = jv_object_get(e, jv_string("loss"));
		x[i] = jv_get_kind(s) == JV_KIND_NUMBER ? jv_number_value(s) : NAN;
		y[i] = jv_get_kind(l) == JV_KIND_NUMBER ? jv_number_value(l) : NAN;
		jv_free(s);
		jv_free(l);
	}
	char *path = xasprintf("%s/training_loss.svg", r->tc->output_dir), *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	if (!f || svgplot_loss(f, x, y, (size_t)n, "training loss") < 0 || fclose(f) != 0 || rename(tmp, path) < 0)
		cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	free(path), free(tmp), free(x), free(y);
}

/* ---- stage: dpo: the reference ------------------------------------------- */

/* The model a run starts from: model_name_or_path, or init_random's
 * random weights from the seed (the same each time). */
static qwen2_model *start_model(const train_config *tc)
{
	if (!tc->init_random) return load_or_die(tc->model_name_or_path);
	qwen2_config mc;
	char *err = NULL;
	if (qwen2_config_load(tc->init_random, &mc, &err) < 0) cli_die(EXIT_RUNTIME, "%s", err);
	return qwen2_init_random(&mc, (uint64_t)tc->seed);
}

/* The frozen reference: the model ref_model names, else the starting one. */
static qwen2_model *ref_load(const train_config *tc)
{
	return tc->ref_model ? load_or_die(tc->ref_model) : start_model(tc);
}

static const char *ref_name(const train_config *tc)
{
	return tc->ref_model ? tc->ref_model : tc->init_random ? tc->init_random : tc->model_name_or_path;
}

/* The reference's log-probabilities of every pair's sides under engine f,
 * pair i on rank i mod world, then summed so every rank has them all. */
static void ref_precompute(const run *r, const dataset *d, forward *f, double *rc, double *rr)
{
	size_t P = d->n / 2;
	const comm *c = r->c;
	double *both = xcalloc(2 * P, sizeof *both);
	for (size_t i = (size_t)c->rank; i < P; i += (size_t)c->world) {
		qwen2_batch s[2] = {dataset_get(d, 2 * i), dataset_get(d, 2 * i + 1)};
		prefstep_logps(f, s, 2, both + 2 * i);
	}
	if (c->world > 1) c->allreduce_sum_f64(c, both, 2 * P);
	for (size_t i = 0; i < P; i++) rc[i] = both[2 * i], rr[i] = both[2 * i + 1];
	free(both);
}

/* output_dir/ref_logps.json: the precomputed log-probabilities, so a
 * resumed run reads them instead of loading the reference again. */
static void ref_write(const run *r, const dataset *d, const double *rc, const double *rr)
{
	size_t P = d->n / 2;
	jv a = jv_array(), b = jv_array();
	for (size_t i = 0; i < P; i++) a = jv_array_append(a, jv_number(rc[i])), b = jv_array_append(b, jv_number(rr[i]));
	jv o = jv_object();
	o = jv_object_set(o, jv_string("reference"), jv_string(ref_name(r->tc)));
	o = jv_object_set(o, jv_string("pairs"), jv_number((double)P));
	o = jv_object_set(o, jv_string("tokens"), jv_number((double)d->tokens));
	o = jv_object_set(o, jv_string("chosen"), a);
	o = jv_object_set(o, jv_string("rejected"), b);
	jv text = jv_dump_string(o, 0);
	char *path = xasprintf("%s/ref_logps.json", r->tc->output_dir);
	write_text_atomic(path, jv_string_value(text));
	jv_free(text);
	free(path);
}

/* Read them back: 1 when the file is there and made for these pairs by
 * this reference. */
static int ref_read(const run *r, const dataset *d, double *rc, double *rr)
{
	char *path = xasprintf("%s/ref_logps.json", r->tc->output_dir);
	int ok = 0;
	if (access(path, R_OK) == 0) {
		jv o = read_json_or_die(path);
		size_t P = d->n / 2;
		jv ref = jv_object_get(jv_copy(o), jv_string("reference"));
		jv n = jv_object_get(jv_copy(o), jv_string("pairs")), t = jv_object_get(jv_copy(o), jv_string("tokens"));
		jv a = jv_object_get(jv_copy(o), jv_string("chosen")), b = jv_object_get(jv_copy(o), jv_string("rejected"));
		ok = jv_get_kind(ref) == JV_KIND_STRING && !strcmp(jv_string_value(ref), ref_name(r->tc)) &&
		     json_count(jv_copy(n)) == (long long)P && json_count(jv_copy(t)) == (long long)d->tokens &&
		     jv_get_kind(a) == JV_KIND_ARRAY && jv_get_kind(b) == JV_KIND_ARRAY &&
		     jv_array_length(jv_copy(a)) == (int)P && jv_array_length(jv_copy(b)) == (int)P;
		for (size_t i = 0; ok && i < P; i++) {
			jv x = jv_array_get(jv_copy(a), (int)i), y = jv_array_get(jv_copy(b), (int)i);
			ok = jv_get_kind(x) == JV_KIND_NUMBER && jv_get_kind(y) == JV_KIND_NUMBER;
			if (ok) rc[i] = jv_number_value(x), rr[i] = jv_number_value(y);
			jv_free(x);
			jv_free(y);
		}
		jv_free(ref), jv_free(n), jv_free(t), jv_free(a), jv_free(b), jv_free(o);
		if (!ok && r->root) cli_warn("%s: not for these pairs and this reference; computing them again", path);
	}
	free(path);
	return ok;
}

/* The ranks started on this machine, by the launcher's word (1 without). */
static int local_ranks(void)
{
	static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"};
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
		const char *v = getenv(vars[i]);
		char *end;
		long n = v ? strtol(v, &end, 10) : 0;
		if (v && end != v && n >= 1 && n <= 4096) return (int)n;
	}
	return 1;
}

static int train(train_config *tc, const comm *c)
{
	char *err = NULL;
	int root = c->rank == 0, threads = tc->threads;
	/* several ranks on one machine share its cores unless told otherwise */
	if (threads <= 0 && c->world > 1 && local_ranks() > 1) {
		threads = omp_get_num_procs() / local_ranks();
		if (threads < 1) threads = 1;
	}
	if (threads > 0) {
		omp_set_num_threads(threads);
		openblas_set_num_threads(threads);
	}
	/* before anything is read or written: a GPU asked for and missing
	 * ends the run here */
	backend be = backend_open(tc->device);
	/* LLaMA-Factory's rule, which makes a rerun of a killed command carry
	 * on: an output_dir holding checkpoints resumes from the newest unless
	 * overwrite_output_dir; one holding anything else is refused. */
	int auto_resume = 0;
	if (is_nonempty_dir(tc->output_dir) && !tc->overwrite_output_dir && !tc->resume_from_checkpoint &&
	    !tc->resume_latest) {
		char *last = latest_checkpoint(tc->output_dir);
		if (!last)
			cli_die(EXIT_RUNTIME, "%s: output directory exists and is not empty: set overwrite_output_dir, or "
			        "resume_from_checkpoint to continue", tc->output_dir);
		free(last);
		auto_resume = 1;
	}
	char *from = tc->resume_from_checkpoint ? xstrdup(tc->resume_from_checkpoint)
	             : tc->resume_latest || auto_resume ? latest_checkpoint(tc->output_dir)
	                                        : NULL;
	/* every rank has looked at output_dir before rank 0 writes there */
	c->barrier(c);
	if (root && mkdir(tc->output_dir, 0777) < 0 && errno != EEXIST)
		cli_die(EXIT_RUNTIME, "%s: %s", tc->output_dir, strerror(errno));
	run r = {.tc = tc, .c = c, .root = root, .log = jv_array()};
	r.m = start_model(tc);
	if (!tc->init_random) r.tok_dir = tc->model_name_or_path;
	qwen2_model *m = r.m;
	dataset data;
	dataset_load(&data, tc, m, r.tok_dir);
	/* The settings as run, beside the results. */
	if (root) {
		char *path = xasprintf("%s/ds_train_args.yaml", tc->output_dir);
		FILE *f = fopen(path, "w");
		if (!f || trainconf_write_yaml(tc, f) < 0 || fclose(f) != 0) cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
		free(path);
	}
	int dpo = !strcmp(tc->stage, "dpo");
	size_t units = dpo ? data.n / 2 : data.n; /* samples, or pairs */
	long micro = tc->per_device_train_batch_size;
	long per_step = micro * tc->gradient_accumulation_steps * c->world; /* the global batch */
	r.steps_per_epoch = ((long)units + per_step - 1) / per_step;
	r.total = tc->max_steps > 0 ? tc->max_steps : (long)ceil(tc->num_train_epochs * (double)r.steps_per_epoch);
	if (r.total < 1) r.total = 1;
	r.warmup = trainconf_warmup_steps(tc, r.total);
	r.sched = sched_parse(tc->lr_scheduler_type);
	if (r.sched == SCHED_CONSTANT && r.warmup > 0) r.sched = SCHED_CONSTANT_WARMUP;
	trainstep_hparams th = {tc->learning_rate, tc->adam_beta1, tc->adam_beta2, tc->adam_epsilon, tc->weight_decay,
	                        tc->max_grad_norm, r.sched, r.total, r.warmup};
	r.ts = trainstep_new(m, be.o, be.ctx, c, &th);
	/* LLaMA-Factory's default: on, unless disable_gradient_checkpointing */
	forward_set_recompute(trainstep_forward(r.ts), tc->gradient_checkpointing);
	int kd = tc->kd_alpha > 0;
	if (kd) {
		if (!data.soft_k)
			cli_die(EXIT_RUNTIME, "kd_alpha %g: the shards hold no soft labels (tokenize the teacher's records, "
			        "ds-teacher --logprobs K, with ds-tokenize --soft-labels)", tc->kd_alpha);
		kd_config kc = {tc->kd_alpha, tc->kd_temperature, kd_loss_parse(tc->kd_loss), tc->kd_jsd_beta};
		forward_set_kd(trainstep_forward(r.ts), &kc);
	} else if (root && data.soft_k) {
		cli_warn("the shards carry the teacher's soft labels; kd_alpha is 0, so they are not used (plain SFT)");
	}
	if (root && tc->resume_latest && !from) cli_warn("%s: no checkpoint to resume from; starting afresh", tc->output_dir);
	if (from) resume(&r, from);
	free(from);
	/* stage: dpo: the loss, and the reference's log-probabilities: all of
	 * them before the first step (precompute_ref_log_probs; from the policy
	 * itself when it is still the starting model), or each step's from a
	 * reference kept beside the policy */
	pref_hparams ph = {PREF_SIGMOID, tc->pref_beta, tc->pref_ftx, tc->simpo_gamma, tc->dpo_label_smoothing};
	double *ref_c = NULL, *ref_r = NULL;
	qwen2_model *ref_m = NULL;
	forward *ref_f = NULL;
	if (dpo && pref_parse(tc->pref_loss, &ph.kind) < 0) cli_die(EXIT_USAGE, "pref_loss: '%s' is unknown", tc->pref_loss);
	if (dpo && pref_uses_ref(ph.kind)) {
		if (tc->precompute_ref_log_probs) {
			ref_c = xmalloc((units ? units : 1) * sizeof *ref_c);
			ref_r = xmalloc((units ? units : 1) * sizeof *ref_r);
			if (!(r.step > 0 && ref_read(&r, &data, ref_c, ref_r))) {
				double t = now_s();
				if (r.step == 0 && !tc->ref_model) {
					ref_precompute(&r, &data, trainstep_forward(r.ts), ref_c, ref_r);
				} else {
					qwen2_model *m2 = ref_load(tc);
					forward *f2 = forward_new(m2, be.o, be.ctx);
					ref_precompute(&r, &data, f2, ref_c, ref_r);
					forward_free(f2);
					qwen2_free(m2);
				}
				if (root) {
					ref_write(&r, &data, ref_c, ref_r);
					cli_warn("reference log-probabilities of %zu pairs (%s) in %.1f s", units, ref_name(tc),
					         now_s() - t);
				}
			}
		} else {
			ref_m = ref_load(tc);
			ref_f = forward_new(ref_m, be.o, be.ctx);
		}
	}
	if (root) {
		char ranks[64] = "";
		if (c->world > 1) snprintf(ranks, sizeof ranks, ", %d ranks (ZeRO-1)", c->world);
		cli_warn("%zu %s (%lu tokens, %ld trained), %ld steps of %ld %s, %d thread%s%s%s%s", units,
		         dpo ? "pairs" : "samples", (unsigned long)data.tokens, data.targets, r.total, per_step,
		         dpo ? "pairs" : "samples", omp_get_max_threads(),
		         omp_get_max_threads() == 1 ? "" : "s", c->world > 1 ? " a rank" : "", ranks,
		         tc->gradient_checkpointing ? ", layers recomputed" : "");
		if (be.cuda)
			cli_warn("training on %s: bf16 weights and activations, fp32 master weights, gradients and AdamW%s",
			         backend_name(&be), tc->fp16 ? " (fp16: computed in bf16, which needs no loss scaling)"
			                           : !tc->bf16 ? " (bf16 is off: the CUDA backend computes in bf16 all the same)" : "");
		else
			cli_warn("training on the CPU: fp32 weights, activations, gradients and AdamW%s",
			         tc->bf16 ? "; saved in bfloat16" : tc->fp16 ? "; saved in float16" : "");
	}
	if (root && dpo)
		cli_warn("stage: dpo, pref_loss %s, pref_beta %g%s%s", tc->pref_loss, tc->pref_beta,
		         !pref_uses_ref(ph.kind) ? ", no reference model" : ref_f ? ", the reference model beside the policy"
		                                                           : ", reference log-probabilities precomputed",
		         tc->pref_ftx > 1e-6 ? ", with the SFT term" : "");
	size_t *order = xmalloc((units ? units : 1) * sizeof *order);
	double window_m[PM_N] = {0};
	long order_epoch = -1;
	progress bar;
	if (root) progress_start(&bar, "steps", r.total);
	double t0 = now_s(), window_loss = 0, window_t = now_s(), window_ce = 0, window_kd = 0;
	long window_steps = 0;
	uint64_t window_tokens = 0;
	long first_step = r.step;
	while (r.step < r.total) {
		long epoch = r.step / r.steps_per_epoch, k = r.step % r.steps_per_epoch;
		if (epoch != order_epoch) {
			epoch_order(order, units, tc->seed, epoch, tc->disable_shuffling);
			order_epoch = epoch;
		}
		size_t a = (size_t)k * (size_t)per_step, b = a + (size_t)per_step < units ? a + (size_t)per_step : units;
		size_t nb = b - a ? b - a : 1;
		qwen2_batch *bs = xmalloc(nb * sizeof *bs), *br = dpo ? xmalloc(nb * sizeof *br) : NULL;
		double *sc = dpo ? xcalloc(nb, sizeof *sc) : NULL, *sr = dpo ? xcalloc(nb, sizeof *sr) : NULL;
		int n_mine = 0;
		for (size_t i = a; i < b; i++) {
			if ((long)((i - a) / (size_t)micro) % c->world != c->rank) continue;
			if (!dpo) {
				bs[n_mine++] = dataset_get(&data, order[i]);
				continue;
			}
			size_t p = order[i];
			bs[n_mine] = dataset_get(&data, 2 * p);
			br[n_mine] = dataset_get(&data, 2 * p + 1);
			if (ref_c) sc[n_mine] = ref_c[p], sr[n_mine] = ref_r[p];
			n_mine++;
		}
		double loss;
		uint64_t tokens;
		if (dpo) {
			if (ref_f) {
				prefstep_logps(ref_f, bs, n_mine, sc);
				prefstep_logps(ref_f, br, n_mine, sr);
			}
			prefstep_stats ps;
			prefstep_grad(r.ts, &ph, bs, br, sc, sr, n_mine, (int)micro, &ps);
			loss = ps.loss;
			tokens = ps.tokens;
			for (int j = 0; j < PM_N; j++) window_m[j] += ps.metrics[j];
		} else {
			trainstep_stats st;
			trainstep_grad(r.ts, bs, n_mine, &st);
			loss = st.loss;
			tokens = st.tokens;
			window_ce += st.ce;
			window_kd += st.kd;
		}
		free(bs), free(br), free(sc), free(sr);
		r.tokens_done += tokens;
		window_tokens += tokens;
		double norm = trainstep_clip(r.ts);
		if (!isfinite(loss) || !isfinite(norm))
			cli_die(EXIT_RUNTIME, "step %ld: the %s is %s; stopping before the update (last good checkpoint: %s)",
			        r.step + 1, isfinite(loss) ? "gradient norm" : "loss", isnan(isfinite(loss) ? norm : loss) ? "NaN" : "infinite",
			        r.last_ckpt ? r.last_ckpt : "none saved in this run");
		double lr = trainstep_update(r.ts, r.step);
		r.step++;
		window_loss += loss;
		window_steps++;
		if (root) progress_update(&bar, (uint64_t)r.step, (uint64_t)r.step);
		if (root && (r.step % tc->logging_steps == 0 || r.step == r.total)) {
			double t = now_s(), elapsed = t - t0;
			double rate = elapsed / (double)(r.step - first_step);
			char el[32], rem[32];
			fmt_hms(el, sizeof el, elapsed);
			fmt_hms(rem, sizeof rem, rate * (double)(r.total - r.step));
			jv e = jv_object();
			e = jv_object_set(e, jv_string("current_steps"), jv_number((double)r.step));
			e = jv_object_set(e, jv_string("total_steps"), jv_number((double)r.total));
			/* SFT's loss rounded as LF's log has it; DPO's whole (transformers 5 logs it so), beside
			 * the metrics: LF's LogCallback names rewards/accuracies "accuracy" */
			double wl = window_loss / window_steps;
			e = jv_object_set(e, jv_string("loss"), jv_number(dpo ? wl : round(wl * 1e4) / 1e4));
			for (int j = 0; dpo && j < PM_N; j++) {
				if ((j == PM_SFT || j == PM_ODDS) && ph.kind != PREF_ORPO) continue;
				e = jv_object_set(e, jv_string(pref_metric_names[j]), jv_number(window_m[j] / window_steps));
			}
			if (dpo) e = jv_object_set(e, jv_string("accuracy"), jv_number(window_m[PM_ACC] / window_steps));
			if (kd) {
				e = jv_object_set(e, jv_string("ce_loss"), jv_number(round(window_ce / window_steps * 1e4) / 1e4));
				e = jv_object_set(e, jv_string("kd_loss"), jv_number(round(window_kd / window_steps * 1e4) / 1e4));
			}
			e = jv_object_set(e, jv_string("lr"), jv_number(lr));
			e = jv_object_set(e, jv_string("grad_norm"), jv_number(norm));
			e = jv_object_set(e, jv_string("epoch"), jv_number(round((double)r.step / r.steps_per_epoch * 100) / 100));
			e = jv_object_set(e, jv_string("percentage"), jv_number(round((double)r.step / r.total * 1e4) / 100));
			e = jv_object_set(e, jv_string("elapsed_time"), jv_string(el));
			e = jv_object_set(e, jv_string("remaining_time"), jv_string(rem));
			e = jv_object_set(e, jv_string("throughput"), jv_number(round(window_tokens / (t - window_t) * 100) / 100));
			e = jv_object_set(e, jv_string("total_tokens"), jv_number((double)r.tokens_done));
			/* Drop entries a resumed run repeats. */
			while (jv_array_length(jv_copy(r.log)) > 0) {
				jv last = jv_array_get(jv_copy(r.log), jv_array_length(jv_copy(r.log)) - 1);
				jv ls = jv_object_get(last, jv_string("current_steps"));
				int stale = jv_get_kind(ls) == JV_KIND_NUMBER && jv_number_value(ls) >= (double)r.step;
				jv_free(ls);
				if (!stale) break;
				r.log = jv_array_slice(r.log, 0, jv_array_length(jv_copy(r.log)) - 1);
			}
			r.log = jv_array_append(r.log, e);
			write_log(&r);
			if (!isatty(2) || getenv("DS_NO_PROGRESS")) {
				char pm[96] = "";
				if (dpo)
					snprintf(pm, sizeof pm, " accuracy %.3f margin %.4f", window_m[PM_ACC] / window_steps,
					         window_m[PM_MARGIN] / window_steps);
				if (kd)
					snprintf(pm, sizeof pm, " (ce %.4f kd %.4f)", window_ce / window_steps,
					         window_kd / window_steps);
				fprintf(stderr, "ds-train: step %ld/%ld loss %.4f%s lr %.3g grad-norm %.3f %.0f tok/s\n", r.step,
				        r.total, window_loss / window_steps, pm, lr, norm, window_tokens / (t - window_t));
			}
			window_loss = 0;
			window_ce = window_kd = 0;
			window_steps = 0;
			memset(window_m, 0, sizeof window_m);
			window_tokens = 0;
			window_t = t;
		}
		if (tc->save_steps > 0 && r.step % tc->save_steps == 0 && r.step < r.total) save_checkpoint(&r);
	}
	if (root) progress_finish(&bar);
	save_checkpoint(&r);
	if (root) {
		save_model_dir(&r, tc->output_dir);
		write_state(&r, tc->output_dir);
		if (tc->plot_loss) write_plot(&r);
		cli_warn("done: %ld steps in %.1f s; model in %s", r.step - first_step, now_s() - t0, tc->output_dir);
		if (be.cuda) cli_warn("peak GPU memory: %.0f MiB (tensors and working space, this rank)", backend_peak_mib(&be));
	}
	free(order);
	free(ref_c), free(ref_r);
	forward_free(ref_f);
	qwen2_free(ref_m);
	dataset_free(&data);
	free(r.last_ckpt);
	trainstep_free(r.ts);
	backend_close(&be);
	jv_free(r.log);
	qwen2_free(m);
	(void)err;
	return 0;
}

/* ---- entry point -------------------------------------------------------- */

int main(int argc, char **argv)
{
	cli_init("ds-train");
	if (argc > 1 && !strcmp(argv[1], "logits")) return cmd_logits(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "check-step")) return cmd_check_step(argc - 1, argv + 1);
	/* one rank of a data-parallel run, when mpirun or srun started it */
	const comm *c = comm_single();
	if (comm_mpi_launched()) {
		char why[256];
		c = comm_mpi_open(&argc, &argv, why, sizeof why);
		if (!c) cli_die(EXIT_RUNTIME, "started by an MPI launcher, but: %s", why);
	}
	int root = c->rank == 0;
	train_config tc;
	trainconf_defaults(&tc);
	const char *init_cfg = NULL, *out = NULL, *dtype = "float32";
	char *err = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			cli_close_stdout();
			return 0;
		}
		if (!strcmp(a, "--version")) {
			cli_version();
			cli_close_stdout();
			return 0;
		}
		if (!strncmp(a, "--", 2)) {
			/* --key value or --key=value; dashes in the key read as underscores. */
			char *key = xstrdup(a + 2), *val = strchr(key, '=');
			if (val) *val++ = 0;
			else if (i + 1 < argc) val = argv[++i];
			else cli_usage_error(usage, "%s needs a value", a);
			for (char *p = key; *p; p++)
				if (*p == '-') *p = '_';
			if (!strcmp(key, "init_random")) init_cfg = val;
			else if (!strcmp(key, "dtype")) dtype = val;
			else if (trainconf_set(&tc, key, val, &err) < 0) cli_usage_error(usage, "%s", err);
			free(key);
		} else if (!strcmp(a, "-o")) {
			if (++i == argc) cli_usage_error(usage, "-o needs a directory");
			out = argv[i];
		} else if (a[0] == '-' && a[1]) {
			cli_usage_error(usage, "unknown option %s", a);
		} else if (strchr(a, '=')) {
			if (trainconf_override(&tc, a, &err) < 0) cli_usage_error(usage, "%s", err);
		} else {
			if (trainconf_load_yaml(&tc, a, &err) < 0) cli_die(EXIT_USAGE, "%s", err);
		}
	}
	if (init_cfg && out) {
		int rc = cmd_init_random(init_cfg, out, (uint64_t)tc.seed, dtype);
		trainconf_free(&tc);
		return rc;
	}
	if (init_cfg && trainconf_set(&tc, "init_random", init_cfg, &err) < 0) cli_usage_error(usage, "%s", err);
	if (out && trainconf_set(&tc, "output_dir", out, &err) < 0) cli_usage_error(usage, "%s", err);
	size_t n;
	const char *const *ig = trainconf_ignored(&tc, &n);
	if (n) {
		jbuf b = {0};
		for (size_t i = 0; i < n; i++) {
			if (i) jbuf_put(&b, ", ", 2);
			jbuf_put(&b, ig[i], strlen(ig[i]));
		}
		if (root) cli_warn("ignored (LLaMA-Factory keys ds-train has no use for): %s", b.p);
		jbuf_free(&b);
	}
	const char *const *un = trainconf_unknown(&tc, &n);
	/* as LLaMA-Factory's HfArgumentParser: a key nobody knows is an error */
	for (size_t i = 0; i < n; i++) {
		const char *near = trainconf_closest(un[i]);
		if (near) cli_usage_error(usage, "unknown key '%s' (did you mean '%s'?)", un[i], near);
		cli_usage_error(usage, "unknown key '%s': neither ds-train nor LLaMA-Factory 0.9.5 has it", un[i]);
	}
	if (trainconf_validate(&tc, &err) < 0) cli_usage_error(usage, "%s", err);
	/* torchrun's ranks (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) are
	 * GPU ranks: NCCL between them */
	if (c->world == 1 && getenv("WORLD_SIZE") && bootstrap_env_launched()) {
		char why[256];
		if (!strcmp(tc.device, "cpu") && strcmp(getenv("WORLD_SIZE"), "1"))
			cli_usage_error(usage, "device: cpu under torchrun: its ranks are GPU ranks (NCCL); CPU ranks are "
			                "started by mpirun or srun");
		boot = bootstrap_open_env(why, sizeof why);
		if (!boot) cli_die(EXIT_RUNTIME, "started by torchrun: %s", why);
		if (boot->world > 1) {
			c = comm_nccl_open(boot, -1, why, sizeof why);
			if (!c) cli_die(EXIT_RUNTIME, "torchrun: NCCL: %s", why);
		}
	}
	int rc = train(&tc, c);
	if (boot && boot->world > 1) comm_nccl_close(c);
	bootstrap_close(boot);
	trainconf_free(&tc);
	return rc;
}
