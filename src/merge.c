/* merge.c - `bench merge` and `bench table --partial` (see include/fsb/merge.h).
 *
 * The merge trusts nothing it has not checked: the shards' identities must agree apart from
 * their shard line, all n shards must be there once, and every shard's journal must hold
 * exactly the tasks the assignment (shard.h) gives it. Only then is anything written, through
 * the runner's own fsb_runfolder_write_results.
 */
#include "fsb/merge.h"
#include "fsb/fileio.h"
#include "fsb/journal.h"
#include "fsb/runfolder.h"
#include "fsb/shard.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One run folder read back: a shard given to the merge, or the folder of a partial look. */
typedef struct part_dir {
    const char *dir;  /* the folder */
    fsb_run_ident id; /* its identity (shard line cleared) */
    char *base;       /* that identity as text, without the shard line (malloc'd) */
    fsb_shard s;      /* its shard ({0, 1, 0}: the whole run) */
    long journaled;   /* its distinct tasks found in the journal */
} part_dir;

/* Read dir/run.id into d. need_shard: a folder without a shard line is refused. */
static int read_part(part_dir *d, int need_shard)
{
    int st = fsb_run_ident_read(d->dir, &d->id, NULL);
    if (st) return st;
    if (!fsb_shard_active(&d->id.shard)) {
        if (need_shard)
            return fsb_error(FSB_EINVAL,
                             "%s is not a shard (its run.id has no shard= line; it was "
                             "not run with --shard i/n)",
                             d->dir);
        d->id.shard = (fsb_shard){0, 1, 0};
    }
    d->s = d->id.shard;
    d->id.shard = (fsb_shard){0};
    return fsb_run_ident_format(&d->id, &d->base);
}

/* Record and have arrays for every task of the run, indexed [method][shot][episode]. */
static int task_arrays(const fsb_run_ident *id, fsb_episode_record **recs, unsigned char **have,
                       size_t *n_tasks)
{
    *n_tasks = (size_t)id->n_methods * id->n_shots * (size_t)id->episodes;
    *recs = calloc(*n_tasks, sizeof **recs);
    *have = calloc(*n_tasks, 1);
    if (!*recs || !*have) return fsb_error(FSB_ENOMEM, "out of memory");
    return FSB_OK;
}

/* Journal replay context of one part. */
typedef struct merge_ctx {
    const fsb_run_ident *id;  /* the run */
    part_dir *d;              /* the part being read (its shard decides the owner check) */
    fsb_episode_record *recs; /* [method][shot][episode] */
    unsigned char *have;      /* same indexing */
} merge_ctx;

static int merge_record(void *vctx, const char *payload, int line)
{
    (void)line;
    merge_ctx *c = vctx;
    const fsb_run_ident *id = c->id;
    fsb_episode_record rec;
    int st = fsb_run_record_parse(payload, &rec);
    if (st) return st;
    int m = -1, s = -1;
    for (int i = 0; i < id->n_methods; i++)
        if (!strcmp(id->methods[i].name, rec.method)) m = i;
    for (int i = 0; i < id->n_shots; i++)
        if (id->shots[i] == rec.shot) s = i;
    if (m < 0 || s < 0 || rec.episode >= id->episodes || rec.n_query != id->way * id->query)
        return fsb_error(FSB_EFORMAT, "record '%s' does not belong to this run", payload);
    int g = m * id->n_shots + s;
    int owner = fsb_shard_owner(g, (long)rec.episode, c->d->s.count);
    if (owner != c->d->s.index)
        return fsb_error(FSB_EMISMATCH, "record '%s' is a task of shard %d/%d, not of %d/%d",
                         payload, owner, c->d->s.count, c->d->s.index, c->d->s.count);
    size_t ti = ((size_t)g) * (size_t)id->episodes + (size_t)rec.episode;
    if (c->have[ti] && c->recs[ti].n_correct != rec.n_correct)
        return fsb_error(FSB_EFORMAT,
                         "record '%s' contradicts an earlier record of that task "
                         "(%d correct)",
                         payload, c->recs[ti].n_correct);
    if (!c->have[ti]) c->d->journaled++;
    c->have[ti] = 1;
    c->recs[ti] = rec;
    return FSB_OK;
}

