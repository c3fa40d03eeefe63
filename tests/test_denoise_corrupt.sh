#!/usr/bin/env bash
# robustcv denoise / corrupt on small generated trees (written with PIL): denoised images against
# OpenCV's fastNlMeansDenoisingColored, the Tiny-ImageNet-C layout and one corruption against
# its formula, copies of non-image files, and a clear error for a corrupt JPEG.
set -euo pipefail
BIN=${RCV_BIN:-build/robustcv}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/rcv_dc.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
if ! $PY -c "import cv2" 2>/dev/null; then echo "SKIP: python3-opencv missing (scripts/deps.sh installs it)"; exit 0; fi

$PY - "$T" <<'PYEOF'
import os, sys
import numpy as np
from PIL import Image
t = sys.argv[1]
rng = np.random.default_rng(0)
def pic(h=64, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 90 * np.sin(xx / 5.0), 128 + 80 * np.cos(yy / 7.0), (xx * 2 + yy * 3) % 256], -1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
root = f"{t}/tiny"
wnids = ["n01443537", "n01629819"]
os.makedirs(f"{root}/val/images")
open(f"{root}/wnids.txt", "w").write("\n".join(wnids) + "\n")
open(f"{root}/words.txt", "w").write("n01443537\tgoldfish\nn01629819\tsalamander\n")
for w in wnids:
    os.makedirs(f"{root}/train/{w}/images")
    with open(f"{root}/train/{w}/{w}_boxes.txt", "w") as f:
        for i in range(2):
            Image.fromarray(pic()).save(f"{root}/train/{w}/images/{w}_{i}.JPEG", quality=90)
            f.write(f"{w}_{i}.JPEG\t1\t2\t40\t50\n")
Image.fromarray(pic()).convert("L").save(f"{root}/train/{wnids[0]}/images/{wnids[0]}_gray.JPEG", quality=90)
with open(f"{root}/val/val_annotations.txt", "w") as f:
    for i in range(4):
        Image.fromarray(pic()).save(f"{root}/val/images/val_{i}.JPEG", quality=90)
        f.write(f"val_{i}.JPEG\t{wnids[i % 2]}\t0\t0\t63\t63\n")
# A generic tree of lossless PNGs: exact comparison with OpenCV.
for c in ["cat", "dog"]:
    os.makedirs(f"{t}/png/{c}")
    for i in range(2):
        Image.fromarray(pic(48, 40)).save(f"{t}/png/{c}/{i}.png")
open(f"{t}/png/README.txt", "w").write("not an image\n")
PYEOF

# ---- denoise: PNG tree exact-ish, Tiny ImageNet tree through JPEG q95
"$BIN" denoise --in "$T/png" --out "$T/png_dn" --h 10 --h-color 10 > /dev/null || fail "denoise png tree"
cmp -s "$T/png/README.txt" "$T/png_dn/README.txt" || fail "non-image file not copied"
"$BIN" denoise --in "$T/tiny" --out "$T/tiny_dn" --h 10 --h-color 7 --template 21 --search 21 > /dev/null || fail "denoise tiny tree"
for f in wnids.txt words.txt val/val_annotations.txt train/n01443537/n01443537_boxes.txt; do
  cmp -s "$T/tiny/$f" "$T/tiny_dn/$f" || fail "$f not copied"
done
$PY - "$T" <<'PYEOF' || fail "denoise differs from OpenCV"
import glob, io, sys
import cv2, numpy as np
from PIL import Image
t = sys.argv[1]
worst = {}
for pat, args, tol, kind in [("png/*/*.png", (10, 10, 7, 21), 0.2, "png"),
                             ("tiny/*/*/images/*.JPEG", (10, 7, 21, 21), 1.0, "jpeg"),
                             ("tiny/val/images/*.JPEG", (10, 7, 21, 21), 1.0, "jpeg")]:
    files = sorted(glob.glob(f"{t}/{pat}"))
    assert files, pat
    for f in files:
        src = np.asarray(Image.open(f).convert("RGB"))  # gray JPEGs become RGB, as robustcv reads them
        ref = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(src[..., ::-1]), None, *args)[..., ::-1]
        if kind == "jpeg":  # robustcv writes JPEGs at quality 95: put the reference through the same
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(ref)).save(buf, "JPEG", quality=95)
            ref = np.asarray(Image.open(buf))
        out = np.asarray(Image.open(f.replace(f"{t}/png/", f"{t}/png_dn/").replace(f"{t}/tiny/", f"{t}/tiny_dn/")).convert("RGB"))
        mad = np.abs(out.astype(int) - ref.astype(int)).mean()
        worst[kind] = max(worst.get(kind, 0), mad)
        if mad > tol:
            print(f"{f}: MAD {mad:.3f} vs cv2 (tol {tol})"); sys.exit(1)
