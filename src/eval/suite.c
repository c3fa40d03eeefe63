// The robustness evaluation suite (suite.h): perturbed copies of one test set, each
// scored by every model; shared sets keep their logits for the ensembles.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/attack.h"
#include "robustcv/augment.h"
#include "robustcv/error.h"
#include "robustcv/metrics.h"
#include "robustcv/suite.h"
#include "robustcv/train.h"

void rcv_suite_defaults(rcv_suite_cfg *c) {
    memset(c, 0, sizeof *c);
    c->batch = 250;
    c->backend = RCV_BACKEND_CPU;
    c->noise_sigma[0] = 0.1f, c->noise_sigma[1] = 0.2f, c->n_noise = 2;
    c->fgsm_eps[0] = 0.02f, c->fgsm_eps[1] = 0.05f, c->fgsm_eps[2] = 0.1f, c->n_fgsm = 3;
    c->pgd_eps[0] = 0.05f, c->pgd_eps[1] = 0.1f, c->n_pgd = 2;
    c->pgd_steps = 10;
    c->symmetries = 1;
    c->transfer = 1;
    c->uap = 500;
    c->denoise = 1;
    c->transforms = rcv_suite_default_transforms;
    c->corruptions = 500;
    c->aa_ensemble = 1;
}

const char *const rcv_suite_default_transforms =
    "hflip:p=1;vflip:p=1;crop:pad=4;rotate:degrees=15;affine:degrees=10:translate=0.1/0.1:scale=0.9/1.1;"
    "perspective:p=1;jitter:brightness=0.4:contrast=0.4;blur:kernel_size=3:sigma=1/1;erase:p=1:value=random;gray:p=1;"
    "autoaugment;randaugment;trivialaugment";

