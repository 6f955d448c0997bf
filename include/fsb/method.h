/* method.h - the few-shot method interface: one episode in, one prediction per query out.
 *
 * A method is an entry of one table, found by name (fsb_method_find). Its run function sees
 * an episode view (features and/or image indices of support and query, support labels, an
 * opaque per-run context), read-only shared config, per-worker scratch and an RNG, and writes
 * pred[n_query]. Methods never see query labels. A run must depend only on its inputs (never
 * on the thread running it), so the same episode gives the same predictions on any worker.
 */
#ifndef FSB_METHOD_H
#define FSB_METHOD_H

#include "fsb/arena.h"
#include "fsb/attention.h"
#include "fsb/episodes.h"
#include "fsb/rng.h"

#include <stddef.h>
#include <stdint.h>

/* Feature normalisation applied to support and query features before a feature method. */
typedef enum fsb_norm {
    FSB_NORM_UN = 0,   /* raw features */
    FSB_NORM_L2N = 1,  /* x / ||x||_2 */
    FSB_NORM_CL2N = 2, /* (x - base_mean) / ||x - base_mean||_2 (SimpleShot) */
} fsb_norm;

/* What a method consumes, and what it may be given (bit flags in fsb_method.needs). */
enum {
    FSB_NEEDS_FEATURES = 1, /* support_feat / query_feat must be set */
    FSB_NEEDS_IMAGES = 2,   /* support_img / query_img and ctx must be set (training methods) */
    FSB_TAKES_MODEL = 4,    /* may bring its own model (bench run --model METHOD=PATH, run.h):
                               its features (and feat's attention block) then come from that
                               checkpoint instead of the teacher; with FSB_NEEDS_IMAGES (maml)
                               the method adapts that model per episode and requires it */
};

/* One episode as a method sees it. Nothing here is owned by the view. Support examples may
 * be in any order; support_labels says which class each one is. */
typedef struct fsb_episode_view {
    int64_t episode;           /* episode index in its episode set (for messages and rng) */
    int way;                   /* classes in the episode (N) */
    int shot;                  /* support examples per class (K) */
    int query;                 /* query examples per class */
    int n_support;             /* way * shot */
    int n_query;               /* way * query */
    int dim;                   /* feature dimension (0 when no features are given) */
    const float *support_feat; /* [n_support][dim] raw frozen-teacher features, or NULL */
    const float *query_feat;   /* [n_query][dim] raw frozen-teacher features, or NULL */
    const int *support_labels; /* [n_support] class of each support example, 0..way-1 */
    const int *support_img;    /* [n_support] image indices into the split's store, or NULL */
    const int *query_img;      /* [n_query] image indices into the split's store, or NULL */
    void *ctx;                 /* method-specific context (teacher model, image store), or NULL */
} fsb_episode_view;

/* Buffers an episode view is built in (caller-owned, sized for way x largest shot support
 * rows and way x query query rows). */
typedef struct fsb_view_buffers {
    int *sidx;    /* [way*shot] support image indices */
    int *slab;    /* [way*shot] support labels */
    int *qidx;    /* [way*query] query image indices */
    int *qlab;    /* [way*query] query labels (for scoring; the method never sees them) */
    float *sfeat; /* [way*shot][dim] support features, or NULL without features */
    float *qfeat; /* [way*query][dim] query features, or NULL */
} fsb_view_buffers;

/* The K-shot view of episode e: indices and labels into b, and when feats ([n_images][dim]
 * of the split) is not NULL, the support and query rows gathered into b->sfeat / b->qfeat.
 * ctx is left NULL. */
void fsb_episode_view_make(fsb_episode_view *v, const fsb_episode *e, int64_t index, int shot,
                           const float *feats, int dim, const fsb_view_buffers *b);

/* Read-only configuration shared by every worker running one method. Fill it with
 * fsb_method_config_default() and override what the user chose. */
typedef struct fsb_method_config {
    fsb_norm norm;          /* feature normalisation (1nn, protonet, svm, logreg) */
    double C;               /* inverse regularisation strength (svm, logreg) */
    double eps;             /* liblinear stopping tolerance (svm, logreg) */
    double bias;            /* liblinear bias feature value (1 = sklearn intercept_scaling=1) */
    const float *base_mean; /* [base_mean_dim] mean train-split feature for CL2N, or NULL */
    int base_mean_dim;      /* length of base_mean (must equal the episode's dim for CL2N) */
    const void *extra;      /* method-specific read-only settings (training methods), or NULL */
} fsb_method_config;

/* Time spent by one run, filled by the method (ms, wall clock of the calling thread). */
typedef struct fsb_method_stats {
    double fit_ms;     /* normalisation and fitting on the support set */
    double predict_ms; /* scoring the queries */
} fsb_method_stats;

typedef struct fsb_method fsb_method;

/* Run `m` on one episode: write pred[i] in 0..way-1 for every query i. `scratch` is this
 * worker's arena; the method may allocate from it and leaves it as it found it (resets to
 * the mark it took). `rng` is the episode's generator (feature methods do not draw).
 * `stats` may be NULL. Returns 0 or a negative fsb_status with a message. */
typedef int (*fsb_method_run_fn)(const fsb_method *m, const fsb_method_config *cfg,
                                 const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng,
                                 int *pred, fsb_method_stats *stats);

/* Upper bound of the scratch bytes one run takes for an episode of that shape. */
typedef size_t (*fsb_method_scratch_fn)(int way, int shot, int query, int dim);

