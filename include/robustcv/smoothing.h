// Certified L2 robustness by randomized smoothing (Cohen, Rosenfeld & Kolter 2019; their
// locuslab/smoothing code/core.py, step for step). The smoothed classifier is
//   g(x) = argmax_c P(f(x + d) = c),  d ~ N(0, sigma^2 I)  (pixels, [0, 1] scale, NOT clamped),
// f the model's argmax (eval mode, ties to the smallest index like torch.argmax).
//
// CERTIFY(x):  counts0 = counts of f over n0 noisy copies; cA = argmax counts0 (first on ties);
//              nA = counts of cA over n fresh copies; pA = rcv_cp_lower(nA, n, alpha);
//              pA < 0.5: abstain (class -1, radius 0), else radius = sigma * Phi^-1(pA).
//              With probability >= 1 - alpha over the noise, g(x + e) = cA for every ||e||_2 < radius.
// PREDICT(x):  counts over n copies; c1 >= c2 the top two; abstain when
//              rcv_binom_test_half(c1, c1 + c2) > alpha, else the top class (wrong with probability
//              <= alpha).
// Certified accuracy at r = mean(pred == label and radius >= r); abstentions count as wrong.
//
// Sampling: `batch` noisy copies per forward, through the model planned at that batch. The noise
// stream is fixed: per chunk of nb copies (nb = batch, the last one what is left) one
// rcv_rng_fill_normal(rng, input, nb * C*H*W, 0, sigma), then x is added to every copy. So the
// same seed gives the same counts whatever the thread count.
#ifndef RCV_SMOOTHING_H
#define RCV_SMOOTHING_H

#include <stdint.h>

#include "robustcv/models.h"
#include "robustcv/rng.h"

typedef struct {
    float sigma;  // noise std in pixels, > 0 (no default: core.py's sigma is the model's training noise)
    int n0;       // selection samples, default 100
    int n;        // estimation samples, default 100000
    int batch;    // noisy copies per forward pass, default 1000
    double alpha; // failure probability, in (0, 1); default 0.001
} rcv_smooth_cfg;

// sigma 0.25, n0 100, n 100000, batch 1000, alpha 0.001.
void rcv_smooth_defaults(rcv_smooth_cfg *c);
// sigma > 0 and finite, n > 0, 0 < n0 <= n, batch > 0, 0 < alpha < 1; -1 with a message naming the
// value otherwise.
int rcv_smooth_check(const rcv_smooth_cfg *c);

// Plans the model for forward passes at c->batch on backend `be` (only when that changed) and sets
// eval mode. certify and predict call it themselves with the model's current backend (cpu when it
// was never planned).
int rcv_smooth_prepare(rcv_model *m, const rcv_smooth_cfg *c, rcv_backend be);

// counts (n_classes) of the model's argmax over `num` noisy copies of x (H, W, C), added to counts
// (zero it first). The model is planned; copies go through it in chunks of its planned batch.
void rcv_smooth_counts(rcv_model *m, const float *x, float sigma, long num, rcv_rng *rng, long *counts);

typedef struct {
    int pred;      // cA, or -1 (abstain)
    double radius; // certified L2 radius (0 when abstaining)
    long count;    // certify: nA (the count of cA among the n samples); predict: c1
    long count2;   // predict: c2 (the runner-up's count); certify: unused (0)
    double p;      // certify: pA, the lower confidence bound; predict: the binomial test's p-value
} rcv_smooth_result;

// One image x (H, W, C). 0, or -1 with a message (bad config, plan failure).
int rcv_smooth_certify(rcv_model *m, const float *x, const rcv_smooth_cfg *c, rcv_rng *rng, rcv_smooth_result *r);
// PREDICT uses c->n samples (n0 is ignored).
int rcv_smooth_predict(rcv_model *m, const float *x, const rcv_smooth_cfg *c, rcv_rng *rng, rcv_smooth_result *r);

// acc[j] = mean_i (pred[i] == label[i] && radius[i] >= radii[j]) over n images (pred -1 = abstain).
void rcv_smooth_certified_accuracy(const int *pred, const double *radius, const int32_t *label, int n,
                                   const double *radii, int n_radii, double *acc);

// --- the statistics (own C; tests/oracle/smoothing_ref.py checks them against scipy) ---------------
// Standard normal quantile Phi^-1(p), p in (0, 1) (-inf / +inf at 0 / 1, NaN outside):
// Acklam's rational approximation and one Halley step on erfc (relative error ~1e-15).
double rcv_norm_ppf(double p);
// Regularized incomplete beta I_x(a, b), a, b > 0, x in [0, 1] (continued fraction, Lentz).
double rcv_betainc(double a, double b, double x);
// Beta(a, b) quantile: the x with I_x(a, b) = p (safeguarded Newton on a bisection bracket).
double rcv_beta_ppf(double p, double a, double b);
// One-sided (1 - alpha) Clopper-Pearson lower bound on the success probability after na successes in
// n trials = statsmodels' proportion_confint(na, n, alpha=2*alpha, method="beta")[0] =
// Beta(alpha; na, n - na + 1) quantile, 0 when na = 0.
double rcv_cp_lower(long na, long n, double alpha);
// scipy.stats.binom_test(c1, n, 0.5), two-sided: with X ~ Bin(n, 1/2) and the terms no more likely
// than P(X = c1) summed, at p = 1/2 that is min(1, 2 P(X <= min(c1, n - c1))), and 1 when c1 = n / 2.
double rcv_binom_test_half(long c1, long n);

#endif
