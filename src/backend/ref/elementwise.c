// ref add, mul (b broadcast), scale_add.
//
// a, y: (N, C, H, W). b: (N, C, H, W), or (N, C, 1, 1) (broadcast over space), or
// (N, 1, H, W) (broadcast over channels). A dimension of b of size 1 is broadcast
// along a's; the backward sums dy over exactly those dimensions.
#include "backend/ref/ref.h"

// Offset in b of a's element (n, c, h, w).
static inline size_t b_at(rcv_shape bs, int n, int c, int h, int w) {
    return ref_at(bs, n, bs.c == 1 ? 0 : c, bs.h == 1 ? 0 : h, bs.w == 1 ? 0 : w);
}

typedef enum { EW_ADD, EW_MUL } ew_kind;

static void ew_forward(rcv_graph *g, rcv_node *n, ew_kind k) {
    rcv_shape s = n->shape, bs = rcv_in_shape(g, n, 1);
    const float *a = rcv_in(g, n, 0), *b = rcv_in(g, n, 1);
    for (int i = 0; i < s.n; i++)
        for (int h = 0; h < s.h; h++)
            for (int w = 0; w < s.w; w++)
                for (int c = 0; c < s.c; c++) {
                    size_t e = ref_at(s, i, c, h, w);
                    float bv = b[b_at(bs, i, c, h, w)];
                    n->out[e] = k == EW_ADD ? a[e] + bv : a[e] * bv;
                }
}

// add: da = dy, db = sum dy.  mul: da = dy * b, db = sum dy * a.
// Sums run over the broadcast dims: b's element (i, bc, bh, bw) gathers a's
// cells c in [c0, c1), h in [h0, h1), w in [w0, w1).
static void ew_backward(rcv_graph *g, rcv_node *n, ew_kind k) {
    rcv_shape s = n->shape, bs = rcv_in_shape(g, n, 1);
    const float *a = rcv_in(g, n, 0), *b = rcv_in(g, n, 1), *dy = n->grad;
    float *da = ref_in_grad(g, n, 0);
    if (da)
        for (int i = 0; i < s.n; i++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    for (int c = 0; c < s.c; c++) {
                        size_t e = ref_at(s, i, c, h, w);
                        da[e] += k == EW_ADD ? dy[e] : dy[e] * b[b_at(bs, i, c, h, w)];
                    }
    float *db = ref_in_grad(g, n, 1);
    if (db)
        for (int i = 0; i < bs.n; i++)
            for (int bh = 0; bh < bs.h; bh++)
                for (int bw = 0; bw < bs.w; bw++)
                    for (int bc = 0; bc < bs.c; bc++) {
                        int h0 = bs.h == 1 ? 0 : bh, h1 = bs.h == 1 ? s.h : bh + 1;
                        int w0 = bs.w == 1 ? 0 : bw, w1 = bs.w == 1 ? s.w : bw + 1;
                        int c0 = bs.c == 1 ? 0 : bc, c1 = bs.c == 1 ? s.c : bc + 1;
                        double acc = 0;
                        for (int h = h0; h < h1; h++)
                            for (int w = w0; w < w1; w++)
                                for (int c = c0; c < c1; c++) {
                                    size_t e = ref_at(s, i, c, h, w);
                                    acc += k == EW_ADD ? (double)dy[e] : (double)dy[e] * a[e];
                                }
                        db[ref_at(bs, i, bc, bh, bw)] += (float)acc;
                    }
}

static void add_forward(rcv_graph *g, rcv_node *n) { ew_forward(g, n, EW_ADD); }
static void add_backward(rcv_graph *g, rcv_node *n) { ew_backward(g, n, EW_ADD); }
static void mul_forward(rcv_graph *g, rcv_node *n) { ew_forward(g, n, EW_MUL); }
static void mul_backward(rcv_graph *g, rcv_node *n) { ew_backward(g, n, EW_MUL); }

const rcv_kernels rcv_ref_add = {.forward = add_forward, .backward = add_backward};
const rcv_kernels rcv_ref_mul = {.forward = mul_forward, .backward = mul_backward};

// a, b, y: (N, C, H, W). y = alpha a + beta2 b
static void scale_add_forward(rcv_graph *g, rcv_node *n) {
    float alpha = n->attr.loss.alpha, beta = n->attr.loss.beta2;
    const float *a = rcv_in(g, n, 0), *b = rcv_in(g, n, 1);
    size_t total = rcv_numel(n->shape);
    for (size_t e = 0; e < total; e++) n->out[e] = alpha * a[e] + beta * b[e];
}

// da = alpha dy, db = beta2 dy
static void scale_add_backward(rcv_graph *g, rcv_node *n) {
    float alpha = n->attr.loss.alpha, beta = n->attr.loss.beta2;
    size_t total = rcv_numel(n->shape);
    float *da = ref_in_grad(g, n, 0);
    if (da)
        for (size_t e = 0; e < total; e++) da[e] += alpha * n->grad[e];
    float *db = ref_in_grad(g, n, 1);
    if (db)
        for (size_t e = 0; e < total; e++) db[e] += beta * n->grad[e];
}

const rcv_kernels rcv_ref_scale_add = {.forward = scale_add_forward, .backward = scale_add_backward};
