/* download.c — resumable, verified downloads from the hub. */
#include "download.h"
#include "check.h"
#include "cli.h"
#include "clock.h"
#include "safepath.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A digest ready for a file's bytes: sha256, or git's blob sha1, which
 * starts with "blob SIZE" and its NUL. */
static EVP_MD_CTX *digest_new(int git, long long size)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx) return NULL;
	EVP_DigestInit_ex(ctx, git ? EVP_sha1() : EVP_sha256(), NULL);
	if (git) {
		char head[64];
		int n = snprintf(head, sizeof head, "blob %lld", size);
		EVP_DigestUpdate(ctx, head, (size_t)n + 1);
	}
	return ctx;
}

/* Finish and free ctx; hex gets the digest in lowercase hex. */
static void digest_end(EVP_MD_CTX *ctx, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

int download_digest_fd(int fd, const char *kind, char hex[65])
{
	struct stat st;
	int git = strcmp(kind, "gitsha1") == 0;
	EVP_MD_CTX *ctx = fstat(fd, &st) == 0 ? digest_new(git, (long long)st.st_size) : NULL;
	if (!ctx) return -1;
	static _Thread_local unsigned char buf[1 << 20];
	off_t at = 0;
	ssize_t k;
	while ((k = pread(fd, buf, sizeof buf, at)) != 0) {
		if (k < 0 && errno == EINTR) continue;
		if (k < 0) break;
		EVP_DigestUpdate(ctx, buf, (size_t)k);
		at += k;
	}
	digest_end(ctx, hex);
	return k < 0 ? -1 : 0;
}

int download_digest(const char *path, const char *kind, char hex[65])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	int rc = download_digest_fd(fd, kind, hex);
	close(fd);
	return rc;
}

/* A digest to be fed as the bytes arrive, so a finished download needs no
 * second pass over the file. */
static EVP_MD_CTX *hash_begin(const download_req *q)
{
	int git = q->sha256 == NULL;
	if (!q->sha256 && !q->git_sha1) return NULL;
	if (git && q->size < 0) return NULL; /* git's header needs the size */
	return digest_new(git, q->size); /* what the part file holds already is hashed by the hasher */
}

/* The size of the file rel below root, or -1 when there is none. */
static long long file_size(int root, const char *rel)
{
	struct stat st;
	return safepath_stat(root, rel, &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size : -1;
}

/* Where the bytes really are. The resolve URL answers a HEAD with 200 (a
 * file served there), a redirect within the hub (today's hub sends small
 * files by a relative 307 to /api/resolve-cache/...), followed here with
 * the token, or a redirect to another origin (an LFS file on the CDN),
 * which is the target and never sees the token. Returns 0 with *target
 * owned, or -1. */
static int locate(const download_req *q, const http_retry *pol, char **target, char *err, size_t errlen)
{
	char *url = xstrdup(q->url);
	*target = NULL;
	for (int hop = 0; hop <= 10; hop++) {
		http_opts ho = {.bearer = http_same_origin(url, q->url) ? q->bearer : NULL, .head = 1};
		http_reply r;
		if (http_get_retry(url, &ho, pol, &r, err, errlen, NULL) != 0) break;
		long status = r.status;
		char *next = r.location;
		r.location = NULL;
		http_reply_free(&r);
		if (status / 100 == 2) {
			*target = url;
			url = NULL;
			break;
		}
		if (status < 300 || status >= 400) {
			snprintf(err, errlen, "HTTP %ld%s", status,
				 status == 401 || status == 403 ? " (gated or private? set HF_TOKEN or log in)"
				 : status == 404 ? " (no such file or revision)" : "");
			free(next);
			break;
		}
		if (!next || !http_is_web_url(next)) {
			snprintf(err, errlen, "HTTP %ld %s; not followed", status, next ? "to a URL that is not http(s)" : "without a Location");
			free(next);
			break;
		}
		if (!http_same_origin(next, q->url)) { /* the CDN */
			*target = next;
			break;
		}
		free(url);
		url = next;
		if (hop == 10) snprintf(err, errlen, "more than 10 redirects");
	}
	free(url);
	return *target ? 0 : -1;
}

/* The digest is taken on a thread of its own, from the part file as the
 * receiving thread appends to it: the bytes are still in the page cache,
 * and SHA-256 (about 1.8 GB/s a core with SHA-NI) no longer adds its time
 * to the download's on a fast link. Whatever an earlier attempt or run
 * left in the part file is hashed the same way, from where the digest
 * stopped. */
struct hasher {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fd;            /* the part file, read-only */
	EVP_MD_CTX *ctx;
	long long *hashed; /* bytes the digest has seen */
	long long avail;   /* bytes of the file written so far */
	int done, idle, failed;
};

static void *hasher_main(void *arg)
{
	struct hasher *h = arg;
	static _Thread_local unsigned char buf[1 << 20];
	for (;;) {
		pthread_mutex_lock(&h->mu);
		while (*h->hashed >= h->avail && !h->done) {
			h->idle = 1;
			pthread_cond_wait(&h->cv, &h->mu);
			h->idle = 0;
		}
		long long upto = h->avail;
		int last = h->done;
		pthread_mutex_unlock(&h->mu);
		while (*h->hashed < upto) {
			size_t want = (size_t)(upto - *h->hashed) < sizeof buf ? (size_t)(upto - *h->hashed) : sizeof buf;
			ssize_t k = pread(h->fd, buf, want, *h->hashed);
			if (k < 0 && errno == EINTR) continue;
			if (k <= 0) {
				h->failed = 1;
				return NULL;
			}
			EVP_DigestUpdate(h->ctx, buf, (size_t)k);
			*h->hashed += k;
		}
		if (last) return NULL;
	}
}

/* Start hashing the part file from *hashed up to its first `have` bytes, and on as
 * hasher_more reports more. Returns 0, or -1 (no thread: hash it after). */
static int hasher_start(struct hasher *h, EVP_MD_CTX *ctx, int root, const char *part, long long *hashed,
			long long have)
{
	*h = (struct hasher){.ctx = ctx, .hashed = hashed, .avail = have};
	h->fd = safepath_open(root, part, O_RDONLY, 0);
	if (h->fd < 0) return -1;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (pthread_create(&h->th, NULL, hasher_main, h) != 0) {
		close(h->fd);
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->cv);
		return -1;
	}
	return 0;
}

