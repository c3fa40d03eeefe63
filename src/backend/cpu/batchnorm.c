// batchnorm2d on the cpu backend: x (N, C, H, W) NHWC -> y, per-channel weight, bias (C).
// OpenMP + SIMD C loops, not oneDNN's primitive.
//
// Why not oneDNN: oneDNN 2.6's batchnorm sums its batch statistics and its backward sums
// (sum dy, sum dy xhat) in float32 over all M = N*H*W rows, so its error grows with M. Measured
// against float64 on (N, 64, H, W) with mean 3 and std 1, M = 2048 / 32768: its forward output
// error is 8.7e-7 / 3.7e-6 and its dweight error 5.5e-5 / 7.0e-4, where PyTorch's NCHW float32
// kernel has 1e-7 / 1e-7 and 1.6e-6 / 3.8e-6 and these loops 1e-7 / 1e-7 and 3e-7 / 1e-6
// (tests/test_ops.c checks them against float64 sums; docs/models.md). Through train-mode
// batchnorm layers those errors reach every earlier gradient (dx uses both sums).
//
// Sums: rows in blocks of 32 summed in float32 (SIMD over channels), the blocks in double,
// so the error does not grow with M (channel_sums).
//
// Forward, training: the batch mean and biased variance from one pass of shifted sums,
// S1 = sum (x - K) and S2 = sum (x - K)^2 with K the mean of the first 32 rows (float sums
// around a shift near the mean lose nothing to cancellation; bn_stats), to n->saved =
// [mean (C) | var (C)] for backward; running stats follow PyTorch:
//   running_mean = (1 - m) running_mean + m mean
//   running_var  = (1 - m) running_var  + m var * M / (M - 1)
// Eval: the running stats. A node with frozen_stats runs in eval mode always (batchnorm in a
// frozen part of a fine-tuned net). Then y = (x - mean) w invstd + b, invstd = 1/sqrt(var + eps).
// Backward uses the mode of the last forward.
//
// Backward, with xhat = (x - mean) invstd, dy masked by the fused ReLU and double-accumulated
// sums over the rows db = sum dy, dw = sum dy xhat:
//   dweight += dw, dbias += db, and
//   training: dx = w invstd (dy - db / M - xhat dw / M)
//   eval:     dx = w invstd dy                       (attacks differentiate eval-mode models)
//
// Fused ReLU (n->fused_relu, set by the planner when a ReLU is the only consumer):
// y = max(bn(x), 0), and forward keeps the mask bn(x) > 0, one byte per element, after the
// statistics in n->saved for backward.
//
// Synchronised batchnorm (training with g->bn_allreduce set, dist.h): the sums (forward: as
// raw moments in double, see bn_stats) are summed over ranks with the count M before use, one
// reduction in forward and one in backward; dweight, dbias take this rank's sums (the
// gradient allreduce sums them).
//
// Layouts: NHWC, or nChw<b>c (b = 8 or 16) when the planner made the node blocked
// (rcv_node.blocked); the mask has x's layout. Every loop walks tiles of at most 32 x 16
// elements: up to BN_BLOCK_ROWS "segments" of w channels c0 .. c0+w-1, `stride` floats apart
// (bn_view, tile_at; w = b when blocked, else 16). nChw<b>c: a tile is a run of h, w positions of
// one (n, channel block), contiguous; NHWC: 32 rows of one group of 16 channels (fewer at the
// end of a row when C % 16 != 0). The generic inner loops are 16
// lanes with the byte mask widened to int first: over bytes GCC 12 vectorises 32 lanes at a
// step, more than a segment holds, and falls back to a branch per element.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_util.h"
#include "robustcv/error.h"

// Our SIMD follows the CPU the process runs on, not the one it was built on: the AVX-512 and
// AVX2 tile kernels below are compiled for their ISA by target attributes whatever -march says,
// and rcv_cpu_simd picks one at run time from oneDNN's effective ISA (the CPU's,
// capped by ONEDNN_MAX_CPU_ISA), so one binary built for x86-64-v3 still runs AVX-512 where
// present and one knob sets the tier of every kernel. Both compute each lane with the same
// operations (fused multiply-adds included), so the AVX-512, AVX2 and 8- or 16-channel paths
// give bitwise the same values; other CPUs (aarch64) take the portable loops.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BN_X86 1
#define BN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define BN_AVX2 __attribute__((target("avx2,fma,bmi2")))
#endif

