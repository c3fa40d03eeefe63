#!/usr/bin/python3
"""Augmentation oracle for tests/test_augment.c: torchvision.transforms.functional on float tensors.

  run DIR   reads DIR/cases.txt, one case a line: "ID OP IMG H W C params...", where IMG names a raw
            float32 HWC file in DIR; writes DIR/ID.f32 (HWC float32) with torchvision's result.
"""
import sys

import numpy as np
import torch
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode


def run(d):
    for line in open(f"{d}/cases.txt"):
        tok = line.split()
        if not tok:
            continue
        cid, op, img, h, w, c = tok[0], tok[1], tok[2], int(tok[3]), int(tok[4]), int(tok[5])
        p = [float(v) for v in tok[6:]]
        x = torch.from_numpy(np.fromfile(f"{d}/{img}", dtype=np.float32).reshape(h, w, c)).permute(2, 0, 1).contiguous()
        if op == "hflip":
            y = F.hflip(x)
        elif op == "vflip":
            y = F.vflip(x)
        elif op == "padcrop":  # pad mode(0 constant,1 reflect,2 edge) fill top left oh ow
            mode = ["constant", "reflect", "edge"][int(p[1])]
            y = F.pad(x, [int(p[0])], fill=p[2], padding_mode=mode)
            y = F.crop(y, int(p[3]), int(p[4]), int(p[5]), int(p[6]))
        elif op == "resizedcrop":  # top left ch cw oh ow
            y = F.resized_crop(x, int(p[0]), int(p[1]), int(p[2]), int(p[3]), [int(p[4]), int(p[5])],
                               InterpolationMode.BILINEAR, antialias=False)
        elif op == "affine":  # angle tx ty scale shx shy fill
            y = F.affine(x, angle=p[0], translate=[int(p[1]), int(p[2])], scale=p[3], shear=[p[4], p[5]],
                         interpolation=InterpolationMode.NEAREST, fill=[p[6]] * c)
        elif op == "rotate":  # angle fill
            y = F.rotate(x, p[0], interpolation=InterpolationMode.NEAREST, fill=[p[1]] * c)
        elif op == "perspective":  # 8 start, 8 end, fill
            s = [[int(p[2 * i]), int(p[2 * i + 1])] for i in range(4)]
            e = [[int(p[8 + 2 * i]), int(p[8 + 2 * i + 1])] for i in range(4)]
            y = F.perspective(x, s, e, interpolation=InterpolationMode.NEAREST, fill=[p[16]] * c)
        elif op == "brightness":
            y = F.adjust_brightness(x, p[0])
        elif op == "contrast":
            y = F.adjust_contrast(x, p[0])
        elif op == "saturation":
            y = F.adjust_saturation(x, p[0])
        elif op == "hue":
            y = F.adjust_hue(x, p[0])
        elif op == "gray":
            y = F.rgb_to_grayscale(x, num_output_channels=c)
        elif op == "blur":  # kh kw sigma_y sigma_x (torchvision takes (kx, ky) and (sx, sy))
            y = F.gaussian_blur(x, [int(p[1]), int(p[0])], [p[3], p[2]])
        elif op == "erase":  # i j eh ew value
            y = F.erase(x, int(p[0]), int(p[1]), int(p[2]), int(p[3]), torch.tensor(p[4]))
        elif op == "sym":  # k = 4 * flip + rot: flip along W, then rot90 counter-clockwise
            k = int(p[0])
            y = torch.flip(x, dims=[2]) if k & 4 else x
            y = torch.rot90(y, k & 3, dims=[1, 2])
        else:
            raise SystemExit(f"augment_ref.py: unknown op {op}")
        y.permute(1, 2, 0).contiguous().numpy().astype(np.float32).tofile(f"{d}/{cid}.f32")


if __name__ == "__main__":
    run(sys.argv[2])
