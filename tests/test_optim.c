/* test_optim.c - SGD against hand-computed steps (momentum first step, Nesterov, weight
 * decay, dampening), parameter groups (lr multipliers, frozen), lr schedules at known epochs
 * and their parser, state save/restore continuing bit-identically, and the PyTorch fixture
 * tests/fixtures/torch_sgd.fsbt (torch.optim.SGD and torch lr schedulers) to 1e-6. Adam and
 * AdamW: a hand-computed first step, bad settings, state save/restore continuing
 * bit-identically (and refused by an SGD optimiser), and tests/fixtures/torch_adam.fsbt
 * (torch.optim.Adam / AdamW over 25 steps, groups, weight decay, frozen groups) to 1e-6.
 */
#include "fsb/optim.h"
#include "fsb/status.h"
#include "fsb/tensorfile.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-6

static fsb_param_group group(float *p, const float *g, float *buf, size_t n, float mult, float wd)
{
    fsb_param_group pg = {
        .params = p, .grads = g, .momentum = buf, .count = n, .lr_mult = mult, .weight_decay = wd};
    return pg;
}

START_TEST(hand_computed_nesterov_with_weight_decay)
{
    float p[2] = {1, -2}, g[2] = {0.5f, 0.25f}, buf[2] = {99, 99};
    fsb_param_group pg = group(p, g, buf, 2, 1, 0.1f);
    fsb_optim opt;
    ck_assert_int_eq(fsb_sgd_init(&opt, &pg, 1, 0.1f, 0.9f, 0, 1), FSB_OK);
    /* step 1: g' = g + .1p = [.6, .05]; buf = g'; g'' = g' + .9 buf = [1.14, .095] */
    fsb_optim_step(&opt);
    ck_assert_double_eq_tol(buf[0], 0.6, EPS);
    ck_assert_double_eq_tol(buf[1], 0.05, EPS);
    ck_assert_double_eq_tol(p[0], 0.886, EPS);
    ck_assert_double_eq_tol(p[1], -2.0095, EPS);
    /* step 2: g' = [.5886, .04905]; buf = .9[.6,.05] + g' = [1.1286, .09405];
     * g'' = g' + .9 buf = [1.60434, .133695]; p -= .1 g'' */
    fsb_optim_step(&opt);
    ck_assert_double_eq_tol(buf[0], 1.1286, EPS);
    ck_assert_double_eq_tol(buf[1], 0.09405, EPS);
    ck_assert_double_eq_tol(p[0], 0.725566, EPS);
    ck_assert_double_eq_tol(p[1], -2.0228695, EPS);
    ck_assert_int_eq(opt.step, 2);
}
END_TEST

START_TEST(hand_computed_momentum_dampening_and_plain)
{
    /* dampening is not applied on the first step (torch: buf = g) */
    float p = 1, g = 1, buf = 0;
    fsb_param_group pg = group(&p, &g, &buf, 1, 1, 0);
    fsb_optim opt;
    ck_assert_int_eq(fsb_sgd_init(&opt, &pg, 1, 1.0f, 0.5f, 0.5f, 0), FSB_OK);
    fsb_optim_step(&opt); /* buf = 1, p = 0 */
    ck_assert_float_eq(buf, 1);
    ck_assert_float_eq(p, 0);
    fsb_optim_step(&opt); /* buf = .5 + .5 = 1, p = -1 */
    ck_assert_float_eq(buf, 1);
    ck_assert_float_eq(p, -1);
    g = 2;
    fsb_optim_step(&opt); /* buf = .5 + 1 = 1.5, p = -2.5 */
    ck_assert_float_eq(buf, 1.5f);
    ck_assert_float_eq(p, -2.5f);
    /* no momentum: p -= lr (g + wd p); no buffer needed */
    float q[2] = {2, -4}, gq[2] = {1, 0};
    fsb_param_group pq = group(q, gq, NULL, 2, 1, 0.5f);
    ck_assert_int_eq(fsb_sgd_init(&opt, &pq, 1, 0.1f, 0, 0, 0), FSB_OK);
    fsb_optim_step(&opt);
    ck_assert_double_eq_tol(q[0], 2 - 0.1 * (1 + 1), EPS);
    ck_assert_double_eq_tol(q[1], -4 - 0.1 * (0 - 2), EPS);
    ck_assert_int_eq(pq.has_buf, 0);
}
END_TEST

