// Adam and AdamW as torch.optim.Adam / AdamW (single-tensor path):
//   Adam:  g += wd p (L2);           AdamW: p *= 1 - lr wd (decoupled)
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
#include <math.h>

#include "robustcv/optim.h"

void rcv_adam_update(float *p, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                     float eps, float wd, int decoupled, int64_t step) {
    // Bias corrections in double, like PyTorch's Python scalars.
    double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
    const float step_size = (float)((double)lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float l2 = decoupled ? 0.0f : wd, shrink = decoupled ? 1.0f - lr * wd : 1.0f;
    const float a1 = 1.0f - beta1, a2 = 1.0f - beta2;
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] * shrink;
        float g = grad[i] + l2 * pi;
        float mi = beta1 * m[i] + a1 * g;
        float vi = beta2 * v[i] + a2 * g * g;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
