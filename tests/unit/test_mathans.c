/* mathans: one case per rule of extraction, normalisation and
 * comparison. The verdicts are a careful grader's, checked against
 * Math-Verify 0.9.0 where it agrees (and noted where it does not: the
 * corpus notes, tests/data/judge/corpus-notes.md, say why). */
#include "../../lib/mathans.h"
#include "testhelp.h"

#include <stdlib.h>
#include <string.h>

static int extracts(const char *text, const char *want)
{
	char *got = mathans_extract(text);
	int ok = want ? got && !strcmp(got, want) : !got;
	free(got);
	return ok;
}

static int normalises(const char *s, const char *want)
{
	char *got = mathans_normalize(s);
	int ok = !strcmp(got, want);
	free(got);
	return ok;
}

/* gold and pred compare as want, both ways round */
static int cmp(const char *gold, const char *pred, enum mathans_result want)
{
	enum mathans_result a = mathans_equal(gold, pred), b = mathans_equal(pred, gold);
	if (want == MATHANS_EQUAL || want == MATHANS_DIFFERENT) return a == want && b == want;
	return a == want;
}

#define EQ(g, p) cmp(g, p, MATHANS_EQUAL)
#define NE(g, p) cmp(g, p, MATHANS_DIFFERENT)
#define BAD(g, p) cmp(g, p, MATHANS_PRED_UNPARSABLE)

