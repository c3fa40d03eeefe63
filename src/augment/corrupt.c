// The 15 ImageNet-C corruptions at 5 severities with the constants of Hendrycks & Dietterich's
// make_tinyimagenet_c.py (64 x 64 Tiny-ImageNet-C); the sizes they hard-code as 64 follow the image
// here. Noise, brightness, contrast, pixelate and JPEG live in this file; blurs in corrupt_blur.c,
// weather in corrupt_weather.c. Outputs are truncated to 8 bits as np.uint8 did in the original.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "augment/corrupt_internal.h"
#include "robustcv/augment.h"
#include "robustcv/error.h"

const char *const rcv_corruption_names[] = {"gaussian_noise", "shot_noise",   "impulse_noise", "defocus_blur",
                                            "glass_blur",     "motion_blur",  "zoom_blur",     "snow",
                                            "frost",          "fog",          "brightness",    "contrast",
                                            "elastic_transform", "pixelate",  "jpeg_compression", NULL};

int rcv_corruption_count(void) { return 15; }

static inline float clip01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

long cor_poisson(rcv_rng *r, double lam) {
    if (lam <= 0) return 0;
    if (lam < 10) { // multiply uniforms until the product drops below exp(-lam)
        double enlam = exp(-lam), prod = 1;
        long k = 0;
        for (;;) {
            prod *= cor_uniform(r);
            if (prod > enlam) k++;
            else return k;
        }
    }
    // Hoermann's transformed rejection with squeeze (PTRS), as numpy uses for lam >= 10.
    double slam = sqrt(lam), loglam = log(lam), b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
    double invalpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
        double U = cor_uniform(r) - 0.5, V = cor_uniform(r), us = 0.5 - fabs(U);
        long k = (long)floor((2 * a / us + b) * U + lam + 0.43);
        if (us >= 0.07 && V <= vr) return k;
        if (k < 0 || (us < 0.013 && V > us)) continue;
        if (log(V) + log(invalpha) - log(a / (us * us) + b) <= -lam + k * loglam - lgamma((double)k + 1)) return k;
    }
}

static void gaussian_noise(float *x, size_t n, int s, rcv_rng *r) {
    static const float c[5] = {0.04f, 0.08f, 0.12f, 0.15f, 0.18f};
    for (size_t i = 0; i < n; i++) x[i] = clip01(x[i] + c[s - 1] * rcv_rng_normal(r));
}

static void shot_noise(float *x, size_t n, int s, rcv_rng *r) {
    static const double c[5] = {250, 100, 50, 30, 15};
    for (size_t i = 0; i < n; i++) x[i] = clip01((float)(cor_poisson(r, x[i] * c[s - 1]) / c[s - 1]));
}

// skimage.util.random_noise(mode='s&p', amount, salt_vs_pepper=0.5): each value independently
// becomes 1 or 0 (half each) with probability `amount`.
static void impulse_noise(float *x, size_t n, int s, rcv_rng *r) {
    static const float c[5] = {0.01f, 0.02f, 0.05f, 0.08f, 0.14f};
    for (size_t i = 0; i < n; i++) {
        if (rcv_rng_uniform(r) < c[s - 1]) x[i] = rcv_rng_uniform(r) < 0.5f ? 1.0f : 0.0f;
    }
}

