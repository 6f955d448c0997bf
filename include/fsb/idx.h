/* idx.h - the IDX format of (Fashion-)MNIST, gzipped or plain (the demo's source, demo.h).
 */
#ifndef FSB_IDX_H
#define FSB_IDX_H

#include <stdint.h>
#include <stdio.h>

typedef struct fsb_idx {
    int n;           /* images */
    int rows, cols;  /* image size */
    uint8_t *pixels; /* [n][rows][cols] grey, owned */
    uint8_t *labels; /* [n], owned */
} fsb_idx;

/* Read an idx3-ubyte images file and its idx1-ubyte labels file (gzip or plain, via zlib).
 * Errors name the file: bad magic, counts that disagree, truncated data. */
int fsb_idx_read(fsb_idx *out, const char *images_path, const char *labels_path);
void fsb_idx_free(fsb_idx *idx);

#endif
