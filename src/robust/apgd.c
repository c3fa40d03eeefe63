// APGD (Croce & Hein 2020) in L-inf and L2 with the CE, DLR and targeted-DLR losses, following
// fra31/auto-attack's autopgd_base.py and torchattacks 3.5.1's APGD / APGDT operation for
// operation (float32, the same order), so the oracle test agrees with them to float precision.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"

void rcv_apgd_defaults(rcv_apgd_cfg *c, rcv_norm norm, rcv_apgd_loss loss) {
    memset(c, 0, sizeof *c);
    c->norm = norm;
    c->eps = norm == RCV_NORM_L2 ? 0.5f : 8.0f / 255.0f;
    c->n_iter = 100;
    c->n_restarts = 1;
    c->rho = 0.75f;
    c->loss = loss;
    c->n_target_classes = 9;
    c->eot_iter = 1;
}

// The reference's n_iter_2, n_iter_min, size_decr.
static void schedule(int n_iter, int *k0, int *kmin, int *decr) {
    *k0 = (int)(0.22 * n_iter), *kmin = (int)(0.06 * n_iter), *decr = (int)(0.03 * n_iter);
    if (*k0 < 1) *k0 = 1;
    if (*kmin < 1) *kmin = 1;
    if (*decr < 1) *decr = 1;
}

int rcv_apgd_checkpoints(int n_iter, int *out, int max) {
    int k, kmin, decr, cnt = 0;
    schedule(n_iter, &k, &kmin, &decr);
    for (int it = k; it <= n_iter;) {
        if (cnt < max) out[cnt] = it;
        cnt++;
        k = k - decr > kmin ? k - decr : kmin;
        it += k;
    }
    return cnt;
}

// Per-sample loss of the gathered points (rcv_logit_loss_fn).
typedef struct {
    rcv_apgd_loss loss;
    const int32_t *y, *t; // (m) labels, targets (dlr_t)
} loss_ctx;

static double apgd_loss(void *ctx, int i, const float *z, int k, float *dz) {
    const loss_ctx *c = ctx;
    switch (c->loss) {
    case RCV_APGD_CE: return rcv_loss_ce(z, k, c->y[i], dz);
    case RCV_APGD_DLR: return rcv_loss_dlr(z, k, c->y[i], dz);
    default: return rcv_loss_dlr_targeted(z, k, c->y[i], c->t[i], dz);
    }
}

// Working memory of one run on m <= n points (allocated once for n).
typedef struct {
    float *x, *x_adv, *x_old, *x_best, *x_best_adv, *grad, *grad_best, *g1; // (m, per)
    float *z, *loss, *loss_best, *loss_last, *step, *loss_steps;           // (m, K), (m) .., (n_iter, m)
    int32_t *y, *t, *idx;
    uint8_t *acc, *reduced, *fl;
} run_buf;

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

// ||v||_2 of per floats, summed in double (PyTorch sums float32 in its own order: the two agree
// to the last bit or two).
static float l2norm(const float *v, size_t per) {
    double s = 0;
    for (size_t e = 0; e < per; e++) s += (double)v[e] * v[e];
    return (float)sqrt(s);
}

// x1 (per) <- clamp(x + d / (||d|| + 1e-12) * min(eps, ||d|| + tiny), 0, 1), d = x1 - x: the
// reference's L2 projection (tiny is 0 in the first projection of a step, 1e-12 in the second).
static void project_l2(float *x1, const float *x, size_t per, float eps, float tiny) {
    for (size_t e = 0; e < per; e++) x1[e] = x1[e] - x[e];
    float dn = l2norm(x1, per), s = fminf(eps, dn + tiny), den = dn + 1e-12f;
    for (size_t e = 0; e < per; e++) x1[e] = clampf(x[e] + x1[e] / den * s, 0, 1);
}

// Gradient (averaged over eot draws), logits and losses of the m points at b->x_adv.
static void grad_at(const rcv_classifier *f, run_buf *b, int m, size_t per, int eot, loss_ctx *lc) {
    size_t tot = (size_t)m * per;
    if (eot == 1) {
        rcv_classifier_grad(f, b->x_adv, m, apgd_loss, lc, b->z, b->loss, b->grad);
        return;
    }
    memset(b->grad, 0, tot * sizeof(float));
    for (int r = 0; r < eot; r++) { // logits and losses: the last draw's, as the reference
        rcv_classifier_grad(f, b->x_adv, m, apgd_loss, lc, b->z, b->loss, b->g1);
#pragma omp parallel for if (tot > 65536)
        for (size_t e = 0; e < tot; e++) b->grad[e] += b->g1[e];
    }
#pragma omp parallel for if (tot > 65536)
    for (size_t e = 0; e < tot; e++) b->grad[e] /= (float)eot;
}

