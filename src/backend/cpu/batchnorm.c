// batchnorm2d on the cpu backend: x (N, C, H, W) NHWC -> y, per-channel weight, bias (C).
// OpenMP + SIMD C loops, not oneDNN's primitive.
//
// Why not oneDNN: oneDNN 2.6's batchnorm sums its batch statistics and its backward sums
// (sum dy, sum dy xhat) in float32 over all M = N*H*W rows, so its error grows with M. Measured
// against float64 on (N, 64, H, W) with mean 3 and std 1, M = 2048 / 32768: its forward output
// error is 8.7e-7 / 3.7e-6 and its dweight error 5.5e-5 / 7.0e-4, where PyTorch's NCHW float32
// kernel has 1e-7 / 1e-7 and 1.6e-6 / 3.8e-6 and these loops 1e-7 / 1e-7 and 3e-7 / 1e-6
// (tests/test_ops.c checks them against float64 sums; docs/models.md). Through train-mode
// batchnorm layers those errors reach every earlier gradient (dx uses both sums).
//
// Sums: rows in blocks of 32 summed in float32 (SIMD over channels), the blocks in double,
// so the error does not grow with M (channel_sums).
//
// Forward, training: the batch mean and biased variance from one pass of shifted sums,
// S1 = sum (x - K) and S2 = sum (x - K)^2 with K the mean of the first 32 rows (float sums
// around a shift near the mean lose nothing to cancellation; bn_stats), to n->saved =
// [mean (C) | var (C)] for backward; running stats follow PyTorch:
//   running_mean = (1 - m) running_mean + m mean
//   running_var  = (1 - m) running_var  + m var * M / (M - 1)
// Eval: the running stats. A node with frozen_stats runs in eval mode always (batchnorm in a
// frozen part of a fine-tuned net). Then y = (x - mean) w invstd + b, invstd = 1/sqrt(var + eps).
// Backward uses the mode of the last forward.
//
// Backward, with xhat = (x - mean) invstd, dy masked by the fused ReLU and double-accumulated
// sums over the rows db = sum dy, dw = sum dy xhat:
//   dweight += dw, dbias += db, and
//   training: dx = w invstd (dy - db / M - xhat dw / M)
//   eval:     dx = w invstd dy                       (attacks differentiate eval-mode models)
//
// Fused ReLU (n->fused_relu, set by the planner when a ReLU is the only consumer):
// y = max(bn(x), 0), and forward keeps the mask bn(x) > 0, one byte per element, after the
// statistics in n->saved for backward.
//
// Synchronised batchnorm (training with g->bn_allreduce set, dist.h): the sums (forward: as
// raw moments in double, see bn_stats) are summed over ranks with the count M before use, one
// reduction in forward and one in backward; dweight, dbias take this rank's sums (the
// gradient allreduce sums them).
//
// Layouts: NHWC, or nChw16c when the planner made the node blocked (rcv_node.blocked). The
// loops walk memory in order as "segments" of `width` contiguous channels starting at channel
// seg_c0(q): NHWC has one segment per row (width C, base 0), nChw16c one per (n, C/16 block, h, w)
// (width 16), i.e. the rows of rcv_lshape(n). The mask has x's layout.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_util.h"
#include "robustcv/error.h"

#define RCV_BN_PAR_MIN 32768
#define BN_BLOCK_ROWS 32

typedef struct {
    int last_training, last_sync;
    int nt;              // threads the partial sums have room for
    double *acc;         // 2C sums (channel_sums' s1 | s2), then the count M
    double *dpart;       // per thread: 2C double sums
    float *fpart;        // per thread: 2C float sums of one block of rows
    float *zero, *shift; // C zeros; C: the forward's shift K
    float *ka, *kb, *kc; // per channel: forward y = (x - mean) ka + kb; backward dx = ka dy - kb (x - mean) - kc
} bn_state;

// [mean (C) | var (C) | fused: ReLU mask, one byte per element]
static size_t bn_saved(const rcv_graph *g, const rcv_node *n) {
    (void)g;
    return 2 * (size_t)n->shape.c + (n->fused_relu ? (rcv_numel(n->shape) + 3) / 4 : 0);
}

// The memory of x, y, dx, dy, mask as segments: q < segs, elements q*width .. q*width+width-1.
typedef struct {
    size_t segs, hw;
    int width, cb; // cb: channel blocks when blocked, else 0
} bn_view;

