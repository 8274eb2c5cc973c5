/* trainconf.c — ds-train's settings from a LLaMA-Factory YAML and key=value.
 *
 * One table says, for every key ds-train acts on, its type and where it
 * lives in train_config; loading the YAML, a command-line override and
 * writing the effective settings back all walk that table. */
#include "trainconf.h"
#include "check.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <yaml.h>

/* An owned message (vasprintf that cannot fail). */
static char *msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *msg(const char *fmt, ...)
{
	char *s;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) check_fail_errno(__FILE__, __LINE__, "vasprintf");
	va_end(ap);
	return s;
}

/* ---- the keys ---------------------------------------------------------- */

enum kind {
	K_STR,     /* char *, NULL when null */
	K_SHARDS,  /* the shard list: sequence or comma-separated */
	K_INT,     /* int */
	K_LONG,    /* long */
	K_DOUBLE,  /* double */
	K_BOOL,    /* int 0/1 */
	K_CHOICE,  /* char[] from a fixed list */
	K_RESUME,  /* resume_from_checkpoint: path, true (latest), false/null */
	K_NOT,     /* a boolean stored negated (disable_gradient_checkpointing) */
	K_REQUIRE, /* an LF key whose value must be one ds-train does */
};

/* What LF/transformers call the schedules ds-train implements
 * (transformers trainer_utils.SchedulerType); others need knobs
 * (lr_scheduler_kwargs) or state (reduce_lr_on_plateau) it does not have. */
static const char *const schedulers[] = {
	"linear", "cosine", "constant", "constant_with_warmup", NULL};
static const char *const devices[] = {"cpu", "cuda", "auto", NULL};
static const char *const stages[] = {"sft", "dpo", NULL};
/* LLaMA-Factory's pref_loss values but kto_pair (TRL 0.24 has none) */
static const char *const pref_losses[] = {"sigmoid", "hinge", "ipo", "simpo", "orpo", NULL};
/* kd.h's losses, as kd_loss_name spells them */
static const char *const kd_losses[] = {"forward_kl", "reverse_kl", "jsd", NULL};
static const char *const finetuning_types[] = {"full", NULL};
/* transformers OptimizerNames: both are torch.optim.AdamW, fused or not. */
static const char *const optims[] = {"adamw_torch", "adamw_torch_fused", NULL};

struct key {
	const char *name;
	enum kind kind;
	size_t off;                  /* into train_config; unused for K_REQUIRE */
	int nullable;                /* null means: unset (the value below) */
	long null_value;             /* for K_INT/K_LONG/K_DOUBLE when nullable */
	const char *const *choices;  /* K_CHOICE, K_REQUIRE */
	size_t size;                 /* K_CHOICE: the char array's size */
};

#define F(m) offsetof(train_config, m)
#define CH(m, list) K_CHOICE, F(m), 0, 0, list, sizeof(((train_config *)0)->m)

static const struct key keys[] = {
	{"model_name_or_path", K_STR, F(model_name_or_path), 1, 0, NULL, 0},
	{"init_random", K_STR, F(init_random), 1, 0, NULL, 0},
	{"dataset", K_SHARDS, F(shards), 1, 0, NULL, 0},
	{"shards", K_SHARDS, F(shards), 1, 0, NULL, 0},
	{"cutoff_len", K_INT, F(cutoff_len), 0, 0, NULL, 0},
	{"max_samples", K_LONG, F(max_samples), 1, -1, NULL, 0},
	{"output_dir", K_STR, F(output_dir), 1, 0, NULL, 0},
	{"per_device_train_batch_size", K_INT, F(per_device_train_batch_size), 0, 0, NULL, 0},
	{"gradient_accumulation_steps", K_INT, F(gradient_accumulation_steps), 0, 0, NULL, 0},
	{"num_train_epochs", K_DOUBLE, F(num_train_epochs), 0, 0, NULL, 0},
	{"max_steps", K_LONG, F(max_steps), 0, 0, NULL, 0},
	{"learning_rate", K_DOUBLE, F(learning_rate), 0, 0, NULL, 0},
	{"lr_scheduler_type", CH(lr_scheduler_type, schedulers)},
	{"warmup_ratio", K_DOUBLE, F(warmup_ratio), 1, 0, NULL, 0},
	{"warmup_steps", K_LONG, F(warmup_steps), 0, 0, NULL, 0},
	{"weight_decay", K_DOUBLE, F(weight_decay), 0, 0, NULL, 0},
	{"max_grad_norm", K_DOUBLE, F(max_grad_norm), 0, 0, NULL, 0},
	{"adam_beta1", K_DOUBLE, F(adam_beta1), 0, 0, NULL, 0},
	{"adam_beta2", K_DOUBLE, F(adam_beta2), 0, 0, NULL, 0},
	{"adam_epsilon", K_DOUBLE, F(adam_epsilon), 0, 0, NULL, 0},
	{"bf16", K_BOOL, F(bf16), 0, 0, NULL, 0},
	{"fp16", K_BOOL, F(fp16), 0, 0, NULL, 0},
	{"gradient_checkpointing", K_BOOL, F(gradient_checkpointing), 0, 0, NULL, 0},
	{"disable_gradient_checkpointing", K_NOT, F(gradient_checkpointing), 0, 0, NULL, 0},
	{"logging_steps", K_INT, F(logging_steps), 0, 0, NULL, 0},
	{"save_steps", K_LONG, F(save_steps), 0, 0, NULL, 0},
	{"save_total_limit", K_INT, F(save_total_limit), 1, -1, NULL, 0},
	{"plot_loss", K_BOOL, F(plot_loss), 0, 0, NULL, 0},
	{"overwrite_output_dir", K_BOOL, F(overwrite_output_dir), 0, 0, NULL, 0},
	{"save_only_model", K_BOOL, F(save_only_model), 0, 0, NULL, 0},
	{"resume_from_checkpoint", K_RESUME, F(resume_from_checkpoint), 1, 0, NULL, 0},
	{"seed", K_LONG, F(seed), 0, 0, NULL, 0},
	{"threads", K_INT, F(threads), 0, 0, NULL, 0},
	{"device", CH(device, devices)},
	{"stage", CH(stage, stages)},
	{"pref_beta", K_DOUBLE, F(pref_beta), 0, 0, NULL, 0},
	{"pref_loss", CH(pref_loss, pref_losses)},
	{"pref_ftx", K_DOUBLE, F(pref_ftx), 0, 0, NULL, 0},
	{"simpo_gamma", K_DOUBLE, F(simpo_gamma), 0, 0, NULL, 0},
	{"dpo_label_smoothing", K_DOUBLE, F(dpo_label_smoothing), 0, 0, NULL, 0},
	{"pref_bco_weight", K_DOUBLE, F(pref_bco_weight), 0, 0, NULL, 0},
	{"ld_alpha", K_DOUBLE, F(ld_alpha), 1, 0, NULL, 0},
	{"ref_model", K_STR, F(ref_model), 1, 0, NULL, 0},
	{"precompute_ref_log_probs", K_BOOL, F(precompute_ref_log_probs), 0, 0, NULL, 0},
	{"disable_shuffling", K_BOOL, F(disable_shuffling), 0, 0, NULL, 0},
	{"kd_alpha", K_DOUBLE, F(kd_alpha), 0, 0, NULL, 0},
	{"kd_temperature", K_DOUBLE, F(kd_temperature), 0, 0, NULL, 0},
	{"kd_loss", CH(kd_loss, kd_losses)},
	{"kd_jsd_beta", K_DOUBLE, F(kd_jsd_beta), 0, 0, NULL, 0},
	{"finetuning_type", K_REQUIRE, 0, 0, 0, finetuning_types, 0},
	{"optim", K_REQUIRE, 0, 0, 0, optims, 0},
};

