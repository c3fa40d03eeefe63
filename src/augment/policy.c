// torchvision 0.14's automatic augmentation policies: AutoAugment (its ImageNet, CIFAR-10 and SVHN
// policies), RandAugment and TrivialAugmentWide, with their augmentation spaces (magnitude ranges,
// signed ops) and the random draws of their forward(); the ops are in policy_ops.c.
//
// torchvision runs these on uint8 images (a float tensor fails in posterize and equalize, and its
// solarize thresholds are 0..255). The pipeline's images are uint8 / 255 floats, so an entry
// rounds x to the 8-bit value round(255 x) (exact for images read from 8-bit files), applies the
// uint8 ops and hands back u / 255: what AutoAugment(uint8) then ToTensor gives. A draw that runs
// no op (Identity, or no AutoAugment coin) leaves the image untouched.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment/aug_internal.h"
#include "robustcv/error.h"

enum { SX = POL_SHEAR_X, SY = POL_SHEAR_Y, TX = POL_TRANSLATE_X, TY = POL_TRANSLATE_Y, RO = POL_ROTATE,
       BR = POL_BRIGHTNESS, CO = POL_COLOR, CT = POL_CONTRAST, SH = POL_SHARPNESS, PO = POL_POSTERIZE,
       SO = POL_SOLARIZE, AC = POL_AUTOCONTRAST, EQ = POL_EQUALIZE, IN = POL_INVERT };

// AutoAugment._get_policies: 25 sub-policies of two (op, probability, magnitude bin) steps.
static const aug_policy_step policies[3][2 * AUG_AUTOAUGMENT_SUBS] = {
    [POLICY_IMAGENET] = {
        {PO, 0.4f, 8}, {RO, 0.6f, 9},
        {SO, 0.6f, 5}, {AC, 0.6f, -1},
        {EQ, 0.8f, -1}, {EQ, 0.6f, -1},
        {PO, 0.6f, 7}, {PO, 0.6f, 6},
        {EQ, 0.4f, -1}, {SO, 0.2f, 4},
        {EQ, 0.4f, -1}, {RO, 0.8f, 8},
        {SO, 0.6f, 3}, {EQ, 0.6f, -1},
        {PO, 0.8f, 5}, {EQ, 1.0f, -1},
        {RO, 0.2f, 3}, {SO, 0.6f, 8},
        {EQ, 0.6f, -1}, {PO, 0.4f, 6},
        {RO, 0.8f, 8}, {CO, 0.4f, 0},
        {RO, 0.4f, 9}, {EQ, 0.6f, -1},
        {EQ, 0.0f, -1}, {EQ, 0.8f, -1},
        {IN, 0.6f, -1}, {EQ, 1.0f, -1},
        {CO, 0.6f, 4}, {CT, 1.0f, 8},
        {RO, 0.8f, 8}, {CO, 1.0f, 2},
        {CO, 0.8f, 8}, {SO, 0.8f, 7},
        {SH, 0.4f, 7}, {IN, 0.6f, -1},
        {SX, 0.6f, 5}, {EQ, 1.0f, -1},
        {CO, 0.4f, 0}, {EQ, 0.6f, -1},
        {EQ, 0.4f, -1}, {SO, 0.2f, 4},
        {SO, 0.6f, 5}, {AC, 0.6f, -1},
        {IN, 0.6f, -1}, {EQ, 1.0f, -1},
        {CO, 0.6f, 4}, {CT, 1.0f, 8},
        {EQ, 0.8f, -1}, {EQ, 0.6f, -1},
    },
    [POLICY_CIFAR10] = {
        {IN, 0.1f, -1}, {CT, 0.2f, 6},
        {RO, 0.7f, 2}, {TX, 0.3f, 9},
        {SH, 0.8f, 1}, {SH, 0.9f, 3},
        {SY, 0.5f, 8}, {TY, 0.7f, 9},
        {AC, 0.5f, -1}, {EQ, 0.9f, -1},
        {SY, 0.2f, 7}, {PO, 0.3f, 7},
        {CO, 0.4f, 3}, {BR, 0.6f, 7},
        {SH, 0.3f, 9}, {BR, 0.7f, 9},
        {EQ, 0.6f, -1}, {EQ, 0.5f, -1},
        {CT, 0.6f, 7}, {SH, 0.6f, 5},
        {CO, 0.7f, 7}, {TX, 0.5f, 8},
        {EQ, 0.3f, -1}, {AC, 0.4f, -1},
        {TY, 0.4f, 3}, {SH, 0.2f, 6},
        {BR, 0.9f, 6}, {CO, 0.2f, 8},
        {SO, 0.5f, 2}, {IN, 0.0f, -1},
        {EQ, 0.2f, -1}, {AC, 0.6f, -1},
        {EQ, 0.2f, -1}, {EQ, 0.6f, -1},
        {CO, 0.9f, 9}, {EQ, 0.6f, -1},
        {AC, 0.8f, -1}, {SO, 0.2f, 8},
        {BR, 0.1f, 3}, {CO, 0.7f, 0},
        {SO, 0.4f, 5}, {AC, 0.9f, -1},
        {TY, 0.9f, 9}, {TY, 0.7f, 9},
        {AC, 0.9f, -1}, {SO, 0.8f, 3},
        {EQ, 0.8f, -1}, {IN, 0.1f, -1},
        {TY, 0.7f, 9}, {AC, 0.9f, -1},
    },
    [POLICY_SVHN] = {
        {SX, 0.9f, 4}, {IN, 0.2f, -1},
        {SY, 0.9f, 8}, {IN, 0.7f, -1},
        {EQ, 0.6f, -1}, {SO, 0.6f, 6},
        {IN, 0.9f, -1}, {EQ, 0.6f, -1},
        {EQ, 0.6f, -1}, {RO, 0.9f, 3},
        {SX, 0.9f, 4}, {AC, 0.8f, -1},
        {SY, 0.9f, 8}, {IN, 0.4f, -1},
        {SY, 0.9f, 5}, {SO, 0.2f, 6},
        {IN, 0.9f, -1}, {AC, 0.8f, -1},
        {EQ, 0.6f, -1}, {RO, 0.9f, 3},
        {SX, 0.9f, 4}, {SO, 0.3f, 3},
        {SY, 0.8f, 8}, {IN, 0.7f, -1},
        {EQ, 0.9f, -1}, {TY, 0.6f, 6},
        {IN, 0.9f, -1}, {EQ, 0.6f, -1},
        {CT, 0.3f, 3}, {RO, 0.8f, 4},
        {IN, 0.8f, -1}, {TY, 0.0f, 2},
        {SY, 0.7f, 6}, {SO, 0.4f, 8},
        {IN, 0.6f, -1}, {RO, 0.8f, 4},
        {SY, 0.3f, 7}, {TX, 0.9f, 3},
        {SX, 0.1f, 6}, {IN, 0.6f, -1},
        {SO, 0.7f, 2}, {TY, 0.6f, 7},
        {SY, 0.8f, 4}, {IN, 0.8f, -1},
        {SX, 0.7f, 9}, {TY, 0.8f, 3},
        {SY, 0.8f, 5}, {AC, 0.7f, -1},
        {SX, 0.7f, 2}, {IN, 0.1f, -1},
    },
};

