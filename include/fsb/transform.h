/* transform.h - image transforms: uint8 HWC in (RGB, or one grey channel), float 3-channel
 * CHW (NCHW for batches) out.
 *
 * Sources have `channels` 1 or 3 (a packed cache keeps a greyscale split in one channel). A
 * grey source is replicated to three equal channels when sampled, before anything else, so
 * networks always see 3 channels and the output is bit-identical to that of the source's
 * 3-channel copy (R = G = B) under every transform below.
 *
 * Test transform (FEAT convention): resize the shorter side to S (92) with bilinear
 * interpolation, centre-crop C x C (84), divide by 255, normalise per channel. Train
 * transform: random resized crop to C, horizontal flip, colour jitter, /255, normalise,
 * every random draw taken from an explicit fsb_rng, so the same rng state gives the same
 * output bits on every machine and thread count.
 *
 * Bilinear convention (PyTorch F.interpolate(mode="bilinear", align_corners=False) on a
 * float tensor; half-pixel centres, no antialiasing, no rounding to uint8 in between):
 * resizing a region of length n to length m, output index t reads the source coordinate
 *     s = max(0, (double)(n / (float)m) * (t + 0.5) - 0.5)   (scale in float, s in double)
 * i0 = floor(s), i1 = min(i0 + 1, n - 1), l1 = (float)(s - i0), l0 = 1 - l1 (float), and
 *     out = l0y * (l0x * p[y0][x0] + l1x * p[y0][x1]) + l1y * (l0x * p[y1][x0] + l1x * p[y1][x1])
 * in float arithmetic, in that order, never fused (ISO C: no FMA contraction), so results
 * are the same on every machine. When m == n this is an exact copy. Measured against torch
 * 1.13 F.interpolate (Debian build, AVX2) on random images (84->92, 120x90->92, 500x375->92):
 * ~72% of outputs bit-identical, the rest within 1.2e-7 after /255 (one rounding apart).
 * Resize of the shorter side: (w, h) -> short side S, long side floor(S * long / short)
 * (torchvision's int()). Centre crop offset: round-half-to-even((size - C) / 2) (Python's
 * round(), as torchvision), computed per axis. Crop then resize = the bilinear above on the
 * crop region only (indices clamped inside the region).
 *
 * Train transform, in this fixed order (each a fixed number of draws unless noted):
 *  1. random resized crop (torchvision RandomResizedCrop.get_params): up to 10 attempts, each
 *     drawing area = w*h*U(scale_lo, scale_hi) then logr = U(log ratio_lo, log ratio_hi)
 *     (U(a,b) = a + (b-a)*fsb_rng_uniform, in double), cw = rint(sqrt(area*exp(logr))),
 *     ch = rint(sqrt(area/exp(logr))) (rint = round half to even, like Python round); if
 *     0 < cw <= w and 0 < ch <= h, then top = fsb_rng_below(h-ch+1), left =
 *     fsb_rng_below(w-cw+1) and stop. Fallback after 10 misses (no draws): whole image
 *     clipped to the ratio range (w/h < ratio_lo: cw = w, ch = rint(w/ratio_lo); w/h >
 *     ratio_hi: ch = h, cw = rint(h*ratio_hi); else the whole image), centred with floor
 *     division. The crop region is resized to C x C (bilinear above), then /255.
 *  2. horizontal flip: one draw u = fsb_rng_uniform; flip when u < flip_p.
 *  3. three draws: brightness factor b = U(1-brightness, 1+brightness), then contrast c,
 *     then saturation s likewise (a factor range that would go below 0 starts at 0).
 *     Applied in the order brightness, contrast, saturation, on values in [0, 1]
 *     (torchvision's tensor formulas, but with a fixed order):
 *       brightness: x = clamp(b*x, 0, 1)
 *       contrast:   x = clamp(c*x + (1-c)*m, 0, 1), m = mean over the image of grey(x)
 *                   (summed in double in CHW order, then cast to float)
 *       saturation: x = clamp(s*x + (1-s)*grey(x), 0, 1)
 *     with grey(x) = 0.2989 r + 0.587 g + 0.114 b (float).
 *  4. normalise: (x - mean[c]) / std[c].
 * Images whose shorter side is below C are refused (FSB_EFORMAT naming the image): neither
 * transform upsamples a source smaller than the crop.
 */
#ifndef FSB_TRANSFORM_H
#define FSB_TRANSFORM_H

#include "fsb/rng.h"
#include "fsb/threads.h"

#include <stdint.h>

