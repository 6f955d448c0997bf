/* test_run_maml.c - the `maml` method of `bench run` end to end on a generated Ravi dataset
 * (e2e.h): tiny MAML checkpoints (ConvNet-4 of width 8 with random weights, a 3-way head and
 * the maml.* meta of MAML's training loop) adapted per episode. The run completes with a
 * record per episode and the same per_episode.csv at 1 and 2 threads; 10 adaptation steps
 * give other predictions than 0 steps; run.id records the model's hash and the MAML order,
 * manifest.txt its path, table.md names the row and the order; and a run without --model,
 * with a head of another way, with a head-less MAML file or with a non-MAML checkpoint is
 * refused before a folder is claimed.
 */
#include "e2e.h"
#include "testutil.h"
#include "fsb/model.h"
#include "fsb/status.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tu_e2e e2e;          /* dataset, outputs and the CE teacher (e2e.h) */
static char *maml2;         /* second-order MAML checkpoint, 10 test steps */
static char *maml0;         /* the same weights, 0 test steps (the initialisation's predictions) */
static char *maml1;         /* the same weights, first-order */
static char *maml_way5;     /* a 5-way head */
static char *maml_nohead;   /* maml.* meta but no head */
static char run_flags[512]; /* the shape of every run here */

#define IMG TU_E2E_IMG
#define WAY 3

/* A ConvNet-4 (widths 8, 28x28 input) with an n_class head (0: none), random weights from a
 * fixed seed, saved with the run's input and the maml.* meta. */
static char *make_maml(const char *name, int n_class, const char *test_steps, const char *order)
{
    fsb_model_opts o;
    fsb_model_opts_default(&o, FSB_ARCH_CONV4);
    for (int i = 0; i < 4; i++)
        o.widths[i] = 8;
    o.in_hw = 28;
    fsb_rng rng;
    fsb_rng_init(&rng, 7, 0);
    fsb_model *m = NULL;
    ck_assert_int_eq(fsb_model_create(&m, &o, n_class, 4, NULL, &rng), FSB_OK);
    const char *keys[] = {"image_size",       "resize",          "crop",           "maml.inner_lr",
                          "maml.inner_steps", "maml.test_steps", "maml.order",     "maml.train_way",
                          "maml.train_shot",  "maml.meta_batch", "maml.iterations"};
    char way[16];
    snprintf(way, sizeof way, "%d", n_class > 0 ? n_class : WAY);
    const char *vals[] = {"32", "32", "28", "0.1", "5", test_steps, order, way, "1", "4", "0"};
    char *path = tu_path(e2e.work, name);
    ck_assert_int_eq(fsb_model_save(m, path, 11, keys, vals), FSB_OK);
    fsb_model_destroy(m);
    return path;
}

static void setup_data(void)
{
    tu_e2e_make(&e2e, "--epochs 1 --batch 10 --val-episodes 4 --val-way 3 --val-query 3 "
                      "--threads 2");
    maml2 = make_maml("maml2.fsbt", WAY, "10", "2");
    maml0 = make_maml("maml0.fsbt", WAY, "0", "2");
    maml1 = make_maml("maml1.fsbt", WAY, "10", "1");
    maml_way5 = make_maml("maml-way5.fsbt", 5, "10", "2");
    maml_nohead = make_maml("maml-nohead.fsbt", 0, "10", "2");
    snprintf(run_flags, sizeof run_flags, "--way %d --shots 1,3 --query 4 --episodes 6" IMG, WAY);
}

static void teardown_data(void)
{
    free(maml2), free(maml0), free(maml1), free(maml_way5), free(maml_nohead);
    tu_e2e_free(&e2e);
}

/* `bench --data D --cache C <run_flags> --out DIR <flags>`; its exit status, output in *log
 * (malloc'd; NULL: discarded). */
static int bench_run(char **log, const char *dir, const char *flags)
{
    return tu_run(log, "'%s' --data '%s' --cache '%s/cache' %s --out '%s' %s", tu_bench(), e2e.root,
                  e2e.work, run_flags, dir, flags);
}

/* `bench run --methods protonet,maml --model maml=PATH --threads T` into work/NAME; the
 * folder (malloc'd). */
static char *run_maml(const char *name, const char *model, int threads)
{
    char *dir = tu_path(e2e.work, name), flags[8400], *log = NULL;
    snprintf(flags, sizeof flags,
             "--teacher '%s' --methods protonet,maml --model maml='%s' --threads %d", e2e.teacher,
             model, threads);
    ck_assert_msg(bench_run(&log, dir, flags) == 0, "%s", log);
    ck_assert_msg(strstr(log, "run: maml sees its own model") && strstr(log, "run: maml adapts it"),
                  "%s", log);
    free(log);
    return dir;
}

/* The maml rows of a run's per_episode.csv without the timing columns (malloc'd); checks
 * that every (shot, episode) has one. */
static char *maml_rows(const char *dir)
{
    char *all = tu_results_without_timing(dir), *out = malloc(strlen(all) + 1), *o = out;
    int n = 0;
    for (const char *line = all; *line;) {
        size_t len = strcspn(line, "\n");
        char buf[256];
        snprintf(buf, sizeof buf, "%.*s", (int)len, line);
        if (strstr(buf, ",maml,")) {
            memcpy(o, line, len + 1);
            o += len + 1;
            n++;
        }
        line += len + (line[len] == '\n');
    }
    *o = '\0';
    free(all);
    ck_assert_msg(n == 12, "%s: %d maml rows", dir, n); /* 2 shots x 6 episodes */
    return out;
}

