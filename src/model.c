/* model.c - ConvNet-4 / ResNet-12 engine: construction, fused threaded forward/backward
 * (see include/fsb/model.h).
 *
 * The network is a list of conv units: y = conv(x) (+bias); z = BN(y); s = z (+ z of a
 * residual unit); a = act(s); out = maxpool2(a) (optional); out *= dropout mask (optional).
 * Only y, out (and pool winners, masks) are stored; z, s, a are recomputed from y where
 * backward needs them. Per-image work runs in pool tasks with per-worker scratch; every
 * cross-image sum is a per-image (or per-chunk) partial added in a fixed order.
 */
#include "fsb/model.h"
#include "fsb/blas.h"
#include "fsb/layers.h"
#include "fsb/status.h"
#include "model_internal.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fsb_model_opts_default(fsb_model_opts *o, fsb_arch arch)
{
    memset(o, 0, sizeof *o);
    o->arch = arch;
    static const int w4[4] = {64, 64, 64, 64}, w12[4] = {64, 160, 320, 640};
    memcpy(o->widths, arch == FSB_ARCH_CONV4 ? w4 : w12, sizeof o->widths);
    o->in_hw = 84;
    o->drop_rate = arch == FSB_ARCH_RES12 ? 0.1f : 0.0f;
    o->dropblock_rate = arch == FSB_ARCH_RES12 ? 0.1f : 0.0f;
    o->dropblock_size = 5;
    o->grad_splits = 4;
}

int fsb_arch_parse(const char *text, fsb_arch *out)
{
    if (!strcmp(text, "conv4"))
        *out = FSB_ARCH_CONV4;
    else if (!strcmp(text, "res12"))
        *out = FSB_ARCH_RES12;
    else
        return fsb_error(FSB_EINVAL, "unknown architecture '%s' (want conv4 or res12)", text);
    return FSB_OK;
}

const char *fsb_arch_name(fsb_arch arch)
{
    return arch == FSB_ARCH_CONV4 ? "conv4" : "res12";
}

int fsb_conv_parse(const char *text, fsb_conv_backend *out)
{
    if (!strcmp(text, "gemm"))
        *out = FSB_CONV_GEMM;
    else if (!strcmp(text, "onednn"))
        *out = FSB_CONV_ONEDNN;
    else
        return fsb_error(FSB_EINVAL, "unknown convolution backend '%s' (want gemm or onednn)",
                         text);
    return FSB_OK;
}

const char *fsb_conv_name(fsb_conv_backend conv)
{
    return conv == FSB_CONV_ONEDNN ? "onednn" : "gemm";
}

int fsb_adapt_parse(const char *text, fsb_adapt *out)
{
    if (!strcmp(text, "all"))
        *out = FSB_ADAPT_ALL;
    else if (!strcmp(text, "last"))
        *out = FSB_ADAPT_LAST;
    else if (!strcmp(text, "head"))
        *out = FSB_ADAPT_HEAD;
    else
        return fsb_error(FSB_EINVAL, "unknown adapt mode '%s' (want all, last or head)", text);
    return FSB_OK;
}

/* ---- construction ------------------------------------------------------------------- */

static int add_unit(fsb_model *m, int block, const char *conv, const char *bn, int cin, int cout,
                    int k, int hw, int bias, int act, int pool, int res, int src)
{
    assert(m->nunits < FSB_MAX_UNITS);
    unit *u = &m->u[m->nunits];
    memset(u, 0, sizeof *u);
    snprintf(u->conv_name, sizeof u->conv_name, "%s", conv);
    snprintf(u->bn_name, sizeof u->bn_name, "%s", bn);
    u->block = block;
    u->cin = cin;
    u->cout = cout;
    u->k = k;
    u->h = u->w = hw;
    u->ho = pool ? hw / 2 : hw;
    u->wo = pool ? hw / 2 : hw;
    u->bias = bias;
    u->act = act;
    u->slope = m->o.arch == FSB_ARCH_CONV4 ? 0.0f : 0.1f;
    u->pool = pool;
    u->res = res;
    u->src = src;
    return m->nunits++;
}

