// cuda conv2d on NHWC activations: cuBLAS gemms for 1x1 stride-1 convs (below), cuDNN for
// the rest.
//
// Weights stay OIHW fp32 in g->dparams (PyTorch's layout, what checkpoints and the
// optimizer see); each forward writes an OHWI copy (cuDNN's KRSC filter layout for NHWC
// convolutions) in the compute type, and the filter gradient comes back through an OHWI
// buffer that is transposed and added into the OIHW gradient.
//
// Precision (g->precision): fp32 runs cuDNN with CUDNN_FMA_MATH (no TF32, comparable with
// the cpu backend); tf32 allows TF32 tensor cores on fp32 data; bf16/fp16 cast x (and dy)
// into the workspace, run cuDNN on 16-bit tensors with fp32 accumulation on tensor cores,
// and cast the result back into the fp32 output/gradient.
//
// Algorithms are searched once at prepare (cudnnFind*AlgorithmEx on temporary buffers of
// the plan's shapes) and the fastest one within the workspace cap is kept, with the math
// type it was timed with: Find tries each algorithm with the descriptor's math type and with
// CUDNN_DEFAULT_MATH, and running an algorithm under another math type than the one it was
// found with fails with CUDNN_STATUS_BAD_PARAM (bf16 resnet18 did on an H100). So each
// direction sets its own math type on the descriptor before its call. fp32 keeps
// CUDNN_FMA_MATH (DEFAULT_MATH would allow TF32 on fp32 data) and prefers FMA results.
#include <string.h>

#include "backend/cuda/cu_ctx.h"
#include "backend/cuda/kernels.h"
#include "robustcv/error.h"

#define WS_CAP ((size_t)1 << 30) // largest algorithm workspace we accept
#define ALIGN256(n) (((n) + 255) & ~(size_t)255)

typedef struct {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t m_fwd, m_data, m_filter; // the math type each algorithm was found with
    size_t ws_fwd, ws_data, ws_filter;
    rcv_cu_dtype dt;
    size_t esz;          // bytes per element of dt
    void *wk, *dwk;      // OHWI weights and weight gradient, type dt (own allocations)
    size_t wn;           // weight elements
    size_t xn, yn;       // activation elements
    int need_dx;
    int gemm;            // 1x1 stride-1 ungrouped conv run as a cuBLAS gemm: 1 fp32 inputs, 2 16-bit copies
    int M;               // gemm rows: N * H * W
} conv_state;

static void conv_release(rcv_node *n) {
    conv_state *st = n->kstate;
    if (!st) return;
    if (st->x) cudnnDestroyTensorDescriptor(st->x);
    if (st->y) cudnnDestroyTensorDescriptor(st->y);
    if (st->w) cudnnDestroyFilterDescriptor(st->w);
    if (st->conv) cudnnDestroyConvolutionDescriptor(st->conv);
    cudaFree(st->wk);
    cudaFree(st->dwk);
    free(st);
    n->kstate = NULL;
}

// Workspace layout while the op runs: [x in dt][y or dy in dt][dx in dt][algorithm workspace].
// The 16-bit copies exist only for bf16/fp16; fp32 uses the planned buffers directly.
static size_t lp_bytes(const conv_state *st) {
    if (st->dt == RCV_CU_F32) return 0;
    return ALIGN256(st->xn * st->esz) * 2 + ALIGN256(st->yn * st->esz);
}
static char *lp_x(cu_ctx *c, const conv_state *st) { return (char *)c->ws; }
static char *lp_y(cu_ctx *c, const conv_state *st) { return (char *)c->ws + ALIGN256(st->xn * st->esz); }
static char *lp_dx(cu_ctx *c, const conv_state *st) {
    return (char *)c->ws + ALIGN256(st->xn * st->esz) + ALIGN256(st->yn * st->esz);
}
static void *algo_ws(cu_ctx *c, const conv_state *st) { return (char *)c->ws + lp_bytes(st); }

static int cudnn_fail(const char *what, cudnnStatus_t s, const rcv_node *n) {
    return rcv_fail("cuDNN %s failed for conv '%s': %s", what, n->name, cudnnGetErrorString(s));
}

