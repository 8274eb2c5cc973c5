/* check.c — allocation and errno checks that exit on failure. */
#include "check.h"
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void check_fail_errno(const char *file, int line, const char *what)
{
	int e = errno;
	fprintf(stderr, "%s: %s:%d: %s: %s\n", cli_prog, file, line, what, strerror(e));
	cli_exit(1);
}

static void *oom(size_t n)
{
	fprintf(stderr, "%s: out of memory (asked for %zu bytes)\n", cli_prog, n);
	cli_exit(1);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : oom(n);
}

void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	return p ? p : oom(count * size);
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	return q ? q : oom(n);
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? oom(strlen(fmt)) : s;
}
