/* test_pipeline.c - end to end through the `bench` binary on a generated Ravi dataset:
 * pre-training (kill -9 mid-epoch + resume gives the same checkpoint bytes; bad inputs),
 * then the benchmark run (identical per_episode.csv for 1 and 2 threads, after a kill and
 * resume, and when replaying the exported episodes; refused folders; bad flags), and
 * `bench table --from` rebuilding the derived files. */
#include "fixtures.h"
#include "e2e.h"
#include "fsb/journal.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static tu_e2e e2e;        /* dataset, outputs and teacher (e2e.h) */
static char *root;        /* the generated dataset */
static char *work;        /* outputs */
static char *teacher;     /* a checkpoint trained once for the run tests */
static char common[1024]; /* flags shared by the pretrain commands */

#define IMG TU_E2E_IMG

static void setup_data(void)
{
    tu_e2e_make(&e2e, "--epochs 3 --batch 8 --val-episodes 4 --val-way 3 --val-query 3 "
                      "--threads 2");
    root = e2e.root;
    work = e2e.work;
    teacher = e2e.teacher;
    snprintf(common, sizeof common,
             "--data '%s' --cache '%s/cache' --epochs 3 --batch 8 --val-episodes 4 --val-way 3 "
             "--val-query 3 --threads 2" IMG,
             root, work);
}

static void teardown_data(void)
{
    tu_e2e_free(&e2e);
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

START_TEST(pretrain_resume_is_bit_identical)
{
    char *p1 = tu_path(work, "a/t.fsbt"), *p2 = tu_path(work, "b/t.fsbt");
    tu_run(NULL, "mkdir -p '%s/a' '%s/b'", work, work);
    char *out = NULL;
    ck_assert_int_eq(tu_run(&out, "'%s' pretrain %s --out '%s'", tu_bench(), common, p1), 0);
    free(out);
    /* 48 images / batch 8 = 6 steps per epoch: die in the middle of epoch 2 */
    int rc = tu_run(&out, "'%s' pretrain %s --out '%s' --debug-kill-after-steps 9", tu_bench(),
                    common, p2);
    ck_assert_int_ne(rc, 0);
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' pretrain %s --out '%s'", tu_bench(), common, p2), 0);
    ck_assert_ptr_nonnull(strstr(out, "resumed after epoch 1 of 3"));
    free(out);
    ck_assert(tu_same_file(p1, p2));
    char s1[4200], s2[4200];
    snprintf(s1, sizeof s1, "%s.state", p1);
    snprintf(s2, sizeof s2, "%s.state", p2);
    char c1[4200], c2[4200];
    snprintf(c1, sizeof c1, "%s.csv", p1);
    snprintf(c2, sizeof c2, "%s.csv", p2);
    char *l1 = strip_last_column(c1), *l2 = strip_last_column(c2);
    ck_assert_str_eq(l1, l2);
    ck_assert_ptr_nonnull(strstr(l1, "epoch,lr,loss,train_acc,val_1shot,val_5shot\n1,"));
    free(l1);
    free(l2);
    /* a finished run reruns as a no-op, except that a log left behind its state (a kill
     * between the two renames) is brought level with it */
    char *full = tu_read(c2, NULL);
    tu_run(NULL, "sed -i '$d' '%s'", c2);
    ck_assert_int_eq(tu_run(&out, "'%s' pretrain %s --out '%s'", tu_bench(), common, p2), 0);
    ck_assert(tu_same_file(p1, p2));
    free(out);
    char *again = tu_read(c2, NULL);
    ck_assert_str_eq(full, again);
    free(full);
    free(again);
    /* the state belongs to this run: another seed is refused, naming the file */
    ck_assert_int_ne(tu_run(&out, "'%s' pretrain %s --out '%s' --seed 7", tu_bench(), common, p2),
                     0);
    ck_assert_ptr_nonnull(strstr(out, "belongs to another pre-training run"));
    free(out);
    /* a corrupt state is refused, not silently restarted */
    tu_run(NULL, "printf 'x' | dd of='%s' bs=1 seek=100 conv=notrunc 2>/dev/null", s2);
    ck_assert_int_ne(tu_run(&out, "'%s' pretrain %s --out '%s'", tu_bench(), common, p2), 0);
    ck_assert_ptr_nonnull(strstr(out, "checksum mismatch"));
    free(out);
    free(p1);
    free(p2);
}
END_TEST

START_TEST(pretrain_write_failure_keeps_previous_state)
{
    char *p = tu_path(work, "c/t.fsbt");
    tu_run(NULL, "mkdir -p '%s/c'", work);
    char *out = NULL;
    tu_run(&out, "'%s' pretrain %s --out '%s' --debug-kill-after-steps 7", tu_bench(), common, p);
    free(out);
    char state[4200], copy[4200];
    snprintf(state, sizeof state, "%s.state", p);
    snprintf(copy, sizeof copy, "%s.copy", p);
    tu_run(NULL, "cp '%s' '%s'", state, copy);
    /* files may not grow past 64 KiB: the next state write fails like a full disk */
    int rc = tu_run(&out, "ulimit -f 64; trap '' XFSZ; '%s' pretrain %s --out '%s'", tu_bench(),
                    common, p);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "t.fsbt"));
    free(out);
    ck_assert(tu_same_file(state, copy));
    /* and the run resumes from it once there is room */
    ck_assert_int_eq(tu_run(&out, "'%s' pretrain %s --out '%s'", tu_bench(), common, p), 0);
    ck_assert_ptr_nonnull(strstr(out, "resumed after epoch 1 of 3"));
    free(out);
    free(p);
}
END_TEST

