#!/usr/bin/env bash
# Multi-task training end to end: a Tiny-ImageNet-shaped tree whose boxes are painted into the
# images (tests/oracle/make_tiny_imagenet.py --box-content), smallcnn+box trained on it with
# augmentation (the boxes follow the flips and crops), then `robustcv eval` must report a mean
# IoU on val/ well above the best constant-box predictor, found here from the same val boxes
# with torchvision.ops.box_iou. Also: the metrics.jsonl box fields, resume with a box model
# ending byte-identical to an uninterrupted run, and clear errors for a box model on data without
# boxes (Fashion-MNIST), with a robust recipe, and --box-lambda on a model without a box head.
set -u
BIN=${RCV_BIN:-build/robustcv}
T=$(mktemp -d /tmp/rcv_box.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
if ! /usr/bin/python3 -c 'import PIL, numpy, torch, torchvision' 2>/dev/null; then
  echo "skipping: /usr/bin/python3 with PIL, numpy, torch and torchvision is needed"; exit 0
fi
export OMP_NUM_THREADS=1 RCV_CACHE_DIR="$T/cache"
# 5 classes x 40 train images, 50 val images, each with a bright rectangle at its box.
/usr/bin/python3 tests/oracle/make_tiny_imagenet.py --box-content "$T/g" 5 40 10 > /dev/null || { echo "FAIL: tree generator"; exit 1; }
TINY="$T/g/tiny"

# The baseline: the best constant box for val/ (Adam on the mean IoU from three starts: the mean
# train box, the mean and the median val box), boxes / 64 as ref_*.txt gives them at 64x64.
base=$(/usr/bin/python3 - "$T/g" <<'EOF'
import sys, torch
from torchvision.ops import box_iou
def load(p):
    return torch.tensor([[float(v) for v in l.split()[1:5]] for l in open(p)], dtype=torch.float64) / 64
tr, va = load(sys.argv[1] + "/ref_train.txt"), load(sys.argv[1] + "/ref_val.txt")
best = 0.0
for start in (tr.mean(0), va.mean(0), va.median(0).values):
    c = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([c], lr=0.01)
    for _ in range(300):
        opt.zero_grad()
        (-box_iou(c[None], va)[0].mean()).backward()
        opt.step()
    best = max(best, box_iou(start[None], va)[0].mean().item(), box_iou(c.detach()[None], va)[0].mean().item())
print("%.6f" % best)
EOF
)
ok test -n "$base"
echo "best constant box on val: mean IoU $base"

# 16x16 inputs: smallcnn's last feature map (4x4) then sees the whole image and its zero padding,
# which is where a global-pooled network gets position from. lambda 50: smooth-L1 on [0, 1]
# coordinates is small next to the cross-entropy.
A=(--data "tiny-imagenet:$TINY:size=16" --model smallcnn+box --batch 20 --optimizer adam --lr 3e-3 --box-lambda 50
   --augment "hflip,crop:pad=2" --seed 1 --threads 1)
"$BIN" train "${A[@]}" --epochs 20 --out "$T/run" 2> "$T/train.log"; rc=$?
ok test $rc -eq 0
ok grep -q "200 train / 50 test images" "$T/train.log"
ok test "$(wc -l < "$T/run/metrics.jsonl")" -eq 20
ok test "$(grep -c '"train_box_loss": .*"train_iou": .*"test_box_loss": .*"test_iou": .*"test_iou50": ' "$T/run/metrics.jsonl")" -eq 20
# The box loss falls: last epoch's below half the first's.
first=$(head -1 "$T/run/metrics.jsonl" | grep -o '"train_box_loss": [0-9.]*' | cut -d' ' -f2)
last=$(tail -1 "$T/run/metrics.jsonl" | grep -o '"train_box_loss": [0-9.]*' | cut -d' ' -f2)
ok awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a / 2) }'
echo "train box loss: epoch 1 $first, epoch 20 $last"

"$BIN" eval --checkpoint "$T/run/last.safetensors" --data "tiny-imagenet:$TINY:size=16" --batch 16 --threads 1 \
  --json "$T/eval.json" > "$T/eval.txt"; rc=$?
