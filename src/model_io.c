/* model_io.c - fsb_model checkpoints through the tensorfile container: every state_dict
 * tensor under its PyTorch name, plus meta describing the architecture. Loading checks
 * everything before copying anything, so a rejected file leaves the model untouched.
 */
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void widths_str(const fsb_model *m, char *buf, size_t n)
{
    snprintf(buf, n, "%d,%d,%d,%d", m->o.widths[0], m->o.widths[1], m->o.widths[2], m->o.widths[3]);
}

int fsb_model_to_tensorfile(const fsb_model *m, fsb_tensorfile *tf, int n_extra,
                            const char *const *extra_keys, const char *const *extra_vals)
{
    char buf[64];
    int st = fsb_tensorfile_set_meta(tf, "arch", fsb_arch_name(m->o.arch));
    widths_str(m, buf, sizeof buf);
    if (!st) st = fsb_tensorfile_set_meta(tf, "widths", buf);
    snprintf(buf, sizeof buf, "%d", m->n_class);
    if (!st) st = fsb_tensorfile_set_meta(tf, "n_class", buf);
    snprintf(buf, sizeof buf, "%d", m->D);
    if (!st) st = fsb_tensorfile_set_meta(tf, "embed_dim", buf);
    snprintf(buf, sizeof buf, "%d", m->o.in_hw);
    if (!st) st = fsb_tensorfile_set_meta(tf, "in_hw", buf);
    if (!st) st = fsb_tensorfile_set_meta(tf, "flatten", m->o.flatten ? "1" : "0");
    for (int i = 0; !st && i < n_extra; i++)
        st = fsb_tensorfile_set_meta(tf, extra_keys[i], extra_vals[i]);
    for (int i = 0; !st && i < m->ntens; i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        if (t.kind == FSB_T_NUM_BATCHES)
            st = fsb_tensorfile_add(tf, t.name, FSB_I64, 0, NULL, t.count);
        else
            st = fsb_tensorfile_add(tf, t.name, FSB_F32, t.ndim, t.dims, t.data);
    }
    return st;
}

int fsb_model_save(const fsb_model *m, const char *path, int n_extra, const char *const *extra_keys,
                   const char *const *extra_vals)
{
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    int st = fsb_model_to_tensorfile(m, &tf, n_extra, extra_keys, extra_vals);
    if (!st) st = fsb_tensorfile_save(&tf, path);
    fsb_tensorfile_free(&tf);
    if (st) return fsb_error_wrap(st, "saving model to %s", path);
    return FSB_OK;
}

static int check_meta(const fsb_model *m, const fsb_tensorfile *tf, const char *path)
{
    const char *arch = fsb_tensorfile_meta(tf, "arch");
    if (!arch) return fsb_error(FSB_EMISMATCH, "%s: no \"arch\" in the checkpoint meta", path);
    if (strcmp(arch, fsb_arch_name(m->o.arch)) != 0)
        return fsb_error(FSB_EMISMATCH, "%s: architecture is %s, the model is %s", path, arch,
                         fsb_arch_name(m->o.arch));
    const char *w = fsb_tensorfile_meta(tf, "widths");
    char buf[64];
    widths_str(m, buf, sizeof buf);
    if (w && strcmp(w, buf) != 0)
        return fsb_error(FSB_EMISMATCH, "%s: widths are %s, the model has %s", path, w, buf);
    return FSB_OK;
}

/* Every state_dict tensor of m (its table only: m may be fsb_model_layout_only's) is in tf
 * with m's dtype and shape. */
