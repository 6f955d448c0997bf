/* datacheck.c - `bench data check`: read everything, report every problem (see
 * include/fsb/datacheck.h). Three phases: list every split leniently (CSV problems are
 * collected, not fatal), read, hash (XXH3-128) and decode every listed image once over the
 * pool (results stored per image, so the report does not depend on the thread count), then
 * print per split in a fixed order and look for files shared between splits: by path, and
 * by content in every layout (overlap between splits, duplicates within one).
 */
#include "fsb/datacheck.h"
#include "fsb/dataset.h"
#include "fsb/fileio.h"
#include "fsb/image.h"
#include "fsb/progress.h"
#include "fsb/status.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#define IMAGES_PER_TASK 64
/* Why the check wants every split (the end of a missing split's problem). */
#define MISSING_WHY                                                                                \
    "bench pretrain reads train and val, bench run reads test (and train for cl2n); give "         \
    "--split to check fewer splits"

static const char *const split_names[3] = {"train", "val", "test"};
/* The canonical Ravi & Larochelle MiniImageNet split: images and classes (600 per class). */
static const int canon_images[3] = {38400, 9600, 12000};
static const int canon_classes[3] = {64, 16, 20};
/* fsb_split fingerprints of the published split CSVs (twitter/meta-learning-lstm). */
static const uint64_t canon_fp[3] = {FSB_MINIIMAGENET_FP_TRAIN, FSB_MINIIMAGENET_FP_VAL,
                                     FSB_MINIIMAGENET_FP_TEST};

/* One listed image. */
typedef struct item {
    char *path; /* relative to root (owned) */
    char *cls;  /* class name (owned) */
    int line;   /* CSV line, 0 for folders */
    int split;  /* 0..2 */
} item;

/* A listing problem, printed in line order. */
typedef struct lprob {
    int line;   /* CSV line (0: about the file as a whole, or a folder-layout image) */
    int seq;    /* order of recording, to keep the sort stable */
    char *text; /* the full report line (owned) */
} lprob;

/* Everything known about one split. */
typedef struct split_info {
    int present;  /* 1 when a CSV or folder was found */
    char *source; /* the CSV or folder (owned) */
    int ravi;     /* 1 = CSV layout */
    item *items;  /* listed images, CSV order (Ravi) or canonical order (folders) */
    int n_items;  /* count */
    lprob *probs; /* listing problems */
    int n_probs;  /* count */
    int first;    /* index of the first item in the global decode array */
} split_info;

/* Decode result of one image. */
typedef struct result {
    int st;             /* fsb_status of the load */
    int w, h;           /* size when st == 0 */
    char *msg;          /* message when st != 0 (owned) */
    int hashed;         /* 1 when the file could be read: hash is valid */
    XXH128_hash_t hash; /* XXH3-128 of the file's bytes: equal content, equal hash */
} result;

static int add_prob(split_info *s, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_prob(split_info *s, int line, const char *fmt, ...)
{
    lprob *np = realloc(s->probs, (size_t)(s->n_probs + 1) * sizeof *np);
    if (!np) return fsb_error(FSB_ENOMEM, "out of memory");
    s->probs = np;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap); /* whole lines: a long path keeps its cause */
    va_end(ap);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!text) return fsb_error(FSB_ENOMEM, "out of memory");
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    np[s->n_probs].text = text;
    np[s->n_probs].line = line;
    np[s->n_probs].seq = s->n_probs;
    s->n_probs++;
    return FSB_OK;
}

static int add_item(split_info *s, const char *path, const char *cls, size_t cls_len, int line,
                    int split)
{
    if ((s->n_items & (s->n_items - 1)) == 0) {
        size_t cap = s->n_items ? 2 * (size_t)s->n_items : 1;
        item *ni = realloc(s->items, cap * sizeof *ni);
        if (!ni) return fsb_error(FSB_ENOMEM, "out of memory");
        s->items = ni;
    }
    item *it = &s->items[s->n_items];
    it->path = strdup(path);
    it->cls = strndup(cls, cls_len);
    if (!it->path || !it->cls) {
        free(it->path);
        free(it->cls);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    it->line = line;
    it->split = split;
    s->n_items++;
    return FSB_OK;
}

static int has_image_ext(const char *p, size_t n)
{
    const char *ext[3] = {".jpg", ".jpeg", ".png"};
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(ext[i]);
        if (n > k && strncasecmp(p + n - k, ext[i], k) == 0) return 1;
    }
    return 0;
}

