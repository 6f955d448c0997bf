/* tune.c - `bench tune`: a grid of student options, each point an ordinary fsb_run on the
 * val split, compared by mean accuracy over shots (see include/fsb/tune.h).
 *
 * Invariant: the test split is never opened (a split named "test", or anything but a plain
 * name that could be a path to it, is refused before anything runs;
 * fsb_run opens only the split it is given, plus "train" for CL2N, which the student methods
 * do not use).
 */
#include "fsb/tune.h"
#include "fsb/method.h"
#include "fsb/fileio.h"
#include "fsb/report.h"
#include "fsb/run.h"
#include "fsb/status.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void fsb_tune_opts_default(fsb_tune_opts *o)
{
    memset(o, 0, sizeof *o);
    o->out = "results/tune";
    o->split = "val";
    o->n_methods = 2;
    o->methods[0] = "finetune";
    o->methods[1] = "refilled";
    o->episodes = 100;
    o->way = 5;
    o->query = 15;
    static const int shots[] = {1, 5, 10, 30};
    o->n_shots = 4;
    memcpy(o->shots, shots, sizeof shots);
    o->seed = 1;
    o->image_size = o->resize = o->crop = 0; /* the teacher's (bench run settles them) */
}

/* Keys only REFILLED reads (dropped from finetune's grid). */
static int refilled_only(const char *key, size_t len)
{
    static const char *const keys[] = {"stage1_steps", "lr1",    "views",        "k1",
                                       "miner",        "margin", "tau1",         "w1",
                                       "tau2",         "lambda", "centres_batch"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strlen(keys[i]) == len && !strncmp(keys[i], key, len)) return 1;
    return 0;
}

#define MAX_ITEMS 32
#define MAX_ALTS 16

/* 1 for the frozen-feature methods tune can choose C/norm for, 0 for the students. */
static int feature_method(const char *method)
{
    return !strcmp(method, "svm") || !strcmp(method, "logreg");
}

