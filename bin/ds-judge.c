/* ds-judge — keep only what the teacher got right.
 *
 * Reads records with a `teacher` object (DESIGN.md §1), adds `judge`
 * {verdict, method, predicted, reason}, and writes the correct ones to
 * stdout and the others to --rejected. Math is judged by rule
 * (lib/mathans.c, Math-Verify's rules), code by running it on its tests in
 * a sandbox (lib/codejudge.c, lib/sandbox.c); other domains have no judge
 * yet, and their records get verdict "error", never "correct".
 */
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
#include <stdlib.h>
#include <string.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-judge [-q] [--summary] [--explain] [--skip-bad] [-o OUT] [-r REJECTED]\n"
	"                [-j N] [--timeout SEC] [--memory MIB] [--python PATH]\n"
	"                [--unsafe-no-sandbox] [FILE...]\n";

static const char help[] =
	"Judge the teacher's answers (JSONL records with \"teacher\") against the\n"
	"reference answers; add \"judge\" to each record.\n"
	"\n"
	"  -o, --output OUT       write correct records to OUT instead of stdout; a\n"
	"                         rerun with the same OUT skips what it holds\n"
	"  -r, --rejected FILE    append the other records there (restartable too)\n"
	"      --summary          print accuracy and counts per verdict, method and\n"
	"                         source on stderr\n"
	"      --explain          add judge.explain: the answers before and after\n"
	"                         normalisation (math), each case's result (code)\n"
	"  -j, --jobs N           run up to N test cases of a program at once (1)\n"
	"      --timeout SEC      wall-clock limit per test case (4)\n"
	"      --memory MIB       address-space limit per process of a case (1024)\n"
	"      --python PATH      the interpreter for code (python3 in /usr/local/bin,\n"
	"                         /usr/bin or /bin)\n"
	"      --unsafe-no-sandbox  run code without namespaces where they cannot be\n"
	"                         made (rlimits only; never on a machine you care about)\n"
	"      --skip-bad         count and skip malformed lines instead of stopping\n"
	"  -q, --quiet            no per-record reports and no summary line\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"With no FILE, or when FILE is -, read standard input. Input may be\n"
	"zstd-compressed. Domains \"math\" and \"code\" are judged. See ds-judge(1).\n";

struct opts {
	const char *output, *rejected, *python;
	int skip_bad, quiet, summary, explain, jobs, unsafe;
	double timeout_s;
	long memory_mib;
};

/* What judging code needs, made at the first code record: the sandbox is
 * probed then, so a run of math alone never needs namespaces. */
struct code_ctx {
	int ready;
	char *python, *driver;
	struct codejudge_opts o;
};

/* ---- one record ------------------------------------------------------- */

enum verdict { V_CORRECT, V_INCORRECT, V_UNPARSABLE, V_ERROR, N_VERDICTS };
static const char *const verdict_name[] = {"correct", "incorrect", "unparsable", "error"};
enum method { M_MATH, M_CODE, N_METHODS };
static const char *const method_name[] = {"math", "code"};

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

/* Judge rec (borrowed): the judge object into *judge (owned), the verdict
 * returned (its method in *method); or a message in *malformed when rec
 * breaks the contract. */
