/* soft.h — a teacher's soft labels on the student's tokens: the
 * `logprobs` object ds-teacher and ds-infer write (ds-teacher(1): the
 * generated tokens, each with the log-probabilities of the teacher's K most
 * probable tokens) read with the student's tokenizer, and found among the
 * ids the student's chat template gives the reply.
 *
 * The teacher names its tokens by their bytes, the student knows them by
 * id: a teacher token that is no token of the student's vocabulary means
 * the two tokenizers differ, and its soft labels would teach the wrong
 * tokens; so would a reply that the student encodes into other tokens than
 * the teacher generated. Both are refused, with what differs.
 */
#ifndef DS_SOFT_H
#define DS_SOFT_H

#include "tokenizer.h"

#include <jv.h>
#include <stddef.h>
#include <stdint.h>

typedef struct soft_seq {
	int k;              /* alternatives per token */
	size_t n;           /* generated tokens */
	uint32_t *id;       /* (n) each generated token's student id */
	uint32_t *top_id;   /* (n * k) its k alternatives' ids, the server's order */
	float *top_lp;      /* (n * k) and their log-probabilities (<= 0) */
	char *text;         /* the generated tokens' bytes, end to end (text_n of them) */
	size_t text_n;
	size_t cap, top_cap, text_cap; /* of id, of top_id and top_lp, of text */
} soft_seq;

/* Read lp (borrowed; a teacher's logprobs object) into s (start it zeroed,
 * reuse it; free with soft_seq_free) with t's vocabulary. Returns NULL, or
 * why lp is bad or names a token t does not have (in why[0..why_n)). */
const char *soft_parse(jv lp, const tokenizer *t, soft_seq *s, char *why, size_t why_n);

/* Where s's tokens are in ids[0..n) (a reply as the student encodes it):
 * the offset o with ids[o..o+s->n) equal to s->id. -1 when they are not
 * there, with why in why[0..why_n): the text is not the reply's, or the
 * student encodes it into other tokens (the first that differs). */
long soft_align(const soft_seq *s, const tokenizer *t, const uint32_t *ids, size_t n, char *why, size_t why_n);

void soft_seq_free(soft_seq *s);

/* The object's pieces as its writers (ds-infer --logprobs, ds-teacher
 * --logprobs) make them. A token of bytes b[0..n): a JSON string when they
 * are valid UTF-8, else an array of the byte values. A log-probability:
 * rounded to 6 significant digits (printf %.6g, then strtod, so it prints
 * short), -inf as -9999. Both owned. */
jv soft_token_json(const char *b, size_t n);
jv soft_logprob_json(double lp);

#endif
