/* testutil.c - test helpers (see testutil.h). */
#include "testutil.h"
#include "fsb/fileio.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "fsb/rng.h"

#include <check.h>
#include <unistd.h>
#include <sys/resource.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static void die(const char *what)
{
    fprintf(stderr, "test setup failed: %s\n", what);
    abort();
}

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/fsbtest.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(buf)) die("mkdtemp");
    return strdup(buf);
}

void tu_rmrf(const char *path)
{
    if (!path) return;
    if (fsb_remove_tree(path)) die(path);
}

char *tu_path(const char *dir, const char *rel)
{
    char *p = fsb_path_join(dir, rel);
    if (!p) die("oom");
    return p;
}

void tu_write(const char *dir, const char *rel, const void *data, size_t size)
{
    char *p = tu_path(dir, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    if (fsb_mkdir_p(p)) die(p);
    *slash = '/';
    FILE *fp = fopen(p, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp)) die(p);
    free(p);
}

void tu_write_str(const char *dir, const char *rel, const char *text)
{
    tu_write(dir, rel, text, strlen(text));
}

char *tu_read(const char *path, size_t *size)
{
    void *data;
    size_t n;
    if (fsb_read_file(path, &data, &n)) return NULL;
    if (size) *size = n;
    return data;
}

int tu_same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read(a, &na), *y = tu_read(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

int tu_run(char **out, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8300];
    snprintf(full, sizeof full, "( %s ) 2>&1", cmd);
    FILE *pp = popen(full, "r");
    if (!pp) die("popen");
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, pp)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    if (!buf) die("oom");
    buf[n] = '\0';
    int status = pclose(pp);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *tu_bench(void)
{
    const char *b = getenv("FSB_BENCH");
    if (!b) die("FSB_BENCH is not set (run the tests through ctest)");
    return b;
}

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif

int tu_limit_address_space(size_t extra)
{
#ifdef TU_ASAN
    (void)extra;
    return 0;
#else
    long pages = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fscanf(fp, "%ld", &pages), 1);
    fclose(fp);
    rlim_t lim = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (rlim_t)extra;
    struct rlimit rl = {lim, lim};
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
    return 1;
#endif
}

float *tu_randn(long n, float scale, uint64_t seed)
{
    fsb_rng r;
    fsb_rng_init(&r, seed, 1);
    float *p = malloc(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++)
        p[i] = (float)fsb_rng_normal(&r) * scale;
    return p;
}

float *tu_zeros(long n)
{
    return calloc((size_t)n, sizeof(float));
}

double tu_max_abs(const float *a, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

long tu_meta_long(const fsb_tensorfile *tf, const char *key)
{
    long long v;
    ck_assert_msg(fsb_tensorfile_meta_int(tf, "fixture", key, &v) == FSB_OK, "%s",
                  fsb_error_last());
    return (long)v;
}
