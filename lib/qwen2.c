/* qwen2.c — the Qwen2 decoder in fp32 on the CPU: config, parameter table,
 * load/save, forward, backward, logits. See qwen2.h for the semantics.
 *
 * Matrix products go to BLAS (OpenBLAS's OpenMP build: inside an OpenMP
 * loop its calls run on one thread, outside it uses them all). Attention
 * is computed per (head, document) in query blocks of QB rows, keeping
 * only the log-sum-exp of each row for the backward pass, which
 * recomputes the probabilities: no (T, T) matrix is ever stored, so long
 * packed samples cost O(T) memory per layer beyond the activations.
 */
#include "qwen2.h"
#include "check.h"
#include "cli.h"
#include "json.h"
#include "rng.h"
#include "safetensors.h"
#include "wmat.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* glibc's libmvec has a vector expf, but math.h declares it only under
 * -ffast-math, which would loosen every other float here; declaring it
 * ourselves lets the softmax loops call it 4 floats at a time. */
__attribute__((simd("notinbranch"))) float expf(float);

#define QB 64      /* attention query block (rows) */
/* Loops over fewer elements than this run on one thread: waking the team
 * costs more than it saves, and tiny models are all such loops. */
#define PAR(n) ((n) >= (size_t)1 << 16)
#define HEAD_ROWS 128 /* LM-head chunk (tokens): 128 x 151936 floats = 78 MB */

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

/* ---- activations --------------------------------------------------- */

struct qwen2_gen;
static void gen_free(struct qwen2_gen *g);

typedef struct qwen2_scratch {
	int cap;        /* tokens */
	int threads;
	float *mem;     /* one allocation for everything below */
	/* saved by the forward pass, per layer */
	float *x_in;    /* (L, T, C) layer input */
	float *rstd1;   /* (L, T) */
	float *h1;      /* (L, T, C) normed input */
	float *q;       /* (L, T, H*D) after rotary */
	float *k, *v;   /* (L, T, KV*D), k after rotary */
	float *att;     /* (L, T, H*D) attention output */
	float *lse;     /* (L, H, T) log-sum-exp of each score row */
	float *x_mid;   /* (L, T, C) residual after attention */
	float *rstd2;   /* (L, T) */
	float *h2;      /* (L, T, C) */
	float *gate, *up, *act; /* (L, T, FF) */
	float *xf;      /* (T, C) final residual */
	float *rstdf;   /* (T) */
	float *hf;      /* (T, C) final norm output */
	/* working space */
	float *x;       /* (T, C) residual stream */
	float *dx;      /* (T, C) */
	float *dh;      /* (T, C) */
	float *dq;      /* (T, H*D) */
	float *dk, *dv; /* (T, KV*D) */
	float *datt;    /* (T, H*D) */
	float *dgate, *dup; /* (T, FF) */
	float *dkh, *dvh;   /* (H, T, D) per-head key/value gradients */
	float *cos, *sin;   /* (T, D/2) rotary tables for the sample's positions */
	float *blk;     /* (threads, 2, QB, T) attention scores and their gradients */
	float *head_h;  /* (HEAD_ROWS, C) gathered rows for the LM head */
	float *head_g;  /* (HEAD_ROWS, C) their gradients */
	float *logits;  /* (HEAD_ROWS, V) */
} qwen2_scratch;

static void scratch_ensure(qwen2_model *m, int T)
{
	qwen2_scratch *s = m->s;
	int threads = omp_get_max_threads();
	if (s && s->cap >= T && s->threads == threads) return;
	if (s) {
		free(s->mem);
		free(s);
	}
	const qwen2_config *c = &m->cfg;
	size_t L = c->n_layers, C = c->dim, FF = c->hidden, H = c->n_heads, D = c->head_dim;
	size_t QD = H * D, KD = (size_t)c->n_kv_heads * D, V = c->vocab, Tn = T;
	s = m->s = xcalloc(1, sizeof *s);
	s->cap = T;
	s->threads = threads;
	struct { float **p; size_t n; } parts[] = {
		{&s->x_in, L * Tn * C}, {&s->rstd1, L * Tn}, {&s->h1, L * Tn * C}, {&s->q, L * Tn * QD},
		{&s->k, L * Tn * KD}, {&s->v, L * Tn * KD}, {&s->att, L * Tn * QD}, {&s->lse, L * H * Tn},
		{&s->x_mid, L * Tn * C}, {&s->rstd2, L * Tn}, {&s->h2, L * Tn * C}, {&s->gate, L * Tn * FF},
		{&s->up, L * Tn * FF}, {&s->act, L * Tn * FF}, {&s->xf, Tn * C}, {&s->rstdf, Tn},
		{&s->hf, Tn * C}, {&s->x, Tn * C}, {&s->dx, Tn * C}, {&s->dh, Tn * C}, {&s->dq, Tn * QD},
		{&s->dk, Tn * KD}, {&s->dv, Tn * KD}, {&s->datt, Tn * QD}, {&s->dgate, Tn * FF},
		{&s->dup, Tn * FF}, {&s->dkh, H * Tn * D}, {&s->dvh, H * Tn * D}, {&s->cos, Tn * D / 2},
		{&s->sin, Tn * D / 2}, {&s->blk, (size_t)threads * 2 * QB * Tn},
		{&s->head_h, HEAD_ROWS * C}, {&s->head_g, HEAD_ROWS * C}, {&s->logits, HEAD_ROWS * V},
	};
	size_t total = 0;
	for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) total += (parts[i].n + 15) & ~(size_t)15;
	s->mem = xmalloc(total * sizeof(float));
	float *p = s->mem;
	for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
		*parts[i].p = p;
		p += (parts[i].n + 15) & ~(size_t)15;
	}
}

