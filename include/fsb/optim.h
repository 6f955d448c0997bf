/* optim.h - the optimisers of torch.optim in float32: SGD with momentum / Nesterov / weight
 * decay, Adam and AdamW; parameter groups, learning-rate schedules, and optimiser state saved
 * in a tensorfile for resume.
 *
 * Per element of a non-frozen group, with lr = opt->lr * group->lr_mult:
 * SGD (torch.optim.SGD):
 *   g = grad + wd * p;  buf = g on the group's first step, else momentum*buf + (1-dampening)*g;
 *   g = nesterov ? g + momentum*buf : buf  (when momentum != 0);  p -= lr * g
 * Adam / AdamW (torch.optim.Adam / AdamW, 1.13 single-tensor path, amsgrad off), t = the
 * group's own step count after this step (a frozen group does not count):
 *   AdamW: p = p * (1 - lr*wd);   Adam: g = grad + wd * p  (AdamW: g = grad)
 *   m = beta1*m + (1-beta1)*g;  v = beta2*v + ((1-beta2)*g)*g
 *   bc1 = 1 - beta1^t, bc2 = 1 - beta2^t (double);  denom = sqrt(v) / (float)sqrt(bc2) + eps
 *   p = p + (float)(-lr/bc1) * (m / denom)
 *   (eps is added after the bias correction of sqrt(v), as torch does.)
 * All arithmetic is float32 in that order (the double scalars are rounded once, as torch
 * rounds a Python float to the tensor's dtype), so results match PyTorch to ~1 ulp.
 */
#ifndef FSB_OPTIM_H
#define FSB_OPTIM_H

#include "fsb/tensorfile.h"

#include <stddef.h>
#include <stdint.h>

typedef struct fsb_param_group {
    float *params;      /* [count] parameters, updated in place (not owned) */
    const float *grads; /* [count] dL/dparams for this step (not owned) */
    float *momentum;    /* [count] SGD: momentum buffer, may be NULL if momentum is 0;
                           Adam: first moment (exp_avg), required (not owned) */
    float *second;      /* [count] Adam: second moment (exp_avg_sq), required; SGD: unused */
    size_t count;       /* number of elements */
    float lr_mult;      /* this group's lr = scheduled lr * lr_mult (1 = the base lr) */
    float weight_decay; /* SGD, Adam: L2 coefficient added to the gradient; AdamW: decoupled */
    int frozen;         /* 1: skipped entirely, like a torch parameter whose grad is None */
    int has_buf;        /* state: the buffers hold a value; 0 before the group's first step */
    int64_t steps;      /* state: updates applied to this group (Adam's bias correction) */
} fsb_param_group;

/* Which update rule (see the top of this file). */
typedef enum { FSB_OPT_SGD = 0, FSB_OPT_ADAM = 1, FSB_OPT_ADAMW = 2 } fsb_opt_kind;

typedef struct fsb_optim {
    fsb_opt_kind kind;        /* update rule */
    float lr;                 /* current base learning rate (set it from a schedule each epoch) */
    float momentum;           /* SGD: momentum factor (0 = plain SGD) */
    float dampening;          /* SGD: torch dampening (0 normally; must be 0 with nesterov) */
    int nesterov;             /* SGD: 1 = Nesterov momentum */
    double beta1, beta2, eps; /* Adam / AdamW: torch's betas and eps (Python floats) */
    fsb_param_group *groups;  /* the caller's groups (not owned; must outlive the optimiser) */
    int n_groups;             /* number of groups */
    int64_t step;             /* completed fsb_optim_step calls */
} fsb_optim;

/* The name of a kind ("sgd", "adam", "adamw") and its inverse (-1: unknown name). */
const char *fsb_opt_kind_name(fsb_opt_kind kind);
int fsb_opt_kind_parse(const char *name);

/* Set up an optimiser over the caller's `groups` (their has_buf flags are cleared). Fails
 * with FSB_EINVAL (message names the problem) on lr < 0, momentum < 0, nesterov with
 * momentum 0 or dampening != 0 (as torch), a group with momentum != 0 but no buffer, or a
 * negative lr_mult / weight decay. No allocation; nothing to free. */
int fsb_sgd_init(fsb_optim *opt, fsb_param_group *groups, int n_groups, float lr, float momentum,
                 float dampening, int nesterov);

/* Set up Adam (decoupled = 0) or AdamW (decoupled = 1) over the caller's `groups` (their
 * has_buf and steps are cleared). Fails with FSB_EINVAL on lr < 0, betas outside [0, 1),
 * eps < 0, a negative lr_mult / weight decay, or a group without both moment buffers. */
int fsb_adam_init(fsb_optim *opt, fsb_param_group *groups, int n_groups, float lr, double beta1,
                  double beta2, double eps, int decoupled);

/* One update of every non-frozen group from its grads (see the top of this file). */
void fsb_optim_step(fsb_optim *opt);

/* Add the optimiser state to tf under `prefix` (e.g. "optim"): "<prefix>.step" (int64
 * scalar), "<prefix>.n_groups" (int64 scalar) and per group g "<prefix>.group<g>.has_buf"
 * (int64 scalar) and, when it has a buffer: SGD "<prefix>.group<g>.momentum_buffer";
 * Adam / AdamW "<prefix>.group<g>.exp_avg", ".exp_avg_sq" (float32 [count]) and ".steps"
 * (int64 scalar). Hyper-parameters are not state (the caller re-creates them). */
int fsb_optim_state_save(const fsb_optim *opt, fsb_tensorfile *tf, const char *prefix);

/* Restore what fsb_optim_state_save stored into an optimiser of the same kind initialised
 * over groups of the same layout. A missing tensor (e.g. an SGD state given to Adam), another
 * number of groups or another group size is an error naming the file label `what`; on error
 * opt is unchanged. */
int fsb_optim_state_load(fsb_optim *opt, const fsb_tensorfile *tf, const char *what,
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
