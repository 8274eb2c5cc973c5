/* qwen2.c — the Qwen2 model as a checkpoint holds it: config, parameter
 * table with the Hugging Face names and shapes, load/save. No arithmetic:
 * that is lib/forward.c on a backend of lib/ops.h. See qwen2.h.
 */
#include "qwen2.h"
#include "check.h"
#include "cli.h"
#include "json.h"
#include "rng.h"
#include "safetensors.h"
#include "wmat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- config -------------------------------------------------------- */

static int cfg_int(jv o, const char *key, int *out, int required, char **err)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	int kind = jv_get_kind(v);
	if (kind == JV_KIND_INVALID || kind == JV_KIND_NULL) {
		jv_free(v);
		if (!required) return 0;
		*err = xasprintf("config: '%s' is missing", key);
		return -1;
	}
	double d = kind == JV_KIND_NUMBER ? jv_number_value(v) : -1;
	jv_free(v);
	if (kind != JV_KIND_NUMBER || d != floor(d) || d < 0 || d > 1e9) {
		*err = xasprintf("config: '%s' is not a non-negative integer", key);
		return -1;
	}
	*out = (int)d;
	return 0;
}

static int cfg_num(jv o, const char *key, double *out, char **err)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	int kind = jv_get_kind(v);
	if (kind == JV_KIND_NUMBER) *out = jv_number_value(v);
	jv_free(v);
	if (kind == JV_KIND_INVALID || kind == JV_KIND_NULL) return 0;
	if (kind != JV_KIND_NUMBER) {
		*err = xasprintf("config: '%s' is not a number", key);
		return -1;
	}
	return 0;
}

/* The string at key, or NULL when absent or null. Returns owned. */
static char *cfg_str(jv o, const char *key)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	char *s = jv_get_kind(v) == JV_KIND_STRING ? xstrdup(jv_string_value(v)) : NULL;
	jv_free(v);
	return s;
}

static int cfg_true(jv o, const char *key)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	int t = jv_get_kind(v) == JV_KIND_TRUE;
	jv_free(v);
	return t;
}

/* rope_scaling (transformers 4) or rope_parameters (5): only the default
 * kind is implemented. Takes theta from rope_parameters when it is there. */
static int cfg_rope(jv o, qwen2_config *c, char **err)
{
	static const char *keys[] = {"rope_scaling", "rope_parameters"};
	for (int i = 0; i < 2; i++) {
		jv r = jv_object_get(jv_copy(o), jv_string(keys[i]));
		if (jv_get_kind(r) == JV_KIND_OBJECT) {
			char *type = cfg_str(r, "rope_type");
			if (!type) type = cfg_str(r, "type");
			int ok = !type || !strcmp(type, "default");
			if (!ok) *err = xasprintf("config: %s.rope_type '%s' is not supported (only the default rotary embedding)", keys[i], type);
			free(type);
			if (ok && cfg_num(r, "rope_theta", &c->rope_theta, err) < 0) ok = 0;
			jv_free(r);
			if (!ok) return -1;
		} else {
			int kind = jv_get_kind(r);
			jv_free(r);
			if (kind != JV_KIND_INVALID && kind != JV_KIND_NULL) {
				*err = xasprintf("config: '%s' is neither an object nor null", keys[i]);
				return -1;
			}
		}
	}
	return 0;
}

