// FAB-T and Square (src/robust/fab.c, square.c) against independent references:
//   - FAB's L-inf and L2 projections onto a hyperplane within the box [0, 1]^n vs the closed form
//     (unconstrained: d = -c w / ||w||_2^2 and d = -c sign(w) / ||w||_1) and vs the scalar problem
//     solved by bisection in double (d = clip(-lambda sign(w), -t, 1 - t) and clip(-alpha w, ...)),
//     and the box corner when the hyperplane is out of reach;
//   - Square's p schedule at the listed iterations (p_init halved after 10, 50, ..., 8000; rescaled);
//   - bad arguments give -1 and a message naming the value;
//   - on a smallcnn trained here for one epoch on 6000 Fashion-MNIST images and the first N test
//     images (RCV_FABSQ_N, default 100): every output within the eps ball and in [0, 1], `robust`
//     equal to a re-prediction, unbroken images returned unchanged; and the robust accuracy of
//     FAB-T and Square, L-inf and L2, within 1 point (at least 2 images) of torchattacks' on the
//     same weights (tests/oracle/aa_ref.py; skipped when torch is missing).
// RCV_FABSQ_CKPT=path reuses a checkpoint instead of training; RCV_FABSQ_STEPS / RCV_FABSQ_QUERIES
// set FAB's iterations (default 20) and Square's queries (default 500) for both sides (the
// references' 100 and 5000 take minutes: run them by hand);
// RCV_FABSQ_ONLY=fab-linf,square-l2,... runs only those comparisons.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robust/robust.h"
#include "robustcv/attack.h"
#include "robustcv/data.h"
#include "robustcv/error.h"
#include "robustcv/train.h"
#include "testutil.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// --- projections ---------------------------------------------------------------------------------

// The reference step for orientation sg and scale u: L-inf clip(-u sg sign(w), -t, 1 - t),
// L2 clip(-u sg w, -t, 1 - t).
static double step_i(int l2, double t, double w, double sg, double u) {
    double v = l2 ? -u * sg * w : -u * sg * (w > 0 ? 1 : w < 0 ? -1 : 0);
    return v < -t ? -t : v > 1 - t ? 1 - t : v;
}

// Solves <w, t + d(u)> = b for the scale u by bisection (the change is monotone in u).
static void proj_bisect(int l2, const float *t, const float *w, double b, int n, double *d) {
    double c = -b;
    for (int i = 0; i < n; i++) c += (double)w[i] * t[i];
    double sg = c >= 0 ? 1 : -1, lo = 0, hi = 1;
    if (l2) {
        double mn = 1e300;
        for (int i = 0; i < n; i++)
            if (w[i] != 0) mn = fmin(mn, fabs(w[i]));
        hi = 2 / mn;
    }
    for (int it = 0; it < 300; it++) {
        double u = 0.5 * (lo + hi), ch = 0;
        for (int i = 0; i < n; i++) ch += w[i] * step_i(l2, t[i], w[i], sg, u);
        if (sg * (c + ch) > 0) lo = u; // not there yet
        else hi = u;
    }
    for (int i = 0; i < n; i++) d[i] = step_i(l2, t[i], w[i], sg, hi);
}

