/* student.c - per-episode student training for `finetune` and `refilled` (see
 * include/fsb/student.h for the data flow and docs/refilled.md for the losses).
 *
 * Invariants: the teacher replica only ever runs eval-mode forwards (its parameters and BN
 * statistics never change); every buffer is sized at ctx creation for the largest episode, so
 * an episode allocates nothing (fsb_model_reset_head reallocates only if `way` changes between
 * episodes); all randomness comes from the episode rng, in a fixed order.
 */
#include "fsb/student.h"
#include "fsb/arena.h"
#include "fsb/layers.h"
#include "fsb/optim.h"
#include "fsb/status.h"
#include "fsb/threads.h"

#include <assert.h>
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMG_CHUNK 32 /* images per teacher forward (bank) and per query forward */

/* ---- options ---------------------------------------------------------------------------- */

void fsb_student_opts_default(fsb_student_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stage1_steps = 20;
    o->lr1 = 0.01f;
    o->stage2_steps = 100; /* stage 2 and fine-tune: chosen on val (students/grid_600/) */
    o->lr2 = 0.003f;
    o->batch = 0;
    /* a bank of the clean support plus 7 mildly augmented views per image (crop 0.5-1, flip,
     * no colour jitter): chosen on val (results/tune/students/mild_aug/) */
    o->augment = 1;
    o->bank = 8;
    o->bank_max = 0;
    o->crop_lo = 0.5f;
    o->jitter = 0.0f;
    o->clean_view = 1;
    o->views = 2;
    o->k1 = FSB_K1_VIEWS;
    o->adapt = FSB_ADAPT_HEAD; /* chosen on val, like augment and head_init */
    o->prefix = 1;
    o->miner = FSB_MINER_SEMIHARD;
    o->margin = FSB_REFILLED_MARGIN;
    o->tau1 = FSB_REFILLED_TAU1;
    o->w1 = FSB_REFILLED_W1;
    o->tau2 = FSB_REFILLED_TAU2;
    /* chosen on val (results/tune/students/grid_600/; 0.3, 1 and 3 are within 0.11 points of
     * each other there). The reference lambda = 100 needs a ~10x smaller lr2 to stay stable:
     * the KL term's curvature grows like lambda * |phi|^2 / tau2^2 */
    o->lambda = 0.3f;
    o->centres_batch = 0;
    o->momentum = 0.9f;
    o->nesterov = 1;
    o->weight_decay = 5e-4f;
    o->sched = FSB_SCHED_CONST;
    o->head_init = FSB_HEAD_ZERO;
}

typedef enum { K_INT, K_FLOAT, K_ENUM } key_type;

/* One spec key: a field of fsb_student_opts with its range or its value names. */
typedef struct spec_key {
    const char *name;         /* key = field name */
    key_type type;            /* how the value is parsed */
    size_t off;               /* offsetof the field */
    double lo, hi;            /* allowed range (K_INT, K_FLOAT); lo_open: lo excluded */
    int lo_open;              /* 1: value must be > lo */
    const char *const *names; /* K_ENUM: value names, index = enum value */
    int n_names;              /* number of names */
} spec_key;

static const char *const k1_names[] = {"views", "skip"};
static const char *const adapt_names[] = {"all", "last", "head"};
static const char *const miner_names[] = {"semihard", "facenet"};
static const char *const sched_names[] = {"const", "cosine"};
static const char *const head_init_names[] = {"uniform", "zero"};

#define OFF(f) offsetof(fsb_student_opts, f)
static const spec_key keys[] = {
    {"stage1_steps", K_INT, OFF(stage1_steps), 0, 100000, 0, NULL, 0},
    {"lr1", K_FLOAT, OFF(lr1), 0, 100, 0, NULL, 0},
    {"stage2_steps", K_INT, OFF(stage2_steps), 0, 100000, 0, NULL, 0},
    {"lr2", K_FLOAT, OFF(lr2), 0, 100, 0, NULL, 0},
    {"batch", K_INT, OFF(batch), 0, 100000, 0, NULL, 0},
    {"augment", K_INT, OFF(augment), 0, 1, 0, NULL, 0},
    {"bank", K_INT, OFF(bank), 1, 256, 0, NULL, 0},
    {"bank_max", K_INT, OFF(bank_max), 0, 1000000, 0, NULL, 0},
    {"crop_lo", K_FLOAT, OFF(crop_lo), 0, 1, 1, NULL, 0},
    {"jitter", K_FLOAT, OFF(jitter), 0, 0.999, 0, NULL, 0},
    {"clean_view", K_INT, OFF(clean_view), 0, 1, 0, NULL, 0},
    {"views", K_INT, OFF(views), 2, 256, 0, NULL, 0},
    {"k1", K_ENUM, OFF(k1), 0, 0, 0, k1_names, 2},
    {"adapt", K_ENUM, OFF(adapt), 0, 0, 0, adapt_names, 3},
    {"prefix", K_INT, OFF(prefix), 0, 1, 0, NULL, 0},
    {"miner", K_ENUM, OFF(miner), 0, 0, 0, miner_names, 2},
    {"margin", K_FLOAT, OFF(margin), 0, 4, 1, NULL, 0},
    {"tau1", K_FLOAT, OFF(tau1), 0, 1e6, 1, NULL, 0},
    {"w1", K_FLOAT, OFF(w1), 0, 1e9, 0, NULL, 0},
    {"tau2", K_FLOAT, OFF(tau2), 0, 1e6, 1, NULL, 0},
    {"lambda", K_FLOAT, OFF(lambda), 0, 1e9, 0, NULL, 0},
    {"centres_batch", K_INT, OFF(centres_batch), 0, 1, 0, NULL, 0},
    {"momentum", K_FLOAT, OFF(momentum), 0, 0.999999, 0, NULL, 0},
    {"nesterov", K_INT, OFF(nesterov), 0, 1, 0, NULL, 0},
    {"weight_decay", K_FLOAT, OFF(weight_decay), 0, 1, 0, NULL, 0},
    {"sched", K_ENUM, OFF(sched), 0, 0, 0, sched_names, 2},
    {"head_init", K_ENUM, OFF(head_init), 0, 0, 0, head_init_names, 2},
};
#undef OFF
static const int n_keys = (int)(sizeof keys / sizeof keys[0]);

