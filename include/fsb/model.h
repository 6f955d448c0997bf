/* model.h - the two backbones (ConvNet-4, ResNet-12) with a linear head: training and
 * inference on the CPU, threaded over images, bit-reproducible.
 *
 * A model owns ONE parameter allocation (PyTorch state_dict order, seen through
 * fsb_model_tensor_at), one gradient allocation of the same layout, BN running statistics
 * apart, and every activation/workspace buffer for `max_batch` images of in_hw x in_hw,
 * allocated at create time: forward/backward never allocate. Images are float NCHW
 * (n,3,in_hw,in_hw), already normalised.
 *
 * Threads: work is split per image over the fsb_pool given at create (borrowed), and
 * below 16 images each image's work further (channel groups, row tiles, weight-gradient
 * column groups: a fixed rule of the shapes and the batch size, never of the pool size,
 * with the same arithmetic as per image); OpenBLAS is set to 1 thread. Per-image results
 * (eval forward, embeddings) never depend on the thread count. Batch reductions (BN
 * statistics, BN/bias gradients) are per-image partial sums added in image order; weight
 * gradients are per-chunk partials (opts.grad_splits fixed chunks of the batch) added in
 * chunk order, so a training step gives the same bits for the same seed and grad_splits
 * whatever the thread count.
 *
 * Blocks: ConvNet-4 has 4 blocks conv3x3(bias)-BN-ReLU-maxpool2; ResNet-12 4 residual blocks
 * (FEAT/MetaOptNet, see docs/protocol.md). Stage s (0..4) names the input of block s;
 * stage 4 is the embedding. Frozen blocks (fsb_model_set_adapt) always run in eval mode (running BN
 * statistics, no dropout) so their outputs can be computed once (fsb_model_forward_to) and
 * steps run only through the trainable part (fsb_model_forward_from).
 *
 * Initialisation of a fresh model (drawn from the given rng in tensor order, element order):
 * ConvNet-4 like PyTorch's defaults (conv weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
 * i.e. kaiming_uniform a=sqrt(5)); ResNet-12 like FEAT (conv kaiming_normal, mode fan_out,
 * gain sqrt(2): N(0, 2/(out*k*k)), Box-Muller); BN weight 1, bias 0, running mean 0, var 1;
 * head like nn.Linear (weight and bias U(-1/sqrt(D), 1/sqrt(D))).
 */
#ifndef FSB_MODEL_H
#define FSB_MODEL_H

#include "fsb/rng.h"
#include "fsb/tensorfile.h"
#include "fsb/threads.h"

#include <stdint.h>

typedef enum { FSB_ARCH_CONV4 = 0, FSB_ARCH_RES12 = 1 } fsb_arch;

/* Which part is trained: everything, the last block + head, or the head only. */
typedef enum { FSB_ADAPT_ALL = 0, FSB_ADAPT_LAST = 1, FSB_ADAPT_HEAD = 2 } fsb_adapt;

#define FSB_MODEL_BLOCKS 4

/* How the 3x3 convolutions on >= 16 input channels run (fsb_model_opts.conv). GEMM: im2col +
 * OpenBLAS sgemm (the default, and the reference). ONEDNN: oneDNN's primitives (forward,
 * input gradient, weight gradient), each call on one thread inside the engine's own tasks
 * (forward and input gradient per image, the weight gradient per grad_splits chunk, partials
 * summed in chunk order as with GEMM), so the bits are the same at any thread count, but
 * not the GEMM path's bits (within float tolerance of them). Only in a build with oneDNN
 * (fsb_dnnl_available(); fsb_model_create refuses it otherwise). Every other convolution
 * (the first 3->F one, 1x1 shortcuts, fewer than 16 input channels) stays on GEMM / the
 * direct kernel. docs/performance.md. */
typedef enum { FSB_CONV_GEMM = 0, FSB_CONV_ONEDNN = 1 } fsb_conv_backend;

