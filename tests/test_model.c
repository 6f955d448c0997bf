/* test_model.c - the backbones end to end: finite-difference gradients of whole tiny models
 * (train and eval mode, from logits and from the embedding), bits independent of the
 * thread count, reproducible steps, frozen prefixes, head reset, teacher copies,
 * checkpoints, and parity with PyTorch fixtures (tests/fixtures/torch_*.fsbt).
 */
#include "fsb/layers.h"
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "fsb/threads.h"
#include "testutil.h"
/* the internal switch between the direct small-Cin conv and im2col (direct_conv) */
#include "../src/model_internal.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static float *rnd(long n, float scale, uint64_t seed)
{
    fsb_rng r;
    fsb_rng_init(&r, seed, 0);
    float *p = malloc(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++)
        p[i] = (float)fsb_rng_normal(&r) * scale;
    return p;
}

static fsb_model *tiny(fsb_arch arch, int hw, int n_class, int max_batch, fsb_pool *pool,
                       uint64_t seed, int drop)
{
    fsb_model_opts o;
    fsb_model_opts_default(&o, arch);
    for (int i = 0; i < 4; i++)
        o.widths[i] = arch == FSB_ARCH_CONV4 ? 4 : 3 + i;
    o.in_hw = hw;
    if (!drop) o.drop_rate = o.dropblock_rate = 0;
    fsb_rng r;
    fsb_rng_init(&r, seed, 1);
    fsb_model *m;
    ck_assert_int_eq(fsb_model_create(&m, &o, n_class, max_batch, pool, &r), FSB_OK);
    return m;
}

typedef struct {
    fsb_model *m;
    float *x;  /* images */
    int *y;    /* labels */
    float *we; /* weights on the embedding (demb mode) */
    int n, train, emb_mode;
} mctx;

static double model_loss(mctx *c)
{
    const float *emb, *lg;
    ck_assert_int_eq(fsb_model_forward(c->m, c->x, c->n, c->train, NULL, &emb, &lg), FSB_OK);
    if (c->emb_mode) {
        double s = 0;
        for (long i = 0; i < (long)c->n * fsb_model_embed_dim(c->m); i++)
            s += (double)emb[i] * c->we[i];
        return s;
    }
    return fsb_softmax_xent(NULL, NULL, lg, c->y, c->n, fsb_model_n_class(c->m), 1);
}

/* Central differences on up to `maxn` elements of x; skips kinks (one-sided differences
 * disagreeing); |num - g| <= tol * max|g|. Returns the number checked. */
static int fd(mctx *c, float *x, const float *g, long n, int maxn, float eps, double tol,
              const char *what)
{
    double gmax = 1e-3; /* floor: conv biases before a train-mode BN have exactly-zero gradients */
    for (long i = 0; i < n; i++)
        gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    long step = n > maxn ? n / maxn : 1;
    int checked = 0;
    for (long i = 0; i < n; i += step) {
        float x0 = x[i];
        double l0 = model_loss(c);
        x[i] = x0 + eps;
        double lp = model_loss(c);
        x[i] = x0 - eps;
        double lm = model_loss(c);
        x[i] = x0;
        double fw = (lp - l0) / eps, bw = (l0 - lm) / eps, num = (lp - lm) / (2 * eps);
        if (fabs(fw - bw) > 0.25 * tol * gmax) continue;
        ck_assert_msg(fabs(num - g[i]) <= tol * gmax, "%s[%ld]: numeric %g analytic %g (max %g)",
                      what, i, num, (double)g[i], gmax);
        checked++;
    }
    return checked;
}

/* flatten: ConvNet-4 with the flattened embedding on 32x32 (D = 4 * 2 * 2). dnnl: 16
 * channels per block and opts.conv = ONEDNN, so that every 3x3 conv after the first runs
 * on oneDNN. */
static void model_fd(fsb_arch arch, int train, int emb_mode, int flatten, int dnnl)
{
    int hw = flatten ? 32 : 16, n = 3, nc = 5;
    fsb_model *m;
    if (dnnl) {
        fsb_model_opts o;
        fsb_model_opts_default(&o, arch);
        for (int i = 0; i < 4; i++)
            o.widths[i] = 16;
        o.in_hw = hw;
        o.drop_rate = o.dropblock_rate = 0;
        o.conv = FSB_CONV_ONEDNN;
        fsb_rng r;
        fsb_rng_init(&r, 7, 1);
        ck_assert_int_eq(fsb_model_create(&m, &o, nc, n, NULL, &r), FSB_OK);
    } else if (flatten) {
        fsb_model_opts o;
        fsb_model_opts_default(&o, arch);
        for (int i = 0; i < 4; i++)
            o.widths[i] = 4;
        o.in_hw = hw;
        o.flatten = 1;
        fsb_rng r;
        fsb_rng_init(&r, 7, 1);
        ck_assert_int_eq(fsb_model_create(&m, &o, nc, n, NULL, &r), FSB_OK);
        ck_assert_int_eq(fsb_model_embed_dim(m), 16);
    } else {
        m = tiny(arch, hw, nc, n, NULL, 7, 0);
    }
    long nx = (long)n * 3 * hw * hw;
    mctx c = {.m = m, .n = n, .train = train, .emb_mode = emb_mode};
    c.x = rnd(nx, 1, 3);
    int y[3] = {1, 4, 0};
    c.y = y;
    c.we = rnd((long)n * fsb_model_embed_dim(m), 1, 4);
    /* analytic */
    float *dx = calloc((size_t)nx, sizeof(float));
    fsb_model_zero_grad(m);
    const float *emb, *lg;
    ck_assert_int_eq(fsb_model_forward(m, c.x, n, train, NULL, &emb, &lg), FSB_OK);
    float dl[15] = {0};
    if (emb_mode) {
        fsb_model_backward(m, NULL, c.we, dx);
    } else {
        fsb_softmax_xent(NULL, dl, lg, y, n, nc, 1);
        fsb_model_backward(m, dl, NULL, dx);
    }
    long np;
    float *g = fsb_model_grads(m, &np);
    float *gc = malloc(sizeof(float) * (size_t)np);
    memcpy(gc, g, sizeof(float) * (size_t)np);
    float *p = fsb_model_params(m, &np);
    int total = 0;
    for (int i = 0; i < fsb_model_n_tensors(m); i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        if (t.kind != FSB_T_PARAM) continue;
        if (emb_mode && t.block == 4) continue;
        total += fd(&c, t.data, gc + (t.data - p), t.numel, 6, 1e-3f, 2e-2, t.name);
    }
    ck_assert_int_gt(total, 40);
    /* ResNet-12's input gradient crosses many kinks (LeakyReLU, pools) within eps */
    ck_assert_int_gt(fd(&c, c.x, dx, nx, 40, 1e-3f, 2e-2, "input"), (arch == FSB_ARCH_CONV4 ? 10
                                                                     : dnnl                 ? 3
                                                                                            : 4));
    free(gc), free(dx), free(c.x), free(c.we);
    fsb_model_destroy(m);
}

START_TEST(conv4_gradients_fd)
{
    model_fd(FSB_ARCH_CONV4, 1, 0, 0, 0);
    model_fd(FSB_ARCH_CONV4, 0, 0, 0, 0);
    model_fd(FSB_ARCH_CONV4, 1, 1, 0, 0);
    model_fd(FSB_ARCH_CONV4, 1, 1, 1, 0);
    model_fd(FSB_ARCH_CONV4, 1, 0, 1, 0);
}
END_TEST

