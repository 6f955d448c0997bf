/* transform.c - bilinear resize/crop, normalisation and train augmentation (see
 * fsb/transform.h for the exact conventions, which this file implements literally).
 * Per-axis sampling positions are computed once per call into fixed-size stack tables. A grey
 * source is sampled once and replicated into the three planes right away, so everything after
 * the sampling is the RGB code path and gives the bits a 3-channel copy would.
 */
#include "fsb/transform.h"
#include "fsb/status.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* Bit-reproducibility: no a*b+c fusing. GCC in ISO C mode already uses -ffp-contract=off;
 * clang contracts within expressions by default unless told. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* Where output index t along one axis reads from, and with which weights. */
typedef struct tap {
    int i0;   /* first source index (absolute) */
    int i1;   /* second source index (absolute; == i0 at the border) */
    float l0; /* weight of i0 */
    float l1; /* weight of i1 */
} tap;

/* Fill taps for outputs t = offset .. offset+n_out-1 of a resize of the region
 * [start, start+len) to `target` samples. */
static void axis_taps(tap *a, int n_out, int offset, int start, int len, int target)
{
    float scale = (float)len / (float)target;
    for (int o = 0; o < n_out; o++) {
        int t = o + offset;
        double s = (double)scale * (t + 0.5) - 0.5;
        if (s < 0) s = 0;
        int i0 = (int)s;
        if (i0 > len - 1) i0 = len - 1;
        int i1 = i0 + (i0 < len - 1);
        float l1 = (float)(s - i0);
        a[o].i0 = start + i0;
        a[o].i1 = start + i1;
        a[o].l1 = l1;
        a[o].l0 = 1.0f - l1;
    }
}

/* One grey sample: bilerp's formula on a one-channel image (the same operations in the same
 * order, so a grey image gives the bits its 3-channel copy gives in every channel). */
static inline float bilerp1(const uint8_t *px, int w, const tap *ty, const tap *tx)
{
    const uint8_t *r0 = px + (size_t)ty->i0 * w, *r1 = px + (size_t)ty->i1 * w;
    float top = tx->l0 * (float)r0[tx->i0] + tx->l1 * (float)r0[tx->i1];
    float bot = tx->l0 * (float)r1[tx->i0] + tx->l1 * (float)r1[tx->i1];
    return ty->l0 * top + ty->l1 * bot;
}

static inline float bilerp(const uint8_t *px, int w, int c, const tap *ty, const tap *tx)
{
    const uint8_t *r0 = px + (size_t)ty->i0 * w * 3, *r1 = px + (size_t)ty->i1 * w * 3;
    float top = tx->l0 * (float)r0[tx->i0 * 3 + c] + tx->l1 * (float)r0[tx->i1 * 3 + c];
    float bot = tx->l0 * (float)r1[tx->i0 * 3 + c] + tx->l1 * (float)r1[tx->i1 * 3 + c];
    return ty->l0 * top + ty->l1 * bot;
}

/* Python's round() of d/2 for an integer d >= 0 (half to even). */
static int half_round_even(int d)
{
    int k = d / 2;
    if (d % 2 == 0) return k;
    return (k % 2 == 0) ? k : k + 1;
}

/* Taps of "resize shorter side to S, centre crop C" for an image w x h. */
static void resize_crop_taps(tap *tx, tap *ty, int w, int h, int S, int C)
{
    int rw, rh;
    if (w <= h) {
        rw = S;
        rh = (int)((int64_t)S * h / w);
    } else {
        rh = S;
        rw = (int)((int64_t)S * w / h);
    }
    axis_taps(tx, C, half_round_even(rw - C), 0, w, rw);
    axis_taps(ty, C, half_round_even(rh - C), 0, h, rh);
}

fsb_pixnorm fsb_pixnorm_get(fsb_pixnorm_preset preset)
{
    fsb_pixnorm n;
    if (preset == FSB_PIXNORM_RESNET12) {
        const float m[3] = {120.40f, 115.59f, 104.54f}, s[3] = {70.68f, 68.28f, 72.55f};
        for (int c = 0; c < 3; c++) {
            n.mean[c] = m[c] / 255.0f;
            n.std[c] = s[c] / 255.0f;
        }
    } else {
        const float m[3] = {0.485f, 0.456f, 0.406f}, s[3] = {0.229f, 0.224f, 0.225f};
        memcpy(n.mean, m, sizeof m);
        memcpy(n.std, s, sizeof s);
    }
    return n;
}

