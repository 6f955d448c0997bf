/* run.c - the benchmark runner (see include/fsb/run.h).
 *
 * Order of work: pack/open the split, draw or load the episodes, load the teacher and the
 * methods' own models, embed the split once per distinct checkpoint a method sees (cached
 * beside the packed images), then for each (method, shot) run every
 * episode not yet in the journal, in parallel chunks; each chunk's records are appended to
 * the journal and synced before the next chunk starts. When every task is done the final
 * files are written atomically from the records, sorted, so they never depend on the order
 * in which tasks finished, on the thread count, or on how often the run was interrupted.
 */
#include "fsb/run.h"
#include "fsb/blas.h"
#include "fsb/cache.h"
#include "fsb/dist.h"
#include "fsb/features.h"
#include "fsb/fileio.h"
#include "fsb/journal.h"
#include "fsb/maml_method.h"
#include "fsb/method.h"
#include "fsb/model.h"
#include "fsb/progress.h"
#include "fsb/report.h"
#include "fsb/runfolder.h"
#include "fsb/shard.h"
#include "fsb/status.h"
#include "fsb/student.h"
#include "fsb/tensorfile.h"
#include "fsb/threads.h"
#include "fsb/transform.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define CHUNK_EPISODES 256 /* episodes per parallel chunk (one journal sync each) */
/* the teacher, then at most one distinct model per (method, every shot or one shot) */
#define MAX_NETS (1 + FSB_RUN_MAX_METHODS * (1 + FSB_EPISODES_MAX_SHOTS))

void fsb_run_opts_default(fsb_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->split = "test";
    o->episodes = 600;
    o->way = 5;
    o->query = 15;
    static const int shots[] = {1, 5, 10, 30};
    o->n_shots = 4;
    memcpy(o->shots, shots, sizeof shots);
    /* REFILLED beside the four baselines, the paper's middle-shot comparison */
    static const char *const methods[] = {"1nn", "svm", "protonet", "finetune", "refilled"};
    o->n_methods = 5;
    for (int i = 0; i < 5; i++)
        o->methods[i] = methods[i];
    o->norm = -1;
    o->C = 0;                                /* each method's default */
    o->image_size = o->resize = o->crop = 0; /* the teacher's (fsb_model_file_input) */
}

/* Per-worker buffers for feature methods. */
typedef struct worker {
    fsb_arena arena;              /* method scratch */
    int *sidx;                    /* [way*max_shot] support image indices */
    int *slab;                    /* [way*max_shot] support labels */
    int *qidx;                    /* [way*query] query image indices */
    int *qlab;                    /* [way*query] query labels */
    int *pred;                    /* [way*query] predictions */
    float *sfeat;                 /* [way*max_shot][max_dim] gathered support features */
    float *qfeat;                 /* [way*query][max_dim] gathered query features */
    fsb_student_ctx *student;     /* training methods' context (NULL without image methods) */
    fsb_maml_ctx *maml[MAX_NETS]; /* maml's context per net it adapts (NULL: none) */
} worker;

/* A frozen network whose features methods see: the teacher, or a method's own model
 * (--model M=PATH or M@K=PATH). One per distinct checkpoint content, so the split is embedded
 * once each. */
typedef struct run_net {
    const char *path;                 /* checkpoint */
    fsb_model *model;                 /* the network, eval mode */
    uint64_t hash;                    /* XXH3-64 of the file */
    int dim;                          /* embedding dimension */
    int used;                         /* 1: some method sees its features */
    fsb_tensorfile feat_tf;           /* holds the split's features */
    const float *feats;               /* [n_images][dim], once embedded */
    fsb_tensorfile mean_tf;           /* holds the train split's features (CL2N) */
    float *base_mean;                 /* [dim] mean train-split feature, or NULL */
    fsb_method_feat_block feat_block; /* feat: this checkpoint's attention block */
    float *feat_mem;                  /* its tensors (owned), or NULL */
    int maml_read;                    /* 1: maml adapts it, maml_ckpt read */
    fsb_maml_ckpt maml_ckpt;          /* its training record (order, test steps, lr) */
} run_net;

/* Outcome of one task of a chunk. */
typedef struct task_out {
    int st;             /* fsb_status of the method run */
    char msg[256];      /* its message when st != 0 */
    int n_correct;      /* correct queries */
    fsb_method_stats t; /* timings */
} task_out;

typedef struct run_state {
    const fsb_run_opts *o;  /* options */
    fsb_pool *pool;         /* workers */
    fsb_cache cache;        /* the evaluated split, packed */
    fsb_sweep sweep;        /* the episodes */
    char ep_hash[33];       /* their content hash */
    run_net nets[MAX_NETS]; /* [0] the teacher, then the distinct own models */
    int n_nets;             /* nets in use */
    /* the net whose features method m sees at shot slot s (maml: the net it adapts) */
    int net_of[FSB_RUN_MAX_METHODS][FSB_EPISODES_MAX_SHOTS];
    /* method m's every-shot model (--model M=PATH), or NULL */
    const char *own[FSB_RUN_MAX_METHODS];
    /* its model at shot slot s only (--model M@K=PATH), or NULL */
    const char *own_at[FSB_RUN_MAX_METHODS][FSB_EPISODES_MAX_SHOTS];
    int shots_resolved; /* 1: own_at is filled (the shots are known) */
    int max_dim;        /* largest embedding dimension a method sees */
    uint64_t base_fp;   /* the train split's fingerprint (CL2N's mean) */
    const fsb_method *methods[FSB_RUN_MAX_METHODS]; /* resolved methods */
    fsb_method_config cfg[FSB_RUN_MAX_METHODS];     /* their configurations */
    unsigned char *done;                            /* [method][shot][episode] 1 when recorded */
    fsb_episode_record *recs;                       /* same indexing */
    fsb_journal journal;                            /* finished tasks */
    worker *workers;                                /* [pool size] */
    long tasks_here;          /* tasks journaled by this process (fault injection) */
    char *run_id;             /* the run identity text */
    fsb_run_opts opts;        /* the options, completed from a manifest; o points here */
    int has_images;           /* some student trains per episode (FSB_NEEDS_IMAGES, not maml) */
    fsb_student_opts student; /* their options (--student), cfg.extra of those methods */
    int maml;                 /* maml's method slot, or -1 */
    int maml_order;           /* its checkpoints' MAML order (one per run) */
    int feat;                 /* feat's method slot, or -1 */
} run_state;

