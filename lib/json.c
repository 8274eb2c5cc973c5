/* json.c — strict JSON parsing into jv, and jq-identical dumping of jv. */
#include "json.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing ------------------------------------------------------------ */

struct parser {
	const char *s;
	size_t n, i;
	int depth;
	const char *why; /* set on the first error; parsing stops there */
	size_t at;
	char *tmp;       /* decoded string with escapes */
	size_t tmp_cap;
	int exact;       /* json_parse_exact: big integers kept as digit strings */
};

static jv fail(struct parser *p, size_t at, const char *why)
{
	if (!p->why) {
		p->why = why;
		p->at = at;
	}
	return jv_invalid();
}

static void skip_ws(struct parser *p)
{
	while (p->i < p->n) {
		char c = p->s[p->i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
		p->i++;
	}
}

/* Length of the valid UTF-8 sequence (2-4 bytes) at s, or 0 (RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t left)
{
	unsigned c = s[0];
	size_t len;
	unsigned lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) len = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0) lo = 0xA0;
		else if (c == 0xED) hi = 0x9F; /* no surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0) lo = 0x90;
		else if (c == 0xF4) hi = 0x8F; /* nothing past U+10FFFF */
	} else return 0;
	if (len > left || s[1] < lo || s[1] > hi) return 0;
	for (size_t k = 2; k < len; k++)
		if ((s[k] & 0xC0) != 0x80) return 0;
	return len;
}

/* A jv string holding buf[0..len), UTF-8 already checked. (libjq checks
 * it once more; its API has no way around that.) */
static jv make_string(const char *buf, size_t len)
{
	return jv_string_sized(buf, (int)len);
}

static int hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int k = 0; k < 4; k++) {
		char c = s[k];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
		else return 0;
	}
	*out = v;
	return 1;
}

static void tmp_put(struct parser *p, size_t *len, const char *b, size_t k)
{
	if (k == 0) return; /* p->tmp may still be NULL */
	if (*len + k > p->tmp_cap) {
		p->tmp_cap = (*len + k) * 2 + 64;
		p->tmp = xrealloc(p->tmp, p->tmp_cap);
	}
	memcpy(p->tmp + *len, b, k);
	*len += k;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) { o[0] = (char)cp; return 1; }
	if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* p->i is at the opening quote. */
