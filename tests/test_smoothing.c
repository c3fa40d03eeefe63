// Randomized smoothing (smoothing.h) against independent references:
//   - the statistics vs scipy (tests/oracle/smoothing_ref.py): the Clopper-Pearson lower bound
//     (= statsmodels' proportion_confint(nA, n, 2 alpha, "beta")[0]) over a grid with nA = 0, nA = n,
//     n = 1, ..., 100000; the normal quantile; the two-sided binomial test at 1/2; the incomplete
//     beta; all within 1e-9 relative;
//   - the sampling loop vs a recount in double precision of the same noise stream on a linear model
//     (chunks of the planned batch, a short last chunk, noise not clamped);
//   - CERTIFY and PREDICT on a 2-class linear model f(x) = argmax(W x + b), whose smoothed top-class
//     probability is known in closed form, pA = Phi(|w.x + b'| / (sigma ||w||)) with w = w0 - w1,
//     b' = b0 - b1: nA within 5 binomial standard deviations of n pA, the radius between the
//     certified radii of n pA -/+ 5 sd (and so within that tolerance of sigma Phi^-1 of the lower
//     bound of the expected count) and below the true radius |w.x + b'| / ||w||; abstentions at
//     pA = 1/2; the certified-accuracy helper against its definition.
// (scipy's betainc itself is off by up to ~1e-10 relative at a, b ~ 1e5 - mpmath agrees with ours to
// ~1e-14 where it converges - hence 1e-9, not tighter.)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/init.h"
#include "robustcv/ops.h"
#include "robustcv/smoothing.h"
#include "testutil.h"

// --- the statistics vs scipy ---------------------------------------------------------------------
#define MAXQ 2048
static double ours[MAXQ];
static char kind[MAXQ][16];
static int nq;
static FILE *qf;

static void q_cp(long na, long n, double alpha) {
    fprintf(qf, "cp %ld %ld %.17g\n", na, n, alpha);
    snprintf(kind[nq], 16, "cp");
    ours[nq++] = rcv_cp_lower(na, n, alpha);
}
static void q_ppf(double p) {
    fprintf(qf, "ppf %.17g\n", p);
    snprintf(kind[nq], 16, "ppf");
    ours[nq++] = rcv_norm_ppf(p);
}
static void q_binom(long c1, long n) {
    fprintf(qf, "binom %ld %ld\n", c1, n);
    snprintf(kind[nq], 16, "binom");
    ours[nq++] = rcv_binom_test_half(c1, n);
}
static void q_betainc(double a, double b, double x) {
    fprintf(qf, "betainc %.17g %.17g %.17g\n", a, b, x);
    snprintf(kind[nq], 16, "betainc");
    ours[nq++] = rcv_betainc(a, b, x);
}

