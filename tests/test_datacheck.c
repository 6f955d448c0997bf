/* test_datacheck.c - the full dataset check: a clean dataset passes with its summary lines;
 * a dataset with every kind of problem gets every one listed (file and CSV line), the
 * right count and a non-zero status, the same report for 1 and 2 threads; a missing root,
 * an empty CSV, a CSV without header; the class-folder layout. */
#include "fixtures.h"
#include "fsb/datacheck.h"
#include "fsb/status.h"
#include "fsb/threads.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Run the check with a report in a file; returns the status, *text the report. */
static int run_check(const char *r, fsb_pool *pool, char **text, int *n)
{
    char *rp = tu_path(root, "report.txt");
    FILE *fp = fopen(rp, "w");
    ck_assert_ptr_nonnull(fp);
    int st = fsb_data_check(r, fp, pool, NULL, n);
    fclose(fp);
    *text = tu_read(rp, NULL);
    free(rp);
    return st;
}

static void has(const char *text, const char *needle)
{
    if (!strstr(text, needle)) ck_abort_msg("report lacks '%s':\n%s", needle, text);
}

START_TEST(clean_dataset_passes_with_summaries)
{
    int nc[3] = {3, 2, 2};
    fx_make_ravi(root, nc, 4, 84);
    char *text;
    int n = -1;
    ck_assert_int_eq(run_check(root, NULL, &text, &n), FSB_OK);
    ck_assert_int_eq(n, 0);
    has(text, "train: 12 images in 3 classes, 4 per class\n");
    has(text, "val: 8 images in 2 classes, 4 per class\n");
    has(text, "(Ravi CSV layout)");
    has(text, "train: fingerprint ");
    has(text, "problems: 0\n");
    ck_assert_ptr_null(strstr(text, "canonical"));
    free(text);
}
END_TEST

START_TEST(every_problem_listed_with_file_and_line)
{
    int nc[3] = {2, 2, 1};
    fx_make_ravi(root, nc, 4, 84);
    char *cd = tu_path(root, "corrupt");
    fx_make_corrupt(cd);
    /* train.csv rewritten in canonical order (line k+2 = image k) plus bad rows */
    tu_write_str(root, "split/train.csv",
                 "filename,label\n"
                 "n0000000000000000.jpg,n00000000\n"   /* 2 */
                 "n0000000000000001.jpg,n00000000\n"   /* 3: truncated */
                 "n0000000000000002.jpg,n00000000\n"   /* 4: fake png */
                 "n0000000000000003.jpg,n00000000\n"   /* 5: zero bytes */
                 "n0000000100000000.jpg,n00000001\n"   /* 6: too small */
                 "n0000000100000001.jpg,n00000001\n"   /* 7 */
                 "n0000000100000002.jpg,n00000001\n"   /* 8 */
                 "n0000000100000003.jpg,n00000001\n"   /* 9 */
                 "n0000000000000000.jpg,n00000000\n"   /* 10: duplicate of 2 */
                 "missing.jpg,n00000001\n"             /* 11: missing file */
                 "just-a-filename\n"                   /* 12: malformed */
                 "n0000010000000000.jpg,n00000100\n"); /* 13: also in val */
    const char *from[4] = {"truncated.jpg", "fake.png", "empty.jpg", "small.jpg"};
    const char *to[4] = {"images/n0000000000000001.jpg", "images/n0000000000000002.jpg",
                         "images/n0000000000000003.jpg", "images/n0000000100000000.jpg"};
    for (int i = 0; i < 4; i++) {
        char *p = tu_path(cd, from[i]);
        size_t n;
        char *b = tu_read(p, &n);
        tu_write(root, to[i], b, n);
        free(b);
        free(p);
    }
    tu_write_str(root, "split/test.csv", "file,label\nn0000020000000000.jpg,n00000200\n");
    char *text, *text2;
    int n = -1, n2 = -1;
    ck_assert_int_eq(run_check(root, NULL, &text, &n), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "9 problems"));
    has(text, "train.csv:3: ");
    has(text, "images/n0000000000000001.jpg: corrupt or truncated JPEG");
    has(text, "train.csv:4: ");
    has(text, "images/n0000000000000002.jpg: not a JPEG or PNG");
    has(text, "train.csv:5: ");
    has(text, "images/n0000000000000003.jpg: empty file");
    has(text, "train.csv:6: ");
    has(text, "images/n0000000100000000.jpg: image is 20x30, smaller than 84 on a side");
    has(text, "train.csv:10: duplicate row for 'n0000000000000000.jpg' (first on line 2)");
    has(text, "train.csv:11: ");
    has(text, "images/missing.jpg: listed image is missing");
    has(text, "train.csv:12: malformed row 'just-a-filename'");
    has(text, "val.csv:5: ");
    has(text, "images/n0000010000000000.jpg is also listed in train");
    has(text, "train.csv:13)\n");
    has(text, "test.csv:1: expected header 'filename,label', found 'file,label'");
    has(text, "train: 10 images in 3 classes, 1 to 5 per class");
    has(text, "train:   class n00000100 has 1 images");
    has(text, "problems: 9\n");
    ck_assert_int_eq(n, 9);
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 2), FSB_OK);
    ck_assert_int_eq(run_check(root, pool, &text2, &n2), FSB_EFORMAT);
    ck_assert_str_eq(text, text2);
    ck_assert_int_eq(n2, 9);
    fsb_pool_destroy(pool);
    free(text);
    free(text2);
    free(cd);
}
END_TEST

