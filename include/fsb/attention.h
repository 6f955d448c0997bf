/* attention.h - FEAT's set-to-set self-attention block and the ops it is made of: batched
 * matrix products, LayerNorm over the last dimension, row softmax. Forward/backward pairs on
 * raw float arrays in the style of layers.h: outputs first, shapes in comments, backward
 * ACCUMULATES (+=) into gradients the caller zeroes once per step, nothing allocates.
 *
 * The block (Ye, Hu, Zhan, Sha, "Few-Shot Learning via Embedding Adaptation with Set-to-Set
 * Functions", CVPR 2020), checked against Sha-Lab/FEAT model/models/feat.py (commit fa66901):
 * FEAT builds MultiHeadAttention(n_head=1, d_model=d, d_k=d, d_v=d, dropout=0.5) (d = 64 for
 * ConvNet, 640 for ResNet-12/WRN, 512 for ResNet-18) and calls it as self-attention,
 * slf_attn(X, X, X), on the (B, way, d) prototypes and, in training, on the auxiliary task
 * (way sets of shot+query embeddings). For one head the head split/merge is the identity and
 *   q = X Wq^T, k = X Wk^T, v = X Wv^T          w_qs/w_ks/w_vs: Linear(d, d, bias=False)
 *   A = dropout_0.1(softmax(q k^T / sqrt(d)))     temperature = d_k^0.5; softmax over keys;
 *                                                 ScaledDotProductAttention's attn_dropout
 *                                                 default 0.1, never overridden; dropout
 *                                                 acts AFTER the softmax (rows no longer sum
 *                                                 to 1); its log_softmax output is unused
 *   Y = LayerNorm(dropout_p(fc(A v)) + X)         fc: Linear(d, d) WITH bias; p = 0.5 in FEAT
 *                                                 (the class default is 0.1); post-norm:
 *                                                 LayerNorm(d), eps 1e-5, affine, applied to
 *                                                 the residual sum (residual = the query X)
 * Initialisation: w_qs, w_ks ~ N(0, sqrt(2/(d_model+d_k))), w_vs ~ N(0, sqrt(2/(d_model+d_v)))
 * (all sqrt(1/d) here); fc.weight xavier_normal_ (gain 1: also sqrt(1/d)); fc.bias keeps
 * torch's Linear default U(-1/sqrt(d), 1/sqrt(d)); LayerNorm weight 1, bias 0.
 * Dropout masks come from an explicit fsb_rng (not torch's bits); eval mode draws nothing.
 */
#ifndef FSB_ATTENTION_H
#define FSB_ATTENTION_H

#include "fsb/arena.h"
#include "fsb/rng.h"
#include "fsb/tensorfile.h"

#define FSB_LN_EPS 1e-5f                 /* torch.nn.LayerNorm's default eps */
#define FSB_FEAT_ATTN_DROPOUT 0.1f       /* FEAT: dropout on the attention weights */
#define FSB_FEAT_OUT_DROPOUT 0.5f        /* FEAT: dropout on fc's output (FEAT passes 0.5) */
#define FSB_FEAT_ATTN_PREFIX "slf_attn." /* the block's tensors in FEAT's state_dict */

/* ---- batched matrix products (one fsb_sgemm per batch item) --------------------------------- */

/* out (B,M,N) = alpha * op(a) @ op(b) for each of the B items, where op(a) (M,K) is a
 * (B,M,K) as stored, or a (B,K,M) transposed when trans_a; op(b) (K,N) is b (B,K,N), or
 * b (B,N,K) transposed when trans_b. Every item is contiguous (no padding). */
void fsb_bmm_forward(float *out, const float *a, const float *b, int trans_a, int trans_b,
                     float alpha, int B, int M, int K, int N);
/* Accumulates da (a's shape) += dL/da and db (b's shape) += dL/db given dout (B,M,N) and the
 * forward's inputs; either gradient may be NULL. */
void fsb_bmm_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                      int trans_a, int trans_b, float alpha, int B, int M, int K, int N);
/* Naive triple-loop references of the two functions above, summing in double (tests). */
void fsb_bmm_forward_ref(float *out, const float *a, const float *b, int trans_a, int trans_b,
                         float alpha, int B, int M, int K, int N);
void fsb_bmm_backward_ref(float *da, float *db, const float *dout, const float *a, const float *b,
                          int trans_a, int trans_b, float alpha, int B, int M, int K, int N);

