/* sample.h — choosing the next token from a model's logits, with the
 * semantics of Hugging Face transformers' generate():
 *
 *   repetition penalty (RepetitionPenaltyLogitsProcessor: every token of the
 *   prompt and of the output so far, once: a positive logit is divided by
 *   the penalty, a negative one multiplied), then either the argmax
 *   (greedy: temperature 0; the first of equal maxima, as torch.argmax) or
 *   a draw from softmax(logits / temperature) restricted by top-k (every
 *   token at least as likely as the k-th: ties are kept), top-p (the most
 *   likely tokens until their mass reaches p: a token stays when the mass
 *   of the tokens before it is below p) and min-p (tokens at least min_p
 *   times as likely as the most likely), each keeping at least one token.
 *
 * Each filter keeps a prefix of the tokens sorted by probability, and
 * min-p's test is a ratio that renormalising does not change, so applying
 * them in transformers' order (temperature, top-k, top-p, min-p) is the
 * same as keeping the shortest of the three prefixes, top-p measured after
 * top-k.
 *
 * Log-probabilities are those of the raw distribution, log_softmax of the
 * logits at temperature 1 before the penalty and the filters (what vLLM
 * returns by default, logprobs_mode raw_logprobs), for soft-label
 * distillation.
 *
 * The generator is xoshiro256** seeded through splitmix64: the same seed
 * gives the same draws on every machine.
 */
#ifndef DS_SAMPLE_H
#define DS_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sample_params {
	double temperature;        /* 0: greedy */
	int top_k;                 /* 0: off */
	double top_p;              /* 1: off */
	double min_p;              /* 0: off */
	double repetition_penalty; /* 1: off */
} sample_params;

/* Off everything: greedy, no penalty. */
#define SAMPLE_GREEDY ((sample_params){0, 0, 1.0, 0, 1.0})

typedef struct sample_rng {
	uint64_t s[4];
} sample_rng;

void sample_rng_seed(sample_rng *r, uint64_t seed);
uint64_t sample_rng_next(sample_rng *r);
/* Uniform in [0, 1), 53 bits. */
double sample_rng_uniform(sample_rng *r);

/* A candidate token and its probability. */
typedef struct sample_cand {
	uint32_t id;
	float p;
} sample_cand;

/* A token and its log-probability (natural log). */
typedef struct sample_logprob {
	uint32_t id;
	float logprob;
} sample_logprob;

/* Alternatives a token may list at most, as the OpenAI API's top_logprobs. */
#define SAMPLE_MAX_TOP 20

/* log_softmax(logits) at temperature 1: returns token id's log-probability
 * and writes the k most probable tokens into top (k entries, the caller's;
 * most probable first, equal ones by lower id). Borrows logits (V, fp32),
 * which it does not change; 0 <= k <= min(V, SAMPLE_MAX_TOP), id < V. */
double sample_logprobs(const float *logits, int V, uint32_t id, int k, sample_logprob *top);

/* Apply the repetition penalty to logits (V) in place for each distinct
 * id of ids[0..n) (borrowed). seen (V bytes, caller's) must be all zero;
 * it is left all zero. Ids >= V are ignored. */
void sample_penalize(float *logits, int V, const uint32_t *ids, size_t n, double penalty, uint8_t *seen);

/* The first index of the largest of logits[0..V). */
uint32_t sample_argmax(const float *logits, int V);

/* The distribution a draw is made from (temperature > 0): the surviving
 * candidates into out (caller's, V entries), most likely first, their
 * probabilities summing to 1. Borrows logits (V). Returns how many. */
int sample_dist(const sample_params *p, const float *logits, int V, sample_cand *out);

/* The candidate where the cumulative probability passes u in [0, 1). */
uint32_t sample_pick(const sample_cand *c, int n, double u);

/* The next token: the penalty (with history ids[0..n) and seen as for
 * sample_penalize; logits is modified), then greedy or a draw with r.
 * scratch: V candidates, the caller's. */
uint32_t sample_next(const sample_params *p, float *logits, int V, const uint32_t *ids, size_t n,
		     uint8_t *seen, sample_rng *r, sample_cand *scratch);

#endif
