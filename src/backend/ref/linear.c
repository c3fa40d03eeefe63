// ref linear (fully connected).
//
// x: (N, F, 1, 1) = (N, F) in memory, weight: (O, F), bias: (O), y: (N, O, 1, 1).
// y[n,o] = bias[o] + sum_f x[n,f] * w[o,f]
#include "backend/ref/ref.h"

static void linear_forward(rcv_graph *g, rcv_node *n) {
    int N = n->shape.n, O = n->shape.c, F = rcv_in_shape(g, n, 0).c;
    const float *x = rcv_in(g, n, 0), *w = ref_param(g, n, 0);
    const float *b = n->attr.conv.has_bias ? ref_param(g, n, 1) : NULL;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < O; o++) {
            double acc = b ? b[o] : 0.0;
            for (int f = 0; f < F; f++) acc += (double)x[(size_t)i * F + f] * w[(size_t)o * F + f];
            n->out[(size_t)i * O + o] = (float)acc;
        }
}

// dx[n,f] = sum_o dy[n,o] w[o,f]; dw[o,f] += sum_n dy[n,o] x[n,f]; db[o] += sum_n dy[n,o]
static void linear_backward(rcv_graph *g, rcv_node *n) {
    int N = n->shape.n, O = n->shape.c, F = rcv_in_shape(g, n, 0).c;
    const float *x = rcv_in(g, n, 0), *w = ref_param(g, n, 0), *dy = n->grad;
    float *dx = ref_in_grad(g, n, 0);
    if (dx)
        for (int i = 0; i < N; i++)
            for (int f = 0; f < F; f++) {
                double acc = 0;
                for (int o = 0; o < O; o++) acc += (double)dy[(size_t)i * O + o] * w[(size_t)o * F + f];
                dx[(size_t)i * F + f] += (float)acc;
            }
    if (g->input_grad_only) return; // attacks want dx only
    float *dw = ref_param_grad(g, n, 0);
    for (int o = 0; o < O; o++)
        for (int f = 0; f < F; f++) {
            double acc = 0;
            for (int i = 0; i < N; i++) acc += (double)dy[(size_t)i * O + o] * x[(size_t)i * F + f];
            dw[(size_t)o * F + f] += (float)acc;
        }
    if (n->attr.conv.has_bias) {
        float *db = ref_param_grad(g, n, 1);
        for (int o = 0; o < O; o++) {
            double acc = 0;
            for (int i = 0; i < N; i++) acc += dy[(size_t)i * O + o];
            db[o] += (float)acc;
        }
    }
}

const rcv_kernels rcv_ref_linear = {.forward = linear_forward, .backward = linear_backward};
