/* model_run.c - fused, threaded forward and backward passes of fsb_model.
 *
 * Per conv unit, train mode: phase A (per image) conv GEMM -> y, per-channel mean and M2 of
 * the image; the batch statistics are combined in image order (Chan et al.); phase B (per
 * image) BN + residual + activation + pool -> out. Backward: phase 1 (per image) the
 * gradient w.r.t. z and its two per-channel sums (Σdz, Σdz·x̂); phase 2 (per fixed chunk)
 * dy = γ·rstd·(dz - mean(dz) - x̂·mean(dz·x̂)), dW partial per chunk, dx per image.
 * Batches below m->small_batch (FSB_SMALL_BATCH) split each image's work further (see
 * `plan`), with the same bits. Nothing here depends on which worker runs which task.
 */
#include "fsb/blas.h"
#include "fsb/layers.h"
#include "fsb/model.h"
#include "fsb/status.h"
#include "model_internal.h"

#include <assert.h>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    fsb_model *m;          /* the model */
    unit *u;               /* the unit */
    const float *x;        /* (n,cin,h,w) unit input */
    const float *r;        /* (n,cout,h,w) residual or NULL */
    float *dx;             /* gradient of x or NULL */
    float *dres;           /* gradient of the residual or NULL */
    int n;                 /* images */
    int trainable;         /* accumulate parameter gradients */
    const float *md;       /* (cout) mean of dz over the batch (0 in eval mode) */
    const float *mdx;      /* (cout) mean of dz * xhat */
    const float *kk;       /* (cout) gamma * rstd */
    const struct plan *pl; /* small batches: how an image's work is split, else NULL */
} job;

/* ---- small batches: one image's work split over several tasks ------------------------- *
 * Below FSB_SMALL_BATCH images, one task per image leaves workers idle (5 images on 2
 * cores: one core waits a sixth of every phase, and the 4 weight-gradient chunks hold 1, 1,
 * 1 and 2 images). There each image's work is split further, by a fixed rule of the shapes
 * and the batch size, never of the pool size: per-channel phases (BN moments, epilogue,
 * backward phase 1, dy) into groups of at least 8 channels; the forward convolution into
 * the row tiles every batch uses (direct conv: the channel groups); each chunk's weight
 * gradient, when no input gradient runs beside it, into groups of input channels (GEMM:
 * columns of dW) or output channels (direct conv); the input gradient into the per-image
 * path's row tiles, or, with no weight gradient beside it, into more row pieces. Every value
 * keeps the arithmetic of the per-image path: channels are independent, a GEMM piece narrows only
 * the independent M or N dimension and keeps each output's whole inner sum and its beta chain, and
 * a piece that is not one of the per-image path's own GEMM calls does at least SPLIT_MIN_WORK
 * multiply-adds, so that OpenBLAS stays on its blocked kernels (it switches to small-matrix
 * kernels that sum in another order below 10^6; test_model's small_batch_split_same_bits
 * fails without this floor). So the bits equal the per-image path's, whatever the pool
 * size. */
#define SPLIT_TASKS 16            /* tasks per phase the split aims at */
#define SPLIT_MIN_WORK (1L << 20) /* multiply-adds of a GEMM piece, at least */

typedef struct plan {
    int G;   /* channel groups per image (per-channel phases), >= 8 channels each */
    int T;   /* forward tasks per image: row tiles of R rows, or G channel groups (direct) */
    int R;   /* forward rows per tile */
    int Gw;  /* weight-gradient groups per chunk (0: not trainable) */
    int Rb;  /* backward rows per tile (dW), as in the per-image path */
    int P;   /* input-gradient pieces per image (0: no dx) */
    int Pe;  /* 1: the pieces split the rows (3x3) or columns (1x1) evenly; 0: the Rb tiles */
    int dyb; /* 1: dy is materialised in m->dyb first; 0: the direct conv's fused dy */
} plan;

/* [c0, c1) = part g of G of n items (floor boundaries). */
static void part_range(int g, int G, int n, int *c0, int *c1)
{
    *c0 = (int)((long)g * n / G);
    *c1 = (int)((long)(g + 1) * n / G);
}

/* Groups of at least 8 (or all of) C channels aiming at `want` groups. */
static int chan_groups(int want, int C)
{
    int gmax = C / 8 > 1 ? C / 8 : 1;
    return want < 1 ? 1 : want < gmax ? want : gmax;
}

/* Σx over n floats: 8 float lanes flushed to double every 256 elements. */
FSB_HOT static double sum_f(const float *x, long n)
{
    double s = 0;
    long i = 0;
    while (i < n) {
        long e = i + 256 < n ? i + 256 : n;
        float a[8] = {0};
        for (; i + 8 <= e; i += 8)
            for (int j = 0; j < 8; j++)
                a[j] += x[i + j];
        for (; i < e; i++)
            a[0] += x[i];
        for (int j = 0; j < 8; j++)
            s += a[j];
    }
    return s;
}

/* Mean and M2 = Σ(x - mean)^2 of one plane in one pass: sums of x - x[0] (shifted so that
 * the variance does not cancel), 8 float lanes flushed to double every 256 elements. */
FSB_HOT static void plane_moments(const float *x, long n, double *mean, double *m2)
{
    float c = x[0];
    double s = 0, q = 0;
    long i = 0;
    while (i < n) {
        long e = i + 256 < n ? i + 256 : n;
        float a[8] = {0}, b[8] = {0};
        for (; i + 8 <= e; i += 8)
            for (int j = 0; j < 8; j++) {
                float d = x[i + j] - c;
                a[j] += d;
                b[j] += d * d;
            }
        for (; i < e; i++) {
            float d = x[i] - c;
            a[0] += d;
            b[0] += d * d;
        }
        for (int j = 0; j < 8; j++)
            s += a[j], q += b[j];
    }
    double ms = s / (double)n;
    *mean = c + ms;
    double v = q - (double)n * ms * ms;
    *m2 = v > 0 ? v : 0;
}

/* Σdz and Σdz·(y - mean)·rstd. */
FSB_HOT static void bn_grad_sums(const float *dz, const float *y, long n, float mean, float rstd,
                                 double *sd, double *sdx)
{
    double s = 0, t = 0;
    long i = 0;
    while (i < n) {
        long e = i + 256 < n ? i + 256 : n;
        float a[8] = {0}, b[8] = {0};
        for (; i + 8 <= e; i += 8)
            for (int j = 0; j < 8; j++) {
                a[j] += dz[i + j];
                b[j] += dz[i + j] * ((y[i + j] - mean) * rstd);
            }
        for (; i < e; i++) {
            a[0] += dz[i];
            b[0] += dz[i] * ((y[i] - mean) * rstd);
        }
        for (int j = 0; j < 8; j++)
            s += a[j], t += b[j];
    }
    *sd = s;
    *sdx = t;
}

/* y (cout,h,w) = W * x without the bias: a conv bias only shifts the BN input, so it is
 * folded into the BN statistics (train) or the folded shift (eval); see unit_forward. */
/* Output rows per spatial tile: small enough that one im2col tile (K x rows*w floats) stays
 * in L2, but with at least 4*M columns so that the per-tile costs that scale with the
 * weights (packing the M x K weight matrix, the M x K dW accumulator) stay below a quarter
 * of the im2col work (deep ResNet layers get whole images). */
static int tile_rows(const unit *u, int K, int M)
{
    long budget = 128L * 1024; /* floats: 512 KB */
    long r = budget / ((long)K * u->w);
    long rmin = (4L * M + u->w - 1) / u->w;
    if (r < rmin) r = rmin;
    return r < 1 ? 1 : r > u->h ? u->h : (int)r;
}

