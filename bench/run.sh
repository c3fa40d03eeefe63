#!/usr/bin/env bash
# make bench: ours vs PyTorch (Debian python3-torch) on the same machine, shapes
# and thread count, measured in one run. Prints ours, peer and ratio per case.
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-10}
export OMP_NUM_THREADS=$THREADS
PY=/usr/bin/python3
cd "$(dirname "$0")/.."
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; threads $THREADS"
printf "%-44s %10s %10s %7s\n" "case (training step, fp32)" "ours img/s" "peer img/s" "ratio"
run() { # label, our args..., -- peer args...
  local label=$1; shift
  local ours peer
  ours=$("$BUILD/bench_train" "$@" 2>/dev/null)
  peer=$($PY bench/peer_train.py "$1" "$2" "$3" "$4" "$5" "$6" "$STEPS" "$THREADS" "${@:8}" 2>/dev/null)
  printf "%-44s %10s %10s %6.2fx\n" "$label" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print a/b}')"
}
run "resnet18 3x64x64, 200 classes, batch 128" resnet18 3 64 64 200 128 "$STEPS"
run "smallcnn 1x28x28, 10 classes, batch 128" smallcnn 1 28 28 10 128 "$((STEPS * 5))"
[ -x "$BUILD/bench_ops" ] && "$BUILD/bench_ops"
exit 0
# Augmentation and NL-means (bench/bench_augment.c vs bench/peer_augment.py: OpenCV, torchvision).
if [ -x "$BUILD/bench_augment" ]; then
  printf "%-44s %10s %10s %7s\n" "case (augment / denoise)" "ours" "peer" "ratio"
  for nl in nlmeans nlmeans-seed; do
    ours=$(OMP_NUM_THREADS=1 "$BUILD/bench_augment" $nl 20 2>/dev/null)
    peer=$($PY bench/peer_augment.py $nl 5 2>/dev/null || echo nan)
    label="NL-means 64x64 ms/img, 1 thr ($([ $nl = nlmeans ] && echo 'tmpl 7/21' || echo 'seed 21/21'))"
    printf "%-44s %10s %10s %6.2fx\n" "$label" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print b/a}')"
  done
  ours=$(OMP_NUM_THREADS=2 "$BUILD/bench_augment" pipeline 20000 2>/dev/null)
  peer=$($PY bench/peer_augment.py pipeline 4000 2 2>/dev/null || echo nan)
  printf "%-44s %10s %10s %6.2fx\n" "flip+crop4+jitter+erase+norm img/s, 2 thr" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print a/b}')"
fi
