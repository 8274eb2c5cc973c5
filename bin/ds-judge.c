/* ds-judge — keep only what the teacher got right.
 *
 * Reads records with a `teacher` object (DESIGN.md §1), adds `judge`
 * {verdict, method, predicted, reason}, and writes the correct ones to
 * stdout and the others to --rejected. Math is judged by rule
 * (lib/mathans.c, Math-Verify's rules), code by running it on its tests in
 * a sandbox (lib/codejudge.c, lib/sandbox.c). Other domains (or, with
 * --llm-all, every record) are graded by a chat model, as the seed grades
 * with DeepSeek-V3: a prompt from share/prompts/grade.txt, and a reply
 * that must end in one strict verdict line; without --llm they get verdict
 * "error", never "correct".
 *
 * Records are read into a window that holds at most -c of them for the
 * grader; the window's requests go out at once, one blocking request per
 * thread (lib/chatapi.c), and the window is written in input order. Only
 * the threads' requests run in parallel: every jv stays on the main
 * thread, since libjq's reference counts are not atomic.
 */
#include "../lib/chatapi.h"
#include "../lib/check.h"
#include "../lib/cli.h"
#include "../lib/codejudge.h"
#include "../lib/idset.h"
#include "../lib/jsonl.h"
#include "../lib/leak.h"
#include "../lib/mathans.h"
#include "../lib/progress.h"
#include "../lib/resume.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-judge [-q] [--summary] [--explain] [--skip-bad] [-o OUT] [-r REJECTED]\n"
	"                [-j N] [--timeout SEC] [--memory MIB] [--python PATH]\n"
	"                [--unsafe-no-sandbox] [--llm | --llm-all] [--llm-model M]\n"
	"                [--llm-base-url URL] [--api-key-file F] [--llm-template FILE]\n"
	"                [--llm-retries N] [-c N] [FILE...]\n";

static const char help[] =
	"Judge the teacher's answers (JSONL records with \"teacher\") against the\n"
	"reference answers; add \"judge\" to each record.\n"
	"\n"
	"  -o, --output OUT       write correct records to OUT instead of stdout; a\n"
	"                         rerun with the same OUT skips what it holds\n"
	"  -r, --rejected FILE    append the other records there (restartable too)\n"
	"      --summary          print accuracy and counts per verdict, method and\n"
	"                         source on stderr\n"
	"      --explain          add judge.explain: the rule that took the answer and\n"
	"                         the answers before and after normalisation (math),\n"
	"                         each case's result (code)\n"
	"  -j, --jobs N           run up to N test cases of a program at once (1)\n"
	"      --timeout SEC      wall-clock limit per test case (4)\n"
	"      --memory MIB       address-space limit per process of a case (1024)\n"
	"      --python PATH      the interpreter for code (python3 in /usr/local/bin,\n"
	"                         /usr/bin or /bin)\n"
	"      --unsafe-no-sandbox  run code without namespaces where they cannot be\n"
	"                         made (rlimits only; never on a machine you care about)\n"
	"      --llm              grade the domains without a rule judge (not math,\n"
	"                         not code) with a chat model\n"
	"      --llm-all          grade every record with the chat model\n"
	"      --llm-model M      the grader (default deepseek-chat)\n"
	"      --llm-base-url URL its OpenAI-compatible API (default\n"
	"                         https://api.deepseek.com)\n"
	"      --api-key-file F   read the API key from F (else DS_API_KEY,\n"
	"                         OPENAI_API_KEY or DEEPSEEK_API_KEY)\n"
	"      --llm-template FILE  the grading prompt (default share/prompts/grade.txt)\n"
	"      --llm-retries N    ask up to N times for a reply with a verdict (3)\n"
	"  -c, --concurrency N    grading requests in flight (8)\n"
	"      --skip-bad         count and skip malformed lines instead of stopping\n"
	"  -q, --quiet            no per-record reports and no summary line\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"With no FILE, or when FILE is -, read standard input. Input may be\n"
	"zstd-compressed. Domains \"math\" and \"code\" are judged by rule, others\n"
	"only with --llm. See ds-judge(1).\n";

enum llm_mode { LLM_OFF, LLM_OTHERS, LLM_ALL };

struct opts {
	const char *output, *rejected, *python;
	int skip_bad, quiet, summary, explain, jobs, unsafe;
	double timeout_s;
	long memory_mib;
	enum llm_mode llm;
	const char *llm_model, *llm_base_url, *llm_template, *key_file;
	int llm_tries, concurrency;
};

/* The grader, made once when --llm or --llm-all is given. */
struct grader {
	char *url;      /* .../chat/completions; owned */
	char *key;      /* owned (chatapi_key_free); never printed */
	char *tpl;      /* the grading prompt template; owned */
	http_retry retry;
	int stop;       /* an answer that says no request will succeed came */
	long requests;
};

/* A non-streamed answer arrives whole when it is made, so the stall limit
 * must outlast the grader's thinking; DeepSeek sends keep-alive lines
 * while a request waits in its queue. */
#define GRADE_STALL_S 600

/* What judging code needs, made at the first code record: the sandbox is
 * probed then, so a run of math alone never needs namespaces. */
struct code_ctx {
	int ready;
	char *python, *driver;
	struct codejudge_opts o;
};

/* ---- verdicts --------------------------------------------------------- */

enum verdict { V_CORRECT, V_INCORRECT, V_UNPARSABLE, V_ERROR, N_VERDICTS };
static const char *const verdict_name[] = {"correct", "incorrect", "unparsable", "error"};
enum method { M_MATH, M_CODE, M_LLM, N_METHODS };
static const char *const method_name[] = {"math", "code", "llm"};

