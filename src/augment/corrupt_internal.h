// Helpers shared by the corruption files. Images: float (h, w, c) HWC, values in [0, 1] unless said.
#ifndef RCV_CORRUPT_INTERNAL_H
#define RCV_CORRUPT_INTERNAL_H

#include <stdint.h>

#include "robustcv/rng.h"

typedef enum { CB_NEAREST, CB_REFLECT, CB_REFLECT101 } cor_border;

// scipy.ndimage.gaussian_filter per channel (sigma 0 on the channel axis): radius
// int(truncate * sigma + 0.5), mode 'nearest' (CB_NEAREST) or 'reflect' (CB_REFLECT). In place.
void cor_gaussian(float *x, int h, int w, int c, float sigma, float truncate, cor_border mode);
// scipy.ndimage.zoom(order=1) of the centred ceil(h / z) crop, trimmed back to h x w
// (make_tinyimagenet_c.py's clipped_zoom). dst: (h, w, c).
void cor_clipped_zoom(const float *src, int h, int w, int c, double z, float *dst);
// ImageMagick's MotionBlurImage kernel: one-sided Gaussian of width 2 ceil(radius) + 1 along
// `angle` degrees, edges replicated. src, dst: 8-bit (h, w, c).
void cor_motion_blur(const uint8_t *src, uint8_t *dst, int h, int w, int c, double radius, double sigma, double angle);
// Diamond-square height map (plasma_fractal), n a power of two, values in [0, 1]. out: n * n.
void cor_plasma(rcv_rng *r, int n, double wibble_decay, float *out);
// Poisson sample with mean lam (numpy's algorithms: multiplication for lam < 10, else PTRS).
long cor_poisson(rcv_rng *r, double lam);
static inline double cor_uniform(rcv_rng *r) { return rcv_rng_uniform(r); }

void cor_defocus_blur(float *x, int h, int w, int severity);
void cor_glass_blur(float *x, int h, int w, int severity, rcv_rng *r);
void cor_zoom_blur(float *x, int h, int w, int severity);
void cor_elastic(float *x, int h, int w, int severity, rcv_rng *r);
void cor_snow(float *x, int h, int w, int severity, rcv_rng *r);
void cor_frost(float *x, int h, int w, int severity, rcv_rng *r);
void cor_fog(float *x, int h, int w, int severity, rcv_rng *r);

#endif
