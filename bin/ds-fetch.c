/* ds-fetch — datasets (Hugging Face dataset viewer, the repo's own files,
 * local files) to problem records (DESIGN.md §1).
 *
 * Every row goes through a preset: a jq program kept under share/presets/
 * (or given with --map) that maps the dataset's columns to a record. The
 * rows taken are decided before anything is fetched (offset, shuffle,
 * limit, shard), so ids are known up front and a restart with -o fetches
 * only what is missing.
 */
#include "../lib/check.h"
#include "../lib/download.h"
#include "../lib/cli.h"
#include "../lib/clock.h"
#include "../lib/http.h"
#include "../lib/idset.h"
#include "../lib/jqprog.h"
#include "../lib/json.h"
#include "../lib/jsonl.h"
#include "../lib/progress.h"
#include "../lib/resume.h"
#include "../lib/rng.h"
#include "../lib/safepath.h"
#include "../lib/zstdio.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-fetch [-q] [--skip-bad] [--config C] [--split S] [--offset N] [--limit N]\n"
	"                [--shuffle] [--seed N] [--shard I/N] [--preset NAME | --map JQ]\n"
	"                [-P KEY=VALUE]... [--from-files] [-o OUT] DATASET|FILE|-\n"
	"       ds-fetch model [-q] [--source hf|modelscope] [--revision R] [--include GLOB]...\n"
	"                [--exclude GLOB]... [-j N] -o DIR REPO\n";

static const char help[] =
	"Fetch a dataset's rows and map them to problem records (JSONL).\n"
	"\n"
	"  DATASET               a Hugging Face dataset id (OWNER/NAME), read through\n"
	"                        the dataset viewer API, or with --from-files from the\n"
	"                        repo's own JSON/JSONL files\n"
	"  FILE, -               a local .jsonl, .json or .jsonl.zst file, or stdin\n"
	"      --config C        dataset config (default: the one holding the split)\n"
	"      --split S         split (default: train)\n"
	"      --offset N        skip the first N rows\n"
	"      --limit N         take at most N rows\n"
	"      --shuffle         take rows in a random order (seeded: --seed N, default 0)\n"
	"      --shard I/N       keep only every N-th row taken, starting at the I-th\n"
	"      --preset NAME     map rows with share/presets/NAME.jq (default: the\n"
	"                        dataset's own preset, else 'generic')\n"
	"      --map JQ          map rows with a jq program: a file, or the program text\n"
	"  -P, --param KEY=VALUE a preset parameter, seen as $params.KEY\n"
	"      --from-files      read the repo's JSON/JSONL files, not the viewer API\n"
	"  -o, --output OUT      append to OUT; a rerun fetches only what is missing\n"
	"      --skip-bad        count and skip rows that fail instead of stopping\n"
	"  -q, --quiet           no summary on stderr\n"
	"      --timeout S       retry a request that gets no data for S seconds (default 60)\n"
	"\n"
	"  model REPO -o DIR     download a model repo's files into DIR (resumed,\n"
	"                        verified against the hub's hashes)\n"
	"      --source S        hf (default: the hub, or HF_ENDPOINT's mirror) or modelscope\n"
	"      --revision R      branch, tag or commit (default: main; master on ModelScope)\n"
	"      --include GLOB    only files matching GLOB (repeatable; '*' crosses '/',\n"
	"                        'DIR/' means everything under DIR)\n"
	"      --exclude GLOB    not the files matching GLOB (repeatable)\n"
	"  -j, --jobs N          files downloaded at once (default 4)\n"
	"  -h, --help            show this help and exit\n"
	"  -V, --version         show the version and exit\n"
	"\n"
	"Environment: HF_ENDPOINT (hub or mirror), DS_VIEWER_ENDPOINT (dataset\n"
	"viewer), HF_TOKEN or HUGGING_FACE_HUB_TOKEN, else the token file of\n"
	"`hf auth login` (gated repos; never printed). See ds-fetch(1).\n";

struct opts {
	const char *config, *split, *preset, *map, *output, *source;
	long long offset, limit;
	int shuffle, from_files, skip_bad, quiet;
	unsigned long long seed;
	long shard_i, shard_n;
	jv params;
	const char *hub, *viewer;
	char *token; /* owned */
	const char *revision;
	int modelscope;          /* --source modelscope */
	const char *ms;          /* ModelScope endpoint */
	const char **include, **exclude; /* owned arrays of borrowed strings */
	int n_include, n_exclude, jobs;
	double pace_max_s; /* longest wait for the rate limit (DS_PACE_MAX_S, default 300) */
};

/* ---- the preset ------------------------------------------------------- */

static char *preset_text(const char *name)
{
	size_t n = strlen(name) + 16;
	char *rel = xmalloc(n);
	snprintf(rel, n, "presets/%s.jq", name);
	char *path = cli_share_path(rel);
	free(rel);
	char *text = path ? cli_read_file(path) : NULL;
	free(path);
	return text;
}

/* The whole program: the shared definitions, then the preset run on .row
 * with $row_idx bound (the preset's own defs stay local to it). */
static jqprog *preset_compile(const struct opts *o, const char *dataset, const char *config,
			      const char *split)
{
	char *body = NULL;
	const char *what;
	if (o->map) {
		struct stat st;
		body = stat(o->map, &st) == 0 && S_ISREG(st.st_mode) ? cli_read_file(o->map) : xstrdup(o->map);
		what = o->map;
	} else if (o->preset) {
		body = preset_text(o->preset);
		if (!body) cli_die(EXIT_USAGE, "no preset named '%s' (see share/presets/)", o->preset);
		what = o->preset;
	} else {
		body = preset_text(dataset);
		what = body ? dataset : "generic";
		if (!body) body = preset_text("generic");
		if (!body) cli_die(EXIT_RUNTIME, "share/presets/generic.jq not found (set DS_SHARE)");
	}
	char *lib = preset_text("lib");
	if (!lib) cli_die(EXIT_RUNTIME, "share/presets/lib.jq not found (set DS_SHARE)");
	size_t n = strlen(lib) + strlen(body) + 64;
	char *prog = xmalloc(n);
	snprintf(prog, n, "%s\n.row_idx as $row_idx | .row | (\n%s\n)", lib, body);
	jv args = jv_object();
	args = jv_object_set(args, jv_string("dataset"), jv_string(dataset));
	args = jv_object_set(args, jv_string("config"), jv_string(config ? config : ""));
	args = jv_object_set(args, jv_string("split"), jv_string(split ? split : ""));
	args = jv_object_set(args, jv_string("params"), jv_copy(o->params));
	char *err = NULL;
	jqprog *p = jqprog_new(prog, args, &err);
	if (!p) cli_die(EXIT_USAGE, "preset %s: %s", what, err);
	free(prog);
	free(lib);
	free(body);
	return p;
}

/* ---- records ----------------------------------------------------------- */

struct run {
	const struct opts *o;
	jqprog *prog;
	const char *source;  /* the record's source: dataset id or file name */
	const char *id_base; /* ids are ID_BASE/ROW_IDX */
	FILE *out;
	idset *done;
	long long rows, written, filtered, bad, skipped;
	progress pg;
};

static char *row_id(const struct run *r, long long idx)
{
	size_t n = strlen(r->id_base) + 32;
	char *id = xmalloc(n);
	snprintf(id, n, "%s/%lld", r->id_base, idx);
	return id;
}

