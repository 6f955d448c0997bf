/* maml.c - MAML's meta-gradient by finite-difference Hessian-vector products through the
 * unrolled inner loop, and MAML's adapt-then-predict (see include/fsb/maml.h).
 *
 * Invariants: the only state touched in the model is its parameter suffix (trainable
 * part), its gradients and activations, and its BN running statistics / counters; every
 * public call ends in restore(), which puts back theta_0 and the saved statistics, on
 * success and on error alike. Nothing here allocates after fsb_maml_work_init.
 */
#include "fsb/maml.h"
#include "fsb/layers.h"
#include "fsb/status.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void fsb_maml_opts_default(fsb_maml_opts *o)
{
    memset(o, 0, sizeof *o);
    o->inner_steps = 5;
    o->inner_lr = 0.01f;
    o->first_order = 0;
    o->hvp_eps = 1e-2;
}

/* Running-statistic floats and counters of m, in tensor order. */
static void stat_sizes(const fsb_model *m, long *n_stats, int *n_bn)
{
    *n_stats = 0;
    *n_bn = 0;
    for (int i = 0; i < fsb_model_n_tensors(m); i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        if (t.kind == FSB_T_RUNNING_MEAN || t.kind == FSB_T_RUNNING_VAR) *n_stats += t.numel;
        if (t.kind == FSB_T_NUM_BATCHES) (*n_bn)++;
    }
}

size_t fsb_maml_work_bytes(const fsb_model *m, int max_steps)
{
    long n_params, n_stats;
    int n_bn;
    fsb_model_params((fsb_model *)m, &n_params);
    stat_sizes(m, &n_stats, &n_bn);
    size_t rows = (size_t)(max_steps > 1 ? max_steps : 1) + 1;
    return rows * (size_t)n_params * sizeof(float) + (size_t)n_stats * sizeof(float) +
           (size_t)n_bn * sizeof(int64_t);
}

int fsb_maml_work_init(fsb_maml_work *w, const fsb_model *m, int max_steps)
{
    memset(w, 0, sizeof *w);
    if (max_steps < 0) return fsb_error(FSB_EINVAL, "maml: max_steps %d < 0", max_steps);
    size_t bytes = fsb_maml_work_bytes(m, max_steps);
    w->mem = malloc(bytes > 0 ? bytes : 1);
    if (!w->mem) return fsb_error(FSB_ENOMEM, "maml: out of memory (%zu bytes)", bytes);
    fsb_model_params((fsb_model *)m, &w->n_params);
    stat_sizes(m, &w->n_stats, &w->n_bn);
    w->max_steps = max_steps;
    size_t rows = (size_t)(max_steps > 1 ? max_steps : 1);
    w->counts = w->mem; /* the int64 counters first: alignment */
    w->theta = (float *)(w->counts + w->n_bn);
    w->g = w->theta + rows * (size_t)w->n_params;
    w->stats = w->g + w->n_params;
    return FSB_OK;
}

void fsb_maml_work_free(fsb_maml_work *w)
{
    free(w->mem);
    memset(w, 0, sizeof *w);
}

/* ---- model state --------------------------------------------------------------------- */

/* Copy the running statistics and counters of m into w (save != 0) or back. */
static void stats_copy(fsb_model *m, fsb_maml_work *w, int save)
{
    long s = 0;
    int c = 0;
    for (int i = 0; i < fsb_model_n_tensors(m); i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        if (t.kind == FSB_T_RUNNING_MEAN || t.kind == FSB_T_RUNNING_VAR) {
            size_t bytes = sizeof(float) * (size_t)t.numel;
            if (save)
                memcpy(w->stats + s, t.data, bytes);
            else
                memcpy(t.data, w->stats + s, bytes);
            s += t.numel;
        } else if (t.kind == FSB_T_NUM_BATCHES) {
            if (save)
                w->counts[c] = *t.count;
            else
                *t.count = w->counts[c];
            c++;
        }
    }
}

/* theta_0 back into the parameters, the saved statistics back into the BN buffers. */
static void restore(fsb_model *m, fsb_maml_work *w)
{
    long n, off = fsb_model_trainable_offset(m);
    float *p = fsb_model_params(m, &n);
    memcpy(p + off, w->theta + off, sizeof(float) * (size_t)(n - off));
    stats_copy(m, w, 0);
}