int main(void)
{
	/* extraction */
	EXPECT(extracts("First \\boxed{1} is only a step. Going on from there we finally get \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
	       "the last box, braces nested; a box far before it is not joined");
	EXPECT(extracts("The roots are $\\boxed{2}$ and $\\boxed{3}$.", "2, 3") && extracts("\\boxed{2}, \\boxed{3}", "2, 3"),
	       "boxes close together, or joined by \"and\", are one answer (Math-Verify)");
	EXPECT(extracts("so $\\boxed{\\boxed{5}}$", "5"), "a box in a box");
	EXPECT(extracts("\\fbox{7}", "7"), "\\fbox");
	EXPECT(extracts("\\boxed{5} and at the end \\boxed{ }", "5"), "an empty box is no answer");
	EXPECT(extracts("The answer is $\\frac12$.", "\\frac12"), "\"the answer is\" and LaTeX");
	EXPECT(extracts("We had $x = 4$ before. The answer is 42.", "42") && extracts("The answer is 1,234 apples", "1234"),
	       "\"the answer is\" and a plain number, its period dropped, thousands joined");
	EXPECT(extracts("Final Answer: The final answer is $x=2$. I hope it is correct.", "x=2"), "Minerva's phrase");
	EXPECT(extracts("So $a = 3$ and then we get $\\frac{3}{4}$ in the end", "\\frac{3}{4}"), "the last LaTeX expression");
	EXPECT(extracts("She had 20 apples and gave away 8, so 12 are left.", "12"), "the last number");
	EXPECT(extracts("Die Antwort ist 3,5.", "3.5"), "a decimal comma in a plain number");
	EXPECT(extracts("The answer is (B).", "(B)") && extracts("**Answer:** C", "(C)"), "a choice letter after \"answer\"");
	EXPECT(extracts("<think>the answer is 5</think>\n\nSo we get $6$.", "6"), "an inlined chain of thought is not the answer");
	{
		enum mathans_rule r;
		char *a = mathans_extract_rule("We get $x=1$.\nThe answer is 4, so \\boxed{5}", &r);
		EXPECT(a && !strcmp(a, "5") && r == MATHANS_RULE_BOX && !strcmp(mathans_rule_name(r), "box"),
		       "a box before \"answer is\" and the last expression; the rule named");
		free(a);
	}
	EXPECT(extracts("**Answer:** 0.5", "0.5"), "\"Answer:\" in bold");
	EXPECT(extracts("line one\nline two", NULL), "no answer in prose");

	/* normalisation */
	EXPECT(normalises("\\left( \\dfrac{1}{2} \\right)", "( \\frac{1}{2} )"), "\\left, \\right, \\dfrac");
	EXPECT(normalises("1,234,567", "1234567"), "thousands separators");
	EXPECT(normalises("\\$1,250.00", "1250.00"), "separators before a decimal point; dollar sign");
	EXPECT(normalises("30^\\circ", "30"), "degrees");
	EXPECT(normalises("5 \\text{ cm}^2", "5"), "a unit after a number, with its power");
	EXPECT(normalises("\\dbinom{5}{2}", "\\binom{5}{2}"), "\\dbinom");

	/* numbers */
	EXPECT(EQ("\\frac{3}{4}", "0.75") && EQ("\\frac{3}{4}", "3/4") && NE("\\frac{3}{4}", "0.7"), "fractions and decimals");
	EXPECT(EQ("\\frac{7}{2}", "3\\frac{1}{2}") && NE("\\frac{3}{2}", "3\\frac{1}{3}"), "mixed numbers");
	EXPECT(NE("\\frac{1}{3}", "0.33") && NE("\\frac{1}{3}", "0.333"), "a rounded decimal is not the fraction");
	EXPECT(EQ("\\frac{1}{3}", "0.\\overline{3}") && EQ("\\frac{1}{6}", "0.1\\overline{6}"), "repeating decimals");
	EXPECT(EQ("25\\%", "0.25") && EQ("25\\%", "25") && NE("25\\%", "2.5"), "percentages");
	EXPECT(NE("0.94", "0.94\\%") && NE("50\\%", "0.5\\%"), "a percent sign is not decoration");
	EXPECT(EQ("3 \\times 10^{5}", "300000") && NE("3 \\times 10^{5}", "3000000"), "scientific notation");
	EXPECT(EQ("\\frac{1}{3}", "0.333333") && NE("3.7 \\times 10^{-5}", "3.67 \\cdot 10^{-5}") &&
	       NE("3.7 \\times 10^{-5}", "0.0000367") && EQ("\\sqrt{2}", "1.414214"),
	       "decimals are rounded to six places only where they stand alone");
	EXPECT(EQ("\\binom{6}{2}", "15") && NE("\\binom{6}{2}", "30"), "binomials");
	EXPECT(EQ("12345678901234567890", "12,345,678,901,234,567,890"), "a 20-digit integer equals itself");
	EXPECT(NE("12345678901234567890", "12345678901234567891"), "integers past 2^63 are not rounded together");
	EXPECT(BAD("6", "2 3") && BAD("0", "1 000"), "a number run into a number does not parse");
	EXPECT(EQ("1000", "1\\,000") && EQ("1234", "1{,}234") && NE("0", "1\\,000"), "thin spaces and {,} between digit groups");
	EXPECT(NE("1234", "(1,234)") && NE("1234", "[1,234]") && EQ("(1,234)", "(1, 234)"), "(1,234) is a pair, not 1234");
	/* "3,5" in LaTeX may be a pair: only a reply's prose could say it is
	 * a decimal comma (mathans_extract reads "ist 3,5." as 3.5) */
	EXPECT(EQ("3.5", "3{,}5") && NE("35", "3{,}5") && NE("3.5", "3,5") && NE("3.5", "3, 5"), "a decimal comma");
	EXPECT(EQ("42", "42.") && EQ("5", "+5"), "a trailing period, a leading plus");
	EXPECT(EQ("\\emptyset", "\\varnothing") && EQ("\\emptyset", "\\{\\}") && NE("\\emptyset", "\\{0\\}"), "the empty set");

	/* radicals, pi, expressions */
	EXPECT(EQ("\\frac{\\sqrt{3}}{2}", "\\sqrt{3}/2") && EQ("2\\sqrt{3}", "\\sqrt{12}"), "radicals");
	EXPECT(NE("4", "4\\sqrt{2}") && BAD("4", "4\\sqrt(2)"), "4 is not 4 sqrt 2 (a Math-Verify false positive)");
	EXPECT(EQ("\\frac{\\pi}{4}", "0.25\\pi") && NE("\\pi", "3.14"), "pi");
	EXPECT(EQ("2x+1", "1+2x") && EQ("(x+1)^2", "x^2+2x+1") && NE("(x+1)^2", "x^2+1"), "expressions");
	EXPECT(EQ("8st", "t \\cdot 8s") && NE("8st", "8s"), "s and t are variables, not units");

	/* structures */
	EXPECT(EQ("(1, 2]", "\\left(1,2\\right]") && NE("(1, 2]", "[1, 2]"), "intervals keep their brackets");
	EXPECT(EQ("(-\\infty, 1) \\cup (3, \\infty)", "(3,\\infty)\\cup(-\\infty,1)"), "unions without order");
	EXPECT(NE("(1, 2)", "(2, 1)"), "tuples with order");
	EXPECT(EQ("\\{1, 2, 3\\}", "3, 1, 2") && NE("\\{1, 2, 3\\}", "1, 2"), "sets without order");
	EXPECT(EQ("2, 3", "2 \\text{ or } 3") && NE("6", "2 \\text{ and } 3"), "\"or\" and \"and\" join answers");

	/* \pm */
	EXPECT(EQ("\\pm 3", "3, -3") && EQ("\\pm 3", "\\mp 3") && NE("\\pm 3", "3"), "\\pm is both signs");
	EXPECT(EQ("\\frac{1 \\pm \\sqrt{5}}{2}", "\\frac{1-\\sqrt5}{2}, \\frac{1+\\sqrt5}{2}"), "\\pm inside a fraction");

	/* inequalities */
	EXPECT(EQ("x > 3", "(3, \\infty)") && EQ("x > 3", "3 < x") && NE("x > 3", "x \\ge 3"), "one-sided inequalities");
	EXPECT(EQ("2 \\le x < 5", "[2, 5)") && EQ("2 \\le x < 5", "5 > x \\geq 2") && NE("2 \\le x < 5", "(2, 5)"),
	       "two-sided inequalities");
	EXPECT(NE("x > 3", "y > 3"), "the variable counts");
	EXPECT(EQ("x < -1 \\text{ or } x > 2", "(-\\infty, -1) \\cup (2, \\infty)"), "\"or\" between inequalities is a union");
	EXPECT(BAD("1", "x > 1 \\text{ and } x < 3") && BAD("3", "2x > 6"), "what is not an interval does not parse");
	EXPECT(EQ("x \\in (1, 2)", "1 < x < 2"), "x \\in an interval");

	/* matrices */
	EXPECT(EQ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"), "matrices");
	EXPECT(NE("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}") &&
	       NE("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\end{pmatrix}"),
	       "a transpose is another matrix");
	EXPECT(BAD("1", "\\begin{pmatrix} 1 & 2 \\\\ 3 \\end{pmatrix}") && BAD("1", "\\begin{vmatrix} 1 \\end{vmatrix}"),
	       "ragged rows and determinants do not parse");

	/* equations */
	EXPECT(EQ("y = 2x + 1", "y = 1 + 2x") && EQ("y = 2x + 1", "2x - y + 1 = 0") && NE("y = 2x + 1", "y = 2x - 1"),
	       "lines");
	EXPECT(EQ("(x-1)^2 + (y+2)^2 = 9", "x^2 - 2x + y^2 + 4y - 4 = 0") && NE("(x-1)^2 + (y+2)^2 = 9", "(x+1)^2 + (y+2)^2 = 9"),
	       "circles");
	EXPECT(EQ("x = 3", "3") && NE("x^2 = 4", "x = 2"), "a value named by its variable; an equation is not its root");
	EXPECT(EQ("f(x) = 2x + 1", "2x + 1") && EQ("(x, y) = (3, -2)", "(3, -2)"), "named functions and points");

	/* letters, words, units */
	EXPECT(EQ("\\text{(C)}", "C") && NE("\\text{(C)}", "B"), "choices");
	EXPECT(EQ("\\textbf{(C)}\\ 12", "C") && EQ("\\textbf{(C)}\\ 12", "12") && NE("\\textbf{(C)}\\ 12", "D"),
	       "a choice with its value");
	EXPECT(NE("C", "\\text{(C) or (D)}") && NE("\\textbf{(C)}\\ 12", "\\text{(C) or (D)}"), "a hedge between choices");
	EXPECT(EQ("\\text{odd}", "odd") && NE("\\text{odd}", "\\text{even}"), "words");
	EXPECT(EQ("5 \\text{ cm}", "5") && NE("5 \\text{ cm}", "5 \\text{ m}") && EQ("2 \\text{ hours}", "2 \\text{ hour}"),
	       "units: dropped, but two must agree");

	/* what does not parse */
	EXPECT(BAD("1", "\\frac{1}{") && BAD("1", "(1,2") && BAD("1", "\\sqrt{}") && BAD("1", "???"),
	       "broken answers are unparsable, never equal");
	EXPECT(mathans_equal("???", "???") == MATHANS_EQUAL, "the very same text is the same answer");
	TEST_END();
}