void qwen2_free(qwen2_model *m)
{
	if (!m) return;
	weights_free(&m->w);
	weights_free(&m->g);
	free(m->mx.layers);
	for (int i = 0; i < m->n_copies; i++) free(m->copies[i]);
	free(m->copies);
	if (m->st) safetensors_close(m->st);
	if (m->s) free(m->s->mem);
	free(m->s);
	gen_free(m->gen);
	free(m->table);
	qwen2_config_free(&m->cfg);
	free(m);
}

/* Training needs the fp32 table; a stored model has none. */
static void need_fp32(const qwen2_model *m, const char *what)
{
	if (m->stored) {
		fprintf(stderr, "qwen2: %s needs an fp32 model (qwen2_load), not one from qwen2_load_stored\n", what);
		abort();
	}
}

void qwen2_alloc_grads(qwen2_model *m)
{
	need_fp32(m, "qwen2_alloc_grads");
	if (!m->g.base) weights_alloc(&m->g, m, m->w.n);
}

void qwen2_zero_grads(qwen2_model *m)
{
	memset(m->g.base, 0, m->g.n * sizeof(float));
}

/* ---- the pieces ---------------------------------------------------- */

/* out (T, O) = beta * out + in (T, K) W^T, W (O, K): sgemm, or sgemv for a
 * single row (decoding one token), which this OpenBLAS does not pick by
 * itself for M = 1 and runs about twice as fast. */
static void matmul_wt(float *out, const float *in, const float *W, int T, int K, int O, float beta)
{
	if (T == 1)
		cblas_sgemv(CblasRowMajor, CblasNoTrans, O, K, 1.0f, W, K, in, 1, beta, out, 1);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, O, K, 1.0f, in, K, W, K, beta, out, O);
}

/* out (T, O) = in (T, K) W^T (W is (O, K)) + b (O, or NULL) */
static void linear_fwd(float *out, const float *in, const float *W, const float *b, int T, int K, int O)
{
	matmul_wt(out, in, W, T, K, O, 0.0f);
	if (b) {
#pragma omp parallel for if (PAR((size_t)T * O))
		for (int t = 0; t < T; t++)
			for (int o = 0; o < O; o++) out[(size_t)t * O + o] += b[o];
	}
}

/* din (T, K) (+)= dout (T, O) W;  dW (O, K) += dout^T in;  db (O) += column sums. */
static void linear_bwd(float *din, int accumulate, float *dW, float *db, const float *dout, const float *in,
                       const float *W, int T, int K, int O)
{
	if (din)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, K, O, 1.0f, dout, O, W, K,
		            accumulate ? 1.0f : 0.0f, din, K);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, K, T, 1.0f, dout, O, in, K, 1.0f, dW, K);
	if (db) {
#pragma omp parallel for if (PAR((size_t)T * O))
		for (int o = 0; o < O; o++) {
			float acc = 0;
			for (int t = 0; t < T; t++) acc += dout[(size_t)t * O + o];
			db[o] += acc;
		}
	}
}

/* out = x / sqrt(mean(x^2) + eps) * w, per row; rstd (T) saved. */
static void rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int T, int C, float eps)
{
#pragma omp parallel for if (PAR((size_t)T * C))
	for (int t = 0; t < T; t++) {
		const float *xr = x + (size_t)t * C;
		float *o = out + (size_t)t * C;
		float ss = 0;
		for (int i = 0; i < C; i++) ss += xr[i] * xr[i];
		float r = 1.0f / sqrtf(ss / C + eps);
		rstd[t] = r;
		for (int i = 0; i < C; i++) o[i] = w[i] * (xr[i] * r);
	}
}

/* dx (T, C) += d/dx of rmsnorm given dy; dw (C) += sum_t dy * x * rstd. */
static void rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                        const float *w, int T, int C)
{
#pragma omp parallel for if (PAR((size_t)T * C))
	for (int t = 0; t < T; t++) {
		const float *xr = x + (size_t)t * C, *g = dy + (size_t)t * C;
		float *d = dx + (size_t)t * C, r = rstd[t];
		float dot = 0;
		for (int i = 0; i < C; i++) dot += g[i] * w[i] * xr[i];
		float k = dot * r * r * r / C;
		for (int i = 0; i < C; i++) d[i] += g[i] * w[i] * r - xr[i] * k;
	}
#pragma omp parallel for if (PAR((size_t)T * C))
	for (int i = 0; i < C; i++) {
		float acc = 0;
		for (int t = 0; t < T; t++) acc += dy[(size_t)t * C + i] * x[(size_t)t * C + i] * rstd[t];
		dw[i] += acc;
	}
}

