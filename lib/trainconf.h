/* trainconf.h — ds-train's settings, under LLaMA-Factory's names.
 *
 * A LLaMA-Factory training YAML (`llamafactory-cli train cfg.yaml`) loads
 * as it is: the keys ds-train acts on fill the struct below, LLaMA-Factory
 * keys it has no use for (deepspeed, template, report_to, ...) are listed
 * by trainconf_ignored, and keys LLaMA-Factory 0.9.5 does not know either
 * (a typo, a key from another version) by trainconf_unknown. The first
 * kind is listed as ignored; the second is an error, as LLaMA-Factory's
 * argument parser makes it (a typo would otherwise train with a default).
 *
 * Three LLaMA-Factory keys change what training means, so a value other
 * than the one ds-train does is refused rather than ignored: stage (sft or dpo),
 * finetuning_type (full) and optim (an AdamW).
 *
 * Values are typed as YAML 1.1 and OmegaConf type them: true/false/yes/no/
 * on/off are booleans, 1e-5 and 1.0e-5 are both numbers, null unsets a key
 * that may be unset. A command-line override `key=value` (as
 * `llamafactory-cli train cfg.yaml key=value`) is typed the same way.
 */
#ifndef DS_TRAINCONF_H
#define DS_TRAINCONF_H

#include <stddef.h>
#include <stdio.h>

typedef struct train_config {
	/* model and data */
	char *model_name_or_path;      /* HF model directory; owned */
	char *init_random;             /* ds: a config.json to start from random weights instead; owned */
	char **shards;                 /* `dataset` or `shards`: ds-tokenize shard paths; owned */
	int n_shards;
	int cutoff_len;                /* tokens per packed sequence */
	long max_samples;              /* LF: use at most this many samples per shard; -1 all */
	char *output_dir;              /* owned */

	/* batch and length of training */
	int per_device_train_batch_size;
	int gradient_accumulation_steps;
	double num_train_epochs;
	long max_steps;                /* > 0 overrides num_train_epochs; -1 unset */

	/* optimizer (AdamW) and schedule */
	double learning_rate;
	char lr_scheduler_type[32];    /* linear, cosine, constant, constant_with_warmup */
	double warmup_ratio;           /* fraction of the total steps, [0, 1) */
	long warmup_steps;             /* whole steps; set one of the two */
	double weight_decay;
	double max_grad_norm;          /* 0 disables clipping */
	double adam_beta1, adam_beta2, adam_epsilon;

	/* precision and memory */
	int bf16, fp16;                /* booleans */
	int gradient_checkpointing;    /* boolean */

	/* logging and checkpoints */
	int logging_steps;
	long save_steps;
	int save_total_limit;          /* -1: keep every checkpoint (null) */
	int plot_loss;                 /* boolean: write the loss curve */
	int overwrite_output_dir;      /* boolean */
	int save_only_model;           /* boolean: no optimizer state, RNG, ... */
	char *resume_from_checkpoint;  /* a checkpoint directory; owned; NULL none */
	int resume_latest;             /* `resume_from_checkpoint: true`: the
					  newest checkpoint-N in output_dir
					  (transformers' Trainer.train) */

	/* the stage: sft, or dpo (preference pairs) with LLaMA-Factory's keys */
	char stage[8];
	double pref_beta;              /* beta of the preference loss */
	char pref_loss[16];            /* sigmoid, hinge, ipo, simpo, orpo */
	double pref_ftx;               /* weight of the added SFT term */
	double simpo_gamma;            /* SimPO's target margin */
	double dpo_label_smoothing;    /* cDPO's (sigmoid only) */
	double pref_bco_weight;        /* BCO: only 0 (off) is supported */
	double ld_alpha;               /* LD-DPO: only null (0, off) is supported */
	char *ref_model;               /* the frozen reference; NULL: the starting model; owned */
	int precompute_ref_log_probs;  /* ds/TRL: reference log-probs in a first pass */
	int disable_shuffling;         /* boolean: samples in their order, every epoch */

	/* ds: distillation from the teacher's soft labels (kd.h) */
	double kd_alpha;               /* weight of the KD term; 0: plain SFT */
	double kd_temperature;         /* tau */
	char kd_loss[16];              /* forward_kl, reverse_kl, jsd */
	double kd_jsd_beta;            /* jsd's beta */

	/* the machine */
	long seed;
	int threads;                   /* ds: 0 = one per core */
	char device[16];               /* ds: cpu, cuda or auto */

	/* keys read but not acted on, in the order first seen; owned */
	char **ignored;                /* LLaMA-Factory keys */
	size_t n_ignored;
	char **unknown;                /* keys LLaMA-Factory 0.9.5 does not know */
	size_t n_unknown;
} train_config;

/* Fill c with the defaults of transformers' TrainingArguments (5.x, which
 * LLaMA-Factory 0.9.5 builds on) and LLaMA-Factory's own; the sources are in
 * trainconf.c. Holds no memory until a string key is set. */
void trainconf_defaults(train_config *c);

/* Read a YAML file, a mapping of scalars (a sequence for dataset/shards),
 * over what c already holds. Keys not acted on are collected, and their
 * values may be anything. Returns 0, or -1 with *err an owned message
 * "PATH:LINE: key: reason" (free with free()); c stays valid to free, some
 * keys may be set. Borrows path. */
int trainconf_load_yaml(train_config *c, const char *path, char **err);

/* Set one key from a string, typed as a plain YAML scalar ("1e-5", "true",
 * "null"); dataset/shards take a comma-separated list. Unknown keys are
 * collected as the YAML loader does. Returns 0, or -1 with *err an owned
 * message such as "learning_rate: 'abc' is not a number". Borrows key and
 * value. */
int trainconf_set(train_config *c, const char *key, const char *value, char **err);

/* A command-line override "key=value" (leading dashes are not allowed:
 * flags are the program's). Returns 0, or -1 with *err owned. Borrows arg. */
int trainconf_override(train_config *c, const char *arg, char **err);

/* The LLaMA-Factory keys read but not acted on, and the keys not known to
 * LLaMA-Factory 0.9.5. Borrowed: valid until the next set, load or free. */
const char *const *trainconf_ignored(const train_config *c, size_t *n);
const char *const *trainconf_unknown(const train_config *c, size_t *n);

/* The known key (ds-train's or LLaMA-Factory's) nearest to key in edit
 * distance, when it is near enough to be a typo of it; else NULL. Static. */
const char *trainconf_closest(const char *key);

/* Required keys and ranges: output_dir; model_name_or_path or init_random
 * (one); shards unless init_random; lr > 0; batch, accumulation, cutoff_len,
 * logging_steps, save_steps >= 1; 0 <= warmup_ratio < 1, not with
 * warmup_steps; betas in [0, 1); eps > 0; not both bf16 and fp16; ...
 * Returns 0, or -1 with *err an owned message naming the key. */
int trainconf_validate(const train_config *c, char **err);

/* Warmup length for a run of total_steps optimizer steps, as transformers'
 * TrainingArguments.get_warmup_steps: warmup_steps when set, otherwise
 * ceil(total_steps * warmup_ratio). */
long trainconf_warmup_steps(const train_config *c, long total_steps);

/* Write the effective settings as YAML that trainconf_load_yaml reads back
 * to the same values (output_dir/ds_train_args.yaml: a run is
 * reproducible); the ignored and unknown keys go in a comment. Returns 0,
 * or -1 when a write failed (ferror). Borrows f; does not close it. */
int trainconf_write_yaml(const train_config *c, FILE *f);

/* Free what c owns; c is left as trainconf_defaults leaves it. */
void trainconf_free(train_config *c);

#endif
