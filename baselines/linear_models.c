/* linear_models.c - svm and logreg: liblinear one-vs-rest linear classifiers on normalised
 * frozen features (docs/protocol.md "SVM"). Only the primal trust-region Newton solvers are used
 * (L2R_L2LOSS_SVC = 2, L2R_LR = 0): liblinear's dual coordinate-descent solvers shuffle with
 * rand(), whose global state would make results depend on thread scheduling. The bias is an
 * extra constant feature of value cfg->bias (regularised, like sklearn's intercept_scaling).
 * With far fewer support examples than features the same problem is solved in the span of
 * the support rows (see span_basis). Predictions are computed here from the weights so that
 * ties go to the lowest class.
 */
#include "fsb/blas.h"
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
    return sizeof(float) * ((size_t)dim * (ns + nq) + ns * D + ns * ns) +
           sizeof(struct feature_node) * ns * (cols + 1) + sizeof(void *) * ns +
           sizeof(double) * (ns + 2 * (size_t)way + ns * ns + 2 * ns + (size_t)way * D) +
           sizeof(int) * ((size_t)way + ns) + 16 * 64;
}

/* Span of the support rows. With X (n x D) the rows [x, bias] and K = X X^T = L L^T a
 * pivoted Cholesky factorisation (L n x r, pivot rows B, L_B = L[B] lower triangular), the
 * weights w = X_B^T L_B^-T u satisfy ||w|| = ||u|| and X w = L u: the L2-regularised
 * problem over w in the rows' span (where its optimum lies: representer theorem) is the same
 * problem over u with the n x r design L. Pivoting stops at residual diagonal <= 1e-9 of the
 * largest: such rows are (numerically) combinations of the pivots. Ties pick the lowest row.
 * k: [n][n] float Gram (read), l: [n][n] (written, row = example, column = pivot step),
 * d: [n] scratch, piv: [n] pivot rows in order. Returns r. */
static int span_basis(double *l, int *piv, double *d, const float *k, int n)
{
    double dmax = 0.0;
    for (int i = 0; i < n; i++) {
        piv[i] = i;
        d[i] = k[(size_t)i * n + i];
        if (d[i] > dmax) dmax = d[i];
    }
    memset(l, 0, sizeof(double) * (size_t)n * n);
    int r = 0;
    for (; r < n; r++) {
        int p = r;
        for (int i = r + 1; i < n; i++)
            if (d[piv[i]] > d[piv[p]] || (d[piv[i]] == d[piv[p]] && piv[i] < piv[p])) p = i;
        if (!(d[piv[p]] > 1e-9 * dmax)) break;
        int t = piv[r];
        piv[r] = piv[p];
        piv[p] = t;
        const int j = piv[r];
        const double ljj = sqrt(d[j]);
        l[(size_t)j * n + r] = ljj;
        for (int a = r + 1; a < n; a++) {
            const int i = piv[a];
            double s = k[(size_t)i * n + j];
            for (int c = 0; c < r; c++)
                s -= l[(size_t)i * n + c] * l[(size_t)j * n + c];
            l[(size_t)i * n + r] = s / ljj;
            d[i] -= (s / ljj) * (s / ljj);
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
    const int subspace = 2 * ns <= D, cols = subspace ? ns : D; /* worth the Gram's cost */
    const int nr_w = way == 2 ? 1 : way;
    double t0 = fsb_now(), t1;
    float *sup = fsb_arena_floats(scratch, (size_t)ns * dim);
    float *qry = fsb_arena_floats(scratch, (size_t)ep->n_query * dim);
    float *xa = fsb_arena_floats(scratch, (size_t)ns * D);
    struct feature_node *nodes =
        fsb_arena_alloc(scratch, sizeof *nodes * (size_t)ns * (cols + 1), 64);
    struct feature_node **rows = fsb_arena_alloc(scratch, sizeof *rows * (size_t)ns, 64);
    double *y = fsb_arena_alloc(scratch, sizeof *y * (size_t)ns, 64);
    double *score = fsb_arena_alloc(scratch, sizeof *score * (size_t)way * 2, 64);
    int *cls = fsb_arena_alloc(scratch, sizeof *cls * (size_t)way, 64);
    double *w = fsb_arena_alloc(scratch, sizeof *w * (size_t)way * D, 64);
    float *gram = NULL;
    double *l = NULL, *tmp = NULL;
    int *piv = NULL;
    if (subspace) {
        gram = fsb_arena_floats(scratch, (size_t)ns * ns);
        l = fsb_arena_alloc(scratch, sizeof *l * (size_t)ns * ns, 64);
        tmp = fsb_arena_alloc(scratch, sizeof *tmp * 2 * (size_t)ns, 64);
        piv = fsb_arena_alloc(scratch, sizeof *piv * (size_t)ns, 64);
    }
    if (!sup || !qry || !xa || !nodes || !rows || !y || !score || !cls || !w ||
        (subspace && (!gram || !l || !tmp || !piv))) {
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
        memcpy(xa + (size_t)i * D, sup + (size_t)i * dim, sizeof(float) * (size_t)dim);
        if (has_bias) xa[(size_t)i * D + dim] = (float)cfg->bias;
        y[i] = ep->support_labels[i];
    }
    int n_feat = D;
    if (subspace) {
        fsb_sgemm(0, 1, ns, ns, D, 1.0f, xa, D, xa, D, 0.0f, gram, ns);
        n_feat = span_basis(l, piv, tmp, gram, ns);
    }
    /* liblinear's sparse rows: the nonzero entries of each design row, then a terminator */
    struct feature_node *p = nodes;
    for (int i = 0; i < ns; i++) {
        rows[i] = p;
        for (int j = 0; j < n_feat; j++) {
            double v = subspace ? l[(size_t)i * ns + j] : xa[(size_t)i * D + j];
            if (v != 0.0) *p++ = (struct feature_node){j + 1, v};
        }
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
    /* w[k] (D doubles per scored class) from liblinear's [n_feat][nr_w] weights; a two-class
     * model keeps one vector scoring label[0] positive */
    for (int k = 0; k < nr_w; k++) {
        double *wk = w + (size_t)k * D;
        if (!subspace) {
            for (int j = 0; j < D; j++)
                wk[j] = model->w[(size_t)j * nr_w + k];
            continue;
        }
        /* alpha = L_B^-T u (back substitution), w = X_B^T alpha */
        double *alpha = tmp;
        for (int a = n_feat - 1; a >= 0; a--) {
            double s = model->w[(size_t)a * nr_w + k];
            for (int b = a + 1; b < n_feat; b++)
                s -= l[(size_t)piv[b] * ns + a] * alpha[b];
            alpha[a] = s / l[(size_t)piv[a] * ns + a];
        }
        memset(wk, 0, sizeof(double) * (size_t)D);
        for (int a = 0; a < n_feat; a++) {
            const float *xb = xa + (size_t)piv[a] * D;
            for (int j = 0; j < D; j++)
                wk[j] += alpha[a] * xb[j];
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
