/* episodes.h - portable, nested N-way K-shot episodes and their CSV manifests.
 *
 * Episode i of a sweep is a pure function of (seed, split fingerprint, way, largest shot,
 * query, i): Philox4x32-10 keyed by a hash of the parameters, stream i (docs/episodes.md
 * gives the exact algorithm). Any episode can be drawn alone, in any order, on any thread
 * or machine. Shots are nested: the K-shot support of a class is the first K images of one
 * per-class order, and the classes and queries are the same at every shot.
 */
#ifndef FSB_EPISODES_H
#define FSB_EPISODES_H

#include "fsb/dataset.h"
#include "fsb/threads.h"

#include <stddef.h>
#include <stdint.h>

#define FSB_EPISODES_GENERATOR "fsb-nested-philox/1" /* name/version of the sampler below */
#define FSB_EPISODES_FORMAT "fsbench-episodes/1"     /* manifest format/version */
#define FSB_EPISODES_MAX_SHOTS 16                    /* most shot values in one sweep */
#define FSB_EPISODES_MAX_COUNT 1000000               /* most episodes in one sweep */
#define FSB_EPISODES_KEY_TAG 0x455049534F444531ull   /* "EPISODE1" in ASCII, big-endian */

/* What a sweep is drawn from (besides the split). */
typedef struct fsb_episode_params {
    uint64_t seed; /* user seed (--seed) */
    int way;       /* N: classes per episode, >= 1 */
    int max_shot;  /* largest K: support images kept per class, >= 1 */
    int query;     /* queries per class, >= 0 */
} fsb_episode_params;

/* One episode. Labels are 0..way-1 in class draw order: label c is class classes[c].
 * Image and class indices refer to the split (fsb_split.paths / class_names). */
typedef struct fsb_episode {
    int way;          /* N */
    int max_shot;     /* largest K; support rows are this long */
    int query;        /* queries per class */
    int *classes;     /* [way] split class index of each label */
    int *support;     /* [way][max_shot] per-class support order; first K = the K-shot support */
    int *queries;     /* [way][query] query image indices */
    int owns_storage; /* 1 when the arrays were malloc'd by fsb_episode_init */
} fsb_episode;

/* A whole sweep: `n_episodes` episodes stored contiguously, plus what produced them. */
typedef struct fsb_sweep {
    char generator[64];                /* FSB_EPISODES_GENERATOR, or the manifest's */
    char split[64];                    /* split name ("test", ...) */
    uint64_t seed;                     /* seed used (informational for loaded manifests) */
    uint64_t fingerprint;              /* fingerprint of the split the episodes were drawn on */
    int way;                           /* N */
    int query;                         /* queries per class */
    int n_shots;                       /* values in shots[] */
    int shots[FSB_EPISODES_MAX_SHOTS]; /* ascending shot values; the last is max_shot */
    int max_shot;                      /* shots[n_shots - 1] */
    int n_episodes;                    /* episodes in the sweep */
    int *classes;                      /* [n_episodes][way] (owned) */
    int *support;                      /* [n_episodes][way][max_shot] (owned) */
    int *queries;                      /* [n_episodes][way][query] (owned) */
} fsb_sweep;

/* --- one episode ----------------------------------------------------------------------- */

/* The 64-bit Philox key of a sweep, chained fsb_mix64 over the parameters (docs/episodes.md):
 * k = mix(seed ^ FSB_EPISODES_KEY_TAG); k = mix(k ^ fingerprint); k = mix(k ^ way);
 * k = mix(k ^ max_shot); k = mix(k ^ query). Episode i uses stream i of this key. */
uint64_t fsb_episode_key(const fsb_episode_params *p, uint64_t fingerprint);

/* Check that episodes can be drawn: way <= classes (error names --way), every class has at
 * least max_shot + query images (error names the class and --shots/--query). */
int fsb_episode_check(const fsb_split *s, const fsb_episode_params *p);

/* The flags that set way, shots and query, for the messages of fsb_episode_check_flags. */
typedef struct fsb_episode_flags {
    const char *way;   /* e.g. "--val-way" */
    const char *shots; /* e.g. "--val-shots" */
    const char *query; /* e.g. "--val-query" */
} fsb_episode_flags;

