/* test_baselines.c - the method table and the frozen-feature baselines (1nn, protonet, svm,
 * logreg) on hand-made features whose right answers are worked out in the comments:
 * normalisations, prototypes, liblinear's regularised bias, ties, determinism across threads.
 */
#include "fsb/arena.h"
#include "fsb/featloss.h"
#include "fsb/method.h"
#include "fsb/rng.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "fsb/threads.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static fsb_arena arena;

static void setup(void)
{
    ck_assert_int_eq(fsb_arena_init(&arena, 64 << 20), FSB_OK);
}

static void teardown(void)
{
    fsb_arena_free(&arena);
}

static fsb_episode_view view(int way, int shot, int query, int dim, const float *sup,
                             const int *labels, const float *qry)
{
    fsb_episode_view ep = {.episode = 0,
                           .way = way,
                           .shot = shot,
                           .query = query,
                           .n_support = way * shot,
                           .n_query = way * query,
                           .dim = dim,
                           .support_feat = sup,
                           .query_feat = qry,
                           .support_labels = labels};
    return ep;
}

/* Run method `name` with norm `norm` (and base mean) and return the predictions in pred. */
static int run(const char *name, int norm, const float *mean, const fsb_episode_view *ep, int *pred)
{
    const fsb_method *m = fsb_method_find(name);
    ck_assert_ptr_nonnull(m);
    fsb_method_config cfg;
    fsb_method_config_default(&cfg, m);
    if (norm >= 0) cfg.norm = (fsb_norm)norm;
    cfg.base_mean = mean;
    cfg.base_mean_dim = mean ? ep->dim : 0;
    fsb_rng rng;
    fsb_rng_init(&rng, 1, 2);
    fsb_method_stats stats = {-1, -1};
    size_t before = arena.used;
    arena.peak = before;
    int st = m->run(m, &cfg, ep, &arena, &rng, pred, &stats);
    ck_assert_uint_eq(arena.used, before); /* the method leaves the arena as it found it */
    if (st == FSB_OK) {
        ck_assert(stats.fit_ms >= 0 && stats.predict_ms >= 0);
        ck_assert_uint_le(arena.peak - before, m->scratch(ep->way, ep->shot, ep->query, ep->dim));
    }
    return st;
}