static void test_stats(void) {
    const char *dir = test_tmpdir("smoothing");
    char cases[512], refp[512];
    snprintf(cases, sizeof cases, "%s/cases.txt", dir);
    snprintf(refp, sizeof refp, "%s/ref.txt", dir);
    qf = fopen(cases, "w");
    if (!qf) {
        CHECK(0, "cannot write %s", cases);
        return;
    }
    nq = 0;
    const long ns[] = {1, 2, 3, 10, 100, 1000, 10000, 100000};
    const double alphas[] = {0.001, 0.01, 0.05, 0.25};
    for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; a++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            long n = ns[i];
            long nas[] = {0, 1, 2, n / 10, n / 2, n / 2 + 1, (n * 9) / 10, (n * 99) / 100, n - 1, n};
            for (size_t j = 0; j < sizeof nas / sizeof nas[0]; j++)
                if (nas[j] >= 0 && nas[j] <= n && (j == 0 || nas[j] != nas[j - 1])) q_cp(nas[j], n, alphas[a]);
        }
    const double ps[] = {1e-300, 1e-100, 1e-20, 1e-10, 1e-5, 1e-3, 0.02, 0.02425, 0.1, 0.25, 0.3, 0.49, 0.5,
                         0.5 + 1e-9, 0.51, 0.6, 0.75, 0.8, 0.9, 0.97575, 0.99, 0.999, 0.99999, 1 - 1e-10};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) q_ppf(ps[i]);
    // The quantiles certify actually takes: lower bounds for counts of 100000 samples.
    for (long na = 50100; na <= 100000; na += 4990) q_ppf(rcv_cp_lower(na, 100000, 0.001));
    const long bn[] = {1, 2, 3, 10, 11, 100, 101, 1000, 100000};
    for (size_t i = 0; i < sizeof bn / sizeof bn[0]; i++) {
        long n = bn[i];
        long cs[] = {0, 1, n / 2 - 3, n / 2 - 1, n / 2, n / 2 + 1, n / 2 + 2, n / 2 + 20, (n * 6) / 10, n - 1, n};
        for (size_t j = 0; j < sizeof cs / sizeof cs[0]; j++)
            if (cs[j] >= 0 && cs[j] <= n) q_binom(cs[j], n);
    }
    const double bab[][3] = {{0.5, 0.5, 0.3}, {2, 3, 0.4}, {10, 1, 0.9}, {1, 10, 0.05}, {50.5, 70.25, 0.45},
                             {1000, 2000, 0.3}, {99000, 1001, 0.99}, {99000, 1001, 0.988}, {5e4, 5e4, 0.5}, {3, 7, 0.999}};
    for (size_t i = 0; i < sizeof bab / sizeof bab[0]; i++) q_betainc(bab[i][0], bab[i][1], bab[i][2]);
    fclose(qf);
    int rc = test_sh("/usr/bin/python3 tests/oracle/smoothing_ref.py %s %s", cases, refp);
    if (rc == 77 || rc == 127) {
        printf("SKIP scipy oracle: /usr/bin/python3 with scipy is not available\n");
        return;
    }
    CHECK(rc == 0, "tests/oracle/smoothing_ref.py exited %d", rc);
    FILE *f = fopen(refp, "r");
    if (!f) {
        CHECK(0, "no %s", refp);
        return;
    }
    double worst[4] = {0}, v;
    const char *names[4] = {"cp", "ppf", "binom", "betainc"};
    int got = 0;
    for (int i = 0; i < nq && fscanf(f, "%lf", &v) == 1; i++, got++) {
        double e = fabs(ours[i] - v) / fmax(fabs(v), 1e-300);
        if (v == 0 && ours[i] == 0) e = 0;
        if (isinf(v) && ours[i] == v) e = 0;
        int k = 0;
        while (k < 3 && strcmp(kind[i], names[k])) k++;
        if (e > worst[k]) worst[k] = e;
        CHECK(e <= 1e-9, "query %d (%s): ours %.17g, scipy %.17g (rel %.2e)", i, kind[i], ours[i], v, e);
    }
    fclose(f);
    CHECK(got == nq, "oracle answered %d of %d queries", got, nq);
    printf("statistics vs scipy, %d queries: max rel err cp_lower %.2e, norm_ppf %.2e, binom_test %.2e, betainc %.2e\n",
           nq, worst[0], worst[1], worst[2], worst[3]);
}

// --- the linear model -----------------------------------------------------------------------------
#define LH 4
#define LW 4
#define LPER (LH * LW)

static void build_linear(rcv_model *m) {
    memset(m, 0, sizeof *m);
    rcv_model_cfg_defaults(&m->cfg);
    m->cfg.in_c = 1, m->cfg.in_h = LH, m->cfg.in_w = LW, m->cfg.n_classes = 2;
    snprintf(m->name, sizeof m->name, "linear");
    rcv_graph *g = m->g = rcv_graph_new();
    float mean[1] = {0}, sd[1] = {1};
    m->input = rcv_input(g, "input", 1, LH, LW);
    int x = rcv_normalize(g, "normalize", m->input, mean, sd);
    x = rcv_flatten(g, "flatten", x);
    m->logits = rcv_linear(g, "fc", x, 2, 1);
    m->labels = rcv_labels(g, "labels");
    m->loss = rcv_cross_entropy(g, "loss", m->logits, m->labels, 0);
    rcv_rng root;
    rcv_rng_init(&root, 1);
    rcv_init_default(g, &root);
    float *Wt = rcv_param_data(g, rcv_graph_find_param(g, "fc.weight")), *b = rcv_param_data(g, rcv_graph_find_param(g, "fc.bias"));
    fill_uniform(Wt, 2 * LPER, 31, -0.5f, 0.5f);
    b[0] = 0.1f, b[1] = -0.2f;
}

// w = w0 - w1, b' = b0 - b1 (double, from the stored floats).
static void linear_diff(rcv_model *m, double *w, double *bd) {
    rcv_graph *g = m->g;
    const float *Wt = rcv_param_data(g, rcv_graph_find_param(g, "fc.weight"));
    const float *b = rcv_param_data(g, rcv_graph_find_param(g, "fc.bias"));
    for (int e = 0; e < LPER; e++) w[e] = (double)Wt[e] - Wt[LPER + e];
    *bd = (double)b[0] - b[1];
}

