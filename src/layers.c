/* layers.c - plain single-threaded layer kernels and their naive references
 * (see include/fsb/layers.h). Reductions over many elements accumulate in double so that
 * the result does not depend on how a caller splits the work.
 */
#include "fsb/layers.h"
#include "fsb/blas.h"

#include <float.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

/* Hot copies: built for AVX-512, AVX2 and baseline x86-64, picked at load time (plain
 * copies and adds, so every variant gives the same bits). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FSB_HOT __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3")))
#else
#define FSB_HOT
#endif

FSB_HOT void fsb_im2col_rows(float *col, const float *inp, int C, int H, int W, int k, int y0,
                             int y1)
{
    /* Row (c,ki,kj) of the tile is the input plane shifted by (ki-p)*W + (kj-p): one long
     * contiguous copy per row, then the padding (rows outside the image, and the column
     * that wrapped around from the neighbouring image row) is zeroed. */
    int p = k / 2;
    long N = (long)(y1 - y0) * W, HW = (long)H * W;
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((long)(c * k + ki) * k + kj) * N;
                int dy = ki - p, dx = kj - p;
                int ya = y0 > -dy ? y0 : -dy, yb = y1 < H - dy ? y1 : H - dy;
                if (yb < ya) yb = ya = y1;
                for (long i = 0; i < (long)(ya - y0) * W; i++)
                    row[i] = 0.0f;
                for (long i = (long)(yb - y0) * W; i < N; i++)
                    row[i] = 0.0f;
                if (yb <= ya) continue;
                float *d = row + (long)(ya - y0) * W;
                const float *s = inp + c * HW + (long)(ya + dy) * W + dx;
                long n = (long)(yb - ya) * W;
                long i0 = dx < 0 ? -dx : 0, i1 = dx > 0 ? n - dx : n; /* stay in the plane */
                for (long i = i0; i < i1; i++)
                    d[i] = s[i];
                if (dx != 0) { /* the wrapped-around column is padding */
                    int xz = dx < 0 ? 0 : W - 1, adx = dx < 0 ? -dx : dx;
                    for (int q = 0; q < adx; q++) /* |dx| columns at the border */
                        for (int y = 0; y < yb - ya; y++)
                            d[(long)y * W + (dx < 0 ? xz + q : xz - q)] = 0.0f;
                }
            }
}

void fsb_im2col(float *col, const float *inp, int C, int H, int W, int k)
{
    fsb_im2col_rows(col, inp, C, H, W, k, 0, H);
}

FSB_HOT void fsb_col2im_add(float *dinp, const float *dcol, int C, int H, int W, int k)
{
    int p = k / 2;
    long HW = (long)H * W;
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                const float *row = dcol + ((long)(c * k + ki) * k + kj) * HW;
                int dx = kj - p;
                int x0 = dx < 0 ? -dx : 0, x1 = dx > 0 ? W - dx : W;
                for (int y = 0; y < H; y++) {
                    int sy = y + ki - p;
                    if (sy < 0 || sy >= H) continue;
                    const float *r = row + (long)y * W;
                    float *d = dinp + ((long)c * H + sy) * W + dx;
                    for (int x = x0; x < x1; x++)
                        d[x] += r[x];
                }
            }
}

void fsb_conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                        const float *bias, int B, int C, int H, int W, int OC, int k)
{
    // inp (B,C,H,W), weight (OC,C*k*k), out (B,OC,H,W)
    int HW = H * W, K = C * k * k;
    for (int b = 0; b < B; b++) {
        const float *x = inp + (long)b * C * HW;
        float *y = out + (long)b * OC * HW;
        const float *cm = x;
        if (k != 1) {
            fsb_im2col(col, x, C, H, W, k);
            cm = col;
        }
        fsb_sgemm(0, 0, OC, HW, K, 1.0f, weight, K, cm, HW, 0.0f, y, HW);
        if (bias)
            for (int o = 0; o < OC; o++)
                for (int i = 0; i < HW; i++)
                    y[(long)o * HW + i] += bias[o];
    }
}

