#!/bin/sh
# MPI (lib/comm_mpi.c): the collectives data-parallel training uses, under
# mpirun with 2 and 3 ranks on this machine, and a rank killed with -9
# ending the others within seconds instead of leaving them waiting.
. "$(dirname "$0")/lib.sh"
# As root, on 2 cores: OpenMPI's own switches for both.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# OpenMPI's libraries keep allocations to the end: not ours to report.
export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
B=$TOP/build/tests/mpi_comm

if ! command -v mpirun > /dev/null || [ ! -x "$B" ]; then
	skip 'collectives under mpirun' 'no OpenMPI here (apt-get install openmpi-bin libopenmpi-dev), or built with MPI=0'
	exit 0
fi

ok 'all-reduce (float, double, long), reduce-scatter, all-gather and broadcast are right on 2 and 3 ranks' '
	mpirun -np 2 "$B" > out 2> err && grep -qx "mpi_comm: 2 ranks: all-reduce, reduce-scatter, all-gather, broadcast right" out &&
	mpirun -np 3 "$B" > out 2> err && grep -qx "mpi_comm: 3 ranks: all-reduce, reduce-scatter, all-gather, broadcast right" out
'

ok 'a rank killed with -9 ends the others within seconds (no hang), non-zero' '
	s=$(date +%s) && rc=0 && { timeout 60 mpirun -np 2 "$B" die > out 2> err || rc=$?; } &&
	test "$rc" != 0 && test "$rc" != 124 && test $(($(date +%s) - s)) -lt 20 && grep -q "signal 9" err
'
