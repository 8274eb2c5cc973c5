/* jsoncheck.c — an iterative RFC 8259 recogniser: no recursion, so no
 * stack to overflow whatever the input. */
#include "jsoncheck.h"

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Each returns the offset after the token, or (size_t)-1 with *why set and
 * *at the offset of the error. */
#define FAIL(msg, where) do { *why = (msg); *at = (where); return (size_t)-1; } while (0)

static size_t string_end(const char *s, size_t n, size_t i, const char **why, size_t *at)
{
	size_t start = i++; /* the opening quote */
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"') return i + 1;
		if (c < 0x20) FAIL("control character inside a string (must be escaped)", i);
		if (c == '\\') {
			if (i + 1 >= n) break;
			char e = s[i + 1];
			if (e == 'u') {
				for (int k = 2; k < 6; k++)
					if (i + (size_t)k >= n || !is_hex(s[i + (size_t)k]))
						FAIL("bad \\u escape (four hex digits needed)", i);
				i += 6;
				continue;
			}
			if (!(e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' ||
			      e == 'n' || e == 'r' || e == 't'))
				FAIL("unknown escape in a string", i);
			i += 2;
			continue;
		}
		i++;
	}
	FAIL("unterminated string", start);
}

static size_t number_end(const char *s, size_t n, size_t i, const char **why, size_t *at)
{
	size_t start = i;
	if (i < n && s[i] == '-') i++;
	if (i < n && s[i] == '0') {
		i++;
	} else if (i < n && s[i] >= '1' && s[i] <= '9') {
		while (i < n && is_digit(s[i])) i++;
	} else {
		FAIL("bad number", start);
	}
	if (i < n && s[i] == '.') {
		i++;
		if (i >= n || !is_digit(s[i])) FAIL("bad number (digits needed after '.')", start);
		while (i < n && is_digit(s[i])) i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-')) i++;
		if (i >= n || !is_digit(s[i])) FAIL("bad number (digits needed in the exponent)", start);
		while (i < n && is_digit(s[i])) i++;
	}
	return i;
}

static size_t literal_end(const char *s, size_t n, size_t i, const char **why, size_t *at)
{
	static const char *const words[] = {"true", "false", "null"};
	for (int w = 0; w < 3; w++) {
		size_t k = 0;
		while (words[w][k] && i + k < n && s[i + k] == words[w][k]) k++;
		if (!words[w][k]) return i + k;
	}
	FAIL("expected a value (object, array, string, number, true, false or null)", i);
}

size_t json_check(const char *s, size_t n, const char **why)
{
	char stack[JSONCHECK_MAX_DEPTH]; /* '{' or '[' per open container */
	int depth = 0;
	size_t i = 0, at = 0;
#define WS() while (i < n && is_ws(s[i])) i++
#define STEP(fn) do { i = fn(s, n, i, why, &at); if (i == (size_t)-1) return at; } while (0)
#define ERR(msg) do { *why = (msg); return i; } while (0)

	WS();
value:
	if (i >= n) ERR("expected a value, found the end of the line");
	switch (s[i]) {
	case '{':
	case '[':
		if (depth == JSONCHECK_MAX_DEPTH) ERR("nesting deeper than 256 levels");
		stack[depth++] = s[i++];
		WS();
		if (i < n && s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
			i++;
			depth--;
			goto after;
		}
		if (stack[depth - 1] == '[') goto value;
		goto key;
	case '"': STEP(string_end); goto after;
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		STEP(number_end);
		goto after;
	default: STEP(literal_end); goto after;
	}
key:
	if (i >= n || s[i] != '"') ERR("expected a string key");
	STEP(string_end);
	WS();
	if (i >= n || s[i] != ':') ERR("expected ':' after a key");
	i++;
	WS();
	goto value;
after:
	WS();
	if (depth == 0) {
		if (i != n) ERR("expected the end of the line after one value");
		return n;
	}
	if (i < n && s[i] == ',') {
		i++;
		WS();
		if (stack[depth - 1] == '{') goto key;
		goto value;
	}
	if (i < n && s[i] == (stack[depth - 1] == '{' ? '}' : ']')) {
		i++;
		depth--;
		goto after;
	}
	ERR(stack[depth - 1] == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
#undef WS
#undef STEP
#undef ERR
}
