// Binary elementwise ops and normalize, OpenMP + SIMD loops on NHWC.
//   add:       y = a + b       b: same shape, (N, C, 1, 1) or (N, 1, H, W)
//   mul:       y = a * b       same broadcast
//   scale_add: y = alpha a + beta b
//   normalize: y = (x - mean[c]) / std[c]
#include <string.h>

#include "backend/cpu/cpu_util.h"

// a: (N, P, C) with P = H*W; b per broadcast mode. op: 0 add, 1 mul.
static void binary_forward(rcv_graph *g, rcv_node *n, int op) {
    rcv_shape sa = rcv_in_shape(g, n, 0), sb = rcv_in_shape(g, n, 1);
    const float *a = rcv_in(g, n, 0), *b = rcv_in(g, n, 1);
    float *y = n->out;
    size_t total = rcv_numel(sa), P = (size_t)sa.h * sa.w, rows = (size_t)sa.n * P;
    int C = sa.c;
    switch (rcv_bc_of(sa, sb)) {
    case RCV_BC_SAME:
        if (op == 0) {
#pragma omp parallel for simd if (total > RCV_PAR_MIN) schedule(static)
            for (size_t i = 0; i < total; i++) y[i] = a[i] + b[i];
        } else {
#pragma omp parallel for simd if (total > RCV_PAR_MIN) schedule(static)
            for (size_t i = 0; i < total; i++) y[i] = a[i] * b[i];
        }
        break;
    case RCV_BC_SPATIAL: // b[n, c]
#pragma omp parallel for if (total > RCV_PAR_MIN) schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const float *ar = a + r * C, *br = b + (r / P) * C;
            float *yr = y + r * C;
            if (op == 0) {
#pragma omp simd
                for (int c = 0; c < C; c++) yr[c] = ar[c] + br[c];
            } else {
#pragma omp simd
                for (int c = 0; c < C; c++) yr[c] = ar[c] * br[c];
            }
        }
        break;
    case RCV_BC_CHANNEL: // b[n, p]
#pragma omp parallel for if (total > RCV_PAR_MIN) schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const float *ar = a + r * C;
            float bv = b[r], *yr = y + r * C;
            if (op == 0) {
#pragma omp simd
                for (int c = 0; c < C; c++) yr[c] = ar[c] + bv;
            } else {
#pragma omp simd
                for (int c = 0; c < C; c++) yr[c] = ar[c] * bv;
            }
        }
        break;
    }
}

// da (+)= dy * (op ? b : 1);  db (+)= reduce_bc(dy * (op ? a : 1)). Inputs in index order,
// so mul(x, x) writes x's grad once and then adds.
static void binary_backward(rcv_graph *g, rcv_node *n, int op) {
    rcv_shape sa = rcv_in_shape(g, n, 0), sb = rcv_in_shape(g, n, 1);
    const float *a = rcv_in(g, n, 0), *b = rcv_in(g, n, 1), *dy = n->grad;
    float *da = rcv_in_grad(g, n, 0), *db = rcv_in_grad(g, n, 1);
    size_t total = rcv_numel(sa), P = (size_t)sa.h * sa.w, rows = (size_t)sa.n * P;
    int C = sa.c;
    rcv_bc bc = rcv_bc_of(sa, sb);
    if (da) {
        int acc = n->in_beta[0];
        if (op == 0) {
            RCV_PAR_PUT(acc, total, da, i, dy[i]);
        } else if (bc == RCV_BC_SAME) {
            RCV_PAR_PUT(acc, total, da, i, dy[i] * b[i]);
        } else {
#pragma omp parallel for if (total > RCV_PAR_MIN) schedule(static)
            for (size_t r = 0; r < rows; r++) {
                const float *gr = dy + r * C;
                float *dr = da + r * C;
                if (bc == RCV_BC_SPATIAL) {
                    const float *br = b + (r / P) * C;
                    RCV_SIMD_PUT(acc, C, dr, c, gr[c] * br[c]);
                } else {
                    float bv = b[r];
                    RCV_SIMD_PUT(acc, C, dr, c, gr[c] * bv);
                }
            }
        }
    }
    if (db) {
        int acc = n->in_beta[1];
        switch (bc) {
        case RCV_BC_SAME:
            if (op) RCV_PAR_PUT(acc, total, db, i, dy[i] * a[i]);
            else RCV_PAR_PUT(acc, total, db, i, dy[i]);
            break;
        case RCV_BC_SPATIAL: // db[n, c] = sum_p dy[n, p, c] (* a)
#pragma omp parallel for if (total > RCV_PAR_MIN) schedule(static)
            for (int i = 0; i < sa.n; i++) {
                float *dbr = db + (size_t)i * C;
                if (!acc) memset(dbr, 0, C * sizeof(float));
                for (size_t p = 0; p < P; p++) {
                    const float *gr = dy + ((size_t)i * P + p) * C, *ar = a + ((size_t)i * P + p) * C;
                    if (op) {
#pragma omp simd
                        for (int c = 0; c < C; c++) dbr[c] += gr[c] * ar[c];
                    } else {
#pragma omp simd
                        for (int c = 0; c < C; c++) dbr[c] += gr[c];
                    }
                }
            }
            break;
        case RCV_BC_CHANNEL: // db[n, p] = sum_c dy[n, p, c] (* a)
#pragma omp parallel for if (total > RCV_PAR_MIN) schedule(static)
            for (size_t r = 0; r < rows; r++) {
                const float *gr = dy + r * C, *ar = a + r * C;
                float s = 0;
                if (op) {
#pragma omp simd reduction(+ : s)
                    for (int c = 0; c < C; c++) s += gr[c] * ar[c];
                } else {
#pragma omp simd reduction(+ : s)
                    for (int c = 0; c < C; c++) s += gr[c];
                }
                RCV_PUT(db[r], s, acc);
            }
            break;
        }
    }
}

