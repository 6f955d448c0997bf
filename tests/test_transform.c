/* test_transform.c - bilinear resize, centre crop, normalisation presets and the train
 * augmentation against values computed by hand on tiny images; determinism of the rng-driven
 * path; batches independent of the thread count; images smaller than the crop refused. */
#include "fsb/rng.h"
#include "fsb/status.h"
#include "fsb/threads.h"
#include "fsb/transform.h"

#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Identity normalisation, so outputs are v/255. */
static void plain(fsb_transform *t, int S, int C)
{
    fsb_transform_defaults(t, FSB_PIXNORM_CONVNET);
    t->resize = S;
    t->crop = C;
    for (int c = 0; c < 3; c++) {
        t->norm.mean[c] = 0;
        t->norm.std[c] = 1;
    }
}

START_TEST(bilinear_2x2_to_4x4_by_hand)
{
    /* R channel [[0, 100], [200, 40]]; G = R + 1; B = 255 - R */
    uint8_t px[12] = {0, 1, 255, 100, 101, 155, 200, 201, 55, 40, 41, 215};
    float out[16 * 3];
    fsb_resize_bilinear(out, 4, 4, px, 2, 2);
    /* taps 2 -> 4: t0 = p0; t1 = .75 p0 + .25 p1; t2 = .25 p0 + .75 p1; t3 = p1 */
    const float want[16] = {0,   25,      75,     100, 50,  58.75f, 76.25f, 85,
                            150, 126.25f, 78.75f, 55,  200, 160,    80,     40};
    for (int i = 0; i < 16; i++) {
        ck_assert_float_eq(out[3 * i], want[i]);
        ck_assert_float_eq(out[3 * i + 1], want[i] + 1);
        ck_assert_float_eq(out[3 * i + 2], 255 - want[i]);
    }
    /* the same through the test transform: S 4, C 2 keeps the centre 2x2 */
    fsb_transform t;
    plain(&t, 4, 2);
    float o2[12];
    ck_assert_int_eq(fsb_transform_test(o2, px, 2, 2, 3, &t, "px"), FSB_OK);
    const float cw[4] = {58.75f, 76.25f, 126.25f, 78.75f};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(o2[i], cw[i] / 255.0f);
}
END_TEST

START_TEST(centre_crop_offsets_round_half_even)
{
    /* S equal to the short side: no resampling, only the crop */
    fsb_transform t;
    int widths[4] = {6, 7, 8, 10}, want_left[4] = {2, 2, 2, 4};
    for (int k = 0; k < 4; k++) {
        int w = widths[k], h = 5;
        plain(&t, 5, 3);
        uint8_t *px = malloc((size_t)w * h * 3);
        for (int i = 0; i < w * h * 3; i++)
            px[i] = (uint8_t)i;
        float out[27];
        ck_assert_int_eq(fsb_transform_test(out, px, w, h, 3, &t, "x"), FSB_OK);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++) {
                    int v = px[((y + 1) * w + x + want_left[k]) * 3 + c];
                    ck_assert_float_eq(out[(c * 3 + y) * 3 + x], (float)v / 255.0f);
                }
        free(px);
    }
}
END_TEST

START_TEST(normalisation_presets_by_hand)
{
    uint8_t px[3] = {255, 0, 128};
    float out[3];
    fsb_transform t;
    fsb_transform_defaults(&t, FSB_PIXNORM_CONVNET);
    ck_assert_int_eq(t.resize, 92);
    ck_assert_int_eq(t.crop, 84);
    t.resize = t.crop = 1;
    ck_assert_int_eq(fsb_transform_test(out, px, 1, 1, 3, &t, "p"), FSB_OK);
    ck_assert_double_eq_tol(out[0], (1 - 0.485) / 0.229, 1e-5);
    ck_assert_double_eq_tol(out[1], (0 - 0.456) / 0.224, 1e-5);
    ck_assert_double_eq_tol(out[2], (128 / 255.0 - 0.406) / 0.225, 1e-5);
    fsb_transform_defaults(&t, FSB_PIXNORM_RESNET12);
    t.resize = t.crop = 1;
    ck_assert_int_eq(fsb_transform_test(out, px, 1, 1, 3, &t, "p"), FSB_OK);
    ck_assert_double_eq_tol(out[0], (255 - 120.40) / 70.68, 1e-5);
    ck_assert_double_eq_tol(out[1], (0 - 115.59) / 68.28, 1e-5);
    ck_assert_double_eq_tol(out[2], (128 - 104.54) / 72.55, 1e-5);
    /* 84x84 with S = C = 84 is an exact copy; S 92 resamples but keeps a flat image flat */
    uint8_t *img = malloc(84 * 84 * 3);
    for (int i = 0; i < 84 * 84 * 3; i++)
        img[i] = (uint8_t)(i % 3 == 0 ? 30 : i % 3 == 1 ? 60 : 90);
    float *o = malloc(3 * 84 * 84 * sizeof *o);
    plain(&t, 92, 84);
    ck_assert_int_eq(fsb_transform_test(o, img, 84, 84, 3, &t, "flat"), FSB_OK);
    for (int i = 0; i < 84 * 84; i++) {
        ck_assert_float_eq(o[i], 30 / 255.0f);
        ck_assert_float_eq(o[2 * 84 * 84 + i], 90 / 255.0f);
    }
    free(o);
    free(img);
}
END_TEST

