// Errors: every library function that can fail returns 0 on success and -1 on
// failure, after setting a message that names the file, the value and what was
// expected. The message lives in a thread-local buffer (like errno), the one
// piece of process-wide state, read with rcv_error().
#ifndef RCV_ERROR_H
#define RCV_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
#define RCV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RCV_PRINTF(a, b)
#endif

// Sets the message and returns -1, so `return rcv_fail("...")` reads naturally.
int rcv_fail(const char *fmt, ...) RCV_PRINTF(1, 2);
// Prepends context ("loading x.safetensors: ") to the current message; returns -1.
int rcv_fail_ctx(const char *fmt, ...) RCV_PRINTF(1, 2);
const char *rcv_error(void);
void rcv_error_clear(void);

// Allocation that fails loudly: prints and aborts (out of memory is not recoverable input).
void *rcv_xmalloc(size_t n);
void *rcv_xcalloc(size_t n, size_t sz);
void *rcv_xrealloc(void *p, size_t n);
// 64-byte aligned, zeroed; free with free().
void *rcv_alloc_aligned(size_t n);
char *rcv_xstrdup(const char *s);

#endif
