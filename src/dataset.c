/* dataset.c - the listing of one split: Ravi CSVs or class folders (see include/fsb/dataset.h).
 *
 * Both readers produce a flat list of (class, basename, path, line) records; one common
 * step sorts them into the canonical order, builds the class table and hashes the
 * fingerprint, so the two layouts cannot drift apart.
 */
#include "fsb/dataset.h"
#include "fsb/fileio.h"
#include "fsb/status.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* One listed image before canonical ordering. */
typedef struct rec {
    char *cls;  /* class name (owned) */
    char *base; /* basename used for ordering and the fingerprint (points into path) */
    char *path; /* path relative to root (owned) */
    int line;   /* 1-based CSV line, 0 for folders */
} rec;

/* A growable array of records. */
typedef struct recs {
    rec *v;  /* records */
    int n;   /* used */
    int cap; /* allocated */
} recs;

static void recs_free(recs *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->v[i].cls);
        free(r->v[i].path);
    }
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* Append a record taking copies of cls and path; base is the part of path after
 * `base_off` bytes. */
static int recs_push(recs *r, const char *cls, size_t cls_len, const char *path, size_t base_off,
                     int line)
{
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 1024;
        rec *v = realloc(r->v, (size_t)cap * sizeof *v);
        if (!v) return fsb_error(FSB_ENOMEM, "out of memory listing images");
        r->v = v;
        r->cap = cap;
    }
    rec *e = &r->v[r->n];
    e->cls = strndup(cls, cls_len);
    e->path = strdup(path);
    if (!e->cls || !e->path) {
        free(e->cls);
        free(e->path);
        return fsb_error(FSB_ENOMEM, "out of memory listing images");
    }
    e->base = e->path + base_off;
    e->line = line;
    r->n++;
    return FSB_OK;
}

static int cmp_canonical(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    int c = strcmp(x->cls, y->cls);
    if (c) return c;
    c = strcmp(x->base, y->base);
    if (c) return c;
    return (x->line > y->line) - (x->line < y->line);
}

static int cmp_base_line(const void *a, const void *b)
{
    const rec *x = *(rec *const *)a, *y = *(rec *const *)b;
    int c = strcmp(x->base, y->base);
    if (c) return c;
    return (x->line > y->line) - (x->line < y->line);
}

/* Reject two rows with the same filename (in any class), naming both lines; the pair
 * reported is the one whose second line comes first in the file. */
static int check_duplicates(const recs *r, const char *source)
{
    const rec **idx = malloc((size_t)r->n * sizeof *idx);
    if (!idx) return fsb_error(FSB_ENOMEM, "%s: out of memory", source);
    for (int i = 0; i < r->n; i++)
        idx[i] = &r->v[i];
    qsort(idx, (size_t)r->n, sizeof *idx, cmp_base_line);
    const rec *first = NULL, *second = NULL;
    for (int i = 1; i < r->n; i++) {
        if (strcmp(idx[i - 1]->base, idx[i]->base) != 0) continue;
        /* idx[i-1] is at or after the first occurrence; find the group's first. */
        int j = i - 1;
        while (j > 0 && strcmp(idx[j - 1]->base, idx[i]->base) == 0)
            j--;
        if (!second || idx[i]->line < second->line) {
            first = idx[j];
            second = idx[i];
        }
    }
    free(idx);
    if (second)
        return fsb_error(FSB_EFORMAT, "%s:%d: duplicate filename '%s' (also on line %d)", source,
                         second->line, second->base, first->line);
    return FSB_OK;
}

int fsb_split_field_ok(const char *s, size_t n, int is_file)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == ',' || (is_file && c == '/')) return 0;
    }
    if (is_file && ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))) return 0;
    return 1;
}