static void add_tensor(fsb_model *m, const char *prefix, const char *suffix, tensor_role role,
                       int ndim, const int64_t *dims, int block, long *poff, long *soff)
{
    fsb_tensor_kind kind = role == R_RM    ? FSB_T_RUNNING_MEAN
                           : role == R_RV  ? FSB_T_RUNNING_VAR
                           : role == R_NBT ? FSB_T_NUM_BATCHES
                                           : FSB_T_PARAM;
    assert(m->ntens < FSB_MAX_TENSORS);
    tentry *t = &m->tens[m->ntens++];
    size_t lp = strlen(prefix), ls = strlen(suffix);
    assert(lp + ls < sizeof t->name);
    memcpy(t->name, prefix, lp); /* (snprintf here trips gcc -O3's -Wrestrict) */
    memcpy(t->name + lp, suffix, ls + 1);
    t->kind = kind;
    t->role = role;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        t->numel *= (long)dims[i];
    }
    t->block = block;
    if (kind == FSB_T_PARAM) {
        t->off = *poff;
        *poff += t->numel;
    } else if (kind == FSB_T_NUM_BATCHES) {
        t->off = m->nbn;
    } else {
        t->off = *soff;
        *soff += t->numel;
    }
}

/* Tensors of one unit in PyTorch order; records the offsets in the unit. */
static void unit_tensors(fsb_model *m, int ui, long *poff, long *soff)
{
    unit *u = &m->u[ui];
    int64_t wd[4] = {u->cout, u->cin, u->k, u->k}, cd[1] = {u->cout};
    add_tensor(m, u->conv_name, ".weight", R_CONV_W, 4, wd, u->block, poff, soff);
    u->w_off = m->tens[m->ntens - 1].off;
    u->b_off = -1;
    if (u->bias) {
        add_tensor(m, u->conv_name, ".bias", R_CONV_B, 1, cd, u->block, poff, soff);
        u->b_off = m->tens[m->ntens - 1].off;
    }
    add_tensor(m, u->bn_name, ".weight", R_BN_W, 1, cd, u->block, poff, soff);
    u->g_off = m->tens[m->ntens - 1].off;
    add_tensor(m, u->bn_name, ".bias", R_BN_B, 1, cd, u->block, poff, soff);
    u->be_off = m->tens[m->ntens - 1].off;
    add_tensor(m, u->bn_name, ".running_mean", R_RM, 1, cd, u->block, poff, soff);
    u->rm_off = m->tens[m->ntens - 1].off;
    add_tensor(m, u->bn_name, ".running_var", R_RV, 1, cd, u->block, poff, soff);
    u->rv_off = m->tens[m->ntens - 1].off;
    add_tensor(m, u->bn_name, ".num_batches_tracked", R_NBT, 0, NULL, u->block, poff, soff);
    u->nbt = m->nbn++;
}

/* Head tensors (fc.weight, fc.bias) at the end of the parameter layout. */
static void head_tensors(fsb_model *m, long *poff, long *soff)
{
    m->ntens = m->ntens_backbone;
    m->head_off = *poff;
    if (m->n_class <= 0) return;
    int64_t wd[2] = {m->n_class, m->D}, bd[1] = {m->n_class};
    add_tensor(m, "fc", ".weight", R_FC_W, 2, wd, FSB_MODEL_BLOCKS, poff, soff);
    add_tensor(m, "fc", ".bias", R_FC_B, 1, bd, FSB_MODEL_BLOCKS, poff, soff);
}

