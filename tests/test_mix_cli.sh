#!/usr/bin/env bash
# robustcv train --mixup/--cutmix, --ema, --swa-start from the CLI:
#  - a run killed after epoch 2 (--max-steps) and resumed ends with last, ema and swa checkpoints
#    byte-equal to the uninterrupted run's (the EMA, the SWA average and the mixing draws resume);
#  - swa.safetensors' weights are the mean of the epoch-2 and epoch-3 weights (numpy, from the
#    two checkpoints), its batchnorm statistics recomputed (num_batches_tracked = batches of update_bn);
#  - ema.safetensors is a normal checkpoint: `robustcv evaluate` on it gives the ema_test_top1 logged;
#  - --ema first given at --resume starts from the resumed weights, the same with and without --quiet;
#  - bad flags and combinations give a message naming the flag and a non-zero exit.
set -u
BIN=${RCV_BIN:-build/robustcv}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/rcv_mix.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; pass=0
ok() { if "$@"; then pass=$((pass+1)); else echo "FAIL: $*" >&2; fail=$((fail+1)); fi; }
export OMP_WAIT_POLICY=passive
ARGS=(--data fashion-mnist --model smallcnn --epochs 3 --batch 64 --subset 512 --lr 0.05 --seed 3 --threads 2 --quiet
      --mixup 0.8 --cutmix 1.0 --label-smoothing 0.1 --mix-mode elem --ema 0.9 --ema-warmup
      --swa-start 1 --swa-lr 0.01 --swa-anneal-epochs 1)

"$BIN" train "${ARGS[@]}" --out "$T/a" || { echo "FAIL: reference run"; exit 1; }
# 512 / 64 = 8 steps an epoch: --max-steps 16 stops after epoch 2's checkpoints
"$BIN" train "${ARGS[@]}" --out "$T/b" --max-steps 16 || { echo "FAIL: first half"; exit 1; }
cp "$T/b/last.safetensors" "$T/w2.safetensors"
"$BIN" train "${ARGS[@]}" --out "$T/b" --resume || { echo "FAIL: resumed run"; exit 1; }
for f in last ema swa; do ok cmp "$T/a/$f.safetensors" "$T/b/$f.safetensors"; done
ok test "$(grep -c '"ema_test_top1"' "$T/a/metrics.jsonl")" -eq 3
ok test "$(grep -c '"swa_test_top1"' "$T/a/metrics.jsonl")" -eq 2
ok test "$(tail -1 "$T/a/metrics.jsonl" | grep -c '"swa_models": 2, .*"swa_bn_updated": true')" -eq 1

ok $PY - "$T/w2.safetensors" "$T/a/last.safetensors" "$T/a/swa.safetensors" <<'PY'
import sys
sys.path.insert(0, "tests/oracle")
import numpy as np
from compare_safetensors import load
w2, w3, swa = (load(p)[0] for p in sys.argv[1:4])
err, nbt = 0.0, set()
for name, v in swa.items():
    if name.endswith("num_batches_tracked"):
        nbt.add(int(v.ravel()[0]))
    elif "running_" not in name:
        ref = (w2[name].astype(np.float64) + w3[name]) / 2
        err = max(err, float(np.abs(v - ref).max() / max(np.abs(ref).max(), 1e-6)))
print("swa weights vs (w2 + w3) / 2: %.3g; num_batches_tracked %s" % (err, sorted(nbt)))
sys.exit(0 if err < 1e-6 and nbt == {512 // 64} else 1)
PY

# ema.safetensors through evaluate: the clean accuracy on the run's 512 test images is the one logged
ok "$BIN" evaluate "$T/a/ema.safetensors" --limit 512 --noise none --fgsm-eps 0.1 --pgd-eps 0.1 --pgd-steps 1 \
  --symmetries 0 --transfer 0 --uap 0 --corruptions 0 --denoise 0 --autoattack 0 --threads 2 --json "$T/ev.json" \
  > /dev/null 2>&1
ok $PY - "$T/ev.json" "$T/a/metrics.jsonl" <<'PY'
import json, sys
top1 = json.load(open(sys.argv[1]))["models"][0]["sets"]["clean"]["top1"]
logged = json.loads(open(sys.argv[2]).read().splitlines()[-1])["ema_test_top1"]
print("evaluate ema.safetensors: %.6f, logged %.6f" % (top1, logged))
sys.exit(0 if abs(top1 - logged) < 1e-6 else 1)
PY

# --ema added at --resume to a run that had none: the EMA starts from the resumed weights, with or
# without --quiet (it once failed under --quiet on the missing ema.safetensors)
PLAIN=(--data fashion-mnist --model smallcnn --epochs 2 --batch 64 --subset 512 --lr 0.05 --seed 3 --threads 2)
for q in loud quiet; do
  qa=(); [ $q = quiet ] && qa=(--quiet)
  "$BIN" train "${PLAIN[@]}" --quiet --out "$T/e_$q" --max-steps 8 || echo "FAIL: first half ($q)" >&2
  "$BIN" train "${PLAIN[@]}" "${qa[@]}" --ema 0.9 --out "$T/e_$q" --resume > /dev/null 2>&1 ||
    { echo "FAIL: --resume --ema ($q)" >&2; fail=$((fail+1)); }
done
ok cmp "$T/e_loud/ema.safetensors" "$T/e_quiet/ema.safetensors"

# bad input
bad() { # expected-rc message-fragment args...
  local rc=$1 frag=$2; shift 2
  out=$("$BIN" train --data fashion-mnist --subset 256 --epochs 1 --batch 64 --quiet --out "$T/bad" "$@" 2>&1); got=$?
  if [ "$got" -ne "$rc" ] || ! grep -qF -- "$frag" <<<"$out"; then
    echo "FAIL: train $* gave rc $got (expected $rc): $out" >&2; fail=$((fail+1))
  else pass=$((pass+1)); fi
}
bad 2 "--mixup -1" --mixup -1
bad 2 "--mix-mode 'foo'" --cutmix 1 --mix-mode foo
bad 2 "--mix-prob 2" --cutmix 1 --mix-prob 2
bad 2 "--cutmix-minmax" --cutmix-minmax 0.8,0.2
bad 2 "--swa-lr" --swa-start 0
bad 2 "--swa-start 1" --swa-start 1 --swa-lr 0.01
bad 2 "--ema 1" --ema 1
bad 1 "standard or augment-curriculum" --cutmix 1 --recipe fgsm
bad 1 "even batch" --cutmix 1 --batch 63
bad 2 "characters long, at most" --out "$T/$(printf '%0600d' 0)"
bad 2 "characters long, at most" --augment "hflip$(printf ',hflip%.0s' $(seq 60))"
bad 1 "robustcv train: fashion-mnist has 32 training images, fewer than one batch" --subset 32 --batch 64

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
