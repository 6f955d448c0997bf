/* refilled.c - the REFILLED stage-1 / stage-2 losses and their gradients (see
 * include/fsb/refilled.h, docs/refilled.md and docs/refilled-impl.md).
 * Invariants: every loop runs in a fixed index order (bit-reproducible); arithmetic on the
 * engine's float arrays is done in double; teacher inputs are const; gradients are added
 * with +=; arena scratch is rolled back to the caller's mark on every return path.
 */
#include "fsb/refilled.h"
#include "fsb/status.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* log(1 + e^x) without overflow or loss of precision for large |x|. */
static double softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* 1 / (1 + e^-x) without overflow for large |x|. */
static double sigmoid(double x)
{
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

static int all_finite(const float *x, size_t count, size_t *bad)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(x[i])) {
            *bad = i;
            return 0;
        }
    return 1;
}

/* ---------------------------------------------------------------------------------------
 * L2 normalisation and distances
 * ------------------------------------------------------------------------------------- */

void fsb_refilled_l2norm(double *eh, double *norms, const float *e, int n, int dim)
{
    assert(n >= 0 && dim > 0);
    for (int i = 0; i < n; i++) {
        const float *x = e + (size_t)i * dim;
        double *y = eh + (size_t)i * dim;
        double ss = 0;
        for (int j = 0; j < dim; j++)
            ss += (double)x[j] * x[j];
        double nrm = sqrt(ss);
        if (nrm < FSB_REFILLED_NORM_EPS) {
            norms[i] = 0;
            memset(y, 0, sizeof *y * dim);
            continue;
        }
        norms[i] = nrm;
        for (int j = 0; j < dim; j++)
            y[j] = x[j] / nrm;
    }
}

void fsb_refilled_l2norm_backward(float *de, const double *deh, const double *eh,
                                  const double *norms, int n, int dim)
{
    assert(n >= 0 && dim > 0);
    for (int i = 0; i < n; i++) {
        if (norms[i] == 0) continue;
        const double *g = deh + (size_t)i * dim, *y = eh + (size_t)i * dim;
        float *out = de + (size_t)i * dim;
        double dot = 0;
        for (int j = 0; j < dim; j++)
            dot += y[j] * g[j];
        for (int j = 0; j < dim; j++)
            out[j] += (float)((g[j] - y[j] * dot) / norms[i]);
    }
}

void fsb_refilled_pairdist(double *dist, const double *eh, int n, int dim)
{
    assert(n >= 0 && dim > 0);
    for (int u = 0; u < n; u++) {
        dist[(size_t)u * n + u] = 0;
        const double *x = eh + (size_t)u * dim;
        for (int v = u + 1; v < n; v++) {
            const double *y = eh + (size_t)v * dim;
            double ss = 0;
            for (int j = 0; j < dim; j++) {
                double t = x[j] - y[j];
                ss += t * t;
            }
            double d = sqrt(ss);
            dist[(size_t)u * n + v] = d;
            dist[(size_t)v * n + u] = d;
        }
    }
}

