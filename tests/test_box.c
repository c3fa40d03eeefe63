// The multi-task box head's metric and plumbing: rcv_box_iou against torchvision.ops.box_iou
// (tests/oracle/box_ref.py) and by hand; rcv_boxes_normalize by hand; rcv_evaluate's mean IoU,
// IoU >= 0.5 fraction and smooth-L1 for a model whose box output is a known constant, against
// torchvision/torch on the same boxes; rcv_model_set_box_lambda against loss = cls + lambda box.
// End-to-end training with boxes: tests/test_box_train.sh.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/metrics.h"
#include "robustcv/train.h"
#include "testutil.h"

// By hand: unit squares offset by half (1/3), contained (1/4), disjoint, touching, empty, reversed.
static void test_iou_hand(void) {
    const float a[4] = {0, 0, 1, 1}, b[4] = {0.5f, 0, 1.5f, 1}, c[4] = {0.25f, 0.25f, 0.75f, 0.75f};
    const float d[4] = {2, 2, 3, 3}, e[4] = {1, 0, 2, 1}, z[4] = {0.5f, 0.5f, 0.5f, 0.5f}, r[4] = {1, 1, 0, 0};
    const float r2[4] = {0.8f, 0, 0.2f, 1}; // x reversed, overlapping a's x range: still empty
    CHECK(fabs(rcv_box_iou(a, b) - 1.0 / 3) < 1e-12, "half overlap %g", rcv_box_iou(a, b));
    CHECK(fabs(rcv_box_iou(a, c) - 0.25) < 1e-12 && rcv_box_iou(c, a) == rcv_box_iou(a, c), "contained");
    CHECK(rcv_box_iou(a, a) == 1.0, "self");
    CHECK(rcv_box_iou(a, d) == 0 && rcv_box_iou(a, e) == 0, "disjoint and touching");
    CHECK(rcv_box_iou(z, z) == 0 && rcv_box_iou(a, r) == 0 && rcv_box_iou(a, r2) == 0 && rcv_box_iou(r2, a) == 0,
          "empty and reversed boxes: %g %g", rcv_box_iou(a, r2), rcv_box_iou(r2, a));
}

// torchvision.ops.box_iou on 40 random pairs and the edge cases listed in box_ref.py.
static void test_iou_oracle(const char *dir) {
    char p[600];
    snprintf(p, sizeof p, "%s/iou.txt", dir);
    FILE *f = fopen(p, "r");
    CHECK(f != NULL, "cannot open %s", p);
    if (!f) return;
    int n = 0, nan_cases = 0;
    double worst = 0;
    float a[4], b[4];
    char want[64];
    while (fscanf(f, "%f %f %f %f %f %f %f %f %63s", &a[0], &a[1], &a[2], &a[3], &b[0], &b[1], &b[2], &b[3], want) == 9) {
        double got = rcv_box_iou(a, b);
        if (!strcmp(want, "nan")) { // torchvision's 0/0 for two empty boxes; ours is 0
            CHECK(got == 0, "two empty boxes: %g, expected 0", got);
            nan_cases++;
        } else {
            double err = fabs(got - strtod(want, NULL));
            worst = err > worst ? err : worst;
            CHECK(err < 1e-12, "pair %d: IoU %.17g, torchvision %s", n, got, want);
            CHECK(fabs(rcv_box_iou(b, a) - got) < 1e-15, "pair %d: not symmetric", n);
        }
        n++;
    }
    fclose(f);
    CHECK(n == 51 && nan_cases == 1, "read %d pairs (%d nan), expected 51 (1)", n, nan_cases);
    printf("box IoU vs torchvision.ops.box_iou: %d pairs, max abs error %.3g\n", n, worst);
}

static void test_normalize(void) {
    // 24 x 16 image: x / 24, y / 16, clamped; in place.
    float b[8] = {-3, 4, 30, 16, 6, 2, 18, NAN};
    rcv_boxes_normalize(b, 2, 24, 16, b);
    const float want[8] = {0, 0.25f, 1, 1, 0.25f, 0.125f, 0.75f, 0};
    CHECK(!memcmp(b, want, sizeof want), "normalised %g %g %g %g %g %g %g %g", b[0], b[1], b[2], b[3], b[4], b[5],
          b[6], b[7]);
}

