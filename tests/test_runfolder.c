/* test_runfolder.c - the run folder's contract: the run identity formats and parses back to
 * the same text (the committed results' run.id included; a method's own model recorded in
 * its entry, per-shot models too, identities without one unchanged), refuses every malformed
 * text
 * naming the line, and decides the report options; a folder holding another run or
 * results without a run.id is refused and left alone; journal records round-trip and are
 * parsed strictly.
 */
#include "fsb/fileio.h"
#include "fsb/runfolder.h"
#include "fsb/status.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A complete identity with every optional line. */
static fsb_run_ident full_ident(void)
{
    fsb_run_ident id;
    memset(&id, 0, sizeof id);
    snprintf(id.split, sizeof id.split, "test");
    id.data_fp = 0x120c10c9ea03f538ull;
    id.teacher_xxh3 = 0x72f37f049a605602ull;
    snprintf(id.teacher_arch, sizeof id.teacher_arch, "conv4");
    snprintf(id.episodes_hash, sizeof id.episodes_hash, "71ee5baf85d761c4d7150e6d9f48c07e");
    id.episodes = 600;
    id.way = 5;
    id.query = 15;
    id.n_shots = 2;
    id.shots[0] = 1, id.shots[1] = 30;
    id.seed = 7;
    id.n_methods = 2;
    snprintf(id.methods[0].name, sizeof id.methods[0].name, "1nn");
    snprintf(id.methods[0].norm, sizeof id.methods[0].norm, "cl2n");
    id.methods[0].C = 1;
    snprintf(id.methods[1].name, sizeof id.methods[1].name, "svm");
    snprintf(id.methods[1].norm, sizeof id.methods[1].norm, "l2n");
    id.methods[1].C = 0.25;
    id.image_size = 84, id.resize = 92, id.crop = 84;
    id.has_base_fp = 1;
    id.base_fp = 0x3cfb3ee002e3d937ull;
    snprintf(id.student, sizeof id.student, "lr2=0.003,lambda=0.3");
    id.shard = (fsb_shard){1, 3, 0};
    return id;
}

static const char *FULL =
    "format=fsbench-run/1\nsplit=test\ndata_fingerprint=120c10c9ea03f538\n"
    "teacher_xxh3=72f37f049a605602\nteacher_arch=conv4\n"
    "episodes_hash=71ee5baf85d761c4d7150e6d9f48c07e\nepisodes=600\nway=5\nquery=15\n"
    "shots=1,30\nseed=7\nmethods=1nn(norm=cl2n,C=1),svm(norm=l2n,C=0.25)\nimage_size=84\n"
    "resize=92\ncrop=84\nbase_fingerprint=3cfb3ee002e3d937\nstudent=lr2=0.003,lambda=0.3\n"
    "shard=1/3\n";

START_TEST(ident_formats_and_parses_back)
{
    fsb_run_ident id = full_ident(), back;
    char *text = NULL, *again = NULL;
    ck_assert_int_eq(fsb_run_ident_format(&id, &text), FSB_OK);
    ck_assert_str_eq(text, FULL);
    ck_assert_int_eq(fsb_run_ident_parse(&back, text, "x"), FSB_OK);
    ck_assert_int_eq(back.n_methods, 2);
    ck_assert_str_eq(back.methods[1].name, "svm");
    ck_assert_double_eq(back.methods[1].C, 0.25);
    ck_assert_int_eq(back.shots[1], 30);
    ck_assert_int_eq(back.shard.index, 1);
    ck_assert_int_eq(back.shard.count, 3);
    ck_assert(back.has_base_fp);
    ck_assert_int_eq(fsb_run_ident_format(&back, &again), FSB_OK);
    ck_assert_str_eq(again, text);
    free(text), free(again);
    /* the optional lines appear only when used; an mpirun (shared) shard has no line */
    id.has_base_fp = 0;
    id.student[0] = '\0';
    id.shard.shared = 1;
    ck_assert_int_eq(fsb_run_ident_format(&id, &text), FSB_OK);
    ck_assert_ptr_null(strstr(text, "base_fingerprint"));
    ck_assert_ptr_null(strstr(text, "student="));
    ck_assert_ptr_null(strstr(text, "shard="));
    ck_assert_int_eq(fsb_run_ident_parse(&back, text, "x"), FSB_OK);
    free(text);
    /* what cannot be written back as the same text is refused */
    id = full_ident();
    snprintf(id.methods[0].name, sizeof id.methods[0].name, "a,b");
    ck_assert_int_eq(fsb_run_ident_format(&id, &text), FSB_EINVAL);
    ck_assert_ptr_null(text);
}
END_TEST

