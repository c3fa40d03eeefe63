// Micro-benchmark of the cpu backend's hot kernels, to see where a training step goes.
//
//   bench_ops [iters]
//
// 1. conv 3x3 64->64, 16x16, batch 128 (ResNet-18 layer1 at 64x64 input): forward,
//    backward-data, backward-weights in GFLOP/s (2*N*Ho*Wo*O*C*kh*kw/groups each),
//    through our kernels (weight reorders and gradient accumulation included).
//    peer: the bare oneDNN primitives on the same NHWC tensors, weights already in
//    the primitive's layout, no reorders -- the ceiling our wrapper can reach.
// 2. batchnorm2d (training) + relu on the conv output, forward and backward, in GB/s
//    of the tensor traffic they must do.
// 3. every conv of ResNet-18 (64x64 input, batch 128), forward + backward, and the
//    conv-only bound on images/s it implies.
// 4. a whole ResNet-18 training step (model zoo, 64x64, 200 classes, batch 128),
//    forward + backward timed per op type (no optimizer), against PyTorch 1.13's
//    174 img/s on this machine (measured outside this program: peer).
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "robustcv/error.h"
#include "robustcv/graph.h"
#include "robustcv/models.h"
#include "robustcv/ops.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void fill(float *x, size_t n, unsigned seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((s >> 40) * (1.0 / 16777216.0)) - 0.5f;
    }
}

typedef void (*kfn)(rcv_graph *, rcv_node *);

