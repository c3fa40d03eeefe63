// Helpers shared by the ref kernels (private to src/backend/ref/).
//
// The ref backend is the oracle: plain loops, double accumulators, no
// allocation. Every backward kernel follows one pattern for each input i:
//
//     float *dx = ref_in_grad(g, n, i); // NULL: no gradient flows there
//     if (dx) { ... dx[j] += ...; }     // always accumulate
//
// ref_in_grad zeroes the input's gradient first when this node is its first
// writer (in_beta[i] == 0), so "overwrite" and "accumulate" become one code
// path, and a node reading one input twice (mul(x, x)) is handled by visiting
// inputs in index order.
#ifndef RCV_REF_H
#define RCV_REF_H

#include <string.h>

#include "robustcv/graph.h"

// Offset of element (n, c, h, w) of a tensor of shape s stored NHWC.
static inline size_t ref_at(rcv_shape s, int n, int c, int h, int w) {
    return (((size_t)n * s.h + h) * s.w + w) * s.c + c;
}

// Gradient of input i, ready to accumulate into; NULL when that input carries none.
static inline float *ref_in_grad(rcv_graph *g, rcv_node *n, int i) {
    rcv_node *x = &g->nodes[n->in[i]];
    if (!x->grad) return NULL;
    if (!n->in_beta[i]) memset(x->grad, 0, rcv_numel(x->shape) * sizeof(float));
    return x->grad;
}

// Parameter j of node n (weight, bias, ...) and its gradient; NULL when absent.
static inline float *ref_param(rcv_graph *g, rcv_node *n, int j) {
    return n->param[j] >= 0 ? rcv_param_data(g, n->param[j]) : NULL;
}
static inline float *ref_param_grad(rcv_graph *g, rcv_node *n, int j) {
    return n->param[j] >= 0 ? rcv_param_grad(g, n->param[j]) : NULL;
}

#endif
