// ResNets with torchvision's exact structure and parameter names
// (torchvision.models.resnet: ResNet, BasicBlock, Bottleneck "v1.5" with the
// stride on the 3x3 conv), a CIFAR-style stem option, and the seed paper's
// ResNet-D geometric residual sum across the blocks of each stage.
//
// Shapes are (N, C, H, W); e = block expansion (BasicBlock 1, Bottleneck 4).
#include "nn/nn.h"

#include "robustcv/error.h"
#include "robustcv/init.h"

// Identity, or downsample.0 (conv1x1 / stride) -> downsample.1 (bn) when the
// block changes the shape: x (N, C, H, W) -> (N, out_c, H/s, W/s).
static int shortcut(rcv_graph *g, const char *p, int x, int out_c, int stride) {
    if (stride == 1 && g->nodes[x].shape.c == out_c) return x;
    char d[RCV_NAME];
    nn_name(d, sizeof d, p, "downsample");
    int y = nn_conv(g, d, "0", x, out_c, 1, stride, 0);
    return nn_bn(g, d, "1", y);
}

// torchvision BasicBlock, x: (N, C, H, W) -> (N, planes, H/s, W/s):
//   conv1 3x3/s -> bn1 -> relu -> conv2 3x3 -> bn2 -> + shortcut(x) -> relu
static int basic_block(rcv_graph *g, const char *p, int x, int planes, int stride) {
    if (x < 0) return -1;
    int y = nn_conv(g, p, "conv1", x, planes, 3, stride, 1); // (N, planes, H/s, W/s)
    y = nn_bn(g, p, "bn1", y);
    y = nn_relu(g, p, "relu1", y);
    y = nn_conv(g, p, "conv2", y, planes, 3, 1, 1);          // (N, planes, H/s, W/s)
    y = nn_bn(g, p, "bn2", y);
    int sc = shortcut(g, p, x, planes, stride);              // built after bn2: state_dict order
    y = nn_add(g, p, "add", y, sc);
    return nn_relu(g, p, "relu", y);
}

// torchvision Bottleneck (groups 1, base width 64), x: (N, C, H, W) -> (N, 4 planes, H/s, W/s):
//   conv1 1x1 -> bn1 -> relu -> conv2 3x3/s -> bn2 -> relu -> conv3 1x1 (4 planes) -> bn3
//   -> + shortcut(x) -> relu
static int bottleneck(rcv_graph *g, const char *p, int x, int planes, int stride) {
    if (x < 0) return -1;
    int y = nn_conv(g, p, "conv1", x, planes, 1, 1, 0);      // (N, planes, H, W)
    y = nn_bn(g, p, "bn1", y);
    y = nn_relu(g, p, "relu1", y);
    y = nn_conv(g, p, "conv2", y, planes, 3, stride, 1);     // (N, planes, H/s, W/s)
    y = nn_bn(g, p, "bn2", y);
    y = nn_relu(g, p, "relu2", y);
    y = nn_conv(g, p, "conv3", y, 4 * planes, 1, 1, 0);      // (N, 4 planes, H/s, W/s)
    y = nn_bn(g, p, "bn3", y);
    int sc = shortcut(g, p, x, 4 * planes, stride);
    y = nn_add(g, p, "add", y, sc);
    return nn_relu(g, p, "relu", y);
}

