// Reductions: per-channel and per-row sums (bias, broadcast and batchnorm gradients,
// global average pooling), the losses, and the gradient norm. Sums that span blocks
// meet through atomics, so their last bits vary from run to run (unlike the cpu backend).
#include <math.h>
#include <stdint.h>

#include "backend/cuda/cu_common.cuh"

#define WARP 32

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Sum of v over the block (blockDim.x == RCV_CU_THREADS); valid in thread 0.
__device__ double block_sum_d(double v) {
    __shared__ double sh[RCV_CU_THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    return sh[0];
}

// Block (32, 8): x over 32 channels, y over rows. Grid (ceil(C/32), B, S): S row segments.
#define CS_X 32
#define CS_Y 8
static inline void chan_grid(size_t rows, int C, int B, dim3 *grid) {
    size_t seg = (rows + 63) / 64;
    if (seg > 1024) seg = 1024;
    if (seg < 1) seg = 1;
    *grid = dim3((unsigned)((C + CS_X - 1) / CS_X), (unsigned)B, (unsigned)seg);
}

__global__ void k_chan_sum(const float *x, const float *a, float *out, size_t rows, int C, float scale) {
    __shared__ float sh[CS_Y][CS_X];
    int c = blockIdx.x * CS_X + threadIdx.x, b = blockIdx.y;
    size_t per = (rows + gridDim.z - 1) / gridDim.z, r0 = blockIdx.z * per, r1 = r0 + per < rows ? r0 + per : rows;
    float acc = 0.0f;
    if (c < C) {
        size_t base = (size_t)b * rows * C;
        for (size_t r = r0 + threadIdx.y; r < r1; r += CS_Y) {
            size_t e = base + r * C + c;
            acc += a ? x[e] * a[e] : x[e];
        }
    }
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float s = 0.0f;
        for (int y = 0; y < CS_Y; y++) s += sh[y][threadIdx.x];
        atomicAdd(out + (size_t)b * C + c, scale * s);
    }
}
extern "C" void rcv_cu_chan_sum(const float *x, const float *a, float *out, int B, size_t rows, int C, float scale,
                                int beta, cudaStream_t s) {
    if (!beta) cudaMemsetAsync(out, 0, (size_t)B * C * sizeof(float), s);
    dim3 grid;
    chan_grid(rows, C, B, &grid);
    k_chan_sum<<<grid, dim3(CS_X, CS_Y), 0, s>>>(x, a, out, rows, C, scale);
}

__global__ void k_bn_param_grads(const float *x, const float *dy, const float *mean, const float *invstd, float *dw,
                                 float *db, size_t rows, int C) {
    __shared__ float sw[CS_Y][CS_X], sb[CS_Y][CS_X];
    int c = blockIdx.x * CS_X + threadIdx.x;
    size_t per = (rows + gridDim.z - 1) / gridDim.z, r0 = blockIdx.z * per, r1 = r0 + per < rows ? r0 + per : rows;
    float aw = 0.0f, ab = 0.0f;
    if (c < C) {
        float mu = mean[c], is = invstd[c];
        for (size_t r = r0 + threadIdx.y; r < r1; r += CS_Y) {
            size_t e = r * C + c;
            aw += dy[e] * (x[e] - mu) * is;
            ab += dy[e];
        }
    }
    sw[threadIdx.y][threadIdx.x] = aw;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float s1 = 0.0f, s2 = 0.0f;
        for (int y = 0; y < CS_Y; y++) s1 += sw[y][threadIdx.x], s2 += sb[y][threadIdx.x];
        atomicAdd(dw + c, s1);
        atomicAdd(db + c, s2);
    }
}
extern "C" void rcv_cu_bn_param_grads(const float *x, const float *dy, const float *mean, const float *invstd,
                                      float *dw, float *db, size_t rows, int C, cudaStream_t s) {
    dim3 grid;
    chan_grid(rows, C, 1, &grid);
    k_bn_param_grads<<<grid, dim3(CS_X, CS_Y), 0, s>>>(x, dy, mean, invstd, dw, db, rows, C);
}

// One warp per row.
__global__ void k_row_sum(const float *x, const float *a, float *out, size_t rows, int C, int beta) {
    size_t warps = (size_t)gridDim.x * (blockDim.x / WARP);
    int lane = threadIdx.x % WARP;
    for (size_t r = blockIdx.x * (size_t)(blockDim.x / WARP) + threadIdx.x / WARP; r < rows; r += warps) {
        float acc = 0.0f;
        for (int c = lane; c < C; c += WARP) {
            size_t e = r * C + c;
            acc += a ? x[e] * a[e] : x[e];
        }
        acc = warp_sum(acc);
        if (lane == 0) rcv_cu_store(out + r, acc, beta);
    }
}
static inline unsigned warp_blocks(size_t rows) {
    size_t b = (rows + RCV_CU_THREADS / WARP - 1) / (RCV_CU_THREADS / WARP);
    if (b > 8192) b = 8192;
    return b ? (unsigned)b : 1u;
}
extern "C" void rcv_cu_row_sum(const float *x, const float *a, float *out, size_t rows, int C, int beta,
                               cudaStream_t s) {
    k_row_sum<<<warp_blocks(rows), RCV_CU_THREADS, 0, s>>>(x, a, out, rows, C, beta);
}

