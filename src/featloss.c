/* featloss.c - FEAT's episode loss and its gradient (see include/fsb/featloss.h for the maths,
 * FEAT's facts and the layout). Both cross-entropies are one helper: rows scored against
 * centres by -squared distance / temperature. Straight loops in double around the attention
 * block; an episode is at most a few hundred embeddings, nothing here allocates.
 */
#include "fsb/featloss.h"
#include "fsb/status.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- workspace ------------------------------------------------------------------------------ */

/* Doubles first (mem is 8-byte aligned), two floats each: logits, g, g_reg. */
long fsb_featloss_work_floats(int way, int shot, int query, int dim)
{
    long n = shot + query, wd = (long)way * dim, xd = (long)way * n * dim;
    long doubles = 2L * way * query * way + (long)way * n * way;
    return 2 * doubles + 6 * wd + 4 * xd + fsb_feat_attn_work_floats(1, way, dim) +
           fsb_feat_attn_work_floats(way, (int)n, dim);
}

void fsb_featloss_work_bind(fsb_featloss_work *w, float *mem, int way, int shot, int query, int dim)
{
    int n = shot + query;
    long wd = (long)way * dim, xd = (long)way * n * dim, nq = (long)way * query;
    assert((uintptr_t)mem % sizeof(double) == 0);
    double *dat = (double *)(void *)mem;
    w->logits = dat, dat += nq * way;
    w->g = dat, dat += nq * way;
    w->g_reg = dat, dat += (long)way * n * way;
    float *at = (float *)(void *)dat;
    float **way_dim[] = {&w->proto,   &w->proto_out, &w->d_proto_out,
                         &w->d_proto, &w->center,    &w->d_center};
    float **set_dim[] = {&w->aux, &w->aux_out, &w->d_aux_out, &w->d_aux};
    for (size_t i = 0; i < sizeof way_dim / sizeof way_dim[0]; i++, at += wd)
        *way_dim[i] = at;
    for (size_t i = 0; i < sizeof set_dim / sizeof set_dim[0]; i++, at += xd)
        *set_dim[i] = at;
    fsb_feat_attn_work_bind(&w->attn, at, 1, way, dim);
    at += fsb_feat_attn_work_floats(1, way, dim);
    fsb_feat_attn_work_bind(&w->attn_aux, at, way, n, dim);
    at += fsb_feat_attn_work_floats(way, n, dim);
    assert(at == mem + fsb_featloss_work_floats(way, shot, query, dim));
    w->way = way, w->shot = shot, w->query = query, w->dim = dim;
}

int fsb_featloss_work_alloc(fsb_featloss_work *w, fsb_arena *a, int way, int shot, int query,
                            int dim)
{
    float *mem = fsb_arena_floats(a, (size_t)fsb_featloss_work_floats(way, shot, query, dim));
    if (!mem)
        return fsb_error_wrap(FSB_ENOMEM, "FEAT loss workspace (way %d, shot %d, query %d, dim %d)",
                              way, shot, query, dim);
    fsb_featloss_work_bind(w, mem, way, shot, query, dim);
    return FSB_OK;
}

/* ---- scoring rows against centres ----------------------------------------------------------- */

/* Mean cross-entropy of the n rows x (n,dim) against the `way` centres cen (way,dim) with
 * logits z_rc = -||x_r - cen_c||^2 / temp and row r's label r / per. z (n,way) receives the
 * logits (may be NULL), g (n,way) dL/dz of scale * the mean, i.e. scale * (softmax - onehot)
 * / n; *correct counts rows whose largest logit (first on ties) is their label. */
