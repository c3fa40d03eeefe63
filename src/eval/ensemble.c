// Ensembles: weighted averaging of logits or probabilities, majority vote, and every
// subset of M models (see ensemble.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/ensemble.h"
#include "robustcv/error.h"
#include "robustcv/metrics.h"

static int popcount(uint32_t x) {
    int c = 0;
    for (; x; x &= x - 1) c++;
    return c;
}

static int check_mask(uint32_t mask, int n_models, const char *what) {
    if (n_models <= 0 || n_models > RCV_ENSEMBLE_MAX)
        return rcv_fail("ensemble %s: %d models, expected 1..%d", what, n_models, RCV_ENSEMBLE_MAX);
    if ((mask & ((1u << n_models) - 1)) == 0)
        return rcv_fail("ensemble %s: empty subset (mask 0x%x of %d models)", what, mask, n_models);
    return 0;
}

// Each model's rows in the averaging space: the logits themselves, or their softmax (malloc'ed
// copies in *owned, to free).
static const float **space_rows(const float *const *logits, int n_models, int n, int k, rcv_ens_space space,
                                float **owned) {
    const float **rows = rcv_xmalloc((size_t)n_models * sizeof *rows);
    *owned = NULL;
    if (space == RCV_ENS_PROBS) {
        *owned = rcv_xmalloc((size_t)n_models * n * k * sizeof(float));
        for (int m = 0; m < n_models; m++) {
            float *p = *owned + (size_t)m * n * k;
            rcv_softmax_rows(logits[m], n, k, p);
            rows[m] = p;
        }
    } else {
        for (int m = 0; m < n_models; m++) rows[m] = logits[m];
    }
    return rows;
}

// out (n, k) = sum_{m in mask} w_m rows[m] / sum w (double accumulation).
static int average_rows(const float *const *rows, const float *weights, int n_models, uint32_t mask, int n, int k,
                        float *out) {
    double wsum = 0;
    for (int m = 0; m < n_models; m++) {
        if (!(mask >> m & 1)) continue;
        double w = weights ? weights[m] : 1.0;
        if (!(w >= 0)) return rcv_fail("ensemble average: weight %g of model %d, expected >= 0", w, m + 1);
        wsum += w;
    }
    if (!(wsum > 0)) return rcv_fail("ensemble average: the members' weights sum to %g, expected > 0", wsum);
    double *acc = rcv_xmalloc((size_t)k * sizeof(double));
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < k; j++) acc[j] = 0;
        for (int m = 0; m < n_models; m++) {
            if (!(mask >> m & 1)) continue;
            double w = weights ? weights[m] : 1.0;
            const float *r = rows[m] + (size_t)i * k;
            for (int j = 0; j < k; j++) acc[j] += w * r[j];
        }
        for (int j = 0; j < k; j++) out[(size_t)i * k + j] = (float)(acc[j] / wsum);
    }
    free(acc);
    return 0;
}

int rcv_ensemble_average(const float *const *logits, const float *weights, int n_models, uint32_t mask, int n, int k,
                         rcv_ens_space space, float *out) {
    if (check_mask(mask, n_models, "average")) return -1;
    float *owned;
    const float **rows = space_rows(logits, n_models, n, k, space, &owned);
    int rc = average_rows(rows, weights, n_models, mask, n, k, out);
    free(owned);
    free(rows);
    return rc;
}

// Vote of the masked models for sample i, from their argmaxes pred[m][i]; probs[m] (n, k)
// softmax rows, needed only for RCV_VOTE_TIE_PROB. votes: k ints of scratch.
static int vote_one(const int32_t *const *pred, const float *const *probs, int n_models, uint32_t mask, int i, int k,
                    rcv_vote_tie tie, int *votes) {
    for (int j = 0; j < k; j++) votes[j] = 0;
    int most = 0;
    for (int m = 0; m < n_models; m++)
        if (mask >> m & 1) {
            int v = ++votes[pred[m][i]];
            most = v > most ? v : most;
        }
    int best = -1;
    double best_p = -1;
    for (int j = 0; j < k; j++) {
        if (votes[j] != most) continue;
        if (tie == RCV_VOTE_TIE_LOWEST) return j;
        double s = 0;
        for (int m = 0; m < n_models; m++)
            if (mask >> m & 1) s += probs[m][(size_t)i * k + j];
        if (s > best_p) best = j, best_p = s; // strict: equal sums keep the lower index
    }
    return best;
}

int rcv_ensemble_vote(const float *const *logits, int n_models, uint32_t mask, int n, int k, rcv_vote_tie tie,
                      int32_t *out) {
    if (check_mask(mask, n_models, "vote")) return -1;
    int32_t **pred = rcv_xmalloc((size_t)n_models * sizeof *pred);
    for (int m = 0; m < n_models; m++) {
        pred[m] = rcv_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
        rcv_argmax_rows(logits[m], n, k, pred[m]);
    }
    float *owned = NULL;
    const float **probs = tie == RCV_VOTE_TIE_PROB ? space_rows(logits, n_models, n, k, RCV_ENS_PROBS, &owned) : NULL;
    int *votes = rcv_xmalloc((size_t)k * sizeof(int));
    for (int i = 0; i < n; i++) out[i] = vote_one((const int32_t *const *)pred, probs, n_models, mask, i, k, tie, votes);
    free(votes);
    free(owned);
    free(probs);
    for (int m = 0; m < n_models; m++) free(pred[m]);
    free(pred);
    return 0;
}

