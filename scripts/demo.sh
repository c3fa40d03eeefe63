#!/usr/bin/env bash
# make demo: the main job on the embedded default, Fashion-MNIST (Debian's dataset-fashion-mnist):
# trains three models (standard with augmentation, stability training, FGSM adversarial
# training) and, in no ensemble, one with timm's recipes (TrivialAugment, CutMix, EMA), runs the
# robustness suite (AutoAttack beside PGD, for the ensemble too), evaluates every ensemble, draws
# Grad-CAM maps, certifies a fifth, noise-trained model by randomized smoothing and writes
# runs/demo/report.html and the model cards. QUICK=1 runs the few-minute version.
set -euo pipefail
BIN=${1:-build/robustcv}
OUT=${OUT:-runs/demo}
start=$(date +%s)
if [ "${QUICK:-0}" = 1 ]; then "$BIN" run --quick --out "$OUT"; else "$BIN" run --out "$OUT"; fi
end=$(date +%s)
echo
echo "demo: done in $((end - start)) s; open $OUT/report.html (also $OUT/report.md, $OUT/results.json)"
