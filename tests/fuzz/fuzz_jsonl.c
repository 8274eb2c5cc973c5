/* Fuzz target for the JSONL reader (plain and zstd input), the JSON parser
 * and dumper, the UTF-8 check and the resume key: whatever the bytes, no
 * crash, no leak, no hang; and differentially, whatever json_parse accepts
 * libjq's parser reads as the same value, and json_dump writes it as
 * libjq's dumper does; json_parse_exact (a hub's metadata) accepts just
 * what json_parse accepts.
 *
 *   make fuzz                      libFuzzer, for FUZZ_SECONDS (clang)
 *   build/tests/fuzz_jsonl FILE... replay a corpus (built by make test)
 */
#include "../../lib/json.h"
#include "../../lib/jsonl.h"
#include "../../lib/resume.h"
#include "../../lib/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	utf8_check((const char *)data, size);
	size_t at;
	const char *why;
	jv ours = json_parse((const char *)data, size, &at, &why);
	if (jv_is_valid(ours) && size < (1u << 20)) {
		jv theirs = jv_parse_sized((const char *)data, (int)size);
		if (!jv_equal(jv_copy(ours), jv_copy(theirs))) abort();
		jbuf b = {0};
		json_dump(&b, ours);
		jv ref = jv_dump_string(theirs, 0);
		if (b.n != strlen(jv_string_value(ref)) || memcmp(b.p, jv_string_value(ref), b.n))
			abort();
		jv_free(ref);
		jbuf_free(&b);
	}
	size_t at2;
	const char *why2;
	jv exact = json_parse_exact((const char *)data, size, &at2, &why2);
	if (jv_is_valid(exact) != jv_is_valid(ours) || (!jv_is_valid(exact) && at2 != at)) abort();
	if (jv_get_kind(exact) == JV_KIND_STRING || jv_get_kind(exact) == JV_KIND_NUMBER) json_count_exact(exact);
	jv_free(exact);
	jv_free(ours);
	int fd = memfd_create("fuzz", 0);
	if (fd < 0) return 0;
	if (size && write(fd, data, size) != (ssize_t)size) { close(fd); return 0; }
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	char *err = NULL;
	jsonl_reader *r = jsonl_reader_open(path, &err);
	free(err);
	if (r) {
		FILE *null = fopen("/dev/null", "w");
		jv rec;
		int k, n = 0;
		while ((k = jsonl_reader_next(r, &rec)) != 0 && n++ < 10000) {
			if (k < 0) {
				if (jsonl_reader_fatal(r)) break;
				continue;
			}
			free(resume_key_id_sample(rec));
			jsonl_write(null, rec);
		}
		fclose(null);
		jsonl_reader_close(r);
	}
	close(fd);
	return 0;
}

#include "replay.h"
