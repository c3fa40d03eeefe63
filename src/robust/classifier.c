// The classifier under attack (attack.h): one model or an ensemble attacked as one model
// (log of the mean softmax), optionally randomized by Gaussian input noise; its logits and the
// input gradient of any per-sample loss on them, one forward and one backward per chunk.
#include <math.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"

int rcv_classifier_check(const rcv_classifier *f) {
    if (rcv_attack_check_models(f->models, f->n_models)) return -1;
    // A failed plan leaves batch 0 (or negative, re-plan pending): the chunk loops would not advance.
    if (f->models[0]->g->batch <= 0)
        return rcv_fail("attack: model '%s' is not planned (batch %d), expected rcv_attack_prepare to have succeeded",
                        f->models[0]->name, f->models[0]->g->batch);
    for (int i = 1; i < f->n_models; i++)
        if (f->models[i]->g->batch != f->models[0]->g->batch)
            return rcv_fail("attack: ensemble members planned for batches %d and %d, expected one batch",
                            f->models[0]->g->batch, f->models[i]->g->batch);
    if (!(f->noise_sigma >= 0) || !isfinite(f->noise_sigma) || (f->noise_sigma > 0 && !f->rng))
        return rcv_fail("attack: noise sigma %g, expected a finite value >= 0 (and a generator when > 0)",
                        f->noise_sigma);
    return 0;
}

int rcv_classifier_classes(const rcv_classifier *f) { return f->models[0]->cfg.n_classes; }
size_t rcv_classifier_per_image(const rcv_classifier *f) { return rcv_attack_per_image(f->models[0]); }

// Ensemble logits of image i: zc_j = log(1/M sum_m softmax(z_m)_j), from the members' log-softmax
// (no underflow to log 0); p (M, k) keeps the members' probabilities for the backward.
static void ensemble_logits(const float *const *zm, int M, int i, int k, float *zc, double *p) {
    for (int j = 0; j < k; j++) zc[j] = 0;
    double *lse = p + (size_t)M * k; // (k) scratch after this image's p
    for (int m = 0; m < M; m++) {
        const float *z = zm[m] + (size_t)i * k;
        float mx = z[0];
        for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        double s = 0;
        for (int j = 0; j < k; j++) s += exp((double)z[j] - mx);
        for (int j = 0; j < k; j++) {
            double ls = (double)z[j] - mx - log(s); // log softmax
            p[(size_t)m * k + j] = exp(ls);
            lse[j] = m == 0 ? ls : fmax(lse[j], ls) + log1p(exp(-fabs(lse[j] - ls)));
        }
    }
    for (int j = 0; j < k; j++) zc[j] = (float)(lse[j] - log((double)M));
}

