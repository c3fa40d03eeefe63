// Data source specs shared by every command.
#include <stdio.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/train.h"

int rcv_data_open(const char *spec, int train, rcv_dataset *d) {
    const char *colon = strchr(spec, ':');
    char kind[64];
    size_t kl = colon ? (size_t)(colon - spec) : strlen(spec);
    if (kl >= sizeof kind) kl = sizeof kind - 1;
    memcpy(kind, spec, kl);
    kind[kl] = 0;
    const char *path = colon ? colon + 1 : NULL;
    if (!strcmp(kind, "fashion-mnist"))
        return rcv_fashion_mnist_load(d, path && *path ? path : "/usr/share/datasets/fashion-mnist", train);
    return rcv_fail("--data '%s': unknown source '%s', expected fashion-mnist[:DIR]", spec, kind);
}