#define RCV_BN_PAR_MIN 32768
#define BN_BLOCK_ROWS 32

typedef struct {
    int last_training, last_sync;
    int nt;              // threads the partial sums have room for
    double *acc;         // 2C sums (channel_sums' s1 | s2), then the count M
    double *dpart;       // per thread: 2C double sums
    float *zero, *shift; // C zeros; C: the forward's shift K
    float *ka, *kb, *kc; // per channel: forward y = (x - mean) ka + kb; backward dx = ka dy - kb (x - mean) - kc
} bn_state;

// [mean (C) | var (C) | fused: ReLU mask, one byte per element]
static size_t bn_saved(const rcv_graph *g, const rcv_node *n) {
    (void)g;
    return 2 * (size_t)n->shape.c + (n->fused_relu ? (rcv_numel(n->shape) + 3) / 4 : 0);
}

// Tiles are numbered image by image (per_img of them each), so both layouts group the same
// elements into tiles and hand threads the same images: the sums, and so the normalised values
// and every ReLU decision after them, are bitwise the same in NHWC and nChw<b>c.
typedef struct {
    size_t rows, hw, tiles, per_img;
    size_t runs;   // runs of at most BN_BLOCK_ROWS positions in an image
    size_t stride; // floats between the segments of a tile
    int C, cb;     // cb: channel blocks when blocked, else 0
    int w;         // channels a segment: the block when blocked, else 16
    int simd;      // rcv_cpu_simd(), read once per pass
} bn_view;

typedef struct {
    size_t base; // offset of the tile's first element
    int segs, c0, lanes;
    int simd; // how it runs: 16 = one AVX-512 kernel, 8 = AVX2 kernels on its halves (one for a
              // tile of 8 lanes), 0 = the generic loops
} bn_tile;

static bn_view bn_view_of(const rcv_node *n) {
    bn_view v = {0};
    v.C = n->shape.c;
    v.rows = (size_t)n->shape.n * n->shape.h * n->shape.w;
    v.hw = (size_t)n->shape.h * n->shape.w;
    v.runs = (v.hw + BN_BLOCK_ROWS - 1) / BN_BLOCK_ROWS;
    v.w = n->blocked ? n->blocked : 16;
    v.simd = rcv_cpu_simd();
    v.cb = n->blocked ? v.C / v.w : 0;
    v.per_img = v.runs * (((size_t)v.C + (size_t)v.w - 1) / (size_t)v.w);
    v.tiles = (size_t)n->shape.n * v.per_img;
    v.stride = n->blocked ? (size_t)v.w : (size_t)v.C;
    return v;
}

static inline bn_tile tile_at(const bn_view *v, size_t t) {
    bn_tile r;
    size_t img = t / v->per_img, i = t % v->per_img, run, grp;
    if (v->cb) { // i = (channel block, run): contiguous in memory
        grp = i / v->runs, run = i % v->runs;
    } else { // i = (run, channel group)
        size_t groups = v->per_img / v->runs;
        run = i / groups, grp = i % groups;
    }
    size_t p0 = run * BN_BLOCK_ROWS; // first position in the image
    r.c0 = (int)grp * v->w;
    r.segs = (int)(v->hw - p0 < BN_BLOCK_ROWS ? v->hw - p0 : BN_BLOCK_ROWS);
    r.lanes = v->C - r.c0 < v->w ? v->C - r.c0 : v->w;
    if (v->cb) r.base = ((img * (size_t)v->cb + grp) * v->hw + p0) * (size_t)v->w;
    else r.base = (img * v->hw + p0) * (size_t)v->C + (size_t)r.c0;
    r.simd = r.lanes == 16 && v->simd == 16 ? 16 : (r.lanes == 16 || r.lanes == 8) && v->simd >= 8 ? 8 : 0;
    return r;
}