// A smallcnn+box whose box output is the constant c (box.weight 0, box.bias logit(c)), evaluated
// in batches of 4 on 7 images (the last batch padded) with the oracle's boxes.
static void test_evaluate(const char *dir) {
    char p[600];
    snprintf(p, sizeof p, "%s/eval.txt", dir);
    FILE *f = fopen(p, "r");
    CHECK(f != NULL, "cannot open %s", p);
    if (!f) return;
    int w = 0, h = 0, n = 0;
    float c[4], px[4 * 16];
    double want_iou = -1, want_50 = -1, want_sl1 = -1;
    int ok = fscanf(f, "%d %d %d %f %f %f %f", &w, &h, &n, &c[0], &c[1], &c[2], &c[3]) == 7 && n > 0 && n <= 16;
    for (int i = 0; ok && i < 4 * n; i++) ok = fscanf(f, "%f", &px[i]) == 1;
    ok = ok && fscanf(f, "%lf %lf %lf", &want_iou, &want_50, &want_sl1) == 3;
    fclose(f);
    CHECK(ok, "%s: unexpected format", p);
    if (!ok) return;

    rcv_model m;
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_h = h;
    cfg.in_w = w;
    cfg.n_classes = 3;
    cfg.seed = 5;
    CHECK(rcv_model_build(&m, "smallcnn+box", &cfg) == 0, "smallcnn+box: %s", rcv_error());
    if (!m.g) return;
    int wi = rcv_graph_find_param(m.g, "box.weight"), bi = rcv_graph_find_param(m.g, "box.bias");
    CHECK(wi >= 0 && bi >= 0, "box.weight / box.bias not found");
    if (wi < 0 || bi < 0) {
        rcv_model_free(&m);
        return;
    }
    memset(rcv_param_data(m.g, wi), 0, m.g->param_info[wi].numel * sizeof(float));
    for (int j = 0; j < 4; j++) rcv_param_data(m.g, bi)[j] = logf(c[j] / (1 - c[j]));

    size_t per = (size_t)3 * h * w;
    uint8_t *pix = malloc((size_t)n * per);
    int32_t lab[16];
    for (size_t i = 0; i < (size_t)n * per; i++) pix[i] = (uint8_t)((i * 2654435761u) >> 24);
    for (int i = 0; i < n; i++) lab[i] = i % 3;
    rcv_dataset d = {.n = n, .c = 3, .h = h, .w = w, .pixels = pix, .labels = lab, .n_classes = 3,
                     .source = "test", .boxes = px};
    rcv_eval_result r, r0;
    CHECK(rcv_evaluate(&m, &d, 4, RCV_BACKEND_CPU, &r) == 0, "evaluate: %s", rcv_error());
    CHECK(r.box_n == n, "box_n %d, expected %d", r.box_n, n);
    CHECK(fabs(r.box_iou - want_iou) < 1e-6, "mean IoU %.9f, torchvision %.9f", r.box_iou, want_iou);
    CHECK(fabs(r.box_iou50 - want_50) < 1e-12, "IoU >= 0.5 fraction %g, expected %g", r.box_iou50, want_50);
    CHECK(fabs(r.box_loss - want_sl1) < 1e-6, "smooth-L1 %.9f, torch %.9f", r.box_loss, want_sl1);
    printf("rcv_evaluate on a constant box: mean IoU %.6f (torchvision %.6f), >= 0.5 %.4f, smooth-L1 %.6f (torch %.6f)\n",
           r.box_iou, want_iou, r.box_iou50, r.box_loss, want_sl1);
    // Without boxes in the data: classification only, the same numbers.
    d.boxes = NULL;
    CHECK(rcv_evaluate(&m, &d, 4, RCV_BACKEND_CPU, &r0) == 0, "evaluate without boxes: %s", rcv_error());
    CHECK(r0.box_n == 0 && r0.box_iou == 0 && r0.top1 == r.top1 && r0.loss == r.loss,
          "no boxes: box_n %d, top-1 %g vs %g", r0.box_n, r0.top1, r.top1);
    rcv_eval_result_free(&r);
    rcv_eval_result_free(&r0);
    free(pix);
    rcv_model_free(&m);
}

// loss = loss_cls + lambda * loss_box after rcv_model_set_box_lambda, without a re-plan.
static void test_lambda(void) {
    rcv_model m, plain;
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_h = cfg.in_w = 8;
    cfg.n_classes = 4;
    cfg.box_lambda = 0.5f;
    CHECK(rcv_model_build(&m, "smallcnn+box", &cfg) == 0, "smallcnn+box: %s", rcv_error());
    if (!m.g) return;
    CHECK(rcv_graph_plan(m.g, 2, RCV_BACKEND_CPU) == 0, "plan: %s", rcv_error());
    fill_uniform(m.g->nodes[m.input].out, 2 * 3 * 8 * 8, 11, 0, 1);
    fill_uniform(m.g->nodes[m.boxes].out, 8, 12, 0, 1);
    m.g->nodes[m.labels].idata[0] = 1, m.g->nodes[m.labels].idata[1] = 3;
    const float lambdas[3] = {0.5f, 4.0f, 0.0f};
    for (int k = 0; k < 3; k++) {
        if (k) CHECK(rcv_model_set_box_lambda(&m, lambdas[k]) == 0, "set lambda %g: %s", lambdas[k], rcv_error());
        rcv_graph_forward(m.g);
        float lc = m.g->nodes[m.loss_cls].out[0], lb = m.g->nodes[m.loss_box].out[0], l = m.g->nodes[m.loss].out[0];
        CHECK(lb > 0 && fabsf(l - (lc + lambdas[k] * lb)) <= 1e-6f * fabsf(l), "lambda %g: loss %g, cls %g + box %g",
              lambdas[k], l, lc, lb);
    }
    CHECK(rcv_model_set_box_lambda(&m, -1) == -1 && strstr(rcv_error(), "lambda"), "negative lambda: %s", rcv_error());
    CHECK(rcv_model_set_box_lambda(&m, NAN) == -1, "NaN lambda accepted");
    cfg.no_init = 1;
    CHECK(rcv_model_build(&plain, "smallcnn", &cfg) == 0, "smallcnn: %s", rcv_error());
    CHECK(rcv_model_set_box_lambda(&plain, 2) == -1 && strstr(rcv_error(), "no box head"), "plain model: %s",
          rcv_error());
    rcv_model_free(&plain);
    rcv_model_free(&m);
}

int main(void) {
    test_iou_hand();
    test_normalize();
    test_lambda();
    const char *dir = test_tmpdir("box");
    if (test_sh("/usr/bin/python3 tests/oracle/box_ref.py %s > /dev/null", dir) == 0) {
        test_iou_oracle(dir);
        test_evaluate(dir);
    } else {
        printf("skipping the torchvision checks: /usr/bin/python3 with torch and torchvision is needed for "
               "tests/oracle/box_ref.py\n");
    }
    return test_done();
}
