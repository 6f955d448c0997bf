/* attention.c - batched matrix products, LayerNorm, row softmax and FEAT's self-attention
 * block composed of them (see include/fsb/attention.h for the maths and FEAT's facts).
 * Row reductions sum in double; the products go through fsb_sgemm (src/blas.c), one call
 * per batch item. Nothing here allocates: the block's activations live in a bound workspace.
 */
#include "fsb/attention.h"
#include "fsb/blas.h"
#include "fsb/layers.h"
#include "fsb/status.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- batched matrix products ---------------------------------------------------------------- */

void fsb_bmm_forward(float *out, const float *a, const float *b, int trans_a, int trans_b,
                     float alpha, int B, int M, int K, int N)
{
    // a (B,M,K) or (B,K,M); b (B,K,N) or (B,N,K); out (B,M,N)
    int lda = trans_a ? M : K, ldb = trans_b ? K : N;
    long sa = (long)M * K, sb = (long)K * N, so = (long)M * N;
    for (int i = 0; i < B; i++)
        fsb_sgemm(trans_a, trans_b, M, N, K, alpha, a + i * sa, lda, b + i * sb, ldb, 0.0f,
                  out + i * so, N);
}

void fsb_bmm_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                      int trans_a, int trans_b, float alpha, int B, int M, int K, int N)
{
    /* C = alpha A' B' with A' = op(a), B' = op(b): dA' = alpha dC B'^T, dB' = alpha A'^T dC;
     * a transposed operand receives the transpose of its op's gradient. */
    int lda = trans_a ? M : K, ldb = trans_b ? K : N;
    long sa = (long)M * K, sb = (long)K * N, so = (long)M * N;
    for (int i = 0; i < B; i++) {
        const float *ai = a + i * sa, *bi = b + i * sb, *gi = dout + i * so;
        if (da && !trans_a) // da (M,K) += alpha dC (M,N) @ B'^T (N,K)
            fsb_sgemm(0, !trans_b, M, K, N, alpha, gi, N, bi, ldb, 1.0f, da + i * sa, K);
        else if (da) // da (K,M) += alpha B' (K,N) @ dC^T (N,M)
            fsb_sgemm(trans_b, 1, K, M, N, alpha, bi, ldb, gi, N, 1.0f, da + i * sa, M);
        if (db && !trans_b) // db (K,N) += alpha A'^T (K,M) @ dC (M,N)
            fsb_sgemm(!trans_a, 0, K, N, M, alpha, ai, lda, gi, N, 1.0f, db + i * sb, N);
        else if (db) // db (N,K) += alpha dC^T (N,M) @ A' (M,K)
            fsb_sgemm(1, trans_a, N, K, M, alpha, gi, N, ai, lda, 1.0f, db + i * sb, K);
    }
}

/* Element (r, c) of op(x) for one batch item x stored (R,C), or (C,R) when transposed. */
static float op_at(const float *x, int trans, int r, int c, int R, int C)
{
    return trans ? x[(long)c * R + r] : x[(long)r * C + c];
}

void fsb_bmm_forward_ref(float *out, const float *a, const float *b, int trans_a, int trans_b,
                         float alpha, int B, int M, int K, int N)
{
    for (int i = 0; i < B; i++) {
        const float *ai = a + (long)i * M * K, *bi = b + (long)i * K * N;
        for (int r = 0; r < M; r++)
            for (int c = 0; c < N; c++) {
                double s = 0;
                for (int j = 0; j < K; j++)
                    s += (double)op_at(ai, trans_a, r, j, M, K) * op_at(bi, trans_b, j, c, K, N);
                out[((long)i * M + r) * N + c] = (float)(alpha * s);
            }
    }
}

