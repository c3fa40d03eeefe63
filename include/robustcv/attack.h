// Adversarial attacks on any model (models.h), in [0, 1] pixel space with the
// normalization inside the model (the torchattacks convention), batched.
//
// Conventions shared by every attack:
//   x, x_adv: (n, H, W, C) floats in [0, 1], NHWC like the model's input; n is any count,
//             processed in chunks of the model's planned batch (the last chunk padded).
//   y:        (n) int32 true labels, or target classes when cfg.targeted is set.
//   The model is run in eval mode (batchnorm running statistics, no dropout), as torchattacks
//   does; its previous mode is restored on return. Gradients come from the per-sample
//   cross-entropy computed on the logits (not the mean: a sample's step does not depend on
//   the batch size). Parameter gradients are left untouched: the backward passes run with
//   rcv_graph_set_input_grad_only (d/dx only, as torch.autograd.grad(loss, x)), restored on return.
//   Models must be prepared with rcv_attack_prepare (input gradient + plan) before use.
#ifndef RCV_ATTACK_H
#define RCV_ATTACK_H

#include <stdint.h>

#include "robustcv/models.h"
#include "robustcv/rng.h"

typedef enum { RCV_NORM_LINF = 0, RCV_NORM_L2 = 2 } rcv_norm;

// Marks the model's input for gradients and plans it for `batch` on `backend` (a re-plan only
// when something changed). 0 or -1 with a message.
int rcv_attack_prepare(rcv_model *m, int batch, rcv_backend backend);

// Predictions (argmax of the logits, ties to the smallest index) of n images, eval mode.
void rcv_attack_predict(rcv_model *m, const float *x, int n, int32_t *pred);

// Gradient of sum_i s * CE(f(x_i), y_i) with respect to x (n, H, W, C), averaged over the
// models (transfer attacks craft on several sources), s = -1 when targeted (descend towards
// y). loss (may be NULL): per-sample CE averaged over the models. Eval mode.
void rcv_attack_input_grad(rcv_model *const *models, int n_models, const float *x, const int32_t *y, int n,
                           int targeted, float *grad, float *loss);

// --- The classifier under attack (the attacks of the robustness-evaluation wave) -----------------
// One model, or several attacked as one model (an ensemble) whose logits are log(mean_m softmax(z_m))
// (probability averaging, what `robustcv ensemble` and the demo report); for one model the logits
// are the model's own. noise_sigma > 0 makes it randomized: every forward sees x + N(0, sigma^2)
// (pixels, not clamped; one draw per image shared by the members), the base classifier of a
// smoothed one, which AutoAttack's `rand` version attacks with EoT. Eval mode, like every attack.
typedef struct {
    rcv_model *const *models;
    int n_models;
    float noise_sigma; // 0 = deterministic
    rcv_rng *rng;      // noise draws (needed when noise_sigma > 0)
} rcv_classifier;

// A per-sample loss on the logits: returns L_i and writes dL_i/dz into dz (k floats; dz may be
// NULL when only the loss is wanted). i indexes the n images of the call.
typedef double (*rcv_logit_loss_fn)(void *ctx, int i, const float *z, int k, float *dz);

// Prepared, one input shape and class count (rcv_attack_check_models), sigma valid.
int rcv_classifier_check(const rcv_classifier *f);
// Logits (n, K) of n images x (n, H, W, C), eval mode, in chunks of the planned batch.
void rcv_classifier_logits(const rcv_classifier *f, const float *x, int n, float *z);
// grad (n, H, W, C) = d(sum_i L_i(f(x_i)))/dx; z (n, K) and loss (n) may be NULL. One forward and
// one backward per chunk (per member).
void rcv_classifier_grad(const rcv_classifier *f, const float *x, int n, rcv_logit_loss_fn fn, void *ctx, float *z,
                         float *loss, float *grad);
int rcv_classifier_classes(const rcv_classifier *f);
size_t rcv_classifier_per_image(const rcv_classifier *f);

