/* merge.h - reading the journals of a split run back: `bench merge` of --shard folders into
 * one run folder, and `bench table --partial`, the reports of a run that is still going.
 * Both read the run folder's files through runfolder.h and trust nothing they have not
 * checked: identities must agree, every record must belong to the run and to the shard
 * whose journal holds it.
 */
#ifndef FSB_MERGE_H
#define FSB_MERGE_H

#include "fsb/report.h"

#include <stdio.h>

/* Options of `bench merge`. */
typedef struct fsb_merge_opts {
    const char *out;         /* the run folder to write (must not hold another run) */
    const char *const *dirs; /* shard folders */
    int n_dirs;              /* their number */
    FILE *log;               /* one-line notes (stdout), or NULL */
} fsb_merge_opts;

/* Validate the shard folders and write the merged run folder o->out: run.id (without the
 * shard line), episodes.csv, journal.log, per_episode.csv, the derived reports and
 * manifest.txt, as a single process with the same flags writes them
 * (fsb_runfolder_write_results). Refused, with a message naming the folder and what differs,
 * and nothing written: a folder that is not a shard, run identities that differ apart from
 * the shard line, shard counts that differ, a duplicate or missing shard, a shard whose
 * journal lacks some of its tasks (or holds a task of another shard), an out folder holding
 * another run. */
int fsb_merge(const fsb_merge_opts *o);

/* What fsb_merge_partial found. */
typedef struct fsb_partial_result {
    long done;  /* distinct tasks journaled */
    long total; /* tasks of the run (of this shard for a --shard folder) */
} fsb_partial_result;

/* `bench table --from RUN --partial`: the reports of a run folder from the tasks journaled
 * so far, for a look at a long run before it ends. Reads RUN/run.id and every journal of
 * the folder (journal.log of a plain or --shard run, journal.r<i>of<n>.log of each mpirun
 * rank; a torn tail is ignored, nothing in RUN is modified) and writes RUN/partial/:
 * per_episode.csv in report order and the derived reports (report.h) titled "PARTIAL"
 * with the done/total count (opt->title replaces that title; opt->no_paper and
 * opt->backbone come from run.id). Cells hold different episode counts while a run is
 * going: summary.csv says how many each has. Errors: not a run folder (no run.id), no
 * journal or no task journaled yet (FSB_ENOTFOUND), a record of another run (FSB_EFORMAT,
 * naming the file). res may be NULL. */
int fsb_merge_partial(const char *run_dir, const fsb_report_options *opt, fsb_partial_result *res,
                      FILE *log);

#endif
