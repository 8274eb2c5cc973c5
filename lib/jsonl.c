/* jsonl.c — JSON Lines reading and writing. */
#include "jsonl.h"
#include "check.h"
#include "cli.h"
#include "json.h"
#include "progress.h"
#include "zstdio.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct jsonl_reader {
	zreader *z;
	char *name;     /* NULL for stdin */
	char *buf;      /* buf[start..end) holds unread bytes */
	size_t cap, start, end, scan;
	int eof, fatal;
	long line;
	char err[512];
	char where[64 + PATH_MAX];
};

jsonl_reader *jsonl_reader_open(const char *path, char **err)
{
	zreader *z = zreader_open(path, err);
	if (!z) return NULL;
	jsonl_reader *r = xcalloc(1, sizeof *r);
	r->z = z;
	r->name = strcmp(path, "-") == 0 ? NULL : xstrdup(path);
	r->cap = 1 << 16;
	r->buf = xmalloc(r->cap);
	return r;
}

/* Find the next line: sets *len to its length without the newline and
 * returns a pointer into buf (valid until the next call), or NULL at the
 * end. Returns NULL with r->fatal set on an error. */
static char *next_line(jsonl_reader *r, size_t *len, int *had_newline)
{
	for (;;) {
		char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
		if (nl) {
			char *s = r->buf + r->start;
			*len = (size_t)(nl - s);
			*had_newline = 1;
			r->start = r->scan = (size_t)(nl - r->buf) + 1;
			return s;
		}
		r->scan = r->end;
		if (r->eof) {
			if (r->start == r->end) return NULL;
			char *s = r->buf + r->start;
			*len = r->end - r->start;
			*had_newline = 0;
			r->start = r->scan = r->end;
			return s;
		}
		/* Make room: slide the partial line to the front, grow if full. */
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->scan -= r->start;
			r->start = 0;
		}
		if (r->end == r->cap) {
			if (r->cap > (size_t)INT_MAX) {
				snprintf(r->err, sizeof r->err,
					 "line longer than 2 GiB (libjq's limit)");
				r->fatal = 1;
				return NULL;
			}
			r->cap *= 2;
			r->buf = xrealloc(r->buf, r->cap);
		}
		ssize_t k = zreader_read(r->z, r->buf + r->end, r->cap - r->end);
		if (k < 0) {
			snprintf(r->err, sizeof r->err, "%s", zreader_error(r->z));
			r->fatal = 1;
			return NULL;
		}
		if (k == 0) r->eof = 1;
		r->end += (size_t)k;
	}
}

static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
	return 1;
}

int jsonl_reader_next_line(jsonl_reader *r, const char **s, size_t *n, int *complete)
{
	if (r->fatal) return -1;
	for (;;) {
		char *line = next_line(r, n, complete);
		if (!line) return r->fatal ? -1 : 0;
		r->line++;
		if (blank(line, *n)) continue;
		*s = line;
		return 1;
	}
}

jv jsonl_parse_line(const char *s, size_t n, int complete, char *err, size_t errlen)
{
	jv v = jsonl_parse(s, n, err, errlen);
	if (!jv_is_valid(v) && !complete) /* a writer killed mid-line leaves this */
		strncat(err, " (last line has no newline: cut short?)", errlen - strlen(err) - 1);
	return v;
}

int jsonl_reader_next(jsonl_reader *r, jv *out)
{
	const char *s;
	size_t n;
	int complete;
	int k = jsonl_reader_next_line(r, &s, &n, &complete);
	if (k <= 0) return k;
	jv v = jsonl_parse_line(s, n, complete, r->err, sizeof r->err);
	if (!jv_is_valid(v)) return -1;
	*out = v;
	return 1;
}

const char *jsonl_reader_error(const jsonl_reader *r) { return r->err; }
int jsonl_reader_fatal(const jsonl_reader *r) { return r->fatal; }
long jsonl_reader_line(const jsonl_reader *r) { return r->line; }
uint64_t jsonl_reader_bytes_in(const jsonl_reader *r) { return zreader_bytes_in(r->z); }
int64_t jsonl_reader_size(const jsonl_reader *r) { return zreader_size(r->z); }

const char *jsonl_reader_where(jsonl_reader *r)
{
	if (r->name)
		snprintf(r->where, sizeof r->where, "%s:%ld", r->name, r->line);
	else
		snprintf(r->where, sizeof r->where, "%ld", r->line);
	return r->where;
}

