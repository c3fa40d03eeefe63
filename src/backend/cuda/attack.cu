// Attack kernels: the per-iteration element-wise work of FGSM / PGD (sign step, projection on
// the L-inf ball and [0, 1]), random starts, and the per-sample cross-entropy seed of the logits'
// gradient, so an attack's iterations stay on the GPU. Their host twins, which define the
// semantics bit for bit, are in src/backend/attack_ops.c. Shapes are in kernels.h.
#include <math.h>
#include <stdint.h>

#include "backend/cuda/cu_common.cuh"

__device__ __forceinline__ float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }
__device__ __forceinline__ float signf(float v) { return (float)((v > 0.0f) - (v < 0.0f)); }

__global__ void k_linf_step(float *adv, const float *x, const float *g, size_t n, float alpha, float eps, int box) {
    RCV_CU_LOOP(e, n) {
        float a = adv[e] + alpha * signf(g[e]);
        if (eps >= 0.0f && box) {
            float lo = x[e] - eps, hi = x[e] + eps;
            a = a < lo ? lo : a > hi ? hi : a;
        } else if (eps >= 0.0f) {
            float d = a - x[e];
            d = d < -eps ? -eps : d > eps ? eps : d;
            a = x[e] + d;
        }
        adv[e] = clamp01(a);
    }
}
extern "C" void rcv_cu_linf_step(float *adv, const float *x, const float *g, size_t n, float alpha, float eps, int box,
                                 cudaStream_t s) {
    if (n) k_linf_step<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(adv, x, g, n, alpha, eps, box);
}

__global__ void k_add_clamp01(float *adv, const float *x, const float *d, size_t n) {
    RCV_CU_LOOP(e, n) adv[e] = clamp01(x[e] + d[e]);
}
extern "C" void rcv_cu_add_clamp01(float *adv, const float *x, const float *d, size_t n, cudaStream_t s) {
    if (n) k_add_clamp01<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(adv, x, d, n);
}

// One thread per row: k is a class count (10 .. 1000), the softmax in double like the host's.
__global__ void k_ce_seed(const float *z, const int32_t *y, float *dz, int nb, int rows, int k, float sgn) {
    RCV_CU_LOOP(i, (size_t)rows) {
        const float *zi = z + i * (size_t)k;
        float *di = dz + i * (size_t)k;
        if ((int)i >= nb) {
            for (int j = 0; j < k; j++) di[j] = 0.0f;
            continue;
        }
        float mx = zi[0];
        for (int j = 1; j < k; j++) mx = zi[j] > mx ? zi[j] : mx;
        double sum = 0;
        for (int j = 0; j < k; j++) sum += exp((double)zi[j] - mx);
        int yi = y[i];
        for (int j = 0; j < k; j++) di[j] = sgn * (float)(exp((double)zi[j] - mx) / sum - (j == yi));
    }
}
// TRADES' inner loss KL(p || softmax(z)) summed: dz = softmax(z) - p (p in double, given).
__global__ void k_kl_seed(const float *z, const double *p, float *dz, int nb, int rows, int k) {
    RCV_CU_LOOP(i, (size_t)rows) {
        const float *zi = z + i * (size_t)k;
        const double *pi = p + i * (size_t)k;
        float *di = dz + i * (size_t)k;
        if ((int)i >= nb) {
            for (int j = 0; j < k; j++) di[j] = 0.0f;
            continue;
        }
        double mx = zi[0], s = 0;
        for (int j = 1; j < k; j++) mx = zi[j] > mx ? zi[j] : mx;
        for (int j = 0; j < k; j++) s += exp((double)zi[j] - mx);
        for (int j = 0; j < k; j++) di[j] = (float)(exp((double)zi[j] - mx) / s - pi[j]);
    }
}
extern "C" void rcv_cu_kl_seed(const float *z, const double *p, float *dz, int nb, int rows, int k, cudaStream_t s) {
    if (rows > 0) k_kl_seed<<<rcv_cu_blocks((size_t)rows), RCV_CU_THREADS, 0, s>>>(z, p, dz, nb, rows, k);
}

extern "C" void rcv_cu_ce_seed(const float *z, const int32_t *y, float *dz, int nb, int rows, int k, float sgn,
                               cudaStream_t s) {
    if (rows > 0) k_ce_seed<<<rcv_cu_blocks((size_t)rows), RCV_CU_THREADS, 0, s>>>(z, y, dz, nb, rows, k, sgn);
}