int fsb_tune_split_check(const char *split, const char *flag)
{
    if (!split || !*split) return fsb_error(FSB_EINVAL, "%s: give a split name (val)", flag);
    if (!strcasecmp(split, "test"))
        return fsb_error(FSB_EINVAL, "%s: tuning never reads the test split (use val)", flag);
    /* a plain name: "./test", "split/test" or "test/" would reach the test split's files */
    for (const char *p = split; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return fsb_error(FSB_EINVAL,
                             "%s: '%s' is not a plain split name (letters, digits, "
                             "'_' and '-')",
                             flag, split);
    return FSB_OK;
}

int fsb_tune_method_ok(const char *method)
{
    return feature_method(method) || !strcmp(method, "finetune") || !strcmp(method, "refilled");
}

const char *fsb_tune_default_grid(const char *method)
{
    return feature_method(method) ? FSB_TUNE_DEFAULT_FEATURE_GRID : FSB_TUNE_DEFAULT_GRID;
}

/* Keys a feature method reads from a grid point. */
static int feature_key(const char *key, size_t len)
{
    return (len == 1 && key[0] == 'C') || (len == 4 && !strncmp(key, "norm", 4));
}

int fsb_tune_feature_point(const char *point, double *C, int *norm, const char *flag)
{
    *C = 0; /* the method's default */
    *norm = -1;
    for (const char *p = point; *p;) {
        size_t len = strcspn(p, ",");
        char item[64];
        if (len >= sizeof item)
            return fsb_error(FSB_EINVAL, "%s: '%.*s' is too long", flag, (int)len, p);
        memcpy(item, p, len);
        item[len] = '\0';
        char *eq = strchr(item, '='), *end;
        if (!eq) return fsb_error(FSB_EINVAL, "%s: '%s' is not key=value", flag, item);
        *eq = '\0';
        if (!strcmp(item, "C")) {
            *C = strtod(eq + 1, &end);
            if (end == eq + 1 || *end || !(*C > 0) || *C > 1e8)
                return fsb_error(FSB_EINVAL, "%s: C=%s is not a number in (0, 1e8]", flag, eq + 1);
        } else if (!strcmp(item, "norm")) {
            fsb_norm n;
            int st = fsb_norm_parse(flag, eq + 1, &n);
            if (st) return st;
            *norm = (int)n;
        } else {
            return fsb_error(FSB_EINVAL, "%s: unknown key '%s' for svm/logreg (C, norm)", flag,
                             item);
        }
        p += len;
        if (*p == ',') p++;
    }
    return FSB_OK;
}

/* A grid's axes: the keys the method keeps with their values, as (pointer, length) into the
 * grid text, in the order given. */
typedef struct grid_axes {
    int n;                                /* kept keys */
    const char *key[MAX_ITEMS];           /* each key's text */
    size_t key_len[MAX_ITEMS];            /* ... and length */
    int n_alt[MAX_ITEMS];                 /* values of each key */
    const char *alt[MAX_ITEMS][MAX_ALTS]; /* each value's text */
    size_t alt_len[MAX_ITEMS][MAX_ALTS];  /* ... and length */
} grid_axes;

/* Check one value of a key the method drops, alone (a typo must not vanish silently). */
static int check_dropped(const char *key, size_t kl, const char *v, size_t vl, int feature,
                         const char *flag)
{
    char item[128];
    if (kl + 1 + vl >= sizeof item)
        return fsb_error(FSB_EINVAL, "%s: %.*s has a too long value", flag, (int)kl, key);
    snprintf(item, sizeof item, "%.*s=%.*s", (int)kl, key, (int)vl, v);
    double C;
    int norm, st = feature_key(key, kl) ? fsb_tune_feature_point(item, &C, &norm, flag)
                                        : fsb_student_item_check(item, strlen(item), flag);
    if (st && feature) {
        char why[1024];
        snprintf(why, sizeof why, "%s", fsb_error_last());
        return fsb_error(st, "%s (svm and logreg read C and norm)", why);
    }
    return st;
}

/* The item "key=v1|v2|..." of len bytes at p (eq: its '='): every value must be non-empty; a
 * kept key becomes axis g->n (not yet counted), a dropped key's values are checked. */
static int item_values(grid_axes *g, const char *p, size_t len, const char *eq, int keep,
                       int feature, const char *flag)
{
    size_t kl = (size_t)(eq - p);
    g->key[g->n] = p;
    g->key_len[g->n] = kl;
    g->n_alt[g->n] = 0;
    for (const char *v = eq + 1; v <= p + len;) {
        size_t vl = strcspn(v, "|,");
        if (vl > (size_t)(p + len - v)) vl = (size_t)(p + len - v);
        if (!vl) return fsb_error(FSB_EINVAL, "%s: %.*s has an empty value", flag, (int)kl, p);
        if (keep) {
            int *n = &g->n_alt[g->n];
            if (*n == MAX_ALTS)
                return fsb_error(FSB_EINVAL, "%s: %.*s has more than %d values", flag, (int)kl, p,
                                 MAX_ALTS);
            g->alt[g->n][*n] = v;
            g->alt_len[g->n][(*n)++] = vl;
        } else {
            int st = check_dropped(p, kl, v, vl, feature, flag);
            if (st) return st;
        }
        v += vl + 1;
    }
    return FSB_OK;
}

/* Split the grid into items, refuse malformed items and repeated keys, keep the method's
 * axes (see fsb_tune_expand). */
static int grid_parse(grid_axes *g, const char *grid, const char *method, const char *flag)
{
    int finetune = !strcmp(method, "finetune"), feature = feature_method(method);
    g->n = 0;
    for (const char *p = grid ? grid : ""; *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (!len || !eq || eq == p)
            return fsb_error(FSB_EINVAL, "%s: '%.*s' is not key=value[|value...]", flag, (int)len,
                             p);
        if (g->n == MAX_ITEMS)
            return fsb_error(FSB_EINVAL, "%s: more than %d keys", flag, MAX_ITEMS);
        size_t kl = (size_t)(eq - p);
        for (const char *q = grid; q < p; q += strcspn(q, ",") + 1)
            if (strcspn(q, ",=") == kl && !strncmp(q, p, kl))
                return fsb_error(FSB_EINVAL,
                                 "%s: %.*s is given twice (list its values as "
                                 "%.*s=a|b)",
                                 flag, (int)kl, p, (int)kl, p);
        int keep = feature ? feature_key(p, kl)
                           : !feature_key(p, kl) && !(finetune && refilled_only(p, kl));
        int st = item_values(g, p, len, eq, keep, feature, flag);
        if (st) return st;
        g->n += keep;
        p += len;
        if (*p == ',') p++;
    }
    return FSB_OK;
}

/* The canonical "key=value,..." of every student option: `point` applied to the defaults
 * (the defaults alone when it is refused). */
static int student_canonical(const char *point, char *buf, size_t n, const char *flag)
{
    fsb_student_opts so;
    fsb_student_opts_default(&so);
    int st = fsb_student_opts_parse(&so, point, flag); /* on error so stays the defaults */
    fsb_student_opts_string(&so, buf, n);
    return st;
}

/* Point g_index of the cross product (mixed radix, the last key fastest) into buf, and its
 * canonical settings into canon (both FSB_STUDENT_SPEC_MAX bytes). */
static int grid_point(const grid_axes *g, long g_index, int feature, const char *flag, char *buf,
                      char *canon)
{
    const size_t cap = FSB_STUDENT_SPEC_MAX;
    int pick[MAX_ITEMS];
    long rest = g_index;
    for (int i = g->n - 1; i >= 0; i--) {
        pick[i] = (int)(rest % g->n_alt[i]);
        rest /= g->n_alt[i];
    }
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < g->n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%.*s=%.*s", i ? "," : "",
                                 (int)g->key_len[i], g->key[i], (int)g->alt_len[i][pick[i]],
                                 g->alt[i][pick[i]]);
    if (used >= cap || used > FSB_TUNE_POINT_NAME_MAX)
        return fsb_error(FSB_EINVAL,
                         "%s: the point '%.60s...' is longer than %d characters (it names a "
                         "folder); give only the keys that vary",
                         flag, buf, FSB_TUNE_POINT_NAME_MAX);
    if (!feature) return student_canonical(buf, canon, cap, flag);
    double C;
    int norm, st = fsb_tune_feature_point(buf, &C, &norm, flag);
    if (!st) snprintf(canon, cap, "C=%.17g,norm=%d", C, norm);
    return st;
}

