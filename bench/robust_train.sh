#!/usr/bin/env bash
# Robust training on Fashion-MNIST, same model (smallcnn) and budget per recipe: trains under
# standard, fgsm, pgd, stability, trades and noise, then prints for each the clean accuracy, the
# accuracy under L-inf PGD (eps 0.1, alpha 0.025, 10 steps, random start), under AutoAttack
# standard (eps 0.1) and under Gaussian noise (sigma 0.2 pixels, clamped), all on the first TEST
# test images.
#
#   bench/robust_train.sh [BUILD_DIR]        (env: SUBSET=3000 EPOCHS=3 TEST=1000 THREADS=1 OUT=/tmp/rcv_robust
#                                             RECIPES="standard fgsm pgd stability trades noise")
#
# The adversarial recipes train with eps 0.1, the evaluation's eps (--adv-eps, --pgd-eps); stability
# trains with noise matched to the evaluation's (sigma 0.57 normalized = 0.2 pixels at Fashion-MNIST's
# std 0.353) and alpha 1, since its seed defaults (0.1, 0.01) barely change the loss on this data.
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/robustcv
SUBSET=${SUBSET:-3000}
EPOCHS=${EPOCHS:-3}
TEST=${TEST:-1000}
THREADS=${THREADS:-1}
OUT=${OUT:-/tmp/rcv_robust}
[ -x "$BIN" ] || { echo "robust_train.sh: $BIN not built (cmake --build $BUILD)" >&2; exit 1; }
export OMP_NUM_THREADS=$THREADS
common=(--model smallcnn --subset "$SUBSET" --epochs "$EPOCHS" --batch 128 --lr 0.05 --seed 1 --threads "$THREADS" --quiet)
declare -A extra=(
  [standard]=""
  [fgsm]="--adv-eps 0.1"
  [pgd]="--pgd-eps 0.1"
  [stability]="--stability-sigma 0.57 --stability-alpha 1"
  [trades]="--trades-eps 0.1 --trades-step 0.025"
  [noise]="--noise-sigma 0.25"
)
recipes=(${RECIPES:-standard fgsm pgd stability trades noise})
metric() { sed -n "s/^$1 *\([0-9.]*\).*/\1/p"; }
printf "%-10s %8s %8s %8s %8s %8s\n" recipe clean pgd autoatt noise train_s
for r in "${recipes[@]}"; do
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$BIN" train "${common[@]}" --recipe "$r" ${extra[$r]} --out "$OUT/$r"
  t1=$(date +%s.%N)
  ck=$OUT/$r/last.safetensors
  clean=$("$BIN" attack --checkpoint "$ck" --attack noise --sigma 0 --limit "$TEST" 2>/dev/null | metric "clean accuracy")
  pgd=$("$BIN" attack --checkpoint "$ck" --attack pgd --eps 0.1 --alpha 0.025 --steps 10 --limit "$TEST" 2>/dev/null |
        metric "adversarial accuracy")
  aa=$("$BIN" attack --checkpoint "$ck" --attack autoattack --eps 0.1 --limit "$TEST" 2>/dev/null |
       metric "adversarial accuracy")
  noise=$("$BIN" attack --checkpoint "$ck" --attack noise --sigma 0.2 --limit "$TEST" 2>/dev/null | metric "adversarial accuracy")
  printf "%-10s %8s %8s %8s %8s %8.1f\n" "$r" "$clean" "$pgd" "$aa" "$noise" "$(echo "$t1 - $t0" | bc)"
done
