// conv2d on oneDNN: x (N, C, H, W) NHWC -> y (N, O, Ho, Wo) NHWC; weight (O, C/g, kh, kw) OIHW.
//
// The primitives pick their own weight layout ('any'); OIHW parameters are
// reordered into it before forward and backward-data, and the weight gradient
// is reordered back into OIHW with a sum post-op (parameter grads accumulate).
// Backward-data is not built when the input takes no gradient (the stem conv).
//
// Scratch (bytes, g->scratch):  [weights in the primitive's layout | dx when
// accumulating | dbias | bf16 dy | oneDNN scratchpad].
//
// bf16 precision (g->precision): forward rounds x to a bf16 copy kept in n->saved
// (backward-weights reads it) and the weights to bf16; backward rounds dy to bf16.
// Outputs, dx and dW stay fp32 (oneDNN accumulates in fp32): on AMX this runs the
// convolution ~10x faster than fp32 (bench/bench_ops).
//
// Tiny outputs (Ho*Wo <= 4, groups 1: ResNet's layer4 at 64x64 input) go through
// im2col + sgemm instead: oneDNN's direct kernels run at ~100 GFLOP/s there,
// the gemms at ~240 (bench/bench_ops). The column matrix has rows (n, oh, ow) and
// columns (c, i, j), so the OIHW weight is the gemm operand as is and the weight
// gradient accumulates into the parameter grad directly (beta = 1).
//
// Inference with the batchnorm folded in (rcv_graph_infer, n->fold: the BN is this conv's only
// consumer; eval mode): the BN's running statistics become a per-channel affine of the conv's
// output, y = conv(x) ka + kb with ka = gamma / sqrt(var + eps), kb = (bias - mean) ka + beta,
// followed by the BN's fused ReLU when it has one. oneDNN applies it inside the convolution as
// post-ops (binary mul and add with (1, O, 1, 1) operands, eltwise ReLU) of a forward-inference
// primitive (also for im2col-path nodes with few output positions, gemm_infer_build); the im2col +
// sgemm path in its output loop; Winograd (FOLD_WEIGHTS) on weights scaled by ka at each call, kb
// as its bias. The parameters are not rewritten: ka and
// kb come from the parameters and statistics at each call (O values). The post-op form keeps the
// weights reordered into oneDNN's layout between calls (at batch 1 the per-call reorders were a
// fifth of ResNet-18's pass), redone when g->params_gen moves (rcv_graph_params_changed: optimizer
// steps, loads, swaps, leaving training mode). The output goes to the BN's out (which its fused
// ReLU aliases); the conv's own out is not written. Not for bf16 (forward as usual).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/dnnl_ctx.h"
#include "robustcv/error.h"

typedef struct {
    rcv_dnnl_prim fwd, w_fwd;     // conv; OIHW -> fwd layout (prim NULL when equal)
    rcv_dnnl_prim bwd_d, w_bwd_d; // backward data (NULL without an input grad); OIHW -> its layout
    rcv_dnnl_prim bwd_w, dw_back; // backward weights; its layout -> OIHW, summed into the grad
    rcv_dnnl_prim x_bf, dy_bf;    // x -> compute layout (n->saved), dy -> compute layout (scratch): bf16 or nChw16c
    rcv_dnnl_prim y_out, dx_out[2]; // Winograd: y, dx back to NHWC (dx_out[1] accumulates)
    int wino;
    size_t off_w, off_dx, off_db, off_dyb, off_pad; // scratch regions (bytes)
    int gemm;                              // 1: the im2col + sgemm path; 2: im2col + bf16 matmuls
    rcv_dnnl_prim mm_y, mm_dw, mm_dcol;    // bf16 gemm path: y = col W^T, dW += dy^T col, dcol = dy W
    size_t off_col, off_wb, off_dcol;      // its scratch regions (bytes; dy reuses off_dyb)
    int dx_gemm;                           // fp32 oneDNN path, few input channels: dx by sgemm + col2im
                                           // into off_dcol (dx_by_gemm)
    int fold;                              // FOLD_*: how infer applies the BN (g->nodes[n->fold]); 0: it does not
    rcv_dnnl_prim inf, w_inf;              // oneDNN path: the folded inference conv; OIHW -> its weights
    float *ka, *kb;                        // (O): the folded affine, refreshed at each infer call
    size_t off_wf;                         // FOLD_WEIGHTS: the scaled OIHW weights (scratch bytes)
    float *wc;                             // FOLD_POSTOPS: the weights in inf's layout, kept between calls
    size_t wc_bytes;
    int gemm_inf;                          // im2col node whose infer runs the oneDNN inf primitive
    uint64_t wc_gen;                       // g->params_gen they were made at (+ 1; 0 = never)
} conv_state;

static void conv_state_clear(conv_state *s);

static void conv_release(rcv_node *n) {
    conv_state *s = n->kstate;
    if (!s) return;
    conv_state_clear(s);
    free(s);
    n->kstate = NULL;
}

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

// Reorder from the user OIHW weights to the layout `want`; leaves p empty when they agree.
static int weight_reorder(rcv_graph *g, rcv_dnnl_prim *p, const dnnl_memory_desc_t *user,
                          const dnnl_memory_desc_t *want) {
    if (dnnl_memory_desc_equal(user, want)) return 0;
    return rcv_dnnl_reorder_init(g, p, user, want, 0);
}

// ---------------------------------------------------------------- im2col + sgemm path

static int use_gemm(const rcv_conv_attr *a, rcv_shape ys) { return a->groups == 1 && ys.h * ys.w <= 4; }

// Round to nearest even, as oneDNN's reorders do (NaN is not expected here).
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float id_f32(float f) { return f; }

