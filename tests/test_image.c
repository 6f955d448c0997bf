/* test_image.c - decoding: every PNG colour type and bit depth against the samples written,
 * JPEG colour and greyscale, detection by content, and every corrupt input (truncated JPEG
 * or PNG, fake .png, empty file, missing file) failing with the file's name and silently. */
#include "fixtures.h"
#include "fsb/image.h"
#include "fsb/status.h"
#include "testutil.h"

#include <check.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;

static void setup(void)
{
    dir = tu_tmpdir();
}

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir);
}

static void load_ok(fsb_image *img, const char *rel, int w, int h)
{
    char *p = tu_path(dir, rel);
    int st = fsb_image_load(img, p);
    if (st) ck_abort_msg("%s: %s", rel, fsb_error_last());
    ck_assert_int_eq(img->w, w);
    ck_assert_int_eq(img->h, h);
    free(p);
}

static void assert_px(const fsb_image *img, int x, int y, int r, int g, int b)
{
    const uint8_t *p = img->px + ((size_t)y * img->w + x) * 3;
    if (p[0] != r || p[1] != g || p[2] != b)
        ck_abort_msg("pixel (%d,%d) = (%d,%d,%d), want (%d,%d,%d)", x, y, p[0], p[1], p[2], r, g,
                     b);
}

START_TEST(png_rgb_rgba_16bit_interlaced)
{
    /* 3x2 RGB 8-bit */
    uint16_t rgb[18] = {1, 2, 3, 10, 20, 30, 255, 0, 128, 4, 5, 6, 7, 8, 9, 250, 251, 252};
    char *p = tu_path(dir, "rgb8.png");
    fx_png(p, 3, 2, FX_RGB, 8, rgb, NULL, 0, NULL, 0);
    free(p);
    fsb_image img;
    load_ok(&img, "rgb8.png", 3, 2);
    ck_assert_int_eq(
        memcmp(img.px,
               (uint8_t[]){1, 2, 3, 10, 20, 30, 255, 0, 128, 4, 5, 6, 7, 8, 9, 250, 251, 252}, 18),
        0);
    fsb_image_free(&img);

    /* RGBA: alpha dropped, colour kept as stored (not composited) */
    uint16_t rgba[8] = {100, 150, 200, 0, 9, 8, 7, 255};
    fx_png(p = tu_path(dir, "rgba.png"), 2, 1, FX_RGBA, 8, rgba, NULL, 0, NULL, 0);
    free(p);
    load_ok(&img, "rgba.png", 2, 1);
    assert_px(&img, 0, 0, 100, 150, 200);
    assert_px(&img, 1, 0, 9, 8, 7);
    fsb_image_free(&img);

    /* 16-bit RGB and RGBA: the high byte */
    uint16_t rgb16[6] = {0x1234, 0xFFFF, 0x00FF, 0x8000, 0x7FFF, 0x0100};
    fx_png(p = tu_path(dir, "rgb16.png"), 2, 1, FX_RGB, 16, rgb16, NULL, 0, NULL, 0);
    free(p);
    load_ok(&img, "rgb16.png", 2, 1);
    assert_px(&img, 0, 0, 0x12, 0xFF, 0x00);
    assert_px(&img, 1, 0, 0x80, 0x7F, 0x01);
    fsb_image_free(&img);
    uint16_t rgba16[4] = {0xAB00, 0xCD00, 0xEF00, 0x1111};
    fx_png(p = tu_path(dir, "rgba16.png"), 1, 1, FX_RGBA, 16, rgba16, NULL, 0, NULL, 0);
    free(p);
    load_ok(&img, "rgba16.png", 1, 1);
    assert_px(&img, 0, 0, 0xAB, 0xCD, 0xEF);
    fsb_image_free(&img);

    /* RGB with tRNS: ignored */
    uint16_t key[3] = {1, 2, 3};
    fx_png(p = tu_path(dir, "rgbtrns.png"), 3, 2, FX_RGB, 8, rgb, NULL, 0, key, 0);
    free(p);
    load_ok(&img, "rgbtrns.png", 3, 2);
    assert_px(&img, 0, 0, 1, 2, 3);
    assert_px(&img, 2, 1, 250, 251, 252);
    fsb_image_free(&img);

    /* Adam7 interlaced, 9x9 so that every pass is non-empty */
    uint16_t big[9 * 9 * 3];
    for (int i = 0; i < 9 * 9 * 3; i++)
        big[i] = (uint16_t)((i * 7) % 256);
    fx_png(p = tu_path(dir, "inter.png"), 9, 9, FX_RGB, 8, big, NULL, 0, NULL, 1);
    free(p);
    load_ok(&img, "inter.png", 9, 9);
    for (int i = 0; i < 9 * 9 * 3; i++)
        ck_assert_int_eq(img.px[i], big[i]);
    fsb_image_free(&img);
}
END_TEST