START_TEST(missing_root_empty_and_headerless_csv)
{
    char *text;
    int n;
    char *nowhere = tu_path(root, "nowhere");
    ck_assert_int_eq(run_check(nowhere, NULL, &text, &n), FSB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "nowhere"));
    has(text, "nowhere: dataset root not found");
    free(text);
    free(nowhere);
    /* nothing at all */
    ck_assert_int_eq(run_check(root, NULL, &text, &n), FSB_EFORMAT);
    has(text, "no split found");
    ck_assert_int_eq(n, 1);
    free(text);
    /* header only; no header (rows start at line 1) */
    tu_write_str(root, "split/train.csv", "filename,label\n");
    tu_write_str(root, "val.csv", "a.jpg,n1\nb.jpg,n1\n");
    uint8_t px[84 * 84 * 3];
    fx_pattern(px, 84, 84, 1);
    char *p = tu_path(root, "images/a.jpg");
    fx_jpeg(p, 84, 84, px, 0, 90);
    free(p);
    fx_pattern(px, 84, 84, 2); /* other bytes: the same twice would be a duplicate */
    fx_jpeg(p = tu_path(root, "images/b.jpg"), 84, 84, px, 0, 90);
    free(p);
    ck_assert_int_eq(run_check(root, NULL, &text, &n), FSB_EFORMAT);
    has(text, "train.csv: no rows after the header");
    has(text, "val.csv:1: expected header 'filename,label', found 'a.jpg,n1' (read as a row)");
    has(text, "val: 2 images in 1 classes, 2 per class");
    has(text, "test: absent");
    has(text, "no test split");
    ck_assert_int_eq(n, 3);
    free(text);
}
END_TEST

START_TEST(class_folder_layout)
{
    int nc[3] = {2, 1, 1};
    fx_make_folders(root, nc, 3, 84);
    char *text;
    int n;
    ck_assert_int_eq(run_check(root, NULL, &text, &n), FSB_OK);
    has(text, "(class folders layout)");
    has(text, "train: 6 images in 2 classes, 3 per class");
    free(text);
    uint8_t px[50 * 90 * 3];
    fx_pattern(px, 50, 90, 3);
    char *p = tu_path(root, "test/n00000200/tiny.png.jpg");
    fx_jpeg(p, 50, 90, px, 0, 90);
    free(p);
    ck_assert_int_eq(run_check(root, NULL, &text, &n), FSB_EFORMAT);
    has(text, "test/n00000200/tiny.png.jpg: image is 50x90, smaller than 84 on a side");
    ck_assert_int_eq(n, 1);
    free(text);
}
END_TEST

/* Folder-layout problems under the loader's rules, each reported, the rest still checked: a
 * dangling image symlink (it was skipped silently), a symlink loop (found by device and
 * inode), a class folder name with a comma. */
START_TEST(folder_listing_problems_each_reported)
{
    int nc[3] = {2, 1, 1};
    fx_make_folders(root, nc, 3, 84);
    ck_assert_int_eq(tu_run(NULL,
                            "cd '%s/test' && ln -s gone.jpg n00000200/z.jpg && ln -s .. "
                            "n00000200/loop && mkdir 'a,b' && cp n00000200/*0.jpg 'a,b/'",
                            root),
                     0);
    char *text;
    int n;
    ck_assert_int_eq(run_check(root, NULL, &text, &n), FSB_EFORMAT);
    char want[4200];
    snprintf(want, sizeof want, "%s/test/a,b: the class folder name has a comma", root);
    has(text, want);
    snprintf(want, sizeof want,
             "%s/test/n00000200/loop: symbolic link loop (the same folder as %s/test,", root, root);
    has(text, want);
    snprintf(want, sizeof want, "%s/test/n00000200/z.jpg: dangling symbolic link", root);
    has(text, want);
    has(text, "test: 3 images in 1 classes, 3 per class\n");
    ck_assert_int_eq(n, 3);
    free(text);
}
END_TEST

