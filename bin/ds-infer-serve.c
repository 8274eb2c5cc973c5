/* ds-infer-serve.c — ds-infer serve: an OpenAI-compatible chat-completions
 * server (POST /v1/chat/completions, streaming or not; GET /v1/models) on
 * libmicrohttpd, its requests decoded together in one batch on the
 * engine's thread (lib/infer.h). Part of ds-infer (bin/ds-infer.c has the
 * options and the other modes). */
#include "../lib/chatapi.h"
#include "../lib/check.h"
#include "../lib/cli.h"
#include "../lib/clock.h"
#include "../lib/jsonl.h"
#include "ds-infer.h"

#include <arpa/inet.h>
#include <sys/resource.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the server ------------------------------------------------------- */

/* libmicrohttpd runs a thread per connection: it reads the request, turns
 * it into sequences and queues them; one engine thread decodes every
 * queued sequence, batched (-b at once), and appends each request's answer
 * (server-sent events, or one JSON body) to its buffer, from which the
 * connection's thread writes. A client that goes away cancels its
 * sequences at the next step. */

struct server;

struct req {
	struct server *srv;
	pthread_cond_t cv;
	int refs;             /* the connection, and each sequence not yet done */
	int n, n_done, stream, include_usage, cancelled;
	int logprobs, top_logprobs; /* asked: 'logprobs' true, and its 'top_logprobs' */
	int *lp_sent;         /* (n) streamed: the tokens whose logprobs have gone out */
	struct infer_seq **seqs;    /* (n) borrowed: each frees itself when done */
	int *n_prompt, *n_out, *n_reason; /* (n) counts, kept after the sequences go */
	const char **finish;  /* (n) */
	struct infer_stops stop; /* the request's 'stop', borrowed from stop_json */
	jv stop_json;
	jv answers;           /* not streamed: the choices */
	jbuf out;             /* bytes for the client */
	size_t sent;
	int finished;
	char id[48];
	long created;
};

struct server {
	struct infer *in;
	pthread_mutex_t mu;
	pthread_cond_t work;
	struct infer_seq *queue, *queue_tail;
	struct infer_engine eng;
	size_t max_body;
	unsigned long next;
	int verbose;      /* a line a finished choice on stderr */
	double request_timeout; /* s: a request's headers and body, whole (a slow sender is cut off) */
	char *auth;       /* "Bearer KEY" every request but /health must send, or NULL */
};

/* 1 when the request carries the key (compared in constant time: no byte
 * of it leaks through how long a wrong one takes to refuse). */
static int authorized(const struct server *sv, struct MHD_Connection *c)
{
	if (!sv->auth) return 1;
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	size_t n = strlen(sv->auth), m = h ? strlen(h) : 0;
	unsigned char d = m != n;
	for (size_t i = 0; i < n; i++) d |= (unsigned char)(sv->auth[i] ^ (i < m ? h[i] : 0));
	return d == 0;
}

static struct server *srv_of;

/* Both under srv->mu. */
static void req_unref(struct req *r)
{
	if (--r->refs > 0) return;
	pthread_cond_destroy(&r->cv);
	free(r->seqs), free(r->n_prompt), free(r->n_out), free(r->n_reason), free(r->finish), free(r->lp_sent);
	jv_free(r->stop_json);
	jv_free(r->answers);
	free(r->out.p);
	free(r);
}

static void sse(struct req *r, jv chunk)
{
	jbuf_put(&r->out, "data: ", 6);
	json_dump(&r->out, chunk);
	jv_free(chunk);
	jbuf_put(&r->out, "\n\n", 2);
}

static jv chunk_of(struct req *r, jv choices)
{
	jv c = jv_object();
	c = jv_object_set(c, jv_string("id"), jv_string(r->id));
	c = jv_object_set(c, jv_string("object"), jv_string("chat.completion.chunk"));
	c = jv_object_set(c, jv_string("created"), jv_number((double)r->created));
	c = jv_object_set(c, jv_string("model"), jv_string(r->srv->in->name));
	return jv_object_set(c, jv_string("choices"), choices);
}

static jv delta_choice(int index, jv delta, jv logprobs, jv finish)
{
	jv c = jv_object_set(jv_object(), jv_string("index"), jv_number(index));
	c = jv_object_set(c, jv_string("delta"), delta);
	c = jv_object_set(c, jv_string("logprobs"), logprobs);
	return jv_object_set(c, jv_string("finish_reason"), finish);
}