int fsb_tune_expand(const char *grid, const char *method, const char *flag, char **points,
                    int *n_points)
{
    *n_points = 0;
    grid_axes g;
    int st = grid_parse(&g, grid, method, flag);
    if (st) return st;
    long total = 1;
    for (int i = 0; i < g.n; i++)
        if ((total *= g.n_alt[i]) > FSB_TUNE_MAX_POINTS)
            return fsb_error(FSB_EINVAL, "%s: more than %d grid points", flag, FSB_TUNE_MAX_POINTS);
    /* each point's canonical settings: points that spell the same settings differently
     * (0.01 and 0.010) are one point */
    char *canon[FSB_TUNE_MAX_POINTS];
    for (long i = 0; i < total && !st; i++) {
        char buf[FSB_STUDENT_SPEC_MAX], key_buf[FSB_STUDENT_SPEC_MAX];
        if ((st = grid_point(&g, i, feature_method(method), flag, buf, key_buf))) break;
        int dup = 0;
        for (int j = 0; j < *n_points && !dup; j++)
            dup = !strcmp(canon[j], key_buf);
        if (dup) continue;
        if (!(points[*n_points] = strdup(buf)) || !(canon[*n_points] = strdup(key_buf))) {
            free(points[*n_points]);
            st = fsb_error(FSB_ENOMEM, "out of memory");
            break;
        }
        (*n_points)++;
    }
    for (int j = 0; j < *n_points; j++)
        free(canon[j]);
    if (st) {
        for (int j = 0; j < *n_points; j++)
            free(points[j]);
        *n_points = 0;
    }
    return st;
}

