/* mathans.c — final answers of math problems: extract, normalise, compare.
 *
 * Sections: a growing string; extraction; normalisation; expressions
 * (evaluated while parsed, exactly as rationals where they can be and at
 * K fixed points always); answers (tuples, intervals, sets); comparison.
 */
#include "mathans.h"
#include "check.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing string -------------------------------------------------- */

typedef struct {
	char *p;
	size_t n, cap;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_putc(sbuf *b, char c) { sb_putn(b, &c, 1); }

static char *sb_take(sbuf *b)
{
	if (!b->p) return xstrdup("");
	return b->p;
}

/* ---- extraction --------------------------------------------------------- */

static char *xstrndup(const char *s, size_t n)
{
	char *t = xmalloc(n + 1);
	memcpy(t, s, n);
	t[n] = '\0';
	return t;
}

/* The end of the brace group that opens at s[i] == '{': the index of its
 * closing brace, or -1 when it never closes. \{ and \} do not count. */
static long brace_end(const char *s, size_t i)
{
	int depth = 0;
	for (size_t j = i; s[j]; j++) {
		if (s[j] == '\\' && s[j + 1]) {
			j++;
			continue;
		}
		if (s[j] == '{') depth++;
		else if (s[j] == '}' && --depth == 0) return (long)j;
	}
	return -1;
}

/* The content of the box at p ("\\boxed" or "\\fbox" skipped), or NULL. */
static char *box_at(const char *p)
{
	while (*p == ' ') p++;
	if (*p == '{') {
		long e = brace_end(p, 0);
		return e > 0 ? xstrndup(p + 1, (size_t)e - 1) : NULL;
	}
	if (*p && !isalpha((unsigned char)*p)) { /* "\\boxed 5": one token */
		size_t n = strcspn(p, " \t\n$");
		if (n) return xstrndup(p, n);
	}
	return NULL;
}

/* The content of the last \boxed{} or \fbox{} in text that closes, or
 * NULL. */
static char *last_box(const char *text)
{
	/* from the end, so a long reply costs one scan unless boxes are
	 * left open */
	for (const char *r = text + strlen(text); r-- > text;) {
		if (*r != '\\') continue;
		char *b = NULL;
		if (!strncmp(r, "\\boxed", 6)) b = box_at(r + 6);
		else if (!strncmp(r, "\\fbox", 5)) b = box_at(r + 5);
		if (b) return b;
	}
	return NULL;
}

static const char *last_ci(const char *s, const char *needle)
{
	const char *last = NULL;
	size_t n = strlen(needle);
	for (const char *p = s; *p; p++)
		if (!strncasecmp(p, needle, n)) last = p;
	return last;
}

char *mathans_extract(const char *text)
{
	char *box = last_box(text);
	if (box) return box;
	const char *a = last_ci(text, "answer is"), *c = last_ci(text, "answer:");
	const char *at = NULL;
	if (a && (!c || a > c)) at = a + 9;
	else if (c) at = c + 7;
	if (!at) {
		/* a bare answer: one short line */
		size_t n = strlen(text);
		if (n == 0 || n > 200 || strchr(text, '\n')) return NULL;
		at = text;
	}
	size_t n = strcspn(at, "\n");
	while (n && isspace((unsigned char)at[n - 1])) n--;
	while (n && (isspace((unsigned char)*at) || *at == ':')) at++, n--;
	/* **42** and a trailing period belong to the prose, not the answer */
	while (n && (*at == '*')) at++, n--;
	while (n && (at[n - 1] == '*' || at[n - 1] == '.')) n--;
	if (n == 0) return NULL;
	return xstrndup(at, n);
}

/* ---- normalisation ------------------------------------------------------ */

static int is_cmd(const char *s, const char *name)
{
	size_t n = strlen(name);
	return !strncmp(s, name, n) && !isalpha((unsigned char)s[n]);
}

/* Commands dropped outright: spacing, sizing, styles. */
static const char *const dropped[] = {
	"\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\big", "\\Big",
	"\\displaystyle", "\\textstyle", "\\!", "\\$", "\\[", "\\]", "\\(", "\\)", "\\circ",
	"\\limits", NULL};

/* Spacing commands, read as a space: Math-Verify does not join "1\\,000"
 * into a thousand, and neither does ds-judge. */
static const char *const spaces[] = {"\\quad", "\\qquad", "\\,", "\\;", "\\:", "\\ ", NULL};

/* Commands whose braced argument is kept as plain text. */
static const char *const unwrapped[] = {
	"\\text", "\\textbf", "\\textit", "\\textrm", "\\mathrm", "\\mathbf", "\\mathit",
	"\\mbox", "\\operatorname", "\\boxed", "\\fbox", "\\textnormal", NULL};

static int is_unit_text(const char *s, size_t n)
{
	int letters = 0;
	for (size_t i = 0; i < n; i++) {
		if (isalpha((unsigned char)s[i])) letters++;
		else if (!strchr(" ./^0123456789", s[i])) return 0;
	}
	return letters > 0;
}

static void normalize_into(sbuf *b, const char *s, size_t n);

char *mathans_normalize(const char *s)
{
	sbuf b = {0};
	normalize_into(&b, s, strlen(s));
	char *t = sb_take(&b);
	/* ^{} and ^ left behind by a dropped \circ */
	for (char *p; (p = strstr(t, "^{}")) != NULL;) memmove(p, p + 3, strlen(p + 3) + 1);
	/* thousands separators: 1,234,567 (a 1-3 digit group, then ,ddd groups) */
	for (size_t i = 0; t[i]; i++) {
		if (!isdigit((unsigned char)t[i]) || (i && (isdigit((unsigned char)t[i - 1]) || t[i - 1] == '.')))
			continue;
		size_t j = i;
		while (isdigit((unsigned char)t[j])) j++;
		if (j - i > 3 || t[j] != ',') continue;
		size_t k = j, groups = 0;
		while (t[k] == ',' && isdigit((unsigned char)t[k + 1]) && isdigit((unsigned char)t[k + 2]) &&
		       isdigit((unsigned char)t[k + 3]) && !isdigit((unsigned char)t[k + 4]))
			k += 4, groups++;
		if (!groups || t[k] == '.' || t[k] == ',') continue;
		char *w = t + j;
		for (const char *r = t + j; r < t + k; r++)
			if (*r != ',') *w++ = *r;
		memmove(w, t + k, strlen(t + k) + 1);
	}
	/* white space at the ends; a trailing period is the prose's and
	 * mathans_extract drops it: inside \\boxed{42.} Math-Verify refuses
	 * the answer, and so does ds-judge */
	size_t m = strlen(t);
	while (m && (isspace((unsigned char)t[m - 1]) || t[m - 1] == '^')) m--;
	t[m] = '\0';
	size_t lead = strspn(t, " \t\n");
	memmove(t, t + lead, m - lead + 1);
	return t;
}

static void normalize_into(sbuf *b, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		char c = s[i];
		if (c == '$') { i++; continue; }
		if (c == '{' && i + 2 < n && s[i + 1] == ',' && s[i + 2] == '}') { i += 3; continue; }
		if ((unsigned char)c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xb0) { i += 2; continue; } /* ° */
		if (isspace((unsigned char)c)) {
			if (b->n && b->p[b->n - 1] != ' ') sb_putc(b, ' ');
			i++;
			continue;
		}
		if (c != '\\') { sb_putc(b, c); i++; continue; }
		const char *at = s + i;
		int done = 0;
		for (int k = 0; dropped[k]; k++) {
			size_t kn = strlen(dropped[k]);
			int ok = isalpha((unsigned char)dropped[k][1]) ? is_cmd(at, dropped[k]) : !strncmp(at, dropped[k], kn);
			if (ok && i + kn <= n) {
				i += kn;
				if (!strcmp(dropped[k], "\\left") || !strcmp(dropped[k], "\\right"))
					if (i < n && s[i] == '.') i++;
				done = 1;
				break;
			}
		}
		if (done) continue;
		for (int k = 0; spaces[k]; k++) {
			if (isalpha((unsigned char)spaces[k][1]) ? is_cmd(at, spaces[k]) : !strncmp(at, spaces[k], strlen(spaces[k]))) {
				i += strlen(spaces[k]);
				if (b->n && b->p[b->n - 1] != ' ') sb_putc(b, ' ');
				done = 1;
				break;
			}
		}
		if (done) continue;
		for (int k = 0; unwrapped[k]; k++) {
			size_t kn = strlen(unwrapped[k]);
			if (!is_cmd(at, unwrapped[k])) continue;
			size_t j = i + kn;
			while (j < n && s[j] == ' ') j++;
			if (j >= n || s[j] != '{') break;
			long e = brace_end(s, j);
			if (e < 0 || (size_t)e >= n) break;
			const char *in = s + j + 1;
			size_t inn = (size_t)e - j - 1;
			/* a unit after a number ("5 \text{ cm}") is dropped, a word
			 * standing alone ("\text{(C)}", "\text{odd}") kept */
			int has_before = 0;
			for (size_t q = 0; q < b->n; q++)
				if (b->p[q] != ' ') has_before = 1;
			if (!(has_before && is_unit_text(in, inn) && strcmp(unwrapped[k], "\\boxed") && strcmp(unwrapped[k], "\\fbox"))) {
				sbuf inner = {0};
				normalize_into(&inner, in, inn);
				if (inner.p) sb_puts(b, inner.p);
				free(inner.p);
			}
			else if (e + 1 < (long)n && s[e + 1] == '^') {
				/* "\\text{cm}^2": the power belongs to the unit */
				size_t q = (size_t)e + 2;
				if (q < n && isdigit((unsigned char)s[q])) e = (long)q;
				else if (q + 2 < n && s[q] == '{' && isdigit((unsigned char)s[q + 1]) && s[q + 2] == '}')
					e = (long)q + 2;
			}
			i = (size_t)e + 1;
			done = 1;
			break;
		}
		if (done) continue;
		if (is_cmd(at, "\\dfrac") || is_cmd(at, "\\tfrac")) { sb_puts(b, "\\frac"); i += 6; continue; }
		if (is_cmd(at, "\\cdot") || is_cmd(at, "\\times")) { sb_putc(b, '*'); i += at[2] == 'd' ? 5 : 6; continue; }
		if (is_cmd(at, "\\div")) { sb_putc(b, '/'); i += 4; continue; }
		if (i + 1 < n && s[i + 1] == '%') { sb_putc(b, '%'); i += 2; continue; }
		/* any other command: copy its name whole */
		size_t j = i + 1;
		if (j < n && isalpha((unsigned char)s[j])) while (j < n && isalpha((unsigned char)s[j])) j++;
		else if (j < n) j++;
		sb_putn(b, s + i, j - i);
		i = j;
	}
}

