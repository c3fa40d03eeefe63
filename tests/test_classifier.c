// The classifier under attack (attack.h, src/robust/classifier.c) and the attack losses
// (src/robust/margin.c) against independent references:
//   - CE, DLR, targeted DLR and margin values against the published formulas on logits sorted
//     by qsort, and their logit gradients against central differences in double;
//   - an ensemble's logits equal log(mean softmax) of its members' own logits;
//   - the input gradient of a loss on the ensemble's logits against the members' own input
//     gradients seeded with dL/dz_m from central differences of log(mean softmax);
//   - a randomized classifier's logits are those of x plus the same Gaussian draw;
//   - PGD through a one-model classifier equals rcv_attack_pgd bit for bit.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/attack.h"
#include "robustcv/error.h"
#include "testutil.h"

#define N 3
#define H 8
#define W 8
#define C 1
#define K 10
#define PER (H * W * C)

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

// The formulas as published, on a sorted copy.
static void formulas(const float *z, int k, int y, int t, double *ce, double *dlr, double *dlrt, double *margin) {
    double s[64], mx = -INFINITY, se = 0, other = -INFINITY;
    for (int j = 0; j < k; j++) s[j] = z[j], mx = fmax(mx, z[j]);
    qsort(s, (size_t)k, sizeof(double), cmp_desc);
    for (int j = 0; j < k; j++) se += exp(z[j] - mx);
    for (int j = 0; j < k; j++)
        if (j != y) other = fmax(other, z[j]);
    *ce = log(se) + mx - z[y];
    *dlr = -(z[y] - other) / (s[0] - s[2] + 1e-12);
    *dlrt = -(z[y] - z[t]) / (s[0] - 0.5 * (s[2] + s[3]) + 1e-12);
    *margin = z[y] - other;
}

typedef double (*loss_fn)(const float *z, int k, int y, int t, float *dz);
static double f_ce(const float *z, int k, int y, int t, float *dz) { return rcv_loss_ce(z, k, y, dz); }
static double f_dlr(const float *z, int k, int y, int t, float *dz) { return rcv_loss_dlr(z, k, y, dz); }
static double f_dlrt(const float *z, int k, int y, int t, float *dz) { return rcv_loss_dlr_targeted(z, k, y, t, dz); }
static double f_margin(const float *z, int k, int y, int t, float *dz) { return rcv_loss_margin(z, k, y, dz); }

static void test_losses(void) {
    const char *names[4] = {"ce", "dlr", "dlr_t", "margin"};
    loss_fn fns[4] = {f_ce, f_dlr, f_dlrt, f_margin};
    double worst_v = 0, worst_g[4] = {0};
    for (int trial = 0; trial < 200; trial++) {
        float z[K], dz[K];
        fill_uniform(z, K, 100 + trial, -4, 4);
        int y = trial % K, t = (trial * 7 + 3) % K;
        if (t == y) t = (t + 1) % K;
        if (trial % 3 == 0) z[y] = 5; // y on top: DLR takes the runner-up
        float gap = INFINITY; // the sort must not change within the difference step
        for (int a = 0; a < K; a++)
            for (int b = 0; b < a; b++) gap = fminf(gap, fabsf(z[a] - z[b]));
        if (gap < 1e-2f) continue;
        double ref[4];
        formulas(z, K, y, t, &ref[0], &ref[1], &ref[2], &ref[3]);
        for (int f = 0; f < 4; f++) {
            double v = fns[f](z, K, y, t, dz);
            worst_v = fmax(worst_v, fabs(v - ref[f]) / fmax(1, fabs(ref[f])));
            // central differences in double through the formulas (h small against the logit gaps)
            for (int j = 0; j < K; j++) {
                float zp[K], zm[K];
                memcpy(zp, z, sizeof z), memcpy(zm, z, sizeof z);
                const float h = 1e-3f;
                zp[j] += h, zm[j] -= h;
                double a[4], b[4];
                formulas(zp, K, y, t, &a[0], &a[1], &a[2], &a[3]);
                formulas(zm, K, y, t, &b[0], &b[1], &b[2], &b[3]);
                double fd = (a[f] - b[f]) / ((double)zp[j] - zm[j]);
                worst_g[f] = fmax(worst_g[f], fabs(fd - dz[j]) / fmax(1, fabs(fd)));
            }
        }
    }
    printf("losses: values max rel err %.2e; gradients vs central differences:", worst_v);
    for (int f = 0; f < 4; f++) printf(" %s %.2e", names[f], worst_g[f]);
    printf("\n");
    CHECK(worst_v < 1e-6, "loss values %.3e", worst_v);
    for (int f = 0; f < 4; f++) CHECK(worst_g[f] < 2e-3, "%s gradient %.3e", names[f], worst_g[f]);
}

static void build(rcv_model *m, uint64_t seed, rcv_backend be) {
    rcv_model_cfg c;
    rcv_model_cfg_defaults(&c);
    c.in_c = C, c.in_h = H, c.in_w = W, c.n_classes = K, c.seed = seed;
    c.mean[0] = 0.3f, c.std[0] = 0.4f;
    if (rcv_model_build(m, "smallcnn", &c) || rcv_attack_prepare(m, N, be)) {
        fprintf(stderr, "%s\n", rcv_error());
        exit(1);
    }
}

// L = sum_i v_i . z_i (a fixed random direction in logit space).
static float vdir[N * K];
static double lin_loss(void *ctx, int i, const float *z, int k, float *dz) {
    double l = 0;
    for (int j = 0; j < k; j++) l += (double)vdir[i * k + j] * z[j];
    if (dz) memcpy(dz, vdir + i * k, (size_t)k * sizeof(float));
    return l;
}

