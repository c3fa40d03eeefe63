// batchnorm2d on oneDNN: x (N, C, H, W) NHWC -> y, per-channel weight, bias (C).
//
// Training: batch statistics (oneDNN's biased variance) go to n->saved =
// [mean (C) | var (C)] for backward, and running stats follow PyTorch:
//   running_mean = (1 - m) running_mean + m mean
//   running_var  = (1 - m) running_var  + m var * cnt / (cnt - 1),  cnt = N*H*W
// Eval: the running stats normalize (use_global_stats), and backward through
// them is the affine map (attacks differentiate eval-mode models). A node with
// frozen_stats runs in eval mode always (batchnorm in a frozen part of a fine-tuned net).
// Backward uses the mode of the last forward.
//
// Fused ReLU (n->fused_relu, set by the planner when a ReLU is the only consumer): the
// primitives carry dnnl_fuse_norm_relu, y = max(bn(x), 0), and forward leaves oneDNN's
// ReLU mask (its workspace) after the statistics in n->saved for backward, which then
// takes the ReLU's output gradient directly.
//
// Synchronised batchnorm (training with g->bn_allreduce set, dist.h): per-channel sum and
// sum of squares of this rank's x are summed over ranks with the element count M, giving
// mean = S/M and biased var = Q/M - mean^2; the global-stats primitive (the eval one, with
// fused ReLU if any) normalises with them, and running stats take var * M/(M-1).
// Backward runs the global-stats backward, which yields oneDNN's masked dy times
// weight * invstd and the local sums db = sum(dy), dw = sum(dy xhat); those two (and M)
// are summed over ranks and the batch-statistics terms subtracted:
//   dx = w invstd (dy - sum_dy/M - xhat sum_dy_xhat/M).
// dweight, dbias stay local (the gradient allreduce sums them).
//
// Scratch (bytes): [dx when accumulating or not wanted | dweight (C) | dbias (C) | scratchpad].
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_util.h"
#include "backend/cpu/dnnl_ctx.h"
#include "robustcv/error.h"

#define RCV_BN_PAR_MIN 32768

typedef struct {
    rcv_dnnl_prim fwd_train, fwd_eval, bwd_train, bwd_eval;
    size_t off_dx, off_dw, off_db, off_pad;
    int last_training, last_sync;
    double *acc;     // sync-bn: 2C + 1 sums reduced over ranks
    float *ca, *cb;  // sync-bn backward: dx -= ca[c] + x cb[c]
} bn_state;

// [mean (C) | var (C) | ReLU mask (at most one byte per element) when fused]
static size_t bn_saved(const rcv_graph *g, const rcv_node *n) {
    (void)g;
    return 2 * (size_t)n->shape.c + (n->fused_relu ? (rcv_numel(n->shape) + 3) / 4 : 0);
}

static void bn_release(rcv_node *n) {
    bn_state *s = n->kstate;
    if (!s) return;
    rcv_dnnl_prim_free(&s->fwd_train);
    rcv_dnnl_prim_free(&s->fwd_eval);
    rcv_dnnl_prim_free(&s->bwd_train);
    rcv_dnnl_prim_free(&s->bwd_eval);
    free(s->acc);
    free(s->ca);
    free(s->cb);
    free(s);
    n->kstate = NULL;
}

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

// One mode: forward pd (training prop, so it can hint backward) and backward pd.
static int bn_build(rcv_graph *g, rcv_node *n, const dnnl_memory_desc_t *md, unsigned flags, rcv_dnnl_prim *fwd,
                    rcv_dnnl_prim *bwd, dnnl_primitive_attr_t attr) {
    rcv_cpu_ctx *c = rcv_cpu(g);
    float eps = n->attr.bn.eps;
    dnnl_batch_normalization_desc_t fd, bd;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    int rc = -1;
    if (RCV_DNNL(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, md, eps, flags)) ||
        RCV_DNNL(dnnl_primitive_desc_create(&fpd, &fd, attr, c->engine, NULL)))
        goto done;
    int fargs[7] = {DNNL_ARG_SRC,  DNNL_ARG_DST,      DNNL_ARG_SCALE,    DNNL_ARG_SHIFT,
                    DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_WORKSPACE};
    int fused = (flags & dnnl_fuse_norm_relu) != 0;
    if (fused) {
        size_t ws = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0));
        if (ws > (bn_saved(g, n) - 2 * (size_t)n->shape.c) * sizeof(float)) {
            rcv_fail("batchnorm2d+relu: oneDNN wants a %zu-byte workspace, more than the planned one", ws);
            goto done;
        }
    }
    if (rcv_dnnl_prim_init(g, fwd, fpd, fargs, fused ? 7 : 6)) goto done;
    if (RCV_DNNL(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, md, md, eps, flags)) ||
        RCV_DNNL(dnnl_primitive_desc_create(&bpd, &bd, attr, c->engine, fpd)))
        goto done;
    // oneDNN 2.6 refuses to execute backward (invalid_arguments) without SHIFT, though it does not read it.
    int bargs[10] = {DNNL_ARG_SRC,      DNNL_ARG_MEAN,       DNNL_ARG_VARIANCE,    DNNL_ARG_DIFF_DST, DNNL_ARG_SCALE,
                     DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_SCALE, DNNL_ARG_DIFF_SHIFT, DNNL_ARG_SHIFT,    DNNL_ARG_WORKSPACE};
    if (rcv_dnnl_prim_init(g, bwd, bpd, bargs, fused ? 10 : 9)) goto done;
    rc = 0;
