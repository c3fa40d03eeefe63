// A graph's parameters and buffers to and from safetensors, under torchvision's names.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/safetensors.h"

void rcv_st_add_graph(rcv_st_writer *w, const rcv_graph *g) {
    // Storage is allocated on first use; the graph object itself is not const at its origin.
    rcv_graph_seal_params((rcv_graph *)g);
    rcv_graph_params_to_host((rcv_graph *)g); // a GPU plan holds the current values
    for (int i = 0; i < g->n_params; i++) {
        const rcv_param *p = &g->param_info[i];
        switch (p->kind) {
        case RCV_PARAM: rcv_st_add(w, p->name, RCV_DT_F32, p->ndim, p->shape, g->params + p->offset); break;
        case RCV_BUFFER: rcv_st_add(w, p->name, RCV_DT_F32, p->ndim, p->shape, g->buffers + p->offset); break;
        case RCV_BUFFER_I64: rcv_st_add(w, p->name, RCV_DT_I64, p->ndim, p->shape, g->ibuffers + p->offset); break;
        }
    }
}

static void shape_str(char *b, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(b, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(b + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(b + k, n - k, "]");
}

static int skipped(const char *name, const char *prefix) {
    return prefix && prefix[0] && !strncmp(name, prefix, strlen(prefix));
}

// Appends ", name" to a bounded list (at most 8 names; the caller adds "..." for the rest).
static void list_add(char *b, size_t cap, int *listed, const char *name) {
    size_t k = strlen(b);
    if (*listed < 8 && k + strlen(name) + 3 < cap) {
        snprintf(b + k, cap - k, "%s%s", *listed ? ", " : "", name);
        (*listed)++;
    }
}

int rcv_st_load_graph(const rcv_safetensors *st, rcv_graph *g, int strict, int ignore_unexpected,
                      const char *skip_prefix, int *missing) {
    rcv_graph_seal_params(g);
    rcv_graph_params_changed(g);
    if (missing) *missing = 0;
    // Validate everything first: a failed load leaves the graph untouched.
    int n_missing = 0, listed = 0;
    char list[512] = "";
    for (int i = 0; i < g->n_params; i++) {
        const rcv_param *p = &g->param_info[i];
        if (skipped(p->name, skip_prefix)) continue;
        const rcv_st_tensor *t = rcv_st_find(st, p->name);
        if (!t) {
            n_missing++;
            list_add(list, sizeof list, &listed, p->name);
            continue;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char a[160], b[160];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, p->ndim, p->shape);
            return rcv_fail("%s: '%s' has shape %s, the model expects %s", st->path, p->name, a, b);
        }
        if (t->dtype == RCV_DT_BOOL && p->kind != RCV_BUFFER_I64)
            return rcv_fail("%s: '%s' has dtype BOOL, expected a floating-point dtype", st->path, p->name);
    }
    if (n_missing && strict)
        return rcv_fail("%s: %d tensor%s the model expects %s missing: %s%s", st->path, n_missing,
                        n_missing == 1 ? "" : "s", n_missing == 1 ? "is" : "are", list,
                        n_missing > listed ? ", ..." : "");
    if (!ignore_unexpected) {
        int n_unexp = 0;
        listed = 0;
        list[0] = 0;
        for (int i = 0; i < st->n; i++) {
            const char *name = st->t[i].name;
            if (skipped(name, skip_prefix) || rcv_graph_find_param(g, name) >= 0) continue;
            n_unexp++;
            list_add(list, sizeof list, &listed, name);
        }
        if (n_unexp)
            return rcv_fail("%s: %d tensor%s in the file %s not in the model: %s%s", st->path, n_unexp,
                            n_unexp == 1 ? "" : "s", n_unexp == 1 ? "is" : "are", list,
                            n_unexp > listed ? ", ..." : "");
    }
    rcv_graph_params_to_host(g); // tensors the file lacks keep their current (GPU) values
    for (int i = 0; i < g->n_params; i++) {
        const rcv_param *p = &g->param_info[i];
        if (skipped(p->name, skip_prefix) || !rcv_st_find(st, p->name)) continue;
        int rc;
        if (p->kind == RCV_BUFFER_I64) rc = rcv_st_read_i64(st, p->name, g->ibuffers + p->offset, p->numel);
        else rc = rcv_st_read_f32(st, p->name, rcv_param_data(g, i), p->numel);
        if (rc) return -1; // only a non-integral float in an I64 buffer can get here
    }
    rcv_graph_params_to_device(g); // no-op unless planned on a GPU
    if (missing) *missing = n_missing;
    return 0;
}
