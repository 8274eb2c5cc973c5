/* ds-judge — keep only what the teacher got right.
 *
 * Reads records with a `teacher` object (DESIGN.md §1), adds `judge`
 * {verdict, method, predicted, reason}, and writes the correct ones to
 * stdout and the others to --rejected. Math is judged by rule
 * (lib/mathans.c, Math-Verify's rules); other domains have no judge yet,
 * and their records get verdict "error", never "correct".
 */
#include "../lib/cli.h"
#include "../lib/idset.h"
#include "../lib/jsonl.h"
#include "../lib/mathans.h"
#include "../lib/progress.h"
#include "../lib/resume.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-judge [-q] [--summary] [--skip-bad] [-o OUT] [-r REJECTED] [FILE...]\n";

static const char help[] =
	"Judge the teacher's answers (JSONL records with \"teacher\") against the\n"
	"reference answers; add \"judge\" to each record.\n"
	"\n"
	"  -o, --output OUT       write correct records to OUT instead of stdout; a\n"
	"                         rerun with the same OUT skips what it holds\n"
	"  -r, --rejected FILE    append the other records there (restartable too)\n"
	"      --summary          print accuracy and counts per verdict on stderr\n"
	"      --skip-bad         count and skip malformed lines instead of stopping\n"
	"  -q, --quiet            no per-record reports and no summary line\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"With no FILE, or when FILE is -, read standard input. Input may be\n"
	"zstd-compressed. Only domain \"math\" is judged yet. See ds-judge(1).\n";

struct opts {
	const char *output, *rejected;
	int skip_bad, quiet, summary;
};

/* ---- one record ------------------------------------------------------- */

enum verdict { V_CORRECT, V_INCORRECT, V_UNPARSABLE, V_ERROR, N_VERDICTS };
static const char *const verdict_name[] = {"correct", "incorrect", "unparsable", "error"};

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

/* Judge rec (borrowed): the judge object into *judge (owned), the verdict
 * returned; or a message in *malformed when rec breaks the contract. */
static enum verdict judge_record(jv rec, jv *judge, const char **malformed)
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
	jv predicted = jv_null(), reason;
	char *gold = NULL, *pred = NULL;
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
	*judge = jv_object_set(jv_object(), jv_string("verdict"), jv_string(verdict_name[v]));
	*judge = jv_object_set(*judge, jv_string("method"), jv_string("math"));
	*judge = jv_object_set(*judge, jv_string("predicted"), predicted);
	*judge = jv_object_set(*judge, jv_string("reason"), reason);
	free(gold);
	free(pred);
	jv_free(t);
	return v;
}

/* ---- the run ---------------------------------------------------------- */

struct stats {
	long read, skipped, duplicates, bad;
	long n[N_VERDICTS];
};

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
	}
}

int main(int argc, char **argv)
{
	cli_init("ds-judge");
	struct opts o = {0};
	static const struct option longopts[] = {
		{"output", 1, 0, 'o'},   {"rejected", 1, 0, 'r'}, {"skip-bad", 0, 0, 'B'},
		{"summary", 0, 0, 'S'},  {"quiet", 0, 0, 'q'},    CLI_LONGOPTS_COMMON,
		{0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "o:r:qhV", longopts, NULL)) != -1) {
		switch (c) {
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
			enum verdict v = judge_record(rec, &judge, &malformed);
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
			char *key = resume_key_id_sample(rec);
			if (idset_has(done, key, strlen(key))) {
				st.skipped++; /* written by an earlier run */
				jv_free(judge);
			} else if (!idset_add(seen, key, strlen(key))) {
				st.duplicates++; /* repeated in the input */
				jv_free(judge);
			} else {
				st.n[v]++;
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
	idset_free(seen);
	idset_free(done);
	return status;
}
