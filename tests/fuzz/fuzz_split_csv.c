/* fuzz_split_csv.c - the Ravi split CSV reader ("filename,label" rows) through
 * fsb_split_open on ROOT/test.csv in a scratch folder (the reader takes a dataset root).
 * Properties of a split that opens: the canonical order (classes, then basenames, sorted
 * bytewise), consistent class ranges, and every class and image found by its name.
 */
#include "common.h"
#include "fsb/dataset.h"
#include "fsb/status.h"

#include <stdlib.h>
#include <string.h>

static char *root, *csv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    root = strdup(fuzz_dir());
    csv = fuzz_path("test.csv");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fsb_split s;
    fuzz_write(csv, data, size);
    if (fsb_split_open(&s, root, "test")) {
        if (s.n_images || s.paths || s.class_names) fuzz_fail("a failed open left a split");
        return 0;
    }
    if (s.layout != FSB_LAYOUT_RAVI || s.n_classes < 1 || s.n_images < s.n_classes)
        fuzz_fail("split of %d classes, %d images", s.n_classes, s.n_images);
    int next = 0;
    for (int c = 0; c < s.n_classes; c++) {
        if (c && strcmp(s.class_names[c - 1], s.class_names[c]) >= 0)
            fuzz_fail("classes out of order");
        if (s.class_start[c] != next || s.class_count[c] < 1) fuzz_fail("bad class range");
        next += s.class_count[c];
        if (fsb_split_class_index(&s, s.class_names[c]) != c) fuzz_fail("class not found");
        for (int i = s.class_start[c]; i < next; i++) {
            const char *b = fsb_split_basename(&s, i);
            if (s.labels[i] != c || s.src_line[i] < 2) fuzz_fail("bad label or line");
            if (strncmp(s.paths[i], "images/", 7) != 0 || b != s.paths[i] + 7)
                fuzz_fail("path '%s' is not images/<filename>", s.paths[i]);
            if (i > s.class_start[c] && strcmp(fsb_split_basename(&s, i - 1), b) >= 0)
                fuzz_fail("images out of order");
            if (!fsb_split_field_ok(b, strlen(b), 1)) fuzz_fail("bad filename accepted");
            if (fsb_split_image_index(&s, c, b) != i) fuzz_fail("image not found");
        }
    }
    if (next != s.n_images) fuzz_fail("class ranges do not cover the images");
    fsb_split_free(&s);
    return 0;
}
