/* ds-sharegpt — judged records to LLaMA-Factory training data.
 *
 * Reads records that carry a `teacher` object (DESIGN.md §1) and writes one
 * training conversation per record: the problem as the user turn, and
 * "<think>\n{reasoning}\n</think>\n\n{content}" as the assistant turn, the
 * layout DeepSeek-R1 and its distilled students produce. Records that would
 * teach the wrong thing (empty reasoning, a truncated or wrongly judged
 * answer) are rejected with a reason, never silently kept or dropped.
 */
#include "../lib/cli.h"
#include "../lib/idset.h"
#include "../lib/jsonl.h"
#include "../lib/progress.h"
#include "../lib/resume.h"

#include <getopt.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-sharegpt [-q] [--skip-bad] [-f FORMAT] [-s TEXT | --system-file FILE]\n"
	"                   [-o OUT] [-r REJECTED] [FILE...]\n"
	"       ds-sharegpt --dataset-info NAME [-f FORMAT] [--file-name FILE]\n";

static const char help[] =
	"Convert judged records (JSONL) into LLaMA-Factory training data.\n"
	"\n"
	"  -f, --format FORMAT    sharegpt (default), messages or alpaca\n"
	"  -s, --system TEXT      system prompt of every conversation (default: none,\n"
	"                         which lets the chat template use its own)\n"
	"      --system-file FILE read the system prompt from FILE\n"
	"  -o, --output OUT       write to OUT instead of stdout; a rerun with the same\n"
	"                         OUT skips what OUT already holds (restartable)\n"
	"  -r, --rejected FILE    append unusable records there, each with\n"
	"                         sharegpt.rejected = the reason (restartable too)\n"
	"      --skip-bad         count and skip malformed lines instead of stopping\n"
	"      --dataset-info NAME  print the dataset_info.json entry for NAME and exit\n"
	"      --file-name FILE   file_name in that entry (default: OUT's name, or\n"
	"                         NAME.jsonl)\n"
	"  -q, --quiet            no summary on stderr\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"With no FILE, or when FILE is -, read standard input. Input may be\n"
	"zstd-compressed. See ds-sharegpt(1).\n";

enum format { FMT_SHAREGPT, FMT_MESSAGES, FMT_ALPACA };

struct opts {
	enum format format;
	char *system;        /* owned */
	const char *output, *rejected, *dataset_info, *file_name;
	int skip_bad, quiet;
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
					   "\"user_tag\":\"user\",\"assistant_tag\":\"assistant\"}"));
		break;
	case FMT_MESSAGES:
		e = jv_object_set(e, jv_string("formatting"), jv_string("sharegpt"));
		e = jv_object_set(e, jv_string("columns"), jv_parse("{\"messages\":\"messages\"}"));
		e = jv_object_set(e, jv_string("tags"),
				  jv_parse("{\"role_tag\":\"role\",\"content_tag\":\"content\","
					   "\"user_tag\":\"user\",\"assistant_tag\":\"assistant\","
					   "\"system_tag\":\"system\"}"));
		break;
	case FMT_ALPACA:
		e = jv_object_set(e, jv_string("formatting"), jv_string("alpaca"));
		e = jv_object_set(e, jv_string("columns"),
				  jv_parse("{\"prompt\":\"instruction\",\"query\":\"input\","
					   "\"response\":\"output\",\"system\":\"system\"}"));
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

/* Check rec (borrowed) and, when usable, build the output record into *out
 * (owned). */
static struct verdict convert(jv rec, const struct opts *o, jv *out)
{
	struct verdict v = {0, 0};
	int bad = 0;
	const char *id = jsonl_get_string(rec, "id");
	if (!id || !*id) return (struct verdict){"no \"id\" string", 0};
	if (!jsonl_get_string(rec, "problem"))
		return (struct verdict){"no \"problem\" string", 0};
	jv t = jv_object_get(jv_copy(rec), jv_string("teacher"));
	if (jv_get_kind(t) != JV_KIND_OBJECT) {
		jv_free(t);
		return (struct verdict){"no \"teacher\" object (run ds-teacher first)", 0};
	}
	const char *reasoning = opt_string(t, "reasoning", &bad);
	const char *content = opt_string(t, "content", &bad);
	const char *finish = opt_string(t, "finish_reason", &bad);
	jv sample = jv_object_get(jv_copy(t), jv_string("sample"));
	jv judge = jv_object_get(jv_copy(rec), jv_string("judge"));
	const char *verdict = "correct";
	if (jv_get_kind(judge) == JV_KIND_OBJECT) verdict = opt_string(judge, "verdict", &bad);
	else if (jv_get_kind(judge) != JV_KIND_NULL && jv_get_kind(judge) != JV_KIND_INVALID)
		bad = 1;

	struct span r = trim(reasoning), c = trim(content);
	struct span ps = trim(jsonl_get_string(rec, "problem"));
	if (bad)
		v.malformed = "teacher.reasoning/content/finish_reason or judge.verdict "
			      "is not a string";
	else if (jv_get_kind(sample) != JV_KIND_NUMBER && jv_get_kind(sample) != JV_KIND_INVALID &&
		 jv_get_kind(sample) != JV_KIND_NULL)
		v.malformed = "teacher.sample is not a number";
	else if (strcmp(verdict, "correct") != 0)
		v.rejected = "judge verdict is not \"correct\"";
	else if (strcmp(finish, "length") == 0)
		v.rejected = "teacher output cut off (finish_reason \"length\")";
	else if (ps.n == 0)
		v.rejected = "empty problem";
	else if (r.n == 0)
		v.rejected = "empty reasoning";
	else if (c.n == 0)
		v.rejected = "empty content";
	else if (span_has(r, "<think>") || span_has(r, "</think>") || span_has(c, "</think>"))
		v.rejected = "a <think> tag inside reasoning or content";

