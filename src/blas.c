/* blas.c - OpenBLAS behind one wrapper (see include/fsb/blas.h). */
#include "fsb/blas.h"

#include <cblas.h>
#include <ctype.h>
#include <string.h>

const char *fsb_blas_core(void)
{
    return openblas_get_corename();
}

const char *fsb_blas_config(void)
{
    return openblas_get_config();
}

static int core_is(const char *core, const char *const *names)
{
    for (; *names; names++) {
        const char *a = core, *b = *names;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b))
            a++, b++;
        if (!*a && !*b) return 1;
    }
    return 0;
}

const char *fsb_blas_core_for_cpu(const char *core, int has_avx512, int has_avx2)
{
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids", NULL};
    static const char *const avx2[] = {"haswell",        "zen", "skylakex", "cooperlake",
                                       "sapphirerapids", NULL};
    if (!core) return NULL;
    if (has_avx512) return core_is(core, avx512) ? NULL : "SkylakeX";
    if (has_avx2) return core_is(core, avx2) ? NULL : "Haswell";
    return NULL;
}

const char *fsb_blas_preferred_core(void)
{
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return fsb_blas_core_for_cpu(fsb_blas_core(), avx512, avx2);
}

void fsb_blas_set_threads(int n)
{
    openblas_set_num_threads(n);
}

int fsb_blas_threads(void)
{
    return openblas_get_num_threads();
}

void fsb_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