/* Every other argument LLaMA-Factory 0.9.5 accepts for `train` (the init
 * fields of ModelArguments, DataArguments, TrainingArguments,
 * FinetuningArguments and GeneratingArguments, with transformers 5.6),
 * less the keys above; sorted (C locale) for bsearch. */
static const char *const lf_ignored[] = {
	"accelerator_config", "adapter_folder", "adapter_name_or_path",
	"add_special_tokens", "add_tokens", "additional_target",
	"apollo_layerwise", "apollo_proj", "apollo_proj_type", "apollo_rank",
	"apollo_scale", "apollo_scale_front", "apollo_scale_type",
	"apollo_target", "apollo_update_interval", "asft_alpha",
	"audio_sampling_rate", "auto_find_batch_size",
	"average_tokens_across_devices", "badam_mask_mode", "badam_mode",
	"badam_start_block", "badam_switch_interval", "badam_switch_mode",
	"badam_update_ratio", "badam_verbose", "batch_eval_metrics",
	"bf16_full_eval", "buffer_size", "cache_dir", "compute_accuracy",
	"create_new_adapter", "crop_to_patches", "data_seed",
	"data_shared_file_system", "dataloader_drop_last",
	"dataloader_num_workers", "dataloader_persistent_workers",
	"dataloader_pin_memory", "dataloader_prefetch_factor", "dataset_dir",
	"ddp_backend", "ddp_broadcast_buffers", "ddp_bucket_cap_mb",
	"ddp_find_unused_parameters", "ddp_static_graph", "ddp_timeout", "debug",
	"deepspeed", "default_system", "disable_tqdm",
	"do_eval", "do_predict", "do_sample", "do_train", "double_quantization",
	"eaft_alpha", "early_stopping_steps",
	"enable_jit_checkpoint", "enable_liger_kernel", "enable_thinking",
	"enable_torch_profiler", "eval_accumulation_steps", "eval_dataset",
	"eval_delay", "eval_do_concat_batches", "eval_num_beams",
	"eval_on_each_dataset", "eval_on_start", "eval_steps", "eval_strategy",
	"eval_use_gather_object", "export_device", "export_dir",
	"export_hub_model_id", "export_legacy_format", "export_quantization_bit",
	"export_quantization_dataset", "export_quantization_maxlen",
	"export_quantization_nsamples", "export_size", "flash_attn",
	"fp16_full_eval", "fp8", "fp8_backend",
	"fp8_enable_fsdp_float8_all_gather", "freeze_extra_modules",
	"freeze_language_model", "freeze_multi_modal_projector",
	"freeze_trainable_layers", "freeze_trainable_modules",
	"freeze_vision_tower", "fsdp", "fsdp_config", "full_determinism",
	"galore_layerwise", "galore_proj_type", "galore_rank", "galore_scale",
	"galore_target", "galore_update_interval", "generation_config",
	"generation_max_length", "generation_num_beams",
	"gradient_checkpointing_kwargs", "greater_is_better", "hf_hub_token",
	"hub_always_push", "hub_model_id", "hub_private_repo", "hub_revision",
	"hub_strategy", "hub_token", "hyper_parallel_args", "ignore_data_skip",
	"ignore_pad_token_for_loss", "image_do_pan_and_scan", "image_max_pixels",
	"image_min_pixels", "include_effective_tokens_per_second",
	"include_for_metrics", "include_num_input_tokens_seen", "infer_backend",
	"infer_dtype", "init_special_tokens", "interleave_probs",
	"kt_expert_checkpoint_path", "kt_lora_expert_intermediate_size",
	"kt_lora_expert_num", "kt_use_lora_experts", "kt_weight_path",
	"kto_chosen_weight", "kto_rejected_weight", "label_names",
	"label_smoothing_factor", "length_column_name",
	"length_penalty", "liger_kernel_config", "load_best_model_at_end",
	"local_rank", "log_level", "log_level_replica", "log_on_each_node",
	"logging_dir", "logging_first_step", "logging_nan_inf_filter",
	"logging_strategy", "lora_alpha", "lora_dropout", "lora_rank",
	"lora_target", "loraplus_lr_embedding", "loraplus_lr_ratio",
	"low_cpu_mem_usage", "lr_scheduler_kwargs", "mask_history",
	"master_addr", "master_port", "max_length", "max_new_tokens",
	"media_dir", "metric_for_best_model", "mix_strategy",
	"mixture_of_depths", "model_revision", "module_dropout",
	"moe_aux_loss_coef", "ms_hub_token", "neat_packing",
	"neftune_noise_alpha", "new_special_tokens_config", "num_beams",
	"offload_folder", "oft_block_size", "oft_rank", "oft_target",
	"om_hub_token", "optim_args", "optim_target_modules",
	"overwrite_cache", "packing", "parallelism_config",
	"per_device_eval_batch_size", "pissa_convert", "pissa_init",
	"pissa_iter", "ppo_buffer_size", "ppo_epochs", "ppo_score_norm",
	"ppo_target", "ppo_whiten_rewards", "predict_with_generate",
	"prediction_loss_only",
	"preprocessing_batch_size", "preprocessing_num_workers",
	"preserve_thinking", "print_param_status", "profile_modules",
	"profiler_active_steps", "profiler_output_dir",
	"profiler_profile_memory", "profiler_record_shapes", "profiler_repeat",
	"profiler_wait_steps", "profiler_warmup_steps", "profiler_with_stack",
	"project", "pure_bf16", "push_to_hub", "quantization_bit",
	"quantization_device_map", "quantization_method", "quantization_type",
	"ray_init_kwargs", "ray_num_workers", "ref_model_adapters",
	"ref_model_quantization_bit", "remove_unused_columns",
	"repetition_penalty", "report_to", "resize_vocab",
	"restore_callback_states_from_checkpoint", "reward_model",
	"reward_model_adapters", "reward_model_quantization_bit",
	"reward_model_type", "rope_scaling", "run_name", "save_on_each_node",
	"save_strategy", "sglang_config", "sglang_lora_backend",
	"sglang_maxlen", "sglang_mem_fraction", "sglang_tp_size", "shift_attn",
	"skip_memory_metrics", "skip_special_tokens",
	"sortish_sampler", "split_special_tokens", "streaming",
	"swanlab_api_key", "swanlab_lark_secret", "swanlab_lark_webhook_url",
	"swanlab_logdir", "swanlab_mode", "swanlab_project", "swanlab_run_name",
	"swanlab_workspace", "temperature", "template", "tf32",
	"tokenized_path", "tool_format", "top_k", "top_p", "torch_compile",
	"torch_compile_backend", "torch_compile_mode", "torch_empty_cache_steps",
	"trackio_bucket_id", "trackio_space_id", "trackio_static_space_id",
	"train_from_scratch", "train_on_prompt", "train_sampling_strategy",
	"trust_remote_code", "upcast_layernorm", "upcast_lmhead_output",
	"use_adam_mini", "use_apollo", "use_asft_loss", "use_audio_in_video",
	"use_badam", "use_cache", "use_cpu", "use_dft_loss", "use_dora",
	"use_eaft_loss", "use_fast_tokenizer", "use_galore", "use_hyper_parallel",
	"use_kt", "use_kv_cache", "use_liger_kernel", "use_llama_pro", "use_mca",
	"use_muon", "use_reentrant_gc", "use_rslora", "use_swanlab",
	"use_unsloth", "use_unsloth_gc", "use_v1_kernels", "val_size",
	"video_fps", "video_max_pixels", "video_maxlen", "video_min_pixels",
	"vllm_config", "vllm_enforce_eager", "vllm_gpu_util",
	"vllm_max_lora_rank", "vllm_maxlen",
};

