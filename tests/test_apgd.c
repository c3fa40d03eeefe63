// APGD (src/robust/apgd.c) against independent references:
//   - the checkpoint schedule: N = 100 gives 22 41 57 70 80 87 93 99 (the paper / reference), and
//     other N agree with the reference's counter loop written out here;
//   - DLR and targeted DLR values and logit gradients vs torchattacks' own dlr_loss /
//     dlr_loss_targeted with float64 autograd (tests/oracle/apgd_ref.py);
//   - APGD-CE, APGD-DLR, APGD-T (L-inf) and APGD-CE (L2) vs torchattacks 3.5.1 (steps 100, seed 0)
//     on the same smallcnn weights (eval mode, running statistics unlike batch ones) from the
//     same starts (the oracle records the starts torchattacks draws; ours take them via x_init):
//     adversarial images within 1e-5, the same robust points;
//   - every output within its norm ball and [0, 1], robust = a re-prediction, with our own random
//     starts, restarts, and EoT on a randomized classifier.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robustcv/attack.h"
#include "robustcv/error.h"
#include "robustcv/safetensors.h"
#include "testutil.h"

#define N 8
#define H 8
#define W 8
#define C 1
#define K 10
#define PER (H * W * C)
#define NL 40 // logit rows for the loss check

static const float EPS_LINF = 8.0f / 255.0f, EPS_L2 = 0.5f;
static const int STEPS = 100, STEPS_SHORT = 20;
// Two float32 implementations of one model (oneDNN's sums, PyTorch's) give logits that differ by
// ~1e-6 relative. An APGD run whose decisions (argmax, loss > best, the checkpoint comparisons)
// all sit further apart than MARGIN is decided the same way by both and must agree to 1e-5;
// one that takes a decision closer than that may part there (PyTorch run channels-last parts from
// PyTorch too: the oracle shows it), and is held to the same robust points only.
static const double MARGIN = 1e-5;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void build_small(rcv_model *m, uint64_t seed) {
    test_build_smallcnn(m, C, H, W, K, seed);
    rcv_graph *g = m->g;
    // Spread logits (fc x 20): at initialisation they are nearly equal, the CE loss sits within a
    // few float32 ulps of log 10 and `loss > best` decides on rounding (oneDNN's vs PyTorch's sums).
    for (int p = 0; p < g->n_params; p++)
        if (!strcmp(g->param_info[p].name, "fc.weight"))
            for (size_t e = 0; e < g->param_info[p].numel; e++) rcv_param_data(g, p)[e] *= 20;
}

// The reference's loop: counter3 counts iterations, a check when it reaches k, then k shrinks.
static int ref_checkpoints(int n_iter, int *out) {
    int k = (int)(0.22 * n_iter), kmin = (int)(0.06 * n_iter), decr = (int)(0.03 * n_iter), c3 = 0, cnt = 0;
    k = k < 1 ? 1 : k, kmin = kmin < 1 ? 1 : kmin, decr = decr < 1 ? 1 : decr;
    for (int i = 0; i < n_iter; i++) {
        if (++c3 == k) {
            out[cnt++] = i + 1;
            c3 = 0;
            k = k - decr > kmin ? k - decr : kmin;
        }
    }
    return cnt;
}

static void test_checkpoints(void) {
    int got[64], want[8] = {22, 41, 57, 70, 80, 87, 93, 99};
    int n = rcv_apgd_checkpoints(100, got, 64);
    int same = n == 8;
    for (int i = 0; same && i < 8; i++) same = got[i] == want[i];
    CHECK(same, "N = 100: %d checkpoints, expected 22 41 57 70 80 87 93 99", n);
    int ns[5] = {10, 37, 250, 1, 1000};
    for (int j = 0; j < 5; j++) {
        int r[1024], g2[1024];
        int nr = ref_checkpoints(ns[j], r), ng = rcv_apgd_checkpoints(ns[j], g2, 1024);
        int ok = nr == ng;
        for (int i = 0; ok && i < nr; i++) ok = r[i] == g2[i];
        CHECK(ok, "N = %d: %d checkpoints, the reference's loop gives %d", ns[j], ng, nr);
    }
    printf("checkpoints N = 100: %d of them, as published; N = 10, 37, 250, 1, 1000 as the reference's loop\n", n);
}