static jv usage_of(struct req *r)
{
	long pt = 0, ct = 0, rt = 0;
	for (int i = 0; i < r->n; i++) ct += r->n_out[i], rt += r->n_reason[i];
	pt = r->n_prompt[0];
	jv u = jv_object();
	u = jv_object_set(u, jv_string("prompt_tokens"), jv_number((double)pt));
	u = jv_object_set(u, jv_string("completion_tokens"), jv_number((double)ct));
	u = jv_object_set(u, jv_string("total_tokens"), jv_number((double)(pt + ct)));
	return jv_object_set(u, jv_string("completion_tokens_details"),
			     jv_object_set(jv_object(), jv_string("reasoning_tokens"), jv_number((double)rt)));
}

/* A token as OpenAI's logprobs list it: {"token": its text (invalid
 * UTF-8 replaced by U+FFFD, as Hugging Face decodes), "logprob", "bytes":
 * its exact bytes}. */
static jv lp_token(const struct infer *in, uint32_t id, double lp)
{
	size_t n, tn;
	char *b = token_bytes(in, id, &n);
	char *t = tokenizer_decode(in->tok, &id, 1, TOKENIZER_DECODE_REPLACE, &tn, NULL);
	jv bytes = jv_array_sized((int)n);
	for (size_t i = 0; i < n; i++) bytes = jv_array_append(bytes, jv_number((unsigned char)b[i]));
	jv e = jv_object_set(jv_object(), jv_string("token"), t ? jv_string_sized(t, (int)tn) : jv_string(""));
	e = jv_object_set(e, jv_string("logprob"), jv_number(lp));
	e = jv_object_set(e, jv_string("bytes"), bytes);
	free(b);
	free(t);
	return e;
}

/* choices[i].logprobs for the tokens [from, to) of s: {"content": [...],
 * "refusal": null}, each token with its top_logprobs. */
static jv lp_choice(const struct req *r, const struct infer_seq *s, int from, int to)
{
	const struct infer *in = r->srv->in;
	int k = s->top_logprobs;
	jv content = jv_array_sized(to - from);
	for (int i = from; i < to; i++) {
		jv e = lp_token(in, s->ids[s->n_prompt + i], s->lp[i]);
		jv top = jv_array_sized(k);
		for (int j = 0; j < k; j++) {
			const sample_logprob *a = &s->lp_top[(size_t)i * (size_t)k + (size_t)j];
			top = jv_array_append(top, lp_token(in, a->id, a->logprob));
		}
		content = jv_array_append(content, jv_object_set(e, jv_string("top_logprobs"), top));
	}
	jv o = jv_object_set(jv_object(), jv_string("content"), content);
	return jv_object_set(o, jv_string("refusal"), jv_null());
}

/* Streamed: the logprobs of s's tokens not yet sent, which go with the
 * chunk being made (null when not asked). A chunk carries the tokens fed
 * since the last one, so every token goes out once, in order, with the
 * first chunk to show any of its text, or after: one whose text is held
 * back (an unfinished UTF-8 character, a possible tag or stop string) or
 * never shown (the think tags, trimmed white space) rides with the next. */
static jv lp_pending(struct req *r, const struct infer_seq *s)
{
	if (!r->logprobs) return jv_null();
	jv lp = lp_choice(r, s, r->lp_sent[s->index], s->n_lp);
	r->lp_sent[s->index] = s->n_lp;
	return lp;
}

/* Under srv->mu: streamed text of one choice. */
static void serve_emit(void *ud, int kind, const char *s, size_t n)
{
	struct infer_seq *q = ud;
	struct req *r = q->ud;
	if (!r->stream) return;
	jv d = jv_object_set(jv_object(), jv_string(kind == INFER_REASONING ? "reasoning_content" : "content"),
			     jv_string_sized(s, (int)n));
	sse(r, chunk_of(r, jv_array_append(jv_array(), delta_choice(q->index, d, lp_pending(r, q), jv_null()))));
}

static void serve_on_token(struct infer_seq *s)
{
	struct server *sv = srv_of;
	struct req *r = s->ud;
	pthread_mutex_lock(&sv->mu);
	if (!r->cancelled) infer_seq_text(&sv->eng, s, s->ids[s->n_ids - 1], s->finish != NULL, serve_emit, s);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&sv->mu);
}