// Element (row r = (n, h, w), channel c) of x.
static inline size_t bn_at(const bn_view *v, size_t r, int c) {
    if (!v->cb) return r * (size_t)v->C + (size_t)c;
    size_t img = r / v->hw;
    return ((img * (size_t)v->cb + (size_t)(c / v->w)) * v->hw + r % v->hw) * (size_t)v->w + (size_t)(c % v->w);
}

static uint8_t *bn_mask(const rcv_node *n) { return n->fused_relu ? (uint8_t *)(n->saved + 2 * n->shape.c) : NULL; }

static void bn_release(rcv_node *n) {
    bn_state *s = n->kstate;
    if (!s) return;
    free(s->acc);
    free(s->dpart);
    free(s->zero);
    free(s->shift);
    free(s->ka);
    free(s->kb);
    free(s->kc);
    free(s);
    n->kstate = NULL;
}

static int bn_prepare(rcv_graph *g, rcv_node *n) {
    (void)g;
    bn_state *s = calloc(1, sizeof *s);
    if (!s) return rcv_fail("batchnorm2d: out of memory");
    n->kstate = s;
    size_t C = (size_t)n->shape.c;
    s->nt = omp_get_max_threads();
    s->acc = calloc(2 * C + 1, sizeof(double));
    s->dpart = calloc((size_t)s->nt * 2 * C, sizeof(double));
    s->zero = calloc(C, sizeof(float));
    s->shift = calloc(C, sizeof(float));
    s->ka = calloc(C, sizeof(float));
    s->kb = calloc(C, sizeof(float));
    s->kc = calloc(C, sizeof(float));
    if (!s->acc || !s->dpart || !s->zero || !s->shift || !s->ka || !s->kb || !s->kc)
        return rcv_fail("batchnorm2d: out of memory");
    return 0;
}

// A tile's segments, with `body` on the 16 lanes j of each (fewer at an NHWC row's end: the
// generic loop); o = the segment's offset, mm[j] its mask bytes as ints when mask != NULL.
// Used where no SIMD kernel applies (bn_tile.simd 0).
#define BN_TILE_LOOP(t, stride, mask, body)                                                                            \
    do {                                                                                                               \
        int32_t mm[16] = {0};                                                                                          \
        if ((t)->lanes == 16) {                                                                                        \
            for (int q = 0; q < (t)->segs; q++) {                                                                      \
                size_t o = (t)->base + (size_t)q * (stride);                                                           \
                if (mask)                                                                                              \
                    for (int j = 0; j < 16; j++) mm[j] = (mask)[o + j];                                                \
                _Pragma("omp simd") for (int j = 0; j < 16; j++) body                                                  \
            }                                                                                                          \
        } else {                                                                                                       \
            for (int q = 0; q < (t)->segs; q++) {                                                                      \
                size_t o = (t)->base + (size_t)q * (stride);                                                           \
                if (mask)                                                                                              \
                    for (int j = 0; j < (t)->lanes; j++) mm[j] = (mask)[o + j];                                        \
                for (int j = 0; j < (t)->lanes; j++) body                                                              \
            }                                                                                                          \
        }                                                                                                              \
        (void)mm;                                                                                                      \
    } while (0)

// The SIMD tile kernels: one segment of 16 (AVX-512) or 8 (AVX2) lanes at a time; the generic
// versions' arithmetic lane by lane, with the mask (one byte per element, NULL = all set) as a
// register mask.
#ifdef BN_X86
BN_AVX512 static inline __mmask16 mask16(const uint8_t *m) {
    return m ? _mm_test_epi8_mask(_mm_loadu_si128((const __m128i *)m), _mm_set1_epi8(-1)) : 0xffff;
}
// All ones where the mask byte is set.
BN_AVX2 static inline __m256 mask8(const uint8_t *m) {
    if (!m) return _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)m));
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(b, _mm256_setzero_si256()));
}

