/* e2e.h - what the end-to-end suites share: a generated Ravi dataset (4 train, 3 val and
 * 5 test classes of 12 JPEGs, 32x32), a ConvNet-4 teacher pre-trained on it through
 * `bench pretrain`, and comparisons of run outputs that ignore timing columns.
 * Test-only code; set-up failures fail the calling test. */
#ifndef FSB_E2E_H
#define FSB_E2E_H

/* Small images so a ConvNet-4 pass is cheap: packed 32x32, network input 28x28. */
#define TU_E2E_IMG " --image-size 32 --resize 32 --crop 28"

typedef struct tu_e2e {
    char *root;    /* the generated dataset (a fresh temporary folder) */
    char *work;    /* outputs; the packed cache is work/cache */
    char *teacher; /* work/teacher.fsbt */
} tu_e2e;

/* Make the dataset and pre-train the teacher with `bench pretrain --data ROOT --cache
 * WORK/cache <pretrain_flags> TU_E2E_IMG --out TEACHER`. */
void tu_e2e_make(tu_e2e *e, const char *pretrain_flags);
/* Remove both folders and free the paths. */
void tu_e2e_free(tu_e2e *e);

/* text with the last comma-separated column of every line removed (malloc'd). */
char *tu_drop_last_column(const char *text);
/* per_episode.csv of a run folder without its two timing columns (malloc'd). */
char *tu_results_without_timing(const char *dir);
/* The rows of `method` at `shot` (0: every shot) of a run's per_episode.csv without the
 * timing columns (malloc'd); their count in *n. */
char *tu_rows_at(const char *dir, const char *method, int shot, int *n);
/* The value of `key` in dir/file, a file of "key=value" lines not starting with it (run.id,
 * manifest.txt), malloc'd; a missing file or key fails the calling test. */
char *tu_file_value(const char *dir, const char *file, const char *key);

/* "mpirun ..." with the flags this machine needs (CI runs as root; Open MPI kept off the
 * network), or NULL with *why when the build has no MPI or mpirun is absent. */
const char *tu_mpirun_prefix(const char **why);

#endif
