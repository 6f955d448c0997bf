/* dist_mpi.c - dist.h over MPI_COMM_WORLD (Open MPI), compiled only with -DFSB_MPI=ON.
 * MPI is initialised only when the process was started by mpirun (its environment says
 * so), so a plain `bench` of an MPI build never touches MPI and runs as a job of one.
 * State lives in MPI itself (MPI_Initialized / MPI_Finalized): no globals here.
 */
#include "fsb/dist.h"
#include "fsb/status.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int mpi_on(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

int fsb_dist_built(void)
{
    return 1;
}

int fsb_dist_init(int *argc, char ***argv)
{
    if (mpi_on()) return FSB_OK;
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK"))
        return FSB_OK; /* not started by mpirun: a job of one, MPI untouched */
    if (MPI_Init(argc, argv) != MPI_SUCCESS) return fsb_error(FSB_EIO, "MPI_Init failed");
    return FSB_OK;
}

void fsb_dist_finalize(void)
{
    if (mpi_on()) MPI_Finalize();
}

void fsb_dist_abort(int code)
{
    if (mpi_on() && fsb_dist_size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

int fsb_dist_rank(void)
{
    int r = 0;
    if (mpi_on()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int fsb_dist_size(void)
{
    int n = 1;
    if (mpi_on()) MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

int fsb_dist_local_size(void)
{
    if (!mpi_on()) return 1;
    MPI_Comm local;
    int n = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) !=
        MPI_SUCCESS)
        return 1;
    MPI_Comm_size(local, &n);
    MPI_Comm_free(&local);
    return n;
}

int fsb_dist_barrier(void)
{
    if (mpi_on() && MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS)
        return fsb_error(FSB_EIO, "MPI_Barrier failed");
    return FSB_OK;
}

int fsb_dist_gather(void *items, size_t item_size, unsigned char *have, size_t n)
{
    if (!mpi_on() || fsb_dist_size() == 1) return FSB_OK;
    int rank = fsb_dist_rank(), size = fsb_dist_size(), st = FSB_OK;
    size_t rec = sizeof(uint64_t) + item_size, mine = 0;
    for (size_t i = 0; i < n; i++)
        mine += have[i] != 0;
    if (mine * rec > (size_t)INT32_MAX)
        return fsb_error(FSB_EINVAL, "MPI gather: %zu items are too many for one message", mine);
    /* pack (index, item) pairs */
    unsigned char *send = malloc(mine * rec + 1), *recv = NULL;
    int *counts = malloc((size_t)size * sizeof *counts),
        *displs = malloc((size_t)size * sizeof *displs);
    if (!send || !counts || !displs) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        fsb_dist_abort(1); /* the other ranks would wait in the gather forever */
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!have[i]) continue;
        uint64_t idx = i;
        memcpy(send + k * rec, &idx, sizeof idx);
        memcpy(send + k * rec + sizeof idx, (unsigned char *)items + i * item_size, item_size);
        k++;
    }
    int count = (int)(mine * rec);
    if (MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        st = fsb_error(FSB_EIO, "MPI_Gather failed");
        goto done;
    }
    size_t total = 0;
    if (rank == 0) {
        for (int r = 0; r < size; r++) {
            displs[r] = (int)total;
            total += (size_t)counts[r];
        }
        if (total > (size_t)INT32_MAX || !(recv = malloc(total + 1))) {
            st = fsb_error(FSB_ENOMEM, "MPI gather: cannot receive %zu bytes", total);
            fsb_dist_abort(1);
            goto done;
        }
    }
    if (MPI_Gatherv(send, count, MPI_BYTE, recv, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD) !=
        MPI_SUCCESS) {
        st = fsb_error(FSB_EIO, "MPI_Gatherv failed");
        goto done;
    }
    for (size_t off = 0; rank == 0 && off < total; off += rec) {
        uint64_t idx;
        memcpy(&idx, recv + off, sizeof idx);
        if (idx >= n) {
            st = fsb_error(FSB_EFORMAT, "MPI gather: item index %llu out of range",
                           (unsigned long long)idx);
            break;
        }
        memcpy((unsigned char *)items + idx * item_size, recv + off + sizeof idx, item_size);
        have[idx] = 1;
    }
done:
    free(send);
    free(recv);
    free(counts);
    free(displs);
    return st;
}

int fsb_dist_allreduce_sum(float *x, size_t n)
{
    if (!mpi_on() || fsb_dist_size() == 1 || n == 0) return FSB_OK;
    if (n > (size_t)INT32_MAX)
        return fsb_error(FSB_EINVAL, "MPI all-reduce: %zu floats are too many", n);
    int rank = fsb_dist_rank(), size = fsb_dist_size(), st = FSB_OK;
    float *all = NULL;
    if (rank == 0 && !(all = malloc((size_t)size * n * sizeof *all))) {
        fsb_dist_abort(1);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    /* gather, add in rank order (deterministic), broadcast */
    if (MPI_Gather(x, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        st = fsb_error(FSB_EIO, "MPI_Gather failed");
    if (!st && rank == 0)
        for (size_t i = 0; i < n; i++) {
            float s = all[i];
            for (int r = 1; r < size; r++)
                s += all[(size_t)r * n + i];
            x[i] = s;
        }
    if (!st && MPI_Bcast(x, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        st = fsb_error(FSB_EIO, "MPI_Bcast failed");
    free(all);
    return st;
}
