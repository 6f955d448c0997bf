/* dist.c - the one-process job of dist.h, used by builds without MPI support (a build with
 * -DFSB_MPI=ON compiles src/mpi/dist_mpi.c instead and this file is empty).
 */
#include "fsb/dist.h"
#include "fsb/status.h"

#include <stdlib.h>

#ifndef FSB_HAVE_MPI

int fsb_dist_built(void)
{
    return 0;
}

int fsb_dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* N copies of a build without MPI would all run the whole job in one folder */
    const char *sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(sizes[i]);
        if (v && atoi(v) > 1)
            return fsb_error(FSB_EINVAL,
                             "started by mpirun with %s=%s, but this bench was built "
                             "without MPI support: rebuild with -DFSB_MPI=ON "
                             "(docs/cluster.md), or use --shard i/n",
                             sizes[i], v);
    }
    return 0;
}

void fsb_dist_finalize(void) {}

void fsb_dist_abort(int code)
{
    (void)code;
}

int fsb_dist_rank(void)
{
    return 0;
}

int fsb_dist_size(void)
{
    return 1;
}

int fsb_dist_local_size(void)
{
    return 1;
}

int fsb_dist_barrier(void)
{
    return 0;
}

int fsb_dist_gather(void *items, size_t item_size, unsigned char *have, size_t n)
{
    (void)items;
    (void)item_size;
    (void)have;
    (void)n;
    return 0;
}

int fsb_dist_allreduce_sum(float *x, size_t n)
{
    (void)x;
    (void)n;
    return 0;
}

#else
typedef int fsb_dist_c_is_empty_in_mpi_builds; /* ISO C forbids an empty file */
#endif
