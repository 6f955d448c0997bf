/* test_maml.c - MAML's meta-gradient (src/maml.c) on a tiny ConvNet-4 (widths 4, 16x16 inputs,
 * the smallest the engine takes; flattened embedding, 3-way head), 3-way 2-shot episodes
 * with 2 queries per class: zero steps = the query gradient, first order = the gradient at
 * theta_k, second order against central differences of the whole unrolled computation,
 * frozen blocks, the model left as found, bits independent of the thread count, errors.
 */
#include "fsb/layers.h"
#include "fsb/maml.h"
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/threads.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAY 3
#define SHOT 2
#define QUERY 2
#define NS (WAY * SHOT)
#define NQ (WAY * QUERY)
#define HW 16
#define IMG (3 * HW * HW)

typedef struct task {
    float sx[NS * IMG]; /* support images, label-major */
    float qx[NQ * IMG]; /* query images */
    int sy[NS], qy[NQ]; /* labels */
} task;

/* Images N(0,1) plus a class pattern N(0,1)/2 shared by the class's images. */
static task *task_make(uint64_t seed)
{
    task *t = malloc(sizeof *t);
    fsb_rng r;
    fsb_rng_init(&r, seed, 0);
    float pat[WAY][IMG];
    for (int c = 0; c < WAY; c++)
        for (int i = 0; i < IMG; i++)
            pat[c][i] = 0.5f * (float)fsb_rng_normal(&r);
    for (int j = 0; j < NS + NQ; j++) {
        int q = j >= NS, c = q ? (j - NS) / QUERY : j / SHOT;
        float *x = q ? t->qx + (long)(j - NS) * IMG : t->sx + (long)j * IMG;
        for (int i = 0; i < IMG; i++)
            x[i] = (float)fsb_rng_normal(&r) + pat[c][i];
        if (q)
            t->qy[j - NS] = c;
        else
            t->sy[j] = c;
    }
    return t;
}

static fsb_model *tiny(fsb_pool *pool, uint64_t seed)
{
    fsb_model_opts o;
    fsb_model_opts_default(&o, FSB_ARCH_CONV4);
    for (int i = 0; i < 4; i++)
        o.widths[i] = 4;
    o.in_hw = HW;
    o.flatten = 1;
    fsb_rng r;
    fsb_rng_init(&r, seed, 1);
    fsb_model *m;
    ck_assert_int_eq(fsb_model_create(&m, &o, WAY, NS > NQ ? NS : NQ, pool, &r), FSB_OK);
    return m;
}

static fsb_maml_opts opts(int k, int first_order, double hvp_eps)
{
    fsb_maml_opts o;
    fsb_maml_opts_default(&o);
    o.inner_steps = k;
    o.first_order = first_order;
    o.hvp_eps = hvp_eps;
    return o;
}

static float *param_copy(fsb_model *m)
{
    long n;
    const float *p = fsb_model_params(m, &n);
    float *c = malloc(sizeof(float) * (size_t)n);
    memcpy(c, p, sizeof(float) * (size_t)n);
    return c;
}

/* The unrolled computation written out with the model's own calls: k steps p -= lr * g of
 * the support loss (trainable suffix), then the query loss at theta_k, returned; its
 * gradient (whole array) into gq and the logits into lq when not NULL. Parameters put back. */
static double unrolled(fsb_model *m, const task *t, int k, float lr, float *gq, float *lq)
{
    long n, off = fsb_model_trainable_offset(m);
    float *p = fsb_model_params(m, &n), *save = param_copy(m);
    const float *g = fsb_model_grads(m, &n), *lg;
    for (int s = 0; s < k; s++) {
        fsb_model_train_step(m, t->sx, t->sy, NS, NULL, NULL);
        for (long i = off; i < n; i++)
            p[i] -= lr * g[i];
    }
    double l = fsb_model_train_step(m, t->qx, t->qy, NQ, NULL, &lg);
    if (gq) memcpy(gq, g, sizeof(float) * (size_t)n);
    if (lq) memcpy(lq, lg, sizeof(float) * NQ * WAY);
    memcpy(p, save, sizeof(float) * (size_t)n);
    free(save);
    return l;
}

