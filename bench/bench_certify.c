// Randomized smoothing's sampling loop (rcv_smooth_counts: normal fill, + x, forward, argmax):
// noisy forward passes per second on one image, at a batch of noisy copies. bench/bench_certify.sh
// runs this and bench/peer_certify.py (core.py's loop in PyTorch) on the same weights and threads.
//
// usage: bench_certify MODEL C H W CLASSES BATCH SAMPLES [WEIGHTS_OUT]
//   WEIGHTS_OUT: the model's state_dict as safetensors (for the peer); the model is built with seed 0.
// Prints samples/s on stdout; with RCV_PROFILE set, the per-op forward time and the noise fill's on stderr.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robustcv/error.h"
#include "robustcv/models.h"
#include "robustcv/safetensors.h"
#include "robustcv/smoothing.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s MODEL C H W CLASSES BATCH SAMPLES [WEIGHTS_OUT]\n", argv[0]);
        return 2;
    }
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = atoi(argv[2]), cfg.in_h = atoi(argv[3]), cfg.in_w = atoi(argv[4]), cfg.n_classes = atoi(argv[5]);
    long samples = atol(argv[7]);
    rcv_model m;
    if (rcv_model_build(&m, argv[1], &cfg)) {
        fprintf(stderr, "bench_certify: %s\n", rcv_error());
        return 1;
    }
    if (argc > 8) {
        rcv_st_writer *w = rcv_st_writer_new();
        rcv_st_add_graph(w, m.g);
        int rc = rcv_st_write(w, argv[8]);
        rcv_st_writer_free(w);
        if (rc) {
            fprintf(stderr, "bench_certify: %s\n", rcv_error());
            return 1;
        }
    }
    rcv_smooth_cfg sc;
    rcv_smooth_defaults(&sc);
    sc.batch = atoi(argv[6]);
    if (rcv_smooth_prepare(&m, &sc, RCV_BACKEND_CPU)) {
        fprintf(stderr, "bench_certify: %s\n", rcv_error());
        return 1;
    }
    size_t per = (size_t)cfg.in_c * cfg.in_h * cfg.in_w;
    float *x = malloc(per * sizeof(float));
    for (size_t e = 0; e < per; e++) x[e] = (float)((e * 37) % 255) / 255.0f;
    long *counts = calloc((size_t)cfg.n_classes, sizeof(long));
    rcv_rng rng;
    rcv_rng_init(&rng, 1);
    rcv_smooth_counts(&m, x, 0.25f, 2L * sc.batch, &rng, counts); // warm-up: oneDNN's first calls
    double t0 = now();
    rcv_smooth_counts(&m, x, 0.25f, samples, &rng, counts);
    double dt = now() - t0;
    printf("%.1f\n", samples / dt);
    if (getenv("RCV_PROFILE")) {
        float *buf = malloc((size_t)sc.batch * per * sizeof(float));
        t0 = now();
        for (long s = 0; s < samples; s += sc.batch) rcv_rng_fill_normal(&rng, buf, (size_t)sc.batch * per, 0, 0.25f);
        fprintf(stderr, "noise fill alone: %.3f s of %.3f s\n", now() - t0, dt);
        free(buf);
        rcv_graph_profile(m.g, 1);
        rcv_smooth_counts(&m, x, 0.25f, samples, &rng, counts);
        rcv_graph_profile_print(m.g, stderr, 8);
    }
    free(x);
    free(counts);
    rcv_model_free(&m);
    return 0;
}
