// Datasets held in memory as uint8 HWC images plus int32 labels, and the IDX
// format (MNIST, Fashion-MNIST). Batches come out as [0,1] floats NHWC: the
// model's first op normalizes, so attacks work in pixel space.
#ifndef RCV_DATA_H
#define RCV_DATA_H

#include <stdint.h>

#include "robustcv/rng.h"

typedef struct {
    int n, c, h, w;
    uint8_t *pixels;     // n * h * w * c, HWC per image
    int32_t *labels;     // n
    int n_classes;
    char **class_names;  // n_classes names (never NULL after a successful load)
    char *source;        // where it came from, for messages
} rcv_dataset;

// IDX pair: images (magic 0x00000803: n, rows, cols; uint8) and labels (0x00000801: n; uint8).
// Gzipped or raw (detected from the content). Validates magics, dimensions, equal counts and
// lengths; a truncated file gives "<file>: truncated: expected N bytes of pixel data, got M".
// Class names are "0".."K-1" with K = max label + 1.
int rcv_idx_load(rcv_dataset *d, const char *images_path, const char *labels_path);

#define RCV_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in dir (NULL: RCV_FASHION_MNIST_DIR), with
// Fashion-MNIST's class names (T-shirt/top, Trouser, ..., Ankle boot).
int rcv_fashion_mnist_load(rcv_dataset *d, const char *dir, int train);

void rcv_dataset_free(rcv_dataset *d);

// Images idx[0..n) scaled to [0,1]: x (n, h, w, c) floats; labels (n) (may be NULL).
void rcv_dataset_batch(const rcv_dataset *d, const int *idx, int n, float *x, int32_t *labels);
// Random permutation of 0..n-1 (rcv_rng_permutation).
void rcv_dataset_shuffle(rcv_rng *r, int *perm, int n);
// Per-channel mean and (population) standard deviation of the pixels in [0,1]; mean/std have c
// entries.
void rcv_dataset_mean_std(const rcv_dataset *d, float *mean, float *std);
// Images per class: counts has n_classes entries.
void rcv_dataset_class_counts(const rcv_dataset *d, int *counts);

#endif
