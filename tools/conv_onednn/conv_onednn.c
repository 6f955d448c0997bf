/* conv_onednn.c - ConvNet-4's 3x3 convolutions in oneDNN beside fsbench's own conv path:
 * forward, backward-data and backward-weights GFLOP/s per layer shape and batch size, the
 * two interleaved A B A B (the machine is shared). A measurement helper, never linked into
 * the library or `bench`; built by CMake (FSB_TOOLS) only where oneDNN is installed
 * (Debian libdnnl-dev). See README.md.
 *
 * usage: conv_onednn [THREADS [BATCHES [FILTERS [ITERS]]]]   e.g. conv_onednn 2 5,64 64 20
 *
 * Shapes: 3x3 convolutions, stride 1, padding 1, no bias, of ConvNet-4 at 84x84:
 * 84x84x3 -> F, 42x42xF -> F, 21x21xF -> F, 10x10xF -> F. fsbench's path is the engine's
 * conv kernels without the fused BN/ReLU/pool (so it is the convolution share only): the
 * direct 3->F conv, im2col + OpenBLAS sgemm in the engine's row tiles, per-chunk weight
 * gradients (4 chunks) and the input gradient through the flipped kernel, on the engine's
 * worker pool (tasks per (image, row tile)). oneDNN gets NCHW-shaped descriptors with
 * format "any", so it picks its blocked layouts; its time excludes the reorders from and
 * to NCHW, which are reported apart (an engine that kept oneDNN's layout would not pay
 * them per layer). oneDNN threads: OMP_NUM_THREADS, which the program sets to THREADS by
 * re-executing itself (libgomp reads it at load), as it sets OPENBLAS_CORETYPE=SkylakeX
 * for OpenBLAS when the CPU has AVX-512 and the variable is unset.
 */
#define _POSIX_C_SOURCE 200809L
#include "fsb/blas.h"
#include "fsb/layers.h"
#include "fsb/rng.h"
#include "fsb/threads.h"

