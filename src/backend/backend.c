#include "backend/backend.h"

#include <stddef.h>

#include "robustcv/error.h"

const rcv_kernels *rcv_backend_kernels(rcv_backend b, rcv_op op) {
    const rcv_kernels *k = NULL;
    if (b == RCV_BACKEND_CPU) {
        k = rcv_backend_cpu_kernels(op);
        if (k && k->forward) return k;
    }
    k = rcv_backend_ref_kernels(op);
    return (k && k->forward) ? k : NULL;
}

void *rcv_backend_ctx_new(rcv_backend b, int threads) {
    switch (b) {
    case RCV_BACKEND_REF: return NULL;
    case RCV_BACKEND_CPU: return rcv_cpu_ctx_new(threads);
    default: rcv_fail("backend %d is not available in this build (expected ref or cpu)", (int)b); return NULL;
    }
}

void rcv_backend_ctx_free(rcv_backend b, void *ctx) {
    if (b == RCV_BACKEND_CPU) rcv_cpu_ctx_free(ctx);
}

int rcv_backend_has_bf16(rcv_backend b) { return b == RCV_BACKEND_CPU && rcv_cpu_has_bf16(); }