static const struct key *key_find(const char *name)
{
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!strcmp(keys[i].name, name)) return &keys[i];
	return NULL;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int is_lf_key(const char *name)
{
	return bsearch(&name, lf_ignored, sizeof lf_ignored / sizeof lf_ignored[0],
		       sizeof lf_ignored[0], cmp_name) != NULL;
}

/* ---- defaults ---------------------------------------------------------- */

void trainconf_defaults(train_config *c)
{
	memset(c, 0, sizeof *c);
	/* transformers 5.6 training_args.py, class TrainingArguments (LF 0.9.5's
	 * TrainingArguments subclasses Seq2SeqTrainingArguments and keeps all
	 * of these): */
	c->per_device_train_batch_size = 8;
	c->gradient_accumulation_steps = 1;
	c->num_train_epochs = 3.0;
	c->max_steps = -1;
	c->learning_rate = 5e-5;
	strcpy(c->lr_scheduler_type, "linear");
	c->warmup_ratio = 0;             /* None, deprecated in 5.x for warmup_steps < 1 */
	c->warmup_steps = 0;
	c->weight_decay = 0.0;
	c->max_grad_norm = 1.0;
	c->adam_beta1 = 0.9;
	c->adam_beta2 = 0.999;
	c->adam_epsilon = 1e-8;
	c->logging_steps = 500;
	c->save_steps = 500;
	c->save_total_limit = -1;        /* None: keep all */
	c->seed = 42;
	/* LLaMA-Factory 0.9.5: data_args.py cutoff_len = 2048, max_samples =
	 * None; finetuning_args.py plot_loss = False; training_args.py
	 * overwrite_output_dir = False. It turns gradient checkpointing on
	 * unless disable_gradient_checkpointing (model/model_utils/
	 * checkpointing.py), where transformers alone defaults it off. */
	c->cutoff_len = 2048;
	c->max_samples = -1;
	c->gradient_checkpointing = 1;
	/* LLaMA-Factory 0.9.5 finetuning_args.py: the preference keys */
	strcpy(c->stage, "sft");
	c->pref_beta = 0.1;
	strcpy(c->pref_loss, "sigmoid");
	c->simpo_gamma = 0.5;
	/* ds's own */
	c->kd_temperature = 1;
	strcpy(c->kd_loss, "forward_kl");
	c->kd_jsd_beta = 0.5; /* TRL's GKD default */
	c->precompute_ref_log_probs = 1;
	c->threads = 0;
	strcpy(c->device, "auto");
}