/* Enum fields are stored through int (every enum here is int-compatible in size). */
static int get_int(const fsb_student_opts *o, const spec_key *k)
{
    int v;
    memcpy(&v, (const char *)o + k->off, sizeof v);
    return v;
}

static void set_int(fsb_student_opts *o, const spec_key *k, int v)
{
    memcpy((char *)o + k->off, &v, sizeof v);
}

static float get_float(const fsb_student_opts *o, const spec_key *k)
{
    float v;
    memcpy(&v, (const char *)o + k->off, sizeof v);
    return v;
}

/* The range rule of fsb_student_opts_check, on the value as stored: a float field compares
 * its float value with the bounds rounded to float, so "jitter=0.999" (0.99900001 as a float)
 * is in [0, 0.999] and "margin=1e-46" (0 as a float) is not in (0, 4]. The parser applies it
 * too, besides the range on the value as written, so that what it accepts passes the check. */
static int in_range(const spec_key *k, double v)
{
    if (!isfinite(v)) return 0;
    if (k->type == K_FLOAT) {
        if (fabs(v) > FLT_MAX) return 0; /* (float)v would be undefined */
        float f = (float)v, lo = (float)k->lo, hi = (float)k->hi;
        return f >= lo && f <= hi && !(k->lo_open && f <= lo);
    }
    return v >= k->lo && v <= k->hi && !(k->lo_open && v <= k->lo);
}

int fsb_student_opts_check(const fsb_student_opts *o, const char *flag)
{
    for (int i = 0; i < n_keys; i++) {
        const spec_key *k = &keys[i];
        if (k->type == K_ENUM) {
            int v = get_int(o, k);
            if (v < 0 || v >= k->n_names)
                return fsb_error(FSB_EINVAL, "%s: %s has no value %d", flag, k->name, v);
            continue;
        }
        double v = k->type == K_INT ? (double)get_int(o, k) : (double)get_float(o, k);
        if (!in_range(k, v))
            return fsb_error(FSB_EINVAL, "%s: %s=%g is out of range %s%g, %g]", flag, k->name, v,
                             k->lo_open ? "(" : "[", k->lo, k->hi);
    }
    if (o->nesterov && o->momentum <= 0.0f)
        return fsb_error(FSB_EINVAL, "%s: nesterov=1 needs momentum > 0", flag);
    _Static_assert(sizeof(fsb_adapt) == sizeof(int) && sizeof(fsb_student_k1) == sizeof(int) &&
                       sizeof(fsb_refilled_miner) == sizeof(int) &&
                       sizeof(fsb_student_sched) == sizeof(int),
                   "enum fields are accessed as int");
    return FSB_OK;
}

/* Parse one "key=value" (len bytes at item) into o. */
static int parse_item(fsb_student_opts *o, const char *item, size_t len, const char *flag)
{
    char buf[128];
    if (len >= sizeof buf) return fsb_error(FSB_EINVAL, "%s: '%.40s...' is too long", flag, item);
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *eq = strchr(buf, '=');
    if (!eq) return fsb_error(FSB_EINVAL, "%s: '%s' is not key=value", flag, buf);
    *eq = '\0';
    const char *val = eq + 1;
    const spec_key *k = NULL;
    for (int i = 0; i < n_keys && !k; i++)
        if (!strcmp(keys[i].name, buf)) k = &keys[i];
    if (!k) {
        char known[1024] = "";
        for (int i = 0; i < n_keys; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     keys[i].name);
        return fsb_error(FSB_EINVAL, "%s: unknown key '%s' (known: %s)", flag, buf, known);
    }
    if (k->type == K_ENUM) {
        for (int i = 0; i < k->n_names; i++)
            if (!strcmp(val, k->names[i])) {
                set_int(o, k, i);
                return FSB_OK;
            }
        char known[256] = "";
        for (int i = 0; i < k->n_names; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     k->names[i]);
        return fsb_error(FSB_EINVAL, "%s: %s='%s' is not one of %s", flag, k->name, val, known);
    }
    char *end = NULL;
    double v = strtod(val, &end);
    if (!*val || isspace((unsigned char)*val) || *end || !isfinite(v) ||
        (k->type == K_INT && v != floor(v)))
        return fsb_error(FSB_EINVAL, "%s: %s='%s' is not %s", flag, k->name, val,
                         k->type == K_INT ? "a whole number" : "a number");
    if (v < k->lo || v > k->hi || !in_range(k, v))
        return fsb_error(FSB_EINVAL, "%s: %s=%s is out of range %s%g, %g]", flag, k->name, val,
                         k->lo_open ? "(" : "[", k->lo, k->hi);
    if (k->type == K_INT)
        set_int(o, k, (int)v);
    else {
        float f = (float)v;
        memcpy((char *)o + k->off, &f, sizeof f);
    }
    return FSB_OK;
}