// HSV value + c (clipped at 1) with hue and saturation kept: the RGB triple scales by v' / v
// (black becomes grey c, as hsv2rgb(0, 0, c) gives).
static void brightness(float *x, size_t npix, int s) {
    static const float c[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
    for (size_t i = 0; i < npix; i++) {
        float *p = x + 3 * i;
        float v = fmaxf(p[0], fmaxf(p[1], p[2])), v2 = fminf(v + c[s - 1], 1.0f);
        if (v <= 0) p[0] = p[1] = p[2] = v2;
        else
            for (int k = 0; k < 3; k++) p[k] = clip01(p[k] * (v2 / v));
    }
}

// (x - mean) * c + mean with per-channel means over the image.
static void contrast(float *x, size_t npix, int s) {
    static const float c[5] = {0.4f, 0.3f, 0.2f, 0.1f, 0.05f};
    double m[3] = {0, 0, 0};
    for (size_t i = 0; i < npix; i++)
        for (int k = 0; k < 3; k++) m[k] += x[3 * i + k];
    for (int k = 0; k < 3; k++) m[k] /= (double)npix;
    for (size_t i = 0; i < npix; i++)
        for (int k = 0; k < 3; k++) x[3 * i + k] = clip01((float)((x[3 * i + k] - m[k]) * c[s - 1] + m[k]));
}

// PIL's resample with the box filter on 8-bit data: per output pixel the input pixels whose
// centres fall in its footprint, coefficients in 22-bit fixed point, horizontal pass first.
static void box_coeffs(int in, int out, int *xmin, int *xlen, int *coef, int kmax) {
    double scale = (double)in / out, fs = scale < 1 ? 1 : scale, support = 0.5 * fs;
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale, ss = 1.0 / fs, ww[64], tot = 0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        if (n > kmax) n = kmax;
        for (int x = 0; x < n; x++) {
            double t = (x + lo - center + 0.5) * ss;
            ww[x] = (t >= -0.5 && t < 0.5) ? 1.0 : 0.0;
            tot += ww[x];
        }
        for (int x = 0; x < n; x++) {
            double v = tot != 0 ? ww[x] / tot : 0;
            coef[o * kmax + x] = (int)(v < 0 ? v * (1 << 22) - 0.5 : v * (1 << 22) + 0.5);
        }
        xmin[o] = lo;
        xlen[o] = n;
    }
}

static void pil_box_resize(const uint8_t *src, int h, int w, uint8_t *dst, int oh, int ow) {
    int kmax = 64, *xmin = malloc(sizeof(int) * (size_t)(ow + oh) * 2), *xlen = xmin + ow, *ymin = xlen + ow,
        *ylen = ymin + oh;
    int *cx = calloc((size_t)ow * kmax, sizeof(int)), *cy = calloc((size_t)oh * kmax, sizeof(int));
    box_coeffs(w, ow, xmin, xlen, cx, kmax);
    box_coeffs(h, oh, ymin, ylen, cy, kmax);
    uint8_t *tmp = malloc((size_t)h * ow * 3);
    for (int y = 0; y < h; y++)
        for (int o = 0; o < ow; o++)
            for (int k = 0; k < 3; k++) {
                long s = 1 << 21;
                for (int t = 0; t < xlen[o]; t++) s += (long)src[((size_t)y * w + xmin[o] + t) * 3 + k] * cx[o * kmax + t];
                s >>= 22;
                tmp[((size_t)y * ow + o) * 3 + k] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
            }
    for (int o = 0; o < oh; o++)
        for (int x = 0; x < ow; x++)
            for (int k = 0; k < 3; k++) {
                long s = 1 << 21;
                for (int t = 0; t < ylen[o]; t++) s += (long)tmp[((size_t)(ymin[o] + t) * ow + x) * 3 + k] * cy[o * kmax + t];
                s >>= 22;
                dst[((size_t)o * ow + x) * 3 + k] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
            }
    free(tmp);
    free(cx);
    free(cy);
    free(xmin);
}

static void pixelate(const uint8_t *src, uint8_t *dst, int h, int w, int s) {
    static const double c[5] = {0.9, 0.8, 0.7, 0.6, 0.5};
    int sw = (int)(w * c[s - 1]), sh = (int)(h * c[s - 1]);
    if (sw < 1) sw = 1;
    if (sh < 1) sh = 1;
    uint8_t *small = malloc((size_t)sw * sh * 3);
    pil_box_resize(src, h, w, small, sh, sw);
    pil_box_resize(small, sh, sw, dst, h, w);
    free(small);
}

