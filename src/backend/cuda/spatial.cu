// Spatial kernels with PyTorch's semantics, written out rather than taken from cuDNN:
// cuDNN pooling has no ceil_mode, divides include-pad averages by kh*kw even where
// PyTorch clips the window at the padded border, and does not promise the first-max
// tie rule the ref backend (and PyTorch's CPU kernel) follows. Backward passes gather
// (each input cell sums the outputs that read it), so they honour beta without atomics;
// bilinear's scatter is the exception.
#include <math.h>

#include "backend/cuda/cu_common.cuh"

// Element i of an NHWC tensor (N, C, H, W) -> (b, h, w, c).
__device__ __forceinline__ void nhwc_of(size_t i, int C, int H, int W, int *b, int *h, int *w, int *c) {
    *c = (int)(i % C);
    size_t t = i / C;
    *w = (int)(t % W);
    t /= W;
    *h = (int)(t % H);
    *b = (int)(t / H);
}
__device__ __forceinline__ size_t nhwc_at(int C, int H, int W, int b, int h, int w, int c) {
    return (((size_t)b * H + h) * W + w) * C + c;
}

// Output rows/cols whose (unclipped) window [o*s - p, o*s - p + k) holds input index i.
__device__ __forceinline__ void covering(int i, int k, int s, int p, int out, int *o0, int *o1) {
    int lo = i + p - k + 1; // o*s >= lo
    *o0 = lo <= 0 ? 0 : (lo + s - 1) / s;
    int hi = (i + p) / s;   // o*s <= i + p
    *o1 = hi < out - 1 ? hi : out - 1;
}

__global__ void k_maxpool_fwd(const float *x, float *y, float *arg, rcv_cu_pool p, size_t n) {
    RCV_CU_LOOP(i, n) {
        int b, oh, ow, c;
        nhwc_of(i, p.C, p.Ho, p.Wo, &b, &oh, &ow, &c);
        int h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
        int h1 = h0 + p.kh < p.H ? h0 + p.kh : p.H, w1 = w0 + p.kw < p.W ? w0 + p.kw : p.W;
        if (h0 < 0) h0 = 0;
        if (w0 < 0) w0 = 0;
        float best = -INFINITY;
        int a = h0 < h1 && w0 < w1 ? h0 * p.W + w0 : -1;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) {
                float v = x[nhwc_at(p.C, p.H, p.W, b, h, w, c)];
                if (v > best || isnan(v)) { best = v; a = h * p.W + w; } // first max wins; NaN propagates
            }
        y[i] = best;
        arg[i] = (float)a;
    }
}
__global__ void k_maxpool_bwd(const float *dy, const float *arg, float *dx, rcv_cu_pool p, size_t n, int beta) {
    RCV_CU_LOOP(i, n) {
        int b, h, w, c;
        nhwc_of(i, p.C, p.H, p.W, &b, &h, &w, &c);
        int oh0, oh1, ow0, ow1;
        covering(h, p.kh, p.sh, p.ph, p.Ho, &oh0, &oh1);
        covering(w, p.kw, p.sw, p.pw, p.Wo, &ow0, &ow1);
        float me = (float)(h * p.W + w), acc = 0.0f;
        for (int oh = oh0; oh <= oh1; oh++)
            for (int ow = ow0; ow <= ow1; ow++) {
                size_t o = nhwc_at(p.C, p.Ho, p.Wo, b, oh, ow, c);
                if (arg[o] == me) acc += dy[o];
            }
        rcv_cu_store(dx + i, acc, beta);
    }
}
extern "C" void rcv_cu_maxpool_fwd(const float *x, float *y, float *arg, rcv_cu_pool p, cudaStream_t s) {
    size_t n = (size_t)p.N * p.C * p.Ho * p.Wo;
    k_maxpool_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, y, arg, p, n);
}
extern "C" void rcv_cu_maxpool_bwd(const float *dy, const float *arg, float *dx, rcv_cu_pool p, int beta,
                                   cudaStream_t s) {
    size_t n = (size_t)p.N * p.C * p.H * p.W;
    k_maxpool_bwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, arg, dx, p, n, beta);
}

