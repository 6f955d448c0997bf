/* cache.h - a split decoded once into a packed file of equal-size uint8 images, RGB or, for a
 * split of greyscale images, one grey channel; memory-mapped read-only afterwards.
 *
 * Opening a split lists it (fsb_split_open), stats every listed file and hashes the result
 * into a source fingerprint; a cache file with the same fingerprint is mapped as is,
 * anything else (missing, stale, other version, damaged) is rebuilt first: every image is
 * decoded (fsb_image_load) and passed through fsb_resize_crop_u8 (shorter side to `size`,
 * centre crop), in parallel over a pool with byte-identical results for any thread count,
 * and written atomically (fsb_outfile). 84x84 MiniImageNet images are therefore copied
 * exactly; larger images are resized. Images smaller than `size` are an error.
 *
 * Channels: a split whose every image is greyscale by its header (fsb_image_probe_channels:
 * a one-component JPEG, a grey or grey+alpha PNG) is packed with 1 channel, the grey value
 * (a third of the bytes); any colour image (or a mixed split) makes it 3, RGB. Readers pass
 * fsb_cache.channels to the transforms (transform.h), which replicate grey to 3 channels, so
 * networks see exactly what an RGB copy of the grey images would give. RGB splits are packed
 * as before, byte for byte. A 3-channel file of a split that is all greyscale (packed before
 * channels were kept) is repacked on open; the source fingerprint does not include the
 * channels, so run identities do not change.
 *
 * File format (version 1, all integers little-endian):
 *   0  "FSBPACK\0" (8 bytes)          8  u32 version (1)
 *   12 u32 header_bytes (pixels start here; a multiple of 4096)
 *   16 u64 split fingerprint (fsb_split.fingerprint)
 *   24 u64 source fingerprint (fsb_cache_source_fingerprint)
 *   32 u32 width  36 u32 height  40 u32 channels (1 or 3)  44 u32 n_images  48 u32 n_classes
 *   52 u32 name_bytes (total bytes of the class-name blob)
 *   56 class table: n_classes x {u32 start, u32 count, u32 name_offset, u32 name_length}
 *      then the class-name blob (names without terminators), then zero padding
 *   header_bytes: n_images x height x width x channels bytes, canonical order, HWC (RGB, or
 *      grey when channels is 1).
 */
#ifndef FSB_CACHE_H
#define FSB_CACHE_H

#include "fsb/dataset.h"
#include "fsb/threads.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FSB_CACHE_VERSION 1
#define FSB_CACHE_DEFAULT_SIZE 84

/* How to find or build a cache. Zero-initialise, then set what you need. */
typedef struct fsb_cache_opts {
    const char *dir; /* cache folder; NULL: fsb_cache_default_dir(root) */
    int size;        /* image side in pixels; 0: FSB_CACHE_DEFAULT_SIZE */
    fsb_pool *pool;  /* decoding workers when packing; NULL: the caller alone */
    FILE *progress;  /* progress bar stream while packing (stderr; drawn on terminals only) */
    int rebuild;     /* 1: pack even when a fresh cache exists */
} fsb_cache_opts;

/* An open packed split. Everything is owned; release with fsb_cache_close. */
typedef struct fsb_cache {
    fsb_split split;     /* the listing the cache matches (canonical order) */
    int size;            /* images are size x size x channels */
    int channels;        /* 1: grey (every image of the split greyscale), 3: RGB */
    const uint8_t *px;   /* [split.n_images][size][size][channels], read-only mapping */
    char *path;          /* the cache file */
    uint64_t source_fp;  /* source fingerprint stored in (and checked against) the file */
    int packed;          /* 1 when this open (re)built the file */
    double pack_seconds; /* wall seconds spent packing (0 when not packed) */
    void *map;           /* the whole mapping (header included) */
    size_t map_bytes;    /* its length */
} fsb_cache;

/* Open split `name` of the dataset at `root`, packing it first if needed (see the top
 * comment). Errors name the file: listing errors (fsb_split_open), a listed image that is
 * missing, unreadable, not decodable or smaller than size x size, an unusable cache folder.
 * On error `c` is left zeroed. */
int fsb_cache_open(fsb_cache *c, const char *root, const char *name, const fsb_cache_opts *o);

/* Unmap and free; no-op on a zeroed struct or NULL. */
void fsb_cache_close(fsb_cache *c);

/* Pixels of image i (canonical index into c->split), [size][size][channels]. */
const uint8_t *fsb_cache_image(const fsb_cache *c, int i);

/* The default cache folder for a dataset (malloc'd into *dir): ROOT/.fsbench-cache when it
 * exists or can be created and is writable; else $XDG_CACHE_HOME/fsbench; else
 * $HOME/.cache/fsbench (created). Cache files are named
 * "<split>-<size>-<16 hex digits of XXH3-64 of the dataset root's real path>.fsbpack", so
 * datasets sharing a folder do not collide. */
int fsb_cache_default_dir(char **dir, const char *root);

/* The user's cache folder (created): $XDG_CACHE_HOME/fsbench, else $HOME/.cache/fsbench. */
int fsb_cache_user_dir(char **dir);
/* The source fingerprint of a listing packed at `size`: XXH3-64 of "fsbpack", the version,
 * size, the split fingerprint and, per image in canonical order, its path, byte size and
 * modification time (seconds and nanoseconds). A listed file that cannot be stat'ed is an
 * error naming it (and its CSV line). */
int fsb_cache_source_fingerprint(uint64_t *fp, const fsb_split *s, int size);

#endif
