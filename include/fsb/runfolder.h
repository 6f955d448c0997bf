/* runfolder.h - the on-disk contract of a run folder, in one place (docs/formats.md):
 *
 *   run.id          the run identity: what makes the results what they are, one "key=value"
 *                   line each, in the order of fsb_run_ident below (optional lines only when
 *                   used). Written once when a run claims its folder; a folder holding
 *                   another identity is refused, never mixed.
 *   journal.log     one crash-safe record per finished task (journal.h framing), payload
 *                   "episode,shot,method,n_correct,n_query,fit_ms,predict_ms"
 *                   (journal.r<i>of<n>.log for mpirun rank i of n, shard.h).
 *   final files     per_episode.csv and the derived reports (report.h), manifest.txt, written
 *                   atomically by fsb_runfolder_write_results once every task is done.
 *
 * The runner (run.h) writes these, `bench merge` and `bench table --partial` (shard.h) and
 * `bench table --from` read them; none of them formats or parses the files itself.
 */
#ifndef FSB_RUNFOLDER_H
#define FSB_RUNFOLDER_H

#include "fsb/episodes.h"
#include "fsb/report.h"
#include "fsb/shard.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FSB_RUN_MAX_METHODS 16      /* methods in one run */
#define FSB_RUN_ID_STUDENT_MAX 1024 /* longest student= value */

/* One method of a run as its identity names it: "name(norm=N,C=c)", or
 * "name(norm=N,C=c,model=<16 hex digits>)" for a method that brings its own model (bench run
 * --model METHOD=PATH; run.h): the XXH3-64 of that checkpoint file, so that another file is
 * another run. A model for one shot only (--model METHOD@K=PATH) follows as
 * ",model@K=<16 hex digits>", one per such shot, K among the run's shots in their order:
 * "maml(norm=un,C=1,order=2,model=<h5>,model@1=<h1>)" uses h1 at 1-shot and h5 at every
 * other shot; without model= the shots that have no model@K use the teacher (feature methods
 * only). maml adds its checkpoints' MAML order before the models (one order per run):
 * "maml(norm=un,C=1,order=1,model=<hex>)" is first-order MAML, order=2 second order. Methods
 * without a model or an order keep the shorter spelling of earlier run folders. */
typedef struct fsb_run_shot_model {
    int shot;      /* K */
    uint64_t xxh3; /* XXH3-64 of the checkpoint file that serves K-shot */
} fsb_run_shot_model;

typedef struct fsb_run_method_id {
    char name[FSB_METHOD_NAME_MAX]; /* registry name */
    char norm[8];                   /* feature normalisation name (un, l2n, cl2n) */
    double C;                       /* svm / logreg C as %g formats it (other methods: theirs) */
    int has_model;                  /* 1: the method's own model, not the teacher (model=) */
    uint64_t model_xxh3;            /* XXH3-64 of its checkpoint file when has_model */
    int order;                      /* maml: 1 first-order, 2 second-order MAML (order=);
                                       0: no order= (every other method) */
    int n_at;                       /* per-shot models (model@K=) */
    fsb_run_shot_model at[FSB_EPISODES_MAX_SHOTS]; /* [n_at], in the order of shots */
} fsb_run_method_id;

/* The typed run identity; its text is fsb_run_ident_format's. Lines in order:
 * format=fsbench-run/1, split, data_fingerprint, teacher_xxh3, teacher_arch, episodes_hash,
 * episodes, way, query, shots, seed, methods (fsb_run_method_id each), image_size, resize,
 * crop, then optional base_fingerprint (when a method reads the train split's mean), student
 * (when a method trains per episode) and shard (a --shard i/n folder). */
typedef struct fsb_run_ident {
    char split[64];                                 /* evaluated split */
    uint64_t data_fp;                               /* its fingerprint (dataset.h) */
    uint64_t teacher_xxh3;                          /* XXH3-64 of the teacher file */
    char teacher_arch[16];                          /* conv4 | res12 */
    char episodes_hash[33];                         /* the episodes' content hash (hex) */
    long episodes;                                  /* episodes per (method, shot) */
    int way;                                        /* classes per episode */
    int query;                                      /* queries per class */
    int n_shots;                                    /* shot values */
    int shots[FSB_EPISODES_MAX_SHOTS];              /* ascending */
    uint64_t seed;                                  /* episode seed */
    int n_methods;                                  /* methods */
    fsb_run_method_id methods[FSB_RUN_MAX_METHODS]; /* in run order */
    int image_size;                                 /* packed image side */
    int resize;                                     /* test transform: shorter side */
    int crop;                                       /* test transform: crop side */
    int has_base_fp;                                /* 1: base_fingerprint= line */
    uint64_t base_fp;                               /* the train split's fingerprint */
    char student[FSB_RUN_ID_STUDENT_MAX];           /* student= value, "" when absent */
    fsb_shard shard;                                /* shard= line when count > 1 */
} fsb_run_ident;

