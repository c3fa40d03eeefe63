// Every attack and robust-training recipe on the cuda backend against the cpu backend (the
// oracle: tests/test_attack.c and friends check the cpu one against torchattacks / PyTorch), on
// the same weights and inputs, random starts fed identically (the same seeded generator: the
// draws are made on the host for both backends).
//
// Without a GPU (or without the cuda backend in the build) it prints
// "SKIP: no CUDA device (<reason>)" and exits 0, after checking that the attack verb says so
// and exits 1.
//
// 0. The attack vector ops (copy, L-inf step in its three forms, add_clamp01, CE and KL seeds):
//    cuda kernels vs their host twins on random data (exact; seeds within 1e-6).
// 1. Attacks, a smallcnn (3x16x16, 10 classes) with running statistics unlike any batch's, 12
//    images in chunks of the planned batch 8 (the last chunk padded): FGSM, PGD L-inf (random
//    start, untargeted and targeted), PGD L2, DeepFool, APGD-CE, APGD-T, FAB-T, Square, CW and
//    AutoAttack standard (short runs). Adversarial images compared pixel by pixel: every pixel
//    within 1e-4, except where an attack takes a discrete decision on a rounding-sized quantity
//    (sign(g) for |g| ~ 1e-9, an argmax of two logits within rounding, APGD's step halving on a
//    loss tie): such a flip moves a pixel by a step, so the test allows at most 0.5% of the
//    pixels beyond 1e-4 and prints the count and the largest difference either way.
// 2. Recipes (standard, fgsm, kurakin, stability, augmix, pgd, trades, noise), training mode with
//    dropout (the same Philox stream on both backends), batch 8: the step's loss within 1e-4
//    (relative to max(1, |loss|)) and every parameter gradient within 1e-3 of the largest |cpu|
//    value of its tensor (test_cuda_ops.c's tolerance for whole models); TRADES within 3e-2: its
//    inner maximisation starts at x + 0.001 N(0, I), where the KL gradient is rounding-sized, and
//    takes sign steps, so pixels of x' flip by a step between backends (with the ref backend in
//    cuda's place: 0.95% of the largest value; every other recipe below 1e-5). TRADES' x' is
//    compared like the attacks' images with 2% of the pixels allowed beyond 1e-4 (ref: 31 of 6144,
//    0.50%).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "robustcv/attack.h"
#include "robustcv/error.h"
#include "robustcv/ops.h"
#include "robustcv/recipe.h"
#include "testutil.h"

#define C 3
#define H 16
#define W 16
#define K 10
#define B 8
#define N 12
#define PER (C * H * W)

// The backend under test: cuda; RCV_TEST_DEVICE=ref runs the whole comparison with the ref
// backend in cuda's place (no GPU needed: a check of this test's own logic and tolerances,
// ref's kernels rounding unlike oneDNN's as cuDNN's do).
static rcv_backend DEV = RCV_BACKEND_CUDA;

static void same_weights(rcv_model *dst, rcv_model *src) {
    memcpy(dst->g->params, src->g->params, src->g->n_param_floats * sizeof(float));
    memcpy(dst->g->buffers, src->g->buffers, src->g->n_buffer_floats * sizeof(float));
    memcpy(dst->g->ibuffers, src->g->ibuffers, src->g->n_ibuffers * sizeof(int64_t));
}

// The attack comparison of the header; prints one line per attack.
static void compare_frac(const char *name, const float *cpu, const float *gpu, size_t n, double frac) {
    size_t off = 0;
    double mx = 0;
    for (size_t e = 0; e < n; e++) {
        double d = fabs((double)cpu[e] - gpu[e]);
        if (d > 1e-4) off++;
        if (d > mx) mx = d;
    }
    printf("%-24s max |cuda - cpu| %.3g, %zu of %zu pixels beyond 1e-4\n", name, mx, off, n);
    CHECK(off <= frac * n, "%s: %zu of %zu pixels differ by more than 1e-4 (max %.3g; allowed %g%%)", name, off, n, mx,
          100 * frac);
}
static void compare(const char *name, const float *cpu, const float *gpu, size_t n) { compare_frac(name, cpu, gpu, n, 0.005); }

