// What the attacks spend their time on: the input gradient (forward + backward to x, eval mode)
// of a model through rcv_classifier_grad, and a whole APGD-CE run. bench/bench_attack_grad.sh
// runs this and PyTorch's peer (bench/peer_attack_grad.py: torch.autograd.grad(loss, x);
// torchattacks.APGD) on the same shapes and thread count, and prints the ratio.
//
// usage: bench_attack_grad grad MODEL BATCH STEPS        -> ms per input-gradient call (batch images)
//        bench_attack_grad apgd MODEL BATCH N [ITERS]   -> s for APGD-CE (linf, eps 0.1) on N images
// The model is 1x28x28, 10 classes, freshly initialised; x ~ U[0, 1]; the labels are the model's
// own predictions, so every image is attacked (the peer does the same). RCV_PROFILE=1 prints the
// per-node time of the gradient calls on stderr.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robustcv/attack.h"
#include "robustcv/error.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double ce(void *ctx, int i, const float *z, int k, float *dz) {
    return rcv_loss_ce(z, k, ((const int32_t *)ctx)[i], dz);
}

int main(int argc, char **argv) {
    if (argc < 5 || (strcmp(argv[1], "grad") && strcmp(argv[1], "apgd"))) {
        fprintf(stderr, "usage: %s grad MODEL BATCH STEPS | apgd MODEL BATCH N [ITERS]\n", argv[0]);
        return 2;
    }
    int apgd = !strcmp(argv[1], "apgd"), batch = atoi(argv[3]), count = atoi(argv[4]);
    int iters = argc > 5 ? atoi(argv[5]) : 100;
    if (batch <= 0 || count <= 0 || iters <= 0) {
        fprintf(stderr, "bench_attack_grad: batch %d, steps/N %d, iters %d: expected positive integers\n", batch,
                count, iters);
        return 2;
    }
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = 1, cfg.in_h = 28, cfg.in_w = 28, cfg.n_classes = 10;
    rcv_model m;
    if (rcv_model_build(&m, argv[2], &cfg) || rcv_attack_prepare(&m, batch, RCV_BACKEND_CPU)) {
        fprintf(stderr, "bench_attack_grad: %s\n", rcv_error());
        return 1;
    }
    int n = apgd ? count : batch;
    size_t per = 28 * 28;
    float *x = malloc((size_t)n * per * sizeof(float)), *grad = malloc((size_t)n * per * sizeof(float));
    float *x_adv = malloc((size_t)n * per * sizeof(float)), *loss = malloc((size_t)n * sizeof(float));
    int32_t *y = malloc((size_t)n * sizeof(int32_t));
    rcv_rng r;
    rcv_rng_init(&r, 1);
    rcv_rng_fill_uniform(&r, x, (size_t)n * per, 0, 1);
    rcv_attack_predict(&m, x, n, y);
    rcv_model *ms[1] = {&m};
    rcv_classifier f = {.models = ms, .n_models = 1};
    if (rcv_classifier_check(&f)) {
        fprintf(stderr, "bench_attack_grad: %s\n", rcv_error());
        return 1;
    }
    if (!apgd) {
        for (int s = 0; s < 3; s++) rcv_classifier_grad(&f, x, n, ce, y, NULL, loss, grad); // warm up oneDNN
        double best = 1e30, t_all = now();
        for (int s = 0; s < count; s++) {
            double t0 = now();
            rcv_classifier_grad(&f, x, n, ce, y, NULL, loss, grad);
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        double mean = (now() - t_all) / count;
        printf("%.3f\n", 1e3 * mean);
        fprintf(stderr, "best_ms %.3f\n", 1e3 * best);
        if (getenv("RCV_PROFILE")) {
            rcv_graph_profile(m.g, 1);
            for (int s = 0; s < count; s++) rcv_classifier_grad(&f, x, n, ce, y, NULL, loss, grad);
            rcv_graph_profile_print(m.g, stderr, 12);
        }
    } else {
        rcv_apgd_cfg c;
        rcv_apgd_defaults(&c, RCV_NORM_LINF, RCV_APGD_CE);
        c.eps = 0.1f;
        c.n_iter = iters;
        rcv_classifier_grad(&f, x, batch < n ? batch : n, ce, y, NULL, loss, grad); // warm up oneDNN
        double t0 = now();
        if (rcv_attack_apgd(&f, x, y, n, &c, &r, x_adv, NULL)) {
            fprintf(stderr, "bench_attack_grad: %s\n", rcv_error());
            return 1;
        }
        printf("%.3f\n", now() - t0);
    }
    free(x);
    free(grad);
    free(x_adv);
    free(loss);
    free(y);
    rcv_model_free(&m);
    return 0;
}