static int config_check(jv o, qwen2_config *c, char **err)
{
	if (jv_get_kind(o) != JV_KIND_OBJECT) {
		*err = xstrdup("config: not a JSON object");
		return -1;
	}
	char *type = cfg_str(o, "model_type");
	int ok = type && !strcmp(type, "qwen2");
	if (!ok) *err = xasprintf("config: model_type '%s' is not supported (only qwen2)", type ? type : "(missing)");
	free(type);
	if (!ok) return -1;
	char *act = cfg_str(o, "hidden_act");
	ok = !act || !strcmp(act, "silu");
	if (!ok) *err = xasprintf("config: hidden_act '%s' is not supported (only silu)", act);
	free(act);
	if (!ok) return -1;
	if (cfg_true(o, "use_sliding_window")) {
		*err = xstrdup("config: use_sliding_window true is not supported");
		return -1;
	}
	jv types = jv_object_get(jv_copy(o), jv_string("layer_types"));
	if (jv_get_kind(types) == JV_KIND_ARRAY) {
		int n = jv_array_length(jv_copy(types));
		for (int i = 0; i < n; i++) {
			jv t = jv_array_get(jv_copy(types), i);
			ok = jv_get_kind(t) == JV_KIND_STRING && !strcmp(jv_string_value(t), "full_attention");
			jv_free(t);
			if (!ok) break;
		}
	}
	jv_free(types);
	if (!ok) {
		*err = xstrdup("config: layer_types other than full_attention are not supported");
		return -1;
	}
	if (cfg_int(o, "vocab_size", &c->vocab, 1, err) < 0 ||
	    cfg_int(o, "hidden_size", &c->dim, 1, err) < 0 ||
	    cfg_int(o, "intermediate_size", &c->hidden, 1, err) < 0 ||
	    cfg_int(o, "num_hidden_layers", &c->n_layers, 1, err) < 0 ||
	    cfg_int(o, "num_attention_heads", &c->n_heads, 1, err) < 0)
		return -1;
	c->n_kv_heads = c->n_heads;
	c->max_pos = 32768;
	if (cfg_int(o, "num_key_value_heads", &c->n_kv_heads, 0, err) < 0 ||
	    cfg_int(o, "max_position_embeddings", &c->max_pos, 0, err) < 0)
		return -1;
	if (c->vocab < 1 || c->dim < 1 || c->hidden < 1 || c->n_layers < 1 || c->n_heads < 1 ||
	    c->n_kv_heads < 1) {
		*err = xstrdup("config: a size is zero");
		return -1;
	}
	if (c->n_heads % c->n_kv_heads) {
		*err = xasprintf("config: num_attention_heads %d is not a multiple of num_key_value_heads %d",
		                 c->n_heads, c->n_kv_heads);
		return -1;
	}
	/* Qwen2 takes head_dim from the config when it is there, else
	 * hidden_size / num_attention_heads, which must then divide. */
	c->head_dim = 0;
	if (cfg_int(o, "head_dim", &c->head_dim, 0, err) < 0) return -1;
	if (!c->head_dim) {
		if (c->dim % c->n_heads) {
			*err = xasprintf("config: hidden_size %d is not a multiple of num_attention_heads %d", c->dim, c->n_heads);
			return -1;
		}
		c->head_dim = c->dim / c->n_heads;
	}
	if (c->head_dim < 2 || c->head_dim % 2) {
		*err = xasprintf("config: head_dim %d is not even", c->head_dim);
		return -1;
	}
	double eps = 1e-6, theta = 10000.0, drop = 0;
	if (cfg_num(o, "rms_norm_eps", &eps, err) < 0 || cfg_num(o, "rope_theta", &theta, err) < 0 ||
	    cfg_num(o, "attention_dropout", &drop, err) < 0)
		return -1;
	if (drop != 0) {
		*err = xstrdup("config: attention_dropout other than 0 is not supported");
		return -1;
	}
	c->rms_eps = (float)eps;
	c->rope_theta = theta;
	if (cfg_rope(o, c, err) < 0) return -1;
	if (!(c->rope_theta > 0)) {
		*err = xstrdup("config: rope_theta must be positive");
		return -1;
	}
	c->tied = cfg_true(o, "tie_word_embeddings");
	char *dt = cfg_str(o, "torch_dtype");
	if (!dt) dt = cfg_str(o, "dtype");
	snprintf(c->dtype, sizeof c->dtype, "%s", dt ? dt : "float32");
	free(dt);
	return 0;
}

int qwen2_config_load(const char *path, qwen2_config *c, char **err)
{
	memset(c, 0, sizeof *c);
	c->json = jv_null();
	struct stat st;
	char *file = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? xasprintf("%s/config.json", path)
	                                                         : xstrdup(path);
	int rc = -1;
	char *text = cli_read_file(file);
	if (!text) {
		*err = xasprintf("%s: %s", file, strerror(errno));
		goto out;
	}
	size_t at;
	const char *why;
	jv o = json_parse(text, strlen(text), &at, &why);
	free(text);
	if (!jv_is_valid(o)) {
		jv_free(o);
		*err = xasprintf("%s: byte %zu: %s", file, at, why);
		goto out;
	}
	char *cerr = NULL;
	if (config_check(o, c, &cerr) < 0) {
		jv_free(o);
		*err = xasprintf("%s: %s", file, cerr);
		free(cerr);
		goto out;
	}
	c->json = o;
	rc = 0;
out:
	free(file);
	return rc;
}