START_TEST(groups_multipliers_and_frozen)
{
    float a = 1, b = 1, c = 1, g = 1, ba = 0, bb = 0, bc = 0;
    fsb_param_group gs[3] = {group(&a, &g, &ba, 1, 1, 0), group(&b, &g, &bb, 1, 0.1f, 0),
                             group(&c, &g, &bc, 1, 1, 0)};
    gs[2].frozen = 1;
    fsb_optim opt;
    ck_assert_int_eq(fsb_sgd_init(&opt, gs, 3, 0.5f, 0.9f, 0, 0), FSB_OK);
    fsb_optim_step(&opt);
    ck_assert_double_eq_tol(a, 0.5, EPS);
    ck_assert_double_eq_tol(b, 0.95, EPS);
    ck_assert_float_eq(c, 1); /* frozen: untouched, no buffer */
    ck_assert_float_eq(bc, 0);
    ck_assert_int_eq(gs[2].has_buf, 0);
    /* unfrozen later: its first step initialises the buffer (buf = g), like torch */
    gs[2].frozen = 0;
    fsb_optim_step(&opt);
    ck_assert_double_eq_tol(c, 0.5, EPS);
    ck_assert_double_eq_tol(a, 0.5 - 0.5 * 1.9, EPS);
    /* the learning rate is read at each step (schedules set opt.lr) */
    opt.lr = 0;
    float before = a;
    fsb_optim_step(&opt);
    ck_assert_float_eq(a, before);
}
END_TEST

START_TEST(init_rejects_bad_settings)
{
    float p = 0, g = 0;
    fsb_param_group pg = group(&p, &g, NULL, 1, 1, 0);
    fsb_optim opt;
    ck_assert_int_eq(fsb_sgd_init(&opt, &pg, 1, 0.1f, 0.9f, 0, 0), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "group 0"));
    ck_assert_int_eq(fsb_sgd_init(&opt, &pg, 1, 0.1f, 0, 0, 1), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "nesterov"));
    ck_assert_int_eq(fsb_sgd_init(&opt, &pg, 1, -0.1f, 0, 0, 0), FSB_EINVAL);
    pg.lr_mult = -1;
    ck_assert_int_eq(fsb_sgd_init(&opt, &pg, 1, 0.1f, 0, 0, 0), FSB_EINVAL);
    ck_assert_int_eq(fsb_sgd_init(&opt, NULL, 0, 0.1f, 0, 0, 0), FSB_OK);
    fsb_optim_step(&opt);
}
END_TEST

