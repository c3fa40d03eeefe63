// linear: x (N, F, 1, 1) -> y (N, O, 1, 1); weight (O, F) row-major, bias (O).
// Three row-major sgemms (oneDNN's jit sgemm, OpenMP-threaded):
//   y  = x W^T + b          (N x O)
//   dx = dy W    (beta 0/1) (N x F)
//   dW += dy^T x            (O x F)   (not with g->input_grad_only, nor db)
#include <stdio.h>

#include "backend/cpu/dnnl_ctx.h"
#include "robustcv/error.h"

static void gemm(char ta, char tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                 float *C, int ldc) {
    if (RCV_DNNL(dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc)))
        fprintf(stderr, "robustcv cpu backend: %s\n", rcv_error());
}

static void linear_forward(rcv_graph *g, rcv_node *n) {
    int N = n->shape.n, O = n->shape.c, F = rcv_in_shape(g, n, 0).c;
    const float *x = rcv_in(g, n, 0), *w = rcv_param_data(g, n->param[0]);
    float *y = n->out;
    float beta = 0;
    if (n->attr.conv.has_bias) {
        const float *b = rcv_param_data(g, n->param[1]);
        for (int i = 0; i < N; i++)
            for (int o = 0; o < O; o++) y[(size_t)i * O + o] = b[o];
        beta = 1;
    }
    gemm('N', 'T', N, O, F, x, F, w, F, beta, y, O);
}

static void linear_backward(rcv_graph *g, rcv_node *n) {
    int N = n->shape.n, O = n->shape.c, F = rcv_in_shape(g, n, 0).c;
    const float *x = rcv_in(g, n, 0), *w = rcv_param_data(g, n->param[0]), *dy = n->grad;
    float *dx = rcv_in_grad(g, n, 0);
    if (dx) gemm('N', 'N', N, F, O, dy, O, w, F, n->in_beta[0] ? 1.0f : 0.0f, dx, F);
    if (g->input_grad_only) return;
    gemm('T', 'N', O, F, N, dy, O, x, F, 1.0f, rcv_param_grad(g, n->param[0]), F);
    if (n->attr.conv.has_bias) {
        float *gb = rcv_param_grad(g, n->param[1]);
        for (int i = 0; i < N; i++)
#pragma omp simd
            for (int o = 0; o < O; o++) gb[o] += dy[(size_t)i * O + o];
    }
}

const rcv_kernels rcv_cpu_linear = {
    .forward = linear_forward,
    .backward = linear_backward,
};