void trainconf_free(train_config *c)
{
	free(c->model_name_or_path);
	free(c->init_random);
	free(c->output_dir);
	free(c->ref_model);
	free(c->resume_from_checkpoint);
	for (int i = 0; i < c->n_shards; i++) free(c->shards[i]);
	free(c->shards);
	for (size_t i = 0; i < c->n_ignored; i++) free(c->ignored[i]);
	free(c->ignored);
	for (size_t i = 0; i < c->n_unknown; i++) free(c->unknown[i]);
	free(c->unknown);
	trainconf_defaults(c);
}

/* ---- typing one scalar ------------------------------------------------- */

/* YAML 1.1's null as PyYAML/OmegaConf resolve it; an empty plain scalar
 * ("key:" or key= on the command line) is null too. */
static int is_null(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

/* YAML 1.1 booleans (true/yes/on in any of the three cases PyYAML takes;
 * we take any case). Returns 1 or 0, or -1 when s is not one. */
static int parse_bool(const char *s)
{
	static const char *const yes[] = {"true", "yes", "on", "y"};
	static const char *const no[] = {"false", "no", "off", "n"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) return 1;
		if (!strcasecmp(s, no[i])) return 0;
	}
	return -1;
}

/* A finite decimal number: 5e-5, 1.0e-5, .5, +3, -1. strtod alone would
 * also take "inf", "nan" and hex, none of which a learning rate is. */
static int parse_double(const char *s, double *out)
{
	const char *p = s;
	int digits = 0;
	if (*p == '+' || *p == '-') p++;
	for (const char *q = p; *q; q++) {
		if (isdigit((unsigned char)*q)) digits = 1;
		else if (!strchr(".eE+-", *q)) return -1;
	}
	if (!digits) return -1;
	char *end;
	double v = strtod(s, &end);
	if (*end || end == s || !isfinite(v)) return -1;
	*out = v;
	return 0;
}

/* A whole number, also written as a float with no fraction (500.0, 1e3). */
static int parse_long(const char *s, long *out)
{
	double d;
	if (parse_double(s, &d) < 0 || d != floor(d) || fabs(d) > 9e15) return -1;
	*out = (long)d;
	return 0;
}

/* ---- setting one key --------------------------------------------------- */

static void add_name(char ***list, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*list)[i], name)) return;
	*list = xrealloc(*list, (*n + 1) * sizeof **list);
	(*list)[(*n)++] = xstrdup(name);
}

static void shards_clear(train_config *c)
{
	for (int i = 0; i < c->n_shards; i++) free(c->shards[i]);
	free(c->shards);
	c->shards = NULL;
	c->n_shards = 0;
}

static void shards_add(train_config *c, const char *s, size_t len)
{
	c->shards = xrealloc(c->shards, (size_t)(c->n_shards + 1) * sizeof *c->shards);
	c->shards[c->n_shards++] = strndup(s, len);
	if (!c->shards[c->n_shards - 1]) check_fail_errno(__FILE__, __LINE__, "strndup");
}

/* "a, b,c" as LF's split_arg: split on commas, strip spaces. */
static int shards_split(train_config *c, const char *key, const char *v, char **err)
{
	shards_clear(c);
	for (const char *p = v;;) {
		const char *comma = strchr(p, ',');
		const char *e = comma ? comma : p + strlen(p);
		while (p < e && isspace((unsigned char)*p)) p++;
		const char *b = e;
		while (b > p && isspace((unsigned char)b[-1])) b--;
		if (b == p) {
			*err = msg("%s: '%s' has an empty name in its list", key, v);
			return -1;
		}
		shards_add(c, p, (size_t)(b - p));
		if (!comma) break;
		p = comma + 1;
	}
	return 0;
}

static int choice_index(const char *const *list, const char *v)
{
	for (int i = 0; list[i]; i++)
		if (!strcmp(list[i], v)) return i;
	return -1;
}

static char *choice_names(const char *const *list)
{
	size_t len = 1;
	for (int i = 0; list[i]; i++) len += strlen(list[i]) + 2;
	char *s = xmalloc(len);
	s[0] = 0;
	for (int i = 0; list[i]; i++) {
		if (i) strcat(s, ", ");
		strcat(s, list[i]);
	}
	return s;
}

