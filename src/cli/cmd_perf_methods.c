/* cmd_perf_methods.c - `bench perf-methods`: time the frozen-feature methods on random
 * episodes of a feature file (a benchmark, not an evaluation: see include/fsb/perf_methods.h).
 */
#include "cli.h"
#include "fsb/method.h"
#include "fsb/perf_methods.h"
#include "fsb/status.h"

#include <stdio.h>
#include <string.h>

static void perf_usage(FILE *out)
{
    fprintf(out,
            "usage: bench perf-methods --features FILE.fsbt [--episodes N] [--shots 1,5,10,30]\n"
            "         [--way 5] [--query 15] [--methods 1nn,protonet,svm,logreg]\n"
            "         [--norm un|l2n|cl2n] [--C 1] [--eps 0.01] [--seed 0] [--threads T]\n"
            "         [--dump FILE.fsbt] [--report DIR]\n"
            "  FILE.fsbt holds 'features' (f32 [N, dim]), 'labels' (i64 [N]) and optionally\n"
            "  'base_mean' (f32 [dim], for cl2n; default: the mean of all features).\n"
            "  --norm sets every method's normalisation (default: each method's own).\n"
            "  --dump writes episodes + predictions (for tools/sklearn_compare.py);\n"
            "  --report writes DIR/per_episode.csv, summary.csv, paired.csv, table.md/.tex,\n"
            "  timing.csv and accuracy_vs_shots.png.\n");
}

/* Split "a,b,c" into o->methods (pointers into `text`, which is modified). */
static int parse_methods(char *text, fsb_mperf_options *o)
{
    o->n_methods = 0;
    for (char *save = NULL, *tok = strtok_r(text, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (o->n_methods == FSB_MPERF_MAX_METHODS)
            return fsb_error(FSB_EINVAL, "--methods: more than %d methods", FSB_MPERF_MAX_METHODS);
        if (!fsb_method_find(tok)) return fsb_error_wrap(FSB_EINVAL, "--methods");
        for (int i = 0; i < o->n_methods; i++)
            if (strcmp(o->methods[i], tok) == 0)
                return fsb_error(FSB_EINVAL, "--methods: %s appears twice", tok);
        o->methods[o->n_methods++] = tok;
    }
    if (o->n_methods == 0) return fsb_error(FSB_EINVAL, "--methods: empty list");
    return FSB_OK;
}

/* --methods a,b,c (the text is our argv, which is writable) */
static int parse_methods_flag(void *dst, const char *flag, const char *text)
{
    (void)flag;
    return parse_methods((char *)text, dst);
}

int fsb_cmd_perf_methods(int argc, char **argv)
{
    fsb_mperf_options o;
    fsb_mperf_options_default(&o);
    const fsb_cli_flag flags[] = {
        FSB_FLAG("features", FSB_FLAG_STR, &o.features),
        FSB_FLAG("episodes", FSB_FLAG_INT, &o.episodes, .lo = 1, .hi = 10000000),
        FSB_FLAG("shots", FSB_FLAG_INTLIST, o.shots, .lo = FSB_MPERF_MAX_SHOTS, .hi = 1000,
                 .count = &o.n_shots),
        FSB_FLAG("way", FSB_FLAG_INT, &o.way, .lo = 1, .hi = 1000),
        FSB_FLAG("query", FSB_FLAG_INT, &o.query, .lo = 1, .hi = 10000),
        FSB_FLAG("methods", FSB_FLAG_FN, &o, .fn = parse_methods_flag),
        FSB_FLAG("norm", FSB_FLAG_FN, &o.norm, .fn = fsb_cli_norm),
        FSB_FLAG("C", FSB_FLAG_DOUBLE, &o.C, .lo = 1e-12, .hi = 1e12),
        FSB_FLAG("eps", FSB_FLAG_DOUBLE, &o.eps, .lo = 1e-15, .hi = 1),
        FSB_FLAG("seed", FSB_FLAG_U64, &o.seed, .lo = 0, .hi = 9.2e18),
        FSB_FLAG("threads", FSB_FLAG_INT, &o.threads, .lo = 0, .hi = 1024),
        FSB_FLAG("dump", FSB_FLAG_STR, &o.dump),
        FSB_FLAG("report", FSB_FLAG_STR, &o.report_dir),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };
    int help, st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                                 "perf-methods", &help);
    if (!st && help) perf_usage(stdout);
    if (st || help) return st;
    if (!o.features) return fsb_error(FSB_EINVAL, "--features FILE.fsbt is required");
    fsb_mperf_result r;
    if ((st = fsb_perf_methods(&o, &r))) return st;
    printf("features: %s (%d x %d, %d classes; cl2n mean: %s)\n", o.features, r.n_features, r.dim,
           r.n_classes, r.base_mean_from_file ? "base_mean tensor" : "mean of all rows");
    printf("%d-way, %d queries/class, %d episodes per shot, %d threads, seed %llu, C %g, "
           "eps %g\n",
           o.way, o.query, o.episodes, r.threads, (unsigned long long)o.seed, o.C, o.eps);
    printf("%-10s %5s %6s %11s %11s %11s %17s\n", "method", "shot", "norm", "fit ms/ep",
           "pred ms/ep", "total ms/ep", "accuracy % (ci95)");
    for (int mi = 0; mi < o.n_methods; mi++) {
        const fsb_method *m = fsb_method_find(o.methods[mi]);
        fsb_norm nm = o.norm >= 0 ? (fsb_norm)o.norm : m->default_norm;
        for (int s = 0; s < o.n_shots; s++) {
            const fsb_mperf_cell *cl = &r.cell[mi][s];
            printf("%-10s %5d %6s %11.4f %11.4f %11.4f %10.2f (%.2f)\n", m->name, o.shots[s],
                   fsb_norm_name(nm), cl->fit_ms, cl->predict_ms, cl->fit_ms + cl->predict_ms,
                   100 * cl->accuracy, 100 * cl->ci95);
        }
    }
    printf("wall time: %.3f s for %d episodes x %d shots x %d methods (%.1f method-episodes/s)\n",
           r.wall_s, o.episodes, o.n_shots, o.n_methods,
           (double)o.episodes * o.n_shots * o.n_methods / (r.wall_s > 0 ? r.wall_s : 1e-9));
    if (o.dump) printf("dump: %s\n", o.dump);
    return FSB_OK;
}
