/* ds-sharegpt — judged records to LLaMA-Factory training data.
 *
 * Reads records that carry a `teacher` object (DESIGN.md §1) and writes one
 * training conversation per record: the problem as the user turn, and
 * "<think>\n{reasoning}\n</think>\n\n{content}" as the assistant turn, the
 * layout DeepSeek-R1 and its distilled students produce. Records that would
 * teach the wrong thing (empty reasoning, a truncated or wrongly judged
 * answer) are rejected with a reason, never silently kept or dropped.
 *
 * With --format dpo it writes preference pairs instead: per problem id, a
 * correct sample (chosen) beside an incorrect one (rejected), from all the
 * judged streams given, in any order. Pairing needs every sample of a
 * problem, so the input is read to the end first: what is kept in memory
 * is a small entry per usable sample, while the texts wait in an unlinked
 * temporary file; the pairs are written at the end, sorted by id.
 */
#include "../lib/cli.h"
#include "../lib/idset.h"
#include "../lib/jsonl.h"
#include "../lib/leak.h"
#include "../lib/progress.h"
#include "../lib/resume.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-sharegpt [-q] [--skip-bad] [-f FORMAT] [-s TEXT | --system-file FILE]\n"
	"                   [--include-guided yes|no] [-o OUT] [-r REJECTED] [FILE...]\n"
	"       ds-sharegpt -f dpo [--pick-chosen RULE] [--pick-rejected RULE] [--pairs N]\n"
	"                   [--rejected-verdicts LIST] [--unpaired FILE] [...] [FILE...]\n"
	"       ds-sharegpt --dataset-info NAME [-f FORMAT] [--file-name FILE]\n";

static const char help[] =
	"Convert judged records (JSONL) into LLaMA-Factory training data.\n"
	"\n"
	"  -f, --format FORMAT    sharegpt (default), messages, alpaca, or dpo\n"
	"                         (preference pairs, LLaMA-Factory's sharegpt ranking layout)\n"
	"  -s, --system TEXT      system prompt of every conversation (default: none,\n"
	"                         which lets the chat template use its own)\n"
	"      --system-file FILE read the system prompt from FILE\n"
	"  -o, --output OUT       write to OUT instead of stdout; a rerun with the same\n"
	"                         OUT skips what OUT already holds (restartable)\n"
	"  -r, --rejected FILE    append unusable records there, each with\n"
	"                         sharegpt.rejected = the reason (restartable too)\n"
	"      --skip-bad         count and skip malformed lines instead of stopping\n"
	"      --include-guided yes|no  use ds-teacher --guided samples (default: yes,\n"
	"                         but with -f dpo no: never as chosen)\n"
	"\n"
	"  -f dpo pairs, per problem id, a correct sample with an incorrect one:\n"
	"      --pick-chosen RULE    which correct samples first: first (lowest sample\n"
	"                            number; the default), shortest or longest\n"
	"      --pick-rejected RULE  which incorrect samples first (the same rules;\n"
	"                            default first); ties go to the unguided, then the\n"
	"                            lower sample number\n"
	"      --pairs N             at most N pairs per problem, no sample used twice\n"
	"                            (default 1)\n"
	"      --rejected-verdicts LIST  verdicts that make a sample incorrect:\n"
	"                            incorrect (default), unparsable, or both\n"
	"      --unpaired FILE       write the problems that got no pair there (rewritten)\n"
	"\n"
	"      --dataset-info NAME  print the dataset_info.json entry for NAME and exit\n"
	"      --file-name FILE   file_name in that entry (default: OUT's name, or\n"
	"                         NAME.jsonl)\n"
	"  -q, --quiet            no summary on stderr\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"With no FILE, or when FILE is -, read standard input. Input may be\n"
	"zstd-compressed. See ds-sharegpt(1).\n";

enum format { FMT_SHAREGPT, FMT_MESSAGES, FMT_ALPACA, FMT_DPO };
enum pick { PICK_FIRST, PICK_SHORTEST, PICK_LONGEST };

struct opts {
	enum format format;
	char *system;        /* owned */
	const char *output, *rejected, *dataset_info, *file_name, *unpaired;
	int skip_bad, quiet;
	int include_guided;  /* -1: the format's default */
	enum pick pick_chosen, pick_rejected;
	long pairs;
	int wrong_incorrect, wrong_unparsable; /* --rejected-verdicts */
};

/* A system prompt file, without its final newline(s). Returns owned. */
static char *read_text_file(const char *path)
{
	char *s = cli_read_file(path);
	if (!s) cli_die(EXIT_RUNTIME, "%s: %m", path);
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
	return s;
}

/* ---- the dataset_info.json entry -------------------------------------- */

/* Once "tags" is given, LLaMA-Factory sets every tag it names not to None
 * (DatasetAttr.set_attr), and a system, observation or function turn then
 * fails its role check and the conversation is dropped: every tag is named,
 * the others with LLaMA-Factory's own defaults. */
#define OTHER_TAGS "\"system_tag\":\"system\",\"observation_tag\":\"observation\",\"function_tag\":\"function_call\""