/* ---- expressions -------------------------------------------------------- */

#define K 3 /* evaluation points */

typedef struct {
	double v[K];     /* the value at each point */
	int64_t num, den; /* the exact value, when exact */
	unsigned exact : 1, flt : 1, sym : 1, pct : 1;
} ex;

typedef struct {
	const char *s;
	size_t i;
	int err;
	int depth;
} parser;

static ex ex_const(double x)
{
	ex e = {0};
	for (int k = 0; k < K; k++) e.v[k] = x;
	return e;
}

static ex ex_rat(__int128 num, __int128 den)
{
	ex e = ex_const((double)num / (double)den);
	if (den == 0) return e;
	if (den < 0) num = -num, den = -den;
	__int128 a = num < 0 ? -num : num, b = den;
	while (b) {
		__int128 t = a % b;
		a = b, b = t;
	}
	if (a > 1) num /= a, den /= a;
	if (num > INT64_MAX || num < -INT64_MAX || den > INT64_MAX) return e;
	e.num = (int64_t)num, e.den = (int64_t)den, e.exact = 1;
	return e;
}

static ex ex_sym(const char *name, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
	ex e = {0};
	for (int k = 0; k < K; k++) {
		h = h * 6364136223846793005ull + 1442695040888963407ull;
		e.v[k] = 1.13 + (double)(h >> 11) / 9007199254740992.0 * 1.71;
	}
	e.sym = 1;
	return e;
}