int fsb_student_item_check(const char *item, size_t len, const char *flag)
{
    fsb_student_opts t;
    fsb_student_opts_default(&t);
    return parse_item(&t, item, len, flag);
}

int fsb_student_opts_parse(fsb_student_opts *o, const char *spec, const char *flag)
{
    fsb_student_opts t = *o;
    for (const char *p = spec; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || (p[len] == ',' && p[len + 1] == '\0'))
            return fsb_error(FSB_EINVAL, "%s: empty item in '%s'", flag, spec);
        /* a key given twice is a mistake, not "the last one wins" */
        size_t klen = strcspn(p, ",=");
        for (const char *q = spec; q < p; q += strcspn(q, ",") + 1)
            if (strcspn(q, ",=") == klen && !strncmp(q, p, klen))
                return fsb_error(FSB_EINVAL, "%s: '%.*s' is given twice in '%s'", flag, (int)klen,
                                 p, spec);
        int st = parse_item(&t, p, len, flag);
        if (st) return st;
        p += len;
        if (*p == ',') p++;
    }
    int st = fsb_student_opts_check(&t, flag);
    if (!st) *o = t;
    return st;
}

void fsb_student_opts_string(const fsb_student_opts *o, char *buf, size_t n)
{
    assert(n > 0);
    buf[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < n_keys && len < n; i++) {
        const spec_key *k = &keys[i];
        const char *sep = i ? "," : "";
        int w;
        if (k->type == K_ENUM) {
            int v = get_int(o, k);
            w = snprintf(buf + len, n - len, "%s%s=%s", sep, k->name,
                         v >= 0 && v < k->n_names ? k->names[v] : "?");
        } else if (k->type == K_INT) {
            w = snprintf(buf + len, n - len, "%s%s=%d", sep, k->name, get_int(o, k));
        } else {
            /* the shortest %g that reads back as the same float (0.01, not 0.00999999978) */
            float f = get_float(o, k);
            char num[32];
            for (int prec = 6; prec <= 9; prec++) {
                snprintf(num, sizeof num, "%.*g", prec, (double)f);
                if (strtof(num, NULL) == f) break;
            }
            w = snprintf(buf + len, n - len, "%s%s=%s", sep, k->name, num);
        }
        if (w < 0) break;
        len += (size_t)w;
    }
}

/* ---- context ---------------------------------------------------------------------------- */

struct fsb_student_ctx {
    fsb_student_opts opts;  /* the options the buffers were sized for ((ctx) fields) */
    const fsb_cache *cache; /* borrowed image store */
    fsb_transform tf;       /* crop, normalisation, augmentation */
    int max_way;            /* largest episode: classes */
    int max_shot;           /* ... support images per class */
    int max_query;          /* ... queries per class */
    fsb_model *teacher;     /* frozen replica, eval forwards only */
    fsb_model *student;     /* trained per episode */
    int D;                  /* embedding dimension */
    int s0;                 /* stage the bank holds: first trainable stage, or 0 (prefix=0) */
    long act;               /* floats per bank row (size of stage s0) */
    long img_sz;            /* floats per image, 3*C*C */
    int max_batch;          /* student batch capacity (largest step) */
    int bank_cap;           /* bank rows capacity: the most of any way x shot it accepts */
    int bank_rows;          /* rows of the last bank with teacher embeddings */
    float *bank;            /* [bank_cap][act] stage-s0 inputs of every view */
    float *bank_emb;        /* [bank_cap][D] teacher embeddings of every view */
    int *bank_lab;          /* [bank_cap] class of every view */
    float *img;             /* [IMG_CHUNK][img_sz] transform staging */
    float *in;              /* [max_batch][act] gathered student inputs of a step */
    float *temb;            /* [max_batch][D] gathered teacher embeddings */
    float *demb;            /* [max_batch][D] stage-1 gradient on the student embedding */
    float *dlog;            /* [max_batch][max_way] gradient on the logits */
    int *rows;              /* [max_batch] bank rows of a step */
    int *lab;               /* [max_batch] their classes */
    int *cls;               /* [max_way][max_shot] support positions per class, shuffled */
    float *centres;         /* [max_way][D] teacher NCM centres */
    int *count;             /* [max_way] rows per class behind the centres */
    float *momentum;        /* [mom_cap] SGD momentum buffer */
    long mom_cap;           /* its length: the student's parameter count */
    fsb_arena arena;        /* loss scratch (rolled back by the loss functions) */
};

/* Support images per class and step: all K unless `batch` caps the rows (vs rows per image),
 * at least min_pc (2 in stage 1 at K > 1: positives need two images of a class). */
static int per_class(const fsb_student_opts *o, int way, int shot, int vs, int min_pc)
{
    int pc = shot;
    if (o->batch > 0 && (long)way * shot * vs > o->batch) {
        pc = o->batch / (way * vs);
        if (pc < min_pc) pc = min_pc;
        if (pc < 1) pc = 1;
        if (pc > shot) pc = shot;
    }
    return pc;
}