	if (!v.malformed && !v.rejected) {
		jv answer = think_answer(r, c);
		jv p = jv_string_sized(ps.p, (int)ps.n);
		jv sys = jv_string(o->system ? o->system : "");
		jv o_rec = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
		o_rec = jv_object_set(o_rec, jv_string("sample"),
				      jv_get_kind(sample) == JV_KIND_NUMBER ? jv_copy(sample)
									    : jv_number(0));
		switch (o->format) {
		case FMT_SHAREGPT: {
			jv conv = jv_array();
			conv = jv_array_append(conv, jv_object_set(jv_object_set(jv_object(), jv_string("from"), jv_string("user")),
								   jv_string("value"), jv_copy(p)));
			conv = jv_array_append(conv, jv_object_set(jv_object_set(jv_object(), jv_string("from"), jv_string("assistant")),
								   jv_string("value"), answer));
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
			msgs = jv_array_append(msgs, jv_object_set(jv_object_set(jv_object(), jv_string("role"), jv_string("assistant")),
								   jv_string("content"), answer));
			o_rec = jv_object_set(o_rec, jv_string("messages"), msgs);
			break;
		}
		case FMT_ALPACA:
			o_rec = jv_object_set(o_rec, jv_string("system"), sys);
			o_rec = jv_object_set(o_rec, jv_string("instruction"), jv_copy(p));
			o_rec = jv_object_set(o_rec, jv_string("input"), jv_string(""));
			o_rec = jv_object_set(o_rec, jv_string("output"), answer);
			break;
		}
		*out = o_rec;
		jv_free(p);
	}
	jv_free(sample);
	jv_free(judge);
	jv_free(t);
	return v;
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

static void summary(const struct stats *st)
{
	fprintf(stderr, "%s: %ld read, %ld written, %ld rejected", cli_prog, st->read,
		st->written, st->rejected);
	for (int i = 0; i < MAX_REASONS && st->reason[i]; i++)
		fprintf(stderr, "%s%ld %s", i ? ", " : " (", st->reason_n[i], st->reason[i]);
	if (st->reason[0]) fputc(')', stderr);
	fprintf(stderr, ", %ld already done, %ld duplicate%s, %ld bad line%s skipped\n",
		st->skipped, st->duplicates, st->duplicates == 1 ? "" : "s", st->bad,
		st->bad == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
	cli_init("ds-sharegpt");
	struct opts o = {0};
	static const struct option longopts[] = {
		{"format", 1, 0, 'f'},        {"system", 1, 0, 's'},
		{"system-file", 1, 0, 'S'},   {"output", 1, 0, 'o'},
		{"rejected", 1, 0, 'r'},      {"skip-bad", 0, 0, 'B'},
		{"dataset-info", 1, 0, 'D'},  {"file-name", 1, 0, 'F'},
		{"quiet", 0, 0, 'q'},         CLI_LONGOPTS_COMMON,
		{0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "f:s:o:r:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (!strcmp(optarg, "sharegpt")) o.format = FMT_SHAREGPT;
			else if (!strcmp(optarg, "messages")) o.format = FMT_MESSAGES;
			else if (!strcmp(optarg, "alpaca")) o.format = FMT_ALPACA;
			else cli_usage_error(usage, "unknown format '%s' (sharegpt, messages or alpaca)", optarg);
			break;
		case 's': free(o.system); o.system = strdup(optarg); break;
		case 'S': free(o.system); o.system = read_text_file(optarg); break;
		case 'o': o.output = optarg; break;
		case 'r': o.rejected = optarg; break;
		case 'B': o.skip_bad = 1; break;
		case 'D': o.dataset_info = optarg; break;
		case 'F': o.file_name = optarg; break;
		case 'q': o.quiet = 1; break;
		case 'h': fputs(usage, stdout); fputs(help, stdout); cli_close_stdout(); return 0;
		case 'V': cli_version(); cli_close_stdout(); return 0;
		default: cli_usage_error(usage, "bad option");
		}
	}

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
			char *key = resume_key_id_sample(rec);
			jv conv = jv_invalid();
			struct verdict v = convert(rec, &o, &conv);
			if (v.malformed) {
				jsonl_reader_report(in, "%s", v.malformed);
				free(key);
				jv_free(rec);
				if (!o.skip_bad) {
					status = EXIT_RUNTIME;
					break;
				}
				st.bad++;
				continue;
			}
			if (idset_has(done, key, strlen(key))) {
				st.skipped++; /* written by an earlier run */
			} else if (idset_has(seen, key, strlen(key))) {
				st.duplicates++; /* repeated in the input */
			} else if (v.rejected) {
				st.rejected++;
				count_reason(&st, v.rejected);
				idset_add(seen, key, strlen(key));
				if (rej) {
					jv why = jv_object_set(jv_object(), jv_string("rejected"),
							       jv_string(v.rejected));
					if (jsonl_write(rej, jv_object_set(jv_copy(rec), jv_string("sharegpt"), why)))
						cli_die(EXIT_RUNTIME, "%s: write error: %m", o.rejected);
				} else if (!o.quiet) {
					jsonl_reader_report(in, "%s: rejected: %s", jsonl_get_string(rec, "id"),
							    v.rejected);
				}
			} else {
				idset_add(seen, key, strlen(key));
				if (jsonl_write(out, conv))
					cli_die(EXIT_RUNTIME, "%s: write error: %m",
						o.output ? o.output : "standard output");
				conv = jv_invalid();
				st.written++;
			}
			jv_free(conv);
			jv_free(rec);
			free(key);
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
	if (!o.quiet) summary(&st);
	idset_free(seen);
	idset_free(done);
	free(o.system);
	return status;
}
