// rcv_graph_infer: eval-mode forward with each batchnorm folded into the convolution before it
// (cpu backend). Oracle: the ref backend's plain eval forward of the same weights (naive kernels,
// batchnorm as its own op; finite in every activation), within 1e-5 of the logits' scale, on
// conv+BN models of every kind the folding meets (resnet18: oneDNN direct / Winograd convs, 1x1 downsamples, 2x2 outputs (the
// im2col nodes, in infer on oneDNN with cached weights), BN without ReLU before the residual add,
// add+ReLU; smallcnn6: BN+ReLU chains, and at 8x8 2x2 outputs with the affine in im2col's output
// loop (36 positions, over GEMM_INFER_MAX_M); densenet121:
// BN-ReLU-conv order, concatenation), with batchnorm running statistics and affine parameters
// drawn far from their initial 0 / 1 so that a missing or stale fold shows. Then:
//   - folding happened (the planner's candidates were taken by the kernels);
//   - after an SGD step in training mode (which also moves the running statistics), after a
//     direct write to a BN's parameters and after a direct write to every folded conv's weights
//     announced with rcv_graph_params_changed, infer follows: equal to ref on the new weights
//     and different from before (the reordered weights kept between calls are redone);
//   - a backward after infer gives the input gradient a forward + backward gives;
//   - train-mode forward/backward is untouched by the planning (equal to ref).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/graph.h"
#include "robustcv/models.h"
#include "robustcv/optim.h"
#include "testutil.h"

#define TOL 1e-5

static void build(rcv_model *m, const char *name, int c, int h, int w, int k) {
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = c, cfg.in_h = h, cfg.in_w = w, cfg.n_classes = k, cfg.seed = 3;
    cfg.mean[0] = 0.4f, cfg.std[0] = 0.3f;
    if (rcv_model_build(m, name, &cfg)) {
        fprintf(stderr, "build %s: %s\n", name, rcv_error());
        exit(1);
    }
    // Every batchnorm: gamma in [0.5, 1.5], beta and running mean in [-0.3, 0.3], running var in
    // [0.3, 2] (the initial 1, 0, 0, 1 would hide a fold that skipped a term).
    rcv_graph *g = m->g;
    rcv_rng r;
    rcv_rng_init(&r, 11);
    for (int p = 0; p < g->n_params; p++) {
        rcv_param *pi = &g->param_info[p];
        if (g->nodes[pi->node].op != RCV_OP_BATCHNORM2D || pi->kind == RCV_BUFFER_I64) continue;
        float lo = -0.3f, hi = 0.3f;
        if (strstr(pi->name, "running_var")) lo = 0.3f, hi = 2.0f;
        else if (strstr(pi->name, "weight")) lo = 0.5f, hi = 1.5f;
        rcv_rng_fill_uniform(&r, rcv_param_data(g, p), pi->numel, lo, hi);
    }
}

static void fill_input(rcv_model *m, unsigned seed) {
    rcv_graph *g = m->g;
    rcv_node *in = &g->nodes[m->input];
    fill_uniform(in->out, rcv_numel(in->shape), seed, 0.0f, 1.0f);
    for (int i = 0; i < g->batch; i++) g->nodes[m->labels].idata[i] = i % m->cfg.n_classes;
}

// Logits (batch x classes) of the eval forward on the ref backend, which must be finite in every
// activation, not just the logits: ReLU maps NaN to 0, so a forward that overflowed to inf and
// NaN midway can still end in finite logits, and infer would be compared with garbage. (Each node
// of a plan has its own output memory, so all are there to read after the pass.)
static float *ref_logits(rcv_model *m, int batch, unsigned seed) {
    if (rcv_graph_plan(m->g, batch, RCV_BACKEND_REF)) {
        fprintf(stderr, "plan ref: %s\n", rcv_error());
        exit(1);
    }
    rcv_graph_set_training(m->g, 0);
    fill_input(m, seed);
    rcv_graph_forward(m->g);
    const rcv_node *bad = NULL;
    size_t nbad = 0;
    for (int i = 0; i < m->g->n_nodes; i++) {
        const rcv_node *n = &m->g->nodes[i];
        if (!n->out || n->skip) continue;
        size_t cnt = rcv_numel(n->shape), nb = 0;
        for (size_t j = 0; j < cnt; j++) nb += !isfinite(n->out[j]);
        if (nb && !bad) bad = n;
        nbad += nb;
    }
    CHECK(nbad == 0, "%s: ref eval forward: %zu non-finite activations, first at %s", m->name, nbad,
          bad ? bad->name : "");
    size_t n = (size_t)batch * m->cfg.n_classes;
    float *z = malloc(n * sizeof(float));
    memcpy(z, m->g->nodes[m->logits].out, n * sizeof(float));
    return z;
}

