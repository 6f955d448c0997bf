/* test_featloss.c - include/fsb/featloss.h: central-difference checks of dL/demb and of all
 * seven dL/dparam tensors (eval; train without dropout; train with fixed dropout masks), a
 * degenerate block (w_vs = 0, fc = 0: the block is LayerNorm) checked in closed form against
 * fsb_protoloss and a direct computation of the regulariser, the modes' semantics (eval
 * draws nothing, determinism, demb overwritten, dparams accumulated, optional outputs), the
 * workspace's arena error path, and the PyTorch fixture tests/fixtures/torch_featloss.fsbt
 * (FEAT's _forward and loss, FEAT's row order mapped onto fsbench's) to 1e-5 relative.
 */
#include "fsb/attention.h"
#include "fsb/featloss.h"
#include "fsb/protoloss.h"
#include "fsb/rng.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a test episode ------------------------------------------------------------------------- */

typedef struct {
    int way, shot, query, dim;
    fsb_featloss_cfg cfg;
    uint64_t seed; /* the rng restarts here on every call: the same masks every time */
    float *emb, *pmem, *gmem, *wmem;
    fsb_feat_attn_params p, g;
    fsb_featloss_work w;
} ep_ctx;

static void ep_setup(ep_ctx *c, int way, int shot, int query, int dim, uint64_t seed)
{
    c->way = way, c->shot = shot, c->query = query, c->dim = dim, c->seed = seed;
    long ne = (long)way * (shot + query) * dim, np = fsb_feat_attn_n_params(dim);
    c->emb = tu_randn(ne, 1, seed + 1);
    c->pmem = tu_zeros(np), c->gmem = tu_zeros(np);
    fsb_feat_attn_bind(&c->p, c->pmem, dim);
    fsb_feat_attn_bind(&c->g, c->gmem, dim);
    fsb_rng rng;
    fsb_rng_init(&rng, seed, 2);
    fsb_feat_attn_init(&c->p, dim, &rng);
    for (int i = 0; i < dim; i++) { /* LayerNorm's affine off the identity */
        c->p.ln_w[i] = 0.5f + fsb_rng_uniformf(&rng);
        c->p.ln_b[i] = 0.6f * fsb_rng_uniformf(&rng) - 0.3f;
    }
    c->wmem = tu_zeros(fsb_featloss_work_floats(way, shot, query, dim));
    fsb_featloss_work_bind(&c->w, c->wmem, way, shot, query, dim);
}

static void ep_free(ep_ctx *c)
{
    free(c->emb), free(c->pmem), free(c->gmem), free(c->wmem);
}

/* The loss at the context's inputs; demb/grads may be NULL. */
static double ep_run(ep_ctx *c, float *demb, fsb_feat_attn_params *grads, int *correct,
                     double *lmain)
{
    fsb_rng rng;
    fsb_rng_init(&rng, c->seed, 3);
    return fsb_featloss(c->emb, c->way, c->shot, c->query, c->dim, &c->p, &c->cfg, &rng, demb,
                        grads, correct, lmain, &c->w);
}

static double ep_loss(void *p)
{
    return ep_run(p, NULL, NULL, NULL, NULL);
}

/* A central difference (float forward, eps step) of f w.r.t. each x[i] (a stride through at
 * most ~150 of them) must match the analytic g[i] within tol * max(max|g|, 1e-3). Returns the
 * largest error seen in those units. */
static double grad_check(const char *what, double (*f)(void *), void *ctx, float *x, const float *g,
                         long n, float eps, double tol)
{
    double scale = tu_max_abs(g, n) > 1e-3 ? tu_max_abs(g, n) : 1e-3, worst = 0;
    long step = n > 150 ? n / 150 : 1;
    for (long i = 0; i < n; i += step) {
        float x0 = x[i];
        x[i] = x0 + eps;
        double lp = f(ctx);
        x[i] = x0 - eps;
        double lm = f(ctx);
        x[i] = x0;
        double num = (lp - lm) / (2.0 * (double)eps), err = fabs(num - g[i]) / scale;
        ck_assert_msg(err <= tol, "%s[%ld]: numeric %.7g analytic %.7g (error %.3g of %.3g)", what,
                      i, num, (double)g[i], err, scale);
        worst = err > worst ? err : worst;
    }
    return worst;
}

