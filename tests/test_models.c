// Model zoo: registry and config errors, structure (torchvision's names, shapes,
// order and parameter counts), initialisation laws, the ResNet-D graph, and the
// PyTorch oracle: tests/oracle/resnet_ref.py builds the same models with random
// weights and running stats and dumps logits, loss, input and parameter
// gradients (eval and train mode) and the running stats after the train step;
// we load its state_dict and must agree to 1e-4 relative to each tensor's
// largest magnitude, on the ref and cpu backends. (The script damps each
// residual branch's last batchnorm so that the train-mode comparison is
// well-conditioned; see randomize_bn there.)
//
// RCV_ORACLE_DIR=DIR reuses outputs written by hand, e.g. with the exact float64
// references: /usr/bin/python3 tests/oracle/resnet_ref.py DIR --f64.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robustcv/error.h"
#include "robustcv/graph.h"
#include "robustcv/models.h"
#include "robustcv/safetensors.h"
#include "model_oracle.h"
#include "testutil.h"

// torchvision's parameter counts at 1000 classes.
static const struct { const char *name; size_t params; } tv_counts[] = {
    {"resnet18", 11689512}, {"resnet34", 21797672}, {"resnet50", 25557032},
    {"resnet101", 44549160}, {"resnet152", 60192808},
};

static int build(rcv_model *m, const char *name, int c, int h, int w, int k, float gamma, int small, uint64_t seed,
                 int no_init) {
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = c;
    cfg.in_h = h;
    cfg.in_w = w;
    cfg.n_classes = k;
    cfg.gamma = gamma;
    cfg.small_input = small;
    cfg.seed = seed;
    cfg.no_init = no_init;
    int rc = rcv_model_build(m, name, &cfg);
    if (rc) fprintf(stderr, "build %s: %s\n", name, rcv_error());
    return rc;
}

static int count_op(const rcv_graph *g, rcv_op op) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

static void test_registry(void) {
    int n;
    const char *const *names = rcv_model_names(&n);
    CHECK(n >= 6, "%d models", n);
    for (int i = 0; i < n; i++) CHECK(rcv_model_description(names[i]) != NULL, "description of %s", names[i]);
    CHECK(rcv_model_description("nope") == NULL, "unknown description");

    rcv_model m;
    CHECK(rcv_model_build(&m, "resnet19", NULL) == -1, "unknown model must fail");
    CHECK(strstr(rcv_error(), "resnet19") && strstr(rcv_error(), "smallcnn") && strstr(rcv_error(), "resnet152"),
          "message names the bad and the valid models: %s", rcv_error());
    CHECK(m.g == NULL, "no graph left behind");

    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    CHECK(cfg.in_c == 3 && cfg.in_h == 224 && cfg.n_classes == 1000 && cfg.std[3] == 1 && cfg.mean[0] == 0 &&
              cfg.gamma == 0 && cfg.seed == 0,
          "defaults");
    cfg.n_classes = 0;
    CHECK(rcv_model_build(&m, "resnet18", &cfg) == -1 && strstr(rcv_error(), "classes"), "0 classes: %s",
          rcv_error());
    rcv_model_cfg_defaults(&cfg);
    cfg.std[1] = 0;
    CHECK(rcv_model_build(&m, "resnet18", &cfg) == -1 && strstr(rcv_error(), "std"), "std 0: %s", rcv_error());
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = 1;
    cfg.in_h = cfg.in_w = 28;
    cfg.gamma = 0.5f;
    CHECK(rcv_model_build(&m, "smallcnn", &cfg) == -1 && strstr(rcv_error(), "gamma"), "gamma on smallcnn: %s",
          rcv_error());
    cfg.gamma = 0;
    cfg.in_h = 2;
    CHECK(rcv_model_build(&m, "smallcnn", &cfg) == -1 && strstr(rcv_error(), "4x4"), "2x2 smallcnn: %s",
          rcv_error());
}

