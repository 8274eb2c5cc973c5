/* ds-infer.h — what ds-infer's two files share: the options, the loaded
 * model with its settings, and the helpers batch mode, the chat and the
 * server (ds-infer-serve.c) all use. Private to the program. */
#ifndef DS_INFER_BIN_H
#define DS_INFER_BIN_H

#include "../lib/chat.h"
#include "../lib/infer.h"
#include "../lib/qwen2.h"
#include "../lib/sample.h"
#include "../lib/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

enum mode { MODE_AUTO, MODE_CHAT, MODE_BATCH, MODE_SERVE };

/* Sampling settings and which of them a flag set. */
struct gen_opts {
	sample_params sp;
	long max_tokens;
	uint64_t seed;
	unsigned set; /* GEN_* bits */
};

enum { GEN_TEMP = 1, GEN_TOPK = 2, GEN_TOPP = 4, GEN_MINP = 8, GEN_REP = 16, GEN_MAX = 32 };

struct opts {
	enum mode mode;
	const char *model_dir, *model_name, *system, *template_file, *output, *host, *port_file;
	const char *chat_template; /* --chat-template, or NULL: from the tokenizer */
	const char *api_key_file;  /* serve: --api-key-file (else DS_API_KEY): the key clients must send */
	long max_connections, idle_timeout, request_timeout; /* serve: connections at once, s idle, s a request takes */
	int samples, batch, ids, skip_bad, quiet, threads, port, fp32;
	int logprobs; /* --logprobs K: 1..SAMPLE_MAX_TOP alternatives a token, 0: none */
	int no_thinking, preserve_thinking; /* reasoning templates, as ds-tokenize's */
	long ctx;
	size_t max_body;
	struct gen_opts gen;
	struct infer_stops stop; /* --stop, borrowed from argv */
};

/* ---- the model and its settings --------------------------------------- */

#define MAX_STOPS 16

struct infer {
	qwen2_model *m;
	tokenizer *tok;
	const chat_template *tpl;
	const char *system;   /* borrowed from argv, or NULL */
	char *name;           /* owned */
	int V, ctx;
	sample_params sp;     /* the defaults, after generation_config and flags */
	long max_tokens;
	uint64_t seed;
	uint32_t stops[MAX_STOPS];
	int n_stops;
	const struct infer_stops *stop_strs; /* borrowed: --stop (batch mode, the chat), or NULL */
	int no_thinking, preserve_thinking;
};

/* A chat encoder for in's prompts. */
chat_encoder infer_encoder(const struct infer *in);

/* The prompt of conversation c: its ids (owned, *n of them) or NULL with
 * why[0..why_n) saying why it cannot be answered. */
uint32_t *prompt_ids(const struct infer *in, chat_encoder *ce, const chat_conv *c, int *n, char *why, size_t why_n);

/* The bytes of token id: owned, NUL-terminated, *n of them; empty for an
 * id the tokenizer has no text for. */
char *token_bytes(const struct infer *in, uint32_t id, size_t *n);

/* An engine of B slots for in's model and settings. */
void engine_init(struct infer_engine *e, struct infer *in, int B);

/* The seed of sample number `sample` of record id: the same answer on a
 * rerun, whatever else the batch holds. */
uint64_t seed_of(uint64_t seed, const char *id, int sample);

/* ds-infer serve: runs until SIGINT/SIGTERM; the exit status. */
int run_serve(const struct opts *o, struct infer *in);

#endif