START_TEST(schedules_at_known_epochs)
{
    fsb_lr_schedule s;
    ck_assert_int_eq(fsb_lr_schedule_parse(&s, "constant", 0.3), FSB_OK);
    ck_assert_double_eq(fsb_lr_at(&s, 1000), 0.3);
    ck_assert_int_eq(fsb_lr_schedule_parse(&s, "step:30:0.1", 0.1), FSB_OK);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 0), 0.1, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 29), 0.1, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 30), 0.01, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 65), 0.001, 1e-15);
    ck_assert_int_eq(fsb_lr_schedule_parse(&s, "multistep:60,80:0.5", 0.2), FSB_OK);
    ck_assert_int_eq(s.n_milestones, 2);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 59), 0.2, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 60), 0.1, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 80), 0.05, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 500), 0.05, 1e-15);
    ck_assert_int_eq(fsb_lr_schedule_parse(&s, "cosine:100:0.001", 0.1), FSB_OK);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 0), 0.1, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 50), 0.0505, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 100), 0.001, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 150), 0.001, 1e-15); /* stays at the floor */
    ck_assert_int_eq(fsb_lr_schedule_parse(&s, "cosine:10+warmup=2", 1.0), FSB_OK);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 0), 0.1, 1e-15); /* default start factor 0.1 */
    ck_assert_double_eq_tol(fsb_lr_at(&s, 1), 0.55, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 2), 1.0, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 6), 0.5, 1e-15); /* half-way through 8 epochs */
    ck_assert_double_eq_tol(fsb_lr_at(&s, 10), 0.0, 1e-15);
    ck_assert_int_eq(fsb_lr_schedule_parse(&s, "step:5:0.5+warmup=5:0", 1.0), FSB_OK);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 0), 0.0, 1e-15);
    ck_assert_double_eq_tol(fsb_lr_at(&s, 10), 0.5, 1e-15);
    const char *bad[] = {"",
                         "linear",
                         "step",
                         "step:0:0.1",
                         "step:5",
                         "step:5:x",
                         "step:5:0.1:3",
                         "multistep::0.1",
                         "multistep:5,3:0.1",
                         "multistep:5,:0.1",
                         "cosine",
                         "cosine:-3",
                         "cosine:10:-1",
                         "constant:3",
                         "cosine:10+warm=2",
                         "cosine:10+warmup=10",
                         "cosine:10+warmup=2:1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(fsb_lr_schedule_parse(&s, bad[i], 0.1) == FSB_EINVAL, "accepted '%s'",
                      bad[i]);
        ck_assert_ptr_nonnull(strstr(fsb_error_last(), "lr schedule"));
    }
}
END_TEST

/* A deterministic pseudo-gradient for step t, element i (no RNG needed). */
static float fake_grad(int t, size_t i)
{
    return (float)sin(0.7 * (double)(t * 31 + (int)i)) * 0.5f;
}