static int cmp_item_path(const void *a, const void *b)
{
    const item *x = *(item *const *)a, *y = *(item *const *)b;
    int c = strcmp(x->path, y->path);
    if (c) return c;
    if (x->split != y->split) return x->split - y->split;
    return x->line - y->line;
}

static int cmp_lprob(const void *a, const void *b)
{
    const lprob *x = a, *y = b;
    if (x->line != y->line) return (x->line > y->line) - (x->line < y->line);
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Lenient reading of a Ravi CSV: every problem recorded, first occurrences kept. */
static int read_csv(split_info *s, const char *csv, int split)
{
    void *data;
    size_t size;
    int st = fsb_read_file(csv, &data, &size);
    if (st) return add_prob(s, 0, "%s", fsb_error_last());
    char *p = data, *end = p + size, path[4200];
    if (size >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    if (p == end) {
        free(data);
        return add_prob(s, 1, "%s:1: empty file, expected header 'filename,label'", csv);
    }
    for (int line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl : end;
        size_t len = (size_t)(eol - p);
        if (len && p[len - 1] == '\r') len--;
        int is_row = line > 1;
        if (line == 1 && (len != 14 || memcmp(p, "filename,label", 14) != 0)) {
            char *comma = memchr(p, ',', len);
            /* a first line like "x.jpg,label" is a row whose header is missing */
            int looks_row = comma && !memchr(comma + 1, ',', len - (size_t)(comma - p) - 1) &&
                            has_image_ext(p, (size_t)(comma - p));
            if ((st = add_prob(s, 1, "%s:1: expected header 'filename,label', found '%.*s'%s", csv,
                               (int)(len > 80 ? 80 : len), p, looks_row ? " (read as a row)" : "")))
                goto done;
            is_row = looks_row;
        }
        if (is_row && len > 0) {
            char *comma = memchr(p, ',', len);
            size_t nf = comma ? (size_t)(comma - p) : len, nlab = comma ? len - nf - 1 : 0;
            if (!comma || memchr(comma + 1, ',', nlab) || !fsb_split_field_ok(p, nf, 1) ||
                !fsb_split_field_ok(comma + 1, nlab, 0) || nf > 4000) {
                if ((st = add_prob(s, line,
                                   "%s:%d: malformed row '%.*s' (expected '<filename>,<label>')",
                                   csv, line, (int)(len > 80 ? 80 : len), p)))
                    goto done;
            } else {
                snprintf(path, sizeof path, "images/%.*s", (int)nf, p);
                if ((st = add_item(s, path, comma + 1, nlab, line, split))) goto done;
            }
        }
        if (!nl) break;
        p = nl + 1;
    }
    if (s->n_items == 0 && (st = add_prob(s, 0, "%s: no rows after the header", csv))) goto done;
    /* duplicates: every later occurrence is a problem; only the first is kept */
    item **idx = malloc((size_t)s->n_items * sizeof *idx);
    if (!idx && s->n_items) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < s->n_items; i++)
        idx[i] = &s->items[i];
    if (s->n_items > 1) qsort(idx, (size_t)s->n_items, sizeof *idx, cmp_item_path);
    char *drop = calloc((size_t)s->n_items + 1, 1);
    for (int i = 1; drop && i < s->n_items; i++) {
        int j = i - 1;
        if (strcmp(idx[j]->path, idx[i]->path) != 0) continue;
        while (j > 0 && strcmp(idx[j - 1]->path, idx[i]->path) == 0)
            j--;
        const item *a = idx[j], *b = idx[i];
        if ((st = add_prob(s, b->line, "%s:%d: duplicate row for '%s' (first on line %d%s%s)", csv,
                           b->line, b->path + 7, a->line, strcmp(a->cls, b->cls) ? ", label " : "",
                           strcmp(a->cls, b->cls) ? a->cls : "")))
            break;
        drop[b - s->items] = 1;
    }
    if (!drop && !st) st = fsb_error(FSB_ENOMEM, "out of memory");
    if (drop && !st) {
        int k = 0;
        for (int i = 0; i < s->n_items; i++) {
            if (drop[i]) {
                free(s->items[i].path);
                free(s->items[i].cls);
            } else {
                s->items[k++] = s->items[i];
            }
        }
        s->n_items = k;
    }
    free(drop);
    free(idx);
done:
    free(data);
    return st;
}

/* A problem of the folder listing (fsb_split_open_lenient): one report line. */
static int folder_problem(void *ctx, const char *problem)
{
    return add_prob(ctx, 0, "%s", problem);
}

/* Find split `k` under root and list it into s. */
static int list_split(split_info *s, const char *root, int k)
{
    const char *name = split_names[k];
    char rel1[32], rel2[32];
    snprintf(rel1, sizeof rel1, "split/%s.csv", name);
    snprintf(rel2, sizeof rel2, "%s.csv", name);
    char *c1 = fsb_path_join(root, rel1), *c2 = fsb_path_join(root, rel2),
         *d = fsb_path_join(root, name);
    int st = FSB_OK;
    if (!c1 || !c2 || !d) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    if (fsb_is_file(c1) || fsb_is_file(c2)) {
        s->present = s->ravi = 1;
        s->source = strdup(fsb_is_file(c1) ? c1 : c2);
        if (!s->source) {
            st = fsb_error(FSB_ENOMEM, "out of memory");
            goto done;
        }
        st = read_csv(s, s->source, k);
    } else if (fsb_is_dir(d)) {
        s->present = 1;
        s->source = strdup(d);
        fsb_split sp;
        if ((st = fsb_split_open_lenient(&sp, root, name, folder_problem, s))) {
            st = st == FSB_ENOMEM ? st : add_prob(s, 0, "%s", fsb_error_last());
            goto done;
        }
        for (int i = 0; i < sp.n_images && !st; i++) {
            const char *cls = sp.class_names[sp.labels[i]];
            st = add_item(s, sp.paths[i], cls, strlen(cls), 0, k);
        }
        fsb_split_free(&sp);
    }
done:
    free(c1);
    free(c2);
    free(d);
    return st;
}

/* Shared state of the decoding tasks. */
typedef struct check_ctx {
    const char *root;   /* dataset root */
    item **all;         /* [n] every listed image of every split */
    result *res;        /* [n] outcomes */
    int n;              /* images */
    atomic_int done;    /* images decoded so far */
    fsb_progress *bar;  /* drawn by worker 0 only */
    struct twin *twins; /* images with the bytes of an earlier one (content_twins; owned) */
} check_ctx;

/* An image whose bytes equal those of an earlier image. */
typedef struct twin {
    int b; /* the later image (index into check_ctx.all) */
    int a; /* the first image with the same bytes */
} twin;

static void check_task(void *vctx, int task, int worker)
{
    check_ctx *c = vctx;
    int lo = task * IMAGES_PER_TASK, hi = lo + IMAGES_PER_TASK;
    if (hi > c->n) hi = c->n;
    for (int i = lo; i < hi; i++) {
        char *path = fsb_path_join(c->root, c->all[i]->path);
        fsb_image img;
        void *data = NULL;
        size_t size = 0;
        int st = path ? fsb_read_file(path, &data, &size) : fsb_error(FSB_ENOMEM, "out of memory");
        if (!st) { /* the bytes, once: hashed for overlap and duplicates, then decoded */
            c->res[i].hash = XXH3_128bits(data, size);
            c->res[i].hashed = 1;
            st = fsb_image_decode(&img, data, size, path);
            free(data);
        }
        c->res[i].st = st;
        if (st) {
            if (st == FSB_ENOTFOUND) fsb_error(st, "%s: listed image is missing", path);
            c->res[i].msg = strdup(fsb_error_last());
        } else {
            c->res[i].w = img.w;
            c->res[i].h = img.h;
            fsb_image_free(&img);
        }
        free(path);
        atomic_fetch_add(&c->done, 1);
    }
    if (worker == 0 && c->bar) fsb_progress_update(c->bar, atomic_load(&c->done));
}

static int cmp_cls(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Per-class counts and the fingerprint of a Ravi listing (as fsb_split would compute). */
static void class_stats(FILE *r, const split_info *s, const char *name, int *n_classes,
                        int *all_600)
{
    char **cls = malloc((size_t)s->n_items * sizeof *cls);
    *n_classes = 0;
    *all_600 = 0;
    if (!cls) return;
    for (int i = 0; i < s->n_items; i++)
        cls[i] = s->items[i].cls;
    if (s->n_items > 1) qsort(cls, (size_t)s->n_items, sizeof *cls, cmp_cls);
    int lo = 0, hi = 0, nc = 0;
    for (int i = 0; i < s->n_items;) {
        int j = i;
        while (j < s->n_items && !strcmp(cls[j], cls[i]))
            j++;
        int cnt = j - i;
        if (nc == 0 || cnt < lo) lo = cnt;
        if (nc == 0 || cnt > hi) hi = cnt;
        nc++;
        i = j;
    }
    *n_classes = nc;
    *all_600 = nc > 0 && lo == 600 && hi == 600;
    if (lo == hi)
        fprintf(r, "%s: %d images in %d classes, %d per class\n", name, s->n_items, nc, lo);
    else
        fprintf(r, "%s: %d images in %d classes, %d to %d per class\n", name, s->n_items, nc, lo,
                hi);
    if (lo != hi) {
        /* name the classes away from the most common count, for the user to look at */
        for (int i = 0; i < s->n_items;) {
            int j = i;
            while (j < s->n_items && !strcmp(cls[j], cls[i]))
                j++;
            if (j - i != hi) fprintf(r, "%s:   class %s has %d images\n", name, cls[i], j - i);
            i = j;
        }
    }
    free(cls);
}

/* An image's content hash with its index, sorted by hash then index. */
typedef struct hashed_ix {
    XXH128_hash_t hash; /* content hash of image ix */
    int ix;             /* index into check_ctx.all */
} hashed_ix;

static int cmp_hashed_ix(const void *x, const void *y)
{
    const hashed_ix *a = x, *b = y;
    int c = XXH128_cmp(&a->hash, &b->hash);
    return c ? c : (a->ix > b->ix) - (a->ix < b->ix);
}

static int cmp_twin(const void *x, const void *y)
{
    const twin *a = x, *b = y;
    return (a->b > b->b) - (a->b < b->b);
}

/* Fill c->twins: every read image whose bytes equal those of an earlier one (earlier in split
 * order, then listing order), paired with the first image of those bytes; pairs of the same
 * path in two splits are left out (reported by path). Sorted by the later image. */
static int content_twins(check_ctx *c, int *n_twins)
{
    hashed_ix *h = malloc((size_t)(c->n ? c->n : 1) * sizeof *h);
    c->twins = malloc((size_t)(c->n ? c->n : 1) * sizeof *c->twins);
    if (!h || !c->twins) {
        free(h);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    int m = 0, n = 0;
    for (int i = 0; i < c->n; i++)
        if (c->res[i].hashed) h[m++] = (hashed_ix){c->res[i].hash, i};
    if (m > 1) qsort(h, (size_t)m, sizeof *h, cmp_hashed_ix);
    for (int i = 0; i < m;) {
        int j = i + 1;
        for (; j < m && XXH128_isEqual(h[j].hash, h[i].hash); j++) {
            const item *first = c->all[h[i].ix], *later = c->all[h[j].ix];
            if (!strcmp(first->path, later->path)) continue; /* one file, listed twice */
            c->twins[n++] = (twin){h[j].ix, h[i].ix};
        }
        i = j;
    }
    free(h);
    if (n > 1) qsort(c->twins, (size_t)n, sizeof *c->twins, cmp_twin);
    *n_twins = n;
    return FSB_OK;
}

/* The report of split k (sp[k] listed, its images checked in c): where it comes from, its
 * problems in listing order, class counts, and the fingerprint when it lists cleanly. A
 * missing split is one problem, in the loader's own words (not when no split exists at all:
 * `none`). Adds to *problems. */
static int report_split(FILE *report, const char *root, split_info *s, int k, const check_ctx *c,
                        int min_side, int none, int *problems)
{
    const char *name = split_names[k];
    int st;
    if (!s->present) {
        fprintf(report, "%s: absent\n", name);
        if (none) return FSB_OK;
        if ((st = fsb_split_require(root, &name, 1, MISSING_WHY)) != FSB_ENOTFOUND)
            return st ? st
                      : fsb_error(FSB_EINTERNAL, "%s: split %s both absent and found", root, name);
        fprintf(report, "%s\n", fsb_error_last()); /* the loader's own refusal */
        (*problems)++;
        return FSB_OK;
    }
    fprintf(report, "%s: %s (%s layout)\n", name, s->source,
            s->ravi ? "Ravi CSV" : "class folders");
    int n_listing = s->n_probs;
    for (int i = 0; i < s->n_items; i++) {
        const item *it = &s->items[i];
        const result *r = &c->res[s->first + i];
        char where[4200] = "";
        if (it->line > 0) snprintf(where, sizeof where, "%s:%d: ", s->source, it->line);
        st = FSB_OK;
        if (r->st)
            st = add_prob(s, it->line, "%s%s", where, r->msg ? r->msg : "cannot decode");
        else if (r->w < min_side || r->h < min_side)
            st = add_prob(s, it->line,
                          "%s%s/%s: image is %dx%d, smaller than %d on a side (--image-size %d)",
                          where, root, it->path, r->w, r->h, min_side, min_side);
        if (st) return st;
    }
    if (s->n_probs > 1) qsort(s->probs, (size_t)s->n_probs, sizeof *s->probs, cmp_lprob);
    for (int i = 0; i < s->n_probs; i++)
        fprintf(report, "%s\n", s->probs[i].text);
    *problems += s->n_probs;
    int nc, all_600;
    class_stats(report, s, name, &nc, &all_600);
    if (s->ravi && s->n_items == canon_images[k] && nc == canon_classes[k] && all_600)
        fprintf(report,
                "%s: matches the canonical MiniImageNet (Ravi & Larochelle) %s split: "
                "%d images, %d classes x 600\n",
                name, name, canon_images[k], canon_classes[k]);
    fsb_split clean;
    if (n_listing == 0 && fsb_split_open(&clean, root, name) == FSB_OK) {
        fprintf(report, "%s: fingerprint %016llx%s\n", name, (unsigned long long)clean.fingerprint,
                clean.fingerprint == canon_fp[k]
                    ? " (identical to the published Ravi & Larochelle listing)"
                    : "");
        fsb_split_free(&clean);
    }
    return FSB_OK;
}

/* The same file listed in two splits (Ravi: the same path under images/). */
static int report_same_path(FILE *report, const char *root, const split_info *sp,
                            const check_ctx *c, int *problems)
{
    item **by_path = malloc((size_t)(c->n ? c->n : 1) * sizeof *by_path);
    if (!by_path) return fsb_error(FSB_ENOMEM, "out of memory");
    memcpy(by_path, c->all, (size_t)c->n * sizeof *by_path);
    if (c->n > 1) qsort(by_path, (size_t)c->n, sizeof *by_path, cmp_item_path);
    for (int i = 1; i < c->n; i++) {
        const item *a = by_path[i - 1], *b = by_path[i];
        if (strcmp(a->path, b->path) != 0 || a->split == b->split) continue;
        int j = i - 1;
        while (j > 0 && !strcmp(by_path[j - 1]->path, b->path))
            j--;
        a = by_path[j];
        fprintf(report, "%s:%d: %s/%s is also listed in %s (%s:%d)\n", sp[b->split].source, b->line,
                root, b->path, split_names[a->split], sp[a->split].source, a->line);
        (*problems)++;
    }
    free(by_path);
    return FSB_OK;
}

/* Files with the same bytes under other paths, in any layout: overlap between splits (class
 * folders always differ in path) and duplicates within one. */
static int report_twins(FILE *report, const char *root, const split_info *sp, check_ctx *c,
                        int *problems)
{
    int n_dup = 0, st = content_twins(c, &n_dup);
    if (st) return st;
    for (int i = 0; i < n_dup; i++) {
        const item *b = c->all[c->twins[i].b], *a = c->all[c->twins[i].a];
        char wb[4200] = "", wa[4200] = "";
        if (b->line > 0) snprintf(wb, sizeof wb, "%s:%d: ", sp[b->split].source, b->line);
        if (a->line > 0) snprintf(wa, sizeof wa, " (%s:%d)", sp[a->split].source, a->line);
        if (a->split != b->split)
            fprintf(report, "%s%s/%s: same content as %s/%s%s in %s: the splits overlap\n", wb,
                    root, b->path, root, a->path, wa, split_names[a->split]);
        else
            fprintf(report, "%s%s/%s: same content as %s/%s%s: a duplicate image in %s\n", wb, root,
                    b->path, root, a->path, wa, split_names[a->split]);
        (*problems)++;
    }
    return FSB_OK;
}

/* List the splits asked for into sp and decode every image over the pool into c. */
static int check_images(check_ctx *c, split_info *sp, const char *root, fsb_pool *pool,
                        const fsb_data_check_opts *o, int *n_present, int *n_checked)
{
    int st;
    for (int k = 0; k < 3; k++) {
        if (o->skip_split[k]) continue;
        (*n_checked)++;
        if ((st = list_split(&sp[k], root, k))) return st;
        *n_present += sp[k].present;
        sp[k].first = c->n;
        c->n += sp[k].n_items;
    }
    c->root = root;
    c->all = malloc((size_t)(c->n ? c->n : 1) * sizeof *c->all);
    c->res = calloc((size_t)(c->n ? c->n : 1), sizeof *c->res);
    if (!c->all || !c->res) return fsb_error(FSB_ENOMEM, "out of memory");
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < sp[k].n_items; i++)
            c->all[sp[k].first + i] = &sp[k].items[i];
    fsb_progress bar;
    fsb_progress_init(&bar, o->progress, "checking images", "img", 0, c->n);
    c->bar = &bar;
    atomic_init(&c->done, 0);
    fsb_pool_run(pool, (c->n + IMAGES_PER_TASK - 1) / IMAGES_PER_TASK, check_task, c);
    fsb_progress_update(&bar, c->n);
    fsb_progress_finish(&bar);
    c->bar = NULL;
    return FSB_OK;
}

int fsb_data_check(const char *root, FILE *report, fsb_pool *pool, const fsb_data_check_opts *o,
                   int *n_problems)
{
    fsb_data_check_opts def = {0};
    if (!o) o = &def;
    int min_side = o->image_size > 0 ? o->image_size : 84;
    split_info sp[3];
    memset(sp, 0, sizeof sp);
    check_ctx c = {0};
    int st = FSB_OK, problems = 0, n_present = 0, n_checked = 0;
    if (n_problems) *n_problems = 0;
    if (!fsb_is_dir(root)) {
        fprintf(report, "%s: dataset root not found (not a folder)\nproblems: 1\n", root);
        if (n_problems) *n_problems = 1;
        return fsb_error(FSB_ENOTFOUND, "%s: dataset root not found (not a folder)", root);
    }
    if ((st = check_images(&c, sp, root, pool, o, &n_present, &n_checked))) goto done;
    fprintf(report, "dataset: %s\n", root);
    int none = n_present == 0 && n_checked == 3; /* one problem, not three */
    if (none) {
        fprintf(report,
                "%s: no split found (looked for split/<name>.csv, <name>.csv and "
                "<name>/ for train, val, test)\n",
                root);
        problems++;
    }
    for (int k = 0; k < 3 && !st; k++) {
        if (o->skip_split[k])
            fprintf(report, "%s: not checked (--split)\n", split_names[k]);
        else
            st = report_split(report, root, &sp[k], k, &c, min_side, none, &problems);
    }
    if (st || (st = report_same_path(report, root, sp, &c, &problems)) ||
        (st = report_twins(report, root, sp, &c, &problems)))
        goto done;
    fprintf(report, "problems: %d\n", problems);
    fflush(report);
    if (n_problems) *n_problems = problems;
    if (problems)
        st = fsb_error(FSB_EFORMAT, "%d problem%s in %s (see the report)", problems,
                       problems == 1 ? "" : "s", root);
done:
    free(c.twins);
    for (int i = 0; c.res && i < c.n; i++)
        free(c.res[i].msg);
    free(c.res);
    free(c.all);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < sp[k].n_items; i++) {
            free(sp[k].items[i].path);
            free(sp[k].items[i].cls);
        }
        free(sp[k].items);
        for (int i = 0; i < sp[k].n_probs; i++)
            free(sp[k].probs[i].text);
        free(sp[k].probs);
        free(sp[k].source);
    }
    return st;
}