void fsb_bmm_backward_ref(float *da, float *db, const float *dout, const float *a, const float *b,
                          int trans_a, int trans_b, float alpha, int B, int M, int K, int N)
{
    for (int i = 0; i < B; i++) {
        const float *ai = a + (long)i * M * K, *bi = b + (long)i * K * N;
        const float *gi = dout + (long)i * M * N;
        for (int r = 0; r < M; r++) /* dA'[r,j] = alpha sum_c dC[r,c] B'[j,c] */
            for (int j = 0; da && j < K; j++) {
                double s = 0;
                for (int c = 0; c < N; c++)
                    s += (double)gi[(long)r * N + c] * op_at(bi, trans_b, j, c, K, N);
                long at = trans_a ? (long)j * M + r : (long)r * K + j;
                da[(long)i * M * K + at] += (float)(alpha * s);
            }
        for (int j = 0; j < K; j++) /* dB'[j,c] = alpha sum_r A'[r,j] dC[r,c] */
            for (int c = 0; db && c < N; c++) {
                double s = 0;
                for (int r = 0; r < M; r++)
                    s += (double)op_at(ai, trans_a, r, j, M, K) * gi[(long)r * N + c];
                long at = trans_b ? (long)c * K + j : (long)j * N + c;
                db[(long)i * K * N + at] += (float)(alpha * s);
            }
    }
}

/* ---- LayerNorm ------------------------------------------------------------------------------ */

void fsb_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C)
{
    // inp (N,C), weight (C), bias (C), out (N,C), mean (N), rstd (N)
    for (int r = 0; r < N; r++) {
        const float *x = inp + (long)r * C;
        float *y = out + (long)r * C;
        double s = 0, ss = 0;
        for (int c = 0; c < C; c++)
            s += x[c];
        double m = s / C;
        for (int c = 0; c < C; c++)
            ss += (x[c] - m) * (x[c] - m);
        float rs = (float)(1.0 / sqrt(ss / C + FSB_LN_EPS));
        float mf = (float)m;
        mean[r] = mf;
        rstd[r] = rs;
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - mf) * rs * weight[c] + bias[c];
    }
}

void fsb_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *mean, const float *rstd,
                            const float *weight, int N, int C)
{
    for (int r = 0; r < N; r++) {
        const float *x = inp + (long)r * C, *dy = dout + (long)r * C;
        float m = mean[r], rs = rstd[r];
        double sg = 0, sgx = 0; /* sum of g = dy * weight, and of g * xh */
        for (int c = 0; c < C; c++) {
            float xh = (x[c] - m) * rs, g = dy[c] * weight[c];
            sg += g;
            sgx += (double)g * xh;
            if (dweight) dweight[c] += dy[c] * xh;
            if (dbias) dbias[c] += dy[c];
        }
        if (!dinp) continue;
        float mg = (float)(sg / C), mgx = (float)(sgx / C);
        float *dx = dinp + (long)r * C;
        for (int c = 0; c < C; c++) {
            float xh = (x[c] - m) * rs;
            dx[c] += rs * (dy[c] * weight[c] - mg - xh * mgx);
        }
    }
}

/* ---- row softmax ---------------------------------------------------------------------------- */

void fsb_softmax_rows_forward(float *out, const float *inp, int N, int C)
{
    for (int r = 0; r < N; r++) {
        const float *x = inp + (long)r * C;
        float *y = out + (long)r * C;
        float mx = -FLT_MAX;
        for (int c = 0; c < C; c++)
            mx = x[c] > mx ? x[c] : mx;
        double s = 0;
        for (int c = 0; c < C; c++)
            s += (y[c] = expf(x[c] - mx));
        float inv = (float)(1.0 / s);
        for (int c = 0; c < C; c++)
            y[c] *= inv;
    }
}

void fsb_softmax_rows_backward(float *dinp, const float *dout, const float *out, int N, int C)
{
    assert(dinp != dout);
    for (int r = 0; r < N; r++) {
        const float *g = dout + (long)r * C, *y = out + (long)r * C;
        double s = 0;
        for (int c = 0; c < C; c++)
            s += (double)g[c] * y[c];
        float sf = (float)s;
        float *dx = dinp + (long)r * C;
        for (int c = 0; c < C; c++)
            dx[c] += y[c] * (g[c] - sf);
    }
}

