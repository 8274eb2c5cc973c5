/* forward.h — the Qwen2 computation, written once against ops.h: the
 * training forward and backward over packed samples, logits, and
 * generation's cached forward over several sequences. A `forward` binds a
 * model (qwen2.h: its parameters in host memory, as loaded) to a backend
 * and holds the activations, in the backend's memory.
 *
 * Training semantics are qwen2.h's (documents restart attention and
 * positions; the loss of a step is summed over its targets and divided by
 * their number, which the caller passes as scale).
 *
 * Activation recomputation (forward_set_recompute): keep only each decoder
 * layer's input from the forward pass, and in the backward pass run that
 * layer's forward again before its backward. The same ops in the same
 * order on the same inputs, so the gradients are bit for bit those of the
 * stored-activation path; activation memory grows with one layer, not L.
 */
#ifndef DS_FORWARD_H
#define DS_FORWARD_H

#include "kd.h"
#include "ops.h"
#include "qwen2.h"

/* One decoder layer's parameters (or their gradients) as tensors. */
typedef struct fwd_layer {
	tensor ln1;        /* (1, C) input_layernorm */
	tensor wq, bq;     /* (H*D, C), (1, H*D) */
	tensor wk, bk;     /* (KV*D, C), (1, KV*D) */
	tensor wv, bv;     /* (KV*D, C), (1, KV*D) */
	tensor wo;         /* (C, H*D) */
	tensor ln2;        /* (1, C) post_attention_layernorm */
	tensor wg, wu;     /* (FF, C) */
	tensor wd;         /* (C, FF) */
} fwd_layer;

typedef struct fwd_params {
	tensor embed;        /* (V, C) */
	fwd_layer *layers;   /* (L) owned array of views */
	tensor norm;         /* (1, C) */
	tensor lm_head;      /* (V, C); the same as embed when tied */
} fwd_params;

typedef struct forward forward;

/* An engine for m (borrowed: it must outlive the engine) on backend o with
 * context ctx (borrowed). Returns owned (forward_free). */
forward *forward_new(qwen2_model *m, const ops *o, void *ctx);
void forward_free(forward *f);

/* Views of the flat parameter-sized tensor flat (N floats, the layout of
 * m's table) as parameters, into *p (its layers owned: fwd_params_free). */
void forward_bind(const forward *f, tensor flat, fwd_params *p);
void fwd_params_free(fwd_params *p);

/* The fp32 parameters of f's model as one flat (1, N) tensor (the master
 * copy), and the parameters the ops compute with, bound (the backend's
 * compute copy: the master copy itself on the CPU). */
tensor forward_flat(const forward *f);
const fwd_params *forward_params(const forward *f);

/* The master weights (forward_flat) changed (an optimizer step, a
 * checkpoint read): refresh the compute copy the ops read, when the
 * backend keeps one (act not fp32). */
void forward_weights_changed(forward *f);

/* The master weights into the model's host arrays (m->w), for saving:
 * nothing to do on the CPU backend, whose master weights they are. */
void forward_weights_to_host(forward *f);

/* 1: recompute each layer in the backward pass (keep only its input). */
void forward_set_recompute(forward *f, int on);

/* Distillation (kd.h): with kd->alpha > 0, forward_train_sample's loss at
 * the targets that have soft labels (qwen2_batch.soft) is kd.h's; 0 (as
 * at the start): the cross-entropy alone. kd is copied. */
void forward_set_kd(forward *f, const kd_config *kd);

/* The last forward_train_sample's loss in its parts: the summed
 * cross-entropy over every target, and the summed KD term (before alpha
 * tau^2) over those with soft labels. */
void forward_last_parts(const forward *f, double *ce, double *kd);

/* Forward and backward over b: adds d(scale * loss)/d(param) into g, where
 * loss is the summed cross-entropy over b's targets (or, with
 * forward_set_kd, the distillation loss). Returns the summed loss (not
 * scaled). Needs an fp32 model. */
double forward_train_sample(forward *f, const qwen2_batch *b, float scale, const fwd_params *g);

/* The same forward pass without the backward: the summed cross-entropy
 * over b's targets, the same number forward_train_sample returns (minus
 * the log-probability of b's trained tokens: a DPO side's, qwen2.h). */
double forward_loss(forward *f, const qwen2_batch *b);

/* Logits (T, V) for every position of b into out (host, caller's). */
void forward_logits(forward *f, const qwen2_batch *b, float *out);

/* A cache of cap positions in f's backend. Returns owned (qwen2_cache_free). */
qwen2_cache *forward_cache_new(forward *f, int cap);

/* qwen2_forward_segs on f. */
int forward_segs(forward *f, const qwen2_seg *segs, int nseg, float *logits);

#endif
