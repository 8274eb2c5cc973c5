/* jsonl.h — JSON Lines in and out, on libjq's jv.
 *
 * A record is one JSON object on one line, UTF-8. The reader takes lines of
 * any length (up to libjq's 2 GiB string limit), plain or zstd-compressed,
 * skips blank lines, and checks UTF-8 itself because libjq would silently
 * replace invalid bytes. The writer emits a record as one compact line.
 *
 * jv ownership follows libjq: every jv passed in is consumed, every jv
 * returned is owned by the caller.
 */
#ifndef DS_JSONL_H
#define DS_JSONL_H

#include <jv.h>
#include <stdint.h>
#include <stdio.h>

typedef struct jsonl_reader jsonl_reader;
struct progress;

/* Open path ("-" is stdin). Returns owned (close with jsonl_reader_close),
 * or NULL with *err an owned message. */
jsonl_reader *jsonl_reader_open(const char *path, char **err);

/* Read the next record.
 *  1: *out is an owned JSON object;
 *  0: end of input;
 * -1: a bad line; jsonl_reader_error says why, jsonl_reader_line where.
 *     Reading may go on (--skip-bad) unless jsonl_reader_fatal is set
 *     (an I/O error, a corrupt zstd stream). */
int jsonl_reader_next(jsonl_reader *r, jv *out);

/* The next line that is not blank, unparsed, for a reader that parses on
 * other threads: *s[0..*n) borrowed until the next call; *complete is 0
 * for a last line without its newline. 1: a line; 0: end of input; -1: a
 * read error (jsonl_reader_error; always fatal). Parse it with
 * jsonl_parse_line. */
int jsonl_reader_next_line(jsonl_reader *r, const char **s, size_t *n, int *complete);

/* jsonl_parse, with the hint a cut-short last line deserves. */
jv jsonl_parse_line(const char *s, size_t n, int complete, char *err, size_t errlen);

const char *jsonl_reader_error(const jsonl_reader *r); /* borrowed */
int jsonl_reader_fatal(const jsonl_reader *r);
long jsonl_reader_line(const jsonl_reader *r); /* 1-based, of the last line read */
/* Where the last line came from, for messages: "FILE:LINE", or "LINE" for
 * stdin (so messages read "prog:LINE: reason", DESIGN.md §4). Borrowed;
 * valid until the next call. */
const char *jsonl_reader_where(jsonl_reader *r);
uint64_t jsonl_reader_bytes_in(const jsonl_reader *r);
int64_t jsonl_reader_size(const jsonl_reader *r);

void jsonl_reader_close(jsonl_reader *r);

/* Report "prog:WHERE: <fmt>" on stderr for the last line read. */
void jsonl_reader_report(jsonl_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A filter's inputs, read one after another as one stream of records: the
 * files named on the command line, or stdin when none is. Bad lines and
 * inputs that cannot be opened are reported ("prog:WHERE: reason"); with
 * skip_bad a bad line is counted and passed over instead of stopping the
 * run (an I/O error or a corrupt zstd stream always stops it). */
typedef struct jsonl_inputs {
	const char *const *paths; /* borrowed */
	int n, next;
	jsonl_reader *r;  /* the input being read; NULL before and between */
	int skip_bad;
	long read;        /* records returned */
	long bad;         /* lines and records passed over (skip_bad) */
	struct progress *pg; /* or NULL: restarted with each input's size */
} jsonl_inputs;

/* paths[0..n) borrowed (n == 0: stdin); pg borrowed, or NULL. */
void jsonl_inputs_init(jsonl_inputs *in, char *const *paths, int n, int skip_bad, struct progress *pg);

/* The next record:
 *  1: *rec is an owned object, counted in read;
 *  0: every input is read;
 * -1: a bad line (without skip_bad) or an input that cannot be read: it
 *     is reported, and the run must stop. */
int jsonl_inputs_next(jsonl_inputs *in, jv *rec);

/* A record that next returned is unusable: report "prog:WHERE: <fmt>" at
 * its line. Returns 0 when the run goes on (skip_bad: counted in bad), or
 * -1 when it must stop. */
int jsonl_inputs_reject(jsonl_inputs *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Report "prog:WHERE: <fmt>" for the last record, and nothing else. */
void jsonl_inputs_report(jsonl_inputs *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Where the last record came from (see jsonl_reader_where). Borrowed. */
const char *jsonl_inputs_where(jsonl_inputs *in);

void jsonl_inputs_close(jsonl_inputs *in);

/* Parse one line s[0..n) (borrowed) as a record: valid UTF-8, strict JSON
 * (see jsoncheck.h), an object. Returns the owned object, or jv_invalid()
 * with the reason written into err[0..errlen). */
jv jsonl_parse(const char *s, size_t n, char *err, size_t errlen);

/* Write rec (consumed) to f as one compact line. Returns 0, or -1 with
 * errno set. */
int jsonl_write(FILE *f, jv rec);

/* Helpers for reading fields. All borrow rec (nothing is consumed).
 * jsonl_get_string: the string at key, or NULL when absent or not a string;
 * the pointer lives as long as rec does. */
const char *jsonl_get_string(jv rec, const char *key);

#endif
