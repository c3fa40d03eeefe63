// The model zoo beyond tests/test_models.c: DenseNet-121/169/201, VGG-11/13/16/19 with
// batchnorm, the Residual Attention Network (Attention-56/92), ResNet-34/101/152 (ResNet-D with
// gamma > 0 for 34 and 152), and the multi-task box head.
//
// Oracles: torchvision 0.14's models (and their parameter counts, listed below from
// sum(p.numel() for p in torchvision.models.NAME().parameters())), and for the attention network
// tests/oracle/attention_ref.py, written from the paper. tests/oracle/zoo_ref.py builds each
// case with random weights and batchnorm statistics; we load its state_dict and must match its
// eval-mode and train-mode logits and loss and the running statistics after the train step
// within 1e-4 relative, and the input and parameter gradients of both modes within 1e-4 of
// PyTorch's float64 gradients on our own ReLU / max-pool decisions, each decision that differs
// from float64's lying within 1e-4 of its kink (model_oracle.h, zoo_ref.py --f64; why and the
// measured numbers: docs/models.md). Small inputs (16-64 pixels, batch 2) keep the deep models
// fast; VGG-16/19 run at 64x64, where the features end at 2x2 and AdaptiveAvgPool2d((7, 7))
// spreads them with overlapping windows.
#include "model_oracle.h"

// torchvision's (and for attention*, attention_ref.py's) parameter counts at 1000 classes.
static const struct { const char *name; size_t params; } counts[] = {
    {"densenet121", 7978856}, {"densenet169", 14149480}, {"densenet201", 20013928},
    {"vgg11_bn", 132868840},  {"vgg13_bn", 133053736},   {"vgg16_bn", 138365992},
    {"vgg19_bn", 143678248},  {"attention56", 31810728}, {"attention92", 52466344},
};

static int build(rcv_model *m, const char *name, int h, int k, float gamma, int small, uint64_t seed, int no_init) {
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_h = cfg.in_w = h;
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

// Parameter counts and state_dict listings at 224x224 and 1000 classes; feature-map shapes.
static void test_structure(const char *dir) {
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        rcv_model m;
        if (build(&m, counts[i].name, 224, 1000, 0, 0, 0, 1)) {
            CHECK(0, "build %s", counts[i].name);
            continue;
        }
        CHECK(rcv_graph_param_count(m.g) == counts[i].params, "%s: %zu params, reference %zu", counts[i].name,
              rcv_graph_param_count(m.g), counts[i].params);
        if (dir) check_listing(dir, counts[i].name, &m);
        rcv_shape f = m.g->nodes[m.features].shape;
        int want_c = counts[i].name[0] == 'd' ? (i == 0 ? 1024 : i == 1 ? 1664 : 1920)
                   : counts[i].name[0] == 'v' ? 512 : 2048;
        CHECK(f.c == want_c && f.h == 7 && f.w == 7, "%s features (N, %d, %d, %d), expected (N, %d, 7, 7)",
              counts[i].name, f.c, f.h, f.w, want_c);
        rcv_model_free(&m);
    }
    // torchvision module outputs by path: model.features of a DenseNet ends at norm5 (the final
    // relu is functional), of a VGG at its last max-pool.
    rcv_model m;
    if (!build(&m, "densenet121", 64, 10, 0, 0, 0, 1)) {
        int f = rcv_model_find_node(&m, "features");
        CHECK(f >= 0 && !strcmp(m.g->nodes[f].name, "features.norm5"), "densenet features -> %s",
              f >= 0 ? m.g->nodes[f].name : "?");
        int b = rcv_model_find_node(&m, "features.denseblock2");
        CHECK(b >= 0 && m.g->nodes[b].op == RCV_OP_CONCAT && m.g->nodes[b].shape.c == 128 + 12 * 32,
              "denseblock2 = concat of 128 + 12 x 32 channels");
        rcv_model_free(&m);
    }
    if (!build(&m, "vgg16_bn", 64, 10, 0, 0, 0, 1)) {
        int f = rcv_model_find_node(&m, "features");
        CHECK(f >= 0 && !strcmp(m.g->nodes[f].name, "features.43") && m.g->nodes[f].op == RCV_OP_MAXPOOL2D &&
                  m.g->nodes[f].shape.h == 2,
              "vgg16_bn features -> features.43 max-pool, 2x2 at 64x64");
        int a = rcv_graph_find_node(m.g, "avgpool");
        CHECK(a >= 0 && m.g->nodes[a].op == RCV_OP_ADAPTIVE_AVGPOOL && m.g->nodes[a].shape.h == 7, "avgpool 7x7");
        CHECK(count_op(m.g, RCV_OP_DROPOUT) == 2 && m.g->nodes[rcv_graph_find_node(m.g, "classifier.2")].attr.dropout.p == 0.5f,
              "torchvision's two dropouts (p 0.5) by default");
        rcv_model_free(&m);
    }
    if (!build(&m, "attention92", 64, 10, 0, 1, 0, 1)) {
        CHECK(m.g->nodes[m.features].shape.h == 8, "attention92 small input at 64: 8x8 features");
        int g = rcv_graph_find_node(m.g, "att2.1.gate"), c = rcv_graph_find_node(m.g, "att2.1.combine");
        int s = rcv_graph_find_node(m.g, "att2.1.mask.out.sigmoid"), t = rcv_model_find_node(&m, "att2.1.trunk");
        CHECK(g >= 0 && c >= 0 && m.g->nodes[g].in[0] == s && m.g->nodes[g].in[1] == t &&
                  m.g->nodes[c].in[0] == t && m.g->nodes[c].in[1] == g,
              "att2.1: combine = T + sigmoid(mask) * T");
        rcv_model_free(&m);
    }
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_h = cfg.in_w = 48; // stage 1 at 12x12: not divisible by 8
    CHECK(rcv_model_build(&m, "attention56", &cfg) == -1 && strstr(rcv_error(), "divisible"),
          "attention56 at 48x48: %s", rcv_error());
}