// 0. The attack vector ops (backend.h) on random data: cuda kernels vs their host twins. The
// element-wise ones must agree exactly (sign steps and clamps are exact or round once on both
// sides); the seeds within 1e-6 (exp in double on both, last bits may differ).
static void ops(void) {
    enum { R = 6, KC = 7, E = 4096 };
    rcv_graph *g = rcv_graph_new();
    rcv_relu(g, "r", rcv_input(g, "x", 1, 8, 8));
    if (rcv_graph_plan(g, 1, DEV)) {
        CHECK(0, "plan on cuda: %s", rcv_error());
        rcv_graph_free(g);
        return;
    }
    rcv_backend be = DEV;
    void *ctx = g->backend_ctx;
    float *adv = rcv_xmalloc(E * sizeof(float)), *x = rcv_xmalloc(E * sizeof(float)), *gr = rcv_xmalloc(E * sizeof(float));
    float *ha = rcv_xmalloc(E * sizeof(float)), *hd = rcv_xmalloc(E * sizeof(float));
    fill_uniform(x, E, 1, 0, 1);
    fill_uniform(gr, E, 2, -1, 1);
    for (int e = 0; e < E; e += 17) gr[e] = 0; // sign(0) = 0
    float *dadv = rcv_backend_alloc(be, ctx, E * sizeof(float)), *dx = rcv_backend_alloc(be, ctx, E * sizeof(float));
    float *dg = rcv_backend_alloc(be, ctx, E * sizeof(float)), *dcp = rcv_backend_alloc(be, ctx, E * sizeof(float));
    rcv_graph_upload(g, dx, x, E * sizeof(float));
    rcv_graph_upload(g, dg, gr, E * sizeof(float));
    for (int mode = 0; mode < 4; mode++) { // linf step: PGD, TRADES box, no projection (FGSM); add_clamp01
        fill_uniform(adv, E, 3 + mode, -0.2f, 1.2f);
        rcv_graph_upload(g, dadv, adv, E * sizeof(float));
        float eps = mode == 2 ? -1 : 0.03f;
        if (mode < 3) {
            rcv_backend_linf_step(RCV_BACKEND_CPU, NULL, adv, x, gr, E, 0.01f, eps, mode == 1);
            rcv_backend_linf_step(be, ctx, dadv, dx, dg, E, 0.01f, eps, mode == 1);
        } else {
            rcv_backend_add_clamp01(RCV_BACKEND_CPU, NULL, adv, x, gr, E);
            rcv_backend_add_clamp01(be, ctx, dadv, dx, dg, E);
        }
        rcv_backend_copy(be, ctx, dcp, dadv, E * sizeof(float));
        rcv_graph_download(g, ha, dcp, E * sizeof(float));
        CHECK(max_abs_err(ha, adv, E) == 0, "attack op %d: cuda differs from the host twin by %g", mode,
              max_abs_err(ha, adv, E));
    }
    // seeds: (R, KC) logits, rows >= 4 padding
    float z[R * KC], sc[R * KC], sg[R * KC];
    int32_t y[R] = {0, 3, 6, 2, 1, 1};
    double p[R * KC];
    fill_uniform(z, R * KC, 5, -4, 4);
    for (int i = 0; i < R * KC; i++) p[i] = 1.0 / KC + 0.01 * ((i % 3) - 1);
    float *dz = rcv_backend_alloc(be, ctx, sizeof z), *ddz = rcv_backend_alloc(be, ctx, sizeof z);
    int32_t *dy = rcv_backend_alloc(be, ctx, sizeof y);
    double *dp = rcv_backend_alloc(be, ctx, sizeof p);
    rcv_graph_upload(g, dz, z, sizeof z);
    rcv_graph_upload(g, dy, y, sizeof y);
    rcv_graph_upload(g, dp, p, sizeof p);
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0) {
            rcv_backend_ce_seed(RCV_BACKEND_CPU, NULL, z, y, sc, 4, R, KC, -1);
            rcv_backend_ce_seed(be, ctx, dz, dy, ddz, 4, R, KC, -1);
        } else {
            rcv_backend_kl_seed(RCV_BACKEND_CPU, NULL, z, p, sc, 4, R, KC);
            rcv_backend_kl_seed(be, ctx, dz, dp, ddz, 4, R, KC);
        }
        rcv_graph_download(g, sg, ddz, sizeof sg);
        CHECK(max_abs_err(sg, sc, R * KC) <= 1e-6, "%s seed: cuda differs from the host twin by %g",
              kind ? "kl" : "ce", max_abs_err(sg, sc, R * KC));
    }
    printf("attack ops: linf step (pgd, box, none), add_clamp01, copy exact; ce/kl seeds within 1e-6\n");
    rcv_backend_free(be, ctx, dadv);
    rcv_backend_free(be, ctx, dx);
    rcv_backend_free(be, ctx, dg);
    rcv_backend_free(be, ctx, dcp);
    rcv_backend_free(be, ctx, dz);
    rcv_backend_free(be, ctx, ddz);
    rcv_backend_free(be, ctx, dy);
    rcv_backend_free(be, ctx, dp);
    free(adv), free(x), free(gr), free(ha), free(hd);
    rcv_graph_free(g);
}