static jv dataset_info(const struct opts *o)
{
	jv e = jv_object();
	e = jv_object_set(e, jv_string("file_name"), jv_string(o->file_name));
	switch (o->format) {
	case FMT_SHAREGPT:
		e = jv_object_set(e, jv_string("formatting"), jv_string("sharegpt"));
		e = jv_object_set(e, jv_string("columns"),
				  jv_parse("{\"messages\":\"conversations\",\"system\":\"system\"}"));
		e = jv_object_set(e, jv_string("tags"),
				  jv_parse("{\"role_tag\":\"from\",\"content_tag\":\"value\","
					   "\"user_tag\":\"user\",\"assistant_tag\":\"assistant\"," OTHER_TAGS "}"));
		break;
	case FMT_MESSAGES:
		e = jv_object_set(e, jv_string("formatting"), jv_string("sharegpt"));
		e = jv_object_set(e, jv_string("columns"), jv_parse("{\"messages\":\"messages\"}"));
		e = jv_object_set(e, jv_string("tags"),
				  jv_parse("{\"role_tag\":\"role\",\"content_tag\":\"content\","
					   "\"user_tag\":\"user\",\"assistant_tag\":\"assistant\"," OTHER_TAGS "}"));
		break;
	case FMT_ALPACA:
		e = jv_object_set(e, jv_string("formatting"), jv_string("alpaca"));
		e = jv_object_set(e, jv_string("columns"),
				  jv_parse("{\"prompt\":\"instruction\",\"query\":\"input\","
					   "\"response\":\"output\",\"system\":\"system\"}"));
		break;
	case FMT_DPO: /* LLaMA-Factory's data/README.md, "Preference Dataset" (sharegpt) */
		e = jv_object_set(e, jv_string("formatting"), jv_string("sharegpt"));
		e = jv_object_set(e, jv_string("ranking"), jv_true());
		e = jv_object_set(e, jv_string("columns"),
				  jv_parse("{\"messages\":\"conversations\",\"chosen\":\"chosen\","
					   "\"rejected\":\"rejected\",\"system\":\"system\"}"));
		e = jv_object_set(e, jv_string("tags"),
				  jv_parse("{\"role_tag\":\"from\",\"content_tag\":\"value\","
					   "\"user_tag\":\"user\",\"assistant_tag\":\"assistant\"," OTHER_TAGS "}"));
		break;
	}
	return jv_object_set(jv_object(), jv_string(o->dataset_info), e);
}

/* ---- one record ------------------------------------------------------- */

/* Why a record is unusable for training, or NULL. */
struct verdict {
	const char *malformed; /* the record breaks the contract: stop or skip */
	const char *rejected;  /* valid, but must not be trained on */
};

/* s without surrounding white space, as a pointer into s and a length. */
struct span {
	const char *p;
	size_t n;
};

static struct span trim(const char *s)
{
	size_t n = strlen(s);
	while (n && strchr(" \t\r\n", s[n - 1])) n--;
	while (n && strchr(" \t\r\n", *s)) s++, n--;
	return (struct span){s, n};
}

static int span_has(struct span s, const char *needle)
{
	return memmem(s.p, s.n, needle, strlen(needle)) != NULL;
}

/* "<think>\n{r}\n</think>\n\n{c}" as a jv string, built in one piece. */
static jv think_answer(struct span r, struct span c)
{
	static const char open[] = "<think>\n", close[] = "\n</think>\n\n";
	size_t n = sizeof open - 1 + r.n + sizeof close - 1 + c.n;
	char *buf = malloc(n), *q = buf;
	if (!buf) cli_die(EXIT_RUNTIME, "out of memory");
	memcpy(q, open, sizeof open - 1), q += sizeof open - 1;
	memcpy(q, r.p, r.n), q += r.n;
	memcpy(q, close, sizeof close - 1), q += sizeof close - 1;
	memcpy(q, c.p, c.n);
	jv s = jv_string_sized(buf, (int)n);
	free(buf);
	return s;
}

/* A string field that may be absent or null (then ""). Sets *bad when the
 * field is something else. Borrows obj; the result lives as long as obj. */
static const char *opt_string(jv obj, const char *key, int *bad)
{
	jv v = jv_object_get(jv_copy(obj), jv_string(key));
	jv_kind k = jv_get_kind(v);
	const char *s = "";
	if (k == JV_KIND_STRING) s = jv_string_value(v);
	else if (k != JV_KIND_NULL && k != JV_KIND_INVALID) *bad = 1;
	jv_free(v);
	return s;
}

/* What a record holds for training. The pointers borrow the record. */
struct sample {
	const char *id;
	double sample;          /* teacher.sample, 0 when absent */
	struct span problem, reasoning, content;
	const char *verdict;    /* judge.verdict; "correct" without a judge */
	int judged, guided;
	int leaked;             /* ds-judge found the chain mentions the given answer */
};

