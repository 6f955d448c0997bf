/* maml_hvp.c - how well MAML's finite-difference Hessian-vector products (src/maml.c) work on
 * a given ConvNet-4, and what a meta-gradient costs. A random task (N(0,1) images plus a
 * class pattern) on a randomly initialised network; single-threaded. Not built by default
 * (cmake -DFSB_TOOLS=ON builds it as tool_maml_hvp); see README.md.
 *
 * usage: maml_hvp HW WIDTH WAY SHOT QUERY K [SEED]
 *   e.g. maml_hvp 84 32 5 5 15 1     (the MAML network, 5-way 5-shot, one inner step)
 * Prints: the cost of one support / query gradient and of a meta-gradient (first and second
 * order); the second-order term (G_fo - G) / alpha for hvp_eps 1e-2 .. 1e-7 and its change
 * between neighbouring steps (a plateau = the quotient is a Hessian); and, for a few hvp_eps,
 * the slope of the whole unrolled loss along d = unit(G - G_fo) by central differences at
 * several steps, next to G.d and G_fo.d.
 */
#define _POSIX_C_SOURCE 200809L
#include "fsb/layers.h"
#include "fsb/maml.h"
#include "fsb/model.h"
#include "fsb/status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct setup {
    fsb_model *m;    /* the network */
    float *sx, *qx;  /* support / query images */
    int *sy, *qy;    /* labels */
    int ns, nq, way; /* counts */
    long n;          /* parameters */
    fsb_maml_work w; /* scratch */
    fsb_maml_opts o; /* k, alpha */
} setup;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void images(float *x, int *y, int n, int per_class, long img, const float *pat, fsb_rng *r)
{
    for (int i = 0; i < n; i++) {
        y[i] = i / per_class;
        for (long j = 0; j < img; j++)
            x[(long)i * img + j] = (float)fsb_rng_normal(r) + pat[(long)y[i] * img + j];
    }
}

static int make(setup *s, int hw, int width, int shot, int query, int k, uint64_t seed)
{
    fsb_model_opts o;
    fsb_model_opts_default(&o, FSB_ARCH_CONV4);
    for (int i = 0; i < 4; i++)
        o.widths[i] = width;
    o.in_hw = hw;
    o.flatten = 1;
    s->ns = s->way * shot, s->nq = s->way * query;
    fsb_rng r;
    fsb_rng_init(&r, seed, 1);
    int st = fsb_model_create(&s->m, &o, s->way, s->ns > s->nq ? s->ns : s->nq, NULL, &r);
    if (st) return st;
    long img = 3L * hw * hw;
    float *pat = malloc(sizeof(float) * (size_t)(s->way * img));
    s->sx = malloc(sizeof(float) * (size_t)(s->ns * img));
    s->qx = malloc(sizeof(float) * (size_t)(s->nq * img));
    s->sy = malloc(sizeof(int) * (size_t)s->ns);
    s->qy = malloc(sizeof(int) * (size_t)s->nq);
    if (!pat || !s->sx || !s->qx || !s->sy || !s->qy) return fsb_error(FSB_ENOMEM, "no memory");
    fsb_rng_init(&r, seed, 2);
    for (long j = 0; j < s->way * img; j++)
        pat[j] = 0.5f * (float)fsb_rng_normal(&r);
    images(s->sx, s->sy, s->ns, shot, img, pat, &r);
    images(s->qx, s->qy, s->nq, query, img, pat, &r);
    free(pat);
    fsb_model_params(s->m, &s->n);
    fsb_maml_opts_default(&s->o);
    s->o.inner_steps = k;
    return fsb_maml_work_init(&s->w, s->m, k);
}

static int meta(setup *s, int first_order, double eps, float *G)
{
    fsb_maml_opts o = s->o;
    o.first_order = first_order;
    o.hvp_eps = eps;
    return fsb_maml_meta_grad(s->m, s->sx, s->sy, s->ns, s->qx, s->qy, s->nq, &o, G, NULL, NULL,
                              &s->w);
}

