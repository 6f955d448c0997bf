/* dist.h - the processes of one job started by mpirun (Open MPI), or just this process.
 *
 * Built with -DFSB_MPI=ON (FSB_HAVE_MPI defined) the functions use MPI_COMM_WORLD
 * (src/mpi/dist_mpi.c); otherwise, or when the process was not started by mpirun (no
 * OMPI_COMM_WORLD_SIZE / PMIX_RANK / PMI_RANK in the environment), MPI is never
 * initialised and this is a job of one process: rank 0 of 1, every collective a no-op
 * (src/dist.c). All functions return 0 or a negative fsb_status unless said otherwise.
 */
#ifndef FSB_DIST_H
#define FSB_DIST_H

#include <stddef.h>

/* 1 in a build with MPI support. */
int fsb_dist_built(void);
/* Initialise MPI when built with it and started by mpirun; no-op otherwise (and when
 * already initialised). */
int fsb_dist_init(int *argc, char ***argv);
/* Finalise MPI if fsb_dist_init initialised it; no-op otherwise. */
void fsb_dist_finalize(void);
/* End the whole job at once with this exit code (MPI_Abort); in a one-process job this
 * returns and the caller exits normally. */
void fsb_dist_abort(int code);
/* This process's rank (0 when not under mpirun). */
int fsb_dist_rank(void);
/* Processes in the job (1 when not under mpirun). */
int fsb_dist_size(void);
/* Processes of the job on this machine (1 when not under mpirun). */
int fsb_dist_local_size(void);
/* Wait for every process. */
int fsb_dist_barrier(void);
/* Gather on rank 0: every rank contributes items[i] (item_size bytes each, i < n) for
 * which have[i] is 1; on rank 0 they land at items[i] with have[i] set. Other ranks'
 * arrays are left as they were. Each index must be had by at most one rank. */
int fsb_dist_gather(void *items, size_t item_size, unsigned char *have, size_t n);
/* Element-wise sum of x[0..n) over all ranks, result on every rank (in place). The sum is
 * taken in rank order so it is deterministic. */
int fsb_dist_allreduce_sum(float *x, size_t n);

#endif
