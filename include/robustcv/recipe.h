// Robust-training recipes: how one training step turns the current batch into
// parameter gradients (`robustcv train --recipe NAME`). Every recipe computes the
// gradient of its loss with respect to the parameters into g->grads (zeroed first);
// the caller clips and steps. Defaults are the seeds' values.
//
//   standard            L = CE(f(x), y)
//   augment-curriculum  standard; epochs >= raw_epochs run the batch through the augmentation
//                       stage (spec `augment`) first (rcv_recipe_augment_on)
//   fgsm                L = a CE(f(x), y) + (1 - a) CE(f(x + eps sign(grad_x CE)), y), a = 0.5
//                       (Goodfellow et al. 2015; the adversarial image is clamped to [0, 1] and
//                       treated as a constant; its gradient comes from the same train-mode forward)
//   kurakin             mixed batches (Kurakin et al. 2016): of the m images, the last k are
//                       replaced by their FGSM images (crafted in eval mode);
//                       L = (sum_clean CE + lambda sum_adv CE) / (m - k + lambda k), lambda = 0.5,
//                       k = 16 of m = 32 in the seed (default here k = batch / 2)
//   stability           Zheng et al. 2016: x' = x + N(0, (sigma std_c)^2) (sigma = 0.1 in
//                       normalized units is sigma * std_c in pixels; not clamped);
//                       L = CE(f(x), y) + alpha KL(P(x) || P(x')), alpha = 0.01, gradient through both
//   augmix              Hendrycks et al. 2020: two AugMix views x1, x2 (width 3, depth 1-3, severity 3);
//                       L = CE(f(x), y) + lambda JSD(P(x), P(x1), P(x2)), lambda = 12, with AugMix's
//                       M = clamp((p0 + p1 + p2) / 3, 1e-7, 1), JSD = mean_v KL(p_v || M)
//   pgd                 Madry et al. 2018: L = CE(f(PGD(x)), y); L-inf eps 0.1 (Fashion-MNIST
//                       scale; 8/255 for natural images), alpha eps / 4, 7 steps, random start
//   trades              Zhang et al. 2019 (yaodongyu/TRADES trades.py): in eval mode x' = x + 0.001 N(0, I),
//                       then steps x { x' = clamp(clip_{x,eps}(x' + step sign(grad_x' KL_sum(P(x) || P(x')))),
//                       0, 1) }; in train mode L = CE(f(x), y) + beta / B sum_i KL(P(x_i) || P(x'_i)),
//                       gradient through both forwards (x' a constant); beta 6, eps 0.031, step 0.007,
//                       10 steps (the paper's CIFAR-10 values). The start's normals are the first
//                       B * per draws of the step's rng.
//   noise               Cohen et al. 2019's base classifier for randomized smoothing:
//                       L = CE(f(x + N(0, sigma^2)), y), sigma in pixels (not clamped, as their code),
//                       sigma 0.25; the normals are the first B * per draws of the step's rng
//
// Batchnorm while crafting: kurakin's FGSM, pgd's PGD and trades' inner maximisation run the model in eval mode (running
// statistics, no dropout; torchattacks' and most robust-training code's practice) and the
// model is back in train mode for the loss. fgsm takes its input gradient from the clean
// train-mode forward, as the objective is one function of the batch. Views of one step
// (stability: clean and noisy; augmix: three) are separate forwards, each normalising with
// its own batch statistics (AugMix's reference concatenates them into one batch instead);
// running statistics are updated once per view, as PyTorch would with separate forwards (trades:
// one clean and one adversarial forward; the reference calls f(x) twice in train mode, which
// gives the same gradient without dropout but updates the running statistics once more).
#ifndef RCV_RECIPE_H
#define RCV_RECIPE_H

#include <stdint.h>

#include "robustcv/models.h"
#include "robustcv/rng.h"

typedef enum {
    RCV_RECIPE_STANDARD = 0,
    RCV_RECIPE_AUGMENT_CURRICULUM,
    RCV_RECIPE_FGSM,
    RCV_RECIPE_KURAKIN,
    RCV_RECIPE_STABILITY,
    RCV_RECIPE_AUGMIX,
    RCV_RECIPE_PGD,
    RCV_RECIPE_TRADES,
    RCV_RECIPE_NOISE,
    RCV_RECIPE_COUNT
} rcv_recipe_kind;

typedef struct {
    int width, depth, severity; // depth <= 0: uniform in 1..3 per chain
} rcv_augmix_cfg;