/* The resume key for an id: as resume_key_id_sample makes it (sample 0). */
static int is_done(const struct run *r, const char *id)
{
	size_t n = strlen(id) + 4;
	char *k = xmalloc(n);
	snprintf(k, n, "%s\x1f" "0", id);
	int d = idset_has(r->done, k, strlen(k));
	free(k);
	return d;
}

/* Report a row that cannot become a record; exits unless --skip-bad. */
static void bad_row(struct run *r, long long idx, const char *fmt, const char *why)
{
	fprintf(stderr, "%s:%s:%lld: ", cli_prog, r->source, idx);
	fprintf(stderr, fmt, why);
	fputc('\n', stderr);
	if (!r->o->skip_bad) cli_exit(EXIT_RUNTIME);
	r->bad++;
}

/* Map one raw row (consumed) and write the record. */
static void emit(struct run *r, long long idx, jv row)
{
	r->rows++;
	jv in = jv_object_set(jv_object(), jv_string("row_idx"), jv_number((double)idx));
	in = jv_object_set(in, jv_string("row"), row);
	jv outs = jqprog_run(r->prog, in);
	if (!jv_is_valid(outs)) {
		jv msg = jv_invalid_get_msg(outs);
		bad_row(r, idx, "preset failed: %s", jv_string_value(msg));
		jv_free(msg);
		return;
	}
	int n = jv_array_length(jv_copy(outs));
	if (n == 0) {
		r->filtered++;
		jv_free(outs);
		return;
	}
	jv rec = jv_array_get(outs, 0);
	if (n > 1) {
		jv_free(rec);
		bad_row(r, idx, "%s", "preset gave more than one record for the row");
		return;
	}
	jv problem = jv_get_kind(rec) == JV_KIND_OBJECT ? jv_object_get(jv_copy(rec), jv_string("problem"))
							 : jv_invalid();
	int ok = jv_get_kind(problem) == JV_KIND_STRING;
	jv_free(problem);
	if (!ok) {
		jv_free(rec);
		bad_row(r, idx, "%s", "preset output is not an object with a \"problem\" string");
		return;
	}
	/* id and source first, then the preset's fields in its order. */
	char *id = row_id(r, idx);
	jv o = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
	jv src = jv_object_get(jv_copy(rec), jv_string("source"));
	o = jv_object_set(o, jv_string("source"),
			  jv_get_kind(src) == JV_KIND_STRING ? src : (jv_free(src), jv_string(r->source)));
	/* Optional fields the preset left null are left out (DESIGN.md §1). */
	jv_object_foreach(rec, k, v) {
		if (strcmp(jv_string_value(k), "id") && strcmp(jv_string_value(k), "source") &&
		    jv_get_kind(v) != JV_KIND_NULL)
			o = jv_object_set(o, k, v);
		else {
			jv_free(k);
			jv_free(v);
		}
	}
	jv_free(rec);
	if (!jv_object_has(jv_copy(o), jv_string("meta")))
		o = jv_object_set(o, jv_string("meta"), jv_object());
	if (jsonl_write(r->out, o))
		cli_die(EXIT_RUNTIME, "%s: write error: %m", r->o->output ? r->o->output : "standard output");
	/* Flush per record: a kill loses at most the record being written. */
	fflush(r->out);
	r->written++;
	free(id);
	progress_update(&r->pg, (uint64_t)r->written, (uint64_t)r->rows);
}

/* ---- which rows ------------------------------------------------------- */

/* The row indices to emit, in order: [offset, total) shuffled or not, the
 * first --limit of them, then every shard_n-th from shard_i; minus those
 * already in the output. Returns owned; *n gets the count. */
static long long *plan_rows(struct run *r, long long total, long long *n)
{
	const struct opts *o = r->o;
	long long first = o->offset < total ? o->offset : total;
	long long m = total - first;
	long long *idx = xmalloc(sizeof *idx * (size_t)(m ? m : 1));
	for (long long k = 0; k < m; k++) idx[k] = first + k;
	if (o->shuffle) { /* Fisher-Yates */
		uint64_t s = o->seed;
		for (long long k = m - 1; k > 0; k--) {
			long long j = (long long)(splitmix64(&s) % (uint64_t)(k + 1));
			long long t = idx[k];
			idx[k] = idx[j];
			idx[j] = t;
		}
	}
	if (o->limit >= 0 && o->limit < m) m = o->limit;
	long long w = 0;
	for (long long k = 0; k < m; k++) {
		if (k % o->shard_n != o->shard_i) continue;
		char *id = row_id(r, idx[k]);
		if (is_done(r, id)) r->skipped++;
		else idx[w++] = idx[k];
		free(id);
	}
	*n = w;
	return idx;
}

/* ---- local files -------------------------------------------------------- */

/* All rows of a local file: JSON Lines (plain or zstd), or one JSON array. */
static jv read_rows(const char *path)
{
	char *err = NULL;
	size_t plen = strlen(path);
	int is_json = plen > 5 && strcmp(path + plen - 5, ".json") == 0;
	if (is_json) {
		size_t n;
		char *buf = zreader_slurp(path, &n, &err);
		if (!buf) cli_die(EXIT_RUNTIME, "%s", err);
		size_t at;
		const char *why;
		jv v = json_parse(buf, n, &at, &why);
		free(buf);
		if (!jv_is_valid(v))
			cli_die(EXIT_RUNTIME, "%s: malformed JSON at byte %zu: %s", path, at + 1, why);
		if (jv_get_kind(v) != JV_KIND_ARRAY)
			cli_die(EXIT_RUNTIME, "%s: a .json file must hold an array of rows", path);
		return v;
	}
	jsonl_reader *in = jsonl_reader_open(path, &err);
	if (!in) cli_die(EXIT_RUNTIME, "%s", err);
	jv rows = jv_array(), row;
	int k;
	while ((k = jsonl_reader_next(in, &row)) != 0) {
		if (k < 0) {
			/* A row we cannot read has no index we can trust to skip. */
			jsonl_reader_report(in, "%s", jsonl_reader_error(in));
			cli_exit(EXIT_RUNTIME);
		}
		rows = jv_array_append(rows, row);
	}
	jsonl_reader_close(in);
	return rows;
}

static void emit_from_array(struct run *r, jv rows)
{
	long long n;
	long long *idx = plan_rows(r, jv_array_length(jv_copy(rows)), &n);
	for (long long k = 0; k < n; k++) emit(r, idx[k], jv_array_get(jv_copy(rows), (int)idx[k]));
	free(idx);
	jv_free(rows);
}

/* ---- the hub: viewer API and the repo's files ------------------------- */

static void die_http(const char *what, const http_reply *rep, const char *err)
{
	if (rep->status == 0) cli_die(EXIT_RUNTIME, "%s: %s", what, err);
	const char *hint = rep->status == 401 || rep->status == 403
				   ? " (gated or private? set HF_TOKEN)"
				   : rep->status == 404 ? " (no such dataset, config or split)" : "";
	size_t at;
	const char *why;
	jv body = json_parse(rep->body ? rep->body : "", rep->len, &at, &why);
	jv msg = jv_get_kind(body) == JV_KIND_OBJECT ? jv_object_get(jv_copy(body), jv_string("error"))
						     : jv_invalid();
	cli_die(EXIT_RUNTIME, "%s: HTTP %ld%s%s%s", what, rep->status, hint,
		jv_get_kind(msg) == JV_KIND_STRING ? ": " : "",
		jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "");
}

static char *escape_path(const char *path);
static char *listed_path(const char *repo, jv entry, const char *key);

