// --augment specs parsed and applied. Input: the spec, then optionally "\n----\n" and bytes that pick
// the image (byte 0: channels 1 or 3; bytes 1, 2: height and width 1..32; then pixels). The output
// must stay finite (the transforms keep pixels in [0, 1] up to rounding).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "robustcv/augment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *rest;
    size_t rn;
    char *spec = fuzz_split(data, size, &rest, &rn);
    rcv_augment *a;
    if (rcv_augment_parse(&a, spec) == 0) {
        int c = rn > 0 && (rest[0] & 1) ? 1 : 3;
        int h = rn > 1 ? 1 + rest[1] % 32 : 12, w = rn > 2 ? 1 + rest[2] % 32 : 16;
        size_t n = (size_t)h * w * c;
        float *x = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) x[i] = 3 + i < rn ? rest[3 + i] / 255.0f : (float)((i * 37) % 256) / 255.0f;
        float boxes[8] = {1, 1, w * 0.5f, h * 0.5f, 0, 0, (float)w, (float)h};
        rcv_rng r;
        rcv_rng_init(&r, 7);
        for (int rep = 0; rep < 2; rep++) {
            rcv_augment_apply(a, &r, x, h, w, c, boxes, 2);
            for (size_t i = 0; i < n; i++)
                if (!isfinite(x[i])) {
                    fprintf(stderr, "augment '%s': pixel %zu is %g\n", spec, i, x[i]);
                    abort();
                }
            for (int i = 0; i < 8; i++)
                if (!isfinite(boxes[i])) {
                    fprintf(stderr, "augment '%s': box coordinate %d is %g\n", spec, i, boxes[i]);
                    abort();
                }
        }
        (void)rcv_augment_count(a);
        free(x);
        rcv_augment_free(a);
    }
    free(spec);
    return 0;
}