/* The identity as text (malloc'd into *text, caller frees). FSB_EINVAL when a field cannot
 * be written back as the same text (empty names, ',' '(' ')' '\n' or '=' in a name, too
 * many shots or methods). */
int fsb_run_ident_format(const fsb_run_ident *id, char **text);

/* Parse run.id text into *id. Every line must be a known key in the order above with a
 * well-formed value (names [A-Za-z0-9_.+-] only, episodes <= 1e8, way <= 1000, query <=
 * 100000, as bench itself allows), every required line present: anything else is
 * FSB_EFORMAT naming `what` (e.g. the file) and the line. format(parse(text)) == text for
 * every accepted text. */
int fsb_run_ident_parse(fsb_run_ident *id, const char *text, const char *what);

/* Read and parse dir/run.id; *text (may be NULL) receives the file's text (malloc'd).
 * FSB_ENOTFOUND "<dir> is not a run folder (no run.id)" when absent. */
int fsb_run_ident_read(const char *dir, fsb_run_ident *id, char **text);

/* Every key whose line differs between identity texts a (the folder's) and b (this run's),
 * as "its key=X, this run's key=Y" joined by "; " (a side without the line says "nothing"),
 * into out (always NUL-terminated, cut at n). */
void fsb_run_ident_diff(const char *a, const char *b, char *out, size_t n);

/* Text the report options point to (it must outlive their use). */
typedef struct fsb_run_report_text {
    char backbone[16]; /* the teacher's architecture */
    char setting[192]; /* "MiniImageNet test, 5-way, 15 queries/class, conv4 teacher" */
    char models[8192]; /* "Models: feat uses its own model (checkpoint XXH3-64 H); the other
                          rows use the teacher (XXH3-64 T)." or ""; maml's entry says
                          "(first-order MAML, checkpoint ...)" or "(second-order MAML, ...)";
                          a method with per-shot models names the shots of each checkpoint:
                          "maml uses its own models (second-order MAML): 1-shot checkpoint
                          XXH3-64 H1; 5-, 10-, 30-shot checkpoint XXH3-64 H5" (a shot without
                          one of its models: "3-shot the teacher") */
} fsb_run_report_text;

/* The report options a run's identity decides: the paper's columns only for the canonical
 * MiniImageNet test split at 5-way 15-query, the backbone's REFILLED row, the setting
 * that names the tables and the plot (the dataset as "MiniImageNet" when its fingerprint is
 * the canonical split's, else the split's name and fingerprint), and, when some method
 * brings its own model, the line under the tables naming those rows and the checkpoints'
 * hashes (NULL otherwise, so that runs without --model keep their tables). */
void fsb_run_ident_report_options(const fsb_run_ident *id, fsb_report_options *o,
                                  fsb_run_report_text *text);

/* Refuse (FSB_EMISMATCH, naming the folder and the first differing line) a folder `out`
 * that holds another run, or results or a journal without a run.id; FSB_OK for an absent
 * folder, an empty one, or one holding this same identity text. `flag` prefixes messages
 * (e.g. "--out"); a file in place of the folder is an error. Nothing is written. */
int fsb_runfolder_check(const char *out, const char *id_text, const char *flag);

/* fsb_runfolder_check, then create the folder (mkdir -p) and write run.id when it has
 * none. */
int fsb_runfolder_claim(const char *out, const char *id_text, const char *flag);

/* A journal record of *rec into buf ("%lld,%d,%s,%d,%d,%.3f,%.3f"); the text's length. */
int fsb_run_record_format(const fsb_episode_record *rec, char *buf, size_t n);

/* Parse a journal record into *rec (accuracy recomputed; 0 <= n_correct <= n_query, times
 * finite and >= 0, nothing after the last field). FSB_EFORMAT on anything else. */
int fsb_run_record_parse(const char *payload, fsb_episode_record *rec);

/* The final files of run folder `out` from the records of every task (sorted here, in
 * place, so the files never depend on the order tasks finished in): per_episode.csv and the
 * derived reports (report.h; options from the identity, fsb_run_ident_report_options), then
 * manifest.txt = id_text, manifest_extra ("key=value\n" lines or ""), versions, CPU core,
 * finish time and the wall seconds since t0 (fsb_now()). One line saying what was written
 * goes to log (may be NULL). Used by fsb_run and by `bench merge`. */
int fsb_runfolder_write_results(const char *out, const char *id_text, fsb_episode_record *recs,
                                size_t n, const char *manifest_extra, double t0, FILE *log);

/* `bench table --from RUN`: read run_dir/per_episode.csv and rebuild every derived file from
 * it alone. The paper's columns and the backbone follow from run_dir/run.id when there is one
 * (fsb_run_ident_report_options; a damaged run.id is an error naming it); without a run.id,
 * opt decides. */
int fsb_runfolder_rebuild(const char *run_dir, const fsb_report_options *opt,
                          fsb_report_result *res);

#endif
