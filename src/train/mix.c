// Mixup / CutMix (mix.h): timm's Mixup re-done on NHWC batches, draw for draw. The numbers
// are drawn in timm's order through rcv_mix_draws, so tests replay numpy's values and compare
// images, boxes and targets with timm's own output.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/mix.h"

void rcv_mix_defaults(rcv_mix_cfg *c) {
    memset(c, 0, sizeof *c);
    c->prob = 1;
    c->switch_prob = 0.5f;
    c->mode = RCV_MIX_BATCH;
    c->correct_lam = 1;
}

static int minmax_on(const rcv_mix_cfg *c) { return c->cutmix_minmax[0] != 0 || c->cutmix_minmax[1] != 0; }

int rcv_mix_enabled(const rcv_mix_cfg *c) { return c->mixup_alpha > 0 || c->cutmix_alpha > 0 || minmax_on(c); }

static int unit(float v) { return v >= 0 && v <= 1; } // false for NaN

int rcv_mix_check(const rcv_mix_cfg *c) {
    if (!(isfinite(c->mixup_alpha) && c->mixup_alpha >= 0))
        return rcv_fail("--mixup %g: expected a Beta alpha >= 0 (0 = off; timm uses 0.8)", c->mixup_alpha);
    if (!(isfinite(c->cutmix_alpha) && c->cutmix_alpha >= 0))
        return rcv_fail("--cutmix %g: expected a Beta alpha >= 0 (0 = off; timm uses 1.0)", c->cutmix_alpha);
    if (!unit(c->prob)) return rcv_fail("--mix-prob %g: expected a probability in [0, 1]", c->prob);
    if (!unit(c->switch_prob)) return rcv_fail("--mix-switch-prob %g: expected a probability in [0, 1]", c->switch_prob);
    if (minmax_on(c) && !(unit(c->cutmix_minmax[0]) && unit(c->cutmix_minmax[1]) && c->cutmix_minmax[0] < c->cutmix_minmax[1]))
        return rcv_fail("--cutmix-minmax %g,%g: expected MIN,MAX with 0 <= MIN < MAX <= 1", c->cutmix_minmax[0],
                        c->cutmix_minmax[1]);
    if (c->mode < RCV_MIX_BATCH || c->mode > RCV_MIX_ELEM) return rcv_fail("mix mode %d: expected batch, pair or elem", c->mode);
    return 0;
}

static const char *const mode_names[] = {"batch", "pair", "elem"};

const char *rcv_mix_mode_name(rcv_mix_mode m) { return m >= RCV_MIX_BATCH && m <= RCV_MIX_ELEM ? mode_names[m] : "?"; }

int rcv_mix_mode_parse(const char *s, rcv_mix_mode *m) {
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, mode_names[i])) {
            *m = (rcv_mix_mode)i;
            return 0;
        }
    return rcv_fail("--mix-mode '%s': expected batch, pair or elem", s ? s : "(null)");
}

// --- draws from a rcv_rng ---

// Gamma(a, 1): Marsaglia and Tsang (2000); a < 1 through Gamma(a + 1) U^(1/a).
static double gamma_draw(rcv_rng *r, double a) {
    if (a < 1) {
        double u = rcv_rng_uniform(r);
        return gamma_draw(r, a + 1) * pow(u > 0 ? u : 1e-300, 1 / a);
    }
    double d = a - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (;;) {
        double x = rcv_rng_normal(r), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = rcv_rng_uniform(r);
        if (u < 1 - 0.0331 * x * x * x * x) return d * v;
        if (u > 0 && log(u) < 0.5 * x * x + d * (1 - v + log(v))) return d * v;
    }
}

double rcv_rng_beta(rcv_rng *r, double a, double b) {
    double x = gamma_draw(r, a), y = gamma_draw(r, b);
    return x + y > 0 ? x / (x + y) : 0.5;
}

static void rng_uniform(void *ctx, int n, double *out) {
    for (int i = 0; i < n; i++) out[i] = rcv_rng_uniform(ctx);
}
static void rng_beta(void *ctx, double a, int n, double *out) {
    for (int i = 0; i < n; i++) out[i] = rcv_rng_beta(ctx, a, a);
}
static long rng_randint(void *ctx, long lo, long hi) { return hi > lo ? lo + (long)rcv_rng_below(ctx, (uint32_t)(hi - lo)) : lo; }

