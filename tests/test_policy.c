// Automatic augmentation policies: each op equals torchvision 0.14's autoaugment._apply_op on the
// same uint8 image and magnitude (tests/oracle/policy_ref.py); whole draws through the --augment
// entries equal the oracle's ops applied in turn; the magnitude tables and AutoAugment's policies
// equal torchvision's; over many draws the op choices, bins, signs, sub-policies and per-step
// probabilities follow the documented distributions (chi-square and binomial bounds); bad specs
// name the key and value.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/aug_internal.h"
#include "robustcv/error.h"
#include "testutil.h"

#define H 20
#define W 28
#define MAXC 160

static float img[H * W * 3], gimg[H * W];

// A structured 8-bit image: gradients and stripes in 30..210 with some noise, so autocontrast and
// equalize have work and the warps move visible content.
static void make_images(void) {
    unsigned s = 12345;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
            for (int k = 0; k < 3; k++) {
                s = s * 1103515245u + 12345u;
                int v = 30 + (i * 5 + j * 3 + k * 40) % 150 + (int)((s >> 16) % 31);
                if ((j / 4 + k) % 3 == 0) v = 60 + k * 20;
                img[(i * W + j) * 3 + k] = (float)v / 255.0f;
            }
    for (int p = 0; p < H * W; p++) gimg[p] = img[3 * p + 1];
}

static void write_f32(const char *dir, const char *name, const float *x, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    fwrite(x, sizeof(float), n, f);
    fclose(f);
}

typedef struct {
    char id[32], line[512];
    float *ours;
    size_t n;
    int warp; // nearest-sampling ties allowed on 1% of values
} tcase;
static tcase cases[MAXC];
static int n_cases;

// ops/mags: the sequence applied; c: 3 (img) or 1 (gimg); fill: -1 for torchvision's None, else 0..1.
static void add_case(int c, float fill, int n_ops, const int *ops, const float *mags, const float *ours) {
    tcase *t = &cases[n_cases];
    char id[32];
    snprintf(id, sizeof id, "p%02d", n_cases);
    memcpy(t->id, id, sizeof id);
    int len = snprintf(t->line, sizeof t->line, "%s %s %d %d %d ", id, c == 3 ? "img.f32" : "gimg.f32", H, W, c);
    if (fill < 0) len += snprintf(t->line + len, sizeof t->line - len, "none");
    else len += snprintf(t->line + len, sizeof t->line - len, "%.9g", 255.0 * fill);
    t->warp = 0;
    for (int i = 0; i < n_ops; i++) {
        len += snprintf(t->line + len, sizeof t->line - len, " %s %.9g", aug_policy_op_names[ops[i]], mags[i]);
        t->warp |= ops[i] >= POL_SHEAR_X && ops[i] <= POL_ROTATE;
    }
    snprintf(t->line + len, sizeof t->line - len, "\n");
    t->n = (size_t)H * W * c;
    t->ours = malloc(t->n * sizeof(float));
    memcpy(t->ours, ours, t->n * sizeof(float));
    n_cases++;
}

// One op on a copy of the image through aug_policy_op (the 8-bit domain), back to [0, 1].
static void one_op(int op, float mag, int c, float fill) {
    size_t n = (size_t)H * W * c;
    float u[H * W * 3], tmp[H * W * 3], y[H * W * 3];
    const float *src = c == 3 ? img : gimg;
    for (size_t i = 0; i < n; i++) u[i] = nearbyintf(src[i] * 255.0f);
    double fwd[6];
    aug_policy_op(op, mag, u, H, W, c, fill < 0 ? 0 : 255.0f * fill, tmp, fwd);
    for (size_t i = 0; i < n; i++) y[i] = u[i] / 255.0f;
    add_case(c, fill, 1, &op, &mag, y);
}

