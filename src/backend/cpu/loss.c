// Losses: scalar output n->out[0], upstream gradient n->grad[0]. Rows are
// parallel over the batch; sums are in double (they are small: N x K).
#include <math.h>

#include "backend/cpu/cpu_util.h"

// max and log-sum-exp of z[0..K)
static double logsumexp(const float *z, int K) {
    float m = z[0];
    for (int k = 1; k < K; k++) m = z[k] > m ? z[k] : m;
    double s = 0;
    for (int k = 0; k < K; k++) s += exp((double)z[k] - m);
    return m + log(s);
}

// ---------------------------------------------------------------- cross entropy

// logits z: (N, K, 1, 1); labels (N) int32. q = (1 - ls) onehot + ls / K.
// loss = mean_n [ lse(z_n) - sum_k q_k z_nk ]
static void ce_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    int N = s.n, K = s.c;
    const float *z = rcv_in(g, n, 0);
    const int32_t *y = g->nodes[n->in[1]].idata;
    double ls = n->attr.loss.label_smoothing, total = 0;
#pragma omp parallel for reduction(+ : total) if (N * K > 4096) schedule(static)
    for (int i = 0; i < N; i++) {
        const float *zi = z + (size_t)i * K;
        double sz = 0;
        for (int k = 0; k < K; k++) sz += zi[k];
        total += logsumexp(zi, K) - ls / K * sz - (1.0 - ls) * zi[y[i]];
    }
    n->out[0] = (float)(total / N);
}

// dz_nk = dL / N (softmax(z_n)_k - q_nk)
static void ce_backward(rcv_graph *g, rcv_node *n) {
    float *dz = rcv_in_grad(g, n, 0);
    if (!dz) return;
    rcv_shape s = rcv_in_shape(g, n, 0);
    int N = s.n, K = s.c, acc = n->in_beta[0];
    const float *z = rcv_in(g, n, 0);
    const int32_t *y = g->nodes[n->in[1]].idata;
    float ls = n->attr.loss.label_smoothing, scale = n->grad[0] / N;
    float off = ls / K;
#pragma omp parallel for if (N * K > 4096) schedule(static)
    for (int i = 0; i < N; i++) {
        const float *zi = z + (size_t)i * K;
        float *di = dz + (size_t)i * K;
        float lse = (float)logsumexp(zi, K);
        for (int k = 0; k < K; k++) {
            float q = off + (k == y[i] ? 1.0f - ls : 0.0f);
            RCV_PUT(di[k], scale * (expf(zi[k] - lse) - q), acc);
        }
    }
}

const rcv_kernels rcv_cpu_cross_entropy = {.forward = ce_forward, .backward = ce_backward};

// ---------------------------------------------------------------- kl_div

// p, q logits: (N, K*H*W) rows. P = softmax(p), Q = softmax(q);
// loss = mean_n sum_k P_k (log P_k - log Q_k)
static void kl_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    int N = s.n, K = s.c * s.h * s.w;
    const float *p = rcv_in(g, n, 0), *q = rcv_in(g, n, 1);
    double total = 0;
#pragma omp parallel for reduction(+ : total) if (N * K > 4096) schedule(static)
    for (int i = 0; i < N; i++) {
        const float *pi = p + (size_t)i * K, *qi = q + (size_t)i * K;
        double lsp = logsumexp(pi, K), lsq = logsumexp(qi, K), kl = 0;
        for (int k = 0; k < K; k++) {
            double lp = pi[k] - lsp, lq = qi[k] - lsq;
            kl += exp(lp) * (lp - lq);
        }
        total += kl;
    }
    n->out[0] = (float)(total / N);
}

// dp_j = dL / N P_j (d_j - KL_n), d = log P - log Q;  dq_j = dL / N (Q_j - P_j)
static void kl_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = rcv_in_shape(g, n, 0);
    int N = s.n, K = s.c * s.h * s.w;
    const float *p = rcv_in(g, n, 0), *q = rcv_in(g, n, 1);
    float *dp = rcv_in_grad(g, n, 0), *dq = rcv_in_grad(g, n, 1);
    int ap = n->in_beta[0], aq = n->in_beta[1];
    double scale = (double)n->grad[0] / N;
    // kl_div(x, x): write dp first, then add dq (inputs in index order) -- per row, same order.
