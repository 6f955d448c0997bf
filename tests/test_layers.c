/* test_layers.c - every layer in include/fsb/layers.h: fast kernels against the naive
 * references, finite-difference gradient checks (central differences in float on a random
 * linear functional of the output, skipping kinks), and hand-computed values (BN running
 * statistics, pooling winners, losses, DropBlock geometry).
 */
#include "fsb/layers.h"
#include "fsb/rng.h"

#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *rnd(long n, float scale, uint64_t seed)
{
    fsb_rng r;
    fsb_rng_init(&r, seed, 0);
    float *p = malloc(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++)
        p[i] = (float)fsb_rng_normal(&r) * scale;
    return p;
}

static float *zeros(long n)
{
    return calloc((size_t)n, sizeof(float));
}

/* A loss L(params) = Σ w_i out_i evaluated by the callback. */
typedef double (*loss_fn)(void *ctx);

/* Compare analytic gradient g (n) of L w.r.t. x (n) with central differences on every
 * element (or a stride through them); entries where the two one-sided differences
 * disagree are kinks and skipped. err <= tol * max(max|g|, 1e-3). Returns checked count. */
static int fd_check(loss_fn f, void *ctx, float *x, const float *g, long n, float eps, double tol)
{
    double gmax = 1e-3;
    for (long i = 0; i < n; i++)
        gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    int checked = 0;
    long step = n > 200 ? n / 200 : 1;
    for (long i = 0; i < n; i += step) {
        float x0 = x[i];
        double l0 = f(ctx);
        x[i] = x0 + eps;
        double lp = f(ctx);
        x[i] = x0 - eps;
        double lm = f(ctx);
        x[i] = x0;
        double fwd = (lp - l0) / eps, bwd = (l0 - lm) / eps, num = (lp - lm) / (2 * eps);
        if (fabs(fwd - bwd) > 10 * tol * gmax + 1e-3 * (fabs(fwd) + fabs(bwd)))
            continue; /* kink (ReLU, max) inside [x-eps, x+eps] */
        ck_assert_msg(fabs(num - g[i]) <= tol * gmax, "element %ld: numeric %g analytic %g", i, num,
                      (double)g[i]);
        checked++;
    }
    return checked;
}

static double dot(const float *a, const float *w, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++)
        s += (double)a[i] * w[i];
    return s;
}

/* ---- convolution ------------------------------------------------------------------------ */

typedef struct {
    int B, C, H, W, OC, k;
    float *x, *wt, *b, *out, *col, *w;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    fsb_conv2d_forward(c->out, c->col, c->x, c->wt, c->b, c->B, c->C, c->H, c->W, c->OC, c->k);
    return dot(c->out, c->w, (long)c->B * c->OC * c->H * c->W);
}

