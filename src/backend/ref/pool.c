// ref max, average and global average pooling, PyTorch semantics.
#include <math.h>

#include "backend/ref/ref.h"

// saved: per output element, the argmax as h * W + w within its (n, c) input plane
// (a float, exact below 2^24 cells), or -1 for a window with no real cell.
static size_t maxpool_saved_size(const rcv_graph *g, const rcv_node *n) { return rcv_numel(n->shape); }

// x: (N, C, H, W) -> y: (N, C, Ho, Wo). Window of output (oh, ow): rows
// [oh*sh - ph, oh*sh - ph + kh), cols likewise; padded cells are -inf, so only
// real cells compete. Scan h then w; a later cell wins only when strictly
// greater (first max wins ties) or NaN (NaN propagates), like PyTorch's CPU kernel.
static void maxpool_forward(rcv_graph *g, rcv_node *n) {
    const rcv_pool_attr *a = &n->attr.pool;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0);
    for (int b = 0; b < ys.n; b++)
        for (int c = 0; c < ys.c; c++)
            for (int oh = 0; oh < ys.h; oh++)
                for (int ow = 0; ow < ys.w; ow++) {
                    int h0 = oh * a->sh - a->ph, w0 = ow * a->sw - a->pw;
                    int h1 = h0 + a->kh < xs.h ? h0 + a->kh : xs.h;
                    int w1 = w0 + a->kw < xs.w ? w0 + a->kw : xs.w;
                    if (h0 < 0) h0 = 0;
                    if (w0 < 0) w0 = 0;
                    float best = -INFINITY;
                    int arg = h0 < h1 && w0 < w1 ? h0 * xs.w + w0 : -1; // -1: no real cell (the builder rules it out)
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++) {
                            float v = x[ref_at(xs, b, c, h, w)];
                            if (v > best || isnan(v)) {
                                best = v;
                                arg = h * xs.w + w;
                            }
                        }
                    size_t o = ref_at(ys, b, c, oh, ow);
                    n->out[o] = best;
                    n->saved[o] = (float)arg;
                }
}

// dx[argmax] += dy
static void maxpool_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    for (int b = 0; b < ys.n; b++)
        for (int c = 0; c < ys.c; c++)
            for (int oh = 0; oh < ys.h; oh++)
                for (int ow = 0; ow < ys.w; ow++) {
                    size_t o = ref_at(ys, b, c, oh, ow);
                    int arg = (int)n->saved[o];
                    if (arg < 0) continue;
                    dx[ref_at(xs, b, c, arg / xs.w, arg % xs.w)] += n->grad[o];
                }
}

const rcv_kernels rcv_ref_maxpool2d = {
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .saved_size = maxpool_saved_size,
};

// One average-pooling window, as PyTorch's CPU kernel computes it: the window is
// first clipped to the padded input (end = min(start + k, size + pad)), which gives
// the count_include_pad divisor, then clipped to the real input, which gives the
// count_include_pad=0 divisor and the cells summed. Returns 0 for an empty window.
typedef struct { int h0, h1, w0, w1; int divisor; } pool_window;

static pool_window avg_window(const rcv_pool_attr *a, rcv_shape xs, int oh, int ow) {
    pool_window r;
    int h0 = oh * a->sh - a->ph, w0 = ow * a->sw - a->pw;
    int h1 = h0 + a->kh < xs.h + a->ph ? h0 + a->kh : xs.h + a->ph;
    int w1 = w0 + a->kw < xs.w + a->pw ? w0 + a->kw : xs.w + a->pw;
    int padded = (h1 - h0) * (w1 - w0);
    r.h0 = h0 < 0 ? 0 : h0;
    r.w0 = w0 < 0 ? 0 : w0;
    r.h1 = h1 < xs.h ? h1 : xs.h;
    r.w1 = w1 < xs.w ? w1 : xs.w;
    if (r.h0 >= r.h1 || r.w0 >= r.w1) r.divisor = 0;
    else r.divisor = a->count_include_pad ? padded : (r.h1 - r.h0) * (r.w1 - r.w0);
    return r;
}

// x: (N, C, H, W) -> y: (N, C, Ho, Wo); y = sum(window) / divisor (0 for an empty window).
static void avgpool_forward(rcv_graph *g, rcv_node *n) {
    const rcv_pool_attr *a = &n->attr.pool;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0);
    for (int b = 0; b < ys.n; b++)
        for (int c = 0; c < ys.c; c++)
            for (int oh = 0; oh < ys.h; oh++)
                for (int ow = 0; ow < ys.w; ow++) {
                    pool_window r = avg_window(a, xs, oh, ow);
                    double sum = 0;
                    for (int h = r.h0; h < r.h1; h++)
                        for (int w = r.w0; w < r.w1; w++) sum += x[ref_at(xs, b, c, h, w)];
                    n->out[ref_at(ys, b, c, oh, ow)] = r.divisor ? (float)(sum / r.divisor) : 0.0f;
                }
}