/* The rotary inverse frequencies inv (D/2). transformers computes them
 * and the angles in fp32; so do we, so long positions round the same way. */
static void rope_inv(float *inv, const qwen2_config *c)
{
	for (int i = 0; i < c->head_dim / 2; i++)
		inv[i] = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)c->head_dim);
}

/* Rotary tables cos, sin (T, D/2) for the positions pos (T), from inv. */
static void rope_angles(float *cs, float *sn, const int *pos, int T, const float *inv, int half)
{
	for (int t = 0; t < T; t++)
		for (int i = 0; i < half; i++) {
			float a = (float)pos[t] * inv[i];
			cs[(size_t)t * half + i] = (float)cos((double)a);
			sn[(size_t)t * half + i] = (float)sin((double)a);
		}
}

static void rope_fill(float *cs, float *sn, const int *pos, int T, const qwen2_config *c)
{
	float *inv = xmalloc((size_t)(c->head_dim / 2) * sizeof *inv);
	rope_inv(inv, c);
	rope_angles(cs, sn, pos, T, inv, c->head_dim / 2);
	free(inv);
}

/* The tables of a packed sample: positions restart at each document. */
static void rope_tables(qwen2_scratch *s, const qwen2_config *c, const qwen2_batch *b)
{
	int *pos = xmalloc((size_t)b->n_tokens * sizeof *pos), t = 0;
	for (int d = 0; d < b->n_docs; d++)
		for (uint32_t p = 0; p < b->doc_len[d]; p++) pos[t++] = (int)p;
	rope_fill(s->cos, s->sin, pos, b->n_tokens, c);
	free(pos);
}

/* Rotate each head of x (T, nh*D) in place; inverse = 1 undoes it (the
 * backward pass: the transpose of a rotation is the opposite rotation). */
static void rope_apply(float *x, const qwen2_scratch *s, int T, int nh, int D, int inverse)
{
	int half = D / 2;
#pragma omp parallel for if (PAR((size_t)T * nh * D))
	for (int t = 0; t < T; t++)
		for (int h = 0; h < nh; h++) {
			float *v = x + ((size_t)t * nh + h) * D;
			const float *cs = s->cos + (size_t)t * half, *sn = s->sin + (size_t)t * half;
			for (int i = 0; i < half; i++) {
				float a = v[i], b2 = v[i + half], sgn = inverse ? -sn[i] : sn[i];
				v[i] = a * cs[i] - b2 * sgn;
				v[i + half] = b2 * cs[i] + a * sgn;
			}
		}
}

/* Causal attention inside each document, forward. q (T, H*D), k/v (T, KV*D),
 * out (T, H*D), lse (H, T). */
static void attention_fwd(qwen2_model *m, const qwen2_batch *b, const float *q, const float *k,
                          const float *v, float *out, float *lse)
{
	const qwen2_config *c = &m->cfg;
	qwen2_scratch *s = m->s;
	int H = c->n_heads, D = c->head_dim, group = c->n_heads / c->n_kv_heads, T = b->n_tokens;
	int QS = H * D, KS = c->n_kv_heads * D;
	float scale = 1.0f / sqrtf((float)D);
	int *start = xmalloc((size_t)b->n_docs * sizeof *start);
	for (int d = 0, o = 0; d < b->n_docs; o += b->doc_len[d], d++) start[d] = o;
	int items = H * b->n_docs;
#pragma omp parallel for schedule(dynamic)
	for (int it = 0; it < items; it++) {
		int h = it % H, d = it / H, g = h / group, s0 = start[d], len = (int)b->doc_len[d];
		float *S = s->blk + (size_t)omp_get_thread_num() * 2 * QB * s->cap;
		const float *K = k + (size_t)s0 * KS + g * D, *Vv = v + (size_t)s0 * KS + g * D;
		for (int a = 0; a < len; a += QB) {
			int nb = len - a < QB ? len - a : QB, nk = a + nb;
			const float *Q = q + (size_t)(s0 + a) * QS + h * D;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, D, scale, Q, QS, K, KS, 0.0f, S, nk);
			for (int i = 0; i < nb; i++) {
				float *row = S + (size_t)i * nk;
				int last = a + i; /* keys 0..last are visible */
				float mx = -INFINITY;
				for (int j = 0; j <= last; j++) mx = row[j] > mx ? row[j] : mx;
				float sum = 0;
				for (int j = 0; j <= last; j++) sum += (row[j] = expf(row[j] - mx));
				float inv = 1.0f / sum;
				for (int j = 0; j <= last; j++) row[j] *= inv;
				for (int j = last + 1; j < nk; j++) row[j] = 0;
				lse[(size_t)h * T + s0 + a + i] = mx + logf(sum);
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, nk, 1.0f, S, nk, Vv, KS, 0.0f,
			            out + (size_t)(s0 + a) * QS + h * D, QS);
		}
	}
	(void)T;
	free(start);
}

