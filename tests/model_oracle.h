// The PyTorch model oracle shared by tests/test_models.c and tests/test_zoo.c: a case is
// DIR/<case>.cfg (model name and config), DIR/<case>.state.safetensors (a PyTorch state_dict
// with random weights and running statistics) and DIR/<case>.ref.safetensors (input, labels,
// and per mode (eval, train) logits and loss -- resnet_ref.py also input and parameter
// gradients -- then the running statistics after the train step), written by
// tests/oracle/resnet_ref.py or zoo_ref.py. oracle_case loads the state into our model, runs one
// forward and backward per mode and requires every tensor within TOL relative to the
// reference's largest magnitude; with oracle_f64 (test_zoo.c) the gradients are compared with
// float64 instead, by oracle_check_f64 (see there).
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

// --- the PyTorch oracle ---

// Gradients against a float64 reference (test_zoo.c sets this; test_models.c compares with
// resnet_ref.py's float32 gradients). Deep networks are piecewise smooth: a ReLU input or a
// max-pool near-tie within float32 rounding of the kink is decided either way by any float32
// implementation (PyTorch's included), and the exact gradient jumps there -- by up to 0.5
// relative in the zoo's train-mode cases, for PyTorch float32 as for ours. Both decisions are
// valid, so the reference follows ours: oracle_case writes, besides comparing logits, loss and
// running statistics at once,
//   DIR/<case>.<be>.kinks.safetensors  per mode, in execution order, every ReLU's mask
//                                      "<mode>.<k>.relu.<node>" (U8, N H W C: output > 0) and
//                                      max-pool's argmax "<mode>.<k>.maxpool.<node>" (I32,
//                                      N Ho Wo C: h * W + w in the input plane, first max wins)
//   DIR/<case>.<be>.ours.safetensors   our logits and gradients, named and sampled like the reference
// and after `zoo_ref.py --f64 DIR <case>.<be> ...` has computed the float64 gradients on those
// kinks (and, as the yardstick, PyTorch float32's gradients and float64's on PyTorch's own
// kinks), oracle_check_f64 compares them.
static int oracle_f64 = 0;

// A decision may differ from float64's only this close to the kink, relative to the largest
// magnitude of that ReLU's (max-pool's) input: float32 rounding of a pre-activation is ~1e-6 of
// it after a deep forward pass (measured margins of the differing decisions, ours and PyTorch
// float32's: at most 1.4e-5; docs/models.md).
#define KINK_TOL 1e-4
// Where float32 rounding itself exceeds TOL (train-mode batchnorm at batch 2 amplifies it), ours
// may be this many times PyTorch float32's own error (against float64 on its own kinks). Our
// oneDNN convolutions round more than PyTorch's NCHW ones (one 3x3 conv: 8e-7 direct, 1.8e-6
// Winograd F(4,3), PyTorch 2e-7, its channels-last path 8e-7); measured over the zoo in train
// mode, our worst tensor is 0.7x .. 3.8x PyTorch's, 1.2x .. 1.7x where it exceeds TOL (the
// DenseNets; docs/models.md).
#define K_TORCH 4.0

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
        else if (!strcmp(key, "dropout")) c->dropout = strtof(v, NULL);
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

// A reference parameter gradient of n > 2^14 floats is the strided sample flatten()[::s]
// (zoo_ref.py); k = the sampled length, ours sampled alike into sub (k floats).
static size_t sample_stride(size_t n) { return n > (1u << 14) ? ((n / 4096) | 1) : 1; }
static size_t sample(const float *x, size_t n, float *sub) {
    size_t s = sample_stride(n), k = (n + s - 1) / s;
    for (size_t i = 0; i < k; i++) sub[i] = x[i * s];
    return k;
}

