#include "train/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double rcv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void rcv_progress_start(rcv_progress *p, const char *label, long total, int quiet) {
    memset(p, 0, sizeof *p);
    p->tty = isatty(2);
    p->quiet = quiet;
    p->t0 = p->last_print = rcv_now();
    p->total = total;
    snprintf(p->label, sizeof p->label, "%s", label);
}

static void fmt_time(char *b, size_t n, double s) {
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(b, n, "%d:%02d", t / 60, t % 60);
}

static void print(rcv_progress *p, const char *extra, int final) {
    double el = rcv_now() - p->t0;
    double rate = el > 0 ? (double)p->done / el : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    char e1[32], e2[32];
    fmt_time(e1, sizeof e1, el);
    fmt_time(e2, sizeof e2, eta);
    int pct = p->total ? (int)(100 * p->done / p->total) : 100;
    if (p->tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %3d%% %7.1f img/s %s<%s %s\033[K", p->label, bar, pct, rate, e1, e2,
                extra ? extra : "");
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s %3d%% %ld/%ld %.1f img/s elapsed %s eta %s %s\n", p->label, pct, p->done, p->total, rate,
                e1, e2, extra ? extra : "");
    }
    fflush(stderr);
}

void rcv_progress_update(rcv_progress *p, long done, const char *extra) {
    p->done = done;
    if (p->quiet) return;
    double now = rcv_now();
    // A terminal redraws 5 times a second; a log gets a line every 20 seconds.
    if (now - p->last_print < (p->tty ? 0.2 : 20.0)) return;
    p->last_print = now;
    print(p, extra, 0);
}

void rcv_progress_end(rcv_progress *p, const char *extra) {
    if (p->quiet) return;
    print(p, extra, 1);
}