// Best-of-iters seconds of f(g, n).
static double time_kernel(kfn f, rcv_graph *g, rcv_node *n, int iters) {
    f(g, n); // warm up
    double best = 1e30;
    for (int i = 0; i < iters; i++) {
        double t0 = now();
        f(g, n);
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

// x (N, C, H, W) -> conv -> bn -> relu, planned on cpu; input grad on request.
typedef struct {
    rcv_graph *g;
    int x, conv, bn, relu;
} net;

static int net_new(net *t, int N, int C, int H, int O, int k, int s, int p, int input_grad, int with_bn) {
    t->g = rcv_graph_new();
    t->x = rcv_input(t->g, "x", C, H, H);
    t->conv = rcv_conv2d(t->g, "conv", t->x, O, k, s, p, 1, 1, 0);
    t->bn = with_bn ? rcv_batchnorm2d(t->g, "bn", t->conv, 1e-5f, 0.1f) : -1;
    t->relu = with_bn ? rcv_relu(t->g, "relu", t->bn) : -1;
    if (input_grad) rcv_graph_require_grad(t->g, t->x);
    if (rcv_graph_plan(t->g, N, RCV_BACKEND_CPU)) {
        fprintf(stderr, "plan: %s\n", rcv_error());
        return -1;
    }
    rcv_graph_set_training(t->g, 1);
    fill(t->g->params, t->g->n_param_floats, 1);
    for (size_t i = 0; i < t->g->n_buffer_floats; i++) t->g->buffers[i] = 1.0f;
    rcv_node *xn = &t->g->nodes[t->x];
    fill(xn->out, rcv_numel(xn->shape), 2);
    for (int i = 0; i < t->g->n_nodes; i++)
        if (t->g->nodes[i].grad) fill(t->g->nodes[i].grad, rcv_numel(t->g->nodes[i].shape), 3 + i);
    rcv_graph_forward(t->g);
    return 0;
}

static rcv_node *node(net *t, int id) { return &t->g->nodes[id]; }

// Conv forward, backward (weights only), backward (data + weights), seconds. The graphs stay
// alive so a table can be timed in several rounds (this machine is shared: the best round counts).
typedef struct {
    double fwd, bwd_w, bwd_dw, flops;
    net a, b;
    int need_dx;
} conv_bench;

static void conv_bench_new(conv_bench *r, int N, int C, int H, int O, int k, int s, int p, int need_dx) {
    memset(r, 0, sizeof *r);
    r->fwd = r->bwd_w = r->bwd_dw = 1e30;
    r->need_dx = need_dx;
    if (net_new(&r->a, N, C, H, O, k, s, p, 0, 0) || (need_dx && net_new(&r->b, N, C, H, O, k, s, p, 1, 0))) exit(1);
    rcv_node *n = node(&r->a, r->a.conv);
    r->flops = 2.0 * N * n->shape.h * n->shape.w * O * C * k * k;
}

static double mind(double a, double b) { return a < b ? a : b; }

static void conv_bench_run(conv_bench *r, int iters) {
    const rcv_kernels *K = rcv_backend_cpu_kernels(RCV_OP_CONV2D);
    rcv_node *n = node(&r->a, r->a.conv);
    r->fwd = mind(r->fwd, time_kernel(K->forward, r->a.g, n, iters));
    r->bwd_w = mind(r->bwd_w, time_kernel(K->backward, r->a.g, n, iters));
    if (r->need_dx) {
        rcv_node *m = node(&r->b, r->b.conv);
        m->in_beta[0] = 0;
        r->bwd_dw = mind(r->bwd_dw, time_kernel(K->backward, r->b.g, m, iters));
    }
}

static void conv_bench_free(conv_bench *r) {
    rcv_graph_free(r->a.g);
    if (r->need_dx) rcv_graph_free(r->b.g);
}

// ---------------------------------------------------------------- peer: bare oneDNN

typedef struct {
    dnnl_primitive_t p;
    dnnl_exec_arg_t args[4];
    int nargs;
} bare;

static dnnl_memory_t mem(const dnnl_memory_desc_t *md, dnnl_engine_t e) {
    dnnl_memory_t m;
    dnnl_memory_create(&m, md, e, DNNL_MEMORY_ALLOCATE);
    void *h;
    dnnl_memory_get_data_handle(m, &h);
    fill(h, dnnl_memory_desc_get_size(md) / 4, 7);
    return m;
}

static double time_bare(bare *b, dnnl_stream_t st, int iters) {
    dnnl_primitive_execute(b->p, st, b->nargs, b->args);
    double best = 1e30;
    for (int i = 0; i < iters; i++) {
        double t0 = now();
        dnnl_primitive_execute(b->p, st, b->nargs, b->args);
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

// Bare forward / bwd-data / bwd-weights of a 3x3 p1 conv on NHWC; fills secs[3] and impl names.
static void peer_conv(int N, int C, int H, int O, int iters, double secs[3], const char *impl[3]) {
    dnnl_engine_t e;
    dnnl_stream_t st;
    dnnl_engine_create(&e, dnnl_cpu, 0);
    dnnl_stream_create(&st, e, dnnl_stream_default_flags);
    dnnl_memory_desc_t x, y, w;
    dnnl_dims_t xd = {N, C, H, H}, yd = {N, O, H, H}, wd = {O, C, 3, 3}, s = {1, 1}, p = {1, 1};
    dnnl_memory_desc_init_by_tag(&x, 4, xd, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&y, 4, yd, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_convolution_desc_t fd, bd, wdsc;
    dnnl_primitive_desc_t fpd, bpd, wpd;
    dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &x, &w, NULL, &y, s, p, p);
    dnnl_primitive_desc_create(&fpd, &fd, NULL, e, NULL);
    dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &x, &w, &y, s, p, p);
    dnnl_primitive_desc_create(&bpd, &bd, NULL, e, fpd);
    dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &x, &w, NULL, &y, s, p, p);
    dnnl_primitive_desc_create(&wpd, &wdsc, NULL, e, fpd);
    dnnl_primitive_desc_t pds[3] = {fpd, bpd, wpd};
    bare b[3];
    dnnl_memory_t mx = mem(&x, e), my = mem(&y, e);
    dnnl_memory_t mwf = mem(dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0), e);
    dnnl_memory_t mwb = mem(dnnl_primitive_desc_query_md(bpd, dnnl_query_weights_md, 0), e);
    dnnl_memory_t mdw = mem(dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_weights_md, 0), e);
    b[0] = (bare){0, {{DNNL_ARG_SRC, mx}, {DNNL_ARG_WEIGHTS, mwf}, {DNNL_ARG_DST, my}}, 3};
    b[1] = (bare){0, {{DNNL_ARG_DIFF_DST, my}, {DNNL_ARG_WEIGHTS, mwb}, {DNNL_ARG_DIFF_SRC, mx}}, 3};
    b[2] = (bare){0, {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DIFF_DST, my}, {DNNL_ARG_DIFF_WEIGHTS, mdw}}, 3};
    for (int i = 0; i < 3; i++) {
        dnnl_primitive_create(&b[i].p, pds[i]);
        secs[i] = time_bare(&b[i], st, iters);
        const char *name = "?";
        dnnl_primitive_desc_query(pds[i], dnnl_query_impl_info_str, 0, &name);
        impl[i] = strdup(name);
        dnnl_primitive_destroy(b[i].p);
        dnnl_primitive_desc_destroy(pds[i]);
    }
    dnnl_memory_destroy(mx), dnnl_memory_destroy(my), dnnl_memory_destroy(mwf), dnnl_memory_destroy(mwb);
    dnnl_memory_destroy(mdw);
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(e);
}


