/* conv_dnnl.c - 3x3 convolutions (stride 1, padding 1, no bias) through oneDNN's primitives,
 * one thread per call (see include/fsb/layers.h and docs/performance.md).
 *
 * A fsb_dnnl is one thread's cache: per (operation, batch, shape) the primitive, its
 * scratchpad (user-managed, so that two caches never share one), the reorders between the
 * caller's plain layouts (NCHW, OIHW) and the blocked layouts the primitive picked (format
 * `any`), and the blocked buffers. Entries are created on first use and kept until
 * fsb_dnnl_destroy; a call after the first allocates nothing.
 *
 * Threads: Debian's libdnnl runs its parallel regions on OpenMP (libgomp) and sizes them by
 * omp_get_max_threads() of the calling thread, both when a primitive is created (its work
 * split) and when it runs. Every call here first sets the calling thread's OpenMP team size
 * to 1, so a primitive is created for and run on one thread whatever OMP_NUM_THREADS says,
 * and its result depends only on the shapes and the CPU's instruction set.
 *
 * Built without oneDNN (no FSB_HAVE_ONEDNN), fsb_dnnl_create fails with "built without
 * oneDNN" and nothing else can be reached.
 */
#include "fsb/layers.h"
#include "fsb/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FSB_HAVE_ONEDNN
#include <dnnl.h>

/* libgomp, oneDNN's threading runtime here: the calling thread's team size. Declared here
 * rather than through <omp.h>, which only some compilers ship without -fopenmp. */
void omp_set_num_threads(int n);
int omp_get_max_threads(void);

enum { K_FWD, K_BWD_D, K_BWD_W, K_WEI };

/* One cached operation. Slots 0 and 1 are inputs (user layout -> blocked), slot 2 the
 * output (blocked -> user layout); a slot whose layouts agree has no reorder and no buffer.
 * K_WEI (the weights' reorders): slot 0 is the OIHW input, slots 1 and 2 the forward's and
 * the backward-data's blocked weights, each written by its reorder in re[1], re[2]. */
typedef struct entry {
    int kind, B, C, H, W, OC;
    dnnl_primitive_t prim;  /* the convolution (NULL for K_WEI) */
    dnnl_memory_t scratch;  /* its scratchpad, or NULL */
    int arg[3];             /* DNNL_ARG_* of the slots (0: unused) */
    dnnl_memory_t user[3];  /* the caller's buffers (handle set per call) */
    dnnl_memory_t blk[3];   /* blocked buffers, or NULL */
    dnnl_primitive_t re[3]; /* reorders, or NULL */
    dnnl_memory_t re_sc[3]; /* their scratchpads, or NULL */
    dnnl_memory_t wei;      /* blocked weights argument (handle set per call), or NULL */
    size_t wbytes[2];       /* K_WEI: bytes of the forward / backward-data weights */
    struct entry *next;     /* the cache's list */
} entry;

struct fsb_dnnl {
    dnnl_engine_t eng; /* CPU engine */
    dnnl_stream_t st;  /* in-order stream of the owning thread */
    entry *list;       /* cached operations */
};

