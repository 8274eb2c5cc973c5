/* ds-teacher — ask a teacher model for a chain of thought and an answer to
 * each problem, over the OpenAI chat-completions protocol.
 *
 * One thread drives many requests at once through libcurl's multi
 * interface. Input is read only as fast as requests go out, so memory stays
 * bounded whatever the input size. Every (id, sample) pair ends either as a
 * line in the output or as a line in --failed: nothing goes missing
 * silently, and a rerun with the same -o finishes what is left.
 *
 * With --guided the input is ds-judge's rejected records: each problem is
 * asked again with the reference answer in the prompt, and the new sample
 * keeps the failed one under teacher.previous. Guided samples are numbered
 * 1000 * attempt + i, so the attempt travels with the record through
 * ds-judge and back, (id, sample) stays unique beside the ordinary samples
 * (numbered below 1000), and the output file says which attempts are done.
 */
#include "../lib/chatapi.h"
#include "../lib/check.h"
#include "../lib/cli.h"
#include "../lib/clock.h"
#include "../lib/http.h"
#include "../lib/idset.h"
#include "../lib/json.h"
#include "../lib/jsonl.h"
#include "../lib/mathans.h"
#include "../lib/progress.h"
#include "../lib/resume.h"
#include "../lib/soft.h"

#include <curl/curl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-teacher [-q] [--skip-bad] [--base-url URL]... [--model M] [--api-key-file F]\n"
	"                  [-c N] [-n K] [--max-tokens N] [--temperature T] [--template FILE]\n"
	"                  [--stream] [--timeout S] [--retries N] [--rpm N] [--tpm N] [--deadline S]\n"
	"                  [--price FILE] [--shard I/N] [--ordered] [--guided [--max-attempts K]]\n"
	"                  [--offline] [--logprobs K]\n"
	"                  [-o OUT] [--failed FILE] [--stats FILE] [FILE...]\n";

static const char help[] =
	"Ask a teacher model (OpenAI-compatible API) to answer each problem record\n"
	"with its chain of thought; write each record back with a teacher object.\n"
	"\n"
	"      --base-url URL    the API (default https://api.deepseek.com); give it\n"
	"                        several times to spread requests over several servers\n"
	"      --model M         model name (default deepseek-reasoner)\n"
	"      --api-key-file F  read the API key from F (else DS_API_KEY,\n"
	"                        OPENAI_API_KEY or DEEPSEEK_API_KEY)\n"
	"  -c, --concurrency N   requests in flight (default 16)\n"
	"  -n, --samples K       answers per problem (default 1)\n"
	"      --max-tokens N    cap on generated tokens (default: the server's)\n"
	"      --temperature T   sampling temperature (default 0.6, as R1 recommends)\n"
	"      --stream          ask for server-sent events (the answer as it is made)\n"
	"      --logprobs K      keep each token's log-probability and its K most\n"
	"                        probable alternatives (1..20) as teacher.logprobs\n"
	"      --template FILE   prompt template for every domain (default:\n"
	"                        share/prompts/DOMAIN.txt, else default.txt; with\n"
	"                        --guided, share/prompts/guided.txt)\n"
	"      --guided          ask again for ds-judge's wrong answers, giving the\n"
	"                        reference answer; the failed one goes to teacher.previous\n"
	"      --max-attempts K  at most K guided attempts per problem (default 2)\n"
	"      --offline         no API: the dataset's own solution is the teacher's\n"
	"                        answer (its thought, or the solution, as reasoning)\n"
	"      --timeout S       per-request time limit in seconds (default 1800)\n"
	"      --retries N       tries per request (default 6)\n"
	"      --rpm N           at most N requests started per minute\n"
	"      --tpm N           at most about N tokens (prompt + completion) a minute\n"
	"      --deadline S      stop sending after S seconds; what is unsent fails\n"
	"      --price FILE      USD per million tokens by model (default:\n"
	"                        share/prices/deepseek.json), for the cost in the summary\n"
	"      --shard I/N       keep only the problems whose id hashes to I of N\n"
	"      --ordered         write in input order (default: as answers complete)\n"
	"  -o, --output OUT      append to OUT; a rerun skips (id, sample) pairs there\n"
	"      --failed FILE     append requests that failed for good, with the error\n"
	"      --stats FILE      write the run's statistics there as JSON\n"
	"      --skip-bad        count and skip malformed input lines\n"
	"  -q, --quiet           no summary on stderr\n"
	"  -h, --help            show this help and exit\n"
	"  -V, --version         show the version and exit\n";

struct server {
	char *url;          /* .../chat/completions */
	int inflight, fails_in_row;
	double benched_until;
	long requests, ok, errors;
	long lp_ok;         /* replies that carried the logprobs asked for */
};

struct opts {
	struct server *servers;
	int n_servers;
	const char *model, *template_file, *output, *failed, *stats;
	int concurrency, samples, retries, ordered, skip_bad, quiet, stream;
	int guided, max_attempts, offline;
	int logprobs;       /* --logprobs K; 0: not asked */
	long max_tokens;
	double temperature, timeout_s, rpm, tpm, deadline_s;
	const char *price_file;
	long shard_i, shard_n;
	char *key; /* owned; never printed */
};

/* ---- prompts ------------------------------------------------------------ */

struct templates {
	char *fixed;          /* --template, or NULL */
	char *math, *code, *other;
	char *guided;         /* --guided */
};

/* What a template's placeholders become (all borrowed; NULL is ""). */
struct fill {
	const char *problem, *starter, *answer, *solution;
};

static char *share_text(const char *rel)
{
	char *path = cli_share_path(rel);
	char *t = path ? cli_read_file(path) : NULL;
	free(path);
	if (!t) cli_die(EXIT_RUNTIME, "share/%s not found (set DS_SHARE)", rel);
	return t;
}

/* Append s[0..n) to a growing string. */
static void put(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) *out = xrealloc(*out, *cap = (*len + n + 1) * 2 + 64);
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
}

/* The template with {problem}, {answer} and {solution} filled in, and the
 * {starter_code} line. Only the template is scanned, never what is put in,
 * so a problem that happens to hold "{answer}" stays as it is. Returns
 * owned. */
static char *render(const char *tpl, const struct fill *f)
{
	static const char *const names[] = {"{problem}", "{answer}", "{solution}"};
	const char *values[] = {f->problem, f->answer, f->solution};
	const char *starter = f->starter;
	char *out = NULL;
	size_t len = 0, cap = 0;
	put(&out, &len, &cap, "", 0);
	for (const char *p = tpl; *p;) {
		const char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);
		if (ll == 14 && !strncmp(p, "{starter_code}", 14)) {
			if (starter && *starter) {
				const char *intro = "Use this starter code:\n```python\n";
				put(&out, &len, &cap, intro, strlen(intro));
				put(&out, &len, &cap, starter, strlen(starter));
				put(&out, &len, &cap, "\n```\n", 5);
			}
		} else {
			for (const char *q = p; q < p + ll;) {
				const char *ph = NULL;
				int which = 0;
				for (int k = 0; k < 3; k++) {
					const char *h = strstr(q, names[k]);
					if (h && h < p + ll && (!ph || h < ph)) ph = h, which = k;
				}
				if (!ph) {
					put(&out, &len, &cap, q, (size_t)(p + ll - q));
					break;
				}
				put(&out, &len, &cap, q, (size_t)(ph - q));
				const char *v = values[which] ? values[which] : "";
				put(&out, &len, &cap, v, strlen(v));
				q = ph + strlen(names[which]);
			}
			if (nl) put(&out, &len, &cap, "\n", 1);
		}
		p = nl ? nl + 1 : p + ll;
	}
	while (len && out[len - 1] == '\n') out[--len] = '\0';
	return out;
}

/* ---- the answer ---------------------------------------------------------- */

/* Split a reply message into chain of thought and answer: reasoning_content
 * when the server has a reasoning parser, else an inline <think>...</think>
 * (or only the closing tag, when the prompt forced the opening one).
 * Borrows msg; returns {reasoning, content} as owned jv strings. */
static void split_think(jv msg, jv *reasoning, jv *content)
{
	const char *rc = jsonl_get_string(msg, "reasoning_content");
	if (!rc) rc = jsonl_get_string(msg, "reasoning"); /* some servers name it so */
	const char *c = jsonl_get_string(msg, "content");
	if (!c) c = "";
	if (rc && *rc) {
		*reasoning = jv_string(rc);
		*content = jv_string(c);
		return;
	}
	const char *close = strstr(c, "</think>");
	if (!close) {
		*reasoning = jv_string("");
		*content = jv_string(c);
		return;
	}
	const char *start = c;
	while (*start == ' ' || *start == '\n' || *start == '\r' || *start == '\t') start++;
	if (!strncmp(start, "<think>", 7)) start += 7;
	const char *end = close;
	while (start < end && strchr(" \t\r\n", *start)) start++;
	while (end > start && strchr(" \t\r\n", end[-1])) end--;
	const char *after = close + 8;
	while (*after && strchr(" \t\r\n", *after)) after++;
	*reasoning = jv_string_sized(start, (int)(end - start));
	*content = jv_string(after);
}