// col[m, (c*kh + i)*kw + j] = x[n, oh*sh - ph + i*dh, ow*sw - pw + j*dw, c] (0 outside), m = (n, oh, ow).
// T is float or uint16_t (bf16, rounded by CVT).
#define IM2COL(NAME, T, CVT)                                                                                    \
    static void NAME(const rcv_conv_attr *a, rcv_shape xs, rcv_shape ys, const float *x, T *col) {             \
        int M = ys.n * ys.h * ys.w, KK = a->kh * a->kw, K = xs.c * KK;                                          \
        _Pragma("omp parallel for schedule(static) if ((size_t)M * K > 32768)") for (int m = 0; m < M; m++) {   \
            int n = m / (ys.h * ys.w), oh = m / ys.w % ys.h, ow = m % ys.w;                                     \
            T *cr = col + (size_t)m * K;                                                                        \
            for (int i = 0; i < a->kh; i++)                                                                     \
                for (int j = 0; j < a->kw; j++) {                                                               \
                    int ih = oh * a->sh - a->ph + i * a->dh, iw = ow * a->sw - a->pw + j * a->dw, t = i * a->kw + j; \
                    if (ih < 0 || ih >= xs.h || iw < 0 || iw >= xs.w) {                                         \
                        for (int c = 0; c < xs.c; c++) cr[c * KK + t] = 0;                                      \
                    } else {                                                                                    \
                        const float *xr = x + (((size_t)n * xs.h + ih) * xs.w + iw) * xs.c;                     \
                        for (int c = 0; c < xs.c; c++) cr[c * KK + t] = CVT(xr[c]);                             \
                    }                                                                                           \
                }                                                                                               \
        }                                                                                                       \
    }
IM2COL(im2col, float, id_f32)
IM2COL(im2col_bf16, uint16_t, to_bf16)

static void to_bf16_n(const float *src, uint16_t *dst, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) dst[i] = to_bf16(src[i]);
}

// dx (=|+=) col2im(dcol); one image per thread, so the scatter has no races.
static void col2im(const rcv_conv_attr *a, rcv_shape xs, rcv_shape ys, const float *dcol, float *dx, int acc) {
    int KK = a->kh * a->kw, K = xs.c * KK;
    size_t img = (size_t)xs.h * xs.w * xs.c;
#pragma omp parallel for schedule(static) if ((size_t)ys.n * ys.h * ys.w * K > 32768)
    for (int n = 0; n < xs.n; n++) {
        float *dxn = dx + n * img;
        if (!acc) memset(dxn, 0, img * sizeof(float));
        for (int oh = 0; oh < ys.h; oh++)
            for (int ow = 0; ow < ys.w; ow++) {
                const float *cr = dcol + (((size_t)n * ys.h + oh) * ys.w + ow) * K;
                for (int i = 0; i < a->kh; i++)
                    for (int j = 0; j < a->kw; j++) {
                        int ih = oh * a->sh - a->ph + i * a->dh, iw = ow * a->sw - a->pw + j * a->dw, t = i * a->kw + j;
                        if (ih < 0 || ih >= xs.h || iw < 0 || iw >= xs.w) continue;
                        float *xr = dxn + ((size_t)ih * xs.w + iw) * xs.c;
                        for (int c = 0; c < xs.c; c++) xr[c] += cr[c * KK + t];
                    }
            }
    }
}

static void sgemm(char ta, char tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc) {
    if (RCV_DNNL(dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc)))
        fprintf(stderr, "robustcv cpu backend: %s\n", rcv_error());
}

// y (M x O) = col (M x K) W^T (W: O x K, OIHW) [+ bias]
static void gemm_forward(rcv_graph *g, rcv_node *n) {
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    int M = ys.n * ys.h * ys.w, O = ys.c, K = xs.c * a->kh * a->kw;
    float *col = g->scratch, *y = n->out;
    im2col(a, xs, ys, rcv_in(g, n, 0), col);
    float beta = 0;
    if (a->has_bias) {
        const float *b = rcv_param_data(g, n->param[1]);
        for (int m = 0; m < M; m++) memcpy(y + (size_t)m * O, b, O * sizeof(float));
        beta = 1;
    }
    sgemm('N', 'T', M, O, K, col, K, rcv_param_data(g, n->param[0]), K, beta, y, O);
}

// dW += dy^T col;  db += sum_m dy;  dcol = dy W, dx (=|+=) col2im(dcol)
static void gemm_backward(rcv_graph *g, rcv_node *n) {
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    int M = ys.n * ys.h * ys.w, O = ys.c, K = xs.c * a->kh * a->kw;
    float *col = g->scratch, *dy = n->grad, *dx = rcv_in_grad(g, n, 0);
    if (!g->input_grad_only) {
        im2col(a, xs, ys, rcv_in(g, n, 0), col);
        sgemm('T', 'N', O, K, M, dy, O, col, K, 1.0f, rcv_param_grad(g, n->param[0]), K);
    }
    if (a->has_bias && !g->input_grad_only) {
        float *gb = rcv_param_grad(g, n->param[1]);
        for (int m = 0; m < M; m++)
#pragma omp simd
            for (int o = 0; o < O; o++) gb[o] += dy[(size_t)m * O + o];
    }
    if (!dx) return;
    sgemm('N', 'N', M, K, O, dy, O, rcv_param_data(g, n->param[0]), K, 0.0f, col, K);
    col2im(a, xs, ys, col, dx, n->in_beta[0]);
}

// ---------------------------------------------------------------- im2col + bf16 matmul path
// The same three products as above on oneDNN's bf16 matmul (AMX: ~3.4 TFLOP/s here,
// where its bf16 convolutions at 2x2 outputs manage ~120 GFLOP/s). Operands are rounded
// to bf16 on the way in; products and outputs are fp32.

static int md2(dnnl_memory_desc_t *md, int r, int c, dnnl_data_type_t t, dnnl_format_tag_t tag) {
    dnnl_dims_t d = {r, c};
    return RCV_DNNL(dnnl_memory_desc_init_by_tag(md, 2, d, t, tag));
}

static int matmul_init(rcv_graph *g, rcv_dnnl_prim *p, const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b,
                       const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *c, float sum_beta) {
    dnnl_matmul_desc_t d;
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t pd = NULL;
    if (rcv_dnnl_attr(&attr, sum_beta)) return -1;
    int rc = -1;
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    if (!RCV_DNNL(dnnl_matmul_desc_init(&d, a, b, bias, c)) &&
        !RCV_DNNL(dnnl_primitive_desc_create(&pd, &d, attr, rcv_cpu(g)->engine, NULL)))
        rc = rcv_dnnl_prim_init(g, p, pd, args, bias ? 4 : 3);
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return rc;
}