void fsb_conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                         const float *inp, const float *weight, int B, int C, int H, int W, int OC,
                         int k)
{
    int HW = H * W, K = C * k * k;
    float *dcol = col + (long)K * HW;
    for (int b = 0; b < B; b++) {
        const float *x = inp + (long)b * C * HW;
        const float *dy = dout + (long)b * OC * HW;
        if (dbias)
            for (int o = 0; o < OC; o++) {
                double s = 0;
                for (int i = 0; i < HW; i++)
                    s += dy[(long)o * HW + i];
                dbias[o] += (float)s;
            }
        if (dweight) {
            const float *cm = x;
            if (k != 1) {
                fsb_im2col(col, x, C, H, W, k);
                cm = col;
            }
            // dweight (OC,K) += dy (OC,HW) @ col (K,HW)^T
            fsb_sgemm(0, 1, OC, K, HW, 1.0f, dy, HW, cm, HW, 1.0f, dweight, K);
        }
        if (dinp) {
            float *dx = dinp + (long)b * C * HW;
            if (k == 1) {
                fsb_sgemm(1, 0, C, HW, OC, 1.0f, weight, C, dy, HW, 1.0f, dx, HW);
            } else {
                // dcol (K,HW) = weight (OC,K)^T @ dy (OC,HW)
                fsb_sgemm(1, 0, K, HW, OC, 1.0f, weight, K, dy, HW, 0.0f, dcol, HW);
                fsb_col2im_add(dx, dcol, C, H, W, k);
            }
        }
    }
}

void fsb_conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                            int B, int C, int H, int W, int OC, int k)
{
    int p = k / 2;
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double s = bias ? bias[o] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int sy = y + ki - p, sx = x + kj - p;
                                if (sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
                                s += (double)weight[((o * C + c) * k + ki) * k + kj] *
                                     inp[(((long)b * C + c) * H + sy) * W + sx];
                            }
                    out[(((long)b * OC + o) * H + y) * W + x] = (float)s;
                }
}

void fsb_conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int B, int C, int H, int W,
                             int OC, int k)
{
    int p = k / 2;
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float g = dout[(((long)b * OC + o) * H + y) * W + x];
                    if (dbias) dbias[o] += g;
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int sy = y + ki - p, sx = x + kj - p;
                                if (sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
                                long wi = ((o * C + c) * k + ki) * k + kj;
                                long xi = (((long)b * C + c) * H + sy) * W + sx;
                                if (dweight) dweight[wi] += g * inp[xi];
                                if (dinp) dinp[xi] += g * weight[wi];
                            }
                }
}

void fsb_batchnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *gamma, const float *beta, float *running_mean,
                           float *running_var, int B, int C, int HW, int train)
{
    long n = (long)B * HW;
    for (int c = 0; c < C; c++) {
        double m, var;
        if (train) {
            double s = 0, ss = 0;
            for (int b = 0; b < B; b++) {
                const float *x = inp + ((long)b * C + c) * HW;
                for (int i = 0; i < HW; i++)
                    s += x[i], ss += (double)x[i] * x[i];
            }
            m = s / (double)n;
            var = ss / (double)n - m * m;
            if (var < 0) var = 0;
            if (running_mean) {
                double unb = n > 1 ? var * (double)n / (double)(n - 1) : var;
                running_mean[c] = (1 - FSB_BN_MOMENTUM) * running_mean[c] + FSB_BN_MOMENTUM * m;
                running_var[c] = (1 - FSB_BN_MOMENTUM) * running_var[c] + FSB_BN_MOMENTUM * unb;
            }
        } else {
            m = running_mean[c];
            var = running_var[c];
        }
        float r = (float)(1.0 / sqrt(var + FSB_BN_EPS));
        mean[c] = (float)m;
        rstd[c] = r;
        float a = gamma[c] * r, sh = beta[c] - (float)m * a;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((long)b * C + c) * HW;
            float *y = out + ((long)b * C + c) * HW;
            for (int i = 0; i < HW; i++)
                y[i] = x[i] * a + sh;
        }
    }
}

void fsb_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *inp, const float *mean, const float *rstd,
                            const float *gamma, int B, int C, int HW, int train)
{
    long n = (long)B * HW;
    for (int c = 0; c < C; c++) {
        double sd = 0, sdx = 0;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((long)b * C + c) * HW;
            const float *g = dout + ((long)b * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                sd += g[i];
                sdx += (double)g[i] * ((x[i] - mean[c]) * rstd[c]);
            }
        }
        if (dgamma) dgamma[c] += (float)sdx;
        if (dbeta) dbeta[c] += (float)sd;
        if (!dinp) continue;
        float k = gamma[c] * rstd[c];
        float md = train ? (float)(sd / (double)n) : 0.0f;
        float mdx = train ? (float)(sdx / (double)n) : 0.0f;
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((long)b * C + c) * HW;
            const float *g = dout + ((long)b * C + c) * HW;
            float *d = dinp + ((long)b * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                float xh = (x[i] - mean[c]) * rstd[c];
                d[i] += k * (g[i] - md - xh * mdx);
            }
        }
    }
}

