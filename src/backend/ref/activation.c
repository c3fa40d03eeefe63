// ref relu, sigmoid, dropout: elementwise, any shape (N, C, H, W).
#include <math.h>

#include "backend/ref/ref.h"
#include "robustcv/rng.h"

// y = max(x, 0)
static void relu_forward(rcv_graph *g, rcv_node *n) {
    const float *x = rcv_in(g, n, 0);
    size_t total = rcv_numel(n->shape);
    for (size_t e = 0; e < total; e++) n->out[e] = x[e] > 0 ? x[e] : 0.0f;
}

// dx = dy where y > 0 (PyTorch's threshold_backward: zero at x == 0)
static void relu_backward(rcv_graph *g, rcv_node *n) {
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    size_t total = rcv_numel(n->shape);
    for (size_t e = 0; e < total; e++)
        if (n->out[e] > 0) dx[e] += n->grad[e];
}

const rcv_kernels rcv_ref_relu = {.forward = relu_forward, .backward = relu_backward};

// y = 1 / (1 + exp(-x))
static void sigmoid_forward(rcv_graph *g, rcv_node *n) {
    const float *x = rcv_in(g, n, 0);
    size_t total = rcv_numel(n->shape);
    for (size_t e = 0; e < total; e++) n->out[e] = (float)(1.0 / (1.0 + exp(-(double)x[e])));
}

// dx = dy * y * (1 - y)
static void sigmoid_backward(rcv_graph *g, rcv_node *n) {
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    size_t total = rcv_numel(n->shape);
    for (size_t e = 0; e < total; e++) {
        double y = n->out[e];
        dx[e] += (float)(n->grad[e] * y * (1.0 - y));
    }
}

const rcv_kernels rcv_ref_sigmoid = {.forward = sigmoid_forward, .backward = sigmoid_backward};

// saved: the mask (numel floats), already scaled: 1/(1-p) where kept, 0 where dropped.
static size_t dropout_saved_size(const rcv_graph *g, const rcv_node *n) { return rcv_numel(n->shape); }

// Training: one rcv_rng_fill_uniform(g->rng, mask, numel, 0, 1) in NHWC order
// (fast kernels must draw the same numbers to agree with this one); element e
// is kept when u[e] >= p (probability 1 - p) and scaled by 1/(1-p).
// y = x * mask. Eval: mask = 1, y = x.
static void dropout_forward(rcv_graph *g, rcv_node *n) {
    const float *x = rcv_in(g, n, 0);
    float *mask = n->saved;
    size_t total = rcv_numel(n->shape);
    float p = n->attr.dropout.p;
    if (g->training) {
        float keep = (float)(1.0 / (1.0 - (double)p));
        rcv_rng r = rcv_graph_shard_rng(g, total);
        rcv_rng_fill_uniform(&r, mask, total, 0.0f, 1.0f);
        for (size_t e = 0; e < total; e++) mask[e] = mask[e] >= p ? keep : 0.0f;
    } else {
        for (size_t e = 0; e < total; e++) mask[e] = 1.0f;
    }
    for (size_t e = 0; e < total; e++) n->out[e] = x[e] * mask[e];
}

// dx = dy * mask
static void dropout_backward(rcv_graph *g, rcv_node *n) {
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    size_t total = rcv_numel(n->shape);
    for (size_t e = 0; e < total; e++) dx[e] += n->grad[e] * n->saved[e];
}

const rcv_kernels rcv_ref_dropout = {
    .forward = dropout_forward,
    .backward = dropout_backward,
    .saved_size = dropout_saved_size,
};
