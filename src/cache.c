/* cache.c - packed, memory-mapped splits (see include/fsb/cache.h for the file format).
 *
 * Before packing, image headers are probed (in order over the pool, stopping at the first
 * colour image) to choose 1 channel (every image greyscale) or 3.
 * Packing writes the header through fsb_outfile; each task decodes 32 images into its
 * worker's scratch and pwrite()s them to their final offset in the temporary file, which
 * is then committed (fsync + rename). Each image owns its slot in the file, so the bytes do not
 * depend on which worker decoded what; the error reported is that of the lowest failing
 * image index, also independent of the thread count.
 */
#define _DEFAULT_SOURCE /* realpath() */
#include "fsb/cache.h"
#include "fsb/fileio.h"
#include "fsb/image.h"
#include "fsb/progress.h"
#include "fsb/status.h"
#include "fsb/transform.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define FIXED_HEADER 56
#define IMAGES_PER_TASK 32

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

int fsb_cache_default_dir(char **dir, const char *root)
{
    *dir = NULL;
    char *d = fsb_path_join(root, ".fsbench-cache");
    if (!d) return fsb_error(FSB_ENOMEM, "out of memory");
    if ((fsb_is_dir(d) || fsb_mkdir_p(d) == FSB_OK) && access(d, W_OK | X_OK) == 0) {
        *dir = d;
        return FSB_OK;
    }
    free(d);
    int st = fsb_cache_user_dir(dir);
    if (st == FSB_ENOTFOUND)
        return fsb_error(FSB_ENOTFOUND,
                         "%s: not writable, and neither XDG_CACHE_HOME nor HOME is set: give a "
                         "cache folder",
                         root);
    return st;
}

int fsb_cache_user_dir(char **dir)
{
    *dir = NULL;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char *d;
    if (xdg && xdg[0] == '/')
        d = fsb_path_join(xdg, "fsbench");
    else if (home && home[0])
        d = fsb_path_join(home, ".cache/fsbench");
    else
        return fsb_error(FSB_ENOTFOUND, "neither XDG_CACHE_HOME nor HOME is set");
    if (!d) return fsb_error(FSB_ENOMEM, "out of memory");
    int st = fsb_mkdir_p(d);
    if (st) {
        free(d);
        return st;
    }
    *dir = d;
    return FSB_OK;
}

static int source_error(const fsb_split *s, int i, int err)
{
    char *full = fsb_path_join(s->root, s->paths[i]);
    int st;
    if (s->src_line[i] > 0)
        st = fsb_error(err == ENOENT ? FSB_ENOTFOUND : FSB_EIO, "%s: listed in %s:%d: %s",
                       full ? full : s->paths[i], s->source, s->src_line[i],
                       err == ENOENT ? "file missing" : strerror(err));
    else
        st = fsb_error(FSB_EIO, "%s: %s", full ? full : s->paths[i], strerror(err));
    free(full);
    return st;
}

int fsb_cache_source_fingerprint(uint64_t *fp, const fsb_split *s, int size)
{
    XXH3_state_t *h = XXH3_createState();
    if (!h) return fsb_error(FSB_ENOMEM, "out of memory");
    XXH3_64bits_reset(h);
    unsigned char head[24];
    memcpy(head, "fsbpack\0", 8);
    put32(head + 8, FSB_CACHE_VERSION);
    put32(head + 12, (uint32_t)size);
    put64(head + 16, s->fingerprint);
    XXH3_64bits_update(h, head, sizeof head);
    size_t rl = strlen(s->root);
    char *buf = malloc(rl + 4096 + 2);
    int st = FSB_OK;
    if (!buf) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(buf, s->root, rl);
    buf[rl] = '/';
    for (int i = 0; i < s->n_images; i++) {
        size_t pl = strlen(s->paths[i]);
        if (pl > 4096) {
            st = fsb_error(FSB_EINVAL, "%s: path too long", s->paths[i]);
            goto done;
        }
        memcpy(buf + rl + 1, s->paths[i], pl + 1);
        struct stat sb;
        if (stat(buf, &sb) != 0) {
            st = source_error(s, i, errno);
            goto done;
        }
        unsigned char rec[24];
        put64(rec, (uint64_t)sb.st_size);
        put64(rec + 8, (uint64_t)sb.st_mtim.tv_sec);
        put64(rec + 16, (uint64_t)sb.st_mtim.tv_nsec);
        XXH3_64bits_update(h, s->paths[i], pl + 1);
        XXH3_64bits_update(h, rec, sizeof rec);
    }
    *fp = XXH3_64bits_digest(h);
done:
    free(buf);
    XXH3_freeState(h);
    return st;
}