/* ---- jobs --------------------------------------------------------------- */

struct job {
	jv rec;            /* owned: the input record */
	char *key;         /* resume key (id, sample) */
	char *ref;         /* --guided: the reference answer (owned) */
	long seq;          /* input order, for --ordered */
	int sample, attempts;
	double ready_at;   /* not before this time (backoff) */
	double started;
	struct server *srv;
	CURL *easy;
	struct curl_slist *hdr;
	char *body;        /* request body */
	char *resp;        /* response bytes */
	size_t resp_len, resp_cap;
	long retry_after_s;
	char err[CURL_ERROR_SIZE];
	double tpm_reserved; /* tokens held back for --tpm while in flight */
	jv result;         /* the record to write, once done */
	int result_ok;     /* 1: to the output; 0: to --failed */
	struct job *next;  /* in the waiting list */
};

struct stats {
	long requests, ok, failed, retries_conn, retries_429, retries_5xx, retries_bad;
	double prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens;
	double *lat;
	long n_lat, cap_lat;
};

struct run {
	struct opts *o;
	struct templates tpl;
	CURLM *multi;
	FILE *out, *failed;
	idset *done;
	struct stats st;
	struct job *waiting, *waiting_tail; /* FIFO: to start, or to retry at ready_at */
	int inflight, pending; /* pending: read, not yet written */
	long next_seq, next_write;
	struct job **reorder; /* --ordered: finished jobs by seq */
	long reorder_cap;
	double rpm_next;
	double tpm_bucket, tpm_at; /* tokens that may still be spent, and when it was topped up */
	double deadline;           /* monotonic time after which nothing new is sent, or 0 */
	jv prices;                 /* {model prefix: {input_cache_hit, input_cache_miss, output}} */
	double cost;               /* USD, from prices and usage */
	int cost_known;
	int stop;             /* a fatal answer (401, 402...): finish, no new requests */
	int status;
	progress pg;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct job *j = ud;
	size_t k = size * nmemb;
	if (j->resp_len + k + 1 > j->resp_cap) j->resp = xrealloc(j->resp, j->resp_cap = (j->resp_len + k + 1) * 2);
	memcpy(j->resp + j->resp_len, p, k);
	j->resp_len += k;
	j->resp[j->resp_len] = '\0';
	return k;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct job *j = ud;
	size_t k = size * nmemb;
	if (k > 12 && !strncasecmp(p, "retry-after:", 12)) j->retry_after_s = atol(p + 12);
	return k;
}

static struct server *pick_server(struct run *r)
{
	struct server *best = NULL;
	double t = now_s();
	for (int i = 0; i < r->o->n_servers; i++) {
		struct server *s = &r->o->servers[i];
		if (s->benched_until > t) continue;
		if (!best || s->inflight < best->inflight) best = s;
	}
	if (!best) { /* all set aside: take the one back soonest */
		best = &r->o->servers[0];
		for (int i = 1; i < r->o->n_servers; i++)
			if (r->o->servers[i].benched_until < best->benched_until) best = &r->o->servers[i];
	}
	return best;
}

static void finish(struct run *r, struct job *j, jv rec, int ok);
static jv answered(const struct run *r, const struct job *j, jv teacher);

/* The last paragraph of s (after its last blank line), trimmed. Returns
 * owned. */
static char *last_paragraph(const char *s)
{
	size_t n = strlen(s);
	while (n && strchr(" \t\r\n", s[n - 1])) n--;
	size_t b = n;
	while (b >= 2 && !(s[b - 1] == '\n' && (s[b - 2] == '\n' || s[b - 2] == '\r'))) b--;
	if (b < 2) b = 0;
	while (b < n && strchr(" \t\r\n", s[b])) b++;
	char *p = xmalloc(n - b + 1);
	memcpy(p, s + b, n - b);
	p[n - b] = '\0';
	return p;
}

/* --offline: the dataset's own chain of thought as the teacher's answer,
 * for datasets that carry one (NuminaMath-CoT's solutions,
 * long_form_thought_data_5k's thoughts). A thought and a solution give
 * reasoning and content; a solution alone is the reasoning, and the
 * content states the reference answer boxed (or repeats the solution's
 * last paragraph when there is none). */
static void offline_answer(struct run *r, struct job *j)
{
	jv meta = jv_object_get(jv_copy(j->rec), jv_string("meta"));
	const char *thought = jv_get_kind(meta) == JV_KIND_OBJECT ? jsonl_get_string(meta, "thought") : NULL;
	const char *solution = jsonl_get_string(j->rec, "solution");
	const char *answer = jsonl_get_string(j->rec, "answer");
	r->st.requests++;
	if (!solution || !*solution) {
		jv_free(meta);
		r->st.failed++;
		jv err = jv_object_set(jv_object(), jv_string("error"),
				       jv_string("--offline: the record has no \"solution\" to take as the answer"));
		err = jv_object_set(err, jv_string("attempts"), jv_number(0));
		err = jv_object_set(err, jv_string("sample"), jv_number(j->sample));
		finish(r, j, jv_object_set(jv_copy(j->rec), jv_string("teacher_error"), err), 0);
		return;
	}
	jv reasoning, content;
	if (thought && *thought) {
		reasoning = jv_string(thought);
		content = jv_string(solution);
	} else {
		reasoning = jv_string(solution);
		if (answer && *answer) {
			content = jv_string_fmt("The final answer is $\\boxed{%s}$.", answer);
		} else {
			char *last = last_paragraph(solution);
			content = jv_string(last);
			free(last);
		}
	}
	jv_free(meta);
	jv use = jv_object_set(jv_object(), jv_string("prompt_tokens"), jv_number(0));
	use = jv_object_set(use, jv_string("completion_tokens"), jv_number(0));
	use = jv_object_set(use, jv_string("reasoning_tokens"), jv_number(0));
	use = jv_object_set(use, jv_string("cached_tokens"), jv_number(0));
	jv t = jv_object_set(jv_object(), jv_string("model"), jv_string("offline"));
	t = jv_object_set(t, jv_string("reasoning"), reasoning);
	t = jv_object_set(t, jv_string("content"), content);
	t = jv_object_set(t, jv_string("finish_reason"), jv_string("stop"));
	t = jv_object_set(t, jv_string("sample"), jv_number(j->sample));
	t = jv_object_set(t, jv_string("usage"), use);
	t = jv_object_set(t, jv_string("latency_ms"), jv_number(0));
	t = jv_object_set(t, jv_string("offline"), jv_true());
	r->st.ok++;
	finish(r, j, answered(r, j, t), 1);
}

