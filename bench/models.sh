#!/usr/bin/env bash
# Forward+backward images/s of every zoo model at 3x64x64, batch 64, 200 classes: ours
# (bench_models) and PyTorch's (peer_models.py), same threads, measured in one run.
# usage: bench/models.sh [BUILD] ; env STEPS (default 3), THREADS (default nproc), MODELS (default all)
set -uo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-3}
export OMP_NUM_THREADS=$THREADS
cd "$(dirname "$0")/.."
MODELS=${MODELS:-$("$BUILD/robustcv" models | awk 'NR > 3 && $1 != "smallcnn" {print $1}')}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(env -u OMP_NUM_THREADS nproc) cores; threads $THREADS; steps $STEPS"
printf "%-14s %12s %12s %7s\n" "model (fwd+bwd, 3x64x64, batch 64)" "ours img/s" "peer img/s" "ratio"
for m in $MODELS; do
  ours=$("$BUILD/bench_models" "$m" 64 64 "$STEPS" 2>/dev/null || echo nan)
  peer=$(/usr/bin/python3 bench/peer_models.py "$m" 64 64 "$STEPS" "$THREADS" 2>/dev/null || echo nan)
  printf "%-14s %12s %12s %6.2fx\n" "$m" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print a/b}')"
done
