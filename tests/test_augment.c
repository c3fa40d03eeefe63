// Augmentation: each deterministic transform against torchvision.transforms.functional on the same
// float image (tests/oracle/augment_ref.py); random parameters stay in their documented ranges over
// many draws; boxes follow the content of geometric transforms; the 8 symmetries form the dihedral
// group; spec errors name the bad token.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/aug_internal.h"
#include "robustcv/error.h"
#include "testutil.h"

#define H 20
#define W 28
#define S 24 // square images for symmetries

static float img[H * W * 3], sq[S * S * 3];

static void write_f32(const char *dir, const char *name, const float *x, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    fwrite(x, sizeof(float), n, f);
    fclose(f);
}

static int read_f32(const char *dir, const char *id, float *x, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%.900s/%.31s.f32", dir, id);
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    size_t got = fread(x, sizeof(float), n, f);
    fclose(f);
    return got == n ? 0 : -1;
}

// One case: our output `ours` (n floats) vs the oracle's. tol: max abs error allowed on matching
// pixels; max_frac: fraction of values allowed to differ by more (nearest-sampling ties).
typedef struct {
    char id[32], line[512];
    float *ours;
    size_t n;
    double tol, max_frac;
} tcase;
static tcase cases[64];
static int n_cases;

// square: the S x S image; c == 1: the gray image (first channel of img); else img.
static void add_case(const char *op, int square, int c, const float *ours, size_t n, double tol, double max_frac,
                     const char *params) {
    tcase *t = &cases[n_cases];
    char id[32];
    snprintf(id, sizeof id, "c%02d_%s", n_cases, op);
    memcpy(t->id, id, sizeof id);
    snprintf(t->line, sizeof t->line, "%s %s %s %d %d %d %s\n", id, op,
             square ? "sq.f32" : c == 1 ? "gimg.f32" : "img.f32", square ? S : H, square ? S : W, c, params);
    t->ours = malloc(n * sizeof(float));
    memcpy(t->ours, ours, n * sizeof(float));
    t->n = n;
    t->tol = tol;
    t->max_frac = max_frac;
    n_cases++;
}

