/* test_run_model.c - `bench run --model METHOD=PATH` end to end on a generated Ravi dataset:
 * a cross-entropy teacher and a FEAT checkpoint meta-trained from it (tiny, 28x28). The feat
 * row of a run whose teacher is the CE backbone and whose feat brings the FEAT checkpoint
 * equals, episode by episode, a run with the FEAT checkpoint as the teacher; its protonet
 * row equals a run without --model; run.id records the model's hash, manifest.txt its path,
 * table.md names the row; kill + resume gives the same results; another model file is
 * another run; and every bad --model is refused before a folder is claimed.
 */
#include "e2e.h"
#include "fixtures.h"
#include "testutil.h"
#include "fsb/runfolder.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tu_e2e e2e;          /* dataset, outputs and the CE teacher (e2e.h) */
static char *feat;          /* a FEAT checkpoint (backbone + slf_attn.*) from the teacher */
static char *feat2;         /* another one (another episode seed): other weights */
static char *feat_renamed;  /* the same weights, one meta entry more: another file hash */
static char *feat_crop24;   /* a FEAT checkpoint trained on a 24-pixel crop */
static char run_flags[512]; /* the shape of every run here */

#define IMG TU_E2E_IMG

/* `bench pretrain --objective feat`, tiny: 3-way 2-shot 3-query, 4 episodes, 1 epoch. */
static void pretrain_feat(const char *out, const char *extra)
{
    char *log = NULL;
    int rc = tu_run(&log,
                    "'%s' pretrain --data '%s' --cache '%s/cache' --objective feat --epochs 1 "
                    "--episodes-per-epoch 4 --train-way 3 --train-shot 2 --train-query 3 "
                    "--lr 0.001 --optimizer adam --weight-decay 0 --augment off "
                    "--temperature 64 --temperature2 16 --val-episodes 4 --val-way 3 "
                    "--val-query 3 --threads 2 %s --out '%s'",
                    tu_bench(), e2e.root, e2e.work, extra, out);
    if (rc != 0) fprintf(stderr, "%s\n", log);
    ck_assert_int_eq(rc, 0);
    free(log);
}

static void setup_data(void)
{
    tu_e2e_make(&e2e, "--epochs 2 --batch 10 --val-episodes 4 --val-way 3 --val-query 3 "
                      "--threads 2");
    feat = tu_path(e2e.work, "feat.fsbt");
    char extra[4200];
    snprintf(extra, sizeof extra, "--init '%s'" IMG, e2e.teacher);
    pretrain_feat(feat, extra);
    feat2 = tu_path(e2e.work, "feat2.fsbt");
    snprintf(extra, sizeof extra, "--init '%s' --seed 1" IMG, e2e.teacher);
    pretrain_feat(feat2, extra);
    feat_crop24 = tu_path(e2e.work, "feat24.fsbt");
    pretrain_feat(feat_crop24, "--image-size 32 --resize 32 --crop 24");
    /* the same checkpoint with one meta entry more: same features, another file */
    feat_renamed = tu_path(e2e.work, "feat-renamed.fsbt");
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_int_eq(fsb_tensorfile_load(&tf, feat), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "note", "renamed"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_save(&tf, feat_renamed), FSB_OK);
    fsb_tensorfile_free(&tf);
    snprintf(run_flags, sizeof run_flags,
             "--way 3 --shots 1,3 --query 4 --episodes 6 --threads 2" IMG);
}

static void teardown_data(void)
{
    free(feat), free(feat2), free(feat_renamed), free(feat_crop24);
    tu_e2e_free(&e2e);
}

/* `bench --data D --cache C <run_flags> --out DIR <flags>`; its exit status, output in *log
 * (malloc'd; NULL: discarded). */
static int bench_run(char **log, const char *dir, const char *flags)
{
    return tu_run(log, "'%s' --data '%s' --cache '%s/cache' %s --out '%s' %s", tu_bench(), e2e.root,
                  e2e.work, run_flags, dir, flags);
}

/* The rows of `method` at `shot` (0: both) in a run's per_episode.csv without the timing
 * columns (malloc'd); 6 episodes each shot. */
static char *rows_at(const char *dir, const char *method, int shot)
{
    int n;
    char *out = tu_rows_at(dir, method, shot, &n);
    ck_assert_msg(n == (shot ? 6 : 12), "%s: %d rows of %s at %d-shot", dir, n, method, shot);
    return out;
}

