/* test_student.c - per-episode student training (finetune, refilled) on a tiny generated
 * dataset whose classes have distinct colours (32x32 JPEGs, 28x28 crops, a narrow ConvNet-4
 * teacher created and saved by the test): option specs, teacher never modified, bit
 * reproducibility, learning on separable data, no stage-1 step without triplets, K = 1 with
 * views, frozen-prefix precomputation equal to the full forward, the method-table adapter.
 */
#include "fixtures.h"
#include "testutil.h"

#include "fsb/cache.h"
#include "fsb/method.h"
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/student.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAY 4
#define PER_CLASS 12
#define QUERY 4

static char *root;         /* the generated dataset */
static char *teacher_path; /* the saved random teacher */
static fsb_cache cache;    /* its test split, packed at 32 */
static fsb_transform tf;   /* resize 32, crop 28 */

/* Class k: a strong distinct colour plus a faint per-image pattern. */
static void make_colour_dataset(const char *dir)
{
    static const uint8_t colours[WAY][3] = {
        {220, 30, 30}, {30, 200, 40}, {40, 40, 220}, {230, 220, 40}};
    char csv[8192] = "filename,label\n";
    uint8_t px[32 * 32 * 3], pat[32 * 32 * 3];
    for (int k = 0; k < WAY; k++)
        for (int i = 0; i < PER_CLASS; i++) {
            fx_pattern(pat, 32, 32, (uint32_t)(100 * k + i + 1));
            for (int p = 0; p < 32 * 32 * 3; p++)
                px[p] = (uint8_t)(0.75 * colours[k][p % 3] + 0.25 * pat[p]);
            char rel[64];
            snprintf(rel, sizeof rel, "images/c%d_%03d.jpg", k, i);
            char *path = tu_path(dir, rel);
            fx_jpeg(path, 32, 32, px, 0, 95);
            free(path);
            snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "c%d_%03d.jpg,n%08d\n", k, i, k);
        }
    tu_write_str(dir, "split/test.csv", csv);
}

static void setup(void)
{
    root = tu_tmpdir();
    make_colour_dataset(root);
    char *cdir = tu_path(root, "cache");
    fsb_cache_opts co = {.dir = cdir, .size = 32};
    ck_assert_int_eq(fsb_cache_open(&cache, root, "test", &co), 0);
    free(cdir);
    ck_assert_int_eq(cache.split.n_classes, WAY);
    fsb_model_opts mo;
    fsb_model_opts_default(&mo, FSB_ARCH_CONV4);
    mo.in_hw = 28;
    for (int i = 0; i < 4; i++)
        mo.widths[i] = 16;
    fsb_rng r;
    fsb_rng_init(&r, 42, 0);
    fsb_model *t;
    ck_assert_int_eq(fsb_model_create(&t, &mo, 7, 8, NULL, &r), 0);
    /* non-trivial BN running statistics, so that eval mode is not the identity */
    for (int i = 0; i < fsb_model_n_tensors(t); i++) {
        fsb_model_tensor tt;
        fsb_model_tensor_at(t, i, &tt);
        for (long j = 0; tt.data && j < tt.numel; j++)
            if (tt.kind == FSB_T_RUNNING_MEAN)
                tt.data[j] = 0.05f * (float)((j % 5) - 2);
            else if (tt.kind == FSB_T_RUNNING_VAR)
                tt.data[j] = 0.5f + 0.1f * (float)(j % 4);
    }
    teacher_path = tu_path(root, "teacher.fsbt");
    ck_assert_int_eq(fsb_model_save(t, teacher_path, 0, NULL, NULL), 0);
    fsb_model_destroy(t);
    fsb_transform_defaults(&tf, FSB_PIXNORM_CONVNET);
    tf.resize = 32;
    tf.crop = 28;
}

static void teardown(void)
{
    fsb_cache_close(&cache);
    tu_rmrf(root);
    free(root);
    free(teacher_path);
}

/* An episode over the WAY classes: support images 0..shot-1 of each class, queries the
 * last QUERY images; labels = class. */
typedef struct episode {
    int sup[WAY * PER_CLASS], lab[WAY * PER_CLASS], qry[WAY * QUERY], qlab[WAY * QUERY];
    int shot;
} episode;

static void make_episode(episode *e, int shot)
{
    e->shot = shot;
    int n = 0;
    /* interleaved classes: the trainer must not assume class-major support order */
    for (int i = 0; i < shot; i++)
        for (int k = 0; k < WAY; k++) {
            e->sup[n] = cache.split.class_start[k] + i;
            e->lab[n++] = k;
        }
    for (int k = 0; k < WAY; k++)
        for (int q = 0; q < QUERY; q++) {
            e->qry[k * QUERY + q] = cache.split.class_start[k] + PER_CLASS - 1 - q;
            e->qlab[k * QUERY + q] = k;
        }
}

static fsb_student_ctx *make_ctx(const fsb_student_opts *o, int max_shot)
{
    fsb_student_ctx *c = NULL;
    int st = fsb_student_ctx_create(&c, teacher_path, &cache, &tf, WAY, max_shot, QUERY, o);
    if (st) fprintf(stderr, "%s\n", fsb_error_last());
    ck_assert_int_eq(st, 0);
    return c;
}

/* The student's view of `way` classes of `shot` support images (sup, lab) and QUERY queries
 * per class (qry), with the teacher's features sf / qf or NULL. */
static fsb_student_episode_view view_of(const int *sup, const int *lab, int way, int shot,
                                        const int *qry, const float *sf, const float *qf)
{
    return (fsb_student_episode_view){.way = way,
                                      .shot = shot,
                                      .n_query = way * QUERY,
                                      .support_img = sup,
                                      .support_labels = lab,
                                      .query_img = qry,
                                      .support_feat = sf,
                                      .query_feat = qf};
}

