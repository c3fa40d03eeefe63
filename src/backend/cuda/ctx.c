// The cuda context of one plan: device check, stream, cuDNN/cuBLAS handles, the shared
// workspace; and device memory for the planner (arena, parameter mirrors).
#include <string.h>

#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"
#include "robustcv/error.h"

// cudaGetDeviceCount is the first CUDA call a process makes; where there is no driver
// (libcuda missing) or no GPU it fails here, cleanly, instead of at program start.
int rcv_cuda_device_count(void) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError(); // clear the sticky error for a later retry
        rcv_fail("no CUDA device/driver: cudaGetDeviceCount failed: %s (%s)%s", cudaGetErrorString(e),
                 cudaGetErrorName(e),
                 e == cudaErrorInsufficientDriver ? "; no NVIDIA driver is loaded, or it is older than this CUDA runtime"
                                                  : "");
        return -1;
    }
    if (count == 0) {
        rcv_fail("no CUDA device/driver: cudaGetDeviceCount found no device");
        return -1;
    }
    return count;
}

static int cuda_fail(const char *what, cudaError_t e) {
    return rcv_fail("cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

void *rcv_cuda_ctx_new(int device) {
    int count = rcv_cuda_device_count();
    if (count < 0) return NULL;
    if (device < 0 || device >= count) {
        rcv_fail("cuda: device %d requested, this machine has %d (0..%d)", device, count, count - 1);
        return NULL;
    }
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) { cuda_fail("cudaSetDevice", e); return NULL; }
    cu_ctx *c = rcv_xcalloc(1, sizeof *c);
    c->device = device;
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        cuda_fail("cudaStreamCreate", e);
        free(c);
        return NULL;
    }
    cudnnStatus_t ds = cudnnCreate(&c->cudnn);
    if (ds != CUDNN_STATUS_SUCCESS) {
        rcv_fail("cuda: cudnnCreate: %s", cudnnGetErrorString(ds));
        cudaStreamDestroy(c->stream);
        free(c);
        return NULL;
    }
    cublasStatus_t bs = cublasCreate(&c->cublas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        rcv_fail("cuda: cublasCreate failed with status %d", (int)bs);
        cudnnDestroy(c->cudnn);
        cudaStreamDestroy(c->stream);
        free(c);
        return NULL;
    }
    cudnnSetStream(c->cudnn, c->stream);
    cublasSetStream(c->cublas, c->stream);
    if ((e = cudaMalloc((void **)&c->dsum, sizeof(double))) != cudaSuccess) {
        cuda_fail("cudaMalloc", e);
        rcv_cuda_ctx_free(c);
        return NULL;
    }
    return c;
}

void rcv_cuda_ctx_free(void *ctx) {
    cu_ctx *c = ctx;
    if (!c) return;
    cudaSetDevice(c->device);
    cudaStreamSynchronize(c->stream);
    cudaFree(c->ws);
    cudaFree(c->dsum);
    if (c->cublas) cublasDestroy(c->cublas);
    if (c->cudnn) cudnnDestroy(c->cudnn);
    cudaStreamDestroy(c->stream);
    free(c);
}

int cu_ws_reserve(cu_ctx *c, size_t bytes) {
    if (bytes <= c->ws_size) return 0;
    cudaStreamSynchronize(c->stream);
    cudaFree(c->ws);
    c->ws = NULL;
    c->ws_size = 0;
    cudaError_t e = cudaMalloc(&c->ws, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return rcv_fail("cuda: workspace of %zu MiB: %s", bytes >> 20, cudaGetErrorString(e));
    }
    c->ws_size = bytes;
    return 0;
}

void *rcv_cuda_alloc(void *ctx, size_t bytes) {
    cu_ctx *c = ctx;
    void *p = NULL;
    size_t sz = bytes ? bytes : 256;
    cudaError_t e = cudaMalloc(&p, sz);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        rcv_fail("cuda: cannot allocate %zu MiB on device %d (%zu MiB free of %zu): %s", sz >> 20, c->device,
                 free_b >> 20, total_b >> 20, cudaGetErrorString(e));
        return NULL;
    }
    // Zeroed like the host arena, so a buffer no kernel wrote reads as 0 on every backend.
    CU_CHECK(cudaMemsetAsync(p, 0, sz, c->stream));
    return p;
}

void rcv_cuda_free(void *ctx, void *p) {
    cu_ctx *c = ctx;
    if (!p) return;
    if (c) cudaStreamSynchronize(c->stream);
    cudaFree(p);
}

void rcv_cuda_upload(void *ctx, void *dst, const void *src, size_t bytes) {
    cu_ctx *c = ctx;
    if (!bytes) return;
    // From pageable memory the call returns once the source is staged: the caller may reuse it.
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
}

void rcv_cuda_download(void *ctx, void *dst, const void *src, size_t bytes) {
    cu_ctx *c = ctx;
    if (!bytes) return;
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CU_CHECK(cudaStreamSynchronize(c->stream));
}

void rcv_cuda_zero(void *ctx, void *p, size_t bytes) {
    cu_ctx *c = ctx;
    if (bytes) CU_CHECK(cudaMemsetAsync(p, 0, bytes, c->stream));
}

void rcv_cuda_fill(void *ctx, float *p, size_t n, float value) {
    cu_ctx *c = ctx;
    rcv_cu_fill(p, n, value, c->stream);
}

void rcv_cuda_sync(void *ctx) {
    cu_ctx *c = ctx;
    CU_CHECK(cudaStreamSynchronize(c->stream));
}
