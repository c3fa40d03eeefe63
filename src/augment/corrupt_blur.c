// Blur corruptions (defocus, glass, zoom, motion, elastic) and the filters they share, following
// make_tinyimagenet_c.py's constants and its libraries' conventions (scipy's gaussian_filter and
// zoom, OpenCV's filter2D borders, ImageMagick's motion-blur kernel).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment/corrupt_internal.h"
#include "robustcv/error.h"

static int border(int p, int n, cor_border mode) {
    if (p >= 0 && p < n) return p;
    if (n == 1) return 0;
    if (mode == CB_NEAREST) return p < 0 ? 0 : n - 1;
    if (mode == CB_REFLECT) { // d c b a | a b c d | d c b a (scipy 'reflect')
        int period = 2 * n;
        p %= period;
        if (p < 0) p += period;
        return p < n ? p : period - 1 - p;
    }
    while (p < 0 || p >= n) p = p < 0 ? -p : 2 * (n - 1) - p; // OpenCV's BORDER_REFLECT_101
    return p;
}

// Separable correlation of each channel with kernels ky (2 ry + 1) and kx (2 rx + 1).
static void sep_filter(float *x, int h, int w, int c, const double *ky, int ry, const double *kx, int rx,
                       cor_border mode) {
    float *tmp = rcv_xmalloc(sizeof(float) * (size_t)h * w * c);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            for (int k = 0; k < c; k++) {
                double s = 0;
                for (int t = -rx; t <= rx; t++) s += kx[t + rx] * x[((size_t)i * w + border(j + t, w, mode)) * c + k];
                tmp[((size_t)i * w + j) * c + k] = (float)s;
            }
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            for (int k = 0; k < c; k++) {
                double s = 0;
                for (int t = -ry; t <= ry; t++) s += ky[t + ry] * tmp[((size_t)border(i + t, h, mode) * w + j) * c + k];
                x[((size_t)i * w + j) * c + k] = (float)s;
            }
    free(tmp);
}

void cor_gaussian(float *x, int h, int w, int c, float sigma, float truncate, cor_border mode) {
    if (sigma <= 0) return;
    int r = (int)(truncate * sigma + 0.5f);
    double *k = rcv_xmalloc(sizeof(double) * (size_t)(2 * r + 1)), s = 0;
    for (int t = -r; t <= r; t++) s += k[t + r] = exp(-0.5 * t * t / ((double)sigma * sigma));
    for (int t = 0; t <= 2 * r; t++) k[t] /= s;
    sep_filter(x, h, w, c, k, r, k, r, mode);
    free(k);
}

// disk(radius, alias_blur): the aliased disk X^2 + Y^2 <= r^2 on a 17 x 17 grid (radius <= 8),
// normalized, then cv2.GaussianBlur with a 3 x 3 kernel (reflect-101 borders); x is filtered
// with it per channel by cv2.filter2D (reflect-101).
void cor_defocus_blur(float *x, int h, int w, int s) {
    static const double c[5][2] = {{0.5, 0.6}, {1, 0.1}, {1.5, 0.1}, {2.5, 0.01}, {3, 0.1}};
    double radius = c[s - 1][0], alias = c[s - 1][1];
    enum { R = 8, N = 2 * R + 1 };
    double disk[N][N], sum = 0, g[3], gs = 0, k2[N][N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) sum += disk[i][j] = ((i - R) * (i - R) + (j - R) * (j - R)) <= radius * radius;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) disk[i][j] /= sum;
    for (int t = 0; t < 3; t++) gs += g[t] = exp(-((t - 1) * (t - 1)) / (2 * alias * alias));
    for (int t = 0; t < 3; t++) g[t] /= gs;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double v = 0;
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) v += g[a] * g[b] * disk[border(i + a - 1, N, CB_REFLECT101)][border(j + b - 1, N, CB_REFLECT101)];
            k2[i][j] = v;
        }
    float *src = rcv_xmalloc(sizeof(float) * (size_t)h * w * 3);
    memcpy(src, x, sizeof(float) * (size_t)h * w * 3);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            for (int k = 0; k < 3; k++) {
                double v = 0;
                for (int a = 0; a < N; a++) {
                    if (abs(a - R) > radius + 1) continue; // rows of zeros
                    const float *row = src + (size_t)border(i + a - R, h, CB_REFLECT101) * w * 3;
                    for (int b = 0; b < N; b++) v += k2[a][b] * row[border(j + b - R, w, CB_REFLECT101) * 3 + k];
                }
                x[((size_t)i * w + j) * 3 + k] = (float)v;
            }
    free(src);
}

