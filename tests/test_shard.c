/* test_shard.c - splitting a run: the task assignment (every task in exactly one shard,
 * every (method, shot) group balanced to +-1 on every shard, hand-checked owners), --shard
 * parsing, journal names and refused layouts (the shard line of run.id and journal records
 * are test_runfolder.c's),
 * and `bench merge` on shard folders written here: the merged files equal the runner's
 * writer on the same records; missing, duplicate, foreign, incomplete or mixed-up shards are
 * refused with a message naming the folder, and nothing is written; partial reports of
 * unfinished plain, --shard and mpirun folders.
 */
#include "fsb/fileio.h"
#include "fsb/journal.h"
#include "fsb/report.h"
#include "fsb/merge.h"
#include "fsb/runfolder.h"
#include "fsb/shard.h"
#include "fsb/status.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(owner_by_hand)
{
    /* owner(g, e) = (e + g) mod n */
    ck_assert_int_eq(fsb_shard_owner(0, 0, 2), 0);
    ck_assert_int_eq(fsb_shard_owner(1, 0, 2), 1);
    ck_assert_int_eq(fsb_shard_owner(3, 5, 4), 0);
    ck_assert_int_eq(fsb_shard_owner(2, 599, 3), 1);
    ck_assert_int_eq(fsb_shard_owner(7, 3, 1), 0);
    fsb_shard s = {1, 3, 0};
    ck_assert(fsb_shard_owns(&s, 0, 1));
    ck_assert(!fsb_shard_owns(&s, 0, 2));
    ck_assert(fsb_shard_owns(&s, 2, 2));
    /* group sizes by hand: 13 episodes over 3 shards, group 0: shard 0 gets 0,3,6,9,12 */
    fsb_shard s0 = {0, 3, 0}, s2 = {2, 3, 0};
    ck_assert_int_eq(fsb_shard_group_size(&s0, 0, 13), 5);
    ck_assert_int_eq(fsb_shard_group_size(&s2, 0, 13), 4);
    ck_assert_int_eq(fsb_shard_group_size(&s2, 1, 13), 4); /* e = 1, 4, 7, 10 */
    ck_assert_int_eq(fsb_shard_group_size(&s2, 2, 13), 5); /* e = 0, 3, 6, 9, 12 */
    fsb_shard all = {0, 0, 0};
    ck_assert(!fsb_shard_active(&all));
    ck_assert(fsb_shard_owns(&all, 5, 77));
    ck_assert_int_eq(fsb_shard_group_size(&all, 5, 77), 77);
}
END_TEST

START_TEST(assignment_is_balanced_and_exact)
{
    static const long episodes[] = {0, 1, 2, 5, 13, 600, 601};
    for (int n = 1; n <= 7; n++)
        for (size_t k = 0; k < sizeof episodes / sizeof episodes[0]; k++) {
            long ne = episodes[k];
            long total[8] = {0};
            for (int g = 0; g < 12; g++) {
                long count[8] = {0};
                for (long e = 0; e < ne; e++) {
                    int owners = 0, who = -1;
                    for (int i = 0; i < n; i++) {
                        fsb_shard s = {i, n, 0};
                        if (fsb_shard_owns(&s, g, e)) owners++, who = i;
                    }
                    ck_assert_int_eq(owners, 1);
                    ck_assert_int_eq(who, fsb_shard_owner(g, e, n)); /* deterministic */
                    count[who]++;
                }
                long lo = ne, hi = 0, sum = 0;
                for (int i = 0; i < n; i++) {
                    fsb_shard s = {i, n, 0};
                    ck_assert_int_eq(fsb_shard_group_size(&s, g, ne), count[i]);
                    lo = count[i] < lo ? count[i] : lo;
                    hi = count[i] > hi ? count[i] : hi;
                    sum += count[i];
                    total[i] += count[i];
                }
                ck_assert_msg(hi - lo <= 1, "n %d E %ld group %d: %ld..%ld", n, ne, g, lo, hi);
                ck_assert_int_eq(sum, ne);
            }
            /* the +1 remainders rotate over the shards with the group: totals within 1 when
             * the groups are a multiple of n (12 groups, n | 12) */
            if (12 % n == 0)
                for (int i = 1; i < n; i++)
                    ck_assert_int_eq(total[i], total[0]);
        }
}
END_TEST