// Parameter gradient `name` against ours (n floats): the full tensor, or the strided sample.
static double grad_err(const rcv_safetensors *ref, const char *name, const float *ours, size_t n) {
    const rcv_st_tensor *t = rcv_st_find(ref, name);
    if (!t || t->numel == n || sample_stride(n) == 1) return rel_err(ref, name, ours, n);
    float *sub = malloc(n * sizeof(float));
    double e = rel_err(ref, name, sub, sample(ours, n, sub));
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

// Where element (b, h, w, c) of node n's output lies in its memory: NHWC, or nChw<b>c when the
// planner made the node blocked (rcv_node.blocked).
static size_t at(const rcv_node *n, int b, int h, int w, int c) {
    rcv_shape s = n->shape;
    if (!n->blocked) return (((size_t)b * s.h + h) * s.w + w) * s.c + c;
    int k = n->blocked;
    return ((((size_t)b * (s.c / k) + c / k) * s.h + h) * s.w + w) * k + c % k;
}

// Max-pool's argmax, recomputed from its input with the kernels' rule (first max of the
// window in h, w order wins; src/backend/ref/pool.c, cpu/pool.c): idx (N, Ho, Wo, C).
static void maxpool_argmax(rcv_graph *g, rcv_node *n, int32_t *idx) {
    const rcv_pool_attr *a = &n->attr.pool;
    rcv_shape xs = rcv_in_shape(g, n, 0), ys = n->shape;
    const float *x = rcv_in(g, n, 0);
    const rcv_node *xn = &g->nodes[n->in[0]];
    for (int b = 0; b < ys.n; b++)
        for (int oh = 0; oh < ys.h; oh++)
            for (int ow = 0; ow < ys.w; ow++)
                for (int c = 0; c < ys.c; c++) {
                    int h0 = oh * a->sh - a->ph, w0 = ow * a->sw - a->pw;
                    int h1 = h0 + a->kh < xs.h ? h0 + a->kh : xs.h, w1 = w0 + a->kw < xs.w ? w0 + a->kw : xs.w;
                    h0 = h0 < 0 ? 0 : h0;
                    w0 = w0 < 0 ? 0 : w0;
                    float best = -INFINITY;
                    int arg = h0 * xs.w + w0;
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++) {
                            float v = x[at(xn, b, h, w, c)];
                            if (v > best || isnan(v)) best = v, arg = h * xs.w + w;
                        }
                    idx[(((size_t)b * ys.h + oh) * ys.w + ow) * ys.c + c] = arg;
                }
}

// After a forward pass: every ReLU's and max-pool's decision, in node (= execution) order.
static void add_kinks(rcv_st_writer *w, rcv_graph *g, const char *mode) {
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        if (n->op != RCV_OP_RELU && n->op != RCV_OP_MAXPOOL2D) continue;
        size_t len = rcv_numel(n->shape);
        int64_t shape[4] = {n->shape.n, n->shape.h, n->shape.w, n->shape.c};
        char name[RCV_NAME + 48];
        snprintf(name, sizeof name, "%s.%03d.%s.%s", mode, k++, n->op == RCV_OP_RELU ? "relu" : "maxpool", n->name);
        if (n->op == RCV_OP_RELU) { // a fused ReLU's out is its BN's, ReLU applied
            uint8_t *m = malloc(len);
            rcv_shape s = n->shape;
            size_t j = 0;
            for (int b = 0; b < s.n; b++)
                for (int h = 0; h < s.h; h++)
                    for (int w = 0; w < s.w; w++)
                        for (int c = 0; c < s.c; c++) m[j++] = n->out[at(n, b, h, w, c)] > 0;
            rcv_st_add(w, name, RCV_DT_U8, 4, shape, m);
            free(m);
        } else {
            int32_t *idx = malloc(len * sizeof(int32_t));
            maxpool_argmax(g, n, idx);
            rcv_st_add(w, name, RCV_DT_I32, 4, shape, idx);
            free(idx);
        }
    }
}

// Our tensor `name` (n floats), a parameter gradient sampled like the reference's.
static void add_ours(rcv_st_writer *w, const char *name, const float *x, size_t n, int param_grad) {
    float *sub = malloc(n * sizeof(float));
    int64_t k = param_grad ? (int64_t)sample(x, n, sub) : (int64_t)n;
    if (!param_grad) memcpy(sub, x, n * sizeof(float));
    rcv_st_add(w, name, RCV_DT_F32, 1, &k, sub);
    free(sub);
}

