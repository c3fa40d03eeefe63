// cuda max, average and global average pooling (kernels in spatial.cu and reduce.cu).
#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"

static rcv_cu_pool pool_of(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    const rcv_pool_attr *a = &n->attr.pool;
    rcv_cu_pool p = {xs.n, xs.c, xs.h, xs.w, n->shape.h, n->shape.w, a->kh, a->kw, a->sh, a->sw, a->ph, a->pw,
                     a->count_include_pad};
    return p;
}

// saved: the argmax (h * W + w in its plane, as a float), ref's layout.
static size_t maxpool_saved_size(const rcv_graph *g, const rcv_node *n) { return rcv_numel(n->shape); }
static void maxpool_forward(rcv_graph *g, rcv_node *n) {
    rcv_cu_maxpool_fwd(rcv_in(g, n, 0), n->out, n->saved, pool_of(g, n), cu_of(g)->stream);
}
static void maxpool_backward(rcv_graph *g, rcv_node *n) {
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx) rcv_cu_maxpool_bwd(n->grad, n->saved, dx, pool_of(g, n), beta, cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_maxpool2d = {
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .saved_size = maxpool_saved_size,
};

static void avgpool_forward(rcv_graph *g, rcv_node *n) {
    rcv_cu_avgpool_fwd(rcv_in(g, n, 0), n->out, pool_of(g, n), cu_of(g)->stream);
}
static void avgpool_backward(rcv_graph *g, rcv_node *n) {
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx) rcv_cu_avgpool_bwd(n->grad, dx, pool_of(g, n), beta, cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_avgpool2d = {.forward = avgpool_forward, .backward = avgpool_backward};

// x: (N, C, H, W) -> y: (N, C, oh, ow), PyTorch's AdaptiveAvgPool2d windows (spatial.cu).
static void aap_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    rcv_cu_adaptive_avgpool_fwd(rcv_in(g, n, 0), n->out, xs.n, xs.c, xs.h, xs.w, n->shape.h, n->shape.w,
                                cu_of(g)->stream);
}
static void aap_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx)
        rcv_cu_adaptive_avgpool_bwd(n->grad, dx, xs.n, xs.c, xs.h, xs.w, n->shape.h, n->shape.w, beta,
                                    cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_adaptive_avgpool = {.forward = aap_forward, .backward = aap_backward};

// x: (N, HW, C) -> y: (N, C): per-sample channel means; dx = dy / HW broadcast.
static void gap_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    size_t hw = (size_t)xs.h * xs.w;
    rcv_cu_chan_sum(rcv_in(g, n, 0), NULL, n->out, xs.n, hw, xs.c, (float)(1.0 / (double)hw), 0, cu_of(g)->stream);
}
static void gap_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    size_t hw = (size_t)xs.h * xs.w;
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx) rcv_cu_bcast_rows(n->grad, dx, xs.n, hw, xs.c, (float)(1.0 / (double)hw), beta, cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_global_avgpool = {.forward = gap_forward, .backward = gap_backward};
