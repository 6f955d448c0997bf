/* test_student_smoke.c - the per-episode training methods end to end through `bench` on a
 * generated Ravi dataset: a teacher from `bench pretrain`, then 5 episodes of finetune and
 * refilled (1 and 2 threads give the same per_episode.csv; a kill + resume too; the options
 * are in run.id; a bad --student spec is refused naming the key), and `bench tune` on the
 * val split (table and choice written; the test split never read).
 */
#include "fixtures.h"
#include "e2e.h"
#include "testutil.h"

#include "fsb/report.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tu_e2e e2e;    /* dataset, outputs and teacher (e2e.h) */
static char *root;    /* the generated dataset */
static char *work;    /* outputs */
static char *teacher; /* a checkpoint trained once */

#define IMG TU_E2E_IMG
#define STUDENT " --student stage1_steps=3,stage2_steps=4,bank=2"

static void setup_data(void)
{
    tu_e2e_make(&e2e, "--epochs 1 --batch 8 --val-episodes 2 --val-way 3 --val-query 3 "
                      "--threads 2");
    root = e2e.root;
    work = e2e.work;
    teacher = e2e.teacher;
}

static void teardown_data(void)
{
    tu_e2e_free(&e2e);
}

static void run_bench(const char *out_dir, const char *extra, int want_rc)
{
    char *out = NULL;
    int rc = tu_run(&out,
                    "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                    "--shots 1,3 --query 4 --episodes 5 --methods finetune,refilled,1nn" IMG " %s",
                    tu_bench(), root, work, teacher, out_dir, extra);
    int ok = want_rc < 0 ? rc != 0 : rc == want_rc; /* < 0: any failure (killed) */
    if (!ok) fprintf(stderr, "%s\n", out);
    ck_assert_msg(ok, "exit status %d", rc);
    free(out);
}

START_TEST(student_methods_end_to_end)
{
    char *r1 = tu_path(work, "s1"), *r2 = tu_path(work, "s2"), *r3 = tu_path(work, "s3");
    run_bench(r1, "--threads 1" STUDENT, 0);
    run_bench(r2, "--threads 2" STUDENT, 0);
    /* 3 methods x 2 shots x 5 episodes; training methods sync after every round of 2 */
    run_bench(r3, "--threads 2 --debug-kill-after-tasks 14" STUDENT, -1);
    run_bench(r3, "--threads 2" STUDENT, 0);
    char *a = tu_results_without_timing(r1), *b = tu_results_without_timing(r2);
    char *c = tu_results_without_timing(r3);
    ck_assert_str_eq(a, b);
    ck_assert_str_eq(a, c);
    ck_assert_ptr_nonnull(strstr(a, ",1,finetune,"));
    ck_assert_ptr_nonnull(strstr(a, ",3,refilled,"));
    int lines = 0;
    for (const char *p = a; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 3 * 2 * 5 + 1);
    /* the options are part of the run identity */
    char *idp = tu_path(r1, "run.id");
    char *id = tu_read(idp, NULL);
    ck_assert_ptr_nonnull(id);
    ck_assert_ptr_nonnull(strstr(id, "student=stage1_steps=3,"));
    ck_assert_ptr_nonnull(strstr(id, ",bank=2,"));
    /* so other options in the same folder are refused */
    char *out = NULL;
    int rc = tu_run(&out,
                    "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                    "--shots 1,3 --query 4 --episodes 5 --methods finetune,refilled,1nn" IMG
                    " --student stage1_steps=4,stage2_steps=4,bank=2",
                    tu_bench(), root, work, teacher, r1);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(out, "student="));
    free(out);
    /* a bad spec names the flag and the key, before any work */
    rc = tu_run(&out,
                "'%s' --data '%s' --teacher '%s' --out '%s/bad' --methods refilled "
                "--student stage1_steps=3,lr9=1",
                tu_bench(), root, teacher, work);
    ck_assert_int_eq(rc, 2);
    ck_assert_ptr_nonnull(strstr(out, "--student"));
    ck_assert_ptr_nonnull(strstr(out, "lr9"));
    free(out);
    free(a), free(b), free(c), free(id), free(idp);
    free(r1), free(r2), free(r3);
}
END_TEST

