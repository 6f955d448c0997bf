/* journal.h - an append-only, crash-safe log of completed work, for resumable runs.
 *
 * Long jobs (benchmark runs, pre-training) record each finished unit as one line
 * "<payload>\t<crc32 hex>\n", flushed and fsync'd before the next unit starts. On
 * reopening, every intact line is handed back and a torn or corrupt last line (a kill -9
 * mid-write) is cut off, so rerunning the same command continues where it stopped. A
 * damaged line with intact lines after it cannot come from a kill: that is an error
 * (FSB_EFORMAT naming the line) and the file is left alone.
 * Final outputs are still written atomically elsewhere; the journal is the only file
 * that is appended to.
 */
#ifndef FSB_JOURNAL_H
#define FSB_JOURNAL_H

#include <stdio.h>

typedef struct fsb_journal {
    FILE *fp;   /* open for appending */
    char *path; /* owned, for messages */
} fsb_journal;

/* Called once per intact record on open, in file order; return nonzero to abort the open
 * with that status (e.g. a record that does not parse). */
typedef int (*fsb_journal_fn)(void *ctx, const char *payload, int line);

/* Open (creating if needed) the journal at path, replaying intact records through fn
 * (may be NULL) and truncating a damaged tail. The open journal holds an exclusive lock
 * (flock): a second open of the same file, by any process, fails with FSB_EMISMATCH until
 * it is closed. */
int fsb_journal_open(fsb_journal *j, const char *path, fsb_journal_fn fn, void *ctx);
/* Replay the intact records of the journal at path through fn without opening it for
 * writing (a damaged tail is ignored, not cut off): for readers of another process's
 * journal, e.g. `bench merge`. A missing file is FSB_ENOTFOUND. */
int fsb_journal_replay(const char *path, fsb_journal_fn fn, void *ctx);
/* Append one record durably (write + sync). payload must not contain '\t' or '\n'. */
int fsb_journal_append(fsb_journal *j, const char *payload);
/* Append one record without syncing; a batch of writes is made durable by one
 * fsb_journal_sync (a crash before it may lose the batch, never corrupt earlier records). */
int fsb_journal_write(fsb_journal *j, const char *payload);
int fsb_journal_sync(fsb_journal *j);
/* Close; no-op on a zeroed struct. */
void fsb_journal_close(fsb_journal *j);

#endif