/* A string field that may be absent or null (then NULL). Sets *bad when it
 * is something else. Borrows obj; the result lives as long as obj. */
static const char *opt_string(jv obj, const char *key, int *bad)
{
	jv v = jv_object_get(jv_copy(obj), jv_string(key));
	jv_kind k = jv_get_kind(v);
	const char *s = NULL;
	if (k == JV_KIND_STRING) s = jv_string_value(v);
	else if (k != JV_KIND_NULL && k != JV_KIND_INVALID) *bad = 1;
	jv_free(v);
	return s;
}

static jv reasonf(const char *fmt, const char *a, const char *b)
{
	size_t n = strlen(fmt) + strlen(a) + (b ? strlen(b) : 0) + 1;
	char *s = malloc(n);
	if (!s) cli_die(EXIT_RUNTIME, "out of memory");
	snprintf(s, n, fmt, a, b);
	jv r = jv_string(s);
	free(s);
	return r;
}

/* ---- the grader (--llm) ------------------------------------------------- */

/* The verdict of a grader's reply: its answer (after any <think> block;
 * never its reasoning) must end in exactly one verdict line,
 *
 *	VERDICT: CORRECT	or	VERDICT: INCORRECT
 *
 * case aside, with white space around the words, markdown asterisks
 * anywhere on the line and one final period allowed. Any other line whose
 * first word is "verdict" followed by a colon ("VERDICT: MOSTLY CORRECT")
 * makes the reply unreadable, as do a second verdict line and text after
 * it: a reply is read, never guessed at. */
enum { VL_NONE = -1, VL_INCORRECT = 0, VL_CORRECT = 1, VL_MALFORMED = 2 };

/* What kind of line s[0..n) is. */
static int verdict_line(const char *s, size_t n)
{
	char buf[48];
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < sizeof buf; i++)
		if (s[i] != '*' && s[i] != '\r') buf[k++] = s[i]; /* markdown's bold and italics */
	buf[k] = '\0';
	const char *p = buf;
	while (*p == ' ' || *p == '\t') p++;
	if (strncasecmp(p, "verdict", 7) != 0) return VL_NONE;
	p += 7;
	while (*p == ' ' || *p == '\t') p++;
	if (*p != ':') return VL_NONE; /* "Verdicts differ", "verdict of ..." are prose */
	p++;
	while (*p == ' ' || *p == '\t') p++;
	int v = !strncasecmp(p, "correct", 7) ? (p += 7, VL_CORRECT)
		: !strncasecmp(p, "incorrect", 9) ? (p += 9, VL_INCORRECT) : VL_MALFORMED;
	if (*p == '.') p++;
	while (*p == ' ' || *p == '\t') p++;
	return *p || k + 1 >= sizeof buf ? VL_MALFORMED : v;
}

/* Read the verdict of reply (borrowed): 0 with *v and *why (the text
 * before the verdict line, trimmed; owned), or -1 with *why saying what is
 * wrong (owned). */
static int grade_read(const char *reply, enum verdict *v, char **why)
{
	int found = VL_NONE, n_verdicts = 0;
	const char *at = NULL, *last = NULL; /* the verdict line, the last line with text */
	for (const char *p = reply; *p;) {
		const char *e = strchr(p, '\n');
		if (!e) e = p + strlen(p);
		int k = verdict_line(p, (size_t)(e - p));
		if (k != VL_NONE) n_verdicts++, found = k, at = p;
		for (const char *q = p; q < e; q++)
			if (!strchr(" \t\r", *q)) {
				last = p;
				break;
			}
		p = *e ? e + 1 : e;
	}
	if (n_verdicts == 0) {
		*why = xstrdup("no verdict line");
		return -1;
	}
	if (n_verdicts > 1) {
		*why = xasprintf("%d verdict lines", n_verdicts);
		return -1;
	}
	if (found == VL_MALFORMED) {
		const char *e = strchr(at, '\n');
		int len = e ? (int)(e - at) : (int)strlen(at);
		*why = xasprintf("a verdict line that is neither CORRECT nor INCORRECT: '%.*s'",
					       len > 80 ? 80 : len, at);
		return -1;
	}
	if (at != last) {
		*why = xstrdup("text after the verdict line");
		return -1;
	}
	*v = found == VL_CORRECT ? V_CORRECT : V_INCORRECT;
	const char *b = reply, *e = at;
	while (b < e && strchr(" \t\r\n", *b)) b++;
	while (e > b && strchr(" \t\r\n", e[-1])) e--;
	*why = e > b ? xasprintf("%.*s", (int)(e - b), b) : xstrdup("the grader gave no reason");
	return 0;
}

/* At most max bytes of s (borrowed), cut on a UTF-8 character boundary,
 * with "..." when cut: a reply quoted in a reason. Returns owned. */
static char *quote_cut(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max) return xstrdup(s);
	while (max && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
	char *q = xmalloc(max + 4);
	memcpy(q, s, max);
	memcpy(q + max, "...", 4);
	return q;
}