done:
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    return rc;
}

static int bn_prepare(rcv_graph *g, rcv_node *n) {
    bn_state *s = calloc(1, sizeof *s);
    if (!s) return rcv_fail("batchnorm2d: out of memory");
    n->kstate = s;
    s->acc = calloc(2 * (size_t)n->shape.c + 1, sizeof(double));
    s->ca = calloc((size_t)n->shape.c, sizeof(float));
    s->cb = calloc((size_t)n->shape.c, sizeof(float));
    if (!s->acc || !s->ca || !s->cb) return rcv_fail("batchnorm2d: out of memory");
    dnnl_memory_desc_t md;
    if (rcv_dnnl_md_act(&md, n->shape, n->blocked)) return -1;
    dnnl_primitive_attr_t attr;
    if (rcv_dnnl_attr(&attr, 0)) return -1;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (n->fused_relu ? dnnl_fuse_norm_relu : 0);
    int rc = bn_build(g, n, &md, flags, &s->fwd_train, &s->bwd_train, attr) ||
             bn_build(g, n, &md, flags | dnnl_use_global_stats, &s->fwd_eval, &s->bwd_eval, attr);
    dnnl_primitive_attr_destroy(attr);
    if (rc) return -1;
    size_t pad = max_z(max_z(s->fwd_train.scratchpad_bytes, s->fwd_eval.scratchpad_bytes),
                       max_z(s->bwd_train.scratchpad_bytes, s->bwd_eval.scratchpad_bytes));
    size_t top = 0, C = (size_t)n->shape.c;
    s->off_dx = rcv_scratch_take(&top, rcv_numel(n->shape) * sizeof(float));
    s->off_dw = rcv_scratch_take(&top, C * sizeof(float));
    s->off_db = rcv_scratch_take(&top, C * sizeof(float));
    s->off_pad = rcv_scratch_take(&top, pad);
    rcv_graph_scratch(g, top / sizeof(float) + 1);
    return 0;
}

// Channels c0 .. c0+15 of row r = (n, h, w) of an activation: NHWC, or nChw16c (c0 % 16 == 0).
static inline size_t bn_row(const rcv_node *n, size_t r, int c0) {
    if (!n->blocked) return r * (size_t)n->shape.c + (size_t)c0;
    size_t hw = (size_t)n->shape.h * n->shape.w;
    return (((r / hw) * (size_t)(n->shape.c / 16) + (size_t)(c0 / 16)) * hw + r % hw) * 16;
}

// Sync-bn: s->acc = [sum x (C) | sum x^2 (C) | M] over all ranks; mean, var (C) from them.
static double bn_sync_stats(rcv_graph *g, rcv_node *n, float *mean, float *var) {
    bn_state *s = n->kstate;
    const float *x = rcv_in(g, n, 0);
    int C = n->shape.c;
    size_t rows = (size_t)n->shape.n * n->shape.h * n->shape.w;
    double *acc = s->acc;
    // Threads own blocks of 16 channels and walk all rows (NHWC: a block is contiguous).
#pragma omp parallel for schedule(static) if (rows * (size_t)C > RCV_BN_PAR_MIN)
    for (int c0 = 0; c0 < C; c0 += 16) {
        int nc = C - c0 < 16 ? C - c0 : 16;
        double sm[16] = {0}, sq[16] = {0};
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + bn_row(n, r, c0);
            for (int j = 0; j < nc; j++) {
                double v = xr[j];
                sm[j] += v;
                sq[j] += v * v;
            }
        }
        for (int j = 0; j < nc; j++) acc[c0 + j] = sm[j], acc[C + c0 + j] = sq[j];
    }
    acc[2 * C] = (double)rows;
    g->bn_allreduce(g, acc, 2 * (size_t)C + 1);
    double M = acc[2 * C];
    for (int c = 0; c < C; c++) {
        double mu = acc[c] / M, v = acc[C + c] / M - mu * mu;
        mean[c] = (float)mu;
        var[c] = (float)(v > 0 ? v : 0);
    }
    return M;
}