static size_t task_index(const run_state *r, int m, int s, int e)
{
    return ((size_t)m * (size_t)r->o->n_shots + (size_t)s) * (size_t)r->sweep.n_episodes +
           (size_t)e;
}

static int shot_slot(const run_state *r, int shot)
{
    for (int s = 0; s < r->o->n_shots; s++)
        if (r->o->shots[s] == shot) return s;
    return -1;
}

static int method_slot(const run_state *r, const char *name)
{
    for (int m = 0; m < r->o->n_methods; m++)
        if (!strcmp(r->methods[m]->name, name)) return m;
    return -1;
}

/* The checkpoint (method m, shot slot s) uses: its per-shot model, else its every-shot
 * model, else NULL (the teacher). */
static const char *model_path(const run_state *r, int m, int s)
{
    return r->own_at[m][s] ? r->own_at[m][s] : r->own[m];
}

/* The flag text that gave (method m, shot slot s) its model, "--model M@K=PATH" or
 * "--model M=PATH", into buf. */
static const char *model_flag(const run_state *r, int m, int s, char *buf, size_t n)
{
    if (r->own_at[m][s])
        snprintf(buf, n, "--model %s@%d=%s", r->methods[m]->name, r->o->shots[s], r->own_at[m][s]);
    else
        snprintf(buf, n, "--model %s=%s", r->methods[m]->name, r->own[m] ? r->own[m] : "");
    return buf;
}

/* The flag text of a given model, "--model M@K=PATH" or "--model M=PATH", into buf. */
static const char *given_flag(const fsb_run_model *g, char *buf, size_t n)
{
    if (g->shot)
        snprintf(buf, n, "--model %s@%d=%s", g->method, g->shot, g->path);
    else
        snprintf(buf, n, "--model %s=%s", g->method, g->path);
    return buf;
}

/* ---- identity of a run ---------------------------------------------------------------- */

static int file_hash(const char *path, uint64_t *h)
{
    void *data;
    size_t n;
    int st = fsb_read_file(path, &data, &n);
    if (st) return st;
    *h = XXH3_64bits(data, n);
    free(data);
    return FSB_OK;
}

static int needs_base_mean(const run_state *r)
{
    for (int i = 0; i < r->o->n_methods; i++)
        if (r->cfg[i].norm == FSB_NORM_CL2N) return 1;
    return 0;
}

/* Everything that decides the results (runfolder.h): base_fingerprint only when a method
 * reads the train split's mean, student only when a method trains per episode, so that
 * other runs keep their identity. */
static int make_run_id(const run_state *r, char **text)
{
    const fsb_run_opts *o = r->o;
    fsb_run_ident id;
    memset(&id, 0, sizeof id);
    snprintf(id.split, sizeof id.split, "%s", r->sweep.split);
    id.data_fp = r->cache.split.fingerprint;
    id.teacher_xxh3 = r->nets[0].hash;
    snprintf(id.teacher_arch, sizeof id.teacher_arch, "%s",
             fsb_arch_name(fsb_model_options(r->nets[0].model)->arch));
    snprintf(id.episodes_hash, sizeof id.episodes_hash, "%s", r->ep_hash);
    id.episodes = r->sweep.n_episodes;
    id.way = r->sweep.way;
    id.query = r->sweep.query;
    id.n_shots = o->n_shots;
    memcpy(id.shots, o->shots, sizeof(int) * (size_t)o->n_shots);
    id.seed = r->sweep.seed;
    id.n_methods = o->n_methods;
    for (int i = 0; i < o->n_methods; i++) {
        fsb_run_method_id *m = &id.methods[i];
        snprintf(m->name, sizeof m->name, "%s", r->methods[i]->name);
        snprintf(m->norm, sizeof m->norm, "%s", fsb_norm_name(r->cfg[i].norm));
        m->C = r->cfg[i].C;
        for (int s = 0; s < o->n_shots; s++) { /* --model: another file is another run */
            const run_net *n = &r->nets[r->net_of[i][s]];
            if (r->own_at[i][s])
                m->at[m->n_at++] = (fsb_run_shot_model){o->shots[s], n->hash};
            else if (r->own[i] && !m->has_model)
                m->has_model = 1, m->model_xxh3 = n->hash;
        }
        if (i == r->maml) m->order = r->maml_order; /* first-order MAML: order=1 */
    }
    id.image_size = o->image_size;
    id.resize = o->resize;
    id.crop = o->crop;
    id.has_base_fp = needs_base_mean(r); /* CL2N: the base mean comes from the train split */
    id.base_fp = r->base_fp;
    if (r->has_images) /* training methods: their options decide their results */
        fsb_student_opts_string(&r->student, id.student, sizeof id.student);
    id.shard = o->shard; /* --shard i/n: the shard= line (not for mpirun's shared folder) */
    return fsb_run_ident_format(&id, text);
}

/* ---- features ---------------------------------------------------------------------------- */

/* The test transform of the run for network `net` (its architecture decides the pixel
 * normalisation; for the teacher also the augmentation settings of training methods). */
static int run_transform(const run_state *r, const run_net *net, fsb_transform *t)
{
    fsb_arch arch = fsb_model_options(net->model)->arch;
    fsb_transform_defaults(t, arch == FSB_ARCH_RES12 ? FSB_PIXNORM_RESNET12 : FSB_PIXNORM_CONVNET);
    t->resize = r->o->resize;
    t->crop = r->o->crop;
    return fsb_transform_check(t);
}

/* Features of every image of `c` under `net`, cached beside the packed images. */
static int split_features(run_state *r, const run_net *net, const fsb_cache *c, fsb_tensorfile *tf,
                          const float **out)
{
    fsb_transform xf;
    int st = run_transform(r, net, &xf);
    return st ? st
              : fsb_features_split(tf, out, net->model, net->hash, c, &xf, r->pool, r->o->progress);
}

/* ---- tasks ------------------------------------------------------------------------------- */