START_TEST(zero_steps_is_the_query_gradient)
{
    fsb_model *m = tiny(NULL, 3);
    task *t = task_make(30);
    long n;
    fsb_model_params(m, &n);
    float *want = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    float lq[NQ * WAY], lp[NQ * WAY];
    double l = unrolled(m, t, 0, 0.01f, want, lq);
    fsb_maml_work w;
    ck_assert_int_eq(fsb_maml_work_init(&w, m, 0), FSB_OK);
    for (int fo = 0; fo <= 1; fo++) {
        fsb_maml_opts o = opts(0, fo, 1e-3);
        double ql = -1;
        int correct = -1, pred[NQ], want_correct = 0;
        ck_assert_int_eq(
            fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, got, &ql, &correct, &w),
            FSB_OK);
        ck_assert(memcmp(got, want, sizeof(float) * (size_t)n) == 0);
        ck_assert(ql == l);
        ck_assert_int_eq(fsb_maml_adapt_predict(m, t->sx, t->sy, NS, t->qx, NQ, &o, lp, pred, &w),
                         FSB_OK);
        ck_assert(memcmp(lp, lq, sizeof lq) == 0);
        for (int i = 0; i < NQ; i++) {
            int b = 0;
            for (int c = 1; c < WAY; c++)
                b = lq[i * WAY + c] > lq[i * WAY + b] ? c : b;
            ck_assert_int_eq(pred[i], b);
            want_correct += b == t->qy[i];
        }
        ck_assert_int_eq(correct, want_correct);
    }
    fsb_maml_work_free(&w);
    free(want), free(got), free(t);
    fsb_model_destroy(m);
}
END_TEST

START_TEST(first_order_is_the_gradient_at_theta_k)
{
    fsb_model *m = tiny(NULL, 4);
    task *t = task_make(40);
    long n;
    fsb_model_params(m, &n);
    float *want = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    fsb_maml_work w;
    ck_assert_int_eq(fsb_maml_work_init(&w, m, 10), FSB_OK);
    for (int k = 1; k <= 10; k += 4) {
        float lq[NQ * WAY], lp[NQ * WAY];
        double l = unrolled(m, t, k, 0.01f, want, lq), ql;
        fsb_maml_opts o = opts(k, 1, 1e-3);
        ck_assert_int_eq(
            fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, got, &ql, NULL, &w),
            FSB_OK);
        ck_assert(memcmp(got, want, sizeof(float) * (size_t)n) == 0);
        ck_assert(ql == l);
        ck_assert_int_eq(fsb_maml_adapt_predict(m, t->sx, t->sy, NS, t->qx, NQ, &o, lp, NULL, &w),
                         FSB_OK);
        ck_assert(memcmp(lp, lq, sizeof lq) == 0);
    }
    /* the steps do something: the support loss falls over 10 steps */
    ck_assert_double_lt(unrolled(m, t, 10, 0.5f, NULL, NULL), unrolled(m, t, 0, 0.5f, NULL, NULL));
    fsb_maml_work_free(&w);
    free(want), free(got), free(t);
    fsb_model_destroy(m);
}
END_TEST

/* One directional check of G against the unrolled computation F. Along the unit direction
 * d, F(theta + h d) - F(theta - h d) for h = s and s/2 (the perturbed parameters rounded to
 * float; G is dotted with the ACTUAL float difference, so rounding the steps costs
 * nothing). "Double-checked": the two central differences must agree (slope units) within
 * agree, else a kink lies within s (F is only piecewise smooth: a max-pool winner or ReLU
 * that flips changes the inner gradients, so theta_k jumps) and the direction is skipped (0
 * returned). Otherwise *err = |num - G.diff| / (2h |G|) at h = s/2 and *slope = num/(2h). */
