// Transfer learning (src/train/transfer.c): a torchvision-exported ResNet-18 state_dict
// (tests/oracle/transfer_ref.py) loads and gives torchvision's logits; --reset re-initialises the
// classifier for a new class count (and is required for it); --freeze / --train-from keep
// frozen parameters, their batchnorm running statistics and num_batches_tracked bit-identical
// through SGD steps (momentum and weight decay on) while the rest changes; frozen batchnorm in
// train mode computes exactly what eval mode does; --lr-mult scales the update by hand-checked
// factors.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/optim.h"
#include "robustcv/safetensors.h"
#include "robustcv/train.h"
#include "testutil.h"

static int build(rcv_model *m, int k, uint64_t seed) {
    rcv_model_cfg c;
    rcv_model_cfg_defaults(&c);
    c.in_h = c.in_w = 32;
    c.n_classes = k;
    c.seed = seed;
    int rc = rcv_model_build(m, "resnet18", &c);
    if (rc) fprintf(stderr, "build: %s\n", rcv_error());
    return rc;
}

static void test_init(const char *dir) {
    char path[512];
    rcv_finetune_cfg t;
    memset(&t, 0, sizeof t);
    snprintf(t.init, sizeof t.init, "%s/r18.safetensors", dir);
    rcv_model m;
    if (build(&m, 1000, 1)) return;
    CHECK(rcv_transfer_apply(&m, &t, 1, 1) == 0, "init: %s", rcv_error());
    rcv_safetensors ref;
    snprintf(path, sizeof path, "%s/r18.ref.safetensors", dir);
    if (rcv_st_open(&ref, path)) {
        CHECK(0, "%s", rcv_error());
        rcv_model_free(&m);
        return;
    }
    rcv_graph_plan(m.g, 2, RCV_BACKEND_CPU);
    rcv_graph_set_training(m.g, 0);
    rcv_st_read_f32(&ref, "input", m.g->nodes[m.input].out, 2 * 32 * 32 * 3);
    rcv_graph_forward(m.g);
    float want[2000];
    CHECK(rcv_st_read_f32(&ref, "logits", want, 2000) == 0, "logits: %s", rcv_error());
    double e = max_rel_err(m.g->nodes[m.logits].out, want, 2000, 1e-30);
    printf("init from torchvision's state_dict: logits rel err %.1e\n", e);
    CHECK(e <= 1e-4, "logits vs torchvision: %g", e);
    rcv_st_close(&ref);
    rcv_model_free(&m);

    // 10 classes: fc does not fit; the message names the tensor and --reset.
    if (build(&m, 10, 2)) return;
    CHECK(rcv_transfer_apply(&m, &t, 1, 1) == -1 && strstr(rcv_error(), "fc.weight") &&
              strstr(rcv_error(), "--reset"),
          "shape mismatch: %s", rcv_error());
    rcv_model_free(&m);
    rcv_model fresh;
    if (build(&m, 10, 2) || build(&fresh, 10, 2)) return;
    snprintf(t.reset, sizeof t.reset, "fc");
    CHECK(rcv_transfer_apply(&m, &t, 1, 1) == 0, "reset fc: %s", rcv_error());
    int fw = rcv_graph_find_param(m.g, "fc.weight"), c1 = rcv_graph_find_param(m.g, "layer1.0.conv1.weight");
    CHECK(!memcmp(rcv_param_data(m.g, fw), rcv_param_data(fresh.g, fw), 10 * 512 * sizeof(float)),
          "fc keeps the fresh initialisation of the same seed");
    CHECK(memcmp(rcv_param_data(m.g, c1), rcv_param_data(fresh.g, c1), 64 * 64 * 9 * sizeof(float)),
          "the trunk comes from the file");
    snprintf(t.reset, sizeof t.reset, "fcc");
    CHECK(rcv_transfer_apply(&m, &t, 1, 1) == -1 && strstr(rcv_error(), "'fcc'"), "unknown prefix: %s", rcv_error());
    rcv_model_free(&m);
    rcv_model_free(&fresh);
    memset(&t, 0, sizeof t);
    snprintf(t.init, sizeof t.init, "%s/nope.safetensors", dir);
    if (build(&m, 10, 2)) return;
    CHECK(rcv_transfer_apply(&m, &t, 1, 1) == -1 && strstr(rcv_error(), "nope.safetensors"), "missing file: %s",
          rcv_error());
    rcv_model_free(&m);
}

