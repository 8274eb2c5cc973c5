/* zstdio.h — byte streams that may be zstd-compressed.
 *
 * zreader reads a file or stdin and decompresses it transparently when it
 * starts with a zstd frame (concatenated frames, as `cat a.zst b.zst` makes,
 * are one stream); anything else is passed through as is. zwriter compresses
 * onto a FILE.
 */
#ifndef DS_ZSTDIO_H
#define DS_ZSTDIO_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct zreader zreader;
typedef struct zwriter zwriter;

/* Open path ("-" for stdin). Returns owned (close with zreader_close), or
 * NULL with *err set to an owned message (free with free()). */
zreader *zreader_open(const char *path, char **err);

/* Up to n decompressed bytes into buf. Returns the count, 0 at the end, -1
 * on an error (see zreader_error). */
ssize_t zreader_read(zreader *r, void *buf, size_t n);

/* Why the last read failed. Borrowed; valid until zreader_close. */
const char *zreader_error(const zreader *r);

/* Raw (compressed) bytes consumed so far, and the file's size when it is a
 * regular file (-1 otherwise): for progress. */
uint64_t zreader_bytes_in(const zreader *r);
int64_t zreader_size(const zreader *r);
int zreader_is_zstd(const zreader *r);

void zreader_close(zreader *r);

/* The whole of path ("-" for stdin), decompressed when it is zstd. Returns
 * an owned buffer (free with free()) with its length in *len, or NULL with
 * *err an owned message naming path. */
char *zreader_slurp(const char *path, size_t *len, char **err);

/* A zstd frame onto f (borrowed; not closed by zwriter_close). level as
 * zstd's (1..19; 3 is its default). Returns owned. */
zwriter *zwriter_new(FILE *f, int level);

/* Returns 0, or -1 with errno set. */
int zwriter_write(zwriter *w, const void *buf, size_t n);

/* Make everything written so far decodable by a reader at the other end of
 * a pipe (ends the current block). Returns 0 or -1. */
int zwriter_flush(zwriter *w);

/* End the frame and free w. Returns 0 or -1 (the frame may be incomplete). */
int zwriter_close(zwriter *w);

#endif
