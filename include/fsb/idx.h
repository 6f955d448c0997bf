/* idx.h - the IDX format of (Fashion-)MNIST, gzipped, and the demo dataset built from it.
 *
 * The README's main job runs out of the box on a machine without MiniImageNet: Debian's
 * dataset-fashion-mnist package ships the IDX files, which fsb_demo_make() turns into an
 * ordinary class-folder dataset (grey PNGs) that the normal pipeline then reads.
 */
#ifndef FSB_IDX_H
#define FSB_IDX_H

#include <stdint.h>

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

/* Where Debian's dataset-fashion-mnist package puts the files. */
#define FSB_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Build the demo dataset under out_root from the Fashion-MNIST IDX files in src_dir:
 *   train/ = 5 base classes (T-shirt/top, Trouser, Pullover, Sneaker, Bag), first
 *            `per_class` images of each from the training file;
 *   val/   = the 5 other classes, first `per_class` images of each from the training file;
 *   test/  = the same 5 novel classes, first `per_class` images of each from the test file.
 * (val and test share classes but no images: the demo has only 10 classes.) Each split is
 * <split>/<class>/<index>.png, 28x28 grey. The tree is built in a temporary folder and
 * renamed into place, so an interrupted run leaves no half dataset; an existing complete
 * out_root is reused as it is. */
int fsb_demo_make(const char *src_dir, const char *out_root, int per_class);

#endif
