// Metrics and ensembles on fixed inputs, against answers computed by hand (in the comments).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/ensemble.h"
#include "robustcv/error.h"
#include "robustcv/metrics.h"
#include "testutil.h"

static void test_topk_nll(void) {
    // Row 0: label 2 ties with class 1 (score 3): class 1 ranks first (lower index) -> rank 1.
    // Row 1: label 1 ties with class 2: label ranks first -> rank 0.
    // Row 2: label 3 is the lowest of 4 -> rank 3.
    float z[3 * 4] = {1, 3, 3, 0, /**/ 1, 3, 3, 0, /**/ 5, 4, 2, 1};
    int32_t y[3] = {2, 1, 3};
    CHECK(fabs(rcv_metric_topk(z, y, 3, 4, 1) - 1.0 / 3) < 1e-12, "top-1 %g", rcv_metric_topk(z, y, 3, 4, 1));
    CHECK(fabs(rcv_metric_topk(z, y, 3, 4, 2) - 2.0 / 3) < 1e-12, "top-2");
    CHECK(fabs(rcv_metric_topk(z, y, 3, 4, 3) - 2.0 / 3) < 1e-12, "top-3");
    CHECK(fabs(rcv_metric_topk(z, y, 3, 4, 5) - 1.0) < 1e-12, "top-5 of 4 classes counts all");
    int32_t pred[3];
    rcv_argmax_rows(z, 3, 4, pred);
    CHECK(pred[0] == 1 && pred[1] == 1 && pred[2] == 0, "argmax takes the lowest index on ties: %d %d %d", pred[0],
          pred[1], pred[2]);

    // softmax([0, ln 3]) = [1/4, 3/4]: NLL of label 1 is ln(4/3), of label 0 ln 4.
    float l[4] = {0, logf(3), 0, logf(3)};
    int32_t yl[2] = {1, 0};
    double want = (log(4.0 / 3) + log(4.0)) / 2;
    CHECK(fabs(rcv_metric_nll_logits(l, yl, 2, 2) - want) < 1e-7, "NLL %.9f want %.9f", rcv_metric_nll_logits(l, yl, 2, 2),
          want);
    float p[4];
    rcv_softmax_rows(l, 2, 2, p);
    CHECK(fabs(p[0] - 0.25f) < 1e-7 && fabs(p[1] - 0.75f) < 1e-7, "softmax %g %g", p[0], p[1]);
    CHECK(fabs(rcv_metric_nll_probs(p, yl, 2, 2) - want) < 1e-6, "NLL from probabilities");
    float zero[2] = {0, 1};
    int32_t y0 = 0;
    CHECK(fabs(rcv_metric_nll_probs(zero, &y0, 1, 2) - (-log(1e-12))) < 1e-9, "p_y = 0 clamps at 1e-12");
    // Large logits stay finite (log-sum-exp).
    float big[2] = {1000, -1000};
    int32_t y1 = 1;
    CHECK(fabs(rcv_metric_nll_logits(big, &y1, 1, 2) - 2000) < 1e-6, "NLL of a huge margin");
}

static void test_ece(void) {
    // 15 bins of width 1/15; bin b = (b/15, (b+1)/15].
    //   [0.9, 0.1]  y 0: conf 0.9  (bin 13), correct
    //   [0.1, 0.9]  y 0: conf 0.9  (bin 13), wrong
    //   [0.7, 0.3]  y 0: conf 0.7  (bin 10), correct
    //   [0.25,0.75] y 0: conf 0.75 (bin 11), wrong
    // ECE = 2/4 |0.5 - 0.9| + 1/4 |1 - 0.7| + 1/4 |0 - 0.75| = 0.2 + 0.075 + 0.1875 = 0.4625
    float p[8] = {0.9f, 0.1f, 0.1f, 0.9f, 0.7f, 0.3f, 0.25f, 0.75f};
    int32_t y[4] = {0, 0, 0, 0};
    int64_t cnt[15];
    double acc[15], conf[15];
    double e = rcv_metric_ece(p, y, 4, 2, 15, cnt, acc, conf);
    CHECK(fabs(e - 0.4625) < 1e-6, "ECE %.9f want 0.4625", e);
    CHECK(cnt[13] == 2 && cnt[10] == 1 && cnt[11] == 1 && cnt[0] == 0, "bin counts %lld %lld %lld", (long long)cnt[13],
          (long long)cnt[10], (long long)cnt[11]);
    CHECK(fabs(acc[13] - 0.5) < 1e-12 && fabs(conf[13] - 0.9) < 1e-6, "bin 13: acc %g conf %g", acc[13], conf[13]);
    // Bin edges belong to the lower bin (Guo et al.'s ((m-1)/M, m/M]): 4 bins, conf 0.5 -> bin 1,
    // conf 1.0 -> bin 3, conf 0.25 -> bin 0. All correct: ECE = (0.5*1 + 0.25*0 ... ) computed:
    //   |1 - 0.5|/3 + |1 - 1|/3 + |1 - 0.25|/3 = 0.5/3 + 0.75/3 = 0.41666...
    float q[3 * 4] = {0.5f, 0.25f, 0.25f, 0, /**/ 1, 0, 0, 0, /**/ 0.25f, 0.25f, 0.25f, 0.25f};
    int32_t yq[3] = {0, 0, 0};
    int64_t c4[4];
    e = rcv_metric_ece(q, yq, 3, 4, 4, c4, NULL, NULL);
    CHECK(c4[0] == 1 && c4[1] == 1 && c4[2] == 0 && c4[3] == 1, "edges: %lld %lld %lld %lld", (long long)c4[0],
          (long long)c4[1], (long long)c4[2], (long long)c4[3]);
    CHECK(fabs(e - 1.25 / 3) < 1e-9, "ECE at bin edges %.9f want %.9f", e, 1.25 / 3);
}

