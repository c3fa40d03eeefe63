#!/usr/bin/env bash
# robustcv ensemble / explain / report end to end on two tiny Fashion-MNIST models: each single
# model's row must equal `robustcv eval` on the same images, the JSON must feed `robustcv report`,
# and explain must write its grid and filter PNGs (checked with PIL: sizes and non-blank content).
set -euo pipefail
BIN=${RCV_BIN:-build/robustcv}
[ -d /usr/share/datasets/fashion-mnist ] || { echo "SKIP: Fashion-MNIST not installed"; exit 0; }
T=$(mktemp -d /tmp/rcv_cli_ens.XXXXXX)
trap 'rm -rf "$T"' EXIT
# A copy of Fashion-MNIST whose test split holds only its first 1000 images (IDX headers rewritten),
# so every command below runs on 1000 test images.
mkdir -p "$T/fm"
/usr/bin/python3 - /usr/share/datasets/fashion-mnist "$T/fm" <<'PY'
import gzip, os, struct, sys
src, dst = sys.argv[1:]
def read(name):
    for n in (name, name + ".gz"):
        p = os.path.join(src, n)
        if os.path.exists(p):
            return gzip.open(p).read() if n.endswith(".gz") else open(p, "rb").read()
    raise SystemExit(f"missing {name}")
for kind in ("train", "t10k"):
    img, lab = read(f"{kind}-images-idx3-ubyte"), read(f"{kind}-labels-idx1-ubyte")
    n = 1000 if kind == "t10k" else struct.unpack(">I", img[4:8])[0]
    rows, cols = struct.unpack(">II", img[8:16])
    open(os.path.join(dst, f"{kind}-images-idx3-ubyte"), "wb").write(img[:4] + struct.pack(">III", n, rows, cols) + img[16:16 + n * rows * cols])
    open(os.path.join(dst, f"{kind}-labels-idx1-ubyte"), "wb").write(lab[:4] + struct.pack(">I", n) + lab[8:8 + n])
PY
D="fashion-mnist:$T/fm"
for s in 1 2; do
  "$BIN" train --data "$D" --subset 600 --epochs 1 --batch 64 --seed $s --out "$T/m$s" --quiet --threads 1 >/dev/null
done
"$BIN" ensemble --data "$D" --checkpoints "$T/m1/last.safetensors,$T/m2/last.safetensors" --json "$T/ens.json" --threads 1 > "$T/ens.txt"
cat "$T/ens.txt"
for s in 1 2; do
  want=$("$BIN" eval --data "$D" --checkpoint "$T/m$s/last.safetensors" --threads 1 | sed -n 's/^top-1 \([0-9.]*\)%.*/\1/p')
  got=$(grep "^($s) .*%" "$T/ens.txt" | tail -1 | awk '{print $(NF-1)}' | tr -d %)
  [ -n "$want" ] && [ "$want" = "$got" ] || { echo "FAIL: model $s: ensemble row $got%, eval $want%"; exit 1; }
  echo "model $s: ensemble row $got%, robustcv eval $want%"
done
grep -q "Ensemble (1), (2); Majority Vote" "$T/ens.txt"
# The error path: a missing checkpoint names the file.
if "$BIN" ensemble --checkpoints "$T/nope.safetensors" 2> "$T/err.txt"; then echo "FAIL: missing checkpoint accepted"; exit 1; fi
grep -q "nope.safetensors" "$T/err.txt"
"$BIN" explain --checkpoint "$T/m1/last.safetensors" --data "$D" --limit 2 --method gradcam --out "$T/cams" --threads 1
/usr/bin/python3 - "$T" <<'PY'
import sys
from PIL import Image
t = sys.argv[1]
g = Image.open(f"{t}/cams/gradcam.png"); f = Image.open(f"{t}/cams/filters.png")
assert g.mode == "RGB" and g.size[0] > 4 * 112 and g.size[1] > 2 * 112, g.size
assert len(set(g.getdata())) > 50, "grid looks blank"
assert f.size[0] > 6 * 24, f.size
print("explain PNGs ok:", g.size, f.size)
PY
# results.json around the ensemble JSON -> report with the Table 2 rows.
{ echo '{"models": [{"name": "m1", "metrics_jsonl": "m1/metrics.jsonl"}, {"name": "m2"}], "ensembles": '
  cat "$T/ens.json"
  echo ', "cams": [{"path": "cams/gradcam.png", "caption": "Grad-CAM"}]}'; } > "$T/results.json"
"$BIN" report "$T"
grep -q "Ensemble (1), (2); Averaging" "$T/report.html"
grep -q "data:image/png;base64" "$T/report.html"
echo "ok"
