/* Fuzz target for math answers: extraction, normalisation, parsing and
 * comparison. Whatever the bytes, no crash, no leak, no hang; and an
 * answer that parses equals itself, and equality does not depend on the
 * order of the two sides when both parse.
 *
 *   make fuzz                        libFuzzer, for FUZZ_SECONDS (clang)
 *   build/tests/fuzz_mathans FILE... replay a corpus (built by make test)
 */
#include "../../lib/mathans.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 16) return 0;
	/* the input is "gold\npred", or one text used for both */
	char *s = malloc(size + 1);
	if (!s) return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	char *nl = strchr(s, '\n');
	const char *gold = s, *pred = s;
	if (nl) *nl = '\0', pred = nl + 1;
	char *x = mathans_extract(pred);
	free(mathans_normalize(gold));
	enum mathans_result r = mathans_equal(gold, x ? x : pred);
	if (x) {
		if (mathans_equal(x, x) != MATHANS_EQUAL) abort();
		enum mathans_result back = mathans_equal(x, gold);
		if (r == MATHANS_EQUAL && back == MATHANS_DIFFERENT) abort();
	}
	free(x);
	free(s);
	return 0;
}

#include "replay.h"
