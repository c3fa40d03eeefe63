// SGD as torch.optim.SGD: d = g + wd p; buf = first ? d : momentum buf + (1 - dampening) d;
// d = nesterov ? d + momentum buf : buf; p -= lr d.
#include "robustcv/optim.h"

void rcv_sgd_update(float *p, const float *grad, float *buf, size_t n, float lr, float momentum, float dampening,
                    float wd, int nesterov, int first) {
    if (momentum == 0 || !buf) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) p[i] -= lr * (grad[i] + wd * p[i]);
        return;
    }
    const float damp = 1.0f - dampening;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float d = grad[i] + wd * p[i];
        float b = first ? d : momentum * buf[i] + damp * d;
        buf[i] = b;
        p[i] -= lr * (nesterov ? d + momentum * b : b);
    }
}
