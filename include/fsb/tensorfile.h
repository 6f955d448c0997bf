/* tensorfile.h - a versioned binary file of named float tensors plus string metadata.
 *
 * The one container for checkpoints (model weights, BN statistics, optimiser state),
 * PyTorch parity fixtures and imported teachers. Tensor names follow PyTorch state_dict
 * conventions (FEAT style: "encoder.0.0.weight", "encoder.layer1.0.conv1.weight", "fc.bias").
 * Files are written atomically and end in a checksum over everything before it; a
 * truncated, corrupt or foreign file is rejected with a message naming the file.
 *
 * Format (little-endian), version 1 — see docs/formats.md:
 *   magic "FSBTENS\0" (8 bytes), u32 version = 1, u32 n_meta, u32 n_tensors, u32 reserved 0
 *   n_meta    x { u32 key_len, key bytes, u32 val_len, val bytes }
 *   n_tensors x { u32 name_len, name bytes, u32 dtype (0 = f32, 1 = i64), u32 ndim (<= 8),
 *                 ndim x u64 dims, then the data: prod(dims) elements, 4 or 8 bytes each }
 *   u64 XXH3-64 (seed 0) of every preceding byte
 * Strings are not NUL-terminated in the file and may not contain NUL; names and keys are
 * non-empty and unique. Load bounds every count and length by the file size, so a corrupt
 * header never causes a huge allocation. Lookups are linear (files hold < ~10^4 tensors).
 */
#ifndef FSB_TENSORFILE_H
#define FSB_TENSORFILE_H

#include <stddef.h>
#include <stdint.h>

#define FSB_TENSOR_MAXDIM 8
#define FSB_TENSORFILE_VERSION 1 /* the version this code writes and the newest it reads */

typedef enum { FSB_F32 = 0, FSB_I64 = 1 } fsb_dtype;

typedef struct fsb_tensor {
    char *name;                      /* owned, NUL-terminated */
    fsb_dtype dtype;                 /* element type */
    int ndim;                        /* 0..FSB_TENSOR_MAXDIM (0 = scalar, one element) */
    int64_t dims[FSB_TENSOR_MAXDIM]; /* sizes, outermost first (PyTorch order) */
    size_t numel;                    /* product of dims */
    void *data;                      /* owned; float * for FSB_F32, int64_t * for FSB_I64 */
} fsb_tensor;

typedef struct fsb_tensorfile {
    int n_meta;       /* metadata entries */
    char **meta_keys; /* owned */
    char **meta_vals; /* owned */
    int n_tensors;    /* tensors, in file order */
    fsb_tensor *tensors;
} fsb_tensorfile;

/* An empty file object (all zero). */
void fsb_tensorfile_init(fsb_tensorfile *tf);
/* Free everything tf owns and leave it empty (init state); NULL is a no-op. */
void fsb_tensorfile_free(fsb_tensorfile *tf);

/* Bytes per element of a dtype (4 or 8). */
size_t fsb_dtype_size(fsb_dtype dtype);

/* Set (add or replace) a metadata string. */
int fsb_tensorfile_set_meta(fsb_tensorfile *tf, const char *key, const char *val);
/* The value for key, or NULL. Owned by tf. */
const char *fsb_tensorfile_meta(const fsb_tensorfile *tf, const char *key);
/* The value for key parsed as a whole decimal integer; a missing key or a non-integer value
 * is an error naming the file label `what` and the key. */
int fsb_tensorfile_meta_int(const fsb_tensorfile *tf, const char *what, const char *key,
                            long long *out);

/* Append a tensor; `data` (numel elements) is copied, or zero-filled when data is NULL.
 * ndim is 0..FSB_TENSOR_MAXDIM, dims >= 0 (dims may be NULL when ndim is 0). Fails with
 * FSB_EINVAL on a duplicate or empty name, bad ndim/dims or an element count that overflows. */
int fsb_tensorfile_add(fsb_tensorfile *tf, const char *name, fsb_dtype dtype, int ndim,
                       const int64_t *dims, const void *data);
/* The tensor with that name, or NULL. Owned by tf. */
const fsb_tensor *fsb_tensorfile_get(const fsb_tensorfile *tf, const char *name);
/* Like get, but a missing tensor, another dtype than F32 or another element count than
 * `numel` is an error naming the file label `what` and the tensor. */
int fsb_tensorfile_get_f32(const fsb_tensorfile *tf, const char *what, const char *name,
                           size_t numel, const float **out);
/* The same for an FSB_I64 tensor. */
int fsb_tensorfile_get_i64(const fsb_tensorfile *tf, const char *what, const char *name,
                           size_t numel, const int64_t **out);

/* Write atomically to path (through fsb_outfile): on any failure (e.g. a full disk) the
 * temporary is removed and a previous file at path is left intact. */
int fsb_tensorfile_save(const fsb_tensorfile *tf, const char *path);
/* Read and verify (magic, version, bounds, dtypes, duplicate names, checksum) into tf,
 * which is (re)initialised first and must not own anything. On failure tf is left empty
 * and the message names the file and what is wrong. FSB_ENOTFOUND if the file is missing,
 * FSB_EIO if unreadable, FSB_EFORMAT if malformed or corrupt. */
int fsb_tensorfile_load(fsb_tensorfile *tf, const char *path);

/* The checksum the format uses: XXH3-64 with seed 0 of `size` bytes (for tools and tests
 * that build or check files by hand). */
uint64_t fsb_tensorfile_checksum(const void *data, size_t size);

#endif
