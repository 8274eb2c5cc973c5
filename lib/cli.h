/* cli.h — what every ds program does the same way (DESIGN.md §4).
 *
 * Diagnostics go to stderr as "prog: reason"; stdout carries data only.
 * Exit status: 0 success, 1 runtime error, 2 usage error. SIGPIPE keeps its
 * default action, so a program whose reader went away (`| head`) ends
 * quietly instead of reporting a write error.
 */
#ifndef DS_CLI_H
#define DS_CLI_H

#include <stdarg.h>
#include <stdio.h>

#define DS_VERSION "0.1.0"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* The running program's name, for messages. Set by cli_init; borrowed. */
extern const char *cli_prog;

/* Call first in main: names the program, restores SIGPIPE's default. */
void cli_init(const char *prog);

/* "--version": prints "prog (ds) VERSION" to stdout. */
void cli_version(void);

/* "prog: <fmt>" to stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_vwarn(const char *fmt, va_list ap);

/* Flush every stdio stream and end the process now, without atexit
 * handlers: a fatal error does not tidy up (and LeakSanitizer, an atexit
 * handler, does not report what a dying process still holds). */
void cli_exit(int status) __attribute__((noreturn));

/* "prog: <fmt>" to stderr, then cli_exit(status). */
void cli_die(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* A usage error: "prog: <fmt>", the usage text, exit 2. usage borrowed. */
void cli_usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* Flush and close stdout, and exit 1 with a message if any write failed
 * (a full disk is an error, not a success). Call before returning 0. */
void cli_close_stdout(void);

/* Exit 2 with a message unless stdout is not a terminal: for programs whose
 * output is binary. */
void cli_refuse_tty_stdout(void);

/* A program whose issue is not done yet: say so and exit 2. */
void cli_placeholder(int issue, const char *what) __attribute__((noreturn));

/* Path of a data file under share/ (e.g. "prompts/math.txt"): $DS_SHARE,
 * then ../share beside the executable (a build tree), then the installed
 * DS_SHARE_DIR. Returns owned (free with free()), or NULL when not found. */
char *cli_share_path(const char *rel);

/* The whole of a small file the user named (a template, a key, a preset),
 * NUL-terminated. Returns owned (free with free()), or NULL with errno set
 * when it cannot be read. */
char *cli_read_file(const char *path);

/* The getopt_long entries every program has. */
#define CLI_LONGOPTS_COMMON {"help", 0, 0, 'h'}, {"version", 0, 0, 'V'}

#endif