static int check_tensors(const fsb_model *m, const fsb_tensorfile *tf, const char *path)
{
    for (int i = 0; i < m->ntens; i++) {
        const tentry *t = &m->tens[i];
        const fsb_tensor *f = fsb_tensorfile_get(tf, t->name);
        if (!f) return fsb_error(FSB_EMISMATCH, "%s: tensor %s is missing", path, t->name);
        if (t->kind == FSB_T_NUM_BATCHES) {
            if (f->dtype != FSB_I64 || f->numel != 1)
                return fsb_error(FSB_EMISMATCH, "%s: tensor %s must be one int64", path, t->name);
            continue;
        }
        int same = f->dtype == FSB_F32 && f->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = f->dims[d] == t->dims[d];
        if (!same) {
            char want[96], got[96];
            int o = snprintf(want, sizeof want, "[");
            for (int d = 0; d < t->ndim; d++)
                o += snprintf(want + o, sizeof want - (size_t)o, "%s%lld", d ? "," : "",
                              (long long)t->dims[d]);
            snprintf(want + o, sizeof want - (size_t)o, "]");
            o = snprintf(got, sizeof got, "[");
            for (int d = 0; d < f->ndim && o < 80; d++)
                o += snprintf(got + o, sizeof got - (size_t)o, "%s%lld", d ? "," : "",
                              (long long)f->dims[d]);
            snprintf(got + o, sizeof got - (size_t)o, "]");
            return fsb_error(FSB_EMISMATCH, "%s: tensor %s has shape %s%s, the model wants %s",
                             path, t->name, got, f->dtype == FSB_F32 ? "" : " (int64)", want);
        }
    }
    return FSB_OK;
}

static int load_tf(fsb_model *m, const fsb_tensorfile *tf, const char *path)
{
    int st = check_meta(m, tf, path);
    if (!st) st = check_tensors(m, tf, path);
    if (st) return st;
    for (int i = 0; i < m->ntens; i++) {
        fsb_model_tensor t;
        fsb_model_tensor_at(m, i, &t);
        const fsb_tensor *f = fsb_tensorfile_get(tf, t.name);
        if (t.kind == FSB_T_NUM_BATCHES)
            *t.count = *(const int64_t *)f->data;
        else
            memcpy(t.data, f->data, sizeof(float) * (size_t)t.numel);
    }
    return FSB_OK;
}

int fsb_model_from_tensorfile(fsb_model *m, const fsb_tensorfile *tf, const char *what)
{
    return load_tf(m, tf, what);
}

int fsb_model_load(fsb_model *m, const char *path)
{
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    int st = fsb_tensorfile_load(&tf, path);
    if (!st) st = load_tf(m, &tf, path);
    fsb_tensorfile_free(&tf);
    return st;
}

int fsb_model_create_from_file(fsb_model **out, const char *path, int in_hw, int max_batch,
                               fsb_pool *pool)
{
    *out = NULL;
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    fsb_model *m = NULL;
    int st = fsb_tensorfile_load(&tf, path);
    if (st) goto done;
    const char *arch = fsb_tensorfile_meta(&tf, "arch");
    fsb_arch a;
    if (!arch) {
        st = fsb_error(FSB_EFORMAT, "%s: no \"arch\" in the checkpoint meta", path);
        goto done;
    }
    if ((st = fsb_arch_parse(arch, &a)) != 0) {
        st = fsb_error_wrap(st, "%s", path);
        goto done;
    }
    fsb_model_opts o;
    fsb_model_opts_default(&o, a);
    const char *w = fsb_tensorfile_meta(&tf, "widths");
    int used = 0;
    if (w && (sscanf(w, "%d,%d,%d,%d%n", &o.widths[0], &o.widths[1], &o.widths[2], &o.widths[3],
                     &used) != 4 ||
              w[used] != '\0')) {
        st = fsb_error(FSB_EFORMAT, "%s: bad widths '%s'", path, w);
        goto done;
    }
    for (int i = 0; i < 4; i++)
        if (o.widths[i] < 1 || o.widths[i] > FSB_MODEL_MAX_WIDTH) {
            st = fsb_error(FSB_EFORMAT, "%s: widths '%s' out of range [1, %d]", path, w,
                           FSB_MODEL_MAX_WIDTH);
            goto done;
        }
    long long v = 0;
    if (fsb_tensorfile_meta(&tf, "in_hw") &&
        (st = fsb_tensorfile_meta_int(&tf, path, "in_hw", &v)) != 0)
        goto done;
    o.in_hw = in_hw > 0 ? in_hw : v > 0 ? (int)v : 84;
    const char *fl = fsb_tensorfile_meta(&tf, "flatten");
    o.flatten = fl && !strcmp(fl, "1");
    long long nc = 0;
    if ((st = fsb_tensorfile_meta_int(&tf, path, "n_class", &nc)) != 0) goto done;
    if (nc < 0 || nc > FSB_MODEL_MAX_CLASSES || (v != 0 && (v < 1 || v > 4096))) {
        st = fsb_error(FSB_EFORMAT, "%s: n_class %lld or in_hw %lld out of range", path, nc, v);
        goto done;
    }
    /* the file must hold the weights its meta declares before the model is allocated: a
     * small file claiming 2048-wide blocks and a million classes would cost gigabytes */
    fsb_model *layout = fsb_model_layout_only(&o, (int)nc);
    st = layout ? check_tensors(layout, &tf, path) : fsb_error(FSB_ENOMEM, "out of memory");
    free(layout);
    if (st) goto done;
    if ((st = fsb_model_create(&m, &o, (int)nc, max_batch, pool, NULL)) != 0) {
        st = fsb_error_wrap(st, "%s", path);
        goto done;
    }
    if ((st = load_tf(m, &tf, path)) != 0) goto done;
    *out = m;
    m = NULL;
done:
    fsb_model_destroy(m);
    fsb_tensorfile_free(&tf);
    return st;
}

