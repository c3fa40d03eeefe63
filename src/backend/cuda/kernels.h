// Launchers of the .cu kernels (src/backend/cuda/*.cu), callable from C. Each queues
// its kernel on stream s and returns at once. Tensors are NHWC; "rows" counts the
// N*H*W cells of C channels each. `beta` 0 overwrites the destination, 1 adds to it
// (the graph's in_beta); an overwrite never reads the destination, so stale NaNs in it
// do not leak through.
#ifndef RCV_CU_KERNELS_H
#define RCV_CU_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "backend/cuda/cuda_backend.h"

// Storage types of low-precision copies.
typedef enum { RCV_CU_F32 = 0, RCV_CU_BF16 = 1, RCV_CU_F16 = 2 } rcv_cu_dtype;

// --- elementwise.cu ---
void rcv_cu_fill(float *p, size_t n, float v, cudaStream_t s);
void rcv_cu_relu_fwd(const float *x, float *y, size_t n, cudaStream_t s);
void rcv_cu_relu_bwd(const float *y, const float *dy, float *dx, size_t n, int beta, cudaStream_t s);
void rcv_cu_sigmoid_fwd(const float *x, float *y, size_t n, cudaStream_t s);
void rcv_cu_sigmoid_bwd(const float *y, const float *dy, float *dx, size_t n, int beta, cudaStream_t s);
// mask[e] = u[e] >= p ? 1/(1-p) : 0 with u the Philox stream (key, counter) drawn exactly as
// rcv_rng_fill_uniform; training 0: mask = 1. y = x * mask.
void rcv_cu_dropout_fwd(const float *x, float *y, float *mask, size_t n, float p, uint64_t key, uint64_t counter,
                        int training, cudaStream_t s);
// dx = [dx] + alpha * dy * (m ? m : 1)
void rcv_cu_scale_mul_acc(const float *dy, const float *m, float alpha, float *dx, size_t n, int beta, cudaStream_t s);
// y = alpha a + b2 b
void rcv_cu_axpby(const float *a, const float *b, float alpha, float b2, float *y, size_t n, cudaStream_t s);
// Broadcast add/mul: a, y: (N, HW, C); b: mode 0 (N, HW, C), 1 (N, 1, C), 2 (N, HW, 1). mul: 0 add, 1 mul.
void rcv_cu_bcast_fwd(const float *a, const float *b, float *y, int N, int HW, int C, int mode, int mul,
                      cudaStream_t s);
// da = [da] + dy * b (b broadcast as above)
void rcv_cu_bcast_mul_da(const float *dy, const float *b, float *da, int N, int HW, int C, int mode, int beta,
                         cudaStream_t s);
// y[e] = (x[e] - mean[c]) * inv_std[c]  and  dx = [dx] + dy * inv_std[c]; C <= 4.
typedef struct { float v[4]; } rcv_cu_vec4;
void rcv_cu_normalize_fwd(const float *x, float *y, size_t n, int C, rcv_cu_vec4 mean, rcv_cu_vec4 inv_std,
                          cudaStream_t s);
void rcv_cu_normalize_bwd(const float *dy, float *dx, size_t n, int C, rcv_cu_vec4 inv_std, int beta, cudaStream_t s);
// y[r, c] += b[c] over `rows` rows.
void rcv_cu_bias_add(float *y, const float *b, size_t rows, int C, cudaStream_t s);
// Low-precision copies: y = (T) x, and x32 = [x32] + (float) y.
void rcv_cu_cast(const float *x, void *y, size_t n, rcv_cu_dtype t, cudaStream_t s);
void rcv_cu_uncast(const void *y, float *x, size_t n, rcv_cu_dtype t, int beta, cudaStream_t s);
// Conv weights: OIHW fp32 (PyTorch's order, what checkpoints hold) -> OHWI (cuDNN's KRSC
// for NHWC convolutions) in type t; and the gradient back: dw_oihw += (float) dwk_ohwi.
void rcv_cu_w_to_ohwi(const float *w, void *wk, int O, int Cg, int kh, int kw, rcv_cu_dtype t, cudaStream_t s);
void rcv_cu_w_from_ohwi_acc(const void *dwk, float *dw, int O, int Cg, int kh, int kw, rcv_cu_dtype t,
                            cudaStream_t s);
