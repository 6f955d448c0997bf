/* featloss.h - FEAT's episode loss (Ye, Hu, Zhan, Sha, CVPR 2020) with its euclidean
 * distance, and its exact gradient with respect to every embedding and every parameter of
 * the self-attention block (attention.h): the FEAT analogue of protoloss.h, for episodic
 * meta-training and for evaluation on frozen features.
 *
 * Checked against Sha-Lab/FEAT (commit fa66901) model/models/feat.py FEAT._forward with
 * use_euclidean, model/models/base.py and model/trainer/fsl_trainer.py:
 *   p_c   = (1/shot) sum_j s_{c,j}                       prototypes (support.mean over shots)
 *   P     = slf_attn(p)                                  ONE set of `way` prototypes (B = 1)
 *   z_ic  = -||q_i - P_c||^2 / T                         T = --temperature
 *   L_main = CE(z, y)                                    mean over the way*query queries
 * and in training only (model.train(); FEAT computes it whenever training, we only when
 * balance > 0, since it adds nothing otherwise; then only the prototypes' masks are drawn):
 *   X_c   = (s_{c,0..shot-1}, q_{c,0..query-1})         the auxiliary task: per class the
 *                                                       set of its shot+query embeddings,
 *                                                       support first, then queries
 *   C_c   = mean_j slf_attn(X)_{c,j}                     slf_attn on a batch of `way` sets
 *                                                       of n = shot+query (B = way), then
 *                                                       each set's mean: aux_center
 *   r_xc  = -||x - C_c||^2 / T2                          for EVERY x of every X (the
 *                                                       UNtransformed rows), T2 = --temperature2
 *   L_reg = CE(r, class of x)                            mean over the way*(shot+query) rows
 *   L     = L_main + balance * L_reg                     (fsl_trainer: loss + balance * CE)
 * In training slf_attn drops out its attention weights and fc's output (attention.h); the
 * prototypes' call draws its masks first, then the auxiliary task's.
 *
 * Layout. FEAT feeds an episode instance-major (CategoriesSampler: stack(per class).t()),
 * so its row j*way + c is shot j of class c, its row way*shot + j*way + c query j of class
 * c; query labels are arange(way).repeat(query) (row j*way + c has label c) and the
 * regulariser scores aux_task.permute(1,0,2) rows, i.e. row i*way + c = element i of X_c
 * with label_aux = arange(way).repeat(shot+query). fsbench's episodes are label-major
 * (protoloss.h): support row c*shot + j, query row way*shot + c*query + j. The map is a
 * permutation of rows with the same labels: FEAT row j*way + c <-> fsbench row c*shot + j
 * (support), way*shot + j*way + c <-> way*shot + c*query + j (queries). The losses are
 * means over rows and slf_attn is permutation-equivariant with no positional terms, so the
 * loss and the gradients (mapped back) are the same; only which dropout bit lands on which
 * element differs, and those masks are fsbench's own (fsb_rng), not torch's anyway.
 *
 * Means, distances, logits and softmaxes are computed in double from float inputs; the
 * prototypes, centres and the block's activations (attention.c) are stored in float.
 * Nothing allocates: the caller binds a workspace once per episode shape.
 */
#ifndef FSB_FEATLOSS_H
#define FSB_FEATLOSS_H

#include "fsb/arena.h"
#include "fsb/attention.h"
#include "fsb/rng.h"

/* FEAT's ConvNet recipes (README, train_fsl.py with --use_euclidean): 1-shot temperature 64,
 * temperature2 16, balance 1; 5-shot temperature 32, temperature2 64, balance 0.1. */