static void grader_init(struct grader *g, const struct opts *o)
{
	memset(g, 0, sizeof *g);
	g->url = chatapi_url(o->llm_base_url);
	if (chatapi_key(o->key_file, &g->key))
		cli_die(EXIT_USAGE, "%s: cannot read the API key file: %s", o->key_file, strerror(errno));
	char *path = o->llm_template ? NULL : cli_share_path("prompts/grade.txt");
	const char *file = o->llm_template ? o->llm_template : path;
	if (!file) cli_die(EXIT_RUNTIME, "share/prompts/grade.txt not found (set DS_SHARE)");
	g->tpl = cli_read_file(file);
	if (!g->tpl) cli_die(o->llm_template ? EXIT_USAGE : EXIT_RUNTIME, "%s: %s", file, strerror(errno));
	if (!strstr(g->tpl, "{candidate}"))
		cli_die(EXIT_USAGE, "%s: the template has no {candidate}: the grader would not see the answer", file);
	free(path);
	g->retry = http_retry_default();
	http_init(); /* before any thread makes a request */
}

static void grader_free(struct grader *g)
{
	free(g->url);
	chatapi_key_free(g->key);
	free(g->tpl);
}

/* The request that asks the grader about one answer. Borrows all; returns
 * owned. */
static char *grade_request(const struct grader *g, const struct opts *o, const char *problem,
			   const char *answer, const char *solution, const char *candidate)
{
	static const char *const names[] = {"problem", "answer", "solution", "candidate"};
	const char *none = "(none given)";
	const char *values[] = {problem && *problem ? problem : none, answer && *answer ? answer : none,
				solution && *solution ? solution : none, candidate};
	char *prompt = chatapi_fill(g->tpl, names, values, 4);
	/* temperature 0: the same answer graded twice gets the same verdict */
	char *body = chatapi_request_body(o->llm_model, prompt, 0, 0);
	free(prompt);
	return body;
}

/* ---- code ------------------------------------------------------------- */

static void code_ready(struct code_ctx *cx, const struct opts *o)
{
	if (cx->ready) return;
	char *why = NULL;
	if (sandbox_init(o->unsafe ? SANDBOX_UNSAFE : SANDBOX_NAMESPACES, &why))
		cli_die(EXIT_RUNTIME, "%s; refusing to run untrusted code (--unsafe-no-sandbox runs it without one)",
			why ? why : "cannot make a sandbox");
	cx->python = sandbox_which(o->python ? o->python : "python3");
	if (!cx->python)
		cli_die(EXIT_RUNTIME, "%s: not found%s", o->python ? o->python : "python3",
			o->python ? "" : " in /usr/local/bin, /usr/bin or /bin (--python names one)");
	char *path = cli_share_path("judge/call.py");
	if (!path || !(cx->driver = cli_read_file(path)))
		cli_die(EXIT_RUNTIME, "%s: %s", path ? path : "share/judge/call.py",
			path ? strerror(errno) : "not found (set DS_SHARE)");
	free(path);
	cx->o.python = cx->python;
	cx->o.driver = cx->driver;
	cx->o.limits = sandbox_limits_default();
	cx->o.limits.wall_s = o->timeout_s;
	cx->o.limits.cpu_s = (int)ceil(o->timeout_s) + 1;
	cx->o.limits.mem_bytes = o->memory_mib << 20;
	cx->o.jobs = o->jobs;
	cx->o.all_cases = o->explain;
	cx->ready = 1;
}

static void code_ctx_free(struct code_ctx *cx)
{
	free(cx->python);
	free(cx->driver);
}

/* Judge a code record (borrowed) whose reply is content or reasoning;
 * sets *predicted, *reason and (with --explain) *explain. */
static enum verdict judge_code(jv rec, const char *content, const char *reasoning, struct code_ctx *cx,
			       const struct opts *o, jv *predicted, jv *reason, jv *explain)
{
	struct codejudge_tests t;
	char *err = NULL, *code = NULL;
	jv tests = jv_object_get(jv_copy(rec), jv_string("tests"));
	if (jv_get_kind(tests) == JV_KIND_NULL || jv_get_kind(tests) == JV_KIND_INVALID) {
		jv_free(tests);
		*reason = jv_string("no \"tests\" to run the code on");
		return V_ERROR;
	}
	if (codejudge_tests_parse(tests, &t, &err)) {
		*reason = jv_string(err);
		free(err);
		return V_ERROR;
	}
	/* the code is in content; a reply cut short may hold it only in its
	 * reasoning */
	const char *from = "content";
	if (content) code = codejudge_extract(content);
	if (!code && reasoning) code = codejudge_extract(reasoning), from = "reasoning";
	if (!code) {
		codejudge_tests_free(&t);
		*reason = jv_string("no Python code block (```python ... ```) in the reply");
		return V_UNPARSABLE;
	}
	code_ready(cx, o);
	*predicted = jv_string(code);
	struct codejudge_case_result *res = xcalloc((size_t)t.n, sizeof *res);
	int first = codejudge_run(code, &t, &cx->o, res);
	enum verdict v;
	if (first < 0) {
		v = V_CORRECT;
		*reason = t.n == 1 ? jv_string("the 1 case passes") : jv_string_fmt("all %d cases pass", t.n);
	} else {
		struct codejudge_case_result *r = &res[first];
		v = r->status == CJ_SANDBOX_ERROR ? V_ERROR : V_INCORRECT;
		if (r->status == CJ_COMPILE_ERROR)
			*reason = jv_string_fmt("compile error: %s", r->detail ? r->detail : "");
		else
			*reason = jv_string_fmt("case %d of %d: %s%s%s", first + 1, t.n, codejudge_status_name(r->status),
						r->detail ? ": " : "", r->detail ? r->detail : "");
	}
	if (o->explain) {
		jv cases = jv_array();
		for (int i = 0; i < t.n; i++) {
			jv c = jv_object_set(jv_object(), jv_string("case"), jv_number(i + 1));
			c = jv_object_set(c, jv_string("result"), jv_string(codejudge_status_name(res[i].status)));
			if (res[i].status != CJ_NOT_RUN)
				c = jv_object_set(c, jv_string("seconds"), jv_number(round(res[i].wall_s * 1000) / 1000));
			if (res[i].detail) c = jv_object_set(c, jv_string("detail"), jv_string(res[i].detail));
			cases = jv_array_append(cases, c);
		}
		*explain = jv_object_set(jv_object(), jv_string("code_from"), jv_string(from));
		*explain = jv_object_set(*explain, jv_string("call"), t.fn_name ? jv_string(t.fn_name) : jv_null());
		*explain = jv_object_set(*explain, jv_string("cases"), cases);
	}
	for (int i = 0; i < t.n; i++) free(res[i].detail);
	free(res);
	free(code);
	codejudge_tests_free(&t);
	return v;
}

