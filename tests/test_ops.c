// Every op of the cpu backend against the ref backend (ggml's test-backend-ops pattern).
//
// 1. Coverage: every op except INPUT/LABELS has a forward and a backward on both
//    backends, and at least one case below.
// 2. Agreement: each case builds the same small graph twice -- inputs -> op ->
//    mse(op, random target) (or the op itself when it is a loss) -- plans one on
//    ref and one on cpu, fills identical random inputs, parameters and buffers,
//    then runs forward + backward twice without zero_grad (parameter grads
//    accumulate, running stats update twice, dropout draws twice). It compares
//    every node's output and gradient, all parameter grads, all float buffers
//    (running stats) and the int64 buffers (num_batches_tracked, exactly).
//    Tolerance: max |cpu - ref| <= 1e-4 * max(|ref|, 1e-6) per tensor.
// 3. in_beta: a graph where one tensor feeds many consumers (conv, 1x1 conv, bn,
//    max/avg pool, relu, mul(x, x), concat(x, x), ...) so every kernel's
//    accumulate path (in_beta = 1) runs, compared the same way.
// 6. cpu batchnorm in train mode at M = 32768 rows per channel against float64 sums computed
//    here, within 1e-6: its precision must not degrade with the batch (check_bn_precision).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/graph.h"
#include "robustcv/ops.h"
#include "testutil.h"

int rcv_cpu_has_bf16(void); // backend/cpu/dnnl_ctx.c

#define TOL 1e-4

typedef struct {
    rcv_op op;
    const char *desc;
    int n, c, h, w;     // main input (N, C, H, W)
    int a[10];          // op-specific integers (see build)
    float f;            // op-specific float
    int train;          // training mode
    int no_input_grad;  // main input not marked require_grad (conv stem: no backward-data)
} tcase;

// Builds the op of case t on input x (and any extra inputs it needs); returns the op node.
static int build_op(rcv_graph *g, const tcase *t, int x) {
    const int *a = t->a;
    switch (t->op) {
    case RCV_OP_CONV2D: { // a: oc, kh, kw, sh, sw, ph, pw, dil, groups, bias
        rcv_conv_attr ca = {a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[7], a[8], a[9]};
        return rcv_conv2d_ex(g, "conv", x, a[0], ca);
    }
    case RCV_OP_BATCHNORM2D: return rcv_batchnorm2d(g, "bn", x, 1e-5f, t->f);
    case RCV_OP_RELU: return rcv_relu(g, "relu", x);
    case RCV_OP_SIGMOID: return rcv_sigmoid(g, "sigmoid", x);
    case RCV_OP_MAXPOOL2D: return rcv_maxpool2d(g, "maxpool", x, a[0], a[1], a[2], a[3]); // k, s, p, ceil
    case RCV_OP_AVGPOOL2D: return rcv_avgpool2d(g, "avgpool", x, a[0], a[1], a[2], a[3], a[4]); // + cip
    case RCV_OP_GLOBAL_AVGPOOL: return rcv_global_avgpool(g, "gap", x);
    case RCV_OP_ADAPTIVE_AVGPOOL: return rcv_adaptive_avgpool(g, "aap", x, a[0], a[1]); // oh, ow
    case RCV_OP_LINEAR: return rcv_linear(g, "fc", x, a[0], a[1]); // out, bias
    case RCV_OP_ADD:
    case RCV_OP_MUL: { // a[0]: b is 0 same shape, 1 (N, C, 1, 1), 2 (N, 1, H, W); a[1]: b is x itself
        int b = x;
        if (!a[1]) b = rcv_input(g, "b", a[0] == 2 ? 1 : t->c, a[0] == 1 ? 1 : t->h, a[0] == 1 ? 1 : t->w);
        return t->op == RCV_OP_ADD ? rcv_add(g, "add", x, b) : rcv_mul(g, "mul", x, b);
    }
    case RCV_OP_SCALE_ADD: {
        int b = rcv_input(g, "b", t->c, t->h, t->w);
        return rcv_scale_add(g, "sadd", x, b, 0.7f, -1.3f);
    }
    case RCV_OP_CONCAT: { // a: channels of two more inputs
        int xs[3] = {x, rcv_input(g, "b", a[0], t->h, t->w), rcv_input(g, "c", a[1], t->h, t->w)};
        return rcv_concat(g, "cat", xs, 3);
    }
    case RCV_OP_DROPOUT: return rcv_dropout(g, "drop", x, t->f);
    case RCV_OP_FLATTEN: return rcv_flatten(g, "flat", x);
    case RCV_OP_UPSAMPLE_NEAREST: return rcv_upsample_nearest(g, "up", x, a[0]);
    case RCV_OP_UPSAMPLE_BILINEAR: return rcv_upsample_bilinear(g, "up", x, a[0], a[1]);
    case RCV_OP_NORMALIZE: {
        float mean[4] = {0.485f, 0.456f, 0.406f, 0.5f}, std[4] = {0.229f, 0.224f, 0.225f, 0.25f};
        return rcv_normalize(g, "norm", x, mean, std);
    }
    case RCV_OP_CROSS_ENTROPY: return rcv_cross_entropy(g, "ce", x, rcv_labels(g, "labels"), t->f);
    case RCV_OP_KL_DIV: return rcv_kl_div(g, "kl", x, rcv_input(g, "q", t->c, t->h, t->w));
    case RCV_OP_SMOOTH_L1: return rcv_smooth_l1(g, "sl1", x, rcv_input(g, "t", t->c, t->h, t->w), t->f);
    case RCV_OP_MSE: return rcv_mse(g, "mse", x, rcv_input(g, "t", t->c, t->h, t->w));
    default: return -1;
    }
}

