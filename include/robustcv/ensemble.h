// Ensembles of classifiers from their outputs: M models' logits on the same n images,
// each (n, k) row-major. Nothing here runs a model, so any evaluation set (clean, denoised,
// corrupted, attacked) ensembles the same way.
//
//   averaging   out = sum_m w_m * f(z_m) / sum_m w_m, f = identity (logits, the seed's
//               choice: SEED_FACTS.md) or softmax (probabilities); w = 1 unless given
//   vote        each model votes for its argmax (lowest index on ties); the class with the most
//               votes wins. Ties between classes with equally many votes:
//                 RCV_VOTE_TIE_LOWEST  the lowest class index (the seed's code, SEED_FACTS.md)
//                 RCV_VOTE_TIE_PROB    the highest summed softmax probability over the voting
//                                      models among the tied classes, then the lowest index
//   subsets     every non-empty subset of the M models (bit m of the mask = model m), as in the
//               seed's Table 2: top-1 and top-5 of the average, top-1 of the vote.
#ifndef RCV_ENSEMBLE_H
#define RCV_ENSEMBLE_H

#include <stdint.h>

#include "robustcv/json.h"

#define RCV_ENSEMBLE_MAX 16 // models per subset table (2^16 - 1 subsets)

typedef enum { RCV_ENS_LOGITS = 0, RCV_ENS_PROBS = 1 } rcv_ens_space;
typedef enum { RCV_VOTE_TIE_LOWEST = 0, RCV_VOTE_TIE_PROB = 1 } rcv_vote_tie;

// Weighted average of the models whose bit is set in mask: out (n, k). weights: M entries or
// NULL (equal). -1 with a message for an empty mask, a negative weight or a zero weight sum.
int rcv_ensemble_average(const float *const *logits, const float *weights, int n_models, uint32_t mask, int n, int k,
                         rcv_ens_space space, float *out);
// Majority vote of the masked models: pred (n). -1 with a message for an empty mask.
int rcv_ensemble_vote(const float *const *logits, int n_models, uint32_t mask, int n, int k, rcv_vote_tie tie,
                      int32_t *pred);

typedef struct {
    uint32_t mask;   // members: bit m = model m
    int size;        // number of members
    double avg_top1, avg_top5, vote_top1; // fractions; for one model the vote is its own top-1
} rcv_ens_subset;

// All 2^M - 1 subsets in Table 2's order: single models first (model order), then larger
// subsets by decreasing size, each size in lexicographic order of its member list
// ({0,1,2} before {0,1,3} before {0,2,3}). *out is malloc'ed (*n_out entries). weights as above.
int rcv_ensemble_subsets(const float *const *logits, const float *weights, const int32_t *labels, int n_models, int n,
                         int k, rcv_ens_space space, rcv_vote_tie tie, rcv_ens_subset **out, int *n_out);
// "(1), (2), (4)": the 1-based member list as the seed's Table 2 writes it (buf of len bytes).
void rcv_ensemble_members_str(uint32_t mask, int n_models, char *buf, int len);

// Writes the "ensembles" object of results.json (docs/report.md) as the next value of w: for
// n_sets evaluation sets, subsets[s] the rcv_ensemble_subsets table of set s (all in the same
// order, n_subsets rows each).
void rcv_ensemble_json(rcv_json_writer *w, const char *const *set_names, rcv_ens_subset *const *subsets, int n_sets,
                       int n_subsets, int n_models, rcv_ens_space space, rcv_vote_tie tie);

#endif