START_TEST(state_save_restore_continues_identically)
{
    enum { N0 = 5, N1 = 3 };
    float p0[N0], p1[N1], g0[N0] = {0}, g1[N1] = {0}, b0[N0] = {0}, b1[N1] = {0};
    for (int i = 0; i < N0; i++)
        p0[i] = (float)i * 0.1f;
    for (int i = 0; i < N1; i++)
        p1[i] = -(float)i;
    fsb_param_group gs[2] = {group(p0, g0, b0, N0, 1, 1e-3f), group(p1, g1, b1, N1, 0.5f, 0)};
    gs[1].frozen = 1;
    fsb_optim opt;
    ck_assert_int_eq(fsb_sgd_init(&opt, gs, 2, 0.05f, 0.9f, 0, 1), FSB_OK);
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < N0; i++)
            g0[i] = fake_grad(t, (size_t)i);
        for (int i = 0; i < N1; i++)
            g1[i] = fake_grad(t, (size_t)i + 10);
        fsb_optim_step(&opt);
    }
    /* checkpoint params + optimiser state to a file */
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "resume.fsbt");
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    int64_t d0[1] = {N0}, d1[1] = {N1};
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "p0", FSB_F32, 1, d0, p0), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "p1", FSB_F32, 1, d1, p1), FSB_OK);
    ck_assert_int_eq(fsb_optim_state_save(&opt, &tf, "optim"), FSB_OK);
    ck_assert_ptr_nonnull(fsb_tensorfile_get(&tf, "optim.group0.momentum_buffer"));
    ck_assert_ptr_null(fsb_tensorfile_get(&tf, "optim.group1.momentum_buffer"));
    ck_assert_int_eq(fsb_optim_state_save(&opt, &tf, "optim"), FSB_EINVAL); /* duplicate */
    ck_assert_int_eq(fsb_tensorfile_save(&tf, path), FSB_OK);
    fsb_tensorfile_free(&tf);
    /* continue the original two more steps, unfreezing group 1 */
    gs[1].frozen = 0;
    for (int t = 2; t < 4; t++) {
        for (int i = 0; i < N0; i++)
            g0[i] = fake_grad(t, (size_t)i);
        for (int i = 0; i < N1; i++)
            g1[i] = fake_grad(t, (size_t)i + 10);
        fsb_optim_step(&opt);
    }
    /* a fresh optimiser restored from the file must produce the same bits */
    float q0[N0], q1[N1], c0[N0], c1[N1];
    memset(c0, 0, sizeof c0);
    memset(c1, 0, sizeof c1);
    fsb_param_group hs[2] = {group(q0, g0, c0, N0, 1, 1e-3f), group(q1, g1, c1, N1, 0.5f, 0)};
    fsb_optim opt2;
    ck_assert_int_eq(fsb_sgd_init(&opt2, hs, 2, 0.05f, 0.9f, 0, 1), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_load(&tf, path), FSB_OK);
    const float *lp;
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, path, "p0", N0, &lp), FSB_OK);
    memcpy(q0, lp, sizeof q0);
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, path, "p1", N1, &lp), FSB_OK);
    memcpy(q1, lp, sizeof q1);
    ck_assert_int_eq(fsb_optim_state_load(&opt2, &tf, path, "optim"), FSB_OK);
    ck_assert_int_eq(opt2.step, 2);
    ck_assert_int_eq(hs[0].has_buf, 1);
    ck_assert_int_eq(hs[1].has_buf, 0);
    for (int t = 2; t < 4; t++) {
        for (int i = 0; i < N0; i++)
            g0[i] = fake_grad(t, (size_t)i);
        for (int i = 0; i < N1; i++)
            g1[i] = fake_grad(t, (size_t)i + 10);
        fsb_optim_step(&opt2);
    }
    ck_assert_int_eq(memcmp(p0, q0, sizeof p0), 0);
    ck_assert_int_eq(memcmp(p1, q1, sizeof p1), 0);
    ck_assert_int_eq(memcmp(b0, c0, sizeof b0), 0);
    ck_assert_int_eq(opt2.step, 4);
    /* mismatched layouts are refused and leave the optimiser unchanged */
    float r0[N0 + 1], rb[N0 + 1];
    fsb_param_group bad[2] = {group(r0, g0, rb, N0 + 1, 1, 0), group(q1, g1, c1, N1, 1, 0)};
    fsb_optim opt3;
    ck_assert_int_eq(fsb_sgd_init(&opt3, bad, 2, 0.1f, 0.9f, 0, 0), FSB_OK);
    ck_assert_int_eq(fsb_optim_state_load(&opt3, &tf, path, "optim"), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "momentum_buffer"));
    ck_assert_int_eq(opt3.step, 0);
    ck_assert_int_eq(bad[0].has_buf, 0);
    ck_assert_int_eq(fsb_sgd_init(&opt3, bad, 1, 0.1f, 0.9f, 0, 0), FSB_OK);
    ck_assert_int_eq(fsb_optim_state_load(&opt3, &tf, path, "optim"), FSB_EMISMATCH);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "2 parameter groups"));
    ck_assert_int_eq(fsb_optim_state_load(&opt3, &tf, path, "other"), FSB_ENOTFOUND);
    fsb_tensorfile_free(&tf);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