START_TEST(resize_crop_u8_copy_crop_and_downscale)
{
    uint8_t *img = malloc(84 * 84 * 3), *out = malloc(84 * 84 * 3);
    for (int i = 0; i < 84 * 84 * 3; i++)
        img[i] = (uint8_t)(i * 31);
    ck_assert_int_eq(fsb_resize_crop_u8(out, 84, img, 84, 84, "a"), FSB_OK);
    ck_assert_int_eq(memcmp(out, img, 84 * 84 * 3), 0);
    /* 4x2 -> 2: no resampling, crop columns 1..2 */
    uint8_t w4[24], o2[12];
    for (int i = 0; i < 24; i++)
        w4[i] = (uint8_t)(10 * i);
    ck_assert_int_eq(fsb_resize_crop_u8(o2, 2, w4, 4, 2, "b"), FSB_OK);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            for (int c = 0; c < 3; c++)
                ck_assert_int_eq(o2[(y * 2 + x) * 3 + c], w4[(y * 4 + x + 1) * 3 + c]);
    /* 4x4 -> 2x2: each output is the mean of a 2x2 block, rounded half up */
    uint8_t sq[48], o1[12];
    memset(sq, 0, sizeof sq);
    const int blk[4] = {10, 20, 30, 41}; /* top-left block, R: mean 25.25 -> 25 */
    sq[0] = (uint8_t)blk[0];
    sq[3] = (uint8_t)blk[1];
    sq[12] = (uint8_t)blk[2];
    sq[15] = (uint8_t)blk[3];
    sq[1] = sq[4] = sq[13] = 1; /* G: 1, 1, 1, 0 -> 0.75 -> 1 */
    sq[2] = sq[17] = 1;         /* B: 1, 0, 0, 1 -> 0.5 -> 1 (half up) */
    sq[47] = 200;               /* B of the bottom-right block: 200/4 = 50 */
    ck_assert_int_eq(fsb_resize_crop_u8(o1, 2, sq, 4, 4, "c"), FSB_OK);
    ck_assert_int_eq(o1[0], 25);
    ck_assert_int_eq(o1[1], 1);
    ck_assert_int_eq(o1[2], 1);
    ck_assert_int_eq(o1[11], 50);
    ck_assert_int_eq(o1[3], 0);
    ck_assert_int_eq(fsb_resize_crop_u8(out, 84, img, 83, 90, "tiny.jpg"), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "tiny.jpg: image is 83x90"));
    free(img);
    free(out);
}
END_TEST

START_TEST(smaller_than_crop_is_an_error_naming_the_image)
{
    fsb_transform t;
    fsb_transform_defaults(&t, FSB_PIXNORM_CONVNET);
    uint8_t px[100 * 83 * 3] = {0};
    float *out = malloc(3 * 84 * 84 * sizeof *out);
    ck_assert_int_eq(fsb_transform_test(out, px, 100, 83, 3, &t, "small.jpg"), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "small.jpg"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "smaller than the 84x84 crop"));
    fsb_rng r;
    fsb_rng_init(&r, 1, 2);
    ck_assert_int_eq(fsb_transform_train(out, px, 83, 100, 3, &t, &r, "s2.png"), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "s2.png"));
    ck_assert_int_eq(fsb_transform_test_batch(out, px, 100, 83, 3, NULL, 1, &t, NULL), FSB_EFORMAT);
    /* parameter checks name the field */
    t.resize = 80;
    ck_assert_int_eq(fsb_transform_check(&t), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "resize 80"));
    fsb_transform_defaults(&t, FSB_PIXNORM_CONVNET);
    t.scale_lo = 0;
    ck_assert_int_eq(fsb_transform_check(&t), FSB_EINVAL);
    fsb_transform_defaults(&t, FSB_PIXNORM_CONVNET);
    t.flip_p = 2;
    ck_assert_int_eq(fsb_transform_check(&t), FSB_EINVAL);
    free(out);
}
END_TEST

