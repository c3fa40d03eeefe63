// Affine, rotation and perspective warps as torchvision does them on tensors: an inverse map from
// output pixel centres to input coordinates, then grid_sample(mode="nearest", align_corners=False)
// with out-of-image samples set to `fill`.
#include <math.h>

#include "augment/aug_internal.h"

// Inverse affine matrix (output -> input, coordinates relative to the image centre), torchvision's
// _get_inverse_affine_matrix about (cx, cy), also relative to the image centre (F.affine's
// center=None is (0, 0)). angle clockwise in degrees, shear in degrees.
static void inverse_affine_about(double angle, double tx, double ty, double scale, double shx, double shy, double cx,
                                 double cy, double m[6]) {
    double rot = angle * M_PI / 180, sx = shx * M_PI / 180, sy = shy * M_PI / 180;
    double a = cos(rot - sy) / cos(sy);
    double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    double c = sin(rot - sy) / cos(sy);
    double d = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    m[0] = d / scale; m[1] = -b / scale; m[2] = 0;
    m[3] = -c / scale; m[4] = a / scale; m[5] = 0;
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx;
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy;
}

static void inverse_affine(float angle, float tx, float ty, float scale, float shx, float shy, double m[6]) {
    inverse_affine_about(angle, tx, ty, scale, shx, shy, 0, 0, m);
}

// Nearest sample of src at input index coordinates (ix, iy) (pixel centres at integers).
static inline void sample_nearest(const float *src, int h, int w, int c, float ix, float iy, float fill, float *out) {
    // grid_sample rounds half to even (nearbyint).
    int x = (int)nearbyintf(ix), y = (int)nearbyintf(iy);
    if (ix > -1.0f && iy > -1.0f && x >= 0 && x < w && y >= 0 && y < h) {
        const float *s = src + ((size_t)y * w + x) * c;
        for (int k = 0; k < c; k++) out[k] = s[k];
    } else {
        for (int k = 0; k < c; k++) out[k] = fill;
    }
}

// m: output -> input in centred coordinates. Follows torchvision's float32 arithmetic: the base
// grid at centred pixel centres, theta divided by half the size, then grid_sample's unnormalize.
static void warp_affine(const float *src, int h, int w, int c, const double m[6], float fill, float *dst) {
    float hw = 0.5f * (float)w, hh = 0.5f * (float)h;
    float t0 = (float)m[0] / hw, t1 = (float)m[1] / hw, t2 = (float)m[2] / hw;
    float t3 = (float)m[3] / hh, t4 = (float)m[4] / hh, t5 = (float)m[5] / hh;
    for (int i = 0; i < h; i++) {
        float y = -(float)h * 0.5f + 0.5f + (float)i;
        for (int j = 0; j < w; j++) {
            float x = -(float)w * 0.5f + 0.5f + (float)j;
            float gx = x * t0 + y * t1 + t2, gy = x * t3 + y * t4 + t5;
            float ix = ((gx + 1.0f) * (float)w - 1.0f) * 0.5f, iy = ((gy + 1.0f) * (float)h - 1.0f) * 0.5f;
            sample_nearest(src, h, w, c, ix, iy, fill, dst + ((size_t)i * w + j) * c);
        }
    }
}

void rcv_aug_affine(const float *src, int h, int w, int c, float angle, float tx, float ty, float scale, float shear_x,
                    float shear_y, float fill, float *dst) {
    double m[6];
    inverse_affine(angle, tx, ty, scale, shear_x, shear_y, m);
    warp_affine(src, h, w, c, m, fill, dst);
}

void rcv_aug_rotate(const float *src, int h, int w, int c, float angle, float fill, float *dst) {
    double m[6];
    inverse_affine(-angle, 0, 0, 1, 0, 0, m);
    warp_affine(src, h, w, c, m, fill, dst);
}

// The forward affine map in continuous pixel coordinates: the inverse of the output -> input map,
// with the centre shift (w/2, h/2) on both sides.
static void forward_of(int h, int w, const double m[6], double f[6]) {
    double det = m[0] * m[4] - m[1] * m[3];
    double a = m[4] / det, b = -m[1] / det, c = -m[3] / det, d = m[0] / det;
    double cx = 0.5 * w, cy = 0.5 * h;
    // out_c = A (in_c - t_m) with t_m = (m[2], m[5]); then shift by the centre.
    f[0] = a; f[1] = b; f[3] = c; f[4] = d;
    f[2] = -(a * (m[2] + cx) + b * (m[5] + cy)) + cx;
    f[5] = -(c * (m[2] + cx) + d * (m[5] + cy)) + cy;
}

void aug_affine_forward(int h, int w, float angle, float tx, float ty, float scale, float shx, float shy,
                        double f[6]) {
    double m[6];
    inverse_affine(angle, tx, ty, scale, shx, shy, m);
    forward_of(h, w, m, f);
}

void aug_affine_about(const float *src, int h, int w, int c, double angle, double tx, double ty, double scale,
                      double shx, double shy, double cx, double cy, float fill, float *dst, double fwd[6]) {
    double m[6];
    inverse_affine_about(angle, tx, ty, scale, shx, shy, cx, cy, m);
    warp_affine(src, h, w, c, m, fill, dst);
    if (fwd) forward_of(h, w, m, fwd);
}

