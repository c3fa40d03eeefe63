// AugMix (Hendrycks et al. 2020) for the augmix recipe: its op list (the ones
// that do not overlap ImageNet-C corruptions), with PIL's arithmetic for the
// 8-bit point ops and inverse-mapped bilinear sampling (fill 0) for the affine
// ones, and its Dirichlet / Beta mixing. Images are (h, w, c) floats in [0, 1];
// the point ops work on the 8-bit value round(255 x) like PIL does.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/recipe.h"

static inline int q8(float v) {
    long q = lrintf(v * 255.0f);
    return q < 0 ? 0 : q > 255 ? 255 : (int)q;
}

// Applies lut (256 entries, per channel) to the 8-bit values of one channel.
static void apply_lut(float *img, int hw, int c, int ch, const int *lut) {
    for (int i = 0; i < hw; i++) img[(size_t)i * c + ch] = (float)lut[q8(img[(size_t)i * c + ch])] / 255.0f;
}

static void histogram(const float *img, int hw, int c, int ch, long *h) {
    memset(h, 0, 256 * sizeof(long));
    for (int i = 0; i < hw; i++) h[q8(img[(size_t)i * c + ch])]++;
}

// PIL ImageOps.autocontrast(cutoff=0): stretch [min, max] of each channel to [0, 255].
static void autocontrast(float *img, int hw, int c) {
    for (int ch = 0; ch < c; ch++) {
        long h[256];
        histogram(img, hw, c, ch, h);
        int lo = 0, hi = 255, lut[256];
        while (lo < 256 && !h[lo]) lo++;
        while (hi >= 0 && !h[hi]) hi--;
        if (hi <= lo) continue;
        double scale = 255.0 / (hi - lo), offset = -lo * scale;
        for (int i = 0; i < 256; i++) {
            int v = (int)(i * scale + offset);
            lut[i] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
        apply_lut(img, hw, c, ch, lut);
    }
}

// PIL ImageOps.equalize: cumulative-histogram lut with PIL's step rounding.
static void equalize(float *img, int hw, int c) {
    for (int ch = 0; ch < c; ch++) {
        long h[256], total = 0, last = 0;
        int nz = 0, lut[256];
        histogram(img, hw, c, ch, h);
        for (int i = 0; i < 256; i++)
            if (h[i]) {
                nz++;
                total += h[i];
                last = h[i];
            }
        if (nz <= 1) continue;
        long step = (total - last) / 255;
        if (!step) continue;
        long n = step / 2;
        for (int i = 0; i < 256; i++) {
            long v = n / step;
            lut[i] = v > 255 ? 255 : (int)v;
            n += h[i];
        }
        apply_lut(img, hw, c, ch, lut);
    }
}

// Output pixel (x, y) samples the input at A (x + 0.5, y + 0.5) - 0.5 (PIL's affine
// transform convention, centre-based), bilinear with zero outside.
static void affine(float *img, int h, int w, int c, const double A[6]) {
    size_t n = (size_t)h * w * c;
    float *src = rcv_xmalloc(n * sizeof(float));
    memcpy(src, img, n * sizeof(float));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double sx = A[0] * (x + 0.5) + A[1] * (y + 0.5) + A[2] - 0.5;
            double sy = A[3] * (x + 0.5) + A[4] * (y + 0.5) + A[5] - 0.5;
            int x0 = (int)floor(sx), y0 = (int)floor(sy);
            double fx = sx - x0, fy = sy - y0;
            for (int ch = 0; ch < c; ch++) {
                double v = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int xx = x0 + dx, yy = y0 + dy;
                        if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                        v += (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy) * src[((size_t)yy * w + xx) * c + ch];
                    }
                img[((size_t)y * w + x) * c + ch] = (float)v;
            }
        }
    free(src);
}