static void test_projections(void) {
    enum { n = 64 };
    float t[n], w[n], d[n];
    double dr[n];
    void *S = rcv_fab_scratch_new(n);
    // Unconstrained: t in the middle of the box, a small change needed.
    fill_uniform(t, n, 1, 0.4f, 0.6f);
    fill_uniform(w, n, 2, -1, 1);
    double wt = 0, w1 = 0, w2 = 0;
    for (int i = 0; i < n; i++) wt += (double)w[i] * t[i], w1 += fabs(w[i]), w2 += (double)w[i] * w[i];
    float b = (float)(wt - 0.3);
    double c = wt - b, e_inf = 0, e_2 = 0;
    rcv_fab_project_linf(t, w, b, n, d, S);
    for (int i = 0; i < n; i++) e_inf = fmax(e_inf, fabs(d[i] - (-c * (w[i] > 0 ? 1 : -1) / w1)));
    rcv_fab_project_l2(t, w, b, n, d, S);
    for (int i = 0; i < n; i++) e_2 = fmax(e_2, fabs(d[i] - (-c * w[i] / w2)));
    printf("projection, box inactive: max |d - closed form| linf %.2e, l2 %.2e\n", e_inf, e_2);
    CHECK(e_inf < 1e-6 && e_2 < 1e-6, "linf %.3e, l2 %.3e", e_inf, e_2);

    // Box active: t anywhere in [0, 1] (some at the bounds), both orientations, several targets.
    for (int cs = 0; cs < 12; cs++) {
        int l2 = cs & 1;
        fill_uniform(t, n, 10 + cs, -0.3f, 1.3f);
        for (int i = 0; i < n; i++) t[i] = t[i] < 0 ? 0 : t[i] > 1 ? 1 : t[i];
        fill_uniform(w, n, 40 + cs, -1, 1);
        w[3] = 0; // a pixel the gradient does not see stays put
        wt = 0;
        double lo = 0, hi = 0; // the reachable range of <w, x> over the box
        for (int i = 0; i < n; i++) wt += (double)w[i] * t[i], lo += fmin(w[i], 0), hi += fmax(w[i], 0);
        double frac = (cs / 2) * 0.18 + 0.05; // from near t's value to near the box's limit
        double tgt = cs % 4 < 2 ? wt - frac * (wt - lo) : wt + frac * (hi - wt);
        (l2 ? rcv_fab_project_l2 : rcv_fab_project_linf)(t, w, (float)tgt, n, d, S);
        proj_bisect(l2, t, w, tgt, n, dr);
        double err = 0, on = 0, nd = 0, inbox = 1;
        for (int i = 0; i < n; i++) {
            err = fmax(err, fabs(d[i] - dr[i]));
            on += (double)w[i] * (t[i] + d[i]);
            nd = l2 ? nd + (double)d[i] * d[i] : fmax(nd, fabs(d[i]));
            inbox = inbox && t[i] + d[i] >= -1e-6 && t[i] + d[i] <= 1 + 1e-6;
        }
        CHECK(err < 2e-5 && fabs(on - tgt) < 1e-4 && inbox && d[3] == 0,
              "%s case %d: max |d - bisection| %.3e, <w, t + d> - b = %.3e, in box %d, d[3] %g", l2 ? "l2" : "linf",
              cs, err, on - tgt, (int)inbox, d[3]);
        if (cs < 2) printf("projection, box active (%s): max |d - bisection| %.2e, |<w,t+d> - b| %.2e\n",
                           l2 ? "l2" : "linf", err, fabs(on - tgt));
    }
    // Out of reach: the corner nearest the hyperplane.
    for (int l2 = 0; l2 < 2; l2++) {
        fill_uniform(t, n, 90, 0, 1);
        fill_uniform(w, n, 91, -1, 1);
        double lo = 0;
        for (int i = 0; i < n; i++) lo += fmin(w[i], 0);
        (l2 ? rcv_fab_project_l2 : rcv_fab_project_linf)(t, w, (float)(lo - 1), n, d, S);
        double err = 0;
        for (int i = 0; i < n; i++) err = fmax(err, fabs(d[i] - (w[i] < 0 ? 1 - t[i] : -t[i])));
        CHECK(err < 1e-6, "%s unreachable: max |d - corner| %.3e", l2 ? "l2" : "linf", err);
    }
    rcv_fab_scratch_free(S);
}

// --- Square's schedule ---------------------------------------------------------------------------

static void test_schedule(void) {
    rcv_square_cfg c;
    rcv_square_defaults(&c, RCV_NORM_LINF);
    CHECK(c.n_queries == 5000 && c.p_init == 0.8f && c.resc_schedule == 0 && c.n_restarts == 1, "defaults");
    // (iteration, halvings): p halves after 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000
    static const int at[][2] = {{0, 0},     {10, 0},    {11, 1},    {50, 1},    {51, 2},    {200, 2},   {201, 3},
                                {500, 3},   {501, 4},   {1000, 4},  {1001, 5},  {2000, 5},  {2001, 6},  {4000, 6},
                                {4001, 7},  {6000, 7},  {6001, 8},  {8000, 8},  {8001, 9},  {20000, 9}};
    int bad = 0;
    for (size_t j = 0; j < sizeof at / sizeof at[0]; j++) {
        float p = rcv_square_p(&c, at[j][0]), want = 0.8f / (float)(1 << at[j][1]);
        if (p != want) {
            bad++;
            fprintf(stderr, "p(%d) = %g, expected %g\n", at[j][0], p, want);
        }
    }
    CHECK(bad == 0, "%d schedule points wrong", bad);
    // rescaled to 1000 queries: iteration i reads as int(i / 1000 * 10000)
    c.resc_schedule = 1, c.n_queries = 1000;
    CHECK(rcv_square_p(&c, 1) == 0.8f && rcv_square_p(&c, 2) == 0.4f && rcv_square_p(&c, 5) == 0.4f &&
              rcv_square_p(&c, 6) == 0.2f && rcv_square_p(&c, 801) == 0.8f / 512,
          "rescaled schedule: %g %g %g %g %g", rcv_square_p(&c, 1), rcv_square_p(&c, 2), rcv_square_p(&c, 5),
          rcv_square_p(&c, 6), rcv_square_p(&c, 801));
}