static int in_ball(const float *a, const float *x, int n, rcv_norm norm, float eps, double *worst) {
    int ok = 1;
    *worst = 0;
    for (int i = 0; i < n; i++) {
        double d = 0;
        for (int e = 0; e < PER; e++) {
            float v = a[i * PER + e], t = v - x[i * PER + e];
            ok &= v >= 0 && v <= 1;
            d = norm == RCV_NORM_LINF ? fmax(d, fabs(t)) : d + (double)t * t;
        }
        if (norm == RCV_NORM_L2) d = sqrt(d);
        *worst = fmax(*worst, d);
    }
    // linf: x +- eps in float is within half an ulp of 1 of eps; l2: the reference's projection
    // keeps ||d|| <= eps up to float rounding.
    return ok && *worst <= eps * (1 + 1e-5) + 1e-7;
}

// robust[i] == (the classifier's prediction of adv_i is y_i) for deterministic f.
static int robust_repredicts(const rcv_classifier *f, const float *adv, const int32_t *y, const uint8_t *rob) {
    float z[N * K];
    rcv_classifier_logits(f, adv, N, z);
    int ok = 1;
    for (int i = 0; i < N; i++) {
        int p = 0;
        for (int j = 1; j < K; j++) p = z[i * K + j] > z[i * K + p] ? j : p;
        ok &= (p == y[i]) == (rob[i] != 0);
    }
    return ok;
}

static void test_losses(const rcv_safetensors *ref, const float *zl, const int32_t *ly, const int32_t *lt) {
    float rl[NL], rg[NL * K], ol[NL], og[NL * K];
    const char *nm[2] = {"dlr", "dlrt"};
    for (int v = 0; v < 2; v++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%s.loss", nm[v]);
        snprintf(b, sizeof b, "%s.grad", nm[v]);
        if (rcv_st_read_f32(ref, a, rl, NL) || rcv_st_read_f32(ref, b, rg, NL * K)) {
            CHECK(0, "%s", rcv_error());
            return;
        }
        for (int i = 0; i < NL; i++)
            ol[i] = (float)(v ? rcv_loss_dlr_targeted(zl + i * K, K, ly[i], lt[i], og + i * K)
                              : rcv_loss_dlr(zl + i * K, K, ly[i], og + i * K));
        double el = max_rel_err(ol, rl, NL, 1e-6), eg = max_rel_err(og, rg, NL * K, 1e-6);
        printf("%-4s vs torchattacks' formula (float64 autograd), %d logit rows: loss max rel err %.2e, "
               "gradient %.2e\n", nm[v], NL, el, eg);
        CHECK(el < 1e-6 && eg < 1e-6, "%s: loss err %.3e, gradient err %.3e", nm[v], el, eg);
    }
}

typedef struct {
    const char *name;
    rcv_norm norm;
    rcv_apgd_loss loss;
    float eps;
    int steps;
} acase;