static char *rows_of(const char *dir, const char *method)
{
    return rows_at(dir, method, 0);
}

/* The value of `key` in dir/run.id (malloc'd). */
static char *id_value(const char *dir, const char *key)
{
    return tu_file_value(dir, "run.id", key);
}

START_TEST(feat_with_its_own_model)
{
    char *a = tu_path(e2e.work, "a"), *b = tu_path(e2e.work, "b"), *c = tu_path(e2e.work, "c");
    char flags[8400], *log = NULL;
    snprintf(flags, sizeof flags, "--teacher '%s' --methods protonet,feat --model feat='%s'",
             e2e.teacher, feat);
    ck_assert_msg(bench_run(&log, a, flags) == 0, "%s", log);
    ck_assert_msg(strstr(log, "run: feat sees its own model"), "%s", log);
    free(log);
    snprintf(flags, sizeof flags, "--teacher '%s' --methods feat", feat);
    ck_assert_msg(bench_run(&log, b, flags) == 0, "%s", log);
    free(log);
    snprintf(flags, sizeof flags, "--teacher '%s' --methods protonet", e2e.teacher);
    ck_assert_msg(bench_run(&log, c, flags) == 0, "%s", log);
    free(log);
    /* the same episodes; feat as with FEAT's checkpoint for teacher, protonet as without
     * --model: episode by episode, n_correct included */
    char *ha = id_value(a, "episodes_hash"), *hb = id_value(b, "episodes_hash");
    ck_assert_str_eq(ha, hb);
    char *fa = rows_of(a, "feat"), *fb = rows_of(b, "feat");
    ck_assert_str_eq(fa, fb);
    char *pa = rows_of(a, "protonet"), *pc = rows_of(c, "protonet");
    ck_assert_str_eq(pa, pc);
    ck_assert_str_ne(fa, pa); /* not trivially equal: FEAT's row differs from protonet's */
    /* run.id: feat records the model's hash (the FEAT file's, b's teacher_xxh3), protonet
     * keeps the entry of runs without a model, the teacher is a's own */
    char *ma = id_value(a, "methods"), *tb = id_value(b, "teacher_xxh3");
    char *ta = id_value(a, "teacher_xxh3"), *tc = id_value(c, "teacher_xxh3"), want[256];
    snprintf(want, sizeof want, "protonet(norm=un,C=1),feat(norm=un,C=1,model=%s)", tb);
    ck_assert_str_eq(ma, want);
    ck_assert_str_eq(ta, tc);
    char *mc = id_value(c, "methods");
    ck_assert_str_eq(mc, "protonet(norm=un,C=1)");
    /* manifest.txt names the file; table.md names the row; a run without --model has no
     * such line */
    char *man = tu_path(a, "manifest.txt"), *mt = tu_read(man, NULL), line[4200];
    snprintf(line, sizeof line, "\nteacher=%s\nmodel.feat=%s\nthreads=", e2e.teacher, feat);
    ck_assert_msg(strstr(mt, line), "%s", mt);
    char *md = tu_path(a, "table.md"), *mdt = tu_read(md, NULL);
    snprintf(line, sizeof line,
             "\nModels: feat uses its own model (checkpoint XXH3-64 %s); the other rows use "
             "the teacher (XXH3-64 %s).\n",
             tb, ta);
    ck_assert_msg(strstr(mdt, line), "%s", mdt);
    char *mdc = tu_path(c, "table.md"), *mdct = tu_read(mdc, NULL);
    ck_assert_ptr_null(strstr(mdct, "Models:"));
    /* bench table --from rebuilds the same table (the line comes from run.id) */
    char *copy = tu_path(e2e.work, "table.md.a");
    tu_run(NULL, "cp '%s' '%s' && rm '%s'", md, copy, md);
    ck_assert_int_eq(tu_run(NULL, "'%s' table --from '%s' --no-plot", tu_bench(), a), 0);
    ck_assert(tu_same_file(md, copy));
    free(fa), free(fb), free(pa), free(pc), free(ha), free(hb), free(ma), free(mc);
    free(ta), free(tb), free(tc), free(man), free(mt), free(md), free(mdt), free(mdc);
    free(mdct), free(copy), free(a), free(b), free(c);
}
END_TEST

