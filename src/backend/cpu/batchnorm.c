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
// Scratch (bytes): [dx when accumulating or not wanted | dweight (C) | dbias (C) | scratchpad].
#include <stdlib.h>

#include "backend/cpu/dnnl_ctx.h"
#include "robustcv/error.h"

typedef struct {
    rcv_dnnl_prim fwd_train, fwd_eval, bwd_train, bwd_eval;
    size_t off_dx, off_dw, off_db, off_pad;
    int last_training;
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
    dnnl_memory_desc_t md;
    if (rcv_dnnl_md_nhwc(&md, n->shape)) return -1;
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

static void bn_forward(rcv_graph *g, rcv_node *n) {
    bn_state *s = n->kstate;
    char *pad = (char *)g->scratch + s->off_pad;
    int C = n->shape.c;
    float *w = rcv_param_data(g, n->param[0]), *b = rcv_param_data(g, n->param[1]);
    float *rm = rcv_param_data(g, n->buf[0]), *rv = rcv_param_data(g, n->buf[1]);
    void *ws = n->saved + 2 * C;
    s->last_training = g->training && !n->frozen_stats; // frozen: running stats, not updated
    if (!s->last_training) {
        void *args[7] = {rcv_in(g, n, 0), n->out, w, b, rm, rv, ws};
        rcv_dnnl_run(g, &s->fwd_eval, args, pad);
        return;
    }
    float *mean = n->saved, *var = n->saved + C;
    void *args[7] = {rcv_in(g, n, 0), n->out, w, b, mean, var, ws};
    rcv_dnnl_run(g, &s->fwd_train, args, pad);
    double cnt = (double)n->shape.n * n->shape.h * n->shape.w;
    float m = n->attr.bn.momentum, unbias = cnt > 1 ? (float)(cnt / (cnt - 1)) : 1.0f;
    for (int c = 0; c < C; c++) {
        rm[c] = (1 - m) * rm[c] + m * mean[c];
        rv[c] = (1 - m) * rv[c] + m * var[c] * unbias;
    }
    if (n->buf[2] >= 0) g->ibuffers[g->param_info[n->buf[2]].offset] += 1;
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
    if (s->last_training) {
        mean = n->saved, var = n->saved + C, p = &s->bwd_train;
    } else {
        mean = rcv_param_data(g, n->buf[0]), var = rcv_param_data(g, n->buf[1]), p = &s->bwd_eval;
    }
    void *args[10] = {rcv_in(g, n, 0), mean, var, n->grad, w, dxw, dw, db, b, n->saved + 2 * C};
    rcv_dnnl_run(g, p, args, scr + s->off_pad);
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
};