static rcv_classifier one(rcv_model **mp) { return (rcv_classifier){mp, 1, 0, NULL}; }

static void attacks(rcv_model *mc, rcv_model *mg, const float *x, const int32_t *y, const int32_t *tgt) {
    size_t tot = (size_t)N * PER;
    float *a = rcv_xmalloc(tot * sizeof(float)), *b = rcv_xmalloc(tot * sizeof(float));
    rcv_model *pc = mc, *pg = mg;
    rcv_classifier fc = one(&pc), fg = one(&pg);
    rcv_rng rc, rg;
#define BOTH(name, call_c, call_g)                                                                                   \
    do {                                                                                                             \
        rcv_rng_init(&rc, 11), rcv_rng_init(&rg, 11);                                                                \
        int e1 = (call_c), e2 = (call_g);                                                                            \
        CHECK(e1 == 0 && e2 == 0, "%s: %s", name, rcv_error());                                                      \
        if (e1 == 0 && e2 == 0) compare(name, a, b, tot);                                                            \
    } while (0)

    rcv_fgsm_cfg fg_c;
    rcv_fgsm_defaults(&fg_c);
    BOTH("fgsm", rcv_attack_fgsm(&pc, 1, x, y, N, &fg_c, a), rcv_attack_fgsm(&pg, 1, x, y, N, &fg_c, b));
    rcv_pgd_cfg pgd;
    rcv_pgd_defaults(&pgd, RCV_NORM_LINF);
    BOTH("pgd linf", rcv_attack_pgd(&pc, 1, x, y, N, &pgd, &rc, a), rcv_attack_pgd(&pg, 1, x, y, N, &pgd, &rg, b));
    pgd.targeted = 1;
    BOTH("pgd linf targeted", rcv_attack_pgd(&pc, 1, x, tgt, N, &pgd, &rc, a),
         rcv_attack_pgd(&pg, 1, x, tgt, N, &pgd, &rg, b));
    pgd.targeted = 0, pgd.restarts = 2;
    BOTH("pgd linf 2 restarts", rcv_attack_pgd(&pc, 1, x, y, N, &pgd, &rc, a),
         rcv_attack_pgd(&pg, 1, x, y, N, &pgd, &rg, b));
    rcv_pgd_defaults(&pgd, RCV_NORM_L2);
    BOTH("pgd l2", rcv_attack_pgd(&pc, 1, x, y, N, &pgd, &rc, a), rcv_attack_pgd(&pg, 1, x, y, N, &pgd, &rg, b));
    rcv_deepfool_cfg df;
    rcv_deepfool_defaults(&df);
    BOTH("deepfool", rcv_attack_deepfool(mc, x, N, &df, a, NULL), rcv_attack_deepfool(mg, x, N, &df, b, NULL));
    rcv_apgd_cfg ap;
    rcv_apgd_defaults(&ap, RCV_NORM_LINF, RCV_APGD_CE);
    ap.n_iter = 20;
    BOTH("apgd-ce", rcv_attack_apgd(&fc, x, y, N, &ap, &rc, a, NULL), rcv_attack_apgd(&fg, x, y, N, &ap, &rg, b, NULL));
    rcv_apgd_defaults(&ap, RCV_NORM_LINF, RCV_APGD_DLR_T);
    ap.n_iter = 10, ap.n_target_classes = 3;
    BOTH("apgd-t", rcv_attack_apgd(&fc, x, y, N, &ap, &rc, a, NULL), rcv_attack_apgd(&fg, x, y, N, &ap, &rg, b, NULL));
    rcv_fab_cfg fab;
    rcv_fab_defaults(&fab, RCV_NORM_LINF);
    fab.n_iter = 10, fab.n_target_classes = 3;
    BOTH("fab-t", rcv_attack_fab(&fc, x, y, N, &fab, &rc, a, NULL), rcv_attack_fab(&fg, x, y, N, &fab, &rg, b, NULL));
    rcv_square_cfg sq;
    rcv_square_defaults(&sq, RCV_NORM_LINF);
    sq.n_queries = 100;
    BOTH("square", rcv_attack_square(&fc, x, y, N, &sq, &rc, a, NULL), rcv_attack_square(&fg, x, y, N, &sq, &rg, b, NULL));
    rcv_cw_cfg cw;
    rcv_cw_defaults(&cw);
    cw.steps = 20;
    BOTH("cw", rcv_attack_cw(&fc, x, y, N, &cw, a), rcv_attack_cw(&fg, x, y, N, &cw, b));
    rcv_autoattack_cfg aa;
    rcv_autoattack_defaults(&aa, RCV_NORM_LINF);
    aa.n_iter = 10, aa.n_queries = 50;
    rcv_autoattack_result r1, r2;
    BOTH("autoattack", rcv_autoattack(&fc, x, y, N, &aa, a, NULL, &r1), rcv_autoattack(&fg, x, y, N, &aa, b, NULL, &r2));
    for (int i = 0; i < r1.n_attacks; i++)
        CHECK(r1.robust[i] == r2.robust[i], "autoattack %s: %ld robust on cpu, %ld on cuda", r1.name[i], r1.robust[i],
              r2.robust[i]);
#undef BOTH
    free(a);
    free(b);
}