// Forward multiply-adds at 224x224, 1000 classes, against torchvision's documented "GFLOPS"
// (which are MACs): resnet18 1.81, resnet50 4.09, resnet152 11.51, densenet121 2.83,
// densenet201 4.29, vgg16_bn 15.47, vgg19_bn 19.63; Attention-56/92: the paper's 6.2 / 10.4 G.
static void test_macs(void) {
    static const struct { const char *name; double g, tol; } want[] = {
        {"resnet18", 1.81, 0.005},    {"resnet50", 4.09, 0.005},    {"resnet152", 11.51, 0.005},
        {"densenet121", 2.83, 0.005}, {"densenet201", 4.29, 0.005}, {"vgg16_bn", 15.47, 0.005},
        {"vgg19_bn", 19.63, 0.005},   {"attention56", 6.2, 0.03},   {"attention92", 10.4, 0.03},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        rcv_model m;
        if (build(&m, want[i].name, 224, 1000, 0, 0, 0, 1)) continue;
        double g = rcv_model_macs(&m) * 1e-9;
        printf("%-12s %.3f GMACs (reference %.2f)\n", want[i].name, g, want[i].g);
        CHECK(fabs(g / want[i].g - 1) <= want[i].tol, "%s: %.3f GMACs, reference %.2f", want[i].name, g, want[i].g);
        rcv_model_free(&m);
    }
}

// ResNet-D with gamma = 0 is the plain ResNet: same graph, bit-identical outputs.
static void test_resnet_d_gamma0(void) {
    rcv_model a, b;
    if (build(&a, "resnet34", 32, 10, 0.0f, 0, 5, 0) || build(&b, "resnet34", 32, 10, -0.0f, 0, 5, 0)) return;
    CHECK(a.g->n_nodes == b.g->n_nodes && count_op(b.g, RCV_OP_SCALE_ADD) == 0, "gamma 0: no geometric nodes");
    rcv_graph_plan(a.g, 2, RCV_BACKEND_CPU);
    rcv_graph_plan(b.g, 2, RCV_BACKEND_CPU);
    fill_uniform(a.g->nodes[a.input].out, 2 * 3 * 32 * 32, 3, 0, 1);
    memcpy(b.g->nodes[b.input].out, a.g->nodes[a.input].out, 2 * 3 * 32 * 32 * sizeof(float));
    rcv_graph_forward(a.g);
    rcv_graph_forward(b.g);
    CHECK(!memcmp(a.g->nodes[a.logits].out, b.g->nodes[b.logits].out, 20 * sizeof(float)), "same logits");
    rcv_model_free(&a);
    rcv_model_free(&b);
}