// One attack_single_run on the m gathered points (b->x, b->y, b->t; b->x_adv holds the start).
// Leaves b->acc (0: misclassified at some iterate) and b->x_best_adv.
static void apgd_run(const rcv_classifier *f, run_buf *b, int m, size_t per, const rcv_apgd_cfg *c) {
    int K = rcv_classifier_classes(f), N = c->n_iter, k, kmin, decr;
    schedule(N, &k, &kmin, &decr);
    size_t tot = (size_t)m * per;
    float eps = c->eps;
    loss_ctx lc = {c->loss, b->y, b->t};
    // The reference compares with k * rho in double: take rho as the decimal the user wrote
    // (0.7f -> 0.7, not 0.699999988), so that up <= k * rho decides as it does there.
    char rb[32];
    snprintf(rb, sizeof rb, "%.7g", c->rho);
    double rho = strtod(rb, NULL);
    memcpy(b->x_best, b->x_adv, tot * sizeof(float));
    memcpy(b->x_best_adv, b->x_adv, tot * sizeof(float));
    memset(b->loss_steps, 0, (size_t)(N > 0 ? N : 1) * m * sizeof(float));
    grad_at(f, b, m, per, c->eot_iter, &lc);
    memcpy(b->grad_best, b->grad, tot * sizeof(float));
    for (int i = 0; i < m; i++) {
        b->acc[i] = rcv_argmax(b->z + (size_t)i * K, K) == b->y[i];
        b->loss_best[i] = b->loss_last[i] = b->loss[i];
        b->step[i] = 2.0f * eps;
        b->reduced[i] = 1; // the reference starts with reduced_last_check all True
    }
    memcpy(b->x_old, b->x_adv, tot * sizeof(float));
    int counter = 0;
    for (int it = 0; it < N; it++) {
        const float a = it > 0 ? 0.75f : 1.0f;
#pragma omp parallel for schedule(static) if (tot > 65536)
        for (int i = 0; i < m; i++) {
            float *xa = b->x_adv + (size_t)i * per, *xo = b->x_old + (size_t)i * per, *g = b->grad + (size_t)i * per;
            float *z1 = b->g1 + (size_t)i * per;
            const float *x0 = b->x + (size_t)i * per;
            float st = b->step[i];
            if (c->norm == RCV_NORM_LINF) {
                for (size_t e = 0; e < per; e++) {
                    float lo = x0[e] - eps, hi = x0[e] + eps, g2 = xa[e] - xo[e];
                    float v = xa[e] + st * rcv_signf(g[e]);
                    v = clampf(fminf(fmaxf(v, lo), hi), 0, 1);
                    v = xa[e] + (v - xa[e]) * a + g2 * (1 - a);
                    xo[e] = xa[e];
                    xa[e] = clampf(fminf(fmaxf(v, lo), hi), 0, 1);
                }
            } else {
                float gn = l2norm(g, per) + 1e-12f;
                for (size_t e = 0; e < per; e++) z1[e] = xa[e] + st * g[e] / gn;
                project_l2(z1, x0, per, eps, 0);
                for (size_t e = 0; e < per; e++) {
                    float g2 = xa[e] - xo[e];
                    xo[e] = xa[e];
                    z1[e] = xa[e] + (z1[e] - xa[e]) * a + g2 * (1 - a);
                }
                project_l2(z1, x0, per, eps, 1e-12f);
                memcpy(xa, z1, per * sizeof(float));
            }
        }
        grad_at(f, b, m, per, c->eot_iter, &lc);
        float *ls = b->loss_steps + (size_t)it * m;
        for (int i = 0; i < m; i++) {
            size_t o = (size_t)i * per;
            if (rcv_argmax(b->z + (size_t)i * K, K) != b->y[i]) {
                b->acc[i] = 0;
                memcpy(b->x_best_adv + o, b->x_adv + o, per * sizeof(float));
            }
            ls[i] = b->loss[i];
            if (b->loss[i] > b->loss_best[i]) {
                memcpy(b->x_best + o, b->x_adv + o, per * sizeof(float));
                memcpy(b->grad_best + o, b->grad + o, per * sizeof(float));
                b->loss_best[i] = b->loss[i];
            }
        }
        if (++counter < k) continue;
        // Checkpoint: count the increases among the last k steps (the reference reads
        // loss_steps[it - k] with Python's wrap-around, i.e. row N - 1, zero until the last step).
        for (int i = 0; i < m; i++) {
            int up = 0;
            for (int s = 0; s < k; s++) {
                int j = it - s, jp = j - 1 < 0 ? j - 1 + N : j - 1;
                up += b->loss_steps[(size_t)j * m + i] > b->loss_steps[(size_t)jp * m + i];
            }
            int osc = up <= k * rho;
            int no_impr = !b->reduced[i] && b->loss_last[i] >= b->loss_best[i];
            b->fl[i] = (uint8_t)(osc || no_impr);
            b->reduced[i] = b->fl[i];
            b->loss_last[i] = b->loss_best[i];
            if (b->fl[i]) {
                size_t o = (size_t)i * per;
                b->step[i] /= 2.0f;
                memcpy(b->x_adv + o, b->x_best + o, per * sizeof(float));
                memcpy(b->grad + o, b->grad_best + o, per * sizeof(float));
            }
        }
        counter = 0;
        k = k - decr > kmin ? k - decr : kmin;
    }
}

