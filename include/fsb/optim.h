/* optim.h - SGD with momentum / Nesterov / weight decay (exactly torch.optim.SGD), parameter
 * groups, learning-rate schedules, and optimiser state saved in a tensorfile for resume.
 *
 * Per element of a non-frozen group, with lr = opt->lr * group->lr_mult (torch.optim.SGD):
 *   g = grad + wd * p;  buf = g on the group's first step, else momentum*buf + (1-dampening)*g;
 *   g = nesterov ? g + momentum*buf : buf  (when momentum != 0);  p -= lr * g
 * All arithmetic is float32, in that order, so results match PyTorch's float32 SGD to ~1 ulp.
 */
#ifndef FSB_OPTIM_H
#define FSB_OPTIM_H

#include "fsb/tensorfile.h"

#include <stddef.h>
#include <stdint.h>

typedef struct fsb_param_group {
    float *params;      /* [count] parameters, updated in place (not owned) */
    const float *grads; /* [count] dL/dparams for this step (not owned) */
    float *momentum;    /* [count] momentum buffer (not owned); may be NULL if momentum is 0 */
    size_t count;       /* number of elements */
    float lr_mult;      /* this group's lr = scheduled lr * lr_mult (1 = the base lr) */
    float weight_decay; /* L2 coefficient added to the gradient (torch weight_decay) */
    int frozen;         /* 1: skipped entirely, like a torch parameter whose grad is None */
    int has_buf;        /* state: the momentum buffer holds a value; 0 before the first step */
} fsb_param_group;

typedef struct fsb_sgd {
    float lr;                /* current base learning rate (set it from a schedule each epoch) */
    float momentum;          /* momentum factor (0 = plain SGD) */
    float dampening;         /* torch dampening (0 normally; must be 0 with nesterov) */
    int nesterov;            /* 1: Nesterov momentum */
    fsb_param_group *groups; /* the caller's groups (not owned; must outlive the optimiser) */
    int n_groups;            /* number of groups */
    int64_t step;            /* completed fsb_sgd_step calls */
} fsb_sgd;

/* Set up an optimiser over the caller's `groups` (their has_buf flags are cleared). Fails
 * with FSB_EINVAL (message names the problem) on lr < 0, momentum < 0, nesterov with
 * momentum 0 or dampening != 0 (as torch), a group with momentum != 0 but no buffer, or a
 * negative lr_mult / weight decay. No allocation; nothing to free. */
int fsb_sgd_init(fsb_sgd *opt, fsb_param_group *groups, int n_groups, float lr, float momentum,
                 float dampening, int nesterov);

/* One update of every non-frozen group from its grads (see the top of this file). */
void fsb_sgd_step(fsb_sgd *opt);

/* Add the optimiser state to tf under `prefix` (e.g. "optim"): "<prefix>.step" (int64
 * scalar), "<prefix>.n_groups" (int64 scalar) and per group g "<prefix>.group<g>.has_buf"
 * (int64 scalar) and, when it has a buffer, "<prefix>.group<g>.momentum_buffer"
 * (float32 [count]). Hyper-parameters are not state (the caller re-creates them). */
int fsb_sgd_state_save(const fsb_sgd *opt, fsb_tensorfile *tf, const char *prefix);

/* Restore what fsb_sgd_state_save stored into an optimiser initialised over groups of the
 * same layout. A missing tensor, another number of groups or another group size is an
 * error naming the file label `what`; on error opt is unchanged. */
int fsb_sgd_state_load(fsb_sgd *opt, const fsb_tensorfile *tf, const char *what,
                       const char *prefix);

/* ---- learning-rate schedules (epochs count from 0; the value is for that whole epoch) -- */

typedef enum {
    FSB_LR_CONSTANT = 0, /* base_lr */
    FSB_LR_STEP,         /* base_lr * gamma^floor(e / step_size)          (torch StepLR) */
    FSB_LR_MULTISTEP,    /* base_lr * gamma^#{milestones m <= e}          (torch MultiStepLR) */
    FSB_LR_COSINE /* min_lr + (base_lr-min_lr)(1+cos(pi e/T))/2     (torch CosineAnnealingLR) */
} fsb_lr_kind;

#define FSB_LR_MAX_MILESTONES 16

typedef struct fsb_lr_schedule {
    fsb_lr_kind kind;                      /* which formula */
    double base_lr;                        /* the peak learning rate */
    double gamma;                          /* step / multistep decay factor */
    int step_size;                         /* step: decay every step_size epochs (> 0) */
    int n_milestones;                      /* multistep: number of milestones */
    int milestones[FSB_LR_MAX_MILESTONES]; /* multistep: increasing epochs */
    int total_epochs;    /* cosine: epochs of the whole run incl. warm-up (T = total - warmup) */
    double min_lr;       /* cosine: final learning rate (torch eta_min) */
    int warmup_epochs;   /* any kind: linear warm-up epochs before the schedule (0 = none) */
    double warmup_start; /* warm-up starts at base_lr * warmup_start (torch LinearLR
                            start_factor), reaching base_lr at epoch warmup_epochs */
} fsb_lr_schedule;

/* The learning rate for epoch e (>= 0). With warm-up W > 0:
 *   e < W: base_lr * (warmup_start + (1 - warmup_start) * e / W)   (torch LinearLR)
 *   else : the schedule evaluated at e - W                          (torch SequentialLR)
 * Cosine past its end stays at min_lr. */
double fsb_lr_at(const fsb_lr_schedule *s, int epoch);

/* Parse a schedule spec for base_lr (all fields set; unused ones zero):
 *   "constant" | "step:<k>:<gamma>" | "multistep:<m1>,<m2>,...:<gamma>" |
 *   "cosine:<total_epochs>[:<min_lr>]"
 * optionally followed by "+warmup=<W>[:<start factor>]" (start factor default 0.1), e.g.
 * "step:40:0.5", "multistep:60,80:0.1", "cosine:200:0+warmup=5:0.01". Errors are FSB_EINVAL
 * quoting the spec and the bad part. */
int fsb_lr_schedule_parse(fsb_lr_schedule *s, const char *spec, double base_lr);

#endif
