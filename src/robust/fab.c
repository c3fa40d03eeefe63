// FAB-T (Croce & Hein 2020, "Minimally distorted adversarial examples with a fast adaptive boundary
// attack"), the targeted version AutoAttack runs: for each of the n_target_classes runner-up classes
// t (the 2nd .. (n_target_classes + 1)-th largest clean logits), on the points still robust, n_iter
// steps of
//   f = z_t - z_y, w = grad_x f (one backward), b = <w, x1> - f     (the linearized boundary w.x = b)
//   d1 = proj(x1), d2 = proj(x0): smallest-norm steps onto {w.x = b} within the box [0, 1]
//   alpha = min(max(a1 / (a1 + a2), 0), alpha_max), a = ||d|| (floored at 1e-8)
//   x1 = clamp((x1 + eta d1)(1 - alpha) + (x0 + eta d2) alpha, 0, 1)
//   if x1 is misclassified: keep it when ||x1 - x0|| is the smallest yet, x1 = x0 + beta (x1 - x0)
// as fra31/auto-attack's fab_pt.py and torchattacks' FAB(multi_targeted=True) do; the projections
// are theirs (projection_linf, projection_l2). Restart r > 0 starts from
// x0 + min(res, eps) t / ||t|| / 2 (t uniform in [-1, 1] for L-inf, Gaussian for L2), clamped.
//
// Robust accuracy only asks whether a point has an adversarial example within eps: the reference
// keeps shrinking the norm after that, but a point's smallest norm never grows again and points
// never interact (eval mode), so a point leaves the batch as soon as it has one within eps. The
// verdict per point is the reference's; x_adv may have a larger norm than the reference's (still
// <= eps).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"

void rcv_fab_defaults(rcv_fab_cfg *c, rcv_norm norm) {
    memset(c, 0, sizeof *c);
    c->norm = norm;
    c->eps = norm == RCV_NORM_L2 ? 0.5f : 8.0f / 255.0f;
    c->n_iter = 100;
    c->n_restarts = 1;
    c->n_target_classes = 9;
    c->alpha_max = 0.1f;
    c->eta = 1.05f;
    c->beta = 0.9f;
    c->targeted = 1;
}

typedef struct {
    double key;
    int i;
} key_idx;

// Scratch of one projection of n coordinates.
typedef struct {
    double *w, *a, *p, *s, *sb;
    int *idx;
    key_idx *kp; // (n) pairs for the sort
} proj_scratch;

static void scratch_init(proj_scratch *s, size_t n) {
    s->w = rcv_xmalloc(n * sizeof(double));
    s->a = rcv_xmalloc(n * sizeof(double));
    s->p = rcv_xmalloc(n * sizeof(double));
    s->s = rcv_xmalloc((n + 1) * sizeof(double));
    s->sb = rcv_xmalloc((n + 1) * sizeof(double));
    s->idx = rcv_xmalloc(n * sizeof(int));
    s->kp = rcv_xmalloc(n * sizeof(key_idx));
}

static void scratch_free(proj_scratch *s) {
    free(s->w), free(s->a), free(s->p), free(s->s), free(s->sb), free(s->idx), free(s->kp);
}

// Indices 0..n-1 sorted by key ascending (ties by index, so the result is deterministic); kp is
// n pairs of scratch (qsort has no context argument, so the key travels with the index).
static int by_key(const void *a, const void *b) {
    const key_idx *u = a, *v = b;
    return u->key < v->key ? -1 : u->key > v->key ? 1 : (u->i > v->i) - (u->i < v->i);
}
static void argsort(const double *key, int *idx, int n, key_idx *kp) {
    for (int i = 0; i < n; i++) kp[i].key = key[i], kp[i].i = i;
    qsort(kp, (size_t)n, sizeof *kp, by_key);
    for (int i = 0; i < n; i++) idx[i] = kp[i].i;
}