BN_AVX512 static void sums16(float *g1, float *g2, const float *a, const float *am, const uint8_t *m, const float *b,
                             const float *bm, const bn_tile *t, size_t stride) {
    __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), vam = _mm512_loadu_ps(am), vbm = _mm512_loadu_ps(bm);
    for (int q = 0; q < t->segs; q++) {
        size_t o = t->base + (size_t)q * stride;
        __m512 u = _mm512_maskz_sub_ps(mask16(m ? m + o : NULL), _mm512_loadu_ps(a + o), vam);
        s1 = _mm512_add_ps(s1, u);
        s2 = _mm512_fmadd_ps(u, _mm512_sub_ps(_mm512_loadu_ps(b + o), vbm), s2);
    }
    _mm512_storeu_ps(g1, s1);
    _mm512_storeu_ps(g2, s2);
}
BN_AVX2 static void sums8(float *g1, float *g2, const float *a, const float *am, const uint8_t *m, const float *b,
                          const float *bm, const bn_tile *t, size_t stride) {
    __m256 s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), vam = _mm256_loadu_ps(am), vbm = _mm256_loadu_ps(bm);
    for (int q = 0; q < t->segs; q++) {
        size_t o = t->base + (size_t)q * stride;
        __m256 u = _mm256_and_ps(mask8(m ? m + o : NULL), _mm256_sub_ps(_mm256_loadu_ps(a + o), vam));
        s1 = _mm256_add_ps(s1, u);
        s2 = _mm256_fmadd_ps(u, _mm256_sub_ps(_mm256_loadu_ps(b + o), vbm), s2);
    }
    _mm256_storeu_ps(g1, s1);
    _mm256_storeu_ps(g2, s2);
}

// y goes out with non-temporal stores where aligned: not read back here, and the write skips
// the read for ownership (smallcnn's bn1, 12.8 MB: forward 1.9 -> 1.0 ms, the next conv no
// slower). dx in backward was tried the same way: no faster overall (conv1's weight gradient,
// which reads it next, got slower).
BN_AVX512 static void fwd16(float *y, uint8_t *m, const float *x, const float *mean, const float *ka, const float *kb,
                            const bn_tile *t, size_t stride) {
    __m512 vm = _mm512_loadu_ps(mean), va = _mm512_loadu_ps(ka), vb = _mm512_loadu_ps(kb), z = _mm512_setzero_ps();
    int nt = ((uintptr_t)(y + t->base) % 64 == 0) && stride % 16 == 0;
    for (int q = 0; q < t->segs; q++) {
        size_t o = t->base + (size_t)q * stride;
        __m512 u = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + o), vm), va, vb);
        if (m) {
            __mmask16 k = _mm512_cmp_ps_mask(u, z, _CMP_GT_OQ);
            _mm_storeu_si128((__m128i *)(m + o), _mm_maskz_set1_epi8(k, 1));
            u = _mm512_maskz_mov_ps(k, u);
        }
        if (nt) _mm512_stream_ps(y + o, u);
        else _mm512_storeu_ps(y + o, u);
    }
    if (nt) _mm_sfence(); // ordered before the barrier that hands y to the next op
}
BN_AVX2 static void fwd8(float *y, uint8_t *m, const float *x, const float *mean, const float *ka, const float *kb,
                         const bn_tile *t, size_t stride) {
    __m256 vm = _mm256_loadu_ps(mean), va = _mm256_loadu_ps(ka), vb = _mm256_loadu_ps(kb), z = _mm256_setzero_ps();
    int nt = ((uintptr_t)(y + t->base) % 32 == 0) && stride % 8 == 0;
    for (int q = 0; q < t->segs; q++) {
        size_t o = t->base + (size_t)q * stride;
        __m256 u = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + o), vm), va, vb);
        if (m) {
            __m256 k = _mm256_cmp_ps(u, z, _CMP_GT_OQ);
            uint64_t bytes = _pdep_u64((unsigned)_mm256_movemask_ps(k), 0x0101010101010101ull); // bit j -> byte j
            memcpy(m + o, &bytes, 8);
            u = _mm256_and_ps(u, k);
        }
        if (nt) _mm256_stream_ps(y + o, u);
        else _mm256_storeu_ps(y + o, u);
    }
    if (nt) _mm_sfence();
}

