/* maml.h - the meta-gradient of MAML (Finn, Abbeel, Levine 2017) on an fsb_model, and MAML's
 * adapt-then-predict for evaluation. The episodic training loop and the evaluation method
 * are built on these two calls.
 *
 * With theta the model's trainable parameters (the suffix of fsb_model_params from
 * fsb_model_trainable_offset), L_s the mean cross-entropy of the support set and L_q that
 * of the queries, both with BN in train mode (batch statistics of the batch in hand):
 *   theta_0 = theta,  theta_{t+1} = theta_t - alpha g_t,  g_t = grad L_s(theta_t)   (k steps)
 *   meta-gradient  G = d L_q(theta_k) / d theta = prod_{t=k-1..0} (I - alpha H_t) g_out
 * with g_out = grad L_q(theta_k) and H_t the Hessian of L_s at theta_t (Finn et al., eq. 1
 * differentiated through the k updates). G is computed backwards from the kept theta_t
 * (k copies of the parameter vector), v_k = g_out,
 * v_t = v_{t+1} - alpha H_t v_{t+1}, G = v_0, each Hessian-vector product by central
 * differences of gradients:
 *   H v ~ (g(theta_t + r v) - g(theta_t - r v)) / (2 r),
 *   r = hvp_eps * (1 + ||theta_t||) / ||v||      (L2 norms over the trainable parameters)
 * so the perturbation r v has norm hvp_eps * (1 + ||theta_t||): a fixed relative change of
 * the parameter vector whatever the size of v (the scaling of Nocedal & Wright, Numerical
 * Optimization, sec. 8.1, for central differences). The network is only piecewise smooth
 * (ReLU, max-pool winners): where the perturbation flips a unit, the gradient jumps and the
 * quotient is no Hessian. Two regimes, measured by tests/test_maml.c and tools/maml_hvp:
 * - a tiny network (widths 4, 16x16, 6 images) has few kinks: the quotient is flat over a
 *   decade or two of hvp_eps somewhere in [3e-7, 1e-4] (float32 round-off below, kinks
 *   above) and is the exact Hessian there; the tests use 5e-6 and skip the tasks where an
 *   HVP crossed a kink.
 * - ConvNet-4 with 32 filters at 84x84 (5 or 25 support images) has millions of units, some
 *   of which flip at any usable step: no plateau, |H v| grows like hvp_eps^-1/2 as the step
 *   shrinks, and the quotient is a Hessian smoothed over the step. With the default 1e-2
 *   (perturbation ~0.14 for ||theta|| ~ 13: about the size of one Adam meta-step of 1e-3
 *   per parameter) G.d matched central differences of the whole unrolled loss along
 *   d = unit(G - G_fo), at steps 1e-4 .. 3e-3 relative, within 12% (5-way 1-shot k=5,
 *   5-shot k=1 and k=5), where first-order MAML had the wrong sign; 3e-3 was off by up to
 *   2x depending on the reference's step, 1e-3 by 3x, 1e-4 by 10-100x.
 * First-order MAML (H = 0) gives G = g_out. Cost per meta-gradient: k support gradients and
 * one query gradient, plus 2k support gradients for the second order.
 *
 * Model state: the inner loop writes theta_t into the model's parameters and runs
 * train-mode forwards, which update the BN running statistics and num_batches_tracked. Both
 * calls save those and put everything back before returning (success or error): the
 * parameters bit for bit equal theta, the running statistics and counters as on entry. The
 * gradient array, the saved activations and the private DropBlock warm-up counters (unused
 * without DropBlock) are not restored. Running statistics are never
 * used by MAML itself (every BN normalises with the batch in hand, as the original), except
 * in blocks frozen by fsb_model_set_adapt, which run in eval mode and are not adapted (their
 * meta-gradient entries are 0). A model with dropout or DropBlock is refused (MAML here has
 * none; a random mask would also break the finite differences). Same inputs -> same bits,
 * whatever the thread count of the model's pool (see model.h).
 */
#ifndef FSB_MAML_H
#define FSB_MAML_H

#include "fsb/model.h"