#define TRY(call, what)                                              \
    do {                                                             \
        cudnnStatus_t s_ = (call);                                   \
        if (s_ != CUDNN_STATUS_SUCCESS) return cudnn_fail(what, s_, n); \
    } while (0)

// The result of a Find to run: the first (fastest) that succeeded within the workspace cap;
// in fp32 (want = FMA) the first such found with FMA math if any, since DEFAULT_MATH may
// use TF32. -1 when none. *math: the math type to run it with.
typedef struct {
    cudnnStatus_t status;
    size_t memory;
    cudnnMathType_t math;
} found_t;
static int pick(const found_t *f, int got, size_t cap, cudnnMathType_t want, cudnnMathType_t *math) {
    for (int pass = want == CUDNN_FMA_MATH ? 0 : 1; pass < 2; pass++)
        for (int i = 0; i < got; i++)
            if (f[i].status == CUDNN_STATUS_SUCCESS && f[i].memory <= cap && (pass || f[i].math == CUDNN_FMA_MATH)) {
                *math = want == CUDNN_FMA_MATH ? CUDNN_FMA_MATH : f[i].math;
                return i;
            }
    return -1;
}
// The fields pick reads, copied out of one Find's results (three different struct types).
#define FOUND(perf, got, f)                                                                  \
    for (int i_ = 0; i_ < (got); i_++)                                                       \
    (f)[i_] = (found_t){(perf)[i_].status, (perf)[i_].memory, (perf)[i_].mathType}
// RCV_CONV_VERBOSE=2: every result of one Find (algo, status, ms, KiB, math).
#define FOUND_LOG(perf, got, dir)                                                                                    \
    do {                                                                                                             \
        const char *v_ = getenv("RCV_CONV_VERBOSE");                                                                 \
        if (v_ && atoi(v_) >= 2)                                                                                     \
            for (int i_ = 0; i_ < (got); i_++)                                                                       \
                fprintf(stderr, "find %-28s %-6s algo %d status %d %.3f ms %zu KiB math %d\n", n->name, dir,         \
                        (int)(perf)[i_].algo, (int)(perf)[i_].status, (perf)[i_].time, (perf)[i_].memory >> 10,      \
                        (int)(perf)[i_].mathType);                                                                   \
    } while (0)

// --- 1x1 convolutions as gemms ---
// A 1x1, stride-1, unpadded, ungrouped conv on NHWC activations is linear's product with
// N*H*W rows: x (M, C), w (O, C) (OIHW with kh = kw = 1 is O x C, no reformat), y (M, O).
// Column-major cuBLAS reads each row-major matrix as its transpose (as linear.c does):
//   y  = x w^T   ->  gemm(T, N, m=O, n=M, k=C, A=w (lda C), B=x (ldb C), C=y (ldc O))
//   dx = dy w    ->  gemm(N, N, m=C, n=M, k=O, A=w (lda C), B=dy (ldb O), C=dx (ldc C))
//   dw += dy^T x ->  gemm(N, T, m=C, n=O, k=M, A=x (lda C), B=dy (ldb O), C=dw (ldc C))
// The outputs are fp32 and cuBLAS's beta does the accumulation (dx in_beta, dw), so unlike
// cuDNN's 16-bit convolutions nothing is cast back and the OIHW gradient needs no transpose.
// Mode 1 (default) passes the fp32 tensors with compute type FAST_16BF/16F/TF32 (cuBLAS
// rounds the inputs itself: no cast kernels at all); mode 2 (RCV_CONV_GEMM=2) casts x/dy/w
// to 16 bits first and runs CUBLAS_COMPUTE_32F on them; RCV_CONV_GEMM=0 uses cuDNN.
// ResNet-50 has 33 such convs of 53 (every bottleneck's conv1/conv3). Why not cuDNN: on an
// H100 (cuDNN 9, bf16, batch 256 at 64x64) its legacy-API 1x1 convs took 2-3 ms per layer1
// conv (forward + backward, synced) against 0.18-0.2 ms as gemms; resnet50 bf16 went from
// 40.9 to 14.3 ms a step. Find also timed backward-data under DEFAULT_MATH at 4.5-8.7 ms.
static int gemm_mode(const rcv_graph *g, const rcv_conv_attr *a) {
    if (a->kh != 1 || a->kw != 1 || a->sh != 1 || a->sw != 1 || a->ph != 0 || a->pw != 0 || a->groups != 1) return 0;
    const char *e = getenv("RCV_CONV_GEMM");
    int m = e && *e ? atoi(e) : 1;
    if (m == 2 && g->precision != RCV_PREC_BF16 && g->precision != RCV_PREC_FP16) m = 1;
    return m == 1 || m == 2 ? m : 0;
}
static cublasComputeType_t gemm_compute(const rcv_graph *g, int mode) {
    if (mode == 2) return CUBLAS_COMPUTE_32F; // inputs already 16-bit
    switch (g->precision) {
    case RCV_PREC_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case RCV_PREC_BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    case RCV_PREC_FP16: return CUBLAS_COMPUTE_32F_FAST_16F;
    default: return CUBLAS_COMPUTE_32F_PEDANTIC;
    }
}
// A and B of type ab (fp32 or the 16-bit type), C always fp32.
static void conv_gemm(rcv_graph *g, const conv_state *st, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                      int k, const void *A, int lda, const void *B, int ldb, float beta, float *C, int ldc) {
    const float one = 1.0f;
    cudaDataType_t ab = st->gemm == 1 ? CUDA_R_32F : st->dt == RCV_CU_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    CUBLAS_CHECK(cublasGemmEx(cu_of(g)->cublas, ta, tb, m, n, k, &one, A, ab, lda, B, ab, ldb, &beta, C, CUDA_R_32F,
                              ldc, gemm_compute(g, st->gemm), CUBLAS_GEMM_DEFAULT));
}