START_TEST(parse_and_identity)
{
    fsb_shard s;
    ck_assert_int_eq(fsb_shard_parse("--shard", "3/4", &s), FSB_OK);
    ck_assert_int_eq(s.index, 3);
    ck_assert_int_eq(s.count, 4);
    ck_assert_int_eq(s.shared, 0);
    ck_assert_int_eq(fsb_shard_parse("--shard", "0/1", &s), FSB_OK);
    ck_assert(!fsb_shard_active(&s));
    static const char *bad[] = {"4/4", "-1/2", "1/0", "x", "1/", "/2", "1/2x", "", "1 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(fsb_shard_parse("--shard", bad[i], &s), FSB_EINVAL);
        ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--shard"));
    }
}
END_TEST

START_TEST(journal_layouts)
{
    char *dir = tu_tmpdir(), *path = NULL;
    fsb_shard plain = {0, 0, 0}, r1 = {1, 2, 1}, r0of3 = {0, 3, 1}, cut = {1, 2, 0};
    ck_assert_int_eq(fsb_shard_journal_path(dir, &plain, &path), FSB_OK);
    ck_assert_ptr_nonnull(strstr(path, "/journal.log"));
    free(path);
    ck_assert_int_eq(fsb_shard_journal_path(dir, &cut, &path), FSB_OK); /* --shard: own folder */
    ck_assert_ptr_nonnull(strstr(path, "/journal.log"));
    free(path);
    ck_assert_int_eq(fsb_shard_journal_path(dir, &r1, &path), FSB_OK);
    ck_assert_ptr_nonnull(strstr(path, "/journal.r1of2.log"));
    free(path);
    tu_write_str(dir, "journal.r0of2.log", "");
    ck_assert_int_eq(fsb_shard_journal_path(dir, &r1, &path), FSB_OK);
    free(path);
    /* started with 2 ranks: 3 ranks and a plain run are refused */
    ck_assert_int_eq(fsb_shard_journal_path(dir, &r0of3, &path), FSB_EMISMATCH);
    ck_assert_ptr_null(path);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "with 2 ranks"));
    ck_assert_int_eq(fsb_shard_journal_path(dir, &plain, &path), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "mpirun -np 2"));
    /* a plain run's journal under mpirun */
    char *dir2 = tu_tmpdir();
    tu_write_str(dir2, "journal.log", "");
    ck_assert_int_eq(fsb_shard_journal_path(dir2, &r1, &path), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "without mpirun"));
    tu_rmrf(dir);
    tu_rmrf(dir2);
    free(dir);
    free(dir2);
}
END_TEST

/* ---- merge on hand-written shard folders ------------------------------------------------ */

#define NE 5 /* episodes */
static const char *const methods[] = {"1nn", "svm"};
static const int shots[] = {1, 5};

static const char *run_id(int seed)
{
    static char id[512];
    snprintf(id, sizeof id,
             "format=fsbench-run/1\nsplit=test\ndata_fingerprint=00000000000000ab\n"
             "teacher_xxh3=0000000000000001\nteacher_arch=conv4\nepisodes_hash=abc\n"
             "episodes=%d\nway=5\nquery=15\nshots=1,5\nseed=%d\n"
             "methods=1nn(norm=cl2n,C=1),svm(norm=l2n,C=1)\nimage_size=84\nresize=92\n"
             "crop=84\nbase_fingerprint=00000000000000cd\n",
             NE, seed);
    return id;
}

/* A deterministic record of task (m, s, e). */
static fsb_episode_record record(int m, int s, int e)
{
    fsb_episode_record r;
    memset(&r, 0, sizeof r);
    r.episode = e;
    r.shot = shots[s];
    snprintf(r.method, sizeof r.method, "%s", methods[m]);
    r.n_query = 75;
    r.n_correct = (e * 7 + m * 11 + s * 13) % 76;
    r.accuracy = r.n_correct / 75.0;
    r.fit_ms = 1.5;
    r.predict_ms = 0.25;
    return r;
}

/* Journal at `path` the tasks of shard i/n except the skip-th one (skip < 0: none) plus, when
 * foreign, one task of another shard. */