static void ex_flags(ex *r, ex a, ex b)
{
	r->flt = a.flt | b.flt;
	r->sym = a.sym | b.sym;
}

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

static ex ex_op(int op, ex a, ex b)
{
	ex r;
	if (a.exact && b.exact && !(op == OP_DIV && b.num == 0)) {
		__int128 an = a.num, ad = a.den, bn = b.num, bd = b.den;
		if (op == OP_ADD) r = ex_rat(an * bd + bn * ad, ad * bd);
		else if (op == OP_SUB) r = ex_rat(an * bd - bn * ad, ad * bd);
		else if (op == OP_MUL) r = ex_rat(an * bn, ad * bd);
		else r = ex_rat(an * bd, ad * bn);
	} else {
		r = ex_const(0);
	}
	for (int k = 0; k < K; k++) {
		double x = a.v[k], y = b.v[k];
		r.v[k] = op == OP_ADD ? x + y : op == OP_SUB ? x - y : op == OP_MUL ? x * y : x / y;
	}
	ex_flags(&r, a, b);
	r.pct = 0;
	return r;
}

static ex ex_pow(ex a, ex b)
{
	ex r = ex_const(0);
	if (a.exact && b.exact && b.den == 1 && b.num >= -64 && b.num <= 64 && !(a.num == 0 && b.num < 0)) {
		ex acc = ex_rat(1, 1);
		int64_t e = b.num < 0 ? -b.num : b.num;
		for (int64_t i = 0; i < e && acc.exact; i++) acc = ex_op(OP_MUL, acc, a);
		if (acc.exact) r = b.num < 0 ? ex_op(OP_DIV, ex_rat(1, 1), acc) : acc;
	}
	for (int k = 0; k < K; k++) r.v[k] = pow(a.v[k], b.v[k]);
	ex_flags(&r, a, b);
	r.pct = 0;
	return r;
}

