/* forward.c — the Qwen2 computation against ops.h (forward.h): training's
 * forward and backward, logits, and generation's cached forward. Nothing
 * here touches a float: every number is made by the backend's ops, in the
 * order this file calls them.
 */
#include "forward.h"
#include "check.h"
#include "ops_cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- types ------------------------------------------------------------ */

/* What the training forward pass saves for the backward pass, per layer,
 * and the working space both use. With recomputation the per-layer tensors
 * other than x_in are one layer's worth, reused by every layer. */
typedef struct fwd_acts {
	int cap;          /* tokens */
	int recompute;    /* the layout: 1 = one layer slot beside the L inputs */
	tensor *owned;    /* (n_owned) the allocations below, each its own */
	int n_owned;
	tensor x_in;      /* (L, T, C) layer input */
	tensor rstd1;     /* (Ls, T) */
	tensor h1;        /* (Ls, T, C) normed input */
	tensor q;         /* (Ls, T, H*D) after rotary */
	tensor k, v;      /* (Ls, T, KV*D), k after rotary */
	tensor att;       /* (Ls, T, H*D) attention output */
	tensor lse;       /* (Ls, H, T) log-sum-exp of each score row */
	tensor x_mid;     /* (Ls, T, C) residual after attention */
	tensor rstd2;     /* (Ls, T) */
	tensor h2;        /* (Ls, T, C) */
	tensor gate, up, act; /* (Ls, T, FF) */
	tensor xf;        /* (T, C) final residual */
	tensor rstdf;     /* (T) */
	tensor hf;        /* (T, C) final norm output */
	tensor x;         /* (T, C) residual stream */
	tensor dx;        /* (T, C) */
	tensor dh;        /* (T, C) */
	tensor dq;        /* (T, H*D) */
	tensor dk, dv;    /* (T, KV*D) */
	tensor datt;      /* (T, H*D) */
	tensor dgate, dup; /* (T, FF) */
	tensor cos, sin;  /* (T, D/2) rotary tables for the sample's positions */
} fwd_acts;

/* Generation's working space: grown when a call needs more (a longer
 * prompt, a bigger batch, a longer context), else reused, so a decoding
 * step allocates nothing. */
typedef struct fwd_gen {
	size_t cap;       /* floats in mem */
	tensor mem;       /* (1, cap): activations, rotary tables */
	int icap;         /* tokens in the int arrays */
	int *seg_of;      /* (icap) the segment of each token */
	int *pos;         /* (icap) its position */
	int *start;       /* (icap) each segment's first token */
	uint32_t *ids;    /* (icap) the tokens, end to end */
	ops_kvseq *kv;    /* (icap) each segment's cache rows of a layer */
} fwd_gen;

struct forward {
	qwen2_model *m;   /* borrowed */
	const ops *o;
	void *ctx;        /* borrowed: the backend's */
	tensor flat;      /* (1, N) the fp32 parameters (training, logits): the master copy */
	tensor wc;        /* (1, N) their compute copy in the backend's act dtype (flat itself when fp32) */
	fwd_params w;     /* views of wc */
	fwd_params mx;    /* generation's: the matrices as stored, vectors fp32 (made on first use) */
	int mx_ready;
	int recompute;
	kd_config kd;     /* kd.alpha 0: SFT's cross-entropy alone */
	double last_ce, last_kd; /* the loss's parts of the last forward_train_sample */
	fwd_acts a;
	fwd_gen g;
};

/* ---- binding ---------------------------------------------------------- */

void forward_bind(const forward *f, tensor flat, fwd_params *p)
{
	const qwen2_model *m = f->m;
	const qwen2_param *t = m->table;
	size_t i = 0;
#define AT(k) tensor_view(flat, t[k].offset, t[k].ndim == 2 ? t[k].shape[0] : 1, \
                          t[k].ndim == 2 ? t[k].shape[1] : t[k].shape[0])
	p->embed = AT(i);
	i++;
	p->layers = xcalloc((size_t)m->cfg.n_layers, sizeof *p->layers);
	for (int l = 0; l < m->cfg.n_layers; l++) {
		fwd_layer *y = &p->layers[l];
		tensor *v[] = {&y->ln1, &y->wq, &y->bq, &y->wk, &y->bk, &y->wv, &y->bv,
		               &y->wo, &y->ln2, &y->wg, &y->wu, &y->wd};
		for (size_t k = 0; k < sizeof v / sizeof *v; k++, i++) *v[k] = AT(i);
	}
	p->norm = AT(i);
	i++;
	p->lm_head = m->cfg.tied ? p->embed : AT(i);
