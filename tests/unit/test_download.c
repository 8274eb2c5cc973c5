/* download: a file's digest as the hub names it, against the real tools:
 * sha256sum for LFS files, git hash-object for the others (git's blob
 * sha1), on an empty file, a short one and one of 3 MB (across reads). */
#include "../../lib/download.h"
#include "testhelp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first word cmd prints, into out (65 bytes). */
static int first_word(const char *cmd, char out[65])
{
	FILE *p = popen(cmd, "r");
	if (!p) return -1;
	int ok = fscanf(p, "%64s", out) == 1;
	return pclose(p) == 0 && ok ? 0 : -1;
}

static void check(const char *path, const char *what)
{
	char cmd[512], want[65] = "", got[65] = "", msg[160];
	snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
	int have = first_word(cmd, want) == 0;
	snprintf(msg, sizeof msg, "sha256 of %s = sha256sum", what);
	EXPECT(have && download_digest(path, "sha256", got) == 0 && strcmp(got, want) == 0, msg);
	snprintf(cmd, sizeof cmd, "git hash-object '%s'", path);
	have = first_word(cmd, want) == 0;
	snprintf(msg, sizeof msg, "git blob sha1 of %s = git hash-object", what);
	EXPECT(have && download_digest(path, "gitsha1", got) == 0 && strcmp(got, want) == 0, msg);
}

int main(void)
{
	char path[] = "/tmp/ds-test-download.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) return 1;
	check(path, "an empty file");
	FILE *f = fdopen(fd, "w");
	fputs("{\"model_type\": \"qwen2\"}\n", f);
	fflush(f);
	check(path, "a short file");
	unsigned x = 1;
	for (int i = 0; i < 3 * 1024 * 1024 + 17; i++) {
		x = x * 1103515245u + 12345u;
		fputc((int)(x >> 24), f);
	}
	fclose(f);
	check(path, "3 MB of bytes");
	char got[65];
	EXPECT(download_digest("/nonexistent/file", "sha256", got) == -1, "a missing file is -1");
	unlink(path);
	TEST_END();
}