void fsb_transform_defaults(fsb_transform *t, fsb_pixnorm_preset preset)
{
    memset(t, 0, sizeof *t);
    t->resize = 92;
    t->crop = 84;
    t->norm = fsb_pixnorm_get(preset);
    t->scale_lo = 0.08;
    t->scale_hi = 1.0;
    t->ratio_lo = 3.0 / 4.0;
    t->ratio_hi = 4.0 / 3.0;
    t->brightness = t->contrast = t->saturation = 0.4f;
    t->flip_p = 0.5f;
}

int fsb_transform_check(const fsb_transform *t)
{
    if (t->crop < 1 || t->crop > FSB_TF_MAX_SIDE)
        return fsb_error(FSB_EINVAL, "transform: crop %d outside [1, %d]", t->crop,
                         FSB_TF_MAX_SIDE);
    if (t->resize < t->crop)
        return fsb_error(FSB_EINVAL, "transform: resize %d smaller than crop %d", t->resize,
                         t->crop);
    if (!(t->scale_lo > 0 && t->scale_lo <= t->scale_hi && t->scale_hi <= 1))
        return fsb_error(FSB_EINVAL, "transform: scale range [%g, %g] not within (0, 1]",
                         t->scale_lo, t->scale_hi);
    if (!(t->ratio_lo > 0 && t->ratio_lo <= t->ratio_hi))
        return fsb_error(FSB_EINVAL, "transform: ratio range [%g, %g] invalid", t->ratio_lo,
                         t->ratio_hi);
    const float j[3] = {t->brightness, t->contrast, t->saturation};
    for (int i = 0; i < 3; i++)
        if (!(j[i] >= 0 && j[i] <= 1))
            return fsb_error(FSB_EINVAL, "transform: jitter strength %g outside [0, 1]", j[i]);
    if (!(t->flip_p >= 0 && t->flip_p <= 1))
        return fsb_error(FSB_EINVAL, "transform: flip probability %g outside [0, 1]", t->flip_p);
    for (int c = 0; c < 3; c++)
        if (!(t->norm.std[c] > 0) || !isfinite(t->norm.mean[c]))
            return fsb_error(FSB_EINVAL, "transform: bad normalisation for channel %d", c);
    return FSB_OK;
}

static int too_small(const char *name, int w, int h, int C)
{
    return fsb_error(FSB_EFORMAT, "%s: image is %dx%d, smaller than the %dx%d crop",
                     name ? name : "(image)", w, h, C, C);
}

/* Sample C x C outputs into CHW floats (values in [0, 255]) from an image of nc (1 or 3)
 * channels; a grey image's plane is sampled once and replicated into all three. */
static void sample_chw(float *out, const uint8_t *px, int w, int nc, const tap *tx, const tap *ty,
                       int C)
{
    if (nc == 1) {
        size_t plane = (size_t)C * C;
        for (int y = 0; y < C; y++)
            for (int x = 0; x < C; x++)
                out[(size_t)y * C + x] = bilerp1(px, w, &ty[y], &tx[x]);
        memcpy(out + plane, out, plane * sizeof *out);
        memcpy(out + 2 * plane, out, plane * sizeof *out);
        return;
    }
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < C; y++) {
            float *o = out + ((size_t)c * C + y) * C;
            for (int x = 0; x < C; x++)
                o[x] = bilerp(px, w, c, &ty[y], &tx[x]);
        }
}

static void normalise(float *out, int C, const fsb_pixnorm *n, int scaled)
{
    size_t plane = (size_t)C * C;
    for (int c = 0; c < 3; c++) {
        float *o = out + c * plane;
        float m = n->mean[c], s = n->std[c];
        for (size_t i = 0; i < plane; i++) {
            float v = scaled ? o[i] : o[i] / 255.0f;
            o[i] = (v - m) / s;
        }
    }
}

