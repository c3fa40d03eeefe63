// No oneDNN reference primitive in a hot path, at every ISA tier reachable on this machine.
// oneDNN's `ref:` implementations are its fallbacks when no jit kernel takes the layouts asked
// for: correct but 100-1000x slower (one batch-128 3x3 conv at AVX2 on nChw16c: 60 s). Which
// one runs depends on the CPU the process meets, so each tier is run: ONEDNN_MAX_CPU_ISA=AVX2,
// AVX512_CORE and the default (the environment's: the machine's own unless capped; a tier above the
// CPU's runs as the CPU's own).
//
// The oracle is oneDNN's own account: each tier runs this program again (`--tier`) under
// ONEDNN_VERBOSE=1, which prints one `exec` line per primitive run with its implementation's
// name; every line of a pass must name a non-ref implementation. The passes, per model of the
// zoo at the sizes its users run: a training step (forward + backward + every gradient), an
// attack step (eval mode, the input's gradient only) and the folded inference path
// (rcv_graph_infer), at batch 1 and a larger batch.
//
// Allowed exceptions: none today. One would be listed in `allowed` below with its reason and
// its measured cost.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "robustcv/error.h"
#include "robustcv/graph.h"
#include "robustcv/models.h"
#include "testutil.h"

typedef struct {
    const char *name;
    int c, hw, classes, batch;
} model_case;

// smallcnn / smallcnn6: Fashion-MNIST (the demo); the others at Tiny ImageNet's 64x64.
static const model_case cases[] = {
    {"smallcnn", 1, 28, 10, 32},    {"smallcnn6", 1, 28, 10, 32},  {"resnet18", 3, 64, 200, 8},
    {"densenet121", 3, 64, 200, 4}, {"vgg11_bn", 3, 64, 200, 4}, {"attention56", 3, 64, 200, 4},
};

// (primitive kind, reason): a ref implementation of that kind accepted in every pass.
static const char *const allowed[][2] = {{NULL, NULL}};

static void mark(const char *model, const char *pass) {
    printf("noref-pass %s %s\n", model, pass);
    fflush(stdout);
}

static void fill(rcv_model *m) {
    rcv_graph *g = m->g;
    fill_uniform(g->nodes[m->input].out, rcv_numel(g->nodes[m->input].shape), 3, 0.0f, 1.0f);
    for (int i = 0; i < g->batch; i++) g->nodes[m->labels].idata[i] = i % m->cfg.n_classes;
}

static int plan(rcv_model *m, int batch) {
    if (rcv_graph_plan(m->g, batch, RCV_BACKEND_CPU)) {
        fprintf(stderr, "plan %s batch %d: %s\n", m->name, batch, rcv_error());
        return -1;
    }
    fill(m);
    return 0;
}

// The passes of one model, each after a marker line; 0 or -1.
static int child_model(const model_case *mc) {
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = mc->c, cfg.in_h = cfg.in_w = mc->hw, cfg.n_classes = mc->classes, cfg.seed = 1;
    rcv_model m;
    if (rcv_model_build(&m, mc->name, &cfg)) {
        fprintf(stderr, "build %s: %s\n", mc->name, rcv_error());
        return -1;
    }
    rcv_graph *g = m.g;
    int rc = -1;
    // Training step.
    if (plan(&m, mc->batch)) goto out;
    rcv_graph_set_training(g, 1);
    mark(mc->name, "train");
    rcv_graph_zero_grad(g);
    rcv_graph_forward(g);
    rcv_graph_backward(g, m.loss, 1.0f);
    // Attack step: eval mode, the input's gradient alone (as src/robust's attacks plan it).
    rcv_graph_require_grad(g, m.input);
    rcv_graph_set_input_grad_only(g, 1);
    if (plan(&m, mc->batch)) goto out;
    rcv_graph_set_training(g, 0);
    mark(mc->name, "attack");
    rcv_graph_forward(g);
    rcv_graph_backward(g, m.loss, 1.0f);
    rcv_graph_set_input_grad_only(g, 0);
    // Folded inference at batch 1 and the larger batch, on a plan without input gradients.
    rcv_model_free(&m);
    if (rcv_model_build(&m, mc->name, &cfg)) goto out;
    g = m.g;
    const int sizes[2] = {1, mc->batch};
    for (int i = 0; i < 2; i++) {
        if (plan(&m, sizes[i])) goto out;
        rcv_graph_set_training(g, 0);
        char pass[32];
        snprintf(pass, sizeof pass, "infer-b%d", sizes[i]);
        mark(mc->name, pass);
        rcv_graph_infer(g);
    }
    rc = 0;
out:
    rcv_model_free(&m);
    return rc;
}