/* GET url and parse its JSON body; 2xx or exit with the server's message. */
static jv get_json(const struct opts *o, const char *url, const char *what)
{
	http_opts ho = {.bearer = o->token, .follow = 1};
	http_retry pol = http_retry_default();
	http_reply rep;
	char err[256];
	if (http_get_retry(url, &ho, &pol, &rep, err, sizeof err, NULL) != 0 || rep.status / 100 != 2)
		die_http(what, &rep, err);
	size_t at;
	const char *why;
	jv v = json_parse_exact(rep.body, rep.len, &at, &why); /* sizes and counts exact */
	if (!jv_is_valid(v)) cli_die(EXIT_RUNTIME, "%s: reply is not JSON (byte %zu: %s)", what, at + 1, why);
	http_reply_free(&rep);
	return v;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = NULL;
	if (vasprintf(&s, f, ap) < 0) cli_die(EXIT_RUNTIME, "out of memory");
	va_end(ap);
	return s;
}

/* Choose the config holding the split when none was given (/splits). */
static char *pick_config(const struct opts *o, const char *dataset, const char *split)
{
	char *q = http_escape(dataset);
	char *url = fmt("%s/splits?dataset=%s", o->viewer, q);
	jv v = get_json(o, url, dataset);
	jv splits = jv_object_get(v, jv_string("splits"));
	char *config = NULL, *any = NULL;
	int n = jv_get_kind(splits) == JV_KIND_ARRAY ? jv_array_length(jv_copy(splits)) : 0;
	for (int i = 0; i < n && !config; i++) {
		jv s = jv_array_get(jv_copy(splits), i);
		const char *c = jsonl_get_string(s, "config"), *sp = jsonl_get_string(s, "split");
		if (c && sp && strcmp(sp, split) == 0) {
			if (strcmp(c, "default") == 0 || !any) {
				free(any);
				any = xstrdup(c);
			}
			if (strcmp(c, "default") == 0) config = xstrdup(c);
		}
		jv_free(s);
	}
	jv_free(splits);
	free(url);
	free(q);
	if (!config) config = any;
	else free(any);
	if (!config) cli_die(EXIT_RUNTIME, "%s: no config has a split '%s' (see /splits)", dataset, split);
	return config;
}

struct viewer {
	const struct opts *o;
	char *base; /* .../rows?dataset=..&config=..&split=.. */
	long long total;
	long long pages_left;   /* requests still to make, as planned */
	long long rl_remaining; /* the hub's RateLimit: requests left in the window, */
	double rl_reset, rl_at; /* seconds to its reset, read at rl_at; -1: none */
};

/* Before a request, keep within the quota the hub announces (RateLimit,
 * e.g. "api";r=2999;t=172 beside RateLimit-Policy q=3000;w=300) instead
 * of running into 429s: with more pages to go than requests left in the
 * window, spread those over the time to its reset; with none left, wait
 * for the reset. A fetch within its quota is not slowed at all. */
static void viewer_pace(struct viewer *vw)
{
	if (vw->rl_remaining < 0 || vw->rl_reset < 0) return;
	double since = now_s() - vw->rl_at, wait = 0;
	if (vw->rl_remaining == 0) wait = vw->rl_reset - since;
	else if (vw->pages_left > vw->rl_remaining) wait = vw->rl_reset / (double)vw->rl_remaining - since;
	if (wait <= 0) return;
	if (wait > vw->o->pace_max_s) wait = vw->o->pace_max_s;
	if (wait >= 1 && !vw->o->quiet)
		fprintf(stderr, "%s: %s: %lld requests left for %.0fs by the hub's rate limit; next page in %.1fs\n",
			cli_prog, vw->o->source, vw->rl_remaining, vw->rl_reset, wait);
	sleep_s(wait);
}

/* One /rows page: offset, length. Returns the rows array (owned) or, when
 * the page cannot be served whole (an error after retries, a truncated
 * cell), jv_invalid with a message. 4xx other than 429 end the run. */
static jv viewer_page(struct viewer *vw, long long offset, long long length)
{
	char *url = fmt("%s&offset=%lld&length=%lld", vw->base, offset, length);
	/* The viewer says a page is too big to serve with X-Error-Code
	 * TooBigContentError (a 500): retrying the same page cannot help, so
	 * the caller shrinks it at once. Anything else gets the usual retries. */
	http_opts ho = {.bearer = vw->o->token, .follow = 1, .final_error_code = "TooBigContentError"};
	http_retry pol = http_retry_default();
	http_reply rep;
	char err[256];
	viewer_pace(vw);
	int rc = http_get_retry(url, &ho, &pol, &rep, err, sizeof err, NULL);
	if (rc == 0 && rep.rl_remaining >= 0 && rep.rl_reset >= 0) {
		vw->rl_remaining = rep.rl_remaining;
		vw->rl_reset = rep.rl_reset;
		vw->rl_at = now_s();
	}
	jv result;
	if (rc == 0 && rep.status / 100 == 4 && rep.status != 429) die_http(vw->o->source, &rep, err);
	if (rc != 0 || rep.status / 100 != 2) {
		result = jv_invalid_with_msg(rc ? jv_string(err) : jv_string_fmt("HTTP %ld", rep.status));
		goto out;
	}
	size_t at;
	const char *why;
	jv v = json_parse(rep.body, rep.len, &at, &why);
	jv rows = jv_get_kind(v) == JV_KIND_OBJECT ? jv_object_get(jv_copy(v), jv_string("rows")) : jv_invalid();
	if (jv_get_kind(rows) != JV_KIND_ARRAY) {
		jv_free(rows);
		jv_free(v);
		result = jv_invalid_with_msg(jv_string("reply has no rows array"));
		goto out;
	}
	jv total = jv_object_get(v, jv_string("num_rows_total"));
	if (json_count(total) >= 0) vw->total = json_count(total);
	jv_free(total);
	result = rows;
	int n = jv_array_length(jv_copy(rows));
	for (int i = 0; i < n; i++) {
		jv item = jv_array_get(jv_copy(rows), i);
		jv tc = jv_object_get(jv_copy(item), jv_string("truncated_cells"));
		jv idx = jv_object_get(item, jv_string("row_idx"));
		int cut = jv_get_kind(tc) == JV_KIND_ARRAY && jv_array_length(jv_copy(tc)) > 0;
		int misplaced = json_count(idx) != offset + i;
		jv_free(tc);
		jv_free(idx);
		if (cut || misplaced) {
			jv_free(result);
			result = jv_invalid_with_msg(jv_string(cut ? "the server truncated a cell"
								    : "rows out of order"));
			break;
		}
	}
out:
	http_reply_free(&rep);
	free(url);
	return result;
}