typedef struct chunk {
    run_state *r;        /* the run */
    int m, s, shot;      /* method slot, shot slot and K */
    const int *episodes; /* [n] episode indices */
    task_out *outs;      /* [n] */
} chunk;

static void run_task(void *ctx, int t, int wi)
{
    chunk *c = ctx;
    run_state *r = c->r;
    worker *w = &r->workers[wi];
    const fsb_method *m = r->methods[c->m];
    const run_net *net = &r->nets[r->net_of[c->m][c->s]]; /* the features (m, s) sees */
    int ep_i = c->episodes[t], k = c->shot;
    fsb_method_config cfg = r->cfg[c->m]; /* with the base mean and feat block of its net */
    cfg.base_mean = net->base_mean;
    cfg.base_mean_dim = net->base_mean ? net->dim : 0;
    if (c->m == r->feat) cfg.extra = &net->feat_block;
    fsb_episode e;
    fsb_sweep_episode(&r->sweep, ep_i, &e);
    fsb_view_buffers bufs = {w->sidx, w->slab, w->qidx, w->qlab, w->sfeat, w->qfeat};
    fsb_episode_view v;
    fsb_episode_view_make(&v, &e, ep_i, k, net->feats, net->dim, &bufs);
    if (m->needs & FSB_NEEDS_IMAGES)
        v.ctx = c->m == r->maml ? (void *)w->maml[r->net_of[c->m][c->s]] : w->student;
    int nq = v.n_query;
    /* the episode's generator: a pure function of (seed, method, shot, episode) */
    fsb_rng rng;
    uint64_t mkey = XXH3_64bits(m->name, strlen(m->name));
    fsb_rng_init(&rng, fsb_mix64(fsb_mix64(r->sweep.seed ^ mkey) ^ (uint64_t)k), (uint64_t)ep_i);
    task_out *out = &c->outs[t];
    memset(out, 0, sizeof *out);
    out->st = m->run(m, &cfg, &v, &w->arena, &rng, w->pred, &out->t);
    if (out->st) {
        snprintf(out->msg, sizeof out->msg, "%s", fsb_error_last());
        return;
    }
    for (int i = 0; i < nq; i++)
        out->n_correct += w->pred[i] == w->qlab[i];
}

/* maml: one copy of each model it adapts and MAML work, per worker. */
static int workers_maml(run_state *r)
{
    int nw = fsb_pool_size(r->pool), way = r->sweep.way, q = r->sweep.query;
    for (int s = 0; s < r->o->n_shots; s++) {
        const run_net *n = &r->nets[r->net_of[r->maml][s]];
        fsb_transform t;
        int st = run_transform(r, n, &t);
        for (int i = 0; i < nw && !st; i++) {
            fsb_maml_ctx **ctx = &r->workers[i].maml[n - r->nets];
            if (!*ctx)
                st = fsb_maml_ctx_create(ctx, n->path, &r->cache, &t, way, r->sweep.max_shot, q);
        }
        char flag[4200];
        if (st) return fsb_error_wrap(st, "%s", model_flag(r, r->maml, s, flag, sizeof flag));
    }
    return FSB_OK;
}

static int workers_init(run_state *r)
{
    int nw = fsb_pool_size(r->pool), way = r->sweep.way, q = r->sweep.query;
    int ms = r->sweep.max_shot, d = r->max_dim; /* gather buffers fit every method's dim */
    size_t scratch = 0;
    for (int m = 0; m < r->o->n_methods; m++)
        for (int s = 0; s < r->o->n_shots; s++) {
            size_t b = r->methods[m]->scratch(way, r->o->shots[s], q, r->nets[r->net_of[m][s]].dim);
            if (b > scratch) scratch = b;
        }
    r->workers = calloc((size_t)nw, sizeof *r->workers);
    if (!r->workers) return fsb_error(FSB_ENOMEM, "out of memory");
    for (int i = 0; i < nw; i++) {
        worker *w = &r->workers[i];
        int st = fsb_arena_init(&w->arena, scratch + (1 << 20));
        if (st) return st;
        w->sidx = malloc((size_t)way * ms * sizeof(int));
        w->slab = malloc((size_t)way * ms * sizeof(int));
        w->qidx = malloc((size_t)way * q * sizeof(int));
        w->qlab = malloc((size_t)way * q * sizeof(int));
        w->pred = malloc((size_t)way * q * sizeof(int));
        w->sfeat = malloc((size_t)way * ms * d * sizeof(float));
        w->qfeat = malloc((size_t)way * q * d * sizeof(float));
        if (!w->sidx || !w->slab || !w->qidx || !w->qlab || !w->pred || !w->sfeat || !w->qfeat)
            return fsb_error(FSB_ENOMEM, "out of memory");
    }
    if (r->has_images) { /* one teacher replica + student per worker, reused every episode */
        fsb_transform t;
        int st = run_transform(r, &r->nets[0], &t);
        for (int i = 0; i < nw && !st; i++)
            st = fsb_student_ctx_create(&r->workers[i].student, r->o->teacher, &r->cache, &t, way,
                                        ms, q, &r->student);
        if (st) return fsb_error_wrap(st, "--student");
    }
    return r->maml >= 0 ? workers_maml(r) : FSB_OK;
}

static void workers_free(run_state *r)
{
    if (!r->workers) return;
    for (int i = 0; i < fsb_pool_size(r->pool); i++) {
        worker *w = &r->workers[i];
        fsb_arena_free(&w->arena);
        free(w->sidx);
        free(w->slab);
        free(w->qidx);
        free(w->qlab);
        free(w->pred);
        free(w->sfeat);
        free(w->qfeat);
        fsb_student_ctx_destroy(w->student);
        for (int k = 0; k < MAX_NETS; k++)
            fsb_maml_ctx_destroy(w->maml[k]);
    }
    free(r->workers);
    r->workers = NULL;
}

/* A journal record: "episode,shot,method,n_correct,n_query,fit_ms,predict_ms". */
static int replay_record(void *ctx, const char *payload, int line)
{
    run_state *r = ctx;
    fsb_episode_record rec;
    int st = fsb_run_record_parse(payload, &rec);
    if (st) return st;
    int m = method_slot(r, rec.method), s = shot_slot(r, rec.shot);
    if (m < 0 || s < 0 || rec.episode >= r->sweep.n_episodes ||
        rec.n_query != r->sweep.way * r->sweep.query)
        return fsb_error(FSB_EFORMAT, "record '%s' does not belong to this run", payload);
    size_t ti = task_index(r, m, s, (int)rec.episode);
    r->recs[ti] = rec;
    r->done[ti] = 1;
    return FSB_OK;
}

