/* comm_mpi.h — comm.h's collectives over MPI (mpirun, srun). */
#ifndef DS_COMM_MPI_H
#define DS_COMM_MPI_H

#include "comm.h"

#include <stddef.h>

/* 1 when this process was started by mpirun / srun (their environment
 * says so), so a program knows to open MPI before anything else. */
int comm_mpi_launched(void);

/* MPI_Init and the world communicator: borrowed, static, finalised at
 * exit. NULL with the reason in err when MPI cannot start or this build
 * has none. */
const comm *comm_mpi_open(int *argc, char ***argv, char *err, size_t errlen);

/* End every rank with code (MPI_Abort), when MPI is up: a rank that fails
 * must not leave the others waiting in a collective. */
void comm_mpi_abort(int code);

#endif
