/* test_core.c - status messages, arena, thread pool, progress formatting, atomic files,
 * and the OpenBLAS kernel-selection rule. */
#include "fsb/arena.h"
#include "fsb/blas.h"
#include "fsb/fileio.h"
#include "fsb/progress.h"
#include "fsb/status.h"
#include "fsb/threads.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

START_TEST(status_messages)
{
    ck_assert_int_eq(fsb_error(FSB_EIO, "%s: gone", "a.csv"), FSB_EIO);
    ck_assert_str_eq(fsb_error_last(), "a.csv: gone");
    ck_assert_int_eq(fsb_error_wrap(FSB_EIO, "loading %s", "train"), FSB_EIO);
    ck_assert_str_eq(fsb_error_last(), "loading train: a.csv: gone");
    fsb_error_clear();
    ck_assert_str_eq(fsb_error_last(), "");
    ck_assert_int_eq(fsb_status_exit_code(FSB_OK), 0);
    ck_assert_int_eq(fsb_status_exit_code(FSB_EINVAL), 2);
    ck_assert_int_eq(fsb_status_exit_code(FSB_EFORMAT), 1);
    ck_assert_str_eq(fsb_status_str(FSB_ENOMEM), "out of memory");
}
END_TEST

/* A long message keeps its cause (the end): a 600-byte prefix around a 900-byte message was
 * clipped to 500 + 500 bytes, and a 3000-byte path lost what followed it. */
START_TEST(status_long_messages_keep_the_cause)
{
    char path[3001], prefix[601];
    memset(path, 'p', 3000);
    path[3000] = '\0';
    memset(prefix, 'x', 600);
    prefix[600] = '\0';
    fsb_error(FSB_EFORMAT, "%.880s: folders nested too deeply", path);
    fsb_error_wrap(FSB_EFORMAT, "%s", prefix);
    const char *m = fsb_error_last();
    ck_assert_uint_eq(strlen(m), 600 + 2 + 880 + 27);
    ck_assert_int_eq(strncmp(m, prefix, 600), 0);
    ck_assert_ptr_nonnull(strstr(m, "ppp: folders nested too deeply"));
    /* longer than the buffer: the head and the cause survive, the middle is cut */
    fsb_error(FSB_EFORMAT, "/root/%s: folders nested too deeply", path);
    m = fsb_error_last();
    ck_assert_uint_lt(strlen(m), 2048);
    ck_assert_int_eq(strncmp(m, "/root/ppp", 9), 0);
    ck_assert_ptr_nonnull(strstr(m, "ppp ... ppp"));
    ck_assert_str_eq(m + strlen(m) - 27, ": folders nested too deeply");
    fsb_error_wrap(FSB_EFORMAT, "split %s: %s", "train", path);
    m = fsb_error_last();
    ck_assert_int_eq(strncmp(m, "split train: ppp", 16), 0);
    ck_assert_str_eq(m + strlen(m) - 27, ": folders nested too deeply");
}
END_TEST

START_TEST(arena_alignment_reset_and_exhaustion)
{
    fsb_arena a;
    ck_assert_int_eq(fsb_arena_init(&a, 1 << 20), FSB_OK);
    char *p = fsb_arena_alloc(&a, 3, 1);
    float *f = fsb_arena_floats(&a, 10);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)f % 64, 0);
    size_t mark = fsb_arena_mark(&a);
    ck_assert_ptr_nonnull(fsb_arena_alloc(&a, 1000, 16));
    fsb_arena_reset_to(&a, mark);
    ck_assert_uint_eq(a.used, mark);
    ck_assert_ptr_null(fsb_arena_alloc(&a, 2 << 20, 8));
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "arena"));
    fsb_arena_reset(&a);
    ck_assert_ptr_eq(fsb_arena_alloc(&a, 8, 8), (void *)a.base);
    ck_assert_uint_ge(a.peak, 1000);
    fsb_arena_free(&a);
    fsb_arena_free(&a);
}
END_TEST

typedef struct {
    int64_t out[1000];
} pool_ctx;

static void square(void *ctx, int i, int worker)
{
    ((pool_ctx *)ctx)->out[i] = (int64_t)i * i + worker * 0;
}

START_TEST(pool_runs_every_task_once)
{
    for (int threads = 1; threads <= 4; threads++) {
        fsb_pool *pool;
        ck_assert_int_eq(fsb_pool_create(&pool, threads), FSB_OK);
        ck_assert_int_eq(fsb_pool_size(pool), threads);
        for (int rep = 0; rep < 50; rep++) {
            pool_ctx *c = calloc(1, sizeof *c);
            fsb_pool_run(pool, 1000, square, c);
            for (int i = 0; i < 1000; i++)
                ck_assert_int_eq(c->out[i], (int64_t)i * i);
            free(c);
        }
        fsb_pool_destroy(pool);
    }
    pool_ctx c;
    fsb_pool_run(NULL, 10, square, &c);
    ck_assert_int_eq(c.out[9], 81);
    fsb_pool_destroy(NULL);
}
END_TEST

/* Each task records whether arithmetic on subnormals is flushed in the thread that ran it:
 * a product that underflows into the subnormal range (FTZ) and a subnormal operand (DAZ). */
typedef struct {
    int flushed[256];
    int worker[256];
} flush_ctx;

static void probe_flush(void *ctx, int i, int worker)
{
    flush_ctx *c = ctx;
    volatile float tiny = 1e-30f, sub = 1e-40f, one = 1.0f;
    float under = tiny * 1e-10f; /* 1e-40: subnormal unless flushed to zero */
    float daz = sub * one;       /* 1e-40 unless the operand counts as zero */
    c->flushed[i] = under == 0.0f && daz == 0.0f;
    c->worker[i] = worker;
    struct timespec ts = {0, 200000}; /* give every worker a chance to take tasks */
    nanosleep(&ts, NULL);
}

