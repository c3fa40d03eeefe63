// Shared by src/robust/*.c (private to the library).
#ifndef RCV_ROBUST_PRIV_H
#define RCV_ROBUST_PRIV_H

#include <stdlib.h>

#include "robustcv/attack.h"

// C * H * W of the model's input.
size_t rcv_attack_per_image(const rcv_model *m);
// Copies nb images into the planned input node, zero-padding to the planned batch.
void rcv_attack_load_chunk(rcv_model *m, const float *x, int nb);
int rcv_argmax(const float *z, int k);
// The planned tensor `planned` (n floats) readable on the host: itself on a host plan; on a device
// plan a download into `host` (the per-call host copy of the attacks that still compute on the host).
const float *rcv_attack_view(rcv_graph *g, const float *planned, float *host, size_t n);
// L-inf sign-gradient iterations of one model with every iteration in the plan's storage (the
// cuda kernels on a GPU plan, their host twins otherwise; backend.h's attack ops), eval mode,
// input gradients only: per chunk of the planned batch the clean images, the loss's targets and
// the start go in once, the iterate lives in the input node, and the result comes out once.
// adv = adv0 (x when NULL); then `steps` times adv = clamp01(P(adv + alpha sign(grad_x L))), P
// the projection on the eps-ball around x (none when eps < 0). L per sample: y given: s CE(f(adv),
// y) (s = -1 when targeted); else p given ((n, K) doubles): KL(p || softmax f(adv)) (TRADES, whose
// projection clips to [x - eps, x + eps] as its code does; PGD's is x + clamp(adv - x, -eps, eps)).
// FGSM is (adv0 NULL, alpha = eps, eps = -1, 1 step); PGD's L-inf run starts at clamp01(x + u).
// x, adv0, x_adv: (n, per) host floats. 0 / -1 with a message.
int rcv_attack_linf_resident(rcv_model *m, const float *x, const int32_t *y, const double *p, int n, const float *adv0,
                             float alpha, float eps, int steps, int targeted, float *x_adv);
// Cross-entropy of logits z (k) against class y; seed (may be NULL) = s * (softmax(z) - onehot(y)).
double rcv_ce_seed(const float *z, int k, int y, float s, float *seed);
// All prepared and of one input shape and class count; -1 with a message otherwise.
int rcv_attack_check_models(rcv_model *const *models, int n_models);

static inline float rcv_clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }
static inline float rcv_signf(float v) { return (float)((v > 0) - (v < 0)); }



// DeepFool on nb <= planned batch images (eval mode set by the caller): adv, updates made per
// image, and whether its label changed.
void rcv_deepfool_chunk(rcv_model *m, const float *x0, int nb, const rcv_deepfool_cfg *c, float *adv, int *iters,
                        uint8_t *flipped);
// FAB's projections (fab.c): d (n) = the smallest-norm step from t (n, in [0, 1]) onto
// {x : <w, x> = b} within [0, 1]^n (the nearest box corner when out of reach), fra31's
// projection_linf / projection_l2. scratch: from rcv_fab_scratch_new(n).
void rcv_fab_project_linf(const float *t, const float *w, float b, int n, float *d, void *scratch);
void rcv_fab_project_l2(const float *t, const float *w, float b, int n, float *d, void *scratch);
void *rcv_fab_scratch_new(int n);
// The members' planned batch; re-planning all members for `batch` images (replan.c); and
// rcv_classifier_fit: re-plans for want = `active` rounded up to a multiple of 8, at most `full`
// (the caller's planned batch), when want exceeds the current batch or leaves a quarter of it
// (at least 8 rows) unused (the attacks query fewer points as they fall). 0 or -1.
int rcv_classifier_batch(const rcv_classifier *f);
int rcv_classifier_replan(const rcv_classifier *f, int batch);
int rcv_classifier_fit(const rcv_classifier *f, int active, int full);
void rcv_fab_scratch_free(void *s);
#endif