/* The number of rows of a split, from /size. */
static long long viewer_size(const struct opts *o, const char *dataset, const char *config,
			     const char *split)
{
	char *q = http_escape(dataset);
	char *url = fmt("%s/size?dataset=%s", o->viewer, q);
	jv v = get_json(o, url, dataset);
	jv size = jv_get_kind(v) == JV_KIND_OBJECT ? jv_object_get(v, jv_string("size")) : (jv_free(v), jv_null());
	jv splits = jv_get_kind(size) == JV_KIND_OBJECT ? jv_object_get(size, jv_string("splits")) : (jv_free(size), jv_null());
	long long total = -1;
	int n = jv_get_kind(splits) == JV_KIND_ARRAY ? jv_array_length(jv_copy(splits)) : 0;
	for (int i = 0; i < n && total < 0; i++) {
		jv s = jv_array_get(jv_copy(splits), i);
		const char *c = jsonl_get_string(s, "config"), *sp = jsonl_get_string(s, "split");
		jv rows = jv_object_get(jv_copy(s), jv_string("num_rows"));
		if (c && sp && !strcmp(c, config) && !strcmp(sp, split)) total = json_count_exact(rows);
		jv_free(rows);
		jv_free(s);
	}
	jv_free(splits);
	free(url);
	free(q);
	if (total < 0) cli_die(EXIT_RUNTIME, "%s: the viewer does not say how many rows %s/%s has",
			       dataset, config, split);
	return total;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static void emit_from_viewer(struct run *r, const char *dataset, const char *config, const char *split)
{
	struct viewer vw = {.o = r->o, .total = -1, .rl_remaining = -1, .rl_reset = -1};
	char *qd = http_escape(dataset), *qc = http_escape(config), *qs = http_escape(split);
	vw.base = fmt("%s/rows?dataset=%s&config=%s&split=%s", r->o->viewer, qd, qc, qs);
	free(qd);
	free(qc);
	free(qs);
	/* The total comes with any page: ask for one row; if that row cannot
	 * be served, ask /size. */
	jv first = viewer_page(&vw, 0, 1);
	jv_free(first);
	if (vw.total < 0) vw.total = viewer_size(r->o, dataset, config, split);
	long long n;
	long long *want = plan_rows(r, vw.total, &n);
	r->pg.total = n; /* rows to go: the progress line's percent and ETA */
	/* Fetch runs of consecutive wanted rows page by page, emitting in the
	 * planned order: sorted plans stream; shuffled ones are gathered. */
	int sorted = 1;
	for (long long k = 1; k < n && sorted; k++) sorted = want[k] > want[k - 1];
	long long *order = NULL;
	jv got = jv_object(); /* row_idx -> row, for shuffled plans */
	if (!sorted) {
		order = xmalloc(sizeof *order * (size_t)(n ? n : 1));
		memcpy(order, want, sizeof *order * (size_t)n);
		qsort(want, (size_t)n, sizeof *want, cmp_ll);
	}
	long long page = 100, k = 0;
	while (k < n) {
		long long run = 1;
		while (k + run < n && want[k + run] == want[k] + run && run < page) run++;
		vw.pages_left = (n - k + page - 1) / page;
		jv rows = viewer_page(&vw, want[k], run);
		if (!jv_is_valid(rows)) {
			jv msg = jv_invalid_get_msg(rows);
			if (run > 1) { /* a row too big to serve in company: shrink */
				page = run / 2;
				jv_free(msg);
				continue;
			}
			bad_row(r, want[k], "cannot be fetched whole: %s", jv_string_value(msg));
			jv_free(msg);
			k++;
			continue;
		}
		int m = jv_array_length(jv_copy(rows));
		for (int i = 0; i < m; i++) {
			jv item = jv_array_get(jv_copy(rows), i);
			jv row = jv_object_get(item, jv_string("row"));
			if (sorted) emit(r, want[k + i], row);
			else got = jv_object_set(got, jv_string_fmt("%lld", want[k + i]), row);
		}
		jv_free(rows);
		if (m == 0) cli_die(EXIT_RUNTIME, "%s: the viewer returned no rows at %lld", dataset, want[k]);
		k += m;
		if (page < 100) page *= 2; /* past the big row: grow back */
		if (page > 100) page = 100;
	}
	for (long long i = 0; !sorted && i < n; i++) {
		jv key = jv_string_fmt("%lld", order[i]);
		jv row = jv_object_get(jv_copy(got), key);
		if (jv_is_valid(row)) emit(r, order[i], row); /* else: reported bad */
	}
	jv_free(got);
	free(order);
	free(want);
	free(vw.base);
}

/* --from-files: the repo's JSON/JSONL files for the split, in name order. */
static jv rows_from_files(const struct opts *o, const char *dataset, const char *split)
{
	char *url = fmt("%s/api/datasets/%s", o->hub, dataset);
	jv info = get_json(o, url, dataset);
	free(url);
	jv sib = jv_object_get(info, jv_string("siblings"));
	jv names = jv_array();
	int n = jv_get_kind(sib) == JV_KIND_ARRAY ? jv_array_length(jv_copy(sib)) : 0;
	for (int i = 0; i < n; i++) {
		jv s = jv_array_get(jv_copy(sib), i);
		const char *f = jsonl_get_string(s, "rfilename");
		if (f) {
			size_t fl = strlen(f);
			int data = (fl > 6 && !strcmp(f + fl - 6, ".jsonl")) || (fl > 5 && !strcmp(f + fl - 5, ".json")) ||
				   (fl > 10 && !strcmp(f + fl - 10, ".jsonl.zst"));
			char *base = xstrdup(f);
			int match = strstr(basename(base), split) != NULL;
			free(base);
			if (data && match) free(listed_path(dataset, s, "rfilename")); /* exits on a bad name */
			if (data && match) names = jv_array_append(names, jv_string(f));
		}
		jv_free(s);
	}
	jv_free(sib);
	names = jv_sort(names, jv_copy(names));
	if (jv_array_length(jv_copy(names)) == 0)
		cli_die(EXIT_RUNTIME, "%s: no .json/.jsonl file named for split '%s' in the repo", dataset, split);
	jv rows = jv_array();
	jv_array_foreach(names, i, name) {
		char *dir = xstrdup("/tmp/ds-fetch.XXXXXX");
		if (!mkdtemp(dir)) cli_die(EXIT_RUNTIME, "mkdtemp: %m");
		const char *fname = jv_string_value(name);
		const char *slash = strrchr(fname, '/');
		char *path = fmt("%s/%s", dir, slash ? slash + 1 : fname);
		FILE *f = fopen(path, "w");
		if (!f) cli_die(EXIT_RUNTIME, "%s: %m", path);
		char *ep = escape_path(fname);
		char *furl = fmt("%s/datasets/%s/resolve/main/%s", o->hub, dataset, ep);
		free(ep);
		http_opts ho = {.bearer = o->token, .follow = 1, .sink = f};
		http_retry pol = http_retry_default();
		http_reply rep;
		char err[256];
		if (http_get_retry(furl, &ho, &pol, &rep, err, sizeof err, NULL) != 0 || rep.status / 100 != 2)
			die_http(fname, &rep, err);
		http_reply_free(&rep);
		if (fclose(f) != 0) cli_die(EXIT_RUNTIME, "%s: %m", path);
		rows = jv_array_concat(rows, read_rows(path));
		unlink(path);
		rmdir(dir);
		free(furl);
		free(path);
		free(dir);
		jv_free(name);
		(void)i;
	}
	jv_free(names);
	return rows;
}

/* ---- models: a repo's files into a folder ------------------------------- */

/* What DIR/.ds-fetch.json says of a file from an earlier run: its hash
 * and the commit it was fetched or verified at. */
struct mrec {
	char *path, *hash, *commit; /* owned */
	long long size;
	int seen; /* in this run's listing */
};

struct mfile {
	char *path, *sha256, *oid; /* owned */
	long long size;
	int lfs, ok, skip; /* skip: 1 already there, 2 not selected */
	char err[256];
};

struct mjob {
	const struct opts *o;
	const char *repo;
	int root;           /* the output folder */
	const char *commit; /* the revision pinned to one commit */
	struct mfile *files;
	int n;
	_Atomic int next, done;
	_Atomic long long bytes;
};

#define RECORD ".ds-fetch.json"

/* A path with each segment URL-escaped, slashes kept. Returns owned. */
static char *escape_path(const char *path)
{
	char *out = xstrdup(""), *seg = xstrdup(path), *save = NULL;
	for (char *t = strtok_r(seg, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		char *e = http_escape(t);
		char *joined = fmt("%s%s%s", out, *out ? "/" : "", e);
		free(out);
		free(e);
		out = joined;
	}
	free(seg);
	return out;
}

static void *model_worker(void *arg)
{
	struct mjob *j = arg;
	http_retry pol = http_retry_default();
	int i;
	while ((i = atomic_fetch_add(&j->next, 1)) < j->n) {
		struct mfile *f = &j->files[i];
		if (f->skip) {
			atomic_fetch_add(&j->done, 1);
			continue;
		}
		char *ep = escape_path(f->path), *er = http_escape(j->commit);
		char *url;
		if (j->o->modelscope) {
			char *fp = http_escape(f->path);
			url = fmt("%s/api/v1/models/%s/repo?Revision=%s&FilePath=%s", j->o->ms, j->repo, er, fp);
			free(fp);
		} else {
			url = fmt("%s/%s/resolve/%s/%s", j->o->hub, j->repo, er, ep);
		}
		char *part = fmt(".ds-fetch/%s.part", f->path);
		download_req q = {.url = url, .bearer = j->o->token, .root = j->root, .dest = f->path, .part = part,
				  .sha256 = f->lfs ? f->sha256 : NULL, .git_sha1 = f->lfs ? NULL : f->oid,
				  .size = f->size};
		f->ok = download_file(&q, &pol, &j->bytes, f->err, sizeof f->err) == 0;
		free(url), free(part), free(ep), free(er);
		atomic_fetch_add(&j->done, 1);
	}
	return NULL;
}

/* A listed path, checked before it names anything on disk. Returns an
 * owned copy, or exits naming the entry: a hub (or the mirror HF_ENDPOINT
 * names) is not trusted to keep its names inside the output folder. */
static char *listed_path(const char *repo, jv entry, const char *key)
{
	jv p = jv_object_get(jv_copy(entry), jv_string(key));
	if (jv_get_kind(p) != JV_KIND_STRING) {
		jv_free(p);
		return NULL;
	}
	const char *why;
	int len = jv_string_length_bytes(jv_copy(p));
	char *out = xstrdup(jv_string_value(p));
	if (safepath_check(jv_string_value(p), (size_t)len, &why) == 0 &&
	    (!strcmp(out, RECORD) || !strcmp(out, RECORD ".tmp") || !strncmp(out, ".ds-fetch/", 10)))
		why = "a name ds-fetch keeps for itself";
	if (why) {
		jv shown = jv_dump_string(p, 0);
		cli_die(EXIT_RUNTIME, "%s: the listing names the file %s: %s; refusing to write it", repo,
			jv_string_value(shown), why);
	}
	jv_free(p);
	return out;
}

/* ModelScope's file list (one page, every file with its sha256). */
static struct mfile *list_model_ms(const struct opts *o, const char *repo, int *n)
{
	char *er = http_escape(o->revision);
	char *url = fmt("%s/api/v1/models/%s/repo/files?Revision=%s&Recursive=true", o->ms, repo, er);
	free(er);
	jv v = get_json(o, url, repo);
	free(url);
	jv data = jv_get_kind(v) == JV_KIND_OBJECT ? jv_object_get(v, jv_string("Data")) : (jv_free(v), jv_null());
	jv list = jv_get_kind(data) == JV_KIND_OBJECT ? jv_object_get(data, jv_string("Files")) : (jv_free(data), jv_null());
	if (jv_get_kind(list) != JV_KIND_ARRAY) cli_die(EXIT_RUNTIME, "%s: ModelScope's file list has no Data.Files", repo);
	struct mfile *files = NULL;
	*n = 0;
	jv_array_foreach(list, i, e) {
		const char *type = jsonl_get_string(e, "Type"), *sha = jsonl_get_string(e, "Sha256");
		if (type && !strcmp(type, "blob")) {
			char *path = listed_path(repo, e, "Path");
			if (!path) cli_die(EXIT_RUNTIME, "%s: a ModelScope file entry has no Path", repo);
			files = xrealloc(files, sizeof *files * (size_t)(*n + 1));
			struct mfile *f = &files[(*n)++];
			memset(f, 0, sizeof *f);
			f->path = path;
			jv size = jv_object_get(jv_copy(e), jv_string("Size"));
			f->size = json_count_exact(size);
			jv_free(size);
			/* ModelScope gives every file a sha256: check them all by it. */
			f->lfs = sha != NULL;
			f->sha256 = sha ? xstrdup(sha) : NULL;
		}
		jv_free(e);
		(void)i;
	}
	jv_free(list);
	return files;
}

/* The repo's files at the revision, from the paginated tree listing
 * (Link: <next>; rel="next"), which also carries sizes and hashes. Sizes
 * are read exactly (json_parse_exact), and a next page is followed only
 * within the hub's own origin: the token goes with it. */
static struct mfile *list_model(const struct opts *o, const char *repo, const char *commit, int *n)
{
	char *er = http_escape(commit);
	char *url = fmt("%s/api/models/%s/tree/%s?recursive=true", o->hub, repo, er);
	free(er);
	struct mfile *files = NULL;
	*n = 0;
	while (url) {
		http_opts ho = {.bearer = o->token, .follow = 1};
		http_retry pol = http_retry_default();
		http_reply rep;
		char err[256];
		if (http_get_retry(url, &ho, &pol, &rep, err, sizeof err, NULL) != 0 || rep.status / 100 != 2)
			die_http(repo, &rep, err);
		size_t at;
		const char *why;
		jv list = json_parse_exact(rep.body, rep.len, &at, &why);
		if (jv_get_kind(list) != JV_KIND_ARRAY) cli_die(EXIT_RUNTIME, "%s: the tree listing is not a JSON array", repo);
		jv_array_foreach(list, i, e) {
			const char *type = jsonl_get_string(e, "type");
			if (type && !strcmp(type, "file")) {
				char *path = listed_path(repo, e, "path");
				if (!path) cli_die(EXIT_RUNTIME, "%s: a tree entry has no path", repo);
				files = xrealloc(files, sizeof *files * (size_t)(*n + 1));
				struct mfile *f = &files[(*n)++];
				memset(f, 0, sizeof *f);
				f->path = path;
				const char *oid = jsonl_get_string(e, "oid");
				f->oid = oid ? xstrdup(oid) : NULL;
				jv size = jv_object_get(jv_copy(e), jv_string("size"));
				f->size = json_count_exact(size);
				jv_free(size);
				jv lfs = jv_object_get(jv_copy(e), jv_string("lfs"));
				if (jv_get_kind(lfs) == JV_KIND_OBJECT) {
					const char *sha = jsonl_get_string(lfs, "oid");
					f->lfs = 1;
					f->sha256 = sha ? xstrdup(sha) : NULL;
				}
				jv_free(lfs);
			}
			jv_free(e);
			(void)i;
		}
		jv_free(list);
		char *link = http_header(&rep, "Link");
		http_reply_free(&rep);
		char *next = NULL;
		if (link && strstr(link, "rel=\"next\"")) {
			char *lt = strchr(link, '<'), *gt = lt ? strchr(lt, '>') : NULL;
			if (lt && gt) {
				char *ref = fmt("%.*s", (int)(gt - lt - 1), lt + 1);
				next = http_resolve(url, ref);
				if (!next || !http_is_web_url(next) || !http_same_origin(next, o->hub))
					cli_die(EXIT_RUNTIME, "%s: the tree listing's next page is at %s, outside %s; not followed",
						repo, ref, o->hub);
				free(ref);
			}
		}
		free(link);
		free(url);
		url = next;
	}
	return files;
}

/* DIR/.ds-fetch.json from an earlier run, or none. */
static struct mrec *record_read(int root, int *n)
{
	*n = 0;
	int fd = safepath_open(root, RECORD, O_RDONLY, 0);
	if (fd < 0) return NULL;
	struct stat st;
	char *text = NULL;
	ssize_t got = -1;
	if (fstat(fd, &st) == 0 && st.st_size < (1 << 28)) {
		text = xmalloc((size_t)st.st_size + 1);
		got = read(fd, text, (size_t)st.st_size);
	}
	close(fd);
	struct mrec *recs = NULL;
	size_t at;
	const char *why;
	jv v = got >= 0 ? json_parse_exact(text, (size_t)got, &at, &why) : jv_invalid();
	free(text);
	jv files = jv_get_kind(v) == JV_KIND_OBJECT ? jv_object_get(jv_copy(v), jv_string("files")) : jv_null();
	if (jv_get_kind(files) == JV_KIND_OBJECT) {
		jv_object_foreach(files, key, e) {
			const char *hash = jv_get_kind(e) == JV_KIND_OBJECT ? jsonl_get_string(e, "sha256") : NULL;
			if (!hash && jv_get_kind(e) == JV_KIND_OBJECT) hash = jsonl_get_string(e, "oid");
			const char *commit = jv_get_kind(e) == JV_KIND_OBJECT ? jsonl_get_string(e, "commit") : NULL;
			jv size = jv_get_kind(e) == JV_KIND_OBJECT ? jv_object_get(jv_copy(e), jv_string("size")) : jv_null();
			if (hash) {
				recs = xrealloc(recs, sizeof *recs * (size_t)(*n + 1));
				recs[(*n)++] = (struct mrec){xstrdup(jv_string_value(key)), xstrdup(hash),
							     xstrdup(commit ? commit : ""), json_count_exact(size), 0};
			}
			jv_free(size);
			jv_free(key);
			jv_free(e);
		}
	}
	jv_free(files);
	jv_free(v);
	return recs;
}

static struct mrec *record_find(struct mrec *recs, int n, const char *path)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(recs[i].path, path)) return &recs[i];
	return NULL;
}

