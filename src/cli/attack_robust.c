// robustcv attack's attacks of the robustness-evaluation wave that run on a classifier and count
// their own robust points: autoattack (standard / rand), fab-t, square and cw. Their options are in
// src/cli/attack.c's table; this file turns them into configs, runs them on all images at once
// (they gather the points still robust themselves) and adds their settings to results.json.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/attack_robust.h"
#include "robustcv/error.h"

int cli_robust_attack_kind(const char *name) {
    static const char *const names[] = {"autoattack", "fab-t", "square", "cw"};
    for (int k = 0; k < 4; k++)
        if (!strcmp(name, names[k])) return k;
    return -1;
}

int cli_robust_attack_parse(const rcv_opt *opts, int kind, rcv_norm norm, float eps, cli_robust_attack *a) {
    memset(a, 0, sizeof *a);
    a->kind = kind;
    rcv_autoattack_defaults(&a->aa, norm);
    rcv_fab_defaults(&a->fab, norm);
    rcv_square_defaults(&a->sq, norm);
    rcv_cw_defaults(&a->cw);
    const char *v = rcv_arg(opts, "version");
    if (v && strcmp(v, "standard") && strcmp(v, "rand")) {
        fprintf(stderr, "robustcv attack: --version '%s', expected standard or rand\n", v);
        return 2;
    }
    a->aa.version = v && !strcmp(v, "rand") ? RCV_AA_RAND : RCV_AA_STANDARD;
    a->aa.attacks = rcv_arg(opts, "aa-attacks");
    if (rcv_arg_int(opts, "n-queries", &a->sq.n_queries) || rcv_arg_float(opts, "p-init", &a->sq.p_init) ||
        rcv_arg_float(opts, "c", &a->cw.c) || rcv_arg_float(opts, "kappa", &a->cw.kappa) ||
        rcv_arg_float(opts, "lr", &a->cw.lr) || rcv_arg_int(opts, "binary-steps", &a->cw.binary_steps) ||
        rcv_arg_float(opts, "noise-sigma", &a->noise_sigma) || rcv_arg_int(opts, "eot-iter", &a->aa.eot_iter))
        return 2;
    if (rcv_arg(opts, "steps")) {
        int s;
        if (rcv_arg_int(opts, "steps", &s)) return 2;
        a->aa.n_iter = a->fab.n_iter = a->cw.steps = s;
    }
    if (eps >= 0) a->aa.eps = a->fab.eps = a->sq.eps = eps;
    a->aa.n_queries = a->sq.n_queries;
    if (a->aa.n_iter < 1 || a->sq.n_queries < 1 || !(a->sq.p_init > 0 && a->sq.p_init <= 1) || !(a->cw.c >= 0) ||
        !(a->cw.kappa >= 0) || !(a->cw.lr > 0) || a->cw.binary_steps < 0 || !(a->noise_sigma >= 0) || a->aa.eot_iter < 1) {
        fprintf(stderr, "robustcv attack: --steps %d, --n-queries %d, --p-init %g, --c %g, --kappa %g, --lr %g, "
                "--binary-steps %d, --noise-sigma %g, --eot-iter %d: expected steps, n-queries, eot-iter >= 1, "
                "0 < p-init <= 1, c, kappa >= 0, lr > 0, binary-steps >= 0, noise-sigma >= 0\n", a->aa.n_iter,
                a->sq.n_queries, a->sq.p_init, a->cw.c, a->cw.kappa, a->cw.lr, a->cw.binary_steps, a->noise_sigma,
                a->aa.eot_iter);
        return 2;
    }
    if (kind == 3 && norm != RCV_NORM_L2 && rcv_arg(opts, "norm")) {
        fprintf(stderr, "robustcv attack: cw is an L2 attack (--norm '%s')\n", rcv_arg(opts, "norm"));
        return 2;
    }
    return 0;
}