// Random start of the m gathered points into b->x_adv.
static void random_start(run_buf *b, int m, size_t per, const rcv_apgd_cfg *c, rcv_rng *rng) {
    size_t tot = (size_t)m * per;
    if (c->norm == RCV_NORM_LINF) rcv_rng_fill_uniform(rng, b->g1, tot, -1, 1);
    else rcv_rng_fill_normal(rng, b->g1, tot, 0, 1);
#pragma omp parallel for if (tot > 65536)
    for (int i = 0; i < m; i++) {
        const float *t = b->g1 + (size_t)i * per, *x0 = b->x + (size_t)i * per;
        float *xa = b->x_adv + (size_t)i * per, nrm = 0;
        if (c->norm == RCV_NORM_LINF)
            for (size_t e = 0; e < per; e++) nrm = fmaxf(nrm, fabsf(t[e]));
        else nrm = l2norm(t, per) + 1e-12f;
        for (size_t e = 0; e < per; e++) xa[e] = clampf(x0[e] + c->eps * t[e] / nrm, 0, 1);
    }
}

int rcv_attack_apgd(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_apgd_cfg *c,
                    rcv_rng *rng, float *x_adv, uint8_t *robust) {
    if (rcv_classifier_check(f)) return -1;
    int K = rcv_classifier_classes(f);
    if (!(c->eps >= 0) || !isfinite(c->eps))
        return rcv_fail("apgd: eps %g, expected a finite value >= 0", c->eps);
    if (c->norm != RCV_NORM_LINF && c->norm != RCV_NORM_L2)
        return rcv_fail("apgd: norm %d, expected linf (%d) or l2 (%d)", c->norm, RCV_NORM_LINF, RCV_NORM_L2);
    if (c->n_iter < 0 || c->n_restarts < 1 || c->eot_iter < 1 || !(c->rho >= 0 && c->rho <= 1))
        return rcv_fail("apgd: n_iter %d, n_restarts %d, eot_iter %d, rho %g: expected n_iter >= 0, n_restarts >= 1, "
                        "eot_iter >= 1, 0 <= rho <= 1", c->n_iter, c->n_restarts, c->eot_iter, c->rho);
    if (c->loss != RCV_APGD_CE && c->loss != RCV_APGD_DLR && c->loss != RCV_APGD_DLR_T)
        return rcv_fail("apgd: loss %d, expected ce, dlr or dlr_t", c->loss);
    if (c->loss == RCV_APGD_DLR && K < 3) return rcv_fail("apgd: the dlr loss needs >= 3 classes, the model has %d", K);
    if (c->loss == RCV_APGD_DLR_T && (K < 4 || c->n_target_classes < 1 || c->n_target_classes >= K))
        return rcv_fail("apgd: n_target_classes %d with %d classes: targeted dlr needs >= 4 classes and "
                        "1 <= n_target_classes <= %d", c->n_target_classes, K, K - 1);
    if (n < 0) return rcv_fail("apgd: n %d images, expected >= 0", n);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= K) return rcv_fail("apgd: label %d of image %d, expected 0..%d", y[i], i, K - 1);
    size_t per = rcv_classifier_per_image(f), tot = (size_t)n * per;
    memcpy(x_adv, x, tot * sizeof(float));
    if (n == 0) return 0;

    // Clean predictions: only the correctly classified points are attacked.
    float *zc = rcv_xmalloc((size_t)n * K * sizeof(float));
    rcv_classifier_logits(f, x, n, zc);
    uint8_t *acc = rcv_xmalloc((size_t)n);
    for (int i = 0; i < n; i++) acc[i] = rcv_argmax(zc + (size_t)i * K, K) == y[i];

    run_buf b;
    size_t ni = (size_t)(c->n_iter > 0 ? c->n_iter : 1);
    float **bufs[8] = {&b.x, &b.x_adv, &b.x_old, &b.x_best, &b.x_best_adv, &b.grad, &b.grad_best, &b.g1};
    for (int j = 0; j < 8; j++) *bufs[j] = rcv_xmalloc(tot * sizeof(float));
    b.z = rcv_xmalloc((size_t)n * K * sizeof(float));
    float **vec[4] = {&b.loss, &b.loss_best, &b.loss_last, &b.step};
    for (int j = 0; j < 4; j++) *vec[j] = rcv_xmalloc((size_t)n * sizeof(float));
    b.loss_steps = rcv_xmalloc(ni * n * sizeof(float));
    b.y = rcv_xmalloc((size_t)n * sizeof(int32_t));
    b.t = rcv_xmalloc((size_t)n * sizeof(int32_t));
    b.idx = rcv_xmalloc((size_t)n * sizeof(int32_t));
    b.acc = rcv_xmalloc((size_t)n), b.reduced = rcv_xmalloc((size_t)n), b.fl = rcv_xmalloc((size_t)n);
    int *order = rcv_xmalloc((size_t)K * sizeof(int));

    // Later runs (APGD-T's targets, restarts) see few points: re-plan to them rather than pad
    // (replan.c), and give the caller back its batch.
    int full = rcv_classifier_batch(f), rc = 0;
    int n_targets = c->loss == RCV_APGD_DLR_T ? c->n_target_classes : 1;
    for (int tc = 0; tc < n_targets && !rc; tc++) {
        for (int r = 0; r < c->n_restarts; r++) {
            int m = 0;
            for (int i = 0; i < n; i++)
                if (acc[i]) b.idx[m++] = i;
            if (!m) break;
            const float *init = c->x_init ? c->x_init + (size_t)(tc * c->n_restarts + r) * tot : NULL;
            for (int j = 0; j < m; j++) {
                int i = b.idx[j];
                memcpy(b.x + (size_t)j * per, x + (size_t)i * per, per * sizeof(float));
                b.y[j] = y[i];
                if (init)
                    for (size_t e = 0; e < per; e++) b.x_adv[(size_t)j * per + e] = clampf(init[(size_t)i * per + e], 0, 1);
                if (c->loss == RCV_APGD_DLR_T) {
                    // Target: the (tc + 2)-th largest clean logit (torch.sort ascending, index -(tc + 2)).
                    const float *zi = zc + (size_t)i * K;
                    for (int q = 0; q < K; q++) order[q] = q;
                    for (int q = 0; q < tc + 2; q++) // partial selection sort, descending
                        for (int s = q + 1; s < K; s++)
                            if (zi[order[s]] > zi[order[q]]) {
                                int tmp = order[q];
                                order[q] = order[s], order[s] = tmp;
                            }
                    b.t[j] = order[tc + 1];
                }
            }
            if (!init) random_start(&b, m, per, c, rng);
            if ((rc = rcv_classifier_fit(f, m, full))) break;
            apgd_run(f, &b, m, per, c);
            for (int j = 0; j < m; j++) {
                if (b.acc[j]) continue;
                int i = b.idx[j];
                acc[i] = 0;
                memcpy(x_adv + (size_t)i * per, b.x_best_adv + (size_t)j * per, per * sizeof(float));
            }
        }
    }
    if (rcv_classifier_batch(f) != full && rcv_classifier_replan(f, full)) rc = -1;
    if (robust) memcpy(robust, acc, (size_t)n);
    for (int j = 0; j < 8; j++) free(*bufs[j]);
    for (int j = 0; j < 4; j++) free(*vec[j]);
    free(b.z), free(b.loss_steps), free(b.y), free(b.t), free(b.idx), free(b.acc), free(b.reduced), free(b.fl);
    free(order), free(zc), free(acc);
    return rc;
}
