#!/usr/bin/python3
"""Image oracle for tests/test_data.c (PIL + torch).

  make DIR    write test images to DIR and, for each, NAME.rgb: PIL's decode converted to RGB
              (raw HWC bytes) and NAME.shape ("w h"); plus expectations for resizing
              (torch.nn.functional.interpolate, bilinear, align_corners=False, rounded) and for
              gray conversion (PIL's convert("L"))
  check PNG RAW W H C   PIL reads the PNG robustcv wrote; exit 1 unless it equals RAW
"""
import sys

import numpy as np
from PIL import Image


def save_expect(d, name, im):
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    rgb.tofile(f"{d}/{name}.rgb")
    with open(f"{d}/{name}.shape", "w") as f:
        f.write(f"{rgb.shape[1]} {rgb.shape[0]}\n")


def make(d):
    import torch
    rng = np.random.default_rng(3)
    # A smooth image with noise: realistic for JPEG, exercises every value for PNG.
    h, w = 23, 37
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / (w - 1), yy * 255 / (h - 1), (xx + yy) * 255 / (w + h - 2)], -1)
    rgb = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(rgb, "RGB")

    im.save(f"{d}/rgb.png")
    im.convert("L").save(f"{d}/gray.png")
    im.convert("P", palette=Image.ADAPTIVE, colors=37).save(f"{d}/pal.png")
    rgba = np.concatenate([rgb, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(f"{d}/rgba.png")
    Image.fromarray(np.stack([rgb[..., 0], rgba[..., 3]], -1), "LA").save(f"{d}/la.png")
    im.save(f"{d}/rgb.jpg", quality=90)
    im.save(f"{d}/rgb444.jpg", quality=95, subsampling=0)
    im.convert("L").save(f"{d}/gray.jpg", quality=90)
    im.convert("CMYK").save(f"{d}/cmyk.jpg", quality=95)
    im.save(f"{d}/progressive.jpg", quality=85, progressive=True)
    for name in ["rgb.png", "gray.png", "pal.png", "rgba.png", "la.png", "rgb.jpg", "rgb444.jpg", "gray.jpg",
                 "cmyk.jpg", "progressive.jpg"]:
        save_expect(d, name, Image.open(f"{d}/{name}"))

    # 16-bit gray: a ramp; the expectation (v * 255 / 65535 rounded) is written by the C test.
    ramp = (np.arange(h * w, dtype=np.uint32).reshape(h, w) * 65535 // (h * w - 1)).astype(np.uint16)
    Image.fromarray(ramp.astype(np.int32), "I").convert("I;16").save(f"{d}/gray16.png")
    ramp.tofile(f"{d}/gray16.u16")

    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    for ow, oh in [(50, 17), (11, 9), (37, 23), (74, 46)]:
        y = torch.nn.functional.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
        y = y.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous().numpy()
        y.tofile(f"{d}/resize_{ow}x{oh}.rgb")
    np.asarray(im.convert("L"), dtype=np.uint8).tofile(f"{d}/rgb.gray")
    rgb.tofile(f"{d}/src.rgb")


def check(png, raw, w, h, c):
    im = Image.open(png)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    if im.mode != mode or im.size != (w, h):
        print(f"oracle: {png} is {im.mode} {im.size}, expected {mode} {(w, h)}", file=sys.stderr)
        sys.exit(1)
    got = np.asarray(im, dtype=np.uint8).reshape(-1)
    want = np.fromfile(raw, dtype=np.uint8)
    if not np.array_equal(got, want):
        print(f"oracle: {png} pixels differ from {raw}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
