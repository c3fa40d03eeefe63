// Op builders: each adds one node to a graph, infers its output shape, and
// registers its parameters under torchvision's names (prefix = module path,
// e.g. "layer1.0.conv1" gives "layer1.0.conv1.weight"). They return the new
// node id, or -1 with a message (bad shapes). Parameter values are set by
// rcv_init_* (init.h) or by loading a checkpoint.
//
// Shapes below are (N, C, H, W); storage is NHWC.
#ifndef RCV_OPS_H
#define RCV_OPS_H

#include "robustcv/graph.h"

// x: (N, c, h, w) fed by the caller through node->out.
int rcv_input(rcv_graph *g, const char *name, int c, int h, int w);
// labels: (N) int32 through node->idata.
int rcv_labels(rcv_graph *g, const char *name);

// x: (N, C, H, W) -> (N, out_c, Ho, Wo); weight (out_c, C/groups, kh, kw), bias (out_c).
// Ho = (H + 2p - d(k-1) - 1) / s + 1.
int rcv_conv2d(rcv_graph *g, const char *name, int x, int out_c, int k, int stride, int pad, int dilation,
               int groups, int bias);
// Full control (rectangular kernels, asymmetric stride/pad).
int rcv_conv2d_ex(rcv_graph *g, const char *name, int x, int out_c, rcv_conv_attr a);
// x: (N, C, H, W) -> same; weight, bias (C); running_mean, running_var (C); num_batches_tracked.
int rcv_batchnorm2d(rcv_graph *g, const char *name, int x, float eps, float momentum);
int rcv_relu(rcv_graph *g, const char *name, int x);
int rcv_sigmoid(rcv_graph *g, const char *name, int x);
int rcv_maxpool2d(rcv_graph *g, const char *name, int x, int k, int stride, int pad, int ceil_mode);
int rcv_avgpool2d(rcv_graph *g, const char *name, int x, int k, int stride, int pad, int ceil_mode,
                  int count_include_pad);
// (N, C, H, W) -> (N, C, 1, 1)
int rcv_global_avgpool(rcv_graph *g, const char *name, int x);
// (N, C, H, W) -> (N, C, oh, ow), nn.AdaptiveAvgPool2d((oh, ow)): output cell i averages input rows
// [floor(i H / oh), ceil((i + 1) H / oh)) (columns likewise); windows overlap or repeat when
// oh > H (VGG's 7x7 pool on a 2x2 map from a 64x64 image).
int rcv_adaptive_avgpool(rcv_graph *g, const char *name, int x, int oh, int ow);
// (N, F, 1, 1) -> (N, out, 1, 1); weight (out, F), bias (out).
int rcv_linear(rcv_graph *g, const char *name, int x, int out, int bias);
// a: (N, C, H, W); b: same shape, or (N, C, 1, 1) (broadcast over space), or (N, 1, H, W)
// (broadcast over channels).
int rcv_add(rcv_graph *g, const char *name, int a, int b);
int rcv_mul(rcv_graph *g, const char *name, int a, int b);
// alpha * a + beta * b, same shapes.
int rcv_scale_add(rcv_graph *g, const char *name, int a, int b, float alpha, float beta);
// Channel concat of n inputs with equal (N, H, W).
int rcv_concat(rcv_graph *g, const char *name, const int *xs, int n);
int rcv_dropout(rcv_graph *g, const char *name, int x, float p);
// (N, C, H, W) -> (N, C*H*W, 1, 1), features in PyTorch's (C, H, W) order.
int rcv_flatten(rcv_graph *g, const char *name, int x);
int rcv_upsample_nearest(rcv_graph *g, const char *name, int x, int scale);
int rcv_upsample_bilinear(rcv_graph *g, const char *name, int x, int scale, int align_corners);
// (x - mean[c]) / std[c]; no parameters. Puts normalization inside the model.
int rcv_normalize(rcv_graph *g, const char *name, int x, const float *mean, const float *std);

// Losses: scalar (1, 1, 1, 1) outputs, mean over the batch like PyTorch's defaults.
// logits (N, K, 1, 1), labels (N): mean_n [ -sum_k q_nk log softmax(z_n)_k ],
// q = (1 - ls) onehot + ls / K.
int rcv_cross_entropy(rcv_graph *g, const char *name, int logits, int labels, float label_smoothing);
// mean_n sum_k softmax(p)_k (log softmax(p)_k - log softmax(q)_k) (= F.kl_div(log_softmax(q),
// softmax(p), reduction='batchmean')); gradient flows to both.
int rcv_kl_div(rcv_graph *g, const char *name, int p_logits, int q_logits);
// mean over all elements, PyTorch's smooth_l1_loss(beta) and mse_loss.
int rcv_smooth_l1(rcv_graph *g, const char *name, int pred, int target, float beta);
int rcv_mse(rcv_graph *g, const char *name, int pred, int target);

#endif