/* Folder name of a grid point: the spec with '/' replaced, "defaults" when empty. */
static void point_dir(char *buf, size_t n, const char *point)
{
    snprintf(buf, n, "%s", *point ? point : "defaults");
    for (char *p = buf; *p; p++)
        if (*p == '/') *p = '_';
}

/* Cost order of a point: SGD steps, then the trained part (head < last < all); for svm and
 * logreg the smaller C (the stronger regularisation) counts as cheaper. */
static void point_cost(const char *point, const char *method, double *steps, int *adapt_rank)
{
    if (feature_method(method)) {
        int norm;
        fsb_tune_feature_point(point, steps, &norm, "grid"); /* checked by fsb_tune_expand */
        *adapt_rank = 0;
        return;
    }
    int refilled = !strcmp(method, "refilled");
    fsb_student_opts so;
    fsb_student_opts_default(&so);
    fsb_student_opts_parse(&so, point, "grid"); /* already checked by fsb_tune_expand */
    *steps = (double)so.stage2_steps + (refilled ? so.stage1_steps : 0);
    *adapt_rank = so.adapt == FSB_ADAPT_HEAD ? 0 : so.adapt == FSB_ADAPT_LAST ? 1 : 2;
}

typedef struct point_result {
    char *spec;                          /* the grid point (owned) */
    double mean[FSB_EPISODES_MAX_SHOTS]; /* mean accuracy per shot (fraction) */
    double ci[FSB_EPISODES_MAX_SHOTS];   /* its 95% CI */
    double overall;                      /* mean over shots */
    fsb_episode_record *recs;            /* its per_episode.csv (owned), for the pairing */
    size_t n_recs;                       /* rows in recs */
} point_result;

/* Mean and CI per shot of `method` in run folder dir; keeps the records in pr. */
static int read_point(const fsb_tune_opts *o, const char *dir, const char *method, point_result *pr)
{
    char *path = fsb_path_join(dir, "per_episode.csv");
    if (!path) return fsb_error(FSB_ENOMEM, "out of memory");
    fsb_episode_record *recs = NULL;
    fsb_summary_row *rows = NULL;
    size_t n = 0, nr = 0;
    int st = fsb_report_read_episodes(path, &recs, &n);
    if (!st) st = fsb_report_summarise(recs, n, &rows, &nr);
    pr->overall = 0.0;
    for (int s = 0; s < o->n_shots && !st; s++) {
        int found = 0;
        for (size_t i = 0; i < nr && !found; i++)
            if (rows[i].shot == o->shots[s] && !strcmp(rows[i].method, method)) {
                pr->mean[s] = rows[i].mean;
                pr->ci[s] = rows[i].ci95;
                found = 1;
            }
        if (!found)
            st = fsb_error(FSB_EFORMAT, "%s: no %s %d-shot rows", path, method, o->shots[s]);
        pr->overall += pr->mean[s] / o->n_shots;
    }
    pr->recs = recs;
    pr->n_recs = n;
    free(rows);
    free(path);
    return st;
}

/* acc(refilled) - acc(finetune) per shot over the episodes both points have; diff and ci
 * as fractions. */
static int pair_points(const fsb_tune_opts *o, const point_result *ref, const point_result *ft,
                       double *diff, double *ci)
{
    fsb_paired_row *rows = NULL;
    size_t n = ref->n_recs + ft->n_recs, nr = 0;
    fsb_episode_record *all = malloc(sizeof *all * (n + 1));
    if (!all) return fsb_error(FSB_ENOMEM, "out of memory");
    memcpy(all, ref->recs, sizeof *all * ref->n_recs);
    memcpy(all + ref->n_recs, ft->recs, sizeof *all * ft->n_recs);
    int st = fsb_report_paired(all, n, "refilled", &rows, &nr);
    for (int s = 0; s < o->n_shots && !st; s++) {
        int found = 0;
        for (size_t i = 0; i < nr && !found; i++)
            if (rows[i].shot == o->shots[s] && !strcmp(rows[i].method, "finetune")) {
                diff[s] = rows[i].mean_diff;
                ci[s] = rows[i].ci95;
                found = 1;
            }
        if (!found)
            st = fsb_error(FSB_EFORMAT, "tune: points '%s' and '%s' share no %d-shot episode",
                           ref->spec, ft->spec, o->shots[s]);
    }
    free(all);
    free(rows);
    return st;
}

