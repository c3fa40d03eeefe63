// Attacks and robust-training recipes against independent references:
//   - FGSM, PGD (L-inf, L2, targeted) examples vs torchattacks (or its formulas written out in
//     tests/oracle/attack_ref.py) on the same weights, eval mode, within 1e-5;
//   - every recipe's loss and parameter gradients vs the same loss written in PyTorch (TRADES also
//     the adversarial batch its inner maximisation reaches, from the same 0.001 N(0, I) start);
//   - AugMix's point ops vs PIL's ImageOps;
//   - DeepFool on a linear model vs its closed form;
//   - UAP on a smallcnn trained here for a few seconds on Fashion-MNIST reaches its target fooling
//     rate (recounted independently), within its norm ball;
//   - norm bounds and [0, 1] for every attack; ensemble gradient = mean of the models' gradients;
//     restarts never lose a success; snapshots at cycle ends; `robustcv search` leaderboard.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/attack.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/init.h"
#include "robustcv/json.h"
#include "robustcv/ops.h"
#include "robustcv/recipe.h"
#include "robustcv/safetensors.h"
#include "robustcv/train.h"
#include "testutil.h"

#define N 4
#define H 8
#define W 8
#define C 1
#define K 10
#define PER (H * W * C)

// Settings shared with the oracle through the case file's metadata.
static const float FGSM_EPS = 0.03f, PGD_EPS = 0.05f, PGD_ALPHA = 0.01f, L2_EPS = 0.3f, L2_ALPHA = 0.1f;
static const int PGD_STEPS = 5, ADV_K = 2;
static const float FGSM_ALPHA = 0.5f, ADV_EPS = 0.04f, LAMBDA = 0.5f, STAB_ALPHA = 3.0f, JSD_LAMBDA = 100.0f; // large, so the KL and JSD terms weigh in the gradients
static const float TR_PGD_EPS = 0.1f, TR_PGD_STEPS = 3;
static const float TRADES_BETA = 6, TRADES_EPS = 0.1f, TRADES_STEP = 0.03f, TRADES_STEPS = 3, NOISE_SIGMA = 0.25f;

static float linf_dist(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

static int in01(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(a[i] >= 0 && a[i] <= 1)) return 0;
    return 1;
}

static void build_small(rcv_model *m, uint64_t seed) { test_build_smallcnn(m, C, H, W, K, seed); }

static rcv_st_writer *case_w;
static void add_f32(const char *name, const float *x, int ndim, const int64_t *shape) {
    rcv_st_add(case_w, name, RCV_DT_F32, ndim, shape, x);
}
static void meta_f(const char *k, double v) {
    char b[64];
    snprintf(b, sizeof b, "%.9g", v);
    rcv_st_add_meta(case_w, k, b);
}

typedef struct {
    float *params, *buffers;
    int64_t *ibuf;
} state_t;
static void save_state(rcv_graph *g, state_t *s) {
    s->params = rcv_xmalloc(g->n_param_floats * sizeof(float));
    s->buffers = rcv_xmalloc(g->n_buffer_floats * sizeof(float));
    s->ibuf = rcv_xmalloc((g->n_ibuffers + 1) * sizeof(int64_t));
    memcpy(s->params, g->params, g->n_param_floats * sizeof(float));
    memcpy(s->buffers, g->buffers, g->n_buffer_floats * sizeof(float));
    memcpy(s->ibuf, g->ibuffers, g->n_ibuffers * sizeof(int64_t));
}
static void restore_state(rcv_graph *g, const state_t *s) {
    memcpy(g->params, s->params, g->n_param_floats * sizeof(float));
    memcpy(g->buffers, s->buffers, g->n_buffer_floats * sizeof(float));
    memcpy(g->ibuffers, s->ibuf, g->n_ibuffers * sizeof(int64_t));
}

// Our recipe results, kept until the oracle has run.
#define N_RECIPES 8
static const char *const recipe_names[N_RECIPES] = {"standard", "fgsm", "kurakin", "stability",
                                                    "augmix",   "pgd",  "trades",  "noise"};
static float *our_grads[N_RECIPES], our_loss[N_RECIPES];

