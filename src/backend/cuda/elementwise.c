// cuda add, mul (b broadcast), scale_add, normalize.
//   a, y: (N, C, H, W) = (N, HW, C) in memory; b: same, (N, C, 1, 1) (mode 1) or (N, 1, H, W) (mode 2).
#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"

static int bcast_mode(rcv_shape a, rcv_shape b) {
    if (a.c == b.c && a.h == b.h && a.w == b.w) return 0;
    if (b.h == 1 && b.w == 1) return 1;
    return 2;
}

static void binary_forward(rcv_graph *g, rcv_node *n, int mul) {
    rcv_shape s = n->shape, bs = rcv_in_shape(g, n, 1);
    rcv_cu_bcast_fwd(rcv_in(g, n, 0), rcv_in(g, n, 1), n->out, s.n, s.h * s.w, s.c, bcast_mode(s, bs), mul,
                     cu_of(g)->stream);
}

// add: da = dy, db = sum dy over the broadcast dims; mul: da = dy b, db = sum dy a.
// Inputs in index order, so mul(x, x) writes x's grad once and then adds.
static void binary_backward(rcv_graph *g, rcv_node *n, int mul) {
    rcv_shape s = n->shape, bs = rcv_in_shape(g, n, 1);
    cudaStream_t st = cu_of(g)->stream;
    int mode = bcast_mode(s, bs), beta;
    size_t total = rcv_numel(s), HW = (size_t)s.h * s.w;
    const float *a = rcv_in(g, n, 0), *b = rcv_in(g, n, 1), *dy = n->grad;
    float *da = cu_in_grad(g, n, 0, &beta);
    if (da) {
        if (mul) rcv_cu_bcast_mul_da(dy, b, da, s.n, (int)HW, s.c, mode, beta, st);
        else rcv_cu_scale_mul_acc(dy, NULL, 1.0f, da, total, beta, st);
    }
    float *db = cu_in_grad(g, n, 1, &beta);
    if (!db) return;
    const float *f = mul ? a : NULL;
    if (mode == 0) rcv_cu_scale_mul_acc(dy, f, 1.0f, db, total, beta, st);
    else if (mode == 1) rcv_cu_chan_sum(dy, f, db, s.n, HW, s.c, 1.0f, beta, st);
    else rcv_cu_row_sum(dy, f, db, (size_t)s.n * HW, s.c, beta, st);
}

static void add_forward(rcv_graph *g, rcv_node *n) { binary_forward(g, n, 0); }
static void add_backward(rcv_graph *g, rcv_node *n) { binary_backward(g, n, 0); }
static void mul_forward(rcv_graph *g, rcv_node *n) { binary_forward(g, n, 1); }
static void mul_backward(rcv_graph *g, rcv_node *n) { binary_backward(g, n, 1); }
const rcv_kernels rcv_cuda_add = {.forward = add_forward, .backward = add_backward};
const rcv_kernels rcv_cuda_mul = {.forward = mul_forward, .backward = mul_backward};

// y = alpha a + beta2 b; da = alpha dy, db = beta2 dy
static void scale_add_forward(rcv_graph *g, rcv_node *n) {
    rcv_cu_axpby(rcv_in(g, n, 0), rcv_in(g, n, 1), n->attr.loss.alpha, n->attr.loss.beta2, n->out,
                 rcv_numel(n->shape), cu_of(g)->stream);
}
static void scale_add_backward(rcv_graph *g, rcv_node *n) {
    const float coef[2] = {n->attr.loss.alpha, n->attr.loss.beta2};
    for (int i = 0; i < 2; i++) {
        int beta;
        float *dx = cu_in_grad(g, n, i, &beta);
        if (dx) rcv_cu_scale_mul_acc(n->grad, NULL, coef[i], dx, rcv_numel(n->shape), beta, cu_of(g)->stream);
    }
}
const rcv_kernels rcv_cuda_scale_add = {.forward = scale_add_forward, .backward = scale_add_backward};

// y = (x - mean[c]) / std[c], computed as (x - mean) * (1 / std); dx = dy / std.
static rcv_cu_vec4 inv_std(const rcv_norm_attr *a) {
    rcv_cu_vec4 r;
    for (int c = 0; c < 4; c++) r.v[c] = a->std[c] != 0.0f ? 1.0f / a->std[c] : 0.0f;
    return r;
}
static void normalize_forward(rcv_graph *g, rcv_node *n) {
    const rcv_norm_attr *a = &n->attr.norm;
    rcv_cu_vec4 mean;
    for (int c = 0; c < 4; c++) mean.v[c] = a->mean[c];
    rcv_cu_normalize_fwd(rcv_in(g, n, 0), n->out, rcv_numel(n->shape), n->shape.c, mean, inv_std(a),
                         cu_of(g)->stream);
}
static void normalize_backward(rcv_graph *g, rcv_node *n) {
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    if (dx)
        rcv_cu_normalize_bwd(n->grad, dx, rcv_numel(n->shape), n->shape.c, inv_std(&n->attr.norm), beta,
                             cu_of(g)->stream);
}
const rcv_kernels rcv_cuda_normalize = {.forward = normalize_forward, .backward = normalize_backward};