typedef struct fsb_model_opts {
    fsb_arch arch;         /* conv4 or res12 */
    int widths[4];         /* channels per block (conv4 default 64 x4; res12 64,160,320,640) */
    int in_hw;             /* input height = width (default 84) */
    int flatten;           /* conv4 only: embedding = flattened last map (1600-d at 84) */
    float drop_rate;       /* res12: dropout in blocks 1-2 (default 0.1; 0 disables) */
    float dropblock_rate;  /* res12: DropBlock rate in blocks 3-4 (default 0.1; 0 disables);
                              its warm-up counts train-mode forwards only (FEAT's counts
                              every forward, eval included, so it ramps up sooner) */
    int dropblock_size;    /* res12: DropBlock block size (default 5) */
    int grad_splits;       /* fixed batch chunks for weight-gradient partials (default 4) */
    int per_image;         /* 1: one task per image even below 16 images (the engine before
                              the small-batch split, for before/after measurements; the
                              same bits either way); default 0 */
    fsb_conv_backend conv; /* convolution backend (above); default FSB_CONV_GEMM */
} fsb_model_opts;

/* Defaults for an architecture (see the field comments). */
void fsb_model_opts_default(fsb_model_opts *o, fsb_arch arch);
/* "conv4" / "res12" -> arch; FSB_EINVAL naming the text otherwise. */
int fsb_arch_parse(const char *text, fsb_arch *out);
const char *fsb_arch_name(fsb_arch arch);
/* "gemm" / "onednn" -> backend; FSB_EINVAL naming the text otherwise. */
int fsb_conv_parse(const char *text, fsb_conv_backend *out);
const char *fsb_conv_name(fsb_conv_backend conv);

typedef struct fsb_model fsb_model;

/* Checkpoints claiming more are refused before anything is allocated for them. */
#define FSB_MODEL_MAX_WIDTH 2048      /* channels of a block */
#define FSB_MODEL_MAX_CLASSES 1000000 /* head classes */

/* Create a model for batches of up to max_batch images with an n_class-way head (0 = no
 * head). Parameters are initialised from init_rng (see the top comment; NULL: conv and head
 * weights are zero, for a model that is loaded next); pool (borrowed, may be NULL =
 * single-threaded) must outlive the model. Sets OpenBLAS to 1 thread (process-wide).
 * FSB_EINVAL / FSB_ENOMEM on failure (FSB_EINVAL "built without oneDNN" for opts->conv
 * FSB_CONV_ONEDNN in a build without it). */
int fsb_model_create(fsb_model **out, const fsb_model_opts *opts, int n_class, int max_batch,
                     fsb_pool *pool, fsb_rng *init_rng);
/* Free everything; NULL is a no-op. */
void fsb_model_destroy(fsb_model *m);

const fsb_model_opts *fsb_model_options(const fsb_model *m);
int fsb_model_embed_dim(const fsb_model *m); /* D: 64 (conv4), 1600 (conv4 flat), w4 (res12) */
int fsb_model_n_class(const fsb_model *m);
int fsb_model_max_batch(const fsb_model *m);
/* Shape of the activation at stage s (0..4): (c,h,w); stage 4 = (D,1,1). */
void fsb_model_stage_shape(const fsb_model *m, int stage, int *c, int *h, int *w);

/* ---- inference and training ------------------------------------------------------- */

/* out (n,D) = eval-mode embeddings of images (n,3,in_hw,in_hw); any n (chunks of
 * max_batch). Overwrites the model's saved activations. */
int fsb_model_embed(fsb_model *m, const float *images, int n, float *out);
/* out (n, c*h*w of stage) = eval-mode activations at `stage` (e.g. the frozen prefix). */
int fsb_model_forward_to(fsb_model *m, const float *images, int n, int stage, float *out);

/* Forward n <= max_batch images. train != 0: BN batch statistics (running stats and
 * num_batches_tracked updated) and dropout/DropBlock drawn from rng, for trainable blocks
 * only; rng may be NULL when no dropout is active. *emb (n,D) and *logits (n,n_class, NULL
 * without head) point into the model, valid until the next forward. Saves what
 * fsb_model_backward needs. */
int fsb_model_forward(fsb_model *m, const float *images, int n, int train, fsb_rng *rng,
                      const float **emb, const float **logits);
/* Like fsb_model_forward, starting at `stage` with acts (n, stage size) as that stage's
 * input (stage 4: acts are the embeddings, only the head runs). */