// L-inf: the smallest-norm d with <w, t + d> = b and t + d in [0, 1]^n (the box's corner nearest
// the hyperplane when it cannot be reached). Every coordinate moves by lambda towards its corner
// (a_i = 1 where w_i < 0 after orienting w so that <w, t> >= b) until it hits the box; the change of
// <w, x> is piecewise linear in lambda with kinks at p_i = |a_i - t_i|, found by bisection over the
// kinks in decreasing order, as fab's projection_linf.
void rcv_fab_project_linf(const float *t, const float *w_in, float b_in, int n, float *d, void *scratch) {
    proj_scratch *S = scratch;
    double *w = S->w, *a = S->a, *p = S->p, *s = S->s, *sb = S->sb;
    int *idx = S->idx;
    double wt = 0;
    for (int i = 0; i < n; i++) wt += (double)w_in[i] * t[i];
    double sg = wt - b_in >= 0 ? 1 : -1, b = sg * b_in, b0 = 0;
    for (int i = 0; i < n; i++) {
        w[i] = sg * w_in[i];
        a[i] = w[i] < 0;
        d[i] = w[i] != 0 ? (float)(a[i] - t[i]) : 0;
        p[i] = a[i] ? 1.0 - t[i] : t[i];
        b0 += w[i] * d[i];
    }
    b -= sg * wt; // the change of <w, x> needed (<= 0)
    argsort(p, idx, n, S->kp);
    // Position j of the decreasing order holds idx[n-1-j]: s = sum |w|, sb = b0 - sum w d over 0..j.
    double cs = 0, cb = b0;
    for (int j = 0; j < n; j++) {
        int q = idx[n - 1 - j];
        cs += fabs(w[q]), cb -= w[q] * d[q];
        s[j] = cs, sb[j] = cb;
    }
    double b2 = sb[n - 1] - s[n - 1] * p[idx[0]];
    if (b - b2 > 0) { // reached before any coordinate hits the box
        double lam = s[n - 1] > 0 ? fmax((b - sb[n - 1]) / -s[n - 1], 0) : 0;
        for (int i = 0; i < n; i++) d[i] = w[i] != 0 ? (float)((2 * a[i] - 1) * lam) : 0;
        return;
    }
    if (!(b - b0 > 0)) { // unreachable: the corner
        return;
    }
    int lb = 0, ub = n - 1, nitermax = (int)ceil(log2((double)n));
    for (int it = 0; it < nitermax; it++) {
        int c4 = (lb + ub) / 2;
        double b2c = sb[c4] - s[c4] * p[idx[n - 1 - c4]];
        if (b - b2c > 0) lb = c4;
        else ub = c4;
    }
    double lam = s[lb] > 0 ? fmax((b - sb[lb]) / -s[lb], 0) : 0;
    for (int i = 0; i < n; i++) {
        if (w[i] == 0) {
            d[i] = 0;
            continue;
        }
        double di = d[i];
        d[i] = (float)(a[i] ? fmin(lam, di) : fmax(-lam, di));
    }
}

// L2: d = clamp(-alpha w, -t, 1 - t) with the alpha that makes <w, t + d> = b (w oriented so that
// c = <w, t> - b >= 0); coordinate i saturates at alpha r_i, the change of <w, x> is piecewise
// linear in alpha with kinks at the sorted r, found by bisection, as fab's projection_l2.
void rcv_fab_project_l2(const float *t, const float *w_in, float b_in, int n, float *d, void *scratch) {
    proj_scratch *S = scratch;
    double *w = S->w, *r = S->a, *ws = S->p, *s = S->s, *rs = S->sb;
    int *idx = S->idx;
    double c = 0;
    for (int i = 0; i < n; i++) c += (double)w_in[i] * t[i];
    c -= b_in;
    double sg = c >= 0 ? 1 : -1, w5 = 0, dw = 0;
    c *= sg;
    for (int i = 0; i < n; i++) {
        w[i] = sg * w_in[i];
        if (fabs(w[i]) < 1e-8) r[i] = 1e12;
        else {
            double ri = fmax(t[i] / w[i], (t[i] - 1.0) / w[i]);
            r[i] = ri > 1e12 ? 1e12 : ri < -1e12 ? 1e12 : ri;
        }
        w5 += w[i] * w[i];
        d[i] = fabs(w[i]) > 1e-8 ? (float)(-r[i] * w[i]) : 0;
        dw += (double)d[i] * w[i];
    }
    argsort(r, idx, n, S->kp);
    // rs: sorted r with the 1e12 markers (|w| ~ 0) read as 0; ws[j] = sum of w^2 past position j;
    // s[j] = change of <w, x> at alpha = rs[j].
    double cum = 0;
    for (int j = 0; j < n; j++) {
        double rj = r[idx[j]];
        rs[j] = rj == 1e12 ? 0 : rj;
        cum += w[idx[j]] * w[idx[j]];
        ws[j] = w5 - cum;
    }
    s[0] = -w5 * rs[0];
    double acc = 0;
    for (int j = 0; j < n - 1; j++) {
        acc += (rs[j] - rs[j + 1]) * ws[j];
        s[j + 1] = acc - w5 * rs[0];
    }
    if (s[0] + c < 0) { // reached before any coordinate saturates
        double al = w5 > 0 ? c / w5 : 0;
        for (int i = 0; i < n; i++) d[i] = fabs(w[i]) > 1e-8 ? (float)(-al * w[i]) : 0;
        return;
    }
    if (dw + c > 0) return; // unreachable: every coordinate saturated
    int lb = 0, ub = n - 1, nitermax = (int)ceil(log2((double)n));
    for (int it = 0; it < nitermax; it++) {
        int c4 = (lb + ub) / 2;
        if (s[c4] + c > 0) lb = c4;
        else ub = c4;
    }
    double al = ws[lb] == 0 ? 0 : (s[lb] + c) / ws[lb] + rs[lb];
    for (int i = 0; i < n; i++) {
        if (!(fabs(w[i]) > 1e-8)) d[i] = 0;
        else if (!(al > r[i])) d[i] = (float)(-al * w[i]);
    }
}

