// Image augmentation (torchvision's transforms, names and defaults), the NL-means denoiser and
// the ImageNet-C corruption suite.
//
// Augmentation works on one float image x: (h, w, c) HWC in [0, 1], c = 1 or 3, in place. A
// pipeline is parsed once from a spec string and applied per sample with the caller's rng, so
// loader threads share one rcv_augment. Normalization is not a transform here: it is the
// model's first graph node.
#ifndef RCV_AUGMENT_H
#define RCV_AUGMENT_H

#include <stdint.h>

#include "robustcv/rng.h"

typedef struct rcv_augment rcv_augment;

// Parses "hflip:p=0.6,crop:pad=4:mode=reflect,jitter:brightness=0.4,erase:value=random" (comma
// between transforms, colon between key=value parameters) or a preset name (see
// rcv_augment_help). -1 with a message naming the bad token and listing valid names or keys.
int rcv_augment_parse(rcv_augment **a, const char *spec);
// The pipeline a preset name stands for ("none" -> ""), or spec itself when it names none: what
// a caller appends transforms to ("seed-fe" + ",trivialaugment" would not parse).
const char *rcv_augment_preset(const char *spec);
void rcv_augment_free(rcv_augment *a);
// One sample, in place; output has the same h, w, c. boxes: n_boxes x (x0, y0, x1, y1) in pixels,
// moved with the geometric transforms (may be NULL). Reentrant: threads pass their own rng.
void rcv_augment_apply(const rcv_augment *a, rcv_rng *r, float *x, int h, int w, int c, float *boxes, int n_boxes);
// Number of transforms in a parsed pipeline (0 for "none").
int rcv_augment_count(const rcv_augment *a);
// Transforms, keys, defaults and presets, for --help and the README.
const char *rcv_augment_help(void);

// ---- Deterministic transforms with explicit parameters (what the random ones call; tested
// against torchvision.transforms.functional). src and dst: (h, w, c) unless stated; they may not
// alias unless stated.
typedef enum { RCV_PAD_CONSTANT, RCV_PAD_REFLECT, RCV_PAD_EDGE } rcv_pad_mode;

void rcv_aug_hflip(float *x, int h, int w, int c); // in place
void rcv_aug_vflip(float *x, int h, int w, int c); // in place
// F.pad(left, top, right, bottom) then F.crop(top, left, oh, ow) in one step: out pixel (i, j) is
// padded pixel (top + i, left + j). dst: (oh, ow, c).
void rcv_aug_pad_crop(const float *src, int h, int w, int c, int pad, rcv_pad_mode mode, float fill, int top,
                      int left, int oh, int ow, float *dst);
// F.resized_crop(top, left, ch, cw, (oh, ow)), bilinear, antialias off. dst: (oh, ow, c).
void rcv_aug_resized_crop(const float *src, int h, int w, int c, int top, int left, int ch, int cw, int oh, int ow,
                          float *dst);
// F.affine(angle (degrees, clockwise), translate (pixels), scale, shear (degrees)), nearest, fill.
void rcv_aug_affine(const float *src, int h, int w, int c, float angle, float tx, float ty, float scale, float shear_x,
                    float shear_y, float fill, float *dst);
// F.rotate(angle (degrees, counter-clockwise)), nearest, no expand, fill.
void rcv_aug_rotate(const float *src, int h, int w, int c, float angle, float fill, float *dst);
// F.perspective(startpoints, endpoints) with corners (x, y) ordered tl, tr, br, bl; nearest, fill.
void rcv_aug_perspective(const float *src, int h, int w, int c, const float start[8], const float end[8], float fill,
                         float *dst);
// Colour adjustments, in place (c = 3; on c = 1 saturation and hue are identities as in torchvision).
void rcv_aug_brightness(float *x, int h, int w, int c, float factor);
void rcv_aug_contrast(float *x, int h, int w, int c, float factor);
void rcv_aug_saturation(float *x, int h, int w, int c, float factor);
void rcv_aug_hue(float *x, int h, int w, int c, float factor); // factor in [-0.5, 0.5]
void rcv_aug_grayscale(float *x, int h, int w, int c);        // to gray, kept as c channels
// F.gaussian_blur(kernel (kh, kw), sigma (sy, sx)), reflect padding. In place.
void rcv_aug_gaussian_blur(float *x, int h, int w, int c, int kh, int kw, float sigma_y, float sigma_x);
// F.erase(i, j, eh, ew, v): the rectangle gets `values` (eh * ew * c floats) or, if NULL, `fill`.
void rcv_aug_erase(float *x, int h, int w, int c, int i, int j, int eh, int ew, const float *values, float fill);

// The 8 symmetries of the square (h == w): k = 4 * flip + rot, rot counter-clockwise quarter turns
// (torch.rot90(x, rot, dims=(H, W))) applied after an optional horizontal flip. k = 0 is identity.
void rcv_sym_apply(int k, const float *src, float *dst, int h, int w, int c);
int rcv_sym_inverse(int k);           // rcv_sym_apply(rcv_sym_inverse(k), ...) undoes k
int rcv_sym_compose(int a, int b);    // the k of "apply b, then a"
// Pixel position (x, y) (continuous, 0..w) under symmetry k; used for boxes.
void rcv_sym_point(int k, int w, float x, float y, float *ox, float *oy);

// ---- NL-means (OpenCV's fastNlMeansDenoisingColored): RGB -> CIELAB as OpenCV does for 8-bit,
// L denoised with h_lum, a and b together with h_color, back to RGB. src, dst: (h, w, 3) RGB8;
// may alias. Windows must be odd. -1 on bad arguments.
int rcv_nlmeans_colored(const uint8_t *src, uint8_t *dst, int h, int w, float h_lum, float h_color,
                        int template_window, int search_window);
// One plane set of cn = 1 or 2 interleaved channels (OpenCV's fastNlMeansDenoising on 8-bit).
int rcv_nlmeans(const uint8_t *src, uint8_t *dst, int h, int w, int cn, float hh, int template_window,
                int search_window);
// OpenCV's 8-bit COLOR_RGB2Lab on linear RGB (what fastNlMeansDenoisingColored uses) and back.
void rcv_rgb_to_lab8(const uint8_t *rgb, uint8_t *lab, int n);
void rcv_lab8_to_rgb(const uint8_t *lab, uint8_t *rgb, int n);

// ---- Corruptions (Hendrycks & Dietterich's Tiny-ImageNet-C set). src, dst: (h, w, 3) RGB8,
// may alias; severity 1..5. Same seed, same output. -1 names a bad corruption or severity.
int rcv_corrupt(const uint8_t *src, uint8_t *dst, int h, int w, const char *name, int severity, uint64_t seed);
extern const char *const rcv_corruption_names[]; // NULL-terminated, in the paper's order
int rcv_corruption_count(void);

#endif