static void conv_case(int k, int bias)
{
    conv_ctx c = {.B = 2, .C = 3, .H = 5, .W = 6, .OC = 4, .k = k};
    long nx = (long)c.B * c.C * c.H * c.W, nw = (long)c.OC * c.C * k * k,
         no = (long)c.B * c.OC * c.H * c.W;
    c.x = rnd(nx, 1, 1);
    c.wt = rnd(nw, 0.5f, 2);
    c.b = bias ? rnd(c.OC, 1, 3) : NULL;
    c.out = zeros(no);
    c.col = zeros(2L * c.C * k * k * c.H * c.W);
    c.w = rnd(no, 1, 4);
    float *ref = zeros(no);
    conv_loss(&c);
    fsb_conv2d_forward_ref(ref, c.x, c.wt, c.b, c.B, c.C, c.H, c.W, c.OC, k);
    for (long i = 0; i < no; i++)
        ck_assert_float_eq_tol(c.out[i], ref[i], 1e-4);
    float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(c.OC);
    float *rdx = zeros(nx), *rdw = zeros(nw), *rdb = zeros(c.OC);
    fsb_conv2d_backward(dx, dw, bias ? db : NULL, c.col, c.w, c.x, c.wt, c.B, c.C, c.H, c.W, c.OC,
                        k);
    fsb_conv2d_backward_ref(rdx, rdw, bias ? rdb : NULL, c.w, c.x, c.wt, c.B, c.C, c.H, c.W, c.OC,
                            k);
    for (long i = 0; i < nx; i++)
        ck_assert_float_eq_tol(dx[i], rdx[i], 1e-4);
    for (long i = 0; i < nw; i++)
        ck_assert_float_eq_tol(dw[i], rdw[i], 1e-3);
    for (int i = 0; bias && i < c.OC; i++)
        ck_assert_float_eq_tol(db[i], rdb[i], 1e-4);
    ck_assert_int_gt(fd_check(conv_loss, &c, c.x, dx, nx, 1e-2f, 2e-3), 50);
    ck_assert_int_ge(fd_check(conv_loss, &c, c.wt, dw, nw, 1e-2f, 2e-3), nw < 30 ? nw : 30);
    if (bias) ck_assert_int_eq(fd_check(conv_loss, &c, c.b, db, c.OC, 1e-2f, 2e-3), c.OC);
    /* accumulation: a second backward doubles the gradients */
    fsb_conv2d_backward(dx, dw, NULL, c.col, c.w, c.x, c.wt, c.B, c.C, c.H, c.W, c.OC, k);
    for (long i = 0; i < nx; i++)
        ck_assert_float_eq_tol(dx[i], 2 * rdx[i], 2e-4);
    free(c.x), free(c.wt), free(c.b), free(c.out), free(c.col), free(c.w), free(ref);
    free(dx), free(dw), free(db), free(rdx), free(rdw), free(rdb);
}

START_TEST(conv3x3_matches_reference_and_fd)
{
    conv_case(3, 1);
    conv_case(3, 0);
}
END_TEST

START_TEST(conv1x1_matches_reference_and_fd)
{
    conv_case(1, 0);
}
END_TEST

/* The direct small-Cin 3x3 convolution (one image, no bias) against the naive reference,
 * on the AVX-512 path (when the CPU has it) and the portable one; odd sizes, Cin 1 and 3,
 * OC not a multiple of the 8-channel block (overlapping last block), widths around the
 * 16- and 48-column vector blocks; dW both set and accumulated. */
