// Universal adversarial perturbations (Moosavi-Dezfooli et al. 2017, Algorithm
// 1): one image-agnostic v, grown from DeepFool's minimal perturbations of the
// images it does not fool yet and projected back onto the p-norm ball of
// radius xi after every update.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"

void rcv_uap_defaults(rcv_uap_cfg *c, rcv_norm p) {
    memset(c, 0, sizeof *c);
    c->p = p;
    c->xi = p == RCV_NORM_L2 ? 2.0f : 10.0f / 255.0f;
    c->delta = 0.2f;
    c->max_passes = 10;
    c->overshoot = 0.02f;
    c->max_iter = 10;
    c->classes = 10;
}

void rcv_uap_apply(const float *v, const float *x, int n, size_t per, float *x_adv) {
    for (int i = 0; i < n; i++)
        for (size_t e = 0; e < per; e++) x_adv[(size_t)i * per + e] = rcv_clamp01(x[(size_t)i * per + e] + v[e]);
}

static void project(float *v, size_t per, rcv_norm p, float xi) {
    if (p == RCV_NORM_LINF) {
        for (size_t e = 0; e < per; e++) v[e] = v[e] < -xi ? -xi : v[e] > xi ? xi : v[e];
        return;
    }
    double s = 0;
    for (size_t e = 0; e < per; e++) s += (double)v[e] * v[e];
    double nrm = sqrt(s);
    if (nrm > xi)
        for (size_t e = 0; e < per; e++) v[e] *= (float)(xi / nrm);
}

int rcv_attack_uap(rcv_model *m, const float *x, int n, const rcv_uap_cfg *c, rcv_rng *rng, float *v, float *fooling,
                   int *passes) {
    if (rcv_attack_check_models(&m, 1)) return -1;
    if (!(c->xi >= 0) || !(c->delta >= 0 && c->delta <= 1) || c->max_passes < 1 || c->max_iter < 1 || c->chunk < 0 ||
        (c->p != RCV_NORM_LINF && c->p != RCV_NORM_L2))
        return rcv_fail("uap: xi %g, delta %g, max_passes %d, max_iter %d, chunk %d, p %d: expected xi >= 0, delta in "
                        "[0, 1], positive counts (chunk >= 0), p inf or 2", c->xi, c->delta, c->max_passes, c->max_iter, c->chunk,
                        c->p);
    if (n < 1) return rcv_fail("uap: no images");
    rcv_graph *g = m->g;
    int was = g->training, b = g->batch, chunk = c->chunk > 0 && c->chunk < b ? c->chunk : b;
    rcv_graph_set_training(g, 0);
    size_t per = rcv_attack_per_image(m);
    rcv_deepfool_cfg df = {c->overshoot, c->max_iter, c->classes};
    int32_t *clean = rcv_xmalloc((size_t)n * sizeof(int32_t)), *pred = rcv_xmalloc((size_t)n * sizeof(int32_t));
    int *perm = rcv_xmalloc((size_t)n * sizeof(int)), *idx = rcv_xmalloc((size_t)chunk * sizeof(int));
    int *it = rcv_xmalloc((size_t)chunk * sizeof(int));
    uint8_t *fl = rcv_xmalloc((size_t)chunk);
    float *xa = rcv_xmalloc((size_t)n * per * sizeof(float));
    float *in = rcv_xmalloc((size_t)chunk * per * sizeof(float)), *out = rcv_xmalloc((size_t)chunk * per * sizeof(float));
    int32_t *pc = rcv_xmalloc((size_t)chunk * sizeof(int32_t));
    rcv_attack_predict(m, x, n, clean);
    memset(v, 0, per * sizeof(float));
    float rate = 0;
    int pass = 0;
    while (pass < c->max_passes) {
        rcv_rng_permutation(rng, perm, n);
        for (int s = 0; s < n; s += chunk) {
            int nb = n - s < chunk ? n - s : chunk;
            for (int i = 0; i < nb; i++) {
                idx[i] = perm[s + i];
                rcv_uap_apply(v, x + (size_t)idx[i] * per, 1, per, in + (size_t)i * per);
            }
            rcv_attack_predict(m, in, nb, pc);
            // Only images v does not fool yet; DeepFool with this v, updates applied in order.
            int q = 0;
            for (int i = 0; i < nb; i++)
                if (pc[i] == clean[idx[i]]) {
                    memmove(in + (size_t)q * per, in + (size_t)i * per, per * sizeof(float));
                    q++;
                }
            if (!q) continue;
            rcv_deepfool_chunk(m, in, q, &df, out, it, fl);
            for (int i = 0; i < q; i++) {
                if (!fl[i]) continue; // DeepFool did not converge within its cap
                // dr = the DeepFool point minus the perturbed image (clamping included).
                for (size_t e = 0; e < per; e++) v[e] += out[(size_t)i * per + e] - in[(size_t)i * per + e];
                project(v, per, c->p, c->xi);
            }
        }
        pass++;
        rcv_uap_apply(v, x, n, per, xa);
        rcv_attack_predict(m, xa, n, pred);
        long changed = 0;
        for (int i = 0; i < n; i++) changed += pred[i] != clean[i];
        rate = (float)changed / n;
        if (c->verbose) fprintf(stderr, "uap: pass %d: fooling rate %.4f (target %.4f)\n", pass, rate, 1 - c->delta);
        if (rate >= 1 - c->delta) break;
    }
    if (fooling) *fooling = rate;
    if (passes) *passes = pass;
    free(clean);
    free(pred);
    free(perm);
    free(idx);
    free(it);
    free(fl);
    free(xa);
    free(in);
    free(out);
    free(pc);
    rcv_graph_set_training(g, was);
    return 0;
}