/* Max |a-b| relative to max |b| (the fixture contract's relative error). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double diff = 0, mag = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        mag = fmax(mag, fabs((double)b[i]));
    }
    return mag > 0 ? diff / mag : diff;
}

static char *fixture_path(const char *name)
{
    const char *src = getenv("FSB_SOURCE_DIR");
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/%s", name);
    return tu_path(src && *src ? src : ".", rel);
}

static double meta_double(const fsb_tensorfile *tf, const char *fmt, const char *a, int b)
{
    char key[128];
    snprintf(key, sizeof key, fmt, a, b);
    const char *v = fsb_tensorfile_meta(tf, key);
    ck_assert_msg(v != NULL, "fixture lacks meta %s", key);
    return strtod(v, NULL);
}

START_TEST(matches_torch_sgd_fixture)
{
    char *path = fixture_path("torch_sgd.fsbt");
    fsb_tensorfile tf;
    ck_assert_msg(fsb_tensorfile_load(&tf, path) == FSB_OK, "%s", fsb_error_last());
    char cases[256];
    snprintf(cases, sizeof cases, "%s", fsb_tensorfile_meta(&tf, "cases"));
    int n_cases = 0;
    char *save = NULL;
    for (char *c = strtok_r(cases, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        n_cases++;
        int ng = (int)meta_double(&tf, "%s.n_groups", c, 0);
        ck_assert_int_le(ng, 4);
        fsb_param_group gs[4];
        float *bufs[4] = {0};
        char name[128];
        for (int g = 0; g < ng; g++) {
            const fsb_tensor *t;
            snprintf(name, sizeof name, "%s.group%d.param0", c, g);
            ck_assert_ptr_nonnull(t = fsb_tensorfile_get(&tf, name));
            float *p = malloc(t->numel * sizeof *p);
            memcpy(p, t->data, t->numel * sizeof *p);
            bufs[g] = calloc(t->numel, sizeof(float));
            gs[g] = group(p, NULL, bufs[g], t->numel,
                          (float)meta_double(&tf, "%s.group%d.lr_mult", c, g),
                          (float)meta_double(&tf, "%s.group%d.weight_decay", c, g));
            gs[g].frozen = (int)meta_double(&tf, "%s.group%d.frozen", c, g);
        }
        fsb_optim opt;
        ck_assert_int_eq(fsb_sgd_init(&opt, gs, ng, (float)meta_double(&tf, "%s.lr", c, 0),
                                      (float)meta_double(&tf, "%s.momentum", c, 0),
                                      (float)meta_double(&tf, "%s.dampening", c, 0),
                                      (int)meta_double(&tf, "%s.nesterov", c, 0)),
                         FSB_OK);
        for (int s = 0; s < 3; s++) {
            for (int g = 0; g < ng; g++) {
                snprintf(name, sizeof name, "%s.group%d.grad%d", c, g, s);
                ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, path, name, gs[g].count, &gs[g].grads),
                                 FSB_OK);
            }
            fsb_optim_step(&opt);
            for (int g = 0; g < ng; g++) {
                const float *want;
                snprintf(name, sizeof name, "%s.group%d.param%d", c, g, s + 1);
                ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, path, name, gs[g].count, &want),
                                 FSB_OK);
                double e = rel_err(gs[g].params, want, gs[g].count);
                ck_assert_msg(e <= 1e-6, "%s: relative error %g", name, e);
            }
        }
        for (int g = 0; g < ng; g++) {
            free(gs[g].params);
            free(bufs[g]);
        }
    }
    ck_assert_int_eq(n_cases, 3);
    /* torch's StepLR / MultiStepLR / CosineAnnealingLR / LinearLR+SequentialLR curves */
    char scheds[256];
    snprintf(scheds, sizeof scheds, "%s", fsb_tensorfile_meta(&tf, "schedules"));
    int n_sched = 0;
    for (char *c = strtok_r(scheds, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        char key[128];
        snprintf(key, sizeof key, "sched.%s.spec", c);
        const char *spec = fsb_tensorfile_meta(&tf, key);
        ck_assert_ptr_nonnull(spec);
        fsb_lr_schedule s;
        ck_assert_int_eq(
            fsb_lr_schedule_parse(&s, spec, meta_double(&tf, "sched.%s.base_lr", c, 0)), FSB_OK);
        snprintf(key, sizeof key, "sched.%s", c);
        const fsb_tensor *t = fsb_tensorfile_get(&tf, key);
        ck_assert_ptr_nonnull(t);
        for (size_t e = 0; e < t->numel; e++) {
            double want = ((float *)t->data)[e], got = fsb_lr_at(&s, (int)e);
            ck_assert_msg(fabs(got - want) <= 1e-6 * fabs(want) + 1e-9,
                          "%s epoch %zu: %g vs torch %g", spec, e, got, want);
        }
        n_sched++;
    }
    ck_assert_int_eq(n_sched, 4);
    fsb_tensorfile_free(&tf);
    free(path);
}
END_TEST