/* Views per support image in the bank of an episode with n_s support images: `bank`, capped
 * by bank_max / n_s (at least 1); 1 without augmentation. A bank of one view per image is
 * the test transform (a single random crop would be a fixed distortion). */
static int bank_views(const fsb_student_opts *o, int n_s)
{
    if (!o->augment) return 1;
    int a = o->bank;
    if (o->bank_max > 0 && o->bank_max / n_s < a) a = o->bank_max / n_s < 1 ? 1 : o->bank_max / n_s;
    return a;
}

/* Views per image in stage 1 at this shot (1 at K > 1; 0 = no stage 1 at K = 1). */
static int stage1_views(const fsb_student_opts *o, int way, int shot)
{
    if (shot > 1) return 1;
    int a = bank_views(o, way * shot);
    int v = o->views < a ? o->views : a;
    return o->k1 == FSB_K1_VIEWS && v >= 2 ? v : 0;
}

/* Rows of the largest stage-1 and stage-2 steps at this shot. */
static int max_rows(const fsb_student_opts *o, int way, int shot)
{
    int rows = way * per_class(o, way, shot, 1, 1);
    int vs = stage1_views(o, way, shot);
    if (vs) {
        int r1 = way * per_class(o, way, shot, vs, shot > 1 ? 2 : 1) * vs;
        rows = r1 > rows ? r1 : rows;
    }
    return rows;
}

static int ctx_compatible(const fsb_student_ctx *c, const fsb_student_opts *o)
{
    const fsb_student_opts *a = &c->opts;
    return a->batch == o->batch && a->augment == o->augment && a->bank == o->bank &&
           a->bank_max == o->bank_max && a->views == o->views && a->adapt == o->adapt &&
           a->prefix == o->prefix;
}

int fsb_student_ctx_create(fsb_student_ctx **out, const char *teacher_path, const fsb_cache *cache,
                           const fsb_transform *tf, int max_way, int max_shot, int max_query,
                           const fsb_student_opts *opts)
{
    *out = NULL;
    int st = fsb_student_opts_check(opts, "student options");
    if (st) return st;
    if ((st = fsb_transform_check(tf))) return st;
    if (max_way < 1 || max_shot < 1 || max_query < 1)
        return fsb_error(FSB_EINVAL, "student: bad episode shape way %d shot %d query %d", max_way,
                         max_shot, max_query);
    if (cache->size < tf->crop)
        return fsb_error(FSB_EINVAL, "student: cached images (%d px) are smaller than the crop %d",
                         cache->size, tf->crop);
    fsb_student_ctx *c = calloc(1, sizeof *c);
    if (!c) return fsb_error(FSB_ENOMEM, "student: out of memory");
    c->opts = *opts;
    c->cache = cache;
    c->tf = *tf;
    c->max_way = max_way;
    c->max_shot = max_shot;
    c->max_query = max_query;
    int *tmp_lab = NULL;
    if ((st = fsb_model_create_from_file(&c->teacher, teacher_path, tf->crop, IMG_CHUNK, NULL)))
        goto done;
    c->D = fsb_model_embed_dim(c->teacher);
    /* Every buffer is sized for the worst episode shape the context accepts: any way up to
     * max_way and any shot up to max_shot (under bank_max the rows do not grow with the way). */
    c->max_batch = c->bank_cap = 1;
    for (int wy = 1; wy <= max_way; wy++)
        for (int k = 1; k <= max_shot; k++) {
            int r = max_rows(opts, wy, k), rows = wy * k * bank_views(opts, wy * k);
            c->max_batch = r > c->max_batch ? r : c->max_batch;
            c->bank_cap = rows > c->bank_cap ? rows : c->bank_cap;
        }
    if (c->max_batch < IMG_CHUNK && c->max_batch < max_way * max_query)
        c->max_batch = IMG_CHUNK < max_way * max_query ? IMG_CHUNK : max_way * max_query;
    fsb_rng init;
    fsb_rng_init(&init, 0, 0); /* overwritten by the teacher's weights every episode */
    if ((st = fsb_model_create(&c->student, fsb_model_options(c->teacher), max_way, c->max_batch,
                               NULL, &init)))
        goto done;
    fsb_model_set_adapt(c->student, opts->adapt);
    c->s0 = opts->prefix ? fsb_model_first_trainable(c->student) : 0;
    int ch, h, w;
    fsb_model_stage_shape(c->student, c->s0, &ch, &h, &w);
    c->act = (long)ch * h * w;
    c->img_sz = 3L * tf->crop * tf->crop;
    size_t B = (size_t)c->max_batch, D = (size_t)c->D, W = (size_t)max_way;
    c->bank = malloc(sizeof(float) * (size_t)c->bank_cap * (size_t)c->act);
    c->bank_emb = malloc(sizeof(float) * (size_t)c->bank_cap * D);
    c->bank_lab = malloc(sizeof(int) * (size_t)c->bank_cap);
    c->img = malloc(sizeof(float) * IMG_CHUNK * (size_t)c->img_sz);
    c->in = malloc(sizeof(float) * B * (size_t)c->act);
    c->temb = malloc(sizeof(float) * B * D);
    c->demb = malloc(sizeof(float) * B * D);
    c->dlog = malloc(sizeof(float) * B * W);
    c->rows = malloc(sizeof(int) * B);
    c->lab = malloc(sizeof(int) * B);
    c->cls = malloc(sizeof(int) * W * (size_t)max_shot);
    c->centres = malloc(sizeof(float) * W * D);
    c->count = malloc(sizeof(int) * W);
    fsb_model_params(c->student, &c->mom_cap);
    c->momentum = calloc((size_t)c->mom_cap, sizeof(float));
    tmp_lab = malloc(sizeof(int) * B);
    if (!c->bank || !c->bank_emb || !c->bank_lab || !c->img || !c->in || !c->temb || !c->demb ||
        !c->dlog || !c->rows || !c->lab || !c->cls || !c->centres || !c->count || !c->momentum ||
        !tmp_lab) {
        st = fsb_error(FSB_ENOMEM, "student: out of memory for %d-way %d-shot episodes", max_way,
                       max_shot);
        goto done;
    }
    /* loss scratch: the worst stage-1 batch (balanced labels, either miner) and stage 2 */
    size_t scratch = fsb_refilled_stage2_scratch_bytes(c->max_batch, c->D, max_way);
    for (int wy = 1; wy <= max_way; wy++)
        for (int k = 1; k <= max_shot; k++) {
            int vs = stage1_views(opts, wy, k);
            if (!vs) continue;
            int pc = per_class(opts, wy, k, vs, k > 1 ? 2 : 1), n = wy * pc * vs;
            for (int i = 0; i < n; i++)
                tmp_lab[i] = i / (pc * vs);
            for (int mi = 0; mi < 2; mi++) {
                size_t b = fsb_refilled_stage1_scratch_bytes(tmp_lab, NULL, n, c->D, c->D,
                                                             (fsb_refilled_miner)mi);
                scratch = b > scratch ? b : scratch;
            }
        }
    if ((st = fsb_arena_init(&c->arena, scratch + (1 << 16)))) goto done;
    *out = c;
    c = NULL;
done:
    free(tmp_lab);
    fsb_student_ctx_destroy(c);
    return st;
}

