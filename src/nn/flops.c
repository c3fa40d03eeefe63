// Forward cost of a model: multiply-adds of its conv and linear layers per image (the
// convention of torchvision's "GFLOPS" column, which counts these MACs); batchnorm,
// activations, pooling and elementwise ops are not counted.
#include "nn/nn.h"

double rcv_model_macs(const rcv_model *m) {
    const rcv_graph *g = m->g;
    double macs = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_CONV2D) {
            // (Ho, Wo, Cout) outputs, each a dot product of Cin/groups * kh * kw terms
            const rcv_conv_attr *a = &n->attr.conv;
            int cin = g->nodes[n->in[0]].shape.c;
            macs += (double)n->shape.h * n->shape.w * n->shape.c * (cin / a->groups) * a->kh * a->kw;
        } else if (n->op == RCV_OP_LINEAR) {
            const rcv_shape x = g->nodes[n->in[0]].shape;
            macs += (double)x.c * x.h * x.w * n->shape.c;
        }
    }
    return macs;
}
