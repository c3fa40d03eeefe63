"""Box metric references for tests/test_box.c, from torchvision and torch:

  iou.txt    "a0 a1 a2 a3 b0 b1 b2 b3 iou" per line: torchvision.ops.box_iou of box pairs
             (x0 <= x1, y0 <= y1): random, disjoint, touching, contained, identical, zero-area
             ("nan" where torchvision divides 0 by 0: two empty boxes)
  eval.txt   what rcv_evaluate must report for a box model that predicts the constant box c
             on images of W x H with the listed pixel boxes (some outside the image):
             line 1 "W H N"; line 2 c (normalised); then N lines "x0 y0 x1 y1" in pixels;
             last line "mean_iou frac_iou_ge_0.5 smooth_l1" with the boxes divided by (W, H)
             and clamped to [0, 1], IoU by box_iou, smooth-L1 by F.smooth_l1_loss (beta 1)

usage: box_ref.py OUT_DIR
"""
import os
import sys

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(7)


def rand_boxes(n, scale):
    p = torch.rand(n, 2, generator=g) * scale
    q = torch.rand(n, 2, generator=g) * scale
    return torch.cat([torch.minimum(p, q), torch.maximum(p, q)], 1)


a = rand_boxes(40, 10.0)
b = rand_boxes(40, 10.0)
fixed = torch.tensor([
    [[0, 0, 1, 1], [2, 2, 3, 3]],          # disjoint
    [[0, 0, 1, 1], [1, 0, 2, 1]],          # touching edges: zero intersection
    [[0, 0, 1, 1], [1, 1, 2, 2]],          # touching corners
    [[0, 0, 4, 4], [1, 1, 2, 3]],          # contained
    [[1, 1, 2, 3], [0, 0, 4, 4]],          # contained, other order
    [[0, 0, 1, 1], [0.5, 0, 1.5, 1]],      # half shift: 1/3
    [[0.2, 0.3, 0.7, 0.9], [0.2, 0.3, 0.7, 0.9]],  # identical
    [[0, 0, 2, 2], [1, 1, 1, 1]],          # zero-area point inside: 0
    [[0, 0, 2, 2], [0.5, 1, 1.5, 1]],      # zero-height segment inside: 0
    [[0, 0, 1, 3], [0, 1, 1, 2]],          # contained, shared sides
    [[1, 1, 1, 1], [1, 1, 1, 1]],          # two empty boxes: torchvision nan
])
a = torch.cat([a, fixed[:, 0]])
b = torch.cat([b, fixed[:, 1]])
iou = box_iou(a.double(), b.double()).diagonal()
with open(os.path.join(out, "iou.txt"), "w") as f:
    for i in range(len(a)):
        v = iou[i].item()
        f.write(" ".join("%.9g" % x for x in a[i].tolist() + b[i].tolist()) + (" nan\n" if v != v else " %.17g\n" % v))

# Evaluation: 7 boxes on a 24 x 16 image (non-square, so x and y scales differ), two of them
# reaching outside the image.
W, H = 24, 16
c = torch.tensor([0.25, 0.2, 0.75, 0.8])
px = torch.tensor([[6, 3, 18, 13], [0, 0, 24, 16], [-4, 2, 10, 20], [12, 8, 30, 12],
                   [3, 3, 9, 6], [7, 4, 17, 12], [20, 1, 23, 15]], dtype=torch.float32)
t = (px / torch.tensor([W, H, W, H], dtype=torch.float32)).clamp(0, 1)
v = box_iou(c[None].double(), t.double())[0]
sl1 = F.smooth_l1_loss(c[None].expand_as(t).double(), t.double(), beta=1.0).item()
with open(os.path.join(out, "eval.txt"), "w") as f:
    f.write("%d %d %d\n" % (W, H, len(px)))
    f.write(" ".join("%.9g" % x for x in c.tolist()) + "\n")
    for r in px.tolist():
        f.write(" ".join("%.9g" % x for x in r) + "\n")
    f.write("%.17g %.17g %.17g\n" % (v.mean().item(), (v >= 0.5).double().mean().item(), sl1))
print("wrote", out)
