/* test_dataset.c - split listings: both layouts, canonical order, the fingerprint (hashed by
 * hand here), lookups, and every malformed-listing error with the file and line it names. */
#include "fsb/dataset.h"
#include "fsb/status.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static int open_err(const char *root, const char *name, fsb_split *s)
{
    int st = fsb_split_open(s, root, name);
    if (st == 0) fsb_split_free(s);
    return st;
}

static void assert_msg_has(const char *needle)
{
    if (!strstr(fsb_error_last(), needle))
        ck_abort_msg("message '%s' lacks '%s'", fsb_error_last(), needle);
}

START_TEST(ravi_canonical_order_and_lookup)
{
    char *d = tu_tmpdir();
    tu_write_str(d, "split/train.csv",
                 "filename,label\r\n"
                 "b2.jpg,nB\r\n"
                 "a1.jpg,nA\r\n"
                 "\r\n"
                 "b1.jpg,nB\r\n"
                 "a0.jpg,nA\r\n");
    fsb_split s;
    ck_assert_int_eq(fsb_split_open(&s, d, "train"), FSB_OK);
    ck_assert_int_eq(s.layout, FSB_LAYOUT_RAVI);
    ck_assert_str_eq(s.name, "train");
    ck_assert_ptr_nonnull(strstr(s.source, "split/train.csv"));
    ck_assert_int_eq(s.n_classes, 2);
    ck_assert_int_eq(s.n_images, 4);
    ck_assert_str_eq(s.class_names[0], "nA");
    ck_assert_str_eq(s.class_names[1], "nB");
    ck_assert_int_eq(s.class_start[1], 2);
    ck_assert_int_eq(s.class_count[0], 2);
    ck_assert_str_eq(s.paths[0], "images/a0.jpg");
    ck_assert_str_eq(s.paths[1], "images/a1.jpg");
    ck_assert_str_eq(s.paths[2], "images/b1.jpg");
    ck_assert_str_eq(s.paths[3], "images/b2.jpg");
    ck_assert_int_eq(s.labels[3], 1);
    ck_assert_int_eq(s.src_line[0], 6);
    ck_assert_int_eq(s.src_line[2], 5);
    ck_assert_int_eq(s.src_line[3], 2);
    const char *text = "nA\ta0.jpg\nnA\ta1.jpg\nnB\tb1.jpg\nnB\tb2.jpg\n";
    ck_assert_uint_eq(s.fingerprint, XXH3_64bits(text, strlen(text)));
    ck_assert_int_eq(fsb_split_class_index(&s, "nB"), 1);
    ck_assert_int_eq(fsb_split_class_index(&s, "nC"), -1);
    ck_assert_int_eq(fsb_split_image_index(&s, 1, "b2.jpg"), 3);
    ck_assert_int_eq(fsb_split_image_index(&s, 0, "b2.jpg"), -1);
    ck_assert_str_eq(fsb_split_basename(&s, 2), "b1.jpg");
    fsb_split_free(&s);
    fsb_split_free(&s); /* second free is a no-op */
    tu_rmrf(d);
    free(d);
}
END_TEST

START_TEST(ravi_csv_at_root_and_precedence)
{
    char *d = tu_tmpdir();
    tu_write_str(d, "val.csv", "filename,label\nx.jpg,c\n");
    fsb_split s;
    ck_assert_int_eq(fsb_split_open(&s, d, "val"), FSB_OK);
    ck_assert_int_eq(s.n_images, 1);
    ck_assert_ptr_null(strstr(s.source, "split/"));
    fsb_split_free(&s);
    tu_write_str(d, "split/val.csv", "filename,label\ny.jpg,c\nz.jpg,c\n");
    ck_assert_int_eq(fsb_split_open(&s, d, "val"), FSB_OK);
    ck_assert_int_eq(s.n_images, 2);
    fsb_split_free(&s);
    tu_rmrf(d);
    free(d);
}
END_TEST

