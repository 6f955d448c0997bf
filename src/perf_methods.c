/* perf_methods.c - `bench perf-methods`: time the frozen-feature methods on randomly sampled
 * episodes of a feature file, in parallel, and optionally dump episodes and predictions for
 * tools/sklearn_compare.py. Episode (shot K, index e) is drawn from its own Philox stream
 * (seed, K << 32 | e), so results never depend on the thread count; a task allocates only
 * from its worker's arena.
 */
#include "fsb/perf_methods.h"
#include "fsb/arena.h"
#include "fsb/blas.h"
#include "fsb/fileio.h"
#include "fsb/method.h"
#include "fsb/report.h"
#include "fsb/rng.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "fsb/threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fsb_mperf_options_default(fsb_mperf_options *o)
{
    memset(o, 0, sizeof *o);
    o->episodes = 1000;
    const int shots[4] = {1, 5, 10, 30};
    memcpy(o->shots, shots, sizeof shots);
    o->n_shots = 4;
    o->way = 5;
    o->query = 15;
    const char *methods[4] = {"1nn", "protonet", "svm", "logreg"};
    memcpy(o->methods, methods, sizeof methods);
    o->n_methods = 4;
    o->norm = -1;
    o->C = 1.0;
    o->eps = 0.01;
}

typedef struct {
    const fsb_mperf_options *o;
    const float *feat;                            /* [n][dim] */
    int dim;                                      /* feature dimension */
    int n_classes;                                /* distinct labels */
    int max_count;                                /* rows of the largest class */
    const int *class_start;                       /* [n_classes] offset into rows */
    const int *class_count;                       /* [n_classes] rows per class */
    const int *rows;                              /* row indices grouped by class */
    const fsb_method *m[FSB_MPERF_MAX_METHODS];   /* the methods */
    fsb_method_config cfg[FSB_MPERF_MAX_METHODS]; /* their configs */
    fsb_arena *arenas;                            /* [threads] per-worker scratch */
    int *correct;                                 /* [methods][tasks] */
    float *ms;                                    /* [methods][tasks][2] fit, predict */
    int *pred;                                    /* [methods][tasks][n_query] or NULL */
    int **sup_rows;                               /* [shots] -> [episodes][way*K] or NULL */
    int *qry_rows;                                /* [tasks][n_query] or NULL */
    int *status;                                  /* [tasks] */
    char (*msg)[256]; /* [threads] message of the worker's first failure */
    int *msg_task;    /* [threads] task of that failure (-1: none) */
} perf_ctx;

/* Arena bytes of perf_task's own buffers at shot K: the view's features, the class and row
 * pools, the episode, the view's indices and labels, the predictions; 12 allocations of
 * which each may waste up to 64 bytes to alignment. */
static size_t task_bytes(const perf_ctx *c, int K)
{
    const fsb_mperf_options *o = c->o;
    const size_t ns = (size_t)o->way * K, nq = (size_t)o->way * o->query;
    return sizeof(float) * (size_t)c->dim * (ns + nq) +
           sizeof(int) *
               ((size_t)c->n_classes + (size_t)c->max_count + (size_t)o->way + 3 * ns + 4 * nq) +
           64 * 12;
}

/* Episode (K, e) into ep (arrays sized way, [way][K], [way][query]): classes without
 * replacement, then shot + query rows of each without replacement (fsb_rng_partial_shuffle);
 * the first K drawn are the support, the next `query` the queries. perm holds n_classes ints,
 * order max_count. */
static void draw_episode(const perf_ctx *c, int K, int e, fsb_episode *ep, int *perm, int *order)
{
    const fsb_mperf_options *o = c->o;
    fsb_rng rng;
    fsb_rng_init(&rng, o->seed, (uint64_t)K << 32 | (uint64_t)e);
    fsb_rng_partial_shuffle(&rng, perm, c->n_classes, o->way);
    for (int k = 0; k < o->way; k++) {
        int cls = perm[k];
        const int *rows = c->rows + c->class_start[cls];
        fsb_rng_partial_shuffle(&rng, order, c->class_count[cls], K + o->query);
        ep->classes[k] = cls;
        for (int i = 0; i < K; i++)
            ep->support[k * K + i] = rows[order[i]];
        for (int i = 0; i < o->query; i++)
            ep->queries[k * o->query + i] = rows[order[K + i]];
    }
}

/* Run every method on the view of task t; keep the results (and the predictions for the
 * dump). */