static jv parse_string(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;
	size_t start = ++p->i, i = start, n = p->n;
	/* Fast path: no escapes, so the jv holds the bytes as they are. */
	for (;;) {
		while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') i++;
		if (i >= n) return fail(p, start - 1, "unterminated string");
		if (s[i] == '"') {
			p->i = i + 1;
			return make_string(p->s + start, i - start);
		}
		if (s[i] == '\\') break;
		if (s[i] < 0x20) return fail(p, i, "control character inside a string (must be escaped)");
		size_t k = utf8_len(s + i, n - i);
		if (!k) return fail(p, i, "invalid UTF-8");
		i += k;
	}
	/* Slow path: decode escapes into p->tmp. */
	size_t len = 0;
	tmp_put(p, &len, p->s + start, i - start);
	for (;;) {
		size_t run = i;
		while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') i++;
		tmp_put(p, &len, p->s + run, i - run);
		if (i >= n) return fail(p, start - 1, "unterminated string");
		unsigned char c = s[i];
		if (c == '"') break;
		if (c < 0x20) return fail(p, i, "control character inside a string (must be escaped)");
		if (c >= 0x80) {
			size_t k = utf8_len(s + i, n - i);
			if (!k) return fail(p, i, "invalid UTF-8");
			tmp_put(p, &len, p->s + i, k);
			i += k;
			continue;
		}
		/* a backslash */
		if (i + 1 >= n) return fail(p, start - 1, "unterminated string");
		char e = p->s[i + 1], out[4];
		size_t k = 1;
		switch (e) {
		case '"': out[0] = '"'; break;
		case '\\': out[0] = '\\'; break;
		case '/': out[0] = '/'; break;
		case 'b': out[0] = '\b'; break;
		case 'f': out[0] = '\f'; break;
		case 'n': out[0] = '\n'; break;
		case 'r': out[0] = '\r'; break;
		case 't': out[0] = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (i + 6 > n || !hex4(p->s + i + 2, &cp))
				return fail(p, i, "bad \\u escape (four hex digits needed)");
			i += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF && i + 8 <= n && p->s[i + 2] == '\\' &&
			    p->s[i + 3] == 'u' && hex4(p->s + i + 4, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				i += 6;
			} else if (cp >= 0xD800 && cp <= 0xDFFF) {
				/* UTF-8 cannot hold it; jq refuses it too. */
				return fail(p, i - 4, "a lone surrogate in a \\u escape");
			}
			k = put_utf8(out, cp);
			break;
		}
		default: return fail(p, i, "unknown escape in a string");
		}
		tmp_put(p, &len, out, k);
		i += 2;
	}
	p->i = i + 1;
	return make_string(p->tmp, len);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static jv parse_number(struct parser *p)
{
	const char *s = p->s;
	size_t start = p->i, i = start, n = p->n;
	if (i < n && s[i] == '-') i++;
	if (i < n && s[i] == '0') i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9') while (i < n && is_digit(s[i])) i++;
	else return fail(p, start, "bad number");
	int whole = !(i < n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E'));
	if (i < n && s[i] == '.') {
		i++;
		if (i >= n || !is_digit(s[i])) return fail(p, start, "bad number (digits needed after '.')");
		while (i < n && is_digit(s[i])) i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-')) i++;
		if (i >= n || !is_digit(s[i])) return fail(p, start, "bad number (digits needed in the exponent)");
		while (i < n && is_digit(s[i])) i++;
	}
	p->i = i;
	char small[64], *buf = small;
	size_t len = i - start;
	if (len >= sizeof small) buf = xmalloc(len + 1);
	memcpy(buf, s + start, len);
	buf[len] = '\0';
	double d = strtod(buf, NULL); /* correctly rounded, as jq's own */
	/* Beyond 2^53 a double rounds (2^53 + 1 reads as 2^53): compare the
	 * digits themselves. */
	const char *mag = buf[0] == '-' ? buf + 1 : buf;
	size_t ml = strlen(mag);
	int big = whole && (ml > 16 || (ml == 16 && strcmp(mag, "9007199254740992") > 0));
	jv v = p->exact && big ? jv_string_sized(buf, (int)len) : jv_number(d);
	if (buf != small) free(buf);
	return v;
}

static jv parse_value(struct parser *p);

static jv parse_container(struct parser *p)
{
	char open = p->s[p->i], close = open == '{' ? '}' : ']';
	if (p->depth == JSON_MAX_DEPTH) return fail(p, p->i, "nesting deeper than 256 levels");
	p->depth++;
	p->i++;
	jv v = open == '{' ? jv_object() : jv_array();
	skip_ws(p);
	if (p->i < p->n && p->s[p->i] == close) {
		p->i++;
		p->depth--;
		return v;
	}
	for (;;) {
		if (open == '{') {
			if (p->i >= p->n || p->s[p->i] != '"') {
				jv_free(v);
				return fail(p, p->i, "expected a string key");
			}
			jv key = parse_string(p);
			if (!jv_is_valid(key)) {
				jv_free(v);
				return key;
			}
			skip_ws(p);
			if (p->i >= p->n || p->s[p->i] != ':') {
				jv_free(key);
				jv_free(v);
				return fail(p, p->i, "expected ':' after a key");
			}
			p->i++;
			jv val = parse_value(p);
			if (!jv_is_valid(val)) {
				jv_free(key);
				jv_free(v);
				return val;
			}
			v = jv_object_set(v, key, val);
		} else {
			jv val = parse_value(p);
			if (!jv_is_valid(val)) {
				jv_free(v);
				return val;
			}
			v = jv_array_append(v, val);
		}
		skip_ws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			skip_ws(p);
			continue;
		}
		if (p->i < p->n && p->s[p->i] == close) {
			p->i++;
			p->depth--;
			return v;
		}
		jv_free(v);
		return fail(p, p->i, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static jv parse_literal(struct parser *p)
{
	static const char *const words[] = {"true", "false", "null"};
	for (int w = 0; w < 3; w++) {
		size_t k = strlen(words[w]);
		if (p->n - p->i >= k && memcmp(p->s + p->i, words[w], k) == 0) {
			p->i += k;
			return w == 0 ? jv_true() : w == 1 ? jv_false() : jv_null();
		}
	}
	return fail(p, p->i, "expected a value (object, array, string, number, true, false or null)");
}

static jv parse_value(struct parser *p)
{
	skip_ws(p);
	if (p->i >= p->n) return fail(p, p->i, "expected a value, found the end of the line");
	switch (p->s[p->i]) {
	case '{': case '[': return parse_container(p);
	case '"': return parse_string(p);
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9': return parse_number(p);
	default: return parse_literal(p);
	}
}

static jv parse_whole(const char *s, size_t n, size_t *at, const char **why, int exact)
{
	struct parser p = {.s = s, .n = n, .exact = exact};
	jv v = parse_value(&p);
	if (jv_is_valid(v)) {
		skip_ws(&p);
		if (p.i != n) {
			jv_free(v);
			v = fail(&p, p.i, "expected the end of the line after one value");
		}
	}
	free(p.tmp);
	*at = p.at;
	*why = p.why;
	return v;
}

jv json_parse(const char *s, size_t n, size_t *at, const char **why) { return parse_whole(s, n, at, why, 0); }

jv json_parse_exact(const char *s, size_t n, size_t *at, const char **why)
{
	return parse_whole(s, n, at, why, 1);
}

/* ---- dumping -------------------------------------------------------------- */

void jbuf_put(jbuf *b, const char *s, size_t k)
{
	if (!b->p || b->n + k >= b->cap) { /* a spare byte: the NUL, or jsonl_write's newline */
		b->cap = (b->n + k) * 2 + 256;
		b->p = xrealloc(b->p, b->cap);
	}
	if (k) memcpy(b->p + b->n, s, k);
	b->n += k;
	b->p[b->n] = '\0';
}

/* Escaped as jq 1.6 does: the JSON-mandated ones, with \b \f \n \r \t
 * short forms, \u00XX for the other controls, and DEL as \u007f. */
static void dump_string(jbuf *b, const char *s, size_t n)
{
	jbuf_put(b, "\"", 1);
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (i < n) {
			unsigned char c = (unsigned char)s[i];
			if (c < 0x20 || c == '"' || c == '\\' || c == 0x7F) break;
			i++;
		}
		jbuf_put(b, s + run, i - run);
		if (i >= n) break;
		unsigned char c = (unsigned char)s[i++];
		char e[8];
		switch (c) {
		case '"': jbuf_put(b, "\\\"", 2); break;
		case '\\': jbuf_put(b, "\\\\", 2); break;
		case '\b': jbuf_put(b, "\\b", 2); break;
		case '\f': jbuf_put(b, "\\f", 2); break;
		case '\n': jbuf_put(b, "\\n", 2); break;
		case '\r': jbuf_put(b, "\\r", 2); break;
		case '\t': jbuf_put(b, "\\t", 2); break;
		default:
			snprintf(e, sizeof e, "\\u%04x", c);
			jbuf_put(b, e, 6);
		}
	}
	jbuf_put(b, "\"", 1);
}

long long json_count(jv v)
{
	if (jv_get_kind(v) != JV_KIND_NUMBER) return -1;
	double d = jv_number_value(v);
	if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return -1;
	return (long long)d;
}

long long json_count_exact(jv v)
{
	if (jv_get_kind(v) != JV_KIND_STRING) return json_count(v);
	const char *t = jv_string_value(v);
	int len = jv_string_length_bytes(jv_copy(v));
	if (len < 1 || len > 19 || (t[0] == '0' && len > 1)) return -1;
	unsigned long long x = 0;
	for (int i = 0; i < len; i++) {
		if (!is_digit(t[i])) return -1;
		x = x * 10 + (unsigned long long)(t[i] - '0');
	}
	return x > (unsigned long long)INT64_MAX ? -1 : (long long)x;
}

void json_dump(jbuf *b, jv v)
{
	switch (jv_get_kind(v)) {
	case JV_KIND_NULL: jbuf_put(b, "null", 4); break;
	case JV_KIND_TRUE: jbuf_put(b, "true", 4); break;
	case JV_KIND_FALSE: jbuf_put(b, "false", 5); break;
	case JV_KIND_NUMBER: {
		double d = jv_number_value(v);
		if (d > -1e15 && d < 1e15 && d == (double)(int64_t)d && !(d == 0 && 1 / d < 0)) {
			char num[32];
			int k = snprintf(num, sizeof num, "%lld", (long long)d);
			jbuf_put(b, num, (size_t)k);
		} else { /* jq's shortest round-trip form, rare enough to borrow */
			jv s = jv_dump_string(jv_copy(v), 0);
			jbuf_put(b, jv_string_value(s), strlen(jv_string_value(s)));
			jv_free(s);
		}
		break;
	}
	case JV_KIND_STRING:
		dump_string(b, jv_string_value(v), (size_t)jv_string_length_bytes(jv_copy(v)));
		break;
	case JV_KIND_ARRAY: {
		jbuf_put(b, "[", 1);
		int len = jv_array_length(jv_copy(v));
		for (int i = 0; i < len; i++) {
			if (i) jbuf_put(b, ",", 1);
			jv x = jv_array_get(jv_copy(v), i);
			json_dump(b, x);
			jv_free(x);
		}
		jbuf_put(b, "]", 1);
		break;
	}
	case JV_KIND_OBJECT: {
		jbuf_put(b, "{", 1);
		int first = 1;
		jv_object_foreach(v, key, val) {
			if (!first) jbuf_put(b, ",", 1);
			first = 0;
			dump_string(b, jv_string_value(key), (size_t)jv_string_length_bytes(jv_copy(key)));
			jbuf_put(b, ":", 1);
			json_dump(b, val);
			jv_free(key);
			jv_free(val);
		}
		jbuf_put(b, "}", 1);
		break;
	}
	default: jbuf_put(b, "null", 4); break; /* invalid: never passed by callers */
	}
}

void jbuf_free(jbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}