/* ---- math ------------------------------------------------------------- */

/* An answer and its normal form, for --explain. Borrows s. */
static jv explain_answer(jv obj, const char *key, const char *s)
{
	char normal_key[64];
	snprintf(normal_key, sizeof normal_key, "%s_normalised", key);
	char *n = s ? mathans_normalize(s) : NULL;
	obj = jv_object_set(obj, jv_string(key), s ? jv_string(s) : jv_null());
	obj = jv_object_set(obj, jv_string(normal_key), n ? jv_string(n) : jv_null());
	free(n);
	return obj;
}

/* The phrase by which a guided sample (ds-teacher --guided was handed the
 * reference) reveals that it was, or NULL. Borrows all. */
static const char *guided_leak(jv t, const char *reasoning, const char *content)
{
	jv guided = jv_object_get(jv_copy(t), jv_string("guided"));
	int is_guided = jv_get_kind(guided) == JV_KIND_TRUE;
	jv_free(guided);
	if (!is_guided) return NULL;
	const char *leak = reasoning ? leak_find(reasoning) : NULL;
	if (!leak && content) leak = leak_find(content);
	return leak;
}

/* The judge object. Consumes predicted, reason and explain (invalid: none). */
static jv judge_object(enum verdict v, int method, jv predicted, jv reason, jv explain)
{
	jv j = jv_object_set(jv_object(), jv_string("verdict"), jv_string(verdict_name[v]));
	j = jv_object_set(j, jv_string("method"), jv_string(method_name[method]));
	j = jv_object_set(j, jv_string("predicted"), predicted);
	j = jv_object_set(j, jv_string("reason"), reason);
	if (jv_is_valid(explain)) j = jv_object_set(j, jv_string("explain"), explain);
	else jv_free(explain);
	return j;
}

/* Judge rec (borrowed): the judge object into *judge (owned), the verdict
 * returned (its method in *method); or a message in *malformed when rec
 * breaks the contract; or, when the grader is to judge it, the request
 * into *ask (owned) and *judge left invalid. */
static enum verdict judge_record(jv rec, jv *judge, const char **malformed, struct code_ctx *cx,
				 const struct opts *o, const struct grader *g, int *method, char **ask)
{
	int bad = 0;
	const char *id = jsonl_get_string(rec, "id");
	if (!id || !*id) return *malformed = "no \"id\" string", V_ERROR;
	jv t = jv_object_get(jv_copy(rec), jv_string("teacher"));
	if (jv_get_kind(t) != JV_KIND_OBJECT) {
		jv_free(t);
		return *malformed = "no \"teacher\" object (run ds-teacher or ds-infer first)", V_ERROR;
	}
	const char *content = opt_string(t, "content", &bad);
	const char *reasoning = opt_string(t, "reasoning", &bad);
	const char *domain = opt_string(rec, "domain", &bad);
	const char *answer = opt_string(rec, "answer", &bad);
	const char *solution = opt_string(rec, "solution", &bad);
	if (bad) {
		jv_free(t);
		return *malformed = "teacher.content/reasoning, domain, answer or solution is not a string", V_ERROR;
	}

	enum verdict v;
	jv predicted = jv_null(), reason, explain = jv_invalid();
	char *gold = NULL, *pred = NULL;
	enum mathans_rule rule = MATHANS_RULE_NONE;
	*method = M_MATH;
	int by_rule = !domain || !strcmp(domain, "math") || !strcmp(domain, "code");
	if (o->llm == LLM_ALL || (o->llm == LLM_OTHERS && !by_rule)) {
		*method = M_LLM;
		const char *problem = opt_string(rec, "problem", &bad);
		if (bad) {
			jv_free(t);
			return *malformed = "problem is not a string", V_ERROR;
		}
		if (guided_leak(t, reasoning, content)) {
			v = V_INCORRECT; /* set below; no need to ask */
			reason = jv_null();
		} else if (!content || !*content) {
			/* the grader sees the answer, not the chain of thought:
			 * a reply cut short inside it has none */
			v = V_UNPARSABLE;
			reason = jv_string("no answer to grade (teacher.content is empty)");
		} else if (!(answer && *answer) && !(solution && *solution)) {
			v = V_ERROR;
			reason = jv_string("no reference to grade against (no \"answer\", no \"solution\")");
		} else {
			*ask = grade_request(g, o, problem, answer, solution, content);
			*judge = jv_invalid();
			jv_free(t);
			return V_ERROR;
		}
		goto out;
	}
	if (domain && strcmp(domain, "code") == 0) {
		*method = M_CODE;
		v = judge_code(rec, content, reasoning, cx, o, &predicted, &reason, &explain);
		goto out;
	}
	if (domain && strcmp(domain, "math") != 0) {
		v = V_ERROR;
		reason = reasonf("no judge for domain %s yet", domain, NULL);
		goto out;
	}
	if (answer && *answer) gold = strstr(answer, "\\boxed") || strstr(answer, "\\fbox")
					     ? mathans_extract(answer) : strdup(answer);
	else if (solution) gold = mathans_extract(solution);
	if (!gold) {
		v = V_ERROR;
		reason = jv_string("no reference answer (neither \"answer\" nor a boxed answer in \"solution\")");
		goto out;
	}
	/* the answer is in content; a reply cut short may hold it only in
	 * its reasoning */
	const char *text = content && *content ? content : reasoning ? reasoning : "";
	pred = mathans_extract_rule(text, &rule);
	if (!pred) {
		v = V_UNPARSABLE;
		reason = jv_string("no final answer found (no \\boxed{}, no \"answer\" phrase, no LaTeX, no number)");
		goto out;
	}
	predicted = jv_string(pred);
	switch (mathans_equal(gold, pred)) {
	case MATHANS_EQUAL:
		v = V_CORRECT;
		reason = reasonf("equals the reference %s", gold, NULL);
		break;
	case MATHANS_DIFFERENT:
		v = V_INCORRECT;
		reason = reasonf("differs from the reference %s", gold, NULL);
		break;
	case MATHANS_PRED_UNPARSABLE:
		v = V_UNPARSABLE;
		reason = jv_string("the final answer does not parse");
		break;
	default:
		v = V_ERROR;
		reason = reasonf("the reference answer %s does not parse", gold, NULL);
		break;
	}
out:
	/* A guided sample (ds-teacher --guided was handed the reference) that
	 * says so is no derivation, whatever its answer. The reason is
	 * lib/leak.h's verbatim: ds-sharegpt and ds-teacher --guided read it. */
	const char *leak = guided_leak(t, reasoning, content);
	if (leak) {
		v = V_INCORRECT;
		jv_free(reason);
		reason = jv_string(leak);
	}
	if (o->explain && *method == M_MATH && (!domain || strcmp(domain, "math") == 0)) {
		/* the rule that took the answer: why a reply was read as it was */
		explain = jv_object_set(jv_object(), jv_string("rule"), jv_string(mathans_rule_name(rule)));
		explain = explain_answer(explain_answer(explain, "predicted", pred), "reference", gold);
	}
	*judge = judge_object(v, *method, predicted, reason, explain);
	free(gold);
	free(pred);
	jv_free(t);
	return v;
}

