// AutoAttack (Croce & Hein 2020): its attacks run in sequence, each on the points still robust,
// keeping per image the first adversarial example found; the reference's sanity checks as
// warnings. The attacks themselves are apgd.c, fab.c and square.c.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"
#include "train/progress.h"

void rcv_autoattack_defaults(rcv_autoattack_cfg *c, rcv_norm norm) {
    memset(c, 0, sizeof *c);
    c->norm = norm;
    c->eps = norm == RCV_NORM_L2 ? 0.5f : 8.0f / 255.0f;
    c->version = RCV_AA_STANDARD;
    c->n_iter = 100;
    c->n_queries = 5000;
    c->eot_iter = 20;
}

typedef enum { AA_APGD_CE, AA_APGD_DLR, AA_APGD_T, AA_FAB_T, AA_SQUARE, AA_KINDS } aa_kind;
static const char *const aa_names[AA_KINDS] = {"apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square"};

// The version's attacks, or the comma list; -1 with a message on an unknown name.
static int attack_list(const rcv_autoattack_cfg *c, aa_kind *k, int *n) {
    *n = 0;
    if (!c->attacks) {
        if (c->version == RCV_AA_RAND) k[(*n)++] = AA_APGD_CE, k[(*n)++] = AA_APGD_DLR;
        else k[(*n)++] = AA_APGD_CE, k[(*n)++] = AA_APGD_T, k[(*n)++] = AA_FAB_T, k[(*n)++] = AA_SQUARE;
        return 0;
    }
    const char *p = c->attacks;
    while (*p) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int a = 0; a < AA_KINDS; a++)
            if (strlen(aa_names[a]) == len && !strncmp(p, aa_names[a], len)) found = a;
        if (found < 0)
            return rcv_fail("autoattack: attack '%.*s', expected a comma list of apgd-ce, apgd-dlr, apgd-t, fab-t, square",
                            (int)len, p);
        if (*n == RCV_AA_MAX_ATTACKS) return rcv_fail("autoattack: '%s': at most %d attacks", c->attacks, RCV_AA_MAX_ATTACKS);
        k[(*n)++] = (aa_kind)found;
        p += len + (p[len] == ',');
    }
    if (!*n) return rcv_fail("autoattack: no attack named in '%s'", c->attacks);
    return 0;
}

int rcv_autoattack_check(const rcv_autoattack_cfg *c) {
    aa_kind k[RCV_AA_MAX_ATTACKS];
    int n;
    return attack_list(c, k, &n);
}

static double ce_loss(void *ctx, int i, const float *z, int k, float *dz) {
    const int32_t *y = ctx;
    return rcv_loss_ce(z, k, y[i], dz);
}

// The reference's checks on the clean images: probability-like outputs, zero gradients.
static void checks(const rcv_classifier *f, const float *x, const int32_t *y, int n, const float *z,
                   rcv_autoattack_result *r, int verbose) {
    int k = rcv_classifier_classes(f);
    size_t per = rcv_classifier_per_image(f);
    for (int i = 0; i < n; i++) {
        double s = 0;
        int in01 = 1;
        for (int j = 0; j < k; j++) s += z[(size_t)i * k + j], in01 &= z[(size_t)i * k + j] >= 0 && z[(size_t)i * k + j] <= 1;
        r->probabilities += in01 && fabs(s - 1) < 1e-5;
    }
    float *g = rcv_xmalloc((size_t)n * per * sizeof(float));
    rcv_classifier_grad(f, x, n, ce_loss, (void *)y, NULL, NULL, g);
    for (int i = 0; i < n; i++) {
        int zero = 1;
        for (size_t e = 0; e < per && zero; e++) zero = g[(size_t)i * per + e] == 0;
        r->zero_grad += zero;
    }
    free(g);
    if (r->probabilities && verbose)
        fprintf(stderr, "autoattack: warning: the outputs of %ld of %d images look like probabilities (in [0, 1], "
                "summing to 1); AutoAttack expects logits\n", r->probabilities, n);
    if (r->zero_grad && verbose)
        fprintf(stderr, "autoattack: warning: %ld of %d images have a zero loss gradient (gradient masking?); "
                "the white-box attacks cannot move them\n", r->zero_grad, n);
    if (f->noise_sigma > 0 && r->randomized && verbose)
        fprintf(stderr, "autoattack: warning: the classifier is randomized (input noise sigma %g); use the rand "
                "version (EoT)\n", f->noise_sigma);
}