// Table 2's order: size 1 first, then decreasing size; within a size, lexicographic member lists.
// For masks of equal size, lexicographic order of the sorted member lists is: compare the lowest
// member where they differ, the mask holding it comes first.
static int cmp_subset(const void *a, const void *b) {
    const rcv_ens_subset *x = a, *y = b;
    int kx = x->size == 1 ? 1 << 30 : x->size, ky = y->size == 1 ? 1 << 30 : y->size;
    if (kx != ky) return kx > ky ? -1 : 1;
    uint32_t d = x->mask ^ y->mask;
    if (!d) return 0;
    uint32_t low = d & -d;
    return (x->mask & low) ? -1 : 1;
}

int rcv_ensemble_subsets(const float *const *logits, const float *weights, const int32_t *labels, int n_models, int n,
                         int k, rcv_ens_space space, rcv_vote_tie tie, rcv_ens_subset **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (n_models <= 0 || n_models > RCV_ENSEMBLE_MAX)
        return rcv_fail("ensemble subsets: %d models, expected 1..%d", n_models, RCV_ENSEMBLE_MAX);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return rcv_fail("ensemble subsets: label %d of sample %d, expected 0..%d", labels[i], i, k - 1);
    int ns = (1 << n_models) - 1;
    rcv_ens_subset *s = rcv_xcalloc((size_t)ns, sizeof *s);
    float *owned_avg, *owned_p = NULL;
    const float **rows = space_rows(logits, n_models, n, k, space, &owned_avg);
    const float **probs = NULL;
    if (tie == RCV_VOTE_TIE_PROB)
        probs = space == RCV_ENS_PROBS ? rows : space_rows(logits, n_models, n, k, RCV_ENS_PROBS, &owned_p);
    int32_t **pred = rcv_xmalloc((size_t)n_models * sizeof *pred);
    for (int m = 0; m < n_models; m++) {
        pred[m] = rcv_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
        rcv_argmax_rows(logits[m], n, k, pred[m]);
    }
    float *avg = rcv_xmalloc((size_t)(n > 0 ? n : 1) * k * sizeof(float));
    int *votes = rcv_xmalloc((size_t)k * sizeof(int));
    int rc = 0;
    for (uint32_t mask = 1; mask <= (uint32_t)ns && rc == 0; mask++) {
        rcv_ens_subset *e = &s[mask - 1];
        e->mask = mask;
        e->size = popcount(mask);
        rc = average_rows(rows, weights, n_models, mask, n, k, avg);
        if (rc) break;
        e->avg_top1 = rcv_metric_topk(avg, labels, n, k, 1);
        e->avg_top5 = rcv_metric_topk(avg, labels, n, k, 5);
        long hit = 0;
        for (int i = 0; i < n; i++)
            hit += vote_one((const int32_t *const *)pred, probs, n_models, mask, i, k, tie, votes) == labels[i];
        e->vote_top1 = n > 0 ? (double)hit / n : 0;
    }
    free(votes);
    free(avg);
    for (int m = 0; m < n_models; m++) free(pred[m]);
    free(pred);
    if (probs && probs != rows) free(probs);
    free(owned_p);
    free(owned_avg);
    free(rows);
    if (rc) {
        free(s);
        return -1;
    }
    qsort(s, (size_t)ns, sizeof *s, cmp_subset);
    *out = s;
    *n_out = ns;
    return 0;
}

void rcv_ensemble_members_str(uint32_t mask, int n_models, char *buf, int len) {
    int o = 0;
    buf[0] = 0;
    for (int m = 0; m < n_models && o < len; m++)
        if (mask >> m & 1) o += snprintf(buf + o, (size_t)(len - o), "%s(%d)", o ? ", " : "", m + 1);
}

void rcv_ensemble_json(rcv_json_writer *w, const char *const *set_names, rcv_ens_subset *const *subsets, int n_sets,
                       int n_subsets, int n_models, rcv_ens_space space, rcv_vote_tie tie) {
    rcv_json_begin_object(w);
    rcv_json_key(w, "space");
    rcv_json_string(w, space == RCV_ENS_PROBS ? "probs" : "logits");
    rcv_json_key(w, "vote_ties");
    rcv_json_string(w, tie == RCV_VOTE_TIE_PROB ? "prob" : "lowest");
    rcv_json_key(w, "sets");
    rcv_json_begin_array(w);
    for (int s = 0; s < n_sets; s++) rcv_json_string(w, set_names[s]);
    rcv_json_end_array(w);
    rcv_json_key(w, "rows");
    rcv_json_begin_array(w);
    for (int r = 0; r < n_subsets; r++) {
        rcv_json_begin_object(w);
        rcv_json_key(w, "members");
        rcv_json_begin_array(w);
        for (int m = 0; m < n_models; m++)
            if (subsets[0][r].mask >> m & 1) rcv_json_int(w, m);
        rcv_json_end_array(w);
        const char *kinds[2] = {"average", "vote"};
        for (int k = 0; k < 2; k++) {
            rcv_json_key(w, kinds[k]);
            rcv_json_begin_object(w);
            for (int s = 0; s < n_sets; s++) {
                rcv_json_key(w, set_names[s]);
                rcv_json_begin_object(w);
                rcv_json_key(w, "top1");
                rcv_json_number(w, k == 0 ? subsets[s][r].avg_top1 : subsets[s][r].vote_top1);
                if (k == 0) {
                    rcv_json_key(w, "top5");
                    rcv_json_number(w, subsets[s][r].avg_top5);
                }
                rcv_json_end_object(w);
            }
            rcv_json_end_object(w);
        }
        rcv_json_end_object(w);
    }
    rcv_json_end_array(w);
    rcv_json_end_object(w);
}