static void hasher_more(struct hasher *h, long long n)
{
	pthread_mutex_lock(&h->mu);
	h->avail += n;
	if (h->idle) pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* Wait until the digest has seen every byte written. Returns 0, or -1
 * when the file could not be read back (the digest is then incomplete). */
static int hasher_finish(struct hasher *h)
{
	pthread_mutex_lock(&h->mu);
	h->done = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	close(h->fd);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	return h->failed ? -1 : 0;
}

/* libcurl hands the body over 16 KB at a time; the part file and the
 * digest get it a megabyte at a time (a 256 MB file: 256 writes and
 * wake-ups of the hasher instead of 16,384; on loopback 0.38 -> 0.26 s of
 * CPU), or whatever came in the last quarter second on a slow link. What
 * is still in the buffer when a run dies is simply fetched again:
 * resuming starts at the file's length. */
enum { SPOOL_BYTES = 1 << 20 };
#define SPOOL_SECONDS 0.25

struct spool {
	int fd;
	_Atomic long long *progress;
	struct hasher *hash; /* or NULL */
	char *buf;
	size_t n;
	double flushed_at; /* monotonic seconds */
	int failed; /* a write failed: errno kept in err */
	int err;
};

static int spool_flush(struct spool *k)
{
	size_t done = 0;
	while (done < k->n) {
		ssize_t w = write(k->fd, k->buf + done, k->n - done);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) {
			k->failed = 1;
			k->err = w < 0 ? errno : ENOSPC;
			break;
		}
		done += (size_t)w;
	}
	if (k->hash && done) hasher_more(k->hash, (long long)done);
	k->n = 0;
	k->flushed_at = now_s();
	return k->failed ? -1 : 0;
}

static size_t spool_write(void *c, const char *buf, size_t n)
{
	struct spool *k = c;
	if (k->failed) return 0;
	size_t took = 0;
	while (took < n) {
		size_t m = n - took < SPOOL_BYTES - k->n ? n - took : SPOOL_BYTES - k->n;
		memcpy(k->buf + k->n, buf + took, m);
		k->n += m;
		took += m;
		if (k->n == SPOOL_BYTES && spool_flush(k) != 0) return 0; /* libcurl stops: write error */
	}
	if (k->n && now_s() - k->flushed_at >= SPOOL_SECONDS && spool_flush(k) != 0) return 0;
	if (k->progress) atomic_fetch_add(k->progress, (long long)n);
	return n;
}

