/* zstdio.c — transparent zstd reading and zstd writing. */
#include "zstdio.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* ---- reader ----------------------------------------------------------- */

struct zreader {
	int fd, own_fd;
	int zstd;              /* 1: decompressing */
	ZSTD_DStream *ds;
	unsigned char *in;     /* raw input buffer */
	size_t in_cap;
	ZSTD_inBuffer ib;      /* view of in[] not yet consumed */
	size_t frame_left;     /* last ZSTD_decompressStream hint; 0 = between frames */
	int pending;           /* the decoder may hold output it has not given yet */
	int eof;
	uint64_t bytes_in;
	int64_t size;
	char err[256];
};

static char *fmt_err(const char *path, const char *why)
{
	size_t n = strlen(path) + strlen(why) + 3;
	char *s = xmalloc(n);
	snprintf(s, n, "%s: %s", path, why);
	return s;
}

/* Fill r->in when it is empty. Returns bytes read, 0 at EOF, -1 error. */
static ssize_t refill(zreader *r)
{
	if (r->ib.pos < r->ib.size) return (ssize_t)(r->ib.size - r->ib.pos);
	if (r->eof) return 0;
	ssize_t k;
	do k = read(r->fd, r->in, r->in_cap);
	while (k < 0 && errno == EINTR);
	if (k < 0) {
		snprintf(r->err, sizeof r->err, "read error: %s", strerror(errno));
		return -1;
	}
	if (k == 0) r->eof = 1;
	r->ib.src = r->in;
	r->ib.size = (size_t)k;
	r->ib.pos = 0;
	r->bytes_in += (uint64_t)k;
	return k;
}

zreader *zreader_open(const char *path, char **err)
{
	int fd = STDIN_FILENO, own = 0;
	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			*err = fmt_err(path, strerror(errno));
			return NULL;
		}
		own = 1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		*err = fmt_err(path, "is a directory");
		if (own) close(fd);
		return NULL;
	}
	zreader *r = xcalloc(1, sizeof *r);
	r->fd = fd;
	r->own_fd = own;
	r->size = (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) ? (int64_t)st.st_size : -1;
	r->in_cap = ZSTD_DStreamInSize();
	if (r->in_cap < 65536) r->in_cap = 65536;
	r->in = xmalloc(r->in_cap);
	/* Sniff the magic: read until we have four bytes or the end. */
	while (r->ib.size < 4 && !r->eof) {
		ssize_t k;
		do k = read(fd, r->in + r->ib.size, r->in_cap - r->ib.size);
		while (k < 0 && errno == EINTR);
		if (k < 0) {
			*err = fmt_err(path, strerror(errno));
			zreader_close(r);
			return NULL;
		}
		if (k == 0) r->eof = 1;
		r->ib.size += (size_t)k;
		r->bytes_in += (uint64_t)k;
	}
	r->ib.src = r->in;
	static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
	if (r->ib.size >= 4 && (memcmp(r->in, magic, 4) == 0 ||
				((r->in[0] & 0xF0) == 0x50 && r->in[1] == 0x2A &&
				 r->in[2] == 0x4D && r->in[3] == 0x18))) { /* skippable */
		r->zstd = 1;
		r->ds = ZSTD_createDStream();
		if (!r->ds) {
			*err = fmt_err(path, "cannot create zstd decoder");
			zreader_close(r);
			return NULL;
		}
		ZSTD_initDStream(r->ds);
	}
	return r;
}

