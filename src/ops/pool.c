// Pooling builders: max, average (PyTorch's output-size rule incl. ceil_mode), global average.
#include "ops/op_util.h"
#include "robustcv/ops.h"

// PyTorch: out = floor_or_ceil((in + 2p - k) / s) + 1, and with ceil_mode the
// last window must start inside the input or left padding.
static int pool_out(int in, int k, int s, int p, int ceil_mode) {
    int num = in + 2 * p - k;
    int o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

static int pool(rcv_graph *g, rcv_op op, const char *name, int x, int k, int stride, int pad, int ceil_mode,
                int cip) {
    if (rcv_check_node(g, x, rcv_op_name(op), name)) return -1;
    rcv_shape s = g->nodes[x].shape;
    if (stride <= 0) stride = k;
    if (k <= 0 || pad < 0 || pad * 2 > k)
        return rcv_fail("%s '%s': kernel %d padding %d, expected kernel > 0 and padding <= kernel/2",
                        rcv_op_name(op), name, k, pad);
    int ho = pool_out(s.h, k, stride, pad, ceil_mode), wo = pool_out(s.w, k, stride, pad, ceil_mode);
    if (ho <= 0 || wo <= 0)
        return rcv_fail("%s '%s': input %dx%d too small for kernel %d", rcv_op_name(op), name, s.h, s.w, k);
    int id = rcv_graph_add_node(g, op, name, &x, 1);
    if (id < 0) return id;
    rcv_node *n = &g->nodes[id];
    n->shape = (rcv_shape){0, s.c, ho, wo};
    n->attr.pool = (rcv_pool_attr){k, k, stride, stride, pad, pad, ceil_mode, cip};
    return id;
}

int rcv_maxpool2d(rcv_graph *g, const char *name, int x, int k, int stride, int pad, int ceil_mode) {
    return pool(g, RCV_OP_MAXPOOL2D, name, x, k, stride, pad, ceil_mode, 0);
}

int rcv_avgpool2d(rcv_graph *g, const char *name, int x, int k, int stride, int pad, int ceil_mode,
                  int count_include_pad) {
    return pool(g, RCV_OP_AVGPOOL2D, name, x, k, stride, pad, ceil_mode, count_include_pad);
}

int rcv_global_avgpool(rcv_graph *g, const char *name, int x) {
    if (rcv_check_node(g, x, "global_avgpool", name)) return -1;
    int id = rcv_graph_add_node(g, RCV_OP_GLOBAL_AVGPOOL, name, &x, 1);
    if (id < 0) return id;
    g->nodes[id].shape = (rcv_shape){0, g->nodes[x].shape.c, 1, 1};
    return id;
}

int rcv_adaptive_avgpool(rcv_graph *g, const char *name, int x, int oh, int ow) {
    if (rcv_check_node(g, x, "adaptive_avgpool", name)) return -1;
    if (oh < 1 || ow < 1)
        return rcv_fail("adaptive_avgpool '%s': output %dx%d, expected positive sizes", name, oh, ow);
    int id = rcv_graph_add_node(g, RCV_OP_ADAPTIVE_AVGPOOL, name, &x, 1);
    if (id < 0) return id;
    g->nodes[id].shape = (rcv_shape){0, g->nodes[x].shape.c, oh, ow};
    return id;
}