#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        dnnl_status_t s_ = (call);                                                                 \
        if (s_ != dnnl_success) {                                                                  \
            fprintf(stderr, "conv_onednn: %s failed (status %d) at line %d\n", #call, (int)s_,     \
                    __LINE__);                                                                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

enum { CHUNKS = 4 }; /* the engine's default grad_splits */

/* One layer shape and batch, with every buffer of both engines. */
typedef struct layer {
    int n, c, hw, oc;                /* batch, input channels, side, output channels */
    float *x, *w, *y, *dy, *dx, *dw; /* NCHW / OIHW, fsbench's path */
    float *wflip;                    /* (c, oc, 3, 3) flipped kernel for dx */
    float *partial;                  /* CHUNKS x (oc, c*9) weight-gradient partials */
    float **col;                     /* per worker: im2col scratch */
    int R;                           /* rows per tile, as the engine's tile_rows */
} layer;

/* The engine's tile rule (src/model_run.c tile_rows): one im2col tile of <= 512 KB, at
 * least 4*M columns. */
static int tile_rows(int h, int w, int K, int M)
{
    long r = 128L * 1024 / ((long)K * w), rmin = (4L * M + w - 1) / w;
    if (r < rmin) r = rmin;
    return r < 1 ? 1 : r > h ? h : (int)r;
}

static double gflop(const layer *L)
{
    return 2e-9 * L->n * L->oc * L->c * 9.0 * L->hw * L->hw;
}

/* ---- fsbench's path --------------------------------------------------------------------- */

static void task_fwd(void *ctx, int t, int worker)
{
    layer *L = ctx;
    int HW = L->hw * L->hw, K = L->c * 9, tiles = (L->hw + L->R - 1) / L->R;
    if (L->c <= 4) { /* the direct conv, whole image (task = image) */
        fsb_conv3_small_forward(L->y + (long)t * L->oc * HW, NULL, L->col[worker],
                                L->x + (long)t * L->c * HW, L->w, L->c, L->hw, L->hw, L->oc, 1);
        return;
    }
    int i = t / tiles, y0 = t % tiles * L->R, y1 = y0 + L->R < L->hw ? y0 + L->R : L->hw;
    const float *x = L->x + (long)i * L->c * HW;
    float *y = L->y + (long)i * L->oc * HW;
    int N = (y1 - y0) * L->hw;
    fsb_im2col_rows(L->col[worker], x, L->c, L->hw, L->hw, 3, y0, y1);
    fsb_sgemm(0, 0, L->oc, N, K, 1.0f, L->w, K, L->col[worker], N, 0.0f, y + y0 * L->hw, HW);
}

static void task_dw(void *ctx, int t, int worker)
{
    layer *L = ctx;
    int HW = L->hw * L->hw, K = L->c * 9;
    int lo = t * L->n / CHUNKS, hi = (t + 1) * L->n / CHUNKS;
    float *pw = L->partial + (long)t * L->oc * K;
    for (int i = lo; i < hi; i++) {
        const float *x = L->x + (long)i * L->c * HW, *d = L->dy + (long)i * L->oc * HW;
        if (L->c <= 4) {
            fsb_conv3_small_dweight(pw, L->col[worker], d, x, L->c, L->hw, L->hw, L->oc, i != lo,
                                    1);
            continue;
        }
        for (int y0 = 0; y0 < L->hw; y0 += L->R) {
            int y1 = y0 + L->R < L->hw ? y0 + L->R : L->hw, N = (y1 - y0) * L->hw;
            fsb_im2col_rows(L->col[worker], x, L->c, L->hw, L->hw, 3, y0, y1);
            fsb_sgemm(0, 1, L->oc, K, N, 1.0f, d + y0 * L->hw, HW, L->col[worker], N,
                      i == lo && y0 == 0 ? 0.0f : 1.0f, pw, K);
        }
    }
}

static void task_dx(void *ctx, int t, int worker)
{
    layer *L = ctx;
    int HW = L->hw * L->hw, KO = L->oc * 9, tiles = (L->hw + L->R - 1) / L->R;
    int i = t / tiles, y0 = t % tiles * L->R, y1 = y0 + L->R < L->hw ? y0 + L->R : L->hw;
    int N = (y1 - y0) * L->hw;
    fsb_im2col_rows(L->col[worker], L->dy + (long)i * L->oc * HW, L->oc, L->hw, L->hw, 3, y0, y1);
    fsb_sgemm(0, 0, L->c, N, KO, 1.0f, L->wflip, KO, L->col[worker], N, 0.0f,
              L->dx + (long)i * L->c * HW + y0 * L->hw, HW);
}

static void ours_fwd(layer *L, fsb_pool *pool)
{
    int tiles = L->c <= 4 ? 1 : (L->hw + L->R - 1) / L->R;
    fsb_pool_run(pool, L->n * tiles, task_fwd, L);
}

static void ours_bwd_weights(layer *L, fsb_pool *pool)
{
    fsb_pool_run(pool, CHUNKS, task_dw, L);
    long wn = (long)L->oc * L->c * 9;
    memcpy(L->dw, L->partial, sizeof(float) * (size_t)wn);
    for (int t = 1; t < CHUNKS; t++)
        for (long q = 0; q < wn; q++)
            L->dw[q] += L->partial[t * wn + q];
}

static void ours_bwd_data(layer *L, fsb_pool *pool)
{
    for (int o = 0; o < L->oc; o++)
        for (int c = 0; c < L->c; c++)
            for (int q = 0; q < 9; q++)
                L->wflip[((long)c * L->oc + o) * 9 + q] = L->w[((long)o * L->c + c) * 9 + 8 - q];
    fsb_pool_run(pool, L->n * ((L->hw + L->R - 1) / L->R), task_dx, L);
}

/* ---- oneDNN ------------------------------------------------------------------------------ */

typedef struct dnn {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_primitive_t fwd, bwd_d, bwd_w, to_blk, from_blk; /* reorders: src in, dst out */
    dnnl_memory_t src, wei, dst, diff_src, diff_wei, diff_dst, src_nchw, dst_nchw;
    const char *impl[3]; /* implementation names (fwd, bwd data, bwd weights) */
} dnn;

static dnnl_memory_t mem_for(dnnl_primitive_desc_t pd, dnnl_query_t what, dnnl_engine_t eng)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, 0);
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    void *p;
    CHECK(dnnl_memory_get_data_handle(m, &p));
    fsb_rng r;
    fsb_rng_init(&r, 5, (uint64_t)what);
    size_t nf = dnnl_memory_desc_get_size(md) / sizeof(float);
    for (size_t i = 0; i < nf; i++)
        ((float *)p)[i] = (float)fsb_rng_normal(&r) * 0.1f;
    return m;
}