static int read_ravi(recs *r, const char *csv)
{
    void *data;
    size_t size;
    int st = fsb_read_file(csv, &data, &size);
    if (st) return st;
    char *p = data, *end = p + size;
    if (size >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3; /* UTF-8 byte order mark, as some spreadsheet exports write */
    char *pathbuf = NULL;
    size_t pathcap = 0;
    for (int line = 1; p < end || line == 1; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        size_t len = (size_t)(eol - p);
        if (len && p[len - 1] == '\r') len--;
        if (line == 1) {
            if (len == 0 && !nl) {
                st = fsb_error(FSB_EFORMAT, "%s:1: empty file, expected header 'filename,label'",
                               csv);
                goto done;
            }
            if (len != 14 || memcmp(p, "filename,label", 14) != 0) {
                st = fsb_error(FSB_EFORMAT, "%s:1: expected header 'filename,label', found '%.*s'",
                               csv, (int)(len > 80 ? 80 : len), p);
                goto done;
            }
        } else if (len > 0) {
            char *comma = memchr(p, ',', len);
            size_t nf = comma ? (size_t)(comma - p) : len;
            size_t nl_ = comma ? len - nf - 1 : 0;
            if (!comma || memchr(comma + 1, ',', nl_) || !fsb_split_field_ok(p, nf, 1) ||
                !fsb_split_field_ok(comma + 1, nl_, 0)) {
                st = fsb_error(FSB_EFORMAT,
                               "%s:%d: malformed row '%.*s' (expected '<filename>,<label>')", csv,
                               line, (int)(len > 80 ? 80 : len), p);
                goto done;
            }
            if (pathcap < nf + 8) {
                pathcap = 2 * (nf + 8);
                char *nb = realloc(pathbuf, pathcap);
                if (!nb) {
                    st = fsb_error(FSB_ENOMEM, "%s: out of memory", csv);
                    goto done;
                }
                pathbuf = nb;
            }
            memcpy(pathbuf, "images/", 7);
            memcpy(pathbuf + 7, p, nf);
            pathbuf[7 + nf] = '\0';
            st = recs_push(r, comma + 1, nl_, pathbuf, 7, line);
            if (st) goto done;
        }
        if (!nl) break;
        p = nl + 1;
    }
    if (r->n == 0) {
        st = fsb_error(FSB_EFORMAT, "%s: no rows after the header", csv);
        goto done;
    }
    st = check_duplicates(r, csv);
done:
    free(pathbuf);
    free(data);
    return st;
}

/* Why a class or file name is refused (fsb_split_field_ok); %s: "class folder" or "file". */
#define NAME_RULE                                                                                  \
    "the %s name has a comma or a control character (names are written to comma-separated "        \
    "episode and result files)"

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png");
}

/* A folder on the path being walked: symlink loops are found by (device, inode). */
typedef struct walk_dir {
    dev_t dev;                 /* device of the folder */
    ino_t ino;                 /* its inode */
    const char *path;          /* its full path, for messages */
    const struct walk_dir *up; /* the folder holding it (NULL above the split folder) */
} walk_dir;

/* What a folder walk needs besides the folder. */
typedef struct walker {
    recs *r;                      /* listed images */
    const char *root;             /* the dataset root */
    const char *split_rel;        /* the split folder, relative to root */
    fsb_split_problem_fn problem; /* NULL: the first entry problem is the error */
    void *ctx;                    /* problem's argument */
} walker;

static int entry_problem(const walker *w, int st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One entry cannot be listed: the error (st), or, when listing leniently, handed to the
 * problem callback and skipped (FSB_OK unless the callback stops the listing). */
static int entry_problem(const walker *w, int st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!msg) return fsb_error(FSB_ENOMEM, "out of memory listing %s", w->root);
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    st = w->problem ? w->problem(w->ctx, msg) : fsb_error(st, "%s", msg);
    free(msg);
    return st;
}