// Snapshot of every parameter and buffer.
typedef struct { float *p, *b; int64_t *i; } snap;
static snap take(const rcv_graph *g) {
    snap s = {malloc(g->n_param_floats * 4), malloc(g->n_buffer_floats * 4 + 4), malloc(g->n_ibuffers * 8 + 8)};
    memcpy(s.p, g->params, g->n_param_floats * 4);
    memcpy(s.b, g->buffers, g->n_buffer_floats * 4);
    memcpy(s.i, g->ibuffers, g->n_ibuffers * 8);
    return s;
}
static void drop(snap *s) { free(s->p); free(s->b); free(s->i); }

// Trains `steps` SGD steps (momentum, nesterov, weight decay) on random data; compares before/after.
static void check_frozen(const char *what, rcv_finetune_cfg *t, const char *frozen_prefix_end) {
    rcv_model m;
    if (build(&m, 10, 3)) return;
    CHECK(rcv_transfer_apply(&m, t, 0, 1) == 0, "%s: %s", what, rcv_error());
    rcv_graph *g = m.g;
    rcv_graph_plan(g, 4, RCV_BACKEND_CPU);
    rcv_optim_cfg oc = rcv_optim_defaults(RCV_OPT_SGD);
    oc.momentum = 0.9f;
    oc.weight_decay = 5e-4f;
    oc.nesterov = 1;
    rcv_optim o;
    rcv_optim_init(&o, &oc, g->n_param_floats);
    snap s0 = take(g);
    rcv_graph_set_training(g, 1);
    for (int step = 0; step < 2; step++) {
        fill_uniform(g->nodes[m.input].out, 4 * 32 * 32 * 3, 10 + step, 0, 1);
        for (int i = 0; i < 4; i++) g->nodes[m.labels].idata[i] = (i * 3 + step) % 10;
        rcv_graph_forward(g);
        rcv_graph_zero_grad(g);
        rcv_graph_backward(g, m.loss, 1.0f);
        rcv_optim_step(&o, g, 0.1f);
    }
    // Everything registered before the first parameter under frozen_prefix_end is frozen.
    int boundary = -1;
    for (int i = 0; i < g->n_params && boundary < 0; i++)
        if (rcv_name_under(g->param_info[i].name, frozen_prefix_end)) boundary = i;
    int frozen_same = 1, live_changed = 1, n_frozen = 0, n_live = 0;
    for (int i = 0; i < g->n_params; i++) {
        const rcv_param *p = &g->param_info[i];
        const void *now, *was;
        size_t bytes;
        if (p->kind == RCV_PARAM) now = g->params + p->offset, was = s0.p + p->offset, bytes = p->numel * 4;
        else if (p->kind == RCV_BUFFER) now = g->buffers + p->offset, was = s0.b + p->offset, bytes = p->numel * 4;
        else now = g->ibuffers + p->offset, was = s0.i + p->offset, bytes = 8;
        int same = !memcmp(now, was, bytes);
        if (i < boundary) {
            n_frozen++;
            if (!same && frozen_same) fprintf(stderr, "%s: frozen %s changed\n", what, p->name);
            frozen_same &= same;
        } else {
            n_live++;
            if (same && live_changed) fprintf(stderr, "%s: trained %s did not change\n", what, p->name);
            live_changed &= !same;
        }
    }
    printf("%s: %d frozen tensors (weights, running stats, num_batches_tracked) bit-identical: %s; %d trained "
           "tensors all changed: %s\n", what, n_frozen, frozen_same ? "yes" : "NO", n_live, live_changed ? "yes" : "NO");
    CHECK(n_frozen > 0 && frozen_same, "%s: frozen tensors unchanged", what);
    CHECK(n_live > 0 && live_changed, "%s: trained tensors changed", what);

    // A frozen batchnorm in train mode is the eval-mode one: layer1's output agrees bit for bit.
    int l1 = rcv_model_find_node(&m, "layer1");
    size_t n1 = rcv_numel(g->nodes[l1].shape);
    float *a = malloc(n1 * 4);
    rcv_graph_set_training(g, 1);
    rcv_graph_forward(g);
    memcpy(a, g->nodes[l1].out, n1 * 4);
    rcv_graph_set_training(g, 0);
    rcv_graph_forward(g);
    CHECK(!memcmp(a, g->nodes[l1].out, n1 * 4), "%s: frozen part computes the same in train and eval mode", what);
    free(a);
    drop(&s0);
    rcv_optim_free(&o);
    rcv_model_free(&m);
}