// --- on Fashion-MNIST ----------------------------------------------------------------------------

static int envi(const char *k, int d) {
    const char *v = getenv(k);
    return v && *v ? atoi(v) : d;
}

// Runs the oracle; returns its robust accuracy (-1: failed, -2: skipped) and per-image flags.
static double oracle(const char *ck, const char *attack, const char *norm, float eps, int n, int steps, int queries,
                     const char *dir, int *flags, double *secs) {
    char fl[600], out[600];
    snprintf(fl, sizeof fl, "%s/flags_%s_%s.txt", dir, attack, norm);
    snprintf(out, sizeof out, "%s/oracle_%s_%s.txt", dir, attack, norm);
    int rc = test_sh("/usr/bin/python3 tests/oracle/aa_ref.py %s --attack %s --norm %s --eps %.9g --n %d --steps %d "
                     "--n-queries %d --threads 2 --flags %s > %s", ck, attack, norm, eps, n, steps, queries, fl, out);
    if (rc == 77 || rc == 127) return -2;
    if (rc != 0) return -1;
    FILE *f = fopen(out, "r");
    double acc = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "robust_acc %lf", &acc);
        sscanf(line, "seconds %lf", secs);
    }
    if (f) fclose(f);
    f = fopen(fl, "r");
    for (int i = 0; f && i < n; i++)
        if (fscanf(f, "%d", &flags[i]) != 1) flags[i] = -1;
    if (f) fclose(f);
    return acc;
}

typedef struct {
    rcv_classifier *f;
    const float *x;
    const int32_t *y;
    int n;
    size_t per;
    const char *ck, *dir;
    int steps, queries;
} bench;

static void check_outputs(const bench *b, const char *what, rcv_norm norm, float eps, const float *xa,
                          const uint8_t *rob) {
    int k = rcv_classifier_classes(b->f), bad_ball = 0, bad_pred = 0, bad_same = 0;
    float *z = rcv_xmalloc((size_t)b->n * k * sizeof(float));
    rcv_classifier_logits(b->f, xa, b->n, z);
    double worst = 0;
    for (int i = 0; i < b->n; i++) {
        const float *xi = b->x + (size_t)i * b->per, *ai = xa + (size_t)i * b->per;
        double nr = 0;
        int in01 = 1, same = 1;
        for (size_t e = 0; e < b->per; e++) {
            double v = (double)ai[e] - xi[e];
            nr = norm == RCV_NORM_LINF ? fmax(nr, fabs(v)) : nr + v * v;
            in01 = in01 && ai[e] >= 0 && ai[e] <= 1;
            same = same && ai[e] == xi[e];
        }
        if (norm == RCV_NORM_L2) nr = sqrt(nr);
        worst = fmax(worst, nr);
        bad_ball += !in01 || nr > eps * (1 + 1e-5) + 1e-7;
        int correct = rcv_argmax(z + (size_t)i * k, k) == b->y[i];
        bad_pred += correct != rob[i];
        bad_same += rob[i] && !same;
    }
    CHECK(bad_ball == 0, "%s: %d outputs outside the eps ball or [0, 1] (largest norm %.6g, eps %.6g)", what, bad_ball,
          worst, eps);
    CHECK(bad_pred == 0, "%s: robust differs from a re-prediction for %d images", what, bad_pred);
    CHECK(bad_same == 0, "%s: %d robust images changed", what, bad_same);
    free(z);
}

