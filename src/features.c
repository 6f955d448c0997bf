/* features.c - batched embedding of packed images and the split feature cache (see
 * include/fsb/features.h).
 */
#include "fsb/features.h"
#include "fsb/fileio.h"
#include "fsb/progress.h"
#include "fsb/status.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int fsb_features_embed(fsb_model *m, const fsb_cache *c, const fsb_transform *tf, const int *idx,
                       int n, float *out, fsb_pool *pool, FILE *progress, const char *label)
{
    const int B = FSB_FEATURES_BATCH, d = fsb_model_embed_dim(m);
    float *batch = malloc(sizeof(float) * (size_t)B * 3 * tf->crop * tf->crop);
    int *own = idx ? NULL : malloc(sizeof(int) * (size_t)B);
    if (!batch || (!idx && !own)) {
        free(batch), free(own);
        return fsb_error(FSB_ENOMEM, "out of memory embedding %s", c->split.name);
    }
    fsb_progress bar;
    fsb_progress_init(&bar, progress, label ? label : "embed", "img", 0, n);
    int st = FSB_OK;
    for (int i = 0; i < n && !st; i += B) {
        int nb = n - i < B ? n - i : B;
        const int *ids = idx ? idx + i : own;
        for (int b = 0; !idx && b < nb; b++)
            own[b] = i + b;
        st = fsb_transform_test_batch(batch, c->px, c->size, c->size, c->channels, ids, nb, tf,
                                      pool);
        if (!st) st = fsb_model_embed(m, batch, nb, out + (size_t)i * d);
        fsb_progress_update(&bar, i + nb);
    }
    fsb_progress_finish(&bar);
    free(batch);
    free(own);
    return st;
}

/* The cache file's path beside c's packed file and the key text. */
static char *features_path(const fsb_cache *c, const char *key_text)
{
    uint64_t key = XXH3_64bits(key_text, strlen(key_text));
    char name[128];
    snprintf(name, sizeof name, "features-%s-%016" PRIx64 ".fsbt", c->split.name, key);
    char *dir = strdup(c->path);
    if (!dir) return NULL;
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    char *path = fsb_path_join(slash ? dir : ".", name);
    free(dir);
    return path;
}

int fsb_features_split(fsb_tensorfile *tf, const float **out, fsb_model *m, uint64_t teacher_hash,
                       const fsb_cache *c, const fsb_transform *xf, fsb_pool *pool, FILE *progress)
{
    char key_text[256];
    snprintf(key_text, sizeof key_text,
             "fsb-features/1 teacher=%016" PRIx64 " source=%016" PRIx64 " size=%d resize=%d "
             "crop=%d arch=%s",
             teacher_hash, c->source_fp, c->size, xf->resize, xf->crop,
             fsb_arch_name(fsb_model_options(m)->arch));
    char *path = features_path(c, key_text);
    if (!path) return fsb_error(FSB_ENOMEM, "out of memory");
    int n = c->split.n_images, d = fsb_model_embed_dim(m);
    int st = fsb_tensorfile_load(tf, path);
    if (st == FSB_OK) {
        const char *k = fsb_tensorfile_meta(tf, "key");
        if (k && !strcmp(k, key_text) &&
            fsb_tensorfile_get_f32(tf, path, "features", (size_t)n * d, out) == FSB_OK) {
            free(path);
            return FSB_OK;
        }
        fsb_tensorfile_free(tf);
    }
    float *feats = malloc((size_t)n * d * sizeof *feats);
    char label[96];
    snprintf(label, sizeof label, "embed %s", c->split.name);
    st = feats ? fsb_features_embed(m, c, xf, NULL, n, feats, pool, progress, label)
               : fsb_error(FSB_ENOMEM, "out of memory embedding %s", c->split.name);
    if (!st) {
        int64_t dims[2] = {n, d};
        fsb_tensorfile_init(tf);
        if (!(st = fsb_tensorfile_set_meta(tf, "key", key_text)) &&
            !(st = fsb_tensorfile_add(tf, "features", FSB_F32, 2, dims, feats)))
            st = fsb_tensorfile_save(tf, path);
        if (!st) st = fsb_tensorfile_get_f32(tf, path, "features", (size_t)n * d, out);
    }
    free(feats);
    free(path);
    return st;
}
