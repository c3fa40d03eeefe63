// Optimizers, schedules and gradient clipping against PyTorch (tests/oracle/optim_ref.py):
// the same initial parameters and per-step gradients, 5 steps of each configuration, with a
// parameter group at half the learning rate (lr_mult) and a frozen tensor.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/ops.h"
#include "robustcv/optim.h"
#include "testutil.h"

#define NP 16  // 6 + 2 + 4 + 4 floats
#define MAXL 64

typedef struct {
    char name[32];
    float p0[NP];
    float lr[6], g[6][NP], p[6][NP];
} ref_cfg;

static ref_cfg cfgs[8];
static int n_cfgs;
static char sched_name[8][32];
static float sched_lr[8][32];
static int n_sched, sched_len[8];
static float clip_max[2], clip_norm[2], clip_g[2][12];
static int n_clip;

static int read_floats(char *s, float *out, int max) {
    int n = 0;
    char *end;
    for (;;) {
        double v = strtod(s, &end);
        if (end == s || n == max) break;
        out[n++] = (float)v;
        s = end;
    }
    return n;
}

static int load_reference(void) {
    FILE *p = popen("/usr/bin/python3 tests/oracle/optim_ref.py", "r");
    if (!p) return -1;
    char line[8192];
    ref_cfg *c = NULL;
    while (fgets(line, sizeof line, p)) {
        int t, off;
        char nm[32];
        if (sscanf(line, "cfg %31s", nm) == 1) {
            c = &cfgs[n_cfgs++];
            snprintf(c->name, sizeof c->name, "%s", nm);
        } else if (!strncmp(line, "p0 ", 3) && c) {
            read_floats(line + 3, c->p0, NP);
        } else if (sscanf(line, "lr %d %n", &t, &off) == 1 && c) {
            read_floats(line + off, &c->lr[t], 1);
        } else if (sscanf(line, "g %d %n", &t, &off) == 1 && c) {
            read_floats(line + off, c->g[t], NP);
        } else if (sscanf(line, "p %d %n", &t, &off) == 1 && c) {
            read_floats(line + off, c->p[t], NP);
        } else if (sscanf(line, "sched %15s %d %n", nm, &t, &off) == 2) {
            int k = 0;
            while (k < n_sched && strcmp(sched_name[k], nm)) k++;
            if (k == n_sched) snprintf(sched_name[n_sched++], 32, "%s", nm);
            read_floats(line + off, &sched_lr[k][t], 1);
            sched_len[k] = t + 1;
        } else if (!strncmp(line, "clip ", 5)) {
            float v[14];
            read_floats(line + 5, v, 14);
            clip_max[n_clip] = v[0];
            clip_norm[n_clip] = v[1];
            memcpy(clip_g[n_clip], v + 2, 12 * sizeof(float));
            n_clip++;
        }
    }
    return pclose(p);
}

// fc (3 -> 2, bias), fc2 (2 -> 2), fc3 (2 -> 2, frozen): 16 parameter floats in PyTorch's order.
static rcv_graph *model(int *pidx) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 3, 1, 1);
    x = rcv_linear(g, "fc", x, 2, 1);
    x = rcv_linear(g, "fc2", x, 2, 0);
    x = rcv_linear(g, "fc3", x, 2, 0);
    rcv_graph_seal_params(g);
    const char *names[4] = {"fc.weight", "fc.bias", "fc2.weight", "fc3.weight"};
    for (int i = 0; i < 4; i++) pidx[i] = rcv_graph_find_param(g, names[i]);
    g->param_info[pidx[2]].lr_mult = 0.5f;
    g->param_info[pidx[3]].frozen = 1;
    return g;
}

// Concatenated vector <-> the graph's (padded) storage.
static void scatter(rcv_graph *g, const int *pidx, const float *v, float *base) {
    for (int i = 0, k = 0; i < 4; i++) {
        rcv_param *p = &g->param_info[pidx[i]];
        memcpy(base + p->offset, v + k, p->numel * sizeof(float));
        k += (int)p->numel;
    }
}
static void gather(rcv_graph *g, const int *pidx, const float *base, float *v) {
    for (int i = 0, k = 0; i < 4; i++) {
        rcv_param *p = &g->param_info[pidx[i]];
        memcpy(v + k, base + p->offset, p->numel * sizeof(float));
        k += (int)p->numel;
    }
}