static int run_episode(fsb_student_ctx *c, const fsb_student_opts *o, fsb_student_method m,
                       const episode *e, uint64_t seed, int *pred, fsb_student_stats *s)
{
    fsb_rng r;
    fsb_rng_init(&r, seed, 3);
    fsb_student_episode_view v = view_of(e->sup, e->lab, WAY, e->shot, e->qry, NULL, NULL);
    int st = fsb_student_episode(c, o, m, &v, &r, pred, s);
    if (st) fprintf(stderr, "%s\n", fsb_error_last());
    return st;
}

/* Every state_dict value (params, BN statistics as floats, counters) of m, malloc'd. */
static float *snapshot(const fsb_model *m, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < fsb_model_n_tensors(m); i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        total += (size_t)t.numel;
    }
    float *s = malloc(sizeof(float) * (total + 1)), *p = s;
    for (int i = 0; i < fsb_model_n_tensors(m); i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        if (t.data)
            memcpy(p, t.data, sizeof(float) * (size_t)t.numel);
        else
            for (long j = 0; j < t.numel; j++)
                p[j] = (float)t.count[j];
        p += t.numel;
    }
    *n = total;
    return s;
}

static int n_correct(const int *pred, const episode *e)
{
    int c = 0;
    for (int i = 0; i < WAY * QUERY; i++) {
        ck_assert(pred[i] >= 0 && pred[i] < WAY);
        c += pred[i] == e->qlab[i];
    }
    return c;
}

static void small_opts(fsb_student_opts *o)
{
    fsb_student_opts_default(o);
    ck_assert_int_eq(fsb_student_opts_parse(o,
                                            "stage1_steps=6,stage2_steps=12,lr1=0.01,lr2=0.05,"
                                            /* the paths the chosen defaults skip: a trained block,
                                               a bank of 4 strongly augmented views and no clean
                                               one, stage 1 at K = 1, a random head */
                                            "adapt=last,head_init=uniform,bank=4,clean_view=0,"
                                            "crop_lo=0.08,jitter=0.4",
                                            "test"),
                     0);
}

START_TEST(opts_parse_and_string)
{
    fsb_student_opts o, p;
    fsb_student_opts_default(&o);
    ck_assert_int_eq(fsb_student_opts_check(&o, "x"), 0);
    ck_assert_int_eq(fsb_student_opts_parse(&o,
                                            "stage1_steps=7,lr2=0.125,adapt=all,"
                                            "miner=facenet,k1=skip,sched=cosine,batch=40,"
                                            "head_init=zero",
                                            "--student"),
                     0);
    ck_assert_int_eq(o.stage1_steps, 7);
    ck_assert(o.lr2 == 0.125f);
    ck_assert_int_eq(o.adapt, FSB_ADAPT_ALL);
    ck_assert_int_eq(o.miner, FSB_MINER_FACENET);
    ck_assert_int_eq(o.k1, FSB_K1_SKIP);
    ck_assert_int_eq(o.sched, FSB_SCHED_COSINE);
    ck_assert_int_eq(o.batch, 40);
    ck_assert_int_eq(o.head_init, FSB_HEAD_ZERO);
    char buf[FSB_STUDENT_SPEC_MAX], buf2[FSB_STUDENT_SPEC_MAX];
    fsb_student_opts_string(&o, buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "stage1_steps=7,"));
    ck_assert_ptr_nonnull(strstr(buf, "adapt=all"));
    ck_assert_ptr_nonnull(strstr(buf, "lr2=0.125"));
    ck_assert_ptr_nonnull(strstr(buf, "head_init=zero"));
    /* the canonical string parses back to the same options */
    fsb_student_opts_default(&p);
    ck_assert_int_eq(fsb_student_opts_parse(&p, buf, "x"), 0);
    fsb_student_opts_string(&p, buf2, sizeof buf2);
    ck_assert_str_eq(buf, buf2);
    ck_assert(memcmp(&o, &p, sizeof o) == 0);
    /* NULL and "" change nothing */
    ck_assert_int_eq(fsb_student_opts_parse(&p, NULL, "x"), 0);
    ck_assert_int_eq(fsb_student_opts_parse(&p, "", "x"), 0);
    ck_assert(memcmp(&o, &p, sizeof o) == 0);
}
END_TEST