static void conv_small_case(int C, int H, int W, int OC, int simd)
{
    long nx = (long)C * H * W, nw = (long)OC * C * 9, no = (long)OC * H * W;
    float *x = rnd(nx, 1, 11), *wt = rnd(nw, 0.5f, 12), *d = rnd(no, 1, 13);
    float *sc = zeros(fsb_conv3_small_scratch(C, H, W, OC));
    float *out = rnd(no, 1, 14), *ref = zeros(no); /* out: garbage that must be overwritten */
    float *dw = rnd(nw, 1, 15), *rdw = zeros(nw), *rdx = zeros(nx);
    double *mom = calloc(2 * (size_t)OC, sizeof(double));
    fsb_conv3_small_forward(out, mom, sc, x, wt, C, H, W, OC, simd);
    fsb_conv2d_forward_ref(ref, x, wt, NULL, 1, C, H, W, OC, 3);
    for (long i = 0; i < no; i++)
        ck_assert_msg(fabsf(out[i] - ref[i]) <= 1e-4f * (1 + fabsf(ref[i])),
                      "C %d %dx%d OC %d simd %d: out[%ld] %g ref %g", C, H, W, OC, simd, i,
                      (double)out[i], (double)ref[i]);
    for (int o = 0; o < OC; o++) { /* plane moments in double from the reference */
        long n = (long)H * W;
        double s = 0, q = 0;
        for (long i = 0; i < n; i++)
            s += ref[o * n + i];
        s /= (double)n;
        for (long i = 0; i < n; i++)
            q += (ref[o * n + i] - s) * (ref[o * n + i] - s);
        ck_assert_msg(fabs(mom[o] - s) <= 1e-4 * (1 + fabs(s)), "mean %d: %g vs %g", o, mom[o], s);
        ck_assert_msg(fabs(mom[OC + o] - q) <= 1e-4 * (1 + q), "M2 %d: %g vs %g", o, mom[OC + o],
                      q);
    }
    free(mom);
    fsb_conv3_small_forward(out, NULL, sc, x, wt, C, H, W, OC, simd); /* mom is optional */
    fsb_conv2d_backward_ref(rdx, rdw, NULL, d, x, wt, 1, C, H, W, OC, 3);
    fsb_conv3_small_dweight(dw, sc, d, x, C, H, W, OC, 0, simd); /* overwrite the garbage */
    for (long i = 0; i < nw; i++)
        ck_assert_msg(fabsf(dw[i] - rdw[i]) <= 1e-4f * (1 + fabsf(rdw[i])),
                      "C %d %dx%d OC %d simd %d: dw[%ld] %g ref %g", C, H, W, OC, simd, i,
                      (double)dw[i], (double)rdw[i]);
    fsb_conv3_small_dweight(dw, sc, d, x, C, H, W, OC, 1, simd); /* += */
    for (long i = 0; i < nw; i++)
        ck_assert_msg(fabsf(dw[i] - 2 * rdw[i]) <= 2e-4f * (1 + fabsf(rdw[i])),
                      "C %d %dx%d OC %d simd %d: accumulated dw[%ld] %g ref %g", C, H, W, OC, simd,
                      i, (double)dw[i], 2 * (double)rdw[i]);
    free(x), free(wt), free(d), free(sc), free(out), free(ref), free(dw), free(rdw), free(rdx);
}

START_TEST(conv_small_matches_reference)
{
    static const int sz[][4] = {{3, 7, 5, 8},    {1, 5, 7, 16},  {3, 9, 17, 12}, {1, 1, 1, 8},
                                {3, 4, 48, 9},   {2, 6, 49, 64}, {3, 11, 33, 3}, {3, 21, 84, 64},
                                {1, 3, 100, 10}, {4, 2, 16, 8}};
    for (int simd = 0; simd <= 1; simd++)
        for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
            conv_small_case(sz[i][0], sz[i][1], sz[i][2], sz[i][3], simd);
    /* simd = 1 only means AVX-512 where the CPU has it; report what was covered */
    if (!fsb_conv3_small_simd()) fprintf(stderr, "conv_small: no AVX-512, portable path only\n");
}
END_TEST

/* The _part functions over a range of output channels give the whole call's bits for
 * those channels and leave the others alone (the model splits an image's work by them). */
START_TEST(conv_small_parts_match_whole)
{
    static const int sz[][4] = {{3, 21, 84, 64}, {3, 9, 17, 24}, {1, 5, 7, 16}};
    for (int simd = 0; simd <= 1; simd++)
        for (size_t k = 0; k < sizeof sz / sizeof sz[0]; k++) {
            int C = sz[k][0], H = sz[k][1], W = sz[k][2], OC = sz[k][3];
            long nx = (long)C * H * W, nw = (long)OC * C * 9, no = (long)OC * H * W;
            float *x = rnd(nx, 1, 31), *wt = rnd(nw, 0.5f, 32), *d = rnd(no, 1, 33);
            float *sc = zeros(fsb_conv3_small_scratch(C, H, W, OC));
            float *whole = zeros(no), *part = rnd(no, 1, 34);
            float *dw_whole = rnd(nw, 1, 35), *dw_part = zeros(nw);
            memcpy(dw_part, dw_whole, sizeof(float) * (size_t)nw);
            double *mw = calloc(2 * (size_t)OC, sizeof(double));
            double *mp = calloc(2 * (size_t)OC, sizeof(double));
            fsb_conv3_small_forward(whole, mw, sc, x, wt, C, H, W, OC, simd);
            fsb_conv3_small_dweight(dw_whole, sc, d, x, C, H, W, OC, 1, simd);
            /* ranges of at least 8 channels, the last one ragged */
            int mid = OC / 2 + 3 > 16 ? OC / 2 + 3 : 16,
                cut[4] = {0, 8, mid < OC - 8 ? mid : OC - 8, OC};
            int np = OC >= 24 ? 3 : 1;
            if (np == 1) cut[1] = OC;
            for (int q = 0; q < np; q++) {
                fsb_conv3_small_forward_part(part, mp, sc, x, wt, C, H, W, OC, cut[q], cut[q + 1],
                                             simd);
                fsb_conv3_small_dweight_part(dw_part, sc, d, x, C, H, W, OC, cut[q], cut[q + 1], 1,
                                             simd);
            }
            ck_assert_msg(memcmp(whole, part, sizeof(float) * (size_t)no) == 0, "out, case %zu", k);
            ck_assert_msg(memcmp(mw, mp, sizeof(double) * 2 * (size_t)OC) == 0, "mom, case %zu", k);
            ck_assert_msg(memcmp(dw_whole, dw_part, sizeof(float) * (size_t)nw) == 0,
                          "dweight, case %zu", k);
            free(x), free(wt), free(d), free(sc), free(whole), free(part), free(dw_whole),
                free(dw_part), free(mw), free(mp);
        }
}
END_TEST

