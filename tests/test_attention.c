/* test_attention.c - include/fsb/attention.h: batched products against the naive reference
 * (all four transpose cases, accumulation), hand-computed LayerNorm and softmax values,
 * central-difference gradient checks of every op and of the whole FEAT block (input and all
 * seven parameter tensors, eval and train with fixed dropout masks), dropout determinism and
 * eval/train semantics, FEAT's initialisation, the workspace's arena error path, and the
 * PyTorch fixture tests/fixtures/torch_feat_attention.fsbt to 1e-5 relative.
 */
#include "fsb/attention.h"
#include "fsb/rng.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double dot(const float *a, const float *b, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Every op here is smooth, so a central difference (float forward, eps step) of the loss
 * f(ctx) w.r.t. each x[i] (a stride through at most ~150 of them) must match the analytic
 * g[i] within tol * max(max|g|, 1e-3). Returns the largest error seen in those units. */
typedef double (*loss_fn)(void *ctx);

static double grad_check(const char *what, loss_fn f, void *ctx, float *x, const float *g, long n,
                         float eps, double tol)
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

/* ---- batched matrix products ---------------------------------------------------------------- */

typedef struct {
    int ta, tb, B, M, K, N;
    float alpha;
    float *a, *b, *out, *r;
} bmm_ctx;

static double bmm_loss(void *p)
{
    bmm_ctx *c = p;
    fsb_bmm_forward(c->out, c->a, c->b, c->ta, c->tb, c->alpha, c->B, c->M, c->K, c->N);
    return dot(c->out, c->r, (long)c->B * c->M * c->N);
}

START_TEST(bmm_matches_reference_and_fd)
{
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++) {
            bmm_ctx c = {.ta = ta, .tb = tb, .B = 3, .M = 4, .K = 5, .N = 6, .alpha = 0.7f};
            long na = (long)c.B * c.M * c.K, nb = (long)c.B * c.K * c.N, no = (long)c.B * c.M * c.N;
            c.a = tu_randn(na, 1, 1), c.b = tu_randn(nb, 1, 2), c.r = tu_randn(no, 1, 3);
            c.out = tu_zeros(no);
            float *ref = tu_zeros(no);
            bmm_loss(&c);
            fsb_bmm_forward_ref(ref, c.a, c.b, ta, tb, c.alpha, c.B, c.M, c.K, c.N);
            for (long i = 0; i < no; i++)
                ck_assert_float_eq_tol(c.out[i], ref[i], 1e-5f * (1 + fabsf(ref[i])));
            /* backward onto nonzero buffers: both must ADD the same amount */
            float *da = tu_randn(na, 1, 4), *db = tu_randn(nb, 1, 5);
            float *rda = malloc(sizeof(float) * (size_t)na), *rdb = malloc(sizeof(float) * nb);
            memcpy(rda, da, sizeof(float) * (size_t)na);
            memcpy(rdb, db, sizeof(float) * (size_t)nb);
            fsb_bmm_backward(da, db, c.r, c.a, c.b, ta, tb, c.alpha, c.B, c.M, c.K, c.N);
            fsb_bmm_backward_ref(rda, rdb, c.r, c.a, c.b, ta, tb, c.alpha, c.B, c.M, c.K, c.N);
            for (long i = 0; i < na; i++)
                ck_assert_float_eq_tol(da[i], rda[i], 1e-5f * (1 + fabsf(rda[i])));
            for (long i = 0; i < nb; i++)
                ck_assert_float_eq_tol(db[i], rdb[i], 1e-5f * (1 + fabsf(rdb[i])));
            /* gradients alone, by central differences (bilinear: exact up to rounding) */
            memset(da, 0, sizeof(float) * (size_t)na);
            memset(db, 0, sizeof(float) * (size_t)nb);
            fsb_bmm_backward(da, NULL, c.r, c.a, c.b, ta, tb, c.alpha, c.B, c.M, c.K, c.N);
            fsb_bmm_backward(NULL, db, c.r, c.a, c.b, ta, tb, c.alpha, c.B, c.M, c.K, c.N);
            grad_check("bmm da", bmm_loss, &c, c.a, da, na, 1e-2f, 1e-4);
            grad_check("bmm db", bmm_loss, &c, c.b, db, nb, 1e-2f, 1e-4);
            free(c.a), free(c.b), free(c.r), free(c.out), free(ref);
            free(da), free(db), free(rda), free(rdb);
        }
}
END_TEST

