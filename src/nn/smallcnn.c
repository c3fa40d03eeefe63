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

// x: (N, C, H, W) -> logits (N, n_classes, 1, 1).
int rcv_nn_smallcnn(rcv_model *m, int x, const void *arg) {
    const rcv_model_cfg *c = &m->cfg;
    rcv_graph *g = m->g;
    if (c->in_h < 4 || c->in_w < 4)
        return rcv_fail("smallcnn: input %dx%d, expected at least 4x4 (two 2x2 max-pools)", c->in_h, c->in_w);

    x = conv_bn_relu(g, 1, x, 32);           // (N, 32, H, W)
    x = conv_bn_relu(g, 2, x, 32);           // (N, 32, H, W)
    x = nn_maxpool(g, "pool1", x, 2, 2, 0);  // (N, 32, H/2, W/2)
    x = conv_bn_relu(g, 3, x, 64);           // (N, 64, H/2, W/2)
    x = conv_bn_relu(g, 4, x, 64);           // (N, 64, H/2, W/2)
    x = nn_maxpool(g, "pool2", x, 2, 2, 0);  // (N, 64, H/4, W/4)
    x = conv_bn_relu(g, 5, x, 128);          // (N, 128, H/4, W/4)
    m->features = x;

    x = nn_global_avgpool(g, "avgpool", x);  // (N, 128, 1, 1)
    x = nn_dropout(g, "dropout", x, c->dropout);
    return nn_linear(g, "fc", x, c->n_classes); // (N, n_classes, 1, 1)
}

void rcv_nn_smallcnn_init(rcv_model *m, const rcv_rng *root) { rcv_nn_init_convs_kaiming_out(m, root); }
