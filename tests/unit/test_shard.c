/* shard: what the writer writes the reader reads back, sample for sample;
 * two streams concatenated read as one; a later header for another
 * tokenizer is refused; every cut-short stream and every flipped byte is an
 * error (or, for a flip zstd absorbs, the same samples), never a crash. */
#include "../../lib/shard.h"
#include "testhelp.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define NS 12

static uint32_t ids[NS][300], dl[NS][4], df[NS][4], nt[NS], nd[NS];
static uint8_t mk[NS][300];
/* every third sample carries soft labels: SK alternatives at each trained
 * position that is not first of its document */
#define SK 3
static uint32_t sn[NS], spos[NS][300], sid[NS][300 * SK];
static float slp[NS][300 * SK];

static void make_samples(void)
{
	unsigned x = 7;
	for (int s = 0; s < NS; s++) {
		x = x * 1103515245u + 12345u;
		nd[s] = 1 + (x >> 16) % 4;
		nt[s] = 0;
		for (uint32_t d = 0; d < nd[s]; d++) {
			x = x * 1103515245u + 12345u;
			dl[s][d] = 1 + (x >> 16) % 70;
			df[s][d] = (x >> 8) & 1;
			nt[s] += dl[s][d];
		}
		for (uint32_t i = 0; i < nt[s]; i++) {
			x = x * 1103515245u + 12345u;
			ids[s][i] = (x >> 8) % 151665;
			mk[s][i] = (x >> 30) & 1;
		}
		sn[s] = 0;
		if (s % 3) continue;
		for (uint32_t d = 0, at = 0; d < nd[s]; at += dl[s][d++])
			for (uint32_t i = at + 1; i < at + dl[s][d]; i++) {
				if (!mk[s][i]) continue;
				for (int a = 0; a < SK; a++) {
					sid[s][sn[s] * SK + a] = (ids[s][i] + (uint32_t)a * 7919u) % 151665;
					slp[s][sn[s] * SK + a] = -0.25f * (float)(a + 1) - (float)(i % 5) * 0.01f;
				}
				spos[s][sn[s]++] = i;
			}
	}
}

static shard_sample sample(int s)
{
	shard_sample x = {.n_tokens = nt[s], .n_docs = nd[s], .ids = ids[s], .mask = mk[s], .doc_len = dl[s],
			  .doc_flags = df[s]};
	if (sn[s]) x.soft_k = SK, x.soft_n = sn[s], x.soft_pos = spos[s], x.soft_id = sid[s], x.soft_lp = slp[s];
	return x;
}

static shard_header header(uint8_t fp_byte)
{
	shard_header h = {.version = SHARD_VERSION, .vocab_size = 151665, .cutoff_len = 300,
			  .flags = SHARD_PACKED | SHARD_SOFT};
	memset(h.fingerprint, fp_byte, 32);
	strcpy(h.template_name, "qwen");
	return h;
}

static int write_stream(const char *path, const char *mode, uint8_t fp_byte)
{
	FILE *f = fopen(path, mode);
	if (!f) return -1;
	shard_header h = header(fp_byte);
	shard_writer *w = shard_writer_open(f, &h, 3);
	int rc = 0;
	for (int s = 0; s < NS; s++) {
		shard_sample x = sample(s);
		rc |= shard_writer_add(w, &x);
	}
	rc |= shard_writer_close(w);
	return fclose(f) || rc;
}

/* Read path; returns samples read and matched in order (modulo NS), -1 on
 * an error (message in err), -2 on a mismatch. */