typedef struct {
    rcv_recipe_kind kind;
    int raw_epochs;       // augment-curriculum: epochs on raw data before augmenting (default 5)
    char augment[256];    // augment-curriculum: augmentation spec when --augment is not given (default "seed-fce")
    float fgsm_alpha;     // fgsm: weight of the clean loss (0.5)
    float adv_eps;        // fgsm, kurakin: FGSM step in pixel units; < 0: the seed's 0.2 in normalized
                          // units, i.e. 0.2 * mean std of the model's normalization (default -1)
    int adv_k;            // kurakin: adversarial images per batch; < 0: batch / 2 (default -1)
    float lambda;         // kurakin: weight of the adversarial losses (0.5)
    float stab_alpha;     // stability: KL weight (0.01)
    float stab_sigma;     // stability: noise std in normalized units (0.1)
    float jsd_lambda;     // augmix: JSD weight (12)
    rcv_augmix_cfg augmix;// augmix: width 3, depth -1 (1..3), severity 3
    float pgd_eps, pgd_alpha; // pgd: 0.1, alpha < 0: eps / 4
    int pgd_steps, pgd_random_start; // pgd: 7, 1
    float trades_beta, trades_eps, trades_step; // trades: 6, 0.031, 0.007
    int trades_steps;     // trades: 10
    float noise_sigma;    // noise: 0.25 (pixels)
} rcv_recipe_cfg;

void rcv_recipe_defaults(rcv_recipe_cfg *c);
// "standard", "augment-curriculum", "fgsm", "kurakin", "stability", "augmix", "pgd", "trades", "noise".
const char *rcv_recipe_name(rcv_recipe_kind k);
// -1 with a message listing the names.
int rcv_recipe_parse(const char *name, rcv_recipe_kind *k);
// 1 when this epoch's batches go through the augmentation stage (augment-curriculum only).
int rcv_recipe_augment_on(const rcv_recipe_cfg *c, int epoch);

typedef struct {
    rcv_recipe_cfg cfg;
    rcv_model *m;
    int batch;        // planned batch the scratch is sized for
    size_t per;       // floats per image
    float *x0, *xa, *xb, *grad; // batch of images each
    float *z[3];      // logits per view (batch x classes)
    float *seed[3];   // seeds per view
    float *bufsave;   // batchnorm running statistics snapshot
    int64_t *ibufsave;
    int32_t *y;       // the batch's labels on the host (a device plan's, downloaded once per step)
} rcv_recipe;

// The settings' ranges alone (no model needed: the CLI checks before reading data). -1 with a
// message naming the value.
int rcv_recipe_check(const rcv_recipe_cfg *c);
// Validates the config against the model and, for recipes that need the input gradient,
// marks the model's input (call before rcv_graph_plan). -1 with a message.
int rcv_recipe_init(rcv_recipe *r, const rcv_recipe_cfg *c, rcv_model *m);
void rcv_recipe_free(rcv_recipe *r);
// One step: the batch is in the model's input and labels nodes (planned batch, train mode).
// Zeroes g->grads, fills them with the recipe's gradient and returns its loss. rng draws the
// step's randomness (noise, AugMix, PGD random start). The logits of the clean batch (of the
// adversarial one for pgd, the noisy one for noise) are left in rcv_recipe_logits for the training
// accuracy; after a trades step r->xa holds the adversarial batch x' it reached.
float rcv_recipe_step(rcv_recipe *r, rcv_rng *rng);
const float *rcv_recipe_logits(const rcv_recipe *r);

// The same with the random views given (tests; the input node holds x):
float rcv_recipe_stability_step(rcv_recipe *r, const float *x_noisy);
float rcv_recipe_augmix_step(rcv_recipe *r, const float *x1, const float *x2);

// AugMix (Hendrycks et al. 2020) on n images (h, w, c) in [0, 1]: width chains of depth ops
// from autocontrast, equalize, rotate, shear_x/y, translate_x/y, posterize, solarize at
// severity, mixed with Dirichlet(1) weights, then blended with the original by m ~ Beta(1, 1).
void rcv_augmix(const rcv_augmix_cfg *c, const float *x, int n, int h, int w, int ch, rcv_rng *rng, float *out);
// The ops (one image (h, w, c), in place; level in [0, 10] scales like AugMix's).
typedef enum {
    RCV_AUG_AUTOCONTRAST, RCV_AUG_EQUALIZE, RCV_AUG_ROTATE, RCV_AUG_SHEAR_X, RCV_AUG_SHEAR_Y,
    RCV_AUG_TRANSLATE_X, RCV_AUG_TRANSLATE_Y, RCV_AUG_POSTERIZE, RCV_AUG_SOLARIZE, RCV_AUG_COUNT
} rcv_aug_op;
// value: rotate degrees, shear factor, translate pixels, posterize bits, solarize threshold
// (0..256, PIL's units); ignored by autocontrast and equalize.
void rcv_aug_apply(rcv_aug_op op, float value, float *img, int h, int w, int c);

#endif