static void journal_tasks(const char *path, int i, int n, int skip, int foreign)
{
    fsb_journal j;
    ck_assert_int_eq(fsb_journal_open(&j, path, NULL, NULL), FSB_OK);
    int k = 0, wrote_foreign = 0;
    fsb_shard me = {i, n, 0};
    for (int m = 0; m < 2; m++)
        for (int s = 0; s < 2; s++)
            for (int e = 0; e < NE; e++) {
                int mine = fsb_shard_owns(&me, m * 2 + s, e);
                if (!(mine ? k++ != skip : foreign && !wrote_foreign++)) continue;
                fsb_episode_record r = record(m, s, e);
                char payload[128];
                snprintf(payload, sizeof payload, "%d,%d,%s,%d,%d,%.3f,%.3f", e, r.shot, r.method,
                         r.n_correct, r.n_query, r.fit_ms, r.predict_ms);
                ck_assert_int_eq(fsb_journal_append(&j, payload), FSB_OK);
            }
    fsb_journal_close(&j);
}

/* Shard folder dir/name of shard i/n of the run with `seed`, journaling its tasks as
 * journal_tasks does. */
static char *write_shard(const char *dir, const char *name, int i, int n, int seed, int skip,
                         int foreign)
{
    char *d = tu_path(dir, name), text[600];
    snprintf(text, sizeof text, "%sshard=%d/%d\n", run_id(seed), i, n);
    tu_write_str(d, "run.id", text);
    tu_write_str(d, "episodes.csv", "episodes of the test\n");
    char *jp = tu_path(d, "journal.log");
    journal_tasks(jp, i, n, skip, foreign);
    free(jp);
    return d;
}

static int merge(const char *out, const char *a, const char *b, const char *c)
{
    const char *dirs[3] = {a, b, c};
    fsb_merge_opts o = {.out = out, .dirs = dirs, .n_dirs = c ? 3 : b ? 2 : 1};
    return fsb_merge(&o);
}

static int exists(const char *dir, const char *name)
{
    char *p = tu_path(dir, name), *t = tu_read(p, NULL);
    free(p);
    free(t);
    return t != NULL;
}

START_TEST(merge_writes_what_the_runner_writes)
{
    setenv("PATH", "/nonexistent", 1); /* no gnuplot: fast, and the plot is not under test */
    char *dir = tu_tmpdir();
    char *s0 = write_shard(dir, "s0", 0, 2, 0, -1, 0), *s1 = write_shard(dir, "s1", 1, 2, 0, -1, 0);
    char *out = tu_path(dir, "merged"), *direct = tu_path(dir, "direct");
    ck_assert_int_eq(merge(out, s1, s0, NULL), FSB_OK);
    /* the same records through the runner's writer */
    fsb_episode_record recs[2 * 2 * NE];
    int n = 0;
    for (int m = 1; m >= 0; m--) /* any order: the writer sorts */
        for (int s = 0; s < 2; s++)
            for (int e = NE - 1; e >= 0; e--)
                recs[n++] = record(m, s, e);
    tu_write_str(direct, "x", "");
    ck_assert_int_eq(fsb_runfolder_write_results(direct, run_id(0), recs, (size_t)n, "", 0, NULL),
                     FSB_OK);
    for (const char *f = "per_episode.csv\0summary.csv\0paired.csv\0table.md\0table.tex\0"; *f;
         f += strlen(f) + 1) {
        char *a = tu_path(out, f), *b = tu_path(direct, f);
        ck_assert_msg(tu_same_file(a, b), "%s", f);
        free(a);
        free(b);
    }
    char *p = tu_path(out, "run.id"), *id = tu_read(p, NULL);
    ck_assert_str_eq(id, run_id(0)); /* the shard line is gone */
    free(id);
    free(p);
    p = tu_path(out, "per_episode.csv");
    char *pe = tu_read(p, NULL);
    ck_assert_ptr_nonnull(strstr(pe, "episode,shot,method,n_correct,n_query,accuracy,fit_ms,"
                                     "predict_ms\n0,1,1nn,0,75,0.000000,1.500,0.250\n"));
    free(pe);
    free(p);
    ck_assert(exists(out, "episodes.csv") && exists(out, "manifest.txt"));
    /* the merged journal holds all 20 tasks */
    p = tu_path(out, "journal.log");
    char *jl = tu_read(p, NULL);
    int lines = 0;
    for (const char *c = jl; *c; c++)
        lines += *c == '\n';
    ck_assert_int_eq(lines, 20);
    free(jl);
    free(p);
    tu_rmrf(dir);
    free(dir), free(s0), free(s1), free(out), free(direct);
}
END_TEST

