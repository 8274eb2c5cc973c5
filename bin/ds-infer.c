/* ds-infer — the distilled model at work: a chat on the terminal, answers
 * to problem records (batch mode, writing ds-teacher's `teacher` object so
 * that ds-judge grades the student as it graded the teacher), and an
 * OpenAI-compatible server.
 *
 * One engine drives all three (lib/infer.c): several sequences decoded
 * together, each step one forward (lib/forward.c) over a segment per
 * sequence (a prompt's prefill is one segment of many tokens, a decoding
 * step one token), each sequence with its own key/value cache. Prompts go
 * through the chat template of lib/chat.c, the very token layout
 * ds-tokenize trains on; tokens are chosen by lib/sample.c with
 * transformers' semantics. This file has the options, batch mode and the
 * chat; the server is bin/ds-infer-serve.c.
 */
#include "../lib/chat.h"
#include "../lib/check.h"
#include "../lib/cli.h"
#include "../lib/clock.h"
#include "../lib/idset.h"
#include "../lib/infer.h"
#include "../lib/json.h"
#include "../lib/jsonl.h"
#include "../lib/progress.h"
#include "../lib/qwen2.h"
#include "../lib/resume.h"
#include "../lib/safetensors.h"
#include "../lib/sample.h"
#include "../lib/tokenizer.h"
#include "../lib/soft.h"
#include "../lib/utf8.h"
#include "ds-infer.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-infer -m DIR [--chat] [--system TEXT] [--stop STR]... [sampling] [-t N]\n"
	"       ds-infer -m DIR [--batch] [-n K] [-b B] [--template FILE] [--ids]\n"
	"                [--logprobs K] [--skip-bad] [-q] [-o OUT] [--stop STR]... [sampling]\n"
	"                [-t N] [FILE...]\n"
	"       ds-infer serve -m DIR [--host ADDR] [--port P] [--port-file FILE]\n"
	"                [--max-body BYTES] [--api-key-file F] [--max-connections N]\n"
	"                [--idle-timeout S] [--request-timeout S] [-b B] [sampling] [-t N]\n"
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
	"      --logprobs K         add each token's log-probability and its K (1-20) most\n"
	"                           probable alternatives to each teacher object\n"
	"  -o, --output OUT         append to OUT; a rerun skips (id, sample) pairs there\n"
	"      --skip-bad           count and skip malformed lines instead of stopping\n"
	"      --stop STR           end an answer where its text shows STR, cut before it\n"
	"                           (up to 4 times; serve takes a request's 'stop' instead)\n"
	"  -q, --quiet              no summary on stderr\n"
	"      --host ADDR          serve: listen on ADDR (default 127.0.0.1)\n"
	"      --port P             serve: port (default 8000; 0 picks a free one)\n"
	"      --port-file FILE     serve: write the port there once listening\n"
	"      --max-body BYTES     serve: largest request body (default 1048576)\n"
	"      --api-key-file F     serve: every request but /health needs\n"
	"                           'Authorization: Bearer KEY', KEY read from F (else\n"
	"                           from DS_API_KEY; neither: no key asked)\n"
	"      --max-connections N  serve: connections open at once (default 2048)\n"
	"      --idle-timeout S     serve: a connection idle S seconds is closed (default 5)\n"
	"      --request-timeout S  serve: a request's headers and body must arrive\n"
	"                           within S seconds (default 30)\n"
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

/* A chat encoder for in's prompts. */
chat_encoder infer_encoder(const struct infer *in)
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

/* The prompt of conversation c: its ids (owned, *n of them) or NULL with
 * why[0..why_n) saying why it cannot be answered. */
