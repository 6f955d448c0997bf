/* fuzz_idx.c - the (Fashion-)MNIST IDX reader (fsb_idx_read: an idx3 images file and an
 * idx1 labels file, gzip or plain). The input is the images file, the separator
 * FUZZ_IDX_SEP, then the labels file; each is written to a scratch file. Property: an
 * accepted pair has n*rows*cols pixels and n labels, all readable.
 */
#define _GNU_SOURCE /* memmem */
#include "common.h"
#include "fsb/idx.h"
#include "fsb/status.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_IDX_SEP "FSBIDXLABELS"

static char *images, *labels;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    images = fuzz_path("images-idx3-ubyte.gz");
    labels = fuzz_path("labels-idx1-ubyte.gz");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t seplen = sizeof FUZZ_IDX_SEP - 1;
    const uint8_t *sep = memmem(data, size, FUZZ_IDX_SEP, seplen);
    size_t n_img = sep ? (size_t)(sep - data) : size;
    fuzz_write(images, data, n_img);
    if (sep)
        fuzz_write(labels, sep + seplen, size - n_img - seplen);
    else
        fuzz_write(labels, "", 0);
    fsb_idx idx;
    if (fsb_idx_read(&idx, images, labels)) {
        if (idx.pixels || idx.labels || idx.n) fuzz_fail("a failed read left data behind");
        return 0;
    }
    if (idx.n < 1 || idx.rows < 1 || idx.cols < 1)
        fuzz_fail("idx of %d x %d x %d", idx.n, idx.rows, idx.cols);
    fuzz_touch(idx.pixels, (size_t)idx.n * (size_t)idx.rows * (size_t)idx.cols);
    fuzz_touch(idx.labels, (size_t)idx.n);
    fsb_idx_free(&idx);
    return 0;
}