static int bf16_gemm_prepare(rcv_graph *g, rcv_node *n, conv_state *s) {
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    int M = ys.n * ys.h * ys.w, O = ys.c, K = xs.c * a->kh * a->kw;
    dnnl_memory_desc_t col, w_ko, y, bias, dyt, dw, dy, w_ok, dcol;
    if (md2(&col, M, K, dnnl_bf16, dnnl_ab) || md2(&w_ko, K, O, dnnl_bf16, dnnl_ba) || md2(&y, M, O, dnnl_f32, dnnl_ab) ||
        md2(&bias, 1, O, dnnl_f32, dnnl_ab) || md2(&dyt, O, M, dnnl_bf16, dnnl_ba) || md2(&dw, O, K, dnnl_f32, dnnl_ab) ||
        md2(&dy, M, O, dnnl_bf16, dnnl_ab) || md2(&w_ok, O, K, dnnl_bf16, dnnl_ab) || md2(&dcol, M, K, dnnl_f32, dnnl_ab))
        return -1;
    if (matmul_init(g, &s->mm_y, &col, &w_ko, a->has_bias ? &bias : NULL, &y, 0) ||
        matmul_init(g, &s->mm_dw, &dyt, &col, NULL, &dw, 1.0f) ||
        (rcv_in_grad(g, n, 0) && matmul_init(g, &s->mm_dcol, &dy, &w_ok, NULL, &dcol, 0)))
        return -1;
    size_t top = 0;
    s->off_col = rcv_scratch_take(&top, (size_t)M * K * 2);
    s->off_wb = rcv_scratch_take(&top, (size_t)O * K * 2);
    s->off_dyb = rcv_scratch_take(&top, (size_t)M * O * 2);
    s->off_dcol = rcv_scratch_take(&top, s->mm_dcol.prim ? (size_t)M * K * 4 : 0);
    size_t pad = max_z(s->mm_y.scratchpad_bytes, max_z(s->mm_dw.scratchpad_bytes, s->mm_dcol.scratchpad_bytes));
    s->off_pad = rcv_scratch_take(&top, pad);
    rcv_graph_scratch(g, top / sizeof(float) + 1);
    s->gemm = 2;
    return 0;
}

// y (M x O) = col (M x K) W^T [+ bias], in bf16
static void bf16_gemm_forward(rcv_graph *g, rcv_node *n, conv_state *s) {
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    char *scr = (char *)g->scratch;
    uint16_t *col = (uint16_t *)(scr + s->off_col), *wb = (uint16_t *)(scr + s->off_wb);
    im2col_bf16(a, xs, ys, rcv_in(g, n, 0), col);
    to_bf16_n(rcv_param_data(g, n->param[0]), wb, (size_t)ys.c * xs.c * a->kh * a->kw);
    void *args[4] = {col, wb, n->out, a->has_bias ? rcv_param_data(g, n->param[1]) : NULL};
    rcv_dnnl_run(g, &s->mm_y, args, scr + s->off_pad);
}

// dW += dy^T col;  db += sum_m dy;  dcol = dy W, dx (=|+=) col2im(dcol), in bf16
static void bf16_gemm_backward(rcv_graph *g, rcv_node *n, conv_state *s) {
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    int M = ys.n * ys.h * ys.w, O = ys.c, K = xs.c * a->kh * a->kw;
    char *scr = (char *)g->scratch;
    uint16_t *col = (uint16_t *)(scr + s->off_col), *wb = (uint16_t *)(scr + s->off_wb);
    uint16_t *dyb = (uint16_t *)(scr + s->off_dyb);
    to_bf16_n(n->grad, dyb, (size_t)M * O);
    if (!g->input_grad_only) {
        im2col_bf16(a, xs, ys, rcv_in(g, n, 0), col);
        void *args[3] = {dyb, col, rcv_param_grad(g, n->param[0])};
        rcv_dnnl_run(g, &s->mm_dw, args, scr + s->off_pad);
    }
    if (a->has_bias && !g->input_grad_only) {
        float *gb = rcv_param_grad(g, n->param[1]);
        for (int m = 0; m < M; m++)
#pragma omp simd
            for (int o = 0; o < O; o++) gb[o] += n->grad[(size_t)m * O + o];
    }
    if (!s->mm_dcol.prim) return;
    float *dcol = (float *)(scr + s->off_dcol);
    to_bf16_n(rcv_param_data(g, n->param[0]), wb, (size_t)O * K);
    void *dargs[3] = {dyb, wb, dcol};
    rcv_dnnl_run(g, &s->mm_dcol, dargs, scr + s->off_pad);
    col2im(a, xs, ys, dcol, rcv_in_grad(g, n, 0), n->in_beta[0]);
}

// ---------------------------------------------------------------- oneDNN path

enum { DIRECT, BF16, WINO };

// fp32 Winograd (oneDNN's F(4x4, 3x3), ~1.45x the direct kernels' speed on these shapes,
// bench/bench_ops) needs the nChw16c layout, so x and dy are reordered in and y and dx out
// around it where those tensors are NHWC (compute_blocked; blocked neighbours need none).
// Taken for 3x3 stride-1 pad-1 convolutions with channel counts in 16s.
// oneDNN has it on AVX-512 only; RCV_NO_WINOGRAD=1 turns it off.
static int use_wino(const rcv_conv_attr *a, rcv_shape xs, rcv_shape ys) {
    static int avail = -1;
    if (avail < 0)
        avail = !getenv("RCV_NO_WINOGRAD") && rcv_cpu_block() == 16; // 16: AVX-512 core
    return avail && a->kh == 3 && a->kw == 3 && a->sh == 1 && a->sw == 1 && a->dh == 1 && a->dw == 1 &&
           a->ph == 1 && a->pw == 1 && a->groups == 1 && xs.c % 16 == 0 && ys.c % 16 == 0 && !use_gemm(a, ys);
}