/* dL/demb and every dL/dparam of one configuration by central differences. */
static void ep_fd(int train, float attn_p, float out_p, uint64_t seed)
{
    ep_ctx c;
    memset(&c, 0, sizeof c);
    ep_setup(&c, 3, 2, 2, 8, seed);
    c.cfg = (fsb_featloss_cfg){.temperature = 4,
                               .temperature2 = 8,
                               .balance = 0.5,
                               .attn_p = attn_p,
                               .out_p = out_p,
                               .train = train};
    long ne = 3L * 4 * 8;
    float *demb = tu_zeros(ne);
    ep_run(&c, demb, &c.g, NULL, NULL);
    if (train && attn_p > 0) /* both blocks drew both masks */
        ck_assert(c.w.attn.attn_dropped && c.w.attn.out_dropped && c.w.attn_aux.attn_dropped &&
                  c.w.attn_aux.out_dropped);
    double worst = grad_check("demb", ep_loss, &c, c.emb, demb, ne, 1e-2f, 2e-3);
    for (int t = 0; t < 7; t++) {
        float *pt, *gt;
        long n;
        const char *name = fsb_feat_attn_tensor(&pt, &n, &c.p, c.dim, t);
        fsb_feat_attn_tensor(&gt, &n, &c.g, c.dim, t);
        ck_assert_msg(tu_max_abs(gt, n) > 1e-4, "%s: no gradient", name);
        worst = fmax(worst, grad_check(name, ep_loss, &c, pt, gt, n, 1e-2f, 2e-3));
    }
    fprintf(stderr, "featloss fd (train %d, p %g/%g): max error %.2g\n", train, (double)attn_p,
            (double)out_p, worst);
    free(demb);
    ep_free(&c);
}

START_TEST(featloss_fd_eval)
{
    ep_fd(0, FSB_FEAT_ATTN_DROPOUT, FSB_FEAT_OUT_DROPOUT, 10); /* rates ignored in eval */
}
END_TEST

START_TEST(featloss_fd_train_no_dropout)
{
    ep_fd(1, 0, 0, 20);
}
END_TEST

START_TEST(featloss_fd_train_fixed_masks)
{
    ep_fd(1, 0.3f, 0.4f, 30);
}
END_TEST

/* ---- degenerate block: w_vs = 0, fc = 0 make slf_attn(X) = LayerNorm(X) exactly ---------- */

/* LayerNorm of each of the n rows of x (n,dim) with p's affine into out; mean/rstd saved. */
static void ln_rows(float *out, float *mean, float *rstd, const float *x, const ep_ctx *c, int n)
{
    fsb_layernorm_forward(out, mean, rstd, x, c->p.ln_w, c->p.ln_b, n, c->dim);
}

/* The regulariser computed directly: per class c the set of its supports then queries, its
 * LayerNormed mean as the centre, every untransformed row scored with label c. */
