/* version.c - versions of fsbench and of the libraries it was built and runs with, for
 * `bench version` and run manifests. */
#include "fsb/blas.h"
#include "fsb/version.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <linear.h>
#include <png.h>
#include <xxhash.h>
#include <zlib.h>

#define FSB_STR_(x) #x
#define FSB_STR(x) FSB_STR_(x)

void fsb_versions(char *buf, size_t n)
{
    unsigned xx = XXH_versionNumber();
    snprintf(buf, n,
             "fsbench %s; %s; libpng %s; libjpeg-turbo %s; liblinear %d; zlib %s; xxhash %u.%u.%u",
             FSB_VERSION, fsb_blas_config(), png_get_libpng_ver(NULL),
             FSB_STR(LIBJPEG_TURBO_VERSION), LIBLINEAR_VERSION, zlibVersion(), xx / 10000,
             (xx / 100) % 100, xx % 100);
}
