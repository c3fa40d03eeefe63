// Classification metrics on plain arrays: scores/logits (n, k) row-major, labels (n).
// Everything here is a pure function of its inputs, so the evaluation suites, the
// ensembles and the report share one definition of each number.
//
// Conventions:
//   - top-k: a sample counts when fewer than k classes rank above its label; a class
//     ranks above the label when its score is higher, or equal with a lower index
//     (torch.topk's stable order on CPU, as rcv_evaluate). Scores may be logits or
//     probabilities (any order-preserving map gives the same ranks).
//   - predictions (argmax) take the lowest index among equal maxima.
#ifndef RCV_METRICS_H
#define RCV_METRICS_H

#include <stdint.h>

// Row-wise softmax in double, stored as float: probs (n, k). probs may equal logits.
void rcv_softmax_rows(const float *logits, int n, int k, float *probs);
// Argmax of each row (lowest index on ties): pred (n).
void rcv_argmax_rows(const float *scores, int n, int k, int32_t *pred);
// Fraction of samples whose label is in the top `topk` scores (topk >= k counts all).
double rcv_metric_topk(const float *scores, const int32_t *labels, int n, int k, int topk);
// Mean negative log-likelihood -log softmax(z)_y, computed with log-sum-exp in double.
double rcv_metric_nll_logits(const float *logits, const int32_t *labels, int n, int k);
// Mean -log p_y from probabilities; p_y is clamped below at 1e-12 so a confidently wrong
// ensemble gives a large finite number (27.6) instead of infinity.
double rcv_metric_nll_probs(const float *probs, const int32_t *labels, int n, int k);

// Expected calibration error (Guo et al. 2017, eq. 3): confidence = max_j p_j, prediction =
// argmax; n_bins equal-width bins, bin b holding confidences in (b/B, (b+1)/B] (bin 0 also
// takes confidence 0); ECE = sum_b |B_b|/n * |acc(B_b) - conf(B_b)|. Guo et al. use 15 bins.
// Optional per-bin outputs (NULL to skip), n_bins entries each: count, accuracy, mean confidence
// (0 for an empty bin). Returns the ECE as a fraction (0..1).
double rcv_metric_ece(const float *probs, const int32_t *labels, int n, int k, int n_bins, int64_t *bin_count,
                      double *bin_acc, double *bin_conf);

// Corruption errors (Hendrycks & Dietterich 2019, section 3):
//   err[c * n_sev + s]      top-1 error (0..1) of the model on corruption c at severity s
//   base_err[...]           the same for the baseline model (AlexNet in the paper)
//   clean_err, base_clean_err: errors on the clean test set
//   CE_c          = sum_s err_{c,s} / sum_s base_err_{c,s}
//   relative CE_c = sum_s (err_{c,s} - clean_err) / sum_s (base_err_{c,s} - base_clean_err)
//   mCE, relative mCE = their means over the corruptions.
// ce, rel_ce: n_corr entries (either may be NULL); mce, rel_mce may be NULL. Ratios, not
// percentages (the paper prints 100x). -1 with a message naming the corruption index when the
// baseline never errs on a corruption (CE undefined). A relative CE whose baseline does not
// degrade (sum_s (base_err - base_clean_err) == 0) is NaN, and so is then the relative mCE.
int rcv_metric_corruption(const double *err, const double *base_err, int n_corr, int n_sev, double clean_err,
                          double base_clean_err, double *ce, double *rel_ce, double *mce, double *rel_mce);

// Intersection over union of two boxes (x0, y0, x1, y1), the metric of NAME+box models:
//   IoU = area(a n b) / (area(a) + area(b) - area(a n b)),  area = (x1 - x0) (y1 - y0)
// in continuous coordinates (no +1 for pixel indices), as torchvision.ops.box_iou. A box with
// x1 < x0 or y1 < y0 is empty (torchvision would give it a negative area). 0 when the union is
// empty (torchvision: NaN for two empty boxes). Any unit, the same for both boxes; robustcv
// scores boxes normalised by the image size (rcv_boxes_normalize in data.h).
double rcv_box_iou(const float *a, const float *b);

#endif
