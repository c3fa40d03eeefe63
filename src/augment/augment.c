// The augmentation pipeline: spec parsing, presets, and per-sample application with the caller's
// rng. Each transform keeps torchvision's name for its parameters and their defaults; every one
// takes p= (random apply), as RandomApply would give it.
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/aug_internal.h"
#include "robustcv/error.h"

enum { T_HFLIP, T_VFLIP, T_CROP, T_RRC, T_AFFINE, T_ROTATE, T_PERSPECTIVE, T_JITTER, T_GRAY, T_BLUR, T_ERASE, T_SYM,
       T_AUTOAUG, T_RANDAUG, T_TRIVIAL, T_COUNT };

// Parameter kinds: a number, a range "lo/hi" (a single v means what torchvision makes of it,
// see `sym`), a list of up to 4 numbers, or a word from a fixed set.
enum { K_NUM, K_RANGE, K_LIST4, K_WORD };

typedef struct {
    const char *key;
    int kind;
    int slot;         // first index into op->v
    int sym;          // K_RANGE with one value v: 0 -> (v, v); 1 -> (-v, v); 2 -> (max(0, 1-v), 1+v);
                      // 3: like 0, but a pair (kh/kw) rather than an ordered range
    const char *def;  // default, parsed like user input
    const char *words; // K_WORD: "|"-separated choices; value stored as the index
    const char *help;
    float lo, hi;     // valid range of every number given (K_WORD: of its NUMBER); lo == hi: no numbers
} key_spec;

typedef struct {
    const char *name;
    float p_default;
    const char *help;
    key_spec keys[6];
} transform_spec;