/* The growing text of val_table.md or chosen.txt: cap bytes at buf, len used (len >= cap once
 * anything was cut). */
typedef struct text_buf {
    char *buf;  /* the text */
    size_t cap; /* its size */
    size_t len; /* characters written (or that would have been) */
} text_buf;

/* Append printf-style text to t (what does not fit is counted in t->len, not written). */
static void tb_printf(text_buf *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->len < t->cap ? t->cap - t->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0) t->len += (size_t)n;
}

/* Append the paired REFILLED - fine-tune section to the table (see tune.h). */
static int paired_section(const fsb_tune_opts *o, point_result *ref, int n_ref, point_result *ft,
                          int n_ft, text_buf *t)
{
    tb_printf(t, "\n## REFILLED − fine-tune, paired\n\nPercentage points over the "
                 "episodes both share (mean ± 95%% CI of the per-episode "
                 "differences); the fine-tune twin is the point without the "
                 "refilled-only keys.\n\n| refilled point | fine-tune point |");
    for (int s = 0; s < o->n_shots; s++)
        tb_printf(t, " %d-shot |", o->shots[s]);
    tb_printf(t, "\n|---|---|");
    for (int s = 0; s < o->n_shots; s++)
        tb_printf(t, "---|");
    tb_printf(t, "\n");
    for (int p = 0; p < n_ref && t->len < t->cap; p++) {
        char *twin[1] = {NULL};
        int nt = 0, st = fsb_tune_expand(ref[p].spec, "finetune", "grid", twin, &nt);
        if (st) return st; /* a single point, already checked */
        int q = 0;
        while (q < n_ft && strcmp(ft[q].spec, twin[0]))
            q++;
        free(twin[0]);
        if (q == n_ft) continue; /* its twin was not run (the grids differ) */
        double diff[FSB_EPISODES_MAX_SHOTS], ci[FSB_EPISODES_MAX_SHOTS];
        if ((st = pair_points(o, &ref[p], &ft[q], diff, ci))) return st;
        tb_printf(t, "| %s | %s |", *ref[p].spec ? ref[p].spec : "defaults",
                  *ft[q].spec ? ft[q].spec : "defaults");
        for (int s = 0; s < o->n_shots; s++) {
            char d[24];
            fsb_report_fmt_diff(d, sizeof d, 100 * diff[s]);
            tb_printf(t, " %s ± %.2f |", d, 100 * ci[s]);
        }
        tb_printf(t, "\n");
    }
    return FSB_OK;
}

/* The options fsb_tune needs before anything runs (see tune.h). */
static int tune_check(const fsb_tune_opts *o)
{
    if (!o->data) return fsb_error(FSB_EINVAL, "--data is required");
    if (!o->teacher) return fsb_error(FSB_EINVAL, "--teacher is required");
    int st = fsb_tune_split_check(o->split, "--split");
    if (st) return st;
    if (o->n_methods < 1 || o->n_methods > FSB_TUNE_MAX_METHODS)
        return fsb_error(FSB_EINVAL, "--methods: give 1 to %d of finetune, refilled, svm, logreg",
                         FSB_TUNE_MAX_METHODS);
    for (int m = 0; m < o->n_methods; m++) {
        if (!fsb_tune_method_ok(o->methods[m]))
            return fsb_error(FSB_EINVAL, "--methods: '%s' is not finetune, refilled, svm or logreg",
                             o->methods[m]);
        for (int j = 0; j < m; j++)
            if (!strcmp(o->methods[j], o->methods[m]))
                return fsb_error(FSB_EINVAL, "--methods: '%s' is given twice", o->methods[m]);
    }
    return FSB_OK;
}

/* Run `method` at grid point p (number `index` of `count`) into OUT/<method>/<point>/ (an
 * ordinary resumable run) and read its means into pr. */
