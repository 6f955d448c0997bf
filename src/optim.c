/* optim.c - torch.optim.SGD, Adam and AdamW in float32, learning-rate schedules and
 * resumable optimiser state (see include/fsb/optim.h). The update order and rounding follow
 * PyTorch's single-tensor implementations so that fixtures from tools/torch_fixtures.py
 * match to ~1 ulp.
 */
#include "fsb/optim.h"
#include "fsb/status.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FSB_PI 3.14159265358979323846

static const char *const KIND_NAMES[] = {"sgd", "adam", "adamw"}; /* by fsb_opt_kind */

const char *fsb_opt_kind_name(fsb_opt_kind kind)
{
    return kind >= FSB_OPT_SGD && kind <= FSB_OPT_ADAMW ? KIND_NAMES[kind] : "?";
}

int fsb_opt_kind_parse(const char *name)
{
    for (int k = FSB_OPT_SGD; k <= FSB_OPT_ADAMW; k++)
        if (strcmp(name, fsb_opt_kind_name((fsb_opt_kind)k)) == 0) return k;
    return -1;
}

/* Checks shared by every kind; `need_second` and `need_first` say which buffers a group with
 * elements must have. */
static int check_groups(const char *who, const fsb_param_group *groups, int n_groups,
                        int need_first, int need_second)
{
    if (n_groups < 0 || (n_groups > 0 && !groups))
        return fsb_error(FSB_EINVAL, "%s: bad parameter groups", who);
    for (int g = 0; g < n_groups; g++) {
        const fsb_param_group *pg = &groups[g];
        if (!(pg->lr_mult >= 0) || !(pg->weight_decay >= 0))
            return fsb_error(FSB_EINVAL,
                             "%s: group %d: lr multiplier %g and weight decay %g must be >= 0", who,
                             g, pg->lr_mult, pg->weight_decay);
        if (pg->count &&
            (!pg->params || (need_first && !pg->momentum) || (need_second && !pg->second)))
            return fsb_error(FSB_EINVAL, "%s: group %d: missing params or %s buffer", who, g,
                             need_second ? "moment" : "momentum");
    }
    return FSB_OK;
}

static void attach(fsb_optim *opt, fsb_param_group *groups, int n_groups, float lr)
{
    for (int g = 0; g < n_groups; g++)
        groups[g].has_buf = 0, groups[g].steps = 0;
    opt->lr = lr;
    opt->groups = groups;
    opt->n_groups = n_groups;
}

int fsb_adam_init(fsb_optim *opt, fsb_param_group *groups, int n_groups, float lr, double beta1,
                  double beta2, double eps, int decoupled)
{
    const char *who = decoupled ? "adamw" : "adam";
    memset(opt, 0, sizeof *opt);
    if (!(lr >= 0)) return fsb_error(FSB_EINVAL, "%s: learning rate %g must be >= 0", who, lr);
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
        return fsb_error(FSB_EINVAL, "%s: betas (%g, %g) must be in [0, 1)", who, beta1, beta2);
    if (!(eps >= 0)) return fsb_error(FSB_EINVAL, "%s: eps %g must be >= 0", who, eps);
    int st = check_groups(who, groups, n_groups, 1, 1);
    if (st) return st;
    opt->kind = decoupled ? FSB_OPT_ADAMW : FSB_OPT_ADAM;
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    attach(opt, groups, n_groups, lr);
    return FSB_OK;
}

int fsb_sgd_init(fsb_optim *opt, fsb_param_group *groups, int n_groups, float lr, float momentum,
                 float dampening, int nesterov)
{
    memset(opt, 0, sizeof *opt);
    if (!(lr >= 0)) return fsb_error(FSB_EINVAL, "sgd: learning rate %g must be >= 0", lr);
    if (!(momentum >= 0)) return fsb_error(FSB_EINVAL, "sgd: momentum %g must be >= 0", momentum);
    if (nesterov && (momentum <= 0 || dampening != 0))
        return fsb_error(FSB_EINVAL, "sgd: nesterov momentum requires momentum > 0 and zero "
                                     "dampening");
    int st = check_groups("sgd", groups, n_groups, momentum != 0, 0);
    if (st) return st;
    opt->kind = FSB_OPT_SGD;
    opt->momentum = momentum;
    opt->dampening = dampening;
    opt->nesterov = nesterov;
    attach(opt, groups, n_groups, lr);
    return FSB_OK;
}

