// ref backend: every kernel's backward checked against central finite
// differences, and forward values checked against PyTorch and hand computations.
//
// Each case builds a tiny graph on RCV_BACKEND_REF, reduces the op's output to a
// scalar (mse against a fixed random target, or a loss op itself), runs forward
// and backward once, then perturbs every element of every checked input and every
// parameter by +-eps and compares (L+ - L-) / (x+ - x-) with the analytic gradient.
//
// Tolerance: max |analytic - numeric| <= FD_TOL * max(max |numeric|, 1e-4) per
// tensor, FD_TOL = 1e-2, eps = 1e-2 on float32 values. The error is dominated by
// the float32 rounding of the scalar loss (~6e-8 relative) divided by the step,
// not by truncation (O(eps^2), and zero for the ops that are linear in each
// value): measured worst case 5e-4 with eps = 1e-2, 1.5e-3 with 3e-3 and 4.4e-3
// with 1e-3 (the deep "chain" case), so 1e-2 leaves a 20x margin, while a wrong
// kernel (a missing term, a wrong index) is off by O(1). Run with -v to print
// every tensor's error. Inputs are kept away from kinks (relu at 0, max-pool
// ties, smooth-L1 at 0 and |d| = beta) by at least 5 eps.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/graph.h"
#include "robustcv/ops.h"
#include "testutil.h"

#define FD_EPS 1e-2f
#define FD_TOL 1e-2
#define FWD_TOL 1e-5 // forward values vs PyTorch: relative to the checksum's magnitude

static int verbose;

// ---- deterministic data, reproducible in Python (see the constants below) ----

// sin(0.7 i + seed) * scale, with i the element's NCHW flat index.
static float det(size_t i, double seed, double scale) { return (float)(scale * sin(0.7 * (double)i + seed)); }

// Fills a node's NHWC output with det() of each element's NCHW index.
static void fill_det(rcv_graph *g, int id, double seed, double scale, double offset) {
    rcv_node *n = &g->nodes[id];
    rcv_shape s = n->shape;
    size_t i = 0;
    for (int b = 0; b < s.n; b++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++, i++)
                    n->out[(((size_t)b * s.h + h) * s.w + w) * s.c + c] = (float)(det(i, seed, scale) + offset);
}

static void fill_param_det(rcv_graph *g, const char *name, double seed, double scale) {
    int p = rcv_graph_find_param(g, name);
    float *d = rcv_param_data(g, p);
    for (size_t i = 0; i < g->param_info[p].numel; i++) d[i] = det(i, seed, scale);
}

// (sum, sum * cos(0.37 i + 0.1)) over a node's output in NCHW order: a checksum that
// catches any layout or index error.
static void checksum(rcv_graph *g, int id, double out[2]) {
    rcv_node *n = &g->nodes[id];
    rcv_shape s = n->shape;
    size_t i = 0;
    out[0] = out[1] = 0;
    for (int b = 0; b < s.n; b++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++, i++) {
                    double v = n->out[(((size_t)b * s.h + h) * s.w + w) * s.c + c];
                    out[0] += v;
                    out[1] += v * cos(0.37 * (double)i + 0.1);
                }
}

static void check_checksum(const char *what, rcv_graph *g, int id, double sum, double wsum) {
    double cs[2];
    checksum(g, id, cs);
    double scale = fmax(1.0, fmax(fabs(sum), fabs(wsum)));
    CHECK(fabs(cs[0] - sum) <= FWD_TOL * scale && fabs(cs[1] - wsum) <= FWD_TOL * scale,
          "%s: checksum (%.9g, %.9g), PyTorch (%.9g, %.9g)", what, cs[0], cs[1], sum, wsum);
}

static float *node_out(rcv_graph *g, int id) { return g->nodes[id].out; }
static size_t node_numel(rcv_graph *g, int id) { return rcv_numel(g->nodes[id].shape); }

static void fill_rand(rcv_graph *g, int id, unsigned seed, float lo, float hi) {
    fill_uniform(node_out(g, id), node_numel(g, id), seed, lo, hi);
}

// Fills every learnable parameter with values in [-0.5, 0.5) (batchnorm weights
// near 1 so the normalized signal is not squashed).
static void fill_params(rcv_graph *g, unsigned seed) {
    for (int p = 0; p < g->n_params; p++) {
        rcv_param *pi = &g->param_info[p];
        if (pi->kind != RCV_PARAM) continue;
        float *d = rcv_param_data(g, p);
        int is_bn_weight = g->nodes[pi->node].op == RCV_OP_BATCHNORM2D && strstr(pi->name, ".weight");
        if (is_bn_weight) fill_uniform(d, pi->numel, seed + (unsigned)p, 0.5f, 1.5f);
        else fill_uniform(d, pi->numel, seed + (unsigned)p, -0.5f, 0.5f);
    }
}

// ---- the finite-difference check ----

static double loss_at(rcv_graph *g, int loss, rcv_rng rng) {
    g->rng = rng; // dropout draws the same mask every time
    rcv_graph_forward(g);
    return g->nodes[loss].out[0];
}

static void fd_tensor(const char *what, const char *tensor, rcv_graph *g, int loss, rcv_rng rng, float *val,
                      const float *analytic, size_t n) {
    float *num = malloc(n * sizeof *num);
    for (size_t i = 0; i < n; i++) {
        float x0 = val[i];
        val[i] = x0 + FD_EPS;
        float xp = val[i];
        double lp = loss_at(g, loss, rng);
        val[i] = x0 - FD_EPS;
        float xm = val[i];
        double lm = loss_at(g, loss, rng);
        val[i] = x0;
        num[i] = (float)((lp - lm) / ((double)xp - (double)xm));
    }
    double err = max_rel_err(analytic, num, n, 1e-4);
    if (verbose) printf("  %-28s %-22s n=%-4zu rel err %.2e\n", what, tensor, n, err);
    CHECK(err <= FD_TOL, "%s: d loss / d %s: rel err %.3e > %.0e", what, tensor, err, FD_TOL);
    free(num);
}

