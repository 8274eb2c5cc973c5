/* Fuzz target for the token-shard reader (ds-shard(5)): whatever the bytes
 * (mutations of small valid streams, one of them two shards concatenated),
 * the reader yields samples that keep the format's promises (1 <= T <=
 * cutoff, documents non-empty and adding up to T, ids below the
 * vocabulary, mask bits 0/1), or stops with a reason; never a crash, an
 * out-of-bounds access or a leak.
 *
 *   make fuzz                        libFuzzer (clang)
 *   build/tests/fuzz_shard FILE...   replay a corpus (built by make test)
 */
#include "../../lib/shard.h"
#include "memfile.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = fuzz_memfile("fuzz-shard", data, size, path);
	if (fd < 0) return 0;
	char *err = NULL;
	shard_reader *r = shard_reader_open(path, &err);
	if (!r && (!err || !*err)) abort(); /* a refusal always says why */
	free(err);
	if (r) {
		const shard_header *h = shard_reader_header(r);
		shard_sample s;
		int k;
		while ((k = shard_reader_next(r, &s)) == 1) {
			if (s.n_tokens == 0 || s.n_tokens > h->cutoff_len || s.n_docs == 0) abort();
			uint64_t sum = 0;
			for (uint32_t i = 0; i < s.n_docs; i++) {
				if (s.doc_len[i] == 0) abort();
				sum += s.doc_len[i];
			}
			if (sum != s.n_tokens) abort();
			for (uint32_t i = 0; i < s.n_tokens; i++)
				if (s.ids[i] >= h->vocab_size || s.mask[i] > 1) abort();
		}
		if (k < 0 && !*shard_reader_error(r)) abort();
		shard_reader_close(r);
	}
	close(fd);
	return 0;
}

#include "replay.h"