static void compare_grads(const rcv_safetensors *ref, rcv_graph *g, const char *rname, const float *ours, float loss) {
    char key[160];
    snprintf(key, sizeof key, "%s.loss", rname);
    float rl;
    if (rcv_st_read_f32(ref, key, &rl, 1)) {
        CHECK(0, "%s", rcv_error());
        return;
    }
    double worst = 0;
    const char *worst_name = "";
    for (int p = 0; p < g->n_params; p++) {
        rcv_param *pi = &g->param_info[p];
        if (pi->kind != RCV_PARAM) continue;
        snprintf(key, sizeof key, "%s.grad.%s", rname, pi->name);
        float *r = rcv_xmalloc(pi->numel * sizeof(float));
        if (rcv_st_read_f32(ref, key, r, pi->numel)) {
            CHECK(0, "%s", rcv_error());
            free(r);
            return;
        }
        double e = max_rel_err(ours + pi->offset, r, pi->numel, 1e-3);
        if (e > worst) worst = e, worst_name = pi->name;
        free(r);
    }
    printf("recipe %-10s loss ours %.7f ref %.7f (rel %.2e); gradients max rel err %.2e (%s)\n", rname, loss, rl,
           fabs(loss - rl) / fabs(rl), worst, worst_name);
    CHECK(fabs(loss - rl) <= 1e-5 * fabs(rl) + 1e-6, "%s loss %.8f vs %.8f", rname, loss, rl);
    CHECK(worst < 2e-4, "%s gradient rel err %.3e at %s", rname, worst, worst_name);
}

