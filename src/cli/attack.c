// robustcv attack: craft adversarial examples against a checkpoint and report clean accuracy,
// adversarial accuracy, attack success rate and fooling rate (docs/attacks.md defines them).
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/attack_robust.h"
#include "cli/cli.h"
#include "robustcv/attack.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/image.h"
#include "robustcv/json.h"
#include "robustcv/train.h"
#include "train/progress.h"

static const char *const attack_names = "fgsm, pgd, pgd-l2, deepfool, uap, generator, transfer, noise, apgd-ce, "
                                         "apgd-dlr, apgd-t, autoattack, fab-t, square, cw";

// x (h, w, c) in [0, 1] -> 8-bit PNG.
static int write_png(const char *path, const float *x, int c, int h, int w) {
    rcv_image img;
    rcv_image_alloc(&img, w, h, c);
    for (size_t e = 0; e < (size_t)c * h * w; e++) img.pix[e] = (uint8_t)lrintf(fminf(fmaxf(x[e], 0), 1) * 255.0f);
    int rc = rcv_png_write(path, &img);
    rcv_image_free(&img);
    return rc;
}

static int load_models(const char *list, rcv_model *ms, int max, int *n) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", list);
    *n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == max) return rcv_fail("--source: more than %d checkpoints", max);
        if (rcv_ckpt_load_model(t, &ms[*n], NULL)) return -1;
        (*n)++;
    }
    if (!*n) return rcv_fail("--source '%s': no checkpoint named", list);
    return 0;
}

// Up to `limit` images of a split as floats (n, h, w, c) and labels.
static int load_split(const char *spec, int train, int limit, rcv_dataset *d, float **x, int32_t **y) {
    if (rcv_data_open(spec, train, d)) return -1;
    int n = limit > 0 && limit < d->n ? limit : d->n;
    int *idx = rcv_xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) idx[i] = i;
    *x = rcv_xmalloc((size_t)n * d->c * d->h * d->w * sizeof(float));
    *y = rcv_xmalloc((size_t)n * sizeof(int32_t));
    rcv_dataset_batch(d, idx, n, *x, *y);
    free(idx);
    d->n = n;
    return 0;
}

