/* perf_methods.h - a benchmark harness for the frozen-feature methods (`bench perf-methods`).
 *
 * Loads features + labels from a tensor file, samples N-way K-shot episodes of its own (not
 * the portable nested sweeps of episodes.h: this is for timing and peer comparison only; the
 * draws are fsb_rng_partial_shuffle's, the views fsb_episode_view_make's), runs every
 * requested method on every episode in parallel over a thread pool (threads.h) and reports
 * per-episode times and accuracies; optionally dumps the episodes and predictions to a
 * tensor file that tools/sklearn_compare.py reads.
 *
 * Feature file: tensors "features" (f32 [N, dim]) and "labels" (i64 [N], any class ids),
 * optionally "base_mean" (f32 [dim], the CL2N mean; without it the mean of all N features).
 */
#ifndef FSB_PERF_METHODS_H
#define FSB_PERF_METHODS_H

#include <stdint.h>

#define FSB_MPERF_MAX_SHOTS 16
#define FSB_MPERF_MAX_METHODS 8

typedef struct fsb_mperf_options {
    const char *features;                       /* the feature tensor file */
    int episodes;                               /* episodes per shot */
    int shots[FSB_MPERF_MAX_SHOTS];             /* K values */
    int n_shots;                                /* entries of shots */
    int way;                                    /* classes per episode */
    int query;                                  /* queries per class */
    const char *methods[FSB_MPERF_MAX_METHODS]; /* method names (fsb_method_find) */
    int n_methods;                              /* entries of methods */
    int norm;                                   /* fsb_norm for every method, or -1: each default */
    double C;                                   /* liblinear C */
    double eps;                                 /* liblinear tolerance */
    uint64_t seed;                              /* episode sampling key */
    int threads;                                /* pool size (<= 0: one per core) */
    const char *dump;       /* tensor file for episodes + predictions, or NULL */
    const char *report_dir; /* folder for per_episode.csv + reports (fsb_report_write), or NULL */
} fsb_mperf_options;

/* Per (method, shot) results. */
typedef struct fsb_mperf_cell {
    double fit_ms;     /* mean fit time per episode (ms, per thread) */
    double predict_ms; /* mean predict time per episode (ms, per thread) */
    double accuracy;   /* mean accuracy (fraction) */
    double ci95;       /* 1.96 * population std / sqrt(episodes) */
} fsb_mperf_cell;

typedef struct fsb_mperf_result {
    int n_features;          /* rows in the file */
    int dim;                 /* feature dimension */
    int n_classes;           /* distinct labels */
    int threads;             /* pool size used */
    int base_mean_from_file; /* 1: "base_mean" tensor used */
    double wall_s;           /* wall time of all episodes */
    fsb_mperf_cell cell[FSB_MPERF_MAX_METHODS][FSB_MPERF_MAX_SHOTS]; /* [method][shot index] */
    char report_note[512]; /* fsb_report_result.note of the report, "" when none */
} fsb_mperf_result;

/* Defaults: 1000 episodes, shots 1,5,10,30, 5-way, 15 queries, methods 1nn, protonet, svm,
 * logreg, each method's default norm, C = 1, eps = 0.01, seed 0, one thread per core. */
void fsb_mperf_options_default(fsb_mperf_options *o);

/* Run the benchmark. Errors name the file or option. The dump (when asked) holds metadata
 * way, query, episodes, seed, shots, methods, C, eps, norm.<method> and, per shot K and
 * method m: "K<K>.support" / "K<K>.query" (i64 [episodes, way*K] / [episodes, way*query],
 * row indices into the feature file, class-major: example i is of episode class i / K resp.
 * i / query), "K<K>.pred.<m>" (i64 [episodes, way*query]) and "K<K>.ms.<m>" (f32
 * [episodes, 2]: fit, predict). With report_dir, the folder is created and gets
 * per_episode.csv and the derived reports (see report.h). */
int fsb_perf_methods(const fsb_mperf_options *o, fsb_mperf_result *res);

#endif