#undef AT
}

void fwd_params_free(fwd_params *p)
{
	free(p->layers);
	memset(p, 0, sizeof *p);
}

static tensor host_vec(const forward *f, float *p, int64_t n)
{
	return p ? f->o->from_host(f->ctx, p, OPS_F32, 1, n) : tensor_none();
}

static tensor host_mat(const forward *f, const wmat *w)
{
	ops_dtype dt = w->dtype == WMAT_F32 ? OPS_F32 : w->dtype == WMAT_F16 ? OPS_F16 : OPS_BF16;
	return w->data ? f->o->from_host(f->ctx, (void *)w->data, dt, w->rows, w->cols) : tensor_none();
}

forward *forward_new(qwen2_model *m, const ops *o, void *ctx)
{
	forward *f = xcalloc(1, sizeof *f);
	f->m = m;
	f->o = o;
	f->ctx = ctx;
	if (!m->stored) {
		int64_t N = (int64_t)m->w.n;
		f->flat = o->from_host(ctx, m->w.base, OPS_F32, 1, N);
		f->wc = o->act == OPS_F32 ? f->flat : o->alloc(ctx, o->act, 1, N);
		forward_weights_changed(f);
		forward_bind(f, f->wc, &f->w);
	}
	return f;
}

/* Generation's parameters: the stored matrices (for an fp32 model, views
 * of w) and the fp32 vectors, through from_host. */
static void mx_ensure(forward *f)
{
	if (f->mx_ready) return;
	f->mx_ready = 1;
	const qwen2_model *m = f->m;
	const qwen2_config *c = &m->cfg;
	int C = c->dim, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
	f->mx.embed = host_mat(f, &m->mx.embed);
	f->mx.lm_head = host_mat(f, &m->mx.lm_head);
	f->mx.norm = host_vec(f, m->w.norm, C);
	f->mx.layers = xcalloc((size_t)c->n_layers, sizeof *f->mx.layers);
	for (int l = 0; l < c->n_layers; l++) {
		const qwen2_layer *w = &m->w.layers[l];
		const qwen2_layer_mats *lm = &m->mx.layers[l];
		f->mx.layers[l] = (fwd_layer){
			.ln1 = host_vec(f, w->ln1, C), .bq = host_vec(f, w->bq, QD), .bk = host_vec(f, w->bk, KD),
			.bv = host_vec(f, w->bv, KD), .ln2 = host_vec(f, w->ln2, C),
			.wq = host_mat(f, &lm->q), .wk = host_mat(f, &lm->k), .wv = host_mat(f, &lm->v),
			.wo = host_mat(f, &lm->o), .wg = host_mat(f, &lm->gate), .wu = host_mat(f, &lm->up),
			.wd = host_mat(f, &lm->down)};
	}
}

static void forget(const forward *f, tensor t)
{
	if (t.data) f->o->forget(f->ctx, t);
}

static void acts_free(forward *f)
{
	for (int i = 0; i < f->a.n_owned; i++) f->o->free(f->ctx, f->a.owned[i]);
	free(f->a.owned);
	memset(&f->a, 0, sizeof f->a);
}

void forward_free(forward *f)
{
	if (!f) return;
	fwd_params_free(&f->w);
	if (f->mx_ready) {
		const fwd_params *p = &f->mx;
		forget(f, p->embed), forget(f, p->norm);
		if (p->lm_head.data != p->embed.data) forget(f, p->lm_head);
		for (int l = 0; l < f->m->cfg.n_layers; l++) {
			const fwd_layer *y = &p->layers[l];
			tensor v[] = {y->ln1, y->wq, y->bq, y->wk, y->bk, y->wv, y->bv, y->wo, y->ln2, y->wg, y->wu, y->wd};
			for (size_t k = 0; k < sizeof v / sizeof *v; k++) forget(f, v[k]);
		}
	}
	fwd_params_free(&f->mx);
	if (f->wc.data && f->wc.data != f->flat.data) f->o->free(f->ctx, f->wc);
	forget(f, f->flat);
	acts_free(f);
	if (f->g.mem.data) f->o->free(f->ctx, f->g.mem);
	free(f->g.seg_of), free(f->g.pos), free(f->g.start), free(f->g.ids), free(f->g.kv);
	free(f);
}