START_TEST(maml_runs_adapts_and_is_thread_independent)
{
    char *a1 = run_maml("a1", maml2, 1), *a2 = run_maml("a2", maml2, 2);
    char *r1 = maml_rows(a1), *r2 = maml_rows(a2);
    ck_assert_str_eq(r1, r2);
    char *p1 = tu_results_without_timing(a1), *p2 = tu_results_without_timing(a2);
    ck_assert_str_eq(p1, p2);
    /* 0 adaptation steps: the initialisation's predictions, which 10 steps change */
    char *z = run_maml("z", maml0, 2), *rz = maml_rows(z);
    ck_assert_str_ne(r1, rz);
    /* run.id: the model's hash and second order; the teacher's protonet keeps its entry; no
     * student= line (maml trains no student) */
    char *methods = tu_file_value(a1, "run.id", "methods"), want[256], *idt;
    ck_assert_msg(!strncmp(methods, "protonet(norm=un,C=1),maml(norm=un,C=1,order=2,model=", 52),
                  "%s", methods);
    char *path = tu_path(a1, "run.id");
    idt = tu_read(path, NULL);
    ck_assert_ptr_null(strstr(idt, "\nstudent="));
    /* manifest.txt names the file, table.md the row and its order */
    char *model = tu_file_value(a1, "manifest.txt", "model.maml");
    ck_assert_str_eq(model, maml2);
    char *md = tu_path(a1, "table.md"), *mdt = tu_read(md, NULL);
    snprintf(want, sizeof want, "maml uses its own model (second-order MAML, checkpoint XXH3-64 ");
    ck_assert_msg(strstr(mdt, want), "%s", mdt);
    /* fit_ms is measured (the last two columns are fit_ms, predict_ms) */
    char *csv = tu_path(a1, "per_episode.csv"), *ct = tu_read(csv, NULL);
    const char *row = strstr(ct, ",maml,");
    ck_assert_ptr_nonnull(row);
    const char *eol = strchr(row, '\n'), *c = eol;
    while (*--c != ',') {
    }
    while (*--c != ',') {
    }
    ck_assert_msg(strtod(c + 1, NULL) > 0, "%.*s", (int)(eol - row), row);
    free(a1), free(a2), free(r1), free(r2), free(p1), free(p2), free(z), free(rz), free(methods);
    free(path), free(idt), free(model), free(md), free(mdt), free(csv), free(ct);
}
END_TEST

START_TEST(first_order_is_another_run_and_says_so)
{
    char *f = run_maml("fo", maml1, 2), *s = run_maml("so", maml2, 2);
    char *mf = tu_file_value(f, "run.id", "methods");
    ck_assert_msg(strstr(mf, "maml(norm=un,C=1,order=1,model="), "%s", mf);
    char *md = tu_path(f, "table.md"), *mdt = tu_read(md, NULL);
    ck_assert_msg(strstr(mdt, "maml uses its own model (first-order MAML, checkpoint"), "%s", mdt);
    char *man = tu_path(f, "manifest.txt"), *mt = tu_read(man, NULL);
    ck_assert_msg(strstr(mt, "order=1"), "%s", mt);
    /* the first-order checkpoint is another file: its folder refuses the second-order one */
    char flags[8400], *log = NULL;
    snprintf(flags, sizeof flags, "--teacher '%s' --methods protonet,maml --model maml='%s'",
             e2e.teacher, maml2);
    ck_assert_int_ne(bench_run(&log, f, flags), 0);
    ck_assert_msg(strstr(log, "holds a different run"), "%s", log);
    free(log);
    /* same weights and test steps: the same predictions, whatever the training order */
    char *rf = maml_rows(f), *rs = maml_rows(s);
    ck_assert_str_eq(rf, rs);
    free(f), free(s), free(mf), free(md), free(mdt), free(man), free(mt), free(rf), free(rs);
}
END_TEST

START_TEST(bad_maml_runs_are_refused_before_a_folder_is_claimed)
{
    struct {
        const char *model;       /* --model maml= value, NULL: no --model */
        const char *msg1, *msg2; /* expected in the output */
    } cases[] = {
        {NULL, "--model maml=PATH", "--methods maml needs its own model"},
        {maml_way5, "its head has 5 classes", "is 3-way (--way)"},
        {maml_nohead, "maml-nohead.fsbt", "no head"},
        {e2e.teacher, "is not a MAML checkpoint", "teacher.fsbt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir_name[32], flags[8600], *log = NULL;
        snprintf(dir_name, sizeof dir_name, "refused%zu", i);
        char *dir = tu_path(e2e.work, dir_name);
        int len =
            snprintf(flags, sizeof flags, "--teacher '%s' --methods protonet,maml", e2e.teacher);
        if (cases[i].model)
            snprintf(flags + len, sizeof flags - (size_t)len, " --model maml='%s'", cases[i].model);
        int rc = bench_run(&log, dir, flags);
        ck_assert_msg(rc != 0, "case %zu accepted: %s", i, log);
        ck_assert_msg(strstr(log, cases[i].msg1) && strstr(log, cases[i].msg2),
                      "case %zu: no '%s' / '%s' in: %s", i, cases[i].msg1, cases[i].msg2, log);
        ck_assert_msg(strstr(log, "--model"), "case %zu: %s", i, log);
        ck_assert_int_eq(tu_run(NULL, "test ! -e '%s'", dir), 0); /* nothing claimed */
        free(log), free(dir);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("run_maml");
    TCase *tc = tcase_create("run_maml");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup_data, teardown_data);
    tcase_add_test(tc, maml_runs_adapts_and_is_thread_independent);
    tcase_add_test(tc, first_order_is_another_run_and_says_so);
    tcase_add_test(tc, bad_maml_runs_are_refused_before_a_folder_is_claimed);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