START_TEST(pretrain_bad_inputs)
{
    char *out = NULL;
    char *empty = tu_path(work, "empty");
    tu_run(NULL, "mkdir -p '%s/split' && printf 'filename,label\\n' > '%s/split/val.csv'", empty,
           empty);
    ck_assert_int_ne(
        tu_run(&out, "'%s' pretrain --data '%s' --out '%s/x.fsbt'", tu_bench(), empty, work), 0);
    ck_assert_ptr_nonnull(strstr(out, "train"));
    free(out);
    /* flags of the other objective, and an image smaller than its crop: refused at once */
    ck_assert_int_eq(
        tu_run(&out, "'%s' pretrain %s --train-way 3 --out '%s/y.fsbt'", tu_bench(), common, work),
        2);
    ck_assert_ptr_nonnull(strstr(out, "apply to --objective protonet, feat or maml only"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' pretrain %s --image-size 16 --out '%s/y.fsbt'", tu_bench(),
                            common, work),
                     2);
    ck_assert_ptr_nonnull(strstr(out, "--image-size: 16 is smaller than --crop"));
    free(out);
    /* val classes of 12 images, 30-shot validation: the message names pretrain's flags */
    ck_assert_int_eq(tu_run(&out, "'%s' pretrain %s --val-shots 1,30 --out '%s/y.fsbt'", tu_bench(),
                            common, work),
                     2);
    ck_assert_msg(strstr(out, "fewer than the largest --val-shots 30 + --val-query 3 = 33") &&
                      !strstr(out, " --shots") && !strstr(out, " --query"),
                  "%s", out);
    free(out);
    /* 3 val classes, 5-way validation */
    ck_assert_int_eq(
        tu_run(&out, "'%s' pretrain %s --val-way 5 --out '%s/y.fsbt'", tu_bench(), common, work),
        2);
    ck_assert_ptr_nonnull(strstr(out, "--val-way"));
    free(out);
    ck_assert_int_eq(
        tu_run(&out, "'%s' pretrain %s --epochs 0 --out '%s/y.fsbt'", tu_bench(), common, work), 2);
    ck_assert_ptr_nonnull(strstr(out, "--epochs"));
    free(out);
    ck_assert_int_eq(
        tu_run(&out, "'%s' pretrain %s --arch vgg --out '%s/y.fsbt'", tu_bench(), common, work), 2);
    ck_assert_ptr_nonnull(strstr(out, "--arch"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' pretrain %s --bogus 1", tu_bench(), common), 2);
    ck_assert_ptr_nonnull(strstr(out, "--bogus"));
    free(out);
    free(empty);
}
END_TEST

static void run_bench(const char *out_dir, const char *extra, int want_rc)
{
    char *out = NULL;
    int rc =
        tu_run(&out,
               "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
               "--shots 1,3 --query 4 --episodes 12 --methods 1nn,svm,protonet,logreg" IMG " %s",
               tu_bench(), root, work, teacher, out_dir, extra);
    int ok = want_rc < 0 ? rc != 0 : rc == want_rc; /* < 0: any failure (killed) */
    if (!ok) fprintf(stderr, "%s\n", out);
    ck_assert_msg(ok, "exit status %d", rc);
    free(out);
}

START_TEST(run_is_independent_of_threads_and_interruptions)
{
    char *r1 = tu_path(work, "r1"), *r2 = tu_path(work, "r2"), *r3 = tu_path(work, "r3");
    run_bench(r1, "--threads 1", 0);
    run_bench(r2, "--threads 2", 0);
    /* 4 methods x 2 shots x 12 episodes = 96 tasks, journaled a group of 12 at a time */
    run_bench(r3, "--threads 2 --debug-kill-after-tasks 40", -1);
    /* the unfinished run: no table without --partial; with it, the journaled groups */
    char *tout = NULL;
    ck_assert_int_eq(tu_run(&tout, "'%s' table --from '%s'", tu_bench(), r3), 1);
    ck_assert_ptr_nonnull(strstr(tout, "add --partial"));
    free(tout);
    ck_assert_int_eq(tu_run(&tout, "'%s' table --from '%s' --partial", tu_bench(), r3), 0);
    ck_assert_ptr_nonnull(strstr(tout, "of 96 tasks"));
    free(tout);
    char *ps = tu_path(r3, "partial/summary.csv"), *pst = tu_read(ps, NULL);
    ck_assert_ptr_nonnull(strstr(pst, "1nn,1,12,"));
    free(pst), free(ps);
    run_bench(r3, "--threads 2", 0);
    char *a = tu_results_without_timing(r1), *b = tu_results_without_timing(r2);
    char *c = tu_results_without_timing(r3);
    ck_assert_str_eq(a, b);
    ck_assert_str_eq(a, c);
    ck_assert_ptr_nonnull(strstr(a, "episode,shot,method,n_correct,n_query,accuracy\n0,1,1nn,"));
    /* 96 rows + header */
    int lines = 0;
    for (const char *p = a; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 97);
    for (const char *f = "summary.csv\0paired.csv\0table.md\0table.tex\0episodes.csv\0manifest."
                         "txt\0run.id\0";
         *f; f += strlen(f) + 1) {
        char *p = tu_path(r1, f), *text = tu_read(p, NULL);
        ck_assert_msg(text != NULL, "%s missing", f);
        free(text);
        free(p);
    }
    char *s1 = tu_path(r1, "summary.csv"), *s3 = tu_path(r3, "summary.csv");
    ck_assert(tu_same_file(s1, s3));
    /* replaying the exported episodes gives the same results */
    char *r4 = tu_path(work, "r4"), extra[4200];
    snprintf(extra, sizeof extra, "--episodes '%s/episodes.csv'", r1);
    run_bench(r4, extra, 0);
    char *d = tu_results_without_timing(r4);
    ck_assert_str_eq(a, d);
    /* without --way/--shots/--query the manifest's are used */
    char *r5 = tu_path(work, "r5"), *out5 = NULL;
    ck_assert_int_eq(tu_run(&out5,
                            "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' "
                            "--episodes '%s/episodes.csv' --methods 1nn,svm,protonet,logreg" IMG,
                            tu_bench(), root, work, teacher, r5, r1),
                     0);
    free(out5);
    char *e5 = tu_results_without_timing(r5);
    ck_assert_str_eq(a, e5);
    free(e5);
    free(r5);
    /* bench table --from rebuilds the derived files byte for byte */
    char *t1 = tu_path(r1, "table.md"), *t1c = tu_path(work, "table.md.copy");
    tu_run(NULL, "cp '%s' '%s' && rm '%s' '%s'", t1, t1c, t1, s1);
    char *out = NULL;
    ck_assert_int_eq(tu_run(&out, "'%s' table --from '%s'", tu_bench(), r1), 0);
    free(out);
    ck_assert(tu_same_file(t1, t1c));
    ck_assert_int_eq(tu_run(&out, "'%s' table --from '%s' --ref 1nn", tu_bench(), r1), 2);
    ck_assert_msg(strstr(out, "(--reference?)"), "%s", out);
    free(out);
    /* a --reference that is not in the run is refused, naming what is */
    ck_assert_int_eq(tu_run(&out, "'%s' table --from '%s' --reference nosuch", tu_bench(), r1), 2);
    ck_assert_msg(strstr(out, "no method 'nosuch' (it has 1nn, svm, protonet, logreg)"), "%s", out);
    free(out);
    ck_assert(tu_same_file(t1, t1c));
    /* generated data is not MiniImageNet: no paper columns */
    char *md = tu_read(t1, NULL);
    ck_assert_ptr_null(strstr(md, "| paper |"));
    free(md);
    ck_assert(tu_same_file(s1, s3));
    free(a), free(b), free(c), free(d);
    free(r1), free(r2), free(r3), free(r4), free(s1), free(s3), free(t1), free(t1c);
}
END_TEST

START_TEST(run_refuses_bad_inputs)
{
    char *r = tu_path(work, "rbad"), *out = NULL;
    run_bench(r, "--threads 1", 0);
    /* the same folder with other settings: refused, never mixed */
    int rc = tu_run(&out,
                    "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                    "--shots 1,3 --query 4 --episodes 12 --seed 5 --methods 1nn" IMG,
                    tu_bench(), root, work, teacher, r);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(out, "holds a different run"));
    free(out);
    /* a file where the folder should be */
    char *file = tu_path(work, "afile");
    tu_write_str(work, "afile", "x");
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/sub", file);
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                "--shots 1 --query 4 --episodes 2" IMG,
                tu_bench(), root, work, teacher, bad);
    ck_assert_int_ne(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "afile"));
    free(out);
    struct {
        const char *flags; /* extra flags */
        int rc;            /* expected exit status */
        const char *msg;   /* expected in the output */
    } cases[] = {
        {"--methods 1nn,bogus", 2, "bogus"},
        {"--shots 1,0", 2, "--shots"},
        {"--shots 1,x", 2, "--shots"},
        {"--shots -3", 2, "--shots"},
        {"--way 9", 2, "--way"},
        {"--shots 9 --query 4", 2, "--shots"},
        {"--arch res12", 1, "--arch"},
        {"--frobnicate", 2, "--frobnicate"},
        {"--meth 1nn", 2, "unknown flag '--meth': write it out (--methods?)"}, /* no prefixes */
        {"--de 1", 2, "(--debug-kill-after-tasks?)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *o2 = tu_path(work, "rcase");
        rc = tu_run(&out,
                    "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --query 4 "
                    "--episodes 2 --methods 1nn" IMG " --way 3 --shots 1 %s",
                    tu_bench(), root, work, teacher, o2, cases[i].flags);
        ck_assert_msg(rc == cases[i].rc, "%s: rc %d: %s", cases[i].flags, rc, out);
        ck_assert_msg(strstr(out, cases[i].msg) != NULL, "%s: %s", cases[i].flags, out);
        free(out);
        tu_rmrf(o2);
        free(o2);
    }
    /* bench version takes no argument; output that cannot be written is a failure */
    ck_assert_int_eq(tu_run(&out, "'%s' version extra", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "unexpected argument 'extra'"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' version > /dev/full", tu_bench()), 1);
    ck_assert_ptr_nonnull(strstr(out, "cannot write the standard output"));
    free(out);
    /* a replayed manifest fixes the seed, its split and a usable shape */
    char *man = tu_path(r, "episodes.csv"), *m_way1 = tu_path(work, "way1.csv"),
         *m_val = tu_path(work, "val.csv");
    tu_run(NULL, "'%s' episodes --data '%s' --way 1 --shots 1 --query 2 --episodes 2 --export '%s'",
           tu_bench(), root, m_way1);
    tu_run(NULL, "sed 's/^# split=test$/# split=val/' '%s' > '%s'", man, m_val);
    struct {
        const char *manifest, *extra, *msg;
        int rc;
    } replays[] = {
        {man, "--seed 7", "drop --seed", 2},
        {m_way1, "", "a run needs way >= 2", 2},
        {m_val, "", "of split 'val', but --split is 'test'", 2},
    };
    for (size_t i = 0; i < sizeof replays / sizeof replays[0]; i++) {
        char *o2 = tu_path(work, "rreplay");
        rc =
            tu_run(&out,
                   "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --methods 1nn" IMG
                   " --episodes '%s' %s",
                   tu_bench(), root, work, teacher, o2, replays[i].manifest, replays[i].extra);
        ck_assert_msg(rc == replays[i].rc && strstr(out, replays[i].msg), "%s %s: rc %d: %s",
                      replays[i].manifest, replays[i].extra, rc, out);
        free(out);
        tu_rmrf(o2);
        free(o2);
    }
    free(man), free(m_way1), free(m_val);
    /* 1nn's CL2N reads the train split's mean: a resume on data whose train split differs
     * (one class fewer) is another run, though the evaluated split is the same */
    char *r6 = tu_path(work, "rbase"), *root2 = tu_path(work, "data2");
    tu_run(NULL,
           "cp -r '%s' '%s' && grep -v n00000001 '%s/split/train.csv' > '%s/t' && "
           "mv '%s/t' '%s/split/train.csv'",
           root, root2, root, root2, root2, root2);
    run_bench(r6, "--threads 1 --debug-kill-after-tasks 12", -1);
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                "--shots 1,3 --query 4 --episodes 12 --methods 1nn,svm,protonet,logreg" IMG,
                tu_bench(), root2, work, teacher, r6);
    ck_assert_msg(rc == 1 && strstr(out, "holds a different run (its base_fingerprint="), "%s",
                  out);
    free(out);
    /* a run that only adds a line (a shard) names it */
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                "--shots 1,3 --query 4 --episodes 12 --methods 1nn,svm,protonet,logreg" IMG
                " --shard 0/2",
                tu_bench(), root, work, teacher, r6);
    ck_assert_msg(rc == 1 && strstr(out, "its nothing, this run's shard=0/2"), "%s", out);
    free(out);
    tu_rmrf(r6);
    tu_rmrf(root2);
    free(r6);
    free(root2);
    /* journal records with a valid checksum that cannot be this run's: refused, naming the
     * journal line (the run has 3-way, 4-query episodes: 12 queries) */
    static const char *const bad_recs[] = {"0,1,1nn,3,9,1.0,1.0", "0,1,1nn,3,12,-5,1.0",
                                           "0,1,1nn,3,12,1.0,1.0junk"};
    for (size_t i = 0; i < sizeof bad_recs / sizeof bad_recs[0]; i++) {
        char *rj = tu_path(work, "rjournal"), *jp = tu_path(rj, "journal.log");
        run_bench(rj, "--threads 1 --debug-kill-after-tasks 12", -1);
        fsb_journal j;
        ck_assert_int_eq(fsb_journal_open(&j, jp, NULL, NULL), 0);
        ck_assert_int_eq(fsb_journal_append(&j, bad_recs[i]), 0);
        fsb_journal_close(&j);
        rc = tu_run(&out,
                    "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                    "--shots 1,3 --query 4 --episodes 12 --methods 1nn,svm,protonet,logreg" IMG
                    " --threads 1",
                    tu_bench(), root, work, teacher, rj);
        ck_assert_msg(rc == 1, "%s: rc %d: %s", bad_recs[i], rc, out);
        ck_assert_msg(strstr(out, "journal.log: line") && strstr(out, bad_recs[i]), "%s: %s",
                      bad_recs[i], out);
        free(out);
        tu_rmrf(rj);
        free(rj);
        free(jp);
    }
    free(file);
    free(r);
}
END_TEST