/* Whether unit u runs the direct small-Cin convolution (forward and dW) instead of
 * im2col + GEMM: a 3x3 conv on few input channels, AVX-512 present and not switched off. */
static int use_direct(const fsb_model *m, const unit *u)
{
    return m->direct_conv && u->k == 3 && u->cin <= 4 && u->cout >= 8 &&
           fsb_conv3_small_scratch(u->cin, u->h, u->w, u->cout) <= m->colmax;
}

/* The split of unit u's work for a batch of n < FSB_SMALL_BATCH (see the comment at plan):
 * trainable: weight gradients wanted; dx: the input gradient wanted. */
static void make_plan(const fsb_model *m, const unit *u, int n, int trainable, int dx, plan *pl)
{
    int C = u->cout, k2 = u->k * u->k, K = u->cin * k2, KO = C * k2, HW = u->h * u->w;
    int direct = use_direct(m, u);
    memset(pl, 0, sizeof *pl);
    pl->G = chan_groups((SPLIT_TASKS + n - 1) / n, C);
    pl->T = 1;
    pl->R = u->h;
    if (direct) {
        pl->T = pl->G;
    } else if (fsb_unit_dnnl(m, u)) { /* oneDNN: the whole image in one call */
    } else if (u->k != 1) {
        pl->R = tile_rows(u, K, C);
        pl->T = (u->h + pl->R - 1) / pl->R;
    }
    pl->Rb = u->k == 1 ? u->h : tile_rows(u, K > KO ? K : KO, C > u->cin ? C : u->cin);
    /* half as many weight-gradient tasks: the chunks of a small batch are uneven anyway */
    int S = m->o.grad_splits, want_w = (SPLIT_TASKS / 2 + S - 1) / S;
    if (trainable && direct) {
        pl->Gw = chan_groups(want_w, C);
    } else if (trainable && dx) { /* the input-gradient pieces in the same run fill the gaps */
        pl->Gw = 1;
    } else if (trainable) { /* groups of input channels; the smallest piece does enough work */
        int tiles = (u->h + pl->Rb - 1) / pl->Rb;
        long nmin = (long)(u->h - (tiles - 1) * pl->Rb) * u->w;
        int g = want_w < u->cin ? want_w : u->cin;
        while (g > 1 && (long)C * (u->cin / g) * k2 * nmin < SPLIT_MIN_WORK)
            g--;
        pl->Gw = g;
    }
    if (dx) { /* the per-image path's tiles, or, without weight-gradient tasks beside them,
                 more even pieces that each do enough work */
        int own = u->k == 1 ? 1 : (u->h + pl->Rb - 1) / pl->Rb;
        int want = trainable ? own : (SPLIT_TASKS + n - 1) / n;
        long len = u->k == 1 ? HW : u->h;
        long per = u->k == 1 ? (long)u->cin * C : (long)u->cin * KO * u->w; /* work per len */
        int p = want;
        while (p > own && len / p * per < SPLIT_MIN_WORK)
            p--;
        pl->P = p > own ? p : own;
        pl->Pe = p > own;
    }
    pl->dyb = !(direct && u->pool && !dx && trainable);
}

/* A oneDNN call inside a pool task cannot return its error: one that fails (out of memory
 * creating a primitive for a new shape) ends the process with oneDNN's message. */
static void dnnl_ok(int st)
{
    if (st == FSB_OK) return;
    fprintf(stderr, "fsbench: oneDNN convolution failed: %s\n", fsb_error_last());
    abort();
}

/* mom (2*cout) (if not NULL): the direct path's per-plane mean and M2 (see task_fwd_train);
 * returns 1 if it filled mom. */
static int conv_image(fsb_model *m, const unit *u, const float *x, float *y, double *mom,
                      int worker)
{
    int HW = u->h * u->w, K = u->cin * u->k * u->k;
    const float *W = m->params + u->w_off;
    if (fsb_unit_dnnl(m, u)) { /* weights in m->wdf (unit_forward) */
        dnnl_ok(fsb_dnnl_forward(m->dnn[worker], y, x, m->wdf, 1, u->cin, u->h, u->w, u->cout));
        return 0;
    }
    if (use_direct(m, u)) {
        fsb_conv3_small_forward(y, mom, m->col[worker], x, W, u->cin, u->h, u->w, u->cout, 1);
        return mom != NULL;
    }
    if (u->k == 1) {
        fsb_sgemm(0, 0, u->cout, HW, K, 1.0f, W, K, x, HW, 0.0f, y, HW);
        return 0;
    }
    int R = tile_rows(u, K, u->cout);
    for (int y0 = 0; y0 < u->h; y0 += R) {
        int y1 = y0 + R < u->h ? y0 + R : u->h, N = (y1 - y0) * u->w;
        fsb_im2col_rows(m->col[worker], x, u->cin, u->h, u->w, u->k, y0, y1);
        fsb_sgemm(0, 0, u->cout, N, K, 1.0f, W, K, m->col[worker], N, 0.0f, y + y0 * u->w, HW);
    }
    return 0;
}

/* One output row of a pooled unit: winners of the 2x2 windows over rows r0, r1 (and
 * residual rows q0, q1 or NULL) of s = y * a + sh (+ r), window order (r0,x0) (r0,x1)
 * (r1,x0) (r1,x1), first maximum wins ties; o = act(max). Scalar reference version. */
static void pool_row_scalar(float *o, uint8_t *arg, const float *r0, const float *r1,
                            const float *q0, const float *q1, int x0, int wo, float a, float sh,
                            float slope)
{
    for (int x = x0; x < wo; x++) {
        float v0 = r0[2 * x] * a + sh, v1 = r0[2 * x + 1] * a + sh;
        float v2 = r1[2 * x] * a + sh, v3 = r1[2 * x + 1] * a + sh;
        if (q0) {
            v0 += q0[2 * x], v1 += q0[2 * x + 1], v2 += q1[2 * x], v3 += q1[2 * x + 1];
        }
        int b01 = v1 > v0, b23 = v3 > v2;
        float m01 = b01 ? v1 : v0, m23 = b23 ? v3 : v2;
        int top = m23 > m01;
        float v = top ? m23 : m01;
        arg[x] = (uint8_t)(top ? 2 + b23 : b01);
        o[x] = v > 0 ? v : slope * v;
    }
}