static double reg_by_hand(const ep_ctx *c)
{
    int way = c->way, n = c->shot + c->query, dim = c->dim, ns = way * c->shot;
    float *x = tu_zeros((long)n * dim), *y = tu_zeros((long)n * dim), *m = tu_zeros(n),
          *r = tu_zeros(n);
    double *cen = calloc((size_t)way * dim, sizeof(double)), loss = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int cl = 0; cl < way; cl++) {
            for (int j = 0; j < n; j++) {
                long row = j < c->shot ? cl * c->shot + j : ns + cl * c->query + (j - c->shot);
                memcpy(x + (long)j * dim, c->emb + row * dim, sizeof(float) * (size_t)dim);
            }
            if (pass == 0) { /* centres */
                ln_rows(y, m, r, x, c, n);
                for (int j = 0; j < n; j++)
                    for (int k = 0; k < dim; k++)
                        cen[cl * dim + k] += y[j * dim + k];
                continue;
            }
            for (int j = 0; j < n; j++) { /* rows of class cl against every centre */
                double z[16], zmax = -HUGE_VAL, s = 0;
                for (int k2 = 0; k2 < way; k2++) {
                    double d2 = 0;
                    for (int k = 0; k < dim; k++)
                        d2 += pow(x[j * dim + k] - (double)(float)(cen[k2 * dim + k] / n), 2);
                    z[k2] = -d2 / c->cfg.temperature2;
                    zmax = fmax(zmax, z[k2]);
                }
                for (int k2 = 0; k2 < way; k2++)
                    s += exp(z[k2] - zmax);
                loss += zmax + log(s) - z[cl];
            }
        }
    free(x), free(y), free(m), free(r), free(cen);
    return loss / (way * n);
}

START_TEST(featloss_degenerate_layernorm_block)
{
    ep_ctx c;
    memset(&c, 0, sizeof c);
    int way = 4, shot = 3, query = 2, dim = 6, ns = way * shot;
    ep_setup(&c, way, shot, query, dim, 40);
    long dd = (long)dim * dim, ne = (long)way * (shot + query) * dim;
    memset(c.p.wv, 0, sizeof(float) * (size_t)dd);
    memset(c.p.fc_w, 0, sizeof(float) * (size_t)dd);
    memset(c.p.fc_b, 0, sizeof(float) * (size_t)dim);
    c.cfg = (fsb_featloss_cfg){.temperature = 2, .temperature2 = 3, .balance = 0};
    /* protoloss on emb2: every shot of class c replaced by LayerNorm(p_c) */
    float *proto = tu_zeros((long)way * dim), *lnp = tu_zeros((long)way * dim), *mu = tu_zeros(way),
          *rs = tu_zeros(way), *emb2 = tu_zeros(ne), *d2 = tu_zeros(ne), *demb = tu_zeros(ne);
    for (int cl = 0; cl < way; cl++)
        for (int k = 0; k < dim; k++) {
            double s = 0;
            for (int j = 0; j < shot; j++)
                s += c.emb[(cl * shot + j) * dim + k];
            proto[cl * dim + k] = (float)(s / shot);
        }
    ln_rows(lnp, mu, rs, proto, &c, way);
    memcpy(emb2, c.emb, sizeof(float) * (size_t)ne);
    for (int i = 0; i < ns; i++)
        memcpy(emb2 + i * dim, lnp + (i / shot) * dim, sizeof(float) * (size_t)dim);
    double *pw = malloc(sizeof(double) * fsb_protoloss_scratch(way, shot, query, dim));
    int want_ok, got_ok;
    double want = fsb_protoloss(emb2, way, shot, query, dim, 2, d2, &want_ok, pw);
    for (int train = 0; train <= 1; train++) { /* balance 0: train (p = 0) is eval */
        c.cfg.train = train;
        memset(c.gmem, 0, sizeof(float) * (size_t)fsb_feat_attn_n_params(dim));
        double got = ep_run(&c, demb, &c.g, &got_ok, NULL);
        ck_assert_double_eq_tol(got, want, 1e-12 * want);
        ck_assert_int_eq(got_ok, want_ok);
        for (long i = (long)ns * dim; i < ne; i++) /* queries: the same gradient */
            ck_assert_float_eq_tol(demb[i], d2[i], 1e-6f * (float)tu_max_abs(d2, ne));
        /* dL/dP_c = sum over its shots of protoloss' gradient, through LayerNorm, / shot */
        float *dP = tu_zeros((long)way * dim), *dp = tu_zeros((long)way * dim), *lw = tu_zeros(dim),
              *lb = tu_zeros(dim);
        for (int i = 0; i < ns; i++)
            for (int k = 0; k < dim; k++)
                dP[(i / shot) * dim + k] += d2[i * dim + k];
        fsb_layernorm_backward(dp, lw, lb, dP, proto, mu, rs, c.p.ln_w, way, dim);
        for (int i = 0; i < ns; i++)
            for (int k = 0; k < dim; k++)
                ck_assert_float_eq_tol(demb[i * dim + k], dp[(i / shot) * dim + k] / shot,
                                       1e-6f * (float)tu_max_abs(dp, (long)way * dim));
        /* parameters: LayerNorm's affine and fc's bias (the residual sum's gradient) only */
        for (int k = 0; k < dim; k++) {
            double fb = 0;
            for (int cl = 0; cl < way; cl++)
                fb += dp[cl * dim + k];
            ck_assert_float_eq_tol(c.g.ln_w[k], lw[k], 1e-6f * (1 + fabsf(lw[k])));
            ck_assert_float_eq_tol(c.g.ln_b[k], lb[k], 1e-6f * (1 + fabsf(lb[k])));
            ck_assert_float_eq_tol(c.g.fc_b[k], (float)fb, 1e-6f * (1 + fabsf((float)fb)));
        }
        ck_assert_double_eq(tu_max_abs(c.g.wq, dd) + tu_max_abs(c.g.wk, dd), 0);
        ck_assert_double_eq(tu_max_abs(c.g.wv, dd) + tu_max_abs(c.g.fc_w, dd), 0);
        free(dP), free(dp), free(lw), free(lb);
    }
    /* the regulariser: which rows, which centres, which labels, computed directly */
    c.cfg.balance = 0.7;
    double lmain, total = ep_run(&c, NULL, NULL, NULL, &lmain), reg = reg_by_hand(&c);
    ck_assert_double_eq_tol(lmain, want, 1e-12 * want);
    ck_assert_double_eq_tol(total, want + 0.7 * reg, 1e-6 * total);
    ck_assert_double_gt(reg, 0.1);
    c.cfg.train = 0; /* eval: no regulariser whatever the balance */
    ck_assert_double_eq_tol(ep_run(&c, NULL, NULL, NULL, NULL), want, 1e-12 * want);
    free(proto), free(lnp), free(mu), free(rs), free(emb2), free(d2), free(demb), free(pw);
    ep_free(&c);
}
END_TEST

