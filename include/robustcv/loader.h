// Threaded batch loader: worker threads turn dataset images into [0,1] float batches,
// run a per-sample callback on each (augmentation), and keep up to three batches ready
// ahead of the training step. Every sample draws from its own stream,
// rcv_rng_fork(rng, position in the epoch), so the batches are the same bit for bit
// whatever the number of threads.
#ifndef RCV_LOADER_H
#define RCV_LOADER_H

#include <stdint.h>

#include "robustcv/data.h"
#include "robustcv/rng.h"

// Called on a loader thread for each training sample, in place: x (h, w, c) floats in [0,1];
// boxes (n_boxes x 4, x0 y0 x1 y1 pixels) or NULL. Must be safe to call from several threads
// at once (ctx shared, read-only) and draw its randomness from r only.
typedef void (*rcv_sample_fn)(void *ctx, rcv_rng *r, float *x, int h, int w, int c, float *boxes, int n_boxes);

typedef struct rcv_loader rcv_loader;

// Batches s = 0..n_steps-1 hold samples perm[s*batch .. s*batch+batch) (perm NULL: 0, 1, 2, ...;
// it is copied, and must have n_steps * batch entries all below d->n). fn (may be NULL) runs on
// each sample with r = rcv_rng_fork(rng, s*batch + i). threads = 0 loads in the caller's thread
// inside rcv_loader_next; threads > 0 starts that many workers. d must outlive the loader.
int rcv_loader_open(rcv_loader **L, const rcv_dataset *d, int batch, const int *perm, int n_steps, rcv_sample_fn fn,
                    void *ctx, const rcv_rng *rng, int threads);
// The next batch: x (batch, h, w, c) floats; labels (batch) (may be NULL); boxes (batch, 4)
// (may be NULL; left untouched when the dataset has none). -1 after the last batch.
int rcv_loader_next(rcv_loader *L, float *x, int32_t *labels, float *boxes);
// Stops the workers (pending batches are dropped) and frees L. NULL is fine.
void rcv_loader_close(rcv_loader *L);

#endif