// Runs forward + backward from `loss`, then checks the gradients of nodes xs[0..nx)
// and of every parameter against finite differences.
static void fd_check(const char *what, rcv_graph *g, int loss, const int *xs, int nx) {
    rcv_rng rng = g->rng;
    rcv_graph_zero_grad(g);
    loss_at(g, loss, rng);
    rcv_graph_backward(g, loss, 1.0f);
    for (int k = 0; k < nx; k++) {
        rcv_node *x = &g->nodes[xs[k]];
        CHECK(x->grad != NULL, "%s: node '%s' has no gradient buffer", what, x->name);
        if (!x->grad) continue;
        size_t n = rcv_numel(x->shape);
        float *ana = malloc(n * sizeof *ana);
        memcpy(ana, x->grad, n * sizeof *ana);
        fd_tensor(what, x->name, g, loss, rng, x->out, ana, n);
        free(ana);
    }
    for (int p = 0; p < g->n_params; p++) {
        rcv_param *pi = &g->param_info[p];
        if (pi->kind != RCV_PARAM) continue;
        float *ana = malloc(pi->numel * sizeof *ana);
        memcpy(ana, rcv_param_grad(g, p), pi->numel * sizeof *ana);
        fd_tensor(what, pi->name, g, loss, rng, rcv_param_data(g, p), ana, pi->numel);
        free(ana);
    }
    g->rng = rng;
}

// Plans g for `batch` on ref (after marking xs as wanting gradients).
static int plan(rcv_graph *g, int batch, const int *xs, int nx) {
    for (int k = 0; k < nx; k++) rcv_graph_require_grad(g, xs[k]);
    int rc = rcv_graph_plan(g, batch, RCV_BACKEND_REF);
    CHECK(rc == 0, "plan failed");
    return rc;
}

// One op on input x reduced by mse against a random target: builds, plans, fills, checks.
// `op` adds the op to g and returns its id.
typedef int (*build_fn)(rcv_graph *g, int x);

static void fd_unary(const char *what, int c, int h, int w, int batch, build_fn op, float lo, float hi,
                     int training) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", c, h, w);
    int y = op(g, x);
    CHECK(y >= 0, "%s: build failed", what);
    if (y < 0) { rcv_graph_free(g); return; }
    rcv_shape ys = g->nodes[y].shape;
    int t = rcv_input(g, "target", ys.c, ys.h, ys.w);
    int loss = rcv_mse(g, "loss", y, t);
    if (plan(g, batch, &x, 1)) { rcv_graph_free(g); return; }
    rcv_graph_set_training(g, training);
    fill_params(g, 11);
    fill_rand(g, x, 1, lo, hi);
    fill_rand(g, t, 2, -1.0f, 1.0f);
    fd_check(what, g, loss, &x, 1);
    rcv_graph_free(g);
}

// ---- builders for fd_unary ----

static int b_conv_full(rcv_graph *g, int x) { return rcv_conv2d(g, "conv", x, 4, 3, 2, 1, 2, 2, 1); }
static int b_conv_plain(rcv_graph *g, int x) { return rcv_conv2d(g, "conv", x, 3, 3, 1, 1, 1, 1, 0); }
static int b_conv_1x1_s2(rcv_graph *g, int x) { return rcv_conv2d(g, "conv", x, 5, 1, 2, 0, 1, 1, 1); }
static int b_conv_rect(rcv_graph *g, int x) {
    rcv_conv_attr a = {.kh = 3, .kw = 2, .sh = 1, .sw = 2, .ph = 1, .pw = 0, .dh = 1, .dw = 2, .groups = 1};
    return rcv_conv2d_ex(g, "conv", x, 2, a);
}
static int b_conv_depthwise(rcv_graph *g, int x) { return rcv_conv2d(g, "conv", x, 4, 3, 1, 1, 1, 4, 1); }
static int b_bn(rcv_graph *g, int x) { return rcv_batchnorm2d(g, "bn", x, 1e-5f, 0.1f); }
static int b_sigmoid(rcv_graph *g, int x) { return rcv_sigmoid(g, "sigmoid", x); }
static int b_dropout(rcv_graph *g, int x) { return rcv_dropout(g, "drop", x, 0.3f); }
static int b_maxpool_ceil(rcv_graph *g, int x) { return rcv_maxpool2d(g, "pool", x, 3, 2, 1, 1); }
static int b_maxpool_2(rcv_graph *g, int x) { return rcv_maxpool2d(g, "pool", x, 2, 2, 0, 0); }
static int b_avg_cip1(rcv_graph *g, int x) { return rcv_avgpool2d(g, "pool", x, 3, 2, 1, 1, 1); }
static int b_avg_cip0(rcv_graph *g, int x) { return rcv_avgpool2d(g, "pool", x, 3, 2, 1, 1, 0); }
static int b_avg_floor(rcv_graph *g, int x) { return rcv_avgpool2d(g, "pool", x, 2, 2, 1, 0, 1); }
static int b_gap(rcv_graph *g, int x) { return rcv_global_avgpool(g, "gap", x); }
static int b_aap_up(rcv_graph *g, int x) { return rcv_adaptive_avgpool(g, "aap", x, 7, 5); }
static int b_aap_down(rcv_graph *g, int x) { return rcv_adaptive_avgpool(g, "aap", x, 2, 3); }
static int b_linear(rcv_graph *g, int x) { return rcv_linear(g, "fc", x, 4, 1); }
static int b_linear_nobias(rcv_graph *g, int x) { return rcv_linear(g, "fc", x, 3, 0); }
static int b_flatten(rcv_graph *g, int x) { return rcv_flatten(g, "flat", x); }
static int b_flatten_linear(rcv_graph *g, int x) { return rcv_linear(g, "fc", rcv_flatten(g, "flat", x), 3, 1); }
static int b_up_nearest(rcv_graph *g, int x) { return rcv_upsample_nearest(g, "up", x, 3); }
static int b_up_bil_ac0(rcv_graph *g, int x) { return rcv_upsample_bilinear(g, "up", x, 2, 0); }
static int b_up_bil_ac1(rcv_graph *g, int x) { return rcv_upsample_bilinear(g, "up", x, 2, 1); }
static int b_up_bil3_ac0(rcv_graph *g, int x) { return rcv_upsample_bilinear(g, "up", x, 3, 0); }
static int b_up_bil3_ac1(rcv_graph *g, int x) { return rcv_upsample_bilinear(g, "up", x, 3, 1); }
static int b_normalize(rcv_graph *g, int x) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    return rcv_normalize(g, "norm", x, mean, std);
}
static int b_mul_self(rcv_graph *g, int x) { return rcv_mul(g, "sq", x, x); }
static int b_add_self(rcv_graph *g, int x) { return rcv_add(g, "twice", x, x); }
// x feeds two consumers (relu, sigmoid) that meet again: the second consumer accumulates.
static int b_fanout(rcv_graph *g, int x) {
    return rcv_mul(g, "m", rcv_sigmoid(g, "s", x), rcv_scale_add(g, "sa", x, rcv_sigmoid(g, "s2", x), 0.5f, -2.0f));
}
// A small network: conv -> bn -> sigmoid -> avgpool -> conv -> gap -> linear.
static int b_chain(rcv_graph *g, int x) {
    int y = rcv_conv2d(g, "c1", x, 4, 3, 1, 1, 1, 1, 0);
    y = rcv_batchnorm2d(g, "bn1", y, 1e-5f, 0.1f);
    y = rcv_sigmoid(g, "s1", y);
    y = rcv_avgpool2d(g, "p1", y, 2, 2, 0, 0, 1);
    y = rcv_conv2d(g, "c2", y, 3, 3, 1, 1, 1, 1, 1);
    y = rcv_global_avgpool(g, "gap", y);
    return rcv_linear(g, "fc", y, 2, 1);
}