/* Set key k from the scalar v. plain: v was unquoted in the YAML (or came
 * from the command line), so "null" and "true" mean null and true; a
 * quoted "null" is the string null. */
static int set_scalar(train_config *c, const struct key *k, const char *v, int plain,
		      char **err)
{
	char *field = (char *)c + k->off;
	int null = plain && is_null(v);
	if (null && !k->nullable && k->kind != K_STR) {
		*err = msg("%s: null is not allowed here; give a value", k->name);
		return -1;
	}
	switch (k->kind) {
	case K_STR:
		free(*(char **)field);
		*(char **)field = null ? NULL : xstrdup(v);
		return 0;
	case K_SHARDS:
		if (null) {
			shards_clear(c);
			return 0;
		}
		return shards_split(c, k->name, v, err);
	case K_RESUME: {
		int b = plain ? parse_bool(v) : -1;
		free(c->resume_from_checkpoint);
		c->resume_from_checkpoint = NULL;
		c->resume_latest = b == 1;
		if (!null && b < 0) c->resume_from_checkpoint = xstrdup(v);
		return 0;
	}
	case K_INT:
	case K_LONG: {
		long x = k->null_value;
		if (!null && parse_long(v, &x) < 0) {
			*err = msg("%s: '%s' is not a whole number", k->name, v);
			return -1;
		}
		if (k->kind == K_LONG) {
			*(long *)field = x;
		} else if (x < -2147483647L || x > 2147483647L) {
			*err = msg("%s: %s is out of range", k->name, v);
			return -1;
		} else {
			*(int *)field = (int)x;
		}
		return 0;
	}
	case K_DOUBLE: {
		double x = (double)k->null_value;
		if (!null && parse_double(v, &x) < 0) {
			*err = msg("%s: '%s' is not a number", k->name, v);
			return -1;
		}
		*(double *)field = x;
		return 0;
	}
	case K_BOOL:
	case K_NOT: {
		int b = parse_bool(v);
		if (b < 0) {
			*err = msg("%s: '%s' is not true or false", k->name, v);
			return -1;
		}
		*(int *)field = k->kind == K_NOT ? !b : b;
		return 0;
	}
	case K_CHOICE:
	case K_REQUIRE:
		if (choice_index(k->choices, v) < 0) {
			char *names = choice_names(k->choices);
			*err = msg(k->kind == K_CHOICE ? "%s: '%s' is not one of %s"
							     : "%s: '%s' is not supported; ds-train does %s",
					 k->name, v, names);
			free(names);
			return -1;
		}
		if (k->kind == K_CHOICE) snprintf(field, k->size, "%s", v);
		return 0;
	}
	return -1;
}

/* warmup_steps in transformers 5 is a float: below 1 it is a ratio. */
static int set_warmup_steps(train_config *c, const char *v, char **err)
{
	double d;
	if (parse_double(v, &d) == 0 && d > 0 && d < 1) {
		c->warmup_ratio = d;
		c->warmup_steps = 0;
		return 0;
	}
	return set_scalar(c, key_find("warmup_steps"), v, 1, err);
}

/* An unused key: remember it under the right list. */
static void note_unused(train_config *c, const char *key)
{
	if (is_lf_key(key)) add_name(&c->ignored, &c->n_ignored, key);
	else add_name(&c->unknown, &c->n_unknown, key);
}

int trainconf_set(train_config *c, const char *key, const char *value, char **err)
{
	const struct key *k = key_find(key);
	if (!k) {
		note_unused(c, key);
		return 0;
	}
	if (!strcmp(key, "warmup_steps")) return set_warmup_steps(c, value, err);
	return set_scalar(c, k, value, 1, err);
}

int trainconf_override(train_config *c, const char *arg, char **err)
{
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg || arg[0] == '-') {
		*err = msg("'%s': an override is key=value", arg);
		return -1;
	}
	char *key = strndup(arg, (size_t)(eq - arg));
	if (!key) check_fail_errno(__FILE__, __LINE__, "strndup");
	int rc = trainconf_set(c, key, eq + 1, err);
	free(key);
	return rc;
}

const char *const *trainconf_ignored(const train_config *c, size_t *n)
{
	*n = c->n_ignored;
	return (const char *const *)c->ignored;
}

/* Edit distance of a and b (insertions, deletions, substitutions,
 * transpositions of neighbours), capped: names are short. */
static int edit_distance(const char *a, const char *b)
{
	enum { MAXN = 64 };
	size_t n = strlen(a), m = strlen(b);
	if (n >= MAXN || m >= MAXN) return MAXN;
	int d[MAXN + 1][MAXN + 1];
	for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
	for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
	for (size_t i = 1; i <= n; i++)
		for (size_t j = 1; j <= m; j++) {
			int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[n][m];
}

const char *trainconf_closest(const char *key)
{
	const char *best = NULL;
	int bd = 1 << 30;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		int e = edit_distance(key, keys[i].name);
		if (e < bd) bd = e, best = keys[i].name;
	}
	for (size_t i = 0; i < sizeof lf_ignored / sizeof lf_ignored[0]; i++) {
		int e = edit_distance(key, lf_ignored[i]);
		if (e < bd) bd = e, best = lf_ignored[i];
	}
	/* a suggestion only when it is near: a third of the name's letters */
	size_t n = strlen(key);
	return best && bd <= (int)(n / 3 > 1 ? n / 3 : 1) ? best : NULL;
}

const char *const *trainconf_unknown(const train_config *c, size_t *n)
{
	*n = c->n_unknown;
	return (const char *const *)c->unknown;
}