START_TEST(pool_threads_flush_subnormals)
{
#if !defined(__x86_64__) && !defined(__aarch64__) /* no flush mode (threads.c): nothing to check   \
                                                   */
    fprintf(stderr, "SKIP pool_threads_flush_subnormals: no flush-to-zero on this CPU\n");
    return;
#endif
    fsb_pool *pool;
    ck_assert_int_eq(fsb_pool_create(&pool, 3), FSB_OK);
    flush_ctx c;
    memset(&c, 0, sizeof c);
    fsb_pool_run(pool, 256, probe_flush, &c);
    int helpers = 0;
    for (int i = 0; i < 256; i++) {
        ck_assert_msg(c.flushed[i], "task %d on worker %d computed with subnormals", i,
                      c.worker[i]);
        helpers += c.worker[i] != 0;
    }
    ck_assert_int_gt(helpers, 0); /* the helper threads were checked, not only the caller */
    fsb_pool_destroy(pool);
    float x[5] = {1e-40f, -1e-39f, 0, 1e-30f, -3}; /* constants: not flushed */
    ck_assert_int_eq(fsb_count_subnormal(x, 5), 2);
}
END_TEST

START_TEST(progress_format)
{
    char buf[256];
    fsb_progress_format(buf, sizeof buf, "train", "img", 50, 0, 100, 10.0, 10);
    ck_assert_str_eq(buf, "train [#####.....] 50/100  5.0 img/s  ETA 0:00:10");
    /* resumed at 40: the rate counts only the 10 new items */
    fsb_progress_format(buf, sizeof buf, "ep", "ep", 50, 40, 100, 5.0, 4);
    ck_assert_str_eq(buf, "ep [##..] 50/100  2.0 ep/s  ETA 0:00:25");
    fsb_progress_format(buf, sizeof buf, "x", "it", 0, 0, 0, 0.0, 2);
    ck_assert_str_eq(buf, "x [..] 0/0  0.0 it/s  ETA --:--:--");
    /* not a terminal: nothing is drawn */
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "log");
    FILE *fp = fopen(path, "w");
    fsb_progress p;
    fsb_progress_init(&p, fp, "quiet", "it", 0, 10);
    fsb_progress_update(&p, 5);
    fsb_progress_finish(&p);
    fclose(fp);
    size_t n;
    free(tu_read(path, &n));
    ck_assert_uint_eq(n, 0);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(atomic_files)
{
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "out.txt");
    ck_assert_int_eq(fsb_write_file(path, "old", 3), FSB_OK);
    /* an aborted write leaves the old content and no temporary behind */
    fsb_outfile f;
    ck_assert_int_eq(fsb_outfile_open(&f, path), FSB_OK);
    fputs("half", f.fp);
    fsb_outfile_abort(&f);
    char *text = tu_read(path, NULL);
    ck_assert_str_eq(text, "old");
    free(text);
    char *ls = NULL;
    tu_run(&ls, "ls '%s'", dir);
    ck_assert_str_eq(ls, "out.txt\n");
    free(ls);
    /* a committed write replaces it */
    ck_assert_int_eq(fsb_outfile_open(&f, path), FSB_OK);
    fputs("new", f.fp);
    ck_assert_int_eq(fsb_outfile_commit(&f), FSB_OK);
    text = tu_read(path, NULL);
    ck_assert_str_eq(text, "new");
    free(text);
    /* a folder that does not exist is an error naming the path */
    char *bad = tu_path(dir, "no/such/dir/x");
    ck_assert_int_eq(fsb_write_file(bad, "x", 1), FSB_EIO);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), bad));
    ck_assert_int_eq(fsb_mkdir_p(bad), FSB_OK);
    ck_assert(fsb_is_dir(bad));
    ck_assert(fsb_is_file(path));
    void *data;
    size_t size;
    /* reading a directory or a device is refused by name, not attempted */
    ck_assert_int_eq(fsb_read_file(bad, &data, &size), FSB_EIO);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "not a regular file"));
    ck_assert_int_eq(fsb_read_file("/dev/zero", &data, &size), FSB_EIO);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "/dev/zero: not a regular file"));
    free(bad);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(blas_core_rule)
{
    ck_assert_str_eq(fsb_blas_core_for_cpu("Prescott", 1, 1), "SkylakeX");
    ck_assert_ptr_null(fsb_blas_core_for_cpu("SkylakeX", 1, 1));
    ck_assert_ptr_null(fsb_blas_core_for_cpu("cooperlake", 1, 1));
    ck_assert_str_eq(fsb_blas_core_for_cpu("Nehalem", 0, 1), "Haswell");
    ck_assert_ptr_null(fsb_blas_core_for_cpu("Haswell", 0, 1));
    ck_assert_ptr_null(fsb_blas_core_for_cpu("Prescott", 0, 0));
    ck_assert_ptr_nonnull(fsb_blas_core());
    /* the sgemm wrapper: [1 2; 3 4] * [5; 6] = [17; 39] */
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6}, c[2] = {0, 0};
    fsb_sgemm(0, 0, 2, 1, 2, 1.0f, a, 2, b, 1, 0.0f, c, 1);
    ck_assert_float_eq(c[0], 17);
    ck_assert_float_eq(c[1], 39);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, status_messages);
    tcase_add_test(tc, status_long_messages_keep_the_cause);
    tcase_add_test(tc, arena_alignment_reset_and_exhaustion);
    tcase_add_test(tc, pool_runs_every_task_once);
    tcase_add_test(tc, pool_threads_flush_subnormals);
    tcase_add_test(tc, progress_format);
    tcase_add_test(tc, atomic_files);
    tcase_add_test(tc, blas_core_rule);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
