/* compare.c - two runs on the same episodes, paired (see include/fsb/compare.h). Records of
 * each run are sorted into report order and walked together, so every number is a sum in a
 * canonical order and the files are byte-identical for the same inputs.
 */
#include "fsb/compare.h"
#include "fsb/fileio.h"
#include "fsb/runfolder.h"
#include "fsb/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Report order of (method, shot, episode). */
static int key_cmp(const fsb_episode_record *x, const fsb_episode_record *y)
{
    int c = fsb_report_method_cmp(x->method, y->method);
    if (c) return c;
    if (x->shot != y->shot) return x->shot < y->shot ? -1 : 1;
    return (x->episode > y->episode) - (x->episode < y->episode);
}

/* Statistics of one (method, shot) group from its n paired accuracies. */
static void close_group(fsb_compare_row *row, const double *acc_a, const double *acc_b,
                        double *diff, size_t n)
{
    double sa = 0, sb = 0;
    for (size_t i = 0; i < n; i++) {
        diff[i] = acc_b[i] - acc_a[i];
        sa += acc_a[i];
        sb += acc_b[i];
    }
    row->episodes = (int64_t)n;
    row->mean_a = sa / (double)n;
    row->mean_b = sb / (double)n;
    fsb_stats_mean_ci(diff, n, &row->mean_diff, &row->std, &row->ci95);
}