static void add_forward(rcv_graph *g, rcv_node *n) { binary_forward(g, n, 0); }
static void add_backward(rcv_graph *g, rcv_node *n) { binary_backward(g, n, 0); }
static void mul_forward(rcv_graph *g, rcv_node *n) { binary_forward(g, n, 1); }
static void mul_backward(rcv_graph *g, rcv_node *n) { binary_backward(g, n, 1); }

// rcv_graph_infer with the add's only consumer, a ReLU, folded in (n->fold, same shapes): the
// ReLU's out = max(a + b, 0) in one pass (ReLU's rule: NaN gives 0), the add's own out unwritten.
static int add_prepare(rcv_graph *g, rcv_node *n) {
    rcv_shape sa = rcv_in_shape(g, n, 0), sb = rcv_in_shape(g, n, 1);
    if (n->fold >= 0 && rcv_bc_of(sa, sb) == RCV_BC_SAME) g->nodes[n->fold].folded = 1;
    return 0;
}

static void add_infer(rcv_graph *g, rcv_node *n) {
    if (n->fold < 0 || !g->nodes[n->fold].folded) {
        add_forward(g, n);
        return;
    }
    const float *a = rcv_in(g, n, 0), *b = rcv_in(g, n, 1);
    float *y = g->nodes[n->fold].out;
    size_t total = rcv_numel(n->shape);
#pragma omp parallel for simd if (total > RCV_PAR_MIN) schedule(static)
    for (size_t i = 0; i < total; i++) {
        float v = a[i] + b[i];
        y[i] = v > 0 ? v : 0.0f;
    }
}

const rcv_kernels rcv_cpu_add = {
    .prepare = add_prepare,
    .forward = add_forward,
    .backward = add_backward,
    .layout = rcv_cpu_layout_same,
    .infer = add_infer,
};
const rcv_kernels rcv_cpu_mul = {.forward = mul_forward, .backward = mul_backward, .layout = rcv_cpu_layout_same};

// ---------------------------------------------------------------- scale_add

static void scale_add_forward(rcv_graph *g, rcv_node *n) {
    const float *a = rcv_in(g, n, 0), *b = rcv_in(g, n, 1);
    float al = n->attr.loss.alpha, be = n->attr.loss.beta2, *y = n->out;
    size_t total = rcv_numel(n->shape);
#pragma omp parallel for simd if (total > RCV_PAR_MIN) schedule(static)
    for (size_t i = 0; i < total; i++) y[i] = al * a[i] + be * b[i];
}

static void scale_add_backward(rcv_graph *g, rcv_node *n) {
    const float *dy = n->grad;
    size_t total = rcv_numel(n->shape);
    for (int j = 0; j < 2; j++) {
        float *d = rcv_in_grad(g, n, j);
        if (!d) continue;
        float s = j == 0 ? n->attr.loss.alpha : n->attr.loss.beta2;
        RCV_PAR_PUT(n->in_beta[j], total, d, i, s * dy[i]);
    }
}

const rcv_kernels rcv_cpu_scale_add = {
    .forward = scale_add_forward, .backward = scale_add_backward, .layout = rcv_cpu_layout_tied};

// ---------------------------------------------------------------- normalize

static void normalize_forward(rcv_graph *g, rcv_node *n) {
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    int C = n->shape.c;
    const float *m = n->attr.norm.mean, *sd = n->attr.norm.std;
    size_t rows = rcv_numel(n->shape) / C;
#pragma omp parallel for if (rows * C > RCV_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) y[r * C + c] = (x[r * C + c] - m[c]) / sd[c];
}

static void normalize_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    const float *dy = n->grad;
    int C = n->shape.c, acc = n->in_beta[0];
    const float *sd = n->attr.norm.std;
    size_t rows = rcv_numel(n->shape) / C;
#pragma omp parallel for if (rows * C > RCV_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) RCV_SIMD_PUT(acc, C, dx + r * C, c, dy[r * C + c] / sd[c]);
}

const rcv_kernels rcv_cpu_normalize = {.forward = normalize_forward, .backward = normalize_backward};
