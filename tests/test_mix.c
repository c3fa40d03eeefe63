// Mixup / CutMix, soft-target cross-entropy, EMA and SWA (mix.h, average.h) against timm 0.9.16
// and torch.optim.swa_utils (tests/oracle/mix_ref.py):
//  - timm's Mixup on fixed batches (every mode, mixup / cutmix / both / minmax, lam correction
//    on and off, prob < 1, label smoothing): numpy's draws are replayed in timm's call order
//    through rcv_mix_draws (the calls and their arguments must match), then images, boxes (via
//    the images) and soft targets must equal timm's;
//  - lam drawn by rcv_mix_batch from the run's rng has Beta(a, a)'s mean and variance, and the
//    sampler (rcv_rng_beta) passes Kolmogorov-Smirnov (scipy) against Beta(a, a);
//  - SoftTargetCrossEntropy's loss and autograd gradient;
//  - ModelEmaV3(exclude_buffers=True) decays and weights over 7 steps, with and without warm-up,
//    and the closed form of a constant-decay EMA on a smallcnn's parameters;
//  - AveragedModel + update_bn on three smallcnn weight sets and 12 images; SWALR's lrs.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/average.h"
#include "robustcv/error.h"
#include "robustcv/mix.h"
#include "robustcv/safetensors.h"
#include "testutil.h"

#define PY "/usr/bin/python3 tests/oracle/mix_ref.py"
// The oracle's output for everything but KS (one torch start-up: `mix_ref.py all DIR`).
static char ref_path[600];
static FILE *oracle(void) { return fopen(ref_path, "r"); }

static int read_doubles(const char *s, double *out, int max) {
    int n = 0;
    char *end;
    while (n < max) {
        double v = strtod(s, &end);
        if (end == s) break;
        out[n++] = v;
        s = end;
    }
    return n;
}

// --- replay of numpy's draws ---
typedef struct {
    char **lines;
    int n, pos, bad;
    char why[256];
} replay;

static const char *next_line(replay *r, char kind) {
    if (r->pos >= r->n || r->lines[r->pos][0] != kind) {
        if (!r->bad) snprintf(r->why, sizeof r->why, "draw %d: expected '%c', oracle has '%s'", r->pos, kind,
                              r->pos < r->n ? r->lines[r->pos] : "(none)");
        r->bad = 1;
        return NULL;
    }
    return r->lines[r->pos++] + 2;
}

static void rp_uniform(void *ctx, int n, double *out) {
    replay *r = ctx;
    const char *s = next_line(r, 'u');
    double v[1100];
    int got = s ? read_doubles(s, v, 1100) : 0;
    if (s && (got != n + 1 || (int)v[0] != n)) r->bad = 1, snprintf(r->why, sizeof r->why, "uniform(%d) vs %s", n, s);
    for (int i = 0; i < n; i++) out[i] = s && i + 1 < got ? v[i + 1] : 0.5;
}

static void rp_beta(void *ctx, double a, int n, double *out) {
    replay *r = ctx;
    const char *s = next_line(r, 'b');
    double v[1100];
    int got = s ? read_doubles(s, v, 1100) : 0;
    if (s && (got != n + 2 || fabs(v[0] - a) > 1e-6 || (int)v[1] != n))
        r->bad = 1, snprintf(r->why, sizeof r->why, "beta(%g, %d) vs %s", a, n, s);
    for (int i = 0; i < n; i++) out[i] = s && i + 2 < got ? v[i + 2] : 0.5;
}

static long rp_randint(void *ctx, long lo, long hi) {
    replay *r = ctx;
    const char *s = next_line(r, 'r');
    double v[3];
    if (s && (read_doubles(s, v, 3) != 3 || (long)v[0] != lo || (long)v[1] != hi))
        r->bad = 1, snprintf(r->why, sizeof r->why, "randint(%ld, %ld) vs %s", lo, hi, s);
    return s ? (long)v[2] : lo;
}

