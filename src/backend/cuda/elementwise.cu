// Elementwise kernels: fill, relu, sigmoid, dropout (Philox, bit-identical masks to the
// cpu/ref backends), scale/add/mul with broadcast, normalize, bias, precision casts, conv
// weight layout, batchnorm in eval mode. Shapes are in kernels.h.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "backend/cuda/cu_common.cuh"

__global__ void k_fill(float *p, size_t n, float v) {
    RCV_CU_LOOP(i, n) p[i] = v;
}
extern "C" void rcv_cu_fill(float *p, size_t n, float v, cudaStream_t s) {
    if (n) k_fill<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(p, n, v);
}

__global__ void k_relu_fwd(const float *x, float *y, size_t n) {
    RCV_CU_LOOP(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
// dx = dy where y > 0 (PyTorch's threshold_backward)
__global__ void k_relu_bwd(const float *y, const float *dy, float *dx, size_t n, int beta) {
    RCV_CU_LOOP(i, n) rcv_cu_store(dx + i, y[i] > 0.0f ? dy[i] : 0.0f, beta);
}
extern "C" void rcv_cu_relu_fwd(const float *x, float *y, size_t n, cudaStream_t s) {
    k_relu_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, y, n);
}
extern "C" void rcv_cu_relu_bwd(const float *y, const float *dy, float *dx, size_t n, int beta, cudaStream_t s) {
    k_relu_bwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(y, dy, dx, n, beta);
}

__global__ void k_sigmoid_fwd(const float *x, float *y, size_t n) {
    RCV_CU_LOOP(i, n) y[i] = 1.0f / (1.0f + expf(-x[i]));
}
__global__ void k_sigmoid_bwd(const float *y, const float *dy, float *dx, size_t n, int beta) {
    RCV_CU_LOOP(i, n) rcv_cu_store(dx + i, dy[i] * y[i] * (1.0f - y[i]), beta);
}
extern "C" void rcv_cu_sigmoid_fwd(const float *x, float *y, size_t n, cudaStream_t s) {
    k_sigmoid_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, y, n);
}
extern "C" void rcv_cu_sigmoid_bwd(const float *y, const float *dy, float *dx, size_t n, int beta, cudaStream_t s) {
    k_sigmoid_bwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(y, dy, dx, n, beta);
}

// Philox4x32-10 exactly as rcv_philox (src/core/rng.c): same constants, key split, counter words.
__device__ __forceinline__ void philox(uint64_t key, uint64_t counter, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0x9E3779B9u, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
#pragma unroll
    for (int i = 0; i < 10; i++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

// One thread per Philox block of 4 values, like rcv_rng_fill_uniform: value e comes from
// block counter + e/4, word e%4, mapped to [0,1) as (v >> 8) * 2^-24.
__global__ void k_dropout_fwd(const float *x, float *y, float *mask, size_t n, float p, float keep, uint64_t key,
                              uint64_t counter, int training) {
    size_t blocks = (n + 3) / 4;
    RCV_CU_LOOP(b, blocks) {
        uint32_t o[4];
        if (training) philox(key, counter + b, o);
        for (int j = 0; j < 4 && b * 4 + j < n; j++) {
            size_t e = b * 4 + j;
            float m = 1.0f;
            if (training) m = (float)(o[j] >> 8) * (1.0f / 16777216.0f) >= p ? keep : 0.0f;
            mask[e] = m;
            y[e] = x[e] * m;
        }
    }
}
extern "C" void rcv_cu_dropout_fwd(const float *x, float *y, float *mask, size_t n, float p, uint64_t key,
                                   uint64_t counter, int training, cudaStream_t s) {
    float keep = (float)(1.0 / (1.0 - (double)p));
    k_dropout_fwd<<<rcv_cu_blocks((n + 3) / 4), RCV_CU_THREADS, 0, s>>>(x, y, mask, n, p, keep, key, counter, training);
}

__global__ void k_scale_mul_acc(const float *dy, const float *m, float alpha, float *dx, size_t n, int beta) {
    RCV_CU_LOOP(i, n) rcv_cu_store(dx + i, alpha * dy[i] * (m ? m[i] : 1.0f), beta);
}
extern "C" void rcv_cu_scale_mul_acc(const float *dy, const float *m, float alpha, float *dx, size_t n, int beta,
                                     cudaStream_t s) {
    k_scale_mul_acc<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, m, alpha, dx, n, beta);
}

__global__ void k_axpby(const float *a, const float *b, float alpha, float b2, float *y, size_t n) {
    RCV_CU_LOOP(i, n) y[i] = alpha * a[i] + b2 * b[i];
}
extern "C" void rcv_cu_axpby(const float *a, const float *b, float alpha, float b2, float *y, size_t n,
                             cudaStream_t s) {
    k_axpby<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(a, b, alpha, b2, y, n);
}

// Offset in b of element e of a (N, HW, C) tensor, for broadcast mode 0/1/2.
__device__ __forceinline__ size_t bcast_at(size_t e, int HW, int C, int mode) {
    if (mode == 0) return e;
    size_t c = e % (size_t)C, cell = e / (size_t)C; // cell = n * HW + hw
    if (mode == 1) return (cell / (size_t)HW) * C + c;
    return cell;
}
__global__ void k_bcast_fwd(const float *a, const float *b, float *y, size_t n, int HW, int C, int mode, int mul) {
    RCV_CU_LOOP(i, n) {
        float bv = b[bcast_at(i, HW, C, mode)];
        y[i] = mul ? a[i] * bv : a[i] + bv;
    }
}
extern "C" void rcv_cu_bcast_fwd(const float *a, const float *b, float *y, int N, int HW, int C, int mode, int mul,
                                 cudaStream_t s) {
    size_t n = (size_t)N * HW * C;
    k_bcast_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(a, b, y, n, HW, C, mode, mul);
}
__global__ void k_bcast_mul_da(const float *dy, const float *b, float *da, size_t n, int HW, int C, int mode,
                               int beta) {
    RCV_CU_LOOP(i, n) rcv_cu_store(da + i, dy[i] * b[bcast_at(i, HW, C, mode)], beta);
}
extern "C" void rcv_cu_bcast_mul_da(const float *dy, const float *b, float *da, int N, int HW, int C, int mode,
                                    int beta, cudaStream_t s) {
    size_t n = (size_t)N * HW * C;
    k_bcast_mul_da<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, b, da, n, HW, C, mode, beta);
}

