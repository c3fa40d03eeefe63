// robustcv report: results.json -> report.html (self-contained) + report.md. Schema: docs/report.md.
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/json.h"
#include "robustcv/metrics.h"
#include "robustcv/plot.h"
#include "robustcv/report.h"

// --- growable text ---
typedef struct { char *buf; size_t len, cap; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->buf = rcv_xrealloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) RCV_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < (int)sizeof small) {
        sb_put(b, small, (size_t)n);
        return;
    }
    char *big = rcv_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_put(b, big, (size_t)n);
    free(big);
}

static void sb_html(sbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': sb_put(b, "&lt;", 4); break;
        case '>': sb_put(b, "&gt;", 4); break;
        case '&': sb_put(b, "&amp;", 5); break;
        case '"': sb_put(b, "&quot;", 6); break;
        default: sb_put(b, s, 1);
        }
    }
}

static void sb_md(sbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') sb_put(b, "\\|", 2);
        else if (*s == '\n') sb_put(b, " ", 1);
        else sb_put(b, s, 1);
    }
}

char *rcv_base64(const unsigned char *d, unsigned long len) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = rcv_xmalloc((len + 2) / 3 * 4 + 1), *p = o;
    unsigned long i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
        *p++ = A[v >> 18], *p++ = A[v >> 12 & 63], *p++ = A[v >> 6 & 63], *p++ = A[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < len ? (unsigned)d[i + 1] << 8 : 0);
        *p++ = A[v >> 18], *p++ = A[v >> 12 & 63];
        *p++ = i + 1 < len ? A[v >> 6 & 63] : '=';
        *p++ = '=';
    }
    *p = 0;
    return o;
}

// --- the report being built ---
typedef struct {
    const char *dir;
    sbuf html, md;
    const rcv_json_value *models;
    int n_models;
    char err[512];
    int failed, missing, figures;
} rep;

static void type_error(rep *r, const char *path, const char *want, const rcv_json_value *v) {
    if (r->failed) return;
    r->failed = 1;
    snprintf(r->err, sizeof r->err, "%s/results.json: %s: expected %s, found %s", r->dir, path, want,
             rcv_json_type_name(v->type));
}

// Member `key` of o with type t; NULL when absent or null; a wrong type records an error.
static const rcv_json_value *get(rep *r, const rcv_json_value *o, const char *path, const char *key, rcv_json_type t) {
    const rcv_json_value *v = o ? rcv_json_get(o, key) : NULL;
    if (!v || v->type == RCV_JSON_NULL) return NULL;
    if (v->type != t) {
        char p[300];
        if (snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key) >= (int)sizeof p) p[sizeof p - 2] = '~';
        type_error(r, p, rcv_json_type_name(t), v);
        return NULL;
    }
    return v;
}

static double num(rep *r, const rcv_json_value *o, const char *path, const char *key) {
    const rcv_json_value *v = get(r, o, path, key, RCV_JSON_NUMBER);
    return v ? v->num : NAN;
}

static const char *str(rep *r, const rcv_json_value *o, const char *path, const char *key, const char *dflt) {
    const rcv_json_value *v = get(r, o, path, key, RCV_JSON_STRING);
    return v ? v->str : dflt;
}

static const rcv_json_value *model(rep *r, int i) { return &r->models->items[i]; }
static void mpath(int i, char *buf, size_t n) { snprintf(buf, n, "models[%d]", i); }
static const char *mname(rep *r, int i) {
    char p[32];
    mpath(i, p, sizeof p);
    const char *s = str(r, model(r, i), p, "name", NULL);
    return s ? s : "(unnamed)";
}
static const rcv_json_value *mget(rep *r, int i, const char *key, rcv_json_type t) {
    char p[32];
    mpath(i, p, sizeof p);
    return get(r, model(r, i), p, key, t);
}

static void pct(char *buf, size_t n, double v) {
    if (isfinite(v)) snprintf(buf, n, "%.2f%%", 100 * v);
    else snprintf(buf, n, "-");
}

// --- tables: first row is the header; cells are plain text ---
typedef struct { int cols, n; char **cell; } table;

static void t_init(table *t, int cols) { t->cols = cols, t->n = 0, t->cell = NULL; }
static void t_cell(table *t, const char *fmt, ...) RCV_PRINTF(2, 3);
static void t_cell(table *t, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t->cell = rcv_xrealloc(t->cell, (size_t)(t->n + 1) * sizeof(char *));
    t->cell[t->n++] = rcv_xstrdup(buf);
}
static void t_free(table *t) {
    for (int i = 0; i < t->n; i++) free(t->cell[i]);
    free(t->cell);
    t->cell = NULL;
    t->n = 0;
}
static void t_pct(table *t, double v) {
    char b[32];
    pct(b, sizeof b, v);
    t_cell(t, "%s", b);
}

static void t_emit(rep *r, table *t) {
    int rows = t->n / t->cols;
    sb_printf(&r->html, "<table>\n");
    for (int i = 0; i < rows; i++) {
        sb_printf(&r->html, "<tr>");
        for (int c = 0; c < t->cols; c++) {
            const char *tag = i == 0 ? "th" : "td";
            sb_printf(&r->html, "<%s>", tag);
            sb_html(&r->html, t->cell[i * t->cols + c]);
            sb_printf(&r->html, "</%s>", tag);
        }
        sb_printf(&r->html, "</tr>\n");
        sb_printf(&r->md, "|");
        for (int c = 0; c < t->cols; c++) {
            sb_printf(&r->md, " ");
            sb_md(&r->md, t->cell[i * t->cols + c]);
            sb_printf(&r->md, " |");
        }
        sb_printf(&r->md, "\n");
        if (i == 0) {
            sb_printf(&r->md, "|");
            for (int c = 0; c < t->cols; c++) sb_printf(&r->md, "---|");
            sb_printf(&r->md, "\n");
        }
    }
    sb_printf(&r->html, "</table>\n");
    sb_printf(&r->md, "\n");
    t_free(t);
}

