/* Fuzz target for ds-train's settings file (LLaMA-Factory-style YAML, read
 * with libyaml): whatever the text, loading either succeeds or fails with
 * "PATH:LINE: key: reason"; what loaded validates or is refused with a
 * message, and writes back out as YAML; never a crash or a leak.
 *
 *   make fuzz                            libFuzzer (clang)
 *   build/tests/fuzz_trainconf FILE...   replay a corpus (built by make test)
 */
#include "../../lib/trainconf.h"
#include "memfile.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = fuzz_memfile("fuzz-trainconf", data, size, path);
	if (fd < 0) return 0;
	train_config c;
	trainconf_defaults(&c);
	char *err = NULL;
	if (trainconf_load_yaml(&c, path, &err) != 0) {
		if (!err || !*err) abort();
	} else {
		size_t n;
		(void)trainconf_ignored(&c, &n);
		(void)trainconf_unknown(&c, &n);
		if (trainconf_validate(&c, &err) != 0 && (!err || !*err)) abort();
		FILE *null = fopen("/dev/null", "w");
		if (null) {
			if (trainconf_write_yaml(&c, null) != 0) abort();
			fclose(null);
		}
	}
	free(err);
	trainconf_free(&c);
	close(fd);
	return 0;
}

#include "replay.h"