// Runs attack `k` on the nr images xr (labels yr); rob gets 1 where still robust.
static int run_one(const rcv_classifier *f, aa_kind k, const rcv_autoattack_cfg *c, const float *xr, const int32_t *yr,
                   int nr, float *adv, uint8_t *rob) {
    rcv_rng rng;
    rcv_rng_init(&rng, c->seed);
    int kc = rcv_classifier_classes(f), targets = kc - 1 < 9 ? kc - 1 : 9;
    switch (k) {
    case AA_APGD_CE: case AA_APGD_DLR: case AA_APGD_T: {
        rcv_apgd_cfg a;
        rcv_apgd_defaults(&a, c->norm, k == AA_APGD_CE ? RCV_APGD_CE : k == AA_APGD_DLR ? RCV_APGD_DLR : RCV_APGD_DLR_T);
        a.eps = c->eps, a.n_iter = c->n_iter, a.n_target_classes = targets;
        if (c->version == RCV_AA_RAND) a.eot_iter = c->eot_iter;
        return rcv_attack_apgd(f, xr, yr, nr, &a, &rng, adv, rob);
    }
    case AA_FAB_T: {
        rcv_fab_cfg a;
        rcv_fab_defaults(&a, c->norm);
        a.eps = c->eps, a.n_iter = c->n_iter, a.n_target_classes = targets, a.targeted = 1;
        return rcv_attack_fab(f, xr, yr, nr, &a, &rng, adv, rob);
    }
    case AA_SQUARE: {
        rcv_square_cfg a;
        rcv_square_defaults(&a, c->norm);
        a.eps = c->eps, a.n_queries = c->n_queries;
        return rcv_attack_square(f, xr, yr, nr, &a, &rng, adv, rob);
    }
    default: return rcv_fail("autoattack: attack %d", (int)k);
    }
}

