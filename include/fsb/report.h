/* report.h - per-episode results and the reports derived from them.
 *
 * A run directory holds per_episode.csv (the raw results, one row per method x shot x
 * episode) and files derived from it alone: summary.csv (mean, 95% CI, std per method and
 * shot), paired.csv (per-episode differences against a reference method), table.md and
 * table.tex (ours beside the paper's middle-shot table), timing.csv (per-method cost),
 * accuracy_vs_shots.png (gnuplot). Every file is written atomically; numbers are printed
 * with fixed formats from sums taken in a canonical order, so the same per_episode.csv
 * always gives byte-identical files.
 *
 * Statistics (docs/protocol.md): over the E episodes of one (method, shot), mean = sum(acc)/E,
 * std = sqrt(sum((acc - mean)^2) / E) (population, ddof 0), ci95 = 1.96 * std / sqrt(E).
 */
#ifndef FSB_REPORT_H
#define FSB_REPORT_H

#include <stddef.h>
#include <stdint.h>

#define FSB_METHOD_NAME_MAX 48

/* One method on one episode (a row of per_episode.csv, columns in this order). */
typedef struct fsb_episode_record {
    int64_t episode;                  /* episode index within the shot's episode set */
    int shot;                         /* K */
    char method[FSB_METHOD_NAME_MAX]; /* method name: [A-Za-z0-9_.+-], non-empty */
    int n_correct;                    /* correctly classified queries */
    int n_query;                      /* queries in the episode (> 0) */
    double accuracy;                  /* n_correct / n_query (recomputed on read) */
    double fit_ms;                    /* time to fit on the support set */
    double predict_ms;                /* time to predict the queries */
} fsb_episode_record;

/* summary.csv row. */
typedef struct fsb_summary_row {
    char method[FSB_METHOD_NAME_MAX]; /* method name */
    int shot;                         /* K */
    int64_t episodes;                 /* E */
    double mean;                      /* mean accuracy (fraction) */
    double ci95;                      /* 1.96 * std / sqrt(E) */
    double std;                       /* population std of the per-episode accuracies */
    double fit_ms;                    /* mean fit time per episode (timing.csv only) */
    double predict_ms;                /* mean predict time per episode (timing.csv only) */
} fsb_summary_row;

/* paired.csv row: differences reference - method over the episodes both have. */
typedef struct fsb_paired_row {
    int shot;                            /* K */
    char reference[FSB_METHOD_NAME_MAX]; /* the reference method */
    char method[FSB_METHOD_NAME_MAX];    /* the method compared against it */
    int64_t episodes;                    /* episodes both have */
    double mean_diff;                    /* mean of acc(reference) - acc(method) */
    double ci95;                         /* 1.96 * std / sqrt(episodes) of the differences */
    double std;                          /* population std of the differences */
} fsb_paired_row;

/* What the derived reports need besides the records. Zeroed = defaults. */
typedef struct fsb_report_options {
    const char *reference; /* paired reference when no refilled* method is present; NULL =
                              the first method in report order */
    const char *title;     /* first line of table.md / caption of table.tex; NULL = default */
    int skip_plot;         /* 1: do not run gnuplot */
    int no_paper; /* 1: no paper columns (not the MiniImageNet test split, or not 5-way 15-query) */
    const char *backbone; /* "conv4" / "res12": the paper row plain "refilled" compares
                             with (NULL: none) */
    const char *setting;  /* what was run, e.g. "MiniImageNet test, 5-way, 15 queries/class,
                             conv4 teacher": it heads the default title and the plot's
                             (NULL: not named) */
    const char *models;   /* which rows bring their own model (bench run --model), a line
                             under table.md and table.tex (runfolder.h makes it from the
                             run identity); NULL: none, every row uses the teacher */
} fsb_report_options;

/* What writing the reports did, for the caller to show. */
typedef struct fsb_report_result {
    int plotted;    /* 1 when accuracy_vs_shots.png was written */
    char note[512]; /* why the plot was skipped ("" otherwise) */
} fsb_report_result;

/* mean, population std and 1.96 * std / sqrt(n) of x[0..n) (n >= 1), summed in index order. */
void fsb_stats_mean_ci(const double *x, size_t n, double *mean, double *std, double *ci95);

