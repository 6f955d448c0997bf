/* perf.c - `bench perf` workloads (see include/fsb/perf.h). Per (network, batch), the model,
 * inputs and optimiser state are allocated once; the timed loop allocates nothing. The
 * per-iteration time is the median of the timed iterations (robust to a noisy shared machine).
 */
#include "fsb/perf.h"
#include "fsb/model.h"
#include "fsb/rng.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One network of the sweep: its family, filters per block (0 = the family's default). */
typedef struct perf_net {
    const char *name; /* workload prefix */
    fsb_arch arch;    /* family */
    int width;        /* filters in every block, 0 = default widths */
} perf_net;

static int run_net(const perf_net *net, int batch, const fsb_perf_opts *o, fsb_pool *pool,
                   fsb_perf_result *res)
{
    fsb_arch arch = net->arch;
    int hw = o->in_hw > 0 ? o->in_hw : 84;
    int n_class = 64;
    fsb_model_opts mo;
    fsb_model_opts_default(&mo, arch);
    mo.in_hw = hw;
    mo.per_image = o->per_image;
    mo.conv = (fsb_conv_backend)o->conv;
    if (net->width > 0)
        for (int b = 0; b < 4; b++)
            mo.widths[b] = net->width;
    fsb_rng rng;
    fsb_rng_init(&rng, 1, 0);
    fsb_model *m = NULL;
    float *x = NULL, *emb = NULL, *mom = NULL;
    int *y = NULL;
    double *times = NULL;
    int st = fsb_model_create(&m, &mo, n_class, batch, pool, &rng);
    if (st) return st;
    long nx = (long)batch * 3 * hw * hw, np;
    fsb_model_params(m, &np);
    x = malloc(sizeof(float) * (size_t)nx);
    y = malloc(sizeof(int) * (size_t)batch);
    emb = malloc(sizeof(float) * (size_t)batch * (size_t)fsb_model_embed_dim(m));
    mom = calloc((size_t)np, sizeof(float));
    int max_iters = o->iters > 0 ? o->iters : 20;
    times = malloc(sizeof(double) * (size_t)(max_iters + 1));
    if (!x || !y || !emb || !mom || !times) {
        st = fsb_error(FSB_ENOMEM, "perf: out of memory");
        goto done;
    }
    for (long i = 0; i < nx; i++)
        x[i] = (float)fsb_rng_normal(&rng);
    for (int i = 0; i < batch; i++)
        y[i] = (int)fsb_rng_below(&rng, (uint32_t)n_class);
    int n_layers = fsb_model_profile_n(m);
    if (n_layers > FSB_PERF_MAX_LAYERS) n_layers = FSB_PERF_MAX_LAYERS;
    for (int train = 1; train >= 0; train--) {
        int iters = o->iters > 0             ? o->iters
                    : arch == FSB_ARCH_CONV4 ? (train ? 10 : 20)
                                             : (train ? 3 : 5);
        fsb_perf_result *r = &res[train ? 0 : 1];
        memset(r, 0, sizeof *r);
        snprintf(r->arch, sizeof r->arch, "%s", net->name);
        snprintf(r->workload, sizeof r->workload, "%s-%s", net->name, train ? "train" : "infer");
        r->train = train;
        r->batch = batch;
        r->iters = iters;
        for (int it = -1; it < iters; it++) {
            if (it == 0) fsb_model_profile_reset(m);
            double t0 = fsb_now();
            if (train) {
                double loss = fsb_model_train_step(m, x, y, batch, &rng, NULL);
                if (loss != loss) {
                    st = fsb_error(FSB_EINTERNAL, "perf: training step failed: %s",
                                   fsb_error_last());
                    goto done;
                }
                float *p = fsb_model_params(m, &np), *g = fsb_model_grads(m, &np);
                for (long i = 0; i < np; i++) {
                    mom[i] = 0.9f * mom[i] + g[i];
                    p[i] -= 1e-4f * mom[i];
                }
            } else if ((st = fsb_model_embed(m, x, batch, emb)) != 0) {
                goto done;
            }
            if (it >= 0) times[it] = fsb_now() - t0;
        }
        qsort(times, (size_t)iters, sizeof *times, cmp_double);
        r->seconds = iters % 2 ? times[iters / 2] : 0.5 * (times[iters / 2 - 1] + times[iters / 2]);
        r->img_s = batch / r->seconds;
        double flop = 0; /* per image over the whole network */
        r->n_layers = n_layers;
        for (int i = 0; i < fsb_model_profile_n(m); i++) {
            const char *name;
            double f, b, ff, fb;
            fsb_model_profile_at(m, i, &name, &f, &b);
            fsb_model_profile_flops(m, i, &ff, &fb);
            if (!train) fb = 0;
            flop += ff + fb;
            if (i >= n_layers) continue;
            fsb_perf_layer *l = &r->layers[i];
            snprintf(l->name, sizeof l->name, "%s", name);
            l->fwd = f / iters;
            l->bwd = b / iters;
            l->fwd_gflop = 1e-9 * ff * batch;
            l->bwd_gflop = 1e-9 * fb * batch;
        }
        r->gflop_s = 1e-9 * flop * r->img_s;
    }
done:
    free(x), free(y), free(emb), free(mom), free(times);
    fsb_model_destroy(m);
    return st;
}

int fsb_perf_run(const fsb_perf_opts *o, fsb_perf_result *res, int max_res, int *n_res)
{
    *n_res = 0;
    if (max_res < FSB_PERF_MAX_RESULTS)
        return fsb_error(FSB_EINVAL, "perf: need room for %d results", FSB_PERF_MAX_RESULTS);
    if (!o->conv4 && !o->conv4_32 && !o->res12)
        return fsb_error(FSB_EINVAL, "perf: no network selected");
    if (o->n_batches < 0 || o->n_batches > FSB_PERF_MAX_BATCHES)
        return fsb_error(FSB_EINVAL, "perf: %d batch sizes (at most %d)", o->n_batches,
                         FSB_PERF_MAX_BATCHES);
    for (int b = 0; b < o->n_batches; b++)
        if (o->batches[b] < 1) return fsb_error(FSB_EINVAL, "perf: batch %d", o->batches[b]);
    const perf_net nets[3] = {{"conv4", FSB_ARCH_CONV4, 0},
                              {"conv4-32", FSB_ARCH_CONV4, 32},
                              {"res12", FSB_ARCH_RES12, 0}};
    const int on[3] = {o->conv4, o->conv4_32, o->res12};
    fsb_pool *pool;
    int st = fsb_pool_create(&pool, o->threads);
    if (st) return st;
    for (int k = 0; k < 3 && !st; k++) {
        if (!on[k]) continue;
        int def = nets[k].arch == FSB_ARCH_CONV4 ? 64 : 32;
        int nb = o->n_batches > 0 ? o->n_batches : 1;
        for (int b = 0; b < nb && !st; b++) {
            int batch = o->n_batches > 0 ? o->batches[b] : def;
            if ((st = run_net(&nets[k], batch, o, pool, res + *n_res)) == 0) *n_res += 2;
        }
    }
    fsb_pool_destroy(pool);
    return st;
}
