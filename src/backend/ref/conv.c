// ref conv2d: direct loops, PyTorch semantics (cross-correlation; stride,
// zero padding, dilation, groups).
//
// x: (N, C, H, W) NHWC, weight: (O, C/G, kh, kw) OIHW, bias: (O), out: (N, O, Ho, Wo) NHWC.
// out[n,o,oh,ow] = bias[o] + sum_{ci,i,j} w[o,ci,i,j] * x[n, g*Cg+ci, oh*sh-ph+i*dh, ow*sw-pw+j*dw]
// where g = o / (O/G) and Cg = C/G; taps outside the input read zero.
#include "backend/ref/ref.h"

static inline size_t w_at(int Cg, int kh, int kw, int o, int ci, int i, int j) {
    return (((size_t)o * Cg + ci) * kh + i) * kw + j;
}

static void conv2d_forward(rcv_graph *g, rcv_node *n) {
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0), *w = ref_param(g, n, 0), *b = a->has_bias ? ref_param(g, n, 1) : NULL;
    float *y = n->out;
    int Cg = xs.c / a->groups, Og = ys.c / a->groups;
    for (int b_ = 0; b_ < ys.n; b_++)
        for (int oh = 0; oh < ys.h; oh++)
            for (int ow = 0; ow < ys.w; ow++)
                for (int o = 0; o < ys.c; o++) {
                    int gi = o / Og;
                    double acc = b ? b[o] : 0.0;
                    for (int ci = 0; ci < Cg; ci++)
                        for (int i = 0; i < a->kh; i++) {
                            int ih = oh * a->sh - a->ph + i * a->dh;
                            if (ih < 0 || ih >= xs.h) continue;
                            for (int j = 0; j < a->kw; j++) {
                                int iw = ow * a->sw - a->pw + j * a->dw;
                                if (iw < 0 || iw >= xs.w) continue;
                                acc += (double)w[w_at(Cg, a->kh, a->kw, o, ci, i, j)] *
                                       x[ref_at(xs, b_, gi * Cg + ci, ih, iw)];
                            }
                        }
                    y[ref_at(ys, b_, o, oh, ow)] = (float)acc;
                }
}

// dy: (N, O, Ho, Wo). dx by gathering, for each input cell, the output cells whose
// taps read it (oh = (ih + ph - i*dh) / sh when that divides exactly); dw and db
// by summing over (n, oh, ow). Every sum is one double accumulator.
static void conv2d_backward(rcv_graph *g, rcv_node *n) {
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0), *w = ref_param(g, n, 0), *dy = n->grad;
    int Cg = xs.c / a->groups, Og = ys.c / a->groups;

    float *dx = ref_in_grad(g, n, 0);
    if (dx)
        for (int b_ = 0; b_ < xs.n; b_++)
            for (int ih = 0; ih < xs.h; ih++)
                for (int iw = 0; iw < xs.w; iw++)
                    for (int c = 0; c < xs.c; c++) {
                        int gi = c / Cg, ci = c % Cg;
                        double acc = 0;
                        for (int i = 0; i < a->kh; i++) {
                            int th = ih + a->ph - i * a->dh;
                            if (th < 0 || th % a->sh) continue;
                            int oh = th / a->sh;
                            if (oh >= ys.h) continue;
                            for (int j = 0; j < a->kw; j++) {
                                int tw = iw + a->pw - j * a->dw;
                                if (tw < 0 || tw % a->sw) continue;
                                int ow = tw / a->sw;
                                if (ow >= ys.w) continue;
                                for (int o = gi * Og; o < (gi + 1) * Og; o++)
                                    acc += (double)w[w_at(Cg, a->kh, a->kw, o, ci, i, j)] *
                                           dy[ref_at(ys, b_, o, oh, ow)];
                            }
                        }
                        dx[ref_at(xs, b_, c, ih, iw)] += (float)acc;
                    }

    if (g->input_grad_only) return; // attacks want dx only
    float *dw = ref_param_grad(g, n, 0);
    for (int o = 0; o < ys.c; o++) {
        int gi = o / Og;
        for (int ci = 0; ci < Cg; ci++)
            for (int i = 0; i < a->kh; i++)
                for (int j = 0; j < a->kw; j++) {
                    double acc = 0;
                    for (int b_ = 0; b_ < ys.n; b_++)
                        for (int oh = 0; oh < ys.h; oh++) {
                            int ih = oh * a->sh - a->ph + i * a->dh;
                            if (ih < 0 || ih >= xs.h) continue;
                            for (int ow = 0; ow < ys.w; ow++) {
                                int iw = ow * a->sw - a->pw + j * a->dw;
                                if (iw < 0 || iw >= xs.w) continue;
                                acc += (double)dy[ref_at(ys, b_, o, oh, ow)] * x[ref_at(xs, b_, gi * Cg + ci, ih, iw)];
                            }
                        }
                    dw[w_at(Cg, a->kh, a->kw, o, ci, i, j)] += (float)acc;
                }
    }

    if (a->has_bias) {
        float *db = ref_param_grad(g, n, 1);
        for (int o = 0; o < ys.c; o++) {
            double acc = 0;
            for (int b_ = 0; b_ < ys.n; b_++)
                for (int oh = 0; oh < ys.h; oh++)
                    for (int ow = 0; ow < ys.w; ow++) acc += dy[ref_at(ys, b_, o, oh, ow)];
            db[o] += (float)acc;
        }
    }
}

const rcv_kernels rcv_ref_conv2d = {
    .forward = conv2d_forward,
    .backward = conv2d_backward,
};
