/* pretrain_maml.c - `bench pretrain --objective maml`: MAML meta-training (Finn et al. 2017)
 * on the trainer of pretrain.c (see include/fsb/pretrain.h and src/pretrain_internal.h).
 *
 * Meta-iteration s of epoch e draws meta_batch tasks; task k is protonet's episode with index
 * s * meta_batch + k (fsb_episode_sample, seed mix(mix(seed ^ TAG_EPIS) ^ e)), its images
 * through the val transform (no augmentation), so every draw is a pure function of (seed, e,
 * s, k). The tasks' meta-gradients (maml.h) are summed in task order and divided by
 * meta_batch into the model's gradient array, then one optimiser step. The BN running
 * statistics never change (maml.h restores them); validation adapts from theta on each val
 * episode and classifies its queries with batch statistics, as the original.
 */
#include "pretrain_internal.h"
#include "fsb/progress.h"
#include "fsb/status.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fsb_pretrain_maml_setup(trainer *t)
{
    const fsb_pretrain_opts *o = t->o;
    long n;
    fsb_model_params(t->model, &n);
    int steps = o->inner_steps > o->inner_steps_test ? o->inner_steps : o->inner_steps_test;
    if (!(t->maml_grad = malloc(sizeof(float) * 2 * (size_t)n)))
        return fsb_error(FSB_ENOMEM, "out of memory");
    return fsb_maml_work_init(&t->maml, t->model, steps);
}

/* The maml.h options of training (test = 0) or validation (test = 1). */
static fsb_maml_opts maml_opts(const fsb_pretrain_opts *o, int test)
{
    fsb_maml_opts mo;
    fsb_maml_opts_default(&mo);
    mo.inner_steps = test ? o->inner_steps_test : o->inner_steps;
    mo.inner_lr = (float)o->inner_lr;
    mo.first_order = o->first_order;
    mo.hvp_eps = o->hvp_eps;
    return mo;
}

/* Task k of meta-iteration s: its meta-gradient into task, its query loss and hits added. */
static int one_task(trainer *t, fsb_episode *ep, const fsb_episode_params *p, uint64_t index,
                    int *buf, float *images, float *task, double *loss_sum, long *correct)
{
    const fsb_pretrain_opts *o = t->o;
    int way = o->train_way, shot = o->train_shot, ns = way * shot, nq = way * o->train_query;
    int *idx = buf, *sy = buf + ns + nq, *qy = sy + ns, *scratch = qy + nq;
    fsb_episode_sample(ep, &t->ep_split, p, index, scratch);
    fsb_episode_support_k(ep, shot, idx, sy);
    fsb_episode_queries(ep, idx + ns, qy);
    int st = fsb_pretrain_train_images(t, images, idx, ns + nq, 0, 0); /* augment is off */
    if (st) return st;
    fsb_maml_opts mo = maml_opts(o, 0);
    double loss = 0;
    int ok = 0;
    size_t img = (size_t)3 * o->crop * o->crop;
    st = fsb_maml_meta_grad(t->model, images, sy, ns, images + ns * img, qy, nq, &mo, task, &loss,
                            &ok, &t->maml);
    if (st) return fsb_error_wrap(st, "maml task %llu", (unsigned long long)index);
    *loss_sum += loss;
    *correct += ok;
    return FSB_OK;
}

int fsb_pretrain_maml_epoch(trainer *t, int e, long *steps_this_process, log_row *row)
{
    const fsb_pretrain_opts *o = t->o;
    int way = o->train_way, n = way * (o->train_shot + o->train_query), mb = o->meta_batch;
    int steps = o->train_episodes;
    fsb_episode ep;
    int st = fsb_episode_init(&ep, way, o->train_shot, o->train_query);
    if (st) return st;
    int *buf = malloc(sizeof(int) * (2 * (size_t)n + fsb_episode_scratch_len(&t->ep_split)));
    float *images = malloc(sizeof(float) * (size_t)n * 3 * o->crop * o->crop);
    if (!buf || !images) st = fsb_error(FSB_ENOMEM, "out of memory");
    long np;
    float *grads = fsb_model_grads(t->model, &np), *task = t->maml_grad, *sum = task + np;
    fsb_episode_params p;
    fsb_progress bar;
    fsb_pretrain_episodic_begin(t, e, "it", row, &p, &bar);
    double loss_sum = 0;
    long correct = 0;
    for (int s = 0; s < steps && !st; s++) {
        memset(sum, 0, sizeof(float) * (size_t)np);
        for (int k = 0; k < mb && !st; k++) {
            st = one_task(t, &ep, &p, (uint64_t)s * mb + k, buf, images, task, &loss_sum, &correct);
            for (long i = 0; !st && i < np; i++)
                sum[i] += task[i];
        }
        if (st) break;
        for (long i = 0; i < np; i++) /* the mean over the tasks */
            grads[i] = sum[i] / (float)mb;
        fsb_optim_step(&t->sgd);
        fsb_progress_update(&bar, s + 1);
        if (o->kill_after_steps > 0 && ++*steps_this_process >= o->kill_after_steps)
            raise(SIGKILL); /* fault injection: die mid-epoch like kill -9 */
    }
    fsb_progress_finish(&bar);
    row->loss = loss_sum / ((double)steps * mb);
    row->acc = (double)correct / ((double)steps * mb * way * o->train_query);
    fsb_episode_free(&ep);
    free(buf), free(images);
    return st;
}