static const char
	R_VERDICT[] = "judge verdict is not \"correct\"",
	R_GUIDED[] = "a guided sample (--include-guided no)",
	R_NOT_PAIRED[] = "judge verdict is neither \"correct\" nor one of --rejected-verdicts",
	R_LEAKED[] = "a guided chain that mentions the given answer (neither chosen nor rejected)";

/* Check rec (borrowed) for what every format needs, and fill *x. The
 * verdict is left to the caller, since SFT and DPO read it differently. */
static struct verdict examine(jv rec, struct sample *x)
{
	struct verdict v = {0, 0};
	int bad = 0;
	*x = (struct sample){0};
	x->id = jsonl_get_string(rec, "id");
	if (!x->id || !*x->id) return (struct verdict){"no \"id\" string", 0};
	if (!jsonl_get_string(rec, "problem"))
		return (struct verdict){"no \"problem\" string", 0};
	jv t = jv_object_get(jv_copy(rec), jv_string("teacher"));
	if (jv_get_kind(t) != JV_KIND_OBJECT) {
		jv_free(t);
		return (struct verdict){"no \"teacher\" object (run ds-teacher first)", 0};
	}
	/* The strings below live in rec: t and judge are parts of it. */
	const char *reasoning = opt_string(t, "reasoning", &bad);
	const char *content = opt_string(t, "content", &bad);
	const char *finish = opt_string(t, "finish_reason", &bad);
	jv sample = jv_object_get(jv_copy(t), jv_string("sample"));
	jv guided = jv_object_get(jv_copy(t), jv_string("guided"));
	jv judge = jv_object_get(jv_copy(rec), jv_string("judge"));
	x->verdict = "correct";
	if (jv_get_kind(judge) == JV_KIND_OBJECT) {
		x->verdict = opt_string(judge, "verdict", &bad);
		x->judged = 1;
		const char *why = jsonl_get_string(judge, "reason");
		x->leaked = why && !strncmp(why, LEAK_REASON_PREFIX, strlen(LEAK_REASON_PREFIX));
	}
	else if (jv_get_kind(judge) != JV_KIND_NULL && jv_get_kind(judge) != JV_KIND_INVALID)
		bad = 1;
	x->guided = jv_get_kind(guided) == JV_KIND_TRUE;
	x->sample = jv_get_kind(sample) == JV_KIND_NUMBER ? jv_number_value(sample) : 0;
	x->reasoning = trim(reasoning);
	x->content = trim(content);
	x->problem = trim(jsonl_get_string(rec, "problem"));

	if (bad)
		v.malformed = "teacher.reasoning/content/finish_reason or judge.verdict "
			      "is not a string";
	else if (jv_get_kind(sample) != JV_KIND_NUMBER && jv_get_kind(sample) != JV_KIND_INVALID &&
		 jv_get_kind(sample) != JV_KIND_NULL)
		v.malformed = "teacher.sample is not a number";
	else if (strcmp(finish, "length") == 0)
		v.rejected = "teacher output cut off (finish_reason \"length\")";
	else if (x->problem.n == 0)
		v.rejected = "empty problem";
	else if (x->reasoning.n == 0)
		v.rejected = "empty reasoning";
	else if (x->content.n == 0)
		v.rejected = "empty content";
	else if (span_has(x->reasoning, "<think>") || span_has(x->reasoning, "</think>") ||
		 span_has(x->content, "</think>"))
		v.rejected = "a <think> tag inside reasoning or content";
	jv_free(sample);
	jv_free(guided);
	jv_free(judge);
	jv_free(t);
	return v;
}

/* {"from": role, "value": value}. Consumes value. */
static jv turn(const char *role, jv value)
{
	return jv_object_set(jv_object_set(jv_object(), jv_string("from"), jv_string(role)),
			     jv_string("value"), value);
}

/* Check rec (borrowed) and, when usable, build the output record of an SFT
 * format into *out (owned). */
static struct verdict convert(jv rec, const struct opts *o, jv *out)
{
	struct sample x;
	struct verdict v = examine(rec, &x);
	if (v.malformed) return v;
	/* a wrong answer is named as such before anything else is said of it */
	if (strcmp(x.verdict, "correct") != 0) return (struct verdict){0, R_VERDICT};
	if (v.rejected) return v;
	if (x.guided && !o->include_guided) return (struct verdict){0, R_GUIDED};
	/* ds-teacher --logprobs: the soft labels go with the assistant turn,
	 * unchanged (LLaMA-Factory reads only a message's role and content). */
	jv lp = jv_object_get(jv_object_get(jv_copy(rec), jv_string("teacher")), jv_string("logprobs"));
	if (jv_get_kind(lp) == JV_KIND_NULL) jv_free(lp), lp = jv_invalid();
	if (jv_is_valid(lp) && jv_get_kind(lp) != JV_KIND_OBJECT) {
		jv_free(lp);
		return (struct verdict){"teacher.logprobs is not an object", 0};
	}
	/* as one JSON string: Hugging Face datasets (LLaMA-Factory's loader)
	 * wants each array of one type, and the object's are not */
	if (jv_is_valid(lp)) lp = jv_dump_string(lp, 0);

