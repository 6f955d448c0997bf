/* cmd_merge.c - `bench merge --out DIR SHARD_DIR...`: the folders of `bench ... --shard
 * i/n` (all n of them) -> one normal run folder, as a single process writes it.
 * Flags -> fsb_merge_opts -> fsb_merge().
 */
#include "cli.h"
#include "fsb/merge.h"
#include "fsb/status.h"

#include <stdio.h>

static void merge_usage(FILE *out)
{
    fprintf(
        out,
        "usage: bench merge --out DIR SHARD_DIR...\n"
        "  checks that the folders are shards 0..n-1 of one run (bench ... --shard i/n,\n"
        "  same flags), each complete, then writes DIR: run.id, episodes.csv,\n"
        "  journal.log, per_episode.csv, summary.csv, paired.csv, table.md, table.tex,\n"
        "  timing.csv, accuracy_vs_shots.png, manifest.txt, identical (timing aside) to a run of\n"
        "  one process. Nothing is written when a check fails.\n");
}

int fsb_cmd_merge(int argc, char **argv)
{
    fsb_merge_opts o = {.log = stdout};
    char **dirs = NULL;
    const fsb_cli_flag flags[] = {
        FSB_FLAG("out", FSB_FLAG_STR, &o.out),
        FSB_FLAG("help", FSB_FLAG_HELP, NULL),
        FSB_FLAG("SHARD_DIR", FSB_FLAG_ARGS, &dirs, .count = &o.n_dirs),
    };
    int help, st = fsb_cli_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), "merge",
                                 &help);
    if (!st && help) merge_usage(stdout);
    if (st || help) return st;
    if (!o.out) return fsb_error(FSB_EINVAL, "--out is required (bench merge --help)");
    if (o.n_dirs < 1) return fsb_error(FSB_EINVAL, "no shard folders given (bench merge --help)");
    o.dirs = (const char *const *)dirs;
    return fsb_merge(&o);
}