START_TEST(table_lookup)
{
    ck_assert_int_eq(fsb_method_count(), 8);
    const char *names[] = {"1nn", "protonet", "svm", "logreg", "feat"};
    for (int i = 0; i < 5; i++) {
        const fsb_method *m = fsb_method_find(names[i]);
        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(m->name, names[i]);
        ck_assert_ptr_eq(fsb_method_at(i), m);
        ck_assert_uint_eq(m->needs, FSB_NEEDS_FEATURES | FSB_TAKES_MODEL); /* --model */
    }
    /* the per-episode training methods follow (tests/test_student.c) */
    ck_assert_str_eq(fsb_method_at(5)->name, "finetune");
    ck_assert_str_eq(fsb_method_at(6)->name, "refilled");
    ck_assert_uint_eq(fsb_method_at(5)->needs, FSB_NEEDS_IMAGES); /* no own model */
    ck_assert_uint_eq(fsb_method_at(6)->needs, FSB_NEEDS_IMAGES);
    /* then maml: images and its own model, which it requires (tests/e2e/test_run_maml.c) */
    ck_assert_ptr_eq(fsb_method_at(7), fsb_method_find("maml"));
    ck_assert_uint_eq(fsb_method_at(7)->needs, FSB_NEEDS_IMAGES | FSB_TAKES_MODEL);
    ck_assert_ptr_null(fsb_method_at(8));
    ck_assert_ptr_null(fsb_method_find("matchingnet"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "unknown method 'matchingnet'"));
    ck_assert_ptr_nonnull(
        strstr(fsb_error_last(), "1nn, protonet, svm, logreg, feat, finetune, refilled, maml"));
    fsb_norm n;
    ck_assert_int_eq(fsb_norm_parse("--norm", "cl2n", &n), FSB_OK);
    ck_assert_int_eq(n, FSB_NORM_CL2N);
    ck_assert_str_eq(fsb_norm_name(n), "cl2n");
    ck_assert_int_eq(fsb_norm_parse("--norm", "L2", &n), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--norm"));
    fsb_method_config cfg;
    fsb_method_config_default(&cfg, fsb_method_find("protonet"));
    ck_assert_int_eq(cfg.norm, FSB_NORM_UN);
    ck_assert(cfg.C == 1.0 && cfg.bias == 1.0);
}
END_TEST

START_TEST(normalise_by_hand)
{
    /* (3, 4): L2N (0.6, 0.8); CL2N with mean (3, 0) -> (0, 4) -> (0, 1); zero stays zero */
    float x[6] = {3, 4, 0, 0, 3, 0}, y[6];
    const float mean[2] = {3, 0};
    fsb_features_normalise(y, x, 3, 2, FSB_NORM_L2N, NULL);
    ck_assert_float_eq_tol(y[0], 0.6f, 1e-7f);
    ck_assert_float_eq_tol(y[1], 0.8f, 1e-7f);
    ck_assert_float_eq(y[2], 0.0f);
    fsb_features_normalise(y, x, 1, 2, FSB_NORM_CL2N, mean);
    ck_assert_float_eq(y[0], 0.0f);
    ck_assert_float_eq(y[1], 1.0f);
    fsb_features_normalise(x, x, 3, 2, FSB_NORM_UN, NULL);
    ck_assert_float_eq(x[0], 3.0f);
}
END_TEST

START_TEST(nn_obvious)
{
    const float sup[] = {0, 0, 10, 0};
    const int lab[] = {0, 1};
    const float qry[] = {1, 0, 9, 0};
    fsb_episode_view ep = view(2, 1, 1, 2, sup, lab, qry);
    int pred[2];
    ck_assert_int_eq(run("1nn", FSB_NORM_UN, NULL, &ep, pred), FSB_OK);
    ck_assert_int_eq(pred[0], 0);
    ck_assert_int_eq(pred[1], 1);
    ck_assert_int_eq(run("protonet", FSB_NORM_UN, NULL, &ep, pred), FSB_OK);
    ck_assert_int_eq(pred[0], 0);
    ck_assert_int_eq(pred[1], 1);
}
END_TEST

/* Support s0 = (10, 0) class 0, s1 = (0, 1) class 1; base mean m = (1, 0).
 * q1 = (1, 0.2): UN  d2(s0) = 81.04, d2(s1) = 1.64            -> 1
 *                L2N q = (0.981, 0.196): d2((1,0)) = 0.04, d2((0,1)) = 1.61 -> 0
 *                CL2N s0 -> (1,0), s1 -> (-1,1)/sqrt2, q - m = (0, 0.2) -> (0, 1):
 *                     d2 = 2 vs 0.586                           -> 1
 * q2 = (3, 0.5): UN  49.25 vs 9.25 -> 1;  L2N (0.986, 0.164) -> 0;
 *                CL2N (2, 0.5) -> (0.970, 0.243): 0.06 vs 3.2    -> 0 */
START_TEST(norms_change_answers)
{
    const float sup[] = {10, 0, 0, 1};
    const int lab[] = {0, 1};
    const float qry[] = {1, 0.2f, 3, 0.5f};
    const float mean[] = {1, 0};
    fsb_episode_view ep = view(2, 1, 1, 2, sup, lab, qry);
    const int want[3][2] = {{1, 1}, {0, 0}, {1, 0}};
    const char *names[] = {"1nn", "protonet"};
    for (int k = 0; k < 2; k++)
        for (int norm = 0; norm < 3; norm++) {
            int pred[2] = {-1, -1};
            ck_assert_int_eq(run(names[k], norm, norm == FSB_NORM_CL2N ? mean : NULL, &ep, pred),
                             FSB_OK);
            ck_assert_int_eq(pred[0], want[norm][0]);
            ck_assert_int_eq(pred[1], want[norm][1]);
        }
}
END_TEST

/* Class 0: (0,0), (10,0) -> prototype (5,0); class 1: (7,4) twice -> prototype (7,4).
 * Query (9.5, 0.5): nearest example (10,0) d2 = 0.5 -> 1nn says 0; prototypes: d2 = 20.5
 * vs 18.5 -> protonet says 1. Support order is shuffled on purpose. */
START_TEST(prototype_vs_nearest)
{
    const float sup[] = {7, 4, 0, 0, 7, 4, 10, 0};
    const int lab[] = {1, 0, 1, 0};
    const float qry[] = {9.5f, 0.5f, 0, 1};
    fsb_episode_view ep = view(2, 2, 1, 2, sup, lab, qry);
    int pred[2];
    ck_assert_int_eq(run("1nn", FSB_NORM_UN, NULL, &ep, pred), FSB_OK);
    ck_assert_int_eq(pred[0], 0);
    ck_assert_int_eq(pred[1], 0);
    ck_assert_int_eq(run("protonet", FSB_NORM_UN, NULL, &ep, pred), FSB_OK);
    ck_assert_int_eq(pred[0], 1);
    ck_assert_int_eq(pred[1], 0);
}
END_TEST

/* Query (0,0) is equidistant from (-1,0) (index 0, class 1) and (1,0) (index 1, class 0):
 * 1nn takes the lowest support index (class 1); protonet the lowest class (0). */
START_TEST(ties_are_deterministic)
{
    const float sup[] = {-1, 0, 1, 0};
    const int lab[] = {1, 0};
    const float qry[] = {0, 0, 0, 0};
    fsb_episode_view ep = view(2, 1, 1, 2, sup, lab, qry);
    int pred[2];
    ck_assert_int_eq(run("1nn", FSB_NORM_UN, NULL, &ep, pred), FSB_OK);
    ck_assert_int_eq(pred[0], 1);
    ck_assert_int_eq(run("protonet", FSB_NORM_UN, NULL, &ep, pred), FSB_OK);
    ck_assert_int_eq(pred[0], 0);
    /* all-zero features give all-zero weights: every score ties, class 0 wins */
    const float zero[4] = {0, 0, 0, 0};
    ep = view(2, 1, 1, 2, zero, lab, zero);
    ck_assert_int_eq(run("svm", FSB_NORM_UN, NULL, &ep, pred), FSB_OK);
    ck_assert_int_eq(pred[0], 0);
}
END_TEST

/* 1-d, x = 2 (class 0) and x = 4 (class 1), UN, C = 1, bias feature 1 (regularised):
 * SVM  (squared hinge): min .5(w^2+b^2) + (1-(2w+b))^2 + (1+(4w+b))^2, both margins active:
 *      41w + 12b + 4 = 0, 5b + 12w = 0 -> w = -0.32787, b = 0.78689: boundary x = 2.4, so
 *      2.2 -> class 0 but 2.6 -> class 1 (1nn would say 0).
 * LR:  min .5(w^2+b^2) + log(1+e^-(2w+b)) + log(1+e^(4w+b)) (Newton by hand):
 *      w = -0.22652, b = 0.22211: boundary x = 0.9805, so 0.9 -> 0 but 1.1 and 2 -> 1. */
START_TEST(liblinear_tiny_by_hand)
{
    const float sup[] = {2, 4};
    const int lab[] = {0, 1};
    const fsb_method *svm = fsb_method_find("svm"), *lr = fsb_method_find("logreg");
    fsb_method_config cfg;
    fsb_rng rng;
    fsb_rng_init(&rng, 0, 0);
    {
        const float qry[] = {2.2f, 2.6f};
        fsb_episode_view ep = view(2, 1, 1, 1, sup, lab, qry);
        int pred[2];
        fsb_method_config_default(&cfg, svm);
        cfg.norm = FSB_NORM_UN;
        cfg.C = 1;
        cfg.eps = 1e-6;
        ck_assert_int_eq(svm->run(svm, &cfg, &ep, &arena, &rng, pred, NULL), FSB_OK);
        ck_assert_int_eq(pred[0], 0);
        ck_assert_int_eq(pred[1], 1);
        ck_assert_int_eq(run("1nn", FSB_NORM_UN, NULL, &ep, pred), FSB_OK);
        ck_assert_int_eq(pred[1], 0);
    }
    {
        const float qry[] = {0.9f, 1.1f, 2.0f, 0.5f};
        fsb_episode_view ep = view(2, 1, 2, 1, sup, lab, qry);
        int pred[4];
        fsb_method_config_default(&cfg, lr);
        cfg.norm = FSB_NORM_UN;
        cfg.C = 1; /* the hand computation's */
        cfg.eps = 1e-6;
        ck_assert_int_eq(lr->run(lr, &cfg, &ep, &arena, &rng, pred, NULL), FSB_OK);
        ck_assert_int_eq(pred[0], 0);
        ck_assert_int_eq(pred[1], 1);
        ck_assert_int_eq(pred[2], 1);
        ck_assert_int_eq(pred[3], 0);
    }
}
END_TEST

/* Gaussian clusters: way classes with means 4 * e_c (c-th axis), noise sd 0.3; n points of
 * each class are written in class order. */
static void clusters(float *x, int *y, int way, int n, int dim, fsb_rng *rng, int interleave)
{
    for (int c = 0; c < way; c++)
        for (int i = 0; i < n; i++) {
            int row = interleave ? i * way + c : c * n + i;
            for (int j = 0; j < dim; j++)
                x[(size_t)row * dim + j] =
                    (float)((j == c ? 4.0 : 0.0) + 0.3 * fsb_rng_normal(rng) + 0.5);
            if (y) y[row] = c;
        }
}

START_TEST(separable_clusters)
{
    enum { WAY = 5, SHOT = 5, QUERY = 15, DIM = 16 };
    float *sup = malloc(sizeof(float) * WAY * SHOT * DIM);
    float *qry = malloc(sizeof(float) * WAY * QUERY * DIM);
    int lab[WAY * SHOT], truth[WAY * QUERY], pred[WAY * QUERY];
    float mean[DIM];
    fsb_rng rng;
    fsb_rng_init(&rng, 42, 0);
    clusters(sup, lab, WAY, SHOT, DIM, &rng, 1);
    clusters(qry, truth, WAY, QUERY, DIM, &rng, 0);
    for (int j = 0; j < DIM; j++)
        mean[j] = 0.5f + (j < WAY ? 4.0f / WAY : 0.0f);
    fsb_episode_view ep = view(WAY, SHOT, QUERY, DIM, sup, lab, qry);
    const char *names[] = {"1nn", "protonet", "svm", "logreg"};
    for (int k = 0; k < 4; k++)
        for (int norm = 0; norm < 3; norm++) {
            ck_assert_int_eq(run(names[k], norm, mean, &ep, pred), FSB_OK);
            for (int q = 0; q < WAY * QUERY; q++)
                ck_assert_msg(pred[q] == truth[q], "%s norm %d query %d: %d != %d", names[k], norm,
                              q, pred[q], truth[q]);
        }
    free(sup);
    free(qry);
}
END_TEST

/* The same 1-d problem embedded along u = (0.6, 0, 0.8, 0, ...) in 8-d: the L2 objective is
 * rotation invariant, so the boundaries stay at x = 2.4 (svm) and 0.9805 (logreg). With 2
 * examples and 9 features this runs the subspace path (solve in the span of the rows). */
START_TEST(liblinear_subspace_by_hand)
{
    enum { DIM = 8 };
    const float u[DIM] = {0.6f, 0, 0.8f, 0, 0, 0, 0, 0};
    const float xs[2] = {2, 4}, xq[4] = {2.2f, 2.6f, 0.9f, 1.1f};
    float sup[2 * DIM], qry[4 * DIM];
    for (int j = 0; j < DIM; j++) {
        for (int i = 0; i < 2; i++)
            sup[i * DIM + j] = xs[i] * u[j];
        for (int i = 0; i < 4; i++)
            qry[i * DIM + j] = xq[i] * u[j];
    }
    const int lab[] = {0, 1};
    fsb_episode_view ep = view(2, 1, 2, DIM, sup, lab, qry);
    const char *names[] = {"svm", "logreg"};
    const int want[2][4] = {{0, 1, 0, 0}, {1, 1, 0, 1}};
    fsb_rng rng;
    fsb_rng_init(&rng, 0, 0);
    for (int k = 0; k < 2; k++) {
        const fsb_method *m = fsb_method_find(names[k]);
        fsb_method_config cfg;
        fsb_method_config_default(&cfg, m);
        cfg.norm = FSB_NORM_UN;
        cfg.C = 1; /* the hand computation's */
        cfg.eps = 1e-6;
        int pred[4];
        ck_assert_int_eq(m->run(m, &cfg, &ep, &arena, &rng, pred, NULL), FSB_OK);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(pred[i] == want[k][i], "%s query %d: %d", names[k], i, pred[i]);
    }
}
END_TEST

/* High-dimensional 1-shot and duplicated 2-shot episodes (rank-deficient support rows). */
START_TEST(subspace_separates_clusters)
{
    enum { WAY = 5, SHOT = 2, QUERY = 10, DIM = 64 };
    float *sup = malloc(sizeof(float) * WAY * SHOT * DIM);
    float *qry = malloc(sizeof(float) * WAY * QUERY * DIM);
    int lab[WAY * SHOT], truth[WAY * QUERY], pred[WAY * QUERY];
    fsb_rng rng;
    fsb_rng_init(&rng, 9, 0);
    clusters(sup, lab, WAY, SHOT, DIM, &rng, 0);
    clusters(qry, truth, WAY, QUERY, DIM, &rng, 0);
    for (int c = 0; c < WAY; c++) /* second support example = the first */
        memcpy(sup + (size_t)(c * SHOT + 1) * DIM, sup + (size_t)c * SHOT * DIM,
               sizeof(float) * DIM);
    const char *names[] = {"svm", "logreg"};
    for (int shot = 1; shot <= SHOT; shot++) {
        /* 1-shot: the first example of each class, rows 0, 2, 4, ... */
        float *s1 = malloc(sizeof(float) * WAY * DIM);
        int l1[WAY];
        for (int c = 0; c < WAY; c++) {
            memcpy(s1 + (size_t)c * DIM, sup + (size_t)c * SHOT * DIM, sizeof(float) * DIM);
            l1[c] = c;
        }
        fsb_episode_view ep = shot == 1 ? view(WAY, 1, QUERY, DIM, s1, l1, qry)
                                        : view(WAY, SHOT, QUERY, DIM, sup, lab, qry);
        for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(run(names[k], FSB_NORM_L2N, NULL, &ep, pred), FSB_OK);
            for (int q = 0; q < WAY * QUERY; q++)
                ck_assert_msg(pred[q] == truth[q], "%s shot %d query %d", names[k], shot, q);
        }
        free(s1);
    }
    free(sup);
    free(qry);
}
END_TEST

