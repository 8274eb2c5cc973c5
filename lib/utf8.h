/* utf8.h — UTF-8 validation (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
#ifndef DS_UTF8_H
#define DS_UTF8_H

#include <stddef.h>

/* Offset of the first byte of the first invalid sequence in s[0..n), or n
 * when all of it is valid UTF-8. Borrows s. */
size_t utf8_check(const char *s, size_t n);

#endif
