/* cmd_tune.c - `bench tune --data ROOT --teacher CKPT [--grid SPEC]`: choose the finetune /
 * refilled options on val-split episodes. Flags -> fsb_tune_opts -> fsb_tune(). The test
 * split is refused.
 */
#include "cli.h"
#include "fsb/model.h"
#include "fsb/status.h"
#include "fsb/tune.h"

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
                 "  --image-size N, --resize N, --crop N   as bench run (the teacher's)\n"
                 "  --arch conv4|res12 refuse a teacher of another architecture\n"
                 "Rerun the same command after an interruption to continue.\n");
}

/* --split NAME: a plain name, never the test split. */
static int parse_split(void *dst, const char *flag, const char *text)
{
    int st = fsb_tune_split_check(text, flag);
    if (!st) *(const char **)dst = text;
    return st;
}

int fsb_cmd_tune(int argc, char **argv)
{
    fsb_tune_opts o;
    fsb_tune_opts_default(&o);
    o.data = getenv("FSB_DATA");
    o.teacher = getenv("FSB_TEACHER");
    o.progress = stderr;
    o.log = stdout;
    const char *methods_text = NULL;
    const fsb_cli_flag flags[] = {
        FSB_FLAG("data", FSB_FLAG_STR, &o.data),
        FSB_FLAG("teacher", FSB_FLAG_STR, &o.teacher),
        FSB_FLAG("out", FSB_FLAG_STR, &o.out),
        FSB_FLAG("split", FSB_FLAG_FN, &o.split, .fn = parse_split),
        FSB_FLAG("grid", FSB_FLAG_STR, &o.grid),
        FSB_FLAG("methods", FSB_FLAG_STR, &methods_text),
        FSB_FLAG("cache", FSB_FLAG_STR, &o.cache_dir),
        FSB_FLAG("episodes", FSB_FLAG_LONG, &o.episodes, .lo = 1, .hi = 1000000),
        FSB_FLAG("shots", FSB_FLAG_INTLIST, o.shots, .lo = FSB_EPISODES_MAX_SHOTS, .hi = 100000,
                 .count = &o.n_shots),
        FSB_FLAG("way", FSB_FLAG_INT, &o.way, .lo = 2, .hi = 1000),
        FSB_FLAG("query", FSB_FLAG_INT, &o.query, .lo = 1, .hi = 100000),
        FSB_FLAG("seed", FSB_FLAG_U64, &o.seed, .lo = 0, .hi = 9.2e18),
        FSB_FLAG("threads", FSB_FLAG_INT, &o.threads, .lo = 0, .hi = 1024),
        FSB_FLAG("image-size", FSB_FLAG_INT, &o.image_size, .lo = 8, .hi = 1024),
        FSB_FLAG("resize", FSB_FLAG_INT, &o.resize, .lo = 8, .hi = 1024),
        FSB_FLAG("crop", FSB_FLAG_INT, &o.crop, .lo = 8, .hi = 1024),
        FSB_FLAG("arch", FSB_FLAG_FN, &o.arch, .fn = fsb_cli_arch),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };
    int help,
        st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), "tune", &help);
    if (!st && help) {
        tune_usage(stdout);
        return FSB_OK;
    }
    if (!st && methods_text) {
        o.n_methods = 0;
        /* split in place: the text is our argv, which is writable */
        for (char *save = NULL, *tok = strtok_r((char *)methods_text, ",", &save); tok && !st;
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
