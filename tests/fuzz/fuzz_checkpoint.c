/* fuzz_checkpoint.c - checkpoints (.fsbt): fsb_tensorfile_load, then the model's reading of
 * them (fsb_model_create_from_file, as bench loads a teacher). The trailing XXH3-64 is redone
 * over each input so that mutations get past the checksum to the parser. Property: every
 * tensor that loads has numel = prod(dims) readable elements.
 */
#include "common.h"
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"

#include <stdlib.h>
#include <string.h>

static char *path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    path = fuzz_path("model.fsbt");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) fuzz_fail("out of memory");
    memcpy(buf, data, size);
    if (size >= 8) {
        uint64_t h = fsb_tensorfile_checksum(buf, size - 8);
        memcpy(buf + size - 8, &h, 8);
    }
    fuzz_write(path, buf, size);
    free(buf);

    fsb_tensorfile tf;
    if (fsb_tensorfile_load(&tf, path)) {
        if (tf.n_meta || tf.n_tensors || tf.tensors || tf.meta_keys)
            fuzz_fail("a failed load left content behind");
        return 0;
    }
    for (int i = 0; i < tf.n_meta; i++)
        if (!tf.meta_keys[i][0] || fsb_tensorfile_meta(&tf, tf.meta_keys[i]) != tf.meta_vals[i])
            fuzz_fail("metadata entry %d", i);
    for (int i = 0; i < tf.n_tensors; i++) {
        const fsb_tensor *t = &tf.tensors[i];
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= (size_t)t->dims[d];
        if (t->ndim < 0 || t->ndim > FSB_TENSOR_MAXDIM || numel != t->numel ||
            fsb_tensorfile_get(&tf, t->name) != t)
            fuzz_fail("tensor %d", i);
        fuzz_touch(t->data, numel * fsb_dtype_size(t->dtype));
    }
    fsb_tensorfile_free(&tf);

    /* the crop bench uses by default; a checkpoint's own in_hw is used by nothing else */
    fsb_model *m = NULL;
    if (fsb_model_create_from_file(&m, path, 84, 1, NULL) == FSB_OK && !m)
        fuzz_fail("no model and no error");
    fsb_model_destroy(m);
    return 0;
}
