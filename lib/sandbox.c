/* sandbox.c — run a program we do not trust, under limits (see sandbox.h).
 *
 * The child is made with a raw clone(2) that starts it in its new
 * namespaces at once (as bubblewrap does): it is PID 1 of its own PID
 * namespace, so killing it kills everything it started, and its parent
 * (us) still holds the capabilities to write its uid and gid maps. Between
 * clone and execve the child only makes system calls: every string it
 * needs is built before the clone, because another thread may have held
 * malloc's lock at that moment.
 */
#include "sandbox.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>

/* ---- system calls glibc 2.36 may not wrap ------------------------------ */

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define SBX_MOUNT_ATTR_RDONLY 0x1
#define SBX_MOUNT_ATTR_NOSUID 0x2
#define SBX_CLOSE_RANGE_CLOEXEC (1U << 2)

struct sbx_mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static int mount_setattr_(const char *path, unsigned flags, uint64_t set, uint64_t clr)
{
	struct sbx_mount_attr a = {set, clr, 0, 0};
	return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &a, sizeof a);
}

/* ---- state decided once ------------------------------------------------ */

/* The uid and gid the program has inside its user namespace: not 0, so
 * that execve gives it no capabilities there. */
#define NS_ID 1000

static enum sandbox_mode sbx_mode = SANDBOX_NAMESPACES;
static int sbx_userns = 1; /* 0: root without a user namespace (setuid instead) */

/* Host directories hidden under an empty read-only tmpfs: where other
 * users' sockets, keys and scratch files live. /tmp is replaced by the
 * run's own tmpfs. */
static const char *const hidden_dirs[] = {"/run", "/var/run", "/var/tmp", "/dev/shm", "/home", "/root"};

struct sandbox_limits sandbox_limits_default(void)
{
	struct sandbox_limits l = {
		.wall_s = 4,
		.cpu_s = 5,
		.mem_bytes = 1L << 30,
		.fsize_bytes = 16L << 20,
		.disk_bytes = 64L << 20,
		.nproc = 32,
		.nofile = 64,
		.stdout_cap = 16u << 20,
		.stderr_cap = 64u << 10,
	};
	return l;
}

/* ---- the child, between clone and execve ---------------------------------- */

/* What the child needs, all built by the parent before the clone. */
struct child_plan {
	const struct sandbox_spec *spec;
	int in_r, out_w, err_w, status_w, sync_r;
	const char *dir;        /* working directory */
	char tmpfs_opts[96];    /* the run's /tmp */
	uid_t uid;              /* to become (in the namespace when userns) */
	gid_t gid;
	int namespaces, userns, drop_ids;
	int keep_groups;        /* an unprivileged caller cannot drop its own groups */
	char *const *envp;
};

struct child_failure {
	int err;
	char step[44];
};

static void __attribute__((noreturn)) child_fail(const struct child_plan *p, const char *step)
{
	struct child_failure f = {errno, {0}};
	size_t n = strlen(step);
	if (n >= sizeof f.step) n = sizeof f.step - 1;
	memcpy(f.step, step, n);
	if (write(p->status_w, &f, sizeof f) < 0) { /* the parent sees the exit status */ }
	_exit(127);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		p += k, n -= (size_t)k;
	}
	return 0;
}

static void child_setup_mounts(const struct child_plan *p)
{
	/* nothing we mount may leak back into the host's namespace */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) child_fail(p, "make / private");
	if (mount_setattr_("/", AT_RECURSIVE, SBX_MOUNT_ATTR_RDONLY | SBX_MOUNT_ATTR_NOSUID, 0))
		child_fail(p, "make / read-only");
	for (size_t i = 0; i < sizeof hidden_dirs / sizeof *hidden_dirs; i++) {
		struct stat st;
		if (lstat(hidden_dirs[i], &st) || !S_ISDIR(st.st_mode)) continue; /* absent, or a link */
		if (mount("ds-sandbox", hidden_dirs[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  "size=4k,mode=0755"))
			child_fail(p, "hide a directory");
	}
	if (mount("ds-sandbox", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts))
		child_fail(p, "mount the run's /tmp");
}