START_TEST(res12_gradients_fd)
{
    model_fd(FSB_ARCH_RES12, 1, 0, 0, 0);
    model_fd(FSB_ARCH_RES12, 0, 0, 0, 0);
    model_fd(FSB_ARCH_RES12, 1, 1, 0, 0);
}
END_TEST

/* Skip (with a message) without oneDNN, after checking that a model asking for it is
 * refused with a clear message. */
static int skip_without_onednn(const char *test)
{
    if (fsb_dnnl_available()) return 0;
    fsb_model_opts o;
    fsb_model_opts_default(&o, FSB_ARCH_CONV4);
    o.conv = FSB_CONV_ONEDNN;
    fsb_model *m = NULL;
    ck_assert_int_eq(fsb_model_create(&m, &o, 5, 2, NULL, NULL), FSB_EINVAL);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "built without oneDNN"));
    fprintf(stderr, "%s: skipped (fsbench built without oneDNN)\n", test);
    return 1;
}

/* Finite differences through models whose 16-channel 3x3 convs run on oneDNN. */
START_TEST(onednn_gradients_fd)
{
    if (skip_without_onednn("onednn_gradients_fd")) return;
    model_fd(FSB_ARCH_CONV4, 1, 0, 0, 1);
    model_fd(FSB_ARCH_CONV4, 0, 1, 0, 1);
    model_fd(FSB_ARCH_RES12, 1, 0, 0, 1);
}
END_TEST

START_TEST(shapes_names_and_dims)
{
    fsb_model_opts o;
    fsb_model_opts_default(&o, FSB_ARCH_RES12);
    fsb_model *m;
    ck_assert_int_eq(fsb_model_create(&m, &o, 64, 2, NULL, NULL), FSB_OK);
    ck_assert_int_eq(fsb_model_embed_dim(m), 640);
    int i = fsb_model_find_tensor(m, "encoder.layer3.0.downsample.0.weight");
    ck_assert_int_ge(i, 0);
    fsb_model_tensor t;
    fsb_model_tensor_at(m, i, &t);
    ck_assert_int_eq(t.ndim, 4);
    ck_assert_int_eq(t.dims[0], 320);
    ck_assert_int_eq(t.dims[1], 160);
    ck_assert_int_eq(t.dims[2], 1);
    fsb_model_tensor_at(m, 0, &t);
    ck_assert_str_eq(t.name, "encoder.layer1.0.conv1.weight");
    fsb_model_tensor_at(m, fsb_model_n_tensors(m) - 1, &t);
    ck_assert_str_eq(t.name, "fc.bias");
    long np;
    fsb_model_params(m, &np);
    long sum = 0;
    for (int j = 0; j < fsb_model_n_tensors(m); j++) {
        fsb_model_tensor_at(m, j, &t);
        sum += t.kind == FSB_T_PARAM ? t.numel : 0;
    }
    ck_assert_int_eq(np, sum);
    ck_assert_int_eq(np - 64 * 641, 12424320); /* the known ResNet-12 backbone size */
    int c, h, w;
    fsb_model_stage_shape(m, 2, &c, &h, &w);
    ck_assert_int_eq(c, 160);
    ck_assert_int_eq(h, 21);
    fsb_model_destroy(m);
    fsb_model_opts_default(&o, FSB_ARCH_CONV4);
    o.flatten = 1;
    ck_assert_int_eq(fsb_model_create(&m, &o, 0, 1, NULL, NULL), FSB_OK);
    ck_assert_int_eq(fsb_model_embed_dim(m), 1600);
    ck_assert_str_eq(((fsb_model_tensor_at(m, 2, &t)), t.name), "encoder.0.1.weight");
    fsb_model_destroy(m);
    o.in_hw = 8;
    ck_assert_int_eq(fsb_model_create(&m, &o, 0, 1, NULL, NULL), FSB_EINVAL);
    fsb_arch a;
    ck_assert_int_eq(fsb_arch_parse("res18", &a), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "res18"));
}
END_TEST

START_TEST(bits_independent_of_threads)
{
    for (int arch = 0; arch < 2; arch++) {
        int hw = 20, n = 5;
        fsb_pool *p2;
        ck_assert_int_eq(fsb_pool_create(&p2, 2), FSB_OK);
        fsb_model *a = tiny(arch, hw, 4, n, NULL, 11, 1);
        fsb_model *b = tiny(arch, hw, 4, n, p2, 11, 1);
        long nx = (long)n * 3 * hw * hw;
        float *x = rnd(nx, 1, 12);
        int D = fsb_model_embed_dim(a);
        float *ea = malloc(sizeof(float) * (size_t)(7 * D)), *eb = malloc(sizeof *eb * 7 * D);
        float *x7 = rnd(7L * 3 * hw * hw, 1, 13);
        ck_assert_int_eq(fsb_model_embed(a, x7, 7, ea), FSB_OK);
        ck_assert_int_eq(fsb_model_embed(b, x7, 7, eb), FSB_OK);
        ck_assert_int_eq(memcmp(ea, eb, sizeof(float) * 7 * (size_t)D), 0);
        /* an image's embedding does not depend on its batch */
        ck_assert_int_eq(fsb_model_embed(b, x7 + 3L * 3 * hw * hw, 1, eb), FSB_OK);
        ck_assert_int_eq(memcmp(ea + 3 * D, eb, sizeof(float) * (size_t)D), 0);
        /* training steps: same seed -> same bits, 1 or 2 threads */
        int y[5] = {0, 1, 2, 3, 0};
        for (int step = 0; step < 2; step++) {
            fsb_rng ra, rb;
            fsb_rng_init(&ra, 100 + step, 0);
            fsb_rng_init(&rb, 100 + step, 0);
            double la = fsb_model_train_step(a, x, y, n, &ra, NULL);
            double lb = fsb_model_train_step(b, x, y, n, &rb, NULL);
            ck_assert(la == lb);
            long np;
            float *ga = fsb_model_grads(a, &np), *gb = fsb_model_grads(b, &np);
            ck_assert_int_eq(memcmp(ga, gb, sizeof(float) * (size_t)np), 0);
            float *pa = fsb_model_params(a, &np), *pb = fsb_model_params(b, &np);
            for (long i = 0; i < np; i++)
                pa[i] -= 0.1f * ga[i], pb[i] -= 0.1f * gb[i];
        }
        for (int i = 0; i < fsb_model_n_tensors(a); i++) {
            fsb_model_tensor ta, tb;
            fsb_model_tensor_at(a, i, &ta);
            fsb_model_tensor_at(b, i, &tb);
            if (ta.kind == FSB_T_NUM_BATCHES)
                ck_assert_int_eq(*ta.count, 2);
            else
                ck_assert_int_eq(memcmp(ta.data, tb.data, sizeof(float) * (size_t)ta.numel), 0);
        }
        free(x), free(x7), free(ea), free(eb);
        fsb_model_destroy(a);
        fsb_model_destroy(b);
        fsb_pool_destroy(p2);
    }
}
END_TEST

/* Every output and gradient of two training steps at batch n, then an input gradient and
 * eval embeddings, with `threads` workers (1 = no pool); per_image: opts.per_image (one
 * task per image) instead of the small-batch split. Returns the bytes hashed
 * (FNV-1a) so runs compare by value. */
