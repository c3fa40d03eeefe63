// The PyTorch model oracle shared by tests/test_models.c and tests/test_zoo.c: a case is
// DIR/<case>.cfg (model name and config), DIR/<case>.state.safetensors (a PyTorch state_dict
// with random weights and running statistics) and DIR/<case>.ref.safetensors (input, labels,
// and per mode (eval, train) logits, loss, input gradient and parameter gradients, then the
// running statistics after the train step), written by tests/oracle/resnet_ref.py or
// zoo_ref.py. oracle_case loads the state into our model, runs one forward and backward per
// mode and requires every tensor within TOL relative to the reference's largest magnitude.
//
// A reference parameter gradient may be a strided sample grad.flatten()[::s] with
// s = (numel / 4096) | 1 (zoo_ref.py stores large gradients that way); ours is sampled alike.
// Multi-task (NAME+box) cases also give "boxes" and per mode box, loss_cls and loss_box.
#ifndef RCV_MODEL_ORACLE_H
#define RCV_MODEL_ORACLE_H

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

// --- the PyTorch oracle ---

// Gradient tolerance per mode (zoo_ref.py's grad_tol_eval / grad_tol_train; < 0: not compared).
static double oracle_grad_tol[2];
// 0: gradient errors above the tolerance are printed as WARN, not failures (test_zoo.c on the
// cpu backend; see there). Logits, losses and running statistics are always enforced.
static int oracle_grad_enforce = 1;

static int read_cfg(const char *path, char *model, rcv_model_cfg *c, int *batch) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    rcv_model_cfg_defaults(c);
    oracle_grad_tol[0] = oracle_grad_tol[1] = TOL;
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
        else if (!strcmp(key, "dropout")) c->dropout = strtof(v, NULL);
        else if (!strcmp(key, "grad_tol_eval")) oracle_grad_tol[0] = strtod(v, NULL);
        else if (!strcmp(key, "grad_tol_train")) oracle_grad_tol[1] = strtod(v, NULL);
        else if (!strcmp(key, "box_lambda")) c->box_lambda = strtof(v, NULL);
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

// Parameter gradient `name` against ours (n floats): the full tensor, or the strided sample
// zoo_ref.py stores for large ones.
static double grad_err(const rcv_safetensors *ref, const char *name, const float *ours, size_t n) {
    const rcv_st_tensor *t = rcv_st_find(ref, name);
    size_t s = n > (1u << 14) ? ((n / 4096) | 1) : 1;
    if (!t || t->numel == n || s == 1) return rel_err(ref, name, ours, n);
    size_t k = (n + s - 1) / s;
    float *sub = malloc(k * sizeof(float));
    for (size_t i = 0; i < k; i++) sub[i] = ours[i * s];
    double e = rel_err(ref, name, sub, k);
    free(sub);
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
    if (m.boxes >= 0)
        CHECK(rcv_st_read_f32(&ref, "boxes", g->nodes[m.boxes].out, (size_t)batch * 4) == 0, "boxes: %s", rcv_error());

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
        double gtol = oracle_grad_tol[t];
        int zero_ok = 1;
        for (int i = 0; i < g->n_params; i++) {
            const rcv_param *p = &g->param_info[i];
            if (p->kind != RCV_PARAM) continue;
            const rcv_node *pn = &g->nodes[p->node];
            // A conv bias feeding train-mode batchnorm has gradient 0 in exact arithmetic (the
            // batch mean removes it): both sides hold rounding noise, so require ours negligible
            // next to the conv's weight gradient instead of comparing two noises.
            if (t == 1 && pn->op == RCV_OP_CONV2D && i == pn->param[1] && p->node + 1 < g->n_nodes &&
                g->nodes[p->node + 1].op == RCV_OP_BATCHNORM2D && g->nodes[p->node + 1].in[0] == p->node) {
                const rcv_param *w = &g->param_info[pn->param[0]];
                double bmax = 0, wmax = 0;
                for (size_t j = 0; j < p->numel; j++) bmax = fmax(bmax, fabs(rcv_param_grad(g, i)[j]));
                for (size_t j = 0; j < w->numel; j++) wmax = fmax(wmax, fabs(rcv_param_grad(g, pn->param[0])[j]));
                zero_ok &= bmax <= 1e-3 * wmax;
                continue;
            }
            snprintf(name, sizeof name, "%s.grad.%s", modes[t], p->name);
            note(&wg, grad_err(&ref, name, rcv_param_grad(g, i), p->numel), p->name);
        }
        CHECK(zero_ok, "%s/%s: conv biases before train-mode batchnorm: gradient not negligible", cas, bname);
        if (m.boxes >= 0) { // the multi-task terms: predicted box and both losses
            const int ids[3] = {m.box, m.loss_cls, m.loss_box};
            const char *what[3] = {"box", "loss_cls", "loss_box"};
            for (int j = 0; j < 3; j++) {
                snprintf(name, sizeof name, "%s.%s", modes[t], what[j]);
                double e = rel_err(&ref, name, g->nodes[ids[j]].out, rcv_numel(g->nodes[ids[j]].shape));
                printf("%-15s %s %-5s %s %.1e\n", cas, bname, modes[t], what[j], e);
                CHECK(e <= TOL, "%s/%s/%s: %s error %g", cas, bname, modes[t], what[j], e);
            }
        }
        char tol[64];
        if (gtol < 0) snprintf(tol, sizeof tol, "; grads not compared (ill-conditioned in float32)");
        else if (gtol != TOL) snprintf(tol, sizeof tol, "; grad tol %.1e", gtol);
        else tol[0] = 0;
        printf("%-15s %s %-5s logits %.1e  loss %.1e  input grad %.1e  param grads %.1e (worst %s)%s\n", cas, bname,
               modes[t], e_z, e_l, e_x, wg.err, wg.name, tol);
        CHECK(e_z <= TOL && e_l <= TOL, "%s/%s/%s: logits or loss above %g", cas, bname, modes[t], TOL);
        if (gtol >= 0 && oracle_grad_enforce)
            CHECK(e_x <= gtol && wg.err <= gtol, "%s/%s/%s: gradients above %g", cas, bname, modes[t], gtol);
        else if (gtol >= 0 && !(e_x <= gtol && wg.err <= gtol))
            printf("WARN %s/%s/%s: gradients above %g (not enforced on this backend)\n", cas, bname, modes[t], gtol);
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

#endif
