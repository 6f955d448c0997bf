/* journal.c - append-only crash-safe record log (see include/fsb/journal.h).
 * Invariant after open: the file holds only intact records, each ending in '\n'.
 */
#include "fsb/journal.h"
#include "fsb/status.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <zlib.h>

static unsigned long line_crc(const char *s, size_t n)
{
    return crc32(0L, (const Bytef *)s, (uInt)n);
}

/* Replay intact records; *good = byte length of the intact prefix. */
static int replay(const char *path, FILE *fp, fsb_journal_fn fn, void *ctx, long *good)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, st = FSB_OK, damaged = 0;
    *good = 0;
    while ((len = getline(&line, &cap, fp)) > 0) {
        lineno++;
        int intact = line[len - 1] == '\n';
        char *tab = NULL;
        if (intact) {
            line[--len] = '\0';
            tab = strrchr(line, '\t');
            char *end = NULL;
            unsigned long want = tab && strlen(tab + 1) == 8 ? strtoul(tab + 1, &end, 16) : 0;
            intact = end && *end == '\0' && want == line_crc(line, (size_t)(tab - line));
        }
        if (!intact) {
            /* a crash can only tear the last write; damage with records after it is not a
             * torn tail, and dropping those records would silently throw work away */
            damaged = getline(&line, &cap, fp) > 0;
            break;
        }
        *tab = '\0';
        if (fn && (st = fn(ctx, line, lineno)) != FSB_OK) break;
        *good += len + 1;
    }
    free(line);
    if (st) return fsb_error_wrap(st, "%s: line %d", path, lineno);
    if (damaged)
        return fsb_error(FSB_EFORMAT,
                         "%s: line %d is damaged (bad checksum) and more records follow it; "
                         "the journal is corrupt, not torn: move it aside to recompute",
                         path, lineno);
    return FSB_OK;
}

int fsb_journal_open(fsb_journal *j, const char *path, fsb_journal_fn fn, void *ctx)
{
    memset(j, 0, sizeof *j);
    FILE *fp = fopen(path, "a+");
    if (!fp) return fsb_error(FSB_EIO, "%s: cannot open: %s", path, strerror(errno));
    /* one writer at a time: a second process on the same folder would redo every task and
     * could cut off the first one's half-written tail; the lock goes with the file */
    if (flock(fileno(fp), LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        fclose(fp);
        if (e == EWOULDBLOCK)
            return fsb_error(FSB_EMISMATCH,
                             "%s: in use by another bench process; wait for it to finish, or "
                             "use another --out folder",
                             path);
        return fsb_error(FSB_EIO, "%s: cannot lock: %s", path, strerror(e));
    }
    rewind(fp);
    long good;
    int st = replay(path, fp, fn, ctx, &good);
    if (st == FSB_OK && (fflush(fp) != 0 || ftruncate(fileno(fp), good) != 0))
        st = fsb_error(FSB_EIO, "%s: cannot truncate damaged tail: %s", path, strerror(errno));
    if (st == FSB_OK && fseek(fp, 0, SEEK_END) != 0)
        st = fsb_error(FSB_EIO, "%s: cannot seek: %s", path, strerror(errno));
    if (st) {
        fclose(fp);
        return st;
    }
    j->fp = fp;
    j->path = strdup(path);
    if (!j->path) {
        fsb_journal_close(j);
        return fsb_error(FSB_ENOMEM, "%s: out of memory", path);
    }
    return FSB_OK;
}

int fsb_journal_replay(const char *path, fsb_journal_fn fn, void *ctx)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return fsb_error(errno == ENOENT ? FSB_ENOTFOUND : FSB_EIO, "%s: cannot open: %s", path,
                         strerror(errno));
    long good;
    int st = replay(path, fp, fn, ctx, &good);
    fclose(fp);
    return st;
}

int fsb_journal_write(fsb_journal *j, const char *payload)
{
    size_t n = strlen(payload);
    assert(!memchr(payload, '\t', n) && !memchr(payload, '\n', n));
    if (fprintf(j->fp, "%s\t%08lx\n", payload, line_crc(payload, n)) < 0)
        return fsb_error(FSB_EIO, "%s: cannot append: %s", j->path, strerror(errno));
    return FSB_OK;
}

int fsb_journal_sync(fsb_journal *j)
{
    if (fflush(j->fp) != 0 || fsync(fileno(j->fp)) != 0)
        return fsb_error(FSB_EIO, "%s: cannot append: %s", j->path, strerror(errno));
    return FSB_OK;
}

int fsb_journal_append(fsb_journal *j, const char *payload)
{
    int st = fsb_journal_write(j, payload);
    return st ? st : fsb_journal_sync(j);
}

void fsb_journal_close(fsb_journal *j)
{
    if (!j) return;
    if (j->fp) fclose(j->fp);
    free(j->path);
    memset(j, 0, sizeof *j);
}