START_TEST(adam_hand_computed_first_step)
{
    /* step 1: m = .1g, v = .001g^2, bc1 = .1, bc2 = .001: denom = |g| + eps, so every
     * parameter moves by lr * g / (|g| + eps) ~ lr * sign(g), whatever the scale of g */
    float p[3] = {1, -2, 0.5f}, g[3] = {0.5f, -1e-3f, 4}, m[3] = {7, 7, 7}, v[3] = {7, 7, 7};
    fsb_param_group pg = group(p, g, m, 3, 1, 0);
    pg.second = v;
    fsb_optim opt;
    ck_assert_int_eq(fsb_adam_init(&opt, &pg, 1, 0.01f, 0.9, 0.999, 1e-8, 0), FSB_OK);
    fsb_optim_step(&opt);
    ck_assert_double_eq_tol(p[0], 1 - 0.01, 1e-6);
    ck_assert_double_eq_tol(p[1], -2 + 0.01 * (1e-3 / (1e-3 + 1e-8)), 1e-6);
    ck_assert_double_eq_tol(p[2], 0.5 - 0.01, 1e-6);
    ck_assert_double_eq_tol(m[0], 0.05, 1e-7);
    ck_assert_double_eq_tol(v[2], 0.016, 1e-7);
    ck_assert_int_eq(pg.steps, 1);
    /* AdamW decays the parameter itself before the moment update: p * (1 - lr*wd) */
    float q = 2, gq = 0, mq = 0, vq = 0;
    fsb_param_group pw = group(&q, &gq, &mq, 1, 1, 0.5f);
    pw.second = &vq;
    ck_assert_int_eq(fsb_adam_init(&opt, &pw, 1, 0.1f, 0.9, 0.999, 1e-8, 1), FSB_OK);
    fsb_optim_step(&opt);
    ck_assert_double_eq_tol(q, 2 * (1 - 0.05), 1e-6);
    /* Adam adds it to the gradient instead: g = 0 + .5*2 = 1, p -= lr * 1/(1 + eps) */
    q = 2, mq = vq = 0;
    ck_assert_int_eq(fsb_adam_init(&opt, &pw, 1, 0.1f, 0.9, 0.999, 1e-8, 0), FSB_OK);
    fsb_optim_step(&opt);
    ck_assert_double_eq_tol(q, 1.9, 1e-6);
}
END_TEST

START_TEST(adam_rejects_bad_settings)
{
    float p = 0, g = 0, m = 0, v = 0;
    fsb_param_group pg = group(&p, &g, &m, 1, 1, 0);
    fsb_optim opt;
    ck_assert_int_eq(fsb_adam_init(&opt, &pg, 1, 0.1f, 0.9, 0.999, 1e-8, 0), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "moment buffer"));
    pg.second = &v;
    ck_assert_int_eq(fsb_adam_init(&opt, &pg, 1, 0.1f, 1.0, 0.999, 1e-8, 0), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "betas"));
    ck_assert_int_eq(fsb_adam_init(&opt, &pg, 1, 0.1f, 0.9, -0.1, 1e-8, 1), FSB_EINVAL);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "adamw"));
    ck_assert_int_eq(fsb_adam_init(&opt, &pg, 1, 0.1f, 0.9, 0.999, -1, 0), FSB_EINVAL);
    ck_assert_int_eq(fsb_adam_init(&opt, &pg, 1, -1, 0.9, 0.999, 1e-8, 0), FSB_EINVAL);
    ck_assert_int_eq(fsb_adam_init(&opt, &pg, 1, 0.1f, 0.9, 0.999, 1e-8, 0), FSB_OK);
    ck_assert_str_eq(fsb_opt_kind_name(opt.kind), "adam");
    ck_assert_int_eq(fsb_opt_kind_parse("adamw"), FSB_OPT_ADAMW);
    ck_assert_int_eq(fsb_opt_kind_parse("Adam"), -1);
}
END_TEST