static void build_units(fsb_model *m)
{
    int hw = m->o.in_hw, cin = 3;
    char a[64], b[64];
    for (int blk = 0; blk < FSB_MODEL_BLOCKS; blk++) {
        int w = m->o.widths[blk];
        m->block_first[blk] = m->nunits;
        if (m->o.arch == FSB_ARCH_CONV4) {
            snprintf(a, sizeof a, "encoder.%d.0", blk);
            snprintf(b, sizeof b, "encoder.%d.1", blk);
            add_unit(m, blk, a, b, cin, w, 3, hw, 1, 1, 1, -1, -1);
        } else {
            char p[48];
            snprintf(p, sizeof p, "encoder.layer%d.0", blk + 1);
            snprintf(a, sizeof a, "%s.downsample.0", p);
            snprintf(b, sizeof b, "%s.downsample.1", p);
            int ds = add_unit(m, blk, a, b, cin, w, 1, hw, 0, 0, 0, -1, -1);
            snprintf(a, sizeof a, "%s.conv1", p);
            snprintf(b, sizeof b, "%s.bn1", p);
            int c1 = add_unit(m, blk, a, b, cin, w, 3, hw, 0, 1, 0, -1, -1);
            snprintf(a, sizeof a, "%s.conv2", p);
            snprintf(b, sizeof b, "%s.bn2", p);
            int c2 = add_unit(m, blk, a, b, w, w, 3, hw, 0, 1, 0, -1, c1);
            snprintf(a, sizeof a, "%s.conv3", p);
            snprintf(b, sizeof b, "%s.bn3", p);
            int c3 = add_unit(m, blk, a, b, w, w, 3, hw, 0, 1, 1, ds, c2);
            unit *u3 = &m->u[c3];
            if (blk < 2 && m->o.drop_rate > 0) {
                u3->drop = 1;
                u3->rate = m->o.drop_rate;
            } else if (blk >= 2 && m->o.dropblock_rate > 0) {
                u3->drop = 2;
                u3->rate = m->o.dropblock_rate;
            }
        }
        m->block_last[blk] = m->nunits - 1;
        m->stage_c[blk] = cin;
        m->stage_hw[blk] = hw;
        cin = w;
        hw /= 2;
    }
    m->stage_c[FSB_MODEL_BLOCKS] = cin;
    m->stage_hw[FSB_MODEL_BLOCKS] = hw;
    if (m->o.arch == FSB_ARCH_CONV4 && m->o.flatten)
        m->D = cin * hw * hw;
    else
        m->D = cin;
    long poff = 0, soff = 0;
    for (int blk = 0; blk < FSB_MODEL_BLOCKS; blk++) {
        int f = m->block_first[blk];
        if (m->o.arch == FSB_ARCH_CONV4) {
            unit_tensors(m, f, &poff, &soff);
        } else { /* PyTorch order: conv1, conv2, conv3, downsample */
            unit_tensors(m, f + 1, &poff, &soff);
            unit_tensors(m, f + 2, &poff, &soff);
            unit_tensors(m, f + 3, &poff, &soff);
            unit_tensors(m, f, &poff, &soff);
        }
    }
    /* block parameter offsets: first parameter of each block */
    for (int blk = FSB_MODEL_BLOCKS - 1; blk >= 0; blk--)
        for (int t = m->ntens - 1; t >= 0; t--)
            if (m->tens[t].block == blk && m->tens[t].kind == FSB_T_PARAM)
                m->block_off[blk] = m->tens[t].off;
    m->ntens_backbone = m->ntens;
    m->nstats = soff;
    head_tensors(m, &poff, &soff);
    m->nparams = poff;
}

