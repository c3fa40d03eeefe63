// In-memory datasets: batches as [0,1] floats, shuffles, per-channel statistics.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include "robustcv/data.h"
#include "robustcv/error.h"

void rcv_dataset_free(rcv_dataset *d) {
    if (!d) return;
    if (d->class_names)
        for (int k = 0; k < d->n_classes; k++) free(d->class_names[k]);
    if (d->class_ids)
        for (int k = 0; k < d->n_classes; k++) free(d->class_ids[k]);
    free(d->class_names);
    free(d->class_ids);
    if (d->map) {
        munmap(d->map, d->map_len); // pixels, labels and boxes live in the mapping
    } else {
        free(d->pixels);
        free(d->labels);
        free(d->boxes);
    }
    free(d->source);
    memset(d, 0, sizeof *d);
}

// x: (n, h, w, c)
void rcv_dataset_batch(const rcv_dataset *d, const int *idx, int n, float *x, int32_t *labels) {
    size_t per = (size_t)d->h * d->w * d->c;
    float lut[256]; // v / 255 by division, as torchvision's ToTensor (not v * (1/255))
    for (int v = 0; v < 256; v++) lut[v] = (float)v / 255.0f;
#pragma omp parallel for schedule(static) if (n * per > 65536)
    for (int i = 0; i < n; i++) {
        const uint8_t *src = d->pixels + (size_t)idx[i] * per;
        float *dst = x + (size_t)i * per;
        for (size_t j = 0; j < per; j++) dst[j] = lut[src[j]];
    }
    if (labels)
        for (int i = 0; i < n; i++) labels[i] = d->labels[idx[i]];
}

void rcv_dataset_shuffle(rcv_rng *r, int *perm, int n) { rcv_rng_permutation(r, perm, n); }

void rcv_dataset_mean_std(const rcv_dataset *d, float *mean, float *std) {
    int c = d->c;
    // Integer histograms per channel: exact sums, independent of any summation order.
    uint64_t *hist = rcv_xcalloc((size_t)c * 256, sizeof(uint64_t));
    size_t total = (size_t)d->n * d->h * d->w;
    for (size_t i = 0; i < total; i++)
        for (int ch = 0; ch < c; ch++) hist[ch * 256 + d->pixels[i * (size_t)c + (size_t)ch]]++;
    for (int ch = 0; ch < c; ch++) {
        double s = 0, s2 = 0;
        for (int v = 0; v < 256; v++) {
            double x = v / 255.0, k = (double)hist[ch * 256 + v];
            s += k * x;
            s2 += k * x * x;
        }
        double m = total ? s / (double)total : 0, var = total ? s2 / (double)total - m * m : 1;
        mean[ch] = (float)m;
        std[ch] = (float)sqrt(var > 0 ? var : 0);
    }
    free(hist);
}

void rcv_dataset_class_counts(const rcv_dataset *d, int *counts) {
    memset(counts, 0, (size_t)d->n_classes * sizeof(int));
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] >= 0 && d->labels[i] < d->n_classes) counts[d->labels[i]]++;
}

void rcv_boxes_normalize(const float *px, int n, int w, int h, float *out) {
    for (size_t i = 0; i < 4 * (size_t)n; i++) {
        float v = px[i] / (float)(i % 2 ? h : w); // x0, y0, x1, y1: even entries are x
        out[i] = fminf(fmaxf(v, 0.0f), 1.0f);     // fmaxf drops a NaN: it becomes 0
    }
}
