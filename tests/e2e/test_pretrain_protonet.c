/* test_pretrain_protonet.c - `bench pretrain --objective protonet` end to end on a generated
 * Ravi dataset: a cross-entropy teacher is pre-trained first, then fine-tuned with ProtoNet
 * episodes from it (--init): kill -9 mid-epoch + resume gives the same checkpoint bytes, the
 * state belongs to its init checkpoint, bad --init files, a contradicting --arch and bad
 * flags are refused naming them, and the head-less result runs as `bench --teacher`. FEAT's
 * ConvNet recipe (--optimizer adam, --augment off) with --val-shots resumes bit-identically,
 * logs and keeps one column per val shot, and is another run than the SGD one. */
#include "fixtures.h"
#include "e2e.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *root;           /* the generated dataset */
static char *work;           /* outputs */
static char *teacher;        /* the cross-entropy checkpoint the protonet runs start from */
static char common[2048];    /* flags shared by the protonet commands (without --init/--out) */
static char common_ce[2048]; /* the cross-entropy commands' (no episodic flags) */

/* Small images so a ConvNet-4 pass is cheap: packed 32x32, network input 28x28. */
#define IMG " --image-size 32 --resize 32 --crop 28"

static void setup_data(void)
{
    root = tu_tmpdir();
    work = tu_tmpdir();
    int n_classes[3] = {5, 3, 4};
    fx_make_ravi(root, n_classes, 12, 32);
    teacher = tu_path(work, "ce.fsbt");
    char *out = NULL;
    int rc = tu_run(&out,
                    "'%s' pretrain --data '%s' --cache '%s/cache' --epochs 2 --batch 10 "
                    "--val-episodes 4 --val-way 3 --val-query 3 --threads 2" IMG " --out '%s'",
                    tu_bench(), root, work, teacher);
    if (rc != 0) fprintf(stderr, "%s\n", out);
    ck_assert_int_eq(rc, 0);
    free(out);
    snprintf(common, sizeof common,
             "--data '%s' --cache '%s/cache' --objective protonet --epochs 3 "
             "--episodes-per-epoch 4 --train-way 3 --train-shot 2 --train-query 3 --lr 0.01 "
             "--val-episodes 4 --val-way 3 --val-query 3 --threads 2" IMG,
             root, work);
    /* the same without the episodic flags, which cross-entropy refuses */
    snprintf(common_ce, sizeof common_ce,
             "--data '%s' --cache '%s/cache' --epochs 3 --lr 0.01 --val-episodes 4 --val-way 3 "
             "--val-query 3 --threads 2" IMG,
             root, work);
}

static void teardown_data(void)
{
    tu_rmrf(root);
    tu_rmrf(work);
    free(root);
    free(work);
    free(teacher);
}

/* The file with the last column of every line removed (the seconds of a log row). */
static char *strip_last_column(const char *path)
{
    char *text = tu_read(path, NULL);
    ck_assert_ptr_nonnull(text);
    char *out = tu_drop_last_column(text);
    free(text);
    return out;
}

START_TEST(protonet_resume_is_bit_identical)
{
    char *p1 = tu_path(work, "a/p.fsbt"), *p2 = tu_path(work, "b/p.fsbt");
    char *out = NULL;
    int rc =
        tu_run(&out, "'%s' pretrain %s --init '%s' --out '%s'", tu_bench(), common, teacher, p1);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "epoch 3/3"));
    free(out);
    /* 4 episodes per epoch: die in the middle of epoch 2 */
    rc = tu_run(&out, "'%s' pretrain %s --init '%s' --out '%s' --debug-kill-after-steps 6",
                tu_bench(), common, teacher, p2);
    ck_assert_int_ne(rc, 0);
    free(out);
    rc = tu_run(&out, "'%s' pretrain %s --init '%s' --out '%s'", tu_bench(), common, teacher, p2);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "resumed after epoch 1 of 3"));
    free(out);
    ck_assert(tu_same_file(p1, p2));
    char c1[4200], c2[4200];
    snprintf(c1, sizeof c1, "%s.csv", p1);
    snprintf(c2, sizeof c2, "%s.csv", p2);
    char *l1 = strip_last_column(c1), *l2 = strip_last_column(c2);
    ck_assert_str_eq(l1, l2);
    ck_assert_ptr_nonnull(strstr(l1, "epoch,lr,loss,train_acc,val_1shot,val_5shot\n1,"));
    free(l1);
    free(l2);
    /* the checkpoint says how it was trained */
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'protonet episodes' '%s'", p1), 0);
    /* the state belongs to its init checkpoint: another one (here the head-less result, which
     * loads as an init too), or none, is refused */
    rc = tu_run(&out, "'%s' pretrain %s --init '%s' --out '%s'", tu_bench(), common, p1, p2);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "belongs to another pre-training run"));
    free(out);
    rc = tu_run(&out, "'%s' pretrain %s --out '%s'", tu_bench(), common, p2);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "belongs to another pre-training run"));
    free(out);
    /* so is the cross-entropy objective on the same files */
    rc = tu_run(&out, "'%s' pretrain %s --init '%s' --objective ce --batch 10 --out '%s'",
                tu_bench(), common_ce, teacher, p2);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "belongs to another pre-training run"));
    free(out);
    /* the result is a teacher `bench` runs with, frozen-feature and per-episode methods */
    char *r = tu_path(work, "run");
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                "--shots 1,3 --query 4 --episodes 4 --methods 1nn,protonet,logreg,refilled" IMG
                " --student stage1_steps=3,stage2_steps=3,bank=2",
                tu_bench(), root, work, p1, r);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    char *sum = tu_path(r, "summary.csv"), *text = tu_read(sum, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "protonet"));
    ck_assert_ptr_nonnull(strstr(text, "refilled"));
    free(text);
    free(sum);
    free(r);
    free(p1);
    free(p2);
}
END_TEST