static void test_oracle(void) {
    rcv_model m;
    build_small(&m, 3);
    rcv_graph *g = m.g;
    if (rcv_attack_prepare(&m, N, RCV_BACKEND_CPU)) {
        CHECK(0, "%s", rcv_error());
        return;
    }
    float x[N * PER], xn[N * PER], a1[N * PER], a2[N * PER], adv[4][N * PER];
    int32_t y[N] = {1, 4, 7, 2}, t[N] = {3, 3, 0, 5};
    int64_t y64[N], t64[N];
    fill_uniform(x, N * PER, 11, 0.0f, 1.0f);
    for (int i = 0; i < N; i++) y64[i] = y[i], t64[i] = t[i];
    rcv_rng rng;
    rcv_rng_init(&rng, 5);
    // Random views as the recipes draw them (noise larger than the default 0.1 * std so the KL term
    // is not negligible), AugMix.
    rcv_rng_fill_normal(&rng, xn, N * PER, 0, 1);
    for (int e = 0; e < N * PER; e++) xn[e] = x[e] + 0.3f * xn[e];
    rcv_augmix_cfg ac = {3, -1, 3};
    rcv_augmix(&ac, x, N, H, W, C, &rng, a1);
    rcv_augmix(&ac, x, N, H, W, C, &rng, a2);

    // --- attacks (eval mode) ---
    rcv_model *mp = &m;
    rcv_fgsm_cfg fc = {FGSM_EPS, 0};
    rcv_pgd_cfg pc;
    rcv_pgd_defaults(&pc, RCV_NORM_LINF);
    pc.eps = PGD_EPS, pc.alpha = PGD_ALPHA, pc.steps = PGD_STEPS, pc.random_start = 0;
    rcv_pgd_cfg p2;
    rcv_pgd_defaults(&p2, RCV_NORM_L2);
    p2.eps = L2_EPS, p2.alpha = L2_ALPHA, p2.steps = PGD_STEPS, p2.random_start = 0;
    state_t s0;
    save_state(g, &s0);
    rcv_attack_fgsm(&mp, 1, x, y, N, &fc, adv[0]);
    rcv_attack_pgd(&mp, 1, x, y, N, &pc, &rng, adv[1]);
    rcv_attack_pgd(&mp, 1, x, y, N, &p2, &rng, adv[2]);
    pc.targeted = 1;
    rcv_attack_pgd(&mp, 1, x, t, N, &pc, &rng, adv[3]);
    restore_state(g, &s0);

    // --- recipes (train mode), each from the same state ---
    rcv_recipe_cfg rc;
    rcv_recipe_defaults(&rc);
    rc.fgsm_alpha = FGSM_ALPHA, rc.adv_eps = ADV_EPS, rc.adv_k = ADV_K, rc.lambda = LAMBDA;
    rc.stab_alpha = STAB_ALPHA, rc.jsd_lambda = JSD_LAMBDA;
    rc.pgd_eps = TR_PGD_EPS, rc.pgd_alpha = TR_PGD_EPS / 4, rc.pgd_steps = (int)TR_PGD_STEPS, rc.pgd_random_start = 0;
    rc.trades_beta = TRADES_BETA, rc.trades_eps = TRADES_EPS, rc.trades_step = TRADES_STEP;
    rc.trades_steps = (int)TRADES_STEPS, rc.noise_sigma = NOISE_SIGMA;
    rcv_recipe_kind kinds[N_RECIPES] = {RCV_RECIPE_STANDARD, RCV_RECIPE_FGSM,  RCV_RECIPE_KURAKIN, RCV_RECIPE_STABILITY,
                                        RCV_RECIPE_AUGMIX,   RCV_RECIPE_PGD,   RCV_RECIPE_TRADES,  RCV_RECIPE_NOISE};
    // trades and noise draw their normals (the first N * PER of the step's rng) inside the step; the
    // same draws from a copy of the generator give the oracle its start x + 0.001 n and x + sigma n.
    float trades_start[N * PER], trades_adv[N * PER], noise_x[N * PER], draw[N * PER];
    for (int r = 0; r < N_RECIPES; r++) {
        restore_state(g, &s0);
        rc.kind = kinds[r];
        rcv_recipe rec;
        if (rcv_recipe_init(&rec, &rc, &m) || rcv_graph_plan(g, N, RCV_BACKEND_CPU)) {
            CHECK(0, "%s", rcv_error());
            return;
        }
        rcv_graph_set_training(g, 1);
        memcpy(g->nodes[m.input].out, x, sizeof x);
        memcpy(g->nodes[m.labels].idata, y, sizeof y);
        rcv_rng before = rng;
        our_loss[r] = kinds[r] == RCV_RECIPE_STABILITY ? rcv_recipe_stability_step(&rec, xn)
                    : kinds[r] == RCV_RECIPE_AUGMIX    ? rcv_recipe_augmix_step(&rec, a1, a2)
                                                       : rcv_recipe_step(&rec, &rng);
        if (kinds[r] == RCV_RECIPE_TRADES || kinds[r] == RCV_RECIPE_NOISE) {
            rcv_rng_fill_normal(&before, draw, N * PER, 0, 1);
            for (int e = 0; e < N * PER; e++) {
                if (kinds[r] == RCV_RECIPE_TRADES) trades_start[e] = x[e] + 0.001f * draw[e];
                else noise_x[e] = x[e] + NOISE_SIGMA * draw[e];
            }
            if (kinds[r] == RCV_RECIPE_TRADES) memcpy(trades_adv, rec.xa, sizeof trades_adv);
        }
        our_grads[r] = rcv_xmalloc(g->n_param_floats * sizeof(float));
        memcpy(our_grads[r], g->grads, g->n_param_floats * sizeof(float));
        rcv_recipe_free(&rec);
    }
    restore_state(g, &s0);

    // --- the case file and the oracle ---
    const char *dir = test_tmpdir("attack");
    case_w = rcv_st_writer_new();
    rcv_st_add_graph(case_w, g);
    int64_t sh4[4] = {N, H, W, C}, sh1[1] = {N}, shi[3] = {8, 8, 3};
    add_f32("x", x, 4, sh4);
    add_f32("x_noisy", xn, 4, sh4);
    add_f32("aug1", a1, 4, sh4);
    add_f32("aug2", a2, 4, sh4);
    add_f32("trades_start", trades_start, 4, sh4);
    add_f32("noise_x", noise_x, 4, sh4);
    rcv_st_add(case_w, "y", RCV_DT_I64, 1, sh1, y64);
    rcv_st_add(case_w, "t", RCV_DT_I64, 1, sh1, t64);
    float img[8 * 8 * 3];
    for (int e = 0; e < 8 * 8 * 3; e++) img[e] = (float)((e * 37 + (e / 3) * 11) % 200 + 20) / 255.0f;
    add_f32("aug_in", img, 3, shi);
    rcv_st_add_meta(case_w, "in_c", "1");
    rcv_st_add_meta(case_w, "n_classes", "10");
    meta_f("mean", 0.3f), meta_f("std", 0.4f), meta_f("fgsm_eps", FGSM_EPS), meta_f("pgd_eps", PGD_EPS);
    meta_f("pgd_alpha", PGD_ALPHA), meta_f("l2_eps", L2_EPS), meta_f("l2_alpha", L2_ALPHA);
    meta_f("pgd_steps", PGD_STEPS), meta_f("fgsm_alpha", FGSM_ALPHA), meta_f("adv_eps", ADV_EPS);
    meta_f("adv_k", ADV_K), meta_f("lambda", LAMBDA), meta_f("stab_alpha", STAB_ALPHA);
    meta_f("jsd_lambda", JSD_LAMBDA), meta_f("tr_pgd_eps", TR_PGD_EPS), meta_f("tr_pgd_alpha", TR_PGD_EPS / 4);
    meta_f("tr_pgd_steps", TR_PGD_STEPS);
    meta_f("trades_beta", TRADES_BETA), meta_f("trades_eps", TRADES_EPS), meta_f("trades_step", TRADES_STEP);
    meta_f("trades_steps", TRADES_STEPS);
    char path[512];
    snprintf(path, sizeof path, "%s/case.safetensors", dir);
    CHECK(rcv_st_write(case_w, path) == 0, "%s", rcv_error());
    rcv_st_writer_free(case_w);
    int rcode = test_sh("/usr/bin/python3 tests/oracle/attack_ref.py %s", dir);
    if (rcode == 77 || rcode == 127) {
        printf("SKIP PyTorch oracle: /usr/bin/python3 with torch is not available\n");
    } else if (rcode != 0) {
        CHECK(0, "tests/oracle/attack_ref.py exited %d", rcode);
    } else {
        rcv_safetensors ref;
        snprintf(path, sizeof path, "%s/ref.safetensors", dir);
        if (rcv_st_open(&ref, path)) {
            CHECK(0, "%s", rcv_error());
        } else {
            const char *an[4] = {"adv.fgsm", "adv.pgd", "adv.pgd_l2", "adv.pgd_t"};
            for (int a = 0; a < 4; a++) {
                float r[N * PER];
                if (rcv_st_read_f32(&ref, an[a], r, N * PER)) {
                    CHECK(0, "%s", rcv_error());
                    continue;
                }
                double e = max_abs_err(adv[a], r, N * PER);
                int moved = 0;
                for (int i = 0; i < N * PER; i++) moved += adv[a][i] != x[i];
                printf("%-10s vs PyTorch: max abs err %.2e (%d of %d pixels moved)\n", an[a], e, moved, N * PER);
                CHECK(e <= 1e-5, "%s max abs err %.3e", an[a], e);
                CHECK(moved > N * PER / 2, "%s moved only %d pixels", an[a], moved);
            }
            for (int r = 0; r < N_RECIPES; r++) compare_grads(&ref, g, recipe_names[r], our_grads[r], our_loss[r]);
            // trades = standard + beta KL: the KL term must weigh in for the comparison to mean anything
            double kl_part = max_rel_err(our_grads[6], our_grads[0], g->n_param_floats, 1e-3);
            printf("trades gradient vs standard (the KL term's share): max rel diff %.2e\n", kl_part);
            CHECK(kl_part > 1e-2, "trades' KL term barely changes the gradient (%.3e)", kl_part);
            // TRADES' inner maximisation: the x' it reached from the same start
            float r_adv[N * PER];
            if (rcv_st_read_f32(&ref, "trades.x_adv", r_adv, N * PER)) {
                CHECK(0, "%s", rcv_error());
            } else {
                double e = max_abs_err(trades_adv, r_adv, N * PER), e0 = max_abs_err(trades_adv, trades_start, N * PER);
                printf("trades x_adv vs PyTorch: max abs err %.2e (moved up to %.4f from its start)\n", e, e0);
                CHECK(e <= 1e-5, "trades x_adv max abs err %.3e", e);
                CHECK(e0 > TRADES_STEP, "trades inner maximisation did not move (%.4f)", e0);
            }
            const char *ops[4] = {"autocontrast", "equalize", "posterize", "solarize"};
            rcv_aug_op codes[4] = {RCV_AUG_AUTOCONTRAST, RCV_AUG_EQUALIZE, RCV_AUG_POSTERIZE, RCV_AUG_SOLARIZE};
            float vals[4] = {0, 0, 3, 128};
            for (int o = 0; o < 4; o++) {
                char key[64];
                float r[8 * 8 * 3], ours[8 * 8 * 3];
                snprintf(key, sizeof key, "pil.%s", ops[o]);
                if (!rcv_st_find(&ref, key)) {
                    printf("SKIP %s vs PIL: no reference\n", ops[o]);
                    continue;
                }
                rcv_st_read_f32(&ref, key, r, 8 * 8 * 3);
                memcpy(ours, img, sizeof img);
                rcv_aug_apply(codes[o], vals[o], ours, 8, 8, 3);
                double e = max_abs_err(ours, r, 8 * 8 * 3);
                printf("augmix %-12s vs PIL ImageOps: max abs err %.2e\n", ops[o], e);
                CHECK(e < 1e-6, "%s differs from PIL by %.3e", ops[o], e);
            }
            rcv_st_close(&ref);
        }
    }
    for (int r = 0; r < N_RECIPES; r++) free(our_grads[r]);

    // --- bounds and [0, 1] with random starts and restarts; worst-case restarts keep successes ---
    rcv_graph_plan(g, N, RCV_BACKEND_CPU);
    float b1[N * PER], b3[N * PER];
    pc.targeted = 0, pc.random_start = 1, pc.steps = 2, pc.eps = 0.02f, pc.alpha = 0.01f;
    rcv_rng r1, r3;
    rcv_rng_init(&r1, 9);
    r3 = r1;
    rcv_attack_pgd(&mp, 1, x, y, N, &pc, &r1, b1);
    pc.restarts = 3;
    rcv_attack_pgd(&mp, 1, x, y, N, &pc, &r3, b3);
    CHECK(linf_dist(b1, x, N * PER) <= pc.eps + 1e-6 && linf_dist(b3, x, N * PER) <= pc.eps + 1e-6, "pgd exceeds eps");
    CHECK(in01(b1, N * PER) && in01(b3, N * PER), "pgd left [0, 1]");
    int32_t q1[N], q3[N];
    rcv_attack_predict(&m, b1, N, q1);
    rcv_attack_predict(&m, b3, N, q3);
    int kept = 1;
    for (int i = 0; i < N; i++) kept &= q1[i] == y[i] || q3[i] != y[i];
    CHECK(kept, "a restart lost a success of the first run");
    p2.random_start = 1, p2.restarts = 2;
    rcv_attack_pgd(&mp, 1, x, y, N, &p2, &rng, b1);
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int e = 0; e < PER; e++) s += (b1[i * PER + e] - x[i * PER + e]) * (b1[i * PER + e] - x[i * PER + e]);
        CHECK(sqrt(s) <= p2.eps + 1e-5, "pgd-l2 sample %d norm %.6f > eps %.6f", i, sqrt(s), p2.eps);
    }
    CHECK(in01(b1, N * PER), "pgd-l2 left [0, 1]");

    // --- ensemble gradient = mean of the two models' gradients (transfer crafting) ---
    rcv_model m2;
    build_small(&m2, 4);
    rcv_attack_prepare(&m2, N, RCV_BACKEND_CPU);
    rcv_model *both[2] = {&m, &m2};
    float ga[N * PER], gb[N * PER], ge[N * PER], la[N], lb[N], le[N];
    rcv_attack_input_grad(both, 1, x, y, N, 0, ga, la);
    rcv_attack_input_grad(both + 1, 1, x, y, N, 0, gb, lb);
    rcv_attack_input_grad(both, 2, x, y, N, 0, ge, le);
    for (int e = 0; e < N * PER; e++) ga[e] = 0.5f * (ga[e] + gb[e]);
    for (int i = 0; i < N; i++) la[i] = 0.5f * (la[i] + lb[i]);
    CHECK(max_rel_err(ge, ga, N * PER, 1e-6) < 1e-5, "ensemble gradient is not the mean");
    CHECK(max_rel_err(le, la, N, 1e-6) < 1e-5, "ensemble loss is not the mean");
    // transfer = PGD on the sources, scored on the target
    rcv_transfer_cfg tc = {RCV_TRANSFER_FGSM, fc, pc};
    rcv_attack_stats st = {0};
    CHECK(rcv_attack_transfer(both + 1, 1, &m, &tc, x, y, N, &rng, b1, &st) == 0, "%s", rcv_error());
    rcv_attack_fgsm(both + 1, 1, x, y, N, &fc, b3);
    CHECK(max_abs_err(b1, b3, N * PER) == 0, "transfer examples differ from FGSM on the source");
    int32_t p0[N], pa[N];
    rcv_attack_predict(&m, x, N, p0);
    rcv_attack_predict(&m, b1, N, pa);
    long cc = 0, acc = 0, ch = 0;
    for (int i = 0; i < N; i++) { cc += p0[i] == y[i]; acc += pa[i] == y[i]; ch += p0[i] != pa[i]; }
    CHECK(st.n == N && st.clean_correct == cc && st.adv_correct == acc && st.changed == ch, "transfer stats");

    // --- generator: bounded perturbations, L-inf and L2 ---
    for (int nm = 0; nm < 2; nm++) {
        rcv_gen_cfg gc;
        rcv_gen_defaults(&gc);
        gc.norm = nm ? RCV_NORM_L2 : RCV_NORM_LINF;
        gc.eps = nm ? 0.5f : 0.05f;
        rcv_generator gen;
        float ga2[N * PER];
        if (rcv_generator_build(&gen, C, H, W, &gc) || rcv_generator_train(&gen, &m, x, y, N, &rng, NULL) ||
            rcv_generator_apply(&gen, x, N, ga2)) {
            CHECK(0, "%s", rcv_error());
            continue;
        }
        CHECK(in01(ga2, N * PER), "generator left [0, 1]");
        if (!nm) CHECK(linf_dist(ga2, x, N * PER) <= gc.eps + 1e-6, "generator linf %.6f", linf_dist(ga2, x, N * PER));
        else
            for (int i = 0; i < N; i++) {
                double s = 0;
                for (int e = 0; e < PER; e++) s += (ga2[i * PER + e] - x[i * PER + e]) * (ga2[i * PER + e] - x[i * PER + e]);
                CHECK(sqrt(s) <= gc.eps + 1e-5, "generator l2 %.6f", sqrt(s));
            }
        rcv_generator_free(&gen);
    }
    free(s0.params), free(s0.buffers), free(s0.ibuf);
    rcv_model_free(&m2);
    rcv_model_free(&m);
}