START_TEST(opts_bad_specs_name_the_key)
{
    static const struct {
        const char *spec, *want;
    } bad[] = {
        {"bogus=1", "bogus"},
        {"lr1", "lr1"},
        {"lr1=abc", "lr1"},
        {"stage1_steps=2.5", "stage1_steps"},
        {"stage2_steps=-1", "stage2_steps"},
        {"adapt=some", "adapt"},
        {"miner=hard", "miner"},
        {"head_init=ones", "head_init"},
        {"tau1=0", "tau1"},
        {"views=1", "views"},
        {"bank=0", "bank"},
        {"crop_lo=0", "crop_lo"},
        {"crop_lo=1.5", "crop_lo"},
        {"jitter=1", "jitter"},
        {"clean_view=2", "clean_view"},
        {"lr2=nan", "lr2"},
        {"momentum=0,nesterov=1", "nesterov"},
        {"lr1=0.1,,lr2=1", "empty"},
        {"bank=8,", "empty"},
        {"bank=8,lr1=0.1,bank=2", "bank' is given twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fsb_student_opts o, before;
        fsb_student_opts_default(&o);
        before = o;
        ck_assert_int_eq(fsb_student_opts_parse(&o, bad[i].spec, "--student"), FSB_EINVAL);
        const char *msg = fsb_error_last();
        ck_assert_msg(strstr(msg, bad[i].want) && strstr(msg, "--student"), "%s -> %s", bad[i].spec,
                      msg);
        ck_assert(memcmp(&o, &before, sizeof o) == 0);
    }
}
END_TEST

/* Found by tests/fuzz/fuzz_student: ranges were checked on the value as written, the field
 * then stored as a float, and fsb_student_opts_check checked the float; so the item check
 * accepted "margin=0.51e-45" (0 as a float, outside (0, 4]) that the parser then refused,
 * and the top of jitter's documented range, 0.999 (0.99900001 as a float), was refused.
 * Both now check the float; every accepted item parses alone and prints back. */
START_TEST(opts_float_ranges_as_stored)
{
    static const struct {
        const char *item;
        int ok;
    } cases[] = {
        {"margin=0.51e-45", 0},   {"margin=1e-46", 0}, {"tau1=1e-50", 0},
        {"crop_lo=1e-46", 0},     {"jitter=0.999", 1}, {"jitter=0.9991", 0},
        {"momentum=0.999999", 1}, {"w1=1e9", 1},       {"w1=1.0000001e9", 0},
        {"margin=1e-45", 1},      {"lr2=1e-50", 1},    {"lr1=1e300", 0},
        {"lr1=-1e-50", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *item = cases[i].item;
        fsb_student_opts o, back;
        fsb_student_opts_default(&o);
        int item_st = fsb_student_item_check(item, strlen(item), "--student");
        int parse_st = fsb_student_opts_parse(&o, item, "--student");
        ck_assert_msg(item_st == (cases[i].ok ? FSB_OK : FSB_EINVAL), "item check of %s", item);
        ck_assert_msg(parse_st == item_st, "%s: item check %d, parse %d (%s)", item, item_st,
                      parse_st, fsb_error_last());
        if (!cases[i].ok) continue;
        char buf[FSB_STUDENT_SPEC_MAX];
        fsb_student_opts_string(&o, buf, sizeof buf);
        fsb_student_opts_default(&back);
        ck_assert_int_eq(fsb_student_opts_parse(&back, buf, "x"), FSB_OK);
        ck_assert(memcmp(&o, &back, sizeof o) == 0);
    }
}
END_TEST

/* The teacher's parameters and BN statistics are bit-identical after episodes of both
 * methods (adapt all, so that every block trains), and BN statistics of the student did move. */
START_TEST(teacher_never_changes)
{
    fsb_student_opts o;
    small_opts(&o);
    o.adapt = FSB_ADAPT_ALL;
    fsb_student_ctx *c = make_ctx(&o, 3);
    size_t n0, n1;
    float *before = snapshot(fsb_student_ctx_teacher(c), &n0);
    episode e;
    make_episode(&e, 3);
    int pred[WAY * QUERY];
    ck_assert_int_eq(run_episode(c, &o, FSB_STUDENT_FINETUNE, &e, 1, pred, NULL), 0);
    ck_assert_int_eq(run_episode(c, &o, FSB_STUDENT_REFILLED, &e, 2, pred, NULL), 0);
    float *after = snapshot(fsb_student_ctx_teacher(c), &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert(memcmp(before, after, n0 * sizeof(float)) == 0);
    /* the student trained: its block-0 BN running mean differs from the teacher's */
    const fsb_model *s = fsb_student_ctx_student(c);
    int ti = fsb_model_find_tensor(s, "encoder.0.1.running_mean");
    ck_assert_int_ge(ti, 0);
    fsb_model_tensor ts, tt;
    fsb_model_tensor_at(s, ti, &ts);
    fsb_model_tensor_at(fsb_student_ctx_teacher(c), ti, &tt);
    ck_assert(memcmp(ts.data, tt.data, sizeof(float) * (size_t)ts.numel) != 0);
    free(before);
    free(after);
    fsb_student_ctx_destroy(c);
}
END_TEST

/* Same rng state -> the same predictions and the same trained weights, bit for bit, also
 * after another episode ran on the same context in between. */
START_TEST(same_rng_same_bits)
{
    for (int m = 0; m < 2; m++) {
        fsb_student_opts o;
        small_opts(&o);
        fsb_student_ctx *c = make_ctx(&o, 5);
        episode e, e2;
        make_episode(&e, 5);
        make_episode(&e2, 2);
        int p1[WAY * QUERY], p2[WAY * QUERY], p3[WAY * QUERY];
        fsb_student_stats s1, s2;
        ck_assert_int_eq(run_episode(c, &o, (fsb_student_method)m, &e, 9, p1, &s1), 0);
        size_t n;
        float *w1 = snapshot(fsb_student_ctx_student(c), &n);
        ck_assert_int_eq(run_episode(c, &o, (fsb_student_method)m, &e2, 10, p3, NULL), 0);
        ck_assert_int_eq(run_episode(c, &o, (fsb_student_method)m, &e, 9, p2, &s2), 0);
        float *w2 = snapshot(fsb_student_ctx_student(c), &n);
        ck_assert(memcmp(p1, p2, sizeof p1) == 0);
        ck_assert(memcmp(w1, w2, n * sizeof(float)) == 0);
        ck_assert(s1.loss_last == s2.loss_last && s1.stage1_loss_last == s2.stage1_loss_last);
        /* another rng gives other weights (the rng is actually used) */
        ck_assert_int_eq(run_episode(c, &o, (fsb_student_method)m, &e, 11, p2, NULL), 0);
        free(w2);
        w2 = snapshot(fsb_student_ctx_student(c), &n);
        ck_assert(memcmp(w1, w2, n * sizeof(float)) != 0);
        free(w1);
        free(w2);
        fsb_student_ctx_destroy(c);
    }
}
END_TEST

/* Fine-tuning on colour-separable classes: the loss falls and the queries come out right;
 * REFILLED likewise. */
START_TEST(learns_separable_classes)
{
    fsb_student_opts o;
    small_opts(&o);
    o.stage2_steps = 25;
    fsb_student_ctx *c = make_ctx(&o, 5);
    episode e;
    make_episode(&e, 5);
    int pred[WAY * QUERY];
    fsb_student_stats s;
    ck_assert_int_eq(run_episode(c, &o, FSB_STUDENT_FINETUNE, &e, 4, pred, &s), 0);
    ck_assert_int_eq(s.stage2_steps, 25);
    ck_assert_int_eq(s.stage1_ran, 0);
    ck_assert_msg(s.loss_last < 0.5 * s.loss_first, "loss %g -> %g", s.loss_first, s.loss_last);
    ck_assert_int_ge(n_correct(pred, &e), WAY * QUERY - 1);
    ck_assert(s.fit_ms > 0 && s.predict_ms > 0);
    /* REFILLED: a random teacher's NCM probabilities are nearly uniform, so the reference
     * lambda = 100 pulls the student to uniform outputs; with lambda = 1 CE still leads */
    fsb_student_opts o1 = o;
    o1.lambda = 1.0f;
    ck_assert_int_eq(run_episode(c, &o1, FSB_STUDENT_REFILLED, &e, 4, pred, &s), 0);
    ck_assert_int_eq(s.stage1_ran, 1);
    ck_assert(isfinite(s.stage1_loss_first) && isfinite(s.loss_last));
    ck_assert_int_ge(n_correct(pred, &e), WAY * QUERY - 1);
    fsb_student_ctx_destroy(c);
}
END_TEST

/* No triplet in the semi-hard window (margin tiny): no stage-1 step, the backbone is still
 * exactly the teacher's, and nothing is NaN. */
START_TEST(no_triplets_no_step)
{
    fsb_student_opts o;
    small_opts(&o);
    o.margin = 1e-30f;
    o.stage2_steps = 0;
    o.adapt = FSB_ADAPT_ALL;
    fsb_student_ctx *c = make_ctx(&o, 3);
    episode e;
    make_episode(&e, 3);
    int pred[WAY * QUERY];
    fsb_student_stats s;
    ck_assert_int_eq(run_episode(c, &o, FSB_STUDENT_REFILLED, &e, 5, pred, &s), 0);
    ck_assert_int_eq(s.stage1_ran, 1);
    ck_assert_int_eq(s.stage1_steps, 0);
    ck_assert_int_eq(s.stage1_empty, o.stage1_steps);
    ck_assert(s.stage1_loss_last == 0.0 && s.stage1_triplets == 0.0);
    long n;
    float *ps = fsb_model_params((fsb_model *)fsb_student_ctx_student(c), &n);
    long nt;
    const float *pt = fsb_model_params((fsb_model *)fsb_student_ctx_teacher(c), &nt);
    long nb = n - (WAY * fsb_model_embed_dim(fsb_student_ctx_student(c)) + WAY);
    ck_assert(memcmp(ps, pt, sizeof(float) * (size_t)nb) == 0);
    n_correct(pred, &e);
    /* with the default margin the same episode does step */
    fsb_student_opts o2 = o;
    o2.margin = FSB_REFILLED_MARGIN;
    ck_assert_int_eq(run_episode(c, &o2, FSB_STUDENT_REFILLED, &e, 5, pred, &s), 0);
    ck_assert_int_gt(s.stage1_steps, 0);
    ck_assert(memcmp(ps, pt, sizeof(float) * (size_t)nb) != 0);
    fsb_student_ctx_destroy(c);
}
END_TEST

/* K = 1: stage 1 runs on 2 views per image (views are the positives) and steps; k1=skip and
 * augment=0 (one view only) skip stage 1. */
START_TEST(one_shot_views)
{
    fsb_student_opts o;
    small_opts(&o);
    o.views = 3;
    fsb_student_ctx *c = make_ctx(&o, 1);
    episode e;
    make_episode(&e, 1);
    int pred[WAY * QUERY];
    fsb_student_stats s;
    ck_assert_int_eq(run_episode(c, &o, FSB_STUDENT_REFILLED, &e, 6, pred, &s), 0);
    ck_assert_int_eq(s.stage1_ran, 1);
    ck_assert_int_gt(s.stage1_steps + s.stage1_empty, 0);
    ck_assert(s.stage1_triplets > 0);
    ck_assert(isfinite(s.loss_last));
    n_correct(pred, &e);
    o.k1 = FSB_K1_SKIP;
    ck_assert_int_eq(run_episode(c, &o, FSB_STUDENT_REFILLED, &e, 6, pred, &s), 0);
    ck_assert_int_eq(s.stage1_ran, 0);
    fsb_student_ctx_destroy(c);
    fsb_student_opts o3;
    small_opts(&o3);
    o3.augment = 0;
    c = make_ctx(&o3, 1);
    ck_assert_int_eq(run_episode(c, &o3, FSB_STUDENT_REFILLED, &e, 6, pred, &s), 0);
    ck_assert_int_eq(s.stage1_ran, 0);
    ck_assert_int_eq(s.stage2_steps, o3.stage2_steps);
    fsb_student_ctx_destroy(c);
}
END_TEST

/* Every option path runs and stays finite: facenet miner, cosine schedule, per-batch centres,
 * a batch cap, no augmentation, plain momentum, adapt head (stage 1 has nothing to train). */
START_TEST(option_variants_run)
{
    static const char *const specs[] = {
        "miner=facenet", "sched=cosine",      "centres_batch=1",
        "batch=6",       "augment=0",         "nesterov=0,momentum=0",
        "adapt=head",    "adapt=all,batch=4", "tau1=1,w1=50,tau2=4,lambda=10,margin=0.5"};
    episode e;
    make_episode(&e, 3);
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        fsb_student_opts o;
        small_opts(&o);
        ck_assert_int_eq(fsb_student_opts_parse(&o, specs[i], "test"), 0);
        fsb_student_ctx *c = make_ctx(&o, 3);
        for (int m = 0; m < 2; m++) {
            int pred[WAY * QUERY];
            fsb_student_stats s;
            ck_assert_msg(run_episode(c, &o, (fsb_student_method)m, &e, 13, pred, &s) == 0, "%s",
                          specs[i]);
            ck_assert_msg(isfinite(s.loss_last) && isfinite(s.stage1_loss_last), "%s", specs[i]);
            ck_assert_int_eq(s.stage2_steps, o.stage2_steps);
            ck_assert_int_eq(s.stage1_ran, m == 1 && o.adapt != FSB_ADAPT_HEAD);
            n_correct(pred, &e);
        }
        fsb_student_ctx_destroy(c);
    }
}
END_TEST

/* bank_max caps the views per image (1 view = the test transform); the stats report it. */
START_TEST(bank_cap)
{
    fsb_student_opts o;
    small_opts(&o);
    o.bank_max = 8;
    fsb_student_ctx *c = make_ctx(&o, 3);
    int pred[WAY * QUERY];
    fsb_student_stats s;
    const int want[4] = {0, 2, 1, 1}; /* 8 / (4 * K), at least 1, at most bank = 4 */
    for (int k = 1; k <= 3; k++) {
        episode e;
        make_episode(&e, k);
        ck_assert_int_eq(run_episode(c, &o, FSB_STUDENT_REFILLED, &e, 12, pred, &s), 0);
        ck_assert_int_eq(s.bank_views, want[k]);
        ck_assert_int_eq(s.stage1_ran, 1); /* K = 1 has 2 views, K > 1 two images */
        ck_assert(s.bank_ms > 0 && s.bank_ms <= s.fit_ms);
    }
    fsb_student_ctx_destroy(c);
}
END_TEST

/* A context accepts any way up to its own, and under bank_max a smaller way can need more
 * rows: 7 rows for 4 classes is one view each (no stage 1 at K = 1), for 3 classes two views
 * (6 rows, stage 1 runs). The buffers must hold the larger shape (ASan checks the bounds). */
START_TEST(smaller_way_than_ctx)
{
    fsb_student_opts o;
    small_opts(&o);
    o.bank_max = 7;
    fsb_student_ctx *c = make_ctx(&o, 1);
    int sup[3], lab[3], qry[3 * QUERY], pred[3 * QUERY];
    for (int k = 0; k < 3; k++) {
        sup[k] = cache.split.class_start[k];
        lab[k] = k;
        for (int q = 0; q < QUERY; q++)
            qry[k * QUERY + q] = cache.split.class_start[k] + PER_CLASS - 1 - q;
    }
    for (int m = 0; m < 2; m++) {
        fsb_rng r;
        fsb_rng_init(&r, 5, 3);
        fsb_student_stats s;
        fsb_student_episode_view v = view_of(sup, lab, 3, 1, qry, NULL, NULL);
        int st = fsb_student_episode(c, &o, (fsb_student_method)m, &v, &r, pred, &s);
        if (st) fprintf(stderr, "%s\n", fsb_error_last());
        ck_assert_int_eq(st, 0);
        ck_assert_int_eq(s.bank_views, 2);
        ck_assert_int_eq(s.stage1_ran, m == FSB_STUDENT_REFILLED);
        for (int i = 0; i < 3 * QUERY; i++)
            ck_assert(pred[i] >= 0 && pred[i] < 3);
    }
    fsb_student_ctx_destroy(c);
}
END_TEST

/* The optimiser's momentum, Nesterov flag and weight decay are the episode's options, not the
 * ones the context was created with: the same as a context created with them, and not the
 * same as the context's own. */
START_TEST(episode_sgd_options_win)
{
    fsb_student_opts o, sgd;
    small_opts(&o);
    sgd = o;
    ck_assert_int_eq(fsb_student_opts_parse(&sgd, "weight_decay=0.5,momentum=0,nesterov=0", "t"),
                     0);
    episode e;
    make_episode(&e, 2);
    int p1[WAY * QUERY], p2[WAY * QUERY];
    fsb_student_stats base, mixed, own;
    fsb_student_ctx *c = make_ctx(&o, 2);
    ck_assert_int_eq(run_episode(c, &o, FSB_STUDENT_REFILLED, &e, 4, p1, &base), 0);
    ck_assert_int_eq(run_episode(c, &sgd, FSB_STUDENT_REFILLED, &e, 4, p1, &mixed), 0);
    fsb_student_ctx_destroy(c);
    c = make_ctx(&sgd, 2);
    ck_assert_int_eq(run_episode(c, &sgd, FSB_STUDENT_REFILLED, &e, 4, p2, &own), 0);
    fsb_student_ctx_destroy(c);
    ck_assert(mixed.loss_last == own.loss_last && mixed.stage1_loss_last == own.stage1_loss_last);
    ck_assert(memcmp(p1, p2, sizeof p1) == 0);
    ck_assert(mixed.loss_last != base.loss_last);
}
END_TEST

/* adapt last / head: precomputing the frozen prefix once gives the same bits as running the
 * whole network every step, and the frozen blocks stay the teacher's. */
START_TEST(frozen_prefix_precompute_is_exact)
{
    for (int adapt = FSB_ADAPT_LAST; adapt <= FSB_ADAPT_HEAD; adapt++)
        for (int m = 0; m < 2; m++) {
            fsb_student_opts o, o0;
            small_opts(&o);
            o.adapt = (fsb_adapt)adapt;
            o.batch = 8; /* 2 images per class and step: exercises the rotation too */
            o0 = o;
            o0.prefix = 0;
            fsb_student_ctx *c = make_ctx(&o, 4), *c0 = make_ctx(&o0, 4);
            episode e;
            make_episode(&e, 4);
            int p[WAY * QUERY], p0[WAY * QUERY];
            fsb_student_stats s, s0;
            ck_assert_int_eq(run_episode(c, &o, (fsb_student_method)m, &e, 8, p, &s), 0);
            ck_assert_int_eq(run_episode(c0, &o0, (fsb_student_method)m, &e, 8, p0, &s0), 0);
            ck_assert(memcmp(p, p0, sizeof p) == 0);
            size_t n;
            float *w = snapshot(fsb_student_ctx_student(c), &n);
            float *w0 = snapshot(fsb_student_ctx_student(c0), &n);
            ck_assert(memcmp(w, w0, n * sizeof(float)) == 0);
            ck_assert(s.loss_last == s0.loss_last);
            /* frozen blocks (params and BN statistics) equal the teacher's */
            const fsb_model *st = fsb_student_ctx_student(c), *te = fsb_student_ctx_teacher(c);
            int first = fsb_model_first_trainable(st);
            for (int i = 0; i < fsb_model_n_tensors(te); i++) {
                fsb_model_tensor a, b;
                fsb_model_tensor_at(st, i, &a);
                fsb_model_tensor_at(te, i, &b);
                if (b.block >= first || !b.data) continue;
                ck_assert_msg(memcmp(a.data, b.data, sizeof(float) * (size_t)a.numel) == 0, "%s",
                              a.name);
            }
            /* the options must match the context's buffers */
            ck_assert_int_eq(run_episode(c, &o0, (fsb_student_method)m, &e, 8, p, &s), FSB_EINVAL);
            free(w);
            free(w0);
            fsb_student_ctx_destroy(c);
            fsb_student_ctx_destroy(c0);
        }
}
END_TEST

/* The teacher's eval-mode embeddings [n][D] of images idx[n] under the test transform, all
 * in one batch (the runner embeds the split in other batches: an embedding does not depend on
 * its batch). malloc'd; *dim = D. */
static float *embed_images(const int *idx, int n, int *dim)
{
    int side = tf.crop;
    fsb_model *t = NULL;
    ck_assert_int_eq(fsb_model_create_from_file(&t, teacher_path, 0, n, NULL), 0);
    int D = fsb_model_embed_dim(t);
    float *img = malloc(sizeof(float) * (size_t)n * 3 * side * side);
    float *emb = malloc(sizeof(float) * (size_t)n * D);
    ck_assert(img && emb);
    ck_assert_int_eq(fsb_transform_test_batch(img, cache.px, cache.size, cache.size, cache.channels,
                                              idx, n, &tf, NULL),
                     0);
    ck_assert_int_eq(fsb_model_embed(t, img, n, emb), 0);
    free(img);
    fsb_model_destroy(t);
    *dim = D;
    return emb;
}

/* v [d] minus its components along the m orthonormal rows of q [m][d]. */
static void remove_components(double *v, const double *q, int m, int d)
{
    for (int k = 0; k < m; k++) {
        double dot = 0;
        for (int j = 0; j < d; j++)
            dot += v[j] * q[(size_t)k * d + j];
        for (int j = 0; j < d; j++)
            v[j] -= dot * q[(size_t)k * d + j];
    }
}

/* An orthonormal basis q [m][d] (m returned, m <= n) of the span of the n rows of e [n][d]
 * (Gram-Schmidt in double). */
static int span_basis(const float *e, int n, int d, double *q)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        double *v = q + (size_t)m * d, nn = 0;
        for (int j = 0; j < d; j++)
            v[j] = e[(size_t)i * d + j];
        remove_components(v, q, m, d);
        for (int j = 0; j < d; j++)
            nn += v[j] * v[j];
        if (nn < 1e-12) continue;
        for (int j = 0; j < d; j++)
            v[j] /= sqrt(nn);
        m++;
    }
    return m;
}

