// Shared by the model builders in src/nn/ (private to the library).
//
// The layer helpers below name a node "prefix.name" (or "name" with an empty
// prefix) and pass a failed input (-1) straight through without touching the
// error message, so a builder can chain them and check once at the end: the
// message reports the first layer that failed.
#ifndef RCV_NN_H
#define RCV_NN_H

#include <stdio.h>

#include "robustcv/graph.h"
#include "robustcv/models.h"
#include "robustcv/ops.h"
#include "robustcv/rng.h"

// One registry entry (src/nn/registry.c).
typedef struct {
    const char *name, *description;
    // Builds the network on x, the normalized input (N, in_c, in_h, in_w), and returns the
    // logits node (N, n_classes, 1, 1), or -1 with a message. Sets m->features.
    int (*build)(rcv_model *m, int x, const void *arg);
    // Model-specific initialisation, applied after rcv_init_default (NULL: defaults only).
    void (*init)(rcv_model *m, const rcv_rng *root);
    const void *arg; // e.g. the ResNet's block type and depths
} rcv_model_spec;

// ResNets (src/nn/resnet.c): torchvision's BasicBlock or Bottleneck, blocks per stage.
typedef enum { RCV_BASIC_BLOCK = 0, RCV_BOTTLENECK = 1 } rcv_resnet_block;
typedef struct {
    rcv_resnet_block block;
    int layers[4];
} rcv_resnet_arch;
int rcv_nn_resnet(rcv_model *m, int x, const void *arch);
void rcv_nn_resnet_init(rcv_model *m, const rcv_rng *root);

// DenseNets (src/nn/densenet.c): dense layers per block.
typedef struct { int layers[4]; } rcv_densenet_arch;
int rcv_nn_densenet(rcv_model *m, int x, const void *arch);
void rcv_nn_densenet_init(rcv_model *m, const rcv_rng *root);

// VGG with batchnorm (src/nn/vgg.c): torchvision's config list, channels or -1 for "M" (max-pool).
typedef struct { int n; int cfg[24]; } rcv_vgg_arch;
int rcv_nn_vgg(rcv_model *m, int x, const void *arch);
void rcv_nn_vgg_init(rcv_model *m, const rcv_rng *root);

// Residual Attention Network (src/nn/attention.c): attention modules per stage.
typedef struct { int modules[3]; } rcv_attention_arch;
int rcv_nn_attention(rcv_model *m, int x, const void *arch);

// Multi-task box head (src/nn/box_head.c) on the classifier's input; builds "boxes", "box.*",
// "loss_cls", "loss_box" and "loss" (see models.h). 0 or -1 with a message.
int rcv_nn_box_head(rcv_model *m, float lambda);

// Small BN CNNs (src/nn/smallcnn.c): conv3x3-bn-relu channels or -1 for a 2x2 max-pool, then
// global average pool and fc.
typedef struct { int n; int cfg[12]; } rcv_smallcnn_arch;
int rcv_nn_smallcnn(rcv_model *m, int x, const void *arch);
void rcv_nn_smallcnn_init(rcv_model *m, const rcv_rng *root);

// Convs keep torchvision's init in both: kaiming_normal_(fan_out, relu) for every conv weight.
void rcv_nn_init_convs_kaiming_out(rcv_model *m, const rcv_rng *root);

// --- layer helpers ---

// Module paths are far shorter than RCV_NAME; a longer one is cut (never overflows).
static inline void nn_name(char *dst, size_t cap, const char *prefix, const char *name) {
    size_t n = 0;
    for (; prefix && *prefix && n + 1 < cap; prefix++) dst[n++] = *prefix;
    if (n && n + 1 < cap) dst[n++] = '.';
    for (; *name && n + 1 < cap; name++) dst[n++] = *name;
    dst[n] = '\0';
}

// conv k x k, no bias (a batchnorm follows): (N, C, H, W) -> (N, out_c, H', W').
static inline int nn_conv(rcv_graph *g, const char *prefix, const char *name, int x, int out_c, int k, int stride,
                          int pad) {
    if (x < 0) return -1;
    char full[RCV_NAME];
    nn_name(full, sizeof full, prefix, name);
    return rcv_conv2d(g, full, x, out_c, k, stride, pad, 1, 1, 0);
}

// BatchNorm2d with PyTorch's defaults (eps 1e-5, momentum 0.1).
static inline int nn_bn(rcv_graph *g, const char *prefix, const char *name, int x) {
    if (x < 0) return -1;
    char full[RCV_NAME];
    nn_name(full, sizeof full, prefix, name);
    return rcv_batchnorm2d(g, full, x, 1e-5f, 0.1f);
}

static inline int nn_relu(rcv_graph *g, const char *prefix, const char *name, int x) {
    if (x < 0) return -1;
    char full[RCV_NAME];
    nn_name(full, sizeof full, prefix, name);
    return rcv_relu(g, full, x);
}

static inline int nn_add(rcv_graph *g, const char *prefix, const char *name, int a, int b) {
    if (a < 0 || b < 0) return -1;
    char full[RCV_NAME];
    nn_name(full, sizeof full, prefix, name);
    return rcv_add(g, full, a, b);
}

// alpha * a + beta * b.
static inline int nn_scale_add(rcv_graph *g, const char *prefix, const char *name, int a, int b, float alpha,
                               float beta) {
    if (a < 0 || b < 0) return -1;
    char full[RCV_NAME];
    nn_name(full, sizeof full, prefix, name);
    return rcv_scale_add(g, full, a, b, alpha, beta);
}

// Max pool k x k (floor mode, like nn.MaxPool2d's default).
static inline int nn_maxpool(rcv_graph *g, const char *name, int x, int k, int stride, int pad) {
    if (x < 0) return -1;
    return rcv_maxpool2d(g, name, x, k, stride, pad, 0);
}

static inline int nn_global_avgpool(rcv_graph *g, const char *name, int x) {
    if (x < 0) return -1;
    return rcv_global_avgpool(g, name, x);
}

// Dropout only when p > 0: with p == 0 the graph has no node (PyTorch's Dropout(0) is the identity).
static inline int nn_dropout(rcv_graph *g, const char *name, int x, float p) {
    if (x < 0 || p <= 0) return x;
    return rcv_dropout(g, name, x, p);
}

static inline int nn_linear(rcv_graph *g, const char *name, int x, int out) {
    if (x < 0) return -1;
    return rcv_linear(g, name, x, out, 1);
}

#endif