static double Phi(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

// The sampling loop vs the same noise stream recounted here in double precision.
static void test_counts(void) {
    rcv_model m;
    build_linear(&m);
    double w[LPER], bd;
    linear_diff(&m, w, &bd);
    rcv_smooth_cfg c;
    rcv_smooth_defaults(&c);
    c.batch = 64;
    CHECK(rcv_smooth_prepare(&m, &c, RCV_BACKEND_CPU) == 0, "%s", rcv_error());
    float x[LPER];
    fill_uniform(x, LPER, 41, 0.0f, 0.1f); // near 0: clamping the noisy copies would change the counts
    const long num = 1000;                 // 15 full chunks of 64 and one of 40
    const float sigma = 0.5f;
    rcv_rng r1, r2;
    rcv_rng_init(&r1, 9);
    r2 = r1;
    long counts[2] = {0, 0};
    rcv_smooth_counts(&m, x, sigma, num, &r1, counts);
    long ref[2] = {0, 0}, ref_clamped[2] = {0, 0}, near = 0;
    float *nz = malloc(64 * LPER * sizeof(float));
    for (long s = 0; s < num; s += 64) {
        int nb = num - s < 64 ? (int)(num - s) : 64;
        rcv_rng_fill_normal(&r2, nz, (size_t)nb * LPER, 0, sigma);
        for (int i = 0; i < nb; i++) {
            double mg = bd, mc = bd;
            for (int e = 0; e < LPER; e++) {
                double v = (double)x[e] + nz[i * LPER + e];
                mg += w[e] * v;
                mc += w[e] * fmin(fmax(v, 0), 1);
            }
            ref[mg >= 0 ? 0 : 1]++; // argmax ties to class 0
            ref_clamped[mc >= 0 ? 0 : 1]++;
            near += fabs(mg) < 1e-5;
        }
    }
    free(nz);
    printf("sampling loop: counts ours (%ld, %ld), double recount (%ld, %ld) [%ld within 1e-5 of the boundary], "
           "clamped copies would give (%ld, %ld)\n",
           counts[0], counts[1], ref[0], ref[1], near, ref_clamped[0], ref_clamped[1]);
    CHECK(counts[0] + counts[1] == num, "counts sum to %ld, expected %ld", counts[0] + counts[1], num);
    CHECK(labs(counts[0] - ref[0]) <= near, "counts %ld vs recount %ld", counts[0], ref[0]);
    CHECK(r1.counter == r2.counter, "noise stream consumed %llu blocks, recount %llu", (unsigned long long)r1.counter,
          (unsigned long long)r2.counter);
    rcv_model_free(&m);
}

static void test_certify_linear(void) {
    rcv_model m;
    build_linear(&m);
    double w[LPER], bd, wn = 0;
    linear_diff(&m, w, &bd);
    for (int e = 0; e < LPER; e++) wn += w[e] * w[e];
    wn = sqrt(wn);
    rcv_smooth_cfg c;
    rcv_smooth_defaults(&c);
    c.sigma = 0.25f;
    c.n = test_quick() ? 20000 : 100000;
    c.batch = 1000;
    // Images at signed true radii (w.x + b') / ||w||: class 0 for > 0, class 1 for < 0, a tie at 0.
    const double radii[] = {0.1, 0.3, 0.6, -0.3, 0.0};
    const int nimg = sizeof radii / sizeof radii[0];
    rcv_rng rng;
    rcv_rng_init(&rng, 3);
    int preds[5];
    double rads[5];
    int32_t labels[5];
    for (int i = 0; i < nimg; i++) {
        float x[LPER];
        fill_uniform(x, LPER, 50 + i, 0.0f, 0.1f);
        double mg = bd;
        for (int e = 0; e < LPER; e++) mg += w[e] * x[e];
        for (int e = 0; e < LPER; e++) x[e] += (float)((radii[i] * wn - mg) * w[e] / (wn * wn)); // move onto the radius
        mg = bd;
        for (int e = 0; e < LPER; e++) mg += w[e] * x[e];
        double R = fabs(mg) / wn, pa = Phi(R / c.sigma);
        int cls = mg >= 0 ? 0 : 1;
        labels[i] = cls;
        rcv_smooth_result r, p;
        CHECK(rcv_smooth_certify(&m, x, &c, &rng, &r) == 0, "%s", rcv_error());
        CHECK(rcv_smooth_predict(&m, x, &c, &rng, &p) == 0, "%s", rcv_error());
        preds[i] = r.pred, rads[i] = r.radius;
        double sd = sqrt(c.n * pa * (1 - pa)), lo = c.n * pa - 5 * sd, hi = c.n * pa + 5 * sd;
        double bound = rcv_cp_lower(r.count, c.n, c.alpha);
        printf("linear R %.4f (pA %.5f): certify class %d nA %ld (expected %.0f +- %.0f) radius %.5f, predict %d (%ld vs "
               "%ld, p %.3g)\n",
               R, pa, r.pred, r.count, c.n * pa, sd, r.radius, p.pred, p.count, p.count2, p.p);
        CHECK(r.p == bound, "pA %.17g, cp_lower(%ld, %d) %.17g", r.p, r.count, c.n, bound);
        if (radii[i] == 0) { // pA = 1/2 (up to rounding): no certificate, and PREDICT abstains (wrongly only with probability alpha)
            CHECK(r.pred == -1 && r.radius == 0, "tie certified as class %d radius %g", r.pred, r.radius);
            CHECK(p.pred == -1, "tie predicted as class %d (p %g)", p.pred, p.p);
            continue;
        }
        double rlo = c.sigma * rcv_norm_ppf(rcv_cp_lower((long)floor(lo), c.n, c.alpha));
        double rhi = c.sigma * rcv_norm_ppf(rcv_cp_lower((long)ceil(fmin(hi, c.n)), c.n, c.alpha));
        double rexp = c.sigma * rcv_norm_ppf(rcv_cp_lower(lrint(c.n * pa), c.n, c.alpha));
        printf("    radius %.5f: sigma Phi^-1(lower bound of the expected count) %.5f, 5-sd band [%.5f, %.5f], true %.5f\n",
               r.radius, rexp, rlo, rhi, R);
        CHECK(r.pred == cls, "certified class %d, expected %d", r.pred, cls);
        CHECK(p.pred == cls, "predicted class %d, expected %d", p.pred, cls);
        CHECK(r.count >= lo && r.count <= hi, "nA %ld outside n pA +- 5 sd [%.0f, %.0f]", r.count, lo, hi);
        CHECK(r.radius >= rlo && r.radius <= rhi, "radius %.6f outside [%.6f, %.6f]", r.radius, rlo, rhi);
        CHECK(fabs(r.radius - c.sigma * rcv_norm_ppf(bound)) < 1e-12, "radius %.17g != sigma Phi^-1(pA)", r.radius);
        CHECK(r.radius < R, "certified radius %.6f above the true radius %.6f", r.radius, R);
    }
    // Certified accuracy at r = mean(correct and radius >= r); abstentions wrong; one wrong label.
    labels[1] = 1 - labels[1];
    const double at[] = {0, 0.05, 0.2, 0.5};
    double acc[4];
    rcv_smooth_certified_accuracy(preds, rads, labels, nimg, at, 4, acc);
    for (int j = 0; j < 4; j++) {
        int ok = 0;
        for (int i = 0; i < nimg; i++) ok += preds[i] != -1 && preds[i] == labels[i] && rads[i] >= at[j];
        CHECK(fabs(acc[j] - (double)ok / nimg) < 1e-15, "certified accuracy at %g: %g vs %g", at[j], acc[j],
              (double)ok / nimg);
    }
    printf("certified accuracy at 0, 0.05, 0.2, 0.5: %.2f %.2f %.2f %.2f\n", acc[0], acc[1], acc[2], acc[3]);

    // Bad configurations are refused by name.
    rcv_smooth_cfg bad = c;
    bad.n0 = c.n + 1;
    CHECK(rcv_smooth_check(&bad) == -1 && strstr(rcv_error(), "n0"), "n0 > n accepted");
    bad = c, bad.sigma = 0;
    CHECK(rcv_smooth_check(&bad) == -1 && strstr(rcv_error(), "sigma 0"), "sigma 0 accepted");
    bad = c, bad.alpha = 1;
    CHECK(rcv_smooth_check(&bad) == -1 && strstr(rcv_error(), "alpha 1"), "alpha 1 accepted");
    rcv_model_free(&m);
}

int main(void) {
    test_stats();
    test_counts();
    test_certify_linear();
    return test_done();
}
