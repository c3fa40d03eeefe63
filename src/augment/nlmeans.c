// Non-local means, equal to OpenCV's fastNlMeansDenoising / fastNlMeansDenoisingColored on 8-bit
// images: for each pixel, the average of the pixels in its search window weighted by
// w = exp(-(SSD / template_area) / (h^2 * cn)), with OpenCV's fixed-point weights (the SSD
// quantized by a power-of-two shift, weights below 0.001 dropped) and reflect-101 borders.
// The SSDs are exact integers, so any exact way to compute them gives OpenCV's result; this one
// loops over displacements and keeps running box sums, O(1) per pixel per displacement.
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "robustcv/augment.h"
#include "robustcv/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif
// The AVX2 version is compiled for AVX2 by target attributes whatever -march says and picked at
// run time (rcv_cpu_simd, as batchnorm's kernels), so a baseline or x86-64-v3 build runs it where
// the CPU has it and other CPUs take the portable loops. All SSDs, weights and sums are integers,
// so both give bitwise the same image. No AVX-512 version: a 16-lane one of the same code
// measured no faster than 8 lanes (bench_augment nlmeans, one thread, AMD Zen 5).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define NLM_X86 1
#define NLM_AVX2 __attribute__((target("avx2,fma,bmi2")))
#endif

static inline int reflect101(int p, int n) {
    if (n == 1) return 0;
    while (p < 0 || p >= n) p = p < 0 ? -p : 2 * (n - 1) - p;
    return p;
}

// One displacement d = (dy, dx) and its opposite at once: SSD_{-d}(p + d) = SSD_d(p), so the
// weight computed for pixel p and candidate p + d is also the weight of pixel p + d and candidate
// p. SSD_d is evaluated over the region R of pixels p with p or p + d in the image, as
// whole-plane passes the compiler vectorizes: squared differences D, vertical box sums V,
// horizontal box sums S, table lookup, then the two accumulations.
typedef struct {
    const int16_t *E; // planar bordered channels, each (H, W) = (h + 2b, w + 2b)
    int H, W, h, w, cn, th, sh, shift, cut;
    const int *wtab;  // weight per quantized SSD, wtab[cut] = 0
} nlm_ctx;

typedef struct {
    int *D, *V, *S, *Wt; // scratch: tw + 1 rows of D, one row each of V, S and weights
} nlm_scratch;

// One region row: S[x] = sum_{o < tw} V[x + o], then Wt[x] = wtab[min(S[x] >> shift, cut)],
// from column x on (the SIMD versions do the columns before it).
static inline void nlm_weights_row(const int *restrict V, int *restrict S, int *restrict Wt, int x, int RW, int tw,
                                   int shift, int cut, const int *restrict wtab) {
    if (tw <= 11) {
        for (; x < RW; x++) {
            int s = 0;
            for (int o = 0; o < tw; o++) s += V[x + o];
            int idx = s >> shift;
            Wt[x] = wtab[idx < cut ? idx : cut];
        }
        return;
    }
    int run = 0;
    for (int o = 0; o < tw; o++) run += V[o];
    S[0] = run;
    for (x = 1; x < RW; x++) {
        run += V[x + tw - 1] - V[x - 1];
        S[x] = run;
    }
    for (x = 0; x < RW; x++) {
        int idx = S[x] >> shift;
        Wt[x] = wtab[idx < cut ? idx : cut];
    }
}

// Small templates: direct sums and a gather, 8 lanes at a time; larger ones take the running
// sums above.
#ifdef NLM_X86
NLM_AVX2 static void nlm_weights_row8(const int *restrict V, int *restrict S, int *restrict Wt, int RW, int tw,
                                      int shift, int cut, const int *restrict wtab) {
    int x = 0;
    if (tw <= 11) {
        const __m256i vcut = _mm256_set1_epi32(cut);
        const __m128i vsh = _mm_cvtsi32_si128(shift);
        for (; x + 8 <= RW; x += 8) {
            __m256i s = _mm256_loadu_si256((const __m256i *)(V + x));
            for (int o = 1; o < tw; o++) s = _mm256_add_epi32(s, _mm256_loadu_si256((const __m256i *)(V + x + o)));
            __m256i idx = _mm256_min_epi32(_mm256_sra_epi32(s, vsh), vcut);
            _mm256_storeu_si256((__m256i *)(Wt + x), _mm256_i32gather_epi32(wtab, idx, 4));
        }
    }
    nlm_weights_row(V, S, Wt, x, RW, tw, shift, cut, wtab);
}
#endif

