/* linear_models.c - svm and logreg: liblinear one-vs-rest linear classifiers on normalised
 * frozen features (protocol.md "SVM"). Only the primal trust-region Newton solvers are used
 * (L2R_L2LOSS_SVC = 2, L2R_LR = 0): liblinear's dual coordinate-descent solvers shuffle with
 * rand(), whose global state would make results depend on thread scheduling. The bias is an
 * extra constant feature of value cfg->bias (regularised, like sklearn's intercept_scaling).
 * Predictions are computed here from the weights so that ties go to the lowest class.
 */
#include "fsb/method.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <linear.h>
#include <pthread.h>
#include <string.h>

static void print_nothing(const char *s)
{
    (void)s;
}

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

/* liblinear prints progress to stdout through one global hook: silence it once. */
static void quiet_liblinear(void)
{
    set_print_string_function(print_nothing);
}

size_t fsb_method_linear_scratch(int way, int shot, int query, int dim)
{
    size_t ns = (size_t)way * shot, nq = (size_t)way * query;
    return sizeof(float) * (size_t)dim * (ns + nq) + sizeof(struct feature_node) * ns * (dim + 2) +
           sizeof(void *) * ns + sizeof(double) * (ns + 2 * (size_t)way) + sizeof(int) * way + 1024;
}

int fsb_method_linear_run(const fsb_method *m, const fsb_method_config *cfg,
                          const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                          fsb_method_stats *stats)
{
    int st = fsb_method_check(m, cfg, ep);
    if (st) return st;
    if (!(cfg->C > 0) || !(cfg->eps > 0))
        return fsb_error(FSB_EINVAL, "%s: C (%g) and eps (%g) must be > 0", m->name, cfg->C,
                         cfg->eps);
    pthread_once(&quiet_once, quiet_liblinear);
    size_t mark = fsb_arena_mark(scratch);
    struct model *model = NULL;
    const int dim = ep->dim, ns = ep->n_support, way = ep->way;
    const int has_bias = cfg->bias >= 0;
    double t0 = fsb_now(), t1;
    float *sup = fsb_arena_floats(scratch, (size_t)ns * dim);
    float *qry = fsb_arena_floats(scratch, (size_t)ep->n_query * dim);
    struct feature_node *nodes =
        fsb_arena_alloc(scratch, sizeof *nodes * (size_t)ns * (dim + 2), 64);
    struct feature_node **rows = fsb_arena_alloc(scratch, sizeof *rows * (size_t)ns, 64);
    double *y = fsb_arena_alloc(scratch, sizeof *y * (size_t)ns, 64);
    double *score = fsb_arena_alloc(scratch, sizeof *score * (size_t)way * 2, 64);
    int *cls = fsb_arena_alloc(scratch, sizeof *cls * (size_t)way, 64);
    if (!sup || !qry || !nodes || !rows || !y || !score || !cls) {
        st = fsb_error_wrap(FSB_ENOMEM, "%s: episode scratch", m->name);
        goto done;
    }
    fsb_features_normalise(sup, ep->support_feat, ns, dim, cfg->norm, cfg->base_mean);
    fsb_features_normalise(qry, ep->query_feat, ep->n_query, dim, cfg->norm, cfg->base_mean);
    if (way == 1) { /* nothing to separate */
        t1 = fsb_now();
        memset(pred, 0, sizeof(int) * (size_t)ep->n_query);
        goto timing;
    }
    /* the support set as liblinear's sparse rows: nonzero features, bias, terminator */
    struct feature_node *p = nodes;
    for (int i = 0; i < ns; i++) {
        rows[i] = p;
        const float *x = sup + (size_t)i * dim;
        for (int j = 0; j < dim; j++)
            if (x[j] != 0.0f) *p++ = (struct feature_node){j + 1, x[j]};
        if (has_bias) *p++ = (struct feature_node){dim + 1, cfg->bias};
        *p++ = (struct feature_node){-1, 0.0};
        y[i] = ep->support_labels[i];
    }
    struct problem prob = {
        .l = ns, .n = dim + has_bias, .y = y, .x = rows, .bias = has_bias ? cfg->bias : -1.0};
    struct parameter param = {.solver_type = m->variant,
                              .eps = cfg->eps,
                              .C = cfg->C,
                              .nr_weight = 0,
                              .weight_label = NULL,
                              .weight = NULL,
                              .p = 0.1,
                              .init_sol = NULL};
    const char *bad = check_parameter(&prob, &param);
    if (bad) {
        st = fsb_error(FSB_EINVAL, "%s: liblinear rejected the parameters: %s", m->name, bad);
        goto done;
    }
    model = train(&prob, &param);
    if (!model || model->nr_class != way) {
        st = fsb_error(FSB_EINTERNAL, "%s: episode %lld: liblinear training failed", m->name,
                       (long long)ep->episode);
        goto done;
    }
    t1 = fsb_now();
    /* decision values from the weights: liblinear's w is [n_features (+ bias)][nr_w];
     * a two-class model keeps one vector scoring label[0] positive */
    const int nr_w = way == 2 ? 1 : way;
    for (int k = 0; k < way; k++)
        cls[k] = model->label[k];
    for (int q = 0; q < ep->n_query; q++) {
        const float *x = qry + (size_t)q * dim;
        /* w row by row (contiguous), each class's sum still in feature order */
        for (int k = 0; k < nr_w; k++)
            score[k] = 0.0;
        for (int j = 0; j < dim; j++) {
            const double *wj = model->w + (size_t)j * nr_w;
            const double xj = x[j];
            for (int k = 0; k < nr_w; k++)
                score[k] += wj[k] * xj;
        }
        if (has_bias)
            for (int k = 0; k < nr_w; k++)
                score[k] += model->w[(size_t)dim * nr_w + k] * cfg->bias;
        double *by_class = score + way;
        if (nr_w == 1) {
            by_class[cls[0]] = score[0];
            by_class[cls[1]] = -score[0];
        } else {
            for (int k = 0; k < way; k++)
                by_class[cls[k]] = score[k];
        }
        int best = 0;
        for (int c = 1; c < way; c++)
            if (by_class[c] > by_class[best]) best = c;
        pred[q] = best;
    }
timing:
    if (stats) {
        stats->fit_ms = (t1 - t0) * 1e3;
        stats->predict_ms = (fsb_now() - t1) * 1e3;
    }
done:
    if (model) free_and_destroy_model(&model);
    fsb_arena_reset_to(scratch, mark);
    return st;
}
