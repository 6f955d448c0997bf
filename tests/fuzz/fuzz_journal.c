/* fuzz_journal.c - run journals through their public API only: fsb_journal_replay and
 * fsb_journal_open (which cuts a torn tail) on a scratch file, each record parsed as a run
 * record (fsb_run_record_parse, what run.c and merge.c do). Properties: a record has no tab
 * or newline; after a successful open the file replays cleanly to the same records.
 */
#include "common.h"
#include "fsb/journal.h"
#include "fsb/runfolder.h"
#include "fsb/status.h"

#include <stdlib.h>
#include <string.h>

static char *path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    path = fuzz_path("journal.log");
    return 0;
}

typedef struct seen {
    int n;      /* records */
    int last;   /* line of the last one */
    size_t sum; /* bytes of their payloads */
} seen;

static int on_record(void *ctx, const char *payload, int line)
{
    seen *s = ctx;
    if (strchr(payload, '\t') || strchr(payload, '\n')) fuzz_fail("record with a tab or newline");
    if (line <= s->last) fuzz_fail("record lines out of order");
    s->n++;
    s->last = line;
    s->sum += strlen(payload);
    fsb_episode_record rec;
    if (fsb_run_record_parse(payload, &rec) == FSB_OK &&
        (rec.n_correct < 0 || rec.n_correct > rec.n_query || !(rec.accuracy >= 0) ||
         !(rec.accuracy <= 1)))
        fuzz_fail("record '%s' parsed out of range", payload);
    return FSB_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write(path, data, size);
    seen a = {0, 0, 0}, b = {0, 0, 0}, c = {0, 0, 0};
    int st_replay = fsb_journal_replay(path, on_record, &a);
    fsb_journal j;
    int st = fsb_journal_open(&j, path, on_record, &b);
    if (st != st_replay) fuzz_fail("replay gives %d, open %d", st_replay, st);
    if (st) return 0;
    fsb_journal_close(&j);
    if (b.n != a.n || b.sum != a.sum) fuzz_fail("open and replay saw other records");
    if (fsb_journal_replay(path, on_record, &c) || c.n != b.n || c.sum != b.sum)
        fuzz_fail("after open, the journal replays to other records: %s", fsb_error_last());
    return 0;
}
