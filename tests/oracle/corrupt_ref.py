#!/usr/bin/python3
"""Corruption oracle for tests/test_corrupt.c, written from the published formulas of
make_tinyimagenet_c.py with numpy / PIL / OpenCV / scipy (no code of ours).

  profile DIR H W  prints the 1 - correlation profile over severities of glass_blur and
                elastic_transform from the published formulas (see profile()).
  run DIR H W   reads DIR/img.rgb (raw RGB8, H x W) and writes DIR/<name>_<severity>.rgb for the
                closed-form corruptions: brightness, contrast, pixelate, jpeg_compression,
                defocus_blur, zoom_blur.
"""
import io
import sys

import numpy as np
from PIL import Image


def rgb2hsv(x):  # skimage.color.rgb2hsv's formulas
    v = x.max(-1)
    delta = x.max(-1) - x.min(-1)
    s = np.where(delta == 0, 0, delta / np.where(v == 0, 1, v))
    dd = np.where(delta == 0, 1, delta)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    h = np.where(r == v, (g - b) / dd, 0)
    h = np.where(g == v, 2 + (b - r) / dd, h)
    h = np.where(b == v, 4 + (r - g) / dd, h)
    h = np.where(delta == 0, 0, (h / 6) % 1)
    return np.stack([h, s, v], -1)


def hsv2rgb(x):
    h, s, v = x[..., 0], x[..., 1], x[..., 2]
    i = np.floor(h * 6)
    f = h * 6 - i
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    i = i.astype(int) % 6
    sel = [np.stack(c, -1) for c in [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]]
    out = np.zeros_like(x)
    for k in range(6):
        out[i == k] = sel[k][i == k]
    return out


def run(d, h, w):
    im = np.fromfile(f"{d}/img.rgb", np.uint8).reshape(h, w, 3)
    pil = Image.fromarray(im)
    x = im / 255.0
    out = {}
    for s in range(1, 6):
        c = [.1, .2, .3, .4, .5][s - 1]
        hsv = rgb2hsv(x)
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        out[("brightness", s)] = np.clip(hsv2rgb(hsv), 0, 1) * 255
        c = [.4, .3, .2, .1, .05][s - 1]
        m = x.mean(axis=(0, 1), keepdims=True)
        out[("contrast", s)] = np.clip((x - m) * c + m, 0, 1) * 255
        c = [0.9, 0.8, 0.7, 0.6, 0.5][s - 1]
        small = pil.resize((int(w * c), int(h * c)), Image.BOX)
        out[("pixelate", s)] = np.asarray(small.resize((w, h), Image.BOX))
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=[65, 58, 50, 40, 25][s - 1])
        out[("jpeg_compression", s)] = np.asarray(Image.open(buf))
        try:
            import cv2
            radius, alias = [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)][s - 1]
            L = np.arange(-8, 8 + 1)
            X, Y = np.meshgrid(L, L)
            disk = np.array((X ** 2 + Y ** 2) <= radius ** 2, dtype=np.float32)
            disk /= disk.sum()
            k = cv2.GaussianBlur(disk, ksize=(3, 3), sigmaX=alias)
            ch = [cv2.filter2D(x[:, :, i], -1, k) for i in range(3)]
            out[("defocus_blur", s)] = np.clip(np.stack(ch, -1), 0, 1) * 255
        except ImportError:
            pass
        try:
            from scipy.ndimage import zoom as scizoom
            n = [7, 12, 16, 21, 26][s - 1]
            xf = x.astype(np.float32)
            acc = np.zeros_like(xf)
            for i in range(n):
                z = 1 + 0.01 * i
                ch_ = int(np.ceil(h / z))
                top = (h - ch_) // 2
                zz = scizoom(xf[top:top + ch_, top:top + ch_], (z, z, 1), order=1)
                tt = (zz.shape[0] - h) // 2
                acc += zz[tt:tt + h, tt:tt + h]
            out[("zoom_blur", s)] = np.clip((xf + acc) / (n + 1), 0, 1) * 255
        except ImportError:
            pass
    for (name, s), v in out.items():
        np.uint8(v).tofile(f"{d}/{name}_{s}.rgb")


if __name__ == "__main__" and sys.argv[1] == "run":
    run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))


def profile(d, h, w):
    """Prints 1 - corr(corrupted, clean) per severity for glass_blur and elastic_transform, averaged
    over 6 seeds, from the published formulas (scipy gaussian_filter standing in for skimage's
    gaussian, which wraps it): the shape a faithful implementation must show."""
    import cv2
    from scipy.ndimage import gaussian_filter, map_coordinates
    im = np.fromfile(f"{d}/img.rgb", np.uint8).reshape(h, w, 3)

    def decor(a):
        return 1 - np.corrcoef(a.astype(np.float64).ravel(), im.astype(np.float64).ravel())[0, 1]

    def gauss(x, s, mode="nearest", truncate=4.0):
        return gaussian_filter(x, sigma=(s, s, 0) if x.ndim == 3 else s, mode=mode, truncate=truncate)

    def glass(x, s, rs):
        c = [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)][s - 1]
        x = np.uint8(gauss(np.array(x) / 255., c[0]) * 255)
        for _ in range(c[2]):
            for hh in range(h - c[1], c[1], -1):
                for ww in range(w - c[1], c[1], -1):
                    dx, dy = rs.randint(-c[1], c[1], size=(2,))
                    hp, wp = hh + dy, ww + dx
                    x[hh, ww], x[hp, wp] = x[hp, wp], x[hh, ww].copy()
        return np.uint8(np.clip(gauss(x / 255., c[0]), 0, 1) * 255)

    def elastic(image, s, rs):
        c = [(0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)][s - 1]
        c = [v * h for v in c]
        image = np.array(image, dtype=np.float32) / 255.
        cs = np.float32((h, w)) // 2
        sq = min(h, w) // 3
        p1 = np.float32([cs + sq, [cs[0] + sq, cs[1] - sq], cs - sq])
        p2 = p1 + rs.uniform(-c[2], c[2], size=p1.shape).astype(np.float32)
        image = cv2.warpAffine(image, cv2.getAffineTransform(p1, p2), (w, h), borderMode=cv2.BORDER_REFLECT_101)
        dx = (gaussian_filter(rs.uniform(-1, 1, size=(h, w)), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
        dy = (gaussian_filter(rs.uniform(-1, 1, size=(h, w)), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
        x, y, z = np.meshgrid(np.arange(w), np.arange(h), np.arange(3))
        ind = np.reshape(y + dy[..., None], (-1, 1)), np.reshape(x + dx[..., None], (-1, 1)), np.reshape(z, (-1, 1))
        return np.uint8(np.clip(map_coordinates(image, ind, order=1, mode="reflect").reshape(image.shape), 0, 1) * 255)

    for name, fn in [("glass_blur", glass), ("elastic_transform", elastic)]:
        vals = []
        for s in range(1, 6):
            vals.append(np.mean([decor(fn(im, s, np.random.RandomState(seed))) for seed in range(6)]))
        print(name, " ".join("%.5f" % v for v in vals))


if __name__ == "__main__" and sys.argv[1] == "profile":
    profile(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
