// Line and bar charts with the built-in rasteriser (see plot.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/json.h"
#include "robustcv/plot.h"

static const rcv_rgb WHITE = {255, 255, 255}, BLACK = {0, 0, 0}, GRID = {225, 225, 225}, AXIS = {90, 90, 90};

// Tick step 1, 2 or 5 x 10^k giving about `target` intervals over span.
static double nice_step(double span, int target) {
    if (!(span > 0)) return 1;
    double raw = span / target, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static int decimals(double step) {
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 6 ? 6 : d;
}

typedef struct { int x0, y0, x1, y1; double lo_x, hi_x, lo_y, hi_y; } frame;

static int px(const frame *f, double x) { return f->x0 + (int)lround((x - f->lo_x) / (f->hi_x - f->lo_x) * (f->x1 - f->x0)); }
static int py(const frame *f, double y) { return f->y1 - (int)lround((y - f->lo_y) / (f->hi_y - f->lo_y) * (f->y1 - f->y0)); }

// Ticks, grid, tick labels and axis labels of [lo, hi] ranges already rounded to steps.
static void axes(rcv_image *im, const frame *f, double sx, double sy, const char *title, const char *xlabel,
                 const char *ylabel) {
    char buf[64];
    int dx = decimals(sx), dy = decimals(sy);
    for (double t = f->lo_y; t <= f->hi_y + sy * 1e-6; t += sy) {
        int y = py(f, t);
        rcv_draw_line(im, f->x0, y, f->x1, y, 1, GRID);
        snprintf(buf, sizeof buf, "%.*f", dy, fabs(t) < sy * 1e-9 ? 0.0 : t);
        rcv_draw_text(im, f->x0 - 6 - rcv_text_width(buf, 1), y - 3, buf, 1, BLACK);
    }
    for (double t = f->lo_x; t <= f->hi_x + sx * 1e-6; t += sx) {
        int x = px(f, t);
        rcv_draw_line(im, x, f->y0, x, f->y1, 1, GRID);
        snprintf(buf, sizeof buf, "%.*f", dx, fabs(t) < sx * 1e-9 ? 0.0 : t);
        rcv_draw_text(im, x - rcv_text_width(buf, 1) / 2, f->y1 + 6, buf, 1, BLACK);
    }
    rcv_draw_line(im, f->x0, f->y0, f->x0, f->y1, 1, AXIS);
    rcv_draw_line(im, f->x0, f->y1, f->x1, f->y1, 1, AXIS);
    if (title) rcv_draw_text(im, (im->w - rcv_text_width(title, 2)) / 2, 6, title, 2, BLACK);
    if (xlabel) rcv_draw_text(im, (f->x0 + f->x1 - rcv_text_width(xlabel, 1)) / 2, f->y1 + 20, xlabel, 1, BLACK);
    if (ylabel) rcv_draw_text_vertical(im, 6, (f->y0 + f->y1 - rcv_text_width(ylabel, 1)) / 2, ylabel, 1, BLACK);
}

void rcv_plot_lines(rcv_image *out, int w, int h, const char *title, const char *xlabel, const char *ylabel,
                    const rcv_series *s, int ns) {
    rcv_canvas_new(out, w, h, WHITE);
    double lx = INFINITY, hx = -INFINITY, ly = INFINITY, hy = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
            lx = fmin(lx, s[k].x[i]), hx = fmax(hx, s[k].x[i]);
            ly = fmin(ly, s[k].y[i]), hy = fmax(hy, s[k].y[i]);
        }
    if (!isfinite(lx)) lx = 0, hx = 1, ly = 0, hy = 1; // no data: empty axes
    if (hx == lx) lx -= 1, hx += 1;
    if (hy == ly) ly -= fabs(ly) > 0 ? fabs(ly) * 0.1 : 1, hy += fabs(hy) > 0 ? fabs(hy) * 0.1 : 1;
    double sx = nice_step(hx - lx, 6), sy = nice_step(hy - ly, 5);
    frame f = {64, 34, w - 14, h - 42, floor(lx / sx) * sx, ceil(hx / sx) * sx, floor(ly / sy) * sy, ceil(hy / sy) * sy};
    axes(out, &f, sx, sy, title, xlabel, ylabel);
    for (int k = 0; k < ns; k++) {
        int have = 0, x0 = 0, y0 = 0;
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) {
                have = 0;
                continue;
            }
            int x = px(&f, s[k].x[i]), y = py(&f, s[k].y[i]);
            if (have) rcv_draw_line(out, x0, y0, x, y, 2, s[k].color);
            rcv_draw_rect_fill(out, x - 2, y - 2, 5, 5, s[k].color);
            x0 = x, y0 = y, have = 1;
        }
    }
    // Legend: a framed box in the top-right corner of the plot area.
    int lw = 0;
    for (int k = 0; k < ns; k++) {
        int tw = s[k].name ? rcv_text_width(s[k].name, 1) : 0;
        lw = tw > lw ? tw : lw;
    }
    if (ns > 0 && lw > 0) {
        int bw = lw + 30, bh = ns * 12 + 6, bx = f.x1 - bw - 6, by = f.y0 + 6;
        rcv_draw_rect_fill(out, bx, by, bw, bh, WHITE);
        rcv_draw_rect(out, bx, by, bw, bh, AXIS);
        for (int k = 0; k < ns; k++) {
            int y = by + 6 + k * 12;
            rcv_draw_line(out, bx + 5, y + 3, bx + 20, y + 3, 2, s[k].color);
            if (s[k].name) rcv_draw_text(out, bx + 25, y, s[k].name, 1, BLACK);
        }
    }
}

