// Carlini-Wagner L2 (Carlini & Wagner 2017) as torchattacks 3.5.1's CW, step for step, with
// Carlini & Wagner's binary search over c as an option. Per chunk of the planned batch:
//   x' = (tanh(w) + 1) / 2, w0 = atanh(clamp(2x - 1, -1, 1)) (pixels at 0 or 1 give w = -/+inf
//   and stay there: tanh' = 0), Adam on w of  sum_i ||x'_i - x_i||^2 + c_i f(x'_i),
//   f = max(Z_y - max_{j!=y} Z_j, -kappa) (targeted: max(max_{j!=t} Z_j - Z_t, -kappa)),
// where both maxima run over the one-hot-masked logits (0 where masked, torchattacks' quirk: the
// "real" logit is max(Z_y, 0) and the "other" one max(0, max_{j!=y} Z_j)). Each step keeps, per
// image, the iterate of this step (before the update) when it is misclassified (classified as
// the target) with a smaller L2 than the best so far; every max(steps / 10, 1) steps it stops
// when the summed cost of the chunk rose.
#include <math.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"

void rcv_cw_defaults(rcv_cw_cfg *c) {
    memset(c, 0, sizeof *c);
    c->c = 1;
    c->kappa = 0;
    c->lr = 0.01f;
    c->steps = 50;
    c->binary_steps = 0;
}

typedef struct {
    const int32_t *y; // (nb) labels or targets of the chunk
    const float *c;   // (nb) per-image c
    float kappa;
    int targeted;
} cw_loss_ctx;

// Index of the largest entry of mask_j * z_j (first on ties, as torch.max over a dim), with
// mask_j = (j == y) when want_y, else (j != y).
static int masked_argmax(const float *z, int k, int y, int want_y, float *val) {
    int am = 0;
    float best = (want_y ? (0 == y) : (0 != y)) ? z[0] : 0.0f;
    for (int j = 1; j < k; j++) {
        float v = (want_y ? (j == y) : (j != y)) ? z[j] : 0.0f;
        if (v > best) best = v, am = j;
    }
    *val = best;
    return am;
}

// L_i = c_i f(z); dz = c_i df/dz. The gradient of each max goes to its argmax entry, zero
// when that entry is a masked one (torchattacks' quirk); clamp passes it when diff >= -kappa.
static double cw_loss(void *vctx, int i, const float *z, int k, float *dz) {
    const cw_loss_ctx *cx = vctx;
    int y = cx->y[i];
    float real, other;
    int ir = masked_argmax(z, k, y, 1, &real), io = masked_argmax(z, k, y, 0, &other);
    float diff = cx->targeted ? other - real : real - other;
    float f = diff < -cx->kappa ? -cx->kappa : diff;
    if (dz) {
        memset(dz, 0, (size_t)k * sizeof(float));
        if (diff >= -cx->kappa) {
            float s = cx->targeted ? -cx->c[i] : cx->c[i];
            if (ir == y) dz[ir] += s;
            if (io != y) dz[io] -= s;
        }
    }
    return (double)cx->c[i] * f;
}

// One torchattacks CW run on nb images (chunk of the planned batch) with per-image c.
// best_l2 (nb): the smallest successful squared L2 (1e10 when none), best (nb, per) its image
// (x when none).
static void cw_run(const rcv_classifier *f, const float *x, const int32_t *y, int nb, const float *cvec,
                   const rcv_cw_cfg *c, float *w, float *m1, float *m2, float *adv, float *grad, float *z,
                   float *best, float *best_l2) {
    size_t per = rcv_classifier_per_image(f), total = (size_t)nb * per;
    int k = rcv_classifier_classes(f);
    float *loss = rcv_xmalloc((size_t)nb * sizeof(float));
    for (size_t e = 0; e < total; e++) {
        float v = x[e] * 2 - 1;
        v = v < -1 ? -1 : v > 1 ? 1 : v;
        w[e] = 0.5f * logf((1 + v) / (1 - v)); // atanh as torchattacks writes it: +-inf at 0 and 1
    }
    memset(m1, 0, total * sizeof(float));
    memset(m2, 0, total * sizeof(float));
    memcpy(best, x, total * sizeof(float));
    for (int i = 0; i < nb; i++) best_l2[i] = 1e10f;
    cw_loss_ctx cx = {y, cvec, c->kappa, c->targeted};
    double prev_cost = 1e10;
    int every = c->steps / 10 > 1 ? c->steps / 10 : 1;
    // Adam (torch.optim.Adam defaults: betas 0.9, 0.999, eps 1e-8), bias corrections in double.
    const double b1 = 0.9, b2 = 0.999;
    for (int t = 0; t < c->steps; t++) {
        for (size_t e = 0; e < total; e++) adv[e] = 0.5f * (tanhf(w[e]) + 1);
        rcv_classifier_grad(f, adv, nb, cw_loss, &cx, z, loss, grad);
        double cost = 0;
        for (int i = 0; i < nb; i++) {
            const float *a = adv + (size_t)i * per, *xi = x + (size_t)i * per;
            double l2 = 0;
            for (size_t e = 0; e < per; e++) l2 += (double)(a[e] - xi[e]) * (a[e] - xi[e]);
            cost += l2 + loss[i];
            int pred = rcv_argmax(z + (size_t)i * k, k);
            int ok = c->targeted ? pred == y[i] : pred != y[i];
            if (ok && best_l2[i] > (float)l2) {
                best_l2[i] = (float)l2;
                memcpy(best + (size_t)i * per, a, per * sizeof(float));
            }
        }
        double bc1 = 1 - pow(b1, t + 1), bc2s = sqrt(1 - pow(b2, t + 1));
        float step = (float)(c->lr / bc1), bc2f = (float)bc2s;
#pragma omp parallel for if (total > 65536) schedule(static)
        for (size_t e = 0; e < total; e++) {
            float th = tanhf(w[e]);
            // d cost / dx' = 2 (x' - x) + c J^T df/dz; dx'/dw = (1 - tanh^2) / 2
            float g = (2 * (adv[e] - x[e]) + grad[e]) * 0.5f * (1 - th * th);
            m1[e] = m1[e] * (float)b1 + g * (float)(1 - b1);
            m2[e] = m2[e] * (float)b2 + g * g * (float)(1 - b2);
            w[e] -= step * m1[e] / (sqrtf(m2[e]) / bc2f + 1e-8f);
        }
        if (t % every == 0) {
            if (cost > prev_cost) break;
            prev_cost = cost;
        }
    }
    free(loss);
}