static ex ex_fn(double (*f)(double), ex a)
{
	ex r = ex_const(0);
	for (int k = 0; k < K; k++) r.v[k] = f(a.v[k]);
	r.flt = a.flt, r.sym = 1; /* not exact: compare at the points */
	return r;
}

static ex ex_sqrt(ex a)
{
	ex r = ex_fn(sqrt, a);
	r.sym = a.sym;
	if (a.exact && a.num >= 0) {
		int64_t n = (int64_t)llround(sqrt((double)a.num)), d = (int64_t)llround(sqrt((double)a.den));
		if (n * n == a.num && d * d == a.den) r = ex_rat(n, d), r.flt = a.flt;
	}
	return r;
}

static ex parse_expr(parser *p);

static void skip_ws(parser *p)
{
	while (p->s[p->i] == ' ') p->i++;
}

static int peek(parser *p)
{
	skip_ws(p);
	return (unsigned char)p->s[p->i];
}

static int eat(parser *p, const char *tok)
{
	skip_ws(p);
	size_t n = strlen(tok);
	if (strncmp(p->s + p->i, tok, n)) return 0;
	if (isalpha((unsigned char)tok[n - 1]) && isalpha((unsigned char)p->s[p->i + n])) return 0;
	p->i += n;
	return 1;
}

