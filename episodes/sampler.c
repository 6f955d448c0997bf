/* sampler.c - the nested-episode sampler and parallel sweeps (see include/fsb/episodes.h and
 * docs/episodes.md, which specifies every draw; keep the two in step). Invariants: classes and
 * images without replacement, support and query disjoint, episode i depends only on
 * (key, i), so the thread count and the generation order never change a bit.
 */
#include "fsb/episodes.h"
#include "fsb/rng.h"
#include "fsb/status.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t fsb_episode_key(const fsb_episode_params *p, uint64_t fingerprint)
{
    uint64_t k = fsb_mix64(p->seed ^ FSB_EPISODES_KEY_TAG);
    k = fsb_mix64(k ^ fingerprint);
    k = fsb_mix64(k ^ (uint64_t)p->way);
    k = fsb_mix64(k ^ (uint64_t)p->max_shot);
    k = fsb_mix64(k ^ (uint64_t)p->query);
    return k;
}

int fsb_episode_check(const fsb_split *s, const fsb_episode_params *p)
{
    return fsb_episode_check_flags(s, p, NULL);
}

int fsb_episode_check_flags(const fsb_split *s, const fsb_episode_params *p,
                            const fsb_episode_flags *f)
{
    const char *way = f ? f->way : "--way", *shots = f ? f->shots : "--shots",
               *query = f ? f->query : "--query";
    if (p->way < 1) return fsb_error(FSB_EINVAL, "%s: %d must be at least 1", way, p->way);
    if (p->max_shot < 1)
        return fsb_error(FSB_EINVAL, "%s: the largest shot %d must be at least 1", shots,
                         p->max_shot);
    if (p->query < 0) return fsb_error(FSB_EINVAL, "%s: %d must not be negative", query, p->query);
    if (p->way > s->n_classes)
        return fsb_error(FSB_EINVAL, "%s: %d is more than the %d classes of split %s (%s)", way,
                         p->way, s->n_classes, s->name ? s->name : "?",
                         s->source ? s->source : "?");
    long need = (long)p->max_shot + p->query;
    for (int k = 0; k < s->n_classes; k++)
        if (s->class_count[k] < need)
            return fsb_error(FSB_EINVAL,
                             "class %s of split %s has %d images, fewer than the largest "
                             "%s %d + %s %d = %ld",
                             s->class_names[k], s->name ? s->name : "?", s->class_count[k], shots,
                             p->max_shot, query, p->query, need);
    return FSB_OK;
}

size_t fsb_episode_scratch_len(const fsb_split *s)
{
    int n = s->n_classes;
    for (int k = 0; k < s->n_classes; k++)
        if (s->class_count[k] > n) n = s->class_count[k];
    return (size_t)n;
}

int fsb_episode_init(fsb_episode *e, int way, int max_shot, int query)
{
    memset(e, 0, sizeof *e);
    e->way = way;
    e->max_shot = max_shot;
    e->query = query;
    e->classes = malloc(sizeof(int) * (size_t)way);
    e->support = malloc(sizeof(int) * (size_t)way * (size_t)max_shot);
    e->queries = malloc(sizeof(int) * ((size_t)way * (size_t)query + 1));
    e->owns_storage = 1;
    if (!e->classes || !e->support || !e->queries) {
        fsb_episode_free(e);
        return fsb_error(FSB_ENOMEM, "episode of %d-way %d-shot %d-query: out of memory", way,
                         max_shot, query);
    }
    return FSB_OK;
}

void fsb_episode_free(fsb_episode *e)
{
    if (!e || !e->owns_storage) return;
    free(e->classes);
    free(e->support);
    free(e->queries);
    memset(e, 0, sizeof *e);
}

void fsb_episode_sample(fsb_episode *e, const fsb_split *s, const fsb_episode_params *p,
                        uint64_t index, int *scratch)
{
    assert(e->way == p->way && e->max_shot == p->max_shot && e->query == p->query);
    assert(p->way <= s->n_classes);
    fsb_rng r;
    fsb_rng_init(&r, fsb_episode_key(p, s->fingerprint), index);
    fsb_rng_partial_shuffle(&r, scratch, s->n_classes, p->way);
    memcpy(e->classes, scratch, sizeof(int) * (size_t)p->way);
    int m = p->query + p->max_shot;
    for (int c = 0; c < p->way; c++) {
        int k = e->classes[c], start = s->class_start[k];
        assert(s->class_count[k] >= m);
        fsb_rng_partial_shuffle(&r, scratch, s->class_count[k], m);
        int *q = e->queries + (size_t)c * (size_t)p->query;
        int *sup = e->support + (size_t)c * (size_t)p->max_shot;
        for (int j = 0; j < p->query; j++)
            q[j] = start + scratch[j];
        for (int j = 0; j < p->max_shot; j++)
            sup[j] = start + scratch[p->query + j];
    }
}

const int *fsb_episode_support_of(const fsb_episode *e, int c)
{
    assert(c >= 0 && c < e->way);
    return e->support + (size_t)c * (size_t)e->max_shot;
}

