#!/usr/bin/env bash
# make demo: train the small BN CNN on Fashion-MNIST (Debian's dataset-fashion-mnist)
# and evaluate it; prints the accuracy and the time taken.
set -euo pipefail
BIN=${1:-build/robustcv}
OUT=${OUT:-runs/demo}
EPOCHS=${EPOCHS:-15}
start=$(date +%s)
"$BIN" train --data fashion-mnist --model smallcnn --epochs "$EPOCHS" --batch 128 --lr 0.1 \
  --schedule cosine:warmup=1 --out "$OUT" --seed 0
end=$(date +%s)
"$BIN" eval --checkpoint "$OUT/last.safetensors" --data fashion-mnist --json "$OUT/eval.json"
echo
echo "demo: trained smallcnn on Fashion-MNIST in $((end - start)) s; test top-1 $(sed -E 's/.*"top1": ([0-9.]+).*/\1/' "$OUT/eval.json" | awk '{printf "%.2f%%", 100*$1}')"