#if defined(__GNUC__) && defined(__x86_64__)
/* The same, 16 outputs per step with AVX-512 (separate multiply and add: same bits). */
__attribute__((target("avx512f"))) static void
pool_row_avx512(float *o, uint8_t *arg, const float *r0, const float *r1, const float *q0,
                const float *q1, int wo, float a, float sh, float slope)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 va = _mm512_set1_ps(a), vs = _mm512_set1_ps(sh), vl = _mm512_set1_ps(slope);
    const __m512 zero = _mm512_setzero_ps();
    const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2),
                  three = _mm512_set1_epi32(3);
    for (int x = 0; x < wo; x += 16) {
        int rem = wo - x < 16 ? wo - x : 16; /* outputs in this step */
        __mmask16 mo = (__mmask16)((1u << rem) - 1);
        __mmask16 ml = (__mmask16)(rem >= 8 ? 0xffffu : (1u << (2 * rem)) - 1);
        __mmask16 mh = (__mmask16)(rem <= 8 ? 0 : (1u << (2 * rem - 16)) - 1);
        __m512 a0 = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(ml, r0 + 2 * x), va), vs);
        __m512 a1 =
            _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mh, r0 + 2 * x + 16), va), vs);
        __m512 b0 = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(ml, r1 + 2 * x), va), vs);
        __m512 b1 =
            _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mh, r1 + 2 * x + 16), va), vs);
        if (q0) {
            a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(ml, q0 + 2 * x));
            a1 = _mm512_add_ps(a1, _mm512_maskz_loadu_ps(mh, q0 + 2 * x + 16));
            b0 = _mm512_add_ps(b0, _mm512_maskz_loadu_ps(ml, q1 + 2 * x));
            b1 = _mm512_add_ps(b1, _mm512_maskz_loadu_ps(mh, q1 + 2 * x + 16));
        }
        __m512 v0 = _mm512_permutex2var_ps(a0, ev, a1), v1 = _mm512_permutex2var_ps(a0, od, a1);
        __m512 v2 = _mm512_permutex2var_ps(b0, ev, b1), v3 = _mm512_permutex2var_ps(b0, od, b1);
        __mmask16 b01 = _mm512_cmp_ps_mask(v1, v0, _CMP_GT_OQ);
        __mmask16 b23 = _mm512_cmp_ps_mask(v3, v2, _CMP_GT_OQ);
        __m512 m01 = _mm512_mask_blend_ps(b01, v0, v1), m23 = _mm512_mask_blend_ps(b23, v2, v3);
        __mmask16 top = _mm512_cmp_ps_mask(m23, m01, _CMP_GT_OQ);
        __m512 v = _mm512_mask_blend_ps(top, m01, m23);
        __m512i k01 = _mm512_maskz_mov_epi32(b01, one);
        __m512i k23 = _mm512_mask_blend_epi32(b23, two, three);
        __m512i k = _mm512_mask_blend_epi32(top, k01, k23);
        _mm512_mask_cvtepi32_storeu_epi8(arg + x, mo, k);
        __mmask16 pos = _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(o + x, mo, _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, vl), v));
    }
}
#endif

static void pool_row(float *o, uint8_t *arg, const float *r0, const float *r1, const float *q0,
                     const float *q1, int wo, float a, float sh, float slope)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) {
        pool_row_avx512(o, arg, r0, r1, q0, q1, wo, a, sh, slope);
        return;
    }
#endif
    pool_row_scalar(o, arg, r0, r1, q0, q1, 0, wo, a, sh, slope);
}

/* o (n) = act(y * a + sh (+ r)). */
FSB_HOT static void affine_act(float *o, const float *y, const float *r, long n, float a, float sh,
                               int act, float slope)
{
    if (r)
        for (long p = 0; p < n; p++) {
            float v = y[p] * a + sh + r[p];
            o[p] = act ? (v > 0 ? v : slope * v) : v;
        }
    else
        for (long p = 0; p < n; p++) {
            float v = y[p] * a + sh;
            o[p] = act ? (v > 0 ? v : slope * v) : v;
        }
}

/* out of image i = pool(act(y * ea + esh + r)), channels [c0, c1). */
static void epilogue_image(const unit *u, const float *r_img, int i, int c0, int c1)
{
    int C = u->cout, W = u->w, HW = u->h * W, OHW = u->ho * u->wo;
    const float *y = u->y + (long)i * C * HW;
    float *out = u->out + (long)i * C * OHW;
    for (int c = c0; c < c1; c++) {
        const float *yc = y + (long)c * HW;
        const float *rc = r_img ? r_img + (long)c * HW : NULL;
        float *oc = out + (long)c * OHW;
        if (u->pool) {
            uint8_t *ac = u->arg + (long)i * C * OHW + (long)c * OHW;
            for (int yo = 0; yo < u->ho; yo++) {
                long p = (long)2 * yo * W;
                pool_row(oc + yo * u->wo, ac + yo * u->wo, yc + p, yc + p + W, rc ? rc + p : NULL,
                         rc ? rc + p + W : NULL, u->wo, u->ea[c], u->esh[c], u->slope);
            }
        } else {
            affine_act(oc, yc, rc, HW, u->ea[c], u->esh[c], u->act, u->slope);
        }
    }
}

static void task_fwd_train(void *ctx, int i, int worker)
{
    job *j = ctx;
    const unit *u = j->u;
    int C = u->cout, HW = u->h * u->w;
    float *y = u->y + (long)i * C * HW;
    double *ps = u->ps + (long)i * 2 * C;
    if (conv_image(j->m, u, j->x + (long)i * u->cin * HW, y, ps, worker)) return;
    for (int c = 0; c < C; c++) {
        double mu, m2;
        plane_moments(y + (long)c * HW, HW, &mu, &m2);
        ps[c] = mu;
        ps[C + c] = m2;
    }
}

static void task_epilogue(void *ctx, int i, int worker)
{
    job *j = ctx;
    const unit *u = j->u;
    long sz = (long)u->cout * u->h * u->w;
    epilogue_image(u, j->r ? j->r + i * sz : NULL, i, 0, u->cout);
}

static void task_fwd_eval(void *ctx, int i, int worker)
{
    job *j = ctx;
    const unit *u = j->u;
    long HW = (long)u->h * u->w;
    conv_image(j->m, u, j->x + i * u->cin * HW, u->y + i * u->cout * HW, NULL, worker);
    epilogue_image(u, j->r ? j->r + i * u->cout * HW : NULL, i, 0, u->cout);
}

/* Small batches: forward convolution task t = (image, row tile or channel group). */
static void task_conv_part(void *ctx, int t, int worker)
{
    job *j = ctx;
    fsb_model *m = j->m;
    const unit *u = j->u;
    const plan *pl = j->pl;
    int i = t / pl->T, p = t % pl->T;
    int C = u->cout, HW = u->h * u->w, K = u->cin * u->k * u->k;
    const float *x = j->x + (long)i * u->cin * HW, *W = m->params + u->w_off;
    float *y = u->y + (long)i * C * HW;
    if (use_direct(m, u)) {
        int c0, c1;
        part_range(p, pl->T, C, &c0, &c1);
        double *mom = u->train ? u->ps + (long)i * 2 * C : NULL;
        fsb_conv3_small_forward_part(y, mom, m->col[worker], x, W, u->cin, u->h, u->w, C, c0, c1,
                                     1);
        return;
    }
    if (u->k == 1) {
        fsb_sgemm(0, 0, C, HW, K, 1.0f, W, K, x, HW, 0.0f, y, HW);
        return;
    }
    int y0 = p * pl->R, y1 = y0 + pl->R < u->h ? y0 + pl->R : u->h, N = (y1 - y0) * u->w;
    fsb_im2col_rows(m->col[worker], x, u->cin, u->h, u->w, u->k, y0, y1);
    fsb_sgemm(0, 0, C, N, K, 1.0f, W, K, m->col[worker], N, 0.0f, y + y0 * u->w, HW);
}

/* Small batches: the per-plane moments of task t = (image, channel group). */
static void task_moments_part(void *ctx, int t, int worker)
{
    job *j = ctx;
    const unit *u = j->u;
    int i = t / j->pl->G, C = u->cout, HW = u->h * u->w, c0, c1;
    part_range(t % j->pl->G, j->pl->G, C, &c0, &c1);
    const float *y = u->y + (long)i * C * HW;
    double *ps = u->ps + (long)i * 2 * C;
    for (int c = c0; c < c1; c++) {
        double mu, m2;
        plane_moments(y + (long)c * HW, HW, &mu, &m2);
        ps[c] = mu;
        ps[C + c] = m2;
    }
}

/* Small batches: the epilogue of task t = (image, channel group). */
static void task_epilogue_part(void *ctx, int t, int worker)
{
    job *j = ctx;
    const unit *u = j->u;
    int i = t / j->pl->G, c0, c1;
    part_range(t % j->pl->G, j->pl->G, u->cout, &c0, &c1);
    long sz = (long)u->cout * u->h * u->w;
    epilogue_image(u, j->r ? j->r + i * sz : NULL, i, c0, c1);
}