	jv answer = think_answer(x.reasoning, x.content);
	jv p = jv_string_sized(x.problem.p, (int)x.problem.n);
	jv sys = jv_string(o->system ? o->system : "");
	jv o_rec = jv_object_set(jv_object(), jv_string("id"), jv_string(x.id));
	o_rec = jv_object_set(o_rec, jv_string("sample"), jv_number(x.sample));
	switch (o->format) {
	case FMT_SHAREGPT: {
		jv conv = jv_array();
		conv = jv_array_append(conv, turn("user", jv_copy(p)));
		jv a = turn("assistant", answer);
		if (jv_is_valid(lp)) a = jv_object_set(a, jv_string("logprobs"), jv_copy(lp));
		conv = jv_array_append(conv, a);
		o_rec = jv_object_set(o_rec, jv_string("system"), sys);
		o_rec = jv_object_set(o_rec, jv_string("conversations"), conv);
		break;
	}
	case FMT_MESSAGES: {
		jv msgs = jv_array();
		if (jv_string_length_bytes(jv_copy(sys)) > 0)
			msgs = jv_array_append(msgs, jv_object_set(jv_object_set(jv_object(), jv_string("role"), jv_string("system")),
								   jv_string("content"), jv_copy(sys)));
		jv_free(sys);
		msgs = jv_array_append(msgs, jv_object_set(jv_object_set(jv_object(), jv_string("role"), jv_string("user")),
							   jv_string("content"), jv_copy(p)));
		jv a = jv_object_set(jv_object_set(jv_object(), jv_string("role"), jv_string("assistant")),
				     jv_string("content"), answer);
		if (jv_is_valid(lp)) a = jv_object_set(a, jv_string("logprobs"), jv_copy(lp));
		msgs = jv_array_append(msgs, a);
		o_rec = jv_object_set(o_rec, jv_string("messages"), msgs);
		break;
	}
	case FMT_ALPACA:
		o_rec = jv_object_set(o_rec, jv_string("system"), sys);
		o_rec = jv_object_set(o_rec, jv_string("instruction"), jv_copy(p));
		o_rec = jv_object_set(o_rec, jv_string("input"), jv_string(""));
		o_rec = jv_object_set(o_rec, jv_string("output"), answer);
		if (jv_is_valid(lp)) /* no message here: beside the output it labels */
			o_rec = jv_object_set(o_rec, jv_string("logprobs"), jv_copy(lp));
		break;
	case FMT_DPO: /* not here: see the pairing below */
		jv_free(sys);
		jv_free(answer);
		break;
	}
	*out = o_rec;
	jv_free(p);
	jv_free(lp);
	return v;
}

/* ---- preference pairs (-f dpo) -------------------------------------------- */

/* One usable sample of a problem, waiting for the end of the input. Its
 * texts are in the spill file: the problem, then the assistant turn. */
struct cand {
	char *id;               /* owned */
	double sample;
	uint64_t off, plen, alen;
	unsigned char kind;     /* K_CORRECT, K_WRONG, K_GUIDED_OUT */
	unsigned char guided;
};

enum { K_CORRECT, K_WRONG, K_GUIDED_OUT };

struct pairing {
	FILE *spill;            /* unlinked temporary file */
	uint64_t spill_len;
	struct cand *c;
	size_t n, cap;
	long pairs, problems, paired, only_correct, only_wrong, guided_out, not_picked, done;
};

static void pairing_open(struct pairing *pr)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir) dir = "/tmp";
	size_t n = strlen(dir) + 32;
	char *path = malloc(n);
	if (!path) cli_die(EXIT_RUNTIME, "out of memory");
	snprintf(path, n, "%s/ds-sharegpt.XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0) cli_die(EXIT_RUNTIME, "%s: cannot make a temporary file: %s", path, strerror(errno));
	unlink(path); /* gone when we are, however we end */
	free(path);
	*pr = (struct pairing){.spill = fdopen(fd, "w+")};
	if (!pr->spill) cli_die(EXIT_RUNTIME, "temporary file: %s", strerror(errno));
}

static void spill_put(struct pairing *pr, struct span s)
{
	if (s.n && fwrite(s.p, 1, s.n, pr->spill) != s.n)
		cli_die(EXIT_RUNTIME, "temporary file (TMPDIR): write error: %s", strerror(errno));
	pr->spill_len += s.n;
}

/* Keep sample x (borrowed) of kind for pairing. */
static void pairing_add(struct pairing *pr, const struct sample *x, int kind)
{
	if (pr->n == pr->cap) {
		pr->cap = pr->cap ? pr->cap * 2 : 1024;
		pr->c = realloc(pr->c, pr->cap * sizeof *pr->c);
		if (!pr->c) cli_die(EXIT_RUNTIME, "out of memory");
	}
	struct cand *c = &pr->c[pr->n++];
	*c = (struct cand){.id = strdup(x->id), .sample = x->sample, .kind = (unsigned char)kind,
			   .guided = (unsigned char)x->guided, .off = pr->spill_len};
	if (!c->id) cli_die(EXIT_RUNTIME, "out of memory");
	if (kind == K_GUIDED_OUT) return; /* counted, never written: no text needed */
	static const char open[] = "<think>\n", close[] = "\n</think>\n\n";
	spill_put(pr, x->problem);
	spill_put(pr, (struct span){open, sizeof open - 1});
	spill_put(pr, x->reasoning);
	spill_put(pr, (struct span){close, sizeof close - 1});
	spill_put(pr, x->content);
	c->plen = x->problem.n;
	c->alen = sizeof open - 1 + x->reasoning.n + sizeof close - 1 + x->content.n;
}

