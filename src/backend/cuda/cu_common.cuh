// Shared by the .cu files: launch shapes and the overwrite-or-accumulate store.
#ifndef RCV_CU_COMMON_CUH
#define RCV_CU_COMMON_CUH

#include <stddef.h>

#include "backend/cuda/kernels.h"

#define RCV_CU_THREADS 256

// Grid-stride launches: enough blocks to fill an H100 (132 SMs) several times over.
static inline unsigned rcv_cu_blocks(size_t n) {
    size_t b = (n + RCV_CU_THREADS - 1) / RCV_CU_THREADS;
    if (b > 8192) b = 8192;
    return b ? (unsigned)b : 1u;
}

#define RCV_CU_LOOP(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// dst = beta ? dst + v : v (an overwrite does not read dst).
__device__ __forceinline__ void rcv_cu_store(float *dst, float v, int beta) { *dst = beta ? *dst + v : v; }

#endif