START_TEST(im2col_hand_values)
{
    /* 1 channel 2x2 image [1 2; 3 4], 3x3 pad 1: row (ki=0,kj=0) sees [0 0; 0 1] */
    float img[4] = {1, 2, 3, 4}, col[36];
    fsb_im2col(col, img, 1, 2, 2, 3);
    float r0[4] = {0, 0, 0, 1}, r4[4] = {1, 2, 3, 4}, r8[4] = {4, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        ck_assert_float_eq(col[i], r0[i]);
        ck_assert_float_eq(col[16 + i], r4[i]);
        ck_assert_float_eq(col[32 + i], r8[i]);
    }
}
END_TEST

START_TEST(im2col_row_tiles_match_full)
{
    int C = 2, H = 7, W = 5;
    float *x = rnd((long)C * H * W, 1, 50), *full = zeros((long)C * 9 * H * W),
          *tile = zeros((long)C * 9 * H * W);
    fsb_im2col(full, x, C, H, W, 3);
    for (int y0 = 0; y0 < H; y0++)
        for (int y1 = y0 + 1; y1 <= H; y1++) {
            int N = (y1 - y0) * W;
            fsb_im2col_rows(tile, x, C, H, W, 3, y0, y1);
            for (int r = 0; r < C * 9; r++)
                for (int i = 0; i < N; i++)
                    ck_assert_float_eq(tile[(long)r * N + i], full[(long)r * H * W + y0 * W + i]);
        }
    /* against the definition: row (c,ki,kj), pixel (y,x) = x[c, y+ki-1, x+kj-1] or 0 */
    for (int c = 0; c < C; c++)
        for (int q = 0; q < 9; q++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    int sy = y + q / 3 - 1, sx = xx + q % 3 - 1;
                    float want =
                        sy < 0 || sy >= H || sx < 0 || sx >= W ? 0 : x[(c * H + sy) * W + sx];
                    ck_assert_float_eq(full[((long)c * 9 + q) * H * W + y * W + xx], want);
                }
    free(x), free(full), free(tile);
}
END_TEST

/* ---- batch norm ------------------------------------------------------------------------- */

typedef struct {
    int B, C, HW, train;
    float *x, *g, *b, *out, *mean, *rstd, *rm, *rv, *w;
} bn_ctx;

static double bn_loss(void *p)
{
    bn_ctx *c = p;
    fsb_batchnorm_forward(c->out, c->mean, c->rstd, c->x, c->g, c->b, c->train ? NULL : c->rm,
                          c->train ? NULL : c->rv, c->B, c->C, c->HW, c->train);
    return dot(c->out, c->w, (long)c->B * c->C * c->HW);
}

