/* idset: every key added is found, no key not added is, across growth. */
#include "../../lib/idset.h"
#include "testhelp.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
	idset *s = idset_new();
	char k[64];
	int all_new = 1, all_found = 1, none_extra = 1, dup_refused = 1;
	for (int i = 0; i < 100000; i++) {
		int n = snprintf(k, sizeof k, "AI-MO/NuminaMath-CoT/train/%d", i);
		all_new &= idset_add(s, k, (size_t)n);
	}
	for (int i = 0; i < 100000; i++) {
		int n = snprintf(k, sizeof k, "AI-MO/NuminaMath-CoT/train/%d", i);
		all_found &= idset_has(s, k, (size_t)n);
		dup_refused &= !idset_add(s, k, (size_t)n);
		n = snprintf(k, sizeof k, "AI-MO/NuminaMath-CoT/test/%d", i);
		none_extra &= !idset_has(s, k, (size_t)n);
	}
	EXPECT(all_new, "100000 distinct keys are all new");
	EXPECT(all_found, "every added key is found");
	EXPECT(dup_refused, "adding a key twice returns 0");
	EXPECT(none_extra, "keys never added are not found");
	EXPECT(idset_count(s) == 100000, "count");
	EXPECT(idset_add(s, "a\0b", 3) && !idset_has(s, "a", 1), "keys are byte strings, not C strings");
	idset_free(s);
	TEST_END();
}