// BatchNorm, eval mode: mean = rm, invstd = 1/sqrt(rv + eps); y = (x - mean) invstd w + b;
// dx = [dx] + dy w invstd.
void rcv_cu_bn_eval_stats(const float *rm, const float *rv, float *mean, float *invstd, int C, float eps,
                          cudaStream_t s);
void rcv_cu_bn_eval_fwd(const float *x, const float *mean, const float *invstd, const float *w, const float *b,
                        float *y, size_t rows, int C, cudaStream_t s);
void rcv_cu_bn_eval_dx(const float *dy, const float *w, const float *invstd, float *dx, size_t rows, int C, int beta,
                       cudaStream_t s);
void rcv_cu_i64_add(int64_t *p, int64_t v, cudaStream_t s);

// --- reduce.cu ---
// out[b, c] = [out] + scale * sum_{r < rows} x[b, r, c] * (a ? a[b, r, c] : 1), b < B.
// Uses atomics across row segments; beta 0 zeroes out first.
void rcv_cu_chan_sum(const float *x, const float *a, float *out, int B, size_t rows, int C, float scale, int beta,
                     cudaStream_t s);
// out[r] = [out] + sum_{c < C} x[r, c] * (a ? a[r, c] : 1)
void rcv_cu_row_sum(const float *x, const float *a, float *out, size_t rows, int C, int beta, cudaStream_t s);
// dx[b, r, c] = [dx] + scale * dy[b, c]   (global average pool's backward)
void rcv_cu_bcast_rows(const float *dy, float *dx, int B, size_t rows, int C, float scale, int beta, cudaStream_t s);
// BatchNorm parameter grads: dw[c] += sum dy (x - mean) invstd, db[c] += sum dy.
void rcv_cu_bn_param_grads(const float *x, const float *dy, const float *mean, const float *invstd, float *dw,
                           float *db, size_t rows, int C, cudaStream_t s);
// BatchNorm, training mode (our kernels: cuDNN's NHWC fp32 batchnorm took 5-6 ms per layer
// of resnet50 at batch 256 on an H100). acc: 2C doubles of scratch; mean, invstd: saved;
// rm, rv: running statistics updated with PyTorch's rule.
void rcv_cu_bn_train_stats(const float *x, double *acc, float *mean, float *invstd, float *rm, float *rv, size_t rows,
                           int C, float eps, float momentum, cudaStream_t s);
// sums: 2C floats of scratch. dw, db += this batch's sums; dx (may be NULL) with beta.
void rcv_cu_bn_train_bwd(const float *x, const float *dy, const float *mean, const float *invstd, const float *w,
                         float *sums, float *dw, float *db, float *dx, size_t rows, int C, int beta, cudaStream_t s);
// Losses; out and the upstream gradient g0 are one float on the device; dsum one double.
void rcv_cu_ce_fwd(const float *z, const int32_t *y, float *out, int N, int K, float ls, cudaStream_t s);
void rcv_cu_ce_bwd(const float *z, const int32_t *y, const float *g0, float *dz, int N, int K, float ls, int beta,
                   cudaStream_t s);
void rcv_cu_kl_fwd(const float *p, const float *q, float *out, int N, int K, cudaStream_t s);
// which 0: d/dp, 1: d/dq
void rcv_cu_kl_bwd(const float *p, const float *q, const float *g0, float *dst, int N, int K, int which, int beta,
                   cudaStream_t s);
// kind 0: mse, 1: smooth-L1 with beta_l1. out = mean over n elements.
void rcv_cu_pointwise_loss_fwd(const float *x, const float *t, float *out, double *dsum, size_t n, int kind,
                               float beta_l1, cudaStream_t s);
void rcv_cu_pointwise_loss_bwd(const float *x, const float *t, const float *g0, float *dst, size_t n, int kind,
                               float beta_l1, float sign, int beta, cudaStream_t s);
// Over chunk tables (device arrays): *dsum = sum g^2 (dsum zeroed first), g *= coef.
void rcv_cu_chunks_sumsq(const float *g, const rcv_cuda_chunk *chunks, int nc, double *dsum, cudaStream_t s);
void rcv_cu_chunks_scale(float *g, const rcv_cuda_chunk *chunks, int nc, float coef, cudaStream_t s);