// with `dir` (the oracle's output), names, shapes and order against torchvision's state_dicts.
static void test_structure(const char *dir) {
    for (size_t i = 0; i < sizeof tv_counts / sizeof tv_counts[0]; i++) {
        rcv_model m;
        if (build(&m, tv_counts[i].name, 3, 224, 224, 1000, 0, 0, 0, 1)) {
            CHECK(0, "build %s", tv_counts[i].name);
            continue;
        }
        CHECK(rcv_graph_param_count(m.g) == tv_counts[i].params, "%s: %zu params, torchvision has %zu",
              tv_counts[i].name, rcv_graph_param_count(m.g), tv_counts[i].params);
        CHECK(count_op(m.g, RCV_OP_SCALE_ADD) == 0, "%s gamma 0: no geometric nodes", tv_counts[i].name);
        if (dir) check_listing(dir, tv_counts[i].name, &m);
        rcv_shape f = m.g->nodes[m.features].shape;
        int e = i < 2 ? 1 : 4;
        CHECK(f.c == 512 * e && f.h == 7 && f.w == 7, "%s features (N, %d, %d, %d)", tv_counts[i].name, f.c, f.h,
              f.w);
        rcv_model_free(&m);
    }

    rcv_model m;
    if (build(&m, "smallcnn", 1, 28, 28, 10, 0, 0, 0, 0)) return;
    CHECK(rcv_graph_param_count(m.g) == 140458, "smallcnn params %zu", rcv_graph_param_count(m.g));
    if (dir) check_listing(dir, "smallcnn", &m);
    CHECK(m.g->nodes[m.input].op == RCV_OP_INPUT && !strcmp(m.g->nodes[m.input].name, "input"), "input node");
    CHECK(m.g->nodes[1].op == RCV_OP_NORMALIZE && m.g->nodes[1].in[0] == m.input, "normalize right after input");
    CHECK(m.g->nodes[m.loss].op == RCV_OP_CROSS_ENTROPY && m.g->nodes[m.loss].in[0] == m.logits &&
              m.g->nodes[m.loss].in[1] == m.labels,
          "loss = cross_entropy(logits, labels)");
    rcv_shape z = m.g->nodes[m.logits].shape, f = m.g->nodes[m.features].shape;
    CHECK(z.c == 10 && z.h == 1 && f.c == 128 && f.h == 7, "smallcnn logits %d, features %dx%d", z.c, f.h, f.w);
    CHECK(count_op(m.g, RCV_OP_DROPOUT) == 0, "dropout 0: no node");
    CHECK(rcv_model_set_label_smoothing(&m, 0.1f) == 0 && m.g->nodes[m.loss].attr.loss.label_smoothing == 0.1f,
          "label smoothing");
    CHECK(rcv_model_set_label_smoothing(&m, 1.5f) == -1, "label smoothing 1.5 rejected");
    rcv_model_free(&m);

    // smallcnn6 = smallcnn + conv6/bn6 (128 -> 128, 3x3): 147456 + 256 more parameters.
    if (build(&m, "smallcnn6", 1, 28, 28, 10, 0, 0, 0, 0)) return;
    CHECK(rcv_graph_param_count(m.g) == 140458 + 147456 + 256, "smallcnn6 params %zu", rcv_graph_param_count(m.g));
    if (dir) check_listing(dir, "smallcnn6", &m);
    f = m.g->nodes[m.features].shape;
    CHECK(f.c == 128 && f.h == 7 && !strcmp(m.g->nodes[m.features].name, "relu6"), "smallcnn6 features %s %dx%dx%d",
          m.g->nodes[m.features].name, f.c, f.h, f.w);
    rcv_model_free(&m);

    // Plain ResNet-50 vs ResNet-50D: 2 (blocks - 1) - 1 scale_add nodes per stage, nothing else.
    rcv_model p, d;
    if (build(&p, "resnet50", 3, 32, 32, 10, 0, 0, 0, 1) || build(&d, "resnet50", 3, 32, 32, 10, 0.04278f, 0, 0, 1))
        return;
    int extra = (2 * 2 - 1) + (2 * 3 - 1) + (2 * 5 - 1) + (2 * 2 - 1);
    CHECK(d.g->n_nodes == p.g->n_nodes + extra && count_op(d.g, RCV_OP_SCALE_ADD) == extra,
          "resnet50d nodes %d, plain %d, expected +%d", d.g->n_nodes, p.g->n_nodes, extra);
    CHECK(rcv_graph_param_count(d.g) == rcv_graph_param_count(p.g), "same parameters");
    int l4 = rcv_model_find_node(&d, "layer4");
    CHECK(l4 == d.features && !strcmp(d.g->nodes[l4].name, "layer4.geo.2"), "resnet50d layer4 -> %s",
          l4 >= 0 ? d.g->nodes[l4].name : "?");
    int geo = rcv_graph_find_node(d.g, "layer3.geo.5"), sum = rcv_graph_find_node(d.g, "layer3.geosum.4");
    int b5 = rcv_graph_find_node(d.g, "layer3.5.relu");
    CHECK(geo >= 0 && sum >= 0 && b5 >= 0 && d.g->nodes[geo].in[0] == b5 && d.g->nodes[geo].in[1] == sum &&
              d.g->nodes[geo].attr.loss.alpha == 1.0f && d.g->nodes[geo].attr.loss.beta2 == 0.04278f,
          "out_6 = B_6(out_5) + gamma S_5");
    CHECK(rcv_graph_find_node(d.g, "layer3.geosum.5") == -1, "no S for a stage's last block");
    l4 = rcv_model_find_node(&p, "layer4");
    CHECK(l4 == p.features && !strcmp(p.g->nodes[l4].name, "layer4.2.relu"), "resnet50 layer4 -> %s",
          l4 >= 0 ? p.g->nodes[l4].name : "?");
    CHECK(rcv_model_find_node(&p, "layer2.1") == rcv_graph_find_node(p.g, "layer2.1.relu"), "layer2.1");
    CHECK(rcv_model_find_node(&p, "fc") == p.logits, "fc");
    CHECK(rcv_model_find_node(&p, "layer9") == -1, "layer9");
    rcv_model_free(&p);
    rcv_model_free(&d);

    // small_input stem: conv1 3x3 stride 1, no max-pool.
    if (build(&m, "resnet18", 3, 32, 32, 10, 0, 1, 0, 1)) return;
    int c1 = rcv_graph_find_param(m.g, "conv1.weight");
    CHECK(c1 >= 0 && m.g->param_info[c1].shape[2] == 3 && count_op(m.g, RCV_OP_MAXPOOL2D) == 0 &&
              m.g->nodes[m.features].shape.h == 4,
          "small stem");
    rcv_model_free(&m);
}

