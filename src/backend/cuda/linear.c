// cuda linear with cuBLAS. Row-major x: (N, F), w: (O, F) (PyTorch's), y: (N, O); cuBLAS
// is column-major, so each row-major matrix is read as its transpose:
//   y  = x w^T        ->  gemm(T, N, m=O, n=N, k=F, A=w (lda F), B=x (ldb F), C=y (ldc O))
//   dx = dy w         ->  gemm(N, N, m=F, n=N, k=O, A=w (lda F), B=dy (ldb O), C=dx (ldc F))
//   dw += dy^T x      ->  gemm(N, T, m=F, n=O, k=N, A=x (lda F), B=dy (ldb O), C=dw (ldc F))
// Precision is the gemm's compute type: fp32 exact (no TF32), tf32, or bf16/fp16 inputs
// rounded inside cuBLAS with fp32 accumulation (tensor cores); storage stays fp32.
#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"

static cublasComputeType_t compute_type(const rcv_graph *g) {
    switch (g->precision) {
    case RCV_PREC_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case RCV_PREC_BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    case RCV_PREC_FP16: return CUBLAS_COMPUTE_32F_FAST_16F;
    default: return CUBLAS_COMPUTE_32F_PEDANTIC;
    }
}

static void gemm(rcv_graph *g, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    const float one = 1.0f;
    CUBLAS_CHECK(cublasGemmEx(cu_of(g)->cublas, ta, tb, m, n, k, &one, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &beta, C,
                              CUDA_R_32F, ldc, compute_type(g), CUBLAS_GEMM_DEFAULT));
}

static void linear_forward(rcv_graph *g, rcv_node *n) {
    int N = n->shape.n, O = n->shape.c, F = rcv_in_shape(g, n, 0).c;
    gemm(g, CUBLAS_OP_T, CUBLAS_OP_N, O, N, F, cu_param(g, n, 0), F, rcv_in(g, n, 0), F, 0.0f, n->out, O);
    if (n->attr.conv.has_bias) rcv_cu_bias_add(n->out, cu_param(g, n, 1), (size_t)N, O, cu_of(g)->stream);
}

static void linear_backward(rcv_graph *g, rcv_node *n) {
    int N = n->shape.n, O = n->shape.c, F = rcv_in_shape(g, n, 0).c, beta;
    const float *x = rcv_in(g, n, 0), *w = cu_param(g, n, 0), *dy = n->grad;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx) gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, F, N, O, w, F, dy, O, beta ? 1.0f : 0.0f, dx, F);
    if (g->input_grad_only) return; // attacks want dx only
    gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, F, O, N, x, F, dy, O, 1.0f, cu_param_grad(g, n, 0), F);
    if (n->attr.conv.has_bias) rcv_cu_chan_sum(dy, NULL, cu_param_grad(g, n, 1), 1, (size_t)N, O, 1.0f, 1, cu_of(g)->stream);
}

const rcv_kernels rcv_cuda_linear = {.forward = linear_forward, .backward = linear_backward};