static long read_stream(const char *path, char *err, size_t n)
{
	char *e = NULL;
	shard_reader *r = shard_reader_open(path, &e);
	if (!r) {
		snprintf(err, n, "%s", e);
		free(e);
		return -1;
	}
	shard_sample x;
	long got = 0;
	int k;
	while ((k = shard_reader_next(r, &x)) > 0) {
		int s = (int)(got % NS);
		if (x.n_tokens != nt[s] || x.n_docs != nd[s] ||
		    memcmp(x.ids, ids[s], nt[s] * 4) || memcmp(x.mask, mk[s], nt[s]) ||
		    memcmp(x.doc_len, dl[s], nd[s] * 4) || memcmp(x.doc_flags, df[s], nd[s] * 4) ||
		    x.soft_n != sn[s] || (sn[s] && (x.soft_k != SK || memcmp(x.soft_pos, spos[s], sn[s] * 4) ||
						    memcmp(x.soft_id, sid[s], sn[s] * SK * 4) ||
						    memcmp(x.soft_lp, slp[s], sn[s] * SK * 4)))) {
			got = -2;
			break;
		}
		got++;
	}
	if (k < 0) {
		snprintf(err, n, "%s", shard_reader_error(r));
		got = -1;
	}
	shard_reader_close(r);
	return got;
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b = malloc(1 << 20);
	*n = fread(b, 1, 1 << 20, f);
	fclose(f);
	return b;
}

static void spit(const char *path, const void *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	fwrite(b, 1, n, f);
	fclose(f);
}