static void para(rep *r, const char *cls, const char *text) {
    sb_printf(&r->html, "<p%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
    sb_html(&r->html, text);
    sb_printf(&r->html, "</p>\n");
    sb_printf(&r->md, "%s%s%s\n\n", cls ? "_" : "", text, cls ? "_" : "");
}

static void section(rep *r, const char *id, const char *title) {
    sb_printf(&r->html, "<section id=\"%s\">\n<h2>", id);
    sb_html(&r->html, title);
    sb_printf(&r->html, "</h2>\n");
    sb_printf(&r->md, "## %s\n\n", title);
}
static void end_section(rep *r) { sb_printf(&r->html, "</section>\n"); }
static void nodata(rep *r, const char *what) {
    char buf[600];
    snprintf(buf, sizeof buf, "No data: %s", what);
    para(r, "nodata", buf);
}

static void resolve(rep *r, const char *rel, char *out, size_t n) {
    if (rel[0] == '/') snprintf(out, n, "%s", rel);
    else snprintf(out, n, "%s/%s", r->dir, rel);
}

// Embeds an image file (path relative to the run directory, or absolute).
static void image(rep *r, const char *rel, const char *caption) {
    char path[1200];
    resolve(r, rel, path, sizeof path);
    uint8_t *data;
    size_t len;
    if (rcv_file_read(path, &data, &len)) {
        fprintf(stderr, "robustcv report: warning: %s\n", rcv_error());
        char msg[1300];
        snprintf(msg, sizeof msg, "image not found: %s", rel);
        para(r, "missing", msg);
        r->missing++;
        return;
    }
    const char *mime = len >= 3 && data[0] == 0xff && data[1] == 0xd8 ? "image/jpeg" : "image/png";
    char *b64 = rcv_base64(data, len);
    sb_printf(&r->html, "<figure><img src=\"data:%s;base64,", mime);
    sb_put(&r->html, b64, strlen(b64));
    sb_printf(&r->html, "\" alt=\"");
    sb_html(&r->html, caption ? caption : rel);
    sb_printf(&r->html, "\">");
    if (caption) {
        sb_printf(&r->html, "<figcaption>");
        sb_html(&r->html, caption);
        sb_printf(&r->html, "</figcaption>");
    }
    sb_printf(&r->html, "</figure>\n");
    sb_printf(&r->md, "![%s](%s)\n\n", caption ? caption : "", rel);
    if (caption) sb_printf(&r->md, "_%s_\n\n", caption);
    free(b64);
    free(data);
    r->figures++;
}

// A figure drawn by the report into report_files/<name>.png, then embedded.
static void drawn(rep *r, const rcv_image *im, const char *name, const char *caption) {
    char rel[300], path[1200];
    snprintf(rel, sizeof rel, "report_files/%s.png", name);
    resolve(r, rel, path, sizeof path);
    if (rcv_png_write(path, im)) {
        if (!r->failed) {
            r->failed = 1;
            snprintf(r->err, sizeof r->err, "%s", rcv_error());
        }
        return;
    }
    image(r, rel, caption);
}

// Names of the members of object `key` over all models, in order of first appearance.
static int union_keys(rep *r, const char *key, const char **names, int max) {
    int n = 0;
    for (int i = 0; i < r->n_models; i++) {
        const rcv_json_value *o = mget(r, i, key, RCV_JSON_OBJECT);
        for (int j = 0; o && j < o->n; j++) {
            int seen = 0;
            for (int k = 0; k < n; k++) seen |= !strcmp(names[k], o->keys[j]);
            if (!seen && n < max) names[n++] = o->keys[j];
        }
    }
    return n;
}

// --- sections ---

static void sec_models(rep *r) {
    section(r, "models", "Models");
    if (r->n_models == 0) {
        nodata(r, "results.json lists no models.");
    } else {
        table t;
        t_init(&t, 8);
        const char *h[8] = {"#", "Model", "Architecture", "Recipe", "Checkpoint", "Clean top-1", "Clean top-5", "Loss"};
        for (int c = 0; c < 8; c++) t_cell(&t, "%s", h[c]);
        for (int i = 0; i < r->n_models; i++) {
            char p[32];
            mpath(i, p, sizeof p);
            const rcv_json_value *m = model(r, i), *cl = mget(r, i, "clean", RCV_JSON_OBJECT);
            t_cell(&t, "(%d)", i + 1);
            t_cell(&t, "%s", mname(r, i));
            t_cell(&t, "%s", str(r, m, p, "arch", "-"));
            t_cell(&t, "%s", str(r, m, p, "recipe", "-"));
            t_cell(&t, "%s", str(r, m, p, "checkpoint", "-"));
            char cp[64];
            snprintf(cp, sizeof cp, "%s.clean", p);
            t_pct(&t, num(r, cl, cp, "top1"));
            t_pct(&t, num(r, cl, cp, "top5"));
            double l = num(r, cl, cp, "loss");
            if (isfinite(l)) t_cell(&t, "%.4f", l);
            else t_cell(&t, "-");
        }
        t_emit(r, &t);
    }
    end_section(r);
}

static void sec_training(rep *r) {
    section(r, "training", "Training curves (Figure 6)");
    int any = 0;
    for (int i = 0; i < r->n_models; i++) {
        const rcv_json_value *v = mget(r, i, "metrics_jsonl", RCV_JSON_STRING);
        if (!v) continue;
        any = 1;
        char path[1200], name[64], cap[300];
        resolve(r, v->str, path, sizeof path);
        snprintf(name, sizeof name, "training_%d", i + 1);
        snprintf(cap, sizeof cap, "(%d) %s: loss and top-1 accuracy per epoch, train and validation", i + 1, mname(r, i));
        char png[1300];
        snprintf(png, sizeof png, "%s/report_files/%s.png", r->dir, name);
        if (rcv_plot_training_png(path, png, mname(r, i))) {
            fprintf(stderr, "robustcv report: warning: %s\n", rcv_error());
            char msg[1300];
            snprintf(msg, sizeof msg, "training log not readable: %s", v->str);
            para(r, "missing", msg);
            r->missing++;
            continue;
        }
        char rel[300];
        snprintf(rel, sizeof rel, "report_files/%s.png", name);
        image(r, rel, cap);
    }
    if (!any) nodata(r, "no model has a \"metrics_jsonl\" training log.");
    end_section(r);
}

static void sec_denoised(rep *r) {
    section(r, "denoised", "Normal and denoised validation sets");
    table t;
    t_init(&t, 4);
    t_cell(&t, "Model");
    t_cell(&t, "Normal top-1");
    t_cell(&t, "Denoised top-1");
    t_cell(&t, "Denoised top-5");
    int rows = 0;
    for (int i = 0; i < r->n_models; i++) {
        char p[64];
        snprintf(p, sizeof p, "models[%d].denoised", i);
        const rcv_json_value *d = mget(r, i, "denoised", RCV_JSON_OBJECT), *c = mget(r, i, "clean", RCV_JSON_OBJECT);
        if (!d) continue;
        rows++;
        t_cell(&t, "(%d) %s", i + 1, mname(r, i));
        t_pct(&t, num(r, c, "clean", "top1"));
        t_pct(&t, num(r, d, p, "top1"));
        t_pct(&t, num(r, d, p, "top5"));
    }
    if (rows) t_emit(r, &t);
    else {
        t_free(&t);
        nodata(r, "no model has \"denoised\" results (NL-means denoised test set).");
    }
    end_section(r);
}

// A table of accuracies by name (rows) and model (columns) from models[i][key][name] (a top-1
// fraction), with the clean top-1 as first row, plus one bar chart per model.
static void named_section(rep *r, const char *key, const char *id, const char *title, const char *what,
                          const char *bar_title) {
    section(r, id, title);
    const char *names[256];
    int n = union_keys(r, key, names, 256);
    if (n == 0) {
        nodata(r, what);
        end_section(r);
        return;
    }
    table t;
    t_init(&t, 1 + r->n_models);
    t_cell(&t, "Set");
    for (int i = 0; i < r->n_models; i++) t_cell(&t, "(%d) %s top-1", i + 1, mname(r, i));
    t_cell(&t, "clean");
    for (int i = 0; i < r->n_models; i++) t_pct(&t, num(r, mget(r, i, "clean", RCV_JSON_OBJECT), "clean", "top1"));
    for (int k = 0; k < n; k++) {
        t_cell(&t, "%s", names[k]);
        for (int i = 0; i < r->n_models; i++) {
            char p[300];
            snprintf(p, sizeof p, "models[%d].%s", i, key);
            t_pct(&t, num(r, mget(r, i, key, RCV_JSON_OBJECT), p, names[k]));
        }
    }
    t_emit(r, &t);
    for (int i = 0; i < r->n_models; i++) {
        const rcv_json_value *o = mget(r, i, key, RCV_JSON_OBJECT);
        if (!o || !o->n) continue;
        const char *labels[257];
        double v[257];
        int nb = 0;
        labels[nb] = "clean";
        v[nb++] = 100 * num(r, mget(r, i, "clean", RCV_JSON_OBJECT), "clean", "top1");
        for (int k = 0; k < n; k++) {
            const rcv_json_value *x = rcv_json_get(o, names[k]);
            labels[nb] = names[k];
            v[nb++] = x && x->type == RCV_JSON_NUMBER ? 100 * x->num : NAN;
        }
        rcv_image im;
        char title2[200], name[64], cap[300];
        snprintf(title2, sizeof title2, "(%d) %s", i + 1, mname(r, i));
        int w = 90 + 34 * nb;
        rcv_plot_bars(&im, w < 360 ? 360 : w, 320, title2, "top-1 (%)", labels, v, nb, 100, "%.1f");
        snprintf(name, sizeof name, "%s_%d", id, i + 1);
        snprintf(cap, sizeof cap, "%s: %s", title2, bar_title);
        drawn(r, &im, name, cap);
        rcv_image_free(&im);
    }
    end_section(r);
}

static void sec_corruptions(rep *r, const rcv_json_value *root) {
    section(r, "corruptions", "Common corruptions: corruption error and mCE");
    const char *names[64];
    int nc = 0;
    for (int i = 0; i < r->n_models; i++) {
        char p[64];
        snprintf(p, sizeof p, "models[%d].corruptions", i);
        const rcv_json_value *e = get(r, mget(r, i, "corruptions", RCV_JSON_OBJECT), p, "errors", RCV_JSON_OBJECT);
        for (int j = 0; e && j < e->n; j++) {
            int seen = 0;
            for (int k = 0; k < nc; k++) seen |= !strcmp(names[k], e->keys[j]);
            if (!seen && nc < 64) names[nc++] = e->keys[j];
        }
    }
    if (nc == 0) {
        nodata(r, "no model has \"corruptions\" errors (15 corruptions x 5 severities).");
        end_section(r);
        return;
    }
    const char *base = str(r, root, "", "corruption_baseline", NULL);
    int bi = -1;
    for (int i = 0; base && i < r->n_models; i++)
        if (!strcmp(mname(r, i), base)) bi = i;
    char note[400];
    if (bi < 0)
        snprintf(note, sizeof note, "No baseline model%s%s%s: corruption errors are shown without CE and mCE "
                 "(set \"corruption_baseline\" to a model name).", base ? " named '" : "", base ? base : "", base ? "' in models" : "");
    else
        snprintf(note, sizeof note, "CE_c = sum_s E_s,c / sum_s E^base_s,c and relative CE_c = sum_s (E_s,c - E_clean) / "
                 "sum_s (E^base_s,c - E^base_clean) (Hendrycks & Dietterich 2019), baseline (%d) %s; errors are top-1 "
                 "errors averaged over severities.", bi + 1, base);
    para(r, NULL, note);
    // Per model: errors (nc x S), CE and relative CE when the baseline covers the same corruptions.
    table t;
    t_init(&t, 1 + 2 * r->n_models);
    t_cell(&t, "Corruption");
    for (int i = 0; i < r->n_models; i++) {
        t_cell(&t, "(%d) error", i + 1);
        t_cell(&t, "(%d) CE", i + 1);
    }
    double *ce = rcv_xmalloc((size_t)r->n_models * nc * sizeof(double)), *rce = rcv_xmalloc((size_t)r->n_models * nc * sizeof(double));
    double *mean_err = rcv_xmalloc((size_t)r->n_models * nc * sizeof(double));
    double *mce = rcv_xmalloc((size_t)r->n_models * sizeof(double)), *rmce = rcv_xmalloc((size_t)r->n_models * sizeof(double));
    for (int i = 0; i < r->n_models; i++) {
        mce[i] = rmce[i] = NAN;
        for (int c = 0; c < nc; c++) ce[i * nc + c] = rce[i * nc + c] = mean_err[i * nc + c] = NAN;
        char p[64];
        snprintf(p, sizeof p, "models[%d].corruptions", i);
        const rcv_json_value *e = get(r, mget(r, i, "corruptions", RCV_JSON_OBJECT), p, "errors", RCV_JSON_OBJECT);
        const rcv_json_value *be = bi >= 0 ? rcv_json_get(rcv_json_get(model(r, bi), "corruptions"), "errors") : NULL;
        if (!e) continue;
        int S = -1, ok = 1;
        double *err = rcv_xcalloc((size_t)nc * 64, sizeof(double)), *berr = rcv_xcalloc((size_t)nc * 64, sizeof(double));
        int used = 0;
        for (int c = 0; c < nc; c++) {
            const rcv_json_value *a = rcv_json_get(e, names[c]);
            if (!a) continue;
            if (a->type != RCV_JSON_ARRAY || a->n < 1 || a->n > 64) {
                char q[300];
                snprintf(q, sizeof q, "%s.errors.%s", p, names[c]);
                type_error(r, q, "an array of 1..64 errors (one per severity)", a);
                ok = 0;
                break;
            }
            double s = 0;
            for (int k = 0; k < a->n; k++) s += a->items[k].type == RCV_JSON_NUMBER ? a->items[k].num : NAN;
            mean_err[i * nc + c] = s / a->n;
            if (S < 0) S = a->n;
            const rcv_json_value *b = be && be->type == RCV_JSON_OBJECT ? rcv_json_get(be, names[c]) : NULL;
            if (a->n != S || !b || b->type != RCV_JSON_ARRAY || b->n != S) {
                ok = 0; // CE needs the same severities for every corruption and the baseline
                continue;
            }
            for (int k = 0; k < S; k++) {
                err[used * S + k] = a->items[k].num;
                berr[used * S + k] = b->items[k].type == RCV_JSON_NUMBER ? b->items[k].num : NAN;
            }
            used++;
        }
        double clean = 1 - num(r, mget(r, i, "clean", RCV_JSON_OBJECT), "clean", "top1");
        double bclean = bi >= 0 ? 1 - num(r, mget(r, bi, "clean", RCV_JSON_OBJECT), "clean", "top1") : NAN;
        if (ok && bi >= 0 && used > 0) {
            double cev[64], rcev[64];
            if (rcv_metric_corruption(err, berr, used, S, clean, bclean, cev, rcev, &mce[i], &rmce[i]) == 0) {
                int u = 0;
                for (int c = 0; c < nc; c++)
                    if (rcv_json_get(e, names[c])) ce[i * nc + c] = cev[u], rce[i * nc + c] = rcev[u], u++;
            } else {
                fprintf(stderr, "robustcv report: warning: model (%d): %s\n", i + 1, rcv_error());
            }
        }
        free(err);
        free(berr);
    }
    for (int c = 0; c < nc; c++) {
        t_cell(&t, "%s", names[c]);
        for (int i = 0; i < r->n_models; i++) {
            t_pct(&t, mean_err[i * nc + c]);
            t_pct(&t, ce[i * nc + c]);
        }
    }
    t_cell(&t, "mCE");
    for (int i = 0; i < r->n_models; i++) {
        t_cell(&t, "%s", "");
        t_pct(&t, mce[i]);
    }
    t_cell(&t, "relative mCE");
    for (int i = 0; i < r->n_models; i++) {
        t_cell(&t, "%s", "");
        t_pct(&t, rmce[i]);
    }
    t_emit(r, &t);
    for (int i = 0; i < r->n_models; i++) {
        const char *labels[64];
        double v[64];
        int any = 0;
        for (int c = 0; c < nc; c++) {
            labels[c] = names[c];
            v[c] = 100 * (1 - mean_err[i * nc + c]);
            any |= isfinite(v[c]);
        }
        if (!any) continue;
        rcv_image im;
        char title2[200], name[64], cap[300];
        snprintf(title2, sizeof title2, "(%d) %s", i + 1, mname(r, i));
        int w = 90 + 34 * nc;
        rcv_plot_bars(&im, w < 360 ? 360 : w, 340, title2, "top-1 (%)", labels, v, nc, 100, "%.0f");
        snprintf(name, sizeof name, "corruptions_%d", i + 1);
        snprintf(cap, sizeof cap, "%s: top-1 accuracy per corruption, averaged over severities", title2);
        drawn(r, &im, name, cap);
        rcv_image_free(&im);
    }
    free(ce);
    free(rce);
    free(mean_err);
    free(mce);
    free(rmce);
    end_section(r);
}

// FGSM or PGD: rows by eps (and steps), one column per model.
static int attack_table(rep *r, const char *key, const char *label) {
    double eps[128];
    int steps[128], n = 0;
    for (int i = 0; i < r->n_models; i++) {
        const rcv_json_value *a = mget(r, i, key, RCV_JSON_ARRAY);
        for (int j = 0; a && j < a->n; j++) {
            char p[64];
            snprintf(p, sizeof p, "models[%d].%s[%d]", i, key, j);
            double e = num(r, &a->items[j], p, "eps"), st = num(r, &a->items[j], p, "steps");
            int s = isfinite(st) ? (int)st : 0, seen = 0;
            for (int k = 0; k < n; k++) seen |= eps[k] == e && steps[k] == s;
            if (!seen && n < 128 && isfinite(e)) eps[n] = e, steps[n++] = s;
        }
    }
    if (n == 0) return 0;
    for (int a = 1; a < n; a++) // insertion sort by (eps, steps)
        for (int b = a; b > 0 && (eps[b] < eps[b - 1] || (eps[b] == eps[b - 1] && steps[b] < steps[b - 1])); b--) {
            double te = eps[b];
            int ts = steps[b];
            eps[b] = eps[b - 1], steps[b] = steps[b - 1], eps[b - 1] = te, steps[b - 1] = ts;
        }
    table t;
    t_init(&t, 1 + r->n_models);
    t_cell(&t, "%s", label);
    for (int i = 0; i < r->n_models; i++) t_cell(&t, "(%d) %s top-1", i + 1, mname(r, i));
    for (int k = 0; k < n; k++) {
        if (steps[k]) t_cell(&t, "eps %g, %d steps", eps[k], steps[k]);
        else t_cell(&t, "eps %g", eps[k]);
        for (int i = 0; i < r->n_models; i++) {
            const rcv_json_value *a = mget(r, i, key, RCV_JSON_ARRAY);
            double v = NAN;
            for (int j = 0; a && j < a->n; j++) {
                const rcv_json_value *e = rcv_json_get(&a->items[j], "eps"), *s = rcv_json_get(&a->items[j], "steps");
                int sv = s && s->type == RCV_JSON_NUMBER ? (int)s->num : 0;
                if (e && e->type == RCV_JSON_NUMBER && e->num == eps[k] && sv == steps[k]) {
                    const rcv_json_value *x = rcv_json_get(&a->items[j], "top1");
                    v = x && x->type == RCV_JSON_NUMBER ? x->num : NAN;
                }
            }
            t_pct(&t, v);
        }
    }
    t_emit(r, &t);
    return 1;
}

static void sec_adversarial(rep *r) {
    section(r, "adversarial", "White-box attacks: FGSM and PGD");
    para(r, NULL, "Top-1 accuracy on the test set attacked with the model's own gradients; eps in [0,1] pixel units "
                  "(L-infinity). eps 0 is the clean accuracy.");
    int a = attack_table(r, "fgsm", "FGSM");
    int b = attack_table(r, "pgd", "PGD");
    if (!a) nodata(r, "no model has \"fgsm\" results.");
    if (!b) nodata(r, "no model has \"pgd\" results.");
    end_section(r);
}

// One row per (model, eps) of the "autoattack" arrays, then the ensemble's.
static int aa_rows(rep *r, const rcv_json_value *a, const char *path, const char *name, table *t, const char **att,
                   int n_att) {
    int rows = 0;
    for (int j = 0; a && j < a->n; j++) {
        char p[96];
        snprintf(p, sizeof p, "%s[%d]", path, j);
        const rcv_json_value *q = &a->items[j];
        t_cell(t, "%s", name);
        t_cell(t, "%s %g", str(r, q, p, "norm", "Linf"), num(r, q, p, "eps"));
        t_cell(t, "%.0f", num(r, q, p, "images"));
        t_pct(t, num(r, q, p, "clean"));
        t_pct(t, num(r, q, p, "pgd"));
        t_pct(t, num(r, q, p, "autoattack"));
        char pa[128];
        snprintf(pa, sizeof pa, "%s.after", p);
        const rcv_json_value *after = get(r, q, p, "after", RCV_JSON_OBJECT);
        for (int k = 0; k < n_att; k++) t_pct(t, after ? num(r, after, pa, att[k]) : NAN);
        const rcv_json_value *w = get(r, q, p, "warnings", RCV_JSON_ARRAY);
        char wb[400] = "";
        for (int k = 0; w && k < w->n; k++)
            if (w->items[k].type == RCV_JSON_STRING)
                snprintf(wb + strlen(wb), sizeof wb - strlen(wb), "%s%s", k ? "; " : "", w->items[k].str);
        t_cell(t, "%s", *wb ? wb : "-");
        rows++;
    }
    return rows;
}

static void sec_autoattack(rep *r, const rcv_json_value *root) {
    section(r, "autoattack", "AutoAttack beside PGD");
    para(r, NULL, "Robust accuracy under AutoAttack (Croce & Hein 2020; standard version: APGD-CE, APGD-T, FAB-T, "
                  "Square, each on the images still robust, the worst case per image), the evaluation RobustBench "
                  "accepts, beside PGD on the same images. The columns after it are the robust accuracy left after "
                  "each attack in turn. PGD alone overestimates robustness where gradients are masked (typical of "
                  "FGSM training); the AutoAttack number is the one to publish. The ensemble is attacked as one "
                  "model (the log of its members' mean softmax). Both run on the first images of the test set only "
                  "(the images column), which the clean column is measured on too.");
    const char *att[4] = {"apgd-ce", "apgd-t", "fab-t", "square"};
    table t;
    t_init(&t, 11);
    const char *h[11] = {"Model", "Threat", "Images", "Clean", "PGD", "AutoAttack", "after APGD-CE", "after APGD-T",
                         "after FAB-T", "after Square", "Warnings"};
    for (int c = 0; c < 11; c++) t_cell(&t, "%s", h[c]);
    int rows = 0;
    for (int i = 0; i < r->n_models; i++) {
        char p[64], nm[200];
        snprintf(p, sizeof p, "models[%d].autoattack", i);
        snprintf(nm, sizeof nm, "(%d) %s", i + 1, mname(r, i));
        rows += aa_rows(r, mget(r, i, "autoattack", RCV_JSON_ARRAY), p, nm, &t, att, 4);
    }
    // The ensemble's members when results.json names them (robustcv run: not the models evaluated
    // beside them), else all.
    char ens[200] = "ensemble of all (attacked as one)";
    const rcv_json_value *em = get(r, root, "", "ensemble_members", RCV_JSON_ARRAY);
    if (em && em->n) {
        int o = snprintf(ens, sizeof ens, "ensemble of ");
        for (int k = 0; k < em->n && o < (int)sizeof ens - 40; k++) {
            char p[48];
            snprintf(p, sizeof p, "ensemble_members[%d]", k);
            double v = em->items[k].num;
            if (em->items[k].type != RCV_JSON_NUMBER) {
                type_error(r, p, "number", &em->items[k]);
                break;
            }
            if (!(v >= 0 && v < r->n_models && v == floor(v))) {
                if (!r->failed)
                    snprintf(r->err, sizeof r->err, "%s/results.json: %s: %g, expected a model index in 0..%d", r->dir,
                             p, v, r->n_models - 1);
                r->failed = 1;
                break;
            }
            o += snprintf(ens + o, sizeof ens - (size_t)o, "%s(%d)", k ? ", " : "", (int)em->items[k].num + 1);
        }
        snprintf(ens + o, sizeof ens - (size_t)o, " (attacked as one)");
    }
    rows += aa_rows(r, get(r, root, "", "ensemble_autoattack", RCV_JSON_ARRAY), "ensemble_autoattack", ens, &t, att, 4);
    if (rows) t_emit(r, &t);
    else {
        t_free(&t);
        nodata(r, "no model has \"autoattack\" results (robustcv evaluate --autoattack N).");
    }
    end_section(r);
}

// A percent string of a card ("91.08"), or NaN.
static double card_pct(const rcv_json_value *c, const char *key) {
    const rcv_json_value *v = rcv_json_get(c, key);
    return v && v->type == RCV_JSON_STRING ? atof(v->str) / 100 : NAN;
}

static void sec_leaderboard(rep *r, const rcv_json_value *root) {
    section(r, "leaderboard", "Leaderboard (model cards)");
    const rcv_json_value *cards = get(r, root, "", "cards", RCV_JSON_ARRAY);
    if (!cards || !cards->n) {
        nodata(r, "results.json lists no model \"cards\".");
        end_section(r);
        return;
    }
    para(r, NULL, "One model card (card.json, RobustBench's fields) per evaluated model, sorted by AutoAttack robust "
                  "accuracy; a model without it sorts last. Images: the test images behind Clean / behind AutoAttack "
                  "and PGD (an ensemble's clean accuracy is on its AutoAttack images).");
    int n = cards->n, *order = rcv_xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) order[i] = i;
    for (int a = 1; a < n; a++) // insertion sort, descending, NaN last
        for (int b = a; b > 0; b--) {
            double x = card_pct(&cards->items[order[b]], "autoattack_acc"),
                   y = card_pct(&cards->items[order[b - 1]], "autoattack_acc");
            if (!(x > y || (isnan(y) && !isnan(x)))) break;
            int tmp = order[b];
            order[b] = order[b - 1], order[b - 1] = tmp;
        }
    table t;
    t_init(&t, 12);
    const char *h[12] = {"Rank", "Model", "Architecture", "Recipe", "Clean", "AutoAttack", "PGD", "Images",
                         "Threat model", "Corruptions", "mCE", "Forward passes"};
    for (int c = 0; c < 12; c++) t_cell(&t, "%s", h[c]);
    for (int k = 0; k < n; k++) {
        const rcv_json_value *c = &cards->items[order[k]];
        char p[32];
        snprintf(p, sizeof p, "cards[%d]", order[k]);
        if (c->type != RCV_JSON_OBJECT) {
            type_error(r, p, "object", c);
            break;
        }
        t_cell(&t, "%d", k + 1);
        t_cell(&t, "%s", str(r, c, p, "name", "-"));
        t_cell(&t, "%s", str(r, c, p, "architecture", "-"));
        t_cell(&t, "%s", str(r, c, p, "recipe", "-"));
        t_pct(&t, card_pct(c, "clean_acc"));
        t_pct(&t, card_pct(c, "autoattack_acc"));
        t_pct(&t, card_pct(c, "pgd_acc"));
        const rcv_json_value *ci = rcv_json_get(c, "clean_images"), *ai = rcv_json_get(c, "autoattack_images");
        if (ci && ci->type == RCV_JSON_NUMBER && ai && ai->type == RCV_JSON_NUMBER && ai->num > 0)
            t_cell(&t, "%.0f / %.0f", ci->num, ai->num);
        else if (ci && ci->type == RCV_JSON_NUMBER)
            t_cell(&t, "%.0f / -", ci->num);
        else
            t_cell(&t, "-");
        t_cell(&t, "%s %s", str(r, c, p, "threat_model", "-"), str(r, c, p, "eps", ""));
        t_pct(&t, card_pct(c, "corruptions_acc"));
        double mce = card_pct(c, "corruptions_mce");
        if (isfinite(mce)) t_cell(&t, "%.1f", 100 * mce);
        else t_cell(&t, "-");
        t_cell(&t, "%.0f", num(r, c, p, "number_forward_passes"));
    }
    free(order);
    t_emit(r, &t);
    end_section(r);
}

