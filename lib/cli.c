/* cli.c — program name, messages, exit codes, stdout closing, share/ lookup;
 * it links in ompenv.c, passive OpenMP waiting. */
#include "cli.h"
#include "check.h"
#include "ompenv.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DS_SHARE_DIR
#define DS_SHARE_DIR "/usr/local/share/ds"
#endif

const char *cli_prog = "ds";

/* Every program calls cli_init, so this reference links ompenv.o (passive
 * OpenMP waiting, decided before main) into every program. */
static void (*const *const cli_links[])(int, char **, char **)
	__attribute__((used)) = {&ompenv_preinit};

void cli_init(const char *prog)
{
	cli_prog = prog;
	/* A parent (Python's subprocess, some CI runners) may leave SIGPIPE
	 * ignored; we want `| head` to end us quietly, as it ends cat. */
	signal(SIGPIPE, SIG_DFL);
}

void cli_version(void)
{
	printf("%s (ds) %s\n", cli_prog, DS_VERSION);
}

void cli_vwarn(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", cli_prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vwarn(fmt, ap);
	va_end(ap);
}

void cli_exit(int status)
{
	fflush(NULL);
	_exit(status);
}

void cli_die(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vwarn(fmt, ap);
	va_end(ap);
	cli_exit(status);
}

void cli_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vwarn(fmt, ap);
	va_end(ap);
	fputs(usage, stderr);
	fprintf(stderr, "Try '%s --help' for more information.\n", cli_prog);
	cli_exit(EXIT_USAGE);
}

void cli_close_stdout(void)
{
	int bad = fflush(stdout) != 0 || ferror(stdout);
	int e = errno;
	if (fclose(stdout) != 0 && !bad) {
		bad = 1;
		e = errno;
	}
	if (bad) {
		if (e == EPIPE) /* reader went away with SIGPIPE ignored by us */
			exit(EXIT_RUNTIME);
		cli_die(EXIT_RUNTIME, "write error on standard output: %s", strerror(e));
	}
}

void cli_refuse_tty_stdout(void)
{
	if (isatty(STDOUT_FILENO))
		cli_die(EXIT_USAGE, "refusing to write binary data to a terminal; "
				    "redirect standard output");
}

void cli_placeholder(int issue, const char *what)
{
	fprintf(stderr,
		"%s: placeholder: %s is not built yet (issue #%d); "
		"this binary does nothing and exits 2\n",
		cli_prog, what, issue);
	exit(EXIT_USAGE);
}

char *cli_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) return NULL;
	char *s = NULL;
	size_t n = 0, cap = 0, k;
	char buf[65536];
	while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
		if (n + k + 1 > cap) s = xrealloc(s, cap = (n + k + 1) * 2);
		memcpy(s + n, buf, k);
		n += k;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(s);
		errno = EIO;
		return NULL;
	}
	if (!s) s = xcalloc(1, 1);
	s[n] = '\0';
	return s;
}

static char *join(const char *dir, const char *rel)
{
	size_t n = strlen(dir) + strlen(rel) + 2;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%s", dir, rel);
	return p;
}

static char *existing(char *path)
{
	if (path && access(path, R_OK) == 0) return path;
	free(path);
	return NULL;
}

char *cli_share_path(const char *rel)
{
	char *p;
	const char *env = getenv("DS_SHARE");
	if (env && *env && (p = existing(join(env, rel)))) return p;

	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char *dir = join(exe, "../share");
			p = existing(join(dir, rel));
			free(dir);
			if (p) return p;
		}
	}
	return existing(join(DS_SHARE_DIR, rel));
}
