// Inference throughput of robustcv's own path (rcv_graph_infer: eval-mode forward of the planned
// graph with batchnorm folded into the convolutions, cpu backend, what `robustcv predict`, serve
// and rcv_logits_batched run), and the model exported to ONNX
// for bench/peer_onnx.py to run in onnxruntime: same weights, batch and threads.
//
// usage: bench_onnx MODEL C H W CLASSES BATCH SECONDS OUT.onnx
//   builds MODEL (seed 0), writes OUT.onnx (opset 17), then runs forward passes for at least
//   SECONDS (and 3 passes) after 2 warm-up passes. Prints images/s on stdout. Threads: OMP_NUM_THREADS.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robustcv/error.h"
#include "robustcv/models.h"
#include "robustcv/onnx.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s MODEL C H W CLASSES BATCH SECONDS OUT.onnx\n", argv[0]);
        return 2;
    }
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = atoi(argv[2]), cfg.in_h = atoi(argv[3]), cfg.in_w = atoi(argv[4]), cfg.n_classes = atoi(argv[5]);
    int batch = atoi(argv[6]);
    double seconds = atof(argv[7]);
    rcv_model m;
    if (rcv_model_build(&m, argv[1], &cfg) || rcv_onnx_export(&m, RCV_ONNX_OPSET_DEFAULT, argv[8]) ||
        rcv_graph_plan(m.g, batch, RCV_BACKEND_CPU)) {
        fprintf(stderr, "bench_onnx: %s\n", rcv_error());
        return 1;
    }
    rcv_graph_set_training(m.g, 0);
    float *x = m.g->nodes[m.input].out;
    size_t n = (size_t)batch * cfg.in_c * cfg.in_h * cfg.in_w;
    for (size_t e = 0; e < n; e++) x[e] = (float)((e * 37) % 255) / 255.0f;
    // The frame's loss node runs too (as in `robustcv predict`); its labels are class 0.
    memset(m.g->nodes[m.labels].idata, 0, (size_t)batch * sizeof(int32_t));
    for (int i = 0; i < 2; i++) rcv_graph_infer(m.g);
    int iters = 0;
    double t0 = now(), t;
    do {
        rcv_graph_infer(m.g);
        iters++;
        t = now() - t0;
    } while (t < seconds || iters < 3);
    printf("%.1f\n", (double)iters * batch / t);
    rcv_model_free(&m);
    return 0;
}