// lr_mult: plain SGD, update = -lr * mult * grad, checked per tensor against the gradient.
static void test_lr_mult(void) {
    rcv_model m;
    if (build(&m, 10, 4)) return;
    rcv_finetune_cfg t;
    memset(&t, 0, sizeof t);
    snprintf(t.lr_mult, sizeof t.lr_mult, "fc=10,layer4=0.5,conv1=0");
    CHECK(rcv_transfer_apply(&m, &t, 0, 1) == 0, "lr-mult: %s", rcv_error());
    rcv_graph *g = m.g;
    rcv_graph_plan(g, 2, RCV_BACKEND_CPU);
    rcv_optim_cfg oc = rcv_optim_defaults(RCV_OPT_SGD);
    oc.momentum = 0;
    oc.weight_decay = 0;
    oc.nesterov = 0;
    rcv_optim o;
    rcv_optim_init(&o, &oc, g->n_param_floats);
    snap s0 = take(g);
    fill_uniform(g->nodes[m.input].out, 2 * 32 * 32 * 3, 5, 0, 1);
    g->nodes[m.labels].idata[0] = 1;
    g->nodes[m.labels].idata[1] = 7;
    rcv_graph_set_training(g, 1);
    rcv_graph_forward(g);
    rcv_graph_zero_grad(g);
    rcv_graph_backward(g, m.loss, 1.0f);
    rcv_optim_step(&o, g, 0.01f);
    const char *names[4] = {"fc.weight", "layer4.1.conv2.weight", "conv1.weight", "layer2.0.conv1.weight"};
    const float mult[4] = {10, 0.5f, 0, 1};
    for (int k = 0; k < 4; k++) {
        int p = rcv_graph_find_param(g, names[k]);
        const rcv_param *pi = &g->param_info[p];
        double worst = 0, scale = 0;
        for (size_t j = 0; j < pi->numel; j++) {
            double step = (double)g->params[pi->offset + j] - s0.p[pi->offset + j];
            double want = -0.01 * mult[k] * g->grads[pi->offset + j];
            worst = fmax(worst, fabs(step - want));
            scale = fmax(scale, fabs(want));
        }
        CHECK(worst <= 1e-6 * fmax(scale, 1e-3), "%s: lr x %g: step error %g (scale %g)", names[k], mult[k], worst, scale);
    }
    memset(&t, 0, sizeof t);
    snprintf(t.lr_mult, sizeof t.lr_mult, "fc");
    CHECK(rcv_transfer_apply(&m, &t, 0, 1) == -1 && strstr(rcv_error(), "PREFIX=X"), "bad lr-mult: %s", rcv_error());
    snprintf(t.lr_mult, sizeof t.lr_mult, "fc=-1");
    CHECK(rcv_transfer_apply(&m, &t, 0, 1) == -1, "negative lr-mult");
    drop(&s0);
    rcv_optim_free(&o);
    rcv_model_free(&m);
}

int main(void) {
    CHECK(rcv_name_under("layer1.0.conv1.weight", "layer1") && !rcv_name_under("layer10.weight", "layer1") &&
              rcv_name_under("fc.bias", "fc.") && rcv_name_under("fc", "fc") && !rcv_name_under("fcx.w", "fc"),
          "module prefix rule");
    const char *dir = test_tmpdir("transfer");
    int rc = test_sh("/usr/bin/python3 tests/oracle/transfer_ref.py %s", dir);
    if (rc == 77 || rc == 127) printf("SKIP torchvision export: /usr/bin/python3 with torch and torchvision is not available\n");
    else {
        CHECK(rc == 0, "transfer_ref.py exited %d", rc);
        if (rc == 0) test_init(dir);
    }
    rcv_finetune_cfg t;
    memset(&t, 0, sizeof t);
    snprintf(t.train_from, sizeof t.train_from, "layer2");
    check_frozen("--train-from layer2", &t, "layer2");
    memset(&t, 0, sizeof t);
    snprintf(t.freeze, sizeof t.freeze, "conv1,bn1,layer1,layer2.0");
    check_frozen("--freeze conv1,bn1,layer1,layer2.0", &t, "layer2.1");
    test_lr_mult();
    test_sh("rm -rf %s", dir);
    return test_done();
}