/* ---- FEAT self-attention: parameters -------------------------------------------------------- */

long fsb_feat_attn_n_params(int d)
{
    return 4L * d * d + 3L * d;
}

void fsb_feat_attn_bind(fsb_feat_attn_params *p, float *mem, int d)
{
    long dd = (long)d * d;
    p->wq = mem;
    p->wk = p->wq + dd;
    p->wv = p->wk + dd;
    p->ln_w = p->wv + dd;
    p->ln_b = p->ln_w + d;
    p->fc_w = p->ln_b + d;
    p->fc_b = p->fc_w + dd;
}

void fsb_feat_attn_init(fsb_feat_attn_params *p, int d, fsb_rng *rng)
{
    long dd = (long)d * d;
    /* w_qs/w_ks/w_vs: N(0, sqrt(2/(d_model + d_k))); fc: xavier_normal_ = N(0,
     * sqrt(2/(fan_in + fan_out))); with d_model = d_k = d_v = fan_in = fan_out = d, all
     * sqrt(1/d). fc.bias: nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
    double sd = sqrt(1.0 / d), bound = 1.0 / sqrt((double)d);
    float *normal[4] = {p->wq, p->wk, p->wv, p->fc_w};
    for (int t = 0; t < 4; t++)
        for (long i = 0; i < dd; i++)
            normal[t][i] = (float)(fsb_rng_normal(rng) * sd);
    for (int i = 0; i < d; i++) {
        p->fc_b[i] = (float)((2.0 * fsb_rng_uniform(rng) - 1.0) * bound);
        p->ln_w[i] = 1.0f;
        p->ln_b[i] = 0.0f;
    }
}

const char *fsb_feat_attn_tensor(float **data, long *numel, const fsb_feat_attn_params *p, int d,
                                 int i)
{
    static const char *const names[] = {
        "w_qs.weight",     "w_ks.weight", "w_vs.weight", "layer_norm.weight",
        "layer_norm.bias", "fc.weight",   "fc.bias"};
    float *ptr[] = {p->wq, p->wk, p->wv, p->ln_w, p->ln_b, p->fc_w, p->fc_b};
    long dd = (long)d * d, size[] = {dd, dd, dd, d, d, dd, d};
    if (i < 0 || i >= (int)(sizeof names / sizeof names[0])) return NULL;
    *data = ptr[i];
    *numel = size[i];
    return names[i];
}

/* ---- FEAT self-attention: tensor files ------------------------------------------------------ */

int fsb_feat_attn_to_tensorfile(fsb_tensorfile *tf, const fsb_feat_attn_params *p, int d,
                                const char *prefix)
{
    float *data;
    long n;
    const char *name;
    int st = FSB_OK;
    for (int i = 0; !st && (name = fsb_feat_attn_tensor(&data, &n, p, d, i)); i++) {
        char full[128];
        int64_t dims[2] = {d, d};
        snprintf(full, sizeof full, "%s%s", prefix, name);
        st = fsb_tensorfile_add(tf, full, FSB_F32, n == d ? 1 : 2, dims, data);
    }
    return st;
}

int fsb_feat_attn_from_tensorfile(fsb_feat_attn_params *p, int d, const fsb_tensorfile *tf,
                                  const char *what, const char *prefix)
{
    const float *src[7];
    float *data;
    long n;
    const char *name;
    for (int pass = 0; pass < 2; pass++) /* check all, then copy: no half-loaded block */
        for (int i = 0; (name = fsb_feat_attn_tensor(&data, &n, p, d, i)); i++) {
            if (pass) {
                memcpy(data, src[i], sizeof(float) * (size_t)n);
                continue;
            }
            char full[128];
            snprintf(full, sizeof full, "%s%s", prefix, name);
            const fsb_tensor *t = fsb_tensorfile_get(tf, full);
            if (!t)
                return fsb_error(FSB_EMISMATCH, "%s: tensor %s is missing (no FEAT block)", what,
                                 full);
            if (t->dtype != FSB_F32 || t->numel != (size_t)n)
                return fsb_error(FSB_EMISMATCH,
                                 "%s: tensor %s has %zu elements, a FEAT block of dimension %d "
                                 "wants %ld",
                                 what, full, t->numel, d, n);
            src[i] = t->data;
        }
    return FSB_OK;
}

int fsb_feat_attn_load(const char *path, fsb_feat_attn_params *p, float *mem, int d)
{
    fsb_tensorfile tf;
    fsb_tensorfile_init(&tf);
    fsb_feat_attn_bind(p, mem, d);
    int st = fsb_tensorfile_load(&tf, path);
    if (!st) st = fsb_feat_attn_from_tensorfile(p, d, &tf, path, FSB_FEAT_ATTN_PREFIX);
    fsb_tensorfile_free(&tf);
    return st;
}

/* ---- FEAT self-attention: workspace --------------------------------------------------------- */

long fsb_feat_attn_work_floats(int B, int n, int d)
{
    long bn = (long)B * n;
    return 11 * bn * d + 5 * bn * n + 2 * bn;
}

void fsb_feat_attn_work_bind(fsb_feat_attn_work *w, float *mem, int B, int n, int d)
{
    long bn = (long)B * n, x = bn * d, a = bn * n;
    float *at = mem;
    float **bnd[] = {&w->q,     &w->k,     &w->v,   &w->ctx, &w->out_mask, &w->res,
                     &w->d_res, &w->d_ctx, &w->d_q, &w->d_k, &w->d_v};
    float **bnn[] = {&w->attn, &w->attn_mask, &w->attn_drop, &w->d_attn, &w->d_scores};
    for (size_t i = 0; i < sizeof bnd / sizeof bnd[0]; i++, at += x)
        *bnd[i] = at;
    for (size_t i = 0; i < sizeof bnn / sizeof bnn[0]; i++, at += a)
        *bnn[i] = at;
    w->ln_mean = at;
    w->ln_rstd = at + bn;
    assert(at + 2 * bn == mem + fsb_feat_attn_work_floats(B, n, d));
    w->B = B, w->n = n, w->d = d;
    w->attn_dropped = w->out_dropped = 0;
}

int fsb_feat_attn_work_alloc(fsb_feat_attn_work *w, fsb_arena *a, int B, int n, int d)
{
    float *mem = fsb_arena_floats(a, (size_t)fsb_feat_attn_work_floats(B, n, d));
    if (!mem)
        return fsb_error_wrap(FSB_ENOMEM, "FEAT attention workspace (B %d, n %d, d %d)", B, n, d);
    fsb_feat_attn_work_bind(w, mem, B, n, d);
    return FSB_OK;
}

/* ---- FEAT self-attention: forward and backward ---------------------------------------------- */

void fsb_feat_attn_forward(float *out, fsb_feat_attn_work *w, const float *inp,
                           const fsb_feat_attn_params *p, float attn_p, float out_p, int train,
                           fsb_rng *rng, int B, int n, int d)
{
    // inp (B,n,d), out (B,n,d); q,k,v,ctx,res (B,n,d); attn (B,n,n)
    assert(w->B == B && w->n == n && w->d == d && out != inp);
    assert(attn_p >= 0 && attn_p < 1 && out_p >= 0 && out_p < 1);
    int bn = B * n;
    long nx = (long)bn * d, na = (long)bn * n;
    w->attn_dropped = train && attn_p > 0;
    w->out_dropped = train && out_p > 0;
    assert(rng || (!w->attn_dropped && !w->out_dropped));
    fsb_linear_forward(w->q, inp, p->wq, NULL, bn, d, d);
    fsb_linear_forward(w->k, inp, p->wk, NULL, bn, d, d);
    fsb_linear_forward(w->v, inp, p->wv, NULL, bn, d, d);
    /* attn = softmax(q k^T / temperature), temperature = sqrt(d_k) */
    float alpha = (float)(1.0 / sqrt((double)d));
    fsb_bmm_forward(w->attn, w->q, w->k, 0, 1, alpha, B, n, d, n);
    fsb_softmax_rows_forward(w->attn, w->attn, bn, n);
    const float *a = w->attn;
    if (w->attn_dropped) {
        fsb_dropout_forward(w->attn_drop, w->attn_mask, w->attn, na, attn_p, rng);
        a = w->attn_drop;
    }
    fsb_bmm_forward(w->ctx, a, w->v, 0, 0, 1.0f, B, n, n, d);
    /* res = dropout(fc(ctx)) + inp, then the post-norm */
    fsb_linear_forward(w->res, w->ctx, p->fc_w, p->fc_b, bn, d, d);
    if (w->out_dropped) /* in place: the mask is drawn and applied element by element */
        fsb_dropout_forward(w->res, w->out_mask, w->res, nx, out_p, rng);
    for (long i = 0; i < nx; i++)
        w->res[i] += inp[i];
    fsb_layernorm_forward(out, w->ln_mean, w->ln_rstd, w->res, p->ln_w, p->ln_b, bn, d);
}

void fsb_feat_attn_backward(float *dinp, fsb_feat_attn_params *grads, fsb_feat_attn_work *w,
                            const float *dout, const float *inp, const fsb_feat_attn_params *p,
                            int B, int n, int d)
{
    assert(w->B == B && w->n == n && w->d == d);
    int bn = B * n;
    long nx = (long)bn * d, na = (long)bn * n;
    fsb_feat_attn_params none = {0};
    fsb_feat_attn_params *g = grads ? grads : &none;
    float *scratch[] = {w->d_res, w->d_ctx, w->d_q, w->d_k, w->d_v};
    for (int i = 0; i < 5; i++)
        memset(scratch[i], 0, sizeof(float) * (size_t)nx);
    memset(w->d_attn, 0, sizeof(float) * (size_t)na);
    memset(w->d_scores, 0, sizeof(float) * (size_t)na);
    /* LayerNorm, then the residual branch straight to dinp */
    fsb_layernorm_backward(w->d_res, g->ln_w, g->ln_b, dout, w->res, w->ln_mean, w->ln_rstd,
                           p->ln_w, bn, d);
    if (dinp)
        for (long i = 0; i < nx; i++)
            dinp[i] += w->d_res[i];
    /* output dropout (in place: d_res is now dL/dfc) and fc */
    if (w->out_dropped)
        for (long i = 0; i < nx; i++)
            w->d_res[i] *= w->out_mask[i];
    fsb_linear_backward(w->d_ctx, g->fc_w, g->fc_b, w->d_res, w->ctx, p->fc_w, bn, d, d);
    /* ctx = A v with A the (dropped-out) attention */
    const float *a = w->attn_dropped ? w->attn_drop : w->attn;
    fsb_bmm_backward(w->d_attn, w->d_v, w->d_ctx, a, w->v, 0, 0, 1.0f, B, n, n, d);
    if (w->attn_dropped)
        for (long i = 0; i < na; i++)
            w->d_attn[i] *= w->attn_mask[i];
    fsb_softmax_rows_backward(w->d_scores, w->d_attn, w->attn, bn, n);
    float alpha = (float)(1.0 / sqrt((double)d));
    fsb_bmm_backward(w->d_q, w->d_k, w->d_scores, w->q, w->k, 0, 1, alpha, B, n, d, n);
    /* the three bias-free projections of the same input */
    fsb_linear_backward(dinp, g->wq, NULL, w->d_q, inp, p->wq, bn, d, d);
    fsb_linear_backward(dinp, g->wk, NULL, w->d_k, inp, p->wk, bn, d, d);
    fsb_linear_backward(dinp, g->wv, NULL, w->d_v, inp, p->wv, bn, d, d);
}