/* ---- the run ---------------------------------------------------------- */

/* Counts per verdict of one group of records (a method, a source). */
struct tally {
	char *name; /* owned */
	long n[N_VERDICTS];
};

struct stats {
	long read, skipped, duplicates, bad, unjudged;
	long n[N_VERDICTS];
	struct tally method[N_METHODS];
	struct tally *source; /* n_source, in order of first appearance */
	int n_source;
};

/* The tally of source name (borrowed; NULL for records without one). */
static struct tally *source_tally(struct stats *st, const char *name)
{
	if (!name) name = "(none)";
	for (int i = st->n_source - 1; i >= 0; i--)
		if (strcmp(st->source[i].name, name) == 0) return &st->source[i];
	st->source = xrealloc(st->source, (size_t)(st->n_source + 1) * sizeof *st->source);
	struct tally *t = &st->source[st->n_source++];
	memset(t, 0, sizeof *t);
	t->name = xstrdup(name);
	return t;
}

static void tally_line(const char *what, const struct tally *t)
{
	long judged = 0;
	for (int i = 0; i < N_VERDICTS; i++) judged += t->n[i];
	if (!judged) return;
	fprintf(stderr, "%s: %s %s: accuracy %.4f (%ld/%ld); correct %ld, incorrect %ld, unparsable %ld, error %ld\n",
		cli_prog, what, t->name, (double)t->n[V_CORRECT] / (double)judged, t->n[V_CORRECT], judged,
		t->n[V_CORRECT], t->n[V_INCORRECT], t->n[V_UNPARSABLE], t->n[V_ERROR]);
}

static void summary(const struct stats *st, const struct opts *o, const struct grader *g)
{
	long judged = 0;
	for (int i = 0; i < N_VERDICTS; i++) judged += st->n[i];
	if (!o->quiet) {
		fprintf(stderr,
			"%s: %ld read, %ld correct, %ld rejected, %ld already done, "
			"%ld duplicate%s, %ld bad line%s skipped",
			cli_prog, st->read, st->n[V_CORRECT], judged - st->n[V_CORRECT], st->skipped,
			st->duplicates, st->duplicates == 1 ? "" : "s", st->bad, st->bad == 1 ? "" : "s");
		if (o->llm) fprintf(stderr, "; %ld grading request%s", g->requests, g->requests == 1 ? "" : "s");
		if (st->unjudged) fprintf(stderr, "; %ld not judged", st->unjudged);
		fputc('\n', stderr);
	}
	if (o->summary) {
		fprintf(stderr, "%s: accuracy %.4f (%ld/%ld)\n", cli_prog,
			judged ? (double)st->n[V_CORRECT] / (double)judged : 0.0, st->n[V_CORRECT], judged);
		fprintf(stderr, "%s: correct %ld, incorrect %ld, unparsable %ld, error %ld\n", cli_prog,
			st->n[V_CORRECT], st->n[V_INCORRECT], st->n[V_UNPARSABLE], st->n[V_ERROR]);
		for (int m = 0; m < N_METHODS; m++) tally_line("method", &st->method[m]);
		for (int i = 0; i < st->n_source; i++) tally_line("source", &st->source[i]);
	}
}

