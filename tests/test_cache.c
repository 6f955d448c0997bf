/* test_cache.c - packed splits: pixels equal to the decoded files (exact for 84x84, the
 * resize transform for larger), reuse vs rebuild when the source changes, identical bytes
 * for 1 and 2 threads, the same pixels from both layouts, the header fields, and bad
 * images failing with the file (and CSV line) named and no file left behind. */
#include "fixtures.h"
#include "fsb/cache.h"
#include "fsb/fileio.h"
#include "fsb/image.h"
#include "fsb/status.h"
#include "fsb/threads.h"
#include "fsb/transform.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *root;

static void setup(void)
{
    root = tu_tmpdir();
}

static void teardown(void)
{
    tu_rmrf(root);
    free(root);
}

static void open_ok(fsb_cache *c, const char *r, const char *split, const fsb_cache_opts *o)
{
    int st = fsb_cache_open(c, r, split, o);
    if (st) ck_abort_msg("fsb_cache_open(%s, %s): %s", r, split, fsb_error_last());
}

/* Every cached image equals the packing transform of the decoded file. */
static void assert_pixels_match_files(const fsb_cache *c)
{
    uint8_t *want = malloc((size_t)c->size * c->size * 3);
    ck_assert_int_eq(c->channels, 3);
    for (int i = 0; i < c->split.n_images; i++) {
        char *p = tu_path(c->split.root, c->split.paths[i]);
        fsb_image img;
        ck_assert_int_eq(fsb_image_load(&img, p), FSB_OK);
        ck_assert_int_eq(fsb_resize_crop_u8(want, c->size, img.px, img.w, img.h, p), FSB_OK);
        if (img.w == c->size && img.h == c->size)
            ck_assert_int_eq(memcmp(img.px, want, (size_t)c->size * c->size * 3), 0);
        ck_assert_int_eq(memcmp(fsb_cache_image(c, i), want, (size_t)c->size * c->size * 3), 0);
        fsb_image_free(&img);
        free(p);
    }
    free(want);
}

/* Number of entries in dir whose name contains `part`. */
static int count_files(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

START_TEST(pack_then_reuse_in_default_folder)
{
    int nc[3] = {3, 2, 2};
    fx_make_ravi(root, nc, 4, 84);
    fsb_cache c;
    open_ok(&c, root, "train", NULL);
    ck_assert_int_eq(c.packed, 1);
    ck_assert_int_eq(c.size, 84);
    ck_assert_int_eq(c.split.n_images, 12);
    ck_assert_ptr_nonnull(strstr(c.path, "/.fsbench-cache/train-84-"));
    assert_pixels_match_files(&c);
    char *path = strdup(c.path);
    uint64_t fp = c.source_fp;
    fsb_cache_close(&c);
    fsb_cache_close(&c);
    open_ok(&c, root, "train", NULL);
    ck_assert_int_eq(c.packed, 0);
    ck_assert_str_eq(c.path, path);
    ck_assert_uint_eq(c.source_fp, fp);
    assert_pixels_match_files(&c);
    fsb_cache_close(&c);
    /* header fields */
    size_t n;
    unsigned char *b = (unsigned char *)tu_read(path, &n);
    ck_assert_int_eq(memcmp(b, "FSBPACK\0", 8), 0);
    ck_assert_int_eq(b[8], FSB_CACHE_VERSION);
    ck_assert_int_eq(b[12] | b[13] << 8, 4096);
    ck_assert_int_eq(b[32], 84);
    ck_assert_int_eq(b[44], 12);
    ck_assert_int_eq(b[48], 3);
    ck_assert_int_eq(b[56 + 16 + 0], 4); /* class 1 starts at image 4 */
    ck_assert_int_eq(b[56 + 16 + 4], 4); /* and has 4 images */
    ck_assert_uint_eq(n, 4096 + 12 * 84 * 84 * 3);
    ck_assert_int_eq(memcmp(b + 56 + 3 * 16, "n00000000n00000001n00000002", 27), 0);
    free(b);
    /* rebuild on request */
    fsb_cache_opts o = {0};
    o.rebuild = 1;
    open_ok(&c, root, "val", &o);
    ck_assert_int_eq(c.packed, 1);
    fsb_cache_close(&c);
    free(path);
}
END_TEST

START_TEST(larger_images_resized_and_threads_identical)
{
    int nc[3] = {2, 0, 0};
    fx_make_ravi(root, nc, 40, 100); /* 80 images: several tasks of 32 */
    char *d1 = tu_path(root, "c1"), *d2 = tu_path(root, "c2");
    fsb_cache_opts o = {0};
    o.dir = d1;
    fsb_cache a, b;
    open_ok(&a, root, "train", &o);
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 2), FSB_OK);
    o.dir = d2;
    o.pool = pool;
    open_ok(&b, root, "train", &o);
    ck_assert_int_eq(a.packed && b.packed, 1);
    ck_assert(tu_same_file(a.path, b.path));
    assert_pixels_match_files(&a);
    fsb_cache_close(&a);
    fsb_cache_close(&b);
    fsb_pool_destroy(pool);
    free(d1);
    free(d2);
}
END_TEST

