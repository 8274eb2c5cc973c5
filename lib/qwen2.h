/* qwen2.h — the Qwen2 decoder (DESIGN.md §3) as a checkpoint holds it:
 * config, the parameter table with Hugging Face names and shapes, load and
 * save of model directories. The arithmetic is elsewhere: lib/forward.c
 * writes the model against the ops of lib/ops.h, and lib/ops_cpu.c is the
 * CPU backend; the few entry points at the end of this file run a model on
 * its own CPU engine (the unit tests and ds-infer use them).
 *
 * Exactly transformers' Qwen2ForCausalLM: RMSNorm (eps from the config),
 * rotary embeddings with the rotate-half convention (dimension d pairs with
 * d + head_dim/2), grouped-query attention, bias on q/k/v only, SwiGLU MLP,
 * tied or untied LM head.
 *
 * Every parameter lives in one fp32 allocation (params->base) laid out in
 * the order of the parameter table (qwen2_param_table); gradients and the
 * optimizer's moments (lib/trainstep.c) use the same layout, so
 * "parameter i" is the same byte range in each.
 *
 * Generation reads the matrices through m->mx, views that say their dtype
 * (wmat.h): into that fp32 allocation for a model from qwen2_load or
 * qwen2_init_random, or straight into the mapped safetensors files, in
 * the dtype stored there, for one from qwen2_load_stored, which copies
 * only the norms and biases to fp32.
 *
 * Training semantics (forward_train_sample, trainstep.h): a sample is
 * documents laid end to end; attention and positions restart at each.
 * Inside a document, position t predicts token t+1 when that token's mask
 * is 1; nothing is predicted across a document boundary (a document's
 * first token is the chat template's <|im_start|>, never a target). The
 * loss of an optimizer step is the cross-entropy summed over every target
 * of every sample of the accumulated batch, divided by the number of those
 * targets: the normalisation transformers adopted in 4.46, so accumulation
 * over K samples equals one batch of K (per-sample averaging would
 * overweight short samples).
 */
#ifndef DS_QWEN2_H
#define DS_QWEN2_H

#include "ops.h"
#include "wmat.h"

#include <jv.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qwen2_config {
	int vocab;      /* V: vocab_size */
	int dim;        /* C: hidden_size */
	int hidden;     /* FF: intermediate_size */
	int n_layers;   /* L: num_hidden_layers */
	int n_heads;    /* H: num_attention_heads */
	int n_kv_heads; /* KV: num_key_value_heads; H % KV == 0 */
	int head_dim;   /* D: C / H */
	int max_pos;    /* max_position_embeddings */
	float rms_eps;  /* rms_norm_eps */
	double rope_theta;
	int tied;       /* tie_word_embeddings */
	char dtype[16]; /* the checkpoint's dtype: float32, bfloat16, float16 */
	jv json;        /* owned: the whole config.json, written back on save */
} qwen2_config;

/* Read DIR/config.json (or a config file path) into c. Refuses, naming the
 * field, what this engine does not implement (another architecture, an
 * activation other than silu, rope_scaling, sliding-window attention,
 * head_dim that does not divide). Returns 0, or -1 with *err owned. */
int qwen2_config_load(const char *path, qwen2_config *c, char **err);
void qwen2_config_free(qwen2_config *c);

/* One row of the parameter table: where the tensor lives and what it is. */
typedef struct qwen2_param {
	char name[64];   /* the Hugging Face name, e.g. model.layers.0.mlp.up_proj.weight */
	size_t offset;   /* in floats from params->base */
	int ndim;
	int64_t shape[2];
	size_t numel;
	int decay;       /* 1: weight decay applies (not biases or norm weights) */
} qwen2_param;

typedef struct qwen2_layer {
	float *ln1;        /* (C) input_layernorm */
	float *wq, *bq;    /* (H*D, C), (H*D) */
	float *wk, *bk;    /* (KV*D, C), (KV*D) */
	float *wv, *bv;    /* (KV*D, C), (KV*D) */
	float *wo;         /* (C, H*D) */
	float *ln2;        /* (C) post_attention_layernorm */
	float *wg, *wu;    /* (FF, C) gate_proj, up_proj */
	float *wd;         /* (C, FF) down_proj */
} qwen2_layer;

/* Views into one allocation of n floats. In a model from
 * qwen2_load_stored only the vectors (ln1, biases, ln2, norm) are there;
 * the matrix views are NULL. */
typedef struct qwen2_weights {
	float *base;         /* (n) owned */
	size_t n;
	float *embed;        /* (V, C) */
	qwen2_layer *layers; /* (L) owned array of views */
	float *norm;         /* (C) */
	float *lm_head;      /* (V, C); == embed when tied */
} qwen2_weights;

/* The matrices of one layer as generation reads them. */
typedef struct qwen2_layer_mats {
	wmat q, k, v;     /* (H*D, C), (KV*D, C), (KV*D, C) */
	wmat o;           /* (C, H*D) */
	wmat gate, up;    /* (FF, C) */
	wmat down;        /* (C, FF) */
} qwen2_layer_mats;

typedef struct qwen2_mats {
	wmat embed;                /* (V, C) */
	qwen2_layer_mats *layers;  /* (L) owned array of views */
	wmat lm_head;              /* (V, C); the same view as embed when tied */
} qwen2_mats;

