// --sched specs (rcv_sched_parse), then the rates over a run: a parsed schedule must give a finite,
// non-negative rate at every epoch.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzzutil.h"
#include "robustcv/optim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *spec = fuzz_strndup(data, size);
    rcv_sched s;
    if (rcv_sched_parse(&s, spec) == 0) {
        rcv_sched_set_total(&s, 90);
        for (int e = 0; e < 100; e++) {
            float lr = rcv_sched_lr(&s, 0.1f, e + 0.5 * (e & 1));
            (void)rcv_sched_cycle_end(&s, e);
            if (!isfinite(lr) || lr < 0) {
                fprintf(stderr, "schedule '%s': lr %g at epoch %d\n", spec, lr, e);
                abort();
            }
        }
    }
    free(spec);
    return 0;
}
