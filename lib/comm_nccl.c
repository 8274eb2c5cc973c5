/* comm_nccl.c — the collectives of comm.h over NCCL, for GPU ranks
 * (comm_nccl.h). Always in libds.a; real only where the Makefile builds
 * it with -DDS_NCCL=1 (CUDA=1), otherwise comm_nccl_open says so.
 *
 * Why non-blocking. A blocking ncclCommInitRank waits for every rank
 * with no end, and a collective whose peer died leaves
 * cudaStreamSynchronize waiting forever. So the communicator is made
 * non-blocking (config.blocking = 0) and every wait is a poll of
 * cudaStreamQuery and ncclCommGetAsyncError with a deadline: a peer gone
 * shows as ncclRemoteError, or as the deadline, and ends this rank with a
 * message instead of a hang.
 */
#include "comm_nccl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DS_NCCL

#include "cli.h"
#include "clock.h"

#include <cuda_runtime.h>
#include <errno.h>
#include <math.h>
#include <nccl.h>

_Static_assert(sizeof(long) == 8, "allreduce_sum_long carries longs as ncclInt64");

/* ---- types --------------------------------------------------------------- */

typedef struct nccl {
	comm c;              /* what comm_nccl_open returns; c.impl is this */
	ncclComm_t nc;
	cudaStream_t stream; /* every collective's */
	int device;
	char *stage;         /* (stage_cap) bytes on the device, for host buffers */
	size_t stage_cap;
	int *one;            /* (1) int32 on the device: the barrier's all-reduce */
	double timeout_s;    /* DS_NCCL_TIMEOUT */
} nccl;

/* What rank r says before the communicator is made: whether it is ready,
 * why not, and (rank 0) the id. All-gathered, so every rank learns at
 * once that one of them failed, and which. */
typedef struct hello {
	int ok;
	char why[252 - NCCL_UNIQUE_ID_BYTES];
	ncclUniqueId id;
} hello;

/* ---- checks -------------------------------------------------------------- */

/* "ncclAllReduce" of "ncclAllReduce(a, b, ...)": the call, for a message. */
static int call_len(const char *call)
{
	return (int)strcspn(call, "(");
}

static void nccl_die(nccl *p, const char *call, const char *why, const char *file, int line) __attribute__((noreturn));
static void nccl_die(nccl *p, const char *call, const char *why, const char *file, int line)
{
	cli_warn("%s:%d: %.*s: %s", file, line, call_len(call), call, why);
	/* so that the other ranks' NCCL sees this one gone, not just silent */
	if (p && p->nc) ncclCommAbort(p->nc);
	cli_exit(1);
}