static void start(struct run *r, struct job *j)
{
	const struct opts *o = r->o;
	if (o->offline) {
		offline_answer(r, j);
		return;
	}
	if (!j->body) {
		const char *domain = jsonl_get_string(j->rec, "domain");
		const char *tpl = r->tpl.fixed ? r->tpl.fixed
				  : o->guided ? r->tpl.guided
				  : domain && !strcmp(domain, "math") ? r->tpl.math
				  : domain && !strcmp(domain, "code") ? r->tpl.code : r->tpl.other;
		struct fill f = {.problem = jsonl_get_string(j->rec, "problem"),
				 .starter = jsonl_get_string(j->rec, "starter_code"),
				 .answer = j->ref ? j->ref : jsonl_get_string(j->rec, "answer"),
				 .solution = jsonl_get_string(j->rec, "solution")};
		char *prompt = render(tpl, &f);
		jv msg = jv_object_set(jv_object_set(jv_object(), jv_string("role"), jv_string("user")),
				       jv_string("content"), jv_string(prompt));
		free(prompt);
		jv req = jv_object_set(jv_object(), jv_string("model"), jv_string(o->model));
		req = jv_object_set(req, jv_string("messages"), jv_array_append(jv_array(), msg));
		req = jv_object_set(req, jv_string("temperature"), jv_number(o->temperature));
		if (o->max_tokens > 0) req = jv_object_set(req, jv_string("max_tokens"), jv_number((double)o->max_tokens));
		req = jv_object_set(req, jv_string("stream"), jv_bool(o->stream));
		if (o->logprobs) {
			req = jv_object_set(req, jv_string("logprobs"), jv_true());
			req = jv_object_set(req, jv_string("top_logprobs"), jv_number(o->logprobs));
		}
		if (o->stream)
			req = jv_object_set(req, jv_string("stream_options"),
					    jv_object_set(jv_object(), jv_string("include_usage"), jv_true()));
		jbuf b = {0};
		json_dump(&b, req);
		jv_free(req);
		j->body = xmalloc(b.n + 1);
		memcpy(j->body, b.p, b.n);
		j->body[b.n] = '\0';
		jbuf_free(&b);
	}
	/* --tpm: reserve what an answer has cost so far on average (a guess
	 * for the first), settled against the real usage when it comes. */
	j->tpm_reserved = r->st.ok > 0 ? (r->st.prompt_tokens + r->st.completion_tokens) / (double)r->st.ok
				       : (double)strlen(j->body) / 4;
	r->tpm_bucket -= j->tpm_reserved;
	j->srv = pick_server(r);
	j->srv->inflight++;
	j->srv->requests++;
	j->resp_len = 0;
	j->retry_after_s = -1;
	j->err[0] = '\0';
	j->attempts++;
	j->started = now_s();
	j->easy = curl_easy_init();
	if (!j->easy) cli_die(EXIT_RUNTIME, "cannot start libcurl");
	j->hdr = curl_slist_append(NULL, "Content-Type: application/json");
	if (o->key) {
		size_t n = strlen(o->key) + 32;
		char *h = xmalloc(n);
		snprintf(h, n, "Authorization: Bearer %s", o->key);
		j->hdr = curl_slist_append(j->hdr, h);
		memset(h, 0, n);
		free(h);
	}
	curl_easy_setopt(j->easy, CURLOPT_URL, j->srv->url);
	curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->hdr);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "ds-teacher/" DS_VERSION);
	curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(j->easy, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->err);
	curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
	curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, (long)(o->timeout_s * 1000));
	curl_easy_setopt(j->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_multi_add_handle(r->multi, j->easy);
	r->inflight++;
	r->st.requests++;
}

/* Write a finished job's record: with teacher to the output, with
 * teacher_error to --failed (or, without it, named on stderr: never lost
 * silently). Consumes j. */
static void emit(struct run *r, struct job *j)
{
	FILE *f = j->result_ok ? r->out : r->failed;
	if (!f) {
		jv e = jv_object_get(jv_copy(j->result), jv_string("teacher_error"));
		cli_warn("%s: sample %d failed: %s", jsonl_get_string(j->rec, "id"), j->sample,
			 jsonl_get_string(e, "error") ? jsonl_get_string(e, "error") : "?");
		jv_free(e);
		jv_free(j->result);
	} else {
		if (jsonl_write(f, j->result)) cli_die(EXIT_RUNTIME, "write error: %m");
		fflush(f); /* a kill loses nothing written */
	}
	j->result = jv_invalid();
	jv_free(j->rec);
	free(j->key);
	free(j->ref);
	free(j->body);
	free(j->resp);
	free(j);
}

/* A job is done: write it now, or (--ordered) once every earlier one is. */
static void finish(struct run *r, struct job *j, jv rec, int ok)
{
	r->pending--;
	j->result = rec;
	j->result_ok = ok;
	if (!r->o->ordered) {
		emit(r, j);
		return;
	}
	long slot = j->seq - r->next_write;
	if (slot >= r->reorder_cap) {
		long cap = r->reorder_cap ? r->reorder_cap : 64;
		while (cap <= slot) cap *= 2;
		r->reorder = xrealloc(r->reorder, sizeof *r->reorder * (size_t)cap);
		memset(r->reorder + r->reorder_cap, 0, sizeof *r->reorder * (size_t)(cap - r->reorder_cap));
		r->reorder_cap = cap;
	}
	r->reorder[slot] = j;
	while (r->reorder_cap > 0 && r->reorder[0]) {
		emit(r, r->reorder[0]);
		memmove(r->reorder, r->reorder + 1, sizeof *r->reorder * (size_t)(r->reorder_cap - 1));
		r->reorder[r->reorder_cap - 1] = NULL;
		r->next_write++;
	}
}

static double num_at(jv obj, const char *a, const char *b)
{
	jv v = jv_object_get(jv_copy(obj), jv_string(a));
	if (b && jv_get_kind(v) == JV_KIND_OBJECT) v = jv_object_get(v, jv_string(b));
	double d = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : 0;
	jv_free(v);
	return d;
}

/* What to do with a reply: 0 success, 1 retry, 2 fail this request for
 * good, 3 stop the whole run (the server says no request will succeed). */
static double num_at(jv obj, const char *a, const char *b);

enum cause { C_CONN, C_429, C_5XX, C_BAD };

/* The price of one answer: the longest model-name prefix in the table. */
static void add_cost(struct run *r, const char *model, double pt, double ct, double cached)
{
	if (jv_get_kind(r->prices) != JV_KIND_OBJECT) return;
	jv best = jv_invalid();
	size_t best_len = 0;
	jv_object_foreach(r->prices, k, v) {
		size_t n = (size_t)jv_string_length_bytes(jv_copy(k));
		if (jv_get_kind(v) == JV_KIND_OBJECT && n > best_len && !strncmp(model, jv_string_value(k), n)) {
			jv_free(best);
			best = jv_copy(v);
			best_len = n;
		}
		jv_free(k);
		jv_free(v);
	}
	if (!jv_is_valid(best)) return;
	double hit = num_at(best, "input_cache_hit", NULL), miss = num_at(best, "input_cache_miss", NULL);
	double out = num_at(best, "output", NULL);
	r->cost += (cached * hit + (pt - cached) * miss + ct * out) / 1e6;
	r->cost_known = 1;
	jv_free(best);
}

/* The body of a streamed reply (SSE: "data: {chunk}" lines, ": keep-alive"
 * comments, "data: [DONE]" at the end) put back together as one
 * non-streamed reply, the chunks' logprobs.content entries concatenated in
 * stream order (null when no chunk had any). Returns owned; invalid when
 * the stream was cut. */
static jv unstream(const char *text, size_t n)
{
	jv reasoning = jv_string(""), content = jv_string(""), model = jv_null(), finish = jv_null();
	jv use = jv_null(), lps = jv_array();
	int done = 0, any_lp = 0;
	for (const char *p = text, *end = text + n; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (le - p >= 6 && !strncmp(p, "data: ", 6)) {
			const char *d = p + 6;
			size_t dl = (size_t)(le - d);
			while (dl && (d[dl - 1] == '\r')) dl--;
			if (dl == 6 && !strncmp(d, "[DONE]", 6)) {
				done = 1;
			} else {
				size_t at;
				const char *why;
				jv c = json_parse(d, dl, &at, &why);
				if (jv_get_kind(c) == JV_KIND_OBJECT) {
					const char *m = jsonl_get_string(c, "model");
					if (m) jv_free(model), model = jv_string(m);
					jv u = jv_object_get(jv_copy(c), jv_string("usage"));
					if (jv_get_kind(u) == JV_KIND_OBJECT) jv_free(use), use = u;
					else jv_free(u);
					jv ch = jv_object_get(jv_copy(c), jv_string("choices"));
					jv c0 = jv_get_kind(ch) == JV_KIND_ARRAY && jv_array_length(jv_copy(ch)) > 0
							? jv_array_get(jv_copy(ch), 0) : jv_invalid();
					jv delta = jv_get_kind(c0) == JV_KIND_OBJECT ? jv_object_get(jv_copy(c0), jv_string("delta")) : jv_invalid();
					const char *rd = jv_get_kind(delta) == JV_KIND_OBJECT ? jsonl_get_string(delta, "reasoning_content") : NULL;
					const char *cd = jv_get_kind(delta) == JV_KIND_OBJECT ? jsonl_get_string(delta, "content") : NULL;
					if (rd) reasoning = jv_string_append_str(reasoning, rd);
					if (cd) content = jv_string_append_str(content, cd);
					const char *fr = jv_get_kind(c0) == JV_KIND_OBJECT ? jsonl_get_string(c0, "finish_reason") : NULL;
					if (fr) jv_free(finish), finish = jv_string(fr);
					jv lp = jv_get_kind(c0) == JV_KIND_OBJECT ? jv_object_get(jv_copy(c0), jv_string("logprobs")) : jv_invalid();
					jv lc = jv_get_kind(lp) == JV_KIND_OBJECT ? jv_object_get(jv_copy(lp), jv_string("content")) : jv_invalid();
					if (jv_get_kind(lc) == JV_KIND_ARRAY) {
						any_lp = 1;
						jv_array_foreach(lc, i, e) lps = jv_array_append(lps, e);
					}
					jv_free(lc), jv_free(lp);
					jv_free(delta), jv_free(c0), jv_free(ch);
				}
				jv_free(c);
			}
		}
		p = nl ? nl + 1 : end;
	}
	if (!done) {
		jv_free(reasoning), jv_free(content), jv_free(model), jv_free(finish), jv_free(use), jv_free(lps);
		return jv_invalid();
	}
	jv msg = jv_object_set(jv_object(), jv_string("role"), jv_string("assistant"));
	msg = jv_object_set(msg, jv_string("reasoning_content"), reasoning);
	msg = jv_object_set(msg, jv_string("content"), content);
	jv c0 = jv_object_set(jv_object_set(jv_object(), jv_string("message"), msg), jv_string("finish_reason"), finish);
	if (any_lp) c0 = jv_object_set(c0, jv_string("logprobs"), jv_object_set(jv_object(), jv_string("content"), lps));
	else jv_free(lps);
	jv out = jv_object_set(jv_object(), jv_string("choices"), jv_array_append(jv_array(), c0));
	out = jv_object_set(out, jv_string("model"), model);
	return jv_object_set(out, jv_string("usage"), use);
}