// A conv bias feeding train-mode batchnorm has gradient 0 in exact arithmetic (the batch mean
// removes it): both sides hold rounding noise, so ours must be negligible next to the conv's
// weight gradient instead of being compared with another noise. Returns -1 for other tensors.
static int zero_bias_ok(rcv_graph *g, int i, int training) {
    const rcv_param *p = &g->param_info[i];
    const rcv_node *pn = &g->nodes[p->node];
    if (!(training && pn->op == RCV_OP_CONV2D && i == pn->param[1] && p->node + 1 < g->n_nodes &&
          g->nodes[p->node + 1].op == RCV_OP_BATCHNORM2D && g->nodes[p->node + 1].in[0] == p->node))
        return -1;
    const rcv_param *wp = &g->param_info[pn->param[0]];
    double bmax = 0, wmax = 0;
    for (size_t j = 0; j < p->numel; j++) bmax = fmax(bmax, fabs(rcv_param_grad(g, i)[j]));
    for (size_t j = 0; j < wp->numel; j++) wmax = fmax(wmax, fabs(rcv_param_grad(g, pn->param[0])[j]));
    return bmax <= 1e-3 * wmax;
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
    rcv_st_writer *kinks = oracle_f64 ? rcv_st_writer_new() : NULL, *ours = oracle_f64 ? rcv_st_writer_new() : NULL;
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
        if (kinks) add_kinks(kinks, g, modes[t]);
        rcv_graph_backward(g, m.loss, 1.0f);
        snprintf(name, sizeof name, "%s.logits", modes[t]);
        double e_z = rel_err(&ref, name, g->nodes[m.logits].out, rcv_numel(g->nodes[m.logits].shape));
        if (ours) add_ours(ours, name, g->nodes[m.logits].out, rcv_numel(g->nodes[m.logits].shape), 0);
        snprintf(name, sizeof name, "%s.loss", modes[t]);
        double e_l = rel_err(&ref, name, g->nodes[m.loss].out, 1);
        snprintf(name, sizeof name, "%s.input_grad", modes[t]);
        double e_x = ours ? 0 : rel_err(&ref, name, in->grad, nin);
        if (ours) add_ours(ours, name, in->grad, nin, 0);
        worst wg = {0, ""};
        int zero_ok = 1;
        for (int i = 0; i < g->n_params; i++) {
            const rcv_param *p = &g->param_info[i];
            if (p->kind != RCV_PARAM) continue;
            int z = zero_bias_ok(g, i, t);
            if (z >= 0) {
                zero_ok &= z;
                continue;
            }
            snprintf(name, sizeof name, "%s.grad.%s", modes[t], p->name);
            if (ours) add_ours(ours, name, rcv_param_grad(g, i), p->numel, 1);
            else note(&wg, grad_err(&ref, name, rcv_param_grad(g, i), p->numel), p->name);
        }
        CHECK(zero_ok, "%s/%s: conv biases before train-mode batchnorm: gradient not negligible", cas, bname);
        if (m.boxes >= 0) { // the multi-task terms: predicted box and both losses
            const int ids[3] = {m.box, m.loss_cls, m.loss_box};
            const char *what[3] = {"box", "loss_cls", "loss_box"};
            for (int j = 0; j < 3; j++) {
                snprintf(name, sizeof name, "%s.%s", modes[t], what[j]);
                double e = rel_err(&ref, name, g->nodes[ids[j]].out, rcv_numel(g->nodes[ids[j]].shape));
                printf("%-17s %s %-5s %s %.1e\n", cas, bname, modes[t], what[j], e);
                CHECK(e <= TOL, "%s/%s/%s: %s error %g", cas, bname, modes[t], what[j], e);
            }
        }
        if (ours) { // the gradients: oracle_check_f64
            printf("%-17s %s %-5s logits %.1e  loss %.1e\n", cas, bname, modes[t], e_z, e_l);
        } else {
            printf("%-17s %s %-5s logits %.1e  loss %.1e  input grad %.1e  param grads %.1e (worst %s)\n", cas, bname,
                   modes[t], e_z, e_l, e_x, wg.err, wg.name);
            CHECK(e_x <= TOL && wg.err <= TOL, "%s/%s/%s: gradients above %g", cas, bname, modes[t], TOL);
        }
        CHECK(e_z <= TOL && e_l <= TOL, "%s/%s/%s: logits or loss above %g", cas, bname, modes[t], TOL);
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
    printf("%-17s %s running stats %.1e (worst %s), num_batches_tracked %s; %.1f s\n", cas, bname, wb.err, wb.name,
           nbt_ok ? "ok" : "WRONG", now() - t0);
    CHECK(wb.err <= TOL && nbt_ok, "%s/%s: running stats after the train step", cas, bname);
    if (kinks) {
        snprintf(path, sizeof path, "%s/%s.%s.kinks.safetensors", dir, cas, bname);
        CHECK(rcv_st_write(kinks, path) == 0, "%s", rcv_error());
        snprintf(path, sizeof path, "%s/%s.%s.ours.safetensors", dir, cas, bname);
        CHECK(rcv_st_write(ours, path) == 0, "%s", rcv_error());
    }
out:
    rcv_st_close(&ref);
out_model:
    rcv_st_writer_free(kinks);
    rcv_st_writer_free(ours);
    rcv_model_free(&m);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Worst and median of n errors (sorts e); a NaN counts as the worst.
static void worst_median(double *e, int n, double *w, double *med) {
    *w = 0;
    for (int i = 0; i < n; i++)
        if (!(e[i] <= *w)) *w = e[i];
    qsort(e, (size_t)n, sizeof *e, cmp_double);
    *med = n ? (n % 2 ? e[n / 2] : 0.5 * (e[n / 2 - 1] + e[n / 2])) : 0;
}

// Relative error of tensor a against tensor b of file f (NaN if either is missing or they differ in size).
static double file_err(const rcv_safetensors *f, const char *a, const char *b) {
    const rcv_st_tensor *ta = rcv_st_find(f, a);
    if (!ta) {
        fprintf(stderr, "%s: no tensor '%s'\n", f->path, a);
        return NAN;
    }
    float *x = malloc(ta->numel * sizeof(float));
    rcv_st_convert_f32(ta->dtype, rcv_st_data(f, ta), x, ta->numel);
    double e = rel_err(f, b, x, ta->numel);
    free(x);
    return e;
}

// Second half of oracle_f64 (see there), after zoo_ref.py --f64. Per gradient tensor (input and
// every parameter; sampled ones as sampled) the error is max|a - b| / max|b|. Enforced, per mode:
// our logits within TOL of float64's on our kinks; every gradient tensor within
// max(TOL, K_TORCH x PyTorch float32's worst tensor error against float64 on its own kinks) of
// float64 on our kinks (that yardstick in train mode; eval mode: TOL, unless RCV_ZOO_FULL=1 ran
// it there too); every decision that differs from float64's within KINK_TOL of the kink.
// Shown: worst and median over the tensors, and with RCV_ZOO_FULL=1 both float32 gradients
// against plain float64 (each with its own kink lottery).
__attribute__((unused)) // test_zoo.c's only
static void oracle_check_f64(const char *dir, const char *cas, const char *bname) {
    char path[512];
    rcv_safetensors ours, f64;
    snprintf(path, sizeof path, "%s/%s.%s.ours.safetensors", dir, cas, bname);
    if (rcv_st_open(&ours, path)) {
        CHECK(0, "%s", rcv_error());
        return;
    }
    snprintf(path, sizeof path, "%s/%s.%s.f64.safetensors", dir, cas, bname);
    if (rcv_st_open(&f64, path)) {
        CHECK(0, "%s/%s: %s", cas, bname, rcv_error());
        rcv_st_close(&ours);
        return;
    }
    const char *modes[2] = {"eval", "train"};
    double *e[4];
    for (int j = 0; j < 4; j++) e[j] = malloc((size_t)ours.n * sizeof(double));
    for (int t = 0; t < 2; t++) {
        size_t ml = strlen(modes[t]);
        char key[RCV_NAME + 48];
        snprintf(key, sizeof key, "%s.free.input_grad", modes[t]);
        int free64 = rcv_st_find(&f64, key) != NULL;
        snprintf(key, sizeof key, "%s.torch_kinks", modes[t]);
        int yard = rcv_st_find(&f64, key) != NULL;
        int n = 0;
        worst w = {0, ""};
        double e_z = NAN;
        for (int i = 0; i < ours.n; i++) {
            const rcv_st_tensor *ti = &ours.t[i];
            if (strncmp(ti->name, modes[t], ml) || ti->name[ml] != '.') continue;
            float *a = malloc(ti->numel * sizeof(float));
            rcv_st_convert_f32(ti->dtype, rcv_st_data(&ours, ti), a, ti->numel);
            const char *rest = ti->name + ml; // ".input_grad", ".grad.<param>", ".logits"
            if (!strcmp(rest, ".logits")) {
                e_z = rel_err(&f64, ti->name, a, ti->numel);
                free(a);
                continue;
            }
            char fr[RCV_NAME + 48], t32[RCV_NAME + 48], t64[RCV_NAME + 48];
            snprintf(fr, sizeof fr, "%s.free%s", modes[t], rest);
            snprintf(t32, sizeof t32, "%s.torch32%s", modes[t], rest);
            snprintf(t64, sizeof t64, "%s.torch64%s", modes[t], rest);
            e[0][n] = rel_err(&f64, ti->name, a, ti->numel);
            e[1][n] = yard ? file_err(&f64, t32, t64) : 0;
            e[2][n] = free64 ? rel_err(&f64, fr, a, ti->numel) : 0;
            e[3][n] = free64 ? file_err(&f64, t32, fr) : 0;
            note(&w, e[0][n], rest + 1);
            n++;
            free(a);
        }
        double wm[4], med[4];
        for (int j = 0; j < 4; j++) worst_median(e[j], n, &wm[j], &med[j]);
        float kk[2][3] = {{NAN, NAN, NAN}, {NAN, NAN, NAN}}; // [ours, PyTorch's]: differing, decisions, worst margin
        const char *kw[2] = {"-", "-"};
        int krc = 0;
        for (int k = 0; k < 1 + yard; k++) {
            snprintf(key, sizeof key, "%s.%skinks", modes[t], k ? "torch_" : "");
            krc |= rcv_st_read_f32(&f64, key, kk[k], 3);
            snprintf(key, sizeof key, "%s.%skink_worst", modes[t], k ? "torch_" : "");
            kw[k] = rcv_st_meta(&f64, key);
            if (!kw[k]) kw[k] = "-";
        }
        double tol = fmax(TOL, K_TORCH * wm[1]);
        printf("%-17s %s %-5s grads vs float64 on our kinks: worst %.1e (%s) median %.1e, tolerance %.1e; logits "
               "%.1e; %.0f of %.0f kink decisions differ from float64's, worst %.1e (%s) from the kink\n",
               cas, bname, modes[t], wm[0], w.name, med[0], tol, e_z, kk[0][0], kk[0][1], kk[0][2], kw[0]);
        if (yard)
            printf("%-17s           PyTorch float32 vs float64 on its kinks: worst %.1e median %.1e; %.0f decisions "
                   "differ from float64's, worst %.1e (%s) from the kink\n",
                   "", wm[1], med[1], kk[1][0], kk[1][2], kw[1]);
        if (free64)
            printf("%-17s           vs plain float64: ours worst %.1e median %.1e, PyTorch float32 worst %.1e median "
                   "%.1e\n", "", wm[2], med[2], wm[3], med[3]);
        CHECK(n > 0 && e_z <= TOL && wm[0] <= tol, "%s/%s/%s: logits %.1e (tolerance %g) or gradients %.1e "
              "(tolerance %.1e) vs float64 on our kinks", cas, bname, modes[t], e_z, TOL, wm[0], tol);
        CHECK(krc == 0 && kk[0][2] <= KINK_TOL, "%s/%s/%s: a ReLU/max-pool decision differs from float64's %.1e from "
              "the kink (%s), above %g", cas, bname, modes[t], kk[0][2], kw[0], KINK_TOL);
    }
    for (int j = 0; j < 4; j++) free(e[j]);
    rcv_st_close(&f64);
    rcv_st_close(&ours);
}

#endif
