// Square attack (Andriushchenko et al. 2020), untargeted, on the margin loss z_y - max_{i!=y} z_i,
// as fra31/auto-attack's square.py and torchattacks' Square (attack.h gives the steps). Forward
// passes only: each iteration queries the still-robust points once, in chunks of the planned batch.
//
// Randomness: every image draws from its own stream (a fork per restart and image), so
// a point's run does not depend on which other points are still active, and the candidates are
// built in parallel. The PyTorch code draws one window (and one pattern orientation) per
// iteration for the whole batch; per image the law is the same.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"

void rcv_square_defaults(rcv_square_cfg *c, rcv_norm norm) {
    memset(c, 0, sizeof *c);
    c->norm = norm;
    c->eps = norm == RCV_NORM_L2 ? 0.5f : 8.0f / 255.0f;
    c->n_queries = 5000;
    c->n_restarts = 1;
    c->p_init = 0.8f;
    c->resc_schedule = 0;
}

float rcv_square_p(const rcv_square_cfg *c, int it) {
    if (c->resc_schedule) it = (int)((double)it / c->n_queries * 10000);
    static const int at[] = {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000};
    int halvings = 0;
    for (int j = 0; j < 9; j++) halvings += it > at[j];
    return c->p_init / (float)(1 << halvings);
}

// Side of the square window at fraction p of the h * w pixels (round half to even, like Python's
// round), at least lo, at most min(h, w).
static int window_side(double p, int h, int w, int lo) {
    int s = (int)nearbyint(sqrt(p * h * w));
    if (s < lo) s = lo;
    if (lo == 3 && s % 2 == 0) s++;
    int mx = h < w ? h : w;
    return s > mx ? mx : s;
}

static float rand_sign(rcv_rng *r) { return rcv_rng_uniform(r) < 0.5f ? -1.0f : 1.0f; }
// Uniform in [0, m) (0 when m <= 0): the reference's random_int(0, h - s).
static int rand_below(rcv_rng *r, int m) { return m > 0 ? (int)rcv_rng_below(r, (uint32_t)m) : 0; }

// eta_rectangles(x, y) (x rows, y columns, row-major into e at row stride ld): concentric
// rectangles around the centre, weight 1/(k+1)^2 for ring k, normalized to unit L2 norm.
static void eta_rectangles(int x, int y, float *e, int ld) {
    for (int a = 0; a < x; a++)
        for (int b = 0; b < y; b++) e[a * ld + b] = 0;
    int xc = x / 2 + 1, yc = y / 2 + 1, c0 = xc - 1, c1 = yc - 1, top = xc > yc ? xc : yc;
    for (int k = 0; k < top; k++) {
        int a0 = c0 > 0 ? c0 : 0, a1 = c0 + 2 * k + 1 < x ? c0 + 2 * k + 1 : x;
        int b0 = c1 > 0 ? c1 : 0, b1 = c1 + 2 * k + 1 < y ? c1 + 2 * k + 1 : y;
        for (int a = a0; a < a1; a++)
            for (int b = b0; b < b1; b++) e[a * ld + b] += 1.0f / (float)((k + 1) * (k + 1));
        c0--, c1--;
    }
    double ss = 0;
    for (int a = 0; a < x; a++)
        for (int b = 0; b < y; b++) ss += (double)e[a * ld + b] * e[a * ld + b];
    float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0;
    for (int a = 0; a < x; a++)
        for (int b = 0; b < y; b++) e[a * ld + b] *= inv;
}

// The meta-pseudo-Gaussian pattern eta(s) (s * s, row-major): the top s/2 rows +rectangles, the
// rest -rectangles, unit L2 norm; et is its transpose (the reference flips a coin between them).
static void eta_pattern(int s, float *e, float *et) {
    int h1 = s / 2;
    if (h1 > 0) eta_rectangles(h1, s, e, s);
    eta_rectangles(s - h1, s, e + (size_t)h1 * s, s);
    double ss = 0;
    for (int i = h1 * s; i < s * s; i++) e[i] = -e[i];
    for (int i = 0; i < s * s; i++) ss += (double)e[i] * e[i];
    float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0;
    for (int i = 0; i < s * s; i++) e[i] *= inv;
    for (int a = 0; a < s; a++)
        for (int b = 0; b < s; b++) et[b * s + a] = e[a * s + b];
}

// Per-run geometry and patterns.
typedef struct {
    int h, w, c;
    size_t per;
    float eps;
    rcv_norm norm;
    int s;          // the pattern side eta/etat hold
    float *eta, *etat;
} sq_geom;