void rcv_classifier_grad(const rcv_classifier *f, const float *x, int n, rcv_logit_loss_fn fn, void *ctx, float *z,
                         float *loss, float *grad) {
    rcv_model *const *ms = f->models;
    int M = f->n_models, b = ms[0]->g->batch, k = ms[0]->cfg.n_classes;
    size_t per = rcv_attack_per_image(ms[0]);
    int *was = rcv_xmalloc((size_t)M * 2 * sizeof(int)); // per member: training, input_grad_only
    for (int m = 0; m < M; m++) {
        was[2 * m] = ms[m]->g->training, was[2 * m + 1] = ms[m]->g->input_grad_only;
        rcv_graph_set_training(ms[m]->g, 0);
        rcv_graph_set_input_grad_only(ms[m]->g, 1); // d/dx only: no weight gradients (half the backward)
    }
    float *zc = rcv_xmalloc((size_t)b * k * sizeof(float)), *dzc = rcv_xmalloc((size_t)b * k * sizeof(float));
    double *p = M > 1 ? rcv_xmalloc(((size_t)b * M * k + k) * sizeof(double)) : NULL;
    float *noisy = f->noise_sigma > 0 ? rcv_xmalloc((size_t)b * per * sizeof(float)) : NULL;
    // The losses here are callbacks on host logits: a device plan copies the logits down, the
    // seed up and the input gradient down once per chunk (per member). The iteration's other
    // work (the attack's update) is the caller's, on the host.
    int dev = rcv_graph_on_device(ms[0]->g);
    const float **zm = rcv_xmalloc((size_t)M * sizeof *zm);
    float *zh = dev ? rcv_xmalloc((size_t)M * b * k * sizeof(float)) : NULL;
    float *sh = rcv_xmalloc((size_t)b * k * sizeof(float)), *gh = dev ? rcv_xmalloc((size_t)b * per * sizeof(float)) : NULL;
    for (int st = 0; st < n; st += b) {
        int nb = n - st < b ? n - st : b;
        const float *xin = x + (size_t)st * per;
        if (noisy) {
            rcv_rng_fill_normal(f->rng, noisy, (size_t)nb * per, 0, f->noise_sigma);
            for (size_t e = 0; e < (size_t)nb * per; e++) noisy[e] += xin[e];
            xin = noisy;
        }
        for (int m = 0; m < M; m++) {
            rcv_attack_load_chunk(ms[m], xin, nb);
            // Logits only (Square's queries, predictions): the folded inference path; a
            // gradient needs the forward whose saved outputs the backward reads.
            if (grad && fn) rcv_graph_forward(ms[m]->g);
            else rcv_graph_infer(ms[m]->g);
            zm[m] = rcv_attack_view(ms[m]->g, ms[m]->g->nodes[ms[m]->logits].out, zh ? zh + (size_t)m * b * k : NULL,
                                    (size_t)nb * k);
        }
        for (int i = 0; i < nb; i++) {
            float *zi = zc + (size_t)i * k;
            if (M == 1) memcpy(zi, zm[0] + (size_t)i * k, (size_t)k * sizeof(float));
            else ensemble_logits(zm, M, i, k, zi, p + (size_t)i * M * k); // scratch: image i + 1's rows
            if (z) memcpy(z + (size_t)(st + i) * k, zi, (size_t)k * sizeof(float));
            if (!fn) continue;
            double l = fn(ctx, st + i, zi, k, grad ? dzc + (size_t)i * k : NULL);
            if (loss) loss[st + i] = (float)l;
        }
        if (!grad || !fn) continue;
        for (int m = 0; m < M; m++) {
            rcv_graph *g = ms[m]->g;
            float *seed = sh; // host; backward_from puts it in the logits' gradient
            memset(seed, 0, (size_t)b * k * sizeof(float)); // padded rows push nothing
            for (int i = 0; i < nb; i++) {
                const float *s = dzc + (size_t)i * k;
                float *d = seed + (size_t)i * k;
                if (M == 1) {
                    memcpy(d, s, (size_t)k * sizeof(float));
                    continue;
                }
                // zc_j = log q_j, q = mean_m p_m: dL/dz_mj = p_mj (w_j - sum_l w_l p_ml), w_l = s_l / (M q_l)
                const double *pm = p + (size_t)i * M * k + (size_t)m * k;
                const float *zi = zc + (size_t)i * k;
                double dot = 0, *w = p + (size_t)b * M * k; // (k) scratch past the batch
                for (int l = 0; l < k; l++) w[l] = s[l] / (M * exp((double)zi[l])), dot += w[l] * pm[l];
                for (int j = 0; j < k; j++) d[j] = (float)(pm[j] * (w[j] - dot));
            }
            rcv_graph_backward_from(g, ms[m]->logits, seed);
            const float *gi = rcv_attack_view(g, g->nodes[ms[m]->input].grad, gh, (size_t)nb * per);
            float *go = grad + (size_t)st * per;
            if (m == 0) memcpy(go, gi, (size_t)nb * per * sizeof(float));
            else
                for (size_t e = 0; e < (size_t)nb * per; e++) go[e] += gi[e];
        }
    }
    for (int m = 0; m < M; m++) {
        rcv_graph_set_training(ms[m]->g, was[2 * m]);
        rcv_graph_set_input_grad_only(ms[m]->g, was[2 * m + 1]);
    }
    free(was);
    free(zc);
    free(dzc);
    free(p);
    free(noisy);
    free(zm);
    free(zh);
    free(sh);
    free(gh);
}

void rcv_classifier_logits(const rcv_classifier *f, const float *x, int n, float *z) {
    rcv_classifier_grad(f, x, n, NULL, NULL, z, NULL, NULL);
}