rcv_mix_draws rcv_mix_draws_rng(rcv_rng *r) { return (rcv_mix_draws){rng_uniform, rng_beta, rng_randint, r}; }

// --- boxes ---

typedef struct {
    int yl, yh, xl, xh;
} box;

// timm's cutmix_bbox_and_lam for one image of h x w: the box and the (corrected) lam.
static double cutmix_box(const rcv_mix_cfg *c, const rcv_mix_draws *d, int h, int w, double lam, box *b) {
    if (minmax_on(c)) {
        long ch = d->randint(d->ctx, (long)(h * (double)c->cutmix_minmax[0]), (long)(h * (double)c->cutmix_minmax[1]));
        long cw = d->randint(d->ctx, (long)(w * (double)c->cutmix_minmax[0]), (long)(w * (double)c->cutmix_minmax[1]));
        b->yl = (int)d->randint(d->ctx, 0, h - ch);
        b->xl = (int)d->randint(d->ctx, 0, w - cw);
        b->yh = b->yl + (int)ch;
        b->xh = b->xl + (int)cw;
    } else {
        double ratio = sqrt(1 - lam);
        int cut_h = (int)(h * ratio), cut_w = (int)(w * ratio);
        int cy = (int)d->randint(d->ctx, 0, h), cx = (int)d->randint(d->ctx, 0, w);
        // cut // 2 on both sides (timm's rand_bbox), then clipped to the image
        b->yl = cy - cut_h / 2 < 0 ? 0 : cy - cut_h / 2;
        b->yh = cy + cut_h / 2 > h ? h : cy + cut_h / 2;
        b->xl = cx - cut_w / 2 < 0 ? 0 : cx - cut_w / 2;
        b->xh = cx + cut_w / 2 > w ? w : cx + cut_w / 2;
    }
    if (c->correct_lam || minmax_on(c)) lam = 1.0 - (double)(b->yh - b->yl) * (b->xh - b->xl) / ((double)h * w);
    return lam;
}

// Copies box b of image src into image dst, both (h, w, ch).
static void paste(float *dst, const float *src, const box *b, int w, int ch) {
    for (int y = b->yl; y < b->yh; y++)
        memcpy(dst + ((size_t)y * w + b->xl) * ch, src + ((size_t)y * w + b->xl) * ch,
               (size_t)(b->xh - b->xl) * ch * sizeof(float));
}

// dst = lam dst + (1 - lam) src over per floats, in float as torch's x * lam + x_orig * (1 - lam).
static void blend(float *dst, const float *src, size_t per, double lam) {
    float a = (float)lam, b = (float)(1 - lam);
    for (size_t e = 0; e < per; e++) dst[e] = dst[e] * a + src[e] * b;
}

// --- the draws of one batch ---

// timm's _params_per_elem(n): lam (float32 in timm) and use_cutmix per element.
static void params_per_elem(const rcv_mix_cfg *c, const rcv_mix_draws *d, int n, float *lam, int *cut) {
    double *u = malloc((size_t)n * 3 * sizeof(double)), *bc = u + n, *bm = u + 2 * (size_t)n;
    int cutmix_on = c->cutmix_alpha > 0 || minmax_on(c); // timm forces cutmix_alpha = 1 with minmax
    double ca = minmax_on(c) ? 1.0 : c->cutmix_alpha;
    if (c->mixup_alpha > 0 && cutmix_on) {
        d->uniform(d->ctx, n, u);
        d->beta(d->ctx, ca, n, bc);
        d->beta(d->ctx, c->mixup_alpha, n, bm);
        for (int i = 0; i < n; i++) {
            cut[i] = u[i] < c->switch_prob;
            lam[i] = (float)(cut[i] ? bc[i] : bm[i]);
        }
    } else {
        d->beta(d->ctx, cutmix_on ? ca : c->mixup_alpha, n, bm);
        for (int i = 0; i < n; i++) cut[i] = cutmix_on, lam[i] = (float)bm[i];
    }
    d->uniform(d->ctx, n, u);
    for (int i = 0; i < n; i++)
        if (!(u[i] < c->prob)) lam[i] = 1;
    free(u);
}