START_TEST(bmm_hand_values)
{
    /* two items: [1 2; 3 4] @ [5 6; 7 8]^T = [17 23; 39 53], and the identity times b */
    float a[8] = {1, 2, 3, 4, 1, 0, 0, 1}, b[8] = {5, 6, 7, 8, 1, 2, 3, 4}, out[8];
    fsb_bmm_forward(out, a, b, 0, 1, 1.0f, 2, 2, 2, 2);
    float want[8] = {17, 23, 39, 53, 1, 3, 2, 4};
    for (int i = 0; i < 8; i++)
        ck_assert_float_eq(out[i], want[i]);
    /* a^T b with alpha 0.5 on the first item: [1 3; 2 4] @ [5 6; 7 8] / 2 */
    fsb_bmm_forward(out, a, b, 1, 0, 0.5f, 1, 2, 2, 2);
    float want2[4] = {13, 15, 19, 22};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(out[i], want2[i]);
}
END_TEST

/* ---- LayerNorm ------------------------------------------------------------------------------ */

START_TEST(layernorm_hand_values)
{
    /* [1,2,3]: mean 2, biased variance 2/3, rstd = 1/sqrt(2/3 + 1e-5) */
    float x[6] = {1, 2, 3, 5, 5, 5}, w[3] = {2, 1, 0.5f}, b[3] = {0.5f, 0, -1};
    float out[6], mean[2], rstd[2];
    fsb_layernorm_forward(out, mean, rstd, x, w, b, 2, 3);
    double rs = 1.0 / sqrt(2.0 / 3.0 + 1e-5);
    ck_assert_float_eq_tol(mean[0], 2.0f, 1e-7);
    ck_assert_float_eq_tol(rstd[0], (float)rs, 1e-6);
    ck_assert_float_eq_tol(out[0], (float)(0.5 - 2 * rs), 1e-6);
    ck_assert_float_eq_tol(out[1], 0.0f, 1e-7);
    ck_assert_float_eq_tol(out[2], (float)(-1 + 0.5 * rs), 1e-6);
    /* a constant row: variance 0, eps keeps rstd finite, the output is the bias */
    ck_assert_float_eq_tol(rstd[1], (float)(1.0 / sqrt(1e-5)), 1e-2);
    for (int c = 0; c < 3; c++)
        ck_assert_float_eq(out[3 + c], b[c]);
    /* backward of row 0 with weight 1, dout = [1,0,0]: xh = [-a,0,a] (a = rs), mean(g) = 1/3,
     * mean(g xh) = -a/3, so dx = rs * [2/3 - a^2/3, -1/3, -1/3 + a^2/3] */
    float one[3] = {1, 1, 1}, g[3] = {1, 0, 0}, dx[3] = {10, 10, 10}, dw[3] = {0}, db[3] = {0};
    fsb_layernorm_backward(dx, dw, db, g, x, mean, rstd, one, 1, 3);
    double a2 = rs * rs;
    double want[3] = {rs * (2.0 / 3 - a2 / 3), rs * (-1.0 / 3), rs * (-1.0 / 3 + a2 / 3)};
    for (int c = 0; c < 3; c++)
        ck_assert_float_eq_tol(dx[c], (float)(10 + want[c]), 1e-5);
    ck_assert_float_eq_tol(dw[0], (float)-rs, 1e-6);
    ck_assert_float_eq(dw[1], 0);
    ck_assert_float_eq(db[0], 1);
    ck_assert_float_eq(db[2], 0);
}
END_TEST

typedef struct {
    int N, C;
    float *x, *w, *b, *out, *mean, *rstd, *r;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    fsb_layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C);
    return dot(c->out, c->r, (long)c->N * c->C);
}