static void test_mixup_vs_timm(void) {
    FILE *p = oracle();
    CHECK(p != NULL, "popen mix_ref.py mixup");
    if (!p) return;
    static char buf[1 << 16];
    char name[64], mode[16];
    rcv_mix_cfg c;
    int n = 0, ch = 0, h = 0, w = 0, k = 0, cases = 0, in_case = 0;
    float smooth = 0;
    double *xin = NULL, *xout = NULL, *tref = NULL, yv[64];
    char *draws[64];
    int nd = 0;
    while (fgets(buf, sizeof buf, p)) {
        buf[strcspn(buf, "\n")] = 0;
        if (!strncmp(buf, "case ", 5)) {
            int corr;
            rcv_mix_defaults(&c);
            if (sscanf(buf + 5, "%63s %f %f %f %f %f %f %15s %d %f %d %d %d %d %d", name, &c.mixup_alpha, &c.cutmix_alpha,
                       &c.cutmix_minmax[0], &c.cutmix_minmax[1], &c.prob, &c.switch_prob, mode, &corr, &smooth, &n, &ch,
                       &h, &w, &k) != 15 || rcv_mix_mode_parse(mode, &c.mode)) {
                CHECK(0, "bad case line %s", buf);
                break;
            }
            c.correct_lam = corr;
            size_t tot = (size_t)n * h * w * ch;
            xin = realloc(xin, tot * sizeof(double));
            xout = realloc(xout, tot * sizeof(double));
            tref = realloc(tref, (size_t)n * k * sizeof(double));
            nd = 0, in_case = 1;
        } else if (in_case && !strncmp(buf, "x ", 2)) {
            read_doubles(buf + 2, xin, n * h * w * ch);
        } else if (in_case && !strncmp(buf, "y ", 2)) {
            read_doubles(buf + 2, yv, n);
        } else if (in_case && !strncmp(buf, "out ", 4)) {
            read_doubles(buf + 4, xout, n * h * w * ch);
        } else if (in_case && !strncmp(buf, "t ", 2)) {
            read_doubles(buf + 2, tref, n * k);
        } else if (in_case && (buf[0] == 'u' || buf[0] == 'b' || buf[0] == 'r') && buf[1] == ' ' && nd < 64) {
            draws[nd++] = strdup(buf);
        } else if (in_case && !strcmp(buf, "end")) {
            size_t tot = (size_t)n * h * w * ch;
            float *x = malloc(tot * sizeof(float)), *scr = malloc(tot * sizeof(float)), *lam = malloc(n * sizeof(float));
            float *t = malloc((size_t)n * k * sizeof(float));
            int32_t y[64];
            for (size_t e = 0; e < tot; e++) x[e] = (float)xin[e];
            for (int i = 0; i < n; i++) y[i] = (int32_t)yv[i];
            replay r = {draws, nd, 0, 0, ""};
            rcv_mix_draws d = {rp_uniform, rp_beta, rp_randint, &r};
            CHECK(rcv_mix_check(&c) == 0, "%s: %s", name, rcv_error());
            rcv_mix_batch(&c, &d, x, n, h, w, ch, lam, scr);
            rcv_mix_targets(y, lam, n, k, smooth, t);
            CHECK(!r.bad && r.pos == r.n, "%s: draws replayed %d of %d: %s", name, r.pos, r.n, r.why);
            double ex = 0, et = 0;
            for (size_t e = 0; e < tot; e++) ex = fmax(ex, fabs(x[e] - xout[e]));
            for (int e = 0; e < n * k; e++) et = fmax(et, fabs(t[e] - tref[e]));
            CHECK(ex < 1e-6, "%s: images differ from timm's by %g", name, ex);
            CHECK(et < 1e-6, "%s: targets differ from timm's by %g", name, et);
            for (int i = 0; i < nd; i++) free(draws[i]);
            free(x), free(scr), free(lam), free(t);
            cases++, in_case = 0;
        }
    }
    fclose(p);
    CHECK(cases == 40, "oracle gave %d mixup cases", cases);
    free(xin), free(xout), free(tref);
}