static void op_cases(void) {
    // Magnitudes from the spaces' ranges, both signs where signed, the extremes included.
    struct {
        int op;
        float mags[4];
        int nm;
    } t[] = {
        {POL_IDENTITY, {0}, 1},
        {POL_SHEAR_X, {0.3f, -0.17f, 0.99f, -0.5f}, 4},
        {POL_SHEAR_Y, {0.3f, -0.23f, -0.99f, 0.05f}, 4},
        {POL_TRANSLATE_X, {7.6f, -12.7f, 32, -3}, 4},
        {POL_TRANSLATE_Y, {5.9f, -9.06f, 14, -32}, 4},
        {POL_ROTATE, {30, -17.5f, 135, -90}, 4},
        {POL_BRIGHTNESS, {0.9f, -0.63f, 0.33f, -0.99f}, 4},
        {POL_COLOR, {0.9f, -0.63f, 0.27f, -0.99f}, 4},
        {POL_CONTRAST, {0.9f, -0.63f, 0.45f, -0.99f}, 4},
        {POL_SHARPNESS, {0.9f, -0.63f, 0.99f, -0.99f}, 4},
        {POL_POSTERIZE, {8, 6, 4, 2}, 4},
        {POL_SOLARIZE, {255, 246.5f, 128, 0}, 4},
        {POL_AUTOCONTRAST, {0}, 1},
        {POL_EQUALIZE, {0}, 1},
        {POL_INVERT, {0}, 1},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        for (int m = 0; m < t[k].nm; m++) one_op(t[k].op, t[k].mags[m], 3, -1);
    // Gray images: each op once (color is the identity there).
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) one_op(t[k].op, t[k].mags[0], 1, -1);
    // A fill (0.5 -> 127.5, which torchvision's rounding makes 128) for the warps.
    one_op(POL_ROTATE, 40, 3, 0.5f);
    one_op(POL_SHEAR_X, -0.4f, 3, 0.3f);
    one_op(POL_TRANSLATE_Y, 9, 1, 1.0f);
}

// Whole draws through the pipeline: the same rng copy gives the draw (aug_policy_sample) and the
// pipeline's result (rcv_augment_apply), which must equal the oracle's ops applied in turn.
static void pipeline_cases(void) {
    const char *specs[] = {"autoaugment", "autoaugment:policy=cifar10", "autoaugment:policy=svhn:fill=0.4",
                           "randaugment", "randaugment:num_ops=3:magnitude=30:fill=1", "trivialaugment",
                           "trivialaugment:num_magnitude_bins=11"};
    aug_policy pols[] = {{POLICY_AUTO, POLICY_IMAGENET, 0, 0, 10, 0},
                         {POLICY_AUTO, POLICY_CIFAR10, 0, 0, 10, 0},
                         {POLICY_AUTO, POLICY_SVHN, 0, 0, 10, 0.4f},
                         {POLICY_RAND, 0, 2, 9, 31, 0},
                         {POLICY_RAND, 0, 3, 30, 31, 1},
                         {POLICY_TRIVIAL, 0, 0, 0, 31, 0},
                         {POLICY_TRIVIAL, 0, 0, 0, 11, 0}};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        rcv_augment *a;
        int rc = rcv_augment_parse(&a, specs[s]);
        CHECK(rc == 0, "parse '%s': %s", specs[s], rcv_error());
        if (rc) continue;
        for (int draw = 0, added = 0; draw < 40 && added < 3; draw++) {
            for (int c = 3; c >= 1; c -= 2) {
                rcv_rng r0;
                rcv_rng_init(&r0, 1000 + 7 * s + draw);
                rcv_rng r1 = r0;
                aug_policy_draw d;
                aug_policy_sample(&pols[s], H, W, &r0, &d);
                int ops[POL_MAX_OPS], n = 0;
                float mags[POL_MAX_OPS];
                for (int i = 0; i < d.n; i++)
                    if (d.apply[i]) ops[n] = d.op[i], mags[n++] = d.mag[i];
                if (n == 0 || (c == 1 && draw % 3)) continue; // keep the cases that do something
                float x[H * W * 3];
                memcpy(x, c == 3 ? img : gimg, sizeof(float) * H * W * c);
                rcv_augment_apply(a, &r1, x, H, W, c, NULL, 0);
                add_case(c, pols[s].fill == 0 ? -1 : pols[s].fill, n, ops, mags, x);
                added += c == 3;
            }
        }
        rcv_augment_free(a);
    }
}