#define TRY(call)                                                                                  \
    do {                                                                                           \
        dnnl_status_t s_ = (call);                                                                 \
        if (s_ != dnnl_success) {                                                                  \
            st = fsb_error(FSB_EINTERNAL, "oneDNN: %s failed (status %d)", #call, (int)s_);        \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

int fsb_dnnl_available(void)
{
    return 1;
}

const char *fsb_dnnl_version(void)
{
    static char buf[32];
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
    return buf;
}

int fsb_dnnl_threads(void)
{
    return omp_get_max_threads();
}

int fsb_dnnl_create(fsb_dnnl **out)
{
    *out = NULL;
    omp_set_num_threads(1);
    fsb_dnnl *d = calloc(1, sizeof *d);
    if (!d) return fsb_error(FSB_ENOMEM, "oneDNN: out of memory");
    int st = FSB_OK;
    TRY(dnnl_engine_create(&d->eng, dnnl_cpu, 0));
    TRY(dnnl_stream_create(&d->st, d->eng, dnnl_stream_default_flags));
    *out = d;
    return FSB_OK;
fail:
    fsb_dnnl_destroy(d);
    return st;
}

static void entry_free(entry *e)
{
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->scratch) dnnl_memory_destroy(e->scratch);
    if (e->wei) dnnl_memory_destroy(e->wei);
    for (int k = 0; k < 3; k++) {
        if (e->user[k]) dnnl_memory_destroy(e->user[k]);
        if (e->blk[k]) dnnl_memory_destroy(e->blk[k]);
        if (e->re[k]) dnnl_primitive_destroy(e->re[k]);
        if (e->re_sc[k]) dnnl_memory_destroy(e->re_sc[k]);
    }
    free(e);
}

void fsb_dnnl_destroy(fsb_dnnl *d)
{
    if (!d) return;
    while (d->list) {
        entry *e = d->list;
        d->list = e->next;
        entry_free(e);
    }
    if (d->st) dnnl_stream_destroy(d->st);
    if (d->eng) dnnl_engine_destroy(d->eng);
    free(d);
}

/* The primitive of pd with a user-managed scratchpad (*scratch NULL when it needs none). */
static int make_prim(fsb_dnnl *d, dnnl_primitive_desc_t pd, dnnl_primitive_t *p,
                     dnnl_memory_t *scratch)
{
    int st = FSB_OK;
    TRY(dnnl_primitive_create(p, pd));
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (md && dnnl_memory_desc_get_size(md) > 0)
        TRY(dnnl_memory_create(scratch, md, d->eng, DNNL_MEMORY_ALLOCATE));
fail:
    return st;
}

/* Attributes: user scratchpad, and an accumulating (sum) post-op when sum != 0. */
static int make_attr(dnnl_primitive_attr_t *attr, int sum)
{
    int st = FSB_OK;
    dnnl_post_ops_t po = NULL;
    TRY(dnnl_primitive_attr_create(attr));
    TRY(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user));
    if (sum) {
        TRY(dnnl_post_ops_create(&po));
        TRY(dnnl_post_ops_append_sum(po, 1.0f));
        TRY(dnnl_primitive_attr_set_post_ops(*attr, po));
    }
fail:
    if (po) dnnl_post_ops_destroy(po);
    return st;
}

/* Reorder from -> to (to += from when sum) with its scratchpad. */
static int make_reorder(fsb_dnnl *d, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                        int sum, dnnl_primitive_t *p, dnnl_memory_t *scratch)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int st = make_attr(&attr, sum);
    if (st) goto fail;
    TRY(dnnl_reorder_primitive_desc_create(&pd, from, d->eng, to, d->eng, attr));
    st = make_prim(d, pd, p, scratch);
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return st;
}

/* Slot k of e: the caller's buffer in layout `user`, the primitive's in `want`; a blocked
 * buffer and a reorder (into it for an input, out of it for the output, accumulating when
 * sum) unless the two layouts agree and nothing is accumulated. */
static int make_slot(fsb_dnnl *d, entry *e, int k, int arg, const dnnl_memory_desc_t *user,
                     const dnnl_memory_desc_t *want, int sum)
{
    int st = FSB_OK;
    e->arg[k] = arg;
    TRY(dnnl_memory_create(&e->user[k], user, d->eng, DNNL_MEMORY_NONE));
    if (!sum && dnnl_memory_desc_equal(user, want)) return FSB_OK;
    TRY(dnnl_memory_create(&e->blk[k], want, d->eng, DNNL_MEMORY_ALLOCATE));
    if (k < 2) return make_reorder(d, user, want, 0, &e->re[k], &e->re_sc[k]);
    return make_reorder(d, want, user, sum, &e->re[k], &e->re_sc[k]);
fail:
    return st;
}

/* The forward primitive descriptor of the shape (format `any` everywhere), and, when bd / bw
 * are not NULL, the backward-data / backward-weights ones (hinted by it). attr may be NULL. */
