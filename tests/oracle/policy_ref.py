#!/usr/bin/python3
"""Policy oracle for tests/test_policy.c: torchvision 0.14's autoaugment on uint8 tensors.

  run DIR   reads DIR/cases.txt, one case a line: "ID IMG H W C FILL OP MAG [OP MAG ...]", where IMG
            names a raw float32 HWC file in DIR with values k / 255, FILL is "none" or a number
            (torchvision's fill, 0..255) and each OP (torchvision's name) runs through
            autoaugment._apply_op with the signed magnitude MAG, in order, on the uint8 image
            round(255 x); writes DIR/ID.f32 (HWC float32, result / 255). Then writes DIR/tables.txt:
            for each of autoaugment / randaugment / trivialaugment and the (BINS, H, W) of each
            "space BINS H W" line of cases.txt, "KIND BINS H W OP SIGNED m0 m1 ..." from
            _augmentation_space (one "0" for ops without magnitudes), and "policy NAME i OP P BIN"
            for the AutoAugment policies (BIN -1 for None).
"""
import sys

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as aa


def run(d):
    spaces = []
    for line in open(f"{d}/cases.txt"):
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "space":
            spaces.append((int(tok[1]), int(tok[2]), int(tok[3])))
            continue
        cid, img, h, w, c = tok[0], tok[1], int(tok[2]), int(tok[3]), int(tok[4])
        fill = None if tok[5] == "none" else [float(tok[5])] * c
        x = np.fromfile(f"{d}/{img}", dtype=np.float32).reshape(h, w, c)
        u = torch.from_numpy(np.rint(x * 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
        ops = tok[6:]
        for i in range(0, len(ops), 2):
            u = aa._apply_op(u, ops[i], float(ops[i + 1]), interpolation=InterpolationMode.NEAREST, fill=fill)
        assert u.dtype == torch.uint8
        y = u.permute(1, 2, 0).contiguous().numpy().astype(np.float32) / np.float32(255)
        y.astype(np.float32).tofile(f"{d}/{cid}.f32")
    with open(f"{d}/tables.txt", "w") as f:
        for bins, h, w in spaces:
            kinds = [("autoaugment", aa.AutoAugment()._augmentation_space(bins, (h, w))),
                     ("randaugment", aa.RandAugment(num_magnitude_bins=bins)._augmentation_space(bins, (h, w))),
                     ("trivialaugment", aa.TrivialAugmentWide(num_magnitude_bins=bins)._augmentation_space(bins))]
            for kind, space in kinds:
                for op, (mags, signed) in space.items():
                    vals = [float(mags.item())] if mags.ndim == 0 else [float(v) for v in mags.tolist()]
                    f.write(f"{kind} {bins} {h} {w} {op} {int(signed)} " + " ".join(f"{v:.9g}" for v in vals) + "\n")
        for pol in aa.AutoAugmentPolicy:
            for i, steps in enumerate(aa.AutoAugment(pol).policies):
                for op, p, m in steps:
                    f.write(f"policy {pol.value} {i} {op} {p:.9g} {-1 if m is None else m}\n")


if __name__ == "__main__":
    run(sys.argv[2])
