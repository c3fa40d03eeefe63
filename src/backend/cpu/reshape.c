// concat, flatten, nearest and bilinear upsampling on NHWC, OpenMP loops.
#include <string.h>

#include "backend/cpu/cpu_util.h"

// ---------------------------------------------------------------- concat

// xs[k]: (N, C_k, H, W) -> y: (N, sum C_k, H, W). In NHWC every pixel is a row of
// channels, so input k fills the slice [off_k, off_k + C_k) of each row.
static void concat_forward(rcv_graph *g, rcv_node *n) {
    size_t rows = (size_t)n->shape.n * n->shape.h * n->shape.w;
    int C = n->shape.c;
    float *y = n->out;
#pragma omp parallel for if (rows * C > RCV_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        int off = 0;
        for (int k = 0; k < n->n_in; k++) {
            int ck = rcv_in_shape(g, n, k).c;
            memcpy(y + r * C + off, rcv_in(g, n, k) + r * ck, ck * sizeof(float));
            off += ck;
        }
    }
}

static void concat_backward(rcv_graph *g, rcv_node *n) {
    size_t rows = (size_t)n->shape.n * n->shape.h * n->shape.w;
    int C = n->shape.c, off = 0;
    const float *dy = n->grad;
    // Inputs in index order: concat(x, x) writes x's grad, then adds.
    for (int k = 0; k < n->n_in; k++) {
        int ck = rcv_in_shape(g, n, k).c, acc = n->in_beta[k];
        float *dx = rcv_in_grad(g, n, k);
        if (dx) {
#pragma omp parallel for if (rows * ck > RCV_PAR_MIN) schedule(static)
            for (size_t r = 0; r < rows; r++) {
                const float *gr = dy + r * C + off;
                RCV_SIMD_PUT(acc, ck, dx + r * ck, c, gr[c]);
            }
        }
        off += ck;
    }
}

const rcv_kernels rcv_cpu_concat = {.forward = concat_forward, .backward = concat_backward};

// ---------------------------------------------------------------- flatten

// x: (N, C, H, W) NHWC -> y: (N, C*H*W) with feature c*H*W + h*W + w (PyTorch's order):
// a per-image (HW x C) -> (C x HW) transpose; a copy when H = W = 1 or C = 1.
static void flatten_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    size_t total = rcv_numel(xs), HW = (size_t)xs.h * xs.w, F = HW * xs.c;
    if (HW == 1 || xs.c == 1) {
        memcpy(y, x, total * sizeof(float));
        return;
    }
#pragma omp parallel for collapse(2) if (total > RCV_PAR_MIN) schedule(static)
    for (int i = 0; i < xs.n; i++)
        for (int c = 0; c < xs.c; c++) {
            const float *xi = x + i * F + c;
            float *yi = y + i * F + (size_t)c * HW;
            for (size_t p = 0; p < HW; p++) yi[p] = xi[p * xs.c];
        }
}

static void flatten_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    rcv_shape xs = rcv_in_shape(g, n, 0);
    const float *dy = n->grad;
    size_t total = rcv_numel(xs), HW = (size_t)xs.h * xs.w, F = HW * xs.c;
    int acc = n->in_beta[0];
    if (HW == 1 || xs.c == 1) {
        RCV_PAR_PUT(acc, total, dx, e, dy[e]);
        return;
    }
#pragma omp parallel for collapse(2) if (total > RCV_PAR_MIN) schedule(static)
    for (int i = 0; i < xs.n; i++)
        for (size_t p = 0; p < HW; p++) {
            const float *gi = dy + i * F + p;
            float *di = dx + i * F + p * xs.c;
            for (int c = 0; c < xs.c; c++) RCV_PUT(di[c], gi[(size_t)c * HW], acc);
        }
}

const rcv_kernels rcv_cpu_flatten = {.forward = flatten_forward, .backward = flatten_backward};

// ---------------------------------------------------------------- nearest

// x: (N, C, H, W) -> y: (N, C, sH, sW); y[oh, ow] = x[oh / s, ow / s]
static void up_nearest_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    int s = n->attr.up.scale, C = ys.c;
#pragma omp parallel for collapse(2) if (rcv_numel(ys) > RCV_PAR_MIN) schedule(static)
    for (int i = 0; i < ys.n; i++)
        for (int oh = 0; oh < ys.h; oh++)
            for (int ow = 0; ow < ys.w; ow++)
                memcpy(y + (((size_t)i * ys.h + oh) * ys.w + ow) * C,
                       x + (((size_t)i * xs.h + oh / s) * xs.w + ow / s) * C, C * sizeof(float));
}

// dx[h, w] = sum of dy over its s x s block
static void up_nearest_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *dy = n->grad;
    int s = n->attr.up.scale, C = xs.c, acc = n->in_beta[0];
#pragma omp parallel for collapse(2) if (rcv_numel(ys) > RCV_PAR_MIN) schedule(static)
    for (int i = 0; i < xs.n; i++)
        for (int h = 0; h < xs.h; h++)
            for (int w = 0; w < xs.w; w++) {
                float *d = dx + (((size_t)i * xs.h + h) * xs.w + w) * C;
                if (!acc) memset(d, 0, C * sizeof(float));
                for (int oh = h * s; oh < (h + 1) * s; oh++)
                    for (int ow = w * s; ow < (w + 1) * s; ow++) {
                        const float *gy = dy + (((size_t)i * ys.h + oh) * ys.w + ow) * C;
#pragma omp simd
                        for (int c = 0; c < C; c++) d[c] += gy[c];
                    }
            }
}

