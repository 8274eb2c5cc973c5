/* lib/tokenizer: golden ids from Hugging Face tokenizers 0.22 (Qwen2.5's
 * tokenizer.json, encode(add_special_tokens=False)), both BPE merge paths
 * forced on the same words, and decoding with U+FFFD replacement against
 * Python's bytes.decode("utf-8", "replace"). The wide comparisons against
 * tokenizers itself are in tests/t-tokenize.sh. */
#include "../../lib/tokenizer.h"
#include "testhelp.h"

#include <stdint.h>
#include <string.h>

static int ids_equal(const tokenizer_ids *o, const uint32_t *want, size_t n)
{
	return o->n == n && memcmp(o->ids, want, n * sizeof *want) == 0;
}

int main(void)
{
	char *err = NULL;
	tokenizer *t = tokenizer_load("tests/data/qwen/tokenizer.json.zst", &err);
	EXPECT(t != NULL, "the vendored tokenizer (zstd) loads");
	if (!t) {
		printf("     | %s\n", err);
		free(err);
		TEST_END();
	}
	EXPECT(tokenizer_vocab_size(t) == 151669, "vocabulary size 151669 (151643 + 26 added)");

	static const struct {
		const char *what, *text;
		uint32_t ids[16];
		size_t n;
	} golden[] = {
		{"golden ids: runs of whitespace", "  \n\n\t hi", {18611, 197, 15588}, 3},
		{"golden ids: NFC (e + U+0301 is \u00e9)", "\xef\xac\x81ne caf\xc3\xa9 e\xcc\x81",
		 {144300, 811, 51950, 3958}, 4},
		{"golden ids: digits one by one", "The year 2024: 1,234 items!",
		 {785, 1042, 220, 17, 15, 17, 19, 25, 220, 16, 11, 17, 18, 19, 3589, 0}, 16},
		{"golden ids: added tokens in text", "<|im_start|>user\n\xe4\xbd\xa0\xe5\xa5\xbd<think>",
		 {151644, 872, 198, 108386, 151667}, 5},
	};
	tokenizer_ids out = {0};
	for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
		tokenizer_ids_clear(&out);
		int k = tokenizer_encode(t, golden[i].text, strlen(golden[i].text), &out, NULL);
		EXPECT(k == 0 && ids_equal(&out, golden[i].ids, golden[i].n), golden[i].what);
	}

	/* 100 x: tokenizers gives 12 x "xxxxxxxx" (44102) then "xxxx" (18516). */
	char xs[101];
	memset(xs, 'x', 100);
	xs[100] = '\0';
	const size_t thresholds[] = {0, 2, 64, SIZE_MAX};
	int all_same = 1;
	for (size_t k = 0; k < 4; k++) {
		tokenizer_set_heap_threshold(t, thresholds[k]);
		tokenizer_ids_clear(&out);
		tokenizer_encode(t, xs, 100, &out, NULL);
		all_same &= out.n == 13 && out.ids[0] == 44102 && out.ids[11] == 44102 &&
			    out.ids[12] == 18516;
	}
	EXPECT(all_same, "100 x: the same ids from the heap and the rescan merge");

	/* Every word of a varied text, merged both ways. */
	static const char mixed[] =
		"Ünïcödé wörds, 中文字符串很长很长很长, emoji 👨‍👩‍👧‍👦🏳️‍🌈, "
		"code: for (int i = 0; i < n; i++) { sum += a[i]; }\r\n\t\t   "
		"----========    Antidisestablishmentarianism pneumonoultramicroscopic";
	tokenizer_ids a = {0}, b = {0};
	tokenizer_set_heap_threshold(t, 0);
	tokenizer_encode(t, mixed, strlen(mixed), &a, NULL);
	tokenizer_set_heap_threshold(t, SIZE_MAX);
	tokenizer_encode(t, mixed, strlen(mixed), &b, NULL);
	EXPECT(a.n > 20 && ids_equal(&a, b.ids, b.n), "a varied text: heap and rescan agree");
	tokenizer_set_heap_threshold(t, 64);

	size_t bad = 0;
	tokenizer_ids_clear(&out);
	EXPECT(tokenizer_encode(t, "ok\xff", 3, &out, &bad) == -1 && bad == 2 && out.n == 0,
	       "invalid UTF-8 is refused, with its offset");

	/* decode: exact bytes back, and a NUL inside */
	size_t len;
	tokenizer_ids_clear(&out);
	tokenizer_encode(t, mixed, strlen(mixed), &out, NULL);
	char *s = tokenizer_decode(t, out.ids, out.n, 0, &len, NULL);
	EXPECT(s && len == strlen(mixed) && memcmp(s, mixed, len) == 0, "decode(encode(x)) == x");
	free(s);
	tokenizer_ids_clear(&out);
	tokenizer_encode(t, "a\0b", 3, &out, NULL);
	s = tokenizer_decode(t, out.ids, out.n, 0, &len, NULL);
	EXPECT(s && len == 3 && memcmp(s, "a\0b", 3) == 0, "a NUL byte survives the round trip");
	free(s);

	uint32_t unknown[] = {1, 151669};
	EXPECT(tokenizer_decode(t, unknown, 2, 0, &len, &bad) == NULL && bad == 1,
	       "decode names an id outside the vocabulary");

	/* The ids of single bytes, found by decoding the first 256 ids. */
	uint32_t byte_id[256];
	for (uint32_t id = 0; id < 256; id++) {
		s = tokenizer_decode(t, &id, 1, 0, &len, NULL);
		if (s && len == 1) byte_id[(unsigned char)s[0]] = id;
		free(s);
	}
	static const struct {
		const char *in, *want;
	} lossy[] = {
		/* want: Python's bytes.decode("utf-8", "replace") */
		{"\xe2\x82" "a", "\xef\xbf\xbd" "a"},
		{"\xf0\x9f\x98\xff\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xed\xa0\x80x", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx"},
		{"a\x80\x80" "b", "a\xef\xbf\xbd\xef\xbf\xbd" "b"},
		{"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xe0\x9f\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"ok\xc3\xa9", "ok\xc3\xa9"},
	};
	for (size_t i = 0; i < sizeof lossy / sizeof lossy[0]; i++) {
		uint32_t ids[8];
		size_t n = strlen(lossy[i].in);
		for (size_t j = 0; j < n; j++) ids[j] = byte_id[(unsigned char)lossy[i].in[j]];
		char *raw = tokenizer_decode(t, ids, n, 0, &len, NULL);
		int exact = raw && len == n && memcmp(raw, lossy[i].in, n) == 0;
		free(raw);
		s = tokenizer_decode(t, ids, n, TOKENIZER_DECODE_REPLACE, &len, NULL);
		EXPECT(exact && s && len == strlen(lossy[i].want) && memcmp(s, lossy[i].want, len) == 0,
		       "decode: bytes exactly, or U+FFFD per maximal invalid subpart");
		free(s);
	}

	uint32_t chat[] = {151644, 872, 198, 151667, 151645};
	s = tokenizer_decode(t, chat, 5, TOKENIZER_DECODE_SKIP_SPECIAL, &len, NULL);
	EXPECT(s && strcmp(s, "user\n<think>") == 0, "decode can skip special tokens only");
	free(s);

	tokenizer_ids_free(&a);
	tokenizer_ids_free(&b);
	tokenizer_ids_free(&out);
	tokenizer_free(t);

	t = tokenizer_load("tests/data/qwen/tokenizer_config.json", &err);
	EXPECT(t == NULL && err && strstr(err, "no \"model\" object"),
	       "a JSON file that is not a tokenizer.json is refused");
	free(err);
	TEST_END();
}
