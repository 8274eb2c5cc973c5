/* bootstrap.h — how a process of a multi-process run learns who it is
 * (rank, world size, local rank) and how a few bytes of rank 0's (NCCL's
 * 128-byte ncclUniqueId) reach every rank before any collective exists.
 *
 * Three ways in, one result:
 *   torchrun, or anything that sets its variables (RANK, WORLD_SIZE,
 *     MASTER_ADDR, MASTER_PORT; LOCAL_RANK and LOCAL_WORLD_SIZE when
 *     known): bootstrap_open_env. Rank 0 listens on MASTER_PORT, the
 *     others connect over TCP (retrying until it is up); bytes go from
 *     rank 0 to each rank, which confirms.
 *   mpirun / srun: open MPI first (comm_mpi_open), then
 *     bootstrap_open_comm over that comm: bytes go by its broadcast.
 *   neither: bootstrap_open_env gives rank 0 of 1.
 * A launcher of another kind fills a bootstrap_info itself: rank, world,
 * local ranks, timeout_s and an all-gather are all that comm_nccl_open uses
 * (every rank says it is ready, rank 0 adds its id).
 *
 * Nothing here waits forever: every wait ends after timeout_s
 * (DS_BOOTSTRAP_TIMEOUT seconds, default 300 as torch's rendezvous) with a
 * message that names what it waited for, and a rank that fails tells rank
 * 0, which tells the others, so one failure ends every rank's wait at
 * once. Errors are returned in err as "what: why", for the caller to
 * prefix with its program's name.
 */
#ifndef DS_BOOTSTRAP_H
#define DS_BOOTSTRAP_H

#include "comm.h"

#include <stddef.h>

typedef struct bootstrap_info bootstrap_info;
struct bootstrap_info {
	const char *launcher; /* "torchrun", "comm" or "single"; static */
	int rank;             /* this process, 0 .. world-1 */
	int world;            /* processes */
	int local_rank;       /* this process among those on its machine: picks its GPU */
	int local_world;      /* processes on this machine */
	double timeout_s;     /* how long any one wait may take */
	/* buf (n bytes) = rank 0's buf, on every rank; returns 0 when every
	 * rank has it, or -1 with the reason in err. */
	int (*broadcast)(const bootstrap_info *b, void *buf, size_t n, char *err, size_t errlen);
	/* out (n * world bytes) = every rank's in (n bytes), in rank order; 0
	 * or -1 as broadcast. */
	int (*allgather)(const bootstrap_info *b, void *out, const void *in, size_t n, char *err, size_t errlen);
	void (*close)(bootstrap_info *b); /* frees b; NULL for a bootstrap_info of the caller's own */
	void *impl;                       /* the launcher's */
};

/* 1 when torchrun's variables say this process is one rank of several
 * (RANK or WORLD_SIZE is set). */
int bootstrap_env_launched(void);

/* Rank and world from torchrun's variables; when they are set and
 * WORLD_SIZE > 1, the TCP rendezvous at MASTER_ADDR:MASTER_PORT, done
 * when every rank has connected (so a rank that is missing is an error
 * here, not a hang later). Local rank and local world from LOCAL_RANK and
 * LOCAL_WORLD_SIZE, or, where either is unset, by comparing machine
 * names (host name and boot id) across ranks. Without the variables, rank
 * 0 of 1. Returns owned (bootstrap_close), or NULL with the reason in err:
 * a variable unset or malformed, MASTER_ADDR unresolvable, MASTER_PORT in
 * use, a rank that did not come in time. */
bootstrap_info *bootstrap_open_env(char *err, size_t errlen);

/* The same over a comm whose buffers are host memory (comm_mpi_open's):
 * bytes go by c->broadcast, local ranks from the MPI launcher's variables
 * (OMPI_COMM_WORLD_LOCAL_RANK and _SIZE, MPI_LOCALRANKID and
 * MPI_LOCALNRANKS) or by comparing machine names. Borrows c, which must
 * outlive the result; a failed MPI call ends the process (MPI's rule), so
 * its broadcasts never return -1. Returns owned (bootstrap_close), or
 * NULL with the reason in err. */
bootstrap_info *bootstrap_open_comm(const comm *c, char *err, size_t errlen);

/* b->broadcast, b->allgather, and a barrier (an all-gather of nothing):
 * 0, or -1 with the reason in err. After a failure b can only be closed. */
int bootstrap_broadcast(const bootstrap_info *b, void *buf, size_t n, char *err, size_t errlen);
int bootstrap_allgather(const bootstrap_info *b, void *out, const void *in, size_t n, char *err, size_t errlen);
int bootstrap_barrier(const bootstrap_info *b, char *err, size_t errlen);

/* Close connections and free b (NULL is fine). Consumes b. */
void bootstrap_close(bootstrap_info *b);

#endif
