// What every attack shares: preparing a model for input gradients, chunked
// prediction, the per-sample cross-entropy input gradient (averaged over source
// models for transfer attacks) and the attack statistics.
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "robust/robust.h"
#include "robustcv/error.h"

int rcv_attack_prepare(rcv_model *m, int batch, rcv_backend backend) {
    rcv_graph *g = m->g;
    if (g->batch == batch && g->backend == backend && g->nodes[m->input].grad) return 0;
    rcv_graph_require_grad(g, m->input);
    if (rcv_graph_plan(g, batch, backend)) return -1;
    if (!g->nodes[m->input].grad) return rcv_fail("attack: model '%s' gives no gradient for its input", m->name);
    return 0;
}

size_t rcv_attack_per_image(const rcv_model *m) { return (size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w; }

// Copies images [s, s + nb) into the planned input (host or device), zero-padding to the batch.
void rcv_attack_load_chunk(rcv_model *m, const float *x, int nb) {
    rcv_graph *g = m->g;
    size_t per = rcv_attack_per_image(m);
    float *in = g->nodes[m->input].out;
    rcv_graph_upload(g, in, x, (size_t)nb * per * sizeof(float));
    if (nb < g->batch)
        rcv_backend_zero(g->backend, g->backend_ctx, in + (size_t)nb * per, (size_t)(g->batch - nb) * per * sizeof(float));
}

const float *rcv_attack_view(rcv_graph *g, const float *planned, float *host, size_t n) {
    if (!rcv_graph_on_device(g)) return planned;
    rcv_graph_download(g, host, planned, n * sizeof(float));
    return host;
}

int rcv_attack_linf_resident(rcv_model *m, const float *x, const int32_t *y, const double *p, int n, const float *adv0,
                             float alpha, float eps, int steps, int targeted, float *x_adv) {
    rcv_graph *g = m->g;
    rcv_backend be = g->backend;
    void *ctx = g->backend_ctx;
    int b = g->batch, k = m->cfg.n_classes;
    size_t per = rcv_attack_per_image(m), cb = (size_t)b * per;
    float *x0 = rcv_backend_alloc(be, ctx, cb * sizeof(float));
    // the loss's targets: labels (b int32) or TRADES' clean distributions (b x k doubles)
    size_t tbytes = y ? (size_t)b * sizeof(int32_t) : (size_t)b * k * sizeof(double);
    void *td = rcv_backend_alloc(be, ctx, tbytes);
    if (!x0 || !td) {
        if (x0) rcv_backend_free(be, ctx, x0);
        if (td) rcv_backend_free(be, ctx, td);
        return rcv_fail_ctx("attack: %d images of model '%s': ", b, m->name);
    }
    int was = g->training, was_igo = g->input_grad_only;
    rcv_graph_set_training(g, 0);
    rcv_graph_set_input_grad_only(g, 1); // d/dx only: no weight gradients (half the backward)
    rcv_node *in = &g->nodes[m->input], *zn = &g->nodes[m->logits];
    float sgn = targeted ? -1.0f : 1.0f;
    for (int st = 0; st < n; st += b) {
        int nb = n - st < b ? n - st : b;
        size_t cn = (size_t)nb * per;
        // In: the clean chunk, its labels and start (padded rows 0); the iterate lives in the input node.
        rcv_backend_zero(be, ctx, x0, cb * sizeof(float));
        rcv_graph_upload(g, x0, x + (size_t)st * per, cn * sizeof(float));
        rcv_backend_zero(be, ctx, td, tbytes);
        if (y) rcv_graph_upload(g, td, y + st, (size_t)nb * sizeof(int32_t));
        else rcv_graph_upload(g, td, p + (size_t)st * k, (size_t)nb * k * sizeof(double));
        if (adv0) {
            rcv_backend_zero(be, ctx, in->out, cb * sizeof(float));
            rcv_graph_upload(g, in->out, adv0 + (size_t)st * per, cn * sizeof(float));
        } else {
            rcv_backend_copy(be, ctx, in->out, x0, cb * sizeof(float));
        }
        for (int t = 0; t < steps; t++) { // no host round trip in here
            rcv_graph_forward(g);
            if (y) rcv_backend_ce_seed(be, ctx, zn->out, td, zn->grad, nb, b, k, sgn);
            else rcv_backend_kl_seed(be, ctx, zn->out, td, zn->grad, nb, b, k);
            rcv_graph_backward_from(g, m->logits, zn->grad);
            rcv_backend_linf_step(be, ctx, in->out, x0, in->grad, cb, alpha, eps, p != NULL);
        }
        rcv_graph_download(g, x_adv + (size_t)st * per, in->out, cn * sizeof(float)); // out: the chunk's result
    }
    rcv_graph_set_training(g, was);
    rcv_graph_set_input_grad_only(g, was_igo);
    rcv_backend_free(be, ctx, x0);
    rcv_backend_free(be, ctx, td);
    return 0;
}

int rcv_argmax(const float *z, int k) {
    int am = 0;
    for (int j = 1; j < k; j++)
        if (z[j] > z[am]) am = j;
    return am;
}

void rcv_attack_predict(rcv_model *m, const float *x, int n, int32_t *pred) {
    rcv_graph *g = m->g;
    int was = g->training, b = g->batch, k = m->cfg.n_classes;
    size_t per = rcv_attack_per_image(m);
    rcv_graph_set_training(g, 0);
    float *zh = rcv_graph_on_device(g) ? rcv_xmalloc((size_t)b * k * sizeof(float)) : NULL;
    for (int s = 0; s < n; s += b) {
        int nb = n - s < b ? n - s : b;
        rcv_attack_load_chunk(m, x + (size_t)s * per, nb);
        rcv_graph_infer(g); // no backward follows
        const float *z = rcv_attack_view(g, g->nodes[m->logits].out, zh, (size_t)nb * k);
        for (int i = 0; i < nb; i++) pred[s + i] = rcv_argmax(z + (size_t)i * k, k);
    }
    free(zh);
    rcv_graph_set_training(g, was);
}

double rcv_ce_seed(const float *z, int k, int y, float s, float *seed) {
    float mx = z[0];
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    double sum = 0;
    for (int j = 0; j < k; j++) sum += exp((double)z[j] - mx);
    if (seed)
        for (int j = 0; j < k; j++) seed[j] = s * (float)(exp((double)z[j] - mx) / sum - (j == y));
    return log(sum) + mx - z[y];
}

void rcv_attack_input_grad(rcv_model *const *models, int n_models, const float *x, const int32_t *y, int n,
                           int targeted, float *grad, float *loss) {
    size_t per = rcv_attack_per_image(models[0]);
    float s = targeted ? -1.0f : 1.0f, inv = 1.0f / (float)n_models;
    memset(grad, 0, (size_t)n * per * sizeof(float));
    if (loss) memset(loss, 0, (size_t)n * sizeof(float));
    for (int mi = 0; mi < n_models; mi++) {
        rcv_model *m = models[mi];
        rcv_graph *g = m->g;
        int was = g->training, was_igo = g->input_grad_only, b = g->batch, k = m->cfg.n_classes;
        rcv_graph_set_training(g, 0);
        rcv_graph_set_input_grad_only(g, 1); // d/dx only: no weight gradients (half the backward)
        rcv_node *zn = &g->nodes[m->logits];
        // A device plan: logits down, seed up, input gradient down, per chunk (the host-side
        // path of transfer attacks; one model's FGSM / PGD run rcv_attack_linf_resident instead).
        int dev = rcv_graph_on_device(g);
        float *zh = dev ? rcv_xmalloc((size_t)b * k * sizeof(float)) : NULL;
        float *sh = dev ? rcv_xmalloc((size_t)b * k * sizeof(float)) : zn->grad;
        float *gh = dev ? rcv_xmalloc((size_t)b * per * sizeof(float)) : NULL;
        for (int st = 0; st < n; st += b) {
            int nb = n - st < b ? n - st : b;
            rcv_attack_load_chunk(m, x + (size_t)st * per, nb);
            rcv_graph_forward(g);
            const float *z = rcv_attack_view(g, zn->out, zh, (size_t)nb * k);
            memset(sh, 0, (size_t)b * k * sizeof(float)); // padded rows push nothing
            for (int i = 0; i < nb; i++) {
                double l = rcv_ce_seed(z + (size_t)i * k, k, y[st + i], s, sh + (size_t)i * k);
                if (loss) loss[st + i] += (float)l * inv;
            }
            rcv_graph_backward_from(g, m->logits, sh);
            const float *gi = rcv_attack_view(g, g->nodes[m->input].grad, gh, (size_t)nb * per);
            float *go = grad + (size_t)st * per;
            if (n_models == 1) memcpy(go, gi, (size_t)nb * per * sizeof(float));
            else
                for (size_t e = 0; e < (size_t)nb * per; e++) go[e] += gi[e] * inv;
        }
        free(zh);
        if (dev) free(sh);
        free(gh);
        rcv_graph_set_training(g, was);
        rcv_graph_set_input_grad_only(g, was_igo);
    }
}

int rcv_attack_check_models(rcv_model *const *models, int n_models) {
    if (n_models < 1) return rcv_fail("attack: no model given");
    for (int i = 0; i < n_models; i++) {
        const rcv_model *a = models[0], *b = models[i];
        if (!b->g->nodes[b->input].grad)
            return rcv_fail("attack: model '%s' is not prepared (rcv_attack_prepare)", b->name);
        if (a->cfg.in_c != b->cfg.in_c || a->cfg.in_h != b->cfg.in_h || a->cfg.in_w != b->cfg.in_w ||
            a->cfg.n_classes != b->cfg.n_classes)
            return rcv_fail("attack: models '%s' (%dx%dx%d, %d classes) and '%s' (%dx%dx%d, %d classes) differ", a->name,
                            a->cfg.in_c, a->cfg.in_h, a->cfg.in_w, a->cfg.n_classes, b->name, b->cfg.in_c, b->cfg.in_h,
                            b->cfg.in_w, b->cfg.n_classes);
    }
    return 0;
}

void rcv_attack_stats_add(rcv_attack_stats *s, rcv_model *m, const float *x, const float *x_adv, const int32_t *y,
                          const int32_t *target, int n) {
    int32_t *p0 = rcv_xmalloc((size_t)n * sizeof(int32_t)), *p1 = rcv_xmalloc((size_t)n * sizeof(int32_t));
    rcv_attack_predict(m, x, n, p0);
    rcv_attack_predict(m, x_adv, n, p1);
    size_t per = rcv_attack_per_image(m);
    for (int i = 0; i < n; i++) {
        s->n++;
        s->clean_correct += p0[i] == y[i];
        s->adv_correct += p1[i] == y[i];
        s->changed += p0[i] != p1[i];
        if (target) {
            if (p0[i] == y[i] && y[i] != target[i]) {
                s->success_denom++;
                s->success += p1[i] == target[i];
            }
        } else if (p0[i] == y[i]) {
            s->success_denom++;
            s->success += p1[i] != y[i];
        }
        double l2 = 0;
        for (size_t e = 0; e < per; e++) {
            double d = (double)x_adv[(size_t)i * per + e] - x[(size_t)i * per + e];
            l2 += d * d;
            if (fabs(d) > s->linf_max) s->linf_max = fabs(d);
        }
        s->l2_sum += sqrt(l2);
    }
    free(p0);
    free(p1);
}

void rcv_attack_gaussian(const float *x, size_t n_floats, float sigma, rcv_rng *rng, float *x_adv) {
    rcv_rng_fill_normal(rng, x_adv, n_floats, 0, sigma);
    for (size_t e = 0; e < n_floats; e++) x_adv[e] = rcv_clamp01(x[e] + x_adv[e]);
}