static int check_labels(const int *y, int n, int n_class, const char *what)
{
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= n_class)
            return fsb_error(FSB_EINVAL, "maml: %s label %d of item %d outside [0, %d)", what, y[i],
                             i, n_class);
    return FSB_OK;
}

/* Everything a call needs that the caller could get wrong (query_y may be NULL). */
static int check_args(const fsb_model *m, const int *support_y, int n_support, const int *query_y,
                      int n_query, const fsb_maml_opts *o, int hvp, const fsb_maml_work *w)
{
    const fsb_model_opts *mo = fsb_model_options(m);
    int nc = fsb_model_n_class(m), mb = fsb_model_max_batch(m);
    if (nc < 1) return fsb_error(FSB_EINVAL, "maml: the model has no head");
    if (mo->arch == FSB_ARCH_RES12 && (mo->drop_rate > 0 || mo->dropblock_rate > 0))
        return fsb_error(FSB_EINVAL, "maml: dropout %g / DropBlock %g must be off", mo->drop_rate,
                         mo->dropblock_rate);
    if (n_support < 1 || n_support > mb || n_query < 1 || n_query > mb)
        return fsb_error(FSB_EINVAL, "maml: %d support and %d query images (each 1..%d)", n_support,
                         n_query, mb);
    if (o->inner_steps < 0 || o->inner_steps > w->max_steps)
        return fsb_error(FSB_EINVAL, "maml: %d inner steps (work sized for 0..%d)", o->inner_steps,
                         w->max_steps);
    if (!(o->inner_lr >= 0 && isfinite(o->inner_lr)) ||
        (hvp && !(o->hvp_eps > 0 && o->hvp_eps < 1)))
        return fsb_error(FSB_EINVAL, "maml: inner lr %g (>= 0) or hvp_eps %g (in (0,1))",
                         o->inner_lr, o->hvp_eps);
    long n_params, n_stats;
    int n_bn;
    fsb_model_params((fsb_model *)m, &n_params);
    stat_sizes(m, &n_stats, &n_bn);
    if (n_params != w->n_params || n_stats != w->n_stats || n_bn != w->n_bn)
        return fsb_error(FSB_EMISMATCH,
                         "maml: work sized for %ld parameters, the model has %ld (another "
                         "model or head)",
                         w->n_params, n_params);
    int st = check_labels(support_y, n_support, nc, "support");
    if (!st && query_y) st = check_labels(query_y, n_query, nc, "query");
    return st;
}

/* ---- the inner loop -------------------------------------------------------------------- */

/* Gradient of the mean cross-entropy of (x, y) at the current parameters, left in the
 * model's gradient array; *logits as fsb_model_train_step. */
static int loss_grad(fsb_model *m, const float *x, const int *y, int n, double *loss,
                     const float **logits, const char *what, int step)
{
    double l = fsb_model_train_step(m, x, y, n, NULL, logits);
    if (!isfinite(l))
        return fsb_error(FSB_EINVAL, "maml: %s loss %g is not finite (inner step %d)", what, l,
                         step);
    if (loss) *loss = l;
    return FSB_OK;
}

/* theta_0 .. theta_{k-1} into w->theta (theta_0 always, for restore()), k SGD steps on the
 * support set: the parameters end at theta_k. */
static int adapt(fsb_model *m, const float *sx, const int *sy, int ns, const fsb_maml_opts *o,
                 fsb_maml_work *w)
{
    long n, off = fsb_model_trainable_offset(m);
    float *p = fsb_model_params(m, &n);
    const float *g = fsb_model_grads(m, &n);
    size_t bytes = sizeof(float) * (size_t)(n - off);
    memcpy(w->theta + off, p + off, bytes);
    float lr = o->inner_lr;
    for (int t = 0; t < o->inner_steps; t++) {
        if (t > 0) memcpy(w->theta + (size_t)t * n + off, p + off, bytes);
        int st = loss_grad(m, sx, sy, ns, NULL, NULL, "support", t);
        if (st) return st;
        for (long i = off; i < n; i++)
            p[i] -= lr * g[i];
    }
    return FSB_OK;
}