static rcv_optim_cfg cfg_for(const char *name) {
    rcv_optim_cfg c;
    if (!strcmp(name, "sgd")) { c = rcv_optim_defaults(RCV_OPT_SGD); c.lr = 0.1f; }
    else if (!strcmp(name, "sgd_momentum_wd")) {
        c = rcv_optim_defaults(RCV_OPT_SGD);
        c.lr = 0.05f; c.momentum = 0.9f; c.dampening = 0.1f; c.weight_decay = 1e-2f;
    } else if (!strcmp(name, "sgd_nesterov")) {
        c = rcv_optim_defaults(RCV_OPT_SGD);
        c.lr = 0.05f; c.momentum = 0.9f; c.weight_decay = 5e-4f; c.nesterov = 1;
    } else if (!strcmp(name, "adam")) { c = rcv_optim_defaults(RCV_OPT_ADAM); c.lr = 1e-2f; }
    else if (!strcmp(name, "adam_wd")) {
        c = rcv_optim_defaults(RCV_OPT_ADAM);
        c.lr = 1e-2f; c.beta1 = 0.8f; c.beta2 = 0.99f; c.eps = 1e-6f; c.weight_decay = 1e-2f;
    } else { c = rcv_optim_defaults(RCV_OPT_ADAMW); c.lr = 1e-2f; c.weight_decay = 0.1f; }
    return c;
}

static void test_optimizers(void) {
    CHECK(n_cfgs == 6, "oracle gave %d configurations", n_cfgs);
    for (int k = 0; k < n_cfgs; k++) {
        ref_cfg *r = &cfgs[k];
        int pidx[4];
        rcv_graph *g = model(pidx);
        CHECK(g->n_param_floats >= NP, "param floats");
        scatter(g, pidx, r->p0, g->params);
        rcv_optim o;
        rcv_optim_cfg c = cfg_for(r->name);
        CHECK(rcv_optim_init(&o, &c, g->n_param_floats) == 0, "%s: %s", r->name, rcv_error());
        double worst = 0;
        for (int t = 1; t <= 5; t++) {
            scatter(g, pidx, r->g[t], g->grads);
            CHECK(rcv_optim_step(&o, g, r->lr[t]) == 0, "%s", rcv_error());
            float got[NP];
            gather(g, pidx, g->params, got);
            double e = max_rel_err(got, r->p[t], 12, 1e-6);
            if (e > worst) worst = e;
            CHECK(e < 1e-6, "%s step %d: relative error %.3g vs torch.optim", r->name, t, e);
            CHECK(!memcmp(got + 12, r->p0 + 12, 4 * sizeof(float)), "%s: frozen fc3.weight changed", r->name);
        }
        CHECK(o.step == 5, "step count");
        printf("%-16s max relative error vs PyTorch over 5 steps: %.2e\n", r->name, worst);
        rcv_optim_free(&o);
        rcv_graph_free(g);
    }

    // Defaults and validation.
    rcv_optim_cfg d = rcv_optim_defaults(RCV_OPT_ADAMW);
    CHECK(d.beta1 == 0.9f && d.beta2 == 0.999f && d.eps == 1e-8f && d.weight_decay == 0.01f, "adamw defaults");
    d = rcv_optim_defaults(RCV_OPT_SGD);
    CHECK(d.momentum == 0 && d.weight_decay == 0 && !d.nesterov, "sgd defaults");
    rcv_optim o;
    d.nesterov = 1;
    CHECK(rcv_optim_init(&o, &d, 10) == -1 && strstr(rcv_error(), "nesterov"), "nesterov without momentum: %s",
          rcv_error());
    d = rcv_optim_defaults(RCV_OPT_ADAM);
    d.beta2 = 1.0f;
    CHECK(rcv_optim_init(&o, &d, 10) == -1 && strstr(rcv_error(), "beta2 1"), "beta2: %s", rcv_error());
    d = rcv_optim_defaults(RCV_OPT_ADAM);
    int pidx[4];
    rcv_graph *g = model(pidx);
    CHECK(rcv_optim_init(&o, &d, 7) == 0, "init");
    CHECK(rcv_optim_step(&o, g, 0.1f) == -1 && strstr(rcv_error(), "7 floats"), "size mismatch: %s", rcv_error());
    rcv_optim_free(&o);
    rcv_graph_free(g);
    rcv_optim_kind kind;
    CHECK(rcv_optim_parse_kind("adamw", &kind) == 0 && kind == RCV_OPT_ADAMW, "parse kind");
    CHECK(rcv_optim_parse_kind("rmsprop", &kind) == -1 && strstr(rcv_error(), "rmsprop") && strstr(rcv_error(), "sgd, adam, adamw"),
          "unknown kind: %s", rcv_error());
}