/* One group, torch.optim.SGD._single_tensor_sgd per element. */
static void step_group_sgd(const fsb_optim *opt, fsb_param_group *pg)
{
    const float lr = opt->lr * pg->lr_mult, wd = pg->weight_decay, mom = opt->momentum;
    const float damp1 = 1.0f - opt->dampening;
    float *p = pg->params, *buf = pg->momentum;
    const float *grad = pg->grads;
    assert(grad || pg->count == 0);
    for (size_t i = 0; i < pg->count; i++) {
        float g = grad[i];
        if (wd != 0) g = g + wd * p[i];
        if (mom != 0) {
            float b = pg->has_buf ? mom * buf[i] + damp1 * g : g;
            buf[i] = b;
            g = opt->nesterov ? g + mom * b : b;
        }
        p[i] = p[i] - lr * g;
    }
    if (mom != 0) pg->has_buf = 1;
}

/* One group, torch.optim.Adam/AdamW._single_tensor_adam(w) per element (amsgrad off). The
 * double scalars are rounded to float once, as torch rounds a Python float scalar. */
static void step_group_adam(const fsb_optim *opt, fsb_param_group *pg)
{
    const double lr = (double)opt->lr * pg->lr_mult, b1 = opt->beta1, b2 = opt->beta2;
    const int64_t t = ++pg->steps;
    const double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    const float fb1 = (float)b1, fb2 = (float)b2, a1 = (float)(1.0 - b1), a2 = (float)(1.0 - b2);
    const float bc2_sqrt = (float)sqrt(bc2), eps = (float)opt->eps;
    const float neg_step = (float)(-(lr / bc1));
    const float wd = pg->weight_decay, decay = (float)(1.0 - lr * pg->weight_decay);
    const int decoupled = opt->kind == FSB_OPT_ADAMW;
    float *p = pg->params, *m = pg->momentum, *v = pg->second;
    const float *grad = pg->grads;
    assert(grad || pg->count == 0);
    if (!pg->has_buf && pg->count) {
        memset(m, 0, pg->count * sizeof *m);
        memset(v, 0, pg->count * sizeof *v);
    }
    for (size_t i = 0; i < pg->count; i++) {
        float g = grad[i];
        if (decoupled) {
            if (wd != 0) p[i] = p[i] * decay;
        } else if (wd != 0) {
            g = g + wd * p[i];
        }
        m[i] = m[i] * fb1 + a1 * g;
        v[i] = v[i] * fb2 + a2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] + neg_step * (m[i] / denom);
    }
    pg->has_buf = 1;
}

void fsb_optim_step(fsb_optim *opt)
{
    for (int g = 0; g < opt->n_groups; g++) {
        fsb_param_group *pg = &opt->groups[g];
        if (pg->frozen) continue;
        if (opt->kind == FSB_OPT_SGD)
            step_group_sgd(opt, pg);
        else
            step_group_adam(opt, pg);
    }
    opt->step++;
}

/* ---- state ----------------------------------------------------------------------------- */

static void state_name(char *buf, size_t size, const char *prefix, int g, const char *what)
{
    if (g < 0)
        snprintf(buf, size, "%s.%s", prefix, what);
    else
        snprintf(buf, size, "%s.group%d.%s", prefix, g, what);
}

/* The per-group buffers of a kind: their state names and where they live. */
static int group_buffers(const fsb_optim *opt, fsb_param_group *pg, const char *names[2],
                         float *bufs[2])
{
    if (opt->kind == FSB_OPT_SGD) {
        names[0] = "momentum_buffer", bufs[0] = pg->momentum;
        return 1;
    }
    names[0] = "exp_avg", bufs[0] = pg->momentum;
    names[1] = "exp_avg_sq", bufs[1] = pg->second;
    return 2;
}

int fsb_optim_state_save(const fsb_optim *opt, fsb_tensorfile *tf, const char *prefix)
{
    char name[512];
    int64_t v = opt->step;
    state_name(name, sizeof name, prefix, -1, "step");
    int st = fsb_tensorfile_add(tf, name, FSB_I64, 0, NULL, &v);
    v = opt->n_groups;
    state_name(name, sizeof name, prefix, -1, "n_groups");
    if (!st) st = fsb_tensorfile_add(tf, name, FSB_I64, 0, NULL, &v);
    for (int g = 0; g < opt->n_groups && !st; g++) {
        fsb_param_group *pg = &opt->groups[g];
        v = pg->has_buf;
        state_name(name, sizeof name, prefix, g, "has_buf");
        st = fsb_tensorfile_add(tf, name, FSB_I64, 0, NULL, &v);
        if (st || !pg->has_buf) continue;
        const char *names[2];
        float *bufs[2];
        int nb = group_buffers(opt, pg, names, bufs);
        for (int b = 0; b < nb && !st; b++) {
            int64_t dims[1] = {(int64_t)pg->count};
            state_name(name, sizeof name, prefix, g, names[b]);
            st = fsb_tensorfile_add(tf, name, FSB_F32, 1, dims, bufs[b]);
        }
        if (!st && opt->kind != FSB_OPT_SGD) {
            state_name(name, sizeof name, prefix, g, "steps");
            st = fsb_tensorfile_add(tf, name, FSB_I64, 0, NULL, &pg->steps);
        }
    }
    if (st) return fsb_error_wrap(st, "saving optimiser state '%s'", prefix);
    return FSB_OK;
}

