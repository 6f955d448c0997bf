/* test_refilled.c - the REFILLED losses: hand-computed golden values, finite-difference
 * gradient checks (double central differences on the float-input functions, with inputs on
 * a 1/64 grid and h = 2^-10 so that e +- h is exact in float), miner selections listed by
 * hand, the no-triplet / d -> 0 / zero-norm guards, const teacher inputs and error paths.
 */
#include "fsb/arena.h"
#include "fsb/refilled.h"
#include "fsb/rng.h"
#include "fsb/status.h"

#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FD_H (1.0 / 1024.0)

static fsb_arena arena; /* per-test scratch (Check forks per test) */

static void setup(void)
{
    ck_assert_int_eq(fsb_arena_init(&arena, 64u << 20), FSB_OK);
}

static void teardown(void)
{
    fsb_arena_free(&arena);
}

/* Fill x[count] with values k/64, k uniform in [-128, 128] (exact in float, so x +- 2^-10
 * is exact too). */
static void grid_fill(float *x, size_t count, fsb_rng *r)
{
    for (size_t i = 0; i < count; i++)
        x[i] = ((float)fsb_rng_below(r, 257) - 128.0f) / 64.0f;
}

/* Mine on the student's raw embedding the way fsb_refilled_stage1 does; returns a hash of
 * the triplet list (to assert the set stays fixed during finite differences). */
static uint64_t triplet_hash(const float *e, const int *labels, const int *groups, int n, int dim,
                             const fsb_refilled_stage1_opts *o, size_t *count)
{
    size_t mark = fsb_arena_mark(&arena);
    double *eh = malloc(sizeof *eh * n * dim), *nrm = malloc(sizeof *nrm * n),
           *d = malloc(sizeof *d * n * n);
    fsb_refilled_l2norm(eh, nrm, e, n, dim);
    fsb_refilled_pairdist(d, eh, n, dim);
    fsb_triplet *t;
    ck_assert_int_eq(
        fsb_refilled_mine_arena(&t, count, &arena, d, labels, groups, n, o->miner, o->margin),
        FSB_OK);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < *count; i++) {
        int v[3] = {t[i].a, t[i].p, t[i].n};
        for (int j = 0; j < 3; j++)
            h = (h ^ (uint64_t)(unsigned)v[j]) * 1099511628211ull;
    }
    fsb_arena_reset_to(&arena, mark);
    free(eh);
    free(nrm);
    free(d);
    return h;
}

static double stage1_loss(const float *es, const float *et, const int *labels, const int *groups,
                          int n, int ds, int dt, const fsb_refilled_stage1_opts *o)
{
    fsb_refilled_stage1_result r;
    ck_assert_int_eq(fsb_refilled_stage1(&r, NULL, es, et, labels, groups, n, ds, dt, o, &arena),
                     FSB_OK);
    return r.loss;
}

/* ---------------------------------------------------------------------------------------- */

START_TEST(l2norm_and_distance_by_hand)
{
    /* e = (3,4): ||e|| = 5, e^ = (0.6, 0.8). Backward with deh = (1,0):
     * (I - e^ e^T)/5 (1,0) = (1 - 0.36, -0.48)/5 = (0.128, -0.096). Row 2 is zero: guarded. */
    float e[4] = {3, 4, 0, 0};
    double eh[4], nrm[2];
    fsb_refilled_l2norm(eh, nrm, e, 2, 2);
    ck_assert_double_eq_tol(eh[0], 0.6, 1e-15);
    ck_assert_double_eq_tol(eh[1], 0.8, 1e-15);
    ck_assert_double_eq(nrm[0], 5);
    ck_assert_double_eq(nrm[1], 0);
    ck_assert_double_eq(eh[2], 0);
    ck_assert_double_eq(eh[3], 0);
    double deh[4] = {1, 0, 1, 1};
    float de[4] = {1, 1, 1, 1};
    fsb_refilled_l2norm_backward(de, deh, eh, nrm, 2, 2);
    ck_assert_float_eq_tol(de[0], 1.128f, 1e-6f);
    ck_assert_float_eq_tol(de[1], 1 - 0.096f, 1e-6f);
    ck_assert_float_eq(de[2], 1); /* zero-norm row: no contribution */
    ck_assert_float_eq(de[3], 1);

    /* d((0.6,0.8), (1,0)) = sqrt(0.16 + 0.64) = sqrt(0.8) - not squared; symmetric, 0 diag */
    double p[6] = {0.6, 0.8, 1, 0, 0.6, 0.8}, d[9];
    fsb_refilled_pairdist(d, p, 3, 2);
    ck_assert_double_eq_tol(d[1], sqrt(0.8), 1e-15);
    ck_assert_double_eq(d[1], d[3]);
    ck_assert_double_eq(d[0], 0);
    ck_assert_double_eq(d[2], 0); /* identical rows */
    /* d -> 0 guard: a gradient on the (0,2) pair, where d = 0, adds nothing */
    double g[9] = {0, 0, 5, 0, 0, 0, 5, 0, 0}, dp[6] = {0};
    fsb_refilled_pairdist_backward(dp, g, p, d, 3, 2);
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(dp[i], 0);
    /* and on the (0,1) pair: deh[0] += g (e0 - e1)/d, deh[1] += g (e1 - e0)/d */
    double g2[9] = {0, 2, 0, 2, 0, 0, 0, 0, 0};
    fsb_refilled_pairdist_backward(dp, g2, p, d, 3, 2);
    ck_assert_double_eq_tol(dp[0], 2 * (0.6 - 1) / sqrt(0.8), 1e-14);
    ck_assert_double_eq_tol(dp[3], 2 * (0 - 0.8) / sqrt(0.8), 1e-14);
    ck_assert_double_eq(dp[4], 0);
}
END_TEST