__global__ void k_normalize_fwd(const float *x, float *y, size_t n, int C, rcv_cu_vec4 mean, rcv_cu_vec4 inv_std) {
    RCV_CU_LOOP(i, n) {
        int c = (int)(i % (size_t)C);
        y[i] = (x[i] - mean.v[c]) * inv_std.v[c];
    }
}
__global__ void k_normalize_bwd(const float *dy, float *dx, size_t n, int C, rcv_cu_vec4 inv_std, int beta) {
    RCV_CU_LOOP(i, n) rcv_cu_store(dx + i, dy[i] * inv_std.v[i % (size_t)C], beta);
}
extern "C" void rcv_cu_normalize_fwd(const float *x, float *y, size_t n, int C, rcv_cu_vec4 mean, rcv_cu_vec4 inv_std,
                                     cudaStream_t s) {
    k_normalize_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, y, n, C, mean, inv_std);
}
extern "C" void rcv_cu_normalize_bwd(const float *dy, float *dx, size_t n, int C, rcv_cu_vec4 inv_std, int beta,
                                     cudaStream_t s) {
    k_normalize_bwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, dx, n, C, inv_std, beta);
}

__global__ void k_bias_add(float *y, const float *b, size_t n, int C) {
    RCV_CU_LOOP(i, n) y[i] += b[i % (size_t)C];
}
extern "C" void rcv_cu_bias_add(float *y, const float *b, size_t rows, int C, cudaStream_t s) {
    size_t n = rows * (size_t)C;
    k_bias_add<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(y, b, n, C);
}