// PyTorch's average window (see src/backend/ref/pool.c): clipped to the padded input for the
// include-pad divisor, then to the real input for the cells and the exclude-pad divisor.
__device__ __forceinline__ int avg_window(const rcv_cu_pool &p, int oh, int ow, int *h0, int *h1, int *w0, int *w1) {
    int a0 = oh * p.sh - p.ph, b0 = ow * p.sw - p.pw;
    int a1 = a0 + p.kh < p.H + p.ph ? a0 + p.kh : p.H + p.ph;
    int b1 = b0 + p.kw < p.W + p.pw ? b0 + p.kw : p.W + p.pw;
    int padded = (a1 - a0) * (b1 - b0);
    *h0 = a0 < 0 ? 0 : a0;
    *w0 = b0 < 0 ? 0 : b0;
    *h1 = a1 < p.H ? a1 : p.H;
    *w1 = b1 < p.W ? b1 : p.W;
    if (*h0 >= *h1 || *w0 >= *w1) return 0;
    return p.count_include_pad ? padded : (*h1 - *h0) * (*w1 - *w0);
}
__global__ void k_avgpool_fwd(const float *x, float *y, rcv_cu_pool p, size_t n) {
    RCV_CU_LOOP(i, n) {
        int b, oh, ow, c, h0, h1, w0, w1;
        nhwc_of(i, p.C, p.Ho, p.Wo, &b, &oh, &ow, &c);
        int div = avg_window(p, oh, ow, &h0, &h1, &w0, &w1);
        float s = 0.0f;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) s += x[nhwc_at(p.C, p.H, p.W, b, h, w, c)];
        y[i] = div ? s / (float)div : 0.0f;
    }
}
__global__ void k_avgpool_bwd(const float *dy, float *dx, rcv_cu_pool p, size_t n, int beta) {
    RCV_CU_LOOP(i, n) {
        int b, h, w, c;
        nhwc_of(i, p.C, p.H, p.W, &b, &h, &w, &c);
        int oh0, oh1, ow0, ow1;
        covering(h, p.kh, p.sh, p.ph, p.Ho, &oh0, &oh1);
        covering(w, p.kw, p.sw, p.pw, p.Wo, &ow0, &ow1);
        float acc = 0.0f;
        for (int oh = oh0; oh <= oh1; oh++)
            for (int ow = ow0; ow <= ow1; ow++) {
                int h0, h1, w0, w1;
                int div = avg_window(p, oh, ow, &h0, &h1, &w0, &w1);
                if (div && h >= h0 && h < h1 && w >= w0 && w < w1)
                    acc += dy[nhwc_at(p.C, p.Ho, p.Wo, b, oh, ow, c)] / (float)div;
            }
        rcv_cu_store(dx + i, acc, beta);
    }
}
extern "C" void rcv_cu_avgpool_fwd(const float *x, float *y, rcv_cu_pool p, cudaStream_t s) {
    size_t n = (size_t)p.N * p.C * p.Ho * p.Wo;
    k_avgpool_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, y, p, n);
}
extern "C" void rcv_cu_avgpool_bwd(const float *dy, float *dx, rcv_cu_pool p, int beta, cudaStream_t s) {
    size_t n = (size_t)p.N * p.C * p.H * p.W;
    k_avgpool_bwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, dx, p, n, beta);
}

// Nearest: y[oh, ow] = x[oh / s, ow / s]; dx sums the s x s block.
__global__ void k_up_nearest_fwd(const float *x, float *y, int C, int H, int W, int sc, size_t n) {
    RCV_CU_LOOP(i, n) {
        int b, oh, ow, c;
        nhwc_of(i, C, H * sc, W * sc, &b, &oh, &ow, &c);
        y[i] = x[nhwc_at(C, H, W, b, oh / sc, ow / sc, c)];
    }
}
__global__ void k_up_nearest_bwd(const float *dy, float *dx, int C, int H, int W, int sc, size_t n, int beta) {
    RCV_CU_LOOP(i, n) {
        int b, h, w, c;
        nhwc_of(i, C, H, W, &b, &h, &w, &c);
        float acc = 0.0f;
        for (int oh = h * sc; oh < (h + 1) * sc; oh++)
            for (int ow = w * sc; ow < (w + 1) * sc; ow++) acc += dy[nhwc_at(C, H * sc, W * sc, b, oh, ow, c)];
        rcv_cu_store(dx + i, acc, beta);
    }
}
extern "C" void rcv_cu_up_nearest_fwd(const float *x, float *y, int N, int C, int H, int W, int sc, cudaStream_t s) {
    size_t n = (size_t)N * C * H * W * sc * sc;
    k_up_nearest_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, y, C, H, W, sc, n);
}
extern "C" void rcv_cu_up_nearest_bwd(const float *dy, float *dx, int N, int C, int H, int W, int sc, int beta,
                                      cudaStream_t s) {
    size_t n = (size_t)N * C * H * W;
    k_up_nearest_bwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, dx, C, H, W, sc, n, beta);
}

