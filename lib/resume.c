/* resume.c — read back an output file's done ids, then append. */
#include "resume.h"
#include "check.h"
#include "cli.h"
#include "jsonl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The pid holding a flock on the file open as fd, from /proc/locks; 0 when
 * it cannot be told. */
static long lock_holder(int fd)
{
	struct stat st;
	FILE *f = fstat(fd, &st) == 0 ? fopen("/proc/locks", "r") : NULL;
	if (!f) return 0;
	char line[256];
	long pid = 0;
	while (!pid && fgets(line, sizeof line, f)) {
		long p;
		unsigned maj, min;
		unsigned long long ino;
		char kind[16];
		/* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" */
		if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%llu", kind, &p, &maj, &min, &ino) == 5 &&
		    !strcmp(kind, "FLOCK") && ino == (unsigned long long)st.st_ino && maj == major(st.st_dev) &&
		    min == minor(st.st_dev))
			pid = p;
	}
	fclose(f);
	return pid;
}

void resume_lock(int fd, const char *path)
{
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) return;
	if (errno != EWOULDBLOCK) return; /* a file system without locks: go on, unlocked */
	long pid = lock_holder(fd);
	if (pid == (long)getpid())
		cli_die(EXIT_RUNTIME, "%s: given twice as an output of this run", path);
	if (pid > 0) cli_die(EXIT_RUNTIME, "%s is in use by pid %ld (another run writing it)", path, pid);
	cli_die(EXIT_RUNTIME, "%s is in use by another process (another run writing it)", path);
}

FILE *resume_open(const char *path, idset *done, resume_key_fn key_of, long *n_done)
{
	*n_done = 0;
	/* A pipe, a terminal or a device (-o /dev/stdout) has nothing to read
	 * back: write to it, no resume, no lock. */
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		FILE *out = fopen(path, "a");
		if (!out) cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
		return out;
	}
	/* One run at a time: the lock is held, on this open file, until
	 * resume_close; what is read back and appended go through it. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0) cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	resume_lock(fd, path);
	FILE *f = fdopen(fd, "r+");
	if (!f) cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	off_t good = 0; /* end of the last complete line */
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[n - 1] != '\n') break; /* cut short by a kill */
		good += n;
		if (n == 1) continue;
		char why[512];
		jv rec = jsonl_parse(line, (size_t)n - 1, why, sizeof why);
		char *key = jv_is_valid(rec) ? key_of(rec) : NULL;
		if (jv_is_valid(rec) && !key) snprintf(why, sizeof why, "a record without an id");
		jv_free(rec);
		if (!key)
			cli_die(EXIT_RUNTIME,
				"%s:%ld: output file holds a bad line (%s); "
				"not appending to it (move it away or fix it)",
				path, lineno, why);
		idset_add(done, key, strlen(key));
		free(key);
		(*n_done)++;
	}
	if (ferror(f)) cli_die(EXIT_RUNTIME, "%s: read error: %s", path, strerror(errno));
	free(line);
	if (n > 0 && ftruncate(fd, good) != 0)
		cli_die(EXIT_RUNTIME, "%s: cannot remove the cut-short last line: %s", path, strerror(errno));
	if (fseeko(f, good, SEEK_SET) != 0) cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	return f;
}

void resume_close(FILE *f, const char *path)
{
	int bad = fflush(f) != 0 || ferror(f);
	int e = errno;
	if (fclose(f) != 0 && !bad) {
		bad = 1;
		e = errno;
	}
	if (bad) cli_die(EXIT_RUNTIME, "%s: write error: %s", path, strerror(e));
}

char *resume_key_id_sample(jv rec)
{
	jv id = jv_object_get(jv_copy(rec), jv_string("id"));
	if (jv_get_kind(id) != JV_KIND_STRING) {
		jv_free(id);
		return NULL;
	}
	jv sample = jv_object_get(jv_copy(rec), jv_string("sample"));
	if (jv_get_kind(sample) != JV_KIND_NUMBER) {
		jv_free(sample);
		jv t = jv_object_get(jv_copy(rec), jv_string("teacher"));
		sample = jv_get_kind(t) == JV_KIND_OBJECT
				 ? jv_object_get(jv_copy(t), jv_string("sample"))
				 : jv_invalid();
		jv_free(t);
	}
	const char *s = jv_string_value(id);
	size_t n = strlen(s) + 32;
	char *key = xmalloc(n);
	/* No sample number means sample 0, so that a record keyed before
	 * ds-teacher numbered it matches the same record keyed after. */
	double k = jv_get_kind(sample) == JV_KIND_NUMBER ? jv_number_value(sample) : 0;
	snprintf(key, n, "%s\x1f%.0f", s, k);
	jv_free(sample);
	jv_free(id);
	return key;
}
