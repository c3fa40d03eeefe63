// Randomized smoothing (smoothing.h): the noisy-copy sampling loop and CERTIFY / PREDICT of
// Cohen et al.'s core.py on top of it.
#include <math.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"
#include "robustcv/smoothing.h"

void rcv_smooth_defaults(rcv_smooth_cfg *c) {
    c->sigma = 0.25f;
    c->n0 = 100;
    c->n = 100000;
    c->batch = 1000;
    c->alpha = 0.001;
}

int rcv_smooth_check(const rcv_smooth_cfg *c) {
    if (!(c->sigma > 0) || !isfinite(c->sigma)) return rcv_fail("smoothing: sigma %g, expected a finite value > 0", c->sigma);
    if (c->n <= 0) return rcv_fail("smoothing: n %d, expected > 0 samples", c->n);
    if (c->n0 <= 0 || c->n0 > c->n)
        return rcv_fail("smoothing: n0 %d, expected 0 < n0 <= n (n = %d)", c->n0, c->n);
    if (c->batch <= 0) return rcv_fail("smoothing: batch %d, expected > 0", c->batch);
    if (!(c->alpha > 0 && c->alpha < 1)) return rcv_fail("smoothing: alpha %g, expected 0 < alpha < 1", c->alpha);
    return 0;
}

int rcv_smooth_prepare(rcv_model *m, const rcv_smooth_cfg *c, rcv_backend be) {
    if (rcv_smooth_check(c)) return -1;
    rcv_graph *g = m->g;
    if ((g->batch != c->batch || g->backend != be) && rcv_graph_plan(g, c->batch, be)) return -1;
    rcv_graph_set_training(g, 0);
    return 0;
}

// The hot loop: per chunk one normal fill straight into the planned input (host plans), x added
// to every copy, one forward, the argmax of each row. Nothing else is per sample.
void rcv_smooth_counts(rcv_model *m, const float *x, float sigma, long num, rcv_rng *rng, long *counts) {
    rcv_graph *g = m->g;
    int b = g->batch, k = m->cfg.n_classes, was = g->training, dev = rcv_graph_on_device(g);
    size_t per = rcv_attack_per_image(m);
    float *dev_in = g->nodes[m->input].out;
    // A device plan is fed from host copies (noise drawn on the host: the same stream everywhere).
    float *in = dev ? rcv_xmalloc((size_t)b * per * sizeof(float)) : dev_in;
    float *zh = dev ? rcv_xmalloc((size_t)b * k * sizeof(float)) : NULL;
    rcv_graph_set_training(g, 0);
    for (long s = 0; s < num; s += b) {
        int nb = num - s < b ? (int)(num - s) : b;
        rcv_rng_fill_normal(rng, in, (size_t)nb * per, 0, sigma); // in: (nb, H, W, C)
#pragma omp parallel for schedule(static) if ((size_t)nb * per > 65536)
        for (int i = 0; i < nb; i++) {
            float *r = in + (size_t)i * per;
            for (size_t e = 0; e < per; e++) r[e] += x[e];
        }
        if (nb < b) memset(in + (size_t)nb * per, 0, (size_t)(b - nb) * per * sizeof(float)); // rows not counted
        if (dev) rcv_graph_upload(g, dev_in, in, (size_t)b * per * sizeof(float));
        rcv_graph_infer(g); // counts only: the folded inference path
        const float *z = g->nodes[m->logits].out; // (b, K)
        if (dev) {
            rcv_graph_download(g, zh, z, (size_t)nb * k * sizeof(float));
            z = zh;
        }
        for (int i = 0; i < nb; i++) counts[rcv_argmax(z + (size_t)i * k, k)]++;
    }
    rcv_graph_set_training(g, was);
    if (dev) {
        free(in);
        free(zh);
    }
}

static int smooth_begin(rcv_model *m, const rcv_smooth_cfg *c, int *was, long **counts) {
    rcv_graph *g = m->g;
    *was = g->training;
    if (rcv_smooth_prepare(m, c, g->batch ? g->backend : RCV_BACKEND_CPU)) return -1;
    *counts = rcv_xmalloc((size_t)m->cfg.n_classes * sizeof(long));
    return 0;
}

// First index of the largest count (np.argmax).
static int argmax_long(const long *c, int k) {
    int a = 0;
    for (int j = 1; j < k; j++)
        if (c[j] > c[a]) a = j;
    return a;
}

int rcv_smooth_certify(rcv_model *m, const float *x, const rcv_smooth_cfg *c, rcv_rng *rng, rcv_smooth_result *r) {
    int was, k = m->cfg.n_classes;
    long *counts;
    if (smooth_begin(m, c, &was, &counts)) return -1;
    memset(counts, 0, (size_t)k * sizeof(long));
    rcv_smooth_counts(m, x, c->sigma, c->n0, rng, counts);
    int ca = argmax_long(counts, k);
    memset(counts, 0, (size_t)k * sizeof(long));
    rcv_smooth_counts(m, x, c->sigma, c->n, rng, counts);
    r->count = counts[ca];
    r->count2 = 0;
    r->p = rcv_cp_lower(r->count, c->n, c->alpha);
    if (r->p < 0.5) r->pred = -1, r->radius = 0;
    else r->pred = ca, r->radius = c->sigma * rcv_norm_ppf(r->p);
    free(counts);
    rcv_graph_set_training(m->g, was);
    return 0;
}

int rcv_smooth_predict(rcv_model *m, const float *x, const rcv_smooth_cfg *c, rcv_rng *rng, rcv_smooth_result *r) {
    int was, k = m->cfg.n_classes;
    long *counts;
    if (smooth_begin(m, c, &was, &counts)) return -1;
    memset(counts, 0, (size_t)k * sizeof(long));
    rcv_smooth_counts(m, x, c->sigma, c->n, rng, counts);
    int c1 = argmax_long(counts, k), c2 = -1;
    for (int j = 0; j < k; j++)
        if (j != c1 && (c2 < 0 || counts[j] > counts[c2])) c2 = j;
    r->count = counts[c1];
    r->count2 = c2 >= 0 ? counts[c2] : 0;
    r->p = rcv_binom_test_half(r->count, r->count + r->count2);
    r->pred = r->p > c->alpha ? -1 : c1;
    r->radius = 0;
    free(counts);
    rcv_graph_set_training(m->g, was);
    return 0;
}

void rcv_smooth_certified_accuracy(const int *pred, const double *radius, const int32_t *label, int n,
                                   const double *radii, int n_radii, double *acc) {
    for (int j = 0; j < n_radii; j++) {
        long ok = 0;
        for (int i = 0; i < n; i++) ok += pred[i] >= 0 && pred[i] == label[i] && radius[i] >= radii[j];
        acc[j] = n > 0 ? (double)ok / n : 0;
    }
}
