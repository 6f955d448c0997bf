/* cmd_perf.c - `bench perf`: images/s, GFLOP/s, peak RSS and a per-layer profile (seconds
 * and GFLOP/s of each layer's forward and backward) of the backbone engine's training step
 * and inference, over a sweep of batch sizes (see include/fsb/perf.h).
 */
#include "cli.h"
#include "fsb/blas.h"
#include "fsb/model.h"
#include "fsb/perf.h"
#include "fsb/threads.h"
#include "fsb/status.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench perf [--arch LIST] [--batch LIST] [--iters N] [--threads N] [--hw N] "
            "[--split on|off] [--conv gemm|onednn] [--json]\n"
            "  --arch    comma list of conv4 (64 filters per block), conv4-32 (32 filters,\n"
            "            MAML's backbone), res12, or all (default: all)\n"
            "  --batch   comma list of batch sizes, e.g. 5,25,64 (default: 64 for ConvNet-4,\n"
            "            32 for ResNet-12); one train and one inference workload per batch\n"
            "  --iters   timed iterations (0 = 10/20 ConvNet-4 train/infer, 3/5 ResNet-12)\n"
            "  --threads worker threads (0 = one per core)\n"
            "  --hw      image side (default 84)\n"
            "  --split   off: one task per image at every batch size, as the engine ran before\n"
            "            batches below 16 split each image's work (same bits; for before/after)\n"
            "  --conv    the 3x3 convolutions on >= 16 channels through im2col + OpenBLAS\n"
            "            (gemm, default) or oneDNN's primitives (onednn; builds with oneDNN)\n"
            "  --json    one JSON object instead of the text report\n"
            "  Random inputs, a 64-way CE head and an SGD-momentum step. The text report gives\n"
            "  per layer the forward/backward milliseconds and GFLOP/s per iteration.\n");
}

static double gfs(double gflop, double s)
{
    return s > 0 ? gflop / s : 0.0;
}

static void print_text(const fsb_perf_result *r, int n, long rss_kb, int threads, int split,
                       const char *conv)
{
    printf("openblas core %s, %d threads, small-batch split %s, conv %s, peak RSS %.1f MB\n",
           fsb_blas_core(), threads, split ? "on" : "off", conv, rss_kb / 1024.0);
    for (int i = 0; i < n; i++) {
        printf("\n%-15s batch %3d  %8.1f img/s  %7.1f GFLOP/s  (%.4f s/iter, median of %d)\n",
               r[i].workload, r[i].batch, r[i].img_s, r[i].gflop_s, r[i].seconds, r[i].iters);
        double tot = 0;
        for (int j = 0; j < r[i].n_layers; j++)
            tot += r[i].layers[j].fwd + r[i].layers[j].bwd;
        printf("  %-34s %8s %8s %8s %8s %6s\n", "layer", "fwd ms", "fwd GF/s", "bwd ms", "bwd GF/s",
               "%");
        for (int j = 0; j < r[i].n_layers; j++) {
            const fsb_perf_layer *l = &r[i].layers[j];
            printf("  %-34s %8.2f %8.1f %8.2f %8.1f %5.1f%%\n", l->name, 1e3 * l->fwd,
                   gfs(l->fwd_gflop, l->fwd), 1e3 * l->bwd, gfs(l->bwd_gflop, l->bwd),
                   tot > 0 ? 100 * (l->fwd + l->bwd) / tot : 0.0);
        }
    }
}

static void print_json(const fsb_perf_result *r, int n, long rss_kb, int threads, int split,
                       const char *conv)
{
    printf("{\"openblas_core\": \"%s\", \"threads\": %d, \"split\": \"%s\", \"conv\": \"%s\", "
           "\"peak_rss_mb\": %.1f, \"workloads\": [",
           fsb_blas_core(), threads, split ? "on" : "off", conv, rss_kb / 1024.0);
    for (int i = 0; i < n; i++) {
        printf("%s\n  {\"name\": \"%s\", \"arch\": \"%s\", \"mode\": \"%s\", \"batch\": %d, "
               "\"iters\": %d, \"seconds\": %.6f, \"img_s\": %.2f, \"gflop_s\": %.2f, "
               "\"layers\": [",
               i ? "," : "", r[i].workload, r[i].arch, r[i].train ? "train" : "infer", r[i].batch,
               r[i].iters, r[i].seconds, r[i].img_s, r[i].gflop_s);
        for (int j = 0; j < r[i].n_layers; j++) {
            const fsb_perf_layer *l = &r[i].layers[j];
            printf("%s\n    {\"name\": \"%s\", \"fwd_s\": %.6f, \"bwd_s\": %.6f, "
                   "\"fwd_gflop\": %.6f, \"bwd_gflop\": %.6f, \"fwd_gflop_s\": %.2f, "
                   "\"bwd_gflop_s\": %.2f}",
                   j ? "," : "", l->name, l->fwd, l->bwd, l->fwd_gflop, l->bwd_gflop,
                   gfs(l->fwd_gflop, l->fwd), gfs(l->bwd_gflop, l->bwd));
        }
        printf("]}");
    }
    printf("\n]}\n");
}