void *rcv_fab_scratch_new(int n) {
    proj_scratch *s = rcv_xmalloc(sizeof *s);
    scratch_init(s, (size_t)n);
    return s;
}
void rcv_fab_scratch_free(void *s) {
    if (!s) return;
    scratch_free(s);
    free(s);
}

// The L-inf maxima compare instead of calling fmax: aarch64 GCC 12's vectoriser stops with an
// internal compiler error on an fmax reduction over floats widened to double. NaNs are skipped
// either way.
static double vnorm(const float *v, size_t n, rcv_norm norm) {
    double m = 0;
    if (norm == RCV_NORM_LINF)
        for (size_t e = 0; e < n; e++) {
            double a = fabs((double)v[e]);
            m = a > m ? a : m;
        }
    else {
        for (size_t e = 0; e < n; e++) m += (double)v[e] * v[e];
        m = sqrt(m);
    }
    return m;
}

static double dist(const float *a, const float *b, size_t n, rcv_norm norm) {
    double m = 0;
    for (size_t e = 0; e < n; e++) {
        double v = (double)a[e] - b[e];
        if (norm == RCV_NORM_LINF) m = fabs(v) > m ? fabs(v) : m;
        else m += v * v;
    }
    return norm == RCV_NORM_LINF ? m : sqrt(m);
}

// f = z_t - z_y of the active points (ctx: their labels and targets, in batch order).
typedef struct {
    const int32_t *y, *t;
} fab_loss_ctx;
static double fab_loss(void *ctx, int i, const float *z, int k, float *dz) {
    const fab_loss_ctx *c = ctx;
    int y = c->y[i], t = c->t[i];
    if (dz) {
        memset(dz, 0, (size_t)k * sizeof(float));
        dz[t] += 1, dz[y] -= 1;
    }
    return (double)z[t] - z[y];
}