// RCV_CONV_VERBOSE=1: each conv's chosen algorithms and the times Find measured for them
// (ms, running totals over the plan), to see where cuDNN's time goes.
static void report_choice(const rcv_node *n, const conv_state *st, float tf, float td, float tw) {
    static double sum[3];
    static int convs;
    if (!getenv("RCV_CONV_VERBOSE")) return;
    sum[0] += tf, sum[1] += td, sum[2] += tw, convs++;
    fprintf(stderr,
            "conv %-28s (%d, %d, %d, %d) fwd algo %d math %d %.3f ms | data algo %d math %d %.3f ms | filter algo %d math "
            "%d %.3f ms | ws %zu/%zu/%zu KiB | totals over %d convs %.2f %.2f %.2f ms\n",
            n->name, n->shape.n, n->shape.c, n->shape.h, n->shape.w, (int)st->fwd, (int)st->m_fwd, tf,
            (int)st->bwd_data, (int)st->m_data, td, (int)st->bwd_filter, (int)st->m_filter, tw, st->ws_fwd >> 10,
            st->ws_data >> 10, st->ws_filter >> 10, convs, sum[0], sum[1], sum[2]);
}

static int conv_prepare(rcv_graph *g, rcv_node *n) {
    cu_ctx *c = cu_of(g);
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    int Cg = xs.c / a->groups;
    conv_state *st = rcv_xcalloc(1, sizeof *st);
    n->kstate = st;
    cudnnDataType_t dtype = CUDNN_DATA_FLOAT;
    cudnnMathType_t math = CUDNN_FMA_MATH;
    st->dt = RCV_CU_F32;
    st->esz = 4;
    if (g->precision == RCV_PREC_TF32) math = CUDNN_DEFAULT_MATH;
    if (g->precision == RCV_PREC_BF16 || g->precision == RCV_PREC_FP16) {
        int bf = g->precision == RCV_PREC_BF16;
        dtype = bf ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
        st->dt = bf ? RCV_CU_BF16 : RCV_CU_F16;
        st->esz = 2;
        math = CUDNN_TENSOR_OP_MATH;
    }
    st->wn = (size_t)ys.c * Cg * a->kh * a->kw;
    st->xn = rcv_numel(xs);
    st->yn = rcv_numel(ys);
    st->need_dx = g->nodes[n->in[0]].grad != NULL;
    st->gemm = gemm_mode(g, a);
    st->M = xs.n * xs.h * xs.w;
    if (st->gemm) {
        // Only mode 2 needs the 16-bit weight copy (OIHW == OHWI for 1x1) and x/dy copies.
        if (st->gemm == 2) {
            cudaError_t e = cudaMalloc(&st->wk, st->wn * st->esz);
            if (e != cudaSuccess) return rcv_fail("conv '%s': weight copy: %s", n->name, cudaGetErrorString(e));
            return cu_ws_reserve(c, lp_bytes(st));
        }
        return 0;
    }

    TRY(cudnnCreateTensorDescriptor(&st->x), "create");
    TRY(cudnnCreateTensorDescriptor(&st->y), "create");
    TRY(cudnnCreateFilterDescriptor(&st->w), "create");
    TRY(cudnnCreateConvolutionDescriptor(&st->conv), "create");
    TRY(cudnnSetTensor4dDescriptor(st->x, CUDNN_TENSOR_NHWC, dtype, xs.n, xs.c, xs.h, xs.w), "input descriptor");
    TRY(cudnnSetTensor4dDescriptor(st->y, CUDNN_TENSOR_NHWC, dtype, ys.n, ys.c, ys.h, ys.w), "output descriptor");
    TRY(cudnnSetFilter4dDescriptor(st->w, dtype, CUDNN_TENSOR_NHWC, ys.c, Cg, a->kh, a->kw), "filter descriptor");
    TRY(cudnnSetConvolution2dDescriptor(st->conv, a->ph, a->pw, a->sh, a->sw, a->dh, a->dw, CUDNN_CROSS_CORRELATION,
                                        CUDNN_DATA_FLOAT),
        "convolution descriptor");
    TRY(cudnnSetConvolutionGroupCount(st->conv, a->groups), "group count");
    TRY(cudnnSetConvolutionMathType(st->conv, math), "math type");
    int on, oc, oh, ow;
    TRY(cudnnGetConvolution2dForwardOutputDim(st->conv, st->x, st->w, &on, &oc, &oh, &ow), "output size");
    if (on != ys.n || oc != ys.c || oh != ys.h || ow != ys.w)
        return rcv_fail("conv '%s': cuDNN computes output (%d, %d, %d, %d), the graph planned (%d, %d, %d, %d)",
                        n->name, on, oc, oh, ow, ys.n, ys.c, ys.h, ys.w);

    cudaError_t e;
    if ((e = cudaMalloc(&st->wk, st->wn * st->esz)) != cudaSuccess ||
        (e = cudaMalloc(&st->dwk, st->wn * st->esz)) != cudaSuccess)
        return rcv_fail("conv '%s': weight copies: %s", n->name, cudaGetErrorString(e));

    // Temporary tensors for the search, in the compute type.
    void *tx = NULL, *ty = NULL, *tws = NULL;
    size_t cap = WS_CAP, free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && free_b / 4 < cap) cap = free_b / 4;
    if ((e = cudaMalloc(&tx, st->xn * st->esz)) != cudaSuccess || (e = cudaMalloc(&ty, st->yn * st->esz)) != cudaSuccess ||
        (e = cudaMalloc(&tws, cap ? cap : 256)) != cudaSuccess) {
        cudaFree(tx);
        cudaFree(ty);
        cudaGetLastError();
        return rcv_fail("conv '%s': algorithm search buffers: %s", n->name, cudaGetErrorString(e));
    }
    cudaMemset(tx, 0, st->xn * st->esz);
    cudaMemset(ty, 0, st->yn * st->esz);
    cudaMemset(st->wk, 0, st->wn * st->esz);
    int rc = 0, got = 0;
    cudnnConvolutionFwdAlgoPerf_t pf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnStatus_t s = cudnnFindConvolutionForwardAlgorithmEx(c->cudnn, st->x, tx, st->w, st->wk, st->conv, st->y, ty,
                                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, pf, tws, cap);
    found_t f[CUDNN_CONVOLUTION_FWD_ALGO_COUNT + CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT +
              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    FOUND(pf, got, f);
    FOUND_LOG(pf, got, "fwd");
    float tf = 0, td = 0, tw = 0;
    int k = s == CUDNN_STATUS_SUCCESS ? pick(f, got, cap, math, &st->m_fwd) : -1;
    if (k < 0) rc = rcv_fail("conv '%s': no cuDNN forward algorithm (%s)", n->name, cudnnGetErrorString(s));
    else st->fwd = pf[k].algo, st->ws_fwd = pf[k].memory, tf = pf[k].time;
    if (!rc && st->need_dx) {
        cudnnConvolutionBwdDataAlgoPerf_t pd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        s = cudnnFindConvolutionBackwardDataAlgorithmEx(c->cudnn, st->w, st->wk, st->y, ty, st->conv, st->x, tx,
                                                        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, pd, tws, cap);
        FOUND(pd, got, f);
        FOUND_LOG(pd, got, "data");
        k = s == CUDNN_STATUS_SUCCESS ? pick(f, got, cap, math, &st->m_data) : -1;
        if (k < 0) rc = rcv_fail("conv '%s': no cuDNN backward-data algorithm (%s)", n->name, cudnnGetErrorString(s));
        else st->bwd_data = pd[k].algo, st->ws_data = pd[k].memory, td = pd[k].time;
    }
    if (!rc) {
        cudnnConvolutionBwdFilterAlgoPerf_t pw[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        s = cudnnFindConvolutionBackwardFilterAlgorithmEx(c->cudnn, st->x, tx, st->y, ty, st->conv, st->w, st->dwk,
                                                          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, pw, tws, cap);
        FOUND(pw, got, f);
        FOUND_LOG(pw, got, "filter");
        k = s == CUDNN_STATUS_SUCCESS ? pick(f, got, cap, math, &st->m_filter) : -1;
        if (k < 0) rc = rcv_fail("conv '%s': no cuDNN backward-filter algorithm (%s)", n->name, cudnnGetErrorString(s));
        else st->bwd_filter = pw[k].algo, st->ws_filter = pw[k].memory, tw = pw[k].time;
    }
    cudaFree(tx);
    cudaFree(ty);
    cudaFree(tws);
    if (rc) return rc;
    report_choice(n, st, tf, td, tw);
    size_t algo = st->ws_fwd;
    if (st->ws_data > algo) algo = st->ws_data;
    if (st->ws_filter > algo) algo = st->ws_filter;
    return cu_ws_reserve(c, lp_bytes(st) + algo);
}

static void conv_forward(rcv_graph *g, rcv_node *n) {
    cu_ctx *c = cu_of(g);
    conv_state *st = n->kstate;
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0);
    const float *x = rcv_in(g, n, 0), one = 1.0f, zero = 0.0f;
    if (st->gemm) {
        int C = xs.c, O = n->shape.c;
        const void *w = cu_param(g, n, 0), *xin = x;
        if (st->gemm == 2) {
            rcv_cu_cast(cu_param(g, n, 0), st->wk, st->wn, st->dt, c->stream);
            rcv_cu_cast(x, lp_x(c, st), st->xn, st->dt, c->stream);
            w = st->wk;
            xin = lp_x(c, st);
        }
        conv_gemm(g, st, CUBLAS_OP_T, CUBLAS_OP_N, O, st->M, C, w, C, xin, C, 0.0f, n->out, O);
        if (a->has_bias) rcv_cu_bias_add(n->out, cu_param(g, n, 1), st->yn / n->shape.c, n->shape.c, c->stream);
        return;
    }
    rcv_cu_w_to_ohwi(cu_param(g, n, 0), st->wk, n->shape.c, xs.c / a->groups, a->kh, a->kw, st->dt, c->stream);
    CUDNN_CHECK(cudnnSetConvolutionMathType(st->conv, st->m_fwd));
    if (st->dt == RCV_CU_F32) {
        CUDNN_CHECK(cudnnConvolutionForward(c->cudnn, &one, st->x, x, st->w, st->wk, st->conv, st->fwd, algo_ws(c, st),
                                            st->ws_fwd, &zero, st->y, n->out));
    } else {
        rcv_cu_cast(x, lp_x(c, st), st->xn, st->dt, c->stream);
        CUDNN_CHECK(cudnnConvolutionForward(c->cudnn, &one, st->x, lp_x(c, st), st->w, st->wk, st->conv, st->fwd,
                                            algo_ws(c, st), st->ws_fwd, &zero, st->y, lp_y(c, st)));
        rcv_cu_uncast(lp_y(c, st), n->out, st->yn, st->dt, 0, c->stream);
    }
    if (a->has_bias) rcv_cu_bias_add(n->out, cu_param(g, n, 1), st->yn / n->shape.c, n->shape.c, c->stream);
}

