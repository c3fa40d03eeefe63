// --data specs (rcv_data_spec_parse, what rcv_data_open runs before opening anything), for the train
// and the test split. A parsed spec must name a path and keep its options in range.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/listing.h"
#include "fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *spec = fuzz_strndup(data, size);
    static rcv_data_spec s;
    for (int train = 0; train < 2; train++)
        if (rcv_data_spec_parse(spec, train, &s) == 0) {
            if (!s.path || s.o.size < 0 || s.o.size > 4096 ||
                (s.kind == RCV_DATA_TINY_IMAGENET_C && (s.severity < 1 || s.severity > 5 || train))) {
                fprintf(stderr, "--data '%s': parsed to kind %d, size %d, severity %d\n", spec, s.kind, s.o.size,
                        s.severity);
                abort();
            }
        }
    free(spec);
    return 0;
}
