/* cmd_tune.c - `bench tune --data ROOT --teacher CKPT [--grid SPEC]`: choose the finetune /
 * refilled options on val-split episodes. Flags -> fsb_tune_opts -> fsb_tune(). The test
 * split is refused.
 */
#include "cli.h"
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/tune.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tune_usage(FILE *out)
{
    fprintf(out, "usage: bench tune --data ROOT --teacher CKPT [flags]\n"
                 "  --grid SPEC        key=v1|v2,... cross product of student options\n"
                 "                     (default \"" FSB_TUNE_DEFAULT_GRID "\")\n"
                 "  --methods LIST     of finetune,refilled,svm,logreg (finetune,refilled);\n"
                 "                     svm/logreg read C and norm from the grid (default\n"
                 "                     \"C=0.01|0.1|1|10\"), the students the --student keys\n"
                 "  --out DIR          results folder (results/tune): DIR/<method>/<point>/ runs,\n"
                 "                     DIR/val_table.md, DIR/chosen.txt\n"
                 "  --split NAME       tuning split (val; test is refused)\n"
                 "  --episodes N       episodes per shot (100)\n"
                 "  --shots LIST       (1,5,10,30)\n"
                 "  --way N            (5)\n"
                 "  --query N          (15)\n"
                 "  --seed N           episode seed (1; the test runs use 0)\n"
                 "  --threads N        workers, 0 = one per core (0)\n"
                 "  --cache DIR        packed images and features (next to the data)\n"
                 "  --image-size N, --resize N, --crop N   as bench run (84, 92, 84)\n"
                 "  --arch conv4|res12 refuse a teacher of another architecture\n"
                 "Rerun the same command after an interruption to continue.\n");
}

int fsb_cmd_tune(int argc, char **argv)
{
    enum {
        O_DATA = 256,
        O_TEACHER,
        O_OUT,
        O_SPLIT,
        O_GRID,
        O_METHODS,
        O_EPISODES,
        O_SHOTS,
        O_WAY,
        O_QUERY,
        O_SEED,
        O_THREADS,
        O_CACHE,
        O_SIZE,
        O_RESIZE,
        O_CROP,
        O_ARCH,
        O_HELP
    };
    static const struct option longopts[] = {{"data", required_argument, 0, O_DATA},
                                             {"teacher", required_argument, 0, O_TEACHER},
                                             {"out", required_argument, 0, O_OUT},
                                             {"split", required_argument, 0, O_SPLIT},
                                             {"grid", required_argument, 0, O_GRID},
                                             {"methods", required_argument, 0, O_METHODS},
                                             {"episodes", required_argument, 0, O_EPISODES},
                                             {"shots", required_argument, 0, O_SHOTS},
                                             {"way", required_argument, 0, O_WAY},
                                             {"query", required_argument, 0, O_QUERY},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"threads", required_argument, 0, O_THREADS},
                                             {"cache", required_argument, 0, O_CACHE},
                                             {"image-size", required_argument, 0, O_SIZE},
                                             {"resize", required_argument, 0, O_RESIZE},
                                             {"crop", required_argument, 0, O_CROP},
                                             {"arch", required_argument, 0, O_ARCH},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    fsb_tune_opts o;
    fsb_tune_opts_default(&o);
    o.data = getenv("FSB_DATA");
    o.teacher = getenv("FSB_TEACHER");
    o.progress = stderr;
    o.log = stdout;
    char *methods_text = NULL;
    long v = 0;
    int st = FSB_OK, c;
    optind = 1;
    opterr = 0;
    while (!st && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_DATA:
            o.data = optarg;
            break;
        case O_TEACHER:
            o.teacher = optarg;
            break;
        case O_OUT:
            o.out = optarg;
            break;
        case O_SPLIT:
            o.split = optarg;
            if (!strcmp(optarg, "test"))
                st = fsb_error(FSB_EINVAL, "--split: tuning never reads the test split");
            break;
        case O_GRID:
            o.grid = optarg;
            break;
        case O_METHODS:
            methods_text = optarg;
            break;
        case O_CACHE:
            o.cache_dir = optarg;
            break;
        case O_EPISODES:
            st = fsb_cli_int("--episodes", optarg, 1, 1000000, &o.episodes);
            break;
        case O_SHOTS:
            st = fsb_cli_int_list("--shots", optarg, 100000, o.shots, FSB_EPISODES_MAX_SHOTS,
                                  &o.n_shots);
            break;
        case O_WAY:
            if (!(st = fsb_cli_int("--way", optarg, 2, 1000, &v))) o.way = (int)v;
            break;
        case O_QUERY:
            if (!(st = fsb_cli_int("--query", optarg, 1, 100000, &v))) o.query = (int)v;
            break;
        case O_SEED:
            if (!(st = fsb_cli_int("--seed", optarg, 0, 0x7fffffffffffffffL, &v)))
                o.seed = (uint64_t)v;
            break;
        case O_THREADS:
            if (!(st = fsb_cli_int("--threads", optarg, 0, 1024, &v))) o.threads = (int)v;
            break;
        case O_SIZE:
            if (!(st = fsb_cli_int("--image-size", optarg, 8, 1024, &v))) o.image_size = (int)v;
            break;
        case O_RESIZE:
            if (!(st = fsb_cli_int("--resize", optarg, 8, 1024, &v))) o.resize = (int)v;
            break;
        case O_CROP:
            if (!(st = fsb_cli_int("--crop", optarg, 8, 1024, &v))) o.crop = (int)v;
            break;
        case O_ARCH: {
            fsb_arch a;
            if ((st = fsb_arch_parse(optarg, &a))) st = fsb_error_wrap(st, "--arch");
            o.arch = optarg;
            break;
        }
        case O_HELP:
            tune_usage(stdout);
            return FSB_OK;
        default:
            st = fsb_error(FSB_EINVAL, "unknown or incomplete flag '%s' (bench tune --help)",
                           argv[optind - 1]);
        }
    }
    if (!st && optind < argc) st = fsb_error(FSB_EINVAL, "unexpected argument '%s'", argv[optind]);
    if (!st && methods_text) {
        o.n_methods = 0;
        for (char *save = NULL, *tok = strtok_r(methods_text, ",", &save); tok && !st;
             tok = strtok_r(NULL, ",", &save)) {
            if (o.n_methods == FSB_TUNE_MAX_METHODS || !fsb_tune_method_ok(tok))
                st =
                    fsb_error(FSB_EINVAL,
                              "--methods: '%s': give some of finetune, refilled, svm, logreg", tok);
            else
                o.methods[o.n_methods++] = tok;
        }
        if (!st && o.n_methods == 0) st = fsb_error(FSB_EINVAL, "--methods: empty list");
    }
    /* check the grid before any work, naming the key */
    for (int m = 0; m < o.n_methods && !st; m++) {
        char *pts[FSB_TUNE_MAX_POINTS];
        int n = 0;
        st = fsb_tune_expand(o.grid ? o.grid : fsb_tune_default_grid(o.methods[m]), o.methods[m],
                             "--grid", pts, &n);
        for (int i = 0; i < n; i++)
            free(pts[i]);
    }
    if (st) return st;
    if (!o.data) return fsb_error(FSB_EINVAL, "no dataset: pass --data ROOT or set FSB_DATA");
    if (!o.teacher)
        return fsb_error(FSB_EINVAL, "no teacher: pass --teacher CKPT or set FSB_TEACHER");
    return fsb_tune(&o);
}
