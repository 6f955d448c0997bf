/* test_perf.c - `bench perf`'s sweep and report, no timing asserted: the workloads of a
 * batch list and a network list in order, the per-layer FLOP counts (docs/protocol.md's
 * 0.194 / 0.559 GFLOP per ConvNet-4 image at 84x84, by hand per layer), the JSON and text
 * shapes of the command, and its flag errors.
 */
#include "fsb/layers.h"
#include "fsb/model.h"
#include "fsb/perf.h"
#include "fsb/status.h"
#include "testutil.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Per-image FLOPs of ConvNet-4 at 84x84 (64 filters), layer by layer by hand. */
START_TEST(model_flops_by_hand)
{
    fsb_model_opts o;
    fsb_model_opts_default(&o, FSB_ARCH_CONV4);
    fsb_model *m;
    ck_assert_int_eq(fsb_model_create(&m, &o, 10, 1, NULL, NULL), FSB_OK);
    ck_assert_int_eq(fsb_model_profile_n(m), 5);
    const double hw[4] = {84, 42, 21, 10}, cin[4] = {3, 64, 64, 64};
    double f, b, fsum = 0, bsum = 0;
    for (int i = 0; i < 4; i++) {
        fsb_model_profile_flops(m, i, &f, &b);
        double want = 2 * 64 * cin[i] * 9 * hw[i] * hw[i];
        ck_assert(f == want);
        ck_assert(b == (i == 0 ? want : 2 * want)); /* no input gradient for the images */
        fsum += f, bsum += b;
    }
    ck_assert(fsum == 194328576.0);
    ck_assert(fsum + bsum == 558600192.0);
    fsb_model_profile_flops(m, 4, &f, &b); /* head: 64 -> 10 */
    ck_assert(f == 2.0 * 64 * 10);
    ck_assert(b == 4.0 * 64 * 10);
    fsb_model_destroy(m);
}
END_TEST

/* The library sweep: networks in order, batches ascending, train then infer, layer FLOPs
 * scaled by the batch, none for inference's backward. */
START_TEST(sweep_workloads_in_order)
{
    fsb_perf_opts o = {
        .conv4_32 = 1, .res12 = 0, .n_batches = 2, .iters = 1, .threads = 1, .in_hw = 16};
    o.batches[0] = 2, o.batches[1] = 3;
    fsb_perf_result r[FSB_PERF_MAX_RESULTS];
    int n;
    ck_assert_int_eq(fsb_perf_run(&o, r, FSB_PERF_MAX_RESULTS, &n), FSB_OK);
    ck_assert_int_eq(n, 4);
    const char *names[4] = {"conv4-32-train", "conv4-32-infer", "conv4-32-train", "conv4-32-infer"};
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(r[i].workload, names[i]);
        ck_assert_str_eq(r[i].arch, "conv4-32");
        ck_assert_int_eq(r[i].train, i % 2 == 0);
        ck_assert_int_eq(r[i].batch, i < 2 ? 2 : 3);
        ck_assert_int_eq(r[i].iters, 1);
        ck_assert(r[i].img_s > 0 && r[i].gflop_s > 0);
        ck_assert_int_eq(r[i].n_layers, 5);
        ck_assert_str_eq(r[i].layers[0].name, "encoder.0.0");
        ck_assert_str_eq(r[i].layers[4].name, "head");
        /* conv1: 3 -> 32 channels at 16x16 */
        double want = 1e-9 * 2 * 32 * 27 * 256 * r[i].batch;
        ck_assert(r[i].layers[0].fwd_gflop > 0.999 * want &&
                  r[i].layers[0].fwd_gflop < 1.001 * want);
        if (r[i].train)
            ck_assert(r[i].layers[1].bwd_gflop == 2 * r[i].layers[1].fwd_gflop);
        else
            ck_assert(r[i].layers[1].bwd_gflop == 0 && r[i].layers[1].bwd == 0);
    }
    o.conv4_32 = 0;
    ck_assert_int_eq(fsb_perf_run(&o, r, FSB_PERF_MAX_RESULTS, &n), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "no network"));
}
END_TEST

static int count(const char *s, const char *needle)
{
    int k = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        k++;
    return k;
}

