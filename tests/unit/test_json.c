/* json_parse against RFC 8259's grammar: the valid forms (and what libjq
 * makes of them: the reference for values), the invalid ones libjq 1.6
 * would have accepted (01, nan, 1., .5) or leaked on; json_dump against
 * libjq's own dumper. */
#include "../../lib/json.h"
#include "testhelp.h"

#include <string.h>

static size_t json_check(const char *s, size_t n, const char **why)
{
	size_t at;
	jv v = json_parse(s, n, &at, why);
	int ok = jv_is_valid(v);
	jv_free(v);
	return ok ? n : at;
}

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
		{"infinity", 0}, {"\"\\ud800 x\"", 1}, {"\"\\udc00\"", 1}, {"0x10", 1}, {"[-]", 1}, {"\"\\u00\"", 1},
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
	/* Values: what we parse equals what libjq parses, and what we dump
	 * equals what libjq dumps, for valid JSON of every kind. */
	static const char *docs[] = {
		"{\"id\":\"a/1\",\"n\":[1,-2,3.5,1e300,-0,0.1,123456789012345678,1e-7],\"o\":{\"x\":null,\"y\":true,\"z\":false}}",
		"{\"s\":\"tab\\tnl\\ncr\\rbs\\\\q\\\"sl\\/u\\u0001\\u001f\\u007f\\u00e9\\ud83d\\ude00 x\"}",
		"{\"\u00e9\":\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\",\"dup\":1,\"dup\":2}",
		"[[],{},[{}],\"\",0]",
	};
	for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
		const char *w = NULL;
		size_t at;
		jv ours = json_parse(docs[i], strlen(docs[i]), &at, &w);
		jv theirs = jv_parse(docs[i]);
		char what[64];
		snprintf(what, sizeof what, "doc %zu parses to libjq's value", i);
		EXPECT(jv_is_valid(ours) && jv_equal(jv_copy(ours), jv_copy(theirs)), what);
		jbuf b = {0};
		json_dump(&b, ours);
		jv ref = jv_dump_string(jv_copy(theirs), 0);
		snprintf(what, sizeof what, "doc %zu dumps as libjq dumps it", i);
		EXPECT(b.n == strlen(jv_string_value(ref)) && memcmp(b.p, jv_string_value(ref), b.n) == 0, what);
		if (b.n != strlen(jv_string_value(ref)) || memcmp(b.p, jv_string_value(ref), b.n) != 0)
			printf("     | ours:   %.*s\n     | libjq:  %s\n", (int)b.n, b.p, jv_string_value(ref));
		jbuf_free(&b);
		jv_free(ref);
		jv_free(ours);
		jv_free(theirs);
	}
	{ /* invalid UTF-8 inside a string is named as such */
		const char *w = NULL;
		size_t at = json_check("{\"a\":\"\xc3\x28\"}", 9, &w);
		EXPECT(at == 6 && w && !strcmp(w, "invalid UTF-8"), "invalid UTF-8 in a string");
	}
	{ /* counts from a server's reply: only whole numbers in range */
		static const char *const in[] = {"0", "42", "9007199254740992", "-1", "1.5", "1e400", "-1e400",
						 "9007199254740994", "\"7\"", "null"};
		static const long long want[] = {0, 42, 9007199254740992LL, -1, -1, -1, -1, -1, -1, -1};
		int all = 1;
		for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
			size_t pos;
			const char *bad;
			jv v = json_parse(in[i], strlen(in[i]), &pos, &bad);
			if (json_count(v) != want[i]) all = 0, printf("     | json_count(%s) = %lld\n", in[i], json_count(v));
			jv_free(v);
		}
		EXPECT(all, "json_count: whole numbers 0..2^53, -1 for the rest (negative, fraction, inf, string, null)");
	}
	{ /* a hub's sizes and counts beyond 2^53, read exactly (json_parse_exact) */
		static const char *const in[] = {"9007199254740993", "18446744073709551615", "9223372036854775807",
						 "42", "1e20", "-9007199254740993", "\"9007199254740993\""};
		static const long long want[] = {9007199254740993LL, -1, 9223372036854775807LL, 42, -1, -1,
						 9007199254740993LL};
		int all = 1;
		for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
			size_t pos;
			const char *bad;
			jv v = json_parse_exact(in[i], strlen(in[i]), &pos, &bad);
			if (json_count_exact(v) != want[i]) all = 0, printf("     | json_count_exact(%s) = %lld\n", in[i], json_count_exact(v));
			jv_free(v);
		}
		size_t pos;
		const char *bad;
		const char *t = "[{\"size\":9007199254740993,\"x\":1.5}]";
		jv v = json_parse_exact(t, strlen(t), &pos, &bad);
		jv e = jv_array_get(v, 0);
		jv x = jv_object_get(jv_copy(e), jv_string("x"));
		jv sz = jv_object_get(e, jv_string("size"));
		all &= json_count_exact(sz) == 9007199254740993LL && jv_number_value(x) == 1.5;
		jv_free(x);
		jv_free(sz);
		EXPECT(all, "json_parse_exact: integers beyond 2^53 exact to INT64_MAX, small and fractional numbers as before");
	}
	{ /* a number too large for int64 is dumped as jq does, without an overflowing cast */
		jv v = jv_number(1e300);
		jbuf b = {0};
		json_dump(&b, v);
		jv ref = jv_dump_string(jv_copy(v), 0);
		EXPECT(b.n == strlen(jv_string_value(ref)) && !memcmp(b.p, jv_string_value(ref), b.n), "1e300 dumps as jq dumps it");
		jbuf_free(&b);
		jv_free(ref);
		jv_free(v);
	}
	TEST_END();
}