static void __attribute__((noreturn)) child_main(const struct child_plan *p)
{
	const struct sandbox_spec *s = p->spec;
	const struct sandbox_limits *l = &s->limits;
	char c;
	if (p->userns && read(p->sync_r, &c, 1) != 1) child_fail(p, "wait for the uid map");
	if (p->namespaces) child_setup_mounts(p);
	else if (setpgid(0, 0)) child_fail(p, "setpgid");
	if (p->drop_ids) {
		/* supplementary groups (root's, say) must not follow the program;
		 * an unprivileged caller cannot drop its own, and they are its own */
		/* raw system calls: glibc's wrappers would ask every thread of
		 * the parent to change its ids too, and wait for them forever */
		if (syscall(SYS_setgroups, 0, NULL) && !(errno == EPERM && p->keep_groups))
			child_fail(p, "setgroups");
		if (syscall(SYS_setresgid, p->gid, p->gid, p->gid)) child_fail(p, "setresgid");
		if (syscall(SYS_setresuid, p->uid, p->uid, p->uid)) child_fail(p, "setresuid");
	}
	/* if we die (killed, interrupted), the run dies too; set after the
	 * uid changes, which clear it */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) child_fail(p, "set the parent-death signal");
	if (chdir(p->dir)) child_fail(p, "chdir to the run's directory");
	for (int i = 0; i < s->n_files; i++) {
		int fd = open(s->files[i].name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || write_all(fd, s->files[i].data, s->files[i].len) || close(fd))
			child_fail(p, "write a file into the run's directory");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) child_fail(p, "no_new_privs");
	if (p->namespaces) {
		struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct d[2];
		memset(d, 0, sizeof d);
		if (syscall(SYS_capset, &h, d)) child_fail(p, "drop capabilities");
	}
	struct {
		int res;
		rlim_t soft, hard;
	} rl[] = {
		{RLIMIT_CPU, (rlim_t)l->cpu_s, (rlim_t)l->cpu_s + 1},
		{RLIMIT_AS, (rlim_t)l->mem_bytes, (rlim_t)l->mem_bytes},
		{RLIMIT_FSIZE, (rlim_t)l->fsize_bytes, (rlim_t)l->fsize_bytes},
		{RLIMIT_NOFILE, (rlim_t)l->nofile, (rlim_t)l->nofile},
		{RLIMIT_CORE, 0, 0},
		/* last: the count of processes starts at this uid's (in this
		 * user namespace, since Linux 5.14) */
		{RLIMIT_NPROC, (rlim_t)l->nproc, (rlim_t)l->nproc},
	};
	for (size_t i = 0; i < sizeof rl / sizeof *rl; i++) {
		struct rlimit r = {rl[i].soft, rl[i].hard};
		if (setrlimit(rl[i].res, &r)) child_fail(p, "setrlimit");
	}
	if (dup2(p->in_r, 0) < 0 || dup2(p->out_w, 1) < 0 || dup2(p->err_w, 2) < 0) child_fail(p, "dup2");
	/* whatever else is open (another run's pipes, a library's files)
	 * closes at execve; status_w too, which tells the parent it happened */
	syscall(SYS_close_range, 3u, ~0u, SBX_CLOSE_RANGE_CLOEXEC);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	execve(s->argv[0], (char *const *)s->argv, p->envp);
	child_fail(p, "execve");
}

/* ---- the parent ----------------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	int r = write_all(fd, text, strlen(text));
	if (close(fd)) r = -1;
	return r;
}

/* The uid and gid maps of child pid: NS_ID inside is SANDBOX_UID (root) or
 * our own ids outside. */
static int write_id_maps(pid_t pid)
{
	char path[64], map[64];
	uid_t host_uid = geteuid() == 0 ? SANDBOX_UID : geteuid();
	gid_t host_gid = geteuid() == 0 ? SANDBOX_UID : getegid();
	if (geteuid() != 0) {
		/* an unprivileged writer of gid_map must give up setgroups */
		snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
		if (write_file(path, "deny") && errno != ENOENT) return -1;
	}
	snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
	snprintf(map, sizeof map, "%d %u 1\n", NS_ID, (unsigned)host_uid);
	if (write_file(path, map)) return -1;
	snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
	snprintf(map, sizeof map, "%d %u 1\n", NS_ID, (unsigned)host_gid);
	return write_file(path, map);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)type, (void)f;
	remove(path);
	return 0;
}

static void set_failed(struct sandbox_result *res, const char *step, int err)
{
	res->status = SANDBOX_FAILED;
	snprintf(res->error, sizeof res->error, "%s: %s", step, strerror(err));
}

/* A growing buffer for captured output. */
struct capture {
	char *buf;
	size_t len, alloc, cap;
	int truncated;
};

