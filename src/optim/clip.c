// Gradient-norm clipping as torch.nn.utils.clip_grad_norm_ (L2, over all trainable parameters).
#include <math.h>
#include <stdlib.h>

#ifdef RCV_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "optim/chunks.h"
#include "robustcv/error.h"
#include "robustcv/optim.h"

// Sum of squares per chunk in parallel, then a serial sum: the same result for any thread count.
static double sum_squares(const rcv_graph *g, rcv_chunk *ch, int nc) {
#ifdef RCV_HAVE_CUDA
    if (g->dgrads) return rcv_cuda_sumsq(g->backend_ctx, NULL, g->dgrads, (const rcv_cuda_chunk *)ch, nc);
#endif
    double *part = rcv_xmalloc((size_t)(nc ? nc : 1) * sizeof(double));
#pragma omp parallel for schedule(dynamic, 4)
    for (int k = 0; k < nc; k++) {
        const float *gr = g->grads + ch[k].offset;
        double s = 0;
        for (size_t i = 0; i < ch[k].n; i++) s += (double)gr[i] * gr[i];
        part[k] = s;
    }
    double total = 0;
    for (int k = 0; k < nc; k++) total += part[k];
    free(part);
    return total;
}

static void scale_chunks(rcv_graph *g, rcv_chunk *ch, int nc, float coef) {
#ifdef RCV_HAVE_CUDA
    if (g->dgrads) {
        rcv_cuda_scale(g->backend_ctx, NULL, g->dgrads, (const rcv_cuda_chunk *)ch, nc, coef);
        return;
    }
#endif
#pragma omp parallel for schedule(dynamic, 4)
    for (int k = 0; k < nc; k++) {
        float *gr = g->grads + ch[k].offset;
        for (size_t i = 0; i < ch[k].n; i++) gr[i] *= coef;
    }
}

float rcv_grad_norm(const rcv_graph *g) {
    rcv_chunk *ch;
    int nc = rcv_optim_chunks(g, &ch);
    float norm = (float)sqrt(sum_squares(g, ch, nc));
    free(ch);
    return norm;
}

float rcv_clip_grad_norm(rcv_graph *g, float max_norm) {
    rcv_chunk *ch;
    int nc = rcv_optim_chunks(g, &ch);
    float norm = (float)sqrt(sum_squares(g, ch, nc));
    if (isfinite(norm)) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f) scale_chunks(g, ch, nc, coef);
    }
    free(ch);
    return norm;
}

void rcv_grad_scale(rcv_graph *g, float coef) {
    rcv_chunk *ch;
    int nc = rcv_optim_chunks(g, &ch);
    scale_chunks(g, ch, nc, coef);
    free(ch);
}