void fsb_student_ctx_destroy(fsb_student_ctx *c)
{
    if (!c) return;
    fsb_model_destroy(c->teacher);
    fsb_model_destroy(c->student);
    free(c->bank);
    free(c->bank_emb);
    free(c->bank_lab);
    free(c->img);
    free(c->in);
    free(c->temb);
    free(c->demb);
    free(c->dlog);
    free(c->rows);
    free(c->lab);
    free(c->cls);
    free(c->centres);
    free(c->count);
    free(c->momentum);
    fsb_arena_free(&c->arena);
    free(c);
}

const fsb_model *fsb_student_ctx_teacher(const fsb_student_ctx *ctx)
{
    return ctx->teacher;
}

const fsb_model *fsb_student_ctx_student(const fsb_student_ctx *ctx)
{
    return ctx->student;
}

const float *fsb_student_ctx_bank(const fsb_student_ctx *ctx, int *rows)
{
    *rows = ctx->bank_rows;
    return ctx->bank_emb;
}

/* ---- one episode -------------------------------------------------------------------------- */

/* Whether bank row r (of A views per image) is a clean view: the test transform. */
static int clean_row(const fsb_student_opts *o, int A, int r)
{
    return A == 1 || (o->clean_view && r % A == 0);
}

/* Fill the bank: view v of support position i is row i*A+v, pixels from the train transform
 * (crop_lo, jitter) with rng (aug_key, row); CLEAN rows - every row when A == 1, v == 0 with
 * clean_view - take the test transform. Stores the stage-s0 input of every row and, when
 * with_emb, the teacher's eval-mode embedding of the same pixels. With a frozen backbone and
 * support_feat given, clean rows are those embeddings (the same bits) and only the augmented
 * rows of a chunk go through the teacher, compacted to the chunk's front, then spread out. */