START_TEST(l2norm_backward_finite_differences)
{
    fsb_rng r;
    fsb_rng_init(&r, 11, 0);
    enum { N = 3, D = 5 };
    float e[N * D];
    double w[N * D], eh[N * D], nrm[N];
    grid_fill(e, N * D, &r);
    for (int i = 0; i < N * D; i++)
        w[i] = fsb_rng_normal(&r);
    /* L = <w, e^>; dL/de^ = w */
    float de[N * D] = {0};
    fsb_refilled_l2norm(eh, nrm, e, N, D);
    fsb_refilled_l2norm_backward(de, w, eh, nrm, N, D);
    for (int i = 0; i < N * D; i++) {
        float keep = e[i];
        double lp = 0, lm = 0;
        e[i] = keep + (float)FD_H;
        fsb_refilled_l2norm(eh, nrm, e, N, D);
        for (int j = 0; j < N * D; j++)
            lp += w[j] * eh[j];
        e[i] = keep - (float)FD_H;
        fsb_refilled_l2norm(eh, nrm, e, N, D);
        for (int j = 0; j < N * D; j++)
            lm += w[j] * eh[j];
        e[i] = keep;
        ck_assert_double_eq_tol(de[i], (lp - lm) / (2 * FD_H), 1e-4 * (1 + fabs(de[i])));
    }
}
END_TEST

START_TEST(sigmoid_equals_two_way_softmax)
{
    /* P = exp(-d_ap/tau) / (exp(-d_ap/tau) + exp(-d_an/tau))
     *   = 1 / (1 + exp(-(d_an - d_ap)/tau)) = sigmoid((d_an - d_ap)/tau):
     * divide numerator and denominator by exp(-d_ap/tau). Checked against the library's P_S. */
    const double pairs[][2] = {{0.3, 0.45}, {1.2, 1.1}, {0, 2}, {2, 0}, {0.7, 0.7}};
    for (int k = 0; k < 5; k++) {
        double dap = pairs[k][0], dan = pairs[k][1], tau = 4;
        double soft = exp(-dap / tau) / (exp(-dap / tau) + exp(-dan / tau));
        double sig = 1 / (1 + exp(-(dan - dap) / tau));
        ck_assert_double_eq_tol(soft, sig, 1e-15);
        double dist[9] = {0, dap, dan, dap, 0, 0, dan, 0, 0};
        fsb_triplet t = {0, 1, 2};
        double ps, pt;
        fsb_refilled_stage1_triplets(NULL, &ps, &pt, &t, 1, dist, dist, 3, 4.0f, 500.0f);
        ck_assert_double_eq_tol(ps, soft, 1e-15);
        ck_assert_double_eq_tol(pt, soft, 1e-15);
    }
}
END_TEST

/* The 5-point configuration used by the miner tests: unit vectors at angles 0, 12, 20, 30, 60
 * degrees with labels 0,0,1,1,0, stored with norms 1, 2, 0.5, 3, 1.5 (the miner sees the
 * normalised rows). Chord d = 2 sin(dθ/2):
 *        r0      r1      r2      r3      r4
 *   r0   0       .20906  .34730  .51764  1.00000
 *   r1   .20906  0       .13951  .31287  .81347
 *   r2   .34730  .13951  0       .17431  .68404
 *   r3   .51764  .31287  .17431  0       .51764
 *   r4   1.00000 .81347  .68404  .51764  0                                             */
static void five_points(float *e, int *labels)
{
    const double ang[5] = {0, 12, 20, 30, 60}, scale[5] = {1, 2, 0.5, 3, 1.5};
    const int lab[5] = {0, 0, 1, 1, 0};
    for (int i = 0; i < 5; i++) {
        double th = ang[i] * 3.14159265358979323846 / 180;
        e[2 * i] = (float)(scale[i] * cos(th));
        e[2 * i + 1] = (float)(scale[i] * sin(th));
        labels[i] = lab[i];
    }
}

static void mine_points(fsb_triplet *out, size_t *count, const float *e, const int *labels,
                        const int *groups, int n, int dim, fsb_refilled_miner m, float margin)
{
    double eh[64], nrm[16], d[256];
    ck_assert_int_le(n * dim, 64);
    fsb_refilled_l2norm(eh, nrm, e, n, dim);
    fsb_refilled_pairdist(d, eh, n, dim);
    ck_assert_int_eq(fsb_refilled_mine(out, 64, count, d, labels, groups, n, m, margin), FSB_OK);
}

START_TEST(miner_semihard_by_hand)
{
    /* Valid triplets (a,p,n) and m = d(a,n) - d(a,p); kept when 0 < m < 0.2:
     *   (0,1,2) .13824 keep   (0,1,3) .30858        (0,4,2) -.65270       (0,4,3) -.48236
     *   (1,0,2) -.06954       (1,0,3) .10381 keep   (1,4,*) < 0
     *   (2,3,0) .17298 keep   (2,3,1) -.03480       (2,3,4) .50973
     *   (3,2,0) .34333        (3,2,1) .13856 keep   (3,2,4) .34333
     *   (4,0,*) < 0           (4,1,*) < 0
     * -> exactly (0,1,2), (1,0,3), (2,3,0), (3,2,1), in (a, p, n) order. */
    float e[10];
    int labels[5];
    five_points(e, labels);
    fsb_triplet t[64];
    size_t T;
    mine_points(t, &T, e, labels, NULL, 5, 2, FSB_MINER_SEMIHARD, 0.2f);
    const fsb_triplet want[4] = {{0, 1, 2}, {1, 0, 3}, {2, 3, 0}, {3, 2, 1}};
    ck_assert_uint_eq(T, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(t[i].a, want[i].a);
        ck_assert_int_eq(t[i].p, want[i].p);
        ck_assert_int_eq(t[i].n, want[i].n);
    }
    ck_assert_uint_eq(fsb_refilled_triplet_bound(labels, NULL, 5, FSB_MINER_SEMIHARD), 18);
    /* margin 0.15 drops (2,3,0) (m = .17298) */
    mine_points(t, &T, e, labels, NULL, 5, 2, FSB_MINER_SEMIHARD, 0.15f);
    ck_assert_uint_eq(T, 3);
    ck_assert_int_eq(t[2].a, 3);
    /* both ends of the window are open: a hand-made distance matrix with rows 0,1 class 0 and
     * 2,3,4 class 1; from anchor 0: d(0,1) = 0.5, d(0,2) = 0.5 (m = 0), d(0,3) = 0.5 +
     * 0.2f (m = margin exactly; the sum is exact in double), d(0,4) = 0.6 (kept). */
    const double mg = (double)0.2f;
    double d[25] = {0,        0.5, 0.5, 0.5 + mg, 0.6, /* row 0 */
                    0.5,      0,   9,   9,        9,   /* row 1: nothing in the window */
                    0.5,      9,   0,   0,        0,   /* */
                    0.5 + mg, 9,   0,   0,        0,   /* */
                    0.6,      9,   0,   0,        0};
    int lab[5] = {0, 0, 1, 1, 1};
    ck_assert_int_eq(fsb_refilled_mine(t, 64, &T, d, lab, NULL, 5, FSB_MINER_SEMIHARD, 0.2f),
                     FSB_OK);
    ck_assert_uint_eq(T, 1);
    ck_assert_int_eq(t[0].a, 0);
    ck_assert_int_eq(t[0].p, 1);
    ck_assert_int_eq(t[0].n, 4);
}
END_TEST

