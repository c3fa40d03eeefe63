// Tiny ImageNet's n01_boxes.txt (src/data/tinyimagenet.c): the input replaces train/n01/n01_boxes.txt of a small tree.
#include "tinyimagenet_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return ti_run(data, size, "train/n01/n01_boxes.txt", RCV_SPLIT_TRAIN);
}