START_TEST(png_grey_every_depth_and_alpha)
{
    int depths[5] = {1, 2, 4, 8, 16};
    for (int d = 0; d < 5; d++) {
        int depth = depths[d];
        uint16_t s[5];
        unsigned maxv = (1u << depth) - 1;
        for (int i = 0; i < 5; i++)
            s[i] = (uint16_t)(maxv * (unsigned)i / 4);
        char rel[32];
        snprintf(rel, sizeof rel, "grey%d.png", depth);
        char *p = tu_path(dir, rel);
        fx_png(p, 5, 1, FX_GREY, depth, s, NULL, 0, NULL, 0);
        free(p);
        fsb_image img;
        load_ok(&img, rel, 5, 1);
        for (int i = 0; i < 5; i++) {
            /* libpng's expansion: v * 255 / max for 1/2/4 bits; high byte for 16 */
            int want = depth == 16 ? s[i] >> 8 : (int)(s[i] * 255u / maxv);
            assert_px(&img, i, 0, want, want, want);
        }
        fsb_image_free(&img);
    }
    /* hand values: 2-bit 1 -> 85, 4-bit 3 -> 51 */
    uint16_t two[2] = {1, 3};
    char *p = tu_path(dir, "g2.png");
    fx_png(p, 2, 1, FX_GREY, 2, two, NULL, 0, NULL, 0);
    free(p);
    fsb_image img;
    load_ok(&img, "g2.png", 2, 1);
    assert_px(&img, 0, 0, 85, 85, 85);
    assert_px(&img, 1, 0, 255, 255, 255);
    fsb_image_free(&img);
    uint16_t four[1] = {3};
    uint16_t trns[1] = {3};
    fx_png(p = tu_path(dir, "g4t.png"), 1, 1, FX_GREY, 4, four, NULL, 0, trns, 0);
    free(p);
    load_ok(&img, "g4t.png", 1, 1);
    assert_px(&img, 0, 0, 51, 51, 51);
    fsb_image_free(&img);
    /* grey + alpha, 8 and 16 bit */
    uint16_t ga[4] = {77, 0, 200, 255};
    fx_png(p = tu_path(dir, "ga8.png"), 2, 1, FX_GREY_ALPHA, 8, ga, NULL, 0, NULL, 0);
    free(p);
    load_ok(&img, "ga8.png", 2, 1);
    assert_px(&img, 0, 0, 77, 77, 77);
    assert_px(&img, 1, 0, 200, 200, 200);
    fsb_image_free(&img);
    uint16_t ga16[2] = {0x4321, 0x0000};
    fx_png(p = tu_path(dir, "ga16.png"), 1, 1, FX_GREY_ALPHA, 16, ga16, NULL, 0, NULL, 0);
    free(p);
    load_ok(&img, "ga16.png", 1, 1);
    assert_px(&img, 0, 0, 0x43, 0x43, 0x43);
    fsb_image_free(&img);
}
END_TEST

