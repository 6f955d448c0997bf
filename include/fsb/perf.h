/* perf.h - throughput measurement of the backbone engine (`bench perf`).
 *
 * Workloads on random normalised 84x84 images, for each selected network (ConvNet-4 with 64
 * filters, ConvNet-4 with 32 filters = MAML's backbone, ResNet-12) and each batch size: a
 * train step (64-way CE head, SGD-momentum update included) and inference (embeddings).
 * One model per (network, batch), one warm-up iteration, then `iters` timed ones; reports
 * images/s, achieved GFLOP/s (the model's FLOP count, fsb_model_profile_flops, which gives
 * docs/protocol.md's 0.194 / 0.559 GFLOP per ConvNet-4 image at 84x84) and the per-layer
 * time profile of the timed iterations with each layer's FLOPs.
 */
#ifndef FSB_PERF_H
#define FSB_PERF_H

#define FSB_PERF_MAX_LAYERS 17
#define FSB_PERF_MAX_BATCHES 8
/* Results of one fsb_perf_run at most: 3 networks x batches x (train, infer). */
#define FSB_PERF_MAX_RESULTS (3 * FSB_PERF_MAX_BATCHES * 2)

typedef struct fsb_perf_opts {
    int conv4;                         /* run the ConvNet-4 (64 filters) workloads */
    int conv4_32;                      /* run the ConvNet-4 with 32 filters per block */
    int res12;                         /* run the ResNet-12 workloads */
    int batches[FSB_PERF_MAX_BATCHES]; /* batch sizes, each run in turn */
    int n_batches;                     /* 0 = 64 for ConvNet-4, 32 for ResNet-12 */
    int iters;     /* timed iterations (0 = 10 / 20 for ConvNet-4 train / infer, 3 / 5 res12) */
    int threads;   /* worker threads (0 = one per core) */
    int in_hw;     /* image side (0 = 84) */
    int per_image; /* 1: fsb_model_opts.per_image (the engine without its small-batch split) */
    int conv;      /* fsb_model_opts.conv: FSB_CONV_GEMM (0, default) or FSB_CONV_ONEDNN */
} fsb_perf_opts;

typedef struct fsb_perf_layer {
    char name[64];    /* unit name (state_dict prefix of its conv) or "head" */
    double fwd;       /* seconds per iteration in forward */
    double bwd;       /* seconds per iteration in backward (0 for inference) */
    double fwd_gflop; /* GFLOP per iteration in forward (the whole batch) */
    double bwd_gflop; /* GFLOP per iteration in backward (0 for inference) */
} fsb_perf_layer;

typedef struct fsb_perf_result {
    char workload[32];                          /* "conv4-train", "conv4-32-infer", ... */
    char arch[16];                              /* "conv4", "conv4-32", "res12" */
    int train;                                  /* 1 train step, 0 inference */
    int batch;                                  /* images per iteration */
    int iters;                                  /* timed iterations */
    double seconds;                             /* per iteration (median) */
    double img_s;                               /* batch / seconds */
    double gflop_s;                             /* achieved */
    int n_layers;                               /* profile entries */
    fsb_perf_layer layers[FSB_PERF_MAX_LAYERS]; /* mean per iteration */
} fsb_perf_result;

/* Run the selected workloads, network by network, batch by batch (train, then inference);
 * fills res[0..*n_res) (max_res >= FSB_PERF_MAX_RESULTS). FSB_EINVAL if no network is
 * selected or a batch is < 1. */
int fsb_perf_run(const fsb_perf_opts *o, fsb_perf_result *res, int max_res, int *n_res);

#endif