static uint64_t step_hash(fsb_arch arch, const int *widths, int hw, int n, int threads,
                          int per_image, fsb_conv_backend conv)
{
    ck_assert_int_le(n, 32);
    fsb_pool *pool = NULL;
    if (threads > 1) ck_assert_int_eq(fsb_pool_create(&pool, threads), FSB_OK);
    fsb_model_opts o;
    fsb_model_opts_default(&o, arch);
    memcpy(o.widths, widths, sizeof o.widths);
    o.in_hw = hw;
    o.per_image = per_image;
    o.conv = conv;
    fsb_rng r;
    fsb_rng_init(&r, 21, 1);
    fsb_model *m;
    ck_assert_int_eq(fsb_model_create(&m, &o, 6, n, pool, &r), FSB_OK);
    long nx = (long)n * 3 * hw * hw, np;
    float *x = rnd(nx, 1, 22), *dx = calloc((size_t)nx, sizeof(float));
    int y[32];
    for (int i = 0; i < n; i++)
        y[i] = i % 6;
    uint64_t h = 1469598103934665603ULL;
#define HASH(p, bytes)                                                                             \
    for (size_t q_ = 0; q_ < (size_t)(bytes); q_++)                                                \
        h = (h ^ ((const unsigned char *)(p))[q_]) * 1099511628211ULL;
    for (int step = 0; step < 2; step++) {
        fsb_rng dr;
        fsb_rng_init(&dr, 30 + step, 0);
        const float *lg;
        double loss = fsb_model_train_step(m, x, y, n, &dr, &lg);
        HASH(&loss, sizeof loss);
        HASH(lg, sizeof(float) * (size_t)n * 6);
        float *p = fsb_model_params(m, &np), *g = fsb_model_grads(m, &np);
        HASH(g, sizeof(float) * (size_t)np);
        for (long i = 0; i < np; i++)
            p[i] -= 0.05f * g[i];
    }
    const float *lg;
    fsb_rng dr;
    fsb_rng_init(&dr, 40, 0);
    fsb_model_zero_grad(m);
    ck_assert_int_eq(fsb_model_forward(m, x, n, 1, &dr, NULL, &lg), FSB_OK);
    float dl[32 * 6];
    for (int i = 0; i < n * 6; i++)
        dl[i] = 0.01f * lg[i];
    fsb_model_backward(m, dl, NULL, dx); /* with the input gradient of every unit */
    HASH(dx, sizeof(float) * (size_t)nx);
    HASH(fsb_model_grads(m, &np), sizeof(float) * (size_t)np);
    int D = fsb_model_embed_dim(m);
    float *e = malloc(sizeof(float) * (size_t)n * (size_t)D);
    ck_assert_int_eq(fsb_model_embed(m, x, n, e), FSB_OK);
    HASH(e, sizeof(float) * (size_t)n * (size_t)D);
    for (int i = 0; i < fsb_model_n_tensors(m); i++) { /* parameters and running stats */
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        if (t.data) HASH(t.data, sizeof(float) * (size_t)t.numel);
    }
#undef HASH
    free(x), free(dx), free(e);
    fsb_model_destroy(m);
    fsb_pool_destroy(pool);
    return h;
}

/* The cases of the same-bits tests: the real ConvNet-4 shapes (84x84, 64 and 32 filters;
 * the direct first conv included), a batch above the split, and ResNet-12 widths (1x1
 * shortcuts, unpooled units, residuals, dropout). */
typedef struct hash_case {
    fsb_arch arch;
    const int *w;
    int hw, n;
} hash_case;
static const int c64[4] = {64, 64, 64, 64}, c32[4] = {32, 32, 32, 32}, r12[4] = {64, 160, 320, 640};
static const hash_case hash_cases[] = {{FSB_ARCH_CONV4, c64, 84, 5},
                                       {FSB_ARCH_CONV4, c32, 84, 5},
                                       {FSB_ARCH_CONV4, c64, 84, 1},
                                       {FSB_ARCH_CONV4, c32, 42, 17},
                                       {FSB_ARCH_RES12, r12, 20, 5}};

/* Batches below 16 split each image's work over tasks (channel groups, row tiles, weight
 * gradient column groups): at the real ConvNet-4 shapes (84x84, 64 and 32 filters; the
 * direct first conv included) and at ResNet-12 widths (1x1 shortcuts, unpooled units,
 * residuals, dropout), training steps, input gradients and embeddings at batch 5 (and 1)
 * have the same bits with 1, 2 and 3 threads, and the same as with opts.per_image. */
START_TEST(small_batch_split_same_bits)
{
    for (size_t k = 0; k < sizeof hash_cases / sizeof hash_cases[0]; k++) {
        const hash_case *c = &hash_cases[k];
        if (c->n >= FSB_SMALL_BATCH) continue; /* no split to compare */
        uint64_t ref = step_hash(c->arch, c->w, c->hw, c->n, 2, 1, FSB_CONV_GEMM);
        for (int threads = 1; threads <= 3; threads++)
            ck_assert_msg(step_hash(c->arch, c->w, c->hw, c->n, threads, 0, FSB_CONV_GEMM) == ref,
                          "case %zu: %d threads differ from the per-image split", k, threads);
    }
}
END_TEST

/* max |a - b| <= tol * max(max |b|, 1e-3) over n floats. */
static void expect_near(const float *a, const float *b, long n, double tol, const char *what)
{
    double mx = 1e-3, err = 0;
    for (long i = 0; i < n; i++) {
        mx = fabs(b[i]) > mx ? fabs(b[i]) : mx;
        err = fabs(a[i] - b[i]) > err ? fabs(a[i] - b[i]) : err;
    }
    ck_assert_msg(err <= tol * mx, "%s: max error %g (max %g)", what, err, mx);
}

/* ConvNet-4 whose first unit (3 -> 12 channels, 12 not a multiple of the 8-channel block,
 * odd 21x21 input) runs the direct AVX-512 conv (where the CPU has it) against the same
 * model forced onto im2col + GEMM: embeddings, train-step gradients, and the input-gradient
 * path agree; the direct path's step is bit-identical with 1 or 2 threads. */