static void put_json_string(FILE *f, const char *s)
{
	jv d = jv_dump_string(jv_string(s), 0);
	fputs(jv_string_value(d), f);
	jv_free(d);
}

/* Write DIR/.ds-fetch.json anew (a temporary file renamed over it): the
 * repo, the commit, and per file its size, hash and the commit it was
 * fetched or verified at. The files of this run that are on disk and
 * verified, plus earlier entries for files listed but not selected now. */
static int record_write(int root, const struct opts *o, const char *repo, const char *commit,
			const struct mfile *files, int n, struct mrec *old, int n_old)
{
	const char *tmp = RECORD ".tmp";
	int fd = safepath_open(root, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0) close(fd);
		return -1;
	}
	fputs("{\"repo\":", f);
	put_json_string(f, repo);
	fputs(",\"source\":", f);
	put_json_string(f, o->modelscope ? "modelscope" : "hf");
	fputs(",\"revision\":", f);
	put_json_string(f, o->revision);
	fputs(",\"commit\":", f);
	put_json_string(f, commit);
	fputs(",\"files\":{", f);
	int first = 1;
	for (int i = 0; i < n; i++) {
		const struct mfile *m = &files[i];
		const char *hash = m->lfs ? m->sha256 : m->oid, *at = commit;
		long long size = m->size;
		if (m->skip == 2 || !m->ok) { /* not fetched now: what was known stays known */
			const struct mrec *r = record_find(old, n_old, m->path);
			if (!r) continue;
			hash = r->hash, at = r->commit, size = r->size;
		}
		if (!hash) continue;
		fputs(first ? "\n" : ",\n", f);
		first = 0;
		put_json_string(f, m->path);
		fprintf(f, ":{\"size\":%lld,\"%s\":", size, strlen(hash) == 64 ? "sha256" : "oid");
		put_json_string(f, hash);
		fputs(",\"commit\":", f);
		put_json_string(f, at);
		fputc('}', f);
	}
	fputs("\n}}\n", f);
	int bad = ferror(f) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
	bad |= fclose(f) != 0;
	if (bad || safepath_rename(root, tmp, RECORD) != 0) {
		safepath_unlink(root, tmp);
		return -1;
	}
	return 0;
}

