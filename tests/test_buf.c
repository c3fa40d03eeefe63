// rcv_buf against a flat reference array: random appends, the limit (refused appends leave the
// buffer as it was, and the message names the buffer, the sizes and the limit), grow, clear and
// the size_t overflow guard.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/buf.h"
#include "robustcv/error.h"
#include "testutil.h"

static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }

static void test_appends(void) {
    enum { CAP = 1 << 20 };
    uint8_t *ref = malloc(CAP), chunk[4096];
    size_t n_ref = 0;
    uint32_t s = 12345;
    rcv_buf b = {0};
    int ok = 1;
    for (int i = 0; i < 400 && ok; i++) {
        size_t n = lcg(&s) % (i % 7 == 0 ? 4096 : 40); // mostly small, some large, some empty
        for (size_t j = 0; j < n; j++) chunk[j] = (uint8_t)(lcg(&s) >> 24);
        ok = rcv_buf_append(&b, chunk, n) == 0;
        memcpy(ref + n_ref, chunk, n);
        n_ref += n;
        ok = ok && b.len == n_ref && b.cap > b.len && b.data[b.len] == 0 && !memcmp(b.data, ref, n_ref);
    }
    CHECK(ok, "after appends: len %zu (want %zu), cap %zu", b.len, n_ref, b.cap);
    size_t cap = b.cap;
    rcv_buf_clear(&b);
    CHECK(b.len == 0 && b.cap == cap && b.data[0] == 0, "clear keeps the memory: len %zu cap %zu", b.len, b.cap);
    CHECK(rcv_buf_append(&b, "abc", 3) == 0 && b.len == 3 && !strcmp(b.data, "abc"), "append after clear: '%s'",
          b.data);
    rcv_buf_free(&b);
    CHECK(!b.data && b.len == 0 && b.cap == 0, "free");
    free(ref);
}

static void test_limit(void) {
    rcv_buf b = {.limit = 1000, .what = "the request body"};
    char x[1000];
    for (int i = 0; i < 1000; i++) x[i] = (char)('a' + i % 26);
    CHECK(rcv_buf_append(&b, x, 600) == 0, "%s", rcv_error());
    CHECK(rcv_buf_append(&b, x + 600, 500) == -1, "600 + 500 bytes pass the limit of 1000");
    const char *e = rcv_error();
    CHECK(strstr(e, "the request body") && strstr(e, "500") && strstr(e, "600") && strstr(e, "1000"),
          "message names the buffer, the sizes and the limit: %s", e);
    CHECK(b.len == 600 && !memcmp(b.data, x, 600) && b.data[600] == 0, "a refused append leaves the buffer: len %zu",
          b.len);
    CHECK(rcv_buf_append(&b, x + 600, 400) == 0 && b.len == 1000 && !memcmp(b.data, x, 1000),
          "up to the limit exactly: %s", rcv_error());
    CHECK(rcv_buf_grow(&b, 1) == NULL && b.len == 1000, "one byte past the limit");
    rcv_buf_free(&b);
    CHECK(b.limit == 1000 && b.what, "free keeps the limit and the name");

    rcv_buf g = {.limit = 64};
    char *p = rcv_buf_grow(&g, 10);
    CHECK(p == g.data && g.len == 10 && g.data[10] == 0, "grow returns the old end");
    memset(p, 'z', 10);
    p = rcv_buf_grow(&g, 54);
    CHECK(p == g.data + 10 && g.len == 64 && g.data[0] == 'z', "grow to the limit");
    CHECK(rcv_buf_reserve(&g, 1) == -1 && strstr(rcv_error(), "buffer"), "unnamed buffer: %s", rcv_error());
    rcv_buf_free(&g);

    rcv_buf u = {0}; // no limit: a size_t overflow is still refused, before any allocation
    CHECK(rcv_buf_append(&u, "x", 1) == 0, "%s", rcv_error());
    CHECK(rcv_buf_reserve(&u, SIZE_MAX) == -1 && strstr(rcv_error(), "overflow") && u.len == 1 && u.cap < 4096,
          "SIZE_MAX more bytes: %s", rcv_error());
    rcv_buf_free(&u);
}

int main(void) {
    test_appends();
    test_limit();
    return test_done();
}
