// ref batchnorm2d and normalize.
#include <math.h>
#include <string.h>

#include "backend/ref/ref.h"

// saved: mean (C), invstd (C), and one flag: 1 when the forward used batch
// statistics (training), 0 when it used the running ones, 2 when they were synchronised
// over ranks (g->bn_allreduce set, dist.h). Backward follows the forward's mode,
// whatever g->training says by then.
static size_t bn_saved_size(const rcv_graph *g, const rcv_node *n) { return 2 * (size_t)n->shape.c + 1; }

// Sync-bn statistics: per-channel sum and sum of squares over this rank's (N, H, W),
// summed over ranks with the element count; mean = S/M, biased var = Q/M - mean^2.
// Fills mean_out, var_out (C) and returns the global count M.
static double bn_sync_stats(rcv_graph *g, rcv_node *n, const float *x, double *mean_out, double *var_out) {
    rcv_shape s = n->shape;
    double acc[2 * s.c + 1];
    memset(acc, 0, sizeof acc);
    size_t rows = (size_t)s.n * s.h * s.w;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < s.c; c++) {
            double v = x[r * s.c + c];
            acc[c] += v;
            acc[s.c + c] += v * v;
        }
    acc[2 * s.c] = (double)rows;
    g->bn_allreduce(g, acc, 2 * (size_t)s.c + 1);
    double M = acc[2 * s.c];
    for (int c = 0; c < s.c; c++) {
        mean_out[c] = acc[c] / M;
        double v = acc[s.c + c] / M - mean_out[c] * mean_out[c];
        var_out[c] = v > 0 ? v : 0;
    }
    return M;
}

// x, y: (N, C, H, W). Training: batch mean and biased variance over (N, H, W);
// running_mean = (1 - m) rm + m mean, running_var = (1 - m) rv + m var * M/(M-1)
// (M = N*H*W; with M == 1 the unbiased estimate is undefined and var is used),
// num_batches_tracked += 1. Eval, or a node with frozen_stats: the running statistics, untouched.
// y = (x - mean) * invstd * weight + bias, invstd = 1 / sqrt(var + eps).
static void bn_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = n->shape;
    const float *x = rcv_in(g, n, 0), *w = ref_param(g, n, 0), *b = ref_param(g, n, 1);
    float *rm = rcv_param_data(g, n->buf[0]), *rv = rcv_param_data(g, n->buf[1]);
    int64_t *nbt = g->ibuffers + g->param_info[n->buf[2]].offset;
    float *mean = n->saved, *invstd = n->saved + s.c;
    float eps = n->attr.bn.eps, m = n->attr.bn.momentum;
    size_t M = (size_t)s.n * s.h * s.w;
    int training = g->training && !n->frozen_stats; // frozen: eval-mode batchnorm inside a training step
    int sync = training && g->bn_allreduce;
    n->saved[2 * s.c] = sync ? 2.0f : training ? 1.0f : 0.0f;
    double smean[sync ? s.c : 1], svar[sync ? s.c : 1];
    if (sync) M = (size_t)bn_sync_stats(g, n, x, smean, svar);
    for (int c = 0; c < s.c; c++) {
        double mu, var;
        if (sync) {
            mu = smean[c];
            var = svar[c];
            double unbiased = M > 1 ? var * (double)M / (double)(M - 1) : var;
            rm[c] = (float)((1.0 - m) * rm[c] + m * mu);
            rv[c] = (float)((1.0 - m) * rv[c] + m * unbiased);
        } else if (training) {
            double sum = 0, sq = 0;
            for (int b_ = 0; b_ < s.n; b_++)
                for (int h = 0; h < s.h; h++)
                    for (int w_ = 0; w_ < s.w; w_++) sum += x[ref_at(s, b_, c, h, w_)];
            mu = sum / (double)M;
            for (int b_ = 0; b_ < s.n; b_++)
                for (int h = 0; h < s.h; h++)
                    for (int w_ = 0; w_ < s.w; w_++) {
                        double d = x[ref_at(s, b_, c, h, w_)] - mu;
                        sq += d * d;
                    }
            var = sq / (double)M;
            double unbiased = M > 1 ? var * (double)M / (double)(M - 1) : var;
            rm[c] = (float)((1.0 - m) * rm[c] + m * mu);
            rv[c] = (float)((1.0 - m) * rv[c] + m * unbiased);
        } else {
            mu = rm[c];
            var = rv[c];
        }
        mean[c] = (float)mu;
        invstd[c] = (float)(1.0 / sqrt(var + eps));
    }
    if (training) (*nbt)++;
    size_t total = rcv_numel(s);
    for (size_t e = 0; e < total; e++) {
        int c = (int)(e % (size_t)s.c);
        n->out[e] = (float)(((double)x[e] - mean[c]) * invstd[c] * w[c] + b[c]);
    }
}