// Blur, truncate to 8 bits, swap pixels with random neighbours (from the bottom-right corner
// up, offsets in [-d, d - 1] as np.random.randint draws them), blur again.
void cor_glass_blur(float *x, int h, int w, int s, rcv_rng *r) {
    static const int c_d[5] = {1, 1, 1, 2, 2}, c_it[5] = {1, 1, 2, 1, 2};
    static const float c_sig[5] = {0.1f, 0.5f, 0.6f, 0.7f, 0.9f};
    int d = c_d[s - 1];
    size_t n = (size_t)h * w * 3;
    cor_gaussian(x, h, w, 3, c_sig[s - 1], 4, CB_NEAREST);
    for (size_t i = 0; i < n; i++) x[i] = floorf(fminf(fmaxf(x[i], 0), 1) * 255.0f) / 255.0f;
    for (int it = 0; it < c_it[s - 1]; it++)
        for (int i = h - d; i > d; i--)
            for (int j = w - d; j > d; j--) {
                int dx = (int)rcv_rng_below(r, 2 * d) - d, dy = (int)rcv_rng_below(r, 2 * d) - d;
                float *a = x + ((size_t)i * w + j) * 3, *b = x + ((size_t)(i + dy) * w + (j + dx)) * 3;
                for (int k = 0; k < 3; k++) {
                    float t = a[k];
                    a[k] = b[k];
                    b[k] = t;
                }
            }
    cor_gaussian(x, h, w, 3, c_sig[s - 1], 4, CB_NEAREST);
}

// scipy.ndimage.zoom(order=1) of a (ih, iw, c) image to (oh, ow, c): output pixel o samples the
// input at o * (in - 1) / (out - 1).
static void zoom_linear(const float *src, int ih, int iw, int c, float *dst, int oh, int ow) {
    for (int i = 0; i < oh; i++) {
        double fy = oh > 1 ? (double)i * (ih - 1) / (oh - 1) : 0;
        int y0 = (int)floor(fy), y1 = y0 + 1 < ih ? y0 + 1 : ih - 1;
        double ly = fy - y0;
        for (int j = 0; j < ow; j++) {
            double fx = ow > 1 ? (double)j * (iw - 1) / (ow - 1) : 0;
            int x0 = (int)floor(fx), x1 = x0 + 1 < iw ? x0 + 1 : iw - 1;
            double lx = fx - x0;
            for (int k = 0; k < c; k++) {
                double a = src[((size_t)y0 * iw + x0) * c + k] * (1 - lx) + src[((size_t)y0 * iw + x1) * c + k] * lx;
                double b = src[((size_t)y1 * iw + x0) * c + k] * (1 - lx) + src[((size_t)y1 * iw + x1) * c + k] * lx;
                dst[((size_t)i * ow + j) * c + k] = (float)(a * (1 - ly) + b * ly);
            }
        }
    }
}

void cor_clipped_zoom(const float *src, int h, int w, int c, double z, float *dst) {
    int ch = (int)ceil(h / z), cw = (int)ceil(w / z);
    int top = (h - ch) / 2, left = (w - cw) / 2;
    float *crop = rcv_xmalloc(sizeof(float) * (size_t)ch * cw * c);
    for (int i = 0; i < ch; i++) memcpy(crop + (size_t)i * cw * c, src + ((size_t)(top + i) * w + left) * c, sizeof(float) * (size_t)cw * c);
    int oh = (int)nearbyint(ch * z), ow = (int)nearbyint(cw * z);
    float *big = rcv_xmalloc(sizeof(float) * (size_t)oh * ow * c);
    zoom_linear(crop, ch, cw, c, big, oh, ow);
    int tt = (oh - h) / 2, tl = (ow - w) / 2;
    for (int i = 0; i < h; i++) memcpy(dst + (size_t)i * w * c, big + ((size_t)(tt + i) * ow + tl) * c, sizeof(float) * (size_t)w * c);
    free(big);
    free(crop);
}

// The average of the image and its zooms by 1, 1.01, ... (np.arange(1, end, 0.01)).
void cor_zoom_blur(float *x, int h, int w, int s) {
    static const int count[5] = {7, 12, 16, 21, 26};
    size_t n = (size_t)h * w * 3;
    double *acc = rcv_xcalloc(n, sizeof(double));
    float *z = rcv_xmalloc(sizeof(float) * n);
    for (int i = 0; i < count[s - 1]; i++) {
        cor_clipped_zoom(x, h, w, 3, 1.0 + 0.01 * i, z);
        for (size_t k = 0; k < n; k++) acc[k] += z[k];
    }
    for (size_t k = 0; k < n; k++) x[k] = (float)((x[k] + acc[k]) / (count[s - 1] + 1));
    free(z);
    free(acc);
}

void cor_motion_blur(const uint8_t *src, uint8_t *dst, int h, int w, int c, double radius, double sigma, double angle) {
    int width = (int)(2 * ceil(radius) + 1);
    double *k = rcv_xmalloc(sizeof(double) * (size_t)width), tot = 0;
    int *ox = rcv_xmalloc(sizeof(int) * (size_t)width * 2), *oy = ox + width;
    double a = angle * M_PI / 180;
    for (int i = 0; i < width; i++) {
        tot += k[i] = exp(-((double)i * i) / (2 * sigma * sigma));
        ox[i] = (int)ceil(i * cos(a) - 0.5);
        oy[i] = (int)ceil(i * sin(a) - 0.5);
    }
    for (int i = 0; i < width; i++) k[i] /= tot;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                double v = 0;
                for (int i = 0; i < width; i++) {
                    int sy = y + oy[i], sx = x + ox[i];
                    sy = sy < 0 ? 0 : sy >= h ? h - 1 : sy;
                    sx = sx < 0 ? 0 : sx >= w ? w - 1 : sx;
                    v += k[i] * src[((size_t)sy * w + sx) * c + ch];
                }
                int q = (int)lrint(v);
                dst[((size_t)y * w + x) * c + ch] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
    free(k);
    free(ox);
}