/* ---- modes ---------------------------------------------------------------------------------- */

/* Eval draws nothing and equals train at balance 0 without dropout bit for bit; train with
 * FEAT's rates is a pure function of the rng state; demb is overwritten, dparams accumulate;
 * the optional outputs change nothing; the logits view holds -||q - P_c||^2 / T. */
START_TEST(featloss_modes)
{
    ep_ctx c;
    memset(&c, 0, sizeof c);
    int way = 5, shot = 2, query = 3, dim = 16, nq = way * query;
    ep_setup(&c, way, shot, query, dim, 50);
    long ne = (long)way * (shot + query) * dim, np = fsb_feat_attn_n_params(dim);
    float *d1 = tu_zeros(ne), *d2 = tu_zeros(ne), *g1 = tu_zeros(np);
    fsb_rng r, before;
    fsb_rng_init(&r, 9, 0);
    before = r;
    c.cfg = (fsb_featloss_cfg){.temperature = 32,
                               .temperature2 = 64,
                               .balance = 0.1,
                               .attn_p = FSB_FEAT_ATTN_DROPOUT,
                               .out_p = FSB_FEAT_OUT_DROPOUT};
    int k1, k2;
    double lm,
        l1 = fsb_featloss(c.emb, way, shot, query, dim, &c.p, &c.cfg, &r, d1, &c.g, &k1, &lm, &c.w);
    ck_assert(memcmp(&r, &before, sizeof r) == 0);
    ck_assert_double_eq(l1, lm);
    memcpy(g1, c.gmem, sizeof(float) * (size_t)np);
    /* the logits view */
    for (int i = 0; i < nq; i++)
        for (int cl = 0; cl < way; cl++) {
            double d = 0;
            for (int k = 0; k < dim; k++)
                d +=
                    pow(c.emb[(way * shot + i) * dim + k] - (double)c.w.proto_out[cl * dim + k], 2);
            ck_assert_double_eq_tol(c.w.logits[i * way + cl], -d / 32, 1e-12 * (1 + d));
        }
    /* rng NULL in eval; NULL outputs; demb overwritten (prefilled), dparams doubled */
    for (long i = 0; i < ne; i++)
        d2[i] = 123.0f;
    double l2 =
        fsb_featloss(c.emb, way, shot, query, dim, &c.p, &c.cfg, NULL, d2, &c.g, &k2, NULL, &c.w);
    ck_assert(l1 == l2 && k1 == k2 && memcmp(d1, d2, sizeof(float) * (size_t)ne) == 0);
    for (long i = 0; i < np; i++)
        ck_assert_float_eq_tol(c.gmem[i], 2 * g1[i], 1e-6f * (1 + fabsf(g1[i])));
    ck_assert(fsb_featloss(c.emb, way, shot, query, dim, &c.p, &c.cfg, NULL, NULL, NULL, NULL, NULL,
                           &c.w) == l1);
    /* train, balance 0, no dropout: the same bits, no draw */
    fsb_featloss_cfg t0 = {.temperature = 32, .temperature2 = 64, .train = 1};
    memset(c.gmem, 0, sizeof(float) * (size_t)np);
    l2 = fsb_featloss(c.emb, way, shot, query, dim, &c.p, &t0, &r, d2, &c.g, NULL, NULL, &c.w);
    ck_assert(l1 == l2 && memcmp(d1, d2, sizeof(float) * (size_t)ne) == 0);
    ck_assert(memcmp(g1, c.gmem, sizeof(float) * (size_t)np) == 0);
    ck_assert(memcmp(&r, &before, sizeof r) == 0);
    /* train with FEAT's rates: deterministic in the rng state, another state other masks */
    fsb_featloss_cfg tr = c.cfg;
    tr.train = 1;
    fsb_rng ra = before, rb = before, rc;
    fsb_rng_init(&rc, 10, 0);
    double la =
        fsb_featloss(c.emb, way, shot, query, dim, &c.p, &tr, &ra, d1, NULL, NULL, &lm, &c.w);
    double lb =
        fsb_featloss(c.emb, way, shot, query, dim, &c.p, &tr, &rb, d2, NULL, NULL, NULL, &c.w);
    ck_assert(la == lb && memcmp(d1, d2, sizeof(float) * (size_t)ne) == 0);
    ck_assert(memcmp(&ra, &rb, sizeof ra) == 0 && memcmp(&ra, &before, sizeof ra) != 0);
    ck_assert(la > lm); /* the regulariser adds balance * a positive cross-entropy */
    double lc =
        fsb_featloss(c.emb, way, shot, query, dim, &c.p, &tr, &rc, d2, NULL, NULL, NULL, &c.w);
    ck_assert(lc != la && memcmp(d1, d2, sizeof(float) * (size_t)ne) != 0);
    free(d1), free(d2), free(g1);
    ep_free(&c);
}
END_TEST