static void stats(const float *x, size_t n, double *mean, double *std, double *amax) {
    double s = 0, s2 = 0, a = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        a = fmax(a, fabs(x[i]));
    }
    *mean = s / n;
    *std = sqrt(fmax(0, s2 / n - *mean * *mean));
    *amax = a;
}

// The laws of torchvision's init: kaiming_normal(fan_out) convs, default Linear, BN constants; seeds.
static void test_init(void) {
    rcv_model a, b, c;
    if (build(&a, "resnet18", 3, 32, 32, 10, 0, 0, 7, 0) || build(&b, "resnet18", 3, 32, 32, 10, 0, 0, 7, 0) ||
        build(&c, "resnet18", 3, 32, 32, 10, 0, 0, 8, 0))
        return;
    rcv_graph *g = a.g;
    CHECK(!memcmp(a.g->params, b.g->params, g->n_param_floats * sizeof(float)), "same seed, same weights");
    CHECK(memcmp(a.g->params, c.g->params, g->n_param_floats * sizeof(float)), "other seed, other weights");
    double mean, std, amax;
    const char *convs[] = {"conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight",
                           "layer3.0.downsample.0.weight"};
    for (int i = 0; i < 4; i++) {
        int p = rcv_graph_find_param(g, convs[i]);
        const rcv_param *pi = &g->param_info[p];
        stats(rcv_param_data(g, p), pi->numel, &mean, &std, &amax);
        double want = sqrt(2.0 / (double)(pi->shape[0] * pi->shape[2] * pi->shape[3]));
        CHECK(fabs(std / want - 1) < 0.05 && fabs(mean) < 0.1 * want, "%s std %g, kaiming fan_out %g", convs[i], std,
              want);
    }
    int fw = rcv_graph_find_param(g, "fc.weight"), fb = rcv_graph_find_param(g, "fc.bias");
    double bound = 1 / sqrt(512.0);
    stats(rcv_param_data(g, fw), g->param_info[fw].numel, &mean, &std, &amax);
    CHECK(amax <= bound && amax > 0.95 * bound && fabs(std / (bound / sqrt(3.0)) - 1) < 0.05,
          "fc.weight U(+-1/sqrt(512)): max %g std %g", amax, std);
    stats(rcv_param_data(g, fb), 10, &mean, &std, &amax);
    CHECK(amax <= bound && amax > 0, "fc.bias within +-1/sqrt(fan_in)");
    int ok = 1;
    for (int i = 0; i < g->n_params; i++) {
        const rcv_param *pi = &g->param_info[i];
        const char *dot = strrchr(pi->name, '.');
        if (!strstr(pi->name, "bn") && !strstr(pi->name, "downsample.1")) continue;
        if (pi->kind == RCV_BUFFER_I64) {
            ok &= g->ibuffers[pi->offset] == 0;
            continue;
        }
        float want = (!strcmp(dot, ".weight") || !strcmp(dot, ".running_var")) ? 1.0f : 0.0f;
        const float *x = rcv_param_data(g, i);
        for (size_t j = 0; j < pi->numel; j++) ok &= x[j] == want;
    }
    CHECK(ok, "batchnorm weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked 0");
    CHECK(rcv_model_init(&c, 7) == 0 && !memcmp(a.g->params, c.g->params, g->n_param_floats * sizeof(float)),
          "rcv_model_init(7) reproduces the build with seed 7");
    rcv_model_free(&a);
    rcv_model_free(&b);
    rcv_model_free(&c);
}