/* spill[off..off+n) as a jv string. */
static jv spill_get(struct pairing *pr, uint64_t off, uint64_t n)
{
	char *buf = malloc(n ? n : 1);
	if (!buf) cli_die(EXIT_RUNTIME, "out of memory");
	for (uint64_t got = 0; got < n;) {
		ssize_t k = pread(fileno(pr->spill), buf + got, n - got, (off_t)(off + got));
		if (k <= 0) cli_die(EXIT_RUNTIME, "temporary file: read error: %s", k < 0 ? strerror(errno) : "short");
		got += (uint64_t)k;
	}
	jv s = jv_string_sized(buf, (int)n);
	free(buf);
	return s;
}

static int cmp_id(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c ? c : (x->sample > y->sample) - (x->sample < y->sample);
}

/* The order in which samples are picked: the rule, then unguided before
 * guided, then the lower sample number. */
static int cmp_pick(const void *a, const void *b, void *rule)
{
	const struct cand *x = *(struct cand *const *)a, *y = *(struct cand *const *)b;
	enum pick p = *(enum pick *)rule;
	if (p == PICK_SHORTEST && x->alen != y->alen) return x->alen < y->alen ? -1 : 1;
	if (p == PICK_LONGEST && x->alen != y->alen) return x->alen > y->alen ? -1 : 1;
	if (x->guided != y->guided) return x->guided - y->guided;
	return (x->sample > y->sample) - (x->sample < y->sample);
}

/* The resume key of a pair: its id and pair number. Borrows rec. */
static char *key_id_pair(jv rec)
{
	const char *id = jsonl_get_string(rec, "id");
	if (!id) return NULL;
	jv k = jv_object_get(jv_copy(rec), jv_string("pair"));
	double i = jv_get_kind(k) == JV_KIND_NUMBER ? jv_number_value(k) : 0;
	jv_free(k);
	size_t n = strlen(id) + 32;
	char *key = malloc(n);
	if (!key) cli_die(EXIT_RUNTIME, "out of memory");
	snprintf(key, n, "%s\x1f%.0f", id, i);
	return key;
}

/* Pair what was kept, problem by problem, writing the pairs not already
 * in done to out and the problems without a pair to unpaired (when not
 * NULL). With out NULL, write nothing. Frees what pr holds. */
static void pairing_finish(struct pairing *pr, const struct opts *o, idset *done, FILE *out, FILE *unpaired)
{
	const char *out_name = o->output ? o->output : "standard output";
	if (fflush(pr->spill) != 0) cli_die(EXIT_RUNTIME, "temporary file (TMPDIR): write error: %s", strerror(errno));
	if (pr->n && out) qsort(pr->c, pr->n, sizeof *pr->c, cmp_id);
	struct cand **good = malloc((pr->n + 1) * sizeof *good), **bad = malloc((pr->n + 1) * sizeof *bad);
	if (!good || !bad) cli_die(EXIT_RUNTIME, "out of memory");
	for (size_t i = 0, j; out && i < pr->n; i = j) {
		size_t ng = 0, nb = 0, nout = 0;
		for (j = i; j < pr->n && !strcmp(pr->c[j].id, pr->c[i].id); j++) {
			struct cand *c = &pr->c[j];
			if (c->kind == K_CORRECT) good[ng++] = c;
			else if (c->kind == K_WRONG) bad[nb++] = c;
			else nout++;
		}
		pr->problems++;
		if (ng == 0 || nb == 0) {
			if (ng == 0 && nb == 0) /* only guided samples, kept out */;
			else if (nb == 0) pr->only_correct++;
			else pr->only_wrong++;
			if (unpaired) {
				jv u = jv_object_set(jv_object(), jv_string("id"), jv_string(pr->c[i].id));
				u = jv_object_set(u, jv_string("correct"), jv_number((double)ng));
				u = jv_object_set(u, jv_string("incorrect"), jv_number((double)nb));
				u = jv_object_set(u, jv_string("guided_kept_out"), jv_number((double)nout));
				if (jsonl_write(unpaired, u)) cli_die(EXIT_RUNTIME, "%s: write error: %m", o->unpaired);
			}
			continue;
		}
		enum pick pc = o->pick_chosen, pj = o->pick_rejected;
		qsort_r(good, ng, sizeof *good, cmp_pick, &pc);
		qsort_r(bad, nb, sizeof *bad, cmp_pick, &pj);
		pr->paired++;
		size_t k = ng < nb ? ng : nb;
		if ((long)k > o->pairs) k = (size_t)o->pairs;
		pr->not_picked += (long)(ng + nb - 2 * k);
		for (size_t p = 0; p < k; p++) {
			jv rec = jv_object_set(jv_object(), jv_string("id"), jv_string(good[p]->id));
			rec = jv_object_set(rec, jv_string("pair"), jv_number((double)p));
			char *key = key_id_pair(rec);
			if (idset_has(done, key, strlen(key))) { /* written by an earlier run */
				pr->done++;
				free(key);
				jv_free(rec);
				continue;
			}
			free(key);
			rec = jv_object_set(rec, jv_string("chosen_sample"), jv_number(good[p]->sample));
			rec = jv_object_set(rec, jv_string("rejected_sample"), jv_number(bad[p]->sample));
			rec = jv_object_set(rec, jv_string("system"), jv_string(o->system ? o->system : ""));
			rec = jv_object_set(rec, jv_string("conversations"),
					    jv_array_append(jv_array(), turn("user", spill_get(pr, good[p]->off, good[p]->plen))));
			rec = jv_object_set(rec, jv_string("chosen"),
					    turn("assistant", spill_get(pr, good[p]->off + good[p]->plen, good[p]->alen)));
			rec = jv_object_set(rec, jv_string("rejected"),
					    turn("assistant", spill_get(pr, bad[p]->off + bad[p]->plen, bad[p]->alen)));
			if (jsonl_write(out, rec)) cli_die(EXIT_RUNTIME, "%s: write error: %m", out_name);
			pr->pairs++;
		}
	}
	free(good);
	free(bad);
	for (size_t i = 0; i < pr->n; i++) free(pr->c[i].id);
	free(pr->c);
	fclose(pr->spill);
}