// DeepFool on f(x) = W x + b (3 classes, 4x4 input): one step lands at the closed form
// x + (1 + overshoot) (|f'_l| / ||w'_l|| + 1e-4) w'_l / ||w'_l||, l = argmin_k |f'_k| / ||w'_k||.
static void test_deepfool_linear(void) {
    rcv_model m;
    memset(&m, 0, sizeof m);
    rcv_model_cfg_defaults(&m.cfg);
    m.cfg.in_c = 1, m.cfg.in_h = 4, m.cfg.in_w = 4, m.cfg.n_classes = 3;
    snprintf(m.name, sizeof m.name, "linear");
    rcv_graph *g = m.g = rcv_graph_new();
    float mean[1] = {0}, sd[1] = {1};
    m.input = rcv_input(g, "input", 1, 4, 4);
    int x = rcv_normalize(g, "normalize", m.input, mean, sd);
    x = rcv_flatten(g, "flatten", x);
    m.logits = rcv_linear(g, "fc", x, 3, 1);
    m.labels = rcv_labels(g, "labels");
    m.loss = rcv_cross_entropy(g, "loss", m.logits, m.labels, 0);
    rcv_rng root;
    rcv_rng_init(&root, 1);
    rcv_init_default(g, &root);
    float *Wt = rcv_param_data(g, rcv_graph_find_param(g, "fc.weight")), *b = rcv_param_data(g, rcv_graph_find_param(g, "fc.bias"));
    fill_uniform(Wt, 48, 21, -0.5f, 0.5f);
    b[0] = 1.0f, b[1] = 0.2f, b[2] = -0.3f;
    CHECK(rcv_attack_prepare(&m, 2, RCV_BACKEND_CPU) == 0, "%s", rcv_error());
    float x0[2 * 16], adv[2 * 16];
    fill_uniform(x0, 32, 22, 0.45f, 0.55f);
    rcv_deepfool_cfg dc;
    rcv_deepfool_defaults(&dc);
    int iters[2];
    rcv_attack_deepfool(&m, x0, 2, &dc, adv, iters);
    for (int i = 0; i < 2; i++) {
        double f[3];
        for (int k = 0; k < 3; k++) {
            f[k] = b[k];
            for (int e = 0; e < 16; e++) f[k] += (double)Wt[k * 16 + e] * x0[i * 16 + e];
        }
        int y = f[1] > f[0] ? 1 : 0;
        y = f[2] > f[y] ? 2 : y;
        int l = -1;
        double best = 1e30, wn = 0;
        for (int k = 0; k < 3; k++) {
            if (k == y) continue;
            double s = 0;
            for (int e = 0; e < 16; e++) s += pow((double)Wt[k * 16 + e] - Wt[y * 16 + e], 2);
            double p = fabs(f[k] - f[y]) / sqrt(s);
            if (p < best) best = p, l = k, wn = sqrt(s);
        }
        float expect[16];
        for (int e = 0; e < 16; e++)
            expect[e] = (float)(x0[i * 16 + e] + (1 + dc.overshoot) * (best + 1e-4) * (Wt[l * 16 + e] - Wt[y * 16 + e]) / wn);
        double err = max_abs_err(adv + i * 16, expect, 16);
        double fl = b[l] - b[y];
        for (int e = 0; e < 16; e++) fl += (double)(Wt[l * 16 + e] - Wt[y * 16 + e]) * adv[i * 16 + e];
        printf("deepfool linear sample %d: class %d -> %d in %d step(s), |x_adv - closed form| %.2e, f_l - f_y %.2e\n", i,
               y, l, iters[i], err, fl);
        CHECK(iters[i] == 1, "deepfool took %d iterations on a linear model", iters[i]);
        CHECK(err < 1e-5, "deepfool vs closed form %.3e", err);
        CHECK(fl > 0, "deepfool point did not cross the boundary");
    }
    rcv_model_free(&m);
}

