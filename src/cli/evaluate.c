// robustcv evaluate: the robustness suite (suite.h) over one or more checkpoints.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/attack_robust.h"
#include "cli/cli.h"
#include "robustcv/card.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/json.h"
#include "robustcv/suite.h"
#include "robustcv/train.h"

// "0.02,0.05" -> v[], n; -1 on a bad list.
static int parse_list(const char *s, float *v, int *n, const char *opt) {
    *n = 0;
    if (!s || !*s || !strcmp(s, "none")) return 0;
    char *end;
    for (const char *p = s; *p && *n < RCV_SUITE_MAX_EPS; p = *end ? end + 1 : end) {
        v[(*n)++] = strtof(p, &end);
        if (end == p || (*end && *end != ',')) {
            fprintf(stderr, "robustcv: --%s '%s': expected numbers separated by commas\n", opt, s);
            return -1;
        }
    }
    return 0;
}

void cli_aa_json(rcv_json_writer *w, const rcv_suite_result *r, int m) {
    rcv_json_begin_array(w);
    for (int e = 0; r->aa && e < r->n_aa; e++) {
        const rcv_aa_row *q = &r->aa[(size_t)m * r->n_aa + e];
        rcv_json_begin_object(w);
        rcv_json_key(w, "norm"), rcv_json_string(w, "Linf");
        rcv_json_key(w, "eps"), rcv_json_number(w, q->eps);
        rcv_json_key(w, "images"), rcv_json_int(w, q->n);
        rcv_json_key(w, "clean"), rcv_json_number(w, q->clean);
        rcv_json_key(w, "pgd"), rcv_json_number(w, q->pgd);
        rcv_json_key(w, "pgd_steps"), rcv_json_int(w, q->pgd_steps);
        rcv_json_key(w, "autoattack"), rcv_json_number(w, q->aa);
        cli_aa_trace_json(w, &q->res, "seconds");
        rcv_json_end_object(w);
    }
    rcv_json_end_array(w);
}

void cli_suite_json(rcv_json_writer *w, const rcv_suite_result *r, const char *const *names) {
    rcv_json_begin_object(w);
    rcv_json_key(w, "images");
    rcv_json_int(w, r->n);
    rcv_json_key(w, "models");
    rcv_json_begin_array(w);
    for (int m = 0; m < r->n_models; m++) {
        rcv_json_begin_object(w);
        rcv_json_key(w, "name");
        rcv_json_string(w, names[m]);
        rcv_json_key(w, "ece");
        rcv_json_number(w, r->ece[m]);
        rcv_json_key(w, "uap_fooling_rate");
        if (r->uap_fooling[m] >= 0) rcv_json_number(w, r->uap_fooling[m]);
        else rcv_json_null(w);
        if (r->aa) rcv_json_key(w, "autoattack"), cli_aa_json(w, r, m);
        rcv_json_key(w, "sets");
        rcv_json_begin_object(w);
        for (int s = 0; s < r->n_sets; s++) {
            const rcv_set_result *q = &r->res[(size_t)m * r->n_sets + s];
            rcv_json_key(w, q->name);
            rcv_json_begin_object(w);
            rcv_json_key(w, "top1");
            rcv_json_number(w, q->top1);
            rcv_json_key(w, "top5");
            rcv_json_number(w, q->top5);
            rcv_json_key(w, "nll");
            rcv_json_number(w, q->nll);
            rcv_json_end_object(w);
        }
        rcv_json_end_object(w);
        rcv_json_end_object(w);
    }
    rcv_json_end_array(w);
    if (r->aa && r->aa_ensemble) rcv_json_key(w, "ensemble_autoattack"), cli_aa_json(w, r, r->n_models);
    rcv_json_end_object(w);
}

void cli_suite_print(const rcv_suite_result *r, const char *const *names) {
    printf("%-22s", "top-1 (%)");
    for (int m = 0; m < r->n_models; m++) printf(" %14.14s", names[m]);
    printf("\n");
    for (int s = 0; s < r->n_sets; s++) {
        printf("%-22s", r->res[s].name);
        for (int m = 0; m < r->n_models; m++) printf(" %14.2f", 100 * r->res[(size_t)m * r->n_sets + s].top1);
        printf("\n");
    }
    printf("%-22s", "ECE (%)");
    for (int m = 0; m < r->n_models; m++) printf(" %14.2f", 100 * r->ece[m]);
    printf("\n%-22s", "UAP fooling (%)");
    for (int m = 0; m < r->n_models; m++) printf(" %14.2f", r->uap_fooling[m] < 0 ? 0 : 100 * r->uap_fooling[m]);
    printf("\n");
    for (int e = 0; r->aa && e < r->n_aa; e++) {
        int rows = r->n_models + r->aa_ensemble;
        printf("\nL-inf eps %g, the first %d images: clean / PGD-%d / AutoAttack (%%)\n", r->aa[e].eps, r->aa[e].n,
               r->aa[e].pgd_steps);
        for (int m = 0; m < rows; m++) {
            const rcv_aa_row *q = &r->aa[(size_t)m * r->n_aa + e];
            printf("  %-20.20s %6.2f %6.2f %6.2f", m < r->n_models ? names[m] : "ensemble (as one)", 100 * q->clean,
                   100 * q->pgd, 100 * q->aa);
            for (int a = 0; a < q->res.n_attacks; a++)
                printf("  %s %.2f", q->res.name[a], 100.0 * q->res.robust[a] / (q->n ? q->n : 1));
            printf("\n");
        }
    }
}

