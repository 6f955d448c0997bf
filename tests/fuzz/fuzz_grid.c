/* fuzz_grid.c - `bench tune --grid` specs (fsb_tune_expand: "key=v1|v2,..." into grid
 * points) for each method; the first byte picks finetune, refilled, svm or logreg. Property:
 * every point expanded is at most FSB_TUNE_POINT_NAME_MAX long, distinct, and parses as
 * that method's settings (fsb_student_opts_parse or fsb_tune_feature_point).
 */
#include "common.h"
#include "fsb/status.h"
#include "fsb/student.h"
#include "fsb/tune.h"

#include <stdlib.h>
#include <string.h>

static const char *const methods[] = {"finetune", "refilled", "svm", "logreg"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *method = methods[data[0] % 4];
    int feature = data[0] % 4 >= 2;
    char *grid = fuzz_cstr(data + 1, size - 1);
    char *points[FSB_TUNE_MAX_POINTS];
    int n = -1;
    if (fsb_tune_expand(grid, method, "--grid", points, &n) == FSB_OK) {
        if (n < 1 || n > FSB_TUNE_MAX_POINTS) fuzz_fail("%d points", n);
        for (int i = 0; i < n; i++) {
            if (strlen(points[i]) > FSB_TUNE_POINT_NAME_MAX) fuzz_fail("point too long");
            for (int j = 0; j < i; j++)
                if (!strcmp(points[i], points[j])) fuzz_fail("point '%s' twice", points[i]);
            fsb_student_opts o;
            double C;
            int norm;
            fsb_student_opts_default(&o);
            int st = feature ? fsb_tune_feature_point(points[i], &C, &norm, "--grid")
                             : fsb_student_opts_parse(&o, points[i], "--grid");
            if (st) fuzz_fail("point '%s' does not parse: %s", points[i], fsb_error_last());
        }
        for (int i = 0; i < n; i++)
            free(points[i]);
    } else if (n != 0) {
        fuzz_fail("a failed expansion reports %d points", n);
    }
    free(grid);
    return 0;
}
