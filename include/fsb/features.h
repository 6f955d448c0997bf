/* features.h - a frozen network's embeddings of packed images: the one batched embedding
 * routine (the test transform, an eval-mode forward, EMBED_BATCH images at a time) that the
 * runner and pre-training's validation share, and the feature cache of a whole split.
 *
 * Feature cache: ROOT-of-the-packed-cache/features-<split>-<key>.fsbt, a tensorfile with
 * meta "key" = the text below and tensor "features" [n_images][dim]. The key text names
 * everything the features depend on:
 *   "fsb-features/1 teacher=<xxh3-64 of the checkpoint file> source=<cache source fp>
 *    size=<packed side> resize=<S> crop=<C> arch=<conv4|res12>"
 * and its XXH3-64 names the file, so another teacher or transform never reads stale
 * features; a file whose key text differs is recomputed and replaced.
 */
#ifndef FSB_FEATURES_H
#define FSB_FEATURES_H

#include "fsb/cache.h"
#include "fsb/model.h"
#include "fsb/tensorfile.h"
#include "fsb/transform.h"

#include <stdint.h>
#include <stdio.h>

/* Images per forward in fsb_features_embed; models that embed must be created with at least
 * this max_batch. */
#define FSB_FEATURES_BATCH 64

/* Embed images idx[0..n) of cache c (idx NULL: images 0..n-1) with model m in eval mode after
 * the test transform tf, FSB_FEATURES_BATCH at a time, into out [n][embed_dim]. The transform
 * runs on `pool` (NULL: the caller); the result does not depend on the thread count. A
 * progress bar labelled `label` goes to `progress` (NULL: none). */
int fsb_features_embed(fsb_model *m, const fsb_cache *c, const fsb_transform *tf, const int *idx,
                       int n, float *out, fsb_pool *pool, FILE *progress, const char *label);

/* The features of every image of cache c under teacher m (whose file has XXH3-64
 * teacher_hash), from the feature cache beside c's file or computed and stored there (see the
 * top). *out points into tf, which the caller frees with fsb_tensorfile_free. */
int fsb_features_split(fsb_tensorfile *tf, const float **out, fsb_model *m, uint64_t teacher_hash,
                       const fsb_cache *c, const fsb_transform *xf, fsb_pool *pool, FILE *progress);

#endif