static int is_loss(rcv_op op) {
    return op == RCV_OP_CROSS_ENTROPY || op == RCV_OP_KL_DIV || op == RCV_OP_SMOOTH_L1 || op == RCV_OP_MSE;
}

typedef int (*builder)(rcv_graph *g, const tcase *t, int *loss);

// inputs -> op -> mse(op, target); returns 0 or -1.
static int build_case(rcv_graph *g, const tcase *t, int *loss) {
    int x = rcv_input(g, "x", t->c, t->h, t->w);
    int y = build_op(g, t, x);
    if (y < 0) return -1;
    if (is_loss(t->op)) {
        *loss = y;
    } else {
        rcv_shape s = g->nodes[y].shape;
        int tgt = rcv_input(g, "target", s.c, s.h, s.w);
        *loss = rcv_mse(g, "loss", y, tgt);
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == RCV_OP_INPUT && strcmp(g->nodes[i].name, "target") &&
            !(i == x && t->no_input_grad))
            rcv_graph_require_grad(g, i);
    return *loss < 0 ? -1 : 0;
}

// x -> conv -> bn -> relu -> conv -> bn -> relu -> mse: both BN -> ReLU pairs fuse on cpu.
static int build_fused(rcv_graph *g, const tcase *t, int *loss) {
    int x = rcv_input(g, "x", t->c, t->h, t->w);
    rcv_graph_require_grad(g, x);
    int h = rcv_relu(g, "r1", rcv_batchnorm2d(g, "bn1", rcv_conv2d(g, "c1", x, 8, 3, 1, 1, 1, 1, 0), 1e-5f, 0.1f));
    int y = rcv_relu(g, "r2", rcv_batchnorm2d(g, "bn2", rcv_conv2d(g, "c2", h, 8, 3, 1, 1, 1, 1, 0), 1e-5f, 0.1f));
    rcv_shape s = g->nodes[y].shape;
    int tgt = rcv_input(g, "target", s.c, s.h, s.w);
    *loss = rcv_mse(g, "loss", y, tgt);
    return *loss < 0 ? -1 : 0;
}

