/* json.h — JSON text to libjq's jv and back, strictly and fast.
 *
 * jv is the data model of every record (jq's own values, so records behave
 * as in `jq`), but libjq 1.6's text layer does not do for bulk JSONL: its
 * parser accepts text that is not JSON (`01`, `nan`, `1.`, `.5`), replaces
 * invalid UTF-8 silently, and leaks on some syntax errors; parser and
 * dumper run at about 140 and 100 MB/s. These read and write the same
 * values per RFC 8259, and write byte for byte what `jq -c .` writes.
 */
#ifndef DS_JSON_H
#define DS_JSON_H

#include <jv.h>
#include <stddef.h>

/* Deepest nesting accepted (jq 1.6's own limit, so what we write jq reads). */
#define JSON_MAX_DEPTH 256

/* Parse s[0..n) (borrowed; need not be NUL-terminated), which must be
 * exactly one JSON value with optional white space around it, in valid
 * UTF-8. Returns an owned jv; on an error, jv_invalid() with *at the byte
 * offset of the problem and *why (static) saying what it is. */
jv json_parse(const char *s, size_t n, size_t *at, const char **why);

/* json_parse for a server's metadata (file sizes, row counts): a whole
 * number beyond +-2^53, which a jv double would round, is kept as a
 * string of its digits instead, to be read with json_count_exact. Not for
 * records: it changes the type of such values. */
jv json_parse_exact(const char *s, size_t n, size_t *at, const char **why);

/* A growable byte buffer for json_dump. */
typedef struct jbuf {
	char *p;
	size_t n, cap;
} jbuf;

/* Append the compact JSON text of v (borrowed, not consumed) to b. */
void json_dump(jbuf *b, jv v);

/* Append s[0..k) to b, which stays NUL-terminated (allocated even when k is 0). */
void jbuf_put(jbuf *b, const char *s, size_t k);

void jbuf_free(jbuf *b);

/* v (borrowed) as a count: a whole number from 0 to 2^53, or -1 when it
 * is anything else (not a number, negative, fractional, huge, infinite),
 * so that a server's odd reply never reaches a cast it would overflow. */
long long json_count(jv v);

/* json_count, or for a string of decimal digits (what json_parse_exact
 * makes of a big integer) its exact value up to INT64_MAX; -1 otherwise.
 * Borrows v. */
long long json_count_exact(jv v);

#endif