int cli_aa_attacks_check(const char *v) {
    rcv_autoattack_cfg ac;
    rcv_autoattack_defaults(&ac, RCV_NORM_LINF);
    ac.attacks = v;
    if (!rcv_autoattack_check(&ac)) return 0;
    fprintf(stderr, "robustcv: --aa-attacks '%s': %s\n", v, rcv_error());
    return -1;
}

int cli_suite_options(const rcv_opt *opts, rcv_suite_cfg *c) {
    int sym = 1, transfer = 1;
    rcv_suite_defaults(c);
    c->autoattack = 500;
    if (rcv_arg_int(opts, "autoattack", &c->autoattack) || rcv_arg_int(opts, "aa-ensemble", &c->aa_ensemble) ||
        rcv_arg_int(opts, "corruptions", &c->corruptions) || rcv_arg_int(opts, "denoise", &c->denoise) ||
        rcv_arg_int(opts, "limit", &c->limit) || rcv_arg_int(opts, "batch", &c->batch) ||
        rcv_arg_int(opts, "pgd-steps", &c->pgd_steps) || rcv_arg_int(opts, "uap", &c->uap) ||
        rcv_arg_int(opts, "symmetries", &sym) || rcv_arg_int(opts, "transfer", &transfer))
        return -1;
    c->symmetries = sym, c->transfer = transfer;
    const char *v;
    if ((v = rcv_arg(opts, "noise")) && parse_list(v, c->noise_sigma, &c->n_noise, "noise")) return -1;
    if ((v = rcv_arg(opts, "fgsm-eps")) && parse_list(v, c->fgsm_eps, &c->n_fgsm, "fgsm-eps")) return -1;
    if ((v = rcv_arg(opts, "pgd-eps")) && parse_list(v, c->pgd_eps, &c->n_pgd, "pgd-eps")) return -1;
    if ((v = rcv_arg(opts, "aa-eps")) && parse_list(v, c->aa_eps, &c->n_aa, "aa-eps")) return -1;
    // checked now, not after the other evaluations
    if ((c->aa_attacks = rcv_arg(opts, "aa-attacks")) && cli_aa_attacks_check(c->aa_attacks)) return -1;
    if (c->autoattack < 0 || c->limit < 0 || c->corruptions < 0) {
        fprintf(stderr, "robustcv: --autoattack %d, --limit %d, --corruptions %d: expected counts >= 0\n", c->autoattack,
                c->limit, c->corruptions);
        return -1;
    }
    for (int e = 0; e < c->n_aa; e++)
        if (!(c->aa_eps[e] >= 0)) {
            fprintf(stderr, "robustcv: --aa-eps %g: expected eps >= 0\n", c->aa_eps[e]);
            return -1;
        }
    return 0;
}

// card.json beside each checkpoint, or DIR/NAME.card.json with --cards DIR (created): NAME is the
// checkpoint's file stem, or its directory's name for robustcv train's last / best.
static int write_cards(const rcv_suite_result *r, const rcv_model *models, const char *const *ckpts, int n,
                       const char *data, const char *dir) {
    if (dir && rcv_mkdir_p(dir)) return -1;
    for (int m = 0; m < n; m++) {
        char path[1200], stem[600], parent[600] = "";
        const char *base = strrchr(ckpts[m], '/');
        if (base) {
            const char *p = base;
            while (p > ckpts[m] && p[-1] != '/') p--;
            snprintf(parent, sizeof parent, "%.*s", (int)(base - p), p);
        }
        base = base ? base + 1 : ckpts[m];
        snprintf(stem, sizeof stem, "%s", base);
        char *dot = strstr(stem, ".safetensors");
        if (dot) *dot = 0;
        if (*parent && (!strcmp(stem, "last") || !strcmp(stem, "best"))) snprintf(stem, sizeof stem, "%s", parent);
        if (dir) snprintf(path, sizeof path, "%s/%s.card.json", dir, stem);
        else snprintf(path, sizeof path, "%.*scard.json", (int)(base - ckpts[m]), ckpts[m]);
        rcv_card c;
        rcv_card_from_suite(&c, r, m, 0, stem, models[m].name, data, ckpts[m]);
        c.mce_baseline = ckpts[0];
        if (rcv_card_write(path, &c)) return -1;
        fprintf(stderr, "evaluate: model card %s\n", path);
    }
    return 0;
}