START_TEST(adam_state_save_restore_continues_identically)
{
    enum { N0 = 5, N1 = 3 };
    float p0[N0], p1[N1], g0[N0] = {0}, g1[N1] = {0}, m0[N0] = {0}, m1[N1] = {0}, v0[N0] = {0},
                          v1[N1] = {0};
    for (int i = 0; i < N0; i++)
        p0[i] = (float)i * 0.1f;
    for (int i = 0; i < N1; i++)
        p1[i] = -(float)i;
    fsb_param_group gs[2] = {group(p0, g0, m0, N0, 1, 1e-3f), group(p1, g1, m1, N1, 10, 0)};
    gs[0].second = v0, gs[1].second = v1;
    fsb_optim opt;
    ck_assert_int_eq(fsb_adam_init(&opt, gs, 2, 0.01f, 0.9, 0.999, 1e-8, 1), FSB_OK);
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < N0; i++)
            g0[i] = fake_grad(t, (size_t)i);
        for (int i = 0; i < N1; i++)
            g1[i] = fake_grad(t, (size_t)i + 10);
        gs[1].frozen = t == 1; /* group 1's own step count falls one behind */
        fsb_optim_step(&opt);
    }
    ck_assert_int_eq(gs[0].steps, 3);
    ck_assert_int_eq(gs[1].steps, 2);
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "adam.fsbt");
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    int64_t d0[1] = {N0}, d1[1] = {N1};
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "p0", FSB_F32, 1, d0, p0), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_add(&tf, "p1", FSB_F32, 1, d1, p1), FSB_OK);
    ck_assert_int_eq(fsb_optim_state_save(&opt, &tf, "optim"), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_save(&tf, path), FSB_OK);
    fsb_tensorfile_free(&tf);
    for (int t = 3; t < 6; t++) {
        for (int i = 0; i < N0; i++)
            g0[i] = fake_grad(t, (size_t)i);
        for (int i = 0; i < N1; i++)
            g1[i] = fake_grad(t, (size_t)i + 10);
        gs[1].frozen = 0;
        fsb_optim_step(&opt);
    }
    float q0[N0], q1[N1], n0[N0] = {0}, n1[N1] = {0}, w0[N0] = {0}, w1[N1] = {0};
    fsb_param_group hs[2] = {group(q0, g0, n0, N0, 1, 1e-3f), group(q1, g1, n1, N1, 10, 0)};
    hs[0].second = w0, hs[1].second = w1;
    fsb_optim opt2;
    ck_assert_int_eq(fsb_adam_init(&opt2, hs, 2, 0.01f, 0.9, 0.999, 1e-8, 1), FSB_OK);
    ck_assert_int_eq(fsb_tensorfile_load(&tf, path), FSB_OK);
    const float *lp;
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, path, "p0", N0, &lp), FSB_OK);
    memcpy(q0, lp, sizeof q0);
    ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, path, "p1", N1, &lp), FSB_OK);
    memcpy(q1, lp, sizeof q1);
    ck_assert_int_eq(fsb_optim_state_load(&opt2, &tf, path, "optim"), FSB_OK);
    ck_assert_int_eq(hs[1].steps, 2);
    for (int t = 3; t < 6; t++) {
        for (int i = 0; i < N0; i++)
            g0[i] = fake_grad(t, (size_t)i);
        for (int i = 0; i < N1; i++)
            g1[i] = fake_grad(t, (size_t)i + 10);
        fsb_optim_step(&opt2);
    }
    ck_assert_int_eq(memcmp(p0, q0, sizeof p0), 0);
    ck_assert_int_eq(memcmp(p1, q1, sizeof p1), 0);
    ck_assert_int_eq(memcmp(v1, w1, sizeof v1), 0);
    /* an SGD optimiser finds no momentum_buffer in an Adam state and stays unchanged */
    float sb0[N0], sb1[N1];
    fsb_param_group ss[2] = {group(q0, g0, sb0, N0, 1, 0), group(q1, g1, sb1, N1, 1, 0)};
    fsb_optim sgd;
    ck_assert_int_eq(fsb_sgd_init(&sgd, ss, 2, 0.1f, 0.9f, 0, 0), FSB_OK);
    ck_assert_int_ne(fsb_optim_state_load(&sgd, &tf, path, "optim"), FSB_OK);
    ck_assert_ptr_nonnull(strstr(fsb_error_last(), "momentum_buffer"));
    ck_assert_int_eq(ss[0].has_buf, 0);
    fsb_tensorfile_free(&tf);
    free(path);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