START_TEST(bad_episodes)
{
    const float sup[] = {0, 1};
    int lab[] = {0, 2};
    const float qry[] = {0, 1};
    fsb_episode_view ep = view(2, 1, 1, 1, sup, lab, qry);
    int pred[2];
    ck_assert_int_eq(run("1nn", FSB_NORM_UN, NULL, &ep, pred), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "label 2 out of range"));
    lab[1] = 0; /* class 1 has no support example */
    ck_assert_int_eq(run("svm", FSB_NORM_UN, NULL, &ep, pred), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "class 0 has 2 support examples"));
    lab[1] = 1;
    ck_assert_int_eq(run("1nn", FSB_NORM_CL2N, NULL, &ep, pred), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "cl2n needs the base-class mean"));
    ep.n_query = 3;
    ck_assert_int_eq(run("protonet", FSB_NORM_UN, NULL, &ep, pred), FSB_EINVAL);
    ep.n_query = 2;
    ep.query_feat = NULL;
    ck_assert_int_eq(run("logreg", FSB_NORM_UN, NULL, &ep, pred), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "needs features"));
    /* a one-class episode is answered without training */
    const int one[] = {0};
    fsb_episode_view ep1 = view(1, 1, 1, 1, sup, one, qry);
    pred[0] = 7;
    ck_assert_int_eq(run("svm", FSB_NORM_UN, NULL, &ep1, pred), FSB_OK);
    ck_assert_int_eq(pred[0], 0);
    /* C must be positive */
    const fsb_method *m = fsb_method_find("svm");
    fsb_method_config cfg;
    fsb_method_config_default(&cfg, m);
    cfg.C = 0;
    ep.query_feat = qry;
    ck_assert_int_eq(m->run(m, &cfg, &ep, &arena, NULL, pred, NULL), FSB_EINVAL);
}
END_TEST

