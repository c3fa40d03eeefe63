// The cpu backend's per-plan context and oneDNN helpers shared by its kernels.
//
// A kernel builds its oneDNN primitives once, in prepare, as rcv_dnnl_prim
// values: the primitive plus one memory object per argument, created without
// storage. Each run sets the data handles (node buffers, parameters, the
// graph's scratch) and executes, so forward/backward never allocate and a
// scratch buffer that moved since prepare is still found. Scratchpads are in
// user mode and live in g->scratch.
#ifndef RCV_DNNL_CTX_H
#define RCV_DNNL_CTX_H

#include <dnnl.h>
#include <stddef.h>

#include "robustcv/graph.h"

typedef struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
} rcv_cpu_ctx;

static inline rcv_cpu_ctx *rcv_cpu(rcv_graph *g) { return (rcv_cpu_ctx *)g->backend_ctx; }

// Turns a oneDNN status into -1 with a message naming the call; 0 on success.
int rcv_dnnl_check(dnnl_status_t st, const char *what);
#define RCV_DNNL(call) rcv_dnnl_check((call), #call)

#define RCV_DNNL_MAX_ARGS 10

typedef struct {
    dnnl_primitive_t prim;  // NULL: not built (the step it stands for is skipped)
    int nargs;              // arguments without the scratchpad
    int arg[RCV_DNNL_MAX_ARGS];
    dnnl_memory_t mem[RCV_DNNL_MAX_ARGS + 1]; // [nargs] is the scratchpad, when it needs one
    size_t scratchpad_bytes;
} rcv_dnnl_prim;

// Attributes with the user-managed scratchpad (and a sum post-op when sum_beta != 0,
// for reorders that accumulate). Destroy with dnnl_primitive_attr_destroy.
int rcv_dnnl_attr(dnnl_primitive_attr_t *attr, float sum_beta);

// Creates p from pd for the execute arguments arg_ids[0..nargs) (DNNL_ARG_*). pd stays the caller's.
int rcv_dnnl_prim_init(rcv_graph *g, rcv_dnnl_prim *p, const_dnnl_primitive_desc_t pd, const int *arg_ids,
                       int nargs);
// Creates p as a reorder src_md -> dst_md (args FROM, TO); accumulates into dst when beta != 0.
int rcv_dnnl_reorder_init(rcv_graph *g, rcv_dnnl_prim *p, const dnnl_memory_desc_t *src_md,
                          const dnnl_memory_desc_t *dst_md, float beta);
// Runs p with ptr[i] as the storage of arg i and scratchpad as its scratchpad (may be NULL when
// p->scratchpad_bytes is 0). A failure (not expected after a successful prepare) is reported on
// stderr and in rcv_error(); forward/backward return void.
void rcv_dnnl_run(rcv_graph *g, rcv_dnnl_prim *p, void *const *ptr, void *scratchpad);
void rcv_dnnl_prim_free(rcv_dnnl_prim *p);

// Memory descriptors: an activation (N, C, H, W) stored NHWC; a 1-d float vector.
int rcv_dnnl_md_nhwc(dnnl_memory_desc_t *md, rcv_shape s);
// An fp32 activation (N, C, H, W): NHWC, or nChw<b>c when blocked by b (rcv_node.blocked: 0, 8, 16).
int rcv_dnnl_md_act(dnnl_memory_desc_t *md, rcv_shape s, int blocked);
int rcv_dnnl_md_vec(dnnl_memory_desc_t *md, int len);
// The same activation stored as bf16 (the bf16 conv path's rounded copies).
int rcv_dnnl_md_nhwc_bf16(dnnl_memory_desc_t *md, rcv_shape s);
int rcv_cpu_has_bf16(void);

// Bump allocation of a kernel's scratch regions, 64-byte aligned; byte offsets into g->scratch.
static inline size_t rcv_scratch_take(size_t *top, size_t bytes) {
    size_t off = *top;
    *top += (bytes + 63) & ~(size_t)63;
    return off;
}

// dst += src (n floats), OpenMP-parallel.
void rcv_cpu_add_to(float *restrict dst, const float *restrict src, size_t n);

#endif