static void oracle_cases(void) {
    float out[H * W * 3 * 4], x[H * W * 3];
    size_t n = H * W * 3;
    memcpy(x, img, sizeof img);
    rcv_aug_hflip(x, H, W, 3);
    add_case("hflip", 0, 3, x, n, 0, 0, "");
    memcpy(x, img, sizeof img);
    rcv_aug_vflip(x, H, W, 3);
    add_case("vflip", 0, 3, x, n, 0, 0, "");
    for (int mode = 0; mode < 3; mode++) {
        char prm[64];
        snprintf(prm, sizeof prm, "4 %d 0.3 1 7 %d %d", mode, H, W);
        rcv_aug_pad_crop(img, H, W, 3, 4, (rcv_pad_mode)mode, 0.3f, 1, 7, H, W, out);
        add_case("padcrop", 0, 3, out, n, 0, 0, prm);
    }
    // Larger crop than the image so padding shows on every side.
    rcv_aug_pad_crop(img, H, W, 3, 5, RCV_PAD_REFLECT, 0, 0, 0, H + 10, W + 10, out);
    add_case("padcrop", 0, 3, out, (H + 10) * (W + 10) * 3, 0, 0, "5 1 0 0 0 30 38");
    rcv_aug_resized_crop(img, H, W, 3, 3, 2, 10, 15, H, W, out);
    add_case("resizedcrop", 0, 3, out, n, 1e-5, 0, "3 2 10 15 20 28");
    rcv_aug_resized_crop(img, H, W, 3, 0, 4, 20, 21, 13, 9, out); // downscale
    add_case("resizedcrop", 0, 3, out, 13 * 9 * 3, 1e-5, 0, "0 4 20 21 13 9");
    rcv_aug_affine(img, H, W, 3, 30, 2, -3, 1.1f, 10, 5, 0.2f, out);
    add_case("affine", 0, 3, out, n, 0, 0.01, "30 2 -3 1.1 10 5 0.2");
    rcv_aug_affine(img, H, W, 3, -12.5f, 0, 4, 0.8f, 0, 0, 0, out);
    add_case("affine", 0, 3, out, n, 0, 0.01, "-12.5 0 4 0.8 0 0 0");
    rcv_aug_rotate(img, H, W, 3, 37, 0, out);
    add_case("rotate", 0, 3, out, n, 0, 0.01, "37 0");
    float st[8] = {0, 0, W - 1, 0, W - 1, H - 1, 0, H - 1}, en[8] = {3, 1, W - 4, 2, W - 1, H - 5, 2, H - 2};
    rcv_aug_perspective(img, H, W, 3, st, en, 0.5f, out);
    char prm[256] = "";
    for (int i = 0; i < 8; i++) snprintf(prm + strlen(prm), sizeof prm - strlen(prm), "%g ", st[i]);
    for (int i = 0; i < 8; i++) snprintf(prm + strlen(prm), sizeof prm - strlen(prm), "%g ", en[i]);
    strcat(prm, "0.5");
    add_case("perspective", 0, 3, out, n, 0, 0.01, prm);
    struct {
        const char *op;
        void (*fn)(float *, int, int, int, float);
        float f;
        int c;
    } col[] = {{"brightness", rcv_aug_brightness, 1.3f, 3}, {"brightness", rcv_aug_brightness, 0.4f, 1},
               {"contrast", rcv_aug_contrast, 0.6f, 3},     {"contrast", rcv_aug_contrast, 1.8f, 1},
               {"saturation", rcv_aug_saturation, 1.7f, 3}, {"saturation", rcv_aug_saturation, 0.2f, 3},
               {"hue", rcv_aug_hue, 0.23f, 3},              {"hue", rcv_aug_hue, -0.4f, 3},
               {"hue", rcv_aug_hue, 0.5f, 3}};
    for (size_t i = 0; i < sizeof col / sizeof col[0]; i++) {
        // c = 1: the first channel of the image as a gray one
        if (col[i].c == 1)
            for (int p = 0; p < H * W; p++) x[p] = img[3 * p];
        else
            memcpy(x, img, sizeof img);
        col[i].fn(x, H, W, col[i].c, col[i].f);
        snprintf(prm, sizeof prm, "%.9g", col[i].f);
        // Hue goes through HSV and back in float: ~1e-6 per value.
        add_case(col[i].op, 0, col[i].c, x, (size_t)H * W * col[i].c, 2e-5, 0, prm);
    }
    memcpy(x, img, sizeof img);
    rcv_aug_grayscale(x, H, W, 3);
    add_case("gray", 0, 3, x, n, 1e-6, 0, "");
    memcpy(x, img, sizeof img);
    rcv_aug_gaussian_blur(x, H, W, 3, 5, 3, 1.3f, 0.7f);
    add_case("blur", 0, 3, x, n, 1e-5, 0, "5 3 1.3 0.7");
    memcpy(x, img, sizeof img);
    rcv_aug_gaussian_blur(x, H, W, 3, 9, 9, 2.0f, 2.0f);
    add_case("blur", 0, 3, x, n, 1e-5, 0, "9 9 2 2");
    memcpy(x, img, sizeof img);
    rcv_aug_erase(x, H, W, 3, 2, 3, 5, 7, NULL, 0.5f);
    add_case("erase", 0, 3, x, n, 0, 0, "2 3 5 7 0.5");
    for (int k = 0; k < 8; k++) {
        rcv_sym_apply(k, sq, out, S, S, 3);
        snprintf(prm, sizeof prm, "%d", k);
        add_case("sym", 1, 3, out, S * S * 3, 0, 0, prm);
    }
}

