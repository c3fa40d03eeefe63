// Multi-task head: bounding-box regression next to the classifier, on the same
// pooled features (hard parameter sharing). Its metric, rcv_box_iou, is in src/eval/metrics.c.
#include "nn/nn.h"
#include "robustcv/error.h"

// On the classifier's input f (N, F, 1, 1):
//   box = sigmoid(linear_box(f))                      (N, 4, 1, 1) in [0, 1]
//   loss = CE(logits, labels) + lambda * smooth_l1(box, boxes)
int rcv_nn_box_head(rcv_model *m, float lambda) {
    rcv_graph *g = m->g;
    const rcv_node *fc = &g->nodes[m->logits];
    if (fc->op != RCV_OP_LINEAR) return rcv_fail("box head: model '%s' does not end in a linear classifier", m->name);
    int f = fc->in[0];
    int b = rcv_linear(g, "box", f, 4, 1);
    m->box = b < 0 ? -1 : rcv_sigmoid(g, "box.sigmoid", b);
    m->boxes = rcv_input(g, "boxes", 4, 1, 1);
    m->loss_cls = rcv_cross_entropy(g, "loss_cls", m->logits, m->labels, m->cfg.label_smoothing);
    if (m->box < 0 || m->boxes < 0 || m->loss_cls < 0) return -1;
    m->loss_box = rcv_smooth_l1(g, "loss_box", m->box, m->boxes, 1.0f);
    m->loss = m->loss_box < 0 ? -1 : rcv_scale_add(g, "loss", m->loss_cls, m->loss_box, 1.0f, lambda);
    return m->loss < 0 ? -1 : 0;
}