/* The file at f->path is the one listed: its recorded hash is the listed
 * one, or, with no record, its own digest is. */
static int already_there(int root, const struct mfile *f, const struct mrec *r)
{
	struct stat st;
	if (safepath_stat(root, f->path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
	if (f->size >= 0 && st.st_size != f->size) return 0;
	const char *want = f->lfs ? f->sha256 : f->oid;
	if (!want) return f->size >= 0; /* nothing to check it by */
	if (r && !strcmp(r->hash, want) && r->size == (long long)st.st_size) return 1;
	int fd = safepath_open(root, f->path, O_RDONLY, 0);
	char hex[65] = "";
	int same = fd >= 0 && download_digest_fd(fd, f->lfs ? "sha256" : "gitsha1", hex) == 0 && !strcmp(hex, want);
	if (fd >= 0) close(fd);
	return same;
}

/* --include / --exclude as huggingface_hub's filter_repo_objects applies
 * allow_patterns / ignore_patterns: Python's fnmatchcase, where '*' crosses
 * '/' and nothing escapes, and a pattern ending in '/' means everything
 * under that folder. */
static int pattern_match(const char *pattern, const char *path)
{
	/* There a backslash in a pattern is a '/' (os.path.join on Windows). */
	size_t n = strlen(pattern);
	char *p = fmt("%s%s", pattern, n && (pattern[n - 1] == '/' || pattern[n - 1] == '\\') ? "*" : "");
	for (char *c = p; *c; c++)
		if (*c == '\\') *c = '/';
	int m = fnmatch(p, path, FNM_NOESCAPE) == 0;
	free(p);
	return m;
}

static int selected(const struct opts *o, const char *path)
{
	int want = o->n_include == 0;
	for (int k = 0; k < o->n_include && !want; k++) want = pattern_match(o->include[k], path);
	for (int k = 0; k < o->n_exclude && want; k++) want = !pattern_match(o->exclude[k], path);
	return want;
}

static int rmdir_empty(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)ftw;
	if (flag == FTW_DP) rmdir(path); /* fails, harmlessly, where parts remain */
	return 0;
}

static void mkdir_p(const char *dir)
{
	char *p = xstrdup(dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/') continue;
		*s = '\0';
		mkdir(p, 0777);
		*s = '/';
	}
	if (mkdir(p, 0777) != 0 && errno != EEXIST) cli_die(EXIT_RUNTIME, "%s: %m", dir);
	free(p);
}

static int fetch_model(const struct opts *o, const char *repo)
{
	if (!o->output) cli_usage_error(usage, "ds-fetch model needs -o DIR");
	/* Pin the revision (branch, tag or commit) to one commit first (the
	 * hub's "sha"), so that a branch moving during the download cannot mix
	 * two versions. */
	char *commit = xstrdup(o->revision);
	if (!o->modelscope) {
		char *er = http_escape(o->revision);
		char *url = fmt("%s/api/models/%s/revision/%s", o->hub, repo, er);
		jv info = get_json(o, url, repo);
		const char *sha = jsonl_get_string(info, "sha");
		if (sha && *sha) {
			free(commit);
			commit = xstrdup(sha);
		}
		jv_free(info);
		free(url);
		free(er);
	}
	int n;
	struct mfile *files = o->modelscope ? list_model_ms(o, repo, &n) : list_model(o, repo, commit, &n);
	mkdir_p(o->output);
	int root = open(o->output, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) cli_die(EXIT_RUNTIME, "%s: %m", o->output);
	int n_old;
	struct mrec *old = record_read(root, &n_old);
	int kept = 0, there = 0;
	long long total = 0;
	for (int i = 0; i < n; i++) {
		struct mfile *f = &files[i];
		struct mrec *r = record_find(old, n_old, f->path);
		if (r) r->seen = 1;
		if (!selected(o, f->path)) {
			f->skip = 2;
			continue;
		}
		kept++;
		/* Files are renamed into place only once verified; one there is
		 * the listed one when its hash is, not merely its size: a branch
		 * that moved can change a file and keep its length. */
		if (already_there(root, f, r)) {
			f->skip = 1;
			f->ok = 1;
			there++;
		} else if (f->size > 0) {
			total += f->size > LLONG_MAX - total ? LLONG_MAX - total : f->size;
		}
	}
	if (kept == 0) cli_die(EXIT_RUNTIME, "%s: no file matches --include/--exclude", repo);
	for (int i = 0; i < n_old; i++)
		if (!old[i].seen)
			fprintf(stderr, "%s: %s: %s is no longer in the repo at %.12s: left in %s, dropped from %s\n",
				cli_prog, repo, old[i].path, commit, o->output, RECORD);
	struct statvfs vfs;
	if (fstatvfs(root, &vfs) == 0 && (unsigned long long)total / vfs.f_frsize > vfs.f_bavail)
		fprintf(stderr, "%s: %s: %lld bytes to download, %llu free there\n", cli_prog, o->output, total,
			(unsigned long long)vfs.f_bavail * vfs.f_frsize);
	struct mjob j = {.o = o, .repo = repo, .root = root, .commit = commit, .files = files, .n = n};
	int nt = o->jobs > 0 ? o->jobs : 4;
	pthread_t th[64];
	if (nt > 64) nt = 64;
	for (int t = 0; t < nt; t++) pthread_create(&th[t], NULL, model_worker, &j);
	progress pg;
	progress_start(&pg, cli_prog, total);
	/* Redraw the bar while the workers run; without a terminal there is
	 * nothing to draw, so no polling delays the end. */
	struct timespec tick = {0, 100 * 1000 * 1000};
	while (pg.on && atomic_load(&j.done) < n) {
		nanosleep(&tick, NULL);
		progress_update(&pg, (uint64_t)atomic_load(&j.done), (uint64_t)atomic_load(&j.bytes));
	}
	for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
	progress_finish(&pg);
	int failed = 0, got = 0;
	for (int i = 0; i < n; i++) {
		struct mfile *f = &files[i];
		if (!f->skip && !f->ok) {
			fprintf(stderr, "%s: %s: %s: %s\n", cli_prog, repo, f->path, f->err);
			failed++;
		} else if (!f->skip) {
			got++;
		}
	}
	if (record_write(root, o, repo, commit, files, n, old, n_old) != 0) {
		fprintf(stderr, "%s: %s/%s: cannot write it: %s\n", cli_prog, o->output, RECORD, strerror(errno));
		failed++;
	}
	for (int i = 0; i < n; i++) free(files[i].path), free(files[i].sha256), free(files[i].oid);
	free(files);
	for (int i = 0; i < n_old; i++) free(old[i].path), free(old[i].hash), free(old[i].commit);
	free(old);
	close(root);
	char *parts = fmt("%s/.ds-fetch", o->output);
	nftw(parts, rmdir_empty, 16, FTW_DEPTH | FTW_PHYS);
	free(parts);
	if (!o->quiet)
		fprintf(stderr, "%s: %s@%s%s%s: %d files downloaded and verified (%.1f MB), %d already there, %d failed\n",
			cli_prog, repo, o->revision, strcmp(commit, o->revision) ? " = " : "",
			strcmp(commit, o->revision) ? commit : "", got, (double)atomic_load(&j.bytes) / 1e6, there, failed);
	free(commit);
	return failed ? EXIT_RUNTIME : 0;
}

/* ---- the entry point ---------------------------------------------------- */

/* s without carriage returns and newlines anywhere and blanks around it,
 * as huggingface_hub cleans a token; owned, or NULL when nothing is left. */
static char *clean_token(const char *s)
{
	char *t = xstrdup(s), *w = t;
	for (const char *r = s; *r; r++)
		if (*r != '\r' && *r != '\n') *w++ = *r;
	*w = '\0';
	char *b = t;
	while (*b == ' ' || *b == '\t') b++;
	char *e = b + strlen(b);
	while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
	*e = '\0';
	char *out = *b ? xstrdup(b) : NULL;
	memset(t, 0, strlen(s) + 1);
	free(t);
	return out;
}

/* path with a leading ~/ for $HOME (os.path.expanduser), then tail. Owned. */
static char *expand_home(const char *path, const char *tail)
{
	const char *home = getenv("HOME");
	if (path[0] == '~' && path[1] == '/' && home) return fmt("%s%s%s", home, path + 1, tail);
	return fmt("%s%s", path, tail);
}

/* The hub token where huggingface_hub looks for it, in its order: HF_TOKEN,
 * HUGGING_FACE_HUB_TOKEN, then the file `hf auth login` writes: HF_TOKEN_PATH,
 * else HF_HOME/token, HF_HOME defaulting to $XDG_CACHE_HOME/huggingface or
 * ~/.cache/huggingface. HF_HUB_DISABLE_IMPLICIT_TOKEN turns it off, as there.
 * Returns owned, or NULL. */
static char *hub_token(void)
{
	const char *off = getenv("HF_HUB_DISABLE_IMPLICIT_TOKEN");
	if (off && (!strcasecmp(off, "1") || !strcasecmp(off, "true") || !strcasecmp(off, "yes") || !strcasecmp(off, "on")))
		return NULL;
	static const char *const vars[] = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"};
	for (int i = 0; i < 2; i++) {
		const char *v = getenv(vars[i]);
		char *t = v ? clean_token(v) : NULL;
		if (t) return t;
	}
	const char *tp = getenv("HF_TOKEN_PATH"), *hh = getenv("HF_HOME"), *xdg = getenv("XDG_CACHE_HOME");
	char *path = tp && *tp ? expand_home(tp, "")
		     : hh && *hh ? expand_home(hh, "/token")
		     : xdg && *xdg ? fmt("%s/huggingface/token", xdg) : expand_home("~/.cache/huggingface", "/token");
	FILE *f = fopen(path, "r");
	free(path);
	if (!f) return NULL;
	char buf[4096];
	size_t k = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[k] = '\0';
	char *t = clean_token(buf);
	memset(buf, 0, sizeof buf);
	return t;
}

static long long parse_count(const char *s, const char *opt)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 0) cli_usage_error(usage, "%s needs a count, not '%s'", opt, s);
	return v;
}