tensor forward_flat(const forward *f)
{
	return f->flat;
}

const fwd_params *forward_params(const forward *f)
{
	return &f->w;
}

void forward_weights_changed(forward *f)
{
	if (f->wc.data != f->flat.data) f->o->copy(f->ctx, f->wc, f->flat);
}

void forward_weights_to_host(forward *f)
{
	if (f->flat.data) f->o->download(f->ctx, f->m->w.base, f->flat);
}

void forward_set_recompute(forward *f, int on)
{
	f->recompute = on != 0;
}

void forward_set_kd(forward *f, const kd_config *kd)
{
	f->kd = *kd;
}

void forward_last_parts(const forward *f, double *ce, double *kd)
{
	*ce = f->last_ce;
	*kd = f->last_kd;
}

/* ---- activations ------------------------------------------------------ */

static void acts_ensure(forward *f, int T)
{
	fwd_acts *a = &f->a;
	if (a->owned && a->cap >= T && a->recompute == f->recompute) return;
	acts_free(f);
	const qwen2_config *c = &f->m->cfg;
	size_t L = c->n_layers, C = c->dim, FF = c->hidden, H = c->n_heads, D = c->head_dim;
	size_t QD = H * D, KD = (size_t)c->n_kv_heads * D, Tn = T, Ls = f->recompute ? 1 : L;
	a->cap = T;
	a->recompute = f->recompute;
	/* fp32 on every backend: the statistics, the rotary tables and the
	 * residual's gradient (which sums every layer's); the rest in act */
	ops_dtype X = f->o->act, F = OPS_F32;
	struct { tensor *p; size_t n; ops_dtype dt; } parts[] = {
		{&a->x_in, L * Tn * C, X}, {&a->rstd1, Ls * Tn, F}, {&a->h1, Ls * Tn * C, X}, {&a->q, Ls * Tn * QD, X},
		{&a->k, Ls * Tn * KD, X}, {&a->v, Ls * Tn * KD, X}, {&a->att, Ls * Tn * QD, X}, {&a->lse, Ls * H * Tn, F},
		{&a->x_mid, Ls * Tn * C, X}, {&a->rstd2, Ls * Tn, F}, {&a->h2, Ls * Tn * C, X},
		{&a->gate, Ls * Tn * FF, X}, {&a->up, Ls * Tn * FF, X}, {&a->act, Ls * Tn * FF, X}, {&a->xf, Tn * C, X},
		{&a->rstdf, Tn, F}, {&a->hf, Tn * C, X}, {&a->x, Tn * C, X}, {&a->dx, Tn * C, F}, {&a->dh, Tn * C, X},
		{&a->dq, Tn * QD, X}, {&a->dk, Tn * KD, X}, {&a->dv, Tn * KD, X}, {&a->datt, Tn * QD, X},
		{&a->dgate, Tn * FF, X}, {&a->dup, Tn * FF, X}, {&a->cos, Tn * D / 2, F}, {&a->sin, Tn * D / 2, F},
	};
	a->n_owned = (int)(sizeof parts / sizeof *parts);
	a->owned = xcalloc((size_t)a->n_owned, sizeof *a->owned);
	for (int i = 0; i < a->n_owned; i++)
		*parts[i].p = a->owned[i] = f->o->alloc(f->ctx, parts[i].dt, 1, (int64_t)parts[i].n);
}

/* Layer l's (or the shared slot's) part of a per-layer tensor: (T, n). */
static tensor layer_at(tensor t, int l, int T, int n)
{
	return tensor_view(t, (size_t)l * (size_t)T * (size_t)n, T, n);
}

/* The saved activations of one layer, (T, ...) views. */
typedef struct layer_acts {
	tensor x_in, rstd1, h1, q, k, v, att, lse, x_mid, rstd2, h2, gate, up, act;
} layer_acts;