// --- spatial.cu ---
typedef struct {
    int N, C, H, W;     // input
    int Ho, Wo;         // output
    int kh, kw, sh, sw, ph, pw;
    int count_include_pad;
} rcv_cu_pool;
void rcv_cu_maxpool_fwd(const float *x, float *y, float *arg, rcv_cu_pool p, cudaStream_t s);
void rcv_cu_maxpool_bwd(const float *dy, const float *arg, float *dx, rcv_cu_pool p, int beta, cudaStream_t s);
void rcv_cu_avgpool_fwd(const float *x, float *y, rcv_cu_pool p, cudaStream_t s);
void rcv_cu_avgpool_bwd(const float *dy, float *dx, rcv_cu_pool p, int beta, cudaStream_t s);
// PyTorch's AdaptiveAvgPool2d: x (N, C, H, W) -> y (N, C, Ho, Wo); backward gathers (no atomics).
void rcv_cu_adaptive_avgpool_fwd(const float *x, float *y, int N, int C, int H, int W, int Ho, int Wo, cudaStream_t s);
void rcv_cu_adaptive_avgpool_bwd(const float *dy, float *dx, int N, int C, int H, int W, int Ho, int Wo, int beta,
                                 cudaStream_t s);
void rcv_cu_up_nearest_fwd(const float *x, float *y, int N, int C, int H, int W, int sc, cudaStream_t s);
void rcv_cu_up_nearest_bwd(const float *dy, float *dx, int N, int C, int H, int W, int sc, int beta, cudaStream_t s);
void rcv_cu_up_bilinear_fwd(const float *x, float *y, int N, int C, int H, int W, int sc, int ac, cudaStream_t s);
// Scatters with atomics; beta 0 zeroes dx first.
void rcv_cu_up_bilinear_bwd(const float *dy, float *dx, int N, int C, int H, int W, int sc, int ac, int beta,
                            cudaStream_t s);
// Channel slices: dir 0: dst[r, off + c] = src[r, c] (concat forward);
// dir 1: src_grad[r, c] = [.] + dst_grad[r, off + c] (backward). Cs, Cd: channels of each.
void rcv_cu_chan_slice(const float *from, float *to, size_t rows, int Cs, int Cd, int off, int dir, int beta,
                       cudaStream_t s);
// NHWC (N, C, H, W) <-> PyTorch's flatten order (N, C*H*W): dir 0 forward, 1 backward.
void rcv_cu_flatten(const float *from, float *to, int N, int C, int H, int W, int dir, int beta, cudaStream_t s);

// --- optim.cu ---
void rcv_cu_sgd(float *p, const float *g, float *buf, const rcv_cuda_chunk *chunks, int nc, float lr, float momentum,
                float dampening, float wd, int nesterov, int first, cudaStream_t s);
void rcv_cu_adam(float *p, const float *g, float *m, float *v, const rcv_cuda_chunk *chunks, int nc, float lr,
                 float beta1, float beta2, float eps, float wd, int decoupled, float step_size, float bc2_sqrt,
                 cudaStream_t s);

// --- attack.cu (host twins in src/backend/attack_ops.c) ---
// adv = clamp01(a), a = adv + alpha sign(g), projected on [x - eps, x + eps] when eps >= 0
// (box 0: x + clamp(a - x, -eps, eps), torchattacks' PGD; box 1: clamp(a, x - eps, x + eps), TRADES').
void rcv_cu_linf_step(float *adv, const float *x, const float *g, size_t n, float alpha, float eps, int box,
                      cudaStream_t s);
// adv = clamp01(x + d) (adv may be d)
void rcv_cu_add_clamp01(float *adv, const float *x, const float *d, size_t n, cudaStream_t s);
// dz[i] = sgn (softmax(z[i]) - onehot(y[i])) for rows i < nb, 0 for nb <= i < rows; z, dz: (rows, k).
void rcv_cu_ce_seed(const float *z, const int32_t *y, float *dz, int nb, int rows, int k, float sgn, cudaStream_t s);
// dz[i] = softmax(z[i]) - p[i] (p: (rows, k) doubles) for rows i < nb, 0 for the rest.
void rcv_cu_kl_seed(const float *z, const double *p, float *dz, int nb, int rows, int k, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