/* --split on|off -> per_image */
static int parse_split(void *dst, const char *flag, const char *text)
{
    int *per_image = dst;
    if (!strcmp(text, "on"))
        *per_image = 0;
    else if (!strcmp(text, "off"))
        *per_image = 1;
    else
        return fsb_error(FSB_EINVAL, "%s: '%s' is not on or off", flag, text);
    return FSB_OK;
}

/* --conv gemm|onednn -> fsb_perf_opts.conv */
static int parse_conv(void *dst, const char *flag, const char *text)
{
    fsb_conv_backend c;
    int st = fsb_conv_parse(text, &c);
    if (st) return fsb_error_wrap(st, "%s", flag);
    *(int *)dst = (int)c;
    return FSB_OK;
}

/* --arch: a comma list of conv4, conv4-32, res12, all. */
static int parse_arch_set(void *dst, const char *flag, const char *text)
{
    static const char *const names[] = {"conv4", "conv4-32", "res12", "all"};
    fsb_perf_opts *o = dst;
    o->conv4 = o->conv4_32 = o->res12 = 0;
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        int k = 0;
        while (k < 4 && !(strlen(names[k]) == len && !strncmp(p, names[k], len)))
            k++;
        if (k == 4)
            return fsb_error(FSB_EINVAL,
                             "%s: '%.*s' is not conv4, conv4-32, res12 or all (in '%s')", flag,
                             (int)len, p, text);
        o->conv4 |= k == 0 || k == 3;
        o->conv4_32 |= k == 1 || k == 3;
        o->res12 |= k == 2 || k == 3;
        if (!p[len]) break;
        p += len + 1;
    }
    return FSB_OK;
}

int fsb_cmd_perf(int argc, char **argv)
{
    fsb_perf_opts o = {.conv4 = 1, .conv4_32 = 1, .res12 = 1};
    int json = 0;
    const fsb_cli_flag flags[] = {
        FSB_FLAG("arch", FSB_FLAG_FN, &o, .fn = parse_arch_set),
        FSB_FLAG("batch", FSB_FLAG_INTLIST, o.batches, .lo = FSB_PERF_MAX_BATCHES, .hi = 4096,
                 .count = &o.n_batches),
        FSB_FLAG("iters", FSB_FLAG_INT, &o.iters, .lo = 0, .hi = 100000),
        FSB_FLAG("threads", FSB_FLAG_INT, &o.threads, .lo = 0, .hi = 256),
        FSB_FLAG("hw", FSB_FLAG_INT, &o.in_hw, .lo = 16, .hi = 1024),
        FSB_FLAG("split", FSB_FLAG_FN, &o.per_image, .fn = parse_split),
        FSB_FLAG("conv", FSB_FLAG_FN, &o.conv, .fn = parse_conv),
        FSB_FLAG("json", FSB_FLAG_SWITCH, &json),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };
    int help,
        st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), "perf", &help);
    if (!st && help) usage(stdout);
    if (st || help) return st;
    fsb_perf_result r[FSB_PERF_MAX_RESULTS];
    int n;
    if ((st = fsb_perf_run(&o, r, FSB_PERF_MAX_RESULTS, &n)) != 0) return st;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int threads = o.threads > 0 ? o.threads : fsb_ncores();
    const char *conv = fsb_conv_name((fsb_conv_backend)o.conv);
    if (json)
        print_json(r, n, ru.ru_maxrss, threads, !o.per_image, conv);
    else
        print_text(r, n, ru.ru_maxrss, threads, !o.per_image, conv);
    return FSB_OK;
}
