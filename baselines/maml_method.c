/* maml_method.c - the `maml` row of the method table (include/fsb/maml_method.h): a MAML
 * checkpoint's training record, the per-worker context (model copy, MAML work, image
 * buffers) and the adapter from an fsb_episode_view to fsb_maml_adapt_predict.
 *
 * Invariants: the ctx's model only changes inside fsb_maml_adapt_predict, which restores it
 * bit for bit before returning, so every episode starts from the checkpoint's weights; an
 * episode allocates nothing.
 */
#include "fsb/maml_method.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "fsb/threads.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEST_STEPS 10000 /* sanity bound on maml.test_steps (Finn et al.: 10) */

/* An integer meta value in [lo, hi], FSB_EFORMAT naming the file and the key otherwise. */
static int meta_int(const fsb_tensorfile *tf, const char *path, const char *key, long long lo,
                    long long hi, long long *out)
{
    int st = fsb_tensorfile_meta_int(tf, path, key, out);
    if (st) return st;
    if (*out < lo || *out > hi)
        return fsb_error(FSB_EFORMAT, "%s: %s = %lld is outside [%lld, %lld]", path, key, *out, lo,
                         hi);
    return FSB_OK;
}

static int meta_lr(const fsb_tensorfile *tf, const char *path, float *out)
{
    const char *v = fsb_tensorfile_meta(tf, "maml.inner_lr");
    if (!v)
        return fsb_error(FSB_EFORMAT,
                         "%s is not a MAML checkpoint (no \"maml.inner_lr\" in its meta; MAML's "
                         "training loop writes maml.inner_lr, maml.test_steps, maml.order, ...)",
                         path);
    char *end;
    errno = 0;
    float lr = strtof(v, &end);
    if (end == v || *end || errno || !isfinite(lr) || lr < 0)
        return fsb_error(FSB_EFORMAT, "%s: maml.inner_lr = '%s' is not a learning rate >= 0", path,
                         v);
    *out = lr;
    return FSB_OK;
}

int fsb_maml_ckpt_read(const char *path, fsb_maml_ckpt *out)
{
    memset(out, 0, sizeof *out);
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    int st = fsb_tensorfile_load(&tf, path);
    if (st) return st;
    long long v[7];
    static const char *const keys[7] = {"maml.inner_steps", "maml.test_steps", "maml.order",
                                        "maml.train_way",   "maml.train_shot", "maml.meta_batch",
                                        "maml.iterations"};
    static const long long lo[7] = {0, 0, 1, 2, 1, 1, 0};
    static const long long hi[7] = {MAX_TEST_STEPS, MAX_TEST_STEPS, 2,         1000,
                                    100000,         100000,         1000000000};
    st = meta_lr(&tf, path, &out->inner_lr);
    for (int i = 0; i < 7 && !st; i++)
        st = meta_int(&tf, path, keys[i], lo[i], hi[i], &v[i]);
    fsb_tensorfile_free(&tf);
    if (st) return st;
    out->inner_steps = (int)v[0];
    out->test_steps = (int)v[1];
    out->order = (int)v[2];
    out->train_way = (int)v[3];
    out->train_shot = (int)v[4];
    out->meta_batch = (int)v[5];
    out->iterations = (long)v[6];
    return FSB_OK;
}

/* ---- context ----------------------------------------------------------------------------- */

struct fsb_maml_ctx {
    fsb_maml_ckpt ckpt;     /* the checkpoint's training record (test_steps, inner_lr) */
    const fsb_cache *cache; /* borrowed image store */
    fsb_transform tf;       /* the test transform (crop = network input) */
    int max_support;        /* support images an episode may have */
    int max_query;          /* query images an episode may have */
    fsb_model *model;       /* the checkpoint, restored after every episode */
    fsb_maml_work work;     /* MAML's scratch for test_steps inner steps */
    float *sx;              /* [max_support][3][crop][crop] transformed support images */
    float *qx;              /* [max_query][3][crop][crop] transformed query images */
};

