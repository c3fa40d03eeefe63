// A growable byte buffer (src/core/buf.c): appends double its capacity as needed and keep a NUL
// after the bytes, so text can be read in place. A buffer whose size comes from input (a request
// body, the copies a file asks for) gets a limit: an append past it fails with a message naming
// the buffer and leaves it as it was, instead of allocating what the input claims.
#ifndef RCV_BUF_H
#define RCV_BUF_H

#include <stddef.h>

typedef struct {
    char *data;       // len bytes, then a NUL; NULL until the first append
    size_t len, cap;  // cap counts the NUL
    size_t limit;     // most bytes it may hold; 0 = no limit (a limit from input is at least 1)
    const char *what; // named in the message, e.g. "the request body"; NULL = "buffer"
} rcv_buf;

// Room for n more bytes (data may move). 0, or -1 with a message when len + n passes the limit.
int rcv_buf_reserve(rcv_buf *b, size_t n);
// Appends n bytes of p. 0, or -1 with a message (the buffer unchanged) past the limit.
int rcv_buf_append(rcv_buf *b, const void *p, size_t n);
// Appends n bytes for the caller to fill: where they start, or NULL with a message past the limit.
void *rcv_buf_grow(rcv_buf *b, size_t n);
// Empty again (keeps the memory, the limit and the name).
void rcv_buf_clear(rcv_buf *b);
// Frees the memory; the limit and the name stay.
void rcv_buf_free(rcv_buf *b);

#endif
