#!/usr/bin/python3
"""NL-means oracle for tests/test_nlmeans.c: OpenCV (Debian python3-opencv).

  make DIR   writes test images DIR/img<k>.rgb (raw RGB8, sizes in DIR/img<k>.shape "w h"), and for each
             parameter set p: DIR/img<k>_p<p>.rgb = cv2.fastNlMeansDenoisingColored on the BGR view, back
             to RGB; DIR/lab.rgb / DIR/lab.lab: 4096 random colours and cv2's COLOR_LBGR2Lab of them;
             DIR/lab2.lab / DIR/lab2.rgb: random Lab bytes and cv2's COLOR_Lab2LBGR (as RGB).
DIR/gray.u8 / DIR/gray_p<p>.u8: one 64x64 plane and cv2.fastNlMeansDenoising of it (h = the set's h).
Parameter sets (h, hColor, template, search) are listed in DIR/params.txt.
"""
import sys

import numpy as np

try:
    import cv2
except ImportError:
    print("SKIP: python3-opencv is not installed (apt-get install python3-opencv)")
    sys.exit(3)

# The last: a 1x1 template, the SSD of one pixel pair.
PARAMS = [(10, 10, 7, 21), (10, 7, 21, 21), (3, 3, 3, 7), (20, 15, 5, 11), (12, 12, 1, 5)]


def images():
    rng = np.random.default_rng(7)
    out = []
    for (h, w) in [(64, 64), (23, 37), (64, 64)]:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([128 + 100 * np.sin(xx / 6.0), 128 + 90 * np.cos(yy / 5.0), (xx * 3 + yy * 2) % 256], -1)
        # blocks with edges, then noise: what denoising is for
        base[(yy // 16 + xx // 16) % 2 == 0] *= 0.6
        noise = 25 if len(out) != 2 else 8
        out.append(np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8))
    return out


def make(d):
    with open(f"{d}/params.txt", "w") as f:
        for p in PARAMS:
            f.write("%g %g %d %d\n" % p)
    for k, im in enumerate(images()):
        im.tofile(f"{d}/img{k}.rgb")
        with open(f"{d}/img{k}.shape", "w") as f:
            f.write(f"{im.shape[1]} {im.shape[0]}\n")
        for i, (h, hc, t, s) in enumerate(PARAMS):
            bgr = np.ascontiguousarray(im[..., ::-1])
            out = cv2.fastNlMeansDenoisingColored(bgr, None, h, hc, t, s)
            np.ascontiguousarray(out[..., ::-1]).tofile(f"{d}/img{k}_p{i}.rgb")
    # Gray planes through cv2.fastNlMeansDenoising (8-bit, one channel): the NL-means core alone.
    g = images()[0][..., 1].copy()
    g.tofile(f"{d}/gray.u8")
    for i, (h, hc, t, s) in enumerate(PARAMS):
        cv2.fastNlMeansDenoising(g, None, h, t, s).tofile(f"{d}/gray_p{i}.u8")
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb.tofile(f"{d}/lab.rgb")
    cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_LBGR2Lab).tofile(f"{d}/lab.lab")
    lab = cv2.cvtColor(np.ascontiguousarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)[..., ::-1]),
                       cv2.COLOR_LBGR2Lab)  # realistic Lab values
    lab.tofile(f"{d}/lab2.lab")
    np.ascontiguousarray(cv2.cvtColor(lab, cv2.COLOR_Lab2LBGR)[..., ::-1]).tofile(f"{d}/lab2.rgb")


if __name__ == "__main__":
    make(sys.argv[2])