/* ---- log-probabilities (--logprobs K) ------------------------------------ */

/* One entry of logprobs.content (or of its top_logprobs), made compact:
 * *tok the token as the contract writes it (its bytes as a string when
 * they are UTF-8, else an array of the byte values) and *lp its
 * log-probability rounded to 6 significant digits; its bytes are appended
 * to *raw when raw is not NULL. The bytes are the entry's "bytes" when not
 * null, else the UTF-8 of "token" (OpenAI: "Can be null if there is no
 * bytes representation"). Borrows e; *tok and *lp are owned. Returns 0, or
 * -1 with why filled when the entry is not one. */
static int lp_entry(jv e, jv *tok, jv *lp, jbuf *raw, jbuf *scratch, char *why, size_t wl)
{
	if (jv_get_kind(e) != JV_KIND_OBJECT) {
		snprintf(why, wl, "an entry is not an object");
		return -1;
	}
	jv l = jv_object_get(jv_copy(e), jv_string("logprob"));
	jv by = jv_object_get(jv_copy(e), jv_string("bytes"));
	int rc = -1;
	scratch->n = 0;
	if (jv_get_kind(l) != JV_KIND_NUMBER) {
		snprintf(why, wl, "an entry has no \"logprob\" number");
		goto out;
	}
	if (jv_get_kind(by) == JV_KIND_ARRAY) {
		int bad = 0;
		jv_array_foreach(by, i, x) {
			double d = jv_get_kind(x) == JV_KIND_NUMBER ? jv_number_value(x) : -1;
			if (!(d >= 0 && d <= 255 && d == floor(d))) bad = 1;
			char c = (char)(unsigned char)(bad ? 0 : d);
			jbuf_put(scratch, &c, 1);
			jv_free(x);
		}
		if (bad) {
			snprintf(why, wl, "an entry's \"bytes\" are not all integers 0..255");
			goto out;
		}
	} else {
		const char *t = jv_get_kind(by) == JV_KIND_NULL || jv_get_kind(by) == JV_KIND_INVALID
					? jsonl_get_string(e, "token") : NULL;
		if (!t) {
			snprintf(why, wl, "an entry has neither \"bytes\" nor a \"token\" string");
			goto out;
		}
		jv ts = jv_object_get(jv_copy(e), jv_string("token"));
		jbuf_put(scratch, t, (size_t)jv_string_length_bytes(ts));
	}
	*tok = soft_token_json(scratch->p ? scratch->p : "", scratch->n);
	/* vLLM sends max(logprob, -9999) for -inf; so does the contract. */
	double d = jv_number_value(l);
	*lp = soft_logprob_json(d > -9999 ? d : -9999);
	if (raw) jbuf_put(raw, scratch->p ? scratch->p : "", scratch->n);
	rc = 0;
out:
	jv_free(l);
	jv_free(by);
	return rc;
}

enum lp_fault { LP_OK, LP_NONE, LP_SHORT, LP_BAD };

/* teacher.logprobs in the contract's compact form from a choice's
 * logprobs ({"content": [entries]}; borrowed): the K first top_logprobs of
 * each token. *raw gets the tokens' bytes joined. Returns owned, or
 * invalid with why filled and *fault saying what was wrong. */
static jv lp_compact(jv logprobs, int k, jbuf *raw, enum lp_fault *fault, char *why, size_t wl)
{
	jv content = jv_get_kind(logprobs) == JV_KIND_OBJECT ? jv_object_get(jv_copy(logprobs), jv_string("content"))
							  : jv_invalid();
	jv toks = jv_array(), lps = jv_array(), tops = jv_array(), out = jv_invalid();
	jbuf scratch = {0};
	char what[200];
	*fault = LP_NONE;
	if (jv_get_kind(content) != JV_KIND_ARRAY) {
		snprintf(why, wl, "no logprobs");
		goto out;
	}
	*fault = LP_BAD;
	int n = jv_array_length(jv_copy(content));
	for (int i = 0; i < n; i++) {
		jv e = jv_array_get(jv_copy(content), i);
		jv tok, lp;
		if (lp_entry(e, &tok, &lp, raw, &scratch, what, sizeof what)) {
			snprintf(why, wl, "logprobs token %d: %s", i, what);
			jv_free(e);
			goto out;
		}
		toks = jv_array_append(toks, tok);
		lps = jv_array_append(lps, lp);
		jv top = jv_get_kind(e) == JV_KIND_OBJECT ? jv_object_get(jv_copy(e), jv_string("top_logprobs")) : jv_invalid();
		int m = jv_get_kind(top) == JV_KIND_ARRAY ? jv_array_length(jv_copy(top)) : 0;
		if (m < k) {
			snprintf(why, wl, "%d top_logprobs (at token %d) where %d were asked", m, i, k);
			*fault = LP_SHORT;
			jv_free(top);
			jv_free(e);
			goto out;
		}
		jv flat = jv_array_sized(2 * k);
		for (int a = 0; a < k; a++) {
			jv alt = jv_array_get(jv_copy(top), a);
			int bad = lp_entry(alt, &tok, &lp, NULL, &scratch, what, sizeof what);
			jv_free(alt);
			if (bad) {
				snprintf(why, wl, "logprobs token %d, alternative %d: %s", i, a, what);
				jv_free(flat);
				jv_free(top);
				jv_free(e);
				goto out;
			}
			flat = jv_array_append(jv_array_append(flat, tok), lp);
		}
		tops = jv_array_append(tops, flat);
		jv_free(top);
		jv_free(e);
	}
	out = jv_object_set(jv_object(), jv_string("k"), jv_number(k));
	out = jv_object_set(out, jv_string("tokens"), toks);
	out = jv_object_set(out, jv_string("logprob"), lps);
	out = jv_object_set(out, jv_string("top"), tops);
	toks = lps = tops = jv_invalid();
	*fault = LP_OK;
out:
	jv_free(toks), jv_free(lps), jv_free(tops), jv_free(content);
	free(scratch.p);
	return out;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && strchr(" \t\r\n", *p) && *p) p++;
	return p;
}

static int starts(const char *p, const char *end, const char *s, size_t n)
{
	return (size_t)(end - p) >= n && !memcmp(p, s, n);
}

/* How many bytes p[..end) and s[0..n) have in common at the start. */
static size_t common(const char *p, const char *end, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && p + i < end && p[i] == s[i]) i++;
	return i;
}

/* Do the tokens' bytes t[0..n) spell the reply? Inline think (reasoning ""):
 * they are the content exactly, the raw text. A server that split the
 * reasoning off (reasoning_content) took the think tags and the white
 * space around them out of the text, so there they must be the reasoning
 * then the content, with at most an opening <think>, a </think> and white
 * space around and between them besides. Returns the offset in t where
 * they part, or -1 when they match. Borrows all. */
static long lp_mismatch(const char *t, size_t n, const char *reasoning, const char *content)
{
	const char *p = t, *end = t + n;
	size_t cl = strlen(content);
	if (!*reasoning) { /* inline: the content is the raw text */
		size_t k = common(t, t + n, content, cl);
		return k == n && k == cl ? -1 : (long)k;
	}
	const char *re = reasoning + strlen(reasoning), *ce = content + cl;
	const char *r = skip_ws(reasoning, re), *c = skip_ws(content, ce);
	while (re > r && strchr(" \t\r\n", re[-1])) re--;
	while (ce > c && strchr(" \t\r\n", ce[-1])) ce--;
	p = skip_ws(p, end);
	if (starts(p, end, "<think>", 7)) p = skip_ws(p + 7, end);
	size_t k = common(p, end, r, (size_t)(re - r));
	if (k < (size_t)(re - r)) return p + k - t;
	p = skip_ws(p + k, end);
	if (starts(p, end, "</think>", 8)) p = skip_ws(p + 8, end);
	k = common(p, end, c, (size_t)(ce - c));
	if (k < (size_t)(ce - c)) return p + k - t;
	p += ce - c;
	if (skip_ws(p, end) != end) return p - t;
	return -1;
}

