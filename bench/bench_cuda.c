// Training-step throughput on the GPU: forward + backward + SGD momentum step on random
// data already on the device, images/s (mean over STEPS after 3 warm-up steps; the clock
// stops after a device sync). bench/bench_cuda.sh runs it next to PyTorch's peer.
//
// usage: bench_cuda MODEL C H W CLASSES BATCH [STEPS] [PRECISION] [small] [pgd=K]
// pgd=K: the adversarial training step of `train --recipe pgd` instead (rcv_recipe_step: PGD-K
// L-inf in eval mode, eps 0.1, alpha eps/4, random start, iterating on the GPU; then the training
// forward + backward + SGD step on the adversarial batch), as bench/peer_cuda.py's torchattacks loop.
// Prints "SKIP: no CUDA device (<reason>)" and exits 0 where there is no GPU.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robustcv/error.h"
#include "robustcv/models.h"
#include "robustcv/optim.h"
#include "robustcv/recipe.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s MODEL C H W CLASSES BATCH [STEPS] [fp32|tf32|bf16|fp16] [small] [pgd=K]\n", argv[0]);
        return 2;
    }
    if (rcv_backend_check(RCV_BACKEND_CUDA)) {
        printf("SKIP: no CUDA device (%s)\n", rcv_error());
        return 0;
    }
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = atoi(argv[2]);
    cfg.in_h = atoi(argv[3]);
    cfg.in_w = atoi(argv[4]);
    cfg.n_classes = atoi(argv[5]);
    int batch = atoi(argv[6]), steps = argc > 7 ? atoi(argv[7]) : 20;
    rcv_precision prec = RCV_PREC_FP32;
    if (argc > 8 && rcv_precision_parse(argv[8], &prec)) {
        fprintf(stderr, "bench_cuda: %s\n", rcv_error());
        return 2;
    }
    int pgd = 0;
    for (int a = 9; a < argc; a++) {
        if (!strcmp(argv[a], "small")) cfg.small_input = 1;
        else if (!strncmp(argv[a], "pgd=", 4)) pgd = atoi(argv[a] + 4);
    }
    rcv_model m;
    if (rcv_model_build(&m, argv[1], &cfg)) {
        fprintf(stderr, "bench_cuda: %s\n", rcv_error());
        return 1;
    }
    rcv_graph *g = m.g;
    g->precision = prec;
    rcv_recipe rec = {0};
    rcv_recipe_cfg rc;
    rcv_recipe_defaults(&rc);
    rc.kind = RCV_RECIPE_PGD, rc.pgd_steps = pgd;
    if (pgd > 0 && rcv_recipe_init(&rec, &rc, &m)) { // marks the input for gradients before the plan
        fprintf(stderr, "bench_cuda: %s\n", rcv_error());
        return 1;
    }
    if (rcv_graph_plan(g, batch, RCV_BACKEND_CUDA)) {
        fprintf(stderr, "bench_cuda: %s\n", rcv_error());
        return 1;
    }
    rcv_graph_set_training(g, 1);
    size_t xn = (size_t)batch * cfg.in_c * cfg.in_h * cfg.in_w;
    float *x = rcv_xmalloc(xn * sizeof(float));
    int32_t *lab = rcv_xmalloc((size_t)batch * sizeof(int32_t));
    rcv_rng r;
    rcv_rng_init(&r, 1);
    rcv_rng_fill_uniform(&r, x, xn, 0, 1);
    for (int i = 0; i < batch; i++) lab[i] = (int)rcv_rng_below(&r, (uint32_t)cfg.n_classes);
    rcv_graph_upload(g, g->nodes[m.input].out, x, xn * sizeof(float));
    rcv_graph_upload(g, g->nodes[m.labels].idata, lab, (size_t)batch * sizeof(int32_t));
    rcv_optim_cfg oc = rcv_optim_defaults(RCV_OPT_SGD);
    oc.momentum = 0.9f;
    rcv_optim opt;
    rcv_optim_init(&opt, &oc, g->n_param_floats);
    double t0 = 0;
    for (int s = 0; s < steps + 3; s++) {
        if (s == 3) {
            rcv_graph_sync(g);
            t0 = now();
        }
        if (pgd > 0) {
            rcv_graph_upload(g, g->nodes[m.input].out, x, xn * sizeof(float)); // the loader's batch
            rcv_recipe_step(&rec, &r);
        } else {
            rcv_graph_forward(g);
            rcv_graph_zero_grad(g);
            rcv_graph_backward(g, m.loss, 1.0f);
        }
        rcv_optim_step(&opt, g, 0.01f);
    }
    rcv_graph_sync(g);
    double mean = (now() - t0) / steps;
    if (getenv("RCV_PROFILE") && !pgd) { // where the step's time goes: each op synced (rcv_graph_profile), then the optimizer
        rcv_graph_profile(g, 1);
        double topt = 0;
        for (int s = 0; s < steps; s++) {
            rcv_graph_forward(g);
            rcv_graph_zero_grad(g);
            rcv_graph_backward(g, m.loss, 1.0f);
            rcv_graph_sync(g);
            double t1 = now();
            rcv_optim_step(&opt, g, 0.01f);
            rcv_graph_sync(g);
            topt += now() - t1;
        }
        const char *top = getenv("RCV_PROFILE_TOP"); // how many of the slowest nodes to list
        rcv_graph_profile_print(g, stderr, top ? atoi(top) : 12);
        fprintf(stderr, "optimizer step %.3f ms; unprofiled step %.3f ms\n", 1e3 * topt / steps, 1e3 * mean);
        rcv_graph_profile(g, 0);
    }
    float loss;
    rcv_graph_download(g, &loss, g->nodes[m.loss].out, sizeof loss);
    printf("%.1f\n", batch / mean);
    fprintf(stderr, "%s %s: batch %d, %.2f ms/step, %.1f img/s, last loss %.4f\n", argv[1], rcv_precision_name(prec),
            batch, 1e3 * mean, batch / mean, loss);
    rcv_optim_free(&opt);
    rcv_recipe_free(&rec);
    rcv_model_free(&m);
    free(x);
    free(lab);
    return 0;
}