void fsb_refilled_pairdist_backward(double *deh, const double *g, const double *eh,
                                    const double *dist, int n, int dim)
{
    assert(n >= 0 && dim > 0);
    for (int u = 0; u < n; u++) {
        double *out = deh + (size_t)u * dim;
        const double *x = eh + (size_t)u * dim;
        for (int v = 0; v < n; v++) {
            double guv = g[(size_t)u * n + v], d = dist[(size_t)u * n + v];
            if (v == u || guv == 0 || d < FSB_REFILLED_NORM_EPS)
                continue; /* d -> 0 guard: the (sub)gradient is taken as 0 there */
            const double *y = eh + (size_t)v * dim;
            double s = guv / d;
            for (int j = 0; j < dim; j++)
                out[j] += s * (x[j] - y[j]);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Miners
 * ------------------------------------------------------------------------------------- */

static int is_pos(const int *labels, const int *groups, int a, int p)
{
    return a != p && labels[a] == labels[p] && (groups == NULL || groups[a] == groups[p]);
}

static int check_groups(const int *labels, const int *groups, int n)
{
    if (groups == NULL) return FSB_OK;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (groups[i] == groups[j] && labels[i] != labels[j])
                return fsb_error(FSB_EINVAL,
                                 "refilled: rows %d and %d share group %d but have labels %d "
                                 "and %d",
                                 i, j, groups[i], labels[i], labels[j]);
    return FSB_OK;
}

size_t fsb_refilled_triplet_bound(const int *labels, const int *groups, int n,
                                  fsb_refilled_miner miner)
{
    size_t total = 0;
    for (int a = 0; a < n; a++) {
        size_t pos = 0, neg = 0;
        for (int j = 0; j < n; j++) {
            pos += (size_t)is_pos(labels, groups, a, j);
            neg += (size_t)(labels[j] != labels[a]);
        }
        total += miner == FSB_MINER_FACENET ? (neg ? pos : 0) : pos * neg;
    }
    return total;
}

int fsb_refilled_mine(fsb_triplet *out, size_t cap, size_t *count, const double *dist,
                      const int *labels, const int *groups, int n, fsb_refilled_miner miner,
                      float margin)
{
    assert(n >= 0 && count != NULL);
    *count = 0;
    if (miner != FSB_MINER_SEMIHARD && miner != FSB_MINER_FACENET)
        return fsb_error(FSB_EINVAL, "refilled: unknown miner %d", (int)miner);
    if (miner == FSB_MINER_SEMIHARD && !(isfinite(margin) && margin > 0))
        return fsb_error(FSB_EINVAL, "refilled: semi-hard margin must be > 0 (got %g)",
                         (double)margin);
    int st = check_groups(labels, groups, n);
    if (st) return st;
    size_t k = 0;
    for (int a = 0; a < n; a++) {
        const double *da = dist + (size_t)a * n;
        for (int p = 0; p < n; p++) {
            if (!is_pos(labels, groups, a, p)) continue;
            if (miner == FSB_MINER_SEMIHARD) {
                /* docs/refilled.md: every valid triplet with 0 < d(a,n) - d(a,p) < margin */
                for (int q = 0; q < n; q++) {
                    if (labels[q] == labels[a]) continue;
                    double m = da[q] - da[p];
                    if (!(m > 0 && m < (double)margin)) continue;
                    if (k == cap) goto full;
                    out[k++] = (fsb_triplet){a, p, q};
                }
            } else {
                /* closest n with d(a,n) > d(a,p); if none, the farthest negative */
                int best = -1, far = -1;
                for (int q = 0; q < n; q++) {
                    if (labels[q] == labels[a]) continue;
                    if (da[q] > da[p] && (best < 0 || da[q] < da[best])) best = q;
                    if (far < 0 || da[q] > da[far]) far = q;
                }
                int q = best >= 0 ? best : far;
                if (q < 0) continue; /* the anchor has no negative in this batch */
                if (k == cap) goto full;
                out[k++] = (fsb_triplet){a, p, q};
            }
        }
    }
    *count = k;
    return FSB_OK;
full:
    *count = k;
    return fsb_error(FSB_ENOMEM, "refilled: more than %zu triplets (capacity)", cap);
}

int fsb_refilled_mine_arena(fsb_triplet **out, size_t *count, fsb_arena *arena, const double *dist,
                            const int *labels, const int *groups, int n, fsb_refilled_miner miner,
                            float margin)
{
    *out = NULL;
    *count = 0;
    size_t bound = fsb_refilled_triplet_bound(labels, groups, n, miner);
    fsb_triplet *buf = fsb_arena_alloc(arena, (bound ? bound : 1) * sizeof *buf, 16);
    if (buf == NULL) return fsb_error_wrap(FSB_ENOMEM, "refilled: %zu triplets", bound);
    int st = fsb_refilled_mine(buf, bound, count, dist, labels, groups, n, miner, margin);
    if (st == FSB_OK) *out = buf;
    return st;
}

/* ---------------------------------------------------------------------------------------
 * Stage 1
 * ------------------------------------------------------------------------------------- */

void fsb_refilled_stage1_defaults(fsb_refilled_stage1_opts *o)
{
    o->tau1 = FSB_REFILLED_TAU1;
    o->w1 = FSB_REFILLED_W1;
    o->margin = FSB_REFILLED_MARGIN;
    o->miner = FSB_MINER_SEMIHARD;
}

double fsb_refilled_stage1_triplets(double *g_dist, double *p_s_sum, double *p_t_sum,
                                    const fsb_triplet *trip, size_t T, const double *dist_s,
                                    const double *dist_t, int n, float tau1, float w1)
{
    assert(tau1 > 0);
    double sum_kl = 0, sum_ps = 0, sum_pt = 0;
    double c = T ? (double)w1 / (double)T : 0; /* docs/refilled.md: c = w1 / T */
    for (size_t t = 0; t < T; t++) {
        size_t ap = (size_t)trip[t].a * n + trip[t].p, an = (size_t)trip[t].a * n + trip[t].n;
        /* z_M = (d_M(a,n) - d_M(a,p)) / tau1 */
        double zs = (dist_s[an] - dist_s[ap]) / tau1;
        double zt = (dist_t[an] - dist_t[ap]) / tau1;
        double ps = sigmoid(zs), pt = sigmoid(zt);
        /* KL(Bern(P_T) || Bern(P_S)) with log P = -softplus(-z), log(1-P) = -softplus(z):
         * = softplus(z_S) - softplus(z_T) - P_T (z_S - z_T)   (docs/refilled-impl.md, eq. 3) */
        sum_kl += softplus(zs) - softplus(zt) - pt * (zs - zt);
        sum_ps += ps;
        sum_pt += pt;
        if (g_dist) {
            /* dL1/dz_S = c (P_S - P_T); dz_S/dd(a,n) = +1/tau1, dz_S/dd(a,p) = -1/tau1 */
            double gd = c * (ps - pt) / tau1;
            size_t na = (size_t)trip[t].n * n + trip[t].a, pa = (size_t)trip[t].p * n + trip[t].a;
            g_dist[an] += gd;
            g_dist[na] += gd;
            g_dist[ap] -= gd;
            g_dist[pa] -= gd;
        }
    }
    if (p_s_sum) *p_s_sum = sum_ps;
    if (p_t_sum) *p_t_sum = sum_pt;
    return T ? c * sum_kl : 0.0;
}

/* Bytes for `count` doubles plus the arena's 64-byte alignment slack. */
static size_t dbl_bytes(size_t count)
{
    return count * sizeof(double) + 64;
}

size_t fsb_refilled_stage1_scratch_bytes(const int *labels, const int *groups, int n, int dim_s,
                                         int dim_t, fsb_refilled_miner miner)
{
    size_t nn = (size_t)n * n;
    size_t b = 2 * dbl_bytes((size_t)n * dim_s) + dbl_bytes((size_t)n * dim_t) +
               2 * dbl_bytes((size_t)n) + 3 * dbl_bytes(nn);
    size_t bound = fsb_refilled_triplet_bound(labels, groups, n, miner);
    return b + (bound ? bound : 1) * sizeof(fsb_triplet) + 64;
}

static double *arena_doubles(fsb_arena *a, size_t count)
{
    return fsb_arena_alloc(a, (count ? count : 1) * sizeof(double), 64);
}

int fsb_refilled_stage1(fsb_refilled_stage1_result *res, float *de_s, const float *e_s,
                        const float *e_t, const int *labels, const int *groups, int n, int dim_s,
                        int dim_t, const fsb_refilled_stage1_opts *opt, fsb_arena *scratch)
{
    assert(res && opt && scratch && n >= 0 && dim_s > 0 && dim_t > 0);
    memset(res, 0, sizeof *res);
    if (!(isfinite(opt->tau1) && opt->tau1 > 0))
        return fsb_error(FSB_EINVAL, "refilled stage 1: tau1 must be > 0 (got %g)",
                         (double)opt->tau1);
    if (!(isfinite(opt->w1) && opt->w1 >= 0))
        return fsb_error(FSB_EINVAL, "refilled stage 1: w1 must be >= 0 (got %g)", (double)opt->w1);
    size_t bad;
    if (!all_finite(e_s, (size_t)n * dim_s, &bad))
        return fsb_error(FSB_EINVAL, "refilled stage 1: student embedding row %zu is not finite",
                         bad / (size_t)dim_s);
    if (!all_finite(e_t, (size_t)n * dim_t, &bad))
        return fsb_error(FSB_EINVAL, "refilled stage 1: teacher embedding row %zu is not finite",
                         bad / (size_t)dim_t);

    size_t mark = fsb_arena_mark(scratch);
    int st = FSB_OK;
    size_t nn = (size_t)n * n;
    double *eh_s = arena_doubles(scratch, (size_t)n * dim_s);
    double *nrm_s = arena_doubles(scratch, (size_t)n);
    double *eh_t = arena_doubles(scratch, (size_t)n * dim_t);
    double *nrm_t = arena_doubles(scratch, (size_t)n);
    double *d_s = arena_doubles(scratch, nn);
    double *d_t = arena_doubles(scratch, nn);
    if (!eh_s || !nrm_s || !eh_t || !nrm_t || !d_s || !d_t) {
        st = fsb_error_wrap(FSB_ENOMEM, "refilled stage 1");
        goto done;
    }
    /* e^ = e / ||e||; d(u,v) = ||e^_u - e^_v|| for both models */
    fsb_refilled_l2norm(eh_s, nrm_s, e_s, n, dim_s);
    fsb_refilled_l2norm(eh_t, nrm_t, e_t, n, dim_t);
    fsb_refilled_pairdist(d_s, eh_s, n, dim_s);
    fsb_refilled_pairdist(d_t, eh_t, n, dim_t);

    /* the student's current embedding selects the triplets; the teacher never does */
    fsb_triplet *trip;
    size_t T;
    st = fsb_refilled_mine_arena(&trip, &T, scratch, d_s, labels, groups, n, opt->miner,
                                 opt->margin);
    if (st) {
        st = fsb_error_wrap(st, "refilled stage 1");
        goto done;
    }
    res->n_triplets = T;
    if (T == 0) goto done; /* no triplet: loss 0, no gradient, no step (never NaN) */

    double *g = NULL, *deh = NULL;
    if (de_s) {
        g = arena_doubles(scratch, nn);
        deh = arena_doubles(scratch, (size_t)n * dim_s);
        if (!g || !deh) {
            st = fsb_error_wrap(FSB_ENOMEM, "refilled stage 1");
            goto done;
        }
        memset(g, 0, nn * sizeof *g);
        memset(deh, 0, (size_t)n * dim_s * sizeof *deh);
    }
    double sps, spt;
    res->loss =
        fsb_refilled_stage1_triplets(g, &sps, &spt, trip, T, d_s, d_t, n, opt->tau1, opt->w1);
    res->mean_p_s = sps / (double)T;
    res->mean_p_t = spt / (double)T;
    res->stepped = 1;
    if (de_s) {
        /* dL/de^ = sum over pairs dL/dd * (e^_u - e^_v)/d; then through the normalisation */
        fsb_refilled_pairdist_backward(deh, g, eh_s, d_s, n, dim_s);
        fsb_refilled_l2norm_backward(de_s, deh, eh_s, nrm_s, n, dim_s);
    }
done:
    fsb_arena_reset_to(scratch, mark);
    return st;
}

/* ---------------------------------------------------------------------------------------
 * Stage 2
 * ------------------------------------------------------------------------------------- */

void fsb_refilled_stage2_defaults(fsb_refilled_stage2_opts *o)
{
    o->tau2 = FSB_REFILLED_TAU2;
    o->lambda = FSB_REFILLED_LAMBDA;
    o->ce_batch_classes = 0;
}

/* Sum of phi rows of class k over columns [j0, j0 + len), in double, rows in order. */
static void class_sum(double *acc, const float *phi, const int *labels, int n, int dim, int k,
                      int j0, int len)
{
    memset(acc, 0, sizeof *acc * len);
    for (int i = 0; i < n; i++) {
        if (labels[i] != k) continue;
        const float *x = phi + (size_t)i * dim + j0;
        for (int j = 0; j < len; j++)
            acc[j] += x[j];
    }
}

int fsb_refilled_ncm_centres(float *centres, int *count, const float *phi_t, const int *labels,
                             int n, int dim, int n_class)
{
    assert(n >= 0 && dim > 0 && n_class > 0);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_class)
            return fsb_error(FSB_EINVAL, "refilled NCM: row %d has label %d outside [0, %d)", i,
                             labels[i], n_class);
    memset(count, 0, sizeof *count * n_class);
    for (int i = 0; i < n; i++)
        count[labels[i]]++;
    enum { CHUNK = 256 };
    double acc[CHUNK]; /* column block of one class sum: no allocation, row-contiguous reads */
    for (int k = 0; k < n_class; k++) {
        float *c = centres + (size_t)k * dim;
        memset(c, 0, sizeof *c * dim);
        if (count[k] == 0) continue;
        /* c_k = mean of phi_T over rows of class k; its 1/count cancels in c_k / ||c_k||,
         * so the double sums are used directly. Pass 1: ||sum||; pass 2: sum / ||sum||. */
        double nrm2 = 0;
        for (int j0 = 0; j0 < dim; j0 += CHUNK) {
            int len = dim - j0 < CHUNK ? dim - j0 : CHUNK;
            class_sum(acc, phi_t, labels, n, dim, k, j0, len);
            for (int j = 0; j < len; j++)
                nrm2 += acc[j] * acc[j];
        }
        double nrm = sqrt(nrm2);
        if (nrm < FSB_REFILLED_NORM_EPS) continue; /* degenerate centre: stays 0 */
        for (int j0 = 0; j0 < dim; j0 += CHUNK) {
            int len = dim - j0 < CHUNK ? dim - j0 : CHUNK;
            class_sum(acc, phi_t, labels, n, dim, k, j0, len);
            for (int j = 0; j < len; j++)
                c[j0 + j] = (float)(acc[j] / nrm);
        }
    }
    return FSB_OK;
}

void fsb_refilled_ncm_logits(float *t, const float *phi_t, const float *centres, const int *present,
                             int n, int dim, int n_class)
{
    assert(n >= 0 && dim > 0 && n_class > 0);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n_class; k++) {
            double s = 0;
            if (present[k]) {
                const float *x = phi_t + (size_t)i * dim, *c = centres + (size_t)k * dim;
                for (int j = 0; j < dim; j++)
                    s += (double)x[j] * c[j]; /* t_k(x) = <phi_T(x), c^_k>, phi_T raw */
            }
            t[(size_t)i * n_class + k] = (float)s;
        }
}

size_t fsb_refilled_stage2_scratch_bytes(int n, int dim_t, int n_class)
{
    size_t rows = n > 0 ? (size_t)n : 1;
    return (size_t)n_class * sizeof(int) + 64 + (size_t)n_class * dim_t * sizeof(float) + 64 +
           rows * n_class * sizeof(float) + 64;
}

static int check_stage2_opts(const fsb_refilled_stage2_opts *opt)
{
    if (!(isfinite(opt->tau2) && opt->tau2 > 0))
        return fsb_error(FSB_EINVAL, "refilled stage 2: tau2 must be > 0 (got %g)",
                         (double)opt->tau2);
    if (!(isfinite(opt->lambda) && opt->lambda >= 0))
        return fsb_error(FSB_EINVAL, "refilled stage 2: lambda must be >= 0 (got %g)",
                         (double)opt->lambda);
    return FSB_OK;
}

/* log sum_{k in set} exp(x[k] * s), set = all k when mask == NULL, else mask[k] != 0. */
static double masked_lse(const float *x, const int *mask, int m, double s)
{
    double mx = -INFINITY;
    for (int k = 0; k < m; k++)
        if (!mask || mask[k]) mx = fmax(mx, x[k] * s);
    double sum = 0;
    for (int k = 0; k < m; k++)
        if (!mask || mask[k]) sum += exp(x[k] * s - mx);
    return mx + log(sum);
}

int fsb_refilled_stage2_from_logits(fsb_refilled_stage2_result *res, float *dlogits,
                                    const float *logits, const float *t, const int *present,
                                    const int *labels, int n, int n_class,
                                    const fsb_refilled_stage2_opts *opt)
{
    assert(res && opt && n >= 0 && n_class > 0);
    memset(res, 0, sizeof *res);
    int st = check_stage2_opts(opt);
    if (st) return st;
    for (int k = 0; k < n_class; k++)
        res->n_present += present[k] != 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= n_class || !present[labels[i]])
            return fsb_error(FSB_EINVAL,
                             "refilled stage 2: row %d has label %d outside [0, %d) or not in "
                             "C_B",
                             i, labels[i], n_class);
        for (int k = 0; k < n_class; k++) {
            float f = logits[(size_t)i * n_class + k], tk = t[(size_t)i * n_class + k];
            if (!isfinite(f) || (present[k] && !isfinite(tk)))
                return fsb_error(FSB_EINVAL, "refilled stage 2: row %d class %d: non-finite logit",
                                 i, k);
        }
    }
    if (n == 0) return FSB_OK;
    const double inv_n = 1.0 / n, inv_tau = 1.0 / opt->tau2, lambda = opt->lambda;
    const int *ce_mask = opt->ce_batch_classes ? present : NULL;
    double sum_ce = 0, sum_kl = 0;
    for (int i = 0; i < n; i++) {
        const float *f = logits + (size_t)i * n_class, *ti = t + (size_t)i * n_class;
        float *df = dlogits ? dlogits + (size_t)i * n_class : NULL;
        int y = labels[i];
        /* CE(f, y) = logsumexp(f) - f_y; dCE/df_k = softmax(f)_k - [k = y] */
        double lse = masked_lse(f, ce_mask, n_class, 1.0);
        sum_ce += lse - f[y];
        /* P_S = softmax_{C_B}(f/tau2), P_T = softmax_{C_B}(t/tau2) */
        double lse_s = masked_lse(f, present, n_class, inv_tau);
        double lse_t = masked_lse(ti, present, n_class, inv_tau);
        for (int k = 0; k < n_class; k++) {
            double g = 0;
            if (!ce_mask || ce_mask[k]) g += (exp(f[k] - lse) - (k == y)) * inv_n;
            if (present[k]) {
                double log_ps = f[k] * inv_tau - lse_s, log_pt = ti[k] * inv_tau - lse_t;
                double ps = exp(log_ps), pt = exp(log_pt);
                sum_kl += pt * (log_pt - log_ps);          /* KL(P_T || P_S), 0 log 0 = 0 */
                g += lambda * inv_n * (ps - pt) * inv_tau; /* no tau2^2 factor */
            }
            if (df) df[k] += (float)g;
        }
    }
    res->ce = sum_ce * inv_n;
    res->kl = sum_kl * inv_n;
    res->loss = res->ce + lambda * res->kl;
    return FSB_OK;
}