START_TEST(folders_any_depth_and_same_fingerprint)
{
    char *d = tu_tmpdir();
    tu_write_str(d, "train/animals/nB/b2.PNG", "");
    tu_write_str(d, "train/animals/nB/b1.jpeg", "");
    tu_write_str(d, "train/nA/a1.jpg", "");
    tu_write_str(d, "train/nA/a0.Jpg", "");
    tu_write_str(d, "train/nA/notes.txt", "");
    tu_write_str(d, "train/.hidden/h.jpg", "");
    fsb_split s;
    ck_assert_int_eq(fsb_split_open(&s, d, "train"), FSB_OK);
    ck_assert_int_eq(s.layout, FSB_LAYOUT_FOLDERS);
    ck_assert_int_eq(s.n_classes, 2);
    ck_assert_str_eq(s.class_names[0], "animals/nB");
    ck_assert_str_eq(s.class_names[1], "nA");
    ck_assert_str_eq(s.paths[0], "train/animals/nB/b1.jpeg");
    ck_assert_str_eq(s.paths[1], "train/animals/nB/b2.PNG");
    ck_assert_str_eq(s.paths[2], "train/nA/a0.Jpg");
    ck_assert_int_eq(s.src_line[0], 0);
    ck_assert_int_eq(fsb_split_image_index(&s, 1, "a1.jpg"), 3);
    fsb_split_free(&s);

    /* the same images in both layouts give the same fingerprint */
    char *r = tu_tmpdir(), *f = tu_tmpdir();
    tu_write_str(r, "split/test.csv", "filename,label\nq.jpg,n2\np.jpg,n1\nr.jpg,n1\n");
    tu_write_str(f, "test/n1/r.jpg", "");
    tu_write_str(f, "test/n1/p.jpg", "");
    tu_write_str(f, "test/n2/q.jpg", "");
    fsb_split a, b;
    ck_assert_int_eq(fsb_split_open(&a, r, "test"), FSB_OK);
    ck_assert_int_eq(fsb_split_open(&b, f, "test"), FSB_OK);
    ck_assert_uint_eq(a.fingerprint, b.fingerprint);
    ck_assert_uint_ne(a.fingerprint, 0);
    fsb_split_free(&a);
    fsb_split_free(&b);
    tu_rmrf(d);
    tu_rmrf(r);
    tu_rmrf(f);
    free(d);
    free(r);
    free(f);
}
END_TEST

START_TEST(listing_errors_name_file_and_line)
{
    char *d = tu_tmpdir();
    fsb_split s;
    char *missing = tu_path(d, "nowhere");
    ck_assert_int_eq(open_err(missing, "train", &s), FSB_ENOTFOUND);
    assert_msg_has("nowhere");
    assert_msg_has("root");
    free(missing);

    ck_assert_int_eq(open_err(d, "train", &s), FSB_ENOTFOUND);
    assert_msg_has("split 'train' not found");
    ck_assert_int_eq(fsb_split_exists(d, "train"), 0);

    tu_write_str(d, "split/train.csv", "");
    ck_assert_int_eq(fsb_split_exists(d, "train"), 1);
    ck_assert_int_eq(open_err(d, "train", &s), FSB_EFORMAT);
    assert_msg_has("train.csv:1");

    tu_write_str(d, "split/train.csv", "a.jpg,n1\nb.jpg,n1\n");
    ck_assert_int_eq(open_err(d, "train", &s), FSB_EFORMAT);
    assert_msg_has("train.csv:1: expected header 'filename,label', found 'a.jpg,n1'");

    tu_write_str(d, "split/train.csv", "file,label\na.jpg,n1\n");
    ck_assert_int_eq(open_err(d, "train", &s), FSB_EFORMAT);
    assert_msg_has("found 'file,label'");

    tu_write_str(d, "split/train.csv", "filename,label\n");
    ck_assert_int_eq(open_err(d, "train", &s), FSB_EFORMAT);
    assert_msg_has("train.csv: no rows after the header");

    tu_write_str(d, "split/train.csv", "filename,label\na.jpg,n1\nb.jpg,n1\nc.jpg,n2\na.jpg,n2\n");
    ck_assert_int_eq(open_err(d, "train", &s), FSB_EFORMAT);
    assert_msg_has("train.csv:5: duplicate filename 'a.jpg' (also on line 2)");

    const char *bad[] = {"a.jpg\n",  "a.jpg,n1,x\n", ",n1\n",
                         "a.jpg,\n", "d/a.jpg,n1\n", "a\tb.jpg,n1\n"};
    for (int i = 0; i < 6; i++) {
        char text[128];
        snprintf(text, sizeof text, "filename,label\nok.jpg,n1\n%s", bad[i]);
        tu_write_str(d, "split/train.csv", text);
        ck_assert_int_eq(open_err(d, "train", &s), FSB_EFORMAT);
        assert_msg_has("train.csv:3: malformed row");
    }

    tu_write_str(d, "val/x.jpg", "");
    ck_assert_int_eq(open_err(d, "val", &s), FSB_EFORMAT);
    assert_msg_has("x.jpg");
    tu_write_str(d, "test/n1/readme.txt", "");
    ck_assert_int_eq(open_err(d, "test", &s), FSB_EFORMAT);
    assert_msg_has("no images");
    tu_rmrf(d);
    free(d);
}
END_TEST

/* A comma in a class folder or file name is refused when the split is listed, naming the full
 * path (it used to pass the listing and fail only when an episode happened to draw the image,
 * naming its basename). The Ravi CSV cannot hold one (it is the separator). */