int cli_attack(int argc, char **argv) {
    rcv_opt opts[] = {
        {"checkpoint", "FILE", "model to attack (the target; required)", NULL},
        {"data", "SPEC", "data source: fashion-mnist[:DIR] (default fashion-mnist); attacks the test split", NULL},
        {"attack", "NAME", "fgsm, pgd, pgd-l2, deepfool, uap, generator, transfer, noise, apgd-ce, apgd-dlr, apgd-t, "
                           "autoattack, fab-t, square or cw (default pgd)", NULL},
        {"version", "standard|rand", "autoattack: standard (APGD-CE, APGD-T, FAB-T, Square) or rand (APGD-CE, "
                                     "APGD-DLR with --eot-iter 20 for a randomized model; default standard)", NULL},
        {"aa-attacks", "LIST", "autoattack: run these instead (comma list of apgd-ce, apgd-dlr, apgd-t, fab-t, square)",
         NULL},
        {"noise-sigma", "X", "attack the model randomized by Gaussian input noise N(0, X^2) (autoattack rand, apgd; "
                             "default 0)", NULL},
        {"n-queries", "N", "square: queries (default 5000)", NULL},
        {"p-init", "X", "square: initial fraction of pixels changed (default 0.8)", NULL},
        {"c", "X", "cw: weight of the margin term (default 1)", NULL},
        {"kappa", "X", "cw: confidence margin (default 0)", NULL},
        {"lr", "X", "cw: Adam learning rate (default 0.01)", NULL},
        {"binary-steps", "N", "cw: binary search steps over c (default 0 = none, torchattacks' behaviour)", NULL},
        {"sigma", "X", "noise: Gaussian std in pixels, clamped to [0,1] after (default 0.1)", NULL},
        {"eps", "X", "perturbation bound in [0,1] pixel units (default 8/255 linf; pgd-l2 and apgd l2 0.5; generator 0.1)",
         NULL},
        {"alpha", "X", "PGD step size (default 2/255 linf, 0.1 l2)", NULL},
        {"steps", "N", "PGD steps (default 10); APGD, FAB and AutoAttack iterations (default 100); cw steps (default 50)",
         NULL},
        {"restarts", "N", "PGD restarts, keeping each sample's worst case; APGD restarts on the points still robust "
                          "(default 1)", NULL},
        {"rho", "X", "APGD: halve the step when the loss rose in at most rho * k of the last k steps (default 0.75)",
         NULL},
        {"n-target-classes", "N", "apgd-t: targets per image, the 2nd.. (N+1)-th largest clean logits (default 9)",
         NULL},
        {"eot-iter", "N", "APGD: gradients averaged per step (EoT, for randomized models; default 1)", NULL},
        {"random-start", "0|1", "PGD random start (default 1)", NULL},
        {"target", "CLASS", "targeted attack towards CLASS (fgsm, pgd, pgd-l2, generator, transfer)", NULL},
        {"source", "CKPT[,CKPT]", "transfer: craft on these models (gradients averaged), score on --checkpoint", NULL},
        {"transfer-attack", "NAME", "transfer: fgsm, pgd or pgd-l2 crafted on the sources (default pgd)", NULL},
        {"overshoot", "X", "DeepFool / UAP overshoot (default 0.02)", NULL},
        {"max-iter", "N", "DeepFool iteration cap (default 50; UAP's DeepFool 10)", NULL},
        {"classes", "N", "DeepFool candidate classes (default 10)", NULL},
        {"xi", "X", "UAP norm bound (default 10/255 for p inf, 2.0 for p 2)", NULL},
        {"p", "inf|2", "UAP norm (default inf)", NULL},
        {"delta", "X", "UAP: stop at fooling rate 1 - delta on its images (default 0.2)", NULL},
        {"max-passes", "N", "UAP passes over its images (default 10)", NULL},
        {"fit-images", "N", "UAP / generator: train-split images it is computed on (default 1000 / 10000)", NULL},
        {"norm", "linf|l2", "generator and APGD norm (default linf)", NULL},
        {"gen-epochs", "N", "generator training epochs (default 1)", NULL},
        {"gen-lr", "X", "generator Adam learning rate (default 1e-3)", NULL},
        {"gen-width", "N", "generator hidden channels (default 16)", NULL},
        {"limit", "N", "attack only the first N test images (default all)", NULL},
        {"batch", "N", "batch size (default 128)", NULL},
        {"out", "DIR", "write adversarial PNGs (first --save-images) and results.json here", NULL},
        {"save-images", "N", "with --out: how many adversarial images to write (default 32)", NULL},
        {"seed", "N", "random seed (random starts, UAP order, generator init; default 0)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "NAME", "cpu (default), ref or cuda", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, "attack", "--checkpoint FILE [options]", pos, &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    const char *ck = rcv_arg(opts, "checkpoint"), *atk = rcv_arg(opts, "attack");
    const char *data = rcv_arg(opts, "data"), *out = rcv_arg(opts, "out");
    if (!atk) atk = "pgd";
    if (!data) data = "fashion-mnist";
    if (!ck) {
        fprintf(stderr, "robustcv attack: --checkpoint FILE is required\n");
        return 2;
    }
    int kind = !strcmp(atk, "fgsm") ? 0 : !strcmp(atk, "pgd") ? 1 : !strcmp(atk, "pgd-l2") ? 2 : !strcmp(atk, "deepfool") ? 3
             : !strcmp(atk, "uap") ? 4 : !strcmp(atk, "generator") ? 5 : !strcmp(atk, "transfer") ? 6
             : !strcmp(atk, "noise") ? 7 : !strcmp(atk, "apgd-ce") ? 8 : !strcmp(atk, "apgd-dlr") ? 9
             : !strcmp(atk, "apgd-t") ? 10 : cli_robust_attack_kind(atk) >= 0 ? 11 + cli_robust_attack_kind(atk) : -1;
    if (kind < 0) {
        fprintf(stderr, "robustcv attack: --attack '%s', expected one of %s\n", atk, attack_names);
        return 2;
    }
    const char *tatk = rcv_arg(opts, "transfer-attack");
    if (!tatk) tatk = "pgd";
    int tkind = !strcmp(tatk, "fgsm") ? 0 : !strcmp(tatk, "pgd") ? 1 : !strcmp(tatk, "pgd-l2") ? 2 : -1;
    if (tkind < 0) {
        fprintf(stderr, "robustcv attack: --transfer-attack '%s', expected fgsm, pgd or pgd-l2\n", tatk);
        return 2;
    }
    int pk = kind == 6 ? tkind : kind; // the gradient attack that crafts the examples
    rcv_fgsm_cfg fc;
    rcv_fgsm_defaults(&fc);
    rcv_pgd_cfg pc;
    rcv_pgd_defaults(&pc, pk == 2 ? RCV_NORM_L2 : RCV_NORM_LINF);
    rcv_deepfool_cfg dc;
    rcv_deepfool_defaults(&dc);
    rcv_gen_cfg gc;
    rcv_gen_defaults(&gc);
    const char *pv = rcv_arg(opts, "p"), *nv = rcv_arg(opts, "norm");
    if (pv && strcmp(pv, "inf") && strcmp(pv, "2")) {
        fprintf(stderr, "robustcv attack: --p '%s', expected inf or 2\n", pv);
        return 2;
    }
    if (nv && strcmp(nv, "linf") && strcmp(nv, "l2")) {
        fprintf(stderr, "robustcv attack: --norm '%s', expected linf or l2\n", nv);
        return 2;
    }
    rcv_uap_cfg uc;
    rcv_uap_defaults(&uc, pv && !strcmp(pv, "2") ? RCV_NORM_L2 : RCV_NORM_LINF);
    if (nv && !strcmp(nv, "l2")) gc.norm = RCV_NORM_L2;
    int apgd = kind >= 8 && kind <= 10;
    rcv_apgd_cfg ac;
    rcv_apgd_defaults(&ac, nv && !strcmp(nv, "l2") ? RCV_NORM_L2 : RCV_NORM_LINF,
                      kind == 9 ? RCV_APGD_DLR : kind == 10 ? RCV_APGD_DLR_T : RCV_APGD_CE);
    float eps = -1, sigma = 0.1f;
    int random_start = 1, target = -1, limit = 0, batch = 128, save = 32, threads = 0, fit = kind == 4 ? 1000 : 10000;
    unsigned long long seed = 0;
    rcv_backend be;
    if (rcv_arg_float(opts, "eps", &eps) || rcv_arg_float(opts, "sigma", &sigma) || rcv_arg_float(opts, "alpha", &pc.alpha) ||
        rcv_arg_int(opts, "steps", &pc.steps) || rcv_arg_int(opts, "restarts", &pc.restarts) ||
        rcv_arg_int(opts, "random-start", &random_start) || rcv_arg_int(opts, "target", &target) ||
        rcv_arg_float(opts, "overshoot", &dc.overshoot) || rcv_arg_int(opts, "max-iter", &dc.max_iter) ||
        rcv_arg_int(opts, "classes", &dc.classes) || rcv_arg_float(opts, "xi", &uc.xi) ||
        rcv_arg_float(opts, "delta", &uc.delta) || rcv_arg_int(opts, "max-passes", &uc.max_passes) ||
        rcv_arg_int(opts, "fit-images", &fit) || rcv_arg_int(opts, "gen-epochs", &gc.epochs) ||
        rcv_arg_float(opts, "gen-lr", &gc.lr) || rcv_arg_int(opts, "gen-width", &gc.width) ||
        rcv_arg_int(opts, "limit", &limit) || rcv_arg_int(opts, "batch", &batch) ||
        rcv_arg_int(opts, "save-images", &save) || rcv_arg_u64(opts, "seed", &seed) ||
        rcv_arg_int(opts, "threads", &threads) || rcv_arg_float(opts, "rho", &ac.rho) ||
        rcv_arg_int(opts, "n-target-classes", &ac.n_target_classes) || rcv_arg_int(opts, "eot-iter", &ac.eot_iter) ||
        cli_parse_device(rcv_arg(opts, "device"), &be))
        return 2;
    if (rcv_arg(opts, "eps") && !(eps >= 0 && isfinite(eps))) {
        fprintf(stderr, "robustcv attack: --eps %g, expected a finite value >= 0\n", eps);
        return 2;
    }
    cli_robust_attack ra = {0};
    if (kind >= 11 && (rc = cli_robust_attack_parse(opts, kind - 11, nv && !strcmp(nv, "l2") ? RCV_NORM_L2 : RCV_NORM_LINF,
                                                    eps, &ra)))
        return rc;
    if (apgd && rcv_arg_float(opts, "noise-sigma", &ra.noise_sigma)) return 2;
    if (!(ra.noise_sigma >= 0)) {
        fprintf(stderr, "robustcv attack: --noise-sigma %g, expected >= 0\n", ra.noise_sigma);
        return 2;
    }
    if (apgd) {
        if (rcv_arg(opts, "steps")) ac.n_iter = pc.steps;
        if (rcv_arg(opts, "restarts")) ac.n_restarts = pc.restarts;
        if (eps >= 0) ac.eps = eps;
        if (ac.n_iter < 1 || ac.n_restarts < 1 || ac.eot_iter < 1 || !(ac.rho >= 0 && ac.rho <= 1) ||
            ac.n_target_classes < 1) {
            fprintf(stderr, "robustcv attack: --steps %d, --restarts %d, --eot-iter %d, --rho %g, --n-target-classes %d: "
                    "expected steps, restarts, eot-iter, n-target-classes >= 1 and 0 <= rho <= 1\n", ac.n_iter,
                    ac.n_restarts, ac.eot_iter, ac.rho, ac.n_target_classes);
            return 2;
        }
    }
    if (batch <= 0 || limit < 0 || fit <= 0) {
        fprintf(stderr, "robustcv attack: --batch %d, --limit %d, --fit-images %d: expected positive values\n", batch,
                limit, fit);
        return 2;
    }
    if (!(sigma >= 0)) {
        fprintf(stderr, "robustcv attack: --sigma %g, expected >= 0\n", sigma);
        return 2;
    }
    if (rcv_arg(opts, "overshoot")) uc.overshoot = dc.overshoot;
    if (rcv_arg(opts, "max-iter")) uc.max_iter = dc.max_iter;
    if (rcv_arg(opts, "classes")) uc.classes = dc.classes;
    pc.random_start = random_start;
    if (eps >= 0) fc.eps = pc.eps = gc.eps = eps;
    if (target >= 0 && (kind == 3 || kind == 4 || kind == 7 || kind >= 8)) {
        fprintf(stderr, "robustcv attack: --target: %s is untargeted\n", atk);
        return 2;
    }
    fc.targeted = pc.targeted = gc.targeted = target >= 0;
    gc.target = target;
    gc.seed = seed;
    gc.verbose = uc.verbose = 1;
    const char *src = rcv_arg(opts, "source");
    if (kind == 6 && !src) {
        fprintf(stderr, "robustcv attack: --attack transfer needs --source CKPT[,CKPT]\n");
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);

    rcv_model m = {0}, srcs[8] = {{0}};
    rcv_model *sp[8];
    int n_src = 0;
    rcv_dataset d = {0}, fd = {0};
    float *x = NULL, *xa = NULL, *fx = NULL, *v = NULL;
    int32_t *y = NULL, *fy = NULL, *tg = NULL;
    rcv_generator gen = {0};
    rcv_attack_stats st = {0};
    rc = 1;
    rcv_rng rng;
    rcv_rng_init(&rng, seed);
    double t0 = rcv_now();
    float fit_fooling = -1;
    if (rcv_ckpt_load_model(ck, &m, NULL) || load_split(data, 0, limit, &d, &x, &y)) goto fail;
    if (d.c != m.cfg.in_c || d.h != m.cfg.in_h || d.w != m.cfg.in_w) {
        rcv_fail("%s: model takes %dx%dx%d images, %s has %dx%dx%d", ck, m.cfg.in_c, m.cfg.in_h, m.cfg.in_w, data, d.c,
                 d.h, d.w);
        goto fail;
    }
    if (target >= m.cfg.n_classes) {
        rcv_fail("--target %d: the model has classes 0..%d", target, m.cfg.n_classes - 1);
        goto fail;
    }
    if (kind == 10 && ac.n_target_classes >= m.cfg.n_classes) {
        rcv_fail("--n-target-classes %d: the model has %d classes, expected 1..%d", ac.n_target_classes,
                 m.cfg.n_classes, m.cfg.n_classes - 1);
        goto fail;
    }
    if (rcv_attack_prepare(&m, batch, be)) goto fail;
    if (kind == 6) {
        if (load_models(src, srcs, 8, &n_src)) goto fail;
        for (int i = 0; i < n_src; i++) {
            sp[i] = &srcs[i];
            if (rcv_attack_prepare(sp[i], batch, be)) goto fail;
        }
    }
    size_t per = (size_t)d.c * d.h * d.w;
    int n = d.n;
    xa = rcv_xmalloc((size_t)n * per * sizeof(float));
    tg = rcv_xmalloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) tg[i] = target >= 0 ? target : y[i];
    rcv_model *mp = &m;
    if (kind == 4 || kind == 5) {
        if (load_split(data, 1, fit, &fd, &fx, &fy)) goto fail;
        if (kind == 4) {
            v = rcv_xmalloc(per * sizeof(float));
            int passes;
            if (rcv_attack_uap(&m, fx, fd.n, &uc, &rng, v, &fit_fooling, &passes)) goto fail;
            fprintf(stderr, "uap: fooling rate %.4f on %d train images after %d passes\n", fit_fooling, fd.n, passes);
        } else {
            if (rcv_generator_build(&gen, d.c, d.h, d.w, &gc) ||
                rcv_generator_train(&gen, &m, fx, fy, fd.n, &rng, NULL))
                goto fail;
        }
    }
    // APGD gathers the points still robust of each run into full batches: hand it pools of 16
    // batches, so that its later runs (APGD-T's targets, restarts) do not pad a few points to a batch.
    // The attacks of attack_robust.c take every image at once.
    int step = kind >= 11 ? (n > 0 ? n : 1) : apgd ? 16 * batch : batch;
    long apgd_robust = 0;
    rcv_rng noise_rng = rcv_rng_fork(&rng, 0x6e6f697365); // the randomized classifier's draws
    rcv_classifier fcl = {&mp, 1, kind >= 8 ? ra.noise_sigma : 0, &noise_rng};
    uint8_t *rob = kind >= 8 ? rcv_xmalloc((size_t)step) : NULL;
    for (int s = 0; s < n; s += step) {
        int nb = n - s < step ? n - s : step;
        const float *xb = x + (size_t)s * per;
        float *ab = xa + (size_t)s * per;
        int r = 0;
        switch (kind) {
        case 0: r = rcv_attack_fgsm(&mp, 1, xb, tg + s, nb, &fc, ab); break;
        case 1: case 2: r = rcv_attack_pgd(&mp, 1, xb, tg + s, nb, &pc, &rng, ab); break;
        case 3: r = rcv_attack_deepfool(&m, xb, nb, &dc, ab, NULL); break;
        case 4: rcv_uap_apply(v, xb, nb, per, ab); break;
        case 5: r = rcv_generator_apply(&gen, xb, nb, ab); break;
        case 7: rcv_attack_gaussian(xb, (size_t)nb * per, sigma, &rng, ab); break;
        case 8: case 9: case 10:
            r = rcv_attack_apgd(&fcl, xb, y + s, nb, &ac, &rng, ab, rob);
            for (int i = 0; !r && i < nb; i++) apgd_robust += rob[i];
            break;
        case 11: case 12: case 13: case 14:
            r = cli_robust_attack_run(&ra, &fcl, xb, y + s, nb, &rng, ab, rob);
            for (int i = 0; !r && i < nb; i++) apgd_robust += rob[i];
            break;
        case 6: {
            rcv_transfer_cfg tc = {tkind == 0 ? RCV_TRANSFER_FGSM : RCV_TRANSFER_PGD, fc, pc};
            r = rcv_attack_transfer(sp, n_src, &m, &tc, xb, tg + s, nb, &rng, ab, NULL);
            break;
        }
        }
        if (r) {
            free(rob);
            goto fail;
        }
        rcv_attack_stats_add(&st, &m, xb, ab, y + s, target >= 0 ? tg + s : NULL, nb);
        fprintf(stderr, "\rattack %s: %d/%d images", atk, s + nb, n);
    }
    fprintf(stderr, "\n");
    free(rob);
    double secs = rcv_now() - t0;
    double acc0 = (double)st.clean_correct / st.n, acc1 = (double)st.adv_correct / st.n;
    double succ = st.success_denom ? (double)st.success / st.success_denom : 0, fool = (double)st.changed / st.n;
    printf("attack %s on %s (%s), %ld %s test images%s\n", atk, ck, m.name, st.n, data,
           target >= 0 ? " (targeted)" : "");
    printf("clean accuracy        %.4f\n", acc0);
    printf("adversarial accuracy  %.4f\n", acc1);
    printf("attack success rate   %.4f  (%ld of %ld %s)\n", succ, st.success, st.success_denom,
           target >= 0 ? "correct samples reach the target" : "correct samples become wrong");
    printf("fooling rate          %.4f  (prediction changed)\n", fool);
    printf("perturbation          max L-inf %.5f, mean L2 %.5f\n", st.linf_max, st.l2_sum / st.n);
    if (kind >= 8)
        printf("robust accuracy       %.4f  (%s, the attack's own count)\n", (double)apgd_robust / st.n, atk);
    if (out) {
        if (mkdir(out, 0755) && errno != EEXIST) {
            rcv_fail("cannot create directory %s: %s", out, strerror(errno));
            goto fail;
        }
        int32_t *pred = rcv_xmalloc((size_t)n * sizeof(int32_t));
        rcv_attack_predict(&m, xa, n, pred);
        char path[1200];
        int ns = save < n ? save : n;
        for (int i = 0; i < ns; i++) {
            snprintf(path, sizeof path, "%s/adv_%05d_label%d_pred%d.png", out, i, y[i], pred[i]);
            if (write_png(path, xa + (size_t)i * per, d.c, d.h, d.w)) {
                free(pred);
                goto fail;
            }
        }
        free(pred);
        if (v) { // the universal perturbation, 0.5 + v / (2 max|v|) so it is visible
            float mx = 1e-12f, *vis = rcv_xmalloc(per * sizeof(float));
            for (size_t e = 0; e < per; e++) mx = fmaxf(mx, fabsf(v[e]));
            for (size_t e = 0; e < per; e++) vis[e] = 0.5f + v[e] / (2 * mx);
            snprintf(path, sizeof path, "%s/uap.png", out);
            int wr = write_png(path, vis, d.c, d.h, d.w);
            free(vis);
            if (wr) goto fail;
        }
        rcv_json_writer w;
        rcv_json_writer_init(&w);
        rcv_json_begin_object(&w);
        rcv_json_key(&w, "attack"); rcv_json_string(&w, atk);
        rcv_json_key(&w, "checkpoint"); rcv_json_string(&w, ck);
        rcv_json_key(&w, "model"); rcv_json_string(&w, m.name);
        rcv_json_key(&w, "data"); rcv_json_string(&w, data);
        rcv_json_key(&w, "images"); rcv_json_int(&w, st.n);
        rcv_json_key(&w, "targeted"); rcv_json_bool(&w, target >= 0);
        if (target >= 0) { rcv_json_key(&w, "target"); rcv_json_int(&w, target); }
        if (kind == 6) { rcv_json_key(&w, "source"); rcv_json_string(&w, src); rcv_json_key(&w, "transfer_attack"); rcv_json_string(&w, tatk); }
        if (kind <= 2 || kind == 6) {
            rcv_json_key(&w, "eps"); rcv_json_number(&w, pk == 0 ? fc.eps : pc.eps);
            if (pk) {
                rcv_json_key(&w, "alpha"); rcv_json_number(&w, pc.alpha);
                rcv_json_key(&w, "steps"); rcv_json_int(&w, pc.steps);
                rcv_json_key(&w, "restarts"); rcv_json_int(&w, pc.restarts);
                rcv_json_key(&w, "random_start"); rcv_json_bool(&w, pc.random_start);
            }
        }
        if (kind == 3) {
            rcv_json_key(&w, "overshoot"); rcv_json_number(&w, dc.overshoot);
            rcv_json_key(&w, "max_iter"); rcv_json_int(&w, dc.max_iter);
            rcv_json_key(&w, "classes"); rcv_json_int(&w, dc.classes);
        }
        if (kind == 4) {
            rcv_json_key(&w, "xi"); rcv_json_number(&w, uc.xi);
            rcv_json_key(&w, "p"); rcv_json_string(&w, uc.p == RCV_NORM_L2 ? "2" : "inf");
            rcv_json_key(&w, "delta"); rcv_json_number(&w, uc.delta);
            rcv_json_key(&w, "fit_images"); rcv_json_int(&w, fd.n);
            rcv_json_key(&w, "fit_fooling_rate"); rcv_json_number(&w, fit_fooling);
        }
        if (kind == 7) { rcv_json_key(&w, "sigma"); rcv_json_number(&w, sigma); }
        if (apgd) {
            rcv_json_key(&w, "norm"); rcv_json_string(&w, ac.norm == RCV_NORM_L2 ? "l2" : "linf");
            rcv_json_key(&w, "eps"); rcv_json_number(&w, ac.eps);
            rcv_json_key(&w, "steps"); rcv_json_int(&w, ac.n_iter);
            rcv_json_key(&w, "restarts"); rcv_json_int(&w, ac.n_restarts);
            rcv_json_key(&w, "rho"); rcv_json_number(&w, ac.rho);
            rcv_json_key(&w, "eot_iter"); rcv_json_int(&w, ac.eot_iter);
            if (kind == 10) { rcv_json_key(&w, "n_target_classes"); rcv_json_int(&w, ac.n_target_classes); }
            rcv_json_key(&w, "robust_accuracy"); rcv_json_number(&w, (double)apgd_robust / st.n);
        }
        if (kind >= 11) {
            cli_robust_attack_json(&w, &ra);
            rcv_json_key(&w, "robust_accuracy"); rcv_json_number(&w, (double)apgd_robust / st.n);
        }
        if (kind == 5) {
            rcv_json_key(&w, "eps"); rcv_json_number(&w, gc.eps);
            rcv_json_key(&w, "norm"); rcv_json_string(&w, gc.norm == RCV_NORM_L2 ? "l2" : "linf");
            rcv_json_key(&w, "gen_epochs"); rcv_json_int(&w, gc.epochs);
            rcv_json_key(&w, "fit_images"); rcv_json_int(&w, fd.n);
        }
        rcv_json_key(&w, "clean_accuracy"); rcv_json_number(&w, acc0);
        rcv_json_key(&w, "adversarial_accuracy"); rcv_json_number(&w, acc1);
        rcv_json_key(&w, "attack_success_rate"); rcv_json_number(&w, succ);
        rcv_json_key(&w, "fooling_rate"); rcv_json_number(&w, fool);
        rcv_json_key(&w, "max_linf"); rcv_json_number(&w, st.linf_max);
        rcv_json_key(&w, "mean_l2"); rcv_json_number(&w, st.l2_sum / st.n);
        rcv_json_key(&w, "seconds"); rcv_json_number(&w, secs);
        rcv_json_end_object(&w);
        rcv_json_raw(&w, "\n");
        snprintf(path, sizeof path, "%s/results.json", out);
        int wr = rcv_file_write_atomic(path, rcv_json_text(&w), strlen(rcv_json_text(&w)));
        rcv_json_writer_free(&w);
        if (wr) goto fail;
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "robustcv attack: %s\n", rcv_error());
done:
    rcv_generator_free(&gen);
    for (int i = 0; i < n_src; i++) rcv_model_free(&srcs[i]);
    if (m.g) rcv_model_free(&m);
    rcv_dataset_free(&d);
    rcv_dataset_free(&fd);
    free(x); free(xa); free(fx); free(v); free(y); free(fy); free(tg);
    return rc;
}