// dx[cell] += dy / divisor for every cell of the window
static void avgpool_backward(rcv_graph *g, rcv_node *n) {
    const rcv_pool_attr *a = &n->attr.pool;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    for (int b = 0; b < ys.n; b++)
        for (int c = 0; c < ys.c; c++)
            for (int oh = 0; oh < ys.h; oh++)
                for (int ow = 0; ow < ys.w; ow++) {
                    pool_window r = avg_window(a, xs, oh, ow);
                    if (!r.divisor) continue;
                    float d = (float)((double)n->grad[ref_at(ys, b, c, oh, ow)] / r.divisor);
                    for (int h = r.h0; h < r.h1; h++)
                        for (int w = r.w0; w < r.w1; w++) dx[ref_at(xs, b, c, h, w)] += d;
                }
}

const rcv_kernels rcv_ref_avgpool2d = {.forward = avgpool_forward, .backward = avgpool_backward};

// x: (N, C, H, W) -> y: (N, C, 1, 1), the mean over (H, W).
static void gap_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    const float *x = rcv_in(g, n, 0);
    for (int b = 0; b < xs.n; b++)
        for (int c = 0; c < xs.c; c++) {
            double sum = 0;
            for (int h = 0; h < xs.h; h++)
                for (int w = 0; w < xs.w; w++) sum += x[ref_at(xs, b, c, h, w)];
            n->out[(size_t)b * xs.c + c] = (float)(sum / ((double)xs.h * xs.w));
        }
}

// dx = dy / (H W) broadcast over (H, W)
static void gap_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0);
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    for (int b = 0; b < xs.n; b++)
        for (int c = 0; c < xs.c; c++) {
            float d = (float)((double)n->grad[(size_t)b * xs.c + c] / ((double)xs.h * xs.w));
            for (int h = 0; h < xs.h; h++)
                for (int w = 0; w < xs.w; w++) dx[ref_at(xs, b, c, h, w)] += d;
        }
}

const rcv_kernels rcv_ref_global_avgpool = {.forward = gap_forward, .backward = gap_backward};

// PyTorch's adaptive window along one axis: output i of o averages input [floor(i n / o), ceil((i + 1) n / o)).
static void adaptive_window(int i, int n, int o, int *b, int *e) {
    *b = (int)(((long)i * n) / o);
    *e = (int)(((long)(i + 1) * n + o - 1) / o);
}

// x: (N, C, H, W) -> y: (N, C, oh, ow), each output the mean of its window.
static void aap_forward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0);
    for (int b = 0; b < ys.n; b++)
        for (int c = 0; c < ys.c; c++)
            for (int oh = 0; oh < ys.h; oh++)
                for (int ow = 0; ow < ys.w; ow++) {
                    int h0, h1, w0, w1;
                    adaptive_window(oh, xs.h, ys.h, &h0, &h1);
                    adaptive_window(ow, xs.w, ys.w, &w0, &w1);
                    double sum = 0;
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++) sum += x[ref_at(xs, b, c, h, w)];
                    n->out[ref_at(ys, b, c, oh, ow)] = (float)(sum / ((double)(h1 - h0) * (w1 - w0)));
                }
}

// dx[window] += dy / |window| for every output cell (windows may overlap).
static void aap_backward(rcv_graph *g, rcv_node *n) {
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    float *dx = ref_in_grad(g, n, 0);
    if (!dx) return;
    for (int b = 0; b < ys.n; b++)
        for (int c = 0; c < ys.c; c++)
            for (int oh = 0; oh < ys.h; oh++)
                for (int ow = 0; ow < ys.w; ow++) {
                    int h0, h1, w0, w1;
                    adaptive_window(oh, xs.h, ys.h, &h0, &h1);
                    adaptive_window(ow, xs.w, ys.w, &w0, &w1);
                    double d = n->grad[ref_at(ys, b, c, oh, ow)] / ((double)(h1 - h0) * (w1 - w0));
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++) dx[ref_at(xs, b, c, h, w)] += (float)d;
                }
}

const rcv_kernels rcv_ref_adaptive_avgpool = {.forward = aap_forward, .backward = aap_backward};
