/* idx.c - gzipped IDX reader and the Fashion-MNIST demo dataset (see include/fsb/idx.h).
 * IDX: big-endian magic 0x00000803 (u8 images, 3 dims) / 0x00000801 (u8 labels, 1 dim),
 * then the dims as big-endian u32, then the bytes.
 */
#include "fsb/idx.h"
#include "fsb/fileio.h"
#include "fsb/status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
