/* dataset.h - the image listing of one split of a few-shot dataset.
 *
 * Two layouts are read: Ravi (ROOT/split/<split>.csv or ROOT/<split>.csv, header
 * "filename,label", images in ROOT/images/) and class folders (ROOT/<split>/.../<class>/
 * *.jpg|*.jpeg|*.png, a class being a leaf folder of images at any depth, named by its
 * path relative to the split folder). Opening reads the listing only, never pixels.
 *
 * Canonical order (the base of episode portability): classes sorted bytewise by name;
 * images of a class contiguous and sorted bytewise by file basename. The fingerprint is
 * XXH3-64 (seed 0) of the lines "<class>\t<basename>\n" in that order, so the same images
 * give the same fingerprint in either layout and on any machine.
 */
#ifndef FSB_DATASET_H
#define FSB_DATASET_H

#include <stddef.h>
#include <stdint.h>

/* Fingerprints of the canonical Ravi & Larochelle MiniImageNet split CSVs (the published
 * twitter/meta-learning-lstm files): the paper's numbers are comparable only on these. */
#define FSB_MINIIMAGENET_FP_TRAIN 0x3cfb3ee002e3d937ull
#define FSB_MINIIMAGENET_FP_VAL 0xdae540503c58b493ull
#define FSB_MINIIMAGENET_FP_TEST 0x120c10c9ea03f538ull

typedef enum { FSB_LAYOUT_RAVI = 0, FSB_LAYOUT_FOLDERS = 1 } fsb_layout;

typedef struct fsb_split {
    char *root;           /* the dataset root as given (owned) */
    char *name;           /* "train", "val" or "test" (owned) */
    char *source;         /* the CSV file or split folder read, for messages (owned) */
    fsb_layout layout;    /* which layout was found */
    int n_classes;        /* classes in the split */
    char **class_names;   /* [n_classes] sorted bytewise (owned) */
    int *class_start;     /* [n_classes] first image index of each class */
    int *class_count;     /* [n_classes] images of each class */
    int n_images;         /* images in the split */
    char **paths;         /* [n_images] file path relative to root, canonical order (owned) */
    int *labels;          /* [n_images] class index of each image */
    int *src_line;        /* [n_images] 1-based CSV line (Ravi) or 0 (folders) */
    uint64_t fingerprint; /* see the top comment */
} fsb_split;

/* Read the listing of split `name` under `root`, detecting the layout. Errors name the
 * file and line: missing root or split, missing/wrong CSV header, empty CSV, a duplicate
 * filename, a malformed row. Listed files are not checked here (fsb_data_check does).
 * Details: ROOT/split/<name>.csv wins over ROOT/<name>.csv, which wins over the folder
 * ROOT/<name>/. CSV: optional UTF-8 BOM, LF or CRLF line ends, blank lines ignored; a row
 * is exactly "<filename>,<label>" with both fields non-empty, no control characters and
 * no '/' in the filename; a filename may appear only once in a split (whatever its label).
 * Class and file names of either layout follow fsb_split_field_ok (a comma in a folder or
 * file name is refused here, naming the full path, not when an episode happens to use it).
 * Folders: entries starting with '.' are skipped, symlinks followed; every folder that
 * directly holds .jpg, .jpeg or .png files (any case) is a class; an image directly in the split
 * folder, or a split with no image at all, is an error. So is, naming its full path, an entry
 * that cannot be followed (a dangling symlink, a symlink that leads back to itself, an
 * unreadable entry) and a symlink loop: a folder that is one of the folders above it (the same
 * device and inode), however deep. On error `s` is left zeroed. */
int fsb_split_open(fsb_split *s, const char *root, const char *name);

/* Receives one problem of a lenient listing, a whole message naming the path; returns FSB_OK
 * to go on, or a negative status, which stops the listing and is returned. */
typedef int (*fsb_split_problem_fn)(void *ctx, const char *problem);

/* fsb_split_open, except that problems with single entries of the folder layout (a refused
 * name, an image directly in the split folder, an entry that cannot be followed, a symlink
 * loop, a sub-folder that cannot be opened) go to `problem` and the entry is skipped;
 * everything else is still an error. With problem NULL this is fsb_split_open. `bench data
 * check` lists with it, so it reports every problem under the very rules the loader applies. */
int fsb_split_open_lenient(fsb_split *s, const char *root, const char *name,
                           fsb_split_problem_fn problem, void *ctx);
/* 1 when n bytes at s may be a class or file name (a split CSV field, a class folder's path
 * or an image's file name): not empty, no control characters (they would break the
 * fingerprint's line format), no comma (names are written to comma-separated episode
 * manifests and results) and, for a filename (is_file), no '/' and not "." or "..".
 * `bench data check` and the loader use the same rule. */
int fsb_split_field_ok(const char *s, size_t n, int is_file);
void fsb_split_free(fsb_split *s);

/* 1 when split `name` has a CSV (either place) or a folder under `root`, else 0; nothing is
 * read. For "use whichever splits exist" callers. */
int fsb_split_exists(const char *root, const char *name);

/* The dataset rule every command applies before it reads a pixel (bench data check, data
 * pack --split, run, pretrain): each of the n splits named exists, in either layout, and
 * lists cleanly under fsb_split_open's rules (CSV syntax, class and file names without commas
 * or control characters, no dangling symlink or symlink loop, ...). `why` ends the message of
 * a missing split, saying who needs it. Returns FSB_OK; FSB_ENOTFOUND "ROOT: no val split
 * (looked for ROOT/split/val.csv, ROOT/val.csv and ROOT/val/); <why>"; or the listing's
 * error (file and line). Listing every split first means a bad one is refused before
 * anything is packed. fsb_data_check reports the same things as problems. */
int fsb_split_require(const char *root, const char *const *names, int n, const char *why);

/* Index of the class with that name, or -1. */
int fsb_split_class_index(const fsb_split *s, const char *class_name);
/* Index of the image whose basename is `file` in class `cls`, or -1. */
int fsb_split_image_index(const fsb_split *s, int cls, const char *file);
/* The basename of image i (points into s->paths[i]): the CSV filename (Ravi) or the file
 * name inside its class folder; this is what the canonical order and fingerprint use. */
const char *fsb_split_basename(const fsb_split *s, int i);

#endif
