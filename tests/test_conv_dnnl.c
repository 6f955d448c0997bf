/* test_conv_dnnl.c - the oneDNN 3x3 convolutions (src/conv_dnnl.c) against the engine's
 * im2col + GEMM ones: forward, input gradient (accumulated) and weight gradient (overwritten)
 * within float tolerance at the batch sizes and odd spatial sizes the engine uses; repeated
 * calls and calls from other threads (their own caches) give the same bits; every call runs
 * oneDNN on one OpenMP thread. In a build without oneDNN the suite checks the refusal and
 * skips the rest with a message.
 */
#include "fsb/layers.h"
#include "fsb/rng.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Skip (with a message) without oneDNN, after checking that it is refused clearly. */
static int skip_without_onednn(const char *test)
{
    if (fsb_dnnl_available()) return 0;
    fsb_dnnl *d = (fsb_dnnl *)1;
    ck_assert_int_eq(fsb_dnnl_create(&d), FSB_EINVAL);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "built without oneDNN"));
    fprintf(stderr, "%s: skipped (fsbench built without oneDNN)\n", test);
    return 1;
}

/* max |a - b| / max(max |b|, 1e-3) over n floats. */
static double rel_err(const float *a, const float *b, long n)
{
    double mx = 1e-3, err = 0;
    for (long i = 0; i < n; i++) {
        mx = fabs(b[i]) > mx ? fabs(b[i]) : mx;
        err = fabs(a[i] - b[i]) > err ? fabs(a[i] - b[i]) : err;
    }
    return err / mx;
}

typedef struct shape {
    int B, C, H, W, OC;
} shape;

/* The three oneDNN calls of shape s against fsb_conv2d_forward / _backward; returns the
 * largest relative error. */
static double conv_case(fsb_dnnl *d, shape s)
{
    long nx = (long)s.B * s.C * s.H * s.W, ny = (long)s.B * s.OC * s.H * s.W;
    long nw = (long)s.OC * s.C * 9;
    float *x = tu_randn(nx, 1, 1), *w = tu_randn(nw, 0.1f, 2), *dy = tu_randn(ny, 1, 3);
    float *y0 = calloc((size_t)ny, sizeof(float)), *y1 = tu_randn(ny, 1, 4);
    float *dx0 = tu_randn(nx, 1, 5), *dx1 = malloc(sizeof(float) * (size_t)nx);
    float *dw0 = calloc((size_t)nw, sizeof(float)), *dw1 = tu_randn(nw, 1, 6);
    float *col = malloc(sizeof(float) * 2 * (size_t)s.C * 9 * s.H * s.W);
    memcpy(dx1, dx0, sizeof(float) * (size_t)nx); /* both accumulate onto the same values */
    long nf, nb;
    ck_assert_int_eq(fsb_dnnl_weights_floats(d, s.B, s.C, s.H, s.W, s.OC, &nf, &nb), FSB_OK);
    ck_assert(nf >= nw && nb >= nw);
    float *wf = malloc(sizeof(float) * (size_t)nf), *wb = malloc(sizeof(float) * (size_t)nb);
    ck_assert_int_eq(fsb_dnnl_weights(d, wf, wb, w, s.B, s.C, s.H, s.W, s.OC), FSB_OK);
    fsb_conv2d_forward(y0, col, x, w, NULL, s.B, s.C, s.H, s.W, s.OC, 3);
    fsb_conv2d_backward(dx0, dw0, NULL, col, dy, x, w, s.B, s.C, s.H, s.W, s.OC, 3);
    ck_assert_int_eq(fsb_dnnl_forward(d, y1, x, wf, s.B, s.C, s.H, s.W, s.OC), FSB_OK);
    ck_assert_int_eq(fsb_dnnl_backward_data(d, dx1, dy, wb, s.B, s.C, s.H, s.W, s.OC), FSB_OK);
    ck_assert_int_eq(fsb_dnnl_backward_weights(d, dw1, dy, x, s.B, s.C, s.H, s.W, s.OC), FSB_OK);
    double e[3] = {rel_err(y1, y0, ny), rel_err(dx1, dx0, nx), rel_err(dw1, dw0, nw)};
    static const char *what[3] = {"forward", "backward data", "backward weights"};
    for (int k = 0; k < 3; k++)
        ck_assert_msg(e[k] <= 1e-5, "%dx%dx%dx%d -> %d: %s relative error %g", s.B, s.C, s.H, s.W,
                      s.OC, what[k], e[k]);
    free(x), free(w), free(dy), free(y0), free(y1), free(dx0), free(dx1), free(dw0), free(dw1);
    free(col), free(wf), free(wb);
    return fmax(e[0], fmax(e[1], e[2]));
}

/* Batches 1, 5 and 17 (the engine's per-image calls, a small batch's chunk, a large one's),
 * ConvNet-4's spatial sizes at 84 (42, 21, 10, 5), channel counts that are not multiples of
 * oneDNN's 16-channel blocks, and a non-square map. */