static void check_sched(const char *spec, const char *ref, int t_max) {
    rcv_sched s;
    CHECK(rcv_sched_parse(&s, spec) == 0, "%s: %s", spec, rcv_error());
    rcv_sched_set_total(&s, t_max);
    int k = 0;
    while (k < n_sched && strcmp(sched_name[k], ref)) k++;
    CHECK(k < n_sched && sched_len[k] > 8, "oracle schedule %s", ref);
    if (k == n_sched) return;
    float got[32];
    for (int e = 0; e < sched_len[k]; e++) got[e] = rcv_sched_lr(&s, 0.1f, e);
    double err = max_rel_err(got, sched_lr[k], (size_t)sched_len[k], 1e-6);
    CHECK(err < 1e-6, "%s vs %s: relative error %.3g (epoch 3: %g vs %g)", spec, ref, err, got[3], sched_lr[k][3]);
}

static void test_schedules(void) {
    check_sched("step:step_size=3,gamma=0.5", "step", 0);
    check_sched("multistep:milestones=2+5+7,gamma=0.1", "multistep", 0);
    check_sched("cosine:eta_min=1e-3", "cosine", 10);
    check_sched("cosine:warmup=2,start=0.1,eta_min=1e-3,t_max=12", "warmcos", 99);

    rcv_sched s;
    CHECK(rcv_sched_parse(&s, "constant") == 0 && rcv_sched_lr(&s, 0.3f, 17.5) == 0.3f, "constant");
    CHECK(rcv_sched_parse(&s, "") == 0 && s.kind == RCV_SCHED_CONSTANT, "empty spec is constant");
    // Cyclic (the seed paper's snapshots): high for step_size epochs, low for step_size + 1.
    CHECK(rcv_sched_parse(&s, "cyclic:high=1e-4,low=1e-5,step_size=5") == 0, "%s", rcv_error());
    int bad = 0, ends = 0;
    for (int e = 0; e < 44; e++) {
        float want = (e % 11) < 5 ? 1e-4f : 1e-5f;
        bad += rcv_sched_lr(&s, 0.1f, e + 0.5) != want;
        ends += rcv_sched_cycle_end(&s, e);
        if (rcv_sched_cycle_end(&s, e)) bad += (e % 11) != 10;
    }
    CHECK(bad == 0 && ends == 4, "cyclic schedule (%d wrong, %d cycle ends)", bad, ends);
    CHECK(rcv_sched_parse(&s, "cyclic:step_size=2") == 0 && rcv_sched_lr(&s, 0.5f, 0) == 0.5f &&
              fabsf(rcv_sched_lr(&s, 0.5f, 2) - 0.05f) < 1e-9f,
          "cyclic defaults from base lr");
    // Warmup is continuous for per-iteration callers.
    CHECK(rcv_sched_parse(&s, "cosine:warmup=2") == 0, "%s", rcv_error());
    rcv_sched_set_total(&s, 10);
    CHECK(fabsf(rcv_sched_lr(&s, 1.0f, 0.5) - 0.25f) < 1e-7f && fabsf(rcv_sched_lr(&s, 1.0f, 2.0) - 1.0f) < 1e-7f &&
              fabsf(rcv_sched_lr(&s, 1.0f, 6.0) - 0.5f) < 1e-6f && rcv_sched_lr(&s, 1.0f, 10.0) < 1e-6f,
          "warmup + cosine");

    // Errors name the culprit and the valid choices.
    CHECK(rcv_sched_parse(&s, "exponential:gamma=0.9") == -1 && strstr(rcv_error(), "'exponential'") &&
              strstr(rcv_error(), "constant, step, multistep, cosine, cyclic"),
          "unknown name: %s", rcv_error());
    CHECK(rcv_sched_parse(&s, "step:step_size=5,gama=0.1") == -1 && strstr(rcv_error(), "'gama'") &&
              strstr(rcv_error(), "step_size, gamma"),
          "unknown key: %s", rcv_error());
    CHECK(rcv_sched_parse(&s, "step:gamma=0.1") == -1 && strstr(rcv_error(), "step_size"), "missing step_size: %s",
          rcv_error());
    CHECK(rcv_sched_parse(&s, "step:step_size=x") == -1 && strstr(rcv_error(), "step_size=x"), "bad value: %s",
          rcv_error());
    CHECK(rcv_sched_parse(&s, "multistep:milestones=30+20") == -1 && strstr(rcv_error(), "increase"), "order: %s",
          rcv_error());
    CHECK(rcv_sched_parse(&s, "cosine:warmup") == -1 && strstr(rcv_error(), "key=value"), "no value: %s",
          rcv_error());
    CHECK(rcv_sched_parse(&s, "constant:x=1") == -1 && strstr(rcv_error(), "'x'"), "constant with key: %s",
          rcv_error());
    // Ranges (found by fuzzing, tests/fuzz/regress/sched): a rate of 1e45 became an infinite lr.
    CHECK(rcv_sched_parse(&s, "cyclic:high=1e-4,low=1e45,step_size=5") == -1 && strstr(rcv_error(), "low=1e45") &&
              strstr(rcv_error(), "0..10"),
          "huge rate: %s", rcv_error());
    CHECK(rcv_sched_parse(&s, "step:step_size=2,gamma=inf") == -1 && strstr(rcv_error(), "0..1"), "inf gamma: %s",
          rcv_error());
    CHECK(rcv_sched_parse(&s, "cosine:t_max=nan") == -1 && strstr(rcv_error(), "t_max=nan"), "nan t_max: %s",
          rcv_error());
}