static int conv_pds(fsb_dnnl *d, const entry *e, const_dnnl_primitive_attr_t attr,
                    dnnl_primitive_desc_t *fwd, dnnl_primitive_desc_t *bd,
                    dnnl_primitive_desc_t *bw)
{
    int st = FSB_OK;
    dnnl_dims_t sd = {e->B, e->C, e->H, e->W}, wd = {e->OC, e->C, 3, 3},
                dd = {e->B, e->OC, e->H, e->W}, strides = {1, 1}, pad = {1, 1};
    dnnl_memory_desc_t src, wei, dst;
    TRY(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t cf, cbd, cbw;
    TRY(dnnl_convolution_forward_desc_init(&cf, dnnl_forward_training, dnnl_convolution_direct,
                                           &src, &wei, NULL, &dst, strides, pad, pad));
    TRY(dnnl_primitive_desc_create(fwd, &cf, attr, d->eng, NULL));
    if (bd) {
        TRY(dnnl_convolution_backward_data_desc_init(&cbd, dnnl_convolution_direct, &src, &wei,
                                                     &dst, strides, pad, pad));
        TRY(dnnl_primitive_desc_create(bd, &cbd, attr, d->eng, *fwd));
    }
    if (bw) {
        TRY(dnnl_convolution_backward_weights_desc_init(&cbw, dnnl_convolution_direct, &src, &wei,
                                                        NULL, &dst, strides, pad, pad));
        TRY(dnnl_primitive_desc_create(bw, &cbw, attr, d->eng, *fwd));
    }
fail:
    return st;
}

/* The plain layouts of the shape: NCHW input, NCHW output, OIHW weights. */
static int plain_mds(const entry *e, dnnl_memory_desc_t *x, dnnl_memory_desc_t *y,
                     dnnl_memory_desc_t *w)
{
    int st = FSB_OK;
    dnnl_dims_t sd = {e->B, e->C, e->H, e->W}, wd = {e->OC, e->C, 3, 3},
                dd = {e->B, e->OC, e->H, e->W};
    TRY(dnnl_memory_desc_init_by_tag(x, 4, sd, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(y, 4, dd, dnnl_f32, dnnl_nchw));
    TRY(dnnl_memory_desc_init_by_tag(w, 4, wd, dnnl_f32, dnnl_oihw));
fail:
    return st;
}

/* Fill a new entry of kind e->kind for its shape. */
static int entry_init(fsb_dnnl *d, entry *e)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pf = NULL, pb = NULL, *pbd = NULL, *pbw = NULL;
    dnnl_memory_desc_t x, y, w;
    int st = plain_mds(e, &x, &y, &w);
    if (!st) st = make_attr(&attr, 0);
    if (st) goto fail;
    if (e->kind == K_BWD_W) pbw = &pb;
    if (e->kind == K_BWD_D) pbd = &pb;
    if (e->kind == K_WEI) { /* both weight layouts: the forward's and the backward-data's */
        if ((st = conv_pds(d, e, attr, &pf, &pb, NULL))) goto fail;
        const dnnl_memory_desc_t *wf = dnnl_primitive_desc_query_md(pf, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *wb = dnnl_primitive_desc_query_md(pb, dnnl_query_weights_md, 0);
        e->wbytes[0] = dnnl_memory_desc_get_size(wf);
        e->wbytes[1] = dnnl_memory_desc_get_size(wb);
        TRY(dnnl_memory_create(&e->user[0], &w, d->eng, DNNL_MEMORY_NONE));
        TRY(dnnl_memory_create(&e->user[1], wf, d->eng, DNNL_MEMORY_NONE));
        TRY(dnnl_memory_create(&e->user[2], wb, d->eng, DNNL_MEMORY_NONE));
        if (!(st = make_reorder(d, &w, wf, 0, &e->re[1], &e->re_sc[1])))
            st = make_reorder(d, &w, wb, 0, &e->re[2], &e->re_sc[2]);
        goto fail;
    }
    if ((st = conv_pds(d, e, attr, &pf, pbd, pbw))) goto fail;
    dnnl_primitive_desc_t p = e->kind == K_FWD ? pf : pb;
#define MD(q) dnnl_primitive_desc_query_md(p, q, 0)
    if (e->kind == K_FWD) {
        if (!(st = make_slot(d, e, 0, DNNL_ARG_SRC, &x, MD(dnnl_query_src_md), 0)))
            st = make_slot(d, e, 2, DNNL_ARG_DST, &y, MD(dnnl_query_dst_md), 0);
    } else if (e->kind == K_BWD_D) {
        if (!(st = make_slot(d, e, 0, DNNL_ARG_DIFF_DST, &y, MD(dnnl_query_diff_dst_md), 0)))
            st = make_slot(d, e, 2, DNNL_ARG_DIFF_SRC, &x, MD(dnnl_query_diff_src_md), 1);
    } else {
        if (!(st = make_slot(d, e, 0, DNNL_ARG_SRC, &x, MD(dnnl_query_src_md), 0)) &&
            !(st = make_slot(d, e, 1, DNNL_ARG_DIFF_DST, &y, MD(dnnl_query_diff_dst_md), 0)))
            st = make_slot(d, e, 2, DNNL_ARG_DIFF_WEIGHTS, &w, MD(dnnl_query_diff_weights_md), 0);
    }
    if (!st && e->kind != K_BWD_W)
        TRY(dnnl_memory_create(&e->wei, MD(dnnl_query_weights_md), d->eng, DNNL_MEMORY_NONE));
#undef MD
    if (!st) st = make_prim(d, p, &e->prim, &e->scratch);
fail:
    if (pf) dnnl_primitive_desc_destroy(pf);
    if (pb) dnnl_primitive_desc_destroy(pb);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return st;
}

/* The cached entry of (kind, shape), created on first use; NULL with the error set. */
static entry *lookup(fsb_dnnl *d, int kind, int B, int C, int H, int W, int OC)
{
    omp_set_num_threads(1); /* before oneDNN sizes anything for this thread */
    for (entry *e = d->list; e; e = e->next)
        if (e->kind == kind && e->B == B && e->C == C && e->H == H && e->W == W && e->OC == OC)
            return e;
    if (B < 1 || C < 1 || H < 1 || W < 1 || OC < 1) {
        fsb_error(FSB_EINVAL, "oneDNN conv: bad shape %d x %d x %dx%d -> %d", B, C, H, W, OC);
        return NULL;
    }
    entry *e = calloc(1, sizeof *e);
    if (!e) {
        fsb_error(FSB_ENOMEM, "oneDNN: out of memory");
        return NULL;
    }
    *e = (entry){.kind = kind, .B = B, .C = C, .H = H, .W = W, .OC = OC};
    if (entry_init(d, e)) {
        entry_free(e);
        return NULL;
    }
    e->next = d->list;
    d->list = e;
    return e;
}

/* Run primitive p with args a (and its scratchpad). */
static int run(fsb_dnnl *d, dnnl_primitive_t p, dnnl_memory_t scratch, int na, dnnl_exec_arg_t *a)
{
    int st = FSB_OK;
    if (scratch) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, scratch};
    TRY(dnnl_primitive_execute(p, d->st, na, a));
fail:
    return st;
}

/* Execute e on the caller's buffers ptr[0..2] (slots) and blocked weights wei (or NULL). */
static int exec(fsb_dnnl *d, entry *e, const void *p0, const void *p1, void *p2, const float *wei)
{
    int st = FSB_OK;
    const void *ptr[3] = {p0, p1, p2};
    dnnl_exec_arg_t a[6];
    int na = 0;
    for (int k = 0; k < 3; k++)
        if (e->user[k]) TRY(dnnl_memory_set_data_handle(e->user[k], (void *)ptr[k]));
    if (e->wei) TRY(dnnl_memory_set_data_handle(e->wei, (void *)wei));
    for (int k = 0; k < 2; k++)
        if (e->re[k]) {
            dnnl_exec_arg_t r[3] = {{DNNL_ARG_FROM, e->user[k]}, {DNNL_ARG_TO, e->blk[k]}};
            if ((st = run(d, e->re[k], e->re_sc[k], 2, r))) goto fail;
        }
    for (int k = 0; k < 3; k++)
        if (e->user[k]) a[na++] = (dnnl_exec_arg_t){e->arg[k], e->blk[k] ? e->blk[k] : e->user[k]};
    if (e->wei) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, e->wei};
    if ((st = run(d, e->prim, e->scratch, na, a))) goto fail;
    if (e->re[2]) {
        dnnl_exec_arg_t r[3] = {{DNNL_ARG_FROM, e->blk[2]}, {DNNL_ARG_TO, e->user[2]}};
        if ((st = run(d, e->re[2], e->re_sc[2], 2, r))) goto fail;
    }
    TRY(dnnl_stream_wait(d->st));
fail:
    return st;
}

