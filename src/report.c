/* report.c - per_episode.csv and everything derived from it (see report.h): summary,
 * paired differences, the comparison table against the paper, the accuracy-vs-shots plot.
 * Derived files depend only on (method, shot, episode, n_correct, n_query) of each record,
 * visited in one canonical order, so rebuilding from the CSV reproduces them byte for byte.
 */
#include "fsb/report.h"
#include "fsb/dataset.h"
#include "fsb/fileio.h"
#include "fsb/plot.h"
#include "fsb/status.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char episodes_header[] =
    "episode,shot,method,n_correct,n_query,accuracy,fit_ms,predict_ms";

/* The paper's middle-shot table: REFILLED (Ye et al.), MiniImageNet 5-way accuracy %, as
 * transcribed in docs/protocol.md ("The paper's middle-shot table"), rows in the paper's order
 * (the order of a table's rows). Episode count not stated; its 1NN 5-shot value equals
 * MAML's and may be a transcription slip; MAML has no 10- and 30-shot values (negative).
 * `ours` is our method name. */
static const int paper_shots[4] = {1, 5, 10, 30};
static const struct {
    const char *ours;  /* fsbench method name */
    const char *paper; /* the paper's row label */
    double acc[4];     /* at paper_shots; < 0: no value */
} paper_rows[] = {
    {"1nn", "1NN", {49.73, 63.11, 66.56, 69.80}},
    {"svm", "SVM", {51.61, 69.17, 74.24, 77.87}},
    {"finetune", "Fine-Tune", {45.89, 68.61, 74.95, 78.62}},
    {"maml", "MAML", {48.70, 63.11, -1.0, -1.0}},
    {"protonet", "ProtoNet", {51.79, 70.38, 74.42, 78.10}},
    {"feat", "FEAT", {55.15, 71.61, 74.86, 78.84}},
    {"refilled-conv4", "REFILLED (ConvNet backbone)", {53.44, 70.60, 75.37, 78.94}},
    {"refilled-res12", "REFILLED (ResNet backbone)", {54.82, 71.97, 76.42, 80.33}},
};
static const int n_paper_rows = (int)(sizeof paper_rows / sizeof paper_rows[0]);

/* Methods with a place in the record order before all others (paper rows, then ours). The
 * names here keep their relative order (per_episode.csv and summary.csv of committed runs
 * follow it); a new name may go anywhere no committed run has it. */
static const char *const method_order[] = {"1nn",      "svm",   "finetune",       "maml",
                                           "protonet", "feat",  "refilled-res12", "refilled-conv4",
                                           "refilled", "logreg"};
static const int n_method_order = (int)(sizeof method_order / sizeof method_order[0]);

static int method_rank(const char *m)
{
    for (int i = 0; i < n_method_order; i++)
        if (strcmp(m, method_order[i]) == 0) return i;
    return n_method_order;
}

int fsb_report_method_cmp(const char *a, const char *b)
{
    int ra = method_rank(a), rb = method_rank(b);
    if (ra != rb) return ra < rb ? -1 : 1;
    return strcmp(a, b);
}

static int valid_method_name(const char *s)
{
    if (!*s || strlen(s) >= FSB_METHOD_NAME_MAX) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '+' || *s == '-'))
            return 0;
    return 1;
}

void fsb_stats_mean_ci(const double *x, size_t n, double *mean, double *std, double *ci95)
{
    assert(n >= 1);
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    double m = s / (double)n, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    double sd = sqrt(ss / (double)n);
    *mean = m;
    *std = sd;
    *ci95 = 1.96 * sd / sqrt((double)n);
}

/* ---- per_episode.csv ---------------------------------------------------------------- */

int fsb_report_write_episodes(const char *path, const fsb_episode_record *recs, size_t n)
{
    fsb_outfile f;
    int st = fsb_outfile_open(&f, path);
    if (st) return st;
    fprintf(f.fp, "%s\n", episodes_header);
    for (size_t i = 0; i < n; i++) {
        const fsb_episode_record *r = &recs[i];
        assert(valid_method_name(r->method) && r->n_query > 0);
        fprintf(f.fp, "%lld,%d,%s,%d,%d,%.6f,%.3f,%.3f\n", (long long)r->episode, r->shot,
                r->method, r->n_correct, r->n_query, (double)r->n_correct / r->n_query, r->fit_ms,
                r->predict_ms);
    }
    return fsb_outfile_commit(&f);
}

static int parse_i64(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_nonneg(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < 0) return -1;
    *out = v;
    return 0;
}

typedef struct {
    const fsb_episode_record *r; /* the record */
    size_t line;                 /* its CSV line (0 when not from a file) */
} rec_ref;

static int cmp_rec(const void *pa, const void *pb)
{
    const fsb_episode_record *a = ((const rec_ref *)pa)->r, *b = ((const rec_ref *)pb)->r;
    int c = fsb_report_method_cmp(a->method, b->method);
    if (c) return c;
    if (a->shot != b->shot) return a->shot < b->shot ? -1 : 1;
    return (a->episode > b->episode) - (a->episode < b->episode);
}

