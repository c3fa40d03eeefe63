// Flips, padded crops and resized crops (torchvision's hflip, vflip, pad + crop, resized_crop and
// RandomResizedCrop.get_params).
#include <math.h>
#include <string.h>

#include "augment/aug_internal.h"

// x: (h, w, c), in place.
void rcv_aug_hflip(float *x, int h, int w, int c) {
    for (int i = 0; i < h; i++) {
        float *row = x + (size_t)i * w * c;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int k = 0; k < c; k++) {
                float t = row[a * c + k];
                row[a * c + k] = row[b * c + k];
                row[b * c + k] = t;
            }
    }
}

void rcv_aug_vflip(float *x, int h, int w, int c) {
    size_t n = (size_t)w * c;
    for (int a = 0, b = h - 1; a < b; a++, b--) {
        float *ra = x + a * n, *rb = x + b * n;
        for (size_t k = 0; k < n; k++) {
            float t = ra[k];
            ra[k] = rb[k];
            rb[k] = t;
        }
    }
}

// Index into [0, n) of padded coordinate p (p in [-pad, n + pad)); -1 for constant padding.
static int pad_index(int p, int n, rcv_pad_mode mode) {
    if (p >= 0 && p < n) return p;
    switch (mode) {
    case RCV_PAD_EDGE: return p < 0 ? 0 : n - 1;
    case RCV_PAD_REFLECT: // torch's "reflect": the edge pixel is not repeated
        if (n == 1) return 0;
        while (p < 0 || p >= n) p = p < 0 ? -p : 2 * (n - 1) - p;
        return p;
    default: return -1;
    }
}

// src: (h, w, c); dst: (oh, ow, c) = crop(pad(src, pad), top, left, oh, ow).
void rcv_aug_pad_crop(const float *src, int h, int w, int c, int pad, rcv_pad_mode mode, float fill, int top,
                      int left, int oh, int ow, float *dst) {
    for (int i = 0; i < oh; i++) {
        int si = pad_index(top + i - pad, h, mode);
        float *d = dst + (size_t)i * ow * c;
        // The interior run is one memcpy: crops at 20k images/s are mostly copying.
        int j0 = pad - left, j1 = pad - left + w; // output columns that map inside the source row
        if (j0 < 0) j0 = 0;
        if (j1 > ow) j1 = ow;
        for (int j = 0; j < ow; j++) {
            if (si >= 0 && j == j0 && j1 > j0) {
                memcpy(d + (size_t)j * c, src + ((size_t)si * w + (j + left - pad)) * c, (size_t)(j1 - j0) * c * sizeof(float));
                j = j1 - 1;
                continue;
            }
            int sj = pad_index(left + j - pad, w, mode);
            for (int k = 0; k < c; k++)
                d[(size_t)j * c + k] = (si < 0 || sj < 0) ? fill : src[((size_t)si * w + sj) * c + k];
        }
    }
}

// PyTorch's bilinear taps (align_corners=False): source = (i + 0.5) * in / out - 0.5, clamped at 0.
static void taps(int i, int in, int out, int *i0, int *i1, float *l1) {
    float scale = (float)in / (float)out;
    float s = ((float)i + 0.5f) * scale - 0.5f;
    if (s < 0) s = 0;
    int a = (int)s;
    *i0 = a;
    *i1 = a + (a < in - 1);
    *l1 = s - (float)a;
}

void rcv_aug_resized_crop(const float *src, int h, int w, int c, int top, int left, int ch, int cw, int oh, int ow,
                          float *dst) {
    for (int i = 0; i < oh; i++) {
        int y0, y1;
        float ly;
        taps(i, ch, oh, &y0, &y1, &ly);
        const float *r0 = src + (size_t)(top + y0) * w * c, *r1 = src + (size_t)(top + y1) * w * c;
        for (int j = 0; j < ow; j++) {
            int x0, x1;
            float lx;
            taps(j, cw, ow, &x0, &x1, &lx);
            x0 += left;
            x1 += left;
            for (int k = 0; k < c; k++) {
                float a = (1 - lx) * r0[x0 * c + k] + lx * r0[x1 * c + k];
                float b = (1 - lx) * r1[x0 * c + k] + lx * r1[x1 * c + k];
                dst[((size_t)i * ow + j) * c + k] = (1 - ly) * a + ly * b;
            }
        }
    }
}

void aug_rrc_params(rcv_rng *r, int h, int w, const float scale[2], const float ratio[2], int *top, int *left,
                    int *ch, int *cw) {
    double area = (double)h * w, lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    for (int t = 0; t < 10; t++) {
        double target = area * aug_uniform(r, scale[0], scale[1]);
        double aspect = exp(lr0 + (lr1 - lr0) * rcv_rng_uniform(r));
        int cww = (int)nearbyint(sqrt(target * aspect)), chh = (int)nearbyint(sqrt(target / aspect));
        if (cww > 0 && cww <= w && chh > 0 && chh <= h) {
            *top = aug_randint(r, 0, h - chh + 1);
            *left = aug_randint(r, 0, w - cww + 1);
            *ch = chh;
            *cw = cww;
            return;
        }
    }
    double in_ratio = (double)w / h;
    int cww = w, chh = h;
    if (in_ratio < ratio[0]) chh = (int)nearbyint(w / ratio[0]);
    else if (in_ratio > ratio[1]) cww = (int)nearbyint(h * ratio[1]);
    *ch = chh;
    *cw = cww;
    *top = (h - chh) / 2;
    *left = (w - cww) / 2;
}
