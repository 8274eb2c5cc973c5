/* ompenv.c — OMP_WAIT_POLICY=passive by default, set before libgomp starts.
 *
 * libgomp's default lets an idle thread spin (GOMP_SPINCOUNT 300,000 turns)
 * before it sleeps. On a machine where another process is busy, the
 * spinning threads take the cores from the threads with work to do:
 * ds-train beside one busy loop on 2 cores took 1.2-1.3x the time (README,
 * OpenMP). Passive waiting sleeps at once; when the machine is ours
 * alone, spinning won back about 5% a step in one run.
 *
 * Why this way. libgomp reads its variables once, in its own initialiser,
 * before main: setenv in main is too late. The executable's
 * DT_PREINIT_ARRAY runs before any shared library's initialiser, but a
 * setenv there does not survive either: libc's initialiser (glibc 2.36
 * csu/init-first.c) then sets environ to the array the kernel passed, so
 * libgomp, started after libc, never sees the variable (and until then
 * environ is not even set: getenv finds nothing). What does work is to
 * execute the program again, from the preinit entry, with the variable
 * added to the environment the kernel passed: at that point no library
 * initialiser has run and no thread exists, so the second image starts
 * exactly as if the user had set the variable. It costs one more exec and
 * dynamic link (ds-train --version: 9 ms, 15 ms with it, `perf stat` on
 * the 2-core build machine), only in programs that load libgomp (ds-train,
 * ds-infer), and once: the second image finds the variable set. Under
 * valgrind, which does not follow an exec unless told
 * (--trace-children=yes), set OMP_WAIT_POLICY yourself.
 */
#include "ompenv.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

/* Weak: non-null only when libgomp is in the process. A weak reference does
 * not make the linker record libgomp as needed, so programs without OpenMP
 * stay without it and are not re-executed for nothing. */
extern int omp_get_level(void) __attribute__((weak));

static int env_has(char **envp, const char *name)
{
	size_t n = strlen(name);
	for (; *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return 1;
	return 0;
}

/* Any failure leaves the program to run on as it was, with libgomp's own
 * default: worse on a loaded machine, never wrong. */
static void ompenv_passive_default(int argc, char **argv, char **envp)
{
	/* envp, not getenv: environ is not set yet (see the top). */
	if (!omp_get_level || !envp || !argv ||
	    env_has(envp, "OMP_WAIT_POLICY") || env_has(envp, "GOMP_SPINCOUNT"))
		return;
	/* Set-user-ID and the like: the kernel and ld.so vetted this
	 * environment; a program that re-executes itself with another one
	 * is not ours to make. */
	if (getauxval(AT_SECURE))
		return;
	/* The file's own path rather than "/proc/self/exe": exec names the
	 * process after the path's last part, and ps, top and pkill should
	 * still see "ds-train", not "exe". */
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof self);
	if (len <= 0 || len == (ssize_t)sizeof self)
		return;
	self[len] = '\0';
	size_t n = 0;
	while (envp[n]) n++;
	char **env = malloc((n + 2) * sizeof *env);
	if (!env)
		return;
	memcpy(env, envp, n * sizeof *env);
	env[n] = "OMP_WAIT_POLICY=passive";
	env[n + 1] = NULL;
	execve(self, argv, env);
	free(env); /* the binary was replaced or removed since it started */
}

#ifdef __GLIBC__
/* glibc calls DT_PREINIT_ARRAY entries with (argc, argv, envp); the linker
 * accepts the section only in an executable, which every user of
 * build/libds.a is. ASan puts its own initialiser there too, ahead of ours
 * (its object comes first on the link line); `make SAN=1` is tested. */
__attribute__((section(".preinit_array"), used))
void (*const ompenv_preinit)(int, char **, char **) = ompenv_passive_default;
#else
void (*const ompenv_preinit)(int, char **, char **) = 0;
#endif