START_TEST(batchnorm_running_stats_hand_values)
{
    float x[4] = {1, 2, 3, 4}, out[4], mean[1], rstd[1], g[1] = {2}, b[1] = {1};
    float rm[1] = {0}, rv[1] = {1};
    fsb_batchnorm_forward(out, mean, rstd, x, g, b, rm, rv, 2, 1, 2, 1);
    ck_assert_float_eq_tol(mean[0], 2.5f, 1e-6);
    ck_assert_float_eq_tol(rstd[0], 1.0f / sqrtf(1.25f + 1e-5f), 1e-6);
    ck_assert_float_eq_tol(rm[0], 0.25f, 1e-6);
    ck_assert_float_eq_tol(rv[0], 0.9f + 0.1f * (5.0f / 3.0f), 1e-6);
    ck_assert_float_eq_tol(out[0], 1 + 2 * (-1.5f) / sqrtf(1.25f + 1e-5f), 1e-5);
    /* eval mode uses the running statistics */
    fsb_batchnorm_forward(out, mean, rstd, x, g, b, rm, rv, 2, 1, 2, 0);
    ck_assert_float_eq_tol(out[3], 1 + 2 * (4 - 0.25f) / sqrtf(rv[0] + 1e-5f), 1e-5);
}
END_TEST

START_TEST(batchnorm_fd_train_and_eval)
{
    for (int train = 1; train >= 0; train--) {
        bn_ctx c = {.B = 3, .C = 2, .HW = 5, .train = train};
        long n = (long)c.B * c.C * c.HW;
        c.x = rnd(n, 2, 5);
        for (long i = 0; i < n; i++)
            c.x[i] += 1.0f;
        c.g = rnd(c.C, 1, 6);
        c.b = rnd(c.C, 1, 7);
        c.w = rnd(n, 1, 8);
        c.out = zeros(n);
        c.mean = zeros(c.C), c.rstd = zeros(c.C);
        float rm[2] = {0.3f, -0.2f}, rv[2] = {1.5f, 0.7f};
        c.rm = rm, c.rv = rv;
        bn_loss(&c);
        float *dx = zeros(n), *dg = zeros(c.C), *db = zeros(c.C);
        fsb_batchnorm_backward(dx, dg, db, c.w, c.x, c.mean, c.rstd, c.g, c.B, c.C, c.HW, train);
        ck_assert_int_gt(fd_check(bn_loss, &c, c.x, dx, n, 1e-2f, 3e-3), 25);
        ck_assert_int_eq(fd_check(bn_loss, &c, c.g, dg, c.C, 1e-2f, 3e-3), c.C);
        ck_assert_int_eq(fd_check(bn_loss, &c, c.b, db, c.C, 1e-2f, 3e-3), c.C);
        free(c.x), free(c.g), free(c.b), free(c.w), free(c.out), free(c.mean), free(c.rstd);
        free(dx), free(dg), free(db);
    }
}
END_TEST

/* ---- activations and pooling ------------------------------------------------------------- */

typedef struct {
    int kind; /* 0 leaky, 1 maxpool2, 2 gmax, 3 gavg, 4 linear */
    int B, C, H, W, OC;
    float slope;
    float *x, *out, *w, *wt, *b;
    uint8_t *arg;
    int32_t *garg;
} simple_ctx;

static long simple_out_n(const simple_ctx *c)
{
    switch (c->kind) {
    case 0:
        return (long)c->B * c->C * c->H * c->W;
    case 1:
        return (long)c->B * c->C * (c->H / 2) * (c->W / 2);
    case 4:
        return (long)c->B * c->OC;
    default:
        return (long)c->B * c->C;
    }
}