int cli_robust_attack_run(cli_robust_attack *a, const rcv_classifier *f, const float *x, const int32_t *y, int n,
                          rcv_rng *rng, float *x_adv, uint8_t *robust) {
    a->aa.verbose = 1;
    switch (a->kind) {
    case 0: return rcv_autoattack(f, x, y, n, &a->aa, x_adv, robust, &a->res);
    case 1: return rcv_attack_fab(f, x, y, n, &a->fab, rng, x_adv, robust);
    case 2: return rcv_attack_square(f, x, y, n, &a->sq, rng, x_adv, robust);
    default: {
        if (rcv_attack_cw(f, x, y, n, &a->cw, x_adv)) return -1;
        // CW counts success as misclassification at any L2: robust = still correct.
        int k = rcv_classifier_classes(f);
        float *z = rcv_xmalloc((size_t)n * k * sizeof(float));
        rcv_classifier_logits(f, x_adv, n, z);
        for (int i = 0; i < n; i++) {
            int am = 0;
            for (int j = 1; j < k; j++) am = z[(size_t)i * k + j] > z[(size_t)i * k + am] ? j : am;
            robust[i] = am == y[i];
        }
        free(z);
        return 0;
    }
    }
}

void cli_aa_trace_json(rcv_json_writer *w, const rcv_autoattack_result *r, const char *seconds_key) {
    rcv_json_key(w, "after");
    rcv_json_begin_object(w);
    for (int k = 0; k < r->n_attacks; k++)
        rcv_json_key(w, r->name[k]), rcv_json_number(w, (double)r->robust[k] / (r->n ? r->n : 1));
    rcv_json_end_object(w);
    rcv_json_key(w, seconds_key);
    rcv_json_begin_object(w);
    for (int k = 0; k < r->n_attacks; k++) rcv_json_key(w, r->name[k]), rcv_json_number(w, r->seconds[k]);
    rcv_json_end_object(w);
    rcv_json_key(w, "warnings");
    rcv_json_begin_array(w);
    if (r->probabilities) rcv_json_string(w, "outputs look like probabilities");
    if (r->zero_grad) rcv_json_string(w, "zero gradients");
    if (r->randomized) rcv_json_string(w, "randomized classifier under the standard version");
    if (r->square_lowered) rcv_json_string(w, "Square lowered the robust accuracy after the white-box attacks");
    rcv_json_end_array(w);
}

void cli_robust_attack_json(rcv_json_writer *w, const cli_robust_attack *a) {
    switch (a->kind) {
    case 0:
        rcv_json_key(w, "version"), rcv_json_string(w, a->aa.version == RCV_AA_RAND ? "rand" : "standard");
        rcv_json_key(w, "norm"), rcv_json_string(w, a->aa.norm == RCV_NORM_L2 ? "l2" : "linf");
        rcv_json_key(w, "eps"), rcv_json_number(w, a->aa.eps);
        rcv_json_key(w, "steps"), rcv_json_int(w, a->aa.n_iter);
        rcv_json_key(w, "n_queries"), rcv_json_int(w, a->aa.n_queries);
        if (a->aa.version == RCV_AA_RAND) rcv_json_key(w, "eot_iter"), rcv_json_int(w, a->aa.eot_iter);
        cli_aa_trace_json(w, &a->res, "attack_seconds");
        break;
    case 1:
        rcv_json_key(w, "norm"), rcv_json_string(w, a->fab.norm == RCV_NORM_L2 ? "l2" : "linf");
        rcv_json_key(w, "eps"), rcv_json_number(w, a->fab.eps);
        rcv_json_key(w, "steps"), rcv_json_int(w, a->fab.n_iter);
        rcv_json_key(w, "n_target_classes"), rcv_json_int(w, a->fab.n_target_classes);
        break;
    case 2:
        rcv_json_key(w, "norm"), rcv_json_string(w, a->sq.norm == RCV_NORM_L2 ? "l2" : "linf");
        rcv_json_key(w, "eps"), rcv_json_number(w, a->sq.eps);
        rcv_json_key(w, "n_queries"), rcv_json_int(w, a->sq.n_queries);
        rcv_json_key(w, "p_init"), rcv_json_number(w, a->sq.p_init);
        break;
    default:
        rcv_json_key(w, "c"), rcv_json_number(w, a->cw.c);
        rcv_json_key(w, "kappa"), rcv_json_number(w, a->cw.kappa);
        rcv_json_key(w, "steps"), rcv_json_int(w, a->cw.steps);
        rcv_json_key(w, "lr"), rcv_json_number(w, a->cw.lr);
        rcv_json_key(w, "binary_steps"), rcv_json_int(w, a->cw.binary_steps);
    }
    if (a->noise_sigma > 0) rcv_json_key(w, "noise_sigma"), rcv_json_number(w, a->noise_sigma);
}