START_TEST(layernorm_fd)
{
    ln_ctx c = {.N = 6, .C = 7};
    long n = (long)c.N * c.C;
    c.x = tu_randn(n, 2, 10), c.w = tu_randn(c.C, 1, 11), c.b = tu_randn(c.C, 1, 12);
    c.r = tu_randn(n, 1, 13), c.out = tu_zeros(n), c.mean = tu_zeros(c.N), c.rstd = tu_zeros(c.N);
    for (long i = 0; i < n; i++)
        c.x[i] += (float)(i / c.C); /* rows with different means */
    ln_loss(&c);
    float *dx = tu_zeros(n), *dw = tu_zeros(c.C), *db = tu_zeros(c.C);
    fsb_layernorm_backward(dx, dw, db, c.r, c.x, c.mean, c.rstd, c.w, c.N, c.C);
    grad_check("layernorm dinp", ln_loss, &c, c.x, dx, n, 1e-2f, 2e-4);
    grad_check("layernorm dweight", ln_loss, &c, c.w, dw, c.C, 1e-2f, 2e-4);
    grad_check("layernorm dbias", ln_loss, &c, c.b, db, c.C, 1e-2f, 2e-4);
    /* each row's input gradient sums to 0 (the output does not see a shift of the row) */
    for (int r = 0; r < c.N; r++) {
        double s = 0;
        for (int k = 0; k < c.C; k++)
            s += dx[r * c.C + k];
        ck_assert_double_eq_tol(s, 0, 1e-5);
    }
    free(c.x), free(c.w), free(c.b), free(c.r), free(c.out), free(c.mean), free(c.rstd);
    free(dx), free(dw), free(db);
}
END_TEST

/* ---- softmax -------------------------------------------------------------------------------- */

START_TEST(softmax_hand_values)
{
    float x[9] = {0, logf(2), logf(3), 1000, 1000, -1000, -3e38f, 0, -3e38f}, y[9];
    fsb_softmax_rows_forward(y, x, 3, 3);
    float want[9] = {1.0f / 6, 1.0f / 3, 0.5f, 0.5f, 0.5f, 0, 0, 1, 0};
    for (int i = 0; i < 9; i++)
        ck_assert_float_eq_tol(y[i], want[i], 1e-6);
    fsb_softmax_rows_forward(x, x, 3, 3); /* in place */
    for (int i = 0; i < 9; i++)
        ck_assert_float_eq(x[i], y[i]);
    /* p = [.5,.5], dout = [1,0]: dinp += p * (dout - 0.5) = [.25, -.25] */
    float p[2] = {0.5f, 0.5f}, g[2] = {1, 0}, dx[2] = {1, 1};
    fsb_softmax_rows_backward(dx, g, p, 1, 2);
    ck_assert_float_eq_tol(dx[0], 1.25f, 1e-7);
    ck_assert_float_eq_tol(dx[1], 0.75f, 1e-7);
}
END_TEST

typedef struct {
    int N, C;
    float *x, *out, *r;
} sm_ctx;

static double sm_loss(void *p)
{
    sm_ctx *c = p;
    fsb_softmax_rows_forward(c->out, c->x, c->N, c->C);
    return dot(c->out, c->r, (long)c->N * c->C);
}

START_TEST(softmax_fd)
{
    sm_ctx c = {.N = 5, .C = 6};
    long n = (long)c.N * c.C;
    c.x = tu_randn(n, 2, 20), c.r = tu_randn(n, 1, 21), c.out = tu_zeros(n);
    sm_loss(&c);
    float *dx = tu_zeros(n);
    fsb_softmax_rows_backward(dx, c.r, c.out, c.N, c.C);
    grad_check("softmax dinp", sm_loss, &c, c.x, dx, n, 1e-2f, 1e-4);
    free(c.x), free(c.r), free(c.out), free(dx);
}
END_TEST

/* ---- FEAT block ----------------------------------------------------------------------------- */

typedef struct {
    int B, n, d, train;
    float attn_p, out_p;
    uint64_t seed; /* the rng restarts here on every forward: the same masks every time */
    float *x, *pmem, *gmem, *out, *r, *wmem;
    fsb_feat_attn_params p, g;
    fsb_feat_attn_work w;
} blk_ctx;

