/* cmd_compare.c - `bench compare --a RUN_A --b RUN_B [--out DIR]`: two finished runs on the
 * same episodes, paired episode by episode (compare.h). Flags -> fsb_compare_opts ->
 * fsb_compare(). */
#include "cli.h"
#include "fsb/compare.h"
#include "fsb/status.h"

#include <stdio.h>

static void compare_usage(FILE *out)
{
    fprintf(out,
            "usage: bench compare --a RUN_A --b RUN_B [--out DIR] [--label-a TEXT] "
            "[--label-b TEXT]\n"
            "  two finished runs on the same episodes (same split, episodes, way and query;\n"
            "  e.g. two backbones): for every method and shot both hold, the mean and 95%% CI\n"
            "  of the per-episode difference B - A. Prints the table; with --out also writes\n"
            "  DIR/compare.csv and DIR/compare.md.\n");
}

int fsb_cmd_compare(int argc, char **argv)
{
    fsb_compare_opts o = {.log = stdout};
    const fsb_cli_flag flags[] = {
        FSB_FLAG("a", FSB_FLAG_STR, &o.run_a),
        FSB_FLAG("b", FSB_FLAG_STR, &o.run_b),
        FSB_FLAG("out", FSB_FLAG_STR, &o.out),
        FSB_FLAG("label-a", FSB_FLAG_STR, &o.label_a),
        FSB_FLAG("label-b", FSB_FLAG_STR, &o.label_b),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };
    int help, st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                                 "compare", &help);
    if (!st && help) compare_usage(stdout);
    if (st || help) return st;
    return fsb_compare(&o);
}