/* Backward of attention_fwd: dq (T, H*D) = ..., dk/dv (T, KV*D) = ... */
static void attention_bwd(qwen2_model *m, const qwen2_batch *b, const float *q, const float *k,
                          const float *v, const float *out, const float *lse, const float *dout, float *dq,
                          float *dk, float *dv)
{
	const qwen2_config *c = &m->cfg;
	qwen2_scratch *s = m->s;
	int H = c->n_heads, D = c->head_dim, group = c->n_heads / c->n_kv_heads, T = b->n_tokens;
	int QS = H * D, KS = c->n_kv_heads * D;
	float scale = 1.0f / sqrtf((float)D);
	int *start = xmalloc((size_t)b->n_docs * sizeof *start);
	for (int d = 0, o = 0; d < b->n_docs; o += b->doc_len[d], d++) start[d] = o;
	memset(s->dkh, 0, (size_t)H * T * D * sizeof(float));
	memset(s->dvh, 0, (size_t)H * T * D * sizeof(float));
	int items = H * b->n_docs;
#pragma omp parallel for schedule(dynamic)
	for (int it = 0; it < items; it++) {
		int h = it % H, d = it / H, g = h / group, s0 = start[d], len = (int)b->doc_len[d];
		float *P = s->blk + (size_t)omp_get_thread_num() * 2 * QB * s->cap;
		float *dP = P + (size_t)QB * s->cap;
		const float *K = k + (size_t)s0 * KS + g * D, *Vv = v + (size_t)s0 * KS + g * D;
		float *dK = s->dkh + ((size_t)h * T + s0) * D, *dV = s->dvh + ((size_t)h * T + s0) * D;
		for (int a = 0; a < len; a += QB) {
			int nb = len - a < QB ? len - a : QB, nk = a + nb;
			size_t row0 = (size_t)(s0 + a);
			const float *Q = q + row0 * QS + h * D, *O = out + row0 * QS + h * D;
			const float *dO = dout + row0 * QS + h * D;
			const float *L = lse + (size_t)h * T + row0;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, D, scale, Q, QS, K, KS, 0.0f, P, nk);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, D, 1.0f, dO, QS, Vv, KS, 0.0f, dP, nk);
			for (int i = 0; i < nb; i++) {
				float *p = P + (size_t)i * nk, *dp = dP + (size_t)i * nk;
				int last = a + i;
				float di = 0;
				for (int e = 0; e < D; e++) di += dO[(size_t)i * QS + e] * O[(size_t)i * QS + e];
				for (int j = 0; j <= last; j++) {
					p[j] = expf(p[j] - L[i]);
					dp[j] = p[j] * (dp[j] - di);
				}
				for (int j = last + 1; j < nk; j++) p[j] = dp[j] = 0;
			}
			/* dQ = dS K * scale; dK += dS^T Q * scale; dV += P^T dO */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, nk, scale, dP, nk, K, KS, 0.0f,
			            dq + row0 * QS + h * D, QS);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nb, scale, dP, nk, Q, QS, 1.0f, dK, D);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nb, 1.0f, P, nk, dO, QS, 1.0f, dV, D);
		}
	}
	/* Sum the heads of each key/value group. */
#pragma omp parallel for if (PAR((size_t)T * KS * group))
	for (int t = 0; t < T; t++)
		for (int g = 0; g < c->n_kv_heads; g++)
			for (int e = 0; e < D; e++) {
				float ak = 0, av = 0;
				for (int h = g * group; h < (g + 1) * group; h++) {
					ak += s->dkh[((size_t)h * T + t) * D + e];
					av += s->dvh[((size_t)h * T + t) * D + e];
				}
				dk[(size_t)t * KS + g * D + e] = ak;
				dv[(size_t)t * KS + g * D + e] = av;
			}
	free(start);
}

/* ---- the whole ----------------------------------------------------- */

#define LAYER(p, l, n) ((p) + (size_t)(l) * (size_t)T * (n))

/* Embedding, the layers and the final norm over b, saving what backward
 * needs; s->hf holds the final normed states. */