static void blk_setup(blk_ctx *c, int B, int n, int d, uint64_t seed)
{
    c->B = B, c->n = n, c->d = d, c->seed = seed;
    long nx = (long)B * n * d, np = fsb_feat_attn_n_params(d);
    c->x = tu_randn(nx, 1, seed + 1);
    c->r = tu_randn(nx, 1, seed + 2);
    c->out = tu_zeros(nx);
    c->pmem = tu_zeros(np), c->gmem = tu_zeros(np);
    fsb_feat_attn_bind(&c->p, c->pmem, d);
    fsb_feat_attn_bind(&c->g, c->gmem, d);
    fsb_rng rng;
    fsb_rng_init(&rng, seed, 2);
    fsb_feat_attn_init(&c->p, d, &rng);
    for (int i = 0; i < d; i++) { /* LayerNorm's affine off the identity */
        c->p.ln_w[i] = 0.5f + fsb_rng_uniformf(&rng);
        c->p.ln_b[i] = 0.6f * fsb_rng_uniformf(&rng) - 0.3f;
    }
    c->wmem = tu_zeros(fsb_feat_attn_work_floats(B, n, d));
    fsb_feat_attn_work_bind(&c->w, c->wmem, B, n, d);
}

static void blk_free(blk_ctx *c)
{
    free(c->x), free(c->r), free(c->out), free(c->pmem), free(c->gmem), free(c->wmem);
}

static double blk_loss(void *p)
{
    blk_ctx *c = p;
    fsb_rng rng;
    fsb_rng_init(&rng, c->seed, 3);
    fsb_feat_attn_forward(c->out, &c->w, c->x, &c->p, c->attn_p, c->out_p, c->train, &rng, c->B,
                          c->n, c->d);
    return dot(c->out, c->r, (long)c->B * c->n * c->d);
}

/* Gradients of sum(out * r) w.r.t. the input and all seven tensors, by central differences. */
static void blk_fd(int train, float attn_p, float out_p)
{
    blk_ctx c = {.train = train, .attn_p = attn_p, .out_p = out_p};
    blk_setup(&c, 2, 5, 8, train ? 40 : 30);
    long nx = (long)c.B * c.n * c.d;
    blk_loss(&c);
    float *dx = tu_zeros(nx);
    fsb_feat_attn_backward(dx, &c.g, &c.w, c.r, c.x, &c.p, c.B, c.n, c.d);
    if (train) ck_assert(c.w.attn_dropped && c.w.out_dropped);
    grad_check("block dinp", blk_loss, &c, c.x, dx, nx, 1e-2f, 1e-3);
    for (int t = 0; t < 7; t++) {
        float *pt, *gt;
        long n;
        const char *name = fsb_feat_attn_tensor(&pt, &n, &c.p, c.d, t);
        fsb_feat_attn_tensor(&gt, &n, &c.g, c.d, t);
        ck_assert_double_gt(tu_max_abs(gt, n), 1e-3); /* every tensor gets a gradient */
        grad_check(name, blk_loss, &c, pt, gt, n, 1e-2f, 1e-3);
    }
    free(dx);
    blk_free(&c);
}

START_TEST(feat_block_fd_eval)
{
    blk_fd(0, FSB_FEAT_ATTN_DROPOUT, FSB_FEAT_OUT_DROPOUT); /* rates ignored in eval */
}
END_TEST

START_TEST(feat_block_fd_train_fixed_masks)
{
    blk_fd(1, 0.3f, 0.4f);
}
END_TEST

/* Eval draws nothing and equals train at p = 0 bit for bit; train with FEAT's rates is a
 * pure function of the rng state; masks are 0 or 1/(1-p); backward accumulates. */