static int dir_check(fsb_model *m, const task *t, int k, float lr, const double *d, double s,
                     double agree, const float *G, double *err, double *slope)
{
    long n, off = fsb_model_trainable_offset(m);
    float *p = fsb_model_params(m, &n), *save = param_copy(m);
    double gn = 0, num[2], ana[2];
    for (long i = off; i < n; i++)
        gn += (double)G[i] * G[i];
    for (int j = 0; j < 2; j++) {
        double h = j ? s / 2 : s, fp, fm;
        ana[j] = 0;
        for (long i = off; i < n; i++)
            p[i] = (float)(save[i] + h * d[i]);
        fp = unrolled(m, t, k, lr, NULL, NULL);
        for (long i = off; i < n; i++) {
            float plus = p[i];
            p[i] = (float)(save[i] - h * d[i]);
            ana[j] += (double)G[i] * ((double)plus - p[i]);
        }
        fm = unrolled(m, t, k, lr, NULL, NULL);
        num[j] = (fp - fm) / (2 * h);
        ana[j] /= 2 * h;
        memcpy(p, save, sizeof(float) * (size_t)n);
    }
    free(save);
    if (fabs(num[0] - num[1]) > agree * sqrt(gn)) return 0;
    *err = fabs(num[1] - ana[1]) / sqrt(gn);
    *slope = num[1];
    return 1;
}

/* A unit direction over the trainable suffix: N(0,1) draws, or x - y when x is given. */
static void direction(double *d, long off, long n, uint64_t seed, const float *x, const float *y)
{
    fsb_rng r;
    fsb_rng_init(&r, seed, 2);
    double s = 0;
    for (long i = 0; i < n; i++) {
        d[i] = i < off ? 0 : x ? (double)x[i] - y[i] : fsb_rng_normal(&r);
        s += d[i] * d[i];
    }
    for (long i = 0; i < n; i++)
        d[i] /= sqrt(s);
}

static double norm(const float *x, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

/* Second-order G against dir_check for one model and task, in 4 random directions and in
 * the direction of the second-order term G - G_fo (where first order is off by |G - G_fo|,
 * so the check must tell them apart). The HVPs are double-checked too: G at hvp_eps and at
 * 2 hvp_eps must agree within `agree` |G|, else an HVP crossed a kink (the gradient jumps
 * there, and its difference quotient is no Hessian) and the task is skipped (-1 returned).
 * Else returns the number of directions checked, *worst the largest error. */
static int second_order_task(uint64_t seed, fsb_adapt adapt, int k, float lr, double hvp_eps,
                             double s, double agree, double tol, double *worst)
{
    fsb_model *m = tiny(NULL, seed);
    fsb_model_set_adapt(m, adapt);
    task *t = task_make(seed * 10);
    long n, off = fsb_model_trainable_offset(m);
    const float *p = fsb_model_params(m, &n);
    float *G = malloc(sizeof(float) * (size_t)n), *F1 = malloc(sizeof(float) * (size_t)n);
    float *G2 = malloc(sizeof(float) * (size_t)n);
    double *d = malloc(sizeof(double) * (size_t)n), err, slope;
    fsb_maml_work w;
    ck_assert_int_eq(fsb_maml_work_init(&w, m, k), FSB_OK);
    fsb_maml_opts o = opts(k, 0, hvp_eps);
    o.inner_lr = lr;
    float *out[3] = {G, G2, F1};
    for (int j = 0; j < 3; j++) {
        o.hvp_eps = j == 1 ? 2 * hvp_eps : hvp_eps;
        o.first_order = j == 2;
        ck_assert_int_eq(
            fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, out[j], NULL, NULL, &w),
            FSB_OK);
    }
    double gn = norm(G + off, n - off), dh = 0, so_part = 0; /* |G - G_fo| / |G| */
    for (long i = off; i < n; i++) {
        dh += ((double)G[i] - G2[i]) * ((double)G[i] - G2[i]);
        so_part += ((double)G[i] - F1[i]) * ((double)G[i] - F1[i]);
    }
    so_part = sqrt(so_part) / gn;
    int passed = sqrt(dh) > agree * gn ? -1 : 0;
    double sc = s * (1 + norm(p + off, n - off));
    *worst = 0;
    for (int j = 0; j < 5 && passed >= 0; j++) {
        direction(d, off, n, 100 + j, j == 4 ? G : NULL, F1);
        if (!dir_check(m, t, k, lr, d, sc, agree, G, &err, &slope)) continue;
        passed++;
        *worst = err > *worst ? err : *worst;
        double fo = 0;
        for (long i = off; i < n; i++)
            fo += F1[i] * d[i];
        ck_assert_msg(err <= tol, "seed %d k=%d dir %d: error %g > %g", (int)seed, k, j, err, tol);
        if (j == 4) ck_assert_double_gt(fabs(fo - slope) / gn, 10 * tol);
    }
    if (passed >= 0) ck_assert_double_gt(so_part, 10 * tol); /* the Hessian terms matter */
    fsb_maml_work_free(&w);
    free(G), free(G2), free(F1), free(d), free(t);
    fsb_model_destroy(m);
    return passed;
}

