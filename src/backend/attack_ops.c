// Attack vector ops on a plan's storage (backend.h): the element-wise work of an attack's
// iteration, run where the plan's tensors live, so a cuda attack never copies to the host
// inside its loop. The host loops here are the ref/cpu kernels and define the semantics the
// cuda kernels (src/backend/cuda/attack.cu) reproduce.
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#ifdef RCV_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

static inline float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }
static inline float signf(float v) { return (float)((v > 0) - (v < 0)); }

void rcv_backend_copy(rcv_backend b, void *ctx, void *dst, const void *src, size_t bytes) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_copy(ctx, dst, src, bytes); return; }
#endif
    if (dst != src && bytes) memmove(dst, src, bytes);
}

void rcv_backend_linf_step(rcv_backend b, void *ctx, float *adv, const float *x, const float *g, size_t n,
                           float alpha, float eps, int box) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_linf_step(ctx, adv, x, g, n, alpha, eps, box); return; }
#endif
    for (size_t e = 0; e < n; e++) {
        float a = adv[e] + alpha * signf(g[e]);
        if (eps >= 0 && box) {
            float lo = x[e] - eps, hi = x[e] + eps;
            a = a < lo ? lo : a > hi ? hi : a;
        } else if (eps >= 0) {
            float d = a - x[e];
            d = d < -eps ? -eps : d > eps ? eps : d;
            a = x[e] + d;
        }
        adv[e] = clamp01(a);
    }
}

void rcv_backend_add_clamp01(rcv_backend b, void *ctx, float *adv, const float *x, const float *d, size_t n) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_add_clamp01(ctx, adv, x, d, n); return; }
#endif
    for (size_t e = 0; e < n; e++) adv[e] = clamp01(x[e] + d[e]);
}

void rcv_backend_kl_seed(rcv_backend b, void *ctx, const float *z, const double *p, float *dz, int nb, int rows,
                         int k) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_kl_seed(ctx, z, p, dz, nb, rows, k); return; }
#endif
    for (int i = 0; i < rows; i++) {
        const float *zi = z + (size_t)i * k;
        const double *pi = p + (size_t)i * k;
        float *di = dz + (size_t)i * k;
        if (i >= nb) {
            memset(di, 0, (size_t)k * sizeof(float));
            continue;
        }
        // recipe.c's softmax and trades_kl exactly
        double mx = zi[0], s = 0;
        for (int j = 1; j < k; j++) mx = zi[j] > mx ? zi[j] : mx;
        for (int j = 0; j < k; j++) s += exp((double)zi[j] - mx);
        for (int j = 0; j < k; j++) di[j] = (float)(exp((double)zi[j] - mx) / s - pi[j]);
    }
}

void rcv_backend_ce_seed(rcv_backend b, void *ctx, const float *z, const int32_t *y, float *dz, int nb, int rows,
                         int k, float sgn) {
#ifdef RCV_HAVE_CUDA
    if (b == RCV_BACKEND_CUDA) { rcv_cuda_ce_seed(ctx, z, y, dz, nb, rows, k, sgn); return; }
#endif
    for (int i = 0; i < rows; i++) {
        const float *zi = z + (size_t)i * k;
        float *di = dz + (size_t)i * k;
        if (i >= nb) {
            memset(di, 0, (size_t)k * sizeof(float));
            continue;
        }
        // rcv_ce_seed's arithmetic exactly (src/robust/attack.c)
        float mx = zi[0];
        for (int j = 1; j < k; j++) mx = zi[j] > mx ? zi[j] : mx;
        double sum = 0;
        for (int j = 0; j < k; j++) sum += exp((double)zi[j] - mx);
        for (int j = 0; j < k; j++) di[j] = sgn * (float)(exp((double)zi[j] - mx) / sum - (j == y[i]));
    }
}