int fsb_dnnl_weights_floats(fsb_dnnl *d, int B, int C, int H, int W, int OC, long *nf, long *nb)
{
    entry *e = lookup(d, K_WEI, B, C, H, W, OC);
    if (!e) return fsb_error_wrap(FSB_EINTERNAL, "oneDNN conv weights");
    *nf = (long)(e->wbytes[0] / sizeof(float));
    *nb = (long)(e->wbytes[1] / sizeof(float));
    return FSB_OK;
}

int fsb_dnnl_weights(fsb_dnnl *d, float *wf, float *wb, const float *weight, int B, int C, int H,
                     int W, int OC)
{
    entry *e = lookup(d, K_WEI, B, C, H, W, OC);
    if (!e) return fsb_error_wrap(FSB_EINTERNAL, "oneDNN conv weights");
    int st = FSB_OK;
    float *to[3] = {NULL, wf, wb};
    TRY(dnnl_memory_set_data_handle(e->user[0], (void *)weight));
    for (int k = 1; k < 3; k++)
        if (to[k]) {
            TRY(dnnl_memory_set_data_handle(e->user[k], to[k]));
            dnnl_exec_arg_t r[3] = {{DNNL_ARG_FROM, e->user[0]}, {DNNL_ARG_TO, e->user[k]}};
            if ((st = run(d, e->re[k], e->re_sc[k], 2, r))) goto fail;
        }
    TRY(dnnl_stream_wait(d->st));
fail:
    return st;
}

