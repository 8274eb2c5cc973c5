/* utf8.c — UTF-8 validation.
 *
 * libjq 1.6 silently replaces invalid bytes with U+FFFD when it parses, so a
 * corrupted record would pass through changed. We check every line first.
 */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

size_t utf8_check(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		/* ASCII runs are the common case: take them eight at a time. */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (w & 0x8080808080808080ull) break;
			i += 8;
		}
		if (i >= n) break;
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		unsigned lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
		if (c >= 0xC2 && c <= 0xDF) {
			len = 2;
		} else if (c >= 0xE0 && c <= 0xEF) {
			len = 3;
			if (c == 0xE0) lo = 0xA0;      /* overlong */
			else if (c == 0xED) hi = 0x9F; /* surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4;
			if (c == 0xF0) lo = 0x90;      /* overlong */
			else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
		} else {
			return i;
		}
		if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) return i;
		for (size_t k = 2; k < len; k++)
			if ((s[i + k] & 0xC0) != 0x80) return i;
		i += len;
	}
	return n;
}
