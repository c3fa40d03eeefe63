// Weather corruptions: snow (zoomed Gaussian flakes streaked by a motion blur), fog (a plasma
// fractal), frost (a procedural ice layer standing in for the original's six photographs).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment/corrupt_internal.h"
#include "robustcv/error.h"

// Diamond-square as plasma_fractal: corner 0, centres of squares then diamond edges get the mean
// of their 4 neighbours (wrapping) plus wibble * U(-wibble, wibble); wibble /= decay per level.
void cor_plasma(rcv_rng *r, int n, double decay, float *out) {
    double *m = rcv_xcalloc((size_t)n * n, sizeof(double));
#define M(i, j) m[(size_t)(((i) % n + n) % n) * n + (((j) % n + n) % n)]
    double wib = 100;
    for (int step = n; step >= 2; step /= 2) {
        int half = step / 2;
        for (int i = 0; i < n; i += step) // squares: centre = mean of 4 corners
            for (int j = 0; j < n; j += step) {
                double s = M(i, j) + M(i + step, j) + M(i, j + step) + M(i + step, j + step);
                M(i + half, j + half) = s / 4 + wib * (-wib + 2 * wib * cor_uniform(r));
            }
        for (int i = 0; i < n; i += step) // diamonds on the rows of corners
            for (int j = 0; j < n; j += step) {
                double s = M(i + half, j + half) + M(i - half, j + half) + M(i, j) + M(i, j + step);
                M(i, j + half) = s / 4 + wib * (-wib + 2 * wib * cor_uniform(r));
            }
        for (int i = 0; i < n; i += step) // diamonds on the columns of corners
            for (int j = 0; j < n; j += step) {
                double s = M(i + half, j + half) + M(i + half, j - half) + M(i, j) + M(i + step, j);
                M(i + half, j) = s / 4 + wib * (-wib + 2 * wib * cor_uniform(r));
            }
        wib /= decay;
    }
#undef M
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < (size_t)n * n; i++) lo = fmin(lo, m[i]);
    for (size_t i = 0; i < (size_t)n * n; i++) hi = fmax(hi, m[i] - lo);
    for (size_t i = 0; i < (size_t)n * n; i++) out[i] = (float)(hi > 0 ? (m[i] - lo) / hi : 0);
    free(m);
}

static int pow2_at_least(int v) {
    int n = 1;
    while (n < v) n *= 2;
    return n;
}

void cor_fog(float *x, int h, int w, int s, rcv_rng *r) {
    static const double c[5][2] = {{.4, 3}, {.7, 3}, {1, 2.5}, {1.5, 2}, {2, 1.75}};
    int n = pow2_at_least(h > w ? h : w);
    float *pl = rcv_xmalloc(sizeof(float) * (size_t)n * n);
    cor_plasma(r, n, c[s - 1][1], pl);
    float mx = 0;
    for (size_t i = 0; i < (size_t)h * w * 3; i++) mx = fmaxf(mx, x[i]);
    float a = (float)c[s - 1][0];
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            for (int k = 0; k < 3; k++) {
                float *p = x + ((size_t)i * w + j) * 3 + k;
                *p = (*p + a * pl[(size_t)i * n + j]) * mx / (mx + a);
            }
    free(pl);
}

void cor_snow(float *x, int h, int w, int s, rcv_rng *r) {
    static const double c[5][7] = {{0.1, 0.2, 1, 0.6, 8, 3, 0.8},
                                   {0.1, 0.2, 1, 0.5, 10, 4, 0.8},
                                   {0.15, 0.3, 1.75, 0.55, 10, 4, 0.7},
                                   {0.25, 0.3, 2.25, 0.6, 12, 6, 0.65},
                                   {0.3, 0.3, 1.25, 0.65, 14, 12, 0.6}};
    const double *p = c[s - 1];
    size_t npix = (size_t)h * w;
    float *layer = rcv_xmalloc(sizeof(float) * npix * 2), *zoomed = layer + npix;
    for (size_t i = 0; i < npix; i++) layer[i] = (float)(p[0] + p[1] * rcv_rng_normal(r));
    cor_clipped_zoom(layer, h, w, 1, p[2], zoomed);
    uint8_t *l8 = rcv_xmalloc(npix * 2), *blurred = l8 + npix;
    for (size_t i = 0; i < npix; i++) {
        float v = zoomed[i] < p[3] ? 0 : zoomed[i];
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        l8[i] = (uint8_t)(v * 255.0f);
    }
    double angle = -135 + 90 * cor_uniform(r);
    cor_motion_blur(l8, blurred, h, w, 1, p[4], p[5], angle);
    float keep = (float)p[6];
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            float *q = x + ((size_t)i * w + j) * 3;
            float gray = 0.299f * q[0] + 0.587f * q[1] + 0.114f * q[2];
            float flake = blurred[(size_t)i * w + j] / 255.0f + blurred[(size_t)(h - 1 - i) * w + (w - 1 - j)] / 255.0f;
            for (int k = 0; k < 3; k++) {
                float v = keep * q[k] + (1 - keep) * fmaxf(q[k], gray * 1.5f + 0.5f);
                q[k] = v + flake;
            }
        }
    free(l8);
    free(layer);
}

// Procedural frost. The original blends c0 * x + c1 * F with F a random 64 x 64 crop of one of six
// frost photographs (scaled by 0.3), which cannot be shipped. F here: a bright, blue-tinted
// layer of ice: a fine plasma texture (crystal grain) plus a few hundred short random-walk
// streaks (needles), lightly blurred; mean ~0.45 of full scale like the photographs' crops.
// The blend and its severity constants are the original's.
void cor_frost(float *x, int h, int w, int s, rcv_rng *r) {
    static const double c[5][2] = {{1, 0.3}, {0.9, 0.4}, {0.8, 0.45}, {0.75, 0.5}, {0.7, 0.55}};
    int n = pow2_at_least(h > w ? h : w);
    size_t npix = (size_t)h * w;
    float *pl = rcv_xmalloc(sizeof(float) * (size_t)n * n), *ice = rcv_xcalloc(npix, sizeof(float));
    cor_plasma(r, n, 1.6, pl);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) ice[(size_t)i * w + j] = 0.25f + 0.35f * pl[(size_t)i * n + j];
    int needles = (int)(npix / 12);
    for (int t = 0; t < needles; t++) {
        double y = cor_uniform(r) * h, xx = cor_uniform(r) * w, a = cor_uniform(r) * 2 * M_PI;
        int len = 3 + (int)rcv_rng_below(r, 8);
        float bright = 0.25f + 0.35f * (float)cor_uniform(r);
        for (int k = 0; k < len; k++) {
            int iy = (int)y, ix = (int)xx;
            if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                float *v = ice + (size_t)iy * w + ix;
                *v = fminf(1.0f, *v + bright);
            }
            a += (cor_uniform(r) - 0.5) * 0.6; // needles bend a little
            y += sin(a);
            xx += cos(a);
        }
    }
    cor_gaussian(ice, h, w, 1, 0.5f, 4, CB_REFLECT);
    static const float tint[3] = {0.85f, 0.93f, 1.0f}; // frost photographs are blue-white
    float a0 = (float)c[s - 1][0], a1 = (float)c[s - 1][1];
    for (size_t i = 0; i < npix; i++)
        for (int k = 0; k < 3; k++) x[3 * i + k] = a0 * x[3 * i + k] + a1 * ice[i] * tint[k];
    free(ice);
    free(pl);
}