/* out/journal.log afresh with every record, so the merged folder is a finished run that the
 * plain bench command recognises (rerunning it only rewrites the final files). */
static int write_journal(const char *out, const fsb_episode_record *recs, size_t n)
{
    char *path = fsb_path_join(out, "journal.log");
    if (!path) return fsb_error(FSB_ENOMEM, "out of memory");
    int st = FSB_OK;
    if (remove(path) != 0 && errno != ENOENT)
        st = fsb_error(FSB_EIO, "%s: cannot replace: %s", path, strerror(errno));
    fsb_journal j;
    memset(&j, 0, sizeof j);
    if (!st) st = fsb_journal_open(&j, path, NULL, NULL);
    for (size_t i = 0; !st && i < n; i++) {
        char payload[256];
        fsb_run_record_format(&recs[i], payload, sizeof payload);
        st = fsb_journal_write(&j, payload);
    }
    if (!st) st = fsb_journal_sync(&j);
    fsb_journal_close(&j);
    free(path);
    return st;
}

/* The shards given: the same run, split the same way, every shard exactly once. */
static int check_shards(const fsb_merge_opts *o, const part_dir *d)
{
    for (int i = 1; i < o->n_dirs; i++) {
        if (strcmp(d[i].base, d[0].base) != 0) {
            char diff[1024];
            fsb_run_ident_diff(d[i].base, d[0].base, diff, sizeof diff);
            return fsb_error(FSB_EMISMATCH, "%s and %s are shards of different runs (%s)", d[i].dir,
                             d[0].dir, diff);
        }
        if (d[i].s.count != d[0].s.count)
            return fsb_error(FSB_EMISMATCH,
                             "%s is shard %d/%d but %s is shard %d/%d: different splits", d[i].dir,
                             d[i].s.index, d[i].s.count, d[0].dir, d[0].s.index, d[0].s.count);
        for (int j = 0; j < i; j++)
            if (d[j].s.index == d[i].s.index)
                return fsb_error(FSB_EMISMATCH, "%s and %s are both shard %d/%d", d[j].dir,
                                 d[i].dir, d[i].s.index, d[i].s.count);
    }
    for (int k = 0; k < d[0].s.count; k++) {
        int found = 0;
        for (int i = 0; i < o->n_dirs; i++)
            found |= d[i].s.index == k;
        if (!found)
            return fsb_error(FSB_ENOTFOUND, "shard %d/%d is missing (%d of %d shard folders given)",
                             k, d[0].s.count, o->n_dirs, d[0].s.count);
    }
    return FSB_OK;
}

/* Replay every shard's journal into recs/have: each complete, with its own tasks only. */
static int read_shard_journals(const fsb_merge_opts *o, part_dir *d, fsb_episode_record *recs,
                               unsigned char *have, size_t n_tasks)
{
    const fsb_run_ident *id = &d[0].id;
    int st = FSB_OK;
    for (int i = 0; !st && i < o->n_dirs; i++) {
        char *jp = fsb_path_join(d[i].dir, "journal.log");
        merge_ctx c = {id, &d[i], recs, have};
        st = jp ? fsb_journal_replay(jp, merge_record, &c) : fsb_error(FSB_ENOMEM, "oom");
        free(jp);
        if (st == FSB_ENOTFOUND)
            st = fsb_error(FSB_EINVAL,
                           "%s is incomplete: it has no journal.log yet (run its bench command)",
                           d[i].dir);
        if (st) break;
        long want = 0;
        for (int g = 0; g < id->n_methods * id->n_shots; g++)
            want += fsb_shard_group_size(&d[i].s, g, id->episodes);
        if (d[i].journaled != want)
            st = fsb_error(FSB_EINVAL,
                           "%s is incomplete: %ld of its %ld tasks are journaled (rerun its "
                           "bench command to finish it)",
                           d[i].dir, d[i].journaled, want);
    }
    for (size_t i = 0; !st && i < n_tasks; i++)
        if (!have[i]) st = fsb_error(FSB_EFORMAT, "task %zu is in no shard's journal", i);
    return st;
}

