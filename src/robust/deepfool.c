// DeepFool (Moosavi-Dezfooli et al. 2016), multi-class over the top classes of
// the clean image like the authors' code, batched: each candidate class costs one
// backward pass for the whole batch (eval mode keeps samples independent).
#include <float.h>
#include <math.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"

void rcv_deepfool_defaults(rcv_deepfool_cfg *c) {
    c->overshoot = 0.02f;
    c->max_iter = 50;
    c->classes = 10;
}

// nb <= planned batch images x0 -> adv; iters[i] = updates made; flipped[i] = label changed.
void rcv_deepfool_chunk(rcv_model *m, const float *x0, int nb, const rcv_deepfool_cfg *c, float *adv, int *iters,
                        uint8_t *flipped) {
    rcv_graph *g = m->g;
    int b = g->batch, k = m->cfg.n_classes, nc = c->classes < k ? c->classes : k;
    if (nc < 2) nc = 2;
    size_t per = rcv_attack_per_image(m);
    rcv_node *zn = &g->nodes[m->logits];
    // A device plan: logits and input gradients come down, seeds go up, per pass (host-side attack).
    int dev = rcv_graph_on_device(g);
    float *gh = dev ? rcv_xmalloc((size_t)b * per * sizeof(float)) : NULL, *seed = rcv_xmalloc((size_t)b * k * sizeof(float));
    int *cand = rcv_xmalloc((size_t)nb * nc * sizeof(int));
    float *rtot = rcv_xcalloc((size_t)nb * per, sizeof(float)), *bestw = rcv_xmalloc((size_t)nb * per * sizeof(float));
    float *bestp = rcv_xmalloc((size_t)nb * sizeof(float)), *bestf = rcv_xmalloc((size_t)nb * sizeof(float));
    float *z = rcv_xmalloc((size_t)nb * k * sizeof(float));
    uint8_t *active = rcv_xmalloc((size_t)nb);
    memcpy(adv, x0, (size_t)nb * per * sizeof(float));

    // Candidates: classes sorted by the clean logits, highest first; cand[0] is the label.
    rcv_attack_load_chunk(m, x0, nb);
    rcv_graph_forward(g);
    const float *z0 = rcv_attack_view(g, zn->out, z, (size_t)nb * k);
    for (int i = 0; i < nb; i++) {
        const float *zi = z0 + (size_t)i * k;
        int *ci = cand + (size_t)i * nc;
        for (int j = 0; j < nc; j++) {
            int best = -1;
            for (int q = 0; q < k; q++) {
                int used = 0;
                for (int u = 0; u < j; u++) used |= ci[u] == q;
                if (!used && (best < 0 || zi[q] > zi[best])) best = q;
            }
            ci[j] = best;
        }
        active[i] = 1;
        iters[i] = 0;
        flipped[i] = 0;
    }
    for (int it = 0;; it++) {
        rcv_attack_load_chunk(m, adv, nb);
        rcv_graph_forward(g);
        rcv_graph_download(g, z, zn->out, (size_t)nb * k * sizeof(float)); // a memcpy on host plans
        int any = 0;
        for (int i = 0; i < nb; i++) {
            if (!active[i]) continue;
            if (rcv_argmax(z + (size_t)i * k, k) != cand[(size_t)i * nc]) {
                active[i] = 0;
                flipped[i] = 1;
            } else if (it == c->max_iter) {
                active[i] = 0;
            }
            any |= active[i];
            bestp[i] = FLT_MAX;
        }
        if (!any) break;
        for (int j = 1; j < nc; j++) {
            // seed_i = e_{cand_j} - e_{label}: one backward gives every image's w_j.
            memset(seed, 0, (size_t)b * k * sizeof(float));
            for (int i = 0; i < nb; i++) {
                if (!active[i]) continue;
                seed[(size_t)i * k + cand[(size_t)i * nc + j]] += 1;
                seed[(size_t)i * k + cand[(size_t)i * nc]] -= 1;
            }
            rcv_graph_backward_from(g, m->logits, seed);
            const float *gin = rcv_attack_view(g, g->nodes[m->input].grad, gh, (size_t)nb * per);
            for (int i = 0; i < nb; i++) {
                if (!active[i]) continue;
                const float *w = gin + (size_t)i * per;
                double s = 0;
                for (size_t e = 0; e < per; e++) s += (double)w[e] * w[e];
                if (s == 0) continue;
                float f = z[(size_t)i * k + cand[(size_t)i * nc + j]] - z[(size_t)i * k + cand[(size_t)i * nc]];
                float pert = (float)(fabsf(f) / sqrt(s));
                if (pert < bestp[i]) {
                    bestp[i] = pert;
                    bestf[i] = (float)sqrt(s);
                    memcpy(bestw + (size_t)i * per, w, per * sizeof(float));
                }
            }
        }
        for (int i = 0; i < nb; i++) {
            if (!active[i]) continue;
            if (bestp[i] == FLT_MAX) { // no gradient towards any class: DeepFool cannot move
                active[i] = 0;
                continue;
            }
            float step = (bestp[i] + 1e-4f) / bestf[i];
            float *r = rtot + (size_t)i * per, *a = adv + (size_t)i * per;
            const float *w = bestw + (size_t)i * per, *xi = x0 + (size_t)i * per;
            for (size_t e = 0; e < per; e++) {
                r[e] += step * w[e];
                a[e] = rcv_clamp01(xi[e] + (1 + c->overshoot) * r[e]);
            }
            iters[i]++;
        }
    }
    free(cand);
    free(rtot);
    free(bestw);
    free(bestp);
    free(bestf);
    free(z);
    free(active);
    free(gh);
    free(seed);
}

int rcv_attack_deepfool(rcv_model *m, const float *x, int n, const rcv_deepfool_cfg *c, float *x_adv, int *iters) {
    if (rcv_attack_check_models(&m, 1)) return -1;
    if (c->max_iter < 1 || !(c->overshoot >= 0) || c->classes < 2)
        return rcv_fail("deepfool: max_iter %d, overshoot %g, classes %d: expected >= 1, >= 0, >= 2", c->max_iter,
                        c->overshoot, c->classes);
    rcv_graph *g = m->g;
    int was = g->training, was_igo = g->input_grad_only, b = g->batch;
    rcv_graph_set_training(g, 0);
    rcv_graph_set_input_grad_only(g, 1); // d/dx only: no weight gradients
    size_t per = rcv_attack_per_image(m);
    int *it = rcv_xmalloc((size_t)b * sizeof(int));
    uint8_t *fl = rcv_xmalloc((size_t)b);
    for (int s = 0; s < n; s += b) {
        int nb = n - s < b ? n - s : b;
        rcv_deepfool_chunk(m, x + (size_t)s * per, nb, c, x_adv + (size_t)s * per, it, fl);
        if (iters) memcpy(iters + s, it, (size_t)nb * sizeof(int));
    }
    free(it);
    free(fl);
    rcv_graph_set_training(g, was);
    rcv_graph_set_input_grad_only(g, was_igo);
    return 0;
}
