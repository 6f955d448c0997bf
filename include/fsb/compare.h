/* compare.h - `bench compare`: two finished runs on the same episodes (typically two
 * backbones, or two settings of one method), paired episode by episode.
 *
 * For every (method, shot) that both runs hold, over the episodes both hold:
 *   d_e = acc_B(e) - acc_A(e);  mean, std (population, ddof 0) and ci95 = 1.96 * std / sqrt(E)
 * of the d_e (docs/protocol.md, "Statistics"). Pairing removes the variance the two runs
 * share through their episodes, so the CI of the difference is much tighter than the two
 * runs' own CIs would suggest. The runs must be on the same episodes of the same split: their
 * run.id files must agree on split, data_fingerprint, episodes_hash, way and query (anything
 * else — teacher, methods, settings — may differ; that is what is being compared).
 *
 * Files written into the output folder: compare.csv
 *   "method,shot,episodes,mean_a,mean_b,mean_diff,ci95,std" (fractions; diff = B - A)
 * and compare.md (the same in percent, a * where the CI excludes 0, the two runs named).
 */
#ifndef FSB_COMPARE_H
#define FSB_COMPARE_H

#include "fsb/report.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One (method, shot) of a comparison. */
typedef struct fsb_compare_row {
    char method[FSB_METHOD_NAME_MAX]; /* method name (the same in both runs) */
    int shot;                         /* K */
    int64_t episodes;                 /* episodes both runs hold */
    double mean_a, mean_b;            /* each run's mean accuracy over those episodes */
    double mean_diff;                 /* mean of acc_B - acc_A */
    double ci95;                      /* 1.96 * std / sqrt(episodes) of the differences */
    double std;                       /* population std of the differences */
} fsb_compare_row;

/* The paired rows of two record sets, sorted by (method in report order, shot); *rows
 * malloc'd (caller frees), *n_rows may be 0 when nothing is shared. */
int fsb_compare_records(const fsb_episode_record *a, size_t na, const fsb_episode_record *b,
                        size_t nb, fsb_compare_row **rows, size_t *n_rows);

/* Options of `bench compare`. */
typedef struct fsb_compare_opts {
    const char *run_a;   /* the baseline run folder (A) */
    const char *run_b;   /* the run compared with it (B) */
    const char *label_a; /* names in compare.md (NULL: the folders) */
    const char *label_b;
    const char *out; /* folder for compare.csv / compare.md (NULL: write nothing) */
    FILE *log;       /* compare.md's table is printed here (stdout), or NULL */
} fsb_compare_opts;

/* Compare two finished run folders (see the top). Refused, naming the folder and the key:
 * a folder that is not a finished run (no run.id or per_episode.csv), runs on other episodes
 * (split, data_fingerprint, episodes_hash, way or query differ), runs with no (method, shot)
 * in common. Nothing is written on error. */
int fsb_compare(const fsb_compare_opts *o);

#endif