__global__ void k_bcast_rows(const float *dy, float *dx, size_t n, size_t rows, int C, float scale, int beta) {
    RCV_CU_LOOP(i, n) {
        size_t c = i % (size_t)C, b = i / (rows * C);
        rcv_cu_store(dx + i, scale * dy[b * C + c], beta);
    }
}
extern "C" void rcv_cu_bcast_rows(const float *dy, float *dx, int B, size_t rows, int C, float scale, int beta,
                                  cudaStream_t s) {
    size_t n = (size_t)B * rows * C;
    k_bcast_rows<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, dx, n, rows, C, scale, beta);
}

// log-sum-exp of one row of K, computed by a warp (every lane gets it).
__device__ float warp_lse(const float *z, int K) {
    int lane = threadIdx.x % WARP;
    float m = -INFINITY;
    for (int k = lane; k < K; k += WARP) m = fmaxf(m, z[k]);
    m = warp_max(m);
    float s = 0.0f;
    for (int k = lane; k < K; k += WARP) s += expf(z[k] - m);
    return m + logf(warp_sum(s));
}

// loss = mean_n [lse(z_n) - sum_k q_nk z_nk], q = (1 - ls) onehot + ls / K
__global__ void k_ce_fwd(const float *z, const int32_t *y, float *out, int N, int K, float ls) {
    int lane = threadIdx.x % WARP;
    int i = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    if (i >= N) return;
    const float *zi = z + (size_t)i * K;
    float lse = warp_lse(zi, K), qz = 0.0f;
    for (int k = lane; k < K; k += WARP) qz += (ls / K + (k == y[i] ? 1.0f - ls : 0.0f)) * zi[k];
    qz = warp_sum(qz);
    if (lane == 0) atomicAdd(out, (lse - qz) / N);
}
extern "C" void rcv_cu_ce_fwd(const float *z, const int32_t *y, float *out, int N, int K, float ls, cudaStream_t s) {
    cudaMemsetAsync(out, 0, sizeof(float), s);
    k_ce_fwd<<<(N + 7) / 8, RCV_CU_THREADS, 0, s>>>(z, y, out, N, K, ls);
}
// dz = g0 / N (softmax - q)
__global__ void k_ce_bwd(const float *z, const int32_t *y, const float *g0, float *dz, int N, int K, float ls,
                         int beta) {
    int lane = threadIdx.x % WARP;
    int i = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    if (i >= N) return;
    const float *zi = z + (size_t)i * K;
    float lse = warp_lse(zi, K), scale = *g0 / N;
    for (int k = lane; k < K; k += WARP) {
        float q = ls / K + (k == y[i] ? 1.0f - ls : 0.0f);
        rcv_cu_store(dz + (size_t)i * K + k, scale * (expf(zi[k] - lse) - q), beta);
    }
}
extern "C" void rcv_cu_ce_bwd(const float *z, const int32_t *y, const float *g0, float *dz, int N, int K, float ls,
                              int beta, cudaStream_t s) {
    k_ce_bwd<<<(N + 7) / 8, RCV_CU_THREADS, 0, s>>>(z, y, g0, dz, N, K, ls, beta);
}

