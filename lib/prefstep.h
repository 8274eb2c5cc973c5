/* prefstep.h — the gradient of one optimizer step of stage: dpo, over
 * preference pairs, on the step of trainstep.h (whose clip and update then
 * apply as for SFT), and the reference model's log-probabilities.
 *
 * As TRL's DPOTrainer under transformers' Trainer: a micro-batch is
 * per_device_train_batch_size pairs, its loss the mean of their losses;
 * the step's loss is the micro-batches' losses summed over the
 * accumulation and divided by its length (transformers'
 * current_gradient_accumulation_steps), averaged over the ranks (DDP).
 * Each pair costs the policy a forward pass of each side for the
 * log-probabilities (forward_loss), then a forward and backward pass of
 * each side scaled by d(loss)/d(log-probability) (pref.h). */
#ifndef DS_PREFSTEP_H
#define DS_PREFSTEP_H

#include "pref.h"
#include "trainstep.h"

#include <stdint.h>

typedef struct prefstep_stats {
	double loss;          /* as transformers logs it for the step */
	double metrics[PM_N]; /* LF's metrics: the mean over the micro-batches (every rank's) of each one's means */
	long micro;           /* micro-batches, every rank's */
	uint64_t tokens;      /* every rank's tokens, both sides */
} prefstep_stats;

/* The step's gradient over this rank's n pairs: chosen sides ch, rejected
 * sides rj (borrowed), the reference's summed log-probabilities ref_c,
 * ref_r (unused, may be NULL, when the loss needs none), in micro-batches of
 * micro pairs. Collective. */
void prefstep_grad(trainstep *ts, const pref_hparams *h, const qwen2_batch *ch, const qwen2_batch *rj,
                   const double *ref_c, const double *ref_r, int n, int micro, prefstep_stats *st);

/* The summed log-probability of the trained tokens of each of n samples s
 * under engine f (forward passes only) into lp. */
void prefstep_logps(forward *f, const qwen2_batch *s, int n, double *lp);

#endif