START_TEST(miner_facenet_by_hand)
{
    /* Per ordered positive pair: the closest negative farther than d(a,p), else the farthest:
     *   (0,1): d=.209, negs 2 (.347), 3 (.518) farther -> 2
     *   (0,4): d=1.0,  nothing farther -> farthest of 2 (.347), 3 (.518) -> 3
     *   (1,0): d=.209, 2 (.140) nearer, 3 (.313) -> 3
     *   (1,4): d=.813, nothing farther -> farthest 3
     *   (2,3): d=.174, 0 (.347), 1 (.140), 4 (.684) -> 0
     *   (3,2): d=.174, 0 (.518), 1 (.313), 4 (.518) -> 1
     *   (4,0): d=1.0 -> farthest of 2 (.684), 3 (.518) -> 2
     *   (4,1): d=.813 -> farthest 2 */
    float e[10];
    int labels[5];
    five_points(e, labels);
    fsb_triplet t[64];
    size_t T;
    mine_points(t, &T, e, labels, NULL, 5, 2, FSB_MINER_FACENET, 0);
    const fsb_triplet want[8] = {{0, 1, 2}, {0, 4, 3}, {1, 0, 3}, {1, 4, 3},
                                 {2, 3, 0}, {3, 2, 1}, {4, 0, 2}, {4, 1, 2}};
    ck_assert_uint_eq(T, 8);
    ck_assert_uint_eq(fsb_refilled_triplet_bound(labels, NULL, 5, FSB_MINER_FACENET), 8);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(t[i].a, want[i].a);
        ck_assert_int_eq(t[i].p, want[i].p);
        ck_assert_int_eq(t[i].n, want[i].n);
    }
    /* ties pick the lowest index: from anchor 0 (d(0,1) = 0.5), negatives 2 and 3 are both
     * the closest farther one (0.7), and 2, 3 again tie for farthest from anchor 1 */
    double d[16] = {0, 0.5, 0.7, 0.7, 0.5, 0, 0.3, 0.3, 0.7, 0.3, 0, 0, 0.7, 0.3, 0, 0};
    int lab4[4] = {0, 0, 1, 1};
    ck_assert_int_eq(fsb_refilled_mine(t, 64, &T, d, lab4, NULL, 4, FSB_MINER_FACENET, 0), FSB_OK);
    ck_assert_uint_eq(T, 4);
    ck_assert_int_eq(t[0].n, 2); /* (0,1): closest farther, tie 2/3 -> 2 */
    ck_assert_int_eq(t[1].n, 2); /* (1,0): d(1,0) = 0.5 > 0.3: fallback farthest, tie -> 2 */
    ck_assert_int_eq(t[2].n, 1); /* (2,3): d = 0; closest farther of 0 (0.7), 1 (0.3) -> 1 */
    ck_assert_int_eq(t[3].n, 1); /* (3,2): likewise */
    /* an anchor whose class fills the batch has no negative -> no triplet */
    int same[5] = {7, 7, 7, 7, 7};
    mine_points(t, &T, e, same, NULL, 5, 2, FSB_MINER_FACENET, 0);
    ck_assert_uint_eq(T, 0);
}
END_TEST

START_TEST(miner_views_and_groups)
{
    /* 3 source images, 2 views each. Rows 0..3 are class 0 (images 0, 1), rows 4,5 class 1. */
    float e[12] = {1, 0, 0.98f, 0.2f, 0.6f, 0.8f, 0.5f, 0.86f, -1, 0.1f, -0.9f, -0.3f};
    int labels[6] = {0, 0, 0, 0, 1, 1}, groups[6] = {0, 0, 1, 1, 2, 2};
    fsb_triplet t[64];
    size_t T;
    /* margin 3 > max d_an - d_ap: semihard then keeps every valid triplet with d_an > d_ap */
    mine_points(t, &T, e, labels, groups, 6, 2, FSB_MINER_SEMIHARD, 3.0f);
    ck_assert_uint_gt(T, 0);
    for (size_t i = 0; i < T; i++) {
        ck_assert_int_eq(groups[t[i].a], groups[t[i].p]); /* only views of one image */
        ck_assert_int_ne(labels[t[i].a], labels[t[i].n]); /* other class images: negatives */
    }
    /* with groups: pos(a) = 1 each; neg = 2 for rows 0..3, 4 for rows 4,5 -> 4*2 + 2*4 = 16 */
    ck_assert_uint_eq(fsb_refilled_triplet_bound(labels, groups, 6, FSB_MINER_SEMIHARD), 16);
    /* without groups every class-0 pair is positive: 4*3*2 + 2*1*4 = 32 */
    ck_assert_uint_eq(fsb_refilled_triplet_bound(labels, NULL, 6, FSB_MINER_SEMIHARD), 32);
    mine_points(t, &T, e, labels, NULL, 6, 2, FSB_MINER_FACENET, 0);
    ck_assert_uint_eq(T, 14); /* one per ordered positive pair: 4*3 + 2*1 */
    ck_assert_int_eq(t[1].a, 0);
    ck_assert_int_eq(t[1].p, 2); /* (0,2) positive through the label */
    /* K = 1: one image per class, groups == labels -> identical lists */
    int lab1[6] = {0, 0, 1, 1, 2, 2};
    fsb_triplet t2[64];
    size_t T2;
    mine_points(t, &T, e, lab1, NULL, 6, 2, FSB_MINER_SEMIHARD, 3.0f);
    mine_points(t2, &T2, e, lab1, lab1, 6, 2, FSB_MINER_SEMIHARD, 3.0f);
    ck_assert_uint_eq(T, T2);
    ck_assert_mem_eq(t, t2, T * sizeof *t);
    /* a group holding two labels is a caller error */
    int badg[6] = {0, 0, 1, 1, 1, 2};
    double eh[12], nrm[6], d[36];
    fsb_refilled_l2norm(eh, nrm, e, 6, 2);
    fsb_refilled_pairdist(d, eh, 6, 2);
    ck_assert_int_eq(fsb_refilled_mine(t, 64, &T, d, labels, badg, 6, FSB_MINER_SEMIHARD, 0.2f),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "group"));
    /* capacity too small, bad margin, unknown miner */
    ck_assert_int_eq(fsb_refilled_mine(t, 2, &T, d, labels, NULL, 6, FSB_MINER_FACENET, 0),
                     FSB_ENOMEM);
    ck_assert_uint_eq(T, 2);
    ck_assert_int_eq(fsb_refilled_mine(t, 64, &T, d, labels, NULL, 6, FSB_MINER_SEMIHARD, 0),
                     FSB_EINVAL);
    ck_assert_int_eq(fsb_refilled_mine(t, 64, &T, d, labels, NULL, 6, (fsb_refilled_miner)9, 0.2f),
                     FSB_EINVAL);
}
END_TEST