static int build_bank(fsb_student_ctx *c, const fsb_student_opts *o, const int *support_img,
                      const int *labels, int n_s, int A, uint64_t aug_key, int with_emb,
                      const float *support_feat)
{
    const fsb_cache *ca = c->cache;
    int nb = n_s * A, sz = ca->size, st = FSB_OK;
    int given = support_feat && c->s0 == FSB_MODEL_BLOCKS;
    fsb_transform tf = c->tf;
    tf.scale_lo = o->crop_lo;
    tf.brightness = tf.contrast = tf.saturation = o->jitter;
    if (with_emb) c->bank_rows = nb;
    size_t img_bytes = (size_t)sz * sz * ca->channels, row = sizeof(float) * (size_t)c->act;
    for (int r0 = 0; r0 < nb && !st; r0 += IMG_CHUNK) {
        int n = nb - r0 < IMG_CHUNK ? nb - r0 : IMG_CHUNK, m = 0; /* m: rows to compute */
        float *dst = c->s0 == 0 ? c->bank + (size_t)r0 * c->act : c->img;
        for (int b = 0; b < n && !st; b++) {
            int r = r0 + b, i = r / A, idx = support_img[i];
            int clean = clean_row(o, A, r);
            c->bank_lab[r] = labels[i];
            if (clean && given) continue;
            if (idx < 0 || idx >= ca->split.n_images)
                return fsb_error(FSB_EINVAL, "student: support image %d out of range", idx);
            const uint8_t *px = ca->px + (size_t)idx * img_bytes;
            char name[48];
            snprintf(name, sizeof name, "image %d", idx);
            float *out = dst + (size_t)m++ * c->img_sz;
            if (clean) {
                st = fsb_transform_test(out, px, sz, sz, ca->channels, &c->tf, name);
            } else {
                fsb_rng vr;
                fsb_rng_init(&vr, aug_key, (uint64_t)r);
                st = fsb_transform_train(out, px, sz, sz, ca->channels, &tf, &vr, name);
            }
        }
        if (st) break;
        float *acts = c->bank + (size_t)r0 * c->act;
        if (c->s0 > 0 && m > 0) st = fsb_model_forward_to(c->teacher, dst, m, c->s0, acts);
        if (st) break;
        if (given) /* from the back: no computed row is overwritten before it moves */
            for (int b = n - 1; b >= 0; b--) {
                int r = r0 + b;
                if (clean_row(o, A, r))
                    memcpy(acts + (size_t)b * c->act, support_feat + (size_t)(r / A) * c->D, row);
                else
                    memmove(acts + (size_t)b * c->act, acts + (size_t)--m * c->act, row);
            }
        if (with_emb) {
            if (c->s0 == FSB_MODEL_BLOCKS) {
                memcpy(c->bank_emb + (size_t)r0 * c->D, acts, sizeof(float) * n * (size_t)c->D);
            } else {
                const float *e;
                st = fsb_model_forward_from(c->teacher, c->s0, acts, n, 0, NULL, &e, NULL);
                if (!st)
                    memcpy(c->bank_emb + (size_t)r0 * c->D, e, sizeof(float) * n * (size_t)c->D);
            }
        }
    }
    return st;
}

/* Bank rows of step `step`: per class, pc support images in the class's rotation, vs views
 * each; an image's views advance with each pass over its class. Returns the row count. */
static int make_batch(fsb_student_ctx *c, int way, int shot, int A, int pc, int vs, int step)
{
    int n = 0;
    for (int k = 0; k < way; k++)
        for (int j = 0; j < pc; j++) {
            long t = (long)step * pc + j;
            int pos = c->cls[k * shot + (int)(t % shot)];
            long pass = t / shot;
            for (int u = 0; u < vs; u++) {
                c->rows[n] = pos * A + (int)((pass * vs + u) % A);
                c->lab[n] = k;
                n++;
            }
        }
    assert(n <= c->max_batch);
    return n;
}

/* Copy the step's stage-s0 inputs (and teacher embeddings when with_emb) out of the bank. */
static void gather(fsb_student_ctx *c, int n, int with_emb)
{
    for (int b = 0; b < n; b++) {
        int r = c->rows[b];
        memcpy(c->in + (size_t)b * c->act, c->bank + (size_t)r * c->act,
               sizeof(float) * (size_t)c->act);
        if (with_emb)
            memcpy(c->temb + (size_t)b * c->D, c->bank_emb + (size_t)r * c->D,
                   sizeof(float) * (size_t)c->D);
    }
}

/* An optimiser over student parameters [from, to). */
static int sgd_over(fsb_optim *opt, fsb_param_group *g, fsb_student_ctx *c,
                    const fsb_student_opts *o, long from, long to, float lr)
{
    long np;
    float *p = fsb_model_params(c->student, &np), *gr = fsb_model_grads(c->student, &np);
    assert(to <= np && to <= c->mom_cap && from < to);
    memset(g, 0, sizeof *g);
    g->params = p + from;
    g->grads = gr + from;
    g->momentum = c->momentum;
    g->count = (size_t)(to - from);
    g->lr_mult = 1.0f;
    g->weight_decay = o->weight_decay;
    return fsb_sgd_init(opt, g, 1, lr, o->momentum, 0.0f, o->nesterov);
}

static float step_lr(const fsb_student_opts *o, float lr, int step, int steps)
{
    if (o->sched == FSB_SCHED_COSINE)
        return (float)(lr * 0.5 * (1.0 + cos(3.14159265358979323846 * step / steps)));
    return lr;
}

/* One episode in progress: its inputs and what its stages share. */
typedef struct episode_run {
    fsb_student_ctx *c;                 /* the worker's context */
    const fsb_student_opts *o;          /* the episode's options */
    const fsb_student_episode_view *ep; /* the episode */
    fsb_rng *rng;                       /* the episode's generator */
    int refilled;                       /* 1: REFILLED, 0: finetune */
    int A;                              /* bank views per support image */
    long off;                           /* first trainable parameter of the student */
    long head;                          /* first parameter of the head */
    long np;                            /* the student's parameter count */
    fsb_student_stats s;                /* what the episode did */
} episode_run;

/* The options and the episode's shape against the ctx. */
static int episode_check(const fsb_student_ctx *c, const fsb_student_opts *opts,
                         const fsb_student_episode_view *ep)
{
    int st = fsb_student_opts_check(opts, "student options");
    if (st) return st;
    if (!ctx_compatible(c, opts))
        return fsb_error(FSB_EINVAL, "student: options differ from the context's in batch, "
                                     "augment, bank, bank_max, views, adapt or prefix");
    if (ep->way < 1 || ep->way > c->max_way || ep->shot < 1 || ep->shot > c->max_shot ||
        ep->n_query < 1 || ep->n_query > c->max_way * c->max_query)
        return fsb_error(FSB_EINVAL,
                         "student: episode way %d shot %d queries %d exceeds the context "
                         "(%d-way, %d-shot, %d queries per class)",
                         ep->way, ep->shot, ep->n_query, c->max_way, c->max_shot, c->max_query);
    return FSB_OK;
}