static void forward(qwen2_model *m, const qwen2_batch *b)
{
	need_fp32(m, "the training forward pass");
	const qwen2_config *c = &m->cfg;
	int T = b->n_tokens;
	scratch_ensure(m, T);
	qwen2_scratch *s = m->s;
	int C = c->dim, FF = c->hidden, H = c->n_heads, D = c->head_dim;
	int QD = H * D, KD = c->n_kv_heads * D;
	rope_tables(s, c, b);
#pragma omp parallel for if (PAR((size_t)T * C))
	for (int t = 0; t < T; t++)
		memcpy(s->x + (size_t)t * C, m->w.embed + (size_t)b->ids[t] * C, (size_t)C * sizeof(float));
	for (int l = 0; l < c->n_layers; l++) {
		const qwen2_layer *w = &m->w.layers[l];
		float *x_in = LAYER(s->x_in, l, C), *h1 = LAYER(s->h1, l, C), *q = LAYER(s->q, l, QD);
		float *k = LAYER(s->k, l, KD), *v = LAYER(s->v, l, KD), *att = LAYER(s->att, l, QD);
		float *x_mid = LAYER(s->x_mid, l, C), *h2 = LAYER(s->h2, l, C);
		float *gate = LAYER(s->gate, l, FF), *up = LAYER(s->up, l, FF), *act = LAYER(s->act, l, FF);
		memcpy(x_in, s->x, (size_t)T * C * sizeof(float));
		rmsnorm_fwd(h1, LAYER(s->rstd1, l, 1), s->x, w->ln1, T, C, c->rms_eps);
		linear_fwd(q, h1, w->wq, w->bq, T, C, QD);
		linear_fwd(k, h1, w->wk, w->bk, T, C, KD);
		linear_fwd(v, h1, w->wv, w->bv, T, C, KD);
		rope_apply(q, s, T, H, D, 0);
		rope_apply(k, s, T, c->n_kv_heads, D, 0);
		attention_fwd(m, b, q, k, v, att, LAYER(s->lse, l, H));
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, C, QD, 1.0f, att, QD, w->wo, QD, 1.0f, s->x, C);
		memcpy(x_mid, s->x, (size_t)T * C * sizeof(float));
		rmsnorm_fwd(h2, LAYER(s->rstd2, l, 1), s->x, w->ln2, T, C, c->rms_eps);
		linear_fwd(gate, h2, w->wg, NULL, T, C, FF);
		linear_fwd(up, h2, w->wu, NULL, T, C, FF);
#pragma omp parallel for if (PAR((size_t)T * FF))
		for (size_t i = 0; i < (size_t)T * FF; i++) {
			float g = gate[i];
			act[i] = g / (1.0f + expf(-g)) * up[i];
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, C, FF, 1.0f, act, FF, w->wd, FF, 1.0f, s->x, C);
	}
	memcpy(s->xf, s->x, (size_t)T * C * sizeof(float));
	rmsnorm_fwd(s->hf, s->rstdf, s->x, m->w.norm, T, C, c->rms_eps);
}

/* The layers backward from d(loss)/d(hf) in s->dh, into m->g. */
static void backward(qwen2_model *m, const qwen2_batch *b)
{
	const qwen2_config *c = &m->cfg;
	qwen2_scratch *s = m->s;
	int T = b->n_tokens, C = c->dim, FF = c->hidden, H = c->n_heads, D = c->head_dim;
	int QD = H * D, KD = c->n_kv_heads * D;
	memset(s->dx, 0, (size_t)T * C * sizeof(float));
	rmsnorm_bwd(s->dx, m->g.norm, s->dh, s->xf, s->rstdf, m->w.norm, T, C);
	for (int l = c->n_layers - 1; l >= 0; l--) {
		const qwen2_layer *w = &m->w.layers[l];
		qwen2_layer *gw = &m->g.layers[l];
		float *x_in = LAYER(s->x_in, l, C), *h1 = LAYER(s->h1, l, C), *q = LAYER(s->q, l, QD);
		float *k = LAYER(s->k, l, KD), *v = LAYER(s->v, l, KD), *att = LAYER(s->att, l, QD);
		float *x_mid = LAYER(s->x_mid, l, C), *h2 = LAYER(s->h2, l, C);
		float *gate = LAYER(s->gate, l, FF), *up = LAYER(s->up, l, FF), *act = LAYER(s->act, l, FF);
		/* MLP: x += down(silu(gate(h2)) * up(h2)) */
		linear_bwd(s->dgate, 0, gw->wd, NULL, s->dx, act, w->wd, T, FF, C); /* dgate holds d(act) */
#pragma omp parallel for if (PAR((size_t)T * FF))
		for (size_t i = 0; i < (size_t)T * FF; i++) {
			float g = gate[i], sig = 1.0f / (1.0f + expf(-g)), da = s->dgate[i];
			s->dup[i] = da * g * sig;
			s->dgate[i] = da * up[i] * sig * (1.0f + g * (1.0f - sig));
		}
		linear_bwd(s->dh, 0, gw->wg, NULL, s->dgate, h2, w->wg, T, C, FF);
		linear_bwd(s->dh, 1, gw->wu, NULL, s->dup, h2, w->wu, T, C, FF);
		rmsnorm_bwd(s->dx, gw->ln2, s->dh, x_mid, LAYER(s->rstd2, l, 1), w->ln2, T, C);
		/* attention: x += o(attn(rope(q(h1)), rope(k(h1)), v(h1))) */
		linear_bwd(s->datt, 0, gw->wo, NULL, s->dx, att, w->wo, T, QD, C);
		attention_bwd(m, b, q, k, v, att, LAYER(s->lse, l, H), s->datt, s->dq, s->dk, s->dv);
		rope_apply(s->dq, s, T, H, D, 1);
		rope_apply(s->dk, s, T, c->n_kv_heads, D, 1);
		linear_bwd(s->dh, 0, gw->wq, gw->bq, s->dq, h1, w->wq, T, C, QD);
		linear_bwd(s->dh, 1, gw->wk, gw->bk, s->dk, h1, w->wk, T, C, KD);
		linear_bwd(s->dh, 1, gw->wv, gw->bv, s->dv, h1, w->wv, T, C, KD);
		rmsnorm_bwd(s->dx, gw->ln1, s->dh, x_in, LAYER(s->rstd1, l, 1), w->ln1, T, C);
	}
	/* Rows of the embedding can repeat: accumulate per column so threads
	 * never write the same float. */
#pragma omp parallel for if (PAR((size_t)T * C))
	for (int i = 0; i < C; i++)
		for (int t = 0; t < T; t++) m->g.embed[(size_t)b->ids[t] * C + i] += s->dx[(size_t)t * C + i];
}

