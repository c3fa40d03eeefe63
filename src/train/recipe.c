// Robust-training recipes (recipe.h): each turns the batch in the model's input
// node into parameter gradients. Losses computed outside the graph (weighted
// mixed batches, KL and JSD terms) seed the logits' gradient directly through
// rcv_graph_backward_from; views of one step that each need their own backward
// are re-run forward with the same dropout stream and the running statistics
// restored, so the result equals separate PyTorch forwards with one backward.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "robust/robust.h"
#include "robustcv/attack.h"
#include "robustcv/error.h"
#include "robustcv/recipe.h"

static const char *const names[RCV_RECIPE_COUNT] = {"standard", "augment-curriculum", "fgsm", "kurakin",
                                                    "stability", "augmix", "pgd", "trades", "noise"};

void rcv_recipe_defaults(rcv_recipe_cfg *c) {
    memset(c, 0, sizeof *c);
    c->raw_epochs = 5;
    snprintf(c->augment, sizeof c->augment, "seed-fce");
    c->fgsm_alpha = 0.5f;
    c->adv_eps = -1;
    c->adv_k = -1;
    c->lambda = 0.5f;
    c->stab_alpha = 0.01f;
    c->stab_sigma = 0.1f;
    c->jsd_lambda = 12;
    c->augmix = (rcv_augmix_cfg){3, -1, 3};
    c->pgd_eps = 0.1f;
    c->pgd_alpha = -1;
    c->pgd_steps = 7;
    c->pgd_random_start = 1;
    c->trades_beta = 6;
    c->trades_eps = 0.031f;
    c->trades_step = 0.007f;
    c->trades_steps = 10;
    c->noise_sigma = 0.25f;
}

const char *rcv_recipe_name(rcv_recipe_kind k) { return k >= 0 && k < RCV_RECIPE_COUNT ? names[k] : "?"; }

int rcv_recipe_parse(const char *name, rcv_recipe_kind *k) {
    for (int i = 0; i < RCV_RECIPE_COUNT; i++)
        if (name && !strcmp(name, names[i])) {
            *k = (rcv_recipe_kind)i;
            return 0;
        }
    return rcv_fail("--recipe '%s': expected standard, augment-curriculum, fgsm, kurakin, stability, augmix, pgd, "
                    "trades or noise",
                    name ? name : "(null)");
}

int rcv_recipe_augment_on(const rcv_recipe_cfg *c, int epoch) {
    return c->kind == RCV_RECIPE_AUGMENT_CURRICULUM && epoch >= c->raw_epochs;
}

static int needs_input_grad(rcv_recipe_kind k) {
    return k == RCV_RECIPE_FGSM || k == RCV_RECIPE_KURAKIN || k == RCV_RECIPE_PGD || k == RCV_RECIPE_TRADES;
}

int rcv_recipe_check(const rcv_recipe_cfg *c) {
    if (c->kind < 0 || c->kind >= RCV_RECIPE_COUNT) return rcv_fail("recipe: unknown kind %d", c->kind);
    if (!(c->fgsm_alpha >= 0 && c->fgsm_alpha <= 1)) return rcv_fail("recipe fgsm: alpha %g, expected in [0, 1]", c->fgsm_alpha);
    if (!(c->lambda >= 0)) return rcv_fail("recipe kurakin: lambda %g, expected >= 0", c->lambda);
    if (!(c->stab_alpha >= 0) || !(c->stab_sigma >= 0))
        return rcv_fail("recipe stability: alpha %g, sigma %g, expected >= 0", c->stab_alpha, c->stab_sigma);
    if (!(c->jsd_lambda >= 0)) return rcv_fail("recipe augmix: lambda %g, expected >= 0", c->jsd_lambda);
    if (c->augmix.width < 1 || c->augmix.width > 16 || c->augmix.depth > 16 || c->augmix.severity < 1 ||
        c->augmix.severity > 10)
        return rcv_fail("recipe augmix: width %d (1..16), depth %d (<= 16; <= 0 random 1..3), severity %d (1..10)",
                        c->augmix.width, c->augmix.depth, c->augmix.severity);
    if (!(c->pgd_eps >= 0) || c->pgd_steps < 1) return rcv_fail("recipe pgd: eps %g, steps %d, expected eps >= 0, steps >= 1", c->pgd_eps, c->pgd_steps);
    if (!(c->trades_beta >= 0) || !isfinite(c->trades_beta))
        return rcv_fail("recipe trades: --trades-beta %g, expected a finite value >= 0", c->trades_beta);
    if (!(c->trades_eps >= 0) || !isfinite(c->trades_eps))
        return rcv_fail("recipe trades: --trades-eps %g, expected a finite value >= 0 (pixels)", c->trades_eps);
    if (!(c->trades_step >= 0) || !isfinite(c->trades_step))
        return rcv_fail("recipe trades: --trades-step %g, expected a finite value >= 0 (pixels)", c->trades_step);
    if (c->trades_steps < 0) return rcv_fail("recipe trades: --trades-steps %d, expected >= 0", c->trades_steps);
    if (!(c->noise_sigma > 0) || !isfinite(c->noise_sigma))
        return rcv_fail("recipe noise: --noise-sigma %g, expected a finite value > 0 (pixels)", c->noise_sigma);
    if (c->raw_epochs < 0) return rcv_fail("recipe augment-curriculum: raw epochs %d, expected >= 0", c->raw_epochs);
    return 0;
}