/* c->cls: the support positions of every class, each class in a random rotation drawn from
 * rng; refuses labels that are not way x shot-shot. */
static int support_rotation(fsb_student_ctx *c, const fsb_student_episode_view *ep, fsb_rng *rng)
{
    const int way = ep->way, shot = ep->shot, n_s = way * shot;
    for (int k = 0; k < way; k++)
        c->count[k] = 0;
    for (int i = 0; i < n_s; i++) {
        int y = ep->support_labels[i];
        if (y < 0 || y >= way || c->count[y] >= shot)
            return fsb_error(FSB_EINVAL, "student: support labels are not %d x %d-shot", way, shot);
        c->cls[y * shot + c->count[y]++] = i;
    }
    for (int k = 0; k < way; k++)
        for (int i = shot - 1; i > 0; i--) {
            int j = (int)fsb_rng_below(rng, (uint32_t)(i + 1));
            int t = c->cls[k * shot + i];
            c->cls[k * shot + i] = c->cls[k * shot + j];
            c->cls[k * shot + j] = t;
        }
    return FSB_OK;
}

/* The student = the teacher + a fresh head (rng), the augmentation key (rng), the class
 * rotations (rng), the bank; then a zero head if asked (the rng was drawn all the same). */
static int episode_start(episode_run *r, double t0)
{
    fsb_student_ctx *c = r->c;
    const fsb_student_episode_view *ep = r->ep;
    fsb_model *S = c->student;
    int st;
    fsb_arena_reset(&c->arena);
    if ((st = fsb_model_copy_weights(S, c->teacher, 0)) ||
        (st = fsb_model_reset_head(S, ep->way, r->rng)))
        return st;
    uint64_t aug_key = fsb_rng_u64(r->rng);
    if ((st = support_rotation(c, ep, r->rng))) return st;
    int n_s = ep->way * ep->shot;
    r->A = bank_views(r->o, n_s);
    if ((st = build_bank(c, r->o, ep->support_img, ep->support_labels, n_s, r->A, aug_key,
                         r->refilled, ep->support_feat)))
        return st;
    r->s.bank_views = r->A;
    r->s.bank_ms = (fsb_now() - t0) * 1e3;
    float *params = fsb_model_params(S, &r->np);
    r->off = fsb_model_trainable_offset(S);
    r->head = r->np - ((long)ep->way * c->D + ep->way);
    if (r->o->head_init == FSB_HEAD_ZERO)
        memset(params + r->head, 0, sizeof(float) * (size_t)(r->np - r->head));
    return FSB_OK;
}

/* Stage 1 (refilled, a trainable backbone, positives available): triplet relationship
 * matching on the embedding, backbone parameters only. */
static int stage1(episode_run *r)
{
    fsb_student_ctx *c = r->c;
    const fsb_student_opts *opts = r->o;
    const int way = r->ep->way, shot = r->ep->shot, D = c->D;
    int vs1 = stage1_views(opts, way, shot);
    if (!(r->refilled && opts->stage1_steps > 0 && r->off < r->head && vs1 > 0)) return FSB_OK;
    fsb_model *S = c->student;
    fsb_student_stats *s = &r->s;
    s->stage1_ran = 1;
    fsb_refilled_stage1_opts o1 = {opts->tau1, opts->w1, opts->margin, opts->miner};
    fsb_optim opt;
    fsb_param_group g;
    int st = sgd_over(&opt, &g, c, opts, r->off, r->head, opts->lr1);
    if (st) return st;
    int pc = per_class(opts, way, shot, vs1, shot > 1 ? 2 : 1);
    double trip = 0;
    for (int step = 0; step < opts->stage1_steps; step++) {
        int n = make_batch(c, way, shot, r->A, pc, vs1, step);
        gather(c, n, 1);
        const float *emb;
        if ((st = fsb_model_forward_from(S, c->s0, c->in, n, 1, r->rng, &emb, NULL))) return st;
        memset(c->demb, 0, sizeof(float) * (size_t)n * D);
        fsb_refilled_stage1_result r1;
        if ((st = fsb_refilled_stage1(&r1, c->demb, emb, c->temb, c->lab, NULL, n, D, D, &o1,
                                      &c->arena)))
            return fsb_error_wrap(st, "refilled stage 1, step %d", step);
        if (!isfinite(r1.loss))
            return fsb_error(FSB_EINVAL, "refilled stage 1, step %d: loss is not finite", step);
        trip += (double)r1.n_triplets;
        if (step == 0) s->stage1_loss_first = r1.loss;
        s->stage1_loss_last = r1.loss;
        if (!r1.stepped) {
            s->stage1_empty++;
            continue; /* no triplet: no step (momentum and decay must not move weights) */
        }
        fsb_model_zero_grad(S);
        fsb_model_backward(S, NULL, c->demb, NULL);
        opt.lr = step_lr(opts, opts->lr1, step, opts->stage1_steps);
        fsb_optim_step(&opt);
        s->stage1_steps++;
    }
    s->stage1_triplets = trip / opts->stage1_steps;
    return FSB_OK;
}

