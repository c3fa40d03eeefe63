// Pooling. x (N, C, H, W) NHWC -> y (N, C, Ho, Wo) NHWC.
//
// max: C loops over channel tiles with PyTorch's argmax order (first max wins, NaN
// propagates), so ties route the gradient exactly like ref and PyTorch. On ResNet-18's
// stem pool (128x64x32x32, 3x3 s2 p1) forward takes 2.6 ms against oneDNN's jit NHWC
// pooling's 5.6 ms; backward is on par (4.8 vs 5.0 ms).
// avg: C loops with PyTorch's divisor (count_include_pad counts the explicit
// padding but never the extra ceil_mode cells), vectorized over channels.
// adaptive avg: the same loops on PyTorch's AdaptiveAvgPool2d windows.
// global avg: mean over (H, W) -> (N, C, 1, 1).
// Every loop stays on one thread below RCV_PAR_MIN input elements (batch-1 inference: a parallel
// region's wake-up costs more than the work).
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_util.h"
#include "robustcv/error.h"
#include "robustcv/graph.h"

// ---------------------------------------------------------------- max

// n->saved holds, as bytes, the argmax of each output element: its cell t = i*kw + j in the
// kh x kw window (PyTorch's order: scan h then w, a later cell wins only when strictly
// greater or NaN, so the first max wins ties). Padding never wins (it is -inf).
static size_t maxpool_saved(const rcv_graph *g, const rcv_node *n) { return (rcv_numel(n->shape) + 3) / 4; }

#define MP_TILE 64 // channels per register tile

static int maxpool_prepare(rcv_graph *g, rcv_node *n) {
    if (n->attr.pool.kh * n->attr.pool.kw > 256)
        return rcv_fail("maxpool2d: kernel %dx%d, at most 256 cells on the cpu backend", n->attr.pool.kh,
                        n->attr.pool.kw);
    return 0;
}

// Window of output o along one axis: first real cell lo, end hi, window start st (may be < 0).
static inline void max_window(int o, int k, int s, int p, int in, int *st, int *lo, int *hi) {
    *st = o * s - p;
    *lo = *st < 0 ? 0 : *st;
    *hi = *st + k < in ? *st + k : in;
}

// 2x2 stride 2, no padding, every window inside x (floor mode): the small CNN's and VGG's
// pools. On the blocked (N*C/b, b, H, W) view the generic forward spends its time in
// per-window setup (the small CNN's two pools: 5.2 -> 3.2 ms on one thread). A matching
// backward that writes each cell once measured slower than the generic memset + scatter.
static int pool_2x2(rcv_pool_attr a, rcv_shape xs, rcv_shape ys) {
    return a.kh == 2 && a.kw == 2 && a.sh == 2 && a.sw == 2 && a.ph == 0 && a.pw == 0 && 2 * ys.h <= xs.h &&
           2 * ys.w <= xs.w;
}

// Same argmax rule as the generic loop: cells in order 0 (top left), 1, 2, 3; a later one
// wins when strictly greater or NaN. The comparisons run on 16 channels at a time with the
// argmax as int lanes, narrowed to bytes after: with the byte store in the compared loop GCC 12
// vectorises 64 lanes at a step, more than the blocked view's 16 (or 8) channels hold, and fell back to
// a branch per element (smallcnn b250 eval, one thread: its two pools' forward 32 -> 4 ms).
static void maxpool_2x2_forward(const float *restrict x, float *restrict y, uint8_t *restrict arg, rcv_shape xs,
                                rcv_shape ys) {
    int C = xs.c;
    size_t row = (size_t)xs.w * C;
#pragma omp parallel for collapse(2) schedule(static) if (rcv_numel(xs) > RCV_PAR_MIN)
    for (int b = 0; b < ys.n; b++)
        for (int oh = 0; oh < ys.h; oh++)
            for (int ow = 0; ow < ys.w; ow++) {
                const float *x0 = x + (((size_t)b * xs.h + 2 * oh) * xs.w + 2 * ow) * C, *x1 = x0 + row;
                size_t o = (((size_t)b * ys.h + oh) * ys.w + ow) * C;
                for (int c0 = 0; c0 < C; c0 += 16) {
                    int cn = C - c0 < 16 ? C - c0 : 16;
                    int at[16];
#pragma omp simd
                    for (int c = c0; c < c0 + cn; c++) {
                        float m = x0[c], v;
                        int t = 0;
                        v = x0[C + c];
                        t = v > m || v != v ? 1 : t;
                        m = v > m || v != v ? v : m;
                        v = x1[c];
                        t = v > m || v != v ? 2 : t;
                        m = v > m || v != v ? v : m;
                        v = x1[C + c];
                        t = v > m || v != v ? 3 : t;
                        m = v > m || v != v ? v : m;
                        y[o + c] = m;
                        at[c - c0] = t;
                    }
                    for (int c = 0; c < cn; c++) arg[o + c0 + c] = (uint8_t)at[c];
                }
            }
}