static void second_order_vs_fd(fsb_adapt adapt, int k, float lr, double hvp_eps, double s,
                               double agree, double tol)
{
    int tasks = 0, dirs = 0, skipped = 0;
    double worst = 0, e;
    for (uint64_t seed = 1; seed <= 40 && tasks < 4; seed++) {
        int np = second_order_task(seed, adapt, k, lr, hvp_eps, s, agree, tol, &e);
        skipped += np < 0;
        if (np < 3) continue;
        tasks++, dirs += np;
        worst = e > worst ? e : worst;
    }
    fprintf(stderr, "maml %s k=%d: %d tasks (%d skipped), %d directions, worst error %.2e\n",
            adapt == FSB_ADAPT_ALL ? "all" : "head", k, tasks, skipped, dirs, worst);
    ck_assert_int_eq(tasks, 4);
}

/* The whole network, k = 1, 2, 5, MAML's alpha 0.01, hvp_eps 5e-6 (inside the tiny net's
 * plateau, see maml.h), unrolled differences at steps 1e-5 and 5e-6 (1 + |theta|).
 * Tolerance 3e-3 of |G|: the reference's float32 round-off, ~1e-7 (loss ~1.1) over a step
 * of ~6e-5, is ~2e-3 in slope, 1e-4 .. 1e-3 of |G| (5 .. 30 here); the HVP's own round-off
 * is ~0.3% of alpha |H v|, itself ~10% of |G|. Measured: <= 9e-4. First order is off by
 * 0.15 .. 0.3 of |G| along the second-order term (asserted > 10x the tolerance). */
START_TEST(second_order_matches_unrolled_differences)
{
    int ks[3] = {1, 2, 5};
    for (int i = 0; i < 3; i++)
        second_order_vs_fd(FSB_ADAPT_ALL, ks[i], 0.01f, 5e-6, 1e-5, 1e-3, 3e-3);
}
END_TEST

/* ---- head only: a smooth function, and an exact reference in double ------------------ */

/* Mean cross-entropy of the linear head (W (C,D), b (C)) on fixed embeddings E (n,D): the
 * gradient (gW, gb) and, when vW is not NULL, the Hessian-vector product (hW, hb) with
 * (vW, vb): dz = vW x + vb, dp = p * (dz - p.dz), H v = (dp x^T, dp) / n. */