static double params_per_batch(const rcv_mix_cfg *c, const rcv_mix_draws *d, int *cut) {
    double u, lam = 1;
    *cut = 0;
    d->uniform(d->ctx, 1, &u);
    if (!(u < c->prob)) return 1;
    int cutmix_on = c->cutmix_alpha > 0 || minmax_on(c);
    double ca = minmax_on(c) ? 1.0 : c->cutmix_alpha;
    if (c->mixup_alpha > 0 && cutmix_on) {
        d->uniform(d->ctx, 1, &u);
        *cut = u < c->switch_prob;
        d->beta(d->ctx, *cut ? ca : c->mixup_alpha, 1, &lam);
    } else {
        *cut = cutmix_on;
        d->beta(d->ctx, cutmix_on ? ca : c->mixup_alpha, 1, &lam);
    }
    return lam;
}

// x (n, h, w, ch) mixed in place; lam (n): each image's weight of its own label.
int rcv_mix_batch(const rcv_mix_cfg *c, const rcv_mix_draws *d, float *x, int n, int h, int w, int ch, float *lam,
                  float *scratch) {
    if (n % 2) return rcv_fail("mixup/cutmix: batch %d is odd; timm pairs image i with N-1-i and needs it even", n);
    size_t per = (size_t)h * w * ch;
    memcpy(scratch, x, (size_t)n * per * sizeof(float)); // x_orig (timm's clone, or x.flip(0)'s copy)
    if (c->mode == RCV_MIX_BATCH) {
        int cut;
        double l = params_per_batch(c, d, &cut);
        if (l != 1) {
            if (cut) {
                box b;
                l = cutmix_box(c, d, h, w, l, &b);
                for (int i = 0; i < n; i++) paste(x + i * per, scratch + (size_t)(n - 1 - i) * per, &b, w, ch);
            } else {
                for (int i = 0; i < n; i++) blend(x + i * per, scratch + (size_t)(n - 1 - i) * per, per, l);
            }
        }
        for (int i = 0; i < n; i++) lam[i] = (float)l;
        return 0;
    }
    int m = c->mode == RCV_MIX_PAIR ? n / 2 : n;
    int *cut = malloc((size_t)m * sizeof(int));
    params_per_elem(c, d, m, lam, cut);
    for (int i = 0; i < m; i++) {
        int j = n - 1 - i;
        if (lam[i] == 1.0f) continue;
        if (cut[i]) {
            box b;
            lam[i] = (float)cutmix_box(c, d, h, w, lam[i], &b);
            paste(x + i * per, scratch + (size_t)j * per, &b, w, ch);
            if (m < n) paste(x + (size_t)j * per, scratch + (size_t)i * per, &b, w, ch);
        } else {
            blend(x + i * per, scratch + (size_t)j * per, per, lam[i]);
            if (m < n) blend(x + (size_t)j * per, scratch + (size_t)i * per, per, lam[i]);
        }
    }
    for (int i = 0; m < n && i < m; i++) lam[n - 1 - i] = lam[i]; // timm's concatenate(lam, lam[::-1])
    free(cut);
    return 0;
}

void rcv_mix_targets(const int32_t *y, const float *lam, int n, int k, float smoothing, float *t) {
    float off = smoothing / k, on = 1 - smoothing + off;
    for (int i = 0; i < n; i++) {
        float *ti = t + (size_t)i * k, l = lam[i];
        int yi = y[i], yj = y[n - 1 - i];
        // y1 * lam + y2 * (1 - lam), each one-hot (on, off), in float as timm's tensors
        for (int j = 0; j < k; j++) ti[j] = (j == yi ? on : off) * l + (j == yj ? on : off) * (1 - l);
    }
}

// loss = mean_i sum_j -t_ij log_softmax(z_i)_j; dz_ij = (p_ij sum_j t_ij - t_ij) / n.
double rcv_soft_cross_entropy(const float *z, const float *t, int n, int k, float *dz) {
    double loss = 0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * k, *ti = t + (size_t)i * k;
        double mx = zi[0], s = 0, ts = 0, li = 0;
        for (int j = 1; j < k; j++)
            if (zi[j] > mx) mx = zi[j];
        for (int j = 0; j < k; j++) s += exp(zi[j] - mx);
        double lse = mx + log(s);
        for (int j = 0; j < k; j++) li -= ti[j] * (zi[j] - lse), ts += ti[j];
        loss += li;
        if (dz)
            for (int j = 0; j < k; j++) dz[(size_t)i * k + j] = (float)((exp(zi[j] - lse) * ts - ti[j]) / n);
    }
    return loss / n;
}