/* The records in canonical order (method, shot, episode); malloc'd. */
static rec_ref *sorted_refs(const fsb_episode_record *recs, size_t n, const size_t *lines)
{
    rec_ref *refs = malloc(sizeof *refs * (n ? n : 1));
    if (!refs) return NULL;
    for (size_t i = 0; i < n; i++)
        refs[i] = (rec_ref){&recs[i], lines ? lines[i] : 0};
    qsort(refs, n, sizeof *refs, cmp_rec);
    return refs;
}

/* Fill r from the 8 fields of a row; NULL, or `why` saying what is wrong (with the value). */
static const char *parse_row(fsb_episode_record *r, char *const field[8], char *why, size_t n)
{
    long long v;
    double acc;
    memset(r, 0, sizeof *r);
#define BAD(i, text)                                                                               \
    do {                                                                                           \
        snprintf(why, n, "%s: '%.60s'", text, field[i]);                                           \
        return why;                                                                                \
    } while (0)
    if (parse_i64(field[0], 0, INT64_MAX, &v)) BAD(0, "episode (a whole number >= 0)");
    r->episode = v;
    if (parse_i64(field[1], 1, 1000000, &v)) BAD(1, "shot (a whole number >= 1)");
    r->shot = (int)v;
    if (!valid_method_name(field[2])) BAD(2, "method (1-47 characters of A-Z a-z 0-9 _ . + -)");
    snprintf(r->method, sizeof r->method, "%s", field[2]);
    if (parse_i64(field[4], 1, 100000000, &v)) BAD(4, "n_query (a whole number >= 1)");
    r->n_query = (int)v;
    if (parse_i64(field[3], 0, r->n_query, &v))
        BAD(3, "n_correct (a whole number in [0, n_query])");
    r->n_correct = (int)v;
    r->accuracy = (double)r->n_correct / r->n_query;
    if (parse_nonneg(field[5], &acc)) BAD(5, "accuracy (a number)");
    if (fabs(acc - r->accuracy) > 1e-6) BAD(5, "accuracy (must equal n_correct / n_query)");
    if (parse_nonneg(field[6], &r->fit_ms)) BAD(6, "fit_ms (a number >= 0)");
    if (parse_nonneg(field[7], &r->predict_ms)) BAD(7, "predict_ms (a number >= 0)");
#undef BAD
    return NULL;
}