static void geom_pattern(sq_geom *g, int s) {
    if (g->s == s) return;
    free(g->eta);
    free(g->etat);
    g->eta = rcv_xmalloc((size_t)s * s * sizeof(float));
    g->etat = rcv_xmalloc((size_t)s * s * sizeof(float));
    eta_pattern(s, g->eta, g->etat);
    g->s = s;
}

// Start point of one image (x, out: (h, w, c)).
static void square_init(const sq_geom *g, const float *x, rcv_rng *r, float *out, float *delta) {
    int h = g->h, w = g->w, c = g->c;
    if (g->norm == RCV_NORM_LINF) {
        // vertical stripes: one sign per (channel, column), shape (c, 1, w) in NCHW
        float *sg = delta; // (w, c)
        for (int ch = 0; ch < c; ch++)
            for (int b = 0; b < w; b++) sg[b * c + ch] = rand_sign(r);
        for (int a = 0; a < h; a++)
            for (int b = 0; b < w; b++)
                for (int ch = 0; ch < c; ch++) {
                    size_t o = ((size_t)a * w + b) * c + ch;
                    out[o] = rcv_clamp01(x[o] + g->eps * sg[b * c + ch]);
                }
        return;
    }
    memset(delta, 0, g->per * sizeof(float));
    int s = h / 5;
    if (s < 1) s = 1;
    int sp = (h - s * 5) / 2;
    // a grid of h/s x w/s windows from (sp, sp), each eta(s) (random orientation) times a sign per channel
    float *e = rcv_xmalloc((size_t)s * s * sizeof(float)), *et = rcv_xmalloc((size_t)s * s * sizeof(float));
    eta_pattern(s, e, et);
    for (int vh = sp, bi = 0; bi < h / s; bi++, vh += s)
        for (int vw = sp, bj = 0; bj < w / s; bj++, vw += s) {
            const float *pat = rcv_rng_uniform(r) > 0.5f ? et : e;
            for (int ch = 0; ch < c; ch++) {
                float sgn = rand_sign(r);
                for (int a = 0; a < s && vh + a < h; a++)
                    for (int b = 0; b < s && vw + b < w; b++)
                        delta[((size_t)(vh + a) * w + vw + b) * c + ch] += pat[a * s + b] * sgn;
            }
        }
    free(e);
    free(et);
    double ss = 0;
    for (size_t o = 0; o < g->per; o++) ss += (double)delta[o] * delta[o];
    float f = (float)(g->eps / (sqrt(ss) + 1e-12));
    for (size_t o = 0; o < g->per; o++) out[o] = rcv_clamp01(x[o] + delta[o] * f);
}