// KL(softmax p || softmax q) per row, one warp per row.
__device__ float warp_kl(const float *p, const float *q, int K, float lsp, float lsq) {
    int lane = threadIdx.x % WARP;
    float s = 0.0f;
    for (int k = lane; k < K; k += WARP) {
        float lp = p[k] - lsp, lq = q[k] - lsq;
        s += expf(lp) * (lp - lq);
    }
    return warp_sum(s);
}
__global__ void k_kl_fwd(const float *p, const float *q, float *out, int N, int K) {
    int i = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    if (i >= N) return;
    const float *pi = p + (size_t)i * K, *qi = q + (size_t)i * K;
    float kl = warp_kl(pi, qi, K, warp_lse(pi, K), warp_lse(qi, K));
    if (threadIdx.x % WARP == 0) atomicAdd(out, kl / N);
}
extern "C" void rcv_cu_kl_fwd(const float *p, const float *q, float *out, int N, int K, cudaStream_t s) {
    cudaMemsetAsync(out, 0, sizeof(float), s);
    k_kl_fwd<<<(N + 7) / 8, RCV_CU_THREADS, 0, s>>>(p, q, out, N, K);
}
// dp_j = g0/N P_j (d_j - KL); dq_j = g0/N (Q_j - P_j)
__global__ void k_kl_bwd(const float *p, const float *q, const float *g0, float *dst, int N, int K, int which,
                         int beta) {
    int lane = threadIdx.x % WARP;
    int i = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    if (i >= N) return;
    const float *pi = p + (size_t)i * K, *qi = q + (size_t)i * K;
    float lsp = warp_lse(pi, K), lsq = warp_lse(qi, K), kl = warp_kl(pi, qi, K, lsp, lsq), scale = *g0 / N;
    for (int k = lane; k < K; k += WARP) {
        float lp = pi[k] - lsp, lq = qi[k] - lsq, P = expf(lp);
        float v = which == 0 ? P * ((lp - lq) - kl) : expf(lq) - P;
        rcv_cu_store(dst + (size_t)i * K + k, scale * v, beta);
    }
}
extern "C" void rcv_cu_kl_bwd(const float *p, const float *q, const float *g0, float *dst, int N, int K, int which,
                              int beta, cudaStream_t s) {
    k_kl_bwd<<<(N + 7) / 8, RCV_CU_THREADS, 0, s>>>(p, q, g0, dst, N, K, which, beta);
}

__device__ __forceinline__ double pointwise_loss(float x, float t, int kind, float b) {
    double d = (double)x - t, ad = fabs(d);
    if (kind == 0) return d * d;
    return ad < b ? 0.5 * d * d / b : ad - 0.5 * b;
}
__global__ void k_pointwise_fwd(const float *x, const float *t, double *dsum, size_t n, int kind, float b) {
    double acc = 0;
    RCV_CU_LOOP(i, n) acc += pointwise_loss(x[i], t[i], kind, b);
    acc = block_sum_d(acc);
    if (threadIdx.x == 0) atomicAdd(dsum, acc);
}
__global__ void k_mean_out(const double *dsum, float *out, size_t n) { *out = (float)(*dsum / (double)n); }
extern "C" void rcv_cu_pointwise_loss_fwd(const float *x, const float *t, float *out, double *dsum, size_t n, int kind,
                                          float beta_l1, cudaStream_t s) {
    cudaMemsetAsync(dsum, 0, sizeof(double), s);
    k_pointwise_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, t, dsum, n, kind, beta_l1);
    k_mean_out<<<1, 1, 0, s>>>(dsum, out, n);
}
// mse: 2 d g0 / n; smooth-L1: g0 / n (|d| < beta ? d / beta : sign d); times sign (-1 for the target)
__global__ void k_pointwise_bwd(const float *x, const float *t, const float *g0, float *dst, size_t n, int kind,
                                float b, float sign, int beta) {
    float scale = sign * *g0 / (float)n;
    RCV_CU_LOOP(i, n) {
        float d = x[i] - t[i], v;
        if (kind == 0) v = 2.0f * d;
        else v = fabsf(d) < b ? d / b : (float)((d > 0) - (d < 0));
        rcv_cu_store(dst + i, scale * v, beta);
    }
}
extern "C" void rcv_cu_pointwise_loss_bwd(const float *x, const float *t, const float *g0, float *dst, size_t n,
                                          int kind, float beta_l1, float sign, int beta, cudaStream_t s) {
    k_pointwise_bwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, t, g0, dst, n, kind, beta_l1, sign, beta);
}

// One block per chunk.
__global__ void k_chunks_sumsq(const float *g, const rcv_cuda_chunk *ch, double *dsum) {
    rcv_cuda_chunk c = ch[blockIdx.x];
    double acc = 0;
    for (size_t i = threadIdx.x; i < c.n; i += blockDim.x) {
        double v = g[c.offset + i];
        acc += v * v;
    }
    acc = block_sum_d(acc);
    if (threadIdx.x == 0) atomicAdd(dsum, acc);
}
extern "C" void rcv_cu_chunks_sumsq(const float *g, const rcv_cuda_chunk *chunks, int nc, double *dsum,
                                    cudaStream_t s) {
    cudaMemsetAsync(dsum, 0, sizeof(double), s);
    if (nc > 0) k_chunks_sumsq<<<nc, RCV_CU_THREADS, 0, s>>>(g, chunks, dsum);
}
__global__ void k_chunks_scale(float *g, const rcv_cuda_chunk *ch, float coef) {
    rcv_cuda_chunk c = ch[blockIdx.x];
    for (size_t i = threadIdx.x; i < c.n; i += blockDim.x) g[c.offset + i] *= coef;
}
extern "C" void rcv_cu_chunks_scale(float *g, const rcv_cuda_chunk *chunks, int nc, float coef, cudaStream_t s) {
    if (nc > 0) k_chunks_scale<<<nc, RCV_CU_THREADS, 0, s>>>(g, chunks, coef);
}