// dx of a convolution with few input channels (a stem: 1 or 3) by dcol = dy W (sgemm, M x C*kh*kw)
// and col2im: oneDNN 2.6's backward-data for them runs a generic jit kernel at ~4 GFLOP/s
// (smallcnn's conv1, 1 -> 32 channels at b250 28x28: ~30 ms on one thread against ~4 ms for its
// forward); the gemm is memory-bound on dy, a few ms. Attacks run it every step (the image's
// gradient); training never does (the input takes no gradient).
static int dx_by_gemm(const rcv_conv_attr *a, rcv_shape xs, int mode) {
    return mode == DIRECT && a->groups == 1 && xs.c < 16 && !getenv("RCV_NO_CONV_DX_GEMM");
}

// The layout the fp32 primitives compute in (0 = NHWC, else the block b of nChw<b>c): Winograd's
// is nChw16c (AVX-512 only, use_wino); direct convolutions use the tensors' own when x and y
// agree (oneDNN's jit kernels run nChw<b>c -> nChw<b>c and NHWC -> NHWC but fall to reference
// code on a mix, or on a block that is not their ISA's), else this CPU's block when both channel
// counts are in its multiples, else NHWC. The side in the other layout is reordered.
static int compute_blocked(const rcv_graph *g, const rcv_node *n, int wino) {
    const rcv_node *x = &g->nodes[n->in[0]];
    int b = rcv_cpu_block();
    if (wino) return 16;
    if (x->blocked == n->blocked) return n->blocked;
    return b && x->shape.c % b == 0 && n->shape.c % b == 0 ? b : 0;
}

static void conv_state_clear(conv_state *s) {
    rcv_dnnl_prim *ps[] = {&s->fwd,  &s->w_fwd, &s->bwd_d, &s->w_bwd_d, &s->bwd_w,    &s->dw_back, &s->x_bf,
                           &s->dy_bf, &s->mm_y, &s->mm_dw, &s->mm_dcol, &s->y_out,   &s->dx_out[0], &s->dx_out[1]};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) rcv_dnnl_prim_free(ps[i]);
    rcv_dnnl_prim_free(&s->inf);
    rcv_dnnl_prim_free(&s->w_inf);
    free(s->ka);
    free(s->kb);
    free(s->wc);
    memset(s, 0, sizeof *s);
}

// The folded inference primitive (see the top), a forward-inference conv from xc to yc:
//   FOLD_POSTOPS: no bias, post-ops mul(ka), add(kb)[, relu]; direct algorithm (oneDNN 2.6's
//     Winograd takes no binary post-ops);
//   FOLD_WEIGHTS: Winograd on weights scaled by ka per output channel at each call (into scratch,
//     then reordered as forward reorders the parameters), bias kb, post-op [relu].
// Its weights get their own reorder when their layout is not OIHW. 0 when built; 1 when oneDNN
// offers only reference code or nothing (infer then runs forward and the BN), with no error set.
enum { FOLD_NONE, FOLD_POSTOPS, FOLD_WEIGHTS };

static int infer_build(rcv_graph *g, rcv_node *n, conv_state *s, int mode, const dnnl_memory_desc_t *xc,
                       const dnnl_memory_desc_t *w_any, const dnnl_memory_desc_t *w_user,
                       const dnnl_memory_desc_t *yc, const dnnl_dim_t *strides, const dnnl_dim_t *dil,
                       const dnnl_dim_t *pl, const dnnl_dim_t *pr, size_t *wbytes, size_t *pad) {
    dnnl_memory_desc_t k_md, b_md;
    dnnl_dims_t kd = {1, n->shape.c, 1, 1}, bd = {n->shape.c};
    if (dnnl_memory_desc_init_by_tag(&k_md, 4, kd, dnnl_f32, dnnl_abcd) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_a) != dnnl_success)
        return 1;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return 1;
    int bad = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success;
    if (!bad && dnnl_post_ops_create(&po) == dnnl_success) {
        if (mode == FOLD_POSTOPS)
            bad = dnnl_post_ops_append_binary(po, dnnl_binary_mul, &k_md) != dnnl_success ||
                  dnnl_post_ops_append_binary(po, dnnl_binary_add, &k_md) != dnnl_success;
        bad = bad ||
              (g->nodes[n->fold].fused_relu &&
               dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f) != dnnl_success) ||
              dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success;
        dnnl_post_ops_destroy(po);
    } else
        bad = 1;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_convolution_desc_t d;
    dnnl_alg_kind_t alg = mode == FOLD_WEIGHTS ? dnnl_convolution_winograd : dnnl_convolution_direct;
    if (bad ||
        dnnl_dilated_convolution_forward_desc_init(&d, mode == FOLD_WEIGHTS ? dnnl_forward_training : dnnl_forward_inference,
                                                   alg, xc, w_any,
                                                   mode == FOLD_WEIGHTS ? &b_md : NULL, yc, strides, dil, pl,
                                                   pr) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &d, attr, rcv_cpu(g)->engine, NULL) != dnnl_success)
        pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    const char *impl = NULL;
    if (pd && (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl ||
               strstr(impl, "ref"))) {
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
    }
    if (!pd) return 1;
    int args[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                   DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1};
    if (mode == FOLD_WEIGHTS) args[3] = DNNL_ARG_BIAS;
    int rc = rcv_dnnl_prim_init(g, &s->inf, pd, args, mode == FOLD_WEIGHTS ? 4 : 5);
    const dnnl_memory_desc_t *wi = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!rc) rc = weight_reorder(g, &s->w_inf, w_user, wi);
    if (!rc && s->w_inf.prim) *wbytes = max_z(*wbytes, dnnl_memory_desc_get_size(wi));
    if (!rc && s->w_inf.prim && mode == FOLD_POSTOPS) s->wc_bytes = dnnl_memory_desc_get_size(wi);
    if (!rc) *pad = max_z(*pad, max_z(s->inf.scratchpad_bytes, s->w_inf.scratchpad_bytes));
    dnnl_primitive_desc_destroy(pd);
    if (rc) {
        rcv_dnnl_prim_free(&s->inf);
        rcv_dnnl_prim_free(&s->w_inf);
        return 1;
    }
    return 0;
}

// Winograd's per-call weight transform costs as much at batch 1 as at 64, so inference takes it
// only from this many output positions (N * Ho * Wo) up; below, the direct kernels with the fold
// as post-ops are faster (smallcnn6, one thread: a 64-channel 3x3 at 1x14x14, 196 positions,
// 0.21 ms Winograd against 0.15 ms direct; 32 channels at 1x28x28, 0.14 against 0.15).
#define WINO_INFER_MIN 512

