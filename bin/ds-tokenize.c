/* ds-tokenize — text to Qwen2 token ids and back, exactly as Hugging Face
 * `tokenizers` does it (lib/tokenizer.c).
 *
 *   encode: records with a `text` string get `ids`, the token ids;
 *   decode: records with `ids` get `text`.
 *
 * The token-shard subcommands of DESIGN.md §2 (shards, inspect, pack) are
 * issue #6's remaining work: they say so and exit 2.
 */
#include "../lib/cli.h"
#include "../lib/jsonl.h"
#include "../lib/progress.h"
#include "../lib/tokenizer.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-tokenize encode -t TOKENIZER [-q] [--skip-bad] [FILE...]\n"
	"       ds-tokenize decode -t TOKENIZER [-q] [--skip-bad] [--replace]\n"
	"                          [--skip-special] [FILE...]\n";

static const char help[] =
	"Tokenize JSONL records with a Qwen2 tokenizer.json, id for id as Hugging\n"
	"Face tokenizers (no special tokens added).\n"
	"\n"
	"  encode                 add \"ids\" (token ids) to records with a \"text\" string\n"
	"  decode                 add \"text\" to records with an \"ids\" list\n"
	"  -t, --tokenizer FILE   the tokenizer.json (may be zstd-compressed)\n"
	"      --replace          decode: replace invalid UTF-8 by U+FFFD, as Hugging\n"
	"                         Face's decode does, instead of rejecting the record\n"
	"      --skip-special     decode: leave out special tokens (<|im_end|>, ...)\n"
	"      --skip-bad         count and skip malformed lines instead of stopping\n"
	"  -q, --quiet            no summary on stderr\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"With no FILE, or when FILE is -, read standard input. Input may be\n"
	"zstd-compressed. The shard subcommands (shards, inspect, pack) are not\n"
	"built yet. See ds-tokenize(1).\n";

enum mode { MODE_ENCODE, MODE_DECODE };

struct opts {
	enum mode mode;
	const char *tokenizer;
	int skip_bad, quiet, decode_flags;
};

struct stats {
	long records, bad;
	uint64_t tokens;
};

/* ---- one record ------------------------------------------------------- */

/* Add "ids" to rec (consumed); returns the new record in *out, or the
 * reason it is malformed (then rec is freed). */
static const char *encode_record(const tokenizer *t, jv rec, tokenizer_ids *ids, jv *out,
				 struct stats *st)
{
	jv text = jv_object_get(jv_copy(rec), jv_string("text"));
	if (jv_get_kind(text) != JV_KIND_STRING) {
		jv_free(text);
		jv_free(rec);
		return "no \"text\" string";
	}
	tokenizer_ids_clear(ids);
	size_t bad;
	int k = tokenizer_encode(t, jv_string_value(text),
				 (size_t)jv_string_length_bytes(jv_copy(text)), ids, &bad);
	jv_free(text);
	if (k < 0) {
		jv_free(rec);
		return "\"text\" is not valid UTF-8";
	}
	jv a = jv_array_sized((int)ids->n);
	for (size_t i = 0; i < ids->n; i++) a = jv_array_append(a, jv_number(ids->ids[i]));
	st->tokens += ids->n;
	*out = jv_object_set(rec, jv_string("ids"), a);
	return NULL;
}

static const char *decode_record(const tokenizer *t, jv rec, int flags, tokenizer_ids *ids,
				 jv *out, struct stats *st, char *why, size_t why_n)
{
	jv a = jv_object_get(jv_copy(rec), jv_string("ids"));
	const char *err = NULL;
	if (jv_get_kind(a) != JV_KIND_ARRAY) {
		err = "no \"ids\" list";
		goto out;
	}
	tokenizer_ids_clear(ids);
	int n = jv_array_length(jv_copy(a));
	for (int i = 0; i < n && !err; i++) {
		jv v = jv_array_get(jv_copy(a), i);
		double d = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : -1;
		if (d < 0 || d >= 4294967295.0 || d != (double)(uint32_t)d) {
			snprintf(why, why_n, "ids[%d] is not a token id", i);
			err = why;
		} else {
			if (ids->n == ids->cap) {
				ids->cap = ids->cap ? ids->cap * 2 : 1024;
				ids->ids = realloc(ids->ids, ids->cap * sizeof *ids->ids);
				if (!ids->ids) cli_die(EXIT_RUNTIME, "out of memory");
			}
			ids->ids[ids->n++] = (uint32_t)d;
		}
		jv_free(v);
	}
	if (err) goto out;
	size_t len, bad;
	char *s = tokenizer_decode(t, ids->ids, ids->n, flags, &len, &bad);
	if (!s) {
		snprintf(why, why_n, "ids[%zu] = %u is not in the vocabulary", bad, ids->ids[bad]);
		err = why;
		goto out;
	}
	jv text = jv_string_sized(s, (int)len);
	/* libjq quietly replaces invalid UTF-8; a decode must not */
	if ((size_t)jv_string_length_bytes(jv_copy(text)) != len || memcmp(jv_string_value(text), s, len)) {
		snprintf(why, why_n, "the ids decode to invalid UTF-8 (--replace substitutes U+FFFD)");
		err = why;
		jv_free(text);
	} else {
		st->tokens += ids->n;
		*out = jv_object_set(jv_copy(rec), jv_string("text"), text);
	}
	free(s);
out:
	jv_free(a);
	jv_free(rec);
	return err;
}

