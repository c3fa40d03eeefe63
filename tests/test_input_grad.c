// rcv_graph_set_input_grad_only (graph.h): the backward that attacks run, without parameter
// gradients, against the full backward (the one test_ops checks against finite differences and
// test_attack against PyTorch) on the same weights and inputs:
//   - the input gradient is bit-identical, in eval mode (attacks) and in training mode (batch
//     statistics: batchnorm still needs its sums for dx), on ref and cpu (cpu: blocked layouts,
//     fused BN+ReLU, Winograd where the CPU has it, the im2col path of ResNet's 2x2 layer4);
//   - the parameter gradients are left exactly as they were (a sentinel survives);
//   - with the switch off again the parameter gradients are those of the first full backward;
//   - rcv_classifier_grad and rcv_attack_input_grad give the full backward's gradient, leave the
//     parameter gradients alone and restore the switch.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/attack.h"
#include "robust/robust.h"
#include "robustcv/error.h"
#include "testutil.h"

static double ce(void *ctx, int i, const float *z, int k, float *dz) {
    return rcv_loss_ce(z, k, ((const int32_t *)ctx)[i], dz);
}

// Non-trivial batchnorm statistics and affine parameters, so eval mode is not the identity.
static void randomize_bn(rcv_graph *g, unsigned seed) {
    for (int p = 0; p < g->n_params; p++) {
        rcv_param *pi = &g->param_info[p];
        float *d = rcv_param_data(g, p);
        if (pi->kind == RCV_BUFFER && strstr(pi->name, "running_var")) fill_uniform(d, pi->numel, seed + p, 0.5f, 2.0f);
        else if (pi->kind == RCV_BUFFER && strstr(pi->name, "running_mean"))
            fill_uniform(d, pi->numel, seed + p, -0.3f, 0.3f);
        else if (pi->kind == RCV_PARAM && pi->ndim == 1) fill_uniform(d, pi->numel, seed + p, 0.5f, 1.5f);
    }
}

// One forward + backward from per-sample CE on the logits; the input gradient into gx.
static void run_backward(rcv_model *m, const float *x, const int32_t *y, float *gx) {
    rcv_graph *g = m->g;
    int b = g->batch, k = m->cfg.n_classes;
    size_t per = rcv_attack_per_image(m);
    rcv_attack_load_chunk(m, x, b);
    rcv_graph_forward(g);
    rcv_node *zn = &g->nodes[m->logits];
    for (int i = 0; i < b; i++) rcv_ce_seed(zn->out + (size_t)i * k, k, y[i], 1.0f, zn->grad + (size_t)i * k);
    rcv_graph_backward_from(g, m->logits, zn->grad);
    memcpy(gx, g->nodes[m->input].grad, (size_t)b * per * sizeof(float));
}

static int all_equal(const float *a, float v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != v) return 0;
    return 1;
}

static void check_model(const char *name, rcv_backend be, int c, int hw, int batch, int small) {
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = c, cfg.in_h = cfg.in_w = hw, cfg.n_classes = 10, cfg.dropout = 0, cfg.small_input = small;
    rcv_model m;
    if (rcv_model_build(&m, name, &cfg) || rcv_attack_prepare(&m, batch, be)) {
        CHECK(0, "%s: %s", name, rcv_error());
        return;
    }
    rcv_graph *g = m.g;
    randomize_bn(g, 7);
    const char *bn = be == RCV_BACKEND_REF ? "ref" : "cpu";
    size_t per = rcv_attack_per_image(&m), nx = (size_t)batch * per, np = g->n_param_floats;
    float *x = malloc(nx * sizeof(float)), *ga = malloc(nx * sizeof(float)), *gb = malloc(nx * sizeof(float));
    float *pa = malloc(np * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    fill_uniform(x, nx, 11, 0, 1);
    for (int i = 0; i < batch; i++) y[i] = (i * 7 + 3) % 10;
    for (int training = 0; training <= 1; training++) {
        const char *mode = training ? "train" : "eval";
        rcv_graph_set_training(g, training);
        rcv_graph_set_input_grad_only(g, 0);
        rcv_graph_zero_grad(g);
        run_backward(&m, x, y, ga);
        memcpy(pa, g->grads, np * sizeof(float));
        double pmax = 0;
        for (size_t i = 0; i < np; i++) pmax = fmax(pmax, fabs(pa[i]));
        CHECK(pmax > 0, "%s %s %s: the full backward gives parameter gradients", name, bn, mode);

        for (size_t i = 0; i < np; i++) g->grads[i] = 0.25f; // sentinel
        rcv_graph_set_input_grad_only(g, 1);
        run_backward(&m, x, y, gb);
        CHECK(!memcmp(ga, gb, nx * sizeof(float)), "%s %s %s: input gradient differs (max |d| %g)", name, bn, mode,
              max_abs_err(gb, ga, nx));
        CHECK(all_equal(g->grads, 0.25f, np), "%s %s %s: parameter gradients touched", name, bn, mode);

        rcv_graph_set_input_grad_only(g, 0);
        rcv_graph_zero_grad(g);
        run_backward(&m, x, y, gb);
        CHECK(!memcmp(pa, g->grads, np * sizeof(float)) && !memcmp(ga, gb, nx * sizeof(float)),
              "%s %s %s: the full backward changed after an input-only one", name, bn, mode);
    }

    // The attack entry points: eval mode, the switch on inside, restored after.
    rcv_graph_set_training(g, 0);
    rcv_graph_set_input_grad_only(g, 0);
    rcv_graph_zero_grad(g);
    run_backward(&m, x, y, ga); // eval reference, full backward
    for (size_t i = 0; i < np; i++) g->grads[i] = 0.25f;
    rcv_graph_set_training(g, 1);
    rcv_model *ms[1] = {&m};
    rcv_classifier f = {.models = ms, .n_models = 1};
    rcv_classifier_grad(&f, x, batch, ce, y, NULL, NULL, gb);
    CHECK(!memcmp(ga, gb, nx * sizeof(float)), "%s %s: rcv_classifier_grad differs from the full backward (max |d| %g)",
          name, bn, max_abs_err(gb, ga, nx));
    rcv_attack_input_grad(ms, 1, x, y, batch, 0, gb, NULL);
    CHECK(!memcmp(ga, gb, nx * sizeof(float)), "%s %s: rcv_attack_input_grad differs from the full backward", name, bn);
    CHECK(all_equal(g->grads, 0.25f, np), "%s %s: the attacks touched the parameter gradients", name, bn);
    CHECK(g->training == 1 && g->input_grad_only == 0, "%s %s: mode not restored (training %d, input_grad_only %d)",
          name, bn, g->training, g->input_grad_only);
    free(x);
    free(ga);
    free(gb);
    free(pa);
    free(y);
    rcv_model_free(&m);
}

int main(void) {
    check_model("smallcnn", RCV_BACKEND_REF, 1, 8, 3, 0);
    check_model("smallcnn", RCV_BACKEND_CPU, 1, 28, 16, 0);
    check_model("smallcnn6", RCV_BACKEND_CPU, 1, 28, 8, 0);
    if (!test_quick()) check_model("resnet18", RCV_BACKEND_CPU, 3, 32, 4, 0); // layer4 at 1x1: im2col path
    return test_done();
}
