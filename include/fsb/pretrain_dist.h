/* pretrain_dist.h - data-parallel pre-training under mpirun (dist.h): every rank holds the
 * same model; each step rank r trains on its slice [r*B/N, (r+1)*B/N) of the global batch
 * (same images, same augmentation draws as one process), gradients are summed over the
 * ranks in rank order (deterministic, identical bits on every rank) and divided by N, so the
 * SGD update is the one of the global batch B and the parameters stay identical everywhere.
 *
 * Batch norm: each rank normalises with the statistics of its own B/N images (local BN, as
 * PyTorch DistributedDataParallel does without SyncBatchNorm), not of all B; the running
 * statistics are averaged over the ranks after every epoch (exact for the running mean,
 * which is linear in the batch means; the running variance misses the between-rank part).
 * So an N-rank run is close to, not bit-identical with, one process; dropout masks (ResNet-12)
 * also differ. With N = 1 nothing changes. Rank 0 alone writes files and prints.
 */
#ifndef FSB_PRETRAIN_DIST_H
#define FSB_PRETRAIN_DIST_H

#include "fsb/model.h"

/* FSB_EINVAL naming --batch when batch is not a multiple of the rank count. */
int fsb_pretrain_dist_check(int batch);
/* This rank's slice of a global batch of B images: first image and count. */
void fsb_pretrain_dist_slice(int batch, int *first, int *n);
/* Sum the trainable gradients over the ranks and divide by the rank count (no-op for 1). */
int fsb_pretrain_dist_reduce_grads(fsb_model *m);
/* Average every BN running mean and variance over the ranks (no-op for 1). */
int fsb_pretrain_dist_average_bn(fsb_model *m);
/* Sum x[0..n) over the ranks (no-op for 1), for epoch loss and accuracy sums. */
int fsb_pretrain_dist_sum(double *x, int n);
/* Append " ranks=N" to the malloc'd identity *id when N > 1: local BN makes the trajectory
 * depend on N, so a state is resumed only with the rank count that wrote it. */
int fsb_pretrain_dist_identity(char **id);

#endif