/* ---- the run ---------------------------------------------------------- */

static int run(const struct opts *o, const tokenizer *t, const char **inputs, int n_inputs,
	       struct stats *st)
{
	tokenizer_ids ids = {0};
	int status = 0;
	progress pg;
	char why[160];
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
			const char *bad = NULL;
			jv out = jv_invalid();
			if (k < 0) bad = jsonl_reader_error(in);
			else if (o->mode == MODE_ENCODE) bad = encode_record(t, rec, &ids, &out, st);
			else bad = decode_record(t, rec, o->decode_flags, &ids, &out, st, why, sizeof why);
			if (bad) {
				jsonl_reader_report(in, "%s", bad);
				if (!o->skip_bad || (k < 0 && jsonl_reader_fatal(in))) {
					status = EXIT_RUNTIME;
					break;
				}
				st->bad++;
				continue;
			}
			st->records++;
			if (jsonl_write(stdout, out)) cli_die(EXIT_RUNTIME, "write error: %m");
			progress_update(&pg, (uint64_t)st->records, jsonl_reader_bytes_in(in));
		}
		progress_finish(&pg);
		jsonl_reader_close(in);
	}
	tokenizer_ids_free(&ids);
	return status;
}

int main(int argc, char **argv)
{
	cli_init("ds-tokenize");
	struct opts o = {0};
	static const struct option longopts[] = {
		{"tokenizer", 1, 0, 't'}, {"skip-bad", 0, 0, 'B'}, {"replace", 0, 0, 'R'},
		{"skip-special", 0, 0, 'S'}, {"quiet", 0, 0, 'q'}, CLI_LONGOPTS_COMMON,
		{0, 0, 0, 0}};

	if (argc < 2) cli_usage_error(usage, "no subcommand (encode or decode)");
	const char *sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
		fputs(usage, stdout);
		fputs(help, stdout);
		cli_close_stdout();
		return 0;
	}
	if (!strcmp(sub, "-V") || !strcmp(sub, "--version")) {
		cli_version();
		cli_close_stdout();
		return 0;
	}
	if (!strcmp(sub, "encode")) o.mode = MODE_ENCODE;
	else if (!strcmp(sub, "decode")) o.mode = MODE_DECODE;
	else if (!strcmp(sub, "shards") || !strcmp(sub, "inspect") || !strcmp(sub, "pack"))
		cli_placeholder(6, "\"ds-tokenize shards/inspect/pack\" (token shards)");
	else cli_usage_error(usage, "unknown subcommand '%s' (encode or decode)", sub);

	int c;
	argv[1] = argv[0];
	argc--, argv++;
	while ((c = getopt_long(argc, argv, "t:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 't': o.tokenizer = optarg; break;
		case 'B': o.skip_bad = 1; break;
		case 'R': o.decode_flags |= TOKENIZER_DECODE_REPLACE; break;
		case 'S': o.decode_flags |= TOKENIZER_DECODE_SKIP_SPECIAL; break;
		case 'q': o.quiet = 1; break;
		case 'h': fputs(usage, stdout); fputs(help, stdout); cli_close_stdout(); return 0;
		case 'V': cli_version(); cli_close_stdout(); return 0;
		default: cli_usage_error(usage, "bad option");
		}
	}
	if (!o.tokenizer) cli_usage_error(usage, "-t TOKENIZER is required");
	if (o.mode == MODE_ENCODE && o.decode_flags)
		cli_usage_error(usage, "--replace and --skip-special are for decode");

	char *err = NULL;
	tokenizer *t = tokenizer_load(o.tokenizer, &err);
	if (!t) {
		cli_warn("%s", err);
		free(err);
		return EXIT_RUNTIME;
	}
	const char *stdin_only[] = {"-"};
	const char **inputs = optind < argc ? (const char **)argv + optind : stdin_only;
	int n_inputs = optind < argc ? argc - optind : 1;
	struct stats st = {0};
	int status = run(&o, t, inputs, n_inputs, &st);
	tokenizer_free(t);
	if (status == 0 && st.records == 0 && st.bad == 0) {
		cli_warn("no records in the input");
		status = EXIT_RUNTIME;
	}
	if (!o.quiet)
		fprintf(stderr, "%s: %ld records, %llu tokens, %ld bad line%s skipped\n", cli_prog,
			st.records, (unsigned long long)st.tokens, st.bad, st.bad == 1 ? "" : "s");
	cli_close_stdout();
	return status;
}