START_TEST(direct_conv_matches_im2col)
{
    int hw = 21, n = 3, nc = 4;
    fsb_pool *p2;
    ck_assert_int_eq(fsb_pool_create(&p2, 2), FSB_OK);
    fsb_model *mm[3];
    for (int k = 0; k < 3; k++) {
        fsb_model_opts o;
        fsb_model_opts_default(&o, FSB_ARCH_CONV4);
        int w[4] = {12, 4, 4, 4};
        memcpy(o.widths, w, sizeof w);
        o.in_hw = hw;
        o.drop_rate = o.dropblock_rate = 0;
        fsb_rng r;
        fsb_rng_init(&r, 21, 1);
        ck_assert_int_eq(fsb_model_create(&mm[k], &o, nc, n, k == 2 ? p2 : NULL, &r), FSB_OK);
    }
    fsb_model *a = mm[0], *b = mm[1], *c = mm[2]; /* direct, im2col, direct on 2 threads */
    b->direct_conv = 0;
    ck_assert_int_eq(a->direct_conv, fsb_conv3_small_simd());
    long nx = (long)n * 3 * hw * hw, np;
    int D = fsb_model_embed_dim(a), y[3] = {0, 3, 1};
    float *x = rnd(nx, 1, 22), *ea = malloc(sizeof(float) * (size_t)n * D),
          *eb = malloc(sizeof(float) * (size_t)n * D);
    ck_assert_int_eq(fsb_model_embed(a, x, n, ea), FSB_OK);
    ck_assert_int_eq(fsb_model_embed(b, x, n, eb), FSB_OK);
    expect_near(ea, eb, (long)n * D, 1e-4, "embeddings");
    double la = fsb_model_train_step(a, x, y, n, NULL, NULL);
    double lb = fsb_model_train_step(b, x, y, n, NULL, NULL);
    double lc = fsb_model_train_step(c, x, y, n, NULL, NULL);
    ck_assert(fabs(la - lb) <= 1e-4 * fabs(lb) && la == lc);
    float *ga = fsb_model_grads(a, &np), *gb = fsb_model_grads(b, &np),
          *gc = fsb_model_grads(c, &np);
    expect_near(ga, gb, np, 1e-3, "train-step gradients");
    ck_assert_int_eq(memcmp(ga, gc, sizeof(float) * (size_t)np), 0);
    /* with the input gradient: direct forward and dW on dense dy, im2col dx */
    float *dxa = calloc((size_t)nx, sizeof(float)), *dxb = calloc((size_t)nx, sizeof(float));
    float *we = rnd((long)n * D, 1, 23);
    fsb_model *ab[2] = {a, b};
    float *dx[2] = {dxa, dxb};
    for (int k = 0; k < 2; k++) {
        fsb_model_zero_grad(ab[k]);
        ck_assert_int_eq(fsb_model_forward(ab[k], x, n, 1, NULL, NULL, NULL), FSB_OK);
        fsb_model_backward(ab[k], NULL, we, dx[k]);
    }
    expect_near(dxa, dxb, nx, 1e-3, "input gradient");
    expect_near(ga, gb, np, 1e-3, "gradients with the input gradient");
    free(x), free(ea), free(eb), free(dxa), free(dxb), free(we);
    for (int k = 0; k < 3; k++)
        fsb_model_destroy(mm[k]);
    fsb_pool_destroy(p2);
}
END_TEST

/* A model of these widths with the given conv backend, the same initialisation whatever the
 * backend (seed 21), dropout off. */
static fsb_model *backend_model(fsb_arch arch, const int *widths, int hw, int n,
                                fsb_conv_backend conv, fsb_pool *pool)
{
    fsb_model_opts o;
    fsb_model_opts_default(&o, arch);
    memcpy(o.widths, widths, sizeof o.widths);
    o.in_hw = hw;
    o.drop_rate = o.dropblock_rate = 0;
    o.conv = conv;
    fsb_rng r;
    fsb_rng_init(&r, 21, 1);
    fsb_model *m;
    ck_assert_int_eq(fsb_model_create(&m, &o, 6, n, pool, &r), FSB_OK);
    return m;
}

/* Activations whose kink (ReLU / LeakyReLU at 0, max-pool winner) the two models' last
 * forwards passed on different sides: each such flip changes one gradient element by up
 * to its whole size, whatever the float accuracy of the convolutions. */
static long kink_flips(const fsb_model *a, const fsb_model *b, int n)
{
    long flips = 0;
    for (int ui = 0; ui < a->nunits; ui++) {
        const unit *p = &a->u[ui], *q = &b->u[ui];
        long no = (long)n * p->cout * p->ho * p->wo;
        for (long i = 0; p->act && i < no; i++)
            flips += (p->out[i] > 0) != (q->out[i] > 0);
        for (long i = 0; p->pool && i < no; i++)
            flips += p->arg[i] != q->arg[i];
    }
    return flips;
}

/* Gradients of the two backends: within tol relative to the largest, or, when kinks
 * flipped between the two forwards, within 5 %: one flip deep in ResNet-12 moves every
 * gradient upstream of it through the batch norms' statistics by up to ~1 % (seen). */
static void expect_grads_near(const float *a, const float *b, long n, double tol, long flips,
                              const char *what)
{
    if (flips)
        fprintf(stderr, "%s: %ld kinks flipped between the backends, 5 %% tolerance\n", what,
                flips);
    expect_near(a, b, n, flips ? 5e-2 : tol, what);
}

/* ONEDNN against GEMM on one case: eval embeddings, a training step's loss and parameter
 * gradients, and a forward + backward from the embedding with the input gradient. */
static void compare_backends(fsb_arch arch, const int *widths, int hw, int n, fsb_pool *pool)
{
    fsb_model *g = backend_model(arch, widths, hw, n, FSB_CONV_GEMM, pool);
    fsb_model *d = backend_model(arch, widths, hw, n, FSB_CONV_ONEDNN, pool);
    long nx = (long)n * 3 * hw * hw, np;
    int D = fsb_model_embed_dim(g), y[32];
    ck_assert_int_le(n, 32);
    for (int i = 0; i < n; i++)
        y[i] = i % 6;
    float *x = rnd(nx, 1, 22), *eg = malloc(sizeof(float) * (size_t)n * D),
          *ed = malloc(sizeof(float) * (size_t)n * D), *we = rnd((long)n * D, 1, 23);
    ck_assert_int_eq(fsb_model_embed(g, x, n, eg), FSB_OK);
    ck_assert_int_eq(fsb_model_embed(d, x, n, ed), FSB_OK);
    expect_near(ed, eg, (long)n * D, 1e-5, "eval embeddings");
    double lg = fsb_model_train_step(g, x, y, n, NULL, NULL);
    double ld = fsb_model_train_step(d, x, y, n, NULL, NULL);
    ck_assert_msg(fabs(ld - lg) <= 1e-5 * fabs(lg), "loss %.9g vs %.9g", ld, lg);
    float *gg = fsb_model_grads(g, &np), *gd = fsb_model_grads(d, &np);
    expect_grads_near(gd, gg, np, 1e-4, kink_flips(g, d, n), "train-step gradients");
    float *dxg = calloc((size_t)nx, sizeof(float)), *dxd = calloc((size_t)nx, sizeof(float));
    fsb_model *gd2[2] = {g, d};
    float *dx[2] = {dxg, dxd};
    for (int k = 0; k < 2; k++) {
        fsb_model_zero_grad(gd2[k]);
        ck_assert_int_eq(fsb_model_forward(gd2[k], x, n, 1, NULL, NULL, NULL), FSB_OK);
        fsb_model_backward(gd2[k], NULL, we, dx[k]);
    }
    long flips = kink_flips(g, d, n);
    expect_grads_near(dxd, dxg, nx, 1e-4, flips, "input gradient");
    expect_grads_near(gd, gg, np, 1e-4, flips, "gradients with the input gradient");
    free(x), free(eg), free(ed), free(we), free(dxg), free(dxd);
    fsb_model_destroy(g);
    fsb_model_destroy(d);
}

/* opts.conv = ONEDNN agrees with GEMM within float tolerance: ConvNet-4 (64 and 32 filters)
 * at 84x84 (42, 21, 10 and 5 at the oneDNN units) at batch 5 and 1 (the small-batch split),
 * at 17 (per-image tasks and 4-5 image weight-gradient chunks), ResNet-12 (unpooled units,
 * residuals, 1x1 shortcuts left on GEMM). */
START_TEST(onednn_matches_gemm)
{
    if (skip_without_onednn("onednn_matches_gemm")) return;
    static const int r16[4] = {16, 24, 32, 48};
    fsb_pool *p2;
    ck_assert_int_eq(fsb_pool_create(&p2, 2), FSB_OK);
    compare_backends(FSB_ARCH_CONV4, c64, 84, 5, p2);
    compare_backends(FSB_ARCH_CONV4, c32, 84, 1, NULL);
    compare_backends(FSB_ARCH_CONV4, c32, 42, 17, p2);
    compare_backends(FSB_ARCH_CONV4, c64, 21, 17, NULL);
    compare_backends(FSB_ARCH_RES12, r16, 20, 5, p2);
    compare_backends(FSB_ARCH_RES12, r12, 20, 17, p2);
    fsb_pool_destroy(p2);
}
END_TEST