START_TEST(png_palette_every_depth_with_trns)
{
    uint8_t pal[16 * 3];
    for (int i = 0; i < 16; i++) {
        pal[3 * i] = (uint8_t)(i * 16);
        pal[3 * i + 1] = (uint8_t)(255 - i);
        pal[3 * i + 2] = (uint8_t)(i * 3);
    }
    int depths[4] = {1, 2, 4, 8};
    for (int d = 0; d < 4; d++) {
        int depth = depths[d], n = depth >= 4 ? 16 : 1 << depth;
        uint16_t idx[6], alpha[16];
        for (int i = 0; i < 6; i++)
            idx[i] = (uint16_t)((i * 5) % n);
        for (int i = 0; i < n; i++)
            alpha[i] = (uint16_t)(i * 10);
        for (int t = 0; t < 2; t++) {
            char rel[32];
            snprintf(rel, sizeof rel, "pal%d_%d.png", depth, t);
            char *p = tu_path(dir, rel);
            fx_png(p, 3, 2, FX_PALETTE, depth, idx, pal, n, t ? alpha : NULL, 0);
            free(p);
            fsb_image img;
            load_ok(&img, rel, 3, 2);
            for (int i = 0; i < 6; i++) {
                const uint8_t *c = pal + 3 * idx[i];
                assert_px(&img, i % 3, i / 3, c[0], c[1], c[2]);
            }
            fsb_image_free(&img);
        }
    }
}
END_TEST

START_TEST(jpeg_colour_grey_and_detection_by_content)
{
    /* a flat colour survives JPEG almost exactly */
    uint8_t flat[16 * 16 * 3], grey[16 * 16];
    for (int i = 0; i < 16 * 16; i++) {
        flat[3 * i] = 200;
        flat[3 * i + 1] = 40;
        flat[3 * i + 2] = 90;
        grey[i] = 123;
    }
    char *p = tu_path(dir, "flat.jpg");
    fx_jpeg(p, 16, 16, flat, 0, 100);
    free(p);
    fsb_image img;
    load_ok(&img, "flat.jpg", 16, 16);
    for (int i = 0; i < 16 * 16 * 3; i++)
        ck_assert_int_le(abs((int)img.px[i] - flat[i]), 3);
    fsb_image_free(&img);
    /* greyscale: 3 identical channels */
    fx_jpeg(p = tu_path(dir, "grey.jpg"), 16, 16, grey, 1, 100);
    free(p);
    load_ok(&img, "grey.jpg", 16, 16);
    for (int i = 0; i < 16 * 16; i++) {
        ck_assert_int_eq(img.px[3 * i], img.px[3 * i + 1]);
        ck_assert_int_eq(img.px[3 * i], img.px[3 * i + 2]);
        ck_assert_int_le(abs((int)img.px[3 * i] - 123), 1);
    }
    fsb_image_free(&img);
    /* a JPEG named .png decodes as the JPEG it is; a PNG named .jpg likewise */
    uint8_t pat[20 * 12 * 3];
    fx_pattern(pat, 20, 12, 5);
    fx_jpeg(p = tu_path(dir, "really_jpeg.png"), 20, 12, pat, 0, 90);
    free(p);
    load_ok(&img, "really_jpeg.png", 20, 12);
    fsb_image_free(&img);
    uint16_t s[3] = {1, 2, 3};
    fx_png(p = tu_path(dir, "really_png.jpg"), 1, 1, FX_RGB, 8, s, NULL, 0, NULL, 0);
    free(p);
    load_ok(&img, "really_png.jpg", 1, 1);
    assert_px(&img, 0, 0, 1, 2, 3);
    fsb_image_free(&img);
    /* a larger JPEG decoded twice gives the same bits */
    uint8_t *big = malloc(200 * 150 * 3);
    fx_pattern(big, 200, 150, 9);
    fx_jpeg(p = tu_path(dir, "big.jpg"), 200, 150, big, 0, 85);
    free(p);
    fsb_image a, b;
    load_ok(&a, "big.jpg", 200, 150);
    load_ok(&b, "big.jpg", 200, 150);
    ck_assert_int_eq(memcmp(a.px, b.px, 200 * 150 * 3), 0);
    fsb_image_free(&a);
    fsb_image_free(&b);
    fsb_image_free(&b);
    free(big);
}
END_TEST