void qwen2_config_free(qwen2_config *c)
{
	jv_free(c->json);
	c->json = jv_null();
}

/* ---- parameter table ----------------------------------------------- */

static void table_add(qwen2_param *t, size_t *n, size_t *off, const char *name, int64_t d0, int64_t d1,
                      int decay)
{
	qwen2_param *p = &t[(*n)++];
	snprintf(p->name, sizeof p->name, "%s", name);
	p->offset = *off;
	p->ndim = d1 ? 2 : 1;
	p->shape[0] = d0;
	p->shape[1] = d1;
	p->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
	p->decay = decay;
	*off += p->numel;
}

/* The table in storage order; returns the total number of floats. */
static size_t table_build(const qwen2_config *c, qwen2_param **out, size_t *count)
{
	qwen2_param *t = xcalloc((size_t)c->n_layers * 12 + 3, sizeof *t);
	size_t n = 0, off = 0;
	int64_t V = c->vocab, C = c->dim, FF = c->hidden;
	int64_t QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
	char name[64];
	table_add(t, &n, &off, "model.embed_tokens.weight", V, C, 1);
	for (int l = 0; l < c->n_layers; l++) {
#define P(suffix, d0, d1, decay)                                                  \
	snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);             \
	table_add(t, &n, &off, name, d0, d1, decay)
		P("input_layernorm.weight", C, 0, 0);
		P("self_attn.q_proj.weight", QD, C, 1);
		P("self_attn.q_proj.bias", QD, 0, 0);
		P("self_attn.k_proj.weight", KD, C, 1);
		P("self_attn.k_proj.bias", KD, 0, 0);
		P("self_attn.v_proj.weight", KD, C, 1);
		P("self_attn.v_proj.bias", KD, 0, 0);
		P("self_attn.o_proj.weight", C, QD, 1);
		P("post_attention_layernorm.weight", C, 0, 0);
		P("mlp.gate_proj.weight", FF, C, 1);
		P("mlp.up_proj.weight", FF, C, 1);
		P("mlp.down_proj.weight", C, FF, 1);
#undef P
	}
	table_add(t, &n, &off, "model.norm.weight", C, 0, 0);
	if (!c->tied) table_add(t, &n, &off, "lm_head.weight", V, C, 1);
	*out = t;
	*count = n;
	return off;
}

/* Point the views of w at its base: parameter i at off[i] floats, or NULL
 * where off[i] is NOT_HELD. */
#define NOT_HELD ((size_t)-1)
static void weights_bind_at(qwen2_weights *w, const qwen2_config *c, const size_t *off)
{
	size_t i = 0;
#define AT(k) (off[k] == NOT_HELD ? NULL : w->base + off[k])
	w->embed = AT(i);
	i++;
	w->layers = xcalloc((size_t)c->n_layers, sizeof *w->layers);
	for (int l = 0; l < c->n_layers; l++) {
		qwen2_layer *y = &w->layers[l];
		float **v[] = {&y->ln1, &y->wq, &y->bq, &y->wk, &y->bk, &y->wv, &y->bv,
		               &y->wo, &y->ln2, &y->wg, &y->wu, &y->wd};
		for (size_t k = 0; k < sizeof v / sizeof *v; k++, i++) *v[k] = AT(i);
	}
	w->norm = AT(i);
	i++;
	w->lm_head = c->tied ? w->embed : AT(i);
#undef AT
}

/* Point the views of w at its base, in table order. */
static void weights_bind(qwen2_weights *w, const qwen2_config *c, const qwen2_param *t, size_t n_params)
{
	size_t *off = xmalloc(n_params * sizeof *off);
	for (size_t i = 0; i < n_params; i++) off[i] = t[i].offset;
	weights_bind_at(w, c, off);
	free(off);
}