long qwen2_count_targets(const qwen2_batch *b)
{
	long n = 0;
	for (int d = 0, o = 0; d < b->n_docs; o += (int)b->doc_len[d], d++)
		for (uint32_t t = 1; t < b->doc_len[d]; t++) n += b->mask[o + t] != 0;
	return n;
}

double qwen2_train_sample(qwen2_model *m, const qwen2_batch *b, float scale)
{
	const qwen2_config *c = &m->cfg;
	int T = b->n_tokens, C = c->dim, V = c->vocab;
	forward(m, b);
	qwen2_scratch *s = m->s;
	memset(s->dh, 0, (size_t)T * C * sizeof(float));
	/* The rows that predict a target, and their targets. */
	int *row = xmalloc((size_t)T * sizeof *row), *tgt = xmalloc((size_t)T * sizeof *tgt), n = 0;
	for (int d = 0, o = 0; d < b->n_docs; o += (int)b->doc_len[d], d++)
		for (int t = 0; t + 1 < (int)b->doc_len[d]; t++)
			if (b->mask[o + t + 1]) {
				row[n] = o + t;
				tgt[n++] = (int)b->ids[o + t + 1];
			}
	double loss = 0;
	/* The LM head and the cross-entropy, HEAD_ROWS rows at a time: the
	 * logits of a chunk become their own gradient in place. */
	for (int r0 = 0; r0 < n; r0 += HEAD_ROWS) {
		int R = n - r0 < HEAD_ROWS ? n - r0 : HEAD_ROWS;
		for (int i = 0; i < R; i++)
			memcpy(s->head_h + (size_t)i * C, s->hf + (size_t)row[r0 + i] * C, (size_t)C * sizeof(float));
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, V, C, 1.0f, s->head_h, C, m->w.lm_head, C, 0.0f,
		            s->logits, V);
		double part = 0;
#pragma omp parallel for reduction(+ : part)
		for (int i = 0; i < R; i++) {
			float *z = s->logits + (size_t)i * V;
			float mx = -INFINITY, zt = z[tgt[r0 + i]];
#pragma omp simd reduction(max : mx)
			for (int j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx;
			float sum = 0;
#pragma omp simd reduction(+ : sum)
			for (int j = 0; j < V; j++) sum += (z[j] = expf(z[j] - mx));
			part += mx + logf(sum) - zt;
			float k = scale / sum;
#pragma omp simd
			for (int j = 0; j < V; j++) z[j] *= k;
			z[tgt[r0 + i]] -= scale;
		}
		loss += part;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, C, V, 1.0f, s->logits, V, m->w.lm_head, C, 0.0f,
		            s->head_g, C);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, R, 1.0f, s->logits, V, s->head_h, C, 1.0f,
		            m->g.lm_head, C);
		for (int i = 0; i < R; i++) {
			float *d = s->dh + (size_t)row[r0 + i] * C;
			const float *g = s->head_g + (size_t)i * C;
			for (int e = 0; e < C; e++) d[e] += g[e];
		}
	}
	free(row);
	free(tgt);
	backward(m, b);
	return loss;
}

void qwen2_logits(qwen2_model *m, const qwen2_batch *b, float *out)
{
	forward(m, b);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b->n_tokens, m->cfg.vocab, m->cfg.dim, 1.0f, m->s->hf,
	            m->cfg.dim, m->w.lm_head, m->cfg.dim, 0.0f, out, m->cfg.vocab);
}

/* ---- generation ---------------------------------------------------- */

qwen2_cache *qwen2_cache_new(const qwen2_model *m, int cap)
{
	const qwen2_config *c = &m->cfg;
	qwen2_cache *k = xcalloc(1, sizeof *k);
	size_t n = (size_t)c->n_layers * (size_t)cap * (size_t)c->n_kv_heads * (size_t)c->head_dim;
	k->cap = cap;
	k->k = xmalloc(n * sizeof(float));
	k->v = xmalloc(n * sizeof(float));
	return k;
}

void qwen2_cache_free(qwen2_cache *c)
{
	if (!c) return;
	free(c->k);
	free(c->v);
	free(c);
}

/* Generation's working space: grown when a call needs more (a longer
 * prompt, a bigger batch, a longer context), else reused, so a decoding
 * step allocates nothing. */
typedef struct qwen2_gen {
	size_t cap;  /* floats in mem */
	float *mem;  /* activations, rotary tables, attention scores */
	int icap;    /* tokens in the int arrays */
	int *seg_of; /* (icap) the segment of each token */
	int *pos;    /* (icap) its position */
	int *start;  /* (icap) each segment's first token */
	float *inv;  /* (D/2) rotary inverse frequencies */
} qwen2_gen;

static void gen_free(qwen2_gen *g)
{
	if (!g) return;
	free(g->mem);
	free(g->seg_of);
	free(g->pos);
	free(g->start);
	free(g->inv);
	free(g);
}