// lam of rcv_mix_batch (elem mode, mixup only, prob 1) from a rcv_rng ~ Beta(a, a).
static void test_lam_distribution(void) {
    const float alphas[] = {0.2f, 0.8f, 1.0f, 2.5f};
    int n = test_quick() ? 2000 : 20000;
    float *x = calloc((size_t)n, sizeof(float)), *scr = malloc((size_t)n * sizeof(float)), *lam = malloc(n * sizeof(float));
    const char *dir = test_tmpdir("mix_ks");
    char cmd[4096];
    int nc = snprintf(cmd, sizeof cmd, PY " ks");
    for (int ai = 0; ai < 4; ai++) {
        double a = alphas[ai];
        rcv_mix_cfg c;
        rcv_mix_defaults(&c);
        c.mixup_alpha = (float)a, c.mode = RCV_MIX_ELEM;
        rcv_rng r;
        rcv_rng_init(&r, 11 + ai);
        rcv_mix_draws d = rcv_mix_draws_rng(&r);
        rcv_mix_batch(&c, &d, x, n, 1, 1, 1, lam, scr);
        double m = 0, v = 0;
        for (int i = 0; i < n; i++) m += lam[i];
        m /= n;
        for (int i = 0; i < n; i++) v += (lam[i] - m) * (lam[i] - m);
        v /= n - 1;
        double vt = 1 / (4 * (2 * a + 1)); // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
        CHECK(fabs(m - 0.5) < 4 * sqrt(vt / n), "alpha %g: mean %g, expected 0.5", a, m);
        // Sample variance's relative standard error: sqrt((kurtosis - 1) / n), Beta(a, a)'s kurtosis
        // 3 - 6 / (2a + 3); 5 of them (a fixed 5% failed at n = 2000 under RCV_QUICK: 1.8 sd).
        double se = sqrt((2 - 6 / (2 * a + 3)) / n);
        CHECK(fabs(v / vt - 1) < 5 * se, "alpha %g: variance %g, expected %g (5 sd: %.3g relative)", a, v, vt, 5 * se);
        char path[700];
        snprintf(path, sizeof path, "%s/lam%d.txt", dir, ai);
        FILE *f = fopen(path, "w");
        // KS on the sampler's doubles: lam itself is float32 (as timm's), whose rounding near 0 and 1
        // alone fails KS at alpha 0.2 with this n
        rcv_rng rk;
        rcv_rng_init(&rk, 21 + ai);
        for (int i = 0; i < n; i++) fprintf(f, "%.17g\n", rcv_rng_beta(&rk, a, a));
        fclose(f);
        nc += snprintf(cmd + nc, sizeof cmd - (size_t)nc, " %g %s", a, path);
    }
    FILE *p = popen(cmd, "r");
    char out[64];
    for (int ai = 0; ai < 4; ai++) {
        out[0] = 0;
        if (p && !fgets(out, sizeof out, p)) out[0] = 0;
        CHECK(atof(out) > 1e-3, "alpha %g: KS p-value '%s' against Beta(a, a)", alphas[ai], out);
    }
    CHECK(p && pclose(p) == 0, "ks oracle failed");
    free(x), free(scr), free(lam);
}

static void test_soft_ce(void) {
    FILE *p = oracle();
    CHECK(p != NULL, "popen ce");
    if (!p) return;
    static char buf[1 << 15];
    int n = 0, k = 0, cases = 0;
    double z[256], t[256], g[256], loss = 0;
    while (fgets(buf, sizeof buf, p)) {
        if (sscanf(buf, "ce %d %d", &n, &k) == 2) continue;
        if (!strncmp(buf, "z ", 2)) read_doubles(buf + 2, z, n * k);
        else if (!strncmp(buf, "t ", 2)) read_doubles(buf + 2, t, n * k);
        else if (!strncmp(buf, "loss ", 5)) loss = atof(buf + 5);
        else if (!strncmp(buf, "grad ", 5)) {
            read_doubles(buf + 5, g, n * k);
            float zf[256], tf[256], dz[256], gf[256];
            for (int i = 0; i < n * k; i++) zf[i] = (float)z[i], tf[i] = (float)t[i], gf[i] = (float)g[i];
            double l = rcv_soft_cross_entropy(zf, tf, n, k, dz);
            CHECK(fabs(l - loss) < 1e-5 * fabs(loss), "n %d: loss %.8g, torch %.8g", n, l, loss);
            CHECK(max_rel_err(dz, gf, (size_t)n * k, 1e-6) < 1e-5, "n %d: gradient differs from autograd's by %g", n,
                  max_rel_err(dz, gf, (size_t)n * k, 1e-6));
            cases++;
        }
    }
    fclose(p);
    CHECK(cases == 2, "ce oracle: %d cases", cases);
}

