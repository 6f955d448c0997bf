/* test_pretrain_maml.c - `bench pretrain --objective maml` end to end on a generated Ravi
 * dataset, tiny (ConvNet-4-32 on 16x16 inputs, 3-way 1-shot 3-query tasks, meta-batch 2,
 * 2 meta-iterations per epoch, 2 epochs, 2 inner steps, 3 at val): the run writes the
 * checkpoint with its head and the maml.* meta, kill -9 mid-epoch + rerun gives the same
 * checkpoint bytes, --first-order is labelled (log, maml.order 1), trains other weights and is
 * another run, --val-every skips validation, and flags of the wrong objective are refused
 * naming them.
 */
#include "fixtures.h"
#include "e2e.h"
#include "testutil.h"
#include "fsb/tensorfile.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *root;        /* the generated dataset */
static char *work;        /* outputs */
static char common[2048]; /* flags shared by the maml commands (without --out) */

/* The smallest input the engine takes: packed 16x16, no crop. */
#define IMG " --image-size 16 --resize 16 --crop 16"

static void setup_data(void)
{
    root = tu_tmpdir();
    work = tu_tmpdir();
    int n_classes[3] = {5, 3, 4};
    fx_make_ravi(root, n_classes, 12, 16);
    snprintf(common, sizeof common,
             "--data '%s' --cache '%s/cache' --objective maml --arch conv4-32 --epochs 2 "
             "--episodes-per-epoch 2 --meta-batch 2 --train-way 3 --train-shot 1 "
             "--train-query 3 --inner-steps 2 --inner-steps-test 3 --val-episodes 3 "
             "--val-way 3 --val-query 3 --val-shots 1,2 --threads 2" IMG,
             root, work);
}

static void teardown_data(void)
{
    tu_rmrf(root);
    tu_rmrf(work);
    free(root);
    free(work);
}

/* The checkpoint's meta value of key (asserted present), copied. */
static char *meta(const char *path, const char *key)
{
    fsb_tensorfile tf;
    ck_assert_int_eq(fsb_tensorfile_load(&tf, path), 0);
    const char *v = fsb_tensorfile_meta(&tf, key);
    ck_assert_msg(v != NULL, "%s: no meta %s", path, key);
    char *s = strdup(v);
    fsb_tensorfile_free(&tf);
    return s;
}

static void assert_meta(const char *path, const char *key, const char *want)
{
    char *v = meta(path, key);
    ck_assert_msg(strcmp(v, want) == 0, "%s: %s = '%s', want '%s'", path, key, v, want);
    free(v);
}

START_TEST(maml_runs_and_resumes_bit_identically)
{
    char *p1 = tu_path(work, "a/m.fsbt"), *p2 = tu_path(work, "b/m.fsbt");
    char *out = NULL;
    int rc = tu_run(&out, "'%s' pretrain %s --out '%s'", tu_bench(), common, p1);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "second-order maml (hvp_eps 0.01)"));
    ck_assert_ptr_nonnull(strstr(out, "width 32"));
    ck_assert_ptr_nonnull(strstr(out, "epoch 2/2 lr 0.001 "));
    ck_assert_ptr_nonnull(strstr(out, "val 1-shot "));
    free(out);
    /* the whole network with its 3-way head and the maml.* meta */
    assert_meta(p1, "n_class", "3");
    assert_meta(p1, "flatten", "1");
    assert_meta(p1, "maml.inner_lr", "0.01");
    assert_meta(p1, "maml.inner_steps", "2");
    assert_meta(p1, "maml.test_steps", "3");
    assert_meta(p1, "maml.order", "2");
    assert_meta(p1, "maml.train_way", "3");
    assert_meta(p1, "maml.train_shot", "1");
    assert_meta(p1, "maml.meta_batch", "2");
    assert_meta(p1, "augment", "off");
    char *ep = meta(p1, "epoch"), want[32];
    snprintf(want, sizeof want, "%d", 2 * atoi(ep)); /* 2 meta-iterations per epoch */
    assert_meta(p1, "maml.iterations", want);
    free(ep);
    char *w = meta(p1, "widths");
    ck_assert_msg(strncmp(w, "32", 2) == 0, "widths %s", w);
    free(w);
    /* die in the middle of epoch 2 (meta-iteration 3), rerun: the same bytes */
    rc = tu_run(&out, "'%s' pretrain %s --out '%s' --debug-kill-after-steps 3", tu_bench(), common,
                p2);
    ck_assert_int_ne(rc, 0);
    free(out);
    rc = tu_run(&out, "'%s' pretrain %s --out '%s'", tu_bench(), common, p2);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "resumed after epoch 1 of 2"));
    free(out);
    ck_assert(tu_same_file(p1, p2));
    char c1[4200], c2[4200];
    snprintf(c1, sizeof c1, "%s.csv", p1);
    snprintf(c2, sizeof c2, "%s.csv", p2);
    char *t1 = tu_read(c1, NULL), *t2 = tu_read(c2, NULL);
    char *l1 = tu_drop_last_column(t1), *l2 = tu_drop_last_column(t2);
    ck_assert_str_eq(l1, l2);
    ck_assert_ptr_nonnull(strstr(l1, "epoch,lr,loss,train_acc,val_1shot,val_2shot\n1,"));
    free(t1), free(t2), free(l1), free(l2);
    /* the maml settings are part of the run: another inner lr does not resume this state */
    rc = tu_run(&out, "'%s' pretrain %s --inner-lr 0.02 --out '%s'", tu_bench(), common, p2);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "belongs to another pre-training run"));
    free(out);
    free(p1);
    free(p2);
}
END_TEST

