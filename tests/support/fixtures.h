/* fixtures.h - test images and tiny datasets written by the tests themselves (never real
 * MiniImageNet pixels). PNGs of every colour type / bit depth, JPEGs, a Ravi-layout and a
 * class-folder dataset holding the same images, and corrupt variants. Test-only code: setup
 * failures abort (they are not under test). Everything is deterministic in its arguments.
 */
#ifndef FSB_FIXTURES_H
#define FSB_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

/* PNG colour types (same numbers as libpng's PNG_COLOR_TYPE_*). */
enum { FX_GREY = 0, FX_RGB = 2, FX_PALETTE = 3, FX_GREY_ALPHA = 4, FX_RGBA = 6 };

/* Write a PNG. `samples` holds h*w*channels values (channels = 1 grey, 3 RGB, 1 palette
 * index, 2 grey+alpha, 4 RGBA), row-major, each < 2^depth; depth is 1/2/4/8/16 as the
 * colour type allows. For FX_PALETTE, `palette` holds n_palette RGB triplets. `trns`: if
 * non-NULL, a tRNS chunk: for FX_PALETTE n_palette alpha bytes (as uint16), for FX_GREY one
 * grey value, for FX_RGB one RGB triplet. `interlace` 1 = Adam7. Parent folders created. */
void fx_png(const char *path, int w, int h, int color_type, int depth, const uint16_t *samples,
            const uint8_t *palette, int n_palette, const uint16_t *trns, int interlace);

/* Write an 8-bit RGB (or grey when grey=1: `px` then holds h*w bytes) baseline JPEG at the
 * given quality with libjpeg defaults (4:2:0 for colour). Parent folders created. */
void fx_jpeg(const char *path, int w, int h, const uint8_t *px, int grey, int quality);
/* A small progressive JPEG whose frame header (SOF2) claims w x h pixels: a decoder that
 * trusts it before checking sets up buffers for the whole claimed image. */
void fx_jpeg_progressive_claiming(const char *path, int w, int h);

/* Fill h*w*3 bytes with a smooth deterministic RGB pattern depending on `seed` (JPEG
 * round trips of it stay close, which some tests rely on). */
void fx_pattern(uint8_t *px, int w, int h, uint32_t seed);

/* The class name and file basename fx_make_* use: class "n%08d" (class c of split s is
 * numbered 100*s + c); file "<class>%08d.jpg" with the image number i. buf >= 32 bytes. */
void fx_class_name(char *buf, int split, int cls);
void fx_file_name(char *buf, int split, int cls, int i);

/* A Ravi-layout dataset under root: root/split/{train,val,test}.csv (header filename,label;
 * rows in a shuffled, non-canonical order) and root/images/<file>.jpg, each a size x size
 * JPEG (quality 95) of fx_pattern with seed 1000*(100*split+cls)+i. n_classes[s] classes
 * in split s (0 = train, 1 = val, 2 = test; 0 classes = no CSV for that split). */
void fx_make_ravi(const char *root, const int n_classes[3], int per_class, int size);

/* The same images (same classes, basenames and bytes) as fx_make_ravi, in the class-folder
 * layout: root/<split>/<class>/<file>.jpg. Both layouts give the same split fingerprints. */
void fx_make_folders(const char *root, const int n_classes[3], int per_class, int size);

/* Corrupt variants in `dir`: "truncated.jpg" (a valid 32x32 JPEG cut to half its bytes),
 * "fake.png" (text), "empty.jpg" (0 bytes), "small.jpg" (a valid 20x30 JPEG: smaller than an
 * 84 crop), "good.jpg" (a valid 96x96 JPEG) and "good.png" (a valid 90x100 RGB PNG). */
void fx_make_corrupt(const char *dir);

/* One PNG of every kind in `dir`, all FX_ZOO_W x FX_ZOO_H (large enough for an 84 crop):
 * grey{1,2,4,8,16}.png, grey_trns4.png, grey_alpha{8,16}.png, palette{1,2,4,8}.png,
 * palette_trns8.png, rgb{8,16}.png, rgb_trns8.png, rgba{8,16}.png, interlaced_rgb8.png, and
 * the same pattern as JPEG: rgb.jpg, grey.jpg. Content: RGB = fx_pattern(seed 77); grey =
 * its R channel (scaled to the bit depth as v*max/255; 16-bit as v*257); alpha 200 (grey)
 * or p % 256 (RGBA); palette index of pixel p = p % palette size, palette entry i =
 * (i, 255-i, 7i mod 256); tRNS: palette alphas 255-i, grey 1, RGB (1,2,3). Returns the
 * number of PNGs (19), named fx_zoo_names[0..18]. */
#define FX_ZOO_W 90
#define FX_ZOO_H 86
extern const char *const fx_zoo_names[19];
int fx_make_png_zoo(const char *dir);

/* Cut the file at `path` to its first `keep` bytes (keep < 0: to half its size). */
void fx_truncate(const char *path, long keep);

/* An IDX file dir/name (gzipped): magic 0x80<ndim>, dims, then `n` bytes of data (may be
 * short, for truncation tests). */
void fx_idx(const char *dir, const char *name, int ndim, const uint32_t *dims, const uint8_t *data,
            size_t n);
/* <prefix>-images-idx3-ubyte.gz and <prefix>-labels-idx1-ubyte.gz in dir: n images of 2x3
 * pixels, pixel value = image index, labels = i % 10. */
void fx_idx_pair(const char *dir, const char *prefix, uint32_t n);

#endif
