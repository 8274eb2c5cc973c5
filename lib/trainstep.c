/* trainstep.c — accumulation, clipping, AdamW, the schedule and the
 * optimizer checkpoint (trainstep.h). */
#include "trainstep.h"
#include "check.h"
#include "optim.h"
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct trainstep {
	qwen2_model *m;      /* borrowed */
	const ops *o;
	void *ctx;           /* borrowed */
	const comm *c;       /* borrowed */
	trainstep_hparams h;
	forward *f;          /* owned */
	tensor w;            /* (1, N) the parameters: the model's, through the backend */
	tensor g;            /* (1, N) owned: gradients */
	tensor mom, var;     /* (1, N) owned: AdamW's first and second moments */
	fwd_params gp;       /* views of g */
};

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
	ts->mom = o->alloc(ctx, OPS_F32, 1, N);
	ts->var = o->alloc(ctx, OPS_F32, 1, N);
	forward_bind(ts->f, ts->g, &ts->gp);
	return ts;
}

void trainstep_free(trainstep *ts)
{
	if (!ts) return;
	fwd_params_free(&ts->gp);
	ts->o->free(ts->ctx, ts->g);
	ts->o->free(ts->ctx, ts->mom);
	ts->o->free(ts->ctx, ts->var);
	forward_free(ts->f);
	free(ts);
}

forward *trainstep_forward(trainstep *ts)
{
	return ts->f;
}

/* ---- one step --------------------------------------------------------- */

void trainstep_grad(trainstep *ts, const qwen2_batch *s, int n, trainstep_stats *st)
{
	const comm *c = ts->c;
	long targets = 0;
	for (int i = 0; i < n; i++) targets += qwen2_count_targets(&s[i]);
	/* normalised by every rank's targets (average_tokens_across_devices) */
	if (c->world > 1) c->allreduce_sum_long(c, &targets, 1);
	ts->o->zero(ts->ctx, ts->g);
	double sum = 0;
	uint64_t tokens = 0;
	for (int i = 0; i < n && targets > 0; i++) {
		sum += forward_train_sample(ts->f, &s[i], 1.0f / (float)targets, &ts->gp);
		tokens += (uint64_t)s[i].n_tokens;
	}
	if (c->world > 1) {
		float *g = ts->o->map(ts->ctx, ts->g);
		c->allreduce_sum(c, g, tensor_numel(ts->g));
		ts->o->unmap(ts->ctx, ts->g, g, 1);
		c->allreduce_sum_f64(c, &sum, 1);
	}
	st->loss = targets ? sum / (double)targets : 0.0;
	st->targets = targets;
	st->tokens = tokens;
}

double trainstep_clip(trainstep *ts)
{
	return ts->o->clip(ts->ctx, ts->g, ts->h.max_grad_norm);
}

double trainstep_lr(const trainstep *ts, long step)
{
	return ts->h.lr * sched_factor(ts->h.sched, step, ts->h.total, ts->h.warmup);
}

double trainstep_update(trainstep *ts, long step)
{
	const qwen2_model *m = ts->m;
	adamw_hparams a = {trainstep_lr(ts, step), ts->h.beta1, ts->h.beta2, ts->h.eps, ts->h.weight_decay};
	for (size_t i = 0; i < m->n_params; i++) {
		const qwen2_param *p = &m->table[i];
		int64_t n = (int64_t)p->numel;
		ts->o->adamw(ts->ctx, tensor_view(ts->w, p->offset, 1, n), tensor_view(ts->g, p->offset, 1, n),
		             tensor_view(ts->mom, p->offset, 1, n), tensor_view(ts->var, p->offset, 1, n), step + 1, &a,
		             p->decay);
	}
	return a.lr;
}

void trainstep_grads_get(trainstep *ts, float *dst)
{
	ts->o->download(ts->ctx, dst, ts->g);
}

/* ---- the checkpoint --------------------------------------------------- */

static const char *const state_prefix[3] = {"master", "exp_avg", "exp_avg_sq"};

int trainstep_save(trainstep *ts, const char *path, long step, char **err)
{
	const qwen2_model *m = ts->m;
	tensor t[3] = {ts->w, ts->mom, ts->var};
	float *host[3];
	for (int k = 0; k < 3; k++) host[k] = ts->o->map(ts->ctx, t[k]);
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
	for (int k = 0; k < 3; k++) ts->o->unmap(ts->ctx, t[k], host[k], 0);
	return rc;
}

int trainstep_load(trainstep *ts, const char *path, long *step, char **err)
{
	const qwen2_model *m = ts->m;
	st_model *st = safetensors_open(path, err);
	if (!st) return -1;
	tensor t[3] = {ts->w, ts->mom, ts->var};
	float *host[3];
	for (int k = 0; k < 3; k++) host[k] = ts->o->map(ts->ctx, t[k]);
	char *e = NULL;
	for (size_t i = 0; i < m->n_params && !e; i++)
		for (int k = 0; k < 3 && !e; k++) {
			char name[96];
			snprintf(name, sizeof name, "%s.%s", state_prefix[k], m->table[i].name);
			const st_tensor *x = safetensors_find(st, name);
			char *ce = NULL;
			if (!x || x->numel != m->table[i].numel)
				e = xasprintf("%s: %s is missing or of another size: not a checkpoint of this model", path, name);
			else if (safetensors_to_f32(x, host[k] + m->table[i].offset, &ce) < 0) {
				e = xasprintf("%s: %s", path, ce);
				free(ce);
			}
		}
	const char *s = e ? NULL : safetensors_metadata(st, "step");
	if (!e && !s) e = xasprintf("%s: no step in its metadata", path);
	if (!e) *step = atol(s);
	safetensors_close(st);
	for (int k = 0; k < 3; k++) ts->o->unmap(ts->ctx, t[k], host[k], 1);
	if (e) {
		*err = e;
		return -1;
	}
	return 0;
}
