/* threads.c - worker pool for parallel-for loops (see include/fsb/threads.h).
 * Workers sleep on a condition variable between jobs; a job is published by bumping
 * `generation`; tasks are claimed with an atomic counter; the caller waits on `done`.
 */
#include "fsb/threads.h"
#include "fsb/status.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

struct fsb_pool {
    int n;                    /* workers including the caller */
    pthread_t *threads;       /* n - 1 helper threads */
    pthread_mutex_t mu;       /* guards everything below except the atomics */
    pthread_cond_t wake;      /* signalled when a job is published or on shutdown */
    pthread_cond_t idle;      /* signalled when the last helper finishes a job */
    unsigned long generation; /* bumped once per job */
    int busy;                 /* helpers still working on the current job */
    int stop;                 /* set once, on destroy */
    fsb_task_fn fn;           /* the current job */
    void *ctx;
    int n_tasks;
    atomic_int next; /* next unclaimed task index */
};

typedef struct {
    fsb_pool *pool; /* owner */
    int id;         /* worker index, >= 1 */
} worker_arg;

static void drain(fsb_pool *p, int worker)
{
    for (;;) {
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n_tasks) return;
        p->fn(p->ctx, i, worker);
    }
}

static void *worker_main(void *argp)
{
    worker_arg *arg = argp;
    fsb_pool *p = arg->pool;
    int id = arg->id;
    free(arg);
    fsb_fpu_flush_subnormals();
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p, id);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int fsb_fpu_flush_subnormals(void)
{
#if defined(__x86_64__) /* every x86-64 CPU has DAZ; some 32-bit SSE ones fault on it */
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ (bit 15) | DAZ (bit 6) */
    return 1;
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    fpcr |= (uint64_t)1 << 24; /* FZ */
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
    return 1;
#else
    return 0;
#endif
}

long fsb_count_subnormal(const float *x, long n)
{
    long k = 0; /* by the bits: float compares (and fpclassify) see zero under DAZ */
    for (long i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        k += (u & 0x7f800000u) == 0 && (u & 0x007fffffu) != 0;
    }
    return k;
}

int fsb_ncores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int fsb_pool_create(fsb_pool **out, int n_threads)
{
    *out = NULL;
    if (n_threads <= 0) n_threads = fsb_ncores();
    fsb_fpu_flush_subnormals(); /* the caller is worker 0 */
    fsb_pool *p = calloc(1, sizeof *p);
    if (!p) return fsb_error(FSB_ENOMEM, "thread pool: out of memory");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->idle, NULL);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            p->n = 1; /* no helper to join */
            fsb_pool_destroy(p);
            return fsb_error(FSB_ENOMEM, "thread pool: out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (arg) {
            arg->pool = p;
            arg->id = i;
        }
        if (!arg || pthread_create(&p->threads[i - 1], NULL, worker_main, arg) != 0) {
            free(arg);
            p->n = i; /* only i - 1 helpers exist */
            fsb_pool_destroy(p);
            return fsb_error(FSB_EINTERNAL, "thread pool: cannot start thread %d", i);
        }
    }
    *out = p;
    return FSB_OK;
}

void fsb_pool_destroy(fsb_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i - 1], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->idle);
    free(p);
}

int fsb_pool_size(const fsb_pool *p)
{
    return p ? p->n : 1;
}

void fsb_pool_run(fsb_pool *p, int n_tasks, fsb_task_fn fn, void *ctx)
{
    if (n_tasks <= 0) return;
    if (!p || p->n == 1 || n_tasks == 1) {
        for (int i = 0; i < n_tasks; i++)
            fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->idle, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

double fsb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
