/* nccl_comm: comm_nccl's collectives on a GPU, one rank of a run started
 * with torchrun's variables (or alone: rank 0 of 1, which one GPU
 * allows: NCCL refuses two ranks on one device). Each rank fills its
 * buffers from its rank, on the device and on the host (the staged path),
 * and every result is checked against what the sums must be, as
 * tests/mpi/mpi_comm.c does for MPI. Exits non-zero on a wrong value. */
#include "../../lib/comm_nccl.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void up(void *d, const void *h, size_t n) { cudaMemcpy(d, h, n, cudaMemcpyHostToDevice); }
static void down(void *h, const void *d, size_t n) { cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost); }

/* Every collective with its buffers in device memory (dev) or on the host:
 * a mask of the wrong ones. */
static int check(const comm *c, int dev)
{
	int r = c->rank, W = c->world, bad = 0;
	size_t n = 1000 * (size_t)W, per = n / (size_t)W;
	float *a = malloc(n * sizeof *a), *o = malloc(n * sizeof *o), *da = a, *dout = o;
	if (dev && (cudaMalloc((void **)&da, n * sizeof *a) || cudaMalloc((void **)&dout, n * sizeof *o))) return 255;
	for (size_t i = 0; i < n; i++) a[i] = (float)(i % 7) + (float)r;
	if (dev) up(da, a, n * sizeof *a);
	c->allreduce_sum(c, da, n);
	if (dev) down(a, da, n * sizeof *a);
	for (size_t i = 0; i < n; i++) bad |= a[i] != (float)W * (float)(i % 7) + (float)(W * (W - 1) / 2);
	/* losses and counts: host pointers, as lib/trainstep.c passes them */
	double d[2] = {0.5 * r, 1e300};
	long l[1] = {1L << 40};
	c->allreduce_sum_f64(c, d, 2);
	c->allreduce_sum_long(c, l, 1);
	bad |= (d[0] != 0.25 * W * (W - 1) || d[1] != 1e300 * W) << 1;
	bad |= (l[0] != (long)W << 40) << 2;
	for (size_t i = 0; i < n; i++) a[i] = (float)i * (float)(r + 1);
	memset(o, 0xff, n * sizeof *o); /* poisoned: NaN where nothing was written */
	if (dev) up(da, a, n * sizeof *a), up(dout, o, n * sizeof *o);
	c->reduce_scatter_sum(c, dout, da, n);
	if (dev) down(o, dout, per * sizeof *o);
	for (size_t i = 0; i < per; i++) bad |= (o[i] != (float)(r * per + i) * (float)(W * (W + 1) / 2)) << 3;
	for (size_t i = 0; i < per; i++) a[i] = (float)(r * 1000000 + (int)i);
	memset(o, 0xff, n * sizeof *o);
	if (dev) up(da, a, per * sizeof *a), up(dout, o, n * sizeof *o);
	c->allgather(c, dout, da, per);
	if (dev) down(o, dout, n * sizeof *o);
	for (size_t i = 0; i < n; i++) bad |= (o[i] != (float)((int)(i / per) * 1000000 + (int)(i % per))) << 4;
	char msg[16] = "";
	if (r == 0) strcpy(msg, "from rank 0");
	if (dev) up(da, msg, sizeof msg);
	c->broadcast(c, dev ? (void *)da : msg, sizeof msg, 0);
	if (dev) down(msg, da, sizeof msg);
	bad |= strcmp(msg, "from rank 0") != 0 ? 32 : 0;
	c->barrier(c);
	if (dev) cudaFree(da), cudaFree(dout);
	free(a), free(o);
	return bad;
}

int main(void)
{
	char err[600];
	bootstrap_info *b = bootstrap_open_env(err, sizeof err);
	const comm *c = b ? comm_nccl_open(b, -1, err, sizeof err) : NULL;
	if (!c) {
		fprintf(stderr, "nccl_comm: %s\n", err);
		return 1;
	}
	int bad_dev = check(c, 1), bad_host = check(c, 0);
	if (bad_dev || bad_host)
		fprintf(stderr, "nccl_comm: rank %d of %d: wrong results (device mask %d, host mask %d)\n", c->rank, c->world, bad_dev,
			bad_host);
	else if (c->rank == 0)
		printf("nccl_comm: %d ranks: all-reduce, reduce-scatter, all-gather, broadcast right on device and host buffers\n",
		       c->world);
	comm_nccl_close(c);
	bootstrap_close(b);
	return bad_dev || bad_host;
}