static ex fail(parser *p)
{
	p->err = 1;
	return ex_const(NAN);
}

/* A LaTeX argument: {expr}, or one digit or letter ("\frac12"). */
static ex parse_arg(parser *p)
{
	skip_ws(p);
	char c = p->s[p->i];
	if (c == '{') {
		p->i++;
		ex e = parse_expr(p);
		if (!eat(p, "}")) return fail(p);
		return e;
	}
	if (isdigit((unsigned char)c)) {
		p->i++;
		return ex_rat(c - '0', 1);
	}
	if (isalpha((unsigned char)c)) {
		p->i++;
		return ex_sym(&c, 1);
	}
	return fail(p);
}

struct fn {
	const char *name;
	double (*f)(double);
};
static const struct fn fns[] = {{"sin", sin},   {"cos", cos},     {"tan", tan},
				{"ln", log},    {"log", log10},   {"exp", exp},
				{"arcsin", asin}, {"arccos", acos}, {"arctan", atan},
				{NULL, NULL}};

static ex parse_power(parser *p);

static ex apply_fn(parser *p, const struct fn *f)
{
	skip_ws(p);
	ex a;
	if (p->s[p->i] == '{' || p->s[p->i] == '(') {
		char close = p->s[p->i] == '{' ? '}' : ')';
		p->i++;
		a = parse_expr(p);
		char t[2] = {close, 0};
		if (!eat(p, t)) return fail(p);
	} else {
		a = parse_power(p);
	}
	return ex_fn(f->f, a);
}

static ex parse_primary(parser *p)
{
	if (++p->depth > 200) return fail(p);
	ex e;
	int c = peek(p);
	const char *s = p->s + p->i;
	if (isdigit(c) || (c == '.' && isdigit((unsigned char)s[1]))) {
		__int128 num = 0, den = 1;
		int big = 0, frac = 0;
		size_t j = 0;
		for (; isdigit((unsigned char)s[j]) || (s[j] == '.' && !frac && isdigit((unsigned char)s[j + 1])); j++) {
			if (s[j] == '.') { frac = 1; continue; }
			if (num > (__int128)INT64_MAX * 10) big = 1;
			if (!big) num = num * 10 + (s[j] - '0');
			if (frac && !big) den *= 10;
			if (den > INT64_MAX) big = 1;
		}
		if (big) e = ex_const(strtod(s, NULL));
		else e = ex_rat(num, den);
		e.flt = frac;
		p->i += j;
		/* a mixed number, 3\\frac{1}{7}, is 3 + 1/7 (as in Math-Verify) */
		if (!frac && !big && !strncmp(p->s + p->i, "\\frac", 5)) {
			size_t save = p->i;
			p->i += 5;
			ex a = parse_arg(p), b = parse_arg(p);
			if (!p->err && a.exact && b.exact && a.den == 1 && b.den == 1 && !a.sym && !b.sym && b.num > 0)
				e = ex_op(OP_ADD, e, ex_op(OP_DIV, a, b));
			else p->err = 0, p->i = save;
		}
	} else if (isalpha(c)) {
		size_t j = 0;
		while (isalpha((unsigned char)s[j])) j++;
		const struct fn *f = NULL;
		for (const struct fn *q = fns; q->name; q++)
			if (strlen(q->name) == j && !strncmp(s, q->name, j)) f = q;
		if (f) {
			p->i += j;
			e = apply_fn(p, f);
		} else if (j <= 2) {
			/* "xy" is x times y; longer runs are words ("odd") */
			p->i += 1;
			e = ex_sym(s, 1);
		} else {
			p->i += j;
			e = ex_sym(s, j);
		}
	} else if (c == '(' || c == '{' || c == '[') {
		p->i++;
		e = parse_expr(p);
		if (!eat(p, c == '(' ? ")" : c == '{' ? "}" : "]")) e = fail(p);
	} else if (c == '\\') {
		if (eat(p, "\\frac")) {
			ex a = parse_arg(p);
			ex b = parse_arg(p);
			e = ex_op(OP_DIV, a, b);
		} else if (eat(p, "\\sqrt")) {
			ex n = ex_rat(2, 1);
			if (peek(p) == '[') {
				p->i++;
				n = parse_expr(p);
				if (!eat(p, "]")) return fail(p);
			}
			ex a = parse_arg(p);
			if (n.exact && n.num == 2 && n.den == 1) e = ex_sqrt(a);
			else e = ex_pow(a, ex_op(OP_DIV, ex_rat(1, 1), n)), e.sym = 1, e.exact = 0;
		} else if (eat(p, "\\log_")) {
			ex base = parse_arg(p);
			const struct fn ln = {"ln", log};
			ex x = apply_fn(p, &ln);
			e = ex_op(OP_DIV, x, ex_fn(log, base));
		} else if (eat(p, "\\pi")) {
			e = ex_const(M_PI);
			e.sym = 1;
		} else if (eat(p, "\\infty")) {
			e = ex_const(INFINITY);
			e.sym = 1;
		} else {
			const struct fn *f = NULL;
			for (const struct fn *q = fns; q->name && !f; q++) {
				char cmd[16];
				snprintf(cmd, sizeof cmd, "\\%s", q->name);
				if (eat(p, cmd)) f = q;
			}
			e = f ? apply_fn(p, f) : fail(p);
		}
	} else {
		e = fail(p);
	}
	while (!p->err) {
		if (eat(p, "%")) e.pct = 1;
		else if (p->s[p->i] == '!' && e.exact && e.den == 1 && e.num >= 0 && e.num <= 20) {
			p->i++;
			int64_t f = 1;
			for (int64_t i = 2; i <= e.num; i++) f *= i;
			int flt = e.flt;
			e = ex_rat(f, 1), e.flt = flt;
		} else break;
	}
	p->depth--;
	return e;
}