int fsb_refilled_stage2(fsb_refilled_stage2_result *res, float *dlogits, const float *logits,
                        const float *phi_t, const float *centres, const int *labels, int n,
                        int dim_t, int n_class, const fsb_refilled_stage2_opts *opt,
                        fsb_arena *scratch)
{
    assert(res && opt && scratch && n >= 0 && dim_t > 0 && n_class > 0);
    memset(res, 0, sizeof *res);
    int st = check_stage2_opts(opt);
    if (st) return st;
    size_t bad;
    if (!all_finite(phi_t, (size_t)n * dim_t, &bad))
        return fsb_error(FSB_EINVAL, "refilled stage 2: teacher embedding row %zu is not finite",
                         bad / (size_t)dim_t);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_class)
            return fsb_error(FSB_EINVAL, "refilled stage 2: row %d has label %d outside [0, %d)", i,
                             labels[i], n_class);
    size_t mark = fsb_arena_mark(scratch);
    int *present = fsb_arena_alloc(scratch, (size_t)n_class * sizeof *present, 64);
    float *t = fsb_arena_floats(scratch, (size_t)(n ? n : 1) * n_class);
    if (!present || !t) {
        st = fsb_error_wrap(FSB_ENOMEM, "refilled stage 2");
        goto done;
    }
    if (centres == NULL) {
        /* June-2020: centres from this batch's teacher embeddings */
        float *c = fsb_arena_floats(scratch, (size_t)n_class * dim_t);
        if (!c) {
            st = fsb_error_wrap(FSB_ENOMEM, "refilled stage 2");
            goto done;
        }
        st = fsb_refilled_ncm_centres(c, present, phi_t, labels, n, dim_t, n_class);
        if (st) goto done;
        centres = c;
    } else {
        /* HEAD: centres given (whole support set); C_B is still this batch's classes */
        memset(present, 0, (size_t)n_class * sizeof *present);
        for (int i = 0; i < n; i++)
            present[labels[i]]++;
    }
    fsb_refilled_ncm_logits(t, phi_t, centres, present, n, dim_t, n_class);
    st = fsb_refilled_stage2_from_logits(res, dlogits, logits, t, present, labels, n, n_class, opt);
done:
    fsb_arena_reset_to(scratch, mark);
    return st;
}
