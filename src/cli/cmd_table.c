/* cmd_table.c - `bench table --from RUN`: rebuild summary.csv, paired.csv, table.md,
 * table.tex and accuracy_vs_shots.png of a run folder from its per_episode.csv alone;
 * with --partial, the same reports of an unfinished run from its journals, in RUN/partial/.
 */
#include "cli.h"
#include "fsb/fileio.h"
#include "fsb/report.h"
#include "fsb/merge.h"
#include "fsb/runfolder.h"
#include "fsb/status.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const char *from;      /* run folder */
    const char *reference; /* paired reference when no refilled* method is present */
    const char *title;     /* table title */
    int no_plot;           /* 1: skip gnuplot */
    int partial;           /* 1: from the journals of an unfinished run, into RUN/partial/ */
} table_opts;

static void table_usage(FILE *out)
{
    fprintf(out, "usage: bench table --from RUN [--partial] [--reference METHOD] [--title TEXT]\n"
                 "                   [--no-plot]\n"
                 "  rebuilds RUN/summary.csv, paired.csv, table.md, table.tex, timing.csv and\n"
                 "  accuracy_vs_shots.png from RUN/per_episode.csv\n"
                 "  --partial: the same reports from the episodes an unfinished (or running)\n"
                 "             run has journaled so far, written to RUN/partial/\n");
}

int fsb_cmd_table(int argc, char **argv)
{
    static const struct option longopts[] = {{"from", required_argument, NULL, 'f'},
                                             {"reference", required_argument, NULL, 'r'},
                                             {"title", required_argument, NULL, 't'},
                                             {"no-plot", no_argument, NULL, 'n'},
                                             {"partial", no_argument, NULL, 'p'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    table_opts o = {NULL, NULL, NULL, 0, 0};
    optind = 1;
    opterr = 0;
    int c, xst = fsb_cli_exact_names(argc, argv, longopts, "table");
    if (xst) return xst;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o.from = optarg;
            break;
        case 'r':
            o.reference = optarg;
            break;
        case 't':
            o.title = optarg;
            break;
        case 'n':
            o.no_plot = 1;
            break;
        case 'p':
            o.partial = 1;
            break;
        case 'h':
            table_usage(stdout);
            return FSB_OK;
        case ':':
            return fsb_error(FSB_EINVAL, "%s needs a value", argv[optind - 1]);
        default:
            return fsb_error(FSB_EINVAL, "unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return fsb_error(FSB_EINVAL, "unexpected argument '%s'", argv[optind]);
    if (!o.from) return fsb_error(FSB_EINVAL, "--from RUN is required");
    fsb_report_options ro = {.reference = o.reference, .title = o.title, .skip_plot = o.no_plot};
    if (o.partial) return fsb_merge_partial(o.from, &ro, NULL, stdout);
    char *pe = fsb_path_join(o.from, "per_episode.csv"), *id = fsb_path_join(o.from, "run.id");
    int unfinished = pe && id && !fsb_is_file(pe) && fsb_is_file(id);
    free(pe);
    free(id);
    if (unfinished)
        return fsb_error(FSB_ENOTFOUND,
                         "%s is not finished (no per_episode.csv yet); rerun its bench command "
                         "to finish it, or add --partial for reports of the episodes done so far",
                         o.from);
    fsb_report_result res;
    int st = fsb_runfolder_rebuild(o.from, &ro, &res);
    if (st) return st;
    printf("rebuilt the reports of %s from per_episode.csv\n", o.from);
    if (res.note[0]) fprintf(stderr, "note: %s\n", res.note);
    return FSB_OK;
}
