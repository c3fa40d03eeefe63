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
#include "testutil.h"

#define TOL 1e-4

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

// listing_<model>.txt: "name dtype d0,d1,..." per state_dict entry, then "params N".
static void check_listing(const char *dir, const char *name, const rcv_model *m) {
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/listing_%s.txt", dir, name);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    const rcv_graph *g = m->g;
    int i = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        char key[256], dt[16], dims[128] = "";
        int nf = sscanf(line, "%255s %15s %127s", key, dt, dims);
        if (!strcmp(key, "params")) {
            size_t want = strtoull(dt, NULL, 10);
            CHECK(rcv_graph_param_count(g) == want, "%s: %zu params, torchvision %zu", name, rcv_graph_param_count(g),
                  want);
            continue;
        }
        if (nf < 2 || i >= g->n_params) {
            bad++;
            if (bad < 4) fprintf(stderr, "%s: extra torchvision entry %s\n", name, key);
            continue;
        }
        const rcv_param *p = &g->param_info[i++];
        char ours[128] = "";
        for (int d = 0; d < p->ndim; d++)
            snprintf(ours + strlen(ours), sizeof ours - strlen(ours), "%s%lld", d ? "," : "", (long long)p->shape[d]);
        int same = !strcmp(p->name, key) && !strcmp(ours, dims) &&
                   (p->kind == RCV_BUFFER_I64) == !strcmp(dt, "I64");
        if (!same && ++bad < 4) fprintf(stderr, "%s entry %d: ours %s [%s], torchvision %s [%s]\n", name, i - 1, p->name, ours, key, dims);
    }
    fclose(f);
    CHECK(bad == 0 && i == g->n_params, "%s: state_dict listing matches torchvision (%d of %d entries, %d differ)",
          name, i, g->n_params, bad);
}

// Parameter counts, the frame (input -> normalize -> ... -> loss), module lookup, ResNet-D nodes;
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

// --- the PyTorch oracle ---

static int read_cfg(const char *path, char *model, rcv_model_cfg *c, int *batch) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    rcv_model_cfg_defaults(c);
    char key[64], line[512];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s", key) != 1) continue;
        const char *v = line + strlen(key);
        if (!strcmp(key, "model")) sscanf(v, "%63s", model);
        else if (!strcmp(key, "batch")) *batch = atoi(v);
        else if (!strcmp(key, "in_c")) c->in_c = atoi(v);
        else if (!strcmp(key, "in_h")) c->in_h = atoi(v);
        else if (!strcmp(key, "in_w")) c->in_w = atoi(v);
        else if (!strcmp(key, "n_classes")) c->n_classes = atoi(v);
        else if (!strcmp(key, "small_input")) c->small_input = atoi(v);
        else if (!strcmp(key, "gamma")) c->gamma = strtof(v, NULL);
        else if (!strcmp(key, "mean")) sscanf(v, "%f %f %f %f", &c->mean[0], &c->mean[1], &c->mean[2], &c->mean[3]);
        else if (!strcmp(key, "std")) sscanf(v, "%f %f %f %f", &c->std[0], &c->std[1], &c->std[2], &c->std[3]);
    }
    fclose(f);
    return 0;
}

// Relative error of ours against reference tensor `name`; NaN if it is missing or mis-sized.
static double rel_err(const rcv_safetensors *ref, const char *name, const float *ours, size_t n) {
    float *want = malloc(n * sizeof(float));
    double e = NAN;
    if (rcv_st_read_f32(ref, name, want, n) == 0) e = max_rel_err(ours, want, n, 1e-30);
    else fprintf(stderr, "%s\n", rcv_error());
    free(want);
    return e;
}