START_TEST(png_zoo_decodes_to_the_written_pixels)
{
    ck_assert_int_eq(fx_make_png_zoo(dir), 19);
    uint8_t *rgb = malloc(FX_ZOO_W * FX_ZOO_H * 3);
    fx_pattern(rgb, FX_ZOO_W, FX_ZOO_H, 77);
    for (int f = 0; f < 19; f++) {
        const char *name = fx_zoo_names[f];
        fsb_image img;
        load_ok(&img, name, FX_ZOO_W, FX_ZOO_H);
        int depth = atoi(name + strcspn(name, "0123456789"));
        unsigned maxv = (1u << (depth > 8 ? 8 : depth)) - 1;
        for (int p = 0; p < FX_ZOO_W * FX_ZOO_H; p++) {
            const uint8_t *got = img.px + 3 * p, *src = rgb + 3 * p;
            int want[3];
            if (!strncmp(name, "grey", 4)) {
                int v = depth >= 8 ? src[0] : (int)((src[0] * maxv / 255u) * 255u / maxv);
                want[0] = want[1] = want[2] = v;
            } else if (!strncmp(name, "palette", 7)) {
                int i = p % (int)(maxv + 1);
                want[0] = i;
                want[1] = 255 - i;
                want[2] = (i * 7) % 256;
            } else {
                for (int c = 0; c < 3; c++)
                    want[c] = src[c];
            }
            if (got[0] != want[0] || got[1] != want[1] || got[2] != want[2])
                ck_abort_msg("%s pixel %d: (%d,%d,%d), want (%d,%d,%d)", name, p, got[0], got[1],
                             got[2], want[0], want[1], want[2]);
        }
        fsb_image_free(&img);
    }
    fsb_image img;
    load_ok(&img, "grey.jpg", FX_ZOO_W, FX_ZOO_H);
    for (int p = 0; p < FX_ZOO_W * FX_ZOO_H; p++)
        ck_assert(img.px[3 * p] == img.px[3 * p + 1] && img.px[3 * p] == img.px[3 * p + 2]);
    fsb_image_free(&img);
    load_ok(&img, "rgb.jpg", FX_ZOO_W, FX_ZOO_H);
    fsb_image_free(&img);
    free(rgb);
}
END_TEST

/* Load `rel`, expect `want`, a message starting with the path and containing `needle`,
 * and nothing written to stderr by the libraries. */
static void load_fails(const char *rel, int want, const char *needle)
{
    char *p = tu_path(dir, rel);
    char *errpath = tu_path(dir, "stderr.txt");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    close(fd);
    fsb_image img;
    int st = fsb_image_load(&img, p);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ck_assert_int_eq(st, want);
    ck_assert_ptr_null(img.px);
    if (strncmp(fsb_error_last(), p, strlen(p)) != 0 || !strstr(fsb_error_last(), needle))
        ck_abort_msg("%s: message '%s' (want the path and '%s')", rel, fsb_error_last(), needle);
    struct stat sb;
    ck_assert_int_eq(stat(errpath, &sb), 0);
    ck_assert_int_eq(sb.st_size, 0);
    free(p);
    free(errpath);
}

START_TEST(corrupt_inputs_fail_naming_the_file)
{
    fx_make_corrupt(dir);
    load_fails("truncated.jpg", FSB_EFORMAT, "JPEG");
    load_fails("fake.png", FSB_EFORMAT, "not a JPEG or PNG");
    load_fails("empty.jpg", FSB_EFORMAT, "empty file");
    load_fails("missing.jpg", FSB_ENOTFOUND, "cannot open");
    fsb_image img;
    load_ok(&img, "small.jpg", 20, 30);
    fsb_image_free(&img);
    load_ok(&img, "good.jpg", 96, 96);
    fsb_image_free(&img);
    load_ok(&img, "good.png", 90, 100);
    fsb_image_free(&img);
    /* truncated PNG, and a JPEG cut just after its header (premature end of data) */
    char *p = tu_path(dir, "good.png");
    fx_truncate(p, 200);
    free(p);
    load_fails("good.png", FSB_EFORMAT, "PNG");
    p = tu_path(dir, "good.jpg");
    struct stat sb;
    stat(p, &sb);
    fx_truncate(p, (long)sb.st_size - 40);
    free(p);
    load_fails("good.jpg", FSB_EFORMAT, "JPEG");
    /* a JPEG signature followed by garbage */
    tu_write(dir, "garbage.jpg", "\xff\xd8\xff\xe0garbagegarbage", 18);
    load_fails("garbage.jpg", FSB_EFORMAT, "JPEG");
    /* a progressive JPEG claiming 65500x65500: refused from its header, before the decoder
     * allocates for it (it would map ~13 GB) */
    char *huge = tu_path(dir, "huge.jpg");
    fx_jpeg_progressive_claiming(huge, 65500, 65500);
    free(huge);
    load_fails("huge.jpg", FSB_EFORMAT, "65500x65500 pixels is empty or too large");
    /* in-memory decoding names the given name */
    ck_assert_int_eq(fsb_image_decode(&img, "abc", 3, "mem:thing"), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "mem:thing"));
}
END_TEST

