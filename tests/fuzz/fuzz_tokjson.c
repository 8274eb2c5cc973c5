/* Fuzz target for the tokenizer.json loader: whatever the bytes (mutations
 * of a small Qwen-kind tokenizer in the seed corpus), the loader accepts
 * or refuses with a message, and a tokenizer it accepts encodes and
 * decodes without a crash or a leak.
 *
 *   make fuzz                         libFuzzer (clang)
 *   build/tests/fuzz_tokjson FILE...  replay a corpus (built by make test)
 */
#include "../../lib/tokenizer.h"
#include "memfile.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = fuzz_memfile("tokjson", data, size, path);
	if (fd < 0) return 0;
	char *err = NULL;
	tokenizer *t = tokenizer_load(path, &err);
	if (!t && (!err || !*err)) abort(); /* a refusal always says why */
	free(err);
	if (t) {
		static const char text[] = "hello <|im_start|> world\r\n  \xe4\xb8\x96\xe7\x95\x8c 123 \xf0\x9f\x99\x82";
		tokenizer_ids ids = {0};
		if (tokenizer_encode(t, text, sizeof text - 1, &ids, NULL) == 0) {
			size_t len;
			free(tokenizer_decode(t, ids.ids, ids.n, TOKENIZER_DECODE_REPLACE, &len, NULL));
		}
		tokenizer_ids_free(&ids);
		tokenizer_free(t);
	}
	close(fd);
	return 0;
}

#include "replay.h"