// PIL's JPEG save at `quality` (libjpeg defaults: 4:2:0, islow DCT: TurboJPEG would use the fast
// DCT when compressing unless told) and decode.
static int jpeg_roundtrip(const uint8_t *src, uint8_t *dst, int h, int w, int s) {
    static const int c[5] = {65, 58, 50, 40, 25};
    tjhandle tc = tjInitCompress(), td = tjInitDecompress();
    unsigned char *buf = NULL;
    unsigned long len = 0;
    int rc = -1;
    if (tc && td && !tjCompress2(tc, src, w, 0, h, TJPF_RGB, &buf, &len, TJSAMP_420, c[s - 1], TJFLAG_ACCURATEDCT) &&
        !tjDecompress2(td, buf, len, dst, w, 0, h, TJPF_RGB, 0))
        rc = 0;
    else
        rcv_fail("jpeg_compression: libturbojpeg failed on a %d x %d image: %s", w, h, tjGetErrorStr2(tc));
    tjFree(buf);
    if (tc) tjDestroy(tc);
    if (td) tjDestroy(td);
    return rc;
}

int rcv_corrupt(const uint8_t *src, uint8_t *dst, int h, int w, const char *name, int severity, uint64_t seed) {
    int id = -1;
    for (int i = 0; rcv_corruption_names[i]; i++)
        if (name && !strcmp(name, rcv_corruption_names[i])) id = i;
    if (id < 0) {
        char list[512] = "";
        for (int i = 0; rcv_corruption_names[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", rcv_corruption_names[i]);
        return rcv_fail("corrupt: unknown corruption '%s', expected one of: %s", name ? name : "(null)", list);
    }
    if (severity < 1 || severity > 5) return rcv_fail("corrupt: severity %d for %s, expected 1..5", severity, name);
    if (h < 8 || w < 8) return rcv_fail("corrupt: image %d x %d, expected at least 8 x 8", w, h);
    size_t npix = (size_t)h * w, n = npix * 3;
    if (id == 13) {
        pixelate(src, dst, h, w, severity);
        return 0;
    }
    if (id == 14) return jpeg_roundtrip(src, dst, h, w, severity);
    rcv_rng r;
    // One stream per (seed, corruption, severity): the same image gets independent draws per cell.
    rcv_rng_init(&r, seed * 0x9E3779B97F4A7C15ull + (uint64_t)(id * 8 + severity));
    if (id == 5) {
        static const double c[5][2] = {{10, 1}, {10, 1.5}, {10, 2}, {10, 2.5}, {12, 3}};
        double angle = -45 + 90 * cor_uniform(&r);
        uint8_t *tmp = malloc(n);
        cor_motion_blur(src, tmp, h, w, 3, c[severity - 1][0], c[severity - 1][1], angle);
        memcpy(dst, tmp, n);
        free(tmp);
        return 0;
    }
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = src[i] / 255.0f;
    switch (id) {
    case 0: gaussian_noise(x, n, severity, &r); break;
    case 1: shot_noise(x, n, severity, &r); break;
    case 2: impulse_noise(x, n, severity, &r); break;
    case 3: cor_defocus_blur(x, h, w, severity); break;
    case 4: cor_glass_blur(x, h, w, severity, &r); break;
    case 6: cor_zoom_blur(x, h, w, severity); break;
    case 7: cor_snow(x, h, w, severity, &r); break;
    case 8: cor_frost(x, h, w, severity, &r); break;
    case 9: cor_fog(x, h, w, severity, &r); break;
    case 10: brightness(x, npix, severity); break;
    case 11: contrast(x, npix, severity); break;
    case 12: cor_elastic(x, h, w, severity, &r); break;
    }
    // np.uint8(clip(x, 0, 1) * 255): truncation, as the original saved them.
    for (size_t i = 0; i < n; i++) dst[i] = (uint8_t)(clip01(x[i]) * 255.0f);
    free(x);
    return 0;
}
