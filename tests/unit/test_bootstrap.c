/* bootstrap: torchrun's variables read and refused as they should be, and
 * the TCP rendezvous on loopback with 1, 2, 3 and 4 ranks forked from
 * this process: rank 0's random bytes reach every rank, an all-gather
 * comes back in rank order, local ranks come from LOCAL_RANK or from the
 * machine, and a rank that fails ends the others' waits at once.
 *
 * Also one rank of a run for tests/t-bootstrap.sh, which starts the
 * processes itself (as torchrun would):
 *   test_bootstrap rank FILE N   rank 0 reads N bytes of FILE; every rank
 *                                writes the N bytes it got to stdout
 *   test_bootstrap port          a free loopback TCP port, on stdout
 */
#include "../../lib/bootstrap.h"
#include "testhelp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { BLOB = 128, MAXR = 8 };

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) return -1;
	close(fd);
	return ntohs(a.sin_port);
}

static const char *const VARS[] = {"RANK",	  "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
				   "MASTER_PORT", "DS_BOOTSTRAP_TIMEOUT"};

/* Exactly these variables set ("NAME=value" ..., NULL). */
static void env_only(const char *const *set)
{
	for (size_t i = 0; i < sizeof VARS / sizeof *VARS; i++) unsetenv(VARS[i]);
	for (; *set; set++) {
		char name[64];
		const char *eq = strchr(*set, '=');
		snprintf(name, sizeof name, "%.*s", (int)(eq - *set), *set);
		setenv(name, eq + 1, 1);
	}
}

/* bootstrap_open_env refuses the environment, with a message containing want. */
static int refused(const char *const *set, const char *want)
{
	char err[600] = "";
	env_only(set);
	bootstrap_info *b = bootstrap_open_env(err, sizeof err);
	if (b) {
		bootstrap_close(b);
		return 0;
	}
	if (!strstr(err, want)) printf("     | got '%s', want '%s'\n", err, want);
	return strstr(err, want) != NULL;
}

/* ---- forked ranks -------------------------------------------------------- */

typedef struct result {
	int rc;                   /* 0: every step done */
	int local_rank, local_world;
	unsigned char blob[BLOB]; /* what the broadcast brought */
	int gathered[MAXR];       /* the all-gather of 100 + rank */
	char err[600];
} result;

typedef struct job {
	int world, port;
	int local_from_env;       /* LOCAL_RANK = rank % 2, LOCAL_WORLD_SIZE 2 */
	int world_of_rank1;       /* WORLD_SIZE rank 1 says (0: world) */
	size_t blob_of_rank1;     /* bytes rank 1 expects (0: BLOB) */
	unsigned char blob[BLOB]; /* rank 0's */
} job;

static void rank_main(const job *j, int rank, result *res)
{
	char v[7][64];
	snprintf(v[0], 64, "RANK=%d", rank);
	snprintf(v[1], 64, "WORLD_SIZE=%d", rank == 1 && j->world_of_rank1 ? j->world_of_rank1 : j->world);
	snprintf(v[2], 64, "MASTER_ADDR=127.0.0.1");
	snprintf(v[3], 64, "MASTER_PORT=%d", j->port);
	snprintf(v[4], 64, "DS_BOOTSTRAP_TIMEOUT=5");
	snprintf(v[5], 64, "LOCAL_RANK=%d", rank % 2);
	snprintf(v[6], 64, "LOCAL_WORLD_SIZE=2");
	const char *set[] = {v[0], v[1], v[2], v[3], v[4], j->local_from_env ? v[5] : NULL, v[6], NULL};
	env_only(set);
	alarm(20); /* a hang is a failure, not a stuck test */
	res->rc = 1;
	bootstrap_info *b = bootstrap_open_env(res->err, sizeof res->err);
	if (!b) return;
	res->local_rank = b->local_rank, res->local_world = b->local_world;
	if (rank == 0) memcpy(res->blob, j->blob, BLOB);
	int mine = 100 + rank;
	size_t n = rank == 1 && j->blob_of_rank1 ? j->blob_of_rank1 : BLOB;
	if (!bootstrap_broadcast(b, res->blob, n, res->err, sizeof res->err) &&
	    !bootstrap_allgather(b, res->gathered, &mine, sizeof mine, res->err, sizeof res->err) &&
	    !bootstrap_barrier(b, res->err, sizeof res->err))
		res->rc = 0;
	bootstrap_close(b);
}

/* Run job's ranks as processes; results in res[world]. 0, or -1 when a
 * process did not end by itself. */