static float *falloc(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

static void init_uniform(float *p, long n, float bound, fsb_rng *rng)
{
    for (long i = 0; i < n; i++)
        p[i] = (2.0f * fsb_rng_uniformf(rng) - 1.0f) * bound;
}

static void init_head(fsb_model *m, fsb_rng *rng)
{
    if (m->n_class <= 0) return;
    if (!rng) { /* no rng: zeros (the caller loads or sets the weights) */
        memset(m->params + m->head_off, 0, sizeof(float) * (size_t)(m->nparams - m->head_off));
        return;
    }
    float bound = 1.0f / sqrtf((float)m->D);
    init_uniform(m->params + m->head_off, (long)m->n_class * m->D + m->n_class, bound, rng);
}

static void init_params(fsb_model *m, fsb_rng *rng)
{
    for (int i = 0; i < m->ntens_backbone; i++) {
        tentry *t = &m->tens[i];
        if (t->role == R_NBT) {
            m->nbt[t->off] = 0;
            continue;
        }
        float *d = t->kind == FSB_T_PARAM ? m->params + t->off : m->stats + t->off;
        long fan_in = 1, fan_out = 1;
        if (t->role == R_CONV_W || t->role == R_CONV_B) {
            const tentry *w = t->role == R_CONV_W ? t : t - 1;
            fan_in = (long)w->dims[1] * w->dims[2] * w->dims[3];
            fan_out = (long)w->dims[0] * w->dims[2] * w->dims[3];
        }
        if (t->role == R_BN_W || t->role == R_RV) {
            for (long j = 0; j < t->numel; j++)
                d[j] = 1.0f;
        } else if (t->role == R_BN_B || t->role == R_RM || !rng) {
            memset(d, 0, sizeof(float) * (size_t)t->numel);
        } else if (t->role == R_CONV_W && m->o.arch == FSB_ARCH_RES12) {
            float sd = sqrtf(2.0f / (float)fan_out);
            for (long j = 0; j < t->numel; j++)
                d[j] = (float)fsb_rng_normal(rng) * sd;
        } else { /* conv4 weight and bias: PyTorch default */
            init_uniform(d, t->numel, 1.0f / sqrtf((float)fan_in), rng);
        }
    }
    if (rng)
        init_head(m, rng);
    else if (m->n_class > 0)
        memset(m->params + m->head_off, 0, sizeof(float) * (size_t)(m->nparams - m->head_off));
}

fsb_model *fsb_model_layout_only(const fsb_model_opts *opts, int n_class)
{
    fsb_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->o = *opts;
    m->n_class = n_class;
    build_units(m);
    return m;
}

/* opts.conv ONEDNN: a oneDNN cache per worker and the blocked-weight buffers of the units
 * that use it (their layouts found now, so that a oneDNN failure is reported here); *plane =
 * the largest (cout,h,w) of those units. */
static int dnnl_setup(fsb_model *m, size_t *plane)
{
    m->dnn = calloc((size_t)m->nworkers, sizeof *m->dnn);
    if (!m->dnn) return fsb_error(FSB_ENOMEM, "model: out of memory");
    for (int w = 0; w < m->nworkers; w++) {
        int st = fsb_dnnl_create(&m->dnn[w]);
        if (st) return fsb_error_wrap(st, "model: convolution backend onednn");
    }
    long nf = 0, nb = 0;
    for (int i = 0; i < m->nunits; i++) {
        const unit *u = &m->u[i];
        if (!fsb_unit_dnnl(m, u)) continue;
        long f, b;
        int st = fsb_dnnl_weights_floats(m->dnn[0], 1, u->cin, u->h, u->w, u->cout, &f, &b);
        if (st) return fsb_error_wrap(st, "model: convolution backend onednn");
        nf = f > nf ? f : nf;
        nb = b > nb ? b : nb;
        size_t p = (size_t)u->cout * u->h * u->w;
        *plane = p > *plane ? p : *plane;
    }
    m->wdf = falloc((size_t)(nf > 0 ? nf : 1));
    m->wdb = falloc((size_t)(nb > 0 ? nb : 1));
    if (!m->wdf || !m->wdb) return fsb_error(FSB_ENOMEM, "model: out of memory");
    return FSB_OK;
}

/* The arguments of fsb_model_create, checked before anything is allocated. */
static int check_create(const fsb_model_opts *opts, int n_class, int max_batch)
{
    if (max_batch < 1 || n_class < 0)
        return fsb_error(FSB_EINVAL, "model: bad max_batch %d or n_class %d", max_batch, n_class);
    int minhw = 16; /* four 2x2 pools must leave at least 1x1 */
    if (opts->in_hw < minhw)
        return fsb_error(FSB_EINVAL, "model: input size %d too small (>= %d)", opts->in_hw, minhw);
    for (int i = 0; i < 4; i++)
        if (opts->widths[i] < 1)
            return fsb_error(FSB_EINVAL, "model: bad width %d", opts->widths[i]);
    if (!(opts->drop_rate >= 0 && opts->drop_rate < 1) ||
        !(opts->dropblock_rate >= 0 && opts->dropblock_rate < 1))
        return fsb_error(FSB_EINVAL,
                         "model: dropout rate %g and DropBlock rate %g must be in [0, 1)",
                         opts->drop_rate, opts->dropblock_rate);
    if (opts->arch == FSB_ARCH_RES12 && opts->dropblock_rate > 0 && opts->dropblock_size < 1)
        return fsb_error(FSB_EINVAL, "model: bad DropBlock size %d", opts->dropblock_size);
    if (opts->conv != FSB_CONV_GEMM && opts->conv != FSB_CONV_ONEDNN)
        return fsb_error(FSB_EINVAL, "model: bad convolution backend %d", (int)opts->conv);
    if (opts->conv == FSB_CONV_ONEDNN && !fsb_dnnl_available())
        return fsb_error(FSB_EINVAL, "model: convolution backend onednn: fsbench was built "
                                     "without oneDNN (apt-get install libdnnl-dev, reconfigure)");
    return FSB_OK;
}

int fsb_model_create(fsb_model **out, const fsb_model_opts *opts, int n_class, int max_batch,
                     fsb_pool *pool, fsb_rng *init_rng)
{
    *out = NULL;
    int vst = check_create(opts, n_class, max_batch);
    if (vst) return vst;
    fsb_model *m = calloc(1, sizeof *m);
    if (!m) return fsb_error(FSB_ENOMEM, "model: out of memory");
    m->o = *opts;
    if (m->o.grad_splits < 1) m->o.grad_splits = 4;
    m->n_class = n_class;
    m->max_batch = max_batch;
    m->pool = pool;
    m->nworkers = fsb_pool_size(pool);
    fsb_blas_set_threads(1);
    build_units(m);

    int st = FSB_ENOMEM;
    size_t B = (size_t)max_batch;
    m->params = falloc((size_t)m->nparams);
    m->grads = falloc((size_t)m->nparams);
    m->stats = falloc((size_t)m->nstats);
    m->nbt = calloc((size_t)m->nbn + 1, sizeof *m->nbt);
    if (!m->params || !m->grads || !m->stats || !m->nbt) goto done;
    size_t colmax = 0, planemax = 0, wmax = 0, inmax = 0;
    for (int s = 0; s <= FSB_MODEL_BLOCKS; s++) {
        size_t sz = (size_t)m->stage_c[s] * m->stage_hw[s] * m->stage_hw[s];
        inmax = sz > inmax ? sz : inmax;
    }
    inmax = (size_t)m->D > inmax ? (size_t)m->D : inmax;
    for (int i = 0; i < m->nunits; i++) {
        unit *u = &m->u[i];
        size_t hw = (size_t)u->h * u->w, ohw = (size_t)u->ho * u->wo;
        size_t cc = (size_t)(u->cin > u->cout ? u->cin : u->cout);
        size_t col = cc * u->k * u->k * hw; /* im2col of x (forward, dW) or of dy (dx) */
        colmax = col > colmax ? col : colmax;
        planemax = u->cout * hw > planemax ? u->cout * hw : planemax;
        size_t wn = (size_t)u->cout * u->cin * u->k * u->k;
        wmax = wn > wmax ? wn : wmax;
        u->y = falloc(B * u->cout * hw);
        u->out = falloc(B * u->cout * ohw);
        u->dout = falloc(B * u->cout * ohw);
        u->mean = falloc((size_t)u->cout);
        u->rstd = falloc((size_t)u->cout);
        u->ea = falloc((size_t)u->cout);
        u->esh = falloc((size_t)u->cout);
        u->ps = calloc(B * 2 * (size_t)u->cout, sizeof(double));
        if (!u->y || !u->out || !u->dout || !u->mean || !u->rstd || !u->ea || !u->esh || !u->ps)
            goto done;
        if (u->pool && !(u->arg = malloc(B * u->cout * ohw))) goto done;
        if (u->drop && !(u->mask = falloc(B * u->cout * ohw))) goto done;
    }
    m->col = calloc((size_t)m->nworkers, sizeof *m->col);
    m->dz = calloc((size_t)m->nworkers, sizeof *m->dz);
    if (!m->col || !m->dz) goto done;
    for (int w = 0; w < m->nworkers; w++) {
        m->col[w] = falloc(colmax);
        m->dz[w] = falloc(planemax);
        if (!m->col[w] || !m->dz[w]) goto done;
    }
    m->colmax = (long)colmax;
    m->direct_conv = fsb_conv3_small_simd();
    m->small_batch = m->o.per_image ? 0 : FSB_SMALL_BATCH;
    for (int i = 0; i < m->nunits; i++)
        m->cmax = m->u[i].cout > m->cmax ? m->u[i].cout : m->cmax;
    m->cvec = falloc(3 * (size_t)m->cmax);
    m->partial = falloc((size_t)m->o.grad_splits * wmax);
    size_t dyb = (size_t)(B < FSB_SMALL_BATCH - 1 ? B : FSB_SMALL_BATCH - 1) * planemax;
    if (m->o.conv == FSB_CONV_ONEDNN) {
        size_t dn = 0;
        int dst = dnnl_setup(m, &dn);
        if (dst) {
            fsb_model_destroy(m);
            return dst;
        }
        dyb = B * dn > dyb ? B * dn : dyb;
    }
    m->dyb = falloc(dyb);
    m->wflip = falloc(wmax);
    m->input = falloc(B * inmax);
    m->emb = falloc(B * (size_t)m->D);
    m->demb = falloc(B * (size_t)m->D);
    m->emb_arg = malloc(B * (size_t)m->D * sizeof(int32_t));
    m->logits = falloc(B * (size_t)(n_class > 0 ? n_class : 1));
    m->dlog = falloc(B * (size_t)(n_class > 0 ? n_class : 1));
    if (!m->cvec || !m->wflip || !m->partial || !m->dyb || !m->input || !m->emb || !m->demb ||
        !m->emb_arg || !m->logits || !m->dlog)
        goto done;
    init_params(m, init_rng);
    memset(m->grads, 0, sizeof(float) * (size_t)m->nparams);
    m->first_trainable = 0;
    *out = m;
    return FSB_OK;
done:
    fsb_model_destroy(m);
    return fsb_error(st, "model: out of memory for %s with batch %d", fsb_arch_name(opts->arch),
                     max_batch);
}

void fsb_model_destroy(fsb_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->nunits; i++) {
        unit *u = &m->u[i];
        free(u->y);
        free(u->out);
        free(u->dout);
        free(u->mean);
        free(u->rstd);
        free(u->ea);
        free(u->esh);
        free(u->ps);
        free(u->arg);
        free(u->mask);
    }
    for (int w = 0; m->col && w < m->nworkers; w++)
        free(m->col[w]);
    for (int w = 0; m->dz && w < m->nworkers; w++)
        free(m->dz[w]);
    free(m->col);
    free(m->dz);
    free(m->partial);
    free(m->wflip);
    free(m->dyb);
    for (int w = 0; m->dnn && w < m->nworkers; w++)
        fsb_dnnl_destroy(m->dnn[w]);
    free(m->dnn);
    free(m->wdf);
    free(m->wdb);
    free(m->cvec);
    free(m->input);
    free(m->emb);
    free(m->demb);
    free(m->emb_arg);
    free(m->logits);
    free(m->dlog);
    free(m->params);
    free(m->grads);
    free(m->stats);
    free(m->nbt);
    free(m);
}