int rcv_attack_cw(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_cw_cfg *c, float *x_adv) {
    if (rcv_classifier_check(f)) return -1;
    if (!(c->c > 0) || !isfinite(c->c))
        return rcv_fail("cw: c %g, expected a finite value > 0", c->c);
    if (!(c->kappa >= 0) || !isfinite(c->kappa)) return rcv_fail("cw: kappa %g, expected a finite value >= 0", c->kappa);
    if (!(c->lr > 0) || !isfinite(c->lr)) return rcv_fail("cw: lr %g, expected a finite value > 0", c->lr);
    if (c->steps < 0) return rcv_fail("cw: steps %d, expected >= 0", c->steps);
    if (c->binary_steps < 0) return rcv_fail("cw: binary steps %d, expected >= 0 (0 = fixed c)", c->binary_steps);
    int k = rcv_classifier_classes(f);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k) return rcv_fail("cw: label %d of image %d, expected 0..%d", y[i], i, k - 1);
    int b = f->models[0]->g->batch;
    size_t per = rcv_classifier_per_image(f), cap = (size_t)b * per;
    float *w = rcv_xmalloc(cap * sizeof(float)), *m1 = rcv_xmalloc(cap * sizeof(float));
    float *m2 = rcv_xmalloc(cap * sizeof(float)), *adv = rcv_xmalloc(cap * sizeof(float));
    float *grad = rcv_xmalloc(cap * sizeof(float)), *run = rcv_xmalloc(cap * sizeof(float));
    float *z = rcv_xmalloc((size_t)b * k * sizeof(float));
    float *cvec = rcv_xmalloc((size_t)b * sizeof(float)), *l2 = rcv_xmalloc((size_t)b * sizeof(float));
    float *o_l2 = rcv_xmalloc((size_t)b * sizeof(float));
    double *lo = rcv_xmalloc((size_t)b * sizeof(double)), *hi = rcv_xmalloc((size_t)b * sizeof(double));
    double *cd = rcv_xmalloc((size_t)b * sizeof(double));
    // The whole optimisation per chunk: its early stop judges the chunk's summed cost, as
    // torchattacks run with the planned batch as its batch size.
    for (int st = 0; st < n; st += b) {
        int nb = n - st < b ? n - st : b;
        const float *xc = x + (size_t)st * per;
        float *out = x_adv + (size_t)st * per;
        const int32_t *yc = y + st;
        for (int i = 0; i < nb; i++) cvec[i] = c->c, cd[i] = c->c, lo[i] = 0, hi[i] = 1e10;
        if (c->binary_steps == 0) {
            cw_run(f, xc, yc, nb, cvec, c, w, m1, m2, adv, grad, z, out, l2);
            continue;
        }
        // Carlini & Wagner's search: a run that succeeds lowers the upper bound, one that fails
        // raises the lower bound; c is bisected once an upper bound is known, else multiplied by
        // 10. The smallest L2 over all runs is kept.
        memcpy(out, xc, (size_t)nb * per * sizeof(float));
        for (int i = 0; i < nb; i++) o_l2[i] = 1e10f;
        for (int bs = 0; bs < c->binary_steps; bs++) {
            cw_run(f, xc, yc, nb, cvec, c, w, m1, m2, adv, grad, z, run, l2);
            for (int i = 0; i < nb; i++) {
                int ok = l2[i] < 1e10f;
                if (ok && l2[i] < o_l2[i]) {
                    o_l2[i] = l2[i];
                    memcpy(out + (size_t)i * per, run + (size_t)i * per, per * sizeof(float));
                }
                if (ok) {
                    hi[i] = fmin(hi[i], cd[i]);
                    if (hi[i] < 1e9) cd[i] = (lo[i] + hi[i]) / 2;
                } else {
                    lo[i] = fmax(lo[i], cd[i]);
                    cd[i] = hi[i] < 1e9 ? (lo[i] + hi[i]) / 2 : cd[i] * 10;
                }
                cvec[i] = (float)cd[i];
            }
        }
    }
    free(w), free(m1), free(m2), free(adv), free(grad), free(run), free(z);
    free(cvec), free(l2), free(o_l2), free(lo), free(hi), free(cd);
    return 0;
}