/* ---- the window --------------------------------------------------------- */

/* A record read and not yet written. */
enum item_state { IT_JUDGED, IT_ASK, IT_UNJUDGED };

struct item {
	jv rec;          /* owned */
	char *where;     /* "FILE:LINE" for messages; owned */
	enum item_state state;
	enum verdict v;
	int method;
	jv judge;        /* owned once IT_JUDGED */
	/* the grader's part: what a thread reads (body) and writes (the rest) */
	char *body;      /* the request; owned */
	int asked;       /* replies had so far */
	http_reply reply;
	int rc, tries;
	char err[256];
};

/* The records between reading and writing: at most -c waiting for the
 * grader, and never more than WINDOW_MAX in all. */
#define WINDOW_MAX 1024

struct window {
	struct item *it;
	int n, asks;
};

struct run {
	const struct opts *o;
	struct grader g;
	struct window w;
	struct stats st;
	FILE *out, *rej;
	int status;
};

struct ask_arg {
	const struct grader *g;
	struct item *it;
};

static void *ask_one(void *arg)
{
	struct ask_arg *a = arg;
	a->it->rc = chatapi_post(a->g->url, a->g->key, a->it->body, &a->g->retry, GRADE_STALL_S, &a->it->reply,
				 a->it->err, sizeof a->it->err, &a->it->tries);
	return NULL;
}

/* A reply that cannot be used, for the reason problem (borrowed): ask
 * again while tries are left; else judge the item error with error_reason
 * (consumed), or, when that is invalid, leave it unjudged for a rerun. */
static void ask_again_or(struct run *r, struct item *it, const char *problem, jv error_reason)
{
	const char *id = jsonl_get_string(it->rec, "id");
	if (it->asked < r->o->llm_tries) {
		jv_free(error_reason);
		if (r->g.stop) { /* no more requests: a rerun asks again */
			it->state = IT_UNJUDGED;
			return;
		}
		if (!r->o->quiet)
			fprintf(stderr, "%s:%s: %s: %s; asking again (%d of %d)\n", cli_prog, it->where, id, problem,
				it->asked + 1, r->o->llm_tries);
		return; /* stays IT_ASK */
	}
	if (jv_is_valid(error_reason)) {
		it->state = IT_JUDGED;
		it->v = V_ERROR;
		it->judge = judge_object(V_ERROR, M_LLM, jv_null(), error_reason, jv_invalid());
	} else {
		it->state = IT_UNJUDGED;
		fprintf(stderr, "%s:%s: %s: not judged: %s\n", cli_prog, it->where, id, problem);
	}
}

/* Read the grader's reply to it, on the main thread. */
static void take_reply(struct run *r, struct item *it)
{
	const char *id = jsonl_get_string(it->rec, "id");
	char why[600];
	it->asked++;
	r->g.requests += it->tries;
	if (it->rc != 0) {
		it->state = IT_UNJUDGED;
		fprintf(stderr, "%s:%s: %s: not judged: the grader did not answer (%s; %d tr%s)\n", cli_prog,
			it->where, id, it->err, it->tries, it->tries == 1 ? "y" : "ies");
		return;
	}
	enum chatapi_fate fate = chatapi_fate(it->reply.status);
	if (fate != CHATAPI_OK) {
		chatapi_describe_error(&it->reply, why, sizeof why);
		it->state = IT_UNJUDGED;
		if (fate == CHATAPI_STOP) {
			if (!r->g.stop)
				cli_warn("%s: %s; stopping: no new requests (what is judged is kept)", r->g.url, why);
			r->g.stop = 1;
		} else {
			fprintf(stderr, "%s:%s: %s: not judged: %s (%d tr%s)\n", cli_prog, it->where, id, why, it->tries,
				it->tries == 1 ? "y" : "ies");
		}
		return;
	}
	chatapi_answer a;
	if (chatapi_parse(it->reply.body, it->reply.len, &a, why, sizeof why)) {
		ask_again_or(r, it, why, jv_invalid());
		return;
	}
	enum verdict v;
	char *text = NULL;
	if (grade_read(a.content, &v, &text) == 0) {
		it->state = IT_JUDGED;
		it->v = v;
		jv explain = jv_invalid();
		if (r->o->explain) {
			explain = jv_object_set(jv_object(), jv_string("model"), a.model ? jv_string(a.model) : jv_null());
			explain = jv_object_set(explain, jv_string("asked"), jv_number(it->asked));
			explain = jv_object_set(explain, jv_string("reply"), jv_string(a.content));
		}
		it->judge = judge_object(v, M_LLM, jv_null(), jv_string(text), explain);
	} else {
		char *q = quote_cut(a.content, 400);
		snprintf(why, sizeof why, "the grader's reply has %s", text);
		jv reason = jv_string_fmt("the grader's reply has %s (asked %d time%s); its last reply: \"%s\"", text,
					  it->asked, it->asked == 1 ? "" : "s", q);
		free(q);
		ask_again_or(r, it, why, reason);
	}
	free(text);
	chatapi_answer_free(&a);
}

/* Ask the grader about every item of the window that waits for it, again
 * while a reply is unusable and tries are left. */