/* Best of 3 (the first call also faults pages in). */
static void cost(setup *s, float *G)
{
    double t[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
    for (int rep = 0; rep < 3; rep++)
        for (int v = 0; v < 4; v++) {
            double t0 = now();
            if (v == 0) fsb_model_train_step(s->m, s->sx, s->sy, s->ns, NULL, NULL);
            if (v == 1) fsb_model_train_step(s->m, s->qx, s->qy, s->nq, NULL, NULL);
            if (v >= 2) meta(s, v == 2, 3e-3, G);
            t0 = now() - t0;
            t[v] = t0 < t[v] ? t0 : t[v];
        }
    printf("%ld parameters; ms: support gradient %.3g, query gradient %.3g, meta-gradient "
           "first order %.3g (%.1fx support), second order %.3g (%.1fx)\n",
           s->n, 1e3 * t[0], 1e3 * t[1], 1e3 * t[2], t[2] / t[0], 1e3 * t[3], t[3] / t[0]);
}

/* The unrolled loss at the current parameters (k steps, then the query loss). */
static double unrolled(setup *s)
{
    float *p = fsb_model_params(s->m, &s->n);
    const float *g = fsb_model_grads(s->m, &s->n), *lg;
    float *save = malloc(sizeof(float) * (size_t)s->n);
    memcpy(save, p, sizeof(float) * (size_t)s->n);
    for (int t = 0; t < s->o.inner_steps; t++) {
        fsb_model_train_step(s->m, s->sx, s->sy, s->ns, NULL, NULL);
        for (long i = 0; i < s->n; i++)
            p[i] -= s->o.inner_lr * g[i];
    }
    fsb_model_forward(s->m, s->qx, s->nq, 1, NULL, NULL, &lg);
    double l = fsb_softmax_xent(NULL, NULL, lg, s->qy, s->nq, s->way, 1);
    memcpy(p, save, sizeof(float) * (size_t)s->n);
    free(save);
    return l;
}

static double slope(setup *s, const double *d, double h)
{
    float *p = fsb_model_params(s->m, &s->n), *save = malloc(sizeof(float) * (size_t)s->n);
    memcpy(save, p, sizeof(float) * (size_t)s->n);
    double f[2];
    for (int j = 0; j < 2; j++) {
        for (long i = 0; i < s->n; i++)
            p[i] = (float)(save[i] + (j ? -h : h) * d[i]);
        f[j] = unrolled(s);
    }
    memcpy(p, save, sizeof(float) * (size_t)s->n);
    free(save);
    return (f[0] - f[1]) / (2 * h);
}

static void sweep(setup *s, const float *G1, float *G)
{
    int first = 1;
    float *prev = calloc((size_t)s->n, sizeof(float));
    printf("hvp_eps   |second-order term / alpha|   change from the previous hvp_eps\n");
    for (double e = 1e-2; e > 3e-8; e /= sqrt(10)) {
        meta(s, 0, e, G);
        double hn = 0, dn = 0;
        for (long i = 0; i < s->n; i++) {
            float h = (G1[i] - G[i]) / s->o.inner_lr;
            hn += (double)h * h;
            dn += (double)(h - prev[i]) * (h - prev[i]);
            prev[i] = h;
        }
        if (first)
            printf("%.1e   %12.5g   -\n", e, sqrt(hn));
        else
            printf("%.1e   %12.5g   %.3g\n", e, sqrt(hn), sqrt(dn / hn));
        first = 0;
    }
    free(prev);
}

static void directions(setup *s, const float *G1, float *G)
{
    double *d = malloc(sizeof(double) * (size_t)s->n), tn = 0, eps[4] = {1e-2, 3e-3, 1e-3, 1e-4};
    const float *p = fsb_model_params(s->m, &s->n);
    for (long i = 0; i < s->n; i++)
        tn += (double)p[i] * p[i];
    tn = 1 + sqrt(tn);
    for (int j = 0; j < 4; j++) {
        meta(s, 0, eps[j], G);
        double dn = 0, so = 0, fo = 0;
        for (long i = 0; i < s->n; i++)
            d[i] = (double)G[i] - G1[i], dn += d[i] * d[i];
        for (long i = 0; i < s->n; i++) {
            d[i] /= sqrt(dn);
            so += G[i] * d[i], fo += G1[i] * d[i];
        }
        printf("d = unit(G - G_fo) at hvp_eps %.0e: G.d %.4g, G_fo.d %.4g; unrolled slope at "
               "step (1+|theta|) x",
               eps[j], so, fo);
        for (double h = 3e-3; h > 3e-5; h /= sqrt(10))
            printf(" %.0e: %.4g", h, slope(s, d, h * tn));
        printf("\n");
    }
    free(d);
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: maml_hvp HW WIDTH WAY SHOT QUERY K [SEED]\n");
        return 2;
    }
    setup s = {.way = atoi(argv[3])};
    int st = make(&s, atoi(argv[1]), atoi(argv[2]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]),
                  argc > 7 ? strtoull(argv[7], NULL, 10) : 1);
    if (st) {
        fprintf(stderr, "maml_hvp: %s\n", fsb_error_last());
        return 1;
    }
    float *G1 = malloc(sizeof(float) * (size_t)s.n), *G = malloc(sizeof(float) * (size_t)s.n);
    cost(&s, G);
    meta(&s, 1, 3e-3, G1);
    sweep(&s, G1, G);
    directions(&s, G1, G);
    free(G1), free(G);
    fsb_maml_work_free(&s.w);
    fsb_model_destroy(s.m);
    free(s.sx), free(s.qx), free(s.sy), free(s.qy);
    return 0;
}