/* --logprobs: put teacher.logprobs into *t from the reply's choice c0 and
 * message msg (borrowed), checked against the text. A reply without them,
 * or with fewer alternatives than asked, fails its record for good (a
 * retry would pay for the same answer again), and stops the run when the
 * server has sent none that were right yet: it ignores or caps them, and
 * every further request would be paid for in vain. Returns judge_reply's
 * verdict. */
static int take_logprobs(struct run *r, struct job *j, jv c0, jv msg, const char *model, jv *t, char *why,
			 size_t wl)
{
	const char *id = jsonl_get_string(j->rec, "id");
	jv lp = jv_object_get(jv_copy(c0), jv_string("logprobs"));
	jbuf raw = {0};
	enum lp_fault fault;
	char what[300];
	int verdict = 0;
	jv o = lp_compact(lp, r->o->logprobs, &raw, &fault, what, sizeof what);
	jv_free(lp);
	if (fault == LP_NONE) {
		snprintf(why, wl, "%s sent no logprobs for %s (sample %d) though asked (logprobs true, top_logprobs %d)%s",
			 model, id, j->sample, r->o->logprobs, j->srv->lp_ok ? "" : ": the server ignores them");
	} else if (fault == LP_SHORT) {
		snprintf(why, wl, "%s sent %s, for %s (sample %d)%s", model, what, id, j->sample,
			 j->srv->lp_ok ? "" : ": the server caps top_logprobs (ask for fewer with --logprobs)");
	} else if (fault == LP_BAD) {
		snprintf(why, wl, "%s sent bad logprobs for %s (sample %d): %s", model, id, j->sample, what);
	} else {
		const char *rc = jsonl_get_string(msg, "reasoning_content");
		if (!rc) rc = jsonl_get_string(msg, "reasoning");
		const char *c = jsonl_get_string(msg, "content");
		long at = lp_mismatch(raw.p ? raw.p : "", raw.n, rc ? rc : "", c ? c : "");
		if (at >= 0) {
			/* vLLM writes a token's bytes as the UTF-8 of its string:
			 * a cut character's become those of U+FFFD */
			int fffd = raw.n >= 3 && memmem(raw.p, raw.n, "\xef\xbf\xbd", 3) &&
				   !strstr(rc ? rc : "", "\xef\xbf\xbd") && !strstr(c ? c : "", "\xef\xbf\xbd");
			snprintf(why, wl, "%s sent logprobs for %s (sample %d) whose tokens do not spell the reply's text "
				 "(they part at byte %ld of the tokens)%s", model, id, j->sample, at,
				 fffd ? "; the tokens hold U+FFFD where the text has none: the server writes the bytes "
					"of a cut character as those of its token string" : "");
			fault = LP_BAD;
		}
	}
	if (fault == LP_OK) {
		*t = jv_object_set(*t, jv_string("logprobs"), o);
		j->srv->lp_ok++;
	} else {
		jv_free(o);
		verdict = (fault == LP_NONE || fault == LP_SHORT) && !j->srv->lp_ok ? 3 : 2;
	}
	free(raw.p);
	return verdict;
}

static int judge_reply(struct run *r, struct job *j, CURLcode cc, long status, jv *teacher, char *why, size_t wl,
		       enum cause *cause)
{
	if (cc != CURLE_OK) {
		snprintf(why, wl, "%s", j->err[0] ? j->err : curl_easy_strerror(cc));
		*cause = C_CONN;
		return 1;
	}
	size_t at = 0;
	const char *perr = NULL;
	jv body;
	if (r->o->stream && status / 100 == 2) {
		body = unstream(j->resp ? j->resp : "", j->resp_len);
		if (!jv_is_valid(body)) {
			snprintf(why, wl, "stream cut before [DONE]");
			*cause = C_CONN;
			return 1;
		}
	} else {
		body = json_parse(j->resp ? j->resp : "", j->resp_len, &at, &perr);
	}
	jv e = jv_get_kind(body) == JV_KIND_OBJECT ? jv_object_get(jv_copy(body), jv_string("error")) : jv_invalid();
	const char *emsg = jv_get_kind(e) == JV_KIND_OBJECT ? jsonl_get_string(e, "message")
			   : jv_get_kind(e) == JV_KIND_STRING ? jv_string_value(e) : NULL;
	int verdict;
	if (status == 429 || status == 500 || status == 502 || status == 503 || status == 504) {
		snprintf(why, wl, "HTTP %ld%s%s", status, emsg ? ": " : "", emsg ? emsg : "");
		*cause = status == 429 ? C_429 : C_5XX;
		verdict = 1;
	} else if (status == 401 || status == 402 || status == 403) {
		snprintf(why, wl, "HTTP %ld%s%s%s", status, emsg ? ": " : "", emsg ? emsg : "",
			 status == 402 ? " (balance exhausted)" : status == 401 ? " (check the API key)" : "");
		verdict = 3;
	} else if (status / 100 == 4) {
		snprintf(why, wl, "HTTP %ld%s%s", status, emsg ? ": " : "", emsg ? emsg : "");
		verdict = status == 400 || status == 422 ? 3 : 2;
	} else if (status / 100 != 2) {
		snprintf(why, wl, "HTTP %ld", status);
		*cause = C_5XX;
		verdict = 1;
	} else if (jv_get_kind(body) != JV_KIND_OBJECT) {
		snprintf(why, wl, "reply is not JSON (byte %zu: %s)", at + 1, perr ? perr : "?");
		*cause = C_BAD;
		verdict = 1;
	} else {
		jv choices = jv_object_get(jv_copy(body), jv_string("choices"));
		jv c0 = jv_get_kind(choices) == JV_KIND_ARRAY && jv_array_length(jv_copy(choices)) > 0
				? jv_array_get(jv_copy(choices), 0) : jv_invalid();
		jv msg = jv_get_kind(c0) == JV_KIND_OBJECT ? jv_object_get(jv_copy(c0), jv_string("message")) : jv_invalid();
		if (jv_get_kind(msg) != JV_KIND_OBJECT) {
			snprintf(why, wl, "reply has no choices[0].message");
			*cause = C_BAD;
			verdict = 1;
		} else {
			jv reasoning, content;
			split_think(msg, &reasoning, &content);
			const char *finish = jsonl_get_string(c0, "finish_reason");
			const char *model = jsonl_get_string(body, "model");
			jv use = jv_object_get(jv_copy(body), jv_string("usage"));
			double pt = num_at(use, "prompt_tokens", NULL), ct = num_at(use, "completion_tokens", NULL);
			double rt = num_at(use, "completion_tokens_details", "reasoning_tokens");
			/* DeepSeek says prompt_cache_hit_tokens, OpenAI prompt_tokens_details.cached_tokens. */
			double cached = num_at(use, "prompt_cache_hit_tokens", NULL);
			if (cached == 0) cached = num_at(use, "prompt_tokens_details", "cached_tokens");
			jv_free(use);
			r->st.prompt_tokens += pt, r->st.completion_tokens += ct;
			r->tpm_bucket -= pt + ct;
			add_cost(r, model ? model : r->o->model, pt, ct, cached);
			r->st.reasoning_tokens += rt, r->st.cached_tokens += cached;
			jv u = jv_object();
			u = jv_object_set(u, jv_string("prompt_tokens"), jv_number(pt));
			u = jv_object_set(u, jv_string("completion_tokens"), jv_number(ct));
			u = jv_object_set(u, jv_string("reasoning_tokens"), jv_number(rt));
			u = jv_object_set(u, jv_string("cached_tokens"), jv_number(cached));
			jv t = jv_object();
			t = jv_object_set(t, jv_string("model"), jv_string(model ? model : r->o->model));
			t = jv_object_set(t, jv_string("reasoning"), reasoning);
			t = jv_object_set(t, jv_string("content"), content);
			t = jv_object_set(t, jv_string("finish_reason"), finish ? jv_string(finish) : jv_null());
			t = jv_object_set(t, jv_string("sample"), jv_number(j->sample));
			t = jv_object_set(t, jv_string("usage"), u);
			double ms = (now_s() - j->started) * 1000;
			t = jv_object_set(t, jv_string("latency_ms"), jv_number(floor(ms)));
			if (r->st.n_lat == r->st.cap_lat)
				r->st.lat = xrealloc(r->st.lat, sizeof *r->st.lat * (size_t)(r->st.cap_lat = r->st.cap_lat * 2 + 64));
			r->st.lat[r->st.n_lat++] = ms;
			verdict = 0;
			if (r->o->logprobs) verdict = take_logprobs(r, j, c0, msg, model ? model : r->o->model, &t, why, wl);
			if (verdict == 0) *teacher = t;
			else jv_free(t);
		}
		jv_free(msg);
		jv_free(c0);
		jv_free(choices);
	}
	jv_free(e);
	jv_free(body);
	return verdict;
}