struct fsb_method {
    const char *name;              /* table key, e.g. "1nn" */
    const char *summary;           /* one line for help output */
    unsigned needs;                /* FSB_NEEDS_FEATURES and/or FSB_NEEDS_IMAGES, and
                                      FSB_TAKES_MODEL */
    fsb_norm default_norm;         /* norm used when the user does not choose one */
    fsb_method_run_fn run;         /* see fsb_method_run_fn */
    fsb_method_scratch_fn scratch; /* see fsb_method_scratch_fn */
    int variant;                   /* implementation constant (liblinear solver for svm/logreg) */
    double default_C;              /* C when the user does not choose one (svm/logreg: chosen
                                      on val episodes, results/tune/linear/); 0 = 1 */
};

/* The method named `name`, or NULL (then fsb_error_last() lists the known names). */
const fsb_method *fsb_method_find(const char *name);
/* Number of methods in the table, and the i-th (0 <= i < count), in table order. */
int fsb_method_count(void);
const fsb_method *fsb_method_at(int i);

/* Defaults for `m`: its default norm, C = 1, eps = 0.01 (liblinear's primal default),
 * bias = 1, no base mean, no extra. */
void fsb_method_config_default(fsb_method_config *cfg, const fsb_method *m);

/* Parse "un" | "l2n" | "cl2n" (FSB_EINVAL naming `flag` otherwise) and the reverse. */
int fsb_norm_parse(const char *flag, const char *text, fsb_norm *out);
const char *fsb_norm_name(fsb_norm n);

/* Check that `ep` carries what `m` needs and is consistent (way/shot/query > 0,
 * n_support = way*shot, n_query = way*query, labels in range and each class has `shot`
 * support examples; CL2N has a base mean of the right length). Returns 0 or FSB_EINVAL. */
int fsb_method_check(const fsb_method *m, const fsb_method_config *cfg, const fsb_episode_view *ep);

/* sum_j x_j^2 in double over 8 lanes combined in a fixed order (same bits on any thread). */
double fsb_sumsq(const float *x, int n);

/* Normalise n rows of dim floats from `in` into `out` (may alias) per `norm`; base_mean is
 * used for CL2N only. A zero row stays zero. Norms come from fsb_sumsq. */
void fsb_features_normalise(float *out, const float *in, int n, int dim, fsb_norm norm,
                            const float *base_mean);

/* The x, usable directly. */
int fsb_method_1nn_run(const fsb_method *m, const fsb_method_config *cfg,
                       const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                       fsb_method_stats *stats);
size_t fsb_method_1nn_scratch(int way, int shot, int query, int dim);
int fsb_method_protonet_run(const fsb_method *m, const fsb_method_config *cfg,
                            const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                            fsb_method_stats *stats);
size_t fsb_method_protonet_scratch(int way, int shot, int query, int dim);
/* feat: FEAT's test-time classifier on frozen features — the class prototypes (as protonet,
 * un-normalised by default) adapted as a set by the teacher's one-head self-attention block
 * in eval mode (attention.h), then the nearest adapted prototype. cfg->extra is a
 * const fsb_method_feat_block*, loaded by the runner from the slf_attn.* tensors of the
 * checkpoint whose features feat sees: its own model (--model feat=PATH) or else the teacher
 * (a checkpoint without them is refused). */
typedef struct fsb_method_feat_block {
    fsb_feat_attn_params params; /* the block's tensors */
    int dim;                     /* their dimension = the teacher's embedding dimension */
} fsb_method_feat_block;
int fsb_method_feat_run(const fsb_method *m, const fsb_method_config *cfg,
                        const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                        fsb_method_stats *stats);
size_t fsb_method_feat_scratch(int way, int shot, int query, int dim);

/* svm (L2R_L2LOSS_SVC, solver 2) and logreg (L2R_LR, solver 0): one-vs-rest liblinear on
 * normalised features, primal trust-region Newton (no rand()), decision values computed from
 * the weights; argmax with ties to the lowest class. */
int fsb_method_linear_run(const fsb_method *m, const fsb_method_config *cfg,
                          const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                          fsb_method_stats *stats);
size_t fsb_method_linear_scratch(int way, int shot, int query, int dim);

/* The per-episode students (include/fsb/student.h), rows of the table defined in
 * baselines/student_methods.c: finetune (variant FSB_STUDENT_FINETUNE) and refilled
 * (FSB_STUDENT_REFILLED). ep->ctx is the worker's fsb_student_ctx*, cfg->extra a const
 * fsb_student_opts*; the view's features, when their dimension is the teacher's, are passed on
 * as support_feat / query_feat. fit_ms = training (bank included), predict_ms = query
 * prediction. The scratch arena is not used (the ctx owns its buffers): the scratch function
 * returns 0. */
extern const fsb_method fsb_method_finetune;
extern const fsb_method fsb_method_refilled;
int fsb_method_student_run(const fsb_method *m, const fsb_method_config *cfg,
                           const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                           fsb_method_stats *stats);
size_t fsb_method_student_scratch(int way, int shot, int query, int dim);

/* maml: MAML's test-time adaptation of its own meta-learned checkpoint (bench run --model
 * maml=PATH, required), defined with its per-worker context in baselines/maml_method.c
 * (include/fsb/maml_method.h). ep->ctx is the worker's fsb_maml_ctx*. */
extern const fsb_method fsb_method_maml;

#endif