// The box head sits on VGG's penultimate features; a misspelt suffix names +box. (IoU: test_box.c.)
static void test_box_head(void) {
    rcv_model m;
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_h = cfg.in_w = 32;
    cfg.n_classes = 10;
    cfg.no_init = 1;
    CHECK(rcv_model_build(&m, "vgg11_bn+box", &cfg) == 0, "vgg11_bn+box: %s", rcv_error());
    if (m.g) {
        int f = m.g->nodes[rcv_graph_find_node(m.g, "box")].in[0];
        CHECK(!strcmp(m.g->nodes[f].name, "classifier.5") && !strcmp(m.name, "vgg11_bn+box"),
              "VGG box head on classifier.5 (%s)", m.g->nodes[f].name);
        rcv_model_free(&m);
    }
    CHECK(rcv_model_build(&m, "resnet18+boxes", &cfg) == -1 && strstr(rcv_error(), "+box"), "bad suffix: %s",
          rcv_error());
}

int main(int argc, char **argv) {
    const char *given = getenv("RCV_ORACLE_DIR");
    const char *dir = given ? given : test_tmpdir("zoo");
    int rc = given ? 0 : test_sh("/usr/bin/python3 tests/oracle/zoo_ref.py %s", dir);
    int oracle = rc == 0;
    if (rc == 77 || rc == 127) printf("SKIP PyTorch oracle: /usr/bin/python3 with torch and torchvision is not available\n");
    else CHECK(rc == 0, "tests/oracle/zoo_ref.py exited %d", rc);

    test_structure(oracle ? dir : NULL);
    test_macs();
    test_resnet_d_gamma0();
    test_box_head();
    if (oracle) {
        const char *cases[] = {"resnet18_box", "resnet34_d", "resnet101_small", "resnet152_d", "densenet121",
                               "densenet121_small", "densenet169", "densenet201", "vgg11_bn", "vgg13_bn_small",
                               "vgg16_bn", "vgg19_bn", "attention56", "attention92_small"};
        enum { NC = sizeof cases / sizeof cases[0] };
        // (case, backend) runs: every case on the cpu backend (RCV_ZOO_BACKEND=ref: by hand, the
        // slow ref kernels on the named cases), and the ref kernels (the oracle of the cpu ones)
        // on the two new block types at their smallest.
        const char *run_case[NC + 2], *run_be[NC + 2];
        int nrun = 0, only = argc > 1;
        const char *be = getenv("RCV_ZOO_BACKEND");
        for (int c = 0; c < NC; c++) {
            int want = !only;
            for (int a = 1; a < argc; a++) want |= !strcmp(argv[a], cases[c]);
            if (want) run_case[nrun] = cases[c], run_be[nrun++] = be && !strcmp(be, "ref") ? "ref" : "cpu";
        }
        if (!only && !test_quick()) {
            run_case[nrun] = "densenet121_small", run_be[nrun++] = "ref";
            run_case[nrun] = "resnet18_box", run_be[nrun++] = "ref";
        }
        // Gradients against PyTorch in float64 on our ReLU / max-pool decisions (model_oracle.h).
        oracle_f64 = 1;
        char cmd[4096];
        int len = snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/oracle/zoo_ref.py --f64 %s", dir);
        for (int r = 0; r < nrun; r++) {
            oracle_case(dir, run_case[r], !strcmp(run_be[r], "ref") ? RCV_BACKEND_REF : RCV_BACKEND_CPU);
            len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %s.%s", run_case[r], run_be[r]);
        }
        double t0 = now();
        rc = test_sh("%s", cmd);
        CHECK(rc == 0, "%s exited %d", cmd, rc);
        printf("float64 gradient oracle: %.1f s\n", now() - t0);
        for (int r = 0; rc == 0 && r < nrun; r++) oracle_check_f64(dir, run_case[r], run_be[r]);
    }
    if (!given) test_sh("rm -rf %s", dir);
    return test_done();
}
