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

/* One episode's linear problem: its shapes and its buffers (from the scratch arena). */
typedef struct linear_episode {
    int dim;                    /* feature dimension */
    int D;                      /* columns of a design row: dim + has_bias */
    int ns;                     /* support examples */
    int way;                    /* classes */
    int nr_w;                   /* weight vectors liblinear keeps: 1 for two classes, else way */
    int has_bias;               /* 1: the bias is a constant extra feature (cfg->bias >= 0) */
    int subspace;               /* 1: solved in the span of the support rows (span_basis) */
    int n_feat;                 /* columns liblinear sees: D, or the span's rank */
    float *sup;                 /* [ns][dim] normalised support features */
    float *qry;                 /* [n_query][dim] normalised query features */
    float *xa;                  /* [ns][D] design rows [x, bias] */
    struct feature_node *nodes; /* [ns][cols + 1] liblinear's sparse rows */
    struct feature_node **rows; /* [ns] their starts */
    double *y;                  /* [ns] labels */
    double *score;              /* [2 * way] decision values by weight vector, then by class */
    int *cls;                   /* [way] class of each weight vector */
    double *w;                  /* [way][D] weights in feature space */
    float *gram;                /* subspace: [ns][ns] Gram matrix of the design rows */
    double *l;                  /* subspace: [ns][ns] its pivoted Cholesky factor */
    double *tmp;                /* subspace: [2 * ns] span_basis scratch, then alpha */
    int *piv;                   /* subspace: [ns] pivot rows */
} linear_episode;

/* Shapes and buffers of the episode; FSB_ENOMEM (with the method's name) when the arena is
 * too small. */
static int linear_alloc(linear_episode *le, const fsb_method *m, const fsb_method_config *cfg,
                        const fsb_episode_view *ep, fsb_arena *scratch)
{
    memset(le, 0, sizeof *le);
    le->dim = ep->dim;
    le->ns = ep->n_support;
    le->way = ep->way;
    le->has_bias = cfg->bias >= 0;
    le->D = le->dim + le->has_bias;
    le->subspace = 2 * le->ns <= le->D; /* worth the Gram's cost */
    le->nr_w = le->way == 2 ? 1 : le->way;
    const size_t ns = (size_t)le->ns, cols = le->subspace ? ns : (size_t)le->D;
    le->sup = fsb_arena_floats(scratch, ns * le->dim);
    le->qry = fsb_arena_floats(scratch, (size_t)ep->n_query * le->dim);
    le->xa = fsb_arena_floats(scratch, ns * le->D);
    le->nodes = fsb_arena_alloc(scratch, sizeof *le->nodes * ns * (cols + 1), 64);
    le->rows = fsb_arena_alloc(scratch, sizeof *le->rows * ns, 64);
    le->y = fsb_arena_alloc(scratch, sizeof *le->y * ns, 64);
    le->score = fsb_arena_alloc(scratch, sizeof *le->score * (size_t)le->way * 2, 64);
    le->cls = fsb_arena_alloc(scratch, sizeof *le->cls * (size_t)le->way, 64);
    le->w = fsb_arena_alloc(scratch, sizeof *le->w * (size_t)le->way * le->D, 64);
    if (le->subspace) {
        le->gram = fsb_arena_floats(scratch, ns * ns);
        le->l = fsb_arena_alloc(scratch, sizeof *le->l * ns * ns, 64);
        le->tmp = fsb_arena_alloc(scratch, sizeof *le->tmp * 2 * ns, 64);
        le->piv = fsb_arena_alloc(scratch, sizeof *le->piv * ns, 64);
    }
    if (!le->sup || !le->qry || !le->xa || !le->nodes || !le->rows || !le->y || !le->score ||
        !le->cls || !le->w || (le->subspace && (!le->gram || !le->l || !le->tmp || !le->piv)))
        return fsb_error_wrap(FSB_ENOMEM, "%s: episode scratch", m->name);
    return FSB_OK;
}

/* liblinear's problem: design rows [x, bias] (the bias is a regularised constant feature,
 * sklearn's intercept_scaling), or their coordinates in the span of the support rows; then
 * the nonzero entries of each row and a terminator. Sets le->n_feat. */