/* Distance of row [d] from the span of the basis q [m][d], relative to the row's norm. */
static double off_span(const double *q, int m, int d, const float *row)
{
    double r[256], n0 = 0, n1 = 0;
    ck_assert(d <= 256);
    for (int j = 0; j < d; j++)
        r[j] = row[j], n0 += r[j] * r[j];
    remove_components(r, q, m, d);
    for (int j = 0; j < d; j++)
        n1 += r[j] * r[j];
    ck_assert(n0 > 0);
    return sqrt(n1 / n0);
}

/* head_init=zero: the head starts at zero, and with a frozen backbone and the clean support
 * (augment=0) every step moves its rows within the span of the support embeddings, so the
 * trained rows have no component outside it; the uniform init leaves one. */
START_TEST(zero_head_stays_in_support_span)
{
    episode e;
    make_episode(&e, 2); /* 8 support embeddings in 16 dimensions */
    int n_s = WAY * e.shot, D;
    float *emb = embed_images(e.sup, n_s, &D);
    double *basis = malloc(sizeof(double) * (size_t)n_s * D);
    ck_assert_ptr_nonnull(basis);
    int rank = span_basis(emb, n_s, D, basis);
    for (int init = FSB_HEAD_UNIFORM; init <= FSB_HEAD_ZERO; init++)
        for (int m = 0; m < 2; m++) {
            fsb_student_opts o;
            small_opts(&o);
            ck_assert_int_eq(fsb_student_opts_parse(&o, "adapt=head,augment=0", "test"), 0);
            o.head_init = (fsb_student_head_init)init;
            fsb_student_ctx *c = make_ctx(&o, 2);
            int pred[WAY * QUERY];
            /* no step: the head is exactly zero, every query ties and goes to class 0 */
            o.stage2_steps = 0;
            ck_assert_int_eq(run_episode(c, &o, (fsb_student_method)m, &e, 6, pred, NULL), 0);
            fsb_model *s = (fsb_model *)fsb_student_ctx_student(c);
            long np;
            const float *p = fsb_model_params(s, &np), *w = p + np - (WAY * D + WAY);
            double sum = 0;
            for (long j = 0; j < WAY * D + WAY; j++)
                sum += fabs(w[j]);
            ck_assert(init == FSB_HEAD_ZERO ? sum == 0 : sum > 0);
            for (int q = 0; init == FSB_HEAD_ZERO && q < WAY * QUERY; q++)
                ck_assert_int_eq(pred[q], 0);
            o.stage2_steps = 12;
            ck_assert_int_eq(run_episode(c, &o, (fsb_student_method)m, &e, 6, pred, NULL), 0);
            p = fsb_model_params(s, &np);
            w = p + np - (WAY * D + WAY);
            for (int k = 0; k < WAY; k++) {
                double off = off_span(basis, rank, D, w + (size_t)k * D);
                if (init == FSB_HEAD_ZERO)
                    ck_assert_msg(off < 1e-4, "method %d row %d: %g off the span", m, k, off);
                else
                    ck_assert_msg(off > 0.05, "method %d row %d: %g off the span", m, k, off);
            }
            fsb_student_ctx_destroy(c);
        }
    free(basis);
    free(emb);
}
END_TEST

