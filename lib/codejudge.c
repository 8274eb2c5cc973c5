/* codejudge.c — judge a program by running it on its tests (see codejudge.h). */
#include "codejudge.h"
#include "check.h"
#include "json.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- extraction ------------------------------------------------------------ */

/* Whether a fence's info string names Python (or nothing). */
static int python_info(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t')) s++;
	const char *w = s;
	while (s < end && !isspace((unsigned char)*s) && *s != '{') s++;
	size_t n = (size_t)(s - w);
	static const char *const names[] = {"python", "py", "python3", "py3"};
	if (n == 0) return 1;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strlen(names[i]) == n && strncasecmp(w, names[i], n) == 0) return 1;
	return 0;
}

/* Backticks that open or close a fence at line start (after up to three
 * spaces): their count, else 0. */
static size_t fence_len(const char *line, const char *end)
{
	const char *p = line;
	while (p < end && p - line < 3 && *p == ' ') p++;
	size_t n = 0;
	while (p + n < end && p[n] == '`') n++;
	return n >= 3 ? n : 0;
}

char *codejudge_extract(const char *text)
{
	const char *best = NULL, *best_end = NULL, *p = text, *end = text + strlen(text);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol) eol = end;
		size_t n = fence_len(p, eol);
		if (!n) {
			p = eol + (eol < end);
			continue;
		}
		const char *info = memchr(p, '`', (size_t)(eol - p)) + n;
		int wanted = python_info(info, eol) && !memchr(info, '`', (size_t)(eol - info));
		const char *body = eol + (eol < end), *q = body, *body_end = end;
		p = end;
		while (q < end) { /* the closing fence: as many backticks or more, and nothing else */
			const char *qe = memchr(q, '\n', (size_t)(end - q));
			if (!qe) qe = end;
			size_t m = fence_len(q, qe);
			if (m >= n) {
				const char *r = memchr(q, '`', (size_t)(qe - q)) + m;
				while (r < qe && isspace((unsigned char)*r)) r++;
				if (r == qe) {
					body_end = q;
					p = qe + (qe < end);
					break;
				}
			}
			q = qe + (qe < end);
		}
		if (wanted) best = body, best_end = body_end;
	}
	if (!best) return NULL;
	size_t len = (size_t)(best_end - best);
	char *s = xmalloc(len + 1);
	memcpy(s, best, len);
	s[len] = 0;
	return s;
}

/* ---- comparing standard output ------------------------------------------------ */

/* The non-empty lines of s[0..n), each stripped of white space, as
 * [start, end) pairs in *spans (owned, 2 per line). Returns the count. */
static size_t strip_lines(const char *s, size_t n, const char ***spans)
{
	size_t cap = 16, k = 0;
	const char **sp = xmalloc(cap * 2 * sizeof *sp);
	const char *p = s, *end = s + n;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol) eol = end;
		const char *a = p, *b = eol;
		while (a < b && isspace((unsigned char)*a)) a++;
		while (b > a && isspace((unsigned char)b[-1])) b--;
		if (a < b) {
			if (k == cap) sp = xrealloc(sp, (cap *= 2) * 2 * sizeof *sp);
			sp[2 * k] = a, sp[2 * k + 1] = b, k++;
		}
		p = eol + 1;
	}
	*spans = sp;
	return k;
}

static int is_integer(const char *a, size_t n)
{
	size_t i = a[0] == '-' || a[0] == '+';
	if (i == n) return 0;
	for (; i < n; i++)
		if (!isdigit((unsigned char)a[i])) return 0;
	return 1;
}

/* A whole token as a finite number. */
static int as_number(const char *a, size_t n, double *x)
{
	char buf[64], *e;
	if (n == 0 || n >= sizeof buf) return 0;
	memcpy(buf, a, n);
	buf[n] = 0;
	*x = strtod(buf, &e);
	return e == buf + n && isfinite(*x) && !isalpha((unsigned char)buf[0]);
}

