/* replay.h — the main of every fuzz target when it is built without
 * libFuzzer (make test builds them so): run LLVMFuzzerTestOneInput once on
 * each file named on the command line, the corpus replay. Include it last;
 * `make fuzz` defines FUZZING and libFuzzer brings its own main. */
#ifndef FUZZING
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 1;
		}
		size_t n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("%s: replayed %d inputs\n", argv[0], argc - 1);
	return 0;
}
#endif
