/* optim.h — what turns gradients into an update, with PyTorch's semantics:
 * global-norm clipping (torch.nn.utils.clip_grad_norm_), AdamW
 * (torch.optim.AdamW, single-tensor path) and the learning-rate schedules
 * of transformers' get_scheduler. Arrays are fp32 and share one layout
 * (qwen2.h's parameter table).
 */
#ifndef DS_OPTIM_H
#define DS_OPTIM_H

#include <stddef.h>

/* The L2 norm of g[0..n). */
double optim_grad_norm(const float *g, size_t n);

/* clip_grad_norm_: scale g by min(1, max_norm / (norm + 1e-6)) when
 * max_norm > 0. Returns the norm before clipping. */
double optim_clip(float *g, size_t n, double max_norm);

/* Its two halves, for a gradient held in pieces (data parallel): the
 * factor, min(1, max_norm / (norm + 1e-6)) in fp32 (1 when max_norm <= 0),
 * and g *= k. */
float optim_clip_factor(double norm, double max_norm);
void optim_scale(float *g, size_t n, float k);

typedef struct adamw_hparams {
	double lr, beta1, beta2, eps, weight_decay;
} adamw_hparams;

/* One AdamW step on p[0..n) with gradient g, moments m and v, at step t
 * (1 for the first), with weight decay applied when decay is non-zero:
 *   p *= 1 - lr*wd;  m = lerp(m, g, 1-b1);  v = b2 v + (1-b2) g^2;
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).  */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, long t, const adamw_hparams *h,
                  int decay);

enum { SCHED_LINEAR, SCHED_COSINE, SCHED_CONSTANT, SCHED_CONSTANT_WARMUP };

/* The schedule's name as transformers spells it, or -1. */
int sched_parse(const char *name);

/* The multiplier of the base learning rate at optimizer step `step` (0 for
 * the first) of `total`, after `warmup` warmup steps: transformers'
 * get_{linear,cosine,constant}_schedule_with_warmup lambdas. */
double sched_factor(int kind, long step, long total, long warmup);

#endif