static bn_view bn_view_of(const rcv_node *n) {
    rcv_shape ls = rcv_lshape(n);
    bn_view v = {(size_t)ls.n * ls.h * ls.w, (size_t)ls.h * ls.w, ls.c, n->blocked ? n->shape.c / 16 : 0};
    return v;
}

static inline int seg_c0(const bn_view *v, size_t q) { return v->cb ? (int)((q / v->hw) % (size_t)v->cb) * 16 : 0; }

// Element (row r = (n, h, w), channel c) of x.
static inline size_t bn_at(const bn_view *v, size_t r, int c) {
    if (!v->cb) return r * (size_t)v->width + (size_t)c;
    size_t img = r / v->hw;
    return ((img * (size_t)v->cb + (size_t)(c / 16)) * v->hw + r % v->hw) * 16 + (size_t)(c % 16);
}

static uint8_t *bn_mask(const rcv_node *n) { return n->fused_relu ? (uint8_t *)(n->saved + 2 * n->shape.c) : NULL; }

static void bn_release(rcv_node *n) {
    bn_state *s = n->kstate;
    if (!s) return;
    free(s->acc);
    free(s->dpart);
    free(s->fpart);
    free(s->zero);
    free(s->shift);
    free(s->ka);
    free(s->kb);
    free(s->kc);
    free(s);
    n->kstate = NULL;
}

static int bn_prepare(rcv_graph *g, rcv_node *n) {
    (void)g;
    bn_state *s = calloc(1, sizeof *s);
    if (!s) return rcv_fail("batchnorm2d: out of memory");
    n->kstate = s;
    size_t C = (size_t)n->shape.c;
    s->nt = omp_get_max_threads();
    s->acc = calloc(2 * C + 1, sizeof(double));
    s->dpart = calloc((size_t)s->nt * 2 * C, sizeof(double));
    s->fpart = calloc((size_t)s->nt * 2 * C, sizeof(float));
    s->zero = calloc(C, sizeof(float));
    s->shift = calloc(C, sizeof(float));
    s->ka = calloc(C, sizeof(float));
    s->kb = calloc(C, sizeof(float));
    s->kc = calloc(C, sizeof(float));
    if (!s->acc || !s->dpart || !s->fpart || !s->zero || !s->shift || !s->ka || !s->kb || !s->kc)
        return rcv_fail("batchnorm2d: out of memory");
    return 0;
}

// Per-channel sums over the M rows of arrays in x's layout (bn_view):
//   s1[c] = sum_r a'[r, c],   s2[c] = sum_r a'[r, c] (b[r, c] - bm[c]),
//   a' = a - am[c], zero where mask[r, c] == 0 (mask may be NULL).
// Threads take contiguous ranges of segments, sum blocks of BN_BLOCK_ROWS segments in float and the
// blocks in double; their partials are added in thread order (the same result for the same
// thread count).
static void channel_sums(bn_state *s, const rcv_node *n, const float *a, const float *am, const uint8_t *mask,
                         const float *b, const float *bm, double *s1, double *s2) {
    int C = n->shape.c;
    bn_view v = bn_view_of(n);
    size_t segs = v.segs;
    int W = v.width;
    int nt = rcv_numel(n->shape) > RCV_BN_PAR_MIN ? s->nt : 1;
    if (nt > omp_get_max_threads()) nt = omp_get_max_threads();
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), tn = omp_get_num_threads();
        double *d1 = s->dpart + (size_t)t * 2 * C, *d2 = d1 + C;
        float *f1 = s->fpart + (size_t)t * 2 * C, *f2 = f1 + C;
        memset(d1, 0, 2 * (size_t)C * sizeof(double));
        size_t q0 = segs * t / tn, q1 = segs * (t + 1) / tn;
        // A float block: at most BN_BLOCK_ROWS segments of one channel base c0.
        for (size_t qb = q0; qb < q1;) {
            int c0 = seg_c0(&v, qb);
            size_t qe = qb + BN_BLOCK_ROWS < q1 ? qb + BN_BLOCK_ROWS : q1;
            if (v.cb) {
                size_t end_block = (qb / v.hw + 1) * v.hw; // the next channel block starts there
                if (qe > end_block) qe = end_block;
            }
            float *g1 = f1 + c0, *g2 = f2 + c0;
            const float *amc = am + c0, *bmc = bm + c0;
            memset(g1, 0, (size_t)W * sizeof(float));
            memset(g2, 0, (size_t)W * sizeof(float));
            for (size_t q = qb; q < qe; q++) {
                const float *ar = a + q * W, *br = b + q * W;
                if (mask) {
                    const uint8_t *mr = mask + q * W;
#pragma omp simd
                    for (int j = 0; j < W; j++) {
                        float u = mr[j] ? ar[j] - amc[j] : 0.0f;
                        g1[j] += u;
                        g2[j] += u * (br[j] - bmc[j]);
                    }
                } else {
#pragma omp simd
                    for (int j = 0; j < W; j++) {
                        float u = ar[j] - amc[j];
                        g1[j] += u;
                        g2[j] += u * (br[j] - bmc[j]);
                    }
                }
            }
            for (int j = 0; j < W; j++) d1[c0 + j] += g1[j], d2[c0 + j] += g2[j];
            qb = qe;
        }
    }
    for (int c = 0; c < C; c++) {
        double x1 = 0, x2 = 0;
        for (int t = 0; t < nt; t++) x1 += s->dpart[(size_t)t * 2 * C + c], x2 += s->dpart[(size_t)t * 2 * C + C + c];
        s1[c] = x1, s2[c] = x2;
    }
}