// dx (in_beta), dw (accumulate, through the OHWI buffer), db (accumulate).
static void conv_backward(rcv_graph *g, rcv_node *n) {
    cu_ctx *c = cu_of(g);
    conv_state *st = n->kstate;
    const rcv_conv_attr *a = &n->attr.conv;
    rcv_shape xs = rcv_in_shape(g, n, 0);
    const float *x = rcv_in(g, n, 0), *dy = n->grad, one = 1.0f, zero = 0.0f;
    int beta;
    float *dx = cu_in_grad(g, n, 0, &beta);
    const void *xin = x, *dyin = dy;
    if (st->gemm) {
        int C = xs.c, O = n->shape.c;
        const void *w = cu_param(g, n, 0);
        if (st->gemm == 2) {
            // st->wk still holds this step's 16-bit weights (the optimizer runs after backward).
            rcv_cu_cast(dy, lp_y(c, st), st->yn, st->dt, c->stream);
            rcv_cu_cast(x, lp_x(c, st), st->xn, st->dt, c->stream);
            w = st->wk;
            xin = lp_x(c, st);
            dyin = lp_y(c, st);
        }
        if (dx && st->need_dx) conv_gemm(g, st, CUBLAS_OP_N, CUBLAS_OP_N, C, st->M, O, w, C, dyin, O, beta ? 1.0f : 0.0f, dx, C);
        if (g->input_grad_only) return; // attacks want dx only
        conv_gemm(g, st, CUBLAS_OP_N, CUBLAS_OP_T, C, O, st->M, xin, C, dyin, O, 1.0f, cu_param_grad(g, n, 0), C);
        if (a->has_bias)
            rcv_cu_chan_sum(dy, NULL, cu_param_grad(g, n, 1), 1, st->yn / n->shape.c, n->shape.c, 1.0f, 1, c->stream);
        return;
    }
    if (st->dt != RCV_CU_F32) {
        // The forward's 16-bit copies were overwritten by later nodes: cast again.
        rcv_cu_cast(dy, lp_y(c, st), st->yn, st->dt, c->stream);
        rcv_cu_cast(x, lp_x(c, st), st->xn, st->dt, c->stream);
        xin = lp_x(c, st);
        dyin = lp_y(c, st);
    }
    if (dx && st->need_dx) {
        CUDNN_CHECK(cudnnSetConvolutionMathType(st->conv, st->m_data));
        if (st->dt == RCV_CU_F32) {
            CUDNN_CHECK(cudnnConvolutionBackwardData(c->cudnn, &one, st->w, st->wk, st->y, dy, st->conv, st->bwd_data,
                                                     algo_ws(c, st), st->ws_data, beta ? &one : &zero, st->x, dx));
        } else {
            CUDNN_CHECK(cudnnConvolutionBackwardData(c->cudnn, &one, st->w, st->wk, st->y, dyin, st->conv, st->bwd_data,
                                                     algo_ws(c, st), st->ws_data, &zero, st->x, lp_dx(c, st)));
            rcv_cu_uncast(lp_dx(c, st), dx, st->xn, st->dt, beta, c->stream);
        }
    }
    if (g->input_grad_only) return; // attacks want dx only
    CUDNN_CHECK(cudnnSetConvolutionMathType(st->conv, st->m_filter));
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(c->cudnn, &one, st->x, xin, st->y, dyin, st->conv, st->bwd_filter,
                                               algo_ws(c, st), st->ws_filter, &zero, st->w, st->dwk));
    rcv_cu_w_from_ohwi_acc(st->dwk, cu_param_grad(g, n, 0), n->shape.c, xs.c / a->groups, a->kh, a->kw, st->dt,
                           c->stream);
    if (a->has_bias)
        rcv_cu_chan_sum(dy, NULL, cu_param_grad(g, n, 1), 1, st->yn / n->shape.c, n->shape.c, 1.0f, 1, c->stream);
}

const rcv_kernels rcv_cuda_conv2d = {
    .prepare = conv_prepare,
    .forward = conv_forward,
    .backward = conv_backward,
    .release = conv_release,
};