/* ---- LayerNorm over the last dimension (torch.nn.LayerNorm(C) semantics) -------------------- */

/* out (N,C) = (inp - mu) * rstd * weight + bias per row, mu = the row mean, rstd =
 * 1/sqrt(var + FSB_LN_EPS) with the BIASED variance (divide by C); both are saved, mean (N)
 * and rstd (N), for backward. Row statistics are summed in double, variance in two passes. */
void fsb_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C);
/* Accumulates dinp (N,C), dweight (C), dbias (C) (any may be NULL) from dout (N,C) with the
 * saved mean/rstd: with xh = (inp - mu) * rstd and g = dout * weight,
 * dinp += rstd * (g - mean_row(g) - xh * mean_row(g * xh)). */
void fsb_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *mean, const float *rstd,
                            const float *weight, int N, int C);

/* ---- softmax over rows ---------------------------------------------------------------------- */

/* out (N,C) = softmax of each row of inp (N,C), computed as exp(x - max) / sum (stable:
 * any finite input, the sum in double). out may be inp (in place). */
void fsb_softmax_rows_forward(float *out, const float *inp, int N, int C);
/* dinp (N,C) += out * (dout - sum_row(dout * out)), out = the forward's result. dinp must
 * not alias dout. */
void fsb_softmax_rows_backward(float *dinp, const float *dout, const float *out, int N, int C);

/* ---- FEAT self-attention block -------------------------------------------------------------- */

/* Named views into one allocation of fsb_feat_attn_n_params(d) floats, in the order of
 * FEAT's state_dict (the parameters of the module FEAT calls `slf_attn`). The same struct
 * describes the gradients. */
typedef struct fsb_feat_attn_params {
    float *wq;   /* (d,d) w_qs.weight: q = x wq^T */
    float *wk;   /* (d,d) w_ks.weight */
    float *wv;   /* (d,d) w_vs.weight */
    float *ln_w; /* (d) layer_norm.weight */
    float *ln_b; /* (d) layer_norm.bias */
    float *fc_w; /* (d,d) fc.weight (out, in) */
    float *fc_b; /* (d) fc.bias */
} fsb_feat_attn_params;

/* Floats the block's parameters take: 4 d^2 + 3 d. */
long fsb_feat_attn_n_params(int d);
/* Point p's fields into mem (fsb_feat_attn_n_params(d) floats, caller-owned). */
void fsb_feat_attn_bind(fsb_feat_attn_params *p, float *mem, int d);
/* FEAT's initialisation (see the top of this file), drawn from rng in the order wq, wk, wv
 * (normal, row-major), fc_w (normal), fc_b (uniform); ln_w = 1, ln_b = 0. */
void fsb_feat_attn_init(fsb_feat_attn_params *p, int d, fsb_rng *rng);
/* Tensor i (0..6) of the block in state_dict order: returns its FEAT name without the
 * module prefix ("w_qs.weight", ..., "fc.bias"; FEAT checkpoints store "slf_attn.<name>")
 * and sets *data and *numel; returns NULL (outputs untouched) when i is out of range. */
const char *fsb_feat_attn_tensor(float **data, long *numel, const fsb_feat_attn_params *p, int d,
                                 int i);

/* Add the block's seven tensors to tf as "<prefix><name>" (names as fsb_feat_attn_tensor,
 * shapes as FEAT's: (d,d) matrices, (d) vectors; prefix FSB_FEAT_ATTN_PREFIX for a
 * checkpoint FEAT's code would read), copied. Errors as fsb_tensorfile_add's (a duplicate). */
int fsb_feat_attn_to_tensorfile(fsb_tensorfile *tf, const fsb_feat_attn_params *p, int d,
                                const char *prefix);
/* Copy the block's seven tensors "<prefix><name>" of tf into p (bound for d). A missing
 * tensor, or one of another dtype or size than d gives, is FSB_EMISMATCH naming `what` (the
 * file) and the tensor; everything is checked before anything is copied. */
int fsb_feat_attn_from_tensorfile(fsb_feat_attn_params *p, int d, const fsb_tensorfile *tf,
                                  const char *what, const char *prefix);
