/* comm.h — the collectives data-parallel training needs, as a table a
 * transport implements: rank and world size, all-reduce, reduce-scatter,
 * all-gather, broadcast, barrier. comm_single is the one-process
 * implementation (every collective is the identity); MPI (CPU ranks) and
 * NCCL (GPU ranks) are further tables of the same shape.
 *
 * Buffers are host or backend memory as the transport says (MPI: host;
 * NCCL: device); fp32 throughout, n elements. Sums are in rank order
 * wherever the transport allows, so that a run is repeatable.
 */
#ifndef DS_COMM_H
#define DS_COMM_H

#include <stddef.h>

typedef struct comm {
	const char *name;
	int rank;       /* this process, 0 .. world-1 */
	int world;      /* processes */
	void *impl;     /* the transport's */
	/* buf (n) = the sum over ranks of buf, on every rank */
	void (*allreduce_sum)(const struct comm *c, float *buf, size_t n);
	/* the same for doubles (losses) and longs (target counts) */
	void (*allreduce_sum_f64)(const struct comm *c, double *buf, size_t n);
	void (*allreduce_sum_long)(const struct comm *c, long *buf, size_t n);
	/* out (n / world) = this rank's slice of the sum over ranks of in (n,
	 * n a multiple of world) */
	void (*reduce_scatter_sum)(const struct comm *c, float *out, const float *in, size_t n);
	/* out (n * world) = every rank's in (n), in rank order */
	void (*allgather)(const struct comm *c, float *out, const float *in, size_t n);
	/* buf (n bytes) = root's buf */
	void (*broadcast)(const struct comm *c, void *buf, size_t n, int root);
	void (*barrier)(const struct comm *c);
} comm;

/* One process: rank 0 of 1, every collective the identity (reduce-scatter
 * and all-gather copy). Borrowed, static. */
const comm *comm_single(void);

#endif