/* The command: --arch and --batch lists, JSON and text shapes, errors naming the flag. */
START_TEST(command_flags_and_json)
{
    char *out = NULL;
    ck_assert_int_eq(tu_run(&out,
                            "'%s' perf --arch conv4-32,conv4 --batch 3,2 --iters 1 --threads 2 "
                            "--hw 16 --json 2>&1",
                            tu_bench()),
                     0);
    /* conv4 before conv4-32 (fixed network order), batches ascending, train then infer */
    const char *order[] = {"\"name\": \"conv4-train\", \"arch\": \"conv4\", \"mode\": \"train\", "
                           "\"batch\": 2",
                           "\"name\": \"conv4-infer\", \"arch\": \"conv4\", \"mode\": \"infer\", "
                           "\"batch\": 2",
                           "\"name\": \"conv4-train\", \"arch\": \"conv4\", \"mode\": \"train\", "
                           "\"batch\": 3",
                           "\"name\": \"conv4-32-train\", \"arch\": \"conv4-32\", "
                           "\"mode\": \"train\", \"batch\": 2",
                           "\"name\": \"conv4-32-infer\", \"arch\": \"conv4-32\", "
                           "\"mode\": \"infer\", \"batch\": 3"};
    const char *prev = out;
    for (int i = 0; i < 5; i++) {
        const char *p = strstr(prev, order[i]);
        ck_assert_msg(p != NULL, "missing or out of order: %s\n%s", order[i], out);
        prev = p;
    }
    ck_assert_int_eq(count(out, "\"img_s\": "), 8);
    ck_assert_int_eq(count(out, "\"fwd_gflop_s\": "), 8 * 5);
    ck_assert_int_eq(count(out, "\"bwd_gflop\": "), 8 * 5);
    ck_assert_ptr_nonnull(strstr(out, "\"openblas_core\": "));
    ck_assert_ptr_nonnull(strstr(out, "\"threads\": 2"));
    ck_assert_ptr_nonnull(strstr(out, "\"split\": \"on\""));
    ck_assert_msg(out[strlen(out) - 2] == '}', "%s", out);
    free(out);
    ck_assert_int_eq(
        tu_run(&out, "'%s' perf --arch conv4-32 --batch 2 --iters 1 --hw 16", tu_bench()), 0);
    ck_assert_ptr_nonnull(strstr(out, "fwd GF/s"));
    ck_assert_ptr_nonnull(strstr(out, "conv4-32-infer"));
    ck_assert_int_eq(count(out, "encoder.3.0"), 2);
    free(out);
    ck_assert_int_eq(tu_run(&out,
                            "'%s' perf --arch conv4 --batch 2 --iters 1 --hw 16 --split off --json",
                            tu_bench()),
                     0);
    ck_assert_ptr_nonnull(strstr(out, "\"split\": \"off\""));
    ck_assert_ptr_nonnull(strstr(out, "\"conv\": \"gemm\""));
    free(out);
    /* --conv onednn: runs where oneDNN is compiled in, refused clearly where it is not */
    int st = tu_run(&out, "'%s' perf --arch conv4 --batch 2 --iters 1 --hw 16 --conv onednn --json",
                    tu_bench());
    if (fsb_dnnl_available()) {
        ck_assert_msg(st == 0, "%s", out);
        ck_assert_ptr_nonnull(strstr(out, "\"conv\": \"onednn\""));
    } else {
        ck_assert_int_eq(st, 2);
        ck_assert_ptr_nonnull(strstr(out, "built without oneDNN"));
    }
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' perf --conv blas", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown convolution backend 'blas'"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' --version", tu_bench()), 0);
    ck_assert_ptr_nonnull(
        strstr(out, fsb_dnnl_available() ? "onednn: 2." : "onednn: not compiled in"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' perf --split maybe", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "--split: 'maybe' is not on or off"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' perf --arch conv5", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "--arch: 'conv5' is not"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' perf --arch conv4,", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "--arch"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' perf --batch 0", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "--batch"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' perf --batch 1,2,3,4,5,6,7,8,9", tu_bench()), 2);
    ck_assert_ptr_nonnull(strstr(out, "--batch: more than 8 values"));
    free(out);
    ck_assert_int_eq(tu_run(&out, "'%s' perf --help", tu_bench()), 0);
    ck_assert_ptr_nonnull(strstr(out, "conv4-32"));
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("perf");
    TCase *tc = tcase_create("perf");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, model_flops_by_hand);
    tcase_add_test(tc, sweep_workloads_in_order);
    tcase_add_test(tc, command_flags_and_json);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