/* Small batches, eval mode, direct conv: task t = (image, channel group) runs the
 * convolution and then the epilogue of its channels. */
static void task_conv_epilogue_part(void *ctx, int t, int worker)
{
    job *j = ctx;
    const unit *u = j->u;
    int i = t / j->pl->T, c0, c1;
    part_range(t % j->pl->T, j->pl->T, u->cout, &c0, &c1);
    task_conv_part(ctx, t, worker);
    long sz = (long)u->cout * u->h * u->w;
    epilogue_image(u, j->r ? j->r + i * sz : NULL, i, c0, c1);
}

static void fold_bn(fsb_model *m, unit *u)
{
    const float *g = m->params + u->g_off, *b = m->params + u->be_off;
    for (int c = 0; c < u->cout; c++) {
        u->ea[c] = g[c] * u->rstd[c];
        u->esh[c] = b[c] - u->mean[c] * u->ea[c];
    }
}

static int unit_forward(fsb_model *m, unit *u, const float *x, const float *r, int n, int train,
                        fsb_rng *rng)
{
    double t0 = fsb_now();
    job j = {.m = m, .u = u, .x = x, .r = r, .n = n};
    int C = u->cout, HW = u->h * u->w;
    float *rm = m->stats + u->rm_off, *rv = m->stats + u->rv_off;
    const float *bias = u->b_off >= 0 ? m->params + u->b_off : NULL;
    u->train = train;
    if (fsb_unit_dnnl(m, u)) /* on the caller (worker 0), before the tasks read them */
        dnnl_ok(fsb_dnnl_weights(m->dnn[0], m->wdf, NULL, m->params + u->w_off, 1, u->cin, u->h,
                                 u->w, C));
    plan pl;
    int small = n < m->small_batch;
    if (small) {
        make_plan(m, u, n, 0, 0, &pl);
        j.pl = &pl;
    }
    if (train) {
        if (!small || (pl.T == 1 && !use_direct(m, u))) { /* conv and moments per image */
            fsb_pool_run(m->pool, n, task_fwd_train, &j);
        } else {
            fsb_pool_run(m->pool, n * pl.T, task_conv_part, &j);
            if (!use_direct(m, u)) fsb_pool_run(m->pool, n * pl.G, task_moments_part, &j);
        }
        double N = (double)n * HW;
        for (int c = 0; c < C; c++) {
            double mu = 0, m2 = 0;
            for (int i = 0; i < n; i++)
                mu += u->ps[(long)i * 2 * C + c];
            mu /= n;
            for (int i = 0; i < n; i++) {
                double d = u->ps[(long)i * 2 * C + c] - mu;
                m2 += u->ps[(long)i * 2 * C + C + c] + HW * d * d;
            }
            double var = m2 / N;
            double unb = N > 1 ? m2 / (N - 1) : var;
            u->mean[c] = (float)mu;
            u->rstd[c] = (float)(1.0 / sqrt(var + FSB_BN_EPS));
            float mb = (float)(mu + (bias ? bias[c] : 0.0f)); /* mean of conv + bias */
            rm[c] = (1 - FSB_BN_MOMENTUM) * rm[c] + FSB_BN_MOMENTUM * mb;
            rv[c] = (1 - FSB_BN_MOMENTUM) * rv[c] + FSB_BN_MOMENTUM * (float)unb;
        }
        m->nbt[u->nbt]++;
        u->step++;
        fold_bn(m, u);
        if (small)
            fsb_pool_run(m->pool, n * pl.G, task_epilogue_part, &j);
        else
            fsb_pool_run(m->pool, n, task_epilogue, &j);
        long no = (long)n * C * u->ho * u->wo;
        if (u->drop == 1) {
            fsb_dropout_forward(u->out, u->mask, u->out, no, u->rate, rng);
        } else if (u->drop == 2) {
            float gm = fsb_dropblock_gamma(u->rate, u->step, u->ho, m->o.dropblock_size);
            fsb_dropblock_forward(u->out, u->mask, u->out, n, C, u->ho, u->wo, m->o.dropblock_size,
                                  gm, rng);
        }
    } else {
        for (int c = 0; c < C; c++) {
            u->mean[c] = rm[c] - (bias ? bias[c] : 0.0f); /* in bias-free y space */
            u->rstd[c] = (float)(1.0 / sqrt((double)rv[c] + FSB_BN_EPS));
        }
        fold_bn(m, u);
        if (small && use_direct(m, u)) { /* conv and epilogue of a channel group, y hot */
            fsb_pool_run(m->pool, n * pl.T, task_conv_epilogue_part, &j);
        } else if (small && pl.T > 1) {
            fsb_pool_run(m->pool, n * pl.T, task_conv_part, &j);
            fsb_pool_run(m->pool, n * pl.G, task_epilogue_part, &j);
        } else { /* one tile per image: the per-image task already does both */
            fsb_pool_run(m->pool, n, task_fwd_eval, &j);
        }
    }
    u->t_fwd += fsb_now() - t0;
    return FSB_OK;
}

/* d (n) = g * act'(y * a + sh (+ r)). */
FSB_HOT static void act_grad(float *d, const float *g, const float *y, const float *r, long n,
                             float a, float sh, float slope)
{
    for (long p = 0; p < n; p++) {
        float v = y[p] * a + sh + (r ? r[p] : 0.0f);
        d[p] = v > 0 ? g[p] : slope * g[p];
    }
}

/* Position in the (h,w) plane of the winner k (dy*2 + dx) of pooled output (yo, xo). */
static inline long winner(const unit *u, int k, int yo, int xo)
{
    return (long)(2 * yo + (k >> 1)) * u->w + 2 * xo + (k & 1);
}

/* dz (cout,h,w) = dL/dz for image i from u->dout (already masked), channels [c0, c1). */
static void dz_image(const unit *u, const float *r_img, int i, float *dz, int c0, int c1)
{
    int C = u->cout, HW = u->h * u->w, OHW = u->ho * u->wo;
    const float *y = u->y + (long)i * C * HW;
    const float *g = u->dout + (long)i * C * OHW;
    for (int c = c0; c < c1; c++) {
        const float *yc = y + (long)c * HW, *gc = g + (long)c * OHW;
        const float *rc = r_img ? r_img + (long)c * HW : NULL;
        float *d = dz + (long)c * HW;
        float a = u->ea[c], sh = u->esh[c];
        if (u->pool) {
            memset(d, 0, sizeof(float) * (size_t)HW);
            const uint8_t *ac = u->arg + (long)i * C * OHW + (long)c * OHW;
            for (int yo = 0, o = 0; yo < u->ho; yo++)
                for (int xo = 0; xo < u->wo; xo++, o++) {
                    long p = winner(u, ac[o], yo, xo);
                    float v = yc[p] * a + sh + (rc ? rc[p] : 0.0f);
                    d[p] = v > 0 ? gc[o] : u->slope * gc[o];
                }
        } else if (u->act) {
            act_grad(d, gc, yc, rc, HW, a, sh, u->slope);
        } else {
            memcpy(d, gc, sizeof(float) * (size_t)HW);
        }
    }
}

/* Phase 1 for a pooled unit without materialising dz: only pool winners are nonzero.
 * Channels [c0, c1). */
