/* trainstep.c — accumulation, clipping, AdamW, the schedule and the
 * optimizer checkpoint (trainstep.h).
 *
 * With several ranks the optimizer is ZeRO-1: the flat parameter vector
 * (N floats, the table's layout) is cut into buckets of B x world
 * elements; rank r owns elements [r B, (r+1) B) of each bucket. The
 * summed gradients arrive by reduce-scatter, bucket by bucket, into the
 * rank's slices (gs); clipping takes the global norm from the slices'
 * squares, summed over ranks; AdamW updates the owned elements of the
 * weights with moments of the owned elements only (N / world each); the
 * updated weights go to every rank by all-gather. Every rank keeps the
 * whole fp32 model (on the CPU it is the master copy). The per-element
 * arithmetic is the one-process arithmetic; only the order in which the
 * ranks' gradients are summed differs. Buckets bound the staging memory
 * to B x world floats. */
#include "trainstep.h"
#include "check.h"
#include "optim.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A rank's elements of one bucket, at most: 16 MB of fp32. */
enum { BUCKET_MAX = 1 << 22 };

struct trainstep {
	qwen2_model *m;      /* borrowed */
	const ops *o;
	void *ctx;           /* borrowed */
	const comm *c;       /* borrowed */
	trainstep_hparams h;
	forward *f;          /* owned */
	tensor w;            /* (1, N) the parameters: the model's, through the backend */
	tensor g;            /* (1, N) owned: gradients */
	tensor mom, var;     /* (1, N) owned: AdamW's moments; with ZeRO (1, nb B): the owned slices */
	fwd_params gp;       /* views of g */
	/* ZeRO-1, world > 1 */
	int zero;
	size_t N, B, nb;     /* parameters; a rank's elements of a bucket; buckets */
	tensor gs;           /* (1, nb B) owned: this rank's slices of the summed gradients */
	float *stage;        /* (B world) host: a bucket in transit */
	float *mine;         /* (B) host: this rank's slice of one */
};

/* Bucket k: its first element, its length within N, and this rank's slice
 * of it ([*lo, *hi), empty when beyond N). */
static size_t bucket(const trainstep *ts, size_t k, size_t *len, size_t *lo, size_t *hi)
{
	size_t W = (size_t)ts->c->world, off = k * ts->B * W;
	*len = ts->N - off < ts->B * W ? ts->N - off : ts->B * W;
	*lo = off + (size_t)ts->c->rank * ts->B;
	*hi = *lo + ts->B;
	if (*lo > ts->N) *lo = ts->N;
	if (*hi > ts->N) *hi = ts->N;
	return off;
}

trainstep *trainstep_new(qwen2_model *m, const ops *o, void *ctx, const comm *c, const trainstep_hparams *h)
{
	trainstep *ts = xcalloc(1, sizeof *ts);
	int64_t N = (int64_t)m->w.n;
	ts->m = m;
	ts->o = o;
	ts->ctx = ctx;
	ts->c = c;
	ts->h = *h;
	ts->f = forward_new(m, o, ctx);
	ts->w = forward_flat(ts->f);
	ts->g = o->alloc(ctx, OPS_F32, 1, N);
	forward_bind(ts->f, ts->g, &ts->gp);
	ts->N = (size_t)N;
	ts->zero = c->world > 1;
	if (!ts->zero) {
		ts->mom = o->alloc(ctx, OPS_F32, 1, N);
		ts->var = o->alloc(ctx, OPS_F32, 1, N);
		return ts;
	}
	size_t W = (size_t)c->world;
	ts->B = (ts->N + W - 1) / W;
	if (ts->B > BUCKET_MAX) ts->B = BUCKET_MAX;
	ts->nb = (ts->N + ts->B * W - 1) / (ts->B * W);
	int64_t S = (int64_t)(ts->nb * ts->B);
	ts->gs = o->alloc(ctx, OPS_F32, 1, S);
	ts->mom = o->alloc(ctx, OPS_F32, 1, S);
	ts->var = o->alloc(ctx, OPS_F32, 1, S);
	ts->stage = xmalloc(ts->B * W * sizeof *ts->stage);
	ts->mine = xmalloc(ts->B * sizeof *ts->mine);
	return ts;
}