/* An entry that stat() cannot follow: a dangling symlink, a symlink loop, or unreadable. */
static int unreadable_entry(const walker *w, const char *full)
{
    int err = errno;
    struct stat lb;
    if (lstat(full, &lb) != 0 || !S_ISLNK(lb.st_mode))
        return entry_problem(w, FSB_EIO, "%s: cannot read: %s", full, strerror(err));
    if (err == ELOOP)
        return entry_problem(w, FSB_EFORMAT,
                             "%s: symbolic link loop (the link leads back to itself)", full);
    char target[4096];
    ssize_t n = readlink(full, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    if (err == ENOENT)
        return entry_problem(w, FSB_EFORMAT,
                             "%s: dangling symbolic link (its target %s does not exist)", full,
                             target);
    return entry_problem(w, FSB_EIO, "%s: symbolic link to %s cannot be followed: %s", full, target,
                         strerror(err));
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walk `dir` (= root/split_rel/rel); every folder holding image files directly is a class
 * named by its path relative to the split folder. Hidden entries (".*") are skipped, the
 * others taken in name order (so problems come in the same order everywhere). A folder that
 * is one of the folders above it (by device and inode: a symlink loop) is not entered. */
static int walk_folders(const walker *w, const char *rel, const walk_dir *up)
{
    char *dir_rel = rel[0] ? fsb_path_join(w->split_rel, rel) : strdup(w->split_rel);
    char *dir = dir_rel ? fsb_path_join(w->root, dir_rel) : NULL;
    DIR *d = NULL;
    char **names = NULL;
    int n = 0, cap = 0, st = FSB_OK, class_ok = -1; /* -1: not checked yet */
    struct stat me;
    if (!dir) {
        st = fsb_error(FSB_ENOMEM, "out of memory listing %s", w->root);
        goto done;
    }
    d = opendir(dir);
    if (!d || fstat(dirfd(d), &me) != 0) {
        st = rel[0] ? entry_problem(w, FSB_EIO, "%s: cannot open folder: %s", dir, strerror(errno))
                    : fsb_error(FSB_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
        goto done;
    }
    for (const walk_dir *a = up; a; a = a->up)
        if (a->dev == me.st_dev && a->ino == me.st_ino) {
            st = entry_problem(w, FSB_EFORMAT,
                               "%s: symbolic link loop (the same folder as %s, which holds it)",
                               dir, a->path);
            goto done;
        }
    walk_dir self = {me.st_dev, me.st_ino, dir, up};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(names, (size_t)cap * sizeof *nv);
            if (!nv) {
                st = fsb_error(FSB_ENOMEM, "out of memory listing %s", dir);
                goto done;
            }
            names = nv;
        }
        if (!(names[n] = strdup(e->d_name))) {
            st = fsb_error(FSB_ENOMEM, "out of memory listing %s", dir);
            goto done;
        }
        n++;
    }
    if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (int i = 0; i < n && !st; i++) {
        char *full = fsb_path_join(dir, names[i]);
        if (!full) {
            st = fsb_error(FSB_ENOMEM, "out of memory listing %s", dir);
            goto done;
        }
        struct stat sb;
        if (stat(full, &sb) != 0) {
            st = unreadable_entry(w, full);
        } else if (S_ISDIR(sb.st_mode)) {
            char *sub = rel[0] ? fsb_path_join(rel, names[i]) : strdup(names[i]);
            st = sub ? walk_folders(w, sub, &self)
                     : fsb_error(FSB_ENOMEM, "out of memory listing %s", dir);
            free(sub);
        } else if (S_ISREG(sb.st_mode) && is_image_name(names[i])) {
            if (!rel[0]) {
                st = entry_problem(w, FSB_EFORMAT,
                                   "%s: image directly in the split folder (images must be in "
                                   "class folders)",
                                   full);
            } else if (class_ok == 0) {
                /* reported once for the folder; its images are skipped */
            } else if (class_ok < 0 && !(class_ok = fsb_split_field_ok(rel, strlen(rel), 0))) {
                st = entry_problem(w, FSB_EFORMAT, "%s: " NAME_RULE, dir, "class folder");
            } else if (!fsb_split_field_ok(names[i], strlen(names[i]), 1)) {
                st = entry_problem(w, FSB_EFORMAT, "%s: " NAME_RULE, full, "file");
            } else {
                char *path = fsb_path_join(dir_rel, names[i]);
                st = path ? recs_push(w->r, rel, strlen(rel), path, strlen(dir_rel) + 1, 0)
                          : fsb_error(FSB_ENOMEM, "out of memory listing %s", dir);
                free(path);
            }
        }
        free(full);
    }
done:
    if (d) closedir(d);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(dir);
    free(dir_rel);
    return st;
}

/* Sort into the canonical order, move records into `s`, build the class table and hash. */
static int finish(fsb_split *s, recs *r)
{
    qsort(r->v, (size_t)r->n, sizeof *r->v, cmp_canonical);
    int nc = 0;
    for (int i = 0; i < r->n; i++)
        if (i == 0 || strcmp(r->v[i].cls, r->v[i - 1].cls) != 0) nc++;
    s->n_images = r->n;
    s->n_classes = nc;
    s->paths = calloc((size_t)r->n, sizeof *s->paths);
    s->labels = malloc((size_t)r->n * sizeof *s->labels);
    s->src_line = malloc((size_t)r->n * sizeof *s->src_line);
    s->class_names = calloc((size_t)nc, sizeof *s->class_names);
    s->class_start = malloc((size_t)nc * sizeof *s->class_start);
    s->class_count = calloc((size_t)nc, sizeof *s->class_count);
    XXH3_state_t *h = XXH3_createState();
    if (!s->paths || !s->labels || !s->src_line || !s->class_names || !s->class_start ||
        !s->class_count || !h) {
        XXH3_freeState(h);
        return fsb_error(FSB_ENOMEM, "%s: out of memory", s->source);
    }
    XXH3_64bits_reset(h);
    int c = -1;
    for (int i = 0; i < r->n; i++) {
        rec *e = &r->v[i];
        if (c < 0 || strcmp(e->cls, s->class_names[c]) != 0) {
            c++;
            s->class_names[c] = e->cls; /* ownership moves */
            s->class_start[c] = i;
        } else {
            free(e->cls);
        }
        e->cls = NULL;
        s->class_count[c]++;
        s->labels[i] = c;
        s->src_line[i] = e->line;
        XXH3_64bits_update(h, s->class_names[c], strlen(s->class_names[c]));
        XXH3_64bits_update(h, "\t", 1);
        XXH3_64bits_update(h, e->base, strlen(e->base));
        XXH3_64bits_update(h, "\n", 1);
        s->paths[i] = e->path;
        e->path = NULL;
    }
    s->fingerprint = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return FSB_OK;
}

int fsb_split_open(fsb_split *s, const char *root, const char *name)
{
    return fsb_split_open_lenient(s, root, name, NULL, NULL);
}

int fsb_split_open_lenient(fsb_split *s, const char *root, const char *name,
                           fsb_split_problem_fn problem, void *ctx)
{
    memset(s, 0, sizeof *s);
    recs r = {0};
    char *csv1 = NULL, *csv2 = NULL, *dir = NULL, *file = NULL;
    int st = FSB_OK;
    if (!fsb_is_dir(root)) {
        st = fsb_error(FSB_ENOTFOUND, "%s: dataset root not found (not a folder)", root);
        goto done;
    }
    s->root = strdup(root);
    s->name = strdup(name);
    file = malloc(strlen(name) + 5);
    if (!s->root || !s->name || !file) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    sprintf(file, "%s.csv", name);
    char *split_dir = fsb_path_join(root, "split");
    csv1 = split_dir ? fsb_path_join(split_dir, file) : NULL;
    free(split_dir);
    csv2 = fsb_path_join(root, file);
    dir = fsb_path_join(root, name);
    if (!csv1 || !csv2 || !dir) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    const char *csv = fsb_is_file(csv1) ? csv1 : fsb_is_file(csv2) ? csv2 : NULL;
    if (csv) {
        s->layout = FSB_LAYOUT_RAVI;
        if (!(s->source = strdup(csv))) {
            st = fsb_error(FSB_ENOMEM, "out of memory");
            goto done;
        }
        st = read_ravi(&r, csv);
    } else if (fsb_is_dir(dir)) {
        s->layout = FSB_LAYOUT_FOLDERS;
        if (!(s->source = strdup(dir))) {
            st = fsb_error(FSB_ENOMEM, "out of memory");
            goto done;
        }
        walker w = {&r, root, name, problem, ctx};
        st = walk_folders(&w, "", NULL);
        if (!st && r.n == 0)
            st = fsb_error(FSB_EFORMAT, "%s: no images (*.jpg, *.jpeg, *.png) in class folders",
                           dir);
    } else {
        st = fsb_error(FSB_ENOTFOUND, "%s: split '%s' not found (looked for %s, %s and %s/)", root,
                       name, csv1, csv2, dir);
    }
    if (!st) st = finish(s, &r);
done:
    recs_free(&r);
    free(csv1);
    free(csv2);
    free(dir);
    free(file);
    if (st) fsb_split_free(s);
    return st;
}

int fsb_split_exists(const char *root, const char *name)
{
    size_t n = strlen(root) + strlen(name) + 16;
    char *p = malloc(n);
    if (!p) return 0;
    snprintf(p, n, "%s/split/%s.csv", root, name);
    int found = fsb_is_file(p);
    snprintf(p, n, "%s/%s.csv", root, name);
    found = found || fsb_is_file(p);
    snprintf(p, n, "%s/%s", root, name);
    found = found || fsb_is_dir(p);
    free(p);
    return found;
}

int fsb_split_require(const char *root, const char *const *names, int n, const char *why)
{
    if (!fsb_is_dir(root))
        return fsb_error(FSB_ENOTFOUND, "%s: dataset root not found (not a folder)", root);
    for (int k = 0; k < n; k++) {
        const char *x = names[k];
        if (!fsb_split_exists(root, x))
            return fsb_error(
                FSB_ENOTFOUND,
                "%s: no %s split (looked for %s/split/%s.csv, %s/%s.csv and %s/%s/); %s", root, x,
                root, x, root, x, root, x, why);
        fsb_split s;
        int st = fsb_split_open(&s, root, x);
        if (st) return st;
        fsb_split_free(&s);
    }
    return FSB_OK;
}

void fsb_split_free(fsb_split *s)
{
    if (!s) return;
    for (int i = 0; s->class_names && i < s->n_classes; i++)
        free(s->class_names[i]);
    for (int i = 0; s->paths && i < s->n_images; i++)
        free(s->paths[i]);
    free(s->class_names);
    free(s->paths);
    free(s->class_start);
    free(s->class_count);
    free(s->labels);
    free(s->src_line);
    free(s->root);
    free(s->name);
    free(s->source);
    memset(s, 0, sizeof *s);
}

int fsb_split_class_index(const fsb_split *s, const char *class_name)
{
    int lo = 0, hi = s->n_classes - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(s->class_names[mid], class_name);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

const char *fsb_split_basename(const fsb_split *s, int i)
{
    const char *p = s->paths[i];
    const char *slash = strrchr(p, '/');
    return slash ? slash + 1 : p;
}

int fsb_split_image_index(const fsb_split *s, int cls, const char *file)
{
    if (cls < 0 || cls >= s->n_classes) return -1;
    int lo = s->class_start[cls], hi = lo + s->class_count[cls] - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(fsb_split_basename(s, mid), file);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}