int fsb_report_read_episodes(const char *path, fsb_episode_record **recs_out, size_t *n_out)
{
    char *text = NULL;
    size_t size, n = 0, cap = 0;
    fsb_episode_record *recs = NULL;
    size_t *lines = NULL;
    rec_ref *refs = NULL;
    *recs_out = NULL;
    *n_out = 0;
    int st = fsb_read_file(path, (void **)&text, &size);
    if (st) return st;
    if (strlen(text) != size) {
        st = fsb_error(FSB_EFORMAT, "%s: contains a NUL byte", path);
        goto done;
    }
    char *p = text;
    size_t line = 0;
    while (*p) {
        line++;
        char *eol = strchr(p, '\n');
        char *next = eol ? eol + 1 : p + strlen(p);
        if (eol) *eol = '\0';
        size_t len = strlen(p);
        if (len && p[len - 1] == '\r') p[--len] = '\0';
        if (line == 1) {
            if (strcmp(p, episodes_header) != 0) {
                st = fsb_error(FSB_EFORMAT, "%s:1: header is '%s', expected '%s'", path, p,
                               episodes_header);
                goto done;
            }
            p = next;
            continue;
        }
        if (len == 0) {
            st = fsb_error(FSB_EFORMAT, "%s:%zu: empty line", path, line);
            goto done;
        }
        char *field[9];
        int nf = 0;
        for (char *f = p;;) {
            if (nf == 9) break;
            field[nf++] = f;
            char *comma = strchr(f, ',');
            if (!comma) break;
            *comma = '\0';
            f = comma + 1;
        }
        if (nf != 8) {
            st = fsb_error(FSB_EFORMAT, "%s:%zu: %s%d fields, expected 8 (%s)", path, line,
                           nf > 8 ? "more than " : "", nf > 8 ? 8 : nf, episodes_header);
            goto done;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            void *nr = realloc(recs, sizeof *recs * cap), *nl = realloc(lines, sizeof *lines * cap);
            if (nr) recs = nr;
            if (nl) lines = nl;
            if (!nr || !nl) {
                st = fsb_error(FSB_ENOMEM, "%s: out of memory", path);
                goto done;
            }
        }
        fsb_episode_record *r = &recs[n];
        char why[160];
        const char *what = parse_row(r, field, why, sizeof why);
        if (what) {
            st = fsb_error(FSB_EFORMAT, "%s:%zu: bad %s", path, line, what);
            goto done;
        }
        lines[n++] = line;
        p = next;
    }
    if (line == 0) {
        st = fsb_error(FSB_EFORMAT, "%s: empty file (expected the header '%s')", path,
                       episodes_header);
        goto done;
    }
    refs = sorted_refs(recs, n, lines);
    if (!refs) {
        st = fsb_error(FSB_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 1; i < n; i++)
        if (cmp_rec(&refs[i - 1], &refs[i]) == 0) {
            size_t a = refs[i - 1].line, b = refs[i].line;
            st = fsb_error(FSB_EFORMAT,
                           "%s:%zu: duplicate of line %zu (method %s, shot %d, "
                           "episode %lld)",
                           path, a > b ? a : b, a > b ? b : a, refs[i].r->method, refs[i].r->shot,
                           (long long)refs[i].r->episode);
            goto done;
        }
    *recs_out = recs;
    *n_out = n;
    recs = NULL;
done:
    free(refs);
    free(lines);
    free(recs);
    free(text);
    return st;
}

/* ---- statistics --------------------------------------------------------------------- */

/* End of the group of records with refs[i]'s (method, shot), refs in canonical order. */
static size_t group_end(const rec_ref *refs, size_t n, size_t i)
{
    size_t j = i;
    while (j < n && refs[j].r->shot == refs[i].r->shot &&
           strcmp(refs[j].r->method, refs[i].r->method) == 0)
        j++;
    return j;
}

int fsb_report_summarise(const fsb_episode_record *recs, size_t n, fsb_summary_row **rows_out,
                         size_t *n_rows)
{
    *rows_out = NULL;
    *n_rows = 0;
    rec_ref *refs = sorted_refs(recs, n, NULL);
    double *acc = malloc(sizeof *acc * (n ? n : 1));
    fsb_summary_row *rows = malloc(sizeof *rows * (n ? n : 1));
    int st = FSB_OK;
    if (!refs || !acc || !rows) {
        st = fsb_error(FSB_ENOMEM, "summary: out of memory");
        goto done;
    }
    size_t nr = 0;
    for (size_t i = 0; i < n;) {
        size_t j = group_end(refs, n, i);
        const fsb_episode_record *a = refs[i].r;
        for (size_t k = i; k < j; k++)
            acc[k - i] = (double)refs[k].r->n_correct / refs[k].r->n_query;
        fsb_summary_row *row = &rows[nr++];
        memset(row, 0, sizeof *row);
        snprintf(row->method, sizeof row->method, "%s", a->method);
        row->shot = a->shot;
        row->episodes = (int64_t)(j - i);
        fsb_stats_mean_ci(acc, j - i, &row->mean, &row->std, &row->ci95);
        for (size_t k = i; k < j; k++) {
            row->fit_ms += refs[k].r->fit_ms;
            row->predict_ms += refs[k].r->predict_ms;
        }
        row->fit_ms /= (double)(j - i);
        row->predict_ms /= (double)(j - i);
        i = j;
    }
    *rows_out = rows;
    *n_rows = nr;
    rows = NULL;
done:
    free(rows);
    free(acc);
    free(refs);
    return st;
}

static int is_refilled(const char *m)
{
    return strcmp(m, "refilled") == 0 || strncmp(m, "refilled-", 9) == 0;
}

const char *fsb_report_reference(const fsb_episode_record *recs, size_t n, const char *fallback)
{
    const char *best_refilled = NULL, *first = NULL;
    int have_fallback = 0;
    for (size_t i = 0; i < n; i++) {
        const char *m = recs[i].method;
        if (!first || fsb_report_method_cmp(m, first) < 0) first = m;
        if (is_refilled(m) && (!best_refilled || fsb_report_method_cmp(m, best_refilled) < 0))
            best_refilled = m;
        if (fallback && strcmp(m, fallback) == 0) have_fallback = 1;
    }
    if (best_refilled) return best_refilled;
    if (have_fallback) return fallback;
    return first;
}

int fsb_report_paired(const fsb_episode_record *recs, size_t n, const char *reference,
                      fsb_paired_row **rows_out, size_t *n_rows)
{
    *rows_out = NULL;
    *n_rows = 0;
    rec_ref *refs = sorted_refs(recs, n, NULL);
    double *diff = malloc(sizeof *diff * (n ? n : 1));
    fsb_paired_row *rows = malloc(sizeof *rows * (n ? n : 1));
    int st = FSB_OK;
    if (!refs || !diff || !rows) {
        st = fsb_error(FSB_ENOMEM, "paired differences: out of memory");
        goto done;
    }
    /* groups [start, end) of equal (method, shot) in canonical order */
    size_t nr = 0;
    for (size_t i = 0; i < n;) {
        size_t j = group_end(refs, n, i);
        const char *m = refs[i].r->method;
        int shot = refs[i].r->shot;
        if (reference && strcmp(m, reference) != 0) {
            /* find the reference's group at this shot (linear scan: few groups) */
            size_t a = 0;
            while (a < n && !(refs[a].r->shot == shot && strcmp(refs[a].r->method, reference) == 0))
                a++;
            size_t k = 0, x = a, y = i;
            while (a < n && x < n && y < j && refs[x].r->shot == shot &&
                   strcmp(refs[x].r->method, reference) == 0) {
                const fsb_episode_record *ra = refs[x].r, *rb = refs[y].r;
                if (ra->episode < rb->episode)
                    x++;
                else if (ra->episode > rb->episode)
                    y++;
                else {
                    diff[k++] =
                        (double)ra->n_correct / ra->n_query - (double)rb->n_correct / rb->n_query;
                    x++;
                    y++;
                }
            }
            if (k > 0) {
                fsb_paired_row *row = &rows[nr++];
                memset(row, 0, sizeof *row);
                row->shot = shot;
                snprintf(row->reference, sizeof row->reference, "%s", reference);
                snprintf(row->method, sizeof row->method, "%s", m);
                row->episodes = (int64_t)k;
                fsb_stats_mean_ci(diff, k, &row->mean_diff, &row->std, &row->ci95);
            }
        }
        i = j;
    }
    /* order by (shot, method) */
    for (size_t a = 1; a < nr; a++) /* insertion sort: stable and small */
        for (size_t b = a; b > 0; b--) {
            fsb_paired_row *p = &rows[b - 1], *q = &rows[b];
            int c = p->shot != q->shot ? (p->shot > q->shot ? 1 : -1)
                                       : fsb_report_method_cmp(p->method, q->method);
            if (c <= 0) break;
            fsb_paired_row t = *p;
            *p = *q;
            *q = t;
        }
    *rows_out = rows;
    *n_rows = nr;
    rows = NULL;
done:
    free(rows);
    free(diff);
    free(refs);
    return st;
}

double fsb_report_paper_value(const char *method, int shot)
{
    for (int i = 0; i < n_paper_rows; i++)
        if (strcmp(paper_rows[i].ours, method) == 0)
            for (int k = 0; k < 4; k++)
                if (paper_shots[k] == shot) return paper_rows[i].acc[k];
    return -1.0;
}

/* The paper row of our method: plain "refilled" takes the row of the run's backbone. */
static const char *paper_key(const char *method, const char *backbone)
{
    if (backbone && strcmp(method, "refilled") == 0) {
        if (strcmp(backbone, "conv4") == 0) return "refilled-conv4";
        if (strcmp(backbone, "res12") == 0) return "refilled-res12";
    }
    return method;
}

static const char *paper_label(const char *method)
{
    for (int i = 0; i < n_paper_rows; i++)
        if (strcmp(paper_rows[i].ours, method) == 0) return paper_rows[i].paper;
    return NULL;
}

/* ---- tables ------------------------------------------------------------------------- */

/* One row of a table: a method of the run, or a paper row that no method of the run is
 * compared with. */
typedef struct {
    const char *method; /* our method name, or the paper row's key */
    int ran;            /* 1: a method of the run; 0: the paper's value only, "not run here" */
} table_row;

/* A row's place: the position of the paper row it is compared with, else after them all. */
static int display_rank(const char *method, const char *paper)
{
    const char *key = paper_key(method, paper);
    for (int i = 0; i < n_paper_rows; i++)
        if (strcmp(paper_rows[i].ours, key) == 0) return i;
    return n_paper_rows;
}

/* Distinct methods (report order, as rows are sorted) and shots (ascending) of rows. */
typedef struct {
    const char **methods; /* [n_methods] pointers into rows */
    int n_methods;        /* distinct methods */
    int *shots;           /* [n_shots] ascending */
    int n_shots;          /* distinct shots */
    int64_t e_min, e_max; /* smallest and largest episode count of a cell */
    table_row *plan;      /* [n_rows] the table's rows (plan_rows) */
    int n_rows;
} table_axes;

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The rows of a table into rows (room for ax->n_methods + n_paper_rows): without the paper's
 * columns the run's methods in report order; with them every row of the paper's table in the
 * paper's order, each either the run's method compared with it or, when the run has none and
 * the paper has a value at one of the table's shots, the paper's value alone (ran 0), then
 * the run's other methods in report order. */
/* 1 when the paper has a value for paper row `key` at one of the table's shots. */
static int paper_has_value(const char *key, const table_axes *ax)
{
    for (int k = 0; k < ax->n_shots; k++)
        if (fsb_report_paper_value(key, ax->shots[k]) >= 0) return 1;
    return 0;
}

static int plan_rows(const table_axes *ax, const char *paper, table_row *rows)
{
    int n = 0;
    if (!paper) {
        for (int j = 0; j < ax->n_methods; j++)
            rows[n++] = (table_row){ax->methods[j], 1};
        return n;
    }
    for (int i = 0; i <= n_paper_rows; i++) {
        int covered = 0;
        for (int j = 0; j < ax->n_methods; j++)
            if (display_rank(ax->methods[j], paper) == i) {
                rows[n++] = (table_row){ax->methods[j], 1};
                covered = 1;
            }
        if (i < n_paper_rows && !covered && paper_has_value(paper_rows[i].ours, ax))
            rows[n++] = (table_row){paper_rows[i].ours, 0};
    }
    return n;
}

static int axes_init(table_axes *ax, const fsb_summary_row *rows, size_t n, const char *paper)
{
    memset(ax, 0, sizeof *ax);
    ax->methods = malloc(sizeof *ax->methods * (n ? n : 1));
    ax->shots = malloc(sizeof *ax->shots * (n ? n : 1));
    ax->plan = malloc(sizeof *ax->plan * (n + (size_t)n_paper_rows));
    if (!ax->methods || !ax->shots || !ax->plan) {
        free(ax->methods);
        free(ax->shots);
        free(ax->plan);
        return fsb_error(FSB_ENOMEM, "table: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(rows[i].method, rows[i - 1].method) != 0)
            ax->methods[ax->n_methods++] = rows[i].method;
        int seen = 0;
        for (int k = 0; k < ax->n_shots; k++)
            seen |= ax->shots[k] == rows[i].shot;
        if (!seen) ax->shots[ax->n_shots++] = rows[i].shot;
        if (i == 0 || rows[i].episodes < ax->e_min) ax->e_min = rows[i].episodes;
        if (i == 0 || rows[i].episodes > ax->e_max) ax->e_max = rows[i].episodes;
    }
    qsort(ax->shots, (size_t)ax->n_shots, sizeof *ax->shots, cmp_int);
    ax->n_rows = plan_rows(ax, paper, ax->plan);
    return FSB_OK;
}

static void axes_free(table_axes *ax)
{
    free(ax->methods);
    free(ax->shots);
    free(ax->plan);
}

static const fsb_summary_row *find_cell(const fsb_summary_row *rows, size_t n, const char *m,
                                        int shot)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].shot == shot && strcmp(rows[i].method, m) == 0) return &rows[i];
    return NULL;
}

