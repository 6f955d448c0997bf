/* fixtures.c - writes test images and tiny datasets with libpng/libjpeg (see fixtures.h).
 * Test-only: any failure aborts the test with a message. */
#include "fixtures.h"
#include "fsb/fileio.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

static void die(const char *what, const char *path)
{
    fprintf(stderr, "fixture setup failed: %s: %s\n", what, path);
    abort();
}

static FILE *open_out(const char *path)
{
    char *p = strdup(path);
    char *slash = p ? strrchr(p, '/') : NULL;
    if (slash && slash != p) {
        *slash = '\0';
        if (fsb_mkdir_p(p)) die("mkdir", p);
    }
    free(p);
    FILE *fp = fopen(path, "wb");
    if (!fp) die("fopen", path);
    return fp;
}

static int png_channels(int ct)
{
    switch (ct) {
    case FX_GREY:
    case FX_PALETTE:
        return 1;
    case FX_GREY_ALPHA:
        return 2;
    case FX_RGB:
        return 3;
    default:
        return 4;
    }
}

void fx_png(const char *path, int w, int h, int color_type, int depth, const uint16_t *samples,
            const uint8_t *palette, int n_palette, const uint16_t *trns, int interlace)
{
    FILE *fp = open_out(path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int ch = png_channels(color_type);
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    unsigned char *row = calloc(rowbytes, 1);
    if (!png || !info || !row) die("png init", path);
    if (setjmp(png_jmpbuf(png))) die("libpng", path);
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color_type == FX_PALETTE) {
        png_color pal[256];
        for (int i = 0; i < n_palette; i++) {
            pal[i].red = palette[3 * i];
            pal[i].green = palette[3 * i + 1];
            pal[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, pal, n_palette);
    }
    if (trns) {
        if (color_type == FX_PALETTE) {
            png_byte a[256];
            for (int i = 0; i < n_palette; i++)
                a[i] = (png_byte)trns[i];
            png_set_tRNS(png, info, a, n_palette, NULL);
        } else {
            png_color_16 c = {0};
            c.gray = trns[0];
            if (color_type == FX_RGB) {
                c.red = trns[0];
                c.green = trns[1];
                c.blue = trns[2];
            }
            png_set_tRNS(png, info, NULL, 0, &c);
        }
    }
    png_write_info(png, info);
    int passes = interlace ? png_set_interlace_handling(png) : 1;
    for (int pass = 0; pass < passes; pass++) {
        for (int y = 0; y < h; y++) {
            memset(row, 0, rowbytes);
            const uint16_t *s = samples + (size_t)y * w * ch;
            for (int k = 0; k < w * ch; k++) {
                unsigned v = s[k];
                if (depth == 16) {
                    row[2 * k] = (unsigned char)(v >> 8);
                    row[2 * k + 1] = (unsigned char)v;
                } else if (depth == 8) {
                    row[k] = (unsigned char)v;
                } else {
                    size_t bit = (size_t)k * depth;
                    row[bit / 8] |= (unsigned char)(v << (8 - depth - bit % 8));
                }
            }
            png_write_row(png, row);
        }
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    if (fclose(fp)) die("fclose", path);
}

void fx_jpeg(const char *path, int w, int h, const uint8_t *px, int grey, int quality)
{
    FILE *fp = open_out(path);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err); /* libjpeg's default error_exit aborts the test: fine */
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, fp);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = grey ? 1 : 3;
    c.in_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    int ch = grey ? 1 : 3;
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)c.next_scanline * w * ch);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    if (fclose(fp)) die("fclose", path);
}

void fx_jpeg_progressive_claiming(const char *path, int w, int h)
{
    uint8_t px[16 * 16 * 3];
    fx_pattern(px, 16, 16, 7);
    unsigned char *buf = NULL;
    unsigned long n = 0;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &buf, &n);
    c.image_width = 16;
    c.image_height = 16;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)c.next_scanline * 16 * 3);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    /* SOF2: FF C2, length (2), precision (1), height (2), width (2) */
    unsigned long i = 2;
    while (i + 8 < n && !(buf[i] == 0xFF && buf[i + 1] == 0xC2))
        i++;
    if (i + 8 >= n) die("no SOF2 marker in", path);
    buf[i + 5] = (unsigned char)(h >> 8), buf[i + 6] = (unsigned char)h;
    buf[i + 7] = (unsigned char)(w >> 8), buf[i + 8] = (unsigned char)w;
    FILE *fp = open_out(path);
    if (fwrite(buf, 1, n, fp) != n) die("fwrite", path);
    free(buf);
    if (fclose(fp)) die("fclose", path);
}

void fx_pattern(uint8_t *px, int w, int h, uint32_t seed)
{
    uint32_t a = seed * 2654435761u;
    int ox = (int)(a % 97), oy = (int)((a >> 8) % 89), tint = (int)((a >> 16) % 128);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)((2 * (x + ox)) % 256);
            p[1] = (uint8_t)((2 * (y + oy)) % 256);
            p[2] = (uint8_t)((x + y + tint) % 256);
        }
}

