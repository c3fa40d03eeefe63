#include "robustcv/error.h"
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int rcv_test_pass, rcv_test_fail;

int test_done(void) {
    printf("%d passed, %d failed\n", rcv_test_pass, rcv_test_fail);
    return rcv_test_fail ? 1 : 0;
}

double max_rel_err(const float *a, const float *b, size_t n, double floor) {
    double scale = floor, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= err)) err = d; // NaN propagates as an error
    }
    return err / scale;
}

double max_abs_err(const float *a, const float *b, size_t n) {
    double err = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= err)) err = d;
    }
    return err;
}

void fill_uniform(float *x, size_t n, unsigned seed, float lo, float hi) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

const char *test_tmpdir(const char *tag) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 256, "/tmp/rcv_test_%s_%d", tag, (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", p);
    if (system(cmd)) {}
    mkdir(p, 0755);
    return p;
}

int test_quick(void) { return getenv("RCV_QUICK") != NULL; }

int test_sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void test_build_smallcnn(rcv_model *m, int c, int h, int w, int k, uint64_t seed) {
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = c, cfg.in_h = h, cfg.in_w = w, cfg.n_classes = k, cfg.seed = seed;
    cfg.mean[0] = 0.3f, cfg.std[0] = 0.4f;
    if (rcv_model_build(m, "smallcnn", &cfg)) {
        fprintf(stderr, "%s\n", rcv_error());
        exit(1);
    }
    rcv_graph *g = m->g;
    rcv_rng r;
    rcv_rng_init(&r, seed + 7);
    for (int p = 0; p < g->n_params; p++) {
        rcv_param *pi = &g->param_info[p];
        if (pi->kind != RCV_BUFFER) continue;
        int var = strstr(pi->name, "running_var") != NULL;
        rcv_rng_fill_uniform(&r, rcv_param_data(g, p), pi->numel, var ? 0.5f : -0.2f, var ? 1.5f : 0.2f);
    }
}