/* Tokens a[0..an) and b[0..bn) are equal, or both numbers, not both
 * integers, within np.allclose's default tolerance (b the expected). */
static int token_close(const char *a, size_t an, const char *b, size_t bn, int tolerant)
{
	if (an == bn && memcmp(a, b, an) == 0) return 1;
	double x, y;
	if (!tolerant || (is_integer(a, an) && is_integer(b, bn))) return 0;
	if (!as_number(a, an, &x) || !as_number(b, bn, &y)) return 0;
	return fabs(x - y) <= 1e-8 + 1e-5 * fabs(y);
}

static const char *next_token(const char *p, const char *end, const char **tok_end)
{
	while (p < end && isspace((unsigned char)*p)) p++;
	const char *t = p;
	while (p < end && !isspace((unsigned char)*p)) p++;
	*tok_end = p;
	return t;
}

/* Lines [a0, a1) and [b0, b1) as token lists. */
static int line_tokens_equal(const char *a0, const char *a1, const char *b0, const char *b1, int tolerant)
{
	for (;;) {
		const char *ae, *be;
		const char *a = next_token(a0, a1, &ae), *b = next_token(b0, b1, &be);
		if (a == ae || b == be) return a == ae && b == be;
		if (!token_close(a, (size_t)(ae - a), b, (size_t)(be - b), tolerant)) return 0;
		a0 = ae, b0 = be;
	}
}

/* The index of the first line that differs (pass 0: as text; 1: as
 * tokens; 2: as tokens with float tolerance), or -1 when none does. */
static long first_difference(const char **g, size_t ng, const char **w, size_t nw, int pass)
{
	size_t n = ng < nw ? ng : nw;
	for (size_t i = 0; i < n; i++) {
		const char *a0 = g[2 * i], *a1 = g[2 * i + 1], *b0 = w[2 * i], *b1 = w[2 * i + 1];
		int same = pass == 0 ? a1 - a0 == b1 - b0 && memcmp(a0, b0, (size_t)(a1 - a0)) == 0
				     : line_tokens_equal(a0, a1, b0, b1, pass == 2);
		if (!same) return (long)i;
	}
	return ng == nw ? -1 : (long)n;
}

/* Compare; on a mismatch and with detail, say where (owned). */
static int output_compare(const char *got, size_t n, const char *want, char **detail);

int codejudge_output_equal(const char *got, size_t n, const char *want)
{
	return output_compare(got, n, want, NULL);
}

static void jb_puts(jbuf *b, const char *s)
{
	size_t k = strlen(s);
	if (b->n + k + 1 > b->cap) b->p = xrealloc(b->p, b->cap = (b->n + k + 1) * 2);
	memcpy(b->p + b->n, s, k + 1);
	b->n += k;
}

/* Append s[0..n) to b quoted, control characters escaped, cut at max bytes. */
static void quote(jbuf *b, const char *s, size_t n, size_t max)
{
	char tmp[8];
	size_t used = 0;
	for (size_t i = 0; i < n && used < max; i++, used++) {
		unsigned char c = (unsigned char)s[i];
		const char *piece = tmp;
		if (c == '"' || c == '\\') snprintf(tmp, sizeof tmp, "\\%c", c);
		else if (c == '\n') piece = "\\n";
		else if (c == '\t') piece = "\\t";
		else if (c < 0x20 || c == 0x7f) snprintf(tmp, sizeof tmp, "\\x%02x", c);
		else tmp[0] = (char)c, tmp[1] = 0;
		size_t k = strlen(piece);
		if (b->n + k + 8 > b->cap) {
			b->cap = (b->cap + k + 8) * 2;
			b->p = xrealloc(b->p, b->cap);
		}
		memcpy(b->p + b->n, piece, k);
		b->n += k;
	}
	if (b->n + 1 > b->cap) b->p = xrealloc(b->p, b->cap = b->n + 64);
	b->p[b->n] = 0;
	jb_puts(b, used < n ? "\"..." : "\"");
}

