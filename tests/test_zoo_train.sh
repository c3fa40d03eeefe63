#!/usr/bin/env bash
# Every model trains from the CLI: `robustcv train --model NAME --small-input` for 2 SGD steps
# (one epoch of 8 images, batch 4) on Fashion-MNIST padded to 32x32 (the attention network's
# mask branch needs sizes divisible by 8), then the checkpoint it wrote is reloaded by
# `robustcv eval`, whose test loss must equal the one the training run logged in
# metrics.jsonl (an independent recomputation through the saved weights).
set -u
BIN=${RCV_BIN:-build/robustcv}
FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/train-images-idx3-ubyte.gz" ] && [ ! -f "$FM/train-images-idx3-ubyte" ]; then
  echo "SKIP: Fashion-MNIST not found in $FM"; exit 0
fi
command -v /usr/bin/python3 >/dev/null || { echo "SKIP: /usr/bin/python3 needed to pad the images"; exit 0; }
T=$(mktemp -d /tmp/rcv_zoo_train.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }

# 16 train and 8 test images, zero-padded from 28x28 to 32x32, as IDX files.
/usr/bin/python3 - "$FM" "$T/data" <<'PY' || { echo "FAIL: padding Fashion-MNIST"; exit 1; }
import gzip, os, struct, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
def read(name):
    p = os.path.join(src, name)
    return gzip.open(p + ".gz").read() if os.path.exists(p + ".gz") else open(p, "rb").read()
for split, n in (("train", 16), ("t10k", 8)):
    img = np.frombuffer(read(f"{split}-images-idx3-ubyte"), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    lab = np.frombuffer(read(f"{split}-labels-idx1-ubyte"), np.uint8, offset=8)[:n]
    pad = np.zeros((n, 32, 32), np.uint8)
    pad[:, 2:30, 2:30] = img
    open(os.path.join(dst, f"{split}-images-idx3-ubyte"), "wb").write(struct.pack(">IIII", 0x803, n, 32, 32) + pad.tobytes())
    open(os.path.join(dst, f"{split}-labels-idx1-ubyte"), "wb").write(struct.pack(">II", 0x801, n) + lab.tobytes())
PY

models=$("$BIN" models --input 1x32x32 --classes 10 | awk 'NR > 3 {print $1}')
[ -n "$models" ] || { echo "FAIL: no models listed"; exit 1; }
for m in $models; do
  out="$T/run_$m"
  args=(--data "fashion-mnist:$T/data" --model "$m" --small-input --epochs 1 --batch 4 --subset 8 --lr 0.01
        --threads 1 --quiet --out "$out")
  if ! "$BIN" train "${args[@]}" > "$out.log" 2>&1; then
    echo "FAIL: train $m: $(tail -2 "$out.log")" >&2; fail=$((fail+1)); continue
  fi
  logged=$(sed -E 's/.*"test_loss": ([0-9.eE+-]+).*/\1/' "$out/metrics.jsonl")
  "$BIN" eval --checkpoint "$out/last.safetensors" --data "fashion-mnist:$T/data" --batch 4 --threads 1 \
      --json "$out/eval.json" > /dev/null 2>&1
  evald=$(/usr/bin/python3 -c "import json; print(json.load(open('$out/eval.json'))['loss'])" 2>/dev/null)
  if /usr/bin/python3 -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= 1e-4 * max(1, abs(a)) else 1)" "$logged" "${evald:-nan}"; then
    echo "ok   $m: 2 steps, logged test loss $logged, eval of the checkpoint $evald"
    pass=$((pass+1))
  else
    echo "FAIL: $m: logged test loss $logged, eval of the checkpoint ${evald:-?}" >&2
    fail=$((fail+1))
  fi
  rm -rf "$out"
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
