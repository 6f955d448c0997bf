/* method.c - the method table, config defaults, episode checks and feature normalisation.
 *
 * A method is a row (an fsb_method) in `methods` below; callers only ever look a method up by
 * name and call through its row. The rows of finetune and refilled live with their adapter
 * (baselines/student_methods.c), so that the table needs only the method interface.
 */
#include "fsb/method.h"
#include "fsb/status.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* liblinear solver numbers (linear.h's enum; repeated here so that linear.h stays in
 * baselines/linear.c): L2R_LR = 0, L2R_L2LOSS_SVC = 2. */
enum { SOLVER_L2R_LR = 0, SOLVER_L2R_L2LOSS_SVC = 2 };
/* Default C, chosen on val-split episodes with `bench tune --methods svm,logreg`
 * (results/tune/linear/chosen.txt). */
#define SVM_DEFAULT_C 1.0
#define LOGREG_DEFAULT_C 10.0

/* The frozen-feature methods' rows: each may bring its own model (FSB_TAKES_MODEL), whose
 * features it then sees instead of the teacher's. */
static const fsb_method feature_rows[] = {
    {"1nn", "nearest support example (Euclidean) on frozen features",
     FSB_NEEDS_FEATURES | FSB_TAKES_MODEL, FSB_NORM_CL2N, fsb_method_1nn_run,
     fsb_method_1nn_scratch, 0, 0},
    {"protonet", "nearest class prototype (squared Euclidean) on frozen features",
     FSB_NEEDS_FEATURES | FSB_TAKES_MODEL, FSB_NORM_UN, fsb_method_protonet_run,
     fsb_method_protonet_scratch, 0, 0},
    {"svm", "linear SVM (liblinear L2R_L2LOSS_SVC primal, one-vs-rest) on frozen features",
     FSB_NEEDS_FEATURES | FSB_TAKES_MODEL, FSB_NORM_L2N, fsb_method_linear_run,
     fsb_method_linear_scratch, SOLVER_L2R_L2LOSS_SVC, SVM_DEFAULT_C},
    {"logreg", "logistic regression (liblinear L2R_LR primal, one-vs-rest) on frozen features",
     FSB_NEEDS_FEATURES | FSB_TAKES_MODEL, FSB_NORM_L2N, fsb_method_linear_run,
     fsb_method_linear_scratch, SOLVER_L2R_LR, LOGREG_DEFAULT_C},
    {"feat",
     "FEAT: prototypes adapted by the set-to-set attention block of its checkpoint (the "
     "teacher, or its own with --model feat=PATH), nearest "
     "(squared Euclidean) on frozen features",
     FSB_NEEDS_FEATURES | FSB_TAKES_MODEL, FSB_NORM_UN, fsb_method_feat_run,
     fsb_method_feat_scratch, 0, 0},
};

/* The table, in this order (help output, fsb_method_at); the students' and maml's rows are
 * defined with their adapters. */
static const fsb_method *const methods[] = {
    &feature_rows[0], &feature_rows[1],     &feature_rows[2],     &feature_rows[3],
    &feature_rows[4], &fsb_method_finetune, &fsb_method_refilled, &fsb_method_maml};
static const int n_methods = (int)(sizeof methods / sizeof methods[0]);

int fsb_method_count(void)
{
    return n_methods;
}

const fsb_method *fsb_method_at(int i)
{
    if (i < 0 || i >= n_methods) return NULL;
    return methods[i];
}

const fsb_method *fsb_method_find(const char *name)
{
    for (int i = 0; i < n_methods; i++)
        if (strcmp(methods[i]->name, name) == 0) return methods[i];
    char known[256] = "";
    for (int i = 0; i < n_methods; i++) {
        size_t len = strlen(known);
        snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", methods[i]->name);
    }
    fsb_error(FSB_ENOTFOUND, "unknown method '%s' (known: %s)", name, known);
    return NULL;
}

void fsb_method_config_default(fsb_method_config *cfg, const fsb_method *m)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->norm = m ? m->default_norm : FSB_NORM_UN;
    cfg->C = m && m->default_C > 0 ? m->default_C : 1.0;
    cfg->eps = 0.01;
    cfg->bias = 1.0;
}

static const char *const norm_names[] = {"un", "l2n", "cl2n"};

int fsb_norm_parse(const char *flag, const char *text, fsb_norm *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(text, norm_names[i]) == 0) {
            *out = (fsb_norm)i;
            return FSB_OK;
        }
    return fsb_error(FSB_EINVAL, "%s: '%s' is not a normalisation (un, l2n, cl2n)", flag, text);
}

const char *fsb_norm_name(fsb_norm n)
{
    return (unsigned)n < 3 ? norm_names[n] : "?";
}