// ---- cases that need more than one input or special data ----

// relu away from its kink: |x| >= 0.05 (5 eps).
static void fd_relu(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 3, 4, 4);
    int y = rcv_relu(g, "relu", x);
    int t = rcv_input(g, "target", 3, 4, 4);
    int loss = rcv_mse(g, "loss", y, t);
    if (plan(g, 2, &x, 1)) { rcv_graph_free(g); return; }
    fill_rand(g, x, 3, -1.0f, 1.0f);
    float *xv = node_out(g, x);
    for (size_t i = 0; i < node_numel(g, x); i++) xv[i] = xv[i] < 0 ? xv[i] - 0.05f : xv[i] + 0.05f;
    fill_rand(g, t, 4, -1.0f, 1.0f);
    fd_check("relu", g, loss, &x, 1);
    rcv_graph_free(g);
}

// Max pooling needs no near-ties: the input is a shuffled ramp with step 0.05 (5 eps).
static void fd_maxpool(const char *what, build_fn op, int c, int h, int w) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", c, h, w);
    int y = op(g, x);
    rcv_shape ys = g->nodes[y].shape;
    int t = rcv_input(g, "target", ys.c, ys.h, ys.w);
    int loss = rcv_mse(g, "loss", y, t);
    if (plan(g, 2, &x, 1)) { rcv_graph_free(g); return; }
    float *xv = node_out(g, x);
    size_t n = node_numel(g, x);
    for (size_t i = 0; i < n; i++) xv[i] = -3.0f + 0.05f * (float)i;
    uint64_t s = 12345;
    for (size_t i = n - 1; i > 0; i--) { // Fisher-Yates
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)((s >> 33) % (i + 1));
        float tmp = xv[i];
        xv[i] = xv[j];
        xv[j] = tmp;
    }
    fill_rand(g, t, 5, -1.0f, 1.0f);
    fd_check(what, g, loss, &x, 1);
    rcv_graph_free(g);
}

// Binary ops with b of shape bc x bh x bw (same, (C,1,1) or (1,H,W)); both inputs checked.
typedef int (*build2_fn)(rcv_graph *g, int a, int b);
static int b2_add(rcv_graph *g, int a, int b) { return rcv_add(g, "add", a, b); }
static int b2_mul(rcv_graph *g, int a, int b) { return rcv_mul(g, "mul", a, b); }
static int b2_scale_add(rcv_graph *g, int a, int b) { return rcv_scale_add(g, "sa", a, b, 0.7f, -1.3f); }

static void fd_binary(const char *what, build2_fn op, int bc, int bh, int bw) {
    rcv_graph *g = rcv_graph_new();
    int a = rcv_input(g, "a", 3, 4, 5);
    int b = rcv_input(g, "b", bc, bh, bw);
    int y = op(g, a, b);
    CHECK(y >= 0, "%s: build failed", what);
    if (y < 0) { rcv_graph_free(g); return; }
    int t = rcv_input(g, "target", 3, 4, 5);
    int loss = rcv_mse(g, "loss", y, t);
    int xs[2] = {a, b};
    if (plan(g, 2, xs, 2)) { rcv_graph_free(g); return; }
    fill_rand(g, a, 6, -1.0f, 1.0f);
    fill_rand(g, b, 7, -1.0f, 1.0f);
    fill_rand(g, t, 8, -1.0f, 1.0f);
    fd_check(what, g, loss, xs, 2);
    rcv_graph_free(g);
}

// concat of three inputs with 1, 2 and 3 channels, followed by a conv so the
// gradient depends on the channel order.
static void fd_concat(void) {
    rcv_graph *g = rcv_graph_new();
    int xs[3] = {rcv_input(g, "x0", 1, 3, 3), rcv_input(g, "x1", 2, 3, 3), rcv_input(g, "x2", 3, 3, 3)};
    int y = rcv_concat(g, "cat", xs, 3);
    CHECK(g->nodes[y].shape.c == 6, "concat channels %d", g->nodes[y].shape.c);
    int t = rcv_input(g, "target", 6, 3, 3);
    int loss = rcv_mse(g, "loss", y, t);
    if (plan(g, 2, xs, 3)) { rcv_graph_free(g); return; }
    for (int k = 0; k < 3; k++) fill_rand(g, xs[k], 20 + (unsigned)k, -1.0f, 1.0f);
    fill_rand(g, t, 23, -1.0f, 1.0f);
    fd_check("concat3", g, loss, xs, 3);
    // forward: channel 0 from x0, 1-2 from x1, 3-5 from x2, at one cell (n=1, h=2, w=1)
    rcv_shape s = g->nodes[y].shape;
    size_t cell = ((size_t)1 * s.h + 2) * s.w + 1;
    const float *out = node_out(g, y) + cell * 6;
    CHECK(out[0] == node_out(g, xs[0])[cell] && out[2] == node_out(g, xs[1])[cell * 2 + 1] &&
              out[5] == node_out(g, xs[2])[cell * 3 + 2],
          "concat forward places channels in input order");
    rcv_graph_free(g);
}

