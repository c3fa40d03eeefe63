// Random-parameter draws of the transforms (torchvision's get_params), shared by the pipeline and
// the tests that check the drawn values stay in their documented ranges.
#ifndef RCV_AUG_INTERNAL_H
#define RCV_AUG_INTERNAL_H

#include "robustcv/augment.h"

// RandomResizedCrop.get_params: 10 tries at area in scale*h*w and log-uniform aspect in ratio,
// else the centre crop clamped to the ratio range.
void aug_rrc_params(rcv_rng *r, int h, int w, const float scale[2], const float ratio[2], int *top, int *left,
                    int *ch, int *cw);
// RandomErasing.get_params: 0 when none of 10 tries fits (no erasing), else 1 and the rectangle.
int aug_erase_params(rcv_rng *r, int h, int w, const float scale[2], const float ratio[2], int *i, int *j, int *eh,
                     int *ew);
// RandomAffine.get_params: angle in [deg0, deg1]; tx, ty integers within +-translate * size; scale in
// [scale0, scale1]; shear_x in [shear0, shear1], shear_y in [shear2, shear3].
void aug_affine_params(rcv_rng *r, int h, int w, const float degrees[2], const float translate[2],
                       const float scale[2], const float shear[4], float out[6]);
// RandomPerspective.get_params: start = image corners, end = corners moved inwards by at most
// distortion_scale * half the size. Corners (x, y): tl, tr, br, bl.
void aug_perspective_params(rcv_rng *r, int h, int w, float distortion, float start[8], float end[8]);
// ColorJitter.get_params: a random order of the 4 adjustments and the factors (brightness,
// contrast, saturation in [lo, hi]; hue in [lo, hi] within [-0.5, 0.5]).
void aug_jitter_params(rcv_rng *r, const float ranges[8], int order[4], float factors[4]);
// Uniform in [lo, hi).
static inline float aug_uniform(rcv_rng *r, float lo, float hi) { return lo + (hi - lo) * rcv_rng_uniform(r); }
// Integer in [lo, hi) (torch.randint's bounds); lo when the range is empty.
static inline int aug_randint(rcv_rng *r, int lo, int hi) {
    return hi > lo ? lo + (int)rcv_rng_below(r, (uint32_t)(hi - lo)) : lo;
}

// Box mapping: boxes (n x 4) transformed by the point map f (a continuous-coordinate map), taking
// the bounding box of the 4 mapped corners and clipping to [0, w] x [0, h].
typedef void (*aug_point_fn)(const void *ctx, float x, float y, float *ox, float *oy);
void aug_boxes_map(float *boxes, int n, aug_point_fn f, const void *ctx, int w, int h);
// Forward maps of the warps, in continuous pixel coordinates (pixel j covers [j, j + 1)).
void aug_affine_forward(int h, int w, float angle, float tx, float ty, float scale, float shx, float shy,
                        double m[6]);
void aug_perspective_coeffs(const float from[8], const float to[8], double coef[8]);

#endif