START_TEST(train_crop_flip_jitter_by_hand)
{
    enum { C = 8 };
    fsb_transform t;
    plain(&t, C, C);
    t.brightness = t.contrast = t.saturation = 0;
    t.ratio_lo = t.ratio_hi = 1;
    uint8_t px[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++)
        px[i] = (uint8_t)((i * 37) % 151);
    float out[3 * C * C];
    fsb_rng r;
    /* scale 1/4 and ratio 1 on 16x16: an exact 8x8 window somewhere */
    t.scale_lo = t.scale_hi = 0.25;
    t.flip_p = 0;
    fsb_rng_init(&r, 7, 0);
    ck_assert_int_eq(fsb_transform_train(out, px, 16, 16, 3, &t, &r, "w"), FSB_OK);
    int found = 0;
    for (int top = 0; top <= 8 && !found; top++)
        for (int left = 0; left <= 8 && !found; left++) {
            int ok = 1;
            for (int c = 0; c < 3 && ok; c++)
                for (int y = 0; y < C && ok; y++)
                    for (int x = 0; x < C && ok; x++)
                        ok = out[(c * C + y) * C + x] ==
                             px[((top + y) * 16 + left + x) * 3 + c] / 255.0f;
            found = ok;
        }
    ck_assert_msg(found, "output is not an exact 8x8 window of the source");

    /* fallback: scale 1 ratio 1 never fits a 12x8 image (sqrt(96) -> 10 > 8), so the centred
     * 8x8 (left 2) is used; flip_p 1 mirrors it */
    t.scale_lo = t.scale_hi = 1;
    t.flip_p = 1;
    fsb_rng_init(&r, 7, 1);
    ck_assert_int_eq(fsb_transform_train(out, px, 12, 8, 3, &t, &r, "f"), FSB_OK);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < C; y++)
            for (int x = 0; x < C; x++)
                ck_assert_float_eq(out[(c * C + y) * C + x],
                                   px[(y * 12 + 2 + (C - 1 - x)) * 3 + c] / 255.0f);

    /* brightness only: every pixel scaled by one factor in [0.6, 1.4] (no clamping here:
     * values <= 150/255) */
    t.flip_p = 0;
    t.brightness = 0.4f;
    fsb_rng_init(&r, 9, 3);
    ck_assert_int_eq(fsb_transform_train(out, px, 8, 8, 3, &t, &r, "b"), FSB_OK);
    float f = -1;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < C * C; i++) {
            float v = px[i * 3 + c] / 255.0f;
            if (v < 0.1f) continue;
            float g = out[c * C * C + i] / v;
            if (f < 0) f = g;
            ck_assert_double_eq_tol(g, f, 1e-5);
        }
    ck_assert_double_ge(f, 0.6 - 1e-6);
    ck_assert_double_le(f, 1.4 + 1e-6);
    ck_assert_double_ne_tol(f, 1.0, 1e-6);
}
END_TEST

START_TEST(train_deterministic_and_batches_thread_independent)
{
    enum { W = 100, H = 90, N = 6 };
    uint8_t *px = malloc((size_t)N * W * H * 3);
    for (int i = 0; i < N * W * H * 3; i++)
        px[i] = (uint8_t)((i * 131) ^ (i >> 7));
    fsb_transform t;
    fsb_transform_defaults(&t, FSB_PIXNORM_RESNET12);
    size_t osz = 3 * 84 * 84;
    float *a = malloc(N * osz * sizeof *a), *b = malloc(N * osz * sizeof *b);
    fsb_rng r1, r2;
    fsb_rng_init(&r1, 42, 5);
    r2 = r1;
    ck_assert_int_eq(fsb_transform_train(a, px, W, H, 3, &t, &r1, "x"), FSB_OK);
    ck_assert_int_eq(fsb_transform_train(b, px, W, H, 3, &t, &r2, "x"), FSB_OK);
    ck_assert_int_eq(memcmp(a, b, osz * sizeof *a), 0);
    ck_assert_int_eq(memcmp(&r1, &r2, sizeof r1), 0);
    ck_assert_int_eq(fsb_transform_train(b, px, W, H, 3, &t, &r2, "x"), FSB_OK);
    ck_assert_int_ne(memcmp(a, b, osz * sizeof *a), 0);

    int idx[N] = {5, 0, 3, 3, 1, 2};
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 2), FSB_OK);
    ck_assert_int_eq(fsb_transform_train_batch(a, px, W, H, 3, idx, N, &t, 11, 100, NULL), FSB_OK);
    ck_assert_int_eq(fsb_transform_train_batch(b, px, W, H, 3, idx, N, &t, 11, 100, pool), FSB_OK);
    ck_assert_int_eq(memcmp(a, b, N * osz * sizeof *a), 0);
    float *one = malloc(osz * sizeof *one);
    fsb_rng r;
    fsb_rng_init(&r, 11, 100 + 4);
    ck_assert_int_eq(fsb_transform_train(one, px + (size_t)1 * W * H * 3, W, H, 3, &t, &r, "i"),
                     FSB_OK);
    ck_assert_int_eq(memcmp(one, a + 4 * osz, osz * sizeof *a), 0);
    ck_assert_int_eq(fsb_transform_test_batch(a, px, W, H, 3, idx, N, &t, NULL), FSB_OK);
    ck_assert_int_eq(fsb_transform_test_batch(b, px, W, H, 3, idx, N, &t, pool), FSB_OK);
    ck_assert_int_eq(memcmp(a, b, N * osz * sizeof *a), 0);
    ck_assert_int_eq(fsb_transform_test(one, px + (size_t)3 * W * H * 3, W, H, 3, &t, "i"), FSB_OK);
    ck_assert_int_eq(memcmp(one, a + 2 * osz, osz * sizeof *a), 0);
    ck_assert_int_eq(memcmp(a + 2 * osz, a + 3 * osz, osz * sizeof *a), 0);
    for (size_t i = 0; i < N * osz; i++)
        ck_assert(isfinite(a[i]));
    fsb_pool_destroy(pool);
    free(one);
    free(a);
    free(b);
    free(px);
}
END_TEST