print("denoise vs cv2: worst MAD png %.3f (lossless), jpeg %.3f (both through JPEG q95)" % (worst["png"], worst["jpeg"]))
PYEOF

# ---- corrupt: Tiny ImageNet root -> <out>/<corruption>/<severity>/<wnid>/<file>
"$BIN" corrupt --in "$T/tiny" --out "$T/tic" --corruptions contrast,gaussian_noise --severities 1-2 --seed 3 > /dev/null || fail "corrupt tiny"
n=$(find "$T/tic" -name '*.JPEG' | wc -l)
[ "$n" -eq 16 ] || fail "expected 16 files (4 val x 2 corruptions x 2 severities), got $n"
for i in 0 1 2 3; do
  w=$([ $((i % 2)) -eq 0 ] && echo n01443537 || echo n01629819)
  [ -f "$T/tic/contrast/2/$w/val_$i.JPEG" ] || fail "val_$i.JPEG not under contrast/2/$w (val_annotations.txt)"
done
$PY - "$T" <<'PYEOF' || fail "contrast output differs from its formula"
import io, sys
import numpy as np
from PIL import Image
t = sys.argv[1]
x = np.asarray(Image.open(f"{t}/tiny/val/images/val_1.JPEG").convert("RGB")) / 255.0
m = x.mean(axis=(0, 1), keepdims=True)
ref = Image.fromarray(np.uint8(np.clip((x - m) * 0.3 + m, 0, 1) * 255))
buf = io.BytesIO(); ref.save(buf, "JPEG", quality=85)
ref = np.asarray(Image.open(buf)).astype(int)
out = np.asarray(Image.open(f"{t}/tic/contrast/2/n01629819/val_1.JPEG")).astype(int)
d = np.abs(out - ref)
print("corrupt contrast/2 vs formula + PIL JPEG q85: max |diff| %d, MAD %.3f" % (d.max(), d.mean()))
sys.exit(0 if d.max() <= 2 else 1)
PYEOF
# Generic tree: class folders kept, PNG names become .JPEG; same seed, same bytes.
"$BIN" corrupt --in "$T/png" --out "$T/pc" --corruptions fog --severities 3 --seed 5 > /dev/null || fail "corrupt png tree"
[ -f "$T/pc/fog/3/cat/0.JPEG" ] && [ -f "$T/pc/fog/3/dog/1.JPEG" ] || fail "generic layout fog/3/<class>/<name>.JPEG missing"
"$BIN" corrupt --in "$T/png" --out "$T/pc2" --corruptions fog --severities 3 --seed 5 --threads 1 > /dev/null
cmp -s "$T/pc/fog/3/cat/0.JPEG" "$T/pc2/fog/3/cat/0.JPEG" || fail "corrupt not deterministic across thread counts"
# Bad arguments
if "$BIN" corrupt --in "$T/png" --out "$T/x" --corruptions fgo 2> "$T/err"; then fail "unknown corruption accepted"; fi
grep -q "fgo" "$T/err" && grep -q "fog" "$T/err" || fail "unknown corruption message: $(cat "$T/err")"
if "$BIN" corrupt --in "$T/png" --out "$T/x" --severities 0-7 2> "$T/err"; then fail "severity 7 accepted"; fi

# ---- a truncated JPEG: a clear error naming the file, or skipped with --skip-bad
head -c 300 "$T/tiny/val/images/val_2.JPEG" > "$T/tiny/val/images/val_2.tmp" && mv "$T/tiny/val/images/val_2.tmp" "$T/tiny/val/images/val_2.JPEG"
if "$BIN" corrupt --in "$T/tiny" --out "$T/tic2" --corruptions contrast --severities 1 2> "$T/err" > /dev/null; then fail "truncated JPEG accepted by corrupt"; fi
grep -q "val_2.JPEG" "$T/err" || fail "corrupt error does not name the file: $(cat "$T/err")"
if "$BIN" denoise --in "$T/tiny" --out "$T/dn2" 2> "$T/err" > /dev/null; then fail "truncated JPEG accepted by denoise"; fi
grep -q "val_2.JPEG" "$T/err" || fail "denoise error does not name the file: $(cat "$T/err")"
"$BIN" corrupt --in "$T/tiny" --out "$T/tic3" --corruptions contrast --severities 1 --skip-bad 2> "$T/err" > /dev/null || fail "--skip-bad still failed"
grep -q "skipping.*val_2.JPEG" "$T/err" || fail "--skip-bad warning missing"
echo "error: $(head -1 "$T/err")"
echo "test_denoise_corrupt: all passed"