static int output_compare(const char *got, size_t n, const char *want, char **detail)
{
	const char **g, **w;
	size_t ng = strip_lines(got, n, &g), nw = strip_lines(want, strlen(want), &w);
	long d = first_difference(g, ng, w, nw, 0);
	if (d >= 0) d = first_difference(g, ng, w, nw, 1);
	if (d >= 0) d = first_difference(g, ng, w, nw, 2);
	if (d >= 0 && detail) {
		jbuf b = {0};
		char head[64];
		if ((size_t)d < ng && (size_t)d < nw) {
			snprintf(head, sizeof head, "line %ld: expected \"", d + 1);
			jb_puts(&b, head);
			quote(&b, w[2 * d], (size_t)(w[2 * d + 1] - w[2 * d]), 60);
			jb_puts(&b, ", got \"");
			quote(&b, g[2 * d], (size_t)(g[2 * d + 1] - g[2 * d]), 60);
		} else {
			snprintf(head, sizeof head, "expected %zu line%s, got %zu", nw, nw == 1 ? "" : "s", ng);
			jb_puts(&b, head);
			if (ng > nw) {
				jb_puts(&b, "; line ");
				snprintf(head, sizeof head, "%ld: \"", d + 1);
				jb_puts(&b, head);
				quote(&b, g[2 * d], (size_t)(g[2 * d + 1] - g[2 * d]), 60);
			}
		}
		*detail = b.p;
	}
	free(g);
	free(w);
	return d < 0;
}

/* ---- tests ------------------------------------------------------------------ */

static char *dump(jv v)
{
	jbuf b = {0};
	json_dump(&b, v);
	char *s = xmalloc(b.n + 1);
	memcpy(s, b.p, b.n);
	s[b.n] = 0;
	jbuf_free(&b);
	return s;
}

/* A standard-input case's text: a string, or lines joined by newlines.
 * Borrows v; returns owned, or NULL when it is neither. */
static char *stdin_text(jv v)
{
	if (jv_get_kind(v) == JV_KIND_STRING) return xstrdup(jv_string_value(v));
	if (jv_get_kind(v) != JV_KIND_ARRAY) return NULL;
	jbuf b = {0};
	jb_puts(&b, "");
	int n = jv_array_length(jv_copy(v));
	for (int i = 0; i < n; i++) {
		jv e = jv_array_get(jv_copy(v), i);
		if (jv_get_kind(e) != JV_KIND_STRING) {
			jv_free(e);
			free(b.p);
			return NULL;
		}
		if (i) jb_puts(&b, "\n");
		jb_puts(&b, jv_string_value(e));
		jv_free(e);
	}
	return b.p;
}

static int tests_fail(struct codejudge_tests *t, char **err, const char *msg, jv tests)
{
	jv_free(tests);
	codejudge_tests_free(t);
	*err = xstrdup(msg);
	return -1;
}

