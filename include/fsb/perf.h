/* perf.h - throughput measurement of the backbone engine (`bench perf`).
 *
 * Workloads on random normalised 84x84 images: ConvNet-4 train step (batch 64, 64-way CE,
 * SGD-momentum update included) and inference (batch 64, embeddings), ResNet-12 train step
 * (batch 32) and inference (batch 32). One warm-up iteration, then `iters` timed ones;
 * reports images/s, achieved GFLOP/s (docs/protocol.md FLOP counts, scaled by (hw/84)^2) and
 * the per-layer time profile of the timed iterations.
 */
#ifndef FSB_PERF_H
#define FSB_PERF_H

#define FSB_PERF_MAX_LAYERS 17

typedef struct fsb_perf_opts {
    int conv4;   /* run the ConvNet-4 workloads */
    int res12;   /* run the ResNet-12 workloads */
    int batch;   /* batch size (0 = 64 for ConvNet-4, 32 for ResNet-12) */
    int iters;   /* timed iterations (0 = 10 / 20 for ConvNet-4 train / infer, 3 / 5 res12) */
    int threads; /* worker threads (0 = one per core) */
    int in_hw;   /* image side (0 = 84) */
} fsb_perf_opts;

typedef struct fsb_perf_layer {
    char name[64]; /* unit name (state_dict prefix of its conv) or "head" */
    double fwd;    /* seconds per iteration in forward */
    double bwd;    /* seconds per iteration in backward */
} fsb_perf_layer;

typedef struct fsb_perf_result {
    char workload[32];                          /* "conv4-train", "conv4-infer", ... */
    int batch;                                  /* images per iteration */
    int iters;                                  /* timed iterations */
    double seconds;                             /* per iteration (median) */
    double img_s;                               /* batch / seconds */
    double gflop_s;                             /* achieved */
    int n_layers;                               /* profile entries */
    fsb_perf_layer layers[FSB_PERF_MAX_LAYERS]; /* mean per iteration */
} fsb_perf_result;

/* Run the selected workloads; fills res[0..*n_res) (max_res >= 4). */
int fsb_perf_run(const fsb_perf_opts *o, fsb_perf_result *res, int max_res, int *n_res);

#endif