/* The first tensor of a checkpoint (the first conv's weights), copied; *n its floats. */
static float *first_tensor(const char *path, size_t *n)
{
    fsb_tensorfile tf;
    ck_assert_int_eq(fsb_tensorfile_load(&tf, path), 0);
    ck_assert_int_gt(tf.n_tensors, 0);
    *n = tf.tensors[0].numel;
    float *x = malloc(sizeof(float) * *n);
    memcpy(x, tf.tensors[0].data, sizeof(float) * *n);
    fsb_tensorfile_free(&tf);
    return x;
}

START_TEST(first_order_is_labelled_and_differs)
{
    /* validation only at the last epoch: --val-every 2 */
    char *p2 = tu_path(work, "so/m.fsbt"), *p1 = tu_path(work, "fo/m.fsbt");
    char *out = NULL;
    int rc = tu_run(&out, "'%s' pretrain %s --val-every 2 --out '%s'", tu_bench(), common, p2);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    rc = tu_run(&out, "'%s' pretrain %s --val-every 2 --first-order --out '%s'", tu_bench(), common,
                p1);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "FIRST-ORDER maml"));
    ck_assert_ptr_null(strstr(out, "second-order"));
    free(out);
    assert_meta(p1, "maml.order", "1");
    assert_meta(p2, "maml.order", "2");
    assert_meta(p1, "trained_on", "train split (base classes), first-order maml episodes");
    size_t n1, n2;
    float *w1 = first_tensor(p1, &n1), *w2 = first_tensor(p2, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(memcmp(w1, w2, sizeof(float) * n1) != 0, "first order trained the same weights");
    free(w1), free(w2);
    /* epoch 1 was not validated: -1 in its val columns */
    char c[4200];
    snprintf(c, sizeof c, "%s.csv", p1);
    char *text = tu_read(c, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\n1,0.001,"));
    ck_assert_ptr_nonnull(strstr(text, ",-1.000000,-1.000000,"));
    char *row2 = strstr(text, "\n2,");
    ck_assert_ptr_nonnull(row2);
    ck_assert_ptr_null(strstr(row2, "-1.000000"));
    free(text);
    /* the second-order state does not resume as first order */
    rc = tu_run(&out, "'%s' pretrain %s --val-every 2 --first-order --out '%s'", tu_bench(), common,
                p2);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "belongs to another pre-training run"));
    free(out);
    free(p1);
    free(p2);
}
END_TEST

/* `pretrain <flags>` fails and its output names `what`. */
static void refused(const char *flags, const char *what)
{
    char *out = NULL, *p = tu_path(work, "bad/m.fsbt");
    int rc = tu_run(&out, "'%s' pretrain --data '%s' --cache '%s/cache'" IMG " %s --out '%s'",
                    tu_bench(), root, work, flags, p);
    ck_assert_msg(rc != 0, "accepted: %s", flags);
    ck_assert_msg(strstr(out, what) != NULL, "'%s': no '%s' in: %s", flags, what, out);
    free(out);
    free(p);
}

START_TEST(maml_flags_are_refused_elsewhere)
{
    refused("--objective protonet --meta-batch 2", "--meta-batch applies to --objective maml");
    refused("--objective protonet --inner-steps 3", "--inner-steps applies");
    refused("--objective feat --inner-steps-test 3", "--inner-steps-test applies");
    refused("--inner-lr 0.1", "--inner-lr applies");
    refused("--objective protonet --first-order", "--first-order applies");
    refused("--objective protonet --hvp-eps 0.001", "--hvp-eps applies");
    refused("--objective maml --first-order --hvp-eps 0.001", "--hvp-eps: first-order");
    refused(
        "--objective maml --augment on --train-way 3 --val-way 3 --val-query 3 --val-episodes 2",
        "--augment");
    refused("--objective maml --train-way 3 --val-way 2 --val-episodes 2", "--val-way");
    refused("--objective maml --temperature 2", "--temperature applies");
    refused("--objective maml --arch res12 --train-way 3 --train-query 3 --val-way 3 --val-query 3 "
            "--val-episodes 2",
            "ConvNet-4 only");
    refused("--objective mamla", "is not ce, protonet, feat or maml");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pretrain_maml");
    TCase *tc = tcase_create("pretrain_maml");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup_data, teardown_data);
    tcase_add_test(tc, maml_runs_and_resumes_bit_identically);
    tcase_add_test(tc, first_order_is_labelled_and_differs);
    tcase_add_test(tc, maml_flags_are_refused_elsewhere);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