static void linear_design(linear_episode *le, const fsb_episode_view *ep, double bias)
{
    const int ns = le->ns, dim = le->dim, D = le->D;
    for (int i = 0; i < ns; i++) {
        memcpy(le->xa + (size_t)i * D, le->sup + (size_t)i * dim, sizeof(float) * (size_t)dim);
        if (le->has_bias) le->xa[(size_t)i * D + dim] = (float)bias;
        le->y[i] = ep->support_labels[i];
    }
    le->n_feat = D;
    if (le->subspace) {
        fsb_sgemm(0, 1, ns, ns, D, 1.0f, le->xa, D, le->xa, D, 0.0f, le->gram, ns);
        le->n_feat = span_basis(le->l, le->piv, le->tmp, le->gram, ns);
    }
    struct feature_node *p = le->nodes;
    for (int i = 0; i < ns; i++) {
        le->rows[i] = p;
        for (int j = 0; j < le->n_feat; j++) {
            double v = le->subspace ? le->l[(size_t)i * ns + j] : le->xa[(size_t)i * D + j];
            if (v != 0.0) *p++ = (struct feature_node){j + 1, v};
        }
        *p++ = (struct feature_node){-1, 0.0};
    }
}

/* w[k] (D doubles per scored class) from liblinear's [n_feat][nr_w] weights; a two-class
 * model keeps one vector scoring label[0] positive. */
static void linear_weights(linear_episode *le, const struct model *model)
{
    const int ns = le->ns, D = le->D, n_feat = le->n_feat, nr_w = le->nr_w;
    for (int k = 0; k < nr_w; k++) {
        double *wk = le->w + (size_t)k * D;
        if (!le->subspace) {
            for (int j = 0; j < D; j++)
                wk[j] = model->w[(size_t)j * nr_w + k];
            continue;
        }
        /* alpha = L_B^-T u (back substitution), w = X_B^T alpha */
        double *alpha = le->tmp;
        for (int a = n_feat - 1; a >= 0; a--) {
            double s = model->w[(size_t)a * nr_w + k];
            for (int b = a + 1; b < n_feat; b++)
                s -= le->l[(size_t)le->piv[b] * ns + a] * alpha[b];
            alpha[a] = s / le->l[(size_t)le->piv[a] * ns + a];
        }
        memset(wk, 0, sizeof(double) * (size_t)D);
        for (int a = 0; a < n_feat; a++) {
            const float *xb = le->xa + (size_t)le->piv[a] * D;
            for (int j = 0; j < D; j++)
                wk[j] += alpha[a] * xb[j];
        }
    }
    for (int k = 0; k < le->way; k++)
        le->cls[k] = model->label[k];
}

/* pred[n_query]: the class of the largest decision value, ties to the lowest class. */
static void linear_predict(linear_episode *le, int n_query, double bias, int *pred)
{
    const int dim = le->dim, D = le->D, way = le->way, nr_w = le->nr_w;
    for (int qi = 0; qi < n_query; qi++) {
        const float *x = le->qry + (size_t)qi * dim;
        for (int k = 0; k < nr_w; k++) {
            const double *wk = le->w + (size_t)k * D;
            double d = 0.0;
            for (int j = 0; j < dim; j++)
                d += wk[j] * x[j];
            le->score[k] = le->has_bias ? d + wk[dim] * bias : d;
        }
        double *by_class = le->score + way;
        if (nr_w == 1) {
            by_class[le->cls[0]] = le->score[0];
            by_class[le->cls[1]] = -le->score[0];
        } else {
            for (int k = 0; k < way; k++)
                by_class[le->cls[k]] = le->score[k];
        }
        int best = 0;
        for (int c = 1; c < way; c++)
            if (by_class[c] > by_class[best]) best = c;
        pred[qi] = best;
    }
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
    double t0 = fsb_now(), t1;
    linear_episode le;
    if ((st = linear_alloc(&le, m, cfg, ep, scratch))) goto done;
    fsb_features_normalise(le.sup, ep->support_feat, le.ns, le.dim, cfg->norm, cfg->base_mean);
    fsb_features_normalise(le.qry, ep->query_feat, ep->n_query, le.dim, cfg->norm, cfg->base_mean);
    if (le.way == 1) { /* nothing to separate */
        t1 = fsb_now();
        memset(pred, 0, sizeof(int) * (size_t)ep->n_query);
        goto timing;
    }
    linear_design(&le, ep, cfg->bias);
    struct problem prob = {.l = le.ns, .n = le.n_feat, .y = le.y, .x = le.rows, .bias = -1.0};
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
    if (!model || model->nr_class != le.way) {
        st = fsb_error(FSB_EINTERNAL, "%s: episode %lld: liblinear training failed", m->name,
                       (long long)ep->episode);
        goto done;
    }
    linear_weights(&le, model);
    t1 = fsb_now();
    linear_predict(&le, ep->n_query, cfg->bias, pred);
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