static void weights_alloc(qwen2_weights *w, const qwen2_model *m, size_t n)
{
	w->n = n;
	w->base = xcalloc(n, sizeof(float));
	weights_bind(w, &m->cfg, m->table, m->n_params);
}

static void weights_free(qwen2_weights *w)
{
	free(w->base);
	free(w->layers);
	memset(w, 0, sizeof *w);
}

/* slot[i]: the generation view of parameter i, or NULL for a vector. */
static wmat **mats_slots(qwen2_model *m)
{
	const qwen2_config *c = &m->cfg;
	wmat **slot = xcalloc(m->n_params, sizeof *slot);
	m->mx.layers = xcalloc((size_t)c->n_layers, sizeof *m->mx.layers);
	size_t i = 0;
	slot[i++] = &m->mx.embed;
	for (int l = 0; l < c->n_layers; l++) {
		qwen2_layer_mats *y = &m->mx.layers[l];
		wmat *v[] = {NULL, &y->q, NULL, &y->k, NULL, &y->v, NULL, &y->o, NULL, &y->gate, &y->up, &y->down};
		for (size_t k = 0; k < sizeof v / sizeof *v; k++) slot[i++] = v[k];
	}
	i++; /* model.norm.weight */
	if (!c->tied) slot[i++] = &m->mx.lm_head;
	return slot;
}

/* The generation views of an fp32 model: its own table. */
static void mats_bind_f32(qwen2_model *m)
{
	wmat **slot = mats_slots(m);
	for (size_t i = 0; i < m->n_params; i++)
		if (slot[i])
			*slot[i] = (wmat){.data = m->w.base + m->table[i].offset, .dtype = WMAT_F32,
			                  .rows = (int)m->table[i].shape[0], .cols = (int)m->table[i].shape[1]};
	if (m->cfg.tied) m->mx.lm_head = m->mx.embed;
	free(slot);
}

static qwen2_model *model_new(qwen2_config *c)
{
	qwen2_model *m = xcalloc(1, sizeof *m);
	m->cfg = *c;
	c->json = jv_null();
	size_t n = table_build(&m->cfg, &m->table, &m->n_params);
	weights_alloc(&m->w, m, n);
	mats_bind_f32(m);
	return m;
}

/* A model whose fp32 table holds the vectors only (qwen2_load_stored):
 * the matrix views of w are NULL, mx is bound by the loader. */
static qwen2_model *model_new_stored(qwen2_config *c)
{
	qwen2_model *m = xcalloc(1, sizeof *m);
	m->cfg = *c;
	c->json = jv_null();
	m->stored = 1;
	table_build(&m->cfg, &m->table, &m->n_params);
	size_t *off = xmalloc(m->n_params * sizeof *off), n = 0;
	for (size_t i = 0; i < m->n_params; i++) {
		off[i] = m->table[i].ndim == 1 ? n : NOT_HELD;
		if (m->table[i].ndim == 1) n += m->table[i].numel;
	}
	m->w.n = n;
	m->w.base = xcalloc(n, sizeof(float));
	weights_bind_at(&m->w, &m->cfg, off);
	free(off);
	return m;
}

/* ---- load / init / save -------------------------------------------- */

/* The tensor of parameter p in st, its shape checked against the table.
 * Returns borrowed, or NULL with *e owned. */
static const st_tensor *param_tensor(const st_model *st, const char *dir, const qwen2_param *p, char **e)
{
	const st_tensor *t = safetensors_find(st, p->name);
	if (!t) {
		*e = xasprintf("%s: tensor %s is missing", dir, p->name);
		return NULL;
	}
	int same = t->ndim == p->ndim && t->shape[0] == p->shape[0] && (p->ndim == 1 || t->shape[1] == p->shape[1]);
	if (!same) {
		*e = xasprintf("%s: tensor %s has shape [%lld%s%lld], the config says [%lld%s%lld]", dir, p->name,
		               (long long)t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL,
		               (long long)p->shape[0], p->ndim > 1 ? ", " : "", p->ndim > 1 ? (long long)p->shape[1] : 0LL);
		return NULL;
	}
	return t;
}

