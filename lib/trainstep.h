/* trainstep.h — one optimizer step of full-parameter SFT, and the state it
 * carries from step to step: the gradients, AdamW's moments, the schedule,
 * and the optimizer checkpoint that makes a resumed run the same run bit
 * for bit. ds-train (the loop, the data order, logging) and its check-step
 * aid (the oracle's numbers) both step through here.
 *
 * A step: trainstep_grad (zero the gradients; forward and backward over
 * the accumulated samples, each scaled by 1 / the targets of them all, so
 * the loss is transformers' token-level mean: qwen2.h), then trainstep_clip
 * (global-norm clipping, torch.nn.utils.clip_grad_norm_), then
 * trainstep_update (AdamW at the schedule's learning rate). The caller
 * looks at loss and norm in between, so a non-finite step can stop the run
 * before it touches the weights.
 *
 * The parameters are the model's (qwen2.h, updated in place on the CPU
 * backend); gradients and moments are tensors of the backend, in the
 * table's layout. Collectives go through comm.h: with one process they
 * do nothing. With several, the step is data parallel with ZeRO-1: each
 * rank passes its own share of the samples, the loss is normalised by the
 * targets of all of them, and each rank keeps AdamW's moments for 1/world
 * of the parameters (trainstep.c says how); every function below is then
 * collective (called by every rank, in the same order).
 */
#ifndef DS_TRAINSTEP_H
#define DS_TRAINSTEP_H

#include "comm.h"
#include "forward.h"
#include "ops.h"
#include "qwen2.h"

#include <stdint.h>

typedef struct trainstep_hparams {
	double lr;               /* the base learning rate */
	double beta1, beta2, eps, weight_decay;
	double max_grad_norm;    /* 0: no clipping */
	int sched;               /* SCHED_* (optim.h) */
	long total, warmup;      /* optimizer steps of the run, of its warmup */
} trainstep_hparams;

/* What trainstep_grad did. */
typedef struct trainstep_stats {
	double loss;             /* the mean loss over the targets (0 without any): the cross-entropy,
				    or with distillation (forward_set_kd) kd.h's mix */
	double ce;               /* the mean cross-entropy over the targets */
	double kd;               /* the mean KD term (before alpha tau^2) over the targets with soft labels */
	long soft;               /* targets with soft labels */
	long targets;            /* over every rank's samples */
	uint64_t tokens;         /* every rank's samples' tokens */
} trainstep_stats;

typedef struct trainstep trainstep;

/* A step for model m (borrowed, fp32) on backend o with context ctx and
 * communicator c (all borrowed), with hyperparameters h (copied); the
 * moments start at 0. Returns owned (trainstep_free). */
trainstep *trainstep_new(qwen2_model *m, const ops *o, void *ctx, const comm *c, const trainstep_hparams *h);
void trainstep_free(trainstep *ts);

/* Its engine (borrowed), e.g. for logits between steps or recomputation. */
forward *trainstep_forward(trainstep *ts);

/* Its communicator (borrowed). */
const comm *trainstep_comm(const trainstep *ts);

/* The gradient of one step over the n samples s (borrowed) into the
 * step's gradients; stats in *st. */
void trainstep_grad(trainstep *ts, const qwen2_batch *s, int n, trainstep_stats *st);

/* A step whose loss is not SFT's (DPO: lib/pref.h), in three parts:
 * trainstep_zero, then trainstep_accumulate per sample: += the gradient of
 * scale x its summed cross-entropy (the negative log-probability of its
 * trained tokens), returning that sum; then trainstep_reduce (collective:
 * the ranks' gradients summed, ZeRO's slices). Then clip and update as
 * after trainstep_grad. */
void trainstep_zero(trainstep *ts);
double trainstep_accumulate(trainstep *ts, const qwen2_batch *b, float scale);
void trainstep_reduce(trainstep *ts);

/* Clip the gradients to max_grad_norm. Returns their norm before. */
double trainstep_clip(trainstep *ts);

/* The learning rate of optimizer step `step` (0 for the first). */
double trainstep_lr(const trainstep *ts, long step);

/* AdamW on every parameter with the gradients, as optimizer step `step`
 * (0 for the first). Returns the learning rate it used. */
double trainstep_update(trainstep *ts, long step);

/* The weights into the model's host arrays (qwen2.h's m->w), before
 * qwen2_save: on a device backend they live on the device. */
void trainstep_weights_to_host(trainstep *ts);

/* The gradients (N floats, the table's layout) into host memory dst; one
 * process only (with ZeRO each rank holds a slice of them). */
void trainstep_grads_get(trainstep *ts, float *dst);

/* The optimizer checkpoint: the fp32 master weights and both moments per
 * parameter (master.NAME, exp_avg.NAME, exp_avg_sq.NAME) and the step in
 * the metadata, written atomically to path, in the one-process layout
 * whatever the world size (rank 0 writes what the others send). Returns
 * 0, or -1 with *err owned. */
int trainstep_save(trainstep *ts, const char *path, long step, char **err);

/* Read it back (each rank keeps its slices of the moments, whatever world
 * size wrote it): weights and moments replaced, *step set. Returns 0, or -1
 * with *err owned ("PATH: reason") when path is no checkpoint of this
 * model. */
int trainstep_load(trainstep *ts, const char *path, long *step, char **err);

#endif