static void serve_on_done(struct infer_seq *s)
{
	struct server *sv = srv_of;
	struct req *r = s->ud;
	pthread_mutex_lock(&sv->mu);
	int i = s->index;
	r->n_prompt[i] = s->n_prompt;
	r->n_out[i] = s->n_ids - s->n_prompt;
	r->n_reason[i] = s->text.reasoning_tokens;
	r->finish[i] = s->finish ? s->finish : "stop";
	r->seqs[i] = NULL;
	if (sv->verbose)
		fprintf(stderr, "%s: %s choice %d: %d prompt + %d completion tokens, %s, %.0f ms\n", cli_prog, r->id, i,
			s->n_prompt, r->n_out[i], r->cancelled ? "cancelled (the client went away)" : r->finish[i],
			(now_s() - s->t_start) * 1000);
	if (!r->cancelled) {
		if (r->stream) {
			/* the tokens no text chunk took (a closing tag, text cut by a stop string) */
			jv lp = lp_pending(r, s);
			sse(r, chunk_of(r, jv_array_append(jv_array(), delta_choice(i, jv_object(), lp, jv_string(r->finish[i])))));
		} else {
			jv m = jv_object_set(jv_object(), jv_string("role"), jv_string("assistant"));
			m = jv_object_set(m, jv_string("content"),
					  jv_string_sized(s->text.content.p ? s->text.content.p : "", (int)s->text.content.n));
			m = jv_object_set(m, jv_string("reasoning_content"),
					  s->text.thought ? jv_string_sized(s->text.reasoning.p ? s->text.reasoning.p : "",
									    (int)s->text.reasoning.n)
							  : jv_null());
			jv c = jv_object_set(jv_object(), jv_string("index"), jv_number(i));
			c = jv_object_set(c, jv_string("message"), m);
			c = jv_object_set(c, jv_string("logprobs"), r->logprobs ? lp_choice(r, s, 0, s->n_lp) : jv_null());
			c = jv_object_set(c, jv_string("finish_reason"), jv_string(r->finish[i]));
			r->answers = jv_array_set(r->answers, i, c);
		}
	}
	if (++r->n_done == r->n && !r->cancelled) {
		if (r->stream) {
			if (r->include_usage) {
				jv c = chunk_of(r, jv_array());
				sse(r, jv_object_set(c, jv_string("usage"), usage_of(r)));
			}
			jbuf_put(&r->out, "data: [DONE]\n\n", 14);
		} else {
			jv b = jv_object();
			b = jv_object_set(b, jv_string("id"), jv_string(r->id));
			b = jv_object_set(b, jv_string("object"), jv_string("chat.completion"));
			b = jv_object_set(b, jv_string("created"), jv_number((double)r->created));
			b = jv_object_set(b, jv_string("model"), jv_string(sv->in->name));
			b = jv_object_set(b, jv_string("choices"), jv_copy(r->answers));
			b = jv_object_set(b, jv_string("usage"), usage_of(r));
			json_dump(&r->out, b);
			jv_free(b);
		}
	}
	if (r->n_done == r->n) r->finished = 1;
	pthread_cond_broadcast(&r->cv);
	infer_seq_free(s);
	req_unref(r);
	pthread_mutex_unlock(&sv->mu);
}

static void *engine_main(void *arg)
{
	struct server *sv = arg;
	struct infer_engine *e = &sv->eng;
	pthread_mutex_lock(&sv->mu);
	for (;;) {
		/* a client gone: its sequences leave now */
		int k = 0;
		for (int i = 0; i < e->n_act; i++) {
			struct infer_seq *s = e->act[i];
			if (((struct req *)s->ud)->cancelled) {
				pthread_mutex_unlock(&sv->mu);
				s->finish = "cancelled";
				serve_on_done(s);
				pthread_mutex_lock(&sv->mu);
			} else {
				e->act[k++] = s;
			}
		}
		e->n_act = k;
		while (e->n_act < e->B && sv->queue) {
			struct infer_seq *s = sv->queue;
			sv->queue = s->next;
			if (!sv->queue) sv->queue_tail = NULL;
			s->t_start = now_s();
			e->act[e->n_act++] = s;
		}
		if (e->n_act == 0) {
			pthread_cond_wait(&sv->work, &sv->mu);
			continue;
		}
		pthread_mutex_unlock(&sv->mu);
		infer_engine_step(e);
		pthread_mutex_lock(&sv->mu);
	}
	return NULL;
}

/* One connection's request as it arrives. */
struct conn {
	jbuf body;
	size_t received;
	int too_big;
	double start; /* when the request began: its headers and body must come by --request-timeout */
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, const char *body,
			     size_t n)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp) return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", type);
	enum MHD_Result ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* An OpenAI-style error: {"error": {"message", "type", "param", "code"}}. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code, const char *param,
				   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code, const char *param,
				   const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	jv e = jv_object_set(jv_object(), jv_string("message"), jv_string(msg));
	e = jv_object_set(e, jv_string("type"),
			  jv_string(status == 404 ? "not_found_error" : status >= 500 ? "server_error" : "invalid_request_error"));
	e = jv_object_set(e, jv_string("param"), param ? jv_string(param) : jv_null());
	e = jv_object_set(e, jv_string("code"), code ? jv_string(code) : jv_null());
	jv o = jv_object_set(jv_object(), jv_string("error"), e);
	jbuf b = {0};
	json_dump(&b, o);
	jv_free(o);
	enum MHD_Result ret = reply(c, status, "application/json", b.p, b.n);
	jbuf_free(&b);
	return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, jv v)
{
	jbuf b = {0};
	json_dump(&b, v);
	jv_free(v);
	enum MHD_Result ret = reply(c, 200, "application/json", b.p, b.n);
	jbuf_free(&b);
	return ret;
}