/* Header bytes for a split: fixed part, class table, names, padded to 4096. */
static size_t header_size(const fsb_split *s, size_t *name_bytes)
{
    size_t nb = 0;
    for (int c = 0; c < s->n_classes; c++)
        nb += strlen(s->class_names[c]);
    *name_bytes = nb;
    size_t raw = FIXED_HEADER + (size_t)s->n_classes * 16 + nb;
    return (raw + 4095) / 4096 * 4096;
}

/* The channels (1 or 3) of the mapped file when it is a complete version-1 cache of exactly
 * this listing and source, else 0. */
static int header_matches(const unsigned char *m, size_t bytes, const fsb_split *s, int size,
                          uint64_t source_fp)
{
    size_t nb, hb = header_size(s, &nb);
    if (bytes < FIXED_HEADER || memcmp(m, "FSBPACK\0", 8) != 0) return 0;
    uint32_t ch = get32(m + 40);
    size_t img = (size_t)size * size * ch;
    if (get32(m + 8) != FSB_CACHE_VERSION || get32(m + 12) != hb || bytes < hb) return 0;
    if (get64(m + 16) != s->fingerprint || get64(m + 24) != source_fp) return 0;
    if (get32(m + 32) != (uint32_t)size || get32(m + 36) != (uint32_t)size || (ch != 1 && ch != 3))
        return 0;
    if (get32(m + 44) != (uint32_t)s->n_images || get32(m + 48) != (uint32_t)s->n_classes ||
        get32(m + 52) != nb)
        return 0;
    if (bytes != hb + (size_t)s->n_images * img) return 0;
    const unsigned char *names = m + FIXED_HEADER + (size_t)s->n_classes * 16;
    for (int c = 0; c < s->n_classes; c++) {
        const unsigned char *e = m + FIXED_HEADER + (size_t)c * 16;
        size_t off = get32(e + 8), len = get32(e + 12);
        if (get32(e) != (uint32_t)s->class_start[c] || get32(e + 4) != (uint32_t)s->class_count[c])
            return 0;
        if (off + len > nb || len != strlen(s->class_names[c]) ||
            memcmp(names + off, s->class_names[c], len) != 0)
            return 0;
    }
    return (int)ch;
}

static void write_header(unsigned char *h, size_t hb, size_t nb, const fsb_split *s, int size,
                         int channels, uint64_t source_fp)
{
    memset(h, 0, hb);
    memcpy(h, "FSBPACK\0", 8);
    put32(h + 8, FSB_CACHE_VERSION);
    put32(h + 12, (uint32_t)hb);
    put64(h + 16, s->fingerprint);
    put64(h + 24, source_fp);
    put32(h + 32, (uint32_t)size);
    put32(h + 36, (uint32_t)size);
    put32(h + 40, (uint32_t)channels);
    put32(h + 44, (uint32_t)s->n_images);
    put32(h + 48, (uint32_t)s->n_classes);
    put32(h + 52, (uint32_t)nb);
    unsigned char *names = h + FIXED_HEADER + (size_t)s->n_classes * 16;
    size_t off = 0;
    for (int c = 0; c < s->n_classes; c++) {
        unsigned char *e = h + FIXED_HEADER + (size_t)c * 16;
        size_t len = strlen(s->class_names[c]);
        put32(e, (uint32_t)s->class_start[c]);
        put32(e + 4, (uint32_t)s->class_count[c]);
        put32(e + 8, (uint32_t)off);
        put32(e + 12, (uint32_t)len);
        memcpy(names + off, s->class_names[c], len);
        off += len;
    }
}

