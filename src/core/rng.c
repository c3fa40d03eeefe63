#include "robustcv/rng.h"

#include <math.h>

// Philox4x32-10 (Salmon et al. 2011), with the 64-bit key split in two words
// and the 64-bit counter in the low two of the four counter words.
void rcv_philox(uint64_t key, uint64_t counter, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0x9E3779B9u, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int i = 0; i < 10; i++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void rcv_rng_init(rcv_rng *r, uint64_t seed) {
    r->key = seed;
    r->counter = 0;
}

rcv_rng rcv_rng_fork(const rcv_rng *r, uint64_t label) {
    uint32_t o[4];
    rcv_philox(r->key ^ 0xA5A5A5A5DEADBEEFull, label, o);
    rcv_rng s = {((uint64_t)o[0] << 32) | o[1], 0};
    return s;
}

uint32_t rcv_rng_u32(rcv_rng *r) {
    uint32_t o[4];
    rcv_philox(r->key, r->counter++, o);
    return o[0];
}

static inline float u32_to_unit(uint32_t v) { return (float)(v >> 8) * (1.0f / 16777216.0f); }

float rcv_rng_uniform(rcv_rng *r) { return u32_to_unit(rcv_rng_u32(r)); }

// Box-Muller on one block: words 0 and 1 give one normal.
static inline float box_muller(uint32_t a, uint32_t b, int second) {
    float u1 = ((float)(a >> 8) + 1.0f) * (1.0f / 16777217.0f); // (0, 1]
    float u2 = u32_to_unit(b);
    float rad = sqrtf(-2.0f * logf(u1));
    float th = 6.283185307179586f * u2;
    return second ? rad * sinf(th) : rad * cosf(th);
}

float rcv_rng_normal(rcv_rng *r) {
    uint32_t o[4];
    rcv_philox(r->key, r->counter++, o);
    return box_muller(o[0], o[1], 0);
}

uint32_t rcv_rng_below(rcv_rng *r, uint32_t n) {
    if (n <= 1) return 0;
    uint32_t lim = (uint32_t)(-n) % n; // reject the low 2^32 mod n values
    for (;;) {
        uint32_t v = rcv_rng_u32(r);
        if (v >= lim) return v % n;
    }
}

void rcv_rng_fill_uniform(rcv_rng *r, float *x, size_t n, float lo, float hi) {
    size_t blocks = (n + 3) / 4;
    uint64_t base = r->counter;
    float span = hi - lo;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t b = 0; b < blocks; b++) {
        uint32_t o[4];
        rcv_philox(r->key, base + b, o);
        for (int j = 0; j < 4 && b * 4 + j < n; j++) x[b * 4 + j] = lo + span * u32_to_unit(o[j]);
    }
    r->counter += blocks;
}

void rcv_rng_fill_normal(rcv_rng *r, float *x, size_t n, float mean, float std) {
    size_t blocks = (n + 3) / 4;
    uint64_t base = r->counter;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t b = 0; b < blocks; b++) {
        uint32_t o[4];
        rcv_philox(r->key, base + b, o);
        float v[4] = {box_muller(o[0], o[1], 0), box_muller(o[0], o[1], 1), box_muller(o[2], o[3], 0),
                      box_muller(o[2], o[3], 1)};
        for (int j = 0; j < 4 && b * 4 + j < n; j++) x[b * 4 + j] = mean + std * v[j];
    }
    r->counter += blocks;
}

void rcv_rng_permutation(rcv_rng *r, int *perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rcv_rng_below(r, (uint32_t)i + 1);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}