int download_file(const download_req *q, const http_retry *pol, _Atomic long long *progress,
		  char *err, size_t errlen)
{
	char *target = NULL;
	if (locate(q, pol, &target, err, errlen)) return -1;
	/* The token goes where the resolve URL went: a file the hub serves
	 * itself needs it (gated repos); the CDN's signed URL must not get it. */
	const char *bearer = http_same_origin(target, q->url) ? q->bearer : NULL;
	int rc = -1;
	EVP_MD_CTX *hash = NULL;
	long long hashed = 0; /* bytes of the part file the digest has seen */
	double waited = 0;   /* seconds spent waiting on the server */
	for (int attempt = 0; attempt < pol->attempts; attempt++) {
		long long have = file_size(q->root, q->part);
		if (have < 0) have = 0;
		if (q->size >= 0 && have > q->size) { /* longer than the file: start over */
			safepath_unlink(q->root, q->part);
			have = 0;
			if (hash) EVP_MD_CTX_free(hash), hash = NULL;
		}
		if (!hash) {
			hash = hash_begin(q);
			hashed = 0;
		}
		if (q->size < 0 || have < q->size) {
			int fd = safepath_open(q->root, q->part, O_WRONLY | O_CREAT | O_APPEND, 0666);
			if (fd < 0) {
				snprintf(err, errlen, "%s: %s", q->part, strerror(errno));
				break;
			}
			/* The blocks up front (the file's length is left alone, so a
			 * resume still starts at the bytes received): a full disk is
			 * told now, not gigabytes later. */
			if (q->size > have && fallocate(fd, FALLOC_FL_KEEP_SIZE, have, q->size - have) != 0 &&
			    (errno == ENOSPC || errno == EFBIG)) {
				snprintf(err, errlen, "%s: no room for %lld more bytes", q->part, q->size - have);
				close(fd);
				break;
			}
			struct hasher hs;
			if (hash && hasher_start(&hs, hash, q->root, q->part, &hashed, have) != 0) { /* hash the file after, instead */
				EVP_MD_CTX_free(hash);
				hash = NULL;
			}
			struct spool c = {fd, progress, hash ? &hs : NULL, xmalloc(SPOOL_BYTES), 0, now_s(), 0, 0};
			http_opts ho = {.bearer = bearer, .follow = 1, .range_from = have, .on_data = spool_write, .on_data_ud = &c};
			http_reply r;
			int got = http_request(target, &ho, &r, err, errlen);
			spool_flush(&c); /* what arrived before a cut is kept */
			free(c.buf);
			if (c.failed) {
				snprintf(err, errlen, "%s: %s", q->part, strerror(c.err));
				if (hash) hasher_finish(&hs);
				close(fd);
				http_reply_free(&r);
				break;
			}
			if (hash && hasher_finish(&hs) != 0) {
				EVP_MD_CTX_free(hash);
				hash = NULL;
			}
			int closed = close(fd);
			long status = r.status;
			if (got == 0 && status == 200 && have > 0) {
				/* The server ignored the Range and sent it all: keep only that. */
				http_reply_free(&r);
				snprintf(err, errlen, "server ignored Range; starting over");
				safepath_unlink(q->root, q->part);
				if (hash) EVP_MD_CTX_free(hash), hash = NULL;
				continue;
			}
			if (closed != 0) {
				http_reply_free(&r);
				snprintf(err, errlen, "%s: %s", q->part, strerror(errno));
				break;
			}
			if (got != 0 || (status != 200 && status != 206 && status != 416)) {
				if (got == 0) snprintf(err, errlen, "HTTP %ld", status);
				if ((got == 0 && status / 100 == 4 && status != 429 && status != 416) ||
				    attempt + 1 >= pol->attempts) {
					http_reply_free(&r);
					break;
				}
				char over[200];
				double wait = http_backoff(pol, attempt, got == 0 ? &r : NULL, waited, over, sizeof over);
				http_reply_free(&r);
				if (wait < 0) {
					size_t k = strlen(err);
					snprintf(err + k, errlen - k, "; giving up: %s", over);
					break;
				}
				fprintf(stderr, "%s: %s: %s; resuming in %.1fs\n", cli_prog, q->dest, err, wait);
				sleep_s(wait);
				waited += wait;
				continue;
			}
			http_reply_free(&r);
		}
		long long size = file_size(q->root, q->part);
		if (q->size >= 0 && size != q->size) {
			snprintf(err, errlen, "size %lld, expected %lld", size, q->size);
			safepath_unlink(q->root, q->part);
			if (hash) EVP_MD_CTX_free(hash), hash = NULL;
			continue;
		}
		char hex[65] = "";
		const char *want = q->sha256 ? q->sha256 : q->git_sha1;
		if (hash) {
			digest_end(hash, hex), hash = NULL;
		} else if (want) {
			int fd = safepath_open(q->root, q->part, O_RDONLY, 0);
			if (fd < 0 || download_digest_fd(fd, q->sha256 ? "sha256" : "gitsha1", hex) != 0) hex[0] = '\0';
			if (fd >= 0) close(fd);
		}
		if (want && strcmp(hex, want) != 0) {
			/* Corrupted on the way: fetch it again, whole. */
			snprintf(err, errlen, "%s mismatch (got %s, want %s)", q->sha256 ? "sha256" : "sha1",
				 hex, want);
			fprintf(stderr, "%s: %s: %s; fetching it again\n", cli_prog, q->dest, err);
			safepath_unlink(q->root, q->part);
			continue;
		}
		if (safepath_rename(q->root, q->part, q->dest) != 0) {
			snprintf(err, errlen, "rename to %s: %s", q->dest, strerror(errno));
			break;
		}
		rc = 0;
		break;
	}
	if (hash) EVP_MD_CTX_free(hash);
	free(target);
	return rc;
}