START_TEST(stage1_by_hand)
{
    /* Student (raw -> normalised): a (3,0) -> (1,0); p (0,2) -> (0,1); n (-1.4,4.8) ->
     * (-0.28,0.96).  d_S(a,p) = sqrt2 = 1.414214, d_S(a,n) = sqrt(1.28^2 + 0.96^2) = 1.6,
     * d_S(p,n) = sqrt(0.28^2 + 0.04^2) = 0.282843.
     * Triplets: (0,1,2) m = 1.6 - 1.414214 = 0.185786 in (0, 0.2): kept; (1,0,2) m = 0.282843 -
     * 1.414214 < 0: dropped; row 2 has no positive. So T = 1.
     * Teacher: a (2,0) -> (1,0); p (3,4) -> (0.6,0.8); n (0,0.5) -> (0,1):
     *   d_T(a,p) = sqrt(0.16 + 0.64) = 0.894427, d_T(a,n) = sqrt2 = 1.414214.
     * z_S = 0.185786/4 = 0.0464466, P_S = sigmoid(z_S) = 0.5116096
     * z_T = 0.519787/4 = 0.1299466, P_T = sigmoid(z_T) = 0.5324410
     * KL = P_T ln(P_T/P_S) + (1-P_T) ln((1-P_T)/(1-P_S))
     *    = 0.5324410 ln(1.0407174) + 0.4675590 ln(0.9573468) = 0.0212499 - 0.0203807
     *    = 8.691794e-4;  L1 = 500 KL = 0.4345897. */
    float es[6] = {3, 0, 0, 2, -1.4f, 4.8f}, et[6] = {2, 0, 3, 4, 0, 0.5f};
    int labels[3] = {0, 0, 1};
    fsb_refilled_stage1_opts o;
    fsb_refilled_stage1_defaults(&o);
    ck_assert_float_eq(o.tau1, 4);
    ck_assert_float_eq(o.w1, 500);
    ck_assert_float_eq(o.margin, 0.2f);
    ck_assert_int_eq(o.miner, FSB_MINER_SEMIHARD);
    fsb_refilled_stage1_result r;
    float de[6] = {0};
    ck_assert_int_eq(fsb_refilled_stage1(&r, de, es, et, labels, NULL, 3, 2, 2, &o, &arena),
                     FSB_OK);
    ck_assert_uint_eq(r.n_triplets, 1);
    ck_assert_int_eq(r.stepped, 1);
    ck_assert_double_eq_tol(r.mean_p_s, 0.5116096, 1e-6);
    ck_assert_double_eq_tol(r.mean_p_t, 0.5324410, 1e-6);
    ck_assert_double_eq_tol(r.loss, 0.4345897, 1e-6);
    ck_assert_uint_eq(arena.used, 0); /* scratch rolled back */
    /* gradient by hand for the anchor's 2nd coordinate: dL/dz_S = 500 (P_S - P_T) = -10.41572;
     * dL/dd_an = -10.41572/4 = -2.60393, dL/dd_ap = +2.60393.
     * dL/de^_a = -2.60393 (e^_a - e^_n)/1.6 + 2.60393 (e^_a - e^_p)/sqrt2
     *          = -2.60393 (1.28,-0.96)/1.6 + 2.60393 (1,-1)/1.41421 = (-0.24189, -0.27890)
     * dL/de_a  = (I - e^ e^T)/3 dL/de^_a = (0, -0.27890/3) = (0, -0.092966) */
    ck_assert_float_eq_tol(de[0], 0, 1e-6f);
    ck_assert_float_eq_tol(de[1], -0.092966f, 2e-6f);
}
END_TEST

