// Backend dispatch (private to the library).
#ifndef RCV_BACKEND_H
#define RCV_BACKEND_H

#include "robustcv/graph.h"

// Kernel table for (backend, op). The cpu backend falls back to ref for an op
// it lacks (tests/test_ops.c checks that none is missing); cuda has no fallback
// (ref kernels cannot read GPU memory). NULL if the backend lacks the op.
const rcv_kernels *rcv_backend_kernels(rcv_backend b, rcv_op op);
// cuda kernel table (src/backend/cuda/table.c); returns NULL for every op in a build
// without CUDA.
const rcv_kernels *rcv_backend_cuda_kernels(rcv_op op);
// 1 when this build has the cuda backend compiled in.
int rcv_backend_cuda_built(void);
// Per-plan context (cpu: the oneDNN engine and stream; cuda: device, stream, cuDNN and
// cuBLAS handles, workspace). NULL with a message on failure; ref needs none and returns NULL.
// cuda fails with "no CUDA device/driver: <reason>" where there is no GPU or driver.
void *rcv_backend_ctx_new(rcv_backend b, const rcv_graph *g);
void rcv_backend_ctx_free(rcv_backend b, void *ctx);

// Memory of a plan. Host backends: 64-byte aligned host memory, memcpy, memset.
// cuda: cudaMalloc'ed device memory; copies and fills are queued on the context's
// stream (download waits for it). alloc returns NULL with a message on failure.
int rcv_backend_on_device(rcv_backend b);
void *rcv_backend_alloc(rcv_backend b, void *ctx, size_t bytes);
void rcv_backend_free(rcv_backend b, void *ctx, void *p);
void rcv_backend_upload(rcv_backend b, void *ctx, void *dst, const void *src, size_t bytes);
void rcv_backend_download(rcv_backend b, void *ctx, void *dst, const void *src, size_t bytes);
void rcv_backend_zero(rcv_backend b, void *ctx, void *p, size_t bytes);
void rcv_backend_fill(rcv_backend b, void *ctx, float *p, size_t n, float value);
void rcv_backend_sync(rcv_backend b, void *ctx);

// cpu backend context, defined in backend/cpu/dnnl_ctx.c.
void *rcv_cpu_ctx_new(int threads);
void rcv_cpu_ctx_free(void *ctx);
// The channel block of blocked activations on this CPU (rcv_node.blocked): 16 on AVX-512, 8 on
// AVX2, 0 (NHWC only) below; rcv_backend_block is 0 on every other backend.
int rcv_cpu_block(void);
// The widest of our own x86 SIMD kernels (batchnorm's tiles, NL-means) this process may run:
// 16 (AVX-512 F/BW/VL/DQ + FMA), 8 (AVX2 + FMA + BMI2) or 0 (the portable loops; always 0 off
// x86). Capped by oneDNN's tier as rcv_cpu_block is, so ONEDNN_MAX_CPU_ISA sets every kernel's.
// The kernels are compiled by target attributes whatever -march says, so one binary serves all.
int rcv_cpu_simd(void);
int rcv_backend_block(rcv_backend b);
// Native bf16 dot products (AVX512-BF16 or AMX) on this CPU, as oneDNN sees it.
int rcv_cpu_has_bf16(void);
int rcv_backend_has_bf16(rcv_backend b);
// oneDNN's effective ISA, short name ("avx2", "avx512_core_bf16"): the CPU's, capped by
// ONEDNN_MAX_CPU_ISA. Names the tier in messages and in make bench's header.
const char *rcv_cpu_isa(void);

// Attack vector ops on planned storage (src/backend/attack_ops.c; cuda: src/backend/cuda/attack.cu),
// queued like the plan's kernels: what an attack does between a backward and the next forward,
// so a device plan's iterations stay on the device. n floats.
//   copy:        dst = src (device to device on cuda)
//   linf_step:   adv = clamp01(a), a = adv + alpha sign(g), projected on [x - eps, x + eps] if eps >= 0:
//                box 0 as torchattacks' PGD (x + clamp(a - x, -eps, eps)), box 1 as TRADES' code
//                (clamp(a, x - eps, x + eps)); the two round differently
//   add_clamp01: adv = clamp01(x + d) (adv may alias d)
//   ce_seed:     dz (rows, k): rows i < nb get sgn (softmax(z_i) - onehot(y_i)) (the per-sample
//                cross-entropy's dL/dz, as rcv_ce_seed), the rest 0
//   kl_seed:     dz (rows, k): rows i < nb get softmax(z_i) - p_i (TRADES' KL(p || softmax z)
//                gradient; p (rows, k) doubles), the rest 0
void rcv_backend_copy(rcv_backend b, void *ctx, void *dst, const void *src, size_t bytes);
void rcv_backend_linf_step(rcv_backend b, void *ctx, float *adv, const float *x, const float *g, size_t n,
                           float alpha, float eps, int box);
void rcv_backend_add_clamp01(rcv_backend b, void *ctx, float *adv, const float *x, const float *d, size_t n);
void rcv_backend_ce_seed(rcv_backend b, void *ctx, const float *z, const int32_t *y, float *dz, int nb, int rows,
                         int k, float sgn);
void rcv_backend_kl_seed(rcv_backend b, void *ctx, const float *z, const double *p, float *dz, int nb, int rows,
                         int k);

#endif