/* The record to write for an answered job. A guided answer takes the
 * failed one's place, and that one moves under teacher.previous together
 * with the judge's verdict on it: left at the top, the old verdict would be
 * read as the new sample's. Borrows r and j; consumes teacher. */
static jv answered(const struct run *r, const struct job *j, jv teacher)
{
	jv rec = jv_copy(j->rec);
	if (r->o->guided) {
		jv prev = jv_object_get(jv_copy(rec), jv_string("teacher"));
		jv judge = jv_object_get(jv_copy(rec), jv_string("judge"));
		if (jv_get_kind(judge) == JV_KIND_OBJECT) prev = jv_object_set(prev, jv_string("judge"), judge);
		else jv_free(judge);
		rec = jv_object_delete(rec, jv_string("judge"));
		teacher = jv_object_set(teacher, jv_string("guided"), jv_true());
		teacher = jv_object_set(teacher, jv_string("previous"), prev);
	}
	return jv_object_set(rec, jv_string("teacher"), teacher);
}

static void enqueue(struct run *r, struct job *j)
{
	j->next = NULL;
	if (r->waiting_tail) r->waiting_tail->next = j;
	else r->waiting = j;
	r->waiting_tail = j;
}

static void done_request(struct run *r, CURLMsg *m)
{
	struct job *j = NULL;
	curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
	long status = 0;
	curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
	CURLcode cc = m->data.result;
	curl_multi_remove_handle(r->multi, j->easy);
	curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->hdr);
	j->easy = NULL;
	j->hdr = NULL;
	r->inflight--;
	j->srv->inflight--;
	r->tpm_bucket += j->tpm_reserved; /* the real usage is charged below */
	j->tpm_reserved = 0;
	jv teacher = jv_invalid();
	char why[512];
	enum cause cause = C_CONN;
	int v = judge_reply(r, j, cc, status, &teacher, why, sizeof why, &cause);
	chatapi_mask(why); /* it may quote the server, which may quote the key */
	if (v == 0) {
		j->srv->ok++;
		j->srv->fails_in_row = 0;
		r->st.ok++;
		finish(r, j, answered(r, j, teacher), 1);
		return;
	}
	j->srv->errors++;
	if (v == 1 && ++j->srv->fails_in_row >= 3 && r->o->n_servers > 1)
		j->srv->benched_until = now_s() + 30; /* set aside; others take the load */
	if (v == 1 && j->attempts < r->o->retries && !r->stop) {
		double wait = 1.0 * pow(2, j->attempts - 1);
		const char *b = getenv("DS_RETRY_BASE_MS");
		if (b && *b) wait = atof(b) / 1000.0 * pow(2, j->attempts - 1);
		if (wait > 60) wait = 60;
		wait *= 0.5 + 0.5 * ((double)rand() / RAND_MAX);
		if (j->retry_after_s >= 0) wait = (double)j->retry_after_s;
		long *counter[] = {&r->st.retries_conn, &r->st.retries_429, &r->st.retries_5xx, &r->st.retries_bad};
		(*counter[cause])++;
		if (!r->o->quiet)
			fprintf(stderr, "%s: %s (sample %d): %s; retrying in %.1fs\n", cli_prog,
				jsonl_get_string(j->rec, "id"), j->sample, why, wait);
		j->ready_at = now_s() + wait;
		enqueue(r, j);
		return;
	}
	if (v == 3 && !r->stop) {
		cli_warn("%s: %s; stopping: no new requests (what is done is kept)", j->srv->url, why);
		r->stop = 1;
	}
	r->st.failed++;
	r->status = EXIT_RUNTIME;
	jv err = jv_object_set(jv_object(), jv_string("error"), jv_string(why));
	err = jv_object_set(err, jv_string("attempts"), jv_number(j->attempts));
	err = jv_object_set(err, jv_string("sample"), jv_number(j->sample));
	finish(r, j, jv_object_set(jv_copy(j->rec), jv_string("teacher_error"), err), 0);
}

/* ---- guided regeneration ------------------------------------------------ */

/* Guided attempt a is sampled as GUIDED_BASE * a + i: ordinary samples stay
 * below it (-n is refused above it with --guided). */
#define GUIDED_BASE 1000

struct guided_stats {
	long not_wrong, no_ref, at_limit;
};

/* --guided: is rec (borrowed) a wrong answer to ask again for? If so, *ref
 * gets its reference answer (owned), as ds-judge reads it: "answer" (its
 * last \boxed{} when it has one), else the last \boxed{} of "solution";
 * and *base the first sample number of the attempt it is owed. A failed
 * guided sample owes the attempt after its own, up to --max-attempts. */
static int guided_take(const struct opts *o, jv rec, char **ref, int *base, struct guided_stats *gs)
{
	jv judge = jv_object_get(jv_copy(rec), jv_string("judge"));
	jv t = jv_object_get(jv_copy(rec), jv_string("teacher"));
	const char *v = jv_get_kind(judge) == JV_KIND_OBJECT ? jsonl_get_string(judge, "verdict") : NULL;
	int ok = 0;
	if (jv_get_kind(t) != JV_KIND_OBJECT || !v || (strcmp(v, "incorrect") != 0 && strcmp(v, "unparsable") != 0)) {
		gs->not_wrong++;
		goto out;
	}
	double attempt = 0; /* of the failed sample; 0: an ordinary one */
	jv g = jv_object_get(jv_copy(t), jv_string("guided"));
	jv sm = jv_object_get(jv_copy(t), jv_string("sample"));
	if (jv_get_kind(g) == JV_KIND_TRUE) {
		attempt = jv_get_kind(sm) == JV_KIND_NUMBER ? floor(jv_number_value(sm) / GUIDED_BASE) : 1;
		if (!(attempt >= 1)) attempt = 1;
	}
	jv_free(g);
	jv_free(sm);
	if (attempt + 1 > o->max_attempts) {
		gs->at_limit++;
		goto out;
	}
	const char *answer = jsonl_get_string(rec, "answer"), *solution = jsonl_get_string(rec, "solution");
	char *gold = NULL;
	if (answer && *answer)
		gold = strstr(answer, "\\boxed") || strstr(answer, "\\fbox") ? mathans_extract(answer) : xstrdup(answer);
	else if (solution)
		gold = mathans_extract(solution);
	if (!gold) {
		gs->no_ref++;
		goto out;
	}
	*ref = gold;
	*base = GUIDED_BASE * ((int)attempt + 1);
	ok = 1;
out:
	jv_free(judge);
	jv_free(t);
	return ok;
}

/* ---- the run ------------------------------------------------------------ */

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(const struct stats *st, double p)
{
	if (!st->n_lat) return 0;
	long i = (long)ceil(p * (double)st->n_lat) - 1;
	return st->lat[i < 0 ? 0 : i];
}

static jv stats_json(struct run *r)
{
	struct stats *st = &r->st;
	if (st->n_lat) qsort(st->lat, (size_t)st->n_lat, sizeof *st->lat, cmp_d);
	jv s = jv_object();
	s = jv_object_set(s, jv_string("requests"), jv_number((double)st->requests));
	s = jv_object_set(s, jv_string("ok"), jv_number((double)st->ok));
	s = jv_object_set(s, jv_string("failed"), jv_number((double)st->failed));
	jv rt = jv_object();
	rt = jv_object_set(rt, jv_string("connection"), jv_number((double)st->retries_conn));
	rt = jv_object_set(rt, jv_string("rate_limited"), jv_number((double)st->retries_429));
	rt = jv_object_set(rt, jv_string("server_error"), jv_number((double)st->retries_5xx));
	rt = jv_object_set(rt, jv_string("bad_reply"), jv_number((double)st->retries_bad));
	s = jv_object_set(s, jv_string("retries"), rt);
	jv tk = jv_object();
	tk = jv_object_set(tk, jv_string("prompt"), jv_number(st->prompt_tokens));
	tk = jv_object_set(tk, jv_string("completion"), jv_number(st->completion_tokens));
	tk = jv_object_set(tk, jv_string("reasoning"), jv_number(st->reasoning_tokens));
	tk = jv_object_set(tk, jv_string("cached"), jv_number(st->cached_tokens));
	s = jv_object_set(s, jv_string("tokens"), tk);
	jv lat = jv_object();
	lat = jv_object_set(lat, jv_string("p50"), jv_number(floor(pct(st, 0.5))));
	lat = jv_object_set(lat, jv_string("p90"), jv_number(floor(pct(st, 0.9))));
	lat = jv_object_set(lat, jv_string("p99"), jv_number(floor(pct(st, 0.99))));
	s = jv_object_set(s, jv_string("latency_ms"), lat);
	s = jv_object_set(s, jv_string("cost_usd"), r->cost_known ? jv_number(round(r->cost * 1e6) / 1e6) : jv_null());
	jv sv = jv_array();
	for (int i = 0; i < r->o->n_servers; i++) {
		struct server *x = &r->o->servers[i];
		jv o = jv_object_set(jv_object(), jv_string("url"), jv_string(x->url));
		o = jv_object_set(o, jv_string("requests"), jv_number((double)x->requests));
		o = jv_object_set(o, jv_string("ok"), jv_number((double)x->ok));
		o = jv_object_set(o, jv_string("errors"), jv_number((double)x->errors));
		sv = jv_array_append(sv, o);
	}
	return jv_object_set(s, jv_string("servers"), sv);
}