START_TEST(source_change_triggers_rebuild)
{
    int nc[3] = {2, 0, 0};
    fx_make_ravi(root, nc, 3, 84);
    char *dir = tu_path(root, "cache");
    fsb_cache_opts o = {0};
    o.dir = dir;
    fsb_cache c;
    open_ok(&c, root, "train", &o);
    ck_assert_int_eq(c.packed, 1);
    uint8_t before[84 * 84 * 3];
    memcpy(before, fsb_cache_image(&c, 1), sizeof before);
    char *img = tu_path(root, c.split.paths[1]);
    fsb_cache_close(&c);
    /* new content at the same path, with a distinct modification time */
    uint8_t px[84 * 84 * 3];
    fx_pattern(px, 84, 84, 4242);
    fx_jpeg(img, 84, 84, px, 0, 70);
    struct timespec ts[2] = {{1000000000, 5}, {1000000000, 5}};
    ck_assert_int_eq(utimensat(AT_FDCWD, img, ts, 0), 0);
    open_ok(&c, root, "train", &o);
    ck_assert_int_eq(c.packed, 1);
    ck_assert_int_ne(memcmp(before, fsb_cache_image(&c, 1), sizeof before), 0);
    assert_pixels_match_files(&c);
    fsb_cache_close(&c);
    open_ok(&c, root, "train", &o);
    ck_assert_int_eq(c.packed, 0);
    /* a damaged cache file is rebuilt, not trusted */
    char *path = strdup(c.path);
    fsb_cache_close(&c);
    fx_truncate(path, 5000);
    open_ok(&c, root, "train", &o);
    ck_assert_int_eq(c.packed, 1);
    fsb_cache_close(&c);
    /* a changed listing (one row fewer) is rebuilt too */
    tu_write_str(root, "split/train.csv",
                 "filename,label\nn0000000000000000.jpg,n00000000\n"
                 "n0000000100000002.jpg,n00000001\n");
    open_ok(&c, root, "train", &o);
    ck_assert_int_eq(c.packed, 1);
    ck_assert_int_eq(c.split.n_images, 2);
    assert_pixels_match_files(&c);
    fsb_cache_close(&c);
    ck_assert_int_eq(count_files(dir, ".tmp."), 0);
    free(path);
    free(img);
    free(dir);
}
END_TEST

/* Replace image `rel` of the train split by `src` from the corrupt set, then expect the
 * open to fail with `want`, naming the image and its CSV line, and leave nothing behind. */
static void bad_image(const char *rel, const char *src, int want, const char *needle)
{
    char *dir = tu_path(root, "cache");
    char *from = tu_path(root, src), *to = tu_path(root, rel);
    size_t n;
    char *bytes = tu_read(from, &n);
    if (bytes)
        tu_write(root, rel, bytes, n);
    else
        remove(to);
    free(bytes);
    fsb_cache_opts o = {0};
    o.dir = dir;
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 2), FSB_OK);
    o.pool = pool;
    fsb_cache c;
    int st = fsb_cache_open(&c, root, "train", &o);
    ck_assert_int_eq(st, want);
    const char *m = fsb_error_last();
    if (!strstr(m, rel) || !strstr(m, "train.csv:") || !strstr(m, needle))
        ck_abort_msg("message '%s' lacks %s, the CSV line or '%s'", m, rel, needle);
    ck_assert_ptr_null(c.px);
    ck_assert_int_eq(count_files(dir, ".fsbpack"), 0);
    fsb_pool_destroy(pool);
    free(from);
    free(to);
    free(dir);
}

START_TEST(bad_images_fail_naming_file_and_line)
{
    int nc[3] = {2, 0, 0};
    fx_make_ravi(root, nc, 40, 84);
    char *cdir = tu_path(root, "corrupt");
    fx_make_corrupt(cdir);
    free(cdir);
    bad_image("images/n0000000100000033.jpg", "corrupt/truncated.jpg", FSB_EFORMAT, "JPEG");
    bad_image("images/n0000000000000002.jpg", "corrupt/fake.png", FSB_EFORMAT, "not a JPEG");
    bad_image("images/n0000000000000002.jpg", "corrupt/empty.jpg", FSB_EFORMAT, "empty");
    bad_image("images/n0000000000000002.jpg", "corrupt/small.jpg", FSB_EFORMAT,
              "smaller than the 84x84");
    bad_image("images/n0000000000000002.jpg", "corrupt/none.jpg", FSB_ENOTFOUND, "missing");
}
END_TEST