// Tensors with several consumers, so every non-loss kernel runs its in_beta = 1 path:
// x: (N, 8, H, W) (H, W even) feeds conv 3x3 / 1x1 / grouped, bn, max/avg pool, relu,
// sigmoid, dropout, mul(x, x), add(x, x), scale_add(x, x), gap and a gate mul; the
// pooled p = maxpool(x) feeds nearest and bilinear upsampling; z = conv1x1(x) (3 ch)
// feeds normalize and relu; gap(x) feeds the gate and a flatten; that flatten feeds
// two linears. Everything meets in one concat -> + linear (broadcast) -> mse.
// (A graph has one loss node, so the losses' accumulate path is not exercised here.)
static int build_fanout(rcv_graph *g, const tcase *t, int *loss) {
    int x = rcv_input(g, "x", t->c, t->h, t->w);
    rcv_graph_require_grad(g, x);
    int parts[16], np = 0;
    parts[np++] = rcv_conv2d(g, "c3", x, t->c, 3, 1, 1, 1, 1, 1);
    parts[np++] = rcv_conv2d(g, "c1", x, t->c, 1, 1, 0, 1, 1, 0);
    parts[np++] = rcv_conv2d(g, "cg", x, t->c, 3, 1, 1, 1, 2, 0);
    parts[np++] = rcv_batchnorm2d(g, "bn", x, 1e-5f, 0.1f);
    parts[np++] = rcv_maxpool2d(g, "mp", x, 3, 1, 1, 0);
    parts[np++] = rcv_avgpool2d(g, "ap", x, 3, 1, 1, 0, 1);
    parts[np++] = rcv_relu(g, "relu", x);
    parts[np++] = rcv_sigmoid(g, "sig", x);
    parts[np++] = rcv_dropout(g, "drop", x, 0.25f);
    parts[np++] = rcv_mul(g, "sq", x, x);
    parts[np++] = rcv_add(g, "dbl", x, x);
    parts[np++] = rcv_scale_add(g, "sadd", x, x, 0.5f, 2.0f);
    int gx = rcv_global_avgpool(g, "gap", x);
    parts[np++] = rcv_mul(g, "gate", x, gx); // b: (N, C, 1, 1)
    int pooled = rcv_maxpool2d(g, "mp2", x, 2, 2, 0, 0);
    parts[np++] = rcv_upsample_nearest(g, "upn", pooled, 2);
    parts[np++] = rcv_upsample_bilinear(g, "upb", pooled, 2, 0);
    int sum = parts[0];
    for (int i = 1; i < np; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "sum%d", i);
        sum = rcv_add(g, nm, sum, parts[i]);
    }
    int z = rcv_conv2d(g, "z", x, 3, 1, 1, 0, 1, 1, 0);
    int cat_in[3] = {sum, rcv_normalize(g, "norm", z, (float[]){0.1f, 0.2f, 0.3f}, (float[]){0.5f, 0.6f, 0.7f}),
                     rcv_relu(g, "zr", z)};
    int cat = rcv_concat(g, "cat", cat_in, 3); // (N, C + 6, H, W)
    int fl = rcv_flatten(g, "flat", gx);
    int fc = rcv_add(g, "fcs", rcv_linear(g, "fc", fl, t->c + 6, 1), rcv_linear(g, "fc2", fl, t->c + 6, 0));
    int y = rcv_add(g, "y", cat, fc);
    rcv_shape s = g->nodes[y].shape;
    *loss = rcv_mse(g, "loss", y, rcv_input(g, "target", s.c, s.h, s.w));
    return *loss < 0 ? -1 : 0;
}

// Builds t with `build` on backend be, runs two training steps; returns the graph.
static rcv_precision cpu_precision = RCV_PREC_FP32; // section 4 runs the cpu side in bf16
static int keep_all = 1;                       // section 5 lets the planner fuse and share
static double tol = TOL;

static rcv_graph *run_case(const tcase *t, builder build, rcv_backend be) {
    rcv_graph *g = rcv_graph_new();
    int loss;
    if (build(g, t, &loss)) {
        fprintf(stderr, "build %s: %s\n", t->desc, rcv_error());
        rcv_graph_free(g);
        return NULL;
    }
    if (be == RCV_BACKEND_CPU) g->precision = cpu_precision;
    g->keep_grads = keep_all; // every node's gradient is compared (and nothing is fused)
    if (rcv_graph_plan(g, t->n, be)) {
        fprintf(stderr, "plan %s on %d: %s\n", t->desc, (int)be, rcv_error());
        rcv_graph_free(g);
        return NULL;
    }
    rcv_graph_set_training(g, t->train);
    unsigned seed = 1234;
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_INPUT) {
            fill_uniform(n->out, rcv_numel(n->shape), seed + 17 * i, -2.0f, 2.0f);
            // maxpool with f > 0: inputs on a grid of step 1/f, so windows hold ties
            if (t->op == RCV_OP_MAXPOOL2D && t->f > 0)
                for (size_t e = 0; e < rcv_numel(n->shape); e++) n->out[e] = floorf(n->out[e] * t->f) / t->f;
        }
        if (n->op == RCV_OP_LABELS) {
            int K = 0;
            for (int j = 0; j < g->n_nodes; j++)
                if (g->nodes[j].op == RCV_OP_CROSS_ENTROPY && g->nodes[j].in[1] == i) K = rcv_in_shape(g, &g->nodes[j], 0).c;
            for (int b = 0; b < n->shape.n; b++) n->idata[b] = (b * 7 + 3) % (K ? K : 1);
        }
    }
    fill_uniform(g->params, g->n_param_floats, seed + 1, -1.0f, 1.0f);
    fill_uniform(g->buffers, g->n_buffer_floats, seed + 2, 0.5f, 1.5f); // running_var must be > 0
    for (size_t i = 0; i < g->n_ibuffers; i++) g->ibuffers[i] = 3;
    rcv_rng_init(&g->rng, 42);
    rcv_graph_zero_grad(g);
    // Upstream scale: the mse mean divides by the output size; scale it back to O(1).
    float scale = 1.0f;
    rcv_node *ln = &g->nodes[loss];
    if (ln->op == RCV_OP_MSE) scale = (float)rcv_numel(rcv_in_shape(g, ln, 0)) * 0.5f;
    for (int step = 0; step < 2; step++) {
        rcv_graph_forward(g);
        rcv_graph_backward(g, loss, scale);
    }
    return g;
}

