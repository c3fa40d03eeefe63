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
// F.affine on a tensor (nearest) about the centre (cx, cy), given relative to the image centre as
// torchvision's center_f ((0, 0): center=None; (-w/2, -h/2): center=[0, 0]); doubles so a shear of
// degrees(atan(m)) reaches the matrix unrounded. fwd (may be NULL): the forward map for boxes.
void aug_affine_about(const float *src, int h, int w, int c, double angle, double tx, double ty, double scale,
                      double shx, double shy, double cx, double cy, float fill, float *dst, double fwd[6]);

// ---- Automatic augmentation policies: torchvision 0.14's AutoAugment, RandAugment and
// TrivialAugmentWide (policy.c) over the ops of its autoaugment._apply_op (policy_ops.c).
// The ops, in the order of RandAugment's and TrivialAugmentWide's augmentation spaces; Invert
// (AutoAugment only) last.
enum { POL_IDENTITY, POL_SHEAR_X, POL_SHEAR_Y, POL_TRANSLATE_X, POL_TRANSLATE_Y, POL_ROTATE, POL_BRIGHTNESS,
       POL_COLOR, POL_CONTRAST, POL_SHARPNESS, POL_POSTERIZE, POL_SOLARIZE, POL_AUTOCONTRAST, POL_EQUALIZE,
       POL_INVERT, POL_N_OPS };
extern const char *const aug_policy_op_names[POL_N_OPS]; // torchvision's op names ("ShearX", ...)
// One op as _apply_op does it on a uint8 tensor, with `magnitude` already signed. u: (h, w, c) 8-bit
// values held as floats (0..255, integers), in place; tmp: h*w*c floats of scratch; fill255: the
// value outside the image (0..255, rounded as torchvision rounds the warped uint8 image). fwd:
// set to the op's forward point map when it moves pixels (returns 1), else returns 0.
int aug_policy_op(int op, float magnitude, float *u, int h, int w, int c, float fill255, float *tmp, double fwd[6]);

enum { POLICY_AUTO, POLICY_RAND, POLICY_TRIVIAL };
enum { POLICY_IMAGENET, POLICY_CIFAR10, POLICY_SVHN };
#define POL_MAX_OPS 16
typedef struct {
    int kind;      // POLICY_*
    int policy;    // AutoAugment: POLICY_IMAGENET, _CIFAR10, _SVHN
    int num_ops;   // RandAugment: ops per image (1..POL_MAX_OPS)
    int magnitude; // RandAugment: the bin (0..bins-1)
    int bins;      // RandAugment, TrivialAugmentWide: num_magnitude_bins (>= 2)
    float fill;    // value outside the image, in [0, 1]
} aug_policy;
// One AutoAugment step: (op, probability, magnitude bin or -1 for None).
typedef struct {
    int op;
    float p;
    int bin;
} aug_policy_step;
// The 25 sub-policies x 2 steps of an AutoAugment policy, as in torchvision's _get_policies.
const aug_policy_step *aug_autoaugment_steps(int policy);
#define AUG_AUTOAUGMENT_SUBS 25
// The magnitudes of op in the augmentation space of kind (AutoAugment uses bins = 10) for an
// h x w image: writes `bins` values to mags (float32 as torch.linspace computes them) and returns
// bins; 0 when the op has no magnitude (mags[0] = 0); -1 when the op is not in the space.
// *is_signed: 1 when a random sign applies.
int aug_policy_magnitudes(int kind, int op, int bins, int h, int w, float *mags, int *is_signed);
// The random choices of one image, drawn as torchvision's forward draws them.
typedef struct {
    int n;                   // ops considered
    int sub;                 // AutoAugment: the sub-policy
    int op[POL_MAX_OPS];     // POL_*
    int apply[POL_MAX_OPS];  // AutoAugment: the step's coin came up (prob <= p); others 1
    int bin[POL_MAX_OPS];    // magnitude bin, -1 when none
    int neg[POL_MAX_OPS];    // 1 when the sign made the magnitude negative
    float mag[POL_MAX_OPS];  // the signed magnitude _apply_op receives
} aug_policy_draw;
void aug_policy_sample(const aug_policy *p, int h, int w, rcv_rng *r, aug_policy_draw *d);
// Applies a draw to the float image x in [0, 1] (quantized to 8 bits first when any op runs) and
// moves the boxes (n x 4, may be NULL) with the geometric ops.
void aug_policy_run(const aug_policy_draw *d, float fill, float *x, int h, int w, int c, float *boxes, int n_boxes);

#endif
