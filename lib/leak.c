/* leak.c — phrases by which a guided chain of thought reveals that it was
 * given the answer (see leak.h for what counts and why).
 *
 * The text is read once, as words: lower-cased runs of letters, digits and
 * inner apostrophes. A phrase is a sequence of word specs, tried at each
 * word of a sentence over a window of the next few words, so memory stays
 * constant whatever the length of the text:
 *
 *   a|b|c    one word, any of these
 *   a|b?     that word if it is there (taken when present, never given
 *            back: "answer is? !an" refuses "answer is an integer")
 *   !a|b     the next word, if one follows in the phrase, is none of these
 *
 * The words of a phrase are separated by white space only (or '-', or
 * Markdown emphasis): "the answer, given the constraints, is" is not "the
 * answer given". Sentences end at '.', '!' or '?' before white space, at
 * ';', and at a line break; a phrase never crosses one.
 */
#include "leak.h"

#include <string.h>

/* ---- the phrases ----------------------------------------------------------- */

struct rule {
	const char *spec;
	const char *reason;
	int needs_answer; /* counts only in a sentence that says "answer" */
};

#define LEAK(spec, phrase) {spec, LEAK_REASON_PREFIX "'" phrase "'", 0}
#define LEAK_IF_ANSWER(spec, phrase) {spec, LEAK_REASON_PREFIX "'" phrase "'", 1}

/* What may follow "the answer is" in ordinary mathematics ("the answer is
 * an integer", "... is expressed as"), so that it is not read as a value. */
#define NOT_A_VALUE "!a|an|not|in|to|expressed|required|written|always|never|positive|negative|" \
		    "real|rational|irrational|integer|unique|defined|undefined|independent|the"
/* What may follow "the given answer" and "given the answer" in ordinary text. */
#define NOT_CHOICES "!choices|choice|options|option|format|form|type|box|field|to|from|for"
#define ADJ "correct|final|numerical|numeric|exact|right?"

static const struct rule rules[] = {
	LEAK("given " ADJ " answer|answers " NOT_CHOICES, "the given answer"),
	LEAK("provided " ADJ " answer|answers " NOT_CHOICES, "the provided answer"),
	LEAK("supplied " ADJ " answer|answers " NOT_CHOICES, "the supplied answer"),
	LEAK("expected " ADJ " answer|answers " NOT_CHOICES, "the expected answer"),
	LEAK("reference " ADJ " answer|answers|solution|solutions|result|results", "the reference answer"),
	LEAK("official|target " ADJ " answer|answers|solution", "the official answer"),
	LEAK("known correct|final answer", "the known answer"),
	LEAK("answer|answers key|keys|sheet", "the answer key"),
	LEAK("reference says|said|states|stated|gives|gave|shows|showed|indicates|claims|lists|confirms",
	     "the reference says"),
	LEAK("according to the? reference|references|user|prompt|hint|hints", "according to the reference"),
	LEAK("answer is|was|has|had been? given|provided|supplied|known|told !by|below|above|here|later",
	     "the answer is given"),
	LEAK("answer given|provided|supplied is|was|as|equals|here", "the answer given"),
	LEAK("answer given|provided|supplied to|by|in the? user|prompt|problem|question|us|me|statement",
	     "the answer given"),
	LEAK("answer we|i are|were|was|am|have|had been? told|given|provided", "the answer we were given"),
	LEAK("answer we're|i'm|we've|i've|we'd|i'd been? told|given|provided", "the answer we were given"),
	LEAK("told|informed|reminded us|me? that? the? " ADJ " answer is? " NOT_A_VALUE, "told the answer"),
	LEAK("given that the " ADJ " answer is|was|equals " NOT_A_VALUE, "given that the answer is"),
	LEAK("given the " ADJ " answer " NOT_CHOICES, "given the answer"),
	LEAK("already know|knew the? " ADJ " answer " NOT_CHOICES, "already know the answer"),
	LEAK("knowing the " ADJ " answer " NOT_CHOICES, "knowing the answer"),
	LEAK("know|knew the correct answer " NOT_CHOICES, "know the correct answer"),
	LEAK("answer is|was supposed to", "the answer is supposed to be"),
	LEAK("user|problem|question|prompt|hint|statement|instructions|instruction|task "
	     "says|said|states|stated|tells|told|claims|claimed|mentions|mentioned|indicates|indicated|notes|noted "
	     "us|me? that? the? " ADJ " answer is|was|equals " NOT_A_VALUE,
	     "the problem says the answer is"),
	LEAK("user|problem|question|prompt|hint|statement|instructions "
	     "gives|gave|provides|provided|includes|included|supplies|supplied|shows|showed "
	     "us|me? the " ADJ " answer " NOT_CHOICES "|in",
	     "the problem gives the answer"),
	LEAK("back|backward|backwards from the? correct|final|given|known|expected|provided|target? answer "
	     NOT_CHOICES, "working backwards from the answer"),
	LEAK_IF_ANSWER("as given|provided|told !by", "as given"),
};