static int run_methods(perf_ctx *c, int t, const fsb_episode_view *ep, const int *qlab,
                       fsb_arena *a, int *pred)
{
    const fsb_mperf_options *o = c->o;
    for (int mi = 0; mi < o->n_methods; mi++) {
        fsb_method_stats stats = {0, 0};
        fsb_rng mrng;
        fsb_rng_init(&mrng, o->seed ^ 0x9e3779b97f4a7c15ULL,
                     (uint64_t)ep->shot << 32 | (uint64_t)ep->episode);
        int st = c->m[mi]->run(c->m[mi], &c->cfg[mi], ep, a, &mrng, pred, &stats);
        if (st) return st;
        int ok = 0;
        for (int q = 0; q < ep->n_query; q++)
            ok += pred[q] == qlab[q];
        size_t ti = (size_t)mi * o->n_shots * o->episodes + (size_t)t;
        c->correct[ti] = ok;
        c->ms[2 * ti] = (float)stats.fit_ms;
        c->ms[2 * ti + 1] = (float)stats.predict_ms;
        if (c->pred) memcpy(c->pred + ti * ep->n_query, pred, sizeof(int) * (size_t)ep->n_query);
    }
    return FSB_OK;
}

static void perf_task(void *vctx, int t, int worker)
{
    perf_ctx *c = vctx;
    const fsb_mperf_options *o = c->o;
    const int s = t / o->episodes, e = t % o->episodes, K = o->shots[s];
    const int way = o->way, ns = way * K, nq = way * o->query, dim = c->dim;
    fsb_arena *a = &c->arenas[worker];
    size_t mark = fsb_arena_mark(a);
    int st = FSB_OK;
#define INTS(n) fsb_arena_alloc(a, sizeof(int) * (size_t)(n), 64)
    int *perm = INTS(c->n_classes), *order = INTS(c->max_count), *pred = INTS(nq);
    fsb_episode episode = {.way = way, .max_shot = K, .query = o->query};
    episode.classes = INTS(way);
    episode.support = INTS(ns);
    episode.queries = INTS(nq);
    fsb_view_buffers b = {.sidx = INTS(ns), .slab = INTS(ns), .qidx = INTS(nq), .qlab = INTS(nq)};
#undef INTS
    b.sfeat = fsb_arena_floats(a, (size_t)ns * dim);
    b.qfeat = fsb_arena_floats(a, (size_t)nq * dim);
    if (!perm || !order || !pred || !episode.classes || !episode.support || !episode.queries ||
        !b.sidx || !b.slab || !b.qidx || !b.qlab || !b.sfeat || !b.qfeat) {
        st = FSB_ENOMEM;
        goto done;
    }
    draw_episode(c, K, e, &episode, perm, order);
    fsb_episode_view ep;
    fsb_episode_view_make(&ep, &episode, e, K, c->feat, dim, &b);
    if ((st = run_methods(c, t, &ep, b.qlab, a, pred))) goto done;
    if (c->sup_rows) {
        memcpy(c->sup_rows[s] + (size_t)e * ns, b.sidx, sizeof(int) * (size_t)ns);
        memcpy(c->qry_rows + (size_t)t * nq, b.qidx, sizeof(int) * (size_t)nq);
    }
done:
    if (st && c->msg_task[worker] < 0) {
        c->msg_task[worker] = t;
        snprintf(c->msg[worker], sizeof c->msg[worker], "%s",
                 st == FSB_ENOMEM && !*fsb_error_last() ? "out of scratch memory"
                                                        : fsb_error_last());
    }
    c->status[t] = st;
    fsb_arena_reset_to(a, mark);
}

/* A feature row with its label, sorted by (label, row) to group classes. */
typedef struct {
    int64_t label; /* the class id in the file */
    int row;       /* the feature row */
} labelled_row;

