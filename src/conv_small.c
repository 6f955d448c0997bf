/* conv_small.c - direct 3x3 convolution (padding 1, stride 1) for few input channels
 * (ConvNet-4's first layer, 3 -> 64 channels): forward and weight gradient of one image
 * (see include/fsb/layers.h). With K = 9*C tiny, im2col + GEMM is memory-bound; here the
 * zero-padded input (a few KB per row strip) stays in L1 and each output is written once.
 * AVX-512 kernels (16 columns x 8 output channels per step) with a portable C fallback.
 * Output channels are independent: the _part functions compute a range of them with the
 * same bits as the whole call (which is the range [0, OC)).
 */
#include "fsb/layers.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FSB_HAVE_X86 1
/* AVX-512 kernels, optimised at -O3 in every build type: at -O2 (RelWithDebInfo, the
 * default) GCC 12 keeps the 24 accumulators of a register block in memory, about 3x
 * slower. The arithmetic is the intrinsics' (same bits at any level). */
#if defined(__clang__)
#define FSB_KERNEL __attribute__((target("avx512f")))
#else
#define FSB_KERNEL __attribute__((target("avx512f"), optimize("O3")))
#endif
#endif
#include <string.h>

#define OCB 8 /* output channels per register block */
#define XB 3  /* 16-column vectors per register block (forward) */
#define RS 4  /* rows per strip (weight gradient) */

/* Padded row length: a whole number of XB*16-column blocks plus 16 slack columns for the
 * kj = 1, 2 shifts, so every vector load stays inside the (zeroed) row. */
static long pad_w(int W)
{
    long nb = (W + XB * 16 - 1) / (XB * 16);
    return nb * XB * 16 + 16;
}

/* Floats of the zero-padded input. */
static long pad_size(int C, int H, int W)
{
    return (long)C * (H + 2) * pad_w(W);
}

long fsb_conv3_small_scratch(int C, int H, int W, int OC)
{
    return pad_size(C, H, W) + (long)OC * 9 * C * 16;
}

/* pad (C, H+2, pw) = inp with one zero row/column around it and zeros to the right. */
static void make_pad(float *pad, const float *inp, int C, int H, int W)
{
    long pw = pad_w(W);
    memset(pad, 0, sizeof(float) * (size_t)pad_size(C, H, W));
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            memcpy(pad + ((long)c * (H + 2) + y + 1) * pw + 1, inp + ((long)c * H + y) * W,
                   sizeof(float) * (size_t)W);
}

