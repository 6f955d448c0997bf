/* linear_models.c - svm and logreg: liblinear one-vs-rest linear classifiers on normalised
 * frozen features (protocol.md "SVM"). Only the primal trust-region Newton solvers are used
 * (L2R_L2LOSS_SVC = 2, L2R_LR = 0): liblinear's dual coordinate-descent solvers shuffle with
 * rand(), whose global state would make results depend on thread scheduling. The bias is an
 * extra constant feature of value cfg->bias (regularised, like sklearn's intercept_scaling).
 * With fewer support examples than features the problem is solved exactly in the span of
 * the support rows (n-dimensional). Predictions are computed here from the weights so that
 * ties go to the lowest class.
 */
#include "fsb/method.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <linear.h>
#include <math.h>
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
    size_t ns = (size_t)way * shot, nq = (size_t)way * query, D = (size_t)dim + 1;
    size_t cols = D > ns ? D : ns;
    return sizeof(float) * (size_t)dim * (ns + nq) + sizeof(struct feature_node) * ns * (cols + 1) +
           sizeof(void *) * ns + sizeof(double) * (ns + 2 * (size_t)way) + sizeof(int) * way +
           sizeof(double) * (ns * D + ns * ns + (size_t)way * D + D) + 2048;
}

/* Orthonormal basis of the span of the n rows of xa (n x D, double), n < D, by modified
 * Gram-Schmidt with one re-orthogonalisation pass: q (r x D) and coefficients z (n x n,
 * row i = xa_i in the basis, zero beyond the rank reached at row i). Returns r. Rows whose
 * residual is below 1e-9 of their norm add no direction. */
static int row_basis(double *q, double *z, double *v, const double *xa, int n, int D)
{
    int r = 0;
    memset(z, 0, sizeof(double) * (size_t)n * n);
    for (int i = 0; i < n; i++) {
        const double *x = xa + (size_t)i * D;
        double orig = 0.0;
        for (int j = 0; j < D; j++) {
            v[j] = x[j];
            orig += x[j] * x[j];
        }
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < r; k++) {
                const double *qk = q + (size_t)k * D;
                double c = 0.0;
                for (int j = 0; j < D; j++)
                    c += qk[j] * v[j];
                for (int j = 0; j < D; j++)
                    v[j] -= c * qk[j];
                z[(size_t)i * n + k] += c;
            }
        double nrm = 0.0;
        for (int j = 0; j < D; j++)
            nrm += v[j] * v[j];
        nrm = sqrt(nrm);
        if (nrm > 1e-9 * sqrt(orig)) {
            double *qr = q + (size_t)r * D;
            for (int j = 0; j < D; j++)
                qr[j] = v[j] / nrm;
            z[(size_t)i * n + r] = nrm;
            r++;
        }
    }
    return r;
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
    const int has_bias = cfg->bias >= 0, D = dim + has_bias;
    const int subspace = 2 * ns <= D, cols = subspace ? ns : D; /* worth its QR cost */
    const int nr_w = way == 2 ? 1 : way;
    double t0 = fsb_now(), t1;
    float *sup = fsb_arena_floats(scratch, (size_t)ns * dim);
    float *qry = fsb_arena_floats(scratch, (size_t)ep->n_query * dim);
    struct feature_node *nodes =
        fsb_arena_alloc(scratch, sizeof *nodes * (size_t)ns * (cols + 1), 64);
    struct feature_node **rows = fsb_arena_alloc(scratch, sizeof *rows * (size_t)ns, 64);
    double *y = fsb_arena_alloc(scratch, sizeof *y * (size_t)ns, 64);
    double *score = fsb_arena_alloc(scratch, sizeof *score * (size_t)way * 2, 64);
    int *cls = fsb_arena_alloc(scratch, sizeof *cls * (size_t)way, 64);
    double *xa = fsb_arena_alloc(scratch, sizeof *xa * (size_t)ns * D, 64);
    double *w = fsb_arena_alloc(scratch, sizeof *w * (size_t)way * D, 64);
    double *q = NULL, *z = NULL, *v = NULL;
    if (subspace) {
        q = fsb_arena_alloc(scratch, sizeof *q * (size_t)ns * D, 64);
        z = fsb_arena_alloc(scratch, sizeof *z * (size_t)ns * ns, 64);
        v = fsb_arena_alloc(scratch, sizeof *v * (size_t)D, 64);
    }
    if (!sup || !qry || !nodes || !rows || !y || !score || !cls || !xa || !w ||
        (subspace && (!q || !z || !v))) {
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
    /* rows [x, bias]: the bias is a regularised constant feature (sklearn's intercept_scaling) */
    for (int i = 0; i < ns; i++) {
        for (int j = 0; j < dim; j++)
            xa[(size_t)i * D + j] = sup[(size_t)i * dim + j];
        if (has_bias) xa[(size_t)i * D + dim] = cfg->bias;
        y[i] = ep->support_labels[i];
    }
    /* Far fewer examples than features: w = Q^T u lies in the rows' span (representer theorem),
     * ||w|| = ||u|| and X w = Z u, so the same problem is solved exactly on the n x r
     * coefficients Z instead of the n x D rows; w is mapped back afterwards. */
    const double *design = xa;
    int n_feat = D;
    if (subspace) {
        n_feat = row_basis(q, z, v, xa, ns, D);
        design = z;
    }
    const int stride = subspace ? ns : D;
    struct feature_node *p = nodes;
    for (int i = 0; i < ns; i++) {
        rows[i] = p;
        const double *x = design + (size_t)i * stride;
        for (int j = 0; j < n_feat; j++)
            if (x[j] != 0.0) *p++ = (struct feature_node){j + 1, x[j]};
        *p++ = (struct feature_node){-1, 0.0};
    }
    struct problem prob = {.l = ns, .n = n_feat, .y = y, .x = rows, .bias = -1.0};
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
    /* w[k] (D doubles per scored class): liblinear's weights are [n_feat][nr_w]; a two-class
     * model keeps one vector scoring label[0] positive */
    for (int k = 0; k < nr_w; k++) {
        double *wk = w + (size_t)k * D;
        if (subspace) {
            memset(wk, 0, sizeof(double) * (size_t)D);
            for (int t = 0; t < n_feat; t++) {
                const double u = model->w[(size_t)t * nr_w + k];
                const double *qt = q + (size_t)t * D;
                for (int j = 0; j < D; j++)
                    wk[j] += u * qt[j];
            }
        } else {
            for (int j = 0; j < D; j++)
                wk[j] = model->w[(size_t)j * nr_w + k];
        }
    }
    for (int k = 0; k < way; k++)
        cls[k] = model->label[k];
    t1 = fsb_now();
    for (int qi = 0; qi < ep->n_query; qi++) {
        const float *x = qry + (size_t)qi * dim;
        for (int k = 0; k < nr_w; k++) {
            const double *wk = w + (size_t)k * D;
            double d = 0.0;
            for (int j = 0; j < dim; j++)
                d += wk[j] * x[j];
            score[k] = has_bias ? d + wk[dim] * cfg->bias : d;
        }
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
        pred[qi] = best;
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