int fsb_method_check(const fsb_method *m, const fsb_method_config *cfg, const fsb_episode_view *ep)
{
    if (ep->way < 1 || ep->shot < 1 || ep->query < 1)
        return fsb_error(FSB_EINVAL, "%s: episode %lld: way %d, shot %d, query %d must be >= 1",
                         m->name, (long long)ep->episode, ep->way, ep->shot, ep->query);
    if (ep->n_support != ep->way * ep->shot || ep->n_query != ep->way * ep->query)
        return fsb_error(FSB_EINVAL,
                         "%s: episode %lld: n_support %d / n_query %d do not match way %d, "
                         "shot %d, query %d",
                         m->name, (long long)ep->episode, ep->n_support, ep->n_query, ep->way,
                         ep->shot, ep->query);
    if (!ep->support_labels)
        return fsb_error(FSB_EINVAL, "%s: episode %lld: no support labels", m->name,
                         (long long)ep->episode);
    if ((m->needs & FSB_NEEDS_FEATURES) && (!ep->support_feat || !ep->query_feat || ep->dim < 1))
        return fsb_error(FSB_EINVAL, "%s: episode %lld: method needs features", m->name,
                         (long long)ep->episode);
    if ((m->needs & FSB_NEEDS_IMAGES) && (!ep->support_img || !ep->query_img))
        return fsb_error(FSB_EINVAL, "%s: episode %lld: method needs image indices", m->name,
                         (long long)ep->episode);
    /* every class has exactly `shot` support examples */
    int counts[1024];
    if (ep->way > 1024) return fsb_error(FSB_EINVAL, "%s: way %d exceeds 1024", m->name, ep->way);
    memset(counts, 0, sizeof(int) * (size_t)ep->way);
    for (int i = 0; i < ep->n_support; i++) {
        int y = ep->support_labels[i];
        if (y < 0 || y >= ep->way)
            return fsb_error(FSB_EINVAL, "%s: episode %lld: support label %d out of range 0..%d",
                             m->name, (long long)ep->episode, y, ep->way - 1);
        counts[y]++;
    }
    for (int c = 0; c < ep->way; c++)
        if (counts[c] != ep->shot)
            return fsb_error(FSB_EINVAL,
                             "%s: episode %lld: class %d has %d support examples, "
                             "expected %d",
                             m->name, (long long)ep->episode, c, counts[c], ep->shot);
    if ((m->needs & FSB_NEEDS_FEATURES) && cfg->norm == FSB_NORM_CL2N &&
        (!cfg->base_mean || cfg->base_mean_dim != ep->dim))
        return fsb_error(FSB_EINVAL,
                         "%s: norm cl2n needs the base-class mean feature of dimension %d "
                         "(have %s of %d)",
                         m->name, ep->dim, cfg->base_mean ? "one" : "none", cfg->base_mean_dim);
    return FSB_OK;
}

double fsb_sumsq(const float *x, int n)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += (double)x[j + l] * x[j + l];
    double s = 0.0;
    for (; j < n; j++)
        s += (double)x[j] * x[j];
    for (int l = 0; l < 8; l++)
        s += acc[l];
    return s;
}

void fsb_features_normalise(float *out, const float *in, int n, int dim, fsb_norm norm,
                            const float *base_mean)
{
    for (int i = 0; i < n; i++) {
        const float *x = in + (size_t)i * dim;
        float *y = out + (size_t)i * dim;
        if (norm == FSB_NORM_UN) {
            if (y != x) memcpy(y, x, sizeof(float) * (size_t)dim);
            continue;
        }
        if (norm == FSB_NORM_CL2N)
            for (int j = 0; j < dim; j++)
                y[j] = x[j] - base_mean[j];
        else if (y != x)
            memcpy(y, x, sizeof(float) * (size_t)dim);
        double ss = fsb_sumsq(y, dim);
        if (ss > 0.0) {
            float inv = (float)(1.0 / sqrt(ss));
            for (int j = 0; j < dim; j++)
                y[j] *= inv;
        }
    }
}

void fsb_episode_view_make(fsb_episode_view *v, const fsb_episode *e, int64_t index, int shot,
                           const float *feats, int dim, const fsb_view_buffers *b)
{
    fsb_episode_support_k(e, shot, b->sidx, b->slab);
    fsb_episode_queries(e, b->qidx, b->qlab);
    int ns = e->way * shot, nq = e->way * e->query;
    if (feats) {
        for (int i = 0; i < ns; i++)
            memcpy(b->sfeat + (size_t)i * dim, feats + (size_t)b->sidx[i] * dim,
                   sizeof(float) * (size_t)dim);
        for (int i = 0; i < nq; i++)
            memcpy(b->qfeat + (size_t)i * dim, feats + (size_t)b->qidx[i] * dim,
                   sizeof(float) * (size_t)dim);
    }
    *v = (fsb_episode_view){.episode = index,
                            .way = e->way,
                            .shot = shot,
                            .query = e->query,
                            .n_support = ns,
                            .n_query = nq,
                            .dim = feats ? dim : 0,
                            .support_feat = feats ? b->sfeat : NULL,
                            .query_feat = feats ? b->qfeat : NULL,
                            .support_labels = b->slab,
                            .support_img = b->sidx,
                            .query_img = b->qidx};
}
