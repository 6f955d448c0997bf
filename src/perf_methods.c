/* perf_methods.c - `bench perf-methods`: time the frozen-feature methods on randomly sampled
 * episodes of a feature file, in parallel, and optionally dump episodes and predictions for
 * tools/sklearn_compare.py. Episode (shot K, index e) is drawn from its own Philox stream
 * (seed, K << 32 | e), so results never depend on the thread count.
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

static void perf_task(void *vctx, int t, int worker)
{
    perf_ctx *c = vctx;
    const fsb_mperf_options *o = c->o;
    const int s = t / o->episodes, e = t % o->episodes, K = o->shots[s];
    const int way = o->way, ns = way * K, nq = way * o->query, dim = c->dim;
    fsb_arena *a = &c->arenas[worker];
    size_t mark = fsb_arena_mark(a);
    int st = FSB_OK;
    fsb_rng rng;
    fsb_rng_init(&rng, o->seed, (uint64_t)K << 32 | (uint64_t)e);
    int *perm = fsb_arena_alloc(a, sizeof(int) * (size_t)c->n_classes, 64);
    int *pool = NULL;
    int *srow = fsb_arena_alloc(a, sizeof(int) * (size_t)ns, 64);
    int *qrow = fsb_arena_alloc(a, sizeof(int) * (size_t)nq, 64);
    int *slab = fsb_arena_alloc(a, sizeof(int) * (size_t)ns, 64);
    int *pred = fsb_arena_alloc(a, sizeof(int) * (size_t)nq, 64);
    float *sf = fsb_arena_floats(a, (size_t)ns * dim);
    float *qf = fsb_arena_floats(a, (size_t)nq * dim);
    if (!perm || !srow || !qrow || !slab || !pred || !sf || !qf) {
        st = FSB_ENOMEM;
        goto done;
    }
    /* classes without replacement, then shot + query images of each without replacement
     * (partial Fisher-Yates); support and query class-major, labels in draw order */
    for (int i = 0; i < c->n_classes; i++)
        perm[i] = i;
    for (int i = 0; i < way; i++) {
        int j = i + (int)fsb_rng_below(&rng, (uint32_t)(c->n_classes - i));
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    size_t pmark = fsb_arena_mark(a);
    for (int k = 0; k < way; k++) {
        int cls = perm[k], cnt = c->class_count[cls], need = K + o->query;
        fsb_arena_reset_to(a, pmark);
        pool = fsb_arena_alloc(a, sizeof(int) * (size_t)cnt, 64);
        if (!pool) {
            st = FSB_ENOMEM;
            goto done;
        }
        memcpy(pool, c->rows + c->class_start[cls], sizeof(int) * (size_t)cnt);
        for (int i = 0; i < need; i++) {
            int j = i + (int)fsb_rng_below(&rng, (uint32_t)(cnt - i));
            int tmp = pool[i];
            pool[i] = pool[j];
            pool[j] = tmp;
        }
        for (int i = 0; i < K; i++) {
            srow[k * K + i] = pool[i];
            slab[k * K + i] = k;
        }
        for (int i = 0; i < o->query; i++)
            qrow[k * o->query + i] = pool[K + i];
    }
    fsb_arena_reset_to(a, pmark);
    for (int i = 0; i < ns; i++)
        memcpy(sf + (size_t)i * dim, c->feat + (size_t)srow[i] * dim, sizeof(float) * dim);
    for (int i = 0; i < nq; i++)
        memcpy(qf + (size_t)i * dim, c->feat + (size_t)qrow[i] * dim, sizeof(float) * dim);
    fsb_episode_view ep = {.episode = e,
                           .way = way,
                           .shot = K,
                           .query = o->query,
                           .n_support = ns,
                           .n_query = nq,
                           .dim = dim,
                           .support_feat = sf,
                           .query_feat = qf,
                           .support_labels = slab};
    for (int mi = 0; mi < o->n_methods; mi++) {
        fsb_method_stats stats = {0, 0};
        fsb_rng mrng;
        fsb_rng_init(&mrng, o->seed ^ 0x9e3779b97f4a7c15ULL, (uint64_t)K << 32 | (uint64_t)e);
        st = c->m[mi]->run(c->m[mi], &c->cfg[mi], &ep, a, &mrng, pred, &stats);
        if (st) goto done;
        int ok = 0;
        for (int q = 0; q < nq; q++)
            ok += pred[q] == q / o->query;
        size_t ti = (size_t)mi * o->n_shots * o->episodes + (size_t)t;
        c->correct[ti] = ok;
        c->ms[2 * ti] = (float)stats.fit_ms;
        c->ms[2 * ti + 1] = (float)stats.predict_ms;
        if (c->pred) memcpy(c->pred + ti * nq, pred, sizeof(int) * (size_t)nq);
    }
    if (c->sup_rows) {
        memcpy(c->sup_rows[s] + (size_t)e * ns, srow, sizeof(int) * (size_t)ns);
        memcpy(c->qry_rows + (size_t)t * nq, qrow, sizeof(int) * (size_t)nq);
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

int fsb_perf_methods(const fsb_mperf_options *o, fsb_mperf_result *res)
{
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    perf_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    memset(res, 0, sizeof *res);
    labelled_row *lr = NULL;
    int *class_start = NULL, *class_count = NULL, *rows = NULL;
    float *mean = NULL;
    fsb_pool *pool = NULL;
    int threads = 0, st;
    if (o->episodes < 1 || o->n_shots < 1 || o->n_shots > FSB_MPERF_MAX_SHOTS || o->way < 1 ||
        o->query < 1 || o->n_methods < 1 || o->n_methods > FSB_MPERF_MAX_METHODS)
        return fsb_error(FSB_EINVAL, "perf-methods: bad options");
    if ((st = fsb_tensorfile_load(&tf, o->features))) return st;
    const fsb_tensor *ft = fsb_tensorfile_get(&tf, "features");
    const fsb_tensor *lt = fsb_tensorfile_get(&tf, "labels");
    if (!ft || ft->dtype != FSB_F32 || ft->ndim != 2 || ft->dims[0] < 1 || ft->dims[1] < 1 ||
        ft->dims[0] > INT32_MAX || ft->dims[1] > 1000000) {
        st = fsb_error(FSB_EFORMAT, "%s: needs a tensor 'features' of float32 [N, dim]",
                       o->features);
        goto done;
    }
    const int n = (int)ft->dims[0], dim = (int)ft->dims[1];
    const int64_t *labels;
    if ((st = fsb_tensorfile_get_i64(&tf, o->features, "labels", (size_t)n, &labels))) goto done;
    (void)lt;
    /* classes: distinct labels ascending; rows of a class ascending */
    lr = malloc(sizeof *lr * (size_t)n);
    rows = malloc(sizeof *rows * (size_t)n);
    class_start = malloc(sizeof *class_start * (size_t)n);
    class_count = malloc(sizeof *class_count * (size_t)n);
    mean = calloc((size_t)dim, sizeof *mean);
    if (!lr || !rows || !class_start || !class_count || !mean) {
        st = fsb_error(FSB_ENOMEM, "%s: out of memory", o->features);
        goto done;
    }
    for (int i = 0; i < n; i++)
        lr[i] = (labelled_row){labels[i], i};
    qsort(lr, (size_t)n, sizeof *lr, cmp_lr);
    int nc = 0, min_count = n;
    for (int i = 0; i < n; i++) {
        rows[i] = lr[i].row;
        if (i == 0 || lr[i].label != lr[i - 1].label) {
            class_start[nc] = i;
            class_count[nc] = 0;
            nc++;
        }
        class_count[nc - 1]++;
    }
    for (int k = 0; k < nc; k++)
        if (class_count[k] < min_count) min_count = class_count[k];
    int max_shot = o->shots[o->n_shots - 1];
    for (int s = 0; s < o->n_shots; s++)
        if (o->shots[s] > max_shot) max_shot = o->shots[s];
    if (o->way > nc || max_shot + o->query > min_count) {
        st = fsb_error(FSB_EINVAL,
                       "%s: %d classes with at least %d rows each cannot give %d-way episodes "
                       "with %d + %d images per class",
                       o->features, nc, min_count, o->way, max_shot, o->query);
        goto done;
    }
    /* the CL2N base mean: the file's, else the mean of every feature (double sums) */
    const fsb_tensor *bm = fsb_tensorfile_get(&tf, "base_mean");
    if (bm) {
        const float *p;
        if ((st = fsb_tensorfile_get_f32(&tf, o->features, "base_mean", (size_t)dim, &p)))
            goto done;
        memcpy(mean, p, sizeof(float) * dim);
        res->base_mean_from_file = 1;
    } else {
        for (int j = 0; j < dim; j++) {
            double sum = 0;
            for (int i = 0; i < n; i++)
                sum += ((const float *)ft->data)[(size_t)i * dim + j];
            mean[j] = (float)(sum / n);
        }
    }
    c.feat = ft->data;
    c.dim = dim;
    c.n_classes = nc;
    c.class_start = class_start;
    c.class_count = class_count;
    c.rows = rows;
    size_t scratch = 0;
    for (int mi = 0; mi < o->n_methods; mi++) {
        if (!(c.m[mi] = fsb_method_find(o->methods[mi]))) {
            st = fsb_error_wrap(FSB_EINVAL, "--methods");
            goto done;
        }
        if (!(c.m[mi]->needs & FSB_NEEDS_FEATURES) || (c.m[mi]->needs & FSB_NEEDS_IMAGES)) {
            st = fsb_error(FSB_EINVAL, "--methods: %s needs images, not only features",
                           c.m[mi]->name);
            goto done;
        }
        fsb_method_config_default(&c.cfg[mi], c.m[mi]);
        if (o->norm >= 0) c.cfg[mi].norm = (fsb_norm)o->norm;
        c.cfg[mi].C = o->C;
        c.cfg[mi].eps = o->eps;
        c.cfg[mi].base_mean = mean;
        c.cfg[mi].base_mean_dim = dim;
        size_t need = c.m[mi]->scratch(o->way, max_shot, o->query, dim);
        if (need > scratch) scratch = need;
    }
    int max_count = 0;
    for (int k = 0; k < nc; k++)
        if (class_count[k] > max_count) max_count = class_count[k];
    /* perf_task's own buffers: gathered features, class and row pools, rows, labels, pred */
    scratch += sizeof(float) * (size_t)dim * o->way * (max_shot + o->query) +
               sizeof(int) * ((size_t)nc + (size_t)max_count + 2 * (size_t)o->way * max_shot +
                              2 * (size_t)o->way * o->query) +
               64 * 16;
    const int tasks = o->n_shots * o->episodes;
    fsb_blas_set_threads(1);
    if ((st = fsb_pool_create(&pool, o->threads))) goto done;
    threads = fsb_pool_size(pool);
    c.arenas = calloc((size_t)threads, sizeof *c.arenas);
    c.msg = calloc((size_t)threads, sizeof *c.msg);
    c.msg_task = malloc(sizeof *c.msg_task * (size_t)threads);
    c.correct = malloc(sizeof *c.correct * (size_t)tasks * o->n_methods);
    c.ms = malloc(sizeof *c.ms * 2 * (size_t)tasks * o->n_methods);
    c.status = calloc((size_t)tasks, sizeof *c.status);
    if (!c.arenas || !c.msg || !c.msg_task || !c.correct || !c.ms || !c.status) {
        st = fsb_error(FSB_ENOMEM, "perf-methods: out of memory");
        goto done;
    }
    for (int w = 0; w < threads; w++) {
        c.msg_task[w] = -1;
        if ((st = fsb_arena_init(&c.arenas[w], scratch + ((size_t)16 << 20)))) goto done;
    }
    const int nq = o->way * o->query;
    if (o->dump) {
        c.pred = malloc(sizeof *c.pred * (size_t)tasks * o->n_methods * nq);
        c.qry_rows = malloc(sizeof *c.qry_rows * (size_t)tasks * nq);
        c.sup_rows = calloc((size_t)o->n_shots, sizeof *c.sup_rows);
        if (!c.pred || !c.qry_rows || !c.sup_rows) {
            st = fsb_error(FSB_ENOMEM, "--dump: out of memory");
            goto done;
        }
        for (int s = 0; s < o->n_shots; s++)
            if (!(c.sup_rows[s] =
                      malloc(sizeof(int) * (size_t)o->episodes * o->way * o->shots[s]))) {
                st = fsb_error(FSB_ENOMEM, "--dump: out of memory");
                goto done;
            }
    }
    double t0 = fsb_now();
    fsb_pool_run(pool, tasks, perf_task, &c);
    res->wall_s = fsb_now() - t0;
    int first = -1, fw = -1;
    for (int w = 0; w < threads; w++)
        if (c.msg_task[w] >= 0 && (first < 0 || c.msg_task[w] < first)) {
            first = c.msg_task[w];
            fw = w;
        }
    if (first >= 0) {
        st = fsb_error(c.status[first], "episode %d of shot %d: %s", first % o->episodes,
                       o->shots[first / o->episodes], c.msg[fw]);
        goto done;
    }
    double *acc = malloc(sizeof *acc * (size_t)o->episodes);
    if (!acc) {
        st = fsb_error(FSB_ENOMEM, "perf-methods: out of memory");
        goto done;
    }
    for (int mi = 0; mi < o->n_methods; mi++)
        for (int s = 0; s < o->n_shots; s++) {
            fsb_mperf_cell *cell = &res->cell[mi][s];
            double fit = 0, prd = 0, sd;
            for (int e = 0; e < o->episodes; e++) {
                size_t ti = (size_t)mi * tasks + (size_t)s * o->episodes + e;
                acc[e] = (double)c.correct[ti] / nq;
                fit += c.ms[2 * ti];
                prd += c.ms[2 * ti + 1];
            }
            cell->fit_ms = fit / o->episodes;
            cell->predict_ms = prd / o->episodes;
            fsb_stats_mean_ci(acc, (size_t)o->episodes, &cell->accuracy, &sd, &cell->ci95);
        }
    free(acc);
    res->n_features = n;
    res->dim = dim;
    res->n_classes = nc;
    res->threads = threads;
    if (o->dump && (st = write_dump(&c, o->dump))) goto done;
    if (o->report_dir) st = write_report(&c, o->report_dir, res);
done:
    fsb_pool_destroy(pool);
    for (int w = 0; c.arenas && w < threads; w++)
        fsb_arena_free(&c.arenas[w]);
    free(c.arenas);
    free(c.msg);
    free(c.msg_task);
    free(c.correct);
    free(c.ms);
    free(c.status);
    free(c.pred);
    free(c.qry_rows);
    for (int s = 0; c.sup_rows && s < o->n_shots; s++)
        free(c.sup_rows[s]);
    free(c.sup_rows);
    free(lr);
    free(rows);
    free(class_start);
    free(class_count);
    free(mean);
    fsb_tensorfile_free(&tf);
    return st;
}