/* feat's predictions are the argmax of FEAT's eval-mode logits computed by featloss.h (tested
 * against PyTorch): an independent path; without a block the method is refused. */
START_TEST(feat_is_the_nearest_adapted_prototype)
{
    enum { W = 4, K = 2, Q = 3, D = 16 };
    fsb_rng rng;
    fsb_rng_init(&rng, 11, 0);
    float emb[W * (K + Q) * D];
    for (int i = 0; i < W * (K + Q) * D; i++)
        emb[i] = (float)fsb_rng_normal(&rng);
    int lab[W * K];
    for (int i = 0; i < W * K; i++)
        lab[i] = i / K; /* label-major, as featloss.h lays an episode out */
    fsb_method_feat_block blk;
    float *mem = malloc(sizeof(float) * (size_t)fsb_feat_attn_n_params(D));
    fsb_feat_attn_bind(&blk.params, mem, D);
    fsb_feat_attn_init(&blk.params, D, &rng);
    blk.dim = D;
    const fsb_method *m = fsb_method_find("feat");
    ck_assert_ptr_nonnull(m);
    fsb_method_config cfg;
    fsb_method_config_default(&cfg, m);
    ck_assert_int_eq(cfg.norm, FSB_NORM_UN);
    fsb_episode_view ep = view(W, K, Q, D, emb, lab, emb + W * K * D);
    fsb_arena ar;
    ck_assert_int_eq(fsb_arena_init(&ar, 1 << 20), FSB_OK);
    int pred[W * Q];
    ck_assert_int_eq(m->run(m, &cfg, &ep, &ar, NULL, pred, NULL), FSB_EINVAL); /* no block */
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "FEAT"));
    cfg.extra = &blk;
    ck_assert_int_eq(m->run(m, &cfg, &ep, &ar, NULL, pred, NULL), FSB_OK);
    float *wmem = malloc(sizeof(float) * (size_t)fsb_featloss_work_floats(W, K, Q, D));
    fsb_featloss_work w;
    fsb_featloss_work_bind(&w, wmem, W, K, Q, D);
    fsb_featloss_cfg fc = {.temperature = 64, .temperature2 = 16, .balance = 0, .train = 0};
    fsb_featloss(emb, W, K, Q, D, &blk.params, &fc, NULL, NULL, NULL, NULL, NULL, &w);
    int differ = 0;
    for (int i = 0; i < W * Q; i++) {
        int best = 0;
        for (int c = 1; c < W; c++)
            if (w.logits[(size_t)i * W + c] > w.logits[(size_t)i * W + best]) best = c;
        differ += best != pred[i];
    }
    ck_assert_int_eq(differ, 0);
    free(wmem), free(mem);
    fsb_arena_free(&ar);
}
END_TEST

