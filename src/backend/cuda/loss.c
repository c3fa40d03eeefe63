// cuda losses: cross_entropy, kl_div, smooth_l1, mse. Output and upstream gradient are one
// float on the device (n->out[0], n->grad[0]); kernels read the gradient there, so a step
// needs no host round trip.
#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"

static void ce_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    rcv_cu_ce_fwd(rcv_in(g, n, 0), g->nodes[n->in[1]].idata, n->out, s.n, s.c, n->attr.loss.label_smoothing,
                  cu_of(g)->stream);
}
static void ce_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    int beta;
    float *dz = cu_in_grad(g, n, 0, &beta);
    if (dz)
        rcv_cu_ce_bwd(rcv_in(g, n, 0), g->nodes[n->in[1]].idata, n->grad, dz, s.n, s.c, n->attr.loss.label_smoothing,
                      beta, cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_cross_entropy = {.forward = ce_forward, .backward = ce_backward};

// Rows of K = C*H*W in memory order, as ref.
static void kl_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    rcv_cu_kl_fwd(rcv_in(g, n, 0), rcv_in(g, n, 1), n->out, s.n, s.c * s.h * s.w, cu_of(g)->stream);
}
static void kl_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    for (int which = 0; which < 2; which++) {
        int beta;
        float *dst = cu_in_grad(g, n, which, &beta);
        if (dst)
            rcv_cu_kl_bwd(rcv_in(g, n, 0), rcv_in(g, n, 1), n->grad, dst, s.n, s.c * s.h * s.w, which, beta,
                          cu_of(g)->stream);
    }
}
const rcv_kernels rcv_cuda_kl_div = {.forward = kl_forward, .backward = kl_backward};

static void pointwise_forward(rcv_graph *g, rcv_node *n, int kind) {
    cu_ctx *c = cu_of(g);
    rcv_cu_pointwise_loss_fwd(rcv_in(g, n, 0), rcv_in(g, n, 1), n->out, c->dsum, rcv_numel(rcv_in_shape(g, n, 0)),
                              kind, n->attr.loss.beta, c->stream);
}
static void pointwise_backward(rcv_graph *g, rcv_node *n, int kind) {
    for (int which = 0; which < 2; which++) {
        int beta;
        float *dst = cu_in_grad(g, n, which, &beta);
        if (dst)
            rcv_cu_pointwise_loss_bwd(rcv_in(g, n, 0), rcv_in(g, n, 1), n->grad, dst, rcv_numel(rcv_in_shape(g, n, 0)),
                                      kind, n->attr.loss.beta, which ? -1.0f : 1.0f, beta, cu_of(g)->stream);
    }
}
static void mse_forward(rcv_graph *g, rcv_node *n) { pointwise_forward(g, n, 0); }
static void mse_backward(rcv_graph *g, rcv_node *n) { pointwise_backward(g, n, 0); }
static void sl1_forward(rcv_graph *g, rcv_node *n) { pointwise_forward(g, n, 1); }
static void sl1_backward(rcv_graph *g, rcv_node *n) { pointwise_backward(g, n, 1); }
const rcv_kernels rcv_cuda_mse = {.forward = mse_forward, .backward = mse_backward};
const rcv_kernels rcv_cuda_smooth_l1 = {.forward = sl1_forward, .backward = sl1_backward};