START_TEST(adam_val_shots_resume_is_bit_identical)
{
    char *p1 = tu_path(work, "adam1/p.fsbt"), *p2 = tu_path(work, "adam2/p.fsbt");
    const char *feat = "--optimizer adam --weight-decay 0 --augment off --val-shots 1,2,5 "
                       "--schedule step:2:0.5";
    char *out = NULL;
    int rc = tu_run(&out, "'%s' pretrain %s %s --init '%s' --out '%s'", tu_bench(), common, feat,
                    teacher, p1);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "val 1-shot "));
    ck_assert_ptr_nonnull(strstr(out, " 5-shot "));
    free(out);
    rc = tu_run(&out, "'%s' pretrain %s %s --init '%s' --out '%s' --debug-kill-after-steps 6",
                tu_bench(), common, feat, teacher, p2);
    ck_assert_int_ne(rc, 0);
    free(out);
    rc = tu_run(&out, "'%s' pretrain %s %s --init '%s' --out '%s'", tu_bench(), common, feat,
                teacher, p2);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "resumed after epoch 1 of 3"));
    free(out);
    ck_assert(tu_same_file(p1, p2));
    char c1[4200], s1[4200], s2[4200];
    snprintf(c1, sizeof c1, "%s.csv", p1);
    snprintf(s1, sizeof s1, "%s.state", p1);
    snprintf(s2, sizeof s2, "%s.state", p2);
    char *l1 = strip_last_column(c1);
    ck_assert_ptr_nonnull(strstr(l1, "epoch,lr,loss,train_acc,val_1shot,val_2shot,val_5shot\n1,"));
    free(l1);
    /* the Adam moments are in the state, and the checkpoint names every val shot */
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'optim.group0.exp_avg_sq' '%s'", s1), 0);
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'val_2shot' '%s'", p1), 0);
    /* SGD, augmentation on, or other val shots on the same files are another run, refused
     * without touching the files */
    size_t n_before, n_after;
    char *before = tu_read(s2, &n_before);
    ck_assert_ptr_nonnull(before);
    const char *other[] = {"--optimizer sgd --weight-decay 0 --augment off --val-shots 1,2,5",
                           "--optimizer adam --weight-decay 0 --val-shots 1,2,5",
                           "--optimizer adam --weight-decay 0 --augment off --val-shots 1,5",
                           "--optimizer adamw --weight-decay 0 --augment off --val-shots 1,2,5"};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        rc = tu_run(&out, "'%s' pretrain %s %s --schedule step:2:0.5 --init '%s' --out '%s'",
                    tu_bench(), common, other[i], teacher, p2);
        ck_assert_msg(rc != 0 && strstr(out, "belongs to another pre-training run"), "%s: %s",
                      other[i], out);
        free(out);
    }
    char *after = tu_read(s2, &n_after);
    ck_assert_ptr_nonnull(after);
    ck_assert(n_before == n_after && memcmp(before, after, n_before) == 0);
    free(before), free(after);
    free(p1), free(p2);
}
END_TEST