// One candidate of one image: x its clean image, best its current point, out the candidate.
// delta: per floats of scratch; s the window side for this iteration.
static void square_step(const sq_geom *g, const float *x, const float *best, int s, rcv_rng *r, float *out,
                        float *delta) {
    int h = g->h, w = g->w, c = g->c;
    float eps = g->eps;
    if (g->norm == RCV_NORM_LINF) {
        int vh = rand_below(r, h - s), vw = rand_below(r, w - s);
        memcpy(out, best, g->per * sizeof(float));
        for (int ch = 0; ch < c; ch++) {
            float sg = rand_sign(r);
            for (int a = vh; a < vh + s; a++)
                for (int b = vw; b < vw + s; b++) {
                    size_t o = ((size_t)a * w + b) * c + ch;
                    // best + 2 eps sign, clipped to the ball around x: x +- eps
                    float v = best[o] + 2 * eps * sg;
                    v = v < x[o] - eps ? x[o] - eps : v > x[o] + eps ? x[o] + eps : v;
                    out[o] = rcv_clamp01(v);
                }
        }
        return;
    }
    int vh = rand_below(r, h - s), vw = rand_below(r, w - s);
    int vh2 = rand_below(r, h - s), vw2 = rand_below(r, w - s);
    for (size_t o = 0; o < g->per; o++) delta[o] = best[o] - x[o];
    double nimg = 0, nwin = 0;
    for (int a = 0; a < h; a++)
        for (int b = 0; b < w; b++) {
            int in = (a >= vh && a < vh + s && b >= vw && b < vw + s) ||
                     (a >= vh2 && a < vh2 + s && b >= vw2 && b < vw2 + s);
            for (int ch = 0; ch < c; ch++) {
                double v = delta[((size_t)a * w + b) * c + ch];
                nimg += v * v;
                if (in) nwin += v * v;
            }
        }
    // the pattern's orientation (one coin per candidate), then per channel: pattern * sign plus
    // the window's old perturbation (unit norm), rescaled to carry the budget left plus the mass
    // of both windows
    const float *pat = rcv_rng_uniform(r) > 0.5f ? g->etat : g->eta;
    double budget = eps * (double)eps - nimg;
    double scale = sqrt((budget > 0 ? budget : 0) / c + nwin);
    float *nw = rcv_xmalloc((size_t)s * s * c * sizeof(float)); // (s, s, c)
    for (int ch = 0; ch < c; ch++) {
        float sg = rand_sign(r);
        double n1 = 0;
        for (int a = 0; a < s; a++)
            for (int b = 0; b < s; b++) {
                double v = delta[((size_t)(vh + a) * w + vw + b) * c + ch];
                n1 += v * v;
            }
        n1 = sqrt(n1);
        double nn = 0;
        for (int a = 0; a < s; a++)
            for (int b = 0; b < s; b++) {
                float v = pat[a * s + b] * sg + (float)(delta[((size_t)(vh + a) * w + vw + b) * c + ch] / (1e-12 + n1));
                nw[((size_t)a * s + b) * c + ch] = v;
                nn += (double)v * v;
            }
        float f = (float)(scale / (1e-12 + sqrt(nn)));
        for (int a = 0; a < s; a++)
            for (int b = 0; b < s; b++) nw[((size_t)a * s + b) * c + ch] *= f;
    }
    for (int a = vh2; a < vh2 + s; a++)
        for (int b = vw2; b < vw2 + s; b++)
            for (int ch = 0; ch < c; ch++) delta[((size_t)a * w + b) * c + ch] = 0;
    for (int a = 0; a < s; a++)
        for (int b = 0; b < s; b++)
            for (int ch = 0; ch < c; ch++)
                delta[((size_t)(vh + a) * w + vw + b) * c + ch] = nw[((size_t)a * s + b) * c + ch];
    free(nw);
    double ss = 0;
    for (size_t o = 0; o < g->per; o++) ss += (double)delta[o] * delta[o];
    float f = (float)(eps / (sqrt(ss) + 1e-12));
    for (size_t o = 0; o < g->per; o++) out[o] = rcv_clamp01(x[o] + delta[o] * f);
}

// One restart on the m points pts (all robust so far): clears robust and writes x_adv for those
// it fools. 0, or -1 when re-planning for fewer points failed.
static int square_run(const rcv_classifier *f, const float *x, const int32_t *y, const int *pts, int m,
                       const rcv_square_cfg *c, const sq_geom *g0, rcv_rng *streams, float *x_adv,
                       uint8_t *robust, int full) {
    sq_geom g = *g0;
    g.s = 0, g.eta = g.etat = NULL;
    size_t per = g.per;
    int k = rcv_classifier_classes(f);
    float *best = rcv_xmalloc((size_t)m * per * sizeof(float)), *cand = rcv_xmalloc((size_t)m * per * sizeof(float));
    float *scr = rcv_xmalloc((size_t)m * per * sizeof(float)), *z = rcv_xmalloc((size_t)m * k * sizeof(float));
    double *margin = rcv_xmalloc((size_t)m * sizeof(double));
    uint8_t *fooled = rcv_xcalloc((size_t)m, 1);
    int *act = rcv_xmalloc((size_t)m * sizeof(int));
#pragma omp parallel for schedule(static)
    for (int j = 0; j < m; j++)
        square_init(&g, x + (size_t)pts[j] * per, &streams[pts[j]], best + (size_t)j * per, scr + (size_t)j * per);
    rcv_classifier_logits(f, best, m, z);
    int na = 0;
    for (int j = 0; j < m; j++) {
        const float *zj = z + (size_t)j * k;
        margin[j] = rcv_loss_margin(zj, k, y[pts[j]], NULL);
        fooled[j] = rcv_argmax(zj, k) != y[pts[j]];
        if (margin[j] > 0) act[na++] = j;
    }
    int rc = 0;
    for (int it = 0; it < c->n_queries && na > 0; it++) {
        if ((rc = rcv_classifier_fit(f, na, full))) break;
        double p = rcv_square_p(c, it);
        int s = window_side(p, g.h, g.w, c->norm == RCV_NORM_L2 ? 3 : 1);
        if (c->norm == RCV_NORM_L2) geom_pattern(&g, s);
#pragma omp parallel for schedule(static)
        for (int q = 0; q < na; q++) {
            int j = act[q], i = pts[j];
            square_step(&g, x + (size_t)i * per, best + (size_t)j * per, s, &streams[i], cand + (size_t)q * per,
                        scr + (size_t)q * per);
        }
        rcv_classifier_logits(f, cand, na, z);
        int kept = 0;
        for (int q = 0; q < na; q++) {
            int j = act[q];
            const float *zq = z + (size_t)q * k;
            double mg = rcv_loss_margin(zq, k, y[pts[j]], NULL);
            if (mg < margin[j] || mg <= 0) {
                margin[j] = mg;
                fooled[j] = rcv_argmax(zq, k) != y[pts[j]];
                memcpy(best + (size_t)j * per, cand + (size_t)q * per, per * sizeof(float));
            }
            if (margin[j] > 0) act[kept++] = j;
        }
        na = kept;
    }
    for (int j = 0; j < m; j++)
        if (fooled[j]) {
            memcpy(x_adv + (size_t)pts[j] * per, best + (size_t)j * per, per * sizeof(float));
            robust[pts[j]] = 0;
        }
    free(g.eta), free(g.etat);
    free(best), free(cand), free(scr), free(z), free(margin), free(fooled), free(act);
    return rc;
}

