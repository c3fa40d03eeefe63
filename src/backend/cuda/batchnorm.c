// cuda batchnorm2d with cuDNN (NHWC, spatial mode).
//
// Training: cudnnBatchNormalizationForwardTraining with exponentialAverageFactor =
// momentum, which is PyTorch's rule running = (1 - m) running + m batch, with the
// unbiased (M/(M-1)) variance in running_var -- the same call PyTorch makes on CUDA.
// Eval: our kernels (mean = running_mean, invstd = 1/sqrt(running_var + eps)), since the
// backward of an eval-mode batchnorm (attacks and Grad-CAM on a trained model) treats the
// statistics as constants, which cuDNN's backward does not do.
// saved: mean (C), invstd (C), one unused float (ref's layout). The mode of the last forward
// is kept in the node state, so backward follows the forward whatever g->training says.
#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"
#include "robustcv/error.h"

typedef struct {
    cudnnTensorDescriptor_t x, p;
    int batch_stats;
} bn_state;

static size_t bn_saved_size(const rcv_graph *g, const rcv_node *n) { return 2 * (size_t)n->shape.c + 1; }

static void bn_release(rcv_node *n) {
    bn_state *st = n->kstate;
    if (!st) return;
    if (st->x) cudnnDestroyTensorDescriptor(st->x);
    if (st->p) cudnnDestroyTensorDescriptor(st->p);
    free(st);
    n->kstate = NULL;
}

static int bn_prepare(rcv_graph *g, rcv_node *n) {
    rcv_shape s = n->shape;
    if (n->attr.bn.eps < CUDNN_BN_MIN_EPSILON)
        return rcv_fail("batchnorm eps %g is below cuDNN's minimum %g", (double)n->attr.bn.eps, CUDNN_BN_MIN_EPSILON);
    bn_state *st = rcv_xcalloc(1, sizeof *st);
    n->kstate = st;
    if (cudnnCreateTensorDescriptor(&st->x) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateTensorDescriptor(&st->p) != CUDNN_STATUS_SUCCESS ||
        cudnnSetTensor4dDescriptor(st->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.n, s.c, s.h, s.w) !=
            CUDNN_STATUS_SUCCESS ||
        cudnnDeriveBNTensorDescriptor(st->p, st->x, CUDNN_BATCHNORM_SPATIAL) != CUDNN_STATUS_SUCCESS)
        return rcv_fail("cuDNN rejects batchnorm of shape (%d, %d, %d, %d)", s.n, s.c, s.h, s.w);
    // cuDNN's backward always writes dx: where no gradient flows to x it goes to the workspace.
    if (!g->nodes[n->in[0]].grad) return cu_ws_reserve(cu_of(g), rcv_numel(s) * sizeof(float));
    return 0;
}

static void bn_forward(rcv_graph *g, rcv_node *n) {
    cu_ctx *c = cu_of(g);
    bn_state *st = n->kstate;
    rcv_shape s = n->shape;
    const float *x = rcv_in(g, n, 0), *w = cu_param(g, n, 0), *b = cu_param(g, n, 1);
    float *rm = cu_buf(g, n, 0), *rv = cu_buf(g, n, 1), *mean = n->saved, *invstd = n->saved + s.c;
    size_t rows = (size_t)s.n * s.h * s.w;
    st->batch_stats = g->training;
    if (g->training) {
        const float one = 1.0f, zero = 0.0f;
        CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(c->cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, st->x, x,
                                                           st->x, n->out, st->p, w, b, n->attr.bn.momentum, rm, rv,
                                                           n->attr.bn.eps, mean, invstd));
        rcv_cu_i64_add(cu_ibuf(g, n, 2), 1, c->stream);
    } else {
        rcv_cu_bn_eval_stats(rm, rv, mean, invstd, s.c, n->attr.bn.eps, c->stream);
        rcv_cu_bn_eval_fwd(x, mean, invstd, w, b, n->out, rows, s.c, c->stream);
    }
}

// Parameter gradients always accumulate (betaParamDiff = 1); dx follows in_beta.
static void bn_backward(rcv_graph *g, rcv_node *n) {
    cu_ctx *c = cu_of(g);
    bn_state *st = n->kstate;
    rcv_shape s = n->shape;
    const float *x = rcv_in(g, n, 0), *w = cu_param(g, n, 0), *mean = n->saved, *invstd = n->saved + s.c;
    float *dw = cu_param_grad(g, n, 0), *db = cu_param_grad(g, n, 1);
    size_t rows = (size_t)s.n * s.h * s.w;
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (st->batch_stats) {
        const float one = 1.0f, zero = 0.0f;
        float *dxp = dx ? dx : (float *)c->ws;
        CUDNN_CHECK(cudnnBatchNormalizationBackward(c->cudnn, CUDNN_BATCHNORM_SPATIAL, &one, dx && beta ? &one : &zero,
                                                    &one, &one, st->x, x, st->x, n->grad, st->x, dxp, st->p, w, dw, db,
                                                    n->attr.bn.eps, mean, invstd));
    } else {
        rcv_cu_bn_param_grads(x, n->grad, mean, invstd, dw, db, rows, s.c, c->stream);
        if (dx) rcv_cu_bn_eval_dx(n->grad, w, invstd, dx, rows, s.c, beta, c->stream);
    }
}

const rcv_kernels rcv_cuda_batchnorm2d = {
    .prepare = bn_prepare,
    .forward = bn_forward,
    .backward = bn_backward,
    .release = bn_release,
    .saved_size = bn_saved_size,
};