START_TEST(stage1_finite_differences)
{
    enum { N = 9, DS = 6, DT = 5 };
    const int labels[N] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
    for (int variant = 0; variant < 3; variant++) {
        fsb_rng r;
        fsb_rng_init(&r, 2020, (uint64_t)variant);
        float es[N * DS], et[N * DT], de[N * DS];
        grid_fill(es, N * DS, &r);
        grid_fill(et, N * DT, &r);
        fsb_refilled_stage1_opts o;
        fsb_refilled_stage1_defaults(&o);
        if (variant == 1) o.miner = FSB_MINER_FACENET;
        if (variant == 2) { /* non-default parameters, views grouped by source image */
            o.tau1 = 0.5f;
            o.w1 = 3;
            o.margin = 0.5f;
        }
        const int groups[N] = {0, 0, 1, 2, 2, 2, 3, 3, 4};
        const int *gp = variant == 2 ? groups : NULL;
        for (int i = 0; i < N * DS; i++)
            de[i] = 0.25f; /* accumulation: the gradient is added to what is there */
        fsb_refilled_stage1_result res;
        ck_assert_int_eq(fsb_refilled_stage1(&res, de, es, et, labels, gp, N, DS, DT, &o, &arena),
                         FSB_OK);
        ck_assert_uint_gt(res.n_triplets, 3);
        size_t T0, T1;
        uint64_t h0 = triplet_hash(es, labels, gp, N, DS, &o, &T0);
        ck_assert_uint_eq(T0, res.n_triplets);
        double maxg = 0;
        for (int i = 0; i < N * DS; i++) {
            float keep = es[i];
            es[i] = keep + (float)FD_H;
            double lp = stage1_loss(es, et, labels, gp, N, DS, DT, &o);
            ck_assert_uint_eq(triplet_hash(es, labels, gp, N, DS, &o, &T1), h0);
            es[i] = keep - (float)FD_H;
            double lm = stage1_loss(es, et, labels, gp, N, DS, DT, &o);
            ck_assert_uint_eq(triplet_hash(es, labels, gp, N, DS, &o, &T1), h0);
            es[i] = keep;
            double fd = (lp - lm) / (2 * FD_H), an = de[i] - 0.25;
            maxg = fmax(maxg, fabs(an));
            ck_assert_msg(fabs(fd - an) <= 2e-4 + 1e-3 * fabs(fd),
                          "variant %d coord %d: analytic %g, finite difference %g", variant, i, an,
                          fd);
        }
        ck_assert_double_gt(maxg, 1e-3); /* the check is not vacuous */
    }
}
END_TEST

START_TEST(stage1_no_triplets_no_step)
{
    /* every row its own class: no positive pair, so no triplet -> loss 0, no gradient, no NaN */
    float es[6] = {1, 0, 0, 1, 1, 1}, et[6] = {1, 2, 3, 4, 5, 6}, de[6];
    int labels[3] = {0, 1, 2};
    for (int i = 0; i < 6; i++)
        de[i] = 7;
    fsb_refilled_stage1_opts o;
    fsb_refilled_stage1_defaults(&o);
    fsb_refilled_stage1_result r;
    for (int m = 0; m < 2; m++) {
        o.miner = (fsb_refilled_miner)m;
        ck_assert_int_eq(fsb_refilled_stage1(&r, de, es, et, labels, NULL, 3, 2, 2, &o, &arena),
                         FSB_OK);
        ck_assert_uint_eq(r.n_triplets, 0);
        ck_assert_int_eq(r.stepped, 0);
        ck_assert_double_eq(r.loss, 0);
        for (int i = 0; i < 6; i++)
            ck_assert_float_eq(de[i], 7);
    }
    /* semihard with every margin outside (0, 0.2): a (1,0), p (-1,0), n (0,1):
     * (0,1,2) and (1,0,2) both have m = sqrt2 - 2 < 0 -> no triplet */
    float es2[6] = {1, 0, -1, 0, 0, 1};
    int lab2[3] = {0, 0, 1};
    o.miner = FSB_MINER_SEMIHARD;
    ck_assert_int_eq(fsb_refilled_stage1(&r, de, es2, et, lab2, NULL, 3, 2, 2, &o, &arena), FSB_OK);
    ck_assert_int_eq(r.stepped, 0);
    ck_assert(!isnan(r.loss));
    /* an empty batch */
    ck_assert_int_eq(fsb_refilled_stage1(&r, de, es, et, labels, NULL, 0, 2, 2, &o, &arena),
                     FSB_OK);
    ck_assert_int_eq(r.stepped, 0);
}
END_TEST

START_TEST(stage1_distance_zero_guard)
{
    /* identical student embeddings: every d_S = 0; facenet falls back to the farthest
     * negative (d = 0), so triplets exist with d(a,p) = d(a,n) = 0: the gradient must be
     * finite (0 here: every pair is at the guard). */
    float es[8] = {1, 2, 1, 2, 1, 2, 1, 2}, et[8] = {1, 0, 0.8f, 0.6f, 0, 1, -1, 0}, de[8] = {0};
    int labels[4] = {0, 0, 1, 1};
    fsb_refilled_stage1_opts o;
    fsb_refilled_stage1_defaults(&o);
    o.miner = FSB_MINER_FACENET;
    fsb_refilled_stage1_result r;
    ck_assert_int_eq(fsb_refilled_stage1(&r, de, es, et, labels, NULL, 4, 2, 2, &o, &arena),
                     FSB_OK);
    ck_assert_uint_eq(r.n_triplets, 4);
    ck_assert(isfinite(r.loss) && r.loss > 0);
    for (int i = 0; i < 8; i++)
        ck_assert_float_eq(de[i], 0);
    /* semihard with a == p (d_ap = 0) and n at d = 0.1: the (a,p) pair is guarded, the
     * (a,n) pair still carries a finite gradient */
    double th = 2 * asin(0.05); /* chord 0.1 */
    float es2[6] = {1, 0, 1, 0, (float)cos(th), (float)sin(th)}, de2[6] = {0};
    int lab2[3] = {0, 0, 1};
    o.miner = FSB_MINER_SEMIHARD;
    ck_assert_int_eq(fsb_refilled_stage1(&r, de2, es2, et, lab2, NULL, 3, 2, 2, &o, &arena),
                     FSB_OK);
    ck_assert_uint_eq(r.n_triplets, 2); /* (0,1,2) and (1,0,2) */
    int nonzero = 0;
    for (int i = 0; i < 6; i++) {
        ck_assert(isfinite(de2[i]));
        nonzero += de2[i] != 0;
    }
    ck_assert_int_gt(nonzero, 0);
    /* a zero-norm student row: normalisation guard, finite everything, no gradient there */
    float es3[6] = {0, 0, 1, 0.1f, -0.9f, -0.5f}, de3[6] = {0};
    o.margin = 3; /* (1,0,2): d(1,0) = 1 (e^_0 = 0), d(1,2) ~ 1.95 -> selected */
    ck_assert_int_eq(fsb_refilled_stage1(&r, de3, es3, et, lab2, NULL, 3, 2, 2, &o, &arena),
                     FSB_OK);
    ck_assert_int_eq(r.stepped, 1);
    ck_assert(isfinite(r.loss));
    ck_assert_float_eq(de3[0], 0);
    ck_assert_float_eq(de3[1], 0);
    for (int i = 2; i < 6; i++)
        ck_assert(isfinite(de3[i]));
}
END_TEST

