"""Writes small trees in the Tiny ImageNet, Tiny-ImageNet-C and image-folder layouts, with
real JPEG/PNG files (RGB, grayscale, one CMYK, one of another size), and what a reader should
get back from them, computed here independently with PIL (decoding), torch (bilinear resize)
and Python's sorted() (ImageFolder's class and file order):

  ref_<split>.txt   "label x0 y0 x1 y1 path" per image, in reading order (boxes scaled to 64x64)
  ref_<split>.u8    the images decoded by PIL, convert("RGB"), resized to 64x64: n x 64 x 64 x 3
  ref_classes.txt   "wnid<TAB>name" in label order

usage: make_tiny_imagenet.py [--box-content] OUT [classes] [train_per_class] [val_per_class]

--box-content paints each Tiny ImageNet train/val image's box as a bright rectangle, so the box
is visible in the pixels (a +box model can learn it; tests/test_box_train.sh).
"""
import os
import random
import sys

import numpy as np
from PIL import Image

args = [a for a in sys.argv[1:] if a != "--box-content"]
BOX_CONTENT = len(args) < len(sys.argv) - 1
out = args[0]
K = int(args[1]) if len(args) > 1 else 5
NTR = int(args[2]) if len(args) > 2 else 20
NVA = int(args[3]) if len(args) > 3 else 5
S = 64
rng = random.Random(1234)
nrng = np.random.RandomState(1234)

# Unsorted wnids: the reader must sort them.
wnids = ["n0%07d" % (9000000 - 1111 * k) for k in range(K)]
names = {w: "thing %d, object %d" % (k, k) for k, w in enumerate(wnids)}
root = os.path.join(out, "tiny")