static jv model_json(struct server *sv)
{
	jv m = jv_object_set(jv_object(), jv_string("id"), jv_string(sv->in->name));
	m = jv_object_set(m, jv_string("object"), jv_string("model"));
	m = jv_object_set(m, jv_string("created"), jv_number(0));
	m = jv_object_set(m, jv_string("owned_by"), jv_string("ds"));
	return jv_object_set(m, jv_string("max_model_len"), jv_number(sv->in->ctx));
}

/* SSE bytes as the engine makes them; blocks (this connection's thread)
 * until there are some. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *r = cls;
	struct server *sv = r->srv;
	pthread_mutex_lock(&sv->mu);
	while (r->sent == r->out.n && !r->finished) pthread_cond_wait(&r->cv, &sv->mu);
	ssize_t k;
	if (r->sent == r->out.n) {
		k = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		size_t n = r->out.n - r->sent;
		if (n > max) n = max;
		memcpy(buf, r->out.p + r->sent, n);
		r->sent += n;
		k = (ssize_t)n;
	}
	pthread_mutex_unlock(&sv->mu);
	return k;
}

/* The response is gone (sent, or the client hung up): cancel what runs. */
static void stream_free(void *cls)
{
	struct req *r = cls;
	struct server *sv = r->srv;
	pthread_mutex_lock(&sv->mu);
	if (!r->finished) r->cancelled = 1;
	pthread_cond_broadcast(&sv->work);
	req_unref(r);
	pthread_mutex_unlock(&sv->mu);
}

/* A request field: a number in [lo, hi] (integer when asked), or absent.
 * Returns 0 when fine; -1 with why written. */
static int field_num(jv body, const char *key, double lo, double hi, int integer, double *out, int *present,
		     char *why, size_t why_n)
{
	jv v = jv_object_get(jv_copy(body), jv_string(key));
	*present = 0;
	int rc = 0;
	if (jv_get_kind(v) == JV_KIND_NUMBER) {
		double d = jv_number_value(v);
		if (d < lo || d > hi || (integer && d != floor(d))) {
			snprintf(why, why_n, "'%s' must be %s in [%g, %g]", key, integer ? "an integer" : "a number", lo, hi);
			rc = -1;
		} else {
			*out = d;
			*present = 1;
		}
	} else if (jv_get_kind(v) != JV_KIND_NULL && jv_get_kind(v) != JV_KIND_INVALID) {
		snprintf(why, why_n, "'%s' must be %s", key, integer ? "an integer" : "a number");
		rc = -1;
	}
	jv_free(v);
	return rc;
}

/* The request's 'stop': absent or null, a string, or an array of up to
 * four strings, none of them empty. Fills st with strings borrowed from v
 * (which the caller keeps while st is used; borrows v). Returns 0 when
 * fine; -1 with why written. */
static int field_stop(jv v, struct infer_stops *st, char *why, size_t why_n)
{
	st->n = 0;
	int k = jv_get_kind(v);
	if (k == JV_KIND_NULL || k == JV_KIND_INVALID) return 0;
	if (k == JV_KIND_STRING) {
		st->s[0] = jv_string_value(v);
		st->len[0] = (size_t)jv_string_length_bytes(jv_copy(v));
		st->n = 1;
	} else if (k == JV_KIND_ARRAY) {
		int n = jv_array_length(jv_copy(v));
		if (n > INFER_MAX_STOPS) {
			snprintf(why, why_n, "'stop' holds %d strings; at most %d are allowed", n, INFER_MAX_STOPS);
			return -1;
		}
		for (int i = 0; i < n; i++) {
			/* the array keeps the string alive after x is freed */
			jv x = jv_array_get(jv_copy(v), i);
			int ok = jv_get_kind(x) == JV_KIND_STRING;
			if (ok) {
				st->s[st->n] = jv_string_value(x);
				st->len[st->n++] = (size_t)jv_string_length_bytes(jv_copy(x));
			}
			jv_free(x);
			if (!ok) {
				snprintf(why, why_n, "'stop[%d]' must be a string", i);
				return -1;
			}
		}
	} else {
		snprintf(why, why_n, "'stop' must be a string or an array of up to %d strings", INFER_MAX_STOPS);
		return -1;
	}
	for (int i = 0; i < st->n; i++)
		if (st->len[i] == 0) {
			snprintf(why, why_n, "'stop' strings must not be empty");
			return -1;
		}
	return 0;
}

/* The text of an OpenAI message's content: a string, or a list of text
 * parts joined. Returns owned jv string, or invalid. */