void fsb_leaky_relu_forward(float *out, const float *inp, long n, float slope)
{
    for (long i = 0; i < n; i++)
        out[i] = inp[i] > 0 ? inp[i] : slope * inp[i];
}

void fsb_leaky_relu_backward(float *dinp, const float *dout, const float *inp, long n, float slope)
{
    for (long i = 0; i < n; i++)
        dinp[i] += inp[i] > 0 ? dout[i] : slope * dout[i];
}

void fsb_maxpool2_forward(float *out, uint8_t *argmax, const float *inp, int B, int C, int H, int W)
{
    int Ho = H / 2, Wo = W / 2;
    for (long pl = 0; pl < (long)B * C; pl++) {
        const float *x = inp + pl * H * W;
        for (int y = 0; y < Ho; y++)
            for (int xo = 0; xo < Wo; xo++) {
                const float *w = x + (long)2 * y * W + 2 * xo;
                float v[4] = {w[0], w[1], w[W], w[W + 1]};
                int a = 0;
                for (int j = 1; j < 4; j++)
                    if (v[j] > v[a]) a = j;
                out[(pl * Ho + y) * Wo + xo] = v[a];
                argmax[(pl * Ho + y) * Wo + xo] = (uint8_t)a;
            }
    }
}

void fsb_maxpool2_backward(float *dinp, const float *dout, const uint8_t *argmax, int B, int C,
                           int H, int W)
{
    int Ho = H / 2, Wo = W / 2;
    for (long pl = 0; pl < (long)B * C; pl++)
        for (int y = 0; y < Ho; y++)
            for (int xo = 0; xo < Wo; xo++) {
                long o = (pl * Ho + y) * Wo + xo;
                int a = argmax[o];
                dinp[pl * H * W + (long)(2 * y + (a >> 1)) * W + 2 * xo + (a & 1)] += dout[o];
            }
}

void fsb_global_maxpool_forward(float *out, int32_t *argmax, const float *inp, int B, int C, int HW)
{
    for (long pl = 0; pl < (long)B * C; pl++) {
        const float *x = inp + pl * HW;
        int a = 0;
        for (int i = 1; i < HW; i++)
            if (x[i] > x[a]) a = i;
        out[pl] = x[a];
        argmax[pl] = a;
    }
}

void fsb_global_maxpool_backward(float *dinp, const float *dout, const int32_t *argmax, int B,
                                 int C, int HW)
{
    for (long pl = 0; pl < (long)B * C; pl++)
        dinp[pl * HW + argmax[pl]] += dout[pl];
}

void fsb_global_avgpool_forward(float *out, const float *inp, int B, int C, int HW)
{
    for (long pl = 0; pl < (long)B * C; pl++) {
        double s = 0;
        for (int i = 0; i < HW; i++)
            s += inp[pl * HW + i];
        out[pl] = (float)(s / HW);
    }
}

void fsb_global_avgpool_backward(float *dinp, const float *dout, int B, int C, int HW)
{
    for (long pl = 0; pl < (long)B * C; pl++) {
        float g = dout[pl] / (float)HW;
        for (int i = 0; i < HW; i++)
            dinp[pl * HW + i] += g;
    }
}

void fsb_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                        int C, int OC)
{
    fsb_sgemm(0, 1, B, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
    if (bias)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < OC; o++)
                out[(long)b * OC + o] += bias[o];
}

void fsb_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, int C, int OC)
{
    if (dinp) // dinp (B,C) += dout (B,OC) @ weight (OC,C)
        fsb_sgemm(0, 0, B, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (dweight) // dweight (OC,C) += dout^T (OC,B) @ inp (B,C)
        fsb_sgemm(1, 0, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int b = 0; b < B; b++)
                s += dout[(long)b * OC + o];
            dbias[o] += (float)s;
        }
}