void fsb_report_fmt_diff(char *buf, size_t n, double d)
{
    long long c = llround(d * 100.0);
    snprintf(buf, n, "%c%lld.%02lld", c < 0 ? '-' : '+', llabs(c) / 100, llabs(c) % 100);
}

/* 1 when the paper's value lies outside our mean ± CI (the table marks the Δ with †). */
static int paper_outside(const fsb_summary_row *c, double paper_acc)
{
    return fabs(100.0 * c->mean - paper_acc) > 100.0 * c->ci95;
}

static void episodes_text(char *buf, size_t n, const table_axes *ax)
{
    if (ax->e_min == ax->e_max)
        snprintf(buf, n, "%lld", (long long)ax->e_min);
    else
        snprintf(buf, n, "%lld to %lld, see summary.csv", (long long)ax->e_min,
                 (long long)ax->e_max);
}

static const char default_title[] = "Few-shot accuracy (%) on frozen-teacher episodes, "
                                    "fsbench vs the paper";
static const char default_title_no_paper[] = "Few-shot accuracy (%), fsbench";

int fsb_report_table_md(const fsb_summary_row *rows, size_t n, const char *title, const char *paper,
                        const char *models, char **out)
{
    table_axes ax;
    int st = axes_init(&ax, rows, n, paper);
    if (st) return st;
    size_t len;
    FILE *fp = open_memstream(out, &len);
    if (!fp) {
        axes_free(&ax);
        return fsb_error(FSB_ENOMEM, "table.md: out of memory");
    }
    int with_paper = paper != NULL;
    fprintf(fp, "# %s\n\n| method |",
            title        ? title
            : with_paper ? default_title
                         : default_title_no_paper);
    for (int k = 0; k < ax.n_shots; k++)
        fprintf(fp, with_paper ? " %d-shot | paper | Δ |" : " %d-shot |", ax.shots[k]);
    fprintf(fp, "\n|---|");
    for (int k = 0; k < ax.n_shots; k++)
        fprintf(fp, with_paper ? "---:|---:|---:|" : "---:|");
    fprintf(fp, "\n");
    for (int i = 0; i < ax.n_rows; i++) {
        const char *m = ax.plan[i].method;
        fprintf(fp, ax.plan[i].ran ? "| %s |" : "| %s (not run here) |", m);
        for (int k = 0; k < ax.n_shots; k++) {
            const fsb_summary_row *c = ax.plan[i].ran ? find_cell(rows, n, m, ax.shots[k]) : NULL;
            double paper_acc = fsb_report_paper_value(paper_key(m, paper), ax.shots[k]);
            char d[32] = "–";
            if (c)
                fprintf(fp, " %.2f ± %.2f |", 100.0 * c->mean, 100.0 * c->ci95);
            else
                fprintf(fp, " – |");
            if (!with_paper) continue;
            if (paper_acc >= 0)
                fprintf(fp, " %.2f |", paper_acc);
            else
                fprintf(fp, " – |");
            if (c && paper_acc >= 0) fsb_report_fmt_diff(d, sizeof d, 100.0 * c->mean - paper_acc);
            fprintf(fp, " %s%s |", d,
                    c && paper_acc >= 0 && paper_outside(c, paper_acc) ? " †" : "");
        }
        fprintf(fp, "\n");
    }
    char e[96];
    episodes_text(e, sizeof e, &ax);
    fprintf(fp,
            "\nAccuracy in %%, mean ± 95%% confidence interval over the episodes of each "
            "cell (E = %s); CI = 1.96·σ/√E with σ the population standard deviation (ddof 0) of "
            "the per-episode accuracies.%s\n",
            e,
            with_paper ? " Δ = ours − paper; † = the paper's value lies outside our mean ± CI."
                       : "");
    if (!with_paper) {
        fprintf(fp, "The paper's numbers are for the canonical MiniImageNet test split and are "
                    "not shown for this dataset.\n");
        goto md_done;
    }
    fprintf(fp, "Paper: the REFILLED paper's middle-shot table (MiniImageNet, 5-way; "
                "episode count not stated; its 1NN 5-shot value equals MAML's and may be a "
                "transcription slip).");
    int mapped = 0;
    for (int i = 0; i < ax.n_rows; i++) {
        const char *lab = paper_label(paper_key(ax.plan[i].method, paper));
        if (!lab) continue;
        fprintf(fp, "%s%s = %s", mapped ? ", " : " Rows: ", ax.plan[i].method, lab);
        mapped = 1;
    }
    fprintf(fp, "%s\n", mapped ? "." : "");
md_done:
    if (models) fprintf(fp, "%s\n", models); /* rows with their own model (bench run --model) */
    if (fclose(fp)) {
        axes_free(&ax);
        free(*out);
        *out = NULL;
        return fsb_error(FSB_ENOMEM, "table.md: out of memory");
    }
    axes_free(&ax);
    return FSB_OK;
}

