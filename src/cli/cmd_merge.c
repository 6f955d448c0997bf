/* cmd_merge.c - `bench merge --out DIR SHARD_DIR...`: the folders of `bench ... --shard
 * i/n` (all n of them) -> one normal run folder, as a single process writes it.
 * Flags -> fsb_merge_opts -> fsb_merge().
 */
#include "cli.h"
#include "fsb/merge.h"
#include "fsb/status.h"

#include <getopt.h>
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
    static const struct option longopts[] = {{"out", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    fsb_merge_opts o = {.log = stdout};
    int c, xst = fsb_cli_exact_names(argc, argv, longopts, "merge");
    if (xst) return xst;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o.out = optarg;
            break;
        case 'h':
            merge_usage(stdout);
            return FSB_OK;
        default:
            return fsb_error(FSB_EINVAL, "unknown or incomplete flag '%s' (bench merge --help)",
                             argv[optind - 1]);
        }
    }
    if (!o.out) return fsb_error(FSB_EINVAL, "--out is required (bench merge --help)");
    if (optind >= argc) return fsb_error(FSB_EINVAL, "no shard folders given (bench merge --help)");
    o.dirs = (const char *const *)(argv + optind);
    o.n_dirs = argc - optind;
    return fsb_merge(&o);
}
