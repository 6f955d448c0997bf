/* model_internal.h - the fsb_model struct shared by src/model*.c (not a public header).
 *
 * A model is a list of conv units (see model.c's top comment) in execution order, a table
 * of state_dict tensors (offsets into params / stats / nbt), and buffers for max_batch
 * images. Parameters are addressed by offset, never by cached pointer, so that the head can
 * be reallocated.
 */
#ifndef FSB_MODEL_INTERNAL_H
#define FSB_MODEL_INTERNAL_H

#include "fsb/model.h"

#include <stdint.h>

#define FSB_MAX_UNITS 16

/* Hot elementwise loops: compiled for AVX-512, AVX2 and baseline x86-64 and picked at load
 * time. ISO C mode keeps -ffp-contract=off, so every variant computes the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FSB_HOT __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3")))
#else
#define FSB_HOT
#endif
#define FSB_MAX_TENSORS 128

/* Batches below this many images split each image's work over several tasks (model_run.c,
 * at `plan`); they use m->dyb. */
#define FSB_SMALL_BATCH 16

typedef enum {
    R_CONV_W, /* conv weight (OC,C,k,k) */
    R_CONV_B, /* conv bias (OC) */
    R_BN_W,   /* BN gamma */
    R_BN_B,   /* BN beta */
    R_RM,     /* running mean */
    R_RV,     /* running var */
    R_NBT,    /* num_batches_tracked */
    R_FC_W,   /* head weight (n_class, D) */
    R_FC_B    /* head bias */
} tensor_role;

typedef struct tentry {
    char name[80];        /* state_dict name */
    fsb_tensor_kind kind; /* parameter or buffer */
    tensor_role role;     /* what it is, for initialisation */
    int ndim;             /* 0..4 */
    int64_t dims[4];      /* shape */
    long numel;           /* elements */
    long off;             /* offset in params (PARAM), stats (RM/RV) or index in nbt */
    int block;            /* 0..3, 4 = head */
} tentry;

typedef struct unit {
    char conv_name[64];  /* state_dict prefix of the conv ("encoder.0.0") */
    char bn_name[64];    /* state_dict prefix of the BN ("encoder.0.1") */
    int block;           /* 0..3 */
    int cin, cout, k;    /* conv channels in/out, kernel size (3 or 1) */
    int h, w;            /* conv input = output spatial size */
    int ho, wo;          /* output size after the optional pool */
    int bias;            /* conv has a bias */
    int act;             /* apply the activation (slope below) after BN (+ residual) */
    float slope;         /* 0 = ReLU, 0.1 = LeakyReLU */
    int pool;            /* fused 2x2 max pool */
    int res;             /* unit whose out (a BN output) is added before act, or -1 */
    int src;             /* unit whose out is the input, or -1 = the block input */
    int drop;            /* 0 none, 1 dropout, 2 DropBlock on out */
    float rate;          /* its rate */
    long w_off, b_off;   /* conv weight / bias offsets in params (b_off -1: none) */
    long g_off, be_off;  /* BN gamma / beta offsets in params */
    long rm_off, rv_off; /* running mean / var offsets in stats */
    int nbt;             /* index of num_batches_tracked */
    long step;           /* train-mode forwards so far (DropBlock warm-up) */
    float *y;            /* (B,cout,h,w) conv output saved for backward */
    float *out;          /* (B,cout,ho,wo) unit output */
    float *dout;         /* (B,cout,ho,wo) gradient w.r.t. out */
    uint8_t *arg;        /* (B,cout,ho,wo) pool winner in its window, if pool */
    float *mask;         /* (B,cout,ho,wo) dropout mask, if drop */
    float *mean, *rstd;  /* (cout) statistics used by the last forward */
    float *ea, *esh;     /* (cout) z = y * ea + esh folded BN of the last forward */
    double *ps;          /* (B, 2*cout) per-image partial sums */
    int train;           /* mode of the last forward */
    double t_fwd, t_bwd; /* profile seconds */
} unit;

struct fsb_model {
    fsb_model_opts o;             /* options (validated) */
    int n_class;                  /* head outputs (0 = none) */
    int max_batch;                /* buffers hold this many images */
    int D;                        /* embedding dimension */
    fsb_pool *pool;               /* borrowed */
    int nworkers;                 /* fsb_pool_size(pool) */
    int nunits;                   /* units in execution order */
    unit u[FSB_MAX_UNITS];        /* the units */
    int block_first[4];           /* first unit of each block */
    int block_last[4];            /* unit whose out is the block output */
    int stage_c[5], stage_hw[5];  /* shape of each stage's input */
    long block_off[4];            /* offset of each block's first parameter */
    int ntens, ntens_backbone;    /* state_dict entries (all / without head) */
    tentry tens[FSB_MAX_TENSORS]; /* the table */
    long nparams, head_off;       /* parameter floats; offset of fc.weight */
    float *params, *grads;        /* one allocation each */
    long nstats;                  /* running mean/var floats */
    float *stats;                 /* running statistics */
    int nbn;                      /* BN layers */
    int64_t *nbt;                 /* num_batches_tracked per BN */
    int first_trainable;          /* 0, 3 or 4 (set_adapt) */
    float **col;                  /* per worker: im2col + dcol scratch */
    float **dz;                   /* per worker: one image's (cout,h,w) gradient plane */
    float *partial;               /* grad_splits x largest conv weight */
    float *dyb;                   /* min(max_batch, FSB_SMALL_BATCH - 1) images' (cout,h,w) dy;
                                     with oneDNN max_batch images' of its units */
    float *wflip;                 /* largest conv weight: the flipped kernel for dx */
    long colmax;                  /* floats of one im2col matrix (per worker) */
    int direct_conv;              /* 1: 3x3 units with cin <= 4 use the AVX-512 direct conv */
    struct fsb_dnnl **dnn;        /* opts.conv ONEDNN: per worker oneDNN cache, else NULL */
    float *wdf, *wdb;             /* oneDNN: the unit's weights in the forward's / the
                                     backward-data's blocked layout (largest unit) */
    int small_batch;              /* batches below this split each image's work
                                     (FSB_SMALL_BATCH, 0 with opts.per_image) */
    int cmax;                     /* widest unit */
    float *cvec;                  /* 3 x cmax per-channel backward constants */
    float *input;                 /* copy of the last forward's input (B, stage size) */
    float *emb, *demb;            /* (B,D) embedding and its gradient */
    int32_t *emb_arg;             /* (B,D) global max pool winners */
    float *logits, *dlog;         /* (B,n_class) */
    int n;                        /* images in the last forward */
    int start;                    /* stage the last forward started at */
    double t_head_f, t_head_b;    /* profile seconds of pool + head */
};

/* Whether unit u's convolution runs on oneDNN (opts.conv ONEDNN: 3x3 on >= 16 channels). */
static inline int fsb_unit_dnnl(const fsb_model *m, const unit *u)
{
    return m->dnn && u->k == 3 && u->cin >= 16;
}

/* The tensor table and layout of a model with these options and head (build_units) and
 * nothing else: no buffer is allocated, only m->o, the units and m->tens may be read, and
 * free() releases it. NULL on OOM. For checking a checkpoint before creating its model. */
fsb_model *fsb_model_layout_only(const fsb_model_opts *opts, int n_class);

#endif