static void check_oracle(void) {
    const char *dir = test_tmpdir("policy");
    write_f32(dir, "img.f32", img, H * W * 3);
    write_f32(dir, "gimg.f32", gimg, H * W);
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n_cases; i++) fputs(cases[i].line, f);
    fputs("space 10 20 28\nspace 31 20 28\nspace 11 224 160\nspace 17 28 28\n", f);
    fclose(f);
    int rc = test_sh("/usr/bin/python3 tests/oracle/policy_ref.py run %s", dir);
    CHECK(rc == 0, "policy_ref.py failed (%d)", rc);
    if (rc) return;
    int exact = 0, warped = 0;
    for (int i = 0; i < n_cases; i++) {
        tcase *t = &cases[i];
        float *ref = malloc(t->n * sizeof(float));
        char p[1100];
        snprintf(p, sizeof p, "%.1000s/%.31s.f32", dir, t->id);
        FILE *g = fopen(p, "rb");
        size_t got = g ? fread(ref, sizeof(float), t->n, g) : 0;
        if (g) fclose(g);
        CHECK(got == t->n, "%s: no oracle output", t->id);
        size_t bad = 0;
        for (size_t k = 0; k < got; k++) bad += t->ours[k] != ref[k];
        // Exact for the 8-bit ops; the warps may differ on nearest-sampling ties (as test_augment).
        double allowed = t->warp ? 0.01 * t->n : 0;
        CHECK(got == t->n && bad <= allowed, "%s: %zu of %zu values differ (allowed %.0f): %.*s", t->id, bad, t->n,
              allowed, (int)strlen(t->line) - 1, t->line);
        if (bad == 0) exact++;
        else warped++;
        free(ref);
        free(t->ours);
    }
    printf("  %d op/draw cases: %d bit-exact, %d within the 1%% nearest-tie allowance\n", n_cases, exact, warped);

    // Magnitude tables and AutoAugment's policies.
    snprintf(path, sizeof path, "%s/tables.txt", dir);
    f = fopen(path, "r");
    CHECK(f != NULL, "no tables.txt");
    if (!f) return;
    char line[8192];
    int n_space = 0, n_space_ok = 0, n_pol = 0, n_pol_ok = 0;
    double worst = 0;
    const char *pol_names[] = {"imagenet", "cifar10", "svhn"};
    while (fgets(line, sizeof line, f)) {
        char kind[32], opname[32];
        int bins, h, w, sgn, off;
        if (!strncmp(line, "policy ", 7)) {
            char pname[16];
            int i, bin;
            float p;
            if (sscanf(line, "policy %15s %d %31s %f %d", pname, &i, opname, &p, &bin) != 5) continue;
            int pol = !strcmp(pname, "imagenet") ? 0 : !strcmp(pname, "cifar10") ? 1 : 2;
            const aug_policy_step *st = aug_autoaugment_steps(pol);
            static int slot[3];
            const aug_policy_step *s = &st[slot[pol]++];
            n_pol++;
            int ok = !strcmp(aug_policy_op_names[s->op], opname) && s->p == p && s->bin == bin && i == (slot[pol] - 1) / 2;
            n_pol_ok += ok;
            if (!ok) fprintf(stderr, "  policy %s step %d: ours %s %g %d, torchvision %s %g %d\n", pol_names[pol],
                             slot[pol] - 1, aug_policy_op_names[s->op], s->p, s->bin, opname, p, bin);
            continue;
        }
        if (sscanf(line, "%31s %d %d %d %31s %d%n", kind, &bins, &h, &w, opname, &sgn, &off) != 6) continue;
        int k = !strcmp(kind, "autoaugment") ? POLICY_AUTO : !strcmp(kind, "randaugment") ? POLICY_RAND : POLICY_TRIVIAL;
        int op;
        for (op = 0; op < POL_N_OPS; op++)
            if (!strcmp(aug_policy_op_names[op], opname)) break;
        float mags[256], ref[256];
        int nref = 0, is_signed;
        for (char *q = line + off; nref < 256;) {
            char *end;
            double v = strtod(q, &end);
            if (end == q) break;
            ref[nref++] = (float)v;
            q = end;
        }
        int nm = op < POL_N_OPS ? aug_policy_magnitudes(k, op, bins, h, w, mags, &is_signed) : -1;
        int ok = nm >= 0 && is_signed == sgn && (nm == 0 ? nref == 1 && mags[0] == 0 : nm == nref);
        // torch.linspace's second half differs from start + step i by an ulp: compare within 2 ulps.
        for (int i = 0; ok && nm > 0 && i < nm; i++) {
            double e = fabs((double)mags[i] - ref[i]);
            ok = e <= 2.5e-7 * fmax(1.0, fabs(ref[i]));
            if (e > worst) worst = e;
        }
        n_space++;
        n_space_ok += ok;
        if (!ok) fprintf(stderr, "  space %s bins %d %dx%d op %s: mismatch (%d values, ours %d)\n", kind, bins, h, w,
                         opname, nref, nm);
    }
    fclose(f);
    // The ops of each space are torchvision's: count them (AutoAugment has no Identity, the others no Invert).
    CHECK(n_space == 4 * (14 + 14 + 14) && n_space_ok == n_space, "augmentation spaces: %d of %d equal", n_space_ok,
          n_space);
    CHECK(n_pol == 150 && n_pol_ok == n_pol, "AutoAugment policies: %d of %d steps equal", n_pol_ok, n_pol);
    printf("  augmentation spaces %d/%d equal (max |magnitude diff| %.2e), AutoAugment steps %d/%d equal\n",
           n_space_ok, n_space, worst, n_pol_ok, n_pol);
}