/* Given features (the runner's cached embeddings) change nothing: with a frozen backbone the
 * bank's clean views and the query forward are skipped, and the predictions, the trained
 * head and the losses are the same bits as from the images; other settings ignore them. */
START_TEST(given_features_same_bits)
{
    static const char *const specs[] = {
        "adapt=head,augment=0,head_init=zero", "adapt=head,augment=0,head_init=uniform",
        "adapt=head,augment=1", "adapt=head,augment=1,clean_view=1,bank=3", "adapt=last,augment=0"};
    episode e;
    make_episode(&e, 3);
    int n_s = WAY * e.shot, D, D2;
    float *sf = embed_images(e.sup, n_s, &D), *qf = embed_images(e.qry, WAY * QUERY, &D2);
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        for (int m = 0; m < 2; m++) {
            fsb_student_opts o;
            small_opts(&o);
            ck_assert_int_eq(fsb_student_opts_parse(&o, specs[i], "test"), 0);
            fsb_student_ctx *c = make_ctx(&o, 3);
            int p0[WAY * QUERY], p1[WAY * QUERY];
            fsb_student_stats s0, s1;
            fsb_rng r;
            fsb_rng_init(&r, 21, 0);
            fsb_student_episode_view v0 = view_of(e.sup, e.lab, WAY, 3, e.qry, NULL, NULL),
                                     v1 = view_of(e.sup, e.lab, WAY, 3, e.qry, sf, qf);
            ck_assert_int_eq(fsb_student_episode(c, &o, (fsb_student_method)m, &v0, &r, p0, &s0),
                             0);
            size_t n;
            float *w0 = snapshot(fsb_student_ctx_student(c), &n);
            fsb_rng_init(&r, 21, 0);
            ck_assert_int_eq(fsb_student_episode(c, &o, (fsb_student_method)m, &v1, &r, p1, &s1),
                             0);
            float *w1 = snapshot(fsb_student_ctx_student(c), &n);
            ck_assert_msg(memcmp(p0, p1, sizeof p0) == 0, "%s method %d", specs[i], m);
            ck_assert_msg(memcmp(w0, w1, n * sizeof(float)) == 0, "%s method %d", specs[i], m);
            ck_assert(s0.loss_first == s1.loss_first && s0.loss_last == s1.loss_last);
            ck_assert(n_correct(p1, &e) >= 0);
            free(w0);
            free(w1);
            fsb_student_ctx_destroy(c);
        }
    /* the features are used: with them a frozen-backbone student never reads the images
     * (out-of-range indices pass), without them the same indices are refused */
    fsb_student_opts o;
    small_opts(&o);
    ck_assert_int_eq(fsb_student_opts_parse(&o, "adapt=head,augment=0,head_init=zero", "test"), 0);
    fsb_student_ctx *c = make_ctx(&o, 3);
    int bad_s[WAY * 3], bad_q[WAY * QUERY], p0[WAY * QUERY], p1[WAY * QUERY];
    for (int q = 0; q < WAY * 3; q++)
        bad_s[q] = -1;
    for (int q = 0; q < WAY * QUERY; q++)
        bad_q[q] = cache.split.n_images;
    fsb_rng r;
    fsb_rng_init(&r, 21, 0);
    fsb_student_episode_view good = view_of(e.sup, e.lab, WAY, 3, e.qry, sf, qf),
                             bad = view_of(bad_s, e.lab, WAY, 3, bad_q, sf, qf),
                             bad_q_only = view_of(e.sup, e.lab, WAY, 3, bad_q, NULL, NULL);
    ck_assert_int_eq(fsb_student_episode(c, &o, FSB_STUDENT_REFILLED, &good, &r, p0, NULL), 0);
    fsb_rng_init(&r, 21, 0);
    ck_assert_int_eq(fsb_student_episode(c, &o, FSB_STUDENT_REFILLED, &bad, &r, p1, NULL), 0);
    ck_assert(memcmp(p0, p1, sizeof p0) == 0);
    fsb_rng_init(&r, 21, 0);
    ck_assert_int_eq(fsb_student_episode(c, &o, FSB_STUDENT_REFILLED, &bad_q_only, &r, p1, NULL),
                     FSB_EINVAL);
    fsb_student_ctx_destroy(c);
    free(sf);
    free(qf);
}
END_TEST