static void check_oracle(void) {
    const char *dir = test_tmpdir("augment");
    write_f32(dir, "img.f32", img, H * W * 3);
    write_f32(dir, "sq.f32", sq, S * S * 3);
    // gray single-channel input for the c = 1 cases
    float g[H * W];
    for (int p = 0; p < H * W; p++) g[p] = img[3 * p];
    write_f32(dir, "gimg.f32", g, H * W);
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n_cases; i++) fputs(cases[i].line, f);
    fclose(f);
    int rc = test_sh("/usr/bin/python3 tests/oracle/augment_ref.py run %s", dir);
    CHECK(rc == 0, "augment_ref.py failed (%d)", rc);
    if (rc) return;
    for (int i = 0; i < n_cases; i++) {
        tcase *t = &cases[i];
        float *ref = malloc(t->n * sizeof(float));
        if (read_f32(dir, t->id, ref, t->n)) {
            CHECK(0, "%s: no oracle output of %zu floats", t->id, t->n);
            free(ref);
            continue;
        }
        size_t bad = 0;
        double err = 0;
        for (size_t k = 0; k < t->n; k++) {
            double e = fabs((double)t->ours[k] - ref[k]);
            if (e > t->tol) bad++;
            else if (e > err) err = e;
        }
        double frac = (double)bad / t->n;
        CHECK(frac <= t->max_frac, "%s: %zu of %zu values differ by more than %g (allowed fraction %g)", t->id, bad,
              t->n, t->tol, t->max_frac);
        printf("  %-16s max |diff| %.2e, values over tol %zu/%zu\n", t->id, err, bad, t->n);
        free(ref);
        free(t->ours);
    }
}

// ---- random parameters

