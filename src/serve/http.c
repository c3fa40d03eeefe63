// The HTTP side: libmicrohttpd with a thread pool over epoll. Bodies are collected up to
// --max-request-mb (413 from the Content-Length header at once, else as soon as the stream
// passes the cap, the rest discarded); each request is answered by serve_handle.
#include <microhttpd.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "robustcv/buf.h"
#include "robustcv/error.h"
#include "serve/serve.h"

typedef struct {
    serve_state *s;
    struct MHD_Connection *conn;
    serve_pending *pend; // waiting for (or done with) a batcher job: the connection is suspended
    rcv_buf body; // limit: --max-request-mb
    int too_big, answered;
    unsigned long long declared; // Content-Length over the cap (0: none)
    double t0;
} conn_ctx;

static enum MHD_Result send_reply(struct MHD_Connection *c, serve_reply *r, double t0, const char *method) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->len, r->body, r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type ? r->type : "application/json");
    if (r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    serve_metrics_request(r->status, serve_now() - t0);
    (void)method;
    return ok;
}

static void wait_suspend(void *arg) {
    conn_ctx *x = arg;
    __atomic_add_fetch(&x->s->in_flight, 1, __ATOMIC_SEQ_CST);
    MHD_suspend_connection(x->conn);
}
static void wait_resume(void *arg) { MHD_resume_connection(((conn_ctx *)arg)->conn); }

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    serve_state *s = cls;
    conn_ctx *x = *con_cls;
    if (!x) {
        x = rcv_xcalloc(1, sizeof *x);
        x->t0 = serve_now();
        x->s = s;
        x->conn = c;
        x->body.limit = s->cfg.max_request;
        x->body.what = "the request body";
        *con_cls = x;
        // A declared length over the cap is refused without buffering anything: the body is read
        // and dropped, then answered 413 (answering before the body is read races the client's
        // sending: it may see a reset instead of the 413).
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end != cl && n > s->cfg.max_request) x->too_big = 1, x->declared = n;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (x->answered || x->too_big) return MHD_YES; // discard
        if (rcv_buf_append(&x->body, upload, n)) { // past the cap: the rest is discarded, then 413
            x->too_big = 1;
            rcv_buf_free(&x->body);
        }
        return MHD_YES;
    }
    serve_reply r;
    if (x->pend) { // resumed: the job is done
        serve_finish(s, x->pend, &r);
        serve_pending_free(x->pend);
        x->pend = NULL;
        __atomic_sub_fetch(&s->in_flight, 1, __ATOMIC_SEQ_CST);
        return send_reply(c, &r, x->t0, method);
    }
    if (x->answered) return MHD_YES;
    x->answered = 1;
    if (x->declared)
        serve_reply_error(&r, 413, "the request body is %llu bytes, over the cap of %zu (--max-request-mb)", x->declared,
                          s->cfg.max_request);
    else if (x->too_big)
        serve_reply_error(&r, 413, "the request body passed the cap of %zu bytes (--max-request-mb)", s->cfg.max_request);
    else {
        serve_wait wt = {wait_suspend, wait_resume, x};
        serve_handle(s, method, url, x->body.data ? x->body.data : "", x->body.len, &wt, &r, &x->pend);
        if (x->pend) return MHD_YES; // suspended until the batcher is done with its job
    }
    (void)version;
    return send_reply(c, &r, x->t0, method);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    conn_ctx *x = *con_cls;
    if (x) {
        if (x->pend) { // the connection ended before its answer was written
            serve_pending_free(x->pend);
            __atomic_sub_fetch(&x->s->in_flight, 1, __ATOMIC_SEQ_CST);
        }
        rcv_buf_free(&x->body);
        free(x);
        *con_cls = NULL;
    }
}

int serve_run(serve_state *s) {
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int e = getaddrinfo(s->cfg.host, port, &hints, &ai);
    if (e) return rcv_fail("serve: --host %s: %s", s->cfg.host, gai_strerror(e));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.http_threads, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) return rcv_fail("serve: cannot listen on %s:%d (in use, or not an address of this machine?)", s->cfg.host, s->cfg.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info ? info->port : s->cfg.port;
    printf("robustcv serve: listening on http://%s:%d/ (", s->cfg.host, bound);
    for (int i = 0; i < s->n_models; i++) printf("%s%s", i ? ", " : "models: ", s->models[i].name);
    printf(")\n");
    fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "robustcv serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    // New jobs get 503; the requests already waiting get their answers (up to 30 s) before the
    // daemon stops (libmicrohttpd must not stop with suspended connections).
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < 3000 && __atomic_load_n(&s->in_flight, __ATOMIC_SEQ_CST) > 0; i++) usleep(10000);
    MHD_stop_daemon(d);
    return 0;
}
