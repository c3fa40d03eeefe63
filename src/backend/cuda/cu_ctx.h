// The cuda backend's private context and helpers (included by src/backend/cuda/*.c only).
#ifndef RCV_CU_CTX_H
#define RCV_CU_CTX_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/cuda/cuda_backend.h"
#include "robustcv/graph.h"

typedef struct {
    int device;
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    void *ws;          // shared workspace: cuDNN algorithms and low-precision copies
    size_t ws_size;    // grown only by prepare (plan time); kernels read ctx->ws at run time
    double *dsum;      // one device double for reductions (losses, grad norm)
} cu_ctx;

static inline cu_ctx *cu_of(rcv_graph *g) { return (cu_ctx *)g->backend_ctx; }

// A CUDA/cuDNN/cuBLAS failure during forward/backward is a broken device or a bug, not bad
// input: print where and what, then abort (like running out of host memory).
#define CU_CHECK(call)                                                                              \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess) {                                                                    \
            fprintf(stderr, "robustcv: CUDA error at %s:%d: %s: %s\n", __FILE__, __LINE__, #call,   \
                    cudaGetErrorString(e_));                                                        \
            abort();                                                                                \
        }                                                                                           \
    } while (0)
#define CUDNN_CHECK(call)                                                                           \
    do {                                                                                            \
        cudnnStatus_t s_ = (call);                                                                  \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                           \
            fprintf(stderr, "robustcv: cuDNN error at %s:%d: %s: %s\n", __FILE__, __LINE__, #call,  \
                    cudnnGetErrorString(s_));                                                       \
            abort();                                                                                \
        }                                                                                           \
    } while (0)
#define CUBLAS_CHECK(call)                                                                          \
    do {                                                                                            \
        cublasStatus_t s_ = (call);                                                                 \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
            fprintf(stderr, "robustcv: cuBLAS error at %s:%d: %s: status %d\n", __FILE__, __LINE__, \
                    #call, (int)s_);                                                                \
            abort();                                                                                \
        }                                                                                           \
    } while (0)

// Makes the shared workspace at least `bytes` (prepare only). -1 with a message.
int cu_ws_reserve(cu_ctx *c, size_t bytes);

// Parameter j of node n and its gradient on the device; NULL when absent.
static inline float *cu_param(rcv_graph *g, rcv_node *n, int j) {
    return n->param[j] >= 0 ? g->dparams + g->param_info[n->param[j]].offset : NULL;
}
static inline float *cu_param_grad(rcv_graph *g, rcv_node *n, int j) {
    return n->param[j] >= 0 ? g->dgrads + g->param_info[n->param[j]].offset : NULL;
}
static inline float *cu_buf(rcv_graph *g, rcv_node *n, int j) {
    return g->dbuffers + g->param_info[n->buf[j]].offset;
}
static inline int64_t *cu_ibuf(rcv_graph *g, rcv_node *n, int j) {
    return g->dibuffers + g->param_info[n->buf[j]].offset;
}
// Input i's gradient and whether to accumulate into it (in_beta); NULL when none flows.
static inline float *cu_in_grad(rcv_graph *g, rcv_node *n, int i, int *beta) {
    *beta = n->in_beta[i];
    return g->nodes[n->in[i]].grad;
}

#endif
