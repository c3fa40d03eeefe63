// Re-planning the classifier under attack for fewer images: FAB and Square query only the points
// still robust, and a forward at the planned batch costs the whole batch however few rows are
// real, so when the active set falls well below the batch the members are re-planned smaller
// (and back at the end). Measured on smallcnn at 28x28: a plan ~200 ms, a forward ~0.5 ms/image.
#include "robust/robust.h"

int rcv_classifier_batch(const rcv_classifier *f) { return f->models[0]->g->batch; }

int rcv_classifier_replan(const rcv_classifier *f, int batch) {
    for (int m = 0; m < f->n_models; m++)
        if (rcv_attack_prepare(f->models[m], batch, f->models[m]->g->backend)) return -1;
    return 0;
}

int rcv_classifier_fit(const rcv_classifier *f, int active, int full) {
    int b = rcv_classifier_batch(f), want = active < 8 ? 8 : (active + 7) / 8 * 8;
    if (want > full) want = full;
    // Grow back when the points no longer fit; shrink when a quarter of the rows (at least 8)
    // would be padding: a plan costs about as much as a few hundred image forwards, a padded row
    // one forward per query.
    int slack = b / 4 > 8 ? b / 4 : 8;
    if (want > b || (active > 0 && b - want >= slack)) return rcv_classifier_replan(f, want);
    return 0;
}