// --- precision casts ---
template <typename T> __device__ __forceinline__ T to_lp(float v);
template <> __device__ __forceinline__ __nv_bfloat16 to_lp<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <> __device__ __forceinline__ __half to_lp<__half>(float v) { return __float2half(v); }
template <> __device__ __forceinline__ float to_lp<float>(float v) { return v; }
__device__ __forceinline__ float from_lp(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float from_lp(__half v) { return __half2float(v); }
__device__ __forceinline__ float from_lp(float v) { return v; }

template <typename T> __global__ void k_cast(const float *x, T *y, size_t n) {
    RCV_CU_LOOP(i, n) y[i] = to_lp<T>(x[i]);
}
template <typename T> __global__ void k_uncast(const T *y, float *x, size_t n, int beta) {
    RCV_CU_LOOP(i, n) rcv_cu_store(x + i, from_lp(y[i]), beta);
}
extern "C" void rcv_cu_cast(const float *x, void *y, size_t n, rcv_cu_dtype t, cudaStream_t s) {
    unsigned b = rcv_cu_blocks(n);
    if (t == RCV_CU_BF16) k_cast<<<b, RCV_CU_THREADS, 0, s>>>(x, (__nv_bfloat16 *)y, n);
    else if (t == RCV_CU_F16) k_cast<<<b, RCV_CU_THREADS, 0, s>>>(x, (__half *)y, n);
    else k_cast<<<b, RCV_CU_THREADS, 0, s>>>(x, (float *)y, n);
}
extern "C" void rcv_cu_uncast(const void *y, float *x, size_t n, rcv_cu_dtype t, int beta, cudaStream_t s) {
    unsigned b = rcv_cu_blocks(n);
    if (t == RCV_CU_BF16) k_uncast<<<b, RCV_CU_THREADS, 0, s>>>((const __nv_bfloat16 *)y, x, n, beta);
    else if (t == RCV_CU_F16) k_uncast<<<b, RCV_CU_THREADS, 0, s>>>((const __half *)y, x, n, beta);
    else k_uncast<<<b, RCV_CU_THREADS, 0, s>>>((const float *)y, x, n, beta);
}

// e indexes the OHWI copy: (((o * kh + i) * kw + j) * Cg + ci); the OIHW offset is
// ((o * Cg + ci) * kh + i) * kw + j.
__device__ __forceinline__ size_t oihw_of_ohwi(size_t e, int Cg, int kh, int kw) {
    size_t ci = e % Cg, t = e / Cg;
    size_t j = t % kw;
    t /= kw;
    size_t i = t % kh, o = t / kh;
    return ((o * Cg + ci) * kh + i) * kw + j;
}
template <typename T> __global__ void k_w_to_ohwi(const float *w, T *wk, size_t n, int Cg, int kh, int kw) {
    RCV_CU_LOOP(e, n) wk[e] = to_lp<T>(w[oihw_of_ohwi(e, Cg, kh, kw)]);
}
template <typename T> __global__ void k_w_from_ohwi(const T *dwk, float *dw, size_t n, int Cg, int kh, int kw) {
    RCV_CU_LOOP(e, n) dw[oihw_of_ohwi(e, Cg, kh, kw)] += from_lp(dwk[e]);
}
extern "C" void rcv_cu_w_to_ohwi(const float *w, void *wk, int O, int Cg, int kh, int kw, rcv_cu_dtype t,
                                 cudaStream_t s) {
    size_t n = (size_t)O * Cg * kh * kw;
    unsigned b = rcv_cu_blocks(n);
    if (t == RCV_CU_BF16) k_w_to_ohwi<<<b, RCV_CU_THREADS, 0, s>>>(w, (__nv_bfloat16 *)wk, n, Cg, kh, kw);
    else if (t == RCV_CU_F16) k_w_to_ohwi<<<b, RCV_CU_THREADS, 0, s>>>(w, (__half *)wk, n, Cg, kh, kw);
    else k_w_to_ohwi<<<b, RCV_CU_THREADS, 0, s>>>(w, (float *)wk, n, Cg, kh, kw);
}
extern "C" void rcv_cu_w_from_ohwi_acc(const void *dwk, float *dw, int O, int Cg, int kh, int kw, rcv_cu_dtype t,
                                       cudaStream_t s) {
    size_t n = (size_t)O * Cg * kh * kw;
    unsigned b = rcv_cu_blocks(n);
    if (t == RCV_CU_BF16) k_w_from_ohwi<<<b, RCV_CU_THREADS, 0, s>>>((const __nv_bfloat16 *)dwk, dw, n, Cg, kh, kw);
    else if (t == RCV_CU_F16) k_w_from_ohwi<<<b, RCV_CU_THREADS, 0, s>>>((const __half *)dwk, dw, n, Cg, kh, kw);
    else k_w_from_ohwi<<<b, RCV_CU_THREADS, 0, s>>>((const float *)dwk, dw, n, Cg, kh, kw);
}

__global__ void k_bn_eval_stats(const float *rm, const float *rv, float *mean, float *invstd, int C, float eps) {
    RCV_CU_LOOP(c, (size_t)C) {
        mean[c] = rm[c];
        invstd[c] = (float)(1.0 / sqrt((double)rv[c] + eps));
    }
}
__global__ void k_bn_eval_fwd(const float *x, const float *mean, const float *invstd, const float *w, const float *b,
                              float *y, size_t n, int C) {
    RCV_CU_LOOP(i, n) {
        int c = (int)(i % (size_t)C);
        y[i] = (x[i] - mean[c]) * invstd[c] * w[c] + b[c];
    }
}
__global__ void k_bn_eval_dx(const float *dy, const float *w, const float *invstd, float *dx, size_t n, int C,
                             int beta) {
    RCV_CU_LOOP(i, n) {
        int c = (int)(i % (size_t)C);
        rcv_cu_store(dx + i, dy[i] * w[c] * invstd[c], beta);
    }
}
extern "C" void rcv_cu_bn_eval_stats(const float *rm, const float *rv, float *mean, float *invstd, int C, float eps,
                                     cudaStream_t s) {
    k_bn_eval_stats<<<rcv_cu_blocks((size_t)C), RCV_CU_THREADS, 0, s>>>(rm, rv, mean, invstd, C, eps);
}
extern "C" void rcv_cu_bn_eval_fwd(const float *x, const float *mean, const float *invstd, const float *w,
                                   const float *b, float *y, size_t rows, int C, cudaStream_t s) {
    size_t n = rows * (size_t)C;
    k_bn_eval_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, mean, invstd, w, b, y, n, C);
}
extern "C" void rcv_cu_bn_eval_dx(const float *dy, const float *w, const float *invstd, float *dx, size_t rows, int C,
                                  int beta, cudaStream_t s) {
    size_t n = rows * (size_t)C;
    k_bn_eval_dx<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, w, invstd, dx, n, C, beta);
}

__global__ void k_i64_add(int64_t *p, int64_t v) { *p += v; }
extern "C" void rcv_cu_i64_add(int64_t *p, int64_t v, cudaStream_t s) { k_i64_add<<<1, 1, 0, s>>>(p, v); }
