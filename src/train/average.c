// EMA and SWA of the weights (average.h): the arithmetic of timm's ModelEmaV3 and of
// torch.optim.swa_utils, and update_bn's cumulative batchnorm statistics.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/average.h"
#include "robustcv/error.h"

void rcv_ema_defaults(rcv_ema_cfg *c) { *c = (rcv_ema_cfg){0, 0, 1.0f, 2.0f / 3.0f}; }
void rcv_swa_defaults(rcv_swa_cfg *c) { *c = (rcv_swa_cfg){-1, 0, 10}; }

int rcv_ema_check(const rcv_ema_cfg *c) {
    if (!(c->decay >= 0 && c->decay < 1)) return rcv_fail("--ema %g: expected a decay in [0, 1) (0 = off; timm uses 0.9998)", c->decay);
    if (!(c->warmup_gamma > 0 && isfinite(c->warmup_gamma)))
        return rcv_fail("--ema-warmup-gamma %g: expected a finite value > 0", c->warmup_gamma);
    if (!(c->warmup_power > 0 && isfinite(c->warmup_power)))
        return rcv_fail("--ema-warmup-power %g: expected a finite value > 0", c->warmup_power);
    return 0;
}

int rcv_swa_check(const rcv_swa_cfg *c, int epochs) {
    if (c->start < 0) return 0;
    if (c->start >= epochs)
        return rcv_fail("--swa-start %d: expected fewer than --epochs %d (the epochs before averaging begins)", c->start,
                        epochs);
    if (!(c->lr > 0 && isfinite(c->lr))) return rcv_fail("--swa-lr %g: expected a learning rate > 0 with --swa-start", c->lr);
    if (c->anneal_epochs < 0) return rcv_fail("--swa-anneal-epochs %d: expected >= 0", c->anneal_epochs);
    return 0;
}

double rcv_ema_decay(const rcv_ema_cfg *c, int64_t step) {
    int64_t s = step - 1; // ModelEmaV3: step = max(0, step - update_after_step - 1)
    if (s <= 0) return 0.0;
    if (!c->warmup) return c->decay;
    double d = 1 - pow(1 + (double)s / c->warmup_gamma, -(double)c->warmup_power);
    if (d > c->decay) d = c->decay;
    return d < 0 ? 0 : d;
}

void rcv_ema_update(float *ema, const float *w, size_t n, double decay) {
    float wt = (float)(1 - decay);
    // torch's lerp: self + wt (end - self) below 0.5, end - (end - self)(1 - wt) above
    if (wt < 0.5f)
        for (size_t i = 0; i < n; i++) ema[i] = ema[i] + wt * (w[i] - ema[i]);
    else
        for (size_t i = 0; i < n; i++) ema[i] = w[i] - (w[i] - ema[i]) * (1 - wt);
}

double rcv_swa_lr(const rcv_swa_cfg *c, double lr0, int epoch) {
    int a = c->anneal_epochs > 0 ? c->anneal_epochs : 1;
    double t = (double)(epoch - c->start) / a;
    if (c->anneal_epochs == 0 || t > 1) t = 1; // torch: anneal_epochs 0 jumps straight to swa_lr
    if (t < 0) t = 0;
    double alpha = (1 - cos(M_PI * t)) / 2;
    return c->lr * alpha + lr0 * (1 - alpha);
}

void rcv_swa_update(float *avg, const float *w, size_t n, int64_t n_averaged) {
    if (n_averaged == 0) {
        memcpy(avg, w, n * sizeof(float));
        return;
    }
    float d = (float)(n_averaged + 1);
    for (size_t i = 0; i < n; i++) avg[i] = avg[i] + (w[i] - avg[i]) / d;
}

void rcv_params_swap(rcv_graph *g, float *other) {
    rcv_graph_params_changed(g);
    float *p = g->params;
    for (size_t i = 0; i < g->n_param_floats; i++) {
        float t = p[i];
        p[i] = other[i];
        other[i] = t;
    }
}

int rcv_update_bn(rcv_model *m, const rcv_dataset *d, int n) {
    rcv_graph *g = m->g;
    int b = g->batch;
    if (n <= 0 || n > d->n) n = d->n;
    if (b <= 0) return rcv_fail("update_bn: the model is not planned");
    if (n < b) return rcv_fail("update_bn: %d images, fewer than one batch of %d", n, b);
    if (d->c != m->cfg.in_c || d->h != m->cfg.in_h || d->w != m->cfg.in_w)
        return rcv_fail("update_bn: data '%s' has images %dx%dx%d, model %s expects %dx%dx%d", d->source, d->c, d->h,
                        d->w, m->name, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    // reset_running_stats: mean 0, var 1, num_batches_tracked 0
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *nd = &g->nodes[i];
        if (nd->op != RCV_OP_BATCHNORM2D) continue;
        int c = nd->shape.c;
        float *rm = rcv_param_data(g, nd->buf[0]), *rv = rcv_param_data(g, nd->buf[1]);
        for (int k = 0; k < c; k++) rm[k] = 0, rv[k] = 1;
        if (nd->buf[2] >= 0) *rcv_param_i64(g, nd->buf[2]) = 0;
    }
    rcv_graph_params_to_device(g);
    size_t per = (size_t)d->c * d->h * d->w;
    float *x = rcv_xmalloc((size_t)b * per * sizeof(float)), *mom = rcv_xmalloc((size_t)g->n_nodes * sizeof(float));
    int *idx = rcv_xmalloc((size_t)b * sizeof(int));
    for (int i = 0; i < g->n_nodes; i++) mom[i] = g->nodes[i].attr.bn.momentum;
    rcv_rng saved = g->rng; // dropout draws here must not shift the training stream
    rcv_graph_set_training(g, 1);
    for (int s = 0, t = 0; s + b <= n; s += b, t++) {
        for (int i = 0; i < b; i++) idx[i] = s + i;
        rcv_dataset_batch(d, idx, b, x, NULL);
        rcv_graph_upload(g, g->nodes[m->input].out, x, (size_t)b * per * sizeof(float));
        // momentum None: running = running + (batch - running) / num_batches_tracked
        for (int i = 0; i < g->n_nodes; i++)
            if (g->nodes[i].op == RCV_OP_BATCHNORM2D) g->nodes[i].attr.bn.momentum = 1.0f / (float)(t + 1);
        rcv_graph_forward(g);
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == RCV_OP_BATCHNORM2D) g->nodes[i].attr.bn.momentum = mom[i];
    rcv_graph_set_training(g, 0);
    g->rng = saved;
    rcv_graph_params_to_host(g);
    free(x);
    free(mom);
    free(idx);
    return 0;
}