/* Free text (a user's title) with LaTeX's special characters escaped. */
static void tex_text(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (strchr("%&#_${}", *s)) {
            fputc('\\', fp);
            fputc(*s, fp);
        } else if (*s == '\\') {
            fputs("\\textbackslash{}", fp);
        } else if (*s == '~' || *s == '^') {
            fprintf(fp, "\\%c{}", *s);
        } else {
            fputc(*s, fp);
        }
    }
}

/* Method names are [A-Za-z0-9_.+-]: only '_' needs escaping in LaTeX text. */
static void tex_name(FILE *fp, const char *s)
{
    for (; *s; s++)
        if (*s == '_')
            fputs("\\_", fp);
        else
            fputc(*s, fp);
}

int fsb_report_table_tex(const fsb_summary_row *rows, size_t n, const char *title,
                         const char *paper, const char *models, char **out)
{
    table_axes ax;
    int st = axes_init(&ax, rows, n, paper);
    if (st) return st;
    size_t len;
    FILE *fp = open_memstream(out, &len);
    if (!fp) {
        axes_free(&ax);
        return fsb_error(FSB_ENOMEM, "table.tex: out of memory");
    }
    char e[96];
    episodes_text(e, sizeof e, &ax);
    int with_paper = paper != NULL;
    fprintf(fp, "%% table.tex - generated by fsbench from per_episode.csv; needs "
                "\\usepackage{booktabs}\n");
    fprintf(fp, "\\begin{table}[t]\n\\centering\n\\caption{");
    if (title)
        tex_text(fp, title);
    else
        fputs("Few-shot accuracy (\\%) on frozen-teacher episodes", fp);
    fprintf(
        fp,
        ". Mean $\\pm$ 95\\%% CI over "
        "the episodes of each cell ($E$ = %s), CI $= 1.96\\,\\sigma/\\sqrt{E}$ with $\\sigma$ the "
        "population standard deviation (ddof 0)%s}\n",
        e,
        with_paper ? "; paper: the REFILLED paper's middle-shot table (MiniImageNet, 5-way, "
                     "episode count not stated); $\\Delta$ = ours $-$ paper, $^\\dagger$: the "
                     "paper's value lies outside our mean $\\pm$ CI."
                   : ".");
    fprintf(fp, "\\begin{tabular}{l");
    for (int k = 0; k < ax.n_shots; k++)
        fprintf(fp, with_paper ? "rrr" : "r");
    fprintf(fp, "}\n\\toprule\nmethod");
    for (int k = 0; k < ax.n_shots; k++)
        fprintf(fp, with_paper ? " & \\multicolumn{3}{c}{%d-shot}" : " & %d-shot", ax.shots[k]);
    fprintf(fp, " \\\\\n");
    if (with_paper) {
        for (int k = 0; k < ax.n_shots; k++)
            fprintf(fp, " & ours & paper & $\\Delta$");
        fprintf(fp, " \\\\\n");
    }
    fprintf(fp, "\\midrule\n");
    for (int i = 0; i < ax.n_rows; i++) {
        const char *m = ax.plan[i].method;
        tex_name(fp, m);
        if (!ax.plan[i].ran) fprintf(fp, " (not run here)");
        for (int k = 0; k < ax.n_shots; k++) {
            const fsb_summary_row *c = ax.plan[i].ran ? find_cell(rows, n, m, ax.shots[k]) : NULL;
            double paper_acc = fsb_report_paper_value(paper_key(m, paper), ax.shots[k]);
            if (c)
                fprintf(fp, " & %.2f $\\pm$ %.2f", 100.0 * c->mean, 100.0 * c->ci95);
            else
                fprintf(fp, " & --");
            if (!with_paper) continue;
            if (paper_acc >= 0)
                fprintf(fp, " & %.2f", paper_acc);
            else
                fprintf(fp, " & --");
            if (c && paper_acc >= 0) {
                char d[32];
                fsb_report_fmt_diff(d, sizeof d, 100.0 * c->mean - paper_acc);
                fprintf(fp, " & $%s%s$", d, paper_outside(c, paper_acc) ? "^\\dagger" : "");
            } else {
                fprintf(fp, " & --");
            }
        }
        fprintf(fp, " \\\\\n");
    }
    fprintf(fp, "\\bottomrule\n\\end{tabular}\n");
    if (models) { /* rows with their own model (bench run --model) */
        fprintf(fp, "\\par\\smallskip{\\footnotesize ");
        tex_text(fp, models);
        fprintf(fp, "}\n");
    }
    fprintf(fp, "\\end{table}\n");
    if (fclose(fp)) {
        axes_free(&ax);
        free(*out);
        *out = NULL;
        return fsb_error(FSB_ENOMEM, "table.tex: out of memory");
    }
    axes_free(&ax);
    return FSB_OK;
}

