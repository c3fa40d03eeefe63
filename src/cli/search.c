// robustcv search: random search over training hyperparameters (the seed tuned
// ResNet-D's gamma by randomized search in [0, 0.2]). Each trial trains into
// OUT/trial_<i> with every other option as given; trials are ranked by their final
// test top-1 (the split `train` evaluates on) in OUT/leaderboard.json.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/json.h"
#include "robustcv/rng.h"
#include "robustcv/train.h"

typedef struct {
    char name[32];
    double lo, hi;
    int log; // log-uniform
} param_spec;

static const char *const known = "gamma, lr, weight-decay, momentum, label-smoothing, dropout, adv-eps, fgsm-alpha, "
                                 "lambda, stability-alpha, stability-sigma, jsd-lambda, pgd-eps";

static float *param_slot(rcv_train_cfg *c, const char *name) {
    if (!strcmp(name, "gamma")) return &c->mcfg.gamma;
    if (!strcmp(name, "lr")) return &c->opt.lr;
    if (!strcmp(name, "weight-decay")) return &c->opt.weight_decay;
    if (!strcmp(name, "momentum")) return &c->opt.momentum;
    if (!strcmp(name, "label-smoothing")) return &c->label_smoothing;
    if (!strcmp(name, "dropout")) return &c->mcfg.dropout;
    if (!strcmp(name, "adv-eps")) return &c->recipe.adv_eps;
    if (!strcmp(name, "fgsm-alpha")) return &c->recipe.fgsm_alpha;
    if (!strcmp(name, "lambda")) return &c->recipe.lambda;
    if (!strcmp(name, "stability-alpha")) return &c->recipe.stab_alpha;
    if (!strcmp(name, "stability-sigma")) return &c->recipe.stab_sigma;
    if (!strcmp(name, "jsd-lambda")) return &c->recipe.jsd_lambda;
    if (!strcmp(name, "pgd-eps")) return &c->recipe.pgd_eps;
    return NULL;
}

// "name=lo:hi[:log]" (several separated by commas).
static int parse_params(const char *spec, param_spec *ps, int max, int *n, rcv_train_cfg *probe) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    *n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || *n == max) return rcv_fail("--param '%s': expected NAME=LO:HI[:log] (at most %d)", t, max);
        *eq = 0;
        param_spec *p = &ps[*n];
        snprintf(p->name, sizeof p->name, "%s", t);
        if (!param_slot(probe, p->name)) return rcv_fail("--param: unknown parameter '%s'; valid: %s", p->name, known);
        char *end, *s = eq + 1;
        p->lo = strtod(s, &end);
        if (end == s || *end != ':') return rcv_fail("--param %s='%s': expected LO:HI[:log]", p->name, eq + 1);
        s = end + 1;
        p->hi = strtod(s, &end);
        if (end == s || (*end && strcmp(end, ":log")))
            return rcv_fail("--param %s='%s': expected LO:HI[:log]", p->name, eq + 1);
        p->log = !strcmp(end, ":log");
        if (!(p->hi >= p->lo) || (p->log && !(p->lo > 0)))
            return rcv_fail("--param %s: range [%g, %g]%s: expected LO <= HI%s", p->name, p->lo, p->hi,
                            p->log ? " log" : "", p->log ? " and LO > 0 for log-uniform" : "");
        (*n)++;
    }
    if (!*n) return rcv_fail("--param '%s': no parameter", spec);
    return 0;
}

// The last epoch's test_top1 in a metrics.jsonl; the best epoch's in *best.
static int read_top1(const char *path, double *last, double *best) {
    uint8_t *data;
    size_t len;
    if (rcv_file_read(path, &data, &len)) return -1;
    *last = *best = -1;
    for (char *line = (char *)data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        rcv_json_value v;
        if (*line && !rcv_json_parse(line, strlen(line), &v)) {
            const rcv_json_value *t = rcv_json_get(&v, "test_top1");
            if (t && t->type == RCV_JSON_NUMBER) {
                *last = t->num;
                if (t->num > *best) *best = t->num;
            }
        }
        rcv_json_free(&v);
        line = nl ? nl + 1 : NULL;
    }
    free(data);
    return *last < 0 ? rcv_fail("%s: no test_top1", path) : 0;
}

