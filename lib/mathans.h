/* mathans.h — final answers of math problems: find them, compare them.
 *
 * The rules follow Hugging Face's Math-Verify (the judge the tests compare
 * against) where it is right, and a careful human grader where it is not
 * (tests/data/judge/corpus-notes.md lists the differences). LaTeX is
 * normalised (\dfrac, \left/\right, spacing commands, \text{}, units,
 * degrees, dollar signs, thousands separators), then parsed into numbers,
 * expressions, tuples, intervals, sets, matrices or equations. Two
 * expressions are equal when they agree exactly as rationals, or, when
 * either holds a decimal, to six decimal places (Math-Verify's
 * float_rounding), or, when they hold symbols, radicals or pi, at several
 * fixed points to 1e-9 relative: a numeric canonical form, so 2x+1 equals
 * 1+2x and \frac{\sqrt3}{2} equals \sqrt{3}/2. Sets compare without
 * order, tuples, intervals and matrices with it. "a \pm b" is the set of
 * both signs; an inequality around a lone variable (x > 3, 2 \le x < 5) is
 * its interval, "or" between them a union; equations are equal when their
 * sides' differences are proportional, and "x = 3" equals 3. A unit is
 * dropped, but two units must agree (5 cm is 5, not 5 m). An AMC choice
 * with its value, "\textbf{(C)}\ 12", equals its letter and its value.
 * Thousands separators (1,234, 1{,}234, 1\,234) are joined, but (1,234)
 * is a pair; 3{,}5 is a decimal comma; 42. is 42. An answer that does not
 * parse (digits run together, "2 3"; 2x > 6) is never equal to anything,
 * save to the very same text.
 */
#ifndef DS_MATHANS_H
#define DS_MATHANS_H

#include <stddef.h>

/* How the final answer was found in a reply, in the order the rules are
 * tried (Math-Verify's priorities): Minerva's "final answer is X. I hope"
 * and "final answer ... is X" (MATHANS_RULE_FINAL, the latter tied with a
 * box: whichever ends last); the last \boxed{} or \fbox{}, with the boxes
 * just before it that join it ("\boxed{2} and \boxed{3}"); "answer:" X,
 * then "answer" X, X a LaTeX expression, a number or a choice letter
 * within 50 characters; a reply of one short line that is not prose; the
 * LaTeX expression or plain number that ends last. */
enum mathans_rule {
	MATHANS_RULE_NONE = 0,
	MATHANS_RULE_BOX,
	MATHANS_RULE_FINAL,
	MATHANS_RULE_ANSWER,
	MATHANS_RULE_WHOLE,
	MATHANS_RULE_LATEX,
	MATHANS_RULE_NUMBER,
};

/* The final answer in a reply (text after the last "</think>" when a
 * chain of thought is inlined), by the rules above; the rule that took it
 * into *rule when rule is not NULL. Borrows text; returns owned (free
 * with free()), or NULL when there is none. */
char *mathans_extract_rule(const char *text, enum mathans_rule *rule);

/* mathans_extract_rule(text, NULL). */
char *mathans_extract(const char *text);

/* The rule's name for messages ("box", "answer phrase", "last latex",
 * ...): a static string. */
const char *mathans_rule_name(enum mathans_rule rule);

/* An answer in the normal form the comparison reads (no spacing commands,
 * \dfrac as \frac, \text unwrapped, units and degrees dropped, ...), for
 * messages. Borrows s; returns owned (free with free()). */
char *mathans_normalize(const char *s);

enum mathans_result {
	MATHANS_DIFFERENT = 0,
	MATHANS_EQUAL = 1,
	MATHANS_PRED_UNPARSABLE = -1,
	MATHANS_GOLD_UNPARSABLE = -2,
};

/* Compare a predicted answer with the reference (both extracted answers,
 * not whole replies; both borrowed). */
enum mathans_result mathans_equal(const char *gold, const char *pred);

#endif