static void head_exact(const double *W, const double *b, const double *E, const int *y, int n,
                       int D, double *gW, double *gb, const double *vW, const double *vb,
                       double *hW, double *hb)
{
    memset(gW, 0, sizeof(double) * WAY * D), memset(gb, 0, sizeof(double) * WAY);
    if (vW) memset(hW, 0, sizeof(double) * WAY * D), memset(hb, 0, sizeof(double) * WAY);
    for (int i = 0; i < n; i++) {
        const double *x = E + (long)i * D;
        double z[WAY], pr[WAY], mx = -INFINITY, sum = 0, dz[WAY], pdz = 0;
        for (int c = 0; c < WAY; c++) {
            z[c] = b[c];
            for (int j = 0; j < D; j++)
                z[c] += W[c * D + j] * x[j];
            mx = z[c] > mx ? z[c] : mx;
        }
        for (int c = 0; c < WAY; c++)
            sum += pr[c] = exp(z[c] - mx);
        for (int c = 0; c < WAY; c++) {
            pr[c] /= sum;
            double e = (pr[c] - (c == y[i])) / n;
            gb[c] += e;
            for (int j = 0; j < D; j++)
                gW[c * D + j] += e * x[j];
        }
        if (!vW) continue;
        for (int c = 0; c < WAY; c++) {
            dz[c] = vb[c];
            for (int j = 0; j < D; j++)
                dz[c] += vW[c * D + j] * x[j];
            pdz += pr[c] * dz[c];
        }
        for (int c = 0; c < WAY; c++) {
            double dp = pr[c] * (dz[c] - pdz) / n;
            hb[c] += dp;
            for (int j = 0; j < D; j++)
                hW[c * D + j] += dp * x[j];
        }
    }
}

/* The MAML meta-gradient of the head alone, exactly (analytic HVPs), in double: the
 * recursion of maml.h's top comment. th (P = C*D + C, fc.weight then fc.bias) is theta. */
static void head_maml_exact(const double *th, const double *Es, const int *sy, const double *Eq,
                            const int *qy, int D, int k, double lr, double *G)
{
    int P = WAY * D + WAY;
    double *ts = malloc(sizeof(double) * (size_t)P * (k + 1)), *g = malloc(sizeof(double) * P);
    double *h = malloc(sizeof(double) * P);
    memcpy(ts, th, sizeof(double) * P);
    for (int t = 0; t < k; t++) {
        double *a = ts + (long)t * P, *nx = a + P;
        head_exact(a, a + WAY * D, Es, sy, NS, D, g, g + WAY * D, NULL, NULL, NULL, NULL);
        for (int i = 0; i < P; i++)
            nx[i] = a[i] - lr * g[i];
    }
    double *tk = ts + (long)k * P;
    head_exact(tk, tk + WAY * D, Eq, qy, NQ, D, G, G + WAY * D, NULL, NULL, NULL, NULL);
    for (int t = k - 1; t >= 0; t--) {
        double *a = ts + (long)t * P;
        head_exact(a, a + WAY * D, Es, sy, NS, D, g, g + WAY * D, G, G + WAY * D, h, h + WAY * D);
        for (int i = 0; i < P; i++)
            G[i] -= lr * h[i];
    }
    free(ts), free(g), free(h);
}

static double *embed_d(fsb_model *m, const float *x, int n)
{
    int D = fsb_model_embed_dim(m);
    float *e = malloc(sizeof(float) * (size_t)n * D);
    ck_assert_int_eq(fsb_model_embed(m, x, n, e), FSB_OK);
    double *ed = malloc(sizeof(double) * (size_t)n * D);
    for (long i = 0; i < (long)n * D; i++)
        ed[i] = e[i];
    free(e);
    return ed;
}

/* Head only (frozen blocks run in eval mode, so theta -> L_q(theta_k) is smooth): frozen
 * entries of G are 0, and G matches the unrolled differences and the exact double-precision
 * meta-gradient. Tolerances: in a smooth function the central-difference HVP errs by its
 * truncation, ~ (r |v|)^2 |third derivative| / 6, i.e. ~ hvp_eps^2 relative (measured 1e-5 ..
 * 3e-5 of |G| at the default 1e-2, 1e-6 .. 3e-6 at 3e-3: the factor (10/3)^2 of that model);
 * the unrolled differences (step 5e-4 (1+|theta|)) add the float32 round-off of the loss,
 * ~1e-7 / 1e-3 in slope. Each tolerance is 3-10x the measured error. */
