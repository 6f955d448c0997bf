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
    table_opts o = {NULL, NULL, NULL, 0, 0};
    const fsb_cli_flag flags[] = {
        FSB_FLAG("from", FSB_FLAG_STR, &o.from),
        FSB_FLAG("reference", FSB_FLAG_STR, &o.reference),
        FSB_FLAG("title", FSB_FLAG_STR, &o.title),
        FSB_FLAG("no-plot", FSB_FLAG_SWITCH, &o.no_plot),
        FSB_FLAG("partial", FSB_FLAG_SWITCH, &o.partial),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
    };
    int help, st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), "table",
                                 &help);
    if (!st && help) table_usage(stdout);
    if (st || help) return st;
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
    st = fsb_runfolder_rebuild(o.from, &ro, &res);
    if (st) return st;
    printf("rebuilt the reports of %s from per_episode.csv\n", o.from);
    if (res.note[0]) fprintf(stderr, "note: %s\n", res.note);
    return FSB_OK;
}