static int capture_read(int fd, struct capture *c)
{
	char tmp[65536];
	ssize_t k = read(fd, tmp, sizeof tmp);
	if (k < 0) return errno == EINTR || errno == EAGAIN ? 1 : 0;
	if (k == 0) return 0;
	size_t keep = (size_t)k;
	if (c->len + keep > c->cap) keep = c->cap - c->len, c->truncated = 1;
	if (c->len + keep + 1 > c->alloc) {
		size_t a = c->alloc ? c->alloc : 4096;
		while (a < c->len + keep + 1) a *= 2;
		char *nb = realloc(c->buf, a);
		if (!nb) return -1;
		c->buf = nb, c->alloc = a;
	}
	memcpy(c->buf + c->len, tmp, keep);
	c->len += keep;
	return 1;
}

static void capture_finish(struct capture *c, char **out, size_t *len)
{
	if (!c->buf) c->buf = calloc(1, 1);
	if (c->buf) c->buf[c->len] = 0;
	*out = c->buf;
	*len = c->buf ? c->len : 0;
}

int sandbox_run(const struct sandbox_spec *spec, struct sandbox_result *res)
{
	const struct sandbox_limits *l = &spec->limits;
	memset(res, 0, sizeof *res);
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1}, sy[2] = {-1, -1};
	int pidfd = -1, ret = -1, exited = 0, wstatus = 0, killed = 0;
	char dir[PATH_MAX] = "", home[PATH_MAX + 8], tmpdir_env[PATH_MAX + 8];
	struct capture co = {.cap = l->stdout_cap}, ce = {.cap = l->stderr_cap};
	pid_t pid = -1;
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	int ns = sbx_mode == SANDBOX_NAMESPACES;
	int is_root = geteuid() == 0;

	/* SIGPIPE (the child closed its stdin early) must not end us; it is
	 * blocked in this thread only and eaten before we return */
	sigset_t pipe_set, old_set;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(st, O_CLOEXEC) ||
	    pipe2(sy, O_CLOEXEC)) {
		set_failed(res, "pipe", errno);
		goto out;
	}
	if (ns) {
		snprintf(dir, sizeof dir, "/tmp");
	} else {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/ds-sandbox.XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(dir)) {
			set_failed(res, "make a temporary directory", errno);
			dir[0] = 0;
			goto out;
		}
		if (is_root && chown(dir, SANDBOX_UID, SANDBOX_UID)) {
			set_failed(res, "chown the temporary directory", errno);
			goto out;
		}
	}
	snprintf(home, sizeof home, "HOME=%s", dir);
	snprintf(tmpdir_env, sizeof tmpdir_env, "TMPDIR=%s", dir);
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
			home,
			tmpdir_env,
			"LANG=C.UTF-8",
			"PYTHONDONTWRITEBYTECODE=1",
			"PYTHONIOENCODING=utf-8",
			"PYTHONHASHSEED=0",
			"OMP_NUM_THREADS=1",
			"OPENBLAS_NUM_THREADS=1",
			NULL};

	struct child_plan plan = {
		.spec = spec,
		.in_r = in[0], .out_w = out[1], .err_w = err[1], .status_w = st[1], .sync_r = sy[0],
		.dir = dir,
		.namespaces = ns,
		.userns = ns && sbx_userns,
		.envp = envp,
		.keep_groups = !is_root,
	};
	if (plan.userns) plan.uid = NS_ID, plan.gid = NS_ID, plan.drop_ids = 1;
	else if (is_root) plan.uid = SANDBOX_UID, plan.gid = SANDBOX_UID, plan.drop_ids = 1;
	snprintf(plan.tmpfs_opts, sizeof plan.tmpfs_opts, "size=%ld,nr_inodes=4096,mode=0700,uid=%u,gid=%u",
		 l->disk_bytes, (unsigned)(plan.drop_ids ? plan.uid : geteuid()),
		 (unsigned)(plan.drop_ids ? plan.gid : getegid()));

	unsigned long flags = SIGCHLD;
	if (ns) flags |= CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
	if (plan.userns) flags |= CLONE_NEWUSER;
	double t0 = now_s();
	pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		set_failed(res, "clone", errno);
		goto out;
	}
	if (pid == 0) child_main(&plan);

	close(in[0]), close(out[1]), close(err[1]), close(st[1]), close(sy[0]);
	in[0] = out[1] = err[1] = st[1] = sy[0] = -1;
	if (plan.userns) {
		if (write_id_maps(pid)) {
			set_failed(res, "write the uid/gid map", errno);
			kill(pid, SIGKILL);
			goto reap;
		}
		if (write(sy[1], "g", 1) != 1) { /* the child reports it */ }
	}
	close(sy[1]), sy[1] = -1;
	/* the status pipe closes at execve, or carries why the setup failed */
	struct child_failure f;
	ssize_t k;
	do k = read(st[0], &f, sizeof f);
	while (k < 0 && errno == EINTR);
	if (k == (ssize_t)sizeof f) {
		f.step[sizeof f.step - 1] = 0;
		set_failed(res, f.step, f.err);
		goto reap;
	}

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	size_t in_off = 0, in_len = spec->stdin_data ? spec->stdin_len : 0;
	if (in_len == 0) close(in[1]), in[1] = -1;
	double deadline = t0 + l->wall_s, drain_deadline = 0;
	while (out[0] >= 0 || err[0] >= 0 || !exited) {
		struct pollfd pf[4];
		int n = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;
		if (in[1] >= 0) pf[i_in = n++] = (struct pollfd){in[1], POLLOUT, 0};
		if (out[0] >= 0) pf[i_out = n++] = (struct pollfd){out[0], POLLIN, 0};
		if (err[0] >= 0) pf[i_err = n++] = (struct pollfd){err[0], POLLIN, 0};
		if (!exited && pidfd >= 0) pf[i_pid = n++] = (struct pollfd){pidfd, POLLIN, 0};
		double t = now_s();
		double until = exited ? drain_deadline : deadline;
		int ms = until > t ? (int)((until - t) * 1000) + 1 : 0;
		if (pidfd < 0 && !exited && ms > 10) ms = 10; /* no pidfd: look every 10 ms */
		int r = poll(pf, (nfds_t)n, ms);
		if (r < 0 && errno != EINTR) {
			set_failed(res, "poll", errno);
			kill(ns ? pid : -pid, SIGKILL);
			killed = 1;
			goto reap;
		}
		if (i_in >= 0 && pf[i_in].revents) {
			size_t chunk = in_len - in_off > 65536 ? 65536 : in_len - in_off;
			ssize_t w = write(in[1], spec->stdin_data + in_off, chunk);
			if (w > 0) in_off += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) close(in[1]), in[1] = -1;
		}
		if (i_out >= 0 && pf[i_out].revents) {
			int c = capture_read(out[0], &co);
			if (c < 0) {
				set_failed(res, "out of memory", ENOMEM);
				kill(ns ? pid : -pid, SIGKILL);
				killed = 1;
				goto reap;
			}
			if (c == 0) close(out[0]), out[0] = -1;
			if (co.truncated && !killed) {
				res->status = SANDBOX_OUTPUT_LIMIT;
				kill(ns ? pid : -pid, SIGKILL);
				killed = 1;
			}
		}
		if (i_err >= 0 && pf[i_err].revents) {
			int c = capture_read(err[0], &ce);
			if (c <= 0) close(err[0]), err[0] = -1;
		}
		if (!exited) {
			siginfo_t si;
			si.si_pid = 0;
			if (i_pid >= 0) exited = pf[i_pid].revents != 0;
			else if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
				exited = 1;
			if (exited) {
				/* in a PID namespace all the rest died with PID 1; in a
				 * process group, stragglers may hold the pipes */
				if (!ns) kill(-pid, SIGKILL);
				drain_deadline = now_s() + 1;
			}
		}
		if (!exited && now_s() >= deadline && !killed) {
			res->status = SANDBOX_TIMEOUT;
			kill(ns ? pid : -pid, SIGKILL);
			killed = 1;
		}
		if (exited && now_s() >= drain_deadline) break;
	}
	ret = 0;