/* A split that pretrain or run would refuse to find is a problem (check said "problems: 0"
 * for a dataset without val, which pretrain then refused); --split checks fewer splits;
 * pack --split lists every split asked for before packing any (it packed train, then failed
 * on the missing val). */
START_TEST(missing_split_is_a_problem_as_the_loader_says)
{
    int nc[3] = {2, 0, 1};
    fx_make_ravi(root, nc, 3, 84);
    char *text;
    int n;
    ck_assert_int_eq(run_check(root, NULL, &text, &n), FSB_EFORMAT);
    char want[4200];
    snprintf(want, sizeof want,
             "%s: no val split (looked for %s/split/val.csv, %s/val.csv and %s/val/); bench "
             "pretrain reads train and val",
             root, root, root, root);
    has(text, want);
    ck_assert_int_eq(n, 1);
    free(text);
    char *out = NULL, *cache = tu_path(root, "c");
    ck_assert_int_eq(tu_run(&out, "%s data check --data '%s'", tu_bench(), root), 1);
    has(out, "problems: 1");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data check --data '%s' --split test,train", tu_bench(), root),
                     0);
    has(out, "val: not checked (--split)");
    has(out, "problems: 0");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data pack --data '%s' --split train,val --cache '%s'",
                            tu_bench(), root, cache),
                     1);
    has(out, "no val split");
    free(out);
    ck_assert_int_eq(tu_run(NULL, "ls '%s'/train-* 2>/dev/null", cache), 2); /* nothing packed */
    free(cache);
}
END_TEST

/* The check judges image sizes against the size asked for, as pack and run do (it demanded
 * 84 px of a 28-px dataset that pack --size 28 and a 28-px run accept). */
START_TEST(check_judges_against_the_image_size)
{
    int nc[3] = {2, 1, 1};
    fx_make_folders(root, nc, 3, 28);
    char *text, *out = NULL;
    int n;
    ck_assert_int_eq(run_check(root, NULL, &text, &n), FSB_EFORMAT); /* the protocol's 84 */
    ck_assert_int_eq(n, 12);
    has(text, "image is 28x28, smaller than 84 on a side (--image-size 84)");
    free(text);
    ck_assert_int_eq(tu_run(&out, "%s data check --data '%s' --image-size 28", tu_bench(), root),
                     0);
    has(out, "problems: 0");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data check --data '%s' --size 28", tu_bench(), root), 0);
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data check --data '%s' --image-size 30", tu_bench(), root),
                     1);
    has(out, "image is 28x28, smaller than 30 on a side (--image-size 30)");
    has(out, "problems: 12");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data check --data '%s' --image-size 0", tu_bench(), root), 2);
    has(out, "--image-size");
    free(out);
    char *cache = tu_path(root, "c");
    ck_assert_int_eq(tu_run(&out, "%s data pack --data '%s' --image-size 28 --cache '%s'",
                            tu_bench(), root, cache),
                     0);
    free(out);
    free(cache);
}
END_TEST

/* Overlap and duplicates are found by content in every layout: class folders list the same
 * files under other paths in each split (train and test both links to one folder passed with
 * problems: 0), and a Ravi CSV may list one image's bytes under two names. */
