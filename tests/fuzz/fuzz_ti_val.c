// Tiny ImageNet's val_annotations.txt (src/data/tinyimagenet.c): the input replaces val/val_annotations.txt of a small tree.
#include "tinyimagenet_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return ti_run(data, size, "val/val_annotations.txt", RCV_SPLIT_VAL);
}
