#include "backend/cpu/dnnl_ctx.h"

#include <stdlib.h>

#include "backend/backend.h"
#include "robustcv/error.h"

int rcv_dnnl_check(dnnl_status_t st, const char *what) {
    if (st == dnnl_success) return 0;
    return rcv_fail("oneDNN error %d in %s", (int)st, what);
}

void *rcv_cpu_ctx_new(int threads) {
    (void)threads; // oneDNN follows OpenMP's thread count (omp_set_num_threads by the caller)
    rcv_cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (RCV_DNNL(dnnl_engine_create(&c->engine, dnnl_cpu, 0)) ||
        RCV_DNNL(dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags))) {
        free(c);
        return NULL;
    }
    return c;
}

void rcv_cpu_ctx_free(void *ctx) {
    rcv_cpu_ctx *c = ctx;
    if (!c) return;
    dnnl_stream_destroy(c->stream);
    dnnl_engine_destroy(c->engine);
    free(c);
}
