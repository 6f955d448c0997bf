/* demo.c - the Fashion-MNIST demo of the main job (see include/fsb/demo.h): the IDX files
 * of Debian's dataset-fashion-mnist turned into a class-folder dataset of grey PNGs, and a
 * small teacher pre-trained on its base classes.
 */
#include "fsb/demo.h"
#include "fsb/cache.h"
#include "fsb/fileio.h"
#include "fsb/idx.h"
#include "fsb/pretrain.h"
#include "fsb/status.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Write one 8-bit grey PNG (plain file: the whole tree is renamed into place later). */
static int write_grey_png(const char *path, const uint8_t *px, int rows, int cols)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)cols;
    img.height = (png_uint_32)rows;
    img.format = PNG_FORMAT_GRAY;
    if (!png_image_write_to_file(&img, path, 0, px, cols, NULL))
        return fsb_error(FSB_EIO, "%s: cannot write PNG: %s", path, img.message);
    return FSB_OK;
}

static const char *const fashion_names[10] = {"tshirt_top", "trouser",   "pullover", "dress",
                                              "coat",       "sandal",    "shirt",    "sneaker",
                                              "bag",        "ankle_boot"};
/* 1 for the demo's base (train) classes, 0 for the novel ones. */
static const int fashion_base[10] = {1, 1, 1, 0, 0, 0, 0, 1, 1, 0};

static int write_split(const fsb_idx *idx, const char *dir, const char *split, int want_base,
                       int per_class)
{
    int count[10] = {0};
    int st = FSB_OK;
    char path[4096];
    for (int c = 0; c < 10; c++) {
        if (fashion_base[c] != want_base) continue;
        snprintf(path, sizeof path, "%s/%s/%s", dir, split, fashion_names[c]);
        if ((st = fsb_mkdir_p(path))) return st;
    }
    for (int i = 0; i < idx->n; i++) {
        int c = idx->labels[i];
        if (c > 9)
            return fsb_error(FSB_EFORMAT, "Fashion-MNIST label %d out of range at image %d", c, i);
        if (fashion_base[c] != want_base || count[c] >= per_class) continue;
        snprintf(path, sizeof path, "%s/%s/%s/%05d.png", dir, split, fashion_names[c], i);
        st = write_grey_png(path, idx->pixels + (size_t)i * idx->rows * idx->cols, idx->rows,
                            idx->cols);
        if (st) return st;
        count[c]++;
    }
    for (int c = 0; c < 10; c++)
        if (fashion_base[c] == want_base && count[c] < per_class)
            return fsb_error(FSB_EINVAL, "Fashion-MNIST: only %d images of class %s, %d wanted",
                             count[c], fashion_names[c], per_class);
    return FSB_OK;
}

int fsb_demo_make(const char *src_dir, const char *out_root, int per_class)
{
    char marker[4200], tmp[4200], a[4400], b[4400];
    if (strlen(out_root) > 4000 || strlen(src_dir) > 4000)
        return fsb_error(FSB_EINVAL, "demo dataset: path too long");
    snprintf(marker, sizeof marker, "%.4000s/.complete", out_root);
    if (fsb_is_file(marker)) return FSB_OK;
    fsb_idx train, test;
    snprintf(a, sizeof a, "%.4000s/train-images-idx3-ubyte.gz", src_dir);
    snprintf(b, sizeof b, "%.4000s/train-labels-idx1-ubyte.gz", src_dir);
    int st = fsb_idx_read(&train, a, b);
    if (st) return st;
    snprintf(a, sizeof a, "%.4000s/t10k-images-idx3-ubyte.gz", src_dir);
    snprintf(b, sizeof b, "%.4000s/t10k-labels-idx1-ubyte.gz", src_dir);
    st = fsb_idx_read(&test, a, b);
    if (st) {
        fsb_idx_free(&train);
        return st;
    }
    snprintf(tmp, sizeof tmp, "%.4000s.tmp.%ld", out_root, (long)getpid());
    if (!(st = fsb_mkdir_p(tmp)) && !(st = write_split(&train, tmp, "train", 1, per_class)) &&
        !(st = write_split(&train, tmp, "val", 0, per_class)) &&
        !(st = write_split(&test, tmp, "test", 0, per_class))) {
        snprintf(a, sizeof a, "%.4100s/.complete", tmp);
        st = fsb_write_file(a, "fashion-mnist demo\n", 19);
    }
    if (st == FSB_OK) {
        char *slash = strrchr(out_root, '/');
        if (slash && slash != out_root) {
            snprintf(a, sizeof a, "%.*s", (int)(slash - out_root), out_root);
            st = fsb_mkdir_p(a);
        }
        if (st == FSB_OK && rename(tmp, out_root) != 0) {
            int e = errno;
            if ((e == ENOTEMPTY || e == EEXIST) && fsb_is_file(marker))
                fsb_remove_tree(tmp); /* another process finished the same folder first */
            else
                st = fsb_error(FSB_EIO, "%s: cannot rename into place: %s", out_root, strerror(e));
        }
    }
    if (st) fsb_remove_tree(tmp); /* best effort: the error that matters is st */
    fsb_idx_free(&train);
    fsb_idx_free(&test);
    return st;
}

int fsb_demo_prepare(fsb_demo *d, const char *dir, FILE *log, FILE *progress)
{
    memset(d, 0, sizeof *d);
    char *base = NULL;
    int st = dir ? fsb_mkdir_p(dir) : fsb_cache_user_dir(&base);
    if (st) return st;
    const char *root_dir = dir ? dir : base;
    d->data = fsb_path_join(root_dir, "fashion-mnist-demo");
    d->teacher = fsb_path_join(root_dir, "fashion-mnist-demo-teacher-conv4.fsbt");
    free(base);
    if (!d->data || !d->teacher) {
        fsb_demo_free(d);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    if ((st = fsb_demo_make(FSB_FASHION_MNIST_DIR, d->data, 600))) {
        fsb_demo_free(d);
        return fsb_error_wrap(st, "demo dataset (Debian package dataset-fashion-mnist)");
    }
    fsb_pretrain_opts o;
    fsb_pretrain_opts_default(&o);
    o.data = d->data;
    o.out = d->teacher;
    o.epochs = 12;
    o.batch = 64;
    o.lr = 0.05;
    o.val_episodes = 200;
    o.image_size = 28;
    o.resize = 28;
    o.crop = 28;
    o.progress = progress;
    o.log = NULL;
    char state[4200];
    snprintf(state, sizeof state, "%.4100s.state", d->teacher);
    if (log && !fsb_is_file(state))
        fprintf(log, "demo: pre-training a ConvNet-4 teacher on the 5 base classes (about a "
                     "minute)\n");
    if ((st = fsb_pretrain(&o))) fsb_demo_free(d);
    return st;
}

void fsb_demo_free(fsb_demo *d)
{
    if (!d) return;
    free(d->data);
    free(d->teacher);
    d->data = d->teacher = NULL;
}
