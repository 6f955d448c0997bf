/* image.c - JPEG (libjpeg-turbo) and PNG (libpng) decoding to RGB HWC (see fsb/image.h).
 *
 * Both libraries report errors by calling back into us; the callbacks record the message
 * and longjmp to the decode function, which frees everything and returns FSB_EFORMAT.
 * Everything touched after setjmp and needed after a longjmp is volatile or lives in a
 * struct that outlives the jump.
 */
#include "fsb/image.h"
#include "fsb/fileio.h"
#include "fsb/status.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

void fsb_image_free(fsb_image *img)
{
    if (!img) return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* ---- JPEG ---------------------------------------------------------------------------- */

/* libjpeg error manager that longjmps instead of exit()ing or printing. */
typedef struct jerr_mgr {
    struct jpeg_error_mgr pub; /* libjpeg's part; must be first */
    jmp_buf jb;                /* where to jump on an error */
    char msg[JMSG_LENGTH_MAX]; /* the formatted libjpeg message */
} jerr_mgr;

static void jerr_exit(j_common_ptr cinfo)
{
    jerr_mgr *e = (jerr_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* level < 0 is a warning (corrupt data libjpeg would paper over); >= 0 is tracing. */
static void jerr_emit(j_common_ptr cinfo, int level)
{
    if (level >= 0) return;
    int code = cinfo->err->msg_code;
    if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM ||
        code == JWRN_BOGUS_ICC)
        return;
    jerr_exit(cinfo);
}

static void jerr_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* libjpeg reports errors through err (longjmp to err->jb; the caller sets it up). */
static void jerr_attach(struct jpeg_decompress_struct *cinfo, jerr_mgr *err)
{
    cinfo->err = jpeg_std_error(&err->pub);
    err->pub.error_exit = jerr_exit;
    err->pub.emit_message = jerr_emit;
    err->pub.output_message = jerr_output;
}

static int decode_jpeg(fsb_image *img, const unsigned char *data, size_t size, const char *name)
{
    struct jpeg_decompress_struct cinfo;
    jerr_mgr err;
    uint8_t *volatile px = NULL;
    unsigned char *volatile row = NULL;
    jerr_attach(&cinfo, &err);
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(px);
        free(row);
        return fsb_error(FSB_EFORMAT, "%s: corrupt or truncated JPEG: %s", name, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    /* the declared size, before the decoder allocates for it (a progressive JPEG sets up
     * whole-image buffers in jpeg_start_decompress); and a cap on what it may allocate */
    if (cinfo.image_width == 0 || cinfo.image_height == 0 ||
        (int64_t)cinfo.image_width * cinfo.image_height > FSB_IMAGE_MAX_PIXELS) {
        int dw = (int)cinfo.image_width, dh = (int)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        return fsb_error(FSB_EFORMAT, "%s: JPEG of %dx%d pixels is empty or too large", name, dw,
                         dh);
    }
    cinfo.mem->max_memory_to_use = 16L * FSB_IMAGE_MAX_PIXELS;
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int inverted = cmyk && cinfo.saw_Adobe_marker;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    /* no scaling: the output is the declared size checked above */
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    px = malloc((size_t)w * h * 3);
    if (cmyk) row = malloc((size_t)w * 4);
    if (!px || (cmyk && !row)) {
        jpeg_destroy_decompress(&cinfo);
        free(px);
        free(row);
        return fsb_error(FSB_ENOMEM, "%s: out of memory decoding JPEG", name);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        if (!cmyk) {
            JSAMPROW r = px + (size_t)y * w * 3;
            jpeg_read_scanlines(&cinfo, &r, 1);
            continue;
        }
        JSAMPROW r = row;
        jpeg_read_scanlines(&cinfo, &r, 1);
        uint8_t *o = px + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            unsigned k = row[4 * x + 3];
            for (int c = 0; c < 3; c++) {
                unsigned v = row[4 * x + c];
                o[3 * x + c] = (uint8_t)(inverted ? v * k / 255 : (255 - v) * (255 - k) / 255);
            }
        }
    }
    int grey = cinfo.jpeg_color_space == JCS_GRAYSCALE;
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    img->w = w;
    img->h = h;
    img->px = px;
    img->channels = grey ? 1 : 3;
    return FSB_OK;
}

/* ---- PNG ----------------------------------------------------------------------------- */

/* Where libpng reads from, and where its error message goes. */
typedef struct png_src {
    const unsigned char *data; /* the whole file */
    size_t size;               /* its length */
    size_t pos;                /* next byte to hand out */
    char msg[256];             /* libpng's error message */
} png_src;

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->size - s->pos) png_error(png, "unexpected end of file (truncated PNG)");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static int decode_png(fsb_image *img, const unsigned char *data, size_t size, const char *name)
{
    png_src src = {data, size, 0, ""};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return fsb_error(FSB_ENOMEM, "%s: out of memory decoding PNG", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(px);
        free(rows);
        return fsb_error(FSB_EFORMAT, "%s: corrupt or truncated PNG: %s", name, src.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, 65535, 65535);
    /* the ancillary chunks libpng reads into a buffer of their declared length (palettes
     * suggestions, ICC profiles, text, EXIF, calibration) mean nothing to pixels here: skip
     * them unread, so a crafted length cannot make libpng allocate it (found by
     * tests/fuzz/fuzz_image: a 58-byte file's sPLT claimed 1.96 GB); and no chunk may claim
     * more than the file holds */
    static const png_byte skip[] = {
        's', 'P', 'L', 'T', 0, 'i', 'C', 'C', 'P', 0, 'i', 'T', 'X', 't', 0, 't', 'E', 'X', 't', 0,
        'z', 'T', 'X', 't', 0, 'e', 'X', 'I', 'f', 0, 'p', 'C', 'A', 'L', 0, 's', 'C', 'A', 'L', 0};
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skip, (int)(sizeof skip / 5));
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0); /* unknown ones too */
    png_set_chunk_malloc_max(png, size + 1024);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ct = png_get_color_type(png, info);
    if ((uint64_t)w * h > FSB_IMAGE_MAX_PIXELS) {
        png_destroy_read_struct(&png, &info, NULL);
        return fsb_error(FSB_EFORMAT, "%s: PNG of %ux%u pixels is too large", name, (unsigned)w,
                         (unsigned)h);
    }
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    /* palette expansion also turns tRNS into alpha; strip it whichever way it came */
    if ((ct & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3)
        png_error(png, "unexpected row layout after conversion to RGB");
    px = malloc((size_t)w * h * 3);
    rows = malloc((size_t)h * sizeof *rows);
    if (!px || !rows) {
        png_destroy_read_struct(&png, &info, NULL);
        free(px);
        free(rows);
        return fsb_error(FSB_ENOMEM, "%s: out of memory decoding PNG", name);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = px + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    img->w = (int)w;
    img->h = (int)h;
    img->px = px;
    img->channels = ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA ? 1 : 3;
    return FSB_OK;
}

/* ---- entry points -------------------------------------------------------------------- */

int fsb_image_decode(fsb_image *img, const void *data, size_t size, const char *name)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const unsigned char *b = data;
    memset(img, 0, sizeof *img);
    if (size == 0) return fsb_error(FSB_EFORMAT, "%s: empty file (0 bytes), not an image", name);
    if (size >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return decode_jpeg(img, b, size, name);
    if (size >= 8 && memcmp(b, png_sig, 8) == 0) return decode_png(img, b, size, name);
    return fsb_error(FSB_EFORMAT, "%s: not a JPEG or PNG file (by its first bytes)", name);
}

int fsb_image_load(fsb_image *img, const char *path)
{
    void *data;
    size_t size;
    memset(img, 0, sizeof *img);
    int st = fsb_read_file(path, &data, &size);
    if (st) return st;
    st = fsb_image_decode(img, data, size, path);
    free(data);
    return st;
}

/* The JPEG header's colour space through libjpeg (any markers before the frame header are
 * skipped as in a decode); 1 for one component, else 3. */
static int probe_jpeg(FILE *fp, const char *path, int *channels)
{
    struct jpeg_decompress_struct cinfo;
    jerr_mgr err;
    jerr_attach(&cinfo, &err);
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&cinfo);
        return fsb_error(FSB_EFORMAT, "%s: corrupt or truncated JPEG: %s", path, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, fp);
    jpeg_read_header(&cinfo, TRUE);
    *channels = cinfo.jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    jpeg_destroy_decompress(&cinfo);
    return FSB_OK;
}

int fsb_image_probe_channels(const char *path, int *channels)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    *channels = 3;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return fsb_error(errno == ENOENT ? FSB_ENOTFOUND : FSB_EIO, "%s: cannot open: %s", path,
                         strerror(errno));
    unsigned char b[26]; /* PNG: signature, IHDR length and type, width, height, depth, type */
    size_t n = fread(b, 1, sizeof b, fp);
    int st = FSB_OK;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
        rewind(fp);
        st = probe_jpeg(fp, path, channels);
    } else if (n >= 8 && memcmp(b, png_sig, 8) == 0) {
        if (n < sizeof b || memcmp(b + 12, "IHDR", 4) != 0)
            st = fsb_error(FSB_EFORMAT, "%s: corrupt or truncated PNG: no IHDR chunk first", path);
        else /* colour type: 0 grey, 4 grey + alpha (PNG specification, IHDR) */
            *channels = b[25] == 0 || b[25] == 4 ? 1 : 3;
    } else {
        st = fsb_error(FSB_EFORMAT, "%s: not a JPEG or PNG file (by its first bytes)", path);
    }
    fclose(fp);
    return st;
}