// Training statistics into mean, var (C); returns M (over all ranks for sync-bn). The shifted
// sums become raw moments in double, sum x = S1 + K M and sum x^2 = S2 + 2 K S1 + K^2 M, which
// ranks can add (one reduction) and whose difference E[x^2] - E[x]^2 cancels only in double.
static double bn_stats(rcv_graph *g, rcv_node *n, float *mean, float *var) {
    bn_state *s = n->kstate;
    int C = n->shape.c;
    size_t rows = (size_t)n->shape.n * n->shape.h * n->shape.w, k = rows < BN_BLOCK_ROWS ? rows : BN_BLOCK_ROWS;
    const float *x = rcv_in(g, n, 0);
    double *acc = s->acc, Mr = (double)rows;
    float *K = s->shift;
    bn_view v = bn_view_of(n);
    for (int c = 0; c < C; c++) { // K = the mean of the first rows
        double m = 0;
        for (size_t r = 0; r < k; r++) m += x[bn_at(&v, r, c)];
        K[c] = (float)(m / (double)k);
    }
    channel_sums(s, n, x, K, NULL, x, K, acc, acc + C);
    for (int c = 0; c < C; c++) {
        double s1 = acc[c], s2 = acc[C + c], kc = K[c];
        acc[c] = s1 + kc * Mr;
        acc[C + c] = s2 + 2 * kc * s1 + kc * kc * Mr;
    }
    acc[2 * C] = Mr;
    if (s->last_sync) g->bn_allreduce(g, acc, 2 * (size_t)C + 1);
    double M = acc[2 * C];
    for (int c = 0; c < C; c++) {
        double mu = acc[c] / M, v = acc[C + c] / M - mu * mu;
        mean[c] = (float)mu;
        var[c] = (float)(v > 0 ? v : 0);
    }
    return M;
}

static void bn_forward(rcv_graph *g, rcv_node *n) {
    bn_state *s = n->kstate;
    int C = n->shape.c;
    const float *w = rcv_param_data(g, n->param[0]), *b = rcv_param_data(g, n->param[1]);
    float *rm = rcv_param_data(g, n->buf[0]), *rv = rcv_param_data(g, n->buf[1]);
    s->last_training = g->training && !n->frozen_stats; // frozen: running stats, not updated
    s->last_sync = s->last_training && g->bn_allreduce;
    const float *mean = rm, *var = rv;
    if (s->last_training) {
        float *bm = n->saved, *bv = n->saved + C;
        double M = bn_stats(g, n, bm, bv);
        float m = n->attr.bn.momentum, unbias = M > 1 ? (float)(M / (M - 1)) : 1.0f;
        for (int c = 0; c < C; c++) {
            rm[c] = (1 - m) * rm[c] + m * bm[c];
            rv[c] = (1 - m) * rv[c] + m * bv[c] * unbias;
        }
        if (n->buf[2] >= 0) g->ibuffers[g->param_info[n->buf[2]].offset] += 1;
        mean = bm, var = bv;
    }
    for (int c = 0; c < C; c++) {
        s->ka[c] = (float)(w[c] / sqrt((double)var[c] + n->attr.bn.eps));
        s->kb[c] = b[c];
    }
    bn_view v = bn_view_of(n);
    int W = v.width;
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    uint8_t *mask = bn_mask(n);
#pragma omp parallel for schedule(static) if (rcv_numel(n->shape) > RCV_BN_PAR_MIN)
    for (size_t q = 0; q < v.segs; q++) {
        int c0 = seg_c0(&v, q);
        const float *xr = x + q * W, *mc = mean + c0, *ka = s->ka + c0, *kb = s->kb + c0;
        float *yr = y + q * W;
        if (mask) {
            uint8_t *mr = mask + q * W;
#pragma omp simd
            for (int j = 0; j < W; j++) {
                float u = (xr[j] - mc[j]) * ka[j] + kb[j];
                mr[j] = u > 0;
                yr[j] = u > 0 ? u : 0.0f;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < W; j++) yr[j] = (xr[j] - mc[j]) * ka[j] + kb[j];
        }
    }
}