// ---------------------------------------------------------------- whole step

// One forward + backward of the graph, as rcv_graph_forward / rcv_graph_backward run
// it, with each kernel call timed into per-op totals (fwd[op], bwd[op]).
static void profiled_step(rcv_graph *g, int loss, double *fwd, double *bwd) {
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_INPUT || n->op == RCV_OP_LABELS) continue;
        double t0 = now();
        rcv_backend_kernels(g->backend, n->op)->forward(g, n);
        fwd[n->op] += now() - t0;
    }
    int nn = g->n_nodes;
    uint8_t *reach = calloc(nn, 1), *written = calloc(nn, 1);
    reach[loss] = 1;
    for (int i = loss; i >= 0; i--)
        if (reach[i])
            for (int j = 0; j < g->nodes[i].n_in; j++)
                if (g->nodes[g->nodes[i].in[j]].needs_grad) reach[g->nodes[i].in[j]] = 1;
    g->nodes[loss].grad[0] = 1.0f;
    for (int i = loss; i >= 0; i--) {
        rcv_node *n = &g->nodes[i];
        if (!reach[i] || n->op == RCV_OP_INPUT || n->op == RCV_OP_LABELS) continue;
        for (int j = 0; j < n->n_in; j++) {
            n->in_beta[j] = written[n->in[j]];
            if (g->nodes[n->in[j]].needs_grad) written[n->in[j]] = 1;
        }
        double t0 = now();
        rcv_backend_kernels(g->backend, n->op)->backward(g, n);
        bwd[n->op] += now() - t0;
    }
    free(reach);
    free(written);
}