int main(void)
{
	make_samples();
	char path[] = "/tmp/ds-test-shard.XXXXXX", cut[] = "/tmp/ds-test-shard-cut.XXXXXX";
	int fd = mkstemp(path), fd2 = mkstemp(cut);
	close(fd), close(fd2);
	char err[600];

	EXPECT(write_stream(path, "wb", 1) == 0, "writer writes 12 samples");
	EXPECT(read_stream(path, err, sizeof err) == NS, "reader reads them back, field for field");
	{
		char *e = NULL;
		shard_reader *r = shard_reader_open(path, &e);
		const shard_header *h = shard_reader_header(r);
		EXPECT(h->vocab_size == 151665 && h->cutoff_len == 300 && h->flags == (SHARD_PACKED | SHARD_SOFT) &&
			       !strcmp(h->template_name, "qwen") && h->fingerprint[31] == 1,
		       "the header reads back");
		shard_reader_close(r);
	}

	size_t n;
	char *one = slurp(path, &n);
	EXPECT(write_stream(path, "ab", 1) == 0 && read_stream(path, err, sizeof err) == 2 * NS,
	       "two streams concatenated read as one");
	EXPECT(write_stream(path, "ab", 2) == 0 && read_stream(path, err, sizeof err) == -1 &&
		       strstr(err, "another tokenizer"),
	       "a third part made with another tokenizer is refused");

	int all_err = 1;
	for (size_t k = 0; k < n; k++) {
		spit(cut, one, k);
		if (read_stream(cut, err, sizeof err) != -1) all_err = 0;
	}
	EXPECT(all_err, "every cut-short stream (each prefix) is an error");

	int no_silent = 1;
	for (size_t k = 0; k < n; k++) {
		one[k] ^= 0x41;
		spit(cut, one, n);
		long r = read_stream(cut, err, sizeof err);
		if (r != -1 && r != NS) no_silent = 0;
		one[k] ^= 0x41;
	}
	EXPECT(no_silent, "a flipped byte of the compressed stream: an error or the same samples");

	/* The decompressed stream, corrupted past the header: always an error. */
	size_t cap = ZSTD_getFrameContentSize(one, n) == ZSTD_CONTENTSIZE_UNKNOWN
			     ? 1 << 20 : (size_t)ZSTD_getFrameContentSize(one, n);
	char *raw = malloc(cap);
	size_t m = ZSTD_decompress(raw, cap, one, n);
	EXPECT(!ZSTD_isError(m) && m > 80, "the stream decompresses with libzstd");
	spit(cut, raw, m);
	EXPECT(read_stream(cut, err, sizeof err) == NS, "an uncompressed stream reads too");
	int all_bad = 1;
	for (size_t k = 80; k < m; k += 3) {
		raw[k] ^= 0x10;
		spit(cut, raw, m);
		if (read_stream(cut, err, sizeof err) != -1) all_bad = 0;
		raw[k] ^= 0x10;
	}
	EXPECT(all_bad, "a flipped bit in any sample or its soft labels is an error (checksum, bounds)");
	raw[56] &= (char)~SHARD_SOFT; /* the header without its soft-label flag, its CRC-32 0 (unchecked) */
	memset(raw + 76, 0, 4);
	spit(cut, raw, m);
	EXPECT(read_stream(cut, err, sizeof err) == -1 && strstr(err, "no soft-label flag"),
	       "soft labels in a stream whose header does not announce them are refused");
	spit(cut, "", 0);
	EXPECT(read_stream(cut, err, sizeof err) == -1 && strstr(err, "empty"), "empty input is an error");
	spit(cut, "{\"a\":1}\n", 8);
	EXPECT(read_stream(cut, err, sizeof err) == -1 && strstr(err, "not a shard stream"),
	       "JSON is not a shard stream");

	/* The writer refuses samples the header does not allow. */
	FILE *f = fopen(cut, "wb");
	shard_header h = header(1);
	shard_writer *w = shard_writer_open(f, &h, 3);
	uint32_t big[2] = {151665, 0}, len2 = 2, len1 = 1, fl = 0;
	uint8_t m2[2] = {1, 0}, m3[2] = {2, 0};
	shard_sample bad_id = {.n_tokens = 2, .n_docs = 1, .ids = big, .mask = m2,
			       .doc_len = &len2, .doc_flags = &fl};
	shard_sample bad_docs = {.n_tokens = 2, .n_docs = 1, .ids = big + 1, .mask = m2,
			       .doc_len = &len1, .doc_flags = &fl};
	shard_sample bad_mask = {.n_tokens = 2, .n_docs = 1, .ids = ids[0], .mask = m3,
			       .doc_len = &len2, .doc_flags = &fl};
	EXPECT(shard_writer_add(w, &bad_id) == -1 && shard_writer_add(w, &bad_docs) == -1 &&
		       shard_writer_add(w, &bad_mask) == -1,
	       "the writer refuses an id outside the vocabulary, documents that do not add up, a mask of 2");
	uint32_t pos0 = 0, pos1 = 1, sid2[2] = {5, 5}, sid1[2] = {5, 6};
	float lp_ok[2] = {-0.1f, -2.0f}, lp_pos[2] = {0.5f, -1.0f};
	uint8_t m01[2] = {0, 1}, m00[2] = {0, 0};
	uint32_t two[2] = {1, 2};
	shard_sample soft_first = {2, 1, two, m01, &len2, &fl, 2, 1, &pos0, sid1, lp_ok};
	shard_sample soft_untrained = {2, 1, two, m00, &len2, &fl, 2, 1, &pos1, sid1, lp_ok};
	shard_sample soft_twice = {2, 1, two, m01, &len2, &fl, 2, 1, &pos1, sid2, lp_ok};
	shard_sample soft_positive = {2, 1, two, m01, &len2, &fl, 2, 1, &pos1, sid1, lp_pos};
	shard_sample soft_good = {2, 1, two, m01, &len2, &fl, 2, 1, &pos1, sid1, lp_ok};
	EXPECT(shard_writer_add(w, &soft_first) == -1 && shard_writer_add(w, &soft_untrained) == -1 &&
		       shard_writer_add(w, &soft_twice) == -1 && shard_writer_add(w, &soft_positive) == -1 &&
		       shard_writer_add(w, &soft_good) == 0,
	       "the writer refuses soft labels on a document's first token, on an untrained token, an id twice, "
	       "a log-probability > 0");
	shard_writer_close(w);
	fclose(f);

	free(one);
	free(raw);
	unlink(path), unlink(cut);
	TEST_END();
}
