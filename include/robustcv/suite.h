// The robustness evaluation suite: one or more models on one test set under natural and
// adversarial perturbation - what `robustcv evaluate` and `robustcv run` report.
//
// Every set is a perturbed copy of the same n test images (pixels in [0, 1], NHWC), made
// with a fixed seed, so models and runs see the same images. A set is either shared (the
// same images for every model: clean, Gaussian noise, the 8 symmetries of the square,
// transfer attacks crafted on the first model) - these also feed the ensembles - or
// per model (white-box FGSM/PGD crafted on that model, its UAP).
#ifndef RCV_SUITE_H
#define RCV_SUITE_H

#include <stdint.h>

#include "robustcv/data.h"
#include "robustcv/attack.h"
#include "robustcv/models.h"

#define RCV_SUITE_MAX_EPS 8

typedef struct {
    int limit;        // test images used (the first `limit`; 0 = all)
    int batch;        // evaluation batch (default 250)
    float noise_sigma[RCV_SUITE_MAX_EPS]; // Gaussian noise std in pixels; default {0.1, 0.2}
    int n_noise;
    float fgsm_eps[RCV_SUITE_MAX_EPS];    // default {0.02, 0.05, 0.1}
    int n_fgsm;
    float pgd_eps[RCV_SUITE_MAX_EPS];     // default {0.05, 0.1}
    int n_pgd;
    int pgd_steps;                        // default 10 (alpha = eps / 4, random start)
    int symmetries;   // the 8 symmetries of the square and TTA over them (square images; default 1)
    int transfer;     // FGSM and PGD crafted on model 0, evaluated on the others (default 1)
    int uap;          // universal perturbation per model (L-inf xi = fgsm_eps[last]); images used (default 500, 0 = off)
    int denoise;      // NL-means denoised copy (OpenCV's fastNlMeansDenoisingColored, h = hColor = 10; default 1)
    const char *transforms; // ';'-separated augment specs, each applied alone (default: the seeds' transforms)
    int corruptions;  // images for the 15 corruptions x 5 severities (the first N; default 500, 0 = off)
    int autoattack;   // AutoAttack (attack.h; standard, L-inf) on the first N images at each aa_eps, with PGD
                      // on the same images beside it (default 0 = off)
    float aa_eps[RCV_SUITE_MAX_EPS];      // default: the PGD eps list
    int n_aa;
    int aa_ensemble;  // the models also attacked as one ensemble (log mean softmax) when 2+ (default 1)
    int ensemble_models; // that ensemble is models[0, N) (run: the members, not the models evaluated
                         // beside them); 0 = all (default)
    const char *aa_attacks; // NULL: AutoAttack standard's four (attack.h's rcv_autoattack_cfg.attacks)
    uint64_t seed;
    int verbose;      // progress lines on stderr
    rcv_backend backend; // where the models run: cpu (default) or cuda (attacks as in attack.h)
} rcv_suite_cfg;
void rcv_suite_defaults(rcv_suite_cfg *c);

typedef struct {
    char name[96];      // "clean", "noise:0.1", "fgsm:0.05", "sym:3", "tta", "transfer_pgd:0.1", "denoised",
                        // "transform:hflip:p=1", "corrupt:fog:3", ...
    int shared;         // same images for every model (ensembles are evaluated on these)
    double top1, top5, nll;
} rcv_set_result;

// AutoAttack beside PGD on the same images, one model (or the ensemble) at one eps.
typedef struct {
    float eps;
    int n;                  // the first n images
    double clean, pgd, aa;  // accuracy on them: clean, PGD (the suite's steps, alpha eps/4, random start), AutoAttack
    int pgd_steps;
    rcv_autoattack_result res;
} rcv_aa_row;

typedef struct {
    int n_models, n, n_classes;
    int32_t *labels;            // (n)
    int n_sets;                 // per model, same order for every model
    rcv_set_result *res;        // [model * n_sets + set]
    float **logits;             // [model * n_sets + set]: (n, K) for shared sets, NULL otherwise
    double *ece;                // (n_models) expected calibration error on clean (15 bins)
    double *uap_fooling;        // (n_models) fooling rate of the model's own UAP, -1 if not run
    double *uap_top1;           // (n_models) top-1 under it
    double uap_eps;             // its L-inf bound xi
    int n_aa, aa_ensemble;      // AutoAttack rows: eps values; whether row n_models (the ensemble) exists
    int n_ensemble;             // the ensemble's models: models[0, n_ensemble) (cfg ensemble_models)
    rcv_aa_row *aa;             // [(model, or n_models for the ensemble) * n_aa + eps], NULL when off
} rcv_suite_result;

// Runs the suite on models[0..n_models) (built and loaded; any plan is replaced) over d.
// 0, or -1 with a message (shape mismatch between data and a model, ...).
int rcv_suite_run(rcv_model *const *models, int n_models, const rcv_dataset *d, const rcv_suite_cfg *cfg,
                  rcv_suite_result *r);
void rcv_suite_result_free(rcv_suite_result *r);

// top-1 / top-5 / mean NLL of logits (n, K) against labels (metrics.h).
void rcv_suite_score(const float *logits, const int32_t *labels, int n, int k, double *top1, double *top5,
                     double *nll);
// Logits (n, K) of images x (n, H, W, C) in eval mode, batched at the model's plan.
int rcv_model_logits(rcv_model *m, const float *x, int n, int batch, float *logits);
// The seeds' single transforms the suite applies by default, then the AutoAugment (ImageNet),
// RandAugment and TrivialAugmentWide policies with torchvision's defaults (augment.h specs,
// ';'-separated).
extern const char *const rcv_suite_default_transforms;

#endif