static double norm2(const float *x, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

/* v -= alpha * H_t v with H_t v by central differences of support gradients around
 * theta_t (the top comment of maml.h). v and theta_t are trainable suffixes. */
static int hvp_step(fsb_model *m, const float *sx, const int *sy, int ns, const fsb_maml_opts *o,
                    const float *theta_t, float *v, int t, fsb_maml_work *w)
{
    long n, off = fsb_model_trainable_offset(m), P;
    float *p = fsb_model_params(m, &n) + off;
    const float *g = fsb_model_grads(m, &n) + off;
    P = n - off;
    double vn = norm2(v, P);
    if (vn == 0) return FSB_OK; /* H 0 = 0 */
    double r = o->hvp_eps * (1 + norm2(theta_t, P)) / vn;
    for (long i = 0; i < P; i++)
        p[i] = (float)(theta_t[i] + r * v[i]);
    int st = loss_grad(m, sx, sy, ns, NULL, NULL, "perturbed support", t);
    if (st) return st;
    memcpy(w->g, g, sizeof(float) * (size_t)P);
    for (long i = 0; i < P; i++)
        p[i] = (float)(theta_t[i] - r * v[i]);
    st = loss_grad(m, sx, sy, ns, NULL, NULL, "perturbed support", t);
    if (st) return st;
    double c = (double)o->inner_lr / (2 * r);
    for (long i = 0; i < P; i++)
        v[i] = (float)(v[i] - c * ((double)w->g[i] - g[i]));
    return FSB_OK;
}

/* Index of the largest of x[0..n) (the first on ties). */
static int argmax(const float *x, int n)
{
    int b = 0;
    for (int c = 1; c < n; c++)
        if (x[c] > x[b]) b = c;
    return b;
}

int fsb_maml_meta_grad(fsb_model *m, const float *support_x, const int *support_y, int n_support,
                       const float *query_x, const int *query_y, int n_query,
                       const fsb_maml_opts *o, float *meta_grad, double *query_loss,
                       int *query_correct, fsb_maml_work *w)
{
    int st = check_args(m, support_y, n_support, query_y, n_query, o, !o->first_order, w);
    if (st) return st;
    long n, off = fsb_model_trainable_offset(m);
    const float *g = fsb_model_grads(m, &n);
    assert(meta_grad + n <= g || meta_grad >= g + n); /* not the model's own gradients */
    stats_copy(m, w, 1);
    st = adapt(m, support_x, support_y, n_support, o, w);
    const float *lg = NULL;
    double lq = 0;
    if (!st) st = loss_grad(m, query_x, query_y, n_query, &lq, &lg, "query", o->inner_steps);
    if (st) goto done;
    int nc = fsb_model_n_class(m), correct = 0;
    for (int i = 0; i < n_query; i++)
        correct += argmax(lg + (long)i * nc, nc) == query_y[i];
    memset(meta_grad, 0, sizeof(float) * (size_t)off);
    memcpy(meta_grad + off, g + off, sizeof(float) * (size_t)(n - off));
    for (int t = o->inner_steps - 1; t >= 0 && !o->first_order; t--) {
        st = hvp_step(m, support_x, support_y, n_support, o, w->theta + (size_t)t * n + off,
                      meta_grad + off, t, w);
        if (st) goto done;
    }
    if (query_loss) *query_loss = lq;
    if (query_correct) *query_correct = correct;
done:
    restore(m, w);
    return st;
}

int fsb_maml_adapt_predict(fsb_model *m, const float *support_x, const int *support_y,
                           int n_support, const float *query_x, int n_query, const fsb_maml_opts *o,
                           float *logits, int *pred, fsb_maml_work *w)
{
    int st = check_args(m, support_y, n_support, NULL, n_query, o, 0, w);
    if (st) return st;
    stats_copy(m, w, 1);
    st = adapt(m, support_x, support_y, n_support, o, w);
    const float *lg = NULL;
    if (!st) st = fsb_model_forward(m, query_x, n_query, 1, NULL, NULL, &lg);
    if (st) goto done;
    int nc = fsb_model_n_class(m);
    if (logits) memcpy(logits, lg, sizeof(float) * (size_t)n_query * nc);
    for (int i = 0; pred && i < n_query; i++)
        pred[i] = argmax(lg + (long)i * nc, nc);
done:
    restore(m, w);
    return st;
}