static void pooled_sums(const unit *u, const float *r_img, float *dres_img, int i, double *ps,
                        int c0, int c1)
{
    int C = u->cout, HW = u->h * u->w, OHW = u->ho * u->wo;
    const float *y = u->y + (long)i * C * HW;
    const float *g = u->dout + (long)i * C * OHW;
    for (int c = c0; c < c1; c++) {
        const float *yc = y + (long)c * HW, *gc = g + (long)c * OHW;
        const float *rc = r_img ? r_img + (long)c * HW : NULL;
        float *dr = dres_img ? dres_img + (long)c * HW : NULL;
        const uint8_t *ac = u->arg + (long)i * C * OHW + (long)c * OHW;
        float a = u->ea[c], sh = u->esh[c], mu = u->mean[c], rs = u->rstd[c];
        double sd = 0, sdx = 0;
        for (int yo = 0, o = 0; yo < u->ho; yo++)
            for (int xo = 0; xo < u->wo; xo++, o++) {
                long p = winner(u, ac[o], yo, xo);
                float v = yc[p] * a + sh + (rc ? rc[p] : 0.0f);
                float d = v > 0 ? gc[o] : u->slope * gc[o];
                sd += d;
                sdx += d * ((yc[p] - mu) * rs);
                if (dr) dr[p] += d;
            }
        ps[c] = sd;
        ps[C + c] = sdx;
    }
}

/* Phase 1 of image i, channels [c0, c1): dropout mask, Σdz and Σdz·x̂ per channel into
 * ps, the residual's gradient. dz (cout,h,w) scratch. */
static void bwd1_range(const job *j, int i, int c0, int c1, float *dz)
{
    const unit *u = j->u;
    int C = u->cout, HW = u->h * u->w, OHW = u->ho * u->wo;
    long OS = (long)C * OHW;
    if (u->drop && u->train) {
        float *g = u->dout + i * OS;
        const float *mk = u->mask + i * OS;
        for (long p = (long)c0 * OHW; p < (long)c1 * OHW; p++)
            g[p] *= mk[p];
    }
    double *ps = u->ps + (long)i * 2 * C;
    const float *r_img = j->r ? j->r + (long)i * C * HW : NULL;
    float *dres_img = j->dres ? j->dres + (long)i * C * HW : NULL;
    if (u->pool) {
        pooled_sums(u, r_img, dres_img, i, ps, c0, c1);
        return;
    }
    dz_image(u, r_img, i, dz, c0, c1);
    if (dres_img)
        for (long p = (long)c0 * HW; p < (long)c1 * HW; p++)
            dres_img[p] += dz[p];
    const float *y = u->y + (long)i * C * HW;
    for (int c = c0; c < c1; c++)
        bn_grad_sums(dz + (long)c * HW, y + (long)c * HW, HW, u->mean[c], u->rstd[c], &ps[c],
                     &ps[C + c]);
}

static void task_bwd1(void *ctx, int i, int worker)
{
    job *j = ctx;
    bwd1_range(j, i, 0, j->u->cout, j->m->dz[worker]);
}

/* d (n) = k * (d - md - (y - mu) * rs * mdx): the BN input gradient. */
FSB_HOT static void bn_dy(float *d, const float *y, long n, float k, float md, float mdx, float mu,
                          float rs)
{
    for (long p = 0; p < n; p++)
        d[p] = k * (d[p] - md - (y[p] - mu) * rs * mdx);
}

/* d (n) = k * (0 - md - (y - mu) * rs * mdx): bn_dy where dz = 0 (off the pool winners). */
FSB_HOT static void bn_dy_zero(float *d, const float *y, long n, float k, float md, float mdx,
                               float mu, float rs)
{
    for (long p = 0; p < n; p++)
        d[p] = k * (0.0f - md - (y[p] - mu) * rs * mdx);
}

/* dz_image + bn_dy fused for a pooled unit: one dense pass, then the winners. Channels
 * [c0, c1). */
static void pooled_dy(const unit *u, const float *r_img, int i, float *dy, const float *kk,
                      const float *md, const float *mdx, int c0, int c1)
{
    int C = u->cout, HW = u->h * u->w, OHW = u->ho * u->wo;
    const float *y = u->y + (long)i * C * HW;
    const float *g = u->dout + (long)i * C * OHW;
    for (int c = c0; c < c1; c++) {
        const float *yc = y + (long)c * HW, *gc = g + (long)c * OHW;
        const float *rc = r_img ? r_img + (long)c * HW : NULL;
        const uint8_t *ac = u->arg + (long)i * C * OHW + (long)c * OHW;
        float *d = dy + (long)c * HW;
        float a = u->ea[c], sh = u->esh[c], mu = u->mean[c], rs = u->rstd[c];
        bn_dy_zero(d, yc, HW, kk[c], md[c], mdx[c], mu, rs);
        for (int yo = 0, o = 0; yo < u->ho; yo++)
            for (int xo = 0; xo < u->wo; xo++, o++) {
                long p = winner(u, ac[o], yo, xo);
                float v = yc[p] * a + sh + (rc ? rc[p] : 0.0f);
                float dz = v > 0 ? gc[o] : u->slope * gc[o];
                d[p] = kk[c] * (dz - md[c] - (yc[p] - mu) * rs * mdx[c]);
            }
    }
}

/* pooled_dy for channels o0..o0+n-1 only, as the dout source of the direct dW: dy of a
 * whole image never exists, only n planes at a time (in buf). */
typedef struct chan_ctx {
    const job *j; /* the backward job */
    int i;        /* image */
    int done;     /* channels below this already went into bsum */
    float *buf;   /* (8, h, w) dy of the current channels */
    double *bsum; /* (cout) Σ dy (conv bias gradient) or NULL */
} chan_ctx;

static const float *pooled_dy_chans(void *ctx, int o0, int n, long *cstride)
{
    chan_ctx *s = ctx;
    const job *j = s->j;
    const unit *u = j->u;
    int C = u->cout, HW = u->h * u->w, OHW = u->ho * u->wo;
    const float *y = u->y + (long)s->i * C * HW;
    const float *g = u->dout + (long)s->i * C * OHW;
    const float *r_img = j->r ? j->r + (long)s->i * C * HW : NULL;
    for (int c = o0; c < o0 + n; c++) {
        const float *yc = y + (long)c * HW, *gc = g + (long)c * OHW;
        const float *rc = r_img ? r_img + (long)c * HW : NULL;
        const uint8_t *ac = u->arg + (long)s->i * C * OHW + (long)c * OHW;
        float *d = s->buf + (long)(c - o0) * HW;
        float a = u->ea[c], sh = u->esh[c], mu = u->mean[c], rs = u->rstd[c];
        float kk = j->kk[c], md = j->md[c], mdx = j->mdx[c];
        bn_dy_zero(d, yc, HW, kk, md, mdx, mu, rs);
        for (int yo = 0, o = 0; yo < u->ho; yo++)
            for (int xo = 0; xo < u->wo; xo++, o++) {
                long p = winner(u, ac[o], yo, xo);
                float v = yc[p] * a + sh + (rc ? rc[p] : 0.0f);
                float dz = v > 0 ? gc[o] : u->slope * gc[o];
                d[p] = kk * (dz - md - (yc[p] - mu) * rs * mdx);
            }
        if (s->bsum && c >= s->done) s->bsum[c] = sum_f(d, HW);
    }
    s->done = o0 + n;
    *cstride = HW;
    return s->buf;
}

