// Minimal test harness: CHECK records a failure and goes on; test_done prints
// "N passed, N failed" and returns the exit code.
#ifndef RCV_TESTUTIL_H
#define RCV_TESTUTIL_H

#include <stddef.h>
#include <stdio.h>

extern int rcv_test_pass, rcv_test_fail;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (cond) rcv_test_pass++;                                               \
        else {                                                                   \
            rcv_test_fail++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, "\n");                                               \
        }                                                                        \
    } while (0)

int test_done(void);
// max_i |a_i - b_i| / max(max_i |b_i|, floor): error relative to b's scale.
double max_rel_err(const float *a, const float *b, size_t n, double floor);
double max_abs_err(const float *a, const float *b, size_t n);
// Deterministic fill with values in [lo, hi).
void fill_uniform(float *x, size_t n, unsigned seed, float lo, float hi);
// Path of a fresh temporary directory (created); caller frees nothing (static buffer per call).
const char *test_tmpdir(const char *tag);
// 1 when RCV_QUICK is set (sanitizer runs use smaller sizes).
int test_quick(void);
// Runs a shell command, returns its exit status (-1 if it could not run).
int test_sh(const char *fmt, ...);

#include "robustcv/models.h"
// A smallcnn for c x h x w images and k classes (normalization mean 0.3, std 0.4) whose batchnorm
// running statistics are drawn unlike any batch's (means in [-0.2, 0.2], variances in [0.5, 1.5],
// from seed + 7), so eval mode differs from train mode. Exits with the message on failure.
void test_build_smallcnn(rcv_model *m, int c, int h, int w, int k, uint64_t seed);

#endif