/* ---- files -------------------------------------------------------------------------- */

/* Open dir/name as an atomic output file. */
static int open_in(fsb_outfile *f, const char *dir, const char *name)
{
    char *path = fsb_path_join(dir, name);
    if (!path) return fsb_error(FSB_ENOMEM, "%s: out of memory", name);
    int st = fsb_outfile_open(f, path);
    free(path);
    return st;
}

static int write_summary(const char *dir, const fsb_summary_row *rows, size_t n)
{
    fsb_outfile f;
    int st = open_in(&f, dir, "summary.csv");
    if (st) return st;
    fprintf(f.fp, "# accuracy as a fraction; std = population standard deviation (ddof 0) of "
                  "the per-episode accuracies; ci95 = 1.96 * std / sqrt(episodes)\n");
    fprintf(f.fp, "method,shot,episodes,mean,ci95,std\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f.fp, "%s,%d,%lld,%.6f,%.6f,%.6f\n", rows[i].method, rows[i].shot,
                (long long)rows[i].episodes, rows[i].mean, rows[i].ci95, rows[i].std);
    return fsb_outfile_commit(&f);
}

static int write_timing(const char *dir, const fsb_summary_row *rows, size_t n)
{
    fsb_outfile f;
    int st = open_in(&f, dir, "timing.csv");
    if (st) return st;
    fprintf(f.fp, "# mean milliseconds per episode on the machine that ran each episode (fit = "
                  "training or fitting on the support set, predict = the queries); total_s = "
                  "the cell's summed fit + predict seconds (work, not wall time: workers run "
                  "in parallel)\n");
    fprintf(f.fp, "method,shot,episodes,fit_ms,predict_ms,total_s\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f.fp, "%s,%d,%lld,%.3f,%.3f,%.1f\n", rows[i].method, rows[i].shot,
                (long long)rows[i].episodes, rows[i].fit_ms, rows[i].predict_ms,
                (rows[i].fit_ms + rows[i].predict_ms) * (double)rows[i].episodes / 1000.0);
    return fsb_outfile_commit(&f);
}