void fx_class_name(char *buf, int split, int cls)
{
    snprintf(buf, 32, "n%08d", (100 * split + cls) % 100000000);
}

void fx_file_name(char *buf, int split, int cls, int i)
{
    snprintf(buf, 32, "n%08d%08d.jpg", (100 * split + cls) % 100000000, i % 100000000);
}

static int gcd(int a, int b)
{
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static const char *split_names[3] = {"train", "val", "test"};

/* Write every image of the fixture dataset; rel_fmt 0: root/images/<file>, 1: root/<split>/
 * <class>/<file>. */
static void write_images(const char *root, const int n_classes[3], int per_class, int size,
                         int folders)
{
    uint8_t *px = malloc((size_t)size * size * 3);
    if (!px) die("oom", root);
    for (int s = 0; s < 3; s++)
        for (int c = 0; c < n_classes[s]; c++)
            for (int i = 0; i < per_class; i++) {
                char cls[32], file[32], rel[256];
                fx_class_name(cls, s, c);
                fx_file_name(file, s, c, i);
                if (folders)
                    snprintf(rel, sizeof rel, "%s/%s/%s", split_names[s], cls, file);
                else
                    snprintf(rel, sizeof rel, "images/%s", file);
                char *path = fsb_path_join(root, rel);
                fx_pattern(px, size, size, (uint32_t)(1000 * (100 * s + c) + i));
                fx_jpeg(path, size, size, px, 0, 95);
                free(path);
            }
    free(px);
}

void fx_make_ravi(const char *root, const int n_classes[3], int per_class, int size)
{
    write_images(root, n_classes, per_class, size, 0);
    for (int s = 0; s < 3; s++) {
        if (n_classes[s] <= 0) continue;
        char rel[64];
        snprintf(rel, sizeof rel, "split/%s.csv", split_names[s]);
        char *path = fsb_path_join(root, rel);
        FILE *fp = open_out(path);
        fprintf(fp, "filename,label\n");
        int n = n_classes[s] * per_class;
        /* a fixed non-canonical order: a stride coprime with n over the canonical list */
        int stride = 7;
        while (gcd(stride, n) != 1)
            stride++;
        for (int k = 0; k < n; k++) {
            int j = (int)(((long)k * stride + 3) % n);
            char cls[32], file[32];
            fx_class_name(cls, s, j / per_class);
            fx_file_name(file, s, j / per_class, j % per_class);
            fprintf(fp, "%s,%s\n", file, cls);
        }
        if (fclose(fp)) die("fclose", path);
        free(path);
    }
}

void fx_make_folders(const char *root, const int n_classes[3], int per_class, int size)
{
    write_images(root, n_classes, per_class, size, 1);
}

void fx_truncate(const char *path, long keep)
{
    struct stat sb;
    if (stat(path, &sb)) die("stat", path);
    if (keep < 0) keep = (long)sb.st_size / 2;
    if (truncate(path, keep)) die("truncate", path);
}

void fx_make_corrupt(const char *dir)
{
    uint8_t px[100 * 100 * 3];
    char *p;
    fx_pattern(px, 32, 32, 1);
    fx_jpeg(p = fsb_path_join(dir, "truncated.jpg"), 32, 32, px, 0, 90);
    fx_truncate(p, -1);
    free(p);
    FILE *fp = open_out(p = fsb_path_join(dir, "fake.png"));
    fputs("this is not a PNG file\n", fp);
    fclose(fp);
    free(p);
    fp = open_out(p = fsb_path_join(dir, "empty.jpg"));
    fclose(fp);
    free(p);
    fx_pattern(px, 20, 30, 2);
    fx_jpeg(p = fsb_path_join(dir, "small.jpg"), 20, 30, px, 0, 90);
    free(p);
    fx_pattern(px, 96, 96, 3);
    fx_jpeg(p = fsb_path_join(dir, "good.jpg"), 96, 96, px, 0, 90);
    free(p);
    uint16_t *s = malloc(90 * 100 * 3 * sizeof *s);
    fx_pattern(px, 90, 100, 4);
    for (int i = 0; i < 90 * 100 * 3; i++)
        s[i] = px[i];
    fx_png(p = fsb_path_join(dir, "good.png"), 90, 100, FX_RGB, 8, s, NULL, 0, NULL, 0);
    free(p);
    free(s);
}

const char *const fx_zoo_names[19] = {
    "grey1.png",      "grey2.png",       "grey4.png",         "grey8.png",          "grey16.png",
    "grey_trns4.png", "grey_alpha8.png", "grey_alpha16.png",  "palette1.png",       "palette2.png",
    "palette4.png",   "palette8.png",    "palette_trns8.png", "rgb8.png",           "rgb16.png",
    "rgb_trns8.png",  "rgba8.png",       "rgba16.png",        "interlaced_rgb8.png"};

int fx_make_png_zoo(const char *dir)
{
    enum { W = FX_ZOO_W, H = FX_ZOO_H };
    /* (colour type, depth, tRNS, interlace) per file, in fx_zoo_names order */
    static const int kind[19][4] = {
        {FX_GREY, 1, 0, 0},       {FX_GREY, 2, 0, 0},        {FX_GREY, 4, 0, 0},
        {FX_GREY, 8, 0, 0},       {FX_GREY, 16, 0, 0},       {FX_GREY, 4, 1, 0},
        {FX_GREY_ALPHA, 8, 0, 0}, {FX_GREY_ALPHA, 16, 0, 0}, {FX_PALETTE, 1, 0, 0},
        {FX_PALETTE, 2, 0, 0},    {FX_PALETTE, 4, 0, 0},     {FX_PALETTE, 8, 0, 0},
        {FX_PALETTE, 8, 1, 0},    {FX_RGB, 8, 0, 0},         {FX_RGB, 16, 0, 0},
        {FX_RGB, 8, 1, 0},        {FX_RGBA, 8, 0, 0},        {FX_RGBA, 16, 0, 0},
        {FX_RGB, 8, 0, 1}};
    uint8_t *rgb = malloc((size_t)W * H * 3);
    uint16_t *s = malloc((size_t)W * H * 4 * sizeof *s);
    uint8_t pal[256 * 3];
    uint16_t alpha[256];
    if (!rgb || !s) die("oom", dir);
    fx_pattern(rgb, W, H, 77);
    for (int i = 0; i < 256; i++) {
        pal[3 * i] = (uint8_t)i;
        pal[3 * i + 1] = (uint8_t)(255 - i);
        pal[3 * i + 2] = (uint8_t)(i * 7);
        alpha[i] = (uint16_t)(255 - i);
    }
    for (int f = 0; f < 19; f++) {
        int ct = kind[f][0], depth = kind[f][1], ch = png_channels(ct);
        unsigned maxv = (1u << depth) - 1;
        for (int p = 0; p < W * H; p++)
            for (int c = 0; c < ch; c++) {
                unsigned v8 = rgb[3 * p + (c < 3 ? c : 0)];
                if (ct == FX_GREY || ct == FX_GREY_ALPHA)
                    v8 = c == 0 ? rgb[3 * p] : 200; /* grey from R, alpha 200 */
                if (ct == FX_RGBA && c == 3) v8 = (unsigned)(p % 256);
                unsigned v = depth == 16 ? v8 * 257u : v8 * maxv / 255u;
                if (ct == FX_PALETTE) v = (unsigned)(p % (int)(maxv + 1));
                s[(size_t)p * ch + c] = (uint16_t)v;
            }
        uint16_t trns[3] = {1, 2, 3};
        int np = ct == FX_PALETTE ? (int)maxv + 1 : 0;
        char *path = fsb_path_join(dir, fx_zoo_names[f]);
        fx_png(path, W, H, ct, depth, s, pal, np,
               kind[f][2] ? (ct == FX_PALETTE ? alpha : trns) : NULL, kind[f][3]);
        free(path);
    }
    char *p = fsb_path_join(dir, "rgb.jpg");
    fx_jpeg(p, W, H, rgb, 0, 90);
    free(p);
    for (int i = 0; i < W * H; i++)
        rgb[i] = rgb[3 * i];
    fx_jpeg(p = fsb_path_join(dir, "grey.jpg"), W, H, rgb, 1, 90);
    free(p);
    free(rgb);
    free(s);
    return 19;
}

/* ---- IDX files (idx.h, demo.h) ---------------------------------------------------------- */

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* Write an IDX file: magic 0x80<ndim>, dims, then `n` bytes of data (may be short). */
void fx_idx(const char *dir, const char *name, int ndim, const uint32_t *dims, const uint8_t *data,
            size_t n)
{
    char *path = fsb_path_join(dir, name);
    gzFile gz = path ? gzopen(path, "wb") : NULL;
    if (!gz) die("gzopen", name);
    if (ndim < 1 || ndim > 3) die("IDX dimensions", name);
    unsigned char hdr[16];
    put_be32(hdr, 0x800u | (uint32_t)ndim);
    for (int i = 0; i < ndim; i++)
        put_be32(hdr + 4 + 4 * i, dims[i]);
    gzwrite(gz, hdr, 4 + 4 * (unsigned)ndim);
    if (n) gzwrite(gz, data, (unsigned)n);
    gzclose(gz);
    free(path);
}

/* n images of 2x3 pixels, pixel value = image index; labels = i % 10 */
void fx_idx_pair(const char *dir, const char *prefix, uint32_t n)
{
    uint8_t *px = malloc(n * 6), *lab = malloc(n);
    for (uint32_t i = 0; i < n; i++) {
        memset(px + i * 6, (int)(i & 0xff), 6);
        lab[i] = (uint8_t)(i % 10);
    }
    char name[64];
    uint32_t idims[3] = {n, 2, 3}, ldims[1] = {n};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    fx_idx(dir, name, 3, idims, px, n * 6);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    fx_idx(dir, name, 1, ldims, lab, n);
    free(px);
    free(lab);
}
