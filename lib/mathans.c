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

/* The rules follow Math-Verify's parse() with its default extraction
 * (LatexExtractionConfig + ExprExtractionConfig), in its order of
 * priority: Minerva's "final answer is X. I hope"; then boxes and "final
 * answer ... is X", the one that ends last; then "answer:" X; then
 * "answer" X; then the last LaTeX expression or plain number, the one
 * that ends last. Within a rule the candidate that ends last wins, as
 * Math-Verify sorts its matches by their end. Where it is wrong ds-judge
 * differs (tests/data/judge/corpus-notes.md): \fbox outside $...$ is a box,
 * a letter after "answer is" is a choice, "<think>...</think>" inlined in
 * a reply is the chain of thought, not the answer. */

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

/* A span of the reply: [b, e), and the index just past what matched. */
typedef struct {
	size_t b, e, end;
} span;

/* The box whose command ("\\boxed" or "\\fbox") starts at text + at:
 * its content into *sp (braces nested; "\\boxed 5" is one token), limited
 * to text + lim. Returns 1, or 0 when it does not close. */
static int box_at(const char *text, size_t at, size_t lim, span *sp)
{
	size_t i = at + (text[at + 1] == 'b' ? 6 : 5);
	while (i < lim && text[i] == ' ') i++;
	if (i >= lim) return 0;
	if (text[i] == '{') {
		long e = brace_end(text, i);
		if (e < 0 || (size_t)e >= lim) return 0;
		*sp = (span){i + 1, (size_t)e, (size_t)e + 1};
		return 1;
	}
	if (!isalpha((unsigned char)text[i])) {
		size_t n = 0;
		while (i + n < lim && !strchr(" \t\n$", text[i + n])) n++;
		if (!n) return 0;
		*sp = (span){i, i + n, i + n};
		return 1;
	}
	return 0;
}

static int is_box_cmd(const char *r)
{
	return (!strncmp(r, "\\boxed", 6) && !isalpha((unsigned char)r[6])) ||
	       (!strncmp(r, "\\fbox", 5) && !isalpha((unsigned char)r[5]));
}

static int blank(const char *s, size_t b, size_t e)
{
	while (b < e && isspace((unsigned char)s[b])) b++;
	return b == e;
}

/* Whether the text between two boxes joins them into one answer: close
 * together, or a little apart with "and", "or", a comma or a semicolon
 * between and different contents ("\boxed{2} and \boxed{3}", Math-Verify's
 * reading). */
static int boxes_join(const char *t, size_t from, size_t to, int same)
{
	size_t n = to - from;
	if (n < 10) return 1;
	if (same || n >= 70) return 0;
	for (size_t i = from; i < to; i++) {
		if (t[i] == ',' || t[i] == ';') return 1;
		int word = (!strncmp(t + i, "and", 3) && (i + 3 >= to || !isalpha((unsigned char)t[i + 3])))
			   || (!strncmp(t + i, "or", 2) && (i + 2 >= to || !isalpha((unsigned char)t[i + 2])));
		if (word && (i == from || !isalpha((unsigned char)t[i - 1]))) return 1;
	}
	return 0;
}

/* The last box of text[0, n) that closes and holds something, and the
 * boxes just before it that join it, as "a, b"; *end past the last one.
 * Returns owned, or NULL. */
static char *last_boxes(const char *text, size_t n, size_t *end)
{
	sbuf b = {0};
	size_t lim = n, first = 0, prev_start = 0;
	span sp, parts[16];
	int k = 0;
	for (size_t r = n; r-- > 0 && k < 16;) {
		if (text[r] != '\\' || !is_box_cmd(text + r)) continue;
		if (!box_at(text, r, lim, &sp)) {
			if (k) break; /* a box around the ones found: they are its content */
			continue;
		}
		if (blank(text, sp.b, sp.e)) {
			if (!k) continue; /* an empty box holds no answer */
			break;
		}
		if (k) {
			span *q = &parts[k - 1];
			int same = sp.e - sp.b == q->e - q->b && !memcmp(text + sp.b, text + q->b, sp.e - sp.b);
			if (!boxes_join(text, sp.end, prev_start, same)) break;
			if (same) { prev_start = r, lim = r; continue; }
		} else {
			*end = sp.end;
			first = 1;
		}
		parts[k++] = sp;
		prev_start = r;
		lim = r;
	}
	if (!first) return NULL;
	for (int i = k; i-- > 0;) {
		if (i != k - 1) sb_puts(&b, ", ");
		sb_putn(&b, text + parts[i].b, parts[i].e - parts[i].b);
	}
	return sb_take(&b);
}

/* A LaTeX environment at text + i: $$..$$, \[..\], $..$, \(..\), as
 * Math-Verify's patterns read them (inline ones on one line). Its content
 * into *sp. Returns 1 or 0. */
static int env_at(const char *t, size_t i, size_t n, span *sp)
{
	if (i && t[i - 1] == '\\') return 0;
	if (t[i] == '$' && i + 1 < n && t[i + 1] == '$') {
		for (size_t j = i + 2; j + 1 < n; j++)
			if (t[j] == '$' && t[j + 1] == '$' && t[j - 1] != '\\') {
				if (j == i + 2) break;
				*sp = (span){i + 2, j, j + 2};
				return 1;
			}
	}
	if (t[i] == '\\' && i + 1 < n && (t[i + 1] == '[' || t[i + 1] == '(')) {
		char close = t[i + 1] == '[' ? ']' : ')';
		for (size_t j = i + 2; j + 1 < n; j++) {
			if (close == ')' && t[j] == '\n') return 0;
			if (t[j] == '\\' && t[j + 1] == close) {
				if (j == i + 2 || t[j - 1] == '\\') return 0;
				*sp = (span){i + 2, j, j + 2};
				return 1;
			}
		}
		return 0;
	}
	if (t[i] == '$' && !(i && isdigit((unsigned char)t[i - 1]))) {
		for (size_t j = i + 1; j < n; j++) {
			if (t[j] == '\n') return 0;
			if (t[j] == '\\' && t[j + 1] == '$') { j++; continue; }
			if (t[j] == '$') {
				if (j == i + 1) return 0;
				*sp = (span){i + 1, j, j + 1};
				return 1;
			}
		}
	}
	return 0;
}

/* A percent sign or word right after an environment: its length. */
static size_t percent_after(const char *t, size_t i, size_t n)
{
	size_t j = i;
	while (j < n && isspace((unsigned char)t[j])) j++;
	if (j < n && t[j] == '%') return j + 1 - i;
	if (j + 1 < n && t[j] == '\\' && t[j + 1] == '%') return j + 2 - i;
	static const char *const words[] = {"percentage", "percent", "Percent", "pct", NULL};
	for (int k = 0; words[k]; k++) {
		size_t m = strlen(words[k]);
		if (j + m <= n && !strncmp(t + j, words[k], m) && !isalpha((unsigned char)t[j + m])) return j + m - i;
	}
	return 0;
}