// Loss ops as the scalar: both float inputs checked (labels get none).
static void fd_cross_entropy(float ls) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 6, 1, 1);
    int z = rcv_linear(g, "fc", x, 5, 1);
    int lab = rcv_labels(g, "labels");
    int loss = rcv_cross_entropy(g, "ce", z, lab, ls);
    if (plan(g, 4, &x, 1)) { rcv_graph_free(g); return; }
    fill_params(g, 31);
    fill_rand(g, x, 30, -2.0f, 2.0f);
    int32_t labels[4] = {0, 4, 2, 2};
    memcpy(g->nodes[lab].idata, labels, sizeof labels);
    char what[64];
    snprintf(what, sizeof what, "linear+cross_entropy ls=%g", ls);
    fd_check(what, g, loss, &x, 1);
    rcv_graph_free(g);
}

static void fd_loss2(const char *what, rcv_op op, float beta) {
    rcv_graph *g = rcv_graph_new();
    int a = rcv_input(g, "a", 5, 2, 1);
    int b = rcv_input(g, "b", 5, 2, 1);
    int loss = op == RCV_OP_KL_DIV ? rcv_kl_div(g, "kl", a, b)
             : op == RCV_OP_SMOOTH_L1 ? rcv_smooth_l1(g, "sl1", a, b, beta)
                                      : rcv_mse(g, "mse", a, b);
    int xs[2] = {a, b};
    if (plan(g, 3, xs, 2)) { rcv_graph_free(g); return; }
    fill_rand(g, a, 40, -2.0f, 2.0f);
    fill_rand(g, b, 41, -2.0f, 2.0f);
    if (op == RCV_OP_SMOOTH_L1) {
        // d = a - b in +-[0.05, 0.4] or +-[0.6, 1.5]: away from 0 and from |d| = beta = 0.5
        float *av = node_out(g, a), *bv = node_out(g, b);
        for (size_t i = 0; i < node_numel(g, a); i++) {
            float u = (float)((i * 7919) % 97) / 97.0f; // [0, 1)
            float d = (i % 2) ? 0.05f + 0.35f * u : 0.6f + 0.9f * u;
            av[i] = bv[i] + ((i % 3) ? d : -d);
        }
    }
    fd_check(what, g, loss, xs, 2);
    rcv_graph_free(g);
}

// ---- forward values against PyTorch ----

// The constants come from PyTorch 1.13 (F.conv2d, F.max_pool2d, F.avg_pool2d,
// F.interpolate, F.cross_entropy, F.kl_div, F.smooth_l1_loss, F.mse_loss,
// nn.BatchNorm2d) on the same det() inputs, e.g.
//   x = sin(0.7 * arange(2*4*7*7) + 0.3).float().reshape(2,4,7,7)
//   w = (0.5 * sin(0.7 * arange(4*2*3*3) + 1.0)).float().reshape(4,2,3,3); b = sin(0.7*arange(4) + 2.0)
//   y = F.conv2d(x, w, b, stride=2, padding=1, dilation=2, groups=2)
//   (y.sum(), (y.flatten() * cos(0.37 * arange(y.numel()) + 0.1)).sum())
static void fwd_conv(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 4, 7, 7);
    int y = rcv_conv2d(g, "conv", x, 4, 3, 2, 1, 2, 2, 1);
    int x2 = rcv_input(g, "x2", 3, 6, 5);
    rcv_conv_attr a = {.kh = 3, .kw = 2, .sh = 1, .sw = 2, .ph = 1, .pw = 0, .dh = 1, .dw = 2, .groups = 1};
    int y2 = rcv_conv2d_ex(g, "conv2", x2, 2, a);
    if (plan(g, 2, NULL, 0)) { rcv_graph_free(g); return; }
    fill_det(g, x, 0.3, 1.0, 0.0);
    fill_det(g, x2, 0.3, 1.0, 0.0);
    fill_param_det(g, "conv.weight", 1.0, 0.5);
    fill_param_det(g, "conv.bias", 2.0, 1.0);
    fill_param_det(g, "conv2.weight", 1.0, 0.5);
    rcv_graph_forward(g);
    check_checksum("conv k3 s2 p1 d2 g2 bias", g, y, 3.815584421157837, -5.826031546740724);
    check_checksum("conv k3x2 s1x2 p1x0 d1x2", g, y2, 6.893030937761068, 0.4189161354674762);
    rcv_graph_free(g);
}

static void fwd_pool(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 3, 6, 6);
    int mp = rcv_maxpool2d(g, "mp", x, 3, 2, 1, 1);
    int ap1 = rcv_avgpool2d(g, "ap1", x, 3, 2, 1, 1, 1);
    int ap0 = rcv_avgpool2d(g, "ap0", x, 3, 2, 1, 1, 0);
    int x7 = rcv_input(g, "x7", 3, 7, 7);
    int ap7 = rcv_avgpool2d(g, "ap7", x7, 2, 2, 1, 1, 1);
    if (plan(g, 2, NULL, 0)) { rcv_graph_free(g); return; }
    fill_det(g, x, 0.3, 1.0, 0.0);
    fill_det(g, x7, 0.3, 1.0, 0.0);
    rcv_graph_forward(g);
    CHECK(g->nodes[mp].shape.h == 4 && g->nodes[ap7].shape.h == 4, "pool shapes");
    check_checksum("maxpool k3 s2 p1 ceil", g, mp, 68.35240857768804, 5.076797045980918);
    check_checksum("avgpool k3 s2 p1 ceil cip1", g, ap1, -1.274890805958421, 3.151708906765303);
    check_checksum("avgpool k3 s2 p1 ceil cip0", g, ap0, -3.8308212039919454, 5.052417079565793);
    check_checksum("avgpool k2 s2 p1 ceil cip1 7x7", g, ap7, 0.37294882722198963, 0.05339974878136222);
    rcv_graph_free(g);
}