static layer_acts layer_views(const forward *f, int l, int T)
{
	const qwen2_config *c = &f->m->cfg;
	const fwd_acts *a = &f->a;
	int C = c->dim, FF = c->hidden, H = c->n_heads, D = c->head_dim, QD = H * D, KD = c->n_kv_heads * D;
	int s = a->recompute ? 0 : l;
	layer_acts v = {
		.x_in = layer_at(a->x_in, l, T, C), .rstd1 = layer_at(a->rstd1, s, T, 1), .h1 = layer_at(a->h1, s, T, C),
		.q = layer_at(a->q, s, T, QD), .k = layer_at(a->k, s, T, KD), .v = layer_at(a->v, s, T, KD),
		.att = layer_at(a->att, s, T, QD), .x_mid = layer_at(a->x_mid, s, T, C),
		.rstd2 = layer_at(a->rstd2, s, T, 1), .h2 = layer_at(a->h2, s, T, C), .gate = layer_at(a->gate, s, T, FF),
		.up = layer_at(a->up, s, T, FF), .act = layer_at(a->act, s, T, FF)};
	v.lse = tensor_view(a->lse, (size_t)s * (size_t)T * (size_t)H, H, T);
	return v;
}

static void need_fp32(const forward *f, const char *what)
{
	if (f->m->stored) {
		fprintf(stderr, "qwen2: %s needs an fp32 model (qwen2_load), not one from qwen2_load_stored\n", what);
		abort();
	}
}

/* ---- training: the pieces --------------------------------------------- */

/* One decoder layer forward on the residual x (T, C), in place, saving
 * into y; y.x_in must already hold x. */
static void layer_fwd(forward *f, const fwd_layer *w, const layer_acts *y, tensor x, const ops_docs *d)
{
	const ops *o = f->o;
	void *ctx = f->ctx;
	const qwen2_config *c = &f->m->cfg;
	o->rmsnorm_fwd(ctx, y->h1, y->rstd1, x, w->ln1, c->rms_eps);
	o->linear_fwd(ctx, y->q, y->h1, w->wq, w->bq);
	o->linear_fwd(ctx, y->k, y->h1, w->wk, w->bk);
	o->linear_fwd(ctx, y->v, y->h1, w->wv, w->bv);
	o->rope(ctx, y->q, f->a.cos, f->a.sin, c->n_heads, 0);
	o->rope(ctx, y->k, f->a.cos, f->a.sin, c->n_kv_heads, 0);
	o->attn_fwd(ctx, y->att, y->lse, y->q, y->k, y->v, d, c->n_heads, c->n_kv_heads);
	o->matmul(ctx, x, y->att, w->wo, 0, 1, 1.0f, 1.0f);
	o->copy(ctx, y->x_mid, x);
	o->rmsnorm_fwd(ctx, y->h2, y->rstd2, x, w->ln2, c->rms_eps);
	o->linear_fwd(ctx, y->gate, y->h2, w->wg, tensor_none());
	o->linear_fwd(ctx, y->up, y->h2, w->wu, tensor_none());
	o->swiglu_fwd(ctx, y->act, y->gate, y->up);
	o->matmul(ctx, x, y->act, w->wd, 0, 1, 1.0f, 1.0f);
}

/* Embedding, the layers and the final norm over b, saving what backward
 * needs; a.hf holds the final normed states. */
static void train_forward(forward *f, const qwen2_batch *b, const ops_docs *d)
{
	need_fp32(f, "the training forward pass");
	const qwen2_config *c = &f->m->cfg;
	const ops *o = f->o;
	void *ctx = f->ctx;
	int T = b->n_tokens, C = c->dim;
	acts_ensure(f, T);
	fwd_acts *a = &f->a;
	tensor x = tensor_view(a->x, 0, T, C);
	/* rotary tables: positions restart at each document */
	int *pos = xmalloc((size_t)T * sizeof *pos), t = 0;
	for (int k = 0; k < b->n_docs; k++)
		for (uint32_t p = 0; p < b->doc_len[k]; p++) pos[t++] = (int)p;
	o->rope_tables(ctx, tensor_view(a->cos, 0, T, c->head_dim / 2), tensor_view(a->sin, 0, T, c->head_dim / 2), pos,
	               c->head_dim, c->rope_theta);
	free(pos);
	a->cos = tensor_view(a->cos, 0, T, c->head_dim / 2); /* this sample's rows (acts_ensure kept room) */
	a->sin = tensor_view(a->sin, 0, T, c->head_dim / 2);
	o->embed_fwd(ctx, x, f->w.embed, b->ids);
	for (int l = 0; l < c->n_layers; l++) {
		layer_acts y = layer_views(f, l, T);
		o->copy(ctx, y.x_in, x);
		layer_fwd(f, &f->w.layers[l], &y, x, d);
	}
	o->copy(ctx, tensor_view(a->xf, 0, T, C), x);
	o->rmsnorm_fwd(ctx, tensor_view(a->hf, 0, T, C), tensor_view(a->rstdf, 0, T, 1), x, f->w.norm, c->rms_eps);
}

