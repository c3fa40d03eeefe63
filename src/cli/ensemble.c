// robustcv ensemble: every subset of the given checkpoints on the clean test set, averaging
// (top-1, top-5) and majority vote (top-1), as the seed's Table 2; optional JSON in results.json's
// "ensembles" format (docs/report.md).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/ensemble.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/metrics.h"
#include "robustcv/train.h"

// Splits "a,b,c" into at most max pieces (in place). Returns the count.
static int split_commas(char *s, char **out, int max) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ",")) out[n++] = tok;
    return n;
}

int cli_ensemble(int argc, char **argv) {
    rcv_opt opts[] = {
        {"checkpoints", "A,B,...", "checkpoints to ensemble, comma-separated (required, 1..16)", NULL},
        {"data", "SPEC", "data source (default fashion-mnist); the test split is used", NULL},
        {"space", "NAME", "average logits (default, as the seed) or probs", NULL},
        {"ties", "NAME", "vote ties: lowest (default, the seed's rule) or prob (highest summed probability)", NULL},
        {"weights", "W1,W2,...", "weights of the models in the average (default equal)", NULL},
        {"limit", "N", "use the first N test images (default all)", NULL},
        {"batch", "N", "batch size (default 256)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "NAME", "cpu (default), ref or cuda", NULL},
        {"json", "FILE", "write the table as results.json's \"ensembles\" object", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos, batch = 256, threads = 0, limit = 0;
    int rc = rcv_args_parse(argc, argv, opts, "ensemble", "--checkpoints A,B,... [options]", pos, &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    rcv_backend be;
    if (rcv_arg_int(opts, "batch", &batch) || rcv_arg_int(opts, "threads", &threads) ||
        rcv_arg_int(opts, "limit", &limit) || cli_parse_device(rcv_arg(opts, "device"), &be))
        return 2;
    const char *cks = rcv_arg(opts, "checkpoints"), *data = rcv_arg(opts, "data");
    const char *sp = rcv_arg(opts, "space"), *ti = rcv_arg(opts, "ties"), *ws = rcv_arg(opts, "weights");
    if (!cks) {
        fprintf(stderr, "robustcv ensemble: --checkpoints A,B,... is required\n");
        return 2;
    }
    rcv_ens_space space = RCV_ENS_LOGITS;
    rcv_vote_tie tie = RCV_VOTE_TIE_LOWEST;
    if (sp && !strcmp(sp, "probs")) space = RCV_ENS_PROBS;
    else if (sp && strcmp(sp, "logits")) {
        fprintf(stderr, "robustcv ensemble: --space '%s', expected logits or probs\n", sp);
        return 2;
    }
    if (ti && !strcmp(ti, "prob")) tie = RCV_VOTE_TIE_PROB;
    else if (ti && strcmp(ti, "lowest")) {
        fprintf(stderr, "robustcv ensemble: --ties '%s', expected lowest or prob\n", ti);
        return 2;
    }
    if (batch <= 0 || limit < 0) {
        fprintf(stderr, "robustcv ensemble: --batch %d / --limit %d, expected > 0 / >= 0\n", batch, limit);
        return 2;
    }
    char *ckbuf = rcv_xstrdup(cks), *paths[RCV_ENSEMBLE_MAX + 1];
    int nm = split_commas(ckbuf, paths, RCV_ENSEMBLE_MAX + 1);
    if (nm < 1 || nm > RCV_ENSEMBLE_MAX) {
        fprintf(stderr, "robustcv ensemble: %d checkpoints, expected 1..%d\n", nm, RCV_ENSEMBLE_MAX);
        free(ckbuf);
        return 2;
    }
    float weights[RCV_ENSEMBLE_MAX];
    if (ws) {
        char *wbuf = rcv_xstrdup(ws), *wp[RCV_ENSEMBLE_MAX + 1];
        int nw = split_commas(wbuf, wp, RCV_ENSEMBLE_MAX + 1);
        int bad = nw != nm;
        for (int i = 0; i < nw && !bad && i < RCV_ENSEMBLE_MAX; i++) {
            char *end;
            weights[i] = strtof(wp[i], &end);
            bad |= *end != 0 || !(weights[i] >= 0);
        }
        free(wbuf);
        if (bad) {
            fprintf(stderr, "robustcv ensemble: --weights '%s', expected %d non-negative numbers\n", ws, nm);
            free(ckbuf);
            return 2;
        }
    }
    if (threads > 0) omp_set_num_threads(threads);
    rcv_dataset d = {0};
    float *logits[RCV_ENSEMBLE_MAX] = {0};
    rcv_ens_subset *sub = NULL;
    int ns = 0, k = 0, n = 0;
    rc = 1;
    if (rcv_data_open(data ? data : "fashion-mnist", 0, &d)) {
        fprintf(stderr, "robustcv ensemble: %s\n", rcv_error());
        goto out;
    }
    n = limit > 0 && limit < d.n ? limit : d.n;
    for (int i = 0; i < nm; i++) {
        rcv_model m;
        if (rcv_ckpt_load_model(paths[i], &m, NULL)) {
            fprintf(stderr, "robustcv ensemble: %s\n", rcv_error());
            goto out;
        }
        if (i == 0) k = m.cfg.n_classes;
        if (m.cfg.n_classes != k) {
            fprintf(stderr, "robustcv ensemble: %s has %d classes, %s has %d\n", paths[i], m.cfg.n_classes, paths[0], k);
            rcv_model_free(&m);
            goto out;
        }
        logits[i] = rcv_xmalloc((size_t)n * k * sizeof(float));
        int r = rcv_predict_logits(&m, &d, n, batch, be, logits[i]);
        if (r) fprintf(stderr, "robustcv ensemble: %s: %s\n", paths[i], rcv_error());
        else
            printf("(%d) %-40s %s top-1 %.2f%%\n", i + 1, paths[i], m.name,
                   100 * rcv_metric_topk(logits[i], d.labels, n, k, 1));
        rcv_model_free(&m);
        if (r) goto out;
    }
    if (rcv_ensemble_subsets((const float *const *)logits, ws ? weights : NULL, d.labels, nm, n, k, space, tie, &sub,
                             &ns)) {
        fprintf(stderr, "robustcv ensemble: %s\n", rcv_error());
        goto out;
    }
    printf("\n%d test images; averaging of %s%s, vote ties to %s\n\n", n, space == RCV_ENS_PROBS ? "probabilities" : "logits",
           ws ? " (weighted)" : "", tie == RCV_VOTE_TIE_PROB ? "the highest summed probability" : "the lowest class");
    printf("%-44s %9s %9s\n", "Model", "top-1", "top-5");
    for (int pass = 0; pass < 3; pass++)
        for (int j = 0; j < ns; j++) {
            if ((pass == 0) != (sub[j].size == 1)) continue;
            char who[200], label[260];
            rcv_ensemble_members_str(sub[j].mask, nm, who, sizeof who);
            if (pass == 0) snprintf(label, sizeof label, "%s %s", who, paths[__builtin_ctz(sub[j].mask)]);
            else snprintf(label, sizeof label, "Ensemble %s; %s", who, pass == 1 ? "Averaging" : "Majority Vote");
            if (pass == 2) printf("%-44s %8.2f%% %9s\n", label, 100 * sub[j].vote_top1, "-");
            else printf("%-44s %8.2f%% %8.2f%%\n", label, 100 * sub[j].avg_top1, 100 * sub[j].avg_top5);
        }
    const char *jp = rcv_arg(opts, "json");
    if (jp) {
        rcv_json_writer w;
        rcv_json_writer_init(&w);
        const char *sets[1] = {"clean"};
        rcv_ens_subset *tabs[1] = {sub};
        rcv_ensemble_json(&w, sets, tabs, 1, ns, nm, space, tie);
        const char *t = rcv_json_text(&w);
        int wr = rcv_file_write_atomic(jp, t, strlen(t));
        rcv_json_writer_free(&w);
        if (wr) {
            fprintf(stderr, "robustcv ensemble: %s\n", rcv_error());
            goto out;
        }
        printf("\nwrote %s\n", jp);
    }
    rc = 0;
out:
    free(sub);
    for (int i = 0; i < nm; i++) free(logits[i]);
    rcv_dataset_free(&d);
    free(ckbuf);
    return rc;
}