/* CL2N: a method with its own model subtracts the mean train-split feature of that model,
 * the others the teacher's */
START_TEST(cl2n_uses_its_own_models_base_mean)
{
    char *a = tu_path(e2e.work, "na"), *b = tu_path(e2e.work, "nb"), *c = tu_path(e2e.work, "nc");
    char flags[8400], *log = NULL;
    snprintf(flags, sizeof flags, "--teacher '%s' --methods 1nn,svm --norm cl2n --model 1nn='%s'",
             e2e.teacher, feat);
    ck_assert_msg(bench_run(&log, a, flags) == 0, "%s", log);
    free(log);
    snprintf(flags, sizeof flags, "--teacher '%s' --methods 1nn --norm cl2n", feat);
    ck_assert_msg(bench_run(&log, b, flags) == 0, "%s", log);
    free(log);
    snprintf(flags, sizeof flags, "--teacher '%s' --methods svm --norm cl2n", e2e.teacher);
    ck_assert_msg(bench_run(&log, c, flags) == 0, "%s", log);
    free(log);
    char *na = rows_of(a, "1nn"), *nb = rows_of(b, "1nn");
    ck_assert_str_eq(na, nb);
    char *sa = rows_of(a, "svm"), *sc = rows_of(c, "svm");
    ck_assert_str_eq(sa, sc);
    char *bfa = id_value(a, "base_fingerprint"), *bfb = id_value(b, "base_fingerprint");
    ck_assert_str_eq(bfa, bfb);
    free(na), free(nb), free(sa), free(sc), free(bfa), free(bfb), free(a), free(b), free(c);
}
END_TEST

START_TEST(own_model_run_resumes_and_refuses_another_file)
{
    char *a = tu_path(e2e.work, "ra"), *k = tu_path(e2e.work, "rk");
    char flags[8400], *log = NULL;
    snprintf(flags, sizeof flags, "--teacher '%s' --methods protonet,feat --model feat='%s'",
             e2e.teacher, feat);
    ck_assert_msg(bench_run(&log, a, flags) == 0, "%s", log);
    free(log);
    /* 2 methods x 2 shots x 6 episodes: killed after 2 of the 4 groups, then resumed */
    char kill_flags[8500];
    snprintf(kill_flags, sizeof kill_flags, "%s --debug-kill-after-tasks 12", flags);
    ck_assert_int_ne(bench_run(NULL, k, kill_flags), 0);
    char *journal = tu_path(k, "journal.log"), *per = tu_path(k, "per_episode.csv");
    ck_assert_int_eq(tu_run(NULL, "test -s '%s' && test ! -e '%s'", journal, per), 0);
    ck_assert_msg(bench_run(&log, k, flags) == 0, "%s", log);
    free(log);
    char *ra = tu_results_without_timing(a), *rk = tu_results_without_timing(k);
    ck_assert_str_eq(ra, rk);
    /* a finished run reruns as a no-op */
    ck_assert_msg(bench_run(&log, a, flags) == 0, "%s", log);
    free(log);
    /* another model file (same weights, one meta entry more) is another run: refused,
     * naming the methods= line */
    snprintf(flags, sizeof flags, "--teacher '%s' --methods protonet,feat --model feat='%s'",
             e2e.teacher, feat_renamed);
    ck_assert_int_ne(bench_run(&log, a, flags), 0);
    ck_assert_msg(strstr(log, "holds a different run") && strstr(log, "its methods=") &&
                      strstr(log, "this run's methods="),
                  "%s", log);
    free(log);
    /* and without --model, too */
    snprintf(flags, sizeof flags, "--teacher '%s' --methods protonet,feat", e2e.teacher);
    ck_assert_int_ne(bench_run(&log, a, flags), 0);
    free(log);
    char *ra2 = tu_results_without_timing(a);
    ck_assert_str_eq(ra, ra2);
    free(ra), free(rk), free(ra2), free(journal), free(per), free(a), free(k);
}
END_TEST

/* The XXH3-64 of each method's every-shot model in dir/run.id, in run order, as text. */
static void model_hashes(const char *dir, char hex[][17], int n)
{
    fsb_run_ident id;
    ck_assert_int_eq(fsb_run_ident_read(dir, &id, NULL), FSB_OK);
    ck_assert_int_eq(id.n_methods, n);
    for (int i = 0; i < n; i++)
        snprintf(hex[i], 17, "%016" PRIx64, id.methods[i].model_xxh3);
}

