/* memfile.h — a fuzz input as a file, for the readers that open a path:
 * the bytes go to a memory file (memfd), named by its /proc/self/fd path. */
#ifndef DS_FUZZ_MEMFILE_H
#define DS_FUZZ_MEMFILE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* data[0..size) in a memory file; path gets its name. Returns the file
 * descriptor (close it when done), or -1. */
static int fuzz_memfile(const char *name, const uint8_t *data, size_t size, char path[64])
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0) return -1;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	snprintf(path, 64, "/proc/self/fd/%d", fd);
	return fd;
}

#endif