int codejudge_tests_parse(jv tests, struct codejudge_tests *t, char **err)
{
	memset(t, 0, sizeof *t);
	*err = NULL;
	if (jv_get_kind(tests) == JV_KIND_STRING) {
		size_t at;
		const char *why;
		jv p = json_parse(jv_string_value(tests), (size_t)jv_string_length_bytes(jv_copy(tests)), &at, &why);
		jv_free(tests);
		if (!jv_is_valid(p)) {
			jv_free(p);
			*err = xstrdup("\"tests\" is a string that does not hold JSON");
			return -1;
		}
		tests = p;
	}
	if (jv_get_kind(tests) != JV_KIND_OBJECT)
		return tests_fail(t, err, "no usable \"tests\" (an object with \"inputs\" and \"outputs\")", tests);
	jv in = jv_object_get(jv_copy(tests), jv_string("inputs"));
	jv out = jv_object_get(jv_copy(tests), jv_string("outputs"));
	jv fn = jv_object_get(jv_copy(tests), jv_string("fn_name"));
	const char *msg = NULL;
	if (jv_get_kind(in) != JV_KIND_ARRAY || jv_get_kind(out) != JV_KIND_ARRAY)
		msg = "\"tests\" has no \"inputs\" and \"outputs\" arrays";
	else if (jv_array_length(jv_copy(in)) != jv_array_length(jv_copy(out)))
		msg = "\"tests\" has not as many outputs as inputs";
	else if (jv_array_length(jv_copy(in)) == 0)
		msg = "\"tests\" has no cases";
	else if (jv_get_kind(fn) != JV_KIND_NULL && jv_get_kind(fn) != JV_KIND_INVALID &&
		 (jv_get_kind(fn) != JV_KIND_STRING || !*jv_string_value(fn)))
		msg = "\"tests\".fn_name is not a name";
	if (!msg) {
		t->n = jv_array_length(jv_copy(in));
		t->input = xcalloc((size_t)t->n, sizeof *t->input);
		t->output = xcalloc((size_t)t->n, sizeof *t->output);
		if (jv_get_kind(fn) == JV_KIND_STRING) t->fn_name = xstrdup(jv_string_value(fn));
		for (int i = 0; i < t->n && !msg; i++) {
			jv a = jv_array_get(jv_copy(in), i), b = jv_array_get(jv_copy(out), i);
			if (t->fn_name) {
				/* the arguments: a list, else one argument */
				if (jv_get_kind(a) != JV_KIND_ARRAY) a = jv_array_append(jv_array(), a);
				t->input[i] = dump(a);
				t->output[i] = dump(b);
			} else {
				t->input[i] = stdin_text(a);
				t->output[i] = stdin_text(b);
				if (!t->input[i] || !t->output[i])
					msg = "a standard-input case is not a string or a list of strings";
			}
			jv_free(a);
			jv_free(b);
		}
	}
	jv_free(in);
	jv_free(out);
	jv_free(fn);
	if (msg) return tests_fail(t, err, msg, tests);
	jv_free(tests);
	return 0;
}

void codejudge_tests_free(struct codejudge_tests *t)
{
	for (int i = 0; t->input && i < t->n; i++) free(t->input[i]);
	for (int i = 0; t->output && i < t->n; i++) free(t->output[i]);
	free(t->input);
	free(t->output);
	free(t->fn_name);
	memset(t, 0, sizeof *t);
}

/* ---- one case ----------------------------------------------------------------- */

static const char *const status_names[CJ_N_STATUS] = {
	"pass",         "wrong answer",    "compile error", "runtime error", "timeout",
	"memory limit", "output limit", "sandbox error", "not run",
};

const char *codejudge_status_name(enum codejudge_status s)
{
	return s < CJ_N_STATUS ? status_names[s] : "?";
}

/* The driver prints its verdict on a line of its own after this. */
#define RESULT_MARK "\x1e" "ds-judge-result "
/* ... and exits with these when the code does not compile, or lacks the
 * function. */
enum { DRIVER_COMPILE_ERROR = 3, DRIVER_NO_FUNCTION = 4 };

/* The last non-empty line of s[0..n), owned, cut at 200 bytes. */
static char *last_line(const char *s, size_t n)
{
	while (n && isspace((unsigned char)s[n - 1])) n--;
	size_t a = n;
	while (a && s[a - 1] != '\n') a--;
	size_t len = n - a > 200 ? 200 : n - a;
	char *r = xmalloc(len + 1);
	memcpy(r, s + a, len);
	r[len] = 0;
	return r;
}

/* Python's report of a syntax error in the script it was asked to run: no
 * traceback header, and a last line naming the error. With the line number
 * from the 'File "...", line N' above it. */
