/* test_idx.c - gzipped IDX reading on tiny IDX files written by the test itself. */
#include "fsb/fileio.h"
#include "fsb/idx.h"
#include "fsb/status.h"
#include "fixtures.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
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
    /* past the reader's first 1 MB buffer: read whole through its growth */
    fx_idx_pair(dir, "big", 180000);
    char *bip = tu_path(dir, "big-images-idx3-ubyte.gz");
    char *blp = tu_path(dir, "big-labels-idx1-ubyte.gz");
    ck_assert_int_eq(fsb_idx_read(&idx, bip, blp), FSB_OK);
    ck_assert_int_eq(idx.n, 180000);
    ck_assert_uint_eq(idx.pixels[179999 * 6 + 5], 179999 & 0xff);
    ck_assert_uint_eq(idx.pixels[174763 * 6], 174763 & 0xff);
    ck_assert_uint_eq(idx.labels[179999], 9);
    fsb_idx_free(&idx);
    free(bip);
    free(blp);
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

/* Found by tests/fuzz/fuzz_idx: a header claiming ~4 GB in a file of a few bytes was
 * malloc'd in full before reading (libFuzzer's out-of-memory; a failed read as "out of
 * memory" on a small machine). The buffer now grows with the data read, so under a 1 GB
 * address-space limit the file is still reported as truncated. */
START_TEST(truncated_claim_is_not_allocated)
{
    char *dir = tu_tmpdir();
    uint32_t huge[3] = {1u << 24, 255, 1}; /* 4278190080 bytes, < 2^32: plausible */
    uint8_t px[64] = {0}, lab[4] = {0};
    uint32_t ldims[1] = {1u << 24};
    fx_idx(dir, "huge-images", 3, huge, px, sizeof px);
    fx_idx(dir, "labels", 1, ldims, lab, sizeof lab);
    char *a = tu_path(dir, "huge-images"), *b = tu_path(dir, "labels");
    tu_limit_address_space((size_t)1 << 30);
    fsb_idx idx;
    ck_assert_int_eq(fsb_idx_read(&idx, a, b), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "huge-images: truncated"));
    ck_assert_ptr_null(idx.pixels);
    free(a);
    free(b);
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
    tcase_add_test(tc, truncated_claim_is_not_allocated);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