static int cmp_lr(const void *pa, const void *pb)
{
    const labelled_row *a = pa, *b = pb;
    if (a->label != b->label) return a->label < b->label ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

/* Write the dump described in perf.h. */
static int write_dump(const perf_ctx *c, const char *path)
{
    const fsb_mperf_options *o = c->o;
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    int st = FSB_OK;
    const int nq = o->way * o->query, tasks = o->n_shots * o->episodes;
    size_t big = (size_t)o->episodes *
                 (size_t)(o->way * (o->shots[o->n_shots - 1] > o->query ? o->shots[o->n_shots - 1]
                                                                        : o->query));
    int64_t *buf = malloc(sizeof *buf * (big ? big : 1));
    char key[128], val[512];
    if (!buf) {
        st = fsb_error(FSB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
#define META(k, ...)                                                                               \
    do {                                                                                           \
        snprintf(val, sizeof val, __VA_ARGS__);                                                    \
        if ((st = fsb_tensorfile_set_meta(&tf, k, val))) goto done;                                \
    } while (0)
    META("format", "fsbench-perf-methods");
    META("features", "%s", o->features);
    META("way", "%d", o->way);
    META("query", "%d", o->query);
    META("episodes", "%d", o->episodes);
    META("seed", "%llu", (unsigned long long)o->seed);
    META("C", "%.17g", o->C);
    META("eps", "%.17g", o->eps);
    val[0] = '\0';
    for (int s = 0; s < o->n_shots; s++)
        snprintf(val + strlen(val), sizeof val - strlen(val), "%s%d", s ? "," : "", o->shots[s]);
    if ((st = fsb_tensorfile_set_meta(&tf, "shots", val))) goto done;
    val[0] = '\0';
    for (int mi = 0; mi < o->n_methods; mi++)
        snprintf(val + strlen(val), sizeof val - strlen(val), "%s%s", mi ? "," : "",
                 c->m[mi]->name);
    if ((st = fsb_tensorfile_set_meta(&tf, "methods", val))) goto done;
    for (int mi = 0; mi < o->n_methods; mi++) {
        snprintf(key, sizeof key, "norm.%s", c->m[mi]->name);
        META(key, "%s", fsb_norm_name(c->cfg[mi].norm));
    }
#undef META
    for (int s = 0; s < o->n_shots; s++) {
        const int K = o->shots[s], ns = o->way * K;
        int64_t dims[2] = {o->episodes, ns};
        for (size_t i = 0; i < (size_t)o->episodes * ns; i++)
            buf[i] = c->sup_rows[s][i];
        snprintf(key, sizeof key, "K%d.support", K);
        if ((st = fsb_tensorfile_add(&tf, key, FSB_I64, 2, dims, buf))) goto done;
        dims[1] = nq;
        for (size_t i = 0; i < (size_t)o->episodes * nq; i++)
            buf[i] = c->qry_rows[(size_t)s * o->episodes * nq + i];
        snprintf(key, sizeof key, "K%d.query", K);
        if ((st = fsb_tensorfile_add(&tf, key, FSB_I64, 2, dims, buf))) goto done;
        for (int mi = 0; mi < o->n_methods; mi++) {
            size_t t0 = (size_t)mi * tasks + (size_t)s * o->episodes;
            for (size_t i = 0; i < (size_t)o->episodes * nq; i++)
                buf[i] = c->pred[t0 * nq + i];
            snprintf(key, sizeof key, "K%d.pred.%s", K, c->m[mi]->name);
            dims[1] = nq;
            if ((st = fsb_tensorfile_add(&tf, key, FSB_I64, 2, dims, buf))) goto done;
            snprintf(key, sizeof key, "K%d.ms.%s", K, c->m[mi]->name);
            dims[1] = 2;
            if ((st = fsb_tensorfile_add(&tf, key, FSB_F32, 2, dims, c->ms + 2 * t0))) goto done;
        }
    }
    st = fsb_tensorfile_save(&tf, path);
done:
    free(buf);
    fsb_tensorfile_free(&tf);
    return st;
}

/* per_episode.csv and the derived reports of the run, in (method, shot, episode) order. */
static int write_report(const perf_ctx *c, const char *dir, fsb_mperf_result *res)
{
    const fsb_mperf_options *o = c->o;
    const size_t tasks = (size_t)o->n_shots * o->episodes, n = tasks * o->n_methods;
    int st = fsb_mkdir_p(dir);
    if (st) return st;
    fsb_episode_record *recs = malloc(sizeof *recs * n);
    if (!recs) return fsb_error(FSB_ENOMEM, "%s: out of memory", dir);
    for (int mi = 0; mi < o->n_methods; mi++)
        for (size_t t = 0; t < tasks; t++) {
            size_t ti = (size_t)mi * tasks + t;
            fsb_episode_record *r = &recs[ti];
            memset(r, 0, sizeof *r);
            r->episode = (int64_t)(t % (size_t)o->episodes);
            r->shot = o->shots[t / (size_t)o->episodes];
            snprintf(r->method, sizeof r->method, "%s", c->m[mi]->name);
            r->n_correct = c->correct[ti];
            r->n_query = o->way * o->query;
            r->accuracy = (double)r->n_correct / r->n_query;
            r->fit_ms = c->ms[2 * ti];
            r->predict_ms = c->ms[2 * ti + 1];
        }
    fsb_report_result rr;
    st = fsb_report_write(dir, recs, n, NULL, &rr);
    snprintf(res->report_note, sizeof res->report_note, "%s", st ? "" : rr.note);
    free(recs);
    return st;
}

/* The feature file grouped by class, and the CL2N base mean. */
typedef struct feature_set {
    fsb_tensorfile tf;  /* the loaded file (owns the features) */
    const float *feat;  /* [n][dim] */
    int n, dim;         /* rows, feature dimension */
    int n_classes;      /* distinct labels */
    int min_count;      /* rows of the smallest class */
    int max_count;      /* rows of the largest class */
    int *class_start;   /* [n_classes] offset into rows */
    int *class_count;   /* [n_classes] rows per class */
    int *rows;          /* [n] row indices, classes by ascending label, rows ascending */
    float *mean;        /* [dim] the file's base_mean, else the mean of every row */
    int mean_from_file; /* 1: "base_mean" tensor used */
} feature_set;

static void features_free(feature_set *fs)
{
    free(fs->class_start);
    free(fs->class_count);
    free(fs->rows);
    free(fs->mean);
    fsb_tensorfile_free(&fs->tf);
}

/* Classes: distinct labels ascending; rows of a class ascending. */
static int group_classes(feature_set *fs, const int64_t *labels, const char *path)
{
    const int n = fs->n;
    labelled_row *lr = malloc(sizeof *lr * (size_t)n);
    fs->rows = malloc(sizeof *fs->rows * (size_t)n);
    fs->class_start = malloc(sizeof *fs->class_start * (size_t)n);
    fs->class_count = malloc(sizeof *fs->class_count * (size_t)n);
    if (!lr || !fs->rows || !fs->class_start || !fs->class_count) {
        free(lr);
        return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < n; i++)
        lr[i] = (labelled_row){labels[i], i};
    qsort(lr, (size_t)n, sizeof *lr, cmp_lr);
    int nc = 0;
    for (int i = 0; i < n; i++) {
        fs->rows[i] = lr[i].row;
        if (i == 0 || lr[i].label != lr[i - 1].label) {
            fs->class_start[nc] = i;
            fs->class_count[nc] = 0;
            nc++;
        }
        fs->class_count[nc - 1]++;
    }
    free(lr);
    fs->n_classes = nc;
    fs->min_count = n;
    fs->max_count = 0;
    for (int k = 0; k < nc; k++) {
        if (fs->class_count[k] < fs->min_count) fs->min_count = fs->class_count[k];
        if (fs->class_count[k] > fs->max_count) fs->max_count = fs->class_count[k];
    }
    return FSB_OK;
}

/* The CL2N base mean: the file's, else the mean of every feature (double sums). */
static int base_mean(feature_set *fs, const char *path)
{
    const int n = fs->n, dim = fs->dim;
    if (!(fs->mean = calloc((size_t)dim, sizeof *fs->mean)))
        return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
    if (fsb_tensorfile_get(&fs->tf, "base_mean")) {
        const float *p;
        int st = fsb_tensorfile_get_f32(&fs->tf, path, "base_mean", (size_t)dim, &p);
        if (st) return st;
        memcpy(fs->mean, p, sizeof(float) * dim);
        fs->mean_from_file = 1;
        return FSB_OK;
    }
    for (int j = 0; j < dim; j++) {
        double sum = 0;
        for (int i = 0; i < n; i++)
            sum += fs->feat[(size_t)i * dim + j];
        fs->mean[j] = (float)(sum / n);
    }
    return FSB_OK;
}

/* Load o->features (see perf_methods.h) and check that it can give the episodes asked for. */
static int load_features(feature_set *fs, const fsb_mperf_options *o, int max_shot)
{
    const char *path = o->features;
    int st = fsb_tensorfile_load(&fs->tf, path);
    if (st) return st;
    const fsb_tensor *ft = fsb_tensorfile_get(&fs->tf, "features");
    if (!ft || ft->dtype != FSB_F32 || ft->ndim != 2 || ft->dims[0] < 1 || ft->dims[1] < 1 ||
        ft->dims[0] > INT32_MAX || ft->dims[1] > 1000000)
        return fsb_error(FSB_EFORMAT, "%s: needs a tensor 'features' of float32 [N, dim]", path);
    fs->feat = ft->data;
    fs->n = (int)ft->dims[0];
    fs->dim = (int)ft->dims[1];
    const int64_t *labels;
    if ((st = fsb_tensorfile_get_i64(&fs->tf, path, "labels", (size_t)fs->n, &labels)) ||
        (st = group_classes(fs, labels, path)))
        return st;
    if (o->way > fs->n_classes || max_shot + o->query > fs->min_count)
        return fsb_error(FSB_EINVAL,
                         "%s: %d classes with at least %d rows each cannot give %d-way episodes "
                         "with %d + %d images per class",
                         path, fs->n_classes, fs->min_count, o->way, max_shot, o->query);
    return base_mean(fs, path);
}

/* Find and configure every method of o; *scratch = the most bytes a worker's arena needs. */
static int setup_methods(perf_ctx *c, const fsb_mperf_options *o, const feature_set *fs,
                         int max_shot, size_t *scratch)
{
    *scratch = 0;
    for (int mi = 0; mi < o->n_methods; mi++) {
        if (!(c->m[mi] = fsb_method_find(o->methods[mi])))
            return fsb_error_wrap(FSB_EINVAL, "--methods");
        if (!(c->m[mi]->needs & FSB_NEEDS_FEATURES) || (c->m[mi]->needs & FSB_NEEDS_IMAGES))
            return fsb_error(FSB_EINVAL, "--methods: %s needs images, not only features",
                             c->m[mi]->name);
        fsb_method_config_default(&c->cfg[mi], c->m[mi]);
        if (o->norm >= 0) c->cfg[mi].norm = (fsb_norm)o->norm;
        c->cfg[mi].C = o->C;
        c->cfg[mi].eps = o->eps;
        c->cfg[mi].base_mean = fs->mean;
        c->cfg[mi].base_mean_dim = fs->dim;
        size_t need = c->m[mi]->scratch(o->way, max_shot, o->query, fs->dim);
        if (need > *scratch) *scratch = need;
    }
    *scratch += task_bytes(c, max_shot);
    return FSB_OK;
}

/* The per-task outputs and per-worker state of c (freed by ctx_free). */
static int ctx_alloc(perf_ctx *c, const fsb_mperf_options *o, int threads, size_t scratch)
{
    const size_t tasks = (size_t)o->n_shots * o->episodes, nq = (size_t)o->way * o->query;
    c->arenas = calloc((size_t)threads, sizeof *c->arenas);
    c->msg = calloc((size_t)threads, sizeof *c->msg);
    c->msg_task = malloc(sizeof *c->msg_task * (size_t)threads);
    c->correct = malloc(sizeof *c->correct * tasks * o->n_methods);
    c->ms = malloc(sizeof *c->ms * 2 * tasks * o->n_methods);
    c->status = calloc(tasks, sizeof *c->status);
    if (!c->arenas || !c->msg || !c->msg_task || !c->correct || !c->ms || !c->status)
        return fsb_error(FSB_ENOMEM, "perf-methods: out of memory");
    for (int w = 0; w < threads; w++) {
        c->msg_task[w] = -1;
        int st = fsb_arena_init(&c->arenas[w], scratch + ((size_t)16 << 20));
        if (st) return st;
    }
    if (!o->dump) return FSB_OK;
    c->pred = malloc(sizeof *c->pred * tasks * o->n_methods * nq);
    c->qry_rows = malloc(sizeof *c->qry_rows * tasks * nq);
    c->sup_rows = calloc((size_t)o->n_shots, sizeof *c->sup_rows);
    if (!c->pred || !c->qry_rows || !c->sup_rows)
        return fsb_error(FSB_ENOMEM, "--dump: out of memory");
    for (int s = 0; s < o->n_shots; s++)
        if (!(c->sup_rows[s] = malloc(sizeof(int) * (size_t)o->episodes * o->way * o->shots[s])))
            return fsb_error(FSB_ENOMEM, "--dump: out of memory");
    return FSB_OK;
}

static void ctx_free(perf_ctx *c, int threads)
{
    for (int w = 0; c->arenas && w < threads; w++)
        fsb_arena_free(&c->arenas[w]);
    free(c->arenas);
    free(c->msg);
    free(c->msg_task);
    free(c->correct);
    free(c->ms);
    free(c->status);
    free(c->pred);
    free(c->qry_rows);
    for (int s = 0; c->sup_rows && s < c->o->n_shots; s++)
        free(c->sup_rows[s]);
    free(c->sup_rows);
}

/* The error of the first failed task (in task order), or FSB_OK. */
static int first_failure(const perf_ctx *c, int threads)
{
    const fsb_mperf_options *o = c->o;
    int first = -1, fw = -1;
    for (int w = 0; w < threads; w++)
        if (c->msg_task[w] >= 0 && (first < 0 || c->msg_task[w] < first)) {
            first = c->msg_task[w];
            fw = w;
        }
    if (first < 0) return FSB_OK;
    return fsb_error(c->status[first], "episode %d of shot %d: %s", first % o->episodes,
                     o->shots[first / o->episodes], c->msg[fw]);
}

/* Per (method, shot): mean times, mean accuracy and its CI. */
static int summarise(const perf_ctx *c, fsb_mperf_result *res)
{
    const fsb_mperf_options *o = c->o;
    const int tasks = o->n_shots * o->episodes, nq = o->way * o->query;
    double *acc = malloc(sizeof *acc * (size_t)o->episodes);
    if (!acc) return fsb_error(FSB_ENOMEM, "perf-methods: out of memory");
    for (int mi = 0; mi < o->n_methods; mi++)
        for (int s = 0; s < o->n_shots; s++) {
            fsb_mperf_cell *cell = &res->cell[mi][s];
            double fit = 0, prd = 0, sd;
            for (int e = 0; e < o->episodes; e++) {
                size_t ti = (size_t)mi * tasks + (size_t)s * o->episodes + e;
                acc[e] = (double)c->correct[ti] / nq;
                fit += c->ms[2 * ti];
                prd += c->ms[2 * ti + 1];
            }
            cell->fit_ms = fit / o->episodes;
            cell->predict_ms = prd / o->episodes;
            fsb_stats_mean_ci(acc, (size_t)o->episodes, &cell->accuracy, &sd, &cell->ci95);
        }
    free(acc);
    return FSB_OK;
}

int fsb_perf_methods(const fsb_mperf_options *o, fsb_mperf_result *res)
{
    feature_set fs;
    memset(&fs, 0, sizeof fs);
    fsb_tensorfile_init(&fs.tf);
    perf_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    memset(res, 0, sizeof *res);
    fsb_pool *pool = NULL;
    int threads = 0, st;
    if (o->episodes < 1 || o->n_shots < 1 || o->n_shots > FSB_MPERF_MAX_SHOTS || o->way < 1 ||
        o->query < 1 || o->n_methods < 1 || o->n_methods > FSB_MPERF_MAX_METHODS)
        return fsb_error(FSB_EINVAL, "perf-methods: bad options");
    int max_shot = o->shots[o->n_shots - 1];
    for (int s = 0; s < o->n_shots; s++)
        if (o->shots[s] > max_shot) max_shot = o->shots[s];
    if ((st = load_features(&fs, o, max_shot))) goto done;
    c.feat = fs.feat;
    c.dim = fs.dim;
    c.n_classes = fs.n_classes;
    c.max_count = fs.max_count;
    c.class_start = fs.class_start;
    c.class_count = fs.class_count;
    c.rows = fs.rows;
    size_t scratch;
    if ((st = setup_methods(&c, o, &fs, max_shot, &scratch))) goto done;
    fsb_blas_set_threads(1);
    if ((st = fsb_pool_create(&pool, o->threads))) goto done;
    threads = fsb_pool_size(pool);
    if ((st = ctx_alloc(&c, o, threads, scratch))) goto done;
    double t0 = fsb_now();
    fsb_pool_run(pool, o->n_shots * o->episodes, perf_task, &c);
    res->wall_s = fsb_now() - t0;
    if ((st = first_failure(&c, threads)) || (st = summarise(&c, res))) goto done;
    res->n_features = fs.n;
    res->dim = fs.dim;
    res->n_classes = fs.n_classes;
    res->threads = threads;
    res->base_mean_from_file = fs.mean_from_file;
    if (o->dump && (st = write_dump(&c, o->dump))) goto done;
    if (o->report_dir) st = write_report(&c, o->report_dir, res);
done:
    fsb_pool_destroy(pool);
    ctx_free(&c, threads);
    features_free(&fs);
    return st;
}