/* The environment at text + i and those joined to it by "and", "or" or a
 * comma (up to five more, as in Math-Verify), as "a, b" into b; *end past
 * the last. Returns 1 or 0. */
static int envs_at(const char *t, size_t i, size_t n, sbuf *b, size_t *end)
{
	span sp;
	if (!env_at(t, i, n, &sp)) return 0;
	b->n = 0;
	for (int k = 0;; k++) {
		if (k) sb_puts(b, ", ");
		sb_putn(b, t + sp.b, sp.e - sp.b);
		size_t j = sp.end, pc = percent_after(t, j, n);
		if (pc) sb_puts(b, "\\%"), j += pc;
		*end = j;
		if (k == 5) break;
		while (j < n && isspace((unsigned char)t[j])) j++;
		if (j < n && t[j] == ',') j++;
		if (j + 3 <= n && !strncmp(t + j, "and", 3)) j += 3;
		else if (j + 2 <= n && !strncmp(t + j, "or", 2)) j += 2;
		else if (t[j - 1] != ',') break;
		while (j < n && isspace((unsigned char)t[j])) j++;
		if (j >= n || !env_at(t, j, n, &sp)) break;
	}
	return 1;
}

/* A plain number at t + i, as Math-Verify's number pattern reads it:
 * thousands separated by commas or spaces ("1,234", "1 234.5"), a decimal
 * point or comma ("3.5", "3,5"), ".5", an integer; then a percent sign or
 * word. Written into b as the comparison reads it (1234, 3.5, 25\%), its
 * end into *end. The caller checks what comes before. Returns 1 or 0. */
static int number_at(const char *t, size_t i, size_t n, sbuf *b, size_t *end)
{
	size_t j = i;
	b->n = 0;
	if (j < n && t[j] == '-') j++;
	if (j < n && !isdigit((unsigned char)t[j]) && !(t[j] == '.' && j + 1 < n && isdigit((unsigned char)t[j + 1])))
		return 0;
	if (j > i) sb_putc(b, '-');
	size_t d = j;
	while (d < n && isdigit((unsigned char)t[d])) d++;
	size_t k = d;
	int groups = 0;
	if (t[j] != '0' && d - j >= 1 && d - j <= 3) {
		while (k + 3 < n + 0 && (t[k] == ',' || t[k] == ' ') && isdigit((unsigned char)t[k + 1]) &&
		       isdigit((unsigned char)t[k + 2]) && isdigit((unsigned char)t[k + 3]) &&
		       (k + 4 >= n || !isdigit((unsigned char)t[k + 4])))
			k += 4, groups++;
	}
	if (groups) {
		for (size_t q = j; q < k; q++)
			if (isdigit((unsigned char)t[q])) sb_putc(b, t[q]);
		if (k + 1 < n && t[k] == '.' && isdigit((unsigned char)t[k + 1])) {
			sb_putc(b, '.');
			for (k++; k < n && isdigit((unsigned char)t[k]); k++) sb_putc(b, t[k]);
		}
	} else {
		sb_putn(b, t + j, d - j);
		k = d;
		if (k + 1 < n && (t[k] == '.' || t[k] == ',') && isdigit((unsigned char)t[k + 1])) {
			sb_putc(b, '.');
			for (k++; k < n && isdigit((unsigned char)t[k]); k++) sb_putc(b, t[k]);
		}
	}
	size_t pc = percent_after(t, k, n);
	if (pc) sb_puts(b, "\\%"), k += pc;
	*end = k;
	return 1;
}

/* Whether a plain number may start at t + i: at the start, after white
 * space or "=", "**", or a dollar sign (Math-Verify's anchors). The start
 * of the number into *at. */
static int number_anchor(const char *t, size_t i, size_t n, size_t *at)
{
	if (i && !isspace((unsigned char)t[i - 1]) && t[i - 1] != '=') return 0;
	if (i + 1 < n && t[i] == '*' && t[i + 1] == '*') i += 2;
	if (i < n && t[i] == '$') i++;
	*at = i;
	return i < n && (isdigit((unsigned char)t[i]) || t[i] == '-' || t[i] == '.');
}

/* A plain expression, "1/2" or "3 + 4" (a digit first, an operator
 * inside), at t + i: into b, its end into *end. Returns 1 or 0. */
static int plain_expr_at(const char *t, size_t i, size_t n, sbuf *b, size_t *end)
{
	size_t j = i, last = 0;
	int op = 0;
	if (j < n && t[j] == '-') j++;
	if (j < n && t[j] == '(') j++;
	if (j < n && t[j] == '-') j++;
	if (j >= n || !isdigit((unsigned char)t[j])) return 0;
	for (; j < n && (isdigit((unsigned char)t[j]) || strchr(". +-*/^()", t[j])); j++) {
		if (strchr("+-*/^", t[j]) && t[j] != '.') op = 1;
		if (t[j] != ' ' && (t[j] != '.' || (j + 1 < n && isdigit((unsigned char)t[j + 1])))) last = j + 1;
	}
	if (!op || !last || strchr("+-*/^", t[last - 1])) return 0;
	/* what follows must end it: punctuation, space, a dollar, the end */
	if (last < n && !strchr(".,:) \t\n$*", t[last])) return 0;
	b->n = 0;
	sb_putn(b, t + i, last - i);
	*end = last;
	return 1;
}

/* A choice letter at t + i: "(B)", "B" or "\text{(B)}", standing alone
 * ("B." or "B" at the end, not "Bob"). Into b as "(B)", *end past it. */
static int letter_at(const char *t, size_t i, size_t n, sbuf *b, size_t *end)
{
	size_t j = i, close = 0;
	if (j + 6 < n && !strncmp(t + j, "\\text{", 6)) j += 6, close++;
	else if (j + 8 < n && !strncmp(t + j, "\\textbf{", 8)) j += 8, close++;
	int paren = j < n && t[j] == '(';
	j += paren;
	if (j >= n || t[j] < 'A' || t[j] > 'E') return 0;
	char c = t[j++];
	if (paren && (j >= n || t[j++] != ')')) return 0;
	if (close && (j >= n || t[j++] != '}')) return 0;
	if (j < n && (isalnum((unsigned char)t[j]) || t[j] == '\'' || t[j] == '{' || t[j] == '^' || t[j] == '_')) return 0;
	if (j < n && !strchr(" \t\n.,:;!*)$", t[j])) return 0;
	if (j < n && t[j] == ' ' && j + 1 < n && isalpha((unsigned char)t[j + 1])) return 0; /* "A is ..." */
	b->n = 0;
	sb_putc(b, '(');
	sb_putc(b, c);
	sb_putc(b, ')');
	*end = j;
	return 1;
}

/* A candidate answer: its text, where its match ends, the rule. */
typedef struct {
	sbuf s;
	size_t end;
	int found;
} cand;

static void cand_take(cand *c, const sbuf *s, size_t end)
{
	if (c->found && end <= c->end) return;
	c->s.n = 0;
	sb_putn(&c->s, s->p ? s->p : "", s->n);
	c->end = end, c->found = 1;
}