/* Stage 2 (refilled: CE + lambda KL to the teacher's NCM classifier) / finetune (CE), over
 * the trainable backbone and the head. */
static int stage2(episode_run *r)
{
    fsb_student_ctx *c = r->c;
    const fsb_student_opts *opts = r->o;
    const int way = r->ep->way, shot = r->ep->shot, D = c->D, refilled = r->refilled;
    if (opts->stage2_steps <= 0) return FSB_OK;
    fsb_model *S = c->student;
    fsb_student_stats *s = &r->s;
    int st;
    const float *centres = NULL;
    if (refilled && !opts->centres_batch) {
        if ((st = fsb_refilled_ncm_centres(c->centres, c->count, c->bank_emb, c->bank_lab,
                                           way * shot * r->A, D, way)))
            return st;
        centres = c->centres;
    }
    fsb_refilled_stage2_opts o2 = {opts->tau2, opts->lambda, 0};
    fsb_optim opt;
    fsb_param_group g;
    if ((st = sgd_over(&opt, &g, c, opts, r->off, r->np, opts->lr2))) return st;
    int pc = per_class(opts, way, shot, 1, 1);
    for (int step = 0; step < opts->stage2_steps; step++) {
        int n = make_batch(c, way, shot, r->A, pc, 1, step);
        gather(c, n, refilled);
        const float *logits;
        if ((st = fsb_model_forward_from(S, c->s0, c->in, n, 1, r->rng, NULL, &logits))) return st;
        memset(c->dlog, 0, sizeof(float) * (size_t)n * way);
        double loss;
        if (refilled) {
            fsb_refilled_stage2_result r2;
            if ((st = fsb_refilled_stage2(&r2, c->dlog, logits, c->temb, centres, c->lab, n, D, way,
                                          &o2, &c->arena)))
                return fsb_error_wrap(st, "refilled stage 2, step %d", step);
            loss = r2.loss;
        } else {
            loss = fsb_softmax_xent(NULL, c->dlog, logits, c->lab, n, way, 1.0f);
        }
        if (!isfinite(loss))
            return fsb_error(FSB_EINVAL, "%s, step %d: loss is not finite (lower lr2?)",
                             refilled ? "refilled stage 2" : "finetune", step);
        if (step == 0) s->loss_first = loss;
        s->loss_last = loss;
        fsb_model_zero_grad(S);
        fsb_model_backward(S, c->dlog, NULL, NULL);
        opt.lr = step_lr(opts, opts->lr2, step, opts->stage2_steps);
        fsb_optim_step(&opt);
        s->stage2_steps++;
    }
    return FSB_OK;
}

/* pred[n_query]: test transform, eval forward, argmax (ties to the lowest class); with a
 * frozen backbone and the queries' embeddings given, only the head runs. */
static int predict(fsb_student_ctx *c, const fsb_student_episode_view *ep, int *pred)
{
    const fsb_cache *ca = c->cache;
    const int way = ep->way, n_query = ep->n_query;
    const int *query_img = ep->query_img;
    int chunk = c->max_batch < IMG_CHUNK ? c->max_batch : IMG_CHUNK, st;
    int head_only = ep->query_feat && c->s0 == FSB_MODEL_BLOCKS;
    for (int q0 = 0; q0 < n_query; q0 += chunk) {
        int n = n_query - q0 < chunk ? n_query - q0 : chunk;
        const float *logits;
        if (head_only) {
            st = fsb_model_forward_from(c->student, FSB_MODEL_BLOCKS,
                                        ep->query_feat + (size_t)q0 * c->D, n, 0, NULL, NULL,
                                        &logits);
            if (st) return st;
        } else {
            for (int b = 0; b < n; b++)
                if (query_img[q0 + b] < 0 || query_img[q0 + b] >= ca->split.n_images)
                    return fsb_error(FSB_EINVAL, "student: query image %d out of range",
                                     query_img[q0 + b]);
            if ((st = fsb_transform_test_batch(c->img, ca->px, ca->size, ca->size, ca->channels,
                                               query_img + q0, n, &c->tf, NULL)))
                return st;
            if ((st = fsb_model_forward(c->student, c->img, n, 0, NULL, NULL, &logits))) return st;
        }
        for (int b = 0; b < n; b++) {
            const float *l = logits + (size_t)b * way;
            int best = 0;
            for (int k = 1; k < way; k++)
                if (l[k] > l[best]) best = k;
            pred[q0 + b] = best;
        }
    }
    return FSB_OK;
}

int fsb_student_episode(fsb_student_ctx *c, const fsb_student_opts *opts, fsb_student_method method,
                        const fsb_student_episode_view *ep, fsb_rng *rng, int *pred,
                        fsb_student_stats *stats)
{
    int st = episode_check(c, opts, ep);
    if (st) return st;
    episode_run r = {
        .c = c, .o = opts, .ep = ep, .rng = rng, .refilled = method == FSB_STUDENT_REFILLED};
    double t0 = fsb_now();
    if ((st = episode_start(&r, t0)) || (st = stage1(&r)) || (st = stage2(&r))) return st;
    double t1 = fsb_now();
    r.s.fit_ms = (t1 - t0) * 1e3;
    if ((st = predict(c, ep, pred))) return st;
    r.s.predict_ms = (fsb_now() - t1) * 1e3;
    if (stats) *stats = r.s;
    return FSB_OK;
}