// Max-pool ties and padding: an all -1 input. Padded cells must not win (output -1,
// not 0), and the gradient goes to the first cell of each window in (h, w) scan order.
static void maxpool_ties(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 1, 4, 4);
    int y = rcv_maxpool2d(g, "mp", x, 3, 2, 1, 0); // 4x4 -> 2x2; windows rows/cols {-1..1}, {1..3}
    int t = rcv_input(g, "t", 1, 2, 2);
    int loss = rcv_mse(g, "loss", y, t);
    if (plan(g, 1, &x, 1)) { rcv_graph_free(g); return; }
    for (int i = 0; i < 16; i++) node_out(g, x)[i] = -1.0f;
    for (int i = 0; i < 4; i++) node_out(g, t)[i] = -3.0f;
    rcv_graph_forward(g);
    rcv_graph_backward(g, loss, 1.0f);
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= node_out(g, y)[i] == -1.0f;
    CHECK(ok, "maxpool over padding: output %g, expected -1", node_out(g, y)[0]);
    // d loss / d y = 2 (y - t) / 4 = 1; argmaxes (0,0), (0,1), (1,0), (1,1)
    const float *dx = g->nodes[x].grad;
    ok = 1;
    for (int h = 0; h < 4; h++)
        for (int w = 0; w < 4; w++) ok &= dx[h * 4 + w] == ((h < 2 && w < 2) ? 1.0f : 0.0f);
    CHECK(ok, "maxpool ties: gradient to the first max of each window");
    rcv_graph_free(g);
}

// Adaptive average pooling, values printed by F.adaptive_avg_pool2d(torch.tensor([[1., 2.], [3., 4.]]).view(1, 1, 2, 2),
// (7, 7)) (VGG's pool on a 64x64 image: row 3 averages both input rows) and of arange(15).view(1, 1, 3, 5) to (2, 3).
static void fwd_adaptive_avgpool(void) {
    static const float up[49] = {1, 1, 1, 1.5, 2, 2, 2, 1, 1, 1, 1.5, 2, 2, 2, 1, 1, 1, 1.5, 2, 2, 2,
                                 2, 2, 2, 2.5, 3, 3, 3, 3, 3, 3, 3.5, 4, 4, 4, 3, 3, 3, 3.5, 4, 4, 4,
                                 3, 3, 3, 3.5, 4, 4, 4};
    static const float down[6] = {3.0f, 4.5f, 6.0f, 8.0f, 9.5f, 11.0f};
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 1, 2, 2), y = rcv_input(g, "y", 1, 3, 5);
    int a = rcv_adaptive_avgpool(g, "a", x, 7, 7), b = rcv_adaptive_avgpool(g, "b", y, 2, 3);
    if (plan(g, 1, NULL, 0)) { rcv_graph_free(g); return; }
    for (int i = 0; i < 4; i++) node_out(g, x)[i] = (float)(i + 1);
    for (int i = 0; i < 15; i++) node_out(g, y)[i] = (float)i; // C = 1: NHWC = NCHW
    rcv_graph_forward(g);
    CHECK(max_abs_err(node_out(g, a), up, 49) == 0, "adaptive avgpool 2x2 -> 7x7 vs PyTorch: err %g",
          max_abs_err(node_out(g, a), up, 49));
    CHECK(max_abs_err(node_out(g, b), down, 6) <= 1e-6, "adaptive avgpool 3x5 -> 2x3 vs PyTorch: err %g",
          max_abs_err(node_out(g, b), down, 6));
    rcv_graph_free(g);
}

// Bilinear upsampling of [[1, 2], [3, 5]] by 2, values printed by
// F.interpolate(torch.tensor([[[[1., 2.], [3., 5.]]]]), scale_factor=2, mode='bilinear', align_corners=...).
static void fwd_upsample(void) {
    static const float ac0[16] = {1.0f, 1.25f, 1.75f, 2.0f, 1.5f, 1.8125f, 2.4375f, 2.75f,
                                  2.5f, 2.9375f, 3.8125f, 4.25f, 3.0f, 3.5f, 4.5f, 5.0f};
    static const float ac1[16] = {1.0f, 1.3333332538604736f, 1.6666667461395264f, 2.0f,
                                  1.6666666269302368f, 2.1111109256744385f, 2.555555582046509f, 3.0f,
                                  2.3333334922790527f, 2.8888888359069824f, 3.444444417953491f, 4.0f,
                                  3.0f, 3.6666667461395264f, 4.333333492279053f, 5.000000476837158f};
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 1, 2, 2);
    int u0 = rcv_upsample_bilinear(g, "u0", x, 2, 0);
    int u1 = rcv_upsample_bilinear(g, "u1", x, 2, 1);
    int un = rcv_upsample_nearest(g, "un", x, 2);
    int x3 = rcv_input(g, "x3", 2, 3, 4);
    int v0 = rcv_upsample_bilinear(g, "v0", x3, 3, 0);
    int v1 = rcv_upsample_bilinear(g, "v1", x3, 3, 1);
    if (plan(g, 1, NULL, 0)) { rcv_graph_free(g); return; }
    const float xv[4] = {1, 2, 3, 5};
    memcpy(node_out(g, x), xv, sizeof xv);
    fill_det(g, x3, 0.3, 1.0, 0.0);
    rcv_graph_forward(g);
    CHECK(max_abs_err(node_out(g, u0), ac0, 16) <= 1e-6, "bilinear align_corners=0 vs PyTorch: err %g",
          max_abs_err(node_out(g, u0), ac0, 16));
    CHECK(max_abs_err(node_out(g, u1), ac1, 16) <= 1e-6, "bilinear align_corners=1 vs PyTorch: err %g",
          max_abs_err(node_out(g, u1), ac1, 16));
    const float *n4 = node_out(g, un);
    CHECK(n4[0] == 1 && n4[1] == 1 && n4[4] == 1 && n4[2] == 2 && n4[10] == 5 && n4[15] == 5 && n4[8] == 3,
          "nearest x2");
    check_checksum("bilinear x3 align_corners=0", g, v0, 19.72733154334128, -1.8325060734274086);
    check_checksum("bilinear x3 align_corners=1", g, v1, 5.631874337605041, -1.3991869782018505);
    rcv_graph_free(g);
}