int rcv_attack_square(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_square_cfg *c,
                      rcv_rng *rng, float *x_adv, uint8_t *robust) {
    if (rcv_classifier_check(f)) return -1;
    int k = rcv_classifier_classes(f);
    if (c->norm != RCV_NORM_LINF && c->norm != RCV_NORM_L2)
        return rcv_fail("square: norm %d, expected linf (0) or l2 (2)", (int)c->norm);
    if (!(c->eps >= 0) || !isfinite(c->eps)) return rcv_fail("square: eps %g, expected a finite value >= 0", c->eps);
    if (c->n_queries < 0 || c->n_restarts < 1)
        return rcv_fail("square: n_queries %d, n_restarts %d: expected n_queries >= 0 and n_restarts >= 1",
                        c->n_queries, c->n_restarts);
    if (!(c->p_init > 0 && c->p_init <= 1)) return rcv_fail("square: p_init %g, expected a value in (0, 1]", c->p_init);
    if (n < 0) return rcv_fail("square: n %d images, expected >= 0", n);
    if (!rng) return rcv_fail("square: no random generator given, expected one (the windows are random)");
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k) return rcv_fail("square: label %d of image %d, expected 0 .. %d", y[i], i, k - 1);
    const rcv_model *m0 = f->models[0];
    sq_geom g = {.h = m0->cfg.in_h, .w = m0->cfg.in_w, .c = m0->cfg.in_c, .per = rcv_classifier_per_image(f),
                 .eps = c->eps, .norm = c->norm};
    memcpy(x_adv, x, (size_t)n * g.per * sizeof(float));
    int nn = n > 0 ? n : 1;
    float *z = rcv_xmalloc((size_t)nn * k * sizeof(float));
    rcv_classifier_logits(f, x, n, z);
    uint8_t *rob = robust ? robust : rcv_xmalloc((size_t)nn);
    for (int i = 0; i < n; i++) rob[i] = rcv_argmax(z + (size_t)i * k, k) == y[i];
    free(z);
    int *pts = rcv_xmalloc((size_t)nn * sizeof(int));
    rcv_rng *streams = rcv_xmalloc((size_t)nn * sizeof(rcv_rng));
    // The image streams fork from a generator seeded by two draws of the caller's, so a second
    // call (which finds rng moved on) draws other windows.
    rcv_rng root;
    uint64_t hi = rcv_rng_u32(rng);
    rcv_rng_init(&root, hi << 32 | rcv_rng_u32(rng));
    int batch = rcv_classifier_batch(f), rc = 0;
    for (int r = 0; r < c->n_restarts && !rc; r++) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            streams[i] = rcv_rng_fork(&root, (uint64_t)r * (uint64_t)n + (uint64_t)i);
            if (rob[i]) pts[m++] = i;
        }
        if (m) rc = square_run(f, x, y, pts, m, c, &g, streams, x_adv, rob, batch);
    }
    free(pts), free(streams);
    if (!robust) free(rob);
    if (rcv_classifier_batch(f) != batch && rcv_classifier_replan(f, batch)) rc = -1;
    return rc;
}
