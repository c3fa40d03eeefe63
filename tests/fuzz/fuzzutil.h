// Shared by the fuzz harnesses (tests/fuzz/fuzz_*.c): a private scratch directory for the
// parsers that read files, and splitting one input into parts. Each harness defines
// LLVMFuzzerTestOneInput; libFuzzer (RCV_FUZZ build) or replay.c (every build) calls it.
#ifndef RCV_FUZZUTIL_H
#define RCV_FUZZUTIL_H
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
// This process's scratch directory (created once: $TMPDIR or /tmp, rcv-fuzz-XXXXXX, removed at exit).
const char *fuzz_dir(void);
// dir/name with the bytes (made with its parent directories); returns the path in a static buffer
// slot (8 slots, reused in turn).
const char *fuzz_write(const char *name, const void *data, size_t len);
// gzip-compressed copy of the bytes at path (level 1).
const char *fuzz_write_gz(const char *name, const void *data, size_t len);
// Removes dir/name (a file or an empty directory; ignores errors).
void fuzz_remove(const char *name);
// NUL-terminated copy of data (free it).
char *fuzz_strndup(const uint8_t *data, size_t len);
// Splits data at the first "\n----\n" into a head (NUL-terminated copy) and the rest.
char *fuzz_split(const uint8_t *data, size_t len, const uint8_t **rest, size_t *rest_len);
#endif
