// ref concat, flatten, nearest and bilinear upsampling.
#include <math.h>

#include "backend/ref/ref.h"

// xs[i]: (N, C_i, H, W) -> y: (N, sum C_i, H, W); input i fills channels [off_i, off_i + C_i).
static void concat_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = n->shape;
    int off = 0;
    for (int k = 0; k < n->n_in; k++) {
        rcv_shape xs = rcv_in_shape(g, n, k);
        const float *x = rcv_in(g, n, k);
        for (int i = 0; i < s.n; i++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    for (int c = 0; c < xs.c; c++) n->out[ref_at(s, i, off + c, h, w)] = x[ref_at(xs, i, c, h, w)];
        off += xs.c;
    }
}

// dx_i = dy[:, off_i : off_i + C_i]
static void concat_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape s = n->shape;
    int off = 0;
    for (int k = 0; k < n->n_in; k++) {
        rcv_shape xs = rcv_in_shape(g, n, k);
        float *dx = ref_in_grad(g, n, k);
        if (dx)
            for (int i = 0; i < s.n; i++)
                for (int h = 0; h < s.h; h++)
                    for (int w = 0; w < s.w; w++)
                        for (int c = 0; c < xs.c; c++)
                            dx[ref_at(xs, i, c, h, w)] += n->grad[ref_at(s, i, off + c, h, w)];
        off += xs.c;
    }
}

const rcv_kernels rcv_ref_concat = {.forward = concat_forward, .backward = concat_backward};

// x: (N, C, H, W) NHWC -> y: (N, C*H*W, 1, 1), feature c*H*W + h*W + w (PyTorch's
// flatten of NCHW), so a permuting copy unless H = W = 1 or C = 1.
static void flatten_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    const float *x = rcv_in(g, n, 0);
    size_t F = (size_t)xs.c * xs.h * xs.w;
    for (int i = 0; i < xs.n; i++)
        for (int c = 0; c < xs.c; c++)
            for (int h = 0; h < xs.h; h++)
                for (int w = 0; w < xs.w; w++)
                    n->out[i * F + ((size_t)c * xs.h + h) * xs.w + w] = x[ref_at(xs, i, c, h, w)];
}

static void flatten_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    size_t F = (size_t)xs.c * xs.h * xs.w;
    for (int i = 0; i < xs.n; i++)
        for (int c = 0; c < xs.c; c++)
            for (int h = 0; h < xs.h; h++)
                for (int w = 0; w < xs.w; w++)
                    dx[ref_at(xs, i, c, h, w)] += n->grad[i * F + ((size_t)c * xs.h + h) * xs.w + w];
}

const rcv_kernels rcv_ref_flatten = {.forward = flatten_forward, .backward = flatten_backward};

// x: (N, C, H, W) -> y: (N, C, sH, sW); y[oh, ow] = x[oh / s, ow / s]. (PyTorch computes
// floor(oh * (float)(1/s)); it gives oh / s for s = 2..16 and widths up to 300, checked.)
static void up_nearest_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0);
    int sc = n->attr.up.scale;
    for (int i = 0; i < ys.n; i++)
        for (int oh = 0; oh < ys.h; oh++)
            for (int ow = 0; ow < ys.w; ow++)
                for (int c = 0; c < ys.c; c++) n->out[ref_at(ys, i, c, oh, ow)] = x[ref_at(xs, i, c, oh / sc, ow / sc)];
}

// dx[h, w] = sum of dy over the s x s block it was copied to
static void up_nearest_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    int sc = n->attr.up.scale;
    for (int i = 0; i < xs.n; i++)
        for (int h = 0; h < xs.h; h++)
            for (int w = 0; w < xs.w; w++)
                for (int c = 0; c < xs.c; c++) {
                    double acc = 0;
                    for (int oh = h * sc; oh < (h + 1) * sc; oh++)
                        for (int ow = w * sc; ow < (w + 1) * sc; ow++) acc += n->grad[ref_at(ys, i, c, oh, ow)];
                    dx[ref_at(xs, i, c, h, w)] += (float)acc;
                }
}

const rcv_kernels rcv_ref_upsample_nearest = {.forward = up_nearest_forward, .backward = up_nearest_backward};

// PyTorch's source index for one axis (area_pixel_compute_source_index with
// F.interpolate(scale_factor=s)): align_corners: src = dst * (in-1)/(out-1)
// (0 when out == 1); else src = max((dst + 0.5) / s - 0.5, 0). Then i0 = floor(src),
// i1 = min(i0 + 1, in - 1), weights (1 - l, l) with l = src - i0.
typedef struct { int i0, i1; double l0, l1; } lerp_ix;

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
    r.l1 = src - r.i0;
    r.l0 = 1.0 - r.l1;
    return r;
}

// x: (N, C, H, W) -> y: (N, C, sH, sW)
// y[oh, ow] = lh0 (lw0 x[h0,w0] + lw1 x[h0,w1]) + lh1 (lw0 x[h1,w0] + lw1 x[h1,w1])
static void up_bilinear_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0);
    int sc = n->attr.up.scale, ac = n->attr.up.align_corners;
    for (int i = 0; i < ys.n; i++)
        for (int oh = 0; oh < ys.h; oh++) {
            lerp_ix ih = bilinear_src(oh, xs.h, ys.h, sc, ac);
            for (int ow = 0; ow < ys.w; ow++) {
                lerp_ix iw = bilinear_src(ow, xs.w, ys.w, sc, ac);
                for (int c = 0; c < ys.c; c++) {
                    double v = ih.l0 * (iw.l0 * x[ref_at(xs, i, c, ih.i0, iw.i0)] + iw.l1 * x[ref_at(xs, i, c, ih.i0, iw.i1)]) +
                               ih.l1 * (iw.l0 * x[ref_at(xs, i, c, ih.i1, iw.i0)] + iw.l1 * x[ref_at(xs, i, c, ih.i1, iw.i1)]);
                    n->out[ref_at(ys, i, c, oh, ow)] = (float)v;
                }
            }
        }
}

// Scatter each dy to its four source cells with the same weights. Summing
// directly into the float dx is fine here: each cell receives at most
// (2s)^2 terms of one sign pattern, and s is a small integer.
static void up_bilinear_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    int sc = n->attr.up.scale, ac = n->attr.up.align_corners;
    for (int i = 0; i < ys.n; i++)
        for (int oh = 0; oh < ys.h; oh++) {
            lerp_ix ih = bilinear_src(oh, xs.h, ys.h, sc, ac);
            for (int ow = 0; ow < ys.w; ow++) {
                lerp_ix iw = bilinear_src(ow, xs.w, ys.w, sc, ac);
                for (int c = 0; c < ys.c; c++) {
                    double d = n->grad[ref_at(ys, i, c, oh, ow)];
                    dx[ref_at(xs, i, c, ih.i0, iw.i0)] += (float)(d * ih.l0 * iw.l0);
                    dx[ref_at(xs, i, c, ih.i0, iw.i1)] += (float)(d * ih.l0 * iw.l1);
                    dx[ref_at(xs, i, c, ih.i1, iw.i0)] += (float)(d * ih.l1 * iw.l0);
                    dx[ref_at(xs, i, c, ih.i1, iw.i1)] += (float)(d * ih.l1 * iw.l1);
                }
            }
        }
}

const rcv_kernels rcv_ref_upsample_bilinear = {.forward = up_bilinear_forward, .backward = up_bilinear_backward};
