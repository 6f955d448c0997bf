/* nearest.c - the two nearest-neighbour baselines on frozen features (docs/protocol.md):
 * 1nn (each query takes the label of its nearest support example, Euclidean) and protonet
 * (nearest class prototype = mean normalised support feature, squared Euclidean).
 * Distances are summed in a fixed order in plain C (no BLAS), so the answers are the same
 * bits on any thread and any x86-64 machine; ties go to the lowest support index (1nn) or the
 * lowest class (protonet).
 */
#include "fsb/attention.h"
#include "fsb/method.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <string.h>

/* sum_j (a_j - b_j)^2 over LANES float lanes (independent chains the compiler turns into
 * SIMD registers) combined in a fixed order: the same bits on every thread and machine. */
enum { LANES = 8 };
static double sqdist(const float *a, const float *b, int dim)
{
    float acc[LANES];
    memset(acc, 0, sizeof acc);
    int j = 0;
    for (; j + LANES <= dim; j += LANES)
        for (int l = 0; l < LANES; l++) {
            float d = a[j + l] - b[j + l];
            acc[l] += d * d;
        }
    double s = 0.0;
    for (; j < dim; j++) {
        double d = (double)a[j] - b[j];
        s += d * d;
    }
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* The index of the nearest of n candidates (rows of `cand`); the first one wins a tie. */
static void nearest(int *pred, const float *query, int n_query, const float *cand, int n_cand,
                    int dim)
{
    for (int q = 0; q < n_query; q++) {
        const float *x = query + (size_t)q * dim;
        int best = 0;
        double best_d = sqdist(x, cand, dim);
        for (int i = 1; i < n_cand; i++) {
            double d = sqdist(x, cand + (size_t)i * dim, dim);
            if (d < best_d) {
                best_d = d;
                best = i;
            }
        }
        pred[q] = best;
    }
}

size_t fsb_method_1nn_scratch(int way, int shot, int query, int dim)
{
    return sizeof(float) * (size_t)dim * (size_t)way * (size_t)(shot + query) + 256;
}

int fsb_method_1nn_run(const fsb_method *m, const fsb_method_config *cfg,
                       const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                       fsb_method_stats *stats)
{
    int st = fsb_method_check(m, cfg, ep);
    if (st) return st;
    size_t mark = fsb_arena_mark(scratch);
    double t0 = fsb_now();
    float *sup = fsb_arena_floats(scratch, (size_t)ep->n_support * ep->dim);
    float *qry = fsb_arena_floats(scratch, (size_t)ep->n_query * ep->dim);
    if (!sup || !qry) {
        st = fsb_error_wrap(FSB_ENOMEM, "%s: episode scratch", m->name);
        goto done;
    }
    fsb_features_normalise(sup, ep->support_feat, ep->n_support, ep->dim, cfg->norm,
                           cfg->base_mean);
    fsb_features_normalise(qry, ep->query_feat, ep->n_query, ep->dim, cfg->norm, cfg->base_mean);
    double t1 = fsb_now();
    nearest(pred, qry, ep->n_query, sup, ep->n_support, ep->dim);
    for (int q = 0; q < ep->n_query; q++)
        pred[q] = ep->support_labels[pred[q]];
    if (stats) {
        stats->fit_ms = (t1 - t0) * 1e3;
        stats->predict_ms = (fsb_now() - t1) * 1e3;
    }
done:
    fsb_arena_reset_to(scratch, mark);
    return st;
}

size_t fsb_method_protonet_scratch(int way, int shot, int query, int dim)
{
    return sizeof(float) * (size_t)dim * (size_t)way * (size_t)(shot + query + 1) +
           sizeof(double) * (size_t)dim * (size_t)way + 512;
}

/* Class prototypes (the mean of each class's normalised support rows, summed in support
 * order in double) into proto [way][dim]; sup and qry receive the normalised rows. */
static int prototypes(const fsb_method *m, const fsb_method_config *cfg, const fsb_episode_view *ep,
                      fsb_arena *scratch, float **sup, float **qry, float **proto)
{
    const int dim = ep->dim, way = ep->way;
    *sup = fsb_arena_floats(scratch, (size_t)ep->n_support * dim);
    *qry = fsb_arena_floats(scratch, (size_t)ep->n_query * dim);
    *proto = fsb_arena_floats(scratch, (size_t)way * dim);
    double *sum = fsb_arena_alloc(scratch, sizeof(double) * (size_t)way * dim, 64);
    if (!*sup || !*qry || !*proto || !sum)
        return fsb_error_wrap(FSB_ENOMEM, "%s: episode scratch", m->name);
    fsb_features_normalise(*sup, ep->support_feat, ep->n_support, dim, cfg->norm, cfg->base_mean);
    fsb_features_normalise(*qry, ep->query_feat, ep->n_query, dim, cfg->norm, cfg->base_mean);
    memset(sum, 0, sizeof(double) * (size_t)way * dim);
    for (int i = 0; i < ep->n_support; i++) {
        double *s = sum + (size_t)ep->support_labels[i] * dim;
        const float *x = *sup + (size_t)i * dim;
        for (int j = 0; j < dim; j++)
            s[j] += x[j];
    }
    for (size_t k = 0; k < (size_t)way * dim; k++)
        (*proto)[k] = (float)(sum[k] / ep->shot);
    return FSB_OK;
}

/* Nearest class prototype, the prototypes first adapted as a set by blk's attention block
 * (eval mode: no dropout; the temperature does not change the argmax) when blk is not NULL:
 * protonet without, FEAT's test-time classifier with. */
static int prototype_classifier(const fsb_method *m, const fsb_method_config *cfg,
                                const fsb_episode_view *ep, fsb_arena *scratch, int *pred,
                                fsb_method_stats *stats, const fsb_method_feat_block *blk)
{
    int st = fsb_method_check(m, cfg, ep);
    if (st) return st;
    size_t mark = fsb_arena_mark(scratch);
    double t0 = fsb_now();
    float *sup, *qry, *proto;
    if ((st = prototypes(m, cfg, ep, scratch, &sup, &qry, &proto))) goto done;
    if (blk) {
        float *adapted = fsb_arena_floats(scratch, (size_t)ep->way * ep->dim);
        float *wmem =
            fsb_arena_floats(scratch, (size_t)fsb_feat_attn_work_floats(1, ep->way, ep->dim));
        if (!adapted || !wmem) {
            st = fsb_error_wrap(FSB_ENOMEM, "%s: episode scratch", m->name);
            goto done;
        }
        fsb_feat_attn_work w;
        fsb_feat_attn_work_bind(&w, wmem, 1, ep->way, ep->dim);
        fsb_feat_attn_forward(adapted, &w, proto, &blk->params, 0, 0, 0, NULL, 1, ep->way, ep->dim);
        proto = adapted;
    }
    double t1 = fsb_now();
    nearest(pred, qry, ep->n_query, proto, ep->way, ep->dim);
    if (stats) {
        stats->fit_ms = (t1 - t0) * 1e3;
        stats->predict_ms = (fsb_now() - t1) * 1e3;
    }
done:
    fsb_arena_reset_to(scratch, mark);
    return st;
}

int fsb_method_protonet_run(const fsb_method *m, const fsb_method_config *cfg,
                            const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                            fsb_method_stats *stats)
{
    (void)rng;
    return prototype_classifier(m, cfg, ep, scratch, pred, stats, NULL);
}

size_t fsb_method_feat_scratch(int way, int shot, int query, int dim)
{
    return fsb_method_protonet_scratch(way, shot, query, dim) +
           sizeof(float) * ((size_t)way * dim + (size_t)fsb_feat_attn_work_floats(1, way, dim)) +
           128;
}

int fsb_method_feat_run(const fsb_method *m, const fsb_method_config *cfg,
                        const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                        fsb_method_stats *stats)
{
    (void)rng;
    const fsb_method_feat_block *blk = cfg->extra;
    if (!blk || blk->dim != ep->dim)
        return fsb_error(FSB_EINVAL,
                         "%s: no attention block of dimension %d (the teacher must be "
                         "a FEAT checkpoint: bench pretrain --objective feat)",
                         m->name, ep->dim);
    return prototype_classifier(m, cfg, ep, scratch, pred, stats, blk);
}
