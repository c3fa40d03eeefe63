#!/usr/bin/env bash
# Inference images/s: robustcv's own eval-mode forward (bench_onnx, in-process) against onnxruntime
# running the ONNX file robustcv exported from the same weights (bench/peer_onnx.py), same batch and
# threads, in one run. ratio = ours / peer (above 1: ours ahead). Each side waits as it does by
# default: ours with GOMP_SPINCOUNT=100000 (what src/cli/main.c gives every robustcv command),
# onnxruntime with its thread pool spinning. OMP_WAIT_POLICY=passive puts both to sleep instead.
#
#   bench/bench_onnx.sh [BUILD_DIR]      (env: THREADS=2 SECONDS_PER_CASE=3)
set -euo pipefail
BUILD=${1:-build}
THREADS=${THREADS:-2}
SECS=${SECONDS_PER_CASE:-3}
PY=/usr/bin/python3
cd "$(dirname "$0")/.."
[ -x "$BUILD/bench_onnx" ] || { echo "bench_onnx.sh: $BUILD/bench_onnx not built" >&2; exit 1; }
if ! $PY -c 'import onnxruntime' 2>/dev/null; then
  echo "bench_onnx.sh: onnxruntime not importable by $PY (scripts/deps.sh installs it); skipped"; exit 0
fi
export OMP_NUM_THREADS=$THREADS
[ -n "${OMP_WAIT_POLICY:-}${GOMP_SPINCOUNT:-}" ] || export GOMP_SPINCOUNT=100000
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
echo "inference, images/s; peer = onnxruntime $($PY -c 'import onnxruntime as o; print(o.__version__)') on our exported file; $THREADS threads; waiting: ${OMP_WAIT_POLICY:+OMP_WAIT_POLICY=$OMP_WAIT_POLICY}${GOMP_SPINCOUNT:+GOMP_SPINCOUNT=$GOMP_SPINCOUNT}"
printf "%-40s %9s %9s %7s\n" "case" "ours" "peer" "ratio"
run() { # label model c h w classes batch
  local label=$1 ours peer
  ours=$("$BUILD/bench_onnx" "$2" "$3" "$4" "$5" "$6" "$7" "$SECS" "$T/m.onnx" 2>"$T/ours.err") ||
    { cat "$T/ours.err" >&2; ours=nan; }
  peer=$($PY bench/peer_onnx.py "$T/m.onnx" "$3" "$4" "$5" "$7" "$SECS" "$THREADS" 2>"$T/peer.err") ||
    { cat "$T/peer.err" >&2; peer=nan; }
  printf "%-40s %9s %9s %6.2fx\n" "$label" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{print a/b}')"
}
run "resnet18 3x64x64 200 cls, batch 1" resnet18 3 64 64 200 1
run "resnet18 3x64x64 200 cls, batch 64" resnet18 3 64 64 200 64
run "smallcnn6 1x28x28 10 cls, batch 1" smallcnn6 1 28 28 10 1
run "smallcnn6 1x28x28 10 cls, batch 64" smallcnn6 1 28 28 10 64
