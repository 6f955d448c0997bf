/* pretrain_dist.c - the data-parallel pieces of pre-training (see pretrain_dist.h), kept
 * apart from pretrain.c, which calls them at a few marked points. Everything is a no-op in a
 * job of one process, so a build without MPI trains exactly as before.
 */
#include "fsb/pretrain_dist.h"
#include "fsb/dist.h"
#include "fsb/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fsb_pretrain_dist_check(int batch)
{
    int n = fsb_dist_size();
    if (batch % n != 0)
        return fsb_error(FSB_EINVAL, "--batch: %d images do not split evenly over %d ranks", batch,
                         n);
    return FSB_OK;
}

void fsb_pretrain_dist_slice(int batch, int *first, int *n)
{
    int ranks = fsb_dist_size();
    *n = batch / ranks;
    *first = fsb_dist_rank() * *n;
}

int fsb_pretrain_dist_reduce_grads(fsb_model *m)
{
    int ranks = fsb_dist_size();
    if (ranks == 1) return FSB_OK;
    long n, off = fsb_model_trainable_offset(m);
    float *g = fsb_model_grads(m, &n);
    int st = fsb_dist_allreduce_sum(g + off, (size_t)(n - off));
    if (st) return st;
    float inv = 1.0f / (float)ranks;
    for (long i = off; i < n; i++)
        g[i] *= inv;
    return FSB_OK;
}

int fsb_pretrain_dist_average_bn(fsb_model *m)
{
    int ranks = fsb_dist_size(), st = FSB_OK;
    if (ranks == 1) return FSB_OK;
    float inv = 1.0f / (float)ranks;
    for (int i = 0; i < fsb_model_n_tensors(m) && !st; i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        if (t.kind != FSB_T_RUNNING_MEAN && t.kind != FSB_T_RUNNING_VAR) continue;
        if (!(st = fsb_dist_allreduce_sum(t.data, (size_t)t.numel)))
            for (long k = 0; k < t.numel; k++)
                t.data[k] *= inv;
    }
    return st;
}

int fsb_pretrain_dist_sum(double *x, int n)
{
    if (fsb_dist_size() == 1) return FSB_OK;
    float buf[8];
    if (n > 8) return fsb_error(FSB_EINVAL, "fsb_pretrain_dist_sum: %d > 8 values", n);
    for (int i = 0; i < n; i++)
        buf[i] = (float)x[i];
    int st = fsb_dist_allreduce_sum(buf, (size_t)n);
    for (int i = 0; !st && i < n; i++)
        x[i] = buf[i];
    return st;
}

int fsb_pretrain_dist_identity(char **id)
{
    int ranks = fsb_dist_size();
    if (ranks == 1) return FSB_OK;
    size_t len = strlen(*id);
    char *grown = realloc(*id, len + 32);
    if (!grown) return fsb_error(FSB_ENOMEM, "out of memory");
    snprintf(grown + len, 32, " ranks=%d", ranks);
    *id = grown;
    return FSB_OK;
}
