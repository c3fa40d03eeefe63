// IDX images + labels (rcv_idx_load), raw or gzipped. Input: byte 0 (bit 0: gzip the images file,
// bit 1: gzip the labels file), bytes 1..4 the images file's length (little-endian, clamped), the
// images file, then the labels file.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "robustcv/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    unsigned flags = data[0];
    size_t ilen = (size_t)data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16 | (size_t)data[4] << 24;
    data += 5, size -= 5;
    if (ilen > size) ilen = size;
    const char *ip = flags & 1 ? fuzz_write_gz("images.gz", data, ilen) : fuzz_write("images", data, ilen);
    const char *lp = flags & 2 ? fuzz_write_gz("labels.gz", data + ilen, size - ilen)
                               : fuzz_write("labels", data + ilen, size - ilen);
    rcv_dataset d;
    if (rcv_idx_load(&d, ip, lp) == 0) {
        if ((size_t)d.n * d.h * d.w > size * 1032 + 64 || d.n_classes < 1 || d.n_classes > 256) {
            fprintf(stderr, "idx: %d images of %dx%d, %d classes from %zu input bytes\n", d.n, d.h, d.w,
                    d.n_classes, size);
            abort();
        }
        rcv_dataset_free(&d);
    }
    return 0;
}