// A smallcnn trained here for a few seconds; UAP must reach its target fooling rate within xi.
static void test_uap_and_training(void) {
    const char *dir = test_tmpdir("attack_train");
    rcv_train_cfg tc;
    rcv_train_cfg_defaults(&tc);
    tc.epochs = 6, tc.batch = 50, tc.subset = 300, tc.quiet = 1;
    snprintf(tc.sched, sizeof tc.sched, "cyclic:high=0.05,low=0.01,step_size=1"); // cycles of 3 epochs
    snprintf(tc.out_dir, sizeof tc.out_dir, "%s/run", dir);
    if (rcv_train_run(&tc)) {
        CHECK(0, "train: %s", rcv_error());
        return;
    }
    char p[600];
    int have[4];
    for (int k = 1; k <= 3; k++) {
        snprintf(p, sizeof p, "%s/run/snapshot_%d.safetensors", dir, k);
        FILE *f = fopen(p, "rb");
        have[k] = f != NULL;
        if (f) fclose(f);
    }
    CHECK(have[1] && have[2] && !have[3], "snapshots after epochs 3 and 6 only: %d %d %d", have[1], have[2], have[3]);
    snprintf(p, sizeof p, "%s/run/last.safetensors", dir);
    rcv_model m;
    rcv_dataset d = {0};
    if (rcv_ckpt_load_model(p, &m, NULL) || rcv_data_open("fashion-mnist", 0, &d)) {
        CHECK(0, "%s", rcv_error());
        return;
    }
    int n = 64;
    size_t per = 28 * 28;
    float *x = rcv_xmalloc(n * per * sizeof(float)), *xa = rcv_xmalloc(n * per * sizeof(float));
    int32_t y[64], p0[64], p1[64];
    int idx[64];
    for (int i = 0; i < n; i++) idx[i] = i;
    rcv_dataset_batch(&d, idx, n, x, y);
    rcv_attack_prepare(&m, n, RCV_BACKEND_CPU);
    rcv_uap_cfg uc;
    rcv_uap_defaults(&uc, RCV_NORM_LINF);
    uc.xi = 0.2f, uc.delta = 0.4f, uc.max_passes = 4, uc.classes = 3, uc.max_iter = 10;
    float v[28 * 28], fool = 0;
    int passes = 0;
    rcv_rng rng;
    rcv_rng_init(&rng, 3);
    double t0 = 0;
    (void)t0;
    CHECK(rcv_attack_uap(&m, x, n, &uc, &rng, v, &fool, &passes) == 0, "%s", rcv_error());
    rcv_uap_apply(v, x, n, per, xa);
    rcv_attack_predict(&m, x, n, p0);
    rcv_attack_predict(&m, xa, n, p1);
    int changed = 0;
    float vmax = 0;
    for (int i = 0; i < n; i++) changed += p0[i] != p1[i];
    for (size_t e = 0; e < per; e++) vmax = fmaxf(vmax, fabsf(v[e]));
    printf("uap: fooling rate %.3f (recounted %.3f) after %d pass(es), target %.2f, ||v||_inf %.4f <= xi %.2f\n", fool,
           (double)changed / n, passes, 1 - uc.delta, vmax, uc.xi);
    CHECK(fool >= 1 - uc.delta, "uap fooling rate %.3f below target %.3f", fool, 1 - uc.delta);
    CHECK(fabs(fool - (double)changed / n) < 1e-6, "uap fooling rate %.4f, recounted %.4f", fool, (double)changed / n);
    CHECK(vmax <= uc.xi + 1e-6, "uap ||v||_inf %.5f > xi", vmax);
    uc.p = RCV_NORM_L2, uc.xi = 3.0f, uc.max_passes = 1;
    rcv_attack_uap(&m, x, n, &uc, &rng, v, &fool, &passes);
    double s = 0;
    for (size_t e = 0; e < per; e++) s += (double)v[e] * v[e];
    CHECK(sqrt(s) <= uc.xi + 1e-4, "uap ||v||_2 %.5f > xi", sqrt(s));
    free(x);
    free(xa);
    rcv_dataset_free(&d);
    rcv_model_free(&m);

    // robustcv search: two trials ranked by test top-1, values inside the range
    const char *bin = getenv("RCV_BIN");
    if (!bin) {
        printf("SKIP search: RCV_BIN not set\n");
        return;
    }
    int rc = test_sh("%s search --param lr=1e-3:1e-1:log --trials 2 --epochs 1 --subset 100 --batch 50 --out %s/search "
                     "--quiet > %s/search.txt", bin, dir, dir);
    CHECK(rc == 0, "search exited %d", rc);
    snprintf(p, sizeof p, "%s/search/leaderboard.json", dir);
    rcv_json_value jv;
    uint8_t *data;
    size_t len;
    if (rcv_file_read(p, &data, &len) || rcv_json_parse((char *)data, len, &jv)) {
        CHECK(0, "%s", rcv_error());
        return;
    }
    const rcv_json_value *tr = rcv_json_get(&jv, "trials");
    CHECK(tr && tr->n == 2, "leaderboard has %d trials", tr ? tr->n : -1);
    if (tr && tr->n == 2) {
        double a = rcv_json_get(&tr->items[0], "test_top1")->num, b2 = rcv_json_get(&tr->items[1], "test_top1")->num;
        double l0 = rcv_json_get(&tr->items[0], "lr")->num, l1 = rcv_json_get(&tr->items[1], "lr")->num;
        CHECK(a >= b2, "leaderboard not sorted: %g < %g", a, b2);
        CHECK(l0 >= 1e-3 && l0 <= 1e-1 && l1 >= 1e-3 && l1 <= 1e-1 && l0 != l1, "lr samples %g %g", l0, l1);
    }
    rcv_json_free(&jv);
    free(data);
    test_sh("rm -rf %s", dir);
}

int main(void) {
    test_oracle();
    test_deepfool_linear();
    test_uap_and_training();
    return test_done();
}