START_TEST(merge_refusals_write_nothing)
{
    setenv("PATH", "/nonexistent", 1);
    char *dir = tu_tmpdir();
    char *s0 = write_shard(dir, "s0", 0, 2, 0, -1, 0), *s1 = write_shard(dir, "s1", 1, 2, 0, -1, 0);
    char *seed = write_shard(dir, "seed", 1, 2, 9, -1, 0);
    char *part = write_shard(dir, "part", 1, 2, 0, 3, 0);
    char *mixed = write_shard(dir, "mixed", 1, 2, 0, -1, 1);
    char *three = write_shard(dir, "three", 1, 3, 0, -1, 0);
    char *plain = tu_path(dir, "plain");
    tu_write_str(plain, "run.id", run_id(0));
    /* shard 1/2 whose journal holds one of its tasks twice, with different results */
    char *twice = write_shard(dir, "twice", 1, 2, 0, -1, 0);
    {
        char *jp = tu_path(twice, "journal.log"), *text = tu_read(jp, NULL);
        int e, shot, nc, nq;
        char name[32];
        ck_assert_int_eq(sscanf(text, "%d,%d,%31[^,],%d,%d", &e, &shot, name, &nc, &nq), 5);
        char payload[128];
        snprintf(payload, sizeof payload, "%d,%d,%s,%d,%d,1.000,1.000", e, shot, name,
                 nc == nq ? nc - 1 : nc + 1, nq);
        fsb_journal j;
        ck_assert_int_eq(fsb_journal_open(&j, jp, NULL, NULL), FSB_OK);
        ck_assert_int_eq(fsb_journal_append(&j, payload), FSB_OK);
        fsb_journal_close(&j);
        free(text), free(jp);
    }
    char *out = tu_path(dir, "out");
    struct {
        const char *a, *b, *c; /* folders */
        int st;                /* expected status */
        const char *msg;       /* expected in the message */
    } cases[] = {
        {s0, NULL, NULL, FSB_ENOTFOUND, "shard 1/2 is missing"},
        {s0, s0, NULL, FSB_EMISMATCH, "s0 are both shard 0/2"},
        {s0, s1, s1, FSB_EMISMATCH, "both shard 1/2"},
        {s0, seed, NULL, FSB_EMISMATCH, "its seed=9, this run's seed=0"},
        {s0, part, NULL, FSB_EINVAL, "part is incomplete: 9 of its 10 tasks"},
        {s0, mixed, NULL, FSB_EMISMATCH, "is a task of shard 0/2, not of 1/2"},
        {s0, three, NULL, FSB_EMISMATCH, "different splits"},
        {s0, plain, NULL, FSB_EINVAL, "plain is not a shard"},
        {s0, twice, NULL, FSB_EFORMAT, "contradicts an earlier record of that task"},
        {s0, out, NULL, FSB_ENOTFOUND, "out is not a run folder"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = merge(out, cases[i].a, cases[i].b, cases[i].c);
        ck_assert_msg(st == cases[i].st && strstr(fsb_error_last(), cases[i].msg),
                      "case %zu: %d %s", i, st, fsb_error_last());
        ck_assert_msg(!fsb_is_dir(out), "case %zu wrote", i);
    }
    /* an out folder holding another run */
    tu_write_str(out, "run.id", run_id(4));
    ck_assert_int_eq(merge(out, s0, s1, NULL), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "holds a different run"));
    ck_assert(!exists(out, "per_episode.csv"));
    tu_rmrf(dir);
    free(dir), free(s0), free(s1), free(seed), free(part), free(mixed), free(three), free(plain);
    free(out), free(twice);
}
END_TEST

/* Lines of dir/partial/<name>, or -1 when it does not exist. */
static int partial_lines(const char *dir, const char *name)
{
    char *pd = tu_path(dir, "partial"), *p = tu_path(pd, name), *t = tu_read(p, NULL);
    int lines = t ? 0 : -1;
    for (const char *c = t; c && *c; c++)
        lines += *c == '\n';
    free(t), free(p), free(pd);
    return lines;
}

