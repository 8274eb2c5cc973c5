/* trainconf: the seed's LLaMA-Factory YAML loads with the values it sets,
 * defaults are transformers' and LLaMA-Factory's, bad input is refused
 * with the key and line, and the written settings read back the same. */
#include "../../lib/trainconf.h"
#include "testhelp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp[] = "/tmp/ds-test-trainconf.XXXXXX";

/* Load text as a YAML file over defaults. Returns the load's result; *err
 * is owned (or NULL). */
static int load_text(train_config *c, const char *text, char **err)
{
	FILE *f = fopen(tmp, "w");
	fputs(text, f);
	fclose(f);
	trainconf_free(c);
	*err = NULL;
	return trainconf_load_yaml(c, tmp, err);
}

/* The error a YAML text gets contains want. */
static int load_fails_with(const char *text, const char *want)
{
	train_config c;
	char *err = NULL;
	trainconf_defaults(&c);
	int ok = load_text(&c, text, &err) == -1 && err && strstr(err, want);
	if (!ok) printf("     | got: %s\n", err ? err : "(no error)");
	free(err);
	trainconf_free(&c);
	return ok;
}

static int set_fails_with(const char *key, const char *value, const char *want)
{
	train_config c;
	char *err = NULL;
	trainconf_defaults(&c);
	int ok = trainconf_set(&c, key, value, &err) == -1 && err && !strcmp(err, want);
	if (!ok) printf("     | got: %s\n", err ? err : "(no error)");
	free(err);
	trainconf_free(&c);
	return ok;
}

/* validate on the seed's settings with one override fails with want. */
static int invalid_with(const char *override, const char *want)
{
	train_config c;
	char *err = NULL;
	trainconf_defaults(&c);
	int ok = trainconf_load_yaml(&c, "tests/data/train/seed_sft.yaml", &err) == 0;
	ok = ok && trainconf_override(&c, override, &err) == 0;
	ok = ok && trainconf_validate(&c, &err) == -1 && err && strstr(err, want);
	if (!ok) printf("     | %s: got: %s\n", override, err ? err : "(no error)");
	free(err);
	trainconf_free(&c);
	return ok;
}

static int names_are(const char *const *got, size_t n, const char *const *want)
{
	size_t i = 0;
	for (; want[i]; i++)
		if (i >= n || strcmp(got[i], want[i])) return 0;
	return i == n;
}

static int same_config(const train_config *a, const train_config *b)
{
	int same = a->n_shards == b->n_shards;
	for (int i = 0; same && i < a->n_shards; i++) same = !strcmp(a->shards[i], b->shards[i]);
#define STR_EQ(m) (a->m == b->m || (a->m && b->m && !strcmp(a->m, b->m)))
	return same && STR_EQ(model_name_or_path) && STR_EQ(init_random) && STR_EQ(output_dir) &&
	       STR_EQ(resume_from_checkpoint) && a->resume_latest == b->resume_latest &&
	       a->cutoff_len == b->cutoff_len && a->max_samples == b->max_samples &&
	       a->per_device_train_batch_size == b->per_device_train_batch_size &&
	       a->gradient_accumulation_steps == b->gradient_accumulation_steps &&
	       a->num_train_epochs == b->num_train_epochs && a->max_steps == b->max_steps &&
	       a->learning_rate == b->learning_rate &&
	       !strcmp(a->lr_scheduler_type, b->lr_scheduler_type) &&
	       a->warmup_ratio == b->warmup_ratio && a->warmup_steps == b->warmup_steps &&
	       a->weight_decay == b->weight_decay && a->max_grad_norm == b->max_grad_norm &&
	       a->adam_beta1 == b->adam_beta1 && a->adam_beta2 == b->adam_beta2 &&
	       a->adam_epsilon == b->adam_epsilon && a->bf16 == b->bf16 && a->fp16 == b->fp16 &&
	       a->gradient_checkpointing == b->gradient_checkpointing &&
	       a->logging_steps == b->logging_steps && a->save_steps == b->save_steps &&
	       a->save_total_limit == b->save_total_limit && a->plot_loss == b->plot_loss &&
	       a->overwrite_output_dir == b->overwrite_output_dir &&
	       a->save_only_model == b->save_only_model && a->seed == b->seed &&
	       a->threads == b->threads && !strcmp(a->device, b->device);
#undef STR_EQ
}