// One FAB-T run on the m points listed in `pts` (all robust so far), towards targets tgt (per
// point of pts). Writes x_adv and clears robust for each point that gets an adversarial example
// within eps. 0, or -1 when re-planning for fewer points failed.
static int fab_run(const rcv_classifier *f, const float *x, const int32_t *y, const int32_t *tgt_all, const int *pts,
                   int m, const rcv_fab_cfg *c, int rand_start, rcv_rng *rng, float *x_adv, uint8_t *robust,
                   int full) {
    size_t per = rcv_classifier_per_image(f);
    int k = rcv_classifier_classes(f), np = (int)per;
    // Per point of the run (index j < m): its clean image, iterate, best adversarial and its norm.
    float *x0 = rcv_xmalloc((size_t)m * per * sizeof(float)), *x1 = rcv_xmalloc((size_t)m * per * sizeof(float));
    float *best = rcv_xmalloc((size_t)m * per * sizeof(float));
    double *res = rcv_xmalloc((size_t)m * sizeof(double));
    // The active subset, packed: images, gradients, labels, targets, logits, the run index.
    float *xa = rcv_xmalloc((size_t)m * per * sizeof(float)), *ga = rcv_xmalloc((size_t)m * per * sizeof(float));
    float *fa = rcv_xmalloc((size_t)m * sizeof(float)), *za = rcv_xmalloc((size_t)m * k * sizeof(float));
    int32_t *ya = rcv_xmalloc((size_t)m * sizeof(int32_t)), *ta = rcv_xmalloc((size_t)m * sizeof(int32_t));
    int *act = rcv_xmalloc((size_t)m * sizeof(int));
    for (int j = 0; j < m; j++) {
        memcpy(x0 + (size_t)j * per, x + (size_t)pts[j] * per, per * sizeof(float));
        res[j] = 1e10;
        act[j] = j;
    }
    memcpy(x1, x0, (size_t)m * per * sizeof(float));
    if (rand_start) {
        // res is 1e10 here, so min(res, eps) = eps: a start half-way to the eps sphere.
        float *tr = xa;
        if (c->norm == RCV_NORM_LINF) rcv_rng_fill_uniform(rng, tr, (size_t)m * per, -1, 1);
        else rcv_rng_fill_normal(rng, tr, (size_t)m * per, 0, 1);
        for (int j = 0; j < m; j++) {
            float *tj = tr + (size_t)j * per;
            double nn = vnorm(tj, per, c->norm), sc = nn > 0 ? c->eps * 0.5 / nn : 0;
            for (size_t e = 0; e < per; e++) {
                size_t o = (size_t)j * per + e;
                x1[o] = rcv_clamp01((float)(x0[o] + sc * tj[e]));
            }
        }
    }
    int na = m, rc = 0;
    fab_loss_ctx lc = {ya, ta};
    for (int it = 0; it < c->n_iter && na > 0; it++) {
        if ((rc = rcv_classifier_fit(f, na, full))) break;
        for (int q = 0; q < na; q++) {
            int j = act[q];
            memcpy(xa + (size_t)q * per, x1 + (size_t)j * per, per * sizeof(float));
            ya[q] = y[pts[j]], ta[q] = tgt_all[pts[j]];
        }
        rcv_classifier_grad(f, xa, na, fab_loss, &lc, NULL, fa, ga);
#pragma omp parallel
        {
            proj_scratch S;
            scratch_init(&S, per);
            float *d1 = rcv_xmalloc(per * sizeof(float)), *d2 = rcv_xmalloc(per * sizeof(float));
#pragma omp for schedule(dynamic, 4)
            for (int q = 0; q < na; q++) {
                int j = act[q];
                float *xq = xa + (size_t)q * per, *w = ga + (size_t)q * per;
                const float *x0j = x0 + (size_t)j * per;
                double wx = 0;
                for (size_t e = 0; e < per; e++) wx += (double)w[e] * xq[e];
                float b = (float)(wx - fa[q]);
                if (c->norm == RCV_NORM_LINF) {
                    rcv_fab_project_linf(xq, w, b, np, d1, &S);
                    rcv_fab_project_linf(x0j, w, b, np, d2, &S);
                } else {
                    rcv_fab_project_l2(xq, w, b, np, d1, &S);
                    rcv_fab_project_l2(x0j, w, b, np, d2, &S);
                }
                double a1 = fmax(vnorm(d1, per, c->norm), 1e-8), a2 = fmax(vnorm(d2, per, c->norm), 1e-8);
                double al = fmin(fmax(a1 / (a1 + a2), 0), c->alpha_max);
                for (size_t e = 0; e < per; e++)
                    xq[e] = rcv_clamp01((float)((xq[e] + c->eta * d1[e]) * (1 - al) + (x0j[e] + c->eta * d2[e]) * al));
            }
            scratch_free(&S);
            free(d1);
            free(d2);
        }
        rcv_classifier_logits(f, xa, na, za);
        int kept = 0;
        for (int q = 0; q < na; q++) {
            int j = act[q];
            float *xq = xa + (size_t)q * per, *x1j = x1 + (size_t)j * per;
            const float *x0j = x0 + (size_t)j * per;
            if (rcv_argmax(za + (size_t)q * k, k) != ya[q]) {
                double t = dist(xq, x0j, per, c->norm);
                if (t < res[j]) {
                    res[j] = t;
                    memcpy(best + (size_t)j * per, xq, per * sizeof(float));
                }
                for (size_t e = 0; e < per; e++) xq[e] = x0j[e] + (xq[e] - x0j[e]) * c->beta;
            }
            memcpy(x1j, xq, per * sizeof(float));
            if (!(res[j] <= c->eps)) act[kept++] = j; // done once it has an adversarial example within eps
        }
        na = kept;
    }
    for (int j = 0; j < m; j++)
        if (res[j] <= c->eps) {
            memcpy(x_adv + (size_t)pts[j] * per, best + (size_t)j * per, per * sizeof(float));
            robust[pts[j]] = 0;
        }
    free(x0), free(x1), free(best), free(res), free(xa), free(ga), free(fa), free(za), free(ya), free(ta), free(act);
    return rc;
}