static void test_corruption(void) {
    // err = [[0.2, 0.4], [0.5, 0.5]], base = [[0.4, 0.6], [0.5, 1.0]], clean 0.1, base clean 0.2:
    //   CE_0 = 0.6 / 1.0 = 0.6, CE_1 = 1.0 / 1.5 = 2/3, mCE = 0.63333
    //   rel_0 = (0.1 + 0.3) / (0.2 + 0.4) = 2/3, rel_1 = (0.4 + 0.4) / (0.3 + 0.8) = 8/11, rel mCE = 0.69697
    double err[4] = {0.2, 0.4, 0.5, 0.5}, base[4] = {0.4, 0.6, 0.5, 1.0}, ce[2], rel[2], mce, rmce;
    int rc = rcv_metric_corruption(err, base, 2, 2, 0.1, 0.2, ce, rel, &mce, &rmce);
    CHECK(rc == 0, "%s", rcv_error());
    CHECK(fabs(ce[0] - 0.6) < 1e-12 && fabs(ce[1] - 2.0 / 3) < 1e-12, "CE %g %g", ce[0], ce[1]);
    CHECK(fabs(mce - (0.6 + 2.0 / 3) / 2) < 1e-12, "mCE %g", mce);
    CHECK(fabs(rel[0] - 2.0 / 3) < 1e-12 && fabs(rel[1] - 8.0 / 11) < 1e-12, "relative CE %g %g", rel[0], rel[1]);
    CHECK(fabs(rmce - (2.0 / 3 + 8.0 / 11) / 2) < 1e-12, "relative mCE %g", rmce);
    double zero[4] = {0, 0, 0.5, 0.5};
    CHECK(rcv_metric_corruption(err, zero, 2, 2, 0.1, 0.0, ce, rel, &mce, &rmce) == -1 &&
              strstr(rcv_error(), "corruption 0"),
          "baseline without errors: %s", rcv_error());
    // Baseline does not degrade on corruption 1 (errors equal its clean error): relative CE NaN.
    double flat[4] = {0.4, 0.6, 0.2, 0.2};
    CHECK(rcv_metric_corruption(err, flat, 2, 2, 0.1, 0.2, ce, rel, &mce, &rmce) == 0 && isnan(rel[1]) &&
              isnan(rmce) && fabs(ce[1] - 2.5) < 1e-12,
          "flat baseline: rel %g, CE %g", rel[1], ce[1]);
    CHECK(rcv_metric_corruption(err, base, 0, 2, 0, 0, NULL, NULL, NULL, NULL) == -1, "no corruptions");
}

// Three models, 3 classes, 4 samples (labels 0 1 2 0); each model puts logit c on its pick:
//   A: s0->0 (4), s1->1 (1), s2->0 (1), s3->1 (3)
//   B: s0->1 (1), s1->1 (2), s2->2 (2), s3->2 (1)
//   C: s0->2 (1), s1->0 (4), s2->2 (1), s3->0 (1)
static const float A[12] = {4, 0, 0, 0, 1, 0, 1, 0, 0, 0, 3, 0};
static const float B[12] = {0, 1, 0, 0, 2, 0, 0, 0, 2, 0, 0, 1};
static const float C[12] = {0, 0, 1, 4, 0, 0, 0, 0, 1, 1, 0, 0};
static const int32_t Y[4] = {0, 1, 2, 0};