const fsb_model_opts *fsb_model_options(const fsb_model *m)
{
    return &m->o;
}

int fsb_model_embed_dim(const fsb_model *m)
{
    return m->D;
}

int fsb_model_n_class(const fsb_model *m)
{
    return m->n_class;
}

int fsb_model_max_batch(const fsb_model *m)
{
    return m->max_batch;
}

void fsb_model_stage_shape(const fsb_model *m, int stage, int *c, int *h, int *w)
{
    assert(stage >= 0 && stage <= FSB_MODEL_BLOCKS);
    if (stage == FSB_MODEL_BLOCKS) {
        *c = m->D;
        *h = *w = 1;
        return;
    }
    *c = m->stage_c[stage];
    *h = *w = m->stage_hw[stage];
}

/* ---- tensors -------------------------------------------------------------------------- */

int fsb_model_n_tensors(const fsb_model *m)
{
    return m->ntens;
}

void fsb_model_tensor_at(const fsb_model *m, int i, fsb_model_tensor *t)
{
    assert(i >= 0 && i < m->ntens);
    const tentry *e = &m->tens[i];
    memset(t, 0, sizeof *t);
    t->name = e->name;
    t->kind = e->kind;
    t->ndim = e->ndim;
    for (int d = 0; d < e->ndim; d++)
        t->dims[d] = e->dims[d];
    t->numel = e->numel;
    t->block = e->block;
    if (e->kind == FSB_T_PARAM) {
        t->data = m->params + e->off;
        t->grad = m->grads + e->off;
        t->trainable = e->block >= m->first_trainable;
    } else if (e->kind == FSB_T_NUM_BATCHES) {
        t->count = &m->nbt[e->off];
    } else {
        t->data = m->stats + e->off;
    }
}