START_TEST(featloss_workspace_arena)
{
    /* 2 * (doubles: 2 * 5*15*5 + 5*20*5) + 6 * 5*64 + 4 * 5*20*64 + both blocks' workspaces */
    ck_assert_int_eq(fsb_featloss_work_floats(5, 5, 15, 64),
                     2L * (750 + 500) + 6L * 320 + 4L * 6400 + fsb_feat_attn_work_floats(1, 5, 64) +
                         fsb_feat_attn_work_floats(5, 20, 64));
    fsb_arena a;
    ck_assert_int_eq(fsb_arena_init(&a, 4096), FSB_OK);
    fsb_featloss_work w;
    fsb_error_clear();
    ck_assert_int_eq(fsb_featloss_work_alloc(&w, &a, 5, 5, 15, 64), FSB_ENOMEM);
    ck_assert_ptr_nonnull(
        strstr(fsb_error_last(), "FEAT loss workspace (way 5, shot 5, query 15, dim 64)"));
    fsb_arena_free(&a);
    /* a loss from arena memory equals one from malloc'd memory */
    ep_ctx c;
    memset(&c, 0, sizeof c);
    ep_setup(&c, 3, 1, 2, 8, 60);
    c.cfg = (fsb_featloss_cfg){.temperature = 4, .temperature2 = 8, .balance = 1, .train = 1};
    ck_assert_int_eq(fsb_arena_init(&a, 1 << 20), FSB_OK);
    ck_assert_int_eq(fsb_featloss_work_alloc(&w, &a, 3, 1, 2, 8), FSB_OK);
    ck_assert(w.way == 3 && w.shot == 1 && w.query == 2 && w.dim == 8);
    ck_assert(w.attn.B == 1 && w.attn.n == 3 && w.attn_aux.B == 3 && w.attn_aux.n == 3);
    double l1 = ep_run(&c, NULL, NULL, NULL, NULL);
    c.w = w;
    ck_assert(ep_run(&c, NULL, NULL, NULL, NULL) == l1);
    fsb_arena_free(&a);
    ep_free(&c);
}
END_TEST