/* Read the block of a FEAT checkpoint (`bench pretrain --objective feat` writes its
 * "slf_attn.*" tensors beside the backbone's): bind p to mem (fsb_feat_attn_n_params(d)
 * floats, caller-owned) and fill it from path's FSB_FEAT_ATTN_PREFIX tensors. d is the
 * backbone's embedding dimension. Errors name the file: unreadable or corrupt (tensorfile.h),
 * no FEAT block (a plain backbone checkpoint), a block of another dimension than d. */
int fsb_feat_attn_load(const char *path, fsb_feat_attn_params *p, float *mem, int d);

/* Activations the forward saves for backward, plus backward's scratch: named views into one
 * caller-owned block of fsb_feat_attn_work_floats(B, n, d) floats, bound for fixed shapes.
 * Rebinding the same memory for other shapes of no larger size is free. */
typedef struct fsb_feat_attn_work {
    int B, n, d;      /* the shapes the views were bound for */
    float *q, *k, *v; /* (B,n,d) projections of the input */
    float *attn;      /* (B,n,n) softmax(q k^T / sqrt(d)), before dropout */
    float *attn_mask; /* (B,n,n) attention dropout mask, 0 or 1/(1-p) */
    float *attn_drop; /* (B,n,n) attn * attn_mask (used only when attn_dropped) */
    float *ctx;       /* (B,n,d) attention output A v */
    float *out_mask;  /* (B,n,d) output dropout mask */
    float *res;       /* (B,n,d) dropout(fc(ctx)) + inp: the LayerNorm input */
    float *ln_mean;   /* (B*n) LayerNorm row means */
    float *ln_rstd;   /* (B*n) LayerNorm row 1/std */
    float *d_res;     /* (B,n,d) backward scratch: dL/dres */
    float *d_ctx;     /* (B,n,d) backward scratch: dL/dctx */
    float *d_q, *d_k; /* (B,n,d) backward scratch: dL/dq, dL/dk */
    float *d_v;       /* (B,n,d) backward scratch: dL/dv */
    float *d_attn;    /* (B,n,n) backward scratch: dL/dA (after dropout) */
    float *d_scores;  /* (B,n,n) backward scratch: dL/d(q k^T / sqrt(d)) */
    int attn_dropped; /* set by forward: attention dropout was applied */
    int out_dropped;  /* set by forward: output dropout was applied */
} fsb_feat_attn_work;

/* Floats a workspace for (B,n,d) needs: 11 Bnd + 5 Bnn + 2 Bn. */
long fsb_feat_attn_work_floats(int B, int n, int d);
/* Point w's views into mem (fsb_feat_attn_work_floats(B, n, d) floats, caller-owned). */
void fsb_feat_attn_work_bind(fsb_feat_attn_work *w, float *mem, int B, int n, int d);
/* Bind w to fresh memory from arena a (gone at the arena's next reset). FSB_ENOMEM, with
 * the arena's message, when the arena is too small. */
int fsb_feat_attn_work_alloc(fsb_feat_attn_work *w, fsb_arena *a, int B, int n, int d);

/* out (B,n,d) = the block applied to each of the B sets inp (B,n,d) of n vectors (FEAT:
 * prototypes, one set per episode), with w bound for (B,n,d). train != 0 applies dropout
 * with probability attn_p to the attention weights and out_p to fc's output (FEAT:
 * FSB_FEAT_ATTN_DROPOUT, FSB_FEAT_OUT_DROPOUT; each in [0,1), 0 = none, drawing nothing);
 * masks are drawn from rng as fsb_dropout_forward does, attention mask (B,n,n) first, then
 * the output mask (B,n,d). train == 0 draws nothing and rng may be NULL. Same inputs, same
 * rng state -> same bits. out must not alias inp. */
void fsb_feat_attn_forward(float *out, fsb_feat_attn_work *w, const float *inp,
                           const fsb_feat_attn_params *p, float attn_p, float out_p, int train,
                           fsb_rng *rng, int B, int n, int d);
/* Accumulates dinp (B,n,d) += dL/dinp and every field of grads += dL/dparam, given dout
 * (B,n,d) and the forward's inp, p and w (its saved activations and masks); dinp or grads
 * may be NULL. Uses w's scratch views. */
void fsb_feat_attn_backward(float *dinp, fsb_feat_attn_params *grads, fsb_feat_attn_work *w,
                            const float *dout, const float *inp, const fsb_feat_attn_params *p,
                            int B, int n, int d);

#endif