// Losses on logits z (k) for the attacks (margin.c); each returns the loss and, when dz is not
// NULL, its gradient in z (ties as torch.sort / max break them: the lowest index first).
//   ce:    log sum exp z - z_y
//   dlr:   -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3 + 1e-12)          (Croce & Hein 2020, eq. 6)
//   dlr_t: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)       (targeted, t the target)
//   margin (CW's f6 / Square's): z_y - max_{i!=y} z_i
// pi: the logits sorted in descending order. dlr needs k >= 3, dlr_t k >= 4.
double rcv_loss_ce(const float *z, int k, int y, float *dz);
double rcv_loss_dlr(const float *z, int k, int y, float *dz);
double rcv_loss_dlr_targeted(const float *z, int k, int y, int t, float *dz);
double rcv_loss_margin(const float *z, int k, int y, float *dz);

// APGD (Croce & Hein 2020, fra31/auto-attack autopgd_base.py; torchattacks 3.5.1 APGD / APGDT),
// step for step. Per run, on the points still robust (gathered), from x0 = P(x + eps t / ||t||)
// (linf: t ~ U[-1, 1]^d, ||.||_inf; l2: t ~ N(0, I), ||.||_2 + 1e-12), eta = 2 eps:
//   z = P(x_k + eta sign(g))  (l2: eta g / (||g||_2 + 1e-12)),
//   x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1})),  a = 1 on the first step, then 0.75,
// P the projection on the eps-ball intersected with [0, 1]. At the checkpoints
// (rcv_apgd_checkpoints) eta halves for a point when its loss rose in at most rho * k of the last
// k steps, or when eta was not halved at the previous checkpoint and its best loss has not risen
// since; such a point restarts from its best-loss iterate (and that iterate's gradient).
// g is the gradient of the per-sample loss (ce, dlr, or targeted dlr: one run per target, the
// 2nd .. (n_target_classes + 1)-th largest clean logit, each on the points still robust), averaged
// over eot_iter draws of a randomized classifier (noise_sigma > 0).
typedef enum { RCV_APGD_CE = 0, RCV_APGD_DLR, RCV_APGD_DLR_T } rcv_apgd_loss;
typedef struct {
    rcv_norm norm;        // default linf
    float eps;            // default 8/255 (linf), 0.5 (l2)
    int n_iter;           // default 100
    int n_restarts;       // default 1
    float rho;            // default 0.75
    rcv_apgd_loss loss;
    int n_target_classes; // dlr_t: targets per point, default 9 (1 .. classes - 1)
    int eot_iter;         // gradient draws averaged per step, default 1
    // Test hook (NULL: random starts from rng): (runs, n, H, W, C), runs = n_restarts
    // (x n_target_classes for dlr_t, target-major); run r starts image i at x_init[r][i]
    // (clamped to [0, 1]; images not attacked in that run are ignored).
    const float *x_init;
} rcv_apgd_cfg;
void rcv_apgd_defaults(rcv_apgd_cfg *c, rcv_norm norm, rcv_apgd_loss loss);
// Iterations (1-based) after which the step size is checked: k = max(int(0.22 N), 1), then
// k <- max(k - max(int(0.03 N), 1), max(int(0.06 N), 1)); N = 100: 22 41 57 70 80 87 93 99.
// Writes at most max of them to out; returns how many there are.
int rcv_apgd_checkpoints(int n_iter, int *out, int max);
// x_adv: for each image the adversarial example found (the last misclassified iterate of the run
// that broke it), else x itself (the reference's perturb). robust (may be NULL): 1 where the image
// is still classified correctly (clean-correct and never misclassified). 0 / -1 with a message.
int rcv_attack_apgd(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_apgd_cfg *c,
                    rcv_rng *rng, float *x_adv, uint8_t *robust);

// FGSM (Goodfellow et al. 2015): x_adv = clamp(x + eps * sign(g), 0, 1), g the input gradient
// (towards the target when targeted: x - eps * sign(grad CE(target))).
typedef struct {
    float eps;    // default 8/255
    int targeted; // y holds target classes
} rcv_fgsm_cfg;
void rcv_fgsm_defaults(rcv_fgsm_cfg *c);
int rcv_attack_fgsm(rcv_model *const *models, int n_models, const float *x, const int32_t *y, int n,
                    const rcv_fgsm_cfg *c, float *x_adv);