/* ---- the YAML file ----------------------------------------------------- */

struct seen {
	char *key;
	size_t line;
};

static const char *event_what(yaml_event_type_t t)
{
	switch (t) {
	case YAML_SEQUENCE_START_EVENT: return "a list";
	case YAML_MAPPING_START_EVENT: return "a mapping";
	case YAML_ALIAS_EVENT: return "an alias";
	default: return "something";
	}
}

/* A config is a flat mapping of a few kilobytes; libyaml's time grows
 * with the square of a flow's depth, so a hostile file is stopped early. */
#define YAML_MAX_DEPTH 64
#define YAML_MAX_BYTES (1 << 20)

/* Skip the value whose first event is ev (already taken): a scalar, or a
 * whole nested sequence/mapping. -1: a YAML error; -2: nested deeper than
 * YAML_MAX_DEPTH. */
static int skip_value(yaml_parser_t *p, yaml_event_t *ev)
{
	int depth = ev->type == YAML_SEQUENCE_START_EVENT || ev->type == YAML_MAPPING_START_EVENT;
	while (depth > 0) {
		yaml_event_t e;
		if (!yaml_parser_parse(p, &e)) return -1;
		if (e.type == YAML_SEQUENCE_START_EVENT || e.type == YAML_MAPPING_START_EVENT) depth++;
		if (depth > YAML_MAX_DEPTH) {
			yaml_event_delete(&e);
			return -2;
		}
		if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) depth--;
		yaml_event_delete(&e);
	}
	return 0;
}

static int is_plain(const yaml_event_t *e)
{
	return e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

int trainconf_load_yaml(train_config *c, const char *path, char **err)
{
	int rc = -1, parser_ok = 0, state = 0; /* 0 before the mapping, 1 in it, 2 after */
	yaml_parser_t p;
	yaml_event_t ev, val;
	int have_ev = 0, have_val = 0;
	struct seen *seen = NULL;
	size_t n_seen = 0;
	char *why = NULL;
	size_t line = 0;
	*err = NULL;

	FILE *f = fopen(path, "rb");
	if (!f) {
		*err = msg("%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > YAML_MAX_BYTES) {
		*err = msg("%s: %lld bytes: larger than a ds-train config can be (%d)", path, (long long)sb.st_size,
			   YAML_MAX_BYTES);
		fclose(f);
		return -1;
	}
	if (!yaml_parser_initialize(&p)) check_fail_errno(__FILE__, __LINE__, "yaml_parser_initialize");
	parser_ok = 1;
	yaml_parser_set_input_file(&p, f);

	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) goto yaml_error;
		have_ev = 1;
		line = ev.start_mark.line + 1;
		if (ev.type == YAML_STREAM_END_EVENT) break;
		if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_END_EVENT) {
		} else if (ev.type == YAML_DOCUMENT_START_EVENT) {
			if (state == 2) {
				why = msg("a second YAML document; give one mapping of settings");
				goto out;
			}
		} else if (state == 0) {
			if (ev.type == YAML_SCALAR_EVENT && is_plain(&ev) && is_null((char *)ev.data.scalar.value)) {
				state = 2; /* an empty document: no settings */
			} else if (ev.type != YAML_MAPPING_START_EVENT) {
				why = msg("the file is %s, not a mapping of settings (key: value)",
						ev.type == YAML_SCALAR_EVENT ? "a single value" : event_what(ev.type));
				goto out;
			} else {
				state = 1;
			}
		} else if (ev.type == YAML_MAPPING_END_EVENT) {
			state = 2;
		} else if (ev.type != YAML_SCALAR_EVENT) {
			why = msg("a key is %s; keys are plain names", event_what(ev.type));
			goto out;
		} else {
			/* a key; now its value */
			const char *key = (const char *)ev.data.scalar.value;
			const struct key *k = key_find(key);
			/* dataset and shards are one setting under two names */
			const char *name = k && k->kind == K_SHARDS ? "dataset" : key;
			for (size_t i = 0; i < n_seen; i++)
				if (!strcmp(seen[i].key, name)) {
					why = msg("%s: given twice (first on line %zu)%s", key, seen[i].line,
						  name != key ? "; dataset and shards are one key" : "");
					goto out;
				}
			seen = xrealloc(seen, (n_seen + 1) * sizeof *seen);
			seen[n_seen++] = (struct seen){xstrdup(name), line};

			if (!yaml_parser_parse(&p, &val)) goto yaml_error;
			have_val = 1;
			line = val.start_mark.line + 1;
			if (!k) {
				note_unused(c, key);
				int sk = skip_value(&p, &val);
				if (sk == -2) {
					why = msg("%s: a value nested deeper than %d levels (a ds-train config is flat)", key,
						  YAML_MAX_DEPTH);
					goto out;
				}
				if (sk < 0) goto yaml_error;
			} else if (val.type == YAML_SCALAR_EVENT) {
				const char *v = (const char *)val.data.scalar.value;
				int r = !strcmp(key, "warmup_steps") && is_plain(&val)
						? set_warmup_steps(c, v, &why)
						: set_scalar(c, k, v, is_plain(&val), &why);
				if (r < 0) goto out;
			} else if (val.type == YAML_SEQUENCE_START_EVENT && k->kind == K_SHARDS) {
				shards_clear(c);
				for (;;) {
					yaml_event_t item;
					if (!yaml_parser_parse(&p, &item)) goto yaml_error;
					line = item.start_mark.line + 1;
					if (item.type == YAML_SEQUENCE_END_EVENT) {
						yaml_event_delete(&item);
						break;
					}
					if (item.type != YAML_SCALAR_EVENT || !item.data.scalar.length) {
						why = msg("%s: an item of the list is %s, not a path", key,
								item.type == YAML_SCALAR_EVENT ? "empty" : event_what(item.type));
						yaml_event_delete(&item);
						goto out;
					}
					shards_add(c, (const char *)item.data.scalar.value, item.data.scalar.length);
					yaml_event_delete(&item);
				}
			} else {
				why = msg("%s: %s where a single value belongs", key, event_what(val.type));
				goto out;
			}
			yaml_event_delete(&val);
			have_val = 0;
		}
		yaml_event_delete(&ev);
		have_ev = 0;
	}
	rc = 0;
	goto out;

