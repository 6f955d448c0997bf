/* test_protoloss.c - the prototypical-network episode loss: a 2-way 1-shot 1-query case in
 * one dimension computed by hand (loss, accuracy, every gradient, with and without a
 * temperature), and finite-difference checks of dL/demb on random multi-shot episodes. */
#include "fsb/protoloss.h"
#include "fsb/rng.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

START_TEST(hand_computed_two_way)
{
    /* support s0 = 0, s1 = 2; query of class 0 at 0.5, of class 1 at 1.5. z_00 = -0.25,
     * z_01 = -2.25 (and mirrored), so each query's loss is log(1 + e^-2) and, with
     * sig = 1/(1 + e^2), g_0 = (-sig/2, sig/2), g_1 = (sig/2, -sig/2):
     * dL/dq0 = -2(g_00*0.5 + g_01*(-1.5)) = 2 sig, dL/dq1 = -2 sig,
     * dL/ds0 = 2(g_00*0.5 + g_10*1.5) = sig, dL/ds1 = 2(g_01*(-1.5) + g_11*(-0.5)) = -sig. */
    float emb[4] = {0, 2, 0.5f, 1.5f}, d[4];
    double work[16];
    ck_assert_uint_le(fsb_protoloss_scratch(2, 1, 1, 1), 16);
    int correct = -1;
    double loss = fsb_protoloss(emb, 2, 1, 1, 1, 1.0, d, &correct, work);
    double sig = 1 / (1 + exp(2.0));
    ck_assert_double_eq_tol(loss, log(1 + exp(-2.0)), 1e-12);
    ck_assert_int_eq(correct, 2);
    ck_assert_double_eq_tol(d[0], sig, 1e-7);
    ck_assert_double_eq_tol(d[1], -sig, 1e-7);
    ck_assert_double_eq_tol(d[2], 2 * sig, 1e-7);
    ck_assert_double_eq_tol(d[3], -2 * sig, 1e-7);
    /* temperature 2 halves the logits: log(1 + e^-1); demb NULL is allowed */
    loss = fsb_protoloss(emb, 2, 1, 1, 1, 2.0, NULL, NULL, work);
    ck_assert_double_eq_tol(loss, log(1 + exp(-1.0)), 1e-12);
    /* swapped queries: both nearer the other prototype, none correct */
    float swapped[4] = {0, 2, 1.5f, 0.5f};
    loss = fsb_protoloss(swapped, 2, 1, 1, 1, 1.0, d, &correct, work);
    ck_assert_int_eq(correct, 0);
    ck_assert_double_eq_tol(loss, log(1 + exp(2.0)), 1e-12);
    /* two shots: the prototype is their mean, each shot gets half the prototype's gradient */
    float two[6] = {-1, 1, 1, 3, 0.5f, 1.5f}, d2[6];
    double w2[16];
    double l2 = fsb_protoloss(two, 2, 2, 1, 1, 1.0, d2, &correct, w2);
    ck_assert_double_eq_tol(l2, log(1 + exp(-2.0)), 1e-12);
    ck_assert_double_eq_tol(d2[0], sig / 2, 1e-7);
    ck_assert_double_eq_tol(d2[1], sig / 2, 1e-7);
    ck_assert_double_eq_tol(d2[2], -sig / 2, 1e-7);
    ck_assert_double_eq_tol(d2[4], 2 * sig, 1e-7);
}
END_TEST

/* Central differences of the loss against the analytic gradient, every coordinate. */
static void fd_check(int way, int shot, int query, int dim, double temperature, uint64_t seed)
{
    int n = way * (shot + query);
    float *emb = malloc(sizeof(float) * (size_t)n * dim),
          *d = malloc(sizeof(float) * (size_t)n * dim);
    double *work = malloc(sizeof(double) * fsb_protoloss_scratch(way, shot, query, dim));
    fsb_rng r;
    fsb_rng_init(&r, seed, 0);
    for (int i = 0; i < n * dim; i++)
        emb[i] = (float)(fsb_rng_uniform(&r) * 2 - 1);
    fsb_protoloss(emb, way, shot, query, dim, temperature, d, NULL, work);
    double worst = 0;
    for (int i = 0; i < n * dim; i++) {
        float x = emb[i], h = 1e-2f;
        emb[i] = x + h;
        double lp = fsb_protoloss(emb, way, shot, query, dim, temperature, NULL, NULL, work);
        double xp = emb[i];
        emb[i] = x - h;
        double lm = fsb_protoloss(emb, way, shot, query, dim, temperature, NULL, NULL, work);
        double xm = emb[i];
        emb[i] = x;
        double fd = (lp - lm) / (xp - xm), err = fabs(fd - d[i]) / (fabs(fd) + 1e-3);
        if (err > worst) worst = err;
        ck_assert_msg(err < 2e-3, "coord %d: analytic %g, numeric %g", i, d[i], fd);
    }
    ck_assert(worst >= 0);
    free(emb), free(d), free(work);
}

START_TEST(finite_differences)
{
    fd_check(3, 1, 2, 4, 1.0, 1);
    fd_check(3, 2, 3, 5, 1.5, 2);
    fd_check(5, 5, 2, 3, 0.5, 3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("protoloss");
    TCase *tc = tcase_create("protoloss");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, hand_computed_two_way);
    tcase_add_test(tc, finite_differences);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