START_TEST(overlap_and_duplicates_found_by_content)
{
    char *src = tu_path(root, "src"), *links = tu_path(root, "links"), *text;
    int nc[3] = {2, 1, 2}, n;
    fx_make_folders(src, nc, 3, 84);
    ck_assert_int_eq(tu_run(NULL,
                            "mkdir '%s' && ln -s '%s/test' '%s/train' && ln -s '%s/val' '%s/val' "
                            "&& ln -s '%s/test' '%s/test'",
                            links, src, links, src, links, src, links),
                     0);
    ck_assert_int_eq(run_check(links, NULL, &text, &n), FSB_EFORMAT);
    ck_assert_int_eq(n, 6); /* each test image is also a train image */
    char want[4200];
    snprintf(want, sizeof want,
             "%s/test/n00000201/n0000020100000002.jpg: same content as "
             "%s/train/n00000201/n0000020100000002.jpg in train: the splits overlap\n",
             links, links);
    has(text, want);
    free(text);
    ck_assert_int_eq(run_check(src, NULL, &text, &n), FSB_OK);
    free(text);
    /* Ravi: a test image's bytes under a train name, a train image's bytes twice in train */
    char *ravi = tu_path(root, "ravi");
    fx_make_ravi(ravi, nc, 3, 84);
    ck_assert_int_eq(tu_run(NULL,
                            "cd '%s/images' && cp n0000020000000001.jpg n0000000100000002.jpg && "
                            "cp n0000000000000000.jpg n0000000000000002.jpg",
                            ravi),
                     0);
    ck_assert_int_eq(run_check(ravi, NULL, &text, &n), FSB_EFORMAT);
    ck_assert_int_eq(n, 2);
    has(text, "images/n0000000000000002.jpg: same content as ");
    has(text, "images/n0000000000000000.jpg (");
    has(text, "a duplicate image in train\n");
    has(text, "test.csv:");
    has(text, "images/n0000020000000001.jpg: same content as ");
    has(text, "images/n0000000100000002.jpg (");
    has(text, "in train: the splits overlap\n");
    free(text);
    free(ravi);
    free(src);
    free(links);
}
END_TEST

START_TEST(cli_check_and_pack)
{
    int nc[3] = {2, 1, 1};
    fx_make_ravi(root, nc, 3, 84);
    char *out = NULL;
    ck_assert_int_eq(tu_run(&out, "%s data check --data '%s' --threads 2", tu_bench(), root), 0);
    has(out, "problems: 0");
    free(out);
    char *cache = tu_path(root, "cachedir");
    ck_assert_int_eq(tu_run(&out, "%s data pack --data '%s' --split val,train --cache '%s'",
                            tu_bench(), root, cache),
                     0);
    has(out, "train      6 images");
    has(out, "img/s  packed -> ");
    has(out, "val        3 images");
    ck_assert_ptr_null(strstr(out, "test "));
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data pack --data '%s' --cache '%s'", tu_bench(), root, cache),
                     0);
    has(out, "up to date");
    free(out);
    /* a truncated image: named, exit status 1 */
    char *img = tu_path(root, "images/n0000000000000001.jpg");
    fx_truncate(img, 300);
    ck_assert_int_eq(tu_run(&out, "%s data check --data '%s'", tu_bench(), root), 1);
    has(out, "train.csv:");
    has(out, "n0000000000000001.jpg: corrupt or truncated JPEG");
    has(out, "problems: 1");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data pack --data '%s' --cache '%s'", tu_bench(), root, cache),
                     1);
    has(out, "n0000000000000001.jpg");
    free(out);
    /* usage errors name the flag and exit 2 */
    ck_assert_int_eq(tu_run(&out, "%s data check --data '%s' --bogus", tu_bench(), root), 2);
    has(out, "--bogus");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data pack --data '%s' --threads x", tu_bench(), root), 2);
    has(out, "--threads");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data pack --data '%s' --split train,dev", tu_bench(), root),
                     2);
    has(out, "--split: 'dev'");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data check --cache x --data '%s'", tu_bench(), root), 2);
    has(out, "--cache");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data check", tu_bench()), 2);
    has(out, "--data");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data frobnicate", tu_bench()), 2);
    free(out);
    /* without --split only the splits that exist are packed; asking for a missing one fails */
    char *r2 = tu_path(root, "only_train");
    int one[3] = {1, 0, 0};
    fx_make_ravi(r2, one, 2, 84);
    ck_assert_int_eq(tu_run(&out, "%s data pack --data '%s'", tu_bench(), r2), 0);
    has(out, "val   absent, skipped");
    has(out, "train      2 images");
    free(out);
    ck_assert_int_eq(tu_run(&out, "%s data pack --data '%s' --split val", tu_bench(), r2), 1);
    has(out, "no val split");
    free(out);
    free(r2);
    free(img);
    free(cache);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("datacheck");
    TCase *tc = tcase_create("datacheck");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, clean_dataset_passes_with_summaries);
    tcase_add_test(tc, every_problem_listed_with_file_and_line);
    tcase_add_test(tc, missing_root_empty_and_headerless_csv);
    tcase_add_test(tc, class_folder_layout);
    tcase_add_test(tc, folder_listing_problems_each_reported);
    tcase_add_test(tc, missing_split_is_a_problem_as_the_loader_says);
    tcase_add_test(tc, check_judges_against_the_image_size);
    tcase_add_test(tc, overlap_and_duplicates_found_by_content);
    tcase_add_test(tc, cli_check_and_pack);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
