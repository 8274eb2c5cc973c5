/* safepath.c — untrusted file names kept inside one folder. */
#include "safepath.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int safepath_check(const char *rel, size_t len, const char **why)
{
	*why = NULL;
	if (len == 0) *why = "empty path";
	else if (rel[0] == '/') *why = "absolute path";
	for (size_t i = 0; i < len && !*why; i++) {
		unsigned char c = (unsigned char)rel[i];
		if (c == '\0') *why = "NUL in the path";
		else if (c == '\\') *why = "backslash in the path";
		else if (c < 0x20 || c == 0x7f) *why = "control character in the path";
	}
	for (size_t s = 0; s <= len && !*why;) { /* each segment [s, e) */
		size_t e = s;
		while (e < len && rel[e] != '/') e++;
		size_t n = e - s;
		if (n == 0) *why = "empty segment in the path";
		else if (n == 1 && rel[s] == '.') *why = "'.' segment in the path";
		else if (n == 2 && rel[s] == '.' && rel[s + 1] == '.') *why = "'..' segment in the path";
		s = e + 1;
	}
	return *why ? -1 : 0;
}

/* One component below dir, as a folder, made when missing if create. */
static int open_component(int dir, const char *name, int create)
{
	for (int tries = 0; tries < 2; tries++) {
		int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT || !create) return fd;
		if (mkdirat(dir, name, 0777) != 0 && errno != EEXIST) return -1;
	}
	return -1;
}

int safepath_dir(int root, const char *rel, int create)
{
	int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) return -1;
	char *copy = xstrdup(rel), *save = NULL;
	for (char *t = strtok_r(copy, "/", &save); t && fd >= 0; t = strtok_r(NULL, "/", &save)) {
		int next = open_component(fd, t, create);
		int e = errno;
		close(fd);
		fd = next;
		errno = e;
	}
	free(copy);
	return fd;
}

/* The folder part of rel opened below root, and where its last
 * component starts. Returns a descriptor or -1. */
static int parent_of(int root, const char *rel, int create, const char **base)
{
	const char *slash = strrchr(rel, '/');
	*base = slash ? slash + 1 : rel;
	if (!slash) return safepath_dir(root, "", 0);
	char *dir = xmalloc((size_t)(slash - rel) + 1);
	memcpy(dir, rel, (size_t)(slash - rel));
	dir[slash - rel] = '\0';
	int fd = safepath_dir(root, dir, create);
	int e = errno;
	free(dir);
	errno = e;
	return fd;
}

int safepath_open(int root, const char *rel, int flags, mode_t mode)
{
	const char *base;
	int dir = parent_of(root, rel, (flags & O_CREAT) != 0, &base);
	if (dir < 0) return -1;
	int fd = openat(dir, base, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	int e = errno;
	close(dir);
	errno = e;
	return fd;
}

int safepath_stat(int root, const char *rel, struct stat *st)
{
	const char *base;
	int dir = parent_of(root, rel, 0, &base);
	if (dir < 0) return -1;
	int rc = fstatat(dir, base, st, AT_SYMLINK_NOFOLLOW);
	int e = errno;
	close(dir);
	errno = e;
	return rc;
}

int safepath_unlink(int root, const char *rel)
{
	const char *base;
	int dir = parent_of(root, rel, 0, &base);
	if (dir < 0) return -1;
	int rc = unlinkat(dir, base, 0);
	int e = errno;
	close(dir);
	errno = e;
	return rc;
}

int safepath_rename(int root, const char *from, const char *to)
{
	const char *fb, *tb;
	int fd = parent_of(root, from, 0, &fb);
	if (fd < 0) return -1;
	int td = parent_of(root, to, 1, &tb);
	if (td < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	int rc = renameat(fd, fb, td, tb);
	int e = errno;
	close(fd);
	close(td);
	errno = e;
	return rc;
}