static void dnn_setup(dnn *d, const layer *L)
{
    CHECK(dnnl_engine_create(&d->eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&d->st, d->eng, dnnl_stream_default_flags));
    dnnl_dims_t sd = {L->n, L->c, L->hw, L->hw}, wd = {L->oc, L->c, 3, 3},
                dd = {L->n, L->oc, L->hw, L->hw}, strides = {1, 1}, pad = {1, 1};
    dnnl_memory_desc_t src, wei, dst, nchw_src, nchw_dst;
    CHECK(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&nchw_src, 4, sd, dnnl_f32, dnnl_nchw));
    CHECK(dnnl_memory_desc_init_by_tag(&nchw_dst, 4, dd, dnnl_f32, dnnl_nchw));
    dnnl_convolution_desc_t cf, cbd, cbw;
    CHECK(dnnl_convolution_forward_desc_init(&cf, dnnl_forward_training, dnnl_convolution_direct,
                                             &src, &wei, NULL, &dst, strides, pad, pad));
    CHECK(dnnl_convolution_backward_data_desc_init(&cbd, dnnl_convolution_direct, &src, &wei, &dst,
                                                   strides, pad, pad));
    CHECK(dnnl_convolution_backward_weights_desc_init(&cbw, dnnl_convolution_direct, &src, &wei,
                                                      NULL, &dst, strides, pad, pad));
    dnnl_primitive_desc_t pf, pbd, pbw, pto, pfrom;
    CHECK(dnnl_primitive_desc_create(&pf, &cf, NULL, d->eng, NULL));
    CHECK(dnnl_primitive_desc_create(&pbd, &cbd, NULL, d->eng, pf));
    CHECK(dnnl_primitive_desc_create(&pbw, &cbw, NULL, d->eng, pf));
    dnnl_primitive_desc_t pds[3] = {pf, pbd, pbw};
    for (int k = 0; k < 3; k++) {
        const char *s = NULL;
        CHECK(dnnl_primitive_desc_query(pds[k], dnnl_query_impl_info_str, 0, &s));
        d->impl[k] = s ? strdup(s) : "?";
    }
    d->src = mem_for(pf, dnnl_query_src_md, d->eng);
    d->wei = mem_for(pf, dnnl_query_weights_md, d->eng);
    d->dst = mem_for(pf, dnnl_query_dst_md, d->eng);
    d->diff_src = mem_for(pbd, dnnl_query_diff_src_md, d->eng);
    d->diff_dst = mem_for(pbw, dnnl_query_diff_dst_md, d->eng);
    d->diff_wei = mem_for(pbw, dnnl_query_diff_weights_md, d->eng);
    CHECK(dnnl_memory_create(&d->src_nchw, &nchw_src, d->eng, L->x));
    CHECK(dnnl_memory_create(&d->dst_nchw, &nchw_dst, d->eng, L->y));
    CHECK(dnnl_reorder_primitive_desc_create(&pto, &nchw_src, d->eng,
                                             dnnl_primitive_desc_query_md(pf, dnnl_query_src_md, 0),
                                             d->eng, NULL));
    CHECK(dnnl_reorder_primitive_desc_create(&pfrom,
                                             dnnl_primitive_desc_query_md(pf, dnnl_query_dst_md, 0),
                                             d->eng, &nchw_dst, d->eng, NULL));
    CHECK(dnnl_primitive_create(&d->fwd, pf));
    CHECK(dnnl_primitive_create(&d->bwd_d, pbd));
    CHECK(dnnl_primitive_create(&d->bwd_w, pbw));
    CHECK(dnnl_primitive_create(&d->to_blk, pto));
    CHECK(dnnl_primitive_create(&d->from_blk, pfrom));
    dnnl_primitive_desc_t all[5] = {pf, pbd, pbw, pto, pfrom};
    for (int k = 0; k < 5; k++)
        dnnl_primitive_desc_destroy(all[k]);
}

