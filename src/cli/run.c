// robustcv run: the main job. Trains three diverse models (standard with augmentation,
// stability training, FGSM adversarial training) and, beside them, a model with timm's recipes
// (TrivialAugment, CutMix, an EMA of the weights), runs the robustness suite on each (with
// AutoAttack beside PGD, for the ensemble of the three attacked as one model too), evaluates every
// ensemble subset, draws class activation maps, certifies a fifth, Gaussian-noise-trained model by
// randomized smoothing, writes model cards and the report.
// Every stage writes into OUT and is resumable: a model whose training finished is not
// trained again (its checkpoint's epoch count is checked), so a killed run picks up.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "robustcv/attack.h"
#include "robustcv/augment.h"
#include "robustcv/card.h"
#include "robustcv/ensemble.h"
#include "robustcv/error.h"
#include "robustcv/report.h"
#include "robustcv/fileio.h"
#include "robustcv/recipe.h"
#include "robustcv/train.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    char data[512], out[400], model[64], augment[256], aa_attacks[64];
    int epochs, limit, subset, threads, quick, autoattack, certify;
    int timm; // train and evaluate the timm-recipe model (--no-timm: 0)
    rcv_precision precision;
    uint64_t seed;
    rcv_backend backend; // --device: every member's training, the suite, Grad-CAM and certify
    char device[8];
} rcv_run_cfg;

static void rcv_run_defaults(rcv_run_cfg *c, int quick);
static int rcv_run(const rcv_run_cfg *c);

// The trained models: name, recipe, epochs, seed offset. The first three are the ensemble's
// members; diversity comes from the objective. Epochs: the robust recipes cost 2-2.5 standard
// steps each, so within the demo's 30 minutes the standard member gets twice theirs.
static const struct {
    const char *name;
    rcv_recipe_kind recipe;
    int epochs, quick_epochs, seed;
} members[] = {
    {"standard", RCV_RECIPE_STANDARD, 15, 2, 0},
    {"stability", RCV_RECIPE_STABILITY, 10, 2, 1},
    {"fgsm", RCV_RECIPE_FGSM, 10, 2, 2},
    // Not an ensemble member: the standard recipe with timm's additions (TIMM_* below), evaluated
    // with its EMA weights beside the members, so the report shows what they buy. Seed offset 4:
    // the noise model keeps its 3 from before this model existed.
    {"timm", RCV_RECIPE_STANDARD, 15, 2, 4},
    // Not an ensemble member: the base classifier of the smoothed one the run certifies
    // (Cohen et al.'s Gaussian-noise training, sigma 0.25 pixels).
    {"noise", RCV_RECIPE_NOISE, 5, 1, 3},
};
#define N_MEMBERS 3 // the ensemble's: members[0, N_MEMBERS)
#define TIMM 3      // members[TIMM]: evaluated beside the members (run->timm), in no ensemble
#define NOISE 4     // members[NOISE]: certified only (run->certify > 0)
#define N_TRAINED 5
// timm's recipe on top of the standard member's: TrivialAugmentWide after the run's --augment,
// CutMix (timm's cutmix 1.0, mix_prob 1, batch mode) and an EMA of the weights with timm
// ModelEmaV3's warm-up; evaluated with the EMA (ema.safetensors).
#define TIMM_CUTMIX 1.0f
#define TIMM_EMA 0.999f

// The timm model's --augment: the run's (a preset expanded) then trivialaugment, into buf
// (sizeof rcv_train_cfg.augment). -1 with a message when it does not fit.
static int timm_augment(const rcv_run_cfg *c, char *buf, size_t n) {
    const char *base = rcv_augment_preset(c->augment);
    if ((size_t)snprintf(buf, n, "%s%strivialaugment", base, *base ? "," : "") >= n)
        return rcv_fail("--augment '%s': too long to add ',trivialaugment' for the timm model (at most %zu characters "
                        "with it; --no-timm skips that model)", c->augment, n - 1);
    return 0;
}

// The recipe column of the report and the cards: the recipe's name, the timm model's flags.
static const char *recipe_label(const rcv_run_cfg *c, int i, char *buf, size_t n) {
    if (i != TIMM) return rcv_recipe_name(members[i].recipe);
    char aug[sizeof ((rcv_train_cfg *)0)->augment];
    timm_augment(c, aug, sizeof aug); // checked by cli_run
    snprintf(buf, n, "standard --augment %s --cutmix %g --ema %g --ema-warmup (evaluated: EMA weights)", aug,
             TIMM_CUTMIX, TIMM_EMA);
    return buf;
}