typedef struct {
    int trial;
    double val[8], top1, best;
} trial_result;

static int by_top1(const void *a, const void *b) {
    const trial_result *x = a, *y = b;
    return x->top1 < y->top1 ? 1 : x->top1 > y->top1 ? -1 : x->trial - y->trial;
}

int cli_search(int argc, char **argv) {
    // Pull out search's own options; the rest are train's.
    const char *pspec = NULL;
    int trials = 8;
    unsigned long long sseed = 0;
    char **rest = rcv_xmalloc((size_t)(argc + 1) * sizeof(char *));
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        const char *names[3] = {"--param", "--trials", "--search-seed"};
        int which = -1;
        for (int q = 0; q < 3; q++) {
            size_t l = strlen(names[q]);
            if (!strncmp(a, names[q], l) && (a[l] == 0 || a[l] == '=')) {
                which = q;
                val = a[l] == '=' ? a + l + 1 : (i + 1 < argc ? argv[++i] : NULL);
            }
        }
        if (which < 0) {
            if (!strcmp(a, "--help") || !strcmp(a, "-h"))
                printf("robustcv search --param NAME=LO:HI[:log][,NAME=...] [--trials N (default 8)] [--search-seed N]\n"
                       "  [train options]: each trial trains into OUT/trial_<i> (--out, default runs/default);\n"
                       "  LO:HI samples uniformly, LO:HI:log log-uniformly; parameters: %s.\n"
                       "  Trials share --seed, so only the searched values differ. The train options follow.\n\n", known);
            rest[nrest++] = argv[i];
            continue;
        }
        if (!val) {
            fprintf(stderr, "robustcv search: %s needs a value\n", names[which]);
            free(rest);
            return 2;
        }
        char *end;
        if (which == 0) pspec = val;
        else if (which == 1) {
            trials = (int)strtol(val, &end, 10);
            if (*end || trials < 1) {
                fprintf(stderr, "robustcv search: --trials '%s', expected a positive integer\n", val);
                free(rest);
                return 2;
            }
        } else {
            sseed = strtoull(val, &end, 10);
            if (*end) {
                fprintf(stderr, "robustcv search: --search-seed '%s', expected a non-negative integer\n", val);
                free(rest);
                return 2;
            }
        }
    }
    rcv_train_cfg base;
    int rc = cli_train_config(nrest, rest, "search", "--param NAME=LO:HI[:log] --trials N [train options]", &base);
    free(rest);
    if (rc) return rc == 1 ? 0 : 2;
    param_spec ps[8];
    int np;
    if (!pspec) {
        fprintf(stderr, "robustcv search: --param NAME=LO:HI[:log] is required\n");
        return 2;
    }
    if (parse_params(pspec, ps, 8, &np, &base)) {
        fprintf(stderr, "robustcv search: %s\n", rcv_error());
        return 2;
    }
    if (mkdir(base.out_dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "robustcv search: cannot create %s: %s\n", base.out_dir, strerror(errno));
        return 1;
    }
    rcv_rng rng;
    rcv_rng_init(&rng, sseed);
    trial_result *res = rcv_xcalloc((size_t)trials, sizeof *res);
    int done = 0;
    for (int t = 0; t < trials; t++) {
        rcv_train_cfg c = base;
        res[t].trial = t;
        fprintf(stderr, "search: trial %d/%d:", t + 1, trials);
        for (int p = 0; p < np; p++) {
            double u = rcv_rng_uniform(&rng);
            double v = ps[p].log ? exp(log(ps[p].lo) + u * (log(ps[p].hi) - log(ps[p].lo)))
                                 : ps[p].lo + u * (ps[p].hi - ps[p].lo);
            *param_slot(&c, ps[p].name) = (float)v;
            res[t].val[p] = (float)v;
            fprintf(stderr, " %s=%.6g", ps[p].name, (float)v);
        }
        fprintf(stderr, "\n");
        if (strlen(base.out_dir) + 20 > sizeof c.out_dir) {
            fprintf(stderr, "robustcv search: --out '%s' is too long\n", base.out_dir);
            free(res);
            return 2;
        }
        char tdir[sizeof c.out_dir + 32];
        snprintf(tdir, sizeof tdir, "%s/trial_%d", base.out_dir, t);
        memcpy(c.out_dir, tdir, sizeof c.out_dir - 1);
        char metrics[600];
        snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", c.out_dir);
        if (rcv_train_run(&c) || read_top1(metrics, &res[t].top1, &res[t].best)) {
            fprintf(stderr, "robustcv search: trial %d: %s\n", t, rcv_error());
            free(res);
            return 1;
        }
        done++;
    }
    qsort(res, (size_t)done, sizeof *res, by_top1);
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    rcv_json_begin_object(&w);
    rcv_json_key(&w, "metric");
    rcv_json_string(&w, "final test_top1");
    rcv_json_key(&w, "params");
    rcv_json_begin_array(&w);
    for (int p = 0; p < np; p++) {
        rcv_json_begin_object(&w);
        rcv_json_key(&w, "name"); rcv_json_string(&w, ps[p].name);
        rcv_json_key(&w, "lo"); rcv_json_number(&w, ps[p].lo);
        rcv_json_key(&w, "hi"); rcv_json_number(&w, ps[p].hi);
        rcv_json_key(&w, "sampling"); rcv_json_string(&w, ps[p].log ? "log-uniform" : "uniform");
        rcv_json_end_object(&w);
    }
    rcv_json_end_array(&w);
    rcv_json_key(&w, "trials");
    rcv_json_begin_array(&w);
    printf("rank  trial  test_top1  best_epoch_top1");
    for (int p = 0; p < np; p++) printf("  %s", ps[p].name);
    printf("\n");
    for (int i = 0; i < done; i++) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/trial_%d", base.out_dir, res[i].trial);
        rcv_json_begin_object(&w);
        rcv_json_key(&w, "trial"); rcv_json_int(&w, res[i].trial);
        rcv_json_key(&w, "dir"); rcv_json_string(&w, dir);
        rcv_json_key(&w, "test_top1"); rcv_json_number(&w, res[i].top1);
        rcv_json_key(&w, "best_epoch_test_top1"); rcv_json_number(&w, res[i].best);
        for (int p = 0; p < np; p++) {
            rcv_json_key(&w, ps[p].name);
            rcv_json_number(&w, res[i].val[p]);
        }
        rcv_json_end_object(&w);
        printf("%4d  %5d  %9.4f  %15.4f", i + 1, res[i].trial, res[i].top1, res[i].best);
        for (int p = 0; p < np; p++) printf("  %.6g", res[i].val[p]);
        printf("\n");
    }
    rcv_json_end_array(&w);
    rcv_json_end_object(&w);
    rcv_json_raw(&w, "\n");
    char path[600];
    snprintf(path, sizeof path, "%s/leaderboard.json", base.out_dir);
    rc = rcv_file_write_atomic(path, rcv_json_text(&w), strlen(rcv_json_text(&w)));
    rcv_json_writer_free(&w);
    if (!rc) {
        printf("best: trial %d (%s/trial_%d), test top-1 %.4f:", res[0].trial, base.out_dir, res[0].trial, res[0].top1);
        for (int p = 0; p < np; p++) printf(" %s=%.6g", ps[p].name, res[0].val[p]);
        printf("\nleaderboard: %s\n", path);
    } else {
        fprintf(stderr, "robustcv search: %s\n", rcv_error());
    }
    free(res);
    return rc ? 1 : 0;
}
