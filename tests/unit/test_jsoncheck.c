/* json_check against RFC 8259's grammar: the valid forms, and the invalid
 * ones libjq 1.6 would have accepted (01, nan, 1., .5) or leaked on. */
#include "../../lib/jsoncheck.h"
#include "testhelp.h"

#include <string.h>

int main(void)
{
	static const char *valid[] = {
		"{}", "[]", " {\"a\" : [1, -0.5e+10, 2E-3, 0, true, false, null]} ",
		"\"\\u00e9\\n\\\"\\\\\\/\\b\\f\\r\\t\"", "-0", "0.0", "1e5", "[[[]]]",
		"{\"a\":{\"b\":{}}}", "\t\r\n[ ]\t", "\"\xc3\xa9\"", "123456789012345678901234567890",
	};
	static const struct { const char *s; size_t at; } invalid[] = {
		{"01", 1}, {"nan", 0}, {"NaN", 0}, {"1.", 0}, {".5", 0}, {"-", 0},
		{"+1", 0}, {"1e", 0}, {"1e+", 0}, {"tru", 0}, {"nul", 0},
		{"[1,]", 3}, {"{\"a\":1,}", 7}, {"{\"a\" \"b\"}", 5}, {"{\"a\":1", 6},
		{"[1 2]", 3}, {"{a:1}", 1}, {"'a'", 0}, {"\"abc", 0}, {"\"a\tb\"", 2},
		{"\"\\u12\"", 1}, {"\"\\x\"", 1}, {"{} {}", 3}, {"", 0}, {"   ", 3},
		{"[", 1}, {"]", 0}, {"{\"a\"}", 4}, {"[1,,2]", 3}, {"{\"answer\"z}", 9},
		{"infinity", 0}, {"0x10", 1}, {"[-]", 1}, {"\"\\u00\"", 1},
	};
	for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
		const char *why = NULL;
		size_t n = strlen(valid[i]);
		char what[128];
		snprintf(what, sizeof what, "valid case %zu", i);
		EXPECT(json_check(valid[i], n, &why) == n && !why, what);
	}
	for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
		const char *why = NULL;
		size_t n = strlen(invalid[i].s);
		size_t at = json_check(invalid[i].s, n, &why);
		char what[128];
		snprintf(what, sizeof what, "invalid at %zu: %s (got %zu: %s)", invalid[i].at,
			 invalid[i].s, at, why ? why : "-");
		EXPECT(why && at == invalid[i].at, what);
	}
	/* Depth: 256 levels pass, 257 do not; a million fail without a crash. */
	static char deep[2000002];
	for (int d = 256; d <= 257; d++) {
		memset(deep, '[', (size_t)d);
		memset(deep + d, ']', (size_t)d);
		const char *why = NULL;
		size_t at = json_check(deep, 2 * (size_t)d, &why);
		EXPECT(d == 256 ? (at == 512 && !why) : (at == 256 && why != NULL),
		       d == 256 ? "256 levels of nesting pass" : "257 levels are refused");
	}
	memset(deep, '[', 1000000);
	memset(deep + 1000000, ']', 1000000);
	const char *why = NULL;
	EXPECT(json_check(deep, 2000000, &why) == 256 && why, "a million levels are refused");
	TEST_END();
}