// Solves the 8x8 system for coefficients (a..h) with to = P(from):
// x_to = (a x + b y + c) / (g x + h y + 1), y_to = (d x + e y + f) / (g x + h y + 1).
void aug_perspective_coeffs(const float from[8], const float to[8], double coef[8]) {
    double A[8][9];
    for (int i = 0; i < 4; i++) {
        double x = from[2 * i], y = from[2 * i + 1], u = to[2 * i], v = to[2 * i + 1];
        double r0[9] = {x, y, 1, 0, 0, 0, -u * x, -u * y, u};
        double r1[9] = {0, 0, 0, x, y, 1, -v * x, -v * y, v};
        for (int k = 0; k < 9; k++) A[2 * i][k] = r0[k], A[2 * i + 1][k] = r1[k];
    }
    for (int col = 0; col < 8; col++) { // Gaussian elimination with partial pivoting
        int piv = col;
        for (int r = col + 1; r < 8; r++)
            if (fabs(A[r][col]) > fabs(A[piv][col])) piv = r;
        for (int k = 0; k < 9; k++) {
            double t = A[col][k];
            A[col][k] = A[piv][k];
            A[piv][k] = t;
        }
        for (int r = 0; r < 8; r++) {
            if (r == col || A[col][col] == 0) continue;
            double f = A[r][col] / A[col][col];
            for (int k = col; k < 9; k++) A[r][k] -= f * A[col][k];
        }
    }
    for (int i = 0; i < 8; i++) coef[i] = A[i][i] != 0 ? A[i][8] / A[i][i] : 0;
}

// torchvision's perspective: coefficients map output (end) points to input (start) points; the
// grid is evaluated at pixel centres (j + 0.5, i + 0.5), and input index = value - 0.5.
void rcv_aug_perspective(const float *src, int h, int w, int c, const float start[8], const float end[8], float fill,
                         float *dst) {
    double k[8];
    aug_perspective_coeffs(end, start, k);
    float hw = 0.5f * (float)w, hh = 0.5f * (float)h;
    float a = (float)k[0] / hw, b = (float)k[1] / hw, cc = (float)k[2] / hw;
    float d = (float)k[3] / hh, e = (float)k[4] / hh, f = (float)k[5] / hh;
    float g = (float)k[6], hq = (float)k[7];
    for (int i = 0; i < h; i++) {
        float y = (float)i + 0.5f;
        for (int j = 0; j < w; j++) {
            float x = (float)j + 0.5f;
            float den = g * x + hq * y + 1.0f;
            float gx = (a * x + b * y + cc) / den - 1.0f, gy = (d * x + e * y + f) / den - 1.0f;
            float ix = ((gx + 1.0f) * (float)w - 1.0f) * 0.5f, iy = ((gy + 1.0f) * (float)h - 1.0f) * 0.5f;
            sample_nearest(src, h, w, c, ix, iy, fill, dst + ((size_t)i * w + j) * c);
        }
    }
}

void aug_affine_params(rcv_rng *r, int h, int w, const float degrees[2], const float translate[2],
                       const float scale[2], const float shear[4], float out[6]) {
    out[0] = aug_uniform(r, degrees[0], degrees[1]);
    float mx = translate[0] * (float)w, my = translate[1] * (float)h;
    out[1] = (float)nearbyint(aug_uniform(r, -mx, mx));
    out[2] = (float)nearbyint(aug_uniform(r, -my, my));
    out[3] = aug_uniform(r, scale[0], scale[1]);
    out[4] = aug_uniform(r, shear[0], shear[1]);
    out[5] = aug_uniform(r, shear[2], shear[3]);
}

void aug_perspective_params(rcv_rng *r, int h, int w, float dist, float start[8], float end[8]) {
    int hh = h / 2, hw = w / 2;
    int dw = (int)(dist * hw), dh = (int)(dist * hh);
    float s[8] = {0, 0, (float)(w - 1), 0, (float)(w - 1), (float)(h - 1), 0, (float)(h - 1)};
    end[0] = (float)aug_randint(r, 0, dw + 1);
    end[1] = (float)aug_randint(r, 0, dh + 1);
    end[2] = (float)aug_randint(r, w - dw - 1, w);
    end[3] = (float)aug_randint(r, 0, dh + 1);
    end[4] = (float)aug_randint(r, w - dw - 1, w);
    end[5] = (float)aug_randint(r, h - dh - 1, h);
    end[6] = (float)aug_randint(r, 0, dw + 1);
    end[7] = (float)aug_randint(r, h - dh - 1, h);
    for (int i = 0; i < 8; i++) start[i] = s[i];
}

void aug_boxes_map(float *boxes, int n, aug_point_fn f, const void *ctx, int w, int h) {
    for (int b = 0; b < n; b++) {
        float *bx = boxes + 4 * b;
        float xs[4] = {bx[0], bx[2], bx[2], bx[0]}, ys[4] = {bx[1], bx[1], bx[3], bx[3]};
        float x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
        for (int k = 0; k < 4; k++) {
            float ox, oy;
            f(ctx, xs[k], ys[k], &ox, &oy);
            x0 = fminf(x0, ox); x1 = fmaxf(x1, ox);
            y0 = fminf(y0, oy); y1 = fmaxf(y1, oy);
        }
        bx[0] = fminf(fmaxf(x0, 0), (float)w);
        bx[1] = fminf(fmaxf(y0, 0), (float)h);
        bx[2] = fminf(fmaxf(x1, 0), (float)w);
        bx[3] = fminf(fmaxf(y1, 0), (float)h);
    }
}