START_TEST(both_layouts_same_pixels)
{
    char *r = tu_path(root, "ravi"), *f = tu_path(root, "folders");
    int nc[3] = {2, 2, 0};
    fx_make_ravi(r, nc, 3, 90);
    fx_make_folders(f, nc, 3, 90);
    fsb_cache a, b;
    open_ok(&a, r, "val", NULL);
    open_ok(&b, f, "val", NULL);
    ck_assert_uint_eq(a.split.fingerprint, b.split.fingerprint);
    ck_assert_int_eq(a.split.n_images, 6);
    ck_assert_int_eq(memcmp(a.px, b.px, (size_t)6 * 84 * 84 * 3), 0);
    ck_assert_int_eq(b.split.layout, FSB_LAYOUT_FOLDERS);
    fsb_cache_close(&a);
    fsb_cache_close(&b);
    /* missing split and root are listing errors */
    ck_assert_int_eq(fsb_cache_open(&a, r, "test", NULL), FSB_ENOTFOUND);
    ck_assert_int_eq(fsb_cache_open(&a, "/nonexistent/fsb", "test", NULL), FSB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "/nonexistent/fsb"));
    char *def;
    ck_assert_int_eq(fsb_cache_default_dir(&def, r), FSB_OK);
    ck_assert_ptr_nonnull(strstr(def, "ravi/.fsbench-cache"));
    free(def);
    free(r);
    free(f);
}
END_TEST

/* Write a class-folder split `name` of n grey images (8-bit grey PNGs and greyscale JPEGs,
 * 90x86) in classes g0, g1. */
static void grey_split(const char *r, const char *name, int n)
{
    uint8_t px[90 * 86];
    uint16_t v[90 * 86];
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < 90 * 86; p++)
            v[p] = px[p] = (uint8_t)(p * (i + 3) + i);
        char rel[64];
        snprintf(rel, sizeof rel, "%s/g%d/i%d.%s", name, i % 2, i, i % 3 ? "png" : "jpg");
        char *p = tu_path(r, rel);
        if (i % 3)
            fx_png(p, 90, 86, FX_GREY, 8, v, NULL, 0, NULL, 0);
        else
            fx_jpeg(p, 90, 86, px, 1, 90);
        free(p);
    }
}

/* A greyscale split is packed in one channel (a third of the bytes, the grey value of the
 * RGB packing); a split with one colour image packs in three; a 3-channel file of a grey
 * split (as packed before) is repacked in one. RGB splits keep 3 (the other tests). */
START_TEST(greyscale_split_packed_in_one_channel)
{
    grey_split(root, "test", 7);
    char *cdir = tu_path(root, "c");
    fsb_cache_opts o = {.dir = cdir};
    fsb_cache c;
    open_ok(&c, root, "test", &o);
    ck_assert_int_eq(c.packed, 1);
    ck_assert_int_eq(c.channels, 1);
    ck_assert_uint_eq(c.map_bytes, 4096 + 7 * 84 * 84);
    ck_assert_int_eq(((const uint8_t *)c.map)[40], 1);
    uint8_t want[84 * 84 * 3];
    for (int i = 0; i < 7; i++) {
        char *p = tu_path(root, c.split.paths[i]);
        fsb_image img;
        ck_assert_int_eq(fsb_image_load(&img, p), FSB_OK);
        ck_assert_int_eq(fsb_resize_crop_u8(want, 84, img.px, img.w, img.h, p), FSB_OK);
        for (int q = 0; q < 84 * 84; q++)
            ck_assert_int_eq(fsb_cache_image(&c, i)[q], want[3 * q]);
        fsb_image_free(&img);
        free(p);
    }
    /* the same split packed in 3 channels before: repacked in 1 */
    size_t bytes = c.map_bytes, n3 = 4096 + (size_t)7 * 84 * 84 * 3;
    uint8_t *old = malloc(n3);
    memcpy(old, c.map, 4096);
    old[40] = 3;
    for (size_t q = 0; q < (size_t)7 * 84 * 84; q++)
        old[4096 + 3 * q] = old[4096 + 3 * q + 1] = old[4096 + 3 * q + 2] = c.px[q];
    char *path = strdup(c.path);
    fsb_cache_close(&c);
    ck_assert_int_eq(fsb_write_file(path, old, n3), FSB_OK);
    open_ok(&c, root, "test", &o);
    ck_assert_int_eq(c.packed, 1);
    ck_assert_int_eq(c.channels, 1);
    ck_assert_uint_eq(c.map_bytes, bytes);
    fsb_cache_close(&c);
    open_ok(&c, root, "test", &o);
    ck_assert_int_eq(c.packed, 0);
    ck_assert_int_eq(c.channels, 1);
    fsb_cache_close(&c);
    /* one colour image: 3 channels, the RGB packing */
    uint8_t rgb[90 * 86 * 3];
    fx_pattern(rgb, 90, 86, 5);
    char *p = tu_path(root, "test/g1/colour.jpg");
    fx_jpeg(p, 90, 86, rgb, 0, 90);
    open_ok(&c, root, "test", &o);
    ck_assert_int_eq(c.channels, 3);
    ck_assert_uint_eq(c.map_bytes, 4096 + (size_t)8 * 84 * 84 * 3);
    assert_pixels_match_files(&c);
    fsb_cache_close(&c);
    free(p);
    free(path);
    free(old);
    free(cdir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, pack_then_reuse_in_default_folder);
    tcase_add_test(tc, larger_images_resized_and_threads_identical);
    tcase_add_test(tc, source_change_triggers_rebuild);
    tcase_add_test(tc, bad_images_fail_naming_file_and_line);
    tcase_add_test(tc, both_layouts_same_pixels);
    tcase_add_test(tc, greyscale_split_packed_in_one_channel);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