/* A tensor the model has no place for means another architecture or a
 * damaged file: refuse rather than ignore. Tied models may still carry
 * lm_head.weight (some exporters write it); old ones a rotary buffer.
 * Returns NULL, or the reason (owned). */
static char *extra_tensors(const st_model *st, const qwen2_model *m, const char *dir)
{
	for (size_t i = 0; i < safetensors_count(st); i++) {
		const char *name = safetensors_at(st, i)->name;
		int known = 0;
		for (size_t k = 0; k < m->n_params && !known; k++) known = !strcmp(name, m->table[k].name);
		if (known || (m->cfg.tied && !strcmp(name, "lm_head.weight")) || strstr(name, "rotary_emb.inv_freq"))
			continue;
		return xasprintf("%s: tensor %s is not part of a Qwen2 model", dir, name);
	}
	return NULL;
}

/* A model directory's config.json into *c and its safetensors opened;
 * NULL with *err owned (and nothing held) when either fails. */
static st_model *open_dir(const char *dir, qwen2_config *c, char **err)
{
	if (qwen2_config_load(dir, c, err) < 0) return NULL;
	st_model *st = safetensors_open_dir(dir, err);
	if (!st) qwen2_config_free(c);
	return st;
}

qwen2_model *qwen2_load(const char *dir, char **err)
{
	qwen2_config c;
	st_model *st = open_dir(dir, &c, err);
	if (!st) return NULL;
	qwen2_model *m = model_new(&c);
	char *e = NULL;
	for (size_t i = 0; i < m->n_params && !e; i++) {
		const qwen2_param *p = &m->table[i];
		const st_tensor *t = param_tensor(st, dir, p, &e);
		char *ce = NULL;
		if (t && safetensors_to_f32(t, m->w.base + p->offset, &ce) < 0) {
			e = xasprintf("%s: %s", dir, ce);
			free(ce);
		}
	}
	if (!e) e = extra_tensors(st, m, dir);
	safetensors_close(st);
	if (e) {
		*err = e;
		qwen2_free(m);
		return NULL;
	}
	return m;
}

qwen2_model *qwen2_load_stored(const char *dir, char **err)
{
	qwen2_config c;
	st_model *st = open_dir(dir, &c, err);
	if (!st) return NULL;
	qwen2_model *m = model_new_stored(&c);
	m->st = st;
	wmat **slot = mats_slots(m);
	char *e = NULL;
	for (size_t i = 0, at = 0; i < m->n_params && !e; i++) {
		const qwen2_param *p = &m->table[i];
		const st_tensor *t = param_tensor(st, dir, p, &e);
		if (!t) break;
		if (!slot[i]) { /* a vector: to fp32, in table order */
			char *ce = NULL;
			if (safetensors_to_f32(t, m->w.base + at, &ce) < 0) {
				e = xasprintf("%s: %s", dir, ce);
				free(ce);
			}
			at += p->numel;
			continue;
		}
		if (t->dtype == ST_OTHER) {
			e = xasprintf("%s: tensor %s is %s; only F32, BF16 and F16 are read", dir, p->name, t->dtype_name);
			break;
		}
		wmat_dtype dt = t->dtype == ST_F32 ? WMAT_F32 : t->dtype == ST_F16 ? WMAT_F16 : WMAT_BF16;
		const void *data = t->data;
		/* Files laid out as the Python package and our writer lay them out
		 * are aligned; another layout gets its own aligned copy, which
		 * OpenBLAS's sgemm of an fp32 matrix wants. */
		if ((uintptr_t)data % wmat_elsize(dt)) {
			void *copy = xmalloc(t->nbytes);
			memcpy(copy, data, t->nbytes);
			m->copies = xrealloc(m->copies, (size_t)(m->n_copies + 1) * sizeof *m->copies);
			m->copies[m->n_copies++] = copy;
			data = copy;
		}
		*slot[i] = (wmat){.data = data, .dtype = dt, .rows = (int)p->shape[0], .cols = (int)p->shape[1]};
	}
	free(slot);
	if (m->cfg.tied) m->mx.lm_head = m->mx.embed;
	if (!e) e = extra_tensors(st, m, dir);
	if (e) {
		*err = e;
		qwen2_free(m);
		return NULL;
	}
	return m;
}