/* The layers backward from d(loss)/d(hf) in a.dh, into g. */
static void train_backward(forward *f, const qwen2_batch *b, const ops_docs *d, const fwd_params *g)
{
	const qwen2_config *c = &f->m->cfg;
	const ops *o = f->o;
	void *ctx = f->ctx;
	fwd_acts *a = &f->a;
	int T = b->n_tokens, C = c->dim, FF = c->hidden, H = c->n_heads, D = c->head_dim;
	int QD = H * D, KD = c->n_kv_heads * D;
	tensor dx = tensor_view(a->dx, 0, T, C), dh = tensor_view(a->dh, 0, T, C);
	tensor dq = tensor_view(a->dq, 0, T, QD), dk = tensor_view(a->dk, 0, T, KD), dv = tensor_view(a->dv, 0, T, KD);
	tensor datt = tensor_view(a->datt, 0, T, QD);
	tensor dgate = tensor_view(a->dgate, 0, T, FF), dup = tensor_view(a->dup, 0, T, FF);
	o->zero(ctx, dx);
	o->rmsnorm_bwd(ctx, dx, g->norm, dh, tensor_view(a->xf, 0, T, C), tensor_view(a->rstdf, 0, T, 1), f->w.norm);
	for (int l = c->n_layers - 1; l >= 0; l--) {
		const fwd_layer *w = &f->w.layers[l], *gw = &g->layers[l];
		layer_acts y = layer_views(f, l, T);
		if (a->recompute) {
			/* the layer again from its input, on a copy of it: the residual
			 * it leaves (x) is not needed any more */
			tensor x = tensor_view(a->x, 0, T, C);
			o->copy(ctx, x, y.x_in);
			layer_fwd(f, w, &y, x, d);
		}
		/* MLP: x += down(silu(gate(h2)) * up(h2)) */
		o->linear_bwd(ctx, dgate, 0, gw->wd, tensor_none(), dx, y.act, w->wd); /* dgate holds d(act) */
		o->swiglu_bwd(ctx, dgate, dup, dgate, y.gate, y.up);
		o->linear_bwd(ctx, dh, 0, gw->wg, tensor_none(), dgate, y.h2, w->wg);
		o->linear_bwd(ctx, dh, 1, gw->wu, tensor_none(), dup, y.h2, w->wu);
		o->rmsnorm_bwd(ctx, dx, gw->ln2, dh, y.x_mid, y.rstd2, w->ln2);
		/* attention: x += o(attn(rope(q(h1)), rope(k(h1)), v(h1))) */
		o->linear_bwd(ctx, datt, 0, gw->wo, tensor_none(), dx, y.att, w->wo);
		o->attn_bwd(ctx, dq, dk, dv, y.q, y.k, y.v, y.att, y.lse, datt, d, H, c->n_kv_heads);
		o->rope(ctx, dq, a->cos, a->sin, H, 1);
		o->rope(ctx, dk, a->cos, a->sin, c->n_kv_heads, 1);
		o->linear_bwd(ctx, dh, 0, gw->wq, gw->bq, dq, y.h1, w->wq);
		o->linear_bwd(ctx, dh, 1, gw->wk, gw->bk, dk, y.h1, w->wk);
		o->linear_bwd(ctx, dh, 1, gw->wv, gw->bv, dv, y.h1, w->wv);
		o->rmsnorm_bwd(ctx, dx, gw->ln1, dh, y.x_in, y.rstd1, w->ln1);
	}
	o->embed_bwd(ctx, g->embed, dx, b->ids);
}