static double simple_loss(void *p)
{
    simple_ctx *c = p;
    long n = (long)c->B * c->C * c->H * c->W;
    switch (c->kind) {
    case 0:
        fsb_leaky_relu_forward(c->out, c->x, n, c->slope);
        break;
    case 1:
        fsb_maxpool2_forward(c->out, c->arg, c->x, c->B, c->C, c->H, c->W);
        break;
    case 2:
        fsb_global_maxpool_forward(c->out, c->garg, c->x, c->B, c->C, c->H * c->W);
        break;
    case 3:
        fsb_global_avgpool_forward(c->out, c->x, c->B, c->C, c->H * c->W);
        break;
    default:
        fsb_linear_forward(c->out, c->x, c->wt, c->b, c->B, c->C, c->OC);
    }
    return dot(c->out, c->w, simple_out_n(c));
}

static void simple_case(int kind, float slope)
{
    simple_ctx c = {.kind = kind, .B = 2, .C = 3, .H = 5, .W = 5, .OC = 4, .slope = slope};
    if (kind == 4) c.H = c.W = 1, c.C = 7;
    long n = (long)c.B * c.C * c.H * c.W, no = simple_out_n(&c);
    c.x = rnd(n, 1, 11 + (uint64_t)kind);
    c.out = zeros(n);
    c.w = rnd(no, 1, 12);
    c.wt = rnd((long)c.OC * c.C, 1, 13);
    c.b = rnd(c.OC, 1, 14);
    c.arg = calloc((size_t)n, 1);
    c.garg = calloc((size_t)n, sizeof(int32_t));
    simple_loss(&c);
    float *dx = zeros(n), *dw = zeros((long)c.OC * c.C), *db = zeros(c.OC);
    switch (kind) {
    case 0:
        fsb_leaky_relu_backward(dx, c.w, c.x, n, slope);
        break;
    case 1:
        fsb_maxpool2_backward(dx, c.w, c.arg, c.B, c.C, c.H, c.W);
        break;
    case 2:
        fsb_global_maxpool_backward(dx, c.w, c.garg, c.B, c.C, c.H * c.W);
        break;
    case 3:
        fsb_global_avgpool_backward(dx, c.w, c.B, c.C, c.H * c.W);
        break;
    default:
        fsb_linear_backward(dx, dw, db, c.w, c.x, c.wt, c.B, c.C, c.OC);
    }
    ck_assert_int_gt(fd_check(simple_loss, &c, c.x, dx, n, 1e-3f, 2e-3), n / 2);
    if (kind == 4) {
        ck_assert_int_eq(fd_check(simple_loss, &c, c.wt, dw, (long)c.OC * c.C, 1e-2f, 2e-3),
                         c.OC * c.C);
        ck_assert_int_eq(fd_check(simple_loss, &c, c.b, db, c.OC, 1e-2f, 2e-3), c.OC);
    }
    free(c.x), free(c.out), free(c.w), free(c.wt), free(c.b), free(c.arg), free(c.garg);
    free(dx), free(dw), free(db);
}

START_TEST(activations_pools_linear_fd)
{
    simple_case(0, 0.0f);
    simple_case(0, 0.1f);
    simple_case(1, 0);
    simple_case(2, 0);
    simple_case(3, 0);
    simple_case(4, 0);
}
END_TEST

START_TEST(maxpool_floor_and_winners)
{
    /* 3x3 input: the last row/column is outside every window (floor) */
    float x[9] = {1, 5, 9, 3, 2, 9, 9, 9, 9}, out[1], dx[9] = {0}, g[1] = {2};
    uint8_t arg[1];
    fsb_maxpool2_forward(out, arg, x, 1, 1, 3, 3);
    ck_assert_float_eq(out[0], 5);
    ck_assert_int_eq(arg[0], 1);
    fsb_maxpool2_backward(dx, g, arg, 1, 1, 3, 3);
    ck_assert_float_eq(dx[1], 2);
    ck_assert_float_eq(dx[0] + dx[2] + dx[3] + dx[4] + dx[5] + dx[6] + dx[7] + dx[8], 0);
    float lr[3] = {-2, 0, 3}, lo[3];
    fsb_leaky_relu_forward(lo, lr, 3, 0.1f);
    ck_assert_float_eq_tol(lo[0], -0.2f, 1e-7);
    ck_assert_float_eq(lo[2], 3);
}
END_TEST