int rcv_autoattack(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_autoattack_cfg *c,
                   float *x_adv, uint8_t *robust, rcv_autoattack_result *r) {
    memset(r, 0, sizeof *r);
    if (rcv_classifier_check(f)) return -1;
    if (!(c->eps >= 0) || !isfinite(c->eps) || c->n_iter < 1 || c->n_queries < 1 || c->eot_iter < 1)
        return rcv_fail("autoattack: eps %g, iterations %d, queries %d, EoT samples %d: expected eps >= 0 and "
                        "counts >= 1", c->eps, c->n_iter, c->n_queries, c->eot_iter);
    if (c->norm != RCV_NORM_LINF && c->norm != RCV_NORM_L2)
        return rcv_fail("autoattack: norm %d, expected linf or l2", (int)c->norm);
    aa_kind kinds[RCV_AA_MAX_ATTACKS];
    int n_att, k = rcv_classifier_classes(f);
    if (attack_list(c, kinds, &n_att)) return -1;
    for (int a = 0; a < n_att; a++)
        if (kinds[a] != AA_APGD_CE && k < 4)
            return rcv_fail("autoattack: %s needs at least 4 classes (DLR's sorted logits), the model has %d",
                            aa_names[kinds[a]], k);
    size_t per = rcv_classifier_per_image(f);
    r->n = n, r->n_attacks = n_att;
    r->randomized = f->noise_sigma > 0 && c->version == RCV_AA_STANDARD;
    float *z = rcv_xmalloc((size_t)n * k * sizeof(float));
    uint8_t *rob = robust ? robust : rcv_xmalloc((size_t)n);
    rcv_classifier_logits(f, x, n, z);
    for (int i = 0; i < n; i++) {
        rob[i] = rcv_argmax(z + (size_t)i * k, k) == y[i];
        r->clean += rob[i];
    }
    memcpy(x_adv, x, (size_t)n * per * sizeof(float));
    checks(f, x, y, n, z, r, c->verbose);
    if (c->verbose)
        fprintf(stderr, "autoattack %s, %s eps %.5g: clean accuracy %.2f%% (%d images)\n",
                c->version == RCV_AA_RAND ? "rand" : "standard", c->norm == RCV_NORM_L2 ? "L2" : "Linf", c->eps,
                100.0 * r->clean / (n ? n : 1), n);
    int *idx = rcv_xmalloc((size_t)n * sizeof(int));
    int32_t *yr = rcv_xmalloc((size_t)n * sizeof(int32_t));
    float *xr = rcv_xmalloc((size_t)n * per * sizeof(float)), *ar = rcv_xmalloc((size_t)n * per * sizeof(float));
    uint8_t *rr = rcv_xmalloc((size_t)n);
    long left = r->clean;
    int rc = 0;
    for (int a = 0; a < n_att; a++) {
        snprintf(r->name[a], sizeof r->name[a], "%s", aa_names[kinds[a]]);
        double t0 = rcv_now();
        int nr = 0;
        for (int i = 0; i < n; i++)
            if (rob[i]) {
                idx[nr] = i, yr[nr] = y[i];
                memcpy(xr + (size_t)nr * per, x + (size_t)i * per, per * sizeof(float));
                nr++;
            }
        if (nr && run_one(f, kinds[a], c, xr, yr, nr, ar, rr)) {
            rc = -1;
            break;
        }
        for (int j = 0; j < nr; j++)
            if (!rr[j]) {
                rob[idx[j]] = 0;
                memcpy(x_adv + (size_t)idx[j] * per, ar + (size_t)j * per, per * sizeof(float));
                left--;
            }
        r->robust[a] = left;
        r->seconds[a] = rcv_now() - t0;
        if (kinds[a] == AA_SQUARE && a > 0 && left < r->robust[a - 1]) r->square_lowered = 1;
        if (c->verbose)
            fprintf(stderr, "autoattack: robust accuracy after %-8s %6.2f%% (%ld of %d images, %.1f s)\n",
                    aa_names[kinds[a]], 100.0 * left / (n ? n : 1), left, n, r->seconds[a]);
    }
    // The reference's final check: every reported adversarial example is inside the ball and
    // misclassified (a deterministic classifier is re-run; a randomized one is taken at its word).
    if (!rc && f->noise_sigma == 0) {
        rcv_classifier_logits(f, x_adv, n, z);
        for (int i = 0; i < n && !rc; i++) {
            double linf = 0, l2 = 0;
            for (size_t e = 0; e < per; e++) {
                double d = (double)x_adv[(size_t)i * per + e] - x[(size_t)i * per + e];
                linf = fmax(linf, fabs(d)), l2 += d * d;
            }
            double nrm = c->norm == RCV_NORM_L2 ? sqrt(l2) : linf;
            if (nrm > c->eps * (1 + 1e-5) + 1e-7)
                rc = rcv_fail("autoattack: image %d's adversarial example is %g from it, outside eps %g", i, nrm, c->eps);
            else if (!rob[i] && rcv_argmax(z + (size_t)i * k, k) == y[i] && nrm > 0)
                rc = rcv_fail("autoattack: image %d reported broken but its adversarial example is classified "
                              "correctly", i);
        }
    }
    if (!rc && r->square_lowered && c->verbose)
        fprintf(stderr, "autoattack: warning: Square, a black-box attack, lowered the robust accuracy the white-box "
                "attacks left: a sign of gradient masking; the white-box numbers alone would overestimate robustness\n");
    free(idx), free(yr), free(xr), free(ar), free(rr), free(z);
    if (!robust) free(rob);
    return rc;
}
