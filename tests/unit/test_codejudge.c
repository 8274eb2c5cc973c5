/* test_codejudge.c — the pure parts of lib/codejudge.c: finding the code in
 * a reply, comparing standard output as the APPS harness does, reading the
 * tests (an object, or a string holding one). Expectations follow APPS's
 * testing_util.py, with the stricter rules codejudge.h states. */
#include "../../lib/codejudge.h"
#include "testhelp.h"

#include <string.h>

static int extracts(const char *text, const char *want)
{
	char *got = codejudge_extract(text);
	int ok = want ? got && strcmp(got, want) == 0 : got == NULL;
	free(got);
	return ok;
}

static int same(const char *got, const char *want)
{
	return codejudge_output_equal(got, strlen(got), want);
}

int main(void)
{
	EXPECT(extracts("x\n```python\nprint(1)\n```\n", "print(1)\n"), "a ```python block");
	EXPECT(extracts("```\na\n```\nthen\n```py\nb\n```", "b\n"), "the last block, ```py");
	EXPECT(extracts("```python\na\n```\n```cpp\nint x;\n```\n", "a\n"), "a block of another language is passed over");
	EXPECT(extracts("```Python3\na\n```", "a\n"), "```Python3, any case");
	EXPECT(extracts("no code here", NULL), "no block: NULL");
	EXPECT(extracts("```java\nclass A {}\n```", NULL), "only another language: NULL");
	EXPECT(extracts("```python\nprint(1)\n", "print(1)\n"), "a block cut short at the end counts");
	EXPECT(extracts("````python\n```\ninner\n```\n````\n", "```\ninner\n```\n"), "a longer fence holds a shorter one");
	EXPECT(extracts("text ```python inline``` text", NULL), "backticks inside a line are no fence");

	EXPECT(same("3\n", "3"), "trailing newline");
	EXPECT(same("  3  \n\n\n4\n", "3\n4\n"), "stripped lines, empty lines dropped");
	EXPECT(same("1  2\t3\n", "1 2 3"), "tokens");
	EXPECT(!same("1 2\n3\n", "1 2 3"), "lines keep their structure");
	EXPECT(!same("3\n", "4"), "different");
	EXPECT(!same("", "1"), "nothing");
	EXPECT(same("", ""), "nothing expected, nothing got");
	EXPECT(same("0.3333333333\n", "0.333333"), "floats within 1e-5 relative");
	EXPECT(!same("0.3333333333\n", "0.3333"), "floats beyond it");
	EXPECT(same("2.0\n", "2"), "2.0 is 2 (not both integers)");
	EXPECT(!same("1000001\n", "1000000"), "integers exactly, however close");
	EXPECT(!same("nan\n", "nan2"), "non-numbers as text");
	EXPECT(same("YES\r\n", "YES"), "CRLF");

	struct codejudge_tests t;
	char *err;
	EXPECT(codejudge_tests_parse(jv_parse("{\"inputs\":[\"1\\n\",[\"a\",\"b\"]],\"outputs\":[\"2\",[\"c\"]]}"), &t, &err) == 0 &&
		       t.n == 2 && !t.fn_name && strcmp(t.input[1], "a\nb") == 0 && strcmp(t.output[1], "c") == 0,
	       "stdin cases: lists of lines joined by newlines");
	codejudge_tests_free(&t);
	EXPECT(codejudge_tests_parse(jv_string("{\"fn_name\":\"f\",\"inputs\":[[1,[2]],3],\"outputs\":[[3],4]}"), &t, &err) == 0 &&
		       t.n == 2 && strcmp(t.fn_name, "f") == 0 && strcmp(t.input[0], "[1,[2]]") == 0 &&
		       strcmp(t.input[1], "[3]") == 0 && strcmp(t.output[0], "[3]") == 0,
	       "call cases from a string: arguments as a JSON array");
	codejudge_tests_free(&t);
	EXPECT(codejudge_tests_parse(jv_string("{not json"), &t, &err) == -1 && err && strstr(err, "does not hold JSON"),
	       "a string that is not JSON");
	free(err);
	EXPECT(codejudge_tests_parse(jv_parse("{\"inputs\":[],\"outputs\":[]}"), &t, &err) == -1 && strstr(err, "no cases"),
	       "no cases");
	free(err);
	EXPECT(codejudge_tests_parse(jv_parse("{\"inputs\":[1],\"outputs\":[\"1\"]}"), &t, &err) == -1, "a stdin input that is a number");
	free(err);
	EXPECT(codejudge_tests_parse(jv_number(3), &t, &err) == -1, "not an object");
	free(err);
	TEST_END();
}
