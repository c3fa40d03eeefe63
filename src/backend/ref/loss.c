// ref losses: cross_entropy, kl_div, smooth_l1, mse. Each output is a scalar
// (1, 1, 1, 1) in n->out[0]; its upstream gradient is n->grad[0].
#include <math.h>

#include "backend/ref/ref.h"

// log-sum-exp of z[0..K), shifted by the max.
static double logsumexp(const float *z, int K) {
    double m = z[0];
    for (int k = 1; k < K; k++)
        if (z[k] > m) m = z[k];
    double s = 0;
    for (int k = 0; k < K; k++) s += exp((double)z[k] - m);
    return m + log(s);
}

// logits z: (N, K, 1, 1), labels: (N) int32 in [0, K) (validated by the caller).
// q = (1 - ls) onehot(label) + ls / K;  loss = mean_n [ -sum_k q_k log softmax(z_n)_k ]
//                                            = mean_n [ lse(z_n) - sum_k q_k z_nk ]
static void ce_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    int N = s.n, K = s.c;
    const float *z = rcv_in(g, n, 0);
    const int32_t *y = g->nodes[n->in[1]].idata;
    double ls = n->attr.loss.label_smoothing, total = 0;
    for (int i = 0; i < N; i++) {
        const float *zi = z + (size_t)i * K;
        double qz = 0;
        for (int k = 0; k < K; k++) qz += (ls / K + (k == y[i] ? 1.0 - ls : 0.0)) * zi[k];
        total += logsumexp(zi, K) - qz;
    }
    n->out[0] = (float)(total / N);
}

// dz_nk = dL / N * (softmax(z_n)_k - q_nk). The labels get no gradient.
static void ce_backward(rcv_graph *g, rcv_node *n) {
    float *dz = ref_in_grad(g, n, 0);
    if (!dz) return;
    rcv_shape s = rcv_in_shape(g, n, 0);
    int N = s.n, K = s.c;
    const float *z = rcv_in(g, n, 0);
    const int32_t *y = g->nodes[n->in[1]].idata;
    double ls = n->attr.loss.label_smoothing, scale = (double)n->grad[0] / N;
    for (int i = 0; i < N; i++) {
        const float *zi = z + (size_t)i * K;
        double lse = logsumexp(zi, K);
        for (int k = 0; k < K; k++) {
            double q = ls / K + (k == y[i] ? 1.0 - ls : 0.0);
            dz[(size_t)i * K + k] += (float)(scale * (exp(zi[k] - lse) - q));
        }
    }
}

const rcv_kernels rcv_ref_cross_entropy = {.forward = ce_forward, .backward = ce_backward};

// p, q logits: (N, K, H, W), treated as (N, K*H*W) rows in memory order (the builder
// allows any equal shapes; models pass (N, K, 1, 1)).
// P = softmax(p_n), Q = softmax(q_n), d = log P - log Q;  loss = mean_n sum_k P_k d_k
static void kl_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    int N = s.n, K = s.c * s.h * s.w;
    const float *p = rcv_in(g, n, 0), *q = rcv_in(g, n, 1);
    double total = 0;
    for (int i = 0; i < N; i++) {
        const float *pi = p + (size_t)i * K, *qi = q + (size_t)i * K;
        double lsp = logsumexp(pi, K), lsq = logsumexp(qi, K);
        for (int k = 0; k < K; k++) {
            double lp = pi[k] - lsp, lq = qi[k] - lsq;
            total += exp(lp) * (lp - lq);
        }
    }
    n->out[0] = (float)(total / N);
}

