/* cmd_perf.c - `bench perf`: images/s, GFLOP/s, peak RSS and a per-layer profile of the
 * backbone engine's training step and inference (see include/fsb/perf.h).
 */
#include "cli.h"
#include "fsb/blas.h"
#include "fsb/perf.h"
#include "fsb/threads.h"
#include "fsb/status.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: bench perf [--arch conv4|res12|all] [--batch N] [--iters N] "
                 "[--threads N] [--hw N] [--json]\n"
                 "  ConvNet-4 train step (batch 64, 64-way CE) and inference (batch 64),\n"
                 "  ResNet-12 train step and inference (batch 32), random 84x84 inputs.\n"
                 "  --batch/--iters 0 = per-workload defaults; --threads 0 = one per core.\n");
}

static void print_text(const fsb_perf_result *r, int n, long rss_kb, int threads)
{
    printf("openblas core %s, %d threads, peak RSS %.1f MB\n", fsb_blas_core(), threads,
           rss_kb / 1024.0);
    for (int i = 0; i < n; i++) {
        printf("\n%-12s batch %3d  %8.1f img/s  %7.1f GFLOP/s  (%.4f s/iter, median of %d)\n",
               r[i].workload, r[i].batch, r[i].img_s, r[i].gflop_s, r[i].seconds, r[i].iters);
        double tot = 0;
        for (int j = 0; j < r[i].n_layers; j++)
            tot += r[i].layers[j].fwd + r[i].layers[j].bwd;
        printf("  %-36s %9s %9s %6s\n", "layer", "fwd ms", "bwd ms", "%");
        for (int j = 0; j < r[i].n_layers; j++) {
            const fsb_perf_layer *l = &r[i].layers[j];
            printf("  %-36s %9.2f %9.2f %5.1f%%\n", l->name, 1e3 * l->fwd, 1e3 * l->bwd,
                   tot > 0 ? 100 * (l->fwd + l->bwd) / tot : 0.0);
        }
    }
}

static void print_json(const fsb_perf_result *r, int n, long rss_kb, int threads)
{
    printf("{\"openblas_core\": \"%s\", \"threads\": %d, \"peak_rss_mb\": %.1f, \"workloads\": [",
           fsb_blas_core(), threads, rss_kb / 1024.0);
    for (int i = 0; i < n; i++) {
        printf("%s\n  {\"name\": \"%s\", \"batch\": %d, \"iters\": %d, \"seconds\": %.6f, "
               "\"img_s\": %.2f, \"gflop_s\": %.2f, \"layers\": [",
               i ? "," : "", r[i].workload, r[i].batch, r[i].iters, r[i].seconds, r[i].img_s,
               r[i].gflop_s);
        for (int j = 0; j < r[i].n_layers; j++)
            printf("%s{\"name\": \"%s\", \"fwd_s\": %.6f, \"bwd_s\": %.6f}", j ? ", " : "",
                   r[i].layers[j].name, r[i].layers[j].fwd, r[i].layers[j].bwd);
        printf("]}");
    }
    printf("\n]}\n");
}

/* --arch conv4|res12|all */
static int parse_arch_set(void *dst, const char *flag, const char *text)
{
    fsb_perf_opts *o = dst;
    if (!strcmp(text, "all"))
        o->conv4 = o->res12 = 1;
    else if (!strcmp(text, "conv4"))
        o->conv4 = 1, o->res12 = 0;
    else if (!strcmp(text, "res12"))
        o->conv4 = 0, o->res12 = 1;
    else
        return fsb_error(FSB_EINVAL, "%s: '%s' is not conv4, res12 or all", flag, text);
    return FSB_OK;
}

int fsb_cmd_perf(int argc, char **argv)
{
    fsb_perf_opts o = {.conv4 = 1, .res12 = 1};
    int json = 0;
    const fsb_cli_flag flags[] = {
        FSB_FLAG("arch", FSB_FLAG_FN, &o, .fn = parse_arch_set),
        FSB_FLAG("batch", FSB_FLAG_INT, &o.batch, .lo = 0, .hi = 4096),
        FSB_FLAG("iters", FSB_FLAG_INT, &o.iters, .lo = 0, .hi = 100000),
        FSB_FLAG("threads", FSB_FLAG_INT, &o.threads, .lo = 0, .hi = 256),
        FSB_FLAG("hw", FSB_FLAG_INT, &o.in_hw, .lo = 16, .hi = 1024),
        FSB_FLAG("json", FSB_FLAG_SWITCH, &json),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };
    int help,
        st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), "perf", &help);
    if (!st && help) usage(stdout);
    if (st || help) return st;
    fsb_perf_result r[4];
    int n;
    if ((st = fsb_perf_run(&o, r, 4, &n)) != 0) return st;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int threads = o.threads > 0 ? o.threads : fsb_ncores();
    if (json)
        print_json(r, n, ru.ru_maxrss, threads);
    else
        print_text(r, n, ru.ru_maxrss, threads);
    return FSB_OK;
}