reap:
	while (wait4(pid, &wstatus, 0, &ru) < 0 && errno == EINTR) {}
	res->wall_s = now_s() - t0;
	res->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
	if (ret == 0 && res->status != SANDBOX_TIMEOUT && res->status != SANDBOX_OUTPUT_LIMIT) {
		if (WIFEXITED(wstatus)) {
			res->status = SANDBOX_EXITED;
			res->exit_code = WEXITSTATUS(wstatus);
		} else if (WIFSIGNALED(wstatus)) {
			res->term_signal = WTERMSIG(wstatus);
			int sig = res->term_signal;
			res->status = sig == SIGXCPU || (sig == SIGKILL && res->cpu_s >= l->cpu_s) ? SANDBOX_CPU_LIMIT
												   : SANDBOX_SIGNALED;
		}
	} else if (WIFEXITED(wstatus)) {
		res->exit_code = WEXITSTATUS(wstatus);
	} else if (WIFSIGNALED(wstatus)) {
		res->term_signal = WTERMSIG(wstatus);
	}
out:
	capture_finish(&co, &res->out, &res->out_len);
	capture_finish(&ce, &res->err, &res->err_len);
	res->err_truncated = ce.truncated;
	int fds[] = {in[0], in[1], out[0], out[1], err[0], err[1], st[0], st[1], sy[0], sy[1], pidfd};
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] >= 0) close(fds[i]);
	if (!ns && dir[0]) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	/* eat a SIGPIPE our writes raised, then restore the mask */
	struct timespec zero = {0, 0};
	while (sigtimedwait(&pipe_set, NULL, &zero) > 0) {}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	return res->status == SANDBOX_FAILED ? -1 : ret;
}