// Training (batch statistics), with xhat = (x - mean) * invstd, dxhat = dy * weight:
//   dx = invstd / M * (M dxhat - sum(dxhat) - xhat sum(dxhat xhat))   (sums over N, H, W)
// Eval (running statistics are constants): dx = dy * weight * invstd.
// Both: dweight += sum(dy xhat), dbias += sum(dy) over this rank's elements.
// Synchronised (flag 2): the two sums in dx and M are summed over ranks first.
static void bn_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = n->shape;
    const float *x = rcv_in(g, n, 0), *w = ref_param(g, n, 0), *dy = n->grad;
    const float *mean = n->saved, *invstd = n->saved + s.c;
    int batch_stats = n->saved[2 * s.c] != 0.0f, sync = n->saved[2 * s.c] == 2.0f;
    float *dw = ref_param_grad(g, n, 0), *db = ref_param_grad(g, n, 1);
    float *dx = ref_in_grad(g, n, 0);
    // acc: sum(dy) (C) | sum(dy xhat) (C) | M
    double acc[2 * s.c + 1];
    for (int c = 0; c < s.c; c++) {
        double sum_dy = 0, sum_dy_xhat = 0;
        for (int b_ = 0; b_ < s.n; b_++)
            for (int h = 0; h < s.h; h++)
                for (int w_ = 0; w_ < s.w; w_++) {
                    size_t e = ref_at(s, b_, c, h, w_);
                    double xhat = ((double)x[e] - mean[c]) * invstd[c];
                    sum_dy += dy[e];
                    sum_dy_xhat += dy[e] * xhat;
                }
        if (!g->input_grad_only) { // attacks want dx only
            dw[c] += (float)sum_dy_xhat;
            db[c] += (float)sum_dy;
        }
        acc[c] = sum_dy;
        acc[s.c + c] = sum_dy_xhat;
    }
    acc[2 * s.c] = (double)s.n * s.h * s.w;
    if (!dx) return;
    if (sync) g->bn_allreduce(g, acc, 2 * (size_t)s.c + 1);
    double M = acc[2 * s.c];
    for (int c = 0; c < s.c; c++) {
        double sum_dy = acc[c], sum_dy_xhat = acc[s.c + c];
        for (int b_ = 0; b_ < s.n; b_++)
            for (int h = 0; h < s.h; h++)
                for (int w_ = 0; w_ < s.w; w_++) {
                    size_t e = ref_at(s, b_, c, h, w_);
                    double v;
                    if (batch_stats) {
                        double xhat = ((double)x[e] - mean[c]) * invstd[c];
                        v = (double)w[c] * invstd[c] / M * (M * dy[e] - sum_dy - xhat * sum_dy_xhat);
                    } else {
                        v = (double)dy[e] * w[c] * invstd[c];
                    }
                    dx[e] += (float)v;
                }
    }
}

const rcv_kernels rcv_ref_batchnorm2d = {
    .forward = bn_forward,
    .backward = bn_backward,
    .saved_size = bn_saved_size,
};

// x, y: (N, C, H, W), C <= 4. y = (x - mean[c]) / std[c] (torchvision's Normalize).
static void normalize_forward(rcv_graph *g, rcv_node *n) {
    const rcv_norm_attr *a = &n->attr.norm;
    const float *x = rcv_in(g, n, 0);
    int C = n->shape.c;
    size_t total = rcv_numel(n->shape);
    for (size_t e = 0; e < total; e++) {
        int c = (int)(e % (size_t)C);
        n->out[e] = (x[e] - a->mean[c]) / a->std[c];
    }
}

// dx = dy / std[c]
static void normalize_backward(rcv_graph *g, rcv_node *n) {
    const rcv_norm_attr *a = &n->attr.norm;
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    int C = n->shape.c;
    size_t total = rcv_numel(n->shape);
    for (size_t e = 0; e < total; e++) dx[e] += n->grad[e] / a->std[(int)(e % (size_t)C)];
}

const rcv_kernels rcv_ref_normalize = {
    .forward = normalize_forward,
    .backward = normalize_backward,
};