START_TEST(tune_chooses_svm_C_on_val)
{
    char *out = NULL, *dir = tu_path(work, "tune");
    int rc = tu_run(&out,
                    "'%s' tune --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' "
                    "--methods svm,logreg --grid 'C=0.1|10|1e1,lr2=0.5' --way 3 --shots 1,3 "
                    "--query 3 --episodes 6" IMG,
                    tu_bench(), root, work, teacher, dir);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    char *chosen_path = tu_path(dir, "chosen.txt"), *chosen = tu_read(chosen_path, NULL);
    ck_assert_ptr_nonnull(chosen);
    ck_assert_ptr_nonnull(strstr(chosen, "\nsvm\tC="));
    ck_assert_ptr_nonnull(strstr(chosen, "\nlogreg\tC="));
    ck_assert_ptr_nonnull(strstr(chosen, "\t--C "));
    free(chosen);
    char *table_path = tu_path(dir, "val_table.md"), *table = tu_read(table_path, NULL);
    ck_assert_ptr_nonnull(strstr(table, "| svm | C=0.1 |"));
    ck_assert_ptr_nonnull(strstr(table, "| svm | C=10 |"));
    ck_assert_ptr_null(strstr(table, "C=1e1")); /* the same C as 10: one point */
    free(table);
    /* the runs really used those C values */
    char *id_path = tu_path(dir, "svm/C=10/run.id"), *id = tu_read(id_path, NULL);
    ck_assert_ptr_nonnull(id);
    ck_assert_ptr_nonnull(strstr(id, "methods=svm(norm=l2n,C=10)"));
    free(id);
    ck_assert_int_eq(tu_run(&out, "'%s' tune --data '%s' --teacher '%s' --methods svm --grid C=-1",
                            tu_bench(), root, teacher),
                     2);
    ck_assert_ptr_nonnull(strstr(out, "C=-1"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' tune --data '%s' --teacher '%s' --methods svm,knn",
                            tu_bench(), root, teacher),
                     2);
    ck_assert_ptr_nonnull(strstr(out, "knn"));
    free(out);
    /* every bad flag is refused before anything runs, naming what is wrong */
    static const struct {
        const char *args, *want;
    } bad[] = {
        {"--split ./test", "plain split name"}, /* a path to the test split */
        {"--split split/test", "plain split name"},
        {"--split ''", "give a split name"},
        {"--split TEST", "test split"},
        {"--methods svm --grid 'c=0.1|1'", "'c'"},            /* dropped for svm, still checked */
        {"--methods finetune --grid 'lambda=abc'", "lambda"}, /* refilled-only key */
        {"--methods svm --grid 'C=1,lr2=abc'", "lr2"},
        {"--methods svm,svm", "given twice"},
        {"--grid 'lr2=0.1,lr2=0.2'", "given twice"},
        {"--grid 'lr2= 0.1'", "lr2"},
        {"--methods refilled --grid 'stage1_steps=20,lr1=0.01,stage2_steps=100,lr2=0.003,"
         "batch=0,augment=1,bank=8,bank_max=0,crop_lo=0.5,jitter=0,clean_view=1,views=2,"
         "k1=views,adapt=head,prefix=1,miner=semihard,margin=0.2,tau1=4,w1=500,tau2=2'",
         "longer than"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *bad_out = tu_path(work, "tune_bad");
        ck_assert_int_eq(tu_run(&out, "'%s' tune --data '%s' --teacher '%s' --out '%s' %s",
                                tu_bench(), root, teacher, bad_out, bad[i].args),
                         2);
        ck_assert_msg(strstr(out, bad[i].want), "%s -> %s", bad[i].args, out);
        ck_assert_int_ne(access(bad_out, F_OK), 0); /* nothing was written */
        free(out);
        free(bad_out);
    }
    free(chosen_path);
    free(table_path);
    free(id_path);
    free(dir);
}
END_TEST

/* A comma in an image's file name is refused when the split is listed, with the full path,
 * however few episodes are drawn (it failed only when an episode drew the image, exit 2,
 * naming its basename, and passed otherwise). */
/* Augmentation as flags: recorded in the checkpoint, part of the run's identity, and they
 * change the training; contradictions refused. */
START_TEST(pretrain_augmentation_flags)
{
    char *a = tu_path(work, "aug/a.fsbt"), *b = tu_path(work, "aug/b.fsbt");
    char *out = NULL;
    const char *mild = "--epochs 1 --crop-scale 0.5,1 --jitter 0 --flip off";
    int rc = tu_run(&out, "'%s' pretrain %s %s --out '%s'", tu_bench(), common, mild, a);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'crop_scale=0.5,1 jitter=0 flip=0' '%s'", a), 0);
    rc = tu_run(&out, "'%s' pretrain %s --epochs 1 --out '%s'", tu_bench(), common, b);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    ck_assert_int_eq(tu_run(NULL, "grep -aq 'crop_scale=0.08,1 jitter=0.4 flip=1' '%s'", b), 0);
    ck_assert(!tu_same_file(a, b)); /* the flags change what is learnt */
    /* the default run's files are another run's for the mild flags */
    rc = tu_run(&out, "'%s' pretrain %s %s --out '%s'", tu_bench(), common, mild, b);
    ck_assert_msg(rc != 0 && strstr(out, "belongs to another pre-training run"), "%s", out);
    free(out);
    static const char *const bad[][2] = {
        {"--crop-scale 0.5", "--crop-scale"}, {"--crop-scale 0.9,0.5", "--crop-scale"},
        {"--crop-scale 0,1", "--crop-scale"}, {"--jitter 1.5", "--jitter"},
        {"--flip sometimes", "--flip"},       {"--augment off --jitter 0", "--augment on"},
    };
    for (int i = 0; i < 6; i++) {
        rc = tu_run(&out, "'%s' pretrain %s %s --out '%s/aug/c.fsbt'", tu_bench(), common,
                    bad[i][0], work);
        ck_assert_msg(rc == 2 && strstr(out, bad[i][1]), "%s: %s", bad[i][0], out);
        free(out);
    }
    free(a), free(b);
}
END_TEST

/* Issue 18, defects 1 and 6: the teacher records the input it was trained on (32-pixel
 * images, resize 32, crop 28 here) and bench uses it without any size flag, with the same
 * results as the explicit flags; a contradicting flag or a combination that cannot work is
 * refused before the folder is claimed, so the corrected command then runs there. */
START_TEST(run_takes_the_teachers_input)
{
    char *plain = tu_path(work, "noflags"), *explicit_ = tu_path(work, "explicit");
    char *out = NULL;
    int rc = tu_run(&out,
                    "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                    "--shots 1,3 --query 4 --episodes 6 --methods 1nn,protonet --threads 2",
                    tu_bench(), root, work, teacher, plain);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    run_bench(explicit_, "--threads 2 --episodes 6 --methods 1nn,protonet", 0);
    char *ia = tu_path(plain, "run.id"), *ib = tu_path(explicit_, "run.id");
    char *ta = tu_read(ia, NULL), *tb = tu_read(ib, NULL);
    ck_assert_ptr_nonnull(strstr(ta, "image_size=32\nresize=32\ncrop=28\n"));
    ck_assert_str_eq(ta, tb); /* the same run, so the same episodes and results */
    free(ta), free(tb), free(ia), free(ib);
    char *pa = tu_path(plain, "per_episode.csv"), *pb = tu_path(explicit_, "per_episode.csv");
    char *ca = strip_last_column(pa), *cb = strip_last_column(pb);
    ta = tu_drop_last_column(ca), tb = tu_drop_last_column(cb); /* times: fit and predict */
    ck_assert_str_eq(ta, tb);
    free(ta), free(tb), free(ca), free(cb), free(pa), free(pb);
    /* the table and the plot name the setting */
    char *md = tu_path(plain, "table.md"), *gp = tu_path(plain, "accuracy_vs_shots.gp");
    ta = tu_read(md, NULL), tb = tu_read(gp, NULL);
    ck_assert_ptr_nonnull(strstr(ta, "# split test (fingerprint "));
    ck_assert_ptr_nonnull(strstr(ta, ", 3-way, 4 queries/class, conv4 teacher: Few-shot"));
    ck_assert_ptr_nonnull(strstr(tb, "3-way, 4 queries/class, conv4 teacher\""));
    free(ta), free(tb), free(md), free(gp);
    /* refused before the folder is claimed: a flag against the teacher, a resize that would
     * blow the images up */
    char *fresh = tu_path(work, "fresh");
    static const char *const bad[][2] = {
        {"--crop 24", "--crop 24 conflicts with the teacher"},
        {"--image-size 16", "--image-size 16 conflicts with the teacher"},
    };
    for (int i = 0; i < 2; i++) {
        rc = tu_run(&out,
                    "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                    "--shots 1 --query 4 --episodes 2 --methods 1nn %s",
                    tu_bench(), root, work, teacher, fresh, bad[i][0]);
        ck_assert_msg(rc != 0 && strstr(out, bad[i][1]) && strstr(out, teacher), "%s: %s",
                      bad[i][0], out);
        free(out);
        ck_assert_int_eq(tu_run(NULL, "test ! -e '%s/run.id'", fresh), 0);
    }
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --way 3 "
                "--shots 1 --query 4 --episodes 2 --methods 1nn",
                tu_bench(), root, work, teacher, fresh);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    free(plain), free(explicit_), free(fresh);
}
END_TEST