static jv content_text(jv c)
{
	if (jv_get_kind(c) == JV_KIND_STRING) return c;
	if (jv_get_kind(c) != JV_KIND_ARRAY) {
		jv_free(c);
		return jv_invalid();
	}
	jv s = jv_string("");
	int ok = 1;
	jv_array_foreach(c, i, p) {
		const char *t = jv_get_kind(p) == JV_KIND_OBJECT ? jsonl_get_string(p, "text") : NULL;
		if (!t) ok = 0;
		else s = jv_string_append_str(i ? jv_string_append_str(s, "\n") : s, t);
		jv_free(p);
	}
	jv_free(c);
	if (!ok) {
		jv_free(s);
		return jv_invalid();
	}
	return s;
}

static enum MHD_Result chat_completion(struct server *sv, struct MHD_Connection *c, const char *text, size_t n)
{
	struct infer *in = sv->in;
	size_t at;
	const char *perr;
	char why[320];
	jv body = json_parse(text, n, &at, &perr);
	if (jv_get_kind(body) != JV_KIND_OBJECT) {
		enum MHD_Result ret = jv_is_valid(body)
					      ? reply_error(c, 400, NULL, NULL, "the request body must be a JSON object")
					      : reply_error(c, 400, NULL, NULL, "the request body is not JSON: %s at byte %zu", perr, at);
		jv_free(body);
		return ret;
	}
	enum MHD_Result ret;
	jv texts = jv_array(); /* owns the message texts the conversation borrows */
	jv stop = jv_null();   /* owns the strings stops borrows */
	struct infer_stops stops = {0};
	chat_conv conv = {0};
	chat_encoder ce = infer_encoder(in);
	sample_params sp = in->sp;
	double d;
	int present, nchoice = 1, stream = 0, include_usage = 0, logprobs = 0, top_logprobs = 0;
	long max_new = in->max_tokens;
	int max_asked = 0; /* max_tokens or max_completion_tokens given */
	uint64_t seed = 0;
	int seeded = 0;
	if (!jsonl_get_string(body, "model")) {
		ret = reply_error(c, 400, NULL, "model", "missing required parameter: 'model'");
		goto out;
	}
	jv msgs = jv_object_get(jv_copy(body), jv_string("messages"));
	if (jv_get_kind(msgs) != JV_KIND_ARRAY || jv_array_length(jv_copy(msgs)) == 0) {
		jv_free(msgs);
		ret = reply_error(c, 400, NULL, "messages", "'messages' must be a non-empty array");
		goto out;
	}
	why[0] = '\0';
	int has_sys = 0, n_user_asst = 0;
	jv_array_foreach(msgs, i, m) {
		const char *role = jv_get_kind(m) == JV_KIND_OBJECT ? jsonl_get_string(m, "role") : NULL;
		jv t = jv_get_kind(m) == JV_KIND_OBJECT ? content_text(jv_object_get(jv_copy(m), jv_string("content")))
							: jv_invalid();
		const char *want = n_user_asst % 2 == 0 ? "user" : "assistant";
		if (why[0]) {
		} else if (!role) {
			snprintf(why, sizeof why, "messages[%d]: no 'role'", i);
		} else if (!jv_is_valid(t)) {
			snprintf(why, sizeof why, "messages[%d]: 'content' must be a string or a list of text parts", i);
		} else if ((!strcmp(role, "system") || !strcmp(role, "developer")) && i == 0) {
			texts = jv_array_append(texts, jv_copy(t));
			has_sys = 1;
		} else if (strcmp(role, want) != 0) {
			snprintf(why, sizeof why,
				 "messages[%d]: role '%s' where '%s' was expected (after an optional system message, "
				 "user and assistant alternate, user first and last)", i, role, want);
		} else {
			texts = jv_array_append(texts, jv_copy(t));
			n_user_asst++;
		}
		jv_free(t);
		jv_free(m);
	}
	jv_free(msgs);
	if (!why[0]) {
		int k = jv_array_length(jv_copy(texts));
		for (int i = 0; i < k; i++) {
			/* texts keeps each string alive while the conversation borrows it */
			jv t = jv_array_get(jv_copy(texts), i);
			const char *s = jv_string_value(t);
			size_t len = (size_t)jv_string_length_bytes(jv_copy(t));
			jv_free(t);
			if (has_sys && i == 0) conv.system = (chat_turn){s, len};
			else chat_conv_add(&conv, s, len);
		}
		if (conv.n % 2 == 0) snprintf(why, sizeof why, "the last message must be the user's");
	}
	if (why[0]) {
		ret = reply_error(c, 400, NULL, "messages", "%s", why);
		goto out;
	}
	/* the request's sampling settings over the server's */
	if (field_num(body, "n", 1, 16, 1, &d, &present, why, sizeof why)) goto bad;
	if (present) nchoice = (int)d;
	if (field_num(body, "max_tokens", 1, 1e9, 1, &d, &present, why, sizeof why)) goto bad;
	if (present) max_new = (long)d, max_asked = 1;
	if (field_num(body, "max_completion_tokens", 1, 1e9, 1, &d, &present, why, sizeof why)) goto bad;
	if (present) max_new = (long)d, max_asked = 1;
	if (field_num(body, "temperature", 0, 2, 0, &d, &present, why, sizeof why)) goto bad;
	if (present) sp.temperature = d;
	if (field_num(body, "top_p", 0, 1, 0, &d, &present, why, sizeof why)) goto bad;
	if (present) sp.top_p = d > 0 ? d : 1e-9;
	if (field_num(body, "top_k", -1, 1e9, 1, &d, &present, why, sizeof why)) goto bad;
	if (present) sp.top_k = d > 0 ? (int)d : 0;
	if (field_num(body, "min_p", 0, 1, 0, &d, &present, why, sizeof why)) goto bad;
	if (present) sp.min_p = d;
	if (field_num(body, "repetition_penalty", 0.01, 100, 0, &d, &present, why, sizeof why)) goto bad;
	if (present) sp.repetition_penalty = d;
	if (field_num(body, "seed", -9.2e18, 9.2e18, 1, &d, &present, why, sizeof why)) goto bad;
	if (present) seed = (uint64_t)(int64_t)d, seeded = 1;
	{
		jv lp = jv_object_get(jv_copy(body), jv_string("logprobs"));
		int k = jv_get_kind(lp);
		jv_free(lp);
		if (k != JV_KIND_TRUE && k != JV_KIND_FALSE && k != JV_KIND_NULL && k != JV_KIND_INVALID) {
			ret = reply_error(c, 400, NULL, "logprobs", "'logprobs' must be a boolean");
			goto out;
		}
		logprobs = k == JV_KIND_TRUE;
		if (field_num(body, "top_logprobs", 0, SAMPLE_MAX_TOP, 1, &d, &present, why, sizeof why)) {
			ret = reply_error(c, 400, NULL, "top_logprobs", "%s", why);
			goto out;
		}
		if (present && !logprobs) { /* OpenAI's words */
			ret = reply_error(c, 400, NULL, "top_logprobs",
					  "The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.");
			goto out;
		}
		if (present) top_logprobs = (int)d;
	}
	{
		jv st = jv_object_get(jv_copy(body), jv_string("stream"));
		jv so = jv_object_get(jv_copy(body), jv_string("stream_options"));
		int k = jv_get_kind(st), ko = jv_get_kind(so);
		stream = k == JV_KIND_TRUE;
		if (ko == JV_KIND_OBJECT) {
			jv iu = jv_object_get(jv_copy(so), jv_string("include_usage"));
			include_usage = jv_get_kind(iu) == JV_KIND_TRUE;
			jv_free(iu);
		}
		jv_free(st), jv_free(so);
		if (k != JV_KIND_TRUE && k != JV_KIND_FALSE && k != JV_KIND_NULL && k != JV_KIND_INVALID) {
			ret = reply_error(c, 400, NULL, "stream", "'stream' must be a boolean");
			goto out;
		}
		if (ko != JV_KIND_OBJECT && ko != JV_KIND_NULL && ko != JV_KIND_INVALID) {
			ret = reply_error(c, 400, NULL, "stream_options", "'stream_options' must be an object");
			goto out;
		}
		stop = jv_object_get(jv_copy(body), jv_string("stop"));
		if (field_stop(stop, &stops, why, sizeof why)) {
			ret = reply_error(c, 400, NULL, "stop", "%s", why);
			goto out;
		}
	}
	int np = 0;
	uint32_t *ids = prompt_ids(in, &ce, &conv, &np, why, sizeof why);
	if (!ids) {
		ret = reply_error(c, 400, strstr(why, "context") ? "context_length_exceeded" : NULL, "messages", "%s", why);
		goto out;
	}
	/* what the context has left: an explicit max_tokens beyond it is an
	 * error, in vLLM's words; the server's default is cut to it */
	if (max_asked && (long)np + max_new > in->ctx) {
		free(ids);
		ret = reply_error(c, 400, "context_length_exceeded", "max_tokens",
				  "This model's maximum context length is %ld tokens. However, you requested %ld tokens (%d in "
				  "the messages, %ld in the completion). Please reduce the length of the messages or completion.",
				  (long)in->ctx, (long)np + max_new, np, max_new);
		goto out;
	}
	if ((long)np + max_new > in->ctx) max_new = in->ctx - np;
	struct req *r = xcalloc(1, sizeof *r);
	r->srv = sv;
	pthread_cond_init(&r->cv, NULL);
	r->n = nchoice;
	r->stream = stream;
	r->include_usage = include_usage;
	r->logprobs = logprobs;
	r->top_logprobs = top_logprobs;
	r->lp_sent = xcalloc((size_t)nchoice, sizeof *r->lp_sent);
	r->seqs = xcalloc((size_t)nchoice, sizeof *r->seqs);
	r->n_prompt = xcalloc((size_t)nchoice, sizeof *r->n_prompt);
	r->n_out = xcalloc((size_t)nchoice, sizeof *r->n_out);
	r->n_reason = xcalloc((size_t)nchoice, sizeof *r->n_reason);
	r->finish = xcalloc((size_t)nchoice, sizeof *r->finish);
	r->answers = jv_array();
	r->stop = stops; /* its strings live in stop_json */
	r->stop_json = stop;
	stop = jv_null();
	r->created = (long)time(NULL);
	pthread_mutex_lock(&sv->mu);
	unsigned long no = ++sv->next;
	pthread_mutex_unlock(&sv->mu);
	snprintf(r->id, sizeof r->id, "chatcmpl-%lx%08lx", (unsigned long)r->created, no);
	if (!seeded) seed = seed_of(in->seed, r->id, 0);
	for (int i = 0; i < nchoice; i++) {
		uint32_t *cp = xmalloc((size_t)np * sizeof *cp);
		memcpy(cp, ids, (size_t)np * sizeof *cp);
		struct infer_seq *s = infer_seq_new(&sv->eng, cp, np, max_new, &sp, seed + (uint64_t)i * 0x9e3779b97f4a7c15ull);
		s->index = i;
		s->ud = r;
		if (logprobs) infer_seq_logprobs(s, top_logprobs);
		s->text.stop = r->stop.n ? &r->stop : NULL;
		s->on_token = serve_on_token;
		s->on_done = serve_on_done;
		r->seqs[i] = s;
		r->n_prompt[i] = np;
	}
	free(ids);
	pthread_mutex_lock(&sv->mu);
	r->refs = nchoice + 1;
	if (stream) {
		jv d0 = jv_object_set(jv_object(), jv_string("role"), jv_string("assistant"));
		d0 = jv_object_set(d0, jv_string("content"), jv_string(""));
		jv chs = jv_array();
		for (int i = 0; i < nchoice; i++) chs = jv_array_append(chs, delta_choice(i, jv_copy(d0), jv_null(), jv_null()));
		jv_free(d0);
		sse(r, chunk_of(r, chs));
	}
	for (int i = 0; i < nchoice; i++) {
		struct infer_seq *s = r->seqs[i];
		if (sv->queue_tail) sv->queue_tail->next = s;
		else sv->queue = s;
		sv->queue_tail = s;
	}
	pthread_cond_signal(&sv->work);
	if (stream) {
		pthread_mutex_unlock(&sv->mu);
		struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, r,
									      stream_free);
		MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		ret = MHD_queue_response(c, 200, resp);
		MHD_destroy_response(resp);
		goto out;
	}
	/* not streamed: this connection's thread waits for the whole answer */
	while (!r->finished) pthread_cond_wait(&r->cv, &sv->mu);
	jbuf b = r->out;
	r->out = (jbuf){0};
	req_unref(r);
	pthread_mutex_unlock(&sv->mu);
	ret = reply(c, 200, "application/json", b.p, b.n);
	jbuf_free(&b);
	goto out;