static void compare(const bench *b, const char *attack, rcv_norm norm, float eps, const uint8_t *rob, double secs) {
    int *flags = rcv_xmalloc((size_t)b->n * sizeof(int));
    double osecs = 0;
    const char *nm = norm == RCV_NORM_LINF ? "Linf" : "L2";
    double ref = oracle(b->ck, attack, nm, eps, b->n, b->steps, b->queries, b->dir, flags, &osecs);
    int nr = 0;
    for (int i = 0; i < b->n; i++) nr += rob[i];
    double ours = (double)nr / b->n;
    if (ref == -2) {
        printf("%s %s eps %.4g: robust accuracy %.4f (%.1f s); SKIP oracle: no torch\n", attack, nm, eps, ours, secs);
        free(flags);
        return;
    }
    int differ = 0;
    for (int i = 0; i < b->n; i++) differ += flags[i] != rob[i];
    double tol = fmax(0.01, 2.0 / b->n) + 1e-9;
    printf("%s %s eps %.4g on %d images: robust accuracy ours %.4f (%.1f s), torchattacks %.4f (%.1f s), "
           "%d images differ, tolerance %.3f\n", attack, nm, eps, b->n, ours, secs, ref, osecs, differ, tol);
    CHECK(ref >= 0, "%s %s: oracle failed", attack, nm);
    CHECK(fabs(ours - ref) <= tol, "%s %s: robust accuracy ours %.4f vs torchattacks %.4f", attack, nm, ours, ref);
    free(flags);
}

static void run_fab(const bench *b, rcv_norm norm, float eps) {
    rcv_fab_cfg c;
    rcv_fab_defaults(&c, norm);
    c.eps = eps, c.n_iter = b->steps;
    float *xa = rcv_xmalloc((size_t)b->n * b->per * sizeof(float));
    uint8_t *rob = rcv_xmalloc((size_t)b->n);
    rcv_rng rng;
    rcv_rng_init(&rng, 0);
    double t0 = now();
    int rc = rcv_attack_fab(b->f, b->x, b->y, b->n, &c, &rng, xa, rob);
    double secs = now() - t0;
    CHECK(rc == 0, "fab: %s", rcv_error());
    if (rc == 0) {
        check_outputs(b, norm == RCV_NORM_LINF ? "fab-t linf" : "fab-t l2", norm, eps, xa, rob);
        compare(b, "fab-t", norm, eps, rob, secs);
    }
    free(xa);
    free(rob);
}

static void run_square(const bench *b, rcv_norm norm, float eps) {
    rcv_square_cfg c;
    rcv_square_defaults(&c, norm);
    c.eps = eps, c.n_queries = b->queries;
    float *xa = rcv_xmalloc((size_t)b->n * b->per * sizeof(float));
    uint8_t *rob = rcv_xmalloc((size_t)b->n);
    rcv_rng rng;
    rcv_rng_init(&rng, 0);
    double t0 = now();
    int rc = rcv_attack_square(b->f, b->x, b->y, b->n, &c, &rng, xa, rob);
    double secs = now() - t0;
    CHECK(rc == 0, "square: %s", rcv_error());
    if (rc == 0) {
        check_outputs(b, norm == RCV_NORM_LINF ? "square linf" : "square l2", norm, eps, xa, rob);
        compare(b, "square", norm, eps, rob, secs);
    }
    free(xa);
    free(rob);
}

static void test_bad_args(rcv_classifier *f, const float *x, const int32_t *y) {
    float xa[2 * 28 * 28];
    rcv_rng rng;
    rcv_rng_init(&rng, 1);
    rcv_fab_cfg fc;
    rcv_fab_defaults(&fc, RCV_NORM_LINF);
    CHECK(fc.n_iter == 100 && fc.n_target_classes == 9 && fc.targeted == 1 && fc.alpha_max == 0.1f && fc.eta == 1.05f &&
              fc.beta == 0.9f && fabsf(fc.eps - 8.0f / 255) < 1e-9f,
          "fab defaults");
    fc.eps = -0.1f;
    CHECK(rcv_attack_fab(f, x, y, 2, &fc, &rng, xa, NULL) == -1 && strstr(rcv_error(), "eps -0.1"), "fab eps: %s",
          rcv_error());
    rcv_fab_defaults(&fc, (rcv_norm)1);
    CHECK(rcv_attack_fab(f, x, y, 2, &fc, &rng, xa, NULL) == -1 && strstr(rcv_error(), "norm 1"), "fab norm: %s",
          rcv_error());
    rcv_fab_defaults(&fc, RCV_NORM_L2);
    CHECK(fc.eps == 0.5f, "fab l2 eps %g", fc.eps);
    fc.n_target_classes = 10;
    CHECK(rcv_attack_fab(f, x, y, 2, &fc, &rng, xa, NULL) == -1 && strstr(rcv_error(), "n_target_classes 10"),
          "fab targets: %s", rcv_error());
    rcv_fab_defaults(&fc, RCV_NORM_L2);
    fc.targeted = 0;
    CHECK(rcv_attack_fab(f, x, y, 2, &fc, &rng, xa, NULL) == -1 && strstr(rcv_error(), "targeted 0"),
          "fab untargeted: %s", rcv_error());
    rcv_square_cfg sc;
    rcv_square_defaults(&sc, RCV_NORM_LINF);
    sc.eps = NAN;
    CHECK(rcv_attack_square(f, x, y, 2, &sc, &rng, xa, NULL) == -1 && strstr(rcv_error(), "eps nan"),
          "square eps: %s", rcv_error());
    rcv_square_defaults(&sc, RCV_NORM_LINF);
    sc.p_init = 1.5f;
    CHECK(rcv_attack_square(f, x, y, 2, &sc, &rng, xa, NULL) == -1 && strstr(rcv_error(), "p_init 1.5"),
          "square p_init: %s", rcv_error());
    rcv_square_defaults(&sc, RCV_NORM_LINF);
    sc.n_queries = -3;
    CHECK(rcv_attack_square(f, x, y, 2, &sc, &rng, xa, NULL) == -1 && strstr(rcv_error(), "n_queries -3"),
          "square queries: %s", rcv_error());
    rcv_square_defaults(&sc, RCV_NORM_LINF);
    int32_t yb[2] = {y[0], 12};
    CHECK(rcv_attack_square(f, x, yb, 2, &sc, &rng, xa, NULL) == -1 && strstr(rcv_error(), "label 12"),
          "square label: %s", rcv_error());
}