static void task_bwd2(void *ctx, int t, int worker)
{
    job *j = ctx;
    fsb_model *m = j->m;
    const unit *u = j->u;
    int S = m->o.grad_splits;
    int lo = (int)((long)t * j->n / S), hi = (int)((long)(t + 1) * j->n / S);
    int C = u->cout, HW = u->h * u->w, K = u->cin * u->k * u->k;
    long wn = (long)C * K;
    const float *Wt = m->params + u->w_off;
    float *dz = m->dz[worker];
    float *col = m->col[worker];
    int direct = use_direct(m, u);
    for (int i = lo; i < hi; i++) {
        const float *y = u->y + (long)i * C * HW;
        const float *x = j->x + (long)i * u->cin * HW;
        float *pw = m->partial + t * wn;
        if (direct && u->pool && !j->dx && j->trainable) { /* dy, 8 planes at a time, -> dW */
            double *bsum = u->b_off >= 0 ? u->ps + (long)i * 2 * C : NULL;
            chan_ctx cc = {.j = j, .i = i, .buf = dz, .bsum = bsum};
            fsb_conv3_small_dweight_fn(pw, col, pooled_dy_chans, &cc, x, u->cin, u->h, u->w, C,
                                       i != lo, 1);
            continue;
        }
        if (u->pool)
            pooled_dy(u, j->r ? j->r + (long)i * C * HW : NULL, i, dz, j->kk, j->md, j->mdx, 0, C);
        else
            dz_image(u, j->r ? j->r + (long)i * C * HW : NULL, i, dz, 0, C);
        for (int c = 0; c < C; c++) {
            float *d = dz + (long)c * HW;
            if (!u->pool)
                bn_dy(d, y + (long)c * HW, HW, j->kk[c], j->md[c], j->mdx[c], u->mean[c],
                      u->rstd[c]);
            if (j->trainable && u->b_off >= 0) u->ps[(long)i * 2 * C + c] = sum_f(d, HW);
        }
        float *dx = j->dx ? j->dx + (long)i * u->cin * HW : NULL;
        if (u->k == 1) {
            if (j->trainable)
                fsb_sgemm(0, 1, C, K, HW, 1.0f, dz, HW, x, HW, i == lo ? 0.0f : 1.0f, pw, K);
            if (dx) fsb_sgemm(1, 0, u->cin, HW, C, 1.0f, Wt, u->cin, dz, HW, 1.0f, dx, HW);
            continue;
        }
        int KO = C * u->k * u->k;
        if (direct && j->trainable)
            fsb_conv3_small_dweight(pw, col, dz, x, u->cin, u->h, u->w, C, i != lo, 1);
        if (direct && !dx) continue;
        int R = tile_rows(u, K > KO ? K : KO, u->cout > u->cin ? u->cout : u->cin);
        for (int y0 = 0; y0 < u->h; y0 += R) {
            int y1 = y0 + R < u->h ? y0 + R : u->h, N = (y1 - y0) * u->w;
            if (j->trainable && !direct) { /* dW (C,K) += dy tile (C,N) @ col tile (K,N)^T */
                fsb_im2col_rows(col, x, u->cin, u->h, u->w, u->k, y0, y1);
                fsb_sgemm(0, 1, C, K, N, 1.0f, dz + y0 * u->w, HW, col, N,
                          i == lo && y0 == 0 ? 0.0f : 1.0f, pw, K);
            }
            if (dx) { /* dx = conv(dy, flipped W^T): im2col of dy, one GEMM, no col2im */
                fsb_im2col_rows(col, dz, C, u->h, u->w, u->k, y0, y1);
                fsb_sgemm(0, 0, u->cin, N, KO, 1.0f, m->wflip, KO, col, N, 1.0f, dx + y0 * u->w,
                          HW);
            }
        }
    }
}

/* Small batches: phase 1 of task t = (image, channel group). */
static void task_bwd1_part(void *ctx, int t, int worker)
{
    job *j = ctx;
    int c0, c1;
    part_range(t % j->pl->G, j->pl->G, j->u->cout, &c0, &c1);
    bwd1_range(j, t / j->pl->G, c0, c1, j->m->dz[worker]);
}

/* dy of image i, channels [c0, c1), into m->dyb, and the conv bias gradient's per-image
 * sums, as task_bwd2 computes them. */
static void dy_range(const job *j, int i, int c0, int c1)
{
    const unit *u = j->u;
    int C = u->cout, HW = u->h * u->w;
    const float *y = u->y + (long)i * C * HW;
    const float *r_img = j->r ? j->r + (long)i * C * HW : NULL;
    float *d = j->m->dyb + (long)i * C * HW;
    if (u->pool)
        pooled_dy(u, r_img, i, d, j->kk, j->md, j->mdx, c0, c1);
    else
        dz_image(u, r_img, i, d, c0, c1);
    for (int c = c0; c < c1; c++) {
        float *dc = d + (long)c * HW;
        if (!u->pool)
            bn_dy(dc, y + (long)c * HW, HW, j->kk[c], j->md[c], j->mdx[c], u->mean[c], u->rstd[c]);
        if (j->trainable && u->b_off >= 0) u->ps[(long)i * 2 * C + c] = sum_f(dc, HW);
    }
}

/* Small batches: dy of task t = (image, channel group). */
static void task_dy_part(void *ctx, int t, int worker)
{
    job *j = ctx;
    int c0, c1;
    part_range(t % j->pl->G, j->pl->G, j->u->cout, &c0, &c1);
    dy_range(j, t / j->pl->G, c0, c1);
}

/* oneDNN units: dy of image t, all channels. */
static void task_dy_image(void *ctx, int t, int worker)
{
    job *j = ctx;
    dy_range(j, t, 0, j->u->cout);
}

/* oneDNN units, phase 2 task t: t < S (when trainable) the weight gradient of chunk t, one
 * oneDNN call on the chunk's images into its partial; after that the input gradient of one
 * image (added to dx). dy of every image is in m->dyb. */
static void task_dnnl_bwd(void *ctx, int t, int worker)
{
    job *j = ctx;
    fsb_model *m = j->m;
    const unit *u = j->u;
    int S = m->o.grad_splits, C = u->cout;
    long HW = (long)u->h * u->w;
    if (!j->trainable) t += S;
    if (t < S) {
        int lo = (int)((long)t * j->n / S), hi = (int)((long)(t + 1) * j->n / S);
        if (hi == lo) return; /* empty chunk: unit_backward skips its partial */
        float *pw = m->partial + (long)t * C * u->cin * 9;
        dnnl_ok(fsb_dnnl_backward_weights(m->dnn[worker], pw, m->dyb + lo * C * HW,
                                          j->x + lo * u->cin * HW, hi - lo, u->cin, u->h, u->w, C));
        return;
    }
    int i = t - S;
    dnnl_ok(fsb_dnnl_backward_data(m->dnn[worker], j->dx + i * u->cin * HW, m->dyb + i * C * HW,
                                   m->wdb, 1, u->cin, u->h, u->w, C));
}

/* Phase 2 of a oneDNN unit: dy of the whole batch into m->dyb (per (image, channel group)
 * below small_batch, per image above), then the tasks of task_dnnl_bwd. */
static void dnnl_backward(fsb_model *m, job *j)
{
    const unit *u = j->u;
    if (j->pl)
        fsb_pool_run(m->pool, j->n * j->pl->G, task_dy_part, j);
    else
        fsb_pool_run(m->pool, j->n, task_dy_image, j);
    if (j->dx) /* on the caller (worker 0), before the tasks read them */
        dnnl_ok(fsb_dnnl_weights(m->dnn[0], NULL, m->wdb, m->params + u->w_off, 1, u->cin, u->h,
                                 u->w, u->cout));
    int tasks = (j->trainable ? m->o.grad_splits : 0) + (j->dx ? j->n : 0);
    fsb_pool_run(m->pool, tasks, task_dnnl_bwd, j);
}

/* Small batches: phase 2 task t: t < S*Gw the weight gradient of (chunk, channel group)
 * (the chunk's images in order, each tile's GEMM adding into the chunk's partial as in
 * task_bwd2); after that the input gradient of (image, piece). */