static void cuda_check(nccl *p, cudaError_t e, const char *call, const char *file, int line)
{
	if (e == cudaSuccess) return;
	char why[300];
	snprintf(why, sizeof why, "%s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
	nccl_die(p, call, why, file, line);
}

/* A non-blocking communicator's call may return ncclInProgress: it is
 * done when ncclCommGetAsyncError says so. */
static void nccl_check(nccl *p, ncclResult_t r, const char *call, const char *file, int line)
{
	double deadline = now_s() + p->timeout_s;
	for (long i = 0; r == ncclInProgress; i++) {
		if (now_s() > deadline) {
			char why[200];
			snprintf(why, sizeof why, "not done after %g s (DS_NCCL_TIMEOUT): a rank is gone or stuck", p->timeout_s);
			nccl_die(p, call, why, file, line);
		}
		ncclResult_t a = ncclCommGetAsyncError(p->nc, &r);
		if (a != ncclSuccess) r = a;
		if (i > 1000) sleep_s(50e-6);
	}
	if (r == ncclSuccess) return;
	char why[600];
	snprintf(why, sizeof why, "%s: %s", ncclGetErrorString(r), ncclGetLastError(p->nc));
	nccl_die(p, call, why, file, line);
}

#define CUDA_OK(p, call) cuda_check((p), (call), #call, __FILE__, __LINE__)
#define NCCL_OK(p, call) nccl_check((p), (call), #call, __FILE__, __LINE__)

/* Wait until the stream is done: spin a little (a small all-reduce takes
 * tens of microseconds), then sleep between looks; end the process on an
 * error of NCCL's (a peer gone) or the deadline. */
static void stream_done(nccl *p, const char *what, const char *file, int line)
{
	double deadline = now_s() + p->timeout_s;
	for (long i = 0;; i++) {
		cudaError_t e = cudaStreamQuery(p->stream);
		if (e == cudaSuccess) return;
		if (e != cudaErrorNotReady) cuda_check(p, e, "cudaStreamQuery", file, line);
		ncclResult_t a = ncclSuccess;
		ncclResult_t q = ncclCommGetAsyncError(p->nc, &a);
		if (q != ncclSuccess) nccl_check(p, q, "ncclCommGetAsyncError", file, line);
		if (a != ncclSuccess && a != ncclInProgress) nccl_check(p, a, what, file, line);
		if (now_s() > deadline) {
			char why[200];
			snprintf(why, sizeof why, "not done after %g s (DS_NCCL_TIMEOUT): a rank is gone or stuck", p->timeout_s);
			nccl_die(p, what, why, file, line);
		}
		if (i > 2000) sleep_s(50e-6);
	}
}

/* ---- buffers ------------------------------------------------------------- */

/* NCCL can use ptr as it is (device or managed memory). */
static int on_device(const void *ptr)
{
	struct cudaPointerAttributes a;
	if (cudaPointerGetAttributes(&a, ptr) != cudaSuccess) {
		cudaGetLastError(); /* not a CUDA pointer: host memory; clear the error */
		return 0;
	}
	return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/* At least bytes of device memory, the comm's, grown as needed. Every
 * collective has finished before it returns, so the old one is free. */
static char *stage(nccl *p, size_t bytes)
{
	if (bytes > p->stage_cap) {
		size_t cap = bytes > 2 * p->stage_cap ? bytes : 2 * p->stage_cap;
		if (p->stage) CUDA_OK(p, cudaFree(p->stage));
		p->stage = NULL, p->stage_cap = 0;
		CUDA_OK(p, cudaMalloc((void **)&p->stage, cap));
		p->stage_cap = cap;
	}
	return p->stage;
}

/* Device pointers for a collective's in (inb bytes) and out (outb): each
 * host one a place in the stage, in copied there. */
typedef struct views {
	const void *in;
	void *out;
	int out_host;
} views;

static views views_of(nccl *p, const void *in, size_t inb, void *out, size_t outb)
{
	views v = {in, out, !on_device(out)};
	int in_host = !on_device(in);
	if (in_host || v.out_host) {
		size_t at = in_host ? (inb + 255) & ~(size_t)255 : 0;
		char *s = stage(p, at + (v.out_host ? outb : 0));
		if (in_host) {
			CUDA_OK(p, cudaMemcpyAsync(s, in, inb, cudaMemcpyHostToDevice, p->stream));
			v.in = s;
		}
		if (v.out_host) v.out = s + at;
	}
	return v;
}

/* Copy a staged out back to the host, and wait for the whole. */
static void views_done(nccl *p, const views *v, void *out, size_t outb, const char *what)
{
	if (v->out_host) CUDA_OK(p, cudaMemcpyAsync(out, v->out, outb, cudaMemcpyDeviceToHost, p->stream));
	stream_done(p, what, __FILE__, __LINE__);
}

/* ---- the collectives ----------------------------------------------------- */

static void allreduce_of(const comm *c, void *buf, size_t n, size_t size, ncclDataType_t type, const char *what)
{
	nccl *p = c->impl;
	if (!n) return; /* every rank has the same n */
	CUDA_OK(p, cudaSetDevice(p->device));
	views v = views_of(p, buf, n * size, buf, n * size);
	NCCL_OK(p, ncclAllReduce(v.in, v.out, n, type, ncclSum, p->nc, p->stream));
	views_done(p, &v, buf, n * size, what);
}

static void nccl_allreduce(const comm *c, float *buf, size_t n)
{
	allreduce_of(c, buf, n, sizeof *buf, ncclFloat32, "ncclAllReduce (float)");
}

static void nccl_allreduce_f64(const comm *c, double *buf, size_t n)
{
	allreduce_of(c, buf, n, sizeof *buf, ncclFloat64, "ncclAllReduce (double)");
}

static void nccl_allreduce_long(const comm *c, long *buf, size_t n)
{
	allreduce_of(c, buf, n, sizeof *buf, ncclInt64, "ncclAllReduce (long)");
}

static void nccl_reduce_scatter(const comm *c, float *out, const float *in, size_t n)
{
	nccl *p = c->impl;
	size_t per = n / (size_t)c->world;
	if (!per) return;
	CUDA_OK(p, cudaSetDevice(p->device));
	views v = views_of(p, in, n * sizeof *in, out, per * sizeof *out);
	NCCL_OK(p, ncclReduceScatter(v.in, v.out, per, ncclFloat32, ncclSum, p->nc, p->stream));
	views_done(p, &v, out, per * sizeof *out, "ncclReduceScatter");
}

static void nccl_allgather(const comm *c, float *out, const float *in, size_t n)
{
	nccl *p = c->impl;
	if (!n) return;
	CUDA_OK(p, cudaSetDevice(p->device));
	views v = views_of(p, in, n * sizeof *in, out, n * (size_t)c->world * sizeof *out);
	NCCL_OK(p, ncclAllGather(v.in, v.out, n, ncclFloat32, p->nc, p->stream));
	views_done(p, &v, out, n * (size_t)c->world * sizeof *out, "ncclAllGather");
}

static void nccl_broadcast(const comm *c, void *buf, size_t n, int root)
{
	nccl *p = c->impl;
	if (!n) return;
	CUDA_OK(p, cudaSetDevice(p->device));
	views v = views_of(p, buf, n, buf, n);
	NCCL_OK(p, ncclBroadcast(v.in, v.out, n, ncclUint8, root, p->nc, p->stream));
	views_done(p, &v, buf, n, "ncclBroadcast");
}

static void nccl_barrier(const comm *c)
{
	nccl *p = c->impl;
	CUDA_OK(p, cudaSetDevice(p->device));
	NCCL_OK(p, ncclAllReduce(p->one, p->one, 1, ncclInt32, ncclSum, p->nc, p->stream));
	stream_done(p, "ncclAllReduce (barrier)", __FILE__, __LINE__);
}

/* ---- open and close ------------------------------------------------------ */

/* DS_NCCL_TIMEOUT: 0, or -1 with a message. */
static int timeout_of_env(double *t, char *err, size_t errlen)
{
	const char *s = getenv("DS_NCCL_TIMEOUT");
	char *end;
	*t = 600;
	if (!s) return 0;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v <= 0) {
		snprintf(err, errlen, "DS_NCCL_TIMEOUT='%s' is not a positive number of seconds", s);
		return -1;
	}
	*t = v;
	return 0;
}

/* Pick and set the device, make rank 0's id: this rank's hello. */
static void prepare(const bootstrap_info *b, int *device, hello *h)
{
	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess) {
		snprintf(h->why, sizeof h->why, "CUDA is not usable here: cudaGetDeviceCount: %s", cudaGetErrorString(e));
		return;
	}
	if (*device < 0) *device = count == 1 ? 0 : b->local_rank;
	if (*device >= count) {
		snprintf(h->why, sizeof h->why, "CUDA device %d: this process sees %d (local rank %d of %d; CUDA_VISIBLE_DEVICES?)",
			 *device, count, b->local_rank, b->local_world);
		return;
	}
	if ((e = cudaSetDevice(*device)) != cudaSuccess) {
		snprintf(h->why, sizeof h->why, "cudaSetDevice(%d): %s", *device, cudaGetErrorString(e));
		return;
	}
	if (b->rank == 0) {
		ncclResult_t r = ncclGetUniqueId(&h->id);
		if (r != ncclSuccess) {
			snprintf(h->why, sizeof h->why, "ncclGetUniqueId: %s: %s", ncclGetErrorString(r), ncclGetLastError(NULL));
			return;
		}
	}
	h->ok = 1;
}