/* Many overlapping random episodes, run serially and on a 3-thread pool: same predictions. */
enum { DET_EPISODES = 24, DET_WAY = 5, DET_SHOT = 3, DET_QUERY = 6, DET_DIM = 40 };

typedef struct {
    const fsb_method *m;
    float *sup, *qry;
    int *lab;
    int *pred; /* [DET_EPISODES][DET_WAY * DET_QUERY] */
    fsb_arena arenas[3];
    int status[DET_EPISODES];
    fsb_method_feat_block feat; /* a random attention block for the feat method */
} det_ctx;

static void det_task(void *vctx, int e, int worker)
{
    det_ctx *c = vctx;
    fsb_method_config cfg;
    fsb_method_config_default(&cfg, c->m);
    cfg.norm = FSB_NORM_L2N;
    cfg.extra = strcmp(c->m->name, "feat") ? NULL : &c->feat;
    fsb_episode_view ep = view(DET_WAY, DET_SHOT, DET_QUERY, DET_DIM,
                               c->sup + (size_t)e * DET_WAY * DET_SHOT * DET_DIM, c->lab,
                               c->qry + (size_t)e * DET_WAY * DET_QUERY * DET_DIM);
    ep.episode = e;
    fsb_rng rng;
    fsb_rng_init(&rng, 0, (uint64_t)e);
    c->status[e] = c->m->run(c->m, &cfg, &ep, &c->arenas[worker], &rng,
                             c->pred + (size_t)e * DET_WAY * DET_QUERY, NULL);
}

