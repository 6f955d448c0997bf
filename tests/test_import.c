/* test_import.c - teachers imported from PyTorch: tests/fixtures/torch_roundtrip_conv4.fsbt
 * is a FEAT-style state_dict converted by tools/import_torch.py (after an fsbench -> PyTorch
 * -> fsbench round trip), with torch's own eval-mode embedding of a fixed input. `bench`
 * must load it as a teacher and compute the same features, without torch installed. */
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"

#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char fixture[4096];

START_TEST(imported_teacher_gives_torch_features)
{
    fsb_model *m = NULL;
    ck_assert_msg(fsb_model_create_from_file(&m, fixture, 32, 2, NULL) == FSB_OK, "%s",
                  fsb_error_last());
    ck_assert_int_eq(fsb_model_embed_dim(m), 8);
    ck_assert_int_eq(fsb_model_n_class(m), 5);
    fsb_tensorfile tf;
    ck_assert_int_eq(fsb_tensorfile_load(&tf, fixture), FSB_OK);
    const float *in, *want;
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, fixture, "roundtrip.input", 2 * 3 * 32 * 32, &in),
                     FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, fixture, "roundtrip.embedding", 2 * 8, &want),
                     FSB_OK);
    float got[16];
    ck_assert_int_eq(fsb_model_embed(m, in, 2, got), FSB_OK);
    float scale = 0;
    for (int i = 0; i < 16; i++)
        scale = fmaxf(scale, fabsf(want[i]));
    for (int i = 0; i < 16; i++)
        ck_assert_msg(fabsf(got[i] - want[i]) <= 1e-4f * scale, "feature %d: %g vs torch %g", i,
                      got[i], want[i]);
    fsb_tensorfile_free(&tf);
    fsb_model_destroy(m);
}
END_TEST

START_TEST(imported_teacher_of_another_architecture_is_refused)
{
    fsb_model_opts o;
    fsb_model_opts_default(&o, FSB_ARCH_RES12);
    o.widths[0] = o.widths[1] = o.widths[2] = o.widths[3] = 8;
    o.in_hw = 32;
    fsb_rng r;
    fsb_rng_init(&r, 1, 0);
    fsb_model *m = NULL;
    ck_assert_int_eq(fsb_model_create(&m, &o, 5, 2, NULL, &r), FSB_OK);
    ck_assert_int_eq(fsb_model_load(m, fixture), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "torch_roundtrip_conv4.fsbt"));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "conv4"));
    fsb_model_destroy(m);
}
END_TEST

int main(void)
{
    const char *src = getenv("FSB_SOURCE_DIR");
    snprintf(fixture, sizeof fixture, "%s/tests/fixtures/torch_roundtrip_conv4.fsbt",
             src ? src : ".");
    Suite *s = suite_create("import");
    TCase *tc = tcase_create("import");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, imported_teacher_gives_torch_features);
    tcase_add_test(tc, imported_teacher_of_another_architecture_is_refused);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