int fsb_compare_records(const fsb_episode_record *a, size_t na, const fsb_episode_record *b,
                        size_t nb, fsb_compare_row **rows, size_t *n_rows)
{
    *rows = NULL;
    *n_rows = 0;
    size_t cap = na < nb ? na : nb;
    fsb_episode_record *sa = malloc(sizeof *sa * (na ? na : 1));
    fsb_episode_record *sb = malloc(sizeof *sb * (nb ? nb : 1));
    double *acc_a = malloc(sizeof(double) * (cap ? cap : 1));
    double *acc_b = malloc(sizeof(double) * (cap ? cap : 1));
    double *diff = malloc(sizeof(double) * (cap ? cap : 1));
    fsb_compare_row *out = calloc(cap ? cap : 1, sizeof *out);
    if (!sa || !sb || !acc_a || !acc_b || !diff || !out) {
        free(sa), free(sb), free(acc_a), free(acc_b), free(diff), free(out);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    memcpy(sa, a, sizeof *sa * na);
    memcpy(sb, b, sizeof *sb * nb);
    fsb_report_sort(sa, na);
    fsb_report_sort(sb, nb);
    size_t i = 0, j = 0, n = 0, k = 0; /* n: pairs in the open group; k: rows */
    const fsb_episode_record *open = NULL;
    while (i < na && j < nb) {
        int c = key_cmp(&sa[i], &sb[j]);
        if (c) {
            c < 0 ? i++ : j++;
            continue;
        }
        if (open && (strcmp(open->method, sa[i].method) || open->shot != sa[i].shot)) {
            close_group(&out[k++], acc_a, acc_b, diff, n);
            n = 0;
        }
        if (n == 0) {
            open = &sa[i];
            snprintf(out[k].method, sizeof out[k].method, "%s", open->method);
            out[k].shot = open->shot;
        }
        acc_a[n] = sa[i++].accuracy;
        acc_b[n++] = sb[j++].accuracy;
    }
    if (n) close_group(&out[k++], acc_a, acc_b, diff, n);
    free(sa), free(sb), free(acc_a), free(acc_b), free(diff);
    *rows = out;
    *n_rows = k;
    return FSB_OK;
}

/* Read a finished run folder: its identity and records. */
static int read_run(const char *dir, fsb_run_ident *id, fsb_episode_record **recs, size_t *n)
{
    int st = fsb_run_ident_read(dir, id, NULL);
    if (st) return st;
    char *pe = fsb_path_join(dir, "per_episode.csv");
    if (!pe) return fsb_error(FSB_ENOMEM, "out of memory");
    st = fsb_is_file(pe) ? fsb_report_read_episodes(pe, recs, n)
                         : fsb_error(FSB_ENOTFOUND,
                                     "%s is not finished (no per_episode.csv); finish it, or "
                                     "bench table --partial for a look",
                                     dir);
    free(pe);
    return st;
}

/* The runs must be on the same episodes. */
static int same_episodes(const fsb_compare_opts *o, const fsb_run_ident *a, const fsb_run_ident *b)
{
    const char *key = NULL;
    if (strcmp(a->split, b->split))
        key = "split";
    else if (a->data_fp != b->data_fp)
        key = "data_fingerprint";
    else if (strcmp(a->episodes_hash, b->episodes_hash))
        key = "episodes_hash";
    else if (a->way != b->way)
        key = "way";
    else if (a->query != b->query)
        key = "query";
    if (!key) return FSB_OK;
    return fsb_error(FSB_EMISMATCH,
                     "%s and %s are not on the same episodes (their run.id files differ in "
                     "%s=); a paired comparison needs the same split, episodes, way and query",
                     o->run_a, o->run_b, key);
}

static char *render_csv(const fsb_compare_row *r, size_t n)
{
    size_t size = 0;
    char *text = NULL;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    fprintf(f, "method,shot,episodes,mean_a,mean_b,mean_diff,ci95,std\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s,%d,%lld,%.6f,%.6f,%.6f,%.6f,%.6f\n", r[i].method, r[i].shot,
                (long long)r[i].episodes, r[i].mean_a, r[i].mean_b, r[i].mean_diff, r[i].ci95,
                r[i].std);
    return fclose(f) ? (free(text), NULL) : text;
}

static char *render_md(const fsb_compare_row *r, size_t n, const char *la, const char *lb)
{
    size_t size = 0;
    char *text = NULL;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    fprintf(f,
            "# B − A on the same episodes (accuracy, %%)\n\nA = %s\nB = %s\n\n"
            "| method | shot | episodes | A | B | B − A (± 95%% CI) |\n"
            "|---|---:|---:|---:|---:|---:|\n",
            la, lb);
    for (size_t i = 0; i < n; i++) {
        char d[24];
        fsb_report_fmt_diff(d, sizeof d, 100 * r[i].mean_diff);
        int sig = r[i].ci95 > 0 ? (r[i].mean_diff > r[i].ci95 || -r[i].mean_diff > r[i].ci95)
                                : r[i].mean_diff != 0;
        fprintf(f, "| %s | %d | %lld | %.2f | %.2f | %s ± %.2f%s |\n", r[i].method, r[i].shot,
                (long long)r[i].episodes, 100 * r[i].mean_a, 100 * r[i].mean_b, d, 100 * r[i].ci95,
                sig ? " *" : "");
    }
    fprintf(f, "\nDifferences are paired by episode: mean and 95%% CI (1.96·σ/√E, σ the "
               "population std of the per-episode differences). * : the CI excludes 0.\n");
    return fclose(f) ? (free(text), NULL) : text;
}

int fsb_compare(const fsb_compare_opts *o)
{
    if (!o->run_a || !o->run_b) return fsb_error(FSB_EINVAL, "--a and --b are required");
    fsb_run_ident ia, ib;
    fsb_episode_record *ra = NULL, *rb = NULL;
    fsb_compare_row *rows = NULL;
    size_t na = 0, nb = 0, nr = 0;
    char *csv = NULL, *md = NULL, *pc = NULL, *pm = NULL;
    int st = read_run(o->run_a, &ia, &ra, &na);
    if (!st) st = read_run(o->run_b, &ib, &rb, &nb);
    if (!st) st = same_episodes(o, &ia, &ib);
    if (!st) st = fsb_compare_records(ra, na, rb, nb, &rows, &nr);
    if (!st && nr == 0)
        st =
            fsb_error(FSB_EINVAL, "%s and %s have no (method, shot) in common", o->run_a, o->run_b);
    if (st) goto done;
    csv = render_csv(rows, nr);
    md =
        render_md(rows, nr, o->label_a ? o->label_a : o->run_a, o->label_b ? o->label_b : o->run_b);
    if (!csv || !md) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    if (o->out) {
        if ((st = fsb_mkdir_p(o->out))) {
            st = fsb_error_wrap(st, "--out");
            goto done;
        }
        if (!(pc = fsb_path_join(o->out, "compare.csv")) ||
            !(pm = fsb_path_join(o->out, "compare.md")))
            st = fsb_error(FSB_ENOMEM, "out of memory");
        if (!st) st = fsb_write_file(pc, csv, strlen(csv));
        if (!st && (st = fsb_write_file(pm, md, strlen(md)))) remove(pc); /* both or neither */
    }
    if (!st && o->log) fputs(md, o->log);
done:
    free(ra), free(rb), free(rows), free(csv), free(md), free(pc), free(pm);
    return st;
}