// PGD (Madry et al. 2018), torchattacks' PGD / PGDL2 step for step:
//   linf: x' <- clip_{x,eps}(clamp(x' + alpha * sign(g), 0, 1))
//   l2:   x' <- x + proj_{||d||<=eps}(x' + alpha * g / (||g|| + 1e-10) - x), clamped to [0, 1]
// random_start: linf x + U(-eps, eps); l2 x + eps * r * u / ||u||, u ~ N(0, I), r ~ U(0, 1);
// clamped to [0, 1]. restarts > 1 repeats from fresh random starts and keeps per sample the
// worst case: the first run that succeeds (misclassified, or classified as the target), else
// the run with the highest loss (lowest target loss).
typedef struct {
    rcv_norm norm;    // default linf
    float eps;        // default 8/255 (linf), 0.5 (l2)
    float alpha;      // step size; default 2/255 (linf), 0.1 (l2)
    int steps;        // default 10
    int random_start; // default 1
    int restarts;     // default 1
    int targeted;
} rcv_pgd_cfg;
void rcv_pgd_defaults(rcv_pgd_cfg *c, rcv_norm norm);
int rcv_attack_pgd(rcv_model *const *models, int n_models, const float *x, const int32_t *y, int n,
                   const rcv_pgd_cfg *c, rcv_rng *rng, float *x_adv);
// The same steps on a classifier (one model: identical to rcv_attack_pgd; an ensemble: attacked
// as one model, its log-mean-softmax logits).
int rcv_attack_pgd_classifier(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_pgd_cfg *c,
                              rcv_rng *rng, float *x_adv);

// DeepFool (Moosavi-Dezfooli et al. 2016), multi-class over the top `classes` classes of the
// clean image, as the authors' code: per iteration, for each candidate k != the original
// class, w_k = grad(f_k - f_orig), f'_k = f_k - f_orig; l = argmin |f'_k| / ||w_k||; the step
// r = (|f'_l| / ||w_l|| + 1e-4) w_l / ||w_l|| is added to r_tot and the image is
// clamp(x + (1 + overshoot) r_tot, 0, 1); it stops when the label changes or after max_iter.
// Untargeted only. iters (may be NULL): iterations used per sample (max_iter = not converged).
typedef struct {
    float overshoot; // default 0.02
    int max_iter;    // default 50
    int classes;     // candidate classes, default 10
} rcv_deepfool_cfg;
void rcv_deepfool_defaults(rcv_deepfool_cfg *c);
int rcv_attack_deepfool(rcv_model *m, const float *x, int n, const rcv_deepfool_cfg *c, float *x_adv, int *iters);

// Universal adversarial perturbation (Moosavi-Dezfooli et al. 2017, Algorithm 1): one v with
// ||v||_p <= xi fooling a fraction >= 1 - delta of the images:
//   repeat (at most max_passes passes over x in a random order):
//     for each image with k(clamp(x + v)) == k(x): dr = DeepFool(clamp(x + v)) - clamp(x + v);
//       if DeepFool converged (fewer than max_iter iterations): v = proj_{p,xi}(v + dr)
//   until fooling rate >= 1 - delta
// Images go through DeepFool in chunks of `chunk` with the same v and their updates are then
// applied one after another (chunk 1 is the paper's algorithm exactly; larger is faster, and a
// chunk below the planned batch still pays for the whole batch).
typedef struct {
    float xi;        // norm bound; default 10/255 (linf), 2.0 (l2)
    rcv_norm p;      // linf or l2; default linf
    float delta;     // target fooling rate 1 - delta; default 0.2
    int max_passes;  // default 10
    float overshoot; // DeepFool's; default 0.02
    int max_iter;    // DeepFool's iteration cap; default 10 (the authors' UAP code)
    int classes;     // DeepFool's candidate classes; default 10
    int chunk;       // images per DeepFool batch; 0 = the model's planned batch (default)
    int verbose;     // one line per pass on stderr
} rcv_uap_cfg;
void rcv_uap_defaults(rcv_uap_cfg *c, rcv_norm p);
// v: (H, W, C) output. fooling (may be NULL): final fooling rate on x. passes (may be NULL).
int rcv_attack_uap(rcv_model *m, const float *x, int n, const rcv_uap_cfg *c, rcv_rng *rng, float *v,
                   float *fooling, int *passes);