int fsb_model_find_tensor(const fsb_model *m, const char *name)
{
    for (int i = 0; i < m->ntens; i++)
        if (!strcmp(m->tens[i].name, name)) return i;
    return -1;
}

float *fsb_model_params(fsb_model *m, long *n)
{
    *n = m->nparams;
    return m->params;
}

float *fsb_model_grads(fsb_model *m, long *n)
{
    *n = m->nparams;
    return m->grads;
}

long fsb_model_trainable_offset(const fsb_model *m)
{
    return m->first_trainable >= FSB_MODEL_BLOCKS ? m->head_off : m->block_off[m->first_trainable];
}

void fsb_model_resume_warmup(fsb_model *m)
{
    for (int i = 0; i < m->nunits; i++)
        m->u[i].step = (long)m->nbt[m->u[i].nbt];
}

void fsb_model_set_adapt(fsb_model *m, fsb_adapt adapt)
{
    m->first_trainable = adapt == FSB_ADAPT_ALL    ? 0
                         : adapt == FSB_ADAPT_LAST ? FSB_MODEL_BLOCKS - 1
                                                   : FSB_MODEL_BLOCKS;
}

int fsb_model_first_trainable(const fsb_model *m)
{
    return m->first_trainable;
}

void fsb_model_zero_grad(fsb_model *m)
{
    memset(m->grads, 0, sizeof(float) * (size_t)m->nparams);
}

