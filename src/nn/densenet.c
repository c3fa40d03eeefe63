// DenseNets with torchvision's exact structure and parameter names
// (torchvision.models.densenet: growth rate 32, bn_size 4, 64 initial features,
// no dropout; memory_efficient only changes how PyTorch recomputes, not the math).
//
//   features.conv0 7x7/2 -> norm0 -> relu0 -> pool0 max 3x3/2     (N, 64, H/4, W/4)
//     small_input: conv0 3x3/1 -> norm0 -> relu0 (no pool0)       (N, 64, H, W)
//   features.denseblock{1..4}: layers, each adding 32 channels; transition{1..3} between
//     blocks halve channels (1x1 conv) and size (avg pool 2x2)
//   features.norm5 -> relu -> global avg pool -> classifier        (N, n_classes, 1, 1)
#include <stdlib.h>

#include "nn/nn.h"

#include "robustcv/error.h"
#include "robustcv/init.h"

#define GROWTH 32
#define BN_SIZE 4

// torchvision _DenseLayer "p" on the concatenation of all earlier features of its block
// (N, C, H, W) -> new features (N, 32, H, W):
//   norm1 -> relu1 -> conv1 1x1 (128) -> norm2 -> relu2 -> conv2 3x3 (32)
static int dense_layer(rcv_graph *g, const char *p, int x) {
    int y = nn_bn(g, p, "norm1", x);
    y = nn_relu(g, p, "relu1", y);
    y = nn_conv(g, p, "conv1", y, BN_SIZE * GROWTH, 1, 1, 0);
    y = nn_bn(g, p, "norm2", y);
    y = nn_relu(g, p, "relu2", y);
    return nn_conv(g, p, "conv2", y, GROWTH, 3, 1, 1);
}

// torchvision _DenseBlock "p": layer i sees cat(x, f_1, ..., f_{i-1}); the block's output is
// cat(x, f_1, ..., f_L): (N, C, H, W) -> (N, C + 32 L, H, W). The concat feeding layer i is the
// node "p.denselayer{i}.cat" (built before its norm1, so the layer's output is still conv2).
static int dense_block(rcv_graph *g, const char *p, int x, int layers) {
    if (x < 0) return -1;
    int *feats = rcv_xmalloc((size_t)(layers + 1) * sizeof(int));
    feats[0] = x;
    int ok = 1;
    for (int i = 1; i <= layers && ok; i++) {
        char lp[RCV_NAME + 32], cn[RCV_NAME + 32];
        snprintf(lp, sizeof lp, "%s.denselayer%d", p, i);
        nn_name(cn, sizeof cn, lp, "cat");
        int in = i == 1 ? x : rcv_concat(g, cn, feats, i);
        feats[i] = in < 0 ? -1 : dense_layer(g, lp, in);
        ok = feats[i] >= 0;
    }
    char cn[RCV_NAME];
    nn_name(cn, sizeof cn, p, "cat");
    int out = ok ? rcv_concat(g, cn, feats, layers + 1) : -1;
    free(feats);
    return out;
}

// torchvision _Transition "p": norm -> relu -> conv 1x1 (C/2) -> pool avg 2x2/2.
static int transition(rcv_graph *g, const char *p, int x) {
    if (x < 0) return -1;
    int y = nn_bn(g, p, "norm", x);
    y = nn_relu(g, p, "relu", y);
    y = nn_conv(g, p, "conv", y, g->nodes[x].shape.c / 2, 1, 1, 0);
    if (y < 0) return -1;
    char n[RCV_NAME];
    nn_name(n, sizeof n, p, "pool");
    return rcv_avgpool2d(g, n, y, 2, 2, 0, 0, 1);
}

int rcv_nn_densenet(rcv_model *m, int x, const void *arg) {
    const rcv_densenet_arch *a = arg;
    const rcv_model_cfg *c = &m->cfg;
    rcv_graph *g = m->g;
    if (c->small_input) x = nn_conv(g, "features", "conv0", x, 64, 3, 1, 1);
    else x = nn_conv(g, "features", "conv0", x, 64, 7, 2, 3);
    x = nn_bn(g, "features", "norm0", x);
    x = nn_relu(g, "features", "relu0", x);
    if (!c->small_input) x = nn_maxpool(g, "features.pool0", x, 3, 2, 1);
    for (int b = 0; b < 4; b++) {
        char p[RCV_NAME];
        snprintf(p, sizeof p, "features.denseblock%d", b + 1);
        x = dense_block(g, p, x, a->layers[b]);
        if (b < 3) {
            snprintf(p, sizeof p, "features.transition%d", b + 1);
            x = transition(g, p, x);
        }
    }
    x = nn_bn(g, "features", "norm5", x);
    x = nn_relu(g, "", "relu", x); // F.relu in DenseNet.forward: not part of model.features
    m->features = x;
    x = nn_global_avgpool(g, "avgpool", x);
    x = nn_dropout(g, "dropout", x, c->dropout);
    return nn_linear(g, "classifier", x, c->n_classes);
}

// torchvision DenseNet.__init__: kaiming_normal_ (fan_in, the default) for convs, batchnorm 1/0,
// Linear bias 0 (weight keeps nn.Linear's default).
void rcv_nn_densenet_init(rcv_model *m, const rcv_rng *root) {
    rcv_graph *g = m->g;
    for (int i = 0; i < g->n_nodes; i++) {
        const rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_CONV2D) {
            rcv_rng r = rcv_init_param_rng(root, g, n->param[0]);
            rcv_init_kaiming_normal(g, n->param[0], &r, 0.0f, RCV_FAN_IN, RCV_NL_RELU);
        } else if (n->op == RCV_OP_LINEAR && n->param[1] >= 0) {
            rcv_init_constant(g, n->param[1], 0.0f);
        }
    }
}
