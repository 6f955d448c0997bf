/* test_tensorfile.c - the tensor container: round trips of every dtype and rank, metadata,
 * lookups, duplicate names, and hostile input (flipped bytes, truncation at every offset,
 * wrong magic, future versions, lying headers re-signed with a valid checksum), plus atomic
 * saves that fail midway (file-size limit) and leave the previous file intact.
 */
#include "fsb/fileio.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "testutil.h"

#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* A small file with meta and a tensor of every dtype x rank 0..8 (dims 1..3 cycling, one
 * zero-size tensor). Values are distinct so mix-ups show. */
static void build_sample(fsb_tensorfile *tf)
{
    fsb_tensorfile_init(tf);
    ck_assert_int_eq(fsb_tensorfile_set_meta(tf, "arch", "conv4"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_set_meta(tf, "n_class", "64"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_set_meta(tf, "empty", ""), FSB_OK);
    for (int dt = 0; dt < 2; dt++) {
        for (int nd = 0; nd <= FSB_TENSOR_MAXDIM; nd++) {
            int64_t dims[FSB_TENSOR_MAXDIM];
            size_t numel = 1;
            for (int d = 0; d < nd; d++) {
                dims[d] = 1 + (d + nd) % 3;
                numel *= (size_t)dims[d];
            }
            char name[32];
            snprintf(name, sizeof name, "t.%s.%d", dt ? "i64" : "f32", nd);
            void *data = malloc(numel * 8);
            for (size_t i = 0; i < numel; i++) {
                if (dt)
                    ((int64_t *)data)[i] = (int64_t)i * 1000003 - (INT64_C(1) << 40) * nd;
                else
                    ((float *)data)[i] = (float)i * 0.25f - (float)nd;
            }
            ck_assert_int_eq(fsb_tensorfile_add(tf, name, dt ? FSB_I64 : FSB_F32, nd, dims, data),
                             FSB_OK);
            free(data);
        }
    }
    int64_t zdims[3] = {4, 0, 5};
    ck_assert_int_eq(fsb_tensorfile_add(tf, "zero", FSB_F32, 3, zdims, NULL), FSB_OK);
}

static void assert_same(const fsb_tensorfile *a, const fsb_tensorfile *b)
{
    ck_assert_int_eq(a->n_meta, b->n_meta);
    for (int i = 0; i < a->n_meta; i++) {
        ck_assert_str_eq(a->meta_keys[i], b->meta_keys[i]);
        ck_assert_str_eq(a->meta_vals[i], b->meta_vals[i]);
    }
    ck_assert_int_eq(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) {
        const fsb_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        ck_assert_str_eq(x->name, y->name);
        ck_assert_int_eq(x->dtype, y->dtype);
        ck_assert_int_eq(x->ndim, y->ndim);
        for (int d = 0; d < x->ndim; d++)
            ck_assert_int_eq(x->dims[d], y->dims[d]);
        ck_assert_uint_eq(x->numel, y->numel);
        ck_assert_int_eq(memcmp(x->data, y->data, x->numel * fsb_dtype_size(x->dtype)), 0);
    }
}

START_TEST(round_trip_every_dtype_and_rank)
{
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "a.fsbt");
    fsb_tensorfile tf, back;
    build_sample(&tf);
    ck_assert_int_eq(fsb_tensorfile_save(&tf, path), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_load(&back, path), FSB_OK);
    assert_same(&tf, &back);
    /* scalars hold one element; a zero dim holds none */
    const fsb_tensor *s = fsb_tensorfile_get(&back, "t.f32.0");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_uint_eq(s->numel, 1);
    ck_assert_float_eq(((float *)s->data)[0], 0.0f);
    ck_assert_uint_eq(fsb_tensorfile_get(&back, "zero")->numel, 0);
    ck_assert_uint_eq(fsb_tensorfile_get(&back, "t.i64.8")->numel, 3 * 1 * 2 * 3 * 1 * 2 * 3 * 1);
    /* saving what was loaded gives the same bytes */
    char *path2 = tu_path(dir, "b.fsbt");
    ck_assert_int_eq(fsb_tensorfile_save(&back, path2), FSB_OK);
    ck_assert(tu_same_file(path, path2));
    /* the first bytes are the documented header */
    size_t size;
    unsigned char *raw = (unsigned char *)tu_read(path, &size);
    ck_assert_int_eq(memcmp(raw, "FSBTENS\0\1\0\0\0\3\0\0\0\x13\0\0\0\0\0\0\0", 24), 0);
    uint64_t sum;
    memcpy(&sum, raw + size - 8, 8);
    ck_assert_uint_eq(sum, fsb_tensorfile_checksum(raw, size - 8));
    free(raw);
    fsb_tensorfile_free(&tf);
    fsb_tensorfile_free(&back);
    fsb_tensorfile_free(&back); /* idempotent */
    fsb_tensorfile_free(NULL);
    free(path);
    free(path2);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(metadata_and_lookups)
{
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "k", "1"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "k", "-42"), FSB_OK); /* replace */
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "x", "4a"), FSB_OK);
    ck_assert_int_eq(tf.n_meta, 2);
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "k"), "-42");
    ck_assert_ptr_null(fsb_tensorfile_meta(&tf, "nope"));
    long long v = 0;
    ck_assert_int_eq(fsb_tensorfile_meta_int(&tf, "m.fsbt", "k", &v), FSB_OK);
    ck_assert_int_eq(v, -42);
    ck_assert_int_eq(fsb_tensorfile_meta_int(&tf, "m.fsbt", "x", &v), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "m.fsbt: metadata 'x'"));
    ck_assert_int_eq(fsb_tensorfile_meta_int(&tf, "m.fsbt", "nope", &v), FSB_ENOTFOUND);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&tf, "", "v"), FSB_EINVAL);

    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t dims[2] = {2, 3}, n = 7;
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "w", FSB_F32, 2, dims, w), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "n", FSB_I64, 0, NULL, &n), FSB_OK);
    /* duplicate, empty name, bad ndim, negative dim are refused and change nothing */
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "w", FSB_F32, 2, dims, w), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "duplicate tensor name 'w'"));
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "", FSB_F32, 2, dims, w), FSB_EINVAL);
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "q", FSB_F32, 9, dims, w), FSB_EINVAL);
    int64_t neg[1] = {-1}, huge[3] = {INT64_C(1) << 40, INT64_C(1) << 40, 4};
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "q", FSB_F32, 1, neg, w), FSB_EINVAL);
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "q", FSB_F32, 3, huge, w), FSB_EINVAL);
    ck_assert_int_eq(tf.n_tensors, 2);

    const float *pf;
    const int64_t *pi;
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, "m.fsbt", "w", 6, &pf), FSB_OK);
    ck_assert_float_eq(pf[5], 6.0f);
    ck_assert_int_eq(fsb_tensorfile_get_i64(&tf, "m.fsbt", "n", 1, &pi), FSB_OK);
    ck_assert_int_eq(pi[0], 7);
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, "m.fsbt", "w", 5, &pf), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "m.fsbt: tensor 'w' has 6 elements"));
    ck_assert_ptr_null(pf);
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, "m.fsbt", "n", 1, &pf), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "int64"));
    ck_assert_int_eq(fsb_tensorfile_get_i64(&tf, "m.fsbt", "zz", 1, &pi), FSB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "m.fsbt: no tensor 'zz'"));
    fsb_tensorfile_free(&tf);
}
END_TEST