START_TEST(feat_block_dropout_modes)
{
    blk_ctx c;
    memset(&c, 0, sizeof c);
    blk_setup(&c, 3, 6, 16, 50);
    long nx = 3L * 6 * 16, na = 3L * 6 * 6;
    float *ev = tu_zeros(nx), *t0 = tu_zeros(nx), *t1 = tu_zeros(nx), *t2 = tu_zeros(nx);
    fsb_rng r, before;
    fsb_rng_init(&r, 7, 0);
    before = r;
    fsb_feat_attn_forward(ev, &c.w, c.x, &c.p, 0.1f, 0.5f, 0, &r, 3, 6, 16);
    ck_assert(memcmp(&r, &before, sizeof r) == 0);
    fsb_feat_attn_forward(t0, &c.w, c.x, &c.p, 0.1f, 0.5f, 0, NULL, 3, 6, 16);
    ck_assert(memcmp(ev, t0, sizeof(float) * (size_t)nx) == 0);
    fsb_feat_attn_forward(t0, &c.w, c.x, &c.p, 0, 0, 1, &r, 3, 6, 16);
    ck_assert(memcmp(ev, t0, sizeof(float) * (size_t)nx) == 0);
    ck_assert(memcmp(&r, &before, sizeof r) == 0 && !c.w.attn_dropped && !c.w.out_dropped);
    fsb_rng r1 = before, r2 = before, r3;
    fsb_rng_init(&r3, 8, 0);
    fsb_feat_attn_forward(t1, &c.w, c.x, &c.p, FSB_FEAT_ATTN_DROPOUT, FSB_FEAT_OUT_DROPOUT, 1, &r1,
                          3, 6, 16);
    long zeros_a = 0, zeros_o = 0;
    for (long i = 0; i < na; i++) {
        float m = c.w.attn_mask[i];
        ck_assert(m == 0 || fabsf(m - 1 / 0.9f) < 1e-6f);
        ck_assert_float_eq(c.w.attn_drop[i], c.w.attn[i] * m);
        zeros_a += m == 0;
    }
    for (long i = 0; i < nx; i++) {
        ck_assert(c.w.out_mask[i] == 0 || c.w.out_mask[i] == 2.0f);
        zeros_o += c.w.out_mask[i] == 0;
    }
    ck_assert(zeros_a > 0 && zeros_a < na / 4);
    ck_assert(zeros_o > nx / 4 && zeros_o < 3 * nx / 4);
    fsb_feat_attn_forward(t2, &c.w, c.x, &c.p, FSB_FEAT_ATTN_DROPOUT, FSB_FEAT_OUT_DROPOUT, 1, &r2,
                          3, 6, 16);
    ck_assert(memcmp(t1, t2, sizeof(float) * (size_t)nx) == 0);
    ck_assert(memcmp(&r1, &r2, sizeof r1) == 0);
    fsb_feat_attn_forward(t2, &c.w, c.x, &c.p, FSB_FEAT_ATTN_DROPOUT, FSB_FEAT_OUT_DROPOUT, 1, &r3,
                          3, 6, 16);
    ck_assert(memcmp(t1, t2, sizeof(float) * (size_t)nx) != 0);
    /* backward twice (same saved state) doubles everything; NULL dinp / grads are allowed */
    float *dx = tu_zeros(nx);
    long np = fsb_feat_attn_n_params(16);
    fsb_feat_attn_backward(dx, &c.g, &c.w, c.r, c.x, &c.p, 3, 6, 16);
    float *dx1 = malloc(sizeof(float) * (size_t)nx), *g1 = malloc(sizeof(float) * (size_t)np);
    memcpy(dx1, dx, sizeof(float) * (size_t)nx);
    memcpy(g1, c.gmem, sizeof(float) * (size_t)np);
    fsb_feat_attn_backward(dx, NULL, &c.w, c.r, c.x, &c.p, 3, 6, 16);
    fsb_feat_attn_backward(NULL, &c.g, &c.w, c.r, c.x, &c.p, 3, 6, 16);
    for (long i = 0; i < nx; i++)
        ck_assert_float_eq_tol(dx[i], 2 * dx1[i], 1e-6f * (1 + fabsf(dx1[i])));
    for (long i = 0; i < np; i++)
        ck_assert_float_eq_tol(c.gmem[i], 2 * g1[i], 1e-6f * (1 + fabsf(g1[i])));
    free(ev), free(t0), free(t1), free(t2), free(dx), free(dx1), free(g1);
    blk_free(&c);
}
END_TEST