static void test_fashion(void) {
    rcv_dataset d = {0};
    if (rcv_data_open("fashion-mnist", 0, &d)) {
        printf("SKIP Fashion-MNIST part: %s\n", rcv_error());
        return;
    }
    const char *dir = test_tmpdir("fabsq");
    char ck[600];
    const char *given = getenv("RCV_FABSQ_CKPT");
    if (given && *given) snprintf(ck, sizeof ck, "%s", given);
    else {
        rcv_train_cfg tc;
        rcv_train_cfg_defaults(&tc);
        snprintf(tc.model, sizeof tc.model, "smallcnn");
        tc.epochs = 1, tc.subset = 6000, tc.quiet = 1, tc.threads = 2;
        snprintf(tc.out_dir, sizeof tc.out_dir, "%s/run", dir);
        double t0 = now();
        if (rcv_train_run(&tc)) {
            CHECK(0, "train: %s", rcv_error());
            rcv_dataset_free(&d);
            return;
        }
        printf("trained smallcnn (1 epoch, 6000 images) in %.1f s\n", now() - t0);
        snprintf(ck, sizeof ck, "%s/run/last.safetensors", dir);
    }
    rcv_model m;
    if (rcv_ckpt_load_model(ck, &m, NULL)) {
        CHECK(0, "%s", rcv_error());
        rcv_dataset_free(&d);
        return;
    }
    int n = envi("RCV_FABSQ_N", 100);
    if (n > d.n) n = d.n;
    size_t per = (size_t)d.h * d.w * d.c;
    float *x = rcv_xmalloc((size_t)n * per * sizeof(float));
    int32_t *y = rcv_xmalloc((size_t)n * sizeof(int32_t));
    int *idx = rcv_xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) idx[i] = i;
    rcv_dataset_batch(&d, idx, n, x, y);
    int batch = n < 250 ? n : 250;
    if (rcv_attack_prepare(&m, batch, RCV_BACKEND_CPU)) {
        CHECK(0, "%s", rcv_error());
        goto out;
    }
    rcv_model *ms[1] = {&m};
    rcv_classifier f = {ms, 1, 0, NULL};
    test_bad_args(&f, x, y);
    bench b = {&f, x, y, n, per, ck, dir, envi("RCV_FABSQ_STEPS", 20), envi("RCV_FABSQ_QUERIES", 500)};
    // eps where a fair share of the points falls (one epoch of standard training: not robust)
    const char *only = getenv("RCV_FABSQ_ONLY"); // e.g. "fab-linf,square-l2": run only those
    if (!only || strstr(only, "fab-linf")) run_fab(&b, RCV_NORM_LINF, 0.03f);
    if (!only || strstr(only, "square-linf")) run_square(&b, RCV_NORM_LINF, 0.03f);
    if (!only || strstr(only, "fab-l2")) run_fab(&b, RCV_NORM_L2, 0.5f);
    if (!only || strstr(only, "square-l2")) run_square(&b, RCV_NORM_L2, 0.5f);
out:
    free(x);
    free(y);
    free(idx);
    rcv_model_free(&m);
    rcv_dataset_free(&d);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_projections();
    test_schedule();
    test_fashion();
    return test_done();
}