/* Write `raw` (with its checksum recomputed when resign) to dir/name and load it. */
static int load_bytes(const char *dir, const char *name, unsigned char *raw, size_t size,
                      int resign)
{
    if (resign && size >= 8) {
        uint64_t sum = fsb_tensorfile_checksum(raw, size - 8);
        memcpy(raw + size - 8, &sum, 8);
    }
    tu_write(dir, name, raw, size);
    char *p = tu_path(dir, name);
    fsb_tensorfile tf;
    memset(&tf, 0x5a, sizeof tf); /* load must initialise */
    int st = fsb_tensorfile_load(&tf, p);
    if (st) {
        ck_assert_int_eq(tf.n_tensors, 0);
        ck_assert_int_eq(tf.n_meta, 0);
        ck_assert_ptr_nonnull(strstr(fsb_error_last(), p));
    }
    fsb_tensorfile_free(&tf);
    free(p);
    return st;
}

/* A saved sample file's bytes. */
static unsigned char *sample_bytes(const char *dir, size_t *size)
{
    fsb_tensorfile tf;
    build_sample(&tf);
    char *p = tu_path(dir, "good.fsbt");
    ck_assert_int_eq(fsb_tensorfile_save(&tf, p), FSB_OK);
    fsb_tensorfile_free(&tf);
    unsigned char *raw = (unsigned char *)tu_read(p, size);
    free(p);
    return raw;
}