START_TEST(head_only_matches_exact_double)
{
    int ks[3] = {1, 2, 5};
    float lr = 0.5f; /* large, so that the Hessian terms are a good part of G */
    fsb_maml_opts def;
    fsb_maml_opts_default(&def);
    for (int i = 0; i < 3; i++)
        second_order_vs_fd(FSB_ADAPT_HEAD, ks[i], lr, def.hvp_eps, 1e-3, 1e-4, 3e-4);
    fsb_model *m = tiny(NULL, 6);
    task *t = task_make(60);
    fsb_model_set_adapt(m, FSB_ADAPT_HEAD);
    long n, off = fsb_model_trainable_offset(m);
    const float *p = fsb_model_params(m, &n);
    int D = fsb_model_embed_dim(m), P = (int)(n - off);
    ck_assert_int_eq(P, WAY * D + WAY);
    double *Es = embed_d(m, t->sx, NS), *Eq = embed_d(m, t->qx, NQ);
    double *th = malloc(sizeof(double) * P), *Gx = malloc(sizeof(double) * P);
    float *G = malloc(sizeof(float) * (size_t)n);
    for (int j = 0; j < P; j++)
        th[j] = p[off + j];
    fsb_maml_work w;
    ck_assert_int_eq(fsb_maml_work_init(&w, m, 5), FSB_OK);
    double eps[2] = {def.hvp_eps, 3e-3}, tol[2] = {1e-4, 1e-5};
    for (int i = 0; i < 6; i++) {
        fsb_maml_opts o = opts(ks[i % 3], 0, eps[i / 3]);
        o.inner_lr = lr;
        ck_assert_int_eq(
            fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, G, NULL, NULL, &w),
            FSB_OK);
        for (long j = 0; j < off; j++)
            ck_assert(G[j] == 0.0f);
        head_maml_exact(th, Es, t->sy, Eq, t->qy, D, ks[i % 3], lr, Gx);
        double e = 0, gn = 0;
        for (int j = 0; j < P; j++) {
            e += (G[off + j] - Gx[j]) * (G[off + j] - Gx[j]);
            gn += Gx[j] * Gx[j];
        }
        fprintf(stderr, "maml head k=%d hvp_eps %g: |G - exact| / |exact| = %.2e\n", ks[i % 3],
                eps[i / 3], sqrt(e / gn));
        ck_assert_double_le(sqrt(e / gn), tol[i / 3]);
    }
    fsb_maml_work_free(&w);
    free(Es), free(Eq), free(th), free(Gx), free(G), free(t);
    fsb_model_destroy(m);
}
END_TEST

/* ---- model state, determinism, errors ------------------------------------------------- */

typedef struct snapshot {
    float *params;                     /* every parameter */
    float *stats;                      /* running means and variances, tensor order */
    long n_stats;                      /* their count */
    int64_t nbt[FSB_MODEL_BLOCKS * 4]; /* num_batches_tracked, tensor order */
    int n_bn;                          /* their count */
} snapshot;

static void snap(fsb_model *m, snapshot *s)
{
    s->params = param_copy(m);
    s->n_stats = 0, s->n_bn = 0;
    s->stats = malloc(sizeof(float) * 4096);
    for (int i = 0; i < fsb_model_n_tensors(m); i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        if (t.kind == FSB_T_RUNNING_MEAN || t.kind == FSB_T_RUNNING_VAR) {
            ck_assert_int_le(s->n_stats + t.numel, 4096);
            memcpy(s->stats + s->n_stats, t.data, sizeof(float) * (size_t)t.numel);
            s->n_stats += t.numel;
        } else if (t.kind == FSB_T_NUM_BATCHES) {
            s->nbt[s->n_bn++] = *t.count;
        }
    }
}