static void check_ranges(void) {
    rcv_rng r;
    rcv_rng_init(&r, 11);
    int N = 4000;
    // RandomResizedCrop: defaults scale (0.08, 1), ratio (3/4, 4/3) on 64 x 64.
    float sc[2] = {0.08f, 1}, ra[2] = {0.75f, 4.0f / 3};
    int ok = 1;
    double mean_area = 0;
    for (int i = 0; i < N; i++) {
        int t, l, ch, cw;
        aug_rrc_params(&r, 64, 64, sc, ra, &t, &l, &ch, &cw);
        double a = (double)ch * cw / 4096, asp = (double)cw / ch;
        // rounding to whole pixels moves area and aspect a little past the bounds
        ok &= t >= 0 && l >= 0 && t + ch <= 64 && l + cw <= 64 && a >= 0.08 * 0.8 && a <= 1.0 &&
              asp >= 0.75 * 0.85 && asp <= 4.0 / 3 * 1.15;
        mean_area += a / N;
    }
    CHECK(ok, "rrc parameters out of range");
    // Fallback centre crops make the mean a bit less than the uniform mean of 0.54.
    CHECK(mean_area > 0.45 && mean_area < 0.56, "rrc mean area %g, expected ~0.5", mean_area);
    // RandomErasing defaults.
    float esc[2] = {0.02f, 0.33f}, era[2] = {0.3f, 3.3f};
    ok = 1;
    int found = 0;
    double lo_ar = 1e9, hi_ar = 0;
    for (int i = 0; i < N; i++) {
        int ei, ej, eh, ew;
        if (!aug_erase_params(&r, 64, 64, esc, era, &ei, &ej, &eh, &ew)) continue;
        found++;
        double a = (double)eh * ew / 4096, ar = (double)eh / ew;
        lo_ar = fmin(lo_ar, ar);
        hi_ar = fmax(hi_ar, ar);
        ok &= ei >= 0 && ej >= 0 && ei + eh <= 64 && ej + ew <= 64 && eh < 64 && ew < 64 && a > 0.02 * 0.7 &&
              a < 0.33 * 1.3 && ar > 0.3 * 0.7 && ar < 3.3 * 1.4;
    }
    CHECK(ok && found > N * 0.95, "erase parameters out of range (%d of %d found)", found, N);
    CHECK(lo_ar < 0.4 && hi_ar > 2.5, "erase aspect range %g..%g, expected to span ~0.3..3.3", lo_ar, hi_ar);
    // RandomAffine(degrees=25, translate=(0.2, 0.1), scale=(0.8, 1.2), shear=(-8, 8, -3, 3)).
    float deg[2] = {-25, 25}, tr[2] = {0.2f, 0.1f}, scl[2] = {0.8f, 1.2f}, sh[4] = {-8, 8, -3, 3};
    ok = 1;
    double mx[6] = {0}, mn[6] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
    for (int i = 0; i < N; i++) {
        float p[6];
        aug_affine_params(&r, 40, 50, deg, tr, scl, sh, p);
        ok &= p[1] == roundf(p[1]) && p[2] == roundf(p[2]);
        for (int k = 0; k < 6; k++) mx[k] = fmax(mx[k], p[k]), mn[k] = fmin(mn[k], p[k]);
    }
    CHECK(ok, "affine translations must be whole pixels");
    CHECK(mn[0] >= -25 && mx[0] <= 25 && mn[0] < -24 && mx[0] > 24, "affine angle %g..%g", mn[0], mx[0]);
    CHECK(mn[1] >= -10 && mx[1] <= 10 && mn[1] <= -9 && mx[1] >= 9, "affine tx %g..%g, expected -10..10", mn[1], mx[1]);
    CHECK(mn[2] >= -4 && mx[2] <= 4 && mn[2] <= -3 && mx[2] >= 3, "affine ty %g..%g, expected -4..4", mn[2], mx[2]);
    CHECK(mn[3] >= 0.8 && mx[3] <= 1.2, "affine scale %g..%g", mn[3], mx[3]);
    CHECK(mn[4] >= -8 && mx[4] <= 8 && mn[5] >= -3 && mx[5] <= 3 && mx[5] > 2.9, "affine shear out of range");
    // RandomPerspective(distortion_scale=0.5) on 64 x 48: corners move inwards by at most 0.5 * half size.
    ok = 1;
    int reach = 0;
    for (int i = 0; i < N; i++) {
        float s[8], e[8];
        aug_perspective_params(&r, 48, 64, 0.5f, s, e);
        int dw = 16, dh = 12;
        // torch.randint bounds: tl in [0, d], br in [size - d - 1, size - 1]
        ok &= e[0] >= 0 && e[0] <= dw && e[1] >= 0 && e[1] <= dh && e[2] >= 64 - dw - 1 && e[2] <= 63 &&
              e[5] >= 48 - dh - 1 && e[5] <= 47 && e[6] <= dw && e[7] >= 48 - dh - 1;
        reach |= (e[0] == dw) | ((e[5] == 48 - dh - 1) << 1);
        ok &= s[0] == 0 && s[2] == 63 && s[5] == 47;
    }
    CHECK(ok && reach == 3, "perspective corners out of range or range ends never drawn");
    // ColorJitter(0.4, 0.4, 0.4, 0.1): factors in [0.6, 1.4], hue in [-0.1, 0.1], all 24 orders.
    float rg[8] = {0.6f, 1.4f, 0.6f, 1.4f, 0.6f, 1.4f, -0.1f, 0.1f};
    int seen[256] = {0};
    double mean[4] = {0};
    ok = 1;
    for (int i = 0; i < N; i++) {
        int o[4];
        float f[4];
        aug_jitter_params(&r, rg, o, f);
        int used = 0;
        for (int k = 0; k < 4; k++) used |= 1 << o[k];
        ok &= used == 15;
        seen[o[0] * 64 + o[1] * 16 + o[2] * 4 + o[3]] = 1;
        for (int k = 0; k < 4; k++) {
            ok &= f[k] >= rg[2 * k] && f[k] <= rg[2 * k + 1];
            mean[k] += f[k] / N;
        }
    }
    int n_orders = 0;
    for (int i = 0; i < 256; i++) n_orders += seen[i];
    CHECK(ok && n_orders == 24, "jitter: %d orders seen, expected 24, or factors out of range", n_orders);
    CHECK(fabs(mean[0] - 1) < 0.03 && fabs(mean[3]) < 0.01, "jitter means %g %g, expected 1 and 0", mean[0], mean[3]);
}

