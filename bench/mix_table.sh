#!/usr/bin/env bash
# The issue-20 table: on Fashion-MNIST with the demo's model (smallcnn6), its standard member's
# augmentation (hflip:p=0.5,crop:pad=2) and schedule (cosine:warmup=1), one run each, same seed:
#   standard      the demo's standard member on this budget
#   +cutmix       + --cutmix 1.0 (timm's CutMix: batch mode, prob 1, lam corrected)
#   +mixup        + --mixup 0.8 --cutmix 1.0 --label-smoothing 0.1 (timm's recipe values)
#   +ema          + --ema 0.999 --ema-warmup, the EMA weights (ema.safetensors) evaluated
#   +swa          + --swa-start EPOCHS-1 --swa-lr 0.01 --swa-anneal-epochs 0, swa.safetensors
#   +trivialaug   + --augment ...,trivialaugment (the policies branch; skipped when unknown)
# then one `robustcv evaluate` of all of them on the first TEST test images: clean accuracy, the
# 15 corruptions x 5 severities (mean accuracy and mCE relative to the first row, Hendrycks'
# unnormalised form, from the model cards), L-inf PGD accuracy (eps 0.1, alpha 0.025, 10 steps,
# random start).
#
#   bench/mix_table.sh [BUILD_DIR]   (env: SUBSET=0 (all 60000) EPOCHS=15 TEST=1000 CORR=100
#                                     THREADS=1 SEED=0 OUT=/tmp/rcv_mix ROWS="standard cutmix ema")
#
# The demo's budget is SUBSET=0 EPOCHS=15; the README quotes a smaller stated one. A row whose
# checkpoint and EPOCHS metric lines exist in OUT is not retrained (re-evaluate with other TEST/CORR).
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/robustcv
SUBSET=${SUBSET:-0}
EPOCHS=${EPOCHS:-15}
TEST=${TEST:-1000}
CORR=${CORR:-100}
THREADS=${THREADS:-1}
SEED=${SEED:-0}
OUT=${OUT:-/tmp/rcv_mix}
ROWS=(${ROWS:-standard cutmix ema})
[ -x "$BIN" ] || { echo "mix_table.sh: $BIN not built (cmake --build $BUILD)" >&2; exit 1; }
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive
AUG="hflip:p=0.5,crop:pad=2"
common=(--model smallcnn6 --subset "$SUBSET" --epochs "$EPOCHS" --batch 128 --schedule cosine:warmup=1 --seed "$SEED"
        --threads "$THREADS" --quiet)
declare -A extra=(
  [standard]="--augment $AUG"
  [cutmix]="--augment $AUG --cutmix 1.0"
  [mixup]="--augment $AUG --mixup 0.8 --cutmix 1.0 --label-smoothing 0.1"
  [ema]="--augment $AUG --ema 0.999 --ema-warmup"
  [swa]="--augment $AUG --swa-start $((EPOCHS - 1)) --swa-lr 0.01 --swa-anneal-epochs 0"
  [trivialaug]="--augment $AUG,trivialaugment"
)
declare -A ckpt=([ema]=ema.safetensors [swa]=swa.safetensors)
cks=() names=()
for r in "${ROWS[@]}"; do
  t0=$(date +%s)
  if [ -f "$OUT/$r/${ckpt[$r]:-last.safetensors}" ] && [ "$(wc -l < "$OUT/$r/metrics.jsonl")" -ge "$EPOCHS" ]; then
    echo "$r: trained already ($OUT/$r; delete it to retrain)" >&2
  # shellcheck disable=SC2086
  elif ! "$BIN" train "${common[@]}" ${extra[$r]} --out "$OUT/$r"; then
    echo "mix_table.sh: row $r failed to train (skipped)" >&2
    continue
  fi
  echo "$r: $(( $(date +%s) - t0 )) s" >&2
  cks+=("$OUT/$r/${ckpt[$r]:-last.safetensors}") names+=("$r")
done
"$BIN" evaluate "${cks[@]}" --limit "$TEST" --noise none --fgsm-eps 0.1 --pgd-eps 0.1 --pgd-steps 10 --symmetries 0 \
  --transfer 0 --uap 0 --corruptions "$CORR" --denoise 0 --autoattack 0 --threads "$THREADS" \
  --json "$OUT/evaluate.json" --cards "$OUT/cards" > "$OUT/evaluate.txt" 2>&1
/usr/bin/python3 - "$OUT" "${names[@]}" <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
ev = json.load(open(os.path.join(out, "evaluate.json")))
print("| recipe | clean top-1 %% | corruptions acc %% | mCE %% (vs %s) | PGD eps 0.1 %% |" % names[0])
print("|---|---:|---:|---:|---:|")
for name, m in zip(names, ev["models"]):
    stem = os.path.basename(m["name"]).replace(".safetensors", "")
    if stem in ("last", "best"): stem = os.path.basename(os.path.dirname(m["name"]))
    card = json.load(open(os.path.join(out, "cards", stem + ".card.json")))
    def pct(k):  # the cards hold percentages as strings
        v = card.get(k)
        return "-" if v is None else "%.2f" % float(v)
    s = m["sets"]
    print("| %s | %.2f | %s | %s | %.2f |" % (name, 100 * s["clean"]["top1"], pct("corruptions_acc"),
          pct("corruptions_mce"), 100 * s["pgd:0.1"]["top1"]))
PY
