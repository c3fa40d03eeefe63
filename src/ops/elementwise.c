// Binary elementwise builders: add, mul (with broadcast of b), scale_add.
#include "ops/op_util.h"
#include "robustcv/ops.h"

static int same(rcv_shape a, rcv_shape b) { return a.c == b.c && a.h == b.h && a.w == b.w; }

static int binary(rcv_graph *g, rcv_op op, const char *name, int a, int b) {
    if (rcv_check_node(g, a, rcv_op_name(op), name) || rcv_check_node(g, b, rcv_op_name(op), name)) return -1;
    rcv_shape sa = g->nodes[a].shape, sb = g->nodes[b].shape;
    int ok = same(sa, sb) || (sb.c == sa.c && sb.h == 1 && sb.w == 1) || (sb.c == 1 && sb.h == sa.h && sb.w == sa.w);
    if (op == RCV_OP_SCALE_ADD) ok = same(sa, sb);
    if (!ok)
        return rcv_fail("%s '%s': shapes (N, %d, %d, %d) and (N, %d, %d, %d) do not broadcast (b must equal a, or be "
                        "(N, C, 1, 1) or (N, 1, H, W))",
                        rcv_op_name(op), name, sa.c, sa.h, sa.w, sb.c, sb.h, sb.w);
    int in[2] = {a, b};
    int id = rcv_graph_add_node(g, op, name, in, 2);
    if (id < 0) return id;
    g->nodes[id].shape = sa;
    return id;
}

int rcv_add(rcv_graph *g, const char *name, int a, int b) { return binary(g, RCV_OP_ADD, name, a, b); }
int rcv_mul(rcv_graph *g, const char *name, int a, int b) { return binary(g, RCV_OP_MUL, name, a, b); }

int rcv_scale_add(rcv_graph *g, const char *name, int a, int b, float alpha, float beta) {
    int id = binary(g, RCV_OP_SCALE_ADD, name, a, b);
    if (id >= 0) {
        g->nodes[id].attr.loss.alpha = alpha;
        g->nodes[id].attr.loss.beta2 = beta;
    }
    return id;
}
