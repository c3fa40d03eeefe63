// cuda relu, sigmoid, dropout: elementwise kernels of elementwise.cu.
#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"

static void relu_forward(rcv_graph *g, rcv_node *n) {
    rcv_cu_relu_fwd(rcv_in(g, n, 0), n->out, rcv_numel(n->shape), cu_of(g)->stream);
}
static void relu_backward(rcv_graph *g, rcv_node *n) {
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx) rcv_cu_relu_bwd(n->out, n->grad, dx, rcv_numel(n->shape), beta, cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_relu = {.forward = relu_forward, .backward = relu_backward};

static void sigmoid_forward(rcv_graph *g, rcv_node *n) {
    rcv_cu_sigmoid_fwd(rcv_in(g, n, 0), n->out, rcv_numel(n->shape), cu_of(g)->stream);
}
static void sigmoid_backward(rcv_graph *g, rcv_node *n) {
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx) rcv_cu_sigmoid_bwd(n->out, n->grad, dx, rcv_numel(n->shape), beta, cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_sigmoid = {.forward = sigmoid_forward, .backward = sigmoid_backward};

// saved: the scaled mask, as ref. The Philox stream is g->rng's, advanced on the host by
// ceil(numel/4) blocks exactly as rcv_rng_fill_uniform does, so ref, cpu and cuda draw the
// same mask for the same seed.
static size_t dropout_saved_size(const rcv_graph *g, const rcv_node *n) { return rcv_numel(n->shape); }
static void dropout_forward(rcv_graph *g, rcv_node *n) {
    size_t total = rcv_numel(n->shape);
    rcv_cu_dropout_fwd(rcv_in(g, n, 0), n->out, n->saved, total, n->attr.dropout.p, g->rng.key, g->rng.counter,
                       g->training, cu_of(g)->stream);
    if (g->training) g->rng.counter += (total + 3) / 4;
}
static void dropout_backward(rcv_graph *g, rcv_node *n) {
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx) rcv_cu_scale_mul_acc(n->grad, n->saved, 1.0f, dx, rcv_numel(n->shape), beta, cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_dropout = {
    .forward = dropout_forward,
    .backward = dropout_backward,
    .saved_size = dropout_saved_size,
};