/* ---- PyTorch parity ------------------------------------------------------------------------- */

/* max |got - want| / max |want| over the tensor; asserts <= tol and returns it. */
static double expect_close(const fsb_tensorfile *tf, const char *name, const float *got, long n,
                           double tol)
{
    const float *want;
    ck_assert_msg(fsb_tensorfile_get_f32(tf, "fixture", name, (size_t)n, &want) == FSB_OK, "%s",
                  fsb_error_last());
    double scale = tu_max_abs(want, n), err = 0;
    for (long i = 0; i < n; i++)
        err = fmax(err, fabs((double)got[i] - want[i]));
    ck_assert_msg(err <= tol * scale, "%s: max error %g, scale %g", name, err, scale);
    return err / scale;
}

/* FEAT's row (instance-major) of fsbench's row i (label-major), featloss.h's mapping. */
static long feat_row(long i, int way, int shot, int query)
{
    long ns = (long)way * shot;
    if (i < ns) return (i % shot) * way + i / shot;
    return ns + ((i - ns) % query) * way + (i - ns) / query;
}

/* One mode of the fixture: loss, main loss, accuracy, logits, dL/demb, dL/dparams. */
static double torch_mode(const fsb_tensorfile *tf, ep_ctx *c, int train)
{
    int way = c->way, shot = c->shot, query = c->query, dim = c->dim, nq = way * query;
    long n = (long)way * (shot + query), np = fsb_feat_attn_n_params(dim);
    const char *mode = train ? "train" : "eval";
    char key[128];
    c->cfg.train = train;
    /* eval: FEAT's rates (inactive); train: both 0, as in the fixture */
    c->cfg.attn_p = train ? 0 : FSB_FEAT_ATTN_DROPOUT;
    c->cfg.out_p = train ? 0 : FSB_FEAT_OUT_DROPOUT;
    float *demb = tu_zeros(n * dim), *dfeat = tu_zeros(n * dim), *buf = tu_zeros((long)nq * way);
    memset(c->gmem, 0, sizeof(float) * (size_t)np);
    int correct;
    double lmain, loss = ep_run(c, demb, &c->g, &correct, &lmain), worst = 0;
    float lf[3] = {(float)loss, (float)lmain, (float)((loss - lmain) / c->cfg.balance)};
    snprintf(key, sizeof key, "%s.loss", mode);
    worst = fmax(worst, expect_close(tf, key, lf, 1, 1e-5));
    snprintf(key, sizeof key, "%s.loss_main", mode);
    worst = fmax(worst, expect_close(tf, key, lf + 1, 1, 1e-5));
    if (train) /* the regulariser alone (loss = main + balance * reg) */
        worst = fmax(worst, expect_close(tf, "train.loss_reg", lf + 2, 1, 1e-5));
    snprintf(key, sizeof key, "%s.n_correct", mode);
    ck_assert_int_eq(correct, tu_meta_long(tf, key));
    for (int i = 0; i < nq; i++) /* logits rows: FEAT's j*way + c is fsbench's c*query + j */
        for (int k = 0; k < way; k++)
            buf[(feat_row(way * shot + i, way, shot, query) - way * shot) * way + k] =
                (float)c->w.logits[i * way + k];
    snprintf(key, sizeof key, "%s.logits", mode);
    worst = fmax(worst, expect_close(tf, key, buf, (long)nq * way, 1e-5));
    for (long i = 0; i < n; i++)
        memcpy(dfeat + feat_row(i, way, shot, query) * dim, demb + i * dim,
               sizeof(float) * (size_t)dim);
    snprintf(key, sizeof key, "%s.grad.emb", mode);
    worst = fmax(worst, expect_close(tf, key, dfeat, n * dim, 1e-5));
    for (int t = 0; t < 7; t++) {
        float *data;
        long numel;
        const char *name = fsb_feat_attn_tensor(&data, &numel, &c->g, dim, t);
        snprintf(key, sizeof key, "%s.grad.%s", mode, name);
        worst = fmax(worst, expect_close(tf, key, data, numel, 1e-5));
    }
    free(demb), free(dfeat), free(buf);
    return worst;
}

