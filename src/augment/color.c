// Colour transforms with torchvision's tensor formulas: brightness, contrast and saturation are
// blends with black, the grey mean and the per-pixel grey, clamped to [0, 1]; hue goes through
// torchvision's RGB <-> HSV; grey is 0.2989 R + 0.587 G + 0.114 B.
#include <math.h>

#include "augment/aug_internal.h"

static inline float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }
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

// One pixel through torchvision's _rgb2hsv, h += f (mod 1), _hsv2rgb.
static inline void hue_pixel(float *p, float f) {
    float r = p[0], g = p[1], b = p[2];
    float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
    float cr = maxc - minc;
    int eqc = maxc == minc;
    float s = cr / (eqc ? 1.0f : maxc);
    float div = eqc ? 1.0f : cr;
    float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
    float hh;
    if (maxc == r) hh = bc - gc;
    else if (maxc == g) hh = 2.0f + rc - bc;
    else hh = 4.0f + gc - rc;
    hh = fmodf(hh / 6.0f + 1.0f, 1.0f);
    // Python's % on floats: result has the sign of the divisor.
    hh = fmodf(hh + f, 1.0f);
    if (hh < 0) hh += 1.0f;
    float v = maxc;
    float i6 = floorf(hh * 6.0f), fr = hh * 6.0f - i6;
    int i = ((int)i6) % 6;
    float pp = clamp01(v * (1.0f - s)), q = clamp01(v * (1.0f - s * fr)), t = clamp01(v * (1.0f - s * (1.0f - fr)));
    switch (i) {
    case 0: p[0] = v; p[1] = t; p[2] = pp; break;
    case 1: p[0] = q; p[1] = v; p[2] = pp; break;
    case 2: p[0] = pp; p[1] = v; p[2] = t; break;
    case 3: p[0] = pp; p[1] = q; p[2] = v; break;
    case 4: p[0] = t; p[1] = pp; p[2] = v; break;
    default: p[0] = v; p[1] = pp; p[2] = q; break;
    }
}

void rcv_aug_hue(float *x, int h, int w, int c, float f) {
    if (c != 3) return;
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++) hue_pixel(x + 3 * i, f);
}

void aug_jitter_params(rcv_rng *r, const float ranges[8], int order[4], float factors[4]) {
    rcv_rng_permutation(r, order, 4);
    for (int k = 0; k < 4; k++) factors[k] = aug_uniform(r, ranges[2 * k], ranges[2 * k + 1]);
}