#define N_RULES (sizeof rules / sizeof rules[0])

/* ---- words ----------------------------------------------------------------- */

#define WORD_MAX 24 /* longer words match no spec */
#define WINDOW 16   /* words looked ahead: more than any phrase has */

struct word {
	char w[WORD_MAX + 1]; /* lower case; "" when too long */
	size_t at, end;       /* bytes of the text */
	int joined;           /* only white space (or '-', '*', '_', quotes) since the last word */
};

struct scan {
	const char *t;
	size_t n, i;
	struct word q[WINDOW]; /* ring of words not yet tried */
	int head, count;
	int sentence_has_answer;
	const struct rule *pending; /* a context phrase that waits for "answer" */
	size_t pending_at, pending_len;
};

static int is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* U+2019 RIGHT SINGLE QUOTATION MARK, the apostrophe word processors make. */
static int is_curly_apostrophe(const char *t, size_t n, size_t i)
{
	return i + 2 < n && (unsigned char)t[i] == 0xe2 && (unsigned char)t[i + 1] == 0x80 &&
	       (unsigned char)t[i + 2] == 0x99;
}

/* What lies between two words. */
enum gap { GAP_SOFT, GAP_HARD, GAP_SENTENCE };

/* Read the next word into *w, or return 0 at the end of the text; *gap says
 * what came between it and the word before. */