// y[n, oh, ow, c] = max over the window; argmax to saved
static void maxpool_forward(rcv_graph *g, rcv_node *n) {
    rcv_pool_attr a = n->attr.pool;
    rcv_shape xs = rcv_in_lshape(g, n, 0), ys = rcv_lshape(n);
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    uint8_t *arg = (uint8_t *)n->saved;
    int C = xs.c;
    if (pool_2x2(a, xs, ys)) {
        maxpool_2x2_forward(x, y, arg, xs, ys);
        return;
    }
#pragma omp parallel for collapse(2) schedule(static) if (rcv_numel(xs) > RCV_PAR_MIN)
    for (int b = 0; b < ys.n; b++)
        for (int oh = 0; oh < ys.h; oh++) {
            int hs, h0, h1;
            max_window(oh, a.kh, a.sh, a.ph, xs.h, &hs, &h0, &h1);
            for (int ow = 0; ow < ys.w; ow++) {
                int ws, w0, w1;
                max_window(ow, a.kw, a.sw, a.pw, xs.w, &ws, &w0, &w1);
                size_t o = (((size_t)b * ys.h + oh) * ys.w + ow) * C;
                for (int c0 = 0; c0 < C; c0 += MP_TILE) {
                    int cn = C - c0 < MP_TILE ? C - c0 : MP_TILE;
                    float best[MP_TILE];
                    uint8_t at[MP_TILE];
                    uint8_t first = (uint8_t)((h0 - hs) * a.kw + (w0 - ws));
                    for (int c = 0; c < cn; c++) best[c] = -INFINITY, at[c] = first;
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++) {
                            const float *xr = x + (((size_t)b * xs.h + h) * xs.w + w) * C + c0;
                            uint8_t t = (uint8_t)((h - hs) * a.kw + (w - ws));
#pragma omp simd
                            for (int c = 0; c < cn; c++) {
                                float v = xr[c];
                                int take = v > best[c] || v != v;
                                best[c] = take ? v : best[c];
                                at[c] = take ? t : at[c];
                            }
                        }
                    memcpy(y + o + c0, best, cn * sizeof(float));
                    memcpy(arg + o + c0, at, cn);
                }
            }
        }
}

// rcv_graph_infer: the max alone (no argmax for a backward), 16 channels at a time, so the
// compare-and-select vectorises: with the argmax byte stores beside it GCC keeps a branch per
// element (ResNet-18's stem pool, 3x3 s2 p1 on the blocked (64*64/16, 16, 32, 32) view, one
// thread: 19 ms forward, 5.4 ms here). NaN propagates as in forward.
static void maxpool_infer(rcv_graph *g, rcv_node *n) {
    rcv_pool_attr a = n->attr.pool;
    rcv_shape xs = rcv_in_lshape(g, n, 0), ys = rcv_lshape(n);
    if (pool_2x2(a, xs, ys)) {
        maxpool_forward(g, n);
        return;
    }
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    int C = xs.c;
#pragma omp parallel for collapse(2) schedule(static) if (rcv_numel(xs) > RCV_PAR_MIN)
    for (int b = 0; b < ys.n; b++)
        for (int oh = 0; oh < ys.h; oh++) {
            int hs, h0, h1;
            max_window(oh, a.kh, a.sh, a.ph, xs.h, &hs, &h0, &h1);
            for (int ow = 0; ow < ys.w; ow++) {
                int ws, w0, w1;
                max_window(ow, a.kw, a.sw, a.pw, xs.w, &ws, &w0, &w1);
                float *yo = y + (((size_t)b * ys.h + oh) * ys.w + ow) * C;
                for (int c0 = 0; c0 < C; c0 += 16) {
                    int cn = C - c0 < 16 ? C - c0 : 16;
                    float best[16];
                    for (int c = 0; c < 16; c++) best[c] = -INFINITY;
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++) {
                            const float *xr = x + (((size_t)b * xs.h + h) * xs.w + w) * C + c0;
                            if (cn == 16) {
#pragma omp simd
                                for (int c = 0; c < 16; c++) best[c] = xr[c] > best[c] || xr[c] != xr[c] ? xr[c] : best[c];
                            } else if (cn == 8) { // the nChw8c view (AVX2)
#pragma omp simd
                                for (int c = 0; c < 8; c++) best[c] = xr[c] > best[c] || xr[c] != xr[c] ? xr[c] : best[c];
                            } else
                                for (int c = 0; c < cn; c++) best[c] = xr[c] > best[c] || xr[c] != xr[c] ? xr[c] : best[c];
                        }
                    memcpy(yo + c0, best, cn * sizeof(float));
                }
            }
        }
}

