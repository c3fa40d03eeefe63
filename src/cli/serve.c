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

// The file's stem ("runs/a/best.safetensors" -> "best"), made URL- and label-safe. A stem
// already taken gets its parent directory's name in front ("a-best").
static void model_name(const char *path, char *out, size_t n, const serve_state *s) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strcspn(base, ".");
    char stem[256];
    snprintf(stem, sizeof stem, "%.*s", (int)(bl ? bl : strlen(base)), base);
    int taken = !strcmp(stem, "ensemble");
    for (int i = 0; i < s->n_models; i++) taken |= !strcmp(s->models[i].name, stem);
    if (taken && base > path) {
        const char *d = base - 1, *ds = d;
        while (ds > path && ds[-1] != '/') ds--;
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%.*s-%.100s", (int)(d - ds > 100 ? 100 : d - ds), ds, stem);
        snprintf(stem, sizeof stem, "%s", tmp);
    }
    snprintf(out, n, "%.120s", stem);
    for (char *c = out; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' ||
              *c == '.'))
            *c = '_';
}

static int load_ckpt(serve_state *s, const char *path) {
    serve_ckpt *c = &s->ck[s->n_ck];
    double t0 = serve_now();
    rcv_ckpt_info info;
    if (rcv_ckpt_load_model(path, &c->tool, &info)) return -1;
    for (int b = 1;; b = b * 4 < s->cfg.max_batch ? b * 4 : s->cfg.max_batch) { // 1, 4, 16, ..., max-batch
        c->inst_batch[c->n_inst] = b;
        if (rcv_ckpt_load_model(path, &c->inst[c->n_inst++], NULL)) {
            rcv_ckpt_info_free(&info);
            return -1;
        }
        if (b == s->cfg.max_batch || c->n_inst == SERVE_MAX_INST) break;
    }
    c->classes = info.classes;
    c->n_classes = info.n_classes;
    info.classes = NULL;
    info.n_classes = 0;
    rcv_ckpt_info_free(&info);
    // Plan now, so the first request does not pay for it and a bad device fails at start-up.
    for (int i = 0; i < c->n_inst; i++) {
        if (rcv_graph_plan(c->inst[i].g, c->inst_batch[i], s->cfg.backend)) return rcv_fail("%s: %s", path, rcv_error());
        rcv_graph_set_training(c->inst[i].g, 0);
    }
    const rcv_model_cfg *m = &c->tool.cfg;
    if (s->n_ck == 0) {
        s->in_c = m->in_c, s->in_h = m->in_h, s->in_w = m->in_w, s->n_classes = m->n_classes;
    } else if (m->in_c != s->in_c || m->in_h != s->in_h || m->in_w != s->in_w || m->n_classes != s->n_classes) {
        return rcv_fail("%s: input %dx%dx%d and %d classes, but the first checkpoint has %dx%dx%d and %d (one server "
                        "serves one input shape and class count)",
                        path, m->in_c, m->in_h, m->in_w, m->n_classes, s->in_c, s->in_h, s->in_w, s->n_classes);
    }
    c->load_seconds = serve_now() - t0;
    serve_model *sm = &s->models[s->n_models];
    model_name(path, sm->name, sizeof sm->name, s);
    snprintf(sm->path, sizeof sm->path, "%s", path);
    sm->n_members = 1;
    sm->member[0] = s->n_ck;
    s->n_ck++;
    s->n_models++;
    return 0;
}

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
        if (load_ckpt(&s, cks[i])) {
            fprintf(stderr, "robustcv serve: cannot load checkpoint %s: %s\n", cks[i], rcv_error());
            return 1;
        }
    if (rcv_arg(opts, "ensemble")) {
        serve_model *e = &s.models[s.n_models++];
        snprintf(e->name, sizeof e->name, "ensemble");
        e->n_members = s.n_ck;
        for (int i = 0; i < s.n_ck; i++) e->member[i] = i;
    }
    if (serve_batcher_start(&s)) {
        fprintf(stderr, "robustcv serve: %s\n", rcv_error());
        return 1;
    }
    rc = serve_run(&s);
    if (rc) fprintf(stderr, "robustcv serve: %s\n", rcv_error());
    serve_batcher_stop(&s);
    for (int i = 0; i < s.n_ck; i++) {
        serve_ckpt *k = &s.ck[i];
        if (k->tool_mode == 1) rcv_explainer_free(&k->ex);
        for (int j = 0; j < k->n_inst; j++) rcv_model_free(&k->inst[j]);
        rcv_model_free(&k->tool);
        if (k->classes)
            for (int j = 0; j < k->n_classes; j++) free(k->classes[j]);
        free(k->classes);
    }
    return rc ? 1 : 0;
}
