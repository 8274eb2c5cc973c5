/* zstdio: what zwriter writes, libzstd's one-shot decoder reads back; what
 * zreader reads equals the original for plain input, for a frame, and for
 * two frames concatenated; a cut-short stream is an error, not an end. */
#include "../../lib/zstdio.h"
#include "testhelp.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

static char *read_all(const char *path, size_t *n, int *err)
{
	char *e = NULL;
	zreader *r = zreader_open(path, &e);
	*err = 0;
	*n = 0;
	if (!r) { free(e); *err = 1; return NULL; }
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	ssize_t k;
	while ((k = zreader_read(r, buf + *n, 777)) > 0) {  /* odd sizes on purpose */
		*n += (size_t)k;
		if (*n + 777 > cap) buf = realloc(buf, cap *= 2);
	}
	if (k < 0) *err = 1;
	zreader_close(r);
	return buf;
}

int main(void)
{
	size_t n = 3 << 20;
	char *data = malloc(n);
	unsigned x = 1;
	for (size_t i = 0; i < n; i++) { /* compressible but not trivial */
		x = x * 1103515245u + 12345u;
		data[i] = "abcdefgh \n{}\":"[(x >> 16) % 14];
	}
	char path[] = "/tmp/ds-test-zstdio.XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w+");

	/* Two frames, the second after a flush, as `cat a.zst b.zst` gives. */
	zwriter *w = zwriter_new(f, 3);
	EXPECT(zwriter_write(w, data, n / 2) == 0, "zwriter_write");
	EXPECT(zwriter_flush(w) == 0, "zwriter_flush");
	EXPECT(zwriter_close(w) == 0, "zwriter_close ends frame 1");
	w = zwriter_new(f, 3);
	zwriter_write(w, data + n / 2, n - n / 2);
	EXPECT(zwriter_close(w) == 0, "zwriter_close ends frame 2");
	fflush(f);

	/* The reference: libzstd's one-shot API on the whole file. */
	long clen = ftell(f);
	char *comp = malloc((size_t)clen);
	rewind(f);
	EXPECT(fread(comp, 1, (size_t)clen, f) == (size_t)clen, "read back compressed");
	char *plain = malloc(n);
	size_t got = ZSTD_decompress(plain, n, comp, (size_t)clen);
	EXPECT(!ZSTD_isError(got) && got == n && memcmp(plain, data, n) == 0,
	       "libzstd decodes what zwriter wrote");

	int err;
	size_t m;
	char *back = read_all(path, &m, &err);
	EXPECT(!err && m == n && memcmp(back, data, n) == 0, "zreader reads two frames");
	free(back);

	/* Cut the stream short: the reader must say so. */
	fclose(f);
	EXPECT(truncate(path, clen - 10) == 0, "truncate");
	back = read_all(path, &m, &err);
	EXPECT(err, "a cut-short zstd stream is an error");
	free(back);

	/* Plain input passes through, including a file shorter than the magic. */
	f = fopen(path, "w");
	fwrite(data, 1, 100000, f);
	fclose(f);
	back = read_all(path, &m, &err);
	EXPECT(!err && m == 100000 && memcmp(back, data, m) == 0, "plain input passes through");
	free(back);
	f = fopen(path, "w");
	fputs("ab", f);
	fclose(f);
	back = read_all(path, &m, &err);
	EXPECT(!err && m == 2 && memcmp(back, "ab", 2) == 0, "two-byte plain file");
	free(back);

	char *e = NULL;
	EXPECT(zreader_open("/nonexistent/x", &e) == NULL && e && strstr(e, "No such file"),
	       "a missing file is reported");
	free(e);
	e = NULL;
	EXPECT(zreader_open("/tmp", &e) == NULL && e && strstr(e, "directory"),
	       "a directory is reported");
	free(e);

	unlink(path);
	free(data); free(comp); free(plain);
	TEST_END();
}