int cli_evaluate(int argc, char **argv) {
    rcv_opt opts[] = {
        {"data", "SPEC", "test data (default fashion-mnist); see robustcv train --help", NULL},
        {"limit", "N", "evaluate the first N test images (default all)", NULL},
        {"batch", "N", "batch size (default 250)", NULL},
        {"noise", "S,S", "Gaussian noise std in pixels (default 0.1,0.2; 'none' = off)", NULL},
        {"fgsm-eps", "E,E", "white-box FGSM eps in pixels (default 0.02,0.05,0.1)", NULL},
        {"pgd-eps", "E,E", "white-box L-inf PGD eps (default 0.05,0.1), alpha eps/4, random start", NULL},
        {"pgd-steps", "N", "PGD steps (default 10)", NULL},
        {"symmetries", "0|1", "the 8 symmetries of the square and TTA over them (default 1)", NULL},
        {"transfer", "0|1", "FGSM/PGD crafted on the first checkpoint, evaluated on the others (default 1)", NULL},
        {"uap", "N", "universal perturbation per model from N images, xi = the largest FGSM eps (default 500, 0 = off)", NULL},
        {"corruptions", "N", "the 15 corruptions x 5 severities on the first N images (default 500, 0 = off)", NULL},
        {"denoise", "0|1", "the NL-means denoised test set (default 1)", NULL},
        {"autoattack", "N", "AutoAttack standard (L-inf) on the first N images, PGD on the same beside it (default 500, 0 = off)", NULL},
        {"aa-eps", "E,E", "AutoAttack eps (default: the --pgd-eps list)", NULL},
        {"aa-attacks", "LIST", "AutoAttack's attacks (default apgd-ce,apgd-t,fab-t,square)", NULL},
        {"aa-ensemble", "0|1", "with 2+ checkpoints, also AutoAttack them as one ensemble (default 1)", NULL},
        {"cards", "DIR", "write each checkpoint's model card here (created) as NAME.card.json, NAME the file stem or, for "
                          "last/best, its directory (default: card.json beside it)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "NAME", "cpu (default), ref or cuda: where the models and the attacks run", NULL},
        {"json", "FILE", "write the results as JSON", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[64];
    int npos, threads = 0;
    int rc = rcv_args_parse(argc, argv, opts, "evaluate", "CHECKPOINT... [options]", pos, &npos, 64);
    if (rc) return rc == 1 ? 0 : 2;
    rcv_suite_cfg cfg;
    if (cli_suite_options(opts, &cfg) || rcv_arg_int(opts, "threads", &threads) ||
        cli_parse_device(rcv_arg(opts, "device"), &cfg.backend))
        return 2;
    if (npos == 0) {
        fprintf(stderr, "robustcv evaluate: give one or more checkpoints\n");
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    cfg.verbose = 1;
    rcv_model *models = rcv_xcalloc((size_t)npos, sizeof(rcv_model));
    rcv_model **mp = rcv_xcalloc((size_t)npos, sizeof(rcv_model *));
    rcv_dataset d = {0};
    rcv_suite_result r = {0};
    int loaded = 0;
    rc = 1;
    for (; loaded < npos; loaded++) {
        if (rcv_ckpt_load_model(pos[loaded], &models[loaded], NULL)) goto fail;
        mp[loaded] = &models[loaded];
    }
    const char *data = rcv_arg(opts, "data");
    if (rcv_data_open(data ? data : "fashion-mnist", 0, &d) || rcv_suite_run(mp, npos, &d, &cfg, &r)) goto fail;
    cli_suite_print(&r, pos);
    if (write_cards(&r, models, pos, npos, data ? data : "fashion-mnist", rcv_arg(opts, "cards"))) goto fail;
    const char *jp = rcv_arg(opts, "json");
    if (jp) {
        rcv_json_writer w;
        rcv_json_writer_init(&w);
        cli_suite_json(&w, &r, pos);
        const char *t = rcv_json_text(&w);
        int bad = rcv_file_write_atomic(jp, t, strlen(t));
        rcv_json_writer_free(&w);
        if (bad) goto fail;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "robustcv evaluate: %s\n", rcv_error());
out:
    rcv_suite_result_free(&r);
    rcv_dataset_free(&d);
    for (int i = 0; i < loaded; i++) rcv_model_free(&models[i]);
    free(models);
    free(mp);
    return rc;
}