int fsb_optim_state_load(fsb_optim *opt, const fsb_tensorfile *tf, const char *what,
                         const char *prefix)
{
    char name[512];
    const int64_t *step, *n, *has, *steps = NULL;
    state_name(name, sizeof name, prefix, -1, "step");
    int st = fsb_tensorfile_get_i64(tf, what, name, 1, &step);
    state_name(name, sizeof name, prefix, -1, "n_groups");
    if (!st) st = fsb_tensorfile_get_i64(tf, what, name, 1, &n);
    if (st) return st;
    if (*n != opt->n_groups)
        return fsb_error(FSB_EMISMATCH,
                         "%s: optimiser state '%s' has %lld parameter groups, "
                         "this model has %d",
                         what, prefix, (long long)*n, opt->n_groups);
    /* validate everything first so that a failure leaves opt unchanged */
    for (int pass = 0; pass < 2; pass++) {
        for (int g = 0; g < opt->n_groups; g++) {
            fsb_param_group *pg = &opt->groups[g];
            state_name(name, sizeof name, prefix, g, "has_buf");
            st = fsb_tensorfile_get_i64(tf, what, name, 1, &has);
            if (st) return st;
            const char *names[2];
            float *bufs[2];
            const float *saved[2] = {0};
            int nb = group_buffers(opt, pg, names, bufs);
            for (int b = 0; *has && b < nb; b++) {
                state_name(name, sizeof name, prefix, g, names[b]);
                st = fsb_tensorfile_get_f32(tf, what, name, pg->count, &saved[b]);
                if (st)
                    return fsb_error_wrap(st, "%s optimiser group %d", fsb_opt_kind_name(opt->kind),
                                          g);
                if (!bufs[b] && pg->count)
                    return fsb_error(FSB_EMISMATCH,
                                     "%s: optimiser state '%s' has a %s for group %d but the "
                                     "optimiser has none",
                                     what, prefix, names[b], g);
            }
            if (*has && opt->kind != FSB_OPT_SGD) {
                state_name(name, sizeof name, prefix, g, "steps");
                st = fsb_tensorfile_get_i64(tf, what, name, 1, &steps);
                if (st) return st;
                if (*steps < 1)
                    return fsb_error(FSB_EFORMAT, "%s: %s = %lld must be >= 1", what, name,
                                     (long long)*steps);
            }
            if (pass == 1) {
                pg->has_buf = *has != 0;
                pg->steps = *has && steps ? *steps : 0;
                for (int b = 0; *has && b < nb && pg->count; b++)
                    memcpy(bufs[b], saved[b], pg->count * sizeof(float));
            }
        }
    }
    opt->step = *step;
    return FSB_OK;
}

/* ---- schedules ------------------------------------------------------------------------- */

static double schedule_core(const fsb_lr_schedule *s, int e)
{
    switch (s->kind) {
    case FSB_LR_CONSTANT:
        return s->base_lr;
    case FSB_LR_STEP:
        assert(s->step_size > 0);
        return s->base_lr * pow(s->gamma, (double)(e / s->step_size));
    case FSB_LR_MULTISTEP: {
        int k = 0;
        while (k < s->n_milestones && s->milestones[k] <= e)
            k++;
        return s->base_lr * pow(s->gamma, (double)k);
    }
    case FSB_LR_COSINE: {
        int t = s->total_epochs - s->warmup_epochs;
        if (t <= 0 || e >= t) return s->min_lr;
        return s->min_lr + (s->base_lr - s->min_lr) * (1.0 + cos(FSB_PI * e / t)) / 2.0;
    }
    }
    assert(!"unknown lr schedule");
    return 0;
}

double fsb_lr_at(const fsb_lr_schedule *s, int epoch)
{
    assert(epoch >= 0);
    int w = s->warmup_epochs;
    if (w > 0 && epoch < w)
        return s->base_lr * (s->warmup_start + (1.0 - s->warmup_start) * epoch / w);
    return schedule_core(s, epoch - (w > 0 ? w : 0));
}

