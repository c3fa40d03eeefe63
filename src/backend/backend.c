#include "backend/backend.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#ifdef RCV_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

const rcv_kernels *rcv_backend_kernels(rcv_backend b, rcv_op op) {
    const rcv_kernels *k = NULL;
    if (b == RCV_BACKEND_CUDA) {
        k = rcv_backend_cuda_kernels(op);
        return (k && k->forward) ? k : NULL;
    }
    if (b == RCV_BACKEND_CPU) {
        k = rcv_backend_cpu_kernels(op);
        if (k && k->forward) return k;
    }
    k = rcv_backend_ref_kernels(op);
    return (k && k->forward) ? k : NULL;
}

#ifdef RCV_HAVE_CUDA
int rcv_backend_cuda_built(void) { return 1; }
#else
int rcv_backend_cuda_built(void) { return 0; }
const rcv_kernels *rcv_backend_cuda_kernels(rcv_op op) { return NULL; }
#endif

void *rcv_backend_ctx_new(rcv_backend b, const rcv_graph *g) {
    switch (b) {
    case RCV_BACKEND_REF: return NULL;
    case RCV_BACKEND_CPU: return rcv_cpu_ctx_new(g->threads);
#ifdef RCV_HAVE_CUDA
    case RCV_BACKEND_CUDA: return rcv_cuda_ctx_new(g->device);
#else
    case RCV_BACKEND_CUDA:
        rcv_fail("no CUDA device/driver: this robustcv was built without the cuda backend (nvcc/CUDA toolkit not "
                 "found at configure time, or -DRCV_CUDA=OFF)");
        return NULL;
#endif
    default: rcv_fail("backend %d is unknown (expected ref, cpu or cuda)", (int)b); return NULL;
    }
}

void rcv_backend_ctx_free(rcv_backend b, void *ctx) {
    if (b == RCV_BACKEND_CPU) rcv_cpu_ctx_free(ctx);
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) rcv_cuda_ctx_free(ctx);
#endif
}

int rcv_backend_check(rcv_backend b) {
    if (b == RCV_BACKEND_REF || b == RCV_BACKEND_CPU) return 0;
    if (b != RCV_BACKEND_CUDA) return rcv_fail("backend %d is unknown (expected ref, cpu or cuda)", (int)b);
#ifdef RCV_HAVE_CUDA
    return rcv_cuda_device_count() < 0 ? -1 : 0;
#else
    return rcv_fail("no CUDA device/driver: this robustcv was built without the cuda backend (nvcc/CUDA toolkit not "
                    "found at configure time, or -DRCV_CUDA=OFF)");
#endif
}

int rcv_backend_on_device(rcv_backend b) { return b == RCV_BACKEND_CUDA; }

// The cuda branches below only run on a plan whose context was created, which a build
// without CUDA never has.
void *rcv_backend_alloc(rcv_backend b, void *ctx, size_t bytes) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) return rcv_cuda_alloc(ctx, bytes);
#endif
    return rcv_alloc_aligned(bytes ? bytes : 64);
}

void rcv_backend_free(rcv_backend b, void *ctx, void *p) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_free(ctx, p); return; }
#endif
    free(p);
}

void rcv_backend_upload(rcv_backend b, void *ctx, void *dst, const void *src, size_t bytes) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_upload(ctx, dst, src, bytes); return; }
#endif
    if (dst != src && bytes) memcpy(dst, src, bytes);
}

void rcv_backend_download(rcv_backend b, void *ctx, void *dst, const void *src, size_t bytes) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_download(ctx, dst, src, bytes); return; }
#endif
    if (dst != src && bytes) memcpy(dst, src, bytes);
}

void rcv_backend_zero(rcv_backend b, void *ctx, void *p, size_t bytes) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_zero(ctx, p, bytes); return; }
#endif
    if (bytes) memset(p, 0, bytes);
}

void rcv_backend_fill(rcv_backend b, void *ctx, float *p, size_t n, float value) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_fill(ctx, p, n, value); return; }
#endif
    for (size_t i = 0; i < n; i++) p[i] = value;
}

void rcv_backend_sync(rcv_backend b, void *ctx) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) rcv_cuda_sync(ctx);
#endif
}

int rcv_backend_block(rcv_backend b) { return b == RCV_BACKEND_CPU ? rcv_cpu_block() : 0; }
int rcv_backend_has_bf16(rcv_backend b) { return b == RCV_BACKEND_CPU && rcv_cpu_has_bf16(); }