/* With opts.conv = ONEDNN a whole run (two training steps, input gradients, embeddings) has
 * the same bits with 1, 2 and 3 threads and with or without the small-batch split, and not
 * the GEMM path's bits (so oneDNN really ran). */
START_TEST(onednn_same_bits_any_threads)
{
    if (skip_without_onednn("onednn_same_bits_any_threads")) return;
    for (size_t k = 0; k < sizeof hash_cases / sizeof hash_cases[0]; k++) {
        const hash_case *c = &hash_cases[k];
        uint64_t ref = step_hash(c->arch, c->w, c->hw, c->n, 1, 0, FSB_CONV_ONEDNN);
        for (int threads = 2; threads <= 3; threads++)
            ck_assert_msg(step_hash(c->arch, c->w, c->hw, c->n, threads, 0, FSB_CONV_ONEDNN) == ref,
                          "case %zu: %d threads differ from 1", k, threads);
        ck_assert_msg(step_hash(c->arch, c->w, c->hw, c->n, 2, 1, FSB_CONV_ONEDNN) == ref,
                      "case %zu: per-image tasks differ from the split", k);
        ck_assert_msg(step_hash(c->arch, c->w, c->hw, c->n, 2, 0, FSB_CONV_GEMM) != ref,
                      "case %zu: the same bits as GEMM: oneDNN did not run", k);
    }
}
END_TEST

/* A resumed training state continues DropBlock's warm-up: after fsb_model_resume_warmup a
 * model whose batch norms have seen 40,000 batches drops blocks at the full rate, while the
 * same weights merely loaded start the warm-up at rate 0 (no block dropped). */
START_TEST(resume_continues_dropblock_warmup)
{
    int hw = 48, n = 2; /* block 3's 6x6 map fits a 5x5 block */
    fsb_model_opts o;
    fsb_model_opts_default(&o, FSB_ARCH_RES12);
    for (int i = 0; i < 4; i++)
        o.widths[i] = 3 + i;
    o.in_hw = hw;
    o.drop_rate = 0; /* DropBlock only */
    /* rates outside [0, 1) are refused (1.5 zeroed block 1, >= 1 silently disabled DropBlock) */
    fsb_model *bad = NULL;
    fsb_model_opts wrong = o;
    wrong.drop_rate = 1.5f;
    ck_assert_int_eq(fsb_model_create(&bad, &wrong, 3, n, NULL, NULL), FSB_EINVAL);
    wrong = o;
    wrong.dropblock_rate = 1.0f;
    ck_assert_int_eq(fsb_model_create(&bad, &wrong, 3, n, NULL, NULL), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "must be in [0, 1)"));
    ck_assert_ptr_null(bad);
    fsb_rng init;
    fsb_rng_init(&init, 5, 1);
    fsb_model *a, *b, *c;
    ck_assert_int_eq(fsb_model_create(&a, &o, 3, n, NULL, &init), FSB_OK);
    ck_assert_int_eq(fsb_model_create(&b, &o, 3, n, NULL, NULL), FSB_OK);
    ck_assert_int_eq(fsb_model_create(&c, &o, 3, n, NULL, NULL), FSB_OK);
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_int_eq(fsb_model_to_tensorfile(a, &tf, 0, NULL, NULL), FSB_OK);
    for (int i = 0; i < fsb_model_n_tensors(a); i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(a, i, &t);
        if (t.kind == FSB_T_NUM_BATCHES) *(int64_t *)fsb_tensorfile_get(&tf, t.name)->data = 40000;
    }
    ck_assert_int_eq(fsb_model_from_tensorfile(b, &tf, "state"), FSB_OK);
    ck_assert_int_eq(fsb_model_from_tensorfile(c, &tf, "state"), FSB_OK);
    fsb_tensorfile_free(&tf);
    fsb_model_resume_warmup(b);
    float *x = rnd((long)n * 3 * hw * hw, 1, 6);
    const float *e;
    int D = fsb_model_embed_dim(b);
    float eb[64], ec[64];
    fsb_rng r;
    fsb_rng_init(&r, 3, 0);
    ck_assert_int_eq(fsb_model_forward(b, x, n, 1, &r, &e, NULL), FSB_OK);
    memcpy(eb, e, sizeof(float) * (size_t)(n * D));
    fsb_rng_init(&r, 3, 0);
    ck_assert_int_eq(fsb_model_forward(c, x, n, 1, &r, &e, NULL), FSB_OK);
    memcpy(ec, e, sizeof(float) * (size_t)(n * D));
    ck_assert(memcmp(eb, ec, sizeof(float) * (size_t)(n * D)) != 0);
    free(x);
    fsb_model_destroy(a);
    fsb_model_destroy(b);
    fsb_model_destroy(c);
}
END_TEST

START_TEST(dropout_changes_train_not_eval)
{
    int hw = 16, n = 2;
    fsb_model *m = tiny(FSB_ARCH_RES12, hw, 3, n, NULL, 5, 1);
    float *x = rnd((long)n * 3 * hw * hw, 1, 6);
    const float *lg;
    ck_assert_int_eq(fsb_model_forward(m, x, n, 1, NULL, NULL, &lg), FSB_EINVAL);
    fsb_rng r1, r2;
    fsb_rng_init(&r1, 1, 0);
    fsb_rng_init(&r2, 2, 0);
    float l1[6], l2[6];
    ck_assert_int_eq(fsb_model_forward(m, x, n, 1, &r1, NULL, &lg), FSB_OK);
    memcpy(l1, lg, sizeof l1);
    ck_assert_int_eq(fsb_model_forward(m, x, n, 1, &r2, NULL, &lg), FSB_OK);
    memcpy(l2, lg, sizeof l2);
    ck_assert(memcmp(l1, l2, sizeof l1) != 0);
    ck_assert_int_eq(fsb_model_forward(m, x, n, 0, NULL, NULL, &lg), FSB_OK);
    memcpy(l1, lg, sizeof l1);
    ck_assert_int_eq(fsb_model_forward(m, x, n, 0, &r2, NULL, &lg), FSB_OK);
    ck_assert_int_eq(memcmp(l1, lg, sizeof l1), 0);
    free(x);
    fsb_model_destroy(m);
}
END_TEST

