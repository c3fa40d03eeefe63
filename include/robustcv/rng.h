// Counter-based random numbers (Philox4x32-10). A stream is (key, counter):
// value i of a stream depends only on (key, counter + i/4), so threads that
// fill disjoint ranges produce the same numbers as one thread, and saving the
// two 64-bit words saves the generator exactly (checkpoints store them).
#ifndef RCV_RNG_H
#define RCV_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t key;     // the seed
    uint64_t counter; // blocks of 4 x uint32 consumed so far
} rcv_rng;

void rcv_rng_init(rcv_rng *r, uint64_t seed);
// A new independent stream derived from r's key and a label (e.g. a layer index).
rcv_rng rcv_rng_fork(const rcv_rng *r, uint64_t label);

// Philox block: four 32-bit words for (key, counter).
void rcv_philox(uint64_t key, uint64_t counter, uint32_t out[4]);

uint32_t rcv_rng_u32(rcv_rng *r);
float rcv_rng_uniform(rcv_rng *r);               // [0, 1)
float rcv_rng_normal(rcv_rng *r);                // N(0, 1)
uint32_t rcv_rng_below(rcv_rng *r, uint32_t n);  // [0, n), unbiased

// Bulk fills; advance the counter by ceil(n/4) blocks. Parallel inside, and
// bit-identical whatever the thread count.
void rcv_rng_fill_uniform(rcv_rng *r, float *x, size_t n, float lo, float hi);
void rcv_rng_fill_normal(rcv_rng *r, float *x, size_t n, float mean, float std);

// Fisher-Yates permutation of 0..n-1.
void rcv_rng_permutation(rcv_rng *r, int *perm, int n);

#endif