/* ---- the run ---------------------------------------------------------- */

#define MAX_REASONS 16

struct stats {
	long read, written, rejected, skipped, duplicates, bad;
	const char *reason[MAX_REASONS];
	long reason_n[MAX_REASONS];
};

static void count_reason(struct stats *st, const char *why)
{
	int i = 0;
	while (i < MAX_REASONS && st->reason[i] && strcmp(st->reason[i], why) != 0) i++;
	if (i == MAX_REASONS) return;
	st->reason[i] = why;
	st->reason_n[i]++;
}

static void summary(const struct stats *st, const struct pairing *pr)
{
	fprintf(stderr, "%s: %ld read, %ld written, %ld rejected", cli_prog, st->read,
		st->written, st->rejected);
	for (int i = 0; i < MAX_REASONS && st->reason[i]; i++)
		fprintf(stderr, "%s%ld %s", i ? ", " : " (", st->reason_n[i], st->reason[i]);
	if (st->reason[0]) fputc(')', stderr);
	fprintf(stderr, ", %ld already done, %ld duplicate%s, %ld bad line%s skipped\n",
		st->skipped, st->duplicates, st->duplicates == 1 ? "" : "s", st->bad,
		st->bad == 1 ? "" : "s");
	if (pr)
		fprintf(stderr, "%s: dpo: %ld problems: %ld paired (%ld pairs written, %ld already done), "
				"%ld with only correct samples, %ld with only incorrect ones; "
				"%ld guided sample%s kept out of chosen; %ld sample%s not picked (--pairs)\n",
			cli_prog, pr->problems, pr->paired, pr->pairs, pr->done, pr->only_correct, pr->only_wrong,
			pr->guided_out, pr->guided_out == 1 ? "" : "s", pr->not_picked, pr->not_picked == 1 ? "" : "s");
}

static enum pick pick_rule(const char *s)
{
	if (!strcmp(s, "first")) return PICK_FIRST;
	if (!strcmp(s, "shortest")) return PICK_SHORTEST;
	if (!strcmp(s, "longest")) return PICK_LONGEST;
	cli_usage_error(usage, "unknown pick rule '%s' (first, shortest or longest)", s);
}

/* --rejected-verdicts: a comma-separated list of incorrect and unparsable. */
static void wrong_verdicts(struct opts *o, const char *list)
{
	o->wrong_incorrect = o->wrong_unparsable = 0;
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		if (n == 9 && !strncmp(p, "incorrect", n)) o->wrong_incorrect = 1;
		else if (n == 10 && !strncmp(p, "unparsable", n)) o->wrong_unparsable = 1;
		else cli_usage_error(usage, "--rejected-verdicts takes incorrect and unparsable, not '%.*s'", (int)n, p);
		p += n + (p[n] == ',');
	}
	if (!o->wrong_incorrect && !o->wrong_unparsable) cli_usage_error(usage, "--rejected-verdicts is empty");
}

/* A record not to train on: to --rejected with the reason, or named on
 * stderr. Borrows everything. */