START_TEST(feat_block_init_and_layout)
{
    int d = 64;
    long np = fsb_feat_attn_n_params(d);
    ck_assert_int_eq(np, 4 * 64 * 64 + 3 * 64);
    float *mem = tu_zeros(np), *mem2 = tu_zeros(np);
    fsb_feat_attn_params p, p2;
    fsb_feat_attn_bind(&p, mem, d);
    fsb_feat_attn_bind(&p2, mem2, d);
    static const char *names[7] = {
        "w_qs.weight",     "w_ks.weight", "w_vs.weight", "layer_norm.weight",
        "layer_norm.bias", "fc.weight",   "fc.bias"};
    float *at = mem, *data;
    long n, total = 0;
    for (int t = 0; t < 7; t++) { /* contiguous, in FEAT's state_dict order */
        ck_assert_str_eq(fsb_feat_attn_tensor(&data, &n, &p, d, t), names[t]);
        ck_assert_ptr_eq(data, at);
        at += n, total += n;
    }
    ck_assert_int_eq(total, np);
    ck_assert_ptr_null(fsb_feat_attn_tensor(&data, &n, &p, d, 7));
    ck_assert_ptr_null(fsb_feat_attn_tensor(&data, &n, &p, d, -1));
    fsb_rng r, r2;
    fsb_rng_init(&r, 1, 0);
    fsb_rng_init(&r2, 1, 0);
    fsb_feat_attn_init(&p, d, &r);
    fsb_feat_attn_init(&p2, d, &r2);
    ck_assert(memcmp(mem, mem2, sizeof(float) * (size_t)np) == 0);
    /* N(0, sqrt(2/(d+d))) = N(0, 1/8) for the four matrices (4096 draws each: +-3%) */
    const float *mats[4] = {p.wq, p.wk, p.wv, p.fc_w};
    for (int t = 0; t < 4; t++) {
        double s = 0, ss = 0;
        for (int i = 0; i < d * d; i++)
            s += mats[t][i], ss += (double)mats[t][i] * mats[t][i];
        ck_assert_double_lt(fabs(s / (d * d)), 0.01);
        ck_assert_double_lt(fabs(sqrt(ss / (d * d)) - 0.125), 0.125 * 0.03);
    }
    double lo = 1, hi = -1;
    for (int i = 0; i < d; i++) {
        ck_assert_float_eq(p.ln_w[i], 1);
        ck_assert_float_eq(p.ln_b[i], 0);
        lo = p.fc_b[i] < lo ? p.fc_b[i] : lo, hi = p.fc_b[i] > hi ? p.fc_b[i] : hi;
    }
    ck_assert(lo >= -0.125 && hi <= 0.125 && lo < -0.08 && hi > 0.08); /* U(-1/8, 1/8) */
    free(mem), free(mem2);
}
END_TEST

/* The block through a tensor file under FEAT's names and shapes, and back with
 * fsb_feat_attn_load; a file without the block or with another dimension is refused naming
 * the file and the tensor, leaving the destination untouched. */
