/* student.h - per-episode student training: the `finetune` baseline and REFILLED
 * (docs/refilled.md: stage 1 triplet-relationship distillation, stage 2 NCM-classifier
 * distillation, then the student's head predicts the queries).
 *
 * The student starts as a copy of the teacher's backbone plus a fresh way-way linear head
 * (zero, or nn.Linear's init from the episode rng: `head_init`) and is trained on the support set
 * with SGD (Nesterov momentum, weight decay); blocks frozen by `adapt` stay in eval mode and equal
 * the teacher's. Everything an episode needs lives in a per-worker fsb_student_ctx created once
 * (teacher replica, student, buffers): an episode allocates nothing. Single-threaded (the
 * runner parallelises over episodes), so results never depend on the thread count: the same
 * inputs and rng state give the same predictions bit for bit.
 *
 * Support data: a BANK of `bank` views per support image is drawn once per episode (the train
 * transform with the crop scale `crop_lo`..1 and colour jitter `jitter`; view v of support
 * position i from fsb_rng stream i*A+v under a key drawn from the episode rng; with
 * clean_view, view 0 is the test transform; `bank_max` caps the rows; a bank of one view per
 * image - augment=0, bank=1 or the cap - is the test transform). For every bank row the teacher's
 * embedding (eval mode, the SAME augmented pixels the student sees) and, with a frozen prefix
 * (adapt last/head, prefix=1), the prefix activations are computed once per episode; steps then
 * cycle through the bank. Batches: per step and class,
 * `per_class` support images in a per-episode random rotation (all K when batch = 0), one
 * view each; stage 1 at K = 1 takes `views` distinct views per image instead (positives =
 * views of the same image), at most the bank's views per image; with fewer than 2 (augment=0,
 * bank=1 or the bank_max cap) or k1=skip, stage 1 does not run at K = 1.
 */
#ifndef FSB_STUDENT_H
#define FSB_STUDENT_H

#include "fsb/cache.h"
#include "fsb/model.h"
#include "fsb/refilled.h"
#include "fsb/rng.h"
#include "fsb/transform.h"

#include <stddef.h>

/* Which per-episode method. */
typedef enum fsb_student_method {
    FSB_STUDENT_FINETUNE = 0, /* cross-entropy only (stage-2 steps and lr) */
    FSB_STUDENT_REFILLED = 1  /* stage 1 then stage 2 (docs/refilled.md) */
} fsb_student_method;

/* What stage 1 does at K = 1 (docs/refilled.md, *choice*). */
typedef enum fsb_student_k1 {
    FSB_K1_VIEWS = 0, /* `views` augmented views per image are the positives */
    FSB_K1_SKIP = 1   /* no stage 1 at K = 1 */
} fsb_student_k1;

/* How the fresh head starts (both methods: it is part of the student). */
typedef enum fsb_student_head_init {
    FSB_HEAD_UNIFORM = 0, /* nn.Linear's init from the episode rng */
    FSB_HEAD_ZERO = 1     /* all zero: every step then moves the head only within the span of
                             the support embeddings, so nothing of the init is left in the
                             directions the support never saw (the rng is drawn all the same) */
} fsb_student_head_init;

/* Learning rate within a stage. */
typedef enum fsb_student_sched {
    FSB_SCHED_CONST = 0, /* lr for every step */
    FSB_SCHED_COSINE = 1 /* lr * (1 + cos(pi * step / steps)) / 2 */
} fsb_student_sched;

/* Every free hyper-parameter (docs/refilled.md "choice" items), defaults in brackets; spec-string
 * key = field name. Fields marked (ctx) size the fsb_student_ctx and must be the same for
 * the episodes that use it. */