// Builds the oneDNN primitives in one of three modes. x and dy go through the compute
// layouts xc/dyc (bf16 or nChw<b>c: reordered in; plain fp32 NHWC: used in place); y and
// dx come out of yc/dxc (nChw<b>c: reordered out).
static int conv_build(rcv_graph *g, rcv_node *n, conv_state *s, int mode) {
    rcv_conv_attr a = n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    rcv_cpu_ctx *c = rcv_cpu(g);
    dnnl_memory_desc_t x_md, y_md, b_md, w_user, w_any, dw_any, xc_md, dyc_md, yc_md, dxc_md;
    int G = a.groups, O = ys.c, C = xs.c, bf = mode == BF16, wino = mode == WINO;
    dnnl_alg_kind_t alg = wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
    dnnl_data_type_t ct = bf ? dnnl_bf16 : dnnl_f32; // compute type of x, w, dy
    int xblk = g->nodes[n->in[0]].blocked, yblk = n->blocked, cblk = compute_blocked(g, n, wino);
    if (rcv_dnnl_md_act(&x_md, xs, xblk) || rcv_dnnl_md_act(&y_md, ys, yblk) || rcv_dnnl_md_vec(&b_md, O)) return -1;
    if (rcv_dnnl_md_act(&xc_md, xs, cblk) || rcv_dnnl_md_act(&yc_md, ys, cblk)) return -1;
    dxc_md = xc_md, dyc_md = yc_md;
    if (bf && (rcv_dnnl_md_nhwc_bf16(&xc_md, xs) || rcv_dnnl_md_nhwc_bf16(&dyc_md, ys))) return -1;
    if (G == 1) {
        dnnl_dims_t wd = {O, C, a.kh, a.kw};
        if (RCV_DNNL(dnnl_memory_desc_init_by_tag(&w_user, 4, wd, dnnl_f32, dnnl_oihw)) ||
            RCV_DNNL(dnnl_memory_desc_init_by_tag(&w_any, 4, wd, ct, dnnl_format_tag_any)) ||
            RCV_DNNL(dnnl_memory_desc_init_by_tag(&dw_any, 4, wd, dnnl_f32, dnnl_format_tag_any)))
            return -1;
    } else {
        dnnl_dims_t wd = {G, O / G, C / G, a.kh, a.kw};
        if (RCV_DNNL(dnnl_memory_desc_init_by_tag(&w_user, 5, wd, dnnl_f32, dnnl_goihw)) ||
            RCV_DNNL(dnnl_memory_desc_init_by_tag(&w_any, 5, wd, ct, dnnl_format_tag_any)) ||
            RCV_DNNL(dnnl_memory_desc_init_by_tag(&dw_any, 5, wd, dnnl_f32, dnnl_format_tag_any)))
            return -1;
    }
    // Reorders only where a tensor's layout differs from the compute one (a blocked neighbour
    // hands Winograd nChw16c directly).
    int x_in = bf || xblk != cblk, y_in = bf || yblk != cblk;
    if ((x_in && rcv_dnnl_reorder_init(g, &s->x_bf, &x_md, &xc_md, 0)) ||
        (y_in && rcv_dnnl_reorder_init(g, &s->dy_bf, &y_md, &dyc_md, 0)))
        return -1;
    if (!bf && yblk != cblk && rcv_dnnl_reorder_init(g, &s->y_out, &yc_md, &y_md, 0)) return -1;
    if (!bf && xblk != cblk && (rcv_dnnl_reorder_init(g, &s->dx_out[0], &dxc_md, &x_md, 0) ||
                                rcv_dnnl_reorder_init(g, &s->dx_out[1], &dxc_md, &x_md, 1.0f)))
        return -1;
    dnnl_dims_t strides = {a.sh, a.sw}, dil = {a.dh - 1, a.dw - 1}, pl = {a.ph, a.pw};
    // PyTorch's floor rule equals oneDNN's with symmetric padding; the right pad may
    // extend past what the last window reads, which oneDNN accepts.
    dnnl_dims_t pr = {a.ph, a.pw};
    const dnnl_memory_desc_t *bias = a.has_bias ? &b_md : NULL;

    dnnl_primitive_attr_t attr;
    if (rcv_dnnl_attr(&attr, 0)) return -1;
    dnnl_convolution_desc_t fd, bdd, bwd;
    dnnl_primitive_desc_t fpd = NULL, bdpd = NULL, bwpd = NULL;
    int rc = -1;
    if (RCV_DNNL(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, alg, &xc_md, &w_any, bias,
                                                            &yc_md, strides, dil, pl, pr)) ||
        RCV_DNNL(dnnl_primitive_desc_create(&fpd, &fd, attr, c->engine, NULL)))
        goto done;
    int fargs[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    if (rcv_dnnl_prim_init(g, &s->fwd, fpd, fargs, a.has_bias ? 4 : 3)) goto done;
    const dnnl_memory_desc_t *wf = dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    if (weight_reorder(g, &s->w_fwd, &w_user, wf)) goto done;
    size_t wbytes = s->w_fwd.prim ? dnnl_memory_desc_get_size(wf) : 0;
    size_t pad = max_z(s->fwd.scratchpad_bytes, s->w_fwd.scratchpad_bytes);
    size_t dxbytes = 0;
    size_t wfbytes = 0;
    if (n->fold >= 0 && !bf) {
        // Winograd at inference sizes keeps Winograd (weights folded; when oneDNN cannot, the BN
        // runs on its own: the direct kernels would lose more than the fold saves).
        int fm = wino && (size_t)ys.n * ys.h * ys.w >= WINO_INFER_MIN ? FOLD_WEIGHTS : FOLD_POSTOPS;
        if (!infer_build(g, n, s, fm, &xc_md, &w_any, &w_user, &yc_md, strides, dil, pl, pr, &wbytes, &pad))
            s->fold = fm;
        if (s->fold == FOLD_WEIGHTS) wfbytes = (size_t)O * (C / G) * a.kh * a.kw * sizeof(float);
    }

    size_t dcolbytes = 0;
    if (rcv_in_grad(g, n, 0) && dx_by_gemm(&a, xs, mode) && !xblk && !cblk) {
        s->dx_gemm = 1; // dy in NHWC (n->grad or its reorder), W as OIHW: sgemm + col2im
        dcolbytes = (size_t)ys.n * ys.h * ys.w * C * a.kh * a.kw * sizeof(float);
    } else if (rcv_in_grad(g, n, 0)) {
        if (RCV_DNNL(dnnl_dilated_convolution_backward_data_desc_init(&bdd, alg, &dxc_md, &w_any, &dyc_md, strides,
                                                                      dil, pl, pr)) ||
            RCV_DNNL(dnnl_primitive_desc_create(&bdpd, &bdd, attr, c->engine, fpd)))
            goto done;
        int bargs[3] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
        if (rcv_dnnl_prim_init(g, &s->bwd_d, bdpd, bargs, 3)) goto done;
        const dnnl_memory_desc_t *wb = dnnl_primitive_desc_query_md(bdpd, dnnl_query_weights_md, 0);
        if (weight_reorder(g, &s->w_bwd_d, &w_user, wb)) goto done;
        if (s->w_bwd_d.prim) wbytes = max_z(wbytes, dnnl_memory_desc_get_size(wb));
        pad = max_z(pad, max_z(s->bwd_d.scratchpad_bytes, s->w_bwd_d.scratchpad_bytes));
        dxbytes = dnnl_memory_desc_get_size(&dxc_md);
    }

    if (RCV_DNNL(dnnl_dilated_convolution_backward_weights_desc_init(&bwd, alg, &xc_md, &dw_any, bias, &dyc_md,
                                                                     strides, dil, pl, pr)) ||
        RCV_DNNL(dnnl_primitive_desc_create(&bwpd, &bwd, attr, c->engine, fpd)))
        goto done;
    int wargs[4] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS};
    if (rcv_dnnl_prim_init(g, &s->bwd_w, bwpd, wargs, a.has_bias ? 4 : 3)) goto done;
    const dnnl_memory_desc_t *dw = dnnl_primitive_desc_query_md(bwpd, dnnl_query_diff_weights_md, 0);
    // Always through scratch: the primitive overwrites, the parameter grad accumulates.
    if (rcv_dnnl_reorder_init(g, &s->dw_back, dw, &w_user, 1.0f)) goto done;
    wbytes = max_z(wbytes, dnnl_memory_desc_get_size(dw));
    pad = max_z(pad, max_z(s->bwd_w.scratchpad_bytes, s->dw_back.scratchpad_bytes));

    size_t top = 0;
    s->off_w = rcv_scratch_take(&top, wbytes);
    s->off_dx = rcv_scratch_take(&top, dxbytes);
    s->off_db = rcv_scratch_take(&top, a.has_bias ? O * sizeof(float) : 0);
    // dy in its compute layout (backward) or y in it (Winograd forward): never both at once
    s->off_dyb = rcv_scratch_take(&top, y_in ? dnnl_memory_desc_get_size(&dyc_md) : 0);
    s->off_dcol = rcv_scratch_take(&top, dcolbytes);
    s->off_wf = rcv_scratch_take(&top, wfbytes);
    rcv_dnnl_prim *rs[] = {&s->x_bf, &s->dy_bf, &s->y_out, &s->dx_out[0], &s->dx_out[1]};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) pad = max_z(pad, rs[i]->scratchpad_bytes);
    s->off_pad = rcv_scratch_take(&top, pad);
    rcv_graph_scratch(g, top / sizeof(float) + 1);
    rc = 0;