/* What an "answer" or "final answer ... is" phrase ending at t + i names:
 * the first LaTeX environment that starts within win characters, a plain
 * number or expression there (with eq, first the one after the last "="
 * within 100 characters, as Math-Verify's pattern prefers), or a choice
 * letter right after the phrase ("The answer is (B).", with its value
 * when one follows: "(B) 12"); the candidate that ends last into c.
 * Returns whether there was one. */
static int after_phrase(const char *t, size_t i, size_t n, size_t win, int eq, cand *c, sbuf *tmp)
{
	cand l = {0};
	size_t end, at, lim = i + win < n ? i + win : n;
	for (size_t j = i; j <= lim && j < n; j++)
		if ((t[j] == '$' || t[j] == '\\') && envs_at(t, j, n, tmp, &end)) {
			cand_take(&l, tmp, end);
			break;
		}
	int got = 0;
	for (size_t j = eq ? (i + 100 < n ? i + 100 : n) : i; j-- > i;) {
		if (t[j] != '=') continue;
		size_t k = j + 1;
		while (k < n && isspace((unsigned char)t[k])) k++;
		if (k + 1 < n && t[k] == '*' && t[k + 1] == '*') k += 2;
		if (plain_expr_at(t, k, n, tmp, &end) || number_at(t, k, n, tmp, &end)) {
			size_t q = end;
			while (q < n && isspace((unsigned char)t[q])) q++;
			if (q < n && t[q] == '=') continue;
			cand_take(&l, tmp, end);
			got = 1;
			break;
		}
	}
	for (size_t j = i; !got && j <= lim && j < n; j++) {
		if (!number_anchor(t, j, n, &at)) continue;
		if (plain_expr_at(t, at, n, tmp, &end) || number_at(t, at, n, tmp, &end)) {
			size_t q = end;
			while (q < n && isspace((unsigned char)t[q])) q++;
			if (q < n && t[q] == '=') continue;
			cand_take(&l, tmp, end);
			break;
		}
	}
	size_t j = i;
	while (j < n && j < i + 12 && (t[j] == ' ' || t[j] == ':' || t[j] == '*' || t[j] == '$')) j++;
	if (j + 3 <= n && !strncmp(t + j, "is ", 3)) j += 3;
	while (j < n && (t[j] == ' ' || t[j] == '*' || t[j] == '$')) j++;
	if (letter_at(t, j, n, tmp, &end)) {
		size_t q = end;
		while (q < n && t[q] == ' ') q++;
		if (q < n && t[q] == '=') {
			/* "A = 5": a name, not a choice */
		} else if (l.found && l.end > end && l.end < end + 24 && q < n && t[q] != '.' && t[q] != '\n' &&
			   !strchr(l.s.p, '(')) {
			sbuf v = {0};
			sb_putn(&v, tmp->p, tmp->n);
			sb_putc(&v, ' ');
			sb_putn(&v, l.s.p, l.s.n);
			l.found = 0;
			cand_take(&l, &v, end > l.end ? end : l.end);
			free(v.p);
		} else {
			l.found = 0;
			cand_take(&l, tmp, end);
		}
	}
	if (l.found) cand_take(c, &l.s, l.end);
	free(l.s.p);
	return l.found;
}

static int ci_at(const char *t, size_t i, size_t n, const char *w)
{
	size_t m = strlen(w);
	return i + m <= n && !strncasecmp(t + i, w, m);
}

char *mathans_extract_rule(const char *text, enum mathans_rule *rule)
{
	enum mathans_rule r = MATHANS_RULE_NONE;
	const char *t = text;
	/* a chain of thought inlined in the reply is not its answer */
	for (const char *p = strstr(text, "</think>"); p; p = strstr(p + 1, "</think>")) t = p + 8;
	size_t n = strlen(t), end;
	sbuf tmp = {0};
	cand c = {0};
	char *out = NULL;

	/* 1. Minerva: "final answer is X. I hope" */
	for (size_t i = 0; i + 15 <= n; i++) {
		if ((t[i] != 'f' && t[i] != 'F') || !ci_at(t, i, n, "final answer is")) continue;
		size_t j = i + 15;
		if (j < n && t[j] == ':') j++;
		while (j < n && isspace((unsigned char)t[j])) j++;
		int ok = envs_at(t, j, n, &tmp, &end);
		if (!ok) {
			size_t at;
			ok = (number_anchor(t, j, n, &at) || (at = j, 1)) &&
			     (plain_expr_at(t, at, n, &tmp, &end) || number_at(t, at, n, &tmp, &end));
		}
		if (!ok) continue;
		size_t k = end;
		if (k < n && t[k] == '.') k++;
		if (k < n && isspace((unsigned char)t[k])) k++;
		if (!strncmp(t + k, "I hope", 6)) cand_take(&c, &tmp, end);
	}
	if (c.found) { r = MATHANS_RULE_FINAL; goto done; }

	/* 2. the last box, or "final answer ... is X", whichever ends last */
	char *box = last_boxes(t, n, &end);
	if (box) {
		sbuf bb = {box, strlen(box), strlen(box) + 1};
		cand_take(&c, &bb, end);
		free(box);
		r = MATHANS_RULE_BOX;
	}
	for (size_t i = 0; i + 12 <= n; i++) {
		if ((t[i] != 'f' && t[i] != 'F') || !ci_at(t, i, n, "final answer")) continue;
		for (size_t j = i + 12; j + 2 < n && j < i + 12 + 101; j++) {
			if (!isspace((unsigned char)t[j]) || strncmp(t + j + 1, "is", 2)) continue;
			size_t before = c.found ? c.end : 0;
			int had = c.found;
			if (!after_phrase(t, j + 3, n, 2, 0, &c, &tmp)) continue;
			if (!had || c.end > before) r = MATHANS_RULE_FINAL;
			break;
		}
	}
	if (c.found) goto done;

	/* 3. "answer:" X, then 4. "answer" X */
	for (int colon = 1; colon >= 0 && !c.found; colon--) {
		for (size_t i = 0; i + 6 <= n; i++) {
			if ((t[i] != 'a' && t[i] != 'A') || !ci_at(t, i, n, "answer")) continue;
			size_t j = i + 6;
			if (colon) {
				if (j >= n || t[j] != ':') continue;
				j++;
			}
			after_phrase(t, j, n, 50, 1, &c, &tmp);
		}
	}
	if (c.found) { r = MATHANS_RULE_ANSWER; goto done; }

	/* a reply of one short line: the line, when it is not prose */
	if (n && n <= 200 && !memchr(t, '\n', n)) {
		char *whole = xstrndup(t, n);
		char *norm = mathans_normalize(whole);
		int prose = 0;
		for (const char *p = norm; *p && !prose; p++)
			prose = isalpha((unsigned char)p[0]) && isalpha((unsigned char)p[1]) &&
				isalpha((unsigned char)p[2]) && isalpha((unsigned char)p[3]) &&
				(p == norm || p[-1] != '\\');
		free(norm);
		if (!prose) {
			out = whole;
			r = MATHANS_RULE_WHOLE;
			goto out;
		}
		free(whole);
	}

	/* 5. the last LaTeX expression, or the last plain number */
	for (size_t i = 0; i < n; i++) {
		size_t at;
		if ((t[i] == '$' || t[i] == '\\') && envs_at(t, i, n, &tmp, &end)) {
			if (end >= c.end || !c.found) r = MATHANS_RULE_LATEX;
			cand_take(&c, &tmp, end);
			i = end - 1;
		} else if (t[i] == '\\' && !strncmp(t + i, "\\frac{", 6)) {
			long e1 = brace_end(t, i + 5), e2 = e1 > 0 && t[e1 + 1] == '{' ? brace_end(t, (size_t)e1 + 1) : -1;
			if (e2 > 0) {
				tmp.n = 0;
				sb_putn(&tmp, t + i, (size_t)e2 + 1 - i);
				if ((size_t)e2 + 1 > c.end || !c.found) r = MATHANS_RULE_LATEX;
				cand_take(&c, &tmp, (size_t)e2 + 1);
				i = (size_t)e2;
			}
		} else if (number_anchor(t, i, n, &at) &&
			   (plain_expr_at(t, at, n, &tmp, &end) || number_at(t, at, n, &tmp, &end))) {
			if (end > c.end || !c.found) r = MATHANS_RULE_NUMBER;
			cand_take(&c, &tmp, end);
			i = end - 1;
		}
	}
	if (!c.found) r = MATHANS_RULE_NONE;
done:
	if (c.found) {
		/* "**42**", "42." and white space belong to the prose */
		const char *s = c.s.p ? c.s.p : "";
		size_t m = c.s.n;
		while (m && (isspace((unsigned char)*s) || *s == '*')) s++, m--;
		while (m && (isspace((unsigned char)s[m - 1]) || s[m - 1] == '*')) m--;
		if (m) out = xstrndup(s, m);
		else r = MATHANS_RULE_NONE;
	}
out:
	free(tmp.p);
	free(c.s.p);
	if (rule) *rule = out ? r : MATHANS_RULE_NONE;
	return out;
}