ssize_t zreader_read(zreader *r, void *buf, size_t n)
{
	if (n == 0) return 0;
	if (!r->zstd) {
		if (r->ib.pos < r->ib.size) { /* what the sniff read */
			size_t k = r->ib.size - r->ib.pos;
			if (k > n) k = n;
			memcpy(buf, r->in + r->ib.pos, k);
			r->ib.pos += k;
			return (ssize_t)k;
		}
		if (r->eof) return 0;
		ssize_t k;
		do k = read(r->fd, buf, n);
		while (k < 0 && errno == EINTR);
		if (k < 0) {
			snprintf(r->err, sizeof r->err, "read error: %s", strerror(errno));
			return -1;
		}
		if (k == 0) r->eof = 1;
		r->bytes_in += (uint64_t)k;
		return k;
	}
	ZSTD_outBuffer ob = {buf, n, 0};
	while (ob.pos == 0) {
		if (!r->pending) {
			ssize_t k = refill(r);
			if (k < 0) return -1;
			if (k == 0) {
				if (r->frame_left != 0) {
					snprintf(r->err, sizeof r->err, "truncated zstd stream");
					return -1;
				}
				return 0;
			}
		}
		size_t ret = ZSTD_decompressStream(r->ds, &ob, &r->ib);
		if (ZSTD_isError(ret)) {
			snprintf(r->err, sizeof r->err, "corrupt zstd stream: %s",
				 ZSTD_getErrorName(ret));
			return -1;
		}
		r->frame_left = ret;
		r->pending = ob.pos == ob.size;
	}
	return (ssize_t)ob.pos;
}

const char *zreader_error(const zreader *r) { return r->err; }
uint64_t zreader_bytes_in(const zreader *r) { return r->bytes_in; }
int64_t zreader_size(const zreader *r) { return r->size; }
int zreader_is_zstd(const zreader *r) { return r->zstd; }

void zreader_close(zreader *r)
{
	if (!r) return;
	if (r->ds) ZSTD_freeDStream(r->ds);
	if (r->own_fd) close(r->fd);
	free(r->in);
	free(r);
}

char *zreader_slurp(const char *path, size_t *len, char **err)
{
	zreader *z = zreader_open(path, err);
	if (!z) return NULL;
	size_t cap = 1 << 20, n = 0;
	char *buf = xmalloc(cap);
	ssize_t k;
	while ((k = zreader_read(z, buf + n, cap - n)) > 0) {
		n += (size_t)k;
		if (n == cap) buf = xrealloc(buf, cap *= 2);
	}
	if (k < 0) {
		*err = fmt_err(path, zreader_error(z));
		free(buf);
		buf = NULL;
	}
	zreader_close(z);
	*len = n;
	return buf;
}

/* ---- writer ----------------------------------------------------------- */

struct zwriter {
	FILE *f;
	ZSTD_CStream *cs;
	unsigned char *out;
	size_t out_cap;
};

zwriter *zwriter_new(FILE *f, int level)
{
	zwriter *w = xcalloc(1, sizeof *w);
	w->f = f;
	w->cs = ZSTD_createCStream();
	if (!w->cs) {
		fprintf(stderr, "zstd: cannot create encoder\n");
		exit(1);
	}
	ZSTD_initCStream(w->cs, level);
	w->out_cap = ZSTD_CStreamOutSize();
	w->out = xmalloc(w->out_cap);
	return w;
}

/* Run the encoder with directive op until it has nothing more to say. */
static int pump(zwriter *w, ZSTD_inBuffer *ib, ZSTD_EndDirective op)
{
	for (;;) {
		ZSTD_outBuffer ob = {w->out, w->out_cap, 0};
		size_t left = ZSTD_compressStream2(w->cs, &ob, ib, op);
		if (ZSTD_isError(left)) {
			errno = EIO;
			return -1;
		}
		if (ob.pos && fwrite(w->out, 1, ob.pos, w->f) != ob.pos) return -1;
		int done = op == ZSTD_e_continue ? ib->pos == ib->size : left == 0;
		if (done) return 0;
	}
}

int zwriter_write(zwriter *w, const void *buf, size_t n)
{
	ZSTD_inBuffer ib = {buf, n, 0};
	return pump(w, &ib, ZSTD_e_continue);
}

int zwriter_flush(zwriter *w)
{
	ZSTD_inBuffer ib = {NULL, 0, 0};
	if (pump(w, &ib, ZSTD_e_flush) != 0) return -1;
	return fflush(w->f);
}

int zwriter_close(zwriter *w)
{
	ZSTD_inBuffer ib = {NULL, 0, 0};
	int rc = pump(w, &ib, ZSTD_e_end);
	ZSTD_freeCStream(w->cs);
	free(w->out);
	free(w);
	return rc;
}
