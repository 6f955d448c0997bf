/* idx.c - gzipped IDX reader and the Fashion-MNIST demo dataset (see include/fsb/idx.h).
 * IDX: big-endian magic 0x00000803 (u8 images, 3 dims) / 0x00000801 (u8 labels, 1 dim),
 * then the dims as big-endian u32, then the bytes.
 */
#include "fsb/idx.h"
#include "fsb/cache.h"
#include "fsb/pretrain.h"
#include "fsb/fileio.h"
#include "fsb/status.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static int read_exact(gzFile gz, const char *path, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(gz, p, chunk);
        if (got <= 0) return fsb_error(FSB_EFORMAT, "%s: truncated or unreadable IDX file", path);
        p += got;
        n -= (size_t)got;
    }
    return FSB_OK;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Read an IDX file with `ndim` dims and magic 0x0000080<ndim>; dims out, data malloc'd. */
static int read_idx(const char *path, int ndim, uint32_t *dims, uint8_t **data)
{
    *data = NULL;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return fsb_error(errno == ENOENT ? FSB_ENOTFOUND : FSB_EIO, "%s: cannot open: %s", path,
                         strerror(errno));
    unsigned char hdr[16];
    int st = read_exact(gz, path, hdr, 4);
    if (st) goto done;
    if (be32(hdr) != (uint32_t)(0x800 | ndim)) {
        st = fsb_error(FSB_EFORMAT, "%s: not an IDX u8 file with %d dimensions (magic %08x)", path,
                       ndim, be32(hdr));
        goto done;
    }
    if ((st = read_exact(gz, path, hdr + 4, 4 * (size_t)ndim))) goto done;
    size_t total = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > (1u << 24)) {
            st = fsb_error(FSB_EFORMAT, "%s: implausible dimension %u", path, dims[i]);
            goto done;
        }
        if (total > ((size_t)1 << 32) / dims[i]) { /* checked before the product can wrap */
            st = fsb_error(FSB_EFORMAT, "%s: implausible size", path);
            goto done;
        }
        total *= dims[i];
    }
    /* the buffer grows with the data actually read, doubling from 1 MB: a truncated or
     * hostile header claiming up to 4 GB costs no more memory than the file holds */
    const size_t first = (size_t)1 << 20;
    for (size_t got = 0; got < total;) {
        size_t cap = got < total / 2 ? 2 * got : total;
        if (!got) cap = total < first ? total : first;
        uint8_t *grown = realloc(*data, cap);
        if (!grown) {
            st = fsb_error(FSB_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        *data = grown;
        if ((st = read_exact(gz, path, grown + got, cap - got))) goto done;
        got = cap;
    }
done:
    gzclose(gz);
    if (st) {
        free(*data);
        *data = NULL;
    }
    return st;
}

int fsb_idx_read(fsb_idx *out, const char *images_path, const char *labels_path)
{
    memset(out, 0, sizeof *out);
    uint32_t idims[3] = {0, 0, 0}, ldims[1] = {0};
    int st = read_idx(images_path, 3, idims, &out->pixels);
    if (st) return st;
    st = read_idx(labels_path, 1, ldims, &out->labels);
    if (st == FSB_OK && ldims[0] != idims[0])
        st = fsb_error(FSB_EFORMAT, "%s: %u labels for %u images in %s", labels_path, ldims[0],
                       idims[0], images_path);
    if (st) {
        fsb_idx_free(out);
        return st;
    }
    out->n = (int)idims[0];
    out->rows = (int)idims[1];
    out->cols = (int)idims[2];
    return FSB_OK;
}

void fsb_idx_free(fsb_idx *idx)
{
    if (!idx) return;
    free(idx->pixels);
    free(idx->labels);
    memset(idx, 0, sizeof *idx);
}

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