// Inlined into one function per ISA (nlm_pair, nlm_pair8), so the whole-plane loops are
// vectorised for the ISA that runs them, with `simd` (8 or 0) a constant in each.
static inline __attribute__((always_inline)) void nlm_pair_body(const nlm_ctx *k, nlm_scratch *sc, int dy, int dx,
                                                                int *restrict acc, int *restrict wsum, int simd) {
    const int h = k->h, w = k->w, cn = k->cn, t = k->th, tw = 2 * t + 1, W = k->W, b = k->sh + k->th;
    const size_t plane = (size_t)k->H * W;
    // p = (i, j) ranges over i in [i0, i0 + RH): the union of p in the image (i in [0, h)) and
    // p + d in the image (i in [-dy, h - dy)); the same for j.
    int i0 = dy > 0 ? -dy : 0, j0 = dx > 0 ? -dx : 0;
    int RH = h + (dy > 0 ? dy : -dy), RW = w + (dx > 0 ? dx : -dx);
    int DW = RW + 2 * t;
    const int shift = k->shift, cut = k->cut;
    const int *restrict wtab = k->wtab;
    // Streamed row by row so the working set stays in L1: a ring of tw + 1 rows of D, the
    // running vertical sums V, then S and the weights of one region row.
    int *restrict V = sc->V, *restrict S = sc->S, *restrict Wt = sc->Wt;
    int ring = tw + 1;
    for (int y = 0; y < RH + tw - 1; y++) {
        int *restrict drow = sc->D + (size_t)(y % ring) * DW;
        for (int x = 0; x < DW; x++) drow[x] = 0;
        for (int c = 0; c < cn; c++) {
            const int16_t *restrict a = k->E + c * plane + (size_t)(b + i0 - t + y) * W + (b + j0 - t);
            const int16_t *restrict q = a + (ptrdiff_t)dy * W + dx;
            for (int x = 0; x < DW; x++) {
                int d = a[x] - q[x];
                drow[x] += d * d;
            }
        }
        // V: the sum of rows y - tw + 1 .. y of D. Row 0 sets it (also when tw = 1, where row 0
        // is a whole template), the next tw - 1 add, later rows slide.
        if (y == 0) {
            for (int x = 0; x < DW; x++) V[x] = drow[x];
        } else if (y < tw) {
            for (int x = 0; x < DW; x++) V[x] += drow[x];
        } else {
            const int *restrict old = sc->D + (size_t)((y - tw) % ring) * DW;
            for (int x = 0; x < DW; x++) V[x] += drow[x] - old[x];
        }
        if (y < tw - 1) continue;
        int ry = y - tw + 1; // region row whose template rows are ry .. y
#ifdef NLM_X86
        if (simd == 8) nlm_weights_row8(V, S, Wt, RW, tw, shift, cut, wtab);
        else
#endif
            nlm_weights_row(V, S, Wt, 0, RW, tw, shift, cut, wtab);
        // Pixel p = (i0 + ry, j0 + x) in the image takes candidate p + d; pixel p + d takes candidate p.
        for (int pass = 0; pass < 2; pass++) {
            int oy = pass ? dy : 0, ox = pass ? dx : 0; // the pixel receiving: p + (oy, ox)
            int cy = pass ? 0 : dy, cx = pass ? 0 : dx; // its candidate: p + (cy, cx)
            int i = i0 + ry + oy;
            if (i < 0 || i >= h) continue;
            int xlo = -j0 - ox; // columns x with 0 <= j0 + x + ox < w
            const int *restrict wt = Wt + xlo;
            int *restrict ws = wsum + (size_t)i * w;
            size_t crow = (size_t)(b + i0 + ry + cy) * W + (b + j0 + xlo + cx);
            if (cn == 1) {
                int *restrict ac = acc + (size_t)i * w;
                const int16_t *restrict p = k->E + crow;
                for (int x = 0; x < w; x++) {
                    ws[x] += wt[x];
                    ac[x] += wt[x] * p[x];
                }
            } else {
                int *restrict ac0 = acc + (size_t)i * w, *restrict ac1 = acc + (size_t)(h + i) * w;
                const int16_t *restrict p0 = k->E + crow, *restrict p1 = k->E + plane + crow;
                for (int x = 0; x < w; x++) {
                    ws[x] += wt[x];
                    ac0[x] += wt[x] * p0[x];
                    ac1[x] += wt[x] * p1[x];
                }
            }
        }
    }
}

