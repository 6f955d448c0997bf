/* student_perf.c - per-episode wall time of finetune / refilled (one worker, single-threaded
 * episodes), on random N-way K-shot episodes of a packed split, with a randomly initialised
 * ConvNet-4 teacher (speed does not depend on the weights). Not built by CMake: see README.
 *
 * usage: student_perf DATA CACHE_DIR SPLIT EPISODES "SHOTS" "ADAPTS" "METHODS" [STUDENT_SPEC]
 *   e.g. student_perf /tmp/mini /tmp/mini/.fsbench-cache test 3 1,5,10,30 last,all \
 *        finetune,refilled "stage1_steps=20"
 * Prints one line per (adapt, shot, method): median / min / max ms per episode (fit + predict).
 */
#define _POSIX_C_SOURCE 200809L
#include "fsb/cache.h"
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/student.h"
#include "fsb/threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the calling thread (less sensitive than wall time to other jobs). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: %s DATA CACHE_DIR SPLIT EPISODES SHOTS ADAPTS METHODS [SPEC]\n",
                argv[0]);
        return 2;
    }
    const char *data = argv[1], *cdir = argv[2], *split = argv[3];
    int episodes = atoi(argv[4]);
    int shots[8], n_shots = 0;
    for (char *s = strtok(argv[5], ","); s && n_shots < 8; s = strtok(NULL, ","))
        shots[n_shots++] = atoi(s);
    char adapts[64], methods[64];
    snprintf(adapts, sizeof adapts, "%s", argv[6]);
    snprintf(methods, sizeof methods, "%s", argv[7]);
    const char *spec = argc > 8 ? argv[8] : "";
    int way = 5, query = 15, max_shot = 0;
    for (int i = 0; i < n_shots; i++)
        max_shot = shots[i] > max_shot ? shots[i] : max_shot;
    if (episodes < 1 || n_shots < 1 || shots[0] < 1) {
        fprintf(stderr, "EPISODES and SHOTS must be positive\n");
        return 2;
    }

    fsb_cache cache;
    fsb_cache_opts co = {.dir = cdir, .size = 84};
    if (fsb_cache_open(&cache, data, split, &co)) {
        fprintf(stderr, "%s\n", fsb_error_last());
        return 1;
    }
    if (cache.packed) fprintf(stderr, "note: the cache was (re)packed\n");
    fsb_model_opts mo;
    fsb_model_opts_default(&mo, FSB_ARCH_CONV4);
    fsb_rng r;
    fsb_rng_init(&r, 1, 0);
    fsb_model *t;
    const char *tpath = "/tmp/student-perf-teacher.fsbt";
    if (fsb_model_create(&t, &mo, 64, 8, NULL, &r) || fsb_model_save(t, tpath, 0, NULL, NULL)) {
        fprintf(stderr, "%s\n", fsb_error_last());
        return 1;
    }
    fsb_model_destroy(t);
    int min_count = cache.split.n_images;
    for (int c = 0; c < cache.split.n_classes; c++)
        min_count = cache.split.class_count[c] < min_count ? cache.split.class_count[c] : min_count;
    if (cache.split.n_classes < way || min_count < max_shot + query) {
        fprintf(stderr, "%s: needs %d classes of at least %d images\n", split, way,
                max_shot + query);
        return 2;
    }
    fsb_transform tf;
    fsb_transform_defaults(&tf, FSB_PIXNORM_CONVNET);
    int *sup = malloc(sizeof(int) * way * max_shot), *lab = malloc(sizeof(int) * way * max_shot);
    int *qry = malloc(sizeof(int) * way * query), *pred = malloc(sizeof(int) * way * query);
    int *pick = malloc(sizeof(int) * (size_t)cache.split.n_classes);
    int *img = malloc(sizeof(int) * (size_t)cache.split.n_images);
    double *ms = malloc(sizeof(double) * (size_t)episodes);
    double *cpu = malloc(sizeof(double) * (size_t)episodes);
    for (char *ad = strtok(adapts, ","); ad; ad = strtok(NULL, ",")) {
        fsb_student_opts o;
        fsb_student_opts_default(&o);
        char full[600];
        snprintf(full, sizeof full, "adapt=%s%s%s", ad, *spec ? "," : "", spec);
        if (fsb_student_opts_parse(&o, full, "spec")) {
            fprintf(stderr, "%s\n", fsb_error_last());
            return 2;
        }
        char canon[FSB_STUDENT_SPEC_MAX];
        fsb_student_opts_string(&o, canon, sizeof canon);
        printf("# %s\n", canon);
        fsb_student_ctx *c;
        if (fsb_student_ctx_create(&c, tpath, &cache, &tf, way, max_shot, query, &o)) {
            fprintf(stderr, "%s\n", fsb_error_last());
            return 1;
        }
        for (int si = 0; si < n_shots; si++) {
            int K = shots[si];
            char mbuf[64];
            snprintf(mbuf, sizeof mbuf, "%s", methods);
            char *save = NULL;
            for (char *mn = strtok_r(mbuf, ",", &save); mn; mn = strtok_r(NULL, ",", &save)) {
                fsb_student_method m =
                    strcmp(mn, "refilled") ? FSB_STUDENT_FINETUNE : FSB_STUDENT_REFILLED;
                double fit = 0, prd = 0, bank = 0;
                for (int e = 0; e < episodes; e++) {
                    fsb_rng er;
                    fsb_rng_init(&er, 77, (uint64_t)(e * 100 + K));
                    /* 5 distinct classes, K + 15 distinct images each */
                    fsb_rng_partial_shuffle(&er, pick, cache.split.n_classes, way);
                    for (int k = 0; k < way; k++) {
                        int st0 = cache.split.class_start[pick[k]];
                        fsb_rng_partial_shuffle(&er, img, cache.split.class_count[pick[k]],
                                                K + query);
                        for (int i = 0; i < K; i++) {
                            sup[k * K + i] = st0 + img[i];
                            lab[k * K + i] = k;
                        }
                        for (int i = 0; i < query; i++)
                            qry[k * query + i] = st0 + img[K + i];
                    }
                    fsb_student_stats s;
                    fsb_student_episode_view v = {.way = way,
                                                  .shot = K,
                                                  .n_query = way * query,
                                                  .support_img = sup,
                                                  .support_labels = lab,
                                                  .query_img = qry};
                    double c0 = cpu_now();
                    if (fsb_student_episode(c, &o, m, &v, &er, pred, &s)) {
                        fprintf(stderr, "%s\n", fsb_error_last());
                        return 1;
                    }
                    cpu[e] = (cpu_now() - c0) * 1e3;
                    ms[e] = s.fit_ms + s.predict_ms;
                    bank += s.bank_ms;
                    fit += s.fit_ms;
                    prd += s.predict_ms;
                }
                qsort(ms, (size_t)episodes, sizeof *ms, cmp_double);
                qsort(cpu, (size_t)episodes, sizeof *cpu, cmp_double);
                printf(
                    "adapt=%s K=%d %s: wall median %.0f ms (min %.0f, max %.0f), CPU median "
                    "%.0f ms; mean bank %.0f, fit %.0f (bank incl.), predict %.0f; %d episodes\n",
                    ad, K, mn, ms[episodes / 2], ms[0], ms[episodes - 1], cpu[episodes / 2],
                    bank / episodes, fit / episodes, prd / episodes, episodes);
                fflush(stdout);
            }
        }
        fsb_student_ctx_destroy(c);
    }
    fsb_cache_close(&cache);
    return 0;
}