static qwen2_gen *gen_ensure(qwen2_model *m, size_t floats, int tokens)
{
	qwen2_gen *g = m->gen;
	if (!g) {
		g = m->gen = xcalloc(1, sizeof *g);
		g->inv = xmalloc((size_t)(m->cfg.head_dim / 2) * sizeof *g->inv);
		rope_inv(g->inv, &m->cfg);
	}
	if (g->cap < floats) {
		free(g->mem);
		g->mem = xmalloc(floats * sizeof(float));
		g->cap = floats;
	}
	if (g->icap < tokens) {
		free(g->seg_of);
		free(g->pos);
		free(g->start);
		g->seg_of = xmalloc((size_t)tokens * sizeof(int));
		g->pos = xmalloc((size_t)tokens * sizeof(int));
		g->start = xmalloc((size_t)tokens * sizeof(int));
		g->icap = tokens;
	}
	return g;
}

/* ys[i] (T, ws[i]->rows) = in (T, C) ws[i]^T: one pass over the rows of
 * all n for a single token, else one product each. */
static void mats_apply(int n, const wmat *const *ws, const float *in, int T, float *const *ys)
{
	if (T == 1) wmat_gemv_n(n, ws, in, ys);
	else
		for (int i = 0; i < n; i++) wmat_matmul(ws[i], in, T, ys[i], 0);
}

static void add_bias(float *y, const float *b, int T, int O)
{
	for (int t = 0; t < T; t++)
		for (int o = 0; o < O; o++) y[(size_t)t * O + o] += b[o];
}

/* One new token's attention for the group of query heads sharing one key
 * and value head: q (group, D), K and V (n, D) at a stride of ld floats
 * (the cache's rows), out (group, D) at a stride of out_ld, S (group, n)
 * scratch. The group's queries see each cached key while it is in cache;
 * the weighted sum of values runs 16 columns at a time in registers
 * rather than through out. An AVX2 clone is picked at run time. */