/* --model M@K=PATH: each (method, shot) uses its model. A: feat=F, feat@1=F2, protonet@1=F
 * and 1nn@1=F (CL2N: F's base mean at 1-shot, the teacher's at 3-shot); B: every-shot
 * feat=F2, protonet=F, 1nn=F; C: feat=F, protonet and 1nn with the teacher. A's 1-shot rows
 * are B's, its 3-shot rows C's, episode by episode, at 1 and 2 threads; run.id, manifest.txt
 * and the Models line record each shot's checkpoint; a killed A resumes to the same results
 * and another per-shot file is refused on resume. */
START_TEST(per_shot_models_serve_their_shot)
{
    char *a = tu_path(e2e.work, "pa"), *a1 = tu_path(e2e.work, "pa1"), *b = tu_path(e2e.work, "pb");
    char *c = tu_path(e2e.work, "pc"), *k = tu_path(e2e.work, "pk");
    char fa[8400], flags[8600], *log = NULL;
    snprintf(fa, sizeof fa,
             "--teacher '%s' --methods 1nn,protonet,feat --model feat='%s' --model feat@1='%s' "
             "--model protonet@1='%s',1nn@1='%s'",
             e2e.teacher, feat, feat2, feat, feat);
    ck_assert_msg(bench_run(&log, a, fa) == 0, "%s", log);
    ck_assert_msg(strstr(log, "run: feat sees its own model") && strstr(log, " at shots 1\n") &&
                      strstr(log, " at shots 3\n"),
                  "%s", log);
    free(log);
    snprintf(flags, sizeof flags, "%s --threads 1", fa);
    ck_assert_msg(bench_run(&log, a1, flags) == 0, "%s", log);
    free(log);
    snprintf(flags, sizeof flags,
             "--teacher '%s' --methods 1nn,protonet,feat --model feat='%s',protonet='%s',1nn='%s'",
             e2e.teacher, feat2, feat, feat);
    ck_assert_msg(bench_run(&log, b, flags) == 0, "%s", log);
    free(log);
    snprintf(flags, sizeof flags, "--teacher '%s' --methods 1nn,protonet,feat --model feat='%s'",
             e2e.teacher, feat);
    ck_assert_msg(bench_run(&log, c, flags) == 0, "%s", log);
    free(log);
    static const char *const methods[] = {"1nn", "protonet", "feat"};
    for (int i = 0; i < 3; i++) {
        char *a_1 = rows_at(a, methods[i], 1), *b_1 = rows_at(b, methods[i], 1);
        char *a_3 = rows_at(a, methods[i], 3), *c_3 = rows_at(c, methods[i], 3);
        char *c_1 = rows_at(c, methods[i], 1);
        ck_assert_str_eq(a_1, b_1);
        ck_assert_str_eq(a_3, c_3);
        ck_assert_msg(strcmp(b_1, c_1) != 0, "%s: the two models agree at 1-shot", methods[i]);
        free(a_1), free(b_1), free(a_3), free(c_3), free(c_1);
    }
    char *ra = tu_results_without_timing(a), *ra1 = tu_results_without_timing(a1);
    ck_assert_str_eq(ra, ra1); /* the thread count changes nothing */
    /* run.id: F's and F2's hashes from B (1nn=F, protonet=F, feat=F2) */
    char h[3][17], want[512];
    model_hashes(b, h, 3);
    snprintf(want, sizeof want,
             "1nn(norm=cl2n,C=1,model@1=%s),protonet(norm=un,C=1,model@1=%s),"
             "feat(norm=un,C=1,model=%s,model@1=%s)",
             h[0], h[0], h[0], h[2]);
    char *ma = id_value(a, "methods");
    ck_assert_str_eq(ma, want);
    char *man = tu_path(a, "manifest.txt"), *mt = tu_read(man, NULL), line[17000];
    snprintf(line, sizeof line,
             "\nmodel.1nn@1=%s\nmodel.protonet@1=%s\nmodel.feat=%s\n"
             "model.feat@1=%s\nthreads=",
             feat, feat, feat, feat2);
    ck_assert_msg(strstr(mt, line), "%s", mt);
    char *md = tu_path(a, "table.md"), *mdt = tu_read(md, NULL), *ta = id_value(a, "teacher_xxh3");
    snprintf(line, sizeof line,
             "\nModels: 1nn uses its own model: 1-shot checkpoint XXH3-64 %s; 3-shot the teacher, "
             "protonet uses its own model: 1-shot checkpoint XXH3-64 %s; 3-shot the teacher, feat "
             "uses its own models: 1-shot checkpoint XXH3-64 %s; 3-shot checkpoint XXH3-64 %s.\n",
             h[0], h[0], h[2], h[0]);
    ck_assert_msg(strstr(mdt, line), "%s", mdt);
    /* killed after 2 of the 6 groups, resumed: the same results */
    snprintf(flags, sizeof flags, "%s --debug-kill-after-tasks 12", fa);
    ck_assert_int_ne(bench_run(NULL, k, flags), 0);
    ck_assert_msg(bench_run(&log, k, fa) == 0, "%s", log);
    free(log);
    char *rk = tu_results_without_timing(k);
    ck_assert_str_eq(ra, rk);
    /* another 1-shot file for feat (the same weights as F, another file) is another run */
    snprintf(flags, sizeof flags,
             "--teacher '%s' --methods 1nn,protonet,feat --model feat='%s' --model feat@1='%s' "
             "--model protonet@1='%s',1nn@1='%s'",
             e2e.teacher, feat, feat_renamed, feat, feat);
    ck_assert_int_ne(bench_run(&log, a, flags), 0);
    ck_assert_msg(strstr(log, "holds a different run") && strstr(log, "model@1="), "%s", log);
    free(log);
    char *ra2 = tu_results_without_timing(a);
    ck_assert_str_eq(ra, ra2);
    /* replaying A's episodes without --shots: the manifest's shots place the per-shot models
     * (a shot it lacks is refused there, before a folder is claimed) */
    char *rp = tu_path(e2e.work, "prep"), *rq = tu_path(e2e.work, "preq");
    const char *replay = "'%s' --data '%s' --cache '%s/cache' --episodes '%s/episodes.csv' "
                         "--threads 2" IMG " --out '%s' %s";
    ck_assert_msg(tu_run(&log, replay, tu_bench(), e2e.root, e2e.work, a, rp, fa) == 0, "%s", log);
    free(log);
    char *rr = tu_results_without_timing(rp);
    ck_assert_str_eq(ra, rr);
    snprintf(flags, sizeof flags, "--teacher '%s' --methods protonet --model protonet@5='%s'",
             e2e.teacher, feat);
    ck_assert_int_ne(tu_run(&log, replay, tu_bench(), e2e.root, e2e.work, a, rq, flags), 0);
    ck_assert_msg(strstr(log, "--model protonet@5=") && strstr(log, "not among --shots (1,3)"),
                  "%s", log);
    ck_assert_int_eq(tu_run(NULL, "test ! -e '%s'", rq), 0);
    free(log), free(rp), free(rq), free(rr);
    free(ra), free(ra1), free(ra2), free(rk), free(ma), free(man), free(mt), free(md), free(mdt);
    free(ta), free(a), free(a1), free(b), free(c), free(k);
}
END_TEST