static void test_ema_vs_timm(void) {
    FILE *p = oracle();
    CHECK(p != NULL, "popen ema");
    if (!p) return;
    char buf[4096];
    int warm = 0, steps = 0, cases = 0;
    float decay = 0, ema[12], w[12];
    double v[16];
    rcv_ema_cfg c;
    while (fgets(buf, sizeof buf, p)) {
        int s;
        if (sscanf(buf, "ema %d %f %d", &warm, &decay, &steps) == 3) {
            rcv_ema_defaults(&c);
            c.decay = decay, c.warmup = warm;
        } else if (!strncmp(buf, "w0 ", 3)) {
            CHECK(read_doubles(buf + 3, v, 16) == 12, "w0");
            for (int i = 0; i < 12; i++) ema[i] = (float)v[i]; // the copy at construction
        } else if (buf[0] == 'w' && sscanf(buf + 1, "%d", &s) == 1) {
            read_doubles(strchr(buf, ' ') + 1, v, 12);
            for (int i = 0; i < 12; i++) w[i] = (float)v[i];
            rcv_ema_update(ema, w, 12, rcv_ema_decay(&c, s));
        } else if (buf[0] == 'd' && sscanf(buf + 1, "%d", &s) == 1) {
            double dref = atof(strchr(buf, ' ') + 1);
            CHECK(fabs(rcv_ema_decay(&c, s) - dref) < 1e-7, "warmup %d step %d: decay %.10g, timm %.10g", warm, s,
                  rcv_ema_decay(&c, s), dref);
        } else if (!strncmp(buf, "e ", 2)) {
            read_doubles(buf + 2, v, 12);
            float ef[12];
            for (int i = 0; i < 12; i++) ef[i] = (float)v[i];
            CHECK(max_rel_err(ema, ef, 12, 1e-6) < 1e-6, "warmup %d: EMA differs from timm's by %g", warm,
                  max_rel_err(ema, ef, 12, 1e-6));
            cases++;
        } else if (!strncmp(buf, "buffers_copied ", 15)) {
            CHECK(atoi(buf + 15) == 1, "timm's EMA did not copy the buffers (the semantics average.h documents)");
        }
    }
    fclose(p);
    CHECK(cases == 2, "ema oracle: %d cases", cases);
}

// Constant decay d on a smallcnn's parameters over k steps: ema_k = d^(k-1) w_1 + sum_{i=2..k} (1-d) d^(k-i) w_i.
static void test_ema_closed_form(void) {
    rcv_model m = {0};
    test_build_smallcnn(&m, 1, 8, 8, 3, 5);
    size_t n = m.g->n_param_floats;
    int k = 6;
    rcv_ema_cfg c;
    rcv_ema_defaults(&c);
    c.decay = 0.75f;
    float *ema = malloc(n * sizeof(float)), *w = malloc(n * sizeof(float));
    double *closed = calloc(n, sizeof(double));
    memcpy(ema, m.g->params, n * sizeof(float));
    for (int s = 1; s <= k; s++) {
        fill_uniform(w, n, 100 + s, -1, 1);
        for (size_t i = 0; i < n; i++) m.g->params[i] += w[i]; // an optimizer step
        rcv_ema_update(ema, m.g->params, n, rcv_ema_decay(&c, s));
        double coef = s == 1 ? pow(0.75, k - 1) : 0.25 * pow(0.75, k - s);
        for (size_t i = 0; i < n; i++) closed[i] += coef * m.g->params[i];
    }
    double err = 0, scale = 0;
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs(ema[i] - closed[i])), scale = fmax(scale, fabs(closed[i]));
    CHECK(err < 1e-5 * scale, "EMA vs closed form: %g (scale %g)", err, scale);
    free(ema), free(w), free(closed);
    rcv_model_free(&m);
}

