/* test_pretrain_feat.c - `bench pretrain --objective feat` end to end on a generated Ravi
 * dataset: FEAT meta-training from a cross-entropy teacher (--init), tiny (3-way 2-shot
 * 3-query, 4 episodes per epoch, 3 epochs, 28x28): kill -9 mid-epoch + resume gives the same
 * checkpoint bytes, the checkpoint holds FEAT's slf_attn.* block (attention.h
 * fsb_feat_attn_load reads it) and runs as a plain `bench --teacher`, the state holds both
 * optimiser groups, FEAT's settings make another run, and bad flags are refused naming them.
 */
#include "fixtures.h"
#include "testutil.h"
#include "fsb/attention.h"
#include "fsb/status.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *root;        /* the generated dataset */
static char *work;        /* outputs */
static char *teacher;     /* the cross-entropy checkpoint the feat runs start from */
static char common[2048]; /* flags shared by the feat commands (without --init/--out) */

/* Small images so a ConvNet-4 pass is cheap: packed 32x32, network input 28x28 (64-d). */
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
             "--data '%s' --cache '%s/cache' --objective feat --epochs 3 "
             "--episodes-per-epoch 4 --train-way 3 --train-shot 2 --train-query 3 --lr 0.001 "
             "--optimizer adam --weight-decay 0 --augment off --temperature 64 "
             "--temperature2 16 --balance 1 --val-episodes 4 --val-way 3 --val-query 3 "
             "--threads 2" IMG,
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

START_TEST(feat_resume_is_bit_identical)
{
    char *p1 = tu_path(work, "a/f.fsbt"), *p2 = tu_path(work, "b/f.fsbt");
    char *out = NULL;
    int rc =
        tu_run(&out, "'%s' pretrain %s --init '%s' --out '%s'", tu_bench(), common, teacher, p1);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "feat 3-way 2-shot 3-query x 4 episodes/epoch"));
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
    /* the checkpoint: trained how, with FEAT's block under its state_dict names; the state:
     * the block and the optimiser state of both groups, and FEAT's settings */
    char s1[4200];
    snprintf(s1, sizeof s1, "%s.state", p1);
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'feat episodes' '%s'", p1), 0);
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'slf_attn.layer_norm.bias' '%s'", p1), 0);
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'slf_attn.w_qs.weight' '%s'", s1), 0);
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'optim.group1.exp_avg_sq' '%s'", s1), 0);
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'optim.group0.exp_avg_sq' '%s'", s1), 0);
    ck_assert_int_eq(
        tu_run(NULL, "grep -aq 'objective=feat .* temperature2=16 balance=1 lr_mul=10' '%s'", s1),
        0);
    /* the block loads back for an evaluator; not as one of another dimension; a plain
     * backbone has none */
    float *mem = malloc(sizeof(float) * (size_t)fsb_feat_attn_n_params(64));
    fsb_feat_attn_params p;
    ck_assert_msg(fsb_feat_attn_load(p1, &p, mem, 64) == FSB_OK, "%s", fsb_error_last());
    ck_assert(p.ln_w[0] != 1.0f || p.ln_w[1] != 1.0f); /* trained, not the initial 1 */
    ck_assert_int_eq(fsb_feat_attn_load(p1, &p, mem, 32), FSB_EMISMATCH);
    ck_assert_int_eq(fsb_feat_attn_load(teacher, &p, mem, 64), FSB_EMISMATCH);
    free(mem);
    /* other FEAT settings, or protonet, on the same files: another run, refused */
    const char *other[] = {"--lr-mul 1", "--balance 0.1", "--temperature2 64"};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        rc = tu_run(&out, "'%s' pretrain %s %s --init '%s' --out '%s'", tu_bench(), common,
                    other[i], teacher, p2);
        ck_assert_msg(rc != 0 && strstr(out, "belongs to another pre-training run"), "%s: %s",
                      other[i], out);
        free(out);
    }
    /* the result is a plain teacher: `bench` uses its embedding and ignores the block */
    char *r = tu_path(work, "run");
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                "--shots 1,3 --query 4 --episodes 4 --methods 1nn,protonet,logreg" IMG,
                tu_bench(), root, work, p1, r);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    char *sum = tu_path(r, "summary.csv"), *text = tu_read(sum, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "logreg"));
    free(text), free(sum), free(r);
    /* the feat method: FEAT's classifier with the checkpoint's own block; a teacher without
     * one is refused before the folder is claimed */
    r = tu_path(work, "run-feat");
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                "--shots 1,3 --query 4 --episodes 4 --methods protonet,feat" IMG,
                tu_bench(), root, work, p1, r);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    sum = tu_path(r, "summary.csv"), text = tu_read(sum, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\nfeat,1,4,"));
    free(text), free(sum), free(r);
    r = tu_path(work, "run-feat-ce");
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                "--shots 1 --query 4 --episodes 2 --methods feat" IMG,
                tu_bench(), root, work, teacher, r);
    ck_assert_msg(rc != 0 && strstr(out, "needs a FEAT teacher") && strstr(out, "slf_attn"), "%s",
                  out);
    free(out);
    ck_assert_int_eq(tu_run(NULL, "test ! -e '%s/run.id'", r), 0);
    free(r);
    free(p1), free(p2);
}
END_TEST

START_TEST(feat_bad_flags)
{
    char *out = NULL, *p = tu_path(work, "bad/f.fsbt");
    /* FEAT's flags belong to --objective feat */
    const char *objectives[] = {"--objective protonet", ""};
    const char *feat_flags[] = {"--temperature2 16", "--balance 1", "--lr-mul 10"};
    for (size_t i = 0; i < 2; i++)
        for (size_t k = 0; k < 3; k++) {
            int rc = tu_run(&out, "'%s' pretrain --data '%s' %s %s --init '%s' --out '%s'",
                            tu_bench(), root, objectives[i], feat_flags[k], teacher, p);
            ck_assert_msg(rc == 2, "%s %s: rc %d: %s", objectives[i], feat_flags[k], rc, out);
            ck_assert_msg(strstr(out, "--temperature2, --balance and --lr-mul apply to "
                                      "--objective feat only"),
                          "%s", out);
            free(out);
        }
    struct {
        const char *flags; /* extra flags */
        const char *msg;   /* expected in the output */
    } cases[] = {
        {"--temperature2 0", "--temperature2"}, {"--temperature2 x", "--temperature2"},
        {"--balance -1", "--balance"},          {"--lr-mul -1", "--lr-mul"},
        {"--objective fea", "--objective"},     {"--batch 10", "--batch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = tu_run(&out, "'%s' pretrain %s --init '%s' --out '%s' %s", tu_bench(), common,
                        teacher, p, cases[i].flags);
        ck_assert_msg(rc == 2, "%s: rc %d: %s", cases[i].flags, rc, out);
        ck_assert_msg(strstr(out, cases[i].msg) != NULL, "%s: %s", cases[i].flags, out);
        free(out);
    }
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pretrain_feat");
    TCase *tc = tcase_create("pretrain_feat");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup_data, teardown_data);
    tcase_add_test(tc, feat_resume_is_bit_identical);
    tcase_add_test(tc, feat_bad_flags);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