START_TEST(same_predictions_on_any_thread)
{
    det_ctx c;
    memset(&c, 0, sizeof c);
    fsb_rng rng;
    fsb_rng_init(&rng, 7, 0);
    c.sup = malloc(sizeof(float) * DET_EPISODES * DET_WAY * DET_SHOT * DET_DIM);
    c.qry = malloc(sizeof(float) * DET_EPISODES * DET_WAY * DET_QUERY * DET_DIM);
    c.lab = malloc(sizeof(int) * DET_WAY * DET_SHOT);
    for (size_t i = 0; i < (size_t)DET_EPISODES * DET_WAY * DET_SHOT * DET_DIM; i++)
        c.sup[i] = (float)fsb_rng_normal(&rng);
    for (size_t i = 0; i < (size_t)DET_EPISODES * DET_WAY * DET_QUERY * DET_DIM; i++)
        c.qry[i] = (float)fsb_rng_normal(&rng);
    for (int i = 0; i < DET_WAY * DET_SHOT; i++)
        c.lab[i] = i % DET_WAY;
    size_t np = (size_t)DET_EPISODES * DET_WAY * DET_QUERY;
    int *serial = malloc(sizeof(int) * np);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(fsb_arena_init(&c.arenas[i], 16 << 20), FSB_OK);
    float *block = malloc(sizeof(float) * (size_t)fsb_feat_attn_n_params(DET_DIM));
    fsb_feat_attn_bind(&c.feat.params, block, DET_DIM);
    fsb_feat_attn_init(&c.feat.params, DET_DIM, &rng);
    c.feat.dim = DET_DIM;
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 3), FSB_OK);
    for (int k = 0; k < fsb_method_count(); k++) {
        c.m = fsb_method_at(k);
        if (!(c.m->needs & FSB_NEEDS_FEATURES))
            continue; /* training methods: tests/test_student.c */
        c.pred = serial;
        fsb_pool_run(NULL, DET_EPISODES, det_task, &c);
        for (int rep = 0; rep < 3; rep++) {
            c.pred = malloc(sizeof(int) * np);
            fsb_pool_run(pool, DET_EPISODES, det_task, &c);
            for (int e = 0; e < DET_EPISODES; e++)
                ck_assert_int_eq(c.status[e], FSB_OK);
            ck_assert_msg(memcmp(c.pred, serial, sizeof(int) * np) == 0, "%s differs", c.m->name);
            free(c.pred);
        }
        /* random features are hard: the methods do not all agree with each other */
    }
    fsb_pool_destroy(pool);
    for (int i = 0; i < 3; i++)
        fsb_arena_free(&c.arenas[i]);
    free(serial);
    free(block);
    free(c.sup);
    free(c.qry);
    free(c.lab);
}
END_TEST