static void plan_cpu(rcv_model *m, int batch, unsigned seed) {
    if (rcv_graph_plan(m->g, batch, RCV_BACKEND_CPU)) {
        fprintf(stderr, "plan cpu: %s\n", rcv_error());
        exit(1);
    }
    rcv_graph_set_training(m->g, 0);
    fill_input(m, seed);
}

static int count_folded(const rcv_graph *g, int *candidates) {
    int f = 0, c = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        f += g->nodes[i].folded;
        c += g->nodes[i].fold >= 0;
    }
    *candidates = c;
    return f;
}

// train_check: compare a train-mode pass with ref too (not densenet121 at 32x32: its last block's
// batchnorms normalise 2 values a channel at batch 2, ill-conditioned for any comparison).
static void test_model(const char *name, int c, int h, int w, int k, int batch, int train_check) {
    rcv_model m;
    build(&m, name, c, h, w, k);
    rcv_graph *g = m.g;
    size_t nz = (size_t)batch * k;
    float *want = ref_logits(&m, batch, 5);
    plan_cpu(&m, batch, 5);
    int cand, folded = count_folded(g, &cand);
    CHECK(cand > 0 && folded == cand, "%s: %d of %d fold candidates (conv+BN, add+ReLU) taken", name, folded, cand);
    float *z = g->nodes[m.logits].out, *before = malloc(nz * sizeof(float));
    rcv_graph_infer(g);
    double e = max_rel_err(z, want, nz, 1e-3);
    CHECK(e < TOL, "%s batch %d: infer vs ref forward: %.3g relative", name, batch, e);
    memcpy(before, z, nz * sizeof(float));
    rcv_graph_forward(g); // the unfolded cpu path agrees too
    e = max_rel_err(z, want, nz, 1e-3);
    CHECK(e < TOL, "%s: cpu forward vs ref: %.3g", name, e);
    printf("%s (%dx%dx%d, batch %d): %d nodes folded, infer vs ref %.2g\n", name, c, h, w, batch, folded,
           max_rel_err(before, want, nz, 1e-3));

    // Train mode stays ref's (the fold candidates change nothing there).
    if (train_check) {
        plan_cpu(&m, batch, 5);
        rcv_graph_set_training(g, 1);
        rcv_graph_infer(g); // = forward in training mode
        z = g->nodes[m.logits].out;
        memcpy(before, z, nz * sizeof(float));
        rcv_graph_plan(g, batch, RCV_BACKEND_REF);
        rcv_graph_set_training(g, 1);
        fill_input(&m, 5);
        rcv_graph_forward(g);
        e = max_rel_err(before, g->nodes[m.logits].out, nz, 1e-3);
        CHECK(e < 1e-4, "%s: train-mode infer (= forward) vs ref: %.3g", name, e);
    }
    plan_cpu(&m, batch, 5);
    z = g->nodes[m.logits].out;
    rcv_graph_infer(g); // the two train-mode passes moved the running statistics
    memcpy(before, z, nz * sizeof(float));

    // A training step (train-mode forward moves the running statistics, SGD the weights): infer
    // must follow both. The gradient is clipped to norm 5 (smallcnn6's are ~3-5, resnet18's ~50):
    // densenet121's last block at batch 2 normalises 2 values a channel in train mode, so its
    // gradient norm is ~1e5 (ref and cpu alike, its direction set by rounding); unclipped, lr 0.05
    // takes conv weights to ~100-250 and the eval forward overflows float (activations x10 a
    // layer, inf by denseblock2, NaN after the next batchnorm) on both backends.
    rcv_optim o;
    rcv_optim_cfg oc = rcv_optim_defaults(RCV_OPT_SGD);
    oc.lr = 0.05f;
    CHECK(rcv_optim_init(&o, &oc, g->n_param_floats) == 0, "optim init");
    rcv_graph_set_training(g, 1);
    rcv_graph_zero_grad(g);
    rcv_graph_forward(g);
    rcv_graph_backward(g, m.loss, 1.0f);
    rcv_clip_grad_norm(g, 5.0f);
    rcv_optim_step(&o, g, oc.lr);
    rcv_optim_free(&o);
    rcv_graph_set_training(g, 0);
    rcv_graph_infer(g);
    z = g->nodes[m.logits].out;
    float *after = malloc(nz * sizeof(float));
    memcpy(after, z, nz * sizeof(float));
    CHECK(max_rel_err(after, before, nz, 1e-3) > 1e-3, "%s: infer changed after a training step (%.3g)", name,
          max_rel_err(after, before, nz, 1e-3));
    float *want2 = ref_logits(&m, batch, 5);
    e = max_rel_err(after, want2, nz, 1e-3);
    CHECK(e < TOL, "%s: infer after a training step vs ref: %.3g", name, e);

    // A direct write to the last folded BN's statistics and gamma (a checkpoint load, an EMA swap).
    plan_cpu(&m, batch, 5);
    int last = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].folded && g->nodes[i].op == RCV_OP_BATCHNORM2D) last = i;
    rcv_node *bn = &g->nodes[last];
    for (int j = 0; j < bn->shape.c; j++) {
        rcv_param_data(g, bn->buf[1])[j] *= 2.0f;
        rcv_param_data(g, bn->param[0])[j] += 0.25f;
    }
    rcv_graph_infer(g);
    z = g->nodes[m.logits].out; // each plan has its own arena
    memcpy(before, z, nz * sizeof(float));
    CHECK(max_rel_err(before, after, nz, 1e-3) > 1e-4, "%s: infer changed after writing %s (%.3g)", name, bn->name,
          max_rel_err(before, after, nz, 1e-3));
    free(want2);
    want2 = ref_logits(&m, batch, 5);
    e = max_rel_err(before, want2, nz, 1e-3);
    CHECK(e < TOL, "%s: infer after writing %s vs ref: %.3g", name, bn->name, e);

    // A direct write to conv weights: infer keeps the post-op convs' reordered weights between calls,
    // so the writer says so (rcv_graph_params_changed, as the library's loaders and optimizer do).
    // Every conv that folds its BN, so the cached (direct) and per-call (Winograd, im2col) paths
    // both see it.
    plan_cpu(&m, batch, 5);
    z = g->nodes[m.logits].out;
    rcv_graph_infer(g); // the caches are warm
    memcpy(before, z, nz * sizeof(float));
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *cn = &g->nodes[i];
        if (cn->op != RCV_OP_CONV2D || cn->fold < 0) continue;
        rcv_param *wp = &g->param_info[cn->param[0]];
        float *wd = rcv_param_data(g, cn->param[0]);
        for (size_t j = 0; j < wp->numel; j += 3) wd[j] = -wd[j]; // the same scale, other values
    }
    rcv_graph_params_changed(g);
    rcv_graph_infer(g);
    memcpy(after, z, nz * sizeof(float));
    CHECK(max_rel_err(after, before, nz, 1e-3) > 1e-3, "%s: infer changed after writing conv weights (%.3g)", name,
          max_rel_err(after, before, nz, 1e-3));
    free(want2);
    want2 = ref_logits(&m, batch, 5);
    e = max_rel_err(after, want2, nz, 1e-3);
    CHECK(e < TOL, "%s: infer after writing conv weights vs ref: %.3g", name, e);

    free(want);
    free(want2);
    free(before);
    free(after);
    rcv_model_free(&m);
}