void trainstep_free(trainstep *ts)
{
	if (!ts) return;
	fwd_params_free(&ts->gp);
	ts->o->free(ts->ctx, ts->g);
	ts->o->free(ts->ctx, ts->mom);
	ts->o->free(ts->ctx, ts->var);
	if (ts->zero) ts->o->free(ts->ctx, ts->gs);
	free(ts->stage);
	free(ts->mine);
	forward_free(ts->f);
	free(ts);
}

forward *trainstep_forward(trainstep *ts)
{
	return ts->f;
}

const comm *trainstep_comm(const trainstep *ts)
{
	return ts->c;
}

/* ---- one step --------------------------------------------------------- */

/* ZeRO: the summed gradients of this rank's slices into gs. */
static void scatter_grads(trainstep *ts)
{
	const comm *c = ts->c;
	size_t BW = ts->B * (size_t)c->world;
	float *g = ts->o->map(ts->ctx, ts->g), *gs = ts->o->map(ts->ctx, ts->gs);
	for (size_t k = 0; k < ts->nb; k++) {
		size_t len, lo, hi, off = bucket(ts, k, &len, &lo, &hi);
		const float *in = g + off;
		if (len < BW) { /* the last bucket, padded */
			memcpy(ts->stage, in, len * sizeof *in);
			memset(ts->stage + len, 0, (BW - len) * sizeof *in);
			in = ts->stage;
		}
		c->reduce_scatter_sum(c, gs + k * ts->B, in, BW);
	}
	ts->o->unmap(ts->ctx, ts->g, g, 0);
	ts->o->unmap(ts->ctx, ts->gs, gs, 1);
}

void trainstep_zero(trainstep *ts)
{
	ts->o->zero(ts->ctx, ts->g);
}

double trainstep_accumulate(trainstep *ts, const qwen2_batch *b, float scale)
{
	return forward_train_sample(ts->f, b, scale, &ts->gp);
}

void trainstep_reduce(trainstep *ts)
{
	if (ts->zero) scatter_grads(ts);
}

void trainstep_grad(trainstep *ts, const qwen2_batch *s, int n, trainstep_stats *st)
{
	const comm *c = ts->c;
	long count[2] = {0, 0}; /* targets, tokens */
	for (int i = 0; i < n; i++) count[0] += qwen2_count_targets(&s[i]), count[1] += (long)s[i].n_tokens;
	/* normalised by every rank's targets (average_tokens_across_devices) */
	if (c->world > 1) c->allreduce_sum_long(c, count, 2);
	long targets = count[0];
	trainstep_zero(ts);
	double sum[4] = {0, 0, 0, 0}; /* loss, its cross-entropy, its KD, positions with soft labels */
	for (int i = 0; i < n && targets > 0; i++) {
		double ce, kd;
		sum[0] += trainstep_accumulate(ts, &s[i], 1.0f / (float)targets);
		forward_last_parts(ts->f, &ce, &kd);
		sum[1] += ce;
		sum[2] += kd;
		sum[3] += s[i].soft ? s[i].soft->n : 0;
	}
	trainstep_reduce(ts);
	if (ts->zero) c->allreduce_sum_f64(c, sum, 4);
	st->loss = targets ? sum[0] / (double)targets : 0.0;
	st->ce = targets ? sum[1] / (double)targets : 0.0;
	st->kd = sum[3] > 0 ? sum[2] / sum[3] : 0.0;
	st->soft = (long)sum[3];
	st->targets = targets;
	st->tokens = (uint64_t)count[1];
}

double trainstep_clip(trainstep *ts)
{
	if (!ts->zero) return ts->o->clip(ts->ctx, ts->g, ts->h.max_grad_norm);
	double n = ts->o->grad_norm(ts->ctx, ts->gs), ss = n * n;
	ts->c->allreduce_sum_f64(ts->c, &ss, 1);
	double norm = sqrt(ss);
	float k = optim_clip_factor(norm, ts->h.max_grad_norm);
	if (k != 1.0f) ts->o->scale(ts->ctx, ts->gs, k);
	return norm;
}

double trainstep_lr(const trainstep *ts, long step)
{
	return ts->h.lr * sched_factor(ts->h.sched, step, ts->h.total, ts->h.warmup);
}

