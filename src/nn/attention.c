// Residual Attention Network (Wang et al., "Residual Attention Network for Image
// Classification", CVPR 2017): Attention-56 and Attention-92 with the paper's
// hyper-parameters p = 1, t = 2, r = 1. Written from the paper; the PyTorch
// reference with the same module names is tests/oracle/attention_ref.py.
//
// Residual unit ("RU", pre-activation bottleneck of He et al. 2016), x (N, C, H, W) -> (N, out, H/s, W/s):
//   a = relu(bn1(x)); y = conv1 1x1 (out/4) -> bn2 -> relu -> conv2 3x3/s (out/4) -> bn3 -> relu
//   -> conv3 1x1 (out); y + shortcut, shortcut = x, or conv 1x1/s of a ("shortcut") when the shape changes.
//
// Attention module at (N, C, H, W) with d max-pool levels in its mask branch:
//   pre    = RU(x)                                   p = 1 unit before the split
//   trunk  = RU(RU(pre))                             t = 2 units            "trunk.0", "trunk.1"
//   mask, bottom-up: m = pre; for k = 1..d: m = maxpool 3x3/2 p1 ("mask.pool{k}") then
//     RU ("mask.down{k}"; 2r = 2 units "mask.down{d}.0/.1" at the lowest level); for k < d a
//     skip connection s_k = RU(m) ("mask.skip{k}")
//   mask, top-down: for k = d-1..1: m = up2(m) + s_k ("mask.up{k}.interp", ".add"), m = RU(m)
//     ("mask.up{k}.ru"); then m = up2(m) ("mask.interp") back to H x W; up2 = bilinear x2
//     (align_corners False, F.interpolate(scale_factor=2))
//   M      = sigmoid(conv1x1(relu(bn(conv1x1(relu(bn(m)))))))     "mask.out.{bn1,conv1,bn2,conv2}"
//   out    = RU((1 + M) * T) = RU(T + M T)           "gate" = M T, "combine" = T + M T, p = 1 unit "post"
//
// Network (224 x 224; stages at 56/28/14/7):
//   conv1 7x7/2 (64) -> bn1 -> relu -> maxpool 3x3/2              (N, 64, H/4, W/4)
//     small_input: conv1 3x3/1 -> bn1 -> relu                     (N, 64, H, W)
//   res1 RU(256)   att1.{0..a1-1} (d = 3)                         (N, 256, H/4, W/4)
//   res2 RU(512)/2 att2.{0..a2-1} (d = 2)                         (N, 512, H/8, W/8)
//   res3 RU(1024)/2 att3.{0..a3-1} (d = 1)                        (N, 1024, H/16, W/16)
//   res4.{0,1,2} RU(2048), the first /2                            (N, 2048, H/32, W/32)
//   bn -> relu (pre-activation's closing BN-ReLU) -> avgpool -> fc
// Attention-56: one module per stage; Attention-92: 1, 2, 3 modules (the paper's Table 2).
// Every maxpool level halves an even size, so the stage-1 size must be divisible by 8.
#include "nn/nn.h"

#include "robustcv/error.h"

static int ru(rcv_graph *g, const char *p, int x, int out, int stride) {
    if (x < 0) return -1;
    rcv_shape s = g->nodes[x].shape;
    int a = nn_bn(g, p, "bn1", x);
    a = nn_relu(g, p, "relu1", a);
    int y = nn_conv(g, p, "conv1", a, out / 4, 1, 1, 0);
    y = nn_bn(g, p, "bn2", y);
    y = nn_relu(g, p, "relu2", y);
    y = nn_conv(g, p, "conv2", y, out / 4, 3, stride, 1);
    y = nn_bn(g, p, "bn3", y);
    y = nn_relu(g, p, "relu3", y);
    y = nn_conv(g, p, "conv3", y, out, 1, 1, 0);
    int sc = (s.c != out || stride != 1) ? nn_conv(g, p, "shortcut", a, out, 1, stride, 0) : x;
    return nn_add(g, p, "add", y, sc);
}

static int up2(rcv_graph *g, const char *p, const char *name, int x) {
    if (x < 0) return -1;
    char n[RCV_NAME];
    nn_name(n, sizeof n, p, name);
    return rcv_upsample_bilinear(g, n, x, 2, 0);
}