static double ce_rows(double *z, double *g, int *correct, const float *x, const float *cen, int n,
                      int per, int way, int dim, double temp, double scale)
{
    double loss = 0;
    int right = 0;
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * dim;
        double *gr = g + (size_t)r * way;
        double zmax = -HUGE_VAL, sum = 0;
        int arg = 0, y = r / per;
        for (int c = 0; c < way; c++) { /* g holds the logits until the softmax */
            const float *cc = cen + (size_t)c * dim;
            double d2 = 0;
            for (int k = 0; k < dim; k++) {
                double d = (double)xr[k] - cc[k];
                d2 += d * d;
            }
            double zc = -d2 / temp;
            gr[c] = zc;
            if (z) z[(size_t)r * way + c] = zc;
            if (zc > zmax) zmax = zc, arg = c;
        }
        right += arg == y;
        for (int c = 0; c < way; c++)
            sum += exp(gr[c] - zmax);
        loss += zmax + log(sum) - gr[y];
        for (int c = 0; c < way; c++)
            gr[c] = scale * (exp(gr[c] - zmax) / sum - (c == y)) / n;
    }
    if (correct) *correct = right;
    return loss / n;
}

/* The backward of ce_rows' logits given g = dL/dz: dx (n,dim) += -(2/temp) sum_c g_rc (x_r -
 * cen_c) (dx may be NULL) and dcen (way,dim) += (2/temp) sum_r g_rc (x_r - cen_c). */
static void ce_rows_backward(float *dx, float *dcen, const double *g, const float *x,
                             const float *cen, int n, int way, int dim, double temp)
{
    double f = 2.0 / temp;
    for (int r = 0; dx && r < n; r++)
        for (int k = 0; k < dim; k++) {
            double s = 0;
            for (int c = 0; c < way; c++)
                s += g[(size_t)r * way + c] *
                     ((double)x[(size_t)r * dim + k] - cen[(size_t)c * dim + k]);
            dx[(size_t)r * dim + k] += (float)(-f * s);
        }
    for (int c = 0; c < way; c++)
        for (int k = 0; k < dim; k++) {
            double s = 0;
            for (int r = 0; r < n; r++)
                s += g[(size_t)r * way + c] *
                     ((double)x[(size_t)r * dim + k] - cen[(size_t)c * dim + k]);
            dcen[(size_t)c * dim + k] += (float)(f * s);
        }
}

/* ---- the two halves of the loss ------------------------------------------------------------- */

/* emb row of element j of class c's auxiliary set X_c: its supports, then its queries. */
static size_t aux_row(int c, int j, int way, int shot, int query)
{
    return j < shot ? (size_t)c * shot + j : (size_t)way * shot + (size_t)c * query + (j - shot);
}

/* L_main: prototypes, the block on them, queries scored; with gradients, demb (already
 * zeroed, may be NULL) and dparams (may be NULL) receive the main loss's share. */
static double main_loss(fsb_featloss_work *w, const float *emb, const fsb_feat_attn_params *p,
                        const fsb_featloss_cfg *cfg, fsb_rng *rng, float *demb,
                        fsb_feat_attn_params *dparams, int *n_correct)
{
    int way = w->way, shot = w->shot, query = w->query, dim = w->dim, nq = way * query;
    long wd = (long)way * dim;
    for (int c = 0; c < way; c++)
        for (int k = 0; k < dim; k++) {
            double s = 0;
            for (int j = 0; j < shot; j++)
                s += emb[(size_t)(c * shot + j) * dim + k];
            w->proto[(size_t)c * dim + k] = (float)(s / shot);
        }
    fsb_feat_attn_forward(w->proto_out, &w->attn, w->proto, p, cfg->attn_p, cfg->out_p, cfg->train,
                          rng, 1, way, dim);
    const float *q = emb + (size_t)way * shot * dim;
    double loss = ce_rows(w->logits, w->g, n_correct, q, w->proto_out, nq, query, way, dim,
                          cfg->temperature, 1.0);
    if (!demb && !dparams) return loss;
    memset(w->d_proto_out, 0, sizeof(float) * (size_t)wd);
    memset(w->d_proto, 0, sizeof(float) * (size_t)wd);
    ce_rows_backward(demb ? demb + (size_t)way * shot * dim : NULL, w->d_proto_out, w->g, q,
                     w->proto_out, nq, way, dim, cfg->temperature);
    fsb_feat_attn_backward(demb ? w->d_proto : NULL, dparams, &w->attn, w->d_proto_out, w->proto, p,
                           1, way, dim);
    if (demb) /* each shot gets 1/shot of its prototype's gradient */
        for (int c = 0; c < way; c++)
            for (int j = 0; j < shot; j++)
                for (int k = 0; k < dim; k++)
                    demb[(size_t)(c * shot + j) * dim + k] +=
                        (float)((double)w->d_proto[(size_t)c * dim + k] / shot);
    return loss;
}