static void set_aside(struct stats *st, const struct opts *o, FILE *rej, jsonl_inputs *in, jv rec, const char *why)
{
	st->rejected++;
	count_reason(st, why);
	if (rej) {
		jv w = jv_object_set(jv_object(), jv_string("rejected"), jv_string(why));
		if (jsonl_write(rej, jv_object_set(jv_copy(rec), jv_string("sharegpt"), w)))
			cli_die(EXIT_RUNTIME, "%s: write error: %m", o->rejected);
	} else if (!o->quiet) {
		jsonl_inputs_report(in, "%s: rejected: %s", jsonl_get_string(rec, "id"), why);
	}
}

/* -f dpo: where one record goes. Returns the reason it is set aside (to
 * --rejected), or NULL when it was kept for pairing or counted. Borrows
 * everything. */
static const char *dpo_take(struct pairing *pr, const struct opts *o, const struct sample *x, struct verdict v)
{
	int correct = !strcmp(x->verdict, "correct");
	int wrong = (o->wrong_incorrect && !strcmp(x->verdict, "incorrect")) ||
		    (o->wrong_unparsable && !strcmp(x->verdict, "unparsable"));
	if (!correct && !wrong) return R_NOT_PAIRED;
	/* Its answer may well be right: what was wrong is the chain, which a
	 * student never given the answer would not write anyway. */
	if (x->leaked) return R_LEAKED;
	if (v.rejected) return v.rejected; /* a cut-off or empty answer teaches nothing either way */
	if (correct && x->guided && !o->include_guided) {
		pr->guided_out++;
		pairing_add(pr, x, K_GUIDED_OUT);
		return NULL;
	}
	pairing_add(pr, x, correct ? K_CORRECT : K_WRONG);
	return NULL;
}