// Probabilities through the whole pipeline: flip frequency, symmetry frequencies, crop offsets.
static void check_pipeline_draws(void) {
    rcv_augment *a;
    CHECK(rcv_augment_parse(&a, "hflip:p=0.6") == 0, "%s", rcv_error());
    rcv_rng r;
    rcv_rng_init(&r, 5);
    int flips = 0, N = 4000;
    for (int i = 0; i < N; i++) {
        float x[4] = {0, 1, 2, 3}; // 1 x 4 gray row
        rcv_augment_apply(a, &r, x, 1, 4, 1, NULL, 0);
        flips += x[0] == 3;
    }
    CHECK(fabs(flips / (double)N - 0.6) < 0.03, "hflip p=0.6 flipped %d of %d", flips, N);
    rcv_augment_free(a);

    CHECK(rcv_augment_parse(&a, "sym") == 0, "%s", rcv_error());
    int count[8] = {0};
    float ref[8][9];
    float g[9];
    for (int i = 0; i < 9; i++) g[i] = (float)i;
    for (int k = 0; k < 8; k++) rcv_sym_apply(k, g, ref[k], 3, 3, 1);
    for (int i = 0; i < N; i++) {
        float x[9];
        memcpy(x, g, sizeof g);
        rcv_augment_apply(a, &r, x, 3, 3, 1, NULL, 0);
        for (int k = 0; k < 8; k++)
            if (!memcmp(x, ref[k], sizeof x)) count[k]++;
    }
    int ok = 1;
    for (int k = 0; k < 8; k++) ok &= fabs(count[k] / (double)N - 0.125) < 0.025;
    CHECK(ok, "sym frequencies %d %d %d %d %d %d %d %d of %d, expected ~1/8 each", count[0], count[1], count[2],
          count[3], count[4], count[5], count[6], count[7], N);
    rcv_augment_free(a);

    // crop:pad=4 shifts content by pad - offset in [-4, 4], every value drawn.
    CHECK(rcv_augment_parse(&a, "crop:pad=4") == 0, "%s", rcv_error());
    int shifts[9] = {0};
    ok = 1;
    for (int i = 0; i < N / 4; i++) {
        float x[16 * 16];
        memset(x, 0, sizeof x);
        x[8 * 16 + 8] = 1; // a marker pixel
        rcv_augment_apply(a, &r, x, 16, 16, 1, NULL, 0);
        int at = -1;
        for (int p = 0; p < 256; p++)
            if (x[p] == 1) at = p;
        int dy = at / 16 - 8, dx = at % 16 - 8;
        ok &= at >= 0 && abs(dx) <= 4 && abs(dy) <= 4;
        if (at >= 0) shifts[dx + 4]++;
    }
    for (int k = 0; k < 9; k++) ok &= shifts[k] > 0;
    CHECK(ok, "crop:pad=4 offsets outside -4..4 or not all reached");
    rcv_augment_free(a);

    // jitter:brightness=0.4 alone on a constant image: out/in = factor in [0.6, 1.4].
    CHECK(rcv_augment_parse(&a, "jitter:brightness=0.4") == 0, "%s", rcv_error());
    double lo = 9, hi = 0;
    for (int i = 0; i < N / 4; i++) {
        float x[3] = {0.5f, 0.5f, 0.5f};
        rcv_augment_apply(a, &r, x, 1, 1, 3, NULL, 0);
        lo = fmin(lo, x[0] / 0.5);
        hi = fmax(hi, x[0] / 0.5);
    }
    CHECK(lo >= 0.6 - 1e-6 && hi <= 1.4 + 1e-6 && lo < 0.62 && hi > 1.38, "brightness factors %g..%g", lo, hi);
    rcv_augment_free(a);
}