START_TEST(freeze_copy_forward_from_reset_head)
{
    int hw = 16, n = 4;
    fsb_model *teacher = tiny(FSB_ARCH_CONV4, hw, 6, n, NULL, 21, 0);
    fsb_model *s = tiny(FSB_ARCH_CONV4, hw, 6, n, NULL, 22, 0);
    float *x = rnd((long)n * 3 * hw * hw, 1, 23);
    /* the teacher's BN statistics move with a train forward; the copy takes them too */
    const float *lg;
    ck_assert_int_eq(fsb_model_forward(teacher, x, n, 1, NULL, NULL, &lg), FSB_OK);
    ck_assert_int_eq(fsb_model_copy_weights(s, teacher, 1), FSB_OK);
    int D = fsb_model_embed_dim(s);
    float *et = malloc(sizeof(float) * (size_t)(n * D)), *es = malloc(sizeof(float) * n * D);
    fsb_model_embed(teacher, x, n, et);
    fsb_model_embed(s, x, n, es);
    ck_assert_int_eq(memcmp(et, es, sizeof(float) * (size_t)(n * D)), 0);
    /* a different architecture is refused */
    fsb_model *r = tiny(FSB_ARCH_RES12, hw, 6, n, NULL, 22, 0);
    ck_assert_int_eq(fsb_model_copy_weights(r, teacher, 0), FSB_EMISMATCH);
    fsb_model_destroy(r);

    /* adapt last: gradients only in block 3 and the head; forward_from(stage 3) on the
     * frozen prefix's activations gives the same logits and gradients as the full pass */
    fsb_model_set_adapt(s, FSB_ADAPT_LAST);
    ck_assert_int_eq(fsb_model_first_trainable(s), 3);
    int y[4] = {0, 1, 2, 5};
    fsb_model_train_step(s, x, y, n, NULL, &lg);
    float l_full[24];
    memcpy(l_full, lg, sizeof l_full);
    long np;
    float *g = fsb_model_grads(s, &np);
    long off = fsb_model_trainable_offset(s);
    ck_assert_int_gt(off, 0);
    for (long i = 0; i < off; i++)
        ck_assert_float_eq(g[i], 0.0f);
    float *gfull = malloc(sizeof(float) * (size_t)np);
    memcpy(gfull, g, sizeof(float) * (size_t)np);
    int c, h, w;
    fsb_model_stage_shape(s, 3, &c, &h, &w);
    float *acts = malloc(sizeof(float) * (size_t)(n * c * h * w));
    ck_assert_int_eq(fsb_model_forward_to(s, x, n, 3, acts), FSB_OK);
    fsb_model_zero_grad(s);
    ck_assert_int_eq(fsb_model_forward_from(s, 3, acts, n, 1, NULL, NULL, &lg), FSB_OK);
    ck_assert_int_eq(memcmp(lg, l_full, sizeof l_full), 0);
    float dl[24] = {0};
    fsb_softmax_xent(NULL, dl, lg, y, n, 6, 1);
    fsb_model_backward(s, dl, NULL, NULL);
    for (long i = 0; i < np; i++)
        ck_assert_float_eq(g[i], gfull[i]);
    /* head only: stage-4 inputs are the embeddings */
    fsb_model_set_adapt(s, FSB_ADAPT_HEAD);
    fsb_model_embed(s, x, n, es);
    fsb_model_zero_grad(s);
    ck_assert_int_eq(fsb_model_forward_from(s, 4, es, n, 1, NULL, NULL, &lg), FSB_OK);
    memset(dl, 0, sizeof dl);
    fsb_softmax_xent(NULL, dl, lg, y, n, 6, 1);
    fsb_model_backward(s, dl, NULL, NULL);
    for (long i = 0; i < fsb_model_trainable_offset(s); i++)
        ck_assert_float_eq(g[i], 0.0f);
    ck_assert_float_ne(g[np - 1], 0.0f);
    /* a fresh 3-way head: backbone untouched, nn.Linear bound 1/sqrt(D) */
    fsb_rng rr;
    fsb_rng_init(&rr, 3, 0);
    ck_assert_int_eq(fsb_model_reset_head(s, 3, &rr), FSB_OK);
    ck_assert_int_eq(fsb_model_n_class(s), 3);
    float *p = fsb_model_params(s, &np);
    ck_assert_int_eq(np, fsb_model_trainable_offset(s) + 3 * D + 3);
    for (long i = fsb_model_trainable_offset(s); i < np; i++)
        ck_assert(fabsf(p[i]) <= 1.0f / sqrtf((float)D));
    fsb_model_embed(s, x, n, et);
    ck_assert_int_eq(memcmp(et, es, sizeof(float) * (size_t)(n * D)), 0);
    ck_assert_int_eq(fsb_model_forward(s, x, n, 0, NULL, NULL, &lg), FSB_OK);
    free(x), free(et), free(es), free(gfull), free(acts);
    fsb_model_destroy(teacher);
    fsb_model_destroy(s);
}
END_TEST

START_TEST(checkpoint_roundtrip_and_mismatch)
{
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "m.fsbt"), *bad = tu_path(dir, "bad.fsbt");
    int hw = 16, n = 2;
    fsb_model *a = tiny(FSB_ARCH_RES12, hw, 4, n, NULL, 31, 0);
    float *x = rnd((long)n * 3 * hw * hw, 1, 32);
    fsb_model_forward(a, x, n, 1, NULL, NULL, NULL);
    const char *k[1] = {"note"}, *v[1] = {"hello"};
    ck_assert_int_eq(fsb_model_save(a, path, 1, k, v), FSB_OK);
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_int_eq(fsb_tensorfile_load(&tf, path), FSB_OK);
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "arch"), "res12");
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "widths"), "3,4,5,6");
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "n_class"), "4");
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "embed_dim"), "6");
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "note"), "hello");
    const fsb_tensor *nb = fsb_tensorfile_get(&tf, "encoder.layer2.0.bn1.num_batches_tracked");
    ck_assert_ptr_nonnull(nb);
    ck_assert_int_eq(nb->dtype, FSB_I64);
    ck_assert_int_eq(*(int64_t *)nb->data, 1);
    fsb_tensorfile_free(&tf);

    fsb_model *b;
    ck_assert_int_eq(fsb_model_create_from_file(&b, path, 0, n, NULL), FSB_OK);
    int D = fsb_model_embed_dim(a);
    float ea[12], eb[12];
    fsb_model_embed(a, x, n, ea);
    fsb_model_embed(b, x, n, eb);
    ck_assert_int_eq(memcmp(ea, eb, sizeof(float) * (size_t)(n * D)), 0);
    fsb_model_destroy(b);

    /* wrong architecture / shape: clear messages naming the file and tensor */
    fsb_model *c4 = tiny(FSB_ARCH_CONV4, hw, 4, n, NULL, 1, 0);
    ck_assert_int_eq(fsb_model_load(c4, path), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), path));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "res12"));
    fsb_model *h5 = tiny(FSB_ARCH_RES12, hw, 5, n, NULL, 31, 0);
    ck_assert_int_eq(fsb_model_load(h5, path), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "fc.weight"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), path));
    /* a missing tensor */
    fsb_tensorfile_init(&tf);
    fsb_tensorfile_set_meta(&tf, "arch", "res12");
    ck_assert_int_eq(fsb_tensorfile_save(&tf, bad), FSB_OK);
    fsb_tensorfile_free(&tf);
    ck_assert_int_eq(fsb_model_load(h5, bad), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "encoder.layer1.0.conv1.weight"));
    ck_assert_int_ne(fsb_model_load(h5, "/nonexistent/x.fsbt"), FSB_OK);
    /* metadata that would size the model is checked before anything is allocated for it */
    static const char *const meta_bad[][3] = {
        {"widths", "3,4,5,6junk", "bad widths"}, {"widths", "3,4,5,100000", "out of range"},
        {"widths", "3,4,0,6", "out of range"},   {"n_class", "99999999999", "out of range"},
        {"n_class", "-5", "out of range"},
    };
    for (size_t i = 0; i < sizeof meta_bad / sizeof meta_bad[0]; i++) {
        fsb_tensorfile_init(&tf);
        ck_assert_int_eq(fsb_tensorfile_load(&tf, path), FSB_OK);
        ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, meta_bad[i][0], meta_bad[i][1]), FSB_OK);
        ck_assert_int_eq(fsb_tensorfile_save(&tf, bad), FSB_OK);
        fsb_tensorfile_free(&tf);
        fsb_model *m = NULL;
        ck_assert_int_eq(fsb_model_create_from_file(&m, bad, 0, n, NULL), FSB_EFORMAT);
        ck_assert_msg(strstr(fsb_error_last(), bad) && strstr(fsb_error_last(), meta_bad[i][2]),
                      "%s=%s: %s", meta_bad[i][0], meta_bad[i][1], fsb_error_last());
        ck_assert_ptr_null(m);
    }
    fsb_model_destroy(c4);
    fsb_model_destroy(h5);
    fsb_model_destroy(a);
    free(x);
    tu_rmrf(dir);
    free(dir), free(path), free(bad);
}
END_TEST