START_TEST(partial_reports)
{
    setenv("PATH", "/nonexistent", 1);
    char *dir = tu_tmpdir();
    fsb_partial_result r;
    /* a --shard folder missing one of its 10 tasks */
    char *part = write_shard(dir, "part", 1, 2, 0, 3, 0);
    ck_assert_int_eq(fsb_merge_partial(part, NULL, &r, NULL), FSB_OK);
    ck_assert_int_eq(r.done, 9);
    ck_assert_int_eq(r.total, 10);
    ck_assert_int_eq(partial_lines(part, "per_episode.csv"), 10);
    char *pd = tu_path(part, "partial"), *tp = tu_path(pd, "table.md"), *md = tu_read(tp, NULL);
    ck_assert_ptr_nonnull(strstr(md, "# PARTIAL: 9 of 10 tasks done; few-shot accuracy (%)\n"));
    free(md), free(tp), free(pd);
    /* an mpirun folder (one journal per rank, no shard line), one rank's journal short of
     * a task: the records are the merge's */
    char *mp = tu_path(dir, "mpi"), *j0 = tu_path(mp, "journal.r0of2.log");
    char *j1 = tu_path(mp, "journal.r1of2.log");
    tu_write_str(mp, "run.id", run_id(0));
    journal_tasks(j0, 0, 2, -1, 0);
    journal_tasks(j1, 1, 2, 0, 0);
    ck_assert_int_eq(fsb_merge_partial(mp, NULL, &r, NULL), FSB_OK);
    ck_assert_int_eq(r.done, 19);
    ck_assert_int_eq(r.total, 20);
    journal_tasks(j1, 1, 2, -1, 0); /* the missing task (and the others again) */
    ck_assert_int_eq(fsb_merge_partial(mp, NULL, &r, NULL), FSB_OK);
    ck_assert_int_eq(r.done, 20);
    char *s0 = write_shard(dir, "s0", 0, 2, 0, -1, 0), *s1 = write_shard(dir, "s1", 1, 2, 0, -1, 0);
    char *merged = tu_path(dir, "merged");
    ck_assert_int_eq(merge(merged, s0, s1, NULL), FSB_OK);
    char *a = tu_path(merged, "per_episode.csv"), *ppd = tu_path(mp, "partial");
    char *b = tu_path(ppd, "per_episode.csv"), *c = tu_path(ppd, "summary.csv");
    char *d = tu_path(merged, "summary.csv");
    ck_assert(tu_same_file(a, b));
    ck_assert(tu_same_file(c, d));
    /* the run folder itself is not touched */
    ck_assert(!exists(mp, "per_episode.csv") && !exists(mp, "summary.csv"));
    /* a record of another shard in a rank's journal */
    char *bad = tu_path(dir, "bad"), *jb = tu_path(bad, "journal.r1of2.log");
    tu_write_str(bad, "run.id", run_id(0));
    journal_tasks(jb, 1, 2, -1, 1);
    ck_assert_int_eq(fsb_merge_partial(bad, NULL, &r, NULL), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "journal.r1of2.log: line"));
    /* nothing journaled yet; not a run folder */
    char *empty = tu_path(dir, "empty");
    tu_write_str(empty, "run.id", run_id(0));
    ck_assert_int_eq(fsb_merge_partial(empty, NULL, &r, NULL), FSB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "no journal yet"));
    tu_write_str(empty, "journal.log", "");
    ck_assert_int_eq(fsb_merge_partial(empty, NULL, &r, NULL), FSB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "no episode is done yet"));
    ck_assert_int_eq(partial_lines(empty, "per_episode.csv"), -1);
    ck_assert_int_eq(fsb_merge_partial(dir, NULL, &r, NULL), FSB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "is not a run folder"));
    tu_rmrf(dir);
    free(dir), free(part), free(mp), free(j0), free(j1), free(s0), free(s1), free(merged);
    free(a), free(b), free(c), free(d), free(ppd), free(bad), free(jb), free(empty);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shard");
    TCase *tc = tcase_create("shard");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, owner_by_hand);
    tcase_add_test(tc, assignment_is_balanced_and_exact);
    tcase_add_test(tc, parse_and_identity);
    tcase_add_test(tc, journal_layouts);
    tcase_add_test(tc, merge_writes_what_the_runner_writes);
    tcase_add_test(tc, merge_refusals_write_nothing);
    tcase_add_test(tc, partial_reports);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
