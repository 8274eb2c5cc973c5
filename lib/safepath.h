/* safepath.h — files named by an untrusted server, kept inside one folder.
 *
 * A hub's listing (or a mirror's, or a dataset repo's) names the files
 * ds-fetch writes. A name like "../../.bashrc", "/etc/x" or "a/../../b",
 * or a symlink planted inside the folder, must never lead a write outside
 * it. So a name is first checked segment by segment, and then every file
 * is reached from the folder's descriptor one component at a time with
 * O_NOFOLLOW (openat), so a symlink on the way is an error, not a detour.
 */
#ifndef DS_SAFEPATH_H
#define DS_SAFEPATH_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* 0 when rel (borrowed; len bytes, which may hold a NUL) is a relative
 * path made only of ordinary segments: not empty, no leading '/', no empty,
 * "." or ".." segment, no backslash, no NUL, no control character. Else -1
 * with the reason (static) in *why. */
int safepath_check(const char *rel, size_t len, const char **why);

/* The folder rel (already checked) below the folder open as root, opened
 * with O_DIRECTORY, each component without following a symlink; made when
 * missing if create. Returns a descriptor (caller closes), or -1 with
 * errno (ELOOP or ENOTDIR for a symlink on the way). rel "" is root itself. */
int safepath_dir(int root, const char *rel, int create);

/* openat for the file rel (checked) below root: its folders reached as
 * safepath_dir does (made when flags has O_CREAT), the file itself opened
 * with O_NOFOLLOW | O_CLOEXEC added. Returns a descriptor or -1 with errno. */
int safepath_open(int root, const char *rel, int flags, mode_t mode);

/* fstatat of rel below root, no symlink followed anywhere; 0 or -1. */
int safepath_stat(int root, const char *rel, struct stat *st);

/* Remove the file rel below root; 0, or -1 with errno (ENOENT included). */
int safepath_unlink(int root, const char *rel);

/* Rename file from to file to, both below root (to's folders made);
 * the last component of to is replaced even when it is a symlink (never
 * followed). 0 or -1 with errno. */
int safepath_rename(int root, const char *from, const char *to);

#endif