/* Shared state of the packing tasks. */
typedef struct pack_ctx {
    const fsb_split *s;   /* the listing */
    int size;             /* output side */
    int channels;         /* 1: keep the grey channel (every image greyscale), 3: RGB */
    int fd;               /* the temporary cache file */
    const char *path;     /* its final name, for messages */
    size_t pixels_at;     /* file offset of image 0 */
    uint8_t **scratch;    /* [workers] IMAGES_PER_TASK images each, then one RGB image */
    atomic_int first_bad; /* lowest failing image index so far (n_images: none) */
    atomic_int done;      /* images finished */
    int *bad_status;      /* [n_tasks] status of the task's first failure */
    int *bad_index;       /* [n_tasks] its image index (-1: none) */
    char **bad_msg;       /* [n_tasks] its message (malloc'd) */
    fsb_progress *bar;    /* drawn by worker 0 only */
} pack_ctx;

/* Decode images [lo, hi) of one task into the worker's scratch, then pwrite them to their
 * place in the file in one call (no page faults on a shared mapping, no second copy). */
static void pack_task(void *vctx, int task, int worker)
{
    pack_ctx *c = vctx;
    const fsb_split *s = c->s;
    int lo = task * IMAGES_PER_TASK, hi = lo + IMAGES_PER_TASK;
    if (hi > s->n_images) hi = s->n_images;
    size_t npx = (size_t)c->size * c->size, isz = npx * c->channels;
    size_t rl = strlen(s->root);
    uint8_t *buf = c->scratch[worker], *rgb = buf + IMAGES_PER_TASK * isz;
    char path[PATH_MAX];
    int i, st = FSB_OK;
    for (i = lo; i < hi; i++) {
        if (i > atomic_load(&c->first_bad)) return;
        fsb_image img;
        if (rl + 1 + strlen(s->paths[i]) + 1 > sizeof path) {
            st = fsb_error(FSB_EINVAL, "%s/%s: path too long", s->root, s->paths[i]);
        } else {
            snprintf(path, sizeof path, "%s/%s", s->root, s->paths[i]);
            st = fsb_image_load(&img, path);
            uint8_t *dst = buf + (size_t)(i - lo) * isz;
            if (!st && c->channels == 1 && img.channels != 1)
                st = fsb_error(FSB_EMISMATCH,
                               "%s: a colour image where a greyscale one was found before "
                               "packing (changed meanwhile?)",
                               path);
            else if (!st && c->channels == 3)
                st = fsb_resize_crop_u8(dst, c->size, img.px, img.w, img.h, path);
            else if (!st && !(st = fsb_resize_crop_u8(rgb, c->size, img.px, img.w, img.h, path)))
                for (size_t p = 0; p < npx; p++) /* R = G = B: keep one */
                    dst[p] = rgb[3 * p];
            fsb_image_free(&img);
        }
        if (st) {
            if (s->src_line[i] > 0) fsb_error_wrap(st, "%s:%d", s->source, s->src_line[i]);
            break;
        }
    }
    if (!st) {
        size_t want = (size_t)(hi - lo) * isz, off = 0;
        while (off < want) {
            ssize_t n = pwrite(c->fd, buf + off, want - off,
                               (off_t)(c->pixels_at + (size_t)lo * isz + off));
            if (n <= 0) {
                st = fsb_error(FSB_EIO, "%s: write failed: %s", c->path,
                               n < 0 ? strerror(errno) : "no progress");
                i = lo;
                break;
            }
            off += (size_t)n;
        }
    }
    if (st) {
        c->bad_status[task] = st;
        c->bad_index[task] = i;
        c->bad_msg[task] = strdup(fsb_error_last());
        int cur = atomic_load(&c->first_bad);
        while (i < cur && !atomic_compare_exchange_weak(&c->first_bad, &cur, i))
            ;
        return;
    }
    atomic_fetch_add(&c->done, hi - lo);
    if (worker == 0 && c->bar) fsb_progress_update(c->bar, atomic_load(&c->done));
}

