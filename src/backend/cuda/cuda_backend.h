// The cuda backend's C interface: what the rest of the library (backend.c, optim,
// nccl users) calls. No CUDA type appears here, so any C file may include it; the
// CUDA headers stay inside src/backend/cuda/ (cu_ctx.h, kernels.h).
//
// A context belongs to one plan: one device, one stream, one cuDNN and one cuBLAS
// handle, one workspace. Every kernel of the plan is queued on that stream, so a
// step runs without host round trips; rcv_cuda_download is the one call that waits.
#ifndef RCV_CUDA_BACKEND_H
#define RCV_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "robustcv/graph.h"

// Number of usable devices, or -1 with "no CUDA device/driver: <cudaGetDeviceCount's
// error>" set (a build with CUDA on a machine without a GPU or driver lands here).
int rcv_cuda_device_count(void);
// NULL with a message when no device/driver is present or `device` is out of range.
void *rcv_cuda_ctx_new(int device);
void rcv_cuda_ctx_free(void *ctx);

// Device memory (zeroed), NULL with a message when the GPU is out of memory.
void *rcv_cuda_alloc(void *ctx, size_t bytes);
void rcv_cuda_free(void *ctx, void *p);
// Host -> device copies are queued (the host buffer may be reused at once);
// device -> host waits for every queued kernel and then for the copy.
void rcv_cuda_upload(void *ctx, void *dst, const void *src, size_t bytes);
void rcv_cuda_download(void *ctx, void *dst, const void *src, size_t bytes);
void rcv_cuda_zero(void *ctx, void *p, size_t bytes);
void rcv_cuda_fill(void *ctx, float *p, size_t n, float value);
void rcv_cuda_sync(void *ctx);

// Optimizer updates and gradient norms on the graph's device mirrors (g->dparams,
// g->dgrads), with the semantics of src/optim (PyTorch's). `state` is an opaque
// per-optimizer device state made by rcv_cuda_optim_state_new and holding m, v and the
// chunk table; chunks: (offset, n, lr_mult) ranges of trainable floats, as rcv_optim_chunks.
typedef struct {
    size_t offset, n;
    float lr_mult;
} rcv_cuda_chunk;
void *rcv_cuda_optim_state_new(void *ctx, size_t n, int has_m, int has_v);
void rcv_cuda_optim_state_free(void *ctx, void *state);
// Host m/v <-> device state (checkpoints, resume). Either pointer may be NULL.
void rcv_cuda_optim_state_upload(void *ctx, void *state, const float *m, const float *v);
void rcv_cuda_optim_state_download(void *ctx, void *state, float *m, float *v);
void rcv_cuda_sgd_step(void *ctx, void *state, float *params, const float *grads, const rcv_cuda_chunk *chunks,
                       int n_chunks, float lr, float momentum, float dampening, float wd, int nesterov, int first);
void rcv_cuda_adam_step(void *ctx, void *state, float *params, const float *grads, const rcv_cuda_chunk *chunks,
                        int n_chunks, float lr, float beta1, float beta2, float eps, float wd, int decoupled,
                        int64_t step);
// sum of squares of grads over the chunks (waits for the GPU), and grads *= coef over them.
double rcv_cuda_sumsq(void *ctx, void *state, const float *grads, const rcv_cuda_chunk *chunks, int n_chunks);
void rcv_cuda_scale(void *ctx, void *state, float *grads, const rcv_cuda_chunk *chunks, int n_chunks, float coef);

// Multi-GPU gradient averaging with NCCL (src/backend/cuda/nccl.c).
typedef struct rcv_nccl rcv_nccl;
// One process per GPU: rank and world size from RCV_RANK / RCV_WORLD_SIZE (or Open MPI's
// OMPI_COMM_WORLD_RANK / _SIZE when launched with mpirun); rank 0 writes the NCCL unique id to
// the file named by RCV_NCCL_ID (a shared filesystem path across machines), the others wait for
// it. The device is RCV_LOCAL_RANK (or OMPI_COMM_WORLD_LOCAL_RANK, else rank) modulo the
// device count. NULL with a message on failure.
rcv_nccl *rcv_nccl_init_env(int *rank, int *world, int *device);
// One process, several GPUs: communicators for devices devs[0..n) (ncclCommInitAll).
rcv_nccl *rcv_nccl_init_devices(const int *devs, int n);
// Averages g->dgrads (the contiguous gradient buffer) over all ranks: one allreduce.
// Single-process multi-device: pass every device's graph (n = number of devices).
int rcv_nccl_allreduce_grads(rcv_nccl *c, rcv_graph **gs, int n);
// Copies rank 0's parameters and buffers to every rank (start of training).
int rcv_nccl_broadcast_params(rcv_nccl *c, rcv_graph **gs, int n);
void rcv_nccl_free(rcv_nccl *c);

// Attack vector ops on device memory, queued on the context's stream (src/backend/cuda/attack.c):
// the cuda side of rcv_backend_copy / _linf_step / _add_clamp01 / _ce_seed / _kl_seed (backend.h).
void rcv_cuda_copy(void *ctx, void *dst, const void *src, size_t bytes);
void rcv_cuda_linf_step(void *ctx, float *adv, const float *x, const float *g, size_t n, float alpha, float eps,
                        int box);
void rcv_cuda_add_clamp01(void *ctx, float *adv, const float *x, const float *d, size_t n);
void rcv_cuda_ce_seed(void *ctx, const float *z, const int32_t *y, float *dz, int nb, int rows, int k, float sgn);
void rcv_cuda_kl_seed(void *ctx, const float *z, const double *p, float *dz, int nb, int rows, int k);

#endif
