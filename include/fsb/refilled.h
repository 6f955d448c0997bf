/* refilled.h - the two REFILLED losses (Ye, Lu, Zhan, CVPR 2020) as pure functions on
 * embedding / logit arrays: L2 normalisation, pairwise distances, triplet miners, the stage-1
 * triplet-relationship KL and the stage-2 NCM-classifier distillation, each with its gradient.
 *
 * Specification: docs/refilled.md; equation-by-equation map: docs/refilled-impl.md.
 * Conventions: rows are samples ([n][dim] row-major); labels are class ids in [0, n_class);
 * teacher-side inputs are const and never written; gradients are ACCUMULATED (+=) into caller
 * buffers; internal arithmetic is double (the engine's arrays are float); scratch comes from a
 * caller fsb_arena and is rolled back before return, so nothing here calls malloc.
 * Deterministic and single-threaded: the caller parallelises over episodes.
 */
#ifndef FSB_REFILLED_H
#define FSB_REFILLED_H

#include "fsb/arena.h"

#include <stddef.h>

/* Reference defaults (docs/refilled.md, *fixed*). */
#define FSB_REFILLED_TAU1 4.0f     /* stage-1 temperature */
#define FSB_REFILLED_W1 500.0f     /* stage-1 weight (reference: 1000 x mean over 2T entries) */
#define FSB_REFILLED_MARGIN 0.2f   /* semi-hard window 0 < d_an - d_ap < margin */
#define FSB_REFILLED_TAU2 2.0f     /* stage-2 temperature */
#define FSB_REFILLED_LAMBDA 100.0f /* stage-2 KL weight (reference HEAD) */

/* Norms below this are treated as zero by the normalisation guard (torch's F.normalize eps). */
#define FSB_REFILLED_NORM_EPS 1e-12

/* ---------------------------------------------------------------------------------------
 * L2 normalisation and distances
 * ------------------------------------------------------------------------------------- */

/* eh[i] = e[i] / ||e[i]||_2 and norms[i] = ||e[i]||_2 for n rows of `dim` floats.
 * Guard: a row with ||e|| < FSB_REFILLED_NORM_EPS gives eh = 0 and norms = 0 (so its
 * backward contributes nothing). e [n][dim] (float, const); eh [n][dim]; norms [n]. */
void fsb_refilled_l2norm(double *eh, double *norms, const float *e, int n, int dim);

/* Backward of fsb_refilled_l2norm: de[i] += (I - eh eh^T)/||e|| * deh[i]
 *   = (deh[i] - eh[i] <eh[i], deh[i]>) / norms[i];  rows with norms[i] == 0 get nothing.
 * de [n][dim] (float, accumulated); deh, eh [n][dim]; norms [n]. */
void fsb_refilled_l2norm_backward(float *de, const double *deh, const double *eh,
                                  const double *norms, int n, int dim);

/* dist[u][v] = ||eh[u] - eh[v]||_2 (NOT squared) for all u, v: symmetric, zero diagonal.
 * Computed from the differences by direct loops, O(n^2 dim), never through the Gram
 * matrix (see docs/refilled-impl.md: no cancellation near d -> 0). eh [n][dim]; dist [n][n]. */
void fsb_refilled_pairdist(double *dist, const double *eh, int n, int dim);

/* Backward of fsb_refilled_pairdist for a SYMMETRIC upstream gradient g (g[u][v] = g[v][u]
 * = dL/dd(u,v) counted once per unordered pair, diagonal ignored):
 *   deh[u] += sum_{v != u} g[u][v] (eh[u] - eh[v]) / d(u,v),
 * with the term skipped where d(u,v) < FSB_REFILLED_NORM_EPS (the d -> 0 guard: gradient 0).
 * deh [n][dim] (accumulated); g, dist [n][n]; eh [n][dim]. */
void fsb_refilled_pairdist_backward(double *deh, const double *g, const double *eh,
                                    const double *dist, int n, int dim);

/* ---------------------------------------------------------------------------------------
 * Triplet miners (on the STUDENT's current normalised embedding; the teacher never selects)
 * ------------------------------------------------------------------------------------- */

/* Which triplets stage 1 uses (`--miner`). */
typedef enum fsb_refilled_miner {
    FSB_MINER_SEMIHARD = 0, /* every valid (a,p,n) with 0 < d(a,n) - d(a,p) < margin (HEAD) */
    FSB_MINER_FACENET = 1   /* per ordered positive pair: closest n with d(a,n) > d(a,p), else
                               the farthest negative (June-2020 code) */
} fsb_refilled_miner;

/* One triplet: row indices into the batch. */
typedef struct fsb_triplet {
    int a; /* anchor */
    int p; /* positive: same label as a (and same group when groups are given), p != a */
    int n; /* negative: different label from a */
} fsb_triplet;

/* Labels and groups. labels[i] (required) is row i's class; groups (optional, NULL = none)
 * is row i's source-image id, for batches holding V augmented views of each image.
 *   positive pair (a,p): a != p, labels equal, and (groups == NULL or groups equal);
 *   negative n of a:     labels differ (groups play no part).
 * So without groups every same-class pair is positive (at K = 1 with V views the only
 * same-class rows ARE the views of the one image, so labels alone suffice); with groups only
 * views of the same image are positive and other same-class images are neither positive nor
 * negative. Rows sharing a group must share a label (else FSB_EINVAL). */