done:
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (bdpd) dnnl_primitive_desc_destroy(bdpd);
    if (bwpd) dnnl_primitive_desc_destroy(bwpd);
    dnnl_primitive_attr_destroy(attr);
    return rc;
}

// The im2col path's nodes in rcv_graph_infer with at most GEMM_INFER_MAX_M output positions: a
// oneDNN direct conv with the fold as post-ops on NHWC, its weights reordered once per
// params_gen. There these convs are bound by reading the weights: ResNet-18 layer4's 3x3 convs
// (512 x 4608) at batch 1 (M = 4), one thread, ~1.0 ms in dnnl_sgemm, ~0.75-0.85 ms here; at batch
// 64 (M = 256) sgemm is ahead (14 against 17 ms). 1 (no error) when oneDNN has no such kernel.
#define GEMM_INFER_MAX_M 32
static int gemm_infer_build(rcv_graph *g, rcv_node *n, conv_state *s) {
    rcv_conv_attr a = n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    dnnl_memory_desc_t x_md, y_md, w_user, w_any;
    dnnl_dims_t wd = {ys.c, xs.c, a.kh, a.kw};
    if (g->nodes[n->in[0]].blocked || n->blocked || rcv_dnnl_md_nhwc(&x_md, xs) || rcv_dnnl_md_nhwc(&y_md, ys) ||
        dnnl_memory_desc_init_by_tag(&w_user, 4, wd, dnnl_f32, dnnl_oihw) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32, dnnl_format_tag_any) != dnnl_success)
        return 1;
    dnnl_dims_t strides = {a.sh, a.sw}, dil = {a.dh - 1, a.dw - 1}, pl = {a.ph, a.pw}, pr = {a.ph, a.pw};
    size_t wbytes = 0, pad = 0;
    if (infer_build(g, n, s, FOLD_POSTOPS, &x_md, &w_any, &w_user, &y_md, strides, dil, pl, pr, &wbytes, &pad))
        return 1;
    size_t top = 0;
    s->off_w = rcv_scratch_take(&top, wbytes);
    s->off_pad = rcv_scratch_take(&top, pad);
    rcv_graph_scratch(g, top / sizeof(float) + 1);
    return 0;
}

// Room for the folded affine; marks the BN as applied by this conv in rcv_graph_infer.
static int fold_ready(rcv_graph *g, rcv_node *n, conv_state *s) {
    if (!s->fold) return 0;
    s->ka = malloc((size_t)n->shape.c * sizeof(float));
    s->kb = malloc((size_t)n->shape.c * sizeof(float));
    if (!s->ka || !s->kb) return rcv_fail("conv2d: out of memory");
    if (s->wc_bytes && posix_memalign((void **)&s->wc, 64, s->wc_bytes)) {
        s->wc = NULL;
        return rcv_fail("conv2d: out of memory");
    }
    g->nodes[n->fold].folded = 1;
    return 0;
}