// One stage, torchvision's _make_layer: `blocks` blocks "name.0" .. "name.{blocks-1}",
// the first with the stride (and the downsample).
//
// gamma == 0: out_i = B_i(out_{i-1}), exactly torchvision (no extra node).
// gamma != 0 (SEED_FACTS.md, ResNet-D): out_1 = B_1(x), S_1 = out_1, and for i >= 2
//   out_i = B_i(out_{i-1}) + gamma S_{i-1}   node "name.geo.{i-1}"
//   S_i   = gamma S_{i-1} + out_i            node "name.geosum.{i-1}" (not built for the last block: unused)
// Each B_i keeps its own shortcut and final relu; the stage input x is not part of the sum.
static int stage(rcv_graph *g, const char *name, int x, rcv_resnet_block type, int planes, int blocks, int stride,
                 float gamma) {
    int out = x, sum = -1;
    for (int i = 0; i < blocks; i++) {
        char p[RCV_NAME], n[RCV_NAME];
        snprintf(p, sizeof p, "%s.%d", name, i);
        int s = i == 0 ? stride : 1;
        int b = type == RCV_BOTTLENECK ? bottleneck(g, p, out, planes, s) : basic_block(g, p, out, planes, s);
        if (gamma == 0.0f || i == 0) {
            out = sum = b;
            continue;
        }
        snprintf(n, sizeof n, "geo.%d", i);
        out = nn_scale_add(g, name, n, b, sum, 1.0f, gamma);
        if (i + 1 < blocks) {
            snprintf(n, sizeof n, "geosum.%d", i);
            sum = nn_scale_add(g, name, n, sum, out, gamma, 1.0f);
        }
    }
    return out;
}

// torchvision ResNet, x: (N, 3, H, W) -> logits (N, n_classes, 1, 1):
//   stem   conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2        (N, 64, H/4, W/4)
//          small_input: conv1 3x3/1 -> bn1 -> relu            (N, 64, H, W)
//   layer1 blocks of 64 planes,  stride 1                     (N, 64e, H/4, W/4)
//   layer2 blocks of 128 planes, stride 2                     (N, 128e, H/8, W/8)
//   layer3 blocks of 256 planes, stride 2                     (N, 256e, H/16, W/16)
//   layer4 blocks of 512 planes, stride 2                     (N, 512e, H/32, W/32) = m->features
//   avgpool (global) -> [dropout] -> fc                        (N, n_classes, 1, 1)
// (spatial sizes with the default stem; small_input divides by 8 instead of 32.)
int rcv_nn_resnet(rcv_model *m, int x, const void *arg) {
    const rcv_resnet_arch *a = arg;
    const rcv_model_cfg *c = &m->cfg;
    rcv_graph *g = m->g;

    if (c->small_input) {
        x = nn_conv(g, "", "conv1", x, 64, 3, 1, 1);
    } else {
        x = nn_conv(g, "", "conv1", x, 64, 7, 2, 3);
    }
    x = nn_bn(g, "", "bn1", x);
    x = nn_relu(g, "", "relu", x);
    if (!c->small_input) x = nn_maxpool(g, "maxpool", x, 3, 2, 1);

    x = stage(g, "layer1", x, a->block, 64, a->layers[0], 1, c->gamma);
    x = stage(g, "layer2", x, a->block, 128, a->layers[1], 2, c->gamma);
    x = stage(g, "layer3", x, a->block, 256, a->layers[2], 2, c->gamma);
    x = stage(g, "layer4", x, a->block, 512, a->layers[3], 2, c->gamma);
    m->features = x; // (N, 512e, h, w)

    x = nn_global_avgpool(g, "avgpool", x);  // (N, 512e, 1, 1)
    x = nn_dropout(g, "dropout", x, c->dropout);
    return nn_linear(g, "fc", x, c->n_classes); // (N, n_classes, 1, 1)
}

void rcv_nn_init_convs_kaiming_out(rcv_model *m, const rcv_rng *root) {
    rcv_graph *g = m->g;
    for (int i = 0; i < g->n_nodes; i++) {
        const rcv_node *n = &g->nodes[i];
        if (n->op != RCV_OP_CONV2D) continue;
        rcv_rng r = rcv_init_param_rng(root, g, n->param[0]);
        rcv_init_kaiming_normal(g, n->param[0], &r, 0.0f, RCV_FAN_OUT, RCV_NL_RELU);
    }
}

// torchvision's ResNet.__init__: convs kaiming_normal_(fan_out, relu); batchnorm
// weight 1, bias 0 (= the default); fc keeps nn.Linear's default; zero_init_residual off.
void rcv_nn_resnet_init(rcv_model *m, const rcv_rng *root) { rcv_nn_init_convs_kaiming_out(m, root); }