/* The teacher's bank embeddings (malloc'd, *rows rows) of a 0-step REFILLED episode with a
 * frozen backbone and 3 views per image, under `spec` and a fixed episode rng. */
static float *bank_of(const char *spec, const episode *e, int *rows)
{
    fsb_student_opts o;
    small_opts(&o);
    ck_assert_int_eq(
        fsb_student_opts_parse(&o, "adapt=head,bank=3,stage1_steps=0,stage2_steps=0", "test"), 0);
    ck_assert_int_eq(fsb_student_opts_parse(&o, spec, "test"), 0);
    fsb_student_ctx *c = make_ctx(&o, e->shot);
    int pred[WAY * QUERY];
    ck_assert_int_eq(run_episode(c, &o, FSB_STUDENT_REFILLED, e, 5, pred, NULL), 0);
    const float *b = fsb_student_ctx_bank(c, rows);
    int D = fsb_model_embed_dim(fsb_student_ctx_teacher(c));
    float *copy = malloc(sizeof(float) * (size_t)*rows * D);
    memcpy(copy, b, sizeof(float) * (size_t)*rows * D);
    fsb_student_ctx_destroy(c);
    return copy;
}

/* The bank of A = 3 views per image under the same episode rng: with clean_view, view 0 is
 * the test transform (the teacher's embedding of it, bit for bit) and views 1-2 are not;
 * without, no view is; jitter and crop_lo reach the augmented views and only them. */
