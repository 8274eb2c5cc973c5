/* codejudge.h — judge a program by running it on its tests (ds-judge).
 *
 * The semantics are the APPS / TACO harness's (testing_util.py), rewritten:
 *  - standard-input cases: the input is a string, or a list of lines
 *    joined by newlines; the program's output matches when, line by line
 *    with whitespace stripped and empty lines dropped, it equals the
 *    expected output; failing that, when the lines split into the same
 *    whitespace-separated tokens; failing that, when the tokens agree and
 *    every token that differs is a pair of numbers, not both integers,
 *    within 1e-5 relative or 1e-8 absolute (APPS's np.allclose). Integers
 *    get no tolerance: 1000000 and 1000001 differ.
 *  - call-based cases (the tests have "fn_name"): the function, or the
 *    method of Solution() when the code defines that class, is called
 *    with the case's inputs as its arguments, by the Python driver
 *    share/judge/call.py; the result matches the expected output or, when
 *    that is a one-element list, its element.
 * Each case runs in its own sandbox (sandbox.h). The program is Python.
 */
#ifndef DS_CODEJUDGE_H
#define DS_CODEJUDGE_H

#include "sandbox.h"

#include <jv.h>
#include <stddef.h>

/* The last fenced code block (``` or ```python, ```py, ```python3) in
 * text; blocks fenced for another language are passed over. A block cut
 * short at the end of text counts. Borrows text; returns owned (free with
 * free()), or NULL when there is none. */
char *codejudge_extract(const char *text);

/* Whether a program's standard output got[0..n) matches want (borrowed),
 * by the rules above. */
int codejudge_output_equal(const char *got, size_t n, const char *want);

/* A record's tests, parsed. */
struct codejudge_tests {
	int n;          /* cases */
	char *fn_name;  /* owned; NULL: standard-input cases */
	char **input;   /* n owned strings: stdin text, or (call) the JSON array of arguments */
	char **output;  /* n owned strings: expected stdout, or (call) the JSON of the result */
};

/* Parse tests (consumed): an object {"inputs", "outputs", "fn_name"?} or a
 * JSON string holding one (APPS stores input_output as a string). Returns
 * 0, or -1 with *err an owned message (free with free()). */
int codejudge_tests_parse(jv tests, struct codejudge_tests *t, char **err);
void codejudge_tests_free(struct codejudge_tests *t);

enum codejudge_status {
	CJ_PASS,
	CJ_WRONG,         /* ran, wrong output */
	CJ_COMPILE_ERROR, /* the code does not compile */
	CJ_RUNTIME_ERROR, /* an exception, an exit status, a signal */
	CJ_TIMEOUT,       /* wall clock or CPU time */
	CJ_MEMORY,        /* MemoryError under the memory limit */
	CJ_OUTPUT_LIMIT,  /* wrote more than the output cap */
	CJ_SANDBOX_ERROR, /* could not run it at all: our fault, not the code's */
	CJ_NOT_RUN,       /* skipped after an earlier case failed */
	CJ_N_STATUS
};

/* "pass", "wrong answer", "compile error", ... (static). */
const char *codejudge_status_name(enum codejudge_status s);

struct codejudge_case_result {
	enum codejudge_status status;
	char *detail;   /* owned; NULL for a pass: what went wrong, one line */
	double wall_s;
};

struct codejudge_opts {
	const char *python;   /* absolute path of the interpreter (borrowed) */
	const char *driver;   /* the text of share/judge/call.py (borrowed) */
	struct sandbox_limits limits;
	int jobs;             /* cases run at once */
	int all_cases;        /* run every case even after one fails (--explain) */
};

/* Run code (borrowed) on every case of t (borrowed). Fills res[0..t->n)
 * (the caller frees each detail); returns the index of the first case
 * that did not pass, or -1 when all passed. */
int codejudge_run(const char *code, const struct codejudge_tests *t, const struct codejudge_opts *o,
		  struct codejudge_case_result *res);

#endif