typedef void nlm_pair_fn(const nlm_ctx *k, nlm_scratch *sc, int dy, int dx, int *acc, int *wsum);

static void nlm_pair(const nlm_ctx *k, nlm_scratch *sc, int dy, int dx, int *acc, int *wsum) {
    nlm_pair_body(k, sc, dy, dx, acc, wsum, 0);
}
#ifdef NLM_X86
NLM_AVX2 static void nlm_pair8(const nlm_ctx *k, nlm_scratch *sc, int dy, int dx, int *acc, int *wsum) {
    nlm_pair_body(k, sc, dy, dx, acc, wsum, 8);
}
#endif

static nlm_pair_fn *nlm_pick(void) {
#ifdef NLM_X86
    if (rcv_cpu_simd() >= 8) return nlm_pair8;
#endif
    return nlm_pair;
}

int rcv_nlmeans(const uint8_t *src, uint8_t *dst, int h, int w, int cn, float hh, int tws, int sws) {
    if (h <= 0 || w <= 0 || (cn != 1 && cn != 2))
        return rcv_fail("nlmeans: image %d x %d x %d, expected a positive size and 1 or 2 channels", h, w, cn);
    if (tws < 1 || sws < 1 || !(tws & 1) || !(sws & 1))
        return rcv_fail("nlmeans: template window %d, search window %d, expected odd sizes >= 1", tws, sws);
    if (!(hh >= 0)) return rcv_fail("nlmeans: h = %g, expected >= 0", hh);
    int th = tws / 2, sh = sws / 2, b = th + sh;
    int H = h + 2 * b, W = w + 2 * b;
    size_t plane = (size_t)H * W;
    int16_t *E = rcv_xmalloc(sizeof(int16_t) * plane * cn);
    for (int y = 0; y < H; y++) {
        int sy = reflect101(y - b, h);
        for (int x = 0; x < W; x++) {
            int sx = reflect101(x - b, w);
            for (int c = 0; c < cn; c++) E[c * plane + (size_t)y * W + x] = src[((size_t)sy * w + sx) * cn + c];
        }
    }
    // OpenCV's fixed-point weights: the largest multiplier keeping sws^2 * 255 * weight in an int.
    int fpm = INT_MAX / (sws * sws * 255);
    int shift = 0;
    while ((1 << shift) < tws * tws) shift++;
    double mult = (double)(1 << shift) / (tws * tws);
    int max_almost = (int)(255.0 * 255.0 * cn / mult + 1);
    int *wtab = rcv_xmalloc(sizeof(int) * (size_t)(max_almost + 1));
    // Weights fall with distance: the table ends at the first 0 (`cut`), and every larger
    // quantized SSD maps to wtab[cut] = 0.
    int cut = max_almost;
    for (int d = 0; d < max_almost; d++) {
        double dist = d * mult, wv = exp(-dist / ((double)hh * hh * cn));
        if (isnan(wv)) wv = 1.0; // h = 0
        int wt = (int)lrint(fpm * wv);
        if (wt < 0.001 * fpm) {
            cut = d;
            break;
        }
        wtab[d] = wt;
    }
    wtab[cut] = 0;
    nlm_ctx k = {E, H, W, h, w, cn, th, sh, shift, cut, wtab};
    nlm_pair_fn *pair = nlm_pick();
    // Displacements with dy > 0, or dy == 0 and dx > 0: each stands for itself and its opposite.
    int n_pairs = (sws * sws - 1) / 2;
    size_t npix = (size_t)h * w;
    int *acc = rcv_xcalloc(npix * (cn + 1), sizeof(int)); // cn planes of sums, then the weight sums
    int nthr = 1;
#ifdef _OPENMP
    nthr = omp_get_max_threads();
    if (n_pairs < 16 * nthr || npix < 1024) nthr = 1;
#endif
    // Integer sums: the result is the same for any thread count and order.
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        size_t big = (size_t)(h + 2 * sh + 2 * th) * (w + 2 * sh + 2 * th);
        nlm_scratch sc = {rcv_xmalloc(big * sizeof(int)), rcv_xmalloc(big * sizeof(int)), rcv_xmalloc(big * sizeof(int)),
                          rcv_xmalloc(big * sizeof(int))};
        int *mine = rcv_xcalloc(npix * (cn + 1), sizeof(int));
#pragma omp for schedule(dynamic, 4)
        for (int pi = 0; pi < n_pairs; pi++) {
            int lin = (sws * sws + 1) / 2 + pi; // linear index past the centre
            int dy = lin / sws - sh, dx = lin % sws - sh;
            pair(&k, &sc, dy, dx, mine, mine + npix * cn);
        }
#pragma omp critical
        for (size_t i = 0; i < npix * (cn + 1); i++) acc[i] += mine[i];
        free(mine);
        free(sc.D);
        free(sc.V);
        free(sc.S);
        free(sc.Wt);
    }
    // The centre displacement: SSD 0, weight wtab[0], candidate = the pixel itself.
    int w0 = wtab[0];
    int *wsum = acc + npix * cn;
    for (size_t p = 0; p < npix; p++) {
        wsum[p] += w0;
        for (int c = 0; c < cn; c++) acc[c * npix + p] += w0 * src[p * cn + c];
    }
    for (size_t p = 0; p < npix; p++) {
        unsigned ws = (unsigned)wsum[p];
        for (int c = 0; c < cn; c++) {
            unsigned v = ((unsigned)acc[c * npix + p] + ws / 2) / ws;
            dst[p * cn + c] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    free(acc);
    free(wtab);
    free(E);
    return 0;
}

int rcv_nlmeans_colored(const uint8_t *src, uint8_t *dst, int h, int w, float h_lum, float h_color, int tws, int sws) {
    size_t n = (size_t)h * w;
    if (h <= 0 || w <= 0) return rcv_fail("nlmeans: image %d x %d, expected a positive size", h, w);
    uint8_t *lab = rcv_xmalloc(n * 3), *l = rcv_xmalloc(n), *ab = rcv_xmalloc(n * 2);
    rcv_rgb_to_lab8(src, lab, (int)n);
    for (size_t i = 0; i < n; i++) {
        l[i] = lab[3 * i];
        ab[2 * i] = lab[3 * i + 1];
        ab[2 * i + 1] = lab[3 * i + 2];
    }
    int rc = rcv_nlmeans(l, l, h, w, 1, h_lum, tws, sws);
    if (!rc) rc = rcv_nlmeans(ab, ab, h, w, 2, h_color, tws, sws);
    if (!rc) {
        for (size_t i = 0; i < n; i++) {
            lab[3 * i] = l[i];
            lab[3 * i + 1] = ab[2 * i];
            lab[3 * i + 2] = ab[2 * i + 1];
        }
        rcv_lab8_to_rgb(lab, dst, (int)n);
    }
    free(lab);
    free(l);
    free(ab);
    return rc;
}
