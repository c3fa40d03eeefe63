// The cuda side of the attack vector ops (backend.h): launches on the plan's stream.
#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"

void rcv_cuda_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    cu_ctx *c = ctx;
    if (bytes && dst != src) CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
}

void rcv_cuda_linf_step(void *ctx, float *adv, const float *x, const float *g, size_t n, float alpha, float eps,
                        int box) {
    rcv_cu_linf_step(adv, x, g, n, alpha, eps, box, ((cu_ctx *)ctx)->stream);
}

void rcv_cuda_add_clamp01(void *ctx, float *adv, const float *x, const float *d, size_t n) {
    rcv_cu_add_clamp01(adv, x, d, n, ((cu_ctx *)ctx)->stream);
}

void rcv_cuda_kl_seed(void *ctx, const float *z, const double *p, float *dz, int nb, int rows, int k) {
    rcv_cu_kl_seed(z, p, dz, nb, rows, k, ((cu_ctx *)ctx)->stream);
}

void rcv_cuda_ce_seed(void *ctx, const float *z, const int32_t *y, float *dz, int nb, int rows, int k, float sgn) {
    rcv_cu_ce_seed(z, y, dz, nb, rows, k, sgn, ((cu_ctx *)ctx)->stream);
}