static void task_bwd2_part(void *ctx, int t, int worker)
{
    job *j = ctx;
    fsb_model *m = j->m;
    const unit *u = j->u;
    const plan *pl = j->pl;
    int S = m->o.grad_splits, C = u->cout, HW = u->h * u->w, k2 = u->k * u->k;
    int K = u->cin * k2, KO = C * k2;
    float *col = m->col[worker];
    if (t < S * pl->Gw) {
        int s = t / pl->Gw, g = t % pl->Gw, c0, c1;
        int lo = (int)((long)s * j->n / S), hi = (int)((long)(s + 1) * j->n / S);
        float *pw = m->partial + (long)s * C * K;
        if (use_direct(m, u)) { /* output channels [c0, c1) */
            part_range(g, pl->Gw, C, &c0, &c1);
            for (int i = lo; i < hi; i++) {
                const float *x = j->x + (long)i * u->cin * HW;
                if (pl->dyb) {
                    fsb_conv3_small_dweight_part(pw, col, m->dyb + (long)i * C * HW, x, u->cin,
                                                 u->h, u->w, C, c0, c1, i != lo, 1);
                } else {
                    double *bsum = u->b_off >= 0 ? u->ps + (long)i * 2 * C : NULL;
                    chan_ctx cc = {.j = j, .i = i, .done = c0, .buf = m->dz[worker], .bsum = bsum};
                    fsb_conv3_small_dweight_fn_part(pw, col, pooled_dy_chans, &cc, x, u->cin, u->h,
                                                    u->w, C, c0, c1, i != lo, 1);
                }
            }
            return;
        }
        part_range(g, pl->Gw, u->cin, &c0, &c1); /* input channels: columns of dW */
        int Kg = (c1 - c0) * k2;
        for (int i = lo; i < hi; i++) {
            const float *x = j->x + ((long)i * u->cin + c0) * HW;
            const float *dy = m->dyb + (long)i * C * HW;
            if (u->k == 1) {
                fsb_sgemm(0, 1, C, Kg, HW, 1.0f, dy, HW, x, HW, i == lo ? 0.0f : 1.0f, pw + c0, K);
                continue;
            }
            for (int y0 = 0; y0 < u->h; y0 += pl->Rb) {
                int y1 = y0 + pl->Rb < u->h ? y0 + pl->Rb : u->h, N = (y1 - y0) * u->w;
                fsb_im2col_rows(col, x, c1 - c0, u->h, u->w, u->k, y0, y1);
                fsb_sgemm(0, 1, C, Kg, N, 1.0f, dy + y0 * u->w, HW, col, N,
                          i == lo && y0 == 0 ? 0.0f : 1.0f, pw + (long)c0 * k2, K);
            }
        }
        return;
    }
    t -= S * pl->Gw;
    int i = t / pl->P, p = t % pl->P, a0, a1;
    const float *dy = m->dyb + (long)i * C * HW;
    float *dx = j->dx + (long)i * u->cin * HW;
    if (u->k == 1) { /* columns [a0, a1) */
        if (pl->Pe)
            part_range(p, pl->P, HW, &a0, &a1);
        else
            a0 = 0, a1 = HW;
        fsb_sgemm(1, 0, u->cin, a1 - a0, C, 1.0f, m->params + u->w_off, u->cin, dy + a0, HW, 1.0f,
                  dx + a0, HW);
        return;
    }
    if (pl->Pe) { /* rows [a0, a1) */
        part_range(p, pl->P, u->h, &a0, &a1);
    } else {
        a0 = p * pl->Rb;
        a1 = a0 + pl->Rb < u->h ? a0 + pl->Rb : u->h;
    }
    int N = (a1 - a0) * u->w;
    fsb_im2col_rows(col, dy, C, u->h, u->w, u->k, a0, a1);
    fsb_sgemm(0, 0, u->cin, N, KO, 1.0f, m->wflip, KO, col, N, 1.0f, dx + a0 * u->w, HW);
}

static void unit_backward(fsb_model *m, unit *u, const float *x, const float *r, float *dx,
                          float *dres, int n)
{
    double t0 = fsb_now();
    int C = u->cout, HW = u->h * u->w;
    int trainable = u->block >= m->first_trainable;
    float *md = m->cvec, *mdx = m->cvec + m->cmax, *kk = m->cvec + 2 * m->cmax;
    job j = {.m = m,
             .u = u,
             .x = x,
             .r = r,
             .dx = dx,
             .dres = dres,
             .n = n,
             .trainable = trainable,
             .md = md,
             .mdx = mdx,
             .kk = kk};
    plan pl;
    int small = n < m->small_batch;
    if (small) {
        make_plan(m, u, n, trainable, dx != NULL, &pl);
        j.pl = &pl;
        fsb_pool_run(m->pool, n * pl.G, task_bwd1_part, &j);
    } else {
        fsb_pool_run(m->pool, n, task_bwd1, &j);
    }
    const float *gamma = m->params + u->g_off;
    double N = (double)n * HW;
    for (int c = 0; c < C; c++) {
        double sd = 0, sdx = 0;
        for (int i = 0; i < n; i++) {
            sd += u->ps[(long)i * 2 * C + c];
            sdx += u->ps[(long)i * 2 * C + C + c];
        }
        if (trainable) {
            m->grads[u->g_off + c] += (float)sdx;
            m->grads[u->be_off + c] += (float)sd;
        }
        md[c] = u->train ? (float)(sd / N) : 0.0f;
        mdx[c] = u->train ? (float)(sdx / N) : 0.0f;
        kk[c] = gamma[c] * u->rstd[c];
    }
    int dnnl = fsb_unit_dnnl(m, u);
    if (dx && u->k != 1 && !dnnl) { /* wflip[c][o][ki][kj] = W[o][c][k-1-ki][k-1-kj] */
        const float *W = m->params + u->w_off;
        int k = u->k, kk2 = k * k;
        for (int o = 0; o < C; o++)
            for (int c = 0; c < u->cin; c++)
                for (int q = 0; q < kk2; q++)
                    m->wflip[((long)c * C + o) * kk2 + q] =
                        W[((long)o * u->cin + c) * kk2 + (kk2 - 1 - q)];
    }
    int S = m->o.grad_splits;
    if (dnnl) {
        dnnl_backward(m, &j);
    } else if (!small) {
        fsb_pool_run(m->pool, S, task_bwd2, &j);
    } else {
        if (pl.dyb) fsb_pool_run(m->pool, n * pl.G, task_dy_part, &j);
        fsb_pool_run(m->pool, S * pl.Gw + n * pl.P, task_bwd2_part, &j);
    }
    if (trainable) {
        if (u->b_off >= 0)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int i = 0; i < n; i++)
                    s += u->ps[(long)i * 2 * C + c];
                m->grads[u->b_off + c] += (float)s;
            }
        long wn = (long)C * u->cin * u->k * u->k;
        float *gw = m->grads + u->w_off;
        for (int t = 0; t < S; t++) {
            if ((long)(t + 1) * n / S == (long)t * n / S) continue; /* empty chunk */
            const float *p = m->partial + t * wn;
            for (long q = 0; q < wn; q++)
                gw[q] += p[q];
        }
    }
    u->t_bwd += fsb_now() - t0;
}

/* ---- whole network --------------------------------------------------------------------- */

static long stage_size(const fsb_model *m, int s)
{
    if (s == FSB_MODEL_BLOCKS) return m->D;
    return (long)m->stage_c[s] * m->stage_hw[s] * m->stage_hw[s];
}

static const float *block_input(const fsb_model *m, int blk)
{
    return blk == m->start ? m->input : m->u[m->block_last[blk - 1]].out;
}