int main(void) {
    // RCV_ORACLE_DIR: use the outputs of an earlier run by hand (e.g. resnet_ref.py DIR --f64).
    const char *given = getenv("RCV_ORACLE_DIR");
    const char *dir = given ? given : test_tmpdir("models");
    int rc = given ? 0 : test_sh("/usr/bin/python3 tests/oracle/resnet_ref.py %s", dir);
    int oracle = rc == 0;
    if (rc == 77 || rc == 127) printf("SKIP PyTorch oracle: /usr/bin/python3 with torch and torchvision is not available\n");
    else CHECK(rc == 0, "tests/oracle/resnet_ref.py exited %d", rc);

    test_registry();
    test_structure(oracle ? dir : NULL);
    test_init();
    if (oracle) {
        const char *cases[] = {"smallcnn", "resnet18", "resnet18_small", "resnet50_d", "smallcnn6"};
        rcv_backend bes[] = {RCV_BACKEND_REF, RCV_BACKEND_CPU};
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 5; c++) {
                // Sanitizer runs (RCV_QUICK): the slow ref kernels only on the two small cases.
                if (test_quick() && bes[b] == RCV_BACKEND_REF && (c == 1 || c == 3)) continue;
                oracle_case(dir, cases[c], bes[b]);
            }
    }
    if (!given) test_sh("rm -rf %s", dir);
    return test_done();
}