int rcv_attack_fab(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_fab_cfg *c, rcv_rng *rng,
                   float *x_adv, uint8_t *robust) {
    if (rcv_classifier_check(f)) return -1;
    int k = rcv_classifier_classes(f);
    if (c->norm != RCV_NORM_LINF && c->norm != RCV_NORM_L2)
        return rcv_fail("fab: norm %d, expected linf (0) or l2 (2)", (int)c->norm);
    if (!(c->eps >= 0) || !isfinite(c->eps)) return rcv_fail("fab: eps %g, expected a finite value >= 0", c->eps);
    if (c->n_iter < 0 || c->n_restarts < 1)
        return rcv_fail("fab: n_iter %d, n_restarts %d: expected n_iter >= 0 and n_restarts >= 1", c->n_iter,
                        c->n_restarts);
    if (!(c->alpha_max >= 0 && c->alpha_max <= 1) || !(c->eta > 0) || !isfinite(c->eta) ||
        !(c->beta >= 0 && c->beta <= 1))
        return rcv_fail("fab: alpha_max %g, eta %g, beta %g: expected alpha_max and beta in [0, 1], eta > 0",
                        c->alpha_max, c->eta, c->beta);
    if (!c->targeted) return rcv_fail("fab: targeted %d: only FAB-T (targeted 1) is implemented", c->targeted);
    if (c->n_target_classes < 1 || c->n_target_classes > k - 1)
        return rcv_fail("fab: n_target_classes %d, expected 1 .. %d (the classes but the true one)",
                        c->n_target_classes, k - 1);
    if (n < 0) return rcv_fail("fab: n %d images, expected >= 0", n);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k) return rcv_fail("fab: label %d of image %d, expected 0 .. %d", y[i], i, k - 1);
    size_t per = rcv_classifier_per_image(f);
    memcpy(x_adv, x, (size_t)n * per * sizeof(float));
    float *z = rcv_xmalloc((size_t)(n > 0 ? n : 1) * k * sizeof(float));
    rcv_classifier_logits(f, x, n, z);
    uint8_t *rob = robust ? robust : rcv_xmalloc((size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) rob[i] = rcv_argmax(z + (size_t)i * k, k) == y[i];
    // Targets: the rank-th largest clean logit (rank 2 .. n_target_classes + 1), torch.sort's order.
    int32_t *tgt = rcv_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    int *pts = rcv_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    int batch = rcv_classifier_batch(f), rc = 0;
    for (int rank = 2; rank <= c->n_target_classes + 1 && !rc; rank++) {
        for (int r = 0; r < c->n_restarts && !rc; r++) {
            int m = 0;
            for (int i = 0; i < n; i++) {
                if (!rob[i]) continue;
                const float *zi = z + (size_t)i * k;
                // the class with exactly rank-1 logits above it (ties: the lower index ranks higher)
                for (int j = 0; j < k; j++) {
                    int above = 0;
                    for (int l = 0; l < k; l++) above += zi[l] > zi[j] || (zi[l] == zi[j] && l < j);
                    if (above == rank - 1) tgt[i] = j;
                }
                pts[m++] = i;
            }
            if (m) rc = fab_run(f, x, y, tgt, pts, m, c, r > 0, rng, x_adv, rob, batch);
        }
    }
    free(z), free(tgt), free(pts);
    if (!robust) free(rob);
    if (rcv_classifier_batch(f) != batch && rcv_classifier_replan(f, batch)) rc = -1;
    return rc;
}