static int run_job(job *j, result *res)
{
	pid_t pid[MAXR];
	j->port = free_port();
	for (int i = 0; i < BLOB; i++) j->blob[i] = (unsigned char)(rand() >> 7);
	for (int r = 0; r < j->world; r++) {
		memset(&res[r], 0, sizeof res[r]);
		res[r].rc = -1;
		/* rank 0 last, so the others have to retry */
		int rank = j->world - 1 - r;
		pid[rank] = fork();
		if (pid[rank] == 0) {
			rank_main(j, rank, &res[rank]);
			_exit(0);
		}
	}
	int clean = 0;
	for (int r = 0; r < j->world; r++) {
		int st;
		waitpid(pid[r], &st, 0);
		clean |= !WIFEXITED(st);
	}
	return clean ? -1 : 0;
}

static int all_right(const job *j, const result *res)
{
	for (int r = 0; r < j->world; r++) {
		if (res[r].rc) {
			printf("     | rank %d: %s\n", r, res[r].err);
			return 0;
		}
		if (memcmp(res[r].blob, j->blob, BLOB)) return 0;
		for (int q = 0; q < j->world; q++)
			if (res[r].gathered[q] != 100 + q) return 0;
	}
	return 1;
}

static void units(void)
{
	/* ---- the variables ---- */
	char err[600] = "";
	env_only((const char *const[]){NULL});
	bootstrap_info *b = bootstrap_open_env(err, sizeof err);
	unsigned char x[4] = {1, 2, 3, 4}, y[4] = {0};
	EXPECT(b && b->rank == 0 && b->world == 1 && b->local_rank == 0 && b->local_world == 1 && !strcmp(b->launcher, "single") &&
		       b->timeout_s == 300,
	       "no variables: rank 0 of 1, local 0 of 1, the 300 s default timeout");
	EXPECT(b && !bootstrap_broadcast(b, x, 4, err, sizeof err) && !bootstrap_allgather(b, y, x, 4, err, sizeof err) &&
		       !memcmp(x, y, 4) && !bootstrap_barrier(b, err, sizeof err),
	       "one rank: broadcast keeps the bytes, all-gather copies them");
	bootstrap_close(b);
	env_only((const char *const[]){"RANK=0", "WORLD_SIZE=1", "DS_BOOTSTRAP_TIMEOUT=2.5", NULL});
	b = bootstrap_open_env(err, sizeof err);
	EXPECT(b && b->world == 1 && !strcmp(b->launcher, "torchrun") && b->timeout_s == 2.5,
	       "WORLD_SIZE=1 needs no MASTER_ADDR; DS_BOOTSTRAP_TIMEOUT is read");
	bootstrap_close(b);
	EXPECT(refused((const char *const[]){"RANK=4", "WORLD_SIZE=4", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=1", NULL},
		       "RANK=4 is not below WORLD_SIZE=4"),
	       "RANK >= WORLD_SIZE is refused");
	EXPECT(refused((const char *const[]){"RANK=one", "WORLD_SIZE=4", NULL}, "RANK='one' is not a whole number"),
	       "RANK not a number is refused");
	EXPECT(refused((const char *const[]){"WORLD_SIZE=4", NULL}, "WORLD_SIZE is set but RANK is not"),
	       "WORLD_SIZE without RANK is refused");
	EXPECT(refused((const char *const[]){"RANK=1", NULL}, "RANK is set but WORLD_SIZE is not"),
	       "RANK without WORLD_SIZE is refused");
	EXPECT(refused((const char *const[]){"RANK=0", "WORLD_SIZE=0", NULL}, "WORLD_SIZE=0 is out of range"),
	       "WORLD_SIZE=0 is refused");
	EXPECT(refused((const char *const[]){"RANK=1", "WORLD_SIZE=2", "MASTER_PORT=29500", NULL}, "MASTER_ADDR is not set"),
	       "no MASTER_ADDR with WORLD_SIZE 2 is refused");
	EXPECT(refused((const char *const[]){"RANK=1", "WORLD_SIZE=2", "MASTER_ADDR=h", NULL}, "MASTER_PORT is not set"),
	       "no MASTER_PORT is refused");
	EXPECT(refused((const char *const[]){"RANK=1", "WORLD_SIZE=2", "MASTER_ADDR=h", "MASTER_PORT=29500x", NULL},
		       "MASTER_PORT='29500x' is not a whole number"),
	       "MASTER_PORT not a number is refused");
	EXPECT(refused((const char *const[]){"RANK=1", "WORLD_SIZE=2", "MASTER_ADDR=h", "MASTER_PORT=65536", NULL},
		       "MASTER_PORT=65536 is out of range (1 to 65535)"),
	       "MASTER_PORT above 65535 is refused");
	EXPECT(refused((const char *const[]){"RANK=1", "WORLD_SIZE=2", "LOCAL_RANK=2", "LOCAL_WORLD_SIZE=2", NULL},
		       "LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2"),
	       "LOCAL_RANK >= LOCAL_WORLD_SIZE is refused");
	EXPECT(refused((const char *const[]){"RANK=0", "WORLD_SIZE=2", "LOCAL_WORLD_SIZE=3", NULL},
		       "LOCAL_WORLD_SIZE=3 is more than WORLD_SIZE=2"),
	       "LOCAL_WORLD_SIZE > WORLD_SIZE is refused");
	EXPECT(refused((const char *const[]){"RANK=0", "WORLD_SIZE=1", "DS_BOOTSTRAP_TIMEOUT=soon", NULL},
		       "DS_BOOTSTRAP_TIMEOUT='soon' is not a positive number of seconds"),
	       "DS_BOOTSTRAP_TIMEOUT not a number is refused");
	EXPECT(refused((const char *const[]){"RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=no-such-host.invalid", "MASTER_PORT=29500",
					     NULL},
		       "rank 0 of 2: MASTER_ADDR 'no-such-host.invalid' does not resolve"),
	       "rank 0 refuses an unresolvable MASTER_ADDR at once");

	/* ---- ranks on loopback ---- */
	result *res = mmap(NULL, MAXR * sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED) {
		EXPECT(0, "mmap for the ranks' results");
		return;
	}
	for (int w = 2; w <= 4; w++) {
		job j = {.world = w};
		char what[120];
		int ok = !run_job(&j, res) && all_right(&j, res);
		for (int r = 0; r < w; r++) ok &= res[r].local_rank == r && res[r].local_world == w;
		snprintf(what, sizeof what, "%d ranks: rank 0's 128 random bytes reach all, all-gather in rank order, local rank = rank",
			 w);
		EXPECT(ok, what);
	}
	job j = {.world = 4, .local_from_env = 1};
	int ok = !run_job(&j, res) && all_right(&j, res);
	for (int r = 0; r < 4; r++) ok &= res[r].local_rank == r % 2 && res[r].local_world == 2;
	EXPECT(ok, "LOCAL_RANK and LOCAL_WORLD_SIZE are taken as set");

	j = (job){.world = 2, .world_of_rank1 = 3};
	ok = !run_job(&j, res) && res[0].rc && res[1].rc;
	EXPECT(ok && strstr(res[0].err, "rank 0 of 2: rank 1 says WORLD_SIZE=3") &&
		       strstr(res[1].err, "rank 1 of 3: rank 0 gave up: rank 0 of 2: rank 1 says WORLD_SIZE=3"),
	       "ranks that disagree on WORLD_SIZE both stop, rank 0 saying why to both");
	if (!ok) printf("     | %s\n     | %s\n", res[0].err, res[1].err);

	j = (job){.world = 3, .blob_of_rank1 = 64};
	ok = !run_job(&j, res) && res[0].rc && res[1].rc && res[2].rc;
	EXPECT(ok && strstr(res[1].err, "during a broadcast with rank 0: 128 bytes came where 64 were due") && strstr(res[0].err, "rank 1 gave up") &&
		       strstr(res[2].err, "rank 0 gave up: rank 0 of 3: rank 1 gave up"),
	       "a rank that fails mid-broadcast ends the other ranks' waits at once, with its reason");
	if (!ok) printf("     | %s\n     | %s\n     | %s\n", res[0].err, res[1].err, res[2].err);
	munmap(res, MAXR * sizeof *res);
}

/* ---- one rank, for t-bootstrap.sh ---------------------------------------- */

static int one_rank(const char *file, size_t n)
{
	char err[600];
	unsigned char *buf = calloc(1, n ? n : 1);
	bootstrap_info *b = bootstrap_open_env(err, sizeof err);
	int rc = 1;
	if (!b) goto out;
	if (b->rank == 0) {
		FILE *f = fopen(file, "rb");
		if (!f || fread(buf, 1, n, f) != n) {
			snprintf(err, sizeof err, "%s: cannot read %zu bytes", file, n);
			if (f) fclose(f);
			goto out;
		}
		fclose(f);
	}
	if (bootstrap_broadcast(b, buf, n, err, sizeof err) || bootstrap_barrier(b, err, sizeof err)) goto out;
	fprintf(stderr, "test_bootstrap: rank %d of %d, local %d of %d\n", b->rank, b->world, b->local_rank, b->local_world);
	rc = fwrite(buf, 1, n, stdout) != n || fflush(stdout);
	if (rc) snprintf(err, sizeof err, "stdout: write failed");
out:
	if (rc) fprintf(stderr, "test_bootstrap: %s\n", err);
	bootstrap_close(b);
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "rank")) return one_rank(argv[2], (size_t)strtoul(argv[3], NULL, 10));
	if (argc == 2 && !strcmp(argv[1], "port")) {
		int p = free_port();
		printf("%d\n", p);
		return p < 0;
	}
	srand((unsigned)getpid());
	units();
	TEST_END();
}