START_TEST(conv_matches_gemm)
{
    if (skip_without_onednn("conv_matches_gemm")) return;
    static const shape cases[] = {{1, 64, 42, 42, 64}, {5, 64, 21, 21, 64}, {17, 32, 10, 10, 32},
                                  {5, 64, 5, 5, 64},   {1, 16, 21, 21, 16}, {17, 64, 5, 5, 64},
                                  {3, 20, 10, 10, 24}, {2, 16, 7, 11, 48},  {1, 64, 1, 1, 16},
                                  {1, 320, 2, 2, 640}, {4, 640, 2, 2, 640}, {1, 160, 5, 5, 320},
                                  {1, 640, 2, 2, 640}, {1, 320, 5, 5, 320}, {5, 640, 2, 2, 640}};
    fsb_dnnl *d;
    ck_assert_int_eq(fsb_dnnl_create(&d), FSB_OK);
    double worst = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        worst = fmax(worst, conv_case(d, cases[k]));
    fprintf(stderr, "conv_matches_gemm: oneDNN %s, largest relative error %.2g\n",
            fsb_dnnl_version(), worst);
    fsb_dnnl_destroy(d);
}
END_TEST

/* One shape's three results from a cache, and what the calling thread's OpenMP team size
 * was after the calls. */
typedef struct run_ctx {
    shape s;
    const float *x, *w, *dy; /* inputs */
    float *out[4][3];        /* per task: y, dx, dw */
    int threads[4];          /* fsb_dnnl_threads() after the task's calls */
} run_ctx;

static void run_task(void *ctx, int t, int worker)
{
    run_ctx *c = ctx;
    shape s = c->s;
    fsb_dnnl *d;
    ck_assert_int_eq(fsb_dnnl_create(&d), FSB_OK);
    long nf, nb, nx = (long)s.B * s.C * s.H * s.W;
    ck_assert_int_eq(fsb_dnnl_weights_floats(d, s.B, s.C, s.H, s.W, s.OC, &nf, &nb), FSB_OK);
    float *wf = malloc(sizeof(float) * (size_t)nf), *wb = malloc(sizeof(float) * (size_t)nb);
    for (int rep = 0; rep < 2; rep++) { /* the second time from the cache */
        float *o[3] = {tu_randn((long)s.B * s.OC * s.H * s.W, 1, 9),
                       calloc((size_t)nx, sizeof(float)), tu_randn((long)s.OC * s.C * 9, 1, 10)};
        ck_assert_int_eq(fsb_dnnl_weights(d, wf, wb, c->w, s.B, s.C, s.H, s.W, s.OC), FSB_OK);
        ck_assert_int_eq(fsb_dnnl_forward(d, o[0], c->x, wf, s.B, s.C, s.H, s.W, s.OC), FSB_OK);
        ck_assert_int_eq(fsb_dnnl_backward_data(d, o[1], c->dy, wb, s.B, s.C, s.H, s.W, s.OC),
                         FSB_OK);
        ck_assert_int_eq(fsb_dnnl_backward_weights(d, o[2], c->dy, c->x, s.B, s.C, s.H, s.W, s.OC),
                         FSB_OK);
        for (int k = 0; k < 3; k++) {
            if (rep == 1) {
                long n = k == 0 ? (long)s.B * s.OC * s.H * s.W : k == 1 ? nx : (long)s.OC * s.C * 9;
                ck_assert_msg(!memcmp(o[k], c->out[t][k], sizeof(float) * (size_t)n),
                              "output %d of a cached call differs", k);
                free(o[k]);
            } else {
                c->out[t][k] = o[k];
            }
        }
    }
    c->threads[t] = fsb_dnnl_threads();
    free(wf), free(wb);
    fsb_dnnl_destroy(d);
}

/* Four tasks on a pool of two threads, each with its own cache, run the same calls twice:
 * every result has the same bits (cached or not, whichever thread), and each thread runs
 * oneDNN with an OpenMP team of 1 although the machine's default is larger. */
START_TEST(same_bits_any_thread_one_omp_thread)
{
    if (skip_without_onednn("same_bits_any_thread_one_omp_thread")) return;
    shape s = {5, 32, 21, 21, 48};
    run_ctx c = {.s = s};
    long nx = (long)s.B * s.C * s.H * s.W, ny = (long)s.B * s.OC * s.H * s.W;
    float *x = tu_randn(nx, 1, 1), *w = tu_randn((long)s.OC * s.C * 9, 0.1f, 2),
          *dy = tu_randn(ny, 1, 3);
    c.x = x, c.w = w, c.dy = dy;
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 2), FSB_OK);
    fsb_pool_run(pool, 4, run_task, &c);
    long n[3] = {ny, nx, (long)s.OC * s.C * 9};
    for (int t = 0; t < 4; t++) {
        ck_assert_int_eq(c.threads[t], 1);
        for (int k = 0; k < 3; k++) {
            if (t > 0)
                ck_assert_msg(!memcmp(c.out[t][k], c.out[0][k], sizeof(float) * (size_t)n[k]),
                              "task %d output %d differs", t, k);
        }
    }
    for (int t = 0; t < 4; t++)
        for (int k = 0; k < 3; k++)
            free(c.out[t][k]);
    fsb_pool_destroy(pool);
    free(x), free(w), free(dy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv_dnnl");
    TCase *tc = tcase_create("conv_dnnl");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, conv_matches_gemm);
    tcase_add_test(tc, same_bits_any_thread_one_omp_thread);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
