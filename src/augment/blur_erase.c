// Gaussian blur (torchvision's F.gaussian_blur: a separable normalized Gaussian on a linspace
// grid, reflect padding) and random erasing (F.erase and RandomErasing.get_params).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment/aug_internal.h"
#include "robustcv/error.h"

// Kernel of size k: exp(-0.5 (x / sigma)^2) at x = linspace(-(k-1)/2, (k-1)/2, k), normalized.
static void kernel1d(int k, float sigma, float *out) {
    float half = (k - 1) * 0.5f, s = 0;
    for (int i = 0; i < k; i++) {
        float x = -half + (float)i;
        out[i] = expf(-0.5f * (x / sigma) * (x / sigma));
        s += out[i];
    }
    for (int i = 0; i < k; i++) out[i] /= s;
}

static inline int reflect(int p, int n) {
    if (n == 1) return 0;
    while (p < 0 || p >= n) p = p < 0 ? -p : 2 * (n - 1) - p;
    return p;
}

// x: (h, w, c), in place; kh, kw odd.
void rcv_aug_gaussian_blur(float *x, int h, int w, int c, int kh, int kw, float sy, float sx) {
    float *ky = rcv_xmalloc(sizeof(float) * (size_t)(kh + kw)), *kx = ky + kh;
    kernel1d(kh, sy, ky);
    kernel1d(kw, sx, kx);
    float *tmp = rcv_xmalloc(sizeof(float) * (size_t)h * w * c);
    int rx = kw / 2, ry = kh / 2;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            for (int k = 0; k < c; k++) {
                float s = 0;
                for (int t = 0; t < kw; t++) s += kx[t] * x[((size_t)i * w + reflect(j + t - rx, w)) * c + k];
                tmp[((size_t)i * w + j) * c + k] = s;
            }
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            for (int k = 0; k < c; k++) {
                float s = 0;
                for (int t = 0; t < kh; t++) s += ky[t] * tmp[((size_t)reflect(i + t - ry, h) * w + j) * c + k];
                x[((size_t)i * w + j) * c + k] = s;
            }
    free(tmp);
    free(ky);
}

void rcv_aug_erase(float *x, int h, int w, int c, int i, int j, int eh, int ew, const float *values, float fill) {
    for (int a = 0; a < eh; a++) {
        float *row = x + ((size_t)(i + a) * w + j) * c;
        if (values) memcpy(row, values + (size_t)a * ew * c, sizeof(float) * (size_t)ew * c);
        else
            for (int b = 0; b < ew * c; b++) row[b] = fill;
    }
}

int aug_erase_params(rcv_rng *r, int h, int w, const float scale[2], const float ratio[2], int *i, int *j, int *eh,
                     int *ew) {
    double area = (double)h * w, lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    for (int t = 0; t < 10; t++) {
        double ea = area * aug_uniform(r, scale[0], scale[1]);
        double ar = exp(lr0 + (lr1 - lr0) * rcv_rng_uniform(r));
        int hh = (int)nearbyint(sqrt(ea * ar)), ww = (int)nearbyint(sqrt(ea / ar));
        if (!(hh < h && ww < w)) continue;
        *i = aug_randint(r, 0, h - hh + 1);
        *j = aug_randint(r, 0, w - ww + 1);
        *eh = hh;
        *ew = ww;
        return 1;
    }
    return 0;
}