int main(void)
{
	train_config c;
	char *err = NULL;
	size_t n;
	close(mkstemp(tmp));

	/* transformers 5.6 TrainingArguments field defaults; LLaMA-Factory
	 * 0.9.5 cutoff_len 2048 and gradient checkpointing on */
	trainconf_defaults(&c);
	EXPECT(c.learning_rate == 5e-5 && c.num_train_epochs == 3.0 && c.max_steps == -1 &&
		       !strcmp(c.lr_scheduler_type, "linear") && c.warmup_ratio == 0 && c.warmup_steps == 0,
	       "defaults: lr 5e-5, 3 epochs, linear, no warmup (transformers)");
	EXPECT(c.weight_decay == 0 && c.max_grad_norm == 1.0 && c.adam_beta1 == 0.9 &&
		       c.adam_beta2 == 0.999 && c.adam_epsilon == 1e-8,
	       "defaults: AdamW 0.9/0.999/1e-8, no decay, clip at 1 (transformers)");
	EXPECT(c.per_device_train_batch_size == 8 && c.gradient_accumulation_steps == 1 &&
		       c.logging_steps == 500 && c.save_steps == 500 && c.save_total_limit == -1 &&
		       c.seed == 42 && !c.bf16 && !c.fp16,
	       "defaults: batch 8, log and save every 500, seed 42 (transformers)");
	EXPECT(c.cutoff_len == 2048 && c.max_samples == -1 && c.gradient_checkpointing && !c.plot_loss &&
		       !c.overwrite_output_dir && !c.model_name_or_path && !c.n_shards,
	       "defaults: cutoff_len 2048, gradient checkpointing on (LLaMA-Factory)");

	/* the seed's qwen2vl_full_sft.yaml, as the recipe gives it */
	int rc = trainconf_load_yaml(&c, "tests/data/train/seed_sft.yaml", &err);
	EXPECT(rc == 0 && !err, "the seed's YAML loads");
	if (err) printf("     | %s\n", err), free(err), err = NULL;
	EXPECT(c.model_name_or_path && !strcmp(c.model_name_or_path, "/root/autodl-tmp/qwen2.5-0.5B") &&
		       c.output_dir && !strcmp(c.output_dir, "/root/autodl-tmp/qwen2.5-0.5B/output"),
	       "seed: model and output paths");
	EXPECT(c.n_shards == 1 && !strcmp(c.shards[0], "Distill"), "seed: dataset \"Distill\" (quoted)");
	EXPECT(c.cutoff_len == 8192 && c.max_samples == 100000, "seed: cutoff_len, max_samples");
	EXPECT(c.logging_steps == 10 && c.save_steps == 500 && c.plot_loss == 1 &&
		       c.overwrite_output_dir == 1 && c.save_only_model == 0,
	       "seed: logging, saving, plot_loss, overwrite");
	EXPECT(c.per_device_train_batch_size == 1 && c.gradient_accumulation_steps == 12,
	       "seed: batch 1 x 12 accumulation");
	EXPECT(c.learning_rate == 1e-5 && c.num_train_epochs == 3.0 && !strcmp(c.lr_scheduler_type, "cosine") &&
		       c.warmup_ratio == 0.1 && c.bf16 == 1 && !c.fp16,
	       "seed: lr 1.0e-5, 3.0 epochs, cosine, warmup 0.1, bf16");
	EXPECT(!c.resume_from_checkpoint && !c.resume_latest, "seed: resume_from_checkpoint null");
	static const char *const seed_ignored[] = {
		"image_max_pixels", "video_max_pixels", "trust_remote_code", "do_train",
		"freeze_vision_tower", "freeze_multi_modal_projector", "deepspeed", "template",
		"overwrite_cache", "preprocessing_num_workers", "dataloader_num_workers", "ddp_timeout", NULL};
	const char *const *ign = trainconf_ignored(&c, &n);
	EXPECT(names_are(ign, n, seed_ignored), "seed: the LLaMA-Factory keys ignored, in file order");
	const char *const *unk = trainconf_unknown(&c, &n);
	static const char *const seed_unknown[] = {"train_mm_proj_only", NULL};
	EXPECT(names_are(unk, n, seed_unknown), "seed: train_mm_proj_only is not a LLaMA-Factory 0.9.5 key");
	EXPECT(trainconf_validate(&c, &err) == 0, "seed: validates");
	free(err), err = NULL;

	/* command-line overrides win over the file, typed as YAML */
	EXPECT(trainconf_override(&c, "learning_rate=2e-5", &err) == 0 && c.learning_rate == 2e-5,
	       "override learning_rate=2e-5");
	EXPECT(trainconf_override(&c, "dataset=a.shard, b.shard,c.shard", &err) == 0 && c.n_shards == 3 &&
		       !strcmp(c.shards[1], "b.shard") && !strcmp(c.shards[2], "c.shard"),
	       "override dataset= a comma-separated list, spaces stripped");
	EXPECT(trainconf_override(&c, "bf16=no", &err) == 0 && c.bf16 == 0, "override bf16=no");
	EXPECT(trainconf_override(&c, "resume_from_checkpoint=true", &err) == 0 && c.resume_latest &&
		       !c.resume_from_checkpoint,
	       "resume_from_checkpoint=true: the newest checkpoint in output_dir");
	EXPECT(trainconf_override(&c, "resume_from_checkpoint=out/checkpoint-500", &err) == 0 &&
		       !c.resume_latest && !strcmp(c.resume_from_checkpoint, "out/checkpoint-500"),
	       "resume_from_checkpoint=PATH");
	EXPECT(trainconf_override(&c, "save_total_limit=3", &err) == 0 && c.save_total_limit == 3 &&
		       trainconf_override(&c, "save_total_limit=null", &err) == 0 && c.save_total_limit == -1,
	       "save_total_limit=null: keep all");
	EXPECT(trainconf_override(&c, "report_to=wandb", &err) == 0 &&
		       trainconf_override(&c, "learnig_rate=1", &err) == 0 &&
		       trainconf_ignored(&c, &n)[n - 1] && !strcmp(trainconf_ignored(&c, &n)[n - 1], "report_to") &&
		       !strcmp(trainconf_unknown(&c, &n)[n - 1], "learnig_rate"),
	       "override of an unused key: listed, LF's as ignored, a typo as unknown");
	EXPECT(trainconf_override(&c, "warmup_steps=0.05", &err) == 0 && c.warmup_ratio == 0.05 &&
		       c.warmup_steps == 0,
	       "warmup_steps below 1 is a ratio (transformers 5)");
	EXPECT(trainconf_warmup_steps(&c, 333) == 17, "warmup for 333 steps at 0.05: ceil(16.65) = 17");
	EXPECT(trainconf_override(&c, "warmup_ratio=0", &err) == 0 &&
		       trainconf_override(&c, "warmup_steps=40", &err) == 0 && trainconf_warmup_steps(&c, 333) == 40,
	       "warmup_steps=40: 40 steps");
	EXPECT(trainconf_override(&c, "lr=1", &err) == 0, "an unknown key is not an error");
	EXPECT(trainconf_override(&c, "--learning_rate=1", &err) == -1 && err && strstr(err, "key=value"),
	       "an override with dashes is refused");
	free(err), err = NULL;
	EXPECT(trainconf_override(&c, "learning_rate", &err) == -1 && err, "an override without = is refused");
	free(err), err = NULL;

	/* what is written reads back the same */
	trainconf_override(&c, "output_dir=/tmp/a \"quoted\"\\dir: #x", &err);
	trainconf_override(&c, "adam_epsilon=1e-6", &err);
	trainconf_override(&c, "threads=4", &err);
	FILE *f = fopen(tmp, "w");
	EXPECT(trainconf_write_yaml(&c, f) == 0, "write_yaml");
	fclose(f);
	train_config back;
	trainconf_defaults(&back);
	rc = trainconf_load_yaml(&back, tmp, &err);
	EXPECT(rc == 0 && same_config(&c, &back), "written settings load back the same");
	if (err) printf("     | %s\n", err), free(err), err = NULL;
	trainconf_free(&back);
	char text[8192];
	f = fopen(tmp, "r");
	n = fread(text, 1, sizeof text - 1, f);
	text[n] = 0;
	fclose(f);
	EXPECT(strstr(text, "\nlearning_rate: 2.0e-05\n") && strstr(text, "\nnum_train_epochs: 3.0\n") &&
		       strstr(text, "\nadam_epsilon: 1.0e-06\n"),
	       "numbers are written as YAML 1.1 floats (1.0e-05, 3.0), shortest form");
	EXPECT(strstr(text, "# ignored: image_max_pixels, video_max_pixels,") &&
		       strstr(text, "# unknown: train_mm_proj_only, learnig_rate, lr\n"),
	       "ignored and unknown keys are listed in a comment");
	f = fopen("/dev/full", "w");
	if (f) {
		setvbuf(f, NULL, _IONBF, 0);
		EXPECT(trainconf_write_yaml(&c, f) == -1, "write_yaml to a full disk fails");
		fclose(f);
	}
	trainconf_free(&c);
	EXPECT(!c.model_name_or_path && !c.n_ignored && c.learning_rate == 5e-5, "free leaves the defaults");

	/* the YAML forms LLaMA-Factory users write */
	rc = load_text(&c,
		       "# comment\n"
		       "learning_rate: 1e-5   # no dot: OmegaConf still reads a float\n"
		       "weight_decay: 1.0E-2\n"
		       "bf16: True\n"
		       "plot_loss: yes\n"
		       "overwrite_output_dir: off\n"
		       "model_name_or_path: 'Qwen/Qwen2.5-0.5B'\n"
		       "dataset:\n  - a.shard\n  - \"b,c.shard\"\n"
		       "resume_from_checkpoint: \"true\"\n"
		       "save_steps: 1000.0\n"
		       "init_random:\n"
		       "stage: sft\nfinetuning_type: full\noptim: adamw_torch\n"
		       "lr_scheduler_kwargs: {min_lr: 1.0e-6}\n"
		       "report_to: [wandb, tensorboard]\n",
		       &err);
	EXPECT(rc == 0, "comments, quoting, flow collections under ignored keys");
	if (err) printf("     | %s\n", err), free(err), err = NULL;
	EXPECT(c.learning_rate == 1e-5 && c.weight_decay == 0.01, "1e-5 and 1.0E-2 are numbers");
	EXPECT(c.bf16 == 1 && c.plot_loss == 1 && c.overwrite_output_dir == 0, "True, yes, off are booleans");
	EXPECT(!strcmp(c.model_name_or_path, "Qwen/Qwen2.5-0.5B"), "a single-quoted string");
	EXPECT(c.n_shards == 2 && !strcmp(c.shards[0], "a.shard") && !strcmp(c.shards[1], "b,c.shard"),
	       "dataset as a YAML list: items kept whole");
	EXPECT(c.resume_from_checkpoint && !strcmp(c.resume_from_checkpoint, "true") && !c.resume_latest,
	       "a quoted \"true\" is a path, not a boolean");
	EXPECT(c.save_steps == 1000 && !c.init_random, "1000.0 is a whole number; an empty value is null");
	static const char *const flow_ignored[] = {"lr_scheduler_kwargs", "report_to", NULL};
	ign = trainconf_ignored(&c, &n);
	EXPECT(names_are(ign, n, flow_ignored) && (trainconf_unknown(&c, &n), n == 0),
	       "checked keys are not listed as ignored");
	rc = load_text(&c, "shards: [x.shard, y.shard]\n", &err);
	EXPECT(rc == 0 && c.n_shards == 2 && !strcmp(c.shards[1], "y.shard"), "shards: a flow list");
	free(err), err = NULL;
	EXPECT(load_text(&c, "", &err) == 0 && load_text(&c, "# only a comment\n", &err) == 0 &&
		       load_text(&c, "---\n", &err) == 0,
	       "an empty file is an empty mapping");
	free(err), err = NULL;
	trainconf_free(&c);

	/* bad YAML: the key, the line, the reason */
	EXPECT(load_fails_with("bf16: true\n\nlearning_rate: abc\n", ":3: learning_rate: 'abc' is not a number"),
	       "a bad number: its line and key");
	EXPECT(load_fails_with("seed: 42\nlearning_rate:\n  a: 1\n", ":3: learning_rate: a mapping where a single value belongs"),
	       "a mapping under a used key");
	EXPECT(load_fails_with("cutoff_len: [1, 2]\n", ":1: cutoff_len: a list where"), "a list under a used key");
	EXPECT(load_fails_with("dataset:\n  - a\n  - [b]\n", ":3: dataset: an item of the list is a list"),
	       "a nested list in dataset");
	EXPECT(load_fails_with("- a\n- b\n", ":1: the file is a list, not a mapping"), "a file that is a list");
	EXPECT(load_fails_with("just words\n", ":1: the file is a single value"), "a file that is a scalar");
	EXPECT(load_fails_with("seed: 1\n? [a]\n: 2\n", ":2: a key is a list"), "a key that is a list");
	EXPECT(load_fails_with("seed: 1\nmodel_name_or_path: \"unterminated\n", "not valid YAML"),
	       "invalid YAML: libyaml's reason");
	EXPECT(load_fails_with("seed: 1\ntemplate: a: b\n", ":2: not valid YAML: mapping values are not allowed"), "invalid YAML: its line");
	EXPECT(load_fails_with("seed: 1\nbf16: true\nseed: 2\n", ":3: seed: given twice (first on line 1)"),
	       "a key given twice");
	EXPECT(load_fails_with("dataset: a\nshards: [b]\n", ":2: shards: given twice (first on line 1); dataset and shards are one key"),
	       "dataset and shards both");
	EXPECT(load_fails_with("seed: 1\n---\nseed: 2\n", ":2: a second YAML document"), "two documents");
	EXPECT(load_fails_with("lr_scheduler_type: cosine_with_min_lr\n",
			       "lr_scheduler_type: 'cosine_with_min_lr' is not one of linear, cosine, constant, constant_with_warmup"),
	       "an unsupported scheduler: the valid ones named");
	EXPECT(load_fails_with("finetuning_type: lora\n", "finetuning_type: 'lora' is not supported; ds-train does full"),
	       "finetuning_type lora is refused, not ignored");
	EXPECT(load_fails_with("stage: ppo\n", "stage: 'ppo' is not one of sft, dpo"), "stage ppo is refused");
	EXPECT(load_fails_with("pref_loss: kto_pair\n", "pref_loss: 'kto_pair' is not one of sigmoid, hinge, ipo, simpo, orpo"),
	       "pref_loss kto_pair is refused");
	EXPECT(load_fails_with("optim: sgd\n", "optim: 'sgd' is not supported; ds-train does adamw_torch, adamw_torch_fused"),
	       "optim sgd is refused");
	EXPECT(load_fails_with("learning_rate: null\n", ":1: learning_rate: null is not allowed"), "null for a number");
	EXPECT(load_fails_with("learning_rate: \"null\"\n", "'null' is not a number"), "a quoted null is a string");
	train_config d;
	trainconf_defaults(&d);
	EXPECT(trainconf_load_yaml(&d, "tests/data/train/no-such.yaml", &err) == -1 && err &&
		       strstr(err, "no-such.yaml: No such file"),
	       "a missing file");
	free(err), err = NULL;
	trainconf_free(&d);

	/* typed setters: the message says key, value and what was wanted */
	EXPECT(set_fails_with("learning_rate", "abc", "learning_rate: 'abc' is not a number"), "set: not a number");
	EXPECT(set_fails_with("learning_rate", "nan", "learning_rate: 'nan' is not a number"), "set: nan is refused");
	EXPECT(set_fails_with("learning_rate", "0x1p-3", "learning_rate: '0x1p-3' is not a number"), "set: hex is refused");
	EXPECT(set_fails_with("logging_steps", "0.5", "logging_steps: '0.5' is not a whole number"), "set: a fraction of steps");
	EXPECT(set_fails_with("cutoff_len", "99999999999", "cutoff_len: 99999999999 is out of range"), "set: int overflow");
	EXPECT(set_fails_with("bf16", "maybe", "bf16: 'maybe' is not true or false"), "set: not a boolean");
	EXPECT(set_fails_with("device", "tpu", "device: 'tpu' is not one of cpu, cuda, auto"), "set: device");
	EXPECT(set_fails_with("dataset", "a,,b", "dataset: 'a,,b' has an empty name in its list"), "set: empty list item");
	trainconf_defaults(&d);
	EXPECT(trainconf_set(&d, "disable_gradient_checkpointing", "true", &err) == 0 && !d.gradient_checkpointing,
	       "disable_gradient_checkpointing: true turns it off");
	trainconf_free(&d);

	/* validate: ranges and required keys, on the seed's settings */
	EXPECT(invalid_with("output_dir=null", "output_dir: required"), "validate: output_dir required");
	EXPECT(invalid_with("model_name_or_path=", "model_name_or_path: required"), "validate: a model required");
	EXPECT(invalid_with("init_random=cfg.json", "give one, not both"), "validate: model and init_random");
	EXPECT(invalid_with("dataset=null", "dataset: required"), "validate: shards required");
	EXPECT(invalid_with("learning_rate=0", "learning_rate: must be greater than 0"), "validate: lr > 0");
	EXPECT(invalid_with("per_device_train_batch_size=0", "per_device_train_batch_size: must be at least 1"),
	       "validate: batch >= 1");
	EXPECT(invalid_with("gradient_accumulation_steps=-1", "gradient_accumulation_steps: must be at least 1"),
	       "validate: accumulation >= 1");
	EXPECT(invalid_with("warmup_ratio=1", "warmup_ratio: must be in [0, 1)"), "validate: warmup_ratio < 1");
	EXPECT(invalid_with("warmup_steps=10", "warmup_ratio and warmup_steps: set one, not both"),
	       "validate: warmup_ratio and warmup_steps both");
	EXPECT(invalid_with("fp16=true", "bf16 and fp16"), "validate: bf16 and fp16 both");
	EXPECT(invalid_with("adam_beta2=1", "adam_beta2: must be in [0, 1)"), "validate: beta2 < 1");
	EXPECT(invalid_with("adam_epsilon=0", "adam_epsilon: must be greater than 0"), "validate: eps > 0");
	EXPECT(invalid_with("max_grad_norm=-1", "max_grad_norm: must be at least 0"), "validate: clip >= 0");
	EXPECT(invalid_with("num_train_epochs=0", "num_train_epochs: must be greater than 0"), "validate: epochs > 0");
	EXPECT(invalid_with("max_steps=0", "max_steps: must be at least 1"), "validate: max_steps 0");
	EXPECT(invalid_with("save_steps=0", "save_steps: must be at least 1"), "validate: save_steps >= 1");
	EXPECT(invalid_with("logging_steps=0", "logging_steps: must be at least 1"), "validate: logging_steps >= 1");
	EXPECT(invalid_with("save_total_limit=0", "save_total_limit: must be at least 1"), "validate: save_total_limit 0");
	EXPECT(invalid_with("threads=-2", "threads: must be at least 0"), "validate: threads");
	EXPECT(invalid_with("seed=-1", "seed: must be in [0, 2^32)"), "validate: seed");
	EXPECT(invalid_with("max_samples=0", "max_samples: must be at least 1"), "validate: max_samples");
	trainconf_defaults(&d);
	EXPECT(trainconf_override(&d, "init_random=tests/data/qwen/config.json", &err) == 0 &&
		       trainconf_override(&d, "output_dir=out", &err) == 0 && trainconf_validate(&d, &err) == 0,
	       "validate: init_random needs no model or shards");
	trainconf_free(&d);
	free(err);

	unlink(tmp);
	TEST_END();
}
