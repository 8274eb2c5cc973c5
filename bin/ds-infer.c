/* ds-infer — the distilled model at work: a chat on the terminal, answers
 * to problem records (batch mode, writing ds-teacher's `teacher` object so
 * that ds-judge grades the student as it graded the teacher), and an
 * OpenAI-compatible server.
 *
 * One engine drives all three: several sequences decoded together, each
 * step one lib/qwen2.c forward over a segment per sequence (a prompt's
 * prefill is one segment of many tokens, a decoding step one token), each
 * sequence with its own key/value cache. Prompts go through the chat
 * template of lib/chat.c, the very token layout ds-tokenize trains on;
 * tokens are chosen by lib/sample.c with transformers' semantics.
 */
#include "../lib/chat.h"
#include "../lib/check.h"
#include "../lib/cli.h"
#include "../lib/clock.h"
#include "../lib/idset.h"
#include "../lib/json.h"
#include "../lib/jsonl.h"
#include "../lib/progress.h"
#include "../lib/qwen2.h"
#include "../lib/resume.h"
#include "../lib/safetensors.h"
#include "../lib/sample.h"
#include "../lib/tokenizer.h"
#include "../lib/utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-infer -m DIR [--chat] [--system TEXT] [--stop STR]... [sampling] [-t N]\n"
	"       ds-infer -m DIR [--batch] [-n K] [-b B] [--template FILE] [--ids] [--skip-bad]\n"
	"                [-q] [-o OUT] [--stop STR]... [sampling] [-t N] [FILE...]\n"
	"       ds-infer serve -m DIR [--host ADDR] [--port P] [--port-file FILE]\n"
	"                [--max-body BYTES] [-b B] [sampling] [-t N]\n"
	"       ds-infer logits -m DIR --ids ID,ID,... -o OUT.safetensors [-t N]\n"
	"every form: [--fp32] [--chat-template NAME] [--no-thinking] [--preserve-thinking]\n"
	"sampling: [--greedy] [--temperature T] [--top-k K] [--top-p P] [--min-p P]\n"
	"          [--repetition-penalty R] [--max-tokens N] [--seed S] [--ctx N]\n"
	"          [--model-name NAME]\n";

static const char help[] =
	"Chat with a Qwen2 model directory (on a terminal), answer problem records\n"
	"(JSONL on stdin, one teacher object a sample, as ds-teacher writes), or\n"
	"serve it over the OpenAI chat-completions API.\n"
	"\n"
	"  -m, --model DIR          the model: config.json, safetensors, tokenizer.json\n"
	"      --chat               the chat REPL even when stdin is not a terminal\n"
	"      --batch              batch mode even when stdin is a terminal\n"
	"      --system TEXT        system prompt (default: the template's)\n"
	"      --chat-template NAME qwen or deepseekr1 (default: the one the tokenizer's\n"
	"                           own tokens call for, as ds-tokenize chooses it)\n"
	"      --no-thinking        deepseekr1: prompts end with the empty thought, for a\n"
	"                           model trained with ds-tokenize --no-thinking\n"
	"      --preserve-thinking  deepseekr1: earlier answers keep their thoughts\n"
	"  -n, --samples K          answers per problem (default 1)\n"
	"  -b, --batch-size B       sequences decoded together (default 8)\n"
	"      --template FILE      user turn for a problem: FILE with {problem} replaced\n"
	"                           (default: the problem itself, as ds-sharegpt trains)\n"
	"      --ids                add prompt_ids and completion_ids to each teacher object\n"
	"  -o, --output OUT         append to OUT; a rerun skips (id, sample) pairs there\n"
	"      --skip-bad           count and skip malformed lines instead of stopping\n"
	"      --stop STR           end an answer where its text shows STR, cut before it\n"
	"                           (up to 4 times; serve takes a request's 'stop' instead)\n"
	"  -q, --quiet              no summary on stderr\n"
	"      --host ADDR          serve: listen on ADDR (default 127.0.0.1)\n"
	"      --port P             serve: port (default 8000; 0 picks a free one)\n"
	"      --port-file FILE     serve: write the port there once listening\n"
	"      --max-body BYTES     serve: largest request body (default 1048576)\n"
	"      --greedy             always the most likely token (temperature 0)\n"
	"      --temperature T      sampling temperature; 0 is greedy\n"
	"      --top-k K            only the K most likely tokens (0: off)\n"
	"      --top-p P            only the most likely tokens holding mass P (1: off)\n"
	"      --min-p P            only tokens at least P times the most likely (0: off)\n"
	"      --repetition-penalty R  penalise tokens already seen (1: off)\n"
	"      --max-tokens N       at most N new tokens (default 4096)\n"
	"      --seed S             the generator's seed (default 0)\n"
	"      --ctx N              context length (default: max_position_embeddings)\n"
	"      --model-name NAME    the model's name in records and the API (default:\n"
	"                           the directory's name)\n"
	"  -t, --threads N          CPU threads (default: all)\n"
	"      --fp32               convert the weights to fp32 when loading (default: use\n"
	"                           them as stored, bf16 or fp16 read as such, no copy)\n"
	"  -h, --help               show this help and exit\n"
	"  -V, --version            show the version and exit\n"
	"\n"
	"Sampling settings: these options, else the model's generation_config.json,\n"
	"else greedy. See ds-infer(1).\n";

enum mode { MODE_AUTO, MODE_CHAT, MODE_BATCH, MODE_SERVE };

/* Sampling settings and which of them a flag set. */
struct gen_opts {
	sample_params sp;
	long max_tokens;
	uint64_t seed;
	unsigned set; /* GEN_* bits */
};

/* Stop strings: the text of an answer ends before the first of them. */
#define MAX_STOP_STRS 4 /* as many as the OpenAI API takes */

struct stop_strs {
	const char *s[MAX_STOP_STRS]; /* borrowed */
	size_t len[MAX_STOP_STRS];    /* bytes; a string may hold NUL (JSON's \u0000) */
	int n;
};

enum { GEN_TEMP = 1, GEN_TOPK = 2, GEN_TOPP = 4, GEN_MINP = 8, GEN_REP = 16, GEN_MAX = 32 };

struct opts {
	enum mode mode;
	const char *model_dir, *model_name, *system, *template_file, *output, *host, *port_file;
	const char *chat_template; /* --chat-template, or NULL: from the tokenizer */
	int samples, batch, ids, skip_bad, quiet, threads, port, fp32;
	int no_thinking, preserve_thinking; /* reasoning templates, as ds-tokenize's */
	long ctx;
	size_t max_body;
	struct gen_opts gen;
	struct stop_strs stop; /* --stop, borrowed from argv */
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
	const struct stop_strs *stop_strs; /* borrowed: --stop (batch mode, the chat), or NULL */
	int no_thinking, preserve_thinking;
};

/* A chat encoder for in's prompts. */
static chat_encoder infer_encoder(const struct infer *in)
{
	return (chat_encoder){.tok = in->tok, .tpl = in->tpl, .no_thinking = in->no_thinking,
			      .preserve_thinking = in->preserve_thinking};
}

static void add_stop(struct infer *in, double id)
{
	if (id < 0 || id >= in->V || id != floor(id) || in->n_stops == MAX_STOPS) return;
	for (int i = 0; i < in->n_stops; i++)
		if (in->stops[i] == (uint32_t)id) return;
	in->stops[in->n_stops++] = (uint32_t)id;
}

