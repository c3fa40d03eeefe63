// Loss builders: scalar (1, 1, 1, 1) outputs, mean reductions.
#include "ops/op_util.h"
#include "robustcv/ops.h"

static int loss2(rcv_graph *g, rcv_op op, const char *name, int a, int b) {
    if (rcv_check_node(g, a, rcv_op_name(op), name) || rcv_check_node(g, b, rcv_op_name(op), name)) return -1;
    int in[2] = {a, b};
    int id = rcv_graph_add_node(g, op, name, in, 2);
    if (id < 0) return id;
    g->nodes[id].shape = (rcv_shape){1, 1, 1, 1};
    return id;
}

int rcv_cross_entropy(rcv_graph *g, const char *name, int logits, int labels, float label_smoothing) {
    if (rcv_check_node(g, labels, "cross_entropy", name)) return -1;
    if (g->nodes[labels].op != RCV_OP_LABELS)
        return rcv_fail("cross_entropy '%s': second input must be a labels node", name);
    rcv_shape s = g->nodes[logits].shape;
    if (s.h != 1 || s.w != 1)
        return rcv_fail("cross_entropy '%s': logits (N, %d, %d, %d), expected (N, K, 1, 1)", name, s.c, s.h, s.w);
    if (!(label_smoothing >= 0 && label_smoothing <= 1))
        return rcv_fail("cross_entropy '%s': label_smoothing %g, expected 0..1", name, label_smoothing);
    int id = loss2(g, RCV_OP_CROSS_ENTROPY, name, logits, labels);
    if (id >= 0) g->nodes[id].attr.loss.label_smoothing = label_smoothing;
    return id;
}

static int same_shape(rcv_graph *g, const char *what, const char *name, int a, int b) {
    rcv_shape sa = g->nodes[a].shape, sb = g->nodes[b].shape;
    if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)
        return rcv_fail("%s '%s': shapes (N, %d, %d, %d) and (N, %d, %d, %d) differ", what, name, sa.c, sa.h, sa.w,
                        sb.c, sb.h, sb.w);
    return 0;
}

int rcv_kl_div(rcv_graph *g, const char *name, int p_logits, int q_logits) {
    if (rcv_check_node(g, p_logits, "kl_div", name) || rcv_check_node(g, q_logits, "kl_div", name)) return -1;
    if (same_shape(g, "kl_div", name, p_logits, q_logits)) return -1;
    return loss2(g, RCV_OP_KL_DIV, name, p_logits, q_logits);
}

int rcv_smooth_l1(rcv_graph *g, const char *name, int pred, int target, float beta) {
    if (rcv_check_node(g, pred, "smooth_l1", name) || rcv_check_node(g, target, "smooth_l1", name)) return -1;
    if (same_shape(g, "smooth_l1", name, pred, target)) return -1;
    int id = loss2(g, RCV_OP_SMOOTH_L1, name, pred, target);
    if (id >= 0) g->nodes[id].attr.loss.beta = beta;
    return id;
}

int rcv_mse(rcv_graph *g, const char *name, int pred, int target) {
    if (rcv_check_node(g, pred, "mse", name) || rcv_check_node(g, target, "mse", name)) return -1;
    if (same_shape(g, "mse", name, pred, target)) return -1;
    return loss2(g, RCV_OP_MSE, name, pred, target);
}