/* The channels a file holds, from a full decode and from its header alone: 1 for grey and
 * grey+alpha PNGs (any depth, tRNS) and a greyscale JPEG, 3 for palette, RGB, RGBA, colour
 * JPEG; a header that cannot be read is an error naming the file. */
/* Found by tests/fuzz/fuzz_image: a 58-byte PNG whose ancillary chunk claims a 1.96 GB length
 * made libpng allocate that much before reading it (src/image.c now caps a chunk at the file's
 * size). libpng treats a failed ancillary allocation as a warning, so the message cannot tell
 * the two apart: this checks the outcome under a 1 GB address-space limit; the allocation
 * itself is caught by tools/fuzz.sh's -malloc_limit_mb on the regression input
 * tests/fuzz/corpus/image/regress-chunk-length-claims-2gb.png. */
START_TEST(png_chunk_length_is_not_allocated)
{
    static const unsigned char crafted[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x05, 0x10, 0x00, 0x00, 0x00, 0x00, 0x13,
        0xa3, 0x1e, 0x79, 0x00, 0x00, 0x00, 0x03, 0x74, 0x52, 0x4e, 0x53, 0x00, 0x01, 0x01, 0x41,
        0x64, 0x6f, 0x62, 0x75, 0x00, 0x02, 0x74, 0x73, 0x50, 0x4c, 0x54, 0x45, 0x42};
    tu_limit_address_space((size_t)1 << 30);
    fsb_image img;
    ck_assert_int_eq(fsb_image_decode(&img, crafted, sizeof crafted, "crafted.png"), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "crafted.png"));
    ck_assert_msg(strstr(fsb_error_last(), "truncated"), "%s", fsb_error_last());
}
END_TEST

START_TEST(channels_from_decode_and_header)
{
    ck_assert_int_eq(fx_make_png_zoo(dir), 19);
    const char *extra[2] = {"grey.jpg", "rgb.jpg"};
    for (int f = 0; f < 21; f++) {
        const char *name = f < 19 ? fx_zoo_names[f] : extra[f - 19];
        int want = strncmp(name, "grey", 4) == 0 ? 1 : 3, got = 0;
        char *p = tu_path(dir, name);
        fsb_image img;
        load_ok(&img, name, FX_ZOO_W, FX_ZOO_H);
        ck_assert_msg(img.channels == want, "%s: decoded channels %d", name, img.channels);
        fsb_image_free(&img);
        ck_assert_int_eq(fsb_image_probe_channels(p, &got), FSB_OK);
        ck_assert_msg(got == want, "%s: probed channels %d", name, got);
        free(p);
    }
    fx_make_corrupt(dir);
    int ch;
    const char *bad[3] = {"fake.png", "empty.jpg", "none.png"};
    const int st[3] = {FSB_EFORMAT, FSB_EFORMAT, FSB_ENOTFOUND};
    for (int i = 0; i < 3; i++) {
        char *p = tu_path(dir, bad[i]);
        ck_assert_int_eq(fsb_image_probe_channels(p, &ch), st[i]);
        ck_assert_ptr_nonnull(strstr(fsb_error_last(), p));
        free(p);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("decode");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, png_rgb_rgba_16bit_interlaced);
    tcase_add_test(tc, png_grey_every_depth_and_alpha);
    tcase_add_test(tc, png_palette_every_depth_with_trns);
    tcase_add_test(tc, jpeg_colour_grey_and_detection_by_content);
    tcase_add_test(tc, corrupt_inputs_fail_naming_the_file);
    tcase_add_test(tc, png_zoo_decodes_to_the_written_pixels);
    tcase_add_test(tc, channels_from_decode_and_header);
    tcase_add_test(tc, png_chunk_length_is_not_allocated);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
