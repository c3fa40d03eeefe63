// relu, sigmoid, dropout: OpenMP + SIMD elementwise loops, any shape (N, C, H, W).
#include <math.h>

#include "backend/cpu/cpu_util.h"
#include "robustcv/rng.h"

// y = max(x, 0)
static void relu_forward(rcv_graph *g, rcv_node *n) {
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    size_t total = rcv_numel(n->shape);
#pragma omp parallel for simd if (total > RCV_PAR_MIN) schedule(static)
    for (size_t i = 0; i < total; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
}

// dx = dy where y > 0 (PyTorch's threshold_backward)
static void relu_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    const float *y = n->out, *dy = n->grad;
    size_t total = rcv_numel(n->shape);
    int acc = n->in_beta[0];
    RCV_PAR_PUT(acc, total, dx, i, y[i] > 0 ? dy[i] : 0.0f);
}

const rcv_kernels rcv_cpu_relu = {.forward = relu_forward, .backward = relu_backward, .layout = rcv_cpu_layout_tied};

// y = 1 / (1 + exp(-x))
static void sigmoid_forward(rcv_graph *g, rcv_node *n) {
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    size_t total = rcv_numel(n->shape);
#pragma omp parallel for simd if (total > RCV_PAR_MIN) schedule(static)
    for (size_t i = 0; i < total; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

// dx = dy y (1 - y)
static void sigmoid_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    const float *y = n->out, *dy = n->grad;
    size_t total = rcv_numel(n->shape);
    int acc = n->in_beta[0];
    RCV_PAR_PUT(acc, total, dx, i, dy[i] * y[i] * (1.0f - y[i]));
}

const rcv_kernels rcv_cpu_sigmoid = {.forward = sigmoid_forward, .backward = sigmoid_backward};

// saved: the mask (numel floats), 1/(1-p) where kept, 0 where dropped.
static size_t dropout_saved(const rcv_graph *g, const rcv_node *n) { return rcv_numel(n->shape); }

// Same draw as ref: one rcv_rng_fill_uniform over numel in NHWC order; keep when u >= p.
// Eval: y = x (the mask is all ones, for a backward in eval mode).
static void dropout_forward(rcv_graph *g, rcv_node *n) {
    const float *x = rcv_in(g, n, 0);
    float *mask = n->saved, *y = n->out;
    size_t total = rcv_numel(n->shape);
    float p = n->attr.dropout.p;
    if (g->training) {
        float keep = (float)(1.0 / (1.0 - (double)p));
        rcv_rng r = rcv_graph_shard_rng(g, total);
        rcv_rng_fill_uniform(&r, mask, total, 0.0f, 1.0f);
#pragma omp parallel for simd if (total > RCV_PAR_MIN) schedule(static)
        for (size_t i = 0; i < total; i++) {
            mask[i] = mask[i] >= p ? keep : 0.0f;
            y[i] = x[i] * mask[i];
        }
    } else {
#pragma omp parallel for simd if (total > RCV_PAR_MIN) schedule(static)
        for (size_t i = 0; i < total; i++) {
            mask[i] = 1.0f;
            y[i] = x[i];
        }
    }
}

// dx = dy * mask
static void dropout_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    const float *m = n->saved, *dy = n->grad;
    size_t total = rcv_numel(n->shape);
    int acc = n->in_beta[0];
    RCV_PAR_PUT(acc, total, dx, i, dy[i] * m[i]);
}

const rcv_kernels rcv_cpu_dropout = {
    .forward = dropout_forward,
    .backward = dropout_backward,
    .saved_size = dropout_saved,
};
