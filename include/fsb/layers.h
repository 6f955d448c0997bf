/* layers.h - neural-network layers as forward/backward pairs on raw float arrays (NCHW).
 *
 * llm.c style: outputs first, shapes in comments; forward saves what backward needs in
 * caller-owned named buffers; backward ACCUMULATES (+=) into dinp/dweight/dbias, which the
 * caller zeroes once per step (pass NULL for a gradient that is not wanted). No function
 * allocates. These are the plain, single-threaded kernels the tests check by finite
 * differences; src/model.c composes the same arithmetic, fused and threaded, for speed.
 */
#ifndef FSB_LAYERS_H
#define FSB_LAYERS_H

#include "fsb/rng.h"

#include <stdint.h>

/* ---- convolution: k x k (k = 3 or 1), padding k/2, stride 1 ---------------------- */

/* col (C*k*k, H*W) = the im2col matrix of one image inp (C,H,W): row (c*k + ki)*k + kj,
 * column y*W + x holds inp[c, y+ki-k/2, x+kj-k/2] (0 outside the image). */
void fsb_im2col(float *col, const float *inp, int C, int H, int W, int k);
/* The same for output rows y0..y1-1 only: col (C*k*k, (y1-y0)*W) (a spatial tile). */
void fsb_im2col_rows(float *col, const float *inp, int C, int H, int W, int k, int y0, int y1);
/* dinp (C,H,W) += the adjoint of fsb_im2col applied to dcol (C*k*k, H*W). */
void fsb_col2im_add(float *dinp, const float *dcol, int C, int H, int W, int k);

/* out (B,OC,H,W) = conv(inp (B,C,H,W), weight (OC,C,k,k)) + bias (OC) (bias may be NULL).
 * col: scratch of C*k*k*H*W floats (unused when k == 1). One GEMM per image. */
void fsb_conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                        const float *bias, int B, int C, int H, int W, int OC, int k);
/* Accumulates dinp (B,C,H,W), dweight (OC,C,k,k), dbias (OC); any may be NULL.
 * col: scratch of 2 * C*k*k*H*W floats. */
void fsb_conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                         const float *inp, const float *weight, int B, int C, int H, int W, int OC,
                         int k);
/* Naive direct-loop references of the two functions above (tests only; no scratch). */
void fsb_conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                            int B, int C, int H, int W, int OC, int k);
void fsb_conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int B, int C, int H, int W,
                             int OC, int k);

/* ---- direct 3x3 convolution for few input channels (src/conv_small.c) ------------ */

/* Floats of scratch the two functions below need (a zero-padded copy of the input plus
 * lane accumulators); caller-owned. */
long fsb_conv3_small_scratch(int C, int H, int W, int OC);
/* 1 if simd != 0 in the two functions below selects the AVX-512 kernels on this CPU. */
int fsb_conv3_small_simd(void);
/* out (OC,H,W) = conv3x3(inp (C,H,W), weight (OC,C,3,3)), padding 1, no bias, ONE image,
 * by direct loops (meant for C <= 4, where im2col + GEMM is memory-bound). mom (2*OC) (if
 * not NULL) receives each output plane's mean (mom[o]) and M2 = Σ(v - mean)^2 (mom[OC+o]),
 * computed while the outputs are in registers. simd != 0 uses AVX-512 when the CPU has it
 * and OC >= 8, else portable C; each path is deterministic. */
void fsb_conv3_small_forward(float *out, double *mom, float *scratch, const float *inp,
                             const float *weight, int C, int H, int W, int OC, int simd);
/* dweight (OC,C,3,3) = (accumulate ? dweight : 0) + the weight gradient of the forward
 * above for dout (OC,H,W) and inp (C,H,W), one image. simd as above. */
void fsb_conv3_small_dweight(float *dweight, float *scratch, const float *dout, const float *inp,
                             int C, int H, int W, int OC, int accumulate, int simd);
/* Supplies output channels o0..o0+n-1 (n <= 8) of dout for the weight gradient: returns p
 * with channel o0+q at p + q * *cstride, (H,W) row-major. Called with increasing o0; blocks
 * may overlap (a channel asked twice must get the same values); the returned data must
 * stay valid until the next call. */
typedef const float *(*fsb_conv3_dout_fn)(void *ctx, int o0, int n, long *cstride);
/* fsb_conv3_small_dweight with dout produced 8 channels at a time (e.g. fused with the
 * backward of what follows the conv, so that dout is never materialised whole). */
void fsb_conv3_small_dweight_fn(float *dweight, float *scratch, fsb_conv3_dout_fn dout, void *ctx,
                                const float *inp, int C, int H, int W, int OC, int accumulate,
                                int simd);
