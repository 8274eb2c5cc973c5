/* mpi_comm: comm_mpi's collectives, run by tests/t-mpi.sh under
 * mpirun -np N: each rank fills its buffers from its rank, and every
 * result is checked against what the sums must be. Exits non-zero on a
 * wrong value; "die" as argv[1] makes rank 1 kill itself mid-run (the
 * others must not hang). */
#include "../../lib/comm_mpi.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char err[200];
	const comm *c = comm_mpi_open(&argc, &argv, err, sizeof err);
	if (!c) {
		fprintf(stderr, "mpi_comm: %s\n", err);
		return 1;
	}
	int r = c->rank, W = c->world, bad = 0;
	size_t n = 1000 * (size_t)W + 0; /* a multiple of W */
	float *a = malloc(n * sizeof *a), *out = malloc(n * sizeof *out);
	for (size_t i = 0; i < n; i++) a[i] = (float)(i % 7) + (float)r;
	c->allreduce_sum(c, a, n);
	for (size_t i = 0; i < n; i++) bad |= a[i] != (float)W * (float)(i % 7) + (float)(W * (W - 1) / 2);
	double d[2] = {0.5 * r, 1e300};
	long l[1] = {1L << 40};
	c->allreduce_sum_f64(c, d, 2);
	c->allreduce_sum_long(c, l, 1);
	bad |= (d[0] != 0.25 * W * (W - 1)) << 1;
	bad |= (l[0] != (long)W << 40) << 2;
	for (size_t i = 0; i < n; i++) a[i] = (float)i * (float)(r + 1);
	size_t per = n / (size_t)W;
	c->reduce_scatter_sum(c, out, a, n);
	for (size_t i = 0; i < per; i++) bad |= (out[i] != (float)(r * per + i) * (float)(W * (W + 1) / 2)) << 3;
	for (size_t i = 0; i < per; i++) a[i] = (float)(r * 1000000 + (int)i);
	c->allgather(c, out, a, per);
	for (size_t i = 0; i < n; i++) bad |= (out[i] != (float)((int)(i / per) * 1000000 + (int)(i % per))) << 4;
	char msg[16] = "";
	if (r == 0) strcpy(msg, "from rank 0");
	c->broadcast(c, msg, sizeof msg, 0);
	bad |= strcmp(msg, "from rank 0") != 0 ? 32 : 0;
	if (argc > 1 && !strcmp(argv[1], "die")) {
		if (r == 1) raise(SIGKILL);
		c->barrier(c); /* rank 1 never comes: mpirun must end this one */
		sleep(60);
	}
	c->barrier(c);
	if (bad) fprintf(stderr, "mpi_comm: rank %d of %d: wrong results (mask %d)\n", r, W, bad);
	else if (r == 0) printf("mpi_comm: %d ranks: all-reduce, reduce-scatter, all-gather, broadcast right\n", W);
	free(a), free(out);
	return bad != 0;
}