/* fsb_episode_check with the messages naming the caller's flags (bench pretrain validates on
 * --val-way/--val-shots/--val-query); f NULL: --way, --shots, --query. */
int fsb_episode_check_flags(const fsb_split *s, const fsb_episode_params *p,
                            const fsb_episode_flags *f);

/* Ints of scratch fsb_episode_sample needs for this split: max(n_classes, largest class). */
size_t fsb_episode_scratch_len(const fsb_split *s);

/* Allocate an episode's arrays for these sizes (caller-owned struct; fsb_episode_free). */
int fsb_episode_init(fsb_episode *e, int way, int max_shot, int query);
/* Free arrays allocated by fsb_episode_init; a view or zeroed struct is left alone. */
void fsb_episode_free(fsb_episode *e);

/* Draw episode `index` into `e` (arrays already sized for p: fsb_episode_init or a sweep
 * view). `scratch` holds fsb_episode_scratch_len(s) ints. Requires fsb_episode_check(s, p)
 * to have succeeded. Deterministic; no allocation; thread-safe with distinct e/scratch. */
void fsb_episode_sample(fsb_episode *e, const fsb_split *s, const fsb_episode_params *p,
                        uint64_t index, int *scratch);

/* The K-shot support of label c: a pointer to its first K images (K <= max_shot). */
const int *fsb_episode_support_of(const fsb_episode *e, int c);
/* Gather the K-shot support as flat arrays, label-major: idx[c*K + j] = support[c][j],
 * labels[c*K + j] = c. Each array has way*K ints; labels may be NULL. */
void fsb_episode_support_k(const fsb_episode *e, int k, int *idx, int *labels);
/* Gather the queries likewise: idx[c*query + j], labels[c*query + j] = c (labels may be NULL). */
void fsb_episode_queries(const fsb_episode *e, int *idx, int *labels);

/* --- sweeps ---------------------------------------------------------------------------- */

/* Draw episodes 0..n_episodes-1 of the sweep (seed, way, shots, query) on split `s`, in
 * parallel over `pool` (NULL: on the caller). Results do not depend on the thread count.
 * `shots` is ascending without duplicates. Fills a caller-owned sweep (fsb_sweep_free). */
int fsb_sweep_generate(fsb_sweep *sw, const fsb_split *s, uint64_t seed, int way, const int *shots,
                       int n_shots, int query, int n_episodes, fsb_pool *pool);
void fsb_sweep_free(fsb_sweep *sw);

/* A view of episode i (pointers into the sweep; valid until fsb_sweep_free). */
void fsb_sweep_episode(const fsb_sweep *sw, int i, fsb_episode *e);

/* --- manifests ------------------------------------------------------------------------- */

/* The content hash: XXH3-128 of the column header row and the data rows, each followed by
 * "\n", written as 32 lowercase hex digits (high 64 bits first) into hex[33]. */
int fsb_sweep_hash(const fsb_sweep *sw, const fsb_split *s, char hex[33]);

/* Write the sweep as a manifest (docs/episodes.md), atomically. Image and class names come
 * from `s`. If hex is not NULL it receives the content hash. */
int fsb_episodes_export(const fsb_sweep *sw, const fsb_split *s, const char *path, char hex[33]);

/* Read a manifest and map it to split `s` by class name and image basename. Everything is
 * validated, errors naming the file and line: header keys, the column row, each row's
 * position (episode, label, role, rank), unknown classes or images, a class repeated in an
 * episode, an image repeated in an episode (so support and query never overlap), missing or
 * extra rows, and the content hash. *fingerprint_differs (may be NULL) is set to 1 when the
 * manifest's fingerprint is not s->fingerprint (episodes are still mapped by name).
 * Fills a caller-owned sweep; re-exporting it gives a byte-identical file. */
int fsb_episodes_load(fsb_sweep *sw, const fsb_split *s, const char *path,
                      int *fingerprint_differs);

/* The split named in a manifest's header ("# split=..."), into name[n]. */
int fsb_episodes_manifest_split(const char *path, char *name, size_t n);

/* Parse an --episodes value: all digits -> *count in [1, FSB_EPISODES_MAX_COUNT] and
 * *is_path = 0; otherwise an existing regular file -> *is_path = 1 (*count untouched).
 * Errors name `flag`. */
int fsb_episodes_parse_arg(const char *flag, const char *text, long *count, int *is_path);

#endif
