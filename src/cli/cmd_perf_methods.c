/* cmd_perf_methods.c - `bench perf-methods`: time the frozen-feature methods on random
 * episodes of a feature file (a benchmark, not an evaluation: see include/fsb/perf_methods.h).
 */
#include "cli.h"
#include "fsb/method.h"
#include "fsb/perf_methods.h"
#include "fsb/status.h"

#include <getopt.h>
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

int fsb_cmd_perf_methods(int argc, char **argv)
{
    static const struct option longopts[] = {{"features", required_argument, NULL, 'f'},
                                             {"episodes", required_argument, NULL, 'e'},
                                             {"shots", required_argument, NULL, 's'},
                                             {"way", required_argument, NULL, 'w'},
                                             {"query", required_argument, NULL, 'q'},
                                             {"methods", required_argument, NULL, 'm'},
                                             {"norm", required_argument, NULL, 'n'},
                                             {"C", required_argument, NULL, 'C'},
                                             {"eps", required_argument, NULL, 'E'},
                                             {"seed", required_argument, NULL, 'S'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"dump", required_argument, NULL, 'd'},
                                             {"report", required_argument, NULL, 'r'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    fsb_mperf_options o;
    fsb_mperf_options_default(&o);
    optind = 1;
    opterr = 0;
    int c, st = FSB_OK;
    long v = 0;
    double d = 0;
    st = fsb_cli_exact_names(argc, argv, longopts, "perf-methods");
    while (st == FSB_OK && (c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o.features = optarg;
            break;
        case 'e':
            st = fsb_cli_int("--episodes", optarg, 1, 10000000, &v), o.episodes = (int)v;
            break;
        case 's':
            st =
                fsb_cli_int_list("--shots", optarg, 1000, o.shots, FSB_MPERF_MAX_SHOTS, &o.n_shots);
            break;
        case 'w':
            st = fsb_cli_int("--way", optarg, 1, 1000, &v), o.way = (int)v;
            break;
        case 'q':
            st = fsb_cli_int("--query", optarg, 1, 10000, &v), o.query = (int)v;
            break;
        case 'm':
            st = parse_methods(optarg, &o);
            break;
        case 'n': {
            fsb_norm nm;
            st = fsb_norm_parse("--norm", optarg, &nm);
            o.norm = (int)nm;
            break;
        }
        case 'C':
            st = fsb_cli_double("--C", optarg, 1e-12, 1e12, &d), o.C = d;
            break;
        case 'E':
            st = fsb_cli_double("--eps", optarg, 1e-15, 1, &d), o.eps = d;
            break;
        case 'S':
            st = fsb_cli_int("--seed", optarg, 0, INT64_MAX, &v), o.seed = (uint64_t)v;
            break;
        case 't':
            st = fsb_cli_int("--threads", optarg, 0, 1024, &v), o.threads = (int)v;
            break;
        case 'd':
            o.dump = optarg;
            break;
        case 'r':
            o.report_dir = optarg;
            break;
        case 'h':
            perf_usage(stdout);
            return FSB_OK;
        case ':':
            return fsb_error(FSB_EINVAL, "%s needs a value", argv[optind - 1]);
        default:
            return fsb_error(FSB_EINVAL, "unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (st) return st;
    if (optind < argc) return fsb_error(FSB_EINVAL, "unexpected argument '%s'", argv[optind]);
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