// d (= or += when acc) ka dy - kb (x - mean) - kc, dy zero where the mask is 0; eval (x == NULL):
// d (= or +=) ka dy, without reading x.
BN_AVX512 static void dx16(float *d, const float *dy, const uint8_t *m, const float *x, const float *mean,
                           const float *ka, const float *kb, const float *kc, int acc, const bn_tile *t,
                           size_t stride) {
    __m512 va = _mm512_loadu_ps(ka), vm, vb, vc;
    if (x) vm = _mm512_loadu_ps(mean), vb = _mm512_loadu_ps(kb), vc = _mm512_loadu_ps(kc);
    for (int q = 0; q < t->segs; q++) {
        size_t o = t->base + (size_t)q * stride;
        __m512 u = _mm512_maskz_mul_ps(mask16(m ? m + o : NULL), va, _mm512_loadu_ps(dy + o));
        if (x) u = _mm512_fnmadd_ps(vb, _mm512_sub_ps(_mm512_loadu_ps(x + o), vm), _mm512_sub_ps(u, vc));
        if (acc) u = _mm512_add_ps(u, _mm512_loadu_ps(d + o));
        _mm512_storeu_ps(d + o, u);
    }
}
BN_AVX2 static void dx8(float *d, const float *dy, const uint8_t *m, const float *x, const float *mean,
                        const float *ka, const float *kb, const float *kc, int acc, const bn_tile *t, size_t stride) {
    __m256 va = _mm256_loadu_ps(ka), vm, vb, vc;
    if (x) vm = _mm256_loadu_ps(mean), vb = _mm256_loadu_ps(kb), vc = _mm256_loadu_ps(kc);
    for (int q = 0; q < t->segs; q++) {
        size_t o = t->base + (size_t)q * stride;
        __m256 u = _mm256_and_ps(mask8(m ? m + o : NULL), _mm256_mul_ps(va, _mm256_loadu_ps(dy + o)));
        if (x) u = _mm256_fnmadd_ps(vb, _mm256_sub_ps(_mm256_loadu_ps(x + o), vm), _mm256_sub_ps(u, vc));
        if (acc) u = _mm256_add_ps(u, _mm256_loadu_ps(d + o));
        _mm256_storeu_ps(d + o, u);
    }
}
#endif

// Over a tile, per lane: g1 = sum a', g2 = sum a' (b - bm), a' = a - am, zero where the mask (may be
// NULL) is 0.
static inline void sums_tile(float *g1, float *g2, const float *a, const float *am, const uint8_t *m, const float *b,
                             const float *bm, const bn_tile *t, size_t stride) {
#ifdef BN_X86
    int w = t->simd;
    if (w == 16) {
        sums16(g1, g2, a, am, m, b, bm, t, stride);
        return;
    }
    if (w == 8) {
        for (int h = 0; h < t->lanes; h += 8)
            sums8(g1 + h, g2 + h, a + h, am + h, m ? m + h : NULL, b + h, bm + h, t, stride);
        return;
    }
#endif
    float s1[16] = {0}, s2[16] = {0}; // locals, so the compiler keeps them in registers
    if (m)
        BN_TILE_LOOP(t, stride, m, {
            float u = a[o + j] - am[j];
            u = mm[j] ? u : 0.0f;
            s1[j] += u;
            s2[j] += u * (b[o + j] - bm[j]);
        });
    else
        BN_TILE_LOOP(t, stride, (const uint8_t *)NULL, {
            float u = a[o + j] - am[j];
            s1[j] += u;
            s2[j] += u * (b[o + j] - bm[j]);
        });
    for (int j = 0; j < 16; j++) g1[j] = s1[j], g2[j] = s2[j];
}

// Over a tile: y = (x - mean) ka + kb, ReLU'd with its mask when m != NULL.
static inline void fwd_tile(float *y, uint8_t *m, const float *x, const float *mean, const float *ka, const float *kb,
                            const bn_tile *t, size_t stride) {
#ifdef BN_X86
    int w = t->simd;
    if (w == 16) {
        fwd16(y, m, x, mean, ka, kb, t, stride);
        return;
    }
    if (w == 8) {
        for (int h = 0; h < t->lanes; h += 8) fwd8(y + h, m ? m + h : NULL, x + h, mean + h, ka + h, kb + h, t, stride);
        return;
    }
#endif
    if (m)
        BN_TILE_LOOP(t, stride, (const uint8_t *)NULL, {
            float u = (x[o + j] - mean[j]) * ka[j] + kb[j];
            m[o + j] = u > 0;
            y[o + j] = u > 0 ? u : 0.0f;
        });
    else
        BN_TILE_LOOP(t, stride, (const uint8_t *)NULL, { y[o + j] = (x[o + j] - mean[j]) * ka[j] + kb[j]; });
}

