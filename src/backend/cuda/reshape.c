// cuda concat, flatten, nearest and bilinear upsampling (kernels in spatial.cu).
#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"

// xs[i]: (N, C_i, H, W) -> y: (N, sum C_i, H, W); input i fills channels [off_i, off_i + C_i).
static void concat_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = n->shape;
    size_t rows = (size_t)s.n * s.h * s.w;
    int off = 0;
    for (int k = 0; k < n->n_in; k++) {
        int ck = rcv_in_shape(g, n, k).c;
        rcv_cu_chan_slice(rcv_in(g, n, k), n->out, rows, ck, s.c, off, 0, 0, cu_of(g)->stream);
        off += ck;
    }
}
static void concat_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = n->shape;
    size_t rows = (size_t)s.n * s.h * s.w;
    int off = 0;
    for (int k = 0; k < n->n_in; k++) {
        int ck = rcv_in_shape(g, n, k).c, beta;
        float *dx = cu_in_grad(g, n, k, &beta);
        if (dx) rcv_cu_chan_slice(n->grad, dx, rows, ck, s.c, off, 1, beta, cu_of(g)->stream);
        off += ck;
    }
}
const rcv_kernels rcv_cuda_concat = {.forward = concat_forward, .backward = concat_backward};

// (N, C, H, W) NHWC -> (N, C*H*W, 1, 1) in PyTorch's C, H, W order.
static void flatten_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    rcv_cu_flatten(rcv_in(g, n, 0), n->out, xs.n, xs.c, xs.h, xs.w, 0, 0, cu_of(g)->stream);
}
static void flatten_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx) rcv_cu_flatten(n->grad, dx, xs.n, xs.c, xs.h, xs.w, 1, beta, cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_flatten = {.forward = flatten_forward, .backward = flatten_backward};

static void up_nearest_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    rcv_cu_up_nearest_fwd(rcv_in(g, n, 0), n->out, xs.n, xs.c, xs.h, xs.w, n->attr.up.scale, cu_of(g)->stream);
}
static void up_nearest_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx) rcv_cu_up_nearest_bwd(n->grad, dx, xs.n, xs.c, xs.h, xs.w, n->attr.up.scale, beta, cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_upsample_nearest = {.forward = up_nearest_forward, .backward = up_nearest_backward};

static void up_bilinear_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    rcv_cu_up_bilinear_fwd(rcv_in(g, n, 0), n->out, xs.n, xs.c, xs.h, xs.w, n->attr.up.scale,
                           n->attr.up.align_corners, cu_of(g)->stream);
}
static void up_bilinear_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx)
        rcv_cu_up_bilinear_bwd(n->grad, dx, xs.n, xs.c, xs.h, xs.w, n->attr.up.scale, n->attr.up.align_corners, beta,
                               cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_upsample_bilinear = {.forward = up_bilinear_forward, .backward = up_bilinear_backward};