// s cut in the middle to at most maxw pixels, "head..tail", so that labels which differ only at the
// end (noise sigma 0.1 / 0.2) stay apart.
static const char *fit_label(const char *s, int maxw, char *buf, size_t len) {
    if (rcv_text_width(s, 1) <= maxw) return s;
    size_t n = strlen(s);
    for (size_t keep = n < len - 3 ? n : len - 3;; keep--) {
        size_t head = (keep + 1) / 2, tail = keep - head;
        snprintf(buf, len, "%.*s..%s", (int)head, s, s + n - tail);
        if (keep == 0 || rcv_text_width(buf, 1) <= maxw) return buf;
    }
}

void rcv_plot_bars(rcv_image *out, int w, int h, const char *title, const char *ylabel, const char *const *labels,
                   const double *v, int n, double ymax, const char *fmt) {
    // Labels take at most 2/5 of the height (longer ones are cut), the bars keep the rest.
    int lab = 0, lab_max = (h - 48) * 2 / 5;
    for (int i = 0; i < n; i++) {
        int tw = labels && labels[i] ? rcv_text_width(labels[i], 1) : 0;
        lab = tw > lab ? tw : lab;
    }
    lab = lab < lab_max ? lab : lab_max;
    rcv_canvas_new(out, w, h, WHITE);
    double hi = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) hi = fmax(hi, v[i]);
    if (ymax > 0) hi = ymax;
    if (!(hi > 0)) hi = 1;
    double sy = nice_step(hi, 5);
    frame f = {64, 34, w - 14, h - 14 - lab, -0.5, n - 0.5, 0, ceil(hi / sy - 1e-9) * sy};
    // y axis only: no x ticks for categories.
    char buf[64];
    for (double t = 0; t <= f.hi_y + sy * 1e-6; t += sy) {
        int y = py(&f, t);
        rcv_draw_line(out, f.x0, y, f.x1, y, 1, GRID);
        snprintf(buf, sizeof buf, "%.*f", decimals(sy), t);
        rcv_draw_text(out, f.x0 - 6 - rcv_text_width(buf, 1), y - 3, buf, 1, BLACK);
    }
    rcv_draw_line(out, f.x0, f.y0, f.x0, f.y1, 1, AXIS);
    rcv_draw_line(out, f.x0, f.y1, f.x1, f.y1, 1, AXIS);
    if (title) rcv_draw_text(out, (w - rcv_text_width(title, 2)) / 2, 6, title, 2, BLACK);
    if (ylabel) rcv_draw_text_vertical(out, 6, (f.y0 + f.y1 - rcv_text_width(ylabel, 1)) / 2, ylabel, 1, BLACK);
    double slot = (double)(f.x1 - f.x0) / (n > 0 ? n : 1);
    int bw = (int)(slot * 0.7);
    bw = bw < 2 ? 2 : bw;
    for (int i = 0; i < n; i++) {
        int cx = px(&f, i);
        if (isfinite(v[i])) {
            double vv = fmin(fmax(v[i], 0), f.hi_y);
            int top = py(&f, vv);
            rcv_draw_rect_fill(out, cx - bw / 2, top, bw, f.y1 - top, (rcv_rgb){70, 120, 200});
            snprintf(buf, sizeof buf, fmt ? fmt : "%.1f", v[i]);
            if (rcv_text_width(buf, 1) <= slot) rcv_draw_text(out, cx - rcv_text_width(buf, 1) / 2, top - 10, buf, 1, BLACK);
        }
        char cut[128];
        if (labels && labels[i])
            rcv_draw_text_vertical(out, cx - 3, f.y1 + 6, fit_label(labels[i], lab, cut, sizeof cut), 1, BLACK);
    }
}