START_TEST(tune_on_val_only)
{
    /* the test split is absent while tuning: reading it would fail */
    char *csv = tu_path(root, "split/test.csv"), *aside = tu_path(root, "test.csv.aside");
    ck_assert_int_eq(rename(csv, aside), 0);
    char *dir = tu_path(work, "tune"), *out = NULL;
    const char *cmd = "'%s' tune --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' "
                      "--episodes 3 --shots 1,3 --way 3 --query 4 --threads 2" IMG
                      " --grid 'stage1_steps=2,stage2_steps=2|3,bank=2'";
    int rc = tu_run(&out, cmd, tu_bench(), root, work, teacher, dir);
    if (rc) fprintf(stderr, "%s\n", out);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "val_table.md"));
    free(out);
    char *tp = tu_path(dir, "val_table.md"), *cp = tu_path(dir, "chosen.txt");
    char *table = tu_read(tp, NULL), *chosen = tu_read(cp, NULL);
    ck_assert_ptr_nonnull(table);
    ck_assert_ptr_nonnull(chosen);
    if (getenv("FSB_TEST_VERBOSE")) fprintf(stderr, "%s\n%s", table, chosen);
    /* finetune ignores stage1_steps: 2 points each */
    ck_assert_ptr_nonnull(strstr(table, "| finetune | stage2_steps=2,bank=2 |"));
    ck_assert_ptr_nonnull(strstr(table, "| finetune | stage2_steps=3,bank=2 |"));
    ck_assert_ptr_nonnull(strstr(table, "| refilled | stage1_steps=2,stage2_steps=3,bank=2 |"));
    ck_assert_ptr_null(strstr(table, "| finetune | stage1_steps"));
    ck_assert_ptr_nonnull(strstr(table, "| 1-shot | 3-shot | mean over shots |"));
    ck_assert_ptr_nonnull(strstr(chosen, "\nfinetune\tstage2_steps="));
    ck_assert_ptr_nonnull(strstr(chosen, "\nrefilled\tstage1_steps=2,"));
    /* each refilled point is paired with its fine-tune twin over the shared episodes */
    ck_assert_ptr_nonnull(strstr(table, "## REFILLED − fine-tune, paired"));
    {
        fsb_episode_record *rr = NULL, *fr = NULL;
        size_t nr = 0, nf = 0;
        char *rp = tu_path(dir, "refilled/stage1_steps=2,stage2_steps=3,bank=2/per_episode.csv");
        char *fp = tu_path(dir, "finetune/stage2_steps=3,bank=2/per_episode.csv");
        ck_assert_int_eq(fsb_report_read_episodes(rp, &rr, &nr), 0);
        ck_assert_int_eq(fsb_report_read_episodes(fp, &fr, &nf), 0);
        double d[2] = {0, 0};
        int cnt[2] = {0, 0};
        for (size_t i = 0; i < nr; i++)
            for (size_t j = 0; j < nf; j++)
                if (rr[i].episode == fr[j].episode && rr[i].shot == fr[j].shot) {
                    int s = rr[i].shot == 1 ? 0 : 1;
                    d[s] += rr[i].accuracy - fr[j].accuracy;
                    cnt[s]++;
                }
        ck_assert_int_eq(cnt[0], 3);
        ck_assert_int_eq(cnt[1], 3);
        char row[256];
        for (int s = 0; s < 2; s++) { /* as tune prints it: no "-0.00" */
            d[s] = 100 * d[s] / cnt[s];
            if (d[s] > -0.005 && d[s] < 0.005) d[s] = 0.0;
        }
        snprintf(row, sizeof row,
                 "| stage1_steps=2,stage2_steps=3,bank=2 | stage2_steps=3,bank=2 | %+.2f ± ", d[0]);
        ck_assert_msg(strstr(table, row), "no row '%s' in\n%s", row, table);
        snprintf(row, sizeof row, "| %+.2f ± ", d[1]);
        ck_assert_ptr_nonnull(strstr(strstr(table, "| stage1_steps=2,stage2_steps=3,bank=2 | "
                                                   "stage2_steps=3,bank=2 |"),
                                     row));
        free(rr), free(fr), free(rp), free(fp);
    }
    char *run = tu_path(dir, "refilled/stage1_steps=2,stage2_steps=2,bank=2/run.id");
    char *id = tu_read(run, NULL);
    ck_assert_ptr_nonnull(id);
    ck_assert_ptr_nonnull(strstr(id, "split=val\n"));
    /* a rerun continues (nothing left to do) and chooses the same */
    ck_assert_int_eq(tu_run(&out, cmd, tu_bench(), root, work, teacher, dir), 0);
    free(out);
    char *chosen2 = tu_read(cp, NULL);
    ck_assert_str_eq(chosen, chosen2);
    /* the test split is refused; a bad grid names the key */
    ck_assert_int_eq(tu_run(&out, "'%s' tune --data '%s' --teacher '%s' --split test", tu_bench(),
                            root, teacher),
                     2);
    ck_assert_ptr_nonnull(strstr(out, "test split"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' tune --data '%s' --teacher '%s' --grid 'lr2=0.1|x'",
                            tu_bench(), root, teacher),
                     2);
    ck_assert_ptr_nonnull(strstr(out, "lr2"));
    free(out);
    ck_assert_int_eq(rename(aside, csv), 0);
    free(csv), free(aside), free(dir), free(tp), free(cp), free(table), free(chosen);
    free(chosen2), free(run), free(id);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("student_smoke");
    TCase *tc = tcase_create("student_smoke");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup_data, teardown_data);
    tcase_add_test(tc, student_methods_end_to_end);
    tcase_add_test(tc, tune_on_val_only);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