__attribute__((target_clones("avx2", "default")))
static void attend_decode(const float *q, const float *K, const float *V, int ld, int n, int D, int group,
                          float scale, float *S, float *out, int out_ld)
{
	for (int j = 0; j < n; j++) {
		const float *kr = K + (size_t)j * ld;
		for (int h = 0; h < group; h++) {
			const float *qh = q + (size_t)h * D;
			float d = 0;
#pragma omp simd reduction(+ : d)
			for (int e = 0; e < D; e++) d += qh[e] * kr[e];
			S[(size_t)h * n + j] = d * scale;
		}
	}
	for (int h = 0; h < group; h++) {
		float *row = S + (size_t)h * n, mx = -INFINITY, sum = 0;
#pragma omp simd reduction(max : mx)
		for (int j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
#pragma omp simd reduction(+ : sum)
		for (int j = 0; j < n; j++) sum += (row[j] = expf(row[j] - mx));
		float inv = 1.0f / sum, *o = out + (size_t)h * out_ld;
		int e0 = 0;
		for (; e0 + 16 <= D; e0 += 16) {
			float acc[16] = {0};
			for (int j = 0; j < n; j++) {
				const float *vr = V + (size_t)j * ld + e0;
				float p = row[j];
#pragma omp simd
				for (int e = 0; e < 16; e++) acc[e] += p * vr[e];
			}
			for (int e = 0; e < 16; e++) o[e0 + e] = acc[e] * inv;
		}
		for (int e = e0; e < D; e++) {
			float a = 0;
			for (int j = 0; j < n; j++) a += row[j] * V[(size_t)j * ld + e];
			o[e] = a * inv;
		}
	}
}

int qwen2_forward_segs(qwen2_model *m, const qwen2_seg *segs, int nseg, float *logits)
{
	const qwen2_config *c = &m->cfg;
	const qwen2_mats *mx = &m->mx;
	int C = c->dim, FF = c->hidden, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, half = D / 2;
	int QD = H * D, KD = KV * D, group = H / KV, T = 0, maxk = 0;
	for (int i = 0; i < nseg; i++) {
		if (segs[i].n < 1 || segs[i].cache->len + segs[i].n > segs[i].cache->cap) return -1;
		T += segs[i].n;
		if (segs[i].cache->len + segs[i].n > maxk) maxk = segs[i].cache->len + segs[i].n;
	}
	float scale = 1.0f / sqrtf((float)D);
	int threads = omp_get_max_threads(), rows_s = QB > group ? QB : group;
	size_t need = (size_t)T * (3 * C + 2 * QD + 2 * KD + 2 * FF + 1 + D) + (size_t)threads * rows_s * maxk;
	qwen2_gen *g = gen_ensure(m, need, T > nseg ? T : nseg);
	float *x = g->mem, *h = x + (size_t)T * C, *q = h + (size_t)T * C, *k = q + (size_t)T * QD, *v = k + (size_t)T * KD;
	float *att = v + (size_t)T * KD, *gate = att + (size_t)T * QD, *up = gate + (size_t)T * FF;
	float *rstd = up + (size_t)T * FF, *cs = rstd + T, *sn = cs + (size_t)T * half, *S = sn + (size_t)T * half;
	float *hl = x + (size_t)T * C * 2; /* (nseg, C) last rows, reusing spare room */
	int *seg_of = g->seg_of, *pos = g->pos, *start = g->start;
	for (int i = 0, t = 0; i < nseg; i++) {
		start[i] = t;
		for (int j = 0; j < segs[i].n; j++, t++) {
			seg_of[t] = i;
			pos[t] = segs[i].cache->len + j;
			wmat_row(&mx->embed, (int)segs[i].ids[j], x + (size_t)t * C);
		}
	}
	rope_angles(cs, sn, pos, T, g->inv, half);
	qwen2_scratch rs = {.cos = cs, .sin = sn};
	int decode = T == nseg; /* every segment one token */
	for (int l = 0; l < c->n_layers; l++) {
		const qwen2_layer *w = &m->w.layers[l];
		const qwen2_layer_mats *lm = &mx->layers[l];
		rmsnorm_fwd(h, rstd, x, w->ln1, T, C, c->rms_eps);
		const wmat *qkv[] = {&lm->q, &lm->k, &lm->v};
		float *qkv_out[] = {q, k, v};
		mats_apply(3, qkv, h, T, qkv_out);
		add_bias(q, w->bq, T, QD);
		add_bias(k, w->bk, T, KD);
		add_bias(v, w->bv, T, KD);
		rope_apply(q, &rs, T, H, D, 0);
		rope_apply(k, &rs, T, KV, D, 0);
		for (int t = 0; t < T; t++) {
			qwen2_cache *kc = segs[seg_of[t]].cache;
			size_t at = ((size_t)l * kc->cap + pos[t]) * KD;
			memcpy(kc->k + at, k + (size_t)t * KD, (size_t)KD * sizeof(float));
			memcpy(kc->v + at, v + (size_t)t * KD, (size_t)KD * sizeof(float));
		}
		if (decode) {
			/* one item a (sequence, key/value head): its group of queries */
			long work = 0;
			for (int i = 0; i < nseg; i++) work += (long)(segs[i].cache->len + 1) * QD;
#pragma omp parallel for schedule(dynamic) if (PAR((size_t)work) && nseg * KV > 1)
			for (int it = 0; it < nseg * KV; it++) {
				int si = it / KV, kv = it % KV;
				qwen2_cache *kc = segs[si].cache;
				size_t lo = (size_t)l * kc->cap * KD + (size_t)kv * D;
				attend_decode(q + (size_t)si * QD + (size_t)kv * group * D, kc->k + lo, kc->v + lo, KD,
				              kc->len + 1, D, group, scale, S + (size_t)omp_get_thread_num() * rows_s * maxk,
				              att + (size_t)si * QD + (size_t)kv * group * D, D);
			}
		} else {
#pragma omp parallel for schedule(dynamic)
			for (int it = 0; it < nseg * H; it++) {
				int si = it / H, hd = it % H, gi = hd / group, n = segs[si].n, p0 = segs[si].cache->len;
				qwen2_cache *kc = segs[si].cache;
				const float *K = kc->k + (size_t)l * kc->cap * KD + gi * D;
				const float *V = kc->v + (size_t)l * kc->cap * KD + gi * D;
				float *Sb = S + (size_t)omp_get_thread_num() * rows_s * maxk;
				for (int a = 0; a < n; a += QB) {
					int nb = n - a < QB ? n - a : QB, nk = p0 + a + nb;
					const float *Q = q + (size_t)(start[si] + a) * QD + hd * D;
					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, D, scale, Q, QD, K, KD, 0.0f,
					            Sb, nk);
					for (int i = 0; i < nb; i++) {
						float *row = Sb + (size_t)i * nk;
						int last = p0 + a + i;
						float mxv = -INFINITY, sum = 0;
						for (int j = 0; j <= last; j++) mxv = row[j] > mxv ? row[j] : mxv;
						for (int j = 0; j <= last; j++) sum += (row[j] = expf(row[j] - mxv));
						for (int j = 0; j <= last; j++) row[j] /= sum;
						for (int j = last + 1; j < nk; j++) row[j] = 0;
					}
					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, nk, 1.0f, Sb, nk, V, KD, 0.0f,
					            att + (size_t)(start[si] + a) * QD + hd * D, QD);
				}
			}
		}
		wmat_matmul(&lm->o, att, T, x, 1);
		rmsnorm_fwd(h, rstd, x, w->ln2, T, C, c->rms_eps);
		const wmat *gu[] = {&lm->gate, &lm->up};
		float *gu_out[] = {gate, up};
		mats_apply(2, gu, h, T, gu_out);
#pragma omp parallel for if (PAR((size_t)T * FF))
		for (size_t i = 0; i < (size_t)T * FF; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
		wmat_matmul(&lm->down, gate, T, x, 1);
	}
	/* Only each segment's last token needs logits. */
	for (int i = 0; i < nseg; i++) {
		int t = start[i] + segs[i].n - 1;
		memcpy(h + (size_t)i * C, x + (size_t)t * C, (size_t)C * sizeof(float));
	}
	rmsnorm_fwd(hl, rstd, h, m->w.norm, nseg, C, c->rms_eps);
	wmat_matmul(&mx->lm_head, hl, nseg, logits, 0);
	for (int i = 0; i < nseg; i++) segs[i].cache->len += segs[i].n;
	return 0;
}