static int same_arch(const fsb_model *a, const fsb_model *b)
{
    return a->o.arch == b->o.arch && !memcmp(a->o.widths, b->o.widths, sizeof a->o.widths) &&
           a->o.in_hw == b->o.in_hw && a->D == b->D;
}

int fsb_model_copy_weights(fsb_model *dst, const fsb_model *src, int with_head)
{
    if (!same_arch(dst, src))
        return fsb_error(FSB_EMISMATCH, "copy weights: architectures differ (%s vs %s)",
                         fsb_arch_name(dst->o.arch), fsb_arch_name(src->o.arch));
    if (with_head && dst->n_class != src->n_class)
        return fsb_error(FSB_EMISMATCH, "copy weights: head has %d classes, source %d",
                         dst->n_class, src->n_class);
    long n = with_head ? dst->nparams : dst->head_off;
    memcpy(dst->params, src->params, sizeof(float) * (size_t)n);
    memcpy(dst->stats, src->stats, sizeof(float) * (size_t)dst->nstats);
    memcpy(dst->nbt, src->nbt, sizeof(int64_t) * (size_t)dst->nbn);
    for (int i = 0; i < dst->nunits; i++)
        dst->u[i].step = src->u[i].step;
    return FSB_OK;
}

int fsb_model_reset_head(fsb_model *m, int n_class, fsb_rng *rng)
{
    if (n_class < 0) return fsb_error(FSB_EINVAL, "reset head: bad class count %d", n_class);
    if (n_class != m->n_class) {
        long nb = m->head_off;
        long np = nb + (n_class > 0 ? (long)n_class * m->D + n_class : 0);
        float *p = falloc((size_t)np), *g = falloc((size_t)np);
        size_t B = (size_t)m->max_batch, nc = (size_t)(n_class > 0 ? n_class : 1);
        float *lg = falloc(B * nc), *dl = falloc(B * nc);
        if (!p || !g || !lg || !dl) {
            free(p), free(g), free(lg), free(dl);
            return fsb_error(FSB_ENOMEM, "reset head: out of memory");
        }
        memcpy(p, m->params, sizeof(float) * (size_t)nb);
        free(m->params), free(m->grads), free(m->logits), free(m->dlog);
        m->params = p, m->grads = g, m->logits = lg, m->dlog = dl;
        m->n_class = n_class;
        long poff = nb, soff = m->nstats;
        head_tensors(m, &poff, &soff);
        m->nparams = poff;
    }
    init_head(m, rng);
    fsb_model_zero_grad(m);
    return FSB_OK;
}