/* L_reg (unweighted), its gradient scaled by cfg->balance added to demb (may be NULL) and
 * dparams (may be NULL). */
static double reg_loss(fsb_featloss_work *w, const float *emb, const fsb_feat_attn_params *p,
                       const fsb_featloss_cfg *cfg, fsb_rng *rng, float *demb,
                       fsb_feat_attn_params *dparams)
{
    int way = w->way, shot = w->shot, query = w->query, dim = w->dim, n = shot + query;
    long xd = (long)way * n * dim, wd = (long)way * dim;
    for (int c = 0; c < way; c++)
        for (int j = 0; j < n; j++)
            memcpy(w->aux + ((size_t)c * n + j) * dim, emb + aux_row(c, j, way, shot, query) * dim,
                   sizeof(float) * (size_t)dim);
    fsb_feat_attn_forward(w->aux_out, &w->attn_aux, w->aux, p, cfg->attn_p, cfg->out_p, cfg->train,
                          rng, way, n, dim);
    for (int c = 0; c < way; c++) /* aux_center: each transformed set's mean */
        for (int k = 0; k < dim; k++) {
            double s = 0;
            for (int j = 0; j < n; j++)
                s += w->aux_out[((size_t)c * n + j) * dim + k];
            w->center[(size_t)c * dim + k] = (float)(s / n);
        }
    double loss = ce_rows(NULL, w->g_reg, NULL, w->aux, w->center, way * n, n, way, dim,
                          cfg->temperature2, cfg->balance);
    if (!demb && !dparams) return loss;
    memset(w->d_aux, 0, sizeof(float) * (size_t)xd);
    memset(w->d_center, 0, sizeof(float) * (size_t)wd);
    ce_rows_backward(demb ? w->d_aux : NULL, w->d_center, w->g_reg, w->aux, w->center, way * n, way,
                     dim, cfg->temperature2);
    for (int c = 0; c < way; c++) /* the mean over each set */
        for (int j = 0; j < n; j++)
            for (int k = 0; k < dim; k++)
                w->d_aux_out[((size_t)c * n + j) * dim + k] =
                    (float)((double)w->d_center[(size_t)c * dim + k] / n);
    fsb_feat_attn_backward(demb ? w->d_aux : NULL, dparams, &w->attn_aux, w->d_aux_out, w->aux, p,
                           way, n, dim);
    if (demb)
        for (int c = 0; c < way; c++)
            for (int j = 0; j < n; j++) {
                float *d = demb + aux_row(c, j, way, shot, query) * dim;
                const float *s = w->d_aux + ((size_t)c * n + j) * dim;
                for (int k = 0; k < dim; k++)
                    d[k] += s[k];
            }
    return loss;
}

double fsb_featloss(const float *emb, int way, int shot, int query, int dim,
                    const fsb_feat_attn_params *p, const fsb_featloss_cfg *cfg, fsb_rng *rng,
                    float *demb, fsb_feat_attn_params *dparams, int *n_correct, double *loss_main,
                    fsb_featloss_work *w)
{
    assert(way >= 1 && shot >= 1 && query >= 1 && dim >= 1);
    assert(w->way == way && w->shot == shot && w->query == query && w->dim == dim);
    assert(cfg->temperature > 0 && cfg->temperature2 > 0 && cfg->balance >= 0);
    if (demb) memset(demb, 0, sizeof(float) * (size_t)way * (shot + query) * dim);
    double lm = main_loss(w, emb, p, cfg, rng, demb, dparams, n_correct), loss = lm;
    if (cfg->train && cfg->balance > 0)
        loss += cfg->balance * reg_loss(w, emb, p, cfg, rng, demb, dparams);
    if (loss_main) *loss_main = lm;
    return loss;
}
