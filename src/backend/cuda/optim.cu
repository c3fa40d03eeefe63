// Optimizer updates on the device, one block per chunk of the trainable ranges, with the
// arithmetic of src/optim/sgd.c and adam.c (PyTorch's single-tensor formulas).
#include <math.h>

#include "backend/cuda/cu_common.cuh"

__global__ void k_sgd(float *p, const float *g, float *buf, const rcv_cuda_chunk *ch, float lr, float momentum,
                      float damp, float wd, int nesterov, int first) {
    rcv_cuda_chunk c = ch[blockIdx.x];
    float lr_k = lr * c.lr_mult;
    for (size_t j = threadIdx.x; j < c.n; j += blockDim.x) {
        size_t i = c.offset + j;
        float d = g[i] + wd * p[i];
        if (!buf) {
            p[i] -= lr_k * d;
            continue;
        }
        float b = first ? d : momentum * buf[i] + damp * d;
        buf[i] = b;
        p[i] -= lr_k * (nesterov ? d + momentum * b : b);
    }
}
extern "C" void rcv_cu_sgd(float *p, const float *g, float *buf, const rcv_cuda_chunk *chunks, int nc, float lr,
                           float momentum, float dampening, float wd, int nesterov, int first, cudaStream_t s) {
    if (nc > 0)
        k_sgd<<<nc, RCV_CU_THREADS, 0, s>>>(p, g, momentum != 0.0f ? buf : NULL, chunks, lr, momentum,
                                            1.0f - dampening, wd, nesterov, first);
}

// step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) come from the host (in
// double, like PyTorch's Python scalars); the chunk's lr_mult scales both lr terms.
__global__ void k_adam(float *p, const float *g, float *m, float *v, const rcv_cuda_chunk *ch, float lr, float beta1,
                       float beta2, float eps, float wd, int decoupled, float step_size, float bc2_sqrt) {
    rcv_cuda_chunk c = ch[blockIdx.x];
    float lr_k = lr * c.lr_mult, ss = step_size * c.lr_mult;
    float l2 = decoupled ? 0.0f : wd, shrink = decoupled ? 1.0f - lr_k * wd : 1.0f;
    float a1 = 1.0f - beta1, a2 = 1.0f - beta2;
    for (size_t j = threadIdx.x; j < c.n; j += blockDim.x) {
        size_t i = c.offset + j;
        float pi = p[i] * shrink;
        float gi = g[i] + l2 * pi;
        float mi = beta1 * m[i] + a1 * gi;
        float vi = beta2 * v[i] + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - ss * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
extern "C" void rcv_cu_adam(float *p, const float *g, float *m, float *v, const rcv_cuda_chunk *chunks, int nc,
                            float lr, float beta1, float beta2, float eps, float wd, int decoupled, float step_size,
                            float bc2_sqrt, cudaStream_t s) {
    if (nc > 0)
        k_adam<<<nc, RCV_CU_THREADS, 0, s>>>(p, g, m, v, chunks, lr, beta1, beta2, eps, wd, decoupled, step_size,
                                             bc2_sqrt);
}
