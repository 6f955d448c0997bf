/* pretrain.c - teacher pre-training with resume (see include/fsb/pretrain.h).
 *
 * Randomness, all counter-based (fsb_rng), so epoch e can be replayed exactly after a crash:
 *   initial weights  key mix(seed ^ TAG_INIT), stream 0
 *   epoch order      key mix(seed ^ TAG_ORDER), stream e (Fisher-Yates of the train images)
 *   augmentation     fsb_transform_train_batch key mix(mix(seed ^ TAG_AUG) ^ e), stream = the
 *                    batch's first position in the epoch order
 *   dropout          key mix(seed ^ TAG_DROP), stream = global step
 *   protonet         episode s of epoch e: fsb_episode_sample on the train split with seed
 *                    mix(mix(seed ^ TAG_EPIS) ^ e), index s; its way*(shot+query) images
 *                    augmented like a batch whose first position is s*way*(shot+query)
 *   feat             the same episodes and augmentation as protonet; the attention block's
 *                    initial weights key mix(seed ^ TAG_INIT), stream 1 (the backbone has
 *                    stream 0); its dropout masks (featloss.h: the prototypes', then the
 *                    auxiliary task's) key mix(seed ^ TAG_FATT), stream = global step
 *                    e * train_episodes + s
 *   maml             task k of meta-iteration s: protonet's episode seed, index
 *                    s * meta_batch + k, no augmentation (pretrain_maml.c); initial weights
 *                    as ce's (key mix(seed ^ TAG_INIT), stream 0)
 * The state file written after each epoch holds the weights, BN statistics, momentum
 * buffers and the log (feat: also the block and its group's buffers); nothing else carries
 * over between epochs.
 */
#include "fsb/pretrain.h"
#include "pretrain_internal.h"
#include "fsb/dist.h"
#include "fsb/pretrain_dist.h"
#include "fsb/blas.h"
#include "fsb/cache.h"
#include "fsb/episodes.h"
#include "fsb/features.h"
#include "fsb/featloss.h"
#include "fsb/fileio.h"
#include "fsb/method.h"
#include "fsb/optim.h"
#include "fsb/plot.h"
#include "fsb/progress.h"
#include "fsb/protoloss.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "fsb/threads.h"
#include "fsb/transform.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define TAG_INIT 0x494e4954ull  /* "INIT" */
#define TAG_ORDER 0x4f524445ull /* "ORDE" */
#define TAG_AUG 0x41554731ull   /* "AUG1" */
#define TAG_DROP 0x44524f50ull  /* "DROP" */
#define TAG_FATT 0x46415454ull  /* "FATT" */

void fsb_pretrain_opts_default(fsb_pretrain_opts *o)
{
    memset(o, 0, sizeof *o);
    o->arch = FSB_ARCH_CONV4;
    o->epochs = 100;
    o->batch = 128;
    o->lr = -1; /* the objective's default, set by fsb_pretrain */
    o->objective = FSB_PRETRAIN_CE;
    o->train_way = 5;
    o->train_shot = 1;
    o->train_query = 15;
    o->train_episodes = 100;
    o->temperature = 1;
    o->temperature2 = 16; /* FEAT's 1-shot ConvNet recipe, like the 1-shot default episodes */
    o->balance = 1;
    o->lr_mul = 10;
    fsb_maml_opts mo;
    fsb_maml_opts_default(&mo);
    o->meta_batch = 4;
    o->inner_steps = mo.inner_steps;
    o->inner_steps_test = 10;
    o->inner_lr = 0.01; /* mo.inner_lr as the flag gives it (a double; used as a float) */
    o->first_order = mo.first_order;
    o->hvp_eps = mo.hvp_eps;
    o->optimizer = FSB_OPT_SGD;
    o->momentum = 0.9;
    o->weight_decay = 5e-4;
    o->augment = 1;
    o->crop_scale_lo = 0.08;
    o->crop_scale_hi = 1.0;
    o->jitter = 0.4;
    o->flip = 1;
    o->val_shots[0] = 1;
    o->val_shots[1] = 5;
    o->n_val_shots = 2;
    o->val_every = 1;
    o->val_episodes = 500;
    o->val_way = 5;
    o->val_query = 15;
    o->val_norm = FSB_NORM_L2N;
    o->image_size = o->resize = o->crop = 0; /* --init's, else 84 / 92 / 84 */
}

static char *suffixed(const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", path, suffix);
    return s;
}

static const char *objective_name(int objective)
{
    static const char *const names[] = {"ce", "protonet", "feat", "maml"};
    return names[objective];
}