// Boxes: a bright rectangle's pixels after the transform have the bounding box the box mapping says.
static void check_boxes(void) {
    const char *specs[] = {"hflip:p=1", "vflip:p=1", "crop:pad=6", "rrc:scale=0.5/1", "affine:degrees=30:translate=0.1/0.1:scale=0.9/1.1:shear=10",
                           "rotate:degrees=40", "perspective:p=1:distortion_scale=0.4", "sym", "hflip,crop:pad=4,vflip,sym"};
    rcv_rng r;
    rcv_rng_init(&r, 9);
    int n = 32;
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        rcv_augment *a;
        if (rcv_augment_parse(&a, specs[s])) {
            CHECK(0, "%s", rcv_error());
            continue;
        }
        double worst = 0;
        for (int trial = 0; trial < 20; trial++) {
            float x[32 * 32];
            memset(x, 0, sizeof x);
            float box[4] = {9, 11, 21, 19}; // x0, y0, x1, y1: pixels 9..20 by 11..18
            for (int i = 11; i < 19; i++)
                for (int j = 9; j < 21; j++) x[i * n + j] = 1;
            rcv_augment_apply(a, &r, x, n, n, 1, box, 1);
            int x0 = n, y0 = n, x1 = -1, y1 = -1;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    if (x[i * n + j] > 0.5f) {
                        if (j < x0) x0 = j;
                        if (j > x1) x1 = j;
                        if (i < y0) y0 = i;
                        if (i > y1) y1 = i;
                    }
            if (x1 < 0) continue; // rectangle left the image entirely
            double e = fmax(fmax(fabs(box[0] - x0), fabs(box[1] - y0)), fmax(fabs(box[2] - (x1 + 1)), fabs(box[3] - (y1 + 1))));
            worst = fmax(worst, e);
        }
        // Exact for flips/crops/symmetries; nearest sampling and bilinear edges blur warps by ~1 px.
        double tol = (strstr(specs[s], "affine") || strstr(specs[s], "rotate") || strstr(specs[s], "perspective") ||
                      strstr(specs[s], "rrc"))
                         ? 1.6
                         : 0;
        CHECK(worst <= tol, "boxes under '%s': off by %g px from the content (tol %g)", specs[s], worst, tol);
        printf("  boxes %-60s worst %.2f px\n", specs[s], worst);
        rcv_augment_free(a);
    }
}

static void check_group(void) {
    float x[S * S * 3], y[S * S * 3], z[S * S * 3];
    int closed = 1, inv = 1, distinct = 1;
    for (int a = 0; a < 8; a++) {
        int ai = rcv_sym_inverse(a);
        rcv_sym_apply(a, sq, x, S, S, 3);
        rcv_sym_apply(ai, x, y, S, S, 3);
        inv &= ai >= 0 && !memcmp(y, sq, sizeof y);
        for (int b = 0; b < 8; b++) {
            int ab = rcv_sym_compose(a, b);
            rcv_sym_apply(b, sq, x, S, S, 3);
            rcv_sym_apply(a, x, y, S, S, 3);
            rcv_sym_apply(ab, sq, z, S, S, 3);
            closed &= ab >= 0 && ab < 8 && !memcmp(y, z, sizeof y);
            if (a < b) {
                rcv_sym_apply(a, sq, x, S, S, 3);
                rcv_sym_apply(b, sq, y, S, S, 3);
                distinct &= memcmp(x, y, sizeof x) != 0;
            }
        }
    }
    CHECK(closed, "symmetries not closed under composition");
    CHECK(inv, "symmetry inverses do not undo");
    CHECK(distinct, "the 8 symmetries are not distinct");
    CHECK(rcv_sym_compose(0, 5) == 5 && rcv_sym_compose(1, 1) == 2 && rcv_sym_compose(1, 3) == 0,
          "identity or rotation composition wrong");
    int assoc = 1;
    for (int a = 0; a < 8; a++)
        for (int b = 0; b < 8; b++)
            for (int c = 0; c < 8; c++)
                assoc &= rcv_sym_compose(rcv_sym_compose(a, b), c) == rcv_sym_compose(a, rcv_sym_compose(b, c));
    CHECK(assoc, "composition not associative");
}