START_TEST(stage1_teacher_const_scratch_and_errors)
{
    enum { N = 6, DS = 4, DT = 3 };
    fsb_rng r;
    fsb_rng_init(&r, 5, 0);
    float es[N * DS], et[N * DT], et0[N * DT], de[N * DS] = {0};
    grid_fill(es, N * DS, &r);
    grid_fill(et, N * DT, &r);
    memcpy(et0, et, sizeof et);
    int labels[N] = {0, 0, 1, 1, 2, 2};
    fsb_refilled_stage1_opts o;
    fsb_refilled_stage1_defaults(&o);
    o.margin = 3;
    /* an arena of exactly the advertised size is enough */
    fsb_arena small;
    size_t need = fsb_refilled_stage1_scratch_bytes(labels, NULL, N, DS, DT, o.miner);
    ck_assert_int_eq(fsb_arena_init(&small, need), FSB_OK);
    fsb_refilled_stage1_result res, res2;
    ck_assert_int_eq(fsb_refilled_stage1(&res, de, es, et, labels, NULL, N, DS, DT, &o, &small),
                     FSB_OK);
    ck_assert_mem_eq(et, et0, sizeof et); /* the teacher's embedding is never written */
    ck_assert_uint_eq(small.used, 0);
    /* deterministic: same inputs, same bits */
    float de2[N * DS] = {0};
    ck_assert_int_eq(fsb_refilled_stage1(&res2, de2, es, et, labels, NULL, N, DS, DT, &o, &small),
                     FSB_OK);
    ck_assert_mem_eq(de, de2, sizeof de);
    ck_assert_double_eq(res.loss, res2.loss);
    fsb_arena_free(&small);
    /* too small an arena */
    ck_assert_int_eq(fsb_arena_init(&small, 256), FSB_OK);
    ck_assert_int_eq(fsb_refilled_stage1(&res, de, es, et, labels, NULL, N, DS, DT, &o, &small),
                     FSB_ENOMEM);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "stage 1"));
    ck_assert_uint_eq(small.used, 0);
    fsb_arena_free(&small);
    /* bad options and non-finite inputs */
    o.tau1 = 0;
    ck_assert_int_eq(fsb_refilled_stage1(&res, de, es, et, labels, NULL, N, DS, DT, &o, &arena),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "tau1"));
    fsb_refilled_stage1_defaults(&o);
    o.w1 = -1;
    ck_assert_int_eq(fsb_refilled_stage1(&res, de, es, et, labels, NULL, N, DS, DT, &o, &arena),
                     FSB_EINVAL);
    fsb_refilled_stage1_defaults(&o);
    o.margin = NAN;
    ck_assert_int_eq(fsb_refilled_stage1(&res, de, es, et, labels, NULL, N, DS, DT, &o, &arena),
                     FSB_EINVAL);
    ck_assert_uint_eq(arena.used, 0);
    fsb_refilled_stage1_defaults(&o);
    es[2 * DS + 1] = NAN;
    ck_assert_int_eq(fsb_refilled_stage1(&res, de, es, et, labels, NULL, N, DS, DT, &o, &arena),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "student embedding row 2"));
    es[2 * DS + 1] = 0;
    et[5 * DT] = INFINITY;
    ck_assert_int_eq(fsb_refilled_stage1(&res, de, es, et, labels, NULL, N, DS, DT, &o, &arena),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "teacher embedding row 5"));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

START_TEST(ncm_centres_and_logits)
{
    /* class 0: (2,0), (4,2) -> mean (3,1) -> c^ = (3,1)/sqrt10; class 1 absent -> 0;
     * class 2: (0,-5) -> (0,-1). */
    float phi[6] = {2, 0, 4, 2, 0, -5}, phi0[6], c[6];
    memcpy(phi0, phi, sizeof phi);
    int labels[3] = {0, 0, 2}, count[3];
    ck_assert_int_eq(fsb_refilled_ncm_centres(c, count, phi, labels, 3, 2, 3), FSB_OK);
    ck_assert_mem_eq(phi, phi0, sizeof phi);
    ck_assert_int_eq(count[0], 2);
    ck_assert_int_eq(count[1], 0);
    ck_assert_int_eq(count[2], 1);
    ck_assert_float_eq_tol(c[0], 3 / sqrtf(10), 1e-7f);
    ck_assert_float_eq_tol(c[1], 1 / sqrtf(10), 1e-7f);
    ck_assert_float_eq(c[2], 0);
    ck_assert_float_eq(c[3], 0);
    ck_assert_float_eq(c[4], 0);
    ck_assert_float_eq(c[5], -1);
    /* t_k(x) = <phi(x), c^_k>, phi raw: row 1 (4,2): t_0 = 14/sqrt10, t_2 = -2; t_1 = 0 */
    float t[9];
    fsb_refilled_ncm_logits(t, phi, c, count, 3, 2, 3);
    ck_assert_float_eq_tol(t[3], 14 / sqrtf(10), 1e-6f);
    ck_assert_float_eq(t[4], 0);
    ck_assert_float_eq_tol(t[5], -2, 1e-6f);
    labels[2] = 3;
    ck_assert_int_eq(fsb_refilled_ncm_centres(c, count, phi, labels, 3, 2, 3), FSB_EINVAL);
}
END_TEST

