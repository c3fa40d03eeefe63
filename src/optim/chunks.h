// Trainable parameter ranges cut into chunks: one parallel loop over all of them balances a
// model of many small tensors (batchnorm) and a few large ones (fc).
#ifndef RCV_OPTIM_CHUNKS_H
#define RCV_OPTIM_CHUNKS_H

#include <stddef.h>

#include "robustcv/graph.h"

#define RCV_CHUNK 16384

// Same members, same order as rcv_cuda_chunk (src/backend/cuda/cuda_backend.h): the cuda
// update kernels read this table as is.
typedef struct {
    size_t offset, n; // into g->params / g->grads
    float lr_mult;
} rcv_chunk;

// Chunks of every non-frozen RCV_PARAM (malloc'ed into *out); returns the count.
int rcv_optim_chunks(const rcv_graph *g, rcv_chunk **out);

#endif