static enum verdict judge_record(jv rec, jv *judge, const char **malformed, struct code_ctx *cx,
				 const struct opts *o, int *method)
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
	*method = M_MATH;
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
	pred = mathans_extract(text);
	if (!pred) {
		v = V_UNPARSABLE;
		reason = jv_string("no final answer found (no \\boxed{}, no \"the answer is\")");
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
	if (jv_get_kind(jv_object_get(jv_copy(t), jv_string("guided"))) == JV_KIND_TRUE) {
		const char *leak = reasoning ? leak_find(reasoning) : NULL;
		if (!leak && content) leak = leak_find(content);
		if (leak) {
			v = V_INCORRECT;
			jv_free(reason);
			reason = jv_string(leak);
		}
	}
	if (o->explain && *method == M_MATH && (!domain || strcmp(domain, "math") == 0))
		explain = explain_answer(explain_answer(jv_object(), "predicted", pred), "reference", gold);
	*judge = jv_object_set(jv_object(), jv_string("verdict"), jv_string(verdict_name[v]));
	*judge = jv_object_set(*judge, jv_string("method"), jv_string(method_name[*method]));
	*judge = jv_object_set(*judge, jv_string("predicted"), predicted);
	*judge = jv_object_set(*judge, jv_string("reason"), reason);
	if (jv_is_valid(explain)) *judge = jv_object_set(*judge, jv_string("explain"), explain);
	else jv_free(explain);
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
	long read, skipped, duplicates, bad;
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

static void summary(const struct stats *st, const struct opts *o)
{
	long judged = 0;
	for (int i = 0; i < N_VERDICTS; i++) judged += st->n[i];
	if (!o->quiet)
		fprintf(stderr,
			"%s: %ld read, %ld correct, %ld rejected, %ld already done, "
			"%ld duplicate%s, %ld bad line%s skipped\n",
			cli_prog, st->read, st->n[V_CORRECT], judged - st->n[V_CORRECT], st->skipped,
			st->duplicates, st->duplicates == 1 ? "" : "s", st->bad, st->bad == 1 ? "" : "s");
	if (o->summary) {
		fprintf(stderr, "%s: accuracy %.4f (%ld/%ld)\n", cli_prog,
			judged ? (double)st->n[V_CORRECT] / (double)judged : 0.0, st->n[V_CORRECT], judged);
		fprintf(stderr, "%s: correct %ld, incorrect %ld, unparsable %ld, error %ld\n", cli_prog,
			st->n[V_CORRECT], st->n[V_INCORRECT], st->n[V_UNPARSABLE], st->n[V_ERROR]);
		for (int m = 0; m < N_METHODS; m++) tally_line("method", &st->method[m]);
		for (int i = 0; i < st->n_source; i++) tally_line("source", &st->source[i]);
	}
}

int main(int argc, char **argv)
{
	cli_init("ds-judge");
	struct opts o = {.jobs = 1, .timeout_s = 4, .memory_mib = 1024};
	static const struct option longopts[] = {
		{"output", 1, 0, 'o'},   {"rejected", 1, 0, 'r'}, {"skip-bad", 0, 0, 'B'},
		{"summary", 0, 0, 'S'},  {"quiet", 0, 0, 'q'},    {"explain", 0, 0, 'E'},
		{"jobs", 1, 0, 'j'},     {"timeout", 1, 0, 'T'},  {"memory", 1, 0, 'M'},
		{"python", 1, 0, 'P'},   {"unsafe-no-sandbox", 0, 0, 'U'},
		CLI_LONGOPTS_COMMON,     {0, 0, 0, 0}};
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "o:r:j:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'E': o.explain = 1; break;
		case 'U': o.unsafe = 1; break;
		case 'P': o.python = optarg; break;
		case 'j':
			o.jobs = (int)strtol(optarg, &end, 10);
			if (*end || end == optarg || o.jobs < 1 || o.jobs > 64)
				cli_usage_error(usage, "-j: want a number from 1 to 64, not %s", optarg);
			break;
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

	idset *done = idset_new(), *seen = idset_new();
	struct stats st = {0};
	struct code_ctx cx = {0};
	for (int m = 0; m < N_METHODS; m++) st.method[m].name = xstrdup(method_name[m]);
	FILE *out = stdout, *rej = NULL;
	long n_out = 0, n_rej = 0;
	if (o.output) out = resume_open(o.output, done, resume_key_id_sample, &n_out);
	if (o.rejected) rej = resume_open(o.rejected, done, resume_key_id_sample, &n_rej);

	const char *stdin_only[] = {"-"};
	const char **inputs = optind < argc ? (const char **)argv + optind : stdin_only;
	int n_inputs = optind < argc ? argc - optind : 1;
	int status = 0;
	progress pg;
	for (int i = 0; i < n_inputs && status == 0; i++) {
		char *err = NULL;
		jsonl_reader *in = jsonl_reader_open(inputs[i], &err);
		if (!in) {
			cli_warn("%s", err);
			free(err);
			status = EXIT_RUNTIME;
			break;
		}
		progress_start(&pg, cli_prog, jsonl_reader_size(in));
		jv rec;
		int k;
		while ((k = jsonl_reader_next(in, &rec)) != 0) {
			if (k < 0) {
				jsonl_reader_report(in, "%s", jsonl_reader_error(in));
				if (!o.skip_bad || jsonl_reader_fatal(in)) {
					status = EXIT_RUNTIME;
					break;
				}
				st.bad++;
				continue;
			}
			st.read++;
			const char *malformed = NULL;
			jv judge = jv_invalid();
			int method = M_MATH;
			char *key = resume_key_id_sample(rec);
			/* a record done by an earlier run is not run again */
			if (key && idset_has(done, key, strlen(key))) {
				st.skipped++;
				free(key);
				jv_free(rec);
				progress_update(&pg, (uint64_t)st.read, jsonl_reader_bytes_in(in));
				continue;
			}
			free(key);
			enum verdict v = judge_record(rec, &judge, &malformed, &cx, &o, &method);
			if (malformed) {
				jsonl_reader_report(in, "%s", malformed);
				jv_free(rec);
				if (!o.skip_bad) {
					status = EXIT_RUNTIME;
					break;
				}
				st.bad++;
				continue;
			}
			key = resume_key_id_sample(rec);
			if (!idset_add(seen, key, strlen(key))) {
				st.duplicates++; /* repeated in the input */
				jv_free(judge);
			} else {
				st.n[v]++;
				st.method[method].n[v]++;
				source_tally(&st, jsonl_get_string(rec, "source"))->n[v]++;
				if (v != V_CORRECT && !rej && !o.quiet) {
					jv r = jv_object_get(jv_copy(judge), jv_string("reason"));
					jsonl_reader_report(in, "%s: %s: %s", jsonl_get_string(rec, "id"),
							    verdict_name[v], jv_string_value(r));
					jv_free(r);
				}
				FILE *f = v == V_CORRECT ? out : rej;
				const char *name = v == V_CORRECT ? (o.output ? o.output : "standard output") : o.rejected;
				jv j = jv_object_set(jv_copy(rec), jv_string("judge"), judge);
				if (f && jsonl_write(f, j)) cli_die(EXIT_RUNTIME, "%s: write error: %m", name);
				if (!f) jv_free(j);
			}
			free(key);
			jv_free(rec);
			progress_update(&pg, (uint64_t)st.read, jsonl_reader_bytes_in(in));
		}
		progress_finish(&pg);
		jsonl_reader_close(in);
	}
	if (status == 0 && st.read == 0 && st.bad == 0)
		cli_warn("no records in the input"), status = EXIT_RUNTIME;

	if (rej) resume_close(rej, o.rejected);
	if (o.output) resume_close(out, o.output);
	else cli_close_stdout();
	summary(&st, &o);
	for (int m = 0; m < N_METHODS; m++) free(st.method[m].name);
	for (int i = 0; i < st.n_source; i++) free(st.source[i].name);
	free(st.source);
	code_ctx_free(&cx);
	idset_free(seen);
	idset_free(done);
	return status;
}