static void snap_same(fsb_model *m, const snapshot *a)
{
    snapshot b;
    snap(m, &b);
    long n;
    fsb_model_params(m, &n);
    ck_assert(memcmp(a->params, b.params, sizeof(float) * (size_t)n) == 0);
    ck_assert_int_eq(a->n_stats, b.n_stats);
    ck_assert(memcmp(a->stats, b.stats, sizeof(float) * (size_t)a->n_stats) == 0);
    ck_assert_int_eq(a->n_bn, b.n_bn);
    ck_assert(memcmp(a->nbt, b.nbt, sizeof(int64_t) * (size_t)a->n_bn) == 0);
    free(b.params), free(b.stats);
}

START_TEST(model_left_as_found)
{
    fsb_model *m = tiny(NULL, 7);
    task *t = task_make(70);
    /* running statistics away from their initial values first */
    for (int i = 0; i < 3; i++)
        fsb_model_train_step(m, t->sx, t->sy, NS, NULL, NULL);
    snapshot s0;
    snap(m, &s0);
    long n;
    fsb_model_params(m, &n);
    float *G = malloc(sizeof(float) * (size_t)n), lg[NQ * WAY];
    fsb_maml_work w;
    ck_assert_int_eq(fsb_maml_work_init(&w, m, 10), FSB_OK);
    fsb_maml_opts o = opts(5, 0, 3e-3);
    ck_assert_int_eq(
        fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, G, NULL, NULL, &w), FSB_OK);
    snap_same(m, &s0);
    o.inner_steps = 10;
    ck_assert_int_eq(fsb_maml_adapt_predict(m, t->sx, t->sy, NS, t->qx, NQ, &o, lg, NULL, &w),
                     FSB_OK);
    snap_same(m, &s0);
    /* an error after the inner loop started: a NaN support image at step 0 */
    t->sx[5] = NAN;
    ck_assert_int_eq(
        fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, G, NULL, NULL, &w),
        FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "support loss"));
    snap_same(m, &s0);
    ck_assert_int_eq(fsb_maml_adapt_predict(m, t->sx, t->sy, NS, t->qx, NQ, &o, lg, NULL, &w),
                     FSB_EINVAL);
    snap_same(m, &s0);
    fsb_maml_work_free(&w);
    fsb_maml_work_free(&w); /* freed twice: a no-op */
    free(s0.params), free(s0.stats), free(G), free(t);
    fsb_model_destroy(m);
}
END_TEST

START_TEST(bits_repeat_and_independent_of_threads)
{
    task *t = task_make(80);
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 3), FSB_OK);
    fsb_model *m1 = tiny(NULL, 8), *m3 = tiny(pool, 8);
    long n;
    fsb_model_params(m1, &n);
    float *G[3], lg[3][NQ * WAY];
    double l[3];
    int c[3];
    fsb_maml_work w1, w3;
    ck_assert_int_eq(fsb_maml_work_init(&w1, m1, 5), FSB_OK);
    ck_assert_int_eq(fsb_maml_work_init(&w3, m3, 5), FSB_OK);
    fsb_maml_opts o = opts(5, 0, 3e-3);
    for (int i = 0; i < 3; i++) {
        fsb_model *m = i == 2 ? m3 : m1;
        fsb_maml_work *w = i == 2 ? &w3 : &w1;
        G[i] = malloc(sizeof(float) * (size_t)n);
        ck_assert_int_eq(
            fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, G[i], &l[i], &c[i], w),
            FSB_OK);
        ck_assert_int_eq(fsb_maml_adapt_predict(m, t->sx, t->sy, NS, t->qx, NQ, &o, lg[i], NULL, w),
                         FSB_OK);
    }
    for (int i = 1; i < 3; i++) {
        ck_assert(memcmp(G[0], G[i], sizeof(float) * (size_t)n) == 0);
        ck_assert(memcmp(lg[0], lg[i], sizeof lg[0]) == 0);
        ck_assert(l[0] == l[i]);
        ck_assert_int_eq(c[0], c[i]);
    }
    fsb_maml_work_free(&w1), fsb_maml_work_free(&w3);
    for (int i = 0; i < 3; i++)
        free(G[i]);
    fsb_model_destroy(m1), fsb_model_destroy(m3);
    fsb_pool_destroy(pool);
    free(t);
}
END_TEST

