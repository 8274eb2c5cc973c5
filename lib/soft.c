/* soft.c — a teacher's logprobs object on the student's tokens (soft.h). */
#include "soft.h"
#include "check.h"
#include "utf8.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *say(char *why, size_t why_n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static const char *say(char *why, size_t why_n, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(why, why_n, f, ap);
	va_end(ap);
	return why;
}

/* b[0..n) quoted for a message, at most about 40 bytes of it: printable
 * ASCII as is, the rest as \xNN. */
static void quote(char *out, size_t cap, const char *b, size_t n)
{
	size_t k = 0;
	if (cap < 8) return;
	out[k++] = '"';
	for (size_t i = 0; i < n && k + 6 < cap; i++) {
		unsigned char c = (unsigned char)b[i];
		if (i == 40) {
			k += (size_t)snprintf(out + k, cap - k, "...");
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') out[k++] = (char)c;
		else k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
	}
	out[k++] = '"';
	out[k] = 0;
}

/* A token written as the contract has it (a string of its bytes, or an
 * array of byte values) into buf (at least 256 bytes: a token is shorter).
 * Returns its length, or -1. */
static long token_bytes(jv tok, char *buf, size_t cap)
{
	if (jv_get_kind(tok) == JV_KIND_STRING) {
		size_t n = (size_t)jv_string_length_bytes(jv_copy(tok));
		if (n > cap) return -1;
		memcpy(buf, jv_string_value(tok), n);
		return (long)n;
	}
	if (jv_get_kind(tok) != JV_KIND_ARRAY) return -1;
	int n = jv_array_length(jv_copy(tok));
	if (n < 1 || (size_t)n > cap) return -1;
	for (int i = 0; i < n; i++) {
		jv b = jv_array_get(jv_copy(tok), i);
		double v = jv_get_kind(b) == JV_KIND_NUMBER ? jv_number_value(b) : -1;
		jv_free(b);
		if (!(v >= 0 && v <= 255) || v != (int)v) return -1;
		buf[i] = (char)(int)v;
	}
	return n;
}

/* A log-probability as the contract writes it: a number <= 0 (a rounding
 * step above 0 read as 0). NAN when it is none. */
static float logprob(jv v)
{
	double x = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : NAN;
	if (x > 0 && x <= 1e-4) x = 0;
	return x <= 0 && x >= -1e30 ? (float)x : NAN;
}

static jv field(jv obj, const char *key) { return jv_object_get(jv_copy(obj), jv_string(key)); }

const char *soft_parse(jv lp, const tokenizer *t, soft_seq *s, char *why, size_t why_n)
{
	s->n = s->text_n = 0;
	if (jv_get_kind(lp) != JV_KIND_OBJECT) return "\"logprobs\" is not an object";
	jv kv = field(lp, "k"), toks = field(lp, "tokens"), lps = field(lp, "logprob"), top = field(lp, "top");
	const char *bad = NULL;
	double kd = jv_get_kind(kv) == JV_KIND_NUMBER ? jv_number_value(kv) : 0;
	int n = jv_get_kind(toks) == JV_KIND_ARRAY ? jv_array_length(jv_copy(toks)) : -1;
	if (!(kd >= 1 && kd <= 64) || kd != (int)kd) bad = "logprobs: \"k\" is not a whole number from 1 to 64";
	else if (n < 0) bad = "logprobs: \"tokens\" is not an array";
	else if (jv_get_kind(lps) != JV_KIND_ARRAY || jv_array_length(jv_copy(lps)) != n)
		bad = "logprobs: \"logprob\" is not an array as long as \"tokens\"";
	else if (jv_get_kind(top) != JV_KIND_ARRAY || jv_array_length(jv_copy(top)) != n)
		bad = "logprobs: \"top\" is not an array as long as \"tokens\"";
	int k = bad ? 0 : (int)kd;
	if (!bad && (size_t)n > s->cap) {
		s->cap = (size_t)n;
		s->id = xrealloc(s->id, s->cap * sizeof *s->id);
	}
	if (!bad && (size_t)n * (size_t)k > s->top_cap) {
		s->top_cap = (size_t)n * (size_t)k;
		s->top_id = xrealloc(s->top_id, s->top_cap * sizeof *s->top_id);
		s->top_lp = xrealloc(s->top_lp, s->top_cap * sizeof *s->top_lp);
	}
	s->k = k;
	char buf[256], q[200];
	for (int i = 0; !bad && i < n; i++) {
		jv tok = jv_array_get(jv_copy(toks), i), alt = jv_array_get(jv_copy(top), i);
		long b = token_bytes(tok, buf, sizeof buf);
		uint32_t id = b > 0 ? tokenizer_token_id(t, buf, (size_t)b) : UINT32_MAX;
		if (b <= 0) {
			bad = say(why, why_n, "logprobs: token %d is neither a string nor an array of bytes", i);
		} else if (id == UINT32_MAX) {
			quote(q, sizeof q, buf, (size_t)b);
			bad = say(why, why_n,
				  "logprobs: the teacher's token %d, %s, is no token of the student's vocabulary: the "
				  "teacher's tokenizer is not the student's, and its soft labels would name other tokens",
				  i, q);
		} else if (jv_get_kind(alt) != JV_KIND_ARRAY || jv_array_length(jv_copy(alt)) != 2 * k) {
			bad = say(why, why_n, "logprobs: top[%d] does not hold %d alternatives (token, logprob pairs)", i,
				  k);
		}
		if (!bad) {
			if (s->text_n + (size_t)b > s->text_cap) {
				s->text_cap = 2 * (s->text_n + (size_t)b) + 4096;
				s->text = xrealloc(s->text, s->text_cap);
			}
			memcpy(s->text + s->text_n, buf, (size_t)b);
			s->text_n += (size_t)b;
			s->id[i] = id;
		}
		double mass = 0;
		for (int a = 0; !bad && a < k; a++) {
			jv at = jv_array_get(jv_copy(alt), 2 * a), av = jv_array_get(jv_copy(alt), 2 * a + 1);
			long ab = token_bytes(at, buf, sizeof buf);
			uint32_t aid = ab > 0 ? tokenizer_token_id(t, buf, (size_t)ab) : UINT32_MAX;
			float l = logprob(av);
			if (ab <= 0) {
				bad = say(why, why_n, "logprobs: top[%d] alternative %d is neither a string nor bytes", i, a);
			} else if (aid == UINT32_MAX) {
				quote(q, sizeof q, buf, (size_t)ab);
				bad = say(why, why_n,
					  "logprobs: top[%d] names %s, no token of the student's vocabulary: the teacher's "
					  "tokenizer is not the student's",
					  i, q);
			} else if (isnan(l)) {
				bad = say(why, why_n, "logprobs: top[%d] alternative %d has no log-probability <= 0", i, a);
			}
			for (int c = 0; !bad && c < a; c++)
				if (s->top_id[(size_t)i * k + c] == aid)
					bad = say(why, why_n, "logprobs: top[%d] names one token twice", i);
			if (!bad) {
				s->top_id[(size_t)i * k + a] = aid;
				s->top_lp[(size_t)i * k + a] = l;
				mass += exp(l);
			}
			jv_free(at);
			jv_free(av);
		}
		if (!bad && mass > 1.001)
			bad = say(why, why_n, "logprobs: top[%d]'s probabilities add up to %.4f, more than 1", i, mass);
		jv_free(tok);
		jv_free(alt);
	}
	jv_free(kv), jv_free(toks), jv_free(lps), jv_free(top);
	if (bad) return bad;
	s->n = (size_t)n;
	return NULL;
}

long soft_align(const soft_seq *s, const tokenizer *t, const uint32_t *ids, size_t n, char *why, size_t why_n)
{
	if (s->n == 0) return 0;
	for (size_t o = 0; o + s->n <= n; o++)
		if (ids[o] == s->id[0] && !memcmp(ids + o, s->id, s->n * sizeof *ids)) return (long)o;
	/* Not there: say why, from the reply's bytes. */
	size_t len;
	char *text = tokenizer_decode(t, ids, n, 0, &len, NULL);
	const char *at = text && s->text_n <= len ? memmem(text, len, s->text, s->text_n) : NULL;
	char q[200];
	if (!at) {
		quote(q, sizeof q, s->text, s->text_n);
		say(why, why_n,
		    "logprobs: the teacher's tokens spell %s, which is not in the reply (was the reply changed after the "
		    "teacher wrote it?)",
		    q);
		free(text);
		return -1;
	}
	size_t off = (size_t)(at - text), pos = 0, i = 0;
	for (; i < n && pos < off; i++) {
		char *one = tokenizer_decode(t, ids + i, 1, 0, &len, NULL);
		pos += len;
		free(one);
	}
	size_t j = 0;
	if (pos == off)
		while (j < s->n && i + j < n && ids[i + j] == s->id[j]) j++;
	char *want = tokenizer_decode(t, s->id + j, j < s->n ? 1 : 0, 0, &len, NULL);
	quote(q, sizeof q, want, len);
	say(why, why_n,
	    "logprobs: the student encodes the reply into other tokens than the teacher generated: at the teacher's "
	    "token %zu (%s, id %u) the student has id %u",
	    j, q, j < s->n ? s->id[j] : 0, pos == off && i + j < n ? ids[i + j] : (i < n ? ids[i] : 0));
	free(want);
	free(text);
	return -1;
}

void soft_seq_free(soft_seq *s)
{
	free(s->id);
	free(s->top_id);
	free(s->top_lp);
	free(s->text);
	*s = (soft_seq){0};
}

jv soft_token_json(const char *b, size_t n)
{
	if (utf8_check(b, n) == n) return jv_string_sized(b, (int)n);
	jv t = jv_array_sized((int)n);
	for (size_t i = 0; i < n; i++) t = jv_array_append(t, jv_number((unsigned char)b[i]));
	return t;
}

jv soft_logprob_json(double lp)
{
	if (!(lp > -INFINITY)) return jv_number(-9999);
	char num[32];
	snprintf(num, sizeof num, "%.6g", lp);
	return jv_number(strtod(num, NULL));
}
