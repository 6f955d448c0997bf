/* pretrain.h - teacher pre-training on the base (train-split) classes, validated every k
 * epochs by 5-way nearest-prototype accuracy at the val shots (1 and 5 by default;
 * --val-shots) on fixed val-split episodes (the test split is never read), best checkpoint
 * kept by the mean over the val shots (maml: MAML's own adapted accuracy). Optimiser: SGD with
 * Nesterov momentum (default) or Adam / AdamW (optim.h). Training images get the train transform
 * (random resized crop, flip, colour jitter) or, with augment off, the val transform. Four
 * objectives: ce        cross-entropy over all train classes in batches of `batch` images (a linear
 * head); protonet  episodic meta-training (Snell et al. 2017, as FEAT fine-tunes its ProtoNet
 *             baseline): each step is one train_way-way train_shot-shot episode with
 *             train_query queries per class drawn from the train split (fsb_episode_sample,
 *             seed mix(seed, epoch), index = step), loss protoloss.h (squared Euclidean
 *             distance to the mean support embedding / temperature, cross-entropy over the
 *             queries), back-propagated through support and query embeddings. The model has no
 *             head (n_class 0); the checkpoint is a head-less model `bench` takes as --teacher.
 *   feat      FEAT meta-training (Ye et al. CVPR 2020, as Sha-Lab/FEAT trains its ConvNet from
 *             a CE initialisation): protonet's episodes (same draws), embeddings in train
 *             mode, loss featloss.h in train mode (prototypes -> FEAT's one-head
 *             self-attention -> -squared distance / temperature, plus the contrastive
 *             regulariser at temperature2 weighted by balance; dropouts 0.1 on the attention
 *             weights and 0.5 on the block's output), back-propagated through the backbone.
 *             The block (attention.h, initialised by fsb_feat_attn_init) is a second
 *             optimiser group at lr * lr_mul (FEAT's lr_mul 10), same weight decay.
 *             Validation classifies the val episodes with the block in eval mode on the
 *             backbone's raw embeddings (attention-adapted prototypes; val_norm unused). The
 *             checkpoint holds the backbone plus the block under FEAT's names
 *             ("slf_attn.w_qs.weight", ...; attention.h fsb_feat_attn_load reads it back);
 *             `bench --teacher` ignores the block and uses the embedding.
 *   maml      MAML (Finn et al. 2017; maml.h), from a fresh ConvNet-4 with `width` 32 filters
 *             per block (Finn's; the flattened last map feeds a train_way-way head) unless
 *             --arch or --init says otherwise. A meta-iteration draws meta_batch tasks, task k
 *             of iteration s in epoch e being protonet's episode with index s * meta_batch + k
 *             (same seed), images through the val transform (augment must be off); per task
 *             fsb_maml_meta_grad (inner_steps SGD steps at inner_lr on the support, the query
 *             loss at theta_k differentiated through them: second order by finite-difference
 *             Hessian-vector products at hvp_eps, or first_order); the mean over the tasks
 *             takes one optimiser step. An epoch is train_episodes meta-iterations. The log's
 *             loss and accuracy are those of the queries at theta_k. Validation: each val
 *             episode (val_way must equal train_way) adapts inner_steps_test steps from theta
 *             and classifies its queries (fsb_maml_adapt_predict); best mean over the val
 *             shots kept. The checkpoint is the whole network with its head plus maml.* meta
 *             (docs/formats.md); BN running statistics stay as initialised (MAML normalises
 *             with batch statistics). Cost per meta-iteration: meta_batch x (inner_steps
 *             support passes + one query pass, + 2 x inner_steps support passes for the second
 *             order) forward-backward passes; per validation n_val_shots x val_episodes x
 *             inner_steps_test support passes + a query forward. Defaults for maml (the CLI's;
 *             a library caller sets them itself): Adam, lr 0.001, weight decay 0, augment off;
 *             fsb_pretrain itself makes the schedule constant (when NULL) and the width 32.
 * Protonet defaults: FEAT's episode shape (5-way 1-shot, 15 queries, 100 episodes per epoch)
 * with Snell's temperature 1 and lr 0.001 (not tuned here). FEAT's ConvNet recipe
 * (docs/protocol.md) fine-tunes the pre-trained backbone with Adam, no weight decay, no
 * augmentation, temperature 64 (1-shot episodes) or 32 (5-shot), lr 1e-4 halved every 20
 * epochs, 200 epochs: --optimizer adam --weight-decay 0 --augment off --temperature 64
 * --lr 0.0001 --schedule step:20:0.5 --epochs 200 (its ResNet-12 recipe: SGD, lr 2e-4,
 * step 40 x 0.5). FEAT's own recipe (docs/protocol.md) adds --objective feat with
 * --lr-mul 10 and, for 1-shot episodes, --temperature2 16 --balance 1 (the defaults), for
 * 5-shot --temperature 32 --temperature2 64 --balance 0.1.
 * Either starts from `init` (a checkpoint: its backbone weights and BN statistics, its
 * architecture; a ce run gets a fresh head) or from a fresh initialisation.
 *
 * Files, for --out PATH: PATH (the best checkpoint: a model file `bench` takes as --teacher),
 * PATH.state (everything needed to resume: model, optimiser, epoch, best score, the log),
 * PATH.csv (per-epoch log: epoch, lr, loss, train_acc, val_<k>shot for each validated shot k,
 * seconds),
 * PATH.png (gnuplot curves; skipped with a note when gnuplot is absent). Each is written
 * atomically after every epoch. Rerunning the same command after a kill resumes from the
 * last state; the final checkpoint is bit-identical to an uninterrupted run's, because every
 * random draw of epoch e is a pure function of (seed, e, position) and the state holds all
 * else. The state records the run's settings (and the init checkpoint's XXH3-64) and refuses
 * to resume a different run (feat's state also holds the block and both groups' optimiser
 * state; maml's adds its settings, and its Adam state holds the whole network). Data-parallel
 * runs under mpirun (pretrain_dist.h) are ce only.
 * The settings added since the first format (optimizer, augment, val shots) enter the
 * identity only when they differ from the defaults, so earlier states still resume.
 */