#define END_KEYS {NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0}
static const transform_spec specs[T_COUNT] = {
    [T_HFLIP] = {"hflip", 0.5f, "RandomHorizontalFlip", {END_KEYS}},
    [T_VFLIP] = {"vflip", 0.5f, "RandomVerticalFlip", {END_KEYS}},
    [T_CROP] = {"crop", 1, "RandomCrop back to the input size after padding",
                {{"pad", K_NUM, 0, 0, "0", NULL, "padding on every side, an integer number of pixels", 0, 1024},
                 {"mode", K_WORD, 1, 0, "constant", "constant|reflect|edge", "padding_mode", 0, 0},
                 {"fill", K_NUM, 2, 0, "0", NULL, "constant padding value", 0, 1},
                 END_KEYS}},
    [T_RRC] = {"rrc", 1, "RandomResizedCrop, resized back to the input size (bilinear)",
               {{"scale", K_RANGE, 0, 0, "0.08/1", NULL, "area fraction range", 0, 1},
                {"ratio", K_RANGE, 2, 0, "0.75/1.3333333", NULL, "aspect ratio range (log-uniform)", 0.01, 100},
                END_KEYS}},
    [T_AFFINE] = {"affine", 1, "RandomAffine (nearest)",
                  {{"degrees", K_RANGE, 0, 1, "0", NULL, "rotation range; d means -d/d", -360, 360},
                   {"translate", K_RANGE, 2, 0, "0/0", NULL, "max |tx|/w and |ty|/h fractions", 0, 1},
                   {"scale", K_RANGE, 4, 0, "1/1", NULL, "scale range", 0.01, 100},
                   {"shear", K_LIST4, 6, 1, "0", NULL, "s: x in -s/s; a/b: x in a/b; a/b/c/d: x and y", -89, 89},
                   {"fill", K_NUM, 10, 0, "0", NULL, "value outside the image", 0, 1},
                   END_KEYS}},
    [T_ROTATE] = {"rotate", 1, "RandomRotation (nearest, no expand)",
                  {{"degrees", K_RANGE, 0, 1, "0", NULL, "range; d means -d/d", -360, 360},
                   {"fill", K_NUM, 2, 0, "0", NULL, "value outside the image", 0, 1},
                   END_KEYS}},
    [T_PERSPECTIVE] = {"perspective", 0.5f, "RandomPerspective (nearest)",
                       {{"distortion_scale", K_NUM, 0, 0, "0.5", NULL, "corner displacement, 0..1", 0, 1},
                        {"fill", K_NUM, 1, 0, "0", NULL, "value outside the image", 0, 1},
                        END_KEYS}},
    [T_JITTER] = {"jitter", 1, "ColorJitter, the four adjustments in random order",
                  {{"brightness", K_RANGE, 0, 2, "0", NULL, "v means max(0,1-v)/1+v", 0, 100},
                   {"contrast", K_RANGE, 2, 2, "0", NULL, "v means max(0,1-v)/1+v", 0, 100},
                   {"saturation", K_RANGE, 4, 2, "0", NULL, "v means max(0,1-v)/1+v", 0, 100},
                   {"hue", K_RANGE, 6, 1, "0", NULL, "v means -v/v, within -0.5/0.5", -0.5, 0.5},
                   END_KEYS}},
    [T_GRAY] = {"gray", 0.1f, "RandomGrayscale (keeps the channel count)", {END_KEYS}},
    [T_BLUR] = {"blur", 1, "GaussianBlur (reflect padding); p= makes it RandomApply",
                {{"kernel_size", K_RANGE, 0, 3, "3", NULL, "odd; k or kh/kw", 1, 255},
                 {"sigma", K_RANGE, 2, 0, "0.1/2", NULL, "sigma range (one draw for x and y)", 0, 1000},
                 END_KEYS}},
    [T_ERASE] = {"erase", 0.5f, "RandomErasing",
                 {{"scale", K_RANGE, 0, 0, "0.02/0.33", NULL, "area fraction range", 0, 1},
                  {"ratio", K_RANGE, 2, 0, "0.3/3.3", NULL, "aspect ratio range (log-uniform)", 0.01, 100},
                  {"value", K_WORD, 4, 0, "0", "random|normal|NUMBER",
                   "fill: a number, random (uniform [0,1) pixels), normal (N(0,1), torchvision's 'random')", 0, 1},
                  END_KEYS}},
    [T_SYM] = {"sym", 1, "one of the 8 symmetries of the square, uniformly (square images)", {END_KEYS}},
    // The policies work on the 8-bit image round(255 x) as torchvision's do on uint8 (policy.c).
    [T_AUTOAUG] = {"autoaugment", 1, "AutoAugment: one of the policy's 25 sub-policies of 2 ops, nearest",
                   {{"policy", K_WORD, 0, 0, "imagenet", "imagenet|cifar10|svhn", "AutoAugmentPolicy"},
                    {"fill", K_NUM, 1, 0, "0", NULL, "value outside the image, 0..1 (torchvision's 255 * fill)", 0, 1},
                    END_KEYS}},
    [T_RANDAUG] = {"randaugment", 1, "RandAugment: num_ops ops, uniform over 14, at one magnitude, random sign",
                   {{"num_ops", K_NUM, 0, 0, "2", NULL, "ops per image, 0..16", 0, 16},
                    {"magnitude", K_NUM, 1, 0, "9", NULL, "magnitude bin, 0..num_magnitude_bins-1", 0, 255},
                    {"num_magnitude_bins", K_NUM, 2, 0, "31", NULL, "bins of each magnitude range, 2..256", 2, 256},
                    {"fill", K_NUM, 3, 0, "0", NULL, "value outside the image, 0..1 (torchvision's 255 * fill)", 0, 1},
                    END_KEYS}},
    [T_TRIVIAL] = {"trivialaugment", 1, "TrivialAugmentWide: one op, uniform over 14, uniform bin, random sign",
                   {{"num_magnitude_bins", K_NUM, 0, 0, "31", NULL, "bins of each magnitude range, 2..256", 2, 256},
                    {"fill", K_NUM, 1, 0, "0", NULL, "value outside the image, 0..1 (torchvision's 255 * fill)", 0, 1},
                    END_KEYS}},
};