void rcv_aug_apply(rcv_aug_op op, float value, float *img, int h, int w, int c) {
    int hw = h * w, lut[256];
    switch (op) {
    case RCV_AUG_AUTOCONTRAST: autocontrast(img, hw, c); break;
    case RCV_AUG_EQUALIZE: equalize(img, hw, c); break;
    case RCV_AUG_POSTERIZE: {
        int bits = (int)value, mask = bits <= 0 ? 0 : bits >= 8 ? 255 : (~((1 << (8 - bits)) - 1)) & 255;
        for (int i = 0; i < 256; i++) lut[i] = i & mask;
        for (int ch = 0; ch < c; ch++) apply_lut(img, hw, c, ch, lut);
        break;
    }
    case RCV_AUG_SOLARIZE:
        for (int i = 0; i < 256; i++) lut[i] = i < value ? i : 255 - i;
        for (int ch = 0; ch < c; ch++) apply_lut(img, hw, c, ch, lut);
        break;
    case RCV_AUG_ROTATE: {
        // Counter-clockwise by `value` degrees about the centre, like PIL's rotate.
        double a = value * M_PI / 180.0, cs = cos(a), sn = sin(a), cx = w / 2.0, cy = h / 2.0;
        double A[6] = {cs, sn, 0, -sn, cs, 0};
        A[2] = cx - A[0] * cx - A[1] * cy;
        A[5] = cy - A[3] * cx - A[4] * cy;
        affine(img, h, w, c, A);
        break;
    }
    case RCV_AUG_SHEAR_X: { double A[6] = {1, value, 0, 0, 1, 0}; affine(img, h, w, c, A); break; }
    case RCV_AUG_SHEAR_Y: { double A[6] = {1, 0, 0, value, 1, 0}; affine(img, h, w, c, A); break; }
    case RCV_AUG_TRANSLATE_X: { double A[6] = {1, 0, value, 0, 1, 0}; affine(img, h, w, c, A); break; }
    case RCV_AUG_TRANSLATE_Y: { double A[6] = {1, 0, 0, 0, 1, value}; affine(img, h, w, c, A); break; }
    default: break;
    }
}

// AugMix's sample_level: U(0.1, severity); int_parameter / float_parameter scale it to maxval.
static float level(rcv_rng *r, int severity) { return 0.1f + rcv_rng_uniform(r) * (severity - 0.1f); }
static float sgn(rcv_rng *r) { return rcv_rng_uniform(r) > 0.5f ? -1.0f : 1.0f; }

static void random_op(float *img, int h, int w, int c, int severity, rcv_rng *r) {
    rcv_aug_op op = (rcv_aug_op)rcv_rng_below(r, RCV_AUG_COUNT);
    float v = 0, l = level(r, severity);
    switch (op) {
    case RCV_AUG_POSTERIZE: v = 4 - (int)(l * 4 / 10); break;
    case RCV_AUG_SOLARIZE: v = 256 - (int)(l * 256 / 10); break;
    case RCV_AUG_ROTATE: v = (int)(l * 30 / 10) * sgn(r); break;
    case RCV_AUG_SHEAR_X: case RCV_AUG_SHEAR_Y: v = l * 0.3f / 10 * sgn(r); break;
    case RCV_AUG_TRANSLATE_X: v = (int)(l * (w / 3.0f) / 10) * sgn(r); break;
    case RCV_AUG_TRANSLATE_Y: v = (int)(l * (h / 3.0f) / 10) * sgn(r); break;
    default: break;
    }
    rcv_aug_apply(op, v, img, h, w, c);
}

void rcv_augmix(const rcv_augmix_cfg *cfg, const float *x, int n, int h, int w, int c, rcv_rng *rng, float *out) {
    size_t per = (size_t)h * w * c;
    int width = cfg->width > 0 ? cfg->width : 3, sev = cfg->severity > 0 ? cfg->severity : 3;
    float *chain = rcv_xmalloc(per * sizeof(float)), *mix = rcv_xmalloc(per * sizeof(float));
    float ws[16];
    if (width > 16) width = 16;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * per;
        // Dirichlet(1, ..., 1) = normalised Exp(1) draws; Beta(1, 1) = U(0, 1).
        double sum = 0;
        for (int k = 0; k < width; k++) sum += ws[k] = -logf(1.0f - rcv_rng_uniform(rng));
        for (int k = 0; k < width; k++) ws[k] = (float)(ws[k] / sum);
        float m = rcv_rng_uniform(rng);
        memset(mix, 0, per * sizeof(float));
        for (int k = 0; k < width; k++) {
            memcpy(chain, xi, per * sizeof(float));
            int depth = cfg->depth > 0 ? cfg->depth : 1 + (int)rcv_rng_below(rng, 3);
            for (int d = 0; d < depth; d++) random_op(chain, h, w, c, sev, rng);
            for (size_t e = 0; e < per; e++) mix[e] += ws[k] * chain[e];
        }
        for (size_t e = 0; e < per; e++) out[(size_t)i * per + e] = (1 - m) * xi[e] + m * mix[e];
    }
    free(chain);
    free(mix);
}