int fsb_transform_test(float *out, const uint8_t *px, int w, int h, int channels,
                       const fsb_transform *t, const char *name)
{
    assert(fsb_transform_check(t) == FSB_OK);
    assert(channels == 1 || channels == 3);
    int C = t->crop;
    if (w < C || h < C) return too_small(name, w, h, C);
    tap tx[FSB_TF_MAX_SIDE], ty[FSB_TF_MAX_SIDE];
    resize_crop_taps(tx, ty, w, h, t->resize, C);
    sample_chw(out, px, w, channels, tx, ty, C);
    normalise(out, C, &t->norm, 0);
    return FSB_OK;
}

static inline float clamp01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

static inline float grey(float r, float g, float b)
{
    return 0.2989f * r + 0.587f * g + 0.114f * b;
}

static double uniform(fsb_rng *rng, double a, double b)
{
    return a + (b - a) * fsb_rng_uniform(rng);
}

int fsb_transform_train(float *out, const uint8_t *px, int w, int h, int channels,
                        const fsb_transform *t, fsb_rng *rng, const char *name)
{
    assert(fsb_transform_check(t) == FSB_OK);
    assert(channels == 1 || channels == 3);
    int C = t->crop;
    if (w < C || h < C) return too_small(name, w, h, C);
    /* 1. random resized crop */
    double area = (double)w * h, lr0 = log(t->ratio_lo), lr1 = log(t->ratio_hi);
    int cw = 0, ch = 0, top = 0, left = 0, found = 0;
    for (int attempt = 0; attempt < 10 && !found; attempt++) {
        double target = area * uniform(rng, t->scale_lo, t->scale_hi);
        double ar = exp(uniform(rng, lr0, lr1));
        cw = (int)rint(sqrt(target * ar));
        ch = (int)rint(sqrt(target / ar));
        if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
            top = (int)fsb_rng_below(rng, (uint32_t)(h - ch + 1));
            left = (int)fsb_rng_below(rng, (uint32_t)(w - cw + 1));
            found = 1;
        }
    }
    if (!found) {
        double in_ratio = (double)w / h;
        if (in_ratio < t->ratio_lo) {
            cw = w;
            ch = (int)rint(w / t->ratio_lo);
        } else if (in_ratio > t->ratio_hi) {
            ch = h;
            cw = (int)rint(h * t->ratio_hi);
        } else {
            cw = w;
            ch = h;
        }
        top = (h - ch) / 2;
        left = (w - cw) / 2;
    }
    tap tx[FSB_TF_MAX_SIDE], ty[FSB_TF_MAX_SIDE];
    axis_taps(tx, C, 0, left, cw, C);
    axis_taps(ty, C, 0, top, ch, C);
    sample_chw(out, px, w, channels, tx, ty, C);
    size_t plane = (size_t)C * C;
    for (size_t i = 0; i < 3 * plane; i++)
        out[i] /= 255.0f;
    /* 2. horizontal flip */
    if (fsb_rng_uniform(rng) < t->flip_p)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < C; y++) {
                float *r = out + c * plane + (size_t)y * C;
                for (int a = 0, b = C - 1; a < b; a++, b--) {
                    float v = r[a];
                    r[a] = r[b];
                    r[b] = v;
                }
            }
    /* 3. colour jitter: draws first, then brightness, contrast, saturation */
    float bf = (float)uniform(rng, fmax(0.0, 1.0 - t->brightness), 1.0 + t->brightness);
    float cf = (float)uniform(rng, fmax(0.0, 1.0 - t->contrast), 1.0 + t->contrast);
    float sf = (float)uniform(rng, fmax(0.0, 1.0 - t->saturation), 1.0 + t->saturation);
    float *R = out, *G = out + plane, *B = out + 2 * plane;
    for (size_t i = 0; i < 3 * plane; i++)
        out[i] = clamp01(bf * out[i]);
    double sum = 0;
    for (size_t i = 0; i < plane; i++)
        sum += grey(R[i], G[i], B[i]);
    float m = (float)(sum / (double)plane);
    for (size_t i = 0; i < 3 * plane; i++)
        out[i] = clamp01(cf * out[i] + (1.0f - cf) * m);
    for (size_t i = 0; i < plane; i++) {
        float g = grey(R[i], G[i], B[i]);
        R[i] = clamp01(sf * R[i] + (1.0f - sf) * g);
        G[i] = clamp01(sf * G[i] + (1.0f - sf) * g);
        B[i] = clamp01(sf * B[i] + (1.0f - sf) * g);
    }
    /* 4. normalise */
    normalise(out, C, &t->norm, 1);
    return FSB_OK;
}