// One recipe step on a model planned on `be`: loss and parameter gradients (host).
static float recipe_step(rcv_model *m, rcv_backend be, const rcv_recipe_cfg *rc, const float *x, const int32_t *y,
                         float *grads, float *xa) {
    rcv_graph *g = m->g;
    rcv_recipe rec;
    if (rcv_recipe_init(&rec, rc, m) || rcv_graph_plan(g, B, be)) {
        CHECK(0, "recipe %s on %s: %s", rcv_recipe_name(rc->kind), be == RCV_BACKEND_CUDA ? "cuda" : "cpu", rcv_error());
        return NAN;
    }
    rcv_graph_set_training(g, 1);
    rcv_rng_init(&g->rng, 5); // dropout stream
    rcv_graph_upload(g, g->nodes[m->input].out, x, (size_t)B * PER * sizeof(float));
    rcv_graph_upload(g, g->nodes[m->labels].idata, y, (size_t)B * sizeof(int32_t));
    rcv_rng rng;
    rcv_rng_init(&rng, 9);
    float loss = rcv_recipe_step(&rec, &rng);
    rcv_graph_grads_to_host(g);
    memcpy(grads, g->grads, g->n_param_floats * sizeof(float));
    memcpy(xa, rec.xa, (size_t)B * PER * sizeof(float)); // TRADES' x' (scratch for the others)
    rcv_recipe_free(&rec);
    return loss;
}