ok test $rc -eq 0
ok grep -q "^box: mean IoU " "$T/eval.txt"
jget() { /usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/eval.json" "$1"; }
iou=$(jget box_iou)
n=$(jget box_images)
ok test "$n" = 50
i50=$(jget box_iou50)
echo "smallcnn+box on val: mean IoU $iou, IoU >= 0.5 on a fraction $i50 (constant-box baseline $base)"
ok awk -v a="$iou" -v b="$base" 'BEGIN { exit !(a >= b + 0.15) }'
# eval and the trainer's last test evaluation score the same checkpoint on the same data.
tlast=$(tail -1 "$T/run/metrics.jsonl" | grep -o '"test_iou": [0-9.]*' | cut -d' ' -f2)
ok awk -v a="$iou" -v b="$tlast" 'BEGIN { exit !((a - b) ^ 2 < 1e-10) }'

# Resume: stopped in epoch 2 (checkpoint at epoch 1), resumed, equals two uninterrupted epochs;
# the checkpoint records lambda.
"$BIN" train "${A[@]}" --epochs 2 --quiet --out "$T/full" &&
  "$BIN" train "${A[@]}" --epochs 2 --quiet --max-steps 15 --out "$T/part" &&
  "$BIN" train "${A[@]}" --epochs 2 --quiet --resume --out "$T/part"; rc=$?
ok test $rc -eq 0
ok cmp "$T/full/last.safetensors" "$T/part/last.safetensors"
ok test "$(/usr/bin/python3 -c '
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
print(json.loads(f.read(n))["__metadata__"]["robustcv.box_lambda"])' "$T/full/last.safetensors")" = 50

# On a GPU (skipped without one): the cuda backend trains the box head too, its checkpoint
# reaches the same margin when evaluated on the cpu, and cuda evaluation agrees with cpu's.
if "$BIN" train "${A[@]}" --device cuda --epochs 1 --max-steps 1 --quiet --out "$T/probe" 2> "$T/probe.err"; then
  "$BIN" train "${A[@]}" --device cuda --epochs 20 --quiet --out "$T/gpu"; rc=$?
  ok test $rc -eq 0
  for d in cpu cuda; do
    "$BIN" eval --checkpoint "$T/gpu/last.safetensors" --data "tiny-imagenet:$TINY:size=16" --batch 16 --device $d \
      --json "$T/gpu_$d.json" > /dev/null
  done
  gc=$(grep -o '"box_iou": [0-9.]*' "$T/gpu_cpu.json" | cut -d' ' -f2)
  gg=$(grep -o '"box_iou": [0-9.]*' "$T/gpu_cuda.json" | cut -d' ' -f2)
  echo "cuda-trained smallcnn+box: mean IoU $gc (cpu eval), $gg (cuda eval)"
  ok awk -v a="$gc" -v b="$base" 'BEGIN { exit !(a >= b + 0.15) }'
  ok awk -v a="$gc" -v b="$gg" 'BEGIN { exit !((a - b) ^ 2 < 1e-8) }'
elif grep -q "no CUDA device/driver" "$T/probe.err"; then
  echo "SKIP cuda part: no CUDA device"
else
  ok false "cuda probe failed: $(cat "$T/probe.err")"
fi

# Clear errors.
msg=$("$BIN" train --model smallcnn+box --data fashion-mnist --epochs 1 --max-steps 1 --out "$T/fm" 2>&1); rc=$?
ok test $rc -ne 0
ok grep -q "needs bounding boxes; data source fashion-mnist has none" <<< "$msg"
msg=$("$BIN" train "${A[@]}" --recipe fgsm --epochs 1 --max-steps 1 --out "$T/fgsm" 2>&1); rc=$?
ok test $rc -ne 0
ok grep -q "recipe fgsm does not support box models" <<< "$msg"
msg=$("$BIN" train --model smallcnn --data "tiny-imagenet:$TINY:size=16" --box-lambda 2 --epochs 1 --max-steps 1 \
  --out "$T/plain" 2>&1); rc=$?
ok test $rc -ne 0
ok grep -q "box-lambda 2 applies to box models" <<< "$msg"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