START_TEST(protonet_from_scratch_and_ce_from_init)
{
    /* no --init: a fresh head-less model; one epoch */
    char *p = tu_path(work, "fresh/p.fsbt"), *out = NULL;
    int rc = tu_run(&out, "'%s' pretrain %s --epochs 1 --out '%s'", tu_bench(), common, p);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "done: best epoch 1"));
    free(out);
    /* cross-entropy from an init checkpoint: its backbone, a fresh head */
    char *c = tu_path(work, "ce-init/c.fsbt");
    rc = tu_run(&out,
                "'%s' pretrain %s --objective ce --batch 10 --epochs 1 --init '%s' "
                "--out '%s'",
                tu_bench(), common_ce, teacher, c);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "done: best epoch 1"));
    free(out);
    free(c);
    free(p);
}
END_TEST

START_TEST(protonet_bad_inputs)
{
    char *out = NULL, *p = tu_path(work, "bad/p.fsbt");
    /* --init: missing, not a checkpoint, another architecture than --arch */
    char *missing = tu_path(work, "nope.fsbt");
    int rc =
        tu_run(&out, "'%s' pretrain %s --init '%s' --out '%s'", tu_bench(), common, missing, p);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(out, "nope.fsbt") && strstr(out, "--init"), "%s", out);
    free(out);
    tu_write_str(work, "junk.fsbt", "this is not a checkpoint\n");
    rc = tu_run(&out, "'%s' pretrain %s --init '%s/junk.fsbt' --out '%s'", tu_bench(), common, work,
                p);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(out, "junk.fsbt") != NULL, "%s", out);
    free(out);
    rc = tu_run(&out, "'%s' pretrain %s --init '%s' --arch res12 --out '%s'", tu_bench(), common,
                teacher, p);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(out, "ce.fsbt") && strstr(out, "conv4") && strstr(out, "--arch"), "%s",
                  out);
    free(out);
    /* the matching --arch is fine (checked by the run above); bad flags name themselves */
    struct {
        const char *flags; /* extra flags */
        const char *msg;   /* expected in the output */
    } cases[] = {
        {"--objective triplet", "--objective"},
        {"--train-way 1", "--train-way"},
        {"--train-way 9", "--train-way"},    /* 5 train classes */
        {"--train-shot 10", "--train-shot"}, /* 12 images per class < 10 + 3 */
        {"--train-query 0", "--train-query"},
        {"--max-per-class 4", "--max-per-class"},
        {"--episodes-per-epoch 0", "--episodes-per-epoch"},
        {"--temperature 0", "--temperature"},
        {"--temperature x", "--temperature"},
        {"--optimizer rmsprop", "--optimizer"},
        {"--optimizer adam --momentum 0.5", "--momentum"},
        {"--augment maybe", "--augment"},
        {"--val-shots 0", "--val-shots"},
        {"--val-shots 1,20", "--val-shots"}, /* 12 val images per class < 20 + 3 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rc = tu_run(&out, "'%s' pretrain %s --init '%s' --out '%s' %s", tu_bench(), common, teacher,
                    p, cases[i].flags);
        ck_assert_msg(rc == 2, "%s: rc %d: %s", cases[i].flags, rc, out);
        ck_assert_msg(strstr(out, cases[i].msg) != NULL, "%s: %s", cases[i].flags, out);
        free(out);
    }
    free(missing);
    free(p);
}
END_TEST

START_TEST(protonet_refused_under_mpirun)
{
    const char *why = NULL, *mpirun = tu_mpirun_prefix(&why);
    if (!mpirun) {
        printf("SKIP protonet_refused_under_mpirun: %s\n", why);
        return;
    }
    char *p = tu_path(work, "mpi/p.fsbt"), *out = NULL;
    int rc = tu_run(&out, "%s -np 2 '%s' pretrain %s --init '%s' --out '%s'", mpirun, tu_bench(),
                    common, teacher, p);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(out, "--objective protonet") && strstr(out, "mpirun"), "%s", out);
    free(out);
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pretrain_protonet");
    TCase *tc = tcase_create("pretrain_protonet");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup_data, teardown_data);
    tcase_add_test(tc, protonet_resume_is_bit_identical);
    tcase_add_test(tc, adam_val_shots_resume_is_bit_identical);
    tcase_add_test(tc, protonet_from_scratch_and_ce_from_init);
    tcase_add_test(tc, protonet_bad_inputs);
    tcase_add_test(tc, protonet_refused_under_mpirun);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