static double worst_err;
static char worst_what[256];

static void compare(const char *desc, const char *what, const float *cpu, const float *ref, size_t n) {
    double e = max_rel_err(cpu, ref, n, 1e-6);
    if (e > worst_err) {
        worst_err = e;
        snprintf(worst_what, sizeof worst_what, "%s: %s", desc, what);
    }
    CHECK(e <= tol, "%s: %s differs: max err %.3g of max |ref| (tolerance %g)", desc, what, e, tol);
}

static void check_case(const tcase *t, builder build) {
    rcv_graph *r = run_case(t, build, RCV_BACKEND_REF);
    rcv_graph *c = run_case(t, build, RCV_BACKEND_CPU);
    CHECK(r && c, "%s: could not build/plan", t->desc);
    if (r && c) {
        for (int i = 0; i < r->n_nodes; i++) {
            rcv_node *a = &c->nodes[i], *b = &r->nodes[i];
            char what[160];
            if (b->out) {
                snprintf(what, sizeof what, "output of %s '%s'", rcv_op_name(b->op), b->name);
                compare(t->desc, what, a->out, b->out, rcv_numel(b->shape));
            }
            CHECK(!a->grad == !b->grad, "%s: node %s has a grad on one backend only", t->desc, b->name);
            if (a->grad && b->grad) {
                snprintf(what, sizeof what, "gradient of %s '%s'", rcv_op_name(b->op), b->name);
                compare(t->desc, what, a->grad, b->grad, rcv_numel(b->shape));
            }
        }
        for (int p = 0; p < r->n_params; p++) {
            rcv_param *pi = &r->param_info[p];
            if (pi->kind == RCV_PARAM) compare(t->desc, pi->name, rcv_param_grad(c, p), rcv_param_grad(r, p), pi->numel);
            else if (pi->kind == RCV_BUFFER) compare(t->desc, pi->name, rcv_param_data(c, p), rcv_param_data(r, p), pi->numel);
            else
                CHECK(c->ibuffers[pi->offset] == r->ibuffers[pi->offset], "%s: %s: cpu %lld, ref %lld", t->desc, pi->name,
                      (long long)c->ibuffers[pi->offset], (long long)r->ibuffers[pi->offset]);
        }
    }
    rcv_graph_free(r);
    rcv_graph_free(c);
}

#define CONV(desc, n, c, h, w, oc, kh, kw, sh, sw, ph, pw, d, gr, b, nog) \
    {RCV_OP_CONV2D, desc, n, c, h, w, {oc, kh, kw, sh, sw, ph, pw, d, gr, b}, 0, 1, nog}