static void window_ask(struct run *r)
{
	struct window *w = &r->w;
	struct ask_arg *args = xcalloc((size_t)w->n, sizeof *args);
	pthread_t *th = xcalloc((size_t)w->n, sizeof *th);
	char *started = xcalloc((size_t)w->n, 1);
	for (;;) {
		int k = 0;
		for (int i = 0; i < w->n; i++) {
			struct item *it = &w->it[i];
			if (it->state != IT_ASK) continue;
			if (r->g.stop) {
				it->state = IT_UNJUDGED;
				continue;
			}
			args[i] = (struct ask_arg){&r->g, it};
			http_reply_free(&it->reply);
			it->rc = -1;
			it->tries = 0;
			it->err[0] = '\0';
			/* a thread that cannot be made: the request is made here */
			started[i] = pthread_create(&th[i], NULL, ask_one, &args[i]) == 0;
			if (!started[i]) ask_one(&args[i]);
			k++;
		}
		if (!k) break;
		for (int i = 0; i < w->n; i++)
			if (w->it[i].state == IT_ASK && started[i]) pthread_join(th[i], NULL), started[i] = 0;
		for (int i = 0; i < w->n; i++)
			if (w->it[i].state == IT_ASK) take_reply(r, &w->it[i]);
	}
	free(started);
	free(th);
	free(args);
}

/* Write an item's record where its verdict sends it, and count it. */
static void item_write(struct run *r, struct item *it)
{
	const struct opts *o = r->o;
	struct stats *st = &r->st;
	if (it->state != IT_JUDGED) {
		st->unjudged++;
		r->status = EXIT_RUNTIME;
		return;
	}
	enum verdict v = it->v;
	st->n[v]++;
	st->method[it->method].n[v]++;
	source_tally(st, jsonl_get_string(it->rec, "source"))->n[v]++;
	if (v != V_CORRECT && !r->rej && !o->quiet) {
		jv why = jv_object_get(jv_copy(it->judge), jv_string("reason"));
		fprintf(stderr, "%s:%s: %s: %s: %s\n", cli_prog, it->where, jsonl_get_string(it->rec, "id"),
			verdict_name[v], jv_string_value(why));
		jv_free(why);
	}
	FILE *f = v == V_CORRECT ? r->out : r->rej;
	const char *name = v == V_CORRECT ? (o->output ? o->output : "standard output") : o->rejected;
	jv j = jv_object_set(jv_copy(it->rec), jv_string("judge"), it->judge);
	it->judge = jv_invalid();
	if (f && jsonl_write(f, j)) cli_die(EXIT_RUNTIME, "%s: write error: %m", name);
	if (!f) jv_free(j);
}

/* Finish the window: the grader's answers, then every record in input
 * order. */
static void window_flush(struct run *r)
{
	struct window *w = &r->w;
	if (w->asks) window_ask(r);
	for (int i = 0; i < w->n; i++) {
		struct item *it = &w->it[i];
		item_write(r, it);
		jv_free(it->rec);
		jv_free(it->judge);
		free(it->where);
		free(it->body);
		http_reply_free(&it->reply);
	}
	w->n = w->asks = 0;
}

/* Take a record (consumed) judged or to be asked about (ask owned, or
 * NULL). A judged record with nothing before it is written at once, so a
 * run without the grader streams as it always did. */
static void window_add(struct run *r, jv rec, const char *where, enum verdict v, int method, jv judge, char *ask)
{
	struct window *w = &r->w;
	if (!w->it) w->it = xcalloc(WINDOW_MAX, sizeof *w->it);
	struct item *it = &w->it[w->n++];
	memset(it, 0, sizeof *it);
	it->rec = rec;
	it->where = xstrdup(where);
	it->method = method;
	it->v = v;
	it->judge = judge;
	it->body = ask;
	it->state = ask ? IT_ASK : IT_JUDGED;
	w->asks += ask != NULL;
	if ((w->n == 1 && !ask) || w->asks >= r->o->concurrency || w->n == WINDOW_MAX) window_flush(r);
}

/* ---- the entry point ---------------------------------------------------- */

static int count_arg(const char *usage_text, const char *opt, const char *s, int lo, int hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*end || end == s || v < lo || v > hi)
		cli_usage_error(usage_text, "%s: want a number from %d to %d, not %s", opt, lo, hi, s);
	return (int)v;
}