/* ZeRO: AdamW on this rank's slices, then every rank's slices to all. */
static void update_slices(trainstep *ts, long step, const adamw_hparams *a)
{
	const qwen2_model *m = ts->m;
	const comm *c = ts->c;
	for (size_t k = 0; k < ts->nb; k++) {
		size_t len, lo, hi;
		bucket(ts, k, &len, &lo, &hi);
		for (size_t i = 0; i < m->n_params && lo < hi; i++) {
			const qwen2_param *p = &m->table[i];
			size_t a0 = p->offset > lo ? p->offset : lo, b0 = p->offset + p->numel < hi ? p->offset + p->numel : hi;
			if (a0 >= b0) continue;
			int64_t n = (int64_t)(b0 - a0);
			size_t s = k * ts->B + (a0 - lo); /* in the slices */
			ts->o->adamw(ts->ctx, tensor_view(ts->w, a0, 1, n), tensor_view(ts->gs, s, 1, n),
			             tensor_view(ts->mom, s, 1, n), tensor_view(ts->var, s, 1, n), step + 1, a, p->decay);
		}
	}
	float *w = ts->o->map(ts->ctx, ts->w);
	for (size_t k = 0; k < ts->nb; k++) {
		size_t len, lo, hi, off = bucket(ts, k, &len, &lo, &hi);
		memcpy(ts->mine, w + lo, (hi - lo) * sizeof *w);
		memset(ts->mine + (hi - lo), 0, (ts->B - (hi - lo)) * sizeof *w);
		c->allgather(c, ts->stage, ts->mine, ts->B);
		memcpy(w + off, ts->stage, len * sizeof *w);
	}
	ts->o->unmap(ts->ctx, ts->w, w, 1);
}

double trainstep_update(trainstep *ts, long step)
{
	const qwen2_model *m = ts->m;
	adamw_hparams a = {trainstep_lr(ts, step), ts->h.beta1, ts->h.beta2, ts->h.eps, ts->h.weight_decay};
	if (ts->zero) {
		update_slices(ts, step, &a);
		forward_weights_changed(ts->f);
		return a.lr;
	}
	for (size_t i = 0; i < m->n_params; i++) {
		const qwen2_param *p = &m->table[i];
		int64_t n = (int64_t)p->numel;
		ts->o->adamw(ts->ctx, tensor_view(ts->w, p->offset, 1, n), tensor_view(ts->g, p->offset, 1, n),
		             tensor_view(ts->mom, p->offset, 1, n), tensor_view(ts->var, p->offset, 1, n), step + 1, &a,
		             p->decay);
	}
	forward_weights_changed(ts->f);
	return a.lr;
}

void trainstep_weights_to_host(trainstep *ts)
{
	forward_weights_to_host(ts->f);
}

void trainstep_grads_get(trainstep *ts, float *dst)
{
	ts->o->download(ts->ctx, dst, ts->g);
}

/* ---- the checkpoint --------------------------------------------------- */

static const char *const state_prefix[3] = {"master", "exp_avg", "exp_avg_sq"};

/* ZeRO: moment t's slices from every rank into full (N floats) on rank 0;
 * full is NULL on the others. Collective. */
static void gather_moment(trainstep *ts, tensor t, float *full)
{
	float *h = ts->o->map(ts->ctx, t);
	for (size_t k = 0; k < ts->nb; k++) {
		size_t len, lo, hi, off = bucket(ts, k, &len, &lo, &hi);
		ts->c->allgather(ts->c, ts->stage, h + k * ts->B, ts->B);
		if (full) memcpy(full + off, ts->stage, len * sizeof *full);
	}
	ts->o->unmap(ts->ctx, t, h, 0);
}

static int write_checkpoint(const trainstep *ts, float *const host[3], const char *path, long step, char **err)
{
	const qwen2_model *m = ts->m;
	st_writer *w = safetensors_writer_new();
	char **names = xmalloc(3 * m->n_params * sizeof *names);
	for (size_t i = 0; i < m->n_params; i++) {
		const qwen2_param *p = &m->table[i];
		for (int k = 0; k < 3; k++) {
			names[3 * i + k] = xasprintf("%s.%s", state_prefix[k], p->name);
			safetensors_writer_add(w, names[3 * i + k], ST_F32, p->ndim, p->shape, host[k] + p->offset);
		}
	}
	char s[32];
	snprintf(s, sizeof s, "%ld", step);
	safetensors_writer_meta(w, "step", s);
	int rc = safetensors_writer_save_file(w, path, err);
	safetensors_writer_free(w);
	for (size_t i = 0; i < 3 * m->n_params; i++) free(names[i]);
	free(names);
	return rc;
}