/* ---- regularisers ------------------------------------------------------------------------ */

START_TEST(dropout_mask_and_backward)
{
    long n = 10000;
    float *x = rnd(n, 1, 20), *out = zeros(n), *mask = zeros(n), *out2 = zeros(n),
          *mask2 = zeros(n), *dx = zeros(n), *g = rnd(n, 1, 21);
    fsb_rng r1, r2;
    fsb_rng_init(&r1, 5, 0);
    fsb_rng_init(&r2, 5, 0);
    fsb_dropout_forward(out, mask, x, n, 0.25f, &r1);
    fsb_dropout_forward(out2, mask2, x, n, 0.25f, &r2);
    long kept = 0;
    for (long i = 0; i < n; i++) {
        ck_assert(mask[i] == 0.0f || fabsf(mask[i] - 1.0f / 0.75f) < 1e-6f);
        ck_assert(mask[i] == mask2[i] && out[i] == out2[i]);
        ck_assert_float_eq(out[i], x[i] * mask[i]);
        kept += mask[i] != 0;
    }
    ck_assert_int_gt(kept, 7200);
    ck_assert_int_lt(kept, 7800);
    fsb_mask_backward(dx, g, mask, n);
    for (long i = 0; i < n; i++)
        ck_assert_float_eq(dx[i], g[i] * mask[i]);
    free(x), free(out), free(mask), free(out2), free(mask2), free(dx), free(g);
}
END_TEST

START_TEST(dropblock_gamma_and_blocks)
{
    /* FEAT: keep = max(1 - rate*step/40000, 1 - rate); gamma = (1-keep)/bs^2 * f^2/(f-bs+1)^2 */
    ck_assert_float_eq_tol(fsb_dropblock_gamma(0.1f, 40000, 10, 5), 0.1f / 25 * 100 / 36, 1e-7);
    ck_assert_float_eq_tol(fsb_dropblock_gamma(0.1f, 4000, 10, 5), 0.01f / 25 * 100 / 36, 1e-7);
    ck_assert_float_eq_tol(fsb_dropblock_gamma(0.1f, 1000000, 5, 5), 0.1f / 25 * 25, 1e-7);
    int B = 2, C = 3, H = 10, W = 10;
    long n = (long)B * C * H * W;
    float *x = rnd(n, 1, 30), *out = zeros(n), *mask = zeros(n);
    fsb_rng r;
    fsb_rng_init(&r, 9, 0);
    fsb_dropblock_forward(out, mask, x, B, C, H, W, 5, 0.05f, &r);
    long zero = 0;
    float scale = 0;
    for (long i = 0; i < n; i++) {
        if (mask[i] == 0)
            zero++;
        else
            scale = mask[i];
        ck_assert_float_eq(out[i], x[i] * mask[i]);
    }
    ck_assert_int_gt(zero, 0);
    ck_assert_float_eq_tol(scale, (float)n / (float)(n - zero), 1e-5);
    /* every zero lies in a 5x5 all-zero square fully inside its plane */
    for (long pl = 0; pl < B * C; pl++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                if (mask[pl * H * W + y * W + xx] != 0) continue;
                int found = 0;
                for (int i = y - 4; i <= y && !found; i++)
                    for (int j = xx - 4; j <= xx && !found; j++) {
                        if (i < 0 || j < 0 || i + 5 > H || j + 5 > W) continue;
                        int all = 1;
                        for (int a = 0; a < 5; a++)
                            for (int b = 0; b < 5; b++)
                                all &= mask[pl * H * W + (i + a) * W + j + b] == 0;
                        found = all;
                    }
                ck_assert(found);
            }
    /* gamma 0 keeps everything with scale 1 */
    fsb_dropblock_forward(out, mask, x, B, C, H, W, 5, 0.0f, &r);
    for (long i = 0; i < n; i++)
        ck_assert_float_eq(mask[i], 1.0f);
    free(x), free(out), free(mask);
}
END_TEST