yaml_error:
	line = p.problem_mark.line + 1;
	why = msg("not valid YAML: %s%s%s", p.problem ? p.problem : "parse error",
			p.context ? " " : "", p.context ? p.context : "");
out:
	if (why) {
		*err = msg("%s:%zu: %s", path, line, why);
		free(why);
		rc = -1;
	}
	if (have_val) yaml_event_delete(&val);
	if (have_ev) yaml_event_delete(&ev);
	if (parser_ok) yaml_parser_delete(&p);
	for (size_t i = 0; i < n_seen; i++) free(seen[i].key);
	free(seen);
	fclose(f);
	return rc;
}

/* ---- checking ---------------------------------------------------------- */

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0) check_fail_errno(__FILE__, __LINE__, "vasprintf");
	va_end(ap);
	return -1;
}

int trainconf_validate(const train_config *c, char **err)
{
	*err = NULL;
	if (!c->output_dir || !*c->output_dir) return fail(err, "output_dir: required");
	if (!c->model_name_or_path && !c->init_random)
		return fail(err, "model_name_or_path: required (or init_random)");
	if (c->model_name_or_path && c->init_random)
		return fail(err, "model_name_or_path and init_random: give one, not both");
	if (!c->n_shards && !c->init_random) return fail(err, "dataset: required (the shards to train on)");
	if (c->cutoff_len < 1) return fail(err, "cutoff_len: must be at least 1 (is %d)", c->cutoff_len);
	if (c->max_samples < -1 || c->max_samples == 0)
		return fail(err, "max_samples: must be at least 1, or null for all (is %ld)", c->max_samples);
	if (c->per_device_train_batch_size < 1)
		return fail(err, "per_device_train_batch_size: must be at least 1 (is %d)",
			    c->per_device_train_batch_size);
	if (c->gradient_accumulation_steps < 1)
		return fail(err, "gradient_accumulation_steps: must be at least 1 (is %d)",
			    c->gradient_accumulation_steps);
	/* transformers: max_steps > 0 overrides epochs; 0 is not a length. */
	if (c->max_steps == 0 || c->max_steps < -1)
		return fail(err, "max_steps: must be at least 1, or -1 to use num_train_epochs (is %ld)",
			    c->max_steps);
	if (c->max_steps < 0 && !(c->num_train_epochs > 0))
		return fail(err, "num_train_epochs: must be greater than 0 (is %g)", c->num_train_epochs);
	if (!(c->learning_rate > 0)) return fail(err, "learning_rate: must be greater than 0 (is %g)", c->learning_rate);
	if (!(c->warmup_ratio >= 0 && c->warmup_ratio < 1))
		return fail(err, "warmup_ratio: must be in [0, 1) (is %g)", c->warmup_ratio);
	if (c->warmup_steps < 0) return fail(err, "warmup_steps: must be at least 0 (is %ld)", c->warmup_steps);
	/* transformers 4.x let warmup_steps win, 5.x lets warmup_ratio win:
	 * with both set there is no answer everyone agrees on. */
	if (c->warmup_steps > 0 && c->warmup_ratio > 0)
		return fail(err, "warmup_ratio and warmup_steps: set one, not both");
	if (!(c->weight_decay >= 0)) return fail(err, "weight_decay: must be at least 0 (is %g)", c->weight_decay);
	if (!(c->max_grad_norm >= 0))
		return fail(err, "max_grad_norm: must be at least 0 (0: no clipping) (is %g)", c->max_grad_norm);
	if (!(c->adam_beta1 >= 0 && c->adam_beta1 < 1))
		return fail(err, "adam_beta1: must be in [0, 1) (is %g)", c->adam_beta1);
	if (!(c->adam_beta2 >= 0 && c->adam_beta2 < 1))
		return fail(err, "adam_beta2: must be in [0, 1) (is %g)", c->adam_beta2);
	if (!(c->adam_epsilon > 0)) return fail(err, "adam_epsilon: must be greater than 0 (is %g)", c->adam_epsilon);
	if (c->bf16 && c->fp16) return fail(err, "bf16 and fp16: set one, not both");
	if (c->logging_steps < 1) return fail(err, "logging_steps: must be at least 1 (is %d)", c->logging_steps);
	if (c->save_steps < 1) return fail(err, "save_steps: must be at least 1 (is %ld)", c->save_steps);
	if (c->save_total_limit == 0 || c->save_total_limit < -1)
		return fail(err, "save_total_limit: must be at least 1, or null to keep all (is %d)",
			    c->save_total_limit);
	if (c->resume_from_checkpoint && !*c->resume_from_checkpoint)
		return fail(err, "resume_from_checkpoint: an empty path");
	if (c->seed < 0 || c->seed > 4294967295L)
		return fail(err, "seed: must be in [0, 2^32) (is %ld)", c->seed);
	if (c->threads < 0) return fail(err, "threads: must be at least 0 (0: one per core) (is %d)", c->threads);
	for (int i = 0; i < c->n_shards; i++)
		if (!c->shards[i] || !*c->shards[i]) return fail(err, "dataset: an empty path in the list");
	if (!(c->pref_beta > 0)) return fail(err, "pref_beta: must be greater than 0 (is %g)", c->pref_beta);
	if (!(c->pref_ftx >= 0)) return fail(err, "pref_ftx: must be at least 0 (is %g)", c->pref_ftx);
	if (!(c->dpo_label_smoothing >= 0 && c->dpo_label_smoothing <= 0.5))
		return fail(err, "dpo_label_smoothing: must be in [0, 0.5] (is %g)", c->dpo_label_smoothing);
	/* LF's own check (finetuning_args.py) */
	if (c->dpo_label_smoothing > 1e-6 && strcmp(c->pref_loss, "sigmoid"))
		return fail(err, "dpo_label_smoothing: only valid with pref_loss: sigmoid");
	if (c->pref_bco_weight != 0)
		return fail(err, "pref_bco_weight: BCO is not supported by ds-train (is %g; 0 turns it off)", c->pref_bco_weight);
	if (c->ld_alpha != 0) return fail(err, "ld_alpha: LD-DPO is not supported by ds-train (is %g; null turns it off)", c->ld_alpha);
	if (c->ref_model && !*c->ref_model) return fail(err, "ref_model: an empty path");
	if (!(c->kd_alpha >= 0 && c->kd_alpha <= 1)) return fail(err, "kd_alpha: must be in [0, 1] (is %g)", c->kd_alpha);
	if (!(c->kd_temperature > 0 && c->kd_temperature <= 100))
		return fail(err, "kd_temperature: must be in (0, 100] (is %g)", c->kd_temperature);
	if (!(c->kd_jsd_beta >= 0 && c->kd_jsd_beta <= 1))
		return fail(err, "kd_jsd_beta: must be in [0, 1] (is %g)", c->kd_jsd_beta);
	if (c->kd_alpha > 0 && strcmp(c->stage, "sft"))
		return fail(err, "kd_alpha: distillation is a stage: sft loss (stage is %s)", c->stage);
	return 0;
}