void jsonl_reader_report(jsonl_reader *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s:%s: ", cli_prog, jsonl_reader_where(r));
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void jsonl_reader_close(jsonl_reader *r)
{
	if (!r) return;
	zreader_close(r->z);
	free(r->name);
	free(r->buf);
	free(r);
}

void jsonl_inputs_init(jsonl_inputs *in, char *const *paths, int n, int skip_bad, progress *pg)
{
	static const char *const stdin_only[] = {"-"};
	*in = (jsonl_inputs){.paths = n > 0 ? (const char *const *)paths : stdin_only, .n = n > 0 ? n : 1,
			     .skip_bad = skip_bad, .pg = pg};
}

int jsonl_inputs_next(jsonl_inputs *in, jv *rec)
{
	for (;;) {
		if (!in->r) {
			if (in->next == in->n) return 0;
			char *err = NULL;
			in->r = jsonl_reader_open(in->paths[in->next++], &err);
			if (!in->r) {
				cli_warn("%s", err);
				free(err);
				return -1;
			}
			if (in->pg) progress_start(in->pg, cli_prog, jsonl_reader_size(in->r));
		}
		int k = jsonl_reader_next(in->r, rec);
		if (k > 0) {
			in->read++;
			if (in->pg) progress_update(in->pg, (uint64_t)in->read, jsonl_reader_bytes_in(in->r));
			return 1;
		}
		if (k == 0) {
			if (in->pg) progress_finish(in->pg);
			jsonl_reader_close(in->r);
			in->r = NULL;
			continue;
		}
		jsonl_reader_report(in->r, "%s", jsonl_reader_error(in->r));
		if (!in->skip_bad || jsonl_reader_fatal(in->r)) return -1;
		in->bad++;
	}
}

static void inputs_vreport(jsonl_inputs *in, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s:%s: ", cli_prog, jsonl_inputs_where(in));
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void jsonl_inputs_report(jsonl_inputs *in, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	inputs_vreport(in, fmt, ap);
	va_end(ap);
}

int jsonl_inputs_reject(jsonl_inputs *in, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	inputs_vreport(in, fmt, ap);
	va_end(ap);
	if (!in->skip_bad) return -1;
	in->bad++;
	return 0;
}

const char *jsonl_inputs_where(jsonl_inputs *in)
{
	return in->r ? jsonl_reader_where(in->r) : "-";
}

void jsonl_inputs_close(jsonl_inputs *in)
{
	if (in->r && in->pg) progress_finish(in->pg);
	jsonl_reader_close(in->r);
	in->r = NULL;
}

jv jsonl_parse(const char *s, size_t n, char *err, size_t errlen)
{
	if (n > (size_t)INT_MAX) {
		snprintf(err, errlen, "line longer than 2 GiB (libjq's limit)");
		return jv_invalid();
	}
	size_t at;
	const char *why;
	jv v = json_parse(s, n, &at, &why);
	if (!jv_is_valid(v)) {
		if (strcmp(why, "invalid UTF-8") == 0 || (unsigned char)s[at] >= 0x80)
			snprintf(err, errlen, "invalid UTF-8 at byte %zu of the line (0x%02x)",
				 at + 1, (unsigned char)s[at]);
		else
			snprintf(err, errlen, "malformed JSON at byte %zu: %s", at + 1, why);
		return v;
	}
	if (jv_get_kind(v) != JV_KIND_OBJECT) {
		snprintf(err, errlen, "not a JSON object (a %s)", jv_kind_name(jv_get_kind(v)));
		jv_free(v);
		return jv_invalid();
	}
	return v;
}

int jsonl_write(FILE *f, jv rec)
{
	/* One buffer for every line: a record is built whole, then written
	 * with one fwrite. Programs write from one thread. */
	static jbuf line;
	line.n = 0;
	json_dump(&line, rec);
	jv_free(rec);
	line.p[line.n++] = '\n'; /* json_dump leaves spare room: cap > n */
	int rc = fwrite(line.p, 1, line.n, f) == line.n ? 0 : -1;
	if (line.cap > (64u << 20)) jbuf_free(&line); /* after a huge line */
	return rc;
}

const char *jsonl_get_string(jv rec, const char *key)
{
	if (jv_get_kind(rec) != JV_KIND_OBJECT) return NULL;
	jv v = jv_object_get(jv_copy(rec), jv_string(key));
	const char *s = NULL;
	/* The object holds a reference, so the string outlives v. */
	if (jv_get_kind(v) == JV_KIND_STRING) s = jv_string_value(v);
	jv_free(v);
	return s;
}