// Writes DIR/w{1,2,3}.safetensors (three smallcnn weight sets), x.bin (12 images), meta.txt and
// ours.safetensors: the SWA average of the three with update_bn's statistics (batches of 4).
static const char *prepare_swa(void) {
    const char *dir = test_tmpdir("mix_swa");
    int n = 12, b = 4, c = 1, h = 12, w = 12, k = 3;
    rcv_model m = {0};
    test_build_smallcnn(&m, c, h, w, k, 9);
    rcv_graph *g = m.g;
    size_t np_ = g->n_param_floats;
    float *avg = calloc(np_, sizeof(float)), *d = malloc(np_ * sizeof(float));
    char path[600];
    for (int s = 1; s <= 3; s++) { // three weight sets (and buffers, which AveragedModel ignores)
        fill_uniform(d, np_, 40 + s, -0.3f, 0.3f);
        for (size_t i = 0; i < np_; i++) g->params[i] += d[i];
        for (size_t i = 0; i < g->n_buffer_floats; i++) g->buffers[i] += 0.01f * s;
        rcv_swa_update(avg, g->params, np_, s - 1);
        rcv_st_writer *wr = rcv_st_writer_new();
        rcv_st_add_graph(wr, g);
        snprintf(path, sizeof path, "%s/w%d.safetensors", dir, s);
        CHECK(rcv_st_write(wr, path) == 0, "write %s", path);
        rcv_st_writer_free(wr);
    }
    memcpy(g->params, avg, np_ * sizeof(float));
    rcv_dataset ds = {0};
    ds.n = n, ds.c = c, ds.h = h, ds.w = w, ds.n_classes = k, ds.source = "test";
    ds.pixels = malloc((size_t)n * h * w * c);
    ds.labels = calloc((size_t)n, sizeof(int32_t));
    for (size_t i = 0; i < (size_t)n * h * w * c; i++) ds.pixels[i] = (uint8_t)((i * 37 + i / 5 * 11) % 256);
    float *x = malloc((size_t)n * h * w * c * sizeof(float));
    int idx[12];
    for (int i = 0; i < n; i++) idx[i] = i;
    rcv_dataset_batch(&ds, idx, n, x, NULL);
    snprintf(path, sizeof path, "%s/x.bin", dir);
    FILE *f = fopen(path, "wb");
    fwrite(x, sizeof(float), (size_t)n * h * w * c, f);
    fclose(f);
    CHECK(rcv_graph_plan(g, b, RCV_BACKEND_CPU) == 0, "plan: %s", rcv_error());
    CHECK(rcv_update_bn(&m, &ds, n) == 0, "update_bn: %s", rcv_error());
    rcv_st_writer *wr = rcv_st_writer_new();
    rcv_st_add_graph(wr, g);
    snprintf(path, sizeof path, "%s/ours.safetensors", dir);
    CHECK(rcv_st_write(wr, path) == 0, "write ours");
    rcv_st_writer_free(wr);
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    f = fopen(path, "w");
    fprintf(f, "n %d\nc %d\nh %d\nw %d\nk %d\nbatch %d\nmean 0.3\nstd 0.4\n", n, c, h, w, k, b);
    fclose(f);
    free(avg), free(d), free(x), free(ds.pixels), free(ds.labels);
    rcv_model_free(&m);
    return dir;
}