/* Parse a whole decimal int / a float from [p, end) into *out; 0 on success. */
static int parse_int(const char *p, const char *end, int *out)
{
    char buf[32];
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *e;
    errno = 0;
    long v = strtol(buf, &e, 10);
    if (*e || errno || v < 0 || v > 1000000000L) return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *p, const char *end, double *out)
{
    char buf[64];
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *e;
    errno = 0;
    double v = strtod(buf, &e);
    if (*e || errno || !isfinite(v) || v < 0) return -1;
    *out = v;
    return 0;
}

/* End of the field starting at p: the next ':' or the end of the string part [p, end). */
static const char *field_end(const char *p, const char *end)
{
    const char *c = memchr(p, ':', (size_t)(end - p));
    return c ? c : end;
}

int fsb_lr_schedule_parse(fsb_lr_schedule *s, const char *spec, double base_lr)
{
    memset(s, 0, sizeof *s);
    s->base_lr = base_lr;
    const char *plus = strchr(spec, '+');
    const char *end = plus ? plus : spec + strlen(spec);
    const char *f = field_end(spec, end);
    size_t kn = (size_t)(f - spec);
    const char *a = f < end ? f + 1 : NULL; /* first argument */
    const char *a_end = a ? field_end(a, end) : NULL;
    const char *b = a && a_end < end ? a_end + 1 : NULL; /* second argument */
    const char *b_end = b ? field_end(b, end) : NULL;
    if (b_end && b_end != end) goto bad;
    if (kn == 8 && !strncmp(spec, "constant", kn)) {
        s->kind = FSB_LR_CONSTANT;
        if (a) goto bad;
    } else if (kn == 4 && !strncmp(spec, "step", kn)) {
        s->kind = FSB_LR_STEP;
        if (!b || parse_int(a, a_end, &s->step_size) || s->step_size <= 0 ||
            parse_double(b, b_end, &s->gamma))
            goto bad;
    } else if (kn == 9 && !strncmp(spec, "multistep", kn)) {
        s->kind = FSB_LR_MULTISTEP;
        if (!b || parse_double(b, b_end, &s->gamma)) goto bad;
        for (const char *m = a; m < a_end;) {
            const char *c = memchr(m, ',', (size_t)(a_end - m));
            const char *me = c ? c : a_end;
            if (s->n_milestones == FSB_LR_MAX_MILESTONES ||
                parse_int(m, me, &s->milestones[s->n_milestones]) ||
                (s->n_milestones > 0 &&
                 s->milestones[s->n_milestones] <= s->milestones[s->n_milestones - 1]))
                goto bad;
            s->n_milestones++;
            m = c ? c + 1 : a_end;
            if (c && m == a_end) goto bad;
        }
        if (s->n_milestones == 0) goto bad;
    } else if (kn == 6 && !strncmp(spec, "cosine", kn)) {
        s->kind = FSB_LR_COSINE;
        if (!a || parse_int(a, a_end, &s->total_epochs) || s->total_epochs <= 0 ||
            (b && parse_double(b, b_end, &s->min_lr)))
            goto bad;
    } else {
        return fsb_error(FSB_EINVAL,
                         "lr schedule '%s': unknown kind '%.*s' (constant, step, multistep, "
                         "cosine)",
                         spec, (int)kn, spec);
    }
    if (plus) {
        const char *w = plus + 1, *wend = w + strlen(w);
        if (strncmp(w, "warmup=", 7) != 0)
            return fsb_error(FSB_EINVAL,
                             "lr schedule '%s': bad suffix '%s' (expected "
                             "+warmup=<epochs>[:<start factor>])",
                             spec, plus);
        w += 7;
        const char *we = field_end(w, wend);
        s->warmup_start = 0.1;
        if (parse_int(w, we, &s->warmup_epochs) || s->warmup_epochs <= 0 ||
            (we < wend && (parse_double(we + 1, wend, &s->warmup_start) || s->warmup_start > 1)))
            return fsb_error(FSB_EINVAL, "lr schedule '%s': bad warm-up '%s'", spec, plus);
        if (s->kind == FSB_LR_COSINE && s->warmup_epochs >= s->total_epochs)
            return fsb_error(FSB_EINVAL,
                             "lr schedule '%s': warm-up must be shorter than the %d epochs", spec,
                             s->total_epochs);
    }
    return FSB_OK;
bad:
    return fsb_error(FSB_EINVAL,
                     "lr schedule '%s': bad arguments (expected step:<k>:<gamma>, "
                     "multistep:<m1>,<m2>,..:<gamma>, cosine:<epochs>[:<min lr>] or constant)",
                     spec);
}
