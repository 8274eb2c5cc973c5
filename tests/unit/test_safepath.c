/* safepath: names a hub may list, checked; files reached below a folder
 * without following a symlink out of it. And http's URL helpers for the
 * same job (where a token may go): RFC 3986 section 5.4's reference
 * resolution examples, and origins as RFC 6454 defines them. */
#include "../../lib/http.h"
#include "../../lib/safepath.h"
#include "testhelp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int checked(const char *s, size_t n)
{
	const char *why;
	return safepath_check(s, n, &why);
}

int main(void)
{
	static const char *const good[] = {"config.json", "sub/notes.txt", "a/b/c/d.bin", ".gitattributes",
					   "..hidden", "a/..b/c", "x.", "onnx/model.onnx_data", "dir with space/f"};
	int all = 1;
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) all &= checked(good[i], strlen(good[i])) == 0;
	EXPECT(all, "ordinary repo paths pass (dot files, '..' inside a name, spaces)");
	static const char *const bad[] = {"", "/etc/passwd", "../x", "a/../../x", "a/..", "..", ".", "./a",
					  "a/./b", "a//b", "a/", "a\\b", "..\\x", "a\nb", "a\x7f"};
	all = 1;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (checked(bad[i], strlen(bad[i])) == 0) all = 0, printf("     | accepted '%s'\n", bad[i]);
	EXPECT(all, "empty, absolute, '.'/'..' segments, empty segments, backslash, control characters refused");
	EXPECT(checked("a\0b", 3) != 0, "a NUL inside the name refused (the length is the JSON string's)");

	char top[] = "/tmp/ds-test-safepath.XXXXXX";
	if (!mkdtemp(top)) return 1;
	char root_path[128], outside[128], cmd[400];
	snprintf(root_path, sizeof root_path, "%s/root", top);
	snprintf(outside, sizeof outside, "%s/outside", top);
	mkdir(root_path, 0777);
	mkdir(outside, 0777);
	int root = open(root_path, O_RDONLY | O_DIRECTORY);
	int fd = safepath_open(root, "a/b/c.txt", O_WRONLY | O_CREAT, 0666);
	EXPECT(fd >= 0 && write(fd, "hi", 2) == 2, "a file below new folders is created");
	if (fd >= 0) close(fd);
	struct stat st;
	EXPECT(safepath_stat(root, "a/b/c.txt", &st) == 0 && st.st_size == 2, "and found again");
	EXPECT(safepath_rename(root, "a/b/c.txt", "d/e.txt") == 0 && safepath_stat(root, "d/e.txt", &st) == 0,
	       "renamed into a folder made on the way");

	/* A symlink inside the folder: to a folder outside, and to a file outside. */
	char link[160], target[160];
	snprintf(link, sizeof link, "%s/evil", root_path);
	if (symlink(outside, link) != 0) return 1;
	errno = 0;
	fd = safepath_open(root, "evil/x.txt", O_WRONLY | O_CREAT, 0666);
	EXPECT(fd < 0 && (errno == ELOOP || errno == ENOTDIR), "a symlinked folder on the way is an error");
	snprintf(link, sizeof link, "%s/f", root_path);
	snprintf(target, sizeof target, "%s/f", outside);
	if (symlink(target, link) != 0) return 1;
	fd = safepath_open(root, "f", O_WRONLY | O_CREAT, 0666);
	EXPECT(fd < 0 && errno == ELOOP, "a symlink as the file itself is not opened");
	EXPECT(safepath_stat(root, "f", &st) == 0 && S_ISLNK(st.st_mode), "stat sees the link, not its target");
	EXPECT(safepath_rename(root, "d/e.txt", "f") == 0 && safepath_stat(root, "f", &st) == 0 && S_ISREG(st.st_mode),
	       "a rename replaces a planted symlink instead of writing through it");
	snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", outside);
	EXPECT(system(cmd) == 0, "nothing was written outside the folder");
	close(root);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
	if (system(cmd) != 0) return 1;

	/* RFC 3986 5.4.1 and 5.4.2, base http://a/b/c/d;p?q. */
	static const char *const ref[][2] = {
		{"g", "http://a/b/c/g"},     {"./g", "http://a/b/c/g"},         {"g/", "http://a/b/c/g/"},
		{"/g", "http://a/g"},        {"?y", "http://a/b/c/d;p?y"},      {"g?y", "http://a/b/c/g?y"},
		{"g;x", "http://a/b/c/g;x"}, {"", "http://a/b/c/d;p?q"},        {"..", "http://a/b/"},
		{"../g", "http://a/b/g"},    {"../../g", "http://a/g"},         {"../../../g", "http://a/g"},
		{"/./g", "http://a/g"},      {"g.", "http://a/b/c/g."},         {"g/../h", "http://a/b/c/h"},
		{"https://cdn.example/x?Signature=a%2Bb", "https://cdn.example/x?Signature=a%2Bb"},
	};
	all = 1;
	for (size_t i = 0; i < sizeof ref / sizeof *ref; i++) {
		char *got = http_resolve("http://a/b/c/d;p?q", ref[i][0]);
		if (!got || strcmp(got, ref[i][1])) all = 0, printf("     | '%s' -> %s, want %s\n", ref[i][0], got, ref[i][1]);
		free(got);
	}
	EXPECT(all, "http_resolve: RFC 3986's reference resolution examples");
	char *rc = http_resolve("http://127.0.0.1:8000/Qwen/Tiny/resolve/main/config.json",
				"/api/resolve-cache/models/Qwen/Tiny/0123/config.json?%2FQwen%2FTiny=&etag=%22ab%22");
	EXPECT(rc && !strcmp(rc, "http://127.0.0.1:8000/api/resolve-cache/models/Qwen/Tiny/0123/config.json?%2FQwen%2FTiny=&etag=%22ab%22"),
	       "http_resolve: the hub's relative 307 keeps its query byte for byte");
	free(rc);
	EXPECT(http_same_origin("https://huggingface.co/a", "https://HuggingFace.co:443/b?c") &&
		       http_same_origin("http://127.0.0.1:8000/x", "http://127.0.0.1:8000/api/y"),
	       "same origin: host in any case, the default port written or not");
	EXPECT(!http_same_origin("http://127.0.0.1:8000/x", "http://localhost:8000/x") &&
		       !http_same_origin("http://127.0.0.1:8000/x", "http://127.0.0.1:8001/x") &&
		       !http_same_origin("https://huggingface.co/", "http://huggingface.co/") &&
		       !http_same_origin("https://huggingface.co/", "https://cas-bridge.xethub.hf.co/x") &&
		       !http_same_origin("https://huggingface.co/", "file:///etc/passwd"),
	       "other origin: another host name, port or scheme, or not a web URL");
	EXPECT(http_is_web_url("HTTPS://x/") && !http_is_web_url("file:///etc/passwd") && !http_is_web_url("/relative"),
	       "only http(s) URLs are web URLs");
	TEST_END();
}
