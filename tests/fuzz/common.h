/* common.h - what the fuzz targets share: libFuzzer's entry points (declared here for
 * -Wmissing-prototypes) and a per-process scratch folder for the parsers that only read
 * files. Setup failures abort: they are not findings. See tests/fuzz/README.md.
 */
#ifndef FSB_FUZZ_COMMON_H
#define FSB_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The split fuzz_manifest maps manifests onto (ROOT/test.csv; make_corpus draws the seed
 * manifests from it): 4 classes of 6 images. */
#define FUZZ_MANIFEST_SPLIT                                                                        \
    "filename,label\n"                                                                             \
    "a0.jpg,n01\na1.jpg,n01\na2.jpg,n01\na3.jpg,n01\na4.jpg,n01\na5.jpg,n01\n"                     \
    "b0.jpg,n02\nb1.jpg,n02\nb2.jpg,n02\nb3.jpg,n02\nb4.jpg,n02\nb5.jpg,n02\n"                     \
    "c0.jpg,n03\nc1.jpg,n03\nc2.jpg,n03\nc3.jpg,n03\nc4.jpg,n03\nc5.jpg,n03\n"                     \
    "d0.jpg,n04\nd1.jpg,n04\nd2.jpg,n04\nd3.jpg,n04\nd4.jpg,n04\nd5.jpg,n04\n"

/* The process's scratch folder ($TMPDIR, else /dev/shm or /tmp; fsb-fuzz-XXXXXX), made on first use
 * and removed at exit. */
const char *fuzz_dir(void);
/* "<fuzz_dir()>/<name>", malloc'd (the caller frees it). */
char *fuzz_path(const char *name);
/* Replace the file at path by these bytes (no fsync: the fuzzer rewrites it per input). */
void fuzz_write(const char *path, const void *data, size_t size);
/* A malloc'd NUL-terminated copy of the input (the caller frees it). */
char *fuzz_cstr(const uint8_t *data, size_t size);
/* Read n bytes at p (in another translation unit, so the reads stay): ASan then checks that
 * a buffer the library returned really holds them. */
void fuzz_touch(const void *p, size_t n);
/* Abort with a message: a violated property is a finding like a crash. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
