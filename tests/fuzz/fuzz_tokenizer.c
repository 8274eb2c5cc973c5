/* Fuzz target for the tokenizer's encoder and decoder, with the vendored
 * Qwen tokenizer (tests/data/qwen/tokenizer.json.zst, loaded once; set
 * DS_FUZZ_TOKENIZER to use another): whatever the bytes, no crash, no
 * leak; invalid UTF-8 is refused, not encoded; and for valid text,
 * encoding is a fixed point: encode(decode(encode(x))) == encode(x).
 *
 *   make fuzz                          libFuzzer (clang)
 *   build/tests/fuzz_tokenizer FILE... replay a corpus (built by make test)
 */
#include "../../lib/tokenizer.h"
#include "../../lib/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!tok) {
		const char *path = getenv("DS_FUZZ_TOKENIZER");
		char *err = NULL;
		tok = tokenizer_load(path ? path : "tests/data/qwen/tokenizer.json.zst", &err);
		if (!tok) {
			fprintf(stderr, "fuzz_tokenizer: %s\n", err);
			abort();
		}
	}
	const char *text = (const char *)data;
	tokenizer_ids a = {0}, b = {0};
	size_t bad;
	int valid = utf8_check(text, size) == size;
	int rc = tokenizer_encode(tok, text, size, &a, &bad);
	if ((rc == 0) != valid) abort(); /* refuses exactly the invalid UTF-8 */
	if (rc == 0) {
		size_t len;
		char *back = tokenizer_decode(tok, a.ids, a.n, 0, &len, NULL);
		if (!back) abort();
		if (tokenizer_encode(tok, back, len, &b, NULL) != 0) abort();
		if (a.n != b.n || (a.n && memcmp(a.ids, b.ids, a.n * sizeof *a.ids) != 0)) abort();
		free(back);
	}
	tokenizer_ids_free(&a);
	tokenizer_ids_free(&b);
	return 0;
}

#include "replay.h"