START_TEST(corruption_is_detected)
{
    char *dir = tu_tmpdir();
    size_t size;
    unsigned char *raw = sample_bytes(dir, &size);
    ck_assert_int_eq(load_bytes(dir, "same.fsbt", raw, size, 0), FSB_OK);
    /* every flipped byte is caught; past the header, always by the checksum */
    for (size_t i = 0; i < size; i++) {
        raw[i] ^= 0x10;
        ck_assert_int_eq(load_bytes(dir, "flip.fsbt", raw, size, 0), FSB_EFORMAT);
        if (i >= 24)
            ck_assert_ptr_nonnull(
                strstr(fsb_error_last(), "checksum mismatch (file corrupt or truncated)"));
        raw[i] ^= 0x10;
    }
    /* truncated at every offset: a clean error, never a crash */
    for (size_t n = 0; n < size; n++) {
        int st = load_bytes(dir, "trunc.fsbt", raw, n, 0);
        ck_assert_int_eq(st, FSB_EFORMAT);
    }
    /* an empty file, a foreign file */
    ck_assert_int_eq(load_bytes(dir, "empty.fsbt", raw, 0, 0), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "bad magic"));
    unsigned char png[16] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ck_assert_int_eq(load_bytes(dir, "x.png", png, sizeof png, 0), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "not an fsbench tensor file"));
    /* a future version, even with a valid checksum */
    raw[8] = 2;
    ck_assert_int_eq(load_bytes(dir, "v2.fsbt", raw, size, 1), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "version 2 is not supported"));
    raw[8] = 1;
    /* a missing file */
    char *missing = tu_path(dir, "missing.fsbt");
    fsb_tensorfile tf;
    ck_assert_int_eq(fsb_tensorfile_load(&tf, missing), FSB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), missing));
    free(missing);
    free(raw);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

/* Little byte-builder for hand-made files. */
typedef struct {
    unsigned char b[4096]; /* bytes */
    size_t n;              /* used */
} bytes;

static void b_put(bytes *x, const void *p, size_t n)
{
    ck_assert_uint_le(x->n + n, sizeof x->b);
    memcpy(x->b + x->n, p, n);
    x->n += n;
}
static void b_u32(bytes *x, uint32_t v)
{
    b_put(x, &v, 4);
}
static void b_u64(bytes *x, uint64_t v)
{
    b_put(x, &v, 8);
}
static void b_str(bytes *x, const char *s)
{
    b_u32(x, (uint32_t)strlen(s));
    b_put(x, s, strlen(s));
}
static void b_header(bytes *x, uint32_t n_meta, uint32_t n_tensors)
{
    x->n = 0;
    b_put(x, "FSBTENS", 8);
    b_u32(x, 1);
    b_u32(x, n_meta);
    b_u32(x, n_tensors);
    b_u32(x, 0);
}
/* Append room for the checksum and load (re-signed): the header lies are caught by the
 * bounds checks, not the checksum. */
static int b_load(const char *dir, bytes *x)
{
    b_u64(x, 0);
    return load_bytes(dir, "crafted.fsbt", x->b, x->n, 1);
}