static int make_identity(trainer *t)
{
    const fsb_pretrain_opts *o = t->o;
    size_t size = 0;
    FILE *f = open_memstream(&t->identity, &size); /* grows: a long --schedule fits */
    if (!f) return fsb_error(FSB_ENOMEM, "out of memory");
    fprintf(f,
            "fsb-pretrain/1 arch=%s epochs=%d batch=%d lr=%.17g schedule=%s momentum=%.17g "
            "wd=%.17g seed=%" PRIu64 " val_every=%d val_episodes=%d val_way=%d val_query=%d "
            "val_seed=%" PRIu64 " val_norm=%s image_size=%d resize=%d crop=%d "
            "max_per_class=%d train=%016" PRIx64 " val=%016" PRIx64,
            fsb_arch_name(o->arch), o->epochs, o->batch, o->lr,
            o->schedule ? o->schedule : "cosine", o->momentum, o->weight_decay, o->seed,
            o->val_every, o->val_episodes, o->val_way, o->val_query, o->val_seed,
            fsb_norm_name((fsb_norm)o->val_norm), o->image_size, o->resize, o->crop,
            o->max_per_class, t->train.source_fp, t->val.source_fp);
    /* appended only when used, so ce runs from scratch keep their identity (and states) */
    if (o->init) fprintf(f, " init=%016" PRIx64, t->init_hash);
    if (o->optimizer != FSB_OPT_SGD)
        fprintf(f, " optimizer=%s", fsb_opt_kind_name((fsb_opt_kind)o->optimizer));
    if (!o->augment) fprintf(f, " augment=0");
    if (o->augment &&
        (o->crop_scale_lo != 0.08 || o->crop_scale_hi != 1.0 || o->jitter != 0.4 || !o->flip))
        fprintf(f, " crop_scale=%.17g,%.17g jitter=%.17g flip=%d", o->crop_scale_lo,
                o->crop_scale_hi, o->jitter, o->flip);
    if (!(o->n_val_shots == 2 && o->val_shots[0] == 1 && o->val_shots[1] == 5)) {
        fprintf(f, " val_shots=");
        for (int i = 0; i < o->n_val_shots; i++)
            fprintf(f, "%s%d", i ? "," : "", o->val_shots[i]);
    }
    if (o->width) fprintf(f, " width=%d", o->width);
    if (o->objective == FSB_PRETRAIN_PROTONET || o->objective == FSB_PRETRAIN_FEAT)
        fprintf(f,
                " objective=%s train_way=%d train_shot=%d train_query=%d episodes=%d "
                "temperature=%.17g",
                objective_name(o->objective), o->train_way, o->train_shot, o->train_query,
                o->train_episodes, o->temperature);
    if (o->objective == FSB_PRETRAIN_MAML)
        fprintf(f,
                " objective=maml train_way=%d train_shot=%d train_query=%d episodes=%d "
                "meta_batch=%d inner_steps=%d inner_steps_test=%d inner_lr=%.17g order=%d "
                "hvp_eps=%.17g",
                o->train_way, o->train_shot, o->train_query, o->train_episodes, o->meta_batch,
                o->inner_steps, o->inner_steps_test, o->inner_lr, o->first_order ? 1 : 2,
                o->first_order ? 0.0 : o->hvp_eps);
    if (o->objective == FSB_PRETRAIN_FEAT)
        fprintf(f, " temperature2=%.17g balance=%.17g lr_mul=%.17g", o->temperature2, o->balance,
                o->lr_mul);
    if (ferror(f) | fclose(f)) {
        free(t->identity);
        t->identity = NULL;
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    return FSB_OK;
}

/* ---- log -------------------------------------------------------------------------------- */

static void format_row(char *buf, size_t n, const log_row *r, int n_val)
{
    size_t len = 0;
    int k = snprintf(buf, n, "%d,%.6g,%.6f,%.6f", r->epoch, r->lr, r->loss, r->acc);
    len += k > 0 ? (size_t)k : 0;
    for (int v = 0; v <= n_val && len < n; v++) { /* a cut row stays inside buf */
        k = v < n_val ? snprintf(buf + len, n - len, ",%.6f", r->val[v])
                      : snprintf(buf + len, n - len, ",%.1f", r->seconds);
        len += k > 0 ? (size_t)k : 0;
    }
}

static char *log_text(const trainer *t)
{
    const fsb_pretrain_opts *o = t->o;
    size_t cap = 256 + (size_t)(t->epochs_done + 1) * 256, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    len += (size_t)snprintf(s, cap, "epoch,lr,loss,train_acc");
    for (int k = 0; k < o->n_val_shots; k++)
        len += (size_t)snprintf(s + len, cap - len, ",val_%dshot", o->val_shots[k]);
    len += (size_t)snprintf(s + len, cap - len, ",seconds\n");
    for (int i = 0; i < t->epochs_done; i++) {
        char line[256];
        format_row(line, sizeof line, &t->rows[i], o->n_val_shots);
        len += (size_t)snprintf(s + len, cap - len, "%s\n", line);
    }
    return s;
}

static int parse_log(trainer *t, const char *text, const char *what)
{
    const char *p = strchr(text, '\n');
    int n_val = t->o->n_val_shots;
    for (int i = 0; i < t->epochs_done; i++) {
        log_row *r = &t->rows[i];
        int used = 0, ok = p && sscanf(p + 1, "%d,%lf,%lf,%lf%n", &r->epoch, &r->lr, &r->loss,
                                       &r->acc, &used) == 4;
        const char *q = ok ? p + 1 + used : NULL;
        for (int k = 0; ok && k <= n_val; k++) {
            double *dst = k < n_val ? &r->val[k] : &r->seconds;
            ok = sscanf(q, ",%lf%n", dst, &used) == 1;
            q += ok ? used : 0;
        }
        if (!ok) return fsb_error(FSB_EFORMAT, "%s: log row %d is malformed", what, i + 1);
        p = strchr(p + 1, '\n');
    }
    return FSB_OK;
}

static int write_log_and_plot(trainer *t)
{
    char *text = log_text(t);
    if (!text) return fsb_error(FSB_ENOMEM, "out of memory");
    int st = fsb_write_file(t->csv_path, text, strlen(text));
    free(text);
    if (st) return st;
    char script[4096], note[512];
    int len = snprintf(script, sizeof script,
                       "set datafile separator ','\nset key bottom right\nset xlabel 'epoch'\n"
                       "set ylabel 'accuracy'\nset y2label 'loss'\nset y2tics\n"
                       "set ytics nomirror\nset title 'fsbench pre-training (%s)'\n"
                       "plot '%s' skip 1 using 1:4 with lines title 'train acc', ",
                       fsb_arch_name(t->o->arch), t->csv_path);
    for (int k = 0; k < t->o->n_val_shots; k++)
        len += snprintf(script + len, sizeof script - (size_t)len,
                        "'' skip 1 using 1:($%d >= 0 ? $%d : 1/0) with linespoints title "
                        "'val %d-shot', ",
                        5 + k, 5 + k, t->o->val_shots[k]);
    snprintf(script + len, sizeof script - (size_t)len,
             "'' skip 1 using 1:3 axes x1y2 with lines title 'loss'\n");
    int plotted = 0;
    st = fsb_plot(t->gp_path, script, t->png_path, &plotted, note, sizeof note);
    if (!st && !plotted && t->o->log && t->epochs_done == 1) fprintf(t->o->log, "note: %s\n", note);
    return st;
}

/* ---- state ------------------------------------------------------------------------------ */

static int save_state(trainer *t)
{
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    char done[32], best[64], best_epoch[32];
    snprintf(done, sizeof done, "%d", t->epochs_done);
    snprintf(best, sizeof best, "%.17g", t->best);
    snprintf(best_epoch, sizeof best_epoch, "%d", t->best_epoch);
    char *log = log_text(t);
    const char *keys[] = {"pretrain_identity", "epochs_done", "best_score", "best_epoch", "log"};
    const char *vals[] = {t->identity, done, best, best_epoch, log ? log : ""};
    int st = log ? fsb_model_to_tensorfile(t->model, &tf, 5, keys, vals)
                 : fsb_error(FSB_ENOMEM, "out of memory");
    if (!st && t->attn_mem)
        st = fsb_feat_attn_to_tensorfile(&tf, &t->attn, fsb_model_embed_dim(t->model),
                                         FSB_FEAT_ATTN_PREFIX);
    if (!st) st = fsb_optim_state_save(&t->sgd, &tf, "optim");
    if (!st) st = fsb_tensorfile_save(&tf, t->state_path);
    fsb_tensorfile_free(&tf);
    free(log);
    return st;
}

/* 1 in *resumed when a matching state was loaded. */
static int load_state(trainer *t, int *resumed)
{
    *resumed = 0;
    if (!fsb_is_file(t->state_path)) return FSB_OK;
    fsb_tensorfile tf;
    int st = fsb_tensorfile_load(&tf, t->state_path);
    if (st) return fsb_error_wrap(st, "cannot resume (delete it to start over)");
    const char *id = fsb_tensorfile_meta(&tf, "pretrain_identity");
    long long done = 0, best_epoch = 0;
    const char *best = fsb_tensorfile_meta(&tf, "best_score");
    const char *log = fsb_tensorfile_meta(&tf, "log");
    if (!id || !best || !log) {
        st = fsb_error(FSB_EFORMAT, "%s: not a pre-training state file", t->state_path);
    } else if (strcmp(id, t->identity) != 0) {
        st = fsb_error(FSB_EMISMATCH,
                       "%s belongs to another pre-training run (%s); use another "
                       "--out or delete it",
                       t->state_path, id);
    } else if (!(st = fsb_tensorfile_meta_int(&tf, t->state_path, "epochs_done", &done)) &&
               !(st = fsb_tensorfile_meta_int(&tf, t->state_path, "best_epoch", &best_epoch))) {
        if (done < 0 || done > t->o->epochs)
            st = fsb_error(FSB_EFORMAT, "%s: epochs_done %lld out of range", t->state_path, done);
    }
    if (!st) st = fsb_model_from_tensorfile(t->model, &tf, t->state_path);
    if (!st && t->attn_mem)
        st = fsb_feat_attn_from_tensorfile(&t->attn, fsb_model_embed_dim(t->model), &tf,
                                           t->state_path, FSB_FEAT_ATTN_PREFIX);
    if (!st) fsb_model_resume_warmup(t->model); /* DropBlock continues, not restarts */
    if (!st) st = fsb_optim_state_load(&t->sgd, &tf, t->state_path, "optim");
    if (!st) {
        t->epochs_done = (int)done;
        t->best = strtod(best, NULL);
        t->best_epoch = (int)best_epoch;
        st = parse_log(t, log, t->state_path);
        *resumed = 1;
    }
    fsb_tensorfile_free(&tf);
    return st;
}

/* ---- validation ------------------------------------------------------------------------- */

/* Mean nearest-prototype accuracy over the val sweep at `shot`, from features feats. */
static int prototype_accuracy(trainer *t, const float *feats, int dim, int shot, double *acc)
{
    const fsb_method *m = fsb_method_find("protonet");
    if (!m) return FSB_EINTERNAL;
    fsb_method_config cfg;
    fsb_method_config_default(&cfg, m);
    cfg.norm = (fsb_norm)t->o->val_norm;
    int way = t->val_sweep.way, q = t->val_sweep.query, ns = way * shot, nq = way * q;
    int *sidx = malloc(sizeof(int) * (size_t)ns), *slab = malloc(sizeof(int) * (size_t)ns);
    int *qidx = malloc(sizeof(int) * (size_t)nq), *qlab = malloc(sizeof(int) * (size_t)nq);
    int *pred = malloc(sizeof(int) * (size_t)nq);
    float *sf = malloc(sizeof(float) * (size_t)ns * dim),
          *qf = malloc(sizeof(float) * (size_t)nq * dim);
    fsb_arena arena;
    int st = fsb_arena_init(&arena, m->scratch(way, shot, q, dim) + 4096);
    if (!st && (!sidx || !slab || !qidx || !qlab || !pred || !sf || !qf))
        st = fsb_error(FSB_ENOMEM, "out of memory");
    double sum = 0;
    for (int e = 0; !st && e < t->val_sweep.n_episodes; e++) {
        fsb_episode ep;
        fsb_sweep_episode(&t->val_sweep, e, &ep);
        fsb_view_buffers bufs = {sidx, slab, qidx, qlab, sf, qf};
        fsb_episode_view v;
        fsb_episode_view_make(&v, &ep, e, shot, feats, dim, &bufs);
        st = m->run(m, &cfg, &v, &arena, NULL, pred, NULL);
        int correct = 0;
        for (int i = 0; i < nq; i++)
            correct += pred[i] == qlab[i];
        sum += (double)correct / nq;
    }
    *acc = sum / t->val_sweep.n_episodes;
    fsb_arena_free(&arena);
    free(sidx), free(slab), free(qidx), free(qlab), free(pred), free(sf), free(qf);
    return st;
}

/* FEAT: mean accuracy over the val sweep at `shot` of the FEAT classifier, the block in eval
 * mode on the raw features feats (attention-adapted prototypes, featloss.h's main logits). */
static int feat_accuracy(trainer *t, const float *feats, int dim, int shot, double *acc)
{
    const fsb_pretrain_opts *o = t->o;
    int way = t->val_sweep.way, q = t->val_sweep.query, ns = way * shot;
    float *emb = malloc(sizeof(float) * (size_t)way * (shot + q) * dim);
    float *mem = malloc(sizeof(float) * (size_t)fsb_featloss_work_floats(way, shot, q, dim));
    if (!emb || !mem) {
        free(emb), free(mem);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    fsb_featloss_work w;
    fsb_featloss_work_bind(&w, mem, way, shot, q, dim);
    fsb_featloss_cfg cfg = {o->temperature, o->temperature2, o->balance, 0, 0, 0}; /* eval */
    size_t row = sizeof(float) * (size_t)dim;
    double sum = 0;
    for (int e = 0; e < t->val_sweep.n_episodes; e++) {
        fsb_episode ep;
        fsb_sweep_episode(&t->val_sweep, e, &ep);
        for (int c = 0; c < way; c++) { /* label-major: supports, then queries */
            for (int j = 0; j < shot; j++)
                memcpy(emb + (size_t)(c * shot + j) * dim,
                       feats + (size_t)ep.support[c * ep.max_shot + j] * dim, row);
            for (int j = 0; j < q; j++)
                memcpy(emb + (size_t)(ns + c * q + j) * dim,
                       feats + (size_t)ep.queries[c * ep.query + j] * dim, row);
        }
        int ok = 0;
        fsb_featloss(emb, way, shot, q, dim, &t->attn, &cfg, NULL, NULL, NULL, &ok, NULL, &w);
        sum += (double)ok / ((double)way * q);
    }
    *acc = sum / t->val_sweep.n_episodes;
    free(emb), free(mem);
    return FSB_OK;
}

/* Embed the val images the sweep uses (support up to the largest val shot and queries), eval
 * mode, and score every val shot into val[]. */
static int validate(trainer *t, double *val)
{
    if (t->o->objective == FSB_PRETRAIN_MAML) return fsb_pretrain_maml_validate(t, val);
    int n = t->val.split.n_images, dim = fsb_model_embed_dim(t->model);
    float *feats = calloc((size_t)n * dim, sizeof(float));
    unsigned char *used = calloc((size_t)n, 1);
    int *list = malloc(sizeof(int) * (size_t)n), n_used = 0, st = FSB_OK;
    if (!feats || !used || !list) st = fsb_error(FSB_ENOMEM, "out of memory");
    const fsb_sweep *sw = &t->val_sweep;
    for (int e = 0; !st && e < sw->n_episodes; e++) {
        fsb_episode ep;
        fsb_sweep_episode(sw, e, &ep);
        for (int c = 0; c < ep.way; c++) {
            for (int j = 0; j < ep.max_shot; j++)
                used[ep.support[c * ep.max_shot + j]] = 1;
            for (int j = 0; j < ep.query; j++)
                used[ep.queries[c * ep.query + j]] = 1;
        }
    }
    for (int i = 0; !st && i < n; i++)
        if (used[i]) list[n_used++] = i;
    float *out = malloc(sizeof(float) * (size_t)n_used * dim);
    if (!st && !out) st = fsb_error(FSB_ENOMEM, "out of memory");
    if (!st)
        st = fsb_features_embed(t->model, &t->val, &t->tf, list, n_used, out, t->pool, NULL, NULL);
    for (int i = 0; !st && i < n_used; i++)
        memcpy(feats + (size_t)list[i] * dim, out + (size_t)i * dim, sizeof(float) * dim);
    for (int k = 0; !st && k < t->o->n_val_shots; k++)
        st = t->o->objective == FSB_PRETRAIN_FEAT
                 ? feat_accuracy(t, feats, dim, t->o->val_shots[k], &val[k])
                 : prototype_accuracy(t, feats, dim, t->o->val_shots[k], &val[k]);
    free(out);
    free(feats);
    free(used);
    free(list);
    return st;
}

/* ---- training ---------------------------------------------------------------------------- */

/* pretrain_internal.h */
int fsb_pretrain_train_images(trainer *t, float *images, const int *idx, int n, uint64_t aug_key,
                              uint64_t stream0)
{
    if (!t->o->augment)
        return fsb_transform_test_batch(images, t->train.px, t->train.size, t->train.size,
                                        t->train.channels, idx, n, &t->tf, t->pool);
    return fsb_transform_train_batch(images, t->train.px, t->train.size, t->train.size,
                                     t->train.channels, idx, n, &t->tf, aug_key, stream0, t->pool);
}

static int train_epoch(trainer *t, int e, long *steps_this_process, log_row *row)
{
    const fsb_pretrain_opts *o = t->o;
    int B = o->batch, steps = t->n_sub / B, hw = o->crop;
    int first, nb; /* mpirun (pretrain_dist.h): this rank's images of each global batch */
    fsb_pretrain_dist_slice(B, &first, &nb);
    int *order = malloc(sizeof(int) * (size_t)t->n_sub), *labels = malloc(sizeof(int) * (size_t)B);
    float *images = malloc(sizeof(float) * (size_t)B * 3 * hw * hw);
    if (!order || !labels || !images) {
        free(order), free(labels), free(images);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    memcpy(order, t->subset, sizeof(int) * (size_t)t->n_sub);
    fsb_rng rng;
    fsb_rng_init(&rng, fsb_mix64(o->seed ^ TAG_ORDER), (uint64_t)e);
    for (int i = t->n_sub - 1; i > 0; i--) {
        int j = (int)fsb_rng_below(&rng, (uint32_t)i + 1), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    t->sgd.lr = (float)fsb_lr_at(&t->sched, e);
    row->lr = t->sgd.lr;
    uint64_t aug_key = fsb_mix64(fsb_mix64(o->seed ^ TAG_AUG) ^ (uint64_t)e);
    char label[64];
    snprintf(label, sizeof label, "epoch %d/%d", e + 1, o->epochs);
    fsb_progress bar;
    fsb_progress_init(&bar, o->progress, label, "img", 0, (int64_t)steps * B);
    double loss_sum = 0;
    long correct = 0;
    int st = FSB_OK;
    for (int s = 0; s < steps && !st; s++) {
        const int *idx = order + (size_t)s * B + first;
        st = fsb_pretrain_train_images(t, images, idx, nb, aug_key, (uint64_t)s * B + first);
        if (st) break;
        for (int b = 0; b < nb; b++)
            labels[b] = t->train.split.labels[idx[b]];
        fsb_rng drop;
        fsb_rng_init(&drop, fsb_mix64(o->seed ^ TAG_DROP), (uint64_t)e * steps + s);
        const float *logits;
        loss_sum += fsb_model_train_step(t->model, images, labels, nb, &drop, &logits);
        if ((st = fsb_pretrain_dist_reduce_grads(t->model))) /* mpirun: the global batch's */
            break;
        int nc = fsb_model_n_class(t->model);
        for (int b = 0; b < nb; b++) {
            const float *l = logits + (size_t)b * nc;
            int arg = 0;
            for (int k = 1; k < nc; k++)
                if (l[k] > l[arg]) arg = k;
            correct += arg == labels[b];
        }
        fsb_optim_step(&t->sgd);
        fsb_progress_update(&bar, (int64_t)(s + 1) * B);
        if (o->kill_after_steps > 0 && ++*steps_this_process >= o->kill_after_steps)
            raise(SIGKILL); /* fault injection: die mid-epoch like kill -9 */
    }
    fsb_progress_finish(&bar);
    double sums[2] = {loss_sum, (double)correct}; /* mpirun: over all ranks */
    if (!st && !(st = fsb_pretrain_dist_sum(sums, 2))) {
        loss_sum = sums[0] / fsb_dist_size();
        correct = (long)sums[1];
    }
    row->loss = loss_sum / (steps ? steps : 1);
    row->acc = (double)correct / ((double)steps * B > 0 ? (double)steps * B : 1);
    free(order), free(labels), free(images);
    return st;
}

/* pretrain_internal.h */
void fsb_pretrain_episodic_begin(trainer *t, int e, const char *unit, log_row *row,
                                 fsb_episode_params *p, fsb_progress *bar)
{
    const fsb_pretrain_opts *o = t->o;
    t->sgd.lr = (float)fsb_lr_at(&t->sched, e);
    row->lr = t->sgd.lr;
    *p = (fsb_episode_params){fsb_mix64(fsb_mix64(o->seed ^ TAG_EPIS) ^ (uint64_t)e), o->train_way,
                              o->train_shot, o->train_query};
    char label[64];
    snprintf(label, sizeof label, "epoch %d/%d", e + 1, o->epochs);
    fsb_progress_init(bar, o->progress, label, unit, 0, o->train_episodes);
}

/* One protonet or feat epoch: train_episodes episodes, one optimiser step each (see the
 * top); feat's loss also trains the attention block (its own group). */
static int train_epoch_episodic(trainer *t, int e, long *steps_this_process, log_row *row)
{
    const fsb_pretrain_opts *o = t->o;
    int feat = o->objective == FSB_PRETRAIN_FEAT;
    int way = o->train_way, shot = o->train_shot, q = o->train_query, hw = o->crop;
    int ns = way * shot, n = way * (shot + q), steps = o->train_episodes;
    int dim = fsb_model_embed_dim(t->model);
    fsb_episode ep;
    int st = fsb_episode_init(&ep, way, shot, q);
    if (st) return st;
    int *idx = malloc(sizeof(int) * (size_t)n);
    int *scratch = malloc(sizeof(int) * fsb_episode_scratch_len(&t->ep_split));
    float *images = malloc(sizeof(float) * (size_t)n * 3 * hw * hw);
    float *demb = malloc(sizeof(float) * (size_t)n * dim);
    double *work = feat ? NULL : malloc(sizeof(double) * fsb_protoloss_scratch(way, shot, q, dim));
    float *fmem =
        feat ? malloc(sizeof(float) * (size_t)fsb_featloss_work_floats(way, shot, q, dim)) : NULL;
    if (!idx || !scratch || !images || !demb || (feat ? !fmem : !work)) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    fsb_featloss_work fw;
    if (feat) fsb_featloss_work_bind(&fw, fmem, way, shot, q, dim);
    fsb_featloss_cfg cfg = {o->temperature,        o->temperature2,      o->balance,
                            FSB_FEAT_ATTN_DROPOUT, FSB_FEAT_OUT_DROPOUT, 1};
    fsb_episode_params p;
    fsb_progress bar;
    fsb_pretrain_episodic_begin(t, e, "ep", row, &p, &bar);
    uint64_t aug_key = fsb_mix64(fsb_mix64(o->seed ^ TAG_AUG) ^ (uint64_t)e);
    double loss_sum = 0;
    long correct = 0;
    for (int s = 0; s < steps && !st; s++) {
        fsb_episode_sample(&ep, &t->ep_split, &p, (uint64_t)s, scratch);
        fsb_episode_support_k(&ep, shot, idx, NULL);
        fsb_episode_queries(&ep, idx + ns, NULL);
        st = fsb_pretrain_train_images(t, images, idx, n, aug_key, (uint64_t)s * n);
        if (st) break;
        fsb_rng drop;
        fsb_rng_init(&drop, fsb_mix64(o->seed ^ TAG_DROP), (uint64_t)e * steps + s);
        const float *emb;
        fsb_model_zero_grad(t->model);
        if ((st = fsb_model_forward(t->model, images, n, 1, &drop, &emb, NULL))) break;
        int ok = 0;
        if (feat) { /* the block's gradients are zeroed here, the backbone's above */
            memset(t->dattn.wq, 0, sizeof(float) * t->groups[1].count);
            fsb_rng fd;
            fsb_rng_init(&fd, fsb_mix64(o->seed ^ TAG_FATT), (uint64_t)e * steps + s);
            loss_sum += fsb_featloss(emb, way, shot, q, dim, &t->attn, &cfg, &fd, demb, &t->dattn,
                                     &ok, NULL, &fw);
        } else {
            loss_sum += fsb_protoloss(emb, way, shot, q, dim, o->temperature, demb, &ok, work);
        }
        correct += ok;
        fsb_model_backward(t->model, NULL, demb, NULL);
        fsb_optim_step(&t->sgd);
        fsb_progress_update(&bar, s + 1);
        if (o->kill_after_steps > 0 && ++*steps_this_process >= o->kill_after_steps)
            raise(SIGKILL); /* fault injection: die mid-epoch like kill -9 */
    }
    fsb_progress_finish(&bar);
    row->loss = loss_sum / steps;
    row->acc = (double)correct / ((double)steps * way * q);
done:
    fsb_episode_free(&ep);
    free(idx), free(scratch), free(images), free(demb), free(work), free(fmem);
    return st;
}

/* maml's settings: no augmentation, the val episodes as wide as the head, the inner loop's. */
static int check_maml(const fsb_pretrain_opts *o)
{
    if (o->augment)
        return fsb_error(FSB_EINVAL, "--augment: maml trains without augmentation (Finn et al.); "
                                     "give --augment off");
    if (o->val_way != o->train_way)
        return fsb_error(FSB_EINVAL,
                         "--val-way: maml validates with its %d-way head (--train-way); "
                         "%d-way val episodes do not fit it",
                         o->train_way, o->val_way);
    if (o->meta_batch < 1 || o->inner_steps < 0 || o->inner_steps_test < 0)
        return fsb_error(FSB_EINVAL, "--meta-batch must be positive, --inner-steps and "
                                     "--inner-steps-test non-negative");
    if (!(o->inner_lr >= 0 && o->inner_lr < 1e6))
        return fsb_error(FSB_EINVAL, "--inner-lr: %g is not >= 0", o->inner_lr);
    if (!o->first_order && !(o->hvp_eps > 0 && o->hvp_eps < 1))
        return fsb_error(FSB_EINVAL, "--hvp-eps: %g is not in (0, 1)", o->hvp_eps);
    return FSB_OK;
}

/* Protonet, feat, maml: the sampler's view of the train split (max_per_class applied) and its
 * checks. */
static int setup_episodes(trainer *t)
{
    const fsb_pretrain_opts *o = t->o;
    const fsb_split *s = &t->train.split;
    int st;
    if (o->train_way < 2 || o->train_shot < 1 || o->train_query < 1 || o->train_episodes < 1 ||
        !(o->temperature > 0))
        return fsb_error(FSB_EINVAL, "--train-way (>= 2), --train-shot, --train-query, "
                                     "--episodes-per-epoch and --temperature must be positive");
    if (o->objective == FSB_PRETRAIN_FEAT &&
        (!(o->temperature2 > 0) || !(o->balance >= 0) || !(o->lr_mul >= 0)))
        return fsb_error(FSB_EINVAL, "--temperature2 must be positive, --balance and --lr-mul "
                                     "non-negative");
    if (o->objective == FSB_PRETRAIN_MAML && (st = check_maml(o))) return st;
    if (s->n_classes < o->train_way)
        return fsb_error(FSB_EINVAL, "--train-way: the train split has %d classes, fewer than %d",
                         s->n_classes, o->train_way);
    t->ep_count = malloc(sizeof(int) * (size_t)s->n_classes);
    if (!t->ep_count) return fsb_error(FSB_ENOMEM, "out of memory");
    for (int c = 0; c < s->n_classes; c++) {
        int n = s->class_count[c];
        t->ep_count[c] = o->max_per_class > 0 && n > o->max_per_class ? o->max_per_class : n;
        if (t->ep_count[c] < o->train_shot + o->train_query)
            return fsb_error(FSB_EINVAL,
                             "--train-shot/--train-query: train class %s has %d "
                             "images%s, fewer than %d + %d",
                             s->class_names[c], t->ep_count[c],
                             o->max_per_class > 0 ? " (--max-per-class)" : "", o->train_shot,
                             o->train_query);
    }
    t->ep_split = *s;
    t->ep_split.class_count = t->ep_count;
    fsb_episode_params p = {o->seed, o->train_way, o->train_shot, o->train_query};
    return fsb_episode_check(&t->ep_split, &p);
}

/* Create the model: fresh from the init rng, then the backbone of o->init when given (its
 * architecture, checked against an explicit --arch). Sets t->model and t->init_hash. */
static int create_model(trainer *t, fsb_pretrain_opts *o, int n_class, int max_batch)
{
    fsb_model *src = NULL;
    fsb_model_opts mo;
    int st = FSB_OK;
    fsb_model_opts_default(&mo, o->arch);
    if (o->init) {
        void *data;
        size_t size;
        if ((st = fsb_read_file(o->init, &data, &size))) return fsb_error_wrap(st, "--init");
        t->init_hash = XXH3_64bits(data, size);
        free(data);
        if ((st = fsb_model_create_from_file(&src, o->init, o->crop, 1, NULL)))
            return fsb_error_wrap(st, "--init");
        fsb_arch arch = fsb_model_options(src)->arch;
        if (o->arch_set && arch != o->arch) {
            st = fsb_error(FSB_EMISMATCH, "--init: %s is a %s checkpoint, --arch says %s", o->init,
                           fsb_arch_name(arch), fsb_arch_name(o->arch));
            goto done;
        }
        o->arch = arch;
        mo = *fsb_model_options(src);
        if (o->width && (arch != FSB_ARCH_CONV4 || mo.widths[0] != o->width)) {
            st = fsb_error(FSB_EMISMATCH, "--init: %s has %d filters in block 1, --arch says %d",
                           o->init, mo.widths[0], o->width);
            goto done;
        }
    } else {
        for (int i = 0; i < 4 && o->width; i++)
            mo.widths[i] = o->width;
        mo.flatten |= o->objective == FSB_PRETRAIN_MAML; /* Finn's: flattened map -> head */
    }
    mo.in_hw = o->crop;
    fsb_rng init;
    fsb_rng_init(&init, fsb_mix64(o->seed ^ TAG_INIT), 0);
    if ((st = fsb_model_create(&t->model, &mo, n_class, max_batch, t->pool, &init))) goto done;
    /* maml from a maml checkpoint keeps its head (same way), like a resumed init */
    int with_head =
        o->objective == FSB_PRETRAIN_MAML && fsb_model_n_class(src ? src : t->model) == n_class;
    if (src && (st = fsb_model_copy_weights(t->model, src, with_head)))
        st = fsb_error_wrap(st, "--init: %s", o->init);
done:
    fsb_model_destroy(src);
    return st;
}

/* The input: --init's (model.h fsb_model_file_input; a contradicting flag is refused), or
 * the protocol's 84 / 92 / 84 for what is not given; the combination is checked before any
 * packing. */
static int settle_input(fsb_pretrain_opts *o)
{
    fsb_model_input ck = {FSB_CACHE_DEFAULT_SIZE, 92, 84, 1};
    if (o->init) {
        int st = fsb_model_file_input(o->init, &ck);
        if (st) return fsb_error_wrap(st, "--init");
    } else { /* from scratch: nothing to contradict */
        ck.image_size = o->image_size > 0 ? o->image_size : ck.image_size;
        ck.resize = o->resize > 0 ? o->resize : ck.resize;
        ck.crop = o->crop > 0 ? o->crop : ck.crop;
    }
    return fsb_model_input_settle(&ck, "--init", o->init ? o->init : "(none)", &o->image_size,
                                  &o->resize, &o->crop);
}

/* The optimiser over the model's parameters and, for feat, a second group: the attention
 * block, created here (fsb_feat_attn_init from the init key, stream 1) at lr * lr_mul. */
static int setup_optim(trainer *t)
{
    const fsb_pretrain_opts *o = t->o;
    long n;
    float *params = fsb_model_params(t->model, &n);
    int adam = o->optimizer != FSB_OPT_SGD;
    t->momentum = calloc((size_t)n, sizeof(float));
    t->second = adam ? calloc((size_t)n, sizeof(float)) : NULL;
    if (!t->momentum || (adam && !t->second)) return fsb_error(FSB_ENOMEM, "out of memory");
    t->groups[0] = (fsb_param_group){.params = params,
                                     .grads = fsb_model_grads(t->model, &n),
                                     .momentum = t->momentum,
                                     .second = t->second,
                                     .count = (size_t)n,
                                     .lr_mult = 1,
                                     .weight_decay = (float)o->weight_decay};
    t->n_groups = 1;
    t->init_subnormal = fsb_count_subnormal(params, n);
    if (o->objective == FSB_PRETRAIN_FEAT) {
        int d = fsb_model_embed_dim(t->model);
        size_t np = (size_t)fsb_feat_attn_n_params(d);
        if (!(t->attn_mem = calloc(4 * np, sizeof(float))))
            return fsb_error(FSB_ENOMEM, "out of memory");
        fsb_feat_attn_bind(&t->attn, t->attn_mem, d);
        fsb_feat_attn_bind(&t->dattn, t->attn_mem + np, d);
        fsb_rng init;
        fsb_rng_init(&init, fsb_mix64(o->seed ^ TAG_INIT), 1);
        fsb_feat_attn_init(&t->attn, d, &init);
        t->groups[1] = (fsb_param_group){.params = t->attn_mem,
                                         .grads = t->attn_mem + np,
                                         .momentum = t->attn_mem + 2 * np,
                                         .second = adam ? t->attn_mem + 3 * np : NULL,
                                         .count = np,
                                         .lr_mult = (float)o->lr_mul,
                                         .weight_decay = (float)o->weight_decay};
        t->n_groups = 2;
    }
    int st = adam ? fsb_adam_init(&t->sgd, t->groups, t->n_groups, (float)o->lr, 0.9, 0.999, 1e-8,
                                  o->optimizer == FSB_OPT_ADAMW)
                  : fsb_sgd_init(&t->sgd, t->groups, t->n_groups, (float)o->lr, (float)o->momentum,
                                 0, 1);
    return st ? fsb_error_wrap(st, "--optimizer") : FSB_OK;
}

/* The head's classes and the largest batch a pass takes: ce all train classes in batches,
 * protonet and feat no head and one episode, maml a train_way head and a support or query
 * set of a train or val episode (they pass separately; max_shot the largest val shot). */
static void model_shape(const trainer *t, int max_shot, int *n_class, int *max_batch)
{
    const fsb_pretrain_opts *o = t->o;
    int proto = o->objective != FSB_PRETRAIN_CE;
    *n_class = proto ? 0 : t->train.split.n_classes;
    *max_batch = proto ? o->train_way * (o->train_shot + o->train_query) : o->batch;
    if (o->objective != FSB_PRETRAIN_MAML) return;
    int sets[4] = {o->train_way * o->train_shot, o->train_way * o->train_query,
                   o->val_way * max_shot, o->val_way * o->val_query};
    *n_class = o->train_way;
    *max_batch = 1;
    for (int k = 0; k < 4; k++)
        *max_batch = sets[k] > *max_batch ? sets[k] : *max_batch;
}

static int setup(trainer *t, fsb_pretrain_opts *o)
{
    int st;
    int proto = o->objective != FSB_PRETRAIN_CE; /* episodic: protonet, feat or maml */
    if (o->objective < FSB_PRETRAIN_CE || o->objective > FSB_PRETRAIN_MAML)
        return fsb_error(FSB_EINVAL, "--objective: unknown objective %d", o->objective);
    if (o->epochs < 1 || o->batch < 2 || o->val_every < 1 || o->val_episodes < 1)
        return fsb_error(FSB_EINVAL, "--epochs, --batch (>= 2), --val-every and --val-episodes "
                                     "must be positive");
    if (o->val_norm == FSB_NORM_CL2N)
        return fsb_error(FSB_EINVAL, "--val-norm: cl2n needs train features; use un or l2n");
    if ((st = settle_input(o))) return st;
    fsb_cache_opts co = {
        .dir = o->cache_dir, .size = o->image_size, .pool = t->pool, .progress = o->progress};
    static const char *const need[2] = {"train", "val"}; /* both listed before any packing */
    if ((st = fsb_split_require(o->data, need, 2, "bench pretrain reads train and val")))
        return fsb_error_wrap(st, "--data");
    if ((st = fsb_cache_open(&t->train, o->data, "train", &co)))
        return fsb_error_wrap(st, "--data: the train split");
    if ((st = fsb_cache_open(&t->val, o->data, "val", &co)))
        return fsb_error_wrap(st, "--data: the val split");
    if (t->val.split.n_classes < o->val_way)
        return fsb_error(FSB_EINVAL, "--val-way: the val split has %d classes, fewer than %d",
                         t->val.split.n_classes, o->val_way);
    int max_shot = 0;
    if (o->n_val_shots < 1 || o->n_val_shots > FSB_PRETRAIN_MAX_VAL_SHOTS)
        return fsb_error(FSB_EINVAL, "--val-shots: between 1 and %d shots",
                         FSB_PRETRAIN_MAX_VAL_SHOTS);
    for (int k = 0; k < o->n_val_shots; k++) {
        if (o->val_shots[k] < 1 || (k && o->val_shots[k] <= o->val_shots[k - 1]))
            return fsb_error(FSB_EINVAL, "--val-shots: shots must be positive and increasing");
        max_shot = o->val_shots[k];
    }
    fsb_episode_params p = {o->val_seed, o->val_way, max_shot, o->val_query};
    static const fsb_episode_flags vf = {"--val-way", "--val-shots", "--val-query"};
    if ((st = fsb_episode_check_flags(&t->val.split, &p, &vf)) ||
        (st =
             fsb_sweep_generate(&t->val_sweep, &t->val.split, o->val_seed, o->val_way, o->val_shots,
                                o->n_val_shots, o->val_query, o->val_episodes, t->pool)))
        return fsb_error_wrap(st, "--val-shots/--val-way/--val-query: val episodes");
    /* the train subset: the first max_per_class images of each class, canonical order */
    t->subset = malloc(sizeof(int) * (size_t)t->train.split.n_images);
    if (!t->subset) return fsb_error(FSB_ENOMEM, "out of memory");
    for (int c = 0; c < t->train.split.n_classes; c++) {
        int n = t->train.split.class_count[c];
        if (o->max_per_class > 0 && n > o->max_per_class) n = o->max_per_class;
        for (int i = 0; i < n; i++)
            t->subset[t->n_sub++] = t->train.split.class_start[c] + i;
    }
    if (proto && (st = setup_episodes(t))) return st;
    /* before the transform: the architecture (from --init) decides the pixel normalisation */
    int n_class, max_batch;
    model_shape(t, max_shot, &n_class, &max_batch);
    if ((st = create_model(t, o, n_class, max_batch))) return st;
    if (o->objective == FSB_PRETRAIN_MAML && o->arch != FSB_ARCH_CONV4)
        return fsb_error(FSB_EINVAL, "--objective maml: ConvNet-4 only (--arch conv4-32 or "
                                     "conv4; res12 has dropout)");
    if (!proto && t->n_sub < o->batch)
        return fsb_error(FSB_EINVAL, "--batch: %d is more than the %d training images", o->batch,
                         t->n_sub);
    fsb_transform_defaults(&t->tf,
                           o->arch == FSB_ARCH_RES12 ? FSB_PIXNORM_RESNET12 : FSB_PIXNORM_CONVNET);
    t->tf.resize = o->resize;
    t->tf.crop = o->crop;
    t->tf.scale_lo = o->crop_scale_lo;
    t->tf.scale_hi = o->crop_scale_hi;
    t->tf.brightness = t->tf.contrast = t->tf.saturation = (float)o->jitter;
    t->tf.flip_p = o->flip ? 0.5f : 0.0f;
    if ((st = fsb_transform_check(&t->tf)))
        return fsb_error_wrap(st, "--resize/--crop/--crop-scale/--jitter");
    char spec[64];
    snprintf(spec, sizeof spec, "cosine:%d", o->epochs);
    if ((st = fsb_lr_schedule_parse(&t->sched, o->schedule ? o->schedule : spec, o->lr)))
        return fsb_error_wrap(st, "--schedule");
    if ((st = setup_optim(t))) return st;
    if (o->objective == FSB_PRETRAIN_MAML && (st = fsb_pretrain_maml_setup(t))) return st;
    t->rows = calloc((size_t)o->epochs, sizeof *t->rows);
    t->state_path = suffixed(o->out, ".state");
    t->csv_path = suffixed(o->out, ".csv");
    t->png_path = suffixed(o->out, ".png");
    t->gp_path = suffixed(o->out, ".gp");
    if (!t->rows || !t->state_path || !t->csv_path || !t->png_path || !t->gp_path)
        return fsb_error(FSB_ENOMEM, "out of memory");
    t->best = -1;
    /* the output's folder, created like `mkdir -p` */
    char *dir = strdup(o->out), *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash && slash != dir) {
        *slash = '\0';
        st = fsb_mkdir_p(dir);
    }
    free(dir);
    if (st) return fsb_error_wrap(st, "--out");
    return make_identity(t);
}

/* The best checkpoint so far: the model with its val scores, epoch, what it was trained on,
 * its input (model.h fsb_model_file_input) and its augmentation. */
static int save_best(trainer *t, const log_row *row, int epoch)
{
    const fsb_pretrain_opts *o = t->o;
    enum { NV = FSB_PRETRAIN_MAX_VAL_SHOTS };
    char names[NV][32], vtext[NV][32], ep[32], in[3][16], aug[128];
    char maml[FSB_PRETRAIN_MAML_META][32];
    const char *keys[NV + 6 + FSB_PRETRAIN_MAML_META], *vals[NV + 6 + FSB_PRETRAIN_MAML_META];
    int nk = 0;
    for (int k = 0; k < o->n_val_shots; k++, nk++) {
        snprintf(names[k], sizeof names[k], "val_%dshot", o->val_shots[k]);
        snprintf(vtext[k], sizeof vtext[k], "%.6f", row->val[k]);
        keys[nk] = names[k], vals[nk] = vtext[k];
    }
    snprintf(ep, sizeof ep, "%d", epoch);
    keys[nk] = "epoch", vals[nk++] = ep;
    keys[nk] = "trained_on";
    static const char *const trained_on[] = {
        "train split (base classes)", "train split (base classes), protonet episodes",
        "train split (base classes), feat episodes", "train split (base classes), maml episodes"};
    vals[nk++] = o->objective == FSB_PRETRAIN_MAML && o->first_order
                     ? "train split (base classes), first-order maml episodes"
                     : trained_on[o->objective];
    const int side[3] = {o->image_size, o->resize, o->crop};
    static const char *const in_key[3] = {"image_size", "resize", "crop"};
    for (int k = 0; k < 3; k++, nk++) {
        snprintf(in[k], sizeof in[k], "%d", side[k]);
        keys[nk] = in_key[k], vals[nk] = in[k];
    }
    if (o->augment)
        snprintf(aug, sizeof aug, "crop_scale=%g,%g jitter=%g flip=%d", o->crop_scale_lo,
                 o->crop_scale_hi, o->jitter, o->flip);
    else
        snprintf(aug, sizeof aug, "off");
    keys[nk] = "augment", vals[nk++] = aug;
    if (o->objective == FSB_PRETRAIN_MAML)
        nk += fsb_pretrain_maml_meta(t, epoch, keys + nk, vals + nk, maml);
    if (o->objective != FSB_PRETRAIN_FEAT) return fsb_model_save(t->model, o->out, nk, keys, vals);
    fsb_tensorfile tf; /* feat: the backbone, then the block as FEAT's state_dict orders them */
    fsb_tensorfile_init(&tf);
    int st = fsb_model_to_tensorfile(t->model, &tf, nk, keys, vals);
    if (!st)
        st = fsb_feat_attn_to_tensorfile(&tf, &t->attn, fsb_model_embed_dim(t->model),
                                         FSB_FEAT_ATTN_PREFIX);
    if (!st) st = fsb_tensorfile_save(&tf, o->out);
    fsb_tensorfile_free(&tf);
    return st ? fsb_error_wrap(st, "saving model to %s", o->out) : FSB_OK;
}

/* The first lines of the log: what runs, from where, and whether it resumes. */
static void log_start(const trainer *t, int resumed)
{
    const fsb_pretrain_opts *o = t->o;
    char how[4200] = ""; /* empty for ce from scratch: its line is unchanged */
    if (o->objective == FSB_PRETRAIN_PROTONET || o->objective == FSB_PRETRAIN_FEAT)
        snprintf(how, sizeof how, " %s %d-way %d-shot %d-query x %d episodes/epoch",
                 objective_name(o->objective), o->train_way, o->train_shot, o->train_query,
                 o->train_episodes);
    char order[64];
    snprintf(order, sizeof order, "second-order maml (hvp_eps %g)", o->hvp_eps);
    if (o->objective == FSB_PRETRAIN_MAML)
        snprintf(how, sizeof how,
                 " width %d %s %d-way %d-shot %d-query, meta-batch %d x %d "
                 "meta-iterations/epoch, %d inner steps (%d at val) at lr %g",
                 fsb_model_options(t->model)->widths[0],
                 o->first_order ? "FIRST-ORDER maml" : order, o->train_way, o->train_shot,
                 o->train_query, o->meta_batch, o->train_episodes, o->inner_steps,
                 o->inner_steps_test, o->inner_lr);
    if (o->init) snprintf(how + strlen(how), sizeof how - strlen(how), " from %.4000s", o->init);
    fprintf(o->log, "pretrain %s%s on %d images of %d classes (%s/train), val %d episodes; %s\n",
            fsb_arch_name(o->arch), how, t->n_sub, t->train.split.n_classes, o->data,
            o->val_episodes, resumed ? "resuming" : "starting");
    if (resumed) fprintf(o->log, "resumed after epoch %d of %d\n", t->epochs_done, o->epochs);
    if (t->init_subnormal)
        fprintf(o->log,
                "note: %ld of the starting parameters are subnormal floats; they count as "
                "zero (threads.h)\n",
                t->init_subnormal);
    fflush(o->log);
}

/* One line per epoch. */
static void log_epoch(const trainer *t, const log_row *row, int e)
{
    const fsb_pretrain_opts *o = t->o;
    fprintf(o->log, "epoch %d/%d lr %.4g loss %.4f acc %.4f", e + 1, o->epochs, row->lr, row->loss,
            row->acc);
    if (row->val[0] >= 0) {
        for (int k = 0; k < o->n_val_shots; k++)
            fprintf(o->log, "%s%d-shot %.4f", k ? " " : " val ", o->val_shots[k], row->val[k]);
        fprintf(o->log, "%s", t->best_epoch == e + 1 ? " (best)" : "");
    }
    fprintf(o->log, " %.1f s\n", row->seconds);
    /* watch for subnormal weights (dead filters decayed towards zero): they count as zero
     * here (threads.h), but a checkpoint full of them slows any peer that does not flush */
    long n;
    const float *p = fsb_model_params(t->model, &n);
    long sub = fsb_count_subnormal(p, n);
    if (sub) fprintf(o->log, "note: %ld parameters are subnormal floats after this epoch\n", sub);
    fflush(o->log);
}

/* Epoch e: train, validate when due (keeping the best checkpoint), save the state. */
static int run_epoch(trainer *t, int e, long *steps_here, int writer)
{
    const fsb_pretrain_opts *o = t->o;
    double t0 = fsb_now();
    log_row *row = &t->rows[e];
    memset(row, 0, sizeof *row);
    row->epoch = e + 1;
    for (int k = 0; k < FSB_PRETRAIN_MAX_VAL_SHOTS; k++)
        row->val[k] = -1;
    int st = o->objective == FSB_PRETRAIN_MAML ? fsb_pretrain_maml_epoch(t, e, steps_here, row)
             : o->objective != FSB_PRETRAIN_CE ? train_epoch_episodic(t, e, steps_here, row)
                                               : train_epoch(t, e, steps_here, row);
    if (st || (st = fsb_pretrain_dist_average_bn(t->model))) return st;
    if ((e + 1) % o->val_every == 0 || e + 1 == o->epochs) {
        if ((st = validate(t, row->val))) return st;
        double score = 0;
        for (int k = 0; k < o->n_val_shots; k++)
            score += row->val[k];
        score /= o->n_val_shots;
        if (score > t->best) {
            if (writer && (st = save_best(t, row, e + 1))) return st;
            t->best = score;
            t->best_epoch = e + 1;
        }
    }
    row->seconds = fsb_now() - t0;
    t->epochs_done = e + 1;
    if (writer && ((st = save_state(t)) || (st = write_log_and_plot(t)))) return st;
    if (o->log) log_epoch(t, row, e);
    return FSB_OK;
}

int fsb_pretrain(const fsb_pretrain_opts *o)
{
    if (!o->data) return fsb_error(FSB_EINVAL, "--data is required");
    if (!o->out) return fsb_error(FSB_EINVAL, "--out is required");
    if (o->objective < FSB_PRETRAIN_CE || o->objective > FSB_PRETRAIN_MAML)
        return fsb_error(FSB_EINVAL, "--objective: unknown objective %d", o->objective);
    if (o->objective != FSB_PRETRAIN_CE && fsb_dist_size() > 1)
        return fsb_error(FSB_EINVAL,
                         "--objective %s: data-parallel training under mpirun is for ce only; "
                         "run it as one process",
                         objective_name(o->objective));
    fsb_pretrain_opts eff = *o; /* o with the defaults that depend on other settings */
    if (eff.lr < 0) eff.lr = eff.objective != FSB_PRETRAIN_CE ? 0.001 : 0.1;
    if (eff.objective == FSB_PRETRAIN_MAML) { /* Finn's: ConvNet-4-32, a constant lr */
        if (!eff.arch_set && !eff.init && !eff.width) eff.width = 32;
        if (!eff.schedule) eff.schedule = "constant";
    }
    o = &eff;
    trainer t;
    memset(&t, 0, sizeof t);
    t.o = &eff;
    int st = fsb_pool_create(&t.pool, o->threads), resumed = 0;
    if (st) return st;
    fsb_blas_set_threads(1);
    /* mpirun (pretrain_dist.h): rank 0 packs the caches first, then the others set up */
    int writer = fsb_dist_rank() == 0;
    if ((st = fsb_pretrain_dist_check(o->batch)) || (!writer && (st = fsb_dist_barrier())))
        goto done;
    if ((st = setup(&t, &eff)) || (st = fsb_pretrain_dist_identity(&t.identity)) ||
        (writer && (st = fsb_dist_barrier())) || (st = load_state(&t, &resumed)))
        goto done;
    /* a kill between the state's rename and the log's would leave the CSV and plot behind
     * the state: bring them level with it (the same bytes when they already are) */
    if (resumed && writer && (st = write_log_and_plot(&t))) goto done;
    if (o->log) log_start(&t, resumed);
    long steps_here = 0;
    for (int e = t.epochs_done; e < o->epochs && !st; e++)
        st = run_epoch(&t, e, &steps_here, writer);
    if (!st && o->log)
        fprintf(o->log, "done: best epoch %d (val mean %.4f) in %s\n", t.best_epoch, t.best,
                o->out);
done:
    fsb_model_destroy(t.model);
    free(t.momentum);
    free(t.second);
    free(t.attn_mem);
    free(t.maml_grad);
    fsb_maml_work_free(&t.maml);
    free(t.subset);
    free(t.ep_count);
    free(t.rows);
    free(t.identity);
    free(t.state_path), free(t.csv_path), free(t.png_path), free(t.gp_path);
    fsb_sweep_free(&t.val_sweep);
    fsb_cache_close(&t.train);
    fsb_cache_close(&t.val);
    fsb_pool_destroy(t.pool);
    return st;
}