static void expect_error(int st, int want, const char *text)
{
    ck_assert_int_eq(st, want);
    ck_assert_msg(strstr(fsb_error_last(), text), "'%s' not in '%s'", text, fsb_error_last());
}

START_TEST(rejects_bad_arguments)
{
    fsb_model *m = tiny(NULL, 9);
    task *t = task_make(90);
    long n;
    fsb_model_params(m, &n);
    float *G = malloc(sizeof(float) * (size_t)n);
    fsb_maml_work w;
    expect_error(fsb_maml_work_init(&w, m, -1), FSB_EINVAL, "max_steps");
    ck_assert_int_eq(fsb_maml_work_init(&w, m, 2), FSB_OK);
    ck_assert_uint_eq(fsb_maml_work_bytes(m, 2), (3 * n + 2 * 4 * 4) * sizeof(float) + 4 * 8);
    fsb_maml_opts o = opts(3, 0, 3e-3);
    expect_error(fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, G, NULL, NULL, &w),
                 FSB_EINVAL, "3 inner steps");
    o = opts(2, 0, 0);
    expect_error(fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, G, NULL, NULL, &w),
                 FSB_EINVAL, "hvp_eps");
    o = opts(2, 0, 3e-3);
    expect_error(
        fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ + 1, &o, G, NULL, NULL, &w),
        FSB_EINVAL, "7 query");
    t->qy[3] = WAY;
    expect_error(fsb_maml_meta_grad(m, t->sx, t->sy, NS, t->qx, t->qy, NQ, &o, G, NULL, NULL, &w),
                 FSB_EINVAL, "query label 3 of item 3");
    t->sy[0] = -1;
    expect_error(fsb_maml_adapt_predict(m, t->sx, t->sy, NS, t->qx, NQ, &o, NULL, NULL, &w),
                 FSB_EINVAL, "support label -1");
    t->sy[0] = 0;
    fsb_rng r;
    fsb_rng_init(&r, 1, 1);
    ck_assert_int_eq(fsb_model_reset_head(m, WAY + 1, &r), FSB_OK);
    expect_error(fsb_maml_adapt_predict(m, t->sx, t->sy, NS, t->qx, NQ, &o, NULL, NULL, &w),
                 FSB_EMISMATCH, "another model or head");
    fsb_maml_work_free(&w);
    fsb_model_destroy(m);
    /* ResNet-12 with its default dropout / DropBlock */
    fsb_model_opts mo;
    fsb_model_opts_default(&mo, FSB_ARCH_RES12);
    for (int i = 0; i < 4; i++)
        mo.widths[i] = 2;
    mo.in_hw = HW;
    ck_assert_int_eq(fsb_model_create(&m, &mo, WAY, NS, NULL, &r), FSB_OK);
    ck_assert_int_eq(fsb_maml_work_init(&w, m, 2), FSB_OK);
    expect_error(fsb_maml_adapt_predict(m, t->sx, t->sy, NS, t->qx, NQ, &o, NULL, NULL, &w),
                 FSB_EINVAL, "must be off");
    fsb_maml_work_free(&w);
    fsb_model_destroy(m);
    free(G), free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("maml");
    TCase *tc = tcase_create("maml");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, zero_steps_is_the_query_gradient);
    tcase_add_test(tc, first_order_is_the_gradient_at_theta_k);
    tcase_add_test(tc, second_order_matches_unrolled_differences);
    tcase_add_test(tc, head_only_matches_exact_double);
    tcase_add_test(tc, model_left_as_found);
    tcase_add_test(tc, bits_repeat_and_independent_of_threads);
    tcase_add_test(tc, rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