const aug_policy_step *aug_autoaugment_steps(int policy) { return policies[policy]; }

// torch.linspace(start, end, steps) in float32: start + step i for the first half, end - step
// (steps - 1 - i) for the second.
static void linspace(float start, float end, int steps, float *out) {
    float step = (end - start) / (float)(steps - 1);
    for (int i = 0; i < steps; i++)
        out[i] = i < steps / 2 ? start + step * (float)i : end - step * (float)(steps - 1 - i);
}

int aug_policy_magnitudes(int kind, int op, int bins, int h, int w, float *mags, int *is_signed) {
    int wide = kind == POLICY_TRIVIAL;
    *is_signed = op >= POL_SHEAR_X && op <= POL_SHARPNESS;
    mags[0] = 0;
    if (op == POL_INVERT && kind != POLICY_AUTO) return -1;
    if (op == POL_IDENTITY && kind == POLICY_AUTO) return -1;
    switch (op) {
    case POL_SHEAR_X: case POL_SHEAR_Y: linspace(0, wide ? 0.99f : 0.3f, bins, mags); return bins;
    case POL_TRANSLATE_X: linspace(0, wide ? 32.0f : (float)(150.0 / 331.0 * w), bins, mags); return bins;
    case POL_TRANSLATE_Y: linspace(0, wide ? 32.0f : (float)(150.0 / 331.0 * h), bins, mags); return bins;
    case POL_ROTATE: linspace(0, wide ? 135.0f : 30.0f, bins, mags); return bins;
    case POL_BRIGHTNESS: case POL_COLOR: case POL_CONTRAST: case POL_SHARPNESS:
        linspace(0, wide ? 0.99f : 0.9f, bins, mags);
        return bins;
    case POL_POSTERIZE: { // 8 - (arange(bins) / ((bins - 1) / k)).round().int(), k = 4 (6 wide)
        float d = (float)((bins - 1) / (wide ? 6.0 : 4.0));
        for (int i = 0; i < bins; i++) mags[i] = (float)(8 - (int)nearbyintf((float)i / d));
        return bins;
    }
    case POL_SOLARIZE: linspace(255.0f, 0, bins, mags); return bins;
    default: return 0; // Identity, AutoContrast, Equalize, Invert
    }
}

