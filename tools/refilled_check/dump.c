/* dump.c - prints one random stage-1/stage-2 case and the library's answers as Python
 * literals, for tools/refilled_check/ref.py (a torch autograd cross-check of the reference
 * formulas). Not part of the build; see docs/refilled-impl.md for the command. */
#include "fsb/refilled.h"
#include "fsb/rng.h"
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    enum { N = 12, DS = 7, DT = 5, NC = 6 };
    fsb_rng r;
    fsb_rng_init(&r, 42, 0);
    float es[N * DS], et[N * DT], de[N * DS] = {0}, f[N * NC], df[N * NC] = {0};
    int lab[N] = {0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3};
    for (int i = 0; i < N * DS; i++)
        es[i] = (float)fsb_rng_normal(&r);
    for (int i = 0; i < N * DT; i++)
        et[i] = (float)fsb_rng_normal(&r);
    for (int i = 0; i < N * NC; i++)
        f[i] = (float)fsb_rng_normal(&r);
    fsb_arena a;
    fsb_arena_init(&a, 1 << 24);
    fsb_refilled_stage1_opts o;
    fsb_refilled_stage1_defaults(&o);
    o.margin = 0.5f;
    fsb_refilled_stage1_result r1;
    fsb_refilled_stage1(&r1, de, es, et, lab, NULL, N, DS, DT, &o, &a);
    fsb_refilled_stage2_opts o2;
    fsb_refilled_stage2_defaults(&o2);
    fsb_refilled_stage2_result r2;
    fsb_refilled_stage2(&r2, df, f, et, NULL, lab, N, DT, NC, &o2, &a);
#define P(name, arr, cnt)                                                                          \
    do {                                                                                           \
        printf("%s=[", name);                                                                      \
        for (int i = 0; i < (cnt); i++)                                                            \
            printf("%.9g,", (double)(arr)[i]);                                                     \
        printf("]\n");                                                                             \
    } while (0)
    P("es", es, N * DS);
    P("et", et, N * DT);
    P("de", de, N * DS);
    P("f", f, N * NC);
    P("df", df, N * NC);
    P("lab", lab, N);
    printf("N=%d;DS=%d;DT=%d;NC=%d;T=%zu;L1=%.12g;L2=%.12g;CE=%.12g;KL=%.12g\n", N, DS, DT, NC,
           r1.n_triplets, r1.loss, r2.loss, r2.ce, r2.kl);
}