/* ---- training: the whole ---------------------------------------------- */

long qwen2_count_targets(const qwen2_batch *b)
{
	long n = 0;
	for (int d = 0, o = 0; d < b->n_docs; o += (int)b->doc_len[d], d++)
		for (uint32_t t = 1; t < b->doc_len[d]; t++) n += b->mask[o + t] != 0;
	return n;
}

/* The soft row of each of the n target rows row[] of b: its index in
 * b->soft, or -1. (n) owned. */
static int32_t *soft_rows(const qwen2_batch *b, const int *row, int n)
{
	int32_t *sr = xmalloc((size_t)(n ? n : 1) * sizeof *sr);
	for (int i = 0, j = 0; i < n; i++) {
		uint32_t pos = (uint32_t)row[i] + 1; /* the target row[i] predicts */
		while (j < b->soft->n && b->soft->pos[j] < pos) j++;
		sr[i] = j < b->soft->n && b->soft->pos[j] == pos ? j : -1;
	}
	return sr;
}

/* The rows of b that predict a target, and their targets: (T) each, owned. */
static int target_rows(const qwen2_batch *b, int **row, int **tgt)
{
	int T = b->n_tokens, n = 0;
	*row = xmalloc((size_t)T * sizeof **row);
	*tgt = xmalloc((size_t)T * sizeof **tgt);
	for (int k = 0, o = 0; k < b->n_docs; o += (int)b->doc_len[k], k++)
		for (int t = 0; t + 1 < (int)b->doc_len[k]; t++)
			if (b->mask[o + t + 1]) {
				(*row)[n] = o + t;
				(*tgt)[n++] = (int)b->ids[o + t + 1];
			}
	return n;
}

double forward_train_sample(forward *f, const qwen2_batch *b, float scale, const fwd_params *g)
{
	const qwen2_config *c = &f->m->cfg;
	int T = b->n_tokens, C = c->dim;
	ops_docs d = {T, b->n_docs, b->doc_len};
	train_forward(f, b, &d);
	tensor dh = tensor_view(f->a.dh, 0, T, C);
	f->o->zero(f->ctx, dh);
	int *row, *tgt, n = target_rows(b, &row, &tgt);
	int kd = f->kd.alpha > 0 && b->soft && b->soft->n > 0;
	ops_soft soft = {0};
	if (kd) soft = (ops_soft){.kd = &f->kd, .k = b->soft->k, .row = soft_rows(b, row, n), .id = b->soft->id,
				  .lp = b->soft->lp};
	double loss = f->o->lmhead_ce(f->ctx, dh, g->lm_head, tensor_view(f->a.hf, 0, T, C), f->w.lm_head, row, tgt, n,
	                              scale, kd ? &soft : NULL);
	f->last_ce = kd ? soft.ce : loss;
	f->last_kd = soft.kd_sum;
	free((void *)soft.row);
	free(row);
	free(tgt);
	train_backward(f, b, &d, g);
	return loss;
}

double forward_loss(forward *f, const qwen2_batch *b)
{
	const qwen2_config *c = &f->m->cfg;
	int T = b->n_tokens, C = c->dim;
	ops_docs d = {T, b->n_docs, b->doc_len};
	train_forward(f, b, &d);
	int *row, *tgt, n = target_rows(b, &row, &tgt);
	double loss = f->o->lmhead_ce(f->ctx, tensor_none(), tensor_none(), tensor_view(f->a.hf, 0, T, C), f->w.lm_head,
	                              row, tgt, n, 0.0f, NULL);
	free(row);
	free(tgt);
	return loss;
}

void forward_logits(forward *f, const qwen2_batch *b, float *out)
{
	const qwen2_config *c = &f->m->cfg;
	ops_docs d = {b->n_tokens, b->n_docs, b->doc_len};
	train_forward(f, b, &d);
	tensor lg = f->o->from_host(f->ctx, out, OPS_F32, b->n_tokens, c->vocab);
	f->o->matmul(f->ctx, lg, tensor_view(f->a.hf, 0, b->n_tokens, c->dim), f->w.lm_head, 0, 1, 1.0f, 0.0f);
	f->o->download(f->ctx, out, lg);
	f->o->forget(f->ctx, lg);
}