/* Upper bound on the number of triplets fsb_refilled_mine can produce for these labels /
 * groups: sum_a pos(a) * neg(a) for semihard, sum_a pos(a) over anchors with a negative for
 * facenet (pos/neg counted as above). Use it to size the `out` array. O(n^2). */
size_t fsb_refilled_triplet_bound(const int *labels, const int *groups, int n,
                                  fsb_refilled_miner miner);

/* Mine triplets from the distance matrix dist [n][n] of the student's normalised embedding
 * (fsb_refilled_pairdist). Writes *count triplets to out (capacity `cap`, caller-owned or
 * from an arena), ordered by a, then p, then n ascending. `margin` is used by semihard only
 * (ignored by facenet). facenet compares d, which orders like the reference's d^2 (monotone);
 * ties pick the lowest index; an anchor with no negative yields no triplet.
 * Labels are compared for equality only (any int). Returns FSB_OK; FSB_EINVAL if
 * margin <= 0 or is not finite (semihard), or a group holds two labels; FSB_ENOMEM if more than
 * `cap` triplets would be written (out then holds the first `cap`, *count = cap). */
int fsb_refilled_mine(fsb_triplet *out, size_t cap, size_t *count, const double *dist,
                      const int *labels, const int *groups, int n, fsb_refilled_miner miner,
                      float margin);

/* Like fsb_refilled_mine, with the output array taken from `arena` (sized by
 * fsb_refilled_triplet_bound); *out stays valid until the caller rolls the arena back. */
int fsb_refilled_mine_arena(fsb_triplet **out, size_t *count, fsb_arena *arena, const double *dist,
                            const int *labels, const int *groups, int n, fsb_refilled_miner miner,
                            float margin);

/* ---------------------------------------------------------------------------------------
 * Stage 1: triplet relationship matching
 *   z_M = (d_M(a,n) - d_M(a,p)) / tau1, P_M = sigmoid(z_M), M in {S, T}
 *   L1  = w1 * mean_t KL(Bernoulli(P_T) || Bernoulli(P_S))
 * ------------------------------------------------------------------------------------- */

/* Stage-1 options; fsb_refilled_stage1_defaults() gives the reference values. */
typedef struct fsb_refilled_stage1_opts {
    float tau1;               /* temperature, > 0 (4) */
    float w1;                 /* loss weight, >= 0 (500) */
    float margin;             /* semi-hard window upper bound, > 0 (0.2) */
    fsb_refilled_miner miner; /* FSB_MINER_SEMIHARD (default) or FSB_MINER_FACENET */
} fsb_refilled_stage1_opts;

/* What one stage-1 evaluation produced. */
typedef struct fsb_refilled_stage1_result {
    double loss;       /* L1 (0 when no triplet) */
    size_t n_triplets; /* T, the number of mined triplets */
    int stepped;       /* 1 when T > 0 (a gradient was added); 0 = "no step": skip the update */
    double mean_p_s;   /* mean_t P_S (diagnostic; 0 when T = 0) */
    double mean_p_t;   /* mean_t P_T (diagnostic; 0 when T = 0) */
} fsb_refilled_stage1_result;

void fsb_refilled_stage1_defaults(fsb_refilled_stage1_opts *o);

/* Arena bytes fsb_refilled_stage1 needs for these labels/groups and dimensions (includes
 * alignment slack). */
size_t fsb_refilled_stage1_scratch_bytes(const int *labels, const int *groups, int n, int dim_s,
                                         int dim_t, fsb_refilled_miner miner);

/* Stage-1 loss on one batch. e_s [n][dim_s]: the student's RAW (un-normalised) embeddings;
 * e_t [n][dim_t]: the teacher's raw embeddings of the same rows (dims may differ; const,
 * never written); labels [n], groups [n] or NULL (see above). Normalises both, mines on the
 * student's distances, and on success:
 *   - fills *res (loss, T, stepped, diagnostics);
 *   - when T > 0 ACCUMULATES dL1/de_s into de_s [n][dim_s] (through the distances and the
 *     normalisation); when T = 0 leaves de_s untouched, res->loss = 0, res->stepped = 0.
 * de_s may be NULL to evaluate the loss only. Scratch comes from `scratch` and is rolled back.
 * Returns FSB_OK; FSB_EINVAL on bad options / labels / groups or a non-finite embedding
 * value (message names the row); FSB_ENOMEM when the arena is too small. */
int fsb_refilled_stage1(fsb_refilled_stage1_result *res, float *de_s, const float *e_s,
                        const float *e_t, const int *labels, const int *groups, int n, int dim_s,
                        int dim_t, const fsb_refilled_stage1_opts *opt, fsb_arena *scratch);

