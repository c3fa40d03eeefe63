// batchnorm2d and normalize builders.
#include "ops/op_util.h"
#include "robustcv/ops.h"

int rcv_batchnorm2d(rcv_graph *g, const char *name, int x, float eps, float momentum) {
    if (rcv_check_node(g, x, "batchnorm2d", name)) return -1;
    int id = rcv_graph_add_node(g, RCV_OP_BATCHNORM2D, name, &x, 1);
    if (id < 0) return id;
    rcv_node *n = &g->nodes[id];
    n->shape = g->nodes[x].shape;
    n->attr.bn = (rcv_bn_attr){eps, momentum};
    int c = n->shape.c;
    rcv_add_named_param(g, id, name, "weight", RCV_PARAM, 1, c, 0, 0, 0);
    rcv_add_named_param(g, id, name, "bias", RCV_PARAM, 1, c, 0, 0, 0);
    rcv_add_named_param(g, id, name, "running_mean", RCV_BUFFER, 1, c, 0, 0, 0);
    rcv_add_named_param(g, id, name, "running_var", RCV_BUFFER, 1, c, 0, 0, 0);
    rcv_add_named_param(g, id, name, "num_batches_tracked", RCV_BUFFER_I64, 0, 0, 0, 0, 0);
    return id;
}

int rcv_normalize(rcv_graph *g, const char *name, int x, const float *mean, const float *std) {
    if (rcv_check_node(g, x, "normalize", name)) return -1;
    rcv_shape s = g->nodes[x].shape;
    if (s.c > 4) return rcv_fail("normalize '%s': %d channels, expected at most 4", name, s.c);
    for (int c = 0; c < s.c; c++)
        if (!(std[c] > 0)) return rcv_fail("normalize '%s': std[%d] = %g, expected > 0", name, c, std[c]);
    int id = rcv_graph_add_node(g, RCV_OP_NORMALIZE, name, &x, 1);
    if (id < 0) return id;
    rcv_node *n = &g->nodes[id];
    n->shape = s;
    for (int c = 0; c < s.c; c++) {
        n->attr.norm.mean[c] = mean[c];
        n->attr.norm.std[c] = std[c];
    }
    return id;
}