/* ---- generation ------------------------------------------------------- */

qwen2_cache *forward_cache_new(forward *f, int cap)
{
	const qwen2_config *c = &f->m->cfg;
	qwen2_cache *k = xcalloc(1, sizeof *k);
	int64_t rows = (int64_t)c->n_layers * cap, KD = (int64_t)c->n_kv_heads * c->head_dim;
	k->cap = cap;
	k->o = f->o;
	k->ctx = f->ctx;
	k->k = f->o->alloc(f->ctx, OPS_F32, rows, KD);
	k->v = f->o->alloc(f->ctx, OPS_F32, rows, KD);
	return k;
}

void qwen2_cache_free(qwen2_cache *c)
{
	if (!c) return;
	c->o->free(c->ctx, c->k);
	c->o->free(c->ctx, c->v);
	free(c);
}

void qwen2_cache_copy(qwen2_cache *dst, const qwen2_cache *src, int n_layers)
{
	for (int l = 0; l < n_layers; l++) {
		dst->o->copy(dst->ctx, tensor_rows(dst->k, (int64_t)l * dst->cap, src->len),
		             tensor_rows(src->k, (int64_t)l * src->cap, src->len));
		dst->o->copy(dst->ctx, tensor_rows(dst->v, (int64_t)l * dst->cap, src->len),
		             tensor_rows(src->v, (int64_t)l * src->cap, src->len));
	}
	dst->len = src->len;
}

static fwd_gen *gen_ensure(forward *f, size_t floats, int tokens)
{
	fwd_gen *g = &f->g;
	if (g->cap < floats) {
		if (g->mem.data) f->o->free(f->ctx, g->mem);
		g->mem = f->o->alloc(f->ctx, OPS_F32, 1, (int64_t)floats);
		g->cap = floats;
	}
	if (g->icap < tokens) {
		free(g->seg_of), free(g->pos), free(g->start), free(g->ids), free(g->kv);
		g->seg_of = xmalloc((size_t)tokens * sizeof *g->seg_of);
		g->pos = xmalloc((size_t)tokens * sizeof *g->pos);
		g->start = xmalloc((size_t)tokens * sizeof *g->start);
		g->ids = xmalloc((size_t)tokens * sizeof *g->ids);
		g->kv = xmalloc((size_t)tokens * sizeof *g->kv);
		g->icap = tokens;
	}
	return g;
}