START_TEST(committed_run_ids_parse_back)
{
    const char *src = getenv("FSB_SOURCE_DIR");
    char *dir = tu_path(src && *src ? src : ".", "results/miniimagenet-conv4");
    fsb_run_ident id;
    char *text = NULL, *again = NULL;
    ck_assert_msg(fsb_run_ident_read(dir, &id, &text) == FSB_OK, "%s", fsb_error_last());
    ck_assert_int_eq(id.episodes, 600);
    ck_assert_int_eq(id.n_methods, 5);
    ck_assert_str_eq(id.methods[4].name, "refilled");
    ck_assert(id.has_base_fp);
    ck_assert(id.student[0] != '\0');
    ck_assert_int_eq(fsb_run_ident_format(&id, &again), FSB_OK);
    ck_assert_str_eq(again, text);
    fsb_report_options o = {0};
    fsb_run_report_text names;
    fsb_run_ident_report_options(&id, &o, &names);
    ck_assert_int_eq(o.no_paper, 0);
    ck_assert_str_eq(o.backbone, "conv4");
    ck_assert_str_eq(o.setting, "MiniImageNet test, 5-way, 15 queries/class, conv4 teacher");
    free(text), free(again), free(dir);
}
END_TEST

/* FULL with line `line` (1-based) replaced by `with` ("" deletes it). */
static char *edit_line(int line, const char *with)
{
    char *out = malloc(strlen(FULL) + strlen(with) + 2), *o = out;
    int k = 1;
    for (const char *p = FULL; *p; k++) {
        size_t len = strcspn(p, "\n") + 1;
        if (k == line) {
            if (*with) o += sprintf(o, "%s\n", with);
        } else {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    *o = '\0';
    return out;
}

/* FULL with its methods= line (line 12) replaced by each of lines[n]: parsing gives `want`,
 * an error naming the file. */
static void methods_lines_parse(const char *const *lines, size_t n, int want)
{
    fsb_run_ident back;
    for (size_t i = 0; i < n; i++) {
        char *t = edit_line(12, lines[i]);
        ck_assert_msg(fsb_run_ident_parse(&back, t, "dir/run.id") == want, "'%s': %s", lines[i],
                      want ? "accepted" : fsb_error_last());
        ck_assert_msg(!want || strstr(fsb_error_last(), "dir/run.id"), "%s", fsb_error_last());
        free(t);
    }
}

/* A method with its own model (bench run --model) records the file's hash in its entry;
 * the other methods, and every identity without a model, keep the earlier spelling. */
START_TEST(ident_records_a_methods_own_model)
{
    fsb_run_ident id = full_ident(), back;
    id.methods[1].has_model = 1;
    id.methods[1].model_xxh3 = 0x0123456789abcdefull;
    char *text = NULL, *again = NULL;
    ck_assert_int_eq(fsb_run_ident_format(&id, &text), FSB_OK);
    ck_assert_ptr_nonnull(
        strstr(text, "\nmethods=1nn(norm=cl2n,C=1),svm(norm=l2n,C=0.25,model=0123456789abcdef)\n"));
    ck_assert_int_eq(fsb_run_ident_parse(&back, text, "x"), FSB_OK);
    ck_assert_int_eq(back.methods[0].has_model, 0);
    ck_assert_int_eq(back.methods[1].has_model, 1);
    ck_assert(back.methods[1].model_xxh3 == 0x0123456789abcdefull);
    ck_assert_double_eq(back.methods[1].C, 0.25);
    ck_assert_int_eq(fsb_run_ident_format(&back, &again), FSB_OK);
    ck_assert_str_eq(again, text);
    free(again);
    /* without a model: byte for byte the text of earlier run folders */
    id.methods[1].has_model = 0;
    ck_assert_int_eq(fsb_run_ident_format(&id, &again), FSB_OK);
    ck_assert_str_eq(again, FULL);
    ck_assert_int_eq(fsb_run_ident_parse(&back, FULL, "x"), FSB_OK);
    ck_assert(!back.methods[0].has_model && !back.methods[1].has_model);
    free(again);
    /* another model file is another run, and the refusal names the key */
    char *other = NULL;
    id.methods[1].has_model = 1;
    id.methods[1].model_xxh3 = 0x0123456789abcdeeull;
    ck_assert_int_eq(fsb_run_ident_format(&id, &other), FSB_OK);
    char diff[1024];
    fsb_run_ident_diff(text, other, diff, sizeof diff);
    ck_assert_ptr_nonnull(strstr(diff, "its methods="));
    ck_assert_ptr_nonnull(strstr(diff, "model=0123456789abcdef)"));
    ck_assert_ptr_nonnull(strstr(diff, "this run's methods="));
    ck_assert_ptr_nonnull(strstr(diff, "model=0123456789abcdee)"));
    free(other);
    free(text);
    /* the entry is parsed strictly: 16 lowercase hex digits, after C, nothing else */
    static const char *bad[] = {
        "methods=1nn(norm=cl2n,C=1,model=0123456789ABCDEF)",
        "methods=1nn(norm=cl2n,C=1,model=0123456789abcde)",
        "methods=1nn(norm=cl2n,C=1,model=0123456789abcdef0)",
        "methods=1nn(norm=cl2n,C=1,model=0x23456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model=)",
        "methods=1nn(norm=cl2n,C=1,model=0123456789abcdeg)",
        "methods=1nn(norm=cl2n,C=1,model=0123456789abcdef,x=1)",
        "methods=1nn(norm=cl2n,model=0123456789abcdef,C=1)",
        "methods=1nn(norm=cl2n,C=1,mode=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,)",
    };
    methods_lines_parse(bad, sizeof bad / sizeof bad[0], FSB_EFORMAT);
}
END_TEST

/* maml records its checkpoint's MAML order before the model: first-order MAML is another run
 * and says so in run.id and under the tables; the entry is parsed strictly. */
START_TEST(ident_records_mamls_order)
{
    fsb_run_ident id = full_ident(), back;
    id.methods[1].has_model = 1;
    id.methods[1].model_xxh3 = 0x0123456789abcdefull;
    id.methods[1].order = 1;
    char *text = NULL, *again = NULL, *second = NULL;
    ck_assert_int_eq(fsb_run_ident_format(&id, &text), FSB_OK);
    ck_assert_ptr_nonnull(strstr(
        text,
        "\nmethods=1nn(norm=cl2n,C=1),svm(norm=l2n,C=0.25,order=1,model=0123456789abcdef)\n"));
    ck_assert_int_eq(fsb_run_ident_parse(&back, text, "x"), FSB_OK);
    ck_assert_int_eq(back.methods[0].order, 0);
    ck_assert_int_eq(back.methods[1].order, 1);
    ck_assert_int_eq(back.methods[1].has_model, 1);
    ck_assert_int_eq(fsb_run_ident_format(&back, &again), FSB_OK);
    ck_assert_str_eq(again, text);
    id.methods[1].order = 2;
    ck_assert_int_eq(fsb_run_ident_format(&id, &second), FSB_OK);
    char diff[1024];
    fsb_run_ident_diff(text, second, diff, sizeof diff);
    ck_assert_ptr_nonnull(strstr(diff, "order=1,model"));
    ck_assert_ptr_nonnull(strstr(diff, "order=2,model"));
    fsb_report_options o = {0};
    fsb_run_report_text rt;
    fsb_run_ident_report_options(&back, &o, &rt);
    ck_assert_ptr_nonnull(strstr(o.models, "svm uses its own model (first-order MAML, checkpoint "
                                           "XXH3-64 0123456789abcdef)"));
    fsb_run_ident_report_options(&id, &o, &rt);
    ck_assert_ptr_nonnull(strstr(o.models, "(second-order MAML, checkpoint"));
    free(text), free(again), free(second);
    static const char *bad[] = {
        "methods=1nn(norm=cl2n,C=1,order=3,model=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,order=,model=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,order=12,model=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model=0123456789abcdef,order=1)",
        "methods=1nn(norm=cl2n,order=1,C=1)",
    };
    methods_lines_parse(bad, sizeof bad / sizeof bad[0], FSB_EFORMAT);
}
END_TEST

/* Per-shot models (bench run --model M@K=PATH): one ",model@K=<hex>" per shot after model=,
 * in the order of shots=, round-tripping; another per-shot file is another run; the Models
 * line says which shots use which checkpoint; malformed entries are refused naming the file. */
START_TEST(ident_records_per_shot_models)
{
    fsb_run_ident id = full_ident(), back;
    id.n_shots = 4;
    id.shots[0] = 1, id.shots[1] = 5, id.shots[2] = 10, id.shots[3] = 30;
    fsb_run_method_id *m = &id.methods[1];
    m->has_model = 1;
    m->model_xxh3 = 0x5555555555555555ull;
    m->order = 2;
    m->n_at = 1;
    m->at[0] = (fsb_run_shot_model){1, 0x1111111111111111ull};
    char *text = NULL, *again = NULL, *other = NULL;
    ck_assert_int_eq(fsb_run_ident_format(&id, &text), FSB_OK);
    ck_assert_msg(strstr(text, "\nmethods=1nn(norm=cl2n,C=1),svm(norm=l2n,C=0.25,order=2,"
                               "model=5555555555555555,model@1=1111111111111111)\n"),
                  "%s", text);
    ck_assert_int_eq(fsb_run_ident_parse(&back, text, "x"), FSB_OK);
    ck_assert_int_eq(back.methods[0].n_at, 0);
    ck_assert_int_eq(back.methods[1].n_at, 1);
    ck_assert_int_eq(back.methods[1].at[0].shot, 1);
    ck_assert(back.methods[1].at[0].xxh3 == 0x1111111111111111ull);
    ck_assert(back.methods[1].model_xxh3 == 0x5555555555555555ull);
    ck_assert_int_eq(fsb_run_ident_format(&back, &again), FSB_OK);
    ck_assert_str_eq(again, text);
    free(again);
    /* the Models line: the shots of each checkpoint */
    fsb_report_options o = {0};
    fsb_run_report_text rt;
    fsb_run_ident_report_options(&back, &o, &rt);
    ck_assert_str_eq(o.models, "Models: svm uses its own models (second-order MAML): 1-shot "
                               "checkpoint XXH3-64 1111111111111111; 5-, 10-, 30-shot checkpoint "
                               "XXH3-64 5555555555555555; the other rows use the teacher (XXH3-64 "
                               "72f37f049a605602).");
    /* a per-shot model without model=: the other shots use the teacher; two per-shot models */
    m->has_model = 0;
    m->order = 0;
    m->n_at = 2;
    m->at[1] = (fsb_run_shot_model){10, 0x2222222222222222ull};
    ck_assert_int_eq(fsb_run_ident_format(&id, &again), FSB_OK);
    ck_assert_msg(strstr(again, ",svm(norm=l2n,C=0.25,model@1=1111111111111111,"
                                "model@10=2222222222222222)\n"),
                  "%s", again);
    ck_assert_int_eq(fsb_run_ident_parse(&back, again, "x"), FSB_OK);
    fsb_run_ident_report_options(&back, &o, &rt);
    ck_assert_str_eq(o.models, "Models: svm uses its own models: 1-shot checkpoint XXH3-64 "
                               "1111111111111111; 5-, 30-shot the teacher; 10-shot checkpoint "
                               "XXH3-64 2222222222222222; the other rows use the teacher (XXH3-64 "
                               "72f37f049a605602).");
    m->n_at = 1;
    fsb_run_ident_report_options(&id, &o, &rt);
    ck_assert_msg(strstr(o.models, "svm uses its own model: 1-shot checkpoint"), "%s", o.models);
    free(again);
    /* another per-shot file is another run: the diff names methods= */
    m->at[0].xxh3 = 0x1111111111111112ull;
    ck_assert_int_eq(fsb_run_ident_format(&id, &other), FSB_OK);
    char diff[1024];
    fsb_run_ident_diff(text, other, diff, sizeof diff);
    ck_assert_msg(strstr(diff, "model@1=1111111111111111)") &&
                      strstr(diff, "this run's methods=") &&
                      strstr(diff, "model@1=1111111111111112)"),
                  "%s", diff);
    free(other);
    /* the formatter refuses what it could not parse back: a shot not among shots=, out of
     * order, twice */
    m->n_at = 1;
    m->at[0].shot = 3;
    ck_assert_int_eq(fsb_run_ident_format(&id, &other), FSB_EINVAL);
    m->n_at = 2;
    m->at[0] = (fsb_run_shot_model){10, 1};
    m->at[1] = (fsb_run_shot_model){1, 1};
    ck_assert_int_eq(fsb_run_ident_format(&id, &other), FSB_EINVAL);
    m->at[0].shot = 1;
    ck_assert_int_eq(fsb_run_ident_format(&id, &other), FSB_EINVAL);
    free(text);
    /* strict parse (full_ident's shots are 1,30) */
    static const char *bad[] = {
        "methods=1nn(norm=cl2n,C=1,model@5=0123456789abcdef)", /* not a shot of the run */
        "methods=1nn(norm=cl2n,C=1,model@30=0123456789abcdef,model@1=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model@1=0123456789abcdef,model@1=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model@1=0123456789ABCDEF)",
        "methods=1nn(norm=cl2n,C=1,model@1=0123456789abcde)",
        "methods=1nn(norm=cl2n,C=1,model@1=0123456789abcdef0)",
        "methods=1nn(norm=cl2n,C=1,model@01=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model@0=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model@=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model@x=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model@+1=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model@1=0123456789abcdef,model=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model@1=0123456789abcdef,order=1)",
        "methods=1nn(norm=cl2n,C=1,model@1=0123456789abcdef,)",
        "methods=1nn(norm=cl2n,C=1,model@1)",
    };
    methods_lines_parse(bad, sizeof bad / sizeof bad[0], FSB_EFORMAT);
    /* and the good spellings parse */
    static const char *good[] = {
        "methods=1nn(norm=cl2n,C=1,model@30=0123456789abcdef)",
        "methods=1nn(norm=cl2n,C=1,model@1=0123456789abcdef,model@30=fedcba9876543210)",
        "methods=1nn(norm=cl2n,C=1,order=1,model=0123456789abcdef,model@1=0123456789abcdef)",
    };
    methods_lines_parse(good, sizeof good / sizeof good[0], FSB_OK);
}
END_TEST

START_TEST(ident_parse_refuses_naming_the_line)
{
    static const struct {
        int line;
        const char *with, *msg;
    } cases[] = {
        {1, "format=fsbench-run/2", "line 1"},
        {2, "", "split"}, /* a required line missing */
        {3, "data_fingerprint=xyz", "data_fingerprint"},
        {3, "data_fingerprint=120C10C9EA03F538", "form"}, /* not canonical */
        {7, "episodes=0", "episodes"},
        {7, "episodes=600junk", "episodes"},
        {7, "episodes=4611686018427387904", "episodes"}, /* the task count would wrap */
        {2, "split=te`touch x`st", "split"},             /* names end up in gnuplot titles */
        {5, "teacher_arch=conv4\"", "teacher_arch"},
        {9, "query=2000000", "query"},
        {8, "way=-5", "way"},
        {10, "shots=1,,5", "form"},
        {10, "shots=1,x", "shots"},
        {12, "methods=1nn(norm=cl2n)", "methods"},
        {12, "methods=1nn(norm=cl2n,C=nan)", "methods"},
        {12, "methods=", "methods"},
        {16, "colour=blue", "line 16"}, /* unknown key */
        {17, "student=", "student"},
        {18, "shard=3/3", "shard"},
        {11, "methods=1nn(norm=un,C=1)", "line 11"}, /* out of order */
        {16, "shard=0/2", "line 17"},                /* shard before student */
        {1, "format fsbench-run/1", "line 1"},       /* no '=' */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = edit_line(cases[i].line, cases[i].with);
        fsb_run_ident id;
        ck_assert_msg(fsb_run_ident_parse(&id, text, "dir/run.id") == FSB_EFORMAT,
                      "case %zu accepted", i);
        ck_assert_msg(strstr(fsb_error_last(), "dir/run.id") &&
                          strstr(fsb_error_last(), cases[i].msg),
                      "case %zu: %s", i, fsb_error_last());
        free(text);
    }
    fsb_run_ident id;
    ck_assert_int_eq(fsb_run_ident_parse(&id, "", "e"), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "format"));
}
END_TEST

START_TEST(report_options_follow_the_identity)
{
    static const struct {
        uint64_t fp;
        int way, query, no_paper;
    } cases[] = {
        {0x120c10c9ea03f538ull, 5, 15, 0},
        {0x120c10c9ea03f538ull, 10, 15, 1},
        {0x120c10c9ea03f538ull, 5, 5, 1},
        {0x3cfb3ee002e3d937ull, 5, 15, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fsb_run_ident id = full_ident();
        id.data_fp = cases[i].fp, id.way = cases[i].way, id.query = cases[i].query;
        fsb_report_options o = {0};
        fsb_run_report_text text;
        fsb_run_ident_report_options(&id, &o, &text);
        ck_assert_msg(o.no_paper == cases[i].no_paper, "case %zu", i);
        ck_assert_str_eq(o.backbone, "conv4");
        ck_assert_ptr_nonnull(strstr(o.setting, cases[i].fp == 0x120c10c9ea03f538ull
                                                    ? "MiniImageNet test, "
                                                    : "split test (fingerprint 3cfb3ee002e3d937)"));
    }
    char diff[256];
    fsb_run_ident_diff("a=1\nb=2\n", "a=1\nb=3\n", diff, sizeof diff);
    ck_assert_str_eq(diff, "its b=2, this run's b=3");
    fsb_run_ident_diff("a=1\n", "a=1\nb=3\n", diff, sizeof diff);
    ck_assert_str_eq(diff, "its nothing, this run's b=3");
    fsb_run_ident_diff("a=1\nb=2\nc=5\n", "a=2\nc=5\n", diff, sizeof diff);
    ck_assert_str_eq(diff, "its a=1, this run's a=2; its b=2, this run's nothing");
    /* the rows that bring their own model are named under the tables; no line otherwise */
    fsb_run_ident id = full_ident();
    fsb_report_options o = {0};
    fsb_run_report_text text;
    fsb_run_ident_report_options(&id, &o, &text);
    ck_assert_ptr_null(o.models);
    id.methods[1].has_model = 1;
    id.methods[1].model_xxh3 = 0x0123456789abcdefull;
    fsb_run_ident_report_options(&id, &o, &text);
    ck_assert_str_eq(o.models, "Models: svm uses its own model (checkpoint XXH3-64 "
                               "0123456789abcdef); the other rows use the teacher (XXH3-64 "
                               "72f37f049a605602).");
    id.methods[0].has_model = 1;
    id.methods[0].model_xxh3 = 0xfedcba9876543210ull;
    fsb_run_ident_report_options(&id, &o, &text);
    ck_assert_str_eq(o.models, "Models: 1nn uses its own model (checkpoint XXH3-64 "
                               "fedcba9876543210), svm uses its own model (checkpoint XXH3-64 "
                               "0123456789abcdef).");
}
END_TEST

START_TEST(claim_refuses_another_run_and_writes_nothing)
{
    char *dir = tu_tmpdir(), *out = tu_path(dir, "run"), *id_path = tu_path(out, "run.id");
    ck_assert_int_eq(fsb_runfolder_check(out, FULL, "--out"), FSB_OK); /* absent */
    ck_assert_int_eq(fsb_runfolder_claim(out, FULL, "--out"), FSB_OK);
    char *text = tu_read(id_path, NULL);
    ck_assert_str_eq(text, FULL);
    free(text);
    ck_assert_int_eq(fsb_runfolder_claim(out, FULL, "--out"), FSB_OK); /* the same run */
    char *other = edit_line(11, "seed=8");
    ck_assert_int_eq(fsb_runfolder_claim(out, other, "--out"), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--out"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "its seed=7, this run's seed=8"));
    text = tu_read(id_path, NULL);
    ck_assert_str_eq(text, FULL); /* left alone */
    free(text);
    /* results or a journal without a run.id */
    static const char *leftovers[] = {"per_episode.csv", "journal.log", "journal.r1of2.log",
                                      "shard.done"};
    for (int i = 0; i < 4; i++) {
        char *d = tu_path(dir, leftovers[i]);
        ck_assert_int_eq(fsb_mkdir_p(d), FSB_OK);
        tu_write_str(d, leftovers[i], "x\n");
        ck_assert_int_eq(fsb_runfolder_claim(d, FULL, "--out"), FSB_EMISMATCH);
        ck_assert_ptr_nonnull(strstr(fsb_error_last(), "without a run.id"));
        char *p = tu_path(d, "run.id");
        ck_assert(!fsb_is_file(p));
        free(p), free(d);
    }
    /* a file in place of the folder */
    tu_write_str(dir, "plain", "x");
    char *plain = tu_path(dir, "plain");
    ck_assert_int_ne(fsb_runfolder_claim(plain, FULL, "--out"), FSB_OK);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "is a file"));
    /* reading back: a damaged run.id is an error naming it, a folder without one too */
    tu_write_str(out, "run.id", "format=fsbench-run/1\nsplit=test\n");
    fsb_run_ident id;
    ck_assert_int_eq(fsb_run_ident_read(out, &id, NULL), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "run.id"));
    ck_assert_int_eq(fsb_run_ident_read(dir, &id, NULL), FSB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "not a run folder"));
    free(other), free(plain), free(id_path), free(out);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(records_round_trip_strictly)
{
    fsb_episode_record r, back;
    ck_assert_int_eq(fsb_run_record_parse("12,5,svm,60,75,1.250,0.500", &r), FSB_OK);
    ck_assert_int_eq(r.episode, 12);
    ck_assert_int_eq(r.shot, 5);
    ck_assert_str_eq(r.method, "svm");
    ck_assert_int_eq(r.n_correct, 60);
    ck_assert_double_eq_tol(r.accuracy, 0.8, 1e-12);
    ck_assert_double_eq_tol(r.fit_ms, 1.25, 1e-12);
    char buf[256];
    fsb_run_record_format(&r, buf, sizeof buf);
    ck_assert_str_eq(buf, "12,5,svm,60,75,1.250,0.500");
    ck_assert_int_eq(fsb_run_record_parse(buf, &back), FSB_OK);
    ck_assert_int_eq(memcmp(&r, &back, sizeof r), 0);
    static const char *bad[] = {"12,5,svm,76,75,1,1", "12,5,svm,6,75,1",  "12,5,svm,6,75,1,1,9",
                                "-1,5,svm,6,75,1,1",  "1,0,svm,6,75,1,1", "1,1,svm,6,75,-1,1",
                                "1,1,svm,6,75,1,inf", "1,1,svm,6,0,1,1",  ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(fsb_run_record_parse(bad[i], &r) == FSB_EFORMAT, "accepted '%s'", bad[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("runfolder");
    TCase *tc = tcase_create("runfolder");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ident_formats_and_parses_back);
    tcase_add_test(tc, committed_run_ids_parse_back);
    tcase_add_test(tc, ident_parse_refuses_naming_the_line);
    tcase_add_test(tc, ident_records_a_methods_own_model);
    tcase_add_test(tc, ident_records_mamls_order);
    tcase_add_test(tc, ident_records_per_shot_models);
    tcase_add_test(tc, report_options_follow_the_identity);
    tcase_add_test(tc, claim_refuses_another_run_and_writes_nothing);
    tcase_add_test(tc, records_round_trip_strictly);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
