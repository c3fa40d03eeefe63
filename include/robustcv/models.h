// The model zoo: named networks built as graphs with torchvision's parameter
// names, so a torchvision state_dict saved as safetensors loads unchanged and
// our checkpoints load in PyTorch.
//
// Every model has the same frame:
//
//   "input"      (N, in_c, in_h, in_w)  pixels in [0, 1] (attacks perturb and clamp here)
//   "normalize"  (x - mean[c]) / std[c], no parameters
//   network      torchvision names, no prefix: conv1.weight, bn1.*, layer1.0.conv1.weight, ..., fc.weight
//   logits       (N, n_classes, 1, 1)
//   "labels"     (N) int32
//   "loss"       cross_entropy(logits, labels, label_smoothing), mean over the batch
//
// NAME+box (e.g. "resnet18+box") adds a bounding-box head on the classifier's input (the pooled
// features; VGG: classifier.5, the 4096 penultimate features):
//   "box"        linear (F -> 4), "box.sigmoid": box (x0, y0, x1, y1) / image size in [0, 1]
//   "boxes"      (N, 4, 1, 1) input: the target box, same normalisation
//   "loss_cls"   cross-entropy; "loss_box" smooth_l1(box, boxes, beta 1), mean over N x 4
//   "loss"       loss_cls + box_lambda * loss_box (box_lambda 1 by default)
// (rcv_box_iou in metrics.h scores the predicted box; rcv_boxes_normalize in data.h makes targets.)
//
// Node names follow module paths, and the last node built under a module path
// is that module's output (like a forward hook): rcv_model_find_node(m, "layer4")
// is the output of torchvision's model.layer4.
#ifndef RCV_MODELS_H
#define RCV_MODELS_H

#include <stdint.h>

#include "robustcv/graph.h"

typedef struct {
    int in_c, in_h, in_w, n_classes; // defaults 3, 224, 224, 1000 (torchvision's)
    int small_input;       // ResNets: 3x3 stride-1 first conv and no max-pool (CIFAR-style stem)
    float mean[4], std[4]; // normalization inside the model (first node); defaults 0 and 1
    float gamma;           // ResNet-D geometric residual decay (SEED_FACTS.md); 0 = plain ResNet
    float dropout;         // before the classifier (VGG: its classifier's two dropouts); 0 = no dropout
                           // node; < 0 (the default) = the model's own: VGG 0.5, the others none
    float box_lambda;      // NAME+box models: loss = CE + box_lambda * smooth-L1 (default 1)
    float label_smoothing; // of the loss node
    uint64_t seed;         // initialisation
    int no_init;           // leave parameters and buffers zero (a checkpoint is loaded next)
    size_t max_numel;      // > 0: refuse, before allocating, a model with more parameter and buffer
                           // elements (a checkpoint sets its data bytes: it must hold them all)
} rcv_model_cfg;
// Limits on what a configuration may ask for (rcv_model_build refuses more with a message).
#define RCV_MAX_CLASSES 100000
#define RCV_MAX_SIDE 65536            // input height and width
#define RCV_MAX_PIXELS (1 << 24)      // input height x width (4096 x 4096)

typedef struct {
    rcv_graph *g;
    int input, labels, logits, loss; // node ids
    int features;                    // last spatial feature map (N, C, h, w), input of the global pool (CAM)
    // NAME+box models (multi-task, hard parameter sharing), else -1:
    int boxes;                       // "boxes" input (N, 4, 1, 1): target (x0, y0, x1, y1) / image size, filled by the caller
    int box;                         // "box.sigmoid" (N, 4, 1, 1): predicted box in [0, 1]
    int loss_cls, loss_box;          // cross-entropy and smooth-L1 (beta 1, mean over N x 4) nodes; loss = cls + lambda box
    char name[64];
    rcv_model_cfg cfg;
} rcv_model;

// Defaults: 3x224x224, 1000 classes, mean 0, std 1, the model's own dropout, gamma 0, seed 0, box lambda 1.
void rcv_model_cfg_defaults(rcv_model_cfg *c);
// Builds model `name` (see rcv_model_names) and initialises it with the model's
// own initialisation from cfg->seed. cfg NULL = defaults. 0, or -1 with a message
// (unknown name: the message lists the valid names; bad config; input too small).
int rcv_model_build(rcv_model *m, const char *name, const rcv_model_cfg *cfg);
void rcv_model_free(rcv_model *m);
// Re-initialises every parameter and buffer as rcv_model_build does, from `seed`.
int rcv_model_init(rcv_model *m, uint64_t seed);

// The registered names, in a stable order, and a one-line description of each
// (NULL for an unknown name).
const char *const *rcv_model_names(int *n);
const char *rcv_model_description(const char *name);

// Output node of a module path ("layer4", "layer2.1", "layer1.0.bn2", "fc"): the
// last node whose name is `module` or starts with `module.`; -1 if none.
int rcv_model_find_node(const rcv_model *m, const char *module);
// Forward multiply-adds per image of the conv and linear layers at the built input size
// (torchvision's "GFLOPS" column counts these); FLOPs = 2 x MACs.
double rcv_model_macs(const rcv_model *m);

// Changes the loss node's label smoothing (0..1); no rebuild or re-plan needed.
int rcv_model_set_label_smoothing(rcv_model *m, float ls);
// NAME+box models: changes lambda of loss = CE + lambda * smooth-L1 (finite, >= 0); no re-plan needed.
int rcv_model_set_box_lambda(rcv_model *m, float lambda);

#endif