uint32_t *prompt_ids(const struct infer *in, chat_encoder *ce, const chat_conv *c, int *n, char *why,
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

/* An engine of B slots for in's model and settings. */
void engine_init(struct infer_engine *e, struct infer *in, int B)
{
	infer_engine_init(e, in->m, in->tok, in->ctx, in->stops, in->n_stops, in->stop_strs, B);
}

/* ---- text helpers --------------------------------------------------- */

static int is_ws(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* The bytes of token id (owned, *n of them). */
char *token_bytes(const struct infer *in, uint32_t id, size_t *n)
{
	char *b = tokenizer_decode(in->tok, &id, 1, 0, n, NULL);
	if (!b) *n = 0, b = xstrdup(""); /* an id past the tokenizer's, as a padded vocabulary has */
	return b;
}

/* ---- batch mode: problem records in, teacher objects out -------------- */

struct batch {
	const struct opts *o;
	struct infer *in;
	struct infer_engine eng;
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
	jbuf_put(&b, "", 0);
	for (const char *p = tpl;;) {
		const char *ph = strstr(p, "{problem}");
		if (!ph) {
			jbuf_put(&b, p, strlen(p));
			break;
		}
		jbuf_put(&b, p, (size_t)(ph - p));
		jbuf_put(&b, problem, n);
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

/* A token as teacher.logprobs holds it (soft.h). */
static jv tok_json(const struct infer *in, uint32_t id)
{
	size_t n;
	char *b = token_bytes(in, id, &n);
	jv t = soft_token_json(b, n);
	free(b);
	return t;
}

/* teacher.logprobs of s, the compact form of ds-teacher's: {"k", "tokens",
 * "logprob", "top": [[TOK, LP, ...], ...]}, one entry a generated token
 * but the stop token. */
static jv logprobs_json(const struct infer *in, const struct infer_seq *s)
{
	int k = s->top_logprobs;
	jv toks = jv_array_sized(s->n_lp), lps = jv_array_sized(s->n_lp), tops = jv_array_sized(s->n_lp);
	for (int i = 0; i < s->n_lp; i++) {
		toks = jv_array_append(toks, tok_json(in, s->ids[s->n_prompt + i]));
		lps = jv_array_append(lps, soft_logprob_json(s->lp[i]));
		jv t = jv_array_sized(2 * k);
		for (int j = 0; j < k; j++) {
			const sample_logprob *a = &s->lp_top[(size_t)i * (size_t)k + (size_t)j];
			t = jv_array_append(t, tok_json(in, a->id));
			t = jv_array_append(t, soft_logprob_json(a->logprob));
		}
		tops = jv_array_append(tops, t);
	}
	jv o = jv_object_set(jv_object(), jv_string("k"), jv_number(k));
	o = jv_object_set(o, jv_string("tokens"), toks);
	o = jv_object_set(o, jv_string("logprob"), lps);
	return jv_object_set(o, jv_string("top"), tops);
}

static struct batch *batch_of; /* the one batch run, for the callbacks */

static void batch_on_token(struct infer_seq *s)
{
	infer_seq_text(&batch_of->eng, s, s->ids[s->n_ids - 1], s->finish != NULL, NULL, NULL);
}

static void batch_on_done(struct infer_seq *s)
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
	if (s->logprobs) t = jv_object_set(t, jv_string("logprobs"), logprobs_json(b->in, s));
	jv rec = jv_object_set(jv_copy(s->rec), jv_string("teacher"), t);
	if (jsonl_write(b->out, rec) || fflush(b->out)) b->werr = 1; /* a kill loses nothing written */
	b->written++;
	b->prompt_tokens += s->n_prompt;
	b->completion_tokens += n_out;
	infer_seq_free(s);
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
uint64_t seed_of(uint64_t seed, const char *id, int sample)
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
			struct infer_seq *s = infer_seq_new(&b.eng, ids, n, in->max_tokens, &in->sp, seed_of(in->seed, id, sample_next));
			if (o->logprobs) infer_seq_logprobs(s, o->logprobs);
			s->rec = jv_copy(cur);
			s->sample = sample_next++;
			s->line = cur_line;
			s->on_token = batch_on_token;
			s->on_done = batch_on_done;
			s->t_start = now_s();
			b.eng.act[b.eng.n_act++] = s;
		}
		if (infer_engine_step(&b.eng) < 0) break;
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
	infer_engine_free(&b.eng);
	chat_encoder_free(&b.ce);
	chat_conv_free(&b.conv);
	free(b.user_tpl);
	return status;
}

/* ---- the chat REPL ---------------------------------------------------- */

struct chat {
	struct infer_engine eng;
	int tty;  /* stdout is a terminal: the chain of thought dim */
	int mark; /* the chain of thought is being shown (dim, or between tags) */
};

static void chat_emit(void *ud, int kind, const char *s, size_t n)
{
	struct chat *c = ud;
	int thinking = kind == INFER_REASONING;
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

static void chat_on_token(struct infer_seq *s)
{
	infer_seq_text(&chat_of->eng, s, s->ids[s->n_ids - 1], s->finish != NULL, chat_emit, chat_of);
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
		struct infer_seq *s = infer_seq_new(&c.eng, ids, n, in->max_tokens, &in->sp, seed_of(in->seed, "chat", (int)turn_no));
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
		while (c.eng.n_act) infer_engine_step(&c.eng);
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
		infer_seq_free(s);
	}
	free(line);
	for (int i = 0; i < n_turns; i++) free(turns[i]);
	free(turns);
	free(cached);
	qwen2_cache_free(cache);
	chat_conv_free(&conv);
	chat_encoder_free(&ce);
	infer_engine_free(&c.eng);
	cli_close_stdout();
	return 0;
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
			 .max_connections = 2048, .idle_timeout = 5, .request_timeout = 30,
			 .gen = {.sp = SAMPLE_GREEDY}};
	enum { O_CHAT = 256, O_BATCH, O_SYSTEM, O_TEMPLATE, O_IDS, O_SKIPBAD, O_HOST, O_PORT, O_PORTFILE, O_MAXBODY,
	       O_GREEDY, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_REP, O_MAXTOK, O_SEED, O_CTX, O_NAME, O_FP32,
	       O_CHATTPL, O_STOP, O_NOTHINK, O_PRESERVE, O_LOGPROBS, O_KEYFILE, O_KEYARG, O_MAXCONN, O_IDLE, O_REQTIME };
	static const struct option longopts[] = {
		{"model", 1, 0, 'm'}, {"chat", 0, 0, O_CHAT}, {"batch", 0, 0, O_BATCH}, {"system", 1, 0, O_SYSTEM},
		{"samples", 1, 0, 'n'}, {"batch-size", 1, 0, 'b'}, {"template", 1, 0, O_TEMPLATE},
		{"ids", 0, 0, O_IDS}, {"logprobs", 1, 0, O_LOGPROBS}, {"output", 1, 0, 'o'}, {"skip-bad", 0, 0, O_SKIPBAD}, {"quiet", 0, 0, 'q'},
		{"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT}, {"port-file", 1, 0, O_PORTFILE},
		{"api-key-file", 1, 0, O_KEYFILE}, {"api-key", 1, 0, O_KEYARG},
		{"max-connections", 1, 0, O_MAXCONN}, {"idle-timeout", 1, 0, O_IDLE}, {"request-timeout", 1, 0, O_REQTIME},
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
		case O_LOGPROBS: o.logprobs = (int)parse_long(optarg, "--logprobs", 1, SAMPLE_MAX_TOP), batch_opt = 1; break;
		case 'o': o.output = optarg, batch_opt = 1; break;
		case O_SKIPBAD: o.skip_bad = 1, batch_opt = 1; break;
		case 'q': o.quiet = 1; break;
		case O_HOST: o.host = optarg, serving_opt = 1; break;
		case O_KEYFILE: o.api_key_file = optarg, serving_opt = 1; break;
		case O_MAXCONN: o.max_connections = parse_long(optarg, "--max-connections", 1, 65536), serving_opt = 1; break;
		case O_IDLE: o.idle_timeout = parse_long(optarg, "--idle-timeout", 1, 86400), serving_opt = 1; break;
		case O_REQTIME: o.request_timeout = parse_long(optarg, "--request-timeout", 1, 86400), serving_opt = 1; break;
		case O_KEYARG:
			cli_usage_error(usage, "--api-key: a key on the command line is seen by every user (ps): give it in a "
					       "file (--api-key-file F) or in DS_API_KEY");
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
			if (o.stop.n == INFER_MAX_STOPS) cli_usage_error(usage, "at most %d --stop strings", INFER_MAX_STOPS);
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
	if (serving_opt && o.mode != MODE_SERVE)
		cli_usage_error(usage, "--host, --port, --port-file, --max-body, --api-key-file, --max-connections, "
				       "--idle-timeout and --request-timeout are for serve");
	if (o.stop.n && o.mode == MODE_SERVE) cli_usage_error(usage, "--stop is not for serve: a request gives its own 'stop'");
	if (o.mode == MODE_AUTO) o.mode = batch_opt || optind < argc || !isatty(0) ? MODE_BATCH : MODE_CHAT;
	if (batch_opt && o.mode != MODE_BATCH) cli_usage_error(usage, "-n, -o, --template, --ids, --logprobs and --skip-bad are for batch mode");
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