static void add_stops_of(struct infer *in, jv v)
{
	if (jv_get_kind(v) == JV_KIND_NUMBER) add_stop(in, jv_number_value(v));
	if (jv_get_kind(v) == JV_KIND_ARRAY)
		jv_array_foreach(v, i, x) {
			if (jv_get_kind(x) == JV_KIND_NUMBER) add_stop(in, jv_number_value(x));
			jv_free(x);
		}
	jv_free(v);
}

/* The id of a special token's text, or -1 when it is not one token. */
static long token_id(const tokenizer *t, const char *text)
{
	tokenizer_ids ids = {0};
	long id = -1;
	if (tokenizer_encode(t, text, strlen(text), &ids, NULL) == 0 && ids.n == 1) id = ids.ids[0];
	tokenizer_ids_free(&ids);
	return id;
}

static double num_or(jv o, const char *key, double dflt, int *found)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	double d = dflt;
	if (jv_get_kind(v) == JV_KIND_NUMBER) d = jv_number_value(v), *found = 1;
	else *found = 0;
	jv_free(v);
	return d;
}

/* Defaults: built in (greedy, 4096 tokens), then what the model's
 * generation_config.json says (the fields it has; sampling only when its
 * do_sample is true, as transformers reads it, with temperature 1 unless
 * given), then the flags. */
static void settings_load(struct infer *in, const char *dir, const struct gen_opts *g)
{
	in->sp = SAMPLE_GREEDY;
	in->max_tokens = 4096;
	char *path = xasprintf("%s/generation_config.json", dir);
	char *text = cli_read_file(path);
	jv gc = jv_null();
	if (text) {
		size_t at;
		const char *why;
		gc = json_parse(text, strlen(text), &at, &why);
		if (jv_get_kind(gc) != JV_KIND_OBJECT) cli_die(EXIT_RUNTIME, "%s: not a JSON object", path);
	}
	if (jv_get_kind(gc) == JV_KIND_OBJECT) {
		int f;
		jv ds = jv_object_get(jv_copy(gc), jv_string("do_sample"));
		int sampling = jv_get_kind(ds) == JV_KIND_TRUE; /* transformers: absent is false */
		jv_free(ds);
		double t = num_or(gc, "temperature", 1.0, &f);
		if (sampling) in->sp.temperature = t;
		double k = num_or(gc, "top_k", 0, &f);
		if (f) in->sp.top_k = k > 0 ? (int)k : 0;
		double p = num_or(gc, "top_p", 1, &f);
		if (f) in->sp.top_p = p;
		p = num_or(gc, "min_p", 0, &f);
		if (f) in->sp.min_p = p;
		p = num_or(gc, "repetition_penalty", 1, &f);
		if (f && p > 0) in->sp.repetition_penalty = p;
		p = num_or(gc, "max_new_tokens", 0, &f);
		if (f && p >= 1) in->max_tokens = (long)p;
		add_stops_of(in, jv_object_get(jv_copy(gc), jv_string("eos_token_id")));
	}
	jv_free(gc);
	free(text);
	free(path);
	if (g->set & GEN_TEMP) in->sp.temperature = g->sp.temperature;
	if (g->set & GEN_TOPK) in->sp.top_k = g->sp.top_k;
	if (g->set & GEN_TOPP) in->sp.top_p = g->sp.top_p;
	if (g->set & GEN_MINP) in->sp.min_p = g->sp.min_p;
	if (g->set & GEN_REP) in->sp.repetition_penalty = g->sp.repetition_penalty;
	if (g->set & GEN_MAX) in->max_tokens = g->max_tokens;
	in->seed = g->seed;
}

static void infer_load(struct infer *in, const struct opts *o)
{
	char *err = NULL;
	char *tpath = xasprintf("%s/tokenizer.json", o->model_dir);
	if (access(tpath, R_OK) != 0) cli_die(EXIT_RUNTIME, "%s: %m (the model directory needs its tokenizer)", tpath);
	in->tok = tokenizer_load(tpath, &err);
	free(tpath);
	if (!in->tok) cli_die(EXIT_RUNTIME, "%s", err);
	in->m = o->fp32 ? qwen2_load(o->model_dir, &err) : qwen2_load_stored(o->model_dir, &err);
	if (!in->m) cli_die(EXIT_RUNTIME, "%s", err);
	in->V = in->m->cfg.vocab;
	in->ctx = in->m->cfg.max_pos;
	if (o->ctx > 0 && o->ctx < in->ctx) in->ctx = (int)o->ctx;
	/* The template the model was trained with, as ds-tokenize picks it. */
	in->tpl = o->chat_template ? chat_template_find(o->chat_template) : chat_template_guess(in->tok);
	if (!in->tpl)
		cli_die(EXIT_RUNTIME, "%s: the tokenizer has neither Qwen's <|im_start|>/<|im_end|> nor "
			"R1-Distill's <\uff5cUser\uff5c>/<\uff5cAssistant\uff5c> tokens: no chat template fits it",
			o->model_dir);
	char why[256];
	if (chat_template_check(in->tpl, in->tok, why, sizeof why))
		cli_die(EXIT_RUNTIME, "%s: %s", o->model_dir, why);
	if (!in->tpl->reasoning && (o->no_thinking || o->preserve_thinking))
		cli_die(EXIT_USAGE, "--%s is for a reasoning chat template (deepseekr1), not %s",
			o->no_thinking ? "no-thinking" : "preserve-thinking", in->tpl->name);
	in->no_thinking = o->no_thinking;
	in->preserve_thinking = o->preserve_thinking;
	in->system = o->system;
	in->stop_strs = o->stop.n ? &o->stop : NULL;
	/* the template's end of turn always stops; then the model's eos */
	long eot = token_id(in->tok, in->tpl->stop);
	if (eot < 0 || eot >= in->V)
		cli_die(EXIT_RUNTIME, "%s: the tokenizer's %s is id %ld, outside the model's vocabulary of %d",
			o->model_dir, in->tpl->stop, eot, in->V);
	add_stop(in, (double)eot);
	add_stops_of(in, jv_object_get(jv_copy(in->m->cfg.json), jv_string("eos_token_id")));
	settings_load(in, o->model_dir, &o->gen);
	if (o->model_name) {
		in->name = xstrdup(o->model_name);
	} else {
		const char *d = o->model_dir;
		size_t n = strlen(d);
		while (n > 1 && d[n - 1] == '/') n--;
		size_t s = n;
		while (s > 0 && d[s - 1] != '/') s--;
		in->name = xasprintf("%.*s", (int)(n - s), d + s);
	}
}

static void infer_free(struct infer *in)
{
	qwen2_free(in->m);
	tokenizer_free(in->tok);
	free(in->name);
}

static int is_stop(const struct infer *in, uint32_t id)
{
	for (int i = 0; i < in->n_stops; i++)
		if (in->stops[i] == id) return 1;
	return 0;
}

/* The prompt of conversation c: its ids (owned, *n of them) or NULL with
 * why[0..why_n) saying why it cannot be answered. */