int rcv_recipe_init(rcv_recipe *r, const rcv_recipe_cfg *c, rcv_model *m) {
    memset(r, 0, sizeof *r);
    r->cfg = *c;
    r->m = m;
    r->per = (size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w;
    if (rcv_recipe_check(c)) return -1;
    if (c->adv_eps < 0) { // the seed's eps = 0.2 on normalized inputs, in pixels
        float s = 0;
        for (int i = 0; i < m->cfg.in_c; i++) s += m->cfg.std[i];
        r->cfg.adv_eps = 0.2f * s / m->cfg.in_c;
    }
    if (r->cfg.pgd_alpha < 0) r->cfg.pgd_alpha = r->cfg.pgd_eps / 4;
    if (needs_input_grad(c->kind)) rcv_graph_require_grad(m->g, m->input);
    return 0;
}

void rcv_recipe_free(rcv_recipe *r) {
    free(r->x0);
    free(r->xa);
    free(r->xb);
    free(r->grad);
    for (int v = 0; v < 3; v++) {
        free(r->z[v]);
        free(r->seed[v]);
    }
    free(r->bufsave);
    free(r->ibufsave);
    free(r->y);
    memset(r, 0, sizeof *r);
}

// Sizes the scratch for the planned batch (the first step, or after a re-plan).
static void scratch(rcv_recipe *r) {
    rcv_graph *g = r->m->g;
    if (r->batch == g->batch) return;
    rcv_model *m = r->m;
    rcv_recipe_cfg c = r->cfg;
    rcv_recipe_free(r);
    r->cfg = c;
    r->m = m;
    r->per = (size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w;
    r->batch = g->batch;
    size_t imgs = (size_t)r->batch * r->per * sizeof(float), lg = (size_t)r->batch * m->cfg.n_classes * sizeof(float);
    r->x0 = rcv_xmalloc(imgs);
    r->xa = rcv_xmalloc(imgs);
    r->xb = rcv_xmalloc(imgs);
    r->grad = rcv_xmalloc(imgs);
    for (int v = 0; v < 3; v++) {
        r->z[v] = rcv_xmalloc(lg);
        r->seed[v] = rcv_xmalloc(lg);
    }
    r->bufsave = rcv_xmalloc((g->n_buffer_floats + 1) * sizeof(float));
    r->ibufsave = rcv_xmalloc((g->n_ibuffers + 1) * sizeof(int64_t));
    r->y = rcv_xmalloc((size_t)r->batch * sizeof(int32_t));
}

const float *rcv_recipe_logits(const rcv_recipe *r) { return r->z[0]; }

// Softmax of one row in double.
static void softmax(const float *z, int k, double *p) {
    double mx = z[0], s = 0;
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < k; j++) s += p[j] = exp((double)z[j] - mx);
    for (int j = 0; j < k; j++) p[j] /= s;
}

// Cross-entropy with the loss node's label smoothing for row z; adds w * dCE/dz to seed.
static double ce_row(const float *z, int k, int y, float ls, float w, float *seed) {
    double p[k];
    softmax(z, k, p);
    double l = 0;
    for (int j = 0; j < k; j++) {
        double q = (1 - ls) * (j == y) + ls / k;
        l -= q * log(p[j] > 1e-300 ? p[j] : 1e-300);
        seed[j] += (float)(w * (p[j] - q));
    }
    return l;
}

static float label_smoothing(const rcv_recipe *r) { return r->m->g->nodes[r->m->loss].attr.loss.label_smoothing; }

// The planned input (host or device memory). On a device plan (cuda) the recipes below keep
// their per-sample arithmetic on the host: the batch, labels and logits come down and the
// views and seeds go up once per forward/backward (rcv_graph_upload/download, plain memcpy on
// host plans); the attacks inside (FGSM, PGD) iterate on the device (rcv_attack_linf_resident).
static float *input(rcv_recipe *r) { return r->m->g->nodes[r->m->input].out; }

static void load(rcv_recipe *r, const float *x) {
    rcv_graph_upload(r->m->g, input(r), x, (size_t)r->batch * r->per * sizeof(float));
}

// x = the batch the input node holds (train's loader put it there).
static void get_input(rcv_recipe *r, float *x) {
    rcv_graph_download(r->m->g, x, input(r), (size_t)r->batch * r->per * sizeof(float));
}

static const int32_t *labels(rcv_recipe *r) {
    rcv_graph *g = r->m->g;
    rcv_graph_download(g, r->y, g->nodes[r->m->labels].idata, (size_t)r->batch * sizeof(int32_t));
    return r->y;
}

static void save_logits(rcv_recipe *r, int v) {
    rcv_graph_download(r->m->g, r->z[v], r->m->g->nodes[r->m->logits].out,
                       (size_t)r->batch * r->m->cfg.n_classes * sizeof(float));
}

// Standard step on whatever the input holds; backward scaled by `scale`; returns the loss.
static float plain(rcv_recipe *r, float scale, int save_view) {
    rcv_graph *g = r->m->g;
    rcv_graph_forward(g);
    if (save_view >= 0) save_logits(r, save_view);
    float loss;
    rcv_graph_download(g, &loss, g->nodes[r->m->loss].out, sizeof loss);
    rcv_graph_backward(g, r->m->loss, scale);
    return loss;
}

static float step_fgsm(rcv_recipe *r) {
    rcv_graph *g = r->m->g;
    float a = r->cfg.fgsm_alpha, eps = r->cfg.adv_eps;
    size_t total = (size_t)r->batch * r->per;
    // alpha J(x): its backward also gives grad_x J (scaled by alpha, which a sign ignores).
    float l0 = plain(r, a > 0 ? a : 1, 0);
    // x_adv = clamp01(x + eps sign(grad_x J)), in place in the input (on the GPU for a cuda plan)
    rcv_backend_linf_step(g->backend, g->backend_ctx, input(r), input(r), g->nodes[r->m->input].grad, total, eps, -1, 0);
    if (a == 0) rcv_graph_zero_grad(g);
    float l1 = plain(r, 1 - a, -1);
    return a * l0 + (1 - a) * l1;
}

static float step_kurakin(rcv_recipe *r) {
    rcv_model *m = r->m;
    rcv_graph *g = m->g;
    int b = r->batch, kc = m->cfg.n_classes, kadv = r->cfg.adv_k < 0 ? b / 2 : r->cfg.adv_k;
    if (kadv > b) kadv = b;
    size_t total = (size_t)b * r->per, off = (size_t)(b - kadv) * r->per;
    const int32_t *y = labels(r);
    get_input(r, r->x0);
    // FGSM images of the last k, crafted in eval mode; they replace their clean originals.
    rcv_fgsm_cfg fc = {r->cfg.adv_eps, 0};
    memcpy(r->xa, r->x0, total * sizeof(float));
    if (kadv > 0) rcv_attack_fgsm(&r->m, 1, r->x0 + off, y + (b - kadv), kadv, &fc, r->xa + off);
    rcv_graph_zero_grad(g);
    load(r, r->xa);
    rcv_graph_forward(g);
    save_logits(r, 0);
    // (sum_clean CE + lambda sum_adv CE) / (m - k + lambda k)
    double norm = (b - kadv) + (double)r->cfg.lambda * kadv, loss = 0;
    float ls = label_smoothing(r), *seed = r->seed[0];
    memset(seed, 0, (size_t)b * kc * sizeof(float));
    for (int i = 0; i < b; i++) {
        double w = (i < b - kadv ? 1.0 : r->cfg.lambda) / norm;
        loss += w * ce_row(r->z[0] + (size_t)i * kc, kc, y[i], ls, (float)w, seed + (size_t)i * kc);
    }
    rcv_graph_backward_from(g, m->logits, seed);
    return (float)loss;
}

static float step_pgd(rcv_recipe *r, rcv_rng *rng) {
    rcv_model *m = r->m;
    rcv_graph *g = m->g;
    get_input(r, r->x0);
    rcv_pgd_cfg pc;
    rcv_pgd_defaults(&pc, RCV_NORM_LINF);
    pc.eps = r->cfg.pgd_eps;
    pc.alpha = r->cfg.pgd_alpha;
    pc.steps = r->cfg.pgd_steps;
    pc.random_start = r->cfg.pgd_random_start;
    rcv_attack_pgd(&r->m, 1, r->x0, labels(r), r->batch, &pc, rng, r->xa);
    rcv_graph_zero_grad(g);
    load(r, r->xa);
    return plain(r, 1, 0);
}

// Multi-view step: views[0] is the clean batch (CE on it), views[1..nv) the perturbed ones.
// seeds(r) fills r->seed[v] from r->z[v] and returns the extra loss term.
static float multi_view(rcv_recipe *r, const float *const *views, int nv, double (*extra)(rcv_recipe *r)) {
    rcv_model *m = r->m;
    rcv_graph *g = m->g;
    int b = r->batch, kc = m->cfg.n_classes;
    const int32_t *y = labels(r);
    rcv_rng rs[3];
    // Perturbed views first, the clean one last: its activations are still there for its backward.
    for (int v = 1; v < nv; v++) {
        rs[v] = g->rng;
        load(r, views[v]);
        rcv_graph_forward(g);
        save_logits(r, v);
    }
    load(r, views[0]);
    rcv_graph_forward(g);
    save_logits(r, 0);
    rcv_rng after = g->rng;
    for (int v = 0; v < nv; v++) memset(r->seed[v], 0, (size_t)b * kc * sizeof(float));
    double loss = 0;
    float ls = label_smoothing(r);
    for (int i = 0; i < b; i++) loss += ce_row(r->z[0] + (size_t)i * kc, kc, y[i], ls, 1.0f / b, r->seed[0] + (size_t)i * kc) / b;
    loss += extra(r);
    rcv_graph_backward_from(g, m->logits, r->seed[0]);
    // Re-run each perturbed view (same dropout stream) for its backward; the running
    // statistics keep the values of the first pass.
    float *bufs = g->dbuffers ? g->dbuffers : g->buffers; // a device plan's running statistics are on the GPU
    int64_t *ibufs = g->dibuffers ? g->dibuffers : g->ibuffers;
    rcv_graph_download(g, r->bufsave, bufs, g->n_buffer_floats * sizeof(float));
    rcv_graph_download(g, r->ibufsave, ibufs, g->n_ibuffers * sizeof(int64_t));
    for (int v = 1; v < nv; v++) {
        g->rng = rs[v];
        load(r, views[v]);
        rcv_graph_forward(g);
        rcv_graph_backward_from(g, m->logits, r->seed[v]);
    }
    rcv_graph_upload(g, bufs, r->bufsave, g->n_buffer_floats * sizeof(float));
    rcv_graph_upload(g, ibufs, r->ibufsave, g->n_ibuffers * sizeof(int64_t));
    g->rng = after;
    return (float)loss;
}

// alpha * mean_i KL(p_i || q_i), p = softmax(clean), q = softmax(noisy):
//   d/dz_clean = alpha/B p (d - KL), d = log p - log q;  d/dz_noisy = alpha/B (q - p).
// trades: the same with alpha = beta and x' its adversarial batch (criterion_kl's sum / B).
static double stability_extra(rcv_recipe *r) {
    int b = r->batch, k = r->m->cfg.n_classes;
    double alpha = r->cfg.kind == RCV_RECIPE_TRADES ? r->cfg.trades_beta : r->cfg.stab_alpha;
    double a = alpha / b, total = 0, p[k], q[k];
    for (int i = 0; i < b; i++) {
        softmax(r->z[0] + (size_t)i * k, k, p);
        softmax(r->z[1] + (size_t)i * k, k, q);
        double kl = 0, d[k];
        for (int j = 0; j < k; j++) {
            d[j] = p[j] > 0 ? log(p[j]) - log(q[j] > 1e-300 ? q[j] : 1e-300) : 0;
            kl += p[j] * d[j];
        }
        for (int j = 0; j < k; j++) {
            r->seed[0][(size_t)i * k + j] += (float)(a * p[j] * (d[j] - kl));
            r->seed[1][(size_t)i * k + j] = (float)(a * (q[j] - p[j]));
        }
        total += kl;
    }
    return alpha * total / b;
}

// lambda * mean_i (1/3) sum_v KL(p_v || M), M = clamp(mean_v p_v, 1e-7, 1) (AugMix's code):
//   dJ/dp_vk = log p_vk - log M_k + 1 - [M unclamped] sum_u p_uk / (3 M_k), then through softmax.
static double jsd_extra(rcv_recipe *r) {
    int b = r->batch, k = r->m->cfg.n_classes;
    double s = r->cfg.jsd_lambda / (3.0 * b), total = 0, p[3][k], mm[k], lm[k], gsum[k];
    for (int i = 0; i < b; i++) {
        for (int v = 0; v < 3; v++) softmax(r->z[v] + (size_t)i * k, k, p[v]);
        for (int j = 0; j < k; j++) {
            double mean = (p[0][j] + p[1][j] + p[2][j]) / 3;
            mm[j] = mean < 1e-7 ? 1e-7 : mean > 1 ? 1 : mean;
            lm[j] = log(mm[j]);
            gsum[j] = mean >= 1e-7 && mean <= 1 ? 3 * mean / (3 * mm[j]) : 0;
        }
        for (int v = 0; v < 3; v++) {
            double gv[k], dot = 0;
            for (int j = 0; j < k; j++) {
                double lp = p[v][j] > 0 ? log(p[v][j]) : 0;
                if (p[v][j] > 0) total += p[v][j] * (lp - lm[j]);
                gv[j] = (p[v][j] > 0 ? lp + 1 : 1) - lm[j] - gsum[j];
                dot += p[v][j] * gv[j];
            }
            for (int j = 0; j < k; j++) r->seed[v][(size_t)i * k + j] += (float)(s * p[v][j] * (gv[j] - dot));
        }
    }
    return s * total;
}

float rcv_recipe_stability_step(rcv_recipe *r, const float *x_noisy) {
    scratch(r);
    rcv_graph_zero_grad(r->m->g);
    get_input(r, r->x0);
    const float *views[2] = {r->x0, x_noisy};
    return multi_view(r, views, 2, stability_extra);
}

float rcv_recipe_augmix_step(rcv_recipe *r, const float *x1, const float *x2) {
    scratch(r);
    rcv_graph_zero_grad(r->m->g);
    get_input(r, r->x0);
    const float *views[3] = {r->x0, x1, x2};
    return multi_view(r, views, 3, jsd_extra);
}

// KL_sum(P(x) || P(x')) of one image of the inner maximisation, p = P(x) (eval mode) given:
// dKL/dz' = softmax(z') - p.
static double trades_kl(void *ctx, int i, const float *z, int k, float *dz) {
    const double *p = (const double *)ctx + (size_t)i * k;
    double q[k], kl = 0;
    softmax(z, k, q);
    for (int j = 0; j < k; j++) {
        if (p[j] > 0) kl += p[j] * (log(p[j]) - log(q[j] > 1e-300 ? q[j] : 1e-300));
        if (dz) dz[j] = (float)(q[j] - p[j]);
    }
    return kl;
}

static float step_trades(rcv_recipe *r, rcv_rng *rng) {
    rcv_model *m = r->m;
    int b = r->batch, k = m->cfg.n_classes;
    size_t total = (size_t)b * r->per;
    float eps = r->cfg.trades_eps, st = r->cfg.trades_step;
    get_input(r, r->x0);
    rcv_rng_fill_normal(rng, r->xb, total, 0, 1);
    for (size_t e = 0; e < total; e++) r->xa[e] = r->x0[e] + 0.001f * r->xb[e];
    // Inner maximisation in eval mode (rcv_classifier switches and restores the mode).
    rcv_model *mp = m;
    rcv_classifier f = {&mp, 1, 0, NULL};
    double *p = rcv_xmalloc((size_t)b * k * sizeof(double));
    if (r->cfg.trades_steps > 0) {
        rcv_classifier_logits(&f, r->x0, b, r->z[0]);
        for (int i = 0; i < b; i++) softmax(r->z[0] + (size_t)i * k, k, p + (size_t)i * k);
    }
    // The steps x' = clamp01(clip_eps(x' + step sign(grad KL))) in the plan's storage (on a GPU
    // plan no host round trip per step); the host loop is its fallback (out of device memory).
    if (r->cfg.trades_steps > 0 &&
        rcv_attack_linf_resident(m, r->x0, NULL, p, b, r->xa, st, eps, r->cfg.trades_steps, 0, r->xa))
        for (int s = 0; s < r->cfg.trades_steps; s++) {
            rcv_classifier_grad(&f, r->xa, b, trades_kl, p, NULL, NULL, r->grad);
            for (size_t e = 0; e < total; e++) {
                float a = r->xa[e] + st * rcv_signf(r->grad[e]);
                float lo = r->x0[e] - eps, hi = r->x0[e] + eps;
                a = a < lo ? lo : a > hi ? hi : a;
                r->xa[e] = rcv_clamp01(a);
            }
        }
    for (size_t e = 0; e < total; e++) r->xa[e] = rcv_clamp01(r->xa[e]); // the reference's last clamp (0 steps)
    free(p);
    rcv_graph_zero_grad(m->g); // the step starts from zero (crafting skips parameter gradients; cheap insurance)
    const float *views[2] = {r->x0, r->xa};
    return multi_view(r, views, 2, stability_extra);
}

float rcv_recipe_step(rcv_recipe *r, rcv_rng *rng) {
    scratch(r);
    rcv_model *m = r->m;
    rcv_graph *g = m->g;
    rcv_graph_zero_grad(g);
    size_t total = (size_t)r->batch * r->per;
    switch (r->cfg.kind) {
    case RCV_RECIPE_FGSM: return step_fgsm(r);
    case RCV_RECIPE_KURAKIN: return step_kurakin(r);
    case RCV_RECIPE_PGD: return step_pgd(r, rng);
    case RCV_RECIPE_TRADES: return step_trades(r, rng);
    case RCV_RECIPE_NOISE: {
        // drawn on the host (one stream for cpu and cuda), one upload per step
        rcv_rng_fill_normal(rng, r->xb, total, 0, 1);
        float *x = r->x0, s = r->cfg.noise_sigma;
        get_input(r, x);
        for (size_t e = 0; e < total; e++) x[e] += s * r->xb[e];
        load(r, x);
        return plain(r, 1, 0);
    }
    case RCV_RECIPE_STABILITY: {
        // Noise of std sigma in normalized units is sigma * std_c in pixels (NHWC: channel = e % C).
        int c = m->cfg.in_c;
        rcv_rng_fill_normal(rng, r->xb, total, 0, 1);
        float *x = r->xa;
        get_input(r, x);
        for (size_t e = 0; e < total; e++) r->xb[e] = x[e] + r->cfg.stab_sigma * m->cfg.std[e % c] * r->xb[e];
        return rcv_recipe_stability_step(r, r->xb);
    }
    case RCV_RECIPE_AUGMIX: {
        float *x = r->x0;
        get_input(r, x);
        rcv_augmix(&r->cfg.augmix, x, r->batch, m->cfg.in_h, m->cfg.in_w, m->cfg.in_c, rng, r->xa);
        rcv_augmix(&r->cfg.augmix, x, r->batch, m->cfg.in_h, m->cfg.in_w, m->cfg.in_c, rng, r->xb);
        return rcv_recipe_augmix_step(r, r->xa, r->xb);
    }
    default: return plain(r, 1, 0);
    }
}