// x_adv = clamp(x + v, 0, 1) for n images.
void rcv_uap_apply(const float *v, const float *x, int n, size_t per_image, float *x_adv);

// The seed's image-dependent perturbation generator (section 7.1.2; Poursaeed et al.'s GAP):
// a small conv net G maps x to a perturbation; x_adv = clamp(x + d, 0, 1) with
//   linf: d = eps * t          l2: d = eps * t / ||t||   (per image),
//   t = 2 sigmoid(u) - 1 = tanh(u / 2) in (-1, 1),
// where u = G(x) (N, C, H, W) is conv3x3(C->w) relu conv3x3(w->w) relu conv3x3(w->C) (with
// biases). G is trained with Adam against the frozen classifier (eval mode) to maximise its
// mean cross-entropy on the true labels (to minimise it towards the target when targeted).
// The generator trains at the classifier's planned batch.
typedef struct {
    rcv_norm norm;    // default linf
    float eps;        // default 0.1
    int width;        // hidden channels, default 16
    int epochs;       // passes over the training images, default 1
    float lr;         // Adam, default 1e-3
    int targeted, target;
    uint64_t seed;
    int verbose;
} rcv_gen_cfg;
void rcv_gen_defaults(rcv_gen_cfg *c);
typedef struct {
    rcv_graph *g;
    int input, out; // node ids: image (N, C, H, W) in [0, 1], sigmoid(u) (N, C, H, W)
    rcv_gen_cfg cfg;
    int c, h, w;
} rcv_generator;
// Builds G for c x h x w images and initialises it (PyTorch's conv defaults, cfg.seed).
int rcv_generator_build(rcv_generator *gen, int c, int h, int w, const rcv_gen_cfg *cfg);
void rcv_generator_free(rcv_generator *gen);
// Trains G on n images (labels y) against m (prepared). loss_out (may be NULL): mean CE of the
// classifier on the last epoch's perturbed images.
int rcv_generator_train(rcv_generator *gen, rcv_model *m, const float *x, const int32_t *y, int n,
                        rcv_rng *rng, float *loss_out);
// x_adv = clamp(x + d(G(x)), 0, 1) for n images.
int rcv_generator_apply(rcv_generator *gen, const float *x, int n, float *x_adv);

// FAB-T (Croce & Hein 2020; fra31/auto-attack fab_pt.py, torchattacks FAB(multi_targeted=True)):
// for each of the n_target_classes runner-up classes t (the 2nd .. (n_target_classes + 1)-th largest
// clean logits), on the points still robust, n_iter steps towards the linearized boundary of
// f = z_t - z_y (w = grad f, one backward per step):
//   d1, d2 = the smallest-norm steps from x1 and from x onto {w.x' = w.x1 - f(x1)} within [0, 1]
//   alpha = min(||d1|| / (||d1|| + ||d2||), alpha_max)
//   x1 = clamp((x1 + eta d1)(1 - alpha) + (x + eta d2) alpha, 0, 1)
//   when x1 is misclassified: keep it if closest so far, then x1 = x + beta (x1 - x)
// Success: misclassified with ||x_adv - x|| <= eps. Restart r > 0 starts at x + eps/2 t/||t||
// (t uniform in [-1, 1] (linf) or Gaussian (l2)). A point stops once it has an adversarial example
// within eps (the reference keeps shrinking its norm; the verdict is the same). Only targeted
// (FAB-T) is implemented: targeted 0 is an error.
typedef struct {
    rcv_norm norm;
    float eps;                            // default 8/255 (linf), 0.5 (l2)
    int n_iter, n_restarts, n_target_classes; // default 100, 1, 9
    float alpha_max, eta, beta;           // default 0.1, 1.05, 0.9
    int targeted;                         // default 1 (FAB-T)
} rcv_fab_cfg;
void rcv_fab_defaults(rcv_fab_cfg *c, rcv_norm norm);