static const struct {
    const char *name, *spec, *why;
} presets[] = {
    {"none", "", "no augmentation"},
    {"seed-flip", "hflip:p=0.6", "seed 1: horizontal flip with p = 0.6 (better than 0.2)"},
    {"seed-jitter", "jitter:brightness=0.1:contrast=0.1:saturation=0.1:hue=0.1", "seed 1: ColorJitter, all four 0.1"},
    {"seed-erase", "erase:value=random", "seed 1: RandomErasing, defaults, random fill"},
    {"seed-fe", "hflip,erase:value=random", "seed 1: flip + erasing (Model-FE)"},
    {"seed-fce", "hflip,crop:pad=4,erase:value=random", "seed 1: flip + crop + erasing (Model-FCE; pad 4 assumed)"},
    {"seed-sym", "sym", "seed 1: RandomSymmetryTransform"},
    {"seed-full", "hflip,vflip,gray,perspective,erase",
     "seed 2, section 3.2: flips, grayscale, perspective, erasing (torchvision defaults)"},
    {"seed-imgaug", "hflip,blur:kernel_size=3:sigma=0.01/0.5:p=0.5,jitter:contrast=0.75/1.5,"
                    "affine:degrees=25:translate=0.2/0.2:scale=0.8/1.2:shear=8",
     "seed 2's offline imgaug set, approximated (no per-channel noise/multiply, no crop)"},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

typedef struct {
    int type;
    float p;
    float v[12];
} aug_op;

struct rcv_augment {
    int n;
    aug_op *ops;
};

int rcv_augment_count(const rcv_augment *a) { return a ? a->n : 0; }
void rcv_augment_free(rcv_augment *a) {
    if (!a) return;
    free(a->ops);
    free(a);
}

static void list_names(char *buf, size_t n) {
    buf[0] = 0;
    for (int t = 0; t < T_COUNT; t++) snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", t ? ", " : "", specs[t].name);
    snprintf(buf + strlen(buf), n - strlen(buf), "; presets:");
    for (size_t i = 0; i < N_PRESETS; i++) snprintf(buf + strlen(buf), n - strlen(buf), " %s", presets[i].name);
}

static void list_keys(const transform_spec *s, char *buf, size_t n) {
    snprintf(buf, n, "p");
    for (const key_spec *k = s->keys; k->key; k++) snprintf(buf + strlen(buf), n - strlen(buf), ", %s", k->key);
}

// Numbers separated by '/', at most `max`; returns the count or -1.
static int parse_numbers(const char *s, float *out, int max) {
    int n = 0;
    while (*s) {
        if (n == max) return -1;
        char *end;
        double v = strtod(s, &end);
        if (end == s || !isfinite(v)) return -1;
        out[n++] = (float)v;
        s = end;
        if (*s == '/') s++;
        else if (*s) return -1;
    }
    return n;
}

// Every number given must lie in the key's [lo, hi] (non-finite ones are refused by parse_numbers).
static int in_range(const key_spec *k, const float *nums, int n) {
    for (int i = 0; i < n; i++)
        if (!(nums[i] >= k->lo && nums[i] <= k->hi)) return 0;
    return 1;
}

static int set_key(aug_op *op, const transform_spec *s, const key_spec *k, const char *val) {
    float nums[4];
    int n;
    switch (k->kind) {
    case K_NUM:
        if (parse_numbers(val, nums, 1) != 1 || !in_range(k, nums, 1)) goto bad;
        op->v[k->slot] = nums[0];
        return 0;
    case K_RANGE:
        n = parse_numbers(val, nums, 2);
        if (n > 0 && !in_range(k, nums, n)) goto bad;
        if (n == 1) {
            float v = nums[0];
            if (k->sym == 1) nums[0] = -v, nums[1] = v;
            else if (k->sym == 2) nums[0] = fmaxf(0, 1 - v), nums[1] = 1 + v;
            else nums[1] = v;
            if ((k->sym == 1 || k->sym == 2) && v < 0) goto bad;
        } else if (n != 2 || (k->sym != 3 && nums[0] > nums[1])) goto bad;
        op->v[k->slot] = nums[0];
        op->v[k->slot + 1] = nums[1];
        return 0;
    case K_LIST4:
        n = parse_numbers(val, nums, 4);
        if (n > 0 && !in_range(k, nums, n)) goto bad;
        if (n == 1) nums[1] = fabsf(nums[0]), nums[0] = -nums[1], nums[2] = nums[3] = 0;
        else if (n == 2) nums[2] = nums[3] = 0;
        else if (n != 4) goto bad;
        for (int i = 0; i < 4; i++) op->v[k->slot + i] = nums[i];
        return 0;
    default: { // K_WORD: index of the word; erase's value also takes a number (index 2, number in slot + 1)
        char words[64];
        snprintf(words, sizeof words, "%s", k->words);
        int idx = 0;
        for (char *w = strtok(words, "|"); w; w = strtok(NULL, "|"), idx++)
            if (!strcmp(w, val)) {
                op->v[k->slot] = (float)idx;
                return 0;
            }
        if (strstr(k->words, "NUMBER") && parse_numbers(val, nums, 1) == 1 && in_range(k, nums, 1)) {
            op->v[k->slot] = 2;
            op->v[k->slot + 1] = nums[0];
            return 0;
        }
        goto bad;
    }
    }
bad:
    if (k->lo == k->hi)
        return rcv_fail("augment: %s:%s='%s' is not valid, expected %s (%s)", s->name, k->key, val, k->words, k->help);
    return rcv_fail("augment: %s:%s='%s' is not valid, expected %s%s, each in %g..%g (%s)", s->name, k->key, val,
                    k->kind == K_NUM ? "a number" : k->kind == K_RANGE ? "a number or lo/hi"
                    : k->kind == K_LIST4 ? "1, 2 or 4 numbers separated by /" : k->words,
                    k->kind == K_RANGE ? " with lo <= hi" : "", k->lo, k->hi, k->help);
}

// Checks the values torchvision itself would refuse.
static int check_op(const aug_op *op) {
    const transform_spec *s = &specs[op->type];
    const float *v = op->v;
    if (!(op->p >= 0 && op->p <= 1)) return rcv_fail("augment: %s:p=%g, expected 0..1", s->name, op->p);
    switch (op->type) {
    case T_CROP:
        if (v[0] < 0 || v[0] != floorf(v[0])) return rcv_fail("augment: crop:pad=%g, expected an integer >= 0", v[0]);
        break;
    case T_RRC:
        if (v[0] <= 0 || v[1] > 1 || v[2] <= 0) return rcv_fail("augment: rrc: scale must lie in (0, 1] and ratio be > 0");
        break;
    case T_AFFINE:
        if (v[2] < 0 || v[3] < 0 || v[2] > 1 || v[3] > 1) return rcv_fail("augment: affine:translate must lie in 0..1");
        if (v[4] <= 0) return rcv_fail("augment: affine:scale must be > 0");
        break;
    case T_PERSPECTIVE:
        if (v[0] < 0 || v[0] > 1) return rcv_fail("augment: perspective:distortion_scale=%g, expected 0..1", v[0]);
        break;
    case T_JITTER:
        if (v[6] < -0.5f || v[7] > 0.5f) return rcv_fail("augment: jitter:hue range %g/%g, expected within -0.5/0.5", v[6], v[7]);
        break;
    case T_BLUR:
        for (int i = 0; i < 2; i++)
            if (v[i] < 1 || v[i] != floorf(v[i]) || ((int)v[i] & 1) == 0)
                return rcv_fail("augment: blur:kernel_size=%g, expected an odd positive integer", v[i]);
        if (v[2] <= 0) return rcv_fail("augment: blur:sigma must be > 0");
        break;
    case T_ERASE:
        if (v[0] < 0 || v[1] > 1 || v[2] <= 0) return rcv_fail("augment: erase: scale must lie in 0..1 and ratio be > 0");
        break;
    case T_RANDAUG:
        if (v[0] < 0 || v[0] > POL_MAX_OPS || v[0] != floorf(v[0]))
            return rcv_fail("augment: randaugment:num_ops=%g, expected an integer in 0..%d", v[0], POL_MAX_OPS);
        if (v[2] < 2 || v[2] > 256 || v[2] != floorf(v[2]))
            return rcv_fail("augment: randaugment:num_magnitude_bins=%g, expected an integer in 2..256", v[2]);
        if (v[1] < 0 || v[1] > v[2] - 1 || v[1] != floorf(v[1]))
            return rcv_fail("augment: randaugment:magnitude=%g, expected an integer in 0..%g (num_magnitude_bins - 1)",
                            v[1], v[2] - 1);
        if (v[3] < 0 || v[3] > 1) return rcv_fail("augment: randaugment:fill=%g, expected 0..1", v[3]);
        break;
    case T_TRIVIAL:
        if (v[0] < 2 || v[0] > 256 || v[0] != floorf(v[0]))
            return rcv_fail("augment: trivialaugment:num_magnitude_bins=%g, expected an integer in 2..256", v[0]);
        if (v[1] < 0 || v[1] > 1) return rcv_fail("augment: trivialaugment:fill=%g, expected 0..1", v[1]);
        break;
    case T_AUTOAUG:
        if (v[1] < 0 || v[1] > 1) return rcv_fail("augment: autoaugment:fill=%g, expected 0..1", v[1]);
        break;
    }
    return 0;
}

static int parse_transform(char *tok, aug_op *op) {
    char *save = NULL, *name = strtok_r(tok, ":", &save);
    char msg[512];
    int t;
    if (!name) { // only colons: "--augment ':'"
        list_names(msg, sizeof msg);
        return rcv_fail("augment: '%s' names no transform, expected one of: %s", tok, msg);
    }
    for (t = 0; t < T_COUNT; t++)
        if (!strcmp(name, specs[t].name)) break;
    if (t == T_COUNT) {
        list_names(msg, sizeof msg);
        return rcv_fail("augment: unknown transform '%s', expected one of: %s", name, msg);
    }
    const transform_spec *s = &specs[t];
    memset(op, 0, sizeof *op);
    op->type = t;
    op->p = s->p_default;
    for (const key_spec *k = s->keys; k->key; k++)
        if (set_key(op, s, k, k->def)) return -1;
    for (char *kv = strtok_r(NULL, ":", &save); kv; kv = strtok_r(NULL, ":", &save)) {
        char *eq = strchr(kv, '=');
        list_keys(s, msg, sizeof msg);
        if (!eq) return rcv_fail("augment: '%s' in %s is not key=value; keys of %s: %s", kv, s->name, s->name, msg);
        *eq = 0;
        const char *val = eq + 1;
        if (!strcmp(kv, "p")) {
            float pv;
            if (parse_numbers(val, &pv, 1) != 1) return rcv_fail("augment: %s:p='%s', expected a number in 0..1", s->name, val);
            op->p = pv;
            continue;
        }
        const key_spec *k;
        for (k = s->keys; k->key; k++)
            if (!strcmp(kv, k->key)) break;
        if (!k->key) return rcv_fail("augment: unknown key '%s' for %s, expected one of: %s", kv, s->name, msg);
        if (set_key(op, s, k, val)) return -1;
    }
    return check_op(op);
}

const char *rcv_augment_preset(const char *spec) {
    if (!spec) return "";
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(spec, presets[i].name)) return presets[i].spec;
    return spec;
}

