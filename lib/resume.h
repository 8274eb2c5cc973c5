/* resume.h — restartable output files (DESIGN.md §4).
 *
 * A filter run with -o FILE reads back what FILE already holds before it
 * appends: the key of every complete record goes into a set, so records
 * done by an earlier run (killed at any moment) are skipped, and a last line
 * cut short by the kill is removed. Nothing is lost, nothing duplicated.
 */
#ifndef DS_RESUME_H
#define DS_RESUME_H

#include "idset.h"

#include <jv.h>
#include <stdio.h>

/* The resume key of a record: borrows rec; returns owned (free with free())
 * or NULL when rec has no key. */
typedef char *(*resume_key_fn)(jv rec);

/* Open path for appending, creating it if missing, after adding the key of
 * each record it holds to done (borrowed). *n_done gets the number of
 * records found. A complete line that is not a record with a key is an
 * error: the file is left alone and the program exits 1, with a message
 * naming the line. The file is locked (flock) until resume_close: a second
 * run given the same file stops at once, exit 1, "PATH is in use by pid
 * N". A path that is not a regular file (a pipe, a terminal, /dev/stdout)
 * is written as it is, with nothing read back. Returns the FILE (owned;
 * close through resume_close). */
FILE *resume_open(const char *path, idset *done, resume_key_fn key_of, long *n_done);

/* Lock the file open as fd (flock, exclusive, not waiting) for as long as
 * that open file lives; a lock held by another process ends the program
 * (exit 1) naming path and the holder's pid. */
void resume_lock(int fd, const char *path);

/* Flush and close f, exiting 1 with a message naming path on a write
 * error (a full disk is an error). Consumes f. */
void resume_close(FILE *f, const char *path);

/* The usual key: the record's "id" string, joined by a 0x1f byte with its
 * sample number (top-level "sample", else teacher.sample, else 0). Borrows
 * rec; returns owned, or NULL without an id. */
char *resume_key_id_sample(jv rec);

#endif