static int write_paired(const char *dir, const fsb_paired_row *rows, size_t n)
{
    fsb_outfile f;
    int st = open_in(&f, dir, "paired.csv");
    if (st) return st;
    fprintf(f.fp, "# mean_diff = mean over the episodes both methods have of accuracy(reference) "
                  "- accuracy(method), as a fraction; std = population standard deviation "
                  "(ddof 0) of those differences; ci95 = 1.96 * std / sqrt(episodes)\n");
    fprintf(f.fp, "shot,reference,method,episodes,mean_diff,ci95,std\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f.fp, "%d,%s,%s,%lld,%.6f,%.6f,%.6f\n", rows[i].shot, rows[i].reference,
                rows[i].method, (long long)rows[i].episodes, rows[i].mean_diff, rows[i].ci95,
                rows[i].std);
    return fsb_outfile_commit(&f);
}

static int write_string(const char *dir, const char *name, const char *text)
{
    char *path = fsb_path_join(dir, name);
    if (!path) return fsb_error(FSB_ENOMEM, "%s: out of memory", name);
    int st = fsb_write_file(path, text, strlen(text));
    free(path);
    return st;
}

/* The gnuplot script: one data block per method (shot, mean %, ci %), error bars. */
static int plot_script(char **out, const fsb_summary_row *rows, size_t n, const char *setting)
{
    table_axes ax;
    int st = axes_init(&ax, rows, n, NULL);
    if (st) return st;
    size_t len;
    FILE *fp = open_memstream(out, &len);
    if (!fp) {
        axes_free(&ax);
        return fsb_error(FSB_ENOMEM, "plot script: out of memory");
    }
    fprintf(fp,
            "# accuracy_vs_shots.gp - generated by fsbench from per_episode.csv.\n"
            "# Mean accuracy (%%) with 95%% CI bars per method; run `gnuplot "
            "accuracy_vs_shots.gp` here to redraw accuracy_vs_shots.png.\n"
            "set title \"accuracy vs shots (mean, 95%% CI)%s%s\"\n"
            "set xlabel \"shots per class (K)\"\nset ylabel \"accuracy (%%)\"\n"
            "set logscale x\nset grid\nset key bottom right\nset xtics (",
            setting ? "\\n" : "", setting ? setting : "");
    for (int k = 0; k < ax.n_shots; k++)
        fprintf(fp, "%s%d", k ? ", " : "", ax.shots[k]);
    fprintf(fp, ")\nset xrange [%g:%g]\n", ax.n_shots ? ax.shots[0] / 1.3 : 0.5,
            ax.n_shots ? ax.shots[ax.n_shots - 1] * 1.3 : 2.0);
    for (int i = 0; i < ax.n_methods; i++) {
        fprintf(fp, "$m%d << EOD\n", i);
        for (int k = 0; k < ax.n_shots; k++) {
            const fsb_summary_row *c = find_cell(rows, n, ax.methods[i], ax.shots[k]);
            if (c) fprintf(fp, "%d %.4f %.4f\n", c->shot, 100.0 * c->mean, 100.0 * c->ci95);
        }
        fprintf(fp, "EOD\n");
    }
    fprintf(fp, "plot");
    for (int i = 0; i < ax.n_methods; i++)
        fprintf(fp, "%s $m%d using 1:2:3 with yerrorlines lw 2 pt 7 title \"%s\"",
                i ? ", \\\n    " : " ", i, ax.methods[i]);
    fprintf(fp, "\n");
    axes_free(&ax);
    if (fclose(fp)) {
        free(*out);
        *out = NULL;
        return fsb_error(FSB_ENOMEM, "plot script: out of memory");
    }
    return FSB_OK;
}