int main(int argc, char **argv)
{
	cli_init("ds-sharegpt");
	struct opts o = {.include_guided = -1, .pairs = 1, .wrong_incorrect = 1};
	int dpo_opts = 0;
	static const struct option longopts[] = {
		{"format", 1, 0, 'f'},        {"system", 1, 0, 's'},
		{"system-file", 1, 0, 'S'},   {"output", 1, 0, 'o'},
		{"rejected", 1, 0, 'r'},      {"skip-bad", 0, 0, 'B'},
		{"dataset-info", 1, 0, 'D'},  {"file-name", 1, 0, 'F'},
		{"quiet", 0, 0, 'q'},         {"include-guided", 1, 0, 'G'},
		{"pick-chosen", 1, 0, 'C'},   {"pick-rejected", 1, 0, 'R'},
		{"pairs", 1, 0, 'P'},         {"rejected-verdicts", 1, 0, 'W'},
		{"unpaired", 1, 0, 'U'},      CLI_LONGOPTS_COMMON,
		{0, 0, 0, 0}};
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "f:s:o:r:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (!strcmp(optarg, "sharegpt")) o.format = FMT_SHAREGPT;
			else if (!strcmp(optarg, "messages")) o.format = FMT_MESSAGES;
			else if (!strcmp(optarg, "alpaca")) o.format = FMT_ALPACA;
			else if (!strcmp(optarg, "dpo")) o.format = FMT_DPO;
			else cli_usage_error(usage, "unknown format '%s' (sharegpt, messages, alpaca or dpo)", optarg);
			break;
		case 's': free(o.system); o.system = strdup(optarg); break;
		case 'S': free(o.system); o.system = read_text_file(optarg); break;
		case 'o': o.output = optarg; break;
		case 'r': o.rejected = optarg; break;
		case 'B': o.skip_bad = 1; break;
		case 'D': o.dataset_info = optarg; break;
		case 'F': o.file_name = optarg; break;
		case 'q': o.quiet = 1; break;
		case 'G':
			if (!strcmp(optarg, "yes")) o.include_guided = 1;
			else if (!strcmp(optarg, "no")) o.include_guided = 0;
			else cli_usage_error(usage, "--include-guided wants yes or no, not '%s'", optarg);
			break;
		case 'C': o.pick_chosen = pick_rule(optarg), dpo_opts = 1; break;
		case 'R': o.pick_rejected = pick_rule(optarg), dpo_opts = 1; break;
		case 'P':
			o.pairs = strtol(optarg, &end, 10), dpo_opts = 1;
			if (*end || o.pairs < 1) cli_usage_error(usage, "--pairs wants a positive count");
			break;
		case 'W': wrong_verdicts(&o, optarg), dpo_opts = 1; break;
		case 'U': o.unpaired = optarg, dpo_opts = 1; break;
		case 'h': fputs(usage, stdout); fputs(help, stdout); cli_close_stdout(); return 0;
		case 'V': cli_version(); cli_close_stdout(); return 0;
		default: cli_usage_error(usage, "bad option");
		}
	}
	if (dpo_opts && o.format != FMT_DPO)
		cli_usage_error(usage, "--pick-chosen, --pick-rejected, --pairs, --rejected-verdicts "
				       "and --unpaired go with -f dpo");
	if (o.include_guided < 0) o.include_guided = o.format != FMT_DPO;

	if (o.dataset_info) {
		if (optind < argc) cli_usage_error(usage, "--dataset-info reads no input");
		if (!*o.dataset_info) cli_usage_error(usage, "--dataset-info needs a name");
		char *fallback = NULL;
		if (!o.file_name) {
			if (o.output) {
				fallback = strdup(o.output);
				o.file_name = basename(fallback);
			} else {
				size_t n = strlen(o.dataset_info) + 7;
				fallback = malloc(n);
				snprintf(fallback, n, "%s.jsonl", o.dataset_info);
				o.file_name = fallback;
			}
		}
		jv s = jv_dump_string(dataset_info(&o), JV_PRINT_INDENT_FLAGS(2));
		printf("%s\n", jv_string_value(s));
		jv_free(s);
		free(fallback);
		free(o.system);
		cli_close_stdout();
		return 0;
	}
	if (o.output && o.rejected && strcmp(o.output, o.rejected) == 0)
		cli_usage_error(usage, "--output and --rejected name the same file");
	if (o.unpaired && ((o.output && !strcmp(o.unpaired, o.output)) ||
			   (o.rejected && !strcmp(o.unpaired, o.rejected))))
		cli_usage_error(usage, "--unpaired names the same file as --output or --rejected");

	/* done: (id, sample) pairs written by an earlier run; with -f dpo the
	 * output's keys are (id, pair) and go into done_out instead. */
	int dpo = o.format == FMT_DPO;
	idset *done = idset_new(), *seen = idset_new(), *done_out = dpo ? idset_new() : done;
	struct stats st = {0};
	struct pairing pr;
	FILE *out = stdout, *rej = NULL;
	long n_out = 0, n_rej = 0;
	if (o.output) out = resume_open(o.output, done_out, dpo ? key_id_pair : resume_key_id_sample, &n_out);
	if (o.rejected) rej = resume_open(o.rejected, done, resume_key_id_sample, &n_rej);
	if (dpo) pairing_open(&pr);

	int status = 0;
	progress pg;
	jsonl_inputs in;
	jsonl_inputs_init(&in, argv + optind, argc - optind, o.skip_bad, &pg);
	jv rec;
	int k;
	while ((k = jsonl_inputs_next(&in, &rec)) != 0) {
		if (k < 0) {
			status = EXIT_RUNTIME;
			break;
		}
		char *key = resume_key_id_sample(rec);
		jv conv = jv_invalid();
		struct sample x;
		struct verdict v = dpo ? examine(rec, &x) : convert(rec, &o, &conv);
		if (dpo && !v.malformed && !x.judged)
			v.malformed = "no \"judge\" object (run ds-judge first: -f dpo pairs by verdict)";
		if (v.malformed) {
			int stop = jsonl_inputs_reject(&in, "%s", v.malformed);
			free(key);
			jv_free(rec);
			if (stop) {
				status = EXIT_RUNTIME;
				break;
			}
			continue;
		}
		if (dpo) {
			/* Every sample counts for pairing, even one that an
			 * earlier run set aside: only the --rejected line is
			 * not written twice. */
			const char *why;
			if (!idset_add(seen, key, strlen(key))) {
				st.duplicates++;
			} else if ((why = dpo_take(&pr, &o, &x, v)) != NULL) {
				if (idset_has(done, key, strlen(key))) st.skipped++;
				else set_aside(&st, &o, rej, &in, rec, why);
			}
		} else if (idset_has(done, key, strlen(key))) {
			st.skipped++; /* written by an earlier run */
		} else if (idset_has(seen, key, strlen(key))) {
			st.duplicates++; /* repeated in the input */
		} else if (v.rejected) {
			idset_add(seen, key, strlen(key));
			set_aside(&st, &o, rej, &in, rec, v.rejected);
		} else {
			idset_add(seen, key, strlen(key));
			if (jsonl_write(out, conv))
				cli_die(EXIT_RUNTIME, "%s: write error: %m", o.output ? o.output : "standard output");
			conv = jv_invalid();
			st.written++;
		}
		jv_free(conv);
		jv_free(rec);
		free(key);
	}
	jsonl_inputs_close(&in);
	st.read = in.read;
	st.bad = in.bad;
	if (status == 0 && st.read == 0 && st.bad == 0)
		cli_warn("no records in the input"), status = EXIT_RUNTIME;

	if (dpo) {
		/* Pairs only from a whole input: a run that stopped early writes
		 * none, rather than pairs that more input would have changed. */
		FILE *up = NULL;
		if (status == 0 && o.unpaired && !(up = fopen(o.unpaired, "w")))
			cli_die(EXIT_RUNTIME, "%s: %s", o.unpaired, strerror(errno));
		pairing_finish(&pr, &o, done_out, status == 0 ? out : NULL, up);
		st.written = pr.pairs;
		if (up && fclose(up) != 0) cli_die(EXIT_RUNTIME, "%s: write error", o.unpaired);
	}
	if (rej) resume_close(rej, o.rejected);
	if (o.output) resume_close(out, o.output);
	else cli_close_stdout();
	if (!o.quiet) summary(&st, dpo ? &pr : NULL);
	idset_free(seen);
	idset_free(done);
	if (dpo) idset_free(done_out);
	free(o.system);
	return status;
}