/* Wait for a non-blocking communicator's init or finalize until deadline:
 * ncclSuccess, its error, or ncclInProgress at the deadline. */
static ncclResult_t settle(ncclComm_t nc, ncclResult_t r, double deadline)
{
	for (long i = 0; r == ncclInProgress && now_s() < deadline; i++) {
		ncclResult_t a = ncclCommGetAsyncError(nc, &r);
		if (a != ncclSuccess) return a;
		if (i > 1000) sleep_s(1e-3);
	}
	return r;
}

const comm *comm_nccl_open(const bootstrap_info *b, int device, char *err, size_t errlen)
{
	hello h = {0}, *all = NULL;
	nccl *p = calloc(1, sizeof *p);
	if (!p || !(all = calloc((size_t)b->world, sizeof *all))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (timeout_of_env(&p->timeout_s, err, errlen)) snprintf(h.why, sizeof h.why, "%s", err);
	else prepare(b, &device, &h);
	/* every rank says whether it is ready before any waits on NCCL */
	if (bootstrap_allgather(b, all, &h, sizeof h, err, errlen)) goto fail;
	/* this rank's reason first; else the first rank's that failed */
	for (int i = -1; i < b->world; i++) {
		int r = i < 0 ? b->rank : i;
		if (all[r].ok) continue;
		all[r].why[sizeof all[r].why - 1] = 0;
		if (r == b->rank) snprintf(err, errlen, "rank %d of %d: %s", r, b->world, all[r].why);
		else snprintf(err, errlen, "rank %d of %d cannot start: %s", r, b->world, all[r].why);
		goto fail;
	}
	p->device = device;
	cudaError_t e;
	if ((e = cudaStreamCreate(&p->stream)) != cudaSuccess || (e = cudaMalloc((void **)&p->one, sizeof *p->one)) != cudaSuccess) {
		snprintf(err, errlen, "CUDA device %d: %s", device, cudaGetErrorString(e));
		goto fail;
	}
	ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
	cfg.blocking = 0;
	cfg.commName = "ds";
	ncclResult_t r = ncclCommInitRankConfig(&p->nc, b->world, all[0].id, b->rank, &cfg);
	if (r == ncclInProgress || r == ncclSuccess) r = settle(p->nc, r, now_s() + b->timeout_s);
	if (r == ncclInProgress) {
		snprintf(err, errlen, "rank %d of %d: waited %g s for NCCL to connect to the other ranks (ncclCommInitRankConfig)",
			 b->rank, b->world, b->timeout_s);
		goto fail;
	}
	if (r != ncclSuccess) {
		snprintf(err, errlen, "rank %d of %d: ncclCommInitRankConfig: %s: %s", b->rank, b->world, ncclGetErrorString(r),
			 ncclGetLastError(p->nc));
		goto fail;
	}
	p->c = (comm){.name = "nccl",
		      .rank = b->rank,
		      .world = b->world,
		      .impl = p,
		      .allreduce_sum = nccl_allreduce,
		      .allreduce_sum_f64 = nccl_allreduce_f64,
		      .allreduce_sum_long = nccl_allreduce_long,
		      .reduce_scatter_sum = nccl_reduce_scatter,
		      .allgather = nccl_allgather,
		      .broadcast = nccl_broadcast,
		      .barrier = nccl_barrier};
	free(all);
	return &p->c;
fail:
	if (p) {
		if (p->nc) ncclCommAbort(p->nc);
		if (p->one) cudaFree(p->one);
		if (p->stream) cudaStreamDestroy(p->stream);
	}
	free(all);
	free(p);
	return NULL;
}

void *comm_nccl_stream(const comm *c)
{
	return c ? (void *)((nccl *)c->impl)->stream : NULL;
}

void comm_nccl_close(const comm *c)
{
	if (!c) return;
	nccl *p = c->impl;
	cudaSetDevice(p->device);
	/* Finalize flushes what NCCL still has queued; if that fails or does
	 * not end, abort rather than wait. */
	ncclResult_t r = settle(p->nc, ncclCommFinalize(p->nc), now_s() + p->timeout_s);
	if (r == ncclSuccess) ncclCommDestroy(p->nc);
	else ncclCommAbort(p->nc);
	cudaFree(p->stage);
	cudaFree(p->one);
	cudaStreamDestroy(p->stream);
	free(p);
}

#else

const comm *comm_nccl_open(const bootstrap_info *b, int device, char *err, size_t errlen)
{
	(void)device;
	snprintf(err, errlen, "rank %d of %d: this build has no NCCL (make CUDA=1)", b->rank, b->world);
	return NULL;
}

void *comm_nccl_stream(const comm *c)
{
	(void)c;
	return NULL;
}

void comm_nccl_close(const comm *c)
{
	(void)c;
}

#endif
