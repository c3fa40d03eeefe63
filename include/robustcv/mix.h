// Mixup and CutMix on a batch, as timm's Mixup (timm/data/mixup.py, 0.9.16), with label
// smoothing folded into the soft targets and the soft-target cross-entropy that trains on them
// (`robustcv train --mixup A --cutmix A ...`).
//
// The image i is mixed with image j = N - 1 - i of the same batch (timm's x.flip(0) pairing):
//   mixup   x_i = lam x_i + (1 - lam) x_j
//   cutmix  x_i[box] = x_j[box], box = (yl, yh, xl, xh) of size (int(H sqrt(1 - lam)), int(W sqrt(1 - lam)))
//           centred at a uniform pixel and clipped to the image; with correct_lam (timm's default)
//           lam = 1 - box area / (H W) after clipping. With cutmix_minmax the box side is uniform in
//           [int(H min), int(H max)) (likewise W), placed uniformly inside, and lam is always corrected.
//   targets t_i = lam_i onehot(y_i) + (1 - lam_i) onehot(y_j), onehot's off = smoothing / K and
//           on = 1 - smoothing + off (timm's mixup_target).
// Modes: batch (one lam and box for the batch), pair (one per pair i, N-1-i), elem (one per image,
// mixed with the unmixed originals). A draw is used with probability prob (else lam = 1); with both
// alphas > 0 CutMix is chosen with probability switch_prob. The random draws follow timm's call
// order (uniform, beta, randint), so a test can replay numpy's values through rcv_mix_draws.
#ifndef RCV_MIX_H
#define RCV_MIX_H

#include <stdint.h>

#include "robustcv/rng.h"

typedef enum { RCV_MIX_BATCH = 0, RCV_MIX_PAIR, RCV_MIX_ELEM } rcv_mix_mode;

typedef struct {
    float mixup_alpha;      // Beta(a, a) of mixup's lam; 0 = no mixup (default 0)
    float cutmix_alpha;     // Beta(a, a) of cutmix's lam; 0 = no cutmix (default 0)
    float cutmix_minmax[2]; // box side range as a fraction of the image side; {0, 0} = off (default)
    float prob;             // probability a batch / pair / image is mixed (default 1)
    float switch_prob;      // probability of cutmix when both are on (default 0.5)
    rcv_mix_mode mode;      // default batch
    int correct_lam;        // lam from the clipped box area (default 1)
} rcv_mix_cfg;

void rcv_mix_defaults(rcv_mix_cfg *c);
// 1 when mixup or cutmix is on.
int rcv_mix_enabled(const rcv_mix_cfg *c);
// Ranges: alphas finite >= 0, probabilities in [0, 1], 0 <= min < max <= 1.
int rcv_mix_check(const rcv_mix_cfg *c);
// "batch", "pair", "elem"; -1 with a message otherwise.
int rcv_mix_mode_parse(const char *s, rcv_mix_mode *m);
const char *rcv_mix_mode_name(rcv_mix_mode m);

// Where the random numbers come from: numpy's calls as timm makes them. uniform: n values in
// [0, 1) (np.random.rand(n)); beta: n values of Beta(a, a) (np.random.beta(a, a, n));
// randint: one integer in [lo, hi) (np.random.randint(lo, hi)).
typedef struct {
    void (*uniform)(void *ctx, int n, double *out);
    void (*beta)(void *ctx, double a, int n, double *out);
    long (*randint)(void *ctx, long lo, long hi);
    void *ctx;
} rcv_mix_draws;
// The draws of a rcv_rng (the training run's): Beta from two Marsaglia-Tsang gammas.
rcv_mix_draws rcv_mix_draws_rng(rcv_rng *r);
// One Beta(a, b) variate (a, b > 0).
double rcv_rng_beta(rcv_rng *r, double a, double b);

// Mixes x (n, h, w, c) in place (n even, as timm asserts) and writes lam (n): the weight of each
// image's own label. scratch holds n*h*w*c floats (the unmixed originals). Returns 0.
int rcv_mix_batch(const rcv_mix_cfg *c, const rcv_mix_draws *d, float *x, int n, int h, int w, int ch, float *lam,
                  float *scratch);
// Soft targets t (n, k) from labels y (n) and lam (n), label smoothing folded in (timm's mixup_target).
void rcv_mix_targets(const int32_t *y, const float *lam, int n, int k, float smoothing, float *t);

// Soft-target cross-entropy, timm's SoftTargetCrossEntropy: mean_i sum_j -t_ij log_softmax(z_i)_j.
// z, t (n, k); dz (n, k) receives d(loss)/dz = (softmax(z) - t) / n (the targets sum to 1).
double rcv_soft_cross_entropy(const float *z, const float *t, int n, int k, float *dz);

#endif
