/* student_methods.c - the `finetune` and `refilled` rows of the method table (declared in
 * include/fsb/method.h, listed by baselines/method.c): thin adapters from an fsb_episode_view
 * to an fsb_student_episode_view and fsb_student_episode (include/fsb/student.h). The
 * per-worker fsb_student_ctx comes in ep->ctx and the options in cfg->extra; the row's variant
 * says which of the two it is.
 */
#include "fsb/method.h"
#include "fsb/status.h"
#include "fsb/student.h"

#include <string.h>

size_t fsb_method_student_scratch(int way, int shot, int query, int dim)
{
    (void)way, (void)shot, (void)query, (void)dim;
    return 0;
}

int fsb_method_student_run(const fsb_method *m, const fsb_method_config *cfg,
                           const fsb_episode_view *ep, fsb_arena *scratch, fsb_rng *rng, int *pred,
                           fsb_method_stats *stats)
{
    (void)scratch;
    int st = fsb_method_check(m, cfg, ep);
    if (st) return st;
    if (!ep->ctx || !cfg->extra)
        return fsb_error(FSB_EINVAL, "%s: episode %lld: no student context or options", m->name,
                         (long long)ep->episode);
    fsb_student_ctx *ctx = ep->ctx;
    int feats = ep->support_feat && ep->query_feat &&
                ep->dim == fsb_model_embed_dim(fsb_student_ctx_teacher(ctx));
    fsb_student_episode_view v = {.way = ep->way,
                                  .shot = ep->shot,
                                  .n_query = ep->n_query,
                                  .support_img = ep->support_img,
                                  .support_labels = ep->support_labels,
                                  .query_img = ep->query_img,
                                  .support_feat = feats ? ep->support_feat : NULL,
                                  .query_feat = feats ? ep->query_feat : NULL};
    fsb_student_stats s;
    st = fsb_student_episode(ctx, (const fsb_student_opts *)cfg->extra,
                             (fsb_student_method)m->variant, &v, rng, pred, &s);
    if (st) return fsb_error_wrap(st, "%s: episode %lld", m->name, (long long)ep->episode);
    if (stats) {
        stats->fit_ms = s.fit_ms;
        stats->predict_ms = s.predict_ms;
    }
    return FSB_OK;
}

const fsb_method fsb_method_finetune = {
    "finetune",
    "per-episode fine-tuning of the teacher + a new head, cross-entropy only",
    FSB_NEEDS_IMAGES,
    FSB_NORM_UN,
    fsb_method_student_run,
    fsb_method_student_scratch,
    FSB_STUDENT_FINETUNE,
    0};
const fsb_method fsb_method_refilled = {
    "refilled",
    "REFILLED: triplet-relationship then NCM-classifier distillation per episode",
    FSB_NEEDS_IMAGES,
    FSB_NORM_UN,
    fsb_method_student_run,
    fsb_method_student_scratch,
    FSB_STUDENT_REFILLED,
    0};
