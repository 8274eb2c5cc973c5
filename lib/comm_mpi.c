/* comm_mpi.c — the collectives of comm.h over MPI, for CPU ranks
 * started by mpirun or Slurm's srun (OpenMPI from Debian). Built when the
 * Makefile finds MPI (DS_MPI); without it comm_mpi_open says so.
 *
 * Sums are MPI_SUM on MPI_COMM_WORLD: for a given world size and build the
 * same order every run, not the rank order of one process's loop, so a
 * run with N ranks equals the run with one process and N times the
 * accumulation to rounding (the engine's tests state the bound), not to
 * the bit. A rank that dies makes mpirun end the others (OpenMPI's
 * default); MPI_ERRORS_ARE_FATAL turns any failed call into an exit too,
 * so nothing waits forever on a peer that is gone.
 */
#include "comm_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int comm_mpi_launched(void)
{
	static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_NTASKS"};
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
		if (getenv(vars[i])) return 1;
	return 0;
}

#ifdef DS_MPI

#include <mpi.h>

/* MPI counts are ints: a long buffer goes in pieces. */
enum { PIECE = 1 << 30 };

static void mpi_allreduce(const comm *c, float *buf, size_t n)
{
	for (size_t o = 0; o < n; o += PIECE)
		MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)(n - o < PIECE ? n - o : PIECE), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static void mpi_allreduce_f64(const comm *c, double *buf, size_t n)
{
	for (size_t o = 0; o < n; o += PIECE)
		MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)(n - o < PIECE ? n - o : PIECE), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static void mpi_allreduce_long(const comm *c, long *buf, size_t n)
{
	for (size_t o = 0; o < n; o += PIECE)
		MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)(n - o < PIECE ? n - o : PIECE), MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
}

static void mpi_reduce_scatter(const comm *c, float *out, const float *in, size_t n)
{
	size_t per = n / (size_t)c->world;
	if (per <= PIECE) {
		MPI_Reduce_scatter_block(in, out, (int)per, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
		return;
	}
	/* Slices over 2^30: reduce each rank's slice to it, piece by piece. */
	for (int r = 0; r < c->world; r++)
		for (size_t o = 0; o < per; o += PIECE) {
			int k = (int)(per - o < PIECE ? per - o : PIECE);
			const float *src = in + (size_t)r * per + o;
			MPI_Reduce(c->rank == r && src == out + o ? MPI_IN_PLACE : src, out + o, k, MPI_FLOAT, MPI_SUM, r,
				   MPI_COMM_WORLD);
		}
}

static void mpi_allgather(const comm *c, float *out, const float *in, size_t n)
{
	if (n <= PIECE) {
		MPI_Allgather(in == out + (size_t)c->rank * n ? MPI_IN_PLACE : in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT,
			      MPI_COMM_WORLD);
		return;
	}
	for (int r = 0; r < c->world; r++) {
		float *slot = out + (size_t)r * n;
		if (r == c->rank && slot != in) memmove(slot, in, n * sizeof *in);
		for (size_t o = 0; o < n; o += PIECE)
			MPI_Bcast(slot + o, (int)(n - o < PIECE ? n - o : PIECE), MPI_FLOAT, r, MPI_COMM_WORLD);
	}
}

static void mpi_broadcast(const comm *c, void *buf, size_t n, int root)
{
	for (size_t o = 0; o < n; o += PIECE)
		MPI_Bcast((char *)buf + o, (int)(n - o < PIECE ? n - o : PIECE), MPI_BYTE, root, MPI_COMM_WORLD);
}

static void mpi_barrier(const comm *c) { MPI_Barrier(MPI_COMM_WORLD); }

static comm world;

static void mpi_close(void)
{
	int done = 0;
	MPI_Finalized(&done);
	if (!done) MPI_Finalize();
}

const comm *comm_mpi_open(int *argc, char ***argv, char *err, size_t errlen)
{
	int provided;
	if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
		snprintf(err, errlen, "MPI_Init failed");
		return NULL;
	}
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
	world = (comm){.name = "mpi",
		       .allreduce_sum = mpi_allreduce,
		       .allreduce_sum_f64 = mpi_allreduce_f64,
		       .allreduce_sum_long = mpi_allreduce_long,
		       .reduce_scatter_sum = mpi_reduce_scatter,
		       .allgather = mpi_allgather,
		       .broadcast = mpi_broadcast,
		       .barrier = mpi_barrier};
	MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world.world);
	atexit(mpi_close);
	return &world;
}

void comm_mpi_abort(int code)
{
	int up = 0, done = 0;
	MPI_Initialized(&up);
	MPI_Finalized(&done);
	if (up && !done) MPI_Abort(MPI_COMM_WORLD, code);
}

#else

const comm *comm_mpi_open(int *argc, char ***argv, char *err, size_t errlen)
{
	snprintf(err, errlen, "this ds-train was built without MPI (install libopenmpi-dev and rebuild)");
	return NULL;
}

void comm_mpi_abort(int code) {}

#endif
