/* demo.h - the main job's demo on a machine without MiniImageNet: Debian's
 * dataset-fashion-mnist package ships the IDX files (idx.h), which fsb_demo_make() turns into
 * an ordinary class-folder dataset (grey PNGs) that the normal pipeline then reads, and
 * fsb_demo_prepare() pre-trains a small teacher on its base classes.
 */
#ifndef FSB_DEMO_H
#define FSB_DEMO_H

#include <stdio.h>

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

/* What the main job needs to run the demo: the dataset root and a teacher trained on its
 * base classes. */
typedef struct fsb_demo {
    char *data;    /* the demo dataset root (owned) */
    char *teacher; /* a ConvNet-4 teacher for 28x28 input (owned) */
} fsb_demo;

/* Make (or reuse) the demo under `dir` (NULL: the user cache folder, fsb_cache_user_dir):
 * dir/fashion-mnist-demo (fsb_demo_make, 600 images per class) and a teacher pre-trained on
 * its 5 base classes with fsb_pretrain (ConvNet-4, 28x28, 12 epochs; resumable, so an
 * interrupted demo continues). Progress and notes go to the given streams. */
int fsb_demo_prepare(fsb_demo *d, const char *dir, FILE *log, FILE *progress);
void fsb_demo_free(fsb_demo *d);

#endif