void fsb_episode_support_k(const fsb_episode *e, int k, int *idx, int *labels)
{
    assert(k >= 1 && k <= e->max_shot);
    for (int c = 0; c < e->way; c++)
        for (int j = 0; j < k; j++) {
            idx[c * k + j] = e->support[(size_t)c * (size_t)e->max_shot + (size_t)j];
            if (labels) labels[c * k + j] = c;
        }
}

void fsb_episode_queries(const fsb_episode *e, int *idx, int *labels)
{
    size_t n = (size_t)e->way * (size_t)e->query;
    memcpy(idx, e->queries, sizeof(int) * n);
    if (labels)
        for (size_t i = 0; i < n; i++)
            labels[i] = (int)(i / (size_t)e->query);
}

/* --- sweeps ---------------------------------------------------------------------------- */

#define SWEEP_CHUNK 64 /* episodes per pool task */

typedef struct sweep_job {
    fsb_sweep *sw;        /* the sweep being filled */
    const fsb_split *s;   /* its split */
    fsb_episode_params p; /* the parameters */
    int *scratch;         /* [workers][scratch_len] */
    size_t scratch_len;   /* ints per worker */
} sweep_job;

static void sweep_task(void *ctx, int task, int worker)
{
    sweep_job *job = ctx;
    int first = task * SWEEP_CHUNK, last = first + SWEEP_CHUNK;
    if (last > job->sw->n_episodes) last = job->sw->n_episodes;
    int *scratch = job->scratch + (size_t)worker * job->scratch_len;
    for (int i = first; i < last; i++) {
        fsb_episode e;
        fsb_sweep_episode(job->sw, i, &e);
        fsb_episode_sample(&e, job->s, &job->p, (uint64_t)i, scratch);
    }
}

int fsb_sweep_generate(fsb_sweep *sw, const fsb_split *s, uint64_t seed, int way, const int *shots,
                       int n_shots, int query, int n_episodes, fsb_pool *pool)
{
    int st = FSB_OK;
    sweep_job job = {0};
    memset(sw, 0, sizeof *sw);
    if (n_shots < 1 || n_shots > FSB_EPISODES_MAX_SHOTS)
        return fsb_error(FSB_EINVAL, "--shots: %d values (1 to %d allowed)", n_shots,
                         FSB_EPISODES_MAX_SHOTS);
    for (int i = 0; i < n_shots; i++)
        if (shots[i] < 1 || (i > 0 && shots[i] <= shots[i - 1]))
            return fsb_error(FSB_EINVAL, "--shots: values must be positive and ascending");
    if (n_episodes < 1 || n_episodes > FSB_EPISODES_MAX_COUNT)
        return fsb_error(FSB_EINVAL, "--episodes: %d is out of range [1, %d]", n_episodes,
                         FSB_EPISODES_MAX_COUNT);
    job.p = (fsb_episode_params){seed, way, shots[n_shots - 1], query};
    if ((st = fsb_episode_check(s, &job.p))) return st;
    snprintf(sw->generator, sizeof sw->generator, "%s", FSB_EPISODES_GENERATOR);
    snprintf(sw->split, sizeof sw->split, "%s", s->name ? s->name : "");
    sw->seed = seed;
    sw->fingerprint = s->fingerprint;
    sw->way = way;
    sw->query = query;
    sw->n_shots = n_shots;
    memcpy(sw->shots, shots, sizeof(int) * (size_t)n_shots);
    sw->max_shot = shots[n_shots - 1];
    sw->n_episodes = n_episodes;
    size_t ne = (size_t)n_episodes * (size_t)way;
    sw->classes = malloc(sizeof(int) * ne);
    sw->support = malloc(sizeof(int) * ne * (size_t)sw->max_shot);
    sw->queries = malloc(sizeof(int) * (ne * (size_t)query + 1));
    job.sw = sw;
    job.s = s;
    job.scratch_len = fsb_episode_scratch_len(s);
    job.scratch = malloc(sizeof(int) * job.scratch_len * (size_t)fsb_pool_size(pool));
    if (!sw->classes || !sw->support || !sw->queries || !job.scratch) {
        st = fsb_error(FSB_ENOMEM, "%d episodes of %d-way %d-shot %d-query: out of memory",
                       n_episodes, way, sw->max_shot, query);
        goto done;
    }
    fsb_pool_run(pool, (n_episodes + SWEEP_CHUNK - 1) / SWEEP_CHUNK, sweep_task, &job);
done:
    free(job.scratch);
    if (st) fsb_sweep_free(sw);
    return st;
}

void fsb_sweep_free(fsb_sweep *sw)
{
    if (!sw) return;
    free(sw->classes);
    free(sw->support);
    free(sw->queries);
    memset(sw, 0, sizeof *sw);
}

void fsb_sweep_episode(const fsb_sweep *sw, int i, fsb_episode *e)
{
    assert(i >= 0 && i < sw->n_episodes);
    size_t base = (size_t)i * (size_t)sw->way;
    e->way = sw->way;
    e->max_shot = sw->max_shot;
    e->query = sw->query;
    e->classes = sw->classes + base;
    e->support = sw->support + base * (size_t)sw->max_shot;
    e->queries = sw->queries + base * (size_t)sw->query;
    e->owns_storage = 0;
}
