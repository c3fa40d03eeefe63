#!/usr/bin/env bash
# AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square; L-inf) on N Fashion-MNIST test images of
# one model: robustcv against torchattacks 3.5.1 configured to the reference's defaults
# (tests/oracle/aa_ref.py: APGD/APGDT/FAB 100 steps, 9 targets, Square 5000 queries without
# rescaling, each on the points still robust), same weights, same images, same threads, one run.
# Prints seconds for both, the ratio (peer / ours) and both robust accuracies.
#
#   bench/bench_autoattack.sh [BUILD_DIR]    (env: N=1000 EPS=0.05 THREADS=$(nproc) MODEL=smallcnn CKPT=)
#
# Without CKPT it trains MODEL for 1 epoch on 6000 training images first (not timed).
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/robustcv
N=${N:-1000}
EPS=${EPS:-0.05}
THREADS=${THREADS:-$(nproc)}
MODEL=${MODEL:-smallcnn}
PY=/usr/bin/python3
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=$THREADS
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
CK=${CKPT:-}
if [ -z "$CK" ]; then
  "$BIN" train --model "$MODEL" --epochs 1 --subset 6000 --batch 128 --lr 0.05 --seed 1 --threads "$THREADS" --quiet \
    --out "$T/m" > /dev/null
  CK=$T/m/last.safetensors
fi
"$BIN" attack --checkpoint "$CK" --attack autoattack --norm linf --eps "$EPS" --limit "$N" --batch 500 \
  --threads "$THREADS" --out "$T/ours" > "$T/ours.txt" 2> "$T/ours.err"
ours_s=$($PY -c "import json; print('%.2f' % json.load(open('$T/ours/results.json'))['seconds'])")
ours_acc=$($PY -c "import json; print('%.4f' % json.load(open('$T/ours/results.json'))['adversarial_accuracy'])")
$PY tests/oracle/aa_ref.py "$CK" --attack autoattack --norm Linf --eps "$EPS" --n "$N" --threads "$THREADS" \
  --batch 500 > "$T/peer.txt" 2> "$T/peer.err"
peer_s=$(sed -n 's/^seconds //p' "$T/peer.txt")
peer_acc=$(sed -n 's/^robust_acc //p' "$T/peer.txt")
echo "AutoAttack standard, L-inf eps $EPS, $N Fashion-MNIST test images, $MODEL, $THREADS threads"
printf "%-34s %10s %10s %7s\n" "case" "ours" "peer" "ratio"
printf "%-34s %10s %10s %6.2fx\n" "seconds (peer / ours)" "$ours_s" "$peer_s" "$(awk -v a="$ours_s" -v b="$peer_s" 'BEGIN{print b/a}')"
printf "%-34s %10s %10s\n" "robust accuracy" "$ours_acc" "$peer_acc"
