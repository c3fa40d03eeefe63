// Model cards (card.h): RobustBench's fields from a suite result, written as JSON.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/card.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/metrics.h"

const char *rcv_eps_string(double eps, char *buf) {
    double k = eps * 255;
    if (eps > 0 && fabs(k - round(k)) < 1e-4 && round(k) >= 1) snprintf(buf, 32, "%d/255", (int)round(k));
    else snprintf(buf, 32, "%g", eps);
    return buf;
}

// Corruption errors of model m: err[c * 5 + s]; the count of corruptions found.
static int corruption_errors(const rcv_suite_result *r, int m, double *err, int max) {
    int nc = 0;
    for (int s = 0; s < r->n_sets; s++) {
        const rcv_set_result *q = &r->res[(size_t)m * r->n_sets + s];
        int sev;
        if (strncmp(q->name, "corrupt:", 8) || !(sev = atoi(strrchr(q->name, ':') + 1))) continue;
        if (sev == 1 && nc < max) nc++;
        if (nc && sev >= 1 && sev <= 5) err[(nc - 1) * 5 + sev - 1] = 1 - q->top1;
    }
    return nc;
}

void rcv_card_from_suite(rcv_card *c, const rcv_suite_result *r, int m, int base, const char *name, const char *arch,
                         const char *dataset, const char *checkpoint) {
    memset(c, 0, sizeof *c);
    c->name = name, c->architecture = arch, c->dataset = dataset, c->checkpoint = checkpoint;
    int ens = m >= r->n_models;
    c->number_forward_passes = ens ? r->n_ensemble : 1;
    c->clean_acc = c->autoattack_acc = c->pgd_acc = c->corruptions_acc = c->corruptions_mce = NAN;
    c->eps = NAN;
    if (!ens) c->clean_acc = r->res[(size_t)m * r->n_sets].top1, c->clean_images = r->n;
    if (r->aa && r->n_aa && (!ens || r->aa_ensemble)) {
        const rcv_aa_row *q = &r->aa[(size_t)m * r->n_aa];
        c->eps = q->eps, c->autoattack_acc = q->aa, c->pgd_acc = q->pgd, c->autoattack_images = q->n;
        if (ens) c->clean_acc = q->clean, c->clean_images = q->n;
    }
    if (ens) return;
    double err[5 * 64], berr[5 * 64];
    int nc = corruption_errors(r, m, err, 64);
    if (nc && corruption_errors(r, base, berr, 64) == nc) {
        double s = 0, mce;
        for (int i = 0; i < nc * 5; i++) s += 1 - err[i];
        c->corruptions_acc = s / (nc * 5);
        double clean_err = 1 - r->res[(size_t)m * r->n_sets].top1, base_err = 1 - r->res[(size_t)base * r->n_sets].top1;
        if (!rcv_metric_corruption(err, berr, nc, 5, clean_err, base_err, NULL, NULL, &mce, NULL))
            c->corruptions_mce = mce;
    }
}

static void pct_or_null(rcv_json_writer *w, const char *key, double v) {
    rcv_json_key(w, key);
    if (isnan(v)) {
        rcv_json_null(w);
        return;
    }
    char b[32];
    snprintf(b, sizeof b, "%.2f", 100 * v);
    rcv_json_string(w, b);
}

void rcv_card_json(rcv_json_writer *w, const rcv_card *c) {
    char b[64];
    rcv_json_begin_object(w);
    rcv_json_key(w, "name"), rcv_json_string(w, c->name);
    rcv_json_key(w, "architecture"), rcv_json_string(w, c->architecture);
    rcv_json_key(w, "dataset"), rcv_json_string(w, c->dataset);
    rcv_json_key(w, "threat_model"), rcv_json_string(w, "Linf");
    rcv_json_key(w, "eps");
    if (isnan(c->eps)) rcv_json_null(w);
    else rcv_json_string(w, rcv_eps_string(c->eps, b));
    pct_or_null(w, "clean_acc", c->clean_acc);
    pct_or_null(w, "autoattack_acc", c->autoattack_acc);
    pct_or_null(w, "pgd_acc", c->pgd_acc);
    rcv_json_key(w, "clean_images"), rcv_json_int(w, c->clean_images);
    rcv_json_key(w, "autoattack_images"), rcv_json_int(w, c->autoattack_images);
    pct_or_null(w, "corruptions_acc", c->corruptions_acc);
    pct_or_null(w, "corruptions_mce", c->corruptions_mce);
    rcv_json_key(w, "mce_baseline");
    if (isnan(c->corruptions_mce) || !c->mce_baseline) rcv_json_null(w);
    else rcv_json_string(w, c->mce_baseline);
    rcv_json_key(w, "additional_data"), rcv_json_bool(w, 0);
    rcv_json_key(w, "number_forward_passes"), rcv_json_int(w, c->number_forward_passes);
    rcv_json_key(w, "checkpoint");
    if (c->checkpoint) rcv_json_string(w, c->checkpoint);
    else rcv_json_null(w);
    rcv_json_key(w, "recipe");
    if (c->recipe) rcv_json_string(w, c->recipe);
    else rcv_json_null(w);
    rcv_json_key(w, "evaluation");
    rcv_json_string(w, "robustcv: AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square), Linf; PGD with the suite's steps");
    rcv_json_end_object(w);
}

int rcv_card_write(const char *path, const rcv_card *c) {
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    rcv_card_json(&w, c);
    rcv_json_raw(&w, "\n");
    int rc = rcv_file_write_atomic(path, rcv_json_text(&w), strlen(rcv_json_text(&w)));
    rcv_json_writer_free(&w);
    return rc;
}