static void test_swa_vs_torch(void) {
    char line[256];
    FILE *p = oracle();
    double perr = 1, berr = 1;
    int nbt = 0;
    while (p && fgets(line, sizeof line, p)) {
        sscanf(line, "swa_param_err %lf", &perr);
        sscanf(line, "swa_bn_err %lf", &berr);
        sscanf(line, "swa_nbt_ok %d", &nbt);
    }
    if (p) fclose(p);
    CHECK(perr < 1e-6, "averaged weights differ from AveragedModel's by %g", perr);
    CHECK(berr < 1e-4, "update_bn's running statistics differ from torch's by %g", berr);
    CHECK(nbt == 1, "num_batches_tracked after update_bn differs from torch's");
}

static void test_swalr(void) {
    FILE *p = oracle();
    CHECK(p != NULL, "popen swalr");
    if (!p) return;
    char buf[1024];
    int cases = 0;
    while (fgets(buf, sizeof buf, p)) {
        int anneal, start, off;
        double lr0, lrs[8];
        if (sscanf(buf, "swalr %d %d %lf %n", &anneal, &start, &lr0, &off) != 3) continue;
        CHECK(read_doubles(buf + off, lrs, 8) == 8, "swalr line");
        rcv_swa_cfg c = {start, 0.01f, anneal};
        for (int e = start; e < 8; e++)
            CHECK(fabs(rcv_swa_lr(&c, lr0, e) - lrs[e]) < 1e-7, "anneal %d start %d epoch %d: lr %.9g, torch %.9g", anneal,
                  start, e, rcv_swa_lr(&c, lr0, e), lrs[e]);
        cases++;
    }
    fclose(p);
    CHECK(cases == 4, "swalr oracle: %d cases", cases);
}

static void test_bad_config(void) {
    rcv_mix_cfg c;
    rcv_mix_defaults(&c);
    c.mixup_alpha = -1;
    CHECK(rcv_mix_check(&c) != 0 && strstr(rcv_error(), "--mixup -1"), "negative alpha: %s", rcv_error());
    rcv_mix_defaults(&c);
    c.cutmix_minmax[0] = 0.8f, c.cutmix_minmax[1] = 0.2f;
    CHECK(rcv_mix_check(&c) != 0 && strstr(rcv_error(), "--cutmix-minmax"), "minmax order: %s", rcv_error());
    rcv_mix_defaults(&c);
    c.prob = NAN;
    CHECK(rcv_mix_check(&c) != 0, "NaN prob accepted");
    float x[3] = {0}, s[3], l[3];
    c.mixup_alpha = 1;
    rcv_rng r;
    rcv_rng_init(&r, 1);
    rcv_mix_draws d = rcv_mix_draws_rng(&r);
    CHECK(rcv_mix_batch(&c, &d, x, 3, 1, 1, 1, l, s) != 0 && strstr(rcv_error(), "odd"), "odd batch: %s", rcv_error());
    rcv_ema_cfg e;
    rcv_ema_defaults(&e);
    e.decay = 1;
    CHECK(rcv_ema_check(&e) != 0 && strstr(rcv_error(), "--ema 1"), "decay 1: %s", rcv_error());
    rcv_swa_cfg w = {5, 0.01f, 10};
    CHECK(rcv_swa_check(&w, 5) != 0 && strstr(rcv_error(), "--swa-start 5"), "swa start: %s", rcv_error());
    w.start = 2, w.lr = 0;
    CHECK(rcv_swa_check(&w, 5) != 0 && strstr(rcv_error(), "--swa-lr"), "swa lr: %s", rcv_error());
}

int main(void) {
    char cmd[800];
    const char *swa_dir = prepare_swa();
    snprintf(ref_path, sizeof ref_path, "%s/ref.txt", swa_dir);
    snprintf(cmd, sizeof cmd, PY " all %s > %s", swa_dir, ref_path);
    CHECK(system(cmd) == 0, "%s failed", cmd);
    test_mixup_vs_timm();
    test_lam_distribution();
    test_soft_ce();
    test_ema_vs_timm();
    test_ema_closed_form();
    test_swa_vs_torch();
    test_swalr();
    test_bad_config();
    snprintf(cmd, sizeof cmd, "rm -rf %s", swa_dir);
    if (system(cmd)) {}
    return test_done();
}
