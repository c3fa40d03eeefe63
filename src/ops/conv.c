// conv2d builder: shape rule and parameters weight (O, C/groups, kh, kw), bias (O).
#include "ops/op_util.h"
#include "robustcv/ops.h"

int rcv_conv2d_ex(rcv_graph *g, const char *name, int x, int out_c, rcv_conv_attr a) {
    if (rcv_check_node(g, x, "conv2d", name)) return -1;
    rcv_shape s = g->nodes[x].shape;
    if (a.groups <= 0 || s.c % a.groups || out_c % a.groups)
        return rcv_fail("conv2d '%s': groups=%d must divide in_channels=%d and out_channels=%d", name, a.groups,
                        s.c, out_c);
    if (a.kh <= 0 || a.kw <= 0 || a.sh <= 0 || a.sw <= 0 || a.dh <= 0 || a.dw <= 0 || a.ph < 0 || a.pw < 0)
        return rcv_fail("conv2d '%s': kernel %dx%d stride %dx%d dilation %dx%d padding %dx%d, expected positive "
                        "kernel/stride/dilation and non-negative padding",
                        name, a.kh, a.kw, a.sh, a.sw, a.dh, a.dw, a.ph, a.pw);
    int ho = (s.h + 2 * a.ph - a.dh * (a.kh - 1) - 1) / a.sh + 1;
    int wo = (s.w + 2 * a.pw - a.dw * (a.kw - 1) - 1) / a.sw + 1;
    if (ho <= 0 || wo <= 0)
        return rcv_fail("conv2d '%s': input %dx%d is too small for kernel %dx%d (dilation %d, padding %d)", name,
                        s.h, s.w, a.kh, a.kw, a.dh, a.ph);
    int id = rcv_graph_add_node(g, RCV_OP_CONV2D, name, &x, 1);
    if (id < 0) return id;
    rcv_node *n = &g->nodes[id];
    n->attr.conv = a;
    n->shape = (rcv_shape){0, out_c, ho, wo};
    rcv_add_named_param(g, id, name, "weight", RCV_PARAM, 4, out_c, s.c / a.groups, a.kh, a.kw);
    if (a.has_bias) rcv_add_named_param(g, id, name, "bias", RCV_PARAM, 1, out_c, 0, 0, 0);
    return id;
}

int rcv_conv2d(rcv_graph *g, const char *name, int x, int out_c, int k, int stride, int pad, int dilation,
               int groups, int bias) {
    rcv_conv_attr a = {k, k, stride, stride, pad, pad, dilation, dilation, groups, bias};
    return rcv_conv2d_ex(g, name, x, out_c, a);
}
