/* comm_nccl.h — comm.h's collectives over NCCL, for GPU ranks.
 *
 * Buffers are DEVICE memory (cudaMalloc or managed), as NCCL wants them,
 * except that a host buffer is also taken: it goes through a device buffer
 * of the comm's own (two copies more, so meant for the small reductions
 * of losses and counts that allreduce_sum_f64 and allreduce_sum_long
 * carry, not for gradients). The float collectives on device buffers are
 * the fast path: no copy at all. In place as comm.h and NCCL allow it:
 * allreduce on buf; reduce_scatter with out == in + rank * n / world;
 * allgather with in == out + rank * n.
 *
 * Every collective runs on the comm's own CUDA stream and has finished on
 * this rank when it returns. That stream is a blocking one, so it starts
 * after the work queued before on the legacy default stream (stream 0);
 * work on a stream of the caller's own must be finished, or the stream
 * made to wait (comm_nccl_stream), before a collective reads what it
 * wrote. Sums are NCCL's order: for a given world, machine and NCCL the
 * same every run, not the rank order of one loop (as comm_mpi).
 *
 * A failed NCCL or CUDA call inside a collective ends the process, with
 * the call, file and line, ncclGetErrorString and NCCL's last error on
 * stderr, after ncclCommAbort, so the peers' NCCL sees the rank gone
 * instead of waiting on it. A collective not done after DS_NCCL_TIMEOUT
 * seconds (default 600, torch's for NCCL process groups) ends the process
 * the same way: a peer is gone or stuck.
 */
#ifndef DS_COMM_NCCL_H
#define DS_COMM_NCCL_H

#include "bootstrap.h"
#include "comm.h"

#include <stddef.h>

/* The NCCL communicator of b's ranks, on CUDA device `device` (-1: b's
 * local rank, or device 0 when this process sees only one, as under
 * srun --gpus-per-task). Rank 0's ncclUniqueId goes to the others by
 * bootstrap_broadcast; NCCL's own connections are waited for at most
 * b->timeout_s. Borrows b only during the call (close it after, or keep
 * it for a barrier of its own). Returns owned (comm_nccl_close), or NULL
 * with the reason in err; in a build without NCCL, always NULL. */
const comm *comm_nccl_open(const bootstrap_info *b, int device, char *err, size_t errlen);

/* The cudaStream_t the collectives run on, as a void * (so that this
 * header needs no CUDA): to order a caller's kernels with them. Borrowed;
 * NULL in a build without NCCL. */
void *comm_nccl_stream(const comm *c);

/* Finish NCCL's work, destroy the communicator, its stream and buffers;
 * frees c (NULL is fine). Consumes c. */
void comm_nccl_close(const comm *c);

#endif