START_TEST(featloss_matches_torch)
{
    const char *src = getenv("FSB_SOURCE_DIR");
    char *path = tu_path(src && *src ? src : ".", "tests/fixtures/torch_featloss.fsbt");
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_msg(fsb_tensorfile_load(&tf, path) == FSB_OK, "%s", fsb_error_last());
    int way = (int)tu_meta_long(&tf, "way"), shot = (int)tu_meta_long(&tf, "shot"),
        query = (int)tu_meta_long(&tf, "query"), dim = (int)tu_meta_long(&tf, "d");
    ck_assert(way == 5 && shot == 2 && query == 3 && dim == 16);
    ep_ctx c;
    memset(&c, 0, sizeof c);
    ep_setup(&c, way, shot, query, dim, 70);
    c.cfg.temperature = atof(fsb_tensorfile_meta(&tf, "temperature"));
    c.cfg.temperature2 = atof(fsb_tensorfile_meta(&tf, "temperature2"));
    c.cfg.balance = atof(fsb_tensorfile_meta(&tf, "balance"));
    ck_assert(c.cfg.temperature == 32 && c.cfg.temperature2 == 64 && c.cfg.balance == 0.1);
    const float *src_t, *emb_feat;
    float *data;
    long numel, n = (long)way * (shot + query);
    for (int t = 0; t < 7; t++) {
        const char *name = fsb_feat_attn_tensor(&data, &numel, &c.p, dim, t);
        ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, "fixture", name, (size_t)numel, &src_t),
                         FSB_OK);
        memcpy(data, src_t, sizeof(float) * (size_t)numel);
    }
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, "fixture", "emb", (size_t)(n * dim), &emb_feat),
                     FSB_OK);
    for (long i = 0; i < n; i++) /* FEAT's row order to fsbench's */
        memcpy(c.emb + i * dim, emb_feat + feat_row(i, way, shot, query) * dim,
               sizeof(float) * (size_t)dim);
    double worst = fmax(torch_mode(&tf, &c, 0), torch_mode(&tf, &c, 1));
    fprintf(stderr, "featloss vs torch: max relative error %.2g (tolerance 1e-5)\n", worst);
    free(path);
    ep_free(&c);
    fsb_tensorfile_free(&tf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("featloss");
    TCase *tc = tcase_create("featloss");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, featloss_fd_eval);
    tcase_add_test(tc, featloss_fd_train_no_dropout);
    tcase_add_test(tc, featloss_fd_train_fixed_masks);
    tcase_add_test(tc, featloss_degenerate_layernorm_block);
    tcase_add_test(tc, featloss_modes);
    tcase_add_test(tc, featloss_workspace_arena);
    tcase_add_test(tc, featloss_matches_torch);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