static void dnn_free(dnn *d)
{
    dnnl_primitive_t p[5] = {d->fwd, d->bwd_d, d->bwd_w, d->to_blk, d->from_blk};
    for (int k = 0; k < 5; k++)
        dnnl_primitive_destroy(p[k]);
    dnnl_memory_t m[8] = {d->src,      d->wei,      d->dst,      d->diff_src,
                          d->diff_wei, d->diff_dst, d->src_nchw, d->dst_nchw};
    for (int k = 0; k < 8; k++)
        dnnl_memory_destroy(m[k]);
    dnnl_stream_destroy(d->st);
    dnnl_engine_destroy(d->eng);
}

static void run2(dnn *d, dnnl_primitive_t p, int na, const dnnl_exec_arg_t *a)
{
    CHECK(dnnl_primitive_execute(p, d->st, na, a));
    CHECK(dnnl_stream_wait(d->st));
}

/* op 0 forward, 1 backward data, 2 backward weights, 3 the two NCHW reorders. */
static void dnn_op(dnn *d, int op)
{
    if (op == 0) {
        dnnl_exec_arg_t a[3] = {
            {DNNL_ARG_SRC, d->src}, {DNNL_ARG_WEIGHTS, d->wei}, {DNNL_ARG_DST, d->dst}};
        run2(d, d->fwd, 3, a);
    } else if (op == 1) {
        dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, d->diff_dst},
                                {DNNL_ARG_WEIGHTS, d->wei},
                                {DNNL_ARG_DIFF_SRC, d->diff_src}};
        run2(d, d->bwd_d, 3, a);
    } else if (op == 2) {
        dnnl_exec_arg_t a[3] = {{DNNL_ARG_SRC, d->src},
                                {DNNL_ARG_DIFF_DST, d->diff_dst},
                                {DNNL_ARG_DIFF_WEIGHTS, d->diff_wei}};
        run2(d, d->bwd_w, 3, a);
    } else {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, d->src_nchw}, {DNNL_ARG_TO, d->src}};
        run2(d, d->to_blk, 2, a);
        dnnl_exec_arg_t b[2] = {{DNNL_ARG_FROM, d->dst}, {DNNL_ARG_TO, d->dst_nchw}};
        run2(d, d->from_blk, 2, b);
    }
}

