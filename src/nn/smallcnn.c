// smallcnn: a small batchnorm CNN baseline for 28x28x1 (Fashion-MNIST), usable
// on any input of at least 4x4. About 0.14M parameters and 22M multiply-adds
// per 28x28 image; reaches >= 93% on Fashion-MNIST in a few epochs.
//
// Its PyTorch twin (tests/oracle/resnet_ref.py holds the same), which loads our
// checkpoints with load_state_dict:
//
//   class SmallCNN(nn.Module):
//       def __init__(self, in_c=1, n_classes=10, dropout=0.0):
//           super().__init__()
//           widths, c = [32, 32, 64, 64, 128], in_c
//           for i, w in enumerate(widths, 1):
//               setattr(self, f"conv{i}", nn.Conv2d(c, w, 3, padding=1, bias=False))
//               setattr(self, f"bn{i}", nn.BatchNorm2d(w))
//               c = w
//           self.dropout = nn.Dropout(dropout)
//           self.fc = nn.Linear(c, n_classes)
//
//       def forward(self, x):
//           block = lambda i, x: F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
//           x = F.max_pool2d(block(2, block(1, x)), 2)
//           x = F.max_pool2d(block(4, block(3, x)), 2)
//           x = F.adaptive_avg_pool2d(block(5, x), 1).flatten(1)
//           return self.fc(self.dropout(x))
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