// --- training logs ---

void rcv_train_log_free(rcv_train_log *l) {
    free(l->epoch);
    free(l->train_loss);
    free(l->train_acc);
    free(l->test_loss);
    free(l->test_top1);
    free(l->test_top5);
    memset(l, 0, sizeof *l);
}

static double num_or_nan(const rcv_json_value *o, const char *key) {
    const rcv_json_value *v = rcv_json_get(o, key);
    return v && v->type == RCV_JSON_NUMBER ? v->num : NAN;
}

int rcv_train_log_load(const char *path, rcv_train_log *l) {
    memset(l, 0, sizeof *l);
    uint8_t *data;
    size_t len;
    if (rcv_file_read(path, &data, &len)) return -1;
    int cap = 0, lineno = 0;
    char *p = (char *)data, *end = p + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        int blank = 1;
        for (size_t i = 0; i < n; i++) blank &= p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
        if (!blank) {
            rcv_json_value v;
            int perr = rcv_json_parse(p, n, &v);
            if (perr || v.type != RCV_JSON_OBJECT || !rcv_json_get(&v, "epoch")) {
                char msg[256];
                snprintf(msg, sizeof msg, "%s", perr ? rcv_error() : "expected a JSON object with an \"epoch\" key");
                rcv_json_free(&v);
                free(data);
                rcv_train_log_free(l);
                return rcv_fail("%s:%d: %s", path, lineno, msg);
            }
            if (l->n == cap) {
                cap = cap ? 2 * cap : 16;
                double **cols[6] = {&l->epoch, &l->train_loss, &l->train_acc, &l->test_loss, &l->test_top1, &l->test_top5};
                for (int c = 0; c < 6; c++) *cols[c] = rcv_xrealloc(*cols[c], (size_t)cap * sizeof(double));
            }
            l->epoch[l->n] = num_or_nan(&v, "epoch");
            l->train_loss[l->n] = num_or_nan(&v, "train_loss");
            l->train_acc[l->n] = num_or_nan(&v, "train_acc");
            l->test_loss[l->n] = num_or_nan(&v, "test_loss");
            l->test_top1[l->n] = num_or_nan(&v, "test_top1");
            l->test_top5[l->n] = num_or_nan(&v, "test_top5");
            l->n++;
            rcv_json_free(&v);
        }
        p += n + 1;
    }
    free(data);
    return 0;
}

int rcv_plot_training_png(const char *jsonl, const char *png, const char *title) {
    rcv_train_log l;
    if (rcv_train_log_load(jsonl, &l)) return -1;
    if (l.n == 0) return rcv_fail("%s: no epochs logged", jsonl);
    double *tr = rcv_xmalloc((size_t)l.n * sizeof(double)), *te = rcv_xmalloc((size_t)l.n * sizeof(double));
    for (int i = 0; i < l.n; i++) tr[i] = 100 * l.train_acc[i], te[i] = 100 * l.test_top1[i];
    rcv_rgb blue = {31, 119, 180}, orange = {255, 127, 14};
    rcv_series loss[2] = {{"train", l.epoch, l.train_loss, l.n, blue}, {"validation", l.epoch, l.test_loss, l.n, orange}};
    rcv_series acc[2] = {{"train", l.epoch, tr, l.n, blue}, {"validation", l.epoch, te, l.n, orange}};
    rcv_image a, b, both;
    char t1[200], t2[200];
    snprintf(t1, sizeof t1, "%s%sloss", title ? title : "", title ? ": " : "");
    snprintf(t2, sizeof t2, "%s%saccuracy", title ? title : "", title ? ": " : "");
    rcv_plot_lines(&a, 420, 300, t1, "epoch", "cross-entropy", loss, 2);
    rcv_plot_lines(&b, 420, 300, t2, "epoch", "top-1 (%)", acc, 2);
    rcv_canvas_new(&both, 840, 300, WHITE);
    rcv_draw_blit(&both, &a, 0, 0, 1);
    rcv_draw_blit(&both, &b, 420, 0, 1);
    int rc = rcv_png_write(png, &both);
    rcv_image_free(&a);
    rcv_image_free(&b);
    rcv_image_free(&both);
    free(tr);
    free(te);
    rcv_train_log_free(&l);
    return rc;
}
