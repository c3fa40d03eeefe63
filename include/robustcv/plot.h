// Plots drawn with the built-in rasteriser (draw.h): line charts (training curves) and bar
// charts (accuracy per transform / per corruption), as RGB images or PNG files.
#ifndef RCV_PLOT_H
#define RCV_PLOT_H

#include "robustcv/draw.h"

typedef struct {
    const char *name;     // legend entry
    const double *x, *y;  // n points; NaN y values are gaps
    int n;
    rcv_rgb color;
} rcv_series;

// Axes with "nice" ticks (steps 1, 2, 5 x 10^k) covering every finite point, a title, axis
// labels, one polyline (with dots) per series and a legend in the top-right corner.
void rcv_plot_lines(rcv_image *out, int w, int h, const char *title, const char *xlabel, const char *ylabel,
                    const rcv_series *s, int ns);
// Vertical bars with their values printed above (with `fmt`, e.g. "%.1f"), labels under each bar
// written bottom-to-top (in at most 2/5 of h; longer ones lose their middle to ".."); y from 0
// to ymax (<= 0: the largest value, rounded up to a tick).
void rcv_plot_bars(rcv_image *out, int w, int h, const char *title, const char *ylabel, const char *const *labels,
                   const double *v, int n, double ymax, const char *fmt);

// One training run's JSON-lines log (src/train/train.c writes one object per epoch with keys
// epoch, train_loss, train_acc, test_loss, test_top1, test_top5). Missing keys read as NaN.
typedef struct {
    int n;
    double *epoch, *train_loss, *train_acc, *test_loss, *test_top1, *test_top5;
} rcv_train_log;
// -1 with "<file>:<line>: ..." for unreadable files, bad JSON or a line without "epoch".
int rcv_train_log_load(const char *path, rcv_train_log *log);
void rcv_train_log_free(rcv_train_log *log);
// Figure 6 of the seed: loss (train, validation) and accuracy in % (train, validation top-1)
// per epoch, two panels side by side, written as PNG.
int rcv_plot_training_png(const char *jsonl, const char *png, const char *title);

#endif
