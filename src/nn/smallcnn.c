// smallcnn, smallcnn6: small batchnorm CNNs for 28x28x1 (Fashion-MNIST), usable on any input of at
// least 2^pools pixels a side. A layer list (rcv_smallcnn_arch, VGG's form: channels of a
// conv3x3-bn-relu or -1 for a 2x2 max-pool), then global average pool, dropout and fc:
//   smallcnn  {32, 32, M, 64, 64, M, 128}       0.14M parameters, 22M multiply-adds per 28x28 image
//   smallcnn6 {32, 32, M, 64, 64, M, 128, 128}  0.29M parameters, 29M multiply-adds; the demo's model
// (15 epochs of the demo's standard recipe on Fashion-MNIST: 93.2-93.4% and 94.0%).
//
// Their PyTorch twin is SmallCNN(in_c, n_classes, dropout, cfg) in tests/oracle/resnet_ref.py,
// which loads our checkpoints with load_state_dict: conv{i}/bn{i} numbered from 1 over the convs,
// F.relu after each bn, F.max_pool2d(x, 2) for "M", then
// self.fc(self.dropout(F.adaptive_avg_pool2d(x, 1).flatten(1))).
//
// Initialisation as torchvision's ResNet: convs kaiming_normal_(fan_out, relu),
// batchnorm weight 1 / bias 0, fc nn.Linear's default.
#include "nn/nn.h"

#include "robustcv/error.h"

// conv{i} 3x3/1 pad 1 -> bn{i} -> relu: (N, C, H, W) -> (N, out_c, H, W).
static int conv_bn_relu(rcv_graph *g, int i, int x, int out_c) {
    char conv[16], bn[16], relu[16];
    snprintf(conv, sizeof conv, "conv%d", i);
    snprintf(bn, sizeof bn, "bn%d", i);
    snprintf(relu, sizeof relu, "relu%d", i);
    x = nn_conv(g, "", conv, x, out_c, 3, 1, 1);
    x = nn_bn(g, "", bn, x);
    return nn_relu(g, "", relu, x);
}

// x: (N, C, H, W) -> logits (N, n_classes, 1, 1). arch: the layer list, channels or -1 for a
// 2x2 max-pool (N, C, H, W) -> (N, C, H/2, W/2); smallcnn is {32, 32, M, 64, 64, M, 128}.
int rcv_nn_smallcnn(rcv_model *m, int x, const void *arch) {
    const rcv_smallcnn_arch *a = arch;
    const rcv_model_cfg *c = &m->cfg;
    rcv_graph *g = m->g;
    int pools = 0;
    for (int k = 0; k < a->n; k++) pools += a->cfg[k] < 0;
    if (c->in_h < 1 << pools || c->in_w < 1 << pools)
        return rcv_fail("%s: input %dx%d, expected at least %dx%d (%d 2x2 max-pools)", m->name, c->in_h, c->in_w,
                        1 << pools, 1 << pools, pools);

    for (int k = 0, conv = 1, pool = 1; k < a->n; k++) {
        char name[16];
        if (a->cfg[k] > 0) {
            x = conv_bn_relu(g, conv++, x, a->cfg[k]); // (N, cfg[k], H, W)
            continue;
        }
        snprintf(name, sizeof name, "pool%d", pool++);
        x = nn_maxpool(g, name, x, 2, 2, 0); // (N, C, H/2, W/2)
    }
    m->features = x;

    x = nn_global_avgpool(g, "avgpool", x);  // (N, C, 1, 1)
    x = nn_dropout(g, "dropout", x, c->dropout);
    return nn_linear(g, "fc", x, c->n_classes); // (N, n_classes, 1, 1)
}

void rcv_nn_smallcnn_init(rcv_model *m, const rcv_rng *root) { rcv_nn_init_convs_kaiming_out(m, root); }