// Backward after infer: the input gradient of forward + backward (infer leaves nothing for
// backward; backward runs forward first).
static void test_backward_after_infer(void) {
    rcv_model m;
    build(&m, "smallcnn6", 1, 16, 16, 10);
    rcv_graph *g = m.g;
    rcv_graph_require_grad(g, m.input);
    int batch = 3;
    plan_cpu(&m, batch, 9);
    rcv_graph_set_input_grad_only(g, 1);
    size_t nx = rcv_numel(g->nodes[m.input].shape);
    rcv_graph_forward(g);
    rcv_graph_backward(g, m.loss, 1.0f);
    float *gx = malloc(nx * sizeof(float));
    memcpy(gx, g->nodes[m.input].grad, nx * sizeof(float));
    memset(g->nodes[m.input].grad, 0, nx * sizeof(float));
    rcv_graph_infer(g);
    CHECK(g->inferred == 1, "infer marks the graph");
    rcv_graph_backward(g, m.loss, 1.0f);
    CHECK(g->inferred == 0, "backward re-ran forward");
    double e = max_rel_err(g->nodes[m.input].grad, gx, nx, 1e-6);
    CHECK(e == 0, "input gradient after infer + backward vs forward + backward: %.3g", e);
    free(gx);
    rcv_model_free(&m);
}

int main(void) {
    int q = test_quick();
    test_model("smallcnn6", 1, 28, 28, 10, q ? 2 : 5, 1);
    // 8x8: conv5/6 at 2x2 outputs take the im2col path; 9 x 4 = 36 positions, over
    // GEMM_INFER_MAX_M, so infer folds in its output loop (resnet18 at batch 2 takes oneDNN there).
    test_model("smallcnn6", 1, 8, 8, 10, 9, 1);
    test_model("resnet18", 3, 64, 64, 20, q ? 2 : 4, 1);
    test_model("densenet121", 3, 32, 32, 10, 2, 0);
    test_backward_after_infer();
    return test_done();
}