int forward_segs(forward *f, const qwen2_seg *segs, int nseg, float *logits)
{
	const qwen2_config *c = &f->m->cfg;
	const ops *o = f->o;
	void *ctx = f->ctx;
	mx_ensure(f);
	const fwd_params *mx = &f->mx;
	int C = c->dim, FF = c->hidden, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, half = D / 2;
	int QD = H * D, KD = KV * D, T = 0;
	for (int i = 0; i < nseg; i++) {
		if (segs[i].n < 1 || segs[i].cache->len + segs[i].n > segs[i].cache->cap) return -1;
		T += segs[i].n;
	}
	size_t need = (size_t)T * (3 * C + 2 * QD + 2 * KD + 2 * FF + 1 + D);
	fwd_gen *g = gen_ensure(f, need, T > nseg ? T : nseg);
	size_t at = 0;
#define CARVE(rows, cols) (at += (size_t)(rows) * (size_t)(cols), tensor_view(g->mem, at - (size_t)(rows) * (size_t)(cols), rows, cols))
	tensor x = CARVE(T, C), h = CARVE(T, C), q = CARVE(T, QD), k = CARVE(T, KD), v = CARVE(T, KD);
	tensor att = CARVE(T, QD), gate = CARVE(T, FF), up = CARVE(T, FF), rstd = CARVE(T, 1);
	tensor cs = CARVE(T, half), sn = CARVE(T, half);
#undef CARVE
	tensor hl = tensor_view(g->mem, (size_t)T * C * 2, nseg, C); /* last rows, reusing spare room */
	int *seg_of = g->seg_of, *pos = g->pos, *start = g->start;
	for (int i = 0, t = 0; i < nseg; i++) {
		start[i] = t;
		for (int j = 0; j < segs[i].n; j++, t++) {
			seg_of[t] = i;
			pos[t] = segs[i].cache->len + j;
			g->ids[t] = segs[i].ids[j];
		}
	}
	o->embed_fwd(ctx, x, mx->embed, g->ids);
	o->rope_tables(ctx, cs, sn, pos, D, c->rope_theta);
	for (int l = 0; l < c->n_layers; l++) {
		const fwd_layer *w = &mx->layers[l];
		o->rmsnorm_fwd(ctx, h, rstd, x, w->ln1, c->rms_eps);
		tensor qkv_w[] = {w->wq, w->wk, w->wv}, qkv_out[] = {q, k, v};
		o->matmul_w_n(ctx, 3, qkv_w, h, qkv_out);
		o->add_bias(ctx, q, w->bq);
		o->add_bias(ctx, k, w->bk);
		o->add_bias(ctx, v, w->bv);
		o->rope(ctx, q, cs, sn, H, 0);
		o->rope(ctx, k, cs, sn, KV, 0);
		for (int t = 0; t < T; t++) {
			qwen2_cache *kc = segs[seg_of[t]].cache;
			int64_t r = (int64_t)l * kc->cap + pos[t];
			o->copy(ctx, tensor_rows(kc->k, r, 1), tensor_rows(k, t, 1));
			o->copy(ctx, tensor_rows(kc->v, r, 1), tensor_rows(v, t, 1));
		}
		for (int i = 0; i < nseg; i++) {
			qwen2_cache *kc = segs[i].cache;
			g->kv[i] = (ops_kvseq){tensor_rows(kc->k, (int64_t)l * kc->cap, kc->cap),
			                       tensor_rows(kc->v, (int64_t)l * kc->cap, kc->cap), kc->len, segs[i].n, start[i]};
		}
		o->attn_cached(ctx, att, q, g->kv, nseg, H, KV);
		o->matmul_w(ctx, x, att, w->wo, 1);
		o->rmsnorm_fwd(ctx, h, rstd, x, w->ln2, c->rms_eps);
		tensor gu_w[] = {w->wg, w->wu}, gu_out[] = {gate, up};
		o->matmul_w_n(ctx, 2, gu_w, h, gu_out);
		o->swiglu_fwd(ctx, gate, gate, up);
		o->matmul_w(ctx, x, gate, w->wd, 1);
	}
	/* Only each segment's last token needs logits. */
	for (int i = 0; i < nseg; i++) o->copy(ctx, tensor_rows(h, i, 1), tensor_rows(x, start[i] + segs[i].n - 1, 1));
	o->rmsnorm_fwd(ctx, hl, tensor_rows(rstd, 0, nseg), tensor_rows(h, 0, nseg), mx->norm, c->rms_eps);
	tensor lg = o->from_host(ctx, logits, OPS_F32, nseg, c->vocab);
	o->matmul_w(ctx, lg, hl, mx->lm_head, 0);
	o->download(ctx, logits, lg);
	for (int i = 0; i < nseg; i++) segs[i].cache->len += segs[i].n;
	return 0;
}

/* ---- the model's own engine ------------------------------------------- */

/* The CPU engine a model gets when it is used without one: what ds-infer
 * and the unit tests call through qwen2.h. */
static forward *model_engine(qwen2_model *m)
{
	if (!m->fw) {
		m->fw_ctx = ops_cpu_new();
		m->fw = forward_new(m, &ops_cpu, m->fw_ctx);
	}
	return m->fw;
}

void qwen2_engine_free(qwen2_model *m)
{
	forward_free(m->fw);
	ops_cpu_free(m->fw_ctx);
	m->fw = NULL;
	m->fw_ctx = NULL;
}

void qwen2_logits(qwen2_model *m, const qwen2_batch *b, float *out)
{
	forward_logits(model_engine(m), b, out);
}

qwen2_cache *qwen2_cache_new(qwen2_model *m, int cap)
{
	return forward_cache_new(model_engine(m), cap);
}

int qwen2_forward_segs(qwen2_model *m, const qwen2_seg *segs, int nseg, float *logits)
{
	return forward_segs(model_engine(m), segs, nseg, logits);
}