/* splitmix64, then Box-Muller: a fixed generator so a seed means the same
 * model on every machine. */
static double rng_normal(uint64_t *s)
{
	double u1 = ((splitmix64(s) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
	double u2 = (splitmix64(s) >> 11) / 9007199254740992.0;
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

qwen2_model *qwen2_init_random(qwen2_config *c, uint64_t seed)
{
	double std = 0.02;
	char *ignored = NULL;
	cfg_num(c->json, "initializer_range", &std, &ignored);
	free(ignored);
	qwen2_model *m = model_new(c);
	uint64_t s = seed;
	for (size_t i = 0; i < m->n_params; i++) {
		const qwen2_param *p = &m->table[i];
		float *x = m->w.base + p->offset;
		int is_norm = strstr(p->name, "norm") != NULL;
		for (size_t k = 0; k < p->numel; k++)
			x[k] = is_norm ? 1.0f : p->ndim == 1 ? 0.0f : (float)(std * rng_normal(&s));
	}
	return m;
}

static int write_config(const qwen2_model *m, const char *dir, const char *dtype, char **err)
{
	jv o = jv_copy(m->cfg.json);
	if (jv_get_kind(o) != JV_KIND_OBJECT) {
		jv_free(o);
		o = jv_object();
	}
	char *cur_new = cfg_str(o, "dtype"), *cur_old = cfg_str(o, "torch_dtype");
	int has_new = cur_new != NULL, has_old = cur_old != NULL;
	free(cur_new);
	free(cur_old);
	if (has_new || !has_old) o = jv_object_set(o, jv_string("dtype"), jv_string(dtype));
	if (has_old || !has_new) o = jv_object_set(o, jv_string("torch_dtype"), jv_string(dtype));
	jv s = jv_dump_string(o, JV_PRINT_PRETTY | JV_PRINT_SPACE1);
	char *path = xasprintf("%s/config.json", dir), *tmp = xasprintf("%s/.config.json.tmp", dir);
	int rc = -1;
	FILE *f = fopen(tmp, "wb");
	if (f) {
		int bad = fputs(jv_string_value(s), f) < 0 || fputc('\n', f) == EOF;
		bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
		bad |= fclose(f) != 0;
		if (!bad && rename(tmp, path) == 0) rc = 0;
	}
	if (rc < 0) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		unlink(tmp);
	}
	jv_free(s);
	free(path);
	free(tmp);
	return rc;
}

int qwen2_save(const qwen2_model *m, const char *dir, const char *dtype, char **err)
{
	if (m->stored) {
		*err = xstrdup("a model loaded for generation only (its matrices as stored) cannot be saved");
		return -1;
	}
	st_dtype d = !strcmp(dtype, "bfloat16") ? ST_BF16 : !strcmp(dtype, "float16") ? ST_F16 : ST_F32;
	if (d == ST_F32 && strcmp(dtype, "float32")) {
		*err = xasprintf("dtype '%s' is not one of float32, bfloat16, float16", dtype);
		return -1;
	}
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		*err = xasprintf("%s: %s", dir, strerror(errno));
		return -1;
	}
	st_writer *w = safetensors_writer_new();
	safetensors_writer_meta(w, "format", "pt");
	for (size_t i = 0; i < m->n_params; i++) {
		const qwen2_param *p = &m->table[i];
		safetensors_writer_add(w, p->name, d, p->ndim, p->shape, m->w.base + p->offset);
	}
	/* transformers' default max_shard_size. */
	int rc = safetensors_writer_save(w, dir, (size_t)5 << 30, err);
	safetensors_writer_free(w);
	if (rc == 0) rc = write_config(m, dir, dtype, err);
	return rc;
}

/* ---- the end of a model ------------------------------------------- */

void qwen2_free(qwen2_model *m)
{
	if (!m) return;
	qwen2_engine_free(m);
	weights_free(&m->w);
	free(m->mx.layers);
	for (int i = 0; i < m->n_copies; i++) free(m->copies[i]);
	free(m->copies);
	if (m->st) safetensors_close(m->st);
	free(m->table);
	qwen2_config_free(&m->cfg);
	free(m);
}
