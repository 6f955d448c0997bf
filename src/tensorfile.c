/* tensorfile.c - the versioned tensor container (see include/fsb/tensorfile.h and
 * docs/formats.md). Load reads the whole file, checks magic and version, then the trailing
 * XXH3-64 checksum, then parses with every count, length and dimension bounded by the bytes
 * left, so a corrupt or hostile header can neither crash us nor make us allocate more than
 * the file size. Save streams through fsb_outfile and hashes as it writes.
 */
#include "fsb/tensorfile.h"
#include "fsb/fileio.h"
#include "fsb/status.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensorfile.c assumes a little-endian host (the file format is little-endian)"
#endif

static const char MAGIC[8] = {'F', 'S', 'B', 'T', 'E', 'N', 'S', '\0'};
enum { HEADER_BYTES = 24, CHECKSUM_BYTES = 8 };

void fsb_tensorfile_init(fsb_tensorfile *tf)
{
    memset(tf, 0, sizeof *tf);
}

void fsb_tensorfile_free(fsb_tensorfile *tf)
{
    if (!tf) return;
    for (int i = 0; i < tf->n_meta; i++) {
        free(tf->meta_keys[i]);
        free(tf->meta_vals[i]);
    }
    free(tf->meta_keys);
    free(tf->meta_vals);
    for (int i = 0; i < tf->n_tensors; i++) {
        free(tf->tensors[i].name);
        free(tf->tensors[i].data);
    }
    free(tf->tensors);
    fsb_tensorfile_init(tf);
}

size_t fsb_dtype_size(fsb_dtype dtype)
{
    return dtype == FSB_I64 ? 8 : 4;
}

uint64_t fsb_tensorfile_checksum(const void *data, size_t size)
{
    return (uint64_t)XXH3_64bits(data, size);
}

/* ---- in-memory editing ---------------------------------------------------------------- */

int fsb_tensorfile_set_meta(fsb_tensorfile *tf, const char *key, const char *val)
{
    if (!key[0]) return fsb_error(FSB_EINVAL, "tensorfile: empty metadata key");
    char *v = strdup(val);
    if (!v) return fsb_error(FSB_ENOMEM, "tensorfile: out of memory");
    for (int i = 0; i < tf->n_meta; i++) {
        if (strcmp(tf->meta_keys[i], key) == 0) {
            free(tf->meta_vals[i]);
            tf->meta_vals[i] = v;
            return FSB_OK;
        }
    }
    char *k = strdup(key);
    char **nk = realloc(tf->meta_keys, (size_t)(tf->n_meta + 1) * sizeof *nk);
    if (nk) tf->meta_keys = nk;
    char **nv = nk ? realloc(tf->meta_vals, (size_t)(tf->n_meta + 1) * sizeof *nv) : NULL;
    if (nv) tf->meta_vals = nv;
    if (!k || !nk || !nv) {
        free(k);
        free(v);
        return fsb_error(FSB_ENOMEM, "tensorfile: out of memory");
    }
    tf->meta_keys[tf->n_meta] = k;
    tf->meta_vals[tf->n_meta] = v;
    tf->n_meta++;
    return FSB_OK;
}

const char *fsb_tensorfile_meta(const fsb_tensorfile *tf, const char *key)
{
    for (int i = 0; i < tf->n_meta; i++)
        if (strcmp(tf->meta_keys[i], key) == 0) return tf->meta_vals[i];
    return NULL;
}

int fsb_tensorfile_meta_int(const fsb_tensorfile *tf, const char *what, const char *key,
                            long long *out)
{
    const char *v = fsb_tensorfile_meta(tf, key);
    if (!v) return fsb_error(FSB_ENOTFOUND, "%s: missing metadata '%s'", what, key);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!v[0] || *end || errno)
        return fsb_error(FSB_EFORMAT, "%s: metadata '%s' = '%s' is not an integer", what, key, v);
    *out = x;
    return FSB_OK;
}

/* numel of dims with overflow detection: 0 on success, -1 when the product (or any single
 * dim) does not fit in `limit` elements. A zero dim gives 0 regardless of the others. */
static int dims_numel(int ndim, const int64_t *dims, uint64_t limit, size_t *numel)
{
    uint64_t n = 1;
    int zero = 0, over = 0;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0) return -1;
        uint64_t x = (uint64_t)dims[d];
        if (x == 0)
            zero = 1;
        else if (n > limit / x)
            over = 1;
        else
            n *= x;
    }
    if (zero) {
        *numel = 0;
        return 0;
    }
    if (over || n > limit) return -1;
    *numel = (size_t)n;
    return 0;
}