#pragma omp parallel for if (N * K > 4096) schedule(static)
    for (int i = 0; i < N; i++) {
        const float *pi = p + (size_t)i * K, *qi = q + (size_t)i * K;
        double lsp = logsumexp(pi, K), lsq = logsumexp(qi, K), kl = 0;
        for (int k = 0; k < K; k++) {
            double lp = pi[k] - lsp;
            kl += exp(lp) * (lp - (qi[k] - lsq));
        }
        if (dp)
            for (int k = 0; k < K; k++) {
                double lp = pi[k] - lsp, lq = qi[k] - lsq;
                RCV_PUT(dp[(size_t)i * K + k], (float)(scale * exp(lp) * ((lp - lq) - kl)), ap);
            }
        if (dq)
            for (int k = 0; k < K; k++) {
                double lp = pi[k] - lsp, lq = qi[k] - lsq;
                RCV_PUT(dq[(size_t)i * K + k], (float)(scale * (exp(lq) - exp(lp))), aq);
            }
    }
}

const rcv_kernels rcv_cpu_kl_div = {.forward = kl_forward, .backward = kl_backward};

// ---------------------------------------------------------------- smooth_l1, mse

// d = pred - target over M elements.
// smooth_l1: mean (|d| < beta ? 0.5 d^2 / beta : |d| - 0.5 beta)  (beta = 0: mean |d|)
static void sl1_forward(rcv_graph *g, rcv_node *n) {
    size_t M = rcv_numel(rcv_in_shape(g, n, 0));
    const float *x = rcv_in(g, n, 0), *t = rcv_in(g, n, 1);
    double beta = n->attr.loss.beta, total = 0;
#pragma omp parallel for simd reduction(+ : total) if (M > RCV_PAR_MIN) schedule(static)
    for (size_t e = 0; e < M; e++) {
        double d = (double)x[e] - t[e], ad = fabs(d);
        total += ad < beta ? 0.5 * d * d / beta : ad - 0.5 * beta;
    }
    n->out[0] = (float)(total / (double)M);
}

// dpred = dL / M (|d| < beta ? d / beta : sign d); dtarget = -dpred
static void sl1_backward(rcv_graph *g, rcv_node *n) {
    size_t M = rcv_numel(rcv_in_shape(g, n, 0));
    const float *x = rcv_in(g, n, 0), *t = rcv_in(g, n, 1);
    float beta = n->attr.loss.beta, scale = (float)((double)n->grad[0] / (double)M);
    for (int j = 0; j < 2; j++) {
        float *dst = rcv_in_grad(g, n, j);
        if (!dst) continue;
        float sg = j == 0 ? scale : -scale;
        // |d| < beta ? d / beta : sign(d)   (beta = 0: sign)
        RCV_PAR_PUT(n->in_beta[j], M, dst, e,
                    sg * (fabsf(x[e] - t[e]) < beta ? (x[e] - t[e]) / beta
                                                    : (float)((x[e] > t[e]) - (x[e] < t[e]))));
    }
}

const rcv_kernels rcv_cpu_smooth_l1 = {.forward = sl1_forward, .backward = sl1_backward};

// mse: mean d^2
static void mse_forward(rcv_graph *g, rcv_node *n) {
    size_t M = rcv_numel(rcv_in_shape(g, n, 0));
    const float *x = rcv_in(g, n, 0), *t = rcv_in(g, n, 1);
    double total = 0;
#pragma omp parallel for simd reduction(+ : total) if (M > RCV_PAR_MIN) schedule(static)
    for (size_t e = 0; e < M; e++) {
        double d = (double)x[e] - t[e];
        total += d * d;
    }
    n->out[0] = (float)(total / (double)M);
}

// dpred = dL 2 d / M; dtarget = -dpred
static void mse_backward(rcv_graph *g, rcv_node *n) {
    size_t M = rcv_numel(rcv_in_shape(g, n, 0));
    const float *x = rcv_in(g, n, 0), *t = rcv_in(g, n, 1);
    float scale = (float)(2.0 * n->grad[0] / (double)M);
    for (int j = 0; j < 2; j++) {
        float *dst = rcv_in_grad(g, n, j);
        if (!dst) continue;
        float sg = j == 0 ? scale : -scale;
        RCV_PAR_PUT(n->in_beta[j], M, dst, e, sg * (x[e] - t[e]));
    }
}

const rcv_kernels rcv_cpu_mse = {.forward = mse_forward, .backward = mse_backward};