static ex parse_power(parser *p)
{
	ex b = parse_primary(p);
	if (p->err) return b;
	if (peek(p) == '^') {
		p->i++;
		skip_ws(p);
		ex e;
		if (p->s[p->i] == '{') e = parse_arg(p);
		else if (p->s[p->i] == '-' || p->s[p->i] == '(' || p->s[p->i] == '\\') {
			if (p->s[p->i] == '-') {
				p->i++;
				e = ex_op(OP_SUB, ex_rat(0, 1), parse_primary(p));
			} else e = parse_primary(p);
		} else e = parse_arg(p);
		int pct = b.pct;
		b = ex_pow(b, e);
		b.pct = pct;
	}
	return b;
}

/* Whether the next character starts a factor, for implicit products. */
static int starts_factor(parser *p)
{
	int c = peek(p);
	if (isalnum(c) || c == '(' || c == '.') return 1;
	if (c == '{') return 1;
	if (c == '\\') {
		const char *s = p->s + p->i;
		return is_cmd(s, "\\frac") || is_cmd(s, "\\sqrt") || is_cmd(s, "\\pi") || is_cmd(s, "\\sin") ||
		       is_cmd(s, "\\cos") || is_cmd(s, "\\tan") || is_cmd(s, "\\ln") || is_cmd(s, "\\log") ||
		       is_cmd(s, "\\exp") || is_cmd(s, "\\infty");
	}
	return 0;
}

static ex parse_unary(parser *p)
{
	if (eat(p, "-")) return ex_op(OP_SUB, ex_rat(0, 1), parse_unary(p));
	if (eat(p, "+")) return parse_unary(p);
	return parse_power(p);
}

static ex parse_term(parser *p)
{
	ex a = parse_unary(p);
	while (!p->err) {
		int pct = a.pct;
		if (eat(p, "*")) a = ex_op(OP_MUL, a, parse_unary(p));
		else if (eat(p, "/")) a = ex_op(OP_DIV, a, parse_unary(p));
		else if (starts_factor(p)) a = ex_op(OP_MUL, a, parse_power(p));
		else break;
		a.pct = pct;
	}
	return a;
}