START_TEST(lying_headers_with_valid_checksums)
{
    char *dir = tu_tmpdir();
    bytes x;
    /* minimal valid files */
    b_header(&x, 0, 0);
    ck_assert_int_eq(b_load(dir, &x), FSB_OK);
    b_header(&x, 1, 1);
    b_str(&x, "k");
    b_str(&x, "v");
    b_str(&x, "s");
    b_u32(&x, 1);
    b_u32(&x, 0);
    b_u64(&x, 7);
    ck_assert_int_eq(b_load(dir, &x), FSB_OK);
    /* counts far beyond the file size: refused before allocating */
    b_header(&x, 0, 0xffffffffu);
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "exceed the file size"));
    b_header(&x, 0x7fffffffu, 0);
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    /* a string length past the end */
    b_header(&x, 1, 0);
    b_u32(&x, 0xfffffff0u);
    b_put(&x, "abcdefgh", 8);
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "metadata entry 0"));
    /* a NUL inside a name */
    b_header(&x, 0, 1);
    b_u32(&x, 3);
    b_put(&x, "a\0b", 3);
    b_u32(&x, 0);
    b_u32(&x, 0);
    b_u32(&x, 0);
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    /* duplicate tensor names, duplicate metadata keys */
    b_header(&x, 0, 2);
    for (int i = 0; i < 2; i++) {
        b_str(&x, "w");
        b_u32(&x, 0);
        b_u32(&x, 0);
        b_u32(&x, 0);
    }
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "duplicate tensor name 'w'"));
    b_header(&x, 2, 0);
    b_str(&x, "k");
    b_str(&x, "1");
    b_str(&x, "k");
    b_str(&x, "2");
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "duplicate metadata key 'k'"));
    /* unknown dtype, too many dims */
    b_header(&x, 0, 1);
    b_str(&x, "w");
    b_u32(&x, 7);
    b_u32(&x, 0);
    b_u32(&x, 0);
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "unknown dtype 7"));
    b_header(&x, 0, 1);
    b_str(&x, "w");
    b_u32(&x, 0);
    b_u32(&x, 9);
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "ndim 9"));
    /* dims whose product is huge or overflows 64 bits, or is negative as int64 */
    uint64_t bad[][2] = {
        {1u << 30, 1u << 30}, {UINT64_C(1) << 33, UINT64_C(1) << 33}, {2, UINT64_C(1) << 63}};
    for (int k = 0; k < 3; k++) {
        b_header(&x, 0, 1);
        b_str(&x, "w");
        b_u32(&x, 0);
        b_u32(&x, 2);
        b_u64(&x, bad[k][0]);
        b_u64(&x, bad[k][1]);
        b_u32(&x, 0);
        ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    }
    /* one element too few, and trailing junk */
    b_header(&x, 0, 1);
    b_str(&x, "w");
    b_u32(&x, 1);
    b_u32(&x, 1);
    b_u64(&x, 2);
    b_u64(&x, 5);
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "runs past the end"));
    b_header(&x, 0, 0);
    b_u32(&x, 0);
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "unexpected bytes"));
    /* reserved field must be 0 */
    b_header(&x, 0, 0);
    x.b[20] = 1;
    ck_assert_int_eq(b_load(dir, &x), FSB_EFORMAT);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

static int count_entries(const char *dir)
{
    char *ls = NULL;
    tu_run(&ls, "ls -A '%s' | wc -l", dir);
    int n = atoi(ls);
    free(ls);
    return n;
}

