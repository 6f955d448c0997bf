/* image.h - decoding JPEG and PNG files into 8-bit RGB pixels (HWC).
 *
 * The format is detected from the first bytes (JPEG: FF D8 FF; PNG: the 8-byte PNG
 * signature), never from the file name. Any file that is empty, of another format,
 * truncated or corrupt is FSB_EFORMAT with a message naming it; libjpeg/libpng never
 * print anything and never abort the process.
 */
#ifndef FSB_IMAGE_H
#define FSB_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Largest accepted image, in pixels (w*h); larger files are refused as FSB_EFORMAT so
 * that a corrupt header cannot ask for gigabytes. */
#define FSB_IMAGE_MAX_PIXELS (64 * 1024 * 1024)

typedef struct fsb_image {
    int w;        /* width in pixels */
    int h;        /* height in pixels */
    uint8_t *px;  /* [h][w][3] RGB, row-major, no padding (owned, malloc'd) */
    int channels; /* the file's: 1 = greyscale (px holds 3 equal channels), 3 = colour */
} fsb_image;

/* Read and decode the file at `path` into `img` (which the caller releases with
 * fsb_image_free). JPEG: libjpeg-turbo with its default, exact settings (islow IDCT, fancy
 * upsampling, no DCT scaling), greyscale expanded to 3 equal channels, CMYK/YCCK converted
 * naively (R = (255-C)(255-K)/255, inverted for Adobe files); every libjpeg warning except
 * the harmless ones (extraneous bytes before a marker, unknown JFIF revision or Adobe
 * transform code, bad ICC marker) is an error, so "premature end of data" fails.
 * PNG: every colour type and bit depth (1/2/4/8/16-bit grey, grey+alpha, palette, RGB,
 * RGBA, tRNS, interlaced); sub-8-bit grey scaled to 8 bits (libpng's expansion, e.g. 1-bit
 * 1 -> 255), 16-bit reduced to its high byte, palette expanded, grey copied to 3 channels,
 * alpha and tRNS ignored (dropped, not composited); gamma and colour profiles ignored.
 * Errors: FSB_ENOTFOUND/FSB_EIO (cannot read), FSB_EFORMAT (everything about the content),
 * FSB_ENOMEM; the message starts with the path. */
int fsb_image_load(fsb_image *img, const char *path);

/* Same as fsb_image_load on `size` bytes already in memory; `name` is used in messages. */
int fsb_image_decode(fsb_image *img, const void *data, size_t size, const char *name);

/* The channels the file at `path` holds, from its header alone (no pixel decoded): 1 for a
 * greyscale JPEG (one component) or a grey / grey+alpha PNG, 3 for anything else (colour,
 * palette, CMYK), as fsb_image.channels after a full decode. Errors as fsb_image_load's for
 * what the header shows (FSB_EFORMAT, FSB_ENOTFOUND, FSB_EIO), naming the file. */
int fsb_image_probe_channels(const char *path, int *channels);

/* Release the pixels and zero the struct; NULL or a zeroed struct is a no-op. */
void fsb_image_free(fsb_image *img);

#endif