// Square attack (Andriushchenko et al. 2020; fra31/auto-attack square.py, torchattacks Square),
// untargeted, score-based (forward passes only) on the margin loss z_y - max_{i!=y} z_i:
//   start: linf x + eps * (vertical stripes: one random sign per column and channel); l2 x + eps *
//   a grid of 5x5 windows of the meta-pseudo-Gaussian pattern with random signs, normalized;
//   clamped to [0, 1]. Iteration i (0-based, of n_queries): p = p_init halved after i = 10, 50,
//   200, 500, 1000, 2000, 4000, 6000, 8000 (i read as i * 10000 / n_queries when resc_schedule);
//   a random square window of side s = max(round(sqrt(p * H * W)), 1) (l2: >= 3, odd), capped
//   at min(H, W): linf sets it to x +- eps (a random sign per channel); l2 moves the
//   perturbation's mass of a second window into it, pattern-shaped, keeping ||delta|| = eps.
//   The candidate replaces the current point when its margin is lower or it is misclassified.
// Only still-correct points are queried; a point stops when misclassified. One random window per
// image (the PyTorch code draws one for the whole batch; the per-image law is the same).
typedef struct {
    rcv_norm norm;
    float eps;         // default 8/255 (linf), 0.5 (l2)
    int n_queries;     // default 5000
    int n_restarts;    // default 1
    float p_init;      // default 0.8
    int resc_schedule; // default 0 (the schedule at fixed iterations)
} rcv_square_cfg;
void rcv_square_defaults(rcv_square_cfg *c, rcv_norm norm);
// Square's fraction p of the pixels for iteration it (0-based).
float rcv_square_p(const rcv_square_cfg *c, int it);

// x_adv: for each image the adversarial example found (misclassified, within eps), else x itself.
// robust (may be NULL): 1 where still correctly classified. 0 / -1 with a message.
int rcv_attack_fab(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_fab_cfg *c,
                   rcv_rng *rng, float *x_adv, uint8_t *robust);
int rcv_attack_square(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_square_cfg *c,
                      rcv_rng *rng, float *x_adv, uint8_t *robust);

// Random-noise baseline (not an attack; the Gaussian-noise accuracy of the robustness tables):
// x_adv = clamp(x + N(0, sigma^2), 0, 1), sigma in pixel units, n_floats values.
void rcv_attack_gaussian(const float *x, size_t n_floats, float sigma, rcv_rng *rng, float *x_adv);

// Carlini-Wagner L2 (Carlini & Wagner 2017), torchattacks 3.5.1's CW step for step: Adam (lr) on
// w, x' = (tanh(w) + 1) / 2, w0 = atanh(clamp(2x - 1, -1, 1)), minimising
//   sum_i ||x'_i - x_i||_2^2 + c * sum_i max(Z_y - max_{j!=y} Z_j, -kappa)
// (targeted: max(max_{j!=t} Z_j - Z_t, -kappa); both maxima over the one-hot-masked logits, 0
// where masked, as torchattacks computes them). Per image the successful iterate with the
// smallest L2 is kept; every max(steps / 10, 1) steps the run stops when the summed cost of the
// chunk (the planned batch: torchattacks run at that batch size) rose.
// binary_steps > 0: Carlini & Wagner's search over c per image, that many runs from c: after a
// run c is multiplied by 10 while no run succeeded, else bisected between the largest failing
// and the smallest succeeding c; the smallest L2 over all runs is kept. 0 = one run (torchattacks).
typedef struct {
    float c, kappa, lr;    // defaults 1, 0, 0.01
    int steps, binary_steps; // defaults 50, 0
    int targeted;          // y holds the target classes (default 0)
} rcv_cw_cfg;
void rcv_cw_defaults(rcv_cw_cfg *c);
// x_adv: the smallest-L2 adversarial example found per image, else x itself. 0 / -1 with a message.
int rcv_attack_cw(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_cw_cfg *c, float *x_adv);