// PyTorch's source index (area_pixel_compute_source_index), as src/backend/ref/reshape.c.
struct lerp_ix { int i0, i1; float l0, l1; };
__device__ __forceinline__ lerp_ix bilinear_src(int dst, int in, int out, int scale, int ac) {
    double src;
    if (ac) src = out > 1 ? (double)dst * (in - 1) / (out - 1) : 0.0;
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
__global__ void k_up_bilinear_fwd(const float *x, float *y, int C, int H, int W, int sc, int ac, size_t n) {
    RCV_CU_LOOP(i, n) {
        int b, oh, ow, c;
        nhwc_of(i, C, H * sc, W * sc, &b, &oh, &ow, &c);
        lerp_ix ih = bilinear_src(oh, H, H * sc, sc, ac), iw = bilinear_src(ow, W, W * sc, sc, ac);
        y[i] = ih.l0 * (iw.l0 * x[nhwc_at(C, H, W, b, ih.i0, iw.i0, c)] + iw.l1 * x[nhwc_at(C, H, W, b, ih.i0, iw.i1, c)]) +
               ih.l1 * (iw.l0 * x[nhwc_at(C, H, W, b, ih.i1, iw.i0, c)] + iw.l1 * x[nhwc_at(C, H, W, b, ih.i1, iw.i1, c)]);
    }
}
__global__ void k_up_bilinear_bwd(const float *dy, float *dx, int C, int H, int W, int sc, int ac, size_t n) {
    RCV_CU_LOOP(i, n) {
        int b, oh, ow, c;
        nhwc_of(i, C, H * sc, W * sc, &b, &oh, &ow, &c);
        lerp_ix ih = bilinear_src(oh, H, H * sc, sc, ac), iw = bilinear_src(ow, W, W * sc, sc, ac);
        float d = dy[i];
        atomicAdd(dx + nhwc_at(C, H, W, b, ih.i0, iw.i0, c), d * ih.l0 * iw.l0);
        atomicAdd(dx + nhwc_at(C, H, W, b, ih.i0, iw.i1, c), d * ih.l0 * iw.l1);
        atomicAdd(dx + nhwc_at(C, H, W, b, ih.i1, iw.i0, c), d * ih.l1 * iw.l0);
        atomicAdd(dx + nhwc_at(C, H, W, b, ih.i1, iw.i1, c), d * ih.l1 * iw.l1);
    }
}
extern "C" void rcv_cu_up_bilinear_fwd(const float *x, float *y, int N, int C, int H, int W, int sc, int ac,
                                       cudaStream_t s) {
    size_t n = (size_t)N * C * H * W * sc * sc;
    k_up_bilinear_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, y, C, H, W, sc, ac, n);
}
extern "C" void rcv_cu_up_bilinear_bwd(const float *dy, float *dx, int N, int C, int H, int W, int sc, int ac, int beta,
                                       cudaStream_t s) {
    if (!beta) cudaMemsetAsync(dx, 0, (size_t)N * C * H * W * sizeof(float), s);
    size_t n = (size_t)N * C * H * W * sc * sc;
    k_up_bilinear_bwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, dx, C, H, W, sc, ac, n);
}

__global__ void k_chan_slice(const float *from, float *to, size_t n, int Cs, int Cd, int off, int dir, int beta) {
    RCV_CU_LOOP(i, n) { // i over rows x Cs
        size_t r = i / Cs, c = i % Cs, wide = r * Cd + off + c;
        if (dir == 0) to[wide] = from[i];
        else rcv_cu_store(to + i, from[wide], beta);
    }
}
extern "C" void rcv_cu_chan_slice(const float *from, float *to, size_t rows, int Cs, int Cd, int off, int dir,
                                  int beta, cudaStream_t s) {
    size_t n = rows * Cs;
    k_chan_slice<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(from, to, n, Cs, Cd, off, dir, beta);
}