static int conv_prepare(rcv_graph *g, rcv_node *n) {
    rcv_conv_attr a = n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    conv_state *s = calloc(1, sizeof *s);
    if (!s) return rcv_fail("conv2d: out of memory");
    n->kstate = s;
    if (use_gemm(&a, ys) && g->precision == RCV_PREC_BF16) return bf16_gemm_prepare(g, n, s);
    if (use_gemm(&a, ys)) {
        s->gemm = 1;
        rcv_graph_scratch(g, (size_t)ys.n * ys.h * ys.w * xs.c * a.kh * a.kw);
        if (n->fold >= 0) {
            s->fold = FOLD_POSTOPS;
            // else the affine in the output loop
            s->gemm_inf = (size_t)ys.n * ys.h * ys.w <= GEMM_INFER_MAX_M && !gemm_infer_build(g, n, s);
        }
        return fold_ready(g, n, s);
    }
    if (g->precision == RCV_PREC_BF16) return conv_build(g, n, s, BF16);
    if (use_wino(&a, xs, ys)) {
        if (conv_build(g, n, s, WINO) == 0) {
            s->wino = 1;
            return fold_ready(g, n, s);
        }
        conv_state_clear(s); // this CPU/oneDNN has no Winograd for it: direct
    }
    if (conv_build(g, n, s, DIRECT)) return -1;
    return fold_ready(g, n, s);
}

// y = conv(x, w) + b
static void conv_forward(rcv_graph *g, rcv_node *n) {
    conv_state *s = n->kstate;
    if (s->gemm == 2) {
        bf16_gemm_forward(g, n, s);
        return;
    }
    if (s->gemm) {
        gemm_forward(g, n);
        return;
    }
    char *scr = (char *)g->scratch;
    void *w = rcv_param_data(g, n->param[0]);
    if (s->w_fwd.prim) {
        void *io[2] = {w, scr + s->off_w};
        rcv_dnnl_run(g, &s->w_fwd, io, scr + s->off_pad);
        w = scr + s->off_w;
    }
    void *b = n->attr.conv.has_bias ? rcv_param_data(g, n->param[1]) : NULL;
    void *x = rcv_in(g, n, 0);
    if (s->x_bf.prim) {
        void *io[2] = {x, n->saved};
        rcv_dnnl_run(g, &s->x_bf, io, scr + s->off_pad);
        x = n->saved;
    }
    void *args[4] = {x, w, s->y_out.prim ? (void *)(scr + s->off_dyb) : (void *)n->out, b};
    rcv_dnnl_run(g, &s->fwd, args, scr + s->off_pad);
    if (s->y_out.prim) {
        void *io[2] = {scr + s->off_dyb, n->out};
        rcv_dnnl_run(g, &s->y_out, io, scr + s->off_pad);
    }
}

// The folded BN's affine from its current parameters and running statistics, in double as the
// BN kernel's: ka = gamma / sqrt(var + eps), kb = (conv bias - mean) ka + beta.
static void fold_coeffs(rcv_graph *g, rcv_node *n, conv_state *s) {
    rcv_node *bn = &g->nodes[n->fold];
    const float *gw = rcv_param_data(g, bn->param[0]), *gb = rcv_param_data(g, bn->param[1]);
    const float *rm = rcv_param_data(g, bn->buf[0]), *rv = rcv_param_data(g, bn->buf[1]);
    const float *cb = n->attr.conv.has_bias ? rcv_param_data(g, n->param[1]) : NULL;
    for (int o = 0; o < n->shape.c; o++) {
        double ka = gw[o] / sqrt((double)rv[o] + bn->attr.bn.eps);
        s->ka[o] = (float)ka;
        s->kb[o] = (float)(((cb ? cb[o] : 0.0) - rm[o]) * ka + gb[o]);
    }
}

// rcv_graph_infer: y (the BN's out) = [relu](conv(x) ka + kb) when folded, else forward.
static void conv_infer(rcv_graph *g, rcv_node *n) {
    conv_state *s = n->kstate;
    if (!s->fold) {
        conv_forward(g, n);
        return;
    }
    rcv_node *bn = &g->nodes[n->fold];
    fold_coeffs(g, n, s);
    if (s->gemm && !s->gemm_inf) { // y (M x O) = col W^T, then the affine per row
        const rcv_conv_attr *a = &n->attr.conv;
        rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
        int M = ys.n * ys.h * ys.w, O = ys.c, K = xs.c * a->kh * a->kw, relu = bn->fused_relu;
        float *y = bn->out;
        const float *ka = s->ka, *kb = s->kb;
        im2col(a, xs, ys, rcv_in(g, n, 0), g->scratch);
        sgemm('N', 'T', M, O, K, g->scratch, K, rcv_param_data(g, n->param[0]), K, 0.0f, y, O);
        for (int m = 0; m < M; m++) {
            float *r = y + (size_t)m * O;
#pragma omp simd
            for (int o = 0; o < O; o++) {
                float v = r[o] * ka[o] + kb[o];
                r[o] = relu && !(v > 0) ? 0.0f : v;
            }
        }
        return;
    }
    char *scr = (char *)g->scratch;
    void *w = rcv_param_data(g, n->param[0]);
    if (s->fold == FOLD_WEIGHTS) { // OIHW rows scaled by ka: (O, C/G * kh * kw)
        size_t K = (size_t)rcv_in_shape(g, n, 0).c / n->attr.conv.groups * n->attr.conv.kh * n->attr.conv.kw;
        const float *w0 = w, *ka = s->ka;
        float *wf = (float *)(scr + s->off_wf);
        for (int o = 0; o < n->shape.c; o++)
#pragma omp simd
            for (size_t j = 0; j < K; j++) wf[o * K + j] = w0[o * K + j] * ka[o];
        w = wf;
    }
    if (s->wc) { // the post-op fold leaves the weights as they are: reorder once per params_gen
        if (s->wc_gen != g->params_gen + 1) {
            void *io[2] = {w, s->wc};
            rcv_dnnl_run(g, &s->w_inf, io, scr + s->off_pad);
            s->wc_gen = g->params_gen + 1;
        }
        w = s->wc;
    } else if (s->w_inf.prim) {
        void *io[2] = {w, scr + s->off_w};
        rcv_dnnl_run(g, &s->w_inf, io, scr + s->off_pad);
        w = scr + s->off_w;
    }
    void *x = rcv_in(g, n, 0);
    if (s->x_bf.prim) {
        void *io[2] = {x, n->saved};
        rcv_dnnl_run(g, &s->x_bf, io, scr + s->off_pad);
        x = n->saved;
    }
    void *y = s->y_out.prim ? (void *)(scr + s->off_dyb) : (void *)bn->out;
    void *args[5] = {x, w, y, s->ka, s->kb};
    if (s->fold == FOLD_WEIGHTS) args[3] = s->kb; // the bias
    rcv_dnnl_run(g, &s->inf, args, scr + s->off_pad);
    if (s->y_out.prim) {
        void *io[2] = {scr + s->off_dyb, bn->out};
        rcv_dnnl_run(g, &s->y_out, io, scr + s->off_pad);
    }
}