static void bn_backward(rcv_graph *g, rcv_node *n) {
    bn_state *s = n->kstate;
    int C = n->shape.c;
    const float *x = rcv_in(g, n, 0), *dy = n->grad;
    const uint8_t *mask = bn_mask(n);
    const float *w = rcv_param_data(g, n->param[0]);
    const float *mean = s->last_training ? n->saved : rcv_param_data(g, n->buf[0]);
    const float *var = s->last_training ? n->saved + C : rcv_param_data(g, n->buf[1]);
    double *acc = s->acc; // [sum dy (C) | sum dy (x - mean) (C) | M]
    channel_sums(s, n, dy, s->zero, mask, x, mean, acc, acc + C);
    float *gw = rcv_param_grad(g, n->param[0]), *gb = rcv_param_grad(g, n->param[1]);
    for (int c = 0; c < C; c++) {
        gw[c] += (float)(acc[C + c] / sqrt((double)var[c] + n->attr.bn.eps));
        gb[c] += (float)acc[c];
    }
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    size_t rows = (size_t)n->shape.n * n->shape.h * n->shape.w;
    acc[2 * C] = (double)rows;
    if (s->last_sync) g->bn_allreduce(g, acc, 2 * (size_t)C + 1);
    double M = acc[2 * C];
    for (int c = 0; c < C; c++) {
        double invstd = 1.0 / sqrt((double)var[c] + n->attr.bn.eps), a = w[c] * invstd;
        s->ka[c] = (float)a;
        // training: dx = a dy - a invstd^2 (sum dy (x - mean)) / M (x - mean) - a (sum dy) / M
        s->kb[c] = s->last_training ? (float)(a * invstd * invstd * acc[C + c] / M) : 0.0f;
        s->kc[c] = s->last_training ? (float)(a * acc[c] / M) : 0.0f;
    }
    int acc_dx = n->in_beta[0];
    bn_view v = bn_view_of(n);
    int W = v.width;
    // dx (=|+=) ka dy - kb (x - mean) - kc, dy masked by the fused ReLU
#pragma omp parallel for schedule(static) if (rcv_numel(n->shape) > RCV_BN_PAR_MIN)
    for (size_t q = 0; q < v.segs; q++) {
        int c0 = seg_c0(&v, q);
        const float *ka = s->ka + c0, *kb = s->kb + c0, *kc = s->kc + c0, *mc = mean + c0;
        float *d = dx + q * W;
        const float *xr = x + q * W, *gr = dy + q * W;
        const uint8_t *mr = mask ? mask + q * W : NULL;
        if (mr && acc_dx) {
#pragma omp simd
            for (int j = 0; j < W; j++) d[j] += (mr[j] ? ka[j] * gr[j] : 0.0f) - kb[j] * (xr[j] - mc[j]) - kc[j];
        } else if (mr) {
#pragma omp simd
            for (int j = 0; j < W; j++) d[j] = (mr[j] ? ka[j] * gr[j] : 0.0f) - kb[j] * (xr[j] - mc[j]) - kc[j];
        } else if (acc_dx) {
#pragma omp simd
            for (int j = 0; j < W; j++) d[j] += ka[j] * gr[j] - kb[j] * (xr[j] - mc[j]) - kc[j];
        } else {
#pragma omp simd
            for (int j = 0; j < W; j++) d[j] = ka[j] * gr[j] - kb[j] * (xr[j] - mc[j]) - kc[j];
        }
    }
}

const rcv_kernels rcv_cpu_batchnorm2d = {
    .prepare = bn_prepare,
    .forward = bn_forward,
    .backward = bn_backward,
    .release = bn_release,
    .saved_size = bn_saved,
    .layout = rcv_cpu_layout_tied,
};