def make_image(label, w=S, h=S):
    # Class-coloured smooth pattern plus noise: compresses like a photo and is learnable.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.array([(37 * label) % 256, (91 * label + 60) % 256, (151 * label + 120) % 256], np.float32)
    img = base[None, None, :] * 0.6 + 40 * np.sin(xx[..., None] / (3 + label) + yy[..., None] / 7.0) + nrng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def paint_box(img, box):
    """--box-content: the box (inclusive pixel corners x0, y0, x1, y1) as a bright, noisy rectangle."""
    if not BOX_CONTENT:
        return img
    a = np.asarray(img).copy()
    x0, y0, x1, y1 = box
    a[y0:y1 + 1, x0:x1 + 1] = np.clip(230 + nrng.normal(0, 10, a[y0:y1 + 1, x0:x1 + 1].shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGB")


def save(img, path, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode == "L":
        img = img.convert("L")
    elif mode == "CMYK":
        img = img.convert("CMYK")
    if path.lower().endswith(".png"):
        img.save(path)
    else:
        img.save(path, "JPEG", quality=90)


def pil_ref(path):
    """What a reader must produce: PIL's decode as RGB, resized like torch's bilinear."""
    im = Image.open(path)
    im = im.convert("RGB")
    a = np.asarray(im, dtype=np.uint8)
    if a.shape[0] != S or a.shape[1] != S:
        import torch
        t = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]
        t = torch.nn.functional.interpolate(t, size=(S, S), mode="bilinear", align_corners=False)
        a = t[0].permute(1, 2, 0).round().clamp(0, 255).numpy().astype(np.uint8)
    return a, im.size


def write_ref(name, rows):
    with open(os.path.join(out, "ref_%s.txt" % name), "w") as f, open(os.path.join(out, "ref_%s.u8" % name), "wb") as g:
        for label, box, path in rows:
            a, (w, h) = pil_ref(path)
            bx = [box[0] * S / w, box[1] * S / h, box[2] * S / w, box[3] * S / h] if box else [0, 0, 0, 0]
            f.write("%d %.6f %.6f %.6f %.6f %s\n" % (label, bx[0], bx[1], bx[2], bx[3], path))
            g.write(a.tobytes())


# --- Tiny ImageNet ---
os.makedirs(root, exist_ok=True)
with open(os.path.join(root, "wnids.txt"), "w") as f:
    f.write("\n".join(wnids) + "\n")
with open(os.path.join(root, "words.txt"), "w") as f:
    f.write("n00000001\tentity\n")  # WordNet has many more entries than the 200 classes
    for w in wnids:
        f.write("%s\t%s\n" % (w, names[w]))
order = sorted(wnids)
with open(os.path.join(out, "ref_classes.txt"), "w") as f:
    for w in order:
        f.write("%s\t%s\n" % (w, names[w]))

train_rows = []
for k, w in enumerate(wnids):
    label = order.index(w)
    d = os.path.join(root, "train", w)
    boxes = []
    for i in range(NTR):
        fn = "%s_%d.JPEG" % (w, i)
        mode = "L" if i % 7 == 3 else ("CMYK" if (k == 1 and i == 5) else "RGB")
        iw, ih = (80, 48) if (k == 0 and i == 2) else (S, S)
        img = make_image(label, iw, ih)
        x0, y0 = rng.randint(0, iw // 2), rng.randint(0, ih // 2)
        boxes.append((fn, x0, y0, rng.randint(x0 + 1, iw - 1), rng.randint(y0 + 1, ih - 1)))
        save(paint_box(img, boxes[-1][1:]), os.path.join(d, "images", fn), mode)
    rng.shuffle(boxes)  # the boxes file's order is not the images' order
    with open(os.path.join(d, "%s_boxes.txt" % w), "w") as f:
        for b in boxes:
            f.write("%s\t%d\t%d\t%d\t%d\n" % b)
    bmap = {b[0]: b[1:] for b in boxes}
    for fn in sorted(os.listdir(os.path.join(d, "images"))):
        train_rows.append((label, bmap[fn], os.path.join(d, "images", fn)))
# Labels grouped by sorted wnid, as ImageFolder reads them.
train_rows.sort(key=lambda r: (r[0], os.path.basename(r[2])))
write_ref("train", train_rows)

val_rows = []
os.makedirs(os.path.join(root, "val", "images"), exist_ok=True)
with open(os.path.join(root, "val", "val_annotations.txt"), "w") as f:
    for i in range(NVA * K):
        w = wnids[rng.randrange(K)]
        fn = "val_%d.JPEG" % i
        p = os.path.join(root, "val", "images", fn)
        img = make_image(order.index(w))
        b = (rng.randint(0, 20), rng.randint(0, 20), rng.randint(30, 63), rng.randint(30, 63))
        save(paint_box(img, b), p, "L" if i % 6 == 1 else "RGB")
        f.write("%s\t%s\t%d\t%d\t%d\t%d\n" % ((fn, w) + b))
        val_rows.append((order.index(w), b, p))
write_ref("val", val_rows)

test_rows = []
for i in range(6):
    p = os.path.join(root, "test", "images", "test_%d.JPEG" % i)
    save(make_image(i % K), p, "RGB")
test_rows = [(-1, None, os.path.join(root, "test", "images", fn)) for fn in sorted(os.listdir(os.path.join(root, "test", "images")))]
write_ref("test", test_rows)

# --- Tiny-ImageNet-C: two corruptions, severities 1 and 3, 3 images per class ---
croot = os.path.join(out, "tinyc")
c_rows = []
for corr in ["gaussian_noise", "fog"]:
    for sev in [1, 3]:
        for w in wnids:
            for i in range(3):
                p = os.path.join(croot, corr, str(sev), w, "val_%d.JPEG" % (10 * i + sev))
                save(make_image(order.index(w)), p, "RGB")
for w in order:
    d = os.path.join(croot, "fog", "3", w)
    for fn in sorted(os.listdir(d)):
        c_rows.append((order.index(w), None, os.path.join(d, fn)))
write_ref("tinyc_fog_3", c_rows)

# --- Image folder: train/<class>, val/<class> with one class missing from val ---
froot = os.path.join(out, "folder")
classes = ["zebra", "ant", "Moth"]
for split, n in [("train", 4), ("val", 2)]:
    for ci, c in enumerate(classes):
        if split == "val" and c == "ant":
            continue
        for i in range(n):
            ext = [".png", ".jpg", ".JPEG"][i % 3]
            save(make_image(ci, 40, 40), os.path.join(froot, split, c, "%s%d%s" % (c, i, ext)), "RGB")
fclasses = sorted(classes)
for split in ["train", "val"]:
    rows = []
    for c in sorted(os.listdir(os.path.join(froot, split))):
        for fn in sorted(os.listdir(os.path.join(froot, split, c))):
            rows.append((fclasses.index(c), None, os.path.join(froot, split, c, fn)))
    write_ref("folder_" + split, rows)
print("wrote", out)