// Attack statistics of one target model, accumulated over batches.
//   clean accuracy    = clean_correct / n
//   adversarial acc.  = adv_correct / n
//   success rate      untargeted: originally-correct samples that become wrong / originally correct;
//                     targeted: originally-correct samples (true class != target) classified as the
//                     target / such samples
//   fooling rate      = samples whose prediction changed / n
typedef struct {
    long n, clean_correct, adv_correct, success, success_denom, changed;
    double linf_max, l2_sum; // largest L-inf perturbation, sum of per-sample L2 norms
} rcv_attack_stats;
// Transfer (black-box) attack: FGSM or PGD crafted on the sources (their per-sample loss
// gradients averaged; restarts judge success on the first source), then evaluated on the
// target, whose gradients are never used. st (may be NULL) accumulates the target's statistics.
typedef enum { RCV_TRANSFER_FGSM = 0, RCV_TRANSFER_PGD = 1 } rcv_transfer_kind;
typedef struct {
    rcv_transfer_kind kind;
    rcv_fgsm_cfg fgsm;
    rcv_pgd_cfg pgd;
} rcv_transfer_cfg;
int rcv_attack_transfer(rcv_model *const *sources, int n_sources, rcv_model *target, const rcv_transfer_cfg *c,
                        const float *x, const int32_t *y, int n, rcv_rng *rng, float *x_adv, rcv_attack_stats *st);

// Adds a batch: y true labels, target (NULL: untargeted) per-sample target classes.
void rcv_attack_stats_add(rcv_attack_stats *s, rcv_model *target_model, const float *x, const float *x_adv,
                          const int32_t *y, const int32_t *target, int n);

// --- AutoAttack (Croce & Hein 2020; fra31/auto-attack's run_standard_evaluation) -------------
// standard: APGD-CE -> APGD-T (9 targets) -> FAB-T (9 targets) -> Square (5000 queries), each on
// the points still robust (clean-correct and not yet broken), 1 restart each, 100 iterations;
// rand (for randomized classifiers): APGD-CE -> APGD-DLR with 20 EoT samples. An image is robust
// when no attack broke it; x_adv holds, per image, the first adversarial example found (the
// pointwise worst case), else the clean image. Every attack starts from its own generator seeded
// with `seed`, as the reference seeds each. Warnings (stderr, and counted in the result), like the
// reference's checks: outputs that look like probabilities (rows in [0, 1] summing to 1), images
// whose loss gradient is zero, a randomized classifier under `standard`, and Square lowering the
// robust accuracy the white-box attacks left (a sign of gradient masking).
typedef enum { RCV_AA_STANDARD = 0, RCV_AA_RAND = 1 } rcv_aa_version;
#define RCV_AA_MAX_ATTACKS 4
typedef struct {
    rcv_norm norm;          // default linf
    float eps;              // default 8/255 (linf), 0.5 (l2)
    rcv_aa_version version; // default standard
    int n_iter;             // APGD and FAB iterations, default 100
    int n_queries;          // Square, default 5000
    int eot_iter;           // rand: EoT samples per gradient, default 20
    uint64_t seed;          // default 0
    const char *attacks;    // NULL: the version's; else a comma list of apgd-ce, apgd-dlr, apgd-t, fab-t, square
    int verbose;            // a line per attack on stderr
} rcv_autoattack_cfg;
void rcv_autoattack_defaults(rcv_autoattack_cfg *c, rcv_norm norm);
// c->attacks names known attacks (at most RCV_AA_MAX_ATTACKS): 0, or -1 with rcv_autoattack's message.
int rcv_autoattack_check(const rcv_autoattack_cfg *c);
typedef struct {
    int n, n_attacks;
    long clean;                                   // correctly classified before any attack
    long robust[RCV_AA_MAX_ATTACKS];              // still robust after each attack
    char name[RCV_AA_MAX_ATTACKS][16];            // "apgd-ce", ...
    double seconds[RCV_AA_MAX_ATTACKS];
    long probabilities, zero_grad;                // warnings: probability-like rows, zero-gradient images
    int randomized, square_lowered;               // warnings
} rcv_autoattack_result;
// robust (may be NULL): per image. 0 / -1 with a message (bad eps, unknown attack, too few classes).
int rcv_autoattack(const rcv_classifier *f, const float *x, const int32_t *y, int n, const rcv_autoattack_cfg *c,
                   float *x_adv, uint8_t *robust, rcv_autoattack_result *r);

#endif