static void resnet_step(int N, int iters) {
    rcv_model m;
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_h = cfg.in_w = 64;
    cfg.n_classes = 200;
    if (rcv_model_build(&m, "resnet18", &cfg) || rcv_graph_plan(m.g, N, RCV_BACKEND_CPU)) {
        fprintf(stderr, "resnet18: %s\n", rcv_error());
        return;
    }
    rcv_graph *g = m.g;
    rcv_graph_set_training(g, 1);
    rcv_node *x = &g->nodes[m.input];
    fill(x->out, rcv_numel(x->shape), 5);
    for (size_t i = 0; i < rcv_numel(x->shape); i++) x->out[i] += 0.5f;
    for (int b = 0; b < N; b++) g->nodes[m.labels].idata[b] = b % 200;
    double fwd[RCV_OP_COUNT], bwd[RCV_OP_COUNT], bf[RCV_OP_COUNT], bb[RCV_OP_COUNT], best = 1e30, whole = 1e30;
    for (int it = 0; it < iters + 1; it++) {
        memset(fwd, 0, sizeof fwd);
        memset(bwd, 0, sizeof bwd);
        rcv_graph_zero_grad(g);
        double t0 = now();
        profiled_step(g, m.loss, fwd, bwd);
        double t = now() - t0;
        if (it > 0 && t < best) { // the first step warms up
            best = t;
            memcpy(bf, fwd, sizeof fwd);
            memcpy(bb, bwd, sizeof bwd);
        }
        t0 = now();
        rcv_graph_forward(g);
        rcv_graph_backward(g, m.loss, 1.0f);
        t = now() - t0;
        if (it > 0 && t < whole) whole = t;
    }
    printf("ResNet-18 training step (64x64, 200 classes, batch %d, forward + backward, no optimizer; best of %d)\n", N,
           iters);
    printf("  %-18s %9s %9s %9s %6s\n", "op", "fwd ms", "bwd ms", "total", "share");
    for (int op = 0; op < RCV_OP_COUNT; op++) {
        double t = bf[op] + bb[op];
        if (t > 0) printf("  %-18s %9.2f %9.2f %9.2f %5.1f%%\n", rcv_op_name(op), bf[op] * 1e3, bb[op] * 1e3, t * 1e3,
                          100 * t / best);
    }
    printf("  step (profiled) %.1f ms; rcv_graph_forward + backward %.1f ms\n", best * 1e3, whole * 1e3);
    printf("  ours %.1f img/s, peer (PyTorch 1.13, same machine, measured separately) 174 img/s, ratio %.2f\n",
           N / whole, N / whole / 174.0);
    rcv_model_free(&m);
}