/* Predictions of method m at shot K from a perf-methods dump (malloc'd copy as int64). */
static int64_t *dump_pred(const char *path, const char *key, size_t *n)
{
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_int_eq(fsb_tensorfile_load(&tf, path), FSB_OK);
    const fsb_tensor *t = fsb_tensorfile_get(&tf, key);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, FSB_I64);
    int64_t *copy = malloc(t->numel * sizeof *copy);
    memcpy(copy, t->data, t->numel * sizeof *copy);
    *n = t->numel;
    fsb_tensorfile_free(&tf);
    return copy;
}

/* `bench perf-methods` on a tiny feature file: runs, dumps, gives the same predictions on 1
 * and 3 threads, and the dumped 1nn predictions match a direct run on the dumped episode. */
START_TEST(perf_methods_cli)
{
    enum { CLASSES = 6, PER = 12, DIM = 8 };
    char *dir = tu_tmpdir();
    char *feat = tu_path(dir, "f.fsbt"), *d1 = tu_path(dir, "d1.fsbt"),
         *d3 = tu_path(dir, "d3.fsbt");
    float *x = malloc(sizeof(float) * CLASSES * PER * DIM);
    int64_t labels[CLASSES * PER];
    fsb_rng rng;
    fsb_rng_init(&rng, 3, 0);
    for (int i = 0; i < CLASSES * PER; i++) {
        labels[i] = 100 + (i % CLASSES) * 7; /* any ids, interleaved */
        for (int j = 0; j < DIM; j++)
            x[i * DIM + j] = (float)((j == i % CLASSES ? 1.5 : 0.0) + fsb_rng_normal(&rng));
    }
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    int64_t dims[2] = {CLASSES * PER, DIM};
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "features", FSB_F32, 2, dims, x), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "labels", FSB_I64, 1, dims, labels), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_save(&tf, feat), FSB_OK);
    fsb_tensorfile_free(&tf);
    char *out = NULL;
    const char *common = "--episodes 7 --shots 1,3 --way 3 --query 4";
    ck_assert_int_eq(tu_run(&out, "'%s' perf-methods --features '%s' %s --threads 1 --dump '%s'",
                            tu_bench(), feat, common, d1),
                     0);
    ck_assert_msg(strstr(out, "wall time") != NULL, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "svm "));
    free(out);
    char *rep = tu_path(dir, "run");
    ck_assert_int_eq(tu_run(&out,
                            "'%s' perf-methods --features '%s' %s --threads 3 --dump '%s' "
                            "--report '%s'",
                            tu_bench(), feat, common, d3, rep),
                     0);
    free(out);
    /* the report: header + 4 methods x 2 shots x 7 episodes rows, and a table */
    ck_assert_int_eq(tu_run(&out, "wc -l < '%s/per_episode.csv'", rep), 0);
    ck_assert_int_eq(atoi(out), 1 + 4 * 2 * 7);
    free(out);
    /* the header and the 4 methods; the paper's rows the run lacks are marked */
    ck_assert_int_eq(tu_run(&out, "grep '^| ' '%s/table.md' | grep -vc 'not run here'", rep), 0);
    ck_assert_int_eq(atoi(out), 1 + 4);
    free(out);
    free(rep);
    const char *keys[] = {"K1.pred.1nn",    "K3.pred.protonet", "K3.pred.svm",
                          "K1.pred.logreg", "K3.support",       "K3.query"};
    for (int k = 0; k < 6; k++) {
        size_t n1, n3;
        int64_t *p1 = dump_pred(d1, keys[k], &n1), *p3 = dump_pred(d3, keys[k], &n3);
        ck_assert_uint_eq(n1, n3);
        ck_assert_msg(memcmp(p1, p3, n1 * sizeof *p1) == 0, "%s differs", keys[k]);
        free(p1);
        free(p3);
    }
    /* episode 2 at 3-shot: rebuild it from the dump and run protonet directly */
    size_t ns, nq, np;
    int64_t *sup = dump_pred(d1, "K3.support", &ns), *qry = dump_pred(d1, "K3.query", &nq);
    int64_t *pp = dump_pred(d1, "K3.pred.protonet", &np);
    ck_assert_uint_eq(ns, 7 * 9);
    ck_assert_uint_eq(nq, 7 * 12);
    float sf[9 * DIM], qf[12 * DIM];
    int lab[9], pred[12];
    for (int i = 0; i < 9; i++) {
        memcpy(sf + i * DIM, x + sup[2 * 9 + i] * DIM, sizeof(float) * DIM);
        lab[i] = i / 3;
        /* class-major: the 3 support rows of episode class c share one file label */
        ck_assert_int_eq(labels[sup[2 * 9 + i]], labels[sup[2 * 9 + (i / 3) * 3]]);
    }
    for (int i = 0; i < 12; i++)
        memcpy(qf + i * DIM, x + qry[2 * 12 + i] * DIM, sizeof(float) * DIM);
    fsb_episode_view ep = view(3, 3, 4, DIM, sf, lab, qf);
    ck_assert_int_eq(run("protonet", -1, NULL, &ep, pred), FSB_OK);
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(pred[i], pp[2 * 12 + i]);
    free(sup);
    free(qry);
    free(pp);
    /* errors name the flag */
    ck_assert_int_eq(
        tu_run(&out, "'%s' perf-methods --features '%s' --methods 1nn,knn", tu_bench(), feat), 2);
    ck_assert_ptr_nonnull(strstr(out, "--methods: unknown method 'knn'"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' perf-methods --episodes 5", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "--features"));
    free(out);
    ck_assert_int_eq(
        tu_run(&out, "'%s' perf-methods --features '%s' --shots 1,20", tu_bench(), feat), 2);
    ck_assert_ptr_nonnull(strstr(out, "cannot give 5-way episodes"));
    free(out);
    free(x);
    free(feat);
    free(d1);
    free(d3);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("baselines");
    TCase *tc = tcase_create("baselines");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, table_lookup);
    tcase_add_test(tc, feat_is_the_nearest_adapted_prototype);
    tcase_add_test(tc, normalise_by_hand);
    tcase_add_test(tc, nn_obvious);
    tcase_add_test(tc, norms_change_answers);
    tcase_add_test(tc, prototype_vs_nearest);
    tcase_add_test(tc, ties_are_deterministic);
    tcase_add_test(tc, liblinear_tiny_by_hand);
    tcase_add_test(tc, separable_clusters);
    tcase_add_test(tc, liblinear_subspace_by_hand);
    tcase_add_test(tc, subspace_separates_clusters);
    tcase_add_test(tc, bad_episodes);
    tcase_add_test(tc, same_predictions_on_any_thread);
    tcase_add_test(tc, perf_methods_cli);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