/* The three functions above restricted to the output channels [o0, o1) (for splitting one
 * image's work over threads): arrays and OC are the whole ones (out (OC,H,W), mom (2*OC),
 * dweight (OC,C,3,3), dout (OC,H,W) or channels o0.. asked from the callback), only the
 * range is read or written, each value with the same bits as in the whole call provided
 * o1 - o0 >= 8 when OC >= 8 (the SIMD kernels work on 8 channels). scratch is a whole
 * fsb_conv3_small_scratch; ranges may run concurrently only with separate scratch. */
void fsb_conv3_small_forward_part(float *out, double *mom, float *scratch, const float *inp,
                                  const float *weight, int C, int H, int W, int OC, int o0, int o1,
                                  int simd);
void fsb_conv3_small_dweight_part(float *dweight, float *scratch, const float *dout,
                                  const float *inp, int C, int H, int W, int OC, int o0, int o1,
                                  int accumulate, int simd);
void fsb_conv3_small_dweight_fn_part(float *dweight, float *scratch, fsb_conv3_dout_fn dout,
                                     void *ctx, const float *inp, int C, int H, int W, int OC,
                                     int o0, int o1, int accumulate, int simd);

/* ---- 3x3 convolution through oneDNN (src/conv_dnnl.c) ---------------------------- */

/* Stride 1, padding 1, no bias, fp32, on oneDNN's primitives with their own blocked layouts
 * inside each call (plain NCHW / OIHW at the boundary). Only in a build with oneDNN
 * (FSB_HAVE_ONEDNN; fsb_dnnl_available()); without it fsb_dnnl_create fails with
 * FSB_EINVAL ("built without oneDNN") and the other calls cannot be reached.
 *
 * A fsb_dnnl caches, per operation, batch size and shape, the primitive, its scratchpad,
 * its reorders and blocked buffers (created on first use, kept until destroy); it is used
 * by one thread at a time. Every call makes the calling thread's OpenMP team size 1, so each
 * primitive is created for and runs on that one thread: the bits depend on the shapes and
 * the CPU's instruction set, never on OMP_NUM_THREADS or on which thread calls. Functions
 * return FSB_OK or FSB_EINTERNAL / FSB_ENOMEM (oneDNN failed, message set). */
typedef struct fsb_dnnl fsb_dnnl;

/* 1 if fsbench was built with oneDNN; its version ("2.6.3") or NULL. */
int fsb_dnnl_available(void);
const char *fsb_dnnl_version(void);
/* The calling thread's OpenMP team size as oneDNN sees it (1 after any fsb_dnnl call on
 * this thread; 0 without oneDNN). */
int fsb_dnnl_threads(void);
int fsb_dnnl_create(fsb_dnnl **out);
void fsb_dnnl_destroy(fsb_dnnl *d); /* NULL is a no-op */
/* Floats of the blocked weights of a (B,C,H,W) -> (B,OC,H,W) convolution in the forward's
 * (*nf) and the backward-data's (*nb) layout. */
int fsb_dnnl_weights_floats(fsb_dnnl *d, int B, int C, int H, int W, int OC, long *nf, long *nb);
/* wf / wb (either may be NULL) = weight (OC,C,3,3) in those layouts, for the calls below
 * with the same B and shape. */
int fsb_dnnl_weights(fsb_dnnl *d, float *wf, float *wb, const float *weight, int B, int C, int H,
                     int W, int OC);
/* out (B,OC,H,W) = conv(inp (B,C,H,W), wf). */
int fsb_dnnl_forward(fsb_dnnl *d, float *out, const float *inp, const float *wf, int B, int C,
                     int H, int W, int OC);
/* dinp (B,C,H,W) += the input gradient for dout (B,OC,H,W), weights wb. */
int fsb_dnnl_backward_data(fsb_dnnl *d, float *dinp, const float *dout, const float *wb, int B,
                           int C, int H, int W, int OC);
/* dweight (OC,C,3,3) = the weight gradient summed over the batch (overwritten). */
int fsb_dnnl_backward_weights(fsb_dnnl *d, float *dweight, const float *dout, const float *inp,
                              int B, int C, int H, int W, int OC);

/* ---- batch normalisation (PyTorch BatchNorm2d semantics) ------------------------- */

#define FSB_BN_EPS 1e-5f
#define FSB_BN_MOMENTUM 0.1f

/* out (B,C,HW) = gamma * (inp - m) * r + beta per channel.
 * train != 0: m, var = batch mean and biased variance over (B,HW); saved as mean (C) and
 *   rstd (C) = 1/sqrt(var + eps); running_mean/var (C) (if not NULL) move by momentum 0.1
 *   towards m and the UNBIASED variance var * n/(n-1), n = B*HW.
 * train == 0: m = running_mean, var = running_var; mean/rstd receive them the same way. */
void fsb_batchnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *gamma, const float *beta, float *running_mean,
                           float *running_var, int B, int C, int HW, int train);
/* Accumulates dinp, dgamma, dbeta from dout, with mean/rstd saved by forward. train selects
 * the batch-statistics gradient (mean and variance depend on inp) or the eval one. */
