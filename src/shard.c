/* shard.c - task assignment of a split run and `bench merge` (see include/fsb/shard.h).
 *
 * The merge trusts nothing it has not checked: the shards' run.id files must agree line
 * for line apart from "shard=i/n", all n shards must be there once, and every shard's
 * journal must hold exactly the tasks the assignment gives it. Only then is anything
 * written, through the runner's own fsb_run_write_results.
 */
#include "fsb/shard.h"
#include "fsb/dist.h"
#include "fsb/fileio.h"
#include "fsb/journal.h"
#include "fsb/run.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
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

int fsb_shard_id_append(char **id, const fsb_shard *s)
{
    if (!fsb_shard_active(s) || s->shared) return FSB_OK;
    size_t len = strlen(*id);
    char *grown = realloc(*id, len + 64);
    if (!grown) return fsb_error(FSB_ENOMEM, "out of memory");
    snprintf(grown + len, 64, "shard=%d/%d\n", s->index, s->count);
    *id = grown;
    return FSB_OK;
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

int fsb_shard_parse_record(const char *payload, fsb_episode_record *rec)
{
    long long ep;
    int shot, nc, nq, used = 0;
    double fit, pred;
    char name[FSB_METHOD_NAME_MAX];
    if (sscanf(payload, "%lld,%d,%47[^,],%d,%d,%lf,%lf%n", &ep, &shot, name, &nc, &nq, &fit, &pred,
               &used) != 7 ||
        payload[used] != '\0' || ep < 0 || shot < 1 || nq <= 0 || nc < 0 || nc > nq ||
        !(fit >= 0 && fit < HUGE_VAL) || !(pred >= 0 && pred < HUGE_VAL))
        return fsb_error(FSB_EFORMAT, "malformed record '%s'", payload);
    memset(rec, 0, sizeof *rec);
    rec->episode = ep;
    rec->shot = shot;
    snprintf(rec->method, sizeof rec->method, "%s", name);
    rec->n_correct = nc;
    rec->n_query = nq;
    rec->accuracy = (double)nc / nq;
    rec->fit_ms = fit;
    rec->predict_ms = pred;
    return FSB_OK;
}

/* ---- merge ------------------------------------------------------------------------------ */

/* One shard folder given to the merge. */
typedef struct shard_dir {
    const char *dir; /* the folder */
    char *base;      /* its run.id without the shard line (malloc'd) */
    fsb_shard s;     /* its shard line */
    long journaled;  /* its distinct tasks found in the journal */
} shard_dir;

/* The task set of a run, read from its run.id. */
typedef struct task_set {
    long n_episodes;                                        /* episodes per (method, shot) */
    int n_shots;                                            /* shot values */
    int shots[64];                                          /* their values, run order */
    int n_methods;                                          /* methods */
    char methods[FSB_RUN_MAX_METHODS][FSB_METHOD_NAME_MAX]; /* their names, run order */
    int n_query;                                            /* way x query of every record */
} task_set;

/* Value of line "key=..." of id (pointer into id, *len its length), or NULL. */
static const char *id_value(const char *id, const char *key, int *len)
{
    size_t kl = strlen(key);
    for (const char *p = id; *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        if (ll > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            *len = (int)(ll - kl - 1);
            return p + kl + 1;
        }
        p += ll + (nl != NULL);
    }
    return NULL;
}

static int parse_task_set(const char *dir, const char *id, task_set *t)
{
    memset(t, 0, sizeof *t);
    int len;
    char buf[1024];
    const char *v;
    if (!(v = id_value(id, "episodes", &len)) || sscanf(v, "%ld", &t->n_episodes) != 1 ||
        t->n_episodes < 1)
        return fsb_error(FSB_EFORMAT, "%s/run.id: no valid episodes= line", dir);
    uint64_t fp; /* checked here; the reports read it from the run.id itself */
    if (!(v = id_value(id, "data_fingerprint", &len)) || sscanf(v, "%" SCNx64, &fp) != 1)
        return fsb_error(FSB_EFORMAT, "%s/run.id: no valid data_fingerprint= line", dir);
    int way = 0, query = 0;
    if (!(v = id_value(id, "way", &len)) || sscanf(v, "%d", &way) != 1 || way < 1 ||
        !(v = id_value(id, "query", &len)) || sscanf(v, "%d", &query) != 1 || query < 1)
        return fsb_error(FSB_EFORMAT, "%s/run.id: no valid way= and query= lines", dir);
    t->n_query = way * query;
    if (!(v = id_value(id, "shots", &len)) || len >= (int)sizeof buf)
        return fsb_error(FSB_EFORMAT, "%s/run.id: no valid shots= line", dir);
    memcpy(buf, v, (size_t)len);
    buf[len] = '\0';
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (t->n_shots == (int)(sizeof t->shots / sizeof t->shots[0]) ||
            sscanf(tok, "%d", &t->shots[t->n_shots]) != 1)
            return fsb_error(FSB_EFORMAT, "%s/run.id: bad shots= line", dir);
        t->n_shots++;
    }
    /* methods=name(k=v,...),name(...): names are what precedes '(' or a top-level ',' */
    if (!(v = id_value(id, "methods", &len)))
        return fsb_error(FSB_EFORMAT, "%s/run.id: no methods= line", dir);
    int depth = 0, start = 1;
    for (int i = 0; i < len; i++) {
        char c = v[i];
        if (c == '(')
            depth++;
        else if (c == ')')
            depth--;
        else if (c == ',' && depth == 0) {
            start = 1;
            continue;
        }
        if (depth == 0 && c != ')' && c != '(') {
            if (start) {
                if (t->n_methods == FSB_RUN_MAX_METHODS)
                    return fsb_error(FSB_EFORMAT, "%s/run.id: too many methods", dir);
                t->n_methods++;
                start = 0;
            }
            char *nm = t->methods[t->n_methods - 1];
            size_t nl = strlen(nm);
            if (nl + 1 >= FSB_METHOD_NAME_MAX)
                return fsb_error(FSB_EFORMAT, "%s/run.id: method name too long", dir);
            nm[nl] = c;
        }
    }
    if (t->n_shots == 0 || t->n_methods == 0)
        return fsb_error(FSB_EFORMAT, "%s/run.id: no shots or no methods", dir);
    return FSB_OK;
}