// Over a tile: d (= or += when acc) ka dy - kb (x - mean) - kc, dy zero where the mask (may be
// NULL) is 0.
static inline void dx_tile(float *d, const float *dy, const uint8_t *m, const float *x, const float *mean,
                           const float *ka, const float *kb, const float *kc, int acc, const bn_tile *t,
                           size_t stride) {
#ifdef BN_X86
    int w = t->simd;
    if (w == 16) {
        dx16(d, dy, m, x, mean, ka, kb, kc, acc, t, stride);
        return;
    }
    if (w == 8) {
        for (int h = 0; h < t->lanes; h += 8)
            dx8(d + h, dy + h, m ? m + h : NULL, x + h, mean + h, ka + h, kb + h, kc + h, acc, t, stride);
        return;
    }
#endif
    if (m && acc)
        BN_TILE_LOOP(t, stride, m, {
            float u = ka[j] * dy[o + j];
            d[o + j] += (mm[j] ? u : 0.0f) - kb[j] * (x[o + j] - mean[j]) - kc[j];
        });
    else if (m)
        BN_TILE_LOOP(t, stride, m, {
            float u = ka[j] * dy[o + j];
            d[o + j] = (mm[j] ? u : 0.0f) - kb[j] * (x[o + j] - mean[j]) - kc[j];
        });
    else if (acc)
        BN_TILE_LOOP(t, stride, (const uint8_t *)NULL,
                     { d[o + j] += ka[j] * dy[o + j] - kb[j] * (x[o + j] - mean[j]) - kc[j]; });
    else
        BN_TILE_LOOP(t, stride, (const uint8_t *)NULL,
                     { d[o + j] = ka[j] * dy[o + j] - kb[j] * (x[o + j] - mean[j]) - kc[j]; });
}

// Eval mode (running statistics, kb = kc = 0): d (= or += when acc) ka dy, dy zero where the
// mask is 0. The values of dx_tile's, without reading x (a third less traffic: attacks run
// it every step).
static inline void dx_eval_tile(float *d, const float *dy, const uint8_t *m, const float *ka, int acc,
                                const bn_tile *t, size_t stride) {
#ifdef BN_X86
    int w = t->simd;
    if (w == 16) {
        dx16(d, dy, m, NULL, NULL, ka, NULL, NULL, acc, t, stride);
        return;
    }
    if (w == 8) {
        for (int h = 0; h < t->lanes; h += 8) dx8(d + h, dy + h, m ? m + h : NULL, NULL, NULL, ka + h, NULL, NULL, acc, t, stride);
        return;
    }
#endif
    if (m && acc)
        BN_TILE_LOOP(t, stride, m, { d[o + j] += mm[j] ? ka[j] * dy[o + j] : 0.0f; });
    else if (m)
        BN_TILE_LOOP(t, stride, m, { d[o + j] = mm[j] ? ka[j] * dy[o + j] : 0.0f; });
    else if (acc)
        BN_TILE_LOOP(t, stride, (const uint8_t *)NULL, { d[o + j] += ka[j] * dy[o + j]; });
    else
        BN_TILE_LOOP(t, stride, (const uint8_t *)NULL, { d[o + j] = ka[j] * dy[o + j]; });
}

