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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tu_e2e e2e;          /* dataset, outputs and the CE teacher (e2e.h) */
static char *maml2;         /* second-order MAML checkpoint, 10 test steps */
static char *maml0;         /* the same weights, 0 test steps (the initialisation's predictions) */
static char *maml1;         /* the same weights, first-order */
static char *maml_way5;     /* a 5-way head */
static char *maml_nohead;   /* maml.* meta but no head */
static char *mamlb;         /* other weights (another seed), second-order, 10 test steps */
static char run_flags[512]; /* the shape of every run here */

#define IMG TU_E2E_IMG
#define WAY 3

/* A ConvNet-4 (widths 8, 28x28 input) with an n_class head (0: none), random weights from
 * `seed`, saved with the run's input and the maml.* meta. */
static char *make_maml_seeded(const char *name, int n_class, const char *test_steps,
                              const char *order, uint64_t seed)
{
    fsb_model_opts o;
    fsb_model_opts_default(&o, FSB_ARCH_CONV4);
    for (int i = 0; i < 4; i++)
        o.widths[i] = 8;
    o.in_hw = 28;
    fsb_rng rng;
    fsb_rng_init(&rng, seed, 0);
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

/* make_maml_seeded with the seed of every checkpoint but mamlb. */
static char *make_maml(const char *name, int n_class, const char *test_steps, const char *order)
{
    return make_maml_seeded(name, n_class, test_steps, order, 7);
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
    mamlb = make_maml_seeded("mamlb.fsbt", WAY, "10", "2", 8);
    snprintf(run_flags, sizeof run_flags, "--way %d --shots 1,3 --query 4 --episodes 6" IMG, WAY);
}

static void teardown_data(void)
{
    free(maml2), free(maml0), free(maml1), free(maml_way5), free(maml_nohead), free(mamlb);
    tu_e2e_free(&e2e);
}

/* `bench --data D --cache C <run_flags> --out DIR <flags>`; its exit status, output in *log
 * (malloc'd; NULL: discarded). */
static int bench_run(char **log, const char *dir, const char *flags)
{
    return tu_run(log, "'%s' --data '%s' --cache '%s/cache' %s --out '%s' %s", tu_bench(), e2e.root,
                  e2e.work, run_flags, dir, flags);
}

/* `bench run --methods protonet,maml --model MODELS --threads T` into work/NAME (MODELS:
 * "maml=PATH" or "maml=PATH,maml@1=PATH2"...); the folder (malloc'd). */
static char *run_maml_models(const char *name, const char *models, int threads)
{
    char *dir = tu_path(e2e.work, name), flags[8400], *log = NULL;
    snprintf(flags, sizeof flags,
             "--teacher '%s' --methods protonet,maml --model '%s' --threads %d", e2e.teacher,
             models, threads);
    ck_assert_msg(bench_run(&log, dir, flags) == 0, "%s", log);
    ck_assert_msg(strstr(log, "run: maml sees its own model") && strstr(log, "run: maml adapts it"),
                  "%s", log);
    free(log);
    return dir;
}

/* run_maml_models with the one model `model` for every shot. */
static char *run_maml(const char *name, const char *model, int threads)
{
    char models[4200];
    snprintf(models, sizeof models, "maml=%s", model);
    return run_maml_models(name, models, threads);
}

/* The maml rows at `shot` (0: both) of a run's per_episode.csv without the timing columns
 * (malloc'd); checks that every (shot, episode) has one. */
static char *maml_rows_at(const char *dir, int shot)
{
    int n;
    char *out = tu_rows_at(dir, "maml", shot, &n);
    ck_assert_msg(n == (shot ? 6 : 12), "%s: %d maml rows at %d-shot", dir, n, shot);
    return out;
}

static char *maml_rows(const char *dir)
{
    return maml_rows_at(dir, 0);
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

/* --model maml=A --model maml@1=B: the 1-shot rows are those of a run with only B, the
 * 3-shot rows those of a run with only A, at 1 and 2 threads; maml@1=B,maml@3=A (no
 * every-shot model) gives the same rows; run.id, manifest.txt and the Models line name each
 * shot's checkpoint; another per-shot file is refused on resume. */
START_TEST(per_shot_maml_models_serve_their_shot)
{
    char models[8400];
    snprintf(models, sizeof models, "maml=%s,maml@1=%s", maml2, mamlb);
    char *x1 = run_maml_models("x1", models, 1), *x2 = run_maml_models("x2", models, 2);
    char *ya = run_maml("ya", maml2, 2), *yb = run_maml("yb", mamlb, 2);
    char *x_1 = maml_rows_at(x1, 1), *x_3 = maml_rows_at(x1, 3);
    char *ya_1 = maml_rows_at(ya, 1), *ya_3 = maml_rows_at(ya, 3), *yb_1 = maml_rows_at(yb, 1);
    ck_assert_str_eq(x_1, yb_1);
    ck_assert_str_eq(x_3, ya_3);
    ck_assert_str_ne(ya_1, yb_1); /* the two models predict differently */
    char *r1 = tu_results_without_timing(x1), *r2 = tu_results_without_timing(x2);
    ck_assert_str_eq(r1, r2);
    snprintf(models, sizeof models, "maml@1=%s,maml@3=%s", mamlb, maml2);
    char *z = run_maml_models("xz", models, 2), *rz = maml_rows(z), *rx = maml_rows(x1);
    ck_assert_str_eq(rz, rx);
    /* run.id: A's hash (ya's model=) for every shot, B's (yb's) at 1-shot */
    char *ma = tu_file_value(ya, "run.id", "methods"), *mb = tu_file_value(yb, "run.id", "methods");
    char *mx = tu_file_value(x1, "run.id", "methods"), *mz = tu_file_value(z, "run.id", "methods");
    const char *ha = strstr(ma, "model=") + 6, *hb = strstr(mb, "model=") + 6;
    char want[512];
    snprintf(want, sizeof want,
             "protonet(norm=un,C=1),maml(norm=un,C=1,order=2,model=%.16s,"
             "model@1=%.16s)",
             ha, hb);
    ck_assert_str_eq(mx, want);
    snprintf(want, sizeof want,
             "protonet(norm=un,C=1),maml(norm=un,C=1,order=2,model@1=%.16s,"
             "model@3=%.16s)",
             hb, ha);
    ck_assert_str_eq(mz, want);
    char *pa = tu_file_value(x1, "manifest.txt", "model.maml"),
         *pb = tu_file_value(x1, "manifest.txt", "model.maml@1");
    ck_assert_str_eq(pa, maml2);
    ck_assert_str_eq(pb, mamlb);
    char *md = tu_path(x1, "table.md"), *mdt = tu_read(md, NULL);
    snprintf(want, sizeof want,
             "maml uses its own models (second-order MAML): 1-shot checkpoint XXH3-64 %.16s; "
             "3-shot checkpoint XXH3-64 %.16s; the other rows use the teacher",
             hb, ha);
    ck_assert_msg(strstr(mdt, want), "%s", mdt);
    /* another 1-shot file: refused, the folder unchanged */
    char flags[8600], *log = NULL;
    snprintf(flags, sizeof flags,
             "--teacher '%s' --methods protonet,maml --model 'maml=%s,maml@1=%s'", e2e.teacher,
             maml2, maml0);
    ck_assert_int_ne(bench_run(&log, x1, flags), 0);
    ck_assert_msg(strstr(log, "holds a different run") && strstr(log, "model@1="), "%s", log);
    free(log);
    char *r1b = tu_results_without_timing(x1);
    ck_assert_str_eq(r1, r1b);
    free(x1), free(x2), free(ya), free(yb), free(x_1), free(x_3), free(ya_1), free(ya_3);
    free(yb_1), free(r1), free(r2), free(z), free(rz), free(rx), free(ma), free(mb), free(mx);
    free(mz), free(pa), free(pb), free(md), free(mdt), free(r1b);
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
        /* per-shot: a shot left without a model, mixed orders, a bad per-shot file */
        {NULL, "--model maml@1=", "maml needs a model at every shot, and 3-shot has none"},
        {NULL, "--model maml=", "second-order MAML, but --model maml@1="},
        {NULL, "--model maml@3=", "its head has 5 classes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir_name[32], flags[8600], *log = NULL;
        snprintf(dir_name, sizeof dir_name, "refused%zu", i);
        char *dir = tu_path(e2e.work, dir_name);
        int len =
            snprintf(flags, sizeof flags, "--teacher '%s' --methods protonet,maml", e2e.teacher);
        if (cases[i].model)
            snprintf(flags + len, sizeof flags - (size_t)len, " --model maml='%s'", cases[i].model);
        else if (i == 4)
            snprintf(flags + len, sizeof flags - (size_t)len, " --model maml@1='%s'", maml2);
        else if (i == 5)
            snprintf(flags + len, sizeof flags - (size_t)len, " --model maml='%s',maml@1='%s'",
                     maml2, maml1);
        else if (i == 6)
            snprintf(flags + len, sizeof flags - (size_t)len, " --model maml='%s',maml@3='%s'",
                     maml2, maml_way5);
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
    tcase_add_test(tc, per_shot_maml_models_serve_their_shot);
    tcase_add_test(tc, bad_maml_runs_are_refused_before_a_folder_is_claimed);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