/* Largest crop side supported (fixed-size scratch, no allocation per image). */
#define FSB_TF_MAX_SIDE 1024

/* Per-channel normalisation: out = (x/255 - mean[c]) / std[c]. */
typedef struct fsb_pixnorm {
    float mean[3]; /* R, G, B means on the [0, 1] scale */
    float std[3];  /* R, G, B standard deviations on the [0, 1] scale */
} fsb_pixnorm;

typedef enum {
    FSB_PIXNORM_CONVNET = 0, /* ImageNet: mean 0.485 0.456 0.406, std 0.229 0.224 0.225 */
    FSB_PIXNORM_RESNET12 =
        1 /* FEAT ResNet-12: mean (120.40 115.59 104.54)/255, std (70.68 68.28 72.55)/255 */
} fsb_pixnorm_preset;

/* The preset's constants (float of the decimal values above, divided by 255 in float where
 * the preset says so). */
fsb_pixnorm fsb_pixnorm_get(fsb_pixnorm_preset preset);

/* Parameters of both transforms. */
typedef struct fsb_transform {
    int resize;       /* S: the test transform resizes the shorter side to this (92) */
    int crop;         /* C: output side of both transforms (84) */
    fsb_pixnorm norm; /* normalisation applied last */
    double scale_lo;  /* random resized crop: smallest area fraction (0.08) */
    double scale_hi;  /* largest area fraction (1.0) */
    double ratio_lo;  /* smallest aspect ratio w/h (3/4) */
    double ratio_hi;  /* largest aspect ratio w/h (4/3) */
    float brightness; /* jitter strength: factor in [1-b, 1+b] (0.4) */
    float contrast;   /* likewise (0.4) */
    float saturation; /* likewise (0.4) */
    float flip_p;     /* probability of a horizontal flip (0.5) */
} fsb_transform;

/* The protocol's defaults (S 92, C 84, the values above) with the given normalisation. */
void fsb_transform_defaults(fsb_transform *t, fsb_pixnorm_preset preset);

/* Check parameters: 1 <= C <= FSB_TF_MAX_SIDE, S >= C, 0 < scale_lo <= scale_hi <= 1,
 * 0 < ratio_lo <= ratio_hi, jitter in [0, 1), flip_p in [0, 1], std > 0. FSB_EINVAL
 * naming the bad field. The functions below assert validity. */
int fsb_transform_check(const fsb_transform *t);

/* Test transform of one image px [h][w][channels] (channels 1 or 3) into out [3][C][C].
 * `name` is used in the message when min(w, h) < C (FSB_EFORMAT). */
int fsb_transform_test(float *out, const uint8_t *px, int w, int h, int channels,
                       const fsb_transform *t, const char *name);

/* Train transform of one image px [h][w][channels] into out [3][C][C], drawing from `rng` as
 * documented above. */
int fsb_transform_train(float *out, const uint8_t *px, int w, int h, int channels,
                        const fsb_transform *t, fsb_rng *rng, const char *name);

/* Batches over images of one size stored contiguously, px [n_src][h][w][channels] (a packed
 * cache: fsb_cache.px, .size, .channels).
 * Batch item b is source image idx[b] (idx NULL: b itself); out is [n][3][C][C]. Items are
 * spread over `pool` (NULL: the caller); results do not depend on the thread count. The
 * train batch draws item b from fsb_rng_init(key, stream0 + b). */
int fsb_transform_test_batch(float *out, const uint8_t *px, int w, int h, int channels,
                             const int *idx, int n, const fsb_transform *t, fsb_pool *pool);
int fsb_transform_train_batch(float *out, const uint8_t *px, int w, int h, int channels,
                              const int *idx, int n, const fsb_transform *t, uint64_t key,
                              uint64_t stream0, fsb_pool *pool);

/* Plain bilinear resize (the convention above) of px [h][w][3] to out [oh][ow][3] floats in
 * [0, 255]; any sizes >= 1 (this one may upsample). oh, ow <= FSB_TF_MAX_SIDE. */
void fsb_resize_bilinear(float *out, int ow, int oh, const uint8_t *px, int w, int h);

/* The packing transform: resize the shorter side to `size` and centre-crop size x size
 * (bilinear and offsets as above), rounded to uint8 as floor(v + 0.5) after clamping to
 * [0, 255]; out is [size][size][3]. A size x size image is copied exactly. FSB_EFORMAT
 * naming `name` when min(w, h) < size. */
int fsb_resize_crop_u8(uint8_t *out, int size, const uint8_t *px, int w, int h, const char *name);

#endif