static void recipes(const float *x, const int32_t *y) {
    rcv_recipe_kind kinds[] = {RCV_RECIPE_STANDARD, RCV_RECIPE_FGSM, RCV_RECIPE_KURAKIN, RCV_RECIPE_STABILITY,
                               RCV_RECIPE_AUGMIX,   RCV_RECIPE_PGD,  RCV_RECIPE_TRADES,  RCV_RECIPE_NOISE};
    for (size_t r = 0; r < sizeof kinds / sizeof kinds[0]; r++) {
        rcv_model mc, mg;
        test_build_smallcnn(&mc, C, H, W, K, 21);
        test_build_smallcnn(&mg, C, H, W, K, 21);
        same_weights(&mg, &mc);
        rcv_recipe_cfg rc;
        rcv_recipe_defaults(&rc);
        rc.kind = kinds[r];
        rc.trades_steps = 3, rc.pgd_steps = 3, rc.augmix.width = 2;
        float *gc = rcv_xmalloc(mc.g->n_param_floats * sizeof(float)), *gg = rcv_xmalloc(mc.g->n_param_floats * sizeof(float));
        float *xa_c = rcv_xmalloc((size_t)B * PER * sizeof(float)), *xa_g = rcv_xmalloc((size_t)B * PER * sizeof(float));
        float lc = recipe_step(&mc, RCV_BACKEND_CPU, &rc, x, y, gc, xa_c), lg = recipe_step(&mg, DEV, &rc, x, y, gg, xa_g);
        double worst = 0;
        for (int p = 0; p < mc.g->n_params; p++) {
            const rcv_param *pi = &mc.g->param_info[p];
            if (pi->kind != RCV_PARAM) continue;
            double e = max_rel_err(gg + pi->offset, gc + pi->offset, pi->numel, 1e-6);
            if (e > worst) worst = e;
        }
        printf("recipe %-20s loss cpu %.6f cuda %.6f, worst gradient error %.3g\n", rcv_recipe_name(kinds[r]), lc, lg,
               worst);
        CHECK(fabs(lc - lg) <= 1e-4 * fmax(1, fabs(lc)), "recipe %s: loss cpu %.7f, cuda %.7f", rcv_recipe_name(kinds[r]),
              lc, lg);
        double tol = kinds[r] == RCV_RECIPE_TRADES ? 3e-2 : 1e-3;
        CHECK(worst <= tol, "recipe %s: a parameter gradient differs by %.3g of its scale (tolerance %g)",
              rcv_recipe_name(kinds[r]), worst, tol);
        if (kinds[r] == RCV_RECIPE_TRADES) compare_frac("trades x'", xa_c, xa_g, (size_t)B * PER, 0.02);
        free(gc);
        free(gg);
        free(xa_c);
        free(xa_g);
        rcv_model_free(&mc);
        rcv_model_free(&mg);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *as = getenv("RCV_TEST_DEVICE");
    if (as && !strcmp(as, "ref")) DEV = RCV_BACKEND_REF, printf("RCV_TEST_DEVICE=ref: the ref backend stands in for cuda\n");
    if (DEV == RCV_BACKEND_CUDA && rcv_backend_check(RCV_BACKEND_CUDA)) {
        char why[512];
        snprintf(why, sizeof why, "%s", rcv_error());
        CHECK(strstr(why, "no CUDA device/driver: ") == why, "no-GPU message: '%s'", why);
        const char *bin = getenv("RCV_BIN");
        if (bin) { // the attack verb refuses with the same message and exit 1, before reading anything
            const char *dir = test_tmpdir("cuda_attack");
            int rc = test_sh("%s attack --device cuda --checkpoint %s/none.safetensors 2>%s/err.txt", bin, dir, dir);
            CHECK(rc == 1, "robustcv attack --device cuda without a GPU: exit %d, expected 1", rc);
            CHECK(test_sh("grep -q 'no CUDA device/driver: ' %s/err.txt", dir) == 0, "attack: message lacks the reason");
        }
        int failed = rcv_test_fail;
        printf("SKIP: no CUDA device (%s)\n", why);
        return failed ? test_done() : 0;
    }
    ops();
    float *x = rcv_xmalloc((size_t)N * PER * sizeof(float));
    int32_t y[N], tgt[N];
    fill_uniform(x, (size_t)N * PER, 3, 0, 1);
    for (int i = 0; i < N; i++) y[i] = (3 * i) % K, tgt[i] = (3 * i + 1) % K;
    rcv_model mc, mg;
    test_build_smallcnn(&mc, C, H, W, K, 17);
    test_build_smallcnn(&mg, C, H, W, K, 17);
    same_weights(&mg, &mc);
    if (rcv_attack_prepare(&mc, B, RCV_BACKEND_CPU) || rcv_attack_prepare(&mg, B, DEV)) {
        CHECK(0, "prepare: %s", rcv_error());
        return test_done();
    }
    if (!getenv("RCV_TEST_RECIPES_ONLY")) attacks(&mc, &mg, x, y, tgt); // (set: sections 0 and 2 only)
    rcv_model_free(&mc);
    rcv_model_free(&mg);
    recipes(x, y);
    free(x);
    return test_done();
}
