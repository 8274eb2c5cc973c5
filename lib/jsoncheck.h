/* jsoncheck.h — strict JSON syntax check (RFC 8259), before libjq sees it.
 *
 * libjq 1.6 accepts text that is not JSON (`01`, `nan`, `1.`, `.5`) and
 * leaks memory on some syntax errors, so every line is checked here first:
 * libjq only ever parses valid JSON.
 */
#ifndef DS_JSONCHECK_H
#define DS_JSONCHECK_H

#include <stddef.h>

/* Deepest nesting accepted; libjq 1.6 refuses deeper (its own limit). */
#define JSONCHECK_MAX_DEPTH 256

/* Check that s[0..n) is exactly one JSON value with optional white space
 * around it. Returns n when it is, else the offset of the first byte that
 * is wrong, with *why (a static string) saying what is wrong. Borrows
 * s; s need not be NUL-terminated. Does not check UTF-8 (see utf8.h). */
size_t json_check(const char *s, size_t n, const char **why);

#endif
