/* maml_method.h - the `maml` row of the method table (declared in method.h as
 * fsb_method_maml): MAML's test-time adaptation (maml.h, fsb_maml_adapt_predict) of the
 * method's own checkpoint (bench run --model maml=PATH, required), per episode.
 *
 * A MAML checkpoint is a model file (fsb_model_save) with a head and the meta keys below,
 * written by MAML's episodic training loop. Per episode the support and query images go
 * through the test transform of the checkpoint's input (the runner refuses a model whose
 * input is not the run's), then maml.test_steps SGD steps at maml.inner_lr on the support
 * set from the checkpoint's weights, one train-mode forward of all queries together (BN with
 * the queries' batch statistics), pred = argmax. Each worker has its own single-threaded
 * copy of the model and its own fsb_maml_work (the call writes the parameters temporarily
 * and restores them), so results depend only on the episode, never on the worker or the
 * thread count.
 */
#ifndef FSB_MAML_METHOD_H
#define FSB_MAML_METHOD_H

#include "fsb/cache.h"
#include "fsb/maml.h"
#include "fsb/method.h"
#include "fsb/transform.h"

/* The training record of a MAML checkpoint (meta keys "maml.<field>"). */
typedef struct fsb_maml_ckpt {
    float inner_lr;  /* maml.inner_lr: alpha of the inner SGD steps (float text) */
    int inner_steps; /* maml.inner_steps: inner steps in training */
    int test_steps;  /* maml.test_steps: inner steps at test (Finn et al.: 10) */
    int order;       /* maml.order: 2 = second order, 1 = first-order MAML */
    int train_way;   /* maml.train_way */
    int train_shot;  /* maml.train_shot */
    int meta_batch;  /* maml.meta_batch: tasks per meta-step */
    long iterations; /* maml.iterations: meta-steps taken */
} fsb_maml_ckpt;

/* Read the maml.* meta of checkpoint `path` (meta only, every key required, values in
 * range). A file without maml.inner_lr is "not a MAML checkpoint"; FSB_EFORMAT naming the
 * file and the key; the tensor file's own errors. */
int fsb_maml_ckpt_read(const char *path, fsb_maml_ckpt *out);

/* A worker's context: the checkpoint at `path` (it must have a head), single-threaded, for
 * episodes of up to max_way x max_shot support and max_way x max_query query images of
 * `cache` (borrowed, must outlive the ctx) under the test transform `tf` (copied; its crop
 * is the network input). Errors: the checkpoint's (not MAML, no head), FSB_EINVAL,
 * FSB_ENOMEM. */
typedef struct fsb_maml_ctx fsb_maml_ctx;
int fsb_maml_ctx_create(fsb_maml_ctx **out, const char *path, const fsb_cache *cache,
                        const fsb_transform *tf, int max_way, int max_shot, int max_query);
/* Free everything; NULL is a no-op. */
void fsb_maml_ctx_destroy(fsb_maml_ctx *ctx);
/* The settings the ctx adapts with (from its checkpoint). */
const fsb_maml_ckpt *fsb_maml_ctx_ckpt(const fsb_maml_ctx *ctx);

/* The row's run function: ep->ctx is the worker's fsb_maml_ctx*, cfg is unused (no norm, no
 * C). fit_ms = the support images' transform plus fsb_maml_adapt_predict (the adaptation, the
 * query forward and the argmax happen in that one call), predict_ms = the query images'
 * transform. The scratch arena is not used: the scratch function returns 0. */
int fsb_method_maml_run(const fsb_method *m, const fsb_method_config *cfg,
                        const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                        fsb_method_stats *stats);
size_t fsb_method_maml_scratch(int way, int shot, int query, int dim);

#endif