int main(int argc, char **argv)
{
	cli_init("ds-fetch");
	struct opts o = {.split = "train", .limit = -1, .shard_n = 1, .params = jv_object()};
	static const struct option longopts[] = {
		{"config", 1, 0, 'c'},   {"split", 1, 0, 's'},    {"offset", 1, 0, 'O'},
		{"limit", 1, 0, 'l'},    {"shuffle", 0, 0, 'S'},  {"seed", 1, 0, 'e'},
		{"shard", 1, 0, 'H'},    {"preset", 1, 0, 'p'},   {"map", 1, 0, 'm'},
		{"param", 1, 0, 'P'},    {"from-files", 0, 0, 'F'}, {"output", 1, 0, 'o'},
		{"skip-bad", 0, 0, 'B'}, {"quiet", 0, 0, 'q'},    {"revision", 1, 0, 'R'},
		{"include", 1, 0, 'I'},  {"jobs", 1, 0, 'j'},     {"source", 1, 0, 'M'},
		{"timeout", 1, 0, 'W'},  {"exclude", 1, 0, 'X'},
		CLI_LONGOPTS_COMMON,
		{0, 0, 0, 0}};
	int c;
	o.revision = NULL;
	o.include = xcalloc((size_t)argc, sizeof *o.include);
	o.exclude = xcalloc((size_t)argc, sizeof *o.exclude);
	while ((c = getopt_long(argc, argv, "P:o:j:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 's': o.split = optarg; break;
		case 'O': o.offset = parse_count(optarg, "--offset"); break;
		case 'l': o.limit = parse_count(optarg, "--limit"); break;
		case 'S': o.shuffle = 1; break;
		case 'e': o.seed = (unsigned long long)parse_count(optarg, "--seed"); break;
		case 'H':
			if (sscanf(optarg, "%ld/%ld", &o.shard_i, &o.shard_n) != 2 || o.shard_n < 1 ||
			    o.shard_i < 0 || o.shard_i >= o.shard_n)
				cli_usage_error(usage, "--shard wants I/N with 0 <= I < N, not '%s'", optarg);
			break;
		case 'p': o.preset = optarg; break;
		case 'm': o.map = optarg; break;
		case 'P': {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg) cli_usage_error(usage, "-P wants KEY=VALUE, not '%s'", optarg);
			o.params = jv_object_set(o.params, jv_string_sized(optarg, (int)(eq - optarg)),
						 jv_string(eq + 1));
			break;
		}
		case 'F': o.from_files = 1; break;
		case 'o': o.output = optarg; break;
		case 'B': o.skip_bad = 1; break;
		case 'R': o.revision = optarg; break;
		case 'M':
			if (!strcmp(optarg, "modelscope")) o.modelscope = 1;
			else if (strcmp(optarg, "hf") != 0)
				cli_usage_error(usage, "--source is hf or modelscope, not '%s'", optarg);
			break;
		case 'I': o.include[o.n_include++] = optarg; break;
		case 'X': o.exclude[o.n_exclude++] = optarg; break;
		case 'j': o.jobs = (int)parse_count(optarg, "--jobs"); break;
		case 'W': {
			long long t = parse_count(optarg, "--timeout");
			if (t < 1) cli_usage_error(usage, "--timeout wants at least 1 second");
			http_set_stall_timeout((long)t);
			break;
		}
		case 'q': o.quiet = 1; break;
		case 'h': fputs(usage, stdout); fputs(help, stdout); cli_close_stdout(); cli_exit(0);
		case 'V': cli_version(); cli_close_stdout(); cli_exit(0);
		default: cli_usage_error(usage, "bad option");
		}
	}
	o.hub = getenv("HF_ENDPOINT") && *getenv("HF_ENDPOINT") ? getenv("HF_ENDPOINT") : "https://huggingface.co";
	static char ms_domain[512];
	const char *msd = getenv("MODELSCOPE_DOMAIN");
	if (msd && *msd) snprintf(ms_domain, sizeof ms_domain, "https://%s", msd);
	o.ms = getenv("MODELSCOPE_ENDPOINT") && *getenv("MODELSCOPE_ENDPOINT") ? getenv("MODELSCOPE_ENDPOINT")
	       : msd && *msd ? ms_domain : "https://www.modelscope.cn";
	if (!o.revision) o.revision = o.modelscope ? "master" : "main";
	o.pace_max_s = getenv("DS_PACE_MAX_S") && atof(getenv("DS_PACE_MAX_S")) > 0 ? atof(getenv("DS_PACE_MAX_S")) : 300;
	/* The hub's token is for the hub: never hand it to ModelScope. */
	if (!o.modelscope) o.token = hub_token();
	if (optind < argc && strcmp(argv[optind], "model") == 0) {
		if (argc - optind != 2 || !strchr(argv[optind + 1], '/'))
			cli_usage_error(usage, "ds-fetch model wants one repo id (OWNER/NAME)");
		int rc = fetch_model(&o, argv[optind + 1]);
		free(o.include);
		free(o.exclude);
		jv_free(o.params);
		if (o.token) memset(o.token, 0, strlen(o.token)), free(o.token);
		return rc;
	}
	if (argc - optind != 1) cli_usage_error(usage, "name one dataset or file");
	if (o.preset && o.map) cli_usage_error(usage, "--preset and --map are exclusive");
	o.source = argv[optind];
	o.viewer = getenv("DS_VIEWER_ENDPOINT") && *getenv("DS_VIEWER_ENDPOINT")
			   ? getenv("DS_VIEWER_ENDPOINT") : "https://datasets-server.huggingface.co";

	struct stat st;
	int local = strcmp(o.source, "-") == 0 || stat(o.source, &st) == 0;
	if (!local && !strchr(o.source, '/'))
		cli_die(EXIT_USAGE, "%s: no such file, and not a dataset id (OWNER/NAME)", o.source);

	idset *done = idset_new();
	struct run r = {.o = &o, .done = done, .out = stdout};
	long n_done = 0;
	if (o.output) r.out = resume_open(o.output, done, resume_key_id_sample, &n_done);
	progress_start(&r.pg, cli_prog, -1);

	char *config = NULL, *id_base = NULL, *name = NULL;
	if (local) {
		name = xstrdup(strcmp(o.source, "-") == 0 ? "stdin" : o.source);
		r.source = basename(name);
		id_base = xstrdup(r.source);
		r.id_base = id_base;
		r.prog = preset_compile(&o, r.source, NULL, NULL);
		emit_from_array(&r, read_rows(o.source));
	} else if (o.from_files) {
		r.source = o.source;
		id_base = fmt("%s/%s", o.source, o.split);
		r.id_base = id_base;
		r.prog = preset_compile(&o, o.source, NULL, o.split);
		emit_from_array(&r, rows_from_files(&o, o.source, o.split));
	} else {
		r.source = o.source;
		config = o.config ? xstrdup(o.config) : pick_config(&o, o.source, o.split);
		id_base = strcmp(config, "default") == 0 ? fmt("%s/%s", o.source, o.split)
							  : fmt("%s/%s/%s", o.source, config, o.split);
		r.id_base = id_base;
		r.prog = preset_compile(&o, o.source, config, o.split);
		emit_from_viewer(&r, o.source, config, o.split);
	}
	progress_finish(&r.pg);
	if (o.output) resume_close(r.out, o.output);
	else cli_close_stdout();
	if (!o.quiet)
		fprintf(stderr, "%s: %lld rows read, %lld records written, %lld filtered out by the preset, "
				"%lld already done, %lld bad row%s skipped\n",
			cli_prog, r.rows, r.written, r.filtered, r.skipped, r.bad, r.bad == 1 ? "" : "s");
	jqprog_free(r.prog);
	idset_free(done);
	jv_free(o.params);
	if (o.token) {
		memset(o.token, 0, strlen(o.token));
		free(o.token);
	}
	free(config);
	free(id_base);
	free(name);
	free(o.include);
	free(o.exclude);
	return 0;
}