char *mathans_extract(const char *text)
{
	return mathans_extract_rule(text, NULL);
}

const char *mathans_rule_name(enum mathans_rule r)
{
	switch (r) {
	case MATHANS_RULE_BOX: return "box";
	case MATHANS_RULE_FINAL: return "final answer phrase";
	case MATHANS_RULE_ANSWER: return "answer phrase";
	case MATHANS_RULE_WHOLE: return "whole reply";
	case MATHANS_RULE_LATEX: return "last latex";
	case MATHANS_RULE_NUMBER: return "last number";
	default: return "none";
	}
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

/* Marks normalize_into leaves for the pass over numbers: {,} and a
 * spacing command between two digits. */
#define SEP_BRACE '\x01'
#define SEP_THIN '\x02'

/* Spacing commands, read as a space (between digit groups, a thousands
 * separator: 1\\,000 is a thousand, where Math-Verify reads 1*000). */
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

static void normalize_into(sbuf *b, sbuf *unit, const char *s, size_t n);

/* The normal form of s, owned; the units it dropped go into unit when
 * that is not NULL. */
static char *normalize(const char *s, sbuf *unit)
{
	sbuf b = {0};
	normalize_into(&b, unit, s, strlen(s));
	char *t = sb_take(&b);
	/* ^{} and ^ left behind by a dropped \circ */
	for (char *p; (p = strstr(t, "^{}")) != NULL;) memmove(p, p + 3, strlen(p + 3) + 1);
	/* thousands separators: 1,234,567, 1{,}234 and 1\\,234 (a 1-3 digit
	 * group, then ddd groups, all with the same mark; SEP_BRACE stands
	 * for {,}, SEP_THIN for a spacing command between digits). But
	 * (1,234) and [1,234] are a pair and an interval, as Math-Verify
	 * reads them: a number is never made of a bracket's whole content */
	for (size_t i = 0; t[i]; i++) {
		if (!isdigit((unsigned char)t[i]) || (i && (isdigit((unsigned char)t[i - 1]) || t[i - 1] == '.')))
			continue;
		size_t j = i;
		while (isdigit((unsigned char)t[j])) j++;
		char mark = t[j];
		if (j - i > 3 || (mark != ',' && mark != SEP_BRACE && mark != SEP_THIN)) continue;
		size_t k = j, groups = 0;
		while (t[k] == mark && isdigit((unsigned char)t[k + 1]) && isdigit((unsigned char)t[k + 2]) &&
		       isdigit((unsigned char)t[k + 3]) && !isdigit((unsigned char)t[k + 4]))
			k += 4, groups++;
		if (!groups || t[k] == mark) continue;
		size_t before = i;
		while (before && t[before - 1] == ' ') before--;
		size_t after = k + strspn(t + k, " ");
		if (mark == ',' && before && strchr("([", t[before - 1]) && strchr(")]", t[after])) continue;
		char *w = t + j;
		for (const char *r = t + j; r < t + k; r++)
			if (*r != mark) *w++ = *r;
		memmove(w, t + k, strlen(t + k) + 1);
	}
	/* a decimal comma: 3{,}5 (LaTeX's way to write one), any {,} that
	 * is not a thousands separator */
	for (char *p = t; (p = strchr(p, SEP_BRACE)) != NULL; p++)
		*p = p > t && isdigit((unsigned char)p[-1]) && isdigit((unsigned char)p[1]) ? '.' : ',';
	for (char *p = t; (p = strchr(p, SEP_THIN)) != NULL; p++) *p = ' ';
	/* a trailing period or comma is the prose's: \\boxed{42.} is 42 */
	{
		size_t m = strlen(t);
		while (m && isspace((unsigned char)t[m - 1])) m--;
		if (m > 1 && (t[m - 1] == '.' || t[m - 1] == ',') && isdigit((unsigned char)t[m - 2])) t[m - 1] = '\0';
	}
	/* white space at the ends */
	size_t m = strlen(t);
	while (m && (isspace((unsigned char)t[m - 1]) || t[m - 1] == '^')) m--;
	t[m] = '\0';
	size_t lead = strspn(t, " \t\n");
	memmove(t, t + lead, m - lead + 1);
	return t;
}

char *mathans_normalize(const char *s)
{
	return normalize(s, NULL);
}

static void normalize_into(sbuf *b, sbuf *unit, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		char c = s[i];
		if (c == '$') { i++; continue; }
		if (c == '{' && i + 2 < n && s[i + 1] == ',' && s[i + 2] == '}') { sb_putc(b, SEP_BRACE); i += 3; continue; }
		if ((unsigned char)c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xb0) { i += 2; continue; } /* ° */
		if (isspace((unsigned char)c)) {
			if (b->n && b->p[b->n - 1] != ' ') sb_putc(b, ' ');
			i++;
			continue;
		}
		if (isalpha((unsigned char)c) && (i == 0 || !isalpha((unsigned char)s[i - 1]))) {
			/* "50 percent" is 50\% (Math-Verify's reading) */
			static const char *const pct[] = {"percentage", "percent", "pct", NULL};
			size_t m = 0;
			for (int k = 0; pct[k] && !m; k++) {
				size_t l = strlen(pct[k]);
				if (i + l <= n && !strncmp(s + i, pct[k], l) && (i + l == n || !isalpha((unsigned char)s[i + l])))
					m = l;
			}
			if (m) {
				while (b->n && b->p[b->n - 1] == ' ') b->p[--b->n] = '\0';
				sb_putc(b, '%');
				i += m;
				continue;
			}
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
				/* "1\\,234": a thin space between digit groups */
				if (b->n && isdigit((unsigned char)b->p[b->n - 1]) && i < n && isdigit((unsigned char)s[i]))
					sb_putc(b, SEP_THIN);
				else if (b->n && b->p[b->n - 1] != ' ') sb_putc(b, ' ');
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
			/* "x < 1 \text{ or } x > 3", "2 \text{ and } 3": a join
			 * of answers, not a unit to drop */
			const char *word = in + strspn(in, " ");
			size_t wn = inn - (size_t)(word - in);
			while (wn && word[wn - 1] == ' ') wn--;
			if ((wn == 2 && !strncmp(word, "or", 2)) || (wn == 3 && !strncmp(word, "and", 3))) {
				sb_puts(b, wn == 2 ? " \\lor " : " \\land ");
			} else if (!(has_before && is_unit_text(in, inn) && strcmp(unwrapped[k], "\\boxed") && strcmp(unwrapped[k], "\\fbox"))) {
				sbuf inner = {0};
				normalize_into(&inner, unit, in, inn);
				if (inner.p) sb_puts(b, inner.p);
				free(inner.p);
			}
			else {
				/* the unit is dropped but remembered: 5 cm is not 5 m */
				for (size_t q = 0; unit && q < inn; q++)
					if (in[q] != ' ') sb_putc(unit, in[q]);
				if (e + 1 < (long)n && s[e + 1] == '^') {
					/* "\\text{cm}^2": the power belongs to the unit */
					size_t q = (size_t)e + 2, e0 = (size_t)e;
					if (q < n && isdigit((unsigned char)s[q])) e = (long)q;
					else if (q + 2 < n && s[q] == '{' && isdigit((unsigned char)s[q + 1]) && s[q + 2] == '}')
						e = (long)q + 2;
					if (unit && (size_t)e != e0) sb_putc(unit, '^'), sb_putc(unit, s[e - (s[e] == '}')]);
				}
			}
			i = (size_t)e + 1;
			done = 1;
			break;
		}
		if (done) continue;
		if (is_cmd(at, "\\emptyset") || is_cmd(at, "\\varnothing")) { sb_puts(b, "\\{\\}"); i += at[2] == 'e' ? 9 : 11; continue; }
		if (is_cmd(at, "\\dfrac") || is_cmd(at, "\\tfrac")) { sb_puts(b, "\\frac"); i += 6; continue; }
		if (is_cmd(at, "\\dbinom") || is_cmd(at, "\\tbinom")) { sb_puts(b, "\\binom"); i += 7; continue; }
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
	uint64_t vid;     /* a lone variable ("x", "(x)"): its name's hash; else 0 */
	unsigned exact : 1, flt : 1, sym : 1, pct : 1;
	unsigned var : 1; /* holds a variable (pi and infinity are not) */
	unsigned lossy : 1; /* a rational too large to hold exactly: never equal */
	unsigned atom : 1;  /* a number as written (-0.5, 25%), not computed */
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
	if (num > INT64_MAX || num < -INT64_MAX || den > INT64_MAX) {
		e.lossy = 1;
		return e;
	}
	e.num = (int64_t)num, e.den = (int64_t)den, e.exact = 1;
	return e;
}

static ex ex_sym(const char *name, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
	ex e = {0};
	e.vid = h | 1;
	for (int k = 0; k < K; k++) {
		h = h * 6364136223846793005ull + 1442695040888963407ull;
		e.v[k] = 1.13 + (double)(h >> 11) / 9007199254740992.0 * 1.71;
	}
	e.sym = 1;
	e.var = 1;
	return e;
}

static void ex_flags(ex *r, ex a, ex b)
{
	r->flt = a.flt | b.flt;
	r->sym = a.sym | b.sym;
	r->var = a.var | b.var;
	r->lossy |= a.lossy | b.lossy;
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
		else r.lossy = 1;
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
	r.flt = a.flt, r.sym = 1, r.var = a.var, r.lossy = a.lossy; /* not exact: compare at the points */
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

/* One digit group of a mixed number's fraction: "{12}" or "7". Its
 * length, the value in *v; or 0. */
static size_t digit_arg(const char *s, int64_t *v)
{
	if (isdigit((unsigned char)*s)) return *v = *s - '0', 1;
	if (*s != '{') return 0;
	size_t n = strspn(s + 1, "0123456789");
	if (n == 0 || n > 9 || s[1 + n] != '}') return 0;
	*v = strtoll(s + 1, NULL, 10);
	return n + 2;
}

/* "\\frac{1}{7}" with plain digits and a denominator above 0 at s: its
 * length, the fraction in *num / *den; or 0. */
static size_t mixed_frac(const char *s, int64_t *num, int64_t *den)
{
	if (strncmp(s, "\\frac", 5)) return 0;
	size_t a = digit_arg(s + 5, num), b = a ? digit_arg(s + 5 + a, den) : 0;
	return a && b && *den > 0 ? 5 + a + b : 0;
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
		e.atom = 1;
		/* 12345678901234567890 and ...891 are one double: no answer */
		e.lossy |= big && !frac;
		p->i += j;
		/* a repeating decimal, 0.1\\overline{6}, is exact: 1/6 */
		const char *o = p->s + p->i;
		if (*o == '.' && !frac) o++;
		if (!big && !strncmp(o, "\\overline{", 10)) {
			size_t r = strspn(o + 10, "0123456789");
			if (r == 0 || r > 9 || o[10 + r] != '}') return fail(p);
			int64_t rep = 0, nines = 0;
			for (size_t q = 0; q < r; q++) rep = rep * 10 + (o[10 + q] - '0'), nines = nines * 10 + 9;
			e = ex_op(OP_ADD, ex_rat(num, den), ex_rat(rep, (__int128)den * nines));
			p->i = (size_t)(o - p->s) + 11 + r;
		}
		/* a mixed number, 3\\frac{1}{7}, is 3 + 1/7 (as in Math-Verify).
		 * Read by a scan of digits, not by the parser: trying a parse
		 * and backing out at every level is exponential in the nesting */
		int64_t mn, md;
		size_t mlen;
		if (!frac && !big && (mlen = mixed_frac(p->s + p->i, &mn, &md)) != 0) {
			e = ex_op(OP_ADD, e, ex_rat(mn, md));
			p->i += mlen;
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
		} else if (eat(p, "\\binom")) {
			ex n = parse_arg(p), k = parse_arg(p);
			if (p->err || !n.exact || !k.exact || n.den != 1 || k.den != 1 || k.num < 0 || n.num > 60 ||
			    k.num > n.num)
				return fail(p);
			e = ex_rat(1, 1);
			for (int64_t q = 1; q <= k.num; q++) e = ex_op(OP_DIV, ex_op(OP_MUL, e, ex_rat(n.num - k.num + q, 1)), ex_rat(q, 1));
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
		return is_cmd(s, "\\frac") || is_cmd(s, "\\sqrt") || is_cmd(s, "\\binom") || is_cmd(s, "\\pi") || is_cmd(s, "\\sin") ||
		       is_cmd(s, "\\cos") || is_cmd(s, "\\tan") || is_cmd(s, "\\ln") || is_cmd(s, "\\log") ||
		       is_cmd(s, "\\exp") || is_cmd(s, "\\infty");
	}
	return 0;
}

/* Whether the last character before the next one (spaces skipped) is a
 * digit. */
static int digit_before(const parser *p)
{
	size_t j = p->i;
	while (j > 0 && p->s[j - 1] == ' ') j--;
	return j > 0 && isdigit((unsigned char)p->s[j - 1]);
}

static ex parse_unary(parser *p)
{
	if (eat(p, "-")) {
		ex a = parse_unary(p), r = ex_op(OP_SUB, ex_rat(0, 1), a);
		r.atom = a.atom, r.pct = a.pct;
		return r;
	}
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
		else if (starts_factor(p)) {
			/* "1 000" and "2 3" are no products: Math-Verify reads the
			 * first as 1*0 = 0, which no reader means */
			if (isdigit(peek(p)) && digit_before(p)) return fail(p);
			a = ex_op(OP_MUL, a, parse_power(p));
		}
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

/* ---- answers: expressions, tuples, intervals, sets, matrices, relations -- */

enum kind { A_EXPR, A_TUPLE, A_SET, A_UNION, A_MATRIX, A_EQ };

typedef struct answer {
	enum kind kind;
	ex e;                 /* A_EXPR */
	char open, close;     /* A_TUPLE: the brackets, 0 for a bare list */
	int rows, cols;       /* A_MATRIX: items row by row */
	uint64_t vid;         /* an interval read from an inequality: its variable */
	int n;
	struct answer *items; /* owned, n of them; A_EQ: the two sides */
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

static answer expr_answer(ex e)
{
	answer a = {.kind = A_EXPR, .e = e};
	return a;
}

/* Separators between the answers of a list: "," always; "or" and "and"
 * (normalised from \text{ or }) only at the top. */
enum { SEP_OR = 1, SEP_AND = 2 };

static answer parse_item(parser *p);

static int is_interval(const answer *a)
{
	return a->kind == A_TUPLE && a->open && a->n == 2;
}

/* Items separated by commas (and, where seps is not NULL, by \lor and
 * \land, noted in *seps); the closing bracket is left to the caller. */
static void parse_items(parser *p, answer *a, int *seps)
{
	for (;;) {
		answer it = parse_item(p);
		push(a, it);
		if (p->err) break;
		if (eat(p, ",")) {
		} else if (seps && eat(p, "\\lor")) {
			*seps |= SEP_OR;
		} else if (seps && eat(p, "\\land")) {
			*seps |= SEP_AND;
		} else {
			break;
		}
		if (a->n > 10000) { p->err = 1; break; }
	}
}

/* Relations between two expressions. */
enum { R_NONE, R_EQ, R_LT, R_LE, R_GT, R_GE };

static int eat_rel(parser *p)
{
	static const struct {
		const char *tok;
		int rel;
	} rels[] = {{"<=", R_LE},        {">=", R_GE},        {"\\leqslant", R_LE}, {"\\geqslant", R_GE},
		    {"\\leq", R_LE},     {"\\geq", R_GE},     {"\\le", R_LE},       {"\\ge", R_GE},
		    {"\\lt", R_LT},      {"\\gt", R_GT},      {"<", R_LT},          {">", R_GT},
		    {"\xe2\x89\xa4", R_LE}, {"\xe2\x89\xa5", R_GE}, {"=", R_EQ},          {NULL, 0}};
	for (int k = 0; rels[k].tok; k++)
		if (eat(p, rels[k].tok)) return rels[k].rel;
	return R_NONE;
}

static ex ex_inf(double sign)
{
	ex e = ex_const(sign * INFINITY);
	e.sym = 1;
	return e;
}

static answer interval(ex lo, int lo_open, ex hi, int hi_open)
{
	answer a = {.kind = A_TUPLE, .open = lo_open ? '(' : '[', .close = hi_open ? ')' : ']'};
	push(&a, expr_answer(lo));
	push(&a, expr_answer(hi));
	return a;
}

static int rel_up(int r) { return r == R_GT || r == R_GE; }

/* What follows an expression: nothing, "= rhs" (an equation), or one or
 * two inequalities around a lone variable (x > 3, 3 < x, 2 \le x < 5),
 * read as the interval they describe, as Math-Verify reads them. Other
 * inequalities (2x > 6) do not parse. */
static answer parse_relation(parser *p, ex first, size_t start)
{
	answer a = expr_answer(first);
	if (p->err) return a;
	if (first.vid && eat(p, "\\in")) {
		/* x \in (1, 2): the interval, for its variable */
		a = parse_item(p);
		if (is_interval(&a)) a.vid = first.vid;
		return a;
	}
	int r1 = eat_rel(p);
	if (r1 == R_NONE) return a;
	ex second = parse_expr(p);
	if (p->err) return a;
	if (r1 == R_EQ) {
		/* f(x) = 2x + 1 names a function as x = 3 names a value */
		const char *t = p->s + start;
		if (isalpha((unsigned char)t[0]) && t[1] == '(' && isalpha((unsigned char)t[2]) && t[3] == ')' &&
		    !isalpha((unsigned char)t[4]))
			first = ex_sym(t, 4);
		while (eat(p, "=")) {
			second = parse_expr(p);
			if (p->err) return a;
		}
		a.kind = A_EQ;
		push(&a, expr_answer(first));
		push(&a, expr_answer(second));
		return a;
	}
	int r2 = eat_rel(p);
	if (r2 == R_EQ) {
		p->err = 1;
		return a;
	}
	if (r2 == R_NONE) {
		int r = r1;
		ex bound;
		uint64_t vid;
		if (first.vid && !second.var) {
			bound = second, vid = first.vid;
		} else if (second.vid && !first.var) {
			bound = first, vid = second.vid;
			r = r == R_LT ? R_GT : r == R_LE ? R_GE : r == R_GT ? R_LT : R_LE;
		} else {
			p->err = 1;
			return a;
		}
		a = rel_up(r) ? interval(bound, r == R_GT, ex_inf(1), 1) : interval(ex_inf(-1), 1, bound, r == R_LT);
		a.vid = vid;
		return a;
	}
	ex third = parse_expr(p);
	if (p->err || !second.vid || first.var || third.var || rel_up(r1) != rel_up(r2)) {
		p->err = 1;
		return a;
	}
	if (rel_up(r1)) a = interval(third, r2 == R_GT, first, r1 == R_GT);
	else a = interval(first, r1 == R_LT, third, r2 == R_LT);
	a.vid = second.vid;
	return a;
}

static const char *const matrix_envs[] = {"pmatrix", "bmatrix", "Bmatrix", "matrix", "smallmatrix", NULL};

/* "\begin{ENV}" or "\end{ENV}" (cmd) for a matrix environment at p: its
 * number plus one, p advanced past it; or 0. */
static int eat_env(parser *p, const char *cmd)
{
	skip_ws(p);
	const char *s = p->s + p->i;
	size_t n = strlen(cmd);
	if (strncmp(s, cmd, n)) return 0;
	for (int k = 0; matrix_envs[k]; k++) {
		size_t m = strlen(matrix_envs[k]);
		if (!strncmp(s + n, matrix_envs[k], m) && s[n + m] == '}') {
			p->i += n + m + 1;
			return k + 1;
		}
	}
	return 0;
}

/* The cells of a matrix whose \begin{} has been read, through its \end{};
 * every row as wide as the first. */
static answer parse_matrix(parser *p, int env)
{
	answer a = {.kind = A_MATRIX};
	int cur = 0;
	for (;;) {
		push(&a, expr_answer(parse_expr(p)));
		cur++;
		if (p->err || a.n > 10000) {
			p->err = 1;
			break;
		}
		if (eat(p, "&")) continue;
		int row_end = eat(p, "\\\\"), env_end = eat_env(p, "\\end{");
		if (!row_end && !env_end) {
			p->err = 1;
			break;
		}
		if (a.rows++ == 0) a.cols = cur;
		else if (cur != a.cols) p->err = 1;
		cur = 0;
		if (p->err || env_end) {
			if (env_end != env) p->err = 1;
			break;
		}
	}
	return a;
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
			parse_items(p, &a, NULL);
			if (!eat(p, "\\}")) p->err = 1;
		}
		p->depth--;
		return a;
	}
	int env = eat_env(p, "\\begin{");
	if (env) {
		a = parse_matrix(p, env);
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
			parse_items(p, &a, NULL);
			if (!p->err && (eat(p, ")") || eat(p, "]"))) a.close = p->s[p->i - 1];
			else p->err = 1;
			/* (x, y) = (3, -2): the values */
			int names = a.open == '(' && a.close == ')';
			for (int i = 0; i < a.n && names; i++) names = a.items[i].kind == A_EXPR && a.items[i].e.vid;
			if (!p->err && names && eat(p, "=")) {
				answer_free(&a);
				a = parse_item(p);
				p->depth--;
				return a;
			}
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
	size_t start = p->i;
	a = parse_relation(p, parse_expr(p), start);
	p->depth--;
	return a;
}


/* Parse a normalised answer without \pm. Returns 0, or -1 when it does
 * not parse. */
static int answer_parse1(const char *s, answer *out)
{
	parser p = {s, 0, 0, 0};
	answer a = {0};
	int seps = 0;
	if (!*s) return -1;
	parse_items(&p, &a, &seps);
	if (!p.err && peek(&p) != 0) p.err = 1;
	if (!p.err && seps) {
		/* "x < 1 or x > 3" is a union; "2 or 3" two answers. "and"
		 * between intervals would be their intersection: refused */
		int all = 1;
		for (int i = 0; i < a.n; i++) all &= is_interval(&a.items[i]);
		if (all && (seps & SEP_AND)) p.err = 1;
		else if (all) a.kind = A_UNION;
	}
	if (p.err) {
		answer_free(&a);
		return -1;
	}
	if (a.n == 1) {
		*out = a.items[0];
		free(a.items);
	} else {
		if (a.kind != A_UNION) a.kind = A_TUPLE; /* a bare list "1, 2, 3" */
		*out = a;
	}
	return 0;
}

/* s with each \pm written as sign and each \mp as the other sign.
 * Returns owned. */
static char *pm_as(const char *s, char sign)
{
	char *t = xstrdup(s), *w = t;
	for (const char *r = s; *r;) {
		if (is_cmd(r, "\\pm") || is_cmd(r, "\\mp")) {
			*w++ = (r[1] == 'p') == (sign == '+') ? '+' : '-';
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return t;
}

/* The answers of a (a list's items, else a itself) moved into set. */
static void move_into(answer *set, answer a)
{
	if (a.kind == A_SET || (a.kind == A_TUPLE && !a.open)) {
		for (int i = 0; i < a.n; i++) push(set, a.items[i]);
		free(a.items);
	} else {
		push(set, a);
	}
}

/* Parse a normalised answer. "a \pm b" is the set of a + b and a - b (as
 * in Math-Verify). Returns 0, or -1 when it does not parse. */
static int answer_parse(const char *s, answer *out)
{
	int pm = 0;
	for (const char *r = s; (r = strchr(r, '\\')) != NULL && !pm; r++)
		pm = is_cmd(r, "\\pm") || is_cmd(r, "\\mp");
	if (!pm) return answer_parse1(s, out);
	char *plus = pm_as(s, '+'), *minus = pm_as(s, '-');
	answer a, b;
	int ok = answer_parse1(plus, &a) == 0;
	if (ok && answer_parse1(minus, &b) != 0) answer_free(&a), ok = 0;
	free(plus);
	free(minus);
	if (!ok) return -1;
	answer set = {.kind = A_SET};
	move_into(&set, a);
	move_into(&set, b);
	*out = set;
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

/* Whether num/den has a finite decimal expansion. */
static int terminates(int64_t den)
{
	while (den % 2 == 0) den /= 2;
	while (den % 5 == 0) den /= 5;
	return den == 1;
}

static int ex_equal1(ex a, ex b)
{
	if ((a.lossy || b.lossy) && !a.flt && !b.flt) return 0;
	/* Math-Verify rounds to six places only where one side is a decimal
	 * as written: 0.333333 is 1/3, but 3.67 \cdot 10^{-5} is not
	 * 3.7 \cdot 10^{-5}. And a decimal stands only for a fraction it
	 * cannot write exactly: 0.0000367 is not 3.7 \cdot 10^{-5} either,
	 * though the two agree to six places */
	int fa = a.flt && a.atom, fb = b.flt && b.atom;
	if (a.exact && b.exact) {
		if (a.num == b.num && a.den == b.den) return 1;
		if (fa && !fb && !terminates(b.den)) return close6(a.v[0], b.v[0]);
		if (fb && !fa && !terminates(a.den)) return close6(a.v[0], b.v[0]);
		return 0;
	}
	if ((fa || fb) && !a.sym && !b.sym) return close6(a.v[0], b.v[0]);
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
	if (a.pct == b.pct) return ex_equal1(a, b);
	if (b.pct) {
		ex t = a;
		a = b, b = t;
	}
	/* 25% is 0.25, and 25 as percent questions are answered (as in
	 * Math-Verify); but 0.94 is not 0.94%, nor 15.4 15.4% */
	return ex_equal1(ex_percent(a), b) || (b.exact && b.den == 1 && ex_equal1(a, b));
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

/* f and g are c*f == g for one c != 0, at every point. */
static int proportional(ex f, ex g)
{
	double c = NAN;
	for (int k = 0; k < K; k++) {
		if (!isfinite(f.v[k]) || !isfinite(g.v[k])) return 0;
		if (isnan(c) && fabs(f.v[k]) > 1e-12) c = g.v[k] / f.v[k];
	}
	if (!isfinite(c) || c == 0) return 0;
	for (int k = 0; k < K; k++) {
		double x = c * f.v[k], y = g.v[k];
		if (fabs(x - y) > 1e-9 * fmax(1, fmax(fabs(x), fabs(y)))) return 0;
	}
	return 1;
}

/* An equation against an answer. "x = 3" against "3": the value of its
 * lone variable (Math-Verify's reading). Two equations: the same lone
 * variable with equal values, or equations in variables whose sides'
 * differences are proportional (y = 2x + 1 and 2x - y + 1 = 0). */
static int eq_equal(const answer *a, const answer *b)
{
	if (a->kind != A_EQ) {
		const answer *t = a;
		a = b, b = t;
	}
	ex al = a->items[0].e, ar = a->items[1].e;
	if (b->kind == A_EXPR) return al.vid && ex_equal(ar, b->e);
	if (b->kind != A_EQ) return 0;
	ex bl = b->items[0].e, br = b->items[1].e;
	if (al.vid && al.vid == bl.vid && ex_equal(ar, br)) return 1;
	ex f = ex_op(OP_SUB, al, ar), g = ex_op(OP_SUB, bl, br);
	return f.var && g.var && proportional(f, g);
}

static int answer_equal(const answer *a, const answer *b)
{
	if (a->kind == A_EXPR && b->kind == A_EXPR) return ex_equal(a->e, b->e);
	if (a->kind == A_EQ || b->kind == A_EQ) return eq_equal(a, b);
	if (a->kind == A_MATRIX || b->kind == A_MATRIX) {
		if (a->kind != b->kind || a->rows != b->rows || a->cols != b->cols) return 0;
		for (int i = 0; i < a->n; i++)
			if (!answer_equal(&a->items[i], &b->items[i])) return 0;
		return 1;
	}
	int a_list = a->kind == A_SET || (a->kind == A_TUPLE && !a->open);
	int b_list = b->kind == A_SET || (b->kind == A_TUPLE && !b->open);
	if (a_list && b_list) return unordered_equal(a, b);
	if (a->kind == A_UNION && b->kind == A_UNION) return unordered_equal(a, b);
	if (a->kind != A_TUPLE || b->kind != A_TUPLE || a->n != b->n) return 0;
	if (a->open != b->open || a->close != b->close) return 0;
	if (a->vid && b->vid && a->vid != b->vid) return 0; /* x > 3 is not y > 3 */
	for (int i = 0; i < a->n; i++)
		if (!answer_equal(&a->items[i], &b->items[i])) return 0;
	return 1;
}

/* Two units, as normalize() keeps them, name the same unit, a plural
 * ("hours") the same as its singular. */
static int same_unit(const char *a, const char *b)
{
	size_t an = strlen(a), bn = strlen(b);
	/* drop a plural's s, then a final e: inches, inch; minutes, minute */
	for (int pass = 0; pass < 2; pass++) {
		if (an > 3 && a[an - 1] == (pass ? 'e' : 's')) an--;
		if (bn > 3 && b[bn - 1] == (pass ? 'e' : 's')) bn--;
	}
	return an == bn && !strncmp(a, b, an);
}

/* Two normalised answers. */
static enum mathans_result equal_normal(const char *g, const char *q)
{
	answer ga, pa;
	enum mathans_result r;
	/* the same text is the same answer, parsed or not (and it needs no
	 * parsing: the common case of a reply that copies the reference) */
	if (*g && !strcmp(g, q)) return MATHANS_EQUAL;
	if (!*g && !*q) return MATHANS_GOLD_UNPARSABLE;
	int gok = answer_parse(g, &ga) == 0, pok = answer_parse(q, &pa) == 0;
	if (!gok || !pok) {
		r = !gok ? MATHANS_GOLD_UNPARSABLE : MATHANS_PRED_UNPARSABLE;
	} else {
		r = answer_equal(&ga, &pa) ? MATHANS_EQUAL : MATHANS_DIFFERENT;
	}
	if (gok) answer_free(&ga);
	if (pok) answer_free(&pa);
	return r;
}

/* A multiple-choice letter, "C" or "(C)": the letter, else 0. */
static char letter_of(const char *t)
{
	if (t[0] == '(' && t[1] >= 'A' && t[1] <= 'E' && t[2] == ')' && !t[3]) return t[1];
	return t[0] >= 'A' && t[0] <= 'E' && !t[1] ? t[0] : 0;
}

/* A choice with its value, "(C) 12" (AMC golds, normalised from
 * "\textbf{(C)}\ 12"): the letter, *value pointed at the value; else 0. */
static char choice_of(const char *t, const char **value)
{
	if (t[0] != '(' || t[1] < 'A' || t[1] > 'E' || t[2] != ')') return 0;
	const char *v = t + 3 + strspn(t + 3, " ");
	/* the value must be an answer, and no second choice: "(C) or (D)"
	 * hedges */
	for (const char *r = v; (r = strchr(r, '(')) != NULL; r++)
		if (r[1] >= 'A' && r[1] <= 'E' && r[2] == ')') return 0;
	answer a;
	if (!*v || answer_parse(v, &a) != 0) return 0;
	answer_free(&a);
	*value = v;
	return t[1];
}

enum mathans_result mathans_equal(const char *gold, const char *pred)
{
	sbuf gu = {0}, qu = {0};
	char *g = normalize(gold, &gu), *q = normalize(pred, &qu);
	enum mathans_result r;
	const char *gv = NULL, *qv = NULL;
	char gl = choice_of(g, &gv), ql = choice_of(q, &qv);
	if (!strcmp(gold, pred)) gl = ql = 0; /* the very same text */
	/* a choice with its value is right as its letter and as its value */
	if (gl && ql) r = gl == ql ? equal_normal(gv, qv) : MATHANS_DIFFERENT;
	else if (gl && letter_of(q)) r = letter_of(q) == gl ? MATHANS_EQUAL : MATHANS_DIFFERENT;
	else if (gl) r = equal_normal(gv, q);
	else if (ql && letter_of(g)) r = letter_of(g) == ql ? MATHANS_EQUAL : MATHANS_DIFFERENT;
	else if (ql) r = equal_normal(g, qv);
	else r = !strcmp(gold, pred) ? MATHANS_EQUAL : equal_normal(g, q);
	/* 5 cm is 5, but not 5 m (Math-Verify drops both units) */
	if (r == MATHANS_EQUAL && gu.n && qu.n && !same_unit(gu.p, qu.p)) r = MATHANS_DIFFERENT;
	free(g);
	free(q);
	free(gu.p);
	free(qu.p);
	return r;
}
