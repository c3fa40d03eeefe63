#include "robustcv/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_buf[2048];

int rcv_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return -1;
}

int rcv_fail_ctx(const char *fmt, ...) {
    char prefix[1024], old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    size_t lp = strlen(prefix);
    if (lp >= sizeof err_buf) lp = sizeof err_buf - 1;
    memcpy(err_buf, prefix, lp);
    size_t lo = strnlen(old, sizeof old);
    if (lp + lo >= sizeof err_buf) lo = sizeof err_buf - 1 - lp;
    memcpy(err_buf + lp, old, lo);
    err_buf[lp + lo] = 0;
    return -1;
}

const char *rcv_error(void) { return err_buf[0] ? err_buf : "unknown error"; }
void rcv_error_clear(void) { err_buf[0] = 0; }

static void oom(size_t n) {
    fprintf(stderr, "robustcv: out of memory allocating %zu bytes\n", n);
    abort();
}

void *rcv_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *rcv_xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) oom(n * sz);
    return p;
}

void *rcv_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

void *rcv_alloc_aligned(size_t n) {
    size_t sz = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, sz ? sz : 64);
    if (!p) oom(n);
    memset(p, 0, sz ? sz : 64);
    return p;
}

char *rcv_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = rcv_xmalloc(n);
    memcpy(d, s, n);
    return d;
}
