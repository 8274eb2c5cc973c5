/* download.h — one file from the Hugging Face hub to disk: resumed with
 * HTTP Range after a dropped connection, verified against the hub's hash
 * (sha256 for LFS files, the git blob sha1 for the others), and renamed
 * into place only when verified.
 */
#ifndef DS_DOWNLOAD_H
#define DS_DOWNLOAD_H

#include "http.h"

#include <stdatomic.h>

typedef struct download_req {
	const char *url;      /* the resolve URL; borrowed */
	const char *bearer;   /* token, sent to url's origin (and on redirects
				 within it, the hub's relative 307s), never to
				 another (the CDN) */
	int root;             /* the output folder, open; dest and part are below it */
	const char *dest;     /* final path below root (checked by safepath_check);
				 parent folders are made, no symlink followed */
	const char *part;     /* where the bytes go until verified (resumed if
				 there), below root likewise */
	const char *sha256;   /* expected hex digest (LFS files), or NULL */
	const char *git_sha1; /* expected git blob id (small files), or NULL */
	long long size;       /* expected size in bytes, or -1 */
} download_req;

/* Fetch q->url into q->dest. Bytes received are added to *progress as they
 * arrive (may be NULL; a refetch counts again). Returns 0, or -1 with the reason in err. Safe to
 * call from several threads at once. */
int download_file(const download_req *q, const http_retry *pol, _Atomic long long *progress,
		  char *err, size_t errlen);

/* Hex digest of a file: "sha256", or "gitsha1" (sha1 of "blob N\0" and the
 * bytes, as git names blobs). Returns 0 and writes 65 bytes into hex, or -1. */
int download_digest(const char *path, const char *kind, char hex[65]);

/* download_digest of the open file fd (read from offset 0; not closed). */
int download_digest_fd(int fd, const char *kind, char hex[65]);

#endif
