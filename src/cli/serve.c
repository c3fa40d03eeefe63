// robustcv serve: checkpoints behind the Open Inference Protocol v2 (REST), a web page at /,
// and Prometheus metrics (src/serve/serve.h, docs/serve.md).
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/train.h"
#include "serve/serve.h"

int cli_serve(int argc, char **argv) {
    rcv_opt opts[] = {
        {"checkpoint", "FILE", "checkpoint to serve (required; repeat for several models); model name = file stem", NULL},
        {"ensemble", NULL, "also serve \"ensemble\": the probability average of all checkpoints", NULL},
        {"host", "ADDR", "address to listen on (default 127.0.0.1)", NULL},
        {"port", "N", "TCP port (default 8080; 0 = any free port, printed at start)", NULL},
        {"max-batch", "N", "images per forward pass of the batcher (default 32)", NULL},
        {"max-delay-ms", "MS", "how long the batcher waits for more requests to fill a batch (default 5)", NULL},
        {"queue", "N", "jobs waiting for the batcher before requests are answered 503 (default 256)", NULL},
        {"max-request-mb", "MB", "request body cap, answered 413 above it (default 64)", NULL},
        {"http-threads", "N", "HTTP worker threads (epoll thread pool; default 4); requests waiting for the model hold none", NULL},
        {"threads", "N", "compute threads for the models (default: all cores)", NULL},
        {"device", "NAME", "cpu, ref or cuda (default cpu)", NULL},
        {NULL, NULL, NULL, NULL},
    };
    // Every --checkpoint (the option parser keeps the last one only).
    const char *cks[SERVE_MAX_MODELS];
    int n_ck = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--checkpoint") && i + 1 < argc) v = argv[i + 1];
        else if (!strncmp(argv[i], "--checkpoint=", 13)) v = argv[i] + 13;
        if (!v) continue;
        if (n_ck == SERVE_MAX_MODELS) {
            fprintf(stderr, "robustcv serve: more than %d --checkpoint\n", SERVE_MAX_MODELS);
            return 2;
        }
        cks[n_ck++] = v;
    }
    const char *pos[1];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, "serve", "--checkpoint FILE [--checkpoint FILE ...] [options]", pos, &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    static serve_state s; // large; lives until exit
    memset(&s, 0, sizeof s);
    serve_cfg *c = &s.cfg;
    c->host = rcv_arg(opts, "host") ? rcv_arg(opts, "host") : "127.0.0.1";
    c->port = 8080, c->max_batch = 32, c->max_delay_ms = 5, c->queue = 256, c->http_threads = 4;
    int mb = 64, threads = 0;
    if (rcv_arg_int(opts, "port", &c->port) || rcv_arg_int(opts, "max-batch", &c->max_batch) ||
        rcv_arg_int(opts, "max-delay-ms", &c->max_delay_ms) || rcv_arg_int(opts, "queue", &c->queue) ||
        rcv_arg_int(opts, "max-request-mb", &mb) || rcv_arg_int(opts, "http-threads", &c->http_threads) ||
        rcv_arg_int(opts, "threads", &threads) || cli_parse_device(rcv_arg(opts, "device"), &c->backend))
        return 2;
    struct {
        const char *name;
        int v, lo, hi;
    } lim[] = {{"port", c->port, 0, 65535},        {"max-batch", c->max_batch, 1, 1024},
               {"max-delay-ms", c->max_delay_ms, 0, 10000}, {"queue", c->queue, 1, 1 << 20},
               {"max-request-mb", mb, 1, 4096},     {"http-threads", c->http_threads, 1, 1024}};
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
        if (lim[i].v < lim[i].lo || lim[i].v > lim[i].hi) {
            fprintf(stderr, "robustcv serve: --%s %d, expected %d..%d\n", lim[i].name, lim[i].v, lim[i].lo, lim[i].hi);
            return 2;
        }
    c->max_request = (size_t)mb << 20;
    if (n_ck == 0) {
        fprintf(stderr, "robustcv serve: --checkpoint FILE is required (repeat it for several models)\n");
        return 2;
    }
    // SIGINT / SIGTERM are taken by sigwait in serve_run: blocked here, before any thread starts.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (threads > 0) omp_set_num_threads(threads);
    c->threads = threads;
    serve_metrics_init();
    for (int i = 0; i < n_ck; i++)
        if (serve_load_ckpt(&s, cks[i])) {
            fprintf(stderr, "robustcv serve: cannot load checkpoint %s: %s\n", cks[i], rcv_error());
            return 1;
        }
    if (rcv_arg(opts, "ensemble")) serve_add_ensemble(&s);
    if (serve_batcher_start(&s)) {
        fprintf(stderr, "robustcv serve: %s\n", rcv_error());
        return 1;
    }
    rc = serve_run(&s);
    if (rc) fprintf(stderr, "robustcv serve: %s\n", rcv_error());
    serve_batcher_stop(&s);
    serve_free_models(&s);
    return rc ? 1 : 0;
}
