// PNG and JPEG decoding from memory (rcv_image_decode, src/io/image.c), then the conversions a
// loader applies (gray, bilinear resize to 8x8).
#include <stdio.h>
#include <stdlib.h>

#include "fuzzutil.h"
#include "robustcv/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rcv_image img = {0};
    if (rcv_image_decode(data, size, "fuzz", &img) == 0) {
        if (img.c != 3 || img.w < 1 || img.h < 1 || !img.pix) {
            fprintf(stderr, "decoded image %dx%dx%d\n", img.w, img.h, img.c);
            abort();
        }
        rcv_image g = {0}, r = {0};
        rcv_image_to_gray(&img, &g);
        rcv_image_resize_bilinear(&g, 8, 8, &r);
        rcv_image_free(&r);
        rcv_image_free(&g);
    }
    rcv_image_free(&img);
    return 0;
}