// ---- distributions

// Pearson's chi-square of counts against equal expected frequencies.
static double chi2_uniform(const long *cnt, int k) {
    long n = 0;
    for (int i = 0; i < k; i++) n += cnt[i];
    double e = (double)n / k, s = 0;
    for (int i = 0; i < k; i++) s += (cnt[i] - e) * (cnt[i] - e) / e;
    return s;
}

// |k - n p| within 5 binomial standard deviations (+1 for p near 0 or 1).
static int binom_ok(long k, long n, double p) { return fabs(k - n * p) <= 5 * sqrt(n * p * (1 - p)) + 1; }

static void check_distributions(void) {
    // Critical values of chi-square at 1 - 1e-4 (scipy.stats.chi2.ppf): df 13, 24, 30.
    const double crit13 = 40.87, crit24 = 58.61, crit30 = 67.63;
    rcv_rng r;
    rcv_rng_init(&r, 99);
    float mags[256];
    int sgn;
    // RandAugment (2 ops, magnitude 9 of 31): op uniform over the 14, magnitude +-mags[9], sign 50/50.
    {
        aug_policy p = {POLICY_RAND, 0, 2, 9, 31, 0};
        long cnt[14] = {0}, neg = 0, nsigned = 0;
        int mag_ok = 1, N = 20000;
        for (int t = 0; t < N; t++) {
            aug_policy_draw d;
            aug_policy_sample(&p, H, W, &r, &d);
            mag_ok &= d.n == 2;
            for (int i = 0; i < d.n; i++) {
                cnt[d.op[i]]++;
                int nm = aug_policy_magnitudes(POLICY_RAND, d.op[i], 31, H, W, mags, &sgn);
                float want = nm > 0 ? mags[9] : 0;
                mag_ok &= d.apply[i] && fabsf(d.mag[i]) == want && (d.neg[i] ? d.mag[i] <= 0 : d.mag[i] >= 0);
                if (sgn) nsigned++, neg += d.neg[i];
                else mag_ok &= !d.neg[i];
            }
        }
        double x2 = chi2_uniform(cnt, 14);
        CHECK(x2 < crit13, "randaugment op choice: chi-square %.1f >= %.1f (df 13)", x2, crit13);
        CHECK(mag_ok, "randaugment: a magnitude is not +-magnitudes[9] of its op");
        CHECK(binom_ok(neg, nsigned, 0.5), "randaugment sign: %ld negative of %ld", neg, nsigned);
        printf("  randaugment: op chi-square %.1f (df 13, crit %.1f), negative %ld/%ld\n", x2, crit13, neg, nsigned);
    }
    // TrivialAugmentWide (31 bins): op uniform over 14; bin uniform over 31 for ops with magnitudes.
    {
        aug_policy p = {POLICY_TRIVIAL, 0, 0, 0, 31, 0};
        long cnt[14] = {0}, bins[31] = {0}, neg = 0, nsigned = 0;
        int ok = 1, N = 40000;
        for (int t = 0; t < N; t++) {
            aug_policy_draw d;
            aug_policy_sample(&p, H, W, &r, &d);
            ok &= d.n == 1;
            cnt[d.op[0]]++;
            int nm = aug_policy_magnitudes(POLICY_TRIVIAL, d.op[0], 31, H, W, mags, &sgn);
            if (nm > 0) {
                ok &= d.bin[0] >= 0 && d.bin[0] < 31 && fabsf(d.mag[0]) == mags[d.bin[0]];
                if (d.bin[0] >= 0 && d.bin[0] < 31) bins[d.bin[0]]++;
            } else {
                ok &= d.bin[0] == -1 && d.mag[0] == 0;
            }
            if (sgn) nsigned++, neg += d.neg[0];
        }
        double x2 = chi2_uniform(cnt, 14), xb = chi2_uniform(bins, 31);
        CHECK(x2 < crit13, "trivialaugment op choice: chi-square %.1f >= %.1f (df 13)", x2, crit13);
        CHECK(xb < crit30, "trivialaugment bin: chi-square %.1f >= %.1f (df 30)", xb, crit30);
        CHECK(ok, "trivialaugment: a magnitude is not its bin's");
        CHECK(binom_ok(neg, nsigned, 0.5), "trivialaugment sign: %ld negative of %ld", neg, nsigned);
        printf("  trivialaugment: op chi-square %.1f (df 13), bin chi-square %.1f (df 30, crit %.1f), negative %ld/%ld\n",
               x2, xb, crit30, neg, nsigned);
    }
    // AutoAugment (each policy): sub-policy uniform over 25; each step applied with its probability.
    for (int pol = 0; pol < 3; pol++) {
        aug_policy p = {POLICY_AUTO, pol, 0, 0, 10, 0};
        const aug_policy_step *st = aug_autoaugment_steps(pol);
        long subs[25] = {0}, applied[50] = {0}, neg = 0, nsigned = 0;
        int ok = 1, N = 50000;
        for (int t = 0; t < N; t++) {
            aug_policy_draw d;
            aug_policy_sample(&p, H, W, &r, &d);
            subs[d.sub]++;
            for (int i = 0; i < 2; i++) {
                const aug_policy_step *s = &st[2 * d.sub + i];
                applied[2 * d.sub + i] += d.apply[i];
                ok &= d.op[i] == s->op && d.bin[i] == s->bin;
                int nm = aug_policy_magnitudes(POLICY_AUTO, s->op, 10, H, W, mags, &sgn);
                ok &= fabsf(d.mag[i]) == (nm > 0 && s->bin >= 0 ? mags[s->bin] : 0);
                if (sgn) nsigned++, neg += d.neg[i];
            }
        }
        double x2 = chi2_uniform(subs, 25);
        int p_ok = 1;
        for (int k = 0; k < 50; k++) {
            int b = binom_ok(applied[k], subs[k / 2], st[k].p);
            if (!b) fprintf(stderr, "  policy %d step %d: applied %ld of %ld, p %g\n", pol, k, applied[k], subs[k / 2],
                            st[k].p);
            p_ok &= b;
        }
        CHECK(x2 < crit24, "autoaugment policy %d sub-policy choice: chi-square %.1f >= %.1f (df 24)", pol, x2, crit24);
        CHECK(p_ok, "autoaugment policy %d: a step's application frequency is off its probability", pol);
        CHECK(ok, "autoaugment policy %d: a drawn op or magnitude is not the policy's", pol);
        CHECK(binom_ok(neg, nsigned, 0.5), "autoaugment sign: %ld negative of %ld", neg, nsigned);
        printf("  autoaugment %d: sub-policy chi-square %.1f (df 24, crit %.1f), steps' frequencies within 5 sd, "
               "negative %ld/%ld\n", pol, x2, crit24, neg, nsigned);
    }
}