static void head_forward(fsb_model *m, int n)
{
    double t0 = fsb_now();
    if (m->start < FSB_MODEL_BLOCKS) {
        const unit *u = &m->u[m->block_last[FSB_MODEL_BLOCKS - 1]];
        int C = u->cout, HW = u->ho * u->wo;
        if (m->o.arch == FSB_ARCH_RES12)
            fsb_global_avgpool_forward(m->emb, u->out, n, C, HW);
        else if (m->o.flatten)
            memcpy(m->emb, u->out, sizeof(float) * (size_t)n * C * HW);
        else
            fsb_global_maxpool_forward(m->emb, m->emb_arg, u->out, n, C, HW);
    }
    if (m->n_class > 0)
        fsb_linear_forward(m->logits, m->emb, m->params + m->head_off,
                           m->params + m->head_off + (long)m->n_class * m->D, n, m->D, m->n_class);
    m->t_head_f += fsb_now() - t0;
}

static int run_forward(fsb_model *m, int start, int end, const float *acts, int n, int train,
                       fsb_rng *rng)
{
    if (n < 1 || n > m->max_batch)
        return fsb_error(FSB_EINVAL, "model: batch of %d images (1..%d)", n, m->max_batch);
    if (start < 0 || start > FSB_MODEL_BLOCKS)
        return fsb_error(FSB_EINVAL, "model: bad stage %d", start);
    if (train && !rng)
        for (int blk = start > m->first_trainable ? start : m->first_trainable; blk < end; blk++)
            if (m->u[m->block_last[blk]].drop)
                return fsb_error(FSB_EINVAL, "model: dropout is active but no rng was given");
    memcpy(m->input, acts, sizeof(float) * (size_t)n * (size_t)stage_size(m, start));
    m->start = start;
    m->n = n;
    if (start == FSB_MODEL_BLOCKS)
        memcpy(m->emb, m->input, sizeof(float) * (size_t)n * (size_t)m->D);
    for (int blk = start; blk < end; blk++) {
        const float *bin = block_input(m, blk);
        int tr = train && blk >= m->first_trainable;
        for (int ui = m->block_first[blk]; ui <= m->block_last[blk]; ui++) {
            unit *u = &m->u[ui];
            const float *x = u->src < 0 ? bin : m->u[u->src].out;
            const float *r = u->res >= 0 ? m->u[u->res].out : NULL;
            unit_forward(m, u, x, r, n, tr, rng);
        }
    }
    if (end == FSB_MODEL_BLOCKS) head_forward(m, n);
    return FSB_OK;
}

int fsb_model_forward_from(fsb_model *m, int stage, const float *acts, int n, int train,
                           fsb_rng *rng, const float **emb, const float **logits)
{
    int st = run_forward(m, stage, FSB_MODEL_BLOCKS, acts, n, train, rng);
    if (st) return st;
    if (emb) *emb = m->emb;
    if (logits) *logits = m->n_class > 0 ? m->logits : NULL;
    return FSB_OK;
}

int fsb_model_forward(fsb_model *m, const float *images, int n, int train, fsb_rng *rng,
                      const float **emb, const float **logits)
{
    return fsb_model_forward_from(m, 0, images, n, train, rng, emb, logits);
}

int fsb_model_forward_to(fsb_model *m, const float *images, int n, int stage, float *out)
{
    if (stage < 0 || stage > FSB_MODEL_BLOCKS)
        return fsb_error(FSB_EINVAL, "model: bad stage %d", stage);
    long in_sz = stage_size(m, 0), out_sz = stage_size(m, stage);
    for (int i0 = 0; i0 < n; i0 += m->max_batch) {
        int b = n - i0 < m->max_batch ? n - i0 : m->max_batch;
        int st = run_forward(m, 0, stage, images + (long)i0 * in_sz, b, 0, NULL);
        if (st) return st;
        const float *src = stage == 0                  ? m->input
                           : stage == FSB_MODEL_BLOCKS ? m->emb
                                                       : m->u[m->block_last[stage - 1]].out;
        memcpy(out + (long)i0 * out_sz, src, sizeof(float) * (size_t)b * (size_t)out_sz);
    }
    return FSB_OK;
}

int fsb_model_embed(fsb_model *m, const float *images, int n, float *out)
{
    return fsb_model_forward_to(m, images, n, FSB_MODEL_BLOCKS, out);
}

static void head_backward(fsb_model *m, const float *dlogits, const float *demb, float *dinput)
{
    double t0 = fsb_now();
    int n = m->n;
    size_t nd = (size_t)n * m->D;
    if (demb)
        memcpy(m->demb, demb, sizeof(float) * nd);
    else
        memset(m->demb, 0, sizeof(float) * nd);
    if (dlogits && m->n_class > 0) {
        float *gw = m->grads + m->head_off;
        fsb_linear_backward(m->demb, gw, gw + (long)m->n_class * m->D, dlogits, m->emb,
                            m->params + m->head_off, n, m->D, m->n_class);
    }
    if (m->start == FSB_MODEL_BLOCKS) {
        if (dinput)
            for (size_t i = 0; i < nd; i++)
                dinput[i] += m->demb[i];
    } else {
        unit *u = &m->u[m->block_last[FSB_MODEL_BLOCKS - 1]];
        int C = u->cout, HW = u->ho * u->wo;
        memset(u->dout, 0, sizeof(float) * (size_t)n * C * HW);
        if (m->o.arch == FSB_ARCH_RES12)
            fsb_global_avgpool_backward(u->dout, m->demb, n, C, HW);
        else if (m->o.flatten)
            for (size_t i = 0; i < nd; i++)
                u->dout[i] += m->demb[i];
        else
            fsb_global_maxpool_backward(u->dout, m->demb, m->emb_arg, n, C, HW);
    }
    m->t_head_b += fsb_now() - t0;
}

void fsb_model_backward(fsb_model *m, const float *dlogits, const float *demb, float *dinput)
{
    int n = m->n;
    head_backward(m, dlogits, demb, dinput);
    int lowest = m->start;
    if (!dinput && m->first_trainable > lowest) lowest = m->first_trainable;
    for (int blk = FSB_MODEL_BLOCKS - 1; blk >= lowest; blk--) {
        const float *bin = block_input(m, blk);
        float *dbin = NULL;
        if (blk == m->start) {
            dbin = dinput;
        } else if (blk > lowest) {
            unit *p = &m->u[m->block_last[blk - 1]];
            dbin = p->dout;
            memset(dbin, 0, sizeof(float) * (size_t)n * p->cout * p->ho * p->wo);
        }
        for (int ui = m->block_first[blk]; ui < m->block_last[blk]; ui++) {
            unit *u = &m->u[ui];
            memset(u->dout, 0, sizeof(float) * (size_t)n * u->cout * u->ho * u->wo);
        }
        for (int ui = m->block_last[blk]; ui >= m->block_first[blk]; ui--) {
            unit *u = &m->u[ui];
            const float *x = u->src < 0 ? bin : m->u[u->src].out;
            float *dx = u->src < 0 ? dbin : m->u[u->src].dout;
            const float *r = u->res >= 0 ? m->u[u->res].out : NULL;
            float *dres = u->res >= 0 ? m->u[u->res].dout : NULL;
            unit_backward(m, u, x, r, dx, dres, n);
        }
    }
}

double fsb_model_train_step(fsb_model *m, const float *images, const int *labels, int n,
                            fsb_rng *rng, const float **logits)
{
    assert(m->n_class > 0);
    fsb_model_zero_grad(m);
    const float *lg;
    int st = fsb_model_forward(m, images, n, 1, rng, NULL, &lg);
    if (st) return NAN;
    memset(m->dlog, 0, sizeof(float) * (size_t)n * m->n_class);
    double t0 = fsb_now();
    double loss = fsb_softmax_xent(NULL, m->dlog, lg, labels, n, m->n_class, 1.0f);
    m->t_head_f += fsb_now() - t0;
    fsb_model_backward(m, m->dlog, NULL, NULL);
    if (logits) *logits = lg;
    return loss;
}
