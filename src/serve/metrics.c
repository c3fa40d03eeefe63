// Prometheus text exposition (format 0.0.4): counters and histograms under one mutex.
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "serve/serve.h"

static const double lat_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_LAT (int)(sizeof lat_bounds / sizeof lat_bounds[0])
static const int batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define N_BATCH (int)(sizeof batch_bounds / sizeof batch_bounds[0])

static struct {
    pthread_mutex_t mu;
    unsigned long long by_status[600];
    unsigned long long lat[N_LAT + 1], lat_n;
    double lat_sum;
    unsigned long long bat[N_BATCH + 1], bat_n, bat_sum;
} M = {.mu = PTHREAD_MUTEX_INITIALIZER};

void serve_metrics_init(void) {
    pthread_mutex_lock(&M.mu);
    memset(M.by_status, 0, sizeof M.by_status);
    memset(M.lat, 0, sizeof M.lat);
    memset(M.bat, 0, sizeof M.bat);
    M.lat_n = M.bat_n = M.bat_sum = 0;
    M.lat_sum = 0;
    pthread_mutex_unlock(&M.mu);
}

void serve_metrics_request(int status, double seconds) {
    pthread_mutex_lock(&M.mu);
    if (status >= 100 && status < 600) M.by_status[status]++;
    int b = 0;
    while (b < N_LAT && seconds > lat_bounds[b]) b++;
    M.lat[b]++;
    M.lat_n++;
    M.lat_sum += seconds;
    pthread_mutex_unlock(&M.mu);
}

void serve_metrics_batch(int n) {
    pthread_mutex_lock(&M.mu);
    int b = 0;
    while (b < N_BATCH && n > batch_bounds[b]) b++;
    M.bat[b]++;
    M.bat_n++;
    M.bat_sum += (unsigned long long)n;
    pthread_mutex_unlock(&M.mu);
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;
static void __attribute__((format(printf, 2, 3))) add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        b->buf = rcv_xrealloc(b->buf, b->cap);
    }
}

char *serve_metrics_text(const serve_state *s) {
    sbuf b = {rcv_xmalloc(4096), 0, 4096};
    b.buf[0] = 0;
    pthread_mutex_lock(&M.mu);
    unsigned long long total = 0, errors = 0;
    for (int c = 0; c < 600; c++) total += M.by_status[c], errors += c >= 400 ? M.by_status[c] : 0;
    add(&b, "# HELP rcv_serve_requests_total HTTP requests answered.\n# TYPE rcv_serve_requests_total counter\n");
    add(&b, "rcv_serve_requests_total %llu\n", total);
    add(&b, "# HELP rcv_serve_responses_total HTTP responses by status code.\n# TYPE rcv_serve_responses_total counter\n");
    for (int c = 100; c < 600; c++)
        if (M.by_status[c]) add(&b, "rcv_serve_responses_total{code=\"%d\"} %llu\n", c, M.by_status[c]);
    add(&b, "# HELP rcv_serve_errors_total HTTP responses with status >= 400.\n# TYPE rcv_serve_errors_total counter\n");
    add(&b, "rcv_serve_errors_total %llu\n", errors);
    add(&b, "# HELP rcv_serve_request_duration_seconds Time from the request's first byte to its response.\n"
            "# TYPE rcv_serve_request_duration_seconds histogram\n");
    unsigned long long cum = 0;
    for (int i = 0; i < N_LAT; i++) {
        cum += M.lat[i];
        add(&b, "rcv_serve_request_duration_seconds_bucket{le=\"%g\"} %llu\n", lat_bounds[i], cum);
    }
    add(&b, "rcv_serve_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", M.lat_n);
    add(&b, "rcv_serve_request_duration_seconds_sum %.6f\nrcv_serve_request_duration_seconds_count %llu\n", M.lat_sum,
        M.lat_n);
    add(&b, "# HELP rcv_serve_batch_size Images per forward pass of the batcher.\n# TYPE rcv_serve_batch_size histogram\n");
    cum = 0;
    for (int i = 0; i < N_BATCH; i++) {
        cum += M.bat[i];
        add(&b, "rcv_serve_batch_size_bucket{le=\"%d\"} %llu\n", batch_bounds[i], cum);
    }
    add(&b, "rcv_serve_batch_size_bucket{le=\"+Inf\"} %llu\n", M.bat_n);
    add(&b, "rcv_serve_batch_size_sum %llu\nrcv_serve_batch_size_count %llu\n", M.bat_sum, M.bat_n);
    pthread_mutex_unlock(&M.mu);
    add(&b, "# HELP rcv_serve_model_load_seconds Time to load each checkpoint at start-up.\n"
            "# TYPE rcv_serve_model_load_seconds gauge\n");
    for (int i = 0; i < s->n_ck; i++)
        add(&b, "rcv_serve_model_load_seconds{model=\"%s\"} %.6f\n", s->models[i].name, s->ck[i].load_seconds);
    add(&b, "# HELP rcv_serve_queue_capacity Jobs the queue holds before answering 503.\n"
            "# TYPE rcv_serve_queue_capacity gauge\nrcv_serve_queue_capacity %d\n", s->cfg.queue);
    return b.buf;
}