// Boxes follow the content through the geometric ops (a bright rectangle's pixel bounding box),
// within 1.6 px as test_augment allows nearest-sampled warps.
static void check_boxes(void) {
    const int n = 32;
    struct {
        int op;
        float mag;
    } t[] = {{POL_SHEAR_X, 0.3f}, {POL_SHEAR_X, -0.5f}, {POL_SHEAR_Y, 0.25f}, {POL_TRANSLATE_X, -7.9f},
             {POL_TRANSLATE_Y, 5}, {POL_ROTATE, 30}, {POL_ROTATE, -12}, {POL_BRIGHTNESS, 0.5f}};
    double worst = 0;
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        float x[32 * 32] = {0}, box[4] = {9, 11, 21, 19};
        for (int i = 11; i < 19; i++)
            for (int j = 9; j < 21; j++) x[i * n + j] = 1;
        aug_policy_draw d = {.n = 1, .op = {t[k].op}, .apply = {1}, .mag = {t[k].mag}};
        aug_policy_run(&d, 0, x, n, n, 1, box, 1);
        int x0 = n, y0 = n, x1 = -1, y1 = -1;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (x[i * n + j] > 0.25f) {
                    x0 = j < x0 ? j : x0, x1 = j > x1 ? j : x1;
                    y0 = i < y0 ? i : y0, y1 = i > y1 ? i : y1;
                }
        double e = fmax(fmax(fabs(box[0] - x0), fabs(box[1] - y0)), fmax(fabs(box[2] - (x1 + 1)), fabs(box[3] - (y1 + 1))));
        CHECK(x1 >= 0 && e <= 1.6, "boxes under %s %g: off by %g px from the content", aug_policy_op_names[t[k].op],
              t[k].mag, e);
        worst = fmax(worst, e);
    }
    printf("  boxes through the geometric ops: worst %.2f px\n", worst);
}

static void check_specs(void) {
    const char *bad[] = {"randaugment:magnitude=31", "randaugment:num_magnitude_bins=1", "randaugment:num_ops=2.5",
                         "trivialaugment:num_magnitude_bins=300", "autoaugment:policy=mnist", "autoaugment:fill=2",
                         "randaugment:n=2"};
    const char *want[] = {"magnitude=31", "num_magnitude_bins='1'", "num_ops=2.5", "num_magnitude_bins='300'", "mnist",
                          "fill='2'", "'n'"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rcv_augment *a = NULL;
        int rc = rcv_augment_parse(&a, bad[i]);
        CHECK(rc != 0 && strstr(rcv_error(), want[i]), "'%s' accepted or message '%s' lacks '%s'", bad[i],
              rc ? rcv_error() : "", want[i]);
        rcv_augment_free(a);
    }
    const char *help = rcv_augment_help();
    CHECK(strstr(help, "autoaugment") && strstr(help, "randaugment") && strstr(help, "trivialaugment") &&
              strstr(help, "num_magnitude_bins"),
          "--augment help lacks the policies");
}

int main(void) {
    make_images();
    op_cases();
    pipeline_cases();
    check_oracle();
    check_distributions();
    check_boxes();
    check_specs();
    return test_done();
}