/* Mean query accuracy over the val sweep at `shot`: inner_steps_test steps on each
 * episode's support from theta, then the queries in one train-mode batch (maml.h). */
static int val_accuracy(trainer *t, int shot, int *idx, int *pred, float *images, double *acc)
{
    const fsb_sweep *sw = &t->val_sweep;
    int way = sw->way, q = sw->query, ns = way * shot, nq = way * q, st = FSB_OK;
    int *sy = idx + ns + nq;
    fsb_maml_opts mo = maml_opts(t->o, 1);
    size_t img = (size_t)3 * t->o->crop * t->o->crop;
    double sum = 0;
    for (int e = 0; !st && e < sw->n_episodes; e++) {
        fsb_episode ep;
        fsb_sweep_episode(sw, e, &ep);
        for (int c = 0; c < way; c++) { /* label-major: supports, then queries */
            for (int j = 0; j < shot; j++)
                idx[c * shot + j] = ep.support[c * ep.max_shot + j], sy[c * shot + j] = c;
            for (int j = 0; j < q; j++)
                idx[ns + c * q + j] = ep.queries[c * ep.query + j];
        }
        st = fsb_transform_test_batch(images, t->val.px, t->val.size, t->val.size, t->val.channels,
                                      idx, ns + nq, &t->tf, t->pool);
        if (!st)
            st = fsb_maml_adapt_predict(t->model, images, sy, ns, images + ns * img, nq, &mo, NULL,
                                        pred, &t->maml);
        int correct = 0;
        for (int i = 0; !st && i < nq; i++)
            correct += pred[i] == i / q;
        sum += (double)correct / nq;
    }
    *acc = sum / sw->n_episodes;
    return st;
}

int fsb_pretrain_maml_validate(trainer *t, double *val)
{
    const fsb_pretrain_opts *o = t->o;
    int way = t->val_sweep.way, max_shot = o->val_shots[o->n_val_shots - 1];
    int n = way * (max_shot + t->val_sweep.query), st = FSB_OK;
    int *idx = malloc(sizeof(int) * 2 * (size_t)n), *pred = malloc(sizeof(int) * (size_t)n);
    float *images = malloc(sizeof(float) * (size_t)n * 3 * o->crop * o->crop);
    if (!idx || !pred || !images) st = fsb_error(FSB_ENOMEM, "out of memory");
    fsb_progress bar;
    fsb_progress_init(&bar, o->progress, "val", "shot", 0, o->n_val_shots);
    for (int k = 0; !st && k < o->n_val_shots; k++) {
        st = val_accuracy(t, o->val_shots[k], idx, pred, images, &val[k]);
        fsb_progress_update(&bar, k + 1);
    }
    fsb_progress_finish(&bar);
    free(idx), free(pred), free(images);
    return st;
}

int fsb_pretrain_maml_meta(const trainer *t, int epoch, const char **keys, const char **vals,
                           char buf[][32])
{
    const fsb_pretrain_opts *o = t->o;
    static const char *const names[FSB_PRETRAIN_MAML_META] = {
        "maml.inner_lr",  "maml.inner_steps", "maml.test_steps", "maml.order",
        "maml.train_way", "maml.train_shot",  "maml.meta_batch", "maml.iterations"};
    snprintf(buf[0], 32, "%.9g", o->inner_lr);
    snprintf(buf[1], 32, "%d", o->inner_steps);
    snprintf(buf[2], 32, "%d", o->inner_steps_test);
    snprintf(buf[3], 32, "%d", o->first_order ? 1 : 2);
    snprintf(buf[4], 32, "%d", o->train_way);
    snprintf(buf[5], 32, "%d", o->train_shot);
    snprintf(buf[6], 32, "%d", o->meta_batch);
    snprintf(buf[7], 32, "%lld", (long long)epoch * o->train_episodes);
    for (int k = 0; k < FSB_PRETRAIN_MAML_META; k++)
        keys[k] = names[k], vals[k] = buf[k];
    return FSB_PRETRAIN_MAML_META;
}