// The implementation field of an `exec` line: onednn_verbose,exec,cpu,<kind>,<impl>,...
static int field(const char *line, int k, char *out, size_t cap) {
    const char *p = line;
    for (int i = 0; i < k; i++) {
        p = strchr(p, ',');
        if (!p) return -1;
        p++;
    }
    size_t n = strcspn(p, ",\n");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
    return 0;
}

static int is_allowed(const char *kind) {
    for (size_t i = 0; allowed[i][0]; i++)
        if (!strcmp(allowed[i][0], kind)) return 1;
    return 0;
}

// Runs the passes at one tier (NULL = the machine's default) in a child under ONEDNN_VERBOSE=1
// and checks its exec lines.
static void run_tier(const char *self, const char *tier) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ONEDNN_VERBOSE=1 %s%s %s --tier 2>&1", tier ? "ONEDNN_MAX_CPU_ISA=" : "",
             tier ? tier : "", self);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "popen %s", cmd);
    if (!p) return;
    char line[8192], model[64] = "?", pass[32] = "?", isa[64] = "?";
    int execs = 0, refs = 0, passes = 0;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "noref-pass %63s %31s", model, pass) == 2) {
            passes++;
            continue;
        }
        if (strstr(line, "cpu_runtime:") == NULL && strstr(line, ",info,cpu,isa:")) {
            const char *s = strstr(line, "isa:") + 4;
            size_t n = strcspn(s, "\n");
            if (n >= sizeof isa) n = sizeof isa - 1;
            memcpy(isa, s, n), isa[n] = 0;
        }
        if (!strstr(line, "_verbose,exec,")) continue;
        execs++;
        char kind[64], impl[128];
        if (field(line, 3, kind, sizeof kind) || field(line, 4, impl, sizeof impl)) continue;
        if (strncmp(impl, "ref", 3) != 0 || is_allowed(kind)) continue;
        if (refs++ < 10) printf("  %s: %s %s runs %s: %.300s", tier ? tier : "default", model, pass, impl, line);
    }
    int st = pclose(p);
    CHECK(st == 0, "tier %s: the passes exited with status %d", tier ? tier : "default", st);
    int want = (int)(sizeof cases / sizeof cases[0]) * 4;
    CHECK(passes == want, "tier %s: %d of %d passes ran", tier ? tier : "default", passes, want);
    CHECK(execs > 0, "tier %s: no exec line from oneDNN (ONEDNN_VERBOSE not honoured?)", tier ? tier : "default");
    CHECK(refs == 0, "tier %s (oneDNN isa %s): %d reference primitives ran in hot passes", tier ? tier : "default", isa,
          refs);
    printf("tier %-12s oneDNN isa %s: %d passes, %d primitive runs, %d ref\n", tier ? tier : "default", isa, passes,
           execs, refs);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--tier")) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (child_model(&cases[i])) return 1;
        return 0;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "test_noref: cannot find its own program (/proc/self/exe)\n");
        return 1;
    }
    self[n] = 0;
    // RCV_NOREF_TIERS: a subset, e.g. "AVX2" (the CI's AVX2 leg).
    const char *only = getenv("RCV_NOREF_TIERS");
    const char *tiers[] = {"AVX2", "AVX512_CORE", NULL};
    for (int i = 0; i < 3; i++) {
        const char *t = tiers[i] ? tiers[i] : "default";
        if (only && !strstr(only, t)) continue;
        run_tier(self, tiers[i]);
    }
    return test_done();
}
