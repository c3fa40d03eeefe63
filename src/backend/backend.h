// Backend dispatch (private to the library).
#ifndef RCV_BACKEND_H
#define RCV_BACKEND_H

#include "robustcv/graph.h"

// Kernel table for (backend, op). The cpu backend falls back to ref for an op
// it lacks (tests/test_ops.c checks that none is missing); NULL if neither has it.
const rcv_kernels *rcv_backend_kernels(rcv_backend b, rcv_op op);
// Per-plan context (cpu: the oneDNN engine and stream). NULL with a message on failure;
// ref needs none and returns NULL.
void *rcv_backend_ctx_new(rcv_backend b, int threads);
void rcv_backend_ctx_free(rcv_backend b, void *ctx);

// cpu backend context, defined in backend/cpu/dnnl_ctx.c.
void *rcv_cpu_ctx_new(int threads);
void rcv_cpu_ctx_free(void *ctx);
// Native bf16 dot products (AVX512-BF16 or AMX) on this CPU, as oneDNN sees it.
int rcv_cpu_has_bf16(void);
int rcv_backend_has_bf16(rcv_backend b);

#endif