int main(int argc, char **argv)
{
	cli_init("ds-teacher");
	struct opts o = {.model = "deepseek-reasoner", .concurrency = 16, .samples = 1, .retries = 6,
			 .temperature = 0.6, .timeout_s = 1800, .shard_n = 1, .max_attempts = 2};
	int max_attempts_set = 0;
	const char *key_file = NULL;
	static const struct option longopts[] = {
		{"base-url", 1, 0, 'u'}, {"model", 1, 0, 'm'},     {"api-key-file", 1, 0, 'k'},
		{"concurrency", 1, 0, 'c'}, {"samples", 1, 0, 'n'}, {"max-tokens", 1, 0, 'x'},
		{"temperature", 1, 0, 't'}, {"template", 1, 0, 'T'}, {"timeout", 1, 0, 'W'},
		{"retries", 1, 0, 'r'},  {"rpm", 1, 0, 'R'},       {"shard", 1, 0, 'H'},
		{"ordered", 0, 0, 'O'},  {"output", 1, 0, 'o'},    {"failed", 1, 0, 'f'},
		{"stats", 1, 0, 's'},    {"skip-bad", 0, 0, 'B'},  {"quiet", 0, 0, 'q'},
		{"stream", 0, 0, 'S'},   {"tpm", 1, 0, 'P'},       {"deadline", 1, 0, 'D'},
		{"price", 1, 0, 'C'},    {"guided", 0, 0, 'G'},    {"max-attempts", 1, 0, 'K'},
		{"offline", 0, 0, 'F'},  {"logprobs", 1, 0, 'L'},
		CLI_LONGOPTS_COMMON,     {0, 0, 0, 0}};
	int c;
	o.servers = xcalloc((size_t)argc + 1, sizeof *o.servers);
	while ((c = getopt_long(argc, argv, "c:n:o:qhV", longopts, NULL)) != -1) {
		char *end = NULL;
		switch (c) {
		case 'u': {
			size_t n = strlen(optarg);
			while (n && optarg[n - 1] == '/') n--;
			/* A base URL (…/v1) gets /chat/completions; a full one is kept. */
			int full = n >= 17 && !strncmp(optarg + n - 17, "/chat/completions", 17);
			char *u = xmalloc(n + 32);
			snprintf(u, n + 32, "%.*s%s", (int)n, optarg, full ? "" : "/chat/completions");
			o.servers[o.n_servers++].url = u;
			break;
		}
		case 'm': o.model = optarg; break;
		case 'k': key_file = optarg; break;
		case 'c': o.concurrency = (int)strtol(optarg, &end, 10); if (*end || o.concurrency < 1) cli_usage_error(usage, "-c wants a positive count"); break;
		case 'n': o.samples = (int)strtol(optarg, &end, 10); if (*end || o.samples < 1) cli_usage_error(usage, "-n wants a positive count"); break;
		case 'x': o.max_tokens = strtol(optarg, &end, 10); if (*end || o.max_tokens < 1) cli_usage_error(usage, "--max-tokens wants a positive count"); break;
		case 't': o.temperature = strtod(optarg, &end); if (*end || o.temperature < 0) cli_usage_error(usage, "--temperature wants a number >= 0"); break;
		case 'T': o.template_file = optarg; break;
		case 'W': o.timeout_s = strtod(optarg, &end); if (*end || o.timeout_s <= 0) cli_usage_error(usage, "--timeout wants seconds"); break;
		case 'r': o.retries = (int)strtol(optarg, &end, 10); if (*end || o.retries < 1) cli_usage_error(usage, "--retries wants a positive count"); break;
		case 'R': o.rpm = strtod(optarg, &end); if (*end || o.rpm <= 0) cli_usage_error(usage, "--rpm wants a positive number"); break;
		case 'H':
			if (sscanf(optarg, "%ld/%ld", &o.shard_i, &o.shard_n) != 2 || o.shard_n < 1 ||
			    o.shard_i < 0 || o.shard_i >= o.shard_n)
				cli_usage_error(usage, "--shard wants I/N with 0 <= I < N, not '%s'", optarg);
			break;
		case 'O': o.ordered = 1; break;
		case 'S': o.stream = 1; break;
		case 'P': o.tpm = strtod(optarg, &end); if (*end || o.tpm <= 0) cli_usage_error(usage, "--tpm wants a positive number"); break;
		case 'D': o.deadline_s = strtod(optarg, &end); if (*end || o.deadline_s <= 0) cli_usage_error(usage, "--deadline wants seconds"); break;
		case 'C': o.price_file = optarg; break;
		case 'G': o.guided = 1; break;
		case 'F': o.offline = 1; break;
		case 'L':
			/* 20: the most top_logprobs OpenAI (and the contract) allow */
			o.logprobs = (int)strtol(optarg, &end, 10);
			if (*end || !*optarg || o.logprobs < 1 || o.logprobs > 20)
				cli_usage_error(usage, "--logprobs wants a count from 1 to 20, not '%s'", optarg);
			break;
		case 'K':
			o.max_attempts = (int)strtol(optarg, &end, 10);
			if (*end || o.max_attempts < 1 || o.max_attempts > 1000)
				cli_usage_error(usage, "--max-attempts wants a count from 1 to 1000");
			max_attempts_set = 1;
			break;
		case 'o': o.output = optarg; break;
		case 'f': o.failed = optarg; break;
		case 's': o.stats = optarg; break;
		case 'B': o.skip_bad = 1; break;
		case 'q': o.quiet = 1; break;
		case 'h': fputs(usage, stdout); fputs(help, stdout); cli_close_stdout(); cli_exit(0);
		case 'V': cli_version(); cli_close_stdout(); cli_exit(0);
		default: cli_usage_error(usage, "bad option");
		}
	}
	if (max_attempts_set && !o.guided) cli_usage_error(usage, "--max-attempts goes with --guided");
	if (o.offline && (o.guided || o.samples != 1))
		cli_usage_error(usage, "--offline has one answer a problem: not with --guided or -n");
	if (o.offline && o.logprobs)
		cli_usage_error(usage, "--offline has no teacher model to give --logprobs");
	if (o.guided && o.samples > GUIDED_BASE)
		cli_usage_error(usage, "-n is at most %d with --guided (the samples of one attempt)", GUIDED_BASE);
	if (o.n_servers == 0) o.servers[o.n_servers++].url = xstrdup("https://api.deepseek.com/chat/completions");
	if (chatapi_key(key_file, &o.key) < 0) cli_die(EXIT_USAGE, "%s: cannot read the API key file", key_file);

	struct run r = {.o = &o, .out = stdout, .done = idset_new()};
	r.tpl.fixed = o.template_file ? cli_read_file(o.template_file) : NULL;
	if (o.template_file && !r.tpl.fixed) cli_die(EXIT_USAGE, "%s: cannot read the template", o.template_file);
	r.tpl.math = share_text("prompts/math.txt");
	r.tpl.code = share_text("prompts/code.txt");
	r.tpl.other = share_text("prompts/default.txt");
	if (o.guided) r.tpl.guided = share_text("prompts/guided.txt");
	long n_done = 0;
	if (o.output) r.out = resume_open(o.output, r.done, resume_key_id_sample, &n_done);
	if (o.failed) {
		r.failed = fopen(o.failed, "a");
		if (!r.failed) cli_die(EXIT_RUNTIME, "%s: %m", o.failed);
	}
	{
		char *pf = o.price_file ? xstrdup(o.price_file) : cli_share_path("prices/deepseek.json");
		char *text = pf ? cli_read_file(pf) : NULL;
		if (o.price_file && !text) cli_die(EXIT_USAGE, "%s: cannot read the price table", o.price_file);
		size_t at;
		const char *why;
		r.prices = text ? json_parse(text, strlen(text), &at, &why) : jv_null();
		if (o.price_file && jv_get_kind(r.prices) != JV_KIND_OBJECT)
			cli_die(EXIT_USAGE, "%s: the price table is not a JSON object", o.price_file);
		free(text);
		free(pf);
	}
	r.tpm_bucket = o.tpm;
	r.tpm_at = now_s();
	if (o.deadline_s > 0) r.deadline = now_s() + o.deadline_s;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	r.multi = curl_multi_init();
	curl_multi_setopt(r.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o.concurrency);

	jsonl_inputs in;
	jsonl_inputs_init(&in, argv + optind, argc - optind, o.skip_bad, NULL);
	int eof = 0, sample_next = 0, sample_base = 0;
	char *cur_ref = NULL; /* --guided: cur's reference answer */
	struct guided_stats gs = {0};
	jv cur = jv_invalid();
	long skipped = 0, read = 0;
	progress_start(&r.pg, cli_prog, -1);
	int window = o.concurrency * 2; /* records read ahead of the requests */

	for (;;) {
		/* Fill the waiting list from the input, bounded. */
		while (!eof && !r.stop && r.pending < window) {
			if (!jv_is_valid(cur)) {
				int k = jsonl_inputs_next(&in, &cur);
				if (k <= 0) {
					if (k < 0) r.status = EXIT_RUNTIME;
					eof = 1;
					break;
				}
				if (!jsonl_get_string(cur, "id") || !jsonl_get_string(cur, "problem")) {
					int stop = jsonl_inputs_reject(&in, "record without \"id\" and \"problem\" strings");
					jv_free(cur);
					cur = jv_invalid();
					if (stop) {
						r.status = EXIT_RUNTIME;
						eof = 1;
						break;
					}
					continue;
				}
				read++;
				sample_next = 0;
				if (o.shard_n > 1 && fnv(jsonl_get_string(cur, "id")) % (uint64_t)o.shard_n != (uint64_t)o.shard_i) {
					jv_free(cur);
					cur = jv_invalid();
					continue;
				}
				free(cur_ref);
				cur_ref = NULL;
				if (o.guided && !guided_take(&o, cur, &cur_ref, &sample_base, &gs)) {
					jv_free(cur);
					cur = jv_invalid();
					continue;
				}
			}
			if (sample_next >= o.samples) {
				jv_free(cur);
				cur = jv_invalid();
				continue;
			}
			const char *id = jsonl_get_string(cur, "id");
			size_t kn = strlen(id) + 32;
			char *key = xmalloc(kn);
			snprintf(key, kn, "%s\x1f%d", id, sample_base + sample_next);
			if (idset_has(r.done, key, strlen(key))) {
				skipped++;
				free(key);
				sample_next++;
				continue;
			}
			idset_add(r.done, key, strlen(key)); /* a repeat in the input is done once */
			struct job *j = xcalloc(1, sizeof *j);
			j->rec = jv_copy(cur);
			j->key = key;
			j->ref = cur_ref ? xstrdup(cur_ref) : NULL;
			j->sample = sample_base + sample_next++;
			j->seq = r.next_seq++;
			enqueue(&r, j);
			r.pending++;
		}
		/* Start what may start. */
		double t = now_s();
		struct job **pp = &r.waiting;
		if (r.deadline > 0 && t > r.deadline && !r.stop) {
			cli_warn("the --deadline has passed; stopping: no new requests (what is done is kept)");
			r.stop = 1;
		}
		if (o.tpm > 0) { /* refill: tpm tokens a minute, at most a minute's worth */
			r.tpm_bucket += (t - r.tpm_at) * o.tpm / 60.0;
			if (r.tpm_bucket > o.tpm) r.tpm_bucket = o.tpm;
			r.tpm_at = t;
		}
		while (*pp && r.inflight < o.concurrency && !r.stop && (o.tpm <= 0 || r.tpm_bucket > 0)) {
			struct job *j = *pp;
			if (j->ready_at > t || (o.rpm > 0 && r.rpm_next > t)) {
				pp = &j->next;
				continue;
			}
			*pp = j->next;
			if (r.waiting_tail == j) /* unlinked the last: find the new tail */
				for (r.waiting_tail = r.waiting; r.waiting_tail && r.waiting_tail->next;)
					r.waiting_tail = r.waiting_tail->next;
			if (o.rpm > 0) r.rpm_next = (r.rpm_next > t ? r.rpm_next : t) + 60.0 / o.rpm;
			start(&r, j);
		}
		if (r.stop) { /* no new requests: what waits fails with the reason */
			r.waiting_tail = NULL;
			while (r.waiting) {
				struct job *j = r.waiting;
				r.waiting = j->next;
				r.st.failed++;
				r.status = EXIT_RUNTIME;
				jv err = jv_object_set(jv_object(), jv_string("error"), jv_string("not sent: the run was stopped"));
				err = jv_object_set(err, jv_string("attempts"), jv_number(j->attempts));
				err = jv_object_set(err, jv_string("sample"), jv_number(j->sample));
				finish(&r, j, jv_object_set(jv_copy(j->rec), jv_string("teacher_error"), err), 0);
			}
		}
		if (r.inflight == 0 && !r.waiting && (eof || r.stop)) break;
		int running = 0;
		curl_multi_perform(r.multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(r.multi, &left)))
			if (m->msg == CURLMSG_DONE) done_request(&r, m);
		if (r.inflight > 0 || r.waiting) curl_multi_poll(r.multi, NULL, 0, 50, NULL);
		progress_update(&r.pg, (uint64_t)(r.st.ok + r.st.failed), 0);
	}
	progress_finish(&r.pg);
	jv_free(cur);
	free(cur_ref);
	jsonl_inputs_close(&in);
	if (o.output) resume_close(r.out, o.output);
	else cli_close_stdout();
	if (r.failed && fclose(r.failed) != 0) cli_die(EXIT_RUNTIME, "%s: write error", o.failed);
	if (r.stop && !eof)
		cli_warn("stopped before the end of the input: rerun with the same -o to go on");
	jv s = stats_json(&r);
	if (o.stats) {
		FILE *f = fopen(o.stats, "w");
		if (!f || jsonl_write(f, jv_copy(s)) || fclose(f)) cli_die(EXIT_RUNTIME, "%s: cannot write the stats", o.stats);
	}
	char cost_text[64] = "";
	if (r.cost_known) snprintf(cost_text, sizeof cost_text, "; cost $%.4f", r.cost);
	if (!o.quiet) {
		fprintf(stderr, "%s: %ld problems read, %ld requests, %ld answered, %ld failed%s, %ld already done, "
				"%ld bad lines skipped; retries: %ld connection, %ld rate-limited, %ld server error, "
				"%ld bad reply; tokens: %.0f prompt, %.0f completion (%.0f reasoning), %.0f cached; "
				"latency p50/p90/p99 %.0f/%.0f/%.0f ms%s\n",
			cli_prog, read, r.st.requests, r.st.ok, r.st.failed,
			r.st.failed && o.failed ? " (see --failed)" : r.st.failed ? " (use --failed to keep them)" : "",
			skipped, in.bad, r.st.retries_conn, r.st.retries_429, r.st.retries_5xx, r.st.retries_bad,
			r.st.prompt_tokens, r.st.completion_tokens, r.st.reasoning_tokens, r.st.cached_tokens,
			pct(&r.st, 0.5), pct(&r.st, 0.9), pct(&r.st, 0.99), cost_text);
		if (o.guided)
			fprintf(stderr, "%s: guided: %ld not judged wrong, %ld without a reference answer, "
					"%ld at the attempt limit (--max-attempts %d)\n",
				cli_prog, gs.not_wrong, gs.no_ref, gs.at_limit, o.max_attempts);
		for (int i = 0; o.n_servers > 1 && i < o.n_servers; i++)
			fprintf(stderr, "%s:   %s: %ld requests, %ld ok, %ld errors\n", cli_prog, o.servers[i].url,
				o.servers[i].requests, o.servers[i].ok, o.servers[i].errors);
	}
	jv_free(s);
	jv_free(r.prices);
	curl_multi_cleanup(r.multi);
	curl_global_cleanup();
	idset_free(r.done);
	free(r.st.lat);
	free(r.reorder);
	free(r.tpl.fixed), free(r.tpl.math), free(r.tpl.code), free(r.tpl.other), free(r.tpl.guided);
	for (int i = 0; i < o.n_servers; i++) free(o.servers[i].url);
	free(o.servers);
	chatapi_key_free(o.key);
	return r.status;
}