long trainconf_warmup_steps(const train_config *c, long total_steps)
{
	if (c->warmup_steps > 0) return c->warmup_steps;
	return (long)ceil((double)total_steps * c->warmup_ratio);
}

/* ---- writing back ------------------------------------------------------ */

/* A YAML double-quoted string: safe for any path, read back byte for byte. */
static void put_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
		else if (*p == '\n') fputs("\\n", f);
		else if (*p == '\t') fputs("\\t", f);
		else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
		else fputc(*p, f);
	}
	fputc('"', f);
}

/* The shortest decimal that reads back as the same double, in the form
 * YAML 1.1 (PyYAML) also types as a float: 1.0e-05, 3.0. */
static void put_double(FILE *f, double x)
{
	char b[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(b, sizeof b, "%.*g", prec, x);
		if (strtod(b, NULL) == x) break;
	}
	if (!strchr(b, '.')) {
		char *e = strchr(b, 'e');
		if (e) {
			char tail[40];
			snprintf(tail, sizeof tail, "%s", e);
			snprintf(e, sizeof b - (size_t)(e - b), ".0%s", tail);
		} else {
			strcat(b, ".0");
		}
	}
	fputs(b, f);
}

static void put_names(FILE *f, const char *what, char **names, size_t n)
{
	if (!n) return;
	fprintf(f, "# %s:", what);
	for (size_t i = 0; i < n; i++) fprintf(f, "%s %s", i ? "," : "", names[i]);
	fputc('\n', f);
}

int trainconf_write_yaml(const train_config *c, FILE *f)
{
	fputs("# ds-train: the effective settings of this run\n", f);
	put_names(f, "ignored", c->ignored, c->n_ignored);
	put_names(f, "unknown", c->unknown, c->n_unknown);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const struct key *k = &keys[i];
		const char *field = (const char *)c + k->off;
		/* one name per setting: `dataset` for the shards, the
		 * positive gradient_checkpointing, nothing for the checks */
		if (!strcmp(k->name, "shards") || k->kind == K_NOT || k->kind == K_REQUIRE) continue;
		fprintf(f, "%s:", k->name);
		switch (k->kind) {
		case K_STR: {
			const char *s = *(char *const *)field;
			if (s) fputc(' ', f), put_quoted(f, s);
			else fputs(" null", f);
			break;
		}
		case K_SHARDS:
			if (!c->n_shards) fputs(" null", f);
			for (int j = 0; j < c->n_shards; j++) fputs("\n  - ", f), put_quoted(f, c->shards[j]);
			break;
		case K_RESUME:
			if (c->resume_latest) fputs(" true", f);
			else if (c->resume_from_checkpoint) fputc(' ', f), put_quoted(f, c->resume_from_checkpoint);
			else fputs(" null", f);
			break;
		case K_INT:
		case K_LONG: {
			long x = k->kind == K_INT ? *(const int *)field : *(const long *)field;
			if (k->nullable && x == k->null_value) fputs(" null", f);
			else fprintf(f, " %ld", x);
			break;
		}
		case K_DOUBLE:
			fputc(' ', f);
			put_double(f, *(const double *)field);
			break;
		case K_BOOL:
			fputs(*(const int *)field ? " true" : " false", f);
			break;
		case K_CHOICE:
			fprintf(f, " %s", field);
			break;
		default:
			break;
		}
		fputc('\n', f);
	}
	return ferror(f) ? -1 : 0;
}