static void check_parse(void) {
    rcv_augment *a = NULL;
    struct {
        const char *spec, *must1, *must2;
    } bad[] = {
        {"hflipp", "'hflipp'", "hflip"},
        {"crop:padd=4", "'padd'", "pad"},
        {"crop:pad=-1", "pad", "integer"},
        {"jitter:hue=0.7", "hue", "0.5"},
        {"erase:value=foo", "'foo'", "random"},
        {"blur:kernel_size=4", "kernel_size", "odd"},
        {"hflip:p=1.5", "p=1.5", "0..1"},
        {"rrc:scale=0.5/0.1", "scale", "lo/hi"},
        {"crop:pad", "'pad'", "key=value"},
        {"crop:mode=wrap", "'wrap'", "reflect"},
        // Found by fuzzing (tests/fuzz/regress/augment): no transform name, unbounded or non-finite values.
        {":", "names no transform", "hflip"},
        {"blur:kernel_size=100001", "kernel_size", "1..255"},
        {"crop:pad=1e9", "pad", "0..1024"},
        {"affine:degrees=nan", "degrees", "-360..360"},
        {"rotate:fill=inf", "fill", "0..1"},
        {"affine:shear=90", "shear", "-89..89"},
        {"erase:value=1e39", "value", "0..1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = rcv_augment_parse(&a, bad[i].spec);
        const char *m = rcv_error();
        CHECK(rc == -1 && a == NULL && strstr(m, bad[i].must1) && strstr(m, bad[i].must2),
              "spec '%s': rc %d, message '%s' should name '%s' and '%s'", bad[i].spec, rc, m, bad[i].must1,
              bad[i].must2);
    }
    const char *good[] = {"none", "seed-flip", "seed-jitter", "seed-erase", "seed-fe", "seed-fce", "seed-sym",
                          "seed-full", "seed-imgaug", "hflip:p=0.6,crop:pad=4:mode=reflect,jitter:brightness=0.4:contrast=0.4:saturation=0.4:hue=0.1,erase:p=0.5:value=random",
                          "affine:degrees=10/20:shear=1/2/3/4,blur:kernel_size=5/3:sigma=0.5"};
    int counts[] = {0, 1, 1, 1, 2, 3, 1, 5, 4, 4, 2};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int rc = rcv_augment_parse(&a, good[i]);
        CHECK(rc == 0 && rcv_augment_count(a) == counts[i], "spec '%s': rc %d count %d (%s)", good[i], rc,
              rc ? -1 : rcv_augment_count(a), rc ? rcv_error() : "");
        rcv_augment_free(a);
    }
    const char *help = rcv_augment_help();
    const char *names[] = {"hflip", "vflip", "crop", "rrc", "affine", "rotate", "perspective", "jitter", "gray", "blur",
                           "erase", "sym", "seed-full", "distortion_scale", "brightness"};
    int all = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) all &= strstr(help, names[i]) != NULL;
    CHECK(all, "help lacks a transform, key or preset");
    // erase:value=random fills with uniform [0,1) pixels; default value 0 fills zeros.
    CHECK(rcv_augment_parse(&a, "erase:p=1:value=random") == 0, "%s", rcv_error());
    rcv_rng r;
    rcv_rng_init(&r, 3);
    float x[32 * 32 * 3];
    for (int i = 0; i < 32 * 32 * 3; i++) x[i] = 2; // out of [0,1]: erased values stand out
    rcv_augment_apply(a, &r, x, 32, 32, 3, NULL, 0);
    int erased = 0, inrange = 1;
    for (int i = 0; i < 32 * 32 * 3; i++)
        if (x[i] != 2) erased++, inrange &= x[i] >= 0 && x[i] < 1;
    CHECK(erased > 0 && inrange, "erase:value=random erased %d values, all in [0,1): %d", erased, inrange);
    rcv_augment_free(a);
}

int main(void) {
    fill_uniform(img, sizeof img / sizeof img[0], 1, 0, 1);
    fill_uniform(sq, sizeof sq / sizeof sq[0], 2, 0, 1);
    // A few exact ties and saturated values: hue/contrast branches for max == min and clamping.
    for (int p = 0; p < 6; p++) img[3 * p] = img[3 * p + 1] = img[3 * p + 2] = 0.25f * (float)(p % 5);
    img[30] = 1, img[31] = 1, img[32] = 0;
    oracle_cases();
    check_oracle();
    check_ranges();
    check_pipeline_draws();
    check_boxes();
    check_group();
    check_parse();
    return test_done();
}
