/* Fuzz target for the safetensors reader: whatever the bytes (mutations of
 * the small valid and broken files in the seed corpus), the reader accepts
 * or refuses with a message, and every tensor of a file it accepts lies
 * inside the bytes and converts (or is refused by dtype) without a crash,
 * an out-of-bounds read or a leak.
 *
 *   make fuzz                               libFuzzer (clang)
 *   build/tests/fuzz_safetensors FILE...    replay a corpus (built by make test)
 */
#include "../../lib/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so that ASan sees any read past it. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf) return 0;
	if (size) memcpy(buf, data, size);
	char *err = NULL;
	st_model *m = safetensors_open_mem(buf, size, &err);
	if (!m && (!err || !*err)) abort(); /* a refusal always says why */
	free(err);
	if (m) {
		for (size_t i = 0; i < safetensors_count(m); i++) {
			const st_tensor *t = safetensors_at(m, i);
			const uint8_t *p = t->data;
			if (p < buf || p + t->nbytes > buf + size) abort();
			if (safetensors_find(m, t->name) != t) abort();
			float *out = malloc(t->numel * sizeof *out + 1);
			if (!out) continue;
			char *e = NULL;
			if (safetensors_to_f32(t, out, &e) != 0 && (t->dtype != ST_OTHER || !e)) abort();
			free(e);
			free(out);
		}
		(void)safetensors_metadata(m, "format");
		safetensors_close(m);
	}
	free(buf);
	return 0;
}

#include "replay.h"
