// The growable byte buffer (buf.h): the one grow-by-doubling loop of the parsers, the JSON
// writer and the server.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/buf.h"
#include "robustcv/error.h"

int rcv_buf_reserve(rcv_buf *b, size_t n) {
    const char *what = b->what ? b->what : "buffer";
    if (b->limit && n > b->limit - b->len)
        return rcv_fail("%s: %zu more bytes after %zu would pass its limit of %zu bytes", what, n, b->len, b->limit);
    if (n > SIZE_MAX - 1 - b->len) return rcv_fail("%s: %zu more bytes after %zu overflow a size", what, n, b->len);
    size_t need = b->len + n + 1; // the NUL
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : 2 * cap;
    b->data = rcv_xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

void *rcv_buf_grow(rcv_buf *b, size_t n) {
    if (rcv_buf_reserve(b, n)) return NULL;
    char *p = b->data + b->len;
    b->len += n;
    b->data[b->len] = 0;
    return p;
}

int rcv_buf_append(rcv_buf *b, const void *p, size_t n) {
    char *dst = rcv_buf_grow(b, n);
    if (!dst) return -1;
    if (n) memcpy(dst, p, n);
    return 0;
}

void rcv_buf_clear(rcv_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

void rcv_buf_free(rcv_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