/* ---- profiling -------------------------------------------------------------------------- */

int fsb_model_profile_n(const fsb_model *m)
{
    return m->nunits + 1;
}

void fsb_model_profile_at(const fsb_model *m, int i, const char **name, double *fwd, double *bwd)
{
    assert(i >= 0 && i <= m->nunits);
    if (i == m->nunits) {
        *name = "head";
        *fwd = m->t_head_f;
        *bwd = m->t_head_b;
        return;
    }
    *name = m->u[i].conv_name;
    *fwd = m->u[i].t_fwd;
    *bwd = m->u[i].t_bwd;
}

void fsb_model_profile_flops(const fsb_model *m, int i, double *fwd, double *bwd)
{
    assert(i >= 0 && i <= m->nunits);
    if (i == m->nunits) {
        *fwd = 2.0 * m->D * m->n_class;
        *bwd = 2 * *fwd; /* weight gradient and embedding gradient */
        return;
    }
    const unit *u = &m->u[i];
    *fwd = 2.0 * u->cout * u->cin * u->k * u->k * u->h * u->w;
    *bwd = u->src < 0 && u->block == 0 ? *fwd : 2 * *fwd;
}

void fsb_model_profile_reset(fsb_model *m)
{
    for (int i = 0; i < m->nunits; i++)
        m->u[i].t_fwd = m->u[i].t_bwd = 0;
    m->t_head_f = m->t_head_b = 0;
}