void fsb_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *inp, const float *mean, const float *rstd,
                            const float *gamma, int B, int C, int HW, int train);

/* ---- activations (slope 0 = ReLU, 0.1 = LeakyReLU(0.1)) -------------------------- */

/* out (n) = inp > 0 ? inp : slope * inp. */
void fsb_leaky_relu_forward(float *out, const float *inp, long n, float slope);
/* dinp += dout * (inp > 0 ? 1 : slope). */
void fsb_leaky_relu_backward(float *dinp, const float *dout, const float *inp, long n, float slope);

/* ---- pooling --------------------------------------------------------------------- */

/* out (B,C,H/2,W/2) = max over 2x2 windows with stride 2 (floor: a trailing odd row/column
 * is ignored). argmax (B,C,H/2,W/2) saves the winner's position in its window
 * (dy*2 + dx; the first maximum in row-major order wins ties). */
void fsb_maxpool2_forward(float *out, uint8_t *argmax, const float *inp, int B, int C, int H,
                          int W);
/* dinp (B,C,H,W) += dout routed to the saved winners. */
void fsb_maxpool2_backward(float *dinp, const float *dout, const uint8_t *argmax, int B, int C,
                           int H, int W);
/* out (B,C) = max over HW; argmax (B,C) the first winning index. */
void fsb_global_maxpool_forward(float *out, int32_t *argmax, const float *inp, int B, int C,
                                int HW);
void fsb_global_maxpool_backward(float *dinp, const float *dout, const int32_t *argmax, int B,
                                 int C, int HW);
/* out (B,C) = mean over HW. */
void fsb_global_avgpool_forward(float *out, const float *inp, int B, int C, int HW);
void fsb_global_avgpool_backward(float *dinp, const float *dout, int B, int C, int HW);

/* ---- linear ---------------------------------------------------------------------- */

/* out (B,OC) = inp (B,C) @ weight (OC,C)^T + bias (OC) (bias may be NULL). */
void fsb_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                        int C, int OC);
/* Accumulates dinp (B,C), dweight (OC,C), dbias (OC); any may be NULL. */
void fsb_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, int C, int OC);

/* ---- regularisers (training only; masks from an explicit rng) --------------------- */

/* Dropout with drop probability p in [0,1): mask (n) = keep ? 1/(1-p) : 0 with keep drawn
 * as fsb_rng_uniformf(rng) >= p, element by element in order; out = inp * mask. */
void fsb_dropout_forward(float *out, float *mask, const float *inp, long n, float p, fsb_rng *rng);
/* dinp += dout * mask (also the backward of DropBlock). */
void fsb_mask_backward(float *dinp, const float *dout, const float *mask, long n);

/* The DropBlock seed probability of FEAT/MetaOptNet's ResNet-12 for a feature map of side
 * `feat`: keep = max(1 - rate * step / 40000, 1 - rate) (a warm-up over the block's first
 * 40,000 training forwards, `step` counted from 1), and
 * gamma = (1 - keep) / block^2 * feat^2 / (feat - block + 1)^2. */
float fsb_dropblock_gamma(float rate, long step, int feat, int block);
/* DropBlock (Ghiasi et al. 2018; FEAT's implementation): seeds ~ Bernoulli(gamma) on the
 * (H-block+1) x (W-block+1) grid of each (b,c) plane, drawn in (b,c,i,j) order; a seed at
 * (i,j) zeroes rows i..i+block-1, columns j..j+block-1. mask (B,C,H,W) = 0 there, else
 * count/ones (count = B*C*H*W, ones = the number of kept positions; all ones if nothing is
 * kept); out = inp * mask. */
void fsb_dropblock_forward(float *out, float *mask, const float *inp, int B, int C, int H, int W,
                           int block, float gamma, fsb_rng *rng);

/* ---- losses ---------------------------------------------------------------------- */

/* Softmax cross-entropy, mean over the batch: returns -1/B sum_b log softmax(logits_b)[t_b].
 * probs (B,NC) receives the softmax; dlogits (B,NC) (if not NULL) += scale * (probs -
 * onehot(t)) / B. targets in [0, NC). */
double fsb_softmax_xent(float *probs, float *dlogits, const float *logits, const int *targets,
                        int B, int NC, float scale);
/* Softmax with temperature: probs (B,NC) = softmax(logits / tau). */
void fsb_softmax(float *probs, const float *logits, int B, int NC, float tau);
/* KL(P_T || P_S) with P_S = softmax(student_logits / tau), P_T = teacher_probs (B,NC),
 * mean over the batch, with NO tau^2 factor (REFILLED stage 2). Returns the loss; dlogits
 * (if not NULL) += scale * (P_S - P_T) / (tau * B). probs (B,NC) receives P_S. Terms with
 * P_T = 0 contribute 0. */
double fsb_kl_div(float *probs, float *dlogits, const float *student_logits,
                  const float *teacher_probs, int B, int NC, float tau, float scale);

#endif