// Losses on fixed numbers; PyTorch: F.cross_entropy(z, [1, 2, 0]) = 0.49959099292755127,
// label_smoothing=0.1: 0.6704243421554565; F.kl_div(log_softmax(q), softmax(z), 'batchmean')
// = 1.3074111938476562; F.smooth_l1_loss(z, t, beta=0.5) = 0.6158333420753479, beta=1:
// 0.5020833611488342; F.mse_loss(z, t) = 1.3583334684371948.
static void fwd_losses(void) {
    static const float z[12] = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f, -2.0f, 3.0f, 1.5f, 2.5f, 2.5f, -0.5f, 0.0f};
    static const float q[12] = {0.5f, -1.0f, 2.0f, 0.0f, 1.0f, 1.0f, -1.0f, 0.5f, 0.0f, 0.3f, 0.2f, -0.7f};
    static const float t[12] = {1.2f, 0.0f, 0.5f, 1.0f, 0.1f, -2.3f, 2.0f, 1.5f, 0.0f, 2.2f, -0.4f, 0.9f};
    rcv_graph *g = rcv_graph_new();
    int zi = rcv_input(g, "z", 4, 1, 1), qi = rcv_input(g, "q", 4, 1, 1), ti = rcv_input(g, "t", 4, 1, 1);
    int lab = rcv_labels(g, "labels");
    int ce0 = rcv_cross_entropy(g, "ce0", zi, lab, 0.0f);
    int ce1 = rcv_cross_entropy(g, "ce1", zi, lab, 0.1f);
    int kl = rcv_kl_div(g, "kl", zi, qi);
    int s05 = rcv_smooth_l1(g, "s05", zi, ti, 0.5f);
    int s1 = rcv_smooth_l1(g, "s1", zi, ti, 1.0f);
    int mse = rcv_mse(g, "mse", zi, ti);
    if (plan(g, 3, NULL, 0)) { rcv_graph_free(g); return; }
    memcpy(node_out(g, zi), z, sizeof z);
    memcpy(node_out(g, qi), q, sizeof q);
    memcpy(node_out(g, ti), t, sizeof t);
    int32_t labels[3] = {1, 2, 0};
    memcpy(g->nodes[lab].idata, labels, sizeof labels);
    rcv_graph_forward(g);
    struct { int id; double want; const char *name; } cases[] = {
        {ce0, 0.49959099292755127, "cross_entropy"}, {ce1, 0.6704243421554565, "cross_entropy ls=0.1"},
        {kl, 1.3074111938476562, "kl_div"},          {s05, 0.6158333420753479, "smooth_l1 beta=0.5"},
        {s1, 0.5020833611488342, "smooth_l1 beta=1"}, {mse, 1.3583334684371948, "mse"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double got = node_out(g, cases[k].id)[0];
        CHECK(fabs(got - cases[k].want) <= 1e-6 * fmax(1.0, fabs(cases[k].want)), "%s = %.9g, PyTorch %.9g",
              cases[k].name, got, cases[k].want);
    }
    // cross entropy by hand for row 0: lse(1, 2, 0.5, -1) - z[label 1]
    double lse = log(exp(1.0) + exp(2.0) + exp(0.5) + exp(-1.0));
    double l1 = log(exp(0.0) + exp(-2.0) + exp(3.0) + exp(1.5)) - 3.0;
    double l2 = log(2 * exp(2.5) + exp(-0.5) + exp(0.0)) - 2.5;
    double hand = (lse - 2.0 + l1 + l2) / 3;
    CHECK(fabs(node_out(g, ce0)[0] - hand) < 1e-6, "cross_entropy %.9g, by hand %.9g", node_out(g, ce0)[0], hand);
    rcv_graph_free(g);
}

// flatten permutes NHWC into PyTorch's (C, H, W) feature order.
static void fwd_flatten(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 3, 2, 4);
    int y = rcv_flatten(g, "flat", x);
    if (plan(g, 2, NULL, 0)) { rcv_graph_free(g); return; }
    fill_det(g, x, 0.3, 1.0, 0.0); // value = det(NCHW index)
    rcv_graph_forward(g);
    int ok = 1;
    for (size_t i = 0; i < 2 * 24; i++) ok &= node_out(g, y)[i] == det(i, 0.3, 1.0);
    CHECK(ok, "flatten output is in NCHW order");
    rcv_graph_free(g);
}

