/* UTF-8 validation against the cases of RFC 3629 §3-4 and Markus Kuhn's
 * UTF-8 decoder stress test. */
#include "../../lib/utf8.h"
#include "testhelp.h"

#include <string.h>

struct tcase { const char *s; size_t bad; }; /* bad: expected first bad offset, or -1 */
#define OK ((size_t)-1)

int main(void)
{
	static const struct tcase cases[] = {
		{"", OK},
		{"plain ASCII, long enough for the 8-byte path ....", OK},
		{"\xc3\xa9t\xc3\xa9", OK},               /* é */
		{"\xe2\x82\xac", OK},                    /* € */
		{"\xf0\x9f\x98\x80", OK},                /* 😀 */
		{"\xef\xbf\xbf", OK},                    /* U+FFFF is valid */
		{"\xf4\x8f\xbf\xbf", OK},                /* U+10FFFF, the last */
		{"\xed\x9f\xbf", OK},                    /* U+D7FF, before surrogates */
		{"a\x80", 1},                            /* lone continuation */
		{"\xc0\xaf", 0},                         /* overlong '/' */
		{"\xc1\xbf", 0},                         /* overlong */
		{"\xe0\x80\xaf", 0},                     /* overlong, 3 bytes */
		{"\xf0\x80\x80\xaf", 0},                 /* overlong, 4 bytes */
		{"\xed\xa0\x80", 0},                     /* U+D800 surrogate */
		{"\xed\xbf\xbf", 0},                     /* U+DFFF surrogate */
		{"\xf4\x90\x80\x80", 0},                 /* U+110000 */
		{"\xf5\x80\x80\x80", 0},                 /* lead byte past F4 */
		{"\xfe", 0}, {"\xff", 0},
		{"abcdefgh\xe2\x82", 8},                 /* cut short at the end */
		{"\xe2\x28\xa1", 0},                     /* bad second byte */
		{"\xf0\x9f\x98", 0},                     /* 4-byte cut short */
		{"0123456789abcdef\xc3", 16},            /* after the 8-byte path */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].s);
		size_t want = cases[i].bad == OK ? n : cases[i].bad;
		char what[96];
		snprintf(what, sizeof what, "utf8_check case %zu", i);
		EXPECT(utf8_check(cases[i].s, n) == want, what);
	}
	/* An embedded NUL is valid UTF-8 (U+0000). */
	EXPECT(utf8_check("a\0b", 3) == 3, "NUL is valid");
	TEST_END();
}