typedef struct fsb_featloss_cfg {
    double temperature;  /* T > 0: main logits -||q - P_c||^2 / T (FEAT --temperature) */
    double temperature2; /* T2 > 0: regulariser logits (FEAT --temperature2) */
    double balance;      /* >= 0, weight of L_reg (FEAT --balance); 0 = no regulariser */
    float attn_p;        /* train: dropout on the attention weights (FSB_FEAT_ATTN_DROPOUT) */
    float out_p;         /* train: dropout on fc's output (FSB_FEAT_OUT_DROPOUT) */
    int train;           /* != 0: dropout and the regulariser; 0: L_main only, no rng draw */
} fsb_featloss_cfg;

/* Named views into one caller-owned block of fsb_featloss_work_floats(...) floats, bound for
 * one episode shape. After fsb_featloss, proto_out and logits hold the adapted prototypes
 * and the main logits (for an evaluator that wants more than the count of correct ones). */
typedef struct fsb_featloss_work {
    int way, shot, query, dim;   /* the shapes the views were bound for */
    float *proto;                /* (way,dim) support means p_c: the block's input */
    float *proto_out;            /* (way,dim) P = slf_attn(p) */
    float *d_proto_out;          /* (way,dim) backward scratch: dL/dP */
    float *d_proto;              /* (way,dim) backward scratch: dL/dp */
    double *logits;              /* (way*query,way) z, queries in fsbench order */
    double *g;                   /* (way*query,way) dL/dz */
    float *aux;                  /* (way,shot+query,dim) the auxiliary sets X_c */
    float *aux_out;              /* (way,shot+query,dim) slf_attn(X) */
    float *d_aux_out;            /* (way,shot+query,dim) backward scratch: dL/dslf_attn(X) */
    float *d_aux;                /* (way,shot+query,dim) backward scratch: dL/dX */
    float *center;               /* (way,dim) C_c */
    float *d_center;             /* (way,dim) backward scratch: dL/dC */
    double *g_reg;               /* (way*(shot+query),way) logits r, then dL/dr */
    fsb_feat_attn_work attn;     /* the block on the prototypes, bound for (1,way,dim) */
    fsb_feat_attn_work attn_aux; /* the block on the auxiliary task, (way,shot+query,dim) */
} fsb_featloss_work;

/* Floats a workspace for (way, shot, query, dim) takes, both blocks' workspaces included. */
long fsb_featloss_work_floats(int way, int shot, int query, int dim);
/* Point w's views into mem (fsb_featloss_work_floats(...) floats, caller-owned, aligned
 * for double as malloc and fsb_arena_floats give it: the logits come first, in double). */
void fsb_featloss_work_bind(fsb_featloss_work *w, float *mem, int way, int shot, int query,
                            int dim);
/* Bind w to fresh memory from arena a. FSB_ENOMEM, with a message naming the shapes, when
 * the arena is too small. */
int fsb_featloss_work_alloc(fsb_featloss_work *w, fsb_arena *a, int way, int shot, int query,
                            int dim);

/* The loss L above (L_main alone when !cfg->train or cfg->balance == 0) for emb
 * (way*(shot+query), dim) in fsbench's layout, with the block's parameters p, returned.
 * demb (emb's shape, may be NULL) is OVERWRITTEN with dL/demb; every field of dparams (may
 * be NULL) ACCUMULATES += dL/dparam, like fsb_feat_attn_backward (the caller zeroes once per
 * step). *n_correct (may be NULL) receives the number of queries whose largest logit z_ic
 * (first on ties) is their own class; *loss_main (may be NULL) receives L_main. rng is used
 * only in train mode with a nonzero dropout rate (may be NULL otherwise); same inputs and rng
 * state -> same bits. w bound for (way, shot, query, dim). way, shot, query, dim >= 1,
 * temperatures > 0, balance >= 0, dropout rates in [0,1) (asserted). */
double fsb_featloss(const float *emb, int way, int shot, int query, int dim,
                    const fsb_feat_attn_params *p, const fsb_featloss_cfg *cfg, fsb_rng *rng,
                    float *demb, fsb_feat_attn_params *dparams, int *n_correct, double *loss_main,
                    fsb_featloss_work *w);

#endif