/* A grey source (one channel, as a greyscale split is packed) gives the very bits its
 * 3-channel copy (R = G = B) gives, under the test and train transforms, alone and in
 * batches over a pool: networks see 3 channels and grey data's results do not change. */
START_TEST(grey_source_gives_the_bits_of_its_rgb_copy)
{
    enum { W = 45, H = 37, N = 4 };
    uint8_t *grey = malloc((size_t)N * W * H), *rgb = malloc((size_t)N * W * H * 3);
    for (int i = 0; i < N * W * H; i++) {
        grey[i] = (uint8_t)((i * 97) ^ (i >> 5));
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = grey[i];
    }
    fsb_transform t;
    fsb_transform_defaults(&t, FSB_PIXNORM_CONVNET);
    t.resize = 32;
    t.crop = 28;
    size_t osz = 3 * 28 * 28;
    float *a = malloc(N * osz * sizeof *a), *b = malloc(N * osz * sizeof *b);
    ck_assert_int_eq(fsb_transform_test(a, grey, W, H, 1, &t, "g"), FSB_OK);
    ck_assert_int_eq(fsb_transform_test(b, rgb, W, H, 3, &t, "g"), FSB_OK);
    ck_assert_int_eq(memcmp(a, b, osz * sizeof *a), 0);
    ck_assert_int_ne(memcmp(a, a + 28 * 28, 28 * 28 * sizeof *a), 0); /* normalised per channel */
    for (int k = 0; k < 20; k++) { /* crops, flips and jitter of many draws */
        fsb_rng r1, r2;
        fsb_rng_init(&r1, 9, (uint64_t)k);
        r2 = r1;
        ck_assert_int_eq(fsb_transform_train(a, grey, W, H, 1, &t, &r1, "g"), FSB_OK);
        ck_assert_int_eq(fsb_transform_train(b, rgb, W, H, 3, &t, &r2, "g"), FSB_OK);
        ck_assert_int_eq(memcmp(a, b, osz * sizeof *a), 0);
    }
    int idx[N] = {3, 1, 1, 0};
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 2), FSB_OK);
    ck_assert_int_eq(fsb_transform_test_batch(a, grey, W, H, 1, idx, N, &t, pool), FSB_OK);
    ck_assert_int_eq(fsb_transform_test_batch(b, rgb, W, H, 3, idx, N, &t, NULL), FSB_OK);
    ck_assert_int_eq(memcmp(a, b, N * osz * sizeof *a), 0);
    ck_assert_int_eq(fsb_transform_train_batch(a, grey, W, H, 1, idx, N, &t, 5, 7, pool), FSB_OK);
    ck_assert_int_eq(fsb_transform_train_batch(b, rgb, W, H, 3, idx, N, &t, 5, 7, NULL), FSB_OK);
    ck_assert_int_eq(memcmp(a, b, N * osz * sizeof *a), 0);
    fsb_pool_destroy(pool);
    free(a);
    free(b);
    free(grey);
    free(rgb);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("transform");
    TCase *tc = tcase_create("transform");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, bilinear_2x2_to_4x4_by_hand);
    tcase_add_test(tc, centre_crop_offsets_round_half_even);
    tcase_add_test(tc, normalisation_presets_by_hand);
    tcase_add_test(tc, resize_crop_u8_copy_crop_and_downscale);
    tcase_add_test(tc, smaller_than_crop_is_an_error_naming_the_image);
    tcase_add_test(tc, train_crop_flip_jitter_by_hand);
    tcase_add_test(tc, train_deterministic_and_batches_thread_independent);
    tcase_add_test(tc, grey_source_gives_the_bits_of_its_rgb_copy);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