static ex parse_expr(parser *p)
{
	if (++p->depth > 200) return fail(p);
	ex a = parse_term(p);
	while (!p->err) {
		if (eat(p, "+")) a = ex_op(OP_ADD, a, parse_term(p));
		else if (eat(p, "-")) a = ex_op(OP_SUB, a, parse_term(p));
		else break;
	}
	p->depth--;
	return a;
}

/* ---- answers: expressions, tuples, intervals, sets ---------------------- */

enum kind { A_EXPR, A_TUPLE, A_SET, A_UNION };

typedef struct answer {
	enum kind kind;
	ex e;                 /* A_EXPR */
	char open, close;     /* A_TUPLE: the brackets, 0 for a bare list */
	int n;
	struct answer *items; /* owned, n of them */
} answer;

static void answer_free(answer *a)
{
	for (int i = 0; i < a->n; i++) answer_free(&a->items[i]);
	free(a->items);
}

static void push(answer *a, answer it)
{
	a->items = xrealloc(a->items, (size_t)(a->n + 1) * sizeof *a->items);
	a->items[a->n++] = it;
}

static answer parse_item(parser *p);

/* Items separated by commas; the closing bracket is left to the caller. */
static void parse_items(parser *p, answer *a)
{
	for (;;) {
		answer it = parse_item(p);
		push(a, it);
		if (p->err || !eat(p, ",")) break;
		if (a->n > 10000) { p->err = 1; break; }
	}
}

static answer parse_item(parser *p)
{
	answer a = {0};
	if (++p->depth > 200) { p->err = 1; return a; }
	int c = peek(p);
	if (!strncmp(p->s + p->i, "\\{", 2)) {
		p->i += 2;
		a.kind = A_SET;
		if (!eat(p, "\\}")) {
			parse_items(p, &a);
			if (!eat(p, "\\}")) p->err = 1;
		}
		p->depth--;
		return a;
	}
	if (c == '(' || c == '[') {
		/* a tuple or an interval when a comma follows the first item;
		 * else a parenthesised expression */
		size_t save = p->i;
		p->i++;
		answer first = parse_item(p);
		if (!p->err && eat(p, ",")) {
			a.kind = A_TUPLE;
			a.open = (char)c;
			push(&a, first);
			parse_items(p, &a);
			if (!p->err && (eat(p, ")") || eat(p, "]"))) a.close = p->s[p->i - 1];
			else p->err = 1;
			/* a union of intervals */
			if (!p->err && eat(p, "\\cup")) {
				answer u = {.kind = A_UNION};
				push(&u, a);
				answer rest = parse_item(p);
				if (rest.kind == A_UNION) {
					for (int i = 0; i < rest.n; i++) push(&u, rest.items[i]);
					free(rest.items);
				} else push(&u, rest);
				a = u;
			}
			p->depth--;
			return a;
		}
		answer_free(&first);
		p->err = 0;
		p->i = save;
	}
	a.kind = A_EXPR;
	a.e = parse_expr(p);
	/* "x = 3": the value is the right-hand side */
	while (!p->err && eat(p, "=")) a.e = parse_expr(p);
	p->depth--;
	return a;
}

/* Parse a normalised answer. Returns 0, or -1 when it does not parse. */
static int answer_parse(const char *s, answer *out)
{
	parser p = {s, 0, 0, 0};
	answer a = {0};
	if (!*s) return -1;
	parse_items(&p, &a);
	if (!p.err && peek(&p) != 0) p.err = 1;
	if (p.err) {
		answer_free(&a);
		return -1;
	}
	if (a.n == 1) {
		*out = a.items[0];
		free(a.items);
	} else {
		a.kind = A_TUPLE; /* a bare list "1, 2, 3" */
		*out = a;
	}
	return 0;
}