int rcv_augment_parse(rcv_augment **out, const char *spec) {
    *out = NULL;
    spec = rcv_augment_preset(spec);
    char *buf = rcv_xstrdup(spec);
    rcv_augment *a = rcv_xcalloc(1, sizeof *a);
    int cap = 1;
    for (const char *p = spec; *p; p++) cap += *p == ',';
    a->ops = rcv_xcalloc((size_t)cap, sizeof(aug_op));
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        if (!*tok) continue;
        if (parse_transform(tok, &a->ops[a->n])) {
            free(buf);
            rcv_augment_free(a);
            return -1;
        }
        a->n++;
    }
    free(buf);
    *out = a;
    return 0;
}

const char *rcv_augment_help(void) {
    static char buf[12288]; // built once from the tables; identical on every call
    if (buf[0]) return buf;
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "augment spec: transforms separated by ',', parameters by ':' as key=value;\n"
                          "ranges as lo/hi. Every transform takes p= (probability; default shown).\n");
    for (int t = 0; t < T_COUNT; t++) {
        const transform_spec *s = &specs[t];
        n += (size_t)snprintf(buf + n, sizeof buf - n, "  %-12s %s (p=%g)\n", s->name, s->help, s->p_default);
        for (const key_spec *k = s->keys; k->key; k++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, k->lo < k->hi ? "      %-17s default %-14s %s; %g..%g\n"
                                                                         : "      %-17s default %-14s %s\n",
                                  k->key, k->def, k->help, k->lo, k->hi);
    }
    n += (size_t)snprintf(buf + n, sizeof buf - n, "presets:\n");
    for (size_t i = 0; i < N_PRESETS; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "  %-12s %s\n      = \"%s\"\n", presets[i].name, presets[i].why,
                              presets[i].spec);
    return buf;
}

