/* test_idx.c - gzipped IDX reading on tiny IDX files written by the test itself. */
#include "fsb/fileio.h"
#include "fsb/idx.h"
#include "fsb/status.h"
#include "fixtures.h"
#include "testutil.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

START_TEST(reads_images_and_labels)
{
    char *dir = tu_tmpdir();
    fx_idx_pair(dir, "train", 25);
    char *ip = tu_path(dir, "train-images-idx3-ubyte.gz");
    char *lp = tu_path(dir, "train-labels-idx1-ubyte.gz");
    fsb_idx idx;
    ck_assert_int_eq(fsb_idx_read(&idx, ip, lp), FSB_OK);
    ck_assert_int_eq(idx.n, 25);
    ck_assert_int_eq(idx.rows, 2);
    ck_assert_int_eq(idx.cols, 3);
    ck_assert_uint_eq(idx.pixels[7 * 6 + 5], 7);
    ck_assert_uint_eq(idx.labels[13], 3);
    fsb_idx_free(&idx);
    fsb_idx_free(&idx);
    free(ip);
    free(lp);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(rejects_bad_files)
{
    char *dir = tu_tmpdir();
    uint32_t idims[3] = {4, 2, 2}, ldims[1] = {3}, lgood[1] = {4};
    uint8_t px[16] = {0}, lab[4] = {0};
    fx_idx(dir, "short-images", 3, idims, px, 10); /* 16 bytes promised, 10 given */
    fx_idx(dir, "images", 3, idims, px, 16);
    fx_idx(dir, "labels3", 1, ldims, lab, 3);
    fx_idx(dir, "labels4", 1, lgood, lab, 4);
    char *a = tu_path(dir, "short-images"), *b = tu_path(dir, "labels4");
    char *c = tu_path(dir, "images"), *d = tu_path(dir, "labels3");
    fsb_idx idx;
    ck_assert_int_eq(fsb_idx_read(&idx, a, b), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "short-images"));
    ck_assert_int_eq(fsb_idx_read(&idx, c, d), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "labels3"));
    /* labels given where images are expected: wrong magic */
    ck_assert_int_eq(fsb_idx_read(&idx, b, b), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "magic"));
    /* 2^24 x 2^24 x 2^16 bytes wraps a 64-bit product to 0: refused, not malloc(0) */
    uint32_t wrap[3] = {1u << 24, 1u << 24, 1u << 16};
    fx_idx(dir, "wrap-images", 3, wrap, px, 0);
    char *w = tu_path(dir, "wrap-images");
    ck_assert_int_eq(fsb_idx_read(&idx, w, b), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "wrap-images: implausible size"));
    free(w);
    char *missing = tu_path(dir, "nope.gz");
    ck_assert_int_eq(fsb_idx_read(&idx, missing, b), FSB_ENOTFOUND);
    free(a), free(b), free(c), free(d), free(missing);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("idx");
    TCase *tc = tcase_create("idx");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, reads_images_and_labels);
    tcase_add_test(tc, rejects_bad_files);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