/* Found with tests/fuzz/fuzz_checkpoint: a 1.8 KB checkpoint whose meta claims widths
 * 2048,2048,2048,2048 and a million classes made fsb_model_create_from_file allocate the
 * model (8.6 GB for the head alone) before finding that its tensors do not match (libFuzzer:
 * out-of-memory; on a small machine "out of memory" instead of the mismatch). The tensors
 * are now checked against the declared shapes first: under a 1 GB address-space limit the
 * file is refused as a mismatch naming the tensor. */
START_TEST(checkpoint_claiming_a_huge_model)
{
    char *dir = tu_tmpdir(), *path = tu_path(dir, "m.fsbt"), *bad = tu_path(dir, "huge.fsbt");
    fsb_model *a = tiny(FSB_ARCH_CONV4, 16, 2, 1, NULL, 5, 0);
    ck_assert_int_eq(fsb_model_save(a, path, 0, NULL, NULL), FSB_OK);
    fsb_model_destroy(a);
    fsb_tensorfile tf;
    ck_assert_int_eq(fsb_tensorfile_load(&tf, path), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "widths", "2048,2048,2048,2048"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "n_class", "1000000"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_save(&tf, bad), FSB_OK);
    fsb_tensorfile_free(&tf);
    tu_limit_address_space((size_t)1 << 30);
    fsb_model *m = NULL;
    ck_assert_int_eq(fsb_model_create_from_file(&m, bad, 84, 1, NULL), FSB_EMISMATCH);
    ck_assert_msg(strstr(fsb_error_last(), "huge.fsbt: tensor encoder.0.0.weight has shape [") &&
                      strstr(fsb_error_last(), "the model wants [2048,3,3,3]"),
                  "%s", fsb_error_last());
    ck_assert_ptr_null(m);
    /* the file it came from still loads */
    ck_assert_int_eq(fsb_model_create_from_file(&m, path, 0, 1, NULL), FSB_OK);
    fsb_model_destroy(m);
    tu_rmrf(dir);
    free(dir), free(path), free(bad);
}
END_TEST

/* ---- PyTorch parity ----------------------------------------------------------------------- */

static double max_abs(const float *a, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

static void expect_close(const fsb_tensorfile *tf, const char *name, const float *got, long n,
                         double tol)
{
    const float *want;
    ck_assert_msg(fsb_tensorfile_get_f32(tf, "fixture", name, (size_t)n, &want) == FSB_OK, "%s",
                  fsb_error_last());
    double scale = max_abs(want, n);
    if (scale == 0) /* exactly-zero gradients (meta exact_zero_grads): absolute tolerance */
        scale = 1e-2;
    double err = 0;
    for (long i = 0; i < n; i++)
        err = fabs(got[i] - want[i]) > err ? fabs(got[i] - want[i]) : err;
    ck_assert_msg(err <= tol * scale, "%s: max error %g, scale %g", name, err, scale);
}

static void parity(const char *file)
{
    const char *src = getenv("FSB_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", src ? src : ".", file);
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_msg(fsb_tensorfile_load(&tf, path) == FSB_OK, "%s", fsb_error_last());
    fsb_arch arch;
    ck_assert_int_eq(fsb_arch_parse(fsb_tensorfile_meta(&tf, "arch"), &arch), FSB_OK);
    fsb_model_opts o;
    fsb_model_opts_default(&o, arch);
    ck_assert_int_eq(sscanf(fsb_tensorfile_meta(&tf, "widths"), "%d,%d,%d,%d", &o.widths[0],
                            &o.widths[1], &o.widths[2], &o.widths[3]),
                     4);
    o.in_hw = atoi(fsb_tensorfile_meta(&tf, "input_hw"));
    o.drop_rate = o.dropblock_rate = 0;
    int nc = atoi(fsb_tensorfile_meta(&tf, "n_class"));
    const fsb_tensor *in = fsb_tensorfile_get(&tf, "input");
    const fsb_tensor *tg = fsb_tensorfile_get(&tf, "target");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(tg);
    int n = (int)in->dims[0];
    int *y = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++)
        y[i] = (int)((const int64_t *)tg->data)[i];
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 2), FSB_OK);
    fsb_model *m;
    ck_assert_int_eq(fsb_model_create(&m, &o, nc, n, pool, NULL), FSB_OK);
    int D = fsb_model_embed_dim(m);
    float *dx = malloc(sizeof(float) * in->numel), *dl = malloc(sizeof(float) * (size_t)n * nc);
    char name[256];
    for (int train = 1; train >= 0; train--) {
        const char *mode = train ? "train" : "eval";
        ck_assert_msg(fsb_model_load(m, path) == FSB_OK, "%s", fsb_error_last());
        fsb_model_zero_grad(m);
        const float *emb, *lg;
        ck_assert_int_eq(fsb_model_forward(m, in->data, n, train, NULL, &emb, &lg), FSB_OK);
        snprintf(name, sizeof name, "%s.embedding", mode);
        expect_close(&tf, name, emb, (long)n * D, 1e-4);
        snprintf(name, sizeof name, "%s.logits", mode);
        expect_close(&tf, name, lg, (long)n * nc, 1e-4);
        memset(dl, 0, sizeof(float) * (size_t)n * nc);
        float loss = (float)fsb_softmax_xent(NULL, dl, lg, y, n, nc, 1);
        snprintf(name, sizeof name, "%s.loss", mode);
        expect_close(&tf, name, &loss, 1, 1e-4);
        memset(dx, 0, sizeof(float) * in->numel);
        fsb_model_backward(m, dl, NULL, dx);
        snprintf(name, sizeof name, "%s.grad.input", mode);
        expect_close(&tf, name, dx, (long)in->numel, 1e-3);
        for (int i = 0; i < fsb_model_n_tensors(m); i++) {
            fsb_model_tensor t;
            fsb_model_tensor_at(m, i, &t);
            if (t.kind == FSB_T_PARAM) {
                snprintf(name, sizeof name, "%s.grad.%s", mode, t.name);
                expect_close(&tf, name, t.grad, t.numel, 1e-3);
            } else if (train && t.kind != FSB_T_NUM_BATCHES) {
                snprintf(name, sizeof name, "train.after.%s", t.name);
                expect_close(&tf, name, t.data, t.numel, 1e-4);
            }
        }
    }
    /* two SGD steps (lr 0.1, momentum 0.9, nesterov, weight decay 5e-4) */
    ck_assert_int_eq(fsb_model_load(m, path), FSB_OK);
    long np;
    float *p = fsb_model_params(m, &np), *g = fsb_model_grads(m, &np);
    float *buf = calloc((size_t)np, sizeof(float));
    for (int step = 0; step < 2; step++) {
        fsb_model_train_step(m, in->data, y, n, NULL, NULL);
        for (long i = 0; i < np; i++) {
            float d = g[i] + 5e-4f * p[i];
            buf[i] = step == 0 ? d : 0.9f * buf[i] + d;
            p[i] -= 0.1f * (d + 0.9f * buf[i]);
        }
    }
    for (int i = 0; i < fsb_model_n_tensors(m); i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        if (t.kind != FSB_T_PARAM) continue;
        snprintf(name, sizeof name, "sgd.step2.%s", t.name);
        expect_close(&tf, name, t.data, t.numel, 1e-3);
    }
    free(buf), free(dx), free(dl), free(y);
    fsb_model_destroy(m);
    fsb_pool_destroy(pool);
    fsb_tensorfile_free(&tf);
}

