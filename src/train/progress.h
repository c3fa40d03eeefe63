// Progress display: a bar with throughput and ETA on a terminal, plain lines otherwise.
#ifndef RCV_PROGRESS_H
#define RCV_PROGRESS_H

typedef struct {
    int tty, quiet;
    double t0, last_print;
    long total, done;
    char label[64];
} rcv_progress;

double rcv_now(void); // seconds, monotonic
void rcv_progress_start(rcv_progress *p, const char *label, long total, int quiet);
// done items so far; extra is printed after the bar ("loss 0.3412").
void rcv_progress_update(rcv_progress *p, long done, const char *extra);
void rcv_progress_end(rcv_progress *p, const char *extra);

#endif
