/* tune.h - choosing hyper-parameters on validation-class episodes only (docs/refilled.md: every
 * *choice* is made on val classes): the per-episode students' options (finetune, refilled)
 * and svm/logreg's C and feature normalisation.
 *
 * A grid of student option specs is expanded (fsb_tune_expand), and every (method, point)
 * is an ordinary resumable fsb_run on the val split into OUT/<method>/<point>/; the summary
 * means are then compared: OUT/val_table.md (point x shot -> mean +- 95% CI, and the mean
 * over shots) and OUT/chosen.txt (per method the point with the best mean over shots; ties
 * go to the cheaper point: fewer SGD steps, then adapt head < last < all, then grid order).
 * When both finetune and refilled are tuned, val_table.md also pairs every refilled point
 * with its fine-tune twin (the same point without the refilled-only keys) over the shared
 * episodes: REFILLED - fine-tune per shot, mean +- 95% CI of the per-episode differences
 * (the ablation that isolates what the teacher adds).
 * The test split is never opened: a split named "test", or anything but a plain name, is
 * refused (fsb_tune_split_check).
 */
#ifndef FSB_TUNE_H
#define FSB_TUNE_H

#include "fsb/episodes.h"
#include "fsb/student.h"

#include <stdio.h>

#define FSB_TUNE_MAX_POINTS 64
#define FSB_TUNE_MAX_METHODS 4

typedef struct fsb_tune_opts {
    const char *data;      /* dataset root (required) */
    const char *teacher;   /* teacher checkpoint (required) */
    const char *out;       /* results folder (default "results/tune") */
    const char *cache_dir; /* packed images and features; NULL: next to the data */
    const char *split;     /* evaluated split (default "val"; "test" and paths are refused) */
    const char *grid;      /* grid spec (fsb_tune_expand); NULL: FSB_TUNE_DEFAULT_GRID */
    int n_methods;         /* 1 to FSB_TUNE_MAX_METHODS */
    const char *methods[FSB_TUNE_MAX_METHODS]; /* of finetune, refilled, svm, logreg (default
                                                  finetune and refilled) */
    long episodes;                             /* episodes per shot (default 100) */
    int way;                                   /* N (default 5) */
    int query;                                 /* queries per class (default 15) */
    int n_shots;                               /* number of shot values */
    int shots[FSB_EPISODES_MAX_SHOTS];         /* default 1,5,10,30 */
    uint64_t seed;    /* episode seed (default 1, distinct from the test runs' 0) */
    int threads;      /* workers (0 = one per core) */
    int image_size;   /* packed image side (0: the teacher's, as bench run) */
    int resize;       /* test transform resize (0: the teacher's) */
    int crop;         /* crop (0: the teacher's) */
    const char *arch; /* expected teacher architecture or NULL */
    FILE *progress;   /* progress bars or NULL */
    FILE *log;        /* notes, the table and the choice (stdout) or NULL */
} fsb_tune_opts;

/* The default grid: step size and λ around the code defaults (lr2 0.003, λ 0.3). */
#define FSB_TUNE_DEFAULT_GRID "lr2=0.001|0.003|0.01,lambda=0.1|0.3|1"
/* svm and logreg read only C and norm from a grid point; their default grid: */
#define FSB_TUNE_DEFAULT_FEATURE_GRID "C=0.01|0.1|1|10"

/* Longest grid point (it names its run folder). */
#define FSB_TUNE_POINT_NAME_MAX 200

/* FSB_OK when `split` may be tuned on: a plain name (letters, digits, '_', '-') other than
 * "test" in any case, so that no spelling reaches the test split's files. FSB_EINVAL naming
 * `flag` otherwise. */
int fsb_tune_split_check(const char *split, const char *flag);
/* 1 when tune can choose settings for `method`. */
int fsb_tune_method_ok(const char *method);
/* The grid used for `method` when none is given. */
const char *fsb_tune_default_grid(const char *method);
/* Parse an svm/logreg grid point "C=x,norm=y" (either may be absent: C 0 and norm -1 = the
 * method's default). FSB_EINVAL naming `flag` and the key otherwise. */
int fsb_tune_feature_point(const char *point, double *C, int *norm, const char *flag);

void fsb_tune_opts_default(fsb_tune_opts *o);

/* Expand a grid spec for `method`: comma-separated key=v1|v2|... items (keys of
 * fsb_student_opts), their cross product in order (the last key varies fastest). For
 * finetune, keys that only REFILLED reads (stage1_steps, lr1, views, k1, miner, margin, tau1,
 * w1, tau2, lambda, centres_batch) are dropped and duplicate points merged; svm and logreg
 * keep only C and norm, the students drop those two. Every point is
 * checked (fsb_student_opts_parse on the defaults), and so is every dropped value (alone); a
 * key given twice is refused; points that spell the same settings differently (0.01 and
 * 0.010) are merged; a point longer than FSB_TUNE_POINT_NAME_MAX is refused. points[i] receives a
 * malloc'd "key=value,..." string (caller frees each); at most FSB_TUNE_MAX_POINTS. FSB_EINVAL
 * naming `flag` and the key on errors. */
int fsb_tune_expand(const char *grid, const char *method, const char *flag, char **points,
                    int *n_points);

/* Run the grid and write the table and the choice (see the top of this file). Errors name
 * the flag, the point or the file. */
int fsb_tune(const fsb_tune_opts *o);

#endif