static void test_subsets(void) {
    const float *z[3] = {A, B, C};
    rcv_ens_subset *s;
    int ns;
    int rc = rcv_ensemble_subsets(z, NULL, Y, 3, 4, 3, RCV_ENS_LOGITS, RCV_VOTE_TIE_LOWEST, &s, &ns);
    CHECK(rc == 0 && ns == 7, "subsets: %d %s", ns, rc ? rcv_error() : "");
    if (rc) return;
    // Hand-computed (sums of logits, then argmax; votes with ties to the lowest class):
    //   {A,B}:   avg s0 [4,1,0]✓ s1 [0,3,0]✓ s2 [1,0,2]✓ s3 [0,3,1]✗ = 0.75; vote 0✓ 1✓ 0✗ 1✗ = 0.5
    //   {A,C}:   avg [4,0,1]✓ [4,1,0]✗ [1,0,1]->0✗ [1,3,0]✗ = 0.25;      vote 0✓ 0✗ 0✗ 0✓ = 0.5
    //   {B,C}:   avg [0,1,1]->1✗ [4,2,0]✗ [0,0,3]✓ [1,0,1]->0✓ = 0.5;    vote 1✗ 0✗ 2✓ 0✓ = 0.5
    //   {A,B,C}: avg [4,1,1]✓ [4,3,0]✗ [1,0,3]✓ [1,3,1]✗ = 0.5;         vote 0✓ 1✓ 2✓ 0✓ = 1.0
    struct { uint32_t mask; double avg, vote; } want[7] = {
        {1, 0.5, 0.5}, {2, 0.5, 0.5}, {4, 0.5, 0.5}, {7, 0.5, 1.0}, {3, 0.75, 0.5}, {5, 0.25, 0.5}, {6, 0.5, 0.5},
    };
    for (int i = 0; i < 7; i++) {
        char who[64];
        rcv_ensemble_members_str(s[i].mask, 3, who, sizeof who);
        CHECK(s[i].mask == want[i].mask && fabs(s[i].avg_top1 - want[i].avg) < 1e-12 &&
                  fabs(s[i].vote_top1 - want[i].vote) < 1e-12 && s[i].avg_top5 == 1.0,
              "row %d %s: mask %u avg %g vote %g (want mask %u avg %g vote %g)", i, who, s[i].mask, s[i].avg_top1,
              s[i].vote_top1, want[i].mask, want[i].avg, want[i].vote);
    }
    char who[64];
    rcv_ensemble_members_str(5, 3, who, sizeof who);
    CHECK(!strcmp(who, "(1), (3)"), "members string '%s'", who);
    free(s);

    // Probability-weighted tie rule, {A,B}: s2 tie 0 vs 2: p_A = softmax[1,0,0] = [.576,.212,.212],
    // p_B = softmax[0,0,2] = [.107,.107,.787]: class 2 sums 0.999 > 0.683 -> 2 ✓.
    // s3 tie 1 vs 2: class 1 sums .909 + .212 = 1.121 > class 2's .045 + .576 -> 1 ✗. s0 tie 0 vs 1:
    // class 0 .965 + .212 > class 1 .018 + .576 -> 0 ✓. Vote top-1 = 0.75.
    rc = rcv_ensemble_subsets(z, NULL, Y, 3, 4, 3, RCV_ENS_LOGITS, RCV_VOTE_TIE_PROB, &s, &ns);
    CHECK(rc == 0 && s[4].mask == 3 && fabs(s[4].vote_top1 - 0.75) < 1e-12, "prob tie rule {A,B}: %g", s[4].vote_top1);
    // {A,B,C}: s0 one vote each, summed probabilities class 0 = .965+.212+.212 the largest -> 0 ✓;
    // s3 one vote each (A 1, B 2, C 0): class 1 = .909+.212+.212 = 1.333 beats .833 and .833 -> 1 ✗;
    // s1, s2 have majorities (1 ✓, 2 ✓). Vote top-1 = 0.75 (1.0 with ties to the lowest index).
    CHECK(rc == 0 && s[3].mask == 7 && fabs(s[3].vote_top1 - 0.75) < 1e-12, "prob tie rule {A,B,C}: %g",
          s[3].vote_top1);
    free(s);
    // Weights (2, 1, 1) on logits of {A,B,C} for s0: (2*[4,0,0] + [0,1,0] + [0,0,1]) / 4 = [2, .25, .25].
    float w[3] = {2, 1, 1}, out[12];
    rc = rcv_ensemble_average(z, w, 3, 7, 4, 3, RCV_ENS_LOGITS, out);
    CHECK(rc == 0 && out[0] == 2.0f && out[1] == 0.25f && out[2] == 0.25f, "weighted average %g %g %g", out[0],
          out[1], out[2]);
    float w1[3] = {1, 0, 0};
    rc = rcv_ensemble_average(z, w1, 3, 7, 4, 3, RCV_ENS_LOGITS, out);
    CHECK(rc == 0 && !memcmp(out, A, sizeof A), "weights (1,0,0) give model A");
    float wn[3] = {1, -1, 1};
    CHECK(rcv_ensemble_average(z, wn, 3, 7, 4, 3, RCV_ENS_LOGITS, out) == -1 && strstr(rcv_error(), "model 2"),
          "negative weight: %s", rcv_error());
    CHECK(rcv_ensemble_average(z, NULL, 3, 0, 4, 3, RCV_ENS_LOGITS, out) == -1 && strstr(rcv_error(), "empty"),
          "empty mask: %s", rcv_error());
}