/* The stage-1 core on a given triplet list (what fsb_refilled_stage1 calls after mining):
 * dist_s, dist_t [n][n] are the student / teacher distance matrices, trip [T] the triplets.
 * Returns L1 and, when T > 0 and g_dist != NULL, ACCUMULATES dL1/dd_S into the symmetric
 * pair-gradient g_dist [n][n] (both g[u][v] and g[v][u], ready for
 * fsb_refilled_pairdist_backward). T = 0 returns 0 and adds nothing. p_s_sum / p_t_sum
 * (may be NULL) receive sum_t P_S and sum_t P_T. */
double fsb_refilled_stage1_triplets(double *g_dist, double *p_s_sum, double *p_t_sum,
                                    const fsb_triplet *trip, size_t T, const double *dist_s,
                                    const double *dist_t, int n, float tau1, float w1);

/* ---------------------------------------------------------------------------------------
 * Stage 2: classifier distillation from the teacher's nearest-class-mean classifier
 *   c_k = mean_{y_i = k} phi_T(x_i), c^_k = c_k/||c_k||, t_k(x) = <phi_T(x), c^_k>
 *   L2  = mean_i CE(f(x_i), y_i) + lambda * mean_i KL(softmax_{C_B}(t/tau2) ||
 * softmax_{C_B}(f/tau2))
 * ------------------------------------------------------------------------------------- */

/* Teacher NCM centres. centres [n_class][dim] receives c^_k for every class with at least
 * one row (count[k] > 0) and zeros elsewhere; count [n_class] receives the rows per class.
 * phi_t [n][dim] is the teacher's raw (NOT normalised) embedding (const). A centre with
 * ||c_k|| < FSB_REFILLED_NORM_EPS stays 0. Call it once on a whole support set (reference
 * HEAD) or per batch (June-2020). Returns FSB_OK or FSB_EINVAL (label outside [0, n_class)). */
int fsb_refilled_ncm_centres(float *centres, int *count, const float *phi_t, const int *labels,
                             int n, int dim, int n_class);

/* Teacher NCM logits t[i][k] = <phi_t[i], centres[k]> for k with present[k] != 0, 0 for the
 * others (which stage 2 ignores). t [n][n_class]; phi_t [n][dim]; centres [n_class][dim];
 * present [n_class] (e.g. the count from fsb_refilled_ncm_centres, or batch presence). */
void fsb_refilled_ncm_logits(float *t, const float *phi_t, const float *centres, const int *present,
                             int n, int dim, int n_class);

/* Stage-2 options; fsb_refilled_stage2_defaults() gives the reference values. */
typedef struct fsb_refilled_stage2_opts {
    float tau2;           /* temperature, > 0 (2) */
    float lambda;         /* KL weight, >= 0 (100) */
    int ce_batch_classes; /* 0 (default, reference code): CE over ALL n_class head outputs;
                             1: CE over the classes present in the batch (C_B) only */
} fsb_refilled_stage2_opts;

/* What one stage-2 evaluation produced. */
typedef struct fsb_refilled_stage2_result {
    double loss;   /* L2 = ce + lambda * kl */
    double ce;     /* mean_i CE(f(x_i), y_i) */
    double kl;     /* mean_i KL(P_T || P_S), NOT multiplied by lambda */
    int n_present; /* |C_B|, the classes present in the batch */
} fsb_refilled_stage2_result;

void fsb_refilled_stage2_defaults(fsb_refilled_stage2_opts *o);

/* Arena bytes fsb_refilled_stage2 needs. */
size_t fsb_refilled_stage2_scratch_bytes(int n, int dim_t, int n_class);

/* Stage-2 loss on one batch. logits [n][n_class]: the student's head outputs f; phi_t
 * [n][dim_t]: the teacher's raw embeddings of the same rows (const); labels [n] in
 * [0, n_class); centres [n_class][dim_t]: precomputed c^_k (fsb_refilled_ncm_centres on the
 * whole support set) or NULL to build them from this batch. C_B = classes with a row in this
 * batch, always. Fills *res and, when dlogits != NULL, ACCUMULATES dL2/df into dlogits
 * [n][n_class]: (softmax(f) - onehot)/n over the CE classes, plus
 * (lambda/n)(P_S(k) - P_T(k))/tau2 for k in C_B, 0 outside. No tau2^2 factor.
 * Returns FSB_OK; FSB_EINVAL on bad options, labels or non-finite inputs; FSB_ENOMEM when
 * the arena is too small. n == 0 gives a zero result. */
int fsb_refilled_stage2(fsb_refilled_stage2_result *res, float *dlogits, const float *logits,
                        const float *phi_t, const float *centres, const int *labels, int n,
                        int dim_t, int n_class, const fsb_refilled_stage2_opts *opt,
                        fsb_arena *scratch);

/* The stage-2 core from teacher logits t [n][n_class] (only entries k in C_B are read) and a
 * C_B mask present [n_class] (nonzero = in C_B; every label must be present). Same result and
 * gradient as fsb_refilled_stage2, allocation-free. Returns FSB_OK or FSB_EINVAL. */
int fsb_refilled_stage2_from_logits(fsb_refilled_stage2_result *res, float *dlogits,
                                    const float *logits, const float *t, const int *present,
                                    const int *labels, int n, int n_class,
                                    const fsb_refilled_stage2_opts *opt);

#endif
