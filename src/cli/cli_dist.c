/* cli_dist.c - what `bench run` and `bench pretrain` do differently under mpirun (dist.h):
 * only rank 0 talks, worker threads default to the cores per rank, a failing rank ends the
 * whole job; `run` makes rank r of N run shard r/N of the tasks in the common --out folder.
 */
#include "cli.h"
#include "fsb/dist.h"
#include "fsb/run.h"
#include "fsb/status.h"

#include <stdio.h>
#include <unistd.h>

int fsb_cli_dist_start(int *argc, char ***argv, FILE **progress, FILE **log, int *threads)
{
    int st = fsb_dist_init(argc, argv);
    if (st || fsb_dist_size() == 1) return st;
    if (fsb_dist_rank() > 0) *progress = *log = NULL;
    if (*threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN), local = fsb_dist_local_size();
        *threads = cores / local > 1 ? (int)(cores / local) : 1;
    }
    return FSB_OK;
}

int fsb_cli_dist_begin(int *argc, char ***argv, fsb_run_opts *o)
{
    int st = fsb_cli_dist_start(argc, argv, &o->progress, &o->log, &o->threads);
    if (st || fsb_dist_size() == 1) return st;
    if (fsb_shard_active(&o->shard))
        return fsb_error(FSB_EINVAL, "--shard: not with mpirun, which shards the run itself "
                                     "(rank r of N runs shard r/N)");
    if (!o->data)
        return fsb_error(FSB_EINVAL, "--data: required under mpirun (the Fashion-MNIST demo "
                                     "is for one process)");
    o->shard.index = fsb_dist_rank();
    o->shard.count = fsb_dist_size();
    o->shard.shared = 1;
    return FSB_OK;
}

int fsb_cli_dist_end(const char *cmd, int st)
{
    if (st && fsb_dist_size() > 1) {
        /* the other ranks may wait for this one forever: end the job */
        fprintf(stderr, "bench %s (rank %d of %d): %s\n", cmd, fsb_dist_rank(), fsb_dist_size(),
                fsb_error_last());
        fflush(stderr);
        fsb_dist_abort(fsb_status_exit_code(st));
    }
    fsb_dist_finalize();
    return st;
}