int trainstep_save(trainstep *ts, const char *path, long step, char **err)
{
	tensor t[3] = {ts->w, ts->mom, ts->var};
	float *host[3] = {ts->o->map(ts->ctx, ts->w), NULL, NULL};
	int rc = 0, root = ts->c->rank == 0;
	if (!ts->zero) {
		for (int k = 1; k < 3; k++) host[k] = ts->o->map(ts->ctx, t[k]);
		rc = write_checkpoint(ts, host, path, step, err);
		for (int k = 1; k < 3; k++) ts->o->unmap(ts->ctx, t[k], host[k], 0);
	} else {
		/* the single-process layout: any world size resumes from it */
		for (int k = 1; k < 3; k++) {
			host[k] = root ? xmalloc(ts->N * sizeof *host[k]) : NULL;
			gather_moment(ts, t[k], host[k]);
		}
		if (root) rc = write_checkpoint(ts, host, path, step, err);
		free(host[1]);
		free(host[2]);
	}
	ts->o->unmap(ts->ctx, ts->w, host[0], 0);
	return rc;
}

/* ZeRO: does this rank own any element of [a, b)? */
static int owns_any(const trainstep *ts, size_t a, size_t b)
{
	for (size_t k = 0; k < ts->nb; k++) {
		size_t len, lo, hi;
		bucket(ts, k, &len, &lo, &hi);
		if (lo < b && a < hi) return 1;
	}
	return 0;
}

/* ZeRO: the owned elements of parameter p from its whole value x. */
static void keep_owned(const trainstep *ts, const qwen2_param *p, const float *x, float *slices)
{
	for (size_t k = 0; k < ts->nb; k++) {
		size_t len, lo, hi;
		bucket(ts, k, &len, &lo, &hi);
		size_t a0 = p->offset > lo ? p->offset : lo, b0 = p->offset + p->numel < hi ? p->offset + p->numel : hi;
		if (a0 < b0) memcpy(slices + k * ts->B + (a0 - lo), x + (a0 - p->offset), (b0 - a0) * sizeof *x);
	}
}

int trainstep_load(trainstep *ts, const char *path, long *step, char **err)
{
	const qwen2_model *m = ts->m;
	st_model *st = safetensors_open(path, err);
	if (!st) return -1;
	tensor t[3] = {ts->w, ts->mom, ts->var};
	float *host[3];
	for (int k = 0; k < 3; k++) host[k] = ts->o->map(ts->ctx, t[k]);
	float *tmp = NULL;
	char *e = NULL;
	for (size_t i = 0; i < m->n_params && !e; i++)
		for (int k = 0; k < 3 && !e; k++) {
			const qwen2_param *p = &m->table[i];
			char name[96];
			snprintf(name, sizeof name, "%s.%s", state_prefix[k], p->name);
			const st_tensor *x = safetensors_find(st, name);
			char *ce = NULL;
			int sliced = ts->zero && k > 0;
			if (!x || x->numel != p->numel) {
				e = xasprintf("%s: %s is missing or of another size: not a checkpoint of this model", path, name);
				continue;
			}
			if (sliced && !owns_any(ts, p->offset, p->offset + p->numel)) continue;
			float *dst = host[k] + p->offset;
			if (sliced) dst = tmp = xrealloc(tmp, p->numel * sizeof *tmp);
			if (safetensors_to_f32(x, dst, &ce) < 0) {
				e = xasprintf("%s: %s", path, ce);
				free(ce);
			} else if (sliced) {
				keep_owned(ts, p, tmp, host[k]);
			}
		}
	free(tmp);
	const char *s = e ? NULL : safetensors_metadata(st, "step");
	if (!e && !s) e = xasprintf("%s: no step in its metadata", path);
	if (!e) *step = atol(s);
	safetensors_close(st);
	for (int k = 0; k < 3; k++) ts->o->unmap(ts->ctx, t[k], host[k], 1);
	forward_weights_changed(ts->f);
	if (e) {
		*err = e;
		return -1;
	}
	return 0;
}
