// linear builder: (N, F, 1, 1) -> (N, out, 1, 1); weight (out, F), bias (out).
#include "ops/op_util.h"
#include "robustcv/ops.h"

int rcv_linear(rcv_graph *g, const char *name, int x, int out, int bias) {
    if (rcv_check_node(g, x, "linear", name)) return -1;
    rcv_shape s = g->nodes[x].shape;
    if (s.h != 1 || s.w != 1)
        return rcv_fail("linear '%s': input is (N, %d, %d, %d), expected (N, F, 1, 1): flatten or pool first", name,
                        s.c, s.h, s.w);
    if (out <= 0) return rcv_fail("linear '%s': out_features %d, expected > 0", name, out);
    int id = rcv_graph_add_node(g, RCV_OP_LINEAR, name, &x, 1);
    if (id < 0) return id;
    g->nodes[id].shape = (rcv_shape){0, out, 1, 1};
    g->nodes[id].attr.conv.has_bias = bias;
    rcv_add_named_param(g, id, name, "weight", RCV_PARAM, 2, out, s.c, 0, 0);
    if (bias) rcv_add_named_param(g, id, name, "bias", RCV_PARAM, 1, out, 0, 0, 0);
    return id;
}