const rcv_kernels rcv_cpu_upsample_nearest = {.forward = up_nearest_forward, .backward = up_nearest_backward};

// ---------------------------------------------------------------- bilinear

// PyTorch's source index for one axis with F.interpolate(scale_factor=s):
// align_corners: src = dst (in-1)/(out-1) (0 when out == 1); else
// src = max((dst + 0.5) / s - 0.5, 0). i0 = floor(src), i1 = min(i0 + 1, in - 1).
typedef struct {
    int i0, i1;
    float l0, l1;
} lerp_ix;

static lerp_ix bilinear_src(int dst, int in, int out, int scale, int align_corners) {
    double src;
    if (align_corners) src = out > 1 ? (double)dst * (in - 1) / (out - 1) : 0.0;
    else {
        src = ((double)dst + 0.5) / scale - 0.5;
        if (src < 0) src = 0;
    }
    lerp_ix r;
    r.i0 = (int)src;
    if (r.i0 > in - 1) r.i0 = in - 1;
    r.i1 = r.i0 < in - 1 ? r.i0 + 1 : r.i0;
    r.l1 = (float)(src - r.i0);
    r.l0 = (float)(1.0 - (src - r.i0));
    return r;
}

// y[oh, ow] = lh0 (lw0 x[h0, w0] + lw1 x[h0, w1]) + lh1 (lw0 x[h1, w0] + lw1 x[h1, w1])
static void up_bilinear_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    int sc = n->attr.up.scale, ac = n->attr.up.align_corners, C = ys.c;
#pragma omp parallel for collapse(2) if (rcv_numel(ys) > RCV_PAR_MIN) schedule(static)
    for (int i = 0; i < ys.n; i++)
        for (int oh = 0; oh < ys.h; oh++) {
            lerp_ix ih = bilinear_src(oh, xs.h, ys.h, sc, ac);
            const float *r0 = x + ((size_t)i * xs.h + ih.i0) * xs.w * C;
            const float *r1 = x + ((size_t)i * xs.h + ih.i1) * xs.w * C;
            for (int ow = 0; ow < ys.w; ow++) {
                lerp_ix iw = bilinear_src(ow, xs.w, ys.w, sc, ac);
                const float *a = r0 + (size_t)iw.i0 * C, *b = r0 + (size_t)iw.i1 * C;
                const float *c_ = r1 + (size_t)iw.i0 * C, *d = r1 + (size_t)iw.i1 * C;
                float *yo = y + (((size_t)i * ys.h + oh) * ys.w + ow) * C;
#pragma omp simd
                for (int c = 0; c < C; c++)
                    yo[c] = ih.l0 * (iw.l0 * a[c] + iw.l1 * b[c]) + ih.l1 * (iw.l0 * c_[c] + iw.l1 * d[c]);
            }
        }
}

// Scatter each dy to its four source cells; one image per thread (no races).
static void up_bilinear_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *dy = n->grad;
    int sc = n->attr.up.scale, ac = n->attr.up.align_corners, C = ys.c, acc = n->in_beta[0];
    size_t img = (size_t)xs.h * xs.w * C;
#pragma omp parallel for if (rcv_numel(ys) > RCV_PAR_MIN) schedule(static)
    for (int i = 0; i < ys.n; i++) {
        float *dxi = dx + i * img;
        if (!acc) memset(dxi, 0, img * sizeof(float));
        for (int oh = 0; oh < ys.h; oh++) {
            lerp_ix ih = bilinear_src(oh, xs.h, ys.h, sc, ac);
            float *r0 = dxi + (size_t)ih.i0 * xs.w * C, *r1 = dxi + (size_t)ih.i1 * xs.w * C;
            for (int ow = 0; ow < ys.w; ow++) {
                lerp_ix iw = bilinear_src(ow, xs.w, ys.w, sc, ac);
                const float *go = dy + (((size_t)i * ys.h + oh) * ys.w + ow) * C;
                float w00 = ih.l0 * iw.l0, w01 = ih.l0 * iw.l1, w10 = ih.l1 * iw.l0, w11 = ih.l1 * iw.l1;
                float *a = r0 + (size_t)iw.i0 * C, *b = r0 + (size_t)iw.i1 * C;
                float *c_ = r1 + (size_t)iw.i0 * C, *d = r1 + (size_t)iw.i1 * C;
                // a, b, c_, d may coincide at the borders: four separate passes.
#pragma omp simd
                for (int c = 0; c < C; c++) a[c] += go[c] * w00;
#pragma omp simd
                for (int c = 0; c < C; c++) b[c] += go[c] * w01;
#pragma omp simd
                for (int c = 0; c < C; c++) c_[c] += go[c] * w10;
#pragma omp simd
                for (int c = 0; c < C; c++) d[c] += go[c] * w11;
            }
        }
    }
}

const rcv_kernels rcv_cpu_upsample_bilinear = {.forward = up_bilinear_forward, .backward = up_bilinear_backward};
