// Where inference time goes: the eval-mode forward bench_onnx times (rcv_graph_infer on the cpu
// backend), run ITERS times with the per-node profiler on process CPU time, so a one-thread run
// (OMP_NUM_THREADS=1) gives numbers a busy machine does not distort.
//
// usage: infer_profile MODEL C H W CLASSES BATCH ITERS [forward]
//   prints CPU ms per pass (getrusage, all threads) and the per-op / per-node profile.
//   `forward` runs plain rcv_graph_forward (no conv+batchnorm folding) instead.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "robustcv/error.h"
#include "robustcv/models.h"

static double cpu_s(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + 1e-6 * (r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

int main(int argc, char **argv) {
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s MODEL C H W CLASSES BATCH ITERS [forward]\n", argv[0]);
        return 2;
    }
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = atoi(argv[2]), cfg.in_h = atoi(argv[3]), cfg.in_w = atoi(argv[4]), cfg.n_classes = atoi(argv[5]);
    int batch = atoi(argv[6]), iters = atoi(argv[7]), plain = argc == 9 && !strcmp(argv[8], "forward");
    rcv_model m;
    if (rcv_model_build(&m, argv[1], &cfg) || rcv_graph_plan(m.g, batch, RCV_BACKEND_CPU)) {
        fprintf(stderr, "infer_profile: %s\n", rcv_error());
        return 1;
    }
    rcv_graph_set_training(m.g, 0);
    float *x = m.g->nodes[m.input].out;
    size_t n = (size_t)batch * cfg.in_c * cfg.in_h * cfg.in_w;
    for (size_t e = 0; e < n; e++) x[e] = (float)((e * 37) % 255) / 255.0f;
    memset(m.g->nodes[m.labels].idata, 0, (size_t)batch * sizeof(int32_t));
    for (int i = 0; i < 3; i++) plain ? rcv_graph_forward(m.g) : rcv_graph_infer(m.g);
    double t0 = cpu_s();
    for (int i = 0; i < iters; i++) plain ? rcv_graph_forward(m.g) : rcv_graph_infer(m.g);
    double t = cpu_s() - t0;
    printf("%s batch %d: %.3f ms CPU per pass (%d passes, %s)\n", argv[1], batch, 1e3 * t / iters, iters,
           plain ? "rcv_graph_forward" : "rcv_graph_infer");
    rcv_graph_profile(m.g, 2);
    for (int i = 0; i < iters; i++) plain ? rcv_graph_forward(m.g) : rcv_graph_infer(m.g);
    rcv_graph_profile_print(m.g, stdout, 12);
    rcv_model_free(&m);
    return 0;
}