START_TEST(failed_save_keeps_the_old_file)
{
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "ckpt.fsbt");
    fsb_tensorfile small, big;
    fsb_tensorfile_init(&small);
    fsb_tensorfile_init(&big);
    ck_assert_int_eq(fsb_tensorfile_set_meta(&small, "v", "old"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_save(&small, path), FSB_OK);
    size_t old_size;
    char *old = tu_read(path, &old_size);
    int64_t dims[1] = {1 << 20};
    ck_assert_int_eq(fsb_tensorfile_add(&big, "w", FSB_F32, 1, dims, NULL), FSB_OK);
    /* a "full disk": a 64 KiB file-size limit (works as root, unlike a read-only folder);
     * Check runs each test in a forked child, so the limit dies with it */
    struct rlimit lim = {1 << 16, 1 << 16};
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ck_assert_int_eq(fsb_tensorfile_save(&big, path), FSB_EIO);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), path));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "write failed"));
    size_t now_size;
    char *now = tu_read(path, &now_size);
    ck_assert_uint_eq(now_size, old_size);
    ck_assert_int_eq(memcmp(now, old, old_size), 0);
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary left behind */
    fsb_tensorfile loaded;
    ck_assert_int_eq(fsb_tensorfile_load(&loaded, path), FSB_OK);
    ck_assert_str_eq(fsb_tensorfile_meta(&loaded, "v"), "old");
    fsb_tensorfile_free(&loaded);
    /* a folder that does not exist */
    char *bad = tu_path(dir, "no/such/x.fsbt");
    ck_assert_int_eq(fsb_tensorfile_save(&small, bad), FSB_EIO);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), bad));
    free(bad);
    free(old);
    free(now);
    fsb_tensorfile_free(&small);
    fsb_tensorfile_free(&big);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

/* ---- the committed PyTorch fixtures obey the FIXTURES contract ---------------------------- */

static char *fixture_path(const char *name)
{
    const char *src = getenv("FSB_SOURCE_DIR");
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/%s", name);
    return tu_path(src && *src ? src : ".", rel);
}

/* The tensor exists with this dtype and shape (ndim dims from d[]). */
static void expect(const fsb_tensorfile *tf, const char *name, fsb_dtype dtype, int ndim,
                   const int64_t *d)
{
    const fsb_tensor *t = fsb_tensorfile_get(tf, name);
    ck_assert_msg(t != NULL, "missing tensor %s", name);
    ck_assert_msg(t->dtype == dtype && t->ndim == ndim, "%s: dtype %d ndim %d", name, t->dtype,
                  t->ndim);
    for (int i = 0; i < ndim; i++)
        ck_assert_msg(t->dims[i] == d[i], "%s: dim %d is %lld, expected %lld", name, i,
                      (long long)t->dims[i], (long long)d[i]);
}

static void expect_same_shape(const fsb_tensorfile *tf, const char *name, const char *like)
{
    const fsb_tensor *t = fsb_tensorfile_get(tf, like);
    ck_assert_ptr_nonnull(t);
    expect(tf, name, t->dtype, t->ndim, t->dims);
}

/* A conv (bias or not) and its BN, FIXTURES names; n_params/params collects trainables. */
typedef struct {
    char names[200][128]; /* trainable parameter names */
    int n;                /* count */
    char bns[40][128];    /* BN prefixes */
    int n_bn;             /* count */
} param_list;

static void expect_conv_bn(const fsb_tensorfile *tf, param_list *pl, const char *conv,
                           const char *bn, int64_t cout, int64_t cin, int64_t k, int bias)
{
    char name[128];
    int64_t w[4] = {cout, cin, k, k}, c[1] = {cout};
    snprintf(name, sizeof name, "%s.weight", conv);
    expect(tf, name, FSB_F32, 4, w);
    snprintf(pl->names[pl->n++], 128, "%s", name);
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", conv);
        expect(tf, name, FSB_F32, 1, c);
        snprintf(pl->names[pl->n++], 128, "%s", name);
    }
    const char *f32s[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", bn, f32s[i]);
        expect(tf, name, FSB_F32, 1, c);
        if (i < 2) snprintf(pl->names[pl->n++], 128, "%s", name);
    }
    snprintf(name, sizeof name, "%s.num_batches_tracked", bn);
    expect(tf, name, FSB_I64, 0, NULL);
    snprintf(pl->bns[pl->n_bn++], 128, "%s", bn);
}