START_TEST(stage2_by_hand)
{
    /* n_class = 3, batch labels {0, 2}: C_B = {0, 2}.
     * Teacher phi: x0 = (2,0) y=0, x1 = (0,1) y=2 -> c^_0 = (1,0), c^_2 = (0,1);
     *   t(x0) = (2, 0), t(x1) = (0, 1) over C_B.
     * Student logits f(x0) = (1, 5, 0), f(x1) = (0, -1, 1).
     * CE over all 3 outputs: x0: ln(e + e^5 + 1) - 1 = 4.0247449; x1: ln(1 + e^-1 + e) - 1 =
     *   0.4076060; mean = 2.2161754.
     * tau2 = 2: x0: P_S = softmax(0.5, 0) = (0.6224593, 0.3775407),
     *               P_T = softmax(1, 0) = (0.7310586, 0.2689414);
     *   KL = 0.7310586 ln(0.7310586/0.6224593) + 0.2689414 ln(0.2689414/0.3775407) = 0.0263446
     *   x1: f/2 = (0, 0.5) = t/2 -> P_S = P_T, KL = 0.  mean KL = 0.0131723.
     * L2 = 2.2161754 + 100 * 0.0131723 = 3.5334047.
     * dL/df(x0) = (softmax(f) - onehot)/2 + (100/2)(P_S - P_T)/2 on C_B
     *   softmax(1,5,0) = (0.0180, 0.9756, 0.0066) -> CE part (-0.4910, 0.4878, 0.0033);
     *   KL part: 25 * (-0.1085993, 0.1085993) -> (-2.7150, -, 2.7150)
     *   total (-3.2060472, 0.4877794, 2.7182678). */
    float f[6] = {1, 5, 0, 0, -1, 1}, phi[4] = {2, 0, 0, 1}, phi0[4], df[6] = {0};
    memcpy(phi0, phi, sizeof phi);
    int labels[2] = {0, 2};
    fsb_refilled_stage2_opts o;
    fsb_refilled_stage2_defaults(&o);
    ck_assert_float_eq(o.tau2, 2);
    ck_assert_float_eq(o.lambda, 100);
    ck_assert_int_eq(o.ce_batch_classes, 0);
    fsb_refilled_stage2_result r;
    ck_assert_int_eq(fsb_refilled_stage2(&r, df, f, phi, NULL, labels, 2, 2, 3, &o, &arena),
                     FSB_OK);
    ck_assert_mem_eq(phi, phi0, sizeof phi);
    ck_assert_int_eq(r.n_present, 2);
    ck_assert_double_eq_tol(r.ce, 2.2161754, 1e-6);
    ck_assert_double_eq_tol(r.kl, 0.0131723, 1e-6);
    ck_assert_double_eq_tol(r.loss, 3.5334047, 1e-5);
    ck_assert_float_eq_tol(df[0], -3.2060472f, 1e-5f);
    ck_assert_float_eq_tol(df[1], 0.4877794f, 1e-5f);
    ck_assert_float_eq_tol(df[2], 2.7182678f, 1e-5f);
    /* x1: (0.12236424, 0.04501529, -0.16737952): CE only (KL is 0 there) */
    ck_assert_float_eq_tol(df[3], 0.1223642f, 1e-5f);
    ck_assert_float_eq_tol(df[4], 0.0450153f, 1e-5f);
    ck_assert_float_eq_tol(df[5], -0.1673795f, 1e-5f);
    ck_assert_uint_eq(arena.used, 0);
    /* CE over C_B only (flag): x0 ln(e + 1) - 1 = 0.3132617, x1 ln(1 + e) - 1 = 0.3132617 */
    o.ce_batch_classes = 1;
    float df2[6] = {0};
    ck_assert_int_eq(fsb_refilled_stage2(&r, df2, f, phi, NULL, labels, 2, 2, 3, &o, &arena),
                     FSB_OK);
    ck_assert_double_eq_tol(r.ce, 0.3132617, 1e-6);
    ck_assert_float_eq(df2[1], 0); /* class 1 is outside C_B: nothing at all */
    ck_assert_float_eq(df2[4], 0);
}
END_TEST

START_TEST(stage2_finite_differences)
{
    enum { N = 7, NC = 5, DT = 4 };
    const int labels[N] = {0, 2, 3, 0, 2, 3, 3}; /* classes 1 and 4 absent from the batch */
    for (int variant = 0; variant < 3; variant++) {
        fsb_rng r;
        fsb_rng_init(&r, 77, (uint64_t)variant);
        float f[N * NC], phi[N * DT], df[N * NC], cen[NC * DT];
        int cnt[NC];
        grid_fill(f, N * NC, &r);
        grid_fill(phi, N * DT, &r);
        fsb_refilled_stage2_opts o;
        fsb_refilled_stage2_defaults(&o);
        o.ce_batch_classes = variant == 1;
        const float *centres = NULL;
        if (variant == 2) { /* centres given, non-default tau2 / lambda */
            o.tau2 = 0.7f;
            o.lambda = 3;
            ck_assert_int_eq(fsb_refilled_ncm_centres(cen, cnt, phi, labels, N, DT, NC), FSB_OK);
            for (int j = 0; j < DT; j++)
                cen[1 * DT + j] = 0.5f; /* a class outside C_B with a centre: must be ignored */
            centres = cen;
        }
        memset(df, 0, sizeof df);
        fsb_refilled_stage2_result res;
        ck_assert_int_eq(
            fsb_refilled_stage2(&res, df, f, phi, centres, labels, N, DT, NC, &o, &arena), FSB_OK);
        ck_assert_int_eq(res.n_present, 3);
        ck_assert_double_gt(res.kl, 0);
        for (int i = 0; i < N * NC; i++) {
            float keep = f[i];
            fsb_refilled_stage2_result rp, rm;
            f[i] = keep + (float)FD_H;
            ck_assert_int_eq(
                fsb_refilled_stage2(&rp, NULL, f, phi, centres, labels, N, DT, NC, &o, &arena),
                FSB_OK);
            f[i] = keep - (float)FD_H;
            ck_assert_int_eq(
                fsb_refilled_stage2(&rm, NULL, f, phi, centres, labels, N, DT, NC, &o, &arena),
                FSB_OK);
            f[i] = keep;
            double fd = (rp.loss - rm.loss) / (2 * FD_H);
            ck_assert_msg(fabs(fd - df[i]) <= 1e-5 + 1e-4 * fabs(fd),
                          "variant %d entry %d: analytic %g, finite difference %g", variant, i,
                          (double)df[i], fd);
            int k = i % NC;
            if (variant == 1 && (k == 1 || k == 4)) ck_assert_float_eq(df[i], 0);
        }
    }
}
END_TEST