START_TEST(bank_views_clean_and_augmented)
{
    episode e;
    make_episode(&e, 2);
    int n_s = WAY * e.shot, D, rows;
    float *clean = embed_images(e.sup, n_s, &D);
    const char *specs[4] = {
        "clean_view=1,crop_lo=0.3,jitter=0", "clean_view=0,crop_lo=0.3,jitter=0",
        "clean_view=1,crop_lo=0.3,jitter=0.4", "clean_view=1,crop_lo=0.9,jitter=0"};
    float *b[4];
    for (int k = 0; k < 4; k++) {
        b[k] = bank_of(specs[k], &e, &rows);
        ck_assert_int_eq(rows, n_s * 3);
    }
    size_t row = sizeof(float) * (size_t)D;
    for (int i = 0; i < n_s; i++) {
        const float *want = clean + (size_t)i * D;
        for (int v = 0; v < 3; v++) {
            size_t r = (size_t)(i * 3 + v) * D;
            /* view 0 is clean with clean_view only; augmented views are never clean */
            ck_assert_int_eq(memcmp(b[0] + r, want, row) == 0, v == 0);
            ck_assert(memcmp(b[1] + r, want, row) != 0);
            /* jitter and crop_lo change the augmented views, not the clean one */
            ck_assert_int_eq(memcmp(b[2] + r, b[0] + r, row) == 0, v == 0);
            ck_assert_int_eq(memcmp(b[3] + r, b[0] + r, row) == 0, v == 0);
        }
    }
    for (int k = 0; k < 4; k++)
        free(b[k]);
    free(clean);
}
END_TEST

