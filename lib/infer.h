/* infer.h — the inference engine: sequences decoded together in one batch
 * on the Qwen2 model's KV-cache forward (qwen2_forward_segs), a new token
 * sampled for each (sample.h), their text made as it completes. What
 * ds-infer's modes (batch, the chat REPL, the server) share.
 *
 * Each step runs one forward over every active sequence's pending tokens
 * (a new prompt's prefill and the others' one-token decodes in the same
 * pass), samples a token for each, and retires those that reached a stop
 * token or their length. A sequence's cache grows in steps as it needs
 * (a short answer does not pay for the longest), or is borrowed (the chat
 * keeps one cache from turn to turn).
 */
#ifndef DS_INFER_H
#define DS_INFER_H

#include "json.h"
#include "qwen2.h"
#include "sample.h"
#include "tokenizer.h"

#include <jv.h>
#include <stddef.h>
#include <stdint.h>

/* ---- text: UTF-8 as it completes, stop strings, the chain of thought apart */

/* Stop strings (a request's 'stop', --stop). */
#define INFER_MAX_STOPS 4 /* as many as the OpenAI API takes */

struct infer_stops {
	const char *s[INFER_MAX_STOPS]; /* borrowed */
	size_t len[INFER_MAX_STOPS];    /* bytes; a string may hold NUL (JSON's \u0000) */
	int n;
};

/* Text goes through three stages. Token bytes become UTF-8 characters as
 * they complete. Stop strings are looked for in the whole generated text,
 * tags and all, before anything is split off (as vLLM matches them): the
 * text ends before the first one found, and a tail that may still grow
 * into one is held back, so that no piece of a stop string is ever
 * emitted. Then the split: a reply opens its chain of thought with <think>
 * and closes it with </think>; what is inside is the reasoning (white
 * space around it trimmed), what follows the content (leading white space
 * trimmed): the split ds-teacher makes of an inline reply. A tail that may
 * still become a tag is held back until it is decided. */
enum { SPLIT_START, SPLIT_THINK, SPLIT_CONTENT };
enum { INFER_REASONING, INFER_CONTENT };

typedef void (*infer_emit_fn)(void *ud, int kind, const char *s, size_t n);

struct infer_text {
	char pend[8];     /* bytes of an unfinished UTF-8 character */
	int n_pend;
	const struct infer_stops *stop; /* borrowed, or NULL: none */
	jbuf raw;         /* the whole text so far, cut before a stop string */
	size_t passed;    /* raw[0..passed) has gone on to the split */
	int stopped;      /* a stop string was found: the text is complete */
	int closed;       /* raw holds </think>: later tokens are not reasoning */
	jbuf hold;        /* text not yet decided by the split */
	int state, lead;  /* lead: white space to drop before the next text */
	int thought;      /* the reply opened with <think> */
	int reasoning_tokens;
	jbuf reasoning, content; /* everything emitted */
};

/* Feed a token's bytes s[0..n): complete UTF-8 characters go on (an
 * invalid byte becomes U+FFFD), an unfinished one waits for the next; then
 * the stop strings, then the split, whose pieces go to f(ud, kind, ...)
 * (f may be NULL: only kept). final says no more will come. Returns 1 when
 * a stop string ended the text (which is then final). */
int infer_text_feed(struct infer_text *t, const char *s, size_t n, int final, infer_emit_fn f, void *ud);
void infer_text_free(struct infer_text *t);

/* ---- the engine: sequences decoded together --------------------------- */

struct infer_seq;
/* Called by infer_engine_step with the sequence: after each new token;
 * when it is done (it has left the engine; the callee frees it). */
typedef void (*infer_seq_fn)(struct infer_seq *s);

struct infer_seq {
	uint32_t *ids;       /* (cap_ids) owned: the prompt, then what was generated */
	int n_prompt, n_ids, cap_ids;
	int max_new;         /* new tokens at most (fits the context) */
	sample_params sp;
	sample_rng rng;
	qwen2_cache *cache;  /* owned, unless borrowed (the chat keeps its own) */
	int cache_borrowed;
	int reused;          /* prompt positions already in a borrowed cache */
	const char *finish;  /* NULL while running; "stop" or "length" */
	struct infer_text text;
	/* Log-probabilities, when logprobs is set: of each generated token
	 * but a stop token (its text is no part of the answer), in the raw
	 * distribution (sample_logprobs), and its top_logprobs alternatives. */
	int logprobs, top_logprobs; /* asked; 0 <= top_logprobs <= SAMPLE_MAX_TOP */
	float *lp;                  /* (cap_lp) owned */
	sample_logprob *lp_top;     /* (cap_lp, top_logprobs) owned */
	int n_lp, cap_lp;
	int index;           /* the caller's: the choice's index in its request */
	double t_start, t_first, t_end; /* seconds: admitted, first token, done */
	infer_seq_fn on_token, on_done;
	void *ud;            /* the caller's */
	jv rec;              /* batch: the record (owned) */
	int sample;          /* batch: the sample number */
	long line;           /* batch: input line */
	struct infer_seq *next;    /* in a queue */
};

struct infer_engine {
	qwen2_model *m;            /* borrowed */
	const tokenizer *tok;      /* borrowed: turns the tokens into text */
	int V, ctx;                /* vocabulary; positions a sequence may reach */
	const uint32_t *stops;     /* (n_stops) borrowed: ids that end an answer */
	int n_stops;
	const struct infer_stops *stop_strs; /* borrowed: new sequences' stop strings, or NULL */
	struct infer_seq **act;    /* (B) the sequences being decoded */
	int n_act, B;
	qwen2_seg *segs;     /* (B) */
	float *logits;       /* (B, V) */
	sample_cand *cand;   /* (V) */
	uint8_t *seen;       /* (V) zeroed */
	float *raw;          /* (V) a row's logits before the penalty; made when first needed */
	double prefill_s, decode_s;
	uint64_t prefill_tok, decode_tok;
};

/* An engine of B slots for model m, decoding with tok, sequences reaching
 * at most ctx positions; stops (n_stops ids) end an answer; stop_strs are
 * new sequences' stop strings (NULL: none). Borrows every pointer. */
void infer_engine_init(struct infer_engine *e, qwen2_model *m, const tokenizer *tok, int ctx, const uint32_t *stops,
                       int n_stops, const struct infer_stops *stop_strs, int B);
void infer_engine_free(struct infer_engine *e);

/* A sequence for prompt ids (consumed: owned by the sequence) with new
 * tokens at most max_new (clipped to e's context), sampled with sp from a
 * generator seeded with seed. Returns owned (infer_seq_free); put it in
 * e->act to run it. */
struct infer_seq *infer_seq_new(const struct infer_engine *e, uint32_t *ids, int n, long max_new,
                                const sample_params *sp, uint64_t seed);
void infer_seq_free(struct infer_seq *s);

/* Decode the generated token id into s's text (f, ud: infer_text_feed's). */
void infer_seq_text(struct infer_engine *e, struct infer_seq *s, uint32_t id, int final, infer_emit_fn f, void *ud);

/* Ask s for the log-probabilities of its tokens, with top (0..SAMPLE_MAX_TOP)
 * alternatives each. */
void infer_seq_logprobs(struct infer_seq *s, int top);

/* One step (above); the finished leave through on_done. Returns -1 when
 * nothing is active, else 0. */
int infer_engine_step(struct infer_engine *e);

#endif