// Bilinear sample of channel k at (fy, fx) with the given border rule for the 4 taps.
static float bilinear(const float *x, int h, int w, int k, double fy, double fx, cor_border mode) {
    int y0 = (int)floor(fy), x0 = (int)floor(fx);
    double ly = fy - y0, lx = fx - x0;
    int ya = border(y0, h, mode), yb = border(y0 + 1, h, mode), xa = border(x0, w, mode), xb = border(x0 + 1, w, mode);
    double a = x[((size_t)ya * w + xa) * 3 + k] * (1 - lx) + x[((size_t)ya * w + xb) * 3 + k] * lx;
    double b = x[((size_t)yb * w + xa) * 3 + k] * (1 - lx) + x[((size_t)yb * w + xb) * 3 + k] * lx;
    return (float)(a * (1 - ly) + b * ly);
}

// A random affine map of three points around the centre (cv2.getAffineTransform + warpAffine,
// bilinear, reflect-101), then a smooth random displacement field (Gaussian-filtered uniform
// noise scaled by alpha) sampled bilinearly with scipy's 'reflect' border.
void cor_elastic(float *x, int h, int w, int s, rcv_rng *r) {
    double im = h < w ? h : w; // IMSIZE (64 in the original)
    static const double c[5][3] = {{0, 0, 0.08}, {0.05, 0.3, 0.06}, {0.1, 0.08, 0.06}, {0.1, 0.03, 0.03}, {0.16, 0.03, 0.02}};
    double alpha = im * c[s - 1][0], sigma = im * c[s - 1][1], amax = im * c[s - 1][2];
    size_t npix = (size_t)h * w;
    // Points as the original builds them: centre = (h // 2, w // 2), used as (x, y) by OpenCV.
    double cx = h / 2, cy = w / 2, sq = (h < w ? h : w) / 3;
    double p1[3][2] = {{cx + sq, cy + sq}, {cx + sq, cy - sq}, {cx - sq, cy - sq}}, p2[3][2];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) p2[i][j] = p1[i][j] + (-amax + 2 * amax * cor_uniform(r));
    // Solve M (2 x 3) with p2 = M [p1; 1]; then invert it to map output pixels to input pixels.
    double A[3][3] = {{p1[0][0], p1[0][1], 1}, {p1[1][0], p1[1][1], 1}, {p1[2][0], p1[2][1], 1}};
    double det = A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) - A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
                 A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0]);
    double inv[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            inv[i][j] = (A[r0][c0] * A[r1][c1] - A[r0][c1] * A[r1][c0]) / det;
        }
    double M[2][3];
    for (int row = 0; row < 2; row++)
        for (int col = 0; col < 3; col++) {
            double v = 0;
            for (int t = 0; t < 3; t++) v += inv[col][t] * p2[t][row];
            M[row][col] = v;
        }
    double d2 = M[0][0] * M[1][1] - M[0][1] * M[1][0];
    double iM[2][3] = {{M[1][1] / d2, -M[0][1] / d2, 0}, {-M[1][0] / d2, M[0][0] / d2, 0}};
    iM[0][2] = -(iM[0][0] * M[0][2] + iM[0][1] * M[1][2]);
    iM[1][2] = -(iM[1][0] * M[0][2] + iM[1][1] * M[1][2]);
    float *warped = rcv_xmalloc(sizeof(float) * npix * 3);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            double sx = iM[0][0] * j + iM[0][1] * i + iM[0][2], sy = iM[1][0] * j + iM[1][1] * i + iM[1][2];
            for (int k = 0; k < 3; k++) warped[((size_t)i * w + j) * 3 + k] = bilinear(x, h, w, k, sy, sx, CB_REFLECT101);
        }
    float *dx = rcv_xmalloc(sizeof(float) * npix * 2), *dy = dx + npix;
    for (size_t i = 0; i < npix; i++) dx[i] = (float)(-1 + 2 * cor_uniform(r));
    for (size_t i = 0; i < npix; i++) dy[i] = (float)(-1 + 2 * cor_uniform(r));
    if (sigma > 0) {
        cor_gaussian(dx, h, w, 1, (float)sigma, 3, CB_REFLECT);
        cor_gaussian(dy, h, w, 1, (float)sigma, 3, CB_REFLECT);
    }
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            size_t p = (size_t)i * w + j;
            double fy = i + alpha * dy[p], fx = j + alpha * dx[p];
            for (int k = 0; k < 3; k++) x[p * 3 + k] = bilinear(warped, h, w, k, fy, fx, CB_REFLECT);
        }
    free(dx);
    free(warped);
}