static uint32_t *prompt_ids(const struct infer *in, chat_encoder *ce, const chat_conv *c, int *n, char *why,
			    size_t why_n)
{
	chat_encode(ce, c, in->system);
	size_t k = ce->ids.n;
	for (size_t i = 0; i < k; i++)
		if (ce->ids.ids[i] >= (uint32_t)in->V) {
			snprintf(why, why_n, "token %u of the prompt is outside the model's vocabulary of %d",
				 ce->ids.ids[i], in->V);
			return NULL;
		}
	if (k >= (size_t)in->ctx) {
		snprintf(why, why_n, "the prompt is %zu tokens; the context holds %d", k, in->ctx);
		return NULL;
	}
	uint32_t *ids = xmalloc(k * sizeof *ids);
	memcpy(ids, ce->ids.ids, k * sizeof *ids);
	*n = (int)k;
	return ids;
}

/* ---- text: UTF-8 as it completes, stop strings, the chain of thought apart */

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
enum { TEXT_REASONING, TEXT_CONTENT };

typedef void (*emit_fn)(void *ud, int kind, const char *s, size_t n);

struct text {
	char pend[8];     /* bytes of an unfinished UTF-8 character */
	int n_pend;
	const struct stop_strs *stop; /* borrowed, or NULL: none */
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

static void jb_put(jbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2 + 64;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static int is_ws(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static void text_emit(struct text *t, int kind, const char *s, size_t n, emit_fn f, void *ud)
{
	if (t->lead) {
		while (n && is_ws(*s)) s++, n--;
		if (!n) return;
		t->lead = 0;
	}
	jb_put(kind == TEXT_REASONING ? &t->reasoning : &t->content, s, n);
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
static void text_split(struct text *t, int final, emit_fn f, void *ud)
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
			if (n) text_emit(t, TEXT_CONTENT, h, n, f, ud);
			t->hold.n = 0;
			return;
		}
		char *close = n ? memmem(h, n, "</think>", 8) : NULL;
		if (close) {
			size_t e = (size_t)(close - h);
			while (e && is_ws(h[e - 1])) e--;
			if (e) text_emit(t, TEXT_REASONING, h, e, f, ud);
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
		if (keep) text_emit(t, TEXT_REASONING, h, keep, f, ud);
		memmove(h, h + keep, n - keep);
		t->hold.n = final ? 0 : n - keep;
		return;
	}
}

/* Where the earliest stop string starts in t->raw (at passed or later:
 * what went before was no start of one), or -1. */
static long stop_find(const struct text *t)
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
static int text_feed(struct text *t, const char *s, size_t n, int final, emit_fn f, void *ud)
{
	if (t->stopped) return 1;
	jbuf in = {0};
	jb_put(&in, t->pend, (size_t)t->n_pend);
	jb_put(&in, s, n);
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
	jb_put(&t->raw, "", 0); /* never NULL below */
	for (size_t at = 0; at < end;) {
		size_t ok = utf8_check(in.p + at, end - at);
		jb_put(&t->raw, in.p + at, ok);
		at += ok;
		if (at < end) {
			jb_put(&t->raw, "\xef\xbf\xbd", 3);
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
	jb_put(&t->hold, t->raw.p + t->passed, go - t->passed);
	t->passed = go;
	text_split(t, final, f, ud);
	return t->stopped;
}

static void text_free(struct text *t)
{
	free(t->raw.p);
	free(t->hold.p);
	free(t->reasoning.p);
	free(t->content.p);
}

/* ---- the engine: sequences decoded together --------------------------- */

struct seq;
typedef void (*seq_fn)(struct seq *s);

struct seq {
	uint32_t *ids;       /* (cap_ids) owned: the prompt, then what was generated */
	int n_prompt, n_ids, cap_ids;
	int max_new;         /* new tokens at most (fits the context) */
	sample_params sp;
	sample_rng rng;
	qwen2_cache *cache;  /* owned, unless borrowed (the chat keeps its own) */
	int cache_borrowed;
	int reused;          /* prompt positions already in a borrowed cache */
	const char *finish;  /* NULL while running; "stop" or "length" */
	struct text text;
	int index;           /* the choice's index in its request */
	double t_start, t_first, t_end; /* seconds: admitted, first token, done */
	seq_fn on_token, on_done;
	void *ud;
	jv rec;              /* batch: the record (owned) */
	int sample;          /* batch: the sample number */
	long line;           /* batch: input line */
	struct seq *next;    /* in a queue */
};

struct engine {
	struct infer *in;
	struct seq **act;    /* (B) the sequences being decoded */
	int n_act, B;
	qwen2_seg *segs;     /* (B) */
	float *logits;       /* (B, V) */
	sample_cand *cand;   /* (V) */
	uint8_t *seen;       /* (V) zeroed */
	double prefill_s, decode_s;
	uint64_t prefill_tok, decode_tok;
};

static void engine_init(struct engine *e, struct infer *in, int B)
{
	*e = (struct engine){.in = in, .B = B};
	e->act = xcalloc((size_t)B, sizeof *e->act);
	e->segs = xcalloc((size_t)B, sizeof *e->segs);
	e->logits = xmalloc((size_t)B * (size_t)in->V * sizeof *e->logits);
	e->cand = xmalloc((size_t)in->V * sizeof *e->cand);
	e->seen = xcalloc((size_t)in->V, 1);
}

static void engine_free(struct engine *e)
{
	free(e->act), free(e->segs), free(e->logits), free(e->cand), free(e->seen);
}

/* A sequence for prompt ids (consumed: owned by the sequence) with new
 * tokens at most max_new (clipped to the context). */
static struct seq *seq_new(struct infer *in, uint32_t *ids, int n, long max_new, const sample_params *sp,
			   uint64_t seed)
{
	struct seq *s = xcalloc(1, sizeof *s);
	long room = in->ctx - n;
	s->max_new = (int)(max_new < room ? max_new : room);
	s->cap_ids = n + s->max_new;
	s->ids = xrealloc(ids, (size_t)s->cap_ids * sizeof *ids);
	s->n_prompt = s->n_ids = n;
	s->sp = *sp;
	s->text.stop = in->stop_strs;
	sample_rng_seed(&s->rng, seed);
	s->rec = jv_invalid();
	return s;
}

static void seq_free(struct seq *s)
{
	if (!s) return;
	if (!s->cache_borrowed) qwen2_cache_free(s->cache);
	free(s->ids);
	text_free(&s->text);
	jv_free(s->rec);
	free(s);
}

/* Room in s's cache for `need` positions: grown in steps, so that a short
 * answer does not pay for the longest one. */
static void cache_reserve(struct engine *e, struct seq *s, int need)
{
	const qwen2_config *c = &e->in->m->cfg;
	int full = s->cap_ids > 0 ? s->cap_ids : 1;
	if (s->cache && s->cache->cap >= need) return;
	int cap = s->cache ? s->cache->cap * 2 : need + 256;
	if (cap < need) cap = need;
	if (cap > full) cap = full;
	qwen2_cache *k = qwen2_cache_new(e->in->m, cap);
	if (s->cache) {
		size_t KD = (size_t)c->n_kv_heads * (size_t)c->head_dim, len = (size_t)s->cache->len;
		for (int l = 0; l < c->n_layers; l++) {
			memcpy(k->k + (size_t)l * (size_t)cap * KD, s->cache->k + (size_t)l * (size_t)s->cache->cap * KD,
			       len * KD * sizeof(float));
			memcpy(k->v + (size_t)l * (size_t)cap * KD, s->cache->v + (size_t)l * (size_t)s->cache->cap * KD,
			       len * KD * sizeof(float));
		}
		k->len = s->cache->len;
		if (!s->cache_borrowed) qwen2_cache_free(s->cache);
	}
	s->cache = k;
	s->cache_borrowed = 0;
}

/* Decode a generated token into s's text. */
static void seq_text(struct engine *e, struct seq *s, uint32_t id, int final, emit_fn f, void *ud)
{
	size_t len = 0;
	char *b = NULL;
	if (!(s->finish && !strcmp(s->finish, "stop") && final)) {
		b = tokenizer_decode(e->in->tok, &id, 1, 0, &len, NULL);
		if (!b) len = 0;
	}
	int open = !s->text.closed; /* the tokens up to the one completing </think> are reasoning */
	/* a stop string wins over the length limit the same token reached */
	if (text_feed(&s->text, b ? b : "", len, final, f, ud)) s->finish = "stop";
	if (open && b) s->text.reasoning_tokens++;
	if (s->finish && !s->text.thought) s->text.reasoning_tokens = 0;
	free(b);
}

/* One step: a forward over every active sequence's pending tokens, a new
 * token for each; the finished leave (on_done). Returns -1 when nothing
 * is active. */
static int engine_step(struct engine *e)
{
	if (e->n_act == 0) return -1;
	struct infer *in = e->in;
	int prefill = 0, n_tok = 0;
	for (int i = 0; i < e->n_act; i++) {
		struct seq *s = e->act[i];
		int len = s->cache ? s->cache->len : 0;
		cache_reserve(e, s, s->n_ids);
		e->segs[i] = (qwen2_seg){s->cache, s->ids + len, s->n_ids - len};
		if (s->n_ids - len > 1) prefill = 1;
		n_tok += s->n_ids - len;
	}
	double t0 = now_s();
	if (qwen2_forward_segs(in->m, e->segs, e->n_act, e->logits) != 0)
		cli_die(EXIT_RUNTIME, "internal error: a cache overflowed");
	double t1 = now_s();
	for (int i = 0; i < e->n_act; i++) {
		struct seq *s = e->act[i];
		float *lg = e->logits + (size_t)i * (size_t)in->V;
		uint32_t id = sample_next(&s->sp, lg, in->V, s->ids, (size_t)s->n_ids, e->seen, &s->rng, e->cand);
		s->ids[s->n_ids++] = id;
		if (!s->t_first) s->t_first = t1;
		int n_out = s->n_ids - s->n_prompt;
		if (is_stop(in, id)) s->finish = "stop";
		else if (n_out >= s->max_new) s->finish = "length";
		if (s->on_token) s->on_token(s);
	}
	/* the speeds count the choosing and the text too, not only the forward */
	double t2 = now_s();
	if (prefill) e->prefill_s += t2 - t0, e->prefill_tok += (uint64_t)n_tok;
	else e->decode_s += t2 - t0, e->decode_tok += (uint64_t)n_tok;
	int k = 0;
	for (int i = 0; i < e->n_act; i++) {
		struct seq *s = e->act[i];
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

/* ---- batch mode: problem records in, teacher objects out -------------- */

struct batch {
	const struct opts *o;
	struct infer *in;
	struct engine eng;
	FILE *out;
	char *user_tpl;       /* --template text, or NULL */
	chat_encoder ce;
	chat_conv conv;
	long written, prompt_tokens, completion_tokens;
	int werr;
};

/* The user turn for a problem: the trimmed problem, or the template with
 * {problem} replaced. Returns owned. */
static char *problem_turn(const char *tpl, const char *problem)
{
	while (is_ws(*problem)) problem++;
	size_t n = strlen(problem);
	while (n && is_ws(problem[n - 1])) n--;
	if (!tpl) return xasprintf("%.*s", (int)n, problem);
	jbuf b = {0};
	jb_put(&b, "", 0);
	for (const char *p = tpl;;) {
		const char *ph = strstr(p, "{problem}");
		if (!ph) {
			jb_put(&b, p, strlen(p));
			break;
		}
		jb_put(&b, p, (size_t)(ph - p));
		jb_put(&b, problem, n);
		p = ph + 9;
	}
	while (b.n && b.p[b.n - 1] == '\n') b.p[--b.n] = '\0';
	return b.p;
}

static jv ids_json(const uint32_t *ids, int n)
{
	jv a = jv_array_sized(n);
	for (int i = 0; i < n; i++) a = jv_array_append(a, jv_number(ids[i]));
	return a;
}

static struct batch *batch_of; /* the one batch run, for the callbacks */

static void batch_on_token(struct seq *s)
{
	seq_text(&batch_of->eng, s, s->ids[s->n_ids - 1], s->finish != NULL, NULL, NULL);
}

static void batch_on_done(struct seq *s)
{
	struct batch *b = batch_of;
	int n_out = s->n_ids - s->n_prompt;
	jv u = jv_object();
	u = jv_object_set(u, jv_string("prompt_tokens"), jv_number(s->n_prompt));
	u = jv_object_set(u, jv_string("completion_tokens"), jv_number(n_out));
	u = jv_object_set(u, jv_string("reasoning_tokens"), jv_number(s->text.reasoning_tokens));
	u = jv_object_set(u, jv_string("cached_tokens"), jv_number(0));
	jv t = jv_object();
	t = jv_object_set(t, jv_string("model"), jv_string(b->in->name));
	t = jv_object_set(t, jv_string("reasoning"), jv_string_sized(s->text.reasoning.p ? s->text.reasoning.p : "",
								     (int)s->text.reasoning.n));
	t = jv_object_set(t, jv_string("content"), jv_string_sized(s->text.content.p ? s->text.content.p : "",
								   (int)s->text.content.n));
	t = jv_object_set(t, jv_string("finish_reason"), jv_string(s->finish));
	t = jv_object_set(t, jv_string("sample"), jv_number(s->sample));
	t = jv_object_set(t, jv_string("usage"), u);
	t = jv_object_set(t, jv_string("latency_ms"), jv_number(floor((s->t_end - s->t_start) * 1000)));
	if (b->o->ids) {
		t = jv_object_set(t, jv_string("prompt_ids"), ids_json(s->ids, s->n_prompt));
		t = jv_object_set(t, jv_string("completion_ids"), ids_json(s->ids + s->n_prompt, n_out));
	}
	jv rec = jv_object_set(jv_copy(s->rec), jv_string("teacher"), t);
	if (jsonl_write(b->out, rec) || fflush(b->out)) b->werr = 1; /* a kill loses nothing written */
	b->written++;
	b->prompt_tokens += s->n_prompt;
	b->completion_tokens += n_out;
	seq_free(s);
}

/* The prompt of a record (borrowed): ids owned, or NULL with why. */
static uint32_t *record_prompt(struct batch *b, jv rec, int *n, char *why, size_t why_n)
{
	const char *problem = jsonl_get_string(rec, "problem");
	if (problem) {
		char *turn = problem_turn(b->user_tpl, problem);
		b->conv.n = 0;
		b->conv.system = (chat_turn){NULL, 0};
		chat_conv_add(&b->conv, turn, strlen(turn));
		uint32_t *ids = prompt_ids(b->in, &b->ce, &b->conv, n, why, why_n);
		free(turn);
		return ids;
	}
	const char *bad = chat_conv_parse(rec, &b->conv, CHAT_END_USER, why, why_n);
	if (bad) {
		if (bad != why) snprintf(why, why_n, "no \"problem\" string, and %s", bad);
		return NULL;
	}
	return prompt_ids(b->in, &b->ce, &b->conv, n, why, why_n);
}

/* The seed of one answer: the run's seed, the record's id and the sample
 * number, so an answer is the same whatever else runs beside it. */
static uint64_t seed_of(uint64_t seed, const char *id, int sample)
{
	uint64_t h = 1469598103934665603ull ^ seed;
	for (const char *p = id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h ^ ((uint64_t)sample * 0x9e3779b97f4a7c15ull);
}

static int run_batch(const struct opts *o, struct infer *in, const char **inputs, int n_inputs)
{
	struct batch b = {.o = o, .in = in, .out = stdout};
	batch_of = &b;
	b.ce = infer_encoder(in);
	if (o->template_file) {
		b.user_tpl = cli_read_file(o->template_file);
		if (!b.user_tpl) cli_die(EXIT_USAGE, "%s: cannot read the template", o->template_file);
	}
	engine_init(&b.eng, in, o->batch);
	idset *done = idset_new();
	long n_done = 0, read = 0, skipped = 0, bad = 0;
	if (o->output) b.out = resume_open(o->output, done, resume_key_id_sample, &n_done);
	int status = 0, eof = 0, in_i = 0, sample_next = 0;
	jsonl_reader *r = NULL;
	jv cur = jv_invalid();
	long cur_line = 0;
	progress pg;
	progress_start(&pg, cli_prog, -1);
	char why[256];
	for (;;) {
		while (!eof && b.eng.n_act < b.eng.B) {
			if (!jv_is_valid(cur)) {
				if (!r) {
					if (in_i == n_inputs) {
						eof = 1;
						break;
					}
					char *err = NULL;
					r = jsonl_reader_open(inputs[in_i++], &err);
					if (!r) cli_die(EXIT_RUNTIME, "%s", err);
				}
				int k = jsonl_reader_next(r, &cur);
				if (k == 0) {
					jsonl_reader_close(r);
					r = NULL;
					continue;
				}
				if (k < 0 || !jsonl_get_string(cur, "id")) {
					jsonl_reader_report(r, "%s", k < 0 ? jsonl_reader_error(r) : "record without an \"id\" string");
					if (k > 0) jv_free(cur);
					cur = jv_invalid();
					if (!o->skip_bad || (k < 0 && jsonl_reader_fatal(r))) {
						status = EXIT_RUNTIME;
						eof = 1;
						break;
					}
					bad++;
					continue;
				}
				read++;
				cur_line = jsonl_reader_line(r);
				sample_next = 0;
			}
			if (sample_next >= o->samples) {
				jv_free(cur);
				cur = jv_invalid();
				continue;
			}
			const char *id = jsonl_get_string(cur, "id");
			char *key = xasprintf("%s\x1f%d", id, sample_next);
			int seen = idset_has(done, key, strlen(key));
			if (!seen) idset_add(done, key, strlen(key)); /* a repeat in the input is done once */
			free(key);
			if (seen) {
				skipped++;
				sample_next++;
				continue;
			}
			int n = 0;
			uint32_t *ids = record_prompt(&b, cur, &n, why, sizeof why);
			if (!ids) {
				jsonl_reader_report(r, "%s", why);
				jv_free(cur);
				cur = jv_invalid();
				if (!o->skip_bad) {
					status = EXIT_RUNTIME;
					eof = 1;
					break;
				}
				bad++;
				continue;
			}
			struct seq *s = seq_new(in, ids, n, in->max_tokens, &in->sp, seed_of(in->seed, id, sample_next));
			s->rec = jv_copy(cur);
			s->sample = sample_next++;
			s->line = cur_line;
			s->on_token = batch_on_token;
			s->on_done = batch_on_done;
			s->t_start = now_s();
			b.eng.act[b.eng.n_act++] = s;
		}
		if (engine_step(&b.eng) < 0) break;
		if (b.werr) cli_die(EXIT_RUNTIME, "%s: write error: %m", o->output ? o->output : "stdout");
		progress_update(&pg, (uint64_t)b.written, 0);
	}
	progress_finish(&pg);
	jv_free(cur);
	if (r) jsonl_reader_close(r);
	if (o->output) resume_close(b.out, o->output);
	else cli_close_stdout();
	if (!o->quiet)
		fprintf(stderr,
			"%s: %ld problems read, %ld answers written, %ld already done, %ld bad line%s skipped; "
			"tokens: %ld prompt, %ld completion; prefill %.1f tok/s, decode %.1f tok/s (batch of %d)\n",
			cli_prog, read, b.written, skipped, bad, bad == 1 ? "" : "s", b.prompt_tokens,
			b.completion_tokens, b.eng.prefill_s > 0 ? (double)b.eng.prefill_tok / b.eng.prefill_s : 0,
			b.eng.decode_s > 0 ? (double)b.eng.decode_tok / b.eng.decode_s : 0, b.eng.B);
	(void)n_done;
	idset_free(done);
	engine_free(&b.eng);
	chat_encoder_free(&b.ce);
	chat_conv_free(&b.conv);
	free(b.user_tpl);
	return status;
}

/* ---- the chat REPL ---------------------------------------------------- */

struct chat {
	struct engine eng;
	int tty;  /* stdout is a terminal: the chain of thought dim */
	int mark; /* the chain of thought is being shown (dim, or between tags) */
};

static void chat_emit(void *ud, int kind, const char *s, size_t n)
{
	struct chat *c = ud;
	int thinking = kind == TEXT_REASONING;
	if (thinking != c->mark) {
		/* on a terminal the chain of thought is dim; elsewhere between
		 * the tags the model wrote, white space around it normalised */
		if (c->tty) fputs(thinking ? "\033[2m" : "\033[0m\n\n", stdout);
		else fputs(thinking ? "<think>\n" : "\n</think>\n\n", stdout);
		c->mark = thinking;
	}
	fwrite(s, 1, n, stdout);
	fflush(stdout);
}

static struct chat *chat_of;

static void chat_on_token(struct seq *s)
{
	seq_text(&chat_of->eng, s, s->ids[s->n_ids - 1], s->finish != NULL, chat_emit, chat_of);
}

static int run_chat(const struct opts *o, struct infer *in)
{
	struct chat c = {.tty = isatty(1)};
	chat_of = &c;
	engine_init(&c.eng, in, 1);
	int in_tty = isatty(0);
	char **turns = NULL; /* owned texts of the conversation */
	int n_turns = 0;
	chat_conv conv = {0};
	chat_encoder ce = infer_encoder(in);
	qwen2_cache *cache = NULL; /* kept from turn to turn: what it holds is the last ids */
	uint32_t *cached = NULL;
	int n_cached = 0;
	char *line = NULL;
	size_t cap = 0;
	long turn_no = 0;
	if (in_tty)
		fprintf(stderr, "%s: %s; \"quit\" or end of input (Ctrl-D) leaves, \"/clear\" forgets the conversation\n",
			cli_prog, in->name);
	for (;;) {
		if (in_tty) fputs("> ", stdout), fflush(stdout);
		ssize_t k = getline(&line, &cap, stdin);
		if (k < 0) break;
		while (k && (line[k - 1] == '\n' || line[k - 1] == '\r')) line[--k] = '\0';
		if (!strcmp(line, "quit") || !strcmp(line, "exit")) break;
		if (!strcmp(line, "/clear")) {
			for (int i = 0; i < n_turns; i++) free(turns[i]);
			n_turns = 0;
			continue;
		}
		if (k == 0) continue;
		if (utf8_check(line, (size_t)k) != (size_t)k) {
			cli_warn("that line is not valid UTF-8");
			continue;
		}
		turn_no++;
		turns = xrealloc(turns, (size_t)(n_turns + 2) * sizeof *turns);
		turns[n_turns++] = xstrdup(line);
		conv.n = 0;
		for (int i = 0; i < n_turns; i++) chat_conv_add(&conv, turns[i], strlen(turns[i]));
		int n = 0;
		char why[256];
		uint32_t *ids = prompt_ids(in, &ce, &conv, &n, why, sizeof why);
		if (!ids) {
			cli_warn("%s; this turn is dropped (/clear starts afresh)", why);
			free(turns[--n_turns]);
			continue;
		}
		struct seq *s = seq_new(in, ids, n, in->max_tokens, &in->sp, seed_of(in->seed, "chat", (int)turn_no));
		/* keep what the cache holds of the same prefix (one token at least is fed) */
		int common = 0;
		while (common < n_cached && common < n - 1 && cached[common] == s->ids[common]) common++;
		if (cache) { /* the sequence owns it for the turn */
			cache->len = common;
			s->cache = cache;
			s->reused = common;
			cache = NULL;
		}
		s->on_token = chat_on_token;
		s->t_start = now_s();
		c.eng.act[0] = s;
		c.eng.n_act = 1;
		double p0 = c.eng.prefill_s, d0 = c.eng.decode_s;
		uint64_t pt0 = c.eng.prefill_tok, dt0 = c.eng.decode_tok;
		while (c.eng.n_act) engine_step(&c.eng);
		if (c.mark) fputs(c.tty ? "\033[0m" : "\n</think>", stdout);
		c.mark = 0;
		fputs("\n", stdout);
		fflush(stdout);
		int n_out = s->n_ids - s->n_prompt;
		double dt = c.eng.decode_s - d0, pt = c.eng.prefill_s - p0;
		fprintf(stderr, "[%d tokens, %.1f tok/s; prompt %d tokens (%d cached), %.1f tok/s%s]\n", n_out,
			dt > 0 ? (double)(c.eng.decode_tok - dt0) / dt : 0, n, s->reused,
			pt > 0 ? (double)(c.eng.prefill_tok - pt0) / pt : 0,
			strcmp(s->finish, "length") ? "" : "; cut at --max-tokens");
		/* history keeps the answer, not its chain of thought (as R1 is used) */
		const char *ans = s->text.content.n ? s->text.content.p : s->text.reasoning.p ? s->text.reasoning.p : "";
		turns[n_turns++] = xstrdup(ans);
		/* the cache now holds ids[0..n_ids-1): keep them for the next turn */
		cache = s->cache;
		s->cache = NULL;
		free(cached);
		n_cached = s->n_ids - 1;
		cached = xmalloc((size_t)(n_cached + 1) * sizeof *cached);
		memcpy(cached, s->ids, (size_t)n_cached * sizeof *cached);
		seq_free(s);
	}
	free(line);
	for (int i = 0; i < n_turns; i++) free(turns[i]);
	free(turns);
	free(cached);
	qwen2_cache_free(cache);
	chat_conv_free(&conv);
	chat_encoder_free(&ce);
	engine_free(&c.eng);
	cli_close_stdout();
	return 0;
}

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
	struct seq **seqs;    /* (n) borrowed: each frees itself when done */
	int *n_prompt, *n_out, *n_reason; /* (n) counts, kept after the sequences go */
	const char **finish;  /* (n) */
	struct stop_strs stop; /* the request's 'stop', borrowed from stop_json */
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
	struct seq *queue, *queue_tail;
	struct engine eng;
	size_t max_body;
	unsigned long next;
	int verbose;      /* a line a finished choice on stderr */
};

static struct server *srv_of;

/* Both under srv->mu. */
static void req_unref(struct req *r)
{
	if (--r->refs > 0) return;
	pthread_cond_destroy(&r->cv);
	free(r->seqs), free(r->n_prompt), free(r->n_out), free(r->n_reason), free(r->finish);
	jv_free(r->stop_json);
	jv_free(r->answers);
	free(r->out.p);
	free(r);
}

static void sse(struct req *r, jv chunk)
{
	jb_put(&r->out, "data: ", 6);
	json_dump(&r->out, chunk);
	jv_free(chunk);
	jb_put(&r->out, "\n\n", 2);
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

static jv delta_choice(int index, jv delta, jv finish)
{
	jv c = jv_object_set(jv_object(), jv_string("index"), jv_number(index));
	c = jv_object_set(c, jv_string("delta"), delta);
	c = jv_object_set(c, jv_string("logprobs"), jv_null());
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

/* Under srv->mu: streamed text of one choice. */
static void serve_emit(void *ud, int kind, const char *s, size_t n)
{
	struct seq *q = ud;
	struct req *r = q->ud;
	if (!r->stream) return;
	jv d = jv_object_set(jv_object(), jv_string(kind == TEXT_REASONING ? "reasoning_content" : "content"),
			     jv_string_sized(s, (int)n));
	sse(r, chunk_of(r, jv_array_append(jv_array(), delta_choice(q->index, d, jv_null()))));
}

static void serve_on_token(struct seq *s)
{
	struct server *sv = srv_of;
	struct req *r = s->ud;
	pthread_mutex_lock(&sv->mu);
	if (!r->cancelled) seq_text(&sv->eng, s, s->ids[s->n_ids - 1], s->finish != NULL, serve_emit, s);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&sv->mu);
}

static void serve_on_done(struct seq *s)
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
			sse(r, chunk_of(r, jv_array_append(jv_array(), delta_choice(i, jv_object(), jv_string(r->finish[i])))));
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
			c = jv_object_set(c, jv_string("logprobs"), jv_null());
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
			jb_put(&r->out, "data: [DONE]\n\n", 14);
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
	seq_free(s);
	req_unref(r);
	pthread_mutex_unlock(&sv->mu);
}

static void *engine_main(void *arg)
{
	struct server *sv = arg;
	struct engine *e = &sv->eng;
	pthread_mutex_lock(&sv->mu);
	for (;;) {
		/* a client gone: its sequences leave now */
		int k = 0;
		for (int i = 0; i < e->n_act; i++) {
			struct seq *s = e->act[i];
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
			struct seq *s = sv->queue;
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
		engine_step(e);
		pthread_mutex_lock(&sv->mu);
	}
	return NULL;
}

/* One connection's request as it arrives. */
struct conn {
	jbuf body;
	size_t received;
	int too_big;
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
static int field_stop(jv v, struct stop_strs *st, char *why, size_t why_n)
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
		if (n > MAX_STOP_STRS) {
			snprintf(why, why_n, "'stop' holds %d strings; at most %d are allowed", n, MAX_STOP_STRS);
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
		snprintf(why, why_n, "'stop' must be a string or an array of up to %d strings", MAX_STOP_STRS);
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
	struct stop_strs stops = {0};
	chat_conv conv = {0};
	chat_encoder ce = infer_encoder(in);
	sample_params sp = in->sp;
	double d;
	int present, nchoice = 1, stream = 0, include_usage = 0;
	long max_new = in->max_tokens;
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
	if (present) max_new = (long)d;
	if (field_num(body, "max_completion_tokens", 1, 1e9, 1, &d, &present, why, sizeof why)) goto bad;
	if (present) max_new = (long)d;
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
	struct req *r = xcalloc(1, sizeof *r);
	r->srv = sv;
	pthread_cond_init(&r->cv, NULL);
	r->n = nchoice;
	r->stream = stream;
	r->include_usage = include_usage;
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
		struct seq *s = seq_new(in, cp, np, max_new, &sp, seed + (uint64_t)i * 0x9e3779b97f4a7c15ull);
		s->index = i;
		s->ud = r;
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
		for (int i = 0; i < nchoice; i++) chs = jv_array_append(chs, delta_choice(i, jv_copy(d0), jv_null()));
		jv_free(d0);
		sse(r, chunk_of(r, chs));
	}
	for (int i = 0; i < nchoice; i++) {
		struct seq *s = r->seqs[i];
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
		*state = k;
		if (post) {
			const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
			if (cl && strtoull(cl, NULL, 10) > sv->max_body) k->too_big = 1;
		}
		if (!k->too_big) return MHD_YES;
	}
	struct conn *k = *state;
	if (*upload_n) {
		/* libmicrohttpd takes a response only before the body or after
		 * it: an oversized chunked body is read to its end and dropped
		 * (up to a limit, past which the connection is closed) */
		k->received += *upload_n;
		if (k->received > sv->max_body) k->too_big = 1;
		if (!k->too_big) jb_put(&k->body, upload, *upload_n);
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

static int run_serve(const struct opts *o, struct infer *in)
{
	struct server sv = {.in = in, .max_body = o->max_body, .verbose = !o->quiet};
	srv_of = &sv;
	pthread_mutex_init(&sv.mu, NULL);
	pthread_cond_init(&sv.work, NULL);
	engine_init(&sv.eng, in, o->batch);
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
		on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)600, MHD_OPTION_END);
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

/* ---- numbers in options ----------------------------------------------- */

static double parse_num(const char *s, const char *what, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		cli_usage_error(usage, "%s must be a number from %g to %g", what, lo, hi);
	return v;
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		cli_usage_error(usage, "%s must be an integer from %ld to %ld", what, lo, hi);
	return v;
}

/* ---- logits: a testing aid -------------------------------------------- */

/* ds-infer logits: the logits (n, V) of n ids as generation computes them,
 * into a safetensors file, for the tests to hold to transformers. Row i
 * follows ids[0..i]. Rows below p = (n + 1) / 2 come from a fresh
 * prefill of ids[0..i] each (the many-token path); the rest from decoding
 * ids[p..n) one at a time after the prefill of the first p (the one-token
 * path), so both paths are checked. */
static int run_logits(int argc, char **argv)
{
	const char *dir = NULL, *list = NULL, *out = NULL;
	int fp32 = 0;
	enum { L_IDS = 256, L_FP32 };
	static const struct option lo[] = {{"model", 1, 0, 'm'}, {"ids", 1, 0, L_IDS}, {"output", 1, 0, 'o'},
					   {"fp32", 0, 0, L_FP32}, {"threads", 1, 0, 't'}, {0, 0, 0, 0}};
	for (int c; (c = getopt_long(argc, argv, "m:o:t:", lo, NULL)) != -1;) {
		if (c == 'm') dir = optarg;
		else if (c == L_IDS) list = optarg;
		else if (c == 'o') out = optarg;
		else if (c == L_FP32) fp32 = 1;
		else if (c == 't') omp_set_num_threads((int)parse_long(optarg, "-t", 1, 1024));
		else cli_usage_error(usage, "logits: bad option");
	}
	if (!dir || !list || !out || optind < argc) cli_usage_error(usage, "logits needs -m, --ids and -o, and no FILE");
	uint32_t *ids = xmalloc((strlen(list) / 2 + 1) * sizeof *ids);
	int n = 0;
	for (const char *p = list; *p;) {
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		if (errno || end == p || v < 0 || v > UINT32_MAX || (*end && *end != ','))
			cli_usage_error(usage, "--ids: '%s' is not a comma-separated list of token ids", list);
		ids[n++] = (uint32_t)v;
		p = *end ? end + 1 : end;
	}
	if (!n) cli_usage_error(usage, "--ids: no ids");
	char *err = NULL;
	qwen2_model *m = fp32 ? qwen2_load(dir, &err) : qwen2_load_stored(dir, &err);
	if (!m) cli_die(EXIT_RUNTIME, "%s", err);
	int V = m->cfg.vocab, p = (n + 1) / 2;
	for (int i = 0; i < n; i++)
		if (ids[i] >= (uint32_t)V) cli_die(EXIT_USAGE, "--ids: %u is not below the vocabulary size %d", ids[i], V);
	if (n > m->cfg.max_pos) cli_die(EXIT_USAGE, "--ids: %d ids; the model's context is %d", n, m->cfg.max_pos);
	float *logits = xmalloc((size_t)n * V * sizeof(float));
	qwen2_cache *k = qwen2_cache_new(m, n);
	for (int i = 0; i < p; i++) {
		k->len = 0;
		qwen2_seg s = {k, ids, i + 1};
		if (qwen2_forward_segs(m, &s, 1, logits + (size_t)i * V) != 0) cli_die(EXIT_RUNTIME, "internal error: the cache overflowed");
	}
	for (int i = p; i < n; i++) {
		qwen2_seg s = {k, ids + i, 1};
		if (qwen2_forward_segs(m, &s, 1, logits + (size_t)i * V) != 0) cli_die(EXIT_RUNTIME, "internal error: the cache overflowed");
	}
	st_writer *w = safetensors_writer_new();
	int64_t shape[2] = {n, V};
	safetensors_writer_add(w, "logits", ST_F32, 2, shape, logits);
	if (safetensors_writer_save_file(w, out, &err) < 0) cli_die(EXIT_RUNTIME, "%s", err);
	safetensors_writer_free(w);
	qwen2_cache_free(k);
	qwen2_free(m);
	free(logits);
	free(ids);
	return 0;
}

/* ---- the entry point -------------------------------------------------- */

int main(int argc, char **argv)
{
	cli_init("ds-infer");
	struct opts o = {.samples = 1, .batch = 8, .host = "127.0.0.1", .port = 8000, .max_body = 1 << 20,
			 .gen = {.sp = SAMPLE_GREEDY}};
	enum { O_CHAT = 256, O_BATCH, O_SYSTEM, O_TEMPLATE, O_IDS, O_SKIPBAD, O_HOST, O_PORT, O_PORTFILE, O_MAXBODY,
	       O_GREEDY, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_REP, O_MAXTOK, O_SEED, O_CTX, O_NAME, O_FP32,
	       O_CHATTPL, O_STOP, O_NOTHINK, O_PRESERVE };
	static const struct option longopts[] = {
		{"model", 1, 0, 'm'}, {"chat", 0, 0, O_CHAT}, {"batch", 0, 0, O_BATCH}, {"system", 1, 0, O_SYSTEM},
		{"samples", 1, 0, 'n'}, {"batch-size", 1, 0, 'b'}, {"template", 1, 0, O_TEMPLATE},
		{"ids", 0, 0, O_IDS}, {"output", 1, 0, 'o'}, {"skip-bad", 0, 0, O_SKIPBAD}, {"quiet", 0, 0, 'q'},
		{"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT}, {"port-file", 1, 0, O_PORTFILE},
		{"max-body", 1, 0, O_MAXBODY}, {"greedy", 0, 0, O_GREEDY}, {"temperature", 1, 0, O_TEMP},
		{"top-k", 1, 0, O_TOPK}, {"top-p", 1, 0, O_TOPP}, {"min-p", 1, 0, O_MINP},
		{"repetition-penalty", 1, 0, O_REP}, {"max-tokens", 1, 0, O_MAXTOK}, {"seed", 1, 0, O_SEED},
		{"ctx", 1, 0, O_CTX}, {"model-name", 1, 0, O_NAME}, {"threads", 1, 0, 't'},
		{"fp32", 0, 0, O_FP32}, {"chat-template", 1, 0, O_CHATTPL}, {"stop", 1, 0, O_STOP},
		{"no-thinking", 0, 0, O_NOTHINK}, {"preserve-thinking", 0, 0, O_PRESERVE}, CLI_LONGOPTS_COMMON, {0, 0, 0, 0}};
	if (argc > 1 && !strcmp(argv[1], "logits")) return run_logits(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "serve")) {
		o.mode = MODE_SERVE;
		argv[1] = argv[0];
		argc--, argv++;
	} else if (argc > 1 && argv[1][0] != '-') {
		cli_usage_error(usage, "unknown subcommand '%s' (serve, logits; a FILE comes after the options)", argv[1]);
	}
	int c, serving_opt = 0, batch_opt = 0;
	while ((c = getopt_long(argc, argv, "m:n:b:o:t:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o.model_dir = optarg; break;
		case O_CHAT:
			if (o.mode == MODE_SERVE) cli_usage_error(usage, "--chat is not for serve");
			o.mode = MODE_CHAT;
			break;
		case O_BATCH:
			if (o.mode == MODE_SERVE) cli_usage_error(usage, "--batch is not for serve");
			o.mode = MODE_BATCH;
			break;
		case O_SYSTEM: o.system = optarg; break;
		case 'n': o.samples = (int)parse_long(optarg, "-n", 1, 1000), batch_opt = 1; break;
		case 'b': o.batch = (int)parse_long(optarg, "-b", 1, 256); break;
		case O_TEMPLATE: o.template_file = optarg, batch_opt = 1; break;
		case O_IDS: o.ids = 1, batch_opt = 1; break;
		case 'o': o.output = optarg, batch_opt = 1; break;
		case O_SKIPBAD: o.skip_bad = 1, batch_opt = 1; break;
		case 'q': o.quiet = 1; break;
		case O_HOST: o.host = optarg, serving_opt = 1; break;
		case O_PORT: o.port = (int)parse_long(optarg, "--port", 0, 65535), serving_opt = 1; break;
		case O_PORTFILE: o.port_file = optarg, serving_opt = 1; break;
		case O_MAXBODY: o.max_body = (size_t)parse_long(optarg, "--max-body", 1024, 1L << 31), serving_opt = 1; break;
		case O_GREEDY: o.gen.sp.temperature = 0, o.gen.set |= GEN_TEMP; break;
		case O_TEMP: o.gen.sp.temperature = parse_num(optarg, "--temperature", 0, 100), o.gen.set |= GEN_TEMP; break;
		case O_TOPK: o.gen.sp.top_k = (int)parse_long(optarg, "--top-k", 0, 1 << 30), o.gen.set |= GEN_TOPK; break;
		case O_TOPP: o.gen.sp.top_p = parse_num(optarg, "--top-p", 1e-9, 1), o.gen.set |= GEN_TOPP; break;
		case O_MINP: o.gen.sp.min_p = parse_num(optarg, "--min-p", 0, 1), o.gen.set |= GEN_MINP; break;
		case O_REP:
			o.gen.sp.repetition_penalty = parse_num(optarg, "--repetition-penalty", 0.01, 100);
			o.gen.set |= GEN_REP;
			break;
		case O_MAXTOK: o.gen.max_tokens = parse_long(optarg, "--max-tokens", 1, 1L << 30), o.gen.set |= GEN_MAX; break;
		case O_SEED: o.gen.seed = (uint64_t)parse_long(optarg, "--seed", 0, LONG_MAX); break;
		case O_CTX: o.ctx = parse_long(optarg, "--ctx", 2, 1L << 30); break;
		case O_NAME: o.model_name = optarg; break;
		case O_FP32: o.fp32 = 1; break;
		case O_NOTHINK: o.no_thinking = 1; break;
		case O_PRESERVE: o.preserve_thinking = 1; break;
		case O_CHATTPL:
			if (!chat_template_find(optarg))
				cli_usage_error(usage, "unknown chat template '%s' (%s)", optarg, chat_template_names());
			o.chat_template = optarg;
			break;
		case O_STOP:
			if (o.stop.n == MAX_STOP_STRS) cli_usage_error(usage, "at most %d --stop strings", MAX_STOP_STRS);
			if (!*optarg) cli_usage_error(usage, "--stop: an empty string would stop at once");
			if (utf8_check(optarg, strlen(optarg)) != strlen(optarg))
				cli_usage_error(usage, "--stop is not valid UTF-8");
			o.stop.s[o.stop.n] = optarg;
			o.stop.len[o.stop.n++] = strlen(optarg);
			break;
		case 't': o.threads = (int)parse_long(optarg, "-t", 1, 1024); break;
		case 'h': fputs(usage, stdout); fputs(help, stdout); cli_close_stdout(); return 0;
		case 'V': cli_version(); cli_close_stdout(); return 0;
		default: cli_usage_error(usage, "bad option");
		}
	}
	if (!o.model_dir) cli_usage_error(usage, "-m DIR is required");
	if (serving_opt && o.mode != MODE_SERVE) cli_usage_error(usage, "--host, --port, --port-file and --max-body are for serve");
	if (o.stop.n && o.mode == MODE_SERVE) cli_usage_error(usage, "--stop is not for serve: a request gives its own 'stop'");
	if (o.mode == MODE_AUTO) o.mode = batch_opt || optind < argc || !isatty(0) ? MODE_BATCH : MODE_CHAT;
	if (batch_opt && o.mode != MODE_BATCH) cli_usage_error(usage, "-n, -o, --template, --ids and --skip-bad are for batch mode");
	if (o.mode != MODE_BATCH && optind < argc) cli_usage_error(usage, "FILE arguments are for batch mode");
	if (o.system && utf8_check(o.system, strlen(o.system)) != strlen(o.system))
		cli_usage_error(usage, "--system is not valid UTF-8");
	if (o.threads) omp_set_num_threads(o.threads);

	struct infer in = {0};
	infer_load(&in, &o);
	int status = 0;
	if (o.mode == MODE_SERVE) {
		status = run_serve(&o, &in);
	} else if (o.mode == MODE_CHAT) {
		status = run_chat(&o, &in);
	} else {
		const char *stdin_only[] = {"-"};
		const char **inputs = optind < argc ? (const char **)argv + optind : stdin_only;
		int n_inputs = optind < argc ? argc - optind : 1;
		status = run_batch(&o, &in, inputs, n_inputs);
	}
	infer_free(&in);
	return status;
}
