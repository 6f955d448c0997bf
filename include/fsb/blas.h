/* blas.h - the one wrapper around OpenBLAS: kernel selection, threads, identification.
 *
 * Debian's OpenBLAS 0.3.21 does not recognise recent Xeons and silently falls back to
 * generic SSE3 kernels (5-7x slower sgemm). It reads OPENBLAS_CORETYPE only when it is
 * loaded, so the fix must happen before the process starts: fsb_blas_preferred_core()
 * says which core to request, and the CLI re-executes itself once with that variable set
 * unless the user set it (a user's choice is always respected).
 */
#ifndef FSB_BLAS_H
#define FSB_BLAS_H

/* The core name OpenBLAS is using (e.g. "SkylakeX", "Prescott"). */
const char *fsb_blas_core(void);
/* A better core to request for this CPU ("SkylakeX", "Haswell"), or NULL when the loaded
 * core already fits the CPU or nothing better is known. */
const char *fsb_blas_preferred_core(void);
/* The pure rule behind fsb_blas_preferred_core(): given the loaded core's name and the
 * CPU's features, the core to request or NULL. */
const char *fsb_blas_core_for_cpu(const char *loaded_core, int has_avx512, int has_avx2);
/* OpenBLAS's own thread count for one call. fsbench parallelises over images itself and
 * keeps this at 1 inside its workers. */
void fsb_blas_set_threads(int n);
int fsb_blas_threads(void);
/* "OpenBLAS 0.3.21 ..." build description. */
const char *fsb_blas_config(void);

/* C = alpha * op(A) * op(B) + beta * C, row-major, single-threaded or not per
 * fsb_blas_set_threads. op(X) = X^T when trans_x is nonzero. A is MxK after op, B KxN. */
void fsb_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
               const float *b, int ldb, float beta, float *c, int ldc);

#endif