static int run_point(const fsb_tune_opts *o, const char *method, int index, int count,
                     point_result *pr)
{
    char name[FSB_STUDENT_SPEC_MAX], rel[FSB_STUDENT_SPEC_MAX + 64];
    point_dir(name, sizeof name, pr->spec);
    snprintf(rel, sizeof rel, "%s/%s", method, name);
    char *dir = fsb_path_join(o->out, rel);
    if (!dir) return fsb_error(FSB_ENOMEM, "out of memory");
    if (o->log) fprintf(o->log, "tune: %s point %d/%d: %s\n", method, index + 1, count, pr->spec);
    fsb_run_opts ro;
    fsb_run_opts_default(&ro);
    ro.data = o->data;
    ro.split = o->split;
    ro.teacher = o->teacher;
    ro.out = dir;
    ro.cache_dir = o->cache_dir;
    ro.episodes = o->episodes;
    ro.way = o->way;
    ro.query = o->query;
    ro.n_shots = o->n_shots;
    memcpy(ro.shots, o->shots, sizeof ro.shots);
    ro.seed = o->seed;
    ro.n_methods = 1;
    ro.methods[0] = method;
    ro.threads = o->threads;
    ro.image_size = o->image_size;
    ro.resize = o->resize;
    ro.crop = o->crop;
    ro.arch = o->arch;
    int st = FSB_OK;
    if (feature_method(method))
        st = fsb_tune_feature_point(pr->spec, &ro.C, &ro.norm, "--grid");
    else
        ro.student = pr->spec;
    ro.progress = o->progress;
    ro.log = NULL;
    if (!st) st = fsb_run(&ro);
    if (!st) st = read_point(o, dir, method, pr);
    if (st) st = fsb_error_wrap(st, "tune %s point '%s'", method, pr->spec);
    free(dir);
    return st;
}

/* The headers of the table and of the choice. */
static void table_headers(const fsb_tune_opts *o, text_buf *t, text_buf *ch)
{
    tb_printf(t,
              "# Student hyper-parameters on the %s split (%ld episodes per "
              "shot, %d-way, %d queries, seed %llu)\n\nAccuracy %% (mean ± 95%% "
              "CI, 1.96·σ/√E, σ population std).\n\n| method | point |",
              o->split, o->episodes, o->way, o->query, (unsigned long long)o->seed);
    for (int s = 0; s < o->n_shots; s++)
        tb_printf(t, " %d-shot |", o->shots[s]);
    tb_printf(t, " mean over shots |\n|---|---|");
    for (int s = 0; s <= o->n_shots; s++)
        tb_printf(t, "---|");
    tb_printf(t, "\n");
    tb_printf(ch,
              "# best point per method on %s (mean accuracy over shots; ties: fewer "
              "steps, then adapt head < last < all; svm/logreg: smaller C)\n# method\tpoint\t"
              "mean%%\tcanonical --student, or --C/--norm\n",
              o->split);
}

/* One table row per point of `method`, and its chosen point: the best mean over shots, ties
 * to the cheaper point (point_cost), then to grid order. */
static void method_rows(const fsb_tune_opts *o, const char *method, point_result *res, int n_pts,
                        text_buf *t, text_buf *ch)
{
    int best = 0;
    for (int p = 0; p < n_pts; p++) {
        point_result *pr = &res[p];
        tb_printf(t, "| %s | %s |", method, *pr->spec ? pr->spec : "defaults");
        for (int s = 0; s < o->n_shots; s++)
            tb_printf(t, " %.2f ± %.2f |", 100 * pr->mean[s], 100 * pr->ci[s]);
        tb_printf(t, " %.2f |\n", 100 * pr->overall);
        if (p == 0) continue;
        point_result *b = &res[best];
        double sp, sb;
        int ap, ab;
        point_cost(pr->spec, method, &sp, &ap);
        point_cost(b->spec, method, &sb, &ab);
        if (pr->overall > b->overall ||
            (pr->overall == b->overall && (sp < sb || (sp == sb && ap < ab))))
            best = p;
    }
    char canon[FSB_STUDENT_SPEC_MAX];
    if (feature_method(method)) {
        double C;
        int norm;
        fsb_tune_feature_point(res[best].spec, &C, &norm, "grid");
        char cs[40] = "";
        if (C > 0) snprintf(cs, sizeof cs, "--C %g", C);
        snprintf(canon, sizeof canon, "%s%s%s", cs, norm >= 0 ? " --norm " : "",
                 norm >= 0 ? fsb_norm_name((fsb_norm)norm) : "");
    } else {
        student_canonical(res[best].spec, canon, sizeof canon, "grid");
    }
    tb_printf(ch, "%s\t%s\t%.2f\t%s\n", method, *res[best].spec ? res[best].spec : "defaults",
              100 * res[best].overall, canon);
}