static int pack(const fsb_split *s, const char *path, int size, int channels, uint64_t source_fp,
                const fsb_cache_opts *o)
{
    size_t nb, hb = header_size(s, &nb);
    size_t isz = (size_t)size * size * channels, total = hb + (size_t)s->n_images * isz;
    int n_tasks = (s->n_images + IMAGES_PER_TASK - 1) / IMAGES_PER_TASK;
    int n_workers = fsb_pool_size(o->pool);
    unsigned char *head = calloc(1, hb);
    fsb_outfile f = {0};
    pack_ctx c = {0};
    fsb_progress bar;
    int st = FSB_OK;
    c.bad_status = calloc((size_t)n_tasks, sizeof *c.bad_status);
    c.bad_index = malloc((size_t)n_tasks * sizeof *c.bad_index);
    c.bad_msg = calloc((size_t)n_tasks, sizeof *c.bad_msg);
    c.scratch = calloc((size_t)n_workers, sizeof *c.scratch);
    for (int w = 0; c.scratch && w < n_workers; w++)
        if (!(c.scratch[w] = malloc(IMAGES_PER_TASK * isz + (size_t)size * size * 3))) break;
    if (!head || !c.bad_status || !c.bad_index || !c.bad_msg || !c.scratch ||
        !c.scratch[n_workers - 1]) {
        st = fsb_error(FSB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    write_header(head, hb, nb, s, size, channels, source_fp);
    if ((st = fsb_outfile_open(&f, path))) goto done;
    if (fwrite(head, 1, hb, f.fp) != hb || fflush(f.fp) != 0) {
        st = fsb_error(FSB_EIO, "%s: cannot write: %s", path, strerror(errno));
        goto done;
    }
    c.s = s;
    c.size = size;
    c.channels = channels;
    c.fd = fileno(f.fp);
    c.path = path;
    c.pixels_at = hb;
    atomic_init(&c.first_bad, s->n_images);
    atomic_init(&c.done, 0);
    for (int t = 0; t < n_tasks; t++)
        c.bad_index[t] = -1;
    char label[64];
    snprintf(label, sizeof label, "packing %s", s->name);
    fsb_progress_init(&bar, o->progress, label, "img", 0, s->n_images);
    c.bar = &bar;
    fsb_pool_run(o->pool, n_tasks, pack_task, &c);
    fsb_progress_update(&bar, atomic_load(&c.done));
    fsb_progress_finish(&bar);
    int best = -1;
    for (int t = 0; t < n_tasks; t++)
        if (c.bad_index[t] >= 0 && (best < 0 || c.bad_index[t] < c.bad_index[best])) best = t;
    if (best >= 0) {
        st = fsb_error(c.bad_status[best], "%s",
                       c.bad_msg[best] ? c.bad_msg[best] : "decode failed");
        goto done;
    }
    /* the stream's position is still at the end of the header: move it past the pixels */
    if (fseeko(f.fp, (off_t)total, SEEK_SET) != 0) {
        st = fsb_error(FSB_EIO, "%s: cannot seek: %s", path, strerror(errno));
        goto done;
    }
    st = fsb_outfile_commit(&f);
done:
    if (st) fsb_outfile_abort(&f);
    for (int t = 0; c.bad_msg && t < n_tasks; t++)
        free(c.bad_msg[t]);
    for (int w = 0; c.scratch && w < n_workers; w++)
        free(c.scratch[w]);
    free(c.scratch);
    free(c.bad_msg);
    free(c.bad_index);
    free(c.bad_status);
    free(head);
    return st;
}

/* Shared state of the channel probe. */
typedef struct probe_ctx {
    const fsb_split *s; /* the listing */
    atomic_int colour;  /* 1 once an image with colour (or an unreadable header) is seen */
} probe_ctx;

static void probe_task(void *vctx, int task, int worker)
{
    (void)worker;
    probe_ctx *c = vctx;
    int lo = task * IMAGES_PER_TASK, hi = lo + IMAGES_PER_TASK;
    if (hi > c->s->n_images) hi = c->s->n_images;
    for (int i = lo; i < hi && !atomic_load(&c->colour); i++) {
        char *path = fsb_path_join(c->s->root, c->s->paths[i]);
        int ch = 3;
        /* a header that cannot be read counts as colour: packing then names the file */
        if (!path || fsb_image_probe_channels(path, &ch) != FSB_OK || ch != 1)
            atomic_store(&c->colour, 1);
        free(path);
    }
}

/* Tasks 1.. of the probe (task 0 runs first, alone). */
static void probe_next(void *vctx, int task, int worker)
{
    probe_task(vctx, task + 1, worker);
}

/* The channels to pack a split in: 1 when every image is greyscale (by its header), else 3.
 * Stops at the first colour image, so an RGB split costs one header. */
static int split_channels(const fsb_split *s, fsb_pool *pool)
{
    probe_ctx c = {s, 0};
    atomic_init(&c.colour, 0);
    int n_tasks = (s->n_images + IMAGES_PER_TASK - 1) / IMAGES_PER_TASK;
    probe_task(&c, 0, 0); /* the first task alone: an RGB split stops here */
    if (!atomic_load(&c.colour) && n_tasks > 1) fsb_pool_run(pool, n_tasks - 1, probe_next, &c);
    return atomic_load(&c.colour) ? 3 : 1;
}

/* Map `path` read-only; *map NULL (and FSB_OK) when the file does not exist. */
static int map_file(const char *path, void **map, size_t *bytes)
{
    *map = NULL;
    *bytes = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return errno == ENOENT ? FSB_OK
                               : fsb_error(FSB_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int st = FSB_OK;
    if (fstat(fileno(fp), &sb) != 0) {
        st = fsb_error(FSB_EIO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fileno(fp), 0);
        if (m == MAP_FAILED)
            st = fsb_error(FSB_EIO, "%s: cannot map: %s", path, strerror(errno));
        else {
            *map = m;
            *bytes = (size_t)sb.st_size;
        }
    }
    fclose(fp);
    return st;
}

static char *cache_path(const char *dir, const char *root, const char *name, int size)
{
    char *real = realpath(root, NULL);
    const char *r = real ? real : root;
    uint64_t h = XXH3_64bits(r, strlen(r));
    free(real);
    char file[512];
    snprintf(file, sizeof file, "%.200s-%d-%016llx.fsbpack", name, size, (unsigned long long)h);
    return fsb_path_join(dir, file);
}

int fsb_cache_open(fsb_cache *c, const char *root, const char *name, const fsb_cache_opts *o)
{
    memset(c, 0, sizeof *c);
    fsb_cache_opts def = {0};
    if (!o) o = &def;
    int size = o->size > 0 ? o->size : FSB_CACHE_DEFAULT_SIZE;
    char *dir = NULL;
    int st;
    if (size > FSB_TF_MAX_SIDE)
        return fsb_error(FSB_EINVAL, "cache: image size %d larger than %d", size, FSB_TF_MAX_SIDE);
    if ((st = fsb_split_open(&c->split, root, name))) goto done;
    c->size = size;
    if (o->dir) {
        if ((st = fsb_mkdir_p(o->dir))) goto done;
        dir = strdup(o->dir);
    } else if ((st = fsb_cache_default_dir(&dir, root))) {
        goto done;
    }
    if (!dir || !(c->path = cache_path(dir, root, name, size))) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    if ((st = fsb_cache_source_fingerprint(&c->source_fp, &c->split, size))) goto done;
    int want = 0; /* the channels the split needs (0: not probed yet) */
    if (!o->rebuild) {
        if ((st = map_file(c->path, &c->map, &c->map_bytes))) goto done;
        int ch = c->map ? header_matches(c->map, c->map_bytes, &c->split, size, c->source_fp) : 0;
        /* a 3-channel file of a greyscale split (packed before channels were kept) is
         * repacked; a 1-channel file was written only for a greyscale split */
        if (ch == 3 && (want = split_channels(&c->split, o->pool)) == 1) ch = 0;
        if (c->map && !ch) {
            munmap(c->map, c->map_bytes);
            c->map = NULL;
        }
        c->channels = ch;
    }
    if (!c->map) {
        if (!want) want = split_channels(&c->split, o->pool);
        double t0 = fsb_now();
        if ((st = pack(&c->split, c->path, size, want, c->source_fp, o))) goto done;
        c->pack_seconds = fsb_now() - t0;
        c->packed = 1;
        if ((st = map_file(c->path, &c->map, &c->map_bytes))) goto done;
        if (!c->map ||
            header_matches(c->map, c->map_bytes, &c->split, size, c->source_fp) != want) {
            st = fsb_error(FSB_EIO,
                           "%s: freshly written cache does not read back (changed "
                           "meanwhile?)",
                           c->path);
            goto done;
        }
        c->channels = want;
    }
    c->px = (const uint8_t *)c->map + get32((const unsigned char *)c->map + 12);
done:
    free(dir);
    if (st) fsb_cache_close(c);
    return st;
}

void fsb_cache_close(fsb_cache *c)
{
    if (!c) return;
    if (c->map) munmap(c->map, c->map_bytes);
    fsb_split_free(&c->split);
    free(c->path);
    memset(c, 0, sizeof *c);
}

const uint8_t *fsb_cache_image(const fsb_cache *c, int i)
{
    return c->px + (size_t)i * c->size * c->size * c->channels;
}