void aug_policy_sample(const aug_policy *p, int h, int w, rcv_rng *r, aug_policy_draw *d) {
    float mags[256];
    int sgn;
    memset(d, 0, sizeof *d);
    if (p->kind == POLICY_AUTO) {
        // get_params: the sub-policy, two coins, two signs; sign 0 makes the magnitude negative.
        d->sub = aug_randint(r, 0, AUG_AUTOAUGMENT_SUBS);
        float coin[2] = {rcv_rng_uniform(r), rcv_rng_uniform(r)};
        int sign[2] = {aug_randint(r, 0, 2), aug_randint(r, 0, 2)};
        const aug_policy_step *s = policies[p->policy] + 2 * d->sub;
        d->n = 2;
        for (int i = 0; i < 2; i++) {
            d->op[i] = s[i].op;
            d->apply[i] = coin[i] <= s[i].p;
            d->bin[i] = s[i].bin;
            int nb = aug_policy_magnitudes(POLICY_AUTO, s[i].op, 10, h, w, mags, &sgn);
            d->mag[i] = s[i].bin >= 0 && nb > 0 ? mags[s[i].bin] : 0.0f;
            d->neg[i] = sgn && sign[i] == 0;
            if (d->neg[i]) d->mag[i] = -d->mag[i];
        }
        return;
    }
    // RandAugment: num_ops ops, each uniform over the 14 of the space at the fixed magnitude bin;
    // TrivialAugmentWide: one op, uniform, at a uniform bin. The sign is drawn for signed ops only.
    d->n = p->kind == POLICY_RAND ? p->num_ops : 1;
    for (int i = 0; i < d->n; i++) {
        int op = aug_randint(r, 0, POL_N_OPS - 1); // the space is POL_IDENTITY..POL_EQUALIZE
        int nb = aug_policy_magnitudes(p->kind, op, p->bins, h, w, mags, &sgn);
        d->op[i] = op;
        d->apply[i] = 1;
        d->bin[i] = nb <= 0 ? -1 : p->kind == POLICY_RAND ? p->magnitude : aug_randint(r, 0, nb);
        d->mag[i] = d->bin[i] >= 0 ? mags[d->bin[i]] : 0.0f;
        d->neg[i] = sgn && aug_randint(r, 0, 2) == 1;
        if (d->neg[i]) d->mag[i] = -d->mag[i];
    }
}

typedef struct {
    double m[6];
} fwd_map;

static void map_fwd(const void *ctx, float x, float y, float *ox, float *oy) {
    const double *m = ((const fwd_map *)ctx)->m;
    *ox = (float)(m[0] * x + m[1] * y + m[2]);
    *oy = (float)(m[3] * x + m[4] * y + m[5]);
}

void aug_policy_run(const aug_policy_draw *d, float fill, float *x, int h, int w, int c, float *boxes, int n_boxes) {
    int any = 0;
    for (int i = 0; i < d->n; i++) any |= d->apply[i] && d->op[i] != POL_IDENTITY;
    if (!any) return;
    size_t n = (size_t)h * w * c;
    float *u = rcv_xmalloc(2 * n * sizeof(float)), *tmp = u + n;
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 0 ? (x[i] < 1 ? x[i] : 1.0f) : 0.0f; // NaN -> 0: u indexes histograms
        u[i] = nearbyintf(v * 255.0f);
    }
    for (int i = 0; i < d->n; i++) {
        if (!d->apply[i]) continue;
        fwd_map f;
        if (aug_policy_op(d->op[i], d->mag[i], u, h, w, c, fill * 255.0f, tmp, f.m) && boxes && n_boxes > 0)
            aug_boxes_map(boxes, n_boxes, map_fwd, &f, w, h);
    }
    for (size_t i = 0; i < n; i++) x[i] = u[i] / 255.0f;
    free(u);
}