// dx[argmax] (+)= dy; one image per thread, so the scatter has no races.
static void maxpool_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    rcv_pool_attr a = n->attr.pool;
    rcv_shape xs = rcv_in_lshape(g, n, 0), ys = rcv_lshape(n);
    const float *dy = n->grad;
    const uint8_t *arg = (const uint8_t *)n->saved;
    int C = xs.c, acc = n->in_beta[0];
    size_t img = (size_t)xs.h * xs.w * C;
#pragma omp parallel for schedule(static) if (rcv_numel(xs) > RCV_PAR_MIN)
    for (int b = 0; b < ys.n; b++) {
        float *dxb = dx + b * img;
        if (!acc) memset(dxb, 0, img * sizeof(float));
        for (int oh = 0; oh < ys.h; oh++)
            for (int ow = 0; ow < ys.w; ow++) {
                size_t o = (((size_t)b * ys.h + oh) * ys.w + ow) * C;
                int hs = oh * a.sh - a.ph, ws = ow * a.sw - a.pw;
                for (int c = 0; c < C; c++) {
                    int t = arg[o + c], h = hs + t / a.kw, w = ws + t % a.kw;
                    dxb[((size_t)h * xs.w + w) * C + c] += dy[o + c];
                }
            }
    }
}

const rcv_kernels rcv_cpu_maxpool2d = {
    .prepare = maxpool_prepare,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .saved_size = maxpool_saved,
    .layout = rcv_cpu_layout_tied,
    .infer = maxpool_infer,
};

// ---------------------------------------------------------------- avg, adaptive avg

// One output index's window along one axis: input cells [lo, hi) and the divisor's length.
typedef struct {
    int lo, hi, div;
} avg_win;

// PyTorch's avg_pool2d window, clipped to the input; with count_include_pad the divisor counts
// the explicit padding (clipped to in + pad: never the extra ceil_mode cells).
static void avg_windows(int k, int s, int p, int in, int out, int include_pad, avg_win *w) {
    for (int o = 0; o < out; o++) {
        int start = o * s - p, end = start + k;
        if (end > in + p) end = in + p;
        w[o].lo = start < 0 ? 0 : start;
        w[o].hi = end > in ? in : end;
        w[o].div = include_pad ? end - start : w[o].hi - w[o].lo;
    }
}

// PyTorch's adaptive window: output i of o averages input [floor(i n / o), ceil((i + 1) n / o)).
static void aap_windows(int in, int out, avg_win *w) {
    for (int i = 0; i < out; i++) {
        w[i].lo = (int)(((long)i * in) / out);
        w[i].hi = (int)(((long)(i + 1) * in + out - 1) / out);
        w[i].div = w[i].hi - w[i].lo;
    }
}

// The node's windows, ys.h rows then ys.w columns (caller frees).
static avg_win *node_windows(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    avg_win *w = rcv_xmalloc(((size_t)ys.h + ys.w) * sizeof *w);
    rcv_pool_attr a = n->attr.pool;
    if (n->op == RCV_OP_ADAPTIVE_AVGPOOL) {
        aap_windows(xs.h, ys.h, w);
        aap_windows(xs.w, ys.w, w + ys.h);
    } else {
        avg_windows(a.kh, a.sh, a.ph, xs.h, ys.h, a.count_include_pad, w);
        avg_windows(a.kw, a.sw, a.pw, xs.w, ys.w, a.count_include_pad, w + ys.h);
    }
    return w;
}

// y[n, oh, ow, c] = sum_window x / divisor; the channel loop innermost (contiguous in NHWC).
static void avg_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    int C = xs.c;
    avg_win *wh = node_windows(g, n), *ww = wh + ys.h;
#pragma omp parallel for collapse(2) schedule(static) if (rcv_numel(xs) > RCV_PAR_MIN)
    for (int b = 0; b < ys.n; b++)
        for (int oh = 0; oh < ys.h; oh++)
            for (int ow = 0; ow < ys.w; ow++) {
                int cnt = wh[oh].div * ww[ow].div;
                float inv = cnt > 0 ? 1.0f / (float)cnt : 0.0f;
                float *yo = y + (((size_t)b * ys.h + oh) * ys.w + ow) * C;
                for (int c = 0; c < C; c++) yo[c] = 0;
                for (int h = wh[oh].lo; h < wh[oh].hi; h++)
                    for (int w = ww[ow].lo; w < ww[ow].hi; w++) {
                        const float *xi = x + (((size_t)b * xs.h + h) * xs.w + w) * C;
#pragma omp simd
                        for (int c = 0; c < C; c++) yo[c] += xi[c];
                    }
#pragma omp simd
                for (int c = 0; c < C; c++) yo[c] *= inv;
            }
    free(wh);
}

