/* threads.h - a fixed pool of worker threads running parallel-for loops, and timers.
 *
 * fsb_pool_run() hands task indices 0..n-1 to the workers (the caller is worker 0) and
 * returns when all are done. Which worker runs which task is not deterministic, so a
 * task must write only to outputs owned by its index; then results never depend on
 * the thread count. Loops that reduce must reduce per task and sum in task order.
 */
#ifndef FSB_THREADS_H
#define FSB_THREADS_H

typedef struct fsb_pool fsb_pool;

/* task: the index in [0, n_tasks); worker: in [0, fsb_pool_size()), for per-worker scratch. */
typedef void (*fsb_task_fn)(void *ctx, int task, int worker);

/* Create a pool of `n_threads` workers including the caller (n_threads <= 0: one per
 * online core). Returns FSB_OK, FSB_ENOMEM or FSB_EINTERNAL. */
int fsb_pool_create(fsb_pool **out, int n_threads);
/* Stop and join the workers; NULL is a no-op. */
void fsb_pool_destroy(fsb_pool *pool);
/* Number of workers (1 for a NULL pool). */
int fsb_pool_size(const fsb_pool *pool);
/* Run fn(ctx, i, worker) for every i in [0, n_tasks); a NULL pool runs them in order on
 * the caller. Not re-entrant: a task must not call fsb_pool_run on the same pool. */
void fsb_pool_run(fsb_pool *pool, int n_tasks, fsb_task_fn fn, void *ctx);

/* Make the calling thread treat subnormal floats as zero, in and out (x86-64: MXCSR FTZ and DAZ;
 * AArch64: FPCR.FZ; elsewhere a no-op that returns 0). Subnormal weights (dead filters decayed
 * by weight decay, as in FEAT's published ConvNet) otherwise slow every multiply that meets
 * them by up to two orders of magnitude. fsb_pool_create calls it in the creating thread and
 * in every worker (threads also inherit it from their creator), so all engine arithmetic
 * runs flushed, and `bench` sets it at start; the bits of a result change only
 * where an operand or an intermediate is subnormal (|x| < 2^-126), which the networks trained
 * here never produce. Returns 1 when flushing is in effect. */
int fsb_fpu_flush_subnormals(void);

/* Number of elements of x[0..n) that are subnormal (non-zero, |x| < FLT_MIN). */
long fsb_count_subnormal(const float *x, long n);

/* Number of online cores (at least 1). */
int fsb_ncores(void);

/* Monotonic wall-clock seconds since an arbitrary origin. */
double fsb_now(void);

#endif
