// Tiny ImageNet's words.txt (src/data/tinyimagenet.c): the input replaces words.txt of a small tree.
#include "tinyimagenet_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return ti_run(data, size, "words.txt", RCV_SPLIT_TRAIN);
}