int fsb_dnnl_forward(fsb_dnnl *d, float *out, const float *inp, const float *wf, int B, int C,
                     int H, int W, int OC)
{
    entry *e = lookup(d, K_FWD, B, C, H, W, OC);
    return e ? exec(d, e, inp, NULL, out, wf) : fsb_error_wrap(FSB_EINTERNAL, "oneDNN conv");
}

int fsb_dnnl_backward_data(fsb_dnnl *d, float *dinp, const float *dout, const float *wb, int B,
                           int C, int H, int W, int OC)
{
    entry *e = lookup(d, K_BWD_D, B, C, H, W, OC);
    return e ? exec(d, e, dout, NULL, dinp, wb) : fsb_error_wrap(FSB_EINTERNAL, "oneDNN conv");
}

int fsb_dnnl_backward_weights(fsb_dnnl *d, float *dweight, const float *dout, const float *inp,
                              int B, int C, int H, int W, int OC)
{
    entry *e = lookup(d, K_BWD_W, B, C, H, W, OC);
    return e ? exec(d, e, inp, dout, dweight, NULL) : fsb_error_wrap(FSB_EINTERNAL, "oneDNN conv");
}

#else /* built without oneDNN */

struct fsb_dnnl {
    int unused;
};

int fsb_dnnl_available(void)
{
    return 0;
}

const char *fsb_dnnl_version(void)
{
    return NULL;
}

int fsb_dnnl_threads(void)
{
    return 0;
}

int fsb_dnnl_create(fsb_dnnl **out)
{
    *out = NULL;
    return fsb_error(FSB_EINVAL, "fsbench was built without oneDNN (configure with "
                                 "-DFSB_ONEDNN=ON after apt-get install libdnnl-dev)");
}

void fsb_dnnl_destroy(fsb_dnnl *d)
{
    free(d);
}

#define UNBUILT fsb_error(FSB_EINVAL, "fsbench was built without oneDNN")

int fsb_dnnl_weights_floats(fsb_dnnl *d, int B, int C, int H, int W, int OC, long *nf, long *nb)
{
    return UNBUILT;
}

int fsb_dnnl_weights(fsb_dnnl *d, float *wf, float *wb, const float *weight, int B, int C, int H,
                     int W, int OC)
{
    return UNBUILT;
}

int fsb_dnnl_forward(fsb_dnnl *d, float *out, const float *inp, const float *wf, int B, int C,
                     int H, int W, int OC)
{
    return UNBUILT;
}

int fsb_dnnl_backward_data(fsb_dnnl *d, float *dinp, const float *dout, const float *wb, int B,
                           int C, int H, int W, int OC)
{
    return UNBUILT;
}

int fsb_dnnl_backward_weights(fsb_dnnl *d, float *dweight, const float *dout, const float *inp,
                              int B, int C, int H, int W, int OC)
{
    return UNBUILT;
}

#endif