/* Zeroed record and have arrays for every task of t, indexed [method][shot][episode]. */
static int task_arrays(const task_set *t, fsb_episode_record **recs, unsigned char **have,
                       size_t *n_tasks)
{
    *n_tasks = (size_t)t->n_methods * t->n_shots * (size_t)t->n_episodes;
    *recs = calloc(*n_tasks, sizeof **recs);
    *have = calloc(*n_tasks, 1);
    if (!*recs || !*have) return fsb_error(FSB_ENOMEM, "out of memory");
    return FSB_OK;
}

/* Read dir/run.id into d: the base identity and the shard line. */
static int read_shard_id(shard_dir *d)
{
    char *path = fsb_path_join(d->dir, "run.id");
    void *text = NULL;
    size_t n;
    if (!path) return fsb_error(FSB_ENOMEM, "out of memory");
    int st = fsb_read_file(path, &text, &n);
    free(path);
    if (st == FSB_ENOTFOUND || (st == FSB_OK && !fsb_is_dir(d->dir)))
        return fsb_error(FSB_ENOTFOUND, "%s is not a run folder (no run.id)", d->dir);
    if (st) return st;
    char *id = text, *line = NULL;
    for (char *p = id; *p;) {
        if (!strncmp(p, "shard=", 6)) {
            line = p;
            break;
        }
        char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    if (!line) {
        free(text);
        return fsb_error(FSB_EINVAL,
                         "%s is not a shard (its run.id has no shard= line; it was "
                         "not run with --shard i/n)",
                         d->dir);
    }
    size_t ll = strcspn(line, "\n");
    char val[64];
    snprintf(val, sizeof val, "%.*s", (int)(ll - 6 < 63 ? ll - 6 : 63), line + 6);
    if ((st = fsb_shard_parse("shard=", val, &d->s))) {
        free(text);
        return fsb_error_wrap(st, "%s/run.id", d->dir);
    }
    memmove(line, line + ll + (line[ll] == '\n'), strlen(line + ll + (line[ll] == '\n')) + 1);
    d->base = id;
    return FSB_OK;
}

/* Every line where a and b differ (compared line by line), for messages. */
static void first_difference(const char *a, const char *b, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    while ((*a || *b) && used + 1 < n) {
        int la = (int)strcspn(a, "\n"), lb = (int)strcspn(b, "\n");
        if (la != lb || strncmp(a, b, (size_t)la) != 0) {
            int k = snprintf(out + used, n - used, "%s%.*s' vs '%.*s", used ? "'; '" : "", la, a,
                             lb, b);
            used += k > 0 ? (size_t)k : 0;
        }
        a += la + (a[la] == '\n');
        b += lb + (b[lb] == '\n');
    }
}

/* Journal replay context of one shard. */
typedef struct merge_ctx {
    const task_set *t;        /* the run's tasks */
    shard_dir *d;             /* the shard being read */
    fsb_episode_record *recs; /* [method][shot][episode] */
    unsigned char *have;      /* same indexing */
} merge_ctx;

static int merge_record(void *vctx, const char *payload, int line)
{
    merge_ctx *c = vctx;
    const task_set *t = c->t;
    fsb_episode_record rec;
    int st = fsb_shard_parse_record(payload, &rec);
    if (st) return st;
    int m = -1, s = -1;
    for (int i = 0; i < t->n_methods; i++)
        if (!strcmp(t->methods[i], rec.method)) m = i;
    for (int i = 0; i < t->n_shots; i++)
        if (t->shots[i] == rec.shot) s = i;
    if (m < 0 || s < 0 || rec.episode >= t->n_episodes || rec.n_query != t->n_query)
        return fsb_error(FSB_EFORMAT, "record '%s' does not belong to this run", payload);
    int g = m * t->n_shots + s;
    int owner = fsb_shard_owner(g, (long)rec.episode, c->d->s.count);
    if (owner != c->d->s.index)
        return fsb_error(FSB_EMISMATCH, "record '%s' is a task of shard %d/%d, not of %d/%d",
                         payload, owner, c->d->s.count, c->d->s.index, c->d->s.count);
    size_t ti = ((size_t)g) * (size_t)t->n_episodes + (size_t)rec.episode;
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

/* Refuse an out folder that holds another run or results without a run.id. */
static int check_out(const char *out, const char *base)
{
    if (!fsb_is_dir(out))
        return fsb_is_file(out) ? fsb_error(FSB_EIO, "--out: %s is a file", out) : FSB_OK;
    char *path = fsb_path_join(out, "run.id"), *pe = fsb_path_join(out, "per_episode.csv");
    void *old = NULL;
    size_t n;
    int st = !path || !pe ? fsb_error(FSB_ENOMEM, "out of memory") : fsb_read_file(path, &old, &n);
    if (st == FSB_OK && strcmp(old, base) != 0) {
        char diff[512];
        first_difference(old, base, diff, sizeof diff);
        st = fsb_error(FSB_EMISMATCH,
                       "--out: %s holds a different run ('%s'); use another "
                       "folder",
                       out, diff);
    } else if (st == FSB_ENOTFOUND) {
        st = fsb_is_file(pe) ? fsb_error(FSB_EMISMATCH,
                                         "--out: %s holds results without a "
                                         "run.id; use another folder",
                                         out)
                             : FSB_OK;
    }
    free(old);
    free(path);
    free(pe);
    return st;
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
        snprintf(payload, sizeof payload, "%lld,%d,%s,%d,%d,%.3f,%.3f", (long long)recs[i].episode,
                 recs[i].shot, recs[i].method, recs[i].n_correct, recs[i].n_query, recs[i].fit_ms,
                 recs[i].predict_ms);
        st = fsb_journal_write(&j, payload);
    }
    if (!st) st = fsb_journal_sync(&j);
    fsb_journal_close(&j);
    free(path);
    return st;
}

int fsb_shard_merge(const fsb_merge_opts *o)
{
    double t0 = fsb_now();
    if (!o->out) return fsb_error(FSB_EINVAL, "--out is required");
    if (o->n_dirs < 1) return fsb_error(FSB_EINVAL, "no shard folders given");
    shard_dir *d = calloc((size_t)o->n_dirs, sizeof *d);
    fsb_episode_record *recs = NULL;
    unsigned char *have = NULL;
    char *manifest_extra = NULL;
    void *episodes = NULL;
    int st = d ? FSB_OK : fsb_error(FSB_ENOMEM, "out of memory");
    for (int i = 0; !st && i < o->n_dirs; i++) {
        d[i].dir = o->dirs[i];
        st = read_shard_id(&d[i]);
    }
    /* the same run, split the same way, every shard once */
    for (int i = 1; !st && i < o->n_dirs; i++) {
        if (strcmp(d[i].base, d[0].base) != 0) {
            char diff[512];
            first_difference(d[i].base, d[0].base, diff, sizeof diff);
            st = fsb_error(FSB_EMISMATCH, "%s and %s are shards of different runs ('%s')", d[i].dir,
                           d[0].dir, diff);
        } else if (d[i].s.count != d[0].s.count) {
            st = fsb_error(FSB_EMISMATCH,
                           "%s is shard %d/%d but %s is shard %d/%d: different "
                           "splits",
                           d[i].dir, d[i].s.index, d[i].s.count, d[0].dir, d[0].s.index,
                           d[0].s.count);
        }
        for (int j = 0; !st && j < i; j++)
            if (d[j].s.index == d[i].s.index)
                st = fsb_error(FSB_EMISMATCH, "%s and %s are both shard %d/%d", d[j].dir, d[i].dir,
                               d[i].s.index, d[i].s.count);
    }
    if (st) goto done;
    int n = d[0].s.count;
    if (o->n_dirs != n) {
        for (int k = 0; k < n; k++) {
            int found = 0;
            for (int i = 0; i < o->n_dirs; i++)
                found |= d[i].s.index == k;
            if (!found) {
                st = fsb_error(FSB_ENOTFOUND,
                               "shard %d/%d is missing (%d of %d shard folders "
                               "given)",
                               k, n, o->n_dirs, n);
                goto done;
            }
        }
    }
    task_set t;
    if ((st = parse_task_set(d[0].dir, d[0].base, &t))) goto done;
    size_t n_tasks;
    if ((st = task_arrays(&t, &recs, &have, &n_tasks))) goto done;
    /* every shard complete, with its own tasks only */
    for (int i = 0; !st && i < o->n_dirs; i++) {
        char *jp = fsb_path_join(d[i].dir, "journal.log");
        merge_ctx c = {&t, &d[i], recs, have};
        st = jp ? fsb_journal_replay(jp, merge_record, &c) : fsb_error(FSB_ENOMEM, "oom");
        free(jp);
        if (st == FSB_ENOTFOUND)
            st = fsb_error(FSB_EINVAL,
                           "%s is incomplete: it has no journal.log yet (run its "
                           "bench command)",
                           d[i].dir);
        if (st) break;
        long want = 0;
        for (int g = 0; g < t.n_methods * t.n_shots; g++)
            want += fsb_shard_group_size(&d[i].s, g, t.n_episodes);
        if (d[i].journaled != want)
            st = fsb_error(FSB_EINVAL,
                           "%s is incomplete: %ld of its %ld tasks are journaled "
                           "(rerun its bench command to finish it)",
                           d[i].dir, d[i].journaled, want);
    }
    if (st) goto done;
    for (size_t i = 0; i < n_tasks; i++)
        if (!have[i]) {
            st = fsb_error(FSB_EFORMAT, "task %zu is in no shard's journal", i);
            goto done;
        }
    char *ep_path = fsb_path_join(d[0].dir, "episodes.csv");
    size_t ep_bytes = 0;
    st = ep_path ? fsb_read_file(ep_path, &episodes, &ep_bytes)
                 : fsb_error(FSB_ENOMEM, "out of memory");
    free(ep_path);
    if (st || (st = check_out(o->out, d[0].base))) goto done;
    /* validated: write */
    size_t extra_len = 64;
    for (int i = 0; i < o->n_dirs; i++)
        extra_len += strlen(o->dirs[i]) + 1;
    if (!(manifest_extra = malloc(extra_len))) {
        st = fsb_error(FSB_ENOMEM, "out of memory");
        goto done;
    }
    strcpy(manifest_extra, "merged_from=");
    for (int i = 0; i < o->n_dirs; i++) {
        for (int k = 0; k < o->n_dirs; k++)
            if (d[k].s.index == i) {
                strcat(manifest_extra, i ? " " : "");
                strcat(manifest_extra, d[k].dir);
            }
    }
    strcat(manifest_extra, "\n");
    char *id_path = NULL, *ep_out = NULL;
    if ((st = fsb_mkdir_p(o->out)))
        st = fsb_error_wrap(st, "--out");
    else if (!(id_path = fsb_path_join(o->out, "run.id")) ||
             !(ep_out = fsb_path_join(o->out, "episodes.csv")))
        st = fsb_error(FSB_ENOMEM, "out of memory");
    if (!st) st = fsb_write_file(id_path, d[0].base, strlen(d[0].base));
    if (!st) st = fsb_write_file(ep_out, episodes, ep_bytes);
    free(id_path);
    free(ep_out);
    if (!st) st = write_journal(o->out, recs, n_tasks);
    if (!st && o->log)
        fprintf(o->log, "merge: %d shards of %zu tasks into %s\n", n, n_tasks, o->out);
    if (!st)
        st = fsb_run_write_results(o->out, d[0].base, recs, n_tasks, manifest_extra, t0, o->log);
done:
    for (int i = 0; d && i < o->n_dirs; i++)
        free(d[i].base);
    free(d);
    free(recs);
    free(have);
    free(manifest_extra);
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

int fsb_shard_partial(const char *run_dir, const fsb_report_options *opt, fsb_partial_result *res,
                      FILE *log)
{
    fsb_partial_result pr = {0, 0};
    shard_dir d = {.dir = run_dir};
    char **paths = NULL, *id_path = fsb_path_join(run_dir, "run.id"), *pdir = NULL;
    fsb_shard *parts = NULL;
    fsb_episode_record *recs = NULL;
    unsigned char *have = NULL;
    void *text = NULL;
    size_t len;
    int n_j = 0;
    int st = id_path ? fsb_read_file(id_path, &text, &len) : fsb_error(FSB_ENOMEM, "oom");
    if (st == FSB_ENOTFOUND || (st == FSB_OK && !fsb_is_dir(run_dir)))
        st = fsb_error(FSB_ENOTFOUND, "%s is not a run folder (no run.id)", run_dir);
    if (st) goto done;
    /* a --shard folder: its part and the identity without the shard line */
    if (strstr(text, "\nshard=")) {
        if ((st = read_shard_id(&d))) goto done;
    } else {
        d.base = text;
        text = NULL;
        d.s = (fsb_shard){0, 1, 0};
    }
    task_set t;
    if ((st = parse_task_set(run_dir, d.base, &t)) ||
        (st = list_journals(run_dir, &d.s, &paths, &parts, &n_j)))
        goto done;
    if (n_j == 0) {
        st = fsb_error(FSB_ENOTFOUND, "%s has no journal yet: no episode is done", run_dir);
        goto done;
    }
    size_t n_tasks;
    if ((st = task_arrays(&t, &recs, &have, &n_tasks))) goto done;
    for (int i = 0; i < n_j && !st; i++) {
        shard_dir part = d;
        part.s = parts[i];
        merge_ctx c = {&t, &part, recs, have};
        st = fsb_journal_replay(paths[i], merge_record, &c);
    }
    if (st) goto done;
    for (int g = 0; g < t.n_methods * t.n_shots; g++)
        pr.total += fsb_shard_group_size(&d.s, g, t.n_episodes); /* all of them unsharded */
    size_t n = 0; /* compact the journaled tasks to the front */
    for (size_t i = 0; i < n_tasks; i++)
        if (have[i]) recs[n++] = recs[i];
    pr.done = (long)n;
    if (n == 0) {
        st = fsb_error(FSB_ENOTFOUND, "%s: no episode is done yet", run_dir);
        goto done;
    }
    fsb_report_sort(recs, n);
    fsb_report_options o = {0};
    if (opt) o = *opt;
    char backbone[16], title[160];
    fsb_report_options_from_id(&o, d.base, backbone);
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
        for (int m = 0; m < t.n_methods; m++) {
            fprintf(log, "  %s", t.methods[m]);
            for (int s = 0; s < t.n_shots; s++) {
                long k = 0;
                for (long e = 0; e < t.n_episodes; e++)
                    k += have[((size_t)(m * t.n_shots + s)) * (size_t)t.n_episodes + (size_t)e];
                fprintf(log, "  %d-shot %ld", t.shots[s], k);
            }
            fprintf(log, "\n");
        }
        if (rr.note[0]) fprintf(log, "note: %s\n", rr.note);
    }
done:
    if (res) *res = pr;
    for (int i = 0; i < n_j; i++)
        free(paths[i]);
    free(paths);
    free(parts);
    free(d.base);
    free(text);
    free(id_path);
    free(pdir);
    free(recs);
    free(have);
    return st;
}