START_TEST(comma_in_names_refused_at_listing_with_full_path)
{
    char *d = tu_tmpdir();
    fsb_split s;
    tu_write_str(d, "test/n1/a.jpg", "");
    tu_write_str(d, "test/n1/b,2.jpg", "");
    ck_assert_int_eq(open_err(d, "test", &s), FSB_EFORMAT);
    char want[4200];
    snprintf(want, sizeof want, "%s/test/n1/b,2.jpg: the file name has a comma", d);
    assert_msg_has(want);
    tu_rmrf(d);
    tu_write_str(d, "test/n1/a.jpg", "");
    tu_write_str(d, "test/n,2/deep/c.png", "");
    ck_assert_int_eq(open_err(d, "test", &s), FSB_EFORMAT);
    snprintf(want, sizeof want, "%s/test/n,2/deep: the class folder name has a comma", d);
    assert_msg_has(want);
    ck_assert_int_eq(fsb_split_field_ok("a,b", 3, 0), 0);
    ck_assert_int_eq(fsb_split_field_ok("a b", 3, 1), 1);
    tu_rmrf(d);
    free(d);
}
END_TEST

static int collect(void *ctx, const char *problem)
{
    char *buf = ctx;
    strncat(buf, problem, 8000 - strlen(buf) - 2);
    strcat(buf, "\n");
    return FSB_OK;
}

/* Symlinks: a loop is found by (device, inode) at once and named as one (it used to be found
 * by depth, with a message clipped before its cause); a link to a sibling folder is no loop;
 * a dangling or self-looping image symlink is an error naming the path (it was skipped
 * silently); a lenient listing reports each and lists the rest. */
START_TEST(symlink_loops_and_dangling_links_named)
{
    char *d = tu_tmpdir();
    fsb_split s;
    char want[4200];
    tu_write_str(d, "train/n1/a.jpg", "");
    tu_write_str(d, "train/n2/b.jpg", "");
    ck_assert_int_eq(tu_run(NULL, "ln -s ../n2 '%s/train/n1/sub'", d), 0); /* no loop */
    ck_assert_int_eq(fsb_split_open(&s, d, "train"), FSB_OK);
    ck_assert_int_eq(s.n_images, 3);
    ck_assert_str_eq(s.class_names[1], "n1/sub");
    fsb_split_free(&s);
    ck_assert_int_eq(tu_run(NULL, "ln -s .. '%s/train/n2/up'", d), 0);
    ck_assert_int_eq(open_err(d, "train", &s), FSB_EFORMAT);
    snprintf(want, sizeof want,
             "%s/train/n1/sub/up: symbolic link loop (the same folder as %s/train,", d, d);
    assert_msg_has(want);
    tu_run(NULL, "rm '%s/train/n2/up' '%s/train/n1/sub'", d, d);

    ck_assert_int_eq(tu_run(NULL, "ln -s gone.jpg '%s/train/n1/c.jpg'", d), 0);
    ck_assert_int_eq(open_err(d, "train", &s), FSB_EFORMAT);
    snprintf(want, sizeof want,
             "%s/train/n1/c.jpg: dangling symbolic link (its target gone.jpg does not exist)", d);
    assert_msg_has(want);
    tu_run(NULL, "rm '%s/train/n1/c.jpg'", d);
    ck_assert_int_eq(tu_run(NULL, "ln -s self.png '%s/train/n2/self.png'", d), 0);
    ck_assert_int_eq(open_err(d, "train", &s), FSB_EFORMAT);
    snprintf(want, sizeof want, "%s/train/n2/self.png: symbolic link loop", d);
    assert_msg_has(want);

    /* leniently: every problem reported, in name order, the rest listed */
    ck_assert_int_eq(
        tu_run(NULL, "ln -s gone.jpg '%s/train/n1/c.jpg' && ln -s .. '%s/train/n2/up'", d, d), 0);
    char got[8000] = "";
    ck_assert_int_eq(fsb_split_open_lenient(&s, d, "train", collect, got), FSB_OK);
    ck_assert_int_eq(s.n_images, 2);
    fsb_split_free(&s);
    char *c = strstr(got, "n1/c.jpg: dangling"),
         *l = strstr(got, "n2/self.png: symbolic link loop"),
         *u = strstr(got, "n2/up: symbolic link loop (the same folder as");
    ck_assert_msg(c && l && u && c < l && l < u, "%s", got);
    tu_rmrf(d);
    free(d);
}
END_TEST

static Suite *dataset_suite(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("listing");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, ravi_canonical_order_and_lookup);
    tcase_add_test(tc, ravi_csv_at_root_and_precedence);
    tcase_add_test(tc, folders_any_depth_and_same_fingerprint);
    tcase_add_test(tc, listing_errors_name_file_and_line);
    tcase_add_test(tc, comma_in_names_refused_at_listing_with_full_path);
    tcase_add_test(tc, symlink_loops_and_dangling_links_named);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(dataset_suite());
}