/* ---- comparison --------------------------------------------------------- */

static int close6(double x, double y)
{
	if (x == y) return 1;
	if (!isfinite(x) || !isfinite(y)) return 0;
	/* Math-Verify rounds both sides to float_rounding = 6 places */
	if (fabs(x) < 1e9 && fabs(y) < 1e9) return llround(x * 1e6) == llround(y * 1e6);
	return fabs(x - y) <= 1e-12 * fmax(fabs(x), fabs(y));
}

static int ex_equal1(ex a, ex b)
{
	if (a.exact && b.exact && !a.flt && !b.flt) return a.num == b.num && a.den == b.den;
	if ((a.flt || b.flt) && !a.sym && !b.sym) return close6(a.v[0], b.v[0]);
	for (int k = 0; k < K; k++) {
		double x = a.v[k], y = b.v[k];
		if (x == y) continue;
		if (!isfinite(x) || !isfinite(y)) return 0;
		if (fabs(x - y) > 1e-9 * fmax(1, fmax(fabs(x), fabs(y)))) return 0;
	}
	return 1;
}

static ex ex_percent(ex a)
{
	ex r = ex_op(OP_DIV, a, ex_rat(100, 1));
	return r;
}

static int ex_equal(ex a, ex b)
{
	if (ex_equal1(a, b)) return 1;
	/* 50% is 50 and 0.5 alike, as in Math-Verify */
	if (a.pct && ex_equal1(ex_percent(a), b)) return 1;
	if (b.pct && ex_equal1(a, ex_percent(b))) return 1;
	return 0;
}

static int answer_equal(const answer *a, const answer *b);

/* Every item of a has an equal in b and the other way round. */
static int unordered_equal(const answer *a, const answer *b)
{
	for (int pass = 0; pass < 2; pass++) {
		const answer *x = pass ? b : a, *y = pass ? a : b;
		for (int i = 0; i < x->n; i++) {
			int found = 0;
			for (int j = 0; j < y->n && !found; j++) found = answer_equal(&x->items[i], &y->items[j]);
			if (!found) return 0;
		}
	}
	return 1;
}

static int answer_equal(const answer *a, const answer *b)
{
	if (a->kind == A_EXPR && b->kind == A_EXPR) return ex_equal(a->e, b->e);
	int a_list = a->kind == A_SET || (a->kind == A_TUPLE && !a->open);
	int b_list = b->kind == A_SET || (b->kind == A_TUPLE && !b->open);
	if (a_list && b_list) return unordered_equal(a, b);
	if (a->kind == A_UNION && b->kind == A_UNION) return unordered_equal(a, b);
	if (a->kind != A_TUPLE || b->kind != A_TUPLE || a->n != b->n) return 0;
	if (a->open != b->open || a->close != b->close) return 0;
	for (int i = 0; i < a->n; i++)
		if (!answer_equal(&a->items[i], &b->items[i])) return 0;
	return 1;
}

enum mathans_result mathans_equal(const char *gold, const char *pred)
{
	char *g = mathans_normalize(gold), *q = mathans_normalize(pred);
	answer ga, pa;
	enum mathans_result r;
	int gok = answer_parse(g, &ga) == 0, pok = answer_parse(q, &pa) == 0;
	if (!gok || !pok) {
		/* the same text is the same answer, parsed or not */
		if (*g && !strcmp(g, q)) r = MATHANS_EQUAL;
		else r = !gok ? MATHANS_GOLD_UNPARSABLE : MATHANS_PRED_UNPARSABLE;
	} else {
		r = answer_equal(&ga, &pa) ? MATHANS_EQUAL : MATHANS_DIFFERENT;
	}
	if (gok) answer_free(&ga);
	if (pok) answer_free(&pa);
	free(g);
	free(q);
	return r;
}