// dx[window] (+)= dy / divisor. Windows overlap, so each image's input is written by one thread
// only (parallel over the batch), after zeroing when not accumulating.
static void avg_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *dy = n->grad;
    int C = xs.c, acc = n->in_beta[0];
    size_t img = (size_t)xs.h * xs.w * C;
    avg_win *wh = node_windows(g, n), *ww = wh + ys.h;
#pragma omp parallel for schedule(static) if (rcv_numel(xs) > RCV_PAR_MIN)
    for (int b = 0; b < ys.n; b++) {
        float *dxb = dx + b * img;
        if (!acc) memset(dxb, 0, img * sizeof(float));
        for (int oh = 0; oh < ys.h; oh++)
            for (int ow = 0; ow < ys.w; ow++) {
                int cnt = wh[oh].div * ww[ow].div;
                float inv = cnt > 0 ? 1.0f / (float)cnt : 0.0f;
                const float *go = dy + (((size_t)b * ys.h + oh) * ys.w + ow) * C;
                for (int h = wh[oh].lo; h < wh[oh].hi; h++)
                    for (int w = ww[ow].lo; w < ww[ow].hi; w++) {
                        float *gi = dxb + ((size_t)h * xs.w + w) * C;
#pragma omp simd
                        for (int c = 0; c < C; c++) gi[c] += go[c] * inv;
                    }
            }
    }
    free(wh);
}

const rcv_kernels rcv_cpu_avgpool2d = {
    .forward = avg_forward,
    .backward = avg_backward,
};

// PyTorch's AdaptiveAvgPool2d: the same loops on its own windows.
const rcv_kernels rcv_cpu_adaptive_avgpool = {
    .forward = avg_forward,
    .backward = avg_backward,
};

// ---------------------------------------------------------------- global avg

// y[n, c] = mean_{h,w} x[n, h, w, c]
// On a blocked x the (N*C/16, 16, H, W) view gives y as (N*C/16, 16): the same bytes as (N, C).
static void gap_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_lshape(g, n, 0);
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    int C = xs.c;
    size_t hw = (size_t)xs.h * xs.w;
    float inv = 1.0f / (float)hw;
#pragma omp parallel for schedule(static) if (rcv_numel(xs) > RCV_PAR_MIN)
    for (int b = 0; b < xs.n; b++) {
        float *yb = y + (size_t)b * C;
        const float *xb = x + (size_t)b * hw * C;
        for (int c = 0; c < C; c++) yb[c] = 0;
        for (size_t p = 0; p < hw; p++) {
#pragma omp simd
            for (int c = 0; c < C; c++) yb[c] += xb[p * C + c];
        }
#pragma omp simd
        for (int c = 0; c < C; c++) yb[c] *= inv;
    }
}

static void gap_backward(rcv_graph *g, rcv_node *n) {
    float *dx = rcv_in_grad(g, n, 0);
    if (!dx) return;
    rcv_shape xs = rcv_in_lshape(g, n, 0);
    const float *dy = n->grad;
    int C = xs.c, acc = n->in_beta[0];
    size_t hw = (size_t)xs.h * xs.w;
    float inv = 1.0f / (float)hw;
#pragma omp parallel for schedule(static) if (rcv_numel(xs) > RCV_PAR_MIN)
    for (int b = 0; b < xs.n; b++) {
        const float *gb = dy + (size_t)b * C;
        float *db = dx + (size_t)b * hw * C;
        for (size_t p = 0; p < hw; p++) {
            if (acc) {
#pragma omp simd
                for (int c = 0; c < C; c++) db[p * C + c] += gb[c] * inv;
            } else {
#pragma omp simd
                for (int c = 0; c < C; c++) db[p * C + c] = gb[c] * inv;
            }
        }
    }
}

static rcv_layout_kind gap_layout(const rcv_graph *g, const rcv_node *n) {
    (void)g, (void)n;
    return RCV_LAYOUT_READS;
}

const rcv_kernels rcv_cpu_global_avgpool = {
    .forward = gap_forward,
    .backward = gap_backward,
    .layout = gap_layout,
};
