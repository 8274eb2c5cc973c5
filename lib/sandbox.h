/* sandbox.h — run a program we do not trust, under limits.
 *
 * Each run gets its own process in new user, network, PID and mount
 * namespaces (Linux), and there:
 *  - a fresh, size-limited tmpfs as its working directory and $HOME,
 *    holding the files the caller gives it, gone when the run ends;
 *  - every other mount read-only, so nothing outside it can be written;
 *  - no network (a network namespace with only a loopback, and that down);
 *  - an unprivileged uid (a user-namespace uid mapped to the caller's uid,
 *    or, when the caller is root, to SANDBOX_UID, an id nobody else uses),
 *    no capabilities, no_new_privs;
 *  - rlimits on CPU time, address space, file size, processes, open files,
 *    and no core files. The process count is kept per user namespace
 *    (Linux >= 5.14), so each run has its own, and a fork bomb stops at
 *    it; under root, the mapped uid is what makes the limit apply at all;
 *  - a cleared environment (PATH minimal, HOME and TMPDIR the run's dir);
 *  - a wall-clock limit, after which the run's PID namespace is killed:
 *    every process it started dies with it, whatever process group or
 *    session it made for itself.
 * Standard input comes from a buffer, standard output and error are
 * captured up to a cap, all through one poll loop, so a child that writes
 * a lot while we still feed it never deadlocks.
 *
 * Where namespaces cannot be made, sandbox_init says why and refuses,
 * unless the caller asks for SANDBOX_UNSAFE: then the program runs as a
 * plain child in its own process group with the rlimits only.
 */
#ifndef DS_SANDBOX_H
#define DS_SANDBOX_H

#include <stddef.h>

/* The host uid a root caller's sandboxes run as. */
#define SANDBOX_UID 2147352576u

enum sandbox_mode { SANDBOX_NAMESPACES, SANDBOX_UNSAFE };

/* Decide once per process how runs are isolated: probe that user+network+
 * PID+mount namespaces can be made (or, as root, network+PID+mount without
 * a user namespace). Returns 0, or -1 with *why an owned message (free
 * with free()) when mode is SANDBOX_NAMESPACES and they cannot. Call
 * before starting threads. */
int sandbox_init(enum sandbox_mode mode, char **why);

struct sandbox_limits {
	double wall_s;       /* wall-clock seconds, then the run is killed */
	int cpu_s;           /* RLIMIT_CPU seconds (SIGXCPU, then SIGKILL a second later) */
	long mem_bytes;      /* RLIMIT_AS per process */
	long fsize_bytes;    /* RLIMIT_FSIZE: the largest file it may write */
	long disk_bytes;     /* size of its tmpfs (namespaces only) */
	int nproc;           /* RLIMIT_NPROC: processes and threads */
	int nofile;          /* RLIMIT_NOFILE */
	size_t stdout_cap;   /* bytes of stdout kept; more ends the run (SANDBOX_OUTPUT_LIMIT) */
	size_t stderr_cap;   /* bytes of stderr kept; the rest is read and dropped */
};

/* Defaults: 4 s wall, 5 s CPU, 1 GiB, 16 MiB files, 64 MiB disk,
 * 32 processes, 64 files, 16 MiB stdout, 64 KiB stderr. */
struct sandbox_limits sandbox_limits_default(void);

/* A file put into the run's directory before the program starts. */
struct sandbox_file {
	const char *name; /* a plain name, no slash */
	const char *data;
	size_t len;
};

struct sandbox_spec {
	const char *const *argv;  /* argv[0] an absolute path */
	const struct sandbox_file *files;
	int n_files;
	const char *stdin_data;   /* may be NULL: empty stdin */
	size_t stdin_len;
	struct sandbox_limits limits;
};

enum sandbox_status {
	SANDBOX_EXITED,       /* exit_code says how */
	SANDBOX_SIGNALED,     /* term_signal says which (SIGXFSZ: a file too big) */
	SANDBOX_TIMEOUT,      /* wall clock */
	SANDBOX_CPU_LIMIT,    /* RLIMIT_CPU */
	SANDBOX_OUTPUT_LIMIT, /* stdout past stdout_cap */
	SANDBOX_FAILED,       /* the sandbox itself could not be set up; see error */
};

struct sandbox_result {
	enum sandbox_status status;
	int exit_code, term_signal;
	double wall_s, cpu_s;
	char *out, *err;            /* owned, NUL-terminated (may hold NULs) */
	size_t out_len, err_len;
	int err_truncated;
	char error[160];            /* SANDBOX_FAILED: what went wrong */
};

/* Run spec (borrowed) to the end; fills *res (free its buffers with
 * sandbox_result_free). Returns 0, or -1 when the run could not be made
 * (then res->status is SANDBOX_FAILED and res->error says why). Safe to
 * call from several threads at once. */
int sandbox_run(const struct sandbox_spec *spec, struct sandbox_result *res);
void sandbox_result_free(struct sandbox_result *res);

/* "exit 1", "killed by signal SIGSEGV", "ran past 4 s", ... for messages: borrowed
 * static text, or buf (of n bytes) filled. */
const char *sandbox_status_text(const struct sandbox_result *res, const struct sandbox_limits *lim,
				 char *buf, size_t n);

/* The first of "prog" found in the sandbox's PATH (/usr/local/bin,
 * /usr/bin, /bin), for argv[0]. Returns owned, or NULL. */
char *sandbox_which(const char *prog);

#endif