int fsb_conv3_small_simd(void)
{
#ifdef FSB_HAVE_X86
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

/* Portable forward of output channels [o0, o1): each output summed in tap order. */
static void fwd_portable(float *out, const float *pad, const float *weight, int C, int H, int W,
                         int o0, int o1)
{
    long pw = pad_w(W);
    int K = 9 * C;
    for (int o = o0; o < o1; o++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float s = 0;
                for (int c = 0; c < C; c++)
                    for (int ki = 0; ki < 3; ki++) {
                        const float *p = pad + ((long)c * (H + 2) + y + ki) * pw + x;
                        const float *w = weight + (long)o * K + c * 9 + ki * 3;
                        s += w[0] * p[0] + w[1] * p[1] + w[2] * p[2];
                    }
                out[((long)o * H + y) * W + x] = s;
            }
}

#ifdef FSB_HAVE_X86
/* Output channels o0..o0+7, all rows: per row and per block of XB*16 columns, 24 float
 * accumulators; each tap loads XB input vectors and broadcasts OCB weights. */
FSB_KERNEL static void fwd_avx512(float *out, double *mom, const float *pad, const float *weight,
                                  int C, int H, int W, int o0, int OC)
{
    long pw = pad_w(W);
    int K = 9 * C;
    const float *wb = weight + (long)o0 * K;
    float sh[OCB];           /* moment shift: each plane's first output */
    double ds[OCB], dq[OCB]; /* Σ(v - sh), Σ(v - sh)^2 of the rows so far */
    __m512 ls[OCB], lq[OCB]; /* the same over the current row, per lane */
    for (int j = 0; j < OCB; j++)
        ds[j] = dq[j] = 0;
    for (int y = 0; y < H; y++) {
        for (int j = 0; j < OCB; j++)
            ls[j] = lq[j] = _mm512_setzero_ps();
        for (int x0 = 0; x0 < W; x0 += XB * 16) {
            __m512 acc[OCB][XB];
            for (int j = 0; j < OCB; j++)
                for (int v = 0; v < XB; v++)
                    acc[j][v] = _mm512_setzero_ps();
            for (int c = 0; c < C; c++)
                for (int ki = 0; ki < 3; ki++) {
                    const float *p = pad + ((long)c * (H + 2) + y + ki) * pw + x0;
                    for (int kj = 0; kj < 3; kj++) {
                        int t = c * 9 + ki * 3 + kj;
                        __m512 in[XB];
                        for (int v = 0; v < XB; v++)
                            in[v] = _mm512_loadu_ps(p + kj + 16 * v);
                        for (int j = 0; j < OCB; j++) {
                            __m512 wv = _mm512_set1_ps(wb[(long)j * K + t]);
                            for (int v = 0; v < XB; v++)
                                acc[j][v] = _mm512_fmadd_ps(wv, in[v], acc[j][v]);
                        }
                    }
                }
            for (int v = 0; v < XB; v++) {
                int x = x0 + 16 * v, rem = W - x;
                if (rem <= 0) break;
                __mmask16 mk = (__mmask16)(rem >= 16 ? 0xffffu : (1u << rem) - 1);
                for (int j = 0; j < OCB; j++) {
                    _mm512_mask_storeu_ps(out + ((long)(o0 + j) * H + y) * W + x, mk, acc[j][v]);
                    if (!mom) continue;
                    if (y == 0 && x == 0) sh[j] = _mm512_cvtss_f32(acc[j][v]);
                    __m512 d = _mm512_maskz_sub_ps(mk, acc[j][v], _mm512_set1_ps(sh[j]));
                    ls[j] = _mm512_add_ps(ls[j], d);
                    lq[j] = _mm512_fmadd_ps(d, d, lq[j]);
                }
            }
        }
        if (mom)
            for (int j = 0; j < OCB; j++) {
                ds[j] += _mm512_reduce_add_ps(ls[j]);
                dq[j] += _mm512_reduce_add_ps(lq[j]);
            }
    }
    if (mom)
        for (int j = 0; j < OCB; j++) {
            double n = (double)H * W, ms = ds[j] / n, v = dq[j] - n * ms * ms;
            mom[o0 + j] = sh[j] + ms;
            mom[OC + o0 + j] = v > 0 ? v : 0;
        }
}

/* dW of output channels o0..o0+7 from d0 (channel o0+j at d0 + j * cs, (H,W) each): per
 * strip of RS rows and per (c, ki), 8 x 3 lane accumulators over the strip's pixels (dout
 * masked to 0 past W), added to the lane sums acc (OC, K, 16) in strip order; channels
 * below `from` (an overlapping last block) are left alone. */
FSB_KERNEL static void dw_block_avx512(float *acc, const float *pad, const float *d0, long cs,
                                       int C, int H, int W, int o0, int from)
{
    long pw = pad_w(W);
    int K = 9 * C;
    for (int y0 = 0; y0 < H; y0 += RS) {
        int y1 = y0 + RS < H ? y0 + RS : H;
        for (int c = 0; c < C; c++)
            for (int ki = 0; ki < 3; ki++) {
                __m512 a[OCB][3];
                for (int j = 0; j < OCB; j++)
                    for (int kj = 0; kj < 3; kj++)
                        a[j][kj] = _mm512_setzero_ps();
                for (int y = y0; y < y1; y++) {
                    const float *p = pad + ((long)c * (H + 2) + y + ki) * pw;
                    const float *d = d0 + (long)y * W;
                    for (int x = 0; x < W; x += 16) {
                        int rem = W - x;
                        __mmask16 mk = (__mmask16)(rem >= 16 ? 0xffffu : (1u << rem) - 1);
                        __m512 in0 = _mm512_loadu_ps(p + x), in1 = _mm512_loadu_ps(p + x + 1),
                               in2 = _mm512_loadu_ps(p + x + 2);
                        for (int j = 0; j < OCB; j++) {
                            __m512 dv = _mm512_maskz_loadu_ps(mk, d + j * cs + x);
                            a[j][0] = _mm512_fmadd_ps(dv, in0, a[j][0]);
                            a[j][1] = _mm512_fmadd_ps(dv, in1, a[j][1]);
                            a[j][2] = _mm512_fmadd_ps(dv, in2, a[j][2]);
                        }
                    }
                }
                for (int j = from - o0; j < OCB; j++)
                    for (int kj = 0; kj < 3; kj++) {
                        float *q = acc + ((long)(o0 + j) * K + c * 9 + ki * 3 + kj) * 16;
                        _mm512_storeu_ps(q, _mm512_add_ps(_mm512_loadu_ps(q), a[j][kj]));
                    }
            }
    }
}

/* dweight (+)= the 16 lanes of acc (OC, K, 16), each reduced in a fixed order. */
FSB_KERNEL static void dw_reduce_avx512(float *dweight, const float *acc, long n, int accumulate)
{
    for (long q = 0; q < n; q++) {
        float s = _mm512_reduce_add_ps(_mm512_loadu_ps(acc + q * 16));
        dweight[q] = accumulate ? dweight[q] + s : s;
    }
}
#endif

/* Start of block b of the output channels [o0, o1), o1 - o0 >= OCB: the last block
 * overlaps its predecessor (recomputing the same values) instead of needing a remainder
 * kernel. Every channel's arithmetic is the same in whichever block computes it. */
static int block_start(int b, int o0, int o1)
{
    return o0 + b * OCB + OCB <= o1 ? o0 + b * OCB : o1 - OCB;
}

void fsb_conv3_small_forward(float *out, double *mom, float *pad, const float *inp,
                             const float *weight, int C, int H, int W, int OC, int simd)
{
    fsb_conv3_small_forward_part(out, mom, pad, inp, weight, C, H, W, OC, 0, OC, simd);
}

void fsb_conv3_small_forward_part(float *out, double *mom, float *pad, const float *inp,
                                  const float *weight, int C, int H, int W, int OC, int o0, int o1,
                                  int simd)
{
    make_pad(pad, inp, C, H, W);
#ifdef FSB_HAVE_X86
    if (simd && o1 - o0 >= OCB && fsb_conv3_small_simd()) {
        for (int b = 0; o0 + b * OCB < o1; b++)
            fwd_avx512(out, mom, pad, weight, C, H, W, block_start(b, o0, o1), OC);
        return;
    }
#endif
    fwd_portable(out, pad, weight, C, H, W, o0, o1);
    long n = (long)H * W;
    for (int o = o0; mom && o < o1; o++) { /* two passes in double */
        const float *p = out + o * n;
        double s = 0, q = 0;
        for (long i = 0; i < n; i++)
            s += p[i];
        s /= (double)n;
        for (long i = 0; i < n; i++)
            q += (p[i] - s) * (p[i] - s);
        mom[o] = s;
        mom[OC + o] = q;
    }
}

void fsb_conv3_small_dweight_fn(float *dweight, float *pad, fsb_conv3_dout_fn dout, void *ctx,
                                const float *inp, int C, int H, int W, int OC, int accumulate,
                                int simd)
{
    fsb_conv3_small_dweight_fn_part(dweight, pad, dout, ctx, inp, C, H, W, OC, 0, OC, accumulate,
                                    simd);
}

void fsb_conv3_small_dweight_fn_part(float *dweight, float *pad, fsb_conv3_dout_fn dout, void *ctx,
                                     const float *inp, int C, int H, int W, int OC, int c0, int c1,
                                     int accumulate, int simd)
{
    make_pad(pad, inp, C, H, W);
    int K = 9 * C;
    long pw = pad_w(W), n = (long)(c1 - c0) * K;
    float *acc = pad + pad_size(C, H, W);
#ifdef FSB_HAVE_X86
    if (simd && c1 - c0 >= OCB && fsb_conv3_small_simd()) {
        memset(acc + (long)c0 * K * 16, 0, sizeof(float) * (size_t)n * 16);
        for (int b = 0; c0 + b * OCB < c1; b++) {
            int o0 = block_start(b, c0, c1);
            long cs;
            const float *d = dout(ctx, o0, OCB, &cs);
            dw_block_avx512(acc, pad, d, cs, C, H, W, o0, c0 + b * OCB);
        }
        dw_reduce_avx512(dweight + (long)c0 * K, acc + (long)c0 * K * 16, n, accumulate);
        return;
    }
#endif
    (void)OC;
    for (int o0 = c0; o0 < c1; o0 += OCB) {
        int nb = c1 - o0 < OCB ? c1 - o0 : OCB;
        long cs;
        const float *d = dout(ctx, o0, nb, &cs);
        for (int o = o0; o < o0 + nb; o++)
            for (int t = 0; t < K; t++) {
                int c = t / 9, ki = t % 9 / 3, kj = t % 3;
                float s = 0;
                for (int y = 0; y < H; y++) {
                    const float *p = pad + ((long)c * (H + 2) + y + ki) * pw + kj;
                    const float *dr = d + (o - o0) * cs + (long)y * W;
                    for (int x = 0; x < W; x++)
                        s += dr[x] * p[x];
                }
                float *g = dweight + (long)o * K + t;
                *g = accumulate ? *g + s : s;
            }
    }
}

/* Context of the dense dout version: the whole (OC,H,W) array. */
typedef struct dense_rows {
    const float *dout; /* (OC,H,W) */
    int H, W;          /* its plane */
} dense_rows;

static const float *dense_rows_fn(void *ctx, int o0, int n, long *cstride)
{
    const dense_rows *d = ctx;
    (void)n;
    *cstride = (long)d->H * d->W;
    return d->dout + o0 * *cstride;
}

void fsb_conv3_small_dweight(float *dweight, float *pad, const float *dout, const float *inp, int C,
                             int H, int W, int OC, int accumulate, int simd)
{
    fsb_conv3_small_dweight_part(dweight, pad, dout, inp, C, H, W, OC, 0, OC, accumulate, simd);
}

void fsb_conv3_small_dweight_part(float *dweight, float *pad, const float *dout, const float *inp,
                                  int C, int H, int W, int OC, int c0, int c1, int accumulate,
                                  int simd)
{
    dense_rows d = {.dout = dout, .H = H, .W = W};
    fsb_conv3_small_dweight_fn_part(dweight, pad, dense_rows_fn, &d, inp, C, H, W, OC, c0, c1,
                                    accumulate, simd);
}