static int attention_module(rcv_graph *g, const char *p, int x, int d) {
    if (x < 0) return -1;
    int C = g->nodes[x].shape.c, H = g->nodes[x].shape.h, W = g->nodes[x].shape.w;
    if (H % (1 << d) || W % (1 << d))
        return rcv_fail("attention module '%s': %dx%d feature map, its mask branch needs sizes divisible by %d "
                        "(input sizes divisible by %d, or by %d with the small-input stem)",
                        p, H, W, 1 << d, 32, 8);
    char q[RCV_NAME], n[RCV_NAME];
    nn_name(q, sizeof q, p, "pre");
    int pre = ru(g, q, x, C, 1);
    nn_name(q, sizeof q, p, "trunk.0");
    int t = ru(g, q, pre, C, 1);
    nn_name(q, sizeof q, p, "trunk.1");
    t = ru(g, q, t, C, 1);

    int m = pre, skip[8];
    for (int k = 1; k <= d; k++) {
        snprintf(n, sizeof n, "mask.pool%d", k);
        nn_name(q, sizeof q, p, n);
        m = nn_maxpool(g, q, m, 3, 2, 1);
        if (k < d) {
            snprintf(n, sizeof n, "mask.down%d", k);
            nn_name(q, sizeof q, p, n);
            m = ru(g, q, m, C, 1);
            snprintf(n, sizeof n, "mask.skip%d", k);
            nn_name(q, sizeof q, p, n);
            skip[k] = ru(g, q, m, C, 1);
        } else {
            for (int j = 0; j < 2; j++) { // 2r units at the lowest resolution
                snprintf(n, sizeof n, "mask.down%d.%d", k, j);
                nn_name(q, sizeof q, p, n);
                m = ru(g, q, m, C, 1);
            }
        }
    }
    for (int k = d - 1; k >= 1; k--) {
        snprintf(n, sizeof n, "mask.up%d", k);
        nn_name(q, sizeof q, p, n);
        m = up2(g, q, "interp", m);
        m = nn_add(g, q, "add", m, skip[k]);
        char u[RCV_NAME];
        nn_name(u, sizeof u, q, "ru");
        m = ru(g, u, m, C, 1);
    }
    nn_name(q, sizeof q, p, "mask");
    m = up2(g, q, "interp", m);
    nn_name(q, sizeof q, p, "mask.out");
    m = nn_bn(g, q, "bn1", m);
    m = nn_relu(g, q, "relu1", m);
    m = nn_conv(g, q, "conv1", m, C, 1, 1, 0);
    m = nn_bn(g, q, "bn2", m);
    m = nn_relu(g, q, "relu2", m);
    m = nn_conv(g, q, "conv2", m, C, 1, 1, 0);
    if (m >= 0) {
        nn_name(n, sizeof n, q, "sigmoid");
        m = rcv_sigmoid(g, n, m);
    }
    if (m < 0 || t < 0) return -1;
    nn_name(n, sizeof n, p, "gate");
    int gate = rcv_mul(g, n, m, t); // M T
    nn_name(n, sizeof n, p, "combine");
    int out = gate < 0 ? -1 : rcv_add(g, n, t, gate); // (1 + M) T
    nn_name(q, sizeof q, p, "post");
    return ru(g, q, out, C, 1);
}

int rcv_nn_attention(rcv_model *m, int x, const void *arg) {
    const rcv_attention_arch *a = arg;
    const rcv_model_cfg *c = &m->cfg;
    rcv_graph *g = m->g;
    if (c->small_input) x = nn_conv(g, "", "conv1", x, 64, 3, 1, 1);
    else x = nn_conv(g, "", "conv1", x, 64, 7, 2, 3);
    x = nn_bn(g, "", "bn1", x);
    x = nn_relu(g, "", "relu", x);
    if (!c->small_input) x = nn_maxpool(g, "maxpool", x, 3, 2, 1);
    static const int width[3] = {256, 512, 1024};
    for (int s = 0; s < 3; s++) {
        char p[RCV_NAME];
        snprintf(p, sizeof p, "res%d", s + 1);
        x = ru(g, p, x, width[s], s == 0 ? 1 : 2);
        for (int i = 0; i < a->modules[s]; i++) {
            snprintf(p, sizeof p, "att%d.%d", s + 1, i);
            x = attention_module(g, p, x, 3 - s);
        }
    }
    for (int i = 0; i < 3; i++) {
        char p[RCV_NAME];
        snprintf(p, sizeof p, "res4.%d", i);
        x = ru(g, p, x, 2048, i == 0 ? 2 : 1);
    }
    x = nn_bn(g, "", "bn", x);
    x = nn_relu(g, "", "relu_out", x);
    m->features = x;
    x = nn_global_avgpool(g, "avgpool", x);
    x = nn_dropout(g, "dropout", x, c->dropout);
    return nn_linear(g, "fc", x, c->n_classes);
}