START_TEST(matches_torch_adam_fixture)
{
    char *path = fixture_path("torch_adam.fsbt");
    fsb_tensorfile tf;
    ck_assert_msg(fsb_tensorfile_load(&tf, path) == FSB_OK, "%s", fsb_error_last());
    char cases[256];
    snprintf(cases, sizeof cases, "%s", fsb_tensorfile_meta(&tf, "cases"));
    int steps = (int)strtol(fsb_tensorfile_meta(&tf, "steps"), NULL, 10), n_cases = 0;
    ck_assert_int_ge(steps, 10);
    char *save = NULL;
    for (char *c = strtok_r(cases, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        n_cases++;
        int ng = (int)meta_double(&tf, "%s.n_groups", c, 0);
        ck_assert_int_le(ng, 4);
        fsb_param_group gs[4];
        int frozen[4];
        char name[128];
        for (int g = 0; g < ng; g++) {
            const fsb_tensor *t;
            snprintf(name, sizeof name, "%s.group%d.param0", c, g);
            ck_assert_ptr_nonnull(t = fsb_tensorfile_get(&tf, name));
            float *p = malloc(t->numel * sizeof *p);
            memcpy(p, t->data, t->numel * sizeof *p);
            gs[g] = group(p, NULL, calloc(t->numel, sizeof(float)), t->numel,
                          (float)meta_double(&tf, "%s.group%d.lr_mult", c, g),
                          (float)meta_double(&tf, "%s.group%d.weight_decay", c, g));
            gs[g].second = calloc(t->numel, sizeof(float));
            frozen[g] = (int)meta_double(&tf, "%s.group%d.frozen", c, g);
        }
        snprintf(name, sizeof name, "%s.kind", c);
        const char *kind = fsb_tensorfile_meta(&tf, name);
        ck_assert_ptr_nonnull(kind);
        fsb_optim opt;
        ck_assert_int_eq(fsb_adam_init(&opt, gs, ng, (float)meta_double(&tf, "%s.lr", c, 0),
                                       meta_double(&tf, "%s.beta1", c, 0),
                                       meta_double(&tf, "%s.beta2", c, 0),
                                       meta_double(&tf, "%s.eps", c, 0), !strcmp(kind, "adamw")),
                         FSB_OK);
        for (int s = 0; s < steps; s++) {
            for (int g = 0; g < ng; g++) {
                snprintf(name, sizeof name, "%s.group%d.grad%d", c, g, s);
                ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, path, name, gs[g].count, &gs[g].grads),
                                 FSB_OK);
                gs[g].frozen = frozen[g] == 1 || (frozen[g] == 2 && s == 3);
            }
            fsb_optim_step(&opt);
            for (int g = 0; g < ng; g++) {
                const float *want;
                snprintf(name, sizeof name, "%s.group%d.param%d", c, g, s + 1);
                ck_assert_int_eq(fsb_tensorfile_get_f32(&tf, path, name, gs[g].count, &want),
                                 FSB_OK);
                double e = rel_err(gs[g].params, want, gs[g].count);
                ck_assert_msg(e <= 1e-6, "%s: relative error %g", name, e);
            }
        }
        for (int g = 0; g < ng; g++) {
            free(gs[g].params);
            free(gs[g].momentum);
            free(gs[g].second);
        }
    }
    ck_assert_int_eq(n_cases, 3);
    fsb_tensorfile_free(&tf);
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hand_computed_nesterov_with_weight_decay);
    tcase_add_test(tc, hand_computed_momentum_dampening_and_plain);
    tcase_add_test(tc, groups_multipliers_and_frozen);
    tcase_add_test(tc, init_rejects_bad_settings);
    tcase_add_test(tc, schedules_at_known_epochs);
    tcase_add_test(tc, state_save_restore_continues_identically);
    tcase_add_test(tc, matches_torch_sgd_fixture);
    tcase_add_test(tc, adam_hand_computed_first_step);
    tcase_add_test(tc, adam_rejects_bad_settings);
    tcase_add_test(tc, adam_state_save_restore_continues_identically);
    tcase_add_test(tc, matches_torch_adam_fixture);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
