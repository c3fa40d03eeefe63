// Elementwise unary builders: relu, sigmoid, dropout.
#include "ops/op_util.h"
#include "robustcv/ops.h"

static int unary(rcv_graph *g, rcv_op op, const char *name, int x) {
    if (rcv_check_node(g, x, rcv_op_name(op), name)) return -1;
    int id = rcv_graph_add_node(g, op, name, &x, 1);
    if (id < 0) return id;
    g->nodes[id].shape = g->nodes[x].shape;
    return id;
}

int rcv_relu(rcv_graph *g, const char *name, int x) { return unary(g, RCV_OP_RELU, name, x); }
int rcv_sigmoid(rcv_graph *g, const char *name, int x) { return unary(g, RCV_OP_SIGMOID, name, x); }

int rcv_dropout(rcv_graph *g, const char *name, int x, float p) {
    if (!(p >= 0 && p < 1)) return rcv_fail("dropout '%s': p = %g, expected 0 <= p < 1", name, p);
    int id = unary(g, RCV_OP_DROPOUT, name, x);
    if (id >= 0) g->nodes[id].attr.dropout.p = p;
    return id;
}