int fsb_model_forward_from(fsb_model *m, int stage, const float *acts, int n, int train,
                           fsb_rng *rng, const float **emb, const float **logits);
/* Zero every parameter gradient. */
void fsb_model_zero_grad(fsb_model *m);
/* Back-propagate from the last forward: dlogits (n,n_class) and/or demb (n,D) (either may be
 * NULL). ACCUMULATES parameter gradients of trainable tensors into the gradient array, and,
 * if dinput is not NULL, dL/d(input of the last forward) into dinput (images or stage acts). */
void fsb_model_backward(fsb_model *m, const float *dlogits, const float *demb, float *dinput);
/* One cross-entropy step without the update: zero_grad, train forward, mean softmax CE
 * against labels (n) in [0,n_class), backward. Returns the loss; *logits as in forward
 * (may be NULL). Requires a head. */
double fsb_model_train_step(fsb_model *m, const float *images, const int *labels, int n,
                            fsb_rng *rng, const float **logits);

/* ---- parameters ---------------------------------------------------------------------- */

typedef enum {
    FSB_T_PARAM = 0,        /* trainable parameter (data + grad) */
    FSB_T_RUNNING_MEAN = 1, /* BN buffer */
    FSB_T_RUNNING_VAR = 2,  /* BN buffer */
    FSB_T_NUM_BATCHES = 3   /* BN counter (int64 scalar) */
} fsb_tensor_kind;

typedef struct fsb_model_tensor {
    const char *name;     /* PyTorch state_dict name, owned by the model */
    fsb_tensor_kind kind; /* parameter or buffer */
    int ndim;             /* 0..4 */
    int64_t dims[4];      /* PyTorch shape */
    long numel;           /* element count */
    float *data;          /* values (NULL for FSB_T_NUM_BATCHES) */
    float *grad;          /* gradient (FSB_T_PARAM only, else NULL) */
    int64_t *count;       /* FSB_T_NUM_BATCHES only */
    int block;            /* 0..3, 4 = head */
    int trainable;        /* parameter of a block not frozen by set_adapt */
} fsb_model_tensor;

/* Every state_dict entry in PyTorch order (params and BN buffers, head last). */
int fsb_model_n_tensors(const fsb_model *m);
void fsb_model_tensor_at(const fsb_model *m, int i, fsb_model_tensor *t);
/* Index of the tensor with that name, or -1. */
int fsb_model_find_tensor(const fsb_model *m, const char *name);
/* The one parameter / gradient allocation: *n floats. Trainable parameters are exactly the
 * suffix [fsb_model_trainable_offset(m), n) (blocks are laid out in order, head last). */
float *fsb_model_params(fsb_model *m, long *n);
float *fsb_model_grads(fsb_model *m, long *n);
long fsb_model_trainable_offset(const fsb_model *m);

/* Freeze blocks: FSB_ADAPT_ALL trains everything, _LAST blocks 3 + head, _HEAD the head. */
void fsb_model_set_adapt(fsb_model *m, fsb_adapt adapt);
/* First trainable stage: 0, 3 or 4. */
int fsb_model_first_trainable(const fsb_model *m);
/* "all" | "last" | "head" -> adapt; FSB_EINVAL naming the text otherwise. */
int fsb_adapt_parse(const char *text, fsb_adapt *out);

/* Copy backbone parameters, BN running statistics and counters from src (same arch, widths,
 * input size; FSB_EMISMATCH otherwise), and the head too when with_head (then n_class
 * must match). */
int fsb_model_copy_weights(fsb_model *dst, const fsb_model *src, int with_head);
/* Replace the head by a fresh n_class-way one (n_class >= 0), initialised like nn.Linear
 * from rng (NULL: zeros). Reallocates the parameter/gradient arrays when n_class changes
 * (pointers from fsb_model_params/grads/tensor_at become invalid). Gradients are zeroed. */
int fsb_model_reset_head(fsb_model *m, int n_class, fsb_rng *rng);

/* ---- checkpoints (tensorfile) ----------------------------------------------------------- */

/* Write every state_dict tensor and meta "arch", "widths", "n_class", "embed_dim",
 * "in_hw", "flatten" plus n_extra caller pairs (extra_keys[i] = extra_vals[i]). Atomic. */