// Batchnorm training step: output and running statistics by hand (double) and against
// PyTorch (nn.BatchNorm2d(2, eps=1e-5, momentum=0.1), weight (1.5, -0.5), bias (0.25, 1),
// x = 2 det(seed 0.3) + 1 of shape (3, 2, 2, 3)): running_mean (0.10092240571975708,
// 0.09905976057052612), running_var (1.1111780405044556, 1.111106276512146), output checksum below.
static void fwd_batchnorm(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 2, 2, 3);
    int y = rcv_batchnorm2d(g, "bn", x, 1e-5f, 0.1f);
    if (plan(g, 3, NULL, 0)) { rcv_graph_free(g); return; }
    fill_det(g, x, 0.3, 2.0, 1.0);
    float *w = rcv_param_data(g, rcv_graph_find_param(g, "bn.weight"));
    float *b = rcv_param_data(g, rcv_graph_find_param(g, "bn.bias"));
    float *rm = rcv_param_data(g, rcv_graph_find_param(g, "bn.running_mean"));
    float *rv = rcv_param_data(g, rcv_graph_find_param(g, "bn.running_var"));
    int nbt_id = rcv_graph_find_param(g, "bn.num_batches_tracked");
    int64_t *nbt = g->ibuffers + g->param_info[nbt_id].offset;
    w[0] = 1.5f, w[1] = -0.5f, b[0] = 0.25f, b[1] = 1.0f;
    rm[0] = rm[1] = 0.0f, rv[0] = rv[1] = 1.0f; // PyTorch's initial buffers
    *nbt = 0;
    rcv_graph_set_training(g, 1);
    rcv_graph_forward(g);
    const float *xv = node_out(g, x), *yv = node_out(g, y);
    for (int c = 0; c < 2; c++) {
        double mean = 0, var = 0, M = 3 * 2 * 3;
        for (int e = c; e < 36; e += 2) mean += xv[e];
        mean /= M;
        for (int e = c; e < 36; e += 2) var += (xv[e] - mean) * (xv[e] - mean);
        var /= M;
        double rm_want = 0.9 * 0.0 + 0.1 * mean, rv_want = 0.9 * 1.0 + 0.1 * var * M / (M - 1);
        CHECK(fabs(rm[c] - rm_want) < 1e-6 && fabs(rv[c] - rv_want) < 1e-6,
              "bn running stats c=%d: (%.8g, %.8g), by hand (%.8g, %.8g)", c, rm[c], rv[c], rm_want, rv_want);
        double err = 0;
        for (int e = c; e < 36; e += 2)
            err = fmax(err, fabs(yv[e] - ((xv[e] - mean) / sqrt(var + 1e-5) * w[c] + b[c])));
        CHECK(err < 1e-5, "bn training output c=%d: max err %g vs hand", c, err);
    }
    CHECK(fabs(rm[0] - 0.10092240571975708) < 1e-6 && fabs(rm[1] - 0.09905976057052612) < 1e-6 &&
              fabs(rv[0] - 1.1111780405044556) < 1e-6 && fabs(rv[1] - 1.111106276512146) < 1e-6,
          "bn running stats vs PyTorch");
    CHECK(*nbt == 1, "num_batches_tracked %lld, expected 1", (long long)*nbt);
    check_checksum("bn training output", g, y, 22.500000178813934, 3.111327897221516);
    // eval: uses the running stats, leaves them and the counter alone
    rcv_graph_set_training(g, 0);
    rcv_graph_forward(g);
    double err = 0;
    for (int e = 0; e < 36; e++) {
        int c = e % 2;
        err = fmax(err, fabs(yv[e] - ((xv[e] - rm[c]) / sqrt(rv[c] + 1e-5) * w[c] + b[c])));
    }
    CHECK(err < 1e-5 && *nbt == 1, "bn eval output: err %g, num_batches_tracked %lld", err, (long long)*nbt);
    rcv_graph_free(g);
}

// Batchnorm in eval mode: affine backward with running stats (random, positive variance).
static void fd_batchnorm_eval(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 3, 3, 2);
    int y = rcv_batchnorm2d(g, "bn", x, 1e-5f, 0.1f);
    int t = rcv_input(g, "target", 3, 3, 2);
    int loss = rcv_mse(g, "loss", y, t);
    if (plan(g, 2, &x, 1)) { rcv_graph_free(g); return; }
    fill_params(g, 50);
    fill_uniform(rcv_param_data(g, rcv_graph_find_param(g, "bn.running_mean")), 3, 51, -0.5f, 0.5f);
    fill_uniform(rcv_param_data(g, rcv_graph_find_param(g, "bn.running_var")), 3, 52, 0.5f, 2.0f);
    fill_rand(g, x, 53, -1.0f, 2.0f);
    fill_rand(g, t, 54, -1.0f, 1.0f);
    rcv_graph_set_training(g, 0);
    fd_check("batchnorm2d eval", g, loss, &x, 1);
    rcv_graph_free(g);
}

// Dropout: training mask values and rate, eval identity, gradient by FD (fixed mask).
static void dropout_checks(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 4, 16, 16);
    int y = rcv_dropout(g, "drop", x, 0.25f);
    if (plan(g, 4, NULL, 0)) { rcv_graph_free(g); return; }
    fill_rand(g, x, 60, 0.5f, 1.0f);
    rcv_graph_set_training(g, 1);
    rcv_graph_forward(g);
    size_t n = node_numel(g, x), kept = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        float o = node_out(g, y)[i], xi = node_out(g, x)[i];
        if (o == 0.0f) continue;
        kept++;
        if (fabsf(o - xi / 0.75f) > 1e-6f) bad++;
    }
    double rate = (double)kept / (double)n; // 4096 draws: sd of the rate ~ 0.007
    CHECK(bad == 0 && fabs(rate - 0.75) < 0.04, "dropout training: kept %.3f (expected 0.75), %zu mis-scaled",
          rate, bad);
    rcv_graph_set_training(g, 0);
    rcv_graph_forward(g);
    CHECK(!memcmp(node_out(g, y), node_out(g, x), n * sizeof(float)), "dropout eval is the identity");
    rcv_graph_free(g);
}

