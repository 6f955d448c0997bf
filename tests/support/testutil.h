/* testutil.h - helpers shared by the Check suites: temporary folders, files, running
 * the `bench` binary. Test-only code; aborts on setup failures (they are not under test).
 */
#ifndef FSB_TESTUTIL_H
#define FSB_TESTUTIL_H

#include "fsb/tensorfile.h"

#include <stddef.h>
#include <stdint.h>

/* A fresh empty folder under $TMPDIR (or /tmp); malloc'd path. */
char *tu_tmpdir(void);
/* rm -rf path (NULL is a no-op). */
void tu_rmrf(const char *path);
/* malloc'd "dir/rel". */
char *tu_path(const char *dir, const char *rel);
/* Write bytes to dir/rel, creating parent folders. */
void tu_write(const char *dir, const char *rel, const void *data, size_t size);
/* Write a NUL-terminated string to dir/rel. */
void tu_write_str(const char *dir, const char *rel, const char *text);
/* Read a whole file (malloc'd, NUL-terminated), NULL if it cannot be read. */
char *tu_read(const char *path, size_t *size);
/* 1 if the two files exist and have identical bytes. */
int tu_same_file(const char *a, const char *b);
/* Run a shell command; stdout+stderr captured into *out (malloc'd, may be NULL to discard).
 * Returns the exit status (or -1 when it did not exit normally). */
int tu_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run every test of suite s (Check's normal output) and return the process exit status:
 * EXIT_SUCCESS when none failed. The body of every suite's main(). */
typedef struct Suite Suite;
int tu_run_suite(Suite *s);
/* Limit this test process's address space to what it uses now plus `extra` bytes (Check
 * runs each test in its own process, so the limit ends with it). Returns 0 and does nothing
 * under AddressSanitizer, which reserves terabytes of address space; 1 when the limit is set
 * (a failure to set it fails the test). */
int tu_limit_address_space(size_t extra);

/* n normal draws x scale from fsb_rng(seed, stream 1) (malloc'd); n zeros (calloc'd). */
float *tu_randn(long n, float scale, uint64_t seed);
float *tu_zeros(long n);
/* max |a_i| over n values (0 for n = 0). */
double tu_max_abs(const float *a, long n);
/* A fixture's integer meta value (the test fails when it is missing). */
long tu_meta_long(const fsb_tensorfile *tf, const char *key);
/* Path of the `bench` binary under test ($FSB_BENCH, set by ctest). */
const char *tu_bench(void);

#endif