/* "merged_from=<shard 0> <shard 1> ...\n" (malloc'd), in shard order. */
static char *merged_from(const fsb_merge_opts *o, const part_dir *d)
{
    size_t len = 64;
    for (int i = 0; i < o->n_dirs; i++)
        len += strlen(o->dirs[i]) + 1;
    char *s = malloc(len);
    if (!s) return NULL;
    strcpy(s, "merged_from=");
    for (int i = 0; i < o->n_dirs; i++)
        for (int k = 0; k < o->n_dirs; k++)
            if (d[k].s.index == i) {
                strcat(s, i ? " " : "");
                strcat(s, d[k].dir);
            }
    strcat(s, "\n");
    return s;
}

int fsb_merge(const fsb_merge_opts *o)
{
    double t0 = fsb_now();
    if (!o->out) return fsb_error(FSB_EINVAL, "--out is required");
    if (o->n_dirs < 1) return fsb_error(FSB_EINVAL, "no shard folders given");
    part_dir *d = calloc((size_t)o->n_dirs, sizeof *d);
    fsb_episode_record *recs = NULL;
    unsigned char *have = NULL;
    char *extra = NULL, *ep_path = NULL, *ep_out = NULL;
    void *episodes = NULL;
    size_t n_tasks = 0, ep_bytes = 0;
    int st = d ? FSB_OK : fsb_error(FSB_ENOMEM, "out of memory");
    for (int i = 0; !st && i < o->n_dirs; i++) {
        d[i].dir = o->dirs[i];
        st = read_part(&d[i], 1);
    }
    if (st || (st = check_shards(o, d)) || (st = task_arrays(&d[0].id, &recs, &have, &n_tasks)) ||
        (st = read_shard_journals(o, d, recs, have, n_tasks)))
        goto done;
    if (!(ep_path = fsb_path_join(d[0].dir, "episodes.csv")) ||
        !(ep_out = fsb_path_join(o->out, "episodes.csv")) || !(extra = merged_from(o, d))) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    if ((st = fsb_read_file(ep_path, &episodes, &ep_bytes)) ||
        (st = fsb_runfolder_check(o->out, d[0].base, "--out")))
        goto done;
    /* validated: write */
    if ((st = fsb_runfolder_claim(o->out, d[0].base, "--out")) ||
        (st = fsb_write_file(ep_out, episodes, ep_bytes)) ||
        (st = write_journal(o->out, recs, n_tasks)))
        goto done;
    if (o->log)
        fprintf(o->log, "merge: %d shards of %zu tasks into %s\n", d[0].s.count, n_tasks, o->out);
    st = fsb_runfolder_write_results(o->out, d[0].base, recs, n_tasks, extra, t0, o->log);
done:
    for (int i = 0; d && i < o->n_dirs; i++)
        free(d[i].base);
    free(d);
    free(recs);
    free(have);
    free(extra);
    free(ep_path);
    free(ep_out);
    free(episodes);
    return st;
}

/* ---- partial reports -------------------------------------------------------------------- */

/* The journals of run folder `dir` with the shard each belongs to: journal.log (the whole run,
 * or the folder's --shard part `own`) and journal.r<i>of<n>.log (mpirun rank i of n). */
static int list_journals(const char *dir, const fsb_shard *own, char ***paths, fsb_shard **parts,
                         int *n)
{
    *paths = NULL;
    *parts = NULL;
    *n = 0;
    DIR *dd = opendir(dir);
    if (!dd) return fsb_error(FSB_EIO, "%s: cannot list: %s", dir, strerror(errno));
    int st = FSB_OK, cap = 0;
    struct dirent *ent;
    while (!st && (ent = readdir(dd))) {
        int r, c, len = 0;
        fsb_shard s = *own;
        if (sscanf(ent->d_name, "journal.r%dof%d.log%n", &r, &c, &len) == 2 &&
            ent->d_name[len] == '\0' && c >= 1 && r >= 0 && r < c)
            s = (fsb_shard){r, c, 1};
        else if (strcmp(ent->d_name, "journal.log") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 4;
            char **p = realloc(*paths, (size_t)cap * sizeof **paths);
            if (p) *paths = p;
            fsb_shard *q = p ? realloc(*parts, (size_t)cap * sizeof **parts) : NULL;
            if (q) *parts = q;
            if (!p || !q) {
                st = fsb_error(FSB_ENOMEM, "out of memory");
                break;
            }
        }
        if (!((*paths)[*n] = fsb_path_join(dir, ent->d_name)))
            st = fsb_error(FSB_ENOMEM, "out of memory");
        else
            (*parts)[(*n)++] = s;
    }
    closedir(dd);
    return st;
}