/* Shared context of the batch tasks. */
typedef struct batch_ctx {
    float *out;             /* [n][3][C][C] */
    const uint8_t *px;      /* [n_src][h][w][channels] */
    int w, h;               /* source image size */
    int channels;           /* 1 (grey) or 3 (RGB) */
    const int *idx;         /* source index per item, or NULL */
    const fsb_transform *t; /* parameters */
    uint64_t key, stream0;  /* train: rng of item b is (key, stream0 + b) */
    int train;              /* 1 = train transform */
} batch_ctx;

static void batch_task(void *vctx, int b, int worker)
{
    (void)worker;
    const batch_ctx *c = vctx;
    int C = c->t->crop;
    size_t isz = (size_t)c->w * c->h * c->channels;
    const uint8_t *src = c->px + (size_t)(c->idx ? c->idx[b] : b) * isz;
    float *o = c->out + (size_t)b * 3 * C * C;
    if (c->train) {
        fsb_rng r;
        fsb_rng_init(&r, c->key, c->stream0 + (uint64_t)b);
        fsb_transform_train(o, src, c->w, c->h, c->channels, c->t, &r, NULL);
    } else {
        fsb_transform_test(o, src, c->w, c->h, c->channels, c->t, NULL);
    }
}

static int run_batch(batch_ctx *c, int n, fsb_pool *pool)
{
    assert(fsb_transform_check(c->t) == FSB_OK);
    assert(c->channels == 1 || c->channels == 3);
    if (c->w < c->t->crop || c->h < c->t->crop) return too_small("batch", c->w, c->h, c->t->crop);
    fsb_pool_run(pool, n, batch_task, c);
    return FSB_OK;
}

int fsb_transform_test_batch(float *out, const uint8_t *px, int w, int h, int channels,
                             const int *idx, int n, const fsb_transform *t, fsb_pool *pool)
{
    batch_ctx c = {out, px, w, h, channels, idx, t, 0, 0, 0};
    return run_batch(&c, n, pool);
}

int fsb_transform_train_batch(float *out, const uint8_t *px, int w, int h, int channels,
                              const int *idx, int n, const fsb_transform *t, uint64_t key,
                              uint64_t stream0, fsb_pool *pool)
{
    batch_ctx c = {out, px, w, h, channels, idx, t, key, stream0, 1};
    return run_batch(&c, n, pool);
}

void fsb_resize_bilinear(float *out, int ow, int oh, const uint8_t *px, int w, int h)
{
    assert(ow >= 1 && oh >= 1 && ow <= FSB_TF_MAX_SIDE && oh <= FSB_TF_MAX_SIDE);
    tap tx[FSB_TF_MAX_SIDE], ty[FSB_TF_MAX_SIDE];
    axis_taps(tx, ow, 0, 0, w, ow);
    axis_taps(ty, oh, 0, 0, h, oh);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            for (int c = 0; c < 3; c++)
                out[((size_t)y * ow + x) * 3 + c] = bilerp(px, w, c, &ty[y], &tx[x]);
}

int fsb_resize_crop_u8(uint8_t *out, int size, const uint8_t *px, int w, int h, const char *name)
{
    assert(size >= 1 && size <= FSB_TF_MAX_SIDE);
    if (w < size || h < size) return too_small(name, w, h, size);
    if (w == size && h == size) {
        memcpy(out, px, (size_t)size * size * 3);
        return FSB_OK;
    }
    tap tx[FSB_TF_MAX_SIDE], ty[FSB_TF_MAX_SIDE];
    resize_crop_taps(tx, ty, w, h, size, size);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) {
                float v = bilerp(px, w, c, &ty[y], &tx[x]);
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                out[((size_t)y * size + x) * 3 + c] = (uint8_t)(v + 0.5f);
            }
    return FSB_OK;
}
