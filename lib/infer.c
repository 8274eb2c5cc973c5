/* infer.c — the inference engine (infer.h): the text of a reply as it is
 * generated, and sequences decoded together. */
#include "infer.h"
#include "check.h"
#include "clock.h"
#include "cli.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

/* ---- text ------------------------------------------------------------- */

static int is_ws(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static void text_emit(struct infer_text *t, int kind, const char *s, size_t n, infer_emit_fn f, void *ud)
{
	if (t->lead) {
		while (n && is_ws(*s)) s++, n--;
		if (!n) return;
		t->lead = 0;
	}
	jbuf_put(kind == INFER_REASONING ? &t->reasoning : &t->content, s, n);
	if (f) f(ud, kind, s, n);
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of
 * tag[0..m). */
static size_t tag_tail(const char *s, size_t n, const char *tag, size_t m)
{
	for (size_t k = m - 1 < n ? m - 1 : n; k > 0; k--)
		if (!memcmp(s + n - k, tag, k)) return k;
	return 0;
}

/* Decide what hold can: final says nothing more will come. */
static void text_split(struct infer_text *t, int final, infer_emit_fn f, void *ud)
{
	for (;;) {
		char *h = t->hold.p ? t->hold.p : "";
		size_t n = t->hold.n;
		if (t->state == SPLIT_START) {
			size_t w = 0;
			while (w < n && is_ws(h[w])) w++;
			if (n - w >= 7 && !memcmp(h + w, "<think>", 7)) {
				t->state = SPLIT_THINK;
				t->thought = 1;
				t->lead = 1;
				memmove(h, h + w + 7, n - w - 7);
				t->hold.n = n - w - 7;
				continue;
			}
			if (!final && n - w < 7 && !memcmp(h + w, "<think>", n - w)) return;
			t->state = SPLIT_CONTENT;
			continue;
		}
		if (t->state == SPLIT_CONTENT) {
			if (n) text_emit(t, INFER_CONTENT, h, n, f, ud);
			t->hold.n = 0;
			return;
		}
		char *close = n ? memmem(h, n, "</think>", 8) : NULL;
		if (close) {
			size_t e = (size_t)(close - h);
			while (e && is_ws(h[e - 1])) e--;
			if (e) text_emit(t, INFER_REASONING, h, e, f, ud);
			size_t rest = n - (size_t)(close + 8 - h);
			memmove(h, close + 8, rest);
			t->hold.n = rest;
			t->state = SPLIT_CONTENT;
			t->lead = 1;
			continue;
		}
		/* keep back a possible start of </think> and the white space before it */
		size_t keep = final ? n : n - tag_tail(h, n, "</think>", 8);
		while (keep && is_ws(h[keep - 1])) keep--;
		if (keep) text_emit(t, INFER_REASONING, h, keep, f, ud);
		memmove(h, h + keep, n - keep);
		t->hold.n = final ? 0 : n - keep;
		return;
	}
}

/* Where the earliest stop string starts in t->raw (at passed or later:
 * what went before was no start of one), or -1. */
static long stop_find(const struct infer_text *t)
{
	long best = -1;
	const char *h = t->raw.p + t->passed;
	size_t n = t->raw.n - t->passed;
	for (int i = 0; i < t->stop->n; i++) {
		const char *at = memmem(h, n, t->stop->s[i], t->stop->len[i]);
		long k = at ? (long)(at - t->raw.p) : -1;
		if (k >= 0 && (best < 0 || k < best)) best = k;
	}
	return best;
}

/* Feed a token's bytes s[0..n): complete UTF-8 characters go on (an
 * invalid byte becomes U+FFFD), an unfinished one waits for the next; then
 * the stop strings, then the split. final says no more will come. Returns
 * 1 when a stop string ended the text (which is then final). */
int infer_text_feed(struct infer_text *t, const char *s, size_t n, int final, infer_emit_fn f, void *ud)
{
	if (t->stopped) return 1;
	jbuf in = {0};
	jbuf_put(&in, t->pend, (size_t)t->n_pend);
	jbuf_put(&in, s, n);
	t->n_pend = 0;
	size_t end = in.n;
	if (!final) { /* hold back a last character that may still be completed */
		size_t i = in.n, back = 0;
		while (i > 0 && back < 4 && ((unsigned char)in.p[i - 1] & 0xc0) == 0x80) i--, back++;
		if (i > 0) {
			unsigned char lead = (unsigned char)in.p[i - 1];
			size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
			if (lead >= 0xc2 && lead <= 0xf4 && need > back + 1) end = i - 1;
		}
	}
	size_t was = t->raw.n;
	jbuf_put(&t->raw, "", 0); /* never NULL below */
	for (size_t at = 0; at < end;) {
		size_t ok = utf8_check(in.p + at, end - at);
		jbuf_put(&t->raw, in.p + at, ok);
		at += ok;
		if (at < end) {
			jbuf_put(&t->raw, "\xef\xbf\xbd", 3);
			at++;
		}
	}
	t->n_pend = (int)(in.n - end);
	memcpy(t->pend, in.p + end, (size_t)t->n_pend);
	free(in.p);
	size_t go = t->raw.n;
	if (t->stop) {
		long cut = stop_find(t);
		if (cut >= 0) {
			/* what follows the stop string, an unfinished character too, is dropped */
			t->raw.n = go = (size_t)cut;
			t->raw.p[go] = '\0';
			t->n_pend = 0;
			t->stopped = final = 1;
		} else if (!final) {
			size_t k = 0;
			for (int i = 0; i < t->stop->n; i++) {
				size_t m = tag_tail(t->raw.p + t->passed, go - t->passed, t->stop->s[i], t->stop->len[i]);
				if (m > k) k = m;
			}
			go -= k;
		}
	}
	/* </think> may straddle what came before: look 7 bytes back */
	size_t from = was > 7 ? was - 7 : 0;
	if (from < t->raw.n && memmem(t->raw.p + from, t->raw.n - from, "</think>", 8)) t->closed = 1;
	jbuf_put(&t->hold, t->raw.p + t->passed, go - t->passed);
	t->passed = go;
	text_split(t, final, f, ud);
	return t->stopped;
}

void infer_text_free(struct infer_text *t)
{
	free(t->raw.p);
	free(t->hold.p);
	free(t->reasoning.p);
	free(t->content.p);
}

/* ---- the engine: sequences decoded together -------------------------- */

void infer_engine_init(struct infer_engine *e, qwen2_model *m, const tokenizer *tok, int ctx, const uint32_t *stops,
                       int n_stops, const struct infer_stops *stop_strs, int B)
{
	*e = (struct infer_engine){.m = m, .tok = tok, .V = m->cfg.vocab, .ctx = ctx, .stops = stops,
	                           .n_stops = n_stops, .stop_strs = stop_strs, .B = B};
	e->act = xcalloc((size_t)B, sizeof *e->act);
	e->segs = xcalloc((size_t)B, sizeof *e->segs);
	e->logits = xmalloc((size_t)B * (size_t)e->V * sizeof *e->logits);
	e->cand = xmalloc((size_t)e->V * sizeof *e->cand);
	e->seen = xcalloc((size_t)e->V, 1);
}

static int is_stop(const struct infer_engine *e, uint32_t id)
{
	for (int i = 0; i < e->n_stops; i++)
		if (e->stops[i] == id) return 1;
	return 0;
}

void infer_engine_free(struct infer_engine *e)
{
	free(e->act), free(e->segs), free(e->logits), free(e->cand), free(e->seen), free(e->raw);
}

/* A sequence for prompt ids (consumed: owned by the sequence) with new
 * tokens at most max_new (clipped to the context). */
struct infer_seq *infer_seq_new(const struct infer_engine *e, uint32_t *ids, int n, long max_new,
                                const sample_params *sp, uint64_t seed)
{
	struct infer_seq *s = xcalloc(1, sizeof *s);
	long room = e->ctx - n;
	s->max_new = (int)(max_new < room ? max_new : room);
	s->cap_ids = n + s->max_new;
	s->ids = xrealloc(ids, (size_t)s->cap_ids * sizeof *ids);
	s->n_prompt = s->n_ids = n;
	s->sp = *sp;
	s->text.stop = e->stop_strs;
	sample_rng_seed(&s->rng, seed);
	s->rec = jv_invalid();
	return s;
}

void infer_seq_free(struct infer_seq *s)
{
	if (!s) return;
	if (!s->cache_borrowed) qwen2_cache_free(s->cache);
	free(s->ids);
	infer_text_free(&s->text);
	free(s->lp);
	free(s->lp_top);
	jv_free(s->rec);
	free(s);
}

void infer_seq_logprobs(struct infer_seq *s, int top)
{
	s->logprobs = 1;
	s->top_logprobs = top < 0 ? 0 : top > SAMPLE_MAX_TOP ? SAMPLE_MAX_TOP : top;
}

/* Keep the log-probabilities of token id, chosen from logits (V, before
 * the penalty). */
static void seq_logprob(struct infer_engine *e, struct infer_seq *s, const float *logits, uint32_t id)
{
	if (s->top_logprobs > e->V) s->top_logprobs = e->V;
	int k = s->top_logprobs;
	if (s->n_lp == s->cap_lp) {
		s->cap_lp = s->cap_lp ? s->cap_lp * 2 : 256;
		s->lp = xrealloc(s->lp, (size_t)s->cap_lp * sizeof *s->lp);
		s->lp_top = xrealloc(s->lp_top, (size_t)s->cap_lp * (size_t)(k ? k : 1) * sizeof *s->lp_top);
	}
	s->lp[s->n_lp] = (float)sample_logprobs(logits, e->V, id, k, s->lp_top + (size_t)s->n_lp * (size_t)k);
	s->n_lp++;
}

/* Room in s's cache for `need` positions: grown in steps, so that a short
 * answer does not pay for the longest one. */
static void cache_reserve(struct infer_engine *e, struct infer_seq *s, int need)
{
	const qwen2_config *c = &e->m->cfg;
	int full = s->cap_ids > 0 ? s->cap_ids : 1;
	if (s->cache && s->cache->cap >= need) return;
	int cap = s->cache ? s->cache->cap * 2 : need + 256;
	if (cap < need) cap = need;
	if (cap > full) cap = full;
	qwen2_cache *k = qwen2_cache_new(e->m, cap);
	if (s->cache) {
		qwen2_cache_copy(k, s->cache, c->n_layers);
		if (!s->cache_borrowed) qwen2_cache_free(s->cache);
	}
	s->cache = k;
	s->cache_borrowed = 0;
}

/* Decode a generated token into s's text. */
void infer_seq_text(struct infer_engine *e, struct infer_seq *s, uint32_t id, int final, infer_emit_fn f, void *ud)
{
	size_t len = 0;
	char *b = NULL;
	if (!(s->finish && !strcmp(s->finish, "stop") && final)) {
		b = tokenizer_decode(e->tok, &id, 1, 0, &len, NULL);
		if (!b) len = 0;
	}
	int open = !s->text.closed; /* the tokens up to the one completing </think> are reasoning */
	/* a stop string wins over the length limit the same token reached */
	if (infer_text_feed(&s->text, b ? b : "", len, final, f, ud)) s->finish = "stop";
	if (open && b) s->text.reasoning_tokens++;
	if (s->finish && !s->text.thought) s->text.reasoning_tokens = 0;
	free(b);
}

/* One step: a forward over every active sequence's pending tokens, a new
 * token for each; the finished leave (on_done). Returns -1 when nothing
 * is active. */
int infer_engine_step(struct infer_engine *e)
{
	if (e->n_act == 0) return -1;
	int prefill = 0, n_tok = 0;
	for (int i = 0; i < e->n_act; i++) {
		struct infer_seq *s = e->act[i];
		int len = s->cache ? s->cache->len : 0;
		cache_reserve(e, s, s->n_ids);
		e->segs[i] = (qwen2_seg){s->cache, s->ids + len, s->n_ids - len};
		if (s->n_ids - len > 1) prefill = 1;
		n_tok += s->n_ids - len;
	}
	double t0 = now_s();
	if (qwen2_forward_segs(e->m, e->segs, e->n_act, e->logits) != 0)
		cli_die(EXIT_RUNTIME, "internal error: a cache overflowed");
	double t1 = now_s();
	for (int i = 0; i < e->n_act; i++) {
		struct infer_seq *s = e->act[i];
		float *lg = e->logits + (size_t)i * (size_t)e->V, *raw = lg;
		if (s->logprobs && s->sp.repetition_penalty != 1.0) {
			/* the penalty changes lg in place; log-probabilities are of the raw logits */
			if (!e->raw) e->raw = xmalloc((size_t)e->V * sizeof *e->raw);
			memcpy(e->raw, lg, (size_t)e->V * sizeof *lg);
			raw = e->raw;
		}
		uint32_t id = sample_next(&s->sp, lg, e->V, s->ids, (size_t)s->n_ids, e->seen, &s->rng, e->cand);
		s->ids[s->n_ids++] = id;
		if (!s->t_first) s->t_first = t1;
		int n_out = s->n_ids - s->n_prompt;
		int stop = is_stop(e, id);
		if (stop) s->finish = "stop";
		else if (n_out >= s->max_new) s->finish = "length";
		if (s->logprobs && !stop) seq_logprob(e, s, raw, id);
		if (s->on_token) s->on_token(s);
	}
	/* the speeds count the choosing and the text too, not only the forward */
	double t2 = now_s();
	if (prefill) e->prefill_s += t2 - t0, e->prefill_tok += (uint64_t)n_tok;
	else e->decode_s += t2 - t0, e->decode_tok += (uint64_t)n_tok;
	int k = 0;
	for (int i = 0; i < e->n_act; i++) {
		struct infer_seq *s = e->act[i];
		if (s->finish) {
			s->t_end = now_s();
			if (s->on_done) s->on_done(s);
		} else {
			e->act[k++] = s;
		}
	}
	e->n_act = k;
	return 0;
}