int fsb_maml_ctx_create(fsb_maml_ctx **out, const char *path, const fsb_cache *cache,
                        const fsb_transform *tf, int max_way, int max_shot, int max_query)
{
    *out = NULL;
    int st = fsb_transform_check(tf);
    if (st) return st;
    if (max_way < 1 || max_shot < 1 || max_query < 1)
        return fsb_error(FSB_EINVAL, "maml: bad episode shape way %d shot %d query %d", max_way,
                         max_shot, max_query);
    if (cache->size < tf->crop)
        return fsb_error(FSB_EINVAL, "maml: cached images (%d px) are smaller than the crop %d",
                         cache->size, tf->crop);
    fsb_maml_ctx *c = calloc(1, sizeof *c);
    if (!c) return fsb_error(FSB_ENOMEM, "maml: out of memory");
    c->cache = cache;
    c->tf = *tf;
    c->max_support = max_way * max_shot;
    c->max_query = max_way * max_query;
    int mb = c->max_support > c->max_query ? c->max_support : c->max_query;
    size_t img = (size_t)3 * tf->crop * tf->crop;
    if ((st = fsb_maml_ckpt_read(path, &c->ckpt)) ||
        (st = fsb_model_create_from_file(&c->model, path, tf->crop, mb, NULL)))
        goto fail;
    if (fsb_model_n_class(c->model) < 1) {
        st = fsb_error(FSB_EFORMAT, "%s: a MAML checkpoint needs its head (it has none)", path);
        goto fail;
    }
    if ((st = fsb_maml_work_init(&c->work, c->model, c->ckpt.test_steps))) goto fail;
    c->sx = malloc(sizeof(float) * img * (size_t)c->max_support);
    c->qx = malloc(sizeof(float) * img * (size_t)c->max_query);
    if (!c->sx || !c->qx) {
        st = fsb_error(FSB_ENOMEM, "maml: out of memory");
        goto fail;
    }
    *out = c;
    return FSB_OK;
fail:
    fsb_maml_ctx_destroy(c);
    return st;
}

void fsb_maml_ctx_destroy(fsb_maml_ctx *c)
{
    if (!c) return;
    fsb_maml_work_free(&c->work);
    fsb_model_destroy(c->model);
    free(c->sx);
    free(c->qx);
    free(c);
}

const fsb_maml_ckpt *fsb_maml_ctx_ckpt(const fsb_maml_ctx *c)
{
    return &c->ckpt;
}

/* ---- one episode ------------------------------------------------------------------------- */

/* The test transform of images idx[0..n) of the ctx's cache into out. */
static int transform_images(fsb_maml_ctx *c, const int *idx, int n, float *out, const char *what)
{
    const fsb_cache *ca = c->cache;
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= ca->split.n_images)
            return fsb_error(FSB_EINVAL, "maml: %s image %d out of range", what, idx[i]);
    return fsb_transform_test_batch(out, ca->px, ca->size, ca->size, ca->channels, idx, n, &c->tf,
                                    NULL);
}

size_t fsb_method_maml_scratch(int way, int shot, int query, int dim)
{
    (void)way, (void)shot, (void)query, (void)dim;
    return 0;
}

int fsb_method_maml_run(const fsb_method *m, const fsb_method_config *cfg,
                        const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                        fsb_method_stats *stats)
{
    (void)scratch, (void)rng;
    int st = fsb_method_check(m, cfg, ep);
    if (st) return st;
    fsb_maml_ctx *c = ep->ctx;
    if (!c)
        return fsb_error(FSB_EINVAL, "%s: episode %lld: no MAML context (--model maml=PATH)",
                         m->name, (long long)ep->episode);
    if (ep->n_support > c->max_support || ep->n_query > c->max_query ||
        ep->way != fsb_model_n_class(c->model))
        return fsb_error(FSB_EINVAL,
                         "%s: episode %lld: %d-way, %d support and %d query images, the context "
                         "holds a %d-way head and up to %d / %d images",
                         m->name, (long long)ep->episode, ep->way, ep->n_support, ep->n_query,
                         fsb_model_n_class(c->model), c->max_support, c->max_query);
    double t0 = fsb_now();
    st = transform_images(c, ep->query_img, ep->n_query, c->qx, "query");
    double t1 = fsb_now();
    if (!st) st = transform_images(c, ep->support_img, ep->n_support, c->sx, "support");
    fsb_maml_opts o;
    fsb_maml_opts_default(&o);
    o.inner_steps = c->ckpt.test_steps;
    o.inner_lr = c->ckpt.inner_lr;
    if (!st)
        st = fsb_maml_adapt_predict(c->model, c->sx, ep->support_labels, ep->n_support, c->qx,
                                    ep->n_query, &o, NULL, pred, &c->work);
    if (st) return fsb_error_wrap(st, "%s: episode %lld", m->name, (long long)ep->episode);
    if (stats) {
        stats->predict_ms = (t1 - t0) * 1e3;
        stats->fit_ms = (fsb_now() - t1) * 1e3;
    }
    return FSB_OK;
}

const fsb_method fsb_method_maml = {
    "maml",
    "MAML: its own meta-learned ConvNet (--model maml=PATH, required) adapted by SGD on the "
    "support set per episode",
    FSB_NEEDS_IMAGES | FSB_TAKES_MODEL,
    FSB_NORM_UN,
    fsb_method_maml_run,
    fsb_method_maml_scratch,
    0,
    0};