/* A checkpoint full of subnormal weights (FEAT's published ConvNet has thousands: dead filters
 * decayed by weight decay) embeds exactly like the same checkpoint with those weights zero,
 * because every pool thread flushes subnormals (threads.h). */
START_TEST(subnormal_weights_count_as_zero)
{
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "sub.fsbt");
    int hw = 20, n = 3;
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 2), FSB_OK);
    fsb_model *a = tiny(FSB_ARCH_CONV4, hw, 0, n, pool, 41, 0);
    long np;
    float *p = fsb_model_params(a, &np);
    for (long i = 0; i < np; i += 3) { /* by the bits: arithmetic here would flush them */
        uint32_t u = (i % 2 ? 0u : 0x80000000u) | ((uint32_t)(1000 + 97 * i) % 0x7fffffu + 1);
        memcpy(&p[i], &u, sizeof u);
    }
    ck_assert_int_eq(fsb_count_subnormal(p, np), (np + 2) / 3);
    ck_assert_int_eq(fsb_model_save(a, path, 0, NULL, NULL), FSB_OK);
    fsb_model *b;
    ck_assert_int_eq(fsb_model_create_from_file(&b, path, hw, n, pool), FSB_OK);
    float *q = fsb_model_params(b, &np);
    ck_assert_int_eq(fsb_count_subnormal(q, np), (np + 2) / 3); /* loaded as stored */
    for (long i = 0; i < np; i += 3)
        p[i] = 0;
    float *x = rnd((long)n * 3 * hw * hw, 1, 42);
    int D = fsb_model_embed_dim(a);
    float *ea = malloc(sizeof(float) * (size_t)(n * D)),
          *eb = malloc(sizeof(float) * (size_t)(n * D));
    ck_assert_int_eq(fsb_model_embed(a, x, n, ea), FSB_OK);
    ck_assert_int_eq(fsb_model_embed(b, x, n, eb), FSB_OK);
    ck_assert_int_eq(memcmp(ea, eb, sizeof(float) * (size_t)(n * D)), 0);
    free(ea), free(eb), free(x);
    fsb_model_destroy(a);
    fsb_model_destroy(b);
    fsb_pool_destroy(pool);
    tu_rmrf(dir);
    free(path), free(dir);
}
END_TEST

/* The input a checkpoint records (or its in_hw implies), and flags settled against it. */
START_TEST(checkpoint_input_recorded_or_inferred)
{
    char *dir = tu_tmpdir();
    char *a = tu_path(dir, "a.fsbt"), *b = tu_path(dir, "b.fsbt"), *c = tu_path(dir, "c.fsbt");
    fsb_model *m = tiny(FSB_ARCH_CONV4, 28, 0, 2, NULL, 1, 0);
    const char *k[3] = {"image_size", "resize", "crop"}, *v[3] = {"32", "32", "28"};
    ck_assert_int_eq(fsb_model_save(m, a, 3, k, v), FSB_OK);
    ck_assert_int_eq(fsb_model_save(m, b, 0, NULL, NULL), FSB_OK); /* in_hw 28 only */
    ck_assert_int_eq(fsb_model_save(m, c, 1, k, v), FSB_OK);       /* a partial record */
    fsb_model_input in;
    ck_assert_int_eq(fsb_model_file_input(a, &in), FSB_OK);
    ck_assert(in.recorded && in.image_size == 32 && in.resize == 32 && in.crop == 28);
    ck_assert_int_eq(fsb_model_file_input(b, &in), FSB_OK);
    ck_assert(!in.recorded && in.image_size == 28 && in.resize == 28 && in.crop == 28);
    ck_assert_int_eq(fsb_model_file_input(c, &in), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "c.fsbt"));
    fsb_model_destroy(m);
    m = tiny(FSB_ARCH_CONV4, 84, 0, 1, NULL, 1, 0); /* an 84-pixel network: the protocol */
    ck_assert_int_eq(fsb_model_save(m, b, 0, NULL, NULL), FSB_OK);
    ck_assert_int_eq(fsb_model_file_input(b, &in), FSB_OK);
    ck_assert(in.image_size == 84 && in.resize == 92 && in.crop == 84);
    fsb_model_destroy(m);
    /* settling: unset flags take the checkpoint's, given ones must agree */
    fsb_model_input ck = {32, 32, 28, 1};
    int is = 0, rs = 0, cr = 0;
    ck_assert_int_eq(fsb_model_input_settle(&ck, "the teacher", a, &is, &rs, &cr), FSB_OK);
    ck_assert(is == 32 && rs == 32 && cr == 28);
    is = 0, rs = 0, cr = 84;
    ck_assert_int_eq(fsb_model_input_settle(&ck, "the teacher", a, &is, &rs, &cr), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--crop 84 conflicts with the teacher"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "(28)"));
    /* combinations that cannot work, whatever their source */
    fsb_model_input up = {28, 92, 28, 1}, small = {16, 32, 28, 1};
    is = rs = cr = 0;
    ck_assert_int_eq(fsb_model_input_settle(&up, "x", "f", &is, &rs, &cr), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "upsamples"));
    is = rs = cr = 0;
    ck_assert_int_eq(fsb_model_input_settle(&small, "x", "f", &is, &rs, &cr), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "--image-size: 16 is smaller than --crop 28"));
    free(a), free(b), free(c);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(torch_parity_conv4)
{
    parity("torch_conv4.fsbt");
}
END_TEST

START_TEST(torch_parity_res12)
{
    parity("torch_res12.fsbt");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, shapes_names_and_dims);
    tcase_add_test(tc, conv4_gradients_fd);
    tcase_add_test(tc, res12_gradients_fd);
    tcase_add_test(tc, bits_independent_of_threads);
    tcase_add_test(tc, small_batch_split_same_bits);
    tcase_add_test(tc, direct_conv_matches_im2col);
    tcase_add_test(tc, onednn_matches_gemm);
    tcase_add_test(tc, onednn_same_bits_any_threads);
    tcase_add_test(tc, onednn_gradients_fd);
    tcase_add_test(tc, dropout_changes_train_not_eval);
    tcase_add_test(tc, resume_continues_dropblock_warmup);
    tcase_add_test(tc, freeze_copy_forward_from_reset_head);
    tcase_add_test(tc, checkpoint_roundtrip_and_mismatch);
    tcase_add_test(tc, checkpoint_claiming_a_huge_model);
    tcase_add_test(tc, subnormal_weights_count_as_zero);
    tcase_add_test(tc, checkpoint_input_recorded_or_inferred);
    tcase_add_test(tc, torch_parity_conv4);
    tcase_add_test(tc, torch_parity_res12);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