#ifndef FSB_PRETRAIN_H
#define FSB_PRETRAIN_H

#include "fsb/model.h"

#include <stdint.h>
#include <stdio.h>

/* Most shots --val-shots may list. */
#define FSB_PRETRAIN_MAX_VAL_SHOTS 8

/* Training objective (see the top). */
typedef enum {
    FSB_PRETRAIN_CE = 0,       /* cross-entropy with a linear head */
    FSB_PRETRAIN_PROTONET = 1, /* ProtoNet episodes */
    FSB_PRETRAIN_FEAT = 2,     /* FEAT episodes: the backbone plus the attention block */
    FSB_PRETRAIN_MAML = 3      /* MAML episodes: the network with a train_way-way head */
} fsb_pretrain_objective;

typedef struct fsb_pretrain_opts {
    const char *data;      /* dataset root with train and val splits (required) */
    const char *out;       /* best checkpoint path (required) */
    const char *cache_dir; /* packed images (NULL: next to the data) */
    fsb_arch arch;         /* backbone (conv4; with init: the checkpoint's) */
    int arch_set;          /* 1: arch was given explicitly and must match init's */
    int width;             /* conv4: filters of every block (0: the arch's 64; maml without
                              --arch and --init: 32, Finn's; `--arch conv4-32` sets 32) */
    int objective;         /* fsb_pretrain_objective (FSB_PRETRAIN_CE) */
    const char *init;      /* checkpoint to start from (NULL: fresh initialisation) */
    int epochs;            /* epochs in all (100) */
    int batch;             /* ce: images per step (128); the last partial batch is dropped */
    double lr;             /* base learning rate; < 0 (default): 0.1 for ce, 0.001 for protonet
                              and feat */
    const char *schedule;  /* optim.h schedule spec; NULL: cosine over `epochs` (maml:
                              constant) */
    int optimizer;         /* fsb_opt_kind: SGD with Nesterov momentum (FSB_OPT_SGD), or Adam /
                              AdamW with torch's betas (0.9, 0.999) and eps 1e-8 (FEAT's
                              ConvNet recipes use Adam without weight decay) */
    double momentum;       /* SGD momentum (0.9), Nesterov */
    double weight_decay;   /* (5e-4), on every parameter like FEAT's SGD runs */
    int augment;           /* 1: the train transform (random resized crop, flip, jitter);
                              0: training images get the test transform (FEAT's default) */
    double crop_scale_lo;  /* augment: random resized crop area fraction, from (0.08) */
    double crop_scale_hi;  /*          to (1.0) */
    double jitter;         /* augment: colour jitter strength, brightness = contrast =
                              saturation (0.4; 0 for characters or grey data) */
    int flip;              /* augment: 1 = horizontal flips (1; 0 where mirror images are
                              other classes, e.g. characters) */
    uint64_t seed;         /* initialisation, order and augmentation (0) */
    int threads;           /* workers (0: one per core); results depend on it only through
                              nothing: the engine's reductions use fixed chunks */
    int train_way;         /* protonet, feat: classes per training episode (5) */
    int train_shot;        /* protonet, feat: support images per class (1) */
    int train_query;       /* protonet, feat: query images per class (15) */
    int train_episodes;    /* protonet, feat: episodes (= steps) per epoch (100) */
    double temperature;    /* protonet, feat: logits = -squared distance / temperature (1) */
    double temperature2;   /* feat: the regulariser's temperature (16: FEAT's 1-shot ConvNet
                              recipe; 64 for 5-shot) */
    double balance;        /* feat: weight of the regulariser, >= 0 (1: FEAT's 1-shot
                              ConvNet recipe; 0.1 for 5-shot) */
    double lr_mul;         /* feat: the attention block's lr = lr * lr_mul (FEAT's 10) */
    int meta_batch;        /* maml: tasks per meta-iteration, their meta-gradients averaged (4;
                              Finn: 4 for 1-shot, 2 for 5-shot) */
    int inner_steps;       /* maml: inner SGD steps in training (5) */
    int inner_steps_test;  /* maml: inner SGD steps at validation (10) */
    double inner_lr;       /* maml: inner SGD learning rate (0.01) */
    int first_order;       /* maml: 1 = first-order MAML (no Hessian-vector products) (0) */
    double hvp_eps;        /* maml: relative finite-difference step of the Hessian-vector
                              products (fsb_maml_opts_default's, 1e-2; maml.h) */
    int val_every;         /* validate every k epochs and at the last (1) */
    int val_episodes;      /* fixed val episodes per shot (500) */
    int val_shots[FSB_PRETRAIN_MAX_VAL_SHOTS]; /* shots validated; the checkpoint kept is the
                                                  best mean over them ({1, 5}) */
    int n_val_shots;                           /* (2) */
    int val_way;                               /* (5) */
    int val_query;                             /* (15) */
    uint64_t val_seed;                         /* seed of the val episodes (0) */
    int val_norm;          /* fsb_norm of the prototype classifier (FSB_NORM_L2N) */
    int image_size;        /* packed image side (0: --init's, else 84); recorded in the
                              checkpoint with resize and crop (model.h fsb_model_input) */
    int resize;            /* val transform: shorter side (0: --init's, else 92) */
    int crop;              /* crop side = network input (0: --init's, else 84) */
    int max_per_class;     /* use at most this many train images per class (0: all) */
    long kill_after_steps; /* fault injection for resume tests: SIGKILL self after this many
                              steps of this process (0: never) */
    FILE *progress;        /* progress bar (stderr; terminals only), or NULL */
    FILE *log;             /* one line per epoch (stdout), or NULL */
} fsb_pretrain_opts;

/* The defaults above; data/out NULL. */
void fsb_pretrain_opts_default(fsb_pretrain_opts *o);

/* Train (or resume) as described at the top. Errors name the flag or file: no train split,
 * a val split with fewer classes than val_way, train episodes that the train split cannot
 * supply (--train-way/--train-shot/--train-query), an unreadable init checkpoint or one of
 * another architecture (or width) than an explicit --arch, protonet, feat or maml under
 * mpirun, feat's --temperature2 (> 0), --balance or --lr-mul (>= 0) out of range, maml with
 * augment on, val_way != train_way, a res12 network, --meta-batch < 1, negative inner
 * steps or lr, --hvp-eps outside (0, 1) (second order), a diverged inner loop (a non-finite
 * loss, naming the task), a state file of
 * another run or corrupt, a write failure (the previous files survive intact). */
int fsb_pretrain(const fsb_pretrain_opts *o);

#endif