/* Run every unfinished episode of (method m, shot slot s). */
static int run_group(run_state *r, int m, int s)
{
    int ne = r->sweep.n_episodes, shot = r->o->shots[s];
    int *todo = malloc((size_t)ne * sizeof *todo);
    task_out *outs = malloc((CHUNK_EPISODES + (size_t)fsb_pool_size(r->pool)) * sizeof *outs);
    if (!todo || !outs) {
        free(todo);
        free(outs);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    int n = 0, g = m * r->o->n_shots + s;                  /* g: group number of shard.h */
    long mine = fsb_shard_group_size(&r->o->shard, g, ne); /* this shard's episodes */
    for (int e = 0; e < ne; e++)
        if (!r->done[task_index(r, m, s, e)] && fsb_shard_owns(&r->o->shard, g, e)) todo[n++] = e;
    char label[96];
    snprintf(label, sizeof label, "%s %d-shot", r->methods[m]->name, shot);
    fsb_progress bar;
    fsb_progress_init(&bar, r->o->progress, label, "ep", mine - n, mine);
    int st = FSB_OK;
    /* training methods take seconds per episode: sync the journal after every round of
     * one episode per worker, so that a kill loses at most that */
    int per_sync =
        (r->methods[m]->needs & FSB_NEEDS_IMAGES) ? fsb_pool_size(r->pool) : CHUNK_EPISODES;
    for (int i = 0; i < n && !st; i += per_sync) {
        int nc = n - i < per_sync ? n - i : per_sync;
        chunk c = {r, m, s, shot, todo + i, outs};
        fsb_pool_run(r->pool, nc, run_task, &c);
        for (int t = 0; t < nc && !st; t++) {
            if (outs[t].st) {
                st = fsb_error(outs[t].st, "%s, %d-shot, episode %d: %s", r->methods[m]->name, shot,
                               todo[i + t], outs[t].msg);
                break;
            }
            fsb_episode_record rec = {.episode = todo[i + t],
                                      .shot = shot,
                                      .n_correct = outs[t].n_correct,
                                      .n_query = r->sweep.way * r->sweep.query,
                                      .fit_ms = outs[t].t.fit_ms,
                                      .predict_ms = outs[t].t.predict_ms};
            snprintf(rec.method, sizeof rec.method, "%s", r->methods[m]->name);
            char payload[256];
            fsb_run_record_format(&rec, payload, sizeof payload);
            st = fsb_journal_write(&r->journal, payload);
            if (!st) st = replay_record(r, payload, 0);
        }
        if (!st) st = fsb_journal_sync(&r->journal);
        r->tasks_here += nc;
        if (!st && r->o->kill_after_tasks > 0 && r->tasks_here >= r->o->kill_after_tasks)
            raise(SIGKILL); /* fault injection: die like kill -9 between chunks */
        fsb_progress_update(&bar, mine - n + i + nc);
    }
    fsb_progress_finish(&bar);
    free(todo);
    free(outs);
    return st;
}

/* --model M=PATH / M@K=PATH: the method must be in the run and able to take a model of its
 * own (FSB_TAKES_MODEL); an every-shot model is given at most once (r->own[m] = PATH). The
 * per-shot ones are placed by resolve_shot_models once the shots are known. */
/* The shots of the run as "1,5,10" into buf. */
static const char *shots_text(const run_state *r, const int *which, char *buf, size_t n)
{
    buf[0] = '\0';
    for (int s = 0, k = 0; s < r->o->n_shots; s++)
        if (!which || which[s])
            snprintf(buf + strlen(buf), n - strlen(buf), "%s%d", k++ ? "," : "", r->o->shots[s]);
    return buf;
}

/* --model M@K=PATH, once the run's shots are known: K must be one of them and given once per
 * method (r->own_at[m][s] = PATH); an every-shot model must serve some shot; maml must have a
 * model at every shot (it cannot use the teacher). */
static int resolve_shot_models(run_state *r)
{
    const fsb_run_opts *o = r->o;
    char flag[4200], list[256];
    r->shots_resolved = 1;
    for (int i = 0; i < o->n_models; i++) {
        const fsb_run_model *g = &o->models[i];
        if (!g->shot) continue;
        int m = method_slot(r, g->method), s = shot_slot(r, g->shot);
        given_flag(g, flag, sizeof flag);
        if (s < 0)
            return fsb_error(FSB_EINVAL, "%s: %d-shot is not among --shots (%s)", flag, g->shot,
                             shots_text(r, NULL, list, sizeof list));
        if (r->own_at[m][s])
            return fsb_error(FSB_EINVAL, "--model: %s@%d is given twice (%s and %s)", g->method,
                             g->shot, r->own_at[m][s], g->path);
        r->own_at[m][s] = g->path;
    }
    for (int m = 0; m < o->n_methods; m++) {
        int lack[FSB_EPISODES_MAX_SHOTS], n_lack = 0, n_base = 0;
        for (int s = 0; s < o->n_shots; s++) {
            n_base += !r->own_at[m][s];
            n_lack += lack[s] = !model_path(r, m, s);
        }
        if (r->own[m] && !n_base)
            return fsb_error(FSB_EINVAL,
                             "--model %s=%s: every shot of the run (%s) has a model of its own "
                             "(--model %s@K=PATH), so this one would serve none; drop it",
                             r->methods[m]->name, r->own[m], shots_text(r, NULL, list, sizeof list),
                             r->methods[m]->name);
        if (m == r->maml && n_lack) {
            int s = 0;
            while (!r->own_at[m][s])
                s++;
            return fsb_error(FSB_EINVAL,
                             "%s: maml needs a model at every shot, and %s-shot %s none (add "
                             "--model maml=PATH for the other shots, or maml@K=PATH for each); "
                             "it does not use the teacher",
                             model_flag(r, m, s, flag, sizeof flag),
                             shots_text(r, lack, list, sizeof list), n_lack > 1 ? "have" : "has");
        }
    }
    return FSB_OK;
}

static int resolve_models(run_state *r)
{
    const fsb_run_opts *o = r->o;
    int maml_given = 0;
    for (int i = 0; i < o->n_models; i++) {
        const fsb_run_model *g = &o->models[i];
        const char *name = g->method, *path = g->path;
        char flag[4200];
        if (!name || !*name || !path || !*path || g->shot < 0)
            return fsb_error(FSB_EINVAL, "--model: '%s=%s' is not METHOD=PATH", name ? name : "",
                             path ? path : "");
        given_flag(g, flag, sizeof flag);
        int m = method_slot(r, name);
        if (m < 0) {
            char listed[512] = "";
            for (int j = 0; j < o->n_methods; j++)
                snprintf(listed + strlen(listed), sizeof listed - strlen(listed), "%s%s",
                         j ? "," : "", r->methods[j]->name);
            return fsb_error(FSB_EINVAL, "%s: %s is not among --methods (%s)", flag, name, listed);
        }
        if (!(r->methods[m]->needs & FSB_TAKES_MODEL)) {
            char takes[256] = "";
            for (int j = 0; j < fsb_method_count(); j++)
                if (fsb_method_at(j)->needs & FSB_TAKES_MODEL)
                    snprintf(takes + strlen(takes), sizeof takes - strlen(takes), "%s%s",
                             *takes ? ", " : "", fsb_method_at(j)->name);
            return fsb_error(FSB_EINVAL,
                             "%s: %s cannot take a model of its own%s; --model is for %s", flag,
                             name,
                             (r->methods[m]->needs & FSB_NEEDS_IMAGES)
                                 ? " (it trains a student from the teacher in every episode)"
                                 : "",
                             takes);
        }
        maml_given |= m == r->maml;
        if (g->shot) continue;
        if (r->own[m])
            return fsb_error(FSB_EINVAL, "--model: %s is given twice (%s and %s)", name, r->own[m],
                             path);
        r->own[m] = path;
    }
    if (r->maml >= 0 && !maml_given)
        return fsb_error(FSB_EINVAL,
                         "--methods maml needs its own model: --model maml=PATH (a MAML "
                         "checkpoint); it does not use the teacher");
    return o->n_shots > 0 ? resolve_shot_models(r) : FSB_OK; /* else the manifest's, later */
}

static int resolve_methods(run_state *r)
{
    const fsb_run_opts *o = r->o;
    if (o->n_methods < 1) return fsb_error(FSB_EINVAL, "--methods: no method given");
    fsb_student_opts_default(&r->student);
    int st = fsb_student_opts_parse(&r->student, o->student, "--student");
    if (st) return st;
    r->maml = r->feat = -1;
    for (int i = 0; i < o->n_methods; i++) {
        const fsb_method *m = fsb_method_find(o->methods[i]);
        if (!m) return fsb_error_wrap(FSB_EINVAL, "--methods");
        for (int j = 0; j < i; j++)
            if (r->methods[j] == m)
                return fsb_error(FSB_EINVAL, "--methods: '%s' is listed twice", m->name);
        r->methods[i] = m;
        fsb_method_config_default(&r->cfg[i], m);
        if (m == &fsb_method_maml) { /* its own context; no features: no --norm, --C */
            r->maml = i;
            continue;
        }
        if (!strcmp(m->name, "feat")) r->feat = i; /* its attention block: the net's (run_task) */
        if (m->needs & FSB_NEEDS_IMAGES) {
            r->has_images = 1;
            r->cfg[i].extra = &r->student;
        }
        if (o->norm >= 0) r->cfg[i].norm = (fsb_norm)o->norm;
        if (o->C > 0) r->cfg[i].C = o->C;
    }
    return resolve_models(r);
}

static int load_episodes(run_state *r)
{
    const fsb_run_opts *o = r->o;
    int st;
    if (o->manifest) {
        int differs = 0;
        if ((st = fsb_episodes_load(&r->sweep, &r->cache.split, o->manifest, &differs))) return st;
        if (r->sweep.way < 2 || r->sweep.query < 1)
            return fsb_error(FSB_EINVAL,
                             "%s: way %d and query %d: a run needs way >= 2 and "
                             "query >= 1",
                             o->manifest, r->sweep.way, r->sweep.query);
        if (strcmp(r->sweep.split, o->split) != 0)
            return fsb_error(FSB_EINVAL, "%s: its episodes are of split '%s', but --split is '%s'",
                             o->manifest, r->sweep.split, o->split);
        /* way, query and shots not given: the manifest's */
        fsb_run_opts *w = &r->opts;
        if (w->n_shots == 0) {
            w->n_shots = r->sweep.n_shots;
            memcpy(w->shots, r->sweep.shots, sizeof(int) * (size_t)r->sweep.n_shots);
        }
        if (w->way == 0) w->way = r->sweep.way;
        if (w->query == 0) w->query = r->sweep.query;
        if (differs && o->log)
            fprintf(o->log,
                    "note: %s was drawn on another copy of the split (fingerprint "
                    "differs); its images were found by name\n",
                    o->manifest);
        for (int i = 0; i < o->n_shots; i++) {
            int found = 0;
            for (int j = 0; j < r->sweep.n_shots; j++)
                found |= r->sweep.shots[j] == o->shots[i];
            if (!found)
                return fsb_error(FSB_EINVAL, "--shots: %d is not among the shots of %s",
                                 o->shots[i], o->manifest);
        }
        if (r->sweep.way != o->way || r->sweep.query != o->query)
            return fsb_error(FSB_EINVAL, "--way/--query: %s has way %d and query %d", o->manifest,
                             r->sweep.way, r->sweep.query);
    } else {
        fsb_episode_params p = {o->seed, o->way, o->shots[o->n_shots - 1], o->query};
        if ((st = fsb_episode_check(&r->cache.split, &p))) return st;
        if ((st = fsb_sweep_generate(&r->sweep, &r->cache.split, o->seed, o->way, o->shots,
                                     o->n_shots, o->query, (int)o->episodes, r->pool)))
            return st;
    }
    return fsb_sweep_hash(&r->sweep, &r->cache.split, r->ep_hash);
}

/* Export the episodes into the (claimed) run folder once, for replay with --episodes. */
static int export_episodes(const run_state *r)
{
    char *path = fsb_path_join(r->o->out, "episodes.csv");
    if (!path) return fsb_error(FSB_ENOMEM, "out of memory");
    int st =
        fsb_is_file(path) ? FSB_OK : fsb_episodes_export(&r->sweep, &r->cache.split, path, NULL);
    free(path);
    return st;
}

/* The packed-image cache options of this run. */
static fsb_cache_opts cache_opts(const run_state *r)
{
    const fsb_run_opts *o = r->o;
    return (fsb_cache_opts){
        .dir = o->cache_dir, .size = o->image_size, .pool = r->pool, .progress = o->progress};
}

/* feat: the attention block (slf_attn.* tensors) of every checkpoint whose features it sees,
 * its own models' or the teacher's; a checkpoint without one is refused naming the file. */
static int load_feat_block(run_state *r)
{
    for (int s = 0; r->feat >= 0 && s < r->o->n_shots; s++) {
        run_net *n = &r->nets[r->net_of[r->feat][s]];
        if (n->feat_mem) continue;
        n->feat_mem = malloc(sizeof(float) * (size_t)fsb_feat_attn_n_params(n->dim));
        if (!n->feat_mem) return fsb_error(FSB_ENOMEM, "out of memory");
        int st = fsb_feat_attn_load(n->path, &n->feat_block.params, n->feat_mem, n->dim);
        char flag[4200];
        if (st && model_path(r, r->feat, s))
            return fsb_error_wrap(st,
                                  "%s: feat needs a FEAT checkpoint (bench pretrain --objective "
                                  "feat)",
                                  model_flag(r, r->feat, s, flag, sizeof flag));
        if (st) return fsb_error_wrap(st, "--methods feat needs a FEAT teacher");
        n->feat_block.dim = n->dim;
    }
    return FSB_OK;
}

/* --model: every own model takes the run's settled input (image_size / resize / crop, the
 * teacher's): read from the checkpoints' meta before anything is packed. */
static int check_model_inputs(run_state *r)
{
    const fsb_run_opts *o = r->o;
    for (int i = 0; i < o->n_models; i++) {
        const char *path = o->models[i].path;
        char flag[4200];
        given_flag(&o->models[i], flag, sizeof flag);
        fsb_model_input in;
        int st = fsb_model_file_input(path, &in);
        if (st) return fsb_error_wrap(st, "%s", flag);
        if (in.image_size != o->image_size || in.resize != o->resize || in.crop != o->crop)
            return fsb_error(FSB_EMISMATCH,
                             "%s: the model takes image_size %d, resize %d, crop %d, "
                             "but this run's input is image_size %d, resize %d, crop %d (the "
                             "teacher %s's): a method's model must take the run's input",
                             flag, in.image_size, in.resize, in.crop, o->image_size, o->resize,
                             o->crop, o->teacher);
    }
    return FSB_OK;
}

/* maml: each of its models (loaded by load_models) must be a MAML checkpoint (maml.* meta)
 * of the ConvNet with a head of the run's way, all of one MAML order. */
static int check_maml(run_state *r)
{
    for (int s = 0; r->maml >= 0 && s < r->o->n_shots; s++) {
        run_net *n = &r->nets[r->net_of[r->maml][s]];
        char flag[4200];
        model_flag(r, r->maml, s, flag, sizeof flag);
        if (!n->maml_read) {
            int st = fsb_maml_ckpt_read(n->path, &n->maml_ckpt), nc = fsb_model_n_class(n->model);
            if (st) return fsb_error_wrap(st, "%s", flag);
            if (fsb_model_options(n->model)->arch != FSB_ARCH_CONV4)
                return fsb_error(FSB_EINVAL, "%s: a %s checkpoint; maml adapts ConvNet-4 only",
                                 flag, fsb_arch_name(fsb_model_options(n->model)->arch));
            if (nc < 1)
                return fsb_error(FSB_EINVAL,
                                 "%s: the checkpoint has no head (MAML adapts its %d-way head "
                                 "with the network)",
                                 flag, r->sweep.way);
            if (nc != r->sweep.way)
                return fsb_error(FSB_EMISMATCH,
                                 "%s: its head has %d classes (trained %d-way), but the run is "
                                 "%d-way (--way)",
                                 flag, nc, n->maml_ckpt.train_way, r->sweep.way);
            n->maml_read = 1;
        }
        if (s == 0) r->maml_order = n->maml_ckpt.order;
        if (n->maml_ckpt.order != r->maml_order) {
            char first[4200];
            return fsb_error(FSB_EINVAL,
                             "%s: %s MAML, but %s is %s: a run's maml models are of one MAML "
                             "order",
                             flag, n->maml_ckpt.order == 1 ? "first-order" : "second-order",
                             model_flag(r, r->maml, 0, first, sizeof first),
                             r->maml_order == 1 ? "first-order" : "second-order");
        }
    }
    return FSB_OK;
}

/* The net of checkpoint `path` (given by `flag`) in *k: an earlier one of the same file or
 * content (two files of the same content share one net; the teacher's included), else loaded
 * as a new one. */
static int net_for(run_state *r, const char *path, const char *flag, int *k)
{
    for (*k = 1; *k < r->n_nets; (*k)++)
        if (r->nets[*k].path == path) return FSB_OK;
    uint64_t h;
    int st = file_hash(path, &h);
    if (st) return fsb_error_wrap(st, "%s", flag);
    for (*k = 0; *k < r->n_nets; (*k)++)
        if (r->nets[*k].hash == h) return FSB_OK;
    run_net *n = &r->nets[r->n_nets++];
    n->path = path;
    n->hash = h;
    if ((st = fsb_model_create_from_file(&n->model, path, r->o->crop, FSB_FEATURES_BATCH, r->pool)))
        return fsb_error_wrap(st, "%s", flag);
    n->dim = fsb_model_embed_dim(n->model);
    return FSB_OK;
}

/* The teacher is net 0 (loaded); load every distinct own model and note whose features each
 * (method, shot) sees and the largest dimension. */
static int load_models(run_state *r)
{
    const fsb_run_opts *o = r->o;
    r->n_nets = 1;
    r->max_dim = 0;
    for (int m = 0; m < o->n_methods; m++)
        for (int s = 0; s < o->n_shots; s++) {
            char flag[4200];
            int st = FSB_OK;
            r->net_of[m][s] = 0;
            if (model_path(r, m, s))
                st = net_for(r, model_path(r, m, s), model_flag(r, m, s, flag, sizeof flag),
                             &r->net_of[m][s]);
            if (st) return st;
            if (m == r->maml) continue; /* adapts its model on images: no features */
            run_net *n = &r->nets[r->net_of[m][s]];
            n->used = 1;
            if (n->dim > r->max_dim) r->max_dim = n->dim;
        }
    return FSB_OK;
}

/* Everything the run reads before it claims its folder: the teacher's input settles the
 * packed size and transform (a contradicting flag, a combination that cannot work, or a
 * method's model that takes another input fails before anything is packed), the split is
 * listed and packed, the teacher and the methods' own models loaded, the episodes drawn,
 * and the train split listed when CL2N needs its mean. */
static int open_inputs(run_state *r)
{
    fsb_run_opts *o = &r->opts;
    fsb_model_input in;
    int st = fsb_model_file_input(o->teacher, &in);
    if (st) return fsb_error_wrap(st, "--teacher");
    if ((st = fsb_model_input_settle(&in, "the teacher", o->teacher, &o->image_size, &o->resize,
                                     &o->crop)) ||
        (st = check_model_inputs(r)))
        return st;
    /* mpirun (shard.h): rank 0 packs and embeds first, the other ranks then load its files */
    if (o->shard.shared && o->shard.index > 0 && (st = fsb_dist_barrier())) return st;
    fsb_cache_opts co = cache_opts(r);
    const char *need[2] = {o->split, "train"}; /* both listed before either is packed */
    if ((st = fsb_split_require(o->data, need, needs_base_mean(r) ? 2 : 1,
                                "bench run reads --split, and train for cl2n's base mean")) ||
        (st = fsb_cache_open(&r->cache, o->data, o->split, &co)))
        return fsb_error_wrap(st, "--data");
    run_net *t = &r->nets[0];
    t->path = o->teacher;
    if ((st = file_hash(o->teacher, &t->hash))) return fsb_error_wrap(st, "--teacher");
    if ((st = fsb_model_create_from_file(&t->model, o->teacher, o->crop, FSB_FEATURES_BATCH,
                                         r->pool)))
        return st;
    t->dim = fsb_model_embed_dim(t->model);
    const char *arch = fsb_arch_name(fsb_model_options(t->model)->arch);
    if (o->arch && strcmp(o->arch, arch) != 0)
        return fsb_error(FSB_EMISMATCH, "--teacher: %s is a %s checkpoint, --arch says %s",
                         o->teacher, arch, o->arch);
    /* the episodes first: a manifest may settle the shots the per-shot models need */
    if ((st = load_episodes(r)) || (!r->shots_resolved && (st = resolve_shot_models(r))) ||
        (st = load_models(r)) || (st = load_feat_block(r)) || (st = check_maml(r)))
        return st;
    if (needs_base_mean(r)) { /* the train split's listing is part of the run's identity */
        fsb_split base;
        if ((st = fsb_split_open(&base, o->data, "train")))
            return fsb_error_wrap(st, "--data (the train split, for CL2N's base mean)");
        r->base_fp = base.fingerprint;
        fsb_split_free(&base);
    }
    return FSB_OK;
}

/* CL2N: the mean train-split feature under `net`, summed in image order in double. */
static int net_base_mean(run_state *r, run_net *net, const fsb_cache *train)
{
    const float *tf;
    int st = split_features(r, net, train, &net->mean_tf, &tf), d = net->dim;
    if (st) return st;
    net->base_mean = calloc((size_t)d, sizeof *net->base_mean);
    double *acc = calloc((size_t)d, sizeof *acc);
    if (!net->base_mean || !acc) {
        free(acc);
        return fsb_error(FSB_ENOMEM, "out of memory");
    }
    for (int i = 0; i < train->split.n_images; i++)
        for (int j = 0; j < d; j++)
            acc[j] += tf[(size_t)i * d + j];
    for (int j = 0; j < d; j++)
        net->base_mean[j] = (float)(acc[j] / train->split.n_images);
    free(acc);
    return FSB_OK;
}

/* CL2N: the base mean of every net a CL2N method sees at some shot (the train split packed
 * once); each (method, shot) reads its net's (run_task). */
static int base_means(run_state *r, fsb_cache *train)
{
    const fsb_run_opts *o = r->o;
    fsb_cache_opts co = cache_opts(r);
    int st = fsb_cache_open(train, o->data, "train", &co);
    for (int m = 0; m < o->n_methods && !st; m++)
        for (int s = 0; s < o->n_shots && !st; s++) {
            run_net *n = &r->nets[r->net_of[m][s]];
            if (r->cfg[m].norm == FSB_NORM_CL2N && !n->base_mean) st = net_base_mean(r, n, train);
        }
    return st;
}

/* The split's features under every net a method sees (each from the feature cache or
 * embedded once). */
static int nets_features(run_state *r)
{
    int st = FSB_OK;
    for (int k = 0; k < r->n_nets && !st; k++)
        if (r->nets[k].used)
            st = split_features(r, &r->nets[k], &r->cache, &r->nets[k].feat_tf, &r->nets[k].feats);
    return st;
}

/* Replay the journal, then run every task it lacks, group by group (the workers exist). */
static int run_tasks(run_state *r, size_t n_tasks)
{
    const fsb_run_opts *o = r->o;
    r->done = calloc(n_tasks, 1);
    r->recs = calloc(n_tasks, sizeof *r->recs);
    if (!r->done || !r->recs) return fsb_error(FSB_ENOMEM, "out of memory");
    char *jpath = NULL; /* journal.log, or journal.r<i>of<n>.log of an mpirun rank */
    int st = fsb_shard_journal_path(o->out, &o->shard, &jpath);
    if (st) return st;
    st = fsb_journal_open(&r->journal, jpath, replay_record, r);
    free(jpath);
    if (st) return st;
    for (int m = 0; m < o->n_methods && !st; m++)
        for (int s = 0; s < o->n_shots && !st; s++)
            st = run_group(r, m, s);
    return st;
}

/* The one-line notes of a starting run: the episodes and the teacher, every method's own
 * models (with the shots each serves when it has per-shot ones) and what maml adapts. */
static void log_run(const run_state *r)
{
    const fsb_run_opts *o = r->o;
    if (!o->log) return;
    fprintf(o->log, "run: %d episodes (hash %s) x shots", r->sweep.n_episodes, r->ep_hash);
    for (int s = 0; s < o->n_shots; s++)
        fprintf(o->log, "%s%d", s ? "," : " ", o->shots[s]);
    fprintf(o->log, " on %s/%s, teacher %s (%s, %d-d)\n", o->data, o->split, o->teacher,
            fsb_arch_name(fsb_model_options(r->nets[0].model)->arch), r->nets[0].dim);
    for (int m = 0; m < o->n_methods; m++) {
        int per_shot = 0;
        for (int s = 0; s < o->n_shots; s++)
            per_shot |= r->own_at[m][s] != NULL;
        for (int s = 0; s < o->n_shots; s++) {
            const char *path = model_path(r, m, s);
            int first = 1;
            for (int t = 0; t < s; t++)
                first &= model_path(r, m, t) != path;
            if (!path || !first) continue;
            const run_net *n = &r->nets[r->net_of[m][s]];
            fprintf(o->log, "run: %s sees its own model %s (%s, %d-d)", r->methods[m]->name, path,
                    fsb_arch_name(fsb_model_options(n->model)->arch), n->dim);
            for (int t = s, k = 0; per_shot && t < o->n_shots; t++)
                if (model_path(r, m, t) == path)
                    fprintf(o->log, "%s%d", k++ ? "," : " at shots ", o->shots[t]);
            fprintf(o->log, "\n");
            if (m == r->maml)
                fprintf(o->log,
                        "run: maml adapts it (%s MAML, %d steps at lr %g per episode; trained "
                        "%d-way %d-shot, %ld iterations)\n",
                        n->maml_ckpt.order == 1 ? "first-order" : "second-order",
                        n->maml_ckpt.test_steps, n->maml_ckpt.inner_lr, n->maml_ckpt.train_way,
                        n->maml_ckpt.train_shot, n->maml_ckpt.iterations);
        }
    }
}

/* manifest.txt's lines beside run.id: the data, the teacher, the file of every model whose
 * hash run.id records (model.M=PATH, model.M@K=PATH), the thread count. */
static void manifest_extra(const run_state *r, char *extra, size_t n)
{
    const fsb_run_opts *o = r->o;
    int len = snprintf(extra, n, "data=%s\nteacher=%s\n", o->data, o->teacher);
    for (int m = 0; m < o->n_methods; m++) {
        if (r->own[m] && len < (int)n)
            len += snprintf(extra + len, n - (size_t)len, "model.%s=%s\n", r->methods[m]->name,
                            r->own[m]);
        for (int s = 0; s < o->n_shots; s++)
            if (r->own_at[m][s] && len < (int)n)
                len += snprintf(extra + len, n - (size_t)len, "model.%s@%d=%s\n",
                                r->methods[m]->name, o->shots[s], r->own_at[m][s]);
    }
    if (len < (int)n)
        snprintf(extra + len, n - (size_t)len, "threads=%d\n", fsb_pool_size(r->pool));
}

int fsb_run(const fsb_run_opts *given)
{
    if (!given->data) return fsb_error(FSB_EINVAL, "--data is required");
    if (!given->teacher) return fsb_error(FSB_EINVAL, "--teacher is required");
    if (!given->out) return fsb_error(FSB_EINVAL, "--out is required");
    double t0 = fsb_now();
    run_state r;
    memset(&r, 0, sizeof r);
    r.opts = *given; /* the teacher's input and a manifest may fill in settings */
    r.maml = -1;
    const fsb_run_opts *o = &r.opts;
    r.o = o;
    fsb_cache train;
    memset(&train, 0, sizeof train);
    int st = fsb_pool_create(&r.pool, o->threads);
    if (st) return st;
    fsb_blas_set_threads(1);
    /* everything that can fail on the user's input happens before the folder is claimed (a
     * folder of another run is refused at once): a corrected command then runs there */
    if ((st = resolve_methods(&r)) || (st = open_inputs(&r)) || (st = make_run_id(&r, &r.run_id)) ||
        (st = fsb_runfolder_check(o->out, r.run_id, "--out")))
        goto done;
    log_run(&r);
    if ((st = nets_features(&r)) || (needs_base_mean(&r) && (st = base_means(&r, &train))) ||
        (st = workers_init(&r)) || (st = fsb_runfolder_claim(o->out, r.run_id, "--out")) ||
        (st = export_episodes(&r)))
        goto done;
    if (o->shard.shared && o->shard.index == 0 && (st = fsb_dist_barrier()))
        goto done; /* rank 0's caches are written: release the other ranks */
    size_t n_tasks = (size_t)o->n_methods * o->n_shots * r.sweep.n_episodes;
    if ((st = run_tasks(&r, n_tasks))) goto done;
    /* sharded (shard.h): a --shard folder ends with shard.done, mpirun ranks gather their
     * records on rank 0, which alone writes the final files */
    int write_final = 1;
    if ((st = fsb_shard_finish(o->out, &o->shard, r.recs, r.done, n_tasks, &write_final)) ||
        !write_final)
        goto done;
    char extra[65536];
    manifest_extra(&r, extra, sizeof extra);
    st = fsb_runfolder_write_results(o->out, r.run_id, r.recs, n_tasks, extra, t0, o->log);
done:
    workers_free(&r);
    fsb_journal_close(&r.journal);
    free(r.done);
    free(r.recs);
    free(r.run_id);
    for (int k = 0; k < MAX_NETS; k++) {
        run_net *n = &r.nets[k];
        free(n->base_mean);
        free(n->feat_mem);
        fsb_tensorfile_free(&n->feat_tf);
        fsb_tensorfile_free(&n->mean_tf);
        fsb_model_destroy(n->model);
    }
    fsb_sweep_free(&r.sweep);
    fsb_cache_close(&train);
    fsb_cache_close(&r.cache);
    fsb_pool_destroy(r.pool);
    return st;
}