// BatchNorm training statistics. Pass 1: per-channel sum and sum of squares in double
// (float data, so E[x^2] - mean^2 loses nothing that matters at these sizes), blocks over
// (32 channels, row segments) meeting through double atomics in acc[0..C) and acc[C..2C).
__global__ void k_bn_stats(const float *x, double *acc, size_t rows, int C) {
    __shared__ double s1[CS_Y][CS_X], s2[CS_Y][CS_X];
    int c = blockIdx.x * CS_X + threadIdx.x;
    size_t per = (rows + gridDim.z - 1) / gridDim.z, r0 = blockIdx.z * per, r1 = r0 + per < rows ? r0 + per : rows;
    double a = 0, b = 0;
    if (c < C)
        for (size_t r = r0 + threadIdx.y; r < r1; r += CS_Y) {
            double v = x[r * C + c];
            a += v;
            b += v * v;
        }
    s1[threadIdx.y][threadIdx.x] = a;
    s2[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int y = 1; y < CS_Y; y++) a += s1[y][threadIdx.x], b += s2[y][threadIdx.x];
        atomicAdd(acc + c, a);
        atomicAdd(acc + C + c, b);
    }
}
// Pass 2, one thread per channel: mean, biased variance -> invstd; running statistics with
// PyTorch's rule (unbiased variance M/(M-1) into running_var).
__global__ void k_bn_finalize(const double *acc, float *mean, float *invstd, float *rm, float *rv, int C, size_t M,
                              float eps, float momentum) {
    RCV_CU_LOOP(c, (size_t)C) {
        double mu = acc[c] / (double)M, var = acc[C + c] / (double)M - mu * mu;
        if (var < 0) var = 0;
        mean[c] = (float)mu;
        invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
        double unb = M > 1 ? var * (double)M / (double)(M - 1) : var;
        rm[c] = (float)((1.0 - momentum) * rm[c] + momentum * mu);
        rv[c] = (float)((1.0 - momentum) * rv[c] + momentum * unb);
    }
}
extern "C" void rcv_cu_bn_train_stats(const float *x, double *acc, float *mean, float *invstd, float *rm, float *rv,
                                      size_t rows, int C, float eps, float momentum, cudaStream_t s) {
    cudaMemsetAsync(acc, 0, 2 * (size_t)C * sizeof(double), s);
    dim3 grid;
    chan_grid(rows, C, 1, &grid);
    k_bn_stats<<<grid, dim3(CS_X, CS_Y), 0, s>>>(x, acc, rows, C);
    k_bn_finalize<<<rcv_cu_blocks((size_t)C), RCV_CU_THREADS, 0, s>>>(acc, mean, invstd, rm, rv, C, rows, eps, momentum);
}

// Training-mode backward with sums[c] = sum dy xhat, sums[C + c] = sum dy over the M rows:
// dx = [dx] + w invstd (dy - sum_dy / M - xhat sum_dy_xhat / M), xhat = (x - mean) invstd.
__global__ void k_bn_train_dx(const float *x, const float *dy, const float *mean, const float *invstd, const float *w,
                              const float *sums, float *dx, size_t n, int C, float inv_m, int beta) {
    RCV_CU_LOOP(i, n) {
        int c = (int)(i % (size_t)C);
        float is = invstd[c], xh = (x[i] - mean[c]) * is;
        rcv_cu_store(dx + i, w[c] * is * (dy[i] - sums[C + c] * inv_m - xh * sums[c] * inv_m), beta);
    }
}
extern "C" void rcv_cu_bn_train_bwd(const float *x, const float *dy, const float *mean, const float *invstd,
                                    const float *w, float *sums, float *dw, float *db, float *dx, size_t rows, int C,
                                    int beta, cudaStream_t s) {
    cudaMemsetAsync(sums, 0, 2 * (size_t)C * sizeof(float), s);
    rcv_cu_bn_param_grads(x, dy, mean, invstd, sums, sums + C, rows, C, s);
    rcv_cu_axpby(dw, sums, 1.0f, 1.0f, dw, (size_t)C, s); // parameter gradients accumulate
    rcv_cu_axpby(db, sums + C, 1.0f, 1.0f, db, (size_t)C, s);
    if (dx) {
        size_t n = rows * (size_t)C;
        k_bn_train_dx<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, dy, mean, invstd, w, sums, dx, n, C,
                                                                  (float)(1.0 / (double)rows), beta);
    }
}