static void test_spaces_and_vote(void) {
    // Logit averaging and probability averaging disagree: A [10,0,0], B = C = [0,3,0]:
    //   mean logits [3.33, 2, 0] -> class 0; softmax(B) = [.0452, .9094, .0452], mean probabilities
    //   class 0 (.99991 + 2 * .0452) / 3 = .3634 < class 1 (.0000454 + 2 * .9094) / 3 = .6063 -> class 1.
    float a[3] = {10, 0, 0}, b[3] = {0, 3, 0};
    const float *z[3] = {a, b, b};
    float out[3];
    rcv_ensemble_average(z, NULL, 3, 7, 1, 3, RCV_ENS_LOGITS, out);
    CHECK(fabsf(out[0] - 10.0f / 3) < 1e-6 && fabsf(out[1] - 2) < 1e-6, "logit mean %g %g", out[0], out[1]);
    rcv_ensemble_average(z, NULL, 3, 7, 1, 3, RCV_ENS_PROBS, out);
    double pb0 = 1 / (2 + exp(3.0)), pb1 = exp(3.0) / (2 + exp(3.0)), pa0 = exp(10.0) / (exp(10.0) + 2);
    CHECK(fabs(out[0] - (pa0 + 2 * pb0) / 3) < 1e-6 && fabs(out[1] - ((1 - pa0) / 2 + 2 * pb1) / 3) < 1e-6,
          "probability mean %g %g", out[0], out[1]);
    // Votes: A -> 0, B -> 1 (tie 1:1). Lowest index -> 0; with A [1,0,0] (p0 .576) and B [0,5,0]
    // (p1 .987): class 1 sums .987 + .212 = 1.199 > class 0 .576 + .0067 -> 1.
    float a2[3] = {1, 0, 0}, b2[3] = {0, 5, 0};
    const float *z2[2] = {a2, b2};
    int32_t pred;
    rcv_ensemble_vote(z2, 2, 3, 1, 3, RCV_VOTE_TIE_LOWEST, &pred);
    CHECK(pred == 0, "tie to lowest: %d", pred);
    rcv_ensemble_vote(z2, 2, 3, 1, 3, RCV_VOTE_TIE_PROB, &pred);
    CHECK(pred == 1, "tie to the larger summed probability: %d", pred);
    // A clear majority ignores confidence: two weak votes for 2 beat one confident vote for 0.
    float c1[3] = {0, 0, 0.1f}, c0[3] = {50, 0, 0};
    const float *z3[3] = {c0, c1, c1};
    rcv_ensemble_vote(z3, 3, 7, 1, 3, RCV_VOTE_TIE_PROB, &pred);
    CHECK(pred == 2, "majority: %d", pred);
    // Equal summed probabilities fall back to the lowest index: [0,1,0] and [1,0,0] mirror each other.
    float m1[3] = {0, 1, 0}, m0[3] = {1, 0, 0};
    const float *z4[2] = {m1, m0};
    rcv_ensemble_vote(z4, 2, 3, 1, 3, RCV_VOTE_TIE_PROB, &pred);
    CHECK(pred == 0, "equal sums to the lowest index: %d", pred);
    int32_t bad[1] = {5};
    rcv_ens_subset *s;
    int ns;
    CHECK(rcv_ensemble_subsets(z2, NULL, bad, 2, 1, 3, RCV_ENS_LOGITS, RCV_VOTE_TIE_LOWEST, &s, &ns) == -1 &&
              strstr(rcv_error(), "label 5"),
          "bad label: %s", rcv_error());
}

int main(void) {
    test_topk_nll();
    test_ece();
    test_corruption();
    test_subsets();
    test_spaces_and_vote();
    return test_done();
}
