// Forward + backward images/s of one zoo model (train mode, no optimizer step):
// bench_models MODEL [H] [BATCH] [STEPS] -> prints images/s (mean over STEPS after one warm-up).
// bench/models.sh runs it next to bench/peer_models.py for every model and prints the ratio.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "robustcv/error.h"
#include "robustcv/models.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [H=64] [BATCH=64] [STEPS=3]\n", argv[0]);
        return 2;
    }
    int h = argc > 2 ? atoi(argv[2]) : 64, batch = argc > 3 ? atoi(argv[3]) : 64, steps = argc > 4 ? atoi(argv[4]) : 3;
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_h = cfg.in_w = h;
    cfg.n_classes = 200;
    cfg.dropout = 0; // the peer has none either: dropout masks are not what is measured
    rcv_model m;
    if (rcv_model_build(&m, argv[1], &cfg) || rcv_graph_plan(m.g, batch, RCV_BACKEND_CPU)) {
        fprintf(stderr, "bench_models: %s\n", rcv_error());
        return 1;
    }
    rcv_graph *g = m.g;
    float *x = g->nodes[m.input].out;
    for (size_t i = 0; i < (size_t)batch * 3 * h * h; i++) x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
    for (int i = 0; i < batch; i++) g->nodes[m.labels].idata[i] = i % 200;
    rcv_graph_set_training(g, 1);
    double t0 = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) t0 = now(); // step 0 warms up
        rcv_graph_forward(g);
        rcv_graph_zero_grad(g);
        rcv_graph_backward(g, m.loss, 1.0f);
    }
    printf("%.1f\n", (double)batch * steps / (now() - t0));
    rcv_model_free(&m);
    return 0;
}