/* Write the script and run gnuplot on it (fsb_plot). Returns 0 with res->plotted set, or 0
 * with res->note saying why not; negative only when the script itself cannot be written. */
static int draw_plot(const char *dir, const fsb_summary_row *rows, size_t n, const char *setting,
                     fsb_report_result *res)
{
    char *script = NULL;
    int st = plot_script(&script, rows, n, setting);
    if (st) return st;
    char *gp = fsb_path_join(dir, "accuracy_vs_shots.gp");
    char *png = fsb_path_join(dir, "accuracy_vs_shots.png");
    if (!gp || !png)
        st = fsb_error(FSB_ENOMEM, "plot: out of memory");
    else
        st = fsb_plot(gp, script, png, &res->plotted, res->note, sizeof res->note);
    free(script);
    free(gp);
    free(png);
    return st;
}

int fsb_report_derive(const char *run_dir, const fsb_episode_record *recs, size_t n,
                      const fsb_report_options *opt, fsb_report_result *res)
{
    static const fsb_report_options no_opt;
    fsb_report_result scratch_res;
    if (!opt) opt = &no_opt;
    if (!res) res = &scratch_res;
    memset(res, 0, sizeof *res);
    fsb_summary_row *sum = NULL;
    fsb_paired_row *pair = NULL;
    size_t n_sum = 0, n_pair = 0;
    char *md = NULL, *tex = NULL;
    int st;
    if (n == 0) return fsb_error(FSB_EINVAL, "%s: no per-episode results to report", run_dir);
    if ((st = fsb_report_summarise(recs, n, &sum, &n_sum))) goto done;
    if (opt->reference) { /* a method that is not in the run is a typo, not a fallback */
        int found = 0;
        for (size_t i = 0; i < n_sum && !found; i++)
            found = !strcmp(sum[i].method, opt->reference);
        if (!found) {
            char have[1024] = "";
            for (size_t i = 0; i < n_sum; i++)
                if (i == 0 || strcmp(sum[i].method, sum[i - 1].method) != 0) /* grouped */
                    snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s",
                             *have ? ", " : "", sum[i].method);
            st = fsb_error(FSB_EINVAL, "--reference: %s has no method '%s' (it has %s)", run_dir,
                           opt->reference, have);
            goto done;
        }
    }
    const char *ref = fsb_report_reference(recs, n, opt->reference);
    if ((st = fsb_report_paired(recs, n, ref, &pair, &n_pair))) goto done;
    const char *paper = opt->no_paper ? NULL : opt->backbone ? opt->backbone : "";
    /* the default title names the setting (dataset, split, way, queries, backbone) */
    char title[512];
    const char *t = opt->title;
    if (!t && opt->setting) {
        snprintf(title, sizeof title, "%s: %s", opt->setting,
                 paper ? default_title : default_title_no_paper);
        t = title;
    }
    if ((st = fsb_report_table_md(sum, n_sum, t, paper, opt->models, &md)) ||
        (st = fsb_report_table_tex(sum, n_sum, t, paper, opt->models, &tex)))
        goto done;
    if ((st = write_summary(run_dir, sum, n_sum)) || (st = write_timing(run_dir, sum, n_sum)) ||
        (st = write_paired(run_dir, pair, n_pair)) ||
        (st = write_string(run_dir, "table.md", md)) ||
        (st = write_string(run_dir, "table.tex", tex)))
        goto done;
    if (!opt->skip_plot) st = draw_plot(run_dir, sum, n_sum, opt->setting, res);
done:
    free(md);
    free(tex);
    free(sum);
    free(pair);
    return st;
}

int fsb_report_write(const char *run_dir, const fsb_episode_record *recs, size_t n,
                     const fsb_report_options *opt, fsb_report_result *res)
{
    char *path = fsb_path_join(run_dir, "per_episode.csv");
    if (!path) return fsb_error(FSB_ENOMEM, "report: out of memory");
    int st = fsb_report_write_episodes(path, recs, n);
    free(path);
    if (st) return st;
    return fsb_report_derive(run_dir, recs, n, opt, res);
}

static int cmp_record(const void *a, const void *b)
{
    const fsb_episode_record *x = a, *y = b;
    int c = fsb_report_method_cmp(x->method, y->method);
    if (c) return c;
    if (x->shot != y->shot) return x->shot < y->shot ? -1 : 1;
    return (x->episode > y->episode) - (x->episode < y->episode);
}

void fsb_report_sort(fsb_episode_record *recs, size_t n)
{
    if (n > 1) qsort(recs, n, sizeof *recs, cmp_record);
}

int fsb_report_paper_applies(uint64_t split_fingerprint)
{
    return split_fingerprint == FSB_MINIIMAGENET_FP_TEST;
}
