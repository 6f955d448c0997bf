/* fuzz_manifest.c - episode manifests (fsb_episodes_load, fsb_episodes_manifest_split) on
 * a fixed 4-class split (FUZZ_MANIFEST_SPLIT), the input written to a scratch file; plain
 * or gzip. Properties of a manifest that loads: every index is in range, support and
 * queries of an episode are disjoint, and its re-export loads back as the same sweep.
 */
#include "common.h"
#include "fsb/episodes.h"
#include "fsb/status.h"

#include <stdlib.h>
#include <string.h>

static fsb_split split;
static char *in_path, *out_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char *csv = fuzz_path("test.csv");
    fuzz_write(csv, FUZZ_MANIFEST_SPLIT, strlen(FUZZ_MANIFEST_SPLIT));
    free(csv);
    if (fsb_split_open(&split, fuzz_dir(), "test")) fuzz_fail("split: %s", fsb_error_last());
    in_path = fuzz_path("episodes.csv");
    out_path = fuzz_path("export.csv");
    return 0;
}

static void check_sweep(const fsb_sweep *sw)
{
    if (sw->way < 1 || sw->way > split.n_classes || sw->n_shots < 1 || sw->n_episodes < 1 ||
        sw->max_shot != sw->shots[sw->n_shots - 1])
        fuzz_fail("sweep of way %d, %d shots, %d episodes", sw->way, sw->n_shots, sw->n_episodes);
    unsigned char *used = calloc((size_t)split.n_images, 1);
    if (!used) fuzz_fail("out of memory");
    for (int e = 0; e < sw->n_episodes; e++) {
        fsb_episode ep;
        fsb_sweep_episode(sw, e, &ep);
        memset(used, 0, (size_t)split.n_images);
        for (int c = 0; c < sw->way; c++) {
            int k = ep.classes[c];
            if (k < 0 || k >= split.n_classes) fuzz_fail("class index %d", k);
            for (int j = 0; j < sw->max_shot + sw->query; j++) {
                int i = j < sw->max_shot ? ep.support[c * sw->max_shot + j]
                                         : ep.queries[c * sw->query + j - sw->max_shot];
                if (i < 0 || i >= split.n_images || split.labels[i] != k)
                    fuzz_fail("image index %d of class %d", i, k);
                if (used[i]++) fuzz_fail("image %d twice in episode %d", i, e);
            }
        }
    }
    free(used);
    /* the export of what loaded loads back as the same sweep (the input itself may differ
     * from the export: CRLF, header order, blank lines at the end, gzip) */
    fsb_sweep back;
    int differs;
    if (fsb_episodes_export(sw, &split, out_path, NULL))
        fuzz_fail("re-export failed: %s", fsb_error_last());
    if (fsb_episodes_load(&back, &split, out_path, &differs))
        fuzz_fail("the re-export does not load: %s", fsb_error_last());
    size_t ne = (size_t)sw->n_episodes * (size_t)sw->way;
    if (strcmp(back.generator, sw->generator) || strcmp(back.split, sw->split) ||
        back.seed != sw->seed || back.fingerprint != sw->fingerprint || back.way != sw->way ||
        back.query != sw->query || back.n_shots != sw->n_shots ||
        memcmp(back.shots, sw->shots, sizeof sw->shots) || back.n_episodes != sw->n_episodes ||
        memcmp(back.classes, sw->classes, ne * sizeof(int)) ||
        memcmp(back.support, sw->support, ne * (size_t)sw->max_shot * sizeof(int)) ||
        memcmp(back.queries, sw->queries, ne * (size_t)sw->query * sizeof(int)))
        fuzz_fail("a loaded manifest re-exports to another sweep");
    fsb_sweep_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fsb_sweep sw;
    char name[64];
    int differs;
    fuzz_write(in_path, data, size);
    fsb_episodes_manifest_split(in_path, name, sizeof name);
    if (fsb_episodes_load(&sw, &split, in_path, &differs) == FSB_OK) {
        check_sweep(&sw);
        fsb_sweep_free(&sw);
    } else if (sw.classes || sw.support || sw.queries) {
        fuzz_fail("a failed load left arrays behind");
    }
    return 0;
}