START_TEST(run_refuses_a_comma_in_a_name_at_listing)
{
    char *d = tu_path(work, "comma"), *o = tu_path(work, "rcomma"), *out = NULL;
    int nc[3] = {0, 0, 5};
    fx_make_folders(d, nc, 6, 32);
    int rc = tu_run(
        NULL, "mv '%s/test/n00000203/n0000020300000004.jpg' '%s/test/n00000203/x,4.jpg'", d, d);
    ck_assert_int_eq(rc, 0);
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s/cache' --teacher '%s' --out '%s' --methods protonet "
                "--way 2 --shots 1 --query 1 --episodes 1" IMG,
                tu_bench(), d, work, teacher, o);
    char want[4200];
    snprintf(want, sizeof want, "%s/test/n00000203/x,4.jpg: the file name has a comma", d);
    ck_assert_msg(rc == 1 && strstr(out, want), "rc %d: %s", rc, out);
    free(out);
    tu_rmrf(d);
    tu_rmrf(o);
    free(d);
    free(o);
}
END_TEST

/* pretrain and run list every split they read before packing one: a dataset without val is
 * refused by pretrain before train is packed, and one without train by a cl2n run before
 * the test split is packed (both failed only after packing the first split). */
START_TEST(pretrain_and_run_list_every_split_first)
{
    char *d = tu_path(work, "partial"), *c = tu_path(work, "partial-cache"), *out = NULL;
    int no_val[3] = {4, 0, 0};
    fx_make_ravi(d, no_val, 6, 32);
    int rc = tu_run(&out, "'%s' pretrain --data '%s' --cache '%s' --epochs 1 --out '%s/p.fsbt'" IMG,
                    tu_bench(), d, c, work);
    ck_assert_msg(rc == 1 && strstr(out, "no val split") &&
                      strstr(out, "bench pretrain reads train and val"),
                  "rc %d: %s", rc, out);
    free(out);
    ck_assert_int_eq(tu_run(NULL, "ls '%s'/train-* 2>/dev/null", c), 2); /* nothing packed */
    tu_rmrf(d);
    int test_only[3] = {0, 0, 5};
    fx_make_ravi(d, test_only, 6, 32);
    rc = tu_run(&out,
                "'%s' --data '%s' --cache '%s' --teacher '%s' --out '%s/rpartial' --methods 1nn "
                "--way 2 --shots 1 --query 1 --episodes 1" IMG,
                tu_bench(), d, c, teacher, work);
    ck_assert_msg(rc == 1 && strstr(out, "--data: ") && strstr(out, "no train split") &&
                      strstr(out, "train for cl2n's base mean"),
                  "rc %d: %s", rc, out);
    free(out);
    ck_assert_int_eq(tu_run(NULL, "ls '%s'/test-* 2>/dev/null", c), 2);
    tu_rmrf(d);
    tu_rmrf(c);
    free(d);
    free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("pipeline");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup_data, teardown_data);
    tcase_add_test(tc, pretrain_resume_is_bit_identical);
    tcase_add_test(tc, pretrain_write_failure_keeps_previous_state);
    tcase_add_test(tc, pretrain_bad_inputs);
    tcase_add_test(tc, run_is_independent_of_threads_and_interruptions);
    tcase_add_test(tc, run_refuses_bad_inputs);
    tcase_add_test(tc, tune_chooses_svm_C_on_val);
    tcase_add_test(tc, pretrain_augmentation_flags);
    tcase_add_test(tc, run_takes_the_teachers_input);
    tcase_add_test(tc, run_refuses_a_comma_in_a_name_at_listing);
    tcase_add_test(tc, pretrain_and_run_list_every_split_first);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