typedef struct fsb_student_opts {
    int stage1_steps;  /* REFILLED stage-1 SGD steps [20] */
    float lr1;         /* stage-1 learning rate [0.01] */
    int stage2_steps;  /* REFILLED stage-2 steps; finetune's steps too [100] */
    float lr2;         /* stage-2 / finetune learning rate [0.003] */
    int batch;         /* (ctx) rows per step cap; 0 = the whole support set [0] */
    int augment;       /* (ctx) 1: train augmentation for the bank; 0: test transform [1] */
    int bank;          /* (ctx) views per support image drawn per episode (1 if !augment) [8] */
    int bank_max;      /* (ctx) cap on bank rows per episode: views per image = min(bank,
                          max(1, bank_max / support images)); 0 = no cap [0] */
    float crop_lo;     /* augmented views: smallest area fraction of the random resized crop
                          (the pre-training transform's is 0.08) [0.5] */
    float jitter;      /* augmented views: brightness, contrast and saturation strength
                          (pre-training: 0.4) [0] */
    int clean_view;    /* with a bank of A > 1 views: 1 = view 0 of every image is the test
                          transform and views 1..A-1 are augmented; 0 = all A augmented [1] */
    int views;         /* (ctx) V >= 2 views per image in stage-1 batches at K = 1, capped by
                          the bank's views per image (stage 1 skipped below 2) [2] */
    fsb_student_k1 k1; /* K = 1 policy: views | skip [views] */
    fsb_adapt adapt;   /* (ctx) trained part: all | last | head [head] */
    int prefix;        /* (ctx) 1: precompute frozen-prefix activations once per episode;
                          0: run the whole network every step (same results; tests) [1] */
    fsb_refilled_miner miner; /* stage-1 triplets: semihard | facenet [semihard] */
    float margin;             /* semi-hard window (0, margin) [0.2] */
    float tau1;               /* stage-1 temperature [4] */
    float w1;                 /* stage-1 weight [500] */
    float tau2;               /* stage-2 temperature [2] */
    float lambda;             /* stage-2 KL weight [0.3, chosen on val; reference code 100] */
    int centres_batch;        /* 0: teacher NCM centres over the whole bank once per episode
                                 (reference HEAD); 1: per batch (June-2020) [0] */
    float momentum;           /* SGD momentum [0.9] */
    int nesterov;             /* Nesterov momentum [1] */
    float weight_decay;       /* L2 weight decay on every trained tensor [5e-4] */
    fsb_student_sched sched;  /* lr schedule within a stage: const | cosine [const] */
    fsb_student_head_init head_init; /* the fresh head: uniform | zero [zero] */
} fsb_student_opts;

/* Longest canonical spec string (fsb_student_opts_string), NUL included. */
#define FSB_STUDENT_SPEC_MAX 512

/* The defaults listed above. */
void fsb_student_opts_default(fsb_student_opts *o);
/* Check ranges (steps >= 0, lr >= 0, bank >= 1, views >= 2, tau > 0, ...). FSB_EINVAL
 * naming `flag` and the key. */
int fsb_student_opts_check(const fsb_student_opts *o, const char *flag);
/* Apply "key=value,key=value" (empty or NULL: nothing) on top of *o, then check. Errors
 * (FSB_EINVAL) name `flag` and the key: unknown key, missing '=', bad value, out of range.
 * On error *o is unchanged. */
int fsb_student_opts_parse(fsb_student_opts *o, const char *spec, const char *flag);
/* Check one "key=value" item (the first len bytes of item) alone: a known key and a value of
 * its type and range; cross-key rules are left to fsb_student_opts_parse. FSB_EINVAL naming
 * `flag` and the key. */
int fsb_student_item_check(const char *item, size_t len, const char *flag);
/* The canonical "key=value,..." of every field in a fixed order (floats: the shortest %g
 * that reads back as the same float), for run identity and reports; buf of
 * FSB_STUDENT_SPEC_MAX bytes. Parsing it gives the same opts. */
void fsb_student_opts_string(const fsb_student_opts *o, char *buf, size_t n);

/* ---- per-worker context ------------------------------------------------------------------- */

typedef struct fsb_student_ctx fsb_student_ctx;

/* Create a worker's context: a single-threaded replica of the teacher checkpoint at
 * teacher_path (eval mode, never trained), a student of the same architecture, and every
 * buffer for episodes of up to max_way classes, max_shot support and max_query queries per
 * class under `opts` (the (ctx) fields). `cache` (borrowed, must outlive the ctx) holds the
 * images the episodes index; `tf` (copied) gives the crop, the normalisation and the
 * augmentation (each episode's crop_lo and jitter replace its crop scale and jitter); its
 * crop must be the teacher's input size or in_hw-compatible. Errors: FSB_EINVAL (options),
 * the checkpoint's errors, FSB_ENOMEM. */
int fsb_student_ctx_create(fsb_student_ctx **out, const char *teacher_path, const fsb_cache *cache,
                           const fsb_transform *tf, int max_way, int max_shot, int max_query,
                           const fsb_student_opts *opts);
