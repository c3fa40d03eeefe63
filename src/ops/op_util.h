// Shared by the op builders in src/ops/.
#ifndef RCV_OP_UTIL_H
#define RCV_OP_UTIL_H

#include <stdio.h>

#include "robustcv/error.h"
#include "robustcv/graph.h"

// "prefix.suffix", or "suffix" when prefix is empty.
static inline void rcv_join_name(char *dst, size_t cap, const char *prefix, const char *suffix) {
    if (prefix && prefix[0]) snprintf(dst, cap, "%s.%s", prefix, suffix);
    else snprintf(dst, cap, "%s", suffix);
}

static inline int rcv_check_node(rcv_graph *g, int x, const char *what, const char *name) {
    if (x < 0 || x >= g->n_nodes)
        return rcv_fail("%s '%s': input node %d does not exist (graph has %d nodes)", what, name, x,
                        g->n_nodes);
    return 0;
}

static inline int rcv_add_named_param(rcv_graph *g, int node, const char *prefix, const char *suffix,
                                      rcv_param_kind kind, int ndim, int64_t a, int64_t b, int64_t c,
                                      int64_t d) {
    char full[RCV_NAME];
    int64_t shape[4] = {a, b, c, d};
    rcv_join_name(full, sizeof full, prefix, suffix);
    return rcv_graph_add_param(g, node, full, kind, ndim, shape);
}

#endif