void sandbox_result_free(struct sandbox_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

/* ---- set-up and helpers ---------------------------------------------------- */

/* A run of /bin/true in the sandbox as now set up: 0, or -1 with why in
 * err (n bytes). */
static int probe(char *err, size_t n)
{
	static const char *const argv[] = {"/bin/true", NULL};
	struct sandbox_spec s = {.argv = argv, .limits = sandbox_limits_default()};
	struct sandbox_result r;
	int ok = sandbox_run(&s, &r) == 0 && r.status == SANDBOX_EXITED && r.exit_code == 0;
	if (!ok) snprintf(err, n, "%s", r.status == SANDBOX_FAILED ? r.error : "a test run failed");
	sandbox_result_free(&r);
	return ok ? 0 : -1;
}

int sandbox_init(enum sandbox_mode mode, char **why)
{
	char err[160] = "";
	*why = NULL;
	sbx_mode = mode;
	if (mode == SANDBOX_UNSAFE) return 0;
	if (access("/bin/true", X_OK) != 0) {
		*why = strdup("cannot make a sandbox: no /bin/true to test it with");
		return -1;
	}
	sbx_userns = 1;
	if (probe(err, sizeof err) == 0) return 0;
	/* root without user namespaces (a container may forbid them) can
	 * still change its uid itself */
	if (geteuid() == 0) {
		char err2[160];
		sbx_userns = 0;
		if (probe(err2, sizeof err2) == 0) return 0;
	}
	const char *fmt = "cannot make a sandbox (user, network, PID and mount namespaces: %s)";
	size_t n = strlen(fmt) + strlen(err) + 1;
	*why = malloc(n);
	if (*why) snprintf(*why, n, fmt, err);
	return -1;
}

const char *sandbox_status_text(const struct sandbox_result *res, const struct sandbox_limits *lim, char *buf,
				size_t n)
{
	switch (res->status) {
	case SANDBOX_EXITED: snprintf(buf, n, "exit %d", res->exit_code); return buf;
	case SANDBOX_SIGNALED:
		if (res->term_signal == SIGXFSZ) return "file size limit exceeded";
		snprintf(buf, n, "killed by signal SIG%s",
			 sigabbrev_np(res->term_signal) ? sigabbrev_np(res->term_signal) : "?");
		return buf;
	case SANDBOX_TIMEOUT: snprintf(buf, n, "ran past %g s", lim->wall_s); return buf;
	case SANDBOX_CPU_LIMIT: snprintf(buf, n, "used %d s of CPU time", lim->cpu_s); return buf;
	case SANDBOX_OUTPUT_LIMIT: snprintf(buf, n, "output limit (%zu bytes)", lim->stdout_cap); return buf;
	case SANDBOX_FAILED: snprintf(buf, n, "sandbox failed: %s", res->error); return buf;
	}
	return "?";
}

char *sandbox_which(const char *prog)
{
	static const char *const path[] = {"/usr/local/bin", "/usr/bin", "/bin"};
	if (strchr(prog, '/')) return access(prog, X_OK) == 0 ? realpath(prog, NULL) : NULL;
	for (size_t i = 0; i < sizeof path / sizeof *path; i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s/%s", path[i], prog);
		if (access(p, X_OK) == 0) return strdup(p);
	}
	return NULL;
}