// Two backward passes: parameter gradients sum, input gradients are rewritten.
static void accumulation(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 2, 3, 3);
    int y = rcv_conv2d(g, "conv", x, 2, 3, 1, 1, 1, 1, 1);
    int t = rcv_input(g, "t", 2, 3, 3);
    int loss = rcv_mse(g, "loss", y, t);
    if (plan(g, 2, &x, 1)) { rcv_graph_free(g); return; }
    fill_params(g, 70);
    fill_rand(g, x, 71, -1.0f, 1.0f);
    fill_rand(g, t, 72, -1.0f, 1.0f);
    rcv_graph_zero_grad(g);
    rcv_graph_forward(g);
    rcv_graph_backward(g, loss, 1.0f);
    size_t np = g->n_param_floats, nx = node_numel(g, x);
    float *g1 = malloc(np * sizeof *g1), *dx1 = malloc(nx * sizeof *dx1);
    memcpy(g1, g->grads, np * sizeof *g1);
    memcpy(dx1, g->nodes[x].grad, nx * sizeof *dx1);
    rcv_graph_backward(g, loss, 1.0f);
    int ok = 1;
    for (size_t i = 0; i < np; i++) ok &= fabsf(g->grads[i] - 2 * g1[i]) <= 1e-6f * fmaxf(1.0f, fabsf(g1[i]));
    CHECK(ok, "parameter gradients accumulate over two backward calls");
    CHECK(!memcmp(dx1, g->nodes[x].grad, nx * sizeof *dx1), "input gradient is overwritten, not accumulated");
    free(g1);
    free(dx1);
    rcv_graph_free(g);
}

int main(int argc, char **argv) {
    verbose = argc > 1 && !strcmp(argv[1], "-v");

    // forward values
    fwd_conv();
    fwd_pool();
    maxpool_ties();
    fwd_upsample();
    fwd_adaptive_avgpool();
    fwd_losses();
    fwd_flatten();
    fwd_batchnorm();
    dropout_checks();
    accumulation();

    // gradients by finite differences
    fd_unary("conv k3 s2 p1 d2 g2 bias", 4, 7, 7, 2, b_conv_full, -1, 1, 1);
    fd_unary("conv k3 s1 p1 no bias", 2, 4, 5, 2, b_conv_plain, -1, 1, 1);
    fd_unary("conv 1x1 s2 bias", 3, 5, 5, 2, b_conv_1x1_s2, -1, 1, 1);
    fd_unary("conv k3x2 s1x2 p1x0 d1x2", 3, 6, 5, 2, b_conv_rect, -1, 1, 1);
    fd_unary("conv depthwise g4", 4, 4, 4, 2, b_conv_depthwise, -1, 1, 1);
    fd_unary("batchnorm2d train", 3, 3, 2, 3, b_bn, -1, 2, 1);
    fd_batchnorm_eval();
    fd_relu();
    fd_unary("sigmoid", 3, 3, 3, 2, b_sigmoid, -3, 3, 1);
    fd_unary("dropout train p=0.3", 3, 4, 4, 2, b_dropout, -1, 1, 1);
    fd_unary("dropout eval", 3, 4, 4, 2, b_dropout, -1, 1, 0);
    fd_maxpool("maxpool k3 s2 p1 ceil", b_maxpool_ceil, 2, 6, 6);
    fd_maxpool("maxpool k2 s2", b_maxpool_2, 3, 4, 6);
    fd_unary("avgpool k3 s2 p1 ceil cip1", 2, 6, 6, 2, b_avg_cip1, -1, 1, 1);
    fd_unary("avgpool k3 s2 p1 ceil cip0", 2, 6, 6, 2, b_avg_cip0, -1, 1, 1);
    fd_unary("avgpool k2 s2 p1 cip1", 2, 5, 5, 2, b_avg_floor, -1, 1, 1);
    fd_unary("global_avgpool", 3, 4, 5, 2, b_gap, -1, 1, 1);
    fd_unary("adaptive_avgpool 2x3 -> 7x5", 3, 2, 3, 2, b_aap_up, -1, 1, 1);
    fd_unary("adaptive_avgpool 5x7 -> 2x3", 2, 5, 7, 2, b_aap_down, -1, 1, 1);
    fd_unary("linear bias", 6, 1, 1, 3, b_linear, -1, 1, 1);
    fd_unary("linear no bias", 5, 1, 1, 2, b_linear_nobias, -1, 1, 1);
    fd_unary("flatten", 3, 2, 4, 2, b_flatten, -1, 1, 1);
    fd_unary("flatten+linear", 3, 2, 2, 2, b_flatten_linear, -1, 1, 1);
    fd_unary("upsample_nearest x3", 2, 2, 3, 2, b_up_nearest, -1, 1, 1);
    fd_unary("upsample_bilinear x2 ac0", 2, 3, 4, 2, b_up_bil_ac0, -1, 1, 1);
    fd_unary("upsample_bilinear x2 ac1", 2, 3, 4, 2, b_up_bil_ac1, -1, 1, 1);
    fd_unary("upsample_bilinear x3 ac0", 1, 3, 2, 2, b_up_bil3_ac0, -1, 1, 1);
    fd_unary("upsample_bilinear x3 ac1", 1, 3, 2, 2, b_up_bil3_ac1, -1, 1, 1);
    fd_unary("normalize", 3, 3, 3, 2, b_normalize, 0, 1, 1);
    fd_unary("mul(x, x)", 2, 3, 3, 2, b_mul_self, -1, 1, 1);
    fd_unary("add(x, x)", 2, 3, 3, 2, b_add_self, -1, 1, 1);
    fd_unary("fan-out", 2, 3, 3, 2, b_fanout, -2, 2, 1);
    fd_unary("chain conv-bn-sigmoid-pool-conv-gap-fc", 2, 6, 6, 3, b_chain, -1, 1, 1);
    fd_binary("add same", b2_add, 3, 4, 5);
    fd_binary("add (C,1,1)", b2_add, 3, 1, 1);
    fd_binary("add (1,H,W)", b2_add, 1, 4, 5);
    fd_binary("mul same", b2_mul, 3, 4, 5);
    fd_binary("mul (C,1,1)", b2_mul, 3, 1, 1);
    fd_binary("mul (1,H,W)", b2_mul, 1, 4, 5);
    fd_binary("scale_add", b2_scale_add, 3, 4, 5);
    fd_concat();
    fd_cross_entropy(0.0f);
    fd_cross_entropy(0.1f);
    fd_loss2("kl_div", RCV_OP_KL_DIV, 0);
    fd_loss2("smooth_l1 beta=0.5", RCV_OP_SMOOTH_L1, 0.5f);
    fd_loss2("mse", RCV_OP_MSE, 0);
    return test_done();
}