typedef struct qwen2_model {
	qwen2_config cfg;
	qwen2_param *table; /* owned, n_params rows */
	size_t n_params;
	qwen2_weights w;    /* parameters (fp32) */
	qwen2_mats mx;      /* the matrices for generation: views into w or the files */
	int stored;         /* 1: from qwen2_load_stored; w holds the vectors only */
	struct st_model *st; /* owned when stored: the mapped files mx views */
	void **copies;      /* (n_copies) owned: stored tensors too misaligned to view */
	int n_copies;
	struct forward *fw; /* owned: the model's own CPU engine, made on first use (forward.c) */
	void *fw_ctx;       /* owned: its backend context */
} qwen2_model;

/* Load a model directory: config.json and model.safetensors (or the shards
 * of model.safetensors.index.json) in fp32, bf16 or fp16, converted to
 * fp32. A missing or extra tensor, or one of the wrong shape, is refused by
 * name. Returns owned (qwen2_free), or NULL with *err owned. */
qwen2_model *qwen2_load(const char *dir, char **err);

/* The same for generation only, without the fp32 copy: the matrices stay
 * in the mapped files in their stored dtype (fp32, bf16 or fp16) and are
 * widened as they are read; norms and biases are converted to fp32. Half
 * the memory and half the bytes read per token for a bf16 or fp16
 * checkpoint, and the same logits within fp32 rounding. Such a model can
 * go to qwen2_forward_segs and qwen2_cache_new only (not to training,
 * qwen2_logits or qwen2_save). Returns owned (qwen2_free), or NULL with
 * *err owned. */
qwen2_model *qwen2_load_stored(const char *dir, char **err);

/* A model of config c (consumed) with transformers' initialisation: every
 * matrix normal(0, initializer_range), biases 0, norm weights 1, from a
 * generator seeded with seed. Returns owned. */
qwen2_model *qwen2_init_random(qwen2_config *c, uint64_t seed);

/* Write dir/config.json and the weights as Hugging Face does (shards over
 * 5 GB with an index), stored as dtype ("float32", "bfloat16", "float16").
 * Atomic per file. Refuses a model from qwen2_load_stored. Returns 0, or
 * -1 with *err owned. */
int qwen2_save(const qwen2_model *m, const char *dir, const char *dtype, char **err);

void qwen2_free(qwen2_model *m);

/* A packed sample (the shape of shard_sample, borrowed). */
/* A teacher's soft labels of a sample's targets (ds-shard(5), kd.h). */
typedef struct qwen2_soft {
	int k, n;
	const uint32_t *pos;     /* (n) positions of targets, increasing */
	const uint32_t *id;      /* (n, k) the teacher's top k there */
	const float *lp;         /* (n, k) their log-probabilities */
} qwen2_soft;

typedef struct qwen2_batch {
	int n_tokens;            /* T */
	int n_docs;
	const uint32_t *ids;     /* (T) */
	const uint8_t *mask;     /* (T) 1 = a target */
	const uint32_t *doc_len; /* (n_docs) summing to T */
	const qwen2_soft *soft;  /* or NULL: none */
} qwen2_batch;

/* Targets in b: positions t whose next token, in the same document, has
 * mask 1. The divisor of an accumulated batch is the sum over its samples. */
long qwen2_count_targets(const qwen2_batch *b);

/* ---- on the model's own CPU engine (forward.c) --------------------- */

/* Forward only: logits (T, V) for every position of b into out (caller's,
 * T * V floats). Needs an fp32 model (qwen2_load, qwen2_init_random);
 * given a stored one it aborts. */
void qwen2_logits(qwen2_model *m, const qwen2_batch *b, float *out);

/* Free the model's engine, if it has one (qwen2_free does). */
void qwen2_engine_free(qwen2_model *m);

/* ---- generation: a key/value cache per sequence -------------------- */

/* The keys and values of the positions a sequence has seen, for every
 * layer, so each new token costs one position's work. */
typedef struct qwen2_cache {
	int cap;        /* positions it can hold */
	int len;        /* positions filled */
	tensor k;       /* (L * cap, KV*D) after rotary, owned, in the backend's memory */
	tensor v;       /* (L * cap, KV*D) owned */
	const ops *o;   /* the backend that holds k and v */
	void *ctx;
} qwen2_cache;

/* Returns owned (qwen2_cache_free); cap <= the model's max_pos. */
qwen2_cache *qwen2_cache_new(qwen2_model *m, int cap);
void qwen2_cache_free(qwen2_cache *c);

/* dst (same backend, cap >= src->len) = the positions of src: a cache
 * grown by a copy into a larger one. Borrows both. */
void qwen2_cache_copy(qwen2_cache *dst, const qwen2_cache *src, int n_layers);

/* n new tokens of one sequence, at positions cache->len .. len+n-1. */
typedef struct qwen2_seg {
	qwen2_cache *cache; /* borrowed; n positions are appended */
	const uint32_t *ids; /* (n) borrowed */
	int n;
} qwen2_seg;

/* Run several sequences' new tokens in one pass (a prompt's prefill is one
 * segment of many tokens; a decoding step of a batch is many segments of
 * one): the matrix products see every token at once, attention stays
 * inside each sequence. logits (nseg, V) gets the last token's logits of
 * each segment. Returns 0, or -1 (nothing done) when a segment would
 * overflow its cache. */
int qwen2_forward_segs(qwen2_model *m, const qwen2_seg *segs, int nseg, float *logits);

#endif