static void test_ensemble(void) {
    rcv_model a, b;
    build(&a, 1, RCV_BACKEND_REF);
    build(&b, 2, RCV_BACKEND_REF);
    rcv_model *both[2] = {&a, &b}, *one_a = &a, *one_b = &b;
    rcv_classifier fe = {both, 2, 0, NULL}, fa = {&one_a, 1, 0, NULL}, fb = {&one_b, 1, 0, NULL};
    CHECK(rcv_classifier_check(&fe) == 0, "%s", rcv_error());
    float x[N * PER], za[N * K], zb[N * K], ze[N * K], ref[N * K];
    fill_uniform(x, N * PER, 3, 0, 1);
    rcv_classifier_logits(&fa, x, N, za);
    rcv_classifier_logits(&fb, x, N, zb);
    rcv_classifier_logits(&fe, x, N, ze);
    for (int i = 0; i < N; i++) {
        double sa = 0, sb = 0;
        for (int j = 0; j < K; j++) sa += exp(za[i * K + j]), sb += exp(zb[i * K + j]);
        for (int j = 0; j < K; j++) ref[i * K + j] = (float)log(0.5 * (exp(za[i * K + j]) / sa + exp(zb[i * K + j]) / sb));
    }
    double e = max_abs_err(ze, ref, N * K);
    printf("ensemble logits vs log mean softmax: max abs err %.2e\n", e);
    CHECK(e < 1e-5, "ensemble logits %.3e", e);

    // Input gradient: the members' own input gradients (single-model classifiers, whose backward
    // test_attack checks against PyTorch) seeded with dL/dz_m taken by central differences in
    // double of L = v . log(mean_m softmax(z_m)) in logit space (smooth: no kinks there).
    fill_uniform(vdir, N * K, 9, -1, 1);
    float g[N * PER], ga[N * PER], gb[N * PER], sa[N * K], sb[N * K];
    rcv_classifier_grad(&fe, x, N, lin_loss, NULL, NULL, NULL, g);
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < K; j++) {
                double zz[2][K], lv[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    for (int q = 0; q < K; q++) zz[0][q] = za[i * K + q], zz[1][q] = zb[i * K + q];
                    zz[m][j] += sgn ? -1e-5 : 1e-5;
                    double s0 = 0, s1 = 0, l = 0;
                    for (int q = 0; q < K; q++) s0 += exp(zz[0][q]), s1 += exp(zz[1][q]);
                    for (int q = 0; q < K; q++) l += vdir[i * K + q] * log(0.5 * (exp(zz[0][q]) / s0 + exp(zz[1][q]) / s1));
                    lv[sgn] = l;
                }
                (m ? sb : sa)[i * K + j] = (float)((lv[0] - lv[1]) / 2e-5);
            }
    memcpy(vdir, sa, sizeof sa);
    rcv_classifier_grad(&fa, x, N, lin_loss, NULL, NULL, NULL, ga);
    memcpy(vdir, sb, sizeof sb);
    rcv_classifier_grad(&fb, x, N, lin_loss, NULL, NULL, NULL, gb);
    for (int e2 = 0; e2 < N * PER; e2++) ga[e2] += gb[e2];
    double worst = max_rel_err(g, ga, N * PER, 1e-6);
    printf("ensemble input gradient vs the members' gradients seeded by central differences: max rel err %.2e\n", worst);
    CHECK(worst < 1e-4, "ensemble gradient %.3e", worst);

    // randomized: logits of x + the same N(0, sigma^2) draw
    rcv_rng r1, r2;
    rcv_rng_init(&r1, 77), rcv_rng_init(&r2, 77);
    rcv_classifier fn = {&one_a, 1, 0.3f, &r1};
    float zn[N * K], xn[N * PER], zr[N * K];
    rcv_classifier_logits(&fn, x, N, zn);
    rcv_rng_fill_normal(&r2, xn, N * PER, 0, 0.3f);
    for (int e2 = 0; e2 < N * PER; e2++) xn[e2] += x[e2];
    rcv_classifier_logits(&fa, xn, N, zr);
    CHECK(max_abs_err(zn, zr, N * K) == 0, "noisy logits differ by %.3e", max_abs_err(zn, zr, N * K));
    fn.noise_sigma = -1;
    CHECK(rcv_classifier_check(&fn) != 0 && strstr(rcv_error(), "sigma -1"), "sigma -1 accepted: %s", rcv_error());
    // PGD through a one-model classifier takes the steps rcv_attack_pgd takes (test_attack pins
    // those against torchattacks), with restarts and targeted too.
    rcv_pgd_cfg pc;
    rcv_pgd_defaults(&pc, RCV_NORM_LINF);
    pc.eps = 0.1f, pc.alpha = 0.03f, pc.steps = 4, pc.restarts = 2;
    int32_t yl[N] = {1, 5, 7};
    float p1[N * PER], p2[N * PER];
    for (int targeted = 0; targeted < 2; targeted++) {
        pc.targeted = targeted;
        rcv_rng_init(&r1, 5), rcv_rng_init(&r2, 5);
        CHECK(rcv_attack_pgd(&one_a, 1, x, yl, N, &pc, &r1, p1) == 0, "%s", rcv_error());
        CHECK(rcv_attack_pgd_classifier(&fa, x, yl, N, &pc, &r2, p2) == 0, "%s", rcv_error());
        CHECK(max_abs_err(p1, p2, N * PER) == 0, "pgd via the classifier differs by %.3e (targeted %d)",
              max_abs_err(p1, p2, N * PER), targeted);
    }
    rcv_model_free(&a);
    rcv_model_free(&b);
}

int main(void) {
    test_losses();
    test_ensemble();
    return test_done();
}