/* One line per method: how many episodes of each shot are journaled. */
static void log_counts(FILE *log, const fsb_run_ident *id, const unsigned char *have)
{
    for (int m = 0; m < id->n_methods; m++) {
        fprintf(log, "  %s", id->methods[m].name);
        for (int s = 0; s < id->n_shots; s++) {
            long k = 0;
            for (long e = 0; e < id->episodes; e++)
                k += have[((size_t)(m * id->n_shots + s)) * (size_t)id->episodes + (size_t)e];
            fprintf(log, "  %d-shot %ld", id->shots[s], k);
        }
        fprintf(log, "\n");
    }
}

int fsb_merge_partial(const char *run_dir, const fsb_report_options *opt, fsb_partial_result *res,
                      FILE *log)
{
    fsb_partial_result pr = {0, 0};
    part_dir d = {.dir = run_dir};
    char **paths = NULL, *pdir = NULL;
    fsb_shard *parts = NULL;
    fsb_episode_record *recs = NULL;
    unsigned char *have = NULL;
    size_t n_tasks = 0, n = 0;
    int n_j = 0;
    const fsb_run_ident *id = &d.id;
    int st = read_part(&d, 0); /* a --shard folder: its part; else the whole run */
    if (!st) st = list_journals(run_dir, &d.s, &paths, &parts, &n_j);
    if (!st && n_j == 0)
        st = fsb_error(FSB_ENOTFOUND, "%s has no journal yet: no episode is done", run_dir);
    if (!st) st = task_arrays(id, &recs, &have, &n_tasks);
    for (int i = 0; i < n_j && !st; i++) {
        part_dir part = d;
        part.s = parts[i];
        merge_ctx c = {id, &part, recs, have};
        st = fsb_journal_replay(paths[i], merge_record, &c);
    }
    if (st) goto done;
    for (int g = 0; g < id->n_methods * id->n_shots; g++)
        pr.total += fsb_shard_group_size(&d.s, g, id->episodes); /* all of them unsharded */
    for (size_t i = 0; i < n_tasks; i++) /* compact the journaled tasks to the front */
        if (have[i]) recs[n++] = recs[i];
    pr.done = (long)n;
    if (n == 0) {
        st = fsb_error(FSB_ENOTFOUND, "%s: no episode is done yet", run_dir);
        goto done;
    }
    fsb_report_sort(recs, n);
    fsb_report_options o = {0};
    if (opt) o = *opt;
    char title[160];
    fsb_run_report_text text;
    fsb_run_ident_report_options(id, &o, &text);
    if (!o.title) {
        snprintf(title, sizeof title, "PARTIAL: %ld of %ld tasks done; few-shot accuracy (%%)%s",
                 pr.done, pr.total, o.no_paper ? "" : ", fsbench vs the paper");
        o.title = title;
    }
    fsb_report_result rr;
    memset(&rr, 0, sizeof rr);
    if (!(pdir = fsb_path_join(run_dir, "partial")))
        st = fsb_error(FSB_ENOMEM, "out of memory");
    else if ((st = fsb_mkdir_p(pdir)))
        st = fsb_error_wrap(st, "%s", pdir);
    else
        st = fsb_report_write(pdir, recs, n, &o, &rr);
    if (!st && log) {
        fprintf(log, "wrote %s from %ld of %ld tasks:\n", pdir, pr.done, pr.total);
        log_counts(log, id, have);
        if (rr.note[0]) fprintf(log, "note: %s\n", rr.note);
    }
done:
    if (res) *res = pr;
    for (int i = 0; i < n_j; i++)
        free(paths[i]);
    free(paths);
    free(parts);
    free(d.base);
    free(pdir);
    free(recs);
    free(have);
    return st;
}