void fsb_dropout_forward(float *out, float *mask, const float *inp, long n, float p, fsb_rng *rng)
{
    float scale = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) {
        mask[i] = fsb_rng_uniformf(rng) >= p ? scale : 0.0f;
        out[i] = inp[i] * mask[i];
    }
}

void fsb_mask_backward(float *dinp, const float *dout, const float *mask, long n)
{
    for (long i = 0; i < n; i++)
        dinp[i] += dout[i] * mask[i];
}

float fsb_dropblock_gamma(float rate, long step, int feat, int block)
{
    double keep = 1.0 - (double)rate / 40000.0 * (double)step;
    if (keep < 1.0 - rate) keep = 1.0 - rate;
    double g = feat - block + 1;
    if (g < 1) g = 1;
    return (float)((1.0 - keep) / ((double)block * block) * (double)feat * feat / (g * g));
}

void fsb_dropblock_forward(float *out, float *mask, const float *inp, int B, int C, int H, int W,
                           int block, float gamma, fsb_rng *rng)
{
    long n = (long)B * C * H * W;
    int gh = H - block + 1, gw = W - block + 1;
    for (long i = 0; i < n; i++)
        mask[i] = 1.0f;
    for (long pl = 0; pl < (long)B * C; pl++)
        for (int i = 0; i < gh; i++)
            for (int j = 0; j < gw; j++) {
                if (!(fsb_rng_uniformf(rng) < gamma)) continue;
                for (int y = i; y < i + block && y < H; y++)
                    for (int x = j; x < j + block && x < W; x++)
                        mask[pl * H * W + (long)y * W + x] = 0.0f;
            }
    long ones = 0;
    for (long i = 0; i < n; i++)
        ones += mask[i] != 0.0f;
    float scale = ones ? (float)((double)n / (double)ones) : 1.0f;
    for (long i = 0; i < n; i++) {
        mask[i] = ones ? mask[i] * scale : 1.0f;
        out[i] = inp[i] * mask[i];
    }
}

void fsb_softmax(float *probs, const float *logits, int B, int NC, float tau)
{
    for (int b = 0; b < B; b++) {
        const float *z = logits + (long)b * NC;
        float *p = probs + (long)b * NC;
        float mx = -FLT_MAX;
        for (int k = 0; k < NC; k++)
            mx = z[k] / tau > mx ? z[k] / tau : mx;
        double s = 0;
        for (int k = 0; k < NC; k++)
            s += (p[k] = expf(z[k] / tau - mx));
        for (int k = 0; k < NC; k++)
            p[k] = (float)(p[k] / s);
    }
}

double fsb_softmax_xent(float *probs, float *dlogits, const float *logits, const int *targets,
                        int B, int NC, float scale)
{
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (long)b * NC;
        float mx = -FLT_MAX;
        for (int k = 0; k < NC; k++)
            mx = z[k] > mx ? z[k] : mx;
        double s = 0;
        for (int k = 0; k < NC; k++)
            s += exp((double)z[k] - mx);
        double lse = mx + log(s);
        loss += lse - z[targets[b]];
        for (int k = 0; k < NC; k++) {
            float p = (float)exp((double)z[k] - lse);
            if (probs) probs[(long)b * NC + k] = p;
            if (dlogits) dlogits[(long)b * NC + k] += scale * (p - (k == targets[b])) / (float)B;
        }
    }
    return loss / B;
}

double fsb_kl_div(float *probs, float *dlogits, const float *student_logits,
                  const float *teacher_probs, int B, int NC, float tau, float scale)
{
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *z = student_logits + (long)b * NC;
        const float *pt = teacher_probs + (long)b * NC;
        double mx = -DBL_MAX;
        for (int k = 0; k < NC; k++)
            mx = z[k] / tau > mx ? z[k] / tau : mx;
        double s = 0;
        for (int k = 0; k < NC; k++)
            s += exp(z[k] / tau - mx);
        double lse = mx + log(s);
        for (int k = 0; k < NC; k++) {
            double lps = z[k] / tau - lse;
            float ps = (float)exp(lps);
            if (pt[k] > 0) loss += pt[k] * (log((double)pt[k]) - lps);
            if (probs) probs[(long)b * NC + k] = ps;
            if (dlogits) dlogits[(long)b * NC + k] += scale * (ps - pt[k]) / (tau * (float)B);
        }
    }
    return loss / B;
}