START_TEST(feat_block_tensorfile_round_trip)
{
    int d = 6;
    long np = fsb_feat_attn_n_params(d);
    float *mem = tu_zeros(np), *back = tu_zeros(np), *other = tu_zeros(fsb_feat_attn_n_params(4));
    fsb_feat_attn_params p, q, r;
    fsb_feat_attn_bind(&p, mem, d);
    fsb_rng rng;
    fsb_rng_init(&rng, 7, 0);
    fsb_feat_attn_init(&p, d, &rng);
    char *dir = tu_tmpdir(), *path = tu_path(dir, "feat.fsbt"), *bare = tu_path(dir, "bare.fsbt");
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "encoder.x", FSB_F32, 0, NULL, NULL), FSB_OK);
    ck_assert_int_eq(fsb_feat_attn_to_tensorfile(&tf, &p, d, FSB_FEAT_ATTN_PREFIX), FSB_OK);
    const fsb_tensor *t = fsb_tensorfile_get(&tf, "slf_attn.w_qs.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert(t->ndim == 2 && t->dims[0] == d && t->dims[1] == d);
    t = fsb_tensorfile_get(&tf, "slf_attn.fc.bias");
    ck_assert(t && t->ndim == 1 && t->dims[0] == d);
    ck_assert_ptr_nonnull(fsb_tensorfile_get(&tf, "slf_attn.layer_norm.weight"));
    ck_assert_int_eq(fsb_tensorfile_save(&tf, path), FSB_OK);
    fsb_tensorfile_free(&tf);
    ck_assert_msg(fsb_feat_attn_load(path, &q, back, d) == FSB_OK, "%s", fsb_error_last());
    ck_assert_ptr_eq(q.wq, back);
    ck_assert(memcmp(mem, back, sizeof(float) * (size_t)np) == 0);
    /* another dimension: refused, naming the tensor; nothing copied */
    ck_assert_int_eq(fsb_feat_attn_load(path, &r, other, 4), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "feat.fsbt"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "slf_attn.w_qs.weight"));
    for (long i = 0; i < fsb_feat_attn_n_params(4); i++)
        ck_assert_float_eq(other[i], 0);
    /* a plain backbone file: no FEAT block */
    fsb_tensorfile_init(&tf);
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "encoder.x", FSB_F32, 0, NULL, NULL), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_save(&tf, bare), FSB_OK);
    fsb_tensorfile_free(&tf);
    ck_assert_int_eq(fsb_feat_attn_load(bare, &q, back, d), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "bare.fsbt"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "no FEAT block"));
    /* a missing file */
    char *none = tu_path(dir, "none.fsbt");
    ck_assert_int_ne(fsb_feat_attn_load(none, &q, back, d), FSB_OK);
    tu_rmrf(dir);
    free(dir), free(path), free(bare), free(none), free(mem), free(back), free(other);
}
END_TEST

START_TEST(feat_block_workspace_arena)
{
    ck_assert_int_eq(fsb_feat_attn_work_floats(2, 5, 64), 11L * 640 + 5L * 50 + 2L * 10);
    fsb_arena a;
    ck_assert_int_eq(fsb_arena_init(&a, 4096), FSB_OK);
    fsb_feat_attn_work w;
    fsb_error_clear();
    ck_assert_int_eq(fsb_feat_attn_work_alloc(&w, &a, 2, 5, 64), FSB_ENOMEM);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "FEAT attention workspace (B 2, n 5, d 64)"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "arena"));
    ck_assert_int_eq(fsb_feat_attn_work_alloc(&w, &a, 1, 3, 8), FSB_OK); /* 315 floats fit */
    ck_assert(w.B == 1 && w.n == 3 && w.d == 8);
    ck_assert_ptr_eq(w.ln_rstd + 3, (float *)(void *)a.base + fsb_feat_attn_work_floats(1, 3, 8));
    fsb_arena_free(&a);
    /* a forward/backward from the arena equals one from malloc'd memory */
    blk_ctx c;
    memset(&c, 0, sizeof c);
    blk_setup(&c, 2, 5, 8, 60);
    ck_assert_int_eq(fsb_arena_init(&a, 1 << 20), FSB_OK);
    fsb_feat_attn_work wa;
    ck_assert_int_eq(fsb_feat_attn_work_alloc(&wa, &a, 2, 5, 8), FSB_OK);
    float *o1 = tu_zeros(80), *o2 = tu_zeros(80);
    fsb_feat_attn_forward(o1, &c.w, c.x, &c.p, 0, 0, 0, NULL, 2, 5, 8);
    fsb_feat_attn_forward(o2, &wa, c.x, &c.p, 0, 0, 0, NULL, 2, 5, 8);
    ck_assert(memcmp(o1, o2, sizeof(float) * 80) == 0);
    free(o1), free(o2);
    fsb_arena_free(&a);
    blk_free(&c);
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
        err = fabs((double)got[i] - want[i]) > err ? fabs((double)got[i] - want[i]) : err;
    ck_assert_msg(err <= tol * scale, "%s: max error %g, scale %g", name, err, scale);
    return err / scale;
}