/* Parse "a,b,c,d" widths. */
static void widths_of(const fsb_tensorfile *tf, int64_t w[4])
{
    const char *s = fsb_tensorfile_meta(tf, "widths");
    ck_assert_ptr_nonnull(s);
    long long a, b, c, d;
    ck_assert_int_eq(sscanf(s, "%lld,%lld,%lld,%lld", &a, &b, &c, &d), 4);
    w[0] = a, w[1] = b, w[2] = c, w[3] = d;
}

/* Check the state_dict of a conv4/res12 file and list its trainable parameters. */
static void expect_model(const fsb_tensorfile *tf, param_list *pl, int64_t n_class)
{
    const char *arch = fsb_tensorfile_meta(tf, "arch");
    int64_t w[4];
    widths_of(tf, w);
    ck_assert_ptr_nonnull(arch);
    pl->n = pl->n_bn = 0;
    char conv[96], bn[96];
    for (int b = 0; b < 4; b++) {
        int64_t cin = b ? w[b - 1] : 3;
        if (!strcmp(arch, "conv4")) {
            snprintf(conv, sizeof conv, "encoder.%d.0", b);
            snprintf(bn, sizeof bn, "encoder.%d.1", b);
            expect_conv_bn(tf, pl, conv, bn, w[b], cin, 3, 1);
            continue;
        }
        ck_assert_str_eq(arch, "res12");
        for (int k = 1; k <= 3; k++) {
            snprintf(conv, sizeof conv, "encoder.layer%d.0.conv%d", b + 1, k);
            snprintf(bn, sizeof bn, "encoder.layer%d.0.bn%d", b + 1, k);
            expect_conv_bn(tf, pl, conv, bn, w[b], k == 1 ? cin : w[b], 3, 0);
        }
        snprintf(conv, sizeof conv, "encoder.layer%d.0.downsample.0", b + 1);
        snprintf(bn, sizeof bn, "encoder.layer%d.0.downsample.1", b + 1);
        expect_conv_bn(tf, pl, conv, bn, w[b], cin, 1, 0);
    }
    if (n_class) {
        int64_t fw[2] = {n_class, w[3]}, fb[1] = {n_class};
        expect(tf, "fc.weight", FSB_F32, 2, fw);
        expect(tf, "fc.bias", FSB_F32, 1, fb);
        snprintf(pl->names[pl->n++], 128, "fc.weight");
        snprintf(pl->names[pl->n++], 128, "fc.bias");
    }
}

static void check_parity_fixture(const char *file, const char *arch, const char *widths, int64_t n,
                                 int64_t hw, int64_t embed)
{
    char *path = fixture_path(file);
    fsb_tensorfile tf;
    ck_assert_msg(fsb_tensorfile_load(&tf, path) == FSB_OK, "%s", fsb_error_last());
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "arch"), arch);
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "widths"), widths);
    long long n_class, seed;
    ck_assert_int_eq(fsb_tensorfile_meta_int(&tf, path, "n_class", &n_class), FSB_OK);
    ck_assert_int_eq(n_class, 5);
    ck_assert_int_eq(fsb_tensorfile_meta_int(&tf, path, "seed", &seed), FSB_OK);
    ck_assert_ptr_nonnull(fsb_tensorfile_meta(&tf, "input_hw"));
    ck_assert_ptr_nonnull(fsb_tensorfile_meta(&tf, "torch_version"));
    param_list *pl = calloc(1, sizeof *pl);
    expect_model(&tf, pl, n_class);
    int64_t in[4] = {n, 3, hw, hw}, nv[1] = {n}, emb[2] = {n, embed}, lg[2] = {n, n_class};
    expect(&tf, "input", FSB_F32, 4, in);
    expect(&tf, "target", FSB_I64, 1, nv);
    char name[160];
    const char *modes[2] = {"train", "eval"};
    for (int m = 0; m < 2; m++) {
        snprintf(name, sizeof name, "%s.embedding", modes[m]);
        expect(&tf, name, FSB_F32, 2, emb);
        snprintf(name, sizeof name, "%s.logits", modes[m]);
        expect(&tf, name, FSB_F32, 2, lg);
        snprintf(name, sizeof name, "%s.loss", modes[m]);
        expect(&tf, name, FSB_F32, 0, NULL);
        snprintf(name, sizeof name, "%s.grad.input", modes[m]);
        expect(&tf, name, FSB_F32, 4, in);
        for (int i = 0; i < pl->n; i++) {
            snprintf(name, sizeof name, "%s.grad.%s", modes[m], pl->names[i]);
            expect_same_shape(&tf, name, pl->names[i]);
        }
    }
    for (int i = 0; i < pl->n; i++) {
        snprintf(name, sizeof name, "sgd.step2.%s", pl->names[i]);
        expect_same_shape(&tf, name, pl->names[i]);
    }
    for (int i = 0; i < pl->n_bn; i++) {
        char like[160];
        snprintf(name, sizeof name, "train.after.%s.running_var", pl->bns[i]);
        snprintf(like, sizeof like, "%s.running_var", pl->bns[i]);
        expect_same_shape(&tf, name, like);
        snprintf(name, sizeof name, "train.after.%s.running_mean", pl->bns[i]);
        expect_same_shape(&tf, name, like);
    }
    /* nothing beyond the contract: state + 2 + 2 x (4 + params) + params + 2 per BN */
    int state = pl->n + 5 * pl->n_bn - 2 * pl->n_bn;
    ck_assert_int_eq(tf.n_tensors, state + 2 + 2 * (4 + pl->n) + pl->n + 2 * pl->n_bn);
    free(pl);
    fsb_tensorfile_free(&tf);
    free(path);
}