START_TEST(stage2_centres_given_equal_batch_centres)
{
    /* one support set in one batch: precomputed centres == per-batch centres, bit for bit */
    enum { N = 6, NC = 3, DT = 5 };
    fsb_rng r;
    fsb_rng_init(&r, 3, 0);
    float f[N * NC], phi[N * DT], cen[NC * DT], cen0[NC * DT], d1[N * NC] = {0}, d2[N * NC] = {0};
    grid_fill(f, N * NC, &r);
    grid_fill(phi, N * DT, &r);
    int labels[N] = {0, 1, 2, 0, 1, 2}, cnt[NC];
    ck_assert_int_eq(fsb_refilled_ncm_centres(cen, cnt, phi, labels, N, DT, NC), FSB_OK);
    memcpy(cen0, cen, sizeof cen);
    fsb_refilled_stage2_opts o;
    fsb_refilled_stage2_defaults(&o);
    fsb_refilled_stage2_result a, b;
    ck_assert_int_eq(fsb_refilled_stage2(&a, d1, f, phi, NULL, labels, N, DT, NC, &o, &arena),
                     FSB_OK);
    ck_assert_int_eq(fsb_refilled_stage2(&b, d2, f, phi, cen, labels, N, DT, NC, &o, &arena),
                     FSB_OK);
    ck_assert_mem_eq(cen, cen0, sizeof cen); /* centres are const */
    ck_assert_double_eq(a.loss, b.loss);
    ck_assert_mem_eq(d1, d2, sizeof d1);
    /* lambda = 0 is plain cross-entropy (the fine-tune baseline's loss) */
    o.lambda = 0;
    ck_assert_int_eq(fsb_refilled_stage2(&a, NULL, f, phi, NULL, labels, N, DT, NC, &o, &arena),
                     FSB_OK);
    ck_assert_double_eq(a.loss, a.ce);
    /* the whole-support-set scratch estimate is enough */
    fsb_arena small;
    ck_assert_int_eq(fsb_arena_init(&small, fsb_refilled_stage2_scratch_bytes(N, DT, NC)), FSB_OK);
    ck_assert_int_eq(fsb_refilled_stage2(&a, NULL, f, phi, NULL, labels, N, DT, NC, &o, &small),
                     FSB_OK);
    ck_assert_int_eq(fsb_refilled_stage2(&a, NULL, f, phi, NULL, labels, 0, DT, NC, &o, &small),
                     FSB_OK);
    ck_assert_double_eq(a.loss, 0);
    fsb_arena_free(&small);
}
END_TEST

START_TEST(stage2_errors)
{
    float f[6] = {1, 5, 0, 0, -1, 1}, phi[4] = {2, 0, 0, 1};
    int labels[2] = {0, 2};
    fsb_refilled_stage2_opts o;
    fsb_refilled_stage2_defaults(&o);
    fsb_refilled_stage2_result r;
    o.tau2 = -1;
    ck_assert_int_eq(fsb_refilled_stage2(&r, NULL, f, phi, NULL, labels, 2, 2, 3, &o, &arena),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "tau2"));
    fsb_refilled_stage2_defaults(&o);
    o.lambda = NAN;
    ck_assert_int_eq(fsb_refilled_stage2(&r, NULL, f, phi, NULL, labels, 2, 2, 3, &o, &arena),
                     FSB_EINVAL);
    fsb_refilled_stage2_defaults(&o);
    labels[1] = 3;
    ck_assert_int_eq(fsb_refilled_stage2(&r, NULL, f, phi, NULL, labels, 2, 2, 3, &o, &arena),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "label 3"));
    labels[1] = 2;
    f[4] = NAN;
    ck_assert_int_eq(fsb_refilled_stage2(&r, NULL, f, phi, NULL, labels, 2, 2, 3, &o, &arena),
                     FSB_EINVAL);
    f[4] = 0;
    phi[1] = INFINITY;
    ck_assert_int_eq(fsb_refilled_stage2(&r, NULL, f, phi, NULL, labels, 2, 2, 3, &o, &arena),
                     FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "teacher"));
    /* from_logits: a label outside C_B */
    float t[6] = {0};
    int present[3] = {1, 0, 0};
    ck_assert_int_eq(fsb_refilled_stage2_from_logits(&r, NULL, f, t, present, labels, 2, 3, &o),
                     FSB_EINVAL);
    fsb_arena small;
    ck_assert_int_eq(fsb_arena_init(&small, 16), FSB_OK);
    phi[1] = 0;
    ck_assert_int_eq(fsb_refilled_stage2(&r, NULL, f, phi, NULL, labels, 2, 2, 3, &o, &small),
                     FSB_ENOMEM);
    ck_assert_uint_eq(small.used, 0);
    fsb_arena_free(&small);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("refilled");
    TCase *tc = tcase_create("refilled");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, l2norm_and_distance_by_hand);
    tcase_add_test(tc, l2norm_backward_finite_differences);
    tcase_add_test(tc, sigmoid_equals_two_way_softmax);
    tcase_add_test(tc, miner_semihard_by_hand);
    tcase_add_test(tc, miner_facenet_by_hand);
    tcase_add_test(tc, miner_views_and_groups);
    tcase_add_test(tc, stage1_by_hand);
    tcase_add_test(tc, stage1_finite_differences);
    tcase_add_test(tc, stage1_no_triplets_no_step);
    tcase_add_test(tc, stage1_distance_zero_guard);
    tcase_add_test(tc, stage1_teacher_const_scratch_and_errors);
    tcase_add_test(tc, ncm_centres_and_logits);
    tcase_add_test(tc, stage2_by_hand);
    tcase_add_test(tc, stage2_finite_differences);
    tcase_add_test(tc, stage2_centres_given_equal_batch_centres);
    tcase_add_test(tc, stage2_errors);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