/* Free everything; NULL is a no-op. */
void fsb_student_ctx_destroy(fsb_student_ctx *ctx);
/* The teacher replica (read-only use: tests compare its weights before and after). */
const fsb_model *fsb_student_ctx_teacher(const fsb_student_ctx *ctx);
/* The student after the last episode (tests inspect its weights). */
const fsb_model *fsb_student_ctx_student(const fsb_student_ctx *ctx);
/* The teacher's embeddings of the last REFILLED episode's bank ([*rows][embed dim], row
 * i*A+v = view v of support position i; tests check which views are clean). */
const float *fsb_student_ctx_bank(const fsb_student_ctx *ctx, int *rows);

/* ---- one episode -------------------------------------------------------------------------- */

/* What one episode did. */
typedef struct fsb_student_stats {
    double fit_ms;            /* bank + training, ms */
    double bank_ms;           /* of which building the bank (transforms, teacher, prefix), ms */
    int bank_views;           /* views per support image in this episode's bank */
    double predict_ms;        /* query transform + forward + argmax, ms */
    int stage1_ran;           /* 1 when stage 1 was attempted (refilled, trainable backbone,
                                 K > 1, or k1=views with >= 2 bank views per image) */
    int stage1_steps;         /* stage-1 SGD steps taken */
    int stage1_empty;         /* stage-1 batches without a triplet (no step taken) */
    double stage1_triplets;   /* mean mined triplets per stage-1 batch */
    double stage1_loss_first; /* L1 of the first stage-1 batch (0 without one) */
    double stage1_loss_last;  /* L1 of the last stage-1 batch */
    int stage2_steps;         /* stage-2 / finetune SGD steps taken */
    double loss_first;        /* stage-2 / finetune loss of the first step */
    double loss_last;         /* ... of the last step */
} fsb_student_stats;

/* One episode as the student sees it. Nothing here is owned by the view. Support images may be
 * in any order; support_labels says which class each one is. The method table's finetune and
 * refilled rows (fsb_method_finetune / fsb_method_refilled in method.h, defined in
 * baselines/student_methods.c) fill it from their fsb_episode_view. */
typedef struct fsb_student_episode_view {
    int way;                   /* classes N, 1 .. the ctx's max_way */
    int shot;                  /* support images per class K, 1 .. the ctx's max_shot */
    int n_query;               /* queries, 1 .. max_way * max_query of the ctx */
    const int *support_img;    /* [way*shot] image indices into the ctx's cache */
    const int *support_labels; /* [way*shot] class of each support image, in [0, way), `shot`
                                  per class */
    const int *query_img;      /* [n_query] image indices into the ctx's cache */
    const float *support_feat; /* [way*shot][D] the teacher's embeddings of the support images
                                  under the ctx's test transform, or NULL (see below) */
    const float *query_feat;   /* [n_query][D] ... of the query images, or NULL */
} fsb_student_episode_view;

/* Train a student on episode ep and predict its queries: pred[ep->n_query] in [0, way)
 * (argmax of the student's head, ties to the lowest class). `opts` must agree with the ctx's
 * (ctx) fields; every other field (steps, rates, SGD, losses, augmentation strength) is taken
 * from `opts`. way and shot may be any values up to the ctx's. rng is the episode's generator
 * (head init, augmentation key, batch rotation, dropout). stats may be NULL.
 * In order: the student (teacher copy + fresh head) and the bank; stage 1 (REFILLED with a
 * trainable backbone and stage1_steps > 0, at K > 1, or at K = 1 with k1=views and >= 2 bank
 * views per image: stats.stage1_ran); stage 2 (REFILLED) or fine-tuning; the prediction.
 * ep->support_feat and ep->query_feat (each may be NULL) are the teacher's eval-mode
 * embeddings (D = its embedding dimension) of the same images under the ctx's test transform
 * (the runner's cached features). With a frozen backbone (adapt=head, prefix=1) they replace
 * the forward passes they equal: the bank's clean (test-transform) views, and the query
 * forward, so only the head runs. The results are the same bits as without them (tested),
 * provided they are what they claim to be. Returns FSB_OK, FSB_EINVAL (shapes, options, a
 * non-finite loss naming the stage and step), image errors. */
int fsb_student_episode(fsb_student_ctx *ctx, const fsb_student_opts *opts,
                        fsb_student_method method, const fsb_student_episode_view *ep, fsb_rng *rng,
                        int *pred, fsb_student_stats *stats);

#endif