// Tracks the worst error of a group of tensors and its name.
typedef struct { double err; char name[RCV_NAME]; } worst;
static void note(worst *w, double e, const char *name) {
    if (isnan(w->err)) return; // a NaN stays the worst
    if (!(e <= w->err)) {
        w->err = e;
        snprintf(w->name, sizeof w->name, "%s", name);
    }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void oracle_case(const char *dir, const char *cas, rcv_backend be) {
    double t0 = now();
    const char *bname = be == RCV_BACKEND_REF ? "ref" : "cpu";
    char path[512], model[64] = "";
    rcv_model_cfg cfg;
    int batch = 0;
    snprintf(path, sizeof path, "%s/%s.cfg", dir, cas);
    if (read_cfg(path, model, &cfg, &batch)) {
        CHECK(0, "read %s", path);
        return;
    }
    cfg.no_init = 1;
    rcv_model m;
    if (rcv_model_build(&m, model, &cfg)) {
        CHECK(0, "%s: build %s: %s", cas, model, rcv_error());
        return;
    }
    rcv_graph *g = m.g;
    rcv_safetensors st, ref;
    snprintf(path, sizeof path, "%s/%s.state.safetensors", dir, cas);
    int rc = rcv_st_open(&st, path);
    CHECK(rc == 0, "%s", rcv_error());
    if (rc) goto out_model;
    rc = rcv_st_load_graph(&st, g, 1, 0, NULL, NULL);
    CHECK(rc == 0, "%s: load torchvision state_dict strictly: %s", cas, rcv_error());
    rcv_st_close(&st);
    snprintf(path, sizeof path, "%s/%s.ref.safetensors", dir, cas);
    if (rc || rcv_st_open(&ref, path)) {
        CHECK(0, "%s: %s", cas, rcv_error());
        goto out_model;
    }

    rcv_graph_require_grad(g, m.input);
    if (rcv_graph_plan(g, batch, be)) {
        CHECK(0, "%s/%s: plan: %s", cas, bname, rcv_error());
        goto out;
    }
    rcv_node *in = &g->nodes[m.input];
    size_t nin = rcv_numel(in->shape);
    CHECK(rcv_st_read_f32(&ref, "input", in->out, nin) == 0, "input: %s", rcv_error()); // NHWC both
    int64_t lab[64];
    CHECK(batch <= 64 && rcv_st_read_i64(&ref, "labels", lab, (size_t)batch) == 0, "labels: %s", rcv_error());
    for (int i = 0; i < batch; i++) g->nodes[m.labels].idata[i] = (int32_t)lab[i];

    const char *modes[2] = {"eval", "train"};
    for (int t = 0; t < 2; t++) {
        char name[RCV_NAME + 32];
        rcv_graph_set_training(g, t);
        rcv_graph_zero_grad(g);
        rcv_graph_forward(g);
        rcv_graph_backward(g, m.loss, 1.0f);
        snprintf(name, sizeof name, "%s.logits", modes[t]);
        double e_z = rel_err(&ref, name, g->nodes[m.logits].out, rcv_numel(g->nodes[m.logits].shape));
        snprintf(name, sizeof name, "%s.loss", modes[t]);
        double e_l = rel_err(&ref, name, g->nodes[m.loss].out, 1);
        snprintf(name, sizeof name, "%s.input_grad", modes[t]);
        double e_x = rel_err(&ref, name, in->grad, nin);
        worst wg = {0, ""};
        for (int i = 0; i < g->n_params; i++) {
            const rcv_param *p = &g->param_info[i];
            if (p->kind != RCV_PARAM) continue;
            snprintf(name, sizeof name, "%s.grad.%s", modes[t], p->name);
            note(&wg, rel_err(&ref, name, rcv_param_grad(g, i), p->numel), p->name);
        }
        printf("%-15s %s %-5s logits %.1e  loss %.1e  input grad %.1e  param grads %.1e (worst %s)\n", cas, bname,
               modes[t], e_z, e_l, e_x, wg.err, wg.name);
        CHECK(e_z <= TOL && e_l <= TOL && e_x <= TOL && wg.err <= TOL, "%s/%s/%s: errors above %g", cas, bname,
              modes[t], TOL);
    }
    // Running stats after the train step: PyTorch's momentum update with the unbiased batch variance.
    worst wb = {0, ""};
    int nbt_ok = 1;
    for (int i = 0; i < g->n_params; i++) {
        const rcv_param *p = &g->param_info[i];
        char name[RCV_NAME + 32];
        snprintf(name, sizeof name, "after.%s", p->name);
        if (p->kind == RCV_BUFFER) note(&wb, rel_err(&ref, name, rcv_param_data(g, i), p->numel), p->name);
        if (p->kind == RCV_BUFFER_I64) {
            int64_t v = -1;
            rcv_st_read_i64(&ref, name, &v, 1);
            nbt_ok &= v == g->ibuffers[p->offset];
        }
    }
    printf("%-15s %s running stats %.1e (worst %s), num_batches_tracked %s; %.1f s\n", cas, bname, wb.err, wb.name,
           nbt_ok ? "ok" : "WRONG", now() - t0);
    CHECK(wb.err <= TOL && nbt_ok, "%s/%s: running stats after the train step", cas, bname);
out:
    rcv_st_close(&ref);
out_model:
    rcv_model_free(&m);
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
        const char *cases[] = {"smallcnn", "resnet18", "resnet18_small", "resnet50_d"};
        rcv_backend bes[] = {RCV_BACKEND_REF, RCV_BACKEND_CPU};
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 4; c++) {
                // Sanitizer runs (RCV_QUICK): the slow ref kernels only on the two small cases.
                if (test_quick() && bes[b] == RCV_BACKEND_REF && (c == 1 || c == 3)) continue;
                oracle_case(dir, cases[c], bes[b]);
            }
    }
    if (!given) test_sh("rm -rf %s", dir);
    return test_done();
}