START_TEST(torch_parity_fixtures_follow_the_contract)
{
    check_parity_fixture("torch_conv4.fsbt", "conv4", "64,64,64,64", 4, 84, 64);
    check_parity_fixture("torch_res12.fsbt", "res12", "8,16,24,32", 2, 40, 32);
}
END_TEST

START_TEST(torch_roundtrip_fixture_is_a_checkpoint)
{
    char *path = fixture_path("torch_roundtrip_conv4.fsbt");
    fsb_tensorfile tf;
    ck_assert_msg(fsb_tensorfile_load(&tf, path) == FSB_OK, "%s", fsb_error_last());
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "format"), "fsbench-checkpoint");
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "arch"), "conv4");
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "widths"), "8,8,8,8");
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "n_class"), "5");
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "embed_dim"), "8");
    ck_assert_str_eq(fsb_tensorfile_meta(&tf, "source"), "conv4_tiny_feat.pth");
    param_list *pl = calloc(1, sizeof *pl);
    expect_model(&tf, pl, 5);
    ck_assert_int_eq(pl->n, 4 * 4 + 2);
    int64_t in[4] = {2, 3, 32, 32}, emb[2] = {2, 8};
    expect(&tf, "roundtrip.input", FSB_F32, 4, in);
    expect(&tf, "roundtrip.embedding", FSB_F32, 2, emb);
    ck_assert_int_eq(tf.n_tensors, 4 * 7 + 2 + 2);
    const int64_t *nbt;
    ck_assert_int_eq(fsb_tensorfile_get_i64(&tf, path, "encoder.2.1.num_batches_tracked", 1, &nbt),
                     FSB_OK);
    ck_assert_int_eq(nbt[0], 1004); /* 1000 + seed, survives torch -> pth -> fsbt */
    free(pl);
    fsb_tensorfile_free(&tf);
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tensorfile");
    TCase *tc = tcase_create("tensorfile");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, round_trip_every_dtype_and_rank);
    tcase_add_test(tc, metadata_and_lookups);
    tcase_add_test(tc, corruption_is_detected);
    tcase_add_test(tc, lying_headers_with_valid_checksums);
    tcase_add_test(tc, failed_save_keeps_the_old_file);
    tcase_add_test(tc, torch_parity_fixtures_follow_the_contract);
    tcase_add_test(tc, torch_roundtrip_fixture_is_a_checkpoint);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
