/* shard.c - task assignment of a split run, its journal files and its end (see
 * include/fsb/shard.h). Reading the pieces back is merge.c's.
 */
#include "fsb/shard.h"
#include "fsb/dist.h"
#include "fsb/fileio.h"
#include "fsb/journal.h"
#include "fsb/status.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_MAX 100000 /* largest n accepted by --shard */

int fsb_shard_active(const fsb_shard *s)
{
    return s && s->count > 1;
}

int fsb_shard_parse(const char *flag, const char *text, fsb_shard *s)
{
    char *end;
    memset(s, 0, sizeof *s);
    errno = 0;
    long i = strtol(text, &end, 10);
    if (end == text || *end != '/' || errno)
        return fsb_error(FSB_EINVAL, "%s: '%s' is not i/n (e.g. 0/4)", flag, text);
    const char *p = end + 1;
    long n = strtol(p, &end, 10);
    if (end == p || *end || errno)
        return fsb_error(FSB_EINVAL, "%s: '%s' is not i/n (e.g. 0/4)", flag, text);
    if (n < 1 || n > SHARD_MAX || i < 0 || i >= n)
        return fsb_error(FSB_EINVAL, "%s: '%s' needs 1 <= n <= %d and 0 <= i < n", flag, text,
                         SHARD_MAX);
    s->index = (int)i;
    s->count = (int)n;
    return FSB_OK;
}

int fsb_shard_owner(int group, long episode, int n)
{
    return (int)(((long long)episode + group) % n);
}

int fsb_shard_owns(const fsb_shard *s, int group, long episode)
{
    return !fsb_shard_active(s) || fsb_shard_owner(group, episode, s->count) == s->index;
}

long fsb_shard_group_size(const fsb_shard *s, int group, long n_episodes)
{
    if (!fsb_shard_active(s)) return n_episodes;
    /* episodes e with (e + g) mod n == i: the first is (i - g) mod n */
    long n = s->count, first = ((s->index - group) % n + n) % n;
    return first >= n_episodes ? 0 : (n_episodes - 1 - first) / n + 1;
}

int fsb_shard_journal_path(const char *out, const fsb_shard *s, char **path)
{
    *path = NULL;
    int shared = fsb_shard_active(s) && s->shared, st = FSB_OK;
    DIR *d = opendir(out);
    if (!d) return fsb_error(FSB_EIO, "%s: cannot list: %s", out, strerror(errno));
    struct dirent *ent;
    while (!st && (ent = readdir(d))) {
        int r, n, len = 0;
        if (sscanf(ent->d_name, "journal.r%dof%d.log%n", &r, &n, &len) == 2 &&
            ent->d_name[len] == '\0') {
            if (!shared)
                st = fsb_error(FSB_EMISMATCH,
                               "%s was started by mpirun with %d ranks (it holds "
                               "%s); rerun it with mpirun -np %d, or use another "
                               "--out folder",
                               out, n, ent->d_name, n);
            else if (n != s->count)
                st = fsb_error(FSB_EMISMATCH,
                               "%s was started by mpirun with %d ranks (it holds "
                               "%s), not %d; rerun it with mpirun -np %d, or use "
                               "another --out folder",
                               out, n, ent->d_name, s->count, n);
        } else if (shared && !strcmp(ent->d_name, "journal.log")) {
            st = fsb_error(FSB_EMISMATCH,
                           "%s holds the journal.log of a run without mpirun; "
                           "finish it the same way, or use another --out folder",
                           out);
        }
    }
    closedir(d);
    if (st) return st;
    char name[64];
    if (shared)
        snprintf(name, sizeof name, "journal.r%dof%d.log", s->index, s->count);
    else
        snprintf(name, sizeof name, "journal.log");
    if (!(*path = fsb_path_join(out, name))) return fsb_error(FSB_ENOMEM, "out of memory");
    return FSB_OK;
}

int fsb_shard_mark_done(const char *out, const fsb_shard *s, long tasks)
{
    char text[128], *path = fsb_path_join(out, "shard.done");
    if (!path) return fsb_error(FSB_ENOMEM, "out of memory");
    int len = snprintf(text, sizeof text, "shard=%d/%d\ntasks=%ld\n", s->index, s->count, tasks);
    int st = fsb_write_file(path, text, (size_t)len);
    free(path);
    return st;
}

int fsb_shard_finish(const char *out, const fsb_shard *s, fsb_episode_record *recs,
                     unsigned char *done, size_t n, int *write_final)
{
    *write_final = 1;
    if (!fsb_shard_active(s)) return FSB_OK;
    if (!s->shared) {
        long tasks = 0;
        for (size_t i = 0; i < n; i++)
            tasks += done[i] != 0;
        *write_final = 0;
        return fsb_shard_mark_done(out, s, tasks);
    }
    int st = fsb_dist_gather(recs, sizeof *recs, done, n);
    if (st || s->index != 0) {
        *write_final = 0;
        return st;
    }
    for (size_t i = 0; i < n; i++)
        if (!done[i]) return fsb_error(FSB_EFORMAT, "%s: task %zu was done by no rank", out, i);
    return FSB_OK;
}