static void sec_certified(rep *r, const rcv_json_value *root) {
    section(r, "certified", "Certified robustness (randomized smoothing)");
    const rcv_json_value *cs = get(r, root, "", "certified", RCV_JSON_ARRAY);
    if (!cs || !cs->n) {
        nodata(r, "results.json has no \"certified\" curves (robustcv certify).");
        end_section(r);
        return;
    }
    para(r, NULL, "Certified accuracy at L2 radius r of the smoothed classifier g(x) = argmax_c P(f(x + N(0, "
                  "sigma^2 I)) = c) (Cohen, Rosenfeld & Kolter 2019, CERTIFY): the fraction of test images that g "
                  "classifies correctly with a certified radius of at least r; abstentions count as wrong.");
    rcv_series ser[8];
    double *xs[8] = {0}, *ys[8] = {0};
    char names[8][128];
    int ns = 0;
    table t;
    t_init(&t, 2);
    t_cell(&t, "Model, sigma, samples");
    t_cell(&t, "Certified accuracy at radius");
    for (int k = 0; k < cs->n && ns < 8; k++) {
        const rcv_json_value *c = &cs->items[k];
        char p[32];
        snprintf(p, sizeof p, "certified[%d]", k);
        if (c->type != RCV_JSON_OBJECT) {
            type_error(r, p, "object", c);
            break;
        }
        const rcv_json_value *rad = get(r, c, p, "radii", RCV_JSON_ARRAY);
        const rcv_json_value *acc = get(r, c, p, "certified_accuracy", RCV_JSON_ARRAY);
        if (!rad || !acc || rad->n != acc->n) continue;
        xs[ns] = rcv_xmalloc((size_t)rad->n * sizeof(double));
        ys[ns] = rcv_xmalloc((size_t)rad->n * sizeof(double));
        char cell[600] = "";
        for (int j = 0; j < rad->n; j++) {
            xs[ns][j] = rad->items[j].type == RCV_JSON_NUMBER ? rad->items[j].num : NAN;
            ys[ns][j] = acc->items[j].type == RCV_JSON_NUMBER ? 100 * acc->items[j].num : NAN;
            snprintf(cell + strlen(cell), sizeof cell - strlen(cell), "%sr=%g: %.1f%%", j ? ", " : "", xs[ns][j], ys[ns][j]);
        }
        snprintf(names[ns], sizeof names[ns], "%s, sigma %g", str(r, c, p, "name", str(r, c, p, "checkpoint", "?")),
                 num(r, c, p, "sigma"));
        t_cell(&t, "%s, n %.0f, alpha %g, %.0f images", names[ns], num(r, c, p, "n"), num(r, c, p, "alpha"),
               num(r, c, p, "images"));
        t_cell(&t, "%s", cell);
        static const rcv_rgb colors[4] = {{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {148, 103, 189}};
        ser[ns] = (rcv_series){names[ns], xs[ns], ys[ns], rad->n, colors[ns % 4]};
        ns++;
    }
    if (ns) {
        rcv_image im;
        rcv_plot_lines(&im, 640, 400, "Certified accuracy", "L2 radius", "certified accuracy (%)", ser, ns);
        drawn(r, &im, "certified", "Certified accuracy of the smoothed classifier against the L2 radius");
        rcv_image_free(&im);
        t_emit(r, &t);
    } else {
        t_free(&t);
        nodata(r, "no certified curve has matching \"radii\" and \"certified_accuracy\" arrays.");
    }
    for (int k = 0; k < ns; k++) free(xs[k]), free(ys[k]);
    end_section(r);
}

static void sec_transfer(rep *r) {
    section(r, "transfer", "Black-box transfer attacks");
    table t;
    t_init(&t, 5);
    const char *h[5] = {"Target model", "Source model", "Attack", "eps", "Target top-1"};
    for (int c = 0; c < 5; c++) t_cell(&t, "%s", h[c]);
    int rows = 0;
    for (int i = 0; i < r->n_models; i++) {
        const rcv_json_value *a = mget(r, i, "transfer", RCV_JSON_ARRAY);
        for (int j = 0; a && j < a->n; j++) {
            char p[64];
            snprintf(p, sizeof p, "models[%d].transfer[%d]", i, j);
            t_cell(&t, "(%d) %s", i + 1, mname(r, i));
            t_cell(&t, "%s", str(r, &a->items[j], p, "source", "-"));
            t_cell(&t, "%s", str(r, &a->items[j], p, "attack", "-"));
            t_cell(&t, "%g", num(r, &a->items[j], p, "eps"));
            t_pct(&t, num(r, &a->items[j], p, "top1"));
            rows++;
        }
    }
    if (rows) t_emit(r, &t);
    else {
        t_free(&t);
        nodata(r, "no model has \"transfer\" results (adversarial examples crafted on another checkpoint).");
    }
    end_section(r);
}

// One row per model that has object `key`, columns from (member, header, percent?) triples.
static void simple_section(rep *r, const char *key, const char *id, const char *title, const char *intro,
                           const char *const *members, const char *const *headers, const int *is_pct, int nm,
                           const char *what) {
    section(r, id, title);
    if (intro) para(r, NULL, intro);
    table t;
    t_init(&t, 2 + nm);
    t_cell(&t, "Model");
    t_cell(&t, "Clean top-1");
    for (int k = 0; k < nm; k++) t_cell(&t, "%s", headers[k]);
    int rows = 0;
    for (int i = 0; i < r->n_models; i++) {
        const rcv_json_value *o = mget(r, i, key, RCV_JSON_OBJECT);
        if (!o) continue;
        rows++;
        char p[64];
        snprintf(p, sizeof p, "models[%d].%s", i, key);
        t_cell(&t, "(%d) %s", i + 1, mname(r, i));
        t_pct(&t, num(r, mget(r, i, "clean", RCV_JSON_OBJECT), "clean", "top1"));
        for (int k = 0; k < nm; k++) {
            double v = num(r, o, p, members[k]);
            if (is_pct[k]) t_pct(&t, v);
            else if (isfinite(v)) t_cell(&t, "%.4g", v);
            else t_cell(&t, "-");
        }
    }
    if (rows) t_emit(r, &t);
    else {
        t_free(&t);
        nodata(r, what);
    }
    end_section(r);
}

static void sec_ensembles(rep *r, const rcv_json_value *root) {
    section(r, "ensembles", "Ensembles of every subset (Table 2)");
    const rcv_json_value *e = get(r, root, "", "ensembles", RCV_JSON_OBJECT);
    const rcv_json_value *sets = get(r, e, "ensembles", "sets", RCV_JSON_ARRAY);
    const rcv_json_value *rows = get(r, e, "ensembles", "rows", RCV_JSON_ARRAY);
    if (!e || !sets || !rows || rows->n == 0 || sets->n == 0) {
        nodata(r, "results.json has no \"ensembles\" table.");
        end_section(r);
        return;
    }
    const char *space = str(r, e, "ensembles", "space", "logits"), *ties = str(r, e, "ensembles", "vote_ties", "lowest");
    char note[600];
    snprintf(note, sizeof note, "Averaging: mean of the members' %s, then top-1 and top-5. Majority vote: each model "
             "votes for its top-1 class; ties go to %s. Majority vote has no top-5.",
             !strcmp(space, "probs") ? "softmax probabilities" : "logits",
             !strcmp(ties, "prob") ? "the class with the highest summed probability, then the lowest index"
                                   : "the lowest class index");
    para(r, NULL, note);
    int ns = sets->n;
    table t;
    t_init(&t, 1 + 2 * ns);
    t_cell(&t, "Model");
    for (int s = 0; s < ns; s++) {
        const char *sn = sets->items[s].type == RCV_JSON_STRING ? sets->items[s].str : "?";
        t_cell(&t, "%s top-1", sn);
        t_cell(&t, "%s top-5", sn);
    }
    // Singles, then averaging ensembles, then majority votes: Table 2's order.
    for (int pass = 0; pass < 3; pass++)
        for (int j = 0; j < rows->n; j++) {
            char p[64];
            snprintf(p, sizeof p, "ensembles.rows[%d]", j);
            const rcv_json_value *row = &rows->items[j], *mem = get(r, row, p, "members", RCV_JSON_ARRAY);
            if (!mem) continue;
            int single = mem->n == 1;
            if ((pass == 0) != single) continue;
            char who[400] = "";
            int o = 0;
            for (int k = 0; k < mem->n && o < (int)sizeof who - 8; k++)
                o += snprintf(who + o, sizeof who - (size_t)o, "%s(%d)", k ? ", " : "", (int)mem->items[k].num + 1);
            const char *kind = pass == 2 ? "vote" : "average";
            if (pass == 0) {
                int m = (int)mem->items[0].num;
                t_cell(&t, "(%d) %s", m + 1, m >= 0 && m < r->n_models ? mname(r, m) : "?");
            } else {
                t_cell(&t, "Ensemble %s; %s", who, pass == 1 ? "Averaging" : "Majority Vote");
            }
            const rcv_json_value *kv = get(r, row, p, kind, RCV_JSON_OBJECT);
            for (int s = 0; s < ns; s++) {
                const char *sn = sets->items[s].type == RCV_JSON_STRING ? sets->items[s].str : "";
                const rcv_json_value *sv = kv ? rcv_json_get(kv, sn) : NULL;
                const rcv_json_value *t1 = sv ? rcv_json_get(sv, "top1") : NULL, *t5 = sv ? rcv_json_get(sv, "top5") : NULL;
                t_pct(&t, t1 && t1->type == RCV_JSON_NUMBER ? t1->num : NAN);
                t_pct(&t, pass != 2 && t5 && t5->type == RCV_JSON_NUMBER ? t5->num : NAN);
            }
        }
    t_emit(r, &t);
    end_section(r);
}

static void figure_list(rep *r, const rcv_json_value *root, const char *key, const char *id, const char *title,
                        const char *what) {
    section(r, id, title);
    const rcv_json_value *a = get(r, root, "", key, RCV_JSON_ARRAY);
    if (!a || a->n == 0) nodata(r, what);
    for (int j = 0; a && j < a->n; j++) {
        char p[64];
        snprintf(p, sizeof p, "%s[%d]", key, j);
        const char *path = str(r, &a->items[j], p, "path", NULL);
        if (!path) {
            if (!r->failed) {
                r->failed = 1;
                snprintf(r->err, sizeof r->err, "%s/results.json: %s: expected an object with a \"path\"", r->dir, p);
            }
            continue;
        }
        image(r, path, str(r, &a->items[j], p, "caption", NULL));
    }
    end_section(r);
}

static const char *CSS =
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #bbb;padding:3px 8px;"
    "text-align:right}th:first-child,td:first-child{text-align:left}th{background:#eee}"
    "figure{margin:1em 0}img{max-width:100%;image-rendering:pixelated}figcaption{font-size:13px;color:#555}"
    ".nodata{color:#a60;font-style:italic}.missing{color:#c00}nav a{margin-right:1em}";

// Sets data-images / data-images-loaded on <body> once every image has decoded: a headless
// browser's --dump-dom shows whether the embedded figures rendered.
static const char *SCRIPT =
    "<script>window.addEventListener('load',function(){var im=document.images,ok=0;"
    "for(var i=0;i<im.length;i++)if(im[i].complete&&im[i].naturalWidth>0)ok++;"
    "document.body.setAttribute('data-images',String(im.length));"
    "document.body.setAttribute('data-images-loaded',String(ok));});</script>\n";

static const struct { const char *id, *title; } TOC[] = {
    {"models", "Models"}, {"training", "Training curves"}, {"denoised", "Denoised"}, {"transforms", "Transforms"},
    {"symmetries", "Symmetries"}, {"corruptions", "Corruptions"}, {"adversarial", "FGSM / PGD"},
    {"autoattack", "AutoAttack"}, {"leaderboard", "Leaderboard"}, {"certified", "Certified"},
    {"transfer", "Transfer"}, {"uap", "UAP"}, {"calibration", "Calibration"}, {"tta", "TTA"},
    {"ensembles", "Ensembles"}, {"cams", "Class activation maps"}, {"figures", "Other figures"},
};

int rcv_report_write(const char *run_dir, int *n_missing) {
    char path[1200];
    snprintf(path, sizeof path, "%s/results.json", run_dir);
    uint8_t *text;
    size_t len;
    if (rcv_file_read(path, &text, &len)) return -1;
    rcv_json_value root;
    if (rcv_json_parse((const char *)text, len, &root)) {
        free(text);
        rcv_json_free(&root);
        return rcv_fail_ctx("%s: ", path);
    }
    free(text);
    rep r = {0};
    r.dir = run_dir;
    int rc = -1;
    if (root.type != RCV_JSON_OBJECT) {
        rcv_fail("%s: expected a JSON object at the top, found %s", path, rcv_json_type_name(root.type));
        goto out;
    }
    r.models = get(&r, &root, "", "models", RCV_JSON_ARRAY);
    if (!r.models) {
        rcv_fail("%s: %s", path, r.failed ? r.err : "expected a \"models\" array (it may be empty)");
        goto out;
    }
    r.n_models = r.models->n;
    for (int i = 0; i < r.n_models; i++)
        if (r.models->items[i].type != RCV_JSON_OBJECT) {
            rcv_fail("%s: models[%d]: expected an object, found %s", path, i, rcv_json_type_name(r.models->items[i].type));
            goto out;
        }
    snprintf(path, sizeof path, "%s/report_files", run_dir);
    if (mkdir(path, 0777) && errno != EEXIST) {
        rcv_fail("cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    const char *title = str(&r, &root, "", "title", "robustcv report");
    const char *dataset = str(&r, &root, "", "dataset", NULL);
    sb_printf(&r.html, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                       "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
                       "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n<title>");
    sb_html(&r.html, title);
    sb_printf(&r.html, "</title><style>%s</style></head>\n<body>\n<h1>", CSS);
    sb_html(&r.html, title);
    sb_printf(&r.html, "</h1>\n");
    sb_printf(&r.md, "# %s\n\n", title);
    char line[600];
    snprintf(line, sizeof line, "%s%s%s%d model%s. Written by robustcv report from results.json.",
             dataset ? "Dataset: " : "", dataset ? dataset : "", dataset ? "; " : "", r.n_models,
             r.n_models == 1 ? "" : "s");
    para(&r, NULL, line);
    sb_printf(&r.html, "<nav>");
    for (size_t i = 0; i < sizeof TOC / sizeof TOC[0]; i++)
        sb_printf(&r.html, "<a href=\"#%s\">%s</a>", TOC[i].id, TOC[i].title);
    sb_printf(&r.html, "</nav>\n");

    sec_models(&r);
    sec_training(&r);
    sec_denoised(&r);
    named_section(&r, "transforms", "transforms", "Effect of each transform on the test set (Figure 2)",
                  "no model has \"transforms\" results (augmentation transforms applied to the test set).",
                  "top-1 accuracy with each transform applied to the test set");
    named_section(&r, "symmetries", "symmetries", "Orientation: the 8 symmetries of the square",
                  "no model has \"symmetries\" results (the test set rotated and flipped).",
                  "top-1 accuracy under each symmetry of the square");
    sec_corruptions(&r, &root);
    sec_adversarial(&r);
    sec_autoattack(&r, &root);
    sec_leaderboard(&r, &root);
    sec_certified(&r, &root);
    sec_transfer(&r);
    {
        const char *m[3] = {"eps", "fooling_rate", "top1"}, *h[3] = {"eps", "Fooling rate", "Top-1 under the UAP"};
        int p[3] = {0, 1, 1};
        simple_section(&r, "uap", "uap", "Universal adversarial perturbation",
                       "Fooling rate: the fraction of test images whose top-1 class changes when the one perturbation "
                       "is added.",
                       m, h, p, 3, "no model has \"uap\" results.");
    }
    {
        const char *m[2] = {"ece", "nll"}, *h[2] = {"ECE (15 bins)", "NLL"};
        int p[2] = {1, 0};
        simple_section(&r, "calibration", "calibration", "Calibration",
                       "Expected calibration error with 15 equal-width confidence bins (Guo et al. 2017) and the mean "
                       "negative log-likelihood, on the clean test set.",
                       m, h, p, 2, "no model has \"calibration\" results.");
    }
    {
        const char *m[2] = {"top1", "top5"}, *h[2] = {"TTA top-1", "TTA top-5"};
        int p[2] = {1, 1};
        simple_section(&r, "tta", "tta", "Test-time augmentation over the 8 symmetries",
                       "Logits averaged over the 8 symmetries of the square of each test image. It helps a model "
                       "only as far as the model is right on those symmetries (the orientation table above): one "
                       "trained on upright images alone loses accuracy here.",
                       m, h, p, 2,
                       "no model has \"tta\" results.");
    }
    sec_ensembles(&r, &root);
    figure_list(&r, &root, "cams", "cams", "Class activation maps (Figure 7)",
                "results.json lists no \"cams\" images.");
    figure_list(&r, &root, "figures", "figures", "Other figures", "results.json lists no other \"figures\".");
    sb_printf(&r.html, "%s</body></html>\n", SCRIPT);
    if (r.failed) {
        rcv_fail("%s", r.err);
        goto out;
    }
    snprintf(path, sizeof path, "%s/report.html", run_dir);
    if (rcv_file_write_atomic(path, r.html.buf, r.html.len)) goto out;
    snprintf(path, sizeof path, "%s/report.md", run_dir);
    if (rcv_file_write_atomic(path, r.md.buf, r.md.len)) goto out;
    if (n_missing) *n_missing = r.missing;
    rc = 0;
out:
    free(r.html.buf);
    free(r.md.buf);
    rcv_json_free(&root);
    return rc;
}
