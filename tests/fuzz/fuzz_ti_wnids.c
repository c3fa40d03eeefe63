// Tiny ImageNet's wnids.txt (src/data/tinyimagenet.c): the input replaces wnids.txt of a small tree.
#include "tinyimagenet_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return ti_run(data, size, "wnids.txt", RCV_SPLIT_TRAIN);
}
