#!/usr/bin/env bash
# The attacks' inner loop, ours (bench/bench_attack_grad.c) vs PyTorch 1.13 / torchattacks
# (bench/peer_attack_grad.py), same model, shapes and thread count, measured in one run:
# the input gradient (forward + backward to x, eval mode) of a batch, and APGD-CE end to end.
# usage: bench/bench_attack_grad.sh [BUILD]; THREADS (default nproc), STEPS (default 20),
# APGD_N (default 500, 0 skips the APGD runs), APGD_ITERS (default 100).
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-20}
APGD_N=${APGD_N:-500}
APGD_ITERS=${APGD_ITERS:-100}
export OMP_NUM_THREADS=$THREADS
PY=/usr/bin/python3
cd "$(dirname "$0")/.."
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(env -u OMP_NUM_THREADS nproc) cores, load $(cut -d' ' -f1 /proc/loadavg); threads $THREADS"
printf "%-52s %9s %9s %7s\n" "case (lower is better)" "ours" "peer" "speedup"
row() { printf "%-52s %9s %9s %6.2fx\n" "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN{print b/a}')"; }
for model in smallcnn smallcnn6; do
  ours=$("$BUILD/bench_attack_grad" grad $model 250 "$STEPS" 2>/dev/null)
  peer=$($PY bench/peer_attack_grad.py grad $model 250 "$STEPS" "$THREADS" 2>/dev/null)
  row "$model input grad, b250, eval, ms" "$ours" "$peer"
done
if [ "$APGD_N" -gt 0 ]; then
  ours=$("$BUILD/bench_attack_grad" apgd smallcnn 250 "$APGD_N" "$APGD_ITERS" 2>/dev/null)
  peer=$($PY bench/peer_attack_grad.py apgd smallcnn 250 "$APGD_N" "$THREADS" "$APGD_ITERS" 2>/dev/null)
  row "smallcnn APGD-CE $APGD_ITERS steps, $APGD_N images, s" "$ours" "$peer"
fi
