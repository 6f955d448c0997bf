/* shard.h - splitting one benchmark run over n processes, and merging the pieces.
 *
 * Tasks are (method, shot, episode) triples. Group g = m * n_shots + s numbers the run's
 * (method slot m, shot slot s) pairs in run order; episode e of group g belongs to shard
 *     owner(g, e) = (e + g) mod n.
 * Striping every group separately gives every shard floor(E/n) or ceil(E/n) episodes of
 * EACH group, so shards are balanced by cost even though a 30-shot training method costs
 * far more per episode than a 1-shot frozen-feature one; the offset g spreads the +1
 * remainders of the groups over different shards.
 *
 * Two ways to run shards:
 *  - `bench ... --shard i/n` (separate folders, e.g. a Slurm job array): the folder's
 *    run.id ends with the line "shard=i/n" (runfolder.h), journal.log holds the shard's tasks
 *    and, when they are all done, shard.done replaces the final reports; `bench merge`
 *    (merge.h) then writes the normal run folder.
 *  - `mpirun -np N bench ...` (one common folder, shared = 1): rank r journals to
 *    journal.r<r>of<N>.log and rank 0 gathers the records (dist.h) and writes the final
 *    files. A folder started with another N (or without mpirun) is refused.
 */
#ifndef FSB_SHARD_H
#define FSB_SHARD_H

#include "fsb/report.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Which part of a run this process does. Zeroed = the whole run. */
typedef struct fsb_shard {
    int index;  /* i, 0-based */
    int count;  /* n; 0 or 1: not sharded */
    int shared; /* 1: the shards share one run folder (mpirun ranks) */
} fsb_shard;

/* 1 when s splits the run (count > 1). */
int fsb_shard_active(const fsb_shard *s);

/* Parse "i/n" (0 <= i < n, 1 <= n <= 100000) into *s (shared = 0); errors name flag. */
int fsb_shard_parse(const char *flag, const char *text, fsb_shard *s);

/* The shard owning episode e of group g when a run is split n ways (n >= 1). */
int fsb_shard_owner(int group, long episode, int n);

/* 1 when the task (group g, episode e) belongs to s (always 1 when s is not active). */
int fsb_shard_owns(const fsb_shard *s, int group, long episode);

/* Number of episodes of group g (out of n_episodes) that shard s owns. */
long fsb_shard_group_size(const fsb_shard *s, int group, long n_episodes);

/* Path of this process's journal in run folder `out` (malloc'd into *path): journal.log,
 * or journal.r<i>of<n>.log for a shared shard. Refuses (FSB_EMISMATCH, naming the folder
 * and the file found) a folder holding the journals of another layout: a plain run's
 * journal.log beside mpirun ranks, or ranks of another count. */
int fsb_shard_journal_path(const char *out, const fsb_shard *s, char **path);

/* Write shard.done in `out` ("shard=i/n\ntasks=T\n", T tasks journaled), atomically. */
int fsb_shard_mark_done(const char *out, const fsb_shard *s, long tasks);

/* After this process's tasks of a run of n tasks (recs/done indexed by task, done[i] = 1
 * when recs[i] holds a result): not sharded -> *write_final = 1; a --shard folder ->
 * shard.done written, *write_final = 0; an mpirun rank -> its records are gathered on
 * rank 0 (dist.h), which must then hold every task (else an error), *write_final = 1 on
 * rank 0 only. */
int fsb_shard_finish(const char *out, const fsb_shard *s, fsb_episode_record *recs,
                     unsigned char *done, size_t n, int *write_final);

#endif
