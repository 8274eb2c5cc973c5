/* mathans.h — final answers of math problems: find them, compare them.
 *
 * The rules follow Hugging Face's Math-Verify (the judge the tests compare
 * against): LaTeX is normalised (\dfrac, \left/\right, spacing commands,
 * \text{}, units, degrees, dollar signs, a trailing period), then parsed
 * into numbers, expressions, tuples, intervals or sets. Two expressions are
 * equal when they agree exactly as rationals, or, when either holds a
 * decimal, to six decimal places (Math-Verify's float_rounding), or, when
 * they hold symbols, radicals or pi, at several fixed points to 1e-9
 * relative: a numeric canonical form, so 2x+1 equals 1+2x and
 * \frac{\sqrt3}{2} equals \sqrt{3}/2. Sets compare without order, tuples
 * and intervals with it. An answer that does not parse is never equal to
 * anything, save to the very same text.
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
