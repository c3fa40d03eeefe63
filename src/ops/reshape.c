// Shape-changing builders: concat, flatten, nearest and bilinear upsampling.
#include "ops/op_util.h"
#include "robustcv/ops.h"

int rcv_concat(rcv_graph *g, const char *name, const int *xs, int n) {
    if (n < 1) return rcv_fail("concat '%s': %d inputs, expected at least 1", name, n);
    int c = 0;
    for (int i = 0; i < n; i++) {
        if (rcv_check_node(g, xs[i], "concat", name)) return -1;
        rcv_shape s = g->nodes[xs[i]].shape, s0 = g->nodes[xs[0]].shape;
        if (s.h != s0.h || s.w != s0.w)
            return rcv_fail("concat '%s': input %d is %dx%d, input 0 is %dx%d; spatial sizes must match", name, i,
                            s.h, s.w, s0.h, s0.w);
        c += s.c;
    }
    int id = rcv_graph_add_node(g, RCV_OP_CONCAT, name, xs, n);
    if (id < 0) return id;
    rcv_shape s0 = g->nodes[xs[0]].shape;
    g->nodes[id].shape = (rcv_shape){0, c, s0.h, s0.w};
    return id;
}

int rcv_flatten(rcv_graph *g, const char *name, int x) {
    if (rcv_check_node(g, x, "flatten", name)) return -1;
    rcv_shape s = g->nodes[x].shape;
    int id = rcv_graph_add_node(g, RCV_OP_FLATTEN, name, &x, 1);
    if (id < 0) return id;
    g->nodes[id].shape = (rcv_shape){0, s.c * s.h * s.w, 1, 1};
    return id;
}

static int upsample(rcv_graph *g, rcv_op op, const char *name, int x, int scale, int align_corners) {
    if (rcv_check_node(g, x, rcv_op_name(op), name)) return -1;
    if (scale < 1) return rcv_fail("%s '%s': scale %d, expected an integer >= 1", rcv_op_name(op), name, scale);
    rcv_shape s = g->nodes[x].shape;
    int id = rcv_graph_add_node(g, op, name, &x, 1);
    if (id < 0) return id;
    g->nodes[id].shape = (rcv_shape){0, s.c, s.h * scale, s.w * scale};
    g->nodes[id].attr.up = (rcv_upsample_attr){scale, align_corners};
    return id;
}

int rcv_upsample_nearest(rcv_graph *g, const char *name, int x, int scale) {
    return upsample(g, RCV_OP_UPSAMPLE_NEAREST, name, x, scale, 0);
}

int rcv_upsample_bilinear(rcv_graph *g, const char *name, int x, int scale, int align_corners) {
    return upsample(g, RCV_OP_UPSAMPLE_BILINEAR, name, x, scale, align_corners);
}