static void test_oracle(void) {
    rcv_model m;
    build_small(&m, 3);
    if (rcv_attack_prepare(&m, N, RCV_BACKEND_CPU)) {
        CHECK(0, "%s", rcv_error());
        return;
    }
    rcv_model *mp = &m;
    rcv_classifier f = {&mp, 1, 0, NULL};
    float x[N * PER], z[N * K];
    fill_uniform(x, N * PER, 11, 0.0f, 1.0f);
    // Labels: the clean predictions (every point is attacked), but the last one wrong (never attacked).
    int32_t y[N];
    int64_t y64[N];
    rcv_classifier_logits(&f, x, N, z);
    for (int i = 0; i < N; i++) {
        int p = 0;
        for (int j = 1; j < K; j++) p = z[i * K + j] > z[i * K + p] ? j : p;
        y[i] = i == N - 1 ? (p + 1) % K : p;
        y64[i] = y[i];
    }
    // Logits for the loss check: spread values, some rows with y the top class.
    float zl[NL * K];
    int32_t ly[NL], lt[NL];
    int64_t ly64[NL], lt64[NL];
    fill_uniform(zl, NL * K, 5, -4.0f, 4.0f);
    for (int i = 0; i < NL; i++) {
        int p = 0;
        for (int j = 1; j < K; j++) p = zl[i * K + j] > zl[i * K + p] ? j : p;
        ly[i] = i % 3 == 0 ? p : (i * 7) % K;
        lt[i] = (ly[i] + 1 + i % (K - 1)) % K;
        ly64[i] = ly[i], lt64[i] = lt[i];
    }

    const char *dir = test_tmpdir("apgd");
    rcv_st_writer *w = rcv_st_writer_new();
    rcv_st_add_graph(w, m.g);
    int64_t sh4[4] = {N, H, W, C}, sh1[1] = {N}, shl[2] = {NL, K}, shl1[1] = {NL};
    rcv_st_add(w, "x", RCV_DT_F32, 4, sh4, x);
    rcv_st_add(w, "y", RCV_DT_I64, 1, sh1, y64);
    rcv_st_add(w, "logits", RCV_DT_F32, 2, shl, zl);
    rcv_st_add(w, "ly", RCV_DT_I64, 1, shl1, ly64);
    rcv_st_add(w, "lt", RCV_DT_I64, 1, shl1, lt64);
    char b[64];
    rcv_st_add_meta(w, "in_c", "1");
    rcv_st_add_meta(w, "n_classes", "10");
    rcv_st_add_meta(w, "mean", "0.300000012");
    rcv_st_add_meta(w, "std", "0.400000006");
    snprintf(b, sizeof b, "%.9g", (double)EPS_LINF);
    rcv_st_add_meta(w, "eps_linf", b);
    snprintf(b, sizeof b, "%.9g", (double)EPS_L2);
    rcv_st_add_meta(w, "eps_l2", b);
    snprintf(b, sizeof b, "%d", STEPS);
    rcv_st_add_meta(w, "steps", b);
    snprintf(b, sizeof b, "%d", STEPS_SHORT);
    rcv_st_add_meta(w, "steps_short", b);
    char path[512];
    snprintf(path, sizeof path, "%s/case.safetensors", dir);
    CHECK(rcv_st_write(w, path) == 0, "%s", rcv_error());
    rcv_st_writer_free(w);
    double t0 = now_s();
    int rc = test_sh("/usr/bin/python3 tests/oracle/apgd_ref.py %s", dir);
    double t_ref = now_s() - t0;
    if (rc == 77 || rc == 127) {
        printf("SKIP torchattacks oracle: /usr/bin/python3 with torch and torchattacks is not available\n");
        rcv_model_free(&m);
        return;
    }
    CHECK(rc == 0, "tests/oracle/apgd_ref.py exited %d", rc);
    rcv_safetensors ref;
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    if (rc || rcv_st_open(&ref, path)) {
        CHECK(0, "%s", rcv_error());
        rcv_model_free(&m);
        return;
    }
    test_losses(&ref, zl, ly, lt);

    acase cs[7] = {{"ce_linf", RCV_NORM_LINF, RCV_APGD_CE, EPS_LINF, STEPS},
                   {"dlr_linf", RCV_NORM_LINF, RCV_APGD_DLR, EPS_LINF, STEPS},
                   {"t_linf", RCV_NORM_LINF, RCV_APGD_DLR_T, EPS_LINF, STEPS},
                   {"ce_l2", RCV_NORM_L2, RCV_APGD_CE, EPS_L2, STEPS},
                   {"dlr_linf_short", RCV_NORM_LINF, RCV_APGD_DLR, EPS_LINF, STEPS_SHORT},
                   {"t_linf_short", RCV_NORM_LINF, RCV_APGD_DLR_T, EPS_LINF, STEPS_SHORT},
                   {"t_l2_short", RCV_NORM_L2, RCV_APGD_DLR_T, EPS_L2, STEPS_SHORT}};
    double t_ours = 0;
    int strict = 0;
    for (int ci = 0; ci < 7; ci++) {
        acase *a = &cs[ci];
        rcv_apgd_cfg c;
        rcv_apgd_defaults(&c, a->norm, a->loss);
        c.eps = a->eps, c.n_iter = a->steps;
        int runs = a->loss == RCV_APGD_DLR_T ? c.n_target_classes : 1;
        float *starts = rcv_xmalloc((size_t)runs * N * PER * sizeof(float)), adv[N * PER], radv[N * PER], rrob[N];
        float alt[N * PER], margin;
        char key[64];
        int bad = 0;
        snprintf(key, sizeof key, "%s.starts", a->name);
        bad |= rcv_st_read_f32(&ref, key, starts, (size_t)runs * N * PER);
        snprintf(key, sizeof key, "%s.adv", a->name);
        bad |= rcv_st_read_f32(&ref, key, radv, N * PER);
        snprintf(key, sizeof key, "%s.adv_alt", a->name);
        bad |= rcv_st_read_f32(&ref, key, alt, N * PER);
        snprintf(key, sizeof key, "%s.robust", a->name);
        bad |= rcv_st_read_f32(&ref, key, rrob, N);
        snprintf(key, sizeof key, "%s.margin", a->name);
        bad |= rcv_st_read_f32(&ref, key, &margin, 1);
        if (bad) {
            CHECK(0, "%s: %s", a->name, rcv_error());
            free(starts);
            continue;
        }
        c.x_init = starts;
        uint8_t rob[N];
        rcv_rng rng;
        rcv_rng_init(&rng, 1);
        double t1 = now_s();
        int r = rcv_attack_apgd(&f, x, y, N, &c, &rng, adv, rob);
        t_ours += now_s() - t1;
        CHECK(r == 0, "%s: %s", a->name, rcv_error());
        double e = max_abs_err(adv, radv, N * PER), e_alt = max_abs_err(alt, radv, N * PER), worst;
        int same_rob = 1, n_rob = 0, moved = 0;
        for (int i = 0; i < N; i++) same_rob &= (rob[i] != 0) == (rrob[i] != 0), n_rob += rob[i];
        for (int i = 0; i < N * PER; i++) moved += adv[i] != x[i];
        int well = margin >= MARGIN;
        strict += well;
        printf("apgd %-14s %3d steps vs torchattacks 3.5.1: max abs err %.2e, robust %d/%d (%s), %3d of %d pixels "
               "moved; closest decision %.1e: %s (PyTorch channels-last vs PyTorch %.2e)\n",
               a->name, a->steps, e, n_rob, N, same_rob ? "same points" : "DIFFERENT points", moved, N * PER, margin,
               well ? "held to 1e-5" : "within rounding, robust points only", e_alt);
        CHECK(!well || e <= 1e-5, "%s: adversarial images differ by %.3e", a->name, e);
        CHECK(same_rob, "%s: robust points differ from torchattacks'", a->name);
        CHECK(in_ball(adv, x, N, a->norm, a->eps, &worst), "%s: outside the %g ball or [0, 1] (%.7f)", a->name,
              a->eps, worst);
        CHECK(robust_repredicts(&f, adv, y, rob), "%s: robust disagrees with a re-prediction", a->name);
        CHECK(n_rob < N - 1 && moved > 0, "%s: the attack broke nothing (%d robust)", a->name, n_rob);
        CHECK(!rob[N - 1] && !memcmp(adv + (N - 1) * PER, x + (N - 1) * PER, PER * sizeof(float)),
              "%s: the misclassified point was attacked", a->name);
        free(starts);
    }
    printf("7 oracle cases: ours %.2f s, the oracle process (torch import, the attacks twice, losses) %.2f s\n",
           t_ours, t_ref);
    CHECK(strict >= 2, "only %d cases decided clear of rounding: the 1e-5 comparison hardly ran", strict);
    rcv_st_close(&ref);
    rcv_model_free(&m);
}