int fsb_model_save(const fsb_model *m, const char *path, int n_extra, const char *const *extra_keys,
                   const char *const *extra_vals);
/* The same content as fsb_model_save, added to a caller's tensorfile (for files that hold
 * more than the model, e.g. a resumable training state), and its inverse: load from `tf`
 * with the checks of fsb_model_load, errors naming `what`. */
int fsb_model_to_tensorfile(const fsb_model *m, fsb_tensorfile *tf, int n_extra,
                            const char *const *extra_keys, const char *const *extra_vals);
int fsb_model_from_tensorfile(fsb_model *m, const fsb_tensorfile *tf, const char *what);
/* Continue DropBlock's warm-up where the loaded training state left it: each unit's warm-up
 * step is set to its batch norm's num_batches_tracked (the two advance together in
 * train-mode forwards). For resuming a training run; loading weights alone (fsb_model_load,
 * pretrain --init, a student's copy of its teacher) starts the warm-up afresh. */
void fsb_model_resume_warmup(fsb_model *m);
/* The input a checkpoint's network was trained on: the packed image side and the test
 * transform (resize the shorter side, centre crop = the network input). From the meta
 * "image_size", "resize", "crop" that `bench pretrain` writes; a checkpoint without them
 * (older files, imports from PyTorch) gets the protocol's 84 / 92 / 84 when its in_hw is 84
 * (or absent), else image_size = resize = crop = in_hw (small images are not resized). */
typedef struct fsb_model_input {
    int image_size; /* packed image side */
    int resize;     /* test transform: shorter side resized to this */
    int crop;       /* centre crop side = network input */
    int recorded;   /* 1: from the checkpoint's meta; 0: inferred as above */
} fsb_model_input;

/* Read the input settings of checkpoint `path` (meta only). Errors name the file. */
int fsb_model_file_input(const char *path, fsb_model_input *in);

/* Settle a command's --image-size / --resize / --crop against a checkpoint's input: a value
 * <= 0 (not given) takes the checkpoint's; a given value that differs from it is refused
 * (FSB_EMISMATCH naming the flag, both values, `what` and the file), because the network
 * was trained on that input. Then the combination must make sense (FSB_EINVAL naming the
 * flags): crop <= resize, crop <= image_size, and resize <= 5/4 x image_size (more would
 * upsample the packed images and keep only a corner of each). */
int fsb_model_input_settle(const fsb_model_input *ck, const char *what, const char *path,
                           int *image_size, int *resize, int *crop);

/* Load weights into an existing model: arch, widths and every tensor's shape must match,
 * else FSB_EMISMATCH naming the file and the tensor or key. */
int fsb_model_load(fsb_model *m, const char *path);
/* Create a model from a checkpoint's meta and load it (opts: dropout settings etc. from
 * fsb_model_opts_default; in_hw from the file unless in_hw > 0). */
int fsb_model_create_from_file(fsb_model **out, const char *path, int in_hw, int max_batch,
                               fsb_pool *pool);

/* ---- profiling ------------------------------------------------------------------------ */

/* Wall-clock seconds spent per layer since the last reset. Entries: every conv unit in
 * execution order (conv + BN + activation [+ residual] [+ pool] [+ dropout]), then "head"
 * (global pool + linear + loss bookkeeping). *name is owned by the model. */
int fsb_model_profile_n(const fsb_model *m);
void fsb_model_profile_at(const fsb_model *m, int i, const char **name, double *fwd, double *bwd);
void fsb_model_profile_reset(fsb_model *m);
/* Floating-point operations per image of profile entry i (a multiply-add counts 2): *fwd its
 * forward (the convolution of a unit; the head's linear layer), *bwd its backward in a full
 * training step from stage 0 (the weight gradient, plus the input gradient for every entry
 * but the units that read the network's images, whose input gradient a step does not
 * compute). Batch norm, activation, pooling and bias terms are not counted (they are O(1)
 * per output, the convolution O(cin*k*k)). Divided by fsb_model_profile_at's seconds this
 * gives each layer's achieved GFLOP/s, to set against the machine's FMA peak. */
void fsb_model_profile_flops(const fsb_model *m, int i, double *fwd, double *bwd);

#endif
