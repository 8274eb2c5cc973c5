/* testhelp.h — the smallest unit-test harness that does the job (after
 * antirez's testhelp.h). EXPECT(cond, what) records one case; each case
 * goes to $DS_TEST_RESULTS for tests/run.sh to count. */
#ifndef DS_TESTHELP_H
#define DS_TESTHELP_H

#include <stdio.h>
#include <stdlib.h>

static int th_failed;

static void th_record(const char *file, int line, int ok, const char *what)
{
	const char *path = getenv("DS_TEST_RESULTS");
	FILE *f = path ? fopen(path, "a") : NULL;
	printf("%s %s: %s\n", ok ? "ok  " : "FAIL", file, what);
	if (!ok) {
		printf("     | at %s:%d\n", file, line);
		th_failed = 1;
	}
	if (f) {
		fprintf(f, "%s %s: %s\n", ok ? "pass" : "fail", file, what);
		fclose(f);
	}
}

#define EXPECT(cond, what) th_record(__FILE__, __LINE__, !!(cond), what)
#define TEST_END() return th_failed

#endif