static char *syntax_error(const char *err, size_t n)
{
	if (strstr(err, "Traceback (most recent call last):")) return NULL;
	char *last = last_line(err, n);
	if (strncmp(last, "SyntaxError", 11) && strncmp(last, "IndentationError", 16) && strncmp(last, "TabError", 8)) {
		free(last);
		return NULL;
	}
	const char *l = strstr(err, "\", line ");
	if (l) {
		char *r = xmalloc(strlen(last) + 32);
		sprintf(r, "%s (line %d)", last, atoi(l + 8));
		free(last);
		return r;
	}
	return last;
}

static void run_case(const char *code, const struct codejudge_tests *t, int i, const struct codejudge_opts *o,
		     struct codejudge_case_result *r)
{
	struct sandbox_file files[2];
	const char *argv[4] = {o->python, "-I", NULL, NULL};
	struct sandbox_spec spec = {.argv = argv, .files = files, .limits = o->limits};
	char *request = NULL;
	if (t->fn_name) {
		jbuf b = {0};
		jv fn = jv_string(t->fn_name);
		jb_puts(&b, "{\"fn_name\":");
		json_dump(&b, fn);
		jv_free(fn);
		jb_puts(&b, ",\"inputs\":");
		jb_puts(&b, t->input[i]);
		jb_puts(&b, ",\"expected\":");
		jb_puts(&b, t->output[i]);
		jb_puts(&b, "}");
		request = b.p;
		files[0] = (struct sandbox_file){"solution.py", code, strlen(code)};
		files[1] = (struct sandbox_file){"call.py", o->driver, strlen(o->driver)};
		spec.n_files = 2;
		argv[2] = "call.py";
		spec.stdin_data = request;
		spec.stdin_len = strlen(request);
	} else {
		files[0] = (struct sandbox_file){"main.py", code, strlen(code)};
		spec.n_files = 1;
		argv[2] = "main.py";
		spec.stdin_data = t->input[i];
		spec.stdin_len = strlen(t->input[i]);
		/* room for the expected output and then some, never less than 1 MiB */
		size_t want = strlen(t->output[i]) * 2 + (1u << 20);
		if (want < spec.limits.stdout_cap) spec.limits.stdout_cap = want;
	}
	struct sandbox_result sr;
	char buf[200];
	sandbox_run(&spec, &sr);
	r->wall_s = sr.wall_s;
	r->detail = NULL;
	switch (sr.status) {
	case SANDBOX_FAILED:
		r->status = CJ_SANDBOX_ERROR;
		r->detail = xstrdup(sr.error);
		break;
	case SANDBOX_TIMEOUT:
	case SANDBOX_CPU_LIMIT:
		r->status = CJ_TIMEOUT;
		r->detail = xstrdup(sandbox_status_text(&sr, &spec.limits, buf, sizeof buf));
		break;
	case SANDBOX_OUTPUT_LIMIT:
		r->status = CJ_OUTPUT_LIMIT;
		snprintf(buf, sizeof buf, "more than %zu bytes of output", spec.limits.stdout_cap);
		r->detail = xstrdup(buf);
		break;
	case SANDBOX_SIGNALED:
		r->status = CJ_RUNTIME_ERROR;
		r->detail = xstrdup(sandbox_status_text(&sr, &spec.limits, buf, sizeof buf));
		break;
	case SANDBOX_EXITED: {
		char *last = last_line(sr.err, sr.err_len);
		char *syn = NULL;
		if (sr.exit_code != 0 && strncmp(last, "MemoryError", 11) == 0) {
			r->status = CJ_MEMORY;
			snprintf(buf, sizeof buf, "MemoryError (limit %ld MiB)", spec.limits.mem_bytes >> 20);
			r->detail = xstrdup(buf);
		} else if (t->fn_name && sr.exit_code == DRIVER_COMPILE_ERROR) {
			r->status = CJ_COMPILE_ERROR;
			r->detail = last, last = NULL;
		} else if (t->fn_name && sr.exit_code == DRIVER_NO_FUNCTION) {
			r->status = CJ_RUNTIME_ERROR;
			r->detail = last, last = NULL;
		} else if (!t->fn_name && sr.exit_code != 0 && (syn = syntax_error(sr.err, sr.err_len))) {
			r->status = CJ_COMPILE_ERROR;
			r->detail = syn;
		} else if (sr.exit_code != 0) {
			r->status = CJ_RUNTIME_ERROR;
			if (*last) r->detail = last, last = NULL;
			else snprintf(buf, sizeof buf, "exit status %d", sr.exit_code), r->detail = xstrdup(buf);
		} else if (t->fn_name) {
			/* the driver's verdict: the last mark in its output */
			const char *m = NULL, *p = sr.out;
			while ((p = memmem(p, sr.out_len - (size_t)(p - sr.out), RESULT_MARK, sizeof RESULT_MARK - 1)))
				m = p, p += sizeof RESULT_MARK - 1;
			if (!m) {
				r->status = CJ_RUNTIME_ERROR;
				r->detail = xstrdup("exited before returning a result");
			} else {
				m += sizeof RESULT_MARK - 1;
				char *line = last_line(m, strcspn(m, "\n"));
				r->status = strncmp(line, "pass", 4) == 0 ? CJ_PASS : CJ_WRONG;
				if (r->status == CJ_WRONG) {
					jbuf b = {0};
					jb_puts(&b, "expected ");
					jb_puts(&b, strlen(t->output[i]) > 80 ? "(long)" : t->output[i]);
					jb_puts(&b, ", got ");
					jb_puts(&b, line + 5);
					r->detail = b.p;
				}
				free(line);
			}
		} else {
			r->status = output_compare(sr.out, sr.out_len, t->output[i], &r->detail) ? CJ_PASS : CJ_WRONG;
		}
		free(last);
		break;
	}
	}
	sandbox_result_free(&sr);
	free(request);
}