/* ---- driver ------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *randf(long n, uint64_t seed)
{
    float *p = malloc(sizeof(float) * (size_t)n);
    fsb_rng r;
    fsb_rng_init(&r, seed, 0);
    for (long i = 0; i < n && p; i++)
        p[i] = (float)fsb_rng_normal(&r) * 0.1f;
    return p;
}

/* Set an environment variable and re-execute when it differs (read at library load). */
static void ensure_env(char **argv, const char *name, const char *value, int only_if_unset)
{
    const char *cur = getenv(name);
    if (cur && (only_if_unset || !strcmp(cur, value))) return;
    setenv(name, value, 1);
    execv("/proc/self/exe", argv);
    perror("conv_onednn: re-exec");
    exit(1);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2, filters = argc > 3 ? atoi(argv[3]) : 64;
    int iters = argc > 4 ? atoi(argv[4]) : 20;
    const char *batches = argc > 2 ? argv[2] : "5,64";
    if (threads < 1 || filters < 8 || iters < 1) {
        fprintf(stderr, "usage: conv_onednn [THREADS [BATCHES [FILTERS [ITERS]]]]\n");
        return 2;
    }
    char tbuf[16];
    snprintf(tbuf, sizeof tbuf, "%d", threads);
    ensure_env(argv, "OMP_NUM_THREADS", tbuf, 0);
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) ensure_env(argv, "OPENBLAS_CORETYPE", "SkylakeX", 1);
    fsb_blas_set_threads(1);
    fsb_pool *pool;
    if (fsb_pool_create(&pool, threads)) return 1;
    const dnnl_version_t *v = dnnl_version();
    printf("oneDNN %d.%d.%d (OMP_NUM_THREADS %s), fsbench: %d workers, OpenBLAS core %s; "
           "%d iterations, medians, A B interleaved\n",
           v->major, v->minor, v->patch, getenv("OMP_NUM_THREADS"), threads, fsb_blas_core(),
           iters);
    printf("GFLOP/s of the convolution alone (fwd, backward data, backward weights); oneDNN's\n"
           "NCHW reorders of src and dst apart, in ms\n");
    printf("%-16s %5s | %-25s | %-25s | %9s  %s\n", "layer", "batch", "fsbench fwd bwd-d bwd-w",
           "oneDNN fwd bwd-d bwd-w", "reord ms", "oneDNN kernel");
    static const int shapes[4][2] = {{3, 84}, {-1, 42}, {-1, 21}, {-1, 10}};
    for (const char *b = batches; *b;) {
        int n = atoi(b);
        for (int s = 0; s < 4; s++) {
            layer L = {.n = n,
                       .c = shapes[s][0] > 0 ? shapes[s][0] : filters,
                       .hw = shapes[s][1],
                       .oc = filters};
            long HW = (long)L.hw * L.hw, wn = (long)L.oc * L.c * 9;
            L.x = randf(n * L.c * HW, 1), L.w = randf(wn, 2), L.dy = randf(n * L.oc * HW, 3);
            L.y = randf(n * L.oc * HW, 4), L.dx = randf(n * L.c * HW, 5), L.dw = randf(wn, 6);
            L.wflip = randf(wn, 7), L.partial = randf(CHUNKS * wn, 8);
            L.R = tile_rows(L.hw, L.hw, (L.c > L.oc ? L.c : L.oc) * 9, L.oc > L.c ? L.oc : L.c);
            long colmax = (long)(L.c > L.oc ? L.c : L.oc) * 9 * L.R * L.hw,
                 small = fsb_conv3_small_scratch(L.c, L.hw, L.hw, L.oc);
            L.col = malloc(sizeof *L.col * (size_t)threads);
            for (int w = 0; w < threads; w++)
                L.col[w] = randf(colmax > small ? colmax : small, 9);
            dnn d;
            dnn_setup(&d, &L);
            double *t = malloc(sizeof(double) * 7 * (size_t)iters);
            for (int it = -1; it < iters; it++) /* one warm-up round, then A B A B ... */
                for (int op = 0; op < 7; op++) {
                    double t0 = fsb_now();
                    if (op == 0) ours_fwd(&L, pool);
                    if (op == 1 && L.c > 4) ours_bwd_data(&L, pool);
                    if (op == 2) ours_bwd_weights(&L, pool);
                    if (op >= 3) dnn_op(&d, op - 3);
                    if (it >= 0) t[op * iters + it] = fsb_now() - t0;
                }
            double med[7], g = gflop(&L);
            for (int op = 0; op < 7; op++)
                med[op] = median(t + op * iters, iters);
            char name[32];
            snprintf(name, sizeof name, "%dx%dx%d->%d", L.hw, L.hw, L.c, L.oc);
            char bd[16]; /* the engine never computes the images' gradient */
            snprintf(bd, sizeof bd, L.c > 4 ? "%.1f" : "-", g / med[1]);
            printf("%-16s %5d | %7.1f %8s %8.1f | %7.1f %8.1f %8.1f | %9.3f  %s\n", name, n,
                   g / med[0], bd, g / med[2], g / med[3], g / med[4], g / med[5], 1e3 * med[6],
                   d.impl[0]);
            dnn_free(&d);
            for (int w = 0; w < threads; w++)
                free(L.col[w]);
            free(L.col), free(t), free(L.x), free(L.w), free(L.dy), free(L.y), free(L.dx);
            free(L.dw), free(L.wflip), free(L.partial);
        }
        while (*b && *b != ',')
            b++;
        if (*b == ',') b++;
    }
    fsb_pool_destroy(pool);
    return 0;
}
