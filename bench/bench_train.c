// Training-step throughput of our models: forward + backward + SGD step on random
// data, images/s. bench/run.sh runs this and PyTorch's peer (bench/peer_train.py)
// on the same shapes and thread count, and prints the ratio.
//
// usage: bench_train MODEL C H W CLASSES BATCH [STEPS] [small] [bf16]
//        bench_train --isa   (oneDNN's effective ISA, for the bench's header)
// Exit 77: the CPU cannot run the case (bf16 without AVX512-BF16 or AMX); stderr says why.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "backend/backend.h"
#include "robustcv/error.h"
#include "robustcv/models.h"
#include "robustcv/optim.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--isa")) {
        printf("%s\n", rcv_cpu_isa());
        return 0;
    }
    if (argc < 7) {
        fprintf(stderr, "usage: %s MODEL C H W CLASSES BATCH [STEPS] [small] [bf16]\n", argv[0]);
        return 2;
    }
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = atoi(argv[2]);
    cfg.in_h = atoi(argv[3]);
    cfg.in_w = atoi(argv[4]);
    cfg.n_classes = atoi(argv[5]);
    int batch = atoi(argv[6]), steps = argc > 7 ? atoi(argv[7]) : 10;
    int bf16 = 0;
    for (int i = 8; i < argc; i++) {
        if (!strcmp(argv[i], "small")) cfg.small_input = 1;
        else if (!strcmp(argv[i], "bf16")) bf16 = 1;
    }
    // Asked before building: the library would fall back to fp32 and the row would time fp32.
    if (bf16 && !rcv_backend_has_bf16(RCV_BACKEND_CPU)) {
        fprintf(stderr, "skipped: no bf16 on this CPU (oneDNN ISA %s)\n", rcv_cpu_isa());
        return 77;
    }
    rcv_model m;
    if (rcv_model_build(&m, argv[1], &cfg)) {
        fprintf(stderr, "bench_train: %s\n", rcv_error());
        return 1;
    }
    if (bf16) rcv_graph_set_precision(m.g, RCV_BACKEND_CPU, RCV_PREC_BF16);
    if (rcv_graph_plan(m.g, batch, RCV_BACKEND_CPU)) {
        fprintf(stderr, "bench_train: %s\n", rcv_error());
        return 1;
    }
    rcv_graph *g = m.g;
    rcv_graph_set_training(g, 1);
    rcv_rng r;
    rcv_rng_init(&r, 1);
    rcv_rng_fill_uniform(&r, g->nodes[m.input].out, (size_t)batch * cfg.in_c * cfg.in_h * cfg.in_w, 0, 1);
    for (int i = 0; i < batch; i++) g->nodes[m.labels].idata[i] = (int)rcv_rng_below(&r, (uint32_t)cfg.n_classes);
    rcv_optim_cfg oc = rcv_optim_defaults(RCV_OPT_SGD);
    oc.momentum = 0.9f;
    rcv_optim opt;
    rcv_optim_init(&opt, &oc, g->n_param_floats);
    double best = 1e30;
    for (int s = 0; s < steps + 2; s++) {
        double t0 = now();
        rcv_graph_forward(g);
        rcv_graph_zero_grad(g);
        rcv_graph_backward(g, m.loss, 1.0f);
        rcv_optim_step(&opt, g, 0.01f);
        double dt = now() - t0;
        if (s >= 2 && dt < best) best = dt; // the first two steps warm caches and oneDNN's kernels
    }
    // Median-free: report the mean over the timed steps too.
    double t0 = now();
    for (int s = 0; s < steps; s++) {
        rcv_graph_forward(g);
        rcv_graph_zero_grad(g);
        rcv_graph_backward(g, m.loss, 1.0f);
        rcv_optim_step(&opt, g, 0.01f);
    }
    double mean = (now() - t0) / steps;
    if (getenv("RCV_PROFILE")) {
        rcv_graph_profile(g, 1);
        for (int s = 0; s < steps; s++) {
            rcv_graph_forward(g);
            rcv_graph_zero_grad(g);
            rcv_graph_backward(g, m.loss, 1.0f);
        }
        rcv_graph_profile_print(g, stderr, 15);
    }
    printf("%.1f\n", batch / mean);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr, "peak_rss_mb %.0f\n", ru.ru_maxrss / 1024.0);
    fprintf(stderr, "%s: %d threads, batch %d, mean %.1f img/s, best step %.1f img/s\n", argv[1], omp_get_max_threads(),
            batch, batch / mean, batch / best);
    rcv_optim_free(&opt);
    rcv_model_free(&m);
    return 0;
}