// i over the NHWC tensor; its flattened index is b*F + (c*H + h)*W + w.
__global__ void k_flatten(const float *from, float *to, int C, int H, int W, size_t n, int dir, int beta) {
    RCV_CU_LOOP(i, n) {
        int b, h, w, c;
        nhwc_of(i, C, H, W, &b, &h, &w, &c);
        size_t f = (size_t)b * C * H * W + ((size_t)c * H + h) * W + w;
        if (dir == 0) to[f] = from[i];
        else rcv_cu_store(to + i, from[f], beta);
    }
}
extern "C" void rcv_cu_flatten(const float *from, float *to, int N, int C, int H, int W, int dir, int beta,
                               cudaStream_t s) {
    size_t n = (size_t)N * C * H * W;
    k_flatten<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(from, to, C, H, W, n, dir, beta);
}

// PyTorch's AdaptiveAvgPool2d window along one axis: output o of `out` averages input
// [floor(o n / out), ceil((o + 1) n / out)) (src/backend/ref/pool.c).
__device__ __forceinline__ void aap_window(int o, int n, int out, int *b, int *e) {
    *b = (int)(((long long)o * n) / out);
    *e = (int)(((long long)(o + 1) * n + out - 1) / out);
}
// The outputs whose window holds input index i: o >= floor(i out / n) (the window ends past i)
// and o <= ceil((i + 1) out / n) - 1 (it starts at or before i). Windows overlap when n is
// not a multiple of out, and one input feeds several outputs when out > n.
__device__ __forceinline__ void aap_covering(int i, int n, int out, int *o0, int *o1) {
    *o0 = (int)(((long long)i * out) / n);
    int hi = (int)(((long long)(i + 1) * out + n - 1) / n) - 1;
    *o1 = hi < out - 1 ? hi : out - 1;
}
__global__ void k_adaptive_avgpool_fwd(const float *x, float *y, int C, int H, int W, int Ho, int Wo, size_t n) {
    RCV_CU_LOOP(i, n) {
        int b, oh, ow, c, h0, h1, w0, w1;
        nhwc_of(i, C, Ho, Wo, &b, &oh, &ow, &c);
        aap_window(oh, H, Ho, &h0, &h1);
        aap_window(ow, W, Wo, &w0, &w1);
        float acc = 0.0f;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) acc += x[nhwc_at(C, H, W, b, h, w, c)];
        y[i] = acc / (float)((h1 - h0) * (w1 - w0));
    }
}
// Gather: dx[b, h, w, c] = [dx] + sum over the outputs covering (h, w) of dy / |window|.
__global__ void k_adaptive_avgpool_bwd(const float *dy, float *dx, int C, int H, int W, int Ho, int Wo, size_t n,
                                       int beta) {
    RCV_CU_LOOP(i, n) {
        int b, h, w, c, oh0, oh1, ow0, ow1;
        nhwc_of(i, C, H, W, &b, &h, &w, &c);
        aap_covering(h, H, Ho, &oh0, &oh1);
        aap_covering(w, W, Wo, &ow0, &ow1);
        float acc = 0.0f;
        for (int oh = oh0; oh <= oh1; oh++) {
            int h0, h1;
            aap_window(oh, H, Ho, &h0, &h1);
            for (int ow = ow0; ow <= ow1; ow++) {
                int w0, w1;
                aap_window(ow, W, Wo, &w0, &w1);
                acc += dy[nhwc_at(C, Ho, Wo, b, oh, ow, c)] / (float)((h1 - h0) * (w1 - w0));
            }
        }
        rcv_cu_store(dx + i, acc, beta);
    }
}
extern "C" void rcv_cu_adaptive_avgpool_fwd(const float *x, float *y, int N, int C, int H, int W, int Ho, int Wo,
                                            cudaStream_t s) {
    size_t n = (size_t)N * C * Ho * Wo;
    k_adaptive_avgpool_fwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(x, y, C, H, W, Ho, Wo, n);
}
extern "C" void rcv_cu_adaptive_avgpool_bwd(const float *dy, float *dx, int N, int C, int H, int W, int Ho, int Wo,
                                            int beta, cudaStream_t s) {
    size_t n = (size_t)N * C * H * W;
    k_adaptive_avgpool_bwd<<<rcv_cu_blocks(n), RCV_CU_THREADS, 0, s>>>(dy, dx, C, H, W, Ho, Wo, n, beta);
}