bad:
	ret = reply_error(c, 400, NULL, NULL, "%s", why);
out:
	jv_free(texts);
	jv_free(stop);
	jv_free(body);
	chat_conv_free(&conv);
	chat_encoder_free(&ce);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_n, void **state)
{
	struct server *sv = cls;
	int post = !strcmp(method, "POST");
	int chat = !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions");
	if (!*state) {
		struct conn *k = xcalloc(1, sizeof *k);
		k->start = now_s();
		*state = k;
		if (post) {
			const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
			if (cl && strtoull(cl, NULL, 10) > sv->max_body) k->too_big = 1;
		}
		if (!k->too_big) return MHD_YES;
	}
	struct conn *k = *state;
	/* a body trickled in (a byte a second keeps an idle timeout at bay):
	 * the connection is closed once the request has taken too long */
	if (*upload_n && now_s() - k->start > sv->request_timeout) return MHD_NO;
	if (strcmp(url, "/health") && !authorized(sv, c)) {
		if (*upload_n) { /* the body is read and dropped: the answer goes after it */
			*upload_n = 0;
			return MHD_YES;
		}
		const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
		return reply_error(c, 401, "invalid_api_key", NULL, "%s",
				   h ? "Incorrect API key provided."
				     : "You didn't provide an API key. You need to provide your API key in an Authorization "
				       "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
	}
	if (*upload_n) {
		/* libmicrohttpd takes a response only before the body or after
		 * it: an oversized chunked body is read to its end and dropped
		 * (up to a limit, past which the connection is closed) */
		k->received += *upload_n;
		if (k->received > sv->max_body) k->too_big = 1;
		if (!k->too_big) jbuf_put(&k->body, upload, *upload_n);
		*upload_n = 0;
		if (k->too_big && k->received / 16 > sv->max_body) return MHD_NO;
		return MHD_YES;
	}
	if (k->too_big)
		return reply_error(c, 413, "request_too_large", NULL, "the request body is over %zu bytes (--max-body)",
				   sv->max_body);
	if (chat) {
		if (!post) return reply_error(c, 405, NULL, NULL, "use POST for %s", url);
		return chat_completion(sv, c, k->body.p ? k->body.p : "", k->body.n);
	}
	if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) {
		if (!strcmp(url, "/v1/models") || !strcmp(url, "/models")) {
			jv l = jv_object_set(jv_object(), jv_string("object"), jv_string("list"));
			return reply_json(c, jv_object_set(l, jv_string("data"), jv_array_append(jv_array(), model_json(sv))));
		}
		const char *id = !strncmp(url, "/v1/models/", 11) ? url + 11 : !strncmp(url, "/models/", 8) ? url + 8 : NULL;
		if (id && !strcmp(id, sv->in->name)) return reply_json(c, model_json(sv));
		if (id) return reply_error(c, 404, "model_not_found", "model", "no model '%s' here", id);
		if (!strcmp(url, "/health")) return reply_json(c, jv_object_set(jv_object(), jv_string("status"), jv_string("ok")));
	}
	return reply_error(c, 404, NULL, NULL, "no route %s %s", method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why)
{
	struct conn *k = *state;
	if (!k) return;
	jbuf_free(&k->body);
	free(k);
	*state = NULL;
}

int run_serve(const struct opts *o, struct infer *in)
{
	struct server sv = {.in = in, .max_body = o->max_body, .verbose = !o->quiet,
			    .request_timeout = (double)o->request_timeout};
	char *key = NULL;
	if (chatapi_key(o->api_key_file, &key) < 0) cli_die(EXIT_USAGE, "%s: cannot read the API key file", o->api_key_file);
	if (o->api_key_file && !key) cli_die(EXIT_USAGE, "%s: the API key file is empty", o->api_key_file);
	if (key) sv.auth = xasprintf("Bearer %s", key);
	chatapi_key_free(key);
	if (!sv.auth && strcmp(o->host, "127.0.0.1") && strncmp(o->host, "127.", 4))
		cli_warn("--host %s: serving beyond this machine without a key: anyone who reaches the port can use the "
			 "model (--api-key-file F, or DS_API_KEY)", o->host);
	srv_of = &sv;
	pthread_mutex_init(&sv.mu, NULL);
	pthread_cond_init(&sv.work, NULL);
	engine_init(&sv.eng, in, o->batch);
	/* a descriptor a connection: the soft limit (often 1024) raised as far
	 * as --max-connections needs and the hard limit allows */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)o->max_connections + 64) {
		rlim_t want = (rlim_t)o->max_connections + 64;
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
	if (inet_pton(AF_INET, o->host, &addr.sin_addr) != 1)
		cli_die(EXIT_USAGE, "--host %s: not an IPv4 address", o->host);
	/* the threads started below keep SIGINT/SIGTERM blocked: this one waits for them */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN); /* a client gone is an error on its socket, not the end of the server */
	pthread_t th;
	if (pthread_create(&th, NULL, engine_main, &sv)) cli_die(EXIT_RUNTIME, "cannot start the engine thread");
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)o->port, NULL, NULL,
		on_request, &sv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout, MHD_OPTION_END);
	if (!d) cli_die(EXIT_RUNTIME, "cannot listen on %s:%d: %m", o->host, o->port);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	int port = di ? di->port : o->port;
	if (o->port_file) {
		char *tmp = xasprintf("%s.tmp", o->port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) || rename(tmp, o->port_file))
			cli_die(EXIT_RUNTIME, "%s: %m", o->port_file);
		free(tmp);
	}
	if (!o->quiet)
		fprintf(stderr, "%s: serving %s on http://%s:%d/v1 (batch of %d; Ctrl-C stops)\n", cli_prog, in->name,
			o->host, port, o->batch);
	int sig = 0;
	sigwait(&sigs, &sig);
	if (!o->quiet) fprintf(stderr, "%s: stopped by signal %d\n", cli_prog, sig);
	/* Connections may be waiting on the engine: end the process here
	 * rather than unwind every thread. */
	cli_exit(0);
}

