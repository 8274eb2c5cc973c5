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
 * An answer that does not parse (digits run together, "1\,000"; 2x > 6)
 * is never equal to anything, save to the very same text.
 */
#ifndef DS_MATHANS_H
#define DS_MATHANS_H

#include <stddef.h>

/* The final answer in a reply: the content of the last \boxed{...} or
 * \fbox{...} (braces nested), else what follows the last "answer is" or
 * "answer:", else the whole reply when it is one short line. Borrows text;
 * returns owned (free with free()), or NULL when there is none. */
char *mathans_extract(const char *text);

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