// ---- application

typedef struct {
    int kind; // 0 affine, 1 perspective, 2 scale+shift, 3 symmetry
    double m[8];
    int k, w;
} point_ctx;

static void map_point(const void *vctx, float x, float y, float *ox, float *oy) {
    const point_ctx *p = vctx;
    const double *m = p->m;
    if (p->kind == 0 || p->kind == 2) {
        *ox = (float)(m[0] * x + m[1] * y + m[2]);
        *oy = (float)(m[3] * x + m[4] * y + m[5]);
    } else if (p->kind == 1) {
        double d = m[6] * x + m[7] * y + 1;
        *ox = (float)((m[0] * x + m[1] * y + m[2]) / d);
        *oy = (float)((m[3] * x + m[4] * y + m[5]) / d);
    } else {
        rcv_sym_point(p->k, p->w, x, y, ox, oy);
    }
}

static void boxes_shift_scale(float *boxes, int n, double sx, double dx, double sy, double dy, int w, int h) {
    point_ctx p = {.kind = 2, .m = {sx, 0, dx, 0, sy, dy}};
    aug_boxes_map(boxes, n, map_point, &p, w, h);
}

void rcv_augment_apply(const rcv_augment *a, rcv_rng *r, float *x, int h, int w, int c, float *boxes, int n_boxes) {
    if (!a || a->n == 0) return;
    size_t n = (size_t)h * w * c;
    float *cur = x, *tmp = NULL, *other = NULL;
    if (!boxes) n_boxes = 0;
    for (int o = 0; o < a->n; o++) {
        const aug_op *op = &a->ops[o];
        const float *v = op->v;
        if (op->p < 1 && !(rcv_rng_uniform(r) < op->p)) continue;
        int out_of_place = op->type == T_CROP || op->type == T_RRC || op->type == T_AFFINE || op->type == T_ROTATE ||
                           op->type == T_PERSPECTIVE || (op->type == T_SYM && h == w);
        if (out_of_place && !tmp) {
            tmp = rcv_xmalloc(n * sizeof(float));
            other = tmp;
        }
        point_ctx pc = {0};
        switch (op->type) {
        case T_HFLIP:
            rcv_aug_hflip(cur, h, w, c);
            boxes_shift_scale(boxes, n_boxes, -1, w, 1, 0, w, h);
            break;
        case T_VFLIP:
            rcv_aug_vflip(cur, h, w, c);
            boxes_shift_scale(boxes, n_boxes, 1, 0, -1, h, w, h);
            break;
        case T_CROP: {
            int pad = (int)v[0];
            int top = aug_randint(r, 0, 2 * pad + 1), left = aug_randint(r, 0, 2 * pad + 1);
            rcv_aug_pad_crop(cur, h, w, c, pad, (rcv_pad_mode)(int)v[1], v[2], top, left, h, w, other);
            boxes_shift_scale(boxes, n_boxes, 1, pad - left, 1, pad - top, w, h);
            break;
        }
        case T_RRC: {
            int top, left, ch, cw;
            aug_rrc_params(r, h, w, v, v + 2, &top, &left, &ch, &cw);
            rcv_aug_resized_crop(cur, h, w, c, top, left, ch, cw, h, w, other);
            boxes_shift_scale(boxes, n_boxes, (double)w / cw, -(double)left * w / cw, (double)h / ch,
                              -(double)top * h / ch, w, h);
            break;
        }
        case T_AFFINE: {
            float prm[6];
            aug_affine_params(r, h, w, v, v + 2, v + 4, v + 6, prm);
            rcv_aug_affine(cur, h, w, c, prm[0], prm[1], prm[2], prm[3], prm[4], prm[5], v[10], other);
            if (n_boxes) {
                aug_affine_forward(h, w, prm[0], prm[1], prm[2], prm[3], prm[4], prm[5], pc.m);
                aug_boxes_map(boxes, n_boxes, map_point, &pc, w, h);
            }
            break;
        }
        case T_ROTATE: {
            float ang = aug_uniform(r, v[0], v[1]);
            rcv_aug_rotate(cur, h, w, c, ang, v[2], other);
            if (n_boxes) {
                aug_affine_forward(h, w, -ang, 0, 0, 1, 0, 0, pc.m);
                aug_boxes_map(boxes, n_boxes, map_point, &pc, w, h);
            }
            break;
        }
        case T_PERSPECTIVE: {
            float s[8], e[8];
            aug_perspective_params(r, h, w, v[0], s, e);
            rcv_aug_perspective(cur, h, w, c, s, e, v[1], other);
            if (n_boxes) {
                pc.kind = 1;
                aug_perspective_coeffs(s, e, pc.m);
                aug_boxes_map(boxes, n_boxes, map_point, &pc, w, h);
            }
            break;
        }
        case T_JITTER: {
            int order[4];
            float f[4];
            aug_jitter_params(r, v, order, f);
            for (int i = 0; i < 4; i++) {
                int fn = order[i];
                // A zero-width range at the identity is "not given" in torchvision: skip it.
                if (fn < 3 ? (v[2 * fn] == 1 && v[2 * fn + 1] == 1) || (v[2 * fn] == 0 && v[2 * fn + 1] == 0)
                           : (v[6] == 0 && v[7] == 0))
                    continue;
                if (fn == 0) rcv_aug_brightness(cur, h, w, c, f[0]);
                else if (fn == 1) rcv_aug_contrast(cur, h, w, c, f[1]);
                else if (fn == 2) rcv_aug_saturation(cur, h, w, c, f[2]);
                else rcv_aug_hue(cur, h, w, c, f[3]);
            }
            break;
        }
        case T_GRAY: rcv_aug_grayscale(cur, h, w, c); break;
        case T_BLUR: {
            float s = aug_uniform(r, v[2], v[3]);
            rcv_aug_gaussian_blur(cur, h, w, c, (int)v[0], (int)v[1], s, s);
            break;
        }
        case T_ERASE: {
            int i, j, eh, ew;
            if (!aug_erase_params(r, h, w, v, v + 2, &i, &j, &eh, &ew)) break;
            int mode = (int)v[4];
            if (mode == 2) {
                rcv_aug_erase(cur, h, w, c, i, j, eh, ew, NULL, v[5]);
            } else {
                float *vals = rcv_xmalloc(sizeof(float) * (size_t)eh * ew * c);
                if (mode == 0) rcv_rng_fill_uniform(r, vals, (size_t)eh * ew * c, 0, 1);
                else rcv_rng_fill_normal(r, vals, (size_t)eh * ew * c, 0, 1);
                rcv_aug_erase(cur, h, w, c, i, j, eh, ew, vals, 0);
                free(vals);
            }
            break;
        }
        case T_AUTOAUG:
        case T_RANDAUG:
        case T_TRIVIAL: {
            aug_policy pol = {.kind = op->type == T_AUTOAUG   ? POLICY_AUTO
                                      : op->type == T_RANDAUG ? POLICY_RAND
                                                              : POLICY_TRIVIAL};
            if (op->type == T_AUTOAUG) pol.policy = (int)v[0], pol.bins = 10, pol.fill = v[1];
            else if (op->type == T_RANDAUG)
                pol.num_ops = (int)v[0], pol.magnitude = (int)v[1], pol.bins = (int)v[2], pol.fill = v[3];
            else pol.bins = (int)v[0], pol.fill = v[1];
            aug_policy_draw d;
            aug_policy_sample(&pol, h, w, r, &d);
            aug_policy_run(&d, pol.fill, cur, h, w, c, boxes, n_boxes);
            break;
        }
        case T_SYM: {
            if (h != w) break; // only square images have these symmetries
            int k = (int)rcv_rng_below(r, 8);
            rcv_sym_apply(k, cur, other, h, w, c);
            pc.kind = 3;
            pc.k = k;
            pc.w = w;
            aug_boxes_map(boxes, n_boxes, map_point, &pc, w, h);
            break;
        }
        }
        if (out_of_place && !(op->type == T_SYM && h != w)) { // the result is in `other`: swap
            float *t = cur;
            cur = other;
            other = t;
        }
    }
    if (cur != x) memcpy(x, cur, n * sizeof(float));
    free(tmp);
}
