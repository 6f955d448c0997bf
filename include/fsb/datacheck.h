/* datacheck.h - a full check of a few-shot dataset folder, listing every problem.
 *
 * Unlike fsb_split_open (which stops at the first listing error) the check reads
 * everything and reports every problem it finds, one per line, to a report stream:
 * missing splits, CSV header, malformed rows, duplicate rows, refused names, broken
 * symlinks, missing files, files that do not decode, images smaller than the image size,
 * the same file listed in two splits, and files with the same bytes (XXH3-128 of the file)
 * under other paths, in any layout: in two splits (overlap) or twice in one (duplicates);
 * plus a summary per split (images, classes, images per class, fingerprint) and whether it
 * is the canonical MiniImageNet (Ravi & Larochelle) split.
 */
#ifndef FSB_DATACHECK_H
#define FSB_DATACHECK_H

#include "fsb/threads.h"

#include <stdio.h>

/* Options of the check. Zero-initialise, then set what you need. */
typedef struct fsb_data_check_opts {
    int image_size;    /* the --image-size the data is for: an image with a side below it is
                          a problem (pack and run refuse it); 0: the protocol's 84 */
    FILE *progress;    /* progress bar stream while decoding (terminals only); NULL: none */
    int skip_split[3]; /* 1: do not check train / val / test (bench data check --split) */
} fsb_data_check_opts;

/* Check the splits "train", "val" and "test" found under `root` (each in either layout of
 * fsb_split_open_lenient, whose rules are the loader's), except those o->skip_split names.
 * A missing split is a problem, worded as fsb_split_require refuses it: bench pretrain reads
 * train and val, bench run test and, for cl2n, train (when no split at all exists, that is
 * the one problem). Every image is read once, hashed and decoded, in parallel over `pool`
 * (NULL: the caller); the report is identical for any thread count. Report lines:
 *   "<file>:<line>: <problem>"  for CSV problems and for images listed in a CSV,
 *   "<file>: <problem>"         for images of the folder layout and other files,
 *   "<split>: ..."              summaries (not problems), and a final
 *   "problems: N" line.
 * *n_problems (if not NULL) receives N. Returns FSB_OK when N == 0, FSB_EFORMAT ("N
 * problems in ROOT") otherwise, FSB_ENOTFOUND when root is missing, or FSB_EIO/FSB_ENOMEM
 * when the check itself could not run. `o` may be NULL (defaults). */
int fsb_data_check(const char *root, FILE *report, fsb_pool *pool, const fsb_data_check_opts *o,
                   int *n_problems);

#endif