/* ---- losses -------------------------------------------------------------------------------- */

typedef struct {
    float *z, *pt;
    int *t;
    int B, NC;
    float tau;
    int kl;
} loss_ctx;

static double loss_loss(void *p)
{
    loss_ctx *c = p;
    if (c->kl) return fsb_kl_div(NULL, NULL, c->z, c->pt, c->B, c->NC, c->tau, 1);
    return fsb_softmax_xent(NULL, NULL, c->z, c->t, c->B, c->NC, 1);
}

START_TEST(losses_hand_values_and_fd)
{
    float z0[4] = {0, 0, 1, 1}, probs[4];
    int t0[2] = {0, 1};
    ck_assert_double_eq_tol(fsb_softmax_xent(probs, NULL, z0, t0, 2, 2, 1), log(2.0), 1e-6);
    ck_assert_float_eq_tol(probs[0], 0.5f, 1e-7);
    /* KL of a distribution with itself is 0, and its gradient too */
    float pt[4], dl[4] = {0};
    fsb_softmax(pt, z0, 2, 2, 4.0f);
    ck_assert_double_eq_tol(fsb_kl_div(NULL, dl, z0, pt, 2, 2, 4.0f, 1), 0, 1e-7);
    ck_assert_float_eq_tol(dl[0], 0, 1e-7);
    /* hand value: P_S = softmax([2,0]/2) = [e/(e+1), 1/(e+1)], P_T = [0.5, 0.5] */
    float zs[2] = {2, 0}, ph[2] = {0.5f, 0.5f}, g[2] = {0};
    double e = exp(1.0), ps0 = e / (e + 1);
    double want = 0.5 * log(0.5 / ps0) + 0.5 * log(0.5 / (1 - ps0));
    ck_assert_double_eq_tol(fsb_kl_div(NULL, g, zs, ph, 1, 2, 2.0f, 3.0f), want, 1e-6);
    ck_assert_float_eq_tol(g[0], 3.0f * (float)(ps0 - 0.5) / 2.0f, 1e-6);

    loss_ctx c = {.B = 3, .NC = 5, .tau = 2.5f};
    c.z = rnd(15, 2, 40);
    c.pt = zeros(15);
    float *tz = rnd(15, 1, 41);
    fsb_softmax(c.pt, tz, 3, 5, 1.0f);
    int t[3] = {4, 0, 2};
    c.t = t;
    for (c.kl = 0; c.kl <= 1; c.kl++) {
        float *d = zeros(15);
        if (c.kl)
            fsb_kl_div(NULL, d, c.z, c.pt, 3, 5, c.tau, 1);
        else
            fsb_softmax_xent(NULL, d, c.z, c.t, 3, 5, 1);
        ck_assert_int_eq(fd_check(loss_loss, &c, c.z, d, 15, 1e-2f, 2e-3), 15);
        free(d);
    }
    free(c.z), free(c.pt), free(tz);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, conv3x3_matches_reference_and_fd);
    tcase_add_test(tc, conv1x1_matches_reference_and_fd);
    tcase_add_test(tc, conv_small_matches_reference);
    tcase_add_test(tc, conv_small_parts_match_whole);
    tcase_add_test(tc, im2col_hand_values);
    tcase_add_test(tc, im2col_row_tiles_match_full);
    tcase_add_test(tc, batchnorm_running_stats_hand_values);
    tcase_add_test(tc, batchnorm_fd_train_and_eval);
    tcase_add_test(tc, activations_pools_linear_fd);
    tcase_add_test(tc, maxpool_floor_and_winners);
    tcase_add_test(tc, dropout_mask_and_backward);
    tcase_add_test(tc, dropblock_gamma_and_blocks);
    tcase_add_test(tc, losses_hand_values_and_fd);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