// An 8-bit RGB copy of image i of x (c = 1 is replicated), for the uint8 image operations.
static void to_rgb8(const float *x, int hw, int c, uint8_t *rgb) {
    for (int p = 0; p < hw; p++)
        for (int k = 0; k < 3; k++) {
            float v = x[(size_t)p * c + (c == 3 ? k : 0)] * 255.0f + 0.5f;
            rgb[p * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}
// Back to c channels: gray takes the luma (PIL's convert("L") weights).
static void from_rgb8(const uint8_t *rgb, int hw, int c, float *x) {
    for (int p = 0; p < hw; p++) {
        if (c == 3)
            for (int k = 0; k < 3; k++) x[(size_t)p * 3 + k] = rgb[p * 3 + k] / 255.0f;
        else
            x[p] = ((19595 * rgb[p * 3] + 38470 * rgb[p * 3 + 1] + 7471 * rgb[p * 3 + 2] + 32768) >> 16) / 255.0f;
    }
}

void rcv_suite_score(const float *logits, const int32_t *labels, int n, int k, double *top1, double *top5,
                     double *nll) {
    *top1 = rcv_metric_topk(logits, labels, n, k, 1);
    *top5 = rcv_metric_topk(logits, labels, n, k, k < 5 ? k : 5);
    *nll = rcv_metric_nll_logits(logits, labels, n, k);
}

static double ece15(const float *logits, const int32_t *labels, int n, int k) {
    float *p = rcv_xmalloc((size_t)n * k * sizeof(float));
    rcv_softmax_rows(logits, n, k, p);
    double e = rcv_metric_ece(p, labels, n, k, 15, NULL, NULL, NULL);
    free(p);
    return e;
}

typedef struct {
    const float *x;
    size_t per;
} array_src;

static void fill_array(void *ctx, int s, int nb, float *x) {
    const array_src *a = ctx;
    memcpy(x, a->x + (size_t)s * a->per, (size_t)nb * a->per * sizeof(float));
}

int rcv_model_logits(rcv_model *m, const float *x, int n, int batch, float *logits) {
    // The attacks' plan (input gradient on), so that scoring and attacking share one plan.
    // (on the backend the model is planned on; cpu when it is not planned yet)
    if (m->g->batch != batch && rcv_attack_prepare(m, batch, m->g->batch > 0 ? m->g->backend : RCV_BACKEND_CPU)) return -1;
    array_src a = {x, (size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w};
    return rcv_logits_batched(m, n, batch, m->g->backend, fill_array, &a, logits);
}

// --- the sets ------------------------------------------------------------------------

typedef struct {
    rcv_model *const *models;
    int n_models, n, k, batch;
    size_t per;
    const int32_t *y;
    rcv_suite_result *r;
    int set;
    const rcv_suite_cfg *cfg;
} run;

// Scores x_m (n images; per model when `per_model`, else x shared) under `name`.
static int score(run *R, const char *name, const float *const *xs, int shared) {
    rcv_suite_result *r = R->r;
    int s = R->set++;
    float *logits = rcv_xmalloc((size_t)R->n * R->k * sizeof(float));
    for (int mi = 0; mi < R->n_models; mi++) {
        rcv_set_result *q = &r->res[(size_t)mi * r->n_sets + s];
        snprintf(q->name, sizeof q->name, "%s", name);
        q->shared = shared;
        if (rcv_model_logits(R->models[mi], xs[shared ? 0 : mi], R->n, R->batch, logits)) {
            free(logits);
            return -1;
        }
        rcv_suite_score(logits, R->y, R->n, R->k, &q->top1, &q->top5, &q->nll);
        if (shared) {
            r->logits[(size_t)mi * r->n_sets + s] = logits;
            logits = rcv_xmalloc((size_t)R->n * R->k * sizeof(float));
        }
        if (s == 0) r->ece[mi] = ece15(r->logits[(size_t)mi * r->n_sets], R->y, R->n, R->k);
    }
    if (R->cfg->verbose) {
        fprintf(stderr, "evaluate: %-22s", name);
        for (int mi = 0; mi < R->n_models; mi++) fprintf(stderr, " %6.2f%%", 100 * r->res[(size_t)mi * r->n_sets + s].top1);
        fprintf(stderr, "\n");
    }
    free(logits);
    return 0;
}

// Sets per model: clean, noise, fgsm, pgd, (8 sym + tta), (2 transfer per fgsm/pgd eps).
static int n_transforms(const char *t) {
    int n = t && *t ? 1 : 0;
    for (; t && *t; t++) n += *t == ';';
    return n;
}

static int count_sets(const rcv_suite_cfg *c, int n_models, int square) {
    int t = 1 + c->n_noise + c->n_fgsm + c->n_pgd + (c->denoise ? 1 : 0) + n_transforms(c->transforms) +
            (c->corruptions > 0 ? 5 * rcv_corruption_count() : 0);
    if (c->symmetries && square) t += 9;
    if (c->transfer && n_models > 1) t += c->n_fgsm + c->n_pgd;
    return t;
}

// AutoAttack beside PGD on the first cfg->autoattack images, for each model and, when asked, the
// ensemble's models (the first r->n_ensemble) attacked as one (row n_models).
static int aa_rows(rcv_model *const *models, int n_models, const float *x, const rcv_suite_cfg *cfg,
                   rcv_suite_result *r) {
    int n = cfg->autoattack < r->n ? cfg->autoattack : r->n, k = r->n_classes;
    const float *eps = cfg->n_aa ? cfg->aa_eps : cfg->pgd_eps;
    r->n_aa = cfg->n_aa ? cfg->n_aa : cfg->n_pgd;
    r->aa_ensemble = cfg->aa_ensemble && r->n_ensemble > 1;
    int rows = n_models + r->aa_ensemble;
    r->aa = rcv_xcalloc((size_t)rows * r->n_aa, sizeof(rcv_aa_row));
    size_t per = (size_t)models[0]->cfg.in_c * models[0]->cfg.in_h * models[0]->cfg.in_w;
    float *adv = rcv_xmalloc((size_t)n * per * sizeof(float)), *z = rcv_xmalloc((size_t)n * k * sizeof(float));
    uint8_t *rob = rcv_xmalloc((size_t)n);
    int rc = -1;
    for (int m = 0; m < rows; m++) {
        rcv_classifier f = {m < n_models ? &models[m] : models, m < n_models ? 1 : r->n_ensemble, 0, NULL};
        for (int e = 0; e < r->n_aa; e++) {
            rcv_aa_row *q = &r->aa[(size_t)m * r->n_aa + e];
            q->eps = eps[e], q->n = n, q->pgd_steps = cfg->pgd_steps;
            rcv_classifier_logits(&f, x, n, z);
            q->clean = rcv_metric_topk(z, r->labels, n, k, 1);
            rcv_pgd_cfg pc;
            rcv_pgd_defaults(&pc, RCV_NORM_LINF);
            pc.eps = q->eps, pc.alpha = q->eps / 4, pc.steps = cfg->pgd_steps;
            rcv_rng pr;
            rcv_rng_init(&pr, cfg->seed * 7919 + 700 + (uint64_t)e);
            if (rcv_attack_pgd_classifier(&f, x, r->labels, n, &pc, &pr, adv)) goto out;
            rcv_classifier_logits(&f, adv, n, z);
            q->pgd = rcv_metric_topk(z, r->labels, n, k, 1);
            rcv_autoattack_cfg ac;
            rcv_autoattack_defaults(&ac, RCV_NORM_LINF);
            ac.eps = q->eps, ac.seed = cfg->seed, ac.attacks = cfg->aa_attacks, ac.verbose = cfg->verbose;
            if (cfg->verbose)
                fprintf(stderr, "evaluate: AutoAttack on %s, eps %g, %d images\n",
                        m < n_models ? models[m]->name : "the ensemble", q->eps, n);
            if (rcv_autoattack(&f, x, r->labels, n, &ac, adv, rob, &q->res)) goto out;
            long right = 0;
            for (int i = 0; i < n; i++) right += rob[i];
            q->aa = (double)right / (n ? n : 1);
            if (cfg->verbose)
                fprintf(stderr, "evaluate: eps %g on %d images: clean %.2f%%, PGD-%d %.2f%%, AutoAttack %.2f%%\n", q->eps,
                        n, 100 * q->clean, cfg->pgd_steps, 100 * q->pgd, 100 * q->aa);
        }
    }
    rc = 0;
out:
    free(adv), free(z), free(rob);
    return rc;
}

int rcv_suite_run(rcv_model *const *models, int n_models, const rcv_dataset *d, const rcv_suite_cfg *cfg,
                  rcv_suite_result *r) {
    memset(r, 0, sizeof *r);
    if (n_models <= 0) return rcv_fail("evaluate: no models");
    const rcv_model_cfg *mc = &models[0]->cfg;
    for (int i = 0; i < n_models; i++) {
        const rcv_model_cfg *c = &models[i]->cfg;
        if (c->in_c != d->c || c->in_h != d->h || c->in_w != d->w || c->n_classes != d->n_classes)
            return rcv_fail("evaluate: model %d (%s) expects %dx%dx%d images and %d classes; %s has %dx%dx%d and %d", i,
                            models[i]->name, c->in_c, c->in_h, c->in_w, c->n_classes, d->source, d->c, d->h, d->w,
                            d->n_classes);
    }
    int n = cfg->limit > 0 && cfg->limit < d->n ? cfg->limit : d->n, k = mc->n_classes;
    int batch = cfg->batch > 0 ? cfg->batch : 250, square = d->h == d->w;
    size_t per = (size_t)d->c * d->h * d->w, xn = (size_t)n * per;
    r->n_models = n_models, r->n = n, r->n_classes = k;
    r->n_ensemble = cfg->ensemble_models > 0 && cfg->ensemble_models < n_models ? cfg->ensemble_models : n_models;
    r->n_sets = count_sets(cfg, n_models, square);
    r->labels = rcv_xmalloc((size_t)n * sizeof(int32_t));
    r->res = rcv_xcalloc((size_t)n_models * r->n_sets, sizeof(rcv_set_result));
    r->logits = rcv_xcalloc((size_t)n_models * r->n_sets, sizeof(float *));
    r->ece = rcv_xcalloc((size_t)n_models, sizeof(double));
    r->uap_fooling = rcv_xmalloc((size_t)n_models * sizeof(double));
    r->uap_top1 = rcv_xcalloc((size_t)n_models, sizeof(double));
    for (int i = 0; i < n_models; i++) r->uap_fooling[i] = -1;

    float *x = rcv_xmalloc(xn * sizeof(float)), *xp = rcv_xmalloc(xn * sizeof(float));
    float **adv = rcv_xcalloc((size_t)n_models, sizeof(float *));
    int *idx = rcv_xmalloc((size_t)n * sizeof(int)), rc = -1;
    for (int i = 0; i < n; i++) idx[i] = i;
    rcv_dataset_batch(d, idx, n, x, r->labels);
    for (int i = 0; i < n_models; i++) {
        adv[i] = rcv_xmalloc(xn * sizeof(float));
        if (rcv_attack_prepare(models[i], batch, cfg->backend)) goto out;
    }
    run R = {models, n_models, n, k, batch, per, r->labels, r, 0, cfg};
    rcv_rng rng;
    rcv_rng_init(&rng, cfg->seed);
    const float *shared[1] = {x};
    char name[96];

    if (score(&R, "clean", shared, 1)) goto out;
    // Gaussian noise in pixel space, clamped: what stability training defends against.
    for (int e = 0; e < cfg->n_noise; e++) {
        rcv_rng nr = rcv_rng_fork(&rng, 100 + (uint64_t)e);
        rcv_rng_fill_normal(&nr, xp, xn, 0, cfg->noise_sigma[e]);
        for (size_t i = 0; i < xn; i++) xp[i] = fminf(fmaxf(x[i] + xp[i], 0), 1);
        snprintf(name, sizeof name, "noise:%g", cfg->noise_sigma[e]);
        shared[0] = xp;
        if (score(&R, name, shared, 1)) goto out;
    }
    int hw = d->h * d->w;
    // NL-means denoised test set (the seeds' "blurred" sets).
    if (cfg->denoise) {
        int bad = 0;
#pragma omp parallel
        {
            uint8_t *a = rcv_xmalloc((size_t)hw * 3), *b = rcv_xmalloc((size_t)hw * 3);
#pragma omp for schedule(dynamic, 8)
            for (int i = 0; i < n; i++) {
                to_rgb8(x + i * per, hw, d->c, a);
                if (rcv_nlmeans_colored(a, b, d->h, d->w, 10, 10, 7, 21)) bad = 1;
                from_rgb8(b, hw, d->c, xp + i * per);
            }
            free(a), free(b);
        }
        if (bad) {
            rcv_fail("evaluate: NL-means failed");
            goto out;
        }
        shared[0] = xp;
        if (score(&R, "denoised", shared, 1)) goto out;
    }
    // Each transform alone on the test set (Figure 2), one draw per image from a fixed seed.
    for (const char *t = cfg->transforms; t && *t;) {
        const char *e = strchr(t, ';');
        size_t len = e ? (size_t)(e - t) : strlen(t);
        char spec[80];
        snprintf(spec, sizeof spec, "%.*s", (int)(len < 79 ? len : 79), t);
        t = e ? e + 1 : t + len;
        rcv_augment *aug;
        if (rcv_augment_parse(&aug, spec)) goto out;
        rcv_rng tr = rcv_rng_fork(&rng, 300 + (uint64_t)R.set);
        memcpy(xp, x, xn * sizeof(float));
#pragma omp parallel for schedule(dynamic, 16)
        for (int i = 0; i < n; i++) {
            rcv_rng ri = rcv_rng_fork(&tr, (uint64_t)i);
            rcv_augment_apply(aug, &ri, xp + i * per, d->h, d->w, d->c, NULL, 0);
        }
        rcv_augment_free(aug);
        snprintf(name, sizeof name, "transform:%s", spec);
        shared[0] = xp;
        if (score(&R, name, shared, 1)) goto out;
    }
    // The 15 corruptions x 5 severities on the first cfg->corruptions images.
    if (cfg->corruptions > 0) {
        int nc = cfg->corruptions < n ? cfg->corruptions : n, n_keep = R.n;
        R.n = nc; // scored on the corrupted subset
        for (int ci = 0; rcv_corruption_names[ci]; ci++)
            for (int sev = 1; sev <= 5; sev++) {
                int bad = 0;
#pragma omp parallel
                {
                    uint8_t *a = rcv_xmalloc((size_t)hw * 3);
#pragma omp for schedule(dynamic, 8)
                    for (int i = 0; i < nc; i++) {
                        to_rgb8(x + i * per, hw, d->c, a);
                        if (rcv_corrupt(a, a, d->h, d->w, rcv_corruption_names[ci], sev, cfg->seed * 1000003u + i))
                            bad = 1;
                        from_rgb8(a, hw, d->c, xp + i * per);
                    }
                    free(a);
                }
                if (bad) {
                    R.n = n_keep;
                    goto out;
                }
                snprintf(name, sizeof name, "corrupt:%s:%d", rcv_corruption_names[ci], sev);
                shared[0] = xp;
                if (score(&R, name, shared, 1)) {
                    R.n = n_keep;
                    goto out;
                }
            }
        R.n = n_keep;
    }
    // White-box attacks: crafted on each model against itself.
    for (int e = 0; e < cfg->n_fgsm; e++) {
        rcv_fgsm_cfg fc;
        rcv_fgsm_defaults(&fc);
        fc.eps = cfg->fgsm_eps[e];
        for (int i = 0; i < n_models; i++)
            if (rcv_attack_fgsm(&models[i], 1, x, r->labels, n, &fc, adv[i])) goto out;
        snprintf(name, sizeof name, "fgsm:%g", fc.eps);
        if (score(&R, name, (const float *const *)adv, 0)) goto out;
    }
    for (int e = 0; e < cfg->n_pgd; e++) {
        rcv_pgd_cfg pc;
        rcv_pgd_defaults(&pc, RCV_NORM_LINF);
        pc.eps = cfg->pgd_eps[e], pc.alpha = pc.eps / 4, pc.steps = cfg->pgd_steps;
        for (int i = 0; i < n_models; i++) {
            rcv_rng ar = rcv_rng_fork(&rng, 200 + 16 * (uint64_t)e + i);
            if (rcv_attack_pgd(&models[i], 1, x, r->labels, n, &pc, &ar, adv[i])) goto out;
        }
        snprintf(name, sizeof name, "pgd:%g", pc.eps);
        if (score(&R, name, (const float *const *)adv, 0)) goto out;
    }
    // The 8 symmetries of the square (orientation invariance) and test-time augmentation:
    // softmax probabilities averaged over the 8 views.
    if (cfg->symmetries && square) {
        double *prob = rcv_xcalloc((size_t)n_models * n * k, sizeof(double));
        for (int s = 0; s < 8; s++) {
            for (int i = 0; i < n; i++) rcv_sym_apply(s, x + i * per, xp + i * per, d->h, d->w, d->c);
            snprintf(name, sizeof name, "sym:%d", s);
            shared[0] = xp;
            if (score(&R, name, shared, 1)) {
                free(prob);
                goto out;
            }
            for (int mi = 0; mi < n_models; mi++) {
                const float *z = r->logits[(size_t)mi * r->n_sets + R.set - 1];
                for (int i = 0; i < n; i++) {
                    const float *zi = z + (size_t)i * k;
                    double mx = zi[0], sum = 0;
                    for (int j = 1; j < k; j++) mx = zi[j] > mx ? zi[j] : mx;
                    for (int j = 0; j < k; j++) sum += exp(zi[j] - mx);
                    for (int j = 0; j < k; j++) prob[((size_t)mi * n + i) * k + j] += exp(zi[j] - mx) / sum / 8;
                }
            }
        }
        // TTA logits = log of the averaged probabilities.
        int s = R.set++;
        for (int mi = 0; mi < n_models; mi++) {
            float *z = rcv_xmalloc((size_t)n * k * sizeof(float));
            for (size_t i = 0; i < (size_t)n * k; i++) z[i] = (float)log(prob[(size_t)mi * n * k + i] + 1e-30);
            rcv_set_result *q = &r->res[(size_t)mi * r->n_sets + s];
            snprintf(q->name, sizeof q->name, "tta");
            q->shared = 1;
            rcv_suite_score(z, r->labels, n, k, &q->top1, &q->top5, &q->nll);
            r->logits[(size_t)mi * r->n_sets + s] = z;
        }
        free(prob);
    }
    // Black-box transfer: crafted on model 0, the same images for everyone.
    if (cfg->transfer && n_models > 1) {
        for (int e = 0; e < cfg->n_fgsm + cfg->n_pgd; e++) {
            rcv_transfer_cfg tc = {0};
            rcv_fgsm_defaults(&tc.fgsm);
            rcv_pgd_defaults(&tc.pgd, RCV_NORM_LINF);
            if (e < cfg->n_fgsm) {
                tc.kind = RCV_TRANSFER_FGSM, tc.fgsm.eps = cfg->fgsm_eps[e];
                snprintf(name, sizeof name, "transfer_fgsm:%g", tc.fgsm.eps);
            } else {
                float eps = cfg->pgd_eps[e - cfg->n_fgsm];
                tc.kind = RCV_TRANSFER_PGD, tc.pgd.eps = eps, tc.pgd.alpha = eps / 4, tc.pgd.steps = cfg->pgd_steps;
                snprintf(name, sizeof name, "transfer_pgd:%g", eps);
            }
            rcv_rng ar = rcv_rng_fork(&rng, 400 + (uint64_t)e);
            if (rcv_attack_transfer(&models[0], 1, models[1], &tc, x, r->labels, n, &ar, xp, NULL)) goto out;
            shared[0] = xp;
            if (score(&R, name, shared, 1)) goto out;
        }
    }
    // Universal perturbation per model, crafted on the first cfg->uap images, fooling rate on all.
    if (cfg->uap > 0) {
        int nu = cfg->uap < n ? cfg->uap : n;
        for (int mi = 0; mi < n_models; mi++) {
            rcv_uap_cfg uc;
            rcv_uap_defaults(&uc, RCV_NORM_LINF);
            uc.xi = cfg->n_fgsm ? cfg->fgsm_eps[cfg->n_fgsm - 1] : uc.xi;
            // DeepFool needs one backward per candidate class and iteration: keep it cheap.
            uc.classes = 3, uc.max_passes = 2;
            float *v = rcv_xmalloc(per * sizeof(float));
            rcv_rng ur = rcv_rng_fork(&rng, 500 + (uint64_t)mi);
            if (rcv_attack_uap(models[mi], x, nu, &uc, &ur, v, NULL, NULL)) {
                free(v);
                goto out;
            }
            rcv_uap_apply(v, x, n, per, xp);
            free(v);
            int32_t *p0 = rcv_xmalloc((size_t)n * sizeof(int32_t)), *p1 = rcv_xmalloc((size_t)n * sizeof(int32_t));
            rcv_attack_predict(models[mi], x, n, p0);
            rcv_attack_predict(models[mi], xp, n, p1);
            long changed = 0, right = 0;
            for (int i = 0; i < n; i++) changed += p0[i] != p1[i], right += p1[i] == r->labels[i];
            r->uap_fooling[mi] = (double)changed / n;
            r->uap_top1[mi] = (double)right / n;
            r->uap_eps = uc.xi;
            free(p0), free(p1);
            if (cfg->verbose) fprintf(stderr, "evaluate: uap (xi %g) model %d fooling rate %.2f%%\n", uc.xi, mi,
                                      100 * r->uap_fooling[mi]);
        }
    }
    if (cfg->autoattack > 0 && aa_rows(models, n_models, x, cfg, r)) goto out;
    rc = 0;
out:
    for (int i = 0; i < n_models; i++) free(adv[i]);
    free(adv), free(x), free(xp), free(idx);
    if (rc) rcv_suite_result_free(r);
    return rc;
}

void rcv_suite_result_free(rcv_suite_result *r) {
    if (r->logits)
        for (int i = 0; i < r->n_models * r->n_sets; i++) free(r->logits[i]);
    free(r->logits), free(r->res), free(r->labels), free(r->ece), free(r->uap_fooling), free(r->uap_top1), free(r->aa);
    memset(r, 0, sizeof *r);
}