START_TEST(feat_block_matches_torch)
{
    const char *src = getenv("FSB_SOURCE_DIR");
    char *path = tu_path(src && *src ? src : ".", "tests/fixtures/torch_feat_attention.fsbt");
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_msg(fsb_tensorfile_load(&tf, path) == FSB_OK, "%s", fsb_error_last());
    int B = (int)tu_meta_long(&tf, "B"), n = (int)tu_meta_long(&tf, "n"),
        d = (int)tu_meta_long(&tf, "d");
    ck_assert(B == 2 && n == 5 && d == 64);
    long nx = (long)B * n * d, np = fsb_feat_attn_n_params(d);
    float *pmem = tu_zeros(np), *gmem = tu_zeros(np),
          *wmem = tu_zeros(fsb_feat_attn_work_floats(B, n, d));
    float *out = tu_zeros(nx), *dx = tu_zeros(nx);
    fsb_feat_attn_params p, g;
    fsb_feat_attn_work w;
    fsb_feat_attn_bind(&p, pmem, d);
    fsb_feat_attn_bind(&g, gmem, d);
    fsb_feat_attn_work_bind(&w, wmem, B, n, d);
    const float *x, *r, *src_t;
    float *data;
    long numel;
    for (int t = 0; t < 7; t++) {
        const char *name = fsb_feat_attn_tensor(&data, &numel, &p, d, t);
        ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, "fixture", name, (size_t)numel, &src_t),
                         FSB_OK);
        memcpy(data, src_t, sizeof(float) * (size_t)numel);
    }
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, "fixture", "input", (size_t)nx, &x), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, "fixture", "loss.weight", (size_t)nx, &r), FSB_OK);
    double worst = 0;
    char key[128];
    fsb_rng rng;
    fsb_rng_init(&rng, 1, 0);
    for (int train = 0; train <= 1; train++) {
        const char *mode = train ? "train" : "eval";
        /* eval: FEAT's rates (inactive); train: both at 0, as in the fixture */
        float ap = train ? 0 : FSB_FEAT_ATTN_DROPOUT, op = train ? 0 : FSB_FEAT_OUT_DROPOUT;
        fsb_feat_attn_forward(out, &w, x, &p, ap, op, train, &rng, B, n, d);
        snprintf(key, sizeof key, "%s.output", mode);
        worst = fmax(worst, expect_close(&tf, key, out, nx, 1e-5));
        float loss = (float)dot(out, r, nx);
        snprintf(key, sizeof key, "%s.loss", mode);
        worst = fmax(worst, expect_close(&tf, key, &loss, 1, 1e-5));
        memset(dx, 0, sizeof(float) * (size_t)nx);
        memset(gmem, 0, sizeof(float) * (size_t)np);
        fsb_feat_attn_backward(dx, &g, &w, r, x, &p, B, n, d);
        snprintf(key, sizeof key, "%s.grad.input", mode);
        worst = fmax(worst, expect_close(&tf, key, dx, nx, 1e-5));
        for (int t = 0; t < 7; t++) {
            const char *name = fsb_feat_attn_tensor(&data, &numel, &g, d, t);
            snprintf(key, sizeof key, "%s.grad.%s", mode, name);
            worst = fmax(worst, expect_close(&tf, key, data, numel, 1e-5));
        }
    }
    fprintf(stderr, "feat attention vs torch: max relative error %.2g (tolerance 1e-5)\n", worst);
    free(pmem), free(gmem), free(wmem), free(out), free(dx), free(path);
    fsb_tensorfile_free(&tf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, bmm_matches_reference_and_fd);
    tcase_add_test(tc, bmm_hand_values);
    tcase_add_test(tc, layernorm_hand_values);
    tcase_add_test(tc, layernorm_fd);
    tcase_add_test(tc, softmax_hand_values);
    tcase_add_test(tc, softmax_fd);
    tcase_add_test(tc, feat_block_fd_eval);
    tcase_add_test(tc, feat_block_fd_train_fixed_masks);
    tcase_add_test(tc, feat_block_dropout_modes);
    tcase_add_test(tc, feat_block_init_and_layout);
    tcase_add_test(tc, feat_block_workspace_arena);
    tcase_add_test(tc, feat_block_tensorfile_round_trip);
    tcase_add_test(tc, feat_block_matches_torch);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