// The checkpoint a model is evaluated with, in OUT/<name>/: the timm model's EMA of its weights.
static const char *eval_file(int i) { return i == TIMM ? "ema.safetensors" : "last.safetensors"; }

int cli_run(int argc, char **argv) {
    rcv_opt opts[] = {
        {"data", "SPEC", "data (default fashion-mnist)", NULL},
        {"out", "DIR", "run directory (default runs/main)", NULL},
        {"model", "NAME", "model of every trained model (default smallcnn6)", NULL},
        {"epochs", "N", "epochs of every model (default: standard 15, stability 10, fgsm 10, timm 15, noise 5; "
                        "--quick 2, noise 1)", NULL},
        {"precision", "P", "fp32 or bf16 (default bf16 where the CPU has it, else fp32)", NULL},
        {"augment", "SPEC", "augmentation of the standard member, the noise and the timm models (default "
                            "hflip:p=0.5,crop:pad=2)", NULL},
        {"no-timm", NULL, "skip the model trained beside the members with timm's recipes (standard, --augment "
                          "SPEC,trivialaugment --cutmix 1 --ema 0.999 --ema-warmup; evaluated with its EMA weights "
                          "like a member, in no ensemble; cpu only: --device cuda skips it). Default: trained", NULL},
        {"quick", NULL, "a small version (subsets, 1 epoch, fewer attacks): the whole job in a few minutes", NULL},
        {"limit", "N", "test images the suite uses (default 2000; --quick 500)", NULL},
        {"autoattack", "N", "AutoAttack (and PGD beside it) on the first N of them (default 200; --quick 50; 0 = off)", NULL},
        {"aa-attacks", "LIST", "AutoAttack's attacks (default apgd-ce,apgd-t,fab-t,square, the standard version)", NULL},
        {"certify", "N", "certify N of them with the noise-trained model (n 2000; default 100; --quick 20, n 500; 0 = off)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"seed", "N", "seed (default 0)", NULL},
        {"device", "NAME", "cpu (default) or cuda: training, attacks, suite, Grad-CAM and certification", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, "run", "[options]", pos, &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    rcv_run_cfg c;
    rcv_run_defaults(&c, rcv_arg(opts, "quick") != NULL);
    const char *v;
    unsigned long long seed = 0;
    if (rcv_arg_int(opts, "epochs", &c.epochs) || rcv_arg_int(opts, "limit", &c.limit) ||
        rcv_arg_int(opts, "autoattack", &c.autoattack) || rcv_arg_int(opts, "certify", &c.certify) ||
        rcv_arg_int(opts, "threads", &c.threads) || rcv_arg_u64(opts, "seed", &seed) ||
        cli_parse_device(rcv_arg(opts, "device"), &c.backend))
        return 2;
    snprintf(c.device, sizeof c.device, "%s", c.backend == RCV_BACKEND_CUDA ? "cuda" : c.backend == RCV_BACKEND_REF ? "ref" : "cpu");
    c.seed = seed;
    if (c.autoattack < 0 || c.limit < 0 || c.certify < 0) {
        fprintf(stderr, "robustcv run: --autoattack %d, --limit %d, --certify %d: expected counts >= 0\n", c.autoattack,
                c.limit, c.certify);
        return 2;
    }
    if (rcv_arg_str(opts, "data", c.data, sizeof c.data) || rcv_arg_str(opts, "out", c.out, sizeof c.out) ||
        rcv_arg_str(opts, "model", c.model, sizeof c.model) ||
        rcv_arg_str(opts, "augment", c.augment, sizeof c.augment))
        return 2;
    if ((v = rcv_arg(opts, "aa-attacks")) &&
        (cli_aa_attacks_check(v) || rcv_arg_str(opts, "aa-attacks", c.aa_attacks, sizeof c.aa_attacks)))
        return 2;
    if ((v = rcv_arg(opts, "precision")) && rcv_precision_parse(v, &c.precision)) {
        fprintf(stderr, "robustcv run: %s\n", rcv_error());
        return 2;
    }
    c.timm = rcv_arg(opts, "no-timm") == NULL;
    if (c.timm && c.backend == RCV_BACKEND_CUDA) {
        fprintf(stderr, "run: no timm model with --device cuda: --cutmix and --ema train on the cpu backend only "
                        "(--device cpu trains it; --no-timm silences this)\n");
        c.timm = 0;
    }
    // Every augmentation spec now, not after the members before it have trained.
    char timm_aug[sizeof ((rcv_train_cfg *)0)->augment];
    if (c.timm && timm_augment(&c, timm_aug, sizeof timm_aug)) {
        fprintf(stderr, "robustcv run: %s\n", rcv_error());
        return 2;
    }
    const char *specs[2] = {c.augment, timm_aug};
    for (int k = 0; k < 1 + c.timm; k++) {
        rcv_augment *a;
        if (rcv_augment_parse(&a, specs[k])) {
            fprintf(stderr, "robustcv run: --augment '%s'%s: %s\n", c.augment, k ? " (the timm model's)" : "", rcv_error());
            return 2;
        }
        rcv_augment_free(a);
    }
    if (c.threads > 0) omp_set_num_threads(c.threads);
    if (rcv_run(&c)) {
        fprintf(stderr, "robustcv run: %s\n", rcv_error());
        return 1;
    }
    return 0;
}

static void rcv_run_defaults(rcv_run_cfg *c, int quick) {
    memset(c, 0, sizeof *c);
    c->quick = quick;
    c->timm = 1;
    snprintf(c->data, sizeof c->data, "fashion-mnist");
    snprintf(c->out, sizeof c->out, "runs/main");
    snprintf(c->model, sizeof c->model, "smallcnn6");
    snprintf(c->augment, sizeof c->augment, "hflip:p=0.5,crop:pad=2");
    c->epochs = 0; // the members' own
    c->limit = quick ? 500 : 2000;
    c->autoattack = quick ? 50 : 200;
    c->certify = quick ? 20 : 100;
    c->subset = quick ? 6000 : 0;
    c->precision = RCV_PREC_BF16; // falls back to fp32 with a message where the CPU lacks it
    c->backend = RCV_BACKEND_CPU;
    snprintf(c->device, sizeof c->device, "cpu");
}

static int train_member(const rcv_run_cfg *c, int i, char *ckpt, size_t ckpt_len) {
    rcv_train_cfg t;
    rcv_train_cfg_defaults(&t);
    snprintf(t.model, sizeof t.model, "%s", c->model);
    snprintf(t.data, sizeof t.data, "%s", c->data);
    snprintf(t.out_dir, sizeof t.out_dir, "%s/%s", c->out, members[i].name);
    snprintf(ckpt, ckpt_len, "%s/%s", t.out_dir, eval_file(i));
    t.epochs = c->epochs > 0 ? c->epochs : c->quick ? members[i].quick_epochs : members[i].epochs;
    t.seed = c->seed + (uint64_t)members[i].seed;
    t.subset = c->subset;
    t.resume = 1; // a finished member is skipped below; a killed one continues
    t.precision = c->precision;
    t.backend = c->backend;
    snprintf(t.sched, sizeof t.sched, "%s", c->quick ? "cosine:warmup=0" : "cosine:warmup=1");
    t.recipe.kind = members[i].recipe;
    // Only the standard member: with flip + crop on top of their own perturbation the robust
    // members lost clean accuracy here (smallcnn: stability 92.5 -> 91.6%, FGSM 89.1 -> 87.5%, 10 epochs).
    if (members[i].recipe == RCV_RECIPE_STANDARD || members[i].recipe == RCV_RECIPE_NOISE)
        snprintf(t.augment, sizeof t.augment, "%s", c->augment);
    if (i == TIMM) {
        if (timm_augment(c, t.augment, sizeof t.augment)) return -1;
        t.mix.cutmix_alpha = TIMM_CUTMIX;
        t.ema.decay = TIMM_EMA, t.ema.warmup = 1;
    }
    rcv_ckpt_info info = {0};
    rcv_model m = {0};
    // Done already? (same epochs: a re-run of a finished job only re-evaluates; the timm model's
    // EMA is written before last.safetensors each epoch)
    char last[700];
    snprintf(last, sizeof last, "%s/last.safetensors", t.out_dir);
    if (access(last, R_OK) == 0 && rcv_ckpt_load_model(last, &m, &info) == 0) {
        int done = info.epoch >= t.epochs;
        rcv_model_free(&m);
        rcv_ckpt_info_free(&info);
        if (done) {
            fprintf(stderr, "run: %s already trained (%s)\n", members[i].name, last);
            return 0;
        }
    }
    char label[600];
    fprintf(stderr, "run: training model %d/%d '%s' (%s, recipe %s, %d epochs)\n", i + 1, N_TRAINED, members[i].name,
            c->model, recipe_label(c, i, label, sizeof label), t.epochs);
    return rcv_train_run(&t);
}

static const rcv_set_result *find_set(const rcv_suite_result *r, int m, const char *name) {
    for (int s = 0; s < r->n_sets; s++)
        if (!strcmp(r->res[(size_t)m * r->n_sets + s].name, name)) return &r->res[(size_t)m * r->n_sets + s];
    return NULL;
}

// models[i] of results.json (docs/report.md) from the suite's sets.
static void member_json(rcv_json_writer *w, const rcv_run_cfg *c, int i, const char *const *names,
                        const rcv_suite_result *r) {
    static const char *sym_names[8] = {"identity", "rot90", "rot180", "rot270",
                                       "hflip", "transpose", "vflip", "antitranspose"};
    char buf[700];
    rcv_json_begin_object(w);
    rcv_json_key(w, "name");
    rcv_json_string(w, names[i]);
    rcv_json_key(w, "arch");
    rcv_json_string(w, c->model);
    rcv_json_key(w, "recipe");
    rcv_json_string(w, recipe_label(c, i, buf, sizeof buf));
    snprintf(buf, sizeof buf, "%s/%s", names[i], eval_file(i));
    rcv_json_key(w, "checkpoint");
    rcv_json_string(w, buf);
    snprintf(buf, sizeof buf, "%s/metrics.jsonl", names[i]);
    rcv_json_key(w, "metrics_jsonl");
    rcv_json_string(w, buf);
    const rcv_set_result *q = find_set(r, i, "clean");
    rcv_json_key(w, "clean");
    rcv_json_begin_object(w);
    rcv_json_key(w, "top1"), rcv_json_number(w, q->top1);
    rcv_json_key(w, "top5"), rcv_json_number(w, q->top5);
    rcv_json_key(w, "loss"), rcv_json_number(w, q->nll);
    rcv_json_end_object(w);
    rcv_json_key(w, "calibration");
    rcv_json_begin_object(w);
    rcv_json_key(w, "ece"), rcv_json_number(w, r->ece[i]);
    rcv_json_key(w, "nll"), rcv_json_number(w, q->nll);
    rcv_json_end_object(w);
    if ((q = find_set(r, i, "denoised"))) {
        rcv_json_key(w, "denoised");
        rcv_json_begin_object(w);
        rcv_json_key(w, "top1"), rcv_json_number(w, q->top1);
        rcv_json_key(w, "top5"), rcv_json_number(w, q->top5);
        rcv_json_end_object(w);
    }
    // Corruption errors per severity (CE / mCE are the report's, against the baseline member).
    rcv_json_key(w, "corruptions");
    rcv_json_begin_object(w);
    rcv_json_key(w, "errors");
    rcv_json_begin_object(w);
    for (int ci = 0; rcv_corruption_names[ci]; ci++) {
        snprintf(buf, sizeof buf, "corrupt:%s:1", rcv_corruption_names[ci]);
        if (!find_set(r, i, buf)) break;
        rcv_json_key(w, rcv_corruption_names[ci]);
        rcv_json_begin_array(w);
        for (int sev = 1; sev <= 5; sev++) {
            snprintf(buf, sizeof buf, "corrupt:%s:%d", rcv_corruption_names[ci], sev);
            rcv_json_number(w, 1 - find_set(r, i, buf)->top1);
        }
        rcv_json_end_array(w);
    }
    rcv_json_end_object(w);
    rcv_json_end_object(w);
    // Per-image perturbations that are not attacks: the "transforms" table (Figure 2).
    rcv_json_key(w, "transforms");
    rcv_json_begin_object(w);
    for (int s = 0; s < r->n_sets; s++) {
        const rcv_set_result *t = &r->res[(size_t)i * r->n_sets + s];
        if (!strncmp(t->name, "transform:", 10)) rcv_json_key(w, t->name + 10), rcv_json_number(w, t->top1);
    }
    for (int s = 0; s < r->n_sets; s++) {
        const rcv_set_result *t = &r->res[(size_t)i * r->n_sets + s];
        if (strncmp(t->name, "noise:", 6)) continue;
        snprintf(buf, sizeof buf, "gaussian noise sigma %s", t->name + 6);
        rcv_json_key(w, buf), rcv_json_number(w, t->top1);
    }
    rcv_json_end_object(w);
    if (find_set(r, i, "sym:0")) {
        rcv_json_key(w, "symmetries");
        rcv_json_begin_object(w);
        for (int k = 0; k < 8; k++) {
            snprintf(buf, sizeof buf, "sym:%d", k);
            rcv_json_key(w, sym_names[k]), rcv_json_number(w, find_set(r, i, buf)->top1);
        }
        rcv_json_end_object(w);
        q = find_set(r, i, "tta");
        rcv_json_key(w, "tta");
        rcv_json_begin_object(w);
        rcv_json_key(w, "top1"), rcv_json_number(w, q->top1);
        rcv_json_key(w, "top5"), rcv_json_number(w, q->top5);
        rcv_json_end_object(w);
    }
    const char *kinds[2] = {"fgsm", "pgd"};
    for (int kd = 0; kd < 2; kd++) {
        rcv_json_key(w, kinds[kd]);
        rcv_json_begin_array(w);
        for (int s = 0; s < r->n_sets; s++) {
            const rcv_set_result *t = &r->res[(size_t)i * r->n_sets + s];
            size_t L = strlen(kinds[kd]);
            if (strncmp(t->name, kinds[kd], L) || t->name[L] != ':') continue;
            rcv_json_begin_object(w);
            rcv_json_key(w, "eps"), rcv_json_number(w, atof(t->name + L + 1));
            if (kd) rcv_json_key(w, "steps"), rcv_json_int(w, 10);
            rcv_json_key(w, "top1"), rcv_json_number(w, t->top1);
            rcv_json_end_object(w);
        }
        rcv_json_end_array(w);
    }
    rcv_json_key(w, "transfer");
    rcv_json_begin_array(w);
    for (int s = 0; i > 0 && s < r->n_sets; s++) {
        const rcv_set_result *t = &r->res[(size_t)i * r->n_sets + s];
        if (strncmp(t->name, "transfer_", 9)) continue;
        const char *colon = strchr(t->name, ':');
        rcv_json_begin_object(w);
        rcv_json_key(w, "source"), rcv_json_string(w, names[0]);
        snprintf(buf, sizeof buf, "%.*s", (int)(colon - t->name - 9), t->name + 9);
        rcv_json_key(w, "attack"), rcv_json_string(w, buf);
        rcv_json_key(w, "eps"), rcv_json_number(w, atof(colon + 1));
        rcv_json_key(w, "top1"), rcv_json_number(w, t->top1);
        rcv_json_end_object(w);
    }
    rcv_json_end_array(w);
    if (r->aa) rcv_json_key(w, "autoattack"), cli_aa_json(w, r, i);
    if (r->uap_fooling[i] >= 0) {
        rcv_json_key(w, "uap");
        rcv_json_begin_object(w);
        rcv_json_key(w, "eps"), rcv_json_number(w, r->uap_eps);
        rcv_json_key(w, "fooling_rate"), rcv_json_number(w, r->uap_fooling[i]);
        rcv_json_key(w, "top1"), rcv_json_number(w, r->uap_top1[i]);
        rcv_json_end_object(w);
    }
    rcv_json_end_object(w);
}

// Table 2: every ensemble subset on the sets every member saw identically, first the clean set
// once more over the whole test split (forward passes only): the headline clean accuracies are
// not those of the suite's first `limit` images.
static int ensembles_json(rcv_json_writer *w, rcv_model *const *mp, const rcv_dataset *d, const rcv_suite_result *r) {
    const char *set_names[16];
    rcv_ens_subset *tables[16];
    int n_sets = 0, n_rows = 0, k = r->n_classes, bad = 0;
    char all_name[48];
    snprintf(all_name, sizeof all_name, "clean, all %d", d->n);
    float *all[N_MEMBERS] = {0};
    for (int i = 0; i < N_MEMBERS; i++) {
        all[i] = rcv_xmalloc((size_t)d->n * k * sizeof(float));
        bad = bad || rcv_predict_logits(mp[i], d, d->n, 256, mp[i]->g->batch > 0 ? mp[i]->g->backend : RCV_BACKEND_CPU,
                                        all[i]);
    }
    bad = bad || rcv_ensemble_subsets((const float *const *)all, NULL, d->labels, N_MEMBERS, d->n, k, RCV_ENS_PROBS,
                                      RCV_VOTE_TIE_LOWEST, &tables[n_sets], &n_rows);
    for (int i = 0; i < N_MEMBERS; i++) free(all[i]);
    if (bad) return -1;
    set_names[n_sets++] = all_name;
    for (int s = 0; s < r->n_sets && n_sets < 16; s++) {
        const char *nm = r->res[s].name; // Table 2's sets: clean, denoised, noise, TTA, transfer
        if (!r->res[s].shared || !strncmp(nm, "sym:", 4) || !strncmp(nm, "corrupt:", 8) || !strncmp(nm, "transform:", 10))
            continue;
        const float *lg[N_MEMBERS];
        for (int i = 0; i < N_MEMBERS; i++) lg[i] = r->logits[(size_t)i * r->n_sets + s];
        if (rcv_ensemble_subsets(lg, NULL, r->labels, N_MEMBERS, r->n, r->n_classes, RCV_ENS_PROBS, RCV_VOTE_TIE_LOWEST,
                                 &tables[n_sets], &n_rows)) {
            bad = 1;
            break;
        }
        set_names[n_sets++] = r->res[s].name;
    }
    if (!bad) {
        rcv_json_key(w, "ensembles");
        rcv_ensemble_json(w, set_names, tables, n_sets, n_rows, N_MEMBERS, RCV_ENS_PROBS, RCV_VOTE_TIE_LOWEST);
        fprintf(stderr, "run: ensembles (probability averaging) on all %d clean test images: ", d->n);
        for (int j = 0; j < n_rows; j++) {
            char mem[64];
            rcv_ensemble_members_str(tables[0][j].mask, N_MEMBERS, mem, sizeof mem);
            fprintf(stderr, "%s %.2f%%%s", mem, 100 * tables[0][j].avg_top1, j + 1 < n_rows ? "; " : "\n");
        }
    }
    for (int j = 0; j < n_sets; j++) free(tables[j]);
    return bad ? -1 : 0;
}

// The ensemble's AutoAttack rows as "ensemble_autoattack" and model cards: OUT/<model>/card.json
// for every evaluated model (the members, the timm model) and the "cards" list the report's
// leaderboard reads, the ensemble's last.
static int cards_json(rcv_json_writer *w, const rcv_run_cfg *c, const char *const *names, const rcv_suite_result *r) {
    int ens_row = r->aa && r->aa_ensemble;
    if (ens_row) rcv_json_key(w, "ensemble_autoattack"), cli_aa_json(w, r, r->n_models);
    rcv_json_key(w, "cards");
    rcv_json_begin_array(w);
    for (int i = 0; i < r->n_models + ens_row; i++) {
        int ens = i == r->n_models;
        char ck[700], path[760], ens_name[64], label[600];
        snprintf(ck, sizeof ck, "%s/%s/%s", c->out, ens ? "" : names[i], eval_file(i));
        snprintf(ens_name, sizeof ens_name, "ensemble of the %d members", r->n_ensemble);
        rcv_card card;
        rcv_card_from_suite(&card, r, i, 0, ens ? ens_name : names[i], c->model, c->data, ens ? NULL : ck);
        card.recipe = ens ? "probability averaging" : recipe_label(c, i, label, sizeof label);
        card.mce_baseline = names[0];
        rcv_card_json(w, &card);
        if (!ens) {
            snprintf(path, sizeof path, "%s/%s/card.json", c->out, names[i]);
            if (rcv_card_write(path, &card)) return -1;
        }
    }
    rcv_json_end_array(w);
    return 0;
}

// Class activation maps of each evaluated model (Figure 7): `robustcv explain` on the first test
// images.
static int cams_json(rcv_json_writer *w, const rcv_run_cfg *c, int n_models, const char *const *names,
                     char ckpt[][700]) {
    rcv_json_key(w, "cams");
    rcv_json_begin_array(w);
    char cams[700];
    snprintf(cams, sizeof cams, "%s/cams", c->out);
    if (rcv_mkdir_p(cams)) return -1;
    for (int i = 0; i < n_models; i++) {
        char dir[700], lim[16];
        snprintf(dir, sizeof dir, "%s/cams/%s", c->out, names[i]);
        snprintf(lim, sizeof lim, "%d", c->quick ? 4 : 6);
        char *av[] = {"explain", "--checkpoint", ckpt[i], "--data", (char *)c->data, "--limit", lim,
                      "--method", "gradcam", "--out", dir, "--device", (char *)c->device, NULL};
        if (cli_explain(13, av)) return rcv_fail("Grad-CAM of %s failed", names[i]);
        char rel[200], cap[160];
        snprintf(rel, sizeof rel, "cams/%s/gradcam.png", names[i]);
        snprintf(cap, sizeof cap, "Grad-CAM of '%s' (last conv block): image | top-1 | top-2 | top-3", names[i]);
        rcv_json_begin_object(w);
        rcv_json_key(w, "path");
        rcv_json_string(w, rel);
        rcv_json_key(w, "caption");
        rcv_json_string(w, cap);
        rcv_json_end_object(w);
    }
    rcv_json_end_array(w);
    return 0;
}

// Certified accuracy of the noise-trained model's smoothed classifier (`robustcv certify`, sigma
// its training noise) on every k-th of the first `limit` test images, as "certified": [{...}].
static int certified_json(rcv_json_writer *w, const rcv_run_cfg *c, const char *ckpt) {
    rcv_json_key(w, "certified");
    rcv_json_begin_array(w);
    if (c->certify > 0) {
        char tsv[760], js[760], n[16], lim[16], skip[16], sg[32];
        snprintf(tsv, sizeof tsv, "%s/%s/certify.tsv", c->out, members[NOISE].name);
        snprintf(js, sizeof js, "%s/%s/certify.json", c->out, members[NOISE].name);
        snprintf(n, sizeof n, "%d", c->quick ? 500 : 2000);
        int pool = c->limit > 0 ? c->limit : 10000; // --limit 0: the whole test split
        snprintf(lim, sizeof lim, "%d", pool);
        snprintf(skip, sizeof skip, "%d", pool / c->certify > 1 ? pool / c->certify : 1);
        rcv_recipe_cfg rd;
        rcv_recipe_defaults(&rd);
        snprintf(sg, sizeof sg, "%g", rd.noise_sigma);
        char *av[] = {"certify", "--checkpoint", (char *)ckpt, "--data", (char *)c->data, "--sigma", sg, "--n", n,
                      "--batch", "500", "--limit", lim, "--skip", skip, "--out", tsv, "--json", js,
                      "--device", (char *)c->device, NULL};
        if (cli_certify(21, av)) return rcv_fail("certify of %s failed", ckpt);
        uint8_t *text;
        size_t len;
        if (rcv_file_read(js, &text, &len)) return -1;
        text = rcv_xrealloc(text, len + 1);
        text[len] = 0;
        while (len && (text[len - 1] == '\n' || text[len - 1] == ' ')) text[--len] = 0;
        rcv_json_raw(w, (const char *)text); // certify's object as it wrote it
        free(text);
    }
    rcv_json_end_array(w);
    return 0;
}

// The suite's settings for the run: AutoAttack at the largest PGD eps on a subset.
static void run_suite_cfg(const rcv_run_cfg *c, rcv_suite_cfg *sc) {
    rcv_suite_defaults(sc);
    sc->limit = c->limit;
    sc->verbose = 1;
    sc->seed = c->seed;
    sc->backend = c->backend;
    if (c->quick) {
        sc->n_fgsm = 2, sc->n_pgd = 1, sc->pgd_steps = 5, sc->uap = 100;
        sc->fgsm_eps[1] = 0.1f, sc->pgd_eps[0] = 0.1f;
    }
    sc->autoattack = c->autoattack;
    sc->aa_attacks = c->aa_attacks[0] ? c->aa_attacks : NULL;
    sc->aa_eps[0] = sc->pgd_eps[sc->n_pgd - 1], sc->n_aa = 1;
    sc->ensemble_models = N_MEMBERS; // not the timm model evaluated beside them
}

// Stage 1: trains every model the run needs (a finished one is skipped); ckpt[i] receives the
// checkpoint model i is evaluated with.
static int train_all(const rcv_run_cfg *c, char ckpt[][700]) {
    for (int i = 0; i < N_TRAINED; i++) {
        if ((i == TIMM && !c->timm) || (i == NOISE && c->certify <= 0)) continue;
        if (train_member(c, i, ckpt[i], sizeof ckpt[i])) return rcv_fail_ctx("run: member '%s': ", members[i].name);
    }
    return 0;
}

// Stage 3: results.json (docs/report.md) from the suite's result r over the models mp (the
// members, then the timm model) and the sections that run their own commands.
static int results_json(rcv_json_writer *w, const rcv_run_cfg *c, const char *const *names, char ckpt[][700],
                        rcv_model *const *mp, const rcv_dataset *d, const rcv_suite_result *r, double t_train,
                        double t_eval) {
    rcv_json_begin_object(w);
    rcv_json_key(w, "title");
    rcv_json_string(w, "robustcv run");
    rcv_json_key(w, "dataset");
    rcv_json_string(w, c->data);
    rcv_json_key(w, "corruption_baseline");
    rcv_json_string(w, names[0]);
    rcv_json_key(w, "train_seconds");
    rcv_json_number(w, t_train);
    rcv_json_key(w, "eval_seconds");
    rcv_json_number(w, t_eval);
    rcv_json_key(w, "models");
    rcv_json_begin_array(w);
    for (int i = 0; i < r->n_models; i++) member_json(w, c, i, names, r);
    rcv_json_end_array(w);
    rcv_json_key(w, "ensemble_members"); // models[0, N_MEMBERS): the timm model is in no ensemble
    rcv_json_begin_array(w);
    for (int i = 0; i < r->n_ensemble; i++) rcv_json_int(w, i);
    rcv_json_end_array(w);
    if (ensembles_json(w, mp, d, r) || cards_json(w, c, names, r) || cams_json(w, c, r->n_models, names, ckpt) ||
        certified_json(w, c, ckpt[NOISE]))
        return -1;
    rcv_json_end_object(w);
    return 0;
}

_Static_assert(TIMM == N_MEMBERS, "the suite's models are the members, then the timm model: models[i] is members[i]");

static int rcv_run(const rcv_run_cfg *c) {
    double t0 = now_s();
    char ckpt[N_TRAINED][700];
    const char *names[N_TRAINED];
    for (int i = 0; i < N_TRAINED; i++) names[i] = members[i].name;
    if (rcv_mkdir_p(c->out) || train_all(c, ckpt)) return -1;
    double t_train = now_s() - t0;
    // Stage 2: the suite on the members and the timm model; the ensemble is the members alone.
    int n_eval = N_MEMBERS + (c->timm ? 1 : 0);
    rcv_model models[N_MEMBERS + 1] = {{0}};
    rcv_model *mp[N_MEMBERS + 1];
    rcv_dataset d = {0};
    rcv_suite_result r = {0};
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    int rc = -1;
    for (int i = 0; i < n_eval; i++) {
        if (rcv_ckpt_load_model(ckpt[i], &models[i], NULL)) goto out;
        mp[i] = &models[i];
    }
    if (rcv_data_open(c->data, 0, &d)) goto out;
    rcv_suite_cfg sc;
    run_suite_cfg(c, &sc);
    fprintf(stderr, "run: evaluating the suite on %d test images (AutoAttack on the first %d)\n", c->limit,
            c->autoattack);
    if (rcv_suite_run(mp, n_eval, &d, &sc, &r)) goto out;
    cli_suite_print(&r, names);
    double t_eval = now_s() - t0 - t_train;
    if (results_json(&w, c, names, ckpt, mp, &d, &r, t_train, t_eval)) goto out;
    char path[700];
    snprintf(path, sizeof path, "%s/results.json", c->out);
    const char *t = rcv_json_text(&w);
    if (rcv_file_write_atomic(path, t, strlen(t))) goto out;
    int missing = 0;
    if (rcv_report_write(c->out, &missing)) goto out;
    fprintf(stderr, "run: %s, %s/report.html and report.md written; training %.0f s, evaluation %.0f s, total %.0f s\n",
            path, c->out, t_train, t_eval, now_s() - t0);
    rc = 0;
out:
    rcv_json_writer_free(&w);
    rcv_suite_result_free(&r);
    rcv_dataset_free(&d);
    for (int i = 0; i < n_eval; i++)
        if (models[i].g) rcv_model_free(&models[i]);
    return rc;
}