/* ---- every case ------------------------------------------------------------------ */

struct pool {
	const char *code;
	const struct codejudge_tests *t;
	const struct codejudge_opts *o;
	struct codejudge_case_result *res;
	pthread_mutex_t mu;
	int next, first_fail;
};

static void *worker(void *arg)
{
	struct pool *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		int i = p->next++;
		int stop = i >= p->t->n || (!p->o->all_cases && p->first_fail >= 0 && i > p->first_fail);
		pthread_mutex_unlock(&p->mu);
		if (i >= p->t->n) break;
		if (stop) continue; /* stays "not run" */
		run_case(p->code, p->t, i, p->o, &p->res[i]);
		if (p->res[i].status != CJ_PASS) {
			pthread_mutex_lock(&p->mu);
			if (p->first_fail < 0 || i < p->first_fail) p->first_fail = i;
			pthread_mutex_unlock(&p->mu);
		}
	}
	return NULL;
}

int codejudge_run(const char *code, const struct codejudge_tests *t, const struct codejudge_opts *o,
		  struct codejudge_case_result *res)
{
	struct pool p = {code, t, o, res, PTHREAD_MUTEX_INITIALIZER, 0, -1};
	for (int i = 0; i < t->n; i++) res[i] = (struct codejudge_case_result){CJ_NOT_RUN, NULL, 0};
	int jobs = o->jobs < 1 ? 1 : o->jobs > t->n ? t->n : o->jobs;
	pthread_t th[64];
	if (jobs > 64) jobs = 64;
	int started = 0;
	for (int k = 1; k < jobs; k++) {
		if (pthread_create(&th[started], NULL, worker, &p) != 0) break;
		started++;
	}
	worker(&p);
	for (int k = 0; k < started; k++) pthread_join(th[k], NULL);
	pthread_mutex_destroy(&p.mu);
	for (int i = 0; i < t->n; i++)
		if (res[i].status != CJ_PASS) return i;
	return -1;
}
