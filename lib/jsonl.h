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
