// The ops of torchvision 0.14's autoaugment._apply_op as its functional_tensor ops do them on a
// uint8 image: the blends (brightness, color, contrast, sharpness) in float32, one rounding per
// torch op (no fused multiply-add: -std=c11 keeps GCC's fp-contract off), then truncated back to
// uint8 like .to(torch.uint8); warps with nearest sampling and the result rounded; posterize,
// solarize, autocontrast, equalize and invert on the 8-bit values. Images here are (h, w, c) with
// the 8-bit values held as floats, so the warps of warp.c serve unchanged.
#include <math.h>
#include <string.h>

#include "augment/aug_internal.h"

const char *const aug_policy_op_names[POL_N_OPS] = {
    "Identity", "ShearX",    "ShearY",    "TranslateX", "TranslateY",   "Rotate",   "Brightness", "Color",
    "Contrast", "Sharpness", "Posterize", "Solarize",   "AutoContrast", "Equalize", "Invert"};

// .clamp(0, 255).to(torch.uint8): truncation toward zero.
static inline float to_u8(float v) { return truncf(v < 0 ? 0.0f : v > 255 ? 255.0f : v); }

// rgb_to_grayscale on uint8: (0.2989 r + 0.587 g + 0.114 b).to(uint8), one float32 op at a time.
static inline float gray_u8(const float *p) {
    float s = 0.2989f * p[0];
    s = s + 0.587f * p[1];
    s = s + 0.114f * p[2];
    return truncf(s);
}

// _blend(img, other, ratio): ratio * img + (1 - ratio) * other, the scalars as float32 (the
// python floats cast to the tensor's float32), other per pixel (stride 1) or one value (stride 0).
static void blend(float *u, size_t n, int c, const float *other, int per_pixel, double ratio) {
    float r = (float)ratio, q = (float)(1.0 - ratio);
    for (size_t i = 0; i < n; i++) {
        float o = per_pixel ? other[i / (size_t)c] : other[0];
        float a = r * u[i], b = q * o;
        u[i] = to_u8(a + b);
    }
}

// F.adjust_sharpness's degenerate image: the 3x3 kernel (1 1 1; 1 5 1; 1 1 1) / 13 on the interior,
// rounded (torch.round: half to even) back to uint8; the border keeps the image.
static void degenerate(const float *u, int h, int w, int c, float *d) {
    const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
    memcpy(d, u, sizeof(float) * (size_t)h * w * c);
    for (int i = 1; i < h - 1; i++)
        for (int j = 1; j < w - 1; j++)
            for (int ch = 0; ch < c; ch++) {
                float s = 0;
                for (int di = -1; di <= 1; di++)
                    for (int dj = -1; dj <= 1; dj++)
                        s += (di || dj ? k1 : k5) * u[((size_t)(i + di) * w + (j + dj)) * c + ch];
                d[((size_t)i * w + j) * c + ch] = nearbyintf(s);
            }
}

// F.equalize's _scale_channel: lut from the cumulative histogram with step = (pixels outside the
// highest occupied bin) / 255; a channel with step 0 is left as it is.
static void equalize(float *u, int hw, int c) {
    for (int ch = 0; ch < c; ch++) {
        long hist[256] = {0}, cum = 0;
        for (int i = 0; i < hw; i++) hist[(int)u[(size_t)i * c + ch]]++;
        int last = 255;
        while (last > 0 && !hist[last]) last--;
        long step = ((long)hw - hist[last]) / 255;
        if (step == 0) continue;
        float lut[256];
        for (int v = 0; v < 256; v++) {
            long l = (cum + step / 2) / step; // lut shifted by one: entry v uses cumsum up to v - 1
            lut[v] = (float)(l > 255 ? 255 : l);
            cum += hist[v];
        }
        for (int i = 0; i < hw; i++) u[(size_t)i * c + ch] = lut[(int)u[(size_t)i * c + ch]];
    }
}

