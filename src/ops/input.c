// Graph inputs: images (or any float tensor) and integer labels.
#include "ops/op_util.h"
#include "robustcv/ops.h"

int rcv_input(rcv_graph *g, const char *name, int c, int h, int w) {
    if (c <= 0 || h <= 0 || w <= 0)
        return rcv_fail("input '%s': shape (N, %d, %d, %d), expected positive sizes", name, c, h, w);
    int id = rcv_graph_add_node(g, RCV_OP_INPUT, name, NULL, 0);
    if (id < 0) return id;
    g->nodes[id].shape = (rcv_shape){0, c, h, w};
    return id;
}

int rcv_labels(rcv_graph *g, const char *name) {
    int id = rcv_graph_add_node(g, RCV_OP_LABELS, name, NULL, 0);
    if (id < 0) return id;
    g->nodes[id].shape = (rcv_shape){0, 1, 1, 1};
    return id;
}
