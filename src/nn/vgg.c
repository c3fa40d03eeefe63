// VGG with batchnorm, torchvision's exact structure and parameter names
// (torchvision.models.vgg: vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn).
//
//   features.{i}: per conv entry of the config, Conv2d 3x3 p1 (bias) at index i, BatchNorm2d
//     at i+1, ReLU at i+2; per "M", MaxPool2d 2x2/2 at index i                 (N, 512, H/32, W/32)
//   avgpool: AdaptiveAvgPool2d((7, 7)) -- at 224 the identity; a 64x64 image reaches it as
//     2x2, which PyTorch spreads to 7x7 with overlapping windows (rcv_adaptive_avgpool)
//   flatten -> classifier.0 Linear(512*7*7, 4096) -> .1 ReLU -> .2 Dropout
//     -> .3 Linear(4096, 4096) -> .4 ReLU -> .5 Dropout -> .6 Linear(4096, n_classes)
//
// small_input: the last "M" is dropped (features end at H/16), for 32x32 images that
// would otherwise reach the pool as 1x1. The parameter set is unchanged.
#include "nn/nn.h"

#include "robustcv/error.h"
#include "robustcv/init.h"

#define M_POOL (-1)

int rcv_nn_vgg(rcv_model *m, int x, const void *arg) {
    const rcv_vgg_arch *a = arg;
    const rcv_model_cfg *c = &m->cfg;
    rcv_graph *g = m->g;
    int last_pool = -1;
    for (int i = 0; i < a->n; i++)
        if (a->cfg[i] == M_POOL) last_pool = i;
    int idx = 0;
    for (int i = 0; i < a->n && x >= 0; i++) {
        char n[RCV_NAME];
        if (a->cfg[i] == M_POOL) {
            if (!(c->small_input && i == last_pool)) {
                snprintf(n, sizeof n, "features.%d", idx);
                x = nn_maxpool(g, n, x, 2, 2, 0);
            }
            idx++;
            continue;
        }
        snprintf(n, sizeof n, "features.%d", idx);
        x = rcv_conv2d(g, n, x, a->cfg[i], 3, 1, 1, 1, 1, 1); // 3x3 p1 with bias
        snprintf(n, sizeof n, "%d", idx + 1);
        x = nn_bn(g, "features", n, x);
        snprintf(n, sizeof n, "%d", idx + 2);
        x = nn_relu(g, "features", n, x);
        idx += 3;
    }
    m->features = x; // (N, 512, h, w)
    if (x < 0) return -1;
    x = rcv_adaptive_avgpool(g, "avgpool", x, 7, 7);
    x = x < 0 ? -1 : rcv_flatten(g, "flatten", x); // (N, 512*7*7, 1, 1) in PyTorch's (C, H, W) order
    // torchvision's dropout is 0.5; cfg.dropout < 0 (the default) keeps it, 0 removes the nodes.
    float p = c->dropout < 0 ? 0.5f : c->dropout;
    x = nn_linear(g, "classifier.0", x, 4096);
    x = nn_relu(g, "classifier", "1", x);
    x = nn_dropout(g, "classifier.2", x, p);
    x = nn_linear(g, "classifier.3", x, 4096);
    x = nn_relu(g, "classifier", "4", x);
    x = nn_dropout(g, "classifier.5", x, p);
    return nn_linear(g, "classifier.6", x, c->n_classes);
}

// torchvision VGG.__init__(init_weights=True): convs kaiming_normal_(fan_out, relu) with bias 0,
// batchnorm 1/0, linears normal(0, 0.01) with bias 0.
void rcv_nn_vgg_init(rcv_model *m, const rcv_rng *root) {
    rcv_graph *g = m->g;
    for (int i = 0; i < g->n_nodes; i++) {
        const rcv_node *n = &g->nodes[i];
        if (n->op != RCV_OP_CONV2D && n->op != RCV_OP_LINEAR) continue;
        rcv_rng r = rcv_init_param_rng(root, g, n->param[0]);
        if (n->op == RCV_OP_CONV2D) rcv_init_kaiming_normal(g, n->param[0], &r, 0.0f, RCV_FAN_OUT, RCV_NL_RELU);
        else rcv_init_normal(g, n->param[0], &r, 0.0f, 0.01f);
        if (n->param[1] >= 0) rcv_init_constant(g, n->param[1], 0.0f);
    }
}