static const tcase cases[] = {
    CONV("conv 3x3 s1 p1 bias", 2, 8, 7, 6, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0),
    CONV("conv 3x3 s1 p1 64->64", 2, 64, 6, 6, 64, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0),
    CONV("conv 3x3 s2 p1", 2, 16, 9, 8, 32, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0),
    CONV("conv 1x1 s1", 2, 16, 5, 5, 24, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0),
    CONV("conv 1x1 s2 downsample", 2, 32, 8, 8, 64, 1, 1, 2, 2, 0, 0, 1, 1, 0, 0),
    CONV("conv 7x7 s2 p3 stem (no input grad)", 2, 3, 16, 16, 16, 7, 7, 2, 2, 3, 3, 1, 1, 0, 1),
    CONV("conv 7x7 s2 p3 stem (input grad)", 2, 3, 15, 15, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1, 0),
    CONV("conv 3x3 dilation 2", 2, 8, 9, 9, 8, 3, 3, 1, 1, 2, 2, 2, 1, 0, 0),
    CONV("conv groups 2", 2, 8, 6, 6, 12, 3, 3, 1, 1, 1, 1, 1, 2, 1, 0),
    CONV("conv depthwise", 2, 16, 6, 6, 16, 3, 3, 2, 2, 1, 1, 1, 16, 0, 0),
    CONV("conv rect 3x1 s(2,1) p(1,0) odd C", 3, 5, 9, 7, 7, 3, 1, 2, 1, 1, 0, 1, 1, 1, 0),
    CONV("conv 5x5 p0 no bias", 1, 4, 8, 8, 6, 5, 5, 1, 1, 0, 0, 1, 1, 0, 0),
    // outputs of <= 4 pixels take the im2col + sgemm path
    CONV("conv 3x3 p1 on 2x2 (gemm path)", 3, 32, 2, 2, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0),
    CONV("conv 3x3 s2 4x4 -> 2x2 (gemm path)", 3, 16, 4, 4, 24, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0),
    CONV("conv 1x1 s2 4x4 -> 2x2 (gemm path)", 2, 16, 4, 4, 32, 1, 1, 2, 2, 0, 0, 1, 1, 0, 0),
    CONV("conv rect 3x2 dil 2 on 3x3 -> 1x2 (gemm path)", 2, 6, 3, 3, 5, 3, 2, 1, 1, 1, 0, 2, 1, 1, 0),
    CONV("conv 3x3 on 2x2, no input grad (gemm path)", 2, 8, 2, 2, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
    {RCV_OP_BATCHNORM2D, "bn train", 4, 16, 5, 6, {0}, 0.1f, 1, 0},
    {RCV_OP_BATCHNORM2D, "bn train C=3", 3, 3, 4, 4, {0}, 0.3f, 1, 0},
    {RCV_OP_BATCHNORM2D, "bn eval", 4, 16, 5, 6, {0}, 0.1f, 0, 0},
    {RCV_OP_BATCHNORM2D, "bn train 1x1 spatial", 8, 32, 1, 1, {0}, 0.1f, 1, 0},
    {RCV_OP_RELU, "relu", 2, 5, 4, 3, {0}, 0, 1, 0},
    {RCV_OP_SIGMOID, "sigmoid", 2, 5, 4, 3, {0}, 0, 1, 0},
    {RCV_OP_MAXPOOL2D, "maxpool k3 s2 p1", 2, 16, 8, 8, {3, 2, 1, 0}, 0, 1, 0},
    {RCV_OP_MAXPOOL2D, "maxpool k2 s2", 2, 8, 6, 6, {2, 2, 0, 0}, 0, 1, 0},
    {RCV_OP_MAXPOOL2D, "maxpool k3 s2 ceil", 2, 8, 8, 8, {3, 2, 0, 1}, 0, 1, 0},
    {RCV_OP_MAXPOOL2D, "maxpool k3 s2 p1 ceil odd", 2, 5, 7, 6, {3, 2, 1, 1}, 0, 1, 0},
    {RCV_OP_MAXPOOL2D, "maxpool k2 s2 floor odd", 2, 5, 7, 5, {2, 2, 0, 0}, 0, 1, 0},
    {RCV_OP_MAXPOOL2D, "maxpool k2 s2 C20 (16 + 4 lanes) with ties", 2, 20, 6, 6, {2, 2, 0, 0}, 1.0f, 1, 0},
    {RCV_OP_MAXPOOL2D, "maxpool k3 s2 p1 with ties (first max wins)", 2, 70, 6, 6, {3, 2, 1, 0}, 1.0f, 1, 0},
    {RCV_OP_AVGPOOL2D, "avgpool k2 s2", 2, 8, 6, 6, {2, 2, 0, 0, 1}, 0, 1, 0},
    {RCV_OP_AVGPOOL2D, "avgpool k3 s1 p1 include pad", 2, 8, 5, 5, {3, 1, 1, 0, 1}, 0, 1, 0},
    {RCV_OP_AVGPOOL2D, "avgpool k3 s1 p1 exclude pad", 2, 8, 5, 5, {3, 1, 1, 0, 0}, 0, 1, 0},
    {RCV_OP_AVGPOOL2D, "avgpool k3 s2 p1 ceil include pad", 2, 8, 8, 8, {3, 2, 1, 1, 1}, 0, 1, 0},
    {RCV_OP_AVGPOOL2D, "avgpool k2 s2 ceil exclude pad odd", 2, 8, 7, 7, {2, 2, 0, 1, 0}, 0, 1, 0},
    {RCV_OP_GLOBAL_AVGPOOL, "global avgpool", 3, 20, 4, 5, {0}, 0, 1, 0},
    {RCV_OP_ADAPTIVE_AVGPOOL, "adaptive avgpool 2x2 -> 7x7 (VGG at 64x64)", 2, 24, 2, 2, {7, 7}, 0, 1, 0},
    {RCV_OP_ADAPTIVE_AVGPOOL, "adaptive avgpool 10x9 -> 4x3", 2, 8, 10, 9, {4, 3}, 0, 1, 0},
    {RCV_OP_ADAPTIVE_AVGPOOL, "adaptive avgpool 7x7 -> 7x7", 2, 8, 7, 7, {7, 7}, 0, 1, 0},
    {RCV_OP_LINEAR, "linear bias", 4, 24, 1, 1, {10, 1}, 0, 1, 0},
    {RCV_OP_LINEAR, "linear no bias", 3, 37, 1, 1, {11, 0}, 0, 1, 0},
    {RCV_OP_ADD, "add same", 2, 6, 4, 5, {0, 0}, 0, 1, 0},
    {RCV_OP_ADD, "add (N,C,1,1)", 2, 6, 4, 5, {1, 0}, 0, 1, 0},
    {RCV_OP_ADD, "add (N,1,H,W)", 2, 6, 4, 5, {2, 0}, 0, 1, 0},
    {RCV_OP_ADD, "add(x, x)", 2, 6, 4, 5, {0, 1}, 0, 1, 0},
    {RCV_OP_MUL, "mul same", 2, 6, 4, 5, {0, 0}, 0, 1, 0},
    {RCV_OP_MUL, "mul (N,C,1,1)", 2, 6, 4, 5, {1, 0}, 0, 1, 0},
    {RCV_OP_MUL, "mul (N,1,H,W)", 2, 6, 4, 5, {2, 0}, 0, 1, 0},
    {RCV_OP_MUL, "mul(x, x)", 2, 6, 4, 5, {0, 1}, 0, 1, 0},
    {RCV_OP_SCALE_ADD, "scale_add", 2, 6, 4, 5, {0}, 0, 1, 0},
    {RCV_OP_CONCAT, "concat", 2, 3, 4, 5, {5, 8}, 0, 1, 0},
    {RCV_OP_DROPOUT, "dropout train", 2, 6, 4, 5, {0}, 0.3f, 1, 0},
    {RCV_OP_DROPOUT, "dropout eval", 2, 6, 4, 5, {0}, 0.3f, 0, 0},
    {RCV_OP_FLATTEN, "flatten", 2, 6, 3, 4, {0}, 0, 1, 0},
    {RCV_OP_FLATTEN, "flatten 1x1", 2, 16, 1, 1, {0}, 0, 1, 0},
    {RCV_OP_UPSAMPLE_NEAREST, "upsample nearest x2", 2, 5, 3, 4, {2}, 0, 1, 0},
    {RCV_OP_UPSAMPLE_NEAREST, "upsample nearest x3", 1, 3, 2, 3, {3}, 0, 1, 0},
    {RCV_OP_UPSAMPLE_BILINEAR, "upsample bilinear x2", 2, 5, 3, 4, {2, 0}, 0, 1, 0},
    {RCV_OP_UPSAMPLE_BILINEAR, "upsample bilinear x2 align_corners", 2, 5, 3, 4, {2, 1}, 0, 1, 0},
    {RCV_OP_UPSAMPLE_BILINEAR, "upsample bilinear x3", 1, 4, 4, 3, {3, 0}, 0, 1, 0},
    {RCV_OP_NORMALIZE, "normalize", 2, 3, 4, 5, {0}, 0, 1, 0},
    {RCV_OP_CROSS_ENTROPY, "cross_entropy", 6, 10, 1, 1, {0}, 0, 1, 0},
    {RCV_OP_CROSS_ENTROPY, "cross_entropy ls 0.1", 6, 10, 1, 1, {0}, 0.1f, 1, 0},
    {RCV_OP_KL_DIV, "kl_div", 5, 7, 1, 1, {0}, 0, 1, 0},
    {RCV_OP_SMOOTH_L1, "smooth_l1 beta 1", 2, 4, 3, 3, {0}, 1.0f, 1, 0},
    {RCV_OP_SMOOTH_L1, "smooth_l1 beta 0", 2, 4, 3, 3, {0}, 0.0f, 1, 0},
    {RCV_OP_MSE, "mse", 2, 4, 3, 3, {0}, 0, 1, 0},
};

// 6. cpu batchnorm (train, M = N*H*W = 32768 rows) against float64 sums computed here: its
// statistics and backward sums must not lose precision with M. x per channel has mean in
// [-4, 4] and std in [0.5, 2] (E[x^2] - E[x]^2 cancels), dy is zero-mean noise (masked by the
// fused ReLU where there is one: with our mask, so a ReLU input within rounding of 0 does not
// count). Every tensor within 1e-6 relative (these loops: 1.1e-7 .. 2.1e-7; oneDNN 2.6's
// primitive, which the cpu backend used before, sums in float32: 2.7e-6 on the output, 9e-7 on
// dx, 6e-6 on dweight here).
static void check_bn_precision(int fused) {
    const int N = 32, C = 64, H = 32;
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", C, H, H);
    int bn = rcv_batchnorm2d(g, "bn", x, 1e-5f, 0.1f), y = fused ? rcv_relu(g, "relu", bn) : bn;
    rcv_graph_require_grad(g, x);
    CHECK(rcv_graph_plan(g, N, RCV_BACKEND_CPU) == 0, "bn precision plan: %s", rcv_error());
    CHECK(g->nodes[bn].fused_relu == fused, "bn precision: fusion as planned");
    rcv_graph_set_training(g, 1);
    size_t M = (size_t)N * H * H, n = M * C;
    float *u = malloc(2 * n * sizeof(float)), *dy = malloc(n * sizeof(float)), *mc = malloc(2 * C * sizeof(float));
    fill_uniform(u, 2 * n, 41, 1e-7f, 1.0f);
    fill_uniform(mc, 2 * (size_t)C, 42, 0.0f, 1.0f);
    float *xv = g->nodes[x].out, *w = rcv_param_data(g, g->nodes[bn].param[0]), *b = rcv_param_data(g, g->nodes[bn].param[1]);
    for (size_t i = 0; i < n; i++) { // Box-Muller normals from pairs of uniforms
        double z = sqrt(-2 * log(u[2 * i])) * cos(6.283185307179586 * u[2 * i + 1]);
        int c = (int)(i % (size_t)C);
        xv[i] = (float)(8 * mc[c] - 4 + (0.5 + 1.5 * mc[C + c]) * z);
        dy[i] = (float)(sqrt(-2 * log(u[2 * i + 1])) * sin(6.283185307179586 * u[2 * i]));
    }
    for (int c = 0; c < C; c++) w[c] = 0.5f + mc[c], b[c] = mc[C + c] - 0.5f;
    rcv_graph_zero_grad(g);
    rcv_graph_forward(g);
    rcv_graph_backward_from(g, y, dy);
    const float *yo = g->nodes[y].out, *dx = g->nodes[x].grad;
    const float *gw = rcv_param_grad(g, g->nodes[bn].param[0]), *gb = rcv_param_grad(g, g->nodes[bn].param[1]);
    double *ref = malloc((n + 2 * (size_t)C) * sizeof(double)), e_y = 0, s_y = 0, e_x = 0, s_x = 0, e_w = 0, s_w = 0,
           e_b = 0, s_b = 0;
    for (int c = 0; c < C; c++) {
        double mu = 0, var = 0, db = 0, dw = 0;
        for (size_t r = 0; r < M; r++) mu += xv[r * C + c];
        mu /= (double)M;
        for (size_t r = 0; r < M; r++) var += (xv[r * C + c] - mu) * (xv[r * C + c] - mu);
        var /= (double)M;
        double is = 1 / sqrt(var + 1e-5f);
        for (size_t r = 0; r < M; r++) {
            size_t i = r * C + c;
            double v = (xv[i] - mu) * is * w[c] + b[c];
            if (fused) v = v > 0 ? v : 0;
            e_y = fmax(e_y, fabs(yo[i] - v)), s_y = fmax(s_y, fabs(v));
            double d = fused && !(yo[i] > 0) ? 0 : dy[i];
            ref[i] = d;
            db += d, dw += d * (xv[i] - mu) * is;
        }
        for (size_t r = 0; r < M; r++) {
            size_t i = r * C + c;
            double v = w[c] * is * (ref[i] - db / (double)M - (xv[i] - mu) * is * dw / (double)M);
            e_x = fmax(e_x, fabs(dx[i] - v)), s_x = fmax(s_x, fabs(v));
        }
        e_w = fmax(e_w, fabs(gw[c] - dw)), s_w = fmax(s_w, fabs(dw));
        e_b = fmax(e_b, fabs(gb[c] - db)), s_b = fmax(s_b, fabs(db));
    }
    e_y /= s_y, e_x /= s_x, e_w /= s_w, e_b /= s_b;
    printf("%s   bn%s train at M = %zu vs float64 sums: output %.1e, input grad %.1e, dweight %.1e, dbias %.1e\n",
           e_y <= 1e-6 && e_x <= 1e-6 && e_w <= 1e-6 && e_b <= 1e-6 ? "ok" : "FAIL", fused ? "+relu" : "", M, e_y,
           e_x, e_w, e_b);
    CHECK(e_y <= 1e-6 && e_x <= 1e-6 && e_w <= 1e-6 && e_b <= 1e-6, "bn%s precision at M = %zu", fused ? "+relu" : "",
          M);
    free(u), free(dy), free(mc), free(ref);
    rcv_graph_free(g);
}

int main(void) {
    int ncases = (int)(sizeof cases / sizeof cases[0]);
    // 1. coverage
    for (int op = 0; op < RCV_OP_COUNT; op++) {
        if (op == RCV_OP_INPUT || op == RCV_OP_LABELS) continue;
        const rcv_kernels *r = rcv_backend_ref_kernels(op), *c = rcv_backend_cpu_kernels(op);
        CHECK(r && r->forward && r->backward, "op %s: ref kernel missing", rcv_op_name(op));
        CHECK(c && c->forward && c->backward, "op %s: cpu kernel missing", rcv_op_name(op));
        int covered = 0;
        for (int i = 0; i < ncases; i++) covered += cases[i].op == (rcv_op)op;
        CHECK(covered > 0, "op %s: no test case", rcv_op_name(op));
    }
    // 2. every case
    for (int i = 0; i < ncases; i++) {
        const rcv_kernels *r = rcv_backend_ref_kernels(cases[i].op), *c = rcv_backend_cpu_kernels(cases[i].op);
        if (!r || !r->forward || !c || !c->forward) continue; // reported above
        int before = rcv_test_fail;
        check_case(&cases[i], build_case);
        if (rcv_test_fail == before) printf("ok   %s\n", cases[i].desc);
        else printf("FAIL %s\n", cases[i].desc);
    }
    // 3. one tensor, many consumers (in_beta accumulate paths)
    tcase fan = {RCV_OP_ADD, "fan-out (in_beta accumulate)", 4, 8, 6, 6, {0}, 0, 1, 0};
    int before = rcv_test_fail;
    check_case(&fan, build_fanout);
    printf("%s %s\n", rcv_test_fail == before ? "ok  " : "FAIL", fan.desc);
    fan.train = 0;
    fan.desc = "fan-out, eval mode";
    before = rcv_test_fail;
    check_case(&fan, build_fanout);
    printf("%s %s\n", rcv_test_fail == before ? "ok  " : "FAIL", fan.desc);
    tcase tiny = {RCV_OP_ADD, "fan-out at 2x2 (conv gemm path)", 3, 8, 2, 2, {0}, 0, 1, 0};
    before = rcv_test_fail;
    check_case(&tiny, build_fanout);
    printf("%s %s\n", rcv_test_fail == before ? "ok  " : "FAIL", tiny.desc);
    printf("largest relative difference: %.3g (%s); tolerance %g\n", worst_err, worst_what, TOL);
    // 5. BN -> ReLU fused by the planner (cpu), gradients sharing memory, against ref
    // unfused: what the caller can see - the loss, the input gradient, parameter
    // gradients and running statistics - must agree.
    keep_all = 0;
    for (int train = 1; train >= 0; train--) {
        tcase fz = {RCV_OP_BATCHNORM2D, train ? "fused bn+relu, train" : "fused bn+relu, eval", 4, 8, 6, 6, {0}, 0, train, 0};
        rcv_graph *r = run_case(&fz, build_fused, RCV_BACKEND_REF), *c = run_case(&fz, build_fused, RCV_BACKEND_CPU);
        int fused = 0;
        for (int i = 0; c && i < c->n_nodes; i++) fused += c->nodes[i].skip;
        CHECK(r && c && fused == 2, "%s: expected both ReLUs fused on cpu, got %d", fz.desc, fused);
        int before = rcv_test_fail;
        if (r && c && fused == 2) {
            int last = r->n_nodes - 1;
            compare(fz.desc, "loss", c->nodes[last].out, r->nodes[last].out, 1);
            compare(fz.desc, "input gradient", c->nodes[0].grad, r->nodes[0].grad, rcv_numel(r->nodes[0].shape));
            int relu = rcv_graph_find_node(r, "r2");
            compare(fz.desc, "relu output", c->nodes[relu].out, r->nodes[relu].out, rcv_numel(r->nodes[relu].shape));
            compare(fz.desc, "parameter gradients", c->grads, r->grads, r->n_param_floats);
            compare(fz.desc, "running statistics", c->buffers, r->buffers, r->n_buffer_floats);
        }
        printf("%s %s\n", rcv_test_fail == before ? "ok  " : "FAIL", fz.desc);
        rcv_graph_free(r);
        rcv_graph_free(c);
    }
    keep_all = 1;
    check_bn_precision(0);
    check_bn_precision(1);

    // 4. bf16 convolutions (--precision bf16) against the fp32 ref: x, w and dy are rounded to
    // bf16 (8 significant bits, relative rounding 2^-9), sums stay fp32, so outputs and
    // gradients agree to about 1% of their scale.
    if (!rcv_cpu_has_bf16()) {
        printf("skip bf16 convolutions: this CPU has no native bf16\n");
        return test_done();
    }
    cpu_precision = RCV_PREC_BF16;
    tol = 2e-2;
    worst_err = 0;
    for (int i = 0; i < ncases; i++) {
        if (cases[i].op != RCV_OP_CONV2D) continue;
        int before = rcv_test_fail;
        check_case(&cases[i], build_case);
        printf("%s bf16 %s\n", rcv_test_fail == before ? "ok  " : "FAIL", cases[i].desc);
    }
    printf("bf16: largest relative difference: %.3g (%s); tolerance %g\n", worst_err, worst_what, tol);
    return test_done();
}