static int next_word(struct scan *s, struct word *w, enum gap *gap)
{
	const char *t = s->t;
	size_t n = s->n, i = s->i;
	*gap = GAP_SOFT;
	while (i < n && !is_word_byte((unsigned char)t[i])) {
		unsigned char c = (unsigned char)t[i];
		if (c == '\n' || c == ';') {
			*gap = GAP_SENTENCE;
		} else if (c == '.' || c == '!' || c == '?') {
			/* "3.5" and "e.g." do not end a sentence; ". " and "." at the end do */
			if (i + 1 == n || strchr(" \t\r\n\"')]*_$", t[i + 1])) *gap = GAP_SENTENCE;
			else if (*gap == GAP_SOFT) *gap = GAP_HARD;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '-' || c == '*' || c == '_' ||
			   c == '"' || c == '\'' || c == '`') {
			/* soft: the words still form a phrase */
		} else if (c == 0xe2 && i + 2 < n && (unsigned char)t[i + 1] == 0x80 &&
			   ((unsigned char)t[i + 2] == 0x9c || (unsigned char)t[i + 2] == 0x9d ||
			    (unsigned char)t[i + 2] == 0x98 || (unsigned char)t[i + 2] == 0x99)) {
			i += 2; /* curly quotes are soft too */
		} else if (*gap == GAP_SOFT) {
			*gap = GAP_HARD;
		}
		i++;
	}
	if (i == n) {
		s->i = n;
		return 0;
	}
	size_t len = 0;
	int too_long = 0;
	w->at = i;
	while (i < n) {
		char c = t[i];
		if (is_word_byte((unsigned char)c)) {
			i++;
		} else if ((c == '\'' || is_curly_apostrophe(t, n, i)) && len > 0) {
			size_t k = c == '\'' ? 1 : 3;
			if (i + k >= n || !is_word_byte((unsigned char)t[i + k])) break;
			c = '\'';
			i += k;
		} else {
			break;
		}
		if (len < WORD_MAX) w->w[len++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		else too_long = 1;
	}
	w->w[too_long ? 0 : len] = '\0';
	w->end = i;
	s->i = i;
	return 1;
}

/* ---- matching ------------------------------------------------------------- */

/* Is word w one of the alternatives spec[0..n) ("a|b|c")? */
static int alt_has(const char *spec, size_t n, const char *w)
{
	size_t wl = strlen(w);
	if (wl == 0) return 0;
	for (const char *p = spec, *end = spec + n; p < end;) {
		const char *bar = memchr(p, '|', (size_t)(end - p));
		size_t k = bar ? (size_t)(bar - p) : (size_t)(end - p);
		if (k == wl && !memcmp(p, w, k)) return 1;
		p += k + 1;
	}
	return 0;
}

/* Does rule r match the queued words from position 0? Sets *last to the
 * index of the last word taken. */
static int match_at(const struct scan *s, const struct rule *r, int *last)
{
	int qi = 0, taken = 0;
	for (const char *p = r->spec; *p;) {
		const char *sp = strchr(p, ' ');
		size_t k = sp ? (size_t)(sp - p) : strlen(p);
		int neg = p[0] == '!', opt = p[k - 1] == '?';
		const char *alts = p + neg;
		size_t an = k - (size_t)neg - (size_t)opt;
		const struct word *w = qi < s->count ? &s->q[(s->head + qi) % WINDOW] : NULL;
		if (w && taken && !w->joined) w = NULL; /* the phrase ends at punctuation */
		if (neg) {
			if (w && alt_has(alts, an, w->w)) return 0;
		} else if (w && alt_has(alts, an, w->w)) {
			qi++;
			taken++;
		} else if (!opt) {
			return 0;
		}
		p = sp ? sp + 1 : p + k;
	}
	*last = qi - 1;
	return taken > 0;
}

/* Try every rule at the oldest queued word, then drop it. Returns the rule
 * that matched (for good: a context rule in a sentence that says
 * "answer"), or NULL. */
static const struct rule *try_head(struct scan *s, size_t *at, size_t *len)
{
	const struct rule *hit = NULL;
	for (size_t i = 0; i < N_RULES && !hit; i++) {
		int last;
		if (!match_at(s, &rules[i], &last)) continue;
		const struct word *a = &s->q[s->head], *b = &s->q[(s->head + last) % WINDOW];
		if (rules[i].needs_answer && !s->sentence_has_answer) {
			if (!s->pending) {
				s->pending = &rules[i];
				s->pending_at = a->at;
				s->pending_len = b->end - a->at;
			}
			continue;
		}
		hit = &rules[i];
		*at = a->at;
		*len = b->end - a->at;
	}
	s->head = (s->head + 1) % WINDOW;
	s->count--;
	return hit;
}

/* ---- the whole ------------------------------------------------------------ */

const char *leak_find_n(const char *text, size_t n, size_t *at, size_t *len)
{
	struct scan s = {.t = text, .n = n};
	size_t a = 0, l = 0;
	const struct rule *hit = NULL;
	struct word w;
	enum gap gap;
	int more = 1;
	while (!hit) {
		more = next_word(&s, &w, &gap);
		if (!more || gap == GAP_SENTENCE) { /* try what is left of the sentence */
			while (s.count > 0 && !hit) hit = try_head(&s, &a, &l);
			s.count = 0;
			s.sentence_has_answer = 0;
			s.pending = NULL;
			if (hit || !more) break;
		}
		w.joined = gap == GAP_SOFT;
		s.q[(s.head + s.count) % WINDOW] = w;
		s.count++;
		if (!strcmp(w.w, "answer") || !strcmp(w.w, "answers")) {
			s.sentence_has_answer = 1;
			if (s.pending) {
				hit = s.pending;
				a = s.pending_at;
				l = s.pending_len;
				break;
			}
		}
		if (s.count == WINDOW) hit = try_head(&s, &a, &l);
	}
	if (hit && at) *at = a;
	if (hit && len) *len = l;
	return hit ? hit->reason : NULL;
}

const char *leak_find(const char *text)
{
	return leak_find_n(text, strlen(text), NULL, NULL);
}