/* One optional positive meta value (0 when absent). */
static int meta_side(const fsb_tensorfile *tf, const char *path, const char *key, int *out)
{
    long long v = 0;
    *out = 0;
    if (!fsb_tensorfile_meta(tf, key)) return FSB_OK;
    int st = fsb_tensorfile_meta_int(tf, path, key, &v);
    if (st) return st;
    if (v < 1 || v > 4096)
        return fsb_error(FSB_EFORMAT, "%s: %s %lld out of range [1, 4096]", path, key, v);
    *out = (int)v;
    return FSB_OK;
}

int fsb_model_file_input(const char *path, fsb_model_input *in)
{
    memset(in, 0, sizeof *in);
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    int in_hw = 0, st = fsb_tensorfile_load(&tf, path);
    if (!st) st = meta_side(&tf, path, "in_hw", &in_hw);
    if (!st) st = meta_side(&tf, path, "image_size", &in->image_size);
    if (!st) st = meta_side(&tf, path, "resize", &in->resize);
    if (!st) st = meta_side(&tf, path, "crop", &in->crop);
    fsb_tensorfile_free(&tf);
    if (st) return st;
    int given = (in->image_size > 0) + (in->resize > 0) + (in->crop > 0);
    if (given == 3) {
        in->recorded = 1;
        return FSB_OK;
    }
    if (given)
        return fsb_error(FSB_EFORMAT,
                         "%s: the meta has some of image_size, resize and crop but "
                         "not all three",
                         path);
    if (in_hw == 0 || in_hw == 84)
        in->image_size = 84, in->resize = 92, in->crop = 84;
    else
        in->image_size = in->resize = in->crop = in_hw;
    return FSB_OK;
}

int fsb_model_input_settle(const fsb_model_input *ck, const char *what, const char *path,
                           int *image_size, int *resize, int *crop)
{
    int *mine[3] = {image_size, resize, crop};
    const int theirs[3] = {ck->image_size, ck->resize, ck->crop};
    static const char *const flag[3] = {"--image-size", "--resize", "--crop"};
    for (int i = 0; i < 3; i++) {
        if (*mine[i] <= 0)
            *mine[i] = theirs[i];
        else if (*mine[i] != theirs[i])
            return fsb_error(FSB_EMISMATCH,
                             "%s %d conflicts with %s %s (%d%s): the network was trained on that "
                             "input; drop the flag",
                             flag[i], *mine[i], what, path, theirs[i],
                             ck->recorded ? "" : ", inferred from its input size");
    }
    if (*crop > *image_size)
        return fsb_error(FSB_EINVAL, "--image-size: %d is smaller than --crop %d", *image_size,
                         *crop);
    if (*crop > *resize)
        return fsb_error(FSB_EINVAL, "--resize: %d is smaller than --crop %d", *resize, *crop);
    if (*resize * 4 > *image_size * 5)
        return fsb_error(FSB_EINVAL,
                         "--resize %d on %d-pixel images upsamples them %.1fx and keeps only "
                         "%.0f%% of each side; use --resize close to --image-size",
                         *resize, *image_size, (double)*resize / *image_size,
                         100.0 * *crop / *resize);
    return FSB_OK;
}