const fsb_tensor *fsb_tensorfile_get(const fsb_tensorfile *tf, const char *name)
{
    for (int i = 0; i < tf->n_tensors; i++)
        if (strcmp(tf->tensors[i].name, name) == 0) return &tf->tensors[i];
    return NULL;
}

int fsb_tensorfile_add(fsb_tensorfile *tf, const char *name, fsb_dtype dtype, int ndim,
                       const int64_t *dims, const void *data)
{
    if (!name[0]) return fsb_error(FSB_EINVAL, "tensorfile: empty tensor name");
    if (fsb_tensorfile_get(tf, name))
        return fsb_error(FSB_EINVAL, "tensorfile: duplicate tensor name '%s'", name);
    if (ndim < 0 || ndim > FSB_TENSOR_MAXDIM || (ndim > 0 && !dims))
        return fsb_error(FSB_EINVAL, "tensorfile: tensor '%s': bad ndim %d", name, ndim);
    if (dtype != FSB_F32 && dtype != FSB_I64)
        return fsb_error(FSB_EINVAL, "tensorfile: tensor '%s': bad dtype %d", name, (int)dtype);
    size_t esz = fsb_dtype_size(dtype), numel;
    if (dims_numel(ndim, dims, (uint64_t)(SIZE_MAX / esz), &numel) != 0)
        return fsb_error(FSB_EINVAL, "tensorfile: tensor '%s': bad or overflowing dims", name);
    fsb_tensor *nt = realloc(tf->tensors, (size_t)(tf->n_tensors + 1) * sizeof *nt);
    if (!nt) return fsb_error(FSB_ENOMEM, "tensorfile: out of memory");
    tf->tensors = nt;
    fsb_tensor *t = &tf->tensors[tf->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(numel ? numel * esz : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return fsb_error(FSB_ENOMEM, "tensorfile: out of memory for tensor '%s'", name);
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->dims[d] = dims[d];
    t->numel = numel;
    if (data)
        memcpy(t->data, data, numel * esz);
    else
        memset(t->data, 0, numel * esz);
    tf->n_tensors++;
    return FSB_OK;
}

static int get_typed(const fsb_tensorfile *tf, const char *what, const char *name, fsb_dtype dtype,
                     size_t numel, const void **out)
{
    const fsb_tensor *t = fsb_tensorfile_get(tf, name);
    *out = NULL;
    if (!t) return fsb_error(FSB_ENOTFOUND, "%s: no tensor '%s'", what, name);
    if (t->dtype != dtype)
        return fsb_error(FSB_EMISMATCH, "%s: tensor '%s' is %s, expected %s", what, name,
                         t->dtype == FSB_F32 ? "float32" : "int64",
                         dtype == FSB_F32 ? "float32" : "int64");
    if (t->numel != numel)
        return fsb_error(FSB_EMISMATCH, "%s: tensor '%s' has %zu elements, expected %zu", what,
                         name, t->numel, numel);
    *out = t->data;
    return FSB_OK;
}

int fsb_tensorfile_get_f32(const fsb_tensorfile *tf, const char *what, const char *name,
                           size_t numel, const float **out)
{
    const void *p;
    int st = get_typed(tf, what, name, FSB_F32, numel, &p);
    *out = p;
    return st;
}

int fsb_tensorfile_get_i64(const fsb_tensorfile *tf, const char *what, const char *name,
                           size_t numel, const int64_t **out)
{
    const void *p;
    int st = get_typed(tf, what, name, FSB_I64, numel, &p);
    *out = p;
    return st;
}

/* ---- save --------------------------------------------------------------------------- */

typedef struct writer {
    FILE *fp;           /* the temporary file */
    XXH3_state_t *hash; /* running checksum of every byte written */
    int failed;         /* a write or hash update failed */
} writer;

static void put(writer *w, const void *p, size_t n)
{
    if (w->failed || n == 0) return;
    if (fwrite(p, 1, n, w->fp) != n || XXH3_64bits_update(w->hash, p, n) != XXH_OK) w->failed = 1;
}

static void put_u32(writer *w, uint32_t x)
{
    put(w, &x, 4);
}

static void put_u64(writer *w, uint64_t x)
{
    put(w, &x, 8);
}

static void put_str(writer *w, const char *s)
{
    size_t n = strlen(s);
    put_u32(w, (uint32_t)n);
    put(w, s, n);
}

int fsb_tensorfile_save(const fsb_tensorfile *tf, const char *path)
{
    fsb_outfile of;
    writer w = {0};
    int st = fsb_outfile_open(&of, path);
    if (st) return st;
    w.fp = of.fp;
    w.hash = XXH3_createState();
    if (!w.hash || XXH3_64bits_reset(w.hash) != XXH_OK) {
        st = fsb_error(FSB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    put(&w, MAGIC, sizeof MAGIC);
    put_u32(&w, FSB_TENSORFILE_VERSION);
    put_u32(&w, (uint32_t)tf->n_meta);
    put_u32(&w, (uint32_t)tf->n_tensors);
    put_u32(&w, 0);
    for (int i = 0; i < tf->n_meta; i++) {
        put_str(&w, tf->meta_keys[i]);
        put_str(&w, tf->meta_vals[i]);
    }
    for (int i = 0; i < tf->n_tensors; i++) {
        const fsb_tensor *t = &tf->tensors[i];
        put_str(&w, t->name);
        put_u32(&w, (uint32_t)t->dtype);
        put_u32(&w, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++)
            put_u64(&w, (uint64_t)t->dims[d]);
        put(&w, t->data, t->numel * fsb_dtype_size(t->dtype));
    }
    uint64_t sum = (uint64_t)XXH3_64bits_digest(w.hash);
    if (!w.failed && fwrite(&sum, 1, 8, w.fp) != 8) w.failed = 1;
    if (w.failed) {
        int e = errno;
        st = fsb_error(FSB_EIO, "%s: write failed: %s", path, strerror(e));
        goto done;
    }
    st = fsb_outfile_commit(&of);
done:
    if (st) fsb_outfile_abort(&of);
    XXH3_freeState(w.hash);
    return st;
}

/* ---- load --------------------------------------------------------------------------- */

typedef struct reader {
    const unsigned char *p; /* next unread byte */
    size_t left;            /* bytes left before the checksum */
} reader;

static int get_bytes(reader *r, void *out, size_t n)
{
    if (r->left < n) return -1;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

static int get_u32(reader *r, uint32_t *x)
{
    return get_bytes(r, x, 4);
}

/* A length-prefixed string copied into a malloc'd NUL-terminated buffer; -1 when it runs
 * past the end, is empty (when !allow_empty) or holds a NUL; -2 on OOM. */
static int get_str(reader *r, char **out, int allow_empty)
{
    uint32_t n;
    *out = NULL;
    if (get_u32(r, &n) || n > r->left || (n == 0 && !allow_empty) || memchr(r->p, 0, n)) return -1;
    char *s = malloc((size_t)n + 1);
    if (!s) return -2;
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    r->left -= n;
    *out = s;
    return 0;
}

static int parse_body(fsb_tensorfile *tf, reader *r, uint32_t n_meta, uint32_t n_tensors,
                      const char *path)
{
    /* each meta entry takes >= 9 bytes (two lengths + a non-empty key), each tensor >= 13;
     * so counts beyond that are lies, caught before allocating the arrays */
    if (n_meta > r->left / 9 || n_tensors > r->left / 13 || n_meta > INT_MAX || n_tensors > INT_MAX)
        return fsb_error(FSB_EFORMAT,
                         "%s: header counts (%u metadata, %u tensors) exceed the "
                         "file size",
                         path, n_meta, n_tensors);
    if (n_meta) {
        tf->meta_keys = calloc(n_meta, sizeof *tf->meta_keys);
        tf->meta_vals = calloc(n_meta, sizeof *tf->meta_vals);
        if (!tf->meta_keys || !tf->meta_vals)
            return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
    }
    for (uint32_t i = 0; i < n_meta; i++) {
        char *k, *v;
        int e = get_str(r, &k, 0);
        if (e == 0) {
            e = get_str(r, &v, 1);
            if (e) free(k);
        }
        if (e == -2) return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
        if (e)
            return fsb_error(FSB_EFORMAT, "%s: metadata entry %u: bad or truncated string", path,
                             i);
        if (fsb_tensorfile_meta(tf, k)) {
            int st = fsb_error(FSB_EFORMAT, "%s: duplicate metadata key '%s'", path, k);
            free(k);
            free(v);
            return st;
        }
        tf->meta_keys[i] = k;
        tf->meta_vals[i] = v;
        tf->n_meta++;
    }
    if (n_tensors) {
        tf->tensors = calloc(n_tensors, sizeof *tf->tensors);
        if (!tf->tensors) return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
    }
    for (uint32_t i = 0; i < n_tensors; i++) {
        char *name;
        uint32_t dtype, ndim;
        int e = get_str(r, &name, 0);
        if (e == -2) return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
        if (e) return fsb_error(FSB_EFORMAT, "%s: tensor %u: bad or truncated name", path, i);
        if (fsb_tensorfile_get(tf, name)) {
            int st = fsb_error(FSB_EFORMAT, "%s: duplicate tensor name '%s'", path, name);
            free(name);
            return st;
        }
        fsb_tensor *t = &tf->tensors[i];
        t->name = name;
        tf->n_tensors++; /* owned from here on, freed by fsb_tensorfile_free */
        if (get_u32(r, &dtype) || get_u32(r, &ndim))
            return fsb_error(FSB_EFORMAT, "%s: tensor '%s': truncated header", path, name);
        if (dtype != FSB_F32 && dtype != FSB_I64)
            return fsb_error(FSB_EFORMAT, "%s: tensor '%s': unknown dtype %u", path, name, dtype);
        if (ndim > FSB_TENSOR_MAXDIM)
            return fsb_error(FSB_EFORMAT, "%s: tensor '%s': ndim %u exceeds %d", path, name, ndim,
                             FSB_TENSOR_MAXDIM);
        t->dtype = (fsb_dtype)dtype;
        t->ndim = (int)ndim;
        for (uint32_t d = 0; d < ndim; d++) {
            uint64_t x;
            if (get_bytes(r, &x, 8))
                return fsb_error(FSB_EFORMAT, "%s: tensor '%s': truncated dims", path, name);
            if (x > (uint64_t)INT64_MAX)
                return fsb_error(FSB_EFORMAT, "%s: tensor '%s': dim %u is negative", path, name, d);
            t->dims[d] = (int64_t)x;
        }
        size_t esz = fsb_dtype_size(t->dtype);
        if (dims_numel(t->ndim, t->dims, (uint64_t)(r->left / esz), &t->numel) != 0)
            return fsb_error(FSB_EFORMAT,
                             "%s: tensor '%s': data runs past the end of the file (truncated "
                             "or corrupt dims)",
                             path, name);
        size_t bytes = t->numel * esz;
        t->data = malloc(bytes ? bytes : 1);
        if (!t->data) return fsb_error(FSB_ENOMEM, "%s: out of memory for tensor '%s'", path, name);
        get_bytes(r, t->data, bytes);
    }
    if (r->left)
        return fsb_error(FSB_EFORMAT, "%s: %zu unexpected bytes after the last tensor", path,
                         r->left);
    return FSB_OK;
}

int fsb_tensorfile_load(fsb_tensorfile *tf, const char *path)
{
    void *buf = NULL;
    size_t size;
    fsb_tensorfile_init(tf);
    int st = fsb_read_file(path, &buf, &size);
    if (st) return st;
    const unsigned char *b = buf;
    uint32_t version, n_meta, n_tensors, reserved;
    if (size < sizeof MAGIC || memcmp(b, MAGIC, sizeof MAGIC) != 0) {
        st = fsb_error(FSB_EFORMAT, "%s: not an fsbench tensor file (bad magic)", path);
        goto done;
    }
    if (size < HEADER_BYTES + CHECKSUM_BYTES) {
        st = fsb_error(FSB_EFORMAT, "%s: truncated (%zu bytes, a tensor file has at least %d)",
                       path, size, HEADER_BYTES + CHECKSUM_BYTES);
        goto done;
    }
    memcpy(&version, b + 8, 4);
    memcpy(&n_meta, b + 12, 4);
    memcpy(&n_tensors, b + 16, 4);
    memcpy(&reserved, b + 20, 4);
    if (version == 0 || version > FSB_TENSORFILE_VERSION) {
        st = fsb_error(FSB_EFORMAT,
                       "%s: format version %u is not supported (this fsbench reads "
                       "version %d; newer file?)",
                       path, version, FSB_TENSORFILE_VERSION);
        goto done;
    }
    uint64_t want;
    memcpy(&want, b + size - CHECKSUM_BYTES, 8);
    if (fsb_tensorfile_checksum(b, size - CHECKSUM_BYTES) != want) {
        st = fsb_error(FSB_EFORMAT, "%s: checksum mismatch (file corrupt or truncated)", path);
        goto done;
    }
    if (reserved != 0) {
        st = fsb_error(FSB_EFORMAT, "%s: reserved header field is %u, expected 0", path, reserved);
        goto done;
    }
    reader r = {b + HEADER_BYTES, size - HEADER_BYTES - CHECKSUM_BYTES};
    st = parse_body(tf, &r, n_meta, n_tensors, path);
done:
    if (st) fsb_tensorfile_free(tf);
    free(buf);
    return st;
}
