// The cpu backend's per-plan context and oneDNN helpers shared by its kernels.
#ifndef RCV_DNNL_CTX_H
#define RCV_DNNL_CTX_H

#include <dnnl.h>

#include "robustcv/graph.h"

typedef struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
} rcv_cpu_ctx;

static inline rcv_cpu_ctx *rcv_cpu(rcv_graph *g) { return (rcv_cpu_ctx *)g->backend_ctx; }

// Turns a oneDNN status into -1 with a message naming the call; 0 on success.
int rcv_dnnl_check(dnnl_status_t st, const char *what);
#define RCV_DNNL(call) rcv_dnnl_check((call), #call)

#endif