// F.autocontrast: each channel stretched from [min, max] to [0, 255] in float32, truncated.
static void autocontrast(float *u, int hw, int c) {
    for (int ch = 0; ch < c; ch++) {
        float lo = 255, hi = 0;
        for (int i = 0; i < hw; i++) {
            float v = u[(size_t)i * c + ch];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (hi == lo) continue; // scale = inf: torchvision sets min 0, scale 1
        float scale = 255.0f / (hi - lo);
        for (int i = 0; i < hw; i++) {
            float *p = &u[(size_t)i * c + ch];
            *p = to_u8((*p - lo) * scale);
        }
    }
}

int aug_policy_op(int op, float magnitude, float *u, int h, int w, int c, float fill255, float *tmp, double fwd[6]) {
    size_t n = (size_t)h * w * c;
    int hw = h * w;
    // The warped image is rounded back to uint8; only the fill can be fractional.
    float fill = nearbyintf(fill255);
    double m = magnitude;
    switch (op) {
    case POL_SHEAR_X: // about the top-left corner (center=[0, 0]); shear angle atan(m) in degrees
    case POL_SHEAR_Y: {
        double deg = atan(m) * (180.0 / M_PI);
        aug_affine_about(u, h, w, c, 0, 0, 0, 1, op == POL_SHEAR_X ? deg : 0, op == POL_SHEAR_Y ? deg : 0, -0.5 * w,
                         -0.5 * h, fill, tmp, fwd);
        memcpy(u, tmp, n * sizeof(float));
        return 1;
    }
    case POL_TRANSLATE_X: // translate=[int(m), 0] (truncation toward zero)
    case POL_TRANSLATE_Y: {
        double t = trunc(m);
        aug_affine_about(u, h, w, c, 0, op == POL_TRANSLATE_X ? t : 0, op == POL_TRANSLATE_Y ? t : 0, 1, 0, 0, 0, 0,
                         fill, tmp, fwd);
        memcpy(u, tmp, n * sizeof(float));
        return 1;
    }
    case POL_ROTATE: // F.rotate: counter-clockwise, about the centre
        aug_affine_about(u, h, w, c, -m, 0, 0, 1, 0, 0, 0, 0, fill, tmp, fwd);
        memcpy(u, tmp, n * sizeof(float));
        return 1;
    case POL_BRIGHTNESS: {
        float zero = 0;
        blend(u, n, c, &zero, 0, 1.0 + m);
        break;
    }
    case POL_COLOR: // adjust_saturation: a 1-channel image is returned as it is
        if (c != 3) break;
        for (int i = 0; i < hw; i++) tmp[i] = gray_u8(u + 3 * (size_t)i);
        blend(u, n, c, tmp, 1, 1.0 + m);
        break;
    case POL_CONTRAST: { // blend with the mean of the (uint8) grey image, as float32
        double s = 0;
        if (c == 3)
            for (int i = 0; i < hw; i++) s += gray_u8(u + 3 * (size_t)i);
        else
            for (int i = 0; i < hw; i++) s += u[i];
        float mean = (float)s / (float)hw;
        blend(u, n, c, &mean, 0, 1.0 + m);
        break;
    }
    case POL_SHARPNESS:
        if (h <= 2 || w <= 2) break;
        degenerate(u, h, w, c, tmp);
        // per-value degenerate: blend with stride c reads other[i / c]; use c = 1 for elementwise
        blend(u, n, 1, tmp, 1, 1.0 + m);
        break;
    case POL_POSTERIZE: { // img & -(2 ** (8 - bits)), bits = int(m)
        int bits = (int)m;
        int mask = bits == 8 ? 255 : bits > 8 || bits <= 0 ? 0 : (-(1 << (8 - bits))) & 255; // int(2 ** -k) = 0
        for (size_t i = 0; i < n; i++) u[i] = (float)((int)u[i] & mask);
        break;
    }
    case POL_SOLARIZE: // where(img >= threshold, 255 - img, img)
        for (size_t i = 0; i < n; i++)
            if (u[i] >= magnitude) u[i] = 255 - u[i];
        break;
    case POL_AUTOCONTRAST: autocontrast(u, hw, c); break;
    case POL_EQUALIZE: equalize(u, hw, c); break;
    case POL_INVERT:
        for (size_t i = 0; i < n; i++) u[i] = 255 - u[i];
        break;
    default: break; // Identity
    }
    return 0;
}