/* The method-table rows: found by name, need images, run through the view; errors for a
 * missing context and bad episodes. */
START_TEST(method_table_adapter)
{
    fsb_student_opts o;
    small_opts(&o);
    fsb_student_ctx *c = make_ctx(&o, 2);
    episode e;
    make_episode(&e, 2);
    const char *names[2] = {"finetune", "refilled"};
    for (int i = 0; i < 2; i++) {
        const fsb_method *m = fsb_method_find(names[i]);
        ck_assert_ptr_nonnull(m);
        ck_assert(m->needs & FSB_NEEDS_IMAGES);
        fsb_method_config cfg;
        fsb_method_config_default(&cfg, m);
        cfg.extra = &o;
        fsb_episode_view v = {.episode = 3,
                              .way = WAY,
                              .shot = 2,
                              .query = QUERY,
                              .n_support = WAY * 2,
                              .n_query = WAY * QUERY,
                              .support_labels = e.lab,
                              .support_img = e.sup,
                              .query_img = e.qry,
                              .ctx = c};
        int pred[WAY * QUERY], direct[WAY * QUERY];
        fsb_method_stats ms = {0, 0};
        fsb_rng r;
        fsb_rng_init(&r, 77, 0);
        ck_assert_int_eq(m->run(m, &cfg, &v, NULL, &r, pred, &ms), 0);
        ck_assert(ms.fit_ms > 0 && ms.predict_ms > 0);
        fsb_rng_init(&r, 77, 0);
        fsb_student_stats s;
        fsb_student_episode_view sv = view_of(e.sup, e.lab, WAY, 2, e.qry, NULL, NULL);
        ck_assert_int_eq(
            fsb_student_episode(c, &o, (fsb_student_method)m->variant, &sv, &r, direct, &s), 0);
        ck_assert(memcmp(pred, direct, sizeof pred) == 0);
        v.ctx = NULL;
        ck_assert_int_eq(m->run(m, &cfg, &v, NULL, &r, pred, NULL), FSB_EINVAL);
        ck_assert_ptr_nonnull(strstr(fsb_error_last(), names[i]));
        v.ctx = c;
        v.shot = 3; /* larger than the context */
        v.n_support = WAY * 3;
        ck_assert_int_ne(m->run(m, &cfg, &v, NULL, &r, pred, NULL), 0);
    }
    /* a missing teacher names the file */
    fsb_student_ctx *bad = NULL;
    ck_assert_int_ne(
        fsb_student_ctx_create(&bad, "/nonexistent/t.fsbt", &cache, &tf, WAY, 2, QUERY, &o), 0);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "/nonexistent/t.fsbt"));
    ck_assert_ptr_null(bad);
    fsb_student_ctx_destroy(c);
}
END_TEST

static Suite *student_suite(void)
{
    Suite *s = suite_create("student");
    TCase *tc = tcase_create("options");
    tcase_add_test(tc, opts_parse_and_string);
    tcase_add_test(tc, opts_bad_specs_name_the_key);
    tcase_add_test(tc, opts_float_ranges_as_stored);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    tc = tcase_create("episodes");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, teacher_never_changes);
    tcase_add_test(tc, same_rng_same_bits);
    tcase_add_test(tc, learns_separable_classes);
    tcase_add_test(tc, no_triplets_no_step);
    tcase_add_test(tc, one_shot_views);
    tcase_add_test(tc, option_variants_run);
    tcase_add_test(tc, bank_cap);
    tcase_add_test(tc, smaller_way_than_ctx);
    tcase_add_test(tc, episode_sgd_options_win);
    tcase_add_test(tc, bank_views_clean_and_augmented);
    tcase_add_test(tc, frozen_prefix_precompute_is_exact);
    tcase_add_test(tc, zero_head_stays_in_support_span);
    tcase_add_test(tc, given_features_same_bits);
    tcase_add_test(tc, method_table_adapter);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(student_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