// dp_j = dL / N * P_j (d_j - sum_k P_k d_k);  dq_j = dL / N * (Q_j - P_j)
static void kl_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    int N = s.n, K = s.c * s.h * s.w;
    const float *p = rcv_in(g, n, 0), *q = rcv_in(g, n, 1);
    double scale = (double)n->grad[0] / N;
    for (int which = 0; which < 2; which++) {
        float *dst = ref_in_grad(g, n, which);
        if (!dst) continue;
        for (int i = 0; i < N; i++) {
            const float *pi = p + (size_t)i * K, *qi = q + (size_t)i * K;
            double lsp = logsumexp(pi, K), lsq = logsumexp(qi, K), kl = 0;
            for (int k = 0; k < K; k++) {
                double lp = pi[k] - lsp;
                kl += exp(lp) * (lp - (qi[k] - lsq));
            }
            for (int k = 0; k < K; k++) {
                double lp = pi[k] - lsp, lq = qi[k] - lsq, P = exp(lp), v;
                if (which == 0) v = P * ((lp - lq) - kl);
                else v = exp(lq) - P;
                dst[(size_t)i * K + k] += (float)(scale * v);
            }
        }
    }
}

const rcv_kernels rcv_ref_kl_div = {.forward = kl_forward, .backward = kl_backward};

// pred, target: (N, C, H, W), M = N*C*H*W elements, d = pred - target.
// smooth_l1: mean of (|d| < beta ? 0.5 d^2 / beta : |d| - 0.5 beta) (beta = 0: mean |d|).
static void sl1_forward(rcv_graph *g, rcv_node *n) {
    size_t M = rcv_numel(rcv_in_shape(g, n, 0));
    const float *x = rcv_in(g, n, 0), *t = rcv_in(g, n, 1);
    double beta = n->attr.loss.beta, total = 0;
    for (size_t e = 0; e < M; e++) {
        double d = (double)x[e] - t[e], ad = fabs(d);
        total += ad < beta ? 0.5 * d * d / beta : ad - 0.5 * beta;
    }
    n->out[0] = (float)(total / (double)M);
}

// dpred = dL / M * (|d| < beta ? d / beta : sign(d)); dtarget = -dpred
static void sl1_backward(rcv_graph *g, rcv_node *n) {
    size_t M = rcv_numel(rcv_in_shape(g, n, 0));
    const float *x = rcv_in(g, n, 0), *t = rcv_in(g, n, 1);
    double beta = n->attr.loss.beta, scale = (double)n->grad[0] / (double)M;
    for (int which = 0; which < 2; which++) {
        float *dst = ref_in_grad(g, n, which);
        if (!dst) continue;
        double sign = which == 0 ? 1.0 : -1.0;
        for (size_t e = 0; e < M; e++) {
            double d = (double)x[e] - t[e];
            double v = fabs(d) < beta ? d / beta : (d > 0) - (d < 0);
            dst[e] += (float)(sign * scale * v);
        }
    }
}

const rcv_kernels rcv_ref_smooth_l1 = {.forward = sl1_forward, .backward = sl1_backward};

// mse: mean of d^2
static void mse_forward(rcv_graph *g, rcv_node *n) {
    size_t M = rcv_numel(rcv_in_shape(g, n, 0));
    const float *x = rcv_in(g, n, 0), *t = rcv_in(g, n, 1);
    double total = 0;
    for (size_t e = 0; e < M; e++) {
        double d = (double)x[e] - t[e];
        total += d * d;
    }
    n->out[0] = (float)(total / (double)M);
}

// dpred = dL * 2 d / M; dtarget = -dpred
static void mse_backward(rcv_graph *g, rcv_node *n) {
    size_t M = rcv_numel(rcv_in_shape(g, n, 0));
    const float *x = rcv_in(g, n, 0), *t = rcv_in(g, n, 1);
    double scale = 2.0 * n->grad[0] / (double)M;
    for (int which = 0; which < 2; which++) {
        float *dst = ref_in_grad(g, n, which);
        if (!dst) continue;
        double sign = which == 0 ? 1.0 : -1.0;
        for (size_t e = 0; e < M; e++) dst[e] += (float)(sign * scale * ((double)x[e] - t[e]));
    }
}

const rcv_kernels rcv_ref_mse = {.forward = mse_forward, .backward = mse_backward};