START_TEST(bad_models_are_refused_before_a_folder_is_claimed)
{
    char *notfsbt = tu_path(e2e.work, "not-a-checkpoint.fsbt");
    tu_write_str(e2e.work, "not-a-checkpoint.fsbt", "hello\n");
    /* a valid tensor file that records the run's input but holds no network */
    char *nometa = tu_path(e2e.work, "plain-tensors.fsbt");
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "image_size", "32"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "resize", "32"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "crop", "28"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_save(&tf, nometa), FSB_OK);
    fsb_tensorfile_free(&tf);
    char *missing = tu_path(e2e.work, "missing.fsbt");
    struct {
        const char *methods;            /* --methods */
        const char *pre, *path, *post;  /* --model value: pre path post */
        const char *msg1, *msg2, *msg3; /* expected in the output (NULL: nothing more) */
    } cases[] = {
        {"protonet,feat", "feat=", missing, "", "--model feat=", "missing.fsbt", NULL},
        {"protonet,feat", "feat=", notfsbt, "", "--model feat=", "not-a-checkpoint.fsbt", NULL},
        {"protonet,feat", "feat=", nometa, "", "--model feat=", "plain-tensors.fsbt",
         "no \"arch\" in the checkpoint meta"},
        {"protonet,feat", "svm=", feat, "", "--model svm=", "not among --methods (protonet,feat)",
         NULL},
        {"protonet,finetune", "finetune=", feat, "", "--model finetune=",
         "cannot take a model of its own", "--model is for 1nn, protonet, svm, logreg, feat"},
        {"protonet,feat", "feat=", feat_crop24, "", "--model feat=", "crop 24",
         "crop 28 (the teacher"},
        {"protonet,feat", "feat=", e2e.teacher, "", "--model feat=", "needs a FEAT checkpoint",
         "slf_attn"},
        {"protonet,feat", "feat=", feat, ",feat=x.fsbt", "--model: feat is given twice", NULL,
         NULL},
        {"protonet,feat", "feat", "", "", "--model: 'feat' is not METHOD=PATH", NULL, NULL},
        {"protonet,feat", "=", feat, "", "--model: '=", "is not METHOD=PATH", NULL},
        /* per-shot models (the runs are 1,3-shot) */
        {"protonet,feat", "feat@x=", feat, "", "--model feat@x=", "'x' is not a shot", NULL},
        {"protonet,feat", "feat@0=", feat, "", "--model feat@0=", "'0' is not a shot", NULL},
        {"protonet,feat", "feat@=", feat, "", "--model feat@=", "'' is not a shot", NULL},
        {"protonet,feat", "@1=", feat, "", "--model @1=", "is not a shot", NULL},
        {"protonet,feat", "feat@2=", feat, "", "--model feat@2=",
         "feat.fsbt: 2-shot is not among "
         "--shots (1,3)",
         NULL},
        {"protonet,feat", "feat@1=", feat, ",feat@1=y.fsbt", "--model: feat@1 is given twice",
         "y.fsbt", NULL},
        {"protonet,finetune", "finetune@1=", feat, "",
         "--model finetune@1=", "finetune cannot take a model of its own", NULL},
        {"protonet,feat", "svm@1=", feat, "", "--model svm@1=", "not among --methods", NULL},
        {"protonet,feat", "feat@1=", feat_crop24, "", "--model feat@1=", "crop 24", NULL},
        {"protonet,feat", "feat@1=", e2e.teacher, "", "--model feat@1=", "needs a FEAT checkpoint",
         NULL},
        {"protonet,feat", "feat=", feat, ",feat@1=y.fsbt,feat@3=z.fsbt",
         "--model feat=", "every shot of the run (1,3) has a model of its own", "would serve none"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir_name[32], model[4200], flags[8600], *log = NULL;
        snprintf(dir_name, sizeof dir_name, "refused%zu", i);
        char *dir = tu_path(e2e.work, dir_name);
        snprintf(model, sizeof model, "%s%s%s", cases[i].pre, cases[i].path, cases[i].post);
        snprintf(flags, sizeof flags, "--teacher '%s' --methods %s --model '%s'", e2e.teacher,
                 cases[i].methods, model);
        int rc = bench_run(&log, dir, flags);
        ck_assert_msg(rc != 0, "case %zu accepted: %s", i, log);
        const char *msgs[3] = {cases[i].msg1, cases[i].msg2, cases[i].msg3};
        for (int j = 0; j < 3; j++)
            ck_assert_msg(!msgs[j] || strstr(log, msgs[j]), "case %zu: no '%s' in: %s", i, msgs[j],
                          log);
        ck_assert_msg(strstr(log, "--model"), "case %zu: %s", i, log);
        ck_assert_int_eq(tu_run(NULL, "test ! -e '%s'", dir), 0); /* nothing claimed */
        free(log), free(dir);
    }
    free(notfsbt), free(nometa), free(missing);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("run_model");
    TCase *tc = tcase_create("run_model");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup_data, teardown_data);
    tcase_add_test(tc, feat_with_its_own_model);
    tcase_add_test(tc, cl2n_uses_its_own_models_base_mean);
    tcase_add_test(tc, own_model_run_resumes_and_refuses_another_file);
    tcase_add_test(tc, per_shot_models_serve_their_shot);
    tcase_add_test(tc, bad_models_are_refused_before_a_folder_is_claimed);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