/* Write records to `path` as CSV (header
 * "episode,shot,method,n_correct,n_query,accuracy,fit_ms,predict_ms"), in the given order,
 * atomically. Method names must be valid (assert). */
int fsb_report_write_episodes(const char *path, const fsb_episode_record *recs, size_t n);
/* Read a per_episode.csv: *recs is malloc'd (caller frees), *n rows. The header must match
 * exactly; every row is validated (field count, numbers, ranges, accuracy = n_correct /
 * n_query within 1e-6, no duplicate (method, shot, episode)) and errors name the line. */
int fsb_report_read_episodes(const char *path, fsb_episode_record **recs, size_t *n);

/* Record order of methods: the paper's rows first (1nn, svm, finetune, maml, protonet, feat,
 * refilled-res12, refilled-conv4, refilled, logreg), then any other name bytewise.
 * qsort-style. */
int fsb_report_method_cmp(const char *a, const char *b);

/* Summary rows sorted by (method in report order, shot); *rows malloc'd. */
int fsb_report_summarise(const fsb_episode_record *recs, size_t n, fsb_summary_row **rows,
                         size_t *n_rows);
/* The paired reference: the first method in report order whose name is "refilled" or
 * starts with "refilled-"; else `fallback` if it occurs in recs; else the first method in
 * report order. Returns a pointer into recs (or fallback), NULL when n == 0. */
const char *fsb_report_reference(const fsb_episode_record *recs, size_t n, const char *fallback);
/* Paired rows sorted by (shot, method in report order), for every method other than
 * `reference` that shares at least one episode with it at that shot; *rows malloc'd. */
int fsb_report_paired(const fsb_episode_record *recs, size_t n, const char *reference,
                      fsb_paired_row **rows, size_t *n_rows);

/* A difference in percentage points as "+1.23" / "-0.40" / "+0.00": rounded to hundredths,
 * never "-0.00" (buf of n bytes; 24 always suffice). */
void fsb_report_fmt_diff(char *buf, size_t n, double points);

/* The paper's middle-shot number (percent) for our method name at `shot`, or a negative
 * value when the paper has none. */
double fsb_report_paper_value(const char *method, int shot);

/* Render table.md / table.tex content from summary rows (malloc'd NUL-terminated string in
 * *out, caller frees). paper: NULL leaves out the paper's columns; otherwise they are shown,
 * and "conv4" / "res12" name the backbone whose REFILLED row plain "refilled" is compared
 * with ("" for none). With the paper's columns the rows are the paper's, in its order (1NN,
 * SVM, Fine-Tune, MAML, ProtoNet, FEAT, REFILLED ConvNet, REFILLED ResNet): a paper row that
 * no method of the run is compared with (and that has a value at one of the table's shots)
 * shows the paper's value beside "–" and is labelled
 * "<name> (not run here)"; the run's other methods follow in record order. Without them the
 * rows are the run's methods in record order. models: a last line under the table saying
 * which rows bring their own model (fsb_report_options.models), or NULL for none. */
int fsb_report_table_md(const fsb_summary_row *rows, size_t n, const char *title, const char *paper,
                        const char *models, char **out);
int fsb_report_table_tex(const fsb_summary_row *rows, size_t n, const char *title,
                         const char *paper, const char *models, char **out);

/* Write summary.csv, paired.csv, table.md, table.tex, timing.csv (mean fit / predict ms
 * per episode and the summed seconds of every cell: the only derived file that depends on
 * the machine) and (unless opt->skip_plot)
 * accuracy_vs_shots.png with its gnuplot script accuracy_vs_shots.gp into run_dir from the
 * records. A missing or failing gnuplot never fails the call: res->note says why. opt and
 * res may be NULL. */
int fsb_report_derive(const char *run_dir, const fsb_episode_record *recs, size_t n,
                      const fsb_report_options *opt, fsb_report_result *res);
/* per_episode.csv, then fsb_report_derive. */
int fsb_report_write(const char *run_dir, const fsb_episode_record *recs, size_t n,
                     const fsb_report_options *opt, fsb_report_result *res);
/* 1 when results on a split with this fingerprint can stand beside the paper's numbers
 * (the canonical MiniImageNet test split). */
int fsb_report_paper_applies(uint64_t split_fingerprint);
/* Sort records into report order: method (fsb_report_method_cmp), shot, episode. */
void fsb_report_sort(fsb_episode_record *recs, size_t n);

#endif