// Per-channel sums over the M rows of arrays in x's layout (bn_view):
//   s1[c] = sum_r a'[r, c],   s2[c] = sum_r a'[r, c] (b[r, c] - bm[c]),
//   a' = a - am[c], zero where mask[r, c] == 0 (mask may be NULL).
// Threads take ranges of images, sum each tile (at most 32 values a channel) in float and the
// blocks in double; their partials are added in thread order (the same result for the same
// thread count).
static void channel_sums(bn_state *s, const rcv_node *n, const float *a, const float *am, const uint8_t *mask,
                         const float *b, const float *bm, double *s1, double *s2) {
    int C = n->shape.c;
    bn_view v = bn_view_of(n);
    int nt = rcv_numel(n->shape) > RCV_BN_PAR_MIN ? s->nt : 1;
    if (nt > omp_get_max_threads()) nt = omp_get_max_threads();
#pragma omp parallel num_threads(nt)
    {
        int th = omp_get_thread_num(), tn = omp_get_num_threads();
        double *d1 = s->dpart + (size_t)th * 2 * C, *d2 = d1 + C;
        memset(d1, 0, 2 * (size_t)C * sizeof(double));
        size_t imgs = (size_t)n->shape.n; // threads take whole images (see bn_view)
        size_t t0 = imgs * th / tn * v.per_img, t1 = imgs * (th + 1) / tn * v.per_img;
        for (size_t i = t0; i < t1; i++) { // a tile in float, the tiles in double
            bn_tile t = tile_at(&v, i);
            float g1[16] = {0}, g2[16] = {0};
            sums_tile(g1, g2, a, am + t.c0, mask, b, bm + t.c0, &t, v.stride);
            for (int j = 0; j < t.lanes; j++) d1[t.c0 + j] += g1[j], d2[t.c0 + j] += g2[j];
        }
    }
    for (int c = 0; c < C; c++) {
        double x1 = 0, x2 = 0;
        for (int t = 0; t < nt; t++) x1 += s->dpart[(size_t)t * 2 * C + c], x2 += s->dpart[(size_t)t * 2 * C + C + c];
        s1[c] = x1, s2[c] = x2;
    }
}

// Training statistics into mean, var (C); returns M (over all ranks for sync-bn). The shifted
// sums become raw moments in double, sum x = S1 + K M and sum x^2 = S2 + 2 K S1 + K^2 M, which
// ranks can add (one reduction) and whose difference E[x^2] - E[x]^2 cancels only in double.
static double bn_stats(rcv_graph *g, rcv_node *n, float *mean, float *var) {
    bn_state *s = n->kstate;
    int C = n->shape.c;
    bn_view v = bn_view_of(n);
    size_t k = v.rows < BN_BLOCK_ROWS ? v.rows : BN_BLOCK_ROWS;
    const float *x = rcv_in(g, n, 0);
    double *acc = s->acc, Mr = (double)v.rows;
    float *K = s->shift;
    for (int c = 0; c < C; c++) { // K = the mean of the first rows
        double m = 0;
        for (size_t r = 0; r < k; r++) m += x[bn_at(&v, r, c)];
        K[c] = (float)(m / (double)k);
    }
    channel_sums(s, n, x, K, NULL, x, K, acc, acc + C);
    for (int c = 0; c < C; c++) {
        double s1 = acc[c], s2 = acc[C + c], kc = K[c];
        acc[c] = s1 + kc * Mr;
        acc[C + c] = s2 + 2 * kc * s1 + kc * kc * Mr;
    }
    acc[2 * C] = Mr;
    if (s->last_sync) g->bn_allreduce(g, acc, 2 * (size_t)C + 1);
    double M = acc[2 * C];
    for (int c = 0; c < C; c++) {
        double mu = acc[c] / M, v = acc[C + c] / M - mu * mu;
        mean[c] = (float)mu;
        var[c] = (float)(v > 0 ? v : 0);
    }
    return M;
}

