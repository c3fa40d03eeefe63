#!/usr/bin/env bash
# Randomized smoothing's sampling loop: noisy forward passes per second on one image, ours
# (bench_certify: rcv_smooth_counts) vs PyTorch's core.py loop (bench/peer_certify.py: eval mode,
# no_grad, x.repeat + randn_like * sigma, argmax, bincount), same weights, batch and threads, one run.
#
#   bench/bench_certify.sh [BUILD_DIR]      (env: THREADS=$(nproc) BATCH=1000 SAMPLES=10000)
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-$(nproc)}
BATCH=${BATCH:-1000}
SAMPLES=${SAMPLES:-10000}
PY=/usr/bin/python3
cd "$(dirname "$0")/.."
[ -x "$BUILD/bench_certify" ] || { echo "bench_certify.sh: $BUILD/bench_certify not built" >&2; exit 1; }
export OMP_NUM_THREADS=$THREADS
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
printf "%-46s %9s %9s %7s\n" "case (noisy forwards/s)" "ours" "peer" "ratio"
run() { # label model c h w classes
  local label=$1 ours peer
  ours=$("$BUILD/bench_certify" "$2" "$3" "$4" "$5" "$6" "$BATCH" "$SAMPLES" "$T/w.safetensors")
  peer=$($PY bench/peer_certify.py "$2" "$3" "$4" "$5" "$6" "$BATCH" "$SAMPLES" "$THREADS" "$T/w.safetensors" 2>"$T/peer.err" ||
         { cat "$T/peer.err" >&2; echo nan; })
  printf "%-46s %9s %9s %6.2fx\n" "$label" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print a/b}')"
}
run "smallcnn 1x28x28 10 cls, batch $BATCH, $THREADS thr" smallcnn 1 28 28 10
