/* pretrain_internal.h - the trainer shared by src/pretrain.c (the loop, state, log, ce,
 * protonet and feat) and src/pretrain_maml.c (MAML's epoch and validation); not a public
 * header. One trainer per fsb_pretrain call; pretrain.c owns and frees everything in it.
 */
#ifndef FSB_PRETRAIN_INTERNAL_H
#define FSB_PRETRAIN_INTERNAL_H

#include "fsb/attention.h"
#include "fsb/cache.h"
#include "fsb/episodes.h"
#include "fsb/maml.h"
#include "fsb/optim.h"
#include "fsb/pretrain.h"
#include "fsb/progress.h"
#include "fsb/threads.h"
#include "fsb/transform.h"

#include <stdint.h>

#define TAG_EPIS 0x45504953ull /* "EPIS": the key of the training episodes (pretrain.c) */

/* One line of the log. */
typedef struct log_row {
    int epoch;                              /* 1-based */
    double lr;                              /* learning rate of the epoch */
    double loss;                            /* mean training loss */
    double acc;                             /* training accuracy (augmented batches) */
    double val[FSB_PRETRAIN_MAX_VAL_SHOTS]; /* val accuracy per val shot (-1: not validated) */
    double seconds;                         /* wall seconds of the epoch incl. validation */
} log_row;

typedef struct trainer {
    const fsb_pretrain_opts *o; /* options */
    fsb_pool *pool;             /* workers */
    fsb_cache train, val;       /* packed splits */
    int *subset;                /* [n_sub] train images used */
    int n_sub;                  /* their count */
    fsb_sweep val_sweep;        /* fixed val episodes (the val shots) */
    fsb_model *model;           /* the network being trained */
    fsb_param_group groups[2];  /* the model's parameters; feat: the attention block's */
    int n_groups;               /* 1, feat 2 */
    float *momentum;            /* the model's momentum buffer (Adam: exp_avg) */
    float *second;              /* Adam: the model's exp_avg_sq */
    float *attn_mem;            /* feat: the block's parameters, gradients, momentum (exp_avg)
                                   and exp_avg_sq, fsb_feat_attn_n_params(dim) floats each */
    fsb_feat_attn_params attn;  /* feat: the block's parameters (views into attn_mem) */
    fsb_feat_attn_params dattn; /* feat: their gradients */
    fsb_optim sgd;              /* optimiser */
    fsb_lr_schedule sched;      /* learning-rate schedule */
    fsb_transform tf;           /* augmentation and val transform */
    char *identity;             /* settings that must match to resume */
    log_row *rows;              /* [epochs] */
    int epochs_done;            /* completed epochs */
    double best;                /* best validation score so far (-1: none) */
    int best_epoch;             /* its epoch (0: none) */
    char *state_path, *csv_path, *png_path, *gp_path; /* derived file names */
    uint64_t init_hash;  /* XXH3-64 of the init checkpoint file (0: none) */
    fsb_split ep_split;  /* protonet: the train split as the episode sampler sees it
                            (shallow copy, class_count capped by max_per_class) */
    int *ep_count;       /* protonet: [n_classes] its class counts (owned) */
    long init_subnormal; /* subnormal parameters at the start (treated as zero: threads.h) */
    fsb_maml_work maml;  /* maml: the meta-gradient's scratch */
    float *maml_grad;    /* maml: [2 * n_params] one task's meta-gradient, then their sum */
} trainer;

/* The n training images idx[] into images: the train transform (item b from stream
 * stream0 + b of aug_key), or the test transform when augmentation is off. */
int fsb_pretrain_train_images(trainer *t, float *images, const int *idx, int n, uint64_t aug_key,
                              uint64_t stream0);

/* The start of an episodic epoch e: the scheduled lr (into t->sgd and row), the epoch's
 * episode parameters (seed mix(mix(seed ^ TAG_EPIS) ^ e), the train way, shot and query), and
 * the progress bar over train_episodes steps counted in `unit`. */
void fsb_pretrain_episodic_begin(trainer *t, int e, const char *unit, log_row *row,
                                 fsb_episode_params *p, fsb_progress *bar);

/* maml (pretrain_maml.c): size the scratch for t->model (before any epoch). */
int fsb_pretrain_maml_setup(trainer *t);
/* One maml epoch: train_episodes meta-iterations of meta_batch tasks, one Adam step each;
 * *steps_this_process counts meta-iterations (kill_after_steps). Fills row's loss and acc. */
int fsb_pretrain_maml_epoch(trainer *t, int e, long *steps_this_process, log_row *row);
/* maml: mean query accuracy after inner_steps_test steps over the val sweep, per val shot. */
int fsb_pretrain_maml_validate(trainer *t, double *val);
/* maml: the checkpoint's maml.* meta of the checkpoint taken after `epoch` epochs: n keys
 * and values into keys/vals (room for FSB_PRETRAIN_MAML_META), texts in buf. */
#define FSB_PRETRAIN_MAML_META 8
int fsb_pretrain_maml_meta(const trainer *t, int epoch, const char **keys, const char **vals,
                           char buf[][32]);

#endif
