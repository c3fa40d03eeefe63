// Device-side optimizer state (m, v) and the chunk table the update kernels walk. The
// state is not tied to a plan's context (re-planning for evaluation keeps it); each call
// takes the current context for its stream.
#include <math.h>
#include <string.h>

#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"
#include "robustcv/error.h"

typedef struct {
    int device;
    float *m, *v;
    size_t n;
    rcv_cuda_chunk *dchunks; // device copy of the last chunk table
    rcv_cuda_chunk *hchunks; // host copy, to notice when it changes (freezing, lr_mult)
    int nc, cap;
} optim_state;

void *rcv_cuda_optim_state_new(void *ctx, size_t n, int has_m, int has_v) {
    cu_ctx *c = ctx;
    optim_state *s = rcv_xcalloc(1, sizeof *s);
    s->device = c->device;
    s->n = n;
    size_t bytes = (n ? n : 1) * sizeof(float);
    if ((has_m && cudaMalloc((void **)&s->m, bytes) != cudaSuccess) ||
        (has_v && cudaMalloc((void **)&s->v, bytes) != cudaSuccess)) {
        cudaGetLastError();
        rcv_fail("cuda: optimizer state of 2 x %zu MiB does not fit on device %d", bytes >> 20, c->device);
        rcv_cuda_optim_state_free(ctx, s);
        return NULL;
    }
    if (s->m) CU_CHECK(cudaMemsetAsync(s->m, 0, bytes, c->stream));
    if (s->v) CU_CHECK(cudaMemsetAsync(s->v, 0, bytes, c->stream));
    return s;
}

void rcv_cuda_optim_state_free(void *ctx, void *state) {
    optim_state *s = state;
    if (!s) return;
    cudaDeviceSynchronize();
    cudaFree(s->m);
    cudaFree(s->v);
    cudaFree(s->dchunks);
    free(s->hchunks);
    free(s);
}

// Rare calls (resume, checkpoint): a device-wide sync on both sides keeps them ordered
// with every stream's kernels.
void rcv_cuda_optim_state_upload(void *ctx, void *state, const float *m, const float *v) {
    optim_state *s = state;
    CU_CHECK(cudaDeviceSynchronize());
    if (m && s->m) CU_CHECK(cudaMemcpy(s->m, m, s->n * sizeof(float), cudaMemcpyHostToDevice));
    if (v && s->v) CU_CHECK(cudaMemcpy(s->v, v, s->n * sizeof(float), cudaMemcpyHostToDevice));
}

void rcv_cuda_optim_state_download(void *ctx, void *state, float *m, float *v) {
    optim_state *s = state;
    CU_CHECK(cudaDeviceSynchronize());
    if (m && s->m) CU_CHECK(cudaMemcpy(m, s->m, s->n * sizeof(float), cudaMemcpyDeviceToHost));
    if (v && s->v) CU_CHECK(cudaMemcpy(v, s->v, s->n * sizeof(float), cudaMemcpyDeviceToHost));
}

// The device chunk table for `chunks`, uploaded only when it differs from the last one.
static const rcv_cuda_chunk *device_chunks(cu_ctx *c, optim_state *s, const rcv_cuda_chunk *chunks, int nc) {
    if (nc == s->nc && s->hchunks && !memcmp(s->hchunks, chunks, (size_t)nc * sizeof *chunks)) return s->dchunks;
    if (nc > s->cap) {
        CU_CHECK(cudaStreamSynchronize(c->stream));
        cudaFree(s->dchunks);
        CU_CHECK(cudaMalloc((void **)&s->dchunks, (size_t)nc * sizeof *chunks));
        s->hchunks = rcv_xrealloc(s->hchunks, (size_t)nc * sizeof *chunks);
        s->cap = nc;
    }
    memcpy(s->hchunks, chunks, (size_t)nc * sizeof *chunks);
    s->nc = nc;
    // From the cached host copy, which lives as long as the table is in use.
    CU_CHECK(cudaMemcpyAsync(s->dchunks, s->hchunks, (size_t)nc * sizeof *chunks, cudaMemcpyHostToDevice, c->stream));
    return s->dchunks;
}

void rcv_cuda_sgd_step(void *ctx, void *state, float *params, const float *grads, const rcv_cuda_chunk *chunks,
                       int n_chunks, float lr, float momentum, float dampening, float wd, int nesterov, int first) {
    cu_ctx *c = ctx;
    optim_state *s = state;
    const rcv_cuda_chunk *dc = device_chunks(c, s, chunks, n_chunks);
    rcv_cu_sgd(params, grads, s->m, dc, n_chunks, lr, momentum, dampening, wd, nesterov, first, c->stream);
}

void rcv_cuda_adam_step(void *ctx, void *state, float *params, const float *grads, const rcv_cuda_chunk *chunks,
                        int n_chunks, float lr, float beta1, float beta2, float eps, float wd, int decoupled,
                        int64_t step) {
    cu_ctx *c = ctx;
    optim_state *s = state;
    const rcv_cuda_chunk *dc = device_chunks(c, s, chunks, n_chunks);
    double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
    rcv_cu_adam(params, grads, s->m, s->v, dc, n_chunks, lr, beta1, beta2, eps, wd, decoupled, (float)((double)lr / bc1),
                (float)sqrt(bc2), c->stream);
}

double rcv_cuda_sumsq(void *ctx, void *state, const float *grads, const rcv_cuda_chunk *chunks, int n_chunks) {
    cu_ctx *c = ctx;
    optim_state tmp = {0}, *s = state ? state : &tmp;
    const rcv_cuda_chunk *dc = device_chunks(c, s, chunks, n_chunks);
    rcv_cu_chunks_sumsq(grads, dc, n_chunks, c->dsum, c->stream);
    double r = 0;
    CU_CHECK(cudaMemcpyAsync(&r, c->dsum, sizeof r, cudaMemcpyDeviceToHost, c->stream));
    CU_CHECK(cudaStreamSynchronize(c->stream));
    if (s == &tmp) {
        cudaFree(tmp.dchunks);
        free(tmp.hchunks);
    }
    return r;
}

void rcv_cuda_scale(void *ctx, void *state, float *grads, const rcv_cuda_chunk *chunks, int n_chunks, float coef) {
    cu_ctx *c = ctx;
    optim_state tmp = {0}, *s = state ? state : &tmp;
    const rcv_cuda_chunk *dc = device_chunks(c, s, chunks, n_chunks);
    rcv_cu_chunks_scale(grads, dc, n_chunks, coef, c->stream);
    if (s == &tmp) {
        CU_CHECK(cudaStreamSynchronize(c->stream));
        cudaFree(tmp.dchunks);
        free(tmp.hchunks);
    }
}