#include <stddef.h>
#include <stdint.h>

typedef struct fsb_maml_opts {
    int inner_steps; /* k: SGD steps on the support set (MAML: 5 in training, 10 at test) */
    float inner_lr;  /* alpha, the inner SGD learning rate (MAML: 0.01) */
    int first_order; /* 1: first-order MAML, G = g_out (no Hessian-vector products) */
    double hvp_eps;  /* relative step of the finite-difference Hessian-vector products (see
                        the top comment; default 1e-2; in (0, 1) unless first_order) */
} fsb_maml_opts;

/* MAML's training settings: 5 steps, alpha 0.01, second order, hvp_eps 1e-2. */
void fsb_maml_opts_default(fsb_maml_opts *o);

/* Scratch of both calls, sized for one model and at most max_steps inner steps; no call
 * allocates. One allocation, owned by the struct. */
typedef struct fsb_maml_work {
    long n_params;   /* the model's parameter floats when sized */
    long n_stats;    /* its BN running mean + var floats */
    int n_bn;        /* its num_batches_tracked counters */
    int max_steps;   /* largest inner_steps the work holds theta_t for */
    float *theta;    /* (max(max_steps,1), n_params) theta_0 .. theta_{k-1} */
    float *g;        /* (n_params) the gradient at theta_t + r v */
    float *stats;    /* (n_stats) saved running statistics, in tensor order */
    int64_t *counts; /* (n_bn) saved num_batches_tracked, in tensor order */
    void *mem;       /* the one allocation */
} fsb_maml_work;

/* Bytes fsb_maml_work_init allocates for model m and up to max_steps inner steps:
 * (max(max_steps,1) + 1) * n_params floats + the BN running statistics and counters. */
size_t fsb_maml_work_bytes(const fsb_model *m, int max_steps);
/* Size w for m (its current head) and inner_steps <= max_steps (>= 0). FSB_EINVAL on a
 * negative max_steps, FSB_ENOMEM. */
int fsb_maml_work_init(fsb_maml_work *w, const fsb_model *m, int max_steps);
/* Release w's memory; a zeroed or freed work is a no-op. */
void fsb_maml_work_free(fsb_maml_work *w);

/* The MAML meta-gradient for one task. support_x (n_support,3,hw,hw) with labels support_y,
 * query_x (n_query,3,hw,hw) with labels query_y, labels in [0, n_class) of m's head, both
 * counts in [1, max_batch]. meta_grad (n_params floats, the layout of fsb_model_grads, not
 * that array itself) is OVERWRITTEN with G above on the trainable parameters and 0 on
 * frozen ones (a meta-batch sums these). *query_loss (may be NULL) gets L_q(theta_k),
 * *query_correct (may be NULL) the number of queries whose largest logit at theta_k (first
 * on ties) is their label. On return m's parameters, running statistics and counters are as
 * on entry (see the top comment). Errors: FSB_EINVAL (bad counts, labels, options,
 * inner_steps > w->max_steps, a model without head or with dropout), FSB_EMISMATCH (w sized
 * for another model or head), FSB_EINVAL naming the step when a loss is not finite (the
 * inner loop diverged). */
int fsb_maml_meta_grad(fsb_model *m, const float *support_x, const int *support_y, int n_support,
                       const float *query_x, const int *query_y, int n_query,
                       const fsb_maml_opts *o, float *meta_grad, double *query_loss,
                       int *query_correct, fsb_maml_work *w);

/* MAML's prediction: o->inner_steps SGD steps on the support set from theta (first_order and
 * hvp_eps unused), then one train-mode forward of all n_query queries together (BN with the
 * queries' batch statistics, as the original: predictions depend on the whole query batch).
 * logits (n_query, n_class) and pred (n_query, the largest logit, first on ties) receive the
 * result; either may be NULL. m is restored as in fsb_maml_meta_grad; same errors. */
int fsb_maml_adapt_predict(fsb_model *m, const float *support_x, const int *support_y,
                           int n_support, const float *query_x, int n_query, const fsb_maml_opts *o,
                           float *logits, int *pred, fsb_maml_work *w);

#endif