/* OUT/val_table.md and OUT/chosen.txt (and both on o->log). */
static int write_tables(const fsb_tune_opts *o, const text_buf *t, const text_buf *ch)
{
    if (t->len >= t->cap || ch->len >= ch->cap)
        return fsb_error(FSB_EINVAL, "tune: table too large");
    char *tp = fsb_path_join(o->out, "val_table.md"), *cp = fsb_path_join(o->out, "chosen.txt");
    int st = FSB_OK;
    if (!tp || !cp) st = fsb_error(FSB_ENOMEM, "out of memory");
    if (!st) st = fsb_write_file(tp, t->buf, t->len);
    if (!st) st = fsb_write_file(cp, ch->buf, ch->len);
    if (!st && o->log) fprintf(o->log, "%s\n%s\nwrote %s and %s\n", t->buf, ch->buf, tp, cp);
    free(tp);
    free(cp);
    return st;
}

int fsb_tune(const fsb_tune_opts *o)
{
    int st = tune_check(o);
    if (st) return st;
    point_result res[FSB_TUNE_MAX_METHODS][FSB_TUNE_MAX_POINTS];
    int n_pts[FSB_TUNE_MAX_METHODS] = {0};
    memset(res, 0, sizeof res);
    char *pts[FSB_TUNE_MAX_POINTS];
    for (int m = 0; m < o->n_methods && !st; m++) {
        const char *grid = o->grid ? o->grid : fsb_tune_default_grid(o->methods[m]);
        if ((st = fsb_tune_expand(grid, o->methods[m], "--grid", pts, &n_pts[m]))) break;
        for (int p = 0; p < n_pts[m]; p++)
            res[m][p].spec = pts[p];
    }
    size_t cap = 1 << 20; /* > (4 methods + pairs) x 64 points x (spec + 6 shots) */
    text_buf table = {NULL, cap, 0}, chosen = {NULL, cap, 0};
    if (!st && (!(table.buf = malloc(cap)) || !(chosen.buf = malloc(cap))))
        st = fsb_error(FSB_ENOMEM, "out of memory");
    /* every (method, point) run, resumable like any run */
    for (int m = 0; m < o->n_methods && !st; m++)
        for (int p = 0; p < n_pts[m] && !st; p++)
            st = run_point(o, o->methods[m], p, n_pts[m], &res[m][p]);
    if (st) goto done;
    /* the table and the choice */
    table_headers(o, &table, &chosen);
    for (int m = 0; m < o->n_methods; m++)
        method_rows(o, o->methods[m], res[m], n_pts[m], &table, &chosen);
    int mf = -1, mr = -1;
    for (int m = 0; m < o->n_methods; m++) {
        if (!strcmp(o->methods[m], "finetune")) mf = m;
        if (!strcmp(o->methods[m], "refilled")) mr = m;
    }
    if (mf >= 0 && mr >= 0 &&
        (st = paired_section(o, res[mr], n_pts[mr], res[mf], n_pts[mf], &table)))
        goto done;
    st = write_tables(o, &table, &chosen);
done:
    for (int m = 0; m < FSB_TUNE_MAX_METHODS; m++)
        for (int p = 0; p < n_pts[m]; p++) {
            free(res[m][p].spec);
            free(res[m][p].recs);
        }
    free(table.buf);
    free(chosen.buf);
    return st;
}