// Our own random starts, 2 restarts, every loss and norm, and EoT on a randomized classifier:
// in the ball, in [0, 1]; robust = re-prediction (deterministic f); a restart never loses a success.
static void test_bounds(void) {
    rcv_model m;
    build_small(&m, 5);
    rcv_attack_prepare(&m, 5, RCV_BACKEND_CPU); // planned batch 5: chunks of 5 and a padded 3
    rcv_model *mp = &m;
    rcv_classifier f = {&mp, 1, 0, NULL};
    float x[N * PER], z[N * K], adv[N * PER], adv2[N * PER];
    int32_t y[N];
    fill_uniform(x, N * PER, 21, 0.0f, 1.0f);
    rcv_classifier_logits(&f, x, N, z);
    for (int i = 0; i < N; i++) {
        int p = 0;
        for (int j = 1; j < K; j++) p = z[i * K + j] > z[i * K + p] ? j : p;
        y[i] = p;
    }
    rcv_apgd_loss ls[3] = {RCV_APGD_CE, RCV_APGD_DLR, RCV_APGD_DLR_T};
    rcv_norm ns[2] = {RCV_NORM_LINF, RCV_NORM_L2};
    for (int li = 0; li < 3; li++)
        for (int ni = 0; ni < 2; ni++) {
            rcv_apgd_cfg c;
            rcv_apgd_defaults(&c, ns[ni], ls[li]);
            c.eps = ns[ni] == RCV_NORM_LINF ? 8.0f / 255 : 0.5f, c.n_iter = 20, c.n_target_classes = 3;
            uint8_t r1[N], r2[N];
            rcv_rng g1, g2;
            rcv_rng_init(&g1, 4);
            g2 = g1;
            int ok = rcv_attack_apgd(&f, x, y, N, &c, &g1, adv, r1) == 0;
            c.n_restarts = 2;
            ok &= rcv_attack_apgd(&f, x, y, N, &c, &g2, adv2, r2) == 0;
            CHECK(ok, "%s", rcv_error());
            double w1, w2;
            int kept = 1, n1 = 0, n2 = 0;
            for (int i = 0; i < N; i++) kept &= r1[i] || !r2[i], n1 += r1[i], n2 += r2[i];
            printf("apgd loss %d norm %s, 20 steps: robust %d/%d, with 2 restarts %d/%d\n", ls[li],
                   ns[ni] == RCV_NORM_LINF ? "linf" : "l2", n1, N, n2, N);
            CHECK(in_ball(adv, x, N, ns[ni], c.eps, &w1) && in_ball(adv2, x, N, ns[ni], c.eps, &w2),
                  "loss %d norm %d: outside the ball or [0, 1] (%.7f, %.7f)", ls[li], ns[ni], w1, w2);
            CHECK(robust_repredicts(&f, adv, y, r1) && robust_repredicts(&f, adv2, y, r2),
                  "loss %d norm %d: robust disagrees with a re-prediction", ls[li], ns[ni]);
            CHECK(kept, "loss %d norm %d: the second restart lost a point the first one broke", ls[li], ns[ni]);
        }
    // EoT on a randomized classifier: runs, stays in the ball.
    rcv_rng nr;
    rcv_rng_init(&nr, 8);
    rcv_classifier fr = {&mp, 1, 0.05f, &nr};
    rcv_apgd_cfg c;
    rcv_apgd_defaults(&c, RCV_NORM_LINF, RCV_APGD_CE);
    c.n_iter = 10, c.eot_iter = 3;
    rcv_rng g;
    rcv_rng_init(&g, 2);
    double wr;
    CHECK(rcv_attack_apgd(&fr, x, y, N, &c, &g, adv, NULL) == 0, "%s", rcv_error());
    CHECK(in_ball(adv, x, N, RCV_NORM_LINF, c.eps, &wr), "eot: outside the ball (%.7f)", wr);
    // Bad arguments name the value.
    c.eps = -1;
    CHECK(rcv_attack_apgd(&f, x, y, N, &c, &g, adv, NULL) == -1 && strstr(rcv_error(), "eps -1"),
          "eps -1 accepted or unnamed: %s", rcv_error());
    rcv_apgd_defaults(&c, RCV_NORM_LINF, RCV_APGD_DLR_T);
    c.n_target_classes = 10;
    CHECK(rcv_attack_apgd(&f, x, y, N, &c, &g, adv, NULL) == -1 && strstr(rcv_error(), "n_target_classes 10"),
          "n_target_classes 10 accepted or unnamed: %s", rcv_error());
    rcv_model_free(&m);
}

int main(void) {
    test_checkpoints();
    test_oracle();
    test_bounds();
    return test_done();
}
