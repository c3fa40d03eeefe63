// Colour transforms with torchvision's tensor formulas: brightness, contrast and saturation are
// blends with black, the grey mean and the per-pixel grey, clamped to [0, 1]; hue goes through
// torchvision's RGB <-> HSV; grey is 0.2989 R + 0.587 G + 0.114 B.
#include <math.h>

#include "augment/aug_internal.h"

static inline float clamp01(float v) { return v < 0 ? 0.0f : v > 1 ? 1.0f : v; }
static inline float gray_of(const float *p) { return 0.2989f * p[0] + 0.587f * p[1] + 0.114f * p[2]; }

void rcv_aug_brightness(float *x, int h, int w, int c, float f) {
    size_t n = (size_t)h * w * c;
    for (size_t i = 0; i < n; i++) x[i] = clamp01(f * x[i]);
}

void rcv_aug_contrast(float *x, int h, int w, int c, float f) {
    size_t n = (size_t)h * w;
    double s = 0;
    if (c == 3)
        for (size_t i = 0; i < n; i++) s += gray_of(x + 3 * i);
    else
        for (size_t i = 0; i < n; i++) s += x[i];
    float mean = (float)(s / (double)n), off = (1.0f - f) * mean;
    for (size_t i = 0; i < n * c; i++) x[i] = clamp01(f * x[i] + off);
}

void rcv_aug_saturation(float *x, int h, int w, int c, float f) {
    if (c != 3) return;
    size_t n = (size_t)h * w;
    float g1 = 1.0f - f;
    for (size_t i = 0; i < n; i++) {
        float *p = x + 3 * i;
        float g = g1 * gray_of(p);
        p[0] = clamp01(f * p[0] + g);
        p[1] = clamp01(f * p[1] + g);
        p[2] = clamp01(f * p[2] + g);
    }
}

void rcv_aug_grayscale(float *x, int h, int w, int c) {
    if (c != 3) return;
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++) {
        float *p = x + 3 * i;
        p[0] = p[1] = p[2] = gray_of(p);
    }
}

// Hue: torchvision's _rgb2hsv, h += f (mod 1), _hsv2rgb, on planar blocks and without branches
// or fmodf so the loop vectorizes (it dominates a jitter pipeline). Same formulas; rounding
// differs from torchvision's by ~1e-7.
static void hue_block(float *restrict R, float *restrict G, float *restrict B, int m, float f) {
    for (int i = 0; i < m; i++) {
        float r = R[i], g = G[i], b = B[i];
        float maxc = r > g ? r : g, minc = r < g ? r : g;
        maxc = maxc > b ? maxc : b;
        minc = minc < b ? minc : b;
        float cr = maxc - minc;
        float s = cr / (cr == 0 ? 1.0f : maxc);
        float inv = 1.0f / (cr == 0 ? 1.0f : cr);
        float hh = maxc == r ? (g - b) * inv : maxc == g ? 2.0f + (b - r) * inv : 4.0f + (r - g) * inv;
        // h / 6 + 1 lies in (5/6, 2) and adding f in [-0.5, 0.5] and 1 keeps it positive, so the
        // two "mod 1" steps are truncations.
        hh = hh / 6.0f + 1.0f;
        hh -= (float)(int)hh;
        hh += f + 1.0f;
        hh -= (float)(int)hh;
        // hsv2rgb: channel n is v - v s clamp(min(k, 4 - k), 0, 1) with k = (n + 6 h) mod 6, n = 5, 3, 1.
        float h6 = hh * 6.0f, vs = maxc * s;
        float kr = 5.0f + h6, kg = 3.0f + h6, kb = 1.0f + h6;
        kr -= kr >= 6.0f ? 6.0f : 0.0f;
        kg -= kg >= 6.0f ? 6.0f : 0.0f;
        kb -= kb >= 6.0f ? 6.0f : 0.0f;
        float ar = 4.0f - kr < kr ? 4.0f - kr : kr, ag = 4.0f - kg < kg ? 4.0f - kg : kg;
        float ab = 4.0f - kb < kb ? 4.0f - kb : kb;
        ar = ar < 0 ? 0.0f : ar > 1 ? 1.0f : ar;
        ag = ag < 0 ? 0.0f : ag > 1 ? 1.0f : ag;
        ab = ab < 0 ? 0.0f : ab > 1 ? 1.0f : ab;
        R[i] = clamp01(maxc - vs * ar);
        G[i] = clamp01(maxc - vs * ag);
        B[i] = clamp01(maxc - vs * ab);
    }
}

void rcv_aug_hue(float *x, int h, int w, int c, float f) {
    if (c != 3) return;
    size_t n = (size_t)h * w;
    enum { BS = 256 };
    float R[BS], G[BS], B[BS];
    for (size_t i0 = 0; i0 < n; i0 += BS) {
        int m = (int)(n - i0 < BS ? n - i0 : BS);
        float *p = x + 3 * i0;
        for (int i = 0; i < m; i++) R[i] = p[3 * i], G[i] = p[3 * i + 1], B[i] = p[3 * i + 2];
        hue_block(R, G, B, m, f);
        for (int i = 0; i < m; i++) p[3 * i] = R[i], p[3 * i + 1] = G[i], p[3 * i + 2] = B[i];
    }
}

void aug_jitter_params(rcv_rng *r, const float ranges[8], int order[4], float factors[4]) {
    rcv_rng_permutation(r, order, 4);
    for (int k = 0; k < 4; k++) factors[k] = aug_uniform(r, ranges[2 * k], ranges[2 * k + 1]);
}
