/* test_demo.c - the Fashion-MNIST-style demo dataset (demo.h) from tiny IDX files written by
 * the test itself: layout, reuse when complete, nothing left behind on failure. */
#include "fixtures.h"
#include "fsb/demo.h"
#include "fsb/status.h"
#include "testutil.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(demo_dataset_layout)
{
    char *src = tu_tmpdir();
    fx_idx_pair(src, "train", 40); /* 4 images per class */
    fx_idx_pair(src, "t10k", 30);  /* 3 per class */
    char *out = tu_tmpdir();
    char *root = tu_path(out, "sub/demo");
    ck_assert_int_eq(fsb_demo_make(src, root, 3), FSB_OK);
    char *ls = NULL;
    tu_run(&ls, "cd '%s' && find . -name '*.png' | sort | head -4 && find . -name '*.png' | wc -l",
           root);
    ck_assert_str_eq(ls, "./test/ankle_boot/00009.png\n./test/ankle_boot/00019.png\n"
                         "./test/ankle_boot/00029.png\n./test/coat/00004.png\n45\n");
    free(ls);
    ck_assert_int_eq(tu_run(NULL, "test -f '%s/train/bag/00008.png'", root), 0);
    ck_assert_int_eq(tu_run(NULL, "test -f '%s/val/shirt/00016.png'", root), 0);
    ck_assert_int_eq(tu_run(NULL, "test ! -e '%s/train/shirt'", root), 0);
    /* reused when complete; asking for more than the source has fails and leaves nothing */
    ck_assert_int_eq(fsb_demo_make(src, root, 3), FSB_OK);
    char *root2 = tu_path(out, "demo2");
    ck_assert_int_eq(fsb_demo_make(src, root2, 4), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "only 3 images"));
    ck_assert_int_eq(tu_run(&ls, "ls -A '%s'", out), 0);
    ck_assert_str_eq(ls, "sub\n");
    free(ls);
    free(root);
    free(root2);
    tu_rmrf(src);
    tu_rmrf(out);
    free(src);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("demo");
    TCase *tc = tcase_create("demo");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, demo_dataset_layout);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
