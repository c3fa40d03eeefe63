// Projected gradient descent (Madry et al. 2018) in L-inf and L2, following
// torchattacks' PGD and PGDL2 step for step, with random restarts that keep
// each sample's worst case.
#include <math.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"

void rcv_pgd_defaults(rcv_pgd_cfg *c, rcv_norm norm) {
    memset(c, 0, sizeof *c);
    c->norm = norm;
    c->eps = norm == RCV_NORM_L2 ? 0.5f : 8.0f / 255.0f;
    c->alpha = norm == RCV_NORM_L2 ? 0.1f : 2.0f / 255.0f;
    c->steps = 10;
    c->random_start = 1;
    c->restarts = 1;
}

// d (per floats) scaled so that ||d||_2 <= eps.
static void project_l2(float *d, size_t per, float eps) {
    double s = 0;
    for (size_t e = 0; e < per; e++) s += (double)d[e] * d[e];
    double nrm = sqrt(s);
    // torchattacks: factor = min(eps / ||d||, 1) (a zero delta stays zero).
    if (nrm > eps) {
        float f = (float)(eps / nrm);
        for (size_t e = 0; e < per; e++) d[e] *= f;
    }
}

// Where the steps' gradients come from: the source models' averaged CE gradients (transfer
// attacks), or a classifier (one model, or an ensemble attacked as one model).
typedef struct {
    rcv_model *const *models;
    int n_models;
    const rcv_classifier *f;
    const int32_t *y;
    float s; // -1 when targeted: descend towards y
} pgd_src;

static double pgd_ce(void *ctx, int i, const float *z, int k, float *dz) {
    const pgd_src *p = ctx;
    double l = rcv_loss_ce(z, k, p->y[i], dz);
    if (dz && p->s < 0)
        for (int j = 0; j < k; j++) dz[j] = -dz[j];
    return l;
}

// grad (n, per) of the (signed) CE at x; loss (may be NULL) per sample; pred (may be NULL).
static void pgd_grad(const pgd_src *p, const float *x, int n, int targeted, float *grad, float *loss, int32_t *pred) {
    if (!p->f) {
        rcv_attack_input_grad(p->models, p->n_models, x, p->y, n, targeted, grad, loss);
        if (pred) rcv_attack_predict(p->models[0], x, n, pred);
        return;
    }
    int k = rcv_classifier_classes(p->f);
    float *z = pred ? rcv_xmalloc((size_t)n * k * sizeof(float)) : NULL;
    rcv_classifier_grad(p->f, x, n, pgd_ce, (void *)p, z, loss, grad);
    for (int i = 0; pred && i < n; i++) pred[i] = rcv_argmax(z + (size_t)i * k, k);
    free(z);
}

// One PGD run from x into adv (n images).
static void pgd_run(const pgd_src *src, size_t per, const float *x, const int32_t *y, int n, const rcv_pgd_cfg *c,
                    rcv_rng *rng, float *adv, float *grad) {
    size_t total = (size_t)n * per;
    // One model in L-inf: every step in the plan's storage (GPU plans keep the loop on the device);
    // the random start is drawn here first, from the same stream as below.
    // (A classifier of one deterministic model is that model.)
    rcv_model *one = src->models && src->n_models == 1                             ? src->models[0]
                     : src->f && src->f->n_models == 1 && src->f->noise_sigma == 0 ? src->f->models[0]
                                                                                   : NULL;
    int drawn = 0;
    if (one && c->norm == RCV_NORM_LINF) {
        if (c->random_start) {
            rcv_rng_fill_uniform(rng, grad, total, -c->eps, c->eps), drawn = 1;
            for (size_t e = 0; e < total; e++) adv[e] = rcv_clamp01(x[e] + grad[e]);
        }
        if (rcv_attack_linf_resident(one, x, y, NULL, n, c->random_start ? adv : NULL, c->alpha, c->eps, c->steps,
                                     c->targeted, adv) == 0)
            return;
        // out of device memory for two batch-sized buffers: the host loop below (same result)
    }
    memcpy(adv, x, total * sizeof(float));
    if (c->random_start) {
        if (c->norm == RCV_NORM_LINF) {
            if (!drawn) rcv_rng_fill_uniform(rng, grad, total, -c->eps, c->eps);
            for (size_t e = 0; e < total; e++) adv[e] = rcv_clamp01(x[e] + grad[e]);
        } else {
            rcv_rng_fill_normal(rng, grad, total, 0, 1);
            for (int i = 0; i < n; i++) {
                float *d = grad + (size_t)i * per;
                double s = 0;
                for (size_t e = 0; e < per; e++) s += (double)d[e] * d[e];
                float f = (float)(rcv_rng_uniform(rng) / sqrt(s) * c->eps);
                for (size_t e = 0; e < per; e++) adv[i * per + e] = rcv_clamp01(x[i * per + e] + d[e] * f);
            }
        }
    }
    for (int t = 0; t < c->steps; t++) {
        pgd_grad(src, adv, n, c->targeted, grad, NULL, NULL);
        if (c->norm == RCV_NORM_LINF) {
            for (size_t e = 0; e < total; e++) {
                float a = adv[e] + c->alpha * rcv_signf(grad[e]);
                float d = a - x[e];
                d = d < -c->eps ? -c->eps : d > c->eps ? c->eps : d;
                adv[e] = rcv_clamp01(x[e] + d);
            }
        } else {
            for (int i = 0; i < n; i++) {
                float *gi = grad + (size_t)i * per, *ai = adv + (size_t)i * per;
                const float *xi = x + (size_t)i * per;
                double s = 0;
                for (size_t e = 0; e < per; e++) s += (double)gi[e] * gi[e];
                float inv = (float)(1.0 / (sqrt(s) + 1e-10));
                for (size_t e = 0; e < per; e++) gi[e] = ai[e] + c->alpha * gi[e] * inv - xi[e]; // delta
                project_l2(gi, per, c->eps);
                for (size_t e = 0; e < per; e++) ai[e] = rcv_clamp01(xi[e] + gi[e]);
            }
        }
    }
}

