#!/usr/bin/env bash
# GPU training throughput, ours vs PyTorch in one run on the same GPU: ResNet-18 and ResNet-50
# at 64x64 (200 classes, Tiny ImageNet's shape), ours with --precision bf16 vs PyTorch with
# channels_last + bf16 autocast, and fp32 vs fp32 (PyTorch with TF32 off: cudnn.allow_tf32 and
# matmul.allow_tf32 False); then the PGD-7 adversarial training step of ResNet-18 (ours: `train
# --recipe pgd`'s rcv_recipe_step, the attack iterating on the GPU; PyTorch: torchattacks' PGD,
# eps 0.1, alpha 0.025, random start, then the training step), fp32 and bf16.
# Prints ours, peer, ratio per case. About 3-5 minutes on an H100 (each case builds, warms up
# 3 steps and times STEPS; cuDNN autotuning on the PyTorch side).
# usage: bash bench/bench_cuda.sh [BUILD_DIR]     (STEPS=20 BATCH=256 PGD_STEPS=10 by default)
# Prints one SKIP line and exits 0 on a machine without a GPU.
set -uo pipefail
BUILD=${1:-build}
STEPS=${STEPS:-20}
BATCH=${BATCH:-256}
PY=${PY:-/usr/bin/python3}
cd "$(dirname "$0")/.."
if [ ! -x "$BUILD/bench_cuda" ]; then
  echo "SKIP: $BUILD/bench_cuda is not built (run cmake --build $BUILD)"; exit 0
fi
probe=$("$BUILD/bench_cuda" smallcnn 1 28 28 10 2 1 2>/dev/null | head -1)
if [[ "$probe" == SKIP* ]]; then echo "$probe"; exit 0; fi
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "GPU: ${gpu:-unknown}; PyTorch $($PY -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>&1)"
echo "training step (forward + backward + SGD momentum), images/s, batch $BATCH, $STEPS steps"
printf "%-40s %10s %10s %7s\n" "case" "ours" "peer" "ratio"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
run() { # label model precision [steps] [extra: pgd=K]
  local label=$1 model=$2 prec=$3 n=${4:-$STEPS} extra=${5:-} ours peer
  ours=$("$BUILD/bench_cuda" "$model" 3 64 64 200 "$BATCH" "$n" "$prec" $extra 2>"$T/ours.err")
  peer=$($PY bench/peer_cuda.py "$model" 3 64 64 200 "$BATCH" "$n" "$prec" $extra 2>"$T/peer.err")
  if [[ -z "$ours" || -z "$peer" || "$peer" == SKIP* ]]; then
    echo "$label: failed: ours '$ours' ($(tail -1 "$T/ours.err")), peer '$peer' ($(tail -1 "$T/peer.err"))"; return
  fi
  printf "%-40s %10s %10s %6.2fx\n" "$label" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print a/b}')"
}
run "resnet18 3x64x64 200 cls bf16" resnet18 bf16
run "resnet50 3x64x64 200 cls bf16" resnet50 bf16
run "resnet18 3x64x64 200 cls fp32" resnet18 fp32
run "resnet50 3x64x64 200 cls fp32" resnet50 fp32
PGD_STEPS=${PGD_STEPS:-10}
echo "PGD-7 adversarial training step (attack in eval mode + training step), images/s, batch $BATCH, $PGD_STEPS steps"
run "resnet18 PGD-7 adv. train fp32" resnet18 fp32 "$PGD_STEPS" pgd=7
run "resnet18 PGD-7 adv. train bf16" resnet18 bf16 "$PGD_STEPS" pgd=7
exit 0