static void bn_forward(rcv_graph *g, rcv_node *n) {
    bn_state *s = n->kstate;
    char *pad = (char *)g->scratch + s->off_pad;
    int C = n->shape.c;
    float *w = rcv_param_data(g, n->param[0]), *b = rcv_param_data(g, n->param[1]);
    float *rm = rcv_param_data(g, n->buf[0]), *rv = rcv_param_data(g, n->buf[1]);
    void *ws = n->saved + 2 * C;
    s->last_training = g->training && !n->frozen_stats; // frozen: running stats, not updated
    s->last_sync = s->last_training && g->bn_allreduce;
    if (!s->last_training) {
        void *args[7] = {rcv_in(g, n, 0), n->out, w, b, rm, rv, ws};
        rcv_dnnl_run(g, &s->fwd_eval, args, pad);
        return;
    }
    float *mean = n->saved, *var = n->saved + C;
    void *args[7] = {rcv_in(g, n, 0), n->out, w, b, mean, var, ws};
    double cnt = (double)n->shape.n * n->shape.h * n->shape.w;
    if (s->last_sync) {
        cnt = bn_sync_stats(g, n, mean, var);
        rcv_dnnl_run(g, &s->fwd_eval, args, pad);
    } else {
        rcv_dnnl_run(g, &s->fwd_train, args, pad);
    }
    float m = n->attr.bn.momentum, unbias = cnt > 1 ? (float)(cnt / (cnt - 1)) : 1.0f;
    for (int c = 0; c < C; c++) {
        rm[c] = (1 - m) * rm[c] + m * mean[c];
        rv[c] = (1 - m) * rv[c] + m * var[c] * unbias;
    }
    if (n->buf[2] >= 0) g->ibuffers[g->param_info[n->buf[2]].offset] += 1;
}

// Sync-bn: dxw holds w invstd dy (masked by the fused ReLU); subtract the batch-statistics
// terms with the sums over ranks: dx -= w invstd (sum_dy/M + xhat sum_dy_xhat/M), written
// per channel as dx -= ca + x cb with xhat = (x - mean) invstd.
static void bn_sync_backward_dx(rcv_graph *g, rcv_node *n, float *dxw, const float *dw, const float *db) {
    bn_state *s = n->kstate;
    int C = n->shape.c;
    const float *x = rcv_in(g, n, 0), *w = rcv_param_data(g, n->param[0]);
    const float *mean = n->saved, *var = n->saved + C;
    double *acc = s->acc;
    for (int c = 0; c < C; c++) acc[c] = db[c], acc[C + c] = dw[c];
    acc[2 * C] = (double)n->shape.n * n->shape.h * n->shape.w;
    g->bn_allreduce(g, acc, 2 * (size_t)C + 1);
    double M = acc[2 * C];
    for (int c = 0; c < C; c++) {
        double invstd = 1.0 / sqrt((double)var[c] + n->attr.bn.eps), k = w[c] * invstd / M;
        double k2 = k * acc[C + c] * invstd; // coefficient of x
        s->cb[c] = (float)k2;
        s->ca[c] = (float)(k * acc[c] - k2 * mean[c]);
    }
    size_t rows = (size_t)n->shape.n * n->shape.h * n->shape.w;
    const float *ca = s->ca, *cb = s->cb;
#pragma omp parallel for schedule(static) if (rows * (size_t)C > RCV_BN_PAR_MIN)
    for (size_t r = 0; r < rows; r++)
        for (int c0 = 0; c0 < C; c0 += 16) {
            size_t o = bn_row(n, r, c0);
            int nc = C - c0 < 16 ? C - c0 : 16;
            float *d = dxw + o;
            const float *xr = x + o;
#pragma omp simd
            for (int j = 0; j < nc; j++) d[j] -= ca[c0 + j] + xr[j] * cb[c0 + j];
        }
}

static void bn_backward(rcv_graph *g, rcv_node *n) {
    bn_state *s = n->kstate;
    char *scr = (char *)g->scratch;
    int C = n->shape.c;
    float *dx = rcv_in_grad(g, n, 0);
    int direct = dx && !n->in_beta[0];
    float *dxw = direct ? dx : (float *)(scr + s->off_dx);
    float *dw = (float *)(scr + s->off_dw), *db = (float *)(scr + s->off_db);
    float *w = rcv_param_data(g, n->param[0]), *b = rcv_param_data(g, n->param[1]);
    float *mean, *var;
    rcv_dnnl_prim *p;
    if (s->last_sync) {
        mean = n->saved, var = n->saved + C, p = &s->bwd_eval;
    } else if (s->last_training) {
        mean = n->saved, var = n->saved + C, p = &s->bwd_train;
    } else {
        mean = rcv_param_data(g, n->buf[0]), var = rcv_param_data(g, n->buf[1]), p = &s->bwd_eval;
    }
    void *args[10] = {rcv_in(g, n, 0), mean, var, n->grad, w, dxw, dw, db, b, n->saved + 2 * C};
    rcv_dnnl_run(g, p, args, scr + s->off_pad);
    if (dx && s->last_sync) bn_sync_backward_dx(g, n, dxw, dw, db);
    if (dx && !direct) rcv_cpu_add_to(dx, dxw, rcv_numel(n->shape));
    float *gw = rcv_param_grad(g, n->param[0]), *gb = rcv_param_grad(g, n->param[1]);
    for (int c = 0; c < C; c++) {
        gw[c] += dw[c];
        gb[c] += db[c];
    }
}

const rcv_kernels rcv_cpu_batchnorm2d = {
    .prepare = bn_prepare,
    .forward = bn_forward,
    .backward = bn_backward,
    .release = bn_release,
    .saved_size = bn_saved,
    .layout = rcv_cpu_layout_tied,
};