static void test_clip(void) {
    CHECK(n_clip == 2, "oracle clip lines %d", n_clip);
    for (int k = 0; k < n_clip; k++) {
        int pidx[4];
        rcv_graph *g = model(pidx);
        float gr[NP];
        memcpy(gr, cfgs[0].g[1], sizeof gr); // grads(1), the same as the oracle's clip input
        scatter(g, pidx, gr, g->grads);
        float norm = rcv_clip_grad_norm(g, clip_max[k]);
        CHECK(fabsf(norm - clip_norm[k]) <= 1e-6f * clip_norm[k], "norm %.9g vs torch %.9g", norm, clip_norm[k]);
        float got[NP];
        gather(g, pidx, g->grads, got);
        double e = max_rel_err(got, clip_g[k], 12, 1e-6);
        CHECK(e < 1e-6, "max_norm %g: clipped grads relative error %.3g", clip_max[k], e);
        CHECK(!memcmp(got + 12, gr + 12, 4 * sizeof(float)), "frozen grads touched");
        CHECK(fabsf(rcv_grad_norm(g) - fminf(clip_max[k], clip_norm[k])) < 1e-5f * clip_norm[k], "norm after clip");
        // Non-finite norms come back as they are; the gradients are left for the caller.
        g->grads[g->param_info[pidx[1]].offset] = NAN;
        float before = g->grads[0];
        CHECK(isnan(rcv_clip_grad_norm(g, 0.1f)) && g->grads[0] == before, "NaN norm");
        g->grads[g->param_info[pidx[1]].offset] = INFINITY;
        CHECK(isinf(rcv_clip_grad_norm(g, 0.1f)) && g->grads[0] == before, "inf norm");
        rcv_graph_free(g);
    }
}

int main(void) {
    int rc = load_reference();
    CHECK(rc == 0, "tests/oracle/optim_ref.py failed (%d)", rc);
    test_optimizers();
    test_schedules();
    test_clip();
    return test_done();
}