int main(int argc, char **argv)
{
	cli_init("ds-judge");
	struct opts o = {.jobs = 1, .timeout_s = 4, .memory_mib = 1024, .llm_model = "deepseek-chat",
			 .llm_base_url = "https://api.deepseek.com", .llm_tries = 3, .concurrency = 8};
	int llm_opts = 0; /* options that mean nothing without --llm */
	static const struct option longopts[] = {
		{"output", 1, 0, 'o'},   {"rejected", 1, 0, 'r'}, {"skip-bad", 0, 0, 'B'},
		{"summary", 0, 0, 'S'},  {"quiet", 0, 0, 'q'},    {"explain", 0, 0, 'E'},
		{"jobs", 1, 0, 'j'},     {"timeout", 1, 0, 'T'},  {"memory", 1, 0, 'M'},
		{"python", 1, 0, 'P'},   {"unsafe-no-sandbox", 0, 0, 'U'},
		{"llm", 0, 0, 'L'},      {"llm-all", 0, 0, 'A'},  {"llm-model", 1, 0, 'm'},
		{"llm-base-url", 1, 0, 'u'}, {"api-key-file", 1, 0, 'k'}, {"llm-template", 1, 0, 't'},
		{"llm-retries", 1, 0, 'R'}, {"concurrency", 1, 0, 'c'},
		CLI_LONGOPTS_COMMON,     {0, 0, 0, 0}};
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "o:r:j:c:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'E': o.explain = 1; break;
		case 'U': o.unsafe = 1; break;
		case 'P': o.python = optarg; break;
		case 'j': o.jobs = count_arg(usage, "-j", optarg, 1, 64); break;
		case 'T':
			o.timeout_s = strtod(optarg, &end);
			if (*end || end == optarg || !(o.timeout_s > 0 && o.timeout_s <= 3600))
				cli_usage_error(usage, "--timeout: want seconds (0 < SEC <= 3600), not %s", optarg);
			break;
		case 'M':
			o.memory_mib = strtol(optarg, &end, 10);
			if (*end || end == optarg || o.memory_mib < 16 || o.memory_mib > (1L << 20))
				cli_usage_error(usage, "--memory: want MiB (16 to 1048576), not %s", optarg);
			break;
		case 'L':
		case 'A':
			if (o.llm && o.llm != (c == 'L' ? LLM_OTHERS : LLM_ALL))
				cli_usage_error(usage, "--llm and --llm-all: give one");
			o.llm = c == 'L' ? LLM_OTHERS : LLM_ALL;
			break;
		case 'm': o.llm_model = optarg, llm_opts = 1; break;
		case 'u': o.llm_base_url = optarg, llm_opts = 1; break;
		case 'k': o.key_file = optarg, llm_opts = 1; break;
		case 't': o.llm_template = optarg, llm_opts = 1; break;
		case 'R': o.llm_tries = count_arg(usage, "--llm-retries", optarg, 1, 100), llm_opts = 1; break;
		case 'c': o.concurrency = count_arg(usage, "-c", optarg, 1, 256), llm_opts = 1; break;
		case 'o': o.output = optarg; break;
		case 'r': o.rejected = optarg; break;
		case 'B': o.skip_bad = 1; break;
		case 'S': o.summary = 1; break;
		case 'q': o.quiet = 1; break;
		case 'h': fputs(usage, stdout); fputs(help, stdout); cli_close_stdout(); return 0;
		case 'V': cli_version(); cli_close_stdout(); return 0;
		default: cli_usage_error(usage, "bad option");
		}
	}
	if (o.output && o.rejected && strcmp(o.output, o.rejected) == 0)
		cli_usage_error(usage, "--output and --rejected name the same file");
	if (llm_opts && !o.llm)
		cli_usage_error(usage, "the grader's options (--llm-*, --api-key-file, -c) need --llm or --llm-all");
	if (!*o.llm_model) cli_usage_error(usage, "--llm-model: empty");

	struct run r = {.o = &o, .status = 0};
	if (o.llm) grader_init(&r.g, &o);
	idset *done = idset_new(), *seen = idset_new();
	struct stats *st = &r.st;
	struct code_ctx cx = {0};
	for (int m = 0; m < N_METHODS; m++) st->method[m].name = xstrdup(method_name[m]);
	r.out = stdout;
	long n_out = 0, n_rej = 0;
	if (o.output) r.out = resume_open(o.output, done, resume_key_id_sample, &n_out);
	if (o.rejected) r.rej = resume_open(o.rejected, done, resume_key_id_sample, &n_rej);

	int status = 0;
	progress pg;
	jsonl_inputs in;
	jsonl_inputs_init(&in, argv + optind, argc - optind, o.skip_bad, &pg);
	jv rec;
	int k;
	while (!r.g.stop && (k = jsonl_inputs_next(&in, &rec)) != 0) {
		if (k < 0) {
			status = EXIT_RUNTIME;
			break;
		}
		const char *malformed = NULL;
		jv judge = jv_invalid();
		int method = M_MATH;
		char *ask = NULL;
		char *key = resume_key_id_sample(rec);
		/* a record done by an earlier run is not run again */
		if (key && idset_has(done, key, strlen(key))) {
			st->skipped++;
			free(key);
			jv_free(rec);
			continue;
		}
		free(key);
		enum verdict v = judge_record(rec, &judge, &malformed, &cx, &o, &r.g, &method, &ask);
		if (malformed) {
			int stop = jsonl_inputs_reject(&in, "%s", malformed);
			jv_free(rec);
			if (stop) {
				status = EXIT_RUNTIME;
				break;
			}
			continue;
		}
		key = resume_key_id_sample(rec);
		if (!idset_add(seen, key, strlen(key))) {
			st->duplicates++; /* repeated in the input: judged once */
			jv_free(judge);
			free(ask);
			jv_free(rec);
		} else {
			window_add(&r, rec, jsonl_inputs_where(&in), v, method, judge, ask);
		}
		free(key);
	}
	/* what is read is judged and written before a bad line stops the run */
	window_flush(&r);
	jsonl_inputs_close(&in);
	st->read = in.read;
	st->bad = in.bad;
	if (status == 0 && st->read == 0 && st->bad == 0)
		cli_warn("no records in the input"), status = EXIT_RUNTIME;
	if (r.status) status = r.status;
	if (st->unjudged || r.g.stop)
		cli_warn("%ld record%s not judged%s: rerun with the same -o and -r to judge %s", st->unjudged,
			 st->unjudged == 1 ? "" : "s", r.g.stop ? " and the rest of the input not read" : "",
			 st->unjudged == 1 && !r.g.stop ? "it" : "them");
	if (r.g.stop) status = EXIT_RUNTIME;

	if (r.rej) resume_close(r.rej, o.rejected);
	if (o.output) resume_close(r.out, o.output);
	else cli_close_stdout();
	summary(st, &o, &r.g);
	for (int m = 0; m < N_METHODS; m++) free(st->method[m].name);
	for (int i = 0; i < st->n_source; i++) free(st->source[i].name);
	free(st->source);
	free(r.w.it);
	if (o.llm) grader_free(&r.g);
	code_ctx_free(&cx);
	idset_free(seen);
	idset_free(done);
	return status;
}