int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 10;
    int N = 128, C = 64, H = 16;

    // 1. the layer1 conv
    conv_bench t;
    conv_bench_new(&t, N, C, H, C, 3, 1, 1, 1);
    for (int r = 0; r < 3; r++) conv_bench_run(&t, iters);
    double bwd_d = t.bwd_dw - t.bwd_w;
    double peer[3] = {1e30, 1e30, 1e30}, pr[3];
    const char *impl[3];
    for (int r = 0; r < 3; r++) {
        peer_conv(N, C, H, C, iters, pr, impl);
        for (int i = 0; i < 3; i++) peer[i] = mind(peer[i], pr[i]);
    }
    printf("conv 3x3 %d->%d %dx%d batch %d (best of 3 x %d)\n", C, C, H, H, N, iters);
    printf("  %-12s %9s %9s %9s %8s  %s\n", "", "ours", "peer", "", "ratio", "oneDNN implementation");
    const char *what[3] = {"forward", "bwd-data", "bwd-weights"};
    double ours[3] = {t.fwd, bwd_d, t.bwd_w};
    for (int i = 0; i < 3; i++)
        printf("  %-12s %6.1f GF/s %6.1f GF/s %8.3f  %s  (%.2f ms vs %.2f ms)\n", what[i], t.flops / ours[i] * 1e-9,
               t.flops / peer[i] * 1e-9, peer[i] / ours[i], impl[i], ours[i] * 1e3, peer[i] * 1e3);

    // 2. bn + relu on the conv output
    net a;
    if (net_new(&a, N, C, H, C, 3, 1, 1, 0, 1)) return 1;
    const rcv_kernels *kb = rcv_backend_cpu_kernels(RCV_OP_BATCHNORM2D), *kr = rcv_backend_cpu_kernels(RCV_OP_RELU);
    rcv_node *bn = node(&a, a.bn), *relu = node(&a, a.relu);
    bn->in_beta[0] = relu->in_beta[0] = 0;
    double bf = 1e30, bb = 1e30, rf = 1e30, rb = 1e30;
    for (int r = 0; r < 3; r++) {
        bf = mind(bf, time_kernel(kb->forward, a.g, bn, iters));
        bb = mind(bb, time_kernel(kb->backward, a.g, bn, iters));
        rf = mind(rf, time_kernel(kr->forward, a.g, relu, iters));
        rb = mind(rb, time_kernel(kr->backward, a.g, relu, iters));
    }
    double mb = rcv_numel(bn->shape) * 4.0 / 1e6; // one tensor, MB
    // Minimal traffic: bn fwd reads x twice (stats, normalize) + writes y; bwd reads x, dy twice + writes dx;
    // relu fwd reads x writes y; bwd reads y, dy writes dx.
    printf("batchnorm2d train + relu on (%d, %d, %d, %d), %.1f MB per tensor\n", N, C, H, H, mb);
    printf("  bn forward   %7.3f ms  %6.1f GB/s\n", bf * 1e3, 3 * mb / bf * 1e-3);
    printf("  bn backward  %7.3f ms  %6.1f GB/s\n", bb * 1e3, 5 * mb / bb * 1e-3);
    printf("  relu forward %7.3f ms  %6.1f GB/s\n", rf * 1e3, 2 * mb / rf * 1e-3);
    printf("  relu backward%7.3f ms  %6.1f GB/s\n", rb * 1e3, 3 * mb / rb * 1e-3);
    printf("  conv forward %7.3f ms (for scale)\n", t.fwd * 1e3);
    rcv_graph_free(a.g);
    conv_bench_free(&t);

    // 3. ResNet-18 convs at 64x64, batch 128: {C, O, H_in, k, s, p, count, input grad}
    static const int convs[][8] = {
        {3, 64, 64, 7, 2, 3, 1, 0},      {64, 64, 16, 3, 1, 1, 4, 1},    {64, 128, 16, 3, 2, 1, 1, 1},
        {64, 128, 16, 1, 2, 0, 1, 1},    {128, 128, 8, 3, 1, 1, 3, 1},   {128, 256, 8, 3, 2, 1, 1, 1},
        {128, 256, 8, 1, 2, 0, 1, 1},    {256, 256, 4, 3, 1, 1, 3, 1},   {256, 512, 4, 3, 2, 1, 1, 1},
        {256, 512, 4, 1, 2, 0, 1, 1},    {512, 512, 2, 3, 1, 1, 3, 1},
    };
    printf("ResNet-18 convs, 64x64 input, batch %d (ms per call; GF/s of fwd+bwd)\n", N);
    printf("  %-22s %5s %8s %8s %8s %7s\n", "conv", "count", "fwd", "bwd", "total", "GF/s");
    enum { NC = sizeof convs / sizeof convs[0] };
    conv_bench cb[NC];
    for (int i = 0; i < NC; i++) {
        const int *c = convs[i];
        conv_bench_new(&cb[i], N, c[0], c[2], c[1], c[3], c[4], c[5], c[7]);
    }
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < NC; i++) conv_bench_run(&cb[i], iters > 5 ? 5 : iters);
    double step = 0, flops = 0;
    for (int i = 0; i < NC; i++) {
        const int *c = convs[i];
        conv_bench *r = &cb[i];
        double bwd = c[7] ? r->bwd_dw : r->bwd_w, tot = r->fwd + bwd, fl = r->flops * (c[7] ? 3 : 2);
        char name[64];
        snprintf(name, sizeof name, "%dx%d %d->%d @%d s%d", c[3], c[3], c[0], c[1], c[2], c[4]);
        printf("  %-22s %5d %8.2f %8.2f %8.2f %7.1f\n", name, c[6], r->fwd * 1e3, bwd * 1e3, tot * 1e3, fl / tot * 1e-9);
        step += c[6] * tot;
        flops += c[6] * fl;
        conv_bench_free(r);
    }
    printf("  all convs: %.1f ms per step, %.1f GF/s, conv-only bound %.0f img/s (PyTorch 1.13 whole step: 174)\n",
           step * 1e3, flops / step * 1e-9, N / step);

    // 4. the whole step
    resnet_step(N, iters > 5 ? 5 : iters);
    return 0;
}