static void bn_forward(rcv_graph *g, rcv_node *n) {
    bn_state *s = n->kstate;
    int C = n->shape.c;
    const float *w = rcv_param_data(g, n->param[0]), *b = rcv_param_data(g, n->param[1]);
    float *rm = rcv_param_data(g, n->buf[0]), *rv = rcv_param_data(g, n->buf[1]);
    s->last_training = g->training && !n->frozen_stats; // frozen: running stats, not updated
    s->last_sync = s->last_training && g->bn_allreduce;
    const float *mean = rm, *var = rv;
    if (s->last_training) {
        float *bm = n->saved, *bv = n->saved + C;
        double M = bn_stats(g, n, bm, bv);
        float m = n->attr.bn.momentum, unbias = M > 1 ? (float)(M / (M - 1)) : 1.0f;
        for (int c = 0; c < C; c++) {
            rm[c] = (1 - m) * rm[c] + m * bm[c];
            rv[c] = (1 - m) * rv[c] + m * bv[c] * unbias;
        }
        if (n->buf[2] >= 0) g->ibuffers[g->param_info[n->buf[2]].offset] += 1;
        mean = bm, var = bv;
    }
    for (int c = 0; c < C; c++) {
        s->ka[c] = (float)(w[c] / sqrt((double)var[c] + n->attr.bn.eps));
        s->kb[c] = b[c];
    }
    bn_view v = bn_view_of(n);
    const float *x = rcv_in(g, n, 0);
    float *y = n->out;
    uint8_t *mask = bn_mask(n);
#pragma omp parallel for schedule(static) if (rcv_numel(n->shape) > RCV_BN_PAR_MIN)
    for (size_t i = 0; i < v.tiles; i++) {
        bn_tile t = tile_at(&v, i);
        fwd_tile(y, mask, x, mean + t.c0, s->ka + t.c0, s->kb + t.c0, &t, v.stride);
    }
}

static void bn_backward(rcv_graph *g, rcv_node *n) {
    bn_state *s = n->kstate;
    int C = n->shape.c;
    const float *x = rcv_in(g, n, 0), *dy = n->grad;
    const uint8_t *mask = bn_mask(n);
    const float *w = rcv_param_data(g, n->param[0]);
    const float *mean = s->last_training ? n->saved : rcv_param_data(g, n->buf[0]);
    const float *var = s->last_training ? n->saved + C : rcv_param_data(g, n->buf[1]);
    double *acc = s->acc; // [sum dy (C) | sum dy (x - mean) (C) | M]
    float *dx = rcv_in_grad(g, n, 0);
    // The sums feed dweight, dbias and the training-mode dx: input gradients of an eval-mode
    // layer (attacks) need none of them.
    int params = !g->input_grad_only;
    if (params || (dx && s->last_training)) channel_sums(s, n, dy, s->zero, mask, x, mean, acc, acc + C);
    if (params) {
        float *gw = rcv_param_grad(g, n->param[0]), *gb = rcv_param_grad(g, n->param[1]);
        for (int c = 0; c < C; c++) {
            gw[c] += (float)(acc[C + c] / sqrt((double)var[c] + n->attr.bn.eps));
            gb[c] += (float)acc[c];
        }
    }
    if (!dx) return;
    bn_view v = bn_view_of(n);
    acc[2 * C] = (double)v.rows;
    if (s->last_sync) g->bn_allreduce(g, acc, 2 * (size_t)C + 1);
    double M = acc[2 * C];
    for (int c = 0; c < C; c++) {
        double invstd = 1.0 / sqrt((double)var[c] + n->attr.bn.eps), a = w[c] * invstd;
        s->ka[c] = (float)a;
        // training: dx = a dy - a invstd^2 (sum dy (x - mean)) / M (x - mean) - a (sum dy) / M
        s->kb[c] = s->last_training ? (float)(a * invstd * invstd * acc[C + c] / M) : 0.0f;
        s->kc[c] = s->last_training ? (float)(a * acc[c] / M) : 0.0f;
    }
    int acc_dx = n->in_beta[0];
#pragma omp parallel for schedule(static) if (rcv_numel(n->shape) > RCV_BN_PAR_MIN)
    for (size_t i = 0; i < v.tiles; i++) {
        bn_tile t = tile_at(&v, i);
        if (s->last_training)
            dx_tile(dx, dy, mask, x, mean + t.c0, s->ka + t.c0, s->kb + t.c0, s->kc + t.c0, acc_dx, &t, v.stride);
        else
            dx_eval_tile(dx, dy, mask, s->ka + t.c0, acc_dx, &t, v.stride);
    }
}

const rcv_kernels rcv_cpu_batchnorm2d = {
    .prepare = bn_prepare,
    .forward = bn_forward,
    .backward = bn_backward,
    .release = bn_release,
    .saved_size = bn_saved,
    .layout = rcv_cpu_layout_tied,
};