// dx (=|+=) conv_bwd_data(dy, w); dw += conv_bwd_weights(x, dy); db += sum dy
// (g->input_grad_only: dx alone; the weight pass is ~half the backward's time)
static void conv_backward(rcv_graph *g, rcv_node *n) {
    conv_state *s = n->kstate;
    if (s->gemm == 2) {
        bf16_gemm_backward(g, n, s);
        return;
    }
    if (s->gemm) {
        gemm_backward(g, n);
        return;
    }
    char *scr = (char *)g->scratch;
    float *dx = rcv_in_grad(g, n, 0);
    void *dy = n->grad, *x = rcv_in(g, n, 0);
    if (s->dy_bf.prim) {
        void *io[2] = {dy, scr + s->off_dyb};
        rcv_dnnl_run(g, &s->dy_bf, io, scr + s->off_pad);
        dy = scr + s->off_dyb;
    }
    if (s->x_bf.prim) x = n->saved; // the copy forward made in the compute layout
    if (dx && s->dx_gemm) {
        const rcv_conv_attr *a = &n->attr.conv;
        rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
        int M = ys.n * ys.h * ys.w, O = ys.c, K = xs.c * a->kh * a->kw;
        float *dcol = (float *)(scr + s->off_dcol);
        sgemm('N', 'N', M, K, O, dy, O, rcv_param_data(g, n->param[0]), K, 0.0f, dcol, K);
        col2im(a, xs, ys, dcol, dx, n->in_beta[0]);
    } else if (dx && s->bwd_d.prim) {
        void *w = rcv_param_data(g, n->param[0]);
        if (s->w_bwd_d.prim) {
            void *io[2] = {w, scr + s->off_w};
            rcv_dnnl_run(g, &s->w_bwd_d, io, scr + s->off_pad);
            w = scr + s->off_w;
        }
        int acc = n->in_beta[0];
        if (s->dx_out[0].prim) { // dx comes out blocked; the reorder back overwrites or accumulates
            void *args[3] = {dy, w, scr + s->off_dx};
            rcv_dnnl_run(g, &s->bwd_d, args, scr + s->off_pad);
            void *io[2] = {scr + s->off_dx, dx};
            rcv_dnnl_run(g, &s->dx_out[acc], io, scr + s->off_pad);
        } else {
            void *args[3] = {dy, w, acc ? (void *)(scr + s->off_dx) : (void *)dx};
            rcv_dnnl_run(g, &s->bwd_d, args, scr + s->off_pad);
            if (acc) rcv_cpu_add_to(dx, (const float *)(scr + s->off_dx), rcv_numel(rcv_in_shape(g, n, 0)));
        }
    }
    if (g->input_grad_only) return; // attacks: dx only
    void *args[4] = {x, dy, scr + s->off_w, scr + s->off_db};
    rcv_dnnl_run(g, &s->bwd_w, args, scr + s->off_pad);
    void *io[2] = {scr + s->off_w, rcv_param_grad(g, n->param[0])};
    rcv_dnnl_run(g, &s->dw_back, io, scr + s->off_pad);
    if (n->attr.conv.has_bias) {
        float *gb = rcv_param_grad(g, n->param[1]);
        const float *db = (const float *)(scr + s->off_db);
        for (int o = 0; o < n->shape.c; o++) gb[o] += db[o];
    }
}

// bf16 and Winograd keep x in their compute layout for backward-weights: a bf16 copy
// (numel / 2 floats) or nChw16c.
static size_t conv_saved_size(const rcv_graph *g, const rcv_node *n) {
    rcv_shape xs = g->nodes[n->in[0]].shape;
    if (use_gemm(&n->attr.conv, n->shape)) return 0;
    if (g->precision == RCV_PREC_BF16) return (rcv_numel(xs) + 1) / 2;
    // fp32: a copy of x when it is not in the compute layout (which pads no channels: nChw<b>c
    // is chosen only with C % b == 0). Sized for Winograd: prepare may fall back to direct.
    int cblk = compute_blocked(g, n, use_wino(&n->attr.conv, xs, n->shape));
    return g->nodes[n->in[0]].blocked != cblk ? rcv_numel(xs) : 0;
}

// fp32 oneDNN convolutions read and write either layout (compute_blocked). The im2col paths
// and bf16 (whose compute copies are made here anyway) stay NHWC.
static rcv_layout_kind conv_layout(const rcv_graph *g, const rcv_node *n) {
    const rcv_conv_attr *a = &n->attr.conv;
    return g->precision == RCV_PREC_FP32 && a->groups == 1 && !use_gemm(a, n->shape) ? RCV_LAYOUT_FREE
                                                                                       : RCV_LAYOUT_NHWC;
}

const rcv_kernels rcv_cpu_conv2d = {
    .prepare = conv_prepare,
    .saved_size = conv_saved_size,
    .forward = conv_forward,
    .backward = conv_backward,
    .release = conv_release,
    .layout = conv_layout,
    .infer = conv_infer,
};
