/* test_compare.c - `bench compare`: paired differences of two runs on hand-computed numbers
 * (only shared (method, shot, episode) triples count, the order of records does not), the
 * files it writes, and the refusals: runs on other episodes, an unfinished run, nothing in
 * common — each naming the folder and writing nothing. Also through the bench command.
 */
#include "fsb/compare.h"
#include "fsb/fileio.h"
#include "fsb/status.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fsb_episode_record rec(const char *m, int shot, int e, int correct)
{
    fsb_episode_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.method, sizeof r.method, "%s", m);
    r.shot = shot;
    r.episode = e;
    r.n_correct = correct;
    r.n_query = 10;
    r.accuracy = correct / 10.0;
    return r;
}

START_TEST(paired_differences_by_hand)
{
    /* A: svm 1-shot episodes 0,1,2 = .5 .6 .7; B: .6 .6 .9 (differences .1 0 .2: mean .1,
     * std sqrt(2/300) = .0816497, ci 1.96 * std / sqrt(3)); B's episode 3 and A's 1nn have
     * no partner */
    fsb_episode_record a[] = {rec("svm", 1, 2, 7), rec("svm", 1, 0, 5), rec("1nn", 1, 0, 3),
                              rec("svm", 1, 1, 6), rec("svm", 5, 0, 8)};
    fsb_episode_record b[] = {rec("svm", 1, 0, 6), rec("svm", 1, 1, 6), rec("svm", 1, 2, 9),
                              rec("svm", 1, 3, 1), rec("svm", 5, 0, 8)};
    fsb_compare_row *r;
    size_t n;
    ck_assert_int_eq(fsb_compare_records(a, 5, b, 5, &r, &n), FSB_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(r[0].method, "svm");
    ck_assert_int_eq(r[0].shot, 1);
    ck_assert_int_eq(r[0].episodes, 3);
    ck_assert_double_eq_tol(r[0].mean_a, 0.6, 1e-12);
    ck_assert_double_eq_tol(r[0].mean_b, 0.7, 1e-12);
    ck_assert_double_eq_tol(r[0].mean_diff, 0.1, 1e-12);
    ck_assert_double_eq_tol(r[0].std, 0.0816496580927726, 1e-12);
    ck_assert_double_eq_tol(r[0].ci95, 1.96 * 0.0816496580927726 / 1.7320508075688772, 1e-12);
    ck_assert_int_eq(r[1].shot, 5);
    ck_assert_double_eq(r[1].mean_diff, 0);
    ck_assert_double_eq(r[1].ci95, 0);
    free(r);
    ck_assert_int_eq(fsb_compare_records(a, 5, b, 0, &r, &n), FSB_OK);
    ck_assert_int_eq(n, 0);
    free(r);
}
END_TEST

/* A finished-looking run folder: run.id with the given episodes hash, and per_episode.csv. */
static char *make_run(const char *root, const char *name, const char *ep_hash, const char *csv)
{
    char *dir = tu_path(root, name);
    ck_assert_int_eq(fsb_mkdir_p(dir), FSB_OK);
    char id[1024];
    snprintf(id, sizeof id,
             "format=fsbench-run/1\nsplit=test\ndata_fingerprint=00000000000000ab\n"
             "teacher_xxh3=%016x\nteacher_arch=conv4\nepisodes_hash=%s\nepisodes=3\nway=5\n"
             "query=2\nshots=1\nseed=0\nmethods=svm(norm=l2n,C=1)\nimage_size=84\n"
             "resize=92\ncrop=84\n",
             (unsigned)strlen(name), ep_hash);
    tu_write_str(dir, "run.id", id);
    if (csv) tu_write_str(dir, "per_episode.csv", csv);
    return dir;
}

#define HDR "episode,shot,method,n_correct,n_query,accuracy,fit_ms,predict_ms\n"

START_TEST(runs_compared_and_refused)
{
    char *root = tu_tmpdir();
    char *a = make_run(root, "a", "abc",
                       HDR "0,1,svm,5,10,0.500000,1,1\n1,1,svm,6,10,0.600000,1,1\n"
                           "2,1,svm,7,10,0.700000,1,1\n");
    char *b = make_run(root, "bb", "abc",
                       HDR "0,1,svm,6,10,0.600000,1,1\n1,1,svm,6,10,0.600000,1,1\n"
                           "2,1,svm,9,10,0.900000,1,1\n");
    char *out = tu_path(root, "cmp");
    fsb_compare_opts o = {.run_a = a, .run_b = b, .out = out, .label_a = "CE", .label_b = "meta"};
    ck_assert_int_eq(fsb_compare(&o), FSB_OK);
    char *p = tu_path(out, "compare.csv"), *text = tu_read(p, NULL);
    ck_assert_str_eq(text, "method,shot,episodes,mean_a,mean_b,mean_diff,ci95,std\n"
                           "svm,1,3,0.600000,0.700000,0.100000,0.092395,0.081650\n");
    free(text), free(p);
    p = tu_path(out, "compare.md");
    text = tu_read(p, NULL);
    ck_assert_ptr_nonnull(strstr(text, "A = CE\nB = meta"));
    ck_assert_ptr_nonnull(strstr(text, "| svm | 1 | 3 | 60.00 | 70.00 | +10.00 ± 9.24 * |"));
    free(text), free(p);
    /* refusals name the folder and the reason, and write nothing */
    char *other = make_run(root, "other", "abd", HDR "0,1,svm,5,10,0.500000,1,1\n");
    char *unfinished = make_run(root, "unfinished", "abc", NULL);
    char *nothing = make_run(root, "nothing", "abc", HDR "0,1,1nn,5,10,0.500000,1,1\n");
    char *out2 = tu_path(root, "cmp2");
    struct {
        const char *b, *msg;
        int st;
    } cases[] = {
        {other, "episodes_hash", FSB_EMISMATCH},
        {unfinished, "unfinished is not finished", FSB_ENOTFOUND},
        {nothing, "no (method, shot) in common", FSB_EINVAL},
        {root, "not a run folder", FSB_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fsb_compare_opts q = {.run_a = a, .run_b = cases[i].b, .out = out2};
        ck_assert_int_eq(fsb_compare(&q), cases[i].st);
        ck_assert_msg(strstr(fsb_error_last(), cases[i].msg), "case %zu: %s", i, fsb_error_last());
        ck_assert(!fsb_is_dir(out2));
    }
    /* the command: the table on stdout, a bad flag named */
    char *cmd_out = NULL;
    ck_assert_int_eq(tu_run(&cmd_out, "'%s' compare --a '%s' --b '%s'", tu_bench(), a, b), 0);
    ck_assert_ptr_nonnull(strstr(cmd_out, "+10.00 ± 9.24 *"));
    free(cmd_out);
    ck_assert_int_eq(tu_run(&cmd_out, "'%s' compare --a '%s' --c x", tu_bench(), a), 2);
    ck_assert_ptr_nonnull(strstr(cmd_out, "unknown flag '--c'"));
    free(cmd_out);
    free(a), free(b), free(out), free(other), free(unfinished), free(nothing), free(out2);
    tu_rmrf(root);
    free(root);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compare");
    TCase *tc = tcase_create("compare");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, paired_differences_by_hand);
    tcase_add_test(tc, runs_compared_and_refused);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
