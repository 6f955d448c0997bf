/* run.h - the main job: every method on the same nested episodes of one split, with
 * resumable progress and the reports of report.h.
 *
 * A run folder (its files are defined in runfolder.h) holds run.id (what makes the results
 * what they are: dataset fingerprint, the train split's when CL2N reads its mean, teacher
 * hash, episode hash, every result-affecting flag), episodes.csv (the exported episode
 * manifest, replayable with --episodes), journal.log (one crash-safe record per finished
 * (episode, shot, method)), and, once every task is done, per_episode.csv, summary.csv,
 * paired.csv, table.md, table.tex, timing.csv, accuracy_vs_shots.png and manifest.txt
 * (versions, CPU, OpenBLAS core, wall time). Rerunning the same command continues
 * after the last finished task; a folder holding another run is refused, never mixed. Results do
 * not depend on the thread count: a task's computation is single-threaded and a pure function of
 * its inputs.
 *
 * Feature methods see the frozen teacher's features of the split, unless a method brings its
 * own model (models[] below), for every shot or for one shot: the split is embedded once per
 * distinct checkpoint, and each (method, shot) sees its checkpoint's features. Every check of the
 * inputs (the teacher, the models, the episodes) happens before the folder is claimed: a refused
 * run writes nothing.
 */
#ifndef FSB_RUN_H
#define FSB_RUN_H

#include "fsb/episodes.h"
#include "fsb/runfolder.h"
#include "fsb/shard.h"

#include <stdint.h>
#include <stdio.h>

/* A method's own model (bench run --model METHOD=PATH, or METHOD@SHOT=PATH for one shot). */
typedef struct fsb_run_model {
    const char *method; /* a method of the run that may take one (method.h FSB_TAKES_MODEL) */
    const char *path;   /* its checkpoint */
    int shot;           /* 0: every shot without a model of its own; K >= 1: K-shot only */
} fsb_run_model;

typedef struct fsb_run_opts {
    const char *data;      /* dataset root (required) */
    const char *split;     /* evaluated split (default "test") */
    const char *teacher;   /* teacher checkpoint (required) */
    const char *out;       /* run folder (required) */
    const char *cache_dir; /* packed images and features; NULL: next to the data (cache.h) */
    const char *manifest;  /* replay these episodes (--episodes FILE.csv), or NULL; then a way,
                              query or n_shots of 0 means "the manifest's" */
    long episodes;         /* episodes to draw when manifest is NULL (default 600) */
    int way;               /* N (default 5) */
    int query;             /* queries per class (default 15) */
    int n_shots;           /* number of shot values */
    int shots[FSB_EPISODES_MAX_SHOTS];        /* ascending (default 1,5,10,30) */
    uint64_t seed;                            /* episode seed (default 0) */
    int n_methods;                            /* number of methods */
    const char *methods[FSB_RUN_MAX_METHODS]; /* method names (default
                                                 1nn,svm,protonet,finetune,refilled) */
    int norm;            /* feature normalisation of every feature method; -1: each one's default */
    double C;            /* svm / logreg C; 0 = each method's default (method.h) */
    int threads;         /* workers (0 = one per core); never changes results */
    int image_size;      /* side of the packed images (0: the teacher's, model.h
                            fsb_model_file_input; a different value is refused) */
    int resize;          /* test transform: shorter side resized to this (0: the teacher's) */
    int crop;            /* test transform: centre crop (0: the teacher's) */
    const char *arch;    /* expected teacher architecture ("conv4"/"res12"), or NULL: any */
    const char *student; /* finetune/refilled options "key=value,..." (student.h), NULL: defaults */
    long kill_after_tasks; /* fault injection for resume tests: SIGKILL self once this many
                              tasks of this process are journaled (0: never) */
    FILE *progress;        /* progress bars (stderr; drawn on terminals only), or NULL */
    FILE *log;             /* one-line notes for the user (stdout), or NULL */
    fsb_shard shard;       /* run only this shard's tasks (shard.h); zeroed: all of them */
    /* Methods with their own model (--model): that method's features (and feat's attention
     * block, and CL2N's base mean) come from the checkpoint instead of the teacher; the
     * file's XXH3-64 joins the method's identity (runfolder.h), its path manifest.txt
     * (model.M=PATH, model.M@K=PATH). A method has at most one model for every shot
     * (shot 0) and at most one per shot K (shot K), which serves K-shot instead: each
     * (method, shot) uses its per-shot model, else its every-shot model, else the teacher.
     * The rule for a per-shot model without an every-shot one: a feature method uses the
     * teacher at the shots left; maml, which cannot use the teacher, must then have a
     * per-shot model at every shot of the run (the refusal names the shots without one). An
     * every-shot model that no shot uses (every shot has its own) is refused too. Each
     * checkpoint must take the run's input (image_size / resize / crop: model.h
     * fsb_model_file_input); a model for a method not in methods[], for one that cannot take
     * one (method.h FSB_TAKES_MODEL), for a shot not among shots[], or given twice for the
     * same (method, shot) is refused naming --model and the flag's text, before the folder
     * is claimed. maml requires a model at every shot, a MAML checkpoint (maml_method.h:
     * maml.* meta, a head of `way` classes, ConvNet-4), which it adapts per episode of that
     * shot instead of seeing features; the MAML order joins its identity too (order=1|2):
     * checkpoints of both orders in one run are refused. */
    int n_models; /* 0: every method uses the teacher */
    fsb_run_model models[FSB_RUN_MAX_METHODS * (1 + FSB_EPISODES_MAX_SHOTS)]; /* [n_models] */
} fsb_run_opts;

/* The defaults listed above; required fields NULL. */
void fsb_run_opts_default(fsb_run_opts *o);

/* Run (or resume) the benchmark described by o. Errors name the flag, file or line. */
int fsb_run(const fsb_run_opts *o);

#endif
