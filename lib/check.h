/* check.h — fail loudly, with file and line, when a call that can fail does.
 *
 * Every diagnostic goes to stderr as "prog: context: reason" (see cli.h for
 * the program name). These are for failures the program cannot recover from:
 * out of memory, an fwrite to a closed file. Input errors that the user can
 * fix are reported with cli_die() instead, without source positions.
 */
#ifndef DS_CHECK_H
#define DS_CHECK_H

#include <stddef.h>

/* Report "prog: FILE:LINE: what: strerror(errno)" and exit 1. */
void check_fail_errno(const char *file, int line, const char *what);

/* CHECK_ERRNO(expr): expr is a libc call that returns non-zero (or -1) and
 * sets errno on failure. */
#define CHECK_ERRNO(expr)                                                     \
	do {                                                                  \
		if ((expr) != 0) check_fail_errno(__FILE__, __LINE__, #expr); \
	} while (0)

/* Allocation that cannot fail: on exhaustion, report and exit 1.
 * All return owned memory; caller frees with free(). */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n); /* consumes p (as realloc) */
char *xstrdup(const char *s);      /* borrows s */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