static int pgd_attack(const pgd_src *src, size_t per, const float *x, const int32_t *y, int n, const rcv_pgd_cfg *c,
                      rcv_rng *rng, float *x_adv) {
    if (!(c->eps >= 0) || !(c->alpha >= 0) || c->steps < 0 || c->restarts < 1)
        return rcv_fail("pgd: eps %g, alpha %g, steps %d, restarts %d: expected eps, alpha >= 0, steps >= 0, "
                        "restarts >= 1", c->eps, c->alpha, c->steps, c->restarts);
    if (c->norm != RCV_NORM_LINF && c->norm != RCV_NORM_L2) return rcv_fail("pgd: norm %d, expected linf or l2", c->norm);
    size_t total = (size_t)n * per;
    float *grad = rcv_xmalloc(total * sizeof(float));
    if (c->restarts == 1) {
        pgd_run(src, per, x, y, n, c, rng, x_adv, grad);
        free(grad);
        return 0;
    }
    // Restarts: score each run per sample; success beats any loss.
    float *cand = rcv_xmalloc(total * sizeof(float)), *loss = rcv_xmalloc((size_t)n * sizeof(float));
    float *best = rcv_xmalloc((size_t)n * sizeof(float));
    int32_t *pred = rcv_xmalloc((size_t)n * sizeof(int32_t));
    uint8_t *done = rcv_xcalloc((size_t)n, 1);
    for (int r = 0; r < c->restarts; r++) {
        pgd_run(src, per, x, y, n, c, rng, cand, grad);
        pgd_grad(src, cand, n, c->targeted, grad, loss, pred);
        for (int i = 0; i < n; i++) {
            if (done[i]) continue;
            int ok = c->targeted ? pred[i] == y[i] : pred[i] != y[i];
            float score = c->targeted ? -loss[i] : loss[i];
            if (r == 0 || ok || score > best[i]) {
                memcpy(x_adv + (size_t)i * per, cand + (size_t)i * per, per * sizeof(float));
                best[i] = score;
                done[i] = (uint8_t)ok;
            }
        }
    }
    free(cand);
    free(loss);
    free(best);
    free(pred);
    free(done);
    free(grad);
    return 0;
}

int rcv_attack_pgd(rcv_model *const *models, int n_models, const float *x, const int32_t *y, int n,
                   const rcv_pgd_cfg *c, rcv_rng *rng, float *x_adv) {
    if (rcv_attack_check_models(models, n_models)) return -1;
    pgd_src src = {models, n_models, NULL, y, c->targeted ? -1.0f : 1.0f};
    return pgd_attack(&src, rcv_attack_per_image(models[0]), x, y, n, c, rng, x_adv);
}

int rcv_attack_pgd_classifier(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_pgd_cfg *c,
                              rcv_rng *rng, float *x_adv) {
    if (rcv_classifier_check(f)) return -1;
    pgd_src src = {NULL, 0, f, y, c->targeted ? -1.0f : 1.0f};
    return pgd_attack(&src, rcv_classifier_per_image(f), x, y, n, c, rng, x_adv);
}
